//! The served resource kinds: what discovery says about each (group, plural, short names,
//! scope), its table columns and its selectable fields. Data only: no objects, no serving.

use super::columns::{
    CONFIGMAP_COLUMNS, CRONJOB_COLUMNS, Column, DAEMONSET_COLUMNS, DEPLOYMENT_COLUMNS,
    EVENT_COLUMNS, JOB_COLUMNS, NAMESPACE_COLUMNS, NODE_COLUMNS, POD_COLUMNS, PVC_COLUMNS,
    REPLICASET_COLUMNS, SECRET_COLUMNS, SERVICE_COLUMNS, STATEFULSET_COLUMNS, STORAGECLASS_COLUMNS,
};

/// A served resource kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Res {
    Namespaces,
    Nodes,
    Pods,
    Events,
    PersistentVolumeClaims,
    Secrets,
    ConfigMaps,
    Services,
    Deployments,
    StatefulSets,
    DaemonSets,
    ReplicaSets,
    Jobs,
    CronJobs,
    StorageClasses,
    /// `events.k8s.io/v1` Events: the same events as `Events`, in the new shape.
    EventsV1,
}

pub(crate) const ALL: [Res; 16] = [
    Res::Namespaces,
    Res::Nodes,
    Res::Pods,
    Res::Events,
    Res::PersistentVolumeClaims,
    Res::Secrets,
    Res::ConfigMaps,
    Res::Services,
    Res::Deployments,
    Res::StatefulSets,
    Res::DaemonSets,
    Res::ReplicaSets,
    Res::Jobs,
    Res::CronJobs,
    Res::StorageClasses,
    Res::EventsV1,
];

/// What discovery says about a kind, its table columns and its selectable fields.
#[derive(Debug)]
pub(crate) struct Kind {
    pub group: &'static str,
    pub version: &'static str,
    pub plural: &'static str,
    pub singular: &'static str,
    pub kind: &'static str,
    pub short_names: &'static [&'static str],
    pub namespaced: bool,
    pub columns: &'static [Column],
    /// Field-selector labels beyond `metadata.name` and `metadata.namespace`, in the order
    /// of `Entry::fields`.
    pub fields: &'static [&'static str],
}

impl Kind {
    pub(crate) fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.to_string()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }
}

/// Field-selector labels the real API server supports for pods, in `Entry::fields` order.
pub(crate) const POD_FIELDS: &[&str] = &[
    "spec.nodeName",
    "spec.restartPolicy",
    "spec.schedulerName",
    "spec.serviceAccountName",
    "status.phase",
    "status.podIP",
    "status.nominatedNodeName",
];
pub(crate) const NODE_FIELDS: &[&str] = &["spec.unschedulable"];
pub(crate) const EVENT_FIELDS: &[&str] = &[
    "involvedObject.kind",
    "involvedObject.namespace",
    "involvedObject.name",
    "involvedObject.uid",
    "involvedObject.apiVersion",
    "reason",
    "reportingComponent",
    "source",
    "type",
];
pub(crate) const SECRET_FIELDS: &[&str] = &["type"];
pub(crate) const NAMESPACE_FIELDS: &[&str] = &["status.phase"];
pub(crate) const REPLICASET_FIELDS: &[&str] = &["status.replicas"];
pub(crate) const JOB_FIELDS: &[&str] = &["status.successful"];

impl Res {
    pub(crate) fn kind(self) -> &'static Kind {
        &KINDS[self as usize]
    }
}

#[allow(clippy::too_many_arguments)] // one row of the table below
const fn kind(
    group: &'static str,
    plural: &'static str,
    singular: &'static str,
    kind: &'static str,
    short_names: &'static [&'static str],
    namespaced: bool,
    columns: &'static [Column],
    fields: &'static [&'static str],
) -> Kind {
    Kind {
        group,
        version: "v1",
        plural,
        singular,
        kind,
        short_names,
        namespaced,
        columns,
        fields,
    }
}

/// In the order of `Res`.
static KINDS: [Kind; 16] = [
    kind(
        "",
        "namespaces",
        "namespace",
        "Namespace",
        &["ns"],
        false,
        NAMESPACE_COLUMNS,
        NAMESPACE_FIELDS,
    ),
    kind(
        "",
        "nodes",
        "node",
        "Node",
        &["no"],
        false,
        NODE_COLUMNS,
        NODE_FIELDS,
    ),
    kind(
        "",
        "pods",
        "pod",
        "Pod",
        &["po"],
        true,
        POD_COLUMNS,
        POD_FIELDS,
    ),
    kind(
        "",
        "events",
        "event",
        "Event",
        &["ev"],
        true,
        EVENT_COLUMNS,
        EVENT_FIELDS,
    ),
    kind(
        "",
        "persistentvolumeclaims",
        "persistentvolumeclaim",
        "PersistentVolumeClaim",
        &["pvc"],
        true,
        PVC_COLUMNS,
        &[],
    ),
    kind(
        "",
        "secrets",
        "secret",
        "Secret",
        &[],
        true,
        SECRET_COLUMNS,
        SECRET_FIELDS,
    ),
    kind(
        "",
        "configmaps",
        "configmap",
        "ConfigMap",
        &["cm"],
        true,
        CONFIGMAP_COLUMNS,
        &[],
    ),
    kind(
        "",
        "services",
        "service",
        "Service",
        &["svc"],
        true,
        SERVICE_COLUMNS,
        &[],
    ),
    kind(
        "apps",
        "deployments",
        "deployment",
        "Deployment",
        &["deploy"],
        true,
        DEPLOYMENT_COLUMNS,
        &[],
    ),
    kind(
        "apps",
        "statefulsets",
        "statefulset",
        "StatefulSet",
        &["sts"],
        true,
        STATEFULSET_COLUMNS,
        &[],
    ),
    kind(
        "apps",
        "daemonsets",
        "daemonset",
        "DaemonSet",
        &["ds"],
        true,
        DAEMONSET_COLUMNS,
        &[],
    ),
    kind(
        "apps",
        "replicasets",
        "replicaset",
        "ReplicaSet",
        &["rs"],
        true,
        REPLICASET_COLUMNS,
        REPLICASET_FIELDS,
    ),
    kind(
        "batch",
        "jobs",
        "job",
        "Job",
        &[],
        true,
        JOB_COLUMNS,
        JOB_FIELDS,
    ),
    kind(
        "batch",
        "cronjobs",
        "cronjob",
        "CronJob",
        &["cj"],
        true,
        CRONJOB_COLUMNS,
        &[],
    ),
    kind(
        "storage.k8s.io",
        "storageclasses",
        "storageclass",
        "StorageClass",
        &["sc"],
        false,
        STORAGECLASS_COLUMNS,
        &[],
    ),
    // The API server prints events.k8s.io Events with the core Event's columns. No short
    // name: `ev` stays the core resource's, without kubectl warning that it is ambiguous.
    kind(
        "events.k8s.io",
        "events",
        "event",
        "Event",
        &[],
        true,
        EVENT_COLUMNS,
        &[],
    ),
];
