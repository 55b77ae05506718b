//! Build script: names the git revision the binary is built from, for `--version`.
//!
//! Sets `PARAGON_ADMIN_LONG_VERSION` to `VERSION (git REV)` when the crate's own folder is a
//! git checkout and `git` answers, else to the bare `VERSION` (a tarball, a crates.io download,
//! a machine without git): a missing revision is never an error. It must not look above the
//! crate's folder, where an unrelated repository (a vendoring tree) would give a wrong revision.

use std::path::{Path, PathBuf};
use std::process::Command;

fn main() {
    let version = std::env::var("CARGO_PKG_VERSION").unwrap_or_default();
    let manifest_dir = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").unwrap_or_default());
    // Without this line cargo would rerun the script after any change in the crate.
    println!("cargo::rerun-if-changed=build.rs");
    let long_version = match revision(&manifest_dir) {
        Some(rev) => format!("{version} (git {rev})"),
        None => version,
    };
    println!("cargo::rustc-env=PARAGON_ADMIN_LONG_VERSION={long_version}");
}

/// The short revision of HEAD, and the files whose change must rebuild (HEAD, the branch's
/// ref); `None` outside a git checkout or when git cannot answer.
fn revision(manifest_dir: &Path) -> Option<String> {
    // `.git` is a folder in a clone and a file in a worktree: either counts.
    if !manifest_dir.join(".git").exists() {
        return None;
    }
    let rev = git(manifest_dir, &["rev-parse", "--short", "HEAD"])?;
    // HEAD moves on checkout; the branch's ref moves on commit. A packed ref has no loose
    // file, then packed-refs moves instead. Only existing files are named: cargo reruns the
    // script on every build for a named file that does not exist.
    let mut watched = vec![git(manifest_dir, &["rev-parse", "--git-path", "HEAD"])];
    if let Some(branch) = git(manifest_dir, &["symbolic-ref", "-q", "HEAD"]) {
        watched.push(git(manifest_dir, &["rev-parse", "--git-path", &branch]));
    }
    watched.push(git(
        manifest_dir,
        &["rev-parse", "--git-path", "packed-refs"],
    ));
    for path in watched.into_iter().flatten() {
        let path = manifest_dir.join(path);
        if path.exists() {
            println!("cargo::rerun-if-changed={}", path.display());
        }
    }
    Some(rev)
}

/// One git query in `dir`: its trimmed stdout, or `None` when git is missing or fails.
fn git(dir: &Path, args: &[&str]) -> Option<String> {
    let out = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(args)
        .output()
        .ok()?;
    let text = String::from_utf8(out.stdout).ok()?;
    let text = text.trim();
    (out.status.success() && !text.is_empty()).then(|| text.to_string())
}
