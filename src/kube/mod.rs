//! A `kube::Client` whose connections go through a `Dialer`.
//!
//! The kubeconfig comes from a file on this machine or as text fetched from the bastion
//! (kept in memory, never written). The client is kube's own stack (base URI, auth and
//! extra-header layers from `ConfigExt`, hyper-rustls with the kubeconfig's CA and client
//! identity) over a connector that dials through the `Dialer`: the bytes cross a tunnel, but
//! TLS is still verified against the API server's name from the kubeconfig's URL (or its
//! `tls-server-name`). This module knows nothing of SSH.

mod connector;
pub mod list;
pub mod portforward;
pub mod retry;

use std::path::Path;
use std::sync::Arc;

use kube::client::ConfigExt;
use kube::config::{KubeConfigOptions, Kubeconfig};

use crate::config::HostPort;
use crate::dial::Dialer;

pub use connector::DialConnector;

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
    #[error("kubeconfig: {message}")]
    Config { message: String },
    #[error("the kubeconfig's server `{url}` has no host")]
    NoHost { url: String },
    #[error("cannot set up the Kubernetes client: {message}")]
    Client { message: String },
}

impl crate::exit::ExitStatus for KubeError {
    /// The kubeconfig the user named is at fault (usage/configuration, 2), else 1.
    fn exit_status(&self) -> u8 {
        match self {
            KubeError::ReadFile { .. } | KubeError::Config { .. } | KubeError::NoHost { .. } => {
                crate::exit::USAGE
            }
            _ => crate::exit::FAILED,
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

/// Reads a kubeconfig file; relative paths inside it are taken from its folder, as kubectl does.
pub fn read_kubeconfig(path: &Path) -> Result<Kubeconfig, KubeError> {
    Kubeconfig::read_from(path).map_err(|e| KubeError::ReadFile {
        path: path.display().to_string(),
        message: one_line(&e),
    })
}

/// Parses the kubeconfig text fetched from the bastion (`FETCH_KUBECONFIG`). The error never
/// quotes the text: it holds credentials. Credential plugins (`exec`, `auth-provider`) are
/// refused: they name programs on the bastion, and would run here instead.
pub fn parse_fetched_kubeconfig(text: &str) -> Result<Kubeconfig, KubeError> {
    let k = Kubeconfig::from_yaml(text).map_err(|e| KubeError::Parse {
        message: redacted_parse_error(&e),
    })?;
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

fn redacted_parse_error(e: &kube::config::KubeconfigError) -> String {
    // serde-saphyr messages may quote the offending scalar; keep only the kind of failure.
    let s = e.to_string();
    s.split(':')
        .next()
        .unwrap_or("invalid YAML")
        .trim()
        .to_string()
}

/// The command that prints the bastion's own kubeconfig with its credentials inlined.
pub const FETCH_KUBECONFIG: &str = "kubectl config view --raw --minify --flatten";

/// A client for the cluster that `kubeconfig` and `options` name, connecting through `dialer`.
pub async fn client(
    dialer: Arc<dyn Dialer>,
    kubeconfig: Kubeconfig,
    options: &Options,
) -> Result<kube::Client, KubeError> {
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
        .layer(retry::layer())
        .option_layer(config.auth_layer().map_err(err)?)
        .layer(config.extra_headers_layer().map_err(err)?)
        .map_err(tower::BoxError::from)
        .service(hyper_client);
    Ok(kube::Client::new(service, config.default_namespace))
}

/// The `User-Agent` of every API request.
pub const USER_AGENT: &str = concat!("paragon-admin/", env!("CARGO_PKG_VERSION"));

/// An error and its causes on one line.
pub(crate) fn one_line(e: &(dyn std::error::Error + 'static)) -> String {
    let mut parts = vec![e.to_string()];
    let mut cur = e.source();
    while let Some(c) = cur {
        let s = c.to_string();
        if !parts.iter().any(|p| p.contains(&s)) {
            parts.push(s);
        }
        cur = c.source();
    }
    parts.join(": ").replace('\n', " ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fetched_kubeconfig_with_an_exec_plugin_is_refused() {
        let text = "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster:\n    server: https://10.0.0.1:6443\n\
                    users:\n- name: eks\n  user:\n    exec:\n      apiVersion: client.authentication.k8s.io/v1beta1\n      command: aws\n\
                    contexts:\n- name: c\n  context:\n    cluster: c\n    user: eks\ncurrent-context: c\n";
        let e = parse_fetched_kubeconfig(text).unwrap_err().to_string();
        assert!(e.contains("plugin `aws`"), "{e}");
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
}
