//! Generating the installation from a seed: every object built once as a k8s-openapi type,
//! turned into a table row and serialized straight into the store, so the world exists in
//! one copy. What is generated, and what each fault changes, is documented in `mod.rs` and on
//! `Fault`. This module holds the generator's state and the order of generation; one room per
//! kind of object builds them, and `tables` holds what is data (services, ports, releases).
//! It knows nothing of serving: the store and the server take the world as it is.

mod config;
mod events;
mod helm;
mod jobs;
mod nodes;
mod pod_state;
mod pods;
mod services;
mod sets;
mod storage;
mod strays;
mod tables;
#[cfg(test)]
mod tests;
mod workloads;

use std::collections::BTreeMap;

use k8s_openapi::Metadata;
use k8s_openapi::Resource;
use k8s_openapi::api::core::v1::{Namespace, NamespaceSpec, NamespaceStatus};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference, Time};
use serde::Serialize;

use super::rng::Rng;
use super::store::{Cell, Entry, Res, World};
use super::{FAULT_ANNOTATION, Fault, SandboxError, SandboxOptions};
use tables::{Shape, workloads};

pub use tables::natural_pod_count;

const MINUTE: i64 = 60;
const HOUR: i64 = 3600;
const DAY: i64 = 86_400;

/// The namespace everything of Paragon lives in.
pub(crate) const PARAGON: &str = "paragon";
const INSTANCE: &str = "app.kubernetes.io/instance";
const APP_NAME: &str = "app.kubernetes.io/name";

fn s(v: impl Into<String>) -> Option<String> {
    Some(v.into())
}

fn time(unix: i64) -> Option<Time> {
    jiff::Timestamp::from_second(unix).ok().map(Time)
}

fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn quantities(pairs: &[(&str, &str)]) -> BTreeMap<String, Quantity> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), Quantity(v.to_string())))
        .collect()
}

fn fault_annotations(fault: Option<Fault>) -> Option<BTreeMap<String, String>> {
    fault.map(|f| labels(&[(FAULT_ANNOTATION, f.name())]))
}

fn selector_text(l: &BTreeMap<String, String>) -> String {
    l.iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(",")
}

/// A node as pods see it.
#[derive(Debug, Clone)]
struct NodeInfo {
    name: String,
    ip: String,
    created: i64,
}

struct Gen<'a> {
    opts: &'a SandboxOptions,
    rng: Rng,
    now: i64,
    resource_version: u64,
    tables: Vec<Vec<Entry>>,
    nodes: Vec<NodeInfo>,
    next_node: usize,
    next_pod_ip: u32,
    next_service_ip: u32,
    /// Daily rollout restart of the Paragon services (the restart CronJob, 14:00 UTC).
    restart: i64,
    /// When the installation was first deployed.
    installed: i64,
    app_version: String,
    /// Pod names of some services, for the events that mention them.
    first_pods: BTreeMap<&'static str, FirstPod>,
    /// The ReplicaSet hash each Paragon service had before today's restart.
    replaced: BTreeMap<&'static str, String>,
    /// The pods some faults made (name, uid), for the events about them.
    fault_pods: BTreeMap<Fault, (String, String)>,
}

/// The first pod of a Deployment's current ReplicaSet.
#[derive(Debug, Clone)]
struct FirstPod {
    name: String,
    uid: String,
    ip: String,
    node: String,
    created: i64,
}

fn has(opts: &SandboxOptions, f: Fault) -> bool {
    opts.faults.contains(&f)
}

/// Generates the whole world.
pub(crate) fn generate(
    opts: &SandboxOptions,
    now: i64,
    cluster_ca_pem: &str,
) -> Result<World, SandboxError> {
    if opts.nodes == 0 {
        return Err(SandboxError::NoNodes);
    }
    let natural = natural_pod_count(opts.nodes);
    if opts.pods != 0 && opts.pods < natural {
        return Err(SandboxError::TooFewPods {
            asked: opts.pods,
            min: natural,
            nodes: opts.nodes,
        });
    }
    let mut rng = Rng::new(opts.seed);
    let app_version = format!("2025.{}.{}", 1 + rng.below(12), rng.range(1, 28));
    let mut all = workloads(&app_version);
    let extra = opts.pods.saturating_sub(natural);
    let workers: Vec<usize> = all
        .iter()
        .enumerate()
        .filter(|(_, w)| w.release == "paragon-on-prem" && w.name.starts_with("worker-"))
        .map(|(i, _)| i)
        .collect();
    for i in 0..extra {
        all[workers[i % workers.len()]].replicas += 1;
    }

    // The last 14:00 UTC at least ten minutes ago.
    let today = now - now.rem_euclid(DAY) + 14 * HOUR;
    let restart = if today <= now - 10 * MINUTE {
        today
    } else {
        today - DAY
    };
    let mut g = Gen {
        opts,
        now,
        resource_version: 1000 + rng.below(1_000_000),
        tables: (0..super::store::ALL.len()).map(|_| Vec::new()).collect(),
        nodes: Vec::new(),
        next_node: 0,
        next_pod_ip: 0,
        next_service_ip: 0,
        restart,
        installed: now - rng.range(120, 200) * DAY,
        first_pods: BTreeMap::new(),
        replaced: BTreeMap::new(),
        fault_pods: BTreeMap::new(),
        app_version: app_version.clone(),
        rng,
    };
    g.next_node = g.rng.below(opts.nodes as u64) as usize;
    g.namespaces()?;
    g.nodes()?;
    for w in &all {
        match w.shape {
            Shape::Deployment => g.deployment(w)?,
            Shape::StatefulSet => g.statefulset(w)?,
            Shape::DaemonSet => g.daemonset(w)?,
        }
        if w.name != "kube-proxy" && w.name != "fluent-bit" {
            g.service(w)?;
        }
    }
    g.cluster_services()?;
    g.restart_cronjob()?;
    if has(opts, Fault::MigrationFailed) {
        g.failed_migration()?;
    }
    g.helm_releases(&app_version)?;
    g.tls_secrets()?;
    g.config(cluster_ca_pem, &all)?;
    g.fault_pvc()?;
    g.warning_events()?;
    g.storage_classes()?;
    g.waiting_claim()?;
    g.node_events()?;
    g.replaced_pod_events()?;
    g.scheduler_events()?;
    g.stray_pods()?;
    let rv = g.resource_version + 1;
    Ok(World::new(rv, g.tables))
}

impl Gen<'_> {
    fn push<K>(
        &mut self,
        res: Res,
        obj: K,
        fields: Vec<String>,
        cells: Vec<Cell>,
    ) -> Result<(), SandboxError>
    where
        K: Metadata<Ty = ObjectMeta> + Serialize,
    {
        let e = Entry::new(res, obj, fields, cells)
            .map_err(|e| SandboxError::Generate(e.to_string()))?;
        self.tables[res as usize].push(e);
        Ok(())
    }

    fn meta(
        &mut self,
        namespace: Option<&str>,
        name: &str,
        labels: Option<BTreeMap<String, String>>,
        created: i64,
    ) -> ObjectMeta {
        self.resource_version += 1;
        ObjectMeta {
            name: s(name),
            namespace: namespace.map(str::to_string),
            uid: s(self.rng.uid()),
            resource_version: s(self.resource_version.to_string()),
            creation_timestamp: time(created),
            labels,
            ..Default::default()
        }
    }

    fn pod_ip(&mut self) -> String {
        let n = self.next_pod_ip;
        self.next_pod_ip += 1;
        // 10.1.0.0/16 onwards, skipping .0 and .255 of each /24.
        let host = n % 254 + 1;
        let net = n / 254;
        format!("10.{}.{}.{host}", 1 + net / 256 % 254, net % 256)
    }

    fn take_node(&mut self) -> usize {
        let n = self.next_node % self.nodes.len();
        self.next_node += 1;
        n
    }

    fn namespaces(&mut self) -> Result<(), SandboxError> {
        for name in [
            "default",
            "kube-system",
            "kube-public",
            "kube-node-lease",
            PARAGON,
        ] {
            let created = if name == PARAGON {
                self.installed
            } else {
                self.installed - DAY
            };
            let meta = self.meta(
                None,
                name,
                Some(labels(&[("kubernetes.io/metadata.name", name)])),
                created,
            );
            let ns = Namespace {
                metadata: meta,
                spec: Some(NamespaceSpec {
                    finalizers: Some(vec!["kubernetes".into()]),
                }),
                status: Some(NamespaceStatus {
                    phase: s("Active"),
                    ..Default::default()
                }),
            };
            self.push(
                Res::Namespaces,
                ns,
                vec!["Active".into()],
                vec![Cell::text(name), Cell::text("Active"), Cell::Age(created)],
            )?;
        }
        Ok(())
    }

    fn owner<K: Resource>(name: &str, meta: &ObjectMeta) -> OwnerReference {
        OwnerReference {
            api_version: K::API_VERSION.into(),
            kind: K::KIND.into(),
            name: name.into(),
            uid: meta.uid.clone().unwrap_or_default(),
            controller: Some(true),
            block_owner_deletion: Some(true),
        }
    }
}
