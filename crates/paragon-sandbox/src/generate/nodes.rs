//! Nodes as the kubelet and the node-lifecycle controller leave them: conditions, taints,
//! capacity and system info. Knows nothing of what runs on them.

use k8s_openapi::api::core::v1::{
    Node, NodeAddress, NodeCondition, NodeSpec, NodeStatus, NodeSystemInfo, Taint,
};

use super::{
    DAY, FAULT_ANNOTATION, Gen, MINUTE, NodeInfo, has, labels, natural_pod_count, quantities, s,
    time,
};
use crate::store::{Cell, Res};
use crate::{Fault, SandboxError};

impl Gen<'_> {
    pub(super) fn nodes(&mut self) -> Result<(), SandboxError> {
        let count = self.opts.nodes;
        let total_pods = self.opts.pods.max(natural_pod_count(count)) + 3;
        let max_pods = (total_pods.div_ceil(count) + 20).max(110);
        let third = 16 + self.rng.below(32) as usize;
        let zones = ["us-east-1a", "us-east-1b", "us-east-1c"];
        for i in 0..count {
            let ip = format!("10.0.{}.{}", third + i / 250, i % 250 + 4);
            let name = format!("ip-{}.ec2.internal", ip.replace('.', "-"));
            let created = self.now - self.rng.range(12 * DAY, 40 * DAY);
            let zone = zones[i % zones.len()];
            let mut l = labels(&[
                ("beta.kubernetes.io/arch", "amd64"),
                ("beta.kubernetes.io/os", "linux"),
                ("kubernetes.io/arch", "amd64"),
                ("kubernetes.io/os", "linux"),
                ("kubernetes.io/hostname", &name),
                ("node.kubernetes.io/instance-type", "m6i.2xlarge"),
                ("topology.kubernetes.io/region", "us-east-1"),
                ("topology.kubernetes.io/zone", zone),
                ("eks.amazonaws.com/nodegroup", "paragon-workers"),
            ]);
            l.insert("eks.amazonaws.com/capacityType".into(), "ON_DEMAND".into());
            let not_ready = i == count - 1 && has(self.opts, Fault::NodeNotReady);
            let pressure = i == 0 && has(self.opts, Fault::NodePressure);
            let no_route = i == 1 % count && has(self.opts, Fault::NetworkUnavailable);
            let fault = if not_ready {
                Some(Fault::NodeNotReady)
            } else if pressure {
                Some(Fault::NodePressure)
            } else if no_route {
                Some(Fault::NetworkUnavailable)
            } else {
                None
            };
            let mut meta = self.meta(None, &name, Some(l), created);
            meta.annotations = Some(labels(&[
                ("alpha.kubernetes.io/provided-node-ip", &ip),
                ("node.alpha.kubernetes.io/ttl", "0"),
                (
                    "volumes.kubernetes.io/controller-managed-attach-detach",
                    "true",
                ),
            ]));
            if let (Some(a), Some(f)) = (meta.annotations.as_mut(), fault) {
                a.insert(FAULT_ANNOTATION.into(), f.name().into());
            }
            let heartbeat = self.now - self.rng.range(5, 40);
            let up = created + 40;
            let mut conditions = vec![self.route_condition(no_route, up)];
            conditions.extend(self.node_conditions(not_ready, pressure, heartbeat, up));
            let taints = self.node_taints(not_ready, pressure);
            let capacity = quantities(&[
                ("cpu", "8"),
                ("ephemeral-storage", "104845292Ki"),
                ("hugepages-1Gi", "0"),
                ("hugepages-2Mi", "0"),
                ("memory", "32386688Ki"),
                ("pods", &max_pods.to_string()),
            ]);
            let allocatable = quantities(&[
                ("cpu", "7910m"),
                ("ephemeral-storage", "95551679124"),
                ("hugepages-1Gi", "0"),
                ("hugepages-2Mi", "0"),
                ("memory", "31369856Ki"),
                ("pods", &max_pods.to_string()),
            ]);
            let instance = format!("i-0{}", self.rng.hex(16));
            let node_info = NodeSystemInfo {
                architecture: "amd64".into(),
                boot_id: self.rng.uid(),
                container_runtime_version: "containerd://1.7.27".into(),
                kernel_version: "6.1.134-152.225.amzn2023.x86_64".into(),
                kube_proxy_version: "v1.33.1-eks-b9364f6".into(),
                kubelet_version: "v1.33.1-eks-b9364f6".into(),
                machine_id: self.rng.hex(32),
                operating_system: "linux".into(),
                os_image: "Amazon Linux 2023.7.20250512".into(),
                system_uuid: self.rng.uid(),
                swap: None,
            };
            let status_text = if not_ready { "NotReady" } else { "Ready" };
            let cells = vec![
                Cell::text(name.as_str()),
                Cell::text(status_text),
                Cell::text("<none>"),
                Cell::Age(created),
                Cell::text(node_info.kubelet_version.as_str()),
                Cell::text(ip.as_str()),
                Cell::text("<none>"),
                Cell::text(node_info.os_image.as_str()),
                Cell::text(node_info.kernel_version.as_str()),
                Cell::text(node_info.container_runtime_version.as_str()),
            ];
            let node = Node {
                metadata: meta,
                spec: Some(NodeSpec {
                    provider_id: s(format!("aws:///{zone}/{instance}")),
                    taints: if taints.is_empty() {
                        None
                    } else {
                        Some(taints)
                    },
                    ..Default::default()
                }),
                status: Some(NodeStatus {
                    addresses: Some(vec![
                        NodeAddress {
                            type_: "InternalIP".into(),
                            address: ip.clone(),
                        },
                        NodeAddress {
                            type_: "InternalDNS".into(),
                            address: name.clone(),
                        },
                        NodeAddress {
                            type_: "Hostname".into(),
                            address: name.clone(),
                        },
                    ]),
                    allocatable: Some(allocatable),
                    capacity: Some(capacity),
                    conditions: Some(conditions),
                    node_info: Some(node_info),
                    ..Default::default()
                }),
            };
            self.push(Res::Nodes, node, vec!["false".into()], cells)?;
            self.nodes.push(NodeInfo { name, ip, created });
        }
        Ok(())
    }

    /// The conditions the kubelet posts, or, for a node that stopped posting, what the
    /// node-lifecycle controller sets: every condition `Unknown`, `NodeStatusUnknown`.
    /// `NetworkUnavailable`, which the cloud route controller owns (kubernetes
    /// `staging/src/k8s.io/cloud-provider/controllers/route`): False once it created the
    /// node's route, True when it could not. The node-lifecycle controller never marks it
    /// `Unknown`.
    fn route_condition(&self, no_route: bool, up: i64) -> NodeCondition {
        let (status, reason, message, since) = if no_route {
            (
                "True",
                "NoRouteCreated",
                "Node created without a route",
                self.now - 20 * MINUTE,
            )
        } else {
            (
                "False",
                "RouteCreated",
                "RouteController created a route",
                up,
            )
        };
        NodeCondition {
            type_: "NetworkUnavailable".into(),
            status: status.into(),
            reason: s(reason),
            message: s(message),
            last_heartbeat_time: time(since),
            last_transition_time: time(since),
        }
    }

    fn node_conditions(
        &self,
        not_ready: bool,
        pressure: bool,
        heartbeat: i64,
        up: i64,
    ) -> Vec<NodeCondition> {
        let cond = |t: &str, status: &str, reason: &str, message: &str, hb: i64, since: i64| {
            NodeCondition {
                type_: t.into(),
                status: status.into(),
                reason: s(reason),
                message: s(message),
                last_heartbeat_time: time(hb),
                last_transition_time: time(since),
            }
        };
        if not_ready {
            let (hb, since) = (self.now - 6 * MINUTE, self.now - 5 * MINUTE);
            let msg = "Kubelet stopped posting node status.";
            vec![
                cond(
                    "MemoryPressure",
                    "Unknown",
                    "NodeStatusUnknown",
                    msg,
                    hb,
                    since,
                ),
                cond(
                    "DiskPressure",
                    "Unknown",
                    "NodeStatusUnknown",
                    msg,
                    hb,
                    since,
                ),
                cond(
                    "PIDPressure",
                    "Unknown",
                    "NodeStatusUnknown",
                    msg,
                    hb,
                    since,
                ),
                cond("Ready", "Unknown", "NodeStatusUnknown", msg, hb, since),
            ]
        } else {
            let memory = if pressure {
                cond(
                    "MemoryPressure",
                    "True",
                    "KubeletHasInsufficientMemory",
                    "kubelet has insufficient memory available",
                    heartbeat,
                    self.now - 15 * MINUTE,
                )
            } else {
                cond(
                    "MemoryPressure",
                    "False",
                    "KubeletHasSufficientMemory",
                    "kubelet has sufficient memory available",
                    heartbeat,
                    up,
                )
            };
            vec![
                memory,
                cond(
                    "DiskPressure",
                    "False",
                    "KubeletHasNoDiskPressure",
                    "kubelet has no disk pressure",
                    heartbeat,
                    up,
                ),
                cond(
                    "PIDPressure",
                    "False",
                    "KubeletHasSufficientPID",
                    "kubelet has sufficient PID available",
                    heartbeat,
                    up,
                ),
                cond(
                    "Ready",
                    "True",
                    "KubeletReady",
                    "kubelet is posting ready status",
                    heartbeat,
                    up + 20,
                ),
            ]
        }
    }

    /// The taints the node-lifecycle controller puts on an unreachable or pressured node.
    fn node_taints(&self, not_ready: bool, pressure: bool) -> Vec<Taint> {
        let mut taints = Vec::new();
        if not_ready {
            for effect in ["NoSchedule", "NoExecute"] {
                taints.push(Taint {
                    key: "node.kubernetes.io/unreachable".into(),
                    effect: effect.into(),
                    time_added: if effect == "NoExecute" {
                        time(self.now - 5 * MINUTE)
                    } else {
                        None
                    },
                    value: None,
                });
            }
        }
        if pressure {
            taints.push(Taint {
                key: "node.kubernetes.io/memory-pressure".into(),
                effect: "NoSchedule".into(),
                time_added: time(self.now - 15 * MINUTE),
                value: None,
            });
        }
        taints
    }
}
