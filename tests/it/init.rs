//! `paragon-admin init`: profiles written from flags, from a ~/.ssh/config alias, and by the
//! wizard under a real pseudo-terminal; each then used against a real sshd.

use std::path::PathBuf;
use std::process::Command;

use crate::support::agent::Agent;
use crate::support::pty::on_pty;
use crate::support::sshd::Sshd;
use crate::support::{Home, Run, run};

fn ssh_true(home: &Home, profile: &str) -> Run {
    run(home
        .paragon()
        .args(["--profile", profile, "ssh", "--", "echo", "through-init"]))
}

/// The sshd's client key copied into the home's ~/.ssh, as a user's own key would be.
fn install_client_key(home: &Home, sshd: &Sshd, name: &str) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let dir = home.path().join(".ssh");
    std::fs::create_dir_all(&dir).unwrap();
    let key = dir.join(name);
    std::fs::copy(&sshd.client_key, &key).unwrap();
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
    std::fs::copy(
        sshd.client_key.with_extension("pub"),
        key.with_extension("pub"),
    )
    .unwrap();
    key
}

#[test]
fn non_interactive_init_writes_a_profile_that_reaches_a_real_sshd() {
    let sshd = Sshd::start();
    let home = Home::new();
    let kh = sshd.write_known_hosts(&home.path().join("known_hosts"));
    let config = home.path().join("nested/dir/config.toml");
    let r = run(home
        .paragon()
        .arg("--config")
        .arg(&config)
        .args([
            "init",
            "--non-interactive",
            "--name",
            "lab",
            "--host",
            "127.0.0.1",
        ])
        .args(["--port", &sshd.port.to_string(), "--user", "root"])
        .arg("--identity-file")
        .arg(&sshd.client_key)
        .arg("--known-hosts")
        .arg(&kh)
        .args(["--strict-host-key-checking", "yes"]));
    assert_eq!(r.status, Some(0), "{}", r.stderr);
    assert!(r.stdout.is_empty(), "{}", r.stdout);
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&config).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);
    let r = run(home.paragon().arg("--config").arg(&config).args([
        "--profile",
        "lab",
        "ssh",
        "--",
        "echo",
        "through-init",
    ]));
    assert_eq!(r.status, Some(0), "{}\n{}", r.stderr, sshd.log());
    assert_eq!(r.stdout, "through-init\n");
}

#[test]
fn non_interactive_init_without_host_is_a_usage_error_naming_the_flag() {
    let home = Home::new();
    let r = run(home
        .paragon()
        .args(["init", "--non-interactive", "--name", "lab"]));
    assert_eq!(r.status, Some(2), "{}", r.stderr);
    assert!(r.stderr.contains("--host"), "{}", r.stderr);
    assert!(!home.config_path().exists());
    let r = run(home.paragon().args([
        "init",
        "--non-interactive",
        "--host",
        "b",
        "--port",
        "70000",
    ]));
    assert_eq!(r.status, Some(2), "{}", r.stderr);
    assert!(
        r.stderr.contains("--port: `70000` is not a port"),
        "{}",
        r.stderr
    );
    let r = run(home
        .paragon()
        .args(["init", "--non-interactive", "--host", "ssh://b"]));
    assert_eq!(r.status, Some(2), "{}", r.stderr);
    assert!(
        r.stderr.contains("--host: `ssh://b` is a URL"),
        "{}",
        r.stderr
    );
    assert!(!home.config_path().exists());
}

#[test]
fn init_without_a_terminal_or_non_interactive_refuses_with_a_hint() {
    let home = Home::new();
    let r = run(home.paragon().args(["init", "--host", "b"]));
    assert_eq!(r.status, Some(2), "{}", r.stderr);
    assert!(r.stderr.contains("--non-interactive"), "{}", r.stderr);
    assert!(!home.config_path().exists());
}

#[test]
fn init_refuses_to_overwrite_without_force_and_force_keeps_comments() {
    let home = Home::new();
    let original = "# team bastions, edited by hand\n\n[profiles.stage]\nhost = \"stage.example.com\" # the old one\n\n# production\n[profiles.prod]\nhost = \"old.example.com\"\nkeepalive_interval = 30\n";
    home.write_config(original);
    let init = |extra: &[&str]| {
        run(home
            .paragon()
            .args(["init", "--non-interactive", "--name", "prod"])
            .args(["--host", "new.example.com", "--user", "ops"])
            .args(extra))
    };
    let r = init(&[]);
    assert_eq!(r.status, Some(2), "{}", r.stderr);
    assert!(
        r.stderr.contains("profile `prod` already exists"),
        "{}",
        r.stderr
    );
    assert!(r.stderr.contains("--force"), "{}", r.stderr);
    assert_eq!(
        std::fs::read_to_string(home.config_path()).unwrap(),
        original
    );

    let r = init(&["--force"]);
    assert_eq!(r.status, Some(0), "{}", r.stderr);
    let text = std::fs::read_to_string(home.config_path()).unwrap();
    for kept in [
        "# team bastions, edited by hand\n",
        "host = \"stage.example.com\" # the old one\n",
        "# production\n[profiles.prod]\nhost = \"new.example.com\"\n",
        "keepalive_interval = 30\n",
        "user = \"ops\"\n",
    ] {
        assert!(text.contains(kept), "{kept:?} missing from:\n{text}");
    }
    let r = run(home.paragon().args(["profiles", "--output", "json"]));
    assert_eq!(r.status, Some(0), "{}", r.stderr);
    assert!(r.stdout.contains("new.example.com"), "{}", r.stdout);

    // A new profile goes next to the others, and the others stay as they were.
    let r = run(home.paragon().args([
        "init",
        "--non-interactive",
        "--name",
        "dev",
        "--host",
        "dev.example.com",
    ]));
    assert_eq!(r.status, Some(0), "{}", r.stderr);
    let after = std::fs::read_to_string(home.config_path()).unwrap();
    assert!(after.starts_with(&text), "{after}");
    assert!(
        after.contains("[profiles.dev]\nhost = \"dev.example.com\"\n"),
        "{after}"
    );
}

#[test]
fn init_imports_a_host_alias_as_openssh_resolves_it() {
    let sshd = Sshd::start();
    let home = Home::new();
    install_client_key(&home, &sshd, "lab_key");
    let kh = sshd.write_known_hosts(&home.path().join("known_hosts"));
    // The port and user come from a Match block: only OpenSSH's own resolution sees them.
    std::fs::write(
        home.path().join(".ssh/config"),
        format!(
            "Host labalias\n  HostName 127.0.0.1\n  IdentityFile ~/.ssh/lab_key\n\n\
             Match originalhost labalias\n  Port {}\n  User root\n\n\
             Host twojumps\n  ProxyJump a.example.com,b.example.com\n",
            sshd.port
        ),
    )
    .unwrap();
    let r = run(home
        .paragon()
        .args(["init", "--non-interactive", "--name", "lab"])
        .args(["--from-ssh-config", "labalias"])
        .arg("--known-hosts")
        .arg(&kh)
        .args(["--strict-host-key-checking", "yes"]));
    assert_eq!(r.status, Some(0), "{}", r.stderr);
    assert!(r.stderr.contains("resolved by `ssh -G`"), "{}", r.stderr);
    let text = std::fs::read_to_string(home.config_path()).unwrap();
    assert!(
        text.contains(&format!(
            "host = \"127.0.0.1\"\nport = {}\nuser = \"root\"\nidentity_file = \"~/.ssh/lab_key\"\n",
            sshd.port
        )),
        "{text}"
    );
    let r = ssh_true(&home, "lab");
    assert_eq!(r.status, Some(0), "{}\n{}", r.stderr, sshd.log());
    assert_eq!(r.stdout, "through-init\n");

    // The alias given as the host is imported the same way; a flag still wins.
    let r = run(home
        .paragon()
        .args([
            "init",
            "--non-interactive",
            "--name",
            "lab2",
            "--host",
            "labalias",
        ])
        .args(["--user", "someone"]));
    assert_eq!(r.status, Some(0), "{}", r.stderr);
    let text = std::fs::read_to_string(home.config_path()).unwrap();
    assert!(
        text.contains(&format!(
            "[profiles.lab2]\nhost = \"127.0.0.1\"\nport = {}\nuser = \"someone\"\n",
            sshd.port
        )),
        "{text}"
    );

    let r = run(home.paragon().args([
        "init",
        "--non-interactive",
        "--name",
        "x",
        "--from-ssh-config",
        "twojumps",
    ]));
    // A Host that a profile cannot express is a configuration error (2).
    assert_eq!(r.status, Some(2), "{}", r.stderr);
    assert!(r.stderr.contains("several hosts"), "{}", r.stderr);
    let r = run(home.paragon().args([
        "init",
        "--non-interactive",
        "--name",
        "x",
        "--from-ssh-config",
        "nosuch",
    ]));
    assert_eq!(r.status, Some(2), "{}", r.stderr);
    assert!(r.stderr.contains("`nosuch` is not a Host"), "{}", r.stderr);
}

#[test]
fn wizard_on_a_terminal_confirms_the_host_key_and_writes_a_working_profile() {
    let sshd = Sshd::start();
    let home = Home::new();
    install_client_key(&home, &sshd, "id_ed25519");
    let port = sshd.port.to_string();
    const DOWN: &str = "\x1b[B";
    let steps = [
        ("Profile name", "lab\r"),
        ("Bastion host", "127.0.0.1\r"),
        ("SSH port", &*format!("{port}\r")),
        ("User on the bastion", "root\r"),
        // The key in ~/.ssh is offered first and chosen by default.
        ("~/.ssh/id_ed25519 (ssh-ed25519 SHA256:", "\r"),
        ("Jump host", "\r"),
        ("Host key policy", &*format!("{DOWN}{DOWN}\r")),
        ("default service forwards", "y"),
        ("now to check its host key", "y"),
        ("key fingerprint is SHA256:", ""),
        ("continue connecting", "y"),
    ];
    let mut init = home.paragon();
    init.arg("init");
    let (status, out) = on_pty(&init, &steps);
    assert_eq!(status, 0, "{out}\n{}", sshd.log());
    assert!(out.contains("connected to 127.0.0.1:"), "{out}");
    assert!(out.contains("wrote profile `lab`"), "{out}");

    // The key the wizard showed is recorded in the default known_hosts...
    let kh = std::fs::read_to_string(home.path().join(".ssh/known_hosts")).unwrap();
    let host_key = sshd.host_public_key("ed25519");
    let key_b64 = host_key.split_whitespace().nth(1).unwrap();
    assert!(
        kh.contains(&format!("[127.0.0.1]:{port} ssh-ed25519 {key_b64}")),
        "{kh}"
    );
    // ...and the profile says what was answered.
    let text = std::fs::read_to_string(home.config_path()).unwrap();
    for want in [
        "[profiles.lab]\nhost = \"127.0.0.1\"\n",
        &format!("port = {port}\n"),
        "user = \"root\"\nidentity_file = \"~/.ssh/id_ed25519\"\n",
        "strict_host_key_checking = \"yes\"\n",
        "[profiles.lab.services.grafana]\nlocal_port = 4500\n",
    ] {
        assert!(text.contains(want), "{want:?} missing from:\n{text}");
    }
    // With policy `yes`, the profile works only because the key was recorded.
    let r = ssh_true(&home, "lab");
    assert_eq!(r.status, Some(0), "{}\n{}", r.stderr, sshd.log());
    assert_eq!(r.stdout, "through-init\n");
}

/// Deletes a keyring secret when the test ends, passed or not.
struct SecretGuard<'a> {
    home: &'a Home,
    name: String,
}

impl Drop for SecretGuard<'_> {
    fn drop(&mut self) {
        let _ = self
            .home
            .paragon()
            .args(["secrets", "delete", &self.name])
            .stdin(std::process::Stdio::null())
            .output();
    }
}

#[test]
fn wizard_stores_a_checked_key_passphrase_in_the_keyring_for_later_logins() {
    let sshd = Sshd::start();
    let home = Home::new();
    let ssh_dir = home.path().join(".ssh");
    std::fs::create_dir_all(&ssh_dir).unwrap();
    let key = ssh_dir.join("id_ed25519");
    crate::support::sshd::keygen(&key, "ed25519", "correct horse");
    sshd.authorize(&key.with_extension("pub"));
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    let profile = format!("pty{}-{nanos}", std::process::id());
    let _secret = SecretGuard {
        home: &home,
        name: format!("{profile}/identity-passphrase"),
    };
    let port = sshd.port.to_string();
    let steps = [
        ("Profile name", &*format!("{profile}\r")),
        ("Bastion host", "127.0.0.1\r"),
        ("SSH port", &*format!("{port}\r")),
        ("User on the bastion", "root\r"),
        ("~/.ssh/id_ed25519 (ssh-ed25519 SHA256:", "\r"),
        ("Jump host", "\r"),
        ("Host key policy", "\x1b[B\r"),
        ("default service forwards", "n"),
        ("has a passphrase.\r\nStore it in the keyring", "y"),
        ("Passphrase for", "wrong one\r"),
        ("does not unlock", ""),
        ("Passphrase for", "correct horse\r"),
        ("in the keyring", ""),
        ("now to check its host key", "y"),
        ("continue connecting", "y"),
    ];
    let mut init = home.paragon();
    init.arg("init");
    let (status, out) = on_pty(&init, &steps);
    assert_eq!(status, 0, "{out}\n{}", sshd.log());
    assert!(
        out.contains(&format!("stored `{profile}/identity-passphrase`")),
        "{out}"
    );
    assert!(out.contains("connected to 127.0.0.1:"), "{out}");
    assert!(
        !out.contains("correct horse"),
        "the passphrase was echoed:\n{out}"
    );
    let text = std::fs::read_to_string(home.config_path()).unwrap();
    assert!(!text.contains("correct horse"), "{text}");
    assert!(
        text.contains("strict_host_key_checking = \"accept-new\"\n"),
        "{text}"
    );
    // A later login, with no terminal to ask on, unlocks the key from the keyring.
    let r = run(home
        .paragon()
        .args(["--profile", &profile, "ssh", "--", "echo", "through-init"])
        .stdin(std::process::Stdio::null()));
    assert_eq!(r.status, Some(0), "{}\n{}", r.stderr, sshd.log());
    assert_eq!(r.stdout, "through-init\n");
}

#[test]
fn wizard_offers_the_agents_keys_and_an_interrupted_wizard_writes_nothing() {
    let home = Home::new();
    let agent = Agent::start();
    let key = home.path().join("agent_key");
    crate::support::sshd::keygen(&key, "ed25519", "");
    let added = Command::new("ssh-add")
        .arg(&key)
        .env("SSH_AUTH_SOCK", agent.sock())
        .output()
        .expect("ssh-add must be installed (openssh-client)");
    assert!(added.status.success(), "{added:?}");
    let fp = Command::new("ssh-keygen")
        .arg("-lf")
        .arg(key.with_extension("pub"))
        .output()
        .unwrap();
    let fingerprint = String::from_utf8_lossy(&fp.stdout)
        .split_whitespace()
        .nth(1)
        .unwrap()
        .to_string();
    let mut init = home.paragon();
    init.env("SSH_AUTH_SOCK", agent.sock()).arg("init");
    let steps = [
        ("Profile name", "lab\r"),
        ("Bastion host", "b.example.com\r"),
        ("SSH port", "\r"),
        ("User on the bastion", "\r"),
        ("the ssh-agent's keys (ssh-ed25519 ", ""),
        (&*fingerprint, "\x03"),
    ];
    let (status, out) = on_pty(&init, &steps);
    assert_eq!(status, 130, "{out}");
    assert!(!home.config_path().exists(), "{out}");
    // The menu hid the cursor; Ctrl-C shows it again before the process ends.
    let after = &out[out.rfind(&*fingerprint).unwrap()..];
    assert!(after.contains("\x1b[?25h"), "{after:?}");
}

#[test]
fn the_first_profile_becomes_the_default_and_later_ones_only_with_default() {
    let home = Home::new();
    let init = |name: &str, extra: &[&str]| {
        let r = run(home
            .paragon()
            .args(["init", "--non-interactive", "--profile", name, "--host"])
            .arg(format!("{name}.example.com"))
            .args(extra));
        assert_eq!(r.status, Some(0), "{}", r.stderr);
    };
    let default = || {
        let r = run(home.paragon().args(["profiles", "--output", "json"]));
        let v: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
        v.as_array()
            .unwrap()
            .iter()
            .filter(|p| p["default"] == true)
            .map(|p| p["name"].as_str().unwrap().to_string())
            .collect::<Vec<_>>()
    };
    init("first", &[]);
    assert_eq!(default(), ["first"]);
    init("second", &[]);
    assert_eq!(
        default(),
        ["first"],
        "a later profile is not the default unasked"
    );
    init("third", &["--default"]);
    assert_eq!(default(), ["third"]);
    // `--name` still names the profile.
    let r = run(home.paragon().args([
        "init",
        "--non-interactive",
        "--name",
        "fourth",
        "--host",
        "f",
    ]));
    assert_eq!(r.status, Some(0), "{}", r.stderr);
    let text = std::fs::read_to_string(home.config_path()).unwrap();
    assert!(text.contains("[profiles.fourth]"), "{text}");
}

#[test]
fn relative_paths_given_to_init_are_taken_from_the_current_folder() {
    let home = Home::new();
    let here = home.path().join("work");
    std::fs::create_dir(&here).unwrap();
    let config = home.path().join("elsewhere/config.toml");
    let r = run(home
        .paragon()
        .current_dir(&here)
        .arg("--config")
        .arg(&config)
        .args(["init", "--non-interactive", "--host", "b.example.com"])
        .args(["--identity-file", "keys/id_ed25519", "--known-hosts", "kh"])
        .args(["--profile", "p"]));
    assert_eq!(r.status, Some(0), "{}", r.stderr);
    let text = std::fs::read_to_string(&config).unwrap();
    let want = format!(
        "identity_file = \"{}\"",
        here.join("keys/id_ed25519").display()
    );
    assert!(text.contains(&want), "{text}");
    assert!(
        text.contains(&format!("known_hosts = \"{}\"", here.join("kh").display())),
        "{text}"
    );
}

#[test]
fn answering_no_to_replace_exits_2_and_keeps_the_file() {
    let home = Home::new();
    let original = "[profiles.lab]\nhost = \"old.example.com\"\n";
    home.write_config(original);
    let mut init = home.paragon();
    init.args(["init", "--profile", "lab"]);
    let (status, out) = on_pty(&init, &[("Replace its connection settings", "n")]);
    assert_eq!(status, 2, "{out}");
    assert!(out.contains("already exists"), "{out}");
    assert_eq!(out.matches("exists in").count(), 1, "printed once: {out}");
    assert_eq!(
        std::fs::read_to_string(home.config_path()).unwrap(),
        original
    );
}

/// A name typed at the prompt that exists, and is not to be replaced, is asked again: the
/// wizard goes on (here interrupted at the next question) and the file is untouched.
#[test]
fn an_existing_name_typed_at_the_prompt_asks_for_another() {
    let home = Home::new();
    let original = "[profiles.lab]\nhost = \"old.example.com\"\n";
    home.write_config(original);
    let mut init = home.paragon();
    init.arg("init");
    let (status, out) = on_pty(
        &init,
        &[
            ("Profile name", "lab\r"),
            ("Replace its connection settings", "n"),
            ("Another profile name", "staging\r"),
            ("Bastion", "\u{3}"),
        ],
    );
    assert_eq!(status, 130, "{out}");
    assert!(!out.contains("already exists"), "{out}");
    assert_eq!(
        std::fs::read_to_string(home.config_path()).unwrap(),
        original
    );
}

#[test]
fn secrets_set_with_empty_input_says_so_and_asks_again_on_a_terminal() {
    let home = Home::new();
    let name = format!("pty{}-empty/value", std::process::id());
    let mut set = home.paragon();
    set.args(["secrets", "set", &name]);
    let steps = [
        ("Value for", "\r"),
        ("the value is empty", ""),
        ("Value for", "s3cret\r"),
    ];
    let (status, out) = on_pty(&set, &steps);
    assert_eq!(status, 0, "{out}");
    assert!(out.contains(&format!("stored `{name}`")), "{out}");
    let r = run(home.paragon().args(["secrets", "delete", &name]));
    assert_eq!(r.status, Some(0), "{}", r.stderr);
    // From stdin, empty is refused: nothing to ask again.
    let r = run(home
        .paragon()
        .args(["secrets", "set", &name])
        .stdin(std::process::Stdio::null()));
    assert_eq!(r.status, Some(2), "{}", r.stderr);
    assert!(
        r.stderr.contains("is empty: nothing stored"),
        "{}",
        r.stderr
    );
}
