//! Which kubeconfig a command uses, and the bastion's own fetched into memory.
//!
//! The one place that decides: the command's `--kubeconfig` (with its `--context`), else the
//! profile's `[kube] kubeconfig` and `context`, else the bastion's own kubeconfig (or, with no
//! bastion, the usual `$KUBECONFIG` or `~/.kube/config`). `health`, `kubeconfig` and
//! `forward`'s API route all ask here. This module knows the profile's `[kube]` keys and
//! `Capture` (one command run on the bastion, by a direct connection or by the profile's
//! agent, which implements it where it lives); it knows nothing of clap, of the commands, of
//! the agent or of how a report treats a kubeconfig it cannot have.

use std::fmt;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::time::Duration;

use kube::config::Kubeconfig;

use crate::config::{ConfigError, HostPort, KubeConfig};
use crate::exit::{self, ExitStatus};
use crate::ssh::Captured;

/// What the command line says about the kubeconfig (both `None` for commands without flags).
#[derive(Debug, Clone, Copy, Default)]
pub struct Flags<'a> {
    pub kubeconfig: Option<&'a Path>,
    pub context: Option<&'a str>,
}

/// The profile's `[kube]` keys and the config file they were read from (relative paths in
/// them are taken from its folder).
#[derive(Debug, Clone, Copy)]
pub struct ProfileKube<'a> {
    pub settings: &'a KubeConfig,
    pub file: &'a Path,
}

impl<'a> ProfileKube<'a> {
    /// `profile`'s `[kube]` keys and its config file.
    pub fn of(profile: &'a crate::config::Resolved) -> Self {
        ProfileKube {
            settings: &profile.settings.kube,
            file: &profile.file,
        }
    }
}

/// Where the chosen kubeconfig comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    /// The command's `--kubeconfig FILE`.
    Flag(PathBuf),
    /// The profile's `[kube] kubeconfig`, expanded.
    Profile(PathBuf),
    /// The bastion's own, fetched into memory.
    Bastion,
    /// No bastion and nothing named: `$KUBECONFIG` or `~/.kube/config`, as kubectl reads them.
    Default,
}

impl Origin {
    /// The file named by the flag or the profile, read on this machine.
    pub fn file(&self) -> Option<&Path> {
        match self {
            Origin::Flag(p) | Origin::Profile(p) => Some(p),
            Origin::Bastion | Origin::Default => None,
        }
    }
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Origin::Flag(p) | Origin::Profile(p) => write!(f, "{}", p.display()),
            Origin::Bastion => f.write_str("the bastion's kubeconfig"),
            Origin::Default => {
                f.write_str("the default kubeconfig ($KUBECONFIG or ~/.kube/config)")
            }
        }
    }
}

/// The decision, before anything is read or fetched.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    pub origin: Origin,
    /// The context to use; `None`: the kubeconfig's current context.
    pub context: Option<String>,
    /// Dial this HOST:PORT instead of the server URL's (the profile's `[kube] api_server`).
    pub api_server: Option<HostPort>,
}

/// The kubeconfig chosen, in memory, with its context and API server override.
#[derive(Debug, Clone)]
pub struct Chosen {
    pub kubeconfig: Kubeconfig,
    pub context: Option<String>,
    pub api_server: Option<HostPort>,
    pub origin: Origin,
}

impl Chosen {
    /// The client options for this choice.
    pub fn options(&self) -> super::Options {
        super::Options {
            context: self.context.clone(),
            api_server: self.api_server.clone(),
        }
    }
}

/// Why no kubeconfig could be had.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    /// The profile's `[kube] kubeconfig` path cannot be expanded.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// A file the flag or the profile names cannot be read.
    #[error(transparent)]
    Read(super::KubeError),
    #[error(transparent)]
    Fetch(#[from] FetchError),
    #[error(
        "no kubeconfig: pass --kubeconfig FILE or set kube.kubeconfig in the profile ({message})"
    )]
    NoDefault { message: String },
    /// A file of `$KUBECONFIG` (or `~/.kube/config`) that cannot be read or parsed: named,
    /// with the line of a YAML error, in one line.
    #[error(
        "{} {}: {}{message}",
        if *.from_env { "KUBECONFIG file" } else { "kubeconfig" },
        .path.display(),
        .line.map(|l| format!("line {l}: ")).unwrap_or_default()
    )]
    DefaultFile {
        path: PathBuf,
        /// Named by `$KUBECONFIG` (else it is `~/.kube/config`).
        from_env: bool,
        line: Option<u64>,
        message: String,
    },
}

impl ExitStatus for SourceError {
    /// A kubeconfig named by the user that does not work is a configuration error (2); a
    /// fetch keeps its own status; no default kubeconfig is a failure (1).
    fn exit_status(&self) -> u8 {
        match self {
            SourceError::Config(e) => e.exit_status(),
            SourceError::Read(e) => e.exit_status(),
            SourceError::Fetch(e) => e.exit_status(),
            SourceError::NoDefault { .. } => exit::FAILED,
            SourceError::DefaultFile { .. } => exit::USAGE,
        }
    }
}

/// Decides which kubeconfig, context and API server win; reads nothing. `local`: there is no
/// bastion to fetch from.
///
/// A `--kubeconfig` given on the command line comes with its own `--context` only: the
/// profile's `context` and `api_server` name a context and an address of the profile's
/// cluster, not of the file the user just named. Without the flag, `--context` still wins
/// over the profile's `context`.
pub fn decide(
    flags: Flags<'_>,
    profile: Option<ProfileKube<'_>>,
    local: bool,
) -> Result<Decision, ConfigError> {
    let flag_context = flags.context.map(str::to_string);
    if let Some(path) = flags.kubeconfig {
        return Ok(Decision {
            origin: Origin::Flag(path.to_path_buf()),
            context: flag_context,
            api_server: None,
        });
    }
    let settings = profile.map(|p| p.settings);
    let origin = match profile.and_then(|p| p.settings.kubeconfig.as_ref().map(|k| (p, k))) {
        Some((p, k)) => {
            let base = p.file.parent().unwrap_or(Path::new(""));
            Origin::Profile(crate::config::expand_path(&k.0, base)?)
        }
        None if local => Origin::Default,
        None => Origin::Bastion,
    };
    Ok(Decision {
        origin,
        context: flag_context
            .or_else(|| settings.and_then(|s| s.context.as_ref().map(|c| c.0.clone()))),
        api_server: settings.and_then(|s| s.api_server.clone()),
    })
}

impl Decision {
    /// Reads the file, or fetches the bastion's kubeconfig (narrowed to the context), into
    /// memory. `bastion` is only used for `Origin::Bastion`; without one that is the same
    /// failure as a bastion that cannot give it.
    pub async fn load(self, bastion: Option<&dyn Capture>) -> Result<Chosen, SourceError> {
        let kubeconfig = match (&self.origin, bastion) {
            (Origin::Flag(path) | Origin::Profile(path), _) => {
                super::read_kubeconfig(path).map_err(SourceError::Read)?
            }
            (Origin::Bastion, Some(b)) => {
                fetch_bastion_kubeconfig(b, self.context.as_deref()).await?
            }
            (Origin::Bastion, None) | (Origin::Default, _) => read_default()?,
        };
        Ok(Chosen {
            kubeconfig,
            context: self.context,
            api_server: self.api_server,
            origin: self.origin,
        })
    }
}

/// `decide`, then `load`: the kubeconfig a command uses, in memory.
pub async fn choose(
    flags: Flags<'_>,
    profile: Option<ProfileKube<'_>>,
    bastion: Option<&dyn Capture>,
) -> Result<Chosen, SourceError> {
    decide(flags, profile, bastion.is_none())?
        .load(bastion)
        .await
}

/// One command run on the bastion with no stdin, its stdout and stderr captured: what the
/// kubeconfig fetch needs of a bastion, whether a connection of this process or the profile's
/// agent runs it (`agent::Remote` and `agent::Agent` implement it; this module knows no
/// session).
pub trait Capture: Sync {
    /// Runs `command`; an answer to the same command from within `reuse` may be given again
    /// (the agent keeps them; a connection of this process runs the command every time).
    fn capture<'a>(&'a self, command: &'a str, reuse: Duration) -> CaptureFuture<'a>;
}

/// How old a fetched kubeconfig may be: kubectl runs its credential plugin (which fetches
/// it) twice per command, and operators run commands in quick series. Short, since it is
/// also how long a changed cluster (a new CA or API server) goes unseen by the plugin.
pub const KUBECONFIG_REUSE: Duration = Duration::from_secs(10);

pub type CaptureFuture<'a> =
    Pin<Box<dyn Future<Output = Result<Captured, CaptureError>> + Send + 'a>>;

/// Why a command could not run on the bastion, as the path that ran it says it (printed as
/// that error is, its causes after it), with that error's exit status (255 for a lost
/// connection).
#[derive(Debug)]
pub struct CaptureError {
    status: u8,
    cause: Box<dyn std::error::Error + Send + Sync>,
}

impl CaptureError {
    pub fn new<E>(e: E) -> CaptureError
    where
        E: std::error::Error + ExitStatus + Send + Sync + 'static,
    {
        CaptureError {
            status: e.exit_status(),
            cause: Box::new(e),
        }
    }
}

/// Transparent: the path's own error, so that both paths print the same text.
impl fmt::Display for CaptureError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.cause.fmt(f)
    }
}

impl std::error::Error for CaptureError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.cause.source()
    }
}

impl ExitStatus for CaptureError {
    fn exit_status(&self) -> u8 {
        self.status
    }
}

/// Why the bastion's kubeconfig could not be fetched. Never quotes the kubeconfig itself.
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    /// The command could not run: the session failed or dropped (its status, 255 for a drop).
    #[error("cannot run `{command}` on the bastion")]
    Exec {
        command: String,
        #[source]
        source: CaptureError,
    },
    #[error(
        "`{command}` on the bastion exited {status}: {first_line}; set [kube] kubeconfig in the profile to use a local one"
    )]
    Failed {
        command: String,
        status: u32,
        first_line: String,
    },
    #[error("the bastion's kubeconfig is not UTF-8 text")]
    NotText,
    #[error(transparent)]
    Invalid(#[from] super::KubeError),
}

impl ExitStatus for FetchError {
    /// A session that failed keeps its own status (255 when the connection dropped); a
    /// kubeconfig the bastion cannot give is a failure after connecting (1).
    fn exit_status(&self) -> u8 {
        match self {
            FetchError::Exec { source, .. } => source.exit_status(),
            FetchError::Invalid(e) => e.exit_status(),
            FetchError::Failed { .. } | FetchError::NotText => exit::FAILED,
        }
    }
}

/// The longest first line of the bastion's stderr quoted in `FetchError::Failed`.
const MAX_QUOTED: usize = 160;

/// The bastion's own kubeconfig (`kubectl config view`, narrowed to `context` when one is
/// chosen), into memory only.
pub async fn fetch_bastion_kubeconfig(
    bastion: &dyn Capture,
    context: Option<&str>,
) -> Result<Kubeconfig, FetchError> {
    let command = match context {
        Some(c) => format!(
            "{} --context {}",
            super::FETCH_KUBECONFIG,
            crate::ssh::quote::quote(c)
        ),
        None => super::FETCH_KUBECONFIG.to_string(),
    };
    let out = bastion
        .capture(&command, KUBECONFIG_REUSE)
        .await
        .map_err(|source| FetchError::Exec {
            command: command.clone(),
            source,
        })?;
    if out.status != 0 {
        let err = String::from_utf8_lossy(&out.stderr);
        return Err(FetchError::Failed {
            command,
            status: out.status,
            first_line: crate::text::printable(&shorten(
                err.lines().next().unwrap_or("").trim(),
                MAX_QUOTED,
            )),
        });
    }
    let text = String::from_utf8(out.stdout).map_err(|_| FetchError::NotText)?;
    Ok(super::parse_fetched_kubeconfig(&text)?)
}

/// The default kubeconfig as kubectl reads it: the files of `$KUBECONFIG` merged (empty
/// names and files that do not exist skipped; the first to set a value wins), else
/// `~/.kube/config`. kube's own reader says which file failed only when it cannot be read;
/// here a file that cannot be parsed is named too, with the line.
fn read_default() -> Result<Kubeconfig, SourceError> {
    let listed: Vec<PathBuf> = std::env::var_os("KUBECONFIG")
        .map(|v| {
            std::env::split_paths(&v)
                .filter(|p| !p.as_os_str().is_empty())
                .collect()
        })
        .unwrap_or_default();
    let from_env = !listed.is_empty();
    let paths = match from_env {
        true => listed.into_iter().filter(|p| p.exists()).collect(),
        false => match dirs::home_dir() {
            Some(h) => vec![h.join(".kube").join("config")],
            None => Vec::new(),
        },
    };
    let mut merged: Option<Kubeconfig> = None;
    for path in paths {
        let failed = |e: kube::config::KubeconfigError| default_file_error(&path, from_env, e);
        let k = Kubeconfig::read_from(&path).map_err(failed)?;
        merged = Some(match merged {
            Some(m) => m.merge(k).map_err(failed)?,
            None => k,
        });
    }
    merged.ok_or_else(|| SourceError::NoDefault {
        message: match from_env {
            true => "no file of KUBECONFIG exists".to_string(),
            false => "~/.kube/config does not exist".to_string(),
        },
    })
}

fn default_file_error(
    path: &Path,
    from_env: bool,
    e: kube::config::KubeconfigError,
) -> SourceError {
    use kube::config::KubeconfigError as E;
    let (line, message) = match &e {
        E::ReadConfig(io, _) if io.kind() == std::io::ErrorKind::NotFound && !from_env => {
            return SourceError::NoDefault {
                message: format!("{}: {io}", path.display()),
            };
        }
        E::ReadConfig(io, _) => (None, io.to_string()),
        E::Parse(yaml) => {
            let bare = yaml.without_snippet();
            let line = bare.location().map(|l| l.line()).filter(|l| *l > 0);
            (line, yaml_message(&bare.to_string()))
        }
        other => (None, super::one_line(other)),
    };
    SourceError::DefaultFile {
        path: path.to_path_buf(),
        from_env,
        line,
        message,
    }
}

/// A YAML error's words without the position the error states apart (`at line 3 column
/// 5`), on one line.
fn yaml_message(text: &str) -> String {
    let one = text.split_whitespace().collect::<Vec<_>>().join(" ");
    match one.rfind(" at line ") {
        Some(i) => one[..i].trim_end_matches(':').to_string(),
        None => one,
    }
}

/// `s` cut to `max` characters with an ellipsis (`health::one_line` is not reachable from
/// here: `health` depends on this module).
fn shorten(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        return s.to_string();
    }
    let mut out: String = s.chars().take(max.saturating_sub(1)).collect();
    out.push('…');
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::NonEmpty;

    fn kube(kubeconfig: Option<&str>, context: Option<&str>, api: Option<&str>) -> KubeConfig {
        KubeConfig {
            kubeconfig: kubeconfig.map(|k| NonEmpty(k.to_string())),
            context: context.map(|c| NonEmpty(c.to_string())),
            api_server: api.map(|a| {
                let (host, port) = a.split_once(':').unwrap();
                HostPort {
                    host: host.to_string(),
                    port: port.parse().unwrap(),
                }
            }),
        }
    }

    fn profile(settings: &KubeConfig) -> ProfileKube<'_> {
        ProfileKube {
            settings,
            file: Path::new("/etc/paragon/config.toml"),
        }
    }

    #[test]
    fn the_flag_wins_over_the_profile_with_its_own_context_only() {
        let k = kube(Some("prof.yaml"), Some("prof-ctx"), Some("10.0.0.1:6443"));
        let flags = Flags {
            kubeconfig: Some(Path::new("mine.yaml")),
            context: None,
        };
        let d = decide(flags, Some(profile(&k)), false).unwrap();
        assert_eq!(d.origin, Origin::Flag(PathBuf::from("mine.yaml")));
        assert_eq!(d.context, None);
        assert_eq!(d.api_server, None);
        let flags = Flags {
            context: Some("c"),
            ..flags
        };
        let d = decide(flags, Some(profile(&k)), true).unwrap();
        assert_eq!(d.context.as_deref(), Some("c"));
    }

    #[test]
    fn the_profiles_kubeconfig_is_taken_from_the_config_files_folder_before_the_bastion() {
        let k = kube(
            Some("kube/prod.yaml"),
            Some("prod"),
            Some("api.internal:6443"),
        );
        let d = decide(Flags::default(), Some(profile(&k)), false).unwrap();
        assert_eq!(
            d.origin,
            Origin::Profile(PathBuf::from("/etc/paragon/kube/prod.yaml"))
        );
        assert_eq!(d.context.as_deref(), Some("prod"));
        assert_eq!(d.api_server.map(|a| a.port), Some(6443));
        assert_eq!(
            d.origin.to_string(),
            "/etc/paragon/kube/prod.yaml",
            "messages name the file"
        );
    }

    #[test]
    fn the_context_flag_wins_over_the_profiles_context() {
        let k = kube(Some("prod.yaml"), Some("prod"), None);
        let flags = Flags {
            kubeconfig: None,
            context: Some("staging"),
        };
        let d = decide(flags, Some(profile(&k)), false).unwrap();
        assert_eq!(d.context.as_deref(), Some("staging"));
        let none = kube(None, Some("prod"), None);
        let d = decide(flags, Some(profile(&none)), false).unwrap();
        assert_eq!(
            (d.origin, d.context.as_deref()),
            (Origin::Bastion, Some("staging"))
        );
    }

    #[test]
    fn without_a_file_the_bastions_own_wins_with_the_profiles_context_and_api_server() {
        let k = kube(None, Some("prod"), Some("api.internal:6443"));
        let d = decide(Flags::default(), Some(profile(&k)), false).unwrap();
        assert_eq!(d.origin, Origin::Bastion);
        assert_eq!(d.context.as_deref(), Some("prod"));
        assert_eq!(
            d.api_server.map(|a| a.host).as_deref(),
            Some("api.internal")
        );
        assert_eq!(d.origin.to_string(), "the bastion's kubeconfig");
    }

    #[test]
    fn with_no_bastion_and_no_profile_the_default_kubeconfig_is_used() {
        let d = decide(Flags::default(), None, true).unwrap();
        assert_eq!(
            d,
            Decision {
                origin: Origin::Default,
                context: None,
                api_server: None,
            }
        );
        let d = decide(Flags::default(), None, false).unwrap();
        assert_eq!(d.origin, Origin::Bastion);
    }

    #[tokio::test]
    async fn a_named_file_that_cannot_be_read_is_a_usage_error_naming_it() {
        let d = decide(
            Flags {
                kubeconfig: Some(Path::new("/nonexistent/kubeconfig")),
                context: None,
            },
            None,
            true,
        )
        .unwrap();
        let e = d.load(None).await.unwrap_err();
        assert!(matches!(e, SourceError::Read(_)), "{e:?}");
        assert_eq!(e.exit_status(), exit::USAGE);
        assert!(e.to_string().contains("/nonexistent/kubeconfig"), "{e}");
    }

    /// A bastion that answers every command with what `answer` makes.
    struct Answers(fn() -> Result<Captured, CaptureError>);

    impl Capture for Answers {
        fn capture<'a>(&'a self, _command: &'a str, _reuse: Duration) -> CaptureFuture<'a> {
            let answer = (self.0)();
            Box::pin(async move { answer })
        }
    }

    #[tokio::test]
    async fn a_capture_that_could_not_run_keeps_its_status_and_says_its_cause_once() {
        let dropped = Answers(|| {
            Err(CaptureError::new(crate::ssh::SshError::Disconnected {
                target: "b.example:22".into(),
            }))
        });
        let e = fetch_bastion_kubeconfig(&dropped, Some("a b"))
            .await
            .unwrap_err();
        assert_eq!(e.exit_status(), exit::UNREACHABLE);
        let line = crate::exit::Error::from(e).to_string();
        assert!(
            line.starts_with("cannot run `kubectl config view --raw --minify --flatten --context 'a b'` on the bastion: "),
            "{line}"
        );
        assert_eq!(line.matches("b.example:22").count(), 1, "{line}");
    }

    #[tokio::test]
    async fn a_command_that_failed_is_quoted_by_its_first_stderr_line_and_fails_with_1() {
        let failing = Answers(|| {
            Ok(Captured {
                status: 1,
                stdout: b"apiVersion: v1".to_vec(),
                stderr: b"error: context \"x\" not found\nsecond line\n".to_vec(),
            })
        });
        let e = fetch_bastion_kubeconfig(&failing, None).await.unwrap_err();
        assert_eq!(e.exit_status(), exit::FAILED);
        let text = e.to_string();
        assert!(
            text.contains("exited 1: error: context \"x\" not found;"),
            "{text}"
        );
        assert!(
            !text.contains("second line") && !text.contains("apiVersion"),
            "{text}"
        );
    }

    #[test]
    fn a_long_line_is_shortened_with_an_ellipsis() {
        assert_eq!(shorten("abc", 3), "abc");
        assert_eq!(shorten("abcdef", 4), "abc…");
    }
}
