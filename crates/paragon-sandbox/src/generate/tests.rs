//! The generator's own tests: the clean installation is healthy, each fault changes what its
//! documentation says, every object parses as its Kubernetes type.

use base64::Engine as _;
use k8s_openapi::api::apps::v1::{
    DaemonSet, Deployment, DeploymentCondition, ReplicaSet, StatefulSet,
};
use k8s_openapi::api::batch::v1::{CronJob, Job};
use k8s_openapi::api::core::v1::{
    ConfigMap, Event, Node, PersistentVolumeClaim, Pod, PodCondition, Secret, Service,
};
use std::collections::BTreeMap;

use k8s_openapi::api::events::v1::Event as EventV1;
use k8s_openapi::api::storage::v1::StorageClass;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use serde::de::DeserializeOwned;

use super::tables::SERVICES;
use super::*;
use crate::store::ALL;

const CA: &str = "-----BEGIN CERTIFICATE-----\n-----END CERTIFICATE-----\n";
const NOW: i64 = 1_780_000_000;

fn world(faults: &[Fault]) -> World {
    let opts = SandboxOptions {
        faults: faults.to_vec(),
        ..Default::default()
    };
    generate(&opts, NOW, CA).unwrap()
}

fn objects<K: DeserializeOwned>(w: &World, res: Res) -> Vec<K> {
    w.all(res)
        .iter()
        .map(|e| {
            let mut out = Vec::new();
            e.write_object(&mut out);
            serde_json::from_slice(&out).unwrap()
        })
        .collect()
}

fn faulted(meta: &ObjectMeta, f: Fault) -> bool {
    meta.annotations
        .as_ref()
        .and_then(|a| a.get(FAULT_ANNOTATION))
        .is_some_and(|v| v == f.name())
}

fn ts(t: &Option<Time>) -> i64 {
    t.as_ref().unwrap().0.as_second()
}

fn cond<'a>(conds: &'a Option<Vec<PodCondition>>, t: &str) -> &'a PodCondition {
    conds
        .as_ref()
        .unwrap()
        .iter()
        .find(|c| c.type_ == t)
        .unwrap()
}

fn deployment(w: &World, name: &str) -> Deployment {
    objects::<Deployment>(w, Res::Deployments)
        .into_iter()
        .find(|d| d.metadata.name.as_deref() == Some(name))
        .unwrap()
}

fn available(d: &Deployment) -> &DeploymentCondition {
    let st = d.status.as_ref().unwrap();
    st.conditions
        .as_ref()
        .unwrap()
        .iter()
        .find(|c| c.type_ == "Available")
        .unwrap()
}

#[test]
fn every_served_object_parses_as_its_kubernetes_type() {
    let w = world(&Fault::ALL);
    for res in ALL {
        let n = match res {
            Res::Namespaces => objects::<Namespace>(&w, res).len(),
            Res::Nodes => objects::<Node>(&w, res).len(),
            Res::Pods => objects::<Pod>(&w, res).len(),
            Res::Events => objects::<Event>(&w, res).len(),
            Res::PersistentVolumeClaims => objects::<PersistentVolumeClaim>(&w, res).len(),
            Res::Secrets => objects::<Secret>(&w, res).len(),
            Res::ConfigMaps => objects::<ConfigMap>(&w, res).len(),
            Res::Services => objects::<Service>(&w, res).len(),
            Res::Deployments => objects::<Deployment>(&w, res).len(),
            Res::StatefulSets => objects::<StatefulSet>(&w, res).len(),
            Res::DaemonSets => objects::<DaemonSet>(&w, res).len(),
            Res::ReplicaSets => objects::<ReplicaSet>(&w, res).len(),
            Res::Jobs => objects::<Job>(&w, res).len(),
            Res::CronJobs => objects::<CronJob>(&w, res).len(),
            Res::StorageClasses => objects::<StorageClass>(&w, res).len(),
            Res::EventsV1 => objects::<EventV1>(&w, res).len(),
        };
        assert!(n > 0, "{res:?} is empty");
        for e in w.all(res) {
            assert_eq!(
                e.cells.len(),
                res.kind().columns.len(),
                "{res:?} {}",
                e.name
            );
        }
    }
}

#[test]
fn every_fault_has_a_name() {
    let offered: Vec<&str> = Fault::names().map(|(name, _)| name).collect();
    for f in Fault::ALL {
        assert!(offered.contains(&f.name()), "{}", f.name());
        assert_eq!(serde_json::to_value(f).unwrap(), f.name());
    }
    // every fault, and api-forbidden (which takes a resource)
    assert_eq!(offered.len(), Fault::ALL.len() + 1);
}

#[test]
fn same_seed_same_names_other_seed_other_names() {
    let names = |seed| {
        let opts = SandboxOptions {
            seed,
            ..Default::default()
        };
        let w = generate(&opts, NOW, CA).unwrap();
        w.all(Res::Pods)
            .iter()
            .map(|e| e.name.to_string())
            .collect::<Vec<_>>()
    };
    assert_eq!(names(5), names(5));
    assert_ne!(names(5), names(6));
}

#[test]
fn clean_installation_is_healthy() {
    let w = world(&[]);
    let hour_ago = NOW - HOUR;
    for node in objects::<Node>(&w, Res::Nodes) {
        for c in node.status.unwrap().conditions.unwrap() {
            let want = if c.type_ == "Ready" { "True" } else { "False" };
            assert_eq!(c.status, want, "{:?} {}", node.metadata.name, c.type_);
        }
        assert!(node.spec.unwrap().taints.is_none());
    }
    for pod in objects::<Pod>(&w, Res::Pods) {
        let st = pod.status.unwrap();
        if st.phase.as_deref() == Some("Succeeded") {
            continue;
        }
        // held by its scheduling gate on purpose
        if pod.spec.as_ref().unwrap().scheduling_gates.is_some() {
            let c = cond(&st.conditions, "PodScheduled");
            assert_eq!(
                (c.status.as_str(), c.reason.as_deref()),
                ("False", Some("SchedulingGated"))
            );
            continue;
        }
        assert_eq!(
            st.phase.as_deref(),
            Some("Running"),
            "{:?}",
            pod.metadata.name
        );
        assert_eq!(cond(&st.conditions, "Ready").status, "True");
        for c in st.container_statuses.unwrap() {
            assert!(c.ready);
            if c.restart_count > 0 {
                let last = c.last_state.unwrap().terminated.unwrap();
                assert!(ts(&last.finished_at) < hour_ago, "{:?}", pod.metadata.name);
            }
        }
    }
    for d in objects::<Deployment>(&w, Res::Deployments) {
        let st = d.status.as_ref().unwrap();
        assert_eq!(st.available_replicas, d.spec.as_ref().unwrap().replicas);
        assert_eq!(available(&d).status, "True");
    }
    for s in objects::<StatefulSet>(&w, Res::StatefulSets) {
        assert_eq!(s.status.unwrap().ready_replicas, s.spec.unwrap().replicas);
    }
    for d in objects::<DaemonSet>(&w, Res::DaemonSets) {
        let st = d.status.unwrap();
        assert_eq!(st.number_ready, st.desired_number_scheduled);
    }
    // Claims are bound, or wait for their first consumer on a WaitForFirstConsumer class.
    let waiting: Vec<String> = objects::<StorageClass>(&w, Res::StorageClasses)
        .into_iter()
        .filter(|c| c.volume_binding_mode.as_deref() == Some("WaitForFirstConsumer"))
        .map(|c| c.metadata.name.unwrap())
        .collect();
    for p in objects::<PersistentVolumeClaim>(&w, Res::PersistentVolumeClaims) {
        let class = p.spec.unwrap().storage_class_name.unwrap();
        match p.status.unwrap().phase.as_deref() {
            Some("Bound") => {}
            Some("Pending") => assert!(waiting.contains(&class), "{class}"),
            other => panic!("{other:?}"),
        }
    }
    // Warnings only about pods that no longer exist (replaced by the daily restart).
    for e in objects::<Event>(&w, Res::Events) {
        if e.type_.as_deref() != Some("Normal") {
            let name = e.involved_object.name.unwrap();
            assert!(w.get(Res::Pods, PARAGON, &name).is_none(), "{name}");
        }
    }
    let secrets = objects::<Secret>(&w, Res::Secrets);
    let releases: Vec<_> = secrets
        .iter()
        .filter(|s| s.type_.as_deref() == Some("helm.sh/release.v1"))
        .collect();
    assert_eq!(
        releases.len(),
        w.all(Res::Secrets)
            .iter()
            .filter(|e| e
                .labels
                .iter()
                .any(|(k, v)| &**k == "owner" && &**v == "helm"))
            .count()
    );
    for name in [
        "paragon-on-prem",
        "paragon-monitoring",
        "paragon-logging",
        "ingress",
        "metricsserver",
    ] {
        let latest = releases
            .iter()
            .filter(|s| s.metadata.labels.as_ref().unwrap()["name"] == name)
            .max_by_key(|s| {
                s.metadata.labels.as_ref().unwrap()["version"]
                    .parse::<u32>()
                    .unwrap()
            })
            .unwrap();
        assert_eq!(
            latest.metadata.labels.as_ref().unwrap()["status"],
            "deployed",
            "{name}"
        );
    }
    // Nothing carries a fault annotation.
    for res in ALL {
        for e in w.all(res) {
            let mut out = Vec::new();
            e.write_object(&mut out);
            assert!(!String::from_utf8(out).unwrap().contains(FAULT_ANNOTATION));
        }
    }
}

#[test]
fn paragon_services_follow_the_installation_facts() {
    let w = world(&[]);
    for (name, port) in SERVICES {
        let d = deployment(&w, name);
        let l = d.metadata.labels.as_ref().unwrap();
        assert_eq!(l[INSTANCE], "paragon-on-prem");
        assert_eq!(l[APP_NAME], name);
        let want = if name == "worker-workflows" { 4 } else { 2 };
        assert_eq!(d.spec.as_ref().unwrap().replicas, Some(want));
        let svc = w.get(Res::Services, PARAGON, name).unwrap();
        let mut out = Vec::new();
        svc.write_object(&mut out);
        let svc: Service = serde_json::from_slice(&out).unwrap();
        assert_eq!(svc.spec.unwrap().ports.unwrap()[0].port, i32::from(port));
    }
    let pods = objects::<Pod>(&w, Res::Pods);
    let hermes: Vec<_> = pods
        .iter()
        .filter(|p| {
            p.metadata
                .labels
                .as_ref()
                .unwrap()
                .get(APP_NAME)
                .map(String::as_str)
                == Some("hermes")
        })
        .collect();
    assert_eq!(hermes.len(), 2);
    let owner = &hermes[0].metadata.owner_references.as_ref().unwrap()[0];
    assert_eq!(owner.kind, "ReplicaSet");
    let rs = w.get(Res::ReplicaSets, PARAGON, &owner.name).unwrap();
    let mut out = Vec::new();
    rs.write_object(&mut out);
    let rs: ReplicaSet = serde_json::from_slice(&out).unwrap();
    assert_eq!(rs.metadata.uid.as_deref(), Some(owner.uid.as_str()));
    assert_eq!(rs.metadata.owner_references.unwrap()[0].kind, "Deployment");
    for name in ["grafana", "prometheus", "kibana"] {
        assert!(w.get(Res::Services, PARAGON, name).is_some(), "{name}");
    }
}

#[test]
fn pods_option_scales_worker_replicas_exactly() {
    let opts = SandboxOptions {
        nodes: 50,
        pods: 3000,
        ..Default::default()
    };
    let w = generate(&opts, NOW, CA).unwrap();
    assert_eq!(w.all(Res::Pods).len(), 3000);
    assert_eq!(w.all(Res::Nodes).len(), 50);
    let small = SandboxOptions {
        nodes: 50,
        pods: 10,
        ..Default::default()
    };
    assert!(matches!(
        generate(&small, NOW, CA),
        Err(SandboxError::TooFewPods { .. })
    ));
}

fn fault_pods(w: &World, f: Fault) -> Vec<Pod> {
    objects::<Pod>(w, Res::Pods)
        .into_iter()
        .filter(|p| faulted(&p.metadata, f))
        .collect()
}

#[test]
fn crashloop_fault() {
    let w = world(&[Fault::CrashLoop]);
    let pods = fault_pods(&w, Fault::CrashLoop);
    assert_eq!(pods.len(), 1);
    let st = pods[0].status.as_ref().unwrap();
    assert_eq!(st.phase.as_deref(), Some("Running"));
    let c = &st.container_statuses.as_ref().unwrap()[0];
    assert_eq!(
        c.state
            .as_ref()
            .unwrap()
            .waiting
            .as_ref()
            .unwrap()
            .reason
            .as_deref(),
        Some("CrashLoopBackOff")
    );
    assert!(c.restart_count > 5);
    assert_eq!(
        pods[0].metadata.labels.as_ref().unwrap()[APP_NAME],
        "worker-actions"
    );
    let d = deployment(&w, "worker-actions");
    assert_eq!(d.status.as_ref().unwrap().available_replicas, Some(2));
    assert_eq!(available(&d).status, "True");
}

#[test]
fn image_pull_fault() {
    let w = world(&[Fault::ImagePull]);
    let pods = fault_pods(&w, Fault::ImagePull);
    assert_eq!(pods.len(), 1);
    let st = pods[0].status.as_ref().unwrap();
    assert_eq!(st.phase.as_deref(), Some("Pending"));
    assert_eq!(cond(&st.conditions, "PodScheduled").status, "True");
    let c = &st.container_statuses.as_ref().unwrap()[0];
    assert_eq!(
        c.state
            .as_ref()
            .unwrap()
            .waiting
            .as_ref()
            .unwrap()
            .reason
            .as_deref(),
        Some("ImagePullBackOff")
    );
}

#[test]
fn pending_fault() {
    let w = world(&[Fault::Pending]);
    let pods = fault_pods(&w, Fault::Pending);
    assert_eq!(pods.len(), 1);
    let st = pods[0].status.as_ref().unwrap();
    assert_eq!(st.phase.as_deref(), Some("Pending"));
    let c = cond(&st.conditions, "PodScheduled");
    assert_eq!(
        (c.status.as_str(), c.reason.as_deref()),
        ("False", Some("Unschedulable"))
    );
    assert!(
        c.message
            .as_deref()
            .unwrap()
            .contains("Insufficient memory")
    );
    assert!(ts(&pods[0].metadata.creation_timestamp) < NOW - 10 * MINUTE);
    assert!(pods[0].spec.as_ref().unwrap().node_name.is_none());
}

#[test]
fn oom_killed_fault() {
    let w = world(&[Fault::OomKilled]);
    let pods = fault_pods(&w, Fault::OomKilled);
    assert_eq!(pods.len(), 1);
    let st = pods[0].status.as_ref().unwrap();
    assert_eq!(cond(&st.conditions, "Ready").status, "True");
    let c = &st.container_statuses.as_ref().unwrap()[0];
    let last = c.last_state.as_ref().unwrap().terminated.as_ref().unwrap();
    assert_eq!(
        (last.reason.as_deref(), last.exit_code),
        (Some("OOMKilled"), 137)
    );
    assert!(ts(&last.finished_at) > NOW - HOUR);
}

#[test]
fn node_faults() {
    let w = world(&[Fault::NodeNotReady, Fault::NodePressure]);
    let nodes = objects::<Node>(&w, Res::Nodes);
    let bad: Vec<_> = nodes
        .iter()
        .filter(|n| faulted(&n.metadata, Fault::NodeNotReady))
        .collect();
    assert_eq!(bad.len(), 1);
    let conds = bad[0].status.as_ref().unwrap().conditions.as_ref().unwrap();
    assert!(
        conds
            .iter()
            .any(|c| c.type_ == "Ready" && c.status == "Unknown")
    );
    let pressed: Vec<_> = nodes
        .iter()
        .filter(|n| faulted(&n.metadata, Fault::NodePressure))
        .collect();
    assert_eq!(pressed.len(), 1);
    let conds = pressed[0]
        .status
        .as_ref()
        .unwrap()
        .conditions
        .as_ref()
        .unwrap();
    assert!(
        conds
            .iter()
            .any(|c| c.type_ == "MemoryPressure" && c.status == "True")
    );
    assert!(
        conds
            .iter()
            .any(|c| c.type_ == "Ready" && c.status == "True")
    );
}

#[test]
fn deployment_unavailable_fault() {
    let w = world(&[Fault::DeploymentUnavailable]);
    let d = deployment(&w, "passport");
    assert!(faulted(&d.metadata, Fault::DeploymentUnavailable));
    let st = d.status.as_ref().unwrap();
    assert_eq!(st.available_replicas.unwrap_or(0), 0);
    assert_eq!(available(&d).status, "False");
    assert_eq!(fault_pods(&w, Fault::DeploymentUnavailable).len(), 2);
    let unavailable: Vec<_> = objects::<Deployment>(&w, Res::Deployments)
        .into_iter()
        .filter(|d| available(d).status == "False")
        .collect();
    assert_eq!(unavailable.len(), 1);
}

#[test]
fn pvc_pending_fault() {
    let w = world(&[Fault::PvcPending]);
    let pending: Vec<_> = objects::<PersistentVolumeClaim>(&w, Res::PersistentVolumeClaims)
        .into_iter()
        .filter(|p| p.status.as_ref().unwrap().phase.as_deref() == Some("Pending"))
        .filter(|p| faulted(&p.metadata, Fault::PvcPending))
        .collect();
    assert_eq!(pending.len(), 1);
    assert_eq!(pending[0].metadata.name.as_deref(), Some("pgadmin-data"));
}

#[test]
fn failed_release_fault() {
    let w = world(&[Fault::FailedRelease]);
    let secrets = objects::<Secret>(&w, Res::Secrets);
    let mut on_prem: Vec<_> = secrets
        .iter()
        .filter(|s| {
            s.metadata
                .labels
                .as_ref()
                .is_some_and(|l| l.get("name").map(String::as_str) == Some("paragon-on-prem"))
        })
        .collect();
    on_prem.sort_by_key(|s| {
        s.metadata.labels.as_ref().unwrap()["version"]
            .parse::<u32>()
            .unwrap()
    });
    let status = |s: &Secret| s.metadata.labels.as_ref().unwrap()["status"].clone();
    assert_eq!(status(on_prem[on_prem.len() - 1]), "failed");
    assert_eq!(status(on_prem[on_prem.len() - 2]), "deployed");
    // The payload is what Helm writes: base64 of gzip of the release JSON.
    let data = &on_prem[on_prem.len() - 1].data.as_ref().unwrap()["release"].0;
    let gz = base64::engine::general_purpose::STANDARD
        .decode(data)
        .unwrap();
    let mut json = String::new();
    std::io::Read::read_to_string(&mut flate2::read::GzDecoder::new(&gz[..]), &mut json).unwrap();
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(v["info"]["status"], "failed");
}

#[test]
fn expiring_cert_fault_and_clean_cert() {
    let days_left = |faults: &[Fault]| {
        let w = world(faults);
        let e = w.get(Res::Secrets, PARAGON, "paragon-tls").unwrap();
        let mut out = Vec::new();
        e.write_object(&mut out);
        let s: Secret = serde_json::from_slice(&out).unwrap();
        assert_eq!(s.type_.as_deref(), Some("kubernetes.io/tls"));
        let pem = String::from_utf8(s.data.unwrap()["tls.crt"].0.clone()).unwrap();
        assert!(pem.starts_with("-----BEGIN CERTIFICATE-----"));
        (not_after(&pem) - NOW) / DAY
    };
    let clean = days_left(&[]);
    assert!(clean > 30, "{clean}");
    let expiring = days_left(&[Fault::ExpiringCert]);
    assert!((0..30).contains(&expiring), "{expiring}");
}

/// notAfter of a PEM certificate, read from its DER by hand (UTCTime, as rcgen writes
/// dates before 2050).
fn not_after(pem: &str) -> i64 {
    let b64: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
    let der = base64::engine::general_purpose::STANDARD
        .decode(b64)
        .unwrap();
    // Returns (content start, content end) of the TLV at `at`.
    let tlv = |at: usize| -> (usize, usize) {
        let len = der[at + 1] as usize;
        if len < 0x80 {
            (at + 2, at + 2 + len)
        } else {
            let n = len & 0x7f;
            let l = der[at + 2..at + 2 + n]
                .iter()
                .fold(0usize, |a, b| a << 8 | *b as usize);
            (at + 2 + n, at + 2 + n + l)
        }
    };
    let (cert, _) = tlv(0);
    let (tbs, _) = tlv(cert);
    let mut at = tbs;
    if der[at] == 0xa0 {
        at = tlv(at).1; // version
    }
    at = tlv(at).1; // serial
    at = tlv(at).1; // signature algorithm
    at = tlv(at).1; // issuer
    let (validity, _) = tlv(at);
    let not_after_at = tlv(validity).1;
    assert_eq!(der[not_after_at], 0x17, "UTCTime");
    let (s, e) = tlv(not_after_at);
    let t = std::str::from_utf8(&der[s..e]).unwrap();
    let stamp = format!(
        "20{}-{}-{}T{}:{}:{}Z",
        &t[0..2],
        &t[2..4],
        &t[4..6],
        &t[6..8],
        &t[8..10],
        &t[10..12]
    );
    stamp.parse::<jiff::Timestamp>().unwrap().as_second()
}

#[test]
fn migration_failed_fault() {
    let clean = world(&[]);
    assert!(
        clean
            .all(Res::Jobs)
            .iter()
            .all(|e| !e.name.starts_with("migrations-postgres-"))
    );
    let w = world(&[Fault::MigrationFailed]);
    let jobs: Vec<Job> = objects::<Job>(&w, Res::Jobs)
        .into_iter()
        .filter(|j| faulted(&j.metadata, Fault::MigrationFailed))
        .collect();
    assert_eq!(jobs.len(), 1);
    assert_eq!(
        jobs[0].metadata.name.as_deref(),
        Some("migrations-postgres-hermes")
    );
    let st = jobs[0].status.as_ref().unwrap();
    assert_eq!(st.failed, Some(1));
    let failed = st
        .conditions
        .as_ref()
        .unwrap()
        .iter()
        .find(|c| c.type_ == "Failed")
        .unwrap();
    assert_eq!(failed.reason.as_deref(), Some("BackoffLimitExceeded"));
    let pods = fault_pods(&w, Fault::MigrationFailed);
    assert_eq!(pods.len(), 1);
    assert_eq!(
        pods[0].status.as_ref().unwrap().phase.as_deref(),
        Some("Failed")
    );
    let owner = &pods[0].metadata.owner_references.as_ref().unwrap()[0];
    assert_eq!(
        (owner.kind.as_str(), owner.uid.as_str()),
        ("Job", jobs[0].metadata.uid.as_deref().unwrap())
    );
}

#[test]
fn warning_events_fault() {
    let w = world(&[Fault::WarningEvents]);
    let warnings: Vec<_> = objects::<Event>(&w, Res::Events)
        .into_iter()
        .filter(|e| e.type_.as_deref() == Some("Warning"))
        .filter(|e| faulted(&e.metadata, Fault::WarningEvents))
        .collect();
    assert_eq!(warnings.len(), 2);
    for e in &warnings {
        assert!(ts(&e.last_timestamp) > NOW - HOUR);
        assert!(faulted(&e.metadata, Fault::WarningEvents));
        let pod = w.get(
            Res::Pods,
            PARAGON,
            e.involved_object.name.as_deref().unwrap(),
        );
        assert!(pod.is_some());
    }
}

#[test]
fn storage_classes_bind_both_ways_and_a_claim_waits_for_its_first_consumer() {
    let w = world(&[]);
    let classes = objects::<StorageClass>(&w, Res::StorageClasses);
    let modes: Vec<_> = classes
        .iter()
        .map(|c| c.volume_binding_mode.as_deref().unwrap())
        .collect();
    assert!(modes.contains(&"Immediate") && modes.contains(&"WaitForFirstConsumer"));
    let default: Vec<_> = classes
        .iter()
        .filter(|c| {
            c.metadata.annotations.as_ref().is_some_and(|a| {
                a.get("storageclass.kubernetes.io/is-default-class")
                    .map(String::as_str)
                    == Some("true")
            })
        })
        .collect();
    assert_eq!(default.len(), 1);
    assert_eq!(
        default[0].volume_binding_mode.as_deref(),
        Some("WaitForFirstConsumer")
    );
    let pvc = objects::<PersistentVolumeClaim>(&w, Res::PersistentVolumeClaims)
        .into_iter()
        .find(|p| p.metadata.name.as_deref() == Some("redis-insight-data"))
        .unwrap();
    assert_eq!(pvc.status.unwrap().phase.as_deref(), Some("Pending"));
    assert_eq!(
        pvc.spec.unwrap().storage_class_name,
        default[0].metadata.name
    );
    let ev = objects::<Event>(&w, Res::Events)
        .into_iter()
        .find(|e| e.reason.as_deref() == Some("WaitForFirstConsumer"))
        .unwrap();
    assert_eq!(
        ev.involved_object.name.as_deref(),
        Some("redis-insight-data")
    );
    assert_eq!(
        ev.source.unwrap().component.as_deref(),
        Some("persistentvolume-controller")
    );
    assert!(ev.count.unwrap() > 1000);
}

#[test]
fn events_are_served_in_both_shapes_as_the_api_server_converts_them() {
    let w = world(&[Fault::Pending]);
    let core = objects::<Event>(&w, Res::Events);
    let v1 = objects::<EventV1>(&w, Res::EventsV1);
    assert_eq!(core.len(), v1.len());
    // The scheduler's repeated FailedScheduling: a series, no count or lastTimestamp.
    let failed = core
        .iter()
        .find(|e| e.reason.as_deref() == Some("FailedScheduling"))
        .unwrap();
    assert_eq!(
        (
            failed.count,
            &failed.last_timestamp,
            &failed.first_timestamp
        ),
        (None, &None, &None)
    );
    assert!(failed.event_time.is_some());
    let series = failed.series.as_ref().unwrap();
    assert_eq!(series.count, Some(41));
    assert_eq!(
        series.last_observed_time.as_ref().unwrap().0.as_second(),
        NOW - 30
    );
    let same = v1
        .iter()
        .find(|e| e.metadata.name == failed.metadata.name)
        .unwrap();
    assert_eq!(same.series.as_ref().unwrap().count, 41);
    assert_eq!(
        same.reporting_controller.as_deref(),
        Some("default-scheduler")
    );
    assert_eq!(same.note, failed.message);
    assert_eq!(same.deprecated_count, None);
    // A legacy event in the new shape keeps its count as deprecatedCount.
    let claim = v1
        .iter()
        .find(|e| e.reason.as_deref() == Some("WaitForFirstConsumer"))
        .unwrap();
    assert!(claim.deprecated_count.unwrap() > 1000);
    assert!(claim.event_time.is_none());
    // Events about nodes live in default and name no namespace.
    let node = core
        .iter()
        .find(|e| e.involved_object.kind.as_deref() == Some("Node"))
        .unwrap();
    assert_eq!(node.metadata.namespace.as_deref(), Some("default"));
    assert_eq!(node.involved_object.namespace, None);
    assert_eq!(node.involved_object.uid, node.involved_object.name);
    // Warnings about pods replaced by today's restart: no such pod exists.
    let pods: Vec<String> = objects::<Pod>(&w, Res::Pods)
        .into_iter()
        .map(|p| p.metadata.name.unwrap())
        .collect();
    let gone: Vec<_> = core
        .iter()
        .filter(|e| {
            e.type_.as_deref() == Some("Warning") && e.reason.as_deref() == Some("Unhealthy")
        })
        .collect();
    assert_eq!(gone.len(), 3);
    for e in gone {
        assert!(!pods.contains(e.involved_object.name.as_ref().unwrap()));
    }
}

#[test]
fn helm_keeps_history_in_secrets_and_configmaps_in_every_status() {
    let w = world(&[Fault::PendingRelease]);
    let payload = |encoded: &str| -> serde_json::Value {
        let gz = base64::engine::general_purpose::STANDARD
            .decode(encoded)
            .unwrap();
        serde_json::from_reader(flate2::read::GzDecoder::new(&gz[..])).unwrap()
    };
    let latest = |items: Vec<(BTreeMap<String, String>, String)>, name: &str| {
        items
            .into_iter()
            .filter(|(l, _)| l["name"] == name && l["owner"] == "helm")
            .max_by_key(|(l, _)| l["version"].parse::<u32>().unwrap())
            .unwrap()
    };
    let secrets: Vec<_> = objects::<Secret>(&w, Res::Secrets)
        .into_iter()
        .filter(|s| s.type_.as_deref() == Some("helm.sh/release.v1"))
        .map(|s| {
            let data = String::from_utf8(s.data.unwrap()["release"].0.clone()).unwrap();
            (s.metadata.labels.unwrap(), data)
        })
        .collect();
    // uninstall --keep-history: the last revision stays, `uninstalled`, with its time.
    let (l, data) = latest(secrets.clone(), "cache-replay");
    assert_eq!(l["status"], "uninstalled");
    let p = payload(&data);
    assert_eq!(p["info"]["status"], "uninstalled");
    assert_eq!(p["info"]["description"], "Uninstallation complete");
    assert_ne!(p["info"]["deleted"], "");
    // A stale pending-upgrade, hours old, above a deployed revision.
    let (l, data) = latest(secrets, "paragon-monitoring");
    assert_eq!(l["status"], "pending-upgrade");
    assert_eq!(l["modifiedAt"], (NOW - 3 * HOUR).to_string());
    assert_eq!(payload(&data)["info"]["status"], "pending-upgrade");
    // HELM_DRIVER=configmap: the same records as ConfigMaps.
    let cms: Vec<_> = objects::<ConfigMap>(&w, Res::ConfigMaps)
        .into_iter()
        .filter_map(|c| {
            let l = c.metadata.labels?;
            let d = c.data?.get("release")?.clone();
            Some((l, d))
        })
        .collect();
    let (l, data) = latest(cms, "reloader");
    assert_eq!(l["status"], "deployed");
    assert_eq!(payload(&data)["chart"]["metadata"]["name"], "reloader");
}

fn pod_named<'a>(pods: &'a [Pod], prefix: &str) -> Vec<&'a Pod> {
    pods.iter()
        .filter(|p| p.metadata.name.as_deref().unwrap().starts_with(prefix))
        .collect()
}

#[test]
fn pods_carry_init_native_sidecar_and_ephemeral_containers() {
    let w = world(&[]);
    let pods = objects::<Pod>(&w, Res::Pods);
    let prom = pod_named(&pods, "prometheus-0")[0];
    let spec = prom.spec.as_ref().unwrap();
    let inits = spec.init_containers.as_ref().unwrap();
    assert_eq!(inits[0].restart_policy, None);
    assert_eq!(inits[1].restart_policy.as_deref(), Some("Always"));
    let st = prom
        .status
        .as_ref()
        .unwrap()
        .init_container_statuses
        .as_ref()
        .unwrap();
    assert_eq!(
        st[0]
            .state
            .as_ref()
            .unwrap()
            .terminated
            .as_ref()
            .unwrap()
            .reason
            .as_deref(),
        Some("Completed")
    );
    assert!(st[1].ready && st[1].state.as_ref().unwrap().running.is_some());
    let debugged: Vec<_> = pods
        .iter()
        .filter(|p| p.spec.as_ref().unwrap().ephemeral_containers.is_some())
        .collect();
    assert_eq!(debugged.len(), 1);
    let eph = debugged[0]
        .status
        .as_ref()
        .unwrap()
        .ephemeral_container_statuses
        .as_ref()
        .unwrap();
    assert_eq!(
        eph[0]
            .state
            .as_ref()
            .unwrap()
            .terminated
            .as_ref()
            .unwrap()
            .exit_code,
        0
    );
}

#[test]
fn pod_faults_take_the_shapes_the_kubelet_writes() {
    let w = world(&[
        Fault::StuckTerminating,
        Fault::Evicted,
        Fault::FailedPod,
        Fault::ReadinessGate,
        Fault::PostStartHook,
    ]);
    let pods = objects::<Pod>(&w, Res::Pods);
    let terminating = fault_pods(&w, Fault::StuckTerminating);
    assert_eq!(terminating.len(), 1);
    assert_eq!(
        ts(&terminating[0].metadata.deletion_timestamp),
        NOW - 20 * MINUTE + 30
    );
    assert_eq!(
        terminating[0].metadata.deletion_grace_period_seconds,
        Some(30)
    );

    let evicted = fault_pods(&w, Fault::Evicted);
    assert_eq!(evicted.len(), 2);
    let (old, current): (Vec<_>, Vec<_>) = evicted
        .iter()
        .partition(|p| p.status.as_ref().unwrap().reason.is_some());
    let old = old[0].status.as_ref().unwrap();
    assert_eq!(
        (old.phase.as_deref(), old.reason.as_deref()),
        (Some("Failed"), Some("Evicted"))
    );
    assert!(
        old.message
            .as_deref()
            .unwrap()
            .starts_with("The node was low on resource: memory.")
    );
    let current = current[0].status.as_ref().unwrap();
    assert_eq!(current.phase.as_deref(), Some("Failed"));
    let d = cond(&current.conditions, "DisruptionTarget");
    assert_eq!(
        (d.status.as_str(), d.reason.as_deref()),
        ("True", Some("TerminationByKubelet"))
    );

    let failed = fault_pods(&w, Fault::FailedPod);
    let st = failed[0].status.as_ref().unwrap();
    assert_eq!(
        (st.phase.as_deref(), st.reason.as_deref()),
        (Some("Failed"), None)
    );
    let t = st.container_statuses.as_ref().unwrap()[0]
        .state
        .as_ref()
        .unwrap()
        .terminated
        .clone()
        .unwrap();
    assert_eq!((t.reason.as_deref(), t.exit_code), (Some("OOMKilled"), 137));
    assert!(failed[0].metadata.owner_references.is_none());

    let gated = fault_pods(&w, Fault::ReadinessGate);
    let st = gated[0].status.as_ref().unwrap();
    assert_eq!(cond(&st.conditions, "ContainersReady").status, "True");
    let ready = cond(&st.conditions, "Ready");
    assert_eq!(
        (ready.status.as_str(), ready.reason.as_deref()),
        ("False", Some("ReadinessGatesNotReady"))
    );
    assert!(gated[0].spec.as_ref().unwrap().readiness_gates.is_some());

    let hook = fault_pods(&w, Fault::PostStartHook);
    assert!(
        hook[0]
            .metadata
            .name
            .as_deref()
            .unwrap()
            .starts_with("pheme-")
    );
    let waiting = hook[0]
        .status
        .as_ref()
        .unwrap()
        .container_statuses
        .as_ref()
        .unwrap()[0]
        .state
        .as_ref()
        .unwrap()
        .waiting
        .clone()
        .unwrap();
    assert_eq!(waiting.reason.as_deref(), Some("PostStartHookError"));
    assert!(!pod_named(&pods, "report-export-").is_empty());
}

#[test]
fn network_unavailable_fault_sets_the_route_condition() {
    let w = world(&[]);
    for n in objects::<Node>(&w, Res::Nodes) {
        let c = n.status.unwrap().conditions.unwrap();
        let net = c.iter().find(|c| c.type_ == "NetworkUnavailable").unwrap();
        assert_eq!(
            (net.status.as_str(), net.reason.as_deref()),
            ("False", Some("RouteCreated"))
        );
    }
    let w = world(&[Fault::NetworkUnavailable]);
    let bad: Vec<_> = objects::<Node>(&w, Res::Nodes)
        .into_iter()
        .filter(|n| faulted(&n.metadata, Fault::NetworkUnavailable))
        .collect();
    assert_eq!(bad.len(), 1);
    let c = bad[0].status.clone().unwrap().conditions.unwrap();
    let net = c.iter().find(|c| c.type_ == "NetworkUnavailable").unwrap();
    assert_eq!(
        (net.status.as_str(), net.reason.as_deref()),
        ("True", Some("NoRouteCreated"))
    );
    let ready = c.iter().find(|c| c.type_ == "Ready").unwrap();
    assert_eq!(ready.status, "True");
}

#[test]
fn hand_imported_certificates_have_text_or_blank_lines_before_the_pem() {
    let w = world(&[]);
    let cert = |name: &str| {
        let s = objects::<Secret>(&w, Res::Secrets)
            .into_iter()
            .find(|s| s.metadata.name.as_deref() == Some(name))
            .unwrap();
        assert_eq!(s.type_.as_deref(), Some("kubernetes.io/tls"));
        String::from_utf8(s.data.unwrap()["tls.crt"].0.clone()).unwrap()
    };
    let grafana = cert("grafana-tls");
    assert!(
        grafana.starts_with("Bag Attributes\n    localKeyID: "),
        "{grafana}"
    );
    let pem = &grafana[grafana.find("-----BEGIN CERTIFICATE-----").unwrap()..];
    assert!(not_after(pem) > NOW + 199 * DAY);
    let kibana = cert("kibana-tls");
    assert!(
        kibana.starts_with("\n\n-----BEGIN CERTIFICATE-----"),
        "{kibana:?}"
    );
    assert!(not_after(kibana.trim_start()) > NOW + 149 * DAY);
}
