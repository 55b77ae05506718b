//! The capacity signals: one table, read by the report (`capacity`), the alert rules and the
//! dashboard (`crate::monitoring`), so the three can never disagree. Each signal is one PromQL
//! expression giving one series per subject (a service, a queue, an instance, a volume), its
//! levels in `config::thresholds` under the same key, and a runbook anchor in the README.
//!
//! The metric names are the exporters' own: cAdvisor (through the kubelet) for containers,
//! kube-state-metrics for limits and restarts, node-exporter, UpHabit's bull_exporter (the
//! monitoring release's bull-exporter), prometheus-community's postgres_exporter and
//! oliver006's redis_exporter, the kubelet's volume stats and ingress-nginx's controller.
//! Paragon's containers are named after their service, so `container` names the service.
//! A service's CPU is the last two samples' rate (`irate`, as kube-prometheus' own
//! container CPU rules take it): `rate` over a window divides by the whole window, so it
//! reads low until Prometheus has held the series that long. Shares (throttling, 5xx, a
//! node's busy time) are ratios of rates, which holds from the second sample on.

use crate::config::thresholds::{self, Level};

/// A dashboard row and a runbook section: what a signal is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Group {
    Cpu,
    Memory,
    Restarts,
    Queues,
    Postgres,
    Redis,
    Disk,
    Errors,
}

impl Group {
    pub const ALL: [Group; 8] = [
        Group::Cpu,
        Group::Memory,
        Group::Restarts,
        Group::Queues,
        Group::Postgres,
        Group::Redis,
        Group::Disk,
        Group::Errors,
    ];

    pub fn title(self) -> &'static str {
        match self {
            Group::Cpu => "CPU",
            Group::Memory => "Memory",
            Group::Restarts => "Restarts",
            Group::Queues => "Queues",
            Group::Postgres => "PostgreSQL",
            Group::Redis => "Redis",
            Group::Disk => "Disk",
            Group::Errors => "Errors",
        }
    }
}

/// When the expression has no series at all.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Empty {
    /// The exporter is not scraped (or not deployed): the signal is not checked.
    NotChecked,
    /// Nothing to report is the good case (no replica, no volume filling up, no OOM kill).
    Ok(&'static str),
}

/// One capacity signal.
#[derive(Debug, Clone, Copy)]
pub struct Signal {
    /// The key of its levels in `[profiles.X.thresholds]` and of its rules.
    pub key: &'static str,
    pub group: Group,
    /// PromQL: one series per subject, the value in the unit of its levels.
    pub query: &'static str,
    /// The label that names the subject, and what to call it.
    pub by: &'static str,
    pub noun: &'static str,
    /// What the value is, after the subject: `hermes: {what} 93 %`.
    pub what: &'static str,
    /// Who exports the series (for "not checked" and the runbook).
    pub source: &'static str,
    pub empty: Empty,
}

impl Signal {
    /// Its default levels, direction and unit.
    pub fn level(&self) -> &'static Level {
        thresholds::level(self.key).unwrap_or(&thresholds::LEVELS[0])
    }

    /// The README's runbook anchor for this signal.
    pub fn runbook(&self) -> String {
        format!("README.md#runbook-{}", self.key.replace('_', "-"))
    }

    /// `ParagonRedisMemory`: the alert's name without its severity.
    pub fn alert_name(&self) -> String {
        let mut name = String::from("Paragon");
        for part in self.key.split('_') {
            let mut c = part.chars();
            if let Some(first) = c.next() {
                name.extend(first.to_uppercase());
                name.push_str(c.as_str());
            }
        }
        name
    }
}

const fn signal(
    key: &'static str,
    group: Group,
    query: &'static str,
    (by, noun): (&'static str, &'static str),
    what: &'static str,
    source: &'static str,
    empty: Empty,
) -> Signal {
    Signal {
        key,
        group,
        query,
        by,
        noun,
        what,
        source,
        empty,
    }
}

const SERVICE: (&str, &str) = ("container", "service");
const NODE: (&str, &str) = ("instance", "node");
const QUEUE: (&str, &str) = ("queue", "queue");
const INSTANCE: (&str, &str) = ("instance", "instance");
const PVC: (&str, &str) = ("persistentvolumeclaim", "volume claim");
const MOUNT: (&str, &str) = ("mountpoint", "filesystem");

/// Every signal, in report order. Filesystems exclude the kernel's and containers' own.
#[rustfmt::skip]
pub const SIGNALS: &[Signal] = &[
    signal("cpu", Group::Cpu,
        r#"max by (container) (sum by (container, pod) (irate(container_cpu_usage_seconds_total{namespace="paragon",container!="",container!="POD"}[5m])) / sum by (container, pod) (kube_pod_container_resource_limits{namespace="paragon",resource="cpu"})) * 100"#,
        SERVICE, "CPU use of its limit (busiest pod)", "cAdvisor and kube-state-metrics", Empty::NotChecked),
    signal("cpu_throttling", Group::Cpu,
        r#"max by (container) (rate(container_cpu_cfs_throttled_periods_total{namespace="paragon",container!=""}[5m]) / rate(container_cpu_cfs_periods_total{namespace="paragon",container!=""}[5m])) * 100"#,
        SERVICE, "CPU periods throttled", "cAdvisor", Empty::NotChecked),
    signal("node_cpu", Group::Cpu,
        r#"(1 - sum by (instance) (rate(node_cpu_seconds_total{mode="idle"}[5m])) / sum by (instance) (rate(node_cpu_seconds_total[5m]))) * 100"#,
        NODE, "CPU busy", "node-exporter", Empty::NotChecked),
    signal("memory", Group::Memory,
        r#"max by (container) (sum by (container, pod) (container_memory_working_set_bytes{namespace="paragon",container!="",container!="POD"}) / sum by (container, pod) (kube_pod_container_resource_limits{namespace="paragon",resource="memory"})) * 100"#,
        SERVICE, "memory working set of its limit (largest pod)", "cAdvisor and kube-state-metrics", Empty::NotChecked),
    signal("oom_kills", Group::Memory,
        r#"sum by (container) (increase(container_oom_events_total{namespace="paragon",container!=""}[1h])) > 0"#,
        SERVICE, "OOM kills in the last hour", "cAdvisor", Empty::Ok("no OOM kill in the last hour")),
    signal("node_memory", Group::Memory,
        r#"(1 - node_memory_MemAvailable_bytes / node_memory_MemTotal_bytes) * 100"#,
        NODE, "memory in use", "node-exporter", Empty::NotChecked),
    signal("restarts", Group::Restarts,
        r#"sum by (container) (increase(kube_pod_container_status_restarts_total{namespace="paragon",pod!~"restart-paragon-pods-cronjob-.*"}[1h]))"#,
        SERVICE, "container restarts in the last hour", "kube-state-metrics", Empty::NotChecked),
    signal("queue_backlog", Group::Queues,
        r#"sum by (queue) (bull_queue_waiting + bull_queue_delayed)"#,
        QUEUE, "jobs waiting or delayed", "bull-exporter", Empty::NotChecked),
    signal("queue_failed", Group::Queues,
        r#"sum by (queue) (bull_queue_failed)"#,
        QUEUE, "failed jobs kept", "bull-exporter", Empty::NotChecked),
    signal("queue_failed_growth", Group::Queues,
        r#"sum by (queue) (clamp_min(delta(bull_queue_failed[1h]), 0))"#,
        QUEUE, "jobs failed in the last hour", "bull-exporter", Empty::NotChecked),
    signal("postgres_connections", Group::Postgres,
        r#"sum by (instance) (pg_stat_activity_count) / max by (instance) (pg_settings_max_connections) * 100"#,
        INSTANCE, "connections of max_connections", "postgres-exporter", Empty::NotChecked),
    signal("postgres_deadlocks", Group::Postgres,
        r#"sum by (instance) (increase(pg_stat_database_deadlocks[1h]))"#,
        INSTANCE, "deadlocks in the last hour", "postgres-exporter", Empty::NotChecked),
    signal("postgres_replication_lag", Group::Postgres,
        r#"max by (instance) (pg_replication_lag) and on (instance) (max by (instance) (pg_replication_is_replica) == 1)"#,
        INSTANCE, "replication lag", "postgres-exporter", Empty::Ok("no replica")),
    signal("redis_memory", Group::Redis,
        r#"max by (instance) (redis_memory_used_bytes / (redis_memory_max_bytes > 0)) * 100"#,
        INSTANCE, "memory of maxmemory", "redis-exporter (and a maxmemory set)", Empty::NotChecked),
    signal("redis_evictions", Group::Redis,
        r#"sum by (instance) (increase(redis_evicted_keys_total[1h]))"#,
        INSTANCE, "keys evicted in the last hour", "redis-exporter", Empty::NotChecked),
    signal("redis_rejected_connections", Group::Redis,
        r#"sum by (instance) (increase(redis_rejected_connections_total[1h]))"#,
        INSTANCE, "connections rejected in the last hour", "redis-exporter", Empty::NotChecked),
    signal("redis_blocked_clients", Group::Redis,
        r#"max by (instance) (redis_blocked_clients)"#,
        INSTANCE, "blocked clients", "redis-exporter", Empty::NotChecked),
    signal("disk_free", Group::Disk,
        r#"min by (instance, mountpoint) (node_filesystem_avail_bytes{fstype!~"tmpfs|ramfs|overlay|squashfs|nsfs|fuse.*"} / node_filesystem_size_bytes{fstype!~"tmpfs|ramfs|overlay|squashfs|nsfs|fuse.*"}) * 100"#,
        MOUNT, "free", "node-exporter", Empty::NotChecked),
    signal("disk_days_to_full", Group::Disk,
        r#"min by (instance, mountpoint) (node_filesystem_avail_bytes{fstype!~"tmpfs|ramfs|overlay|squashfs|nsfs|fuse.*"} / (-deriv(node_filesystem_avail_bytes{fstype!~"tmpfs|ramfs|overlay|squashfs|nsfs|fuse.*"}[6h]) > 0)) / 86400"#,
        MOUNT, "days to full at the last six hours' rate", "node-exporter", Empty::Ok("no filesystem filling up at the last six hours' rate")),
    signal("pvc_free", Group::Disk,
        r#"min by (persistentvolumeclaim) (kubelet_volume_stats_available_bytes{namespace="paragon"} / kubelet_volume_stats_capacity_bytes{namespace="paragon"}) * 100"#,
        PVC, "free", "the kubelet's volume stats", Empty::NotChecked),
    signal("pvc_days_to_full", Group::Disk,
        r#"min by (persistentvolumeclaim) (kubelet_volume_stats_available_bytes{namespace="paragon"} / (-deriv(kubelet_volume_stats_available_bytes{namespace="paragon"}[6h]) > 0)) / 86400"#,
        PVC, "days to full at the last six hours' rate", "the kubelet's volume stats", Empty::Ok("no volume filling up at the last six hours' rate")),
    signal("errors_5xx", Group::Errors,
        r#"sum by (service) (rate(nginx_ingress_controller_requests{namespace="paragon",status=~"5.."}[5m])) / sum by (service) (rate(nginx_ingress_controller_requests{namespace="paragon"}[5m])) * 100"#,
        ("service", "service"), "requests answered 5xx by the ingress", "ingress-nginx's controller metrics", Empty::NotChecked),
];

/// One series of a signal: its subject's labels and its value in the unit of its levels.
#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    pub labels: serde_json::Map<String, serde_json::Value>,
    pub value: f64,
}

/// The label values that name a series' subject: `hermes`, `10.0.0.5:9100 /var`.
pub fn subject_of(signal: &Signal, labels: &serde_json::Map<String, serde_json::Value>) -> String {
    let get = |k: &str| labels.get(k).and_then(|v| v.as_str()).unwrap_or("");
    match signal.by {
        "mountpoint" => format!("{} {}", get("instance"), get("mountpoint")),
        by => get(by).to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_signal_has_levels_and_every_level_a_signal() {
        for s in SIGNALS {
            assert!(
                thresholds::level(s.key).is_some(),
                "{} has no levels",
                s.key
            );
        }
        for l in thresholds::LEVELS {
            assert!(
                SIGNALS.iter().any(|s| s.key == l.key),
                "{} has no signal",
                l.key
            );
        }
        assert_eq!(SIGNALS.len(), thresholds::LEVELS.len());
    }

    #[test]
    fn names_and_anchors() {
        let s = SIGNALS.iter().find(|s| s.key == "redis_memory").unwrap();
        assert_eq!(s.alert_name(), "ParagonRedisMemory");
        assert_eq!(s.runbook(), "README.md#runbook-redis-memory");
    }
}
