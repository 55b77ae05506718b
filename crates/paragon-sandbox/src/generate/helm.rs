//! Helm's release history as Helm 3's storage drivers write it (helm/helm
//! `pkg/storage/driver/secrets.go` and `cfgmaps.go`): one object per revision, named
//! `sh.helm.release.v1.<release>.v<N>`, labelled `owner=helm`, `name`, `status`, `version`
//! and `modifiedAt`, holding base64(gzip(JSON of the release)): a Secret of type
//! `helm.sh/release.v1` by default, a ConfigMap with `HELM_DRIVER=configmap`. Statuses as
//! `pkg/release/status.go` names them: `deployed`, `superseded`, `failed`, `uninstalled`,
//! `pending-upgrade`.

use std::collections::BTreeMap;
use std::io::Write as _;

use base64::Engine as _;
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::{ConfigMap, Secret};

use super::tables::{Driver, RELEASES};
use super::{DAY, Gen, HOUR, MINUTE, PARAGON, fault_annotations, has, labels, s};
use crate::store::{Cell, Res};
use crate::{Fault, SandboxError};

/// One revision of a release, as the payload records it.
struct Revision<'a> {
    release: &'a str,
    chart: &'a str,
    version: &'a str,
    revision: i64,
    status: &'a str,
    description: &'a str,
    first_deployed: i64,
    last_deployed: i64,
    /// When it was uninstalled, for `uninstalled`.
    deleted: Option<i64>,
}

impl Gen<'_> {
    /// Each release's history: the latest revision `deployed` (or `uninstalled`), older ones
    /// `superseded`; with a fault, one more revision `failed` or `pending-upgrade`.
    pub(super) fn helm_releases(&mut self, app_version: &str) -> Result<(), SandboxError> {
        for r in &RELEASES {
            let release = r.name;
            let version = r.version.unwrap_or(app_version);
            let revisions = 2 + self.rng.below(6) as i64;
            let last_deployed = self.now - r.age - self.rng.range(0, DAY);
            let extra = if release == "paragon-on-prem" && has(self.opts, Fault::FailedRelease) {
                Some(Fault::FailedRelease)
            } else if release == "paragon-monitoring" && has(self.opts, Fault::PendingRelease) {
                Some(Fault::PendingRelease)
            } else {
                None
            };
            let total = revisions + i64::from(extra.is_some());
            for rev in 1..=total {
                let mut when = if rev == revisions + 1 {
                    self.now - 25 * MINUTE
                } else {
                    last_deployed - (revisions - rev) * 14 * DAY
                };
                let complete = if rev == 1 {
                    "Install complete".to_string()
                } else {
                    "Upgrade complete".to_string()
                };
                let mut deleted = None;
                let (status, description, fault) = if rev == revisions + 1 {
                    match extra {
                        Some(Fault::PendingRelease) => {
                            // Helm's upgrade stores the new revision pending before it
                            // applies anything; a killed helm leaves it so.
                            when = self.now - 3 * HOUR;
                            ("pending-upgrade", "Preparing upgrade".to_string(), extra)
                        }
                        _ => (
                            "failed",
                            format!("Upgrade \"{release}\" failed: context deadline exceeded"),
                            extra,
                        ),
                    }
                } else if rev == revisions && r.uninstalled {
                    let at = last_deployed + 9 * DAY;
                    deleted = Some(at);
                    when = at;
                    ("uninstalled", "Uninstallation complete".to_string(), None)
                } else if rev == revisions {
                    ("deployed", complete, None)
                } else {
                    ("superseded", complete, None)
                };
                let payload = helm_payload(&Revision {
                    release,
                    chart: r.chart,
                    version,
                    revision: rev,
                    status,
                    description: &description,
                    first_deployed: last_deployed - (revisions - 1) * 14 * DAY,
                    last_deployed: if deleted.is_some() {
                        last_deployed
                    } else {
                        when
                    },
                    deleted,
                })?;
                let name = format!("sh.helm.release.v1.{release}.v{rev}");
                let l = labels(&[
                    ("modifiedAt", &when.to_string()),
                    ("name", release),
                    ("owner", "helm"),
                    ("status", status),
                    ("version", &rev.to_string()),
                ]);
                let mut meta = self.meta(Some(PARAGON), &name, Some(l), when);
                meta.annotations = fault_annotations(fault);
                match r.driver {
                    Driver::Secret => {
                        let secret = Secret {
                            metadata: meta,
                            type_: s("helm.sh/release.v1"),
                            data: Some(BTreeMap::from([(
                                "release".to_string(),
                                ByteString(payload.into_bytes()),
                            )])),
                            ..Default::default()
                        };
                        self.secret(secret, when)?;
                    }
                    Driver::ConfigMap => {
                        let cells = vec![Cell::text(name.as_str()), Cell::Int(1), Cell::Age(when)];
                        let cm = ConfigMap {
                            metadata: meta,
                            data: Some(BTreeMap::from([("release".to_string(), payload)])),
                            ..Default::default()
                        };
                        self.push(Res::ConfigMaps, cm, vec![], cells)?;
                    }
                }
            }
        }
        Ok(())
    }
}

/// Helm 3's storage format: base64(gzip(JSON of the release)).
fn helm_payload(r: &Revision<'_>) -> Result<String, SandboxError> {
    let stamp = |t: i64| {
        jiff::Timestamp::from_second(t)
            .map(|t| t.to_string())
            .unwrap_or_default()
    };
    let json = serde_json::json!({
        "name": r.release,
        "info": {
            "first_deployed": stamp(r.first_deployed),
            "last_deployed": stamp(r.last_deployed),
            "deleted": r.deleted.map_or(String::new(), stamp),
            "description": r.description,
            "status": r.status,
        },
        "chart": {
            "metadata": {
                "name": r.chart,
                "version": r.version,
                "appVersion": r.version,
                "apiVersion": "v2",
            },
            "templates": [],
            "values": {},
        },
        "config": crate::planted::release_values(r.release),
        "manifest": "",
        "version": r.revision,
        "namespace": PARAGON,
    });
    let err =
        |e: std::io::Error| SandboxError::Generate(format!("cannot compress a helm release: {e}"));
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    serde_json::to_writer(&mut gz, &json).map_err(|e| SandboxError::Generate(e.to_string()))?;
    gz.flush().map_err(err)?;
    let bytes = gz.finish().map_err(err)?;
    Ok(base64::engine::general_purpose::STANDARD.encode(bytes))
}
