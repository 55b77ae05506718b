//! `paragon-admin secrets` against the real kernel keyutils store, and a passphrase-protected
//! identity unlocked from it by a separate `ssh` process.

use std::io::Write;
use std::process::{Command, Stdio};

use crate::support::sshd::{Sshd, keygen};
use crate::support::{Home, Run, run};

/// A name no other test (or helper) uses; the secret is deleted on drop.
struct Name {
    home: Home,
    name: String,
}

impl Name {
    fn new(suffix: &str) -> Name {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos();
        Name {
            home: Home::new(),
            name: format!("t{}-{nanos}/{suffix}", std::process::id()),
        }
    }
    fn profile(&self) -> &str {
        self.name.split('/').next().unwrap()
    }
}

impl Drop for Name {
    fn drop(&mut self) {
        let _ = self
            .home
            .paragon()
            .args(["secrets", "delete", &self.name])
            .stdin(Stdio::null())
            .output();
    }
}

fn set(home: &Home, name: &str, value: &[u8]) -> Run {
    let mut child = home
        .paragon()
        .args(["secrets", "set", "--", name])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(value).unwrap();
    let out = child.wait_with_output().unwrap();
    Run {
        status: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// The value the kernel holds for a secret, read with keyctl (not through our code) from a
/// fresh session keyring with the user's persistent keyring linked in, as a new login has.
pub(crate) fn keyctl_value(name: &str) -> Option<String> {
    let desc = format!("keyring:{name}@paragon-admin");
    let script = format!(
        "keyctl get_persistent @s >/dev/null && id=$(keyctl search @s user '{desc}') && keyctl pipe $id"
    );
    let out = Command::new("keyctl")
        .args(["session", "-", "sh", "-c", &script])
        .stderr(Stdio::null())
        .output()
        .expect("keyctl must be installed (keyutils)");
    out.status
        .success()
        .then(|| String::from_utf8(out.stdout).unwrap())
}

#[test]
fn secrets_set_list_delete_round_trip_across_processes() {
    let n = Name::new("token");
    let r = set(&n.home, &n.name, b"s3cr3t value\n");
    assert_eq!(r.status, Some(0), "{}", r.stderr);
    assert!(!r.stderr.contains("s3cr3t"), "{}", r.stderr);
    // One trailing newline is stripped; the kernel holds exactly the value.
    assert_eq!(keyctl_value(&n.name).as_deref(), Some("s3cr3t value"));
    let r = run(n.home.paragon().args(["secrets", "list"]));
    assert_eq!(r.status, Some(0), "{}", r.stderr);
    assert!(r.stdout.contains(&n.name), "{}", r.stdout);
    assert!(!r.stdout.contains("s3cr3t"), "{}", r.stdout);
    let r = run(n
        .home
        .paragon()
        .args(["secrets", "list", "--output", "json"]));
    let v: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    assert!(
        v.as_array()
            .unwrap()
            .iter()
            .any(|row| row["name"] == n.name.as_str())
    );
    assert!(!r.stdout.contains("s3cr3t"));
    // Replacing keeps one entry.
    let r = set(&n.home, &n.name, b"second");
    assert_eq!(r.status, Some(0), "{}", r.stderr);
    assert_eq!(keyctl_value(&n.name).as_deref(), Some("second"));
    let r = run(n.home.paragon().args(["secrets", "delete", &n.name]));
    assert_eq!(r.status, Some(0), "{}", r.stderr);
    assert_eq!(keyctl_value(&n.name), None);
    let r = run(n.home.paragon().args(["secrets", "list"]));
    assert!(!r.stdout.contains(&n.name), "{}", r.stdout);
    let r = run(n.home.paragon().args(["secrets", "delete", &n.name]));
    assert_eq!(r.status, Some(1), "{}", r.stderr);
    assert!(r.stderr.contains("no secret named"), "{}", r.stderr);
}

#[test]
fn secret_names_with_spaces_are_usage_errors() {
    let home = Home::new();
    let r = set(&home, "a b", b"x");
    assert_eq!(r.status, Some(2), "{}", r.stderr);
    assert!(r.stderr.contains("`a b` is not valid"), "{}", r.stderr);
}

#[test]
fn secret_names_that_read_as_paths_or_options_are_usage_errors() {
    let home = Home::new();
    for name in ["..", "/", "-x", "prod/../other", "prod//x"] {
        for action in ["set", "delete"] {
            let r = if action == "set" {
                set(&home, name, b"x")
            } else {
                run(home.paragon().args(["secrets", "delete", "--", name]))
            };
            assert_eq!(r.status, Some(2), "{action} {name}: {}", r.stderr);
            assert!(
                r.stderr.contains(&format!("`{name}` is not valid")),
                "{action} {name}: {}",
                r.stderr
            );
        }
    }
}

#[test]
fn locked_identity_needs_its_passphrase_from_the_keyring() {
    let n = Name::new("identity-passphrase");
    let sshd = Sshd::start();
    let key = n.home.path().join("locked_key");
    keygen(&key, "ed25519", "correct horse");
    sshd.authorize(&key.with_extension("pub"));
    let kh = sshd.write_known_hosts(&n.home.path().join("known_hosts"));
    let text = sshd
        .profile_toml_named(n.profile(), &kh, "yes", "")
        .replace(
            &sshd.client_key.display().to_string(),
            &key.display().to_string(),
        );
    n.home.write_config(&text);
    let ssh = |home: &Home| {
        run(home
            .paragon()
            .args(["ssh", "--", "echo unlocked"])
            .stdin(Stdio::null()))
    };

    let r = ssh(&n.home);
    assert_eq!(r.status, Some(255), "{}", r.stderr);
    assert!(
        r.stderr
            .contains(&format!("paragon-admin secrets set {}", n.name)),
        "{}",
        r.stderr
    );

    let r = set(&n.home, &n.name, b"wrong\n");
    assert_eq!(r.status, Some(0), "{}", r.stderr);
    let r = ssh(&n.home);
    assert_eq!(r.status, Some(255), "{}", r.stderr);
    assert!(r.stderr.contains("does not unlock it"), "{}", r.stderr);
    assert!(!r.stderr.contains("wrong"), "{}", r.stderr);

    let r = set(&n.home, &n.name, b"correct horse\n");
    assert_eq!(r.status, Some(0), "{}", r.stderr);
    let r = ssh(&n.home);
    assert_eq!(r.status, Some(0), "{}", r.stderr);
    assert_eq!(r.stdout, "unlocked\n");
}
