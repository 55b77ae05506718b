//! The user's credential from a kubeconfig, handed to kubectl as an exec plugin's
//! `ExecCredential` (`client.authentication.k8s.io/v1`): a bearer token, or a client
//! certificate and key as PEM, with an expiry.
//!
//! client-go (`plugin/pkg/client/auth/exec`) keeps a credential without
//! `expirationTimestamp` for the life of the process and runs the plugin again only after a
//! 401; with one, it runs the plugin again once it has passed. A short expiry is what makes a
//! long-running client (k9s, Lens) ask again, so that the plugin brings a dropped forward back
//! and a rotated credential is picked up.
//!
//! The credential stays in memory: it is printed on stdout for kubectl and nowhere else, and
//! its `Debug` is redacted. This module knows kubeconfigs and client-go's exec protocol; it
//! knows nothing of SSH, forwards or commands.

use std::path::Path;

use base64::Engine;
use kube::config::{AuthInfo, Kubeconfig};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};

use crate::exit::{self, ExitStatus};

/// The exec credential API version client-go is asked for and answered in.
pub const API_VERSION: &str = "client.authentication.k8s.io/v1";

/// The environment variable client-go passes the request in.
pub const EXEC_INFO_ENV: &str = "KUBERNETES_EXEC_INFO";

/// How long kubectl may use a credential before it runs the plugin again.
pub const LIFETIME_SECS: i64 = 600;

#[derive(Debug, thiserror::Error)]
pub enum CredentialError {
    #[error("{origin}: no current-context: set `context` in the profile's [kube] table")]
    NoCurrentContext { origin: String },
    #[error("{origin}: context `{context}` not found (contexts: {known})")]
    NoContext {
        origin: String,
        context: String,
        known: String,
    },
    #[error("{origin}: context `{context}` names no user, so there is no credential to hand on")]
    NoUser { origin: String, context: String },
    #[error("{origin}: user `{user}` not found")]
    UnknownUser { origin: String, user: String },
    #[error(
        "{origin}: user `{user}` gets its credential from the plugin `{plugin}`: kube-credential hands on a token or a client certificate only; point kube.kubeconfig at a kubeconfig that holds one"
    )]
    Plugin {
        origin: String,
        user: String,
        plugin: String,
    },
    #[error(
        "{origin}: user `{user}` logs in with a user name and password, which an exec credential cannot carry; use a token or a client certificate"
    )]
    BasicAuth { origin: String, user: String },
    #[error(
        "{origin}: user `{user}` has no token and no client certificate: add one (token, client-certificate-data and client-key-data)"
    )]
    Nothing { origin: String, user: String },
    #[error("{origin}: user `{user}` has a `{have}` but no `{missing}`: add it")]
    HalfPair {
        origin: String,
        user: String,
        have: &'static str,
        missing: &'static str,
    },
    #[error("{origin}: `{field}` of user `{user}` is not valid base64-encoded text")]
    BadData {
        origin: String,
        user: String,
        field: &'static str,
    },
    #[error("cannot read `{field}` {path} of user `{user}`: {cause}")]
    ReadFile {
        user: String,
        field: &'static str,
        path: String,
        cause: std::io::Error,
    },
    #[error(
        "{EXEC_INFO_ENV} asks for `{asked}`; kube-credential answers {API_VERSION}: set the exec apiVersion to it (run `paragon-admin kubeconfig --write` again)"
    )]
    Version { asked: String },
    #[error("{EXEC_INFO_ENV} is not an ExecCredential: {message}")]
    ExecInfo { message: String },
}

impl ExitStatus for CredentialError {
    /// A kubeconfig or an exec set-up that cannot give a credential is a configuration error
    /// (2); a file that cannot be read is the machine's (1).
    fn exit_status(&self) -> u8 {
        match self {
            CredentialError::ReadFile { .. } => exit::FAILED,
            _ => exit::USAGE,
        }
    }
}

/// A user's credential: a token, a client certificate and key (PEM), or both.
pub struct Credential {
    token: Option<SecretString>,
    client_certificate: Option<String>,
    client_key: Option<SecretString>,
}

impl std::fmt::Debug for Credential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credential")
            .field("token", &self.token.as_ref().map(|_| "[redacted]"))
            .field("client_certificate", &self.client_certificate.is_some())
            .field(
                "client_key",
                &self.client_key.as_ref().map(|_| "[redacted]"),
            )
            .finish()
    }
}

/// What client-go asked for, from `KUBERNETES_EXEC_INFO`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExecInfo {
    /// Whether the plugin may talk to the user (stdin is theirs).
    pub interactive: bool,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ExecRequest {
    api_version: Option<String>,
    #[serde(default)]
    spec: RequestSpec,
}

#[derive(Default, Deserialize)]
struct RequestSpec {
    #[serde(default)]
    interactive: bool,
}

/// Reads client-go's request (the value of `KUBERNETES_EXEC_INFO`). Without one (run by
/// hand), the plugin is interactive when `terminal` says stdin is a terminal.
pub fn exec_info(value: Option<&str>, terminal: bool) -> Result<ExecInfo, CredentialError> {
    let Some(text) = value.filter(|v| !v.trim().is_empty()) else {
        return Ok(ExecInfo {
            interactive: terminal,
        });
    };
    let request: ExecRequest =
        serde_json::from_str(text).map_err(|e| CredentialError::ExecInfo {
            message: e.to_string(),
        })?;
    match request.api_version.as_deref() {
        Some(API_VERSION) => Ok(ExecInfo {
            interactive: request.spec.interactive,
        }),
        asked => Err(CredentialError::Version {
            asked: asked.unwrap_or("no apiVersion").to_string(),
        }),
    }
}

impl Credential {
    /// The credential of the kubeconfig `kube::source` chose (flag > profile > the bastion's
    /// own, fetched into memory), for its context.
    pub fn from_chosen(chosen: &super::Chosen) -> Result<Credential, CredentialError> {
        Self::from_kubeconfig(
            &chosen.kubeconfig,
            chosen.context.as_deref(),
            &chosen.origin.to_string(),
        )
    }

    /// The credential of `context` (else the current context) in `kubeconfig`; `origin`
    /// names it in messages. File references are read here: a kubeconfig fetched from the
    /// bastion has had them refused already (`parse_fetched_kubeconfig`).
    pub fn from_kubeconfig(
        kubeconfig: &Kubeconfig,
        context: Option<&str>,
        origin: &str,
    ) -> Result<Credential, CredentialError> {
        let origin_s = || origin.to_string();
        let name = match (context, &kubeconfig.current_context) {
            (Some(c), _) => c.to_string(),
            (None, Some(c)) if !c.is_empty() => c.clone(),
            _ => return Err(CredentialError::NoCurrentContext { origin: origin_s() }),
        };
        let ctx = kubeconfig
            .contexts
            .iter()
            .find(|c| c.name == name)
            .ok_or_else(|| CredentialError::NoContext {
                origin: origin_s(),
                context: name.clone(),
                known: super::context_names(kubeconfig),
            })?;
        let user = ctx
            .context
            .as_ref()
            .and_then(|c| c.user.clone())
            .filter(|u| !u.is_empty())
            .ok_or_else(|| CredentialError::NoUser {
                origin: origin_s(),
                context: name.clone(),
            })?;
        let auth = kubeconfig
            .auth_infos
            .iter()
            .find(|a| a.name == user)
            .and_then(|a| a.auth_info.as_ref())
            .ok_or_else(|| CredentialError::UnknownUser {
                origin: origin_s(),
                user: user.clone(),
            })?;
        Self::from_auth_info(auth, &user, origin)
    }

    fn from_auth_info(
        auth: &AuthInfo,
        user: &str,
        origin: &str,
    ) -> Result<Credential, CredentialError> {
        let plugin = match (&auth.exec, &auth.auth_provider) {
            (Some(exec), _) => Some(exec.command.clone().unwrap_or_else(|| "exec".into())),
            (None, Some(p)) => Some(p.name.clone()),
            (None, None) => None,
        };
        if let Some(plugin) = plugin {
            return Err(CredentialError::Plugin {
                origin: origin.to_string(),
                user: user.to_string(),
                plugin,
            });
        }
        let token = match (&auth.token, &auth.token_file) {
            (Some(t), _) if !t.expose_secret().is_empty() => Some(t.clone()),
            (_, Some(path)) if !path.is_empty() => {
                let text = read_file(path, "tokenFile", user)?;
                Some(SecretString::from(text.trim().to_string()))
            }
            _ => None,
        };
        let certificate = pem_of(
            auth.client_certificate_data.as_deref(),
            auth.client_certificate.as_deref(),
            ("client-certificate-data", "client-certificate"),
            user,
            origin,
        )?;
        let key = pem_of(
            auth.client_key_data.as_ref().map(|k| k.expose_secret()),
            auth.client_key.as_deref(),
            ("client-key-data", "client-key"),
            user,
            origin,
        )?;
        let half = |have, missing| CredentialError::HalfPair {
            origin: origin.to_string(),
            user: user.to_string(),
            have,
            missing,
        };
        let (client_certificate, client_key) = match (certificate, key) {
            (Some(c), Some(k)) => (Some(c), Some(SecretString::from(k))),
            (Some(_), None) => return Err(half("client-certificate-data", "client-key-data")),
            (None, Some(_)) => return Err(half("client-key-data", "client-certificate-data")),
            (None, None) => (None, None),
        };
        if token.is_none() && client_certificate.is_none() {
            let basic = auth.username.is_some() || auth.password.is_some();
            return Err(if basic {
                CredentialError::BasicAuth {
                    origin: origin.to_string(),
                    user: user.to_string(),
                }
            } else {
                CredentialError::Nothing {
                    origin: origin.to_string(),
                    user: user.to_string(),
                }
            });
        }
        Ok(Credential {
            token,
            client_certificate,
            client_key,
        })
    }

    /// The `ExecCredential` JSON kubectl reads on the plugin's stdout, valid until
    /// `now_secs` (Unix seconds) plus `LIFETIME_SECS`. Holds the secret: for stdout only.
    pub fn to_exec_credential(&self, info: ExecInfo, now_secs: i64) -> String {
        let expiry = jiff::Timestamp::from_second(now_secs.saturating_add(LIFETIME_SECS))
            .unwrap_or(jiff::Timestamp::MAX);
        let answer = ExecAnswer {
            kind: "ExecCredential",
            api_version: API_VERSION,
            spec: AnswerSpec {
                interactive: info.interactive,
            },
            status: AnswerStatus {
                // Whole seconds: RFC 3339 as metav1.Time writes it.
                expiration_timestamp: expiry.strftime("%Y-%m-%dT%H:%M:%SZ").to_string(),
                token: self.token.as_ref().map(|t| t.expose_secret()),
                client_certificate_data: self.client_certificate.as_deref(),
                client_key_data: self.client_key.as_ref().map(|k| k.expose_secret()),
            },
        };
        // Plain strings and booleans: serialising cannot fail.
        serde_json::to_string(&answer).unwrap_or_default()
    }
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ExecAnswer<'a> {
    kind: &'static str,
    api_version: &'static str,
    spec: AnswerSpec,
    status: AnswerStatus<'a>,
}

#[derive(Serialize)]
struct AnswerSpec {
    interactive: bool,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct AnswerStatus<'a> {
    expiration_timestamp: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    token: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    client_certificate_data: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    client_key_data: Option<&'a str>,
}

/// PEM text from a kubeconfig's `*-data` (base64 of the PEM) or the file it names; the data
/// wins, as kubectl decides.
fn pem_of(
    data: Option<&str>,
    file: Option<&str>,
    (data_field, file_field): (&'static str, &'static str),
    user: &str,
    origin: &str,
) -> Result<Option<String>, CredentialError> {
    if let Some(d) = data.filter(|d| !d.is_empty()) {
        let bad = || CredentialError::BadData {
            origin: origin.to_string(),
            user: user.to_string(),
            field: data_field,
        };
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(d.trim())
            .map_err(|_| bad())?;
        return String::from_utf8(bytes).map(Some).map_err(|_| bad());
    }
    match file.filter(|f| !f.is_empty()) {
        Some(path) => read_file(path, file_field, user).map(Some),
        None => Ok(None),
    }
}

fn read_file(path: &str, field: &'static str, user: &str) -> Result<String, CredentialError> {
    std::fs::read_to_string(Path::new(path)).map_err(|cause| CredentialError::ReadFile {
        user: user.to_string(),
        field,
        path: path.to_string(),
        cause,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const CERT_PEM: &str = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n";
    const KEY_PEM: &str = "-----BEGIN PRIVATE KEY-----\nMIIE\n-----END PRIVATE KEY-----\n";

    fn b64(s: &str) -> String {
        base64::engine::general_purpose::STANDARD.encode(s)
    }

    fn kubeconfig(user: &str) -> Kubeconfig {
        let text = format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster:\n    server: https://10.0.0.1:6443\n\
             users:\n- name: ops\n  user:\n{user}\
             contexts:\n- name: c\n  context:\n    cluster: c\n    user: ops\n- name: nouser\n  context:\n    cluster: c\n\
             current-context: c\n"
        );
        Kubeconfig::from_yaml(&text).unwrap()
    }

    fn answer(c: &Credential) -> serde_json::Value {
        serde_json::from_str(&c.to_exec_credential(ExecInfo { interactive: false }, 0)).unwrap()
    }

    #[test]
    fn a_token_becomes_an_exec_credential_that_expires_in_ten_minutes() {
        let k = kubeconfig("    token: s3cr3t\n");
        let c = Credential::from_kubeconfig(&k, None, "k.yaml").unwrap();
        let v = answer(&c);
        assert_eq!(v["apiVersion"], API_VERSION);
        assert_eq!(v["kind"], "ExecCredential");
        assert_eq!(v["status"]["token"], "s3cr3t");
        assert_eq!(v["status"]["expirationTimestamp"], "1970-01-01T00:10:00Z");
        assert!(v["status"].get("clientKeyData").is_none());
        assert!(!format!("{c:?}").contains("s3cr3t"));
    }

    #[test]
    fn certificate_data_and_files_are_handed_on_as_pem() {
        let k = kubeconfig(&format!(
            "    client-certificate-data: {}\n    client-key-data: {}\n",
            b64(CERT_PEM),
            b64(KEY_PEM)
        ));
        let v = answer(&Credential::from_kubeconfig(&k, None, "k.yaml").unwrap());
        assert_eq!(v["status"]["clientCertificateData"], CERT_PEM);
        assert_eq!(v["status"]["clientKeyData"], KEY_PEM);
        assert!(v["status"].get("token").is_none());

        let dir = tempfile::tempdir().unwrap();
        let (cert, key, token) = (
            dir.path().join("c.crt"),
            dir.path().join("c.key"),
            dir.path().join("token"),
        );
        std::fs::write(&cert, CERT_PEM).unwrap();
        std::fs::write(&key, KEY_PEM).unwrap();
        std::fs::write(&token, "from-file\n").unwrap();
        let k = kubeconfig(&format!(
            "    client-certificate: {}\n    client-key: {}\n    tokenFile: {}\n",
            cert.display(),
            key.display(),
            token.display()
        ));
        let v = answer(&Credential::from_kubeconfig(&k, None, "k.yaml").unwrap());
        assert_eq!(v["status"]["clientKeyData"], KEY_PEM);
        assert_eq!(v["status"]["token"], "from-file");
    }

    #[test]
    fn users_that_cannot_be_handed_on_are_named() {
        for (user, want) in [
            (
                "    exec:\n      apiVersion: client.authentication.k8s.io/v1\n      command: aws\n",
                "the plugin `aws`",
            ),
            (
                "    auth-provider:\n      name: oidc\n",
                "the plugin `oidc`",
            ),
            (
                "    username: admin\n    password: pw\n",
                "a user name and password",
            ),
            (
                "    as: someone\n",
                "has no token and no client certificate",
            ),
            (
                &format!("    client-certificate-data: {}\n", b64(CERT_PEM)),
                "has a `client-certificate-data` but no `client-key-data`",
            ),
            (
                "    client-certificate-data: '%%%'\n    client-key-data: '%%%'\n",
                "`client-certificate-data` of user `ops` is not valid base64",
            ),
        ] {
            let e = Credential::from_kubeconfig(&kubeconfig(user), None, "k.yaml").unwrap_err();
            let msg = e.to_string();
            assert!(msg.starts_with("k.yaml: ") && msg.contains(want), "{msg}");
            assert_eq!(e.exit_status(), exit::USAGE);
        }
        let k = kubeconfig("    token: t\n");
        let e = Credential::from_kubeconfig(&k, Some("nouser"), "k.yaml").unwrap_err();
        assert!(
            e.to_string().contains("context `nouser` names no user"),
            "{e}"
        );
        let e = Credential::from_kubeconfig(&k, Some("x"), "k.yaml").unwrap_err();
        assert!(e.to_string().contains("(contexts: c, nouser)"), "{e}");
    }

    #[test]
    fn client_gos_request_is_read_and_another_version_refused() {
        let v1 = r#"{"kind":"ExecCredential","apiVersion":"client.authentication.k8s.io/v1","spec":{"interactive":false}}"#;
        assert_eq!(
            exec_info(Some(v1), true).unwrap(),
            ExecInfo { interactive: false }
        );
        let yes = v1.replace("false", "true");
        assert!(exec_info(Some(&yes), false).unwrap().interactive);
        assert!(exec_info(None, true).unwrap().interactive);
        assert!(!exec_info(Some(""), false).unwrap().interactive);
        let beta = v1.replace("/v1\"", "/v1beta1\"");
        let e = exec_info(Some(&beta), false).unwrap_err().to_string();
        assert!(
            e.contains("asks for `client.authentication.k8s.io/v1beta1`"),
            "{e}"
        );
        assert!(exec_info(Some("{"), false).is_err());
    }
}
