//! `[profiles.X.thresholds]`: the warning and failure levels of the capacity signals, one
//! inline table per signal (`memory = { warn = 85, fail = 95 }`), either level alone allowed.
//! Paragon publishes no numbers (its "System Metrics and Alarms" page names what is watched,
//! not at what level), so the defaults below are ours; each says why it is where it is, and
//! the README's runbook repeats them. Knows nothing of Prometheus or of the queries.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Deserializer, Serialize};

/// Which way a value goes bad.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Direction {
    /// Bad when high (usage, backlog, errors).
    Above,
    /// Bad when low (free space, days left).
    Below,
}

/// What a signal's value counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Unit {
    Percent,
    Count,
    Seconds,
    Days,
}

impl Unit {
    /// What follows a number: ` %`, ` s`, ` days`, nothing for a count.
    pub fn suffix(self) -> &'static str {
        match self {
            Unit::Percent => " %",
            Unit::Count => "",
            Unit::Seconds => " s",
            Unit::Days => " days",
        }
    }

    /// Grafana's unit id for a panel.
    pub fn grafana(self) -> &'static str {
        match self {
            Unit::Percent => "percent",
            Unit::Count => "short",
            Unit::Seconds => "s",
            Unit::Days => "d",
        }
    }

    /// `97 %`, `12`, `30 s`, `1.5 days`.
    pub fn format(self, v: f64) -> String {
        let n = if v.abs() >= 100.0 || v.fract() == 0.0 {
            format!("{v:.0}")
        } else {
            format!("{v:.1}")
        };
        format!("{n}{}", self.suffix())
    }
}

/// One signal's default levels and the reason for them.
#[derive(Debug, Clone, Copy)]
pub struct Level {
    pub key: &'static str,
    pub direction: Direction,
    pub unit: Unit,
    pub warn: f64,
    pub fail: f64,
    pub why: &'static str,
}

const fn above(key: &'static str, unit: Unit, warn: f64, fail: f64, why: &'static str) -> Level {
    Level {
        key,
        direction: Direction::Above,
        unit,
        warn,
        fail,
        why,
    }
}

const fn below(key: &'static str, unit: Unit, warn: f64, fail: f64, why: &'static str) -> Level {
    Level {
        key,
        direction: Direction::Below,
        unit,
        warn,
        fail,
        why,
    }
}

use Unit::{Count, Days, Percent, Seconds};

/// Every signal's key and default levels.
#[rustfmt::skip]
pub const LEVELS: &[Level] = &[
    above("cpu", Percent, 80.0, 95.0, "a service near its CPU limit is throttled on the next burst"),
    above("cpu_throttling", Percent, 25.0, 50.0, "a quarter of periods throttled shows as latency; half is an outage in slow motion"),
    above("node_cpu", Percent, 80.0, 95.0, "a node busier than this cannot absorb a rescheduled pod"),
    above("memory", Percent, 90.0, 97.0, "the working set is what the OOM killer compares with the limit"),
    above("oom_kills", Count, 1.0, 1.0, "any OOM kill in the last hour lost work"),
    above("node_memory", Percent, 90.0, 97.0, "past this the kubelet starts evicting pods"),
    above("restarts", Count, 2.0, 5.0, "the daily restart job replaces pods, it does not restart containers: other restarts are crashes"),
    above("queue_backlog", Count, 1000.0, 10000.0, "waiting and delayed jobs that workers do not drain within minutes"),
    above("queue_failed", Count, 100.0, 1000.0, "failed jobs kept in Redis grow its memory and hide new failures"),
    above("queue_failed_growth", Count, 10.0, 100.0, "jobs failing now, in the last hour"),
    above("postgres_connections", Percent, 80.0, 95.0, "past max_connections every service's new connection is refused"),
    above("postgres_deadlocks", Count, 1.0, 10.0, "deadlocks in the last hour: each one aborted a transaction"),
    above("postgres_replication_lag", Seconds, 30.0, 300.0, "a replica this far behind loses that much on failover"),
    above("redis_memory", Percent, 80.0, 95.0, "at maxmemory Redis evicts or refuses writes, and Bull's queues live there"),
    above("redis_evictions", Count, 1.0, 1000.0, "an evicted queue key is a lost job"),
    above("redis_rejected_connections", Count, 1.0, 100.0, "connections refused at maxclients in the last hour"),
    above("redis_blocked_clients", Count, 500.0, 2000.0, "Bull's workers block on their queues by design: only far more than the workers is a problem"),
    below("disk_free", Percent, 15.0, 5.0, "a node's filesystem below this evicts pods (the kubelet's own hard limit is 10 %)"),
    below("disk_days_to_full", Days, 7.0, 2.0, "a week to act at the last six hours' rate; two days is urgent"),
    below("pvc_free", Percent, 15.0, 5.0, "a full volume stops Postgres, Redis or MinIO"),
    below("pvc_days_to_full", Days, 7.0, 2.0, "a week to grow the volume at the last six hours' rate"),
    above("errors_5xx", Percent, 1.0, 5.0, "share of the ingress's requests to a service answered 5xx in the last 5 minutes"),
];

/// The keys, for messages.
pub fn keys() -> String {
    LEVELS.iter().map(|l| l.key).collect::<Vec<_>>().join(", ")
}

/// The level table of `key`, if it is a signal's.
pub fn level(key: &str) -> Option<&'static Level> {
    LEVELS.iter().find(|l| l.key == key)
}

/// `[profiles.X.thresholds] KEY = { warn = .., fail = .. }` as written.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimitConfig {
    pub warn: Option<Value>,
    pub fail: Option<Value>,
}

/// A TOML integer or float, read as a number whichever it is.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Value(pub f64);

impl<'de> Deserialize<'de> for Value {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl serde::de::Visitor<'_> for Visitor {
            type Value = Value;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a number")
            }
            fn visit_i64<E: serde::de::Error>(self, n: i64) -> Result<Value, E> {
                Ok(Value(n as f64))
            }
            fn visit_u64<E: serde::de::Error>(self, n: u64) -> Result<Value, E> {
                Ok(Value(n as f64))
            }
            fn visit_f64<E: serde::de::Error>(self, n: f64) -> Result<Value, E> {
                if n.is_finite() {
                    Ok(Value(n))
                } else {
                    Err(E::custom("expected a finite number"))
                }
            }
        }
        d.deserialize_any(Visitor)
    }
}

/// The levels in force for one signal.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Limit {
    pub warn: f64,
    pub fail: f64,
}

/// The levels in force for every signal: the defaults with the profile's overrides.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Thresholds(BTreeMap<String, Limit>);

impl Default for Thresholds {
    fn default() -> Self {
        Thresholds(
            LEVELS
                .iter()
                .map(|l| {
                    let limit = Limit {
                        warn: l.warn,
                        fail: l.fail,
                    };
                    (l.key.to_string(), limit)
                })
                .collect(),
        )
    }
}

impl Thresholds {
    /// The defaults overridden by a profile's table (already checked by `check`).
    pub fn with(overrides: &BTreeMap<String, toml::Spanned<LimitConfig>>) -> Self {
        let mut t = Thresholds::default();
        for (key, cfg) in overrides {
            if let Some(limit) = t.0.get_mut(key) {
                let cfg = cfg.get_ref();
                if let Some(v) = cfg.warn {
                    limit.warn = v.0;
                }
                if let Some(v) = cfg.fail {
                    limit.fail = v.0;
                }
            }
        }
        t
    }

    /// The levels of signal `key` (a key of `LEVELS`; an unknown one never warns or fails).
    pub fn get(&self, key: &str) -> Limit {
        self.0.get(key).copied().unwrap_or(Limit {
            warn: f64::INFINITY,
            fail: f64::INFINITY,
        })
    }
}

/// Why a profile's `KEY = {..}` cannot be used: an unknown signal, a percentage outside
/// 0-100, a negative count, or a warning level past the failure level.
pub fn check(key: &str, cfg: &LimitConfig) -> Result<(), String> {
    let Some(level) = level(key) else {
        return Err(format!("unknown signal (signals: {})", keys()));
    };
    let warn = cfg.warn.map_or(level.warn, |v| v.0);
    let fail = cfg.fail.map_or(level.fail, |v| v.0);
    for (name, v) in [("warn", warn), ("fail", fail)] {
        if v < 0.0 || (level.unit == Unit::Percent && v > 100.0) {
            let range = match level.unit {
                Unit::Percent => "0-100 %",
                _ => "0 or more",
            };
            return Err(format!("{name} = {v} is out of range ({range})"));
        }
    }
    match level.direction {
        Direction::Above if warn > fail => Err(format!(
            "warn ({warn}) is above fail ({fail}): this signal is bad when high, so warn must not exceed fail"
        )),
        Direction::Below if warn < fail => Err(format!(
            "warn ({warn}) is below fail ({fail}): this signal is bad when low, so warn must not be under fail"
        )),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(warn: Option<f64>, fail: Option<f64>) -> LimitConfig {
        LimitConfig {
            warn: warn.map(Value),
            fail: fail.map(Value),
        }
    }

    #[test]
    fn every_default_is_in_its_own_range_and_order() {
        for l in LEVELS {
            assert_eq!(check(l.key, &LimitConfig::default()), Ok(()), "{}", l.key);
        }
        let t = Thresholds::default();
        assert_eq!(
            t.get("memory"),
            Limit {
                warn: 90.0,
                fail: 97.0
            }
        );
    }

    #[test]
    fn levels_are_checked_against_the_direction_and_unit() {
        assert!(
            check("memory", &cfg(Some(98.0), None))
                .unwrap_err()
                .contains("warn (98) is above fail (97)")
        );
        assert!(
            check("disk_free", &cfg(Some(3.0), None))
                .unwrap_err()
                .contains("bad when low")
        );
        assert!(
            check("memory", &cfg(None, Some(120.0)))
                .unwrap_err()
                .contains("0-100 %")
        );
        assert!(
            check("restarts", &cfg(Some(-1.0), None))
                .unwrap_err()
                .contains("0 or more")
        );
        assert!(
            check("memroy", &cfg(None, None))
                .unwrap_err()
                .starts_with("unknown signal (signals: cpu,")
        );
        assert_eq!(check("memory", &cfg(Some(85.0), Some(90.0))), Ok(()));
    }

    #[test]
    fn values_print_with_their_unit() {
        assert_eq!(Unit::Percent.format(97.0), "97 %");
        assert_eq!(Unit::Percent.format(12.345), "12.3 %");
        assert_eq!(Unit::Days.format(1.5), "1.5 days");
        assert_eq!(Unit::Count.format(12000.4), "12000");
    }
}
