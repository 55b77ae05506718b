//! The hops on this machine: the profile (completed from `~/.ssh/config` as a connection
//! completes it), its identity file (readable, a private key, not open to others, as
//! `ssh::auth` reads it) and a known_hosts entry for the bastion and its jump host.

use std::time::Instant;

use super::{Diagnosis, Stage};
use crate::config::{HostKeyPolicy, Resolved};
use crate::ssh::known_hosts::{self, Marker};

/// Checks the profile's files; the completed profile when the bastion can be tried.
pub(super) fn check(profile: &Resolved, d: &mut Diagnosis) -> Option<Resolved> {
    let started = Instant::now();
    let profile = match crate::ssh::completed(profile) {
        Ok(p) => p,
        Err(e) => {
            d.failed(
                Stage::Config,
                "config",
                Some(started),
                e.to_string(),
                "OpenSSH's own config for this host cannot be used: fix ~/.ssh/config as the message says".to_string(),
            );
            return None;
        }
    };
    d.ok(
        Stage::Config,
        "config",
        Some(started),
        format!(
            "profile {} of {}: {}@{}",
            profile.name,
            profile.file.display(),
            profile.user,
            crate::dial::target(&profile.settings.host.0, profile.settings.port.0)
        ),
    );
    if !identity(&profile, d) {
        return None;
    }
    known_hosts_entries(&profile, d).then_some(profile)
}

/// The identity file the profile names (else the usual ones, else the ssh-agent).
fn identity(profile: &Resolved, d: &mut Diagnosis) -> bool {
    let started = Instant::now();
    let agent = std::env::var_os("SSH_AUTH_SOCK").is_some_and(|s| !s.is_empty());
    let files = match &profile.identity_file {
        Some(p) => vec![p.clone()],
        None => crate::ssh::auth::default_identity_files(),
    };
    let mut found = Vec::new();
    for path in &files {
        match crate::ssh::auth::read_identity_file(path) {
            Ok(_) => found.push(format!("{} (mode {})", path.display(), mode(path))),
            Err(e) => {
                d.failed(
                    Stage::Config,
                    "identity file",
                    Some(started),
                    e.to_string(),
                    format!(
                        "the identity file cannot be used as a private key: fix it as the message says, or set identity_file in profile {}",
                        profile.name
                    ),
                );
                return false;
            }
        }
    }
    if found.is_empty() && !agent {
        d.failed(
            Stage::Config,
            "identity file",
            Some(started),
            "no identity: no ssh-agent, no identity_file and no ~/.ssh/id_ed25519, id_ecdsa or id_rsa".to_string(),
            format!("there is no key to offer the bastion: set identity_file in profile {} or start an ssh-agent with your key", profile.name),
        );
        return false;
    }
    if agent {
        found.insert(0, "the ssh-agent ($SSH_AUTH_SOCK)".to_string());
    }
    d.ok(
        Stage::Config,
        "identity file",
        Some(started),
        format!("readable and private: {}", found.join(", ")),
    );
    true
}

/// The permission bits of `path`, as `ls` shows them in octal.
fn mode(path: &std::path::Path) -> String {
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::metadata(path)
        .map(|m| format!("{:04o}", m.permissions().mode() & 0o7777))
        .unwrap_or_else(|_| "?".to_string())
}

/// A known_hosts entry (a key, or a CA for host certificates) for each SSH hop. Without one,
/// only `strict_host_key_checking = "yes"` is bound to fail.
fn known_hosts_entries(profile: &Resolved, d: &mut Diagnosis) -> bool {
    let started = Instant::now();
    let path = &profile.known_hosts;
    let recorded = match known_hosts::load(path) {
        Ok(k) => k,
        Err(e) => {
            d.failed(
                Stage::Config,
                "known_hosts",
                Some(started),
                e.to_string(),
                format!("the known_hosts file cannot be read: fix its permissions or set known_hosts in profile {}", profile.name),
            );
            return false;
        }
    };
    let s = &profile.settings;
    let mut hops = vec![(s.host.0.clone(), s.port.0)];
    if let Some(j) = &s.proxy_jump {
        hops.insert(0, (j.host.clone(), j.port));
    }
    let mut said = Vec::new();
    for (host, port) in hops {
        let name = known_hosts::host_name(&host, port);
        let lines: Vec<usize> = recorded
            .entries
            .iter()
            .filter(|e| e.marker != Marker::Revoked && e.matches(name.as_bytes()))
            .map(|e| e.line)
            .collect();
        if !lines.is_empty() {
            let at: Vec<String> = lines.iter().map(ToString::to_string).collect();
            said.push(format!("{name} at line {}", at.join(", ")));
            continue;
        }
        if s.strict_host_key_checking == HostKeyPolicy::Yes {
            d.failed(
                Stage::Config,
                "known_hosts",
                Some(started),
                format!("no key of {name} in {}", path.display()),
                format!(
                    "strict_host_key_checking is \"yes\" and the host key of {name} was never recorded: verify it from a trusted network (`ssh-keyscan -p {port} {host} | ssh-keygen -lf -`), then add its line to {}",
                    path.display()
                ),
            );
            return false;
        }
        said.push(format!(
            "{name} not recorded yet ({} decides at the first connection)",
            s.strict_host_key_checking
        ));
    }
    d.ok(
        Stage::Config,
        "known_hosts",
        Some(started),
        format!("{}: {}", path.display(), said.join("; ")),
    );
    true
}
