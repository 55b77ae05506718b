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
        match self {
            Res::Namespaces => &NAMESPACES_KIND,
            Res::Nodes => &NODES_KIND,
            Res::Pods => &PODS_KIND,
            Res::Events => &EVENTS_KIND,
            Res::PersistentVolumeClaims => &PERSISTENT_VOLUME_CLAIMS_KIND,
            Res::Secrets => &SECRETS_KIND,
            Res::ConfigMaps => &CONFIG_MAPS_KIND,
            Res::Services => &SERVICES_KIND,
            Res::Deployments => &DEPLOYMENTS_KIND,
            Res::StatefulSets => &STATEFUL_SETS_KIND,
            Res::DaemonSets => &DAEMON_SETS_KIND,
            Res::ReplicaSets => &REPLICA_SETS_KIND,
            Res::Jobs => &JOBS_KIND,
            Res::CronJobs => &CRON_JOBS_KIND,
            Res::StorageClasses => &STORAGE_CLASSES_KIND,
            Res::EventsV1 => &EVENTS_V1_KIND,
        }
    }
}

static NAMESPACES_KIND: Kind = Kind {
    group: "",
    version: "v1",
    plural: "namespaces",
    singular: "namespace",
    kind: "Namespace",
    short_names: &["ns"],
    namespaced: false,
    columns: NAMESPACE_COLUMNS,
    fields: NAMESPACE_FIELDS,
};
static NODES_KIND: Kind = Kind {
    group: "",
    version: "v1",
    plural: "nodes",
    singular: "node",
    kind: "Node",
    short_names: &["no"],
    namespaced: false,
    columns: NODE_COLUMNS,
    fields: NODE_FIELDS,
};
static PODS_KIND: Kind = Kind {
    group: "",
    version: "v1",
    plural: "pods",
    singular: "pod",
    kind: "Pod",
    short_names: &["po"],
    namespaced: true,
    columns: POD_COLUMNS,
    fields: POD_FIELDS,
};
static EVENTS_KIND: Kind = Kind {
    group: "",
    version: "v1",
    plural: "events",
    singular: "event",
    kind: "Event",
    short_names: &["ev"],
    namespaced: true,
    columns: EVENT_COLUMNS,
    fields: EVENT_FIELDS,
};
static PERSISTENT_VOLUME_CLAIMS_KIND: Kind = Kind {
    group: "",
    version: "v1",
    plural: "persistentvolumeclaims",
    singular: "persistentvolumeclaim",
    kind: "PersistentVolumeClaim",
    short_names: &["pvc"],
    namespaced: true,
    columns: PVC_COLUMNS,
    fields: &[],
};
static SECRETS_KIND: Kind = Kind {
    group: "",
    version: "v1",
    plural: "secrets",
    singular: "secret",
    kind: "Secret",
    short_names: &[],
    namespaced: true,
    columns: SECRET_COLUMNS,
    fields: SECRET_FIELDS,
};
static CONFIG_MAPS_KIND: Kind = Kind {
    group: "",
    version: "v1",
    plural: "configmaps",
    singular: "configmap",
    kind: "ConfigMap",
    short_names: &["cm"],
    namespaced: true,
    columns: CONFIGMAP_COLUMNS,
    fields: &[],
};
static SERVICES_KIND: Kind = Kind {
    group: "",
    version: "v1",
    plural: "services",
    singular: "service",
    kind: "Service",
    short_names: &["svc"],
    namespaced: true,
    columns: SERVICE_COLUMNS,
    fields: &[],
};
static DEPLOYMENTS_KIND: Kind = Kind {
    group: "apps",
    version: "v1",
    plural: "deployments",
    singular: "deployment",
    kind: "Deployment",
    short_names: &["deploy"],
    namespaced: true,
    columns: DEPLOYMENT_COLUMNS,
    fields: &[],
};
static STATEFUL_SETS_KIND: Kind = Kind {
    group: "apps",
    version: "v1",
    plural: "statefulsets",
    singular: "statefulset",
    kind: "StatefulSet",
    short_names: &["sts"],
    namespaced: true,
    columns: STATEFULSET_COLUMNS,
    fields: &[],
};
static DAEMON_SETS_KIND: Kind = Kind {
    group: "apps",
    version: "v1",
    plural: "daemonsets",
    singular: "daemonset",
    kind: "DaemonSet",
    short_names: &["ds"],
    namespaced: true,
    columns: DAEMONSET_COLUMNS,
    fields: &[],
};
static REPLICA_SETS_KIND: Kind = Kind {
    group: "apps",
    version: "v1",
    plural: "replicasets",
    singular: "replicaset",
    kind: "ReplicaSet",
    short_names: &["rs"],
    namespaced: true,
    columns: REPLICASET_COLUMNS,
    fields: REPLICASET_FIELDS,
};
static JOBS_KIND: Kind = Kind {
    group: "batch",
    version: "v1",
    plural: "jobs",
    singular: "job",
    kind: "Job",
    short_names: &[],
    namespaced: true,
    columns: JOB_COLUMNS,
    fields: JOB_FIELDS,
};
static CRON_JOBS_KIND: Kind = Kind {
    group: "batch",
    version: "v1",
    plural: "cronjobs",
    singular: "cronjob",
    kind: "CronJob",
    short_names: &["cj"],
    namespaced: true,
    columns: CRONJOB_COLUMNS,
    fields: &[],
};
static STORAGE_CLASSES_KIND: Kind = Kind {
    group: "storage.k8s.io",
    version: "v1",
    plural: "storageclasses",
    singular: "storageclass",
    kind: "StorageClass",
    short_names: &["sc"],
    namespaced: false,
    columns: STORAGECLASS_COLUMNS,
    fields: &[],
};
static EVENTS_V1_KIND: Kind = Kind {
    group: "events.k8s.io",
    version: "v1",
    plural: "events",
    singular: "event",
    kind: "Event",
    short_names: &[],
    namespaced: true,
    columns: EVENT_COLUMNS,
    fields: &[],
};
