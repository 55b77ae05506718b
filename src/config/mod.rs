//! Profiles: where the config file is, what it may say, and which profile a command uses.
//!
//! `values` holds the value types (one parser each, shared by the file and `init`),
//! `schema` the tables and keys, `load` the reading with located errors, `resolve` the
//! choice of profile and its defaults, `write` the editor `init` uses. Every error names the
//! file, and for a bad key also the line and the key. It knows nothing of SSH or of clap.

mod load;
mod resolve;
mod schema;
pub mod thresholds;
mod values;
mod write;

use std::path::PathBuf;

pub use load::{MAX_CONFIG_BYTES, config_path, env_value, load, parse};
pub use resolve::{NamedBy, Resolved, expand_path, local_user_name, profile_choice, resolve};
pub use schema::{
    ConfigFile, Datastores, KubeConfig, Probe, Profile, Service, ServiceConfig, Via, builtin_names,
    builtin_probe, builtin_services,
};
pub use thresholds::Thresholds;
pub use values::{
    HostKeyPolicy, HostName, HostPort, HttpUrl, JumpHost, NonEmpty, Persist, Port, ProfileName,
    Scheme, Seconds, UrlPath, read_ca_bundle, split_host_port,
};
pub use write::{ProfileDraft, WriteOptions, write_profile};

/// The name of the environment variable that names the config file.
pub const CONFIG_ENV: &str = "PARAGON_ADMIN_CONFIG";
/// The name of the environment variable that names the profile.
pub const PROFILE_ENV: &str = "PARAGON_ADMIN_PROFILE";

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("no config file at {path}: run `{}` to create one", init_command(path))]
    Missing { path: PathBuf },
    #[error("cannot read {path}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "{path} is writable by others (mode {mode:04o}), so anyone could change where it connects: run `chmod go-w {path}`"
    )]
    WritableByOthers { path: PathBuf, mode: u32 },
    /// OpenSSH refuses a `~/.ssh/config` owned by someone else ("Bad owner or permissions"):
    /// its owner decides where the user connects and with which key.
    #[error(
        "{path} is owned by uid {owner}, not by you or root, so its owner decides where you connect: take it over (`chown`) or copy it"
    )]
    BadOwner { path: PathBuf, owner: u32 },
    /// A FIFO, a socket or a device: reading it could wait for ever or never end.
    #[error("{path} is a {kind}, not a file: pass a regular file with --config")]
    NotAFile { path: PathBuf, kind: &'static str },
    #[error("{path} is larger than {} MiB: is it really the config file?", .max / (1024 * 1024))]
    TooLarge { path: PathBuf, max: u64 },
    #[error("{path}:{line}: {key}: {message}")]
    Invalid {
        path: PathBuf,
        line: usize,
        key: String,
        message: String,
    },
    #[error("{path}:{line}: {message}")]
    Syntax {
        path: PathBuf,
        line: usize,
        message: String,
    },
    #[error(
        "{path}: no profiles: add a [profiles.NAME] table or run `{}`",
        init_command(path)
    )]
    NoProfiles { path: PathBuf },
    #[error("{path}: profile `{name}`{} not found (profiles: {known})", named_by_note(*.named_by))]
    UnknownProfile {
        path: PathBuf,
        name: String,
        known: String,
        named_by: NamedBy,
    },
    #[error(
        "{path}: several profiles and none chosen: pass --profile NAME or set default_profile (profiles: {known})"
    )]
    Ambiguous { path: PathBuf, known: String },
    #[error("no home directory to resolve `{path}`")]
    NoHome { path: String },
    #[error("cannot find the platform config directory: pass --config FILE")]
    NoConfigDir,
    #[error("{what}: {message}")]
    Answer { what: String, message: String },
    #[error("{path}: profile `{name}` already exists: pass --force to replace it")]
    ProfileExists { path: PathBuf, name: String },
    #[error("cannot write {path}")]
    Write {
        path: PathBuf,
        source: crate::files::WriteError,
    },
}

/// Where an unknown profile's name came from, when not from `--profile`.
fn named_by_note(by: NamedBy) -> &'static str {
    match by {
        NamedBy::Flag => "",
        NamedBy::Environment => " (from $PARAGON_ADMIN_PROFILE)",
        NamedBy::DefaultProfile => " (the file's default_profile)",
    }
}

impl crate::exit::ExitStatus for ConfigError {
    /// Always a usage or configuration error (2).
    fn exit_status(&self) -> u8 {
        crate::exit::USAGE
    }
}

/// `paragon-admin init`, with `--config PATH` when `path` is not the default file, so the
/// hint writes the file the user named (a flag or `$PARAGON_ADMIN_CONFIG`).
fn init_command(path: &std::path::Path) -> String {
    let default = dirs::config_dir().map(|d| d.join("paragon-admin").join("config.toml"));
    if default.as_deref() == Some(path) {
        return "paragon-admin init".to_string();
    }
    let text = path.display().to_string();
    let plain = text
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || "/._-+=:,@%".contains(c));
    if plain {
        format!("paragon-admin --config {text} init")
    } else {
        format!(
            "paragon-admin --config '{}' init",
            text.replace('\'', "'\\''")
        )
    }
}
