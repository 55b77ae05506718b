//! Config files and profile selection, through the real binary.

use crate::support::{Home, run};

#[test]
fn missing_config_file_suggests_init_and_exits_2() {
    let home = Home::new();
    let r = run(home.paragon().arg("profiles"));
    assert_eq!(r.status, Some(2), "{}", r.stderr);
    assert!(r.stderr.contains("no config file at"), "{}", r.stderr);
    assert!(r.stderr.contains("paragon-admin init"), "{}", r.stderr);
    assert_eq!(r.stderr.lines().count(), 1, "{}", r.stderr);
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
