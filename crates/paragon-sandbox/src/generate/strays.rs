//! Pods no Deployment keeps running: a pod held by a scheduling gate (Kueue's admission gate,
//! in the default world), pods the kubelet evicted (the `evicted` fault, both shapes) and a
//! bare pod that died of an OOM kill (the `failed-pod` fault).

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;

use super::pods::{Extra, PodPlan, PodState};
use super::tables::{Shape, Workload};
use super::{Gen, MINUTE, PARAGON, has, labels};
use crate::{Fault, SandboxError};

impl Gen<'_> {
    pub(super) fn stray_pods(&mut self) -> Result<(), SandboxError> {
        let batch = Workload {
            namespace: PARAGON,
            release: "",
            name: "report-export",
            shape: Shape::Deployment,
            replicas: 1,
            image: format!("docker.io/useparagon/worker-workflows:{}", self.app_version),
            port: 8080,
            probe: None,
            cpu: "500m",
            memory: "1Gi",
            storage: None,
        };
        // A batch pod waiting for Kueue to admit it: pending on purpose.
        let name = format!("report-export-{}", self.rng.suffix(5));
        let l = labels(&[("kueue.x-k8s.io/queue-name", "paragon-batch")]);
        self.stray(
            &batch,
            name,
            l,
            PodState::SchedulingGated,
            None,
            self.now - 8 * MINUTE,
        )?;

        if has(self.opts, Fault::Evicted) {
            let proxy = Workload {
                name: "worker-proxy",
                release: "paragon-on-prem",
                image: format!("docker.io/useparagon/worker-proxy:{}", self.app_version),
                ..batch.clone()
            };
            for (age, current) in [(35, false), (30, true)] {
                let name = format!(
                    "worker-proxy-{}-{}",
                    self.rng.suffix(10),
                    self.rng.suffix(5)
                );
                let at = self.now - age * MINUTE;
                let l = labels(&[
                    ("app.kubernetes.io/instance", "paragon-on-prem"),
                    ("app.kubernetes.io/name", "worker-proxy"),
                ]);
                self.stray(
                    &proxy,
                    name,
                    l,
                    PodState::Evicted { at, current },
                    Some(Fault::Evicted),
                    at - 3 * 60 * MINUTE,
                )?;
            }
        }
        if has(self.opts, Fault::FailedPod) {
            let backup = Workload {
                name: "paragon-db-backup",
                image: "docker.io/library/postgres:16".into(),
                ..batch
            };
            let l = labels(&[("run", "paragon-db-backup")]);
            let at = self.now - 15 * MINUTE;
            self.stray(
                &backup,
                "paragon-db-backup".into(),
                l,
                PodState::FailedOom { at },
                Some(Fault::FailedPod),
                at - 10 * MINUTE,
            )?;
        }
        Ok(())
    }

    fn stray(
        &mut self,
        w: &Workload,
        name: String,
        labels: BTreeMap<String, String>,
        state: PodState,
        fault: Option<Fault>,
        created: i64,
    ) -> Result<(), SandboxError> {
        let node = match state {
            PodState::SchedulingGated => None,
            _ => Some(self.take_node()),
        };
        let restart_policy = match state {
            PodState::Evicted { .. } => "Always",
            _ => "Never",
        };
        // Evicted pods still name their ReplicaSet; the others are bare pods.
        let owner = match state {
            PodState::Evicted { .. } => OwnerReference {
                api_version: "apps/v1".into(),
                kind: "ReplicaSet".into(),
                name: name
                    .rsplit_once('-')
                    .map_or(name.clone(), |(rs, _)| rs.to_string()),
                uid: self.rng.uid(),
                controller: Some(true),
                block_owner_deletion: Some(true),
            },
            _ => OwnerReference::default(),
        };
        self.pod(PodPlan {
            w,
            name,
            labels,
            owner,
            node,
            created,
            state,
            fault,
            image: w.image.clone(),
            memory: w.memory,
            restart_policy,
            claim: None,
            extra: Extra::None,
        })?;
        Ok(())
    }
}
