//! The kubeconfig that heals itself (issue 13): `kubeconfig --write`/`--merge` write a
//! kubeconfig whose user is the `kube-credential` exec plugin and whose server is the API
//! forward the profile's agent holds on a stable port. The real kubectl uses it with no
//! paragon-admin process running, through a real sshd bastion to the sandbox's API server
//! (whose kubeconfig the bastion's own real kubectl prints), and again after sshd restarts.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::support::sandbox::{SandboxProc, kubectl_path};
use crate::support::sshd::Sshd;
use crate::support::{Home, Run, run};

/// A sandbox, a bastion whose `kubectl` is the real one reading the sandbox's kubeconfig,
/// and a home whose profile `test` uses the bastion's kubeconfig.
struct Scene {
    sandbox: SandboxProc,
    sshd: Sshd,
    home: Home,
}

impl Scene {
    fn new() -> Scene {
        let sandbox = SandboxProc::start(&[]);
        let sshd = Sshd::start();
        sshd.kubectl_with(&sandbox.kubeconfig);
        let home = Home::new();
        sshd.configure(&home);
        Scene {
            sandbox,
            sshd,
            home,
        }
    }

    /// The sandbox's bearer token: what must never reach a file of the home.
    fn token(&self) -> String {
        let text = std::fs::read_to_string(&self.sandbox.kubeconfig).unwrap();
        text.lines()
            .find_map(|l| l.trim().strip_prefix("token: "))
            .unwrap()
            .to_string()
    }

    fn paragon(&self, args: &[&str]) -> Run {
        run(self.home.paragon().args(args))
    }

    /// The real kubectl with the environment a user's shell gives it (the plugin inherits
    /// it), and `KUBECONFIG` as given (or none).
    fn kubectl(&self, kubeconfig: Option<&Path>, args: &[&str]) -> Run {
        let mut c = Command::new(kubectl_path());
        c.env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("HOME", self.home.path())
            .env("XDG_RUNTIME_DIR", self.home.runtime_dir())
            .env("XDG_CONFIG_HOME", self.home.path().join(".config"))
            .env("LANG", "C.UTF-8")
            .args(["--request-timeout", "60s"])
            .args(args);
        if let Some(k) = kubeconfig {
            c.env("KUBECONFIG", k);
        }
        run(&mut c)
    }

    fn stop_agent(&self) {
        let r = self.paragon(&["agent", "stop"]);
        assert_eq!(r.status, Some(0), "{}", r.stderr);
    }
}

impl Drop for Scene {
    fn drop(&mut self) {
        let _ = self
            .home
            .paragon()
            .args(["agent", "stop", "--all"])
            .output();
    }
}

/// Every file below `dir`, symlinks not followed.
fn files_below(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries.flatten() {
            let Ok(kind) = e.file_type() else { continue };
            if kind.is_dir() {
                todo.push(e.path());
            } else if kind.is_file() {
                out.push(e.path());
            }
        }
    }
    out
}

fn assert_pods_listed(r: &Run) {
    assert_eq!(r.status, Some(0), "kubectl failed: {}", r.stderr);
    assert!(r.stdout.contains("cerberus-"), "{}", r.stdout);
}

#[test]
fn kubectl_lists_pods_through_the_written_kubeconfig_with_no_process_running_and_after_sshd_restarts()
 {
    let mut s = Scene::new();
    let written = s.home.path().join("paragon.kubeconfig");
    let r = s.paragon(&["kubeconfig", "--write", written.to_str().unwrap()]);
    assert_eq!(r.status, Some(0), "{}", r.stderr);
    let text = std::fs::read_to_string(&written).unwrap();
    let k = kube::config::Kubeconfig::from_yaml(&text).unwrap();
    let cluster = k.clusters[0].cluster.as_ref().unwrap();
    let server = cluster.server.clone().unwrap();
    assert!(server.starts_with("https://127.0.0.1:"), "{text}");
    assert_eq!(cluster.tls_server_name.as_deref(), Some("127.0.0.1"));
    let exec = k.auth_infos[0]
        .auth_info
        .as_ref()
        .unwrap()
        .exec
        .as_ref()
        .unwrap();
    let args = exec.args.clone().unwrap();
    assert_eq!(
        args[2..],
        ["kube-credential", "--profile", "test"],
        "{text}"
    );
    assert!(text.contains("interactiveMode: Never"), "{text}");
    s.stop_agent();

    // No paragon-admin runs: kubectl's plugin starts the agent and the API forward.
    let r = s.kubectl(Some(&written), &["get", "pods", "-A"]);
    assert_pods_listed(&r);

    // The bastion restarts (every session dropped); the next kubectl just works.
    s.sshd.restart();
    let r = s.kubectl(Some(&written), &["get", "pods", "-n", "paragon"]);
    assert_pods_listed(&r);

    // Written again later, the server is the same stable port.
    let r = s.paragon(&["kubeconfig", "--write", written.to_str().unwrap()]);
    assert_eq!(r.status, Some(0), "{}", r.stderr);
    let again = std::fs::read_to_string(&written).unwrap();
    assert!(again.contains(&format!("server: {server}")), "{again}");

    // The credential went to kubectl only: no file of the home holds it.
    let token = s.token();
    for f in files_below(s.home.path()) {
        let bytes = std::fs::read(&f).unwrap_or_default();
        assert!(
            !String::from_utf8_lossy(&bytes).contains(&token),
            "{} holds the credential",
            f.display()
        );
    }
}

#[test]
fn merge_keeps_other_contexts_and_refuses_an_existing_one_without_force() {
    let s = Scene::new();
    let kube_dir = s.home.path().join(".kube");
    std::fs::create_dir_all(&kube_dir).unwrap();
    let config = kube_dir.join("config");
    let mine = "apiVersion: v1\nkind: Config\nclusters:\n- name: home\n  cluster:\n    server: https://home.example:6443\n\
                users:\n- name: me\n  user:\n    token: my-own-token\n\
                contexts:\n- name: home\n  context:\n    cluster: home\n    user: me\n\
                current-context: home\n";
    std::fs::write(&config, mine).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&config, std::fs::Permissions::from_mode(0o600)).unwrap();

    let r = s.paragon(&["kubeconfig", "--merge"]);
    assert_eq!(r.status, Some(0), "{}", r.stderr);
    let merged = std::fs::read_to_string(&config).unwrap();
    for want in [
        "name: home",
        "token: my-own-token",
        "name: paragon-test",
        "current-context: home",
    ] {
        assert!(merged.contains(want), "{want}: {merged}");
    }
    let mode = std::fs::metadata(&config).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);
    s.stop_agent();
    let r = s.kubectl(None, &["--context", "paragon-test", "get", "pods", "-A"]);
    assert_pods_listed(&r);

    let r = s.paragon(&["kubeconfig", "--merge"]);
    assert_eq!(r.status, Some(2), "{}", r.stderr);
    assert!(
        r.stderr
            .contains("already has a context named `paragon-test`")
            && r.stderr.contains("--force"),
        "{}",
        r.stderr
    );
    assert_eq!(std::fs::read_to_string(&config).unwrap(), merged);
    let r = s.paragon(&["kubeconfig", "--merge", "--force"]);
    assert_eq!(r.status, Some(0), "{}", r.stderr);
    let forced = std::fs::read_to_string(&config).unwrap();
    assert_eq!(forced.matches("name: paragon-test").count(), 3, "{forced}");
    assert!(forced.contains("token: my-own-token"), "{forced}");
}

#[test]
fn the_plugin_says_the_bastion_is_unreachable_in_one_line() {
    let mut s = Scene::new();
    s.stop_agent();
    s.sshd.stop();
    let r = s.paragon(&["kube-credential", "--profile", "test"]);
    assert_eq!(r.status, Some(255), "{}", r.stderr);
    assert!(r.stdout.is_empty(), "{}", r.stdout);
    assert_eq!(r.stderr.trim().lines().count(), 1, "{}", r.stderr);
    assert!(
        r.stderr.starts_with("paragon-admin: bastion unreachable: "),
        "{}",
        r.stderr
    );
}

#[test]
fn a_cluster_with_a_new_ca_and_port_makes_the_plugin_say_what_to_run_and_that_heals_it() {
    let s = Scene::new();
    let written = s.home.path().join("paragon.kubeconfig");
    let write = ["kubeconfig", "--write", written.to_str().unwrap()];
    let r = s.paragon(&write);
    assert_eq!(r.status, Some(0), "{}", r.stderr);
    let r = s.kubectl(Some(&written), &["get", "pods", "-n", "paragon"]);
    assert_pods_listed(&r);

    // The cluster is replaced: another API server, with a CA of its own, on another port;
    // the bastion's kubectl now reads its kubeconfig.
    let mut s = s;
    let new = SandboxProc::start(&[]);
    assert_ne!(new.addr, s.sandbox.addr);
    s.sshd.kubectl_with(&new.kubeconfig);
    s.sandbox.terminate();

    // The plugin sees it once the fetched kubeconfig it reuses is older than 10 s: until
    // then kubectl still dials the old cluster, which is gone (a reset, retried by kubectl
    // for about 10 s), and never meets the new CA.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(90);
    let r = loop {
        let r = s.kubectl(Some(&written), &["get", "pods", "-n", "paragon"]);
        assert!(!r.stderr.contains("x509"), "{}", r.stderr);
        if r.stderr.contains("paragon-admin:") || std::time::Instant::now() > deadline {
            break r;
        }
        std::thread::sleep(std::time::Duration::from_millis(500));
    };
    assert_ne!(r.status, Some(0), "the new cluster was never noticed");
    // `--force`: kubectl's KUBECONFIG, which the plugin inherits, names the file, and a
    // kubeconfig of KUBECONFIG is replaced only with it.
    let rerun = format!(
        "run `paragon-admin kubeconfig --write {} --force --profile test --config {}` to write it again",
        written.display(),
        s.home.config_path().display()
    );
    assert!(
        r.stderr.contains(
            "the cluster changed since its kubeconfig was written (its certificate authority)"
        ) && r.stderr.contains(&rerun),
        "{}",
        r.stderr
    );
    assert!(!r.stderr.contains("x509"), "{}", r.stderr);

    // What it says to run is what heals it.
    let r = s.paragon(&[&write[..], &["--force"]].concat());
    assert_eq!(r.status, Some(0), "{}", r.stderr);
    let r = s.kubectl(Some(&written), &["get", "pods", "-n", "paragon"]);
    assert_pods_listed(&r);
    let r = s.kubectl(Some(&written), &["config", "view", "--raw"]);
    let ca = |path: &Path| {
        let text = std::fs::read_to_string(path).unwrap();
        let k = kube::config::Kubeconfig::from_yaml(&text).unwrap();
        k.clusters[0]
            .cluster
            .as_ref()
            .unwrap()
            .certificate_authority_data
            .clone()
    };
    assert_eq!(ca(&written), ca(&new.kubeconfig), "{}", r.stdout);
}
