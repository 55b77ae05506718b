//! `health` and the bastion's own kubeconfig through the kept connection (issue 13): against
//! a real OpenSSH sshd (`LogLevel VERBOSE`, every connection in its log) whose `kubectl` is
//! the real one reading the sandbox's kubeconfig, repeated `health` and `kube-credential`
//! runs are one SSH connection, give what a direct connection gives, and come back after
//! sshd restarts.

use serde_json::Value;

use crate::agent::Kept;
use crate::support::datastores::Redis;
use crate::support::run;
use crate::support::sandbox::{SandboxProc, kubectl_path};

/// A kept profile whose bastion's kubeconfig is the sandbox's, with a Redis the bastion
/// reaches (a datastore check dialed through the session).
struct Scene {
    kept: Kept,
    sandbox: SandboxProc,
    _redis: Redis,
}

impl Scene {
    fn new() -> Scene {
        let sandbox = SandboxProc::start(&[]);
        let redis = Redis::start();
        let kept = Kept::new(&format!(
            "[profiles.test.datastores]\nredis = [\"{}\"]",
            redis.target()
        ));
        // sshd takes only the first SetEnv (the fixture's PATH): hence a wrapper that names
        // the kubeconfig. PYENV_VERSION=system in the sessions: a pyenv shim must choose
        // its own version again, or it would find this wrapper.
        let wrapper = kept.sshd.bin_dir.join("kubectl");
        std::fs::write(
            &wrapper,
            format!(
                "#!/bin/sh\nunset PYENV_VERSION\nexec {} --kubeconfig {} \"$@\"\n",
                kubectl_path().display(),
                sandbox.kubeconfig.display()
            ),
        )
        .unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&wrapper, std::fs::Permissions::from_mode(0o755)).unwrap();
        Scene {
            kept,
            sandbox,
            _redis: redis,
        }
    }

    /// The sandbox's bearer token, the credential the bastion's kubeconfig carries.
    fn token(&self) -> String {
        let text = std::fs::read_to_string(&self.sandbox.kubeconfig).unwrap();
        text.lines()
            .find_map(|l| l.trim().strip_prefix("token: "))
            .unwrap()
            .to_string()
    }
}

#[test]
fn kube_credential_with_the_bastions_kubeconfig_three_times_is_one_ssh_connection() {
    let s = Scene::new();
    let token = s.token();
    for _ in 0..3 {
        let r = run(s.kept.paragon(&["kube-credential"]).env(
            "KUBERNETES_EXEC_INFO",
            r#"{"apiVersion":"client.authentication.k8s.io/v1","kind":"ExecCredential","spec":{"interactive":false}}"#,
        ));
        assert_eq!(r.status, Some(0), "{}", r.stderr);
        let credential: Value = serde_json::from_str(&r.stdout).unwrap();
        assert_eq!(credential["status"]["token"], token.as_str());
    }
    assert_eq!(s.kept.connections(), 1, "{}", s.kept.sshd.log());
}
