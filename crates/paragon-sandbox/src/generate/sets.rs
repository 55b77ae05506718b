//! StatefulSets (with their volume claims) and DaemonSets, and the pods each owns, as their
//! controllers report them. Deployments and ReplicaSets are in `workloads`.

use k8s_openapi::api::apps::v1::{
    DaemonSet, DaemonSetSpec, DaemonSetStatus, StatefulSet, StatefulSetSpec, StatefulSetStatus,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;

use super::pods::{Extra, PodPlan, PodState, Terminated};
use super::storage::PvcPlan;
use super::tables::Workload;
use super::{DAY, Gen, labels, s, selector_text};
use crate::SandboxError;
use crate::store::{Cell, Res};

impl Gen<'_> {
    pub(super) fn statefulset(&mut self, w: &Workload) -> Result<(), SandboxError> {
        let created = self.installed + self.rng.range(0, 300);
        let pods_created = self.now - self.rng.range(6 * DAY, 20 * DAY);
        let sel = Self::workload_labels(w);
        let mut meta = self.meta(Some(w.namespace), w.name, Some(sel.clone()), created);
        Self::helm_meta(&mut meta, w);
        meta.generation = Some(1);
        let owner = Self::owner::<StatefulSet>(w.name, &meta);
        let revision = format!("{}-{}", w.name, self.rng.suffix(10));
        let storage = w.storage.unwrap_or("10Gi");
        for i in 0..w.replicas {
            let name = format!("{}-{i}", w.name);
            let claim = format!("data-{name}");
            self.pvc(PvcPlan {
                namespace: w.namespace,
                name: &claim,
                labels: &sel,
                size: storage,
                class: "gp3",
                created: created + 5,
                bound: true,
                fault: None,
            })?;
            let mut l = sel.clone();
            l.insert("apps.kubernetes.io/pod-index".into(), i.to_string());
            l.insert("controller-revision-hash".into(), revision.clone());
            l.insert("statefulset.kubernetes.io/pod-name".into(), name.clone());
            // prometheus restarted twice, days ago: a clean cluster's restarts are old ones
            let state = if w.name == "prometheus" && i == 0 {
                PodState::Ready {
                    restarts: 2,
                    last: Some(Terminated {
                        reason: "Error",
                        exit_code: 1,
                        started: pods_created + 10,
                        finished: pods_created + 2 * DAY,
                    }),
                }
            } else {
                PodState::Ready {
                    restarts: 0,
                    last: None,
                }
            };
            let node = self.take_node();
            self.pod(PodPlan {
                w,
                name,
                labels: l,
                owner: owner.clone(),
                node: Some(node),
                created: pods_created,
                state,
                fault: None,
                image: w.image.clone(),
                memory: w.memory,
                restart_policy: "Always",
                claim: Some(claim),
                // prometheus-operator runs its config-reloader as a native sidecar
                extra: if w.name == "prometheus" {
                    Extra::Sidecars
                } else {
                    Extra::None
                },
            })?;
        }
        let r = w.replicas as i32;
        let cells = vec![
            Cell::text(w.name),
            Cell::text(format!("{r}/{r}")),
            Cell::Age(created),
            Cell::text(w.name),
            Cell::text(w.image.as_str()),
        ];
        let template = self.pod_template(w, &sel, &w.image, w.memory);
        let sts = StatefulSet {
            metadata: meta,
            spec: Some(StatefulSetSpec {
                replicas: Some(r),
                selector: LabelSelector {
                    match_labels: Some(sel),
                    match_expressions: None,
                },
                service_name: s(w.name),
                template,
                pod_management_policy: s("OrderedReady"),
                revision_history_limit: Some(10),
                ..Default::default()
            }),
            status: Some(StatefulSetStatus {
                replicas: r,
                ready_replicas: Some(r),
                available_replicas: Some(r),
                current_replicas: Some(r),
                updated_replicas: Some(r),
                current_revision: s(revision.clone()),
                update_revision: s(revision),
                observed_generation: Some(1),
                collision_count: Some(0),
                ..Default::default()
            }),
        };
        self.push(Res::StatefulSets, sts, vec![], cells)
    }

    pub(super) fn daemonset(&mut self, w: &Workload) -> Result<(), SandboxError> {
        let created = self.installed + self.rng.range(0, 300);
        let sel = Self::workload_labels(w);
        let mut meta = self.meta(Some(w.namespace), w.name, Some(sel.clone()), created);
        Self::helm_meta(&mut meta, w);
        meta.generation = Some(1);
        let owner = Self::owner::<DaemonSet>(w.name, &meta);
        let revision = self.rng.suffix(10);
        for node in 0..self.nodes.len() {
            let mut l = sel.clone();
            l.insert("controller-revision-hash".into(), revision.clone());
            l.insert("pod-template-generation".into(), "1".into());
            let name = format!("{}-{}", w.name, self.rng.suffix(5));
            let node_created = self.nodes[node].created;
            let created = node_created.max(created) + self.rng.range(20, 120);
            self.pod(PodPlan {
                w,
                name,
                labels: l,
                owner: owner.clone(),
                node: Some(node),
                created,
                state: PodState::Ready {
                    restarts: 0,
                    last: None,
                },
                fault: None,
                image: w.image.clone(),
                memory: w.memory,
                restart_policy: "Always",
                claim: None,
                extra: Extra::None,
            })?;
        }
        let n = self.nodes.len() as i32;
        let cells = vec![
            Cell::text(w.name),
            Cell::Int(i64::from(n)),
            Cell::Int(i64::from(n)),
            Cell::Int(i64::from(n)),
            Cell::Int(i64::from(n)),
            Cell::Int(i64::from(n)),
            Cell::text("kubernetes.io/os=linux"),
            Cell::Age(created),
            Cell::text(w.name),
            Cell::text(w.image.as_str()),
            Cell::text(selector_text(&sel)),
        ];
        let mut template = self.pod_template(w, &sel, &w.image, w.memory);
        if let Some(spec) = template.spec.as_mut() {
            spec.node_selector = Some(labels(&[("kubernetes.io/os", "linux")]));
        }
        let ds = DaemonSet {
            metadata: meta,
            spec: Some(DaemonSetSpec {
                selector: LabelSelector {
                    match_labels: Some(sel),
                    match_expressions: None,
                },
                template,
                revision_history_limit: Some(10),
                ..Default::default()
            }),
            status: Some(DaemonSetStatus {
                desired_number_scheduled: n,
                current_number_scheduled: n,
                number_ready: n,
                number_available: Some(n),
                updated_number_scheduled: Some(n),
                number_misscheduled: 0,
                observed_generation: Some(1),
                ..Default::default()
            }),
        };
        self.push(Res::DaemonSets, ds, vec![], cells)
    }
}
