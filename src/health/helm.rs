//! Helm releases whose latest revision is not `deployed`. Helm keeps each revision as a
//! Secret (the default driver) or a ConfigMap (`HELM_DRIVER=configmap`) labelled
//! `owner=helm`, `name`, `version`, `status` and (Helm 3.9+) `modifiedAt`: metadata-only
//! lists read those labels and never fetch (or decode) the release payloads.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use kube::api::Api;
use kube::core::ObjectMeta;

use super::{CheckResult, Finding, count, human};
use crate::kube::list::each_metadata_page;

/// A `pending-*` revision older than this is not running any more: Paragon installs with a
/// 900 s timeout (PARAGON.md), so Helm gave up long ago and the revision blocks every later
/// upgrade ("another operation is in progress").
const PENDING_STALE: SignedDuration = SignedDuration::from_mins(30);

/// The latest revision seen of one release.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Latest {
    pub version: u64,
    pub status: String,
    /// When Helm last wrote this revision (`modifiedAt`, Unix seconds), if it says.
    pub modified: Option<Timestamp>,
    /// `secret` or `configmap`: where the release is stored.
    pub driver: &'static str,
}

type Releases = BTreeMap<(String, String), Latest>;

pub async fn check(client: kube::Client, now: Timestamp) -> CheckResult {
    let mut releases = Releases::new();
    let lp = || super::lists().labels("owner=helm");
    each_metadata_page(&Api::<Secret>::all(client.clone()), lp(), |page| {
        for m in &page {
            add(&mut releases, m, "secret");
        }
    })
    .await?;
    each_metadata_page(&Api::<ConfigMap>::all(client), lp(), |page| {
        for m in &page {
            add(&mut releases, m, "configmap");
        }
    })
    .await?;
    Ok(judge(&releases, now))
}

fn judge(releases: &Releases, now: Timestamp) -> Vec<Finding> {
    let mut findings = Vec::new();
    let (mut deployed, mut uninstalled) = (0usize, 0usize);
    for ((ns, name), latest) in releases {
        let subject = format!("{ns}/release/{name}");
        let v = latest.version;
        match latest.status.as_str() {
            "deployed" => deployed += 1,
            // `helm uninstall --keep-history`: removed on purpose, the history kept.
            "uninstalled" => uninstalled += 1,
            s if s.starts_with("pending-") || s == "uninstalling" => {
                let age = latest.modified.map(|t| now.duration_since(t));
                findings.push(match age {
                    Some(age) if age > PENDING_STALE => Finding::fail(
                        subject,
                        format!(
                            "revision {v} has been {s} for {}: it blocks every later upgrade; \
                             roll back with `helm rollback {name} -n {ns}`",
                            human(age)
                        ),
                    ),
                    Some(age) => Finding::warn(
                        subject,
                        format!(
                            "revision {v} is {s} (for {}): an operation is running",
                            human(age)
                        ),
                    ),
                    None => Finding::warn(
                        subject,
                        format!("revision {v} is {s}: an operation is running or was interrupted"),
                    ),
                });
            }
            s => findings.push(Finding::fail(
                subject,
                format!("latest revision {v} is {s}, not deployed"),
            )),
        }
    }
    let kept = if uninstalled > 0 {
        format!(", {uninstalled} uninstalled with history kept")
    } else {
        String::new()
    };
    let in_configmaps = releases
        .values()
        .filter(|l| l.driver == "configmap")
        .count();
    let stored = if in_configmaps > 0 {
        format!(" ({in_configmaps} stored in ConfigMaps)")
    } else {
        String::new()
    };
    findings.push(Finding::ok(
        "releases",
        format!(
            "{deployed} of {} deployed{kept}{stored}",
            count(releases.len(), "Helm release", "Helm releases")
        ),
    ));
    findings
}

fn add(releases: &mut Releases, m: &ObjectMeta, driver: &'static str) {
    let Some(labels) = m.labels.as_ref() else {
        return;
    };
    let (Some(name), Some(version), Some(status)) = (
        labels.get("name"),
        labels.get("version").and_then(|v| v.parse::<u64>().ok()),
        labels.get("status"),
    ) else {
        return;
    };
    let modified = labels
        .get("modifiedAt")
        .and_then(|s| s.parse::<i64>().ok())
        .and_then(|s| Timestamp::from_second(s).ok());
    let key = (m.namespace.clone().unwrap_or_default(), name.clone());
    let latest = Latest {
        version,
        status: status.clone(),
        modified,
        driver,
    };
    match releases.get(&key) {
        Some(seen) if seen.version > version => {}
        _ => {
            releases.insert(key, latest);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::health::Severity;
    use serde_json::json;

    fn meta(version: &str, status: &str) -> ObjectMeta {
        serde_json::from_value(
            json!({"name": format!("sh.helm.release.v1.p.v{version}"), "namespace": "paragon",
            "labels": {"owner": "helm", "name": "p", "version": version, "status": status}}),
        )
        .unwrap()
    }

    fn now() -> Timestamp {
        "2026-01-01T12:00:00Z".parse().unwrap()
    }

    #[test]
    fn the_highest_revision_wins_whatever_the_order() {
        let mut r = BTreeMap::new();
        add(&mut r, &meta("10", "failed"), "secret");
        add(&mut r, &meta("9", "deployed"), "secret");
        add(&mut r, &meta("2", "superseded"), "secret");
        let latest = &r[&("paragon".to_string(), "p".to_string())];
        assert_eq!((latest.version, latest.status.as_str()), (10, "failed"));
    }

    #[test]
    fn a_release_uninstalled_with_kept_history_is_not_a_failure() {
        let mut r = BTreeMap::new();
        add(&mut r, &meta("3", "uninstalled"), "secret");
        add(&mut r, &meta("2", "superseded"), "secret");
        let f = judge(&r, now());
        assert_eq!(f.len(), 1, "{f:?}");
        assert_eq!(f[0].severity, Severity::Ok);
        assert_eq!(
            f[0].message,
            "0 of 1 Helm release deployed, 1 uninstalled with history kept"
        );
    }

    #[test]
    fn a_pending_revision_older_than_the_threshold_fails_a_young_one_warns() {
        // Helm's storage driver labels (pkg/storage/driver/util.go): modifiedAt in Unix seconds.
        let pending = |modified: &str| -> ObjectMeta {
            serde_json::from_value(json!({"name": "sh.helm.release.v1.p.v4", "namespace": "paragon",
                "labels": {"owner": "helm", "name": "p", "version": "4", "status": "pending-upgrade",
                  "modifiedAt": modified}}))
            .unwrap()
        };
        let two_hours_ago = (now().as_second() - 7200).to_string();
        let mut r = BTreeMap::new();
        add(&mut r, &pending(&two_hours_ago), "secret");
        let f = judge(&r, now());
        assert_eq!(f[0].severity, Severity::Fail);
        assert!(
            f[0].message.starts_with(
                "revision 4 has been pending-upgrade for 2h: it blocks every later upgrade"
            ),
            "{}",
            f[0].message
        );
        let a_minute_ago = (now().as_second() - 60).to_string();
        let mut r = BTreeMap::new();
        add(&mut r, &pending(&a_minute_ago), "secret");
        assert_eq!(judge(&r, now())[0].severity, Severity::Warn);
    }

    #[test]
    fn releases_stored_in_configmaps_are_judged_like_secrets() {
        let mut r = BTreeMap::new();
        add(&mut r, &meta("1", "deployed"), "secret");
        let mut cm = meta("7", "failed");
        cm.namespace = Some("logging".into());
        add(&mut r, &cm, "configmap");
        let f = judge(&r, now());
        assert_eq!(f[0].subject, "logging/release/p");
        assert_eq!(f[0].message, "latest revision 7 is failed, not deployed");
        assert_eq!(
            f[1].message,
            "1 of 2 Helm releases deployed (1 stored in ConfigMaps)"
        );
    }
}
