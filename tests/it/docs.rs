//! Completions and man pages: committed files match the code, load in real shells, render
//! in real `man`.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::support::{Home, run};

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn read_dir_sorted(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut files: Vec<(String, Vec<u8>)> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| {
            let e = e.unwrap();
            (
                e.file_name().to_string_lossy().into_owned(),
                std::fs::read(e.path()).unwrap(),
            )
        })
        .collect();
    files.sort();
    files
}

#[test]
fn committed_completions_and_man_pages_match_the_code() {
    let home = Home::new();
    let out = home.path().join("gen");
    for (what, dir) in [("completions", "completions"), ("man", "man")] {
        let r = run(home.paragon().args([what, "--dir"]).arg(out.join(dir)));
        assert_eq!(r.status, Some(0), "{}", r.stderr);
        let generated = read_dir_sorted(&out.join(dir));
        let committed = read_dir_sorted(&repo().join(dir));
        let names = |v: &[(String, Vec<u8>)]| v.iter().map(|f| f.0.clone()).collect::<Vec<_>>();
        assert_eq!(
            names(&committed),
            names(&generated),
            "{dir}/ is stale: run scripts/regen-docs.sh"
        );
        for (c, g) in committed.iter().zip(&generated) {
            assert!(
                c.1 == g.1,
                "{dir}/{} is stale: run scripts/regen-docs.sh",
                c.0
            );
        }
    }
}

fn path_with_binary() -> std::ffi::OsString {
    let bin = PathBuf::from(env!("CARGO_BIN_EXE_paragon-admin"));
    let mut paths = vec![bin.parent().unwrap().to_path_buf()];
    paths.extend(std::env::split_paths(
        &std::env::var_os("PATH").unwrap_or_default(),
    ));
    std::env::join_paths(paths).unwrap()
}

fn shell(name: &str) -> Command {
    let path =
        which(name).unwrap_or_else(|| panic!("{name} is not installed: run scripts/test.sh"));
    let mut c = Command::new(path);
    c.env("PATH", path_with_binary());
    c
}

fn which(name: &str) -> Option<PathBuf> {
    std::env::split_paths(&std::env::var_os("PATH")?)
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

#[test]
fn completion_scripts_load_in_bash_zsh_and_fish() {
    let dir = repo().join("completions");
    let bash = dir.join("paragon-admin.bash");
    let out = shell("bash")
        .arg("-c")
        .arg(format!(
            "set -e; source {}; complete -p paragon-admin",
            bash.display()
        ))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("_clap_complete_paragon_admin"));

    let zsh = dir.join("_paragon-admin");
    let out = shell("zsh")
        .args(["-f", "-c"])
        .arg(format!(
            "autoload -U compinit && compinit -u && source {} && print -r -- $_comps[paragon-admin]",
            zsh.display()
        ))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        !String::from_utf8_lossy(&out.stdout).trim().is_empty(),
        "zsh registered nothing"
    );

    let fish = dir.join("paragon-admin.fish");
    let out = shell("fish")
        .arg("-c")
        .arg(format!(
            "source {}; and complete -c paragon-admin",
            fish.display()
        ))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("paragon-admin"));
}

/// What the committed bash script offers for the last of `words` (the word being typed), with
/// the config file `config`; sorted.
fn bash_candidates(config: &Path, words: &[&str]) -> Vec<String> {
    let bash = repo().join("completions/paragon-admin.bash");
    let current = words.last().copied().unwrap_or("");
    let previous = words.len().checked_sub(2).map_or("", |i| words[i]);
    let out = shell("bash")
        .env("PARAGON_ADMIN_CONFIG", config)
        .arg("-c")
        .arg(format!(
            "source {}; COMP_WORDS=({}); COMP_CWORD={}; \
             _clap_complete_paragon_admin paragon-admin '{current}' '{previous}'; \
             printf '%s\\n' \"${{COMPREPLY[@]}}\"",
            bash.display(),
            words.join(" "),
            words.len() - 1,
        ))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut found: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| l.trim().to_string())
        .collect();
    found.sort();
    found
}

#[test]
fn bash_completes_profile_names_from_the_users_config() {
    let home = Home::new();
    let config = home.write_config(
        "[profiles.prod]\nhost = \"b.example.com\"\n[profiles.staging]\nhost = \"s.example.com\"\n",
    );
    let found = bash_candidates(&config, &["paragon-admin", "--profile", "st"]);
    assert_eq!(found, ["staging"], "{found:?}");
}

#[test]
fn bash_completes_service_names_of_the_chosen_profile() {
    let home = Home::new();
    let config = home.write_config(
        "[profiles.prod]\nhost = \"b.example.com\"\n\
         [profiles.prod.services.pgadmin]\ntarget = \"pgadmin.paragon:80\"\n",
    );
    let found = bash_candidates(&config, &["paragon-admin", "forward", "p"]);
    assert_eq!(found, ["pgadmin", "prometheus"], "{found:?}");
}

#[test]
fn every_man_page_renders_without_warnings() {
    let mut pages = 0;
    for entry in std::fs::read_dir(repo().join("man")).unwrap() {
        let page = entry.unwrap().path();
        let out = Command::new("man")
            .args(["--warnings", "-E", "UTF-8", "-l"])
            .arg(&page)
            .env("MANWIDTH", "80")
            .output()
            .expect("man is not installed: run scripts/test.sh");
        assert!(out.status.success(), "{}", page.display());
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.trim().is_empty(), "{}: {stderr}", page.display());
        assert!(
            strip_overstrike(&String::from_utf8_lossy(&out.stdout)).contains("EXIT STATUS"),
            "{}",
            page.display()
        );
        pages += 1;
    }
    assert!(pages >= 2, "no man pages committed");
}

/// `man` into a pipe still emboldens with overstrike (`X\x08X`): keep the printed letters.
fn strip_overstrike(s: &str) -> String {
    let mut out: Vec<char> = Vec::new();
    for c in s.chars() {
        if c == '\u{8}' {
            out.pop();
        } else {
            out.push(c);
        }
    }
    out.into_iter().collect()
}

#[test]
fn bash_completion_honours_config_and_profile_typed_earlier_on_the_line() {
    let home = Home::new();
    let env_config = home.write_config("[profiles.fromenv]\nhost = \"e.example.com\"\n");
    let typed = home.path().join("typed.toml");
    std::fs::write(
        &typed,
        "default_profile = \"plain\"\n[profiles.plain]\nhost = \"p.example.com\"\n\
         [profiles.lab]\nhost = \"l.example.com\"\n\
         [profiles.lab.services.pgadmin]\ntarget = \"pgadmin.paragon:80\"\n",
    )
    .unwrap();
    let typed = typed.display().to_string();
    let found = bash_candidates(
        &env_config,
        &["paragon-admin", "--config", &typed, "--profile", ""],
    );
    assert_eq!(found, ["lab", "plain"], "{found:?}");
    let found = bash_candidates(
        &env_config,
        &["paragon-admin", "--config", &typed, "forward", "p"],
    );
    assert_eq!(
        found,
        ["prometheus"],
        "the default profile has no pgadmin: {found:?}"
    );
    let found = bash_candidates(
        &env_config,
        &[
            "paragon-admin",
            "--config",
            &typed,
            "--profile",
            "lab",
            "forward",
            "p",
        ],
    );
    assert_eq!(found, ["pgadmin", "prometheus"], "{found:?}");
}

#[test]
fn init_help_lists_its_own_options_before_the_global_ones() {
    let home = Home::new();
    let r = run(home.paragon().args(["init", "--help"]));
    assert_eq!(r.status, Some(0), "{}", r.stderr);
    let at = |s: &str| {
        r.stdout
            .find(s)
            .unwrap_or_else(|| panic!("{s} missing:\n{}", r.stdout))
    };
    assert!(at("--host <HOST>") < at("Global options:"), "{}", r.stdout);
    assert!(
        at("Global options:") < at("--config <FILE>"),
        "{}",
        r.stdout
    );
    assert!(!r.stdout.contains("[env: "), "{}", r.stdout);
    // The kubectl page says where paragon-admin's own options go.
    let r = run(home.paragon().args(["help", "kubectl"]));
    assert!(r.stdout.contains("go before `kubectl`"), "{}", r.stdout);
}

#[test]
fn commands_that_ignore_config_and_profile_hide_them_yet_still_parse_them() {
    let home = Home::new();
    let help = |words: &[&str]| {
        let r = run(home.paragon().args(words).arg("--help"));
        assert_eq!(r.status, Some(0), "{words:?}: {}", r.stderr);
        r.stdout
    };
    for words in [
        &["man"][..],
        &["completions"],
        &["sandbox"],
        &["demo"],
        &["secrets"],
        &["secrets", "set"],
    ] {
        let text = help(words);
        assert!(!text.contains("--profile"), "{words:?}:\n{text}");
        assert!(!text.contains("--config"), "{words:?}:\n{text}");
        assert!(text.contains("--verbose"), "{words:?}:\n{text}");
    }
    for words in [&["man"][..], &["completions"]] {
        let text = help(words);
        assert!(!text.contains("--output"), "{words:?}:\n{text}");
    }
    assert!(help(&["secrets", "list"]).contains("--output <OUTPUT>"));
    let profiles = help(&["profiles"]);
    assert!(
        profiles.contains("--config <FILE>") && !profiles.contains("--profile"),
        "{profiles}"
    );
    for words in [&["health"][..], &["ssh"], &["init"]] {
        let text = help(words);
        assert!(text.contains("--profile <NAME>"), "{words:?}:\n{text}");
        assert!(text.contains("--config <FILE>"), "{words:?}:\n{text}");
    }

    // The man page of `man` does not list them either, the one of `health` does.
    let dir = home.path().join("pages");
    let r = run(home.paragon().args(["man", "--dir"]).arg(&dir));
    assert_eq!(r.status, Some(0), "{}", r.stderr);
    let page = |name: &str| std::fs::read_to_string(dir.join(name)).unwrap();
    assert!(!page("paragon-admin-man.1").contains("\\-\\-profile"));
    assert!(!page("paragon-admin-secrets-list.1").contains("\\-\\-config"));
    assert!(page("paragon-admin-health.1").contains("\\-\\-profile"));

    // Parsing is unchanged: after the subcommand, before it, and with a nested one.
    let r = run(home.paragon().args([
        "man",
        "--profile",
        "x",
        "--config",
        "/n",
        "--output",
        "json",
    ]));
    assert_eq!(r.status, Some(0), "{}", r.stderr);
    assert!(r.stdout.starts_with(".ie"), "{}", r.stdout);
    let r = run(home
        .paragon()
        .args(["-p", "x", "completions", "bash", "--config", "c"]));
    assert_eq!(r.status, Some(0), "{}", r.stderr);
    let r = run(home
        .paragon()
        .args(["secrets", "set", "--profile", "x", "--bogus"]));
    assert_eq!(r.status, Some(2), "{}", r.stderr);
    assert!(r.stderr.contains("'--bogus'"), "{}", r.stderr);

    // Completion does not offer what the command ignores.
    let config = home.write_config("[profiles.prod]\nhost = \"b.example.com\"\n");
    let found = bash_candidates(&config, &["paragon-admin", "man", "--"]);
    assert!(
        found.iter().all(|c| c != "--profile" && c != "--config"),
        "{found:?}"
    );
    assert!(found.iter().any(|c| c == "--dir"), "{found:?}");
    let found = bash_candidates(&config, &["paragon-admin", "health", "--p"]);
    assert_eq!(found, ["--profile"], "{found:?}");
}

/// The new user's path: one `cargo install` line, `bash-completion` named where the shells'
/// completions are installed and recommended by the .deb, and a `rust-version` that covers
/// what the code uses (`if let` guards on match arms are stable since Rust 1.95).
#[test]
fn install_notes_and_rust_version_match_what_the_code_needs() {
    let readme = std::fs::read_to_string(repo().join("README.md")).unwrap();
    let installs = readme
        .lines()
        .filter(|l| l.trim_start().starts_with("cargo install"))
        .count();
    assert_eq!(installs, 1, "one `cargo install` line in the README");
    let install = readme
        .split("## Install")
        .nth(1)
        .and_then(|s| s.split("\n## ").next())
        .unwrap();
    assert!(install.contains("bash-completion"), "{install}");
    assert!(install.contains("Without rustup"), "{install}");

    let cargo: toml::Value =
        toml::from_str(&std::fs::read_to_string(repo().join("Cargo.toml")).unwrap()).unwrap();
    let package = &cargo["package"];
    assert_eq!(
        package["metadata"]["deb"]["recommends"].as_str(),
        Some("bash-completion")
    );
    let version = |v: &toml::Value| -> (u32, u32) {
        let s = v.as_str().unwrap();
        let mut parts = s.split('.').map(|p| p.parse::<u32>().unwrap());
        (parts.next().unwrap(), parts.next().unwrap())
    };
    // An `if let` guard: a match arm whose guard is `if let` (`PATTERN if let P = e =>`).
    let guard = |text: &str| {
        text.lines().any(|l| {
            let l = l.trim_start();
            // The guard stands before the arrow (`=> if let` is an arm's body).
            let (Some(guard), Some(arrow)) = (l.find(" if let "), l.find("=>")) else {
                return false;
            };
            !l.starts_with("//") && guard < arrow && !l.starts_with("} else if let ")
        })
    };
    for (crate_dir, manifest) in [
        (repo().join("src"), repo().join("Cargo.toml")),
        (
            repo().join("crates/paragon-sandbox/src"),
            repo().join("crates/paragon-sandbox/Cargo.toml"),
        ),
    ] {
        let m: toml::Value = toml::from_str(&std::fs::read_to_string(&manifest).unwrap()).unwrap();
        let declared = version(&m["package"]["rust-version"]);
        let mut uses_guards = false;
        let mut stack = vec![crate_dir];
        while let Some(dir) = stack.pop() {
            for e in std::fs::read_dir(&dir).unwrap() {
                let p = e.unwrap().path();
                if p.is_dir() {
                    stack.push(p);
                } else if p.extension().is_some_and(|x| x == "rs") {
                    uses_guards |= guard(&std::fs::read_to_string(&p).unwrap());
                }
            }
        }
        if uses_guards {
            assert!(
                declared >= (1, 95),
                "{}: `if let` guards need rust-version 1.95, not {declared:?}",
                manifest.display()
            );
        }
        assert!(
            declared >= (1, 89),
            "{}: the dependencies need 1.89",
            manifest.display()
        );
    }
}

/// zsh with the script autoloaded from fpath by compinit completes on the very first <Tab>
/// (the autoload runs the script, which registers and then completes that <Tab> too).
#[test]
fn zsh_completes_on_the_first_tab() {
    use crate::support::pty::Terminal;
    let home = Home::new();
    let zdot = home.path().join("zdot");
    std::fs::create_dir_all(&zdot).unwrap();
    std::fs::write(
        zdot.join(".zshrc"),
        format!(
            "fpath=({} $fpath)\nautoload -U compinit\ncompinit -u -d {}/.zcompdump\nPS1='READY> '\n",
            repo().join("completions").display(),
            zdot.display()
        ),
    )
    .unwrap();
    let zsh = which("zsh").expect("zsh is not installed: run scripts/test.sh");
    let path = path_with_binary();
    let mut t = Terminal::start(
        &home,
        &format!("exec {} -i", zsh.display()),
        &[
            ("ZDOTDIR", zdot.to_str().unwrap()),
            ("PATH", path.to_str().unwrap()),
            ("TERM", "xterm"),
        ],
    );
    t.wait_for("READY>");
    t.send(b"paragon-admin forw\t");
    t.wait_for("paragon-admin forward");
    t.send(b"\x03exit\r");
    drop(t);
}
