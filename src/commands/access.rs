//! `paragon-admin access ca init|show, grant, sign-host, list, revoke`: glue over
//! `crate::access`.

use serde::Serialize;

use crate::access::{self, CaKind, Grant, Request, Store};
use crate::cli::{AccessAction, CaAction, Globals, GrantArgs, SignArgs};
use crate::exit::Error;
use crate::output::{self, Format};
use crate::ssh::host_cert::format_time;
use crate::ssh::user_cert::describe;

#[derive(Serialize)]
struct Row<'a> {
    serial: u64,
    key_id: &'a str,
    kind: &'static str,
    ca: &'a str,
    principals: &'a [String],
    valid_after: String,
    valid_before: String,
    key: &'a str,
    read_only: bool,
    revoked: bool,
}

pub fn run(g: &Globals, action: &AccessAction) -> Result<u8, Error> {
    let store = Store::open()?;
    match action {
        AccessAction::Ca {
            action: CaAction::Init { name, host },
        } => {
            let kind = if *host { CaKind::Host } else { CaKind::User };
            let public = store.init_ca(name, kind)?;
            if !g.quiet {
                eprintln!(
                    "made {} CA `{name}` in {}; its passphrase is in the keyring as `{}`",
                    kind.as_str(),
                    store.dir.join("ca").display(),
                    access::passphrase_secret(name)
                );
            }
            print_ca_line(&public, kind);
        }
        AccessAction::Ca {
            action: CaAction::Show { name },
        } => {
            let name = store.choose(name.as_deref())?;
            let (public, kind) = store.ca(&name)?;
            print_ca_line(&public, kind);
        }
        AccessAction::Grant(a) => grant(g, &store, a)?,
        AccessAction::SignHost(a) => sign_host(g, &store, a)?,
        AccessAction::List => list(g, &store.ledger()?)?,
        AccessAction::Revoke { what } => {
            let revoked = store.revoke(what)?;
            if !g.quiet {
                for r in &revoked {
                    eprintln!("revoked serial {} (key id \"{}\")", r.serial, r.key_id);
                }
                eprintln!("install it on the bastion as its RevokedKeys file:");
            }
            println!("{}", store.krl_path().display());
        }
    }
    Ok(0)
}

/// A user CA: the TrustedUserCAKeys line; a host CA: the `@cert-authority` line for clients.
fn print_ca_line(public: &russh::keys::PublicKey, kind: CaKind) {
    let line = public.to_openssh().unwrap_or_default();
    match kind {
        CaKind::User => println!("{line}"),
        CaKind::Host => println!("@cert-authority * {line}"),
    }
}

fn grant(g: &Globals, store: &Store, a: &GrantArgs) -> Result<(), Error> {
    sign(g, store, &a.sign, a.read_only, CaKind::User)
}

fn sign_host(g: &Globals, store: &Store, a: &SignArgs) -> Result<(), Error> {
    sign(g, store, a, false, CaKind::Host)
}

fn sign(
    g: &Globals,
    store: &Store,
    a: &SignArgs,
    read_only: bool,
    kind: CaKind,
) -> Result<(), Error> {
    let valid_for = duration(&a.valid_for)?;
    let key_id = match kind {
        CaKind::Host => a.key_id.clone().or_else(|| a.principals.first().cloned()),
        CaKind::User => a.key_id.clone(),
    };
    let req = Request {
        ca: a.ca.as_deref(),
        key: &a.key,
        principals: &a.principals,
        valid_for,
        key_id: key_id.as_deref(),
        read_only,
    };
    let cert = store.sign(&req, kind)?;
    let path = access::cert_path_for(&a.key);
    access::write_certificate(&path, &cert)?;
    if !g.quiet {
        eprintln!("signed: {}", describe(&cert));
    }
    println!("{}", path.display());
    Ok(())
}

fn duration(text: &str) -> Result<u64, Error> {
    access::parse_duration(text).ok_or_else(|| {
        Error::usage(format!(
            "--valid-for `{text}` is not a duration: use a number and s, m, h, d or w (8h, 7d), at most ten years"
        ))
    })
}

fn list(g: &Globals, ledger: &[Grant]) -> Result<(), Error> {
    let rows: Vec<Row<'_>> = ledger
        .iter()
        .map(|r| Row {
            serial: r.serial,
            key_id: &r.key_id,
            kind: r.kind.as_str(),
            ca: &r.ca,
            principals: &r.principals,
            valid_after: format_time(r.valid_after),
            valid_before: format_time(r.valid_before),
            key: &r.key,
            read_only: r.read_only,
            revoked: r.revoked,
        })
        .collect();
    match g.output {
        Format::Json => output::print_json(&rows)?,
        Format::Table => {
            let mut t = output::table([
                "SERIAL",
                "KEY ID",
                "KIND",
                "CA",
                "PRINCIPALS",
                "VALID UNTIL",
                "STATE",
            ]);
            for r in &rows {
                let state = if r.revoked {
                    "revoked"
                } else if r.read_only {
                    "read-only"
                } else {
                    "active"
                };
                t.add_row([
                    r.serial.to_string(),
                    r.key_id.to_string(),
                    r.kind.to_string(),
                    r.ca.to_string(),
                    r.principals.join(","),
                    r.valid_before.clone(),
                    state.to_string(),
                ]);
            }
            output::print_table(&t)?;
        }
    }
    Ok(())
}
