//! The kept connection (issue 13): one agent per (config file, profile) keeps one SSH session to a real
//! OpenSSH sshd (`LogLevel VERBOSE`, so every connection shows in its log) and serves the
//! profile's commands, detached forwards, status and stop. Each test runs in its own home and
//! `XDG_RUNTIME_DIR`, and stops its agents in `Drop`.

use std::io::{Read, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::support::pty::Terminal;
use crate::support::sshd::{Sshd, keygen};
use crate::support::{Home, Run, run};

/// A home whose profile `test` points at an sshd, and whose agents are stopped on drop.
pub(crate) struct Kept {
    pub(crate) home: Home,
    pub(crate) sshd: Sshd,
}

impl Kept {
    pub(crate) fn new(extra: &str) -> Kept {
        let sshd = Sshd::start();
        let home = Home::new();
        sshd.configure_with(&home, extra);
        Kept { home, sshd }
    }

    pub(crate) fn paragon(&self, args: &[&str]) -> Command {
        let mut c = self.home.paragon();
        c.args(args).stdin(Stdio::null());
        c
    }

    pub(crate) fn run(&self, args: &[&str]) -> Run {
        run(&mut self.paragon(args))
    }

    pub(crate) fn ssh(&self, command: &str) -> Run {
        self.run(&["ssh", "--", command])
    }

    /// SSH connections sshd accepted so far.
    pub(crate) fn connections(&self) -> usize {
        self.sshd.log().matches("Accepted publickey").count()
    }

    pub(crate) fn folder(&self) -> PathBuf {
        self.home.runtime_dir().join("paragon-admin")
    }

    /// The one agent socket in the folder (named by a hash of the config file and profile),
    /// or a path that does not exist when there is none.
    pub(crate) fn socket(&self) -> PathBuf {
        sockets(&self.folder())
            .into_iter()
            .next()
            .unwrap_or_else(|| self.folder().join("none.sock"))
    }

    pub(crate) fn status(&self) -> serde_json::Value {
        let r = self.run(&["agent", "status", "--output", "json"]);
        assert_eq!(r.status, Some(0), "{}", r.stderr);
        serde_json::from_str(&r.stdout).unwrap()
    }
}

impl Drop for Kept {
    fn drop(&mut self) {
        let _ = self.paragon(&["agent", "stop", "--all"]).output();
    }
}

/// The agent sockets in `folder`.
pub(crate) fn sockets(folder: &Path) -> Vec<PathBuf> {
    let mut found: Vec<PathBuf> = std::fs::read_dir(folder)
        .map(|d| {
            d.flatten()
                .map(|e| e.path())
                .filter(|p| p.extension().is_some_and(|x| x == "sock"))
                .collect()
        })
        .unwrap_or_default();
    found.sort();
    found
}

/// Marks the key of the first line of `known_hosts` (the bastion's) `@revoked`, as a line
/// appended to the file.
pub(crate) fn revoke_the_bastions_key(known_hosts: &Path) {
    let text = std::fs::read_to_string(known_hosts).unwrap();
    let bastion: Vec<&str> = text
        .lines()
        .find(|l| !l.starts_with('#') && !l.trim().is_empty())
        .unwrap()
        .split_whitespace()
        .collect();
    std::fs::write(
        known_hosts,
        format!(
            "{text}@revoked {} {} {}\n",
            bastion[0], bastion[1], bastion[2]
        ),
    )
    .unwrap();
}

pub(crate) fn wait_until(what: &str, deadline: Duration, mut done: impl FnMut() -> bool) {
    let end = Instant::now() + deadline;
    while !done() {
        assert!(Instant::now() < end, "timed out waiting until {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

pub(crate) fn alive(pid: u64) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
        && !std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .unwrap_or_default()
            .contains(") Z ")
}

#[test]
fn ten_commands_in_a_row_are_one_ssh_connection() {
    let k = Kept::new("");
    for i in 0..10 {
        let r = k.ssh(&format!("echo run-{i}"));
        assert_eq!(r.status, Some(0), "{}", r.stderr);
        assert_eq!(r.stdout, format!("run-{i}\n"));
    }
    assert_eq!(k.connections(), 1, "{}", k.sshd.log());
    // Without the agent each command is its own connection.
    let r = k.run(&["--no-agent", "ssh", "--", "true"]);
    assert_eq!(r.status, Some(0), "{}", r.stderr);
    assert_eq!(k.connections(), 2, "{}", k.sshd.log());
}

#[test]
fn persist_zero_connects_directly_and_leaves_no_agent() {
    let k = Kept::new("persist = 0");
    for _ in 0..2 {
        assert_eq!(k.ssh("true").status, Some(0));
    }
    assert_eq!(k.connections(), 2);
    assert!(!k.socket().exists());
}

#[test]
fn the_agent_leaves_after_its_idle_time_and_removes_its_socket() {
    let k = Kept::new("persist = \"2s\"");
    assert_eq!(k.ssh("true").status, Some(0));
    let pid = k.status()["pid"].as_u64().unwrap();
    assert!(k.socket().exists());
    let mode = std::os::unix::fs::PermissionsExt::mode(
        &std::fs::metadata(k.socket()).unwrap().permissions(),
    );
    assert_eq!(mode & 0o777, 0o600);
    wait_until("the idle agent left", Duration::from_secs(15), || {
        !alive(pid) && !k.socket().exists()
    });
}

#[test]
fn a_restarted_bastion_is_reached_again_by_the_next_command() {
    let mut k = Kept::new("");
    assert_eq!(k.ssh("echo before").stdout, "before\n");
    k.sshd.restart();
    let r = k.ssh("echo after");
    assert_eq!(
        (r.status, r.stdout.as_str()),
        (Some(0), "after\n"),
        "{}",
        r.stderr
    );
    let s = k.status();
    assert_eq!(s["reconnects"], 1, "{s}");
    assert_eq!(s["connected"], true);
}

#[test]
fn another_user_gets_nothing_from_the_socket() {
    use std::os::unix::fs::PermissionsExt;
    let k = Kept::new("");
    assert_eq!(k.ssh("true").status, Some(0));
    // Open every folder on the way and the socket itself, so that only the agent's own
    // check (SO_PEERCRED) stands between another user and the session.
    let mut opened = Vec::new();
    for p in [
        k.home.path().to_path_buf(),
        k.home.runtime_dir(),
        k.folder(),
    ] {
        let before = std::fs::metadata(&p).unwrap().permissions();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o711)).unwrap();
        opened.push((p, before));
    }
    std::fs::set_permissions(k.socket(), std::fs::Permissions::from_mode(0o666)).unwrap();
    // Connects, asks for the status, prints all it got back; a refusal may show as a broken
    // pipe or a reset, which count as nothing received.
    let probe = "import socket,sys\n\
        s=socket.socket(socket.AF_UNIX)\n\
        s.connect(sys.argv[1])\n\
        d=b''\n\
        try:\n\
        \x20   s.sendall(b'{\"fingerprint\":\"\",\"op\":{\"op\":\"status\"}}\\n')\n\
        \x20   s.settimeout(10)\n\
        \x20   while True:\n\
        \x20       c=s.recv(4096)\n\
        \x20       if not c: break\n\
        \x20       d+=c\n\
        except (BrokenPipeError, ConnectionResetError):\n\
        \x20   pass\n\
        sys.stdout.write(repr(d))\n";
    let socket = k.socket();
    let as_user = |user: Option<&str>| {
        let mut c = match user {
            Some(u) => {
                let mut c = Command::new("setpriv");
                c.args([
                    &format!("--reuid={u}"),
                    &format!("--regid={u}"),
                    "--clear-groups",
                    "/usr/bin/python3",
                ]);
                c
            }
            None => Command::new("/usr/bin/python3"),
        };
        let out = c
            .args(["-c", probe])
            .arg(&socket)
            .output()
            .expect("python3 and setpriv");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    // The same probe as this user gets the status: the probe itself works.
    assert!(as_user(None).contains("\"reply\":\"status\""));
    assert_eq!(as_user(Some("65534")), "b''");
    for (p, before) in opened {
        std::fs::set_permissions(&p, before).unwrap();
    }
    // And a folder others can enter is refused before any socket is used.
    std::fs::set_permissions(k.folder(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let r = k.ssh("true");
    assert_eq!(r.status, Some(2), "{}", r.stderr);
    assert!(r.stderr.contains("chmod 700"), "{}", r.stderr);
    std::fs::set_permissions(k.folder(), std::fs::Permissions::from_mode(0o700)).unwrap();
}

#[test]
fn a_changed_host_key_is_refused_by_the_agent_as_by_a_direct_connection() {
    let mut k = Kept::new("");
    assert_eq!(k.ssh("true").status, Some(0));
    let key = k.sshd.host_key_file("ed25519");
    std::fs::remove_file(&key).unwrap();
    std::fs::remove_file(key.with_extension("pub")).unwrap();
    keygen(&key, "ed25519", "");
    let known_hosts = std::fs::read(k.home.path().join("known_hosts")).unwrap();
    k.sshd.restart();
    let through_agent = k.ssh("true");
    let direct = k.run(&["--no-agent", "ssh", "--", "true"]);
    assert_eq!(direct.status, Some(255), "{}", direct.stderr);
    assert_eq!(through_agent.status, Some(255), "{}", through_agent.stderr);
    assert_eq!(through_agent.stderr, direct.stderr);
    assert!(direct.stderr.contains("HOST KEY") || direct.stderr.contains("host key"));
    assert_eq!(
        std::fs::read(k.home.path().join("known_hosts")).unwrap(),
        known_hosts
    );
    assert!(
        !k.sshd
            .log()
            .contains("Accepted publickey for root from 127.0.0.1 port 0")
    );
}

#[test]
fn streams_eof_and_exit_statuses_through_the_agent_equal_the_direct_path() {
    let k = Kept::new("");
    let cases: [(&str, &[u8]); 5] = [
        ("echo out; echo err >&2; exit 3", b""),
        ("kill -TERM $$", b""),
        ("kill -KILL $$", b""),
        ("wc -c; echo done", b"twelve bytes"),
        ("exit 300", b""),
    ];
    for (command, stdin) in cases {
        let mut outcomes = Vec::new();
        for flags in [&[][..], &["--no-agent"][..]] {
            let mut c = k.home.paragon();
            c.args(flags)
                .args(["ssh", "--", command])
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped());
            let mut child = c.spawn().unwrap();
            child.stdin.take().unwrap().write_all(stdin).unwrap();
            let out = child.wait_with_output().unwrap();
            outcomes.push((
                out.status.code(),
                String::from_utf8_lossy(&out.stdout).into_owned(),
                String::from_utf8_lossy(&out.stderr).into_owned(),
            ));
        }
        assert_eq!(outcomes[0], outcomes[1], "{command}");
        match command {
            "echo out; echo err >&2; exit 3" => {
                assert_eq!(outcomes[0], (Some(3), "out\n".into(), "err\n".into()));
            }
            "kill -TERM $$" => assert_eq!(outcomes[0].0, Some(143)),
            "kill -KILL $$" => assert_eq!(outcomes[0].0, Some(137)),
            "wc -c; echo done" => assert_eq!(outcomes[0].1, "12\ndone\n"),
            _ => assert_eq!(outcomes[0].0, Some(44)),
        }
    }
    // Every agent run above went through the first command's connection.
    assert_eq!(k.connections(), 1 + cases.len(), "{}", k.sshd.log());
}

#[test]
fn a_pty_shell_through_the_agent_gets_its_size_and_resizes() {
    let k = Kept::new("");
    assert_eq!(k.ssh("true").status, Some(0));
    let bin = env!("CARGO_BIN_EXE_paragon-admin");
    let flags = tempfile::tempdir().unwrap();
    let (go, resized) = (flags.path().join("go"), flags.path().join("resized"));
    let inner = format!(
        "stty rows 33 cols 101; \
         (while [ ! -e '{go}' ]; do sleep 0.05; done; stty -F /dev/tty rows 40 cols 120; touch '{resized}') & \
         {bin} ssh; echo STATUS=$?",
        go = go.display(),
        resized = resized.display()
    );
    let mut t = Terminal::start(&k.home, &inner, &[("TERM", "vt220")]);
    let ask_size = b"stty size | sed 's/^/SI''ZE=/'\n";
    t.send(ask_size);
    t.wait_for("SIZE=33 101");
    std::fs::write(&go, "").unwrap();
    wait_until("the terminal was resized", Duration::from_secs(20), || {
        resized.exists()
    });
    t.ask_until(ask_size, "SIZE=", "SIZE=40 120");
    t.send(b"exit 7\n");
    let text = t.finish();
    assert!(text.contains("STATUS=7"), "{text}");
    assert_eq!(k.connections(), 1, "the shell did not use the agent");
}

/// An HTTP server on loopback answering every request with `body`, until dropped.
pub(crate) struct Http {
    pub(crate) port: u16,
}

impl Http {
    pub(crate) fn start(body: &'static str) -> Http {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        std::thread::spawn(move || {
            for s in l.incoming() {
                let Ok(mut s) = s else { return };
                let mut buf = [0u8; 4096];
                let _ = s.read(&mut buf);
                let _ = write!(
                    s,
                    "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
            }
        });
        Http { port }
    }
}

pub(crate) fn curl(port: u16) -> Option<String> {
    curl_within(port, 10)
}

/// The body at `http://127.0.0.1:PORT/` within `secs` seconds, or `None`.
pub(crate) fn curl_within(port: u16, secs: u32) -> Option<String> {
    let out = Command::new("curl")
        .args(["-sS", "--max-time", &secs.to_string()])
        .arg(format!("http://127.0.0.1:{port}/"))
        .output()
        .expect("curl");
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
}

#[test]
fn detached_forwards_survive_their_command_serve_curl_list_and_stop() {
    let k = Kept::new("");
    let http = Http::start("through the agent");
    let spec = format!("0:127.0.0.1:{}", http.port);
    let r = k.run(&["forward", "--detach", &spec, "--output", "json"]);
    assert_eq!(r.status, Some(0), "{}", r.stderr);
    let event: serde_json::Value = serde_json::from_str(r.stdout.trim()).unwrap();
    assert_eq!(event["event"], "listening", "{}", r.stdout);
    let local: std::net::SocketAddr = event["local"].as_str().unwrap().parse().unwrap();
    // The command has returned; the forward lives on in the agent.
    assert_eq!(curl(local.port()).as_deref(), Some("through the agent"));
    // Asked again, the same forward is returned as it is.
    let again = k.run(&["forward", "--detach", &spec, "--output", "json"]);
    let again: serde_json::Value = serde_json::from_str(again.stdout.trim()).unwrap();
    assert_eq!(again["local"], event["local"]);
    let list = k.run(&["forward", "--list", "--output", "json"]);
    let list: serde_json::Value = serde_json::from_str(&list.stdout).unwrap();
    assert_eq!(list.as_array().unwrap().len(), 1, "{list}");
    assert_eq!(list[0]["name"], event["name"]);
    assert_eq!(list[0]["connections"], 1);
    assert!(list[0]["received"].as_u64().unwrap() > 0);
    let table = k.run(&["forward", "--list"]);
    assert!(
        table.stdout.contains(&format!("127.0.0.1:{}", http.port)),
        "{}",
        table.stdout
    );
    let status = k.status();
    assert_eq!(status["forwards"].as_array().unwrap().len(), 1);
    let name = event["name"].as_str().unwrap();
    let r = k.run(&["forward", "--stop", name]);
    assert_eq!(r.status, Some(0), "{}", r.stderr);
    assert_eq!(curl(local.port()), None);
    let list = k.run(&["forward", "--list", "--output", "json"]);
    assert_eq!(list.stdout.trim(), "[]");
    assert_eq!(k.connections(), 1, "{}", k.sshd.log());
}

#[test]
fn two_commands_started_at_once_leave_one_agent() {
    let k = Kept::new("");
    let children: Vec<_> = (0..2)
        .map(|_| {
            k.paragon(&["ssh", "--", "echo both"])
                .stdout(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for c in children {
        let out = c.wait_with_output().unwrap();
        assert_eq!(out.status.code(), Some(0));
        assert_eq!(String::from_utf8_lossy(&out.stdout), "both\n");
    }
    assert_eq!(k.connections(), 1, "{}", k.sshd.log());
    assert_eq!(sockets(&k.folder()).len(), 1);
}

#[test]
fn a_changed_profile_replaces_the_agent_and_stop_all_stops_it() {
    let k = Kept::new("");
    assert_eq!(k.ssh("true").status, Some(0));
    let first = k.status()["pid"].as_u64().unwrap();
    // Another keepalive: a setting the session depends on.
    let kh = k.home.path().join("known_hosts");
    k.home
        .write_config(&k.sshd.profile_toml(&kh, "yes", "keepalive_interval = 5"));
    assert_eq!(k.ssh("true").status, Some(0));
    let second = k.status()["pid"].as_u64().unwrap();
    assert_ne!(first, second);
    wait_until("the old agent left", Duration::from_secs(10), || {
        !alive(first)
    });
    assert_eq!(k.run(&["agent", "stop", "--all"]).status, Some(0));
    wait_until("the agent stopped", Duration::from_secs(10), || {
        !alive(second) && !k.socket().exists()
    });
    let r = k.run(&["agent", "status"]);
    assert_eq!(r.status, Some(1));
    assert!(
        r.stderr.contains("no agent runs for profile test"),
        "{}",
        r.stderr
    );
}

/// Starts `paragon-admin ssh -- COMMAND` through the agent and returns once the command has
/// printed its first line (it runs on the bastion), for the caller to kill.
fn started(k: &Kept, command: &str) -> std::process::Child {
    let mut child = k
        .paragon(&["ssh", "--", command])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(child.stdout.as_mut().unwrap()),
        &mut line,
    )
    .unwrap();
    assert_eq!(line, "started\n");
    child
}

/// Commands whose client vanished mid-run and that outlive the hang-up (they ignore SIGHUP;
/// sshd also refuses signals to root's sessions) are closed by the agent after a wait and
/// counted as held, and the idle session holding them is replaced by a new one, so a kept
/// session does not grow with every interrupted command.
#[test]
fn a_session_holding_the_channels_of_vanished_clients_is_renewed_when_idle() {
    let k = Kept::new("");
    assert_eq!(k.ssh("true").status, Some(0));
    let mut children: Vec<_> = (0..32)
        .map(|_| started(&k, "trap '' HUP; echo started; exec sleep 60"))
        .collect();
    for c in &mut children {
        c.kill().unwrap();
        c.wait().unwrap();
    }
    assert_eq!(k.connections(), 1, "{}", k.sshd.log());
    wait_until("the session renewed", Duration::from_secs(60), || {
        let s = k.status();
        s["renewals"] == 1 && s["channels_held"] == 0 && s["connected"] == true
    });
    assert_eq!(k.connections(), 2, "{}", k.sshd.log());
    assert_eq!(k.ssh("echo still here").stdout, "still here\n");
    assert_eq!(k.connections(), 2, "{}", k.sshd.log());
}

/// known_hosts changed under a live agent. Another host's line added (as OpenSSH appends to a
/// shared file) changes nothing: the same agent and session (the key is checked against the
/// file as it is, without a new connection). The bastion's own key marked `@revoked` is
/// refused by the next command as by a direct connection.
#[test]
fn a_changed_known_hosts_has_the_agent_check_the_bastions_key_again() {
    let k = Kept::new("");
    assert_eq!(k.ssh("true").status, Some(0));
    let pid = k.status()["pid"].clone();
    let kh = k.home.path().join("known_hosts");
    let text = std::fs::read_to_string(&kh).unwrap();
    let other = k.home.path().join("other_key");
    keygen(&other, "ed25519", "");
    let other = std::fs::read_to_string(other.with_extension("pub")).unwrap();
    let other: Vec<&str> = other.split_whitespace().take(2).collect();
    std::fs::write(
        &kh,
        format!("{text}other.example {} {}\n", other[0], other[1]),
    )
    .unwrap();
    assert_eq!(k.ssh("echo checked").stdout, "checked\n");
    let status = k.status();
    assert_eq!(status["pid"], pid, "the same agent: {status}");
    assert_eq!(status["renewals"], 0, "{status}");
    assert_eq!(k.connections(), 1, "{}", k.sshd.log());

    revoke_the_bastions_key(&kh);
    let through_agent = k.ssh("true");
    let direct = k.run(&["--no-agent", "ssh", "--", "true"]);
    assert_eq!(direct.status, Some(255), "{}", direct.stderr);
    assert!(direct.stderr.contains("revoked"), "{}", direct.stderr);
    assert_eq!(through_agent.status, Some(255), "{}", through_agent.stderr);
    assert_eq!(through_agent.stderr, direct.stderr);
}

/// Completing `forward --stop` offers `all` and the forwards the agent holds, by name.
#[test]
fn completion_for_forward_stop_offers_the_detached_forwards_and_all() {
    let k = Kept::new("");
    let web = Http::start("web");
    let spec = format!("web=0:127.0.0.1:{}", web.port);
    let r = k.run(&["forward", "--detach", &spec, "--output", "json"]);
    assert_eq!(r.status, Some(0), "{}", r.stderr);
    let complete = |typed: &str| {
        let out = k
            .paragon(&["--", "paragon-admin", "forward", "--stop", typed])
            .env("COMPLETE", "bash")
            .env("_CLAP_COMPLETE_INDEX", "3")
            .env("_CLAP_COMPLETE_COMP_TYPE", "9")
            .env("_CLAP_COMPLETE_SPACE", "true")
            .env("_CLAP_IFS", "\n")
            .output()
            .unwrap();
        let mut words: Vec<String> = String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(str::to_string)
            .collect();
        words.sort();
        words
    };
    assert_eq!(complete(""), ["all", "web"]);
    assert_eq!(complete("w"), ["web"]);
    let r = k.run(&["agent", "stop"]);
    assert_eq!(r.status, Some(0), "{}", r.stderr);
}
