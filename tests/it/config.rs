//! Config files and profile selection, through the real binary.

use crate::support::{Home, run};

#[test]
fn missing_config_file_suggests_init_and_exits_2() {
    let home = Home::new();
    let r = run(home.paragon().arg("profiles"));
    assert_eq!(r.status, Some(2), "{}", r.stderr);
    assert!(r.stderr.contains("no config file at"), "{}", r.stderr);
    // The file $PARAGON_ADMIN_CONFIG names, kept in the hint.
    assert!(r.stderr.contains("init` to create one"), "{}", r.stderr);
    assert_eq!(r.stderr.lines().count(), 1, "{}", r.stderr);
}

/// At the default place (no flag, no `$PARAGON_ADMIN_CONFIG`) the hint is plain `init`.
#[test]
fn missing_default_config_file_suggests_plain_init() {
    let home = Home::new();
    let r = run(home
        .paragon()
        .env_remove("PARAGON_ADMIN_CONFIG")
        .arg("profiles"));
    assert_eq!(r.status, Some(2), "{}", r.stderr);
    assert!(
        r.stderr.contains("run `paragon-admin init` to create one"),
        "{}",
        r.stderr
    );
}

#[test]
fn bad_key_names_file_line_and_key() {
    let home = Home::new();
    let path = home.write_config("[profiles.prod]\nhost = \"b.example.com\"\nprot = 22\n");
    let r = run(home.paragon().arg("profiles"));
    assert_eq!(r.status, Some(2));
    let want = format!("{}:3: profiles.prod.prot:", path.display());
    assert!(r.stderr.contains(&want), "{}", r.stderr);
}

#[test]
fn profiles_lists_table_and_json() {
    let home = Home::new();
    home.write_config(
        "default_profile = \"prod\"\n[profiles.prod]\nhost = \"b.example.com\"\nuser = \"ops\"\n\
         [profiles.staging]\nhost = \"s.example.com\"\nport = 2222\n",
    );
    let r = run(home.paragon().arg("profiles"));
    assert_eq!(r.status, Some(0), "{}", r.stderr);
    assert!(r.stdout.contains("b.example.com:22"), "{}", r.stdout);
    assert!(r.stdout.contains("s.example.com:2222"), "{}", r.stdout);
    let r = run(home.paragon().args(["profiles", "--output", "json"]));
    let v: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    let rows = v.as_array().unwrap();
    assert_eq!(rows.len(), 2);
    let prod = rows.iter().find(|r| r["name"] == "prod").unwrap();
    assert_eq!(prod["default"], true);
    assert_eq!(prod["user"], "ops");
    let staging = rows.iter().find(|r| r["name"] == "staging").unwrap();
    assert_eq!(staging["user"], "tester");
    assert_eq!(staging["port"], 2222);
}

#[test]
fn config_flag_wins_over_environment() {
    let home = Home::new();
    let other = home.path().join("other.toml");
    std::fs::write(&other, "[profiles.x]\nhost = \"x.example.com\"\n").unwrap();
    let r = run(home
        .paragon()
        .args(["--config"])
        .arg(&other)
        .arg("profiles"));
    assert_eq!(r.status, Some(0), "{}", r.stderr);
    assert!(r.stdout.contains("x.example.com"));
}

#[test]
fn unknown_subcommand_is_a_usage_error() {
    let home = Home::new();
    let r = run(home.paragon().arg("frobnicate"));
    assert_eq!(r.status, Some(2));
}

#[test]
fn empty_environment_variables_mean_unset() {
    let home = Home::new();
    let dir = home.path().join(".config/paragon-admin");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("config.toml"),
        "default_profile = \"b\"\n[profiles.a]\nhost = \"a.example.com\"\n[profiles.b]\nhost = \"b.example.com\"\n",
    )
    .unwrap();
    let r = run(home
        .paragon()
        .env("PARAGON_ADMIN_CONFIG", "")
        .env("PARAGON_ADMIN_PROFILE", "")
        .args(["profiles", "--output", "json"]));
    assert_eq!(r.status, Some(0), "{}", r.stderr);
    assert!(r.stdout.contains("b.example.com"), "{}", r.stdout);
    // An empty profile variable falls back to default_profile: `b`, whose bastion is closed.
    let r = run(home
        .paragon()
        .env("PARAGON_ADMIN_CONFIG", "")
        .env("PARAGON_ADMIN_PROFILE", "")
        .args(["ssh", "--", "true"]));
    assert!(!r.stderr.contains("a value is required"), "{}", r.stderr);
    assert!(!r.stderr.contains("not found"), "{}", r.stderr);
}

#[test]
fn unknown_profile_from_the_environment_says_so() {
    let home = Home::new();
    home.write_config("[profiles.a]\nhost = \"a.example.com\"\n");
    let r = run(home
        .paragon()
        .env("PARAGON_ADMIN_PROFILE", "nope")
        .args(["ssh", "--", "true"]));
    assert_eq!(r.status, Some(2), "{}", r.stderr);
    assert!(
        r.stderr
            .contains("profile `nope` (from $PARAGON_ADMIN_PROFILE) not found (profiles: a)"),
        "{}",
        r.stderr
    );
    let r = run(home
        .paragon()
        .args(["--profile", "nope", "ssh", "--", "true"]));
    assert_eq!(r.status, Some(2), "{}", r.stderr);
    assert!(
        r.stderr.contains("profile `nope` not found"),
        "{}",
        r.stderr
    );
}

#[test]
fn huge_keepalive_interval_is_a_located_error_not_a_panic() {
    let home = Home::new();
    let path = home.write_config(
        "[profiles.p]\nhost = \"127.0.0.1\"\nport = 1\nkeepalive_interval = 18446744073709551615\n",
    );
    let r = run(home.paragon().args(["ssh", "--", "true"]));
    assert_eq!(r.status, Some(2), "{}", r.stderr);
    let want = format!("{}:4: profiles.p.keepalive_interval:", path.display());
    assert!(r.stderr.contains(&want), "{}", r.stderr);
    assert!(!r.stderr.contains("panicked"), "{}", r.stderr);
    home.write_config("[profiles.p]\nhost = \"b\"\nconnect_timeout = \"10\"\n");
    let r = run(home.paragon().arg("profiles"));
    assert_eq!(r.status, Some(2), "{}", r.stderr);
    assert!(r.stderr.contains("expected a number"), "{}", r.stderr);
}

#[test]
fn a_config_others_can_write_or_an_endless_one_is_refused() {
    use std::os::unix::fs::PermissionsExt;
    let home = Home::new();
    let path = home.write_config("[profiles.p]\nhost = \"b.example.com\"\n");
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o666)).unwrap();
    let r = run(home.paragon().arg("profiles"));
    assert_eq!(r.status, Some(2), "{}", r.stderr);
    assert!(r.stderr.contains("writable by others"), "{}", r.stderr);
    assert!(
        r.stderr.contains(&format!("chmod go-w {}", path.display())),
        "{}",
        r.stderr
    );
    let r = run(home
        .paragon()
        .env("PARAGON_ADMIN_CONFIG", "/dev/zero")
        .arg("profiles"));
    assert_eq!(r.status, Some(2), "{}", r.stderr);
    assert!(
        r.stderr.contains("/dev/zero is larger than 1 MiB"),
        "{}",
        r.stderr
    );
}

/// A FIFO as the config file is refused at once, not waited on; a file another user owns is
/// refused as OpenSSH refuses such a `~/.ssh/config`; root's own files stay readable.
#[test]
fn a_fifo_or_a_config_another_user_owns_is_refused_naming_it() {
    use std::os::unix::fs::PermissionsExt;
    use std::time::{Duration, Instant};
    let home = Home::new();
    let fifo = home.path().join("fifo.toml");
    let st = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap();
    assert!(st.success());
    let started = Instant::now();
    let mut child = home
        .paragon()
        .args(["--config"])
        .arg(&fifo)
        .arg("profiles")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    while child.try_wait().unwrap().is_none() {
        if started.elapsed() > Duration::from_secs(10) {
            let _ = child.kill();
            let _ = child.wait();
            panic!("still waiting on the FIFO after 10 s");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains(&format!("{} is a FIFO, not a file", fifo.display())),
        "{stderr}"
    );

    let path = home.write_config("[profiles.p]\nhost = \"b.example.com\"\n");
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
    // nobody (65534): the tests run as root, who may give a file away.
    std::os::unix::fs::chown(&path, Some(65534), Some(65534)).unwrap();
    let r = run(home.paragon().arg("profiles"));
    assert_eq!(r.status, Some(2), "{}", r.stderr);
    assert!(
        r.stderr
            .contains(&format!("{} is owned by uid 65534", path.display())),
        "{}",
        r.stderr
    );
    std::os::unix::fs::chown(&path, Some(0), Some(0)).unwrap();
    let r = run(home.paragon().arg("profiles"));
    assert_eq!(r.status, Some(0), "{}", r.stderr);
}

/// The hint for a missing file the user named keeps the name: running it writes that file.
#[test]
fn a_missing_named_config_hints_init_with_the_same_config() {
    let home = Home::new();
    let named = home.path().join("elsewhere.toml");
    let r = run(home.paragon().arg("--config").arg(&named).arg("profiles"));
    assert_eq!(r.status, Some(2), "{}", r.stderr);
    assert!(
        r.stderr.contains(&format!(
            "run `paragon-admin --config {} init` to create one",
            named.display()
        )),
        "{}",
        r.stderr
    );
}

/// A kubeconfig that is not there is named once, without kube's doubled quotes.
#[test]
fn a_missing_kubeconfig_is_named_once_without_doubled_quotes() {
    let home = Home::new();
    let missing = home.path().join("no-such-kubeconfig");
    let r = run(home
        .paragon()
        .args(["health", "--local", "--kubeconfig"])
        .arg(&missing));
    assert_eq!(r.status, Some(2), "{}", r.stderr);
    let shown = missing.display().to_string();
    assert_eq!(r.stderr.matches(&shown).count(), 1, "{}", r.stderr);
    assert!(!r.stderr.contains("'\""), "{}", r.stderr);
    assert!(
        r.stderr.contains("No such file or directory"),
        "{}",
        r.stderr
    );
}

/// A file of `$KUBECONFIG` that is not valid YAML is named, with its line, in one line;
/// a missing one is skipped, as kubectl skips it.
#[test]
fn a_kubeconfig_file_of_kubeconfig_that_cannot_be_parsed_is_named_with_its_line() {
    let home = Home::new();
    let good = home.path().join("good.yaml");
    std::fs::write(
        &good,
        "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster:\n    server: https://127.0.0.1:1\n",
    )
    .unwrap();
    let bad = home.path().join("bad.yaml");
    std::fs::write(&bad, "apiVersion: v1\nkind: Config\nclusters: [[[\n").unwrap();
    let missing = home.path().join("missing.yaml");
    let list = std::env::join_paths([&missing, &good, &bad]).unwrap();
    let r = run(home
        .paragon()
        .env("KUBECONFIG", &list)
        .args(["health", "--local"]));
    assert_eq!(r.status, Some(2), "{}", r.stderr);
    let want = format!("paragon-admin: KUBECONFIG file {}: line 3: ", bad.display());
    assert!(r.stderr.starts_with(&want), "{want}\n{}", r.stderr);
    assert_eq!(r.stderr.lines().count(), 1, "{}", r.stderr);
    assert!(
        !r.stderr.contains(&good.display().to_string()),
        "{}",
        r.stderr
    );
}
