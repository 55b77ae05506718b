//! Services: one per workload and the API server's own `kubernetes`.

use k8s_openapi::api::core::v1::{Service, ServicePort, ServiceSpec};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::tables::Workload;
use super::{DAY, Gen, labels, s, selector_text};
use crate::SandboxError;
use crate::store::{Cell, Res};

impl Gen<'_> {
    pub(super) fn next_service_ip(&mut self) -> String {
        let n = self.next_service_ip;
        self.next_service_ip += 1;
        let v = 256 + n * 7;
        format!("172.20.{}.{}", v / 254 % 254, v % 254 + 1)
    }

    pub(super) fn service(&mut self, w: &Workload) -> Result<(), SandboxError> {
        let sel = Self::workload_labels(w);
        let (name, port) = match w.name {
            "coredns" => ("kube-dns", 53),
            other => (other, w.port),
        };
        let lb = w.name == "ingress-nginx-controller";
        let ip = if name == "kube-dns" {
            "172.20.0.10".to_string()
        } else {
            self.next_service_ip()
        };
        let mut meta = self.meta(
            Some(w.namespace),
            name,
            Some(sel.clone()),
            self.installed + 30,
        );
        Self::helm_meta(&mut meta, w);
        let mut ports = vec![ServicePort {
            name: s(if name == "kube-dns" { "dns" } else { "http" }),
            port: i32::from(port),
            protocol: s(if name == "kube-dns" { "UDP" } else { "TCP" }),
            target_port: Some(IntOrString::Int(i32::from(port))),
            node_port: lb.then_some(31080),
            ..Default::default()
        }];
        if lb {
            ports.push(ServicePort {
                name: s("https"),
                port: 443,
                protocol: s("TCP"),
                target_port: Some(IntOrString::Int(443)),
                node_port: Some(31443),
                ..Default::default()
            });
        }
        let ports_text = ports
            .iter()
            .map(|p| match p.node_port {
                Some(np) => format!("{}:{np}/{}", p.port, p.protocol.clone().unwrap_or_default()),
                None => format!("{}/{}", p.port, p.protocol.clone().unwrap_or_default()),
            })
            .collect::<Vec<_>>()
            .join(",");
        let kind = if lb { "LoadBalancer" } else { "ClusterIP" };
        // 203.0.113.0/24 is a documentation range: nothing real answers there.
        let external = if lb { "203.0.113.10" } else { "<none>" };
        let cells = vec![
            Cell::text(name),
            Cell::text(kind),
            Cell::text(ip.as_str()),
            Cell::text(external),
            Cell::text(ports_text),
            Cell::Age(self.installed + 30),
            Cell::text(selector_text(&sel)),
        ];
        let svc = Service {
            metadata: meta,
            spec: Some(ServiceSpec {
                type_: s(kind),
                cluster_ip: s(ip.clone()),
                cluster_ips: Some(vec![ip]),
                ports: Some(ports),
                selector: Some(sel),
                session_affinity: s("None"),
                ip_families: Some(vec!["IPv4".into()]),
                ip_family_policy: s("SingleStack"),
                internal_traffic_policy: s("Cluster"),
                external_traffic_policy: lb.then(|| "Cluster".to_string()),
                ..Default::default()
            }),
            status: lb.then(|| k8s_openapi::api::core::v1::ServiceStatus {
                load_balancer: Some(k8s_openapi::api::core::v1::LoadBalancerStatus {
                    ingress: Some(vec![k8s_openapi::api::core::v1::LoadBalancerIngress {
                        ip: s(external),
                        ..Default::default()
                    }]),
                }),
                conditions: None,
            }),
        };
        self.push(Res::Services, svc, vec![], cells)
    }

    pub(super) fn cluster_services(&mut self) -> Result<(), SandboxError> {
        let created = self.installed - DAY;
        let meta = self.meta(
            Some("default"),
            "kubernetes",
            Some(labels(&[
                ("component", "apiserver"),
                ("provider", "kubernetes"),
            ])),
            created,
        );
        let cells = vec![
            Cell::text("kubernetes"),
            Cell::text("ClusterIP"),
            Cell::text("172.20.0.1"),
            Cell::text("<none>"),
            Cell::text("443/TCP"),
            Cell::Age(created),
            Cell::text("<none>"),
        ];
        let svc = Service {
            metadata: meta,
            spec: Some(ServiceSpec {
                type_: s("ClusterIP"),
                cluster_ip: s("172.20.0.1"),
                cluster_ips: Some(vec!["172.20.0.1".into()]),
                ports: Some(vec![ServicePort {
                    name: s("https"),
                    port: 443,
                    protocol: s("TCP"),
                    target_port: Some(IntOrString::Int(443)),
                    ..Default::default()
                }]),
                session_affinity: s("None"),
                ..Default::default()
            }),
            status: None,
        };
        self.push(Res::Services, svc, vec![], cells)
    }
}
