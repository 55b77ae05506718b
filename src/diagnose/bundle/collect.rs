//! The bundle's collectors, one per section: `cluster-resources/`, `logs/`, `helm/`,
//! `health.json` with `monitoring/`, `datastores/`, `bastion/` and `doctor.json`. Each returns the errors it
//! met (none: it is complete) and sends its files to the writer; none keeps what it sent.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Debug;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use futures::future::LocalBoxFuture;
use k8s_openapi::api::apps::v1::{DaemonSet, Deployment, StatefulSet};
use k8s_openapi::api::batch::v1::{CronJob, Job};
use k8s_openapi::api::core::v1::{
    ConfigMap, Endpoints, Event, Node, PersistentVolumeClaim, Pod, Secret, Service,
};
use kube::api::{Api, ListParams, LogParams};
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::{Entry, File, Options, Sink};
use crate::config::{HostPort, HttpUrl};
use crate::dial::Dialer;
use crate::health::{Area, Target, datastores};
use crate::kube::list::{each_metadata_page, each_page, each_page_then};
use crate::kube::source::Capture;

/// Each container's log is capped at this many lines and bytes, as troubleshoot caps them.
const LOG_LINES: i64 = 10_000;
const LOG_BYTES: i64 = 5 * 1024 * 1024;
/// Logs read at once.
const LOG_READERS: usize = 8;
/// Each request to a datastore or the bastion may take this long.
const REQUEST: Duration = Duration::from_secs(20);

/// What the collectors read from.
#[derive(Clone)]
pub struct Sources {
    pub kube: kube::Client,
    /// The health report's target (its datastores and passwords serve `datastores/` too).
    pub health: Target,
    /// The bastion, for `bastion/`; `None` when there is none (`--local`).
    pub bastion: Option<Arc<dyn Capture + Send + Sync>>,
    /// The profile whose path `doctor.json` walks hop by hop.
    pub doctor: Option<crate::config::Resolved>,
}

/// One collector: its name and source for the manifest, and its run.
pub(super) struct Collector {
    pub name: &'static str,
    pub source: String,
    /// Whether its work is bounded (a datastore, the bastion, the health checks): it then
    /// has the collector deadline; the cluster's lists and logs grow with the installation
    /// and have the total one.
    pub bounded: bool,
    pub run: Box<dyn FnOnce(Sink) -> LocalBoxFuture<'static, Vec<String>>>,
}

fn collector<F>(name: &'static str, source: String, f: F) -> Collector
where
    F: FnOnce(Sink) -> LocalBoxFuture<'static, Vec<String>> + 'static,
{
    Collector {
        name,
        bounded: !matches!(name, "cluster-resources" | "logs" | "helm"),
        source,
        run: Box::new(f),
    }
}

/// Every collector for these sources.
pub(super) fn all(s: &Sources, o: &Options) -> Vec<Collector> {
    let api = "the Kubernetes API".to_string();
    let mut out = Vec::new();
    let k = s.kube.clone();
    out.push(collector("cluster-resources", api.clone(), move |sink| {
        Box::pin(cluster_resources(k, sink))
    }));
    let (k, ns, since) = (s.kube.clone(), o.namespace.clone(), o.since);
    out.push(collector("logs", api.clone(), move |sink| {
        Box::pin(logs(k, ns, since, sink))
    }));
    let (k, values) = (s.kube.clone(), o.include_values);
    out.push(collector("helm", api, move |sink| {
        Box::pin(helm(k, values, sink))
    }));
    let (t, timeout) = (s.health.clone(), o.collector_timeout);
    out.push(collector(
        "health",
        "the health checks".into(),
        move |sink| Box::pin(health(t, timeout, sink)),
    ));
    for hp in &s.health.datastores.postgres {
        let (d, hp, pw) = (
            s.health.dialer.clone(),
            hp.clone(),
            s.health.postgres_password.clone(),
        );
        out.push(collector("postgres", hp.to_string(), move |sink| {
            Box::pin(postgres(d, hp, pw, sink))
        }));
    }
    for hp in &s.health.datastores.redis {
        let (d, hp, pw) = (
            s.health.dialer.clone(),
            hp.clone(),
            s.health.redis_password.clone(),
        );
        out.push(collector("redis", hp.to_string(), move |sink| {
            Box::pin(redis(d, hp, pw, sink))
        }));
    }
    for url in &s.health.datastores.s3 {
        let (d, url) = (s.health.dialer.clone(), url.clone());
        let ca = s
            .health
            .datastores
            .ca_file
            .as_ref()
            .map(|c| c.get_ref().clone());
        out.push(collector("minio", url.to_string(), move |sink| {
            Box::pin(minio(d, url, ca, sink))
        }));
    }
    if let Some(p) = s.doctor.clone() {
        out.push(collector(
            "doctor",
            "this machine and the bastion".into(),
            move |sink| Box::pin(doctor(p, sink)),
        ));
    }
    if let Some(b) = &s.bastion {
        let b = b.clone();
        out.push(collector("bastion", "the bastion".into(), move |sink| {
            Box::pin(bastion(b, sink))
        }));
    }
    out
}

async fn send(sink: &Sink, path: String, data: Vec<u8>) {
    send_entry(sink, Entry::File(File { path, data })).await;
}

async fn send_entry(sink: &Sink, entry: Entry) {
    // The writer only goes away when the bundle failed to write: nothing left to do.
    let _ = sink.send(entry).await;
}

fn json<T: Serialize + ?Sized>(v: &T) -> Vec<u8> {
    serde_json::to_vec_pretty(v).unwrap_or_default()
}

/// A kind this API server does not serve (404 on the list) is left out, not a failure.
fn not_served(e: &kube::Error) -> bool {
    matches!(e, kube::Error::Api(s) if s.code == 404)
}

/// Lists every `K` in all namespaces, shaped by `keep`, and streams each object as it comes
/// into the JSON array at `path(object)` (`cluster-resources/<dir>/<namespace>.json`), one
/// page at a time: memory holds one page, never the list.
async fn stream_list<K, P, F>(
    client: &kube::Client,
    sink: &Sink,
    path: P,
    keep: F,
) -> Result<(), kube::Error>
where
    K: kube::Resource + Clone + DeserializeOwned + Debug,
    <K as kube::Resource>::DynamicType: Default,
    P: Fn(&K) -> String,
    F: Fn(K) -> serde_json::Value,
{
    let mut started: BTreeSet<String> = BTreeSet::new();
    let api: Api<K> = Api::all(client.clone());
    let r = each_page_then(&api, ListParams::default(), |page| {
        // One part per file this page touches, each object after a comma but the file's first.
        let mut parts: BTreeMap<String, Vec<u8>> = BTreeMap::new();
        for o in page {
            let path = path(&o);
            let part = parts.entry(path.clone()).or_default();
            part.extend_from_slice(if started.insert(path) { b"[\n" } else { b",\n" });
            part.extend(json(&keep(o)));
        }
        let sink = sink.clone();
        async move {
            for (path, data) in parts {
                send_entry(&sink, Entry::Part(File { path, data })).await;
            }
        }
    })
    .await;
    for path in started {
        send_entry(
            sink,
            Entry::Part(File {
                path: path.clone(),
                data: b"\n]\n".to_vec(),
            }),
        )
        .await;
        send_entry(sink, Entry::End(path)).await;
    }
    r
}

/// `cluster-resources/<dir>/<namespace>.json` for every `K`; the error, if any, for the
/// manifest.
async fn namespaced<K, F>(client: &kube::Client, dir: &str, sink: &Sink, keep: F) -> Option<String>
where
    K: kube::Resource + Clone + DeserializeOwned + Debug,
    <K as kube::Resource>::DynamicType: Default,
    F: Fn(K) -> serde_json::Value,
{
    let path = |o: &K| {
        let ns = o.meta().namespace.as_deref().unwrap_or_default();
        format!("cluster-resources/{dir}/{ns}.json")
    };
    match stream_list(client, sink, path, keep).await {
        Ok(()) => None,
        Err(e) if not_served(&e) => None,
        Err(e) => Some(format!("{dir}: {}", crate::kube::one_line(&e))),
    }
}

fn whole<K: Serialize>(o: K) -> serde_json::Value {
    serde_json::to_value(o).unwrap_or_default()
}

async fn cluster_resources(client: kube::Client, sink: Sink) -> Vec<String> {
    let c = &client;
    let s = &sink;
    let results = [
        namespaced::<Pod, _>(c, "pods", s, whole).await,
        namespaced::<Deployment, _>(c, "deployments", s, whole).await,
        namespaced::<StatefulSet, _>(c, "statefulsets", s, whole).await,
        namespaced::<DaemonSet, _>(c, "daemonsets", s, whole).await,
        namespaced::<Job, _>(c, "jobs", s, whole).await,
        namespaced::<CronJob, _>(c, "cronjobs", s, whole).await,
        namespaced::<Service, _>(c, "services", s, whole).await,
        namespaced::<Endpoints, _>(c, "endpoints", s, whole).await,
        namespaced::<PersistentVolumeClaim, _>(c, "pvcs", s, whole).await,
        namespaced::<Event, _>(c, "events", s, whole).await,
        // Config maps: names and keys, never values.
        namespaced::<ConfigMap, _>(c, "configmaps", s, |cm| {
            let mut keys: Vec<String> = cm.data.unwrap_or_default().into_keys().collect();
            keys.extend(cm.binary_data.unwrap_or_default().into_keys());
            serde_json::json!({ "name": cm.metadata.name, "keys": keys })
        })
        .await,
        // Secrets: name, type and key names only.
        namespaced::<Secret, _>(c, "secrets", s, |sec| {
            let keys: Vec<String> = sec.data.unwrap_or_default().into_keys().collect();
            serde_json::json!({ "name": sec.metadata.name, "type": sec.type_, "keys": keys })
        })
        .await,
    ];
    let mut errors: Vec<String> = results.into_iter().flatten().collect();
    let nodes = |_: &Node| "cluster-resources/nodes.json".to_string();
    if let Err(e) = stream_list(c, s, nodes, whole).await {
        errors.push(format!("nodes: {}", crate::kube::one_line(&e)));
    }
    errors
}

async fn logs(client: kube::Client, namespace: String, since: Duration, sink: Sink) -> Vec<String> {
    let api: Api<Pod> = Api::namespaced(client, &namespace);
    let mut wanted = Vec::new();
    if let Err(e) = each_page(&api, ListParams::default(), |page| {
        for pod in page {
            let name = pod.metadata.name.clone().unwrap_or_default();
            let statuses = pod
                .status
                .as_ref()
                .and_then(|s| s.container_statuses.clone())
                .unwrap_or_default();
            for c in pod.spec.map(|s| s.containers).unwrap_or_default() {
                let restarted = statuses
                    .iter()
                    .any(|s| s.name == c.name && s.restart_count > 0);
                wanted.push((name.clone(), c.name.clone(), false));
                if restarted {
                    wanted.push((name.clone(), c.name, true));
                }
            }
        }
    })
    .await
    {
        return vec![format!("pods: {}", crate::kube::one_line(&e))];
    }
    let since = i64::try_from(since.as_secs()).unwrap_or(i64::MAX);
    let reads = futures::stream::iter(wanted).map(|(pod, container, previous)| {
        let (api, sink, namespace) = (api.clone(), sink.clone(), namespace.clone());
        async move {
            let lp = LogParams {
                container: Some(container.clone()),
                previous,
                since_seconds: Some(since),
                tail_lines: Some(LOG_LINES),
                limit_bytes: Some(LOG_BYTES),
                ..LogParams::default()
            };
            match api.logs(&pod, &lp).await {
                Ok(text) => {
                    let suffix = if previous { "-previous" } else { "" };
                    let path = format!("logs/{namespace}/{pod}/{container}{suffix}.log");
                    send(&sink, path, text.into_bytes()).await;
                    None
                }
                // A container that has not started, or has no previous run, has no log.
                Err(kube::Error::Api(s)) if s.code == 400 => None,
                Err(e) => Some(format!("{pod}/{container}: {}", crate::kube::one_line(&e))),
            }
        }
    });
    reads
        .buffer_unordered(LOG_READERS)
        .filter_map(|e| async move { e })
        .collect()
        .await
}

/// The latest revision of a release, for its values.
struct Latest {
    namespace: String,
    release: String,
    revision: u64,
    /// The storage object (`sh.helm.release.v1.<release>.v<N>`) and its kind.
    object: String,
    secret: bool,
}

/// Helm's release history from the release objects' labels (never their payloads); with
/// `values`, each release's user-supplied chart values from its latest revision's payload
/// (`helm/<release>/values.yaml`, as `helm get values` prints them).
async fn helm(client: kube::Client, values: bool, sink: Sink) -> Vec<String> {
    let mut releases = Vec::new();
    let mut latest: BTreeMap<(String, String), Latest> = BTreeMap::new();
    let lp = || ListParams::default().labels("owner=helm");
    let mut errors = Vec::new();
    let mut record = |driver: &str, meta: kube::core::ObjectMeta| {
        let labels = meta.labels.unwrap_or_default();
        let revision = labels.get("version").and_then(|v| v.parse::<u64>().ok());
        let namespace = meta.namespace.unwrap_or_default();
        if let (Some(release), Some(revision), Some(object)) =
            (labels.get("name"), revision, meta.name)
        {
            let key = (namespace.clone(), release.clone());
            if latest.get(&key).is_none_or(|l| l.revision < revision) {
                latest.insert(
                    key,
                    Latest {
                        namespace: namespace.clone(),
                        release: release.clone(),
                        revision,
                        object,
                        secret: driver == "secret",
                    },
                );
            }
        }
        releases.push(serde_json::json!({
            "name": labels.get("name"),
            "namespace": namespace,
            "revision": revision,
            "status": labels.get("status"),
            "modifiedAt": labels.get("modifiedAt"),
            "driver": driver,
        }));
    };
    let r = each_metadata_page(&Api::<Secret>::all(client.clone()), lp(), |page| {
        for m in page {
            record("secret", m);
        }
    })
    .await;
    if let Err(e) = r {
        errors.push(format!("release secrets: {}", crate::kube::one_line(&e)));
    }
    let r = each_metadata_page(&Api::<ConfigMap>::all(client.clone()), lp(), |page| {
        for m in page {
            record("configmap", m);
        }
    })
    .await;
    if let Err(e) = r {
        errors.push(format!(
            "release config maps: {}",
            crate::kube::one_line(&e)
        ));
    }
    releases.sort_by_key(|r| {
        (
            r["namespace"].as_str().unwrap_or("").to_string(),
            r["name"].as_str().unwrap_or("").to_string(),
            r["revision"].as_u64(),
        )
    });
    send(&sink, "helm/history.json".into(), json(&releases)).await;
    if values {
        for l in latest.into_values() {
            match release_values(&client, &l).await {
                Ok(text) => {
                    let path = format!("helm/{}/values.yaml", l.release);
                    send(&sink, path, text.into_bytes()).await;
                }
                Err(e) => errors.push(format!("values of {}/{}: {e}", l.namespace, l.object)),
            }
        }
    }
    errors
}

/// The largest release record read (decompressed); Helm's own limit is the object's 1 MiB.
const RELEASE_MAX: u64 = 64 * 1024 * 1024;

/// The user-supplied values (`config`) of the release record in `l`'s storage object, as
/// YAML. Helm's storage drivers keep base64(gzip(JSON of the release)) under `release`.
async fn release_values(client: &kube::Client, l: &Latest) -> Result<String, String> {
    let encoded: Vec<u8> = if l.secret {
        let api: Api<Secret> = Api::namespaced(client.clone(), &l.namespace);
        let secret = api
            .get(&l.object)
            .await
            .map_err(|e| crate::kube::one_line(&e))?;
        secret
            .data
            .and_then(|mut d| d.remove("release"))
            .map(|b| b.0)
            .unwrap_or_default()
    } else {
        let api: Api<ConfigMap> = Api::namespaced(client.clone(), &l.namespace);
        let cm = api
            .get(&l.object)
            .await
            .map_err(|e| crate::kube::one_line(&e))?;
        cm.data
            .and_then(|mut d| d.remove("release"))
            .map(String::into_bytes)
            .unwrap_or_default()
    };
    let record = decode_release(&encoded)?;
    match record.get("config") {
        None | Some(serde_json::Value::Null) => Ok("{}\n".into()),
        Some(config) => serde_saphyr::to_string(config).map_err(|e| e.to_string()),
    }
}

/// Helm's release record from its stored form: base64, then gzip (Helm writes it gzipped and
/// reads plain JSON too), then JSON.
fn decode_release(encoded: &[u8]) -> Result<serde_json::Value, String> {
    use base64::Engine as _;
    use std::io::Read as _;
    let raw = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim_ascii())
        .map_err(|e| format!("the release record is not base64: {e}"))?;
    let not_json = |e: serde_json::Error| format!("the release record is not JSON: {e}");
    if raw.starts_with(&[0x1f, 0x8b]) {
        let gz = flate2::read::GzDecoder::new(&raw[..]).take(RELEASE_MAX);
        serde_json::from_reader(gz).map_err(not_json)
    } else {
        serde_json::from_slice(&raw).map_err(not_json)
    }
}

/// `health.json`, and `monitoring/alerts.json` from its monitoring findings (firing alerts
/// among them).
/// `doctor.json`: the hop-by-hop walk. Hops that fail are its findings, not the collector's.
async fn doctor(profile: crate::config::Resolved, sink: Sink) -> Vec<String> {
    let d = crate::diagnose::doctor::run(&profile, Default::default()).await;
    send(&sink, "doctor.json".into(), json(&d)).await;
    Vec::new()
}

async fn health(target: Target, timeout: Duration, sink: Sink) -> Vec<String> {
    let options = crate::health::Options {
        // Each check gets a share of the collector's deadline.
        timeout: (timeout / 2).max(Duration::from_secs(1)),
        strict: false,
    };
    let report = crate::health::run(target, options, &|_| {}).await;
    let monitoring: Vec<_> = report
        .checks
        .iter()
        .filter(|f| f.area == Area::Monitoring)
        .collect();
    send(&sink, "monitoring/alerts.json".into(), json(&monitoring)).await;
    send(&sink, "health.json".into(), json(&report)).await;
    Vec::new()
}

fn file_name(hp: &HostPort) -> String {
    hp.to_string()
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '.' || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

async fn postgres(
    dialer: Arc<dyn Dialer>,
    hp: HostPort,
    password: Option<crate::secrets::Secret>,
    sink: Sink,
) -> Vec<String> {
    let session = match datastores::open_postgres(
        dialer.as_ref(),
        &hp,
        password.as_ref(),
        "paragon-admin bundle",
    )
    .await
    {
        Ok(s) => s,
        Err(e) => return vec![format!("{hp}: {e}")],
    };
    let client = &session.client;
    let query = async {
        let version = client.query_one("SHOW server_version", &[]).await?;
        let max = client.query_one("SHOW max_connections", &[]).await?;
        let used = client
            .query_one("SELECT count(*)::bigint FROM pg_stat_activity", &[])
            .await?;
        let dbs = client
            .query(
                "SELECT datname::text, pg_database_size(datname)::bigint FROM pg_database WHERE datallowconn ORDER BY 1",
                &[],
            )
            .await?;
        let max: String = max.get(0);
        Ok::<_, tokio_postgres::Error>(serde_json::json!({
            "address": hp.to_string(),
            "server_version": version.get::<_, String>(0),
            "connections": used.get::<_, i64>(0),
            "max_connections": max.parse::<i64>().ok(),
            "databases": dbs.iter().map(|r| serde_json::json!({
                "name": r.get::<_, String>(0),
                "bytes": r.get::<_, i64>(1),
            })).collect::<Vec<_>>(),
        }))
    };
    let r = query.await;
    drop(session);
    match r {
        Ok(v) => {
            send(
                &sink,
                format!("datastores/postgres-{}.json", file_name(&hp)),
                json(&v),
            )
            .await;
            Vec::new()
        }
        Err(e) => vec![format!("{hp}: {e}")],
    }
}

/// Redis `INFO`, the sections that carry no configuration secrets.
const REDIS_SECTIONS: [&str; 7] = [
    "server",
    "clients",
    "memory",
    "persistence",
    "stats",
    "replication",
    "keyspace",
];

async fn redis(
    dialer: Arc<dyn Dialer>,
    hp: HostPort,
    password: Option<crate::secrets::Secret>,
    sink: Sink,
) -> Vec<String> {
    let mut session = match datastores::open_redis(dialer.as_ref(), &hp, password.as_ref()).await {
        Ok(s) => s,
        Err(e) => return vec![format!("{hp}: {e}")],
    };
    let r = async {
        let mut text = String::new();
        for section in REDIS_SECTIONS {
            let part: String = redis::cmd("INFO")
                .arg(section)
                .query_async(&mut session.client)
                .await?;
            text.push_str(&part);
        }
        Ok::<_, redis::RedisError>(text)
    }
    .await;
    drop(session);
    match r {
        Ok(text) => {
            let path = format!("datastores/redis-{}.txt", file_name(&hp));
            send(&sink, path, text.into_bytes()).await;
            Vec::new()
        }
        Err(e) => vec![format!("{hp}: {e}")],
    }
}

/// MinIO's health endpoints: liveness, and whether the cluster has its write quorum.
const MINIO_PROBES: [&str; 2] = ["/minio/health/live", "/minio/health/cluster"];

/// Each MinIO health endpoint's HTTP status and latency (`datastores/minio-HOST_PORT.json`);
/// an endpoint that did not answer is an error (and its line has no status).
async fn minio(
    dialer: Arc<dyn Dialer>,
    url: HttpUrl,
    ca_file: Option<PathBuf>,
    sink: Sink,
) -> Vec<String> {
    let mut errors = Vec::new();
    let mut probes = Vec::new();
    for path in MINIO_PROBES {
        let begun = std::time::Instant::now();
        let answer = datastores::s3_get(dialer.as_ref(), &url, ca_file.as_deref(), path).await;
        let elapsed_ms = begun.elapsed().as_millis();
        probes.push(match answer {
            Ok(r) => serde_json::json!({ "path": path, "status": r.status, "elapsed_ms": elapsed_ms }),
            Err(e) => {
                errors.push(format!("{path}: {e}"));
                serde_json::json!({ "path": path, "error": e.to_string(), "elapsed_ms": elapsed_ms })
            }
        });
    }
    let v = serde_json::json!({ "url": url.to_string(), "probes": probes });
    let hp = HostPort {
        host: url.host.clone(),
        port: url.port,
    };
    send(
        &sink,
        format!("datastores/minio-{}.json", file_name(&hp)),
        json(&v),
    )
    .await;
    errors
}

/// What the bastion runs: the tools' versions, its OS and its OpenSSH.
const BASTION: [(&str, &str); 4] = [
    ("kubectl-version.txt", "kubectl version --output=yaml 2>&1"),
    ("helm-version.txt", "helm version 2>&1"),
    ("os-release.txt", "cat /etc/os-release 2>&1; uname -a"),
    ("openssh-version.txt", "ssh -V 2>&1"),
];

async fn bastion(b: Arc<dyn Capture + Send + Sync>, sink: Sink) -> Vec<String> {
    let mut errors = Vec::new();
    for (file, command) in BASTION {
        match tokio::time::timeout(REQUEST, b.capture(command, Duration::ZERO)).await {
            Ok(Ok(out)) => {
                let mut text = out.stdout;
                text.extend_from_slice(&out.stderr);
                if out.status != 0 {
                    text.extend_from_slice(format!("\n(exit status {})\n", out.status).as_bytes());
                }
                send(&sink, format!("bastion/{file}"), text).await;
            }
            Ok(Err(e)) => errors.push(format!("{command}: {e}")),
            Err(_) => errors.push(format!(
                "{command}: no answer within {}s",
                REQUEST.as_secs()
            )),
        }
    }
    errors
}

#[cfg(test)]
mod tests {
    use std::io::Write as _;

    use base64::Engine as _;

    use super::*;

    #[test]
    fn a_release_record_decodes_gzipped_or_plain() {
        let record = br#"{"name":"paragon-on-prem","config":{"a":1}}"#;
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        gz.write_all(record).unwrap();
        let b64 = base64::engine::general_purpose::STANDARD;
        let zipped = b64.encode(gz.finish().unwrap());
        let v = decode_release(zipped.as_bytes()).unwrap();
        assert_eq!(v["config"]["a"], 1);
        let v = decode_release(b64.encode(record).as_bytes()).unwrap();
        assert_eq!(v["name"], "paragon-on-prem");
        let e = decode_release(b"not base64!").unwrap_err();
        assert!(e.starts_with("the release record is not base64"), "{e}");
    }
}
