//! Identity files read as OpenSSH reads them, against a real sshd and OpenSSH's own `ssh`:
//! an unprotected key is refused with the fix, what is not a private key is named for what it
//! is, an endless or enormous file stops at the cap, a certificate beside the key is mentioned.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::support::sshd::{Sshd, keygen};
use crate::support::{Home, Run};

/// A home whose profile points at `sshd` and authenticates with `key`.
fn home_with_key(sshd: &Sshd, key: &Path) -> Home {
    let home = Home::new();
    let kh = sshd.write_known_hosts(&home.path().join("known_hosts"));
    let text = sshd.profile_toml(&kh, "yes", "").replace(
        &sshd.client_key.display().to_string(),
        &key.display().to_string(),
    );
    home.write_config(&text);
    home
}

/// Runs the command, failing the test (and killing it) when it has not ended within 20 s:
/// a FIFO opened for reading would wait for a writer forever.
fn run_within_deadline(cmd: &mut Command) -> Run {
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("paragon-admin did not finish within 20 s");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let out = child.wait_with_output().unwrap();
    Run {
        status: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

fn ssh_true(home: &Home) -> Run {
    run_within_deadline(home.paragon().args(["ssh", "--", "echo reached"]))
}

fn new_key(dir: &Path, name: &str) -> PathBuf {
    let key = dir.join(name);
    keygen(&key, "ed25519", "");
    key
}

#[test]
fn key_readable_by_others_is_refused_as_openssh_refuses_it_with_the_chmod() {
    let sshd = Sshd::start();
    let keys = tempfile::tempdir().unwrap();
    let key = new_key(keys.path(), "id_ed25519");
    sshd.authorize(&key.with_extension("pub"));
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
    let home = home_with_key(&sshd, &key);

    // OpenSSH itself, same key and server: it will not use the key.
    let openssh = Command::new("ssh")
        .args([
            "-F",
            "/dev/null",
            "-o",
            "BatchMode=yes",
            "-o",
            "IdentitiesOnly=yes",
        ])
        .arg("-o")
        .arg(format!(
            "UserKnownHostsFile={}",
            home.path().join("known_hosts").display()
        ))
        .arg("-i")
        .arg(&key)
        .args(["-p", &sshd.port.to_string(), "root@127.0.0.1", "true"])
        .env_remove("SSH_AUTH_SOCK")
        .stdin(Stdio::null())
        .output()
        .expect("ssh must be installed (openssh-client)");
    let openssh_err = String::from_utf8_lossy(&openssh.stderr);
    assert_eq!(openssh.status.code(), Some(255), "{openssh_err}");
    assert!(
        openssh_err.contains("UNPROTECTED PRIVATE KEY FILE"),
        "{openssh_err}"
    );

    let r = ssh_true(&home);
    assert_eq!(r.status, Some(2), "{}", r.stderr);
    assert!(
        r.stderr.contains("UNPROTECTED PRIVATE KEY FILE"),
        "{}",
        r.stderr
    );
    assert!(r.stderr.contains("0644"), "{}", r.stderr);
    assert!(
        r.stderr
            .contains(&format!("run `chmod 600 {}`", key.display())),
        "{}",
        r.stderr
    );
    assert_eq!(r.stdout, "");

    // Group access alone is refused too (OpenSSH's rule is any bit of 077).
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o640)).unwrap();
    let r = ssh_true(&home);
    assert_eq!(r.status, Some(2), "{}", r.stderr);
    assert!(
        r.stderr.contains("UNPROTECTED PRIVATE KEY FILE"),
        "{}",
        r.stderr
    );

    // The fix the message names works.
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
    let r = ssh_true(&home);
    assert_eq!(r.status, Some(0), "{}", r.stderr);
    assert_eq!(r.stdout, "reached\n");
}

#[test]
fn folder_fifo_and_public_key_as_identity_file_are_named_for_what_they_are() {
    let sshd = Sshd::start();
    let keys = tempfile::tempdir().unwrap();
    let key = new_key(keys.path(), "id_ed25519");
    sshd.authorize(&key.with_extension("pub"));

    let folder = keys.path().join("keys.d");
    std::fs::create_dir(&folder).unwrap();
    let fifo = keys.path().join("key.fifo");
    let st = Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .expect("mkfifo must be installed (coreutils)");
    assert!(st.success());
    let public = key.with_extension("pub");

    let cases: [(&Path, &str); 3] = [
        (&folder, "it is a folder, not a key file"),
        (&fifo, "it is a FIFO (named pipe), not a key file"),
        (
            &public,
            &format!(
                "it is a public key; set identity_file to the private key {}",
                key.display()
            ),
        ),
    ];
    for (path, says) in cases {
        let home = home_with_key(&sshd, path);
        let r = ssh_true(&home);
        assert_eq!(r.status, Some(2), "{}: {}", path.display(), r.stderr);
        assert!(r.stderr.contains(says), "{}: {}", path.display(), r.stderr);
        assert!(
            r.stderr.contains(&path.display().to_string()),
            "{}",
            r.stderr
        );
    }
}

#[test]
fn endless_or_enormous_identity_file_is_refused_as_too_large() {
    let sshd = Sshd::start();
    let keys = tempfile::tempdir().unwrap();
    // A private-mode file just over the cap (sparse: no disk used), and an endless device.
    let enormous = keys.path().join("enormous");
    let f = std::fs::File::create(&enormous).unwrap();
    f.set_len(1024 * 1024 + 1).unwrap();
    std::fs::set_permissions(&enormous, std::fs::Permissions::from_mode(0o600)).unwrap();
    for path in [enormous.as_path(), Path::new("/dev/zero")] {
        let home = home_with_key(&sshd, path);
        let r = ssh_true(&home);
        assert_eq!(r.status, Some(2), "{}: {}", path.display(), r.stderr);
        assert!(
            r.stderr.contains(&format!(
                "identity file {}: it is larger than 1024 KiB",
                path.display()
            )),
            "{}",
            r.stderr
        );
    }
}

#[test]
fn certificate_beside_the_key_is_described_at_v_and_quiet_without() {
    let sshd = Sshd::start();
    let keys = tempfile::tempdir().unwrap();
    let key = new_key(keys.path(), "id_ed25519");
    sshd.authorize(&key.with_extension("pub"));
    let ca = new_key(keys.path(), "user_ca");
    let st = Command::new("ssh-keygen")
        .args(["-q", "-s"])
        .arg(&ca)
        .args(["-I", "tester", "-n", "root"])
        .arg(key.with_extension("pub"))
        .stdin(Stdio::null())
        .status()
        .expect("ssh-keygen must be installed (openssh-client)");
    assert!(st.success());
    let cert = keys.path().join("id_ed25519-cert.pub");
    assert!(cert.is_file());
    let home = home_with_key(&sshd, &key);

    let r = run_within_deadline(home.paragon().args(["-v", "ssh", "--", "echo reached"]));
    assert_eq!(r.status, Some(0), "{}", r.stderr);
    assert_eq!(r.stdout, "reached\n");
    assert!(
        r.stderr.contains(&format!(
            "certificate {}: key id \"tester\", serial 0, principals root, valid 1970-01-01T00:00:00Z to forever",
            cert.display()
        )),
        "{}",
        r.stderr
    );
    // Without -v it stays quiet.
    let r = ssh_true(&home);
    assert_eq!(r.status, Some(0), "{}", r.stderr);
    assert!(!r.stderr.contains("certificate"), "{}", r.stderr);
}
