//! The secrets the `log-secrets` fault plants in the Paragon services' logs: one of every kind
//! a support bundle's redactor must hide, each in a line shaped as a real service writes it
//! (a JSON log line, a request line, an environment dump, a PEM block); and the secrets of
//! release `paragon-on-prem`'s chart values. The values are public so that tests can look
//! for each one in whatever left the installation.

/// A planted secret: what kind of secret it is and the exact value a leak would show.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Planted {
    /// The kind, as a redactor names its rule.
    pub kind: &'static str,
    /// The value that must never leave redacted output.
    pub value: &'static str,
}

/// Every planted secret, in the order the lines are written.
pub const PLANTED: [Planted; 12] = [
    Planted {
        kind: "bearer-token",
        value: "pk_live_7Hq2Zr9Xw4Lm8Nc3Vb6Tj1Ks5Dp0Fa",
    },
    Planted {
        kind: "jwt",
        value: "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiJ1c2VyXzQyIiwicHJvamVjdCI6InBhcmFnb24ifQ.Qm9ndXNTaWduYXR1cmVGb3JUZXN0c09ubHkx",
    },
    Planted {
        kind: "private-key",
        value: "MIIEpQIBAAKCAQEA3PlantedKeyBodyLine1ForRedactionTestsOnlyXyZ",
    },
    Planted {
        kind: "aws-access-key",
        value: "AKIAQ7PLANTEDX4M2Z9K",
    },
    Planted {
        kind: "url-password",
        value: "Pg7rT2wq9Lk4mZ",
    },
    Planted {
        kind: "connection-string",
        value: "Rds4Vn8Qz1Hx6Jc",
    },
    Planted {
        kind: "key-value",
        value: "tkn_5Gd8Jw2Rp7Yc4Nv",
    },
    Planted {
        kind: "key-value",
        value: "ak_9Ze3Wq6Ux1Bm7Lf",
    },
    Planted {
        kind: "json-secret",
        value: "Sm7Kp2Wx9Qd4Rt",
    },
    Planted {
        kind: "json-secret",
        value: "cs_Lq8Vb3Nz6Tf1Hy",
    },
    Planted {
        kind: "env-secret",
        value: "SG.Xk4Pm9Rt2Wq7.Zc5Jn8Bv3Hd6Lf1",
    },
    Planted {
        kind: "env-secret",
        value: "minio-Yt6Rw1Qp8Zk3",
    },
];

/// The user-supplied chart values of release `paragon-on-prem` (what `helm get values`
/// prints), as a real installation's values file holds them: the services' environment with
/// its secrets. Every revision carries them, in every sandbox (they are no fault: the release
/// payload holds them on every real installation).
pub const VALUES_SECRETS: [Planted; 3] = [
    Planted {
        kind: "yaml-secret",
        value: "Vp3Xn8Qc5Lr2Zt",
    },
    Planted {
        kind: "yaml-secret",
        value: "SG.Hv5Ny2Kd8Qw.Pm4Tc7Rz1Lx6",
    },
    Planted {
        kind: "url-password",
        value: "Rk6Wm1Hy4Jd9Bs",
    },
];

/// An ordinary value of those chart values: present in a bundle only when values were asked
/// for.
pub const VALUES_ORDINARY: &str = "acme-onprem-Qz7f3k";

/// The user-supplied values of `release` (`config` in Helm's release record).
pub(crate) fn release_values(release: &str) -> serde_json::Value {
    if release != "paragon-on-prem" {
        return serde_json::json!({});
    }
    serde_json::json!({
        "global": {
            "env": {
                "ORGANIZATION": VALUES_ORDINARY,
                "HOST_ENV": "AWS_K8",
                "POSTGRES_HOST": "postgres.paragon.svc",
                "POSTGRES_USER": "paragon",
                "POSTGRES_PASSWORD": VALUES_SECRETS[0].value,
                "SENDGRID_API_KEY": VALUES_SECRETS[1].value,
                "REDIS_URL": format!("redis://paragon:{}@redis.paragon.svc:6379/0", VALUES_SECRETS[2].value),
            }
        },
        "hermes": { "replicaCount": 2 },
        "worker-workflows": { "replicaCount": 4 },
    })
}

/// The lines that carry them, as the services write them; `(offset, line)` with the offset in
/// seconds after the first. A PEM block spans several lines, as a key printed to a log does.
pub(crate) fn lines(service: &str) -> Vec<(i64, String)> {
    let v = |i: usize| PLANTED[i].value;
    let json = |msg: &str, extra: serde_json::Value| {
        let mut line = serde_json::json!({ "level": "debug", "service": service, "msg": msg });
        if let (Some(o), serde_json::Value::Object(e)) = (line.as_object_mut(), extra) {
            o.extend(e);
        }
        line.to_string()
    };
    vec![
        (
            0,
            json(
                "outbound request",
                serde_json::json!({ "url": "https://api.stripe.com/v1/charges",
                    "headers": { "Authorization": format!("Bearer {}", v(0)) } }),
            ),
        ),
        (
            1,
            json(
                "session verified",
                serde_json::json!({ "session": v(1), "userId": "user_42" }),
            ),
        ),
        (2, "-----BEGIN RSA PRIVATE KEY-----".to_string()),
        (2, v(2).to_string()),
        (
            2,
            "Zm9yIHRlc3RzIG9ubHksIG5vdCBhIHJlYWwga2V5LCBwbGFudGVkIGJ5IHRoZSBzYW5kYm94".to_string(),
        ),
        (2, "-----END RSA PRIVATE KEY-----".to_string()),
        (
            3,
            json(
                "s3 client configured",
                serde_json::json!({ "bucket": "paragon-cdn", "accessKeyId": v(3) }),
            ),
        ),
        (
            4,
            json(
                "connecting",
                serde_json::json!({ "dsn": format!("postgres://paragon:{}@postgres.paragon.svc:5432/cerberus", v(4)) }),
            ),
        ),
        (
            5,
            format!(
                "warn: cache fallback Server=redis-cache;Port=6379;User Id=paragon;Password={};Ssl=true",
                v(5)
            ),
        ),
        (
            6,
            format!(
                "GET /api/triggers/callback?state=ok&token={}&api_key={} 302",
                v(6),
                v(7)
            ),
        ),
        (
            7,
            json(
                "integration credentials refreshed",
                serde_json::json!({ "integration": "salesforce",
                    "credentials": { "refreshPassword": v(8), "clientSecret": v(9) } }),
            ),
        ),
        (
            8,
            format!(
                "environment: NODE_ENV=production SENDGRID_API_KEY={} MINIO_ROOT_PASSWORD={} LOG_LEVEL=info",
                v(10),
                v(11)
            ),
        ),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_planted_value_is_written_once_and_values_differ() {
        let text: String = lines("cerberus")
            .into_iter()
            .map(|(_, l)| l + "\n")
            .collect();
        for p in PLANTED {
            assert_eq!(text.matches(p.value).count(), 1, "{}", p.value);
        }
        let mut values: Vec<_> = PLANTED.iter().map(|p| p.value).collect();
        values.dedup();
        assert_eq!(values.len(), PLANTED.len());
    }
}
