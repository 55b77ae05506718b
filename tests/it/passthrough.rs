//! `kubectl` and `helm`: after the subcommand every argument is the remote tool's, leading
//! flags and bytes that are not UTF-8 included; against a real sshd whose `helm` prints argv.

use std::os::unix::ffi::OsStrExt;
use std::process::Stdio;

use crate::support::sshd::Sshd;
use crate::support::{Home, run};

#[test]
fn leading_flags_after_helm_are_helms_and_options_before_it_are_ours() {
    let sshd = Sshd::start();
    let home = Home::new();
    sshd.configure(&home);
    for args in [
        &["-v", "6", "get", "ns"][..],
        &["--output", "json", "get", "ns"],
        &["--version"],
        &["-q", "get", "ns"],
        &["--namespace", "x", "list"],
        &["--profile", "other", "--config", "/nowhere", "--help"],
    ] {
        let r = run(home
            .paragon()
            .args(["--profile", "test", "helm"])
            .args(args)
            .stdin(Stdio::null()));
        assert_eq!(r.status, Some(0), "{args:?}: {}", r.stderr);
        let want: String = args.iter().map(|a| format!("<{a}>\n")).collect();
        assert_eq!(r.stdout, want, "{args:?}");
    }
}

#[test]
fn an_argument_that_is_not_utf8_arrives_byte_for_byte() {
    use std::os::unix::ffi::OsStringExt;
    let sshd = Sshd::start();
    let home = Home::new();
    sshd.configure(&home);
    let latin1 = std::ffi::OsString::from_vec(b"caf\xe9 it's".to_vec());
    let out = home
        .paragon()
        .arg("helm")
        .arg(&latin1)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut want = b"<".to_vec();
    want.extend_from_slice(latin1.as_bytes());
    want.extend_from_slice(b">\n");
    assert_eq!(out.stdout, want);
}
