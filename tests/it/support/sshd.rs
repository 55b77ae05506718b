//! A real OpenSSH `sshd` in a temporary folder: its own host keys, an authorized client key,
//! its own config, a port chosen with retry on "address in use". Killed and reaped on `Drop`.
//!
//! It can run behind a command prefix (`ip netns exec NS`), be stopped and started again on
//! the same port with the same host key (forwards must survive bastion restarts), and writes
//! the paragon-admin config and known_hosts that point at it.
//!
//! `SshdProcess` is the part every sshd of the tests shares (this one, and the bastion image's
//! entrypoint in `support::bastion`): readiness read from sshd's own log, a port taken
//! meanwhile told apart, and the kill of sshd with every process it started.

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// `sshd` as installed by Debian's openssh-server (not always on a root PATH), by its
/// absolute path: sshd refuses to re-exec itself unless started by one.
pub fn sshd_path() -> PathBuf {
    for dir in ["/usr/sbin", "/usr/local/sbin", "/sbin"] {
        let p = Path::new(dir).join("sshd");
        if p.exists() {
            return p;
        }
    }
    panic!("sshd not found: install openssh-server (scripts/test.sh does)");
}

/// How to start an sshd.
#[derive(Clone, Debug)]
pub struct SshdOptions {
    /// The address sshd listens on.
    pub listen: String,
    /// A command that sshd runs under, such as `["ip", "netns", "exec", "ns1"]`.
    pub prefix: Vec<String>,
    /// Host key types to generate and offer (`ed25519`, `ecdsa`, `rsa`).
    pub host_key_types: Vec<String>,
    /// Extra lines for sshd_config.
    pub extra_config: Vec<String>,
}

impl Default for SshdOptions {
    fn default() -> Self {
        SshdOptions {
            listen: "127.0.0.1".to_string(),
            prefix: Vec::new(),
            host_key_types: vec!["ed25519".to_string()],
            extra_config: Vec::new(),
        }
    }
}

/// A running (or stopped, to be started again) sshd.
pub struct Sshd {
    pub dir: tempfile::TempDir,
    pub options: SshdOptions,
    pub port: u16,
    /// The client key sshd accepts (ed25519, no passphrase).
    pub client_key: PathBuf,
    /// A folder on the remote PATH for session commands (holds a fake `helm` printing argv).
    pub bin_dir: PathBuf,
    process: Option<SshdProcess>,
    log: PathBuf,
}

impl Sshd {
    /// Starts an sshd on 127.0.0.1 with an ed25519 host key.
    pub fn start() -> Sshd {
        Sshd::start_with(SshdOptions::default())
    }

    pub fn start_with(options: SshdOptions) -> Sshd {
        std::fs::create_dir_all("/run/sshd").expect("create /run/sshd");
        let dir = tempfile::tempdir().expect("sshd temp dir");
        for t in &options.host_key_types {
            keygen(&dir.path().join(format!("host_{t}_key")), t, "");
        }
        let client_key = dir.path().join("id_ed25519");
        keygen(&client_key, "ed25519", "");
        let auth = dir.path().join("authorized_keys");
        std::fs::copy(client_key.with_extension("pub"), &auth).expect("authorized_keys");
        let bin_dir = dir.path().join("bin");
        std::fs::create_dir(&bin_dir).expect("bin dir");
        write_executable(
            &bin_dir.join("helm"),
            "#!/bin/sh\n# prints its arguments one per line, each between < and >\nfor a in \"$@\"; do printf '<%s>\\n' \"$a\"; done\n",
        );
        let mut sshd = Sshd {
            log: dir.path().join("sshd.log"),
            dir,
            options,
            port: 0,
            client_key,
            bin_dir,
            process: None,
        };
        let mut last = String::new();
        for _ in 0..20 {
            sshd.port = free_port_hint(&sshd.options);
            match sshd.spawn() {
                Ok(()) => return sshd,
                Err(e) => last = e,
            }
        }
        panic!("sshd did not start: {last}");
    }

    /// Authorizes another public key (the contents of a `.pub` file).
    pub fn authorize(&self, pub_key_file: &Path) {
        let key = std::fs::read_to_string(pub_key_file).expect("read public key");
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(self.dir.path().join("authorized_keys"))
            .expect("open authorized_keys");
        f.write_all(key.as_bytes()).expect("append authorized_keys");
    }

    /// The host's public key line (`TYPE BASE64 comment`) of the given type.
    pub fn host_public_key(&self, key_type: &str) -> String {
        let p = self.dir.path().join(format!("host_{key_type}_key.pub"));
        std::fs::read_to_string(p)
            .expect("host public key")
            .trim()
            .to_string()
    }

    /// Puts `name` on the sessions' PATH (the fixture's bin dir) as the executable `script`.
    pub fn install(&self, name: &str, script: &str) {
        write_executable(&self.bin_dir.join(name), script);
    }

    /// The real kubectl on the sessions' PATH, pointed at `kubeconfig`: a wrapper, since sshd
    /// takes only the first SetEnv (the fixture's PATH). The sessions run with
    /// PYENV_VERSION=system; a pyenv shim the wrapper finds must choose its own version again.
    pub fn kubectl_with(&self, kubeconfig: &Path) {
        self.install(
            "kubectl",
            &format!(
                "#!/bin/sh\nunset PYENV_VERSION\nexec {} --kubeconfig {} \"$@\"\n",
                super::sandbox::kubectl_path().display(),
                kubeconfig.display()
            ),
        );
    }

    /// The private host key file of the given type.
    pub fn host_key_file(&self, key_type: &str) -> PathBuf {
        self.dir.path().join(format!("host_{key_type}_key"))
    }

    /// The known_hosts host pattern OpenSSH uses for this server: `[addr]:port`.
    pub fn host_pattern(&self) -> String {
        format!("[{}]:{}", self.options.listen, self.port)
    }

    /// A known_hosts line for the first host key type.
    pub fn known_hosts_line(&self) -> String {
        let key = self.host_public_key(&self.options.host_key_types[0]);
        let mut parts = key.split_whitespace();
        let (t, b) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
        format!("{} {t} {b}\n", self.host_pattern())
    }

    /// Writes a known_hosts file holding this server's key; returns its path.
    pub fn write_known_hosts(&self, path: &Path) -> PathBuf {
        std::fs::write(path, self.known_hosts_line()).expect("write known_hosts");
        path.to_path_buf()
    }

    /// A paragon-admin profile `test` for this server (user root, the client key), with
    /// `known_hosts` and the host-key policy given, plus `extra` TOML lines in the profile.
    pub fn profile_toml(&self, known_hosts: &Path, policy: &str, extra: &str) -> String {
        self.profile_toml_named("test", known_hosts, policy, extra)
    }

    /// As `profile_toml`, for a profile called `name` (keyring secrets are per profile).
    pub fn profile_toml_named(
        &self,
        name: &str,
        known_hosts: &Path,
        policy: &str,
        extra: &str,
    ) -> String {
        format!(
            "[profiles.{name}]\nhost = \"{}\"\nport = {}\nuser = \"root\"\nidentity_file = \"{}\"\n\
             known_hosts = \"{}\"\nstrict_host_key_checking = \"{policy}\"\nconnect_timeout = 10\n{extra}\n",
            self.options.listen,
            self.port,
            self.client_key.display(),
            known_hosts.display(),
        )
    }

    /// Writes the config into `home` with a known_hosts next to it holding this server's key
    /// (policy `yes`); returns the known_hosts path.
    pub fn configure(&self, home: &super::Home) -> PathBuf {
        self.configure_with(home, "")
    }

    /// `configure`, with `extra` TOML after the profile (its own tables, say).
    pub fn configure_with(&self, home: &super::Home, extra: &str) -> PathBuf {
        let kh = self.write_known_hosts(&home.path().join("known_hosts"));
        home.write_config(&self.profile_toml(&kh, "yes", extra));
        kh
    }

    /// What sshd logged so far (for assertion messages).
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Kills sshd and every process it started, and reaps it.
    pub fn stop(&mut self) {
        if let Some(mut p) = self.process.take() {
            // The listener is frozen first: a connection it accepted after the tree and the
            // sockets were read (a client reconnecting as its session is killed) would fork a
            // session that outlives it and serves that client on.
            if let Some(pid) = p.pid() {
                let _ = Command::new("kill")
                    .args(["-STOP", &pid.to_string()])
                    .stderr(Stdio::null())
                    .status();
            }
            // A session process that was not a descendant when the tree was read (an orphan
            // of init still holding a client's connection) would keep a "stopped" sshd
            // answering that client. Its sockets are read in the listener's own network
            // namespace (behind a prefix the port is another namespace's), before it goes.
            let sessions = p.pid().map(|pid| sockets_on(pid, self.port));
            p.stop();
            if let Some(sessions) = sessions {
                kill_holders(&sessions);
            }
        }
    }

    /// Stops (SIGSTOP) every session process, so that connections hang without closing: a
    /// frozen bastion. `thaw_sessions` resumes them; `stop` and `Drop` kill them either way.
    pub fn freeze_sessions(&self) {
        self.signal_sessions("-STOP");
    }

    pub fn thaw_sessions(&self) {
        self.signal_sessions("-CONT");
    }

    fn signal_sessions(&self, signal: &str) {
        let Some(pid) = self.process.as_ref().and_then(SshdProcess::pid) else {
            return;
        };
        let pids = descendants(pid);
        if pids.is_empty() {
            return;
        }
        let _ = Command::new("kill")
            .arg(signal)
            .args(pids.iter().map(u32::to_string))
            .stderr(Stdio::null())
            .status();
    }

    /// Starts sshd again on the same port with the same keys, retrying while the port is busy.
    pub fn restart(&mut self) {
        self.stop();
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            match self.spawn() {
                Ok(()) => return,
                Err(e) if Instant::now() < deadline => {
                    let _ = e;
                    std::thread::sleep(Duration::from_millis(100));
                }
                Err(e) => panic!("sshd did not restart on port {}: {e}", self.port),
            }
        }
    }

    pub fn is_running(&self) -> bool {
        self.process.is_some()
    }

    fn config_path(&self) -> PathBuf {
        self.dir.path().join("sshd_config")
    }

    fn write_sshd_config(&self) {
        let d = self.dir.path();
        // PYENV_VERSION=system: a login shell whose rc file puts pyenv's shims first (this
        // machine's root) would otherwise run pyenv's kubectl instead of the fakes in bin_dir.
        let mut cfg = format!(
            "Port {}\nListenAddress {}\nUsePAM no\nStrictModes no\nPidFile none\n\
             AuthorizedKeysFile {}\nPermitRootLogin prohibit-password\nPasswordAuthentication no\n\
             KbdInteractiveAuthentication no\nAllowTcpForwarding yes\nPermitTunnel no\n\
             X11Forwarding no\nPrintMotd no\nPrintLastLog no\nUseDNS no\nLogLevel VERBOSE\n\
             MaxStartups 100:30:200\nMaxSessions 100\n\
             SetEnv PATH={}:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
             PYENV_VERSION=system\n",
            self.port,
            self.options.listen,
            d.join("authorized_keys").display(),
            self.bin_dir.display(),
        );
        for t in &self.options.host_key_types {
            cfg.push_str(&format!("HostKey {}\n", self.host_key_file(t).display()));
        }
        for l in &self.options.extra_config {
            cfg.push_str(l);
            cfg.push('\n');
        }
        std::fs::write(self.config_path(), cfg).expect("write sshd_config");
    }

    /// Starts sshd on `self.port` and waits until it listens; an error says why it did not.
    fn spawn(&mut self) -> Result<(), String> {
        self.write_sshd_config();
        let mut cmd = match self.options.prefix.split_first() {
            Some((first, rest)) => {
                let mut c = Command::new(first);
                c.args(rest).arg(sshd_path());
                c
            }
            None => Command::new(sshd_path()),
        };
        cmd.arg("-D")
            .arg("-e")
            .arg("-f")
            .arg(self.config_path())
            .stdin(Stdio::null())
            .stdout(Stdio::null());
        match SshdProcess::start(&mut cmd, &self.log) {
            Ok(p) => {
                self.process = Some(p);
                Ok(())
            }
            Err(StartError::PortInUse(log) | StartError::Failed(log)) => Err(log),
        }
    }
}

impl Drop for Sshd {
    fn drop(&mut self) {
        self.stop();
    }
}

/// How long sshd may take to listen.
const LISTEN_DEADLINE: Duration = Duration::from_secs(15);

/// A running sshd, or a program that becomes sshd (`exec`), logging to stderr (`-e`).
/// Killed, with every process it started, and reaped on `stop` or `Drop`.
pub struct SshdProcess {
    child: Option<Child>,
}

/// Why an sshd did not start; each carries its log.
pub enum StartError {
    /// The port was taken between choosing it and sshd binding it: try another.
    PortInUse(String),
    Failed(String),
}

impl SshdProcess {
    /// Spawns `cmd` with its stderr appended to `log`, and waits until sshd says it listens
    /// (within 15 s), or fails.
    pub fn start(cmd: &mut Command, log: &Path) -> Result<SshdProcess, StartError> {
        let read_log = || std::fs::read_to_string(log).unwrap_or_default();
        let mut child = cmd
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| StartError::Failed(format!("cannot run {:?}: {e}", cmd.get_program())))?;
        let Some(stderr) = child.stderr.take() else {
            return Err(StartError::Failed("no stderr".into()));
        };
        let (tx, rx) = mpsc::channel::<Result<(), bool>>();
        let log_path = log.to_path_buf();
        // Copies every line to the log, and says once whether sshd listens (Ok) or why not
        // (Err(true) for a port in use).
        std::thread::spawn(move || {
            let mut file = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&log_path)
                .ok();
            let mut told = false;
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                if let Some(f) = file.as_mut() {
                    let _ = writeln!(f, "{line}");
                }
                if told {
                    continue;
                }
                let verdict = if line.contains("Server listening on") {
                    Some(Ok(()))
                } else if line.contains("Address already in use") {
                    Some(Err(true))
                } else if line.contains("Cannot bind") || line.contains("fatal") {
                    Some(Err(false))
                } else {
                    None
                };
                if let Some(v) = verdict {
                    let _ = tx.send(v);
                    told = true;
                }
            }
            if !told {
                let _ = tx.send(Err(false));
            }
        });
        let mut process = SshdProcess { child: Some(child) };
        let outcome = rx.recv_timeout(LISTEN_DEADLINE);
        if let Ok(Ok(())) = outcome {
            return Ok(process);
        }
        process.stop();
        Err(match outcome {
            Ok(Err(true)) => StartError::PortInUse(read_log()),
            Ok(_) => StartError::Failed(format!("sshd did not start:\n{}", read_log())),
            Err(_) => StartError::Failed(format!(
                "sshd did not listen within {}s:\n{}",
                LISTEN_DEADLINE.as_secs(),
                read_log()
            )),
        })
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Kills sshd and every process it started (per-connection sshds and their sessions,
    /// which otherwise outlive the listener), by pid, and reaps it.
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let mut pids = descendants(c.id());
            pids.push(c.id());
            let _ = Command::new("kill")
                .arg("-KILL")
                .args(pids.iter().map(u32::to_string))
                .stderr(Stdio::null())
                .status();
            let _ = c.wait();
        }
    }
}

impl Drop for SshdProcess {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A port that was free a moment ago on the options' address (a hint: sshd binds it itself,
/// and `start_with` retries when it was taken meanwhile). Behind a prefix (a namespace) any
/// port in the dynamic range is as good a guess.
fn free_port_hint(options: &SshdOptions) -> u16 {
    if options.prefix.is_empty()
        && let Ok(l) = std::net::TcpListener::bind((options.listen.as_str(), 0))
        && let Ok(a) = l.local_addr()
    {
        return a.port();
    }
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    20000 + (nanos % 20000) as u16
}

/// A public key file's fingerprint as ssh-keygen and sshd print it ("SHA256:...").
pub fn fingerprint(pub_file: &Path) -> String {
    let out = Command::new("ssh-keygen")
        .arg("-lf")
        .arg(pub_file)
        .output()
        .expect("run ssh-keygen -lf");
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .nth(1)
        .expect("a fingerprint from ssh-keygen -lf")
        .to_owned()
}

/// Runs `ssh-keygen` for a new key of `key_type` at `path` with `passphrase`.
pub fn keygen(path: &Path, key_type: &str, passphrase: &str) {
    let st = Command::new("ssh-keygen")
        .args([
            "-q",
            "-t",
            key_type,
            "-N",
            passphrase,
            "-C",
            "paragon-test",
            "-f",
        ])
        .arg(path)
        .stdin(Stdio::null())
        .status()
        .expect("ssh-keygen must be installed (openssh-client)");
    assert!(st.success(), "ssh-keygen -t {key_type} failed");
}

/// The connected TCP sockets (any state but listening) on local `port` in the network
/// namespace of process `pid`: an sshd's sessions.
fn sockets_on(pid: u32, port: u16) -> std::collections::HashSet<String> {
    let mut inodes = std::collections::HashSet::new();
    for table in ["tcp", "tcp6"] {
        let Ok(text) = std::fs::read_to_string(format!("/proc/{pid}/net/{table}")) else {
            continue;
        };
        for line in text.lines().skip(1) {
            let f: Vec<&str> = line.split_whitespace().collect();
            let (Some(local), Some(state), Some(inode)) = (f.get(1), f.get(3), f.get(9)) else {
                continue;
            };
            let local_port = local
                .rsplit(':')
                .next()
                .and_then(|h| u16::from_str_radix(h, 16).ok());
            if local_port == Some(port) && *state != "0A" && *inode != "0" {
                inodes.insert(format!("socket:[{inode}]"));
            }
        }
    }
    inodes
}

/// Kills every process (but this one) that holds one of the sockets `inodes`.
fn kill_holders(inodes: &std::collections::HashSet<String>) {
    if inodes.is_empty() {
        return;
    }
    let mut pids = Vec::new();
    for e in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|n| n.parse::<u32>().ok()) else {
            continue;
        };
        let holds = std::fs::read_dir(e.path().join("fd"))
            .into_iter()
            .flatten()
            .flatten()
            .any(|fd| {
                std::fs::read_link(fd.path())
                    .is_ok_and(|l| inodes.contains(l.to_string_lossy().as_ref()))
            });
        if holds && pid != std::process::id() {
            pids.push(pid.to_string());
        }
    }
    if !pids.is_empty() {
        let _ = Command::new("kill")
            .arg("-KILL")
            .args(&pids)
            .stderr(Stdio::null())
            .status();
    }
}

/// Every process below `pid`, children before their parents' siblings.
fn descendants(pid: u32) -> Vec<u32> {
    let mut parent_of: Vec<(u32, u32)> = Vec::new();
    if let Ok(entries) = std::fs::read_dir("/proc") {
        for e in entries.flatten() {
            let Some(p) = e.file_name().to_str().and_then(|n| n.parse::<u32>().ok()) else {
                continue;
            };
            let Ok(stat) = std::fs::read_to_string(e.path().join("stat")) else {
                continue;
            };
            // `pid (comm) state ppid ...`; comm may hold spaces and parentheses.
            let Some(after) = stat.rfind(')').map(|i| &stat[i + 1..]) else {
                continue;
            };
            if let Some(ppid) = after.split_whitespace().nth(1).and_then(|s| s.parse().ok()) {
                parent_of.push((p, ppid));
            }
        }
    }
    let mut out = Vec::new();
    let mut frontier = vec![pid];
    while let Some(parent) = frontier.pop() {
        for &(p, pp) in &parent_of {
            if pp == parent {
                out.push(p);
                frontier.push(p);
            }
        }
    }
    out
}

fn write_executable(path: &Path, text: &str) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::write(path, text).expect("write script");
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).expect("chmod");
}
