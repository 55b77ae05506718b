//! The writer `init` uses: one profile into the config file, editing the document in place so
//! that comments, other keys and other profiles are kept byte for byte. Knows nothing of the
//! questions `init` asks.

use std::collections::BTreeMap;
use std::path::Path;

use super::ConfigError;
use super::load::{parse, read};
use super::schema::{Datastores, KubeConfig, Profile, default_connect_timeout, default_keepalive};
use super::values::{HostKeyPolicy, HostName, JumpHost, NonEmpty, Port};

/// A profile to write: the answers of `paragon-admin init`, each already validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProfileDraft {
    pub host: HostName,
    pub port: Port,
    pub user: Option<String>,
    pub identity_file: Option<String>,
    pub known_hosts: Option<String>,
    pub strict_host_key_checking: HostKeyPolicy,
    pub proxy_jump: Option<JumpHost>,
    /// Services to write as `[profiles.NAME.services.SERVICE]` with their local port.
    pub services: Vec<(String, u16)>,
}

impl ProfileDraft {
    /// The profile this draft writes, as `load` would read it back.
    pub fn to_profile(&self) -> Profile {
        let non_empty = |s: &Option<String>| s.clone().map(NonEmpty);
        Profile {
            host: self.host.clone(),
            port: self.port,
            user: non_empty(&self.user),
            identity_file: non_empty(&self.identity_file),
            certificate_file: None,
            known_hosts: non_empty(&self.known_hosts),
            strict_host_key_checking: self.strict_host_key_checking,
            hash_known_hosts: None,
            proxy_jump: self.proxy_jump.clone(),
            keepalive_interval: default_keepalive(),
            connect_timeout: default_connect_timeout(),
            persist: Default::default(),
            services: BTreeMap::new(),
            kube: KubeConfig::default(),
            datastores: Datastores::default(),
            thresholds: BTreeMap::new(),
        }
    }
}

/// How `write_profile` treats what is already there.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WriteOptions {
    /// Replace a profile of the same name (only the keys `init` asks about).
    pub force: bool,
    /// Set `default_profile` to this profile.
    pub make_default: bool,
}

/// Writes `[profiles.NAME]` into the config file at `path`, creating the file (and its
/// folder) when missing. An existing profile is replaced only with `force`, and then only
/// the keys `init` asks about change: comments, other keys, other profiles and the rest of
/// the file are kept byte for byte (toml_edit edits the document in place). The result is
/// checked with `parse` before it replaces the file, atomically, with mode 0600.
pub fn write_profile(
    path: &Path,
    name: &str,
    draft: &ProfileDraft,
    options: WriteOptions,
) -> Result<(), ConfigError> {
    use toml_edit::{DocumentMut, Item, Table, value};
    let text = read(path)?.unwrap_or_default();
    // Refuse to edit a file that does not load: the error says where it is wrong.
    let before = parse(path, &text)?;
    if before.profiles.contains_key(name) && !options.force {
        return Err(ConfigError::ProfileExists {
            path: path.to_path_buf(),
            name: name.to_string(),
        });
    }
    let mut doc: DocumentMut =
        text.parse()
            .map_err(|e: toml_edit::TomlError| ConfigError::Syntax {
                path: path.to_path_buf(),
                line: 1,
                message: e.message().to_string(),
            })?;
    let invalid = |key: &str| ConfigError::Invalid {
        path: path.to_path_buf(),
        line: 1,
        key: key.to_string(),
        message: "is not a table".to_string(),
    };
    if options.make_default {
        // toml_edit writes a table's own keys before its sub-tables: this stays top-level.
        doc["default_profile"] = value(name);
    }
    if !doc.contains_key("profiles") {
        let mut t = Table::new();
        t.set_implicit(true);
        doc.insert("profiles", Item::Table(t));
    }
    let profiles = doc["profiles"]
        .as_table_mut()
        .ok_or_else(|| invalid("profiles"))?;
    if !profiles.contains_key(name) {
        profiles.insert(name, Item::Table(Table::new()));
    }
    let table = profiles[name]
        .as_table_mut()
        .ok_or_else(|| invalid(&format!("profiles.{name}")))?;
    let wanted: Vec<(&str, Option<toml_edit::Item>)> = vec![
        ("host", Some(value(draft.host.0.as_str()))),
        (
            "port",
            (draft.port.0 != 22).then(|| value(i64::from(draft.port.0))),
        ),
        ("user", draft.user.as_deref().map(value)),
        ("identity_file", draft.identity_file.as_deref().map(value)),
        ("known_hosts", draft.known_hosts.as_deref().map(value)),
        (
            "strict_host_key_checking",
            Some(value(draft.strict_host_key_checking.to_string())),
        ),
        (
            "proxy_jump",
            draft.proxy_jump.as_ref().map(|j| value(j.to_string())),
        ),
    ];
    for (key, item) in wanted {
        match item {
            // Assigning to an existing key keeps its place and the comments above it.
            Some(item) => table[key] = item,
            None => {
                table.remove(key);
            }
        }
    }
    if !draft.services.is_empty() {
        if !table.contains_key("services") {
            let mut t = Table::new();
            t.set_implicit(true);
            table.insert("services", Item::Table(t));
        }
        let services = table["services"]
            .as_table_mut()
            .ok_or_else(|| invalid(&format!("profiles.{name}.services")))?;
        for (service, local_port) in &draft.services {
            if !services.contains_key(service) {
                services.insert(service, Item::Table(Table::new()));
            }
            let s = services[service.as_str()]
                .as_table_mut()
                .ok_or_else(|| invalid(&format!("profiles.{name}.services.{service}")))?;
            s["local_port"] = value(i64::from(*local_port));
        }
    }
    let new_text = doc.to_string();
    parse(path, &new_text)?.select(path, Some(name))?;
    crate::files::write_atomic(path, new_text.as_bytes(), crate::files::Access::Private).map_err(
        |source| ConfigError::Write {
            path: path.to_path_buf(),
            source,
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn draft(host: &str) -> ProfileDraft {
        ProfileDraft {
            host: HostName::parse(host).unwrap(),
            port: Port(2222),
            user: Some("ops".into()),
            identity_file: Some("~/.ssh/id_ed25519".into()),
            known_hosts: None,
            strict_host_key_checking: HostKeyPolicy::Yes,
            proxy_jump: Some(JumpHost::parse("jump@j.example.com").unwrap()),
            services: vec![("grafana".into(), 4500)],
        }
    }

    #[test]
    fn new_file_is_created_0600_and_loads_with_the_profile() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/config.toml");
        write_profile(
            &path,
            "prod",
            &draft("b.example.com"),
            WriteOptions::default(),
        )
        .unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        let file = super::super::load(&path).unwrap();
        let (name, p) = file.select(&path, None).unwrap();
        assert_eq!(name, "prod");
        assert_eq!(p.host.0, "b.example.com");
        assert_eq!(p.port, Port(2222));
        assert_eq!(p.proxy_jump.unwrap().to_string(), "jump@j.example.com:22");
        assert_eq!(p.services["grafana"].get_ref().local_port, Some(4500));
    }

    #[test]
    fn existing_profile_needs_force_and_force_keeps_comments_and_other_keys() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.toml");
        let original = "# my bastions\ndefault_profile = \"stage\"\n\n[profiles.stage]\nhost = \"s\"\n\n# production: careful\n[profiles.prod]\n# the old one\nhost = \"old\"\nkeepalive_interval = 30 # seconds\n";
        std::fs::write(&path, original).unwrap();
        let e = write_profile(
            &path,
            "prod",
            &draft("new.example.com"),
            WriteOptions::default(),
        )
        .unwrap_err();
        assert!(e.to_string().contains("pass --force"), "{e}");
        assert_eq!(std::fs::read_to_string(&path).unwrap(), original);
        write_profile(&path, "prod", &draft("new.example.com"), FORCE).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        for kept in [
            "# my bastions\n",
            "[profiles.stage]\nhost = \"s\"\n",
            "# production: careful\n[profiles.prod]\n",
            "# the old one\nhost = \"new.example.com\"",
            "keepalive_interval = 30 # seconds\n",
        ] {
            assert!(text.contains(kept), "{kept:?} missing from:\n{text}");
        }
        let p = &super::super::load(&path).unwrap().profiles["prod"];
        assert_eq!(p.keepalive_interval, 30);
        assert_eq!(p.user.as_ref().unwrap().0, "ops");
    }

    #[test]
    fn an_invalid_file_is_not_edited() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.toml");
        std::fs::write(&path, "[profiles.x]\nhots = 1\n").unwrap();
        let e = write_profile(&path, "prod", &draft("b"), WriteOptions::default()).unwrap_err();
        assert!(e.to_string().contains(":2: profiles.x.hots"), "{e}");
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            "[profiles.x]\nhots = 1\n"
        );
    }

    const FORCE: WriteOptions = WriteOptions {
        force: true,
        make_default: false,
    };

    #[test]
    fn make_default_sets_default_profile_at_the_top_and_keeps_the_rest() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.toml");
        std::fs::write(&path, "# mine\n[profiles.a]\nhost = \"a\"\n").unwrap();
        let options = WriteOptions {
            force: false,
            make_default: true,
        };
        write_profile(&path, "b", &draft("b"), options).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.contains("# mine\n[profiles.a]\n"), "{text}");
        let file = super::super::load(&path).unwrap();
        assert_eq!(file.default_profile.as_deref(), Some("b"));
        assert_eq!(file.select(&path, None).unwrap().0, "b");
        assert!(file.profiles.contains_key("a"));
    }
}
