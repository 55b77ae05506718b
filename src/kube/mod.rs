//! A `kube::Client` whose connections go through a `Dialer`.
//!
//! The kubeconfig comes from a file on this machine or as text fetched from the bastion
//! (kept in memory, never written). The client is kube's own stack (base URI, gzip, auth and
//! extra-header layers from `ConfigExt`, hyper-rustls with the kubeconfig's CA and client
//! identity) over a connector that dials through the `Dialer`: the bytes cross a tunnel, but
//! TLS is still verified against the API server's name from the kubeconfig's URL (or its
//! `tls-server-name`). This module knows nothing of SSH but the bastion's `exec_capture`, which
//! `source` uses to fetch the bastion's own kubeconfig.

mod connector;
pub mod credential;
pub mod list;
pub mod portforward;
pub mod retry;
pub mod source;
pub mod tunnel;

use std::path::Path;
use std::sync::Arc;

use kube::client::ConfigExt;
use kube::config::{KubeConfigOptions, Kubeconfig};

use crate::config::HostPort;
use crate::dial::Dialer;

pub use connector::DialConnector;
pub use source::{Chosen, FetchError, Flags, Origin, ProfileKube, SourceError};

/// The installation's namespace (PARAGON.md: every release is in `paragon`): where bare
/// Service names are looked up.
pub const NAMESPACE: &str = "paragon";

#[derive(Debug, thiserror::Error)]
pub enum KubeError {
    #[error("cannot read the kubeconfig {path}: {message}")]
    ReadFile { path: String, message: String },
    #[error("the kubeconfig fetched from the bastion is not valid: {message}")]
    Parse { message: String },
    #[error(
        "the bastion's kubeconfig user `{user}` gets its credentials from the plugin `{plugin}`, which would run on this machine: pass --kubeconfig FILE or set kube.kubeconfig"
    )]
    Plugin { user: String, plugin: String },
    #[error(
        "the bastion's kubeconfig names a file on this machine in `{field}` of {entry}: a kubeconfig fetched from the bastion may carry inline data only (`{inline}`); inline it on the bastion, or pass --kubeconfig FILE or set kube.kubeconfig"
    )]
    FileReference {
        field: &'static str,
        entry: String,
        inline: &'static str,
    },
    #[error("kubeconfig: {message}")]
    Config { message: String },
    #[error("{origin}: context `{context}` not found (contexts: {known})")]
    NoContext {
        origin: String,
        context: String,
        known: String,
    },
    #[error("the kubeconfig's server `{url}` has no host")]
    NoHost { url: String },
    #[error("cannot set up the Kubernetes client: {message}")]
    Client { message: String },
}

impl crate::exit::ExitStatus for KubeError {
    /// A kubeconfig that cannot be used, named here or fetched, is a configuration error
    /// (2) in every command; a client that cannot be set up is 1.
    fn exit_status(&self) -> u8 {
        match self {
            KubeError::Client { .. } => crate::exit::FAILED,
            _ => crate::exit::USAGE,
        }
    }
}

/// Which kubeconfig, which context, and where to dial the API server.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// The kubeconfig context; else its current context.
    pub context: Option<String>,
    /// Dial this HOST:PORT (as seen from the dialer) instead of the server URL's host and port;
    /// TLS is still verified against the URL's host name.
    pub api_server: Option<HostPort>,
}

/// Reads a kubeconfig file; relative paths inside it are taken from its folder, as kubectl
/// does. The one reader of kubeconfig files (through `source`). A YAML error keeps its
/// line breaks: it points into the user's own file, line and column under each other.
pub fn read_kubeconfig(path: &Path) -> Result<Kubeconfig, KubeError> {
    Kubeconfig::read_from(path).map_err(|e| KubeError::ReadFile {
        path: path.display().to_string(),
        // kube's own message names the path again, in Debug quotes ('"/x/kc"'): the path is
        // said once, by this error.
        message: match &e {
            kube::config::KubeconfigError::ReadConfig(io, _) => io.to_string(),
            _ => with_causes(&e),
        },
    })
}

/// Parses the kubeconfig text fetched from the bastion (`FETCH_KUBECONFIG`). The error never
/// quotes the text: it holds credentials. The bastion must not be able to make this machine
/// read its own files or run its programs: a file reference (`tokenFile`,
/// `client-certificate`, `client-key`, `certificate-authority`) would be read here (and sent
/// as a credential to a server of the bastion's choosing), and a credential plugin (`exec`,
/// `auth-provider`) would run here. Both are refused; inline data is what a fetched
/// kubeconfig may carry.
pub fn parse_fetched_kubeconfig(text: &str) -> Result<Kubeconfig, KubeError> {
    let k = Kubeconfig::from_yaml(text).map_err(|e| KubeError::Parse {
        message: redacted_parse_error(&e),
    })?;
    refuse_file_references(&k)?;
    for user in &k.auth_infos {
        let Some(auth) = &user.auth_info else {
            continue;
        };
        let plugin = match (&auth.exec, &auth.auth_provider) {
            (Some(exec), _) => exec.command.clone().unwrap_or_else(|| "exec".into()),
            (None, Some(p)) => p.name.clone(),
            (None, None) => continue,
        };
        return Err(KubeError::Plugin {
            user: user.name.clone(),
            plugin,
        });
    }
    Ok(k)
}

/// The first file reference in a fetched kubeconfig, as an error naming the field and entry.
fn refuse_file_references(k: &Kubeconfig) -> Result<(), KubeError> {
    let set = |v: &Option<String>| v.as_deref().is_some_and(|p| !p.is_empty());
    for cluster in &k.clusters {
        if cluster
            .cluster
            .as_ref()
            .is_some_and(|c| set(&c.certificate_authority))
        {
            return Err(KubeError::FileReference {
                field: "certificate-authority",
                entry: format!("cluster `{}`", cluster.name),
                inline: "certificate-authority-data",
            });
        }
    }
    for user in &k.auth_infos {
        let Some(auth) = &user.auth_info else {
            continue;
        };
        let found = [
            (&auth.token_file, "tokenFile", "token"),
            (
                &auth.client_certificate,
                "client-certificate",
                "client-certificate-data",
            ),
            (&auth.client_key, "client-key", "client-key-data"),
        ]
        .into_iter()
        .find(|(value, _, _)| set(value));
        if let Some((_, field, inline)) = found {
            return Err(KubeError::FileReference {
                field,
                entry: format!("user `{}`", user.name),
                inline,
            });
        }
    }
    Ok(())
}

fn redacted_parse_error(e: &kube::config::KubeconfigError) -> String {
    // serde-saphyr messages may quote the offending scalar; keep only the kind of failure.
    let s = e.to_string();
    s.split(':')
        .next()
        .unwrap_or("invalid YAML")
        .trim()
        .to_string()
}

/// A client of an in-process sandbox's API, dialed from this machine (for tests).
#[cfg(test)]
pub(crate) async fn sandbox_client(sandbox: &crate::sandbox::Sandbox) -> kube::Client {
    let kubeconfig = Kubeconfig::from_yaml(&sandbox.kubeconfig_yaml()).unwrap();
    let dialer = Arc::new(crate::dial::Direct::default());
    client(dialer, kubeconfig, &Options::default())
        .await
        .unwrap()
}

/// The command that prints the bastion's own kubeconfig with its credentials inlined.
pub const FETCH_KUBECONFIG: &str = "kubectl config view --raw --minify --flatten";

/// A client for the cluster that `kubeconfig` and `options` name, connecting through `dialer`.
pub async fn client(
    dialer: Arc<dyn Dialer>,
    kubeconfig: Kubeconfig,
    options: &Options,
) -> Result<kube::Client, KubeError> {
    if let Some(context) = &options.context
        && !kubeconfig.contexts.iter().any(|c| &c.name == context)
    {
        return Err(KubeError::NoContext {
            origin: "the kubeconfig".to_string(),
            context: context.clone(),
            known: context_names(&kubeconfig),
        });
    }
    let kube_options = KubeConfigOptions {
        context: options.context.clone(),
        ..Default::default()
    };
    let config = kube::Config::from_custom_kubeconfig(kubeconfig, &kube_options)
        .await
        .map_err(|e| KubeError::Config {
            message: one_line(&e),
        })?;
    client_from_config(dialer, config, options.api_server.clone())
}

/// A client from a ready `kube::Config`, connecting through `dialer`.
pub fn client_from_config(
    dialer: Arc<dyn Dialer>,
    mut config: kube::Config,
    api_server: Option<HostPort>,
) -> Result<kube::Client, KubeError> {
    let url = config.cluster_url.clone();
    if url.host().is_none() {
        return Err(KubeError::NoHost {
            url: url.to_string(),
        });
    }
    let err = |e: kube::Error| KubeError::Client {
        message: one_line(&e),
    };
    // API audit logs show who asked.
    config.headers.push((
        http::header::USER_AGENT,
        http::HeaderValue::from_static(USER_AGENT),
    ));
    let connector = DialConnector::new(dialer, api_server);
    // The URL's host stays the TLS server name (unless the kubeconfig names another), so the
    // certificate is checked against the real API server even though we dial elsewhere.
    let https = config
        .rustls_https_connector_with_connector(connector)
        .map_err(err)?;
    let hyper_client: hyper_util::client::legacy::Client<_, kube::client::Body> =
        hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
            .build(https);
    let service = tower::ServiceBuilder::new()
        .layer(config.base_uri_layer())
        // Accept-Encoding: gzip, and the answer inflated as it streams (kubeconfig's
        // `disable-compression: true` turns it off, as for kubectl).
        .layer(
            tower_http::decompression::DecompressionLayer::new()
                .no_br()
                .no_deflate()
                .no_zstd()
                .gzip(!config.disable_compression),
        )
        .layer(retry::layer())
        .option_layer(config.auth_layer().map_err(err)?)
        .layer(config.extra_headers_layer().map_err(err)?)
        .map_err(tower::BoxError::from)
        .service(hyper_client);
    Ok(kube::Client::new(service, config.default_namespace))
}

/// The `User-Agent` of every API request.
pub const USER_AGENT: &str = concat!("paragon-admin/", env!("CARGO_PKG_VERSION"));

/// An error and its causes, each said once (kube's and hyper's errors repeat their cause in
/// their own message), line breaks kept.
fn with_causes(e: &(dyn std::error::Error + 'static)) -> String {
    // kube's and hyper's wrappers ("ServiceError: client error (Connect)") tell a user
    // nothing the cause after them does not.
    let library = |p: &str| {
        ["ServiceError: ", "HyperError: ", "client error ("]
            .iter()
            .any(|w| p.starts_with(w))
    };
    let mut parts: Vec<String> = Vec::new();
    let mut cur = Some(e);
    while let Some(c) = cur {
        // kube's Display of an API error appends the `Status` object's Debug form.
        let s = match c.downcast_ref::<kube::Error>() {
            Some(kube::Error::Api(status)) => status_sentence(status),
            _ => c.to_string(),
        };
        let wrapper = library(&s) && c.source().is_some();
        if !wrapper && !parts.iter().any(|p| p.contains(&s)) {
            parts.push(s);
        }
        cur = c.source();
    }
    parts.join(": ")
}

/// An API error as one sentence: the HTTP status and the server's message (`500 Internal
/// Server Error: etcdserver: request timed out`), never the `Status` object's Debug form.
pub fn status_sentence(s: &kube::core::Status) -> String {
    let head = match http::StatusCode::from_u16(s.code)
        .ok()
        .and_then(|c| c.canonical_reason())
    {
        Some(reason) => format!("{} {reason}", s.code),
        None => format!("HTTP {}", s.code),
    };
    let message =
        crate::text::printable(&s.message.split_whitespace().collect::<Vec<_>>().join(" "));
    if message.is_empty() {
        head
    } else {
        format!("{head}: {message}")
    }
}

/// An error and its causes on one line.
pub(crate) fn one_line(e: &(dyn std::error::Error + 'static)) -> String {
    with_causes(e).replace('\n', " ")
}

/// The names of a kubeconfig's contexts, for an error that lists the ones there are.
pub fn context_names(kubeconfig: &Kubeconfig) -> String {
    kubeconfig
        .contexts
        .iter()
        .map(|c| c.name.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_api_error_reads_without_debug_dumps_or_library_wrappers() {
        let status: kube::core::Status = serde_json::from_value(serde_json::json!({
            "kind": "Status", "status": "Failure", "code": 401, "reason": "Unauthorized",
            "message": "Unauthorized"}))
        .unwrap();
        let e = kube::Error::Api(Box::new(status));
        assert_eq!(one_line(&e), "401 Unauthorized: Unauthorized");
        let io = std::io::Error::new(
            std::io::ErrorKind::ConnectionRefused,
            "cannot connect to 127.0.0.1:1: Connection refused",
        );
        let e = kube::Error::Service(Box::new(io));
        assert_eq!(
            one_line(&e),
            "cannot connect to 127.0.0.1:1: Connection refused"
        );
    }

    #[test]
    fn fetched_kubeconfig_with_an_exec_plugin_is_refused() {
        let text = "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster:\n    server: https://10.0.0.1:6443\n\
                    users:\n- name: eks\n  user:\n    exec:\n      apiVersion: client.authentication.k8s.io/v1beta1\n      command: aws\n\
                    contexts:\n- name: c\n  context:\n    cluster: c\n    user: eks\ncurrent-context: c\n";
        let e = parse_fetched_kubeconfig(text).unwrap_err().to_string();
        assert!(e.contains("plugin `aws`"), "{e}");
    }

    /// A kubeconfig whose cluster and user carry `extra` lines (at their indentation).
    fn fetched(cluster_extra: &str, user_extra: &str) -> String {
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster:\n    server: https://10.0.0.1:6443\n{cluster_extra}\
             users:\n- name: ops\n  user:\n    token: abc\n{user_extra}\
             contexts:\n- name: c\n  context:\n    cluster: c\n    user: ops\ncurrent-context: c\n"
        )
    }

    #[test]
    fn fetched_kubeconfig_with_a_file_reference_is_refused_naming_the_field() {
        for (cluster, user, field, entry) in [
            (
                "",
                "    tokenFile: /home/ops/.vault-token\n",
                "`tokenFile`",
                "user `ops`",
            ),
            (
                "",
                "    client-certificate: /etc/x.crt\n",
                "`client-certificate`",
                "user `ops`",
            ),
            (
                "",
                "    client-key: /etc/x.key\n",
                "`client-key`",
                "user `ops`",
            ),
            (
                "    certificate-authority: /etc/ca.crt\n",
                "",
                "`certificate-authority`",
                "cluster `c`",
            ),
        ] {
            let e = parse_fetched_kubeconfig(&fetched(cluster, user)).unwrap_err();
            assert!(matches!(e, KubeError::FileReference { .. }), "{e}");
            let e = e.to_string();
            assert!(e.contains(field) && e.contains(entry), "{e}");
        }
        let inline = fetched(
            "    certificate-authority-data: Zm9v\n",
            "    client-certificate-data: Zm9v\n    client-key-data: Zm9v\n",
        );
        assert!(parse_fetched_kubeconfig(&inline).is_ok());
    }

    #[tokio::test]
    async fn an_unknown_context_lists_the_contexts_there_are() {
        let k = Kubeconfig::from_yaml(&fetched("", "")).unwrap();
        let options = Options {
            context: Some("nope".into()),
            api_server: None,
        };
        let Err(e) = client(Arc::new(crate::dial::Direct::default()), k, &options).await else {
            panic!("a client for a context that does not exist");
        };
        assert_eq!(
            e.to_string(),
            "the kubeconfig: context `nope` not found (contexts: c)"
        );
        assert_eq!(crate::exit::ExitStatus::exit_status(&e), crate::exit::USAGE);
    }

    #[test]
    fn a_yaml_error_in_a_local_kubeconfig_keeps_its_line_breaks() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("k.yaml");
        std::fs::write(
            &path,
            "apiVersion: v1\nclusters:\n  - name: [c\n    x: : y\n",
        )
        .unwrap();
        let e = read_kubeconfig(&path).unwrap_err();
        let KubeError::ReadFile { message, .. } = &e else {
            panic!("{e}");
        };
        assert!(message.contains('\n'), "{message}");
        assert_eq!(crate::exit::ExitStatus::exit_status(&e), crate::exit::USAGE);
    }

    #[test]
    fn a_parse_error_does_not_quote_the_text() {
        let e = parse_fetched_kubeconfig("token: [sekrit-value\n")
            .unwrap_err()
            .to_string();
        assert!(!e.contains("sekrit"), "{e}");
    }
}

#[cfg(test)]
mod dial_tests {
    use super::*;
    use crate::dial::{DialFuture, Direct};
    use crate::sandbox::{Sandbox, SandboxOptions};
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// Dials directly and counts, to prove every connection goes through the dialer.
    struct Counting(Direct, AtomicUsize);

    impl Dialer for Counting {
        fn connect<'a>(&'a self, host: &'a str, port: u16) -> DialFuture<'a> {
            self.1.fetch_add(1, Ordering::SeqCst);
            self.0.connect(host, port)
        }
        fn describe(&self) -> String {
            "counting".into()
        }
    }

    /// The sandbox's kubeconfig with its server renamed to `host` (any port): only the dialer,
    /// told `api_server`, knows where the server really is.
    async fn renamed(sandbox: &Sandbox, host: &str) -> Kubeconfig {
        let text = sandbox
            .kubeconfig_yaml()
            .replace(&sandbox.server_url(), &format!("https://{host}:6443"));
        Kubeconfig::from_yaml(&text).unwrap()
    }

    #[tokio::test]
    async fn requests_go_through_the_dialer_and_tls_checks_the_url_host() {
        let sandbox = Sandbox::start(SandboxOptions::default()).await.unwrap();
        let dialer = Arc::new(Counting(Direct::default(), AtomicUsize::new(0)));
        let options = Options {
            context: None,
            api_server: Some(HostPort {
                host: sandbox.addr().ip().to_string(),
                port: sandbox.addr().port(),
            }),
        };
        // `kubernetes.default` is in the serving certificate: verification passes.
        let c = client(
            dialer.clone(),
            renamed(&sandbox, "kubernetes.default").await,
            &options,
        )
        .await
        .unwrap();
        let v = c.apiserver_version().await.unwrap();
        assert!(v.git_version.starts_with("v1."), "{v:?}");
        assert!(dialer.1.load(Ordering::SeqCst) >= 1);

        // A name the certificate does not hold: the handshake fails, even through a tunnel.
        let c = client(
            dialer.clone(),
            renamed(&sandbox, "api.elsewhere.test").await,
            &options,
        )
        .await
        .unwrap();
        let e = c.apiserver_version().await.unwrap_err();
        let msg = one_line(&e);
        assert!(msg.to_lowercase().contains("certificate"), "{msg}");
        sandbox.shutdown().await;
    }

    /// Dials directly and counts the bytes every stream reads.
    struct Metered(Direct, Arc<AtomicUsize>);

    struct MeteredStream(crate::dial::BoxStream, Arc<AtomicUsize>);

    impl Dialer for Metered {
        fn connect<'a>(&'a self, host: &'a str, port: u16) -> DialFuture<'a> {
            Box::pin(async move {
                let s = self.0.connect(host, port).await?;
                Ok(Box::new(MeteredStream(s, self.1.clone())) as crate::dial::BoxStream)
            })
        }
        fn describe(&self) -> String {
            "metered".into()
        }
    }

    impl tokio::io::AsyncRead for MeteredStream {
        fn poll_read(
            mut self: std::pin::Pin<&mut Self>,
            cx: &mut std::task::Context<'_>,
            buf: &mut tokio::io::ReadBuf<'_>,
        ) -> std::task::Poll<std::io::Result<()>> {
            let before = buf.filled().len();
            let r = std::pin::Pin::new(&mut self.0).poll_read(cx, buf);
            self.1
                .fetch_add(buf.filled().len() - before, Ordering::SeqCst);
            r
        }
    }

    impl tokio::io::AsyncWrite for MeteredStream {
        fn poll_write(
            mut self: std::pin::Pin<&mut Self>,
            cx: &mut std::task::Context<'_>,
            buf: &[u8],
        ) -> std::task::Poll<std::io::Result<usize>> {
            std::pin::Pin::new(&mut self.0).poll_write(cx, buf)
        }
        fn poll_flush(
            mut self: std::pin::Pin<&mut Self>,
            cx: &mut std::task::Context<'_>,
        ) -> std::task::Poll<std::io::Result<()>> {
            std::pin::Pin::new(&mut self.0).poll_flush(cx)
        }
        fn poll_shutdown(
            mut self: std::pin::Pin<&mut Self>,
            cx: &mut std::task::Context<'_>,
        ) -> std::task::Poll<std::io::Result<()>> {
            std::pin::Pin::new(&mut self.0).poll_shutdown(cx)
        }
    }

    /// A list comes gzipped (the API server gzips answers past 128 KiB when asked, as
    /// client-go asks): through the dialer it is a fraction of its JSON. A kubeconfig's
    /// `disable-compression: true` gets it plain, as kubectl does.
    #[tokio::test]
    async fn lists_come_gzipped_unless_the_kubeconfig_disables_compression() {
        use k8s_openapi::api::core::v1::Pod;
        use kube::api::{Api, ListParams};
        let sandbox = Sandbox::start(SandboxOptions {
            pods: 2000,
            ..SandboxOptions::default()
        })
        .await
        .unwrap();
        for disable in [false, true] {
            let read = Arc::new(AtomicUsize::new(0));
            let mut kubeconfig = Kubeconfig::from_yaml(&sandbox.kubeconfig_yaml()).unwrap();
            for c in &mut kubeconfig.clusters {
                c.cluster.as_mut().unwrap().disable_compression = Some(disable);
            }
            let options = Options {
                context: None,
                api_server: None,
            };
            let dialer = Arc::new(Metered(Direct::default(), read.clone()));
            let c = client(dialer, kubeconfig, &options).await.unwrap();
            let pods = Api::<Pod>::all(c)
                .list(&ListParams::default())
                .await
                .unwrap();
            assert!(pods.items.len() >= 2000, "{}", pods.items.len());
            let json = serde_json::to_vec(&pods).unwrap().len();
            let wire = read.load(Ordering::SeqCst);
            if disable {
                assert!(
                    wire > json / 2,
                    "plain: {wire} bytes read for {json} of JSON"
                );
            } else {
                assert!(
                    wire < json / 4,
                    "gzipped: {wire} bytes read for {json} of JSON"
                );
            }
        }
        sandbox.shutdown().await;
    }
}
