//! The kept connection in daily life (issue 20): agents of another build, two config files
//! with one profile name, a folder without `XDG_RUNTIME_DIR`, a stopped agent, a failed
//! detached bind, signals. Each test runs against the real sshd fixture in its own home and
//! stops its agents in `Drop`.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::agent::{Http, Kept, alive, curl, sockets, wait_until};
use crate::support::{Run, run};

const BUILD: &str = "PARAGON_ADMIN_AGENT_BUILD";

/// The `listening` event and local address of a successful `forward --detach ... --output json`.
fn listening(r: &Run) -> (serde_json::Value, std::net::SocketAddr) {
    assert_eq!(r.status, Some(0), "{}", r.stderr);
    let event: serde_json::Value = serde_json::from_str(r.stdout.trim()).unwrap();
    let local = event["local"].as_str().unwrap().parse().unwrap();
    (event, local)
}

/// `args` run with the agent's build named `build` (an agent this command starts inherits it).
fn as_build(k: &Kept, build: &str, args: &[&str]) -> Run {
    run(k.paragon(args).env(BUILD, build))
}

/// The agent's status as a client of yet another build sees it (it looks, it replaces nothing).
fn status_of_any_build(k: &Kept) -> serde_json::Value {
    let r = as_build(k, "x", &["agent", "status", "--output", "json"]);
    serde_json::from_str(&r.stdout).unwrap()
}

fn pid(k: &Kept) -> u64 {
    k.status()["pid"].as_u64().unwrap()
}

#[test]
fn an_agent_of_another_build_is_replaced_when_free_and_kept_with_its_forwards() {
    let k = Kept::new("");
    // Free of forwards: replaced by this build, the command succeeds.
    let r = as_build(&k, "0.0.1 (git old)", &["ssh", "--", "true"]);
    assert_eq!(r.status, Some(0), "{}", r.stderr);
    let old = status_of_any_build(&k);
    assert_eq!(old["version"], "0.0.1 (git old)", "{old}");
    let old = old["pid"].as_u64().unwrap();
    let r = k.ssh("echo new");
    assert_eq!(
        (r.status, r.stdout.as_str()),
        (Some(0), "new\n"),
        "{}",
        r.stderr
    );
    assert!(!r.stderr.contains("another build"), "{}", r.stderr);
    let s = k.status();
    assert_ne!(s["pid"].as_u64().unwrap(), old);
    assert_ne!(s["version"], "0.0.1 (git old)");
    assert_eq!(s["protocol"], 2);
    wait_until("the old agent left", Duration::from_secs(10), || {
        !alive(old)
    });

    // Holding a detached forward: kept, used for what both know, said once on stderr.
    assert_eq!(k.run(&["agent", "stop"]).status, Some(0));
    let http = Http::start("kept across builds");
    let spec = format!("0:127.0.0.1:{}", http.port);
    let r = as_build(
        &k,
        "0.0.1 (git old)",
        &["forward", "--detach", &spec, "--output", "json"],
    );
    let (_, local) = listening(&r);
    let kept = pid(&k);
    let r = k.ssh("echo through the old one");
    assert_eq!(r.status, Some(0), "{}", r.stderr);
    assert_eq!(r.stdout, "through the old one\n");
    assert_eq!(
        r.stderr.matches("runs another build").count(),
        1,
        "{}",
        r.stderr
    );
    assert!(
        r.stderr.contains("paragon-admin agent stop"),
        "{}",
        r.stderr
    );
    assert_eq!(pid(&k), kept);
    assert_eq!(curl(local.port()).as_deref(), Some("kept across builds"));

    // A build from before the hello (it closes the connection at a hello): replaced.
    assert_eq!(k.run(&["agent", "stop"]).status, Some(0));
    let r = run(k
        .paragon(&["ssh", "--", "true"])
        .env(BUILD, "0.0.0 (git older)")
        .env("PARAGON_ADMIN_AGENT_PROTOCOL", "0"));
    assert_eq!(r.status, Some(0), "{}", r.stderr);
    let older = status_of_any_build(&k);
    assert_eq!(older["protocol"], 0, "{older}");
    let older = older["pid"].as_u64().unwrap();
    let r = k.ssh("echo replaced");
    assert_eq!(
        (r.status, r.stdout.as_str()),
        (Some(0), "replaced\n"),
        "{}",
        r.stderr
    );
    assert_ne!(pid(&k), older);
}

/// Sends `lines` on the agent's socket, one after the other, and returns what came back.
fn converse(socket: &Path, lines: &[&str]) -> Vec<String> {
    let s = UnixStream::connect(socket).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut r = BufReader::new(s.try_clone().unwrap());
    let mut w = s;
    lines
        .iter()
        .map(|l| {
            writeln!(w, "{l}").unwrap();
            let mut answer = String::new();
            r.read_line(&mut answer).unwrap();
            answer
        })
        .collect()
}

#[test]
fn a_hello_is_answered_with_the_build_and_an_unknown_request_with_an_error() {
    let k = Kept::new("");
    assert_eq!(k.ssh("true").status, Some(0));
    let answers = converse(
        &k.socket(),
        &[
            r#"{"hello":{"protocol":99,"build":"9.9.9 (git future)"}}"#,
            r#"{"fingerprint":"","op":{"op":"frobnicate","with":1}}"#,
        ],
    );
    let hello: serde_json::Value = serde_json::from_str(&answers[0]).unwrap();
    assert_eq!(hello["hello"]["protocol"], 2, "{hello}");
    assert_eq!(hello["hello"]["pid"], pid(&k));
    let failed: serde_json::Value = serde_json::from_str(&answers[1]).unwrap();
    assert_eq!(failed["reply"], "failed", "{failed}");
    let message = failed["message"].as_str().unwrap();
    assert!(
        message.contains("does not know the request `frobnicate`"),
        "{message}"
    );
    // Without a hello (a client of an older build) a request is still served.
    let answers = converse(&k.socket(), &[r#"{"fingerprint":"","op":{"op":"status"}}"#]);
    assert!(
        answers[0].contains("\"reply\":\"status\""),
        "{}",
        answers[0]
    );
}

/// A second config file in the home, with the same profile `test`.
fn second_config(k: &Kept, name: &str) -> PathBuf {
    let path = k.home.path().join(name);
    std::fs::copy(k.home.config_path(), &path).unwrap();
    path
}

#[test]
fn two_config_files_with_one_profile_name_keep_two_agents_and_their_forwards() {
    let k = Kept::new("");
    let other = second_config(&k, "other.toml");
    let http = Http::start("either file");
    let spec = format!("0:127.0.0.1:{}", http.port);
    let mut ports = Vec::new();
    for config in [k.home.config_path(), other.clone()] {
        let r = run(k
            .paragon(&["forward", "--detach", &spec, "--output", "json"])
            .env("PARAGON_ADMIN_CONFIG", &config));
        let (_, local) = listening(&r);
        ports.push(local.port());
    }
    assert_eq!(sockets(&k.folder()).len(), 2);
    // Each file's commands go to its own agent, which says which file it serves.
    let mut pids = Vec::new();
    for config in [k.home.config_path(), other.clone()] {
        let r = run(k
            .paragon(&["agent", "status", "--output", "json"])
            .env("PARAGON_ADMIN_CONFIG", &config));
        let s: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
        assert_eq!(s["config"], config.display().to_string(), "{s}");
        assert_eq!(s["forwards"].as_array().unwrap().len(), 1);
        pids.push(s["pid"].as_u64().unwrap());
        let r = run(k
            .paragon(&["ssh", "--", "true"])
            .env("PARAGON_ADMIN_CONFIG", &config));
        assert_eq!(r.status, Some(0), "{}", r.stderr);
    }
    assert_ne!(pids[0], pids[1]);
    for (p, port) in pids.iter().zip(&ports) {
        assert!(alive(*p));
        assert_eq!(curl(*port).as_deref(), Some("either file"));
    }
    // `agent stop` stops this file's agent only, and says what it closed.
    let r = k.run(&["agent", "stop"]);
    assert!(
        r.stderr.contains("stopped the agent of profile test")
            && r.stderr.contains("its detached forward"),
        "{}",
        r.stderr
    );
    wait_until("the first agent left", Duration::from_secs(10), || {
        !alive(pids[0])
    });
    assert!(alive(pids[1]));
    assert_eq!(curl(ports[1]).as_deref(), Some("either file"));
}

#[test]
fn twenty_first_commands_at_once_with_twenty_config_files_all_succeed() {
    let k = Kept::new("");
    let configs: Vec<PathBuf> = (0..20)
        .map(|i| second_config(&k, &format!("c{i}.toml")))
        .collect();
    let children: Vec<_> = configs
        .iter()
        .enumerate()
        .map(|(i, c)| {
            k.paragon(&["ssh", "--", &format!("echo file-{i}")])
                .env("PARAGON_ADMIN_CONFIG", c)
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for (i, c) in children.into_iter().enumerate() {
        let out = c.wait_with_output().unwrap();
        assert_eq!(
            (
                out.status.code(),
                String::from_utf8_lossy(&out.stdout).as_ref()
            ),
            (Some(0), format!("file-{i}\n").as_str()),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    assert_eq!(sockets(&k.folder()).len(), 20);
    let r = k.run(&["agent", "stop", "--all"]);
    assert_eq!(
        r.stderr.matches("stopped the agent").count(),
        20,
        "{}",
        r.stderr
    );
}

/// Makes `path` a folder owned by nobody (65534), mode `mode`.
fn foreign_folder(path: &Path, mode: u32) {
    std::fs::create_dir_all(path).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
    let st = Command::new("chown")
        .arg("65534:65534")
        .arg(path)
        .status()
        .unwrap();
    assert!(st.success());
}

#[test]
fn without_xdg_runtime_dir_a_foreign_tmp_folder_blocks_nobody() {
    let k = Kept::new("");
    let uid = std::fs::metadata(k.home.path()).unwrap().uid();
    // What another local user could create first in a shared /tmp.
    let taken = std::env::temp_dir().join(format!("paragon-admin-{uid}"));
    let made_here = !taken.exists();
    if made_here {
        foreign_folder(&taken, 0o777);
    }
    let without = |args: &[&str]| {
        let mut c = k.paragon(args);
        c.env_remove("XDG_RUNTIME_DIR");
        run(&mut c)
    };
    let r = without(&["ssh", "--", "echo fine"]);
    let stopped = without(&["agent", "stop", "--all"]);
    if made_here {
        std::fs::remove_dir(&taken).unwrap();
    }
    assert_eq!(
        (r.status, r.stdout.as_str()),
        (Some(0), "fine\n"),
        "{}",
        r.stderr
    );
    assert!(
        stopped.stderr.contains("stopped the agent"),
        "{}",
        stopped.stderr
    );
    let folder = k.home.path().join(".local/state/paragon-admin/agents");
    let meta = std::fs::metadata(&folder).unwrap();
    assert_eq!((meta.uid(), meta.mode() & 0o777), (uid, 0o700));

    // Root in another user's XDG_RUNTIME_DIR (sudo -E): nothing is made there.
    let theirs = k.home.path().join("theirs");
    foreign_folder(&theirs, 0o700);
    let r = run(k
        .paragon(&["ssh", "--", "echo not there"])
        .env("XDG_RUNTIME_DIR", &theirs));
    let _ = run(k
        .paragon(&["agent", "stop", "--all"])
        .env("XDG_RUNTIME_DIR", &theirs));
    assert_eq!(r.status, Some(0), "{}", r.stderr);
    assert_eq!(std::fs::read_dir(&theirs).unwrap().count(), 0);
}

#[test]
fn a_socket_path_too_long_connects_directly_and_says_so() {
    let k = Kept::new("");
    let deep = k.home.path().join("r".repeat(60)).join("u".repeat(40));
    std::fs::create_dir_all(&deep).unwrap();
    std::fs::set_permissions(&deep, std::fs::Permissions::from_mode(0o700)).unwrap();
    let r = run(k
        .paragon(&["ssh", "--", "echo direct"])
        .env("XDG_RUNTIME_DIR", &deep));
    assert_eq!(
        (r.status, r.stdout.as_str()),
        (Some(0), "direct\n"),
        "{}",
        r.stderr
    );
    assert!(
        r.stderr.contains("bytes, over the 107") && r.stderr.contains("connecting directly"),
        "{}",
        r.stderr
    );
    assert!(sockets(&deep.join("paragon-admin")).is_empty());
}

#[test]
fn a_stopped_agent_hangs_neither_a_command_nor_agent_stop() {
    let k = Kept::new("");
    assert_eq!(k.ssh("true").status, Some(0));
    let agent = pid(&k);
    let signal = |sig: &str| {
        Command::new("kill")
            .args([sig, &agent.to_string()])
            .status()
            .unwrap()
    };
    assert!(signal("-STOP").success());
    let started = Instant::now();
    let r = k.ssh("true");
    let took = started.elapsed();
    eprintln!("`ssh -- true` at a stopped agent ended after {took:?}");
    assert_eq!(r.status, Some(1), "{}", r.stderr);
    assert!(
        r.stderr
            .contains(&format!("(pid {agent}) did not answer within 5s"))
            && r.stderr.contains("agent stop"),
        "{}",
        r.stderr
    );
    assert!(took < Duration::from_secs(15), "took {took:?}");
    let started = Instant::now();
    let r = k.run(&["agent", "stop"]);
    let took = started.elapsed();
    eprintln!("`agent stop` of a stopped agent ended after {took:?}");
    if alive(agent) {
        signal("-KILL");
    }
    assert_eq!(r.status, Some(0), "{}", r.stderr);
    assert!(r.stderr.contains("ended it by its pid"), "{}", r.stderr);
    assert!(took < Duration::from_secs(20), "took {took:?}");
    wait_until("the stopped agent ended", Duration::from_secs(5), || {
        !alive(agent)
    });
    assert!(sockets(&k.folder()).is_empty());
    // The next command starts a new agent.
    assert_eq!(k.ssh("echo again").stdout, "again\n");
}

#[test]
fn a_failed_detached_bind_leaves_the_old_forward_serving() {
    let k = Kept::new("");
    let http = Http::start("still here");
    let spec = format!("0:127.0.0.1:{}", http.port);
    let r = k.run(&["forward", "--detach", &spec, "--output", "json"]);
    let (event, local) = listening(&r);
    // The same forward asked on a port something else holds.
    let busy = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let taken = busy.local_addr().unwrap().port();
    let r = k.run(&[
        "forward",
        "--detach",
        &format!("{taken}:127.0.0.1:{}", http.port),
    ]);
    assert_ne!(r.status, Some(0), "{}", r.stdout);
    assert_eq!(curl(local.port()).as_deref(), Some("still here"));
    let list = k.run(&["forward", "--list", "--output", "json"]);
    let list: serde_json::Value = serde_json::from_str(&list.stdout).unwrap();
    assert_eq!(list[0]["local"], event["local"], "{list}");
}

#[test]
fn sigterm_removes_the_socket_and_the_next_agent_appends_to_the_log() {
    let k = Kept::new("");
    assert_eq!(k.run(&["-v", "ssh", "--", "true"]).status, Some(0));
    let socket = k.socket();
    let log = socket.with_extension("log");
    let agent = pid(&k);
    assert!(
        Command::new("kill")
            .args(["-TERM", &agent.to_string()])
            .status()
            .unwrap()
            .success()
    );
    wait_until("the agent left on SIGTERM", Duration::from_secs(10), || {
        !alive(agent) && !socket.exists()
    });
    assert_eq!(k.run(&["-v", "ssh", "--", "true"]).status, Some(0));
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(text.contains("asked to stop by a signal"), "{text}");
    assert!(text.matches("agent ready").count() >= 2, "{text}");
    assert!(!text.contains('\u{1b}'), "{text}");
}

#[test]
fn a_remote_signal_is_128_plus_its_number_through_the_agent_and_directly() {
    let k = Kept::new("");
    for direct in [false, true] {
        let mut args = vec!["ssh", "--", "kill -USR2 $$"];
        if direct {
            args.insert(0, "--no-agent");
        }
        let r = k.run(&args);
        assert_eq!(r.status, Some(128 + 12), "direct: {direct}: {}", r.stderr);
    }
}

#[test]
fn a_connection_waiting_at_a_detached_forward_is_served_soon_after_the_bastion_is_back() {
    let mut k = Kept::new("");
    let http = Http::start("back again");
    let spec = format!("0:127.0.0.1:{}", http.port);
    let r = k.run(&["forward", "--detach", &spec, "--output", "json"]);
    let (_, local) = listening(&r);
    assert_eq!(curl(local.port()).as_deref(), Some("back again"));
    k.sshd.stop();
    wait_until(
        "the agent saw the bastion go",
        Duration::from_secs(10),
        || k.status()["connected"] == false,
    );
    // A connection arrives while the bastion is down, and waits.
    let waiting = std::thread::spawn(move || {
        let body = crate::agent::curl_within(local.port(), 40);
        (body, Instant::now())
    });
    // Down long enough for the agent's backoff to have grown past a few seconds.
    std::thread::sleep(Duration::from_secs(5));
    // Counted from the moment the restart begins (sshd's own start included).
    let restarted = Instant::now();
    k.sshd.restart();
    let up = restarted.elapsed();
    let (body, served) = waiting.join().unwrap();
    assert_eq!(body.as_deref(), Some("back again"));
    let after = served.saturating_duration_since(restarted);
    eprintln!("served {after:?} after the restart began (sshd listened after {up:?})");
    assert!(
        after < Duration::from_secs(2),
        "served {after:?} after the restart"
    );
}

/// A kubeconfig of about `size` bytes (its CA bundle makes up the size) whose token is
/// `big-token`, and a bastion `kubectl` that prints it, or first hangs while `hang` exists
/// (noting in `hung` that it started).
fn big_kubeconfig_on_bastion(k: &Kept, size: usize) -> (PathBuf, PathBuf) {
    use base64::Engine;
    let bundle = base64::engine::general_purpose::STANDARD.encode(vec![0x42u8; size * 3 / 4]);
    let text = format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: big\n  cluster:\n    server: https://127.0.0.1:6443\n    certificate-authority-data: {bundle}\ncontexts:\n- name: big\n  context:\n    cluster: big\n    user: big\ncurrent-context: big\nusers:\n- name: big\n  user:\n    token: big-token\n"
    );
    let file = k.home.path().join("big.kubeconfig");
    std::fs::write(&file, text).unwrap();
    let hang = k.home.path().join("hang");
    let hung = k.home.path().join("hung");
    k.sshd.install(
        "kubectl",
        &format!(
            "#!/bin/sh\nif [ -e {hang} ]; then touch {hung}; sleep 120; fi\ncat {file}\n",
            hang = hang.display(),
            hung = hung.display(),
            file = file.display()
        ),
    );
    (hang, hung)
}

#[test]
fn a_one_mib_kubeconfig_comes_through_the_agent() {
    let k = Kept::new("");
    big_kubeconfig_on_bastion(&k, 1024 * 1024);
    let r = k.run(&["kube-credential"]);
    assert_eq!(r.status, Some(0), "{}", r.stderr);
    assert!(r.stdout.contains("big-token"), "{}", r.stdout);
}

#[test]
fn a_hung_kubectl_on_the_bastion_does_not_block_a_second_command() {
    let k = Kept::new("");
    let (hang, hung) = big_kubeconfig_on_bastion(&k, 4096);
    assert_eq!(k.ssh("true").status, Some(0));
    std::fs::write(&hang, "").unwrap();
    let mut first = k
        .paragon(&["kube-credential"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_until("the first kubectl hangs", Duration::from_secs(20), || {
        hung.exists()
    });
    std::fs::remove_file(&hang).unwrap();
    let started = Instant::now();
    let r = k.run(&["kube-credential"]);
    let took = started.elapsed();
    eprintln!("the second command took {took:?} beside a hung kubectl");
    let _ = first.kill();
    let _ = first.wait();
    assert_eq!(r.status, Some(0), "{}", r.stderr);
    assert!(r.stdout.contains("big-token"), "{}", r.stdout);
    assert!(took < Duration::from_secs(10), "took {took:?}");
}

#[test]
fn a_second_detach_to_the_same_target_says_what_it_did() {
    let k = Kept::new("");
    let http = Http::start("once");
    let spec = format!("0:127.0.0.1:{}", http.port);
    let (_, local) = listening(&k.run(&["forward", "--detach", &spec, "--output", "json"]));
    let again = k.run(&["forward", "--detach", &spec]);
    assert_eq!(again.status, Some(0), "{}", again.stderr);
    assert!(
        again
            .stderr
            .contains(&format!("was detached already on {local}: kept as it is")),
        "{}",
        again.stderr
    );
    let free = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = free.local_addr().unwrap().port();
    drop(free);
    let moved = k.run(&[
        "forward",
        "--detach",
        &format!("{port}:127.0.0.1:{}", http.port),
    ]);
    assert_eq!(moved.status, Some(0), "{}", moved.stderr);
    assert!(
        moved.stderr.contains(&format!(
            "was detached on {local}: replaced, now on 127.0.0.1:{port}"
        )),
        "{}",
        moved.stderr
    );
    assert_eq!(curl(port).as_deref(), Some("once"));
    // The status table reads for people: local time with its age, sizes with units, the
    // agent's version and config file.
    let table = k.run(&["agent", "status"]).stdout;
    for wanted in [" ago)", "VERSION", "config: ", " B "] {
        assert!(table.contains(wanted), "{wanted}: {table}");
    }
}
