//! The simulated installation (the `paragon-sandbox` crate) as the product uses it: the
//! crate re-exported, its errors given the product's exit statuses, and its kubeconfig
//! written where the command is told to. The crate itself knows nothing of the command line,
//! of exit statuses or of where files go.

use std::path::{Path, PathBuf};

pub use paragon_sandbox::*;

use crate::exit::{self, ExitStatus};
use crate::files::{self, Access};

impl ExitStatus for SandboxError {
    /// The options given are at fault (usage, 2), else the system (1).
    fn exit_status(&self) -> u8 {
        match self {
            SandboxError::NoNodes | SandboxError::TooFewPods { .. } => exit::USAGE,
            _ => exit::FAILED,
        }
    }
}

impl ExitStatus for listen::ListenError {
    /// A non-loopback address is the caller's mistake (2); a failed bind, the machine's (1).
    fn exit_status(&self) -> u8 {
        match self {
            listen::ListenError::NotLoopback { .. } => exit::USAGE,
            listen::ListenError::Listen { .. } | listen::ListenError::LocalAddr(_) => exit::FAILED,
        }
    }
}

impl ExitStatus for FaultError {
    /// Only ever a bad command line.
    fn exit_status(&self) -> u8 {
        exit::USAGE
    }
}

/// Why the sandbox's kubeconfig was not written.
#[derive(Debug, thiserror::Error)]
pub enum KubeconfigError {
    #[error("{} exists and is not a sandbox kubeconfig; choose another --kubeconfig-out", path.display())]
    Exists { path: PathBuf },
    #[error("cannot write the kubeconfig {}", path.display())]
    Write {
        path: PathBuf,
        source: files::WriteError,
    },
}

impl ExitStatus for KubeconfigError {
    fn exit_status(&self) -> u8 {
        match self {
            KubeconfigError::Exists { .. } => exit::USAGE,
            // A refused path (a folder others can write) is the user's to fix.
            KubeconfigError::Write { source, .. } => source.exit_status(),
        }
    }
}

/// Writes the sandbox's kubeconfig to `path`, readable by the owner only, through a temporary
/// file and a rename. An existing file is replaced only if it is itself a sandbox kubeconfig.
pub fn write_kubeconfig(sandbox: &Sandbox, path: &Path) -> Result<(), KubeconfigError> {
    let exists = || KubeconfigError::Exists {
        path: path.to_path_buf(),
    };
    let write = |source: files::WriteError| KubeconfigError::Write {
        path: path.to_path_buf(),
        source,
    };
    match std::fs::read_to_string(path) {
        Ok(old) if !old.starts_with(KUBECONFIG_HEADER) => return Err(exists()),
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        // A file we cannot read as text is not ours either.
        Err(e) if e.kind() == std::io::ErrorKind::InvalidData => return Err(exists()),
        Err(e) => return Err(write(e.into())),
    }
    files::write_atomic(path, sandbox.kubeconfig_yaml().as_bytes(), Access::Private).map_err(write)
}
