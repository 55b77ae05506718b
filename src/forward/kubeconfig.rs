//! A kubeconfig that reaches the cluster's private API server through a local forward: the
//! server becomes the forward's local address, and `tls-server-name` keeps the API server's
//! real name so that TLS still verifies. The user's credentials are copied unchanged.
//!
//! Or, for a kubeconfig that heals itself, the user becomes an exec plugin
//! (`paragon-admin kube-credential`) that brings the forward back and hands the credential
//! over each time kubectl asks; such an entry can be merged into the user's own kubeconfig.
//!
//! Pure rewriting: reading and parsing kubeconfigs is `kube`'s (the one reader), fetching
//! from the bastion and writing are the caller's.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use kube::config::{
    AuthInfo, Cluster, Context, ExecConfig, ExecInteractiveMode, Kubeconfig, NamedAuthInfo,
    NamedCluster, NamedContext,
};

use crate::config::{HostPort, Scheme, Service};

use super::spec::{Forward, Target};

mod merge;
mod stamp;
pub use merge::{check_mergeable, merge, merge_into_file, merge_target};
pub use stamp::{STAMP_ENV, Stamp, WRITTEN_ENV, Written, rerun};

#[derive(Debug, thiserror::Error)]
pub enum KubeconfigError {
    #[error(transparent)]
    Kube(#[from] crate::kube::KubeError),
    #[error("{origin}: context `{context}` not found (contexts: {known})")]
    NoContext {
        origin: String,
        context: String,
        known: String,
    },
    #[error("{origin}: no current-context: set `context` in the profile's [kube] table")]
    NoCurrentContext { origin: String },
    #[error("{origin}: cluster `{cluster}` of context `{context}` not found")]
    NoCluster {
        origin: String,
        context: String,
        cluster: String,
    },
    #[error("{origin}: cluster `{cluster}` has no usable server URL ({server})")]
    BadServer {
        origin: String,
        cluster: String,
        server: String,
    },
    #[error("cannot render the kubeconfig: {0}")]
    Render(String),
    #[error("{path} is a default kubeconfig: pass --force to overwrite it")]
    DefaultKubeconfig { path: PathBuf },
    #[error("cannot write {path}")]
    Write {
        path: PathBuf,
        source: crate::files::WriteError,
    },
    #[error("cannot read {path}")]
    ReadTarget {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path} is not a kubeconfig kubectl could read, so it is left alone: {message}")]
    Unmergeable { path: PathBuf, message: String },
    #[error("{path} already has a {kind} named `{name}`: pass --force to replace it")]
    Exists {
        path: PathBuf,
        kind: &'static str,
        name: String,
    },
    #[error("no kubeconfig to merge into: set KUBECONFIG or HOME")]
    NoDefaultPath,
    /// The cluster the profile reaches is not the one a written healing kubeconfig names.
    #[error(
        "the cluster changed since its kubeconfig was written ({}): run `{rerun}` to write it again",
        .changed.join(", ")
    )]
    Changed {
        changed: Vec<&'static str>,
        rerun: String,
    },
}

/// A kubeconfig as read or fetched, with where it came from (for messages).
pub struct Source {
    pub kubeconfig: Kubeconfig,
    /// `~/.kube/prod.yaml`, `the bastion`.
    pub origin: String,
    /// The context to use; its current context when `None`.
    pub context: Option<String>,
}

impl crate::exit::ExitStatus for KubeconfigError {
    /// A kubeconfig that does not hold what is asked of it is a configuration error (2), as
    /// in `health`; failing to render or write the result is 1.
    fn exit_status(&self) -> u8 {
        match self {
            KubeconfigError::Kube(e) => e.exit_status(),
            KubeconfigError::Render(_) => crate::exit::FAILED,
            // A refused path (a folder others can write) is the user's to fix: the writer's
            // error says which.
            KubeconfigError::Write { source, .. } => crate::exit::ExitStatus::exit_status(source),
            KubeconfigError::ReadTarget { .. } => crate::exit::FAILED,
            _ => crate::exit::USAGE,
        }
    }
}

impl Source {
    /// The kubeconfig `kube::source` chose, as this module takes it.
    pub fn of(chosen: &crate::kube::Chosen) -> Self {
        Source {
            origin: chosen.origin.to_string(),
            context: chosen.context.clone(),
            kubeconfig: chosen.kubeconfig.clone(),
        }
    }

    /// Parses a kubeconfig document.
    #[cfg(test)]
    fn from_yaml(
        text: &str,
        origin: &str,
        context: Option<String>,
    ) -> Result<Self, KubeconfigError> {
        let kubeconfig = crate::kube::parse_fetched_kubeconfig(text)?;
        Ok(Source {
            kubeconfig,
            origin: origin.to_string(),
            context,
        })
    }

    /// Reads a kubeconfig file; relative paths inside it become absolute.
    pub fn read(path: &Path, context: Option<String>) -> Result<Self, KubeconfigError> {
        Ok(Source {
            kubeconfig: crate::kube::read_kubeconfig(path)?,
            origin: path.display().to_string(),
            context,
        })
    }

    fn selected(
        &self,
    ) -> Result<(&NamedContext, &Context, &NamedCluster, &Cluster), KubeconfigError> {
        let origin = || self.origin.clone();
        let name = match (&self.context, &self.kubeconfig.current_context) {
            (Some(c), _) => c.clone(),
            (None, Some(c)) if !c.is_empty() => c.clone(),
            _ => return Err(KubeconfigError::NoCurrentContext { origin: origin() }),
        };
        let named = self
            .kubeconfig
            .contexts
            .iter()
            .find(|c| c.name == name)
            .ok_or_else(|| KubeconfigError::NoContext {
                origin: origin(),
                context: name.clone(),
                known: crate::kube::context_names(&self.kubeconfig),
            })?;
        let no_cluster = || KubeconfigError::NoCluster {
            origin: origin(),
            context: name.clone(),
            cluster: named
                .context
                .as_ref()
                .map(|c| c.cluster.clone())
                .unwrap_or_default(),
        };
        let context = named.context.as_ref().ok_or_else(no_cluster)?;
        let cluster = self
            .kubeconfig
            .clusters
            .iter()
            .find(|c| c.name == context.cluster)
            .ok_or_else(no_cluster)?;
        let inner = cluster.cluster.as_ref().ok_or_else(no_cluster)?;
        Ok((named, context, cluster, inner))
    }

    /// Where the API server is: `api_server` when the profile gives one, else the selected
    /// cluster's server; and the name its certificate carries.
    pub fn upstream(&self, api_server: Option<&HostPort>) -> Result<Upstream, KubeconfigError> {
        let (_, _, named, cluster) = self.selected()?;
        let server = cluster.server.clone().unwrap_or_default();
        let parsed = parse_server(&server).ok_or_else(|| KubeconfigError::BadServer {
            origin: self.origin.clone(),
            cluster: named.name.clone(),
            server: server.clone(),
        })?;
        let (host, port) = match api_server {
            Some(a) => (a.host.clone(), a.port),
            None => (parsed.host.clone(), parsed.port),
        };
        let tls_server_name = parsed
            .https
            .then(|| cluster.tls_server_name.clone().unwrap_or(parsed.host));
        Ok(Upstream {
            host,
            port,
            https: parsed.https,
            path: parsed.path,
            tls_server_name,
        })
    }

    /// The kubeconfig for the forward on `local`: one cluster, user and context named `name`,
    /// the selected context's credentials and namespace, the server at `local`.
    pub fn through_forward(
        &self,
        upstream: &Upstream,
        local: SocketAddr,
        name: &str,
    ) -> Result<Kubeconfig, KubeconfigError> {
        let (_, context, _, cluster) = self.selected()?;
        let mut cluster = cluster.clone();
        cluster.server = Some(format!(
            "{}://{local}{}",
            if upstream.https { "https" } else { "http" },
            upstream.path
        ));
        cluster.tls_server_name = upstream.tls_server_name.clone();
        // The forward is the way there: a proxy would route around it.
        cluster.proxy_url = None;
        let user: Option<NamedAuthInfo> = context.user.as_ref().and_then(|u| {
            self.kubeconfig
                .auth_infos
                .iter()
                .find(|a| &a.name == u)
                .map(|a| NamedAuthInfo {
                    name: name.to_string(),
                    ..a.clone()
                })
        });
        Ok(Kubeconfig {
            api_version: Some("v1".to_string()),
            kind: Some("Config".to_string()),
            clusters: vec![NamedCluster {
                name: name.to_string(),
                cluster: Some(cluster),
                other: Default::default(),
            }],
            contexts: vec![NamedContext {
                name: name.to_string(),
                context: Some(Context {
                    cluster: name.to_string(),
                    user: user.as_ref().map(|u| u.name.clone()),
                    namespace: context.namespace.clone(),
                    extensions: None,
                    other: Default::default(),
                }),
                other: Default::default(),
            }],
            auth_infos: user.into_iter().collect(),
            current_context: Some(name.to_string()),
            ..Kubeconfig::default()
        })
    }
}

/// The exec plugin a healing kubeconfig's user runs:
/// `PROGRAM [--config CONFIG] kube-credential --profile PROFILE`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plugin {
    /// The absolute path of paragon-admin.
    pub program: PathBuf,
    /// The config file, when it is not the default one.
    pub config: Option<PathBuf>,
    pub profile: String,
    /// Where the entry is written: said again by the plugin when it must be rewritten.
    pub written: Written,
}

impl Plugin {
    /// The exec plugin of an entry whose cluster is `cluster` as written.
    fn exec(&self, cluster: &Cluster) -> ExecConfig {
        let mut args = Vec::new();
        if let Some(c) = &self.config {
            args.extend(["--config".to_string(), c.display().to_string()]);
        }
        args.extend([
            "kube-credential".to_string(),
            "--profile".to_string(),
            self.profile.clone(),
        ]);
        ExecConfig {
            api_version: Some(crate::kube::credential::API_VERSION.to_string()),
            command: Some(self.program.display().to_string()),
            args: Some(args),
            install_hint: Some(
                "this entry runs paragon-admin: install it, then run `paragon-admin kubeconfig --write FILE` (or --merge) again"
                    .to_string(),
            ),
            // It never asks: kubectl's stdin stays kubectl's.
            interactive_mode: Some(ExecInteractiveMode::Never),
            provide_cluster_info: false,
            env: Some(stamp::exec_env(&Stamp::of(cluster), &self.written)),
            ..ExecConfig::default()
        }
    }
}

impl Source {
    /// The kubeconfig for the stable forward on `local` whose user runs `plugin` for its
    /// credential: no secret in it. Impersonation (`as`, `as-groups`, ...) of the selected
    /// user is kept, as kubectl applies it on top of any credential.
    pub fn through_plugin(
        &self,
        upstream: &Upstream,
        local: SocketAddr,
        name: &str,
        plugin: &Plugin,
    ) -> Result<Kubeconfig, KubeconfigError> {
        let mut k = self.through_forward(upstream, local, name)?;
        let cluster = k
            .clusters
            .first()
            .and_then(|c| c.cluster.clone())
            .unwrap_or_default();
        let user = k.auth_infos.first().and_then(|u| u.auth_info.clone());
        let keep = user.unwrap_or_default();
        k.auth_infos = vec![NamedAuthInfo {
            name: name.to_string(),
            auth_info: Some(AuthInfo {
                exec: Some(plugin.exec(&cluster)),
                impersonate: keep.impersonate,
                impersonate_uid: keep.impersonate_uid,
                impersonate_groups: keep.impersonate_groups,
                impersonate_user_extra: keep.impersonate_user_extra,
                ..AuthInfo::default()
            }),
            other: Default::default(),
        }];
        if let Some(ctx) = k.contexts.first_mut().and_then(|c| c.context.as_mut()) {
            ctx.user = Some(name.to_string());
        }
        Ok(k)
    }
}

impl Source {
    /// What differs between the stamp of a written entry and the entry this kubeconfig
    /// gives now for the forward on `local`; empty when nothing does.
    pub fn changed_since(
        &self,
        upstream: &Upstream,
        local: SocketAddr,
        written: &Stamp,
    ) -> Result<Vec<&'static str>, KubeconfigError> {
        let k = self.through_forward(upstream, local, "now")?;
        let cluster = k.clusters.first().and_then(|c| c.cluster.clone());
        Ok(written.changes(&Stamp::of(&cluster.unwrap_or_default())))
    }
}

/// The API server as seen from the bastion, and how the forward's kubeconfig reaches it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Upstream {
    pub host: String,
    pub port: u16,
    pub https: bool,
    /// The server URL's path (usually empty).
    pub path: String,
    /// The name TLS verifies against; `None` for plain http.
    pub tls_server_name: Option<String>,
}

impl Upstream {
    /// A placeholder for a port bound before the API server is known.
    pub fn unresolved() -> Upstream {
        Upstream {
            host: String::new(),
            port: 0,
            https: true,
            path: String::new(),
            tls_server_name: None,
        }
    }

    /// The forward named `kubernetes` to this API server, listening on `local_port`.
    pub fn forward(&self, local_port: u16) -> Forward {
        Forward {
            name: "kubernetes".to_string(),
            target: Target::Tunnel {
                host: self.host.clone(),
                port: self.port,
            },
            local_port,
            service: Some(Service {
                name: "kubernetes".to_string(),
                host: self.host.clone(),
                port: self.port,
                local_port,
                scheme: if self.https {
                    Scheme::Https
                } else {
                    Scheme::Http
                },
                path: self.path.clone(),
                // The API server itself: only ever dialed from the bastion.
                via: crate::config::Via::Bastion,
                ca_file: None,
            }),
        }
    }
}

struct Server {
    https: bool,
    host: String,
    port: u16,
    path: String,
}

fn parse_server(url: &str) -> Option<Server> {
    let (https, rest) = if let Some(r) = url.strip_prefix("https://") {
        (true, r)
    } else {
        (false, url.strip_prefix("http://")?)
    };
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], rest[i..].trim_end_matches('/')),
        None => (rest, ""),
    };
    let (host, port) = crate::config::split_host_port(authority, if https { 443 } else { 80 })?;
    if host.is_empty() || host.contains('@') {
        return None;
    }
    Some(Server {
        https,
        host,
        port,
        path: path.to_string(),
    })
}

/// Renders a kubeconfig as YAML.
pub fn to_yaml(k: &Kubeconfig) -> Result<String, KubeconfigError> {
    serde_saphyr::to_string(k).map_err(|e| KubeconfigError::Render(e.to_string()))
}

/// The kubeconfig files kubectl reads by default: `$KUBECONFIG`'s, else `~/.kube/config`.
pub fn default_paths() -> Vec<PathBuf> {
    match std::env::var_os("KUBECONFIG").filter(|v| !v.is_empty()) {
        Some(v) => std::env::split_paths(&v).collect(),
        None => dirs::home_dir()
            .map(|h| vec![h.join(".kube").join("config")])
            .unwrap_or_default(),
    }
}

/// Writes `text` to `path` with mode 0600 (temporary file + rename, so never half-written);
/// a default kubeconfig is only replaced with `force`.
pub fn write_private(path: &Path, text: &str, force: bool) -> Result<(), KubeconfigError> {
    let werr = |source| KubeconfigError::Write {
        path: path.to_path_buf(),
        source,
    };
    check_writable(path, force)?;
    crate::files::write_atomic(path, text.as_bytes(), crate::files::Access::Private).map_err(werr)
}

/// Refuses, unless `force`, to replace an existing default kubeconfig (checked before
/// connecting, so that the mistake costs nothing).
pub fn check_writable(path: &Path, force: bool) -> Result<(), KubeconfigError> {
    if !force && path.exists() && is_default(path) {
        return Err(KubeconfigError::DefaultKubeconfig {
            path: path.to_path_buf(),
        });
    }
    Ok(())
}

fn is_default(path: &Path) -> bool {
    let canon = |p: &Path| std::fs::canonicalize(p).unwrap_or_else(|_| p.to_path_buf());
    let target = canon(path);
    default_paths().iter().any(|d| canon(d) == target)
}

#[cfg(test)]
mod tests {
    use super::*;

    const BASTION_KUBECONFIG: &str = r#"
apiVersion: v1
kind: Config
clusters:
- name: prod
  cluster:
    server: https://api.paragon.internal:6443
    certificate-authority-data: Q0E=
    proxy-url: http://proxy:3128
contexts:
- name: admin@prod
  context:
    cluster: prod
    user: admin
    namespace: paragon
- name: other
  context:
    cluster: nowhere
current-context: admin@prod
users:
- name: admin
  user:
    token: s3cr3t-token
"#;

    fn source() -> Source {
        Source::from_yaml(BASTION_KUBECONFIG, "the bastion", None).unwrap()
    }

    #[test]
    fn upstream_comes_from_the_server_or_the_profile() {
        let s = source();
        let u = s.upstream(None).unwrap();
        assert_eq!((u.host.as_str(), u.port), ("api.paragon.internal", 6443));
        assert_eq!(u.tls_server_name.as_deref(), Some("api.paragon.internal"));
        let api = HostPort::parse("10.0.0.10:6443").unwrap();
        let u = s.upstream(Some(&api)).unwrap();
        assert_eq!((u.host.as_str(), u.port), ("10.0.0.10", 6443));
        assert_eq!(u.tls_server_name.as_deref(), Some("api.paragon.internal"));
    }

    #[test]
    fn rewritten_kubeconfig_points_at_the_forward_and_keeps_credentials() {
        let s = source();
        let u = s.upstream(None).unwrap();
        let k = s
            .through_forward(&u, "127.0.0.1:40000".parse().unwrap(), "paragon-prod")
            .unwrap();
        let yaml = to_yaml(&k).unwrap();
        let back = Kubeconfig::from_yaml(&yaml).unwrap();
        let c = back.clusters[0].cluster.as_ref().unwrap();
        assert_eq!(c.server.as_deref(), Some("https://127.0.0.1:40000"));
        assert_eq!(c.tls_server_name.as_deref(), Some("api.paragon.internal"));
        assert_eq!(c.certificate_authority_data.as_deref(), Some("Q0E="));
        assert_eq!(c.proxy_url, None);
        assert_eq!(back.current_context.as_deref(), Some("paragon-prod"));
        let ctx = back.contexts[0].context.as_ref().unwrap();
        assert_eq!(ctx.namespace.as_deref(), Some("paragon"));
        assert_eq!(ctx.user.as_deref(), Some("paragon-prod"));
        assert!(yaml.contains("s3cr3t-token"), "{yaml}");
        assert_eq!(back.clusters.len(), 1);
        assert_eq!(back.auth_infos.len(), 1);
    }

    #[test]
    fn api_forward_is_named_kubernetes_with_an_https_url() {
        let u = source().upstream(None).unwrap();
        let f = u.forward(0);
        assert_eq!(f.name, "kubernetes");
        assert_eq!(f.target_text().unwrap(), "api.paragon.internal:6443");
        assert_eq!(
            f.url("127.0.0.1:4000".parse().unwrap()),
            "https://127.0.0.1:4000"
        );
    }

    #[test]
    fn missing_context_and_cluster_are_named() {
        let s = Source::from_yaml(BASTION_KUBECONFIG, "k.yaml", Some("nope".into())).unwrap();
        let e = s.upstream(None).unwrap_err().to_string();
        assert_eq!(
            e,
            "k.yaml: context `nope` not found (contexts: admin@prod, other)"
        );
        let s = Source::from_yaml(BASTION_KUBECONFIG, "k.yaml", Some("other".into())).unwrap();
        let e = s.upstream(None).unwrap_err().to_string();
        assert!(
            e.contains("cluster `nowhere` of context `other` not found"),
            "{e}"
        );
    }

    #[test]
    fn parse_errors_do_not_quote_the_document() {
        let Err(e) = Source::from_yaml("users: [token: s3cr3t\n  - :", "the bastion", None) else {
            panic!("parsed garbage");
        };
        assert!(!e.to_string().contains("s3cr3t"), "{e}");
    }

    #[test]
    fn server_urls() {
        let s = parse_server("https://[2001:db8::1]:6443/k8s/").unwrap();
        assert_eq!(
            (s.host.as_str(), s.port, s.path.as_str()),
            ("2001:db8::1", 6443, "/k8s")
        );
        assert_eq!(parse_server("https://api").unwrap().port, 443);
        assert!(parse_server("api:6443").is_none());
    }

    fn plugin() -> Plugin {
        Plugin {
            program: PathBuf::from("/usr/bin/paragon-admin"),
            config: Some(PathBuf::from("/etc/paragon/config.toml")),
            profile: "prod".to_string(),
            written: Written::Merge,
        }
    }

    fn healing(name: &str) -> Kubeconfig {
        let s = source();
        let u = s.upstream(None).unwrap();
        s.through_plugin(&u, "127.0.0.1:24000".parse().unwrap(), name, &plugin())
            .unwrap()
    }

    #[test]
    fn the_healing_kubeconfig_runs_the_plugin_and_holds_no_secret() {
        let yaml = to_yaml(&healing("paragon-prod")).unwrap();
        assert!(!yaml.contains("s3cr3t-token"), "{yaml}");
        let back = Kubeconfig::from_yaml(&yaml).unwrap();
        let c = back.clusters[0].cluster.as_ref().unwrap();
        assert_eq!(c.server.as_deref(), Some("https://127.0.0.1:24000"));
        assert_eq!(c.tls_server_name.as_deref(), Some("api.paragon.internal"));
        assert_eq!(c.certificate_authority_data.as_deref(), Some("Q0E="));
        let user = &back.auth_infos[0];
        assert_eq!(user.name, "paragon-prod");
        let exec = user.auth_info.as_ref().unwrap().exec.as_ref().unwrap();
        assert_eq!(exec.command.as_deref(), Some("/usr/bin/paragon-admin"));
        assert_eq!(
            exec.args.as_deref().unwrap(),
            [
                "--config",
                "/etc/paragon/config.toml",
                "kube-credential",
                "--profile",
                "prod"
            ]
        );
        assert_eq!(
            exec.api_version.as_deref(),
            Some("client.authentication.k8s.io/v1")
        );
        assert_eq!(exec.interactive_mode, Some(ExecInteractiveMode::Never));
        assert!(yaml.contains("provideClusterInfo: false"), "{yaml}");
        // The stamp of the cluster as written, which the plugin checks against the one now.
        let env = exec.env.as_ref().unwrap();
        assert_eq!(env[0]["name"], STAMP_ENV);
        let stamp = Stamp::parse(&env[0]["value"]).unwrap();
        let s = source();
        let u = s.upstream(None).unwrap();
        let local = "127.0.0.1:24000".parse().unwrap();
        assert!(s.changed_since(&u, local, &stamp).unwrap().is_empty());
        let moved = "127.0.0.1:24001".parse().unwrap();
        assert!(!s.changed_since(&u, moved, &stamp).unwrap().is_empty());
        assert_eq!(
            (env[1]["name"].as_str(), env[1]["value"].as_str()),
            (WRITTEN_ENV, "--merge")
        );
        let ctx = back.contexts[0].context.as_ref().unwrap();
        assert_eq!(ctx.user.as_deref(), Some("paragon-prod"));
    }

    #[test]
    fn written_file_is_private_and_default_kubeconfig_needs_force() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("k.yaml");
        write_private(&path, "a: 1\n", false).unwrap();
        write_private(&path, "a: 2\n", false).unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "a: 2\n");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }
}
