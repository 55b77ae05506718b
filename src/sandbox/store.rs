//! The served world: per resource kind, one table of pre-serialized objects sorted by
//! (namespace, name), so that a namespace is a contiguous slice, a get is a binary search and
//! a page is a copy of bytes. Each object is kept once: its metadata JSON and its body JSON
//! (with an empty `metadata` to splice it back into), plus the few strings selectors and
//! table rows need.

use std::fmt::Write as _;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use k8s_openapi::Metadata;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde::Serialize;

use super::selector::{FieldSelector, LabelSelector};

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
}

pub(crate) const ALL: [Res; 14] = [
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
];

/// A column of a server-side `Table`, as `kubectl get` prints it.
#[derive(Debug)]
pub(crate) struct Column {
    pub name: &'static str,
    pub ty: &'static str,
    pub priority: i32,
    pub description: &'static str,
}

const fn col(name: &'static str, ty: &'static str, description: &'static str) -> Column {
    Column {
        name,
        ty,
        priority: 0,
        description,
    }
}

const fn wide(name: &'static str, ty: &'static str, description: &'static str) -> Column {
    Column {
        name,
        ty,
        priority: 1,
        description,
    }
}

const NAME: Column = col("Name", "string", "Name must be unique within a namespace.");
const AGE: Column = col(
    "Age",
    "string",
    "CreationTimestamp is a timestamp representing the server time when this object was created.",
);
/// The template's containers and images, in the wide view of every workload kind.
const CONTAINERS: Column = wide(
    "Containers",
    "string",
    "Names of each container in the template.",
);
const IMAGES: Column = wide(
    "Images",
    "string",
    "Images referenced by each container in the template.",
);

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

const POD_COLUMNS: &[Column] = &[
    NAME,
    col(
        "Ready",
        "string",
        "The aggregate readiness state of this pod for accepting traffic.",
    ),
    col(
        "Status",
        "string",
        "The aggregate status of the containers in this pod.",
    ),
    col(
        "Restarts",
        "string",
        "The number of times the containers in this pod have been restarted and when the last container in this pod has restarted.",
    ),
    AGE,
    wide(
        "IP",
        "string",
        "IP address allocated to the pod. Routable at least within the cluster.",
    ),
    wide(
        "Node",
        "string",
        "NodeName is a request to schedule this pod onto a specific node.",
    ),
    wide(
        "Nominated Node",
        "string",
        "nominatedNodeName is set when this pod preempts other pods on the node.",
    ),
    wide(
        "Readiness Gates",
        "string",
        "If specified, all readiness gates will be evaluated for pod readiness.",
    ),
];

const NODE_COLUMNS: &[Column] = &[
    NAME,
    col("Status", "string", "The status of the node"),
    col("Roles", "string", "The roles of the node"),
    AGE,
    col("Version", "string", "Kubelet Version reported by the node."),
    wide(
        "Internal-IP",
        "string",
        "List of addresses reachable to the node.",
    ),
    wide(
        "External-IP",
        "string",
        "List of addresses reachable to the node.",
    ),
    wide(
        "OS-Image",
        "string",
        "OS Image reported by the node from /etc/os-release.",
    ),
    wide(
        "Kernel-Version",
        "string",
        "Kernel Version reported by the node from 'uname -r'.",
    ),
    wide(
        "Container-Runtime",
        "string",
        "ContainerRuntime Version reported by the node.",
    ),
];

const DEPLOYMENT_COLUMNS: &[Column] = &[
    NAME,
    col("Ready", "string", "Number of the pod with ready state"),
    col(
        "Up-to-date",
        "integer",
        "Total number of non-terminated pods targeted by this deployment that have the desired template spec.",
    ),
    col(
        "Available",
        "integer",
        "Total number of available pods (ready for at least minReadySeconds) targeted by this deployment.",
    ),
    AGE,
    CONTAINERS,
    IMAGES,
    wide(
        "Selector",
        "string",
        "Label selector for pods. Existing ReplicaSets whose pods are selected by this will be the ones affected by this deployment.",
    ),
];

const STATEFULSET_COLUMNS: &[Column] = &[
    NAME,
    col("Ready", "string", "Number of the pod with ready state"),
    AGE,
    CONTAINERS,
    IMAGES,
];

const DAEMONSET_COLUMNS: &[Column] = &[
    NAME,
    col(
        "Desired",
        "integer",
        "The total number of nodes that should be running the daemon pod.",
    ),
    col(
        "Current",
        "integer",
        "The number of nodes that are running at least 1 daemon pod and are supposed to run the daemon pod.",
    ),
    col(
        "Ready",
        "integer",
        "numberReady is the number of nodes that should be running the daemon pod and have one or more of the daemon pod running and ready.",
    ),
    col(
        "Up-to-date",
        "integer",
        "The total number of nodes that are running updated daemon pod",
    ),
    col(
        "Available",
        "integer",
        "The number of nodes that should be running the daemon pod and have one or more of the daemon pod running and available.",
    ),
    col(
        "Node Selector",
        "string",
        "NodeSelector is a selector which must be true for the pod to fit on a node.",
    ),
    AGE,
    CONTAINERS,
    IMAGES,
    wide(
        "Selector",
        "string",
        "A label query over pods that are managed by the daemon set.",
    ),
];

const REPLICASET_COLUMNS: &[Column] = &[
    NAME,
    col(
        "Desired",
        "integer",
        "Replicas is the number of desired replicas.",
    ),
    col(
        "Current",
        "integer",
        "Replicas is the most recently observed number of replicas.",
    ),
    col(
        "Ready",
        "integer",
        "The number of ready replicas for this replica set.",
    ),
    AGE,
    CONTAINERS,
    IMAGES,
    wide(
        "Selector",
        "string",
        "Selector is a label query over pods that should match the replica count.",
    ),
];

const JOB_COLUMNS: &[Column] = &[
    NAME,
    col("Status", "string", "Status of the job."),
    col(
        "Completions",
        "string",
        "The desired number of successfully finished pods the job should be run with.",
    ),
    col("Duration", "string", "Time required to complete the job."),
    AGE,
];

const CRONJOB_COLUMNS: &[Column] = &[
    NAME,
    col(
        "Schedule",
        "string",
        "The schedule in Cron format, see https://en.wikipedia.org/wiki/Cron.",
    ),
    col(
        "Timezone",
        "string",
        "The time zone name for the given schedule.",
    ),
    col(
        "Suspend",
        "boolean",
        "This flag tells the controller to suspend subsequent executions.",
    ),
    col(
        "Active",
        "integer",
        "A list of pointers to currently running jobs.",
    ),
    col(
        "Last Schedule",
        "string",
        "Information when was the last time the job was successfully scheduled.",
    ),
    AGE,
];

const NAMESPACE_COLUMNS: &[Column] = &[
    NAME,
    col("Status", "string", "The status of the namespace"),
    AGE,
];

const EVENT_COLUMNS: &[Column] = &[
    col(
        "Last Seen",
        "string",
        "Time when this Event was last observed.",
    ),
    col(
        "Type",
        "string",
        "Type of this event (Normal, Warning), new types could be added in the future.",
    ),
    col(
        "Reason",
        "string",
        "This should be a short, machine understandable string that gives the reason for the transition into the object's current status.",
    ),
    col("Object", "string", "The object that this event is about."),
    col(
        "Message",
        "string",
        "A human-readable description of the status of this operation.",
    ),
    wide("Source", "string", "The component reporting this event."),
    wide(
        "First Seen",
        "string",
        "The time at which the event was first recorded.",
    ),
    wide(
        "Count",
        "string",
        "The number of times this event has occurred.",
    ),
    wide("Name", "string", "Name must be unique within a namespace."),
];

const PVC_COLUMNS: &[Column] = &[
    NAME,
    col(
        "Status",
        "string",
        "Phase represents the current phase of PersistentVolumeClaim.",
    ),
    col(
        "Volume",
        "string",
        "VolumeName is the binding reference to the PersistentVolume backing this claim.",
    ),
    col(
        "Capacity",
        "string",
        "capacity represents the actual resources of the underlying volume.",
    ),
    col(
        "Access Modes",
        "string",
        "accessModes contains the actual access modes the volume backing the PVC has.",
    ),
    col(
        "StorageClass",
        "string",
        "storageClassName is the name of the StorageClass required by the claim.",
    ),
    col(
        "VolumeAttributesClass",
        "string",
        "volumeAttributesClassName may be used to set the VolumeAttributesClass used by this claim.",
    ),
    AGE,
    wide(
        "VolumeMode",
        "string",
        "volumeMode defines what type of volume is required by the claim.",
    ),
];

const SECRET_COLUMNS: &[Column] = &[
    NAME,
    col("Type", "string", "The type of the secret"),
    col("Data", "integer", "The number of entries in the secret"),
    AGE,
];

const CONFIGMAP_COLUMNS: &[Column] = &[
    NAME,
    col("Data", "integer", "The number of entries in the config map"),
    AGE,
];

const SERVICE_COLUMNS: &[Column] = &[
    NAME,
    col(
        "Type",
        "string",
        "type determines how the Service is exposed.",
    ),
    col(
        "Cluster-IP",
        "string",
        "clusterIP is the IP address of the service.",
    ),
    col(
        "External-IP",
        "string",
        "externalIPs is a list of IP addresses for which nodes in the cluster will also accept traffic for this service.",
    ),
    col(
        "Port(s)",
        "string",
        "The list of ports that are exposed by this service.",
    ),
    AGE,
    wide(
        "Selector",
        "string",
        "Route service traffic to pods with label keys and values matching this selector.",
    ),
];

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
static KINDS: [Kind; 14] = [
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
];

/// One cell of a table row; times stay timestamps so ages are computed when served.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Cell {
    Text(Box<str>),
    Int(i64),
    Bool(bool),
    /// How long ago (a unix time), as kubectl prints ages: `5m`, `3d4h`.
    Age(i64),
    /// An age, or `<unknown>` / `<none>` when absent.
    AgeOr(Option<i64>, &'static str),
    /// `0`, or `7 (3m ago)` with the time of the last restart.
    Restarts(i32, Option<i64>),
}

impl Cell {
    pub(crate) fn text(s: impl Into<String>) -> Cell {
        Cell::Text(s.into().into_boxed_str())
    }

    fn write_json(&self, now: i64, out: &mut Vec<u8>) {
        let s = match self {
            Cell::Int(i) => return out.extend_from_slice(i.to_string().as_bytes()),
            Cell::Bool(b) => return out.extend_from_slice(if *b { b"true" } else { b"false" }),
            Cell::Text(s) => s.to_string(),
            Cell::Age(t) => human_duration(now - t),
            Cell::AgeOr(Some(t), _) => human_duration(now - t),
            Cell::AgeOr(None, none) => (*none).to_string(),
            Cell::Restarts(n, Some(t)) if *n > 0 => {
                format!("{n} ({} ago)", human_duration(now - t))
            }
            Cell::Restarts(n, _) => n.to_string(),
        };
        write_json_string(&s, out);
    }
}

fn write_json_string(s: &str, out: &mut Vec<u8>) {
    // Serializing a &str into a Vec cannot fail.
    let _ = serde_json::to_writer(&mut *out, s);
}

/// kubectl's age format (apimachinery `duration.HumanDuration`).
pub(crate) fn human_duration(seconds: i64) -> String {
    if seconds < -1 {
        return "<invalid>".into();
    }
    if seconds < 0 {
        return "0s".into();
    }
    if seconds < 120 {
        return format!("{seconds}s");
    }
    let minutes = seconds / 60;
    if minutes < 10 {
        let s = seconds % 60;
        return if s == 0 {
            format!("{minutes}m")
        } else {
            format!("{minutes}m{s}s")
        };
    }
    if minutes < 180 {
        return format!("{minutes}m");
    }
    let hours = seconds / 3600;
    if hours < 8 {
        let m = minutes % 60;
        return if m == 0 {
            format!("{hours}h")
        } else {
            format!("{hours}h{m}m")
        };
    }
    if hours < 48 {
        return format!("{hours}h");
    }
    if hours < 24 * 8 {
        let h = hours % 24;
        return if h == 0 {
            format!("{}d", hours / 24)
        } else {
            format!("{}d{h}h", hours / 24)
        };
    }
    if hours < 24 * 365 * 2 {
        return format!("{}d", hours / 24);
    }
    if hours < 24 * 365 * 8 {
        let dy = (hours / 24) % 365;
        return if dy == 0 {
            format!("{}y", hours / 24 / 365)
        } else {
            format!("{}y{dy}d", hours / 24 / 365)
        };
    }
    format!("{}y", hours / 24 / 365)
}

/// One served object.
#[derive(Debug, Clone)]
pub(crate) struct Entry {
    /// Empty for cluster-scoped objects.
    pub namespace: Box<str>,
    pub name: Box<str>,
    pub labels: Box<[(Box<str>, Box<str>)]>,
    /// Values of the kind's selectable fields (`Kind::fields`), in order.
    pub fields: Box<[Box<str>]>,
    pub cells: Box<[Cell]>,
    meta: Box<str>,
    body: Box<str>,
    meta_at: usize,
}

const EMPTY_META: &str = "\"metadata\":{}";

#[derive(Debug, thiserror::Error)]
pub(crate) enum EntryError {
    #[error("cannot serialize {kind} {name}: {source}")]
    Serialize {
        kind: &'static str,
        name: String,
        source: serde_json::Error,
    },
    #[error("{kind} {name} has no metadata field after serializing")]
    NoMetadata { kind: &'static str, name: String },
}

impl Entry {
    /// Serializes `obj` once, keeping its metadata apart for metadata-only answers.
    pub(crate) fn new<K>(
        res: Res,
        mut obj: K,
        fields: Vec<String>,
        cells: Vec<Cell>,
    ) -> Result<Entry, EntryError>
    where
        K: Metadata<Ty = ObjectMeta> + Serialize,
    {
        let meta = std::mem::take(obj.metadata_mut());
        let name = meta.name.clone().unwrap_or_default();
        let err = |source| EntryError::Serialize {
            kind: res.kind().kind,
            name: name.clone(),
            source,
        };
        let meta_json = serde_json::to_string(&meta).map_err(err)?;
        let body = serde_json::to_string(&obj).map_err(err)?;
        let meta_at = body
            .find(EMPTY_META)
            .ok_or_else(|| EntryError::NoMetadata {
                kind: res.kind().kind,
                name: name.clone(),
            })?
            + EMPTY_META.len()
            - 2;
        debug_assert_eq!(fields.len(), res.kind().fields.len());
        Ok(Entry {
            namespace: meta.namespace.unwrap_or_default().into_boxed_str(),
            labels: meta
                .labels
                .unwrap_or_default()
                .into_iter()
                .map(|(k, v)| (k.into_boxed_str(), v.into_boxed_str()))
                .collect(),
            name: name.into_boxed_str(),
            fields: fields.into_iter().map(String::into_boxed_str).collect(),
            cells: cells.into_boxed_slice(),
            meta: meta_json.into_boxed_str(),
            body: body.into_boxed_str(),
            meta_at,
        })
    }

    /// The whole object as JSON.
    pub(crate) fn write_object(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.body.as_bytes()[..self.meta_at]);
        out.extend_from_slice(self.meta.as_bytes());
        out.extend_from_slice(&self.body.as_bytes()[self.meta_at + 2..]);
    }

    /// The object as `PartialObjectMetadata`.
    pub(crate) fn write_partial(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(
            br#"{"kind":"PartialObjectMetadata","apiVersion":"meta.k8s.io/v1","metadata":"#,
        );
        out.extend_from_slice(self.meta.as_bytes());
        out.push(b'}');
    }

    fn field(&self, res: Res, name: &str) -> &str {
        match name {
            "metadata.name" => &self.name,
            "metadata.namespace" => &self.namespace,
            other => res
                .kind()
                .fields
                .iter()
                .position(|f| *f == other)
                .and_then(|i| self.fields.get(i))
                .map_or("", |v| v),
        }
    }

    fn matches(&self, res: Res, labels: &LabelSelector, fields: &FieldSelector) -> bool {
        labels.matches(&self.labels)
            && fields
                .terms
                .iter()
                .all(|t| (self.field(res, &t.field) == t.value) == t.equal)
    }
}

/// All served objects, never changed after generation.
#[derive(Debug)]
pub(crate) struct World {
    /// The one resourceVersion of every list (objects have smaller ones).
    pub resource_version: u64,
    tables: Vec<Vec<Entry>>,
}

/// A list request's options.
#[derive(Debug, Default)]
pub(crate) struct ListQuery {
    pub limit: Option<usize>,
    pub continue_token: Option<String>,
    pub labels: LabelSelector,
    pub fields: FieldSelector,
}

/// One page of a list.
#[derive(Debug)]
pub(crate) struct Page<'a> {
    pub items: Vec<&'a Entry>,
    pub continue_token: Option<String>,
    pub remaining: Option<usize>,
}

#[derive(Debug, PartialEq, Eq)]
pub(crate) enum ListError {
    BadContinue(String),
    Expired,
}

impl World {
    /// Sorts each table by (namespace, name); `tables` is indexed by `Res`.
    pub(crate) fn new(resource_version: u64, mut tables: Vec<Vec<Entry>>) -> Self {
        tables.resize_with(ALL.len(), Vec::new);
        for t in &mut tables {
            t.sort_unstable_by(|a, b| (&a.namespace, &a.name).cmp(&(&b.namespace, &b.name)));
        }
        World {
            resource_version,
            tables,
        }
    }

    pub(crate) fn all(&self, res: Res) -> &[Entry] {
        self.tables.get(res as usize).map_or(&[], Vec::as_slice)
    }

    /// The objects of one namespace (or all for `None`).
    pub(crate) fn scope(&self, res: Res, namespace: Option<&str>) -> &[Entry] {
        let all = self.all(res);
        match namespace {
            None => all,
            Some(ns) => {
                let start = all.partition_point(|e| &*e.namespace < ns);
                let end = start + all[start..].partition_point(|e| &*e.namespace == ns);
                &all[start..end]
            }
        }
    }

    pub(crate) fn get(&self, res: Res, namespace: &str, name: &str) -> Option<&Entry> {
        let all = self.all(res);
        all.binary_search_by(|e| (&*e.namespace, &*e.name).cmp(&(namespace, name)))
            .ok()
            .map(|i| &all[i])
    }

    pub(crate) fn list(
        &self,
        res: Res,
        namespace: Option<&str>,
        q: &ListQuery,
    ) -> Result<Page<'_>, ListError> {
        let scope = self.scope(res, namespace);
        let start = match &q.continue_token {
            None => 0,
            Some(token) => {
                let (rv, ns, name) = decode_continue(token)?;
                if rv != self.resource_version {
                    return Err(ListError::Expired);
                }
                scope.partition_point(|e| (&*e.namespace, &*e.name) <= (ns.as_str(), name.as_str()))
            }
        };
        let rest = &scope[start..];
        let limit = q.limit.filter(|l| *l > 0).unwrap_or(usize::MAX);
        let filtered = !q.labels.is_empty() || !q.fields.is_empty();
        let mut items = Vec::new();
        let mut last = None;
        let mut more = false;
        for (i, e) in rest.iter().enumerate() {
            if !e.matches(res, &q.labels, &q.fields) {
                continue;
            }
            if items.len() == limit {
                more = true;
                break;
            }
            items.push(e);
            last = Some(i);
        }
        let continue_token = match (more, items.last()) {
            (true, Some(e)) => Some(encode_continue(
                self.resource_version,
                &e.namespace,
                &e.name,
            )),
            _ => None,
        };
        let remaining = match (more, last, filtered) {
            (true, Some(i), false) => Some(rest.len() - i - 1),
            _ => None,
        };
        Ok(Page {
            items,
            continue_token,
            remaining,
        })
    }
}

fn encode_continue(rv: u64, namespace: &str, name: &str) -> String {
    URL_SAFE_NO_PAD.encode(format!("{rv}\0{namespace}\0{name}"))
}

fn decode_continue(token: &str) -> Result<(u64, String, String), ListError> {
    let bad = || ListError::BadContinue(token.to_string());
    let bytes = URL_SAFE_NO_PAD.decode(token).map_err(|_| bad())?;
    let text = String::from_utf8(bytes).map_err(|_| bad())?;
    let mut parts = text.splitn(3, '\0');
    let rv = parts.next().and_then(|r| r.parse().ok()).ok_or_else(bad)?;
    let ns = parts.next().ok_or_else(bad)?.to_string();
    let name = parts.next().ok_or_else(bad)?.to_string();
    Ok((rv, ns, name))
}

/// What a list or get answers with, chosen from the `Accept` header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Shape {
    Full,
    Table { beta: bool, include: Include },
    Metadata,
}

/// A table row's `object`: as `includeObject` asks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Include {
    None,
    Metadata,
    Object,
}

/// Writes a list (or a table) of `page`.
pub(crate) fn write_list(
    world: &World,
    res: Res,
    page: &Page<'_>,
    shape: Shape,
    now: i64,
) -> Vec<u8> {
    let kind = res.kind();
    let per_item = match shape {
        Shape::Full => 2048,
        _ => 512,
    };
    let mut out = Vec::with_capacity(256 + page.items.len() * per_item);
    let mut meta = format!("{{\"resourceVersion\":\"{}\"", world.resource_version);
    if let Some(c) = &page.continue_token {
        let _ = write!(meta, ",\"continue\":\"{c}\"");
    }
    if let Some(n) = page.remaining {
        let _ = write!(meta, ",\"remainingItemCount\":{n}");
    }
    meta.push('}');
    match shape {
        Shape::Full | Shape::Metadata => {
            let (list_kind, api_version) = if shape == Shape::Full {
                (format!("{}List", kind.kind), kind.api_version())
            } else {
                (
                    "PartialObjectMetadataList".to_string(),
                    "meta.k8s.io/v1".to_string(),
                )
            };
            let _ = write!(
                PushStr(&mut out),
                "{{\"kind\":\"{list_kind}\",\"apiVersion\":\"{api_version}\",\"metadata\":{meta},\"items\":["
            );
            for (i, e) in page.items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                if shape == Shape::Full {
                    e.write_object(&mut out);
                } else {
                    e.write_partial(&mut out);
                }
            }
            out.extend_from_slice(b"]}");
        }
        Shape::Table { beta, include } => {
            write_table_head(&mut out, res, beta, &meta);
            for (i, e) in page.items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_row(&mut out, e, include, now);
            }
            out.extend_from_slice(b"]}");
        }
    }
    out
}

/// Writes one object (or its one-row table).
pub(crate) fn write_one(world: &World, res: Res, e: &Entry, shape: Shape, now: i64) -> Vec<u8> {
    let mut out = Vec::with_capacity(4096);
    match shape {
        Shape::Full => e.write_object(&mut out),
        Shape::Metadata => e.write_partial(&mut out),
        Shape::Table { beta, include } => {
            let meta = format!("{{\"resourceVersion\":\"{}\"}}", world.resource_version);
            write_table_head(&mut out, res, beta, &meta);
            write_row(&mut out, e, include, now);
            out.extend_from_slice(b"]}");
        }
    }
    out
}

fn write_table_head(out: &mut Vec<u8>, res: Res, beta: bool, meta: &str) {
    let version = if beta { "v1beta1" } else { "v1" };
    let _ = write!(
        PushStr(out),
        "{{\"kind\":\"Table\",\"apiVersion\":\"meta.k8s.io/{version}\",\"metadata\":{meta},\"columnDefinitions\":["
    );
    for (i, c) in res.kind().columns.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        let format = if c.name == "Name" { "name" } else { "" };
        let _ = write!(
            PushStr(out),
            "{{\"name\":\"{}\",\"type\":\"{}\",\"format\":\"{format}\",\"description\":",
            c.name,
            c.ty
        );
        write_json_string(c.description, out);
        let _ = write!(PushStr(out), ",\"priority\":{}}}", c.priority);
    }
    out.extend_from_slice(b"],\"rows\":[");
}

fn write_row(out: &mut Vec<u8>, e: &Entry, include: Include, now: i64) {
    out.extend_from_slice(b"{\"cells\":[");
    for (i, c) in e.cells.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        c.write_json(now, out);
    }
    out.push(b']');
    match include {
        Include::None => {}
        Include::Metadata => {
            out.extend_from_slice(b",\"object\":");
            e.write_partial(out);
        }
        Include::Object => {
            out.extend_from_slice(b",\"object\":");
            e.write_object(out);
        }
    }
    out.push(b'}');
}

/// `write!` into a byte buffer.
struct PushStr<'a>(&'a mut Vec<u8>);

impl std::fmt::Write for PushStr<'_> {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        self.0.extend_from_slice(s.as_bytes());
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::ConfigMap;
    use std::collections::BTreeMap;

    fn cm(ns: &str, name: &str, app: &str) -> Entry {
        let obj = ConfigMap {
            metadata: ObjectMeta {
                name: Some(name.into()),
                namespace: Some(ns.into()),
                labels: Some(BTreeMap::from([("app".to_string(), app.to_string())])),
                ..Default::default()
            },
            data: Some(BTreeMap::from([("k".to_string(), "v".to_string())])),
            ..Default::default()
        };
        Entry::new(Res::ConfigMaps, obj, vec![], vec![Cell::text(name)]).unwrap()
    }

    fn world() -> World {
        let mut tables: Vec<Vec<Entry>> = ALL.iter().map(|_| Vec::new()).collect();
        tables[Res::ConfigMaps as usize] = vec![
            cm("b", "z", "x"),
            cm("a", "y", "x"),
            cm("b", "a", "y"),
            cm("a", "b", "x"),
            cm("c", "c", "x"),
        ];
        World::new(42, tables)
    }

    #[test]
    fn object_json_is_spliced_back_whole() {
        let w = world();
        let e = w.get(Res::ConfigMaps, "a", "y").unwrap();
        let mut out = Vec::new();
        e.write_object(&mut out);
        let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(v["kind"], "ConfigMap");
        assert_eq!(v["metadata"]["name"], "y");
        assert_eq!(v["metadata"]["labels"]["app"], "x");
        assert_eq!(v["data"]["k"], "v");
    }

    #[test]
    fn pages_cover_everything_once_in_order() {
        let w = world();
        let mut names = Vec::new();
        let mut q = ListQuery {
            limit: Some(2),
            ..Default::default()
        };
        loop {
            let page = w.list(Res::ConfigMaps, None, &q).unwrap();
            names.extend(
                page.items
                    .iter()
                    .map(|e| format!("{}/{}", e.namespace, e.name)),
            );
            match page.continue_token {
                Some(c) => q.continue_token = Some(c),
                None => break,
            }
        }
        assert_eq!(names, ["a/b", "a/y", "b/a", "b/z", "c/c"]);
    }

    #[test]
    fn remaining_count_only_without_selectors() {
        let w = world();
        let q = ListQuery {
            limit: Some(2),
            ..Default::default()
        };
        let page = w.list(Res::ConfigMaps, None, &q).unwrap();
        assert_eq!(page.remaining, Some(3));
        let q = ListQuery {
            limit: Some(1),
            labels: LabelSelector::parse("app=x").unwrap(),
            ..Default::default()
        };
        let page = w.list(Res::ConfigMaps, None, &q).unwrap();
        assert_eq!(page.remaining, None);
        assert!(page.continue_token.is_some());
    }

    #[test]
    fn last_matching_page_has_no_continue() {
        let w = world();
        let q = ListQuery {
            limit: Some(1),
            labels: LabelSelector::parse("app=y").unwrap(),
            ..Default::default()
        };
        let page = w.list(Res::ConfigMaps, None, &q).unwrap();
        assert_eq!(page.items.len(), 1);
        assert_eq!(page.continue_token, None);
    }

    #[test]
    fn namespace_scope_and_get() {
        let w = world();
        let names: Vec<_> = w
            .scope(Res::ConfigMaps, Some("b"))
            .iter()
            .map(|e| &*e.name)
            .collect();
        assert_eq!(names, ["a", "z"]);
        assert!(w.scope(Res::ConfigMaps, Some("nope")).is_empty());
        assert!(w.get(Res::ConfigMaps, "c", "c").is_some());
        assert!(w.get(Res::ConfigMaps, "c", "d").is_none());
    }

    #[test]
    fn foreign_or_garbled_continue_tokens_are_refused() {
        let w = world();
        let q = ListQuery {
            continue_token: Some("!!!".into()),
            ..Default::default()
        };
        assert!(matches!(
            w.list(Res::ConfigMaps, None, &q),
            Err(ListError::BadContinue(_))
        ));
        let q = ListQuery {
            continue_token: Some(encode_continue(7, "a", "b")),
            ..Default::default()
        };
        assert_eq!(
            w.list(Res::ConfigMaps, None, &q).unwrap_err(),
            ListError::Expired
        );
    }

    #[test]
    fn ages_print_like_kubectl() {
        for (s, want) in [
            (5, "5s"),
            (119, "119s"),
            (150, "2m30s"),
            (600, "10m"),
            (3 * 3600 + 60, "3h1m"),
            (30 * 3600, "30h"),
            (3 * 86400 + 3600 * 4, "3d4h"),
            (40 * 86400, "40d"),
            (800 * 86400, "2y70d"),
        ] {
            assert_eq!(human_duration(s), want, "{s}");
        }
    }
}
