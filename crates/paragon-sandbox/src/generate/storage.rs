//! StorageClasses and PersistentVolumeClaims as the PV controller leaves them: bound, pending
//! on a class that binds `WaitForFirstConsumer` (normal until a pod uses the claim), or
//! pending on a class that does not exist (the `pvc-pending` fault).

use std::collections::BTreeMap;

use k8s_openapi::Resource;
use k8s_openapi::api::core::v1::{
    PersistentVolumeClaim, PersistentVolumeClaimSpec, PersistentVolumeClaimStatus,
    VolumeResourceRequirements,
};
use k8s_openapi::api::storage::v1::StorageClass;

use super::events::{EventPlan, Involved};

use super::{
    APP_NAME, DAY, FAULT_ANNOTATION, Gen, INSTANCE, MINUTE, PARAGON, has, labels, quantities, s,
};
use crate::store::{Cell, Res};
use crate::{Fault, SandboxError};

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

/// A StorageClass: name, provisioner, parameters, binding mode, expansion, default or not.
struct Class {
    name: &'static str,
    provisioner: &'static str,
    parameters: &'static [(&'static str, &'static str)],
    binding: &'static str,
    expansion: bool,
    default: bool,
}

/// The classes of an EKS cluster: the in-tree `gp2` default and the EBS CSI `gp3`, both
/// binding when a pod is scheduled (`WaitForFirstConsumer`, so a claim no pod uses stays
/// Pending), and EFS, which binds at once (`Immediate`).
const CLASSES: [Class; 3] = [
    Class {
        name: "efs-sc",
        provisioner: "efs.csi.aws.com",
        parameters: &[("directoryPerms", "700"), ("provisioningMode", "efs-ap")],
        binding: "Immediate",
        expansion: false,
        default: false,
    },
    Class {
        name: "gp2",
        provisioner: "kubernetes.io/aws-ebs",
        parameters: &[("fsType", "ext4"), ("type", "gp2")],
        binding: "WaitForFirstConsumer",
        expansion: false,
        default: true,
    },
    Class {
        name: "gp3",
        provisioner: "ebs.csi.aws.com",
        parameters: &[("encrypted", "true"), ("type", "gp3")],
        binding: "WaitForFirstConsumer",
        expansion: true,
        default: false,
    },
];

impl Gen<'_> {
    pub(super) fn storage_classes(&mut self) -> Result<(), SandboxError> {
        let created = self.installed - DAY;
        for c in &CLASSES {
            let mut meta = self.meta(None, c.name, None, created);
            if c.default {
                meta.annotations = Some(labels(&[(
                    "storageclass.kubernetes.io/is-default-class",
                    "true",
                )]));
            }
            let shown = if c.default {
                format!("{} (default)", c.name)
            } else {
                c.name.to_string()
            };
            let cells = vec![
                Cell::text(shown),
                Cell::text(c.provisioner),
                Cell::text("Delete"),
                Cell::text(c.binding),
                Cell::text(c.expansion.to_string()),
                Cell::Age(created),
            ];
            let class = StorageClass {
                metadata: meta,
                provisioner: c.provisioner.into(),
                parameters: Some(labels(c.parameters)),
                reclaim_policy: s("Delete"),
                volume_binding_mode: s(c.binding),
                allow_volume_expansion: c.expansion.then_some(true),
                ..Default::default()
            };
            self.push(Res::StorageClasses, class, vec![], cells)?;
        }
        Ok(())
    }

    /// A claim on the default class that no pod uses yet: Pending, and the PV controller's
    /// `WaitForFirstConsumer` event repeated on every resync (pv_controller.go records it
    /// with the legacy recorder, so it is a core Event with a count).
    pub(super) fn waiting_claim(&mut self) -> Result<(), SandboxError> {
        let name = "redis-insight-data";
        let l = labels(&[
            (INSTANCE, "paragon-monitoring"),
            (APP_NAME, "redis-insight"),
        ]);
        let created = self.now - 5 * DAY;
        let uid = self.pvc(PvcPlan {
            namespace: PARAGON,
            name,
            labels: &l,
            size: "5Gi",
            class: "gp2",
            created,
            bound: false,
            fault: None,
        })?;
        let about = Involved {
            kind: PersistentVolumeClaim::KIND,
            api_version: PersistentVolumeClaim::API_VERSION,
            namespace: PARAGON,
            name: name.to_string(),
            uid,
        };
        self.event(EventPlan {
            about: &about,
            reason: "WaitForFirstConsumer",
            message: "waiting for first consumer to be created before binding",
            type_: "Normal",
            component: "persistentvolume-controller",
            first: created,
            last: self.now - 2 * MINUTE,
            // one every 15 s resync, for five days
            count: (5 * DAY / 15) as i32,
            fault: None,
        })
    }

    /// Makes a claim; returns its uid.
    pub(super) fn pvc(&mut self, p: PvcPlan<'_>) -> Result<String, SandboxError> {
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
        let uid = pvc.metadata.uid.clone().unwrap_or_default();
        self.push(Res::PersistentVolumeClaims, pvc, vec![], cells)?;
        Ok(uid)
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
        })?;
        Ok(())
    }
}
