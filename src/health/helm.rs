//! Helm releases whose latest revision is not `deployed`. Helm keeps each revision as a
//! secret labelled `owner=helm`, `name`, `version` and `status`: a metadata-only list reads
//! those labels and never fetches (or decodes) the release payloads.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, ListParams};
use kube::core::ObjectMeta;

use super::{CheckResult, Finding};
use crate::kube::list::each_metadata_page;

/// The latest revision seen of one release.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Latest {
    pub version: u64,
    pub status: String,
}

pub async fn check(client: kube::Client) -> CheckResult {
    let mut releases: BTreeMap<(String, String), Latest> = BTreeMap::new();
    each_metadata_page(
        &Api::<Secret>::all(client),
        ListParams::default().labels("owner=helm"),
        |page| {
            for m in &page {
                add(&mut releases, m);
            }
        },
    )
    .await?;
    let mut findings = Vec::new();
    let mut deployed = 0usize;
    for ((ns, name), latest) in &releases {
        let subject = format!("{ns}/release/{name}");
        match latest.status.as_str() {
            "deployed" => deployed += 1,
            s if s.starts_with("pending-") => findings.push(Finding::warn(
                subject,
                format!(
                    "revision {} is {s}: an install or upgrade is running or was interrupted",
                    latest.version
                ),
            )),
            s => findings.push(Finding::fail(
                subject,
                format!("latest revision {} is {s}, not deployed", latest.version),
            )),
        }
    }
    findings.push(Finding::ok(
        "releases",
        format!("{deployed} of {} Helm releases deployed", releases.len()),
    ));
    Ok(findings)
}

fn add(releases: &mut BTreeMap<(String, String), Latest>, m: &ObjectMeta) {
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
    let key = (m.namespace.clone().unwrap_or_default(), name.clone());
    let entry = releases.entry(key).or_insert(Latest {
        version: 0,
        status: String::new(),
    });
    if version >= entry.version {
        *entry = Latest {
            version,
            status: status.clone(),
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn meta(version: &str, status: &str) -> ObjectMeta {
        serde_json::from_value(
            json!({"name": format!("sh.helm.release.v1.p.v{version}"), "namespace": "paragon",
            "labels": {"owner": "helm", "name": "p", "version": version, "status": status}}),
        )
        .unwrap()
    }

    #[test]
    fn the_highest_revision_wins_whatever_the_order() {
        let mut r = BTreeMap::new();
        add(&mut r, &meta("10", "failed"));
        add(&mut r, &meta("9", "deployed"));
        add(&mut r, &meta("2", "superseded"));
        let latest = &r[&("paragon".to_string(), "p".to_string())];
        assert_eq!((latest.version, latest.status.as_str()), (10, "failed"));
    }
}
