//! `paragon-admin logs` through the kept connection to a real OpenSSH sshd whose kubectl
//! reads the sandbox's kubeconfig: a service's pods read at once with a prefix each, JSON
//! lines, a pod or StatefulSet by name, the errors, and `-f` following a pod that starts after it began (the sandbox
//! replaces a deleted ReplicaSet pod) until Ctrl-C, which exits 0.

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::agent::{Kept, wait_until};
use crate::support::sandbox::SandboxProc;

/// A kept profile whose bastion's kubeconfig is the sandbox's.
pub(crate) struct Scene {
    pub(crate) kept: Kept,
    pub(crate) sandbox: SandboxProc,
}

impl Scene {
    pub(crate) fn new(sandbox_args: &[&str], profile_extra: &str) -> Scene {
        let sandbox = SandboxProc::start(sandbox_args);
        let kept = Kept::new(profile_extra);
        kept.sshd.kubectl_with(&sandbox.kubeconfig);
        Scene { kept, sandbox }
    }

    /// The names of the pods of service `name`.
    pub(crate) fn pods(&self, name: &str) -> Vec<String> {
        let v = self.sandbox.kubectl_json(&[
            "get",
            "pods",
            "-n",
            "paragon",
            "-l",
            &format!("app.kubernetes.io/name={name}"),
            "-o",
            "json",
        ]);
        let mut names: Vec<String> = v["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["metadata"]["name"].as_str().unwrap().to_string())
            .collect();
        names.sort();
        names
    }
}

#[test]
fn a_service_is_read_across_its_pods_each_line_prefixed() {
    let s = Scene::new(&[], "");
    let pods = s.pods("hermes");
    assert_eq!(pods.len(), 2, "{pods:?}");
    let r = s.kept.run(&["logs", "hermes", "--tail", "5"]);
    assert_eq!(r.status, Some(0), "{}", r.stderr);
    let lines: Vec<&str> = r.stdout.lines().collect();
    assert_eq!(lines.len(), 10, "{}", r.stdout);
    for pod in &pods {
        let of_pod = lines
            .iter()
            .filter(|l| l.starts_with(&format!("{pod} {{")))
            .count();
        assert_eq!(of_pod, 5, "{}", r.stdout);
    }
    // Not a terminal: no colour.
    assert!(!r.stdout.contains('\x1b'));

    // One JSON object per line, with --grep and --timestamps.
    let r = s.kept.run(&[
        "logs",
        "hermes",
        "--output",
        "json",
        "--timestamps",
        "--grep",
        "healthz",
        "--since",
        "5m",
    ]);
    assert_eq!(r.status, Some(0), "{}", r.stderr);
    let objects: Vec<serde_json::Value> = r
        .stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert!(objects.len() >= 20, "{}", r.stdout);
    for o in &objects {
        assert!(
            pods.contains(&o["pod"].as_str().unwrap().to_string()),
            "{o}"
        );
        assert_eq!(o["container"], "hermes");
        assert!(
            o["line"].as_str().unwrap().contains("GET /healthz 200"),
            "{o}"
        );
        assert!(o["time"].as_str().unwrap().starts_with("20"), "{o}");
    }

    // A pod name and a Deployment name work too.
    let r = s.kept.run(&["logs", &pods[0], "--tail", "1"]);
    assert_eq!(r.status, Some(0), "{}", r.stderr);
    assert!(r.stdout.starts_with(&pods[0]), "{}", r.stdout);
    let r = s.kept.run(&["logs", "prometheus", "--tail", "1"]);
    assert_eq!(r.status, Some(0), "{}", r.stderr);
    assert!(r.stdout.starts_with("prometheus-0 "), "{}", r.stdout);

    let r = s.kept.run(&["logs", "no-such-service"]);
    assert_eq!(r.status, Some(1), "{}", r.stderr);
    assert!(
        r.stderr
            .contains("no service, pod or workload named `no-such-service`"),
        "{}",
        r.stderr
    );
    assert_eq!(r.stdout, "");
}

/// Reads a file the follower writes to.
fn read(path: &std::path::Path) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

fn interrupt(child: &Child) {
    let _ = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status();
}

#[test]
fn follow_picks_up_a_pod_that_starts_later_and_ctrl_c_exits_0() {
    let s = Scene::new(&[], "");
    let pods = s.pods("zeus");
    assert_eq!(pods.len(), 2, "{pods:?}");
    let out = s.kept.home.path().join("follow.out");
    let err = s.kept.home.path().join("follow.err");
    let mut child = s
        .kept
        .paragon(&["logs", "zeus", "-f", "--tail", "2"])
        .stdout(Stdio::from(std::fs::File::create(&out).unwrap()))
        .stderr(Stdio::from(std::fs::File::create(&err).unwrap()))
        .spawn()
        .unwrap();
    let guard = scopeguard(&mut child);
    wait_until("both pods print", Duration::from_secs(30), || {
        let text = read(&out);
        pods.iter().all(|p| text.contains(&format!("{p} {{")))
    });
    s.sandbox
        .kubectl_ok(&["delete", "pod", "-n", "paragon", &pods[0]]);
    let replacement = || {
        s.pods("zeus")
            .into_iter()
            .find(|p| !pods.contains(p))
            .unwrap()
    };
    let new = replacement();
    wait_until("the new pod's first lines", Duration::from_secs(30), || {
        read(&out).contains(&format!("{new} {{\"level\":\"info\""))
            && read(&out).contains("starting zeus")
    });
    wait_until("the notes", Duration::from_secs(30), || {
        let notes = read(&err);
        notes.contains(&format!("- {} went away", pods[0]))
            && notes.contains(&format!("+ {new} started"))
    });
    interrupt(guard.0);
    let mut status = None;
    wait_until("the follower exits", Duration::from_secs(10), || {
        status = guard.0.try_wait().unwrap();
        status.is_some()
    });
    assert_eq!(status.unwrap().code(), Some(0), "{}", read(&err));
}

/// Kills the child if the test fails before it exits.
struct Guard<'a>(&'a mut Child);

fn scopeguard(child: &mut Child) -> Guard<'_> {
    Guard(child)
}

impl Drop for Guard<'_> {
    fn drop(&mut self) {
        if let Ok(None) = self.0.try_wait() {
            let _ = self.0.kill();
        }
        let _ = self.0.wait();
    }
}
