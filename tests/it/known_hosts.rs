//! Host keys against OpenSSH itself: for each known_hosts shape, paragon-admin and OpenSSH
//! 9.2's `ssh` connect to the same real sshd with the same file and policy, and must decide
//! alike (connect, refuse as unknown, refuse as changed); appending must keep what the user
//! pointed at and lose no line. The differential script over generated files runs last.

use std::os::unix::fs::{MetadataExt as _, PermissionsExt as _};
use std::path::Path;
use std::process::{Command, Stdio};

use crate::support::sshd::{Sshd, SshdOptions, keygen};
use crate::support::{Home, Run, run};

/// What a client decided about the host key.
#[derive(Debug, PartialEq, Eq, Clone, Copy)]
pub(super) enum Decision {
    Connected,
    Unknown,
    Changed,
    Other,
}

/// OpenSSH's `ssh` to `host` on the fixture's port with `known_hosts` and `policy`, no
/// prompt, no system known_hosts, no user config.
fn openssh(sshd: &Sshd, host: &str, known_hosts: &Path, policy: &str) -> (Decision, String) {
    let out = Command::new("ssh")
        .args(["-F", "none", "-o", "BatchMode=yes", "-o"])
        .arg(format!("StrictHostKeyChecking={policy}"))
        .arg("-o")
        .arg(format!("UserKnownHostsFile={}", known_hosts.display()))
        .args([
            "-o",
            "GlobalKnownHostsFile=/dev/null",
            "-o",
            "ConnectTimeout=10",
        ])
        .arg("-i")
        .arg(&sshd.client_key)
        .arg("-p")
        .arg(sshd.port.to_string())
        .arg(format!("root@{host}"))
        .arg("true")
        .stdin(Stdio::null())
        .output()
        .expect("ssh must be installed (openssh-client)");
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    let d = if out.status.success() {
        Decision::Connected
    } else if stderr.contains("REMOTE HOST IDENTIFICATION HAS CHANGED") {
        Decision::Changed
    } else if stderr.contains("No ") && stderr.contains("host key is known") {
        Decision::Unknown
    } else {
        Decision::Other
    };
    (d, stderr)
}

/// paragon-admin's decision for the same connection (profile `test`, host `host`).
fn paragon(
    sshd: &Sshd,
    home: &Home,
    host: &str,
    known_hosts: &Path,
    policy: &str,
) -> (Decision, String) {
    write_profile(sshd, home, host, known_hosts, policy, "");
    decide(&run(ssh_true(home).stdin(Stdio::null())))
}

fn write_profile(
    sshd: &Sshd,
    home: &Home,
    host: &str,
    known_hosts: &Path,
    policy: &str,
    extra: &str,
) {
    let text = sshd.profile_toml(known_hosts, policy, extra).replace(
        &format!("host = \"{}\"", sshd.options.listen),
        &format!("host = \"{host}\""),
    );
    home.write_config(&text);
}

fn ssh_true(home: &Home) -> Command {
    let mut c = home.paragon();
    c.args(["ssh", "--", "true"]);
    c
}

fn decide(r: &Run) -> (Decision, String) {
    let d = match r.status {
        Some(0) => Decision::Connected,
        Some(255) if r.stderr.contains("CHANGED") => Decision::Changed,
        Some(255) if r.stderr.contains("is not in") => Decision::Unknown,
        _ => Decision::Other,
    };
    (d, r.stderr.clone())
}

/// Both clients, one after the other on copies of `text`; returns both decisions and the
/// files as each client left them.
pub(super) fn both(
    sshd: &Sshd,
    host: &str,
    text: &[u8],
    policy: &str,
) -> [(Decision, Vec<u8>, String); 2] {
    let home = Home::new();
    let ours = home.path().join("ours");
    let theirs = home.path().join("theirs");
    std::fs::write(&ours, text).unwrap();
    std::fs::write(&theirs, text).unwrap();
    let (o, oe) = paragon(sshd, &home, host, &ours, policy);
    let (t, te) = openssh(sshd, host, &theirs, policy);
    [
        (o, std::fs::read(&ours).unwrap(), oe),
        (t, std::fs::read(&theirs).unwrap(), te),
    ]
}

fn assert_alike(sshd: &Sshd, host: &str, text: &[u8], policy: &str, want: Decision) {
    let [(o, _, oe), (t, _, te)] = both(sshd, host, text, policy);
    assert_eq!(
        t,
        want,
        "OpenSSH on {:?} ({policy}): {te}",
        String::from_utf8_lossy(text)
    );
    assert_eq!(
        o,
        want,
        "paragon-admin on {:?} ({policy}): {oe}",
        String::from_utf8_lossy(text)
    );
}

/// A fresh key of `key_type`: (type name, base64 blob).
fn other_key(dir: &Path, key_type: &str) -> (String, String) {
    let p = dir.join(format!("impostor_{key_type}"));
    keygen(&p, key_type, "");
    split_pub(&std::fs::read_to_string(p.with_extension("pub")).unwrap())
}

fn split_pub(line: &str) -> (String, String) {
    let mut f = line.split_whitespace();
    (f.next().unwrap().to_string(), f.next().unwrap().to_string())
}

#[test]
fn hashed_entry_of_the_lower_case_name_refuses_a_wrong_key_under_accept_new() {
    let sshd = Sshd::start();
    let dir = tempfile::tempdir().unwrap();
    let (t, b) = other_key(dir.path(), "ed25519");
    // An entry hashed from the lower-case name, holding a key that is not the server's.
    let kh = dir.path().join("kh");
    std::fs::write(&kh, format!("[localhost]:{} {t} {b}\n", sshd.port)).unwrap();
    let st = Command::new("ssh-keygen")
        .arg("-H")
        .arg("-f")
        .arg(&kh)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .unwrap();
    assert!(st.success());
    let text = std::fs::read(&kh).unwrap();
    assert!(text.starts_with(b"|1|"));
    for policy in ["accept-new", "yes"] {
        let [(o, ours, oe), (t, theirs, te)] = both(&sshd, "LocalHost", &text, policy);
        assert_eq!(t, Decision::Changed, "OpenSSH ({policy}): {te}");
        assert_eq!(o, Decision::Changed, "paragon-admin ({policy}): {oe}");
        assert_eq!(ours, text, "{policy}: known_hosts must stay untouched");
        assert_eq!(theirs, text);
    }
    // The right key under the other case is known.
    let home = Home::new();
    let right = home.path().join("kh");
    std::fs::write(
        &right,
        format!(
            "[localhost]:{} {}\n",
            sshd.port,
            sshd.host_public_key("ed25519")
        ),
    )
    .unwrap();
    Command::new("ssh-keygen")
        .arg("-H")
        .arg("-f")
        .arg(&right)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .unwrap();
    assert_alike(
        &sshd,
        "LOCALHOST",
        &std::fs::read(&right).unwrap(),
        "yes",
        Decision::Connected,
    );
}

#[test]
fn signature_and_certificate_type_names_make_a_wrong_key_a_changed_key() {
    let sshd = Sshd::start();
    let dir = tempfile::tempdir().unwrap();
    let (_, rsa) = other_key(dir.path(), "rsa");
    let name = format!("[127.0.0.1]:{}", sshd.port);
    for type_name in ["rsa-sha2-256", "rsa-sha2-512", "ssh-rsa"] {
        let text = format!("{name} {type_name} {rsa}\n");
        for policy in ["accept-new", "yes"] {
            let [(o, ours, oe), (t, _, te)] = both(&sshd, "127.0.0.1", text.as_bytes(), policy);
            assert_eq!(t, Decision::Changed, "OpenSSH {type_name} ({policy}): {te}");
            assert_eq!(
                o,
                Decision::Changed,
                "paragon-admin {type_name} ({policy}): {oe}"
            );
            assert_eq!(ours, text.as_bytes());
        }
    }
    // A host certificate on a plain line is a key, and not the server's.
    let ca = dir.path().join("ca");
    keygen(&ca, "ed25519", "");
    let host_key = dir.path().join("impostor_ed25519");
    keygen(&host_key, "ed25519", "");
    let st = Command::new("ssh-keygen")
        .args(["-q", "-s"])
        .arg(&ca)
        .args(["-h", "-I", "impostor", "-n", "127.0.0.1"])
        .arg(host_key.with_extension("pub"))
        .stderr(Stdio::null())
        .status()
        .unwrap();
    assert!(st.success());
    let cert = std::fs::read_to_string(dir.path().join("impostor_ed25519-cert.pub")).unwrap();
    let (ct, cb) = split_pub(&cert);
    assert_eq!(ct, "ssh-ed25519-cert-v01@openssh.com");
    let text = format!("{name} {ct} {cb}\n");
    for policy in ["accept-new", "yes"] {
        let [(o, ours, oe), (t, _, te)] = both(&sshd, "127.0.0.1", text.as_bytes(), policy);
        assert_eq!(t, Decision::Changed, "OpenSSH cert ({policy}): {te}");
        assert_eq!(o, Decision::Changed, "paragon-admin cert ({policy}): {oe}");
        assert_eq!(ours, text.as_bytes());
    }
}

#[test]
fn lines_are_split_only_at_space_and_tab_as_openssh_splits_them() {
    let sshd = Sshd::start();
    let name = format!("[127.0.0.1]:{}", sshd.port);
    let (t, b) = split_pub(&sshd.host_public_key("ed25519"));
    // The right key, but a field boundary OpenSSH does not see: the line is ignored.
    for sep in ["\x0b", "\x0c", "\u{a0}", "\r"] {
        let text = format!("{name}{sep}{t} {b}\n");
        assert_alike(
            &sshd,
            "127.0.0.1",
            text.as_bytes(),
            "yes",
            Decision::Unknown,
        );
        let text = format!("{name} {t}{sep}{b}\n");
        assert_alike(
            &sshd,
            "127.0.0.1",
            text.as_bytes(),
            "yes",
            Decision::Unknown,
        );
    }
    // Tabs separate; a CR at the end of a DOS line is skipped with the base64.
    let text = format!("{name}\t{t}\t{b}\r\n");
    assert_alike(
        &sshd,
        "127.0.0.1",
        text.as_bytes(),
        "yes",
        Decision::Connected,
    );
    // A sub-pattern too long for OpenSSH makes the whole list match nothing.
    let long = "x".repeat(1023);
    for hosts in [format!("{long},{name}"), format!("{name},{long}")] {
        let text = format!("{hosts} {t} {b}\n");
        assert_alike(
            &sshd,
            "127.0.0.1",
            text.as_bytes(),
            "yes",
            Decision::Unknown,
        );
    }
    let fits = "x".repeat(1022);
    let text = format!("{name},{fits} {t} {b}\n");
    assert_alike(
        &sshd,
        "127.0.0.1",
        text.as_bytes(),
        "yes",
        Decision::Connected,
    );
}

#[test]
fn a_bare_host_entry_serves_other_ports_as_in_openssh() {
    let sshd = Sshd::start();
    let dir = tempfile::tempdir().unwrap();
    // The right key under the bare name: accepted on any port, nothing recorded.
    let right = format!("127.0.0.1 {}\n", sshd.host_public_key("ed25519"));
    for policy in ["yes", "accept-new"] {
        let [(o, ours, oe), (t, theirs, te)] = both(&sshd, "127.0.0.1", right.as_bytes(), policy);
        assert_eq!(t, Decision::Connected, "OpenSSH: {te}");
        assert_eq!(o, Decision::Connected, "paragon-admin: {oe}");
        assert_eq!(ours, theirs);
    }
    // Another key under the bare name: the port's name is unknown, not changed.
    let (t, b) = other_key(dir.path(), "ed25519");
    let wrong = format!("127.0.0.1 {t} {b}\n");
    assert_alike(
        &sshd,
        "127.0.0.1",
        wrong.as_bytes(),
        "yes",
        Decision::Unknown,
    );
    let [(o, ours, oe), (t, theirs, te)] = both(&sshd, "127.0.0.1", wrong.as_bytes(), "accept-new");
    assert_eq!(t, Decision::Connected, "OpenSSH: {te}");
    assert_eq!(o, Decision::Connected, "paragon-admin: {oe}");
    assert_eq!(ours, theirs, "both record the same line");
    // Both say so in one line, a message and not a timestamped log line.
    assert!(te.contains("Permanently added"), "{te}");
    let said: Vec<&str> = oe
        .lines()
        .filter(|l| l.contains("permanently added"))
        .collect();
    assert_eq!(said.len(), 1, "{oe}");
    assert!(
        said[0]
            .trim_start()
            .starts_with("WARN permanently added [127.0.0.1]:"),
        "{oe}"
    );
}

#[test]
fn concurrent_first_connections_record_every_line() {
    // 20 hosts that are all new: two sshds on ten loopback addresses each (sshd listens on
    // at most 16 sockets).
    let sshds: Vec<Sshd> = [1, 11]
        .iter()
        .map(|first| {
            Sshd::start_with(SshdOptions {
                listen: format!("127.0.0.{first}"),
                extra_config: (first + 1..first + 10)
                    .map(|i| format!("ListenAddress 127.0.0.{i}"))
                    .collect(),
                ..Default::default()
            })
        })
        .collect();
    let dir = tempfile::tempdir().unwrap();
    let kh = dir.path().join("known_hosts");
    let mut want = Vec::new();
    let mut homes = Vec::new();
    for (n, sshd) in sshds.iter().enumerate() {
        let (t, b) = split_pub(&sshd.host_public_key("ed25519"));
        for i in 1..=10 {
            let host = format!("127.0.0.{}", n * 10 + i);
            want.push(format!("[{host}]:{} {t} {b}", sshd.port));
            let h = Home::new();
            write_profile(sshd, &h, &host, &kh, "accept-new", "");
            homes.push(h);
        }
    }
    let children: Vec<_> = homes
        .iter()
        .map(|h| {
            ssh_true(h)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for c in children {
        let out = c.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let text = std::fs::read_to_string(&kh).unwrap();
    let mut lines: Vec<&str> = text.lines().collect();
    lines.sort_unstable();
    want.sort_unstable();
    assert_eq!(lines, want);
}

#[test]
fn accept_new_appends_through_a_symlink_and_dev_null_records_nothing() {
    let sshd = Sshd::start();
    let home = Home::new();
    let target = home.path().join("dotfiles-known_hosts");
    std::fs::write(&target, "# kept in a dotfiles repository\n").unwrap();
    let link = home.path().join("known_hosts");
    std::os::unix::fs::symlink(&target, &link).unwrap();
    let (d, e) = paragon(&sshd, &home, "127.0.0.1", &link, "accept-new");
    assert_eq!(d, Decision::Connected, "{e}");
    assert!(
        std::fs::symlink_metadata(&link)
            .unwrap()
            .file_type()
            .is_symlink()
    );
    assert_eq!(
        std::fs::read_to_string(&target).unwrap(),
        format!(
            "# kept in a dotfiles repository\n{}",
            sshd.known_hosts_line()
        )
    );
    assert_eq!(
        openssh(&sshd, "127.0.0.1", &link, "yes").0,
        Decision::Connected
    );

    let (d, e) = paragon(
        &sshd,
        &home,
        "127.0.0.1",
        Path::new("/dev/null"),
        "accept-new",
    );
    assert_eq!(d, Decision::Connected, "{e}");
    let null = std::fs::metadata("/dev/null").unwrap();
    assert!(std::os::unix::fs::FileTypeExt::is_char_device(
        &null.file_type()
    ));
    let (d, _) = paragon(&sshd, &home, "127.0.0.1", Path::new("/dev/null"), "yes");
    assert_eq!(d, Decision::Unknown, "nothing was recorded");
}

#[test]
fn a_fifo_known_hosts_is_refused_and_left_in_place() {
    let sshd = Sshd::start();
    let home = Home::new();
    let fifo = home.path().join("known_hosts");
    assert!(
        Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap()
            .success()
    );
    write_profile(&sshd, &home, "127.0.0.1", &fifo, "accept-new", "");
    let r = run(ssh_true(&home).stdin(Stdio::null()));
    assert_eq!(r.status, Some(255), "{}", r.stderr);
    assert!(r.stderr.contains("not a regular file"), "{}", r.stderr);
    let m = std::fs::symlink_metadata(&fifo).unwrap();
    assert!(std::os::unix::fs::FileTypeExt::is_fifo(&m.file_type()));
}

#[test]
fn a_new_known_hosts_honours_the_umask_as_openssh_does() {
    let sshd = Sshd::start();
    let home = Home::new();
    let ours = home.path().join("ours");
    let theirs = home.path().join("theirs");
    write_profile(&sshd, &home, "127.0.0.1", &ours, "accept-new", "");
    let cmd = ssh_true(&home);
    let st = Command::new("sh")
        .args(["-c", "umask 077 && exec \"$@\"", "sh"])
        .arg(cmd.get_program())
        .args(cmd.get_args())
        .env_clear()
        .envs(cmd.get_envs().filter_map(|(k, v)| Some((k, v?))))
        .stdin(Stdio::null())
        .status()
        .unwrap();
    assert!(st.success());
    let st = Command::new("sh")
        .args([
            "-c",
            "umask 077 && exec \"$@\"",
            "sh",
            "ssh",
            "-F",
            "none",
            "-o",
            "BatchMode=yes",
        ])
        .args(["-o", "StrictHostKeyChecking=accept-new", "-o"])
        .arg(format!("UserKnownHostsFile={}", theirs.display()))
        .arg("-i")
        .arg(&sshd.client_key)
        .args(["-p", &sshd.port.to_string(), "root@127.0.0.1", "true"])
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .unwrap();
    assert!(st.success());
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&theirs), 0o600);
    assert_eq!(mode(&ours), mode(&theirs));
}

/// Runs `cmd` in a private mount namespace after `setup` (a shell script) ran there.
fn in_mount_namespace(setup: &str, cmd: &Command) -> Run {
    run(Command::new("unshare")
        .args(["-m", "sh", "-c", &format!("{setup} && exec \"$@\""), "sh"])
        .arg(cmd.get_program())
        .args(cmd.get_args())
        .env_clear()
        .envs(cmd.get_envs().filter_map(|(k, v)| Some((k, v?))))
        .stdin(Stdio::null()))
}

fn quoted(p: &Path) -> String {
    format!("'{}'", p.display())
}

#[test]
fn a_read_only_known_hosts_is_not_rewritten_and_the_key_is_used_once_as_in_openssh() {
    let sshd = Sshd::start();
    let home = Home::new();
    let kh = home.path().join("known_hosts");
    std::fs::write(&kh, "# mine\n").unwrap();
    let inode = std::fs::metadata(&kh).unwrap().ino();
    // Read-only even for root: a read-only bind mount of the file itself.
    let setup = format!(
        "mount --bind {k} {k} && mount -o remount,bind,ro {k}",
        k = quoted(&kh)
    );
    write_profile(&sshd, &home, "127.0.0.1", &kh, "accept-new", "");
    let r = in_mount_namespace(&setup, &ssh_true(&home));
    assert_eq!(r.status, Some(0), "{}", r.stderr);
    assert!(
        r.stderr.contains("cannot record the host key"),
        "{}",
        r.stderr
    );
    assert_eq!(std::fs::read_to_string(&kh).unwrap(), "# mine\n");
    assert_eq!(std::fs::metadata(&kh).unwrap().ino(), inode);
    // OpenSSH: fails to add, says so, connects.
    let mut ssh = Command::new("ssh");
    ssh.args([
        "-F",
        "none",
        "-o",
        "BatchMode=yes",
        "-o",
        "StrictHostKeyChecking=accept-new",
        "-o",
    ])
    .arg(format!("UserKnownHostsFile={}", kh.display()))
    .arg("-i")
    .arg(&sshd.client_key)
    .args(["-p", &sshd.port.to_string(), "root@127.0.0.1", "true"]);
    let r = in_mount_namespace(&setup, &ssh);
    assert_eq!(r.status, Some(0), "{}", r.stderr);
    assert!(r.stderr.contains("Failed to add"), "{}", r.stderr);
}

#[test]
fn a_known_hosts_bind_mounted_into_a_read_only_folder_is_appended_in_place() {
    let sshd = Sshd::start();
    let home = Home::new();
    let folder = home.path().join("ssh");
    std::fs::create_dir(&folder).unwrap();
    let kh = folder.join("known_hosts");
    std::fs::write(&kh, "").unwrap();
    let outside = home.path().join("writable");
    std::fs::write(&outside, "# from the host\n").unwrap();
    // The folder read-only (a rename into it fails), the file a writable bind mount.
    let setup = format!(
        "mount --bind {d} {d} && mount -o remount,bind,ro {d} && mount --bind {o} {k}",
        d = quoted(&folder),
        o = quoted(&outside),
        k = quoted(&kh)
    );
    write_profile(&sshd, &home, "127.0.0.1", &kh, "accept-new", "");
    let r = in_mount_namespace(&setup, &ssh_true(&home));
    assert_eq!(r.status, Some(0), "{}", r.stderr);
    assert!(!r.stderr.contains("cannot record"), "{}", r.stderr);
    assert_eq!(
        std::fs::read_to_string(&outside).unwrap(),
        format!("# from the host\n{}", sshd.known_hosts_line())
    );
    // And it is read there: `yes` now connects.
    write_profile(&sshd, &home, "127.0.0.1", &kh, "yes", "");
    let r = in_mount_namespace(&setup, &ssh_true(&home));
    assert_eq!(r.status, Some(0), "{}", r.stderr);
}

#[test]
fn an_endless_known_hosts_is_refused_naming_the_file() {
    let sshd = Sshd::start();
    let home = Home::new();
    write_profile(&sshd, &home, "127.0.0.1", Path::new("/dev/zero"), "yes", "");
    let r = run(ssh_true(&home).stdin(Stdio::null()));
    assert_eq!(r.status, Some(255), "{}", r.stderr);
    assert!(
        r.stderr.contains("/dev/zero") && r.stderr.contains("too large"),
        "{}",
        r.stderr
    );
}

#[test]
fn hash_known_hosts_in_the_profile_writes_lines_ssh_keygen_finds() {
    let sshd = Sshd::start();
    let home = Home::new();
    let kh = home.path().join("known_hosts");
    write_profile(
        &sshd,
        &home,
        "127.0.0.1",
        &kh,
        "accept-new",
        "hash_known_hosts = true",
    );
    let r = run(ssh_true(&home).stdin(Stdio::null()));
    assert_eq!(r.status, Some(0), "{}", r.stderr);
    let text = std::fs::read_to_string(&kh).unwrap();
    assert!(
        text.starts_with("|1|") && !text.contains("127.0.0.1"),
        "{text}"
    );
    let found = Command::new("ssh-keygen")
        .arg("-F")
        .arg(format!("[127.0.0.1]:{}", sshd.port))
        .arg("-f")
        .arg(&kh)
        .output()
        .unwrap();
    assert!(
        found.status.success(),
        "ssh-keygen -F did not find it in {text}"
    );
    assert_eq!(
        openssh(&sshd, "127.0.0.1", &kh, "yes").0,
        Decision::Connected
    );
}

#[test]
fn a_host_alias_of_the_users_ssh_config_is_resolved_when_connecting() {
    let bastion = Sshd::start();
    let jump = Sshd::start();
    jump.authorize(&bastion.client_key.with_extension("pub"));
    let home = Home::new();
    let aliased_kh = home.path().join("aliased_known_hosts");
    std::fs::create_dir(home.path().join(".ssh")).unwrap();
    std::fs::write(
        home.path().join(".ssh/config"),
        format!(
            "Host bastion-alias\n  HostName 127.0.0.1\n  Port {}\n  User root\n  IdentityFile {}\n  \
             ProxyJump root@127.0.0.1:{}\n  UserKnownHostsFile {}\n  HashKnownHosts yes\n",
            bastion.port,
            bastion.client_key.display(),
            jump.port,
            aliased_kh.display()
        ),
    )
    .unwrap();
    home.write_config(
        "[profiles.test]\nhost = \"bastion-alias\"\nstrict_host_key_checking = \"accept-new\"\nconnect_timeout = 10\n",
    );
    let r = run(home
        .paragon()
        .args(["-v", "ssh", "--", "echo via-alias"])
        .stdin(Stdio::null()));
    assert_eq!(r.status, Some(0), "{}\n{}", r.stderr, jump.log());
    assert!(r.stderr.contains("ssh -G"), "said at -v: {}", r.stderr);
    assert!(jump.log().contains("Accepted publickey"), "{}", jump.log());
    // Both hosts recorded, hashed, in the alias's UserKnownHostsFile, as OpenSSH finds them.
    let text = std::fs::read_to_string(&aliased_kh).unwrap();
    assert_eq!(
        text.lines().filter(|l| l.starts_with("|1|")).count(),
        2,
        "{text}"
    );
    for port in [bastion.port, jump.port] {
        let found = Command::new("ssh-keygen")
            .arg("-F")
            .arg(format!("[127.0.0.1]:{port}"))
            .arg("-f")
            .arg(&aliased_kh)
            .output()
            .unwrap();
        assert!(found.status.success(), "[127.0.0.1]:{port} not in {text}");
    }
    // The profile's own keys win over the alias's.
    let own = home.path().join("own_known_hosts");
    home.write_config(&format!(
        "[profiles.test]\nhost = \"bastion-alias\"\nstrict_host_key_checking = \"accept-new\"\n\
         connect_timeout = 10\nknown_hosts = \"{}\"\nhash_known_hosts = false\n",
        own.display()
    ));
    let r = run(ssh_true(&home).stdin(Stdio::null()));
    assert_eq!(r.status, Some(0), "{}", r.stderr);
    let text = std::fs::read_to_string(&own).unwrap();
    assert!(text.contains(&bastion.known_hosts_line()), "{text}");
}

#[test]
fn without_a_user_ssh_config_the_profile_is_used_alone_and_said_at_v() {
    let sshd = Sshd::start();
    let home = Home::new();
    let kh = sshd.configure(&home);
    let r = run(home
        .paragon()
        .args(["-v", "ssh", "--", "true"])
        .stdin(Stdio::null()));
    assert_eq!(r.status, Some(0), "{}", r.stderr);
    assert!(
        r.stderr.contains("the profile is used as it is"),
        "{}",
        r.stderr
    );
    assert_eq!(
        std::fs::read_to_string(&kh).unwrap(),
        sshd.known_hosts_line()
    );
}

#[test]
fn host_key_decisions_match_openssh_on_generated_known_hosts_files() {
    // scripts/known-hosts-diff.py: generated files under `yes` and `accept-new`, paragon-admin
    // and OpenSSH's `ssh` against one real sshd; a fixed seed so that a failure reproduces.
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/known-hosts-diff.py");
    let out = Command::new("python3")
        .arg(&script)
        .args(["--paragon", env!("CARGO_BIN_EXE_paragon-admin")])
        .args(["--count", "60", "--seed", "1"])
        .stdin(Stdio::null())
        .output()
        .expect("python3 must be installed");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("60 files x 2 policies (seed 1): 0 differences"),
        "{stdout}"
    );
    // The files exercise every outcome, not one.
    for outcome in [
        "yes: connected",
        "yes: unknown",
        "yes: changed",
        "accept-new: connected",
    ] {
        assert!(
            stdout.contains(outcome),
            "{outcome} never happened: {stdout}"
        );
    }
}

/// `known_hosts = "/dev/null"` remembers nothing: the connection goes on under accept-new,
/// and nothing claims the key was "permanently added to /dev/null".
#[test]
fn a_known_hosts_of_dev_null_records_nothing_and_says_nothing_of_adding() {
    let sshd = Sshd::start();
    let home = Home::new();
    let (d, stderr) = paragon(
        &sshd,
        &home,
        "127.0.0.1",
        Path::new("/dev/null"),
        "accept-new",
    );
    assert_eq!(d, Decision::Connected, "{stderr}");
    assert!(!stderr.contains("added"), "{stderr}");
}
