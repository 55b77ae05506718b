//! `paragon-admin profiles`: the profiles in the config file.

use serde::Serialize;

use crate::cli::Globals;
use crate::config;
use crate::exit::Error;
use crate::output::{self, Format};

#[derive(Serialize)]
struct Row {
    name: String,
    default: bool,
    host: String,
    port: u16,
    user: String,
    proxy_jump: Option<String>,
    strict_host_key_checking: config::HostKeyPolicy,
    /// Each identity's OpenSSH certificate: key id, serial, principals, validity.
    certificates: Vec<String>,
}

pub fn run(g: &Globals) -> Result<u8, Error> {
    let path = config::config_path(g.config.as_deref())?;
    let file = config::load(&path)?;
    let default = file.default_profile.clone().or_else(|| {
        (file.profiles.len() == 1)
            .then(|| file.profiles.keys().next().cloned())
            .flatten()
    });
    let rows: Vec<Row> = file
        .profiles
        .iter()
        .map(|(name, p)| Row {
            name: name.clone(),
            default: default.as_deref() == Some(name),
            host: p.host.0.clone(),
            port: p.port.0,
            user: p
                .user
                .as_ref()
                .map_or_else(config::local_user_name, |u| u.0.clone()),
            proxy_jump: p.proxy_jump.as_ref().map(ToString::to_string),
            strict_host_key_checking: p.strict_host_key_checking,
            certificates: config::Resolved::new(name.clone(), path.clone(), p.clone())
                .map(|r| crate::ssh::certificate_summaries(&r))
                .unwrap_or_default(),
        })
        .collect();
    match g.output {
        Format::Json => output::print_json(&rows)?,
        Format::Table => {
            let mut t = output::table([
                "",
                "PROFILE",
                "BASTION",
                "USER",
                "JUMP",
                "HOST KEYS",
                "CERTIFICATE",
            ]);
            for r in &rows {
                t.add_row([
                    if r.default { "*" } else { "" }.to_string(),
                    r.name.clone(),
                    crate::dial::target(&r.host, r.port),
                    r.user.clone(),
                    r.proxy_jump.clone().unwrap_or_default(),
                    r.strict_host_key_checking.to_string(),
                    r.certificates.join("\n"),
                ]);
            }
            output::print_table(&t)?;
        }
    }
    Ok(0)
}
