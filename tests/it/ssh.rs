//! `paragon-admin ssh`, `kubectl`, `helm`: exit statuses, streams, host keys, authentication,
//! against a real OpenSSH sshd started by `support::sshd`.

use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Stdio};

use paragon_admin::sandbox::web::DemoWeb;

use crate::support::agent::Agent;
use crate::support::monitoring::{Monitoring, QUIET_ALERTS};
use crate::support::netns::Topology;
use crate::support::pty::{Terminal, on_terminal};
use crate::support::sshd::{Sshd, SshdOptions, keygen};
use crate::support::{Home, Run, run};

/// OpenSSH's own client against the fixture, as a reference for what the fixture offers.
fn openssh(sshd: &Sshd, known_hosts: &std::path::Path, cmd: &str) -> std::process::Output {
    Command::new("ssh")
        .args([
            "-F",
            "none",
            "-o",
            "BatchMode=yes",
            "-o",
            "StrictHostKeyChecking=yes",
        ])
        .arg("-o")
        .arg(format!("UserKnownHostsFile={}", known_hosts.display()))
        .arg("-i")
        .arg(&sshd.client_key)
        .arg("-p")
        .arg(sshd.port.to_string())
        .arg(format!("root@{}", sshd.options.listen))
        .arg(cmd)
        .output()
        .expect("ssh must be installed (openssh-client)")
}

#[test]
fn fixture_serves_openssh_with_helm_on_path_and_restarts_on_same_port() {
    let mut sshd = Sshd::start();
    let dir = tempfile::tempdir().unwrap();
    let kh = sshd.write_known_hosts(&dir.path().join("known_hosts"));
    let out = openssh(&sshd, &kh, "helm 'a b' ''");
    assert!(
        out.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&out.stderr),
        sshd.log()
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout), "<a b>\n<>\n");
    let port = sshd.port;
    sshd.restart();
    assert_eq!(sshd.port, port);
    let out = openssh(&sshd, &kh, "exit 3");
    assert_eq!(
        out.status.code(),
        Some(3),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// An sshd and a home whose profile `test` points at it with its key recorded (policy yes).
fn bastion() -> (Sshd, Home, PathBuf) {
    let sshd = Sshd::start();
    let home = Home::new();
    let kh = sshd.configure(&home);
    (sshd, home, kh)
}

fn ssh_cmd(home: &Home, args: &[&str]) -> Run {
    run(home
        .paragon()
        .arg("ssh")
        .arg("--")
        .args(args)
        .stdin(Stdio::null()))
}

/// `ssh-keygen -lf` of a public key line: OpenSSH's own SHA256 fingerprint.
fn openssh_fingerprint(pub_line: &str) -> String {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("k.pub");
    std::fs::write(&p, format!("{pub_line}\n")).unwrap();
    let out = Command::new("ssh-keygen")
        .arg("-lf")
        .arg(&p)
        .output()
        .unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    text.split_whitespace().nth(1).unwrap().to_string()
}

fn sha256_hex(data: &[u8]) -> String {
    let mut child = Command::new("sha256sum")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let data = data.to_vec();
    let writer = std::thread::spawn(move || stdin.write_all(&data).unwrap());
    let out = child.wait_with_output().unwrap();
    writer.join().unwrap();
    String::from_utf8(out.stdout).unwrap()[..64].to_string()
}

#[test]
fn remote_exit_status_and_separate_streams() {
    let (sshd, home, _) = bastion();
    let r = ssh_cmd(&home, &["echo out; echo err >&2; exit 3"]);
    assert_eq!(r.status, Some(3), "{}\n{}", r.stderr, sshd.log());
    assert_eq!(r.stdout, "out\n");
    assert_eq!(r.stderr, "err\n");
    let r = ssh_cmd(&home, &["true"]);
    assert_eq!(r.status, Some(0), "{}", r.stderr);
}

#[test]
fn command_words_are_joined_with_spaces_like_openssh() {
    let (_sshd, home, _) = bastion();
    let r = ssh_cmd(&home, &["echo", "a  b", "$((6*7))"]);
    assert_eq!(r.status, Some(0), "{}", r.stderr);
    assert_eq!(r.stdout, "a b 42\n");
}

#[test]
fn large_output_arrives_intact() {
    let (_sshd, home, _) = bastion();
    let script = "f=$(mktemp); head -c 30000000 /dev/urandom > $f; sha256sum < $f | cut -c1-64 >&2; cat $f; rm -f $f";
    let out = home
        .paragon()
        .args(["ssh", "--", script])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(out.stdout.len(), 30_000_000);
    let remote = String::from_utf8(out.stderr).unwrap();
    assert_eq!(remote.trim(), sha256_hex(&out.stdout));
}

#[test]
fn stdin_is_streamed_and_its_eof_passed_on() {
    let (_sshd, home, _) = bastion();
    // Through the agent (the default) and on a connection of its own: many reads and packets,
    // and a length that is no multiple of either.
    let data: Vec<u8> = (0..5_000_001u32).map(|i| (i % 251) as u8).collect();
    let want = sha256_hex(&data);
    for flags in [&[][..], &["--no-agent"][..]] {
        let mut child = home
            .paragon()
            .args(flags)
            .args(["ssh", "--", "sha256sum | cut -c1-64; wc -c < /dev/null"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut stdin = child.stdin.take().unwrap();
        let sent = data.clone();
        let writer = std::thread::spawn(move || stdin.write_all(&sent).unwrap());
        let out = child.wait_with_output().unwrap();
        writer.join().unwrap();
        assert_eq!(
            out.status.code(),
            Some(0),
            "{flags:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(
            String::from_utf8(out.stdout).unwrap(),
            format!("{want}\n0\n"),
            "{flags:?}"
        );
    }
}

#[test]
fn helm_receives_every_argument_exactly() {
    let (_sshd, home, _) = bastion();
    let args = [
        "",
        "a b",
        "$HOME",
        "it's",
        "a;b",
        "\"q\"",
        "*",
        "--set=x=1,y=2",
        "tab\there",
        "`id`",
        "-n",
    ];
    let r = run(home.paragon().arg("helm").args(args).stdin(Stdio::null()));
    assert_eq!(r.status, Some(0), "{}", r.stderr);
    let want: String = args.iter().map(|a| format!("<{a}>\n")).collect();
    assert_eq!(r.stdout, want);
}

#[test]
fn real_kubectl_receives_arguments_exactly_and_returns_its_status() {
    let (_sshd, home, _) = bastion();
    let r = run(home
        .paragon()
        .args(["kubectl", "version", "--client", "-o", "json"])
        .stdin(Stdio::null()));
    assert_eq!(r.status, Some(0), "{}", r.stderr);
    let v: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    assert!(v["clientVersion"]["gitVersion"].is_string(), "{}", r.stdout);
    // A kubeconfig in a folder with a space, a cluster name with shell characters.
    let dir = home.path().join("kube dir");
    std::fs::create_dir(&dir).unwrap();
    let kc = dir.join("config");
    std::fs::write(
        &kc,
        "apiVersion: v1\nkind: Config\nclusters:\n- name: \"it's $x; *\"\n  cluster:\n    server: https://127.0.0.1:1\n",
    )
    .unwrap();
    let r = run(home
        .paragon()
        .args(["kubectl", "--kubeconfig"])
        .arg(&kc)
        .args(["config", "view", "-o", "jsonpath={.clusters[0].name}"])
        .stdin(Stdio::null()));
    assert_eq!(r.status, Some(0), "{}", r.stderr);
    assert_eq!(r.stdout, "it's $x; *");
    let r = run(home
        .paragon()
        .args(["kubectl", "no-such-command"])
        .stdin(Stdio::null()));
    assert_eq!(r.status, Some(1), "{}", r.stderr);
}

#[test]
fn closed_port_exits_255_quickly() {
    let home = Home::new();
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    drop(l);
    home.write_config(&format!(
        "[profiles.p]\nhost = \"127.0.0.1\"\nport = {port}\nuser = \"root\"\nknown_hosts = \"kh\"\n"
    ));
    let start = std::time::Instant::now();
    let r = ssh_cmd(&home, &["true"]);
    assert_eq!(r.status, Some(255), "{}", r.stderr);
    assert!(
        r.stderr
            .contains(&format!("cannot connect to 127.0.0.1:{port}")),
        "{}",
        r.stderr
    );
    assert!(start.elapsed() < std::time::Duration::from_secs(5));
}

#[test]
fn silent_server_times_out_with_255() {
    let home = Home::new();
    // Accepts TCP and never speaks SSH.
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    home.write_config(&format!(
        "[profiles.p]\nhost = \"127.0.0.1\"\nport = {port}\nuser = \"root\"\nconnect_timeout = 1\nknown_hosts = \"kh\"\n"
    ));
    let r = ssh_cmd(&home, &["true"]);
    drop(l);
    assert_eq!(r.status, Some(255), "{}", r.stderr);
    assert!(r.stderr.contains("timed out after 1s"), "{}", r.stderr);
}

#[test]
fn connecting_is_said_on_a_terminal_and_erased_never_in_a_pipe_json_or_kube_credential() {
    let home = Home::new();
    // Accepts TCP and never speaks SSH: a bastion that keeps the user waiting.
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    home.write_config(&format!(
        "[profiles.p]\nhost = \"127.0.0.1\"\nport = {port}\nuser = \"root\"\nconnect_timeout = 2\nknown_hosts = \"kh\"\n"
    ));
    let waiting = format!("connecting to 127.0.0.1:{port} ...");
    // Through the agent it starts (the default) and with a connection of its own: the line
    // shows while waiting, then is erased and the error takes its place.
    for no_agent in [false, true] {
        let mut cmd = home.paragon();
        cmd.args(no_agent.then_some("--no-agent"))
            .args(["ssh", "--", "true"]);
        let mut t = Terminal::spawn(&cmd, &[("TERM", "xterm")]);
        t.wait_for(&waiting);
        let (status, text) = t.finish_status();
        assert_eq!(status, 255, "{text}");
        let replaced = format!(
            "{waiting}\r\x1b[Kparagon-admin: connecting to 127.0.0.1:{port} timed out after 2s"
        );
        assert!(text.contains(&replaced), "no_agent {no_agent}: {text:?}");
    }
    // Never in a pipe, nor with JSON output on a terminal.
    let r = ssh_cmd(&home, &["true"]);
    assert_eq!(r.status, Some(255), "{}", r.stderr);
    assert!(!r.stderr.contains(&waiting), "{}", r.stderr);
    let mut cmd = home.paragon();
    cmd.args(["--output", "json", "ssh", "--", "true"]);
    let (status, text) = Terminal::spawn(&cmd, &[("TERM", "xterm")]).finish_status();
    assert_eq!(status, 255, "{text}");
    assert!(!text.contains(&waiting), "{text:?}");
    // Nor from kube-credential, whose terminal is kubectl's (or k9s's) to draw on.
    let mut cmd = home.paragon();
    cmd.args(["kube-credential"]);
    let (status, text) = Terminal::spawn(&cmd, &[("TERM", "xterm")]).finish_status();
    assert_eq!(status, 255, "{text}");
    assert!(!text.contains(&waiting), "{text:?}");
    drop(l);

    // A bastion that answers: the line is gone before the command's own output.
    let sshd = Sshd::start();
    let home = Home::new();
    sshd.configure(&home);
    let mut cmd = home.paragon();
    cmd.args(["--no-agent", "ssh", "--", "echo", "in"]);
    let (status, text) = Terminal::spawn(&cmd, &[("TERM", "xterm")]).finish_status();
    assert_eq!(status, 0, "{text}");
    let shown = format!("connecting to 127.0.0.1:{} ...\r\x1b[K", sshd.port);
    let at = text.find(&shown).unwrap_or_else(|| panic!("{text:?}"));
    assert!(text[at + shown.len()..].contains("in"), "{text:?}");
}

/// `ssh` to a profile whose bastion is 127.0.0.1:`port`: it exits 255 saying `said` of it.
fn ssh_to_port_says(port: u16, said: &str) {
    let home = Home::new();
    home.write_config(&format!(
        "[profiles.p]\nhost = \"127.0.0.1\"\nport = {port}\nuser = \"root\"\nconnect_timeout = 10\nknown_hosts = \"kh\"\n"
    ));
    let r = ssh_cmd(&home, &["true"]);
    assert_eq!(r.status, Some(255), "{}", r.stderr);
    let expected = format!("paragon-admin: 127.0.0.1:{port} {said}");
    assert!(r.stderr.contains(&expected), "{expected}\n{}", r.stderr);
}

#[test]
fn a_port_that_speaks_http_is_not_an_ssh_server_and_says_what_it_answered() {
    // hyper (the demo's web page) answers our identification line with a status line.
    let rt = tokio::runtime::Runtime::new().unwrap();
    let web = rt
        .block_on(DemoWeb::bind("127.0.0.1:0".parse().unwrap()))
        .unwrap();
    ssh_to_port_says(
        web.addr().port(),
        "is not an SSH server? it answered `HTTP/1.1 400 Bad Request`",
    );
    drop(web);
    // Python's http.server takes the line for an HTTP/0.9 request: a page, no status line.
    let python = Monitoring::start(QUIET_ALERTS);
    ssh_to_port_says(
        python.port,
        "is not an SSH server? it answered `<!DOCTYPE HTML>`",
    );
}

#[test]
fn a_server_that_closes_at_once_is_named_with_255() {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    l.set_nonblocking(true).unwrap();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let stopped = stop.clone();
    // Accepts and closes every connection until the test is over.
    let closer = std::thread::spawn(move || {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        while !stopped.load(std::sync::atomic::Ordering::Relaxed)
            && std::time::Instant::now() < deadline
        {
            match l.accept() {
                Ok((s, _)) => drop(s),
                Err(_) => std::thread::sleep(std::time::Duration::from_millis(10)),
            }
        }
    });
    ssh_to_port_says(
        port,
        "closed the connection before identifying itself as an SSH server",
    );
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    closer.join().unwrap();
}

#[test]
fn unauthorized_key_exits_255_naming_what_was_tried() {
    let sshd = Sshd::start();
    let home = Home::new();
    let kh = sshd.write_known_hosts(&home.path().join("known_hosts"));
    let other = home.path().join("other_key");
    keygen(&other, "ed25519", "");
    let text = sshd.profile_toml(&kh, "yes", "").replace(
        &sshd.client_key.display().to_string(),
        &other.display().to_string(),
    );
    home.write_config(&text);
    let r = ssh_cmd(&home, &["true"]);
    assert_eq!(r.status, Some(255), "{}", r.stderr);
    assert!(
        r.stderr.contains("permission denied for root@127.0.0.1"),
        "{}",
        r.stderr
    );
    assert!(
        r.stderr.contains(&other.display().to_string()),
        "{}",
        r.stderr
    );
    // The line the bastion would need, ready to be copied.
    let public = std::fs::read_to_string(other.with_extension("pub")).unwrap();
    let hint = format!(
        "to let it in, add this line to ~root/.ssh/authorized_keys on the bastion: `{}`\n",
        public.trim()
    );
    assert!(r.stderr.ends_with(&hint), "{hint}{}", r.stderr);
    assert_eq!(r.stderr.lines().count(), 1, "{}", r.stderr);
    // Added there, it lets the key in.
    sshd.authorize(&other.with_extension("pub"));
    let r = ssh_cmd(&home, &["true"]);
    assert_eq!(r.status, Some(0), "{}", r.stderr);
}

#[test]
fn missing_identity_file_is_a_config_error() {
    let (sshd, home, kh) = bastion();
    let text = sshd
        .profile_toml(&kh, "yes", "")
        .replace(&sshd.client_key.display().to_string(), "/nonexistent/key");
    home.write_config(&text);
    let r = ssh_cmd(&home, &["true"]);
    assert_eq!(r.status, Some(2), "{}", r.stderr);
    assert!(r.stderr.contains("/nonexistent/key"), "{}", r.stderr);
}

#[test]
fn unknown_host_is_refused_under_yes_with_fingerprint_and_known_hosts_untouched() {
    let sshd = Sshd::start();
    let home = Home::new();
    let kh = home.path().join("known_hosts");
    std::fs::write(&kh, "# mine\n").unwrap();
    home.write_config(&sshd.profile_toml(&kh, "yes", ""));
    let r = ssh_cmd(&home, &["touch /tmp/should-not-run-$PPID"]);
    assert_eq!(r.status, Some(255), "{}", r.stderr);
    let fp = openssh_fingerprint(&sshd.host_public_key("ed25519"));
    assert!(r.stderr.contains(&fp), "{}", r.stderr);
    assert!(r.stderr.contains("ssh-keyscan"), "{}", r.stderr);
    assert_eq!(std::fs::read_to_string(&kh).unwrap(), "# mine\n");
    assert!(!sshd.log().contains("Accepted publickey"), "{}", sshd.log());
}

#[test]
fn ask_without_a_terminal_refuses_and_says_how_to_verify() {
    let sshd = Sshd::start();
    let home = Home::new();
    let kh = home.path().join("known_hosts");
    home.write_config(&sshd.profile_toml(&kh, "ask", ""));
    let r = ssh_cmd(&home, &["true"]);
    assert_eq!(r.status, Some(255), "{}", r.stderr);
    let fp = openssh_fingerprint(&sshd.host_public_key("ed25519"));
    assert!(r.stderr.contains(&fp), "{}", r.stderr);
    assert!(r.stderr.contains("no terminal"), "{}", r.stderr);
    assert!(r.stderr.contains("accept-new"), "{}", r.stderr);
    assert!(!kh.exists());
}

#[test]
fn accept_new_records_exactly_one_correct_line_then_yes_accepts_it() {
    let sshd = Sshd::start();
    let home = Home::new();
    let kh = home.path().join("ssh").join("known_hosts");
    home.write_config(&sshd.profile_toml(&kh, "accept-new", ""));
    let r = ssh_cmd(&home, &["echo ok"]);
    assert_eq!(r.status, Some(0), "{}", r.stderr);
    assert_eq!(r.stdout, "ok\n");
    assert_eq!(
        std::fs::read_to_string(&kh).unwrap(),
        sshd.known_hosts_line()
    );
    // OpenSSH itself accepts the line we wrote.
    let out = openssh(&sshd, &kh, "true");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    home.write_config(&sshd.profile_toml(&kh, "yes", ""));
    let r = ssh_cmd(&home, &["true"]);
    assert_eq!(r.status, Some(0), "{}", r.stderr);
    assert_eq!(
        std::fs::read_to_string(&kh).unwrap(),
        sshd.known_hosts_line()
    );
}

#[test]
fn changed_host_key_is_refused_under_every_policy_and_known_hosts_untouched() {
    let sshd = Sshd::start();
    let home = Home::new();
    let other = home.path().join("impostor");
    keygen(&other, "ed25519", "");
    let impostor = std::fs::read_to_string(other.with_extension("pub")).unwrap();
    let mut fields = impostor.split_whitespace();
    let line = format!(
        "# header\n{} {} {}\n",
        sshd.host_pattern(),
        fields.next().unwrap(),
        fields.next().unwrap()
    );
    let kh = home.path().join("known_hosts");
    std::fs::write(&kh, &line).unwrap();
    let recorded = openssh_fingerprint(impostor.trim());
    let offered = openssh_fingerprint(&sshd.host_public_key("ed25519"));
    for policy in ["yes", "accept-new", "ask"] {
        home.write_config(&sshd.profile_toml(&kh, policy, ""));
        let r = ssh_cmd(&home, &["true"]);
        assert_eq!(r.status, Some(255), "{policy}: {}", r.stderr);
        assert!(r.stderr.contains("CHANGED"), "{policy}: {}", r.stderr);
        assert!(r.stderr.contains(&recorded), "{policy}: {}", r.stderr);
        assert!(r.stderr.contains(&offered), "{policy}: {}", r.stderr);
        assert_eq!(std::fs::read(&kh).unwrap(), line.as_bytes(), "{policy}");
    }
    assert!(!sshd.log().contains("Accepted publickey"), "{}", sshd.log());
}

#[test]
fn hashed_known_hosts_entries_from_ssh_keygen_are_matched() {
    let (sshd, home, kh) = bastion();
    let st = Command::new("ssh-keygen")
        .arg("-H")
        .arg("-f")
        .arg(&kh)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .unwrap();
    assert!(st.success());
    let text = std::fs::read_to_string(&kh).unwrap();
    assert!(text.starts_with("|1|"), "{text}");
    let r = ssh_cmd(&home, &["echo hashed"]);
    assert_eq!(r.status, Some(0), "{}\n{}", r.stderr, sshd.log());
    assert_eq!(r.stdout, "hashed\n");
}

#[test]
fn host_with_several_key_types_proves_the_recorded_one() {
    let sshd = Sshd::start_with(SshdOptions {
        host_key_types: vec!["ecdsa".into(), "ed25519".into(), "rsa".into()],
        ..Default::default()
    });
    let home = Home::new();
    for t in ["ecdsa", "rsa", "ed25519"] {
        let key = sshd.host_public_key(t);
        let mut f = key.split_whitespace();
        let kh = home.path().join(format!("kh_{t}"));
        std::fs::write(
            &kh,
            format!(
                "{} {} {}\n",
                sshd.host_pattern(),
                f.next().unwrap(),
                f.next().unwrap()
            ),
        )
        .unwrap();
        home.write_config(&sshd.profile_toml(&kh, "yes", ""));
        let r = ssh_cmd(&home, &["true"]);
        assert_eq!(r.status, Some(0), "{t}: {}", r.stderr);
    }
}

#[test]
fn revoked_host_key_is_refused() {
    let (sshd, home, kh) = bastion();
    let key = sshd.host_public_key("ed25519");
    let mut f = key.split_whitespace();
    let mut text = std::fs::read_to_string(&kh).unwrap();
    text.push_str(&format!(
        "@revoked * {} {}\n",
        f.next().unwrap(),
        f.next().unwrap()
    ));
    std::fs::write(&kh, &text).unwrap();
    for policy in ["yes", "accept-new"] {
        home.write_config(&sshd.profile_toml(&kh, policy, ""));
        let r = ssh_cmd(&home, &["true"]);
        assert_eq!(r.status, Some(255), "{}", r.stderr);
        assert!(r.stderr.contains("@revoked"), "{}", r.stderr);
        assert_eq!(std::fs::read_to_string(&kh).unwrap(), text);
    }
}

#[test]
fn bad_profile_exits_2() {
    let home = Home::new();
    home.write_config("[profiles.p]\nhost = \"b\"\nstrict_host_key_checking = \"no\"\n");
    let r = ssh_cmd(&home, &["true"]);
    assert_eq!(r.status, Some(2), "{}", r.stderr);
}

#[test]
fn proxy_jump_reaches_the_bastion_through_another_sshd() {
    let bastion = Sshd::start();
    let jump = Sshd::start();
    jump.authorize(&bastion.client_key.with_extension("pub"));
    let home = Home::new();
    let kh = home.path().join("known_hosts");
    std::fs::write(
        &kh,
        format!("{}{}", bastion.known_hosts_line(), jump.known_hosts_line()),
    )
    .unwrap();
    let extra = format!("proxy_jump = \"root@127.0.0.1:{}\"", jump.port);
    home.write_config(&bastion.profile_toml(&kh, "yes", &extra));
    let r = ssh_cmd(&home, &["echo via-jump"]);
    assert_eq!(r.status, Some(0), "{}\n{}", r.stderr, jump.log());
    assert_eq!(r.stdout, "via-jump\n");
    assert!(jump.log().contains("Accepted publickey"), "{}", jump.log());
    // The jump host's key is checked the same way.
    std::fs::write(&kh, bastion.known_hosts_line()).unwrap();
    let r = ssh_cmd(&home, &["echo via-jump"]);
    assert_eq!(r.status, Some(255), "{}", r.stderr);
    assert!(
        r.stderr.contains(&format!("[127.0.0.1]:{}", jump.port)),
        "{}",
        r.stderr
    );
}

#[test]
fn pty_shell_gets_size_term_and_resizes_and_leaves_the_terminal_sane() {
    let (sshd, home, _) = bastion();
    let bin = env!("CARGO_BIN_EXE_paragon-admin");
    let flags = tempfile::tempdir().unwrap();
    let (go, resized) = (flags.path().join("go"), flags.path().join("resized"));
    // `script` gives the shell a terminal. The outer shell sizes it, and resizes it (the
    // kernel sends SIGWINCH) once the test says so; after we exit it prints its settings.
    let inner = format!(
        "stty rows 33 cols 101; \
         (while [ ! -e '{go}' ]; do sleep 0.05; done; stty -F /dev/tty rows 40 cols 120; touch '{resized}') & \
         {bin} ssh; echo STATUS=$?; stty -a",
        go = go.display(),
        resized = resized.display()
    );
    let mut t = Terminal::start(&home, &inner, &[("TERM", "vt220")]);
    // The quotes keep the typed line (echoed by the terminal) from reading as an answer.
    let ask_size = b"stty size | sed 's/^/SI''ZE=/'\n";
    t.send(b"echo TE''RM=$TERM\n");
    t.send(ask_size);
    t.wait_for("SIZE=33 101");
    assert!(t.text().contains("TERM=vt220"), "{}", t.text());
    std::fs::write(&go, "").unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while !resized.exists() {
        assert!(
            std::time::Instant::now() < deadline,
            "the outer terminal was never resized"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    // The window change reaches the remote PTY asynchronously: ask until it shows.
    t.ask_until(ask_size, "SIZE=", "SIZE=40 120");
    t.send(b"exit 7\n");
    let text = t.finish();
    assert!(text.contains("STATUS=7"), "{text}\n{}", sshd.log());
    let after = &text[text.find("STATUS=7").unwrap()..];
    assert!(
        after.contains("icanon") && !after.contains("-icanon"),
        "{after}"
    );
    assert!(
        after.contains(" echo ") && !after.contains("-echo "),
        "{after}"
    );
}

#[test]
fn passthrough_gets_a_pty_only_when_stdin_is_a_terminal() {
    let (sshd, home, _) = bastion();
    // This sshd's `helm` reports whether its stdin is a terminal.
    std::fs::write(
        sshd.bin_dir.join("helm"),
        "#!/bin/sh\nif tty -s; then echo tty; else echo no-tty; fi\n",
    )
    .unwrap();
    let r = run(home.paragon().arg("helm").stdin(Stdio::null()));
    assert_eq!(r.status, Some(0), "{}", r.stderr);
    assert_eq!(r.stdout, "no-tty\n");
    let bin = env!("CARGO_BIN_EXE_paragon-admin");
    // stdin stays open until the command is done: `script` ends its child at stdin's EOF.
    let text = on_terminal(&home, &format!("{bin} helm; echo STATUS=$?"), "", b"");
    assert!(text.contains("tty") && !text.contains("no-tty"), "{text}");
    assert!(text.contains("STATUS=0"), "{text}");
    // A terminal on stdin but a pipe on stdout: no PTY, so the pipe gets clean lines.
    let text = on_terminal(
        &home,
        &format!("{bin} helm | od -c; echo STATUS=$?"),
        "",
        b"",
    );
    assert!(text.contains("n   o   -   t   t   y  \\n"), "{text}");
}

#[test]
fn ssh_agent_keys_are_tried_first_and_named_when_refused() {
    let sshd = Sshd::start();
    let home = Home::new();
    let kh = sshd.write_known_hosts(&home.path().join("known_hosts"));
    // No identity_file, and no ~/.ssh keys in the clean home: only the agent can help.
    let text = sshd
        .profile_toml(&kh, "yes", "")
        .lines()
        .filter(|l| !l.starts_with("identity_file"))
        .collect::<Vec<_>>()
        .join("\n");
    home.write_config(&text);
    let agent = Agent::start();
    let r = run(home
        .paragon()
        .env("SSH_AUTH_SOCK", agent.sock())
        .args(["ssh", "--", "true"])
        .stdin(Stdio::null()));
    assert_eq!(r.status, Some(255), "{}", r.stderr);
    assert!(
        r.stderr.contains("tried: ssh-agent (0 keys)"),
        "{}",
        r.stderr
    );
    agent.add(&sshd.client_key);
    let r = run(home
        .paragon()
        .env("SSH_AUTH_SOCK", agent.sock())
        .args(["ssh", "--", "echo agent"])
        .stdin(Stdio::null()));
    assert_eq!(r.status, Some(0), "{}", r.stderr);
    assert_eq!(r.stdout, "agent\n");
}

#[test]
fn ask_on_a_terminal_shows_the_fingerprint_and_records_only_on_yes() {
    let sshd = Sshd::start();
    let home = Home::new();
    let kh = home.path().join("known_hosts");
    home.write_config(&sshd.profile_toml(&kh, "ask", ""));
    let fp = openssh_fingerprint(&sshd.host_public_key("ed25519"));
    let bin = env!("CARGO_BIN_EXE_paragon-admin");
    let line = format!("{bin} ssh -- echo asked; echo STATUS=$?");

    let text = on_terminal(&home, &line, "continue connecting", b"n");
    assert!(text.contains(&fp), "{text}");
    assert!(text.contains("STATUS=255"), "{text}");
    assert!(!text.contains("asked\r\n"), "{text}");
    assert!(!kh.exists());

    let text = on_terminal(&home, &line, "continue connecting", b"y");
    assert!(text.contains(&fp), "{text}");
    assert!(text.contains("STATUS=0"), "{text}");
    assert!(text.contains("asked"), "{text}");
    assert_eq!(
        std::fs::read_to_string(&kh).unwrap(),
        sshd.known_hosts_line()
    );
}

#[test]
fn locked_identity_asks_for_its_passphrase_on_a_terminal() {
    let sshd = Sshd::start();
    let home = Home::new();
    let key = home.path().join("locked_key");
    keygen(&key, "ed25519", "typed pass");
    sshd.authorize(&key.with_extension("pub"));
    let kh = sshd.write_known_hosts(&home.path().join("known_hosts"));
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    // A profile name with no stored secret, so the prompt is the only source.
    let text = sshd
        .profile_toml_named(&format!("prompt{nanos}"), &kh, "yes", "")
        .replace(
            &sshd.client_key.display().to_string(),
            &key.display().to_string(),
        );
    home.write_config(&text);
    let bin = env!("CARGO_BIN_EXE_paragon-admin");
    let line = format!("{bin} ssh -- echo unlocked-by-prompt; echo STATUS=$?");
    let text = on_terminal(&home, &line, "Passphrase for", b"typed pass\n");
    assert!(text.contains("Passphrase for"), "{text}");
    assert!(text.contains("unlocked-by-prompt"), "{text}");
    assert!(text.contains("STATUS=0"), "{text}");
    assert!(!text.contains("typed pass"), "{text}");
}

#[test]
fn fixture_runs_sshd_inside_a_network_namespace_behind_a_prefix() {
    let topology = Topology::new(&["bastion"]);
    let ns = topology.ns("bastion").to_string();
    let mut sshd = Sshd::start_with(SshdOptions {
        prefix: vec!["ip".into(), "netns".into(), "exec".into(), ns.clone()],
        ..Default::default()
    });
    let home = Home::new();
    sshd.configure(&home);
    let base = home.paragon();
    let in_ns = |cmd: &str| {
        let mut c = Command::new("ip");
        c.env_clear();
        for (k, v) in base.get_envs() {
            if let Some(v) = v {
                c.env(k, v);
            }
        }
        c.args([
            "netns",
            "exec",
            &ns,
            env!("CARGO_BIN_EXE_paragon-admin"),
            "ssh",
            "--",
            cmd,
        ])
        .stdin(Stdio::null());
        run(&mut c)
    };
    let r = in_ns("echo in-ns");
    assert_eq!(r.status, Some(0), "{}\n{}", r.stderr, sshd.log());
    assert_eq!(r.stdout, "in-ns\n");
    sshd.restart();
    let r = in_ns("echo again");
    assert_eq!(r.status, Some(0), "{}\n{}", r.stderr, sshd.log());
}

/// A "y" typed before the host-key question appeared is discarded (tcflush, as OpenSSH
/// does): only the answer typed after it counts, here "n", so nothing is recorded.
#[test]
fn ask_discards_what_was_typed_before_the_question() {
    let sshd = Sshd::start();
    let home = Home::new();
    let kh = home.path().join("known_hosts");
    home.write_config(&sshd.profile_toml(&kh, "ask", ""));
    let bin = env!("CARGO_BIN_EXE_paragon-admin");
    let mut t = Terminal::start(
        &home,
        &format!("{bin} ssh -- echo asked; echo STATUS=$?"),
        &[],
    );
    t.send(b"y");
    t.wait_for("continue connecting");
    t.send(b"n");
    let text = t.finish();
    assert!(text.contains("STATUS=255"), "{text}");
    assert!(!text.contains("asked\r\n"), "{text}");
    assert!(!kh.exists(), "{text}");
}
