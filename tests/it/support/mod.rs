//! Fixtures shared by the integration tests. Each cleans up in `Drop`, also when a test fails.

#![allow(dead_code)]

pub mod agent;
pub mod bastion;
pub mod datastores;
pub mod monitoring;
pub mod netns;
pub mod prometheus;
pub mod pty;
pub mod sandbox;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub mod sshd;

/// A loopback port nothing listens on, and nothing else can take while this test process
/// runs: a socket bound to it without listening (and without `SO_REUSEADDR`), kept open for
/// good. Connecting to it is refused. A port bound and released instead (`TcpListener::bind`,
/// then dropped) can be taken meanwhile by another test's server, and a check that expects a
/// refusal then meets that server (seen in CI: a kibana check that read an SSH banner).
pub fn closed_port() -> u16 {
    use rustix::net::{AddressFamily, SocketFlags, SocketType};
    // Close-on-exec: the processes the tests start do not inherit it.
    let socket = rustix::net::socket_with(
        AddressFamily::INET,
        SocketType::STREAM,
        SocketFlags::CLOEXEC,
        None,
    )
    .expect("a TCP socket");
    let loopback = std::net::SocketAddrV4::new(std::net::Ipv4Addr::LOCALHOST, 0);
    rustix::net::bind(&socket, &loopback).expect("bind a loopback port");
    let bound = rustix::net::getsockname(&socket).expect("the bound address");
    let port = std::net::SocketAddrV4::try_from(bound)
        .expect("an IPv4 address")
        .port();
    // Held until the test process exits: a port per call, a few dozen in all.
    std::mem::forget(socket);
    port
}

/// A clean home for one test: HOME, XDG dirs and the config file live in a temporary folder,
/// and nothing of the caller's environment that paragon-admin reads is inherited.
pub struct Home {
    pub dir: tempfile::TempDir,
}

impl Home {
    pub fn new() -> Self {
        Home {
            dir: tempfile::tempdir().expect("temporary home"),
        }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// The config file `paragon()` points at.
    pub fn config_path(&self) -> PathBuf {
        self.path().join("config.toml")
    }

    pub fn write_config(&self, text: &str) -> PathBuf {
        let p = self.config_path();
        std::fs::write(&p, text).expect("write config");
        p
    }

    /// The binary, with a clean environment rooted in this home.
    pub fn paragon(&self) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_paragon-admin"));
        c.env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("HOME", self.path())
            .env("XDG_CONFIG_HOME", self.path().join(".config"))
            .env("USER", "tester")
            .env("NO_COLOR", "1")
            .env("LANG", "C.UTF-8")
            .env("PARAGON_ADMIN_CONFIG", self.config_path())
            // Each home its own agents: they leave when this folder is removed.
            .env("XDG_RUNTIME_DIR", self.runtime_dir());
        c
    }

    /// `$XDG_RUNTIME_DIR` of `paragon()`: the kept agents' sockets live below it.
    pub fn runtime_dir(&self) -> PathBuf {
        let run = self.path().join("run");
        use std::os::unix::fs::DirBuilderExt;
        // Threads of one test may share a home: whoever comes second finds it made.
        match std::fs::DirBuilder::new().mode(0o700).create(&run) {
            Err(e) if e.kind() != std::io::ErrorKind::AlreadyExists => panic!("runtime dir: {e}"),
            _ => run,
        }
    }
}

/// What a finished run printed, as text.
pub struct Run {
    pub status: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

pub fn run(cmd: &mut Command) -> Run {
    let Output {
        status,
        stdout,
        stderr,
    } = cmd.output().expect("run paragon-admin");
    Run {
        status: status.code(),
        stdout: String::from_utf8_lossy(&stdout).into_owned(),
        stderr: String::from_utf8_lossy(&stderr).into_owned(),
    }
}
