//! Secrets on a Linux desktop: a real Secret Service (a private `dbus-daemon --session` and
//! `gnome-keyring-daemon`, unlocked with a password on stdin) started by the test. With its
//! bus in the environment paragon-admin uses it, and says so at -v; without, keyutils.
//! Values are checked with libsecret's `secret-tool`, an independent client.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::secrets::keyctl_value;
use crate::support::sshd::{Sshd, keygen};
use crate::support::{Home, Run, run};

/// A session bus with GNOME Keyring's Secret Service on it, in a temporary folder; both
/// daemons are killed and reaped on drop.
struct SecretService {
    dir: tempfile::TempDir,
    bus: Child,
    keyring: Option<Child>,
}

impl SecretService {
    fn start() -> SecretService {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("run")).unwrap();
        let socket = dir.path().join("run/bus");
        let bus = Command::new("dbus-daemon")
            .args(["--session", "--nofork", "--nopidfile"])
            .arg(format!("--address=unix:path={}", socket.display()))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            // It warns that it cannot raise its fd limit in a container: noise.
            .stderr(Stdio::null())
            .spawn()
            .expect("dbus-daemon must be installed (dbus)");
        let mut service = SecretService {
            dir,
            bus,
            keyring: None,
        };
        poll("the session bus socket", || socket.exists());
        let mut keyring = service
            .command("gnome-keyring-daemon")
            .args(["--foreground", "--components=secrets", "--unlock"])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("gnome-keyring-daemon must be installed (gnome-keyring)");
        // The login keyring's password; closing stdin ends it.
        keyring
            .stdin
            .take()
            .unwrap()
            .write_all(b"test password")
            .unwrap();
        service.keyring = Some(keyring);
        poll("org.freedesktop.secrets on the bus", || {
            service
                .command("dbus-send")
                .args([
                    "--session",
                    "--print-reply",
                    "--dest=org.freedesktop.DBus",
                    "/org/freedesktop/DBus",
                    "org.freedesktop.DBus.NameHasOwner",
                    "string:org.freedesktop.secrets",
                ])
                .output()
                .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).contains("boolean true"))
        });
        service
    }

    fn address(&self) -> String {
        format!("unix:path={}", self.dir.path().join("run/bus").display())
    }

    /// A command that talks to this bus and keyring, and nothing of the caller's session.
    fn command(&self, program: &str) -> Command {
        let mut c = Command::new(program);
        c.env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("HOME", self.dir.path())
            .env("XDG_DATA_HOME", self.dir.path().join("data"))
            .env("XDG_RUNTIME_DIR", self.dir.path().join("run"))
            .env("DBUS_SESSION_BUS_ADDRESS", self.address());
        c
    }

    /// The value the Secret Service holds for a paragon-admin secret, read by `secret-tool`.
    fn lookup(&self, name: &str) -> Option<String> {
        let out = self
            .command("secret-tool")
            .args(["lookup", "service", "paragon-admin", "username", name])
            .stderr(Stdio::null())
            .output()
            .expect("secret-tool must be installed (libsecret-tools)");
        (out.status.success() && !out.stdout.is_empty())
            .then(|| String::from_utf8(out.stdout).unwrap())
    }

    /// Stores a secret as another Secret Service client (Seahorse, a script) would.
    fn store(&self, name: &str, value: &str) {
        let mut child = self
            .command("secret-tool")
            .args(["store", "--label", name, "service", "paragon-admin"])
            .args(["username", name])
            .stdin(Stdio::piped())
            .spawn()
            .expect("secret-tool must be installed (libsecret-tools)");
        child
            .stdin
            .take()
            .unwrap()
            .write_all(value.as_bytes())
            .unwrap();
        assert!(child.wait().unwrap().success(), "secret-tool store {name}");
    }

    /// paragon-admin in `home`, on this session bus.
    fn paragon(&self, home: &Home) -> Command {
        let mut c = home.paragon();
        c.env("DBUS_SESSION_BUS_ADDRESS", self.address());
        c
    }
}

impl Drop for SecretService {
    fn drop(&mut self) {
        for child in self.keyring.iter_mut().chain([&mut self.bus]) {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Polls `ready` every 20 ms for up to 10 s; fails the test naming `what` after that.
fn poll(what: &str, mut ready: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !ready() {
        assert!(Instant::now() < deadline, "{what} not ready within 10 s");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn set(cmd: &mut Command, value: &[u8]) -> Run {
    let mut child = cmd
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

#[test]
fn secrets_live_in_the_secret_service_when_a_session_bus_offers_it() {
    let ss = SecretService::start();
    let home = Home::new();
    let name = "desk/postgres-password";

    let r = set(
        ss.paragon(&home).args(["-v", "secrets", "set", name]),
        b"s3cr3t\n",
    );
    assert_eq!(r.status, Some(0), "{}", r.stderr);
    assert!(
        r.stderr.contains("secrets: the Secret Service"),
        "{}",
        r.stderr
    );
    assert!(!r.stderr.contains("s3cr3t"), "{}", r.stderr);
    assert_eq!(ss.lookup(name).as_deref(), Some("s3cr3t"));
    // Not in the kernel keyring: one store at a time.
    assert_eq!(keyctl_value(name), None);

    // Listed, with one written by another client too; values never shown.
    ss.store("desk/redis-password", "other");
    let r = run(ss
        .paragon(&home)
        .args(["secrets", "list", "--output", "json"]));
    assert_eq!(r.status, Some(0), "{}", r.stderr);
    let rows: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    let names: Vec<&str> = rows
        .as_array()
        .unwrap()
        .iter()
        .map(|row| row["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["desk/postgres-password", "desk/redis-password"]);
    assert!(!r.stdout.contains("s3cr3t") && !r.stdout.contains("other"));

    let r = run(ss.paragon(&home).args(["secrets", "delete", name]));
    assert_eq!(r.status, Some(0), "{}", r.stderr);
    assert_eq!(ss.lookup(name), None);
    let r = run(ss.paragon(&home).args(["secrets", "delete", name]));
    assert_eq!(r.status, Some(1), "{}", r.stderr);
    assert!(r.stderr.contains("no secret named"), "{}", r.stderr);
}

#[test]
fn without_a_session_bus_secrets_go_to_keyutils_and_v_says_so() {
    let home = Home::new();
    let r = run(home.paragon().args(["-v", "secrets", "list"]));
    assert_eq!(r.status, Some(0), "{}", r.stderr);
    assert!(
        r.stderr
            .contains("secrets: the kernel keyutils store (no Secret Service on a session bus"),
        "{}",
        r.stderr
    );
}

#[test]
fn identity_passphrase_from_the_secret_service_unlocks_the_key() {
    let ss = SecretService::start();
    let sshd = Sshd::start();
    let home = Home::new();
    let key: PathBuf = home.path().join("locked_key");
    keygen(&key, "ed25519", "correct horse");
    sshd.authorize(&key.with_extension("pub"));
    write_profile(&home, &sshd, "desk", &key);

    let r = run(ss
        .paragon(&home)
        .args(["ssh", "--", "echo unlocked"])
        .stdin(Stdio::null()));
    assert_eq!(r.status, Some(255), "{}", r.stderr);
    assert!(
        r.stderr
            .contains("paragon-admin secrets set desk/identity-passphrase"),
        "{}",
        r.stderr
    );

    // Stored by another client under the name paragon-admin looks up.
    ss.store("desk/identity-passphrase", "correct horse");
    let r = run(ss
        .paragon(&home)
        .args(["ssh", "--", "echo unlocked"])
        .stdin(Stdio::null()));
    assert_eq!(r.status, Some(0), "{}", r.stderr);
    assert_eq!(r.stdout, "unlocked\n");
}

fn write_profile(home: &Home, sshd: &Sshd, profile: &str, key: &Path) {
    let kh = sshd.write_known_hosts(&home.path().join("known_hosts"));
    let text = sshd.profile_toml_named(profile, &kh, "yes", "").replace(
        &sshd.client_key.display().to_string(),
        &key.display().to_string(),
    );
    home.write_config(&text);
}
