//! PersistentVolumeClaims as the PV controller leaves them: bound, or pending.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{
    PersistentVolumeClaim, PersistentVolumeClaimSpec, PersistentVolumeClaimStatus,
    VolumeResourceRequirements,
};

use super::{
    APP_NAME, FAULT_ANNOTATION, Gen, INSTANCE, MINUTE, PARAGON, has, labels, quantities, s,
};
use crate::sandbox::store::{Cell, Res};
use crate::sandbox::{Fault, SandboxError};

/// A claim: bound by the PV controller, or still pending.
pub(super) struct PvcPlan<'a> {
    pub namespace: &'a str,
    pub name: &'a str,
    pub labels: &'a BTreeMap<String, String>,
    pub size: &'a str,
    pub class: &'a str,
    pub created: i64,
    pub bound: bool,
    pub fault: Option<Fault>,
}

impl Gen<'_> {
    pub(super) fn pvc(&mut self, p: PvcPlan<'_>) -> Result<(), SandboxError> {
        let PvcPlan {
            namespace,
            name,
            labels: l,
            size,
            class,
            created,
            bound,
            fault,
        } = p;
        let mut meta = self.meta(Some(namespace), name, Some(l.clone()), created);
        let volume = bound.then(|| format!("pvc-{}", self.rng.uid()));
        let mut a = BTreeMap::new();
        if bound {
            a.insert(
                "pv.kubernetes.io/bind-completed".to_string(),
                "yes".to_string(),
            );
            a.insert(
                "pv.kubernetes.io/bound-by-controller".to_string(),
                "yes".to_string(),
            );
            a.insert(
                "volume.kubernetes.io/storage-provisioner".to_string(),
                "ebs.csi.aws.com".to_string(),
            );
        }
        if let Some(f) = fault {
            a.insert(FAULT_ANNOTATION.into(), f.name().into());
        }
        meta.annotations = Some(a);
        meta.finalizers = Some(vec!["kubernetes.io/pvc-protection".into()]);
        let phase = if bound { "Bound" } else { "Pending" };
        let cells = vec![
            Cell::text(name),
            Cell::text(phase),
            Cell::text(volume.clone().unwrap_or_default()),
            Cell::text(if bound { size } else { "" }),
            Cell::text(if bound { "RWO" } else { "" }),
            Cell::text(class),
            Cell::text("<unset>"),
            Cell::Age(created),
            Cell::text("Filesystem"),
        ];
        let pvc = PersistentVolumeClaim {
            metadata: meta,
            spec: Some(PersistentVolumeClaimSpec {
                access_modes: Some(vec!["ReadWriteOnce".into()]),
                resources: Some(VolumeResourceRequirements {
                    requests: Some(quantities(&[("storage", size)])),
                    limits: None,
                }),
                storage_class_name: s(class),
                volume_mode: s("Filesystem"),
                volume_name: volume,
                ..Default::default()
            }),
            status: Some(PersistentVolumeClaimStatus {
                phase: s(phase),
                access_modes: bound.then(|| vec!["ReadWriteOnce".into()]),
                capacity: bound.then(|| quantities(&[("storage", size)])),
                ..Default::default()
            }),
        };
        self.push(Res::PersistentVolumeClaims, pvc, vec![], cells)
    }

    pub(super) fn fault_pvc(&mut self) -> Result<(), SandboxError> {
        if !has(self.opts, Fault::PvcPending) {
            return Ok(());
        }
        let l = labels(&[(INSTANCE, "paragon-monitoring"), (APP_NAME, "pgadmin")]);
        let created = self.now - 30 * MINUTE;
        self.pvc(PvcPlan {
            namespace: PARAGON,
            name: "pgadmin-data",
            labels: &l,
            size: "10Gi",
            class: "gp3-encrypted",
            created,
            bound: false,
            fault: Some(Fault::PvcPending),
        })
    }
}
