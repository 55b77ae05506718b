//! ConfigMaps and Secrets: the installation's configuration, its credentials and its TLS
//! certificates.

use std::collections::BTreeMap;

use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::{ConfigMap, Secret};

use super::tables::{Shape, Workload};
use super::{APP_NAME, DAY, Gen, INSTANCE, PARAGON, fault_annotations, has, labels, s};
use crate::store::{Cell, Res};
use crate::{Fault, SandboxError, tls};

impl Gen<'_> {
    pub(super) fn secret(&mut self, secret: Secret, created: i64) -> Result<(), SandboxError> {
        let name = secret.metadata.name.clone().unwrap_or_default();
        let type_ = secret.type_.clone().unwrap_or_else(|| "Opaque".into());
        let count = secret.data.as_ref().map_or(0, BTreeMap::len);
        let cells = vec![
            Cell::text(name),
            Cell::text(type_.as_str()),
            Cell::Int(count as i64),
            Cell::Age(created),
        ];
        self.push(Res::Secrets, secret, vec![type_], cells)
    }

    pub(super) fn tls_secrets(&mut self) -> Result<(), SandboxError> {
        let expiring = has(self.opts, Fault::ExpiringCert);
        let (valid_days, fault) = if expiring {
            (9, Some(Fault::ExpiringCert))
        } else {
            (60, None)
        };
        let not_after = self.now + valid_days * DAY;
        let not_before = not_after - 90 * DAY;
        let ingress = tls::tls_secret(
            "Paragon Ingress CA",
            &["paragon.example.com", "*.paragon.example.com"],
            not_before,
            not_after,
        )?;
        let l = labels(&[(INSTANCE, "paragon-on-prem"), (APP_NAME, "paragon-tls")]);
        self.tls_secret("paragon-tls", l, ingress, not_before, fault)?;
        let created = self.installed + 100;
        let admission = tls::tls_secret(
            "ingress-nginx-admission CA",
            &[
                "ingress-nginx-controller-admission",
                "ingress-nginx-controller-admission.paragon.svc",
            ],
            created,
            created + 100 * 365 * DAY / 10,
        )?;
        let l = labels(&[(INSTANCE, "ingress"), (APP_NAME, "ingress-nginx")]);
        self.tls_secret("ingress-nginx-admission", l, admission, created, None)?;
        self.imported_tls_secrets()
    }

    /// Certificates pasted in by hand, as real ones are: `grafana-tls` from `openssl pkcs12
    /// -nokeys` (its "Bag Attributes", subject and issuer lines before the PEM block) and
    /// `kibana-tls` with blank lines before it. openssl and Go's `pem.Decode` skip both.
    fn imported_tls_secrets(&mut self) -> Result<(), SandboxError> {
        let not_before = self.now - 100 * DAY;
        for (name, host, valid) in [
            ("grafana-tls", "grafana.paragon.example.com", 200),
            ("kibana-tls", "kibana.paragon.example.com", 150),
        ] {
            let mut data = tls::tls_secret(
                "Paragon Ingress CA",
                &[host],
                not_before,
                self.now + valid * DAY,
            )?;
            data.cert_pem = if name == "grafana-tls" {
                let key_id: Vec<String> = (0..20).map(|_| self.rng.hex(2).to_uppercase()).collect();
                format!(
                    "Bag Attributes\n    localKeyID: {}\n    friendlyName: {host}\nsubject=CN = {host}\nissuer=CN = Paragon Ingress CA\n{}",
                    key_id.join(" "),
                    data.cert_pem
                )
            } else {
                format!("\n\n{}", data.cert_pem)
            };
            let app = name.trim_end_matches("-tls");
            let release = if app == "grafana" {
                "paragon-monitoring"
            } else {
                "paragon-logging"
            };
            let l = labels(&[(INSTANCE, release), (APP_NAME, app)]);
            self.tls_secret(name, l, data, not_before, None)?;
        }
        Ok(())
    }

    pub(super) fn tls_secret(
        &mut self,
        name: &str,
        l: BTreeMap<String, String>,
        data: tls::TlsSecretData,
        created: i64,
        fault: Option<Fault>,
    ) -> Result<(), SandboxError> {
        let mut meta = self.meta(Some(PARAGON), name, Some(l), created);
        meta.annotations = fault_annotations(fault);
        let secret = Secret {
            metadata: meta,
            type_: s("kubernetes.io/tls"),
            data: Some(BTreeMap::from([
                ("ca.crt".to_string(), ByteString(data.ca_pem.into_bytes())),
                (
                    "tls.crt".to_string(),
                    ByteString(data.cert_pem.into_bytes()),
                ),
                ("tls.key".to_string(), ByteString(data.key_pem.into_bytes())),
            ])),
            ..Default::default()
        };
        self.secret(secret, created)
    }

    /// ConfigMaps and the remaining secrets.
    pub(super) fn config(
        &mut self,
        cluster_ca_pem: &str,
        all: &[Workload],
    ) -> Result<(), SandboxError> {
        for ns in [
            "default",
            "kube-node-lease",
            "kube-public",
            "kube-system",
            PARAGON,
        ] {
            let created = if ns == PARAGON {
                self.installed
            } else {
                self.installed - DAY
            };
            self.configmap(
                ns,
                "kube-root-ca.crt",
                None,
                created,
                &[("ca.crt", cluster_ca_pem)],
            )?;
        }
        let ports: Vec<(String, String)> = all
            .iter()
            .filter(|w| w.release == "paragon-on-prem" && w.shape == Shape::Deployment)
            .map(|w| {
                (
                    format!("{}_PORT", w.name.to_uppercase().replace('-', "_")),
                    w.port.to_string(),
                )
            })
            .collect();
        let pairs: Vec<(&str, &str)> = ports
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        let on_prem = labels(&[(INSTANCE, "paragon-on-prem"), (APP_NAME, "paragon-config")]);
        self.configmap(
            PARAGON,
            "paragon-config",
            Some(on_prem),
            self.installed,
            &pairs,
        )?;
        let mon = labels(&[(INSTANCE, "paragon-monitoring"), (APP_NAME, "prometheus")]);
        self.configmap(
            PARAGON,
            "prometheus-server",
            Some(mon),
            self.installed,
            &[("prometheus.yml", "global:\n  scrape_interval: 30s\nscrape_configs:\n  - job_name: kubernetes-pods\n    kubernetes_sd_configs:\n      - role: pod\n")],
        )?;
        let graf = labels(&[(INSTANCE, "paragon-monitoring"), (APP_NAME, "grafana")]);
        self.configmap(
            PARAGON,
            "grafana",
            Some(graf),
            self.installed,
            &[(
                "grafana.ini",
                "[server]\nhttp_port = 4500\n[analytics]\ncheck_for_updates = false\n",
            )],
        )?;
        let fb = labels(&[(INSTANCE, "paragon-logging"), (APP_NAME, "fluent-bit")]);
        self.configmap(PARAGON, "fluent-bit", Some(fb), self.installed, &[("fluent-bit.conf", "[SERVICE]\n    HTTP_Server On\n    HTTP_Port 2020\n[INPUT]\n    Name tail\n    Path /var/log/containers/*.log\n[OUTPUT]\n    Name es\n    Host elasticsearch\n    Port 9200\n")])?;
        let dns = labels(&[("k8s-app", "kube-dns")]);
        self.configmap("kube-system", "coredns", Some(dns), self.installed - DAY, &[("Corefile", ".:53 {\n    errors\n    health\n    kubernetes cluster.local in-addr.arpa ip6.arpa {\n      pods insecure\n      fallthrough in-addr.arpa ip6.arpa\n    }\n    prometheus :9153\n    forward . /etc/resolv.conf\n    cache 30\n    loop\n    reload\n    loadbalance\n}\n")])?;

        let mut values = Vec::new();
        for key in [
            "POSTGRES_PASSWORD",
            "REDIS_PASSWORD",
            "MINIO_ROOT_PASSWORD",
            "LICENSE",
            "SECRET_KEY",
        ] {
            values.push((key.to_string(), self.rng.hex(32)));
        }
        let meta = self.meta(
            Some(PARAGON),
            "paragon-secrets",
            Some(labels(&[
                (INSTANCE, "paragon-on-prem"),
                (APP_NAME, "paragon-secrets"),
            ])),
            self.installed,
        );
        let secret = Secret {
            metadata: meta,
            type_: s("Opaque"),
            data: Some(
                values
                    .into_iter()
                    .map(|(k, v)| (k, ByteString(v.into_bytes())))
                    .collect(),
            ),
            ..Default::default()
        };
        self.secret(secret, self.installed)?;
        let admin = self.rng.hex(24);
        let meta = self.meta(
            Some(PARAGON),
            "grafana",
            Some(labels(&[
                (INSTANCE, "paragon-monitoring"),
                (APP_NAME, "grafana"),
            ])),
            self.installed,
        );
        let secret = Secret {
            metadata: meta,
            type_: s("Opaque"),
            data: Some(BTreeMap::from([
                ("admin-user".to_string(), ByteString(b"admin".to_vec())),
                ("admin-password".to_string(), ByteString(admin.into_bytes())),
            ])),
            ..Default::default()
        };
        self.secret(secret, self.installed)
    }

    pub(super) fn configmap(
        &mut self,
        namespace: &str,
        name: &str,
        l: Option<BTreeMap<String, String>>,
        created: i64,
        data: &[(&str, &str)],
    ) -> Result<(), SandboxError> {
        let meta = self.meta(Some(namespace), name, l, created);
        let cells = vec![
            Cell::text(name),
            Cell::Int(data.len() as i64),
            Cell::Age(created),
        ];
        let cm = ConfigMap {
            metadata: meta,
            data: Some(labels(data)),
            ..Default::default()
        };
        self.push(Res::ConfigMaps, cm, vec![], cells)
    }
}
