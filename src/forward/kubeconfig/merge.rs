//! Merging a profile's healing entry (one cluster, user and context named after it) into the
//! user's own kubeconfig, keeping every other entry as kubectl would write it. Knows nothing
//! of where the entry comes from.

use std::path::{Path, PathBuf};

use kube::config::Kubeconfig;

use super::{KubeconfigError, default_paths, to_yaml};

/// `existing` (the text of `path`, empty when there is none) with the one cluster, user and
/// context of `entry` added; each of them that exists by name already is replaced only with
/// `force`. Every other entry is kept; the current context is set only when there was none.
/// Comments are not kept (kubectl keeps none either).
pub fn merge(
    path: &Path,
    existing: &str,
    entry: Kubeconfig,
    force: bool,
) -> Result<Kubeconfig, KubeconfigError> {
    let mut into = parse(path, existing)?;
    let name = entry.current_context.clone().unwrap_or_default();
    if !force {
        refuse_taken(path, &into, &name)?;
    }
    for c in entry.contexts {
        into.contexts.retain(|x| x.name != c.name);
        into.contexts.push(c);
    }
    for c in entry.clusters {
        into.clusters.retain(|x| x.name != c.name);
        into.clusters.push(c);
    }
    for u in entry.auth_infos {
        into.auth_infos.retain(|x| x.name != u.name);
        into.auth_infos.push(u);
    }
    if into.current_context.as_deref().unwrap_or("").is_empty() {
        into.current_context = Some(name);
    }
    Ok(into)
}

/// Refuses, unless `force`, a kubeconfig at `path` that cannot be merged into or already
/// holds a context, cluster or user `name` (checked before connecting, so that the mistake
/// costs nothing).
pub fn check_mergeable(path: &Path, name: &str, force: bool) -> Result<(), KubeconfigError> {
    let into = parse(path, &read_existing(path)?)?;
    match force {
        true => Ok(()),
        false => refuse_taken(path, &into, name),
    }
}

fn parse(path: &Path, existing: &str) -> Result<Kubeconfig, KubeconfigError> {
    if existing.trim().is_empty() {
        return Ok(Kubeconfig {
            api_version: Some("v1".to_string()),
            kind: Some("Config".to_string()),
            ..Kubeconfig::default()
        });
    }
    Kubeconfig::from_yaml(existing).map_err(|e| KubeconfigError::Unmergeable {
        path: path.to_path_buf(),
        message: crate::kube::one_line(&e),
    })
}

/// The first of context, cluster, user named `name` that `into` holds, as an error.
fn refuse_taken(path: &Path, into: &Kubeconfig, name: &str) -> Result<(), KubeconfigError> {
    let taken = [
        ("context", into.contexts.iter().any(|x| x.name == name)),
        ("cluster", into.clusters.iter().any(|x| x.name == name)),
        ("user", into.auth_infos.iter().any(|x| x.name == name)),
    ];
    match taken.into_iter().find(|(_, t)| *t) {
        Some((kind, _)) => Err(KubeconfigError::Exists {
            path: path.to_path_buf(),
            kind,
            name: name.to_string(),
        }),
        None => Ok(()),
    }
}

/// The text of `path`; empty when it does not exist.
fn read_existing(path: &Path) -> Result<String, KubeconfigError> {
    match std::fs::read_to_string(path) {
        Ok(t) => Ok(t),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(String::new()),
        Err(source) => Err(KubeconfigError::ReadTarget {
            path: path.to_path_buf(),
            source,
        }),
    }
}

/// The kubeconfig `--merge` writes into: `$KUBECONFIG`'s first file, else `~/.kube/config`.
pub fn merge_target() -> Result<PathBuf, KubeconfigError> {
    default_paths()
        .into_iter()
        .find(|p| !p.as_os_str().is_empty())
        .ok_or(KubeconfigError::NoDefaultPath)
}

/// Merges `entry` into the kubeconfig at `path` (created when missing), atomically; an
/// existing file keeps its mode, a new one is 0600.
pub fn merge_into_file(path: &Path, entry: Kubeconfig, force: bool) -> Result<(), KubeconfigError> {
    let merged = merge(path, &read_existing(path)?, entry, force)?;
    let text = to_yaml(&merged)?;
    crate::files::write_atomic(path, text.as_bytes(), crate::files::Access::Private).map_err(
        |source| KubeconfigError::Write {
            path: path.to_path_buf(),
            source,
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use secrecy::ExposeSecret;

    /// A profile's entry as `through_plugin` makes it: cluster, user and context `name`.
    fn entry(name: &str) -> Kubeconfig {
        Kubeconfig::from_yaml(&format!(
            "clusters:\n- name: {name}\n  cluster:\n    server: https://127.0.0.1:24000\n\
             users:\n- name: {name}\n  user:\n    exec:\n      apiVersion: client.authentication.k8s.io/v1\n      command: /usr/bin/paragon-admin\n\
             contexts:\n- name: {name}\n  context:\n    cluster: {name}\n    user: {name}\n\
             current-context: {name}\n"
        ))
        .unwrap()
    }

    const USER_KUBECONFIG: &str = "apiVersion: v1\nkind: Config\npreferences: {}\n\
clusters:\n- name: home\n  cluster:\n    server: https://home.example:6443\n    extensions:\n    - name: x\n      extension: {a: 1}\n\
users:\n- name: me\n  user:\n    token: mine\n    exec-extra: kept\n\
contexts:\n- name: home\n  context:\n    cluster: home\n    user: me\n    namespace: default\n\
current-context: home\n";

    #[test]
    fn merge_adds_the_profiles_entries_and_keeps_the_others() {
        let path = Path::new("/home/u/.kube/config");
        let k = merge(path, USER_KUBECONFIG, entry("paragon-prod"), false).unwrap();
        let names = |v: Vec<&str>| v.join(",");
        assert_eq!(
            names(k.contexts.iter().map(|c| c.name.as_str()).collect()),
            "home,paragon-prod"
        );
        assert_eq!(
            names(k.clusters.iter().map(|c| c.name.as_str()).collect()),
            "home,paragon-prod"
        );
        assert_eq!(k.current_context.as_deref(), Some("home"));
        let yaml = to_yaml(&k).unwrap();
        let back = Kubeconfig::from_yaml(&yaml).unwrap();
        let home = back.auth_infos.iter().find(|u| u.name == "me").unwrap();
        let home = home.auth_info.as_ref().unwrap();
        assert_eq!(home.token.as_ref().map(|t| t.expose_secret()), Some("mine"));
        assert!(yaml.contains("exec-extra: kept"), "{yaml}");
        assert!(yaml.contains("extension:"), "{yaml}");

        let e = merge(path, &yaml, entry("paragon-prod"), false).unwrap_err();
        assert_eq!(
            e.to_string(),
            "/home/u/.kube/config already has a context named `paragon-prod`: pass --force to replace it"
        );
        assert_eq!(crate::exit::ExitStatus::exit_status(&e), crate::exit::USAGE);
        let again = merge(path, &yaml, entry("paragon-prod"), true).unwrap();
        assert_eq!(again.contexts.len(), 2);
        assert_eq!(again.auth_infos.len(), 2);

        let fresh = merge(path, "", entry("paragon-prod"), false).unwrap();
        assert_eq!(fresh.current_context.as_deref(), Some("paragon-prod"));
        let e = merge(path, "clusters: [[[", entry("p"), false).unwrap_err();
        assert!(matches!(e, KubeconfigError::Unmergeable { .. }), "{e}");
    }

    #[test]
    fn an_existing_name_is_refused_before_anything_connects() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config");
        check_mergeable(&path, "paragon-prod", false).unwrap();
        std::fs::write(
            &path,
            USER_KUBECONFIG.replace("- name: me", "- name: paragon-prod"),
        )
        .unwrap();
        let e = check_mergeable(&path, "paragon-prod", false).unwrap_err();
        assert!(e.to_string().contains("a user named `paragon-prod`"), "{e}");
        check_mergeable(&path, "paragon-prod", true).unwrap();
        check_mergeable(&path, "paragon-other", false).unwrap();
    }
}
