//! Which profile a command uses, and that profile with everything decided: paths expanded,
//! defaults filled, services merged with the built-in ones. Knows nothing of SSH or clap.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::load::{config_path, env_value, load};
use super::schema::{ConfigFile, Profile, Service, builtin_services};
use super::values::{HostPort, Scheme, read_ca_bundle};
use super::{ConfigError, PROFILE_ENV};

/// A profile chosen and resolved: paths expanded, defaults filled.
#[derive(Debug, Clone)]
pub struct Resolved {
    /// The profile's name (`[profiles.NAME]`).
    pub name: String,
    /// The config file it was read from.
    pub file: PathBuf,
    /// The profile's keys as written in the file.
    pub settings: Profile,
    pub user: String,
    pub identity_file: Option<PathBuf>,
    pub certificate_file: Option<PathBuf>,
    pub known_hosts: PathBuf,
}

/// Where the profile's name came from, for the message when it does not exist.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NamedBy {
    Flag,
    Environment,
    DefaultProfile,
}

impl ConfigFile {
    /// Picks the profile: `name`, else `default_profile`, else the only one.
    pub fn select(
        &self,
        path: &Path,
        name: Option<&str>,
    ) -> Result<(String, Profile), ConfigError> {
        self.select_named(path, name.map(|n| (n, NamedBy::Flag)))
    }

    /// As `select`, saying in the error where the name came from.
    pub fn select_named(
        &self,
        path: &Path,
        name: Option<(&str, NamedBy)>,
    ) -> Result<(String, Profile), ConfigError> {
        let known = || self.profiles.keys().cloned().collect::<Vec<_>>().join(", ");
        if self.profiles.is_empty() {
            return Err(ConfigError::NoProfiles {
                path: path.to_path_buf(),
            });
        }
        let default = self
            .default_profile
            .as_deref()
            .map(|d| (d, NamedBy::DefaultProfile));
        let (chosen, by) = match name.or(default) {
            Some((n, by)) => (n.to_string(), by),
            None if self.profiles.len() == 1 => (
                self.profiles.keys().next().cloned().unwrap_or_default(),
                NamedBy::Flag,
            ),
            None => {
                return Err(ConfigError::Ambiguous {
                    path: path.to_path_buf(),
                    known: known(),
                });
            }
        };
        match self.profiles.get(&chosen) {
            Some(p) => Ok((chosen, p.clone())),
            None => Err(ConfigError::UnknownProfile {
                path: path.to_path_buf(),
                name: chosen,
                known: known(),
                named_by: by,
            }),
        }
    }
}

/// The profile name the flag gives, else `$PARAGON_ADMIN_PROFILE` when not empty.
pub fn profile_choice(flag: Option<&str>) -> Option<(String, NamedBy)> {
    match flag {
        Some(n) => Some((n.to_string(), NamedBy::Flag)),
        None => env_value(PROFILE_ENV).map(|n| (n, NamedBy::Environment)),
    }
}

/// Loads the file and resolves the chosen profile (`profile`: the `--profile` flag).
pub fn resolve(config: Option<&Path>, profile: Option<&str>) -> Result<Resolved, ConfigError> {
    let file = config_path(config)?;
    let parsed = load(&file)?;
    let choice = profile_choice(profile);
    let (name, profile) =
        parsed.select_named(&file, choice.as_ref().map(|(n, by)| (n.as_str(), *by)))?;
    Resolved::new(name, file, profile)
}

impl Resolved {
    /// What names this profile's kept connection, as OpenSSH's `ControlPath %C` names one: a
    /// hash of the config file (made absolute, links followed) and the profile name, so that
    /// two files with a profile of the same name never share an agent. 16 hex digits.
    pub fn connection_id(&self) -> String {
        let file = std::fs::canonicalize(&self.file).unwrap_or_else(|_| self.file.clone());
        let mut text = file.as_os_str().as_encoded_bytes().to_vec();
        text.push(0);
        text.extend_from_slice(self.name.as_bytes());
        let digest = ring::digest::digest(&ring::digest::SHA256, &text);
        digest.as_ref()[..8]
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    }

    /// The name this profile's remembered local ports are kept under (`state::Ports`): the
    /// profile and its file, so two files with one profile name keep their own ports.
    pub fn state_key(&self) -> String {
        let file = std::fs::canonicalize(&self.file).unwrap_or_else(|_| self.file.clone());
        format!("{} {}", self.name, file.display())
    }

    pub fn new(name: String, file: PathBuf, mut settings: Profile) -> Result<Self, ConfigError> {
        let base = file.parent().map(Path::to_path_buf).unwrap_or_default();
        resolve_ca_files(&file, &base, &name, &mut settings)?;
        let user = match &settings.user {
            Some(u) => u.0.clone(),
            None => local_user_name(),
        };
        let identity_file = settings
            .identity_file
            .as_ref()
            .map(|p| expand_path(&p.0, &base))
            .transpose()?;
        let certificate_file = settings
            .certificate_file
            .as_ref()
            .map(|p| expand_path(&p.0, &base))
            .transpose()?;
        let known_hosts = expand_path(
            settings
                .known_hosts
                .as_ref()
                .map_or("~/.ssh/known_hosts", |k| k.0.as_str()),
            &base,
        )?;
        Ok(Resolved {
            name,
            file,
            settings,
            user,
            identity_file,
            certificate_file,
            known_hosts,
        })
    }

    /// The capacity signals' levels: the defaults with this profile's `[thresholds]`.
    pub fn thresholds(&self) -> super::Thresholds {
        super::Thresholds::with(&self.settings.thresholds)
    }

    /// The built-in services with this profile's overrides, and the profile's own, by name.
    pub fn services(&self) -> BTreeMap<String, Service> {
        let mut all: BTreeMap<String, Service> = builtin_services()
            .into_iter()
            .map(|s| (s.name.clone(), s))
            .collect();
        for (name, cfg) in &self.settings.services {
            let cfg = cfg.get_ref();
            let base = all.remove(name);
            let Some(target) = cfg.target.clone().or_else(|| {
                base.as_ref().map(|b| HostPort {
                    host: b.host.clone(),
                    port: b.port,
                })
            }) else {
                continue; // `parse` refuses a new service without a target
            };
            all.insert(
                name.clone(),
                Service {
                    name: name.clone(),
                    local_port: cfg
                        .local_port
                        .or(base.as_ref().map(|b| b.local_port))
                        .unwrap_or(target.port),
                    scheme: cfg
                        .scheme
                        .or(base.as_ref().map(|b| b.scheme))
                        .unwrap_or(Scheme::Http),
                    path: cfg
                        .path
                        .as_ref()
                        .map(|p| p.0.clone())
                        .or(base.map(|b| b.path))
                        .unwrap_or_else(|| "/".to_string()),
                    via: cfg.via.unwrap_or_default(),
                    ca_file: cfg.ca_file.as_ref().map(|c| c.get_ref().clone()),
                    host: target.host,
                    port: target.port,
                },
            );
        }
        all
    }
}

/// Takes every `ca_file` from the config file's folder and reads it as a PEM CA bundle, so
/// that a bad one is a config error naming the file, line and key before anything connects,
/// not a failing check later. Afterwards each `ca_file` in `settings` is absolute.
fn resolve_ca_files(
    file: &Path,
    base: &Path,
    name: &str,
    settings: &mut Profile,
) -> Result<(), ConfigError> {
    let mut entries = Vec::new();
    if let Some(ca) = settings.datastores.ca_file.as_mut() {
        entries.push((format!("profiles.{name}.datastores.ca_file"), ca));
    }
    for (svc, cfg) in settings.services.iter_mut() {
        if let Some(ca) = cfg.get_mut().ca_file.as_mut() {
            entries.push((format!("profiles.{name}.services.{svc}.ca_file"), ca));
        }
    }
    for (key, ca) in entries {
        let written = ca.get_ref().to_string_lossy().into_owned();
        let path = expand_path(&written, base)?;
        if let Err(message) = read_ca_bundle(&path) {
            return Err(ConfigError::Invalid {
                path: file.to_path_buf(),
                line: line_in_file(file, ca.span().start),
                key,
                message,
            });
        }
        *ca.get_mut() = path;
    }
    Ok(())
}

/// The 1-based line of byte offset `at` in `file` (1 when the file cannot be read again).
fn line_in_file(file: &Path, at: usize) -> usize {
    std::fs::read(file).map_or(1, |text| {
        text.iter().take(at).filter(|&&b| b == b'\n').count() + 1
    })
}

/// The local user's name, as OpenSSH would use it when none is given.
pub fn local_user_name() -> String {
    ["USER", "LOGNAME"]
        .iter()
        .find_map(|v| std::env::var(v).ok().filter(|s| !s.is_empty()))
        .unwrap_or_else(|| "root".to_string())
}

/// Expands `~/` to the home directory; a relative path is taken from `base` (the config
/// file's folder), so a profile means the same thing from any working directory.
pub fn expand_path(p: &str, base: &Path) -> Result<PathBuf, ConfigError> {
    if p == "~" || p.starts_with("~/") {
        let home = dirs::home_dir().ok_or_else(|| ConfigError::NoHome { path: p.into() })?;
        return Ok(home.join(p.trim_start_matches('~').trim_start_matches('/')));
    }
    let path = PathBuf::from(p);
    Ok(if path.is_absolute() {
        path
    } else {
        base.join(path)
    })
}

#[cfg(test)]
mod tests {
    use super::super::load::parse;
    use super::*;

    fn parse_str(s: &str) -> ConfigFile {
        parse(Path::new("c.toml"), s).unwrap()
    }

    #[test]
    fn profile_selection() {
        let one = parse_str("[profiles.a]\nhost = \"h\"\n");
        assert_eq!(one.select(Path::new("c"), None).unwrap().0, "a");
        let two = parse_str("[profiles.a]\nhost = \"h\"\n[profiles.b]\nhost = \"h\"\n");
        let e = two.select(Path::new("c"), None).unwrap_err().to_string();
        assert!(e.contains("profiles: a, b"), "{e}");
        let e = two
            .select(Path::new("c"), Some("x"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("`x` not found (profiles: a, b)"), "{e}");
        let e = two
            .select_named(Path::new("c"), Some(("x", NamedBy::Environment)))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("`x` (from $PARAGON_ADMIN_PROFILE) not found"),
            "{e}"
        );
        let def = parse_str(
            "default_profile = \"b\"\n[profiles.a]\nhost = \"h\"\n[profiles.b]\nhost = \"h\"\n",
        );
        assert_eq!(def.select(Path::new("c"), None).unwrap().0, "b");
    }

    #[test]
    fn relative_paths_are_taken_from_the_config_folder() {
        let p = expand_path("keys/id", Path::new("/etc/pa")).unwrap();
        assert_eq!(p, PathBuf::from("/etc/pa/keys/id"));
        assert_eq!(
            expand_path("/abs", Path::new("/etc")).unwrap(),
            PathBuf::from("/abs")
        );
    }

    #[test]
    fn services_merge_builtins_with_overrides() {
        let text = "[profiles.p]\nhost = \"b\"\n[profiles.p.services.grafana]\ntarget = \"g.mon:3000\"\nlocal_port = 0\n\
                    [profiles.p.services.pgadmin]\ntarget = \"10.0.0.5:80\"\npath = \"/browser/\"\n";
        let c = parse_str(text);
        let (name, p) = c.select(Path::new("c"), None).unwrap();
        let r = Resolved::new(name, PathBuf::from("/c.toml"), p).unwrap();
        let s = r.services();
        assert_eq!(
            (
                s["grafana"].host.as_str(),
                s["grafana"].port,
                s["grafana"].local_port
            ),
            ("g.mon", 3000, 0)
        );
        assert_eq!(s["prometheus"].port, 9090);
        assert_eq!(s["pgadmin"].path, "/browser/");
        assert_eq!(s["pgadmin"].local_port, 80);
        let oo = &s["openobserve"];
        assert_eq!(
            (oo.host.as_str(), oo.port),
            ("openobserve.paragon.svc.cluster.local", 5080)
        );
    }
}
