//! The faults the sandbox can switch on: their names (as a command line writes them), and
//! what each one does (on each variant). Knows nothing of how the world is generated or
//! served; `generate` and `server` read the faults they implement.

use std::fmt;
use std::str::FromStr;

use serde::{Serialize, Serializer};

/// The resource an `api-forbidden` fault refuses: a served kind's plural and API group (""
/// for the core group), both taken from the table of served kinds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Forbidden {
    pub plural: &'static str,
    pub group: &'static str,
}

/// A problem the sandbox can simulate. Each touches only what its documentation says, and
/// every object it produces or changes is annotated `sandbox.paragon.io/fault=<name>`.
/// Times are relative to when the sandbox started.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Fault {
    /// `crashloop`: Deployment `paragon/worker-actions` is mid-rollout. A new ReplicaSet
    /// (revision +1, 1 replica) owns one pod, created 40 minutes ago, phase `Running`, whose
    /// container `worker-actions` is `waiting` with reason `CrashLoopBackOff` (message
    /// `back-off 5m0s restarting failed container=worker-actions pod=<pod>`), `restartCount`
    /// 9, `lastState.terminated` exit code 1 reason `Error` finished 2 minutes ago; pod
    /// conditions `Ready` and `ContainersReady` False (reason `ContainersNotReady`). The two
    /// old pods keep serving: the Deployment has `availableReplicas` 2 = `spec.replicas`,
    /// `updatedReplicas` 1, `unavailableReplicas` 1, `Available` True and `Progressing` True.
    CrashLoop,
    /// `image-pull`: Deployment `paragon/hermes` is mid-rollout to an image tag that does not
    /// exist. The new ReplicaSet's one pod, created 20 minutes ago, is phase `Pending` with
    /// `PodScheduled` True and `Ready` False; its container `hermes` is `waiting` with reason
    /// `ImagePullBackOff` (message `Back-off pulling image "<image>"`), restartCount 0. The
    /// Deployment stays available (`availableReplicas` 2, `Available` True).
    ImagePull,
    /// `pending`: Deployment `paragon/zeus` is mid-rollout to a template that asks for 48Gi of
    /// memory. The new ReplicaSet's one pod, created 25 minutes ago, has no node, phase
    /// `Pending`, condition `PodScheduled` False with reason `Unschedulable` and message
    /// `0/N nodes are available: N Insufficient memory. preemption: ...`, and no container
    /// statuses. The Deployment stays available (`availableReplicas` 2, `Available` True).
    /// The scheduler's new-style `FailedScheduling` event about it (`events.k8s.io`,
    /// `eventTime` 25 minutes ago, `series.count` 41, last observed 30 s ago, no `count`)
    /// repeats the message.
    Pending,
    /// `oom-killed`: the first pod (by name) of Deployment `paragon/worker-workflows` has
    /// `restartCount` 1 and `lastState.terminated` reason `OOMKilled`, exit code 137, finished
    /// 12 minutes ago; it is running again since then and `Ready`.
    OomKilled,
    /// `node-not-ready`: the last node (by index; its name is the last in generation order)
    /// stopped reporting: conditions `Ready`, `MemoryPressure`, `DiskPressure` and
    /// `PIDPressure` all `Unknown` (reason `NodeStatusUnknown`, message `Kubelet stopped
    /// posting node status.`, since 5 minutes ago) and taints `node.kubernetes.io/unreachable`
    /// (NoSchedule and NoExecute). The pods bound to it are left as they were.
    NodeNotReady,
    /// `node-pressure`: the first node has condition `MemoryPressure` True (reason
    /// `KubeletHasInsufficientMemory`, since 15 minutes ago) and the taint
    /// `node.kubernetes.io/memory-pressure:NoSchedule`; it stays `Ready`.
    NodePressure,
    /// `deployment-unavailable`: Deployment `paragon/passport` has no available replica: its
    /// condition `Available` is False (reason `MinimumReplicasUnavailable`, message
    /// `Deployment does not have minimum availability.`, since 15 minutes ago),
    /// `availableReplicas` and `readyReplicas` 0, `unavailableReplicas` 2. Its two pods are
    /// `Running` with containers started, ready=false and restartCount 0 (the readiness probe
    /// fails), pod condition `Ready` False with reason `ContainersNotReady`.
    DeploymentUnavailable,
    /// `pvc-pending`: PVC `paragon/pgadmin-data` (10Gi, storage class `gp3-encrypted`, which
    /// does not exist), created 30 minutes ago, is phase `Pending` with no volume. No pod
    /// mounts it.
    PvcPending,
    /// `failed-release`: Helm release `paragon-on-prem` has a new latest revision, secret
    /// `paragon/sh.helm.release.v1.paragon-on-prem.v<N+1>` labelled `status=failed`
    /// (`modifiedAt` 25 minutes ago, payload status `failed`, description `Upgrade
    /// "paragon-on-prem" failed: context deadline exceeded`); revision N stays
    /// `status=deployed`.
    FailedRelease,
    /// `expiring-cert`: the `kubernetes.io/tls` secret `paragon/paragon-tls` holds a
    /// certificate that expires 9 days after the sandbox started (day precision), instead of 60.
    ExpiringCert,
    /// `warning-events`: two events of type `Warning` in `paragon`, both seen in the last 10
    /// minutes: reason `Unhealthy` (count 3, a readiness probe timeout) on the first
    /// `hermes` pod, and reason `DNSConfigForming` (count 12, "Search Line
    /// limits were exceeded") on the first `zeus` pod. No other fault makes Warning events.
    WarningEvents,
    /// `migration-failed`: the Helm pre-upgrade hook Job `paragon/migrations-postgres-hermes`
    /// (annotations `helm.sh/hook: pre-install,pre-upgrade`, delete policy
    /// `before-hook-creation,hook-succeeded`, so a failed one stays) started 30 minutes ago and
    /// failed: `status.failed` 1, conditions `FailureTarget` and `Failed` True with reason
    /// `BackoffLimitExceeded`; its one pod is phase `Failed`, container `migrations`
    /// terminated with reason `Error`, exit code 1, pod condition `Ready` False with reason
    /// `PodFailed`. A clean sandbox has no `migrations-postgres-*` Job.
    MigrationFailed,
    /// `pending-release`: Helm release `paragon-monitoring` has a new latest revision stuck
    /// in `pending-upgrade` (labels `status=pending-upgrade`, `modifiedAt` 3 hours ago; the
    /// payload's status the same), as Helm leaves it when its process is killed mid-upgrade.
    PendingRelease,
    /// `network-unavailable`: the second node (the first when there is one) has condition
    /// `NetworkUnavailable` True (reason `NoRouteCreated`, message `Node created without a
    /// route`, as the cloud route controller leaves a node it has no route for, since 20
    /// minutes ago); it stays `Ready`. Healthy nodes carry `NetworkUnavailable` False
    /// (`RouteCreated`).
    NetworkUnavailable,
    /// `stuck-terminating`: the first pod of Deployment `paragon/worker-crons` was deleted 20
    /// minutes ago and never went away: `metadata.deletionTimestamp` 20 minutes ago,
    /// `deletionGracePeriodSeconds` 30, still `Running` and Ready (kubectl shows it
    /// `Terminating`).
    StuckTerminating,
    /// `evicted`: two pods of ReplicaSet `worker-proxy-<hash>` evicted for memory 35 and 30
    /// minutes ago, phase `Failed`, container terminated (exit 137, reason `Error` /
    /// `ContainerStatusUnknown`): the old shape with `status.reason` `Evicted` and
    /// `status.message` `The node was low on resource: memory. ...`, and the current shape
    /// with no `status.reason` and only the condition `DisruptionTarget` True (reason
    /// `TerminationByKubelet`, the same message).
    Evicted,
    /// `failed-pod`: a bare pod `paragon/paragon-db-backup` (restartPolicy `Never`, no owner)
    /// is phase `Failed` 15 minutes ago with no `status.reason`: its reason is only in the
    /// container's `state.terminated` (reason `OOMKilled`, exit code 137).
    FailedPod,
    /// `readiness-gate`: the first `ingress-nginx-controller` pod declares the readiness gate
    /// `target-health.elbv2.k8s.aws/k8s-paragon-ingress-<hash>`; its containers are ready
    /// (`ContainersReady` True) but the pod is not: `Ready` False with reason
    /// `ReadinessGatesNotReady` (the kubelet's message), since 10 minutes ago.
    ReadinessGate,
    /// `post-start-hook`: Deployment `paragon/pheme` is mid-rollout; the new ReplicaSet's one
    /// pod, created 15 minutes ago, has its container `pheme` `waiting` with reason
    /// `PostStartHookError` (restartCount 3, last terminated exit 137 `Error`); the
    /// Deployment stays available.
    PostStartHook,
    /// `api-throttle`: the first time each distinct request (path and query) for an API
    /// resource arrives it is refused with `429 Too Many Requests`, a `Retry-After: 1`
    /// header and a `Status` (reason `TooManyRequests`, `details.retryAfterSeconds` 1); the
    /// same request again is served. Discovery (`/api`, `/apis`, `/version`) is never
    /// throttled.
    ApiThrottle,
    /// `api-expired-continue`: the first continued list (a `continue` token) of each resource
    /// kind is refused with `410 Gone`, reason `Expired`, as after an etcd compaction; a list
    /// started again is served, continued pages too.
    ApiExpiredContinue,
    /// `api-error`: the first time each distinct request for an API resource arrives it gets
    /// `500 Internal Server Error`, reason `InternalError`, message `Internal error occurred:
    /// etcdserver: leader changed`; the same request again is served.
    ApiError,
    /// `api-slow`: every request for an API resource is answered after a one-second delay.
    ApiSlow,
    /// `api-forbidden=RESOURCE`: every get, list and watch of RESOURCE (a plural, `secrets`,
    /// or with its group, `events.events.k8s.io`) is refused with `403 Forbidden`, reason
    /// `Forbidden`, message as the RBAC authorizer words it: `secrets is forbidden: User
    /// "sandbox" cannot list resource "secrets" in API group "" in the namespace "paragon"`.
    ApiForbidden(Forbidden),
    /// `log-secrets`: the logs of every running container carry, a minute before the request,
    /// lines with the secrets of [`crate::planted::PLANTED`]: one of each kind a support
    /// bundle must redact (a bearer token in a JSON header, a JWT, a PEM private key, an AWS
    /// access key, passwords in a URL and a connection string, `token=`/`api_key=` pairs,
    /// JSON secret fields, secret-named environment variables). No object changes.
    LogSecrets,
}

/// Each fault without data: its name and a one-line help, in declaration order.
#[rustfmt::skip]
const TABLE: [(Fault, &str, &str); 25] = [
    (Fault::CrashLoop, "crashloop", "a worker-actions pod in CrashLoopBackOff"),
    (Fault::ImagePull, "image-pull", "a hermes pod in ImagePullBackOff"),
    (Fault::Pending, "pending", "an unschedulable zeus pod"),
    (Fault::OomKilled, "oom-killed", "a worker-workflows container recently OOMKilled"),
    (Fault::NodeNotReady, "node-not-ready", "the last node stops reporting (NotReady)"),
    (Fault::NodePressure, "node-pressure", "the first node under memory pressure"),
    (Fault::DeploymentUnavailable, "deployment-unavailable", "Deployment passport with no available replica"),
    (Fault::PvcPending, "pvc-pending", "PVC pgadmin-data stuck Pending"),
    (Fault::FailedRelease, "failed-release", "Helm release paragon-on-prem's latest revision failed"),
    (Fault::ExpiringCert, "expiring-cert", "TLS secret paragon-tls expires in 9 days"),
    (Fault::WarningEvents, "warning-events", "Warning events in the last hour"),
    (Fault::MigrationFailed, "migration-failed", "a failed database migrations Job left behind"),
    (Fault::PendingRelease, "pending-release", "Helm release paragon-monitoring stuck in pending-upgrade"),
    (Fault::NetworkUnavailable, "network-unavailable", "a node with NetworkUnavailable=True"),
    (Fault::StuckTerminating, "stuck-terminating", "a worker-crons pod Terminating for 20 minutes"),
    (Fault::Evicted, "evicted", "two evicted worker-proxy pods, old and current shape"),
    (Fault::FailedPod, "failed-pod", "a Failed pod whose reason is only in its container"),
    (Fault::ReadinessGate, "readiness-gate", "an ingress pod held unready by its readiness gate"),
    (Fault::PostStartHook, "post-start-hook", "a pheme pod waiting in PostStartHookError"),
    (Fault::ApiThrottle, "api-throttle", "429 with Retry-After on each request's first try"),
    (Fault::ApiExpiredContinue, "api-expired-continue", "410 Expired on the first continued list of each kind"),
    (Fault::ApiError, "api-error", "500 InternalError on each request's first try"),
    (Fault::ApiSlow, "api-slow", "every API request answered after one second"),
    (Fault::LogSecrets, "log-secrets", "planted secrets of every kind in the pods' logs"),
    (Fault::ApiForbidden(Forbidden { plural: "", group: "" }), "api-forbidden", "=RESOURCE: 403 Forbidden on every request for RESOURCE"),
];

impl Fault {
    /// Every fault that takes no argument, in declaration order (all but `api-forbidden`,
    /// made by [`Fault::forbidding`]).
    pub const ALL: [Fault; 24] = {
        let mut all = [Fault::CrashLoop; 24];
        let mut i = 0;
        while i < all.len() {
            all[i] = TABLE[i].0;
            i += 1;
        }
        all
    };

    /// The name used on the command line (without `=RESOURCE`) and in the fault annotation.
    pub fn name(self) -> &'static str {
        TABLE
            .iter()
            .find(|(f, _, _)| std::mem::discriminant(f) == std::mem::discriminant(&self))
            .map_or("", |(_, name, _)| name)
    }

    /// `api-forbidden=RESOURCE` for a served resource (`secrets`, `events.events.k8s.io`).
    pub fn forbidding(resource: &str) -> Result<Fault, FaultError> {
        let (plural, group) = resource.split_once('.').unwrap_or((resource, ""));
        super::store::ALL
            .iter()
            .map(|r| r.kind())
            .find(|k| k.plural == plural && k.group == group)
            .map(|k| {
                Fault::ApiForbidden(Forbidden {
                    plural: k.plural,
                    group: k.group,
                })
            })
            .ok_or_else(|| FaultError::UnknownResource(resource.to_string()))
    }

    /// Every name the command line takes, with a line of help each (`api-forbidden` takes
    /// `=RESOURCE`), for a parser to offer to help and completion.
    pub fn names() -> impl Iterator<Item = (&'static str, &'static str)> {
        TABLE.iter().map(|(_, name, help)| (*name, *help))
    }

    /// A fault of the API server, not of the generated objects.
    pub fn is_api(self) -> bool {
        matches!(
            self,
            Fault::ApiThrottle
                | Fault::ApiExpiredContinue
                | Fault::ApiError
                | Fault::ApiSlow
                | Fault::ApiForbidden(_)
        )
    }
}

impl fmt::Display for Fault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Fault::ApiForbidden(r) if r.group.is_empty() => write!(f, "api-forbidden={}", r.plural),
            Fault::ApiForbidden(r) => write!(f, "api-forbidden={}.{}", r.plural, r.group),
            other => f.write_str(other.name()),
        }
    }
}

impl Serialize for Fault {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FaultError {
    #[error("unknown fault {0:?}; see `paragon-admin sandbox --help` for the list")]
    Unknown(String),
    #[error("api-forbidden needs a resource: api-forbidden=RESOURCE, e.g. api-forbidden=secrets")]
    NoResource,
    #[error(
        "api-forbidden={0}: the sandbox serves no such resource; name a plural it serves \
         (pods, secrets, events.events.k8s.io, ...)"
    )]
    UnknownResource(String),
}

impl FromStr for Fault {
    type Err = FaultError;

    fn from_str(s: &str) -> Result<Fault, FaultError> {
        match s.split_once('=') {
            Some(("api-forbidden", resource)) if !resource.is_empty() => {
                Fault::forbidding(resource)
            }
            Some(("api-forbidden", _)) => Err(FaultError::NoResource),
            None if s == "api-forbidden" => Err(FaultError::NoResource),
            None => TABLE
                .iter()
                .find(|(_, name, _)| *name == s)
                .map(|(f, _, _)| *f)
                .ok_or_else(|| FaultError::Unknown(s.to_string())),
            Some(_) => Err(FaultError::Unknown(s.to_string())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_parse_back_and_forbidden_takes_a_served_resource() {
        for f in Fault::ALL {
            assert_eq!(f.name().parse::<Fault>(), Ok(f));
        }
        let f: Fault = "api-forbidden=secrets".parse().unwrap();
        assert_eq!(f.to_string(), "api-forbidden=secrets");
        assert_eq!(f.name(), "api-forbidden");
        let f: Fault = "api-forbidden=deployments.apps".parse().unwrap();
        assert_eq!(
            f,
            Fault::ApiForbidden(Forbidden {
                plural: "deployments",
                group: "apps"
            })
        );
        assert_eq!(
            serde_json::to_string(&f).unwrap(),
            "\"api-forbidden=deployments.apps\""
        );
        assert_eq!(
            "api-forbidden".parse::<Fault>(),
            Err(FaultError::NoResource)
        );
        assert_eq!(
            "api-forbidden=".parse::<Fault>(),
            Err(FaultError::NoResource)
        );
        assert!(matches!(
            "api-forbidden=widgets".parse::<Fault>(),
            Err(FaultError::UnknownResource(_))
        ));
        assert!(matches!(
            "meteor".parse::<Fault>(),
            Err(FaultError::Unknown(_))
        ));
    }
}
