//! Unit tests of known_hosts parsing, matching and writing, on real OpenSSH 9.2 lines.

use super::*;
use std::path::Path;

// Real keys and lines from `ssh-keygen -t ...` and `ssh-keygen -H` (OpenSSH 9.2).
const ED: &str = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIMVSHPfAH9OjPRCMgDLa7/+tmB0yszAzxznHH/GWAumb";
const ED_FP: &str = "SHA256:5WSHxi5JiU6OY5Sh5JbkX6IlMIrNoA6r/gEpWzuEbHo";
const EC: &str = "ecdsa-sha2-nistp256 AAAAE2VjZHNhLXNoYTItbmlzdHAyNTYAAAAIbmlzdHAyNTYAAABBBD0EBJwyoaet1VYyacaj1YO051Z7FYiTFslzKnknDCUdKix0Ua3F11cX9pmmWNheg6DMy9O2xraIhcFlpXDVAOk=";
const EC_FP: &str = "SHA256:YxPwSCdmZFeGW0pTrZGCWLHeOUlRxN2l8I5MeH/EIio";
const RSA: &str = "ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAABAQDqrTxQGbdFdCQ/cjUzzKHZCaSPBzHAI5i5G1t+k7Ijq3+6ZuT6xOj/ZX2xpwNdm3Fu5oatHFiewnsve8+DOIobxIUqF0bKmxxogtVnbQmqig40XmD832SAudYM0cK0UHabBRJjlO/4qznIAkBnnVsx/0onLpBJuYabiKuRX5LX0QwHLQ6Xsz/3vnGc0KKCT8DgqO4UedrVmIXDHV0+CFgDE6Mnf98118B2qPLV33d4vTdKND0pPmQ0noXo6mRqP6IZUyRVcufCAWwTChOm+uOx3HZRMZfHcy51PLFqtKEp0c2xrPAzx7K3K5x/gYi9chzks7dHPWfc3X+ujSvH6+HX";
/// `bastion.example.com` with ED, hashed.
const HASHED_22: &str = "|1|yJOvciKoEMw5fWD5Gxl3roFC6o4=|LvJ+jQqPlTQAMlrU8fXP1mBYEyY= ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIMVSHPfAH9OjPRCMgDLa7/+tmB0yszAzxznHH/GWAumb";
/// `[10.0.0.5]:2222` with EC, hashed.
const HASHED_2222: &str = "|1|U2urylnUkF+AzVYzUKyiKbkxf7g=|DgHE0yJQUevowQu/dFF78w2MrWI= ecdsa-sha2-nistp256 AAAAE2VjZHNhLXNoYTItbmlzdHAyNTYAAAAIbmlzdHAyNTYAAABBBD0EBJwyoaet1VYyacaj1YO051Z7FYiTFslzKnknDCUdKix0Ua3F11cX9pmmWNheg6DMy9O2xraIhcFlpXDVAOk=";

fn key(s: &str) -> PublicKey {
    PublicKey::from_openssh(s).unwrap()
}

#[test]
fn hashed_entries_from_ssh_keygen_match_their_host_only() {
    let kh = KnownHosts::parse(format!("{HASHED_22}\n{HASHED_2222}\n").as_bytes());
    assert_eq!(kh.entries.len(), 2);
    assert!(matches!(
        kh.check("bastion.example.com", 22, &key(ED)),
        Verdict::Known { line: 1 }
    ));
    assert!(matches!(
        kh.check("10.0.0.5", 2222, &key(EC)),
        Verdict::Known { line: 2 }
    ));
    // Same host, other port, nothing under `[host]:port`: OpenSSH takes the bare
    // host's identical key.
    assert!(matches!(
        kh.check("bastion.example.com", 2222, &key(ED)),
        Verdict::Known { line: 1 }
    ));
    assert!(matches!(
        kh.check("bastion.example.com", 2222, &key(EC)),
        Verdict::Unknown
    ));
    assert!(matches!(
        kh.check("10.0.0.5", 22, &key(EC)),
        Verdict::Unknown
    ));
    assert!(matches!(
        kh.check("other.example.com", 22, &key(ED)),
        Verdict::Unknown
    ));
}

#[test]
fn hashed_entry_with_another_key_is_a_change() {
    let kh = KnownHosts::parse(format!("{HASHED_22}\n").as_bytes());
    match kh.check("bastion.example.com", 22, &key(RSA)) {
        Verdict::Changed { line, recorded } => {
            assert_eq!(line, 1);
            assert_eq!(fingerprint(&recorded), ED_FP);
        }
        v => panic!("{v:?}"),
    }
}

#[test]
fn bracketed_port_entries_match_only_that_port() {
    let kh =
        KnownHosts::parse(format!("[b.example.com]:2222 {ED}\nb.example.com {EC}\n").as_bytes());
    assert!(matches!(
        kh.check("b.example.com", 2222, &key(ED)),
        Verdict::Known { line: 1 }
    ));
    assert!(matches!(
        kh.check("b.example.com", 22, &key(EC)),
        Verdict::Known { line: 2 }
    ));
    assert!(matches!(
        kh.check("b.example.com", 2222, &key(EC)),
        Verdict::Changed { line: 1, .. }
    ));
    assert!(matches!(
        kh.check("b.example.com", 2200, &key(ED)),
        Verdict::Unknown
    ));
}

#[test]
fn several_names_wildcards_and_negation() {
    let kh = KnownHosts::parse(
        format!("a.example.com,10.0.0.1 {ED}\n*.internal,!secret.internal {EC}\nh?st {RSA}\n")
            .as_bytes(),
    );
    assert!(matches!(
        kh.check("10.0.0.1", 22, &key(ED)),
        Verdict::Known { line: 1 }
    ));
    assert!(matches!(
        kh.check("A.EXAMPLE.COM", 22, &key(ED)),
        Verdict::Known { .. }
    ));
    assert!(matches!(
        kh.check("db.internal", 22, &key(EC)),
        Verdict::Known { line: 2 }
    ));
    assert!(matches!(
        kh.check("secret.internal", 22, &key(EC)),
        Verdict::Unknown
    ));
    assert!(matches!(
        kh.check("host", 22, &key(RSA)),
        Verdict::Known { line: 3 }
    ));
    assert!(matches!(kh.check("hoost", 22, &key(RSA)), Verdict::Unknown));
}

#[test]
fn revoked_key_is_refused_even_when_also_recorded() {
    let kh = KnownHosts::parse(format!("b {ED}\n@revoked * {ED}\n").as_bytes());
    assert!(matches!(
        kh.check("b", 22, &key(ED)),
        Verdict::Revoked { line: 2 }
    ));
    // Revocation is of that key only.
    assert!(matches!(kh.check("c", 22, &key(EC)), Verdict::Unknown));
}

#[test]
fn cert_authority_lines_are_recognised_but_never_a_host_key() {
    let kh = KnownHosts::parse(format!("@cert-authority *.example.com {ED}\n").as_bytes());
    assert_eq!(kh.entries.len(), 1);
    assert_eq!(kh.entries[0].marker, Marker::CertAuthority);
    assert!(matches!(
        kh.check("b.example.com", 22, &key(ED)),
        Verdict::Unknown
    ));
}

#[test]
fn comments_blank_unknown_markers_and_garbage_are_skipped() {
    let text = format!(
        "# comment\n\n@weird b {ED}\nb ssh-ed25519 notbase64\nb ssh-rsa {}\n|2|x|y {ED}\n  b {EC} a comment\n",
        ED.split(' ').nth(1).unwrap()
    );
    let kh = KnownHosts::parse(text.as_bytes());
    assert_eq!(kh.entries.len(), 1, "{:?}", kh.entries);
    assert_eq!(kh.entries[0].line, 7);
}

#[test]
fn fingerprints_are_openssh_sha256() {
    assert_eq!(fingerprint(&key(ED)), ED_FP);
    assert_eq!(fingerprint(&key(EC)), EC_FP);
}

#[test]
fn entry_line_uses_brackets_off_port_22_and_drops_comments() {
    let k = key(&format!("{ED} someone@laptop"));
    assert_eq!(
        entry_line("10.0.0.5", 2222, &k, false).unwrap(),
        format!("[10.0.0.5]:2222 {ED}\n")
    );
    assert_eq!(entry_line("b", 22, &k, false).unwrap(), format!("b {ED}\n"));
    let kh = KnownHosts::parse(entry_line("10.0.0.5", 2222, &k, false).unwrap().as_bytes());
    assert!(matches!(
        kh.check("10.0.0.5", 2222, &k),
        Verdict::Known { .. }
    ));
}

#[test]
fn algorithms_for_lists_recorded_types_in_order() {
    let kh = KnownHosts::parse(format!("b {EC}\nb {ED}\nc {RSA}\nb {EC}\n").as_bytes());
    let names: Vec<String> = kh
        .algorithms_for("b", 22)
        .iter()
        .map(|a| a.as_str().to_string())
        .collect();
    assert_eq!(names, ["ecdsa-sha2-nistp256", "ssh-ed25519"]);
}

#[test]
fn append_keeps_existing_bytes_and_adds_a_missing_newline() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("sub/known_hosts");
    append(&p, "a x y\n").unwrap();
    assert_eq!(std::fs::read_to_string(&p).unwrap(), "a x y\n");
    std::fs::write(&p, "# keep me").unwrap();
    append(&p, "b x y\n").unwrap();
    assert_eq!(std::fs::read_to_string(&p).unwrap(), "# keep me\nb x y\n");
}

#[test]
fn append_keeps_the_file_mode_in_place() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("known_hosts");
    append(&p, "a x y\n").unwrap();
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).unwrap();
    append(&p, "b x y\n").unwrap();
    assert_eq!(mode(&p), 0o600);
}

#[test]
fn a_host_name_in_another_case_matches_a_hashed_entry_and_a_wrong_key_is_a_change() {
    let kh = KnownHosts::parse(format!("{HASHED_22}\n").as_bytes());
    assert!(matches!(
        kh.check("Bastion.Example.COM", 22, &key(ED)),
        Verdict::Known { line: 1 }
    ));
    assert!(matches!(
        kh.check("Bastion.Example.com", 22, &key(EC)),
        Verdict::Changed { line: 1, .. }
    ));
}

#[test]
fn signature_type_names_are_names_of_the_same_key() {
    let blob = RSA.split(' ').nth(1).unwrap();
    for name in ["rsa-sha2-256", "rsa-sha2-512", "ssh-rsa"] {
        let kh = KnownHosts::parse(format!("b {name} {blob}\n").as_bytes());
        assert!(matches!(
            kh.check("b", 22, &key(RSA)),
            Verdict::Known { line: 1 }
        ));
        assert!(
            matches!(
                kh.check("b", 22, &key(ED)),
                Verdict::Changed { line: 1, .. }
            ),
            "{name}"
        );
    }
    // A certificate type name over a plain blob is a broken line, as in OpenSSH.
    let kh = KnownHosts::parse(format!("b rsa-sha2-256-cert-v01@openssh.com {blob}\n").as_bytes());
    assert!(kh.entries.is_empty());
    // A type name that is not the blob's.
    let kh = KnownHosts::parse(format!("b ssh-ed25519 {blob}\n").as_bytes());
    assert!(kh.entries.is_empty());
}

#[test]
fn only_space_and_tab_separate_fields() {
    let (t, b) = ED.split_once(' ').unwrap();
    for sep in ["\x0b", "\x0c", "\u{a0}", "\r"] {
        let kh = KnownHosts::parse(format!("b{sep}{t} {b}\nc {t}{sep}{b}\n").as_bytes());
        assert!(kh.entries.is_empty(), "{sep:?}: {:?}", kh.entries);
    }
    let kh = KnownHosts::parse(format!("\tb\t{t}\t\t{b}\tcomment\n").as_bytes());
    assert!(matches!(
        kh.check("b", 22, &key(ED)),
        Verdict::Known { line: 1 }
    ));
    // White space at the end of the blob is skipped by OpenSSH's base64 decoder.
    let kh = KnownHosts::parse(format!("b {ED}\r\n").as_bytes());
    assert!(matches!(
        kh.check("b", 22, &key(ED)),
        Verdict::Known { line: 1 }
    ));
}

#[test]
fn markers_are_read_as_openssh_reads_them() {
    let (t, b) = ED.split_once(' ').unwrap();
    // The marker ends at the line's first space: a tab before it makes a longer marker.
    let kh = KnownHosts::parse(format!("@revoked\tb {t} {b}\n@revoked\tb\t{t}\t{b}\n").as_bytes());
    assert_eq!(kh.entries.len(), 1);
    assert_eq!(kh.entries[0].line, 2);
    let kh = KnownHosts::parse(format!("@revoked @revoked b {ED}\n").as_bytes());
    assert!(kh.entries.is_empty());
}

#[test]
fn names_with_pattern_characters_are_not_recorded() {
    for bad in ["*.x", "a,b", "h?st", "!h", "[h]", "a b", ""] {
        assert!(!recordable(bad), "{bad}");
    }
    assert!(recordable("bastion.example.com"));
    assert!(recordable("10.0.0.5"));
    assert!(recordable("fe80::1"));
}

#[test]
fn hashed_lines_are_written_in_lower_case_and_match() {
    let line = entry_line("Bastion.Example.com", 2222, &key(ED), true).unwrap();
    assert!(line.starts_with("|1|"), "{line}");
    let kh = KnownHosts::parse(line.as_bytes());
    assert!(matches!(
        kh.check("bastion.example.com", 2222, &key(ED)),
        Verdict::Known { line: 1 }
    ));
    assert!(matches!(
        kh.check("bastion.example.com", 22, &key(ED)),
        Verdict::Unknown
    ));
}

#[test]
fn append_goes_through_a_symlink_and_dev_null_records_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("real");
    std::fs::write(&target, "a x y\n").unwrap();
    let link = dir.path().join("known_hosts");
    std::os::unix::fs::symlink(&target, &link).unwrap();
    append(&link, "b x y\n").unwrap();
    assert!(
        std::fs::symlink_metadata(&link)
            .unwrap()
            .file_type()
            .is_symlink()
    );
    assert_eq!(std::fs::read_to_string(&target).unwrap(), "a x y\nb x y\n");
    append(Path::new("/dev/null"), "b x y\n").unwrap();
    assert!(load(Path::new("/dev/null")).unwrap().entries.is_empty());
}

#[test]
fn a_fifo_is_refused_never_replaced() {
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("known_hosts");
    let made = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap();
    assert!(made.success());
    assert!(matches!(load(&fifo), Err(KnownHostsError::NotAFile { .. })));
    assert!(matches!(
        append(&fifo, "b x y\n"),
        Err(KnownHostsError::NotAFile { .. })
    ));
    use std::os::unix::fs::FileTypeExt as _;
    assert!(std::fs::metadata(&fifo).unwrap().file_type().is_fifo());
}

#[test]
fn append_writes_in_place_never_replacing_the_file() {
    use std::os::unix::fs::MetadataExt;
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("known_hosts");
    std::fs::write(&p, "a x y\n").unwrap();
    let inode = std::fs::metadata(&p).unwrap().ino();
    append(&p, "b x y\n").unwrap();
    assert_eq!(std::fs::metadata(&p).unwrap().ino(), inode);
    assert_eq!(std::fs::read_to_string(&p).unwrap(), "a x y\nb x y\n");
}

#[test]
fn endless_files_are_refused_by_name() {
    let e = load(Path::new("/dev/zero")).unwrap_err();
    assert!(matches!(e, KnownHostsError::TooLarge { .. }));
    assert!(e.to_string().contains("/dev/zero"), "{e}");
}

#[test]
fn concurrent_appends_lose_no_line() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("known_hosts");
    let threads: Vec<_> = (0..20)
        .map(|i| {
            let p = p.clone();
            std::thread::spawn(move || append(&p, &format!("h{i} x y\n")).unwrap())
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let text = std::fs::read_to_string(&p).unwrap();
    assert_eq!(text.lines().count(), 20, "{text}");
}
