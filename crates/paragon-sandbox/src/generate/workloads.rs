//! Deployments, with their ReplicaSets and rollouts, and the pods each owns, as the
//! deployment controller reports them. StatefulSets and DaemonSets are in `sets`.

use std::collections::BTreeMap;

use k8s_openapi::Resource;
use k8s_openapi::api::apps::v1::{
    Deployment, DeploymentCondition, DeploymentSpec, DeploymentStatus, DeploymentStrategy,
    ReplicaSet, ReplicaSetSpec, ReplicaSetStatus, RollingUpdateDeployment,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, OwnerReference};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::events::{EventPlan, Involved};
use super::pods::{Extra, PodPlan, PodState, Terminated};
use super::tables::Workload;
use super::{
    DAY, FAULT_ANNOTATION, FirstPod, Gen, HOUR, MINUTE, has, labels, s, selector_text, time,
};
use crate::store::{Cell, Res};
use crate::{Fault, SandboxError};

/// A ReplicaSet of a Deployment: its pod-template hash, revision and replica counts.
struct RsPlan<'a> {
    w: &'a Workload,
    owner: &'a OwnerReference,
    hash: &'a str,
    created: i64,
    revision: i32,
    replicas: usize,
    ready: usize,
    fault: Option<Fault>,
}

impl Gen<'_> {
    pub(super) fn deployment(&mut self, w: &Workload) -> Result<(), SandboxError> {
        let paragon = w.release == "paragon-on-prem";
        // Paragon's services are rollout-restarted daily; the rest was last changed with its
        // release or the cluster.
        let (pods_created, revision) = if paragon {
            (
                self.restart,
                ((self.restart - self.installed) / DAY + 3) as i32,
            )
        } else {
            (
                self.now - self.rng.range(9 * DAY, 30 * DAY),
                2 + self.rng.below(4) as i32,
            )
        };
        let rollout = match w.name {
            "worker-actions" if paragon && has(self.opts, Fault::CrashLoop) => {
                Some(Fault::CrashLoop)
            }
            "hermes" if paragon && has(self.opts, Fault::ImagePull) => Some(Fault::ImagePull),
            "zeus" if paragon && has(self.opts, Fault::Pending) => Some(Fault::Pending),
            "pheme" if paragon && has(self.opts, Fault::PostStartHook) => {
                Some(Fault::PostStartHook)
            }
            _ => None,
        };
        let unavailable =
            paragon && w.name == "passport" && has(self.opts, Fault::DeploymentUnavailable);
        let oom = paragon && w.name == "worker-workflows" && has(self.opts, Fault::OomKilled);

        let sel = Self::workload_labels(w);
        let mut dmeta = self.meta(Some(w.namespace), w.name, Some(sel.clone()), self.installed);
        Self::helm_meta(&mut dmeta, w);
        let generation = i64::from(revision) + if rollout.is_some() { 1 } else { 0 };
        dmeta.generation = Some(generation);
        let a = dmeta.annotations.get_or_insert_with(BTreeMap::new);
        a.insert(
            "deployment.kubernetes.io/revision".into(),
            (revision + i32::from(rollout.is_some())).to_string(),
        );
        if let Some(f) = rollout.or(unavailable.then_some(Fault::DeploymentUnavailable)) {
            a.insert(FAULT_ANNOTATION.into(), f.name().into());
        }
        let deploy_owner = Self::owner::<Deployment>(w.name, &dmeta);
        let deploy_ref = Involved {
            kind: Deployment::KIND,
            api_version: Deployment::API_VERSION,
            namespace: w.namespace,
            name: w.name.to_string(),
            uid: deploy_owner.uid.clone(),
        };
        let replicas = w.replicas;

        // ReplicaSets: yesterday's (scaled to 0), the current one, and a new one mid-rollout.
        let hash = self.rng.suffix(10);
        let old_hash = self.rng.suffix(10);
        if paragon {
            self.replaced.insert(w.name, old_hash.clone());
        }
        let new_hash = self.rng.suffix(10);
        let rs_created = pods_created - 2;
        let mut rs_labels = sel.clone();
        rs_labels.insert("pod-template-hash".into(), hash.clone());
        let ready = if unavailable { 0 } else { replicas };
        self.replicaset(RsPlan {
            w,
            owner: &deploy_owner,
            hash: &old_hash,
            created: rs_created - DAY,
            revision: revision - 1,
            replicas: 0,
            ready: 0,
            fault: None,
        })?;
        let rs_owner = self.replicaset(RsPlan {
            w,
            owner: &deploy_owner,
            hash: &hash,
            created: rs_created,
            revision,
            replicas,
            ready,
            fault: unavailable.then_some(Fault::DeploymentUnavailable),
        })?;

        let mut names: Vec<String> = (0..replicas)
            .map(|_| format!("{}-{hash}-{}", w.name, self.rng.suffix(5)))
            .collect();
        names.sort();
        for (i, name) in names.iter().enumerate() {
            let node = self.take_node();
            let created = pods_created + self.rng.range(5, 90);
            let (state, fault) = if unavailable {
                (
                    PodState::NotReady {
                        since: self.now - 15 * MINUTE,
                    },
                    Some(Fault::DeploymentUnavailable),
                )
            } else if oom && i == 0 {
                let finished = self.now - 12 * MINUTE;
                (
                    PodState::Ready {
                        restarts: 1,
                        last: Some(Terminated {
                            reason: "OOMKilled",
                            exit_code: 137,
                            started: created + 6,
                            finished,
                        }),
                    },
                    Some(Fault::OomKilled),
                )
            } else {
                (
                    PodState::Ready {
                        restarts: 0,
                        last: None,
                    },
                    None,
                )
            };
            let (extra, fault) = match (w.name, i) {
                ("worker-crons", 0) if paragon && has(self.opts, Fault::StuckTerminating) => (
                    Extra::Terminating(self.now - 20 * MINUTE),
                    Some(Fault::StuckTerminating),
                ),
                ("ingress-nginx-controller", 0) if has(self.opts, Fault::ReadinessGate) => (
                    Extra::ReadinessGate(self.now - 10 * MINUTE),
                    Some(Fault::ReadinessGate),
                ),
                // someone ran `kubectl debug` on a cerberus pod two hours ago
                ("cerberus", 0) if paragon => (Extra::Ephemeral(self.now - 2 * HOUR), fault),
                _ => (Extra::None, fault),
            };
            let (uid, ip) = self.pod(PodPlan {
                w,
                name: name.clone(),
                labels: rs_labels.clone(),
                owner: rs_owner.clone(),
                node: Some(node),
                created,
                state,
                fault,
                image: w.image.clone(),
                memory: w.memory,
                restart_policy: "Always",
                claim: None,
                extra,
            })?;
            if i == 0 {
                let node = self.nodes[node].name.clone();
                self.first_pods.insert(
                    w.name,
                    FirstPod {
                        name: name.clone(),
                        uid,
                        ip,
                        node,
                        created,
                    },
                );
            }
        }

        if let Some(f) = rollout {
            self.rollout_pod(w, f, &deploy_owner, &new_hash, revision)?;
        }

        let r = replicas as i32;
        let surge = i32::from(rollout.is_some());
        let current_rs = if rollout.is_some() { &new_hash } else { &hash };
        let transition = pods_created + 100;
        let cond = |t: &str, ok: bool, reason: &str, message: String, at: i64, update: i64| {
            DeploymentCondition {
                type_: t.into(),
                status: if ok { "True" } else { "False" }.into(),
                reason: s(reason),
                message: s(message),
                last_transition_time: time(at),
                last_update_time: time(update),
            }
        };
        let rs_name = format!("{}-{current_rs}", w.name);
        let available_cond = if unavailable {
            cond(
                "Available",
                false,
                "MinimumReplicasUnavailable",
                "Deployment does not have minimum availability.".into(),
                self.now - 15 * MINUTE,
                self.now - 15 * MINUTE,
            )
        } else {
            cond(
                "Available",
                true,
                "MinimumReplicasAvailable",
                "Deployment has minimum availability.".into(),
                self.installed + 120,
                self.installed + 120,
            )
        };
        let progressing = if rollout.is_some() {
            cond(
                "Progressing",
                true,
                "ReplicaSetUpdated",
                format!("ReplicaSet \"{rs_name}\" is progressing."),
                self.installed + 60,
                self.now - 60,
            )
        } else {
            cond(
                "Progressing",
                true,
                "NewReplicaSetAvailable",
                format!("ReplicaSet \"{rs_name}\" has successfully progressed."),
                self.installed + 60,
                transition,
            )
        };
        let nz = |v: i32| (v != 0).then_some(v);
        let status = DeploymentStatus {
            observed_generation: Some(generation),
            replicas: Some(r + surge),
            updated_replicas: Some(if rollout.is_some() { 1 } else { r }),
            ready_replicas: nz(ready as i32),
            available_replicas: nz(ready as i32),
            unavailable_replicas: nz(r + surge - ready as i32),
            conditions: Some(vec![available_cond, progressing]),
            ..Default::default()
        };
        let template = self.pod_template(w, &sel, &w.image, w.memory);
        let cells = vec![
            Cell::text(w.name),
            Cell::text(format!("{ready}/{r}")),
            Cell::Int(i64::from(status.updated_replicas.unwrap_or(0))),
            Cell::Int(i64::from(status.available_replicas.unwrap_or(0))),
            Cell::Age(self.installed),
            Cell::text(w.name),
            Cell::text(w.image.as_str()),
            Cell::text(selector_text(&sel)),
        ];
        let d = Deployment {
            metadata: dmeta,
            spec: Some(DeploymentSpec {
                replicas: Some(r),
                selector: LabelSelector {
                    match_labels: Some(sel.clone()),
                    match_expressions: None,
                },
                template,
                strategy: Some(DeploymentStrategy {
                    type_: s("RollingUpdate"),
                    rolling_update: Some(RollingUpdateDeployment {
                        max_surge: Some(IntOrString::String("25%".into())),
                        max_unavailable: Some(IntOrString::String("25%".into())),
                    }),
                }),
                revision_history_limit: Some(10),
                progress_deadline_seconds: Some(600),
                ..Default::default()
            }),
            status: Some(status),
        };
        self.push(Res::Deployments, d, vec![], cells)?;
        if paragon {
            self.event(EventPlan {
                about: &deploy_ref,
                reason: "ScalingReplicaSet",
                message: &format!("Scaled up replica set {}-{hash} from 0 to {r}", w.name),
                type_: "Normal",
                component: "deployment-controller",
                first: pods_created,
                last: pods_created,
                count: 1,
                fault: None,
            })?;
        }
        Ok(())
    }

    /// Makes a ReplicaSet of Deployment `w`; returns the owner reference its pods carry.
    fn replicaset(&mut self, p: RsPlan<'_>) -> Result<OwnerReference, SandboxError> {
        let RsPlan {
            w,
            owner,
            hash,
            created,
            revision,
            replicas,
            ready,
            fault,
        } = p;
        let name = format!("{}-{hash}", w.name);
        let sel = Self::workload_labels(w);
        let mut l = sel.clone();
        l.insert("pod-template-hash".into(), hash.to_string());
        let mut meta = self.meta(Some(w.namespace), &name, Some(l.clone()), created);
        meta.owner_references = Some(vec![owner.clone()]);
        meta.generation = Some(if replicas == 0 { 2 } else { 1 });
        let mut a = labels(&[
            (
                "deployment.kubernetes.io/desired-replicas",
                &w.replicas.to_string(),
            ),
            (
                "deployment.kubernetes.io/max-replicas",
                &(w.replicas + w.replicas.div_ceil(4)).to_string(),
            ),
            ("deployment.kubernetes.io/revision", &revision.to_string()),
        ]);
        if let Some(f) = fault {
            a.insert(FAULT_ANNOTATION.into(), f.name().into());
        }
        meta.annotations = Some(a);
        let reference = Self::owner::<ReplicaSet>(&name, &meta);
        let (r, ready) = (replicas as i32, ready as i32);
        let nz = |v: i32| (v != 0).then_some(v);
        let template = self.pod_template(w, &l, &w.image, w.memory);
        let cells = vec![
            Cell::text(name.as_str()),
            Cell::Int(i64::from(r)),
            Cell::Int(i64::from(r)),
            Cell::Int(i64::from(ready)),
            Cell::Age(created),
            Cell::text(w.name),
            Cell::text(w.image.as_str()),
            Cell::text(selector_text(&l)),
        ];
        let rs = ReplicaSet {
            metadata: meta,
            spec: Some(ReplicaSetSpec {
                replicas: Some(r),
                selector: LabelSelector {
                    match_labels: Some(l),
                    match_expressions: None,
                },
                template: Some(template),
                min_ready_seconds: None,
            }),
            status: Some(ReplicaSetStatus {
                replicas: r,
                fully_labeled_replicas: nz(r),
                ready_replicas: nz(ready),
                available_replicas: nz(ready),
                observed_generation: Some(if replicas == 0 { 2 } else { 1 }),
                ..Default::default()
            }),
        };
        self.push(Res::ReplicaSets, rs, vec![r.to_string()], cells)?;
        Ok(reference)
    }

    fn rollout_pod(
        &mut self,
        w: &Workload,
        f: Fault,
        deploy_owner: &OwnerReference,
        new_hash: &str,
        revision: i32,
    ) -> Result<(), SandboxError> {
        let sel = Self::workload_labels(w);
        let (image, memory, state, age) = match f {
            Fault::CrashLoop => (w.image.clone(), w.memory, PodState::CrashLoop, 40 * MINUTE),
            Fault::PostStartHook => (
                w.image.clone(),
                w.memory,
                PodState::PostStartHook,
                15 * MINUTE,
            ),
            Fault::ImagePull => {
                let tag = format!("{}-rc{}", w.image, 1 + self.rng.below(5));
                (tag, w.memory, PodState::ImagePull, 20 * MINUTE)
            }
            _ => {
                let n = self.nodes.len();
                let message = format!(
                    "0/{n} nodes are available: {n} Insufficient memory. preemption: 0/{n} nodes are available: {n} No preemption victims found for incoming pod."
                );
                (
                    w.image.clone(),
                    "48Gi",
                    PodState::Unschedulable(message),
                    25 * MINUTE,
                )
            }
        };
        let created = self.now - age;
        let rs_owner = self.replicaset(RsPlan {
            w,
            owner: deploy_owner,
            hash: new_hash,
            created: created - 1,
            revision: revision + 1,
            replicas: 1,
            ready: 0,
            fault: Some(f),
        })?;
        let mut l = sel.clone();
        l.insert("pod-template-hash".into(), new_hash.to_string());
        let node = if matches!(state, PodState::Unschedulable(_)) {
            None
        } else {
            Some(self.take_node())
        };
        let name = format!("{}-{new_hash}-{}", w.name, self.rng.suffix(5));
        let (uid, _) = self.pod(PodPlan {
            w,
            name: name.clone(),
            labels: l,
            owner: rs_owner,
            node,
            created,
            state,
            fault: Some(f),
            image,
            memory,
            restart_policy: "Always",
            claim: None,
            extra: Extra::None,
        })?;
        self.fault_pods.insert(f, (name, uid));
        Ok(())
    }
}
