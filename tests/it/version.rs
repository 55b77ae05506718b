//! `--version`: the git revision the binary was built from (build.rs), and only there.
//! (A build outside git, without a revision, is proven by scripts/test-package.sh.)

use std::path::Path;
use std::process::Command;

use crate::support::{Home, run};

#[test]
fn long_version_names_the_checked_out_git_revision_and_short_version_does_not() {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    // This test proves the checkout case: it runs from a git checkout, else it fails loudly.
    assert!(
        repo.join(".git").exists(),
        "{} is not a git checkout: this test needs one",
        repo.display()
    );
    let head = Command::new("git")
        .arg("-C")
        .arg(repo)
        .args(["rev-parse", "--short", "HEAD"])
        .output()
        .expect("run git");
    assert!(head.status.success(), "git rev-parse failed");
    let head = String::from_utf8(head.stdout).unwrap().trim().to_string();
    let version = env!("CARGO_PKG_VERSION");

    let home = Home::new();
    let long = run(home.paragon().arg("--version"));
    assert_eq!(long.status, Some(0), "{}", long.stderr);
    // cargo reruns build.rs when HEAD or the branch moves, so this is HEAD, not an old commit.
    assert_eq!(
        long.stdout,
        format!("paragon-admin {version} (git {head})\n")
    );

    let short = run(home.paragon().arg("-V"));
    assert_eq!(short.status, Some(0), "{}", short.stderr);
    assert_eq!(short.stdout, format!("paragon-admin {version}\n"));
}
