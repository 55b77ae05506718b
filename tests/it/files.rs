//! The files paragon-admin writes, with real symlinks and a second local user (`nobody`,
//! through `setpriv`): a link is written through and kept, and a folder other users can
//! write is refused unless it is sticky and the file is ours.

use std::os::unix::fs::{MetadataExt, PermissionsExt, symlink};
use std::path::Path;
use std::process::Command;

use crate::support::{Home, run};

/// The unprivileged user every Debian system has.
const NOBODY: u32 = 65534;

fn set_mode(path: &Path, mode: u32) {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

/// Runs `args` as `nobody` (no groups), as a second user on this machine would.
fn as_nobody(args: &[&str]) {
    let st = Command::new("setpriv")
        .args([
            "--reuid",
            &NOBODY.to_string(),
            "--regid",
            &NOBODY.to_string(),
            "--clear-groups",
        ])
        .args(args)
        .status()
        .expect("setpriv must be installed (util-linux)");
    assert!(st.success(), "as nobody: {args:?}");
}

#[test]
fn init_over_a_symlinked_config_writes_through_keeping_the_link_and_mode() {
    let home = Home::new();
    let dotfiles = home.path().join("dotfiles");
    std::fs::create_dir(&dotfiles).unwrap();
    let real = dotfiles.join("paragon.toml");
    std::fs::write(&real, "# kept in git\n").unwrap();
    set_mode(&real, 0o644);
    let link = home.config_path();
    symlink(&real, &link).unwrap();

    let r = run(home.paragon().args([
        "init",
        "--non-interactive",
        "--name",
        "lab",
        "--host",
        "127.0.0.1",
        "--user",
        "root",
    ]));
    assert_eq!(r.status, Some(0), "{}", r.stderr);

    assert!(std::fs::symlink_metadata(&link).unwrap().is_symlink());
    assert_eq!(std::fs::read_link(&link).unwrap(), real);
    let text = std::fs::read_to_string(&real).unwrap();
    assert!(text.contains("[profiles.lab]"), "{text}");
    assert!(text.contains("# kept in git"), "{text}");
    assert_eq!(std::fs::metadata(&real).unwrap().mode() & 0o777, 0o644);
    // No temporary file left beside the link or the target.
    assert_eq!(std::fs::read_dir(&dotfiles).unwrap().count(), 1);
    let r = run(home.paragon().args(["profiles"]));
    assert_eq!(r.status, Some(0), "{}", r.stderr);
    assert!(r.stdout.contains("lab"), "{}", r.stdout);
}

#[test]
fn a_folder_others_can_write_is_refused_and_in_a_sticky_one_their_files_and_links_are_too() {
    let root = tempfile::tempdir().unwrap();
    // nobody must reach the shared folders, as it would reach /tmp.
    set_mode(root.path(), 0o755);
    let victim = root.path().join("victim");
    std::fs::write(&victim, "precious\n").unwrap();

    // World-writable, not sticky: anyone could swap the pages; nothing is written.
    let open = root.path().join("open");
    std::fs::create_dir(&open).unwrap();
    set_mode(&open, 0o777);
    let home = Home::new();
    let r = run(home.paragon().arg("man").arg("--dir").arg(&open));
    assert_ne!(r.status, Some(0), "{}", r.stderr);
    assert!(
        r.stderr.contains(&format!(
            "the folder {} can be written by other users (mode 0777)",
            open.display()
        )),
        "{}",
        r.stderr
    );
    assert_eq!(std::fs::read_dir(&open).unwrap().count(), 0);

    // Sticky, like /tmp: our own new files are fine.
    let sticky = root.path().join("sticky");
    std::fs::create_dir(&sticky).unwrap();
    set_mode(&sticky, 0o1777);
    let r = run(home.paragon().arg("man").arg("--dir").arg(&sticky));
    assert_eq!(r.status, Some(0), "{}", r.stderr);
    let page = sticky.join("paragon-admin.1");
    assert!(page.is_file());

    // The other user plants a link where a page will be written: it is not followed.
    std::fs::remove_file(&page).unwrap();
    as_nobody(&["ln", "-s", victim.to_str().unwrap(), page.to_str().unwrap()]);
    let r = run(home.paragon().arg("man").arg("--dir").arg(&sticky));
    assert_ne!(r.status, Some(0), "{}", r.stderr);
    assert!(
        r.stderr.contains(&format!(
            "{} belongs to another user in the shared folder {}",
            page.display(),
            sticky.display()
        )),
        "{}",
        r.stderr
    );
    assert_eq!(std::fs::read_to_string(&victim).unwrap(), "precious\n");
    assert!(std::fs::symlink_metadata(&page).unwrap().is_symlink());

    // Or a file of its own: it is not replaced.
    std::fs::remove_file(&page).unwrap();
    as_nobody(&["touch", page.to_str().unwrap()]);
    let r = run(home.paragon().arg("man").arg("--dir").arg(&sticky));
    assert_ne!(r.status, Some(0), "{}", r.stderr);
    assert!(r.stderr.contains("belongs to another user"), "{}", r.stderr);
    assert_eq!(std::fs::metadata(&page).unwrap().uid(), NOBODY);
    assert_eq!(std::fs::metadata(&page).unwrap().len(), 0);
}
