//! What the user asked to forward: a service name, `LOCAL_PORT:SERVICE`, or `ssh -L` style
//! `LOCAL_PORT:HOST:PORT` and `HOST:PORT`, each optionally named as `NAME=SPEC`, turned into
//! `Forward`s with every field decided.
//! A service without a local port of its own (`local_port = 0`) and none on the command line
//! gets the stable one the caller's `StablePort` gives (chosen once per profile, `state`).

use std::collections::BTreeMap;

use crate::config::Service;

use super::ForwardError;

/// What connections to one local listener reach.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// Every connection goes to this HOST:PORT, as seen from the bastion.
    Tunnel { host: String, port: u16 },
    /// A SOCKS5 proxy: each connection names its own destination.
    Socks,
}

/// One local listener and what its connections reach.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Forward {
    /// The service name, `socks`, or the target as `HOST:PORT`.
    pub name: String,
    pub target: Target,
    /// The local port; 0 = any free port.
    pub local_port: u16,
    /// The service this forward opens, for its URL.
    pub service: Option<Service>,
}

impl Forward {
    /// The target as `HOST:PORT`, or `None` for the SOCKS proxy.
    pub fn target_text(&self) -> Option<String> {
        match &self.target {
            Target::Tunnel { host, port } => Some(crate::dial::target(host, *port)),
            Target::Socks => None,
        }
    }

    /// The URL a browser opens for this forward listening on `local`.
    pub fn url(&self, local: std::net::SocketAddr) -> String {
        match (&self.service, &self.target) {
            (Some(s), _) => s.url(local),
            (None, Target::Socks) => format!("socks5h://{local}"),
            (None, Target::Tunnel { .. }) => format!("tcp://{local}"),
        }
    }

    /// The SOCKS5 proxy on `local_port`.
    pub fn socks(local_port: u16) -> Forward {
        Forward {
            name: "socks".to_string(),
            target: Target::Socks,
            local_port,
            service: None,
        }
    }
}

/// The local port remembered for a service name (a profile's `state::Ports::stable_port`).
pub type StablePort<'a> = &'a dyn Fn(&str) -> Result<u16, crate::state::StateError>;

/// Turns each SPEC into a `Forward`, looking service names up in `services`; a service with
/// `local_port = 0` listens on any free port.
pub fn parse_specs(
    specs: &[String],
    services: &BTreeMap<String, Service>,
) -> Result<Vec<Forward>, ForwardError> {
    specs.iter().map(|s| parse_spec(s, services)).collect()
}

/// As `parse_specs`, but a service with `local_port = 0` and no `LOCAL_PORT:` on the command
/// line listens on the port `stable` gives for its name, the same at every run.
pub fn parse_specs_stable(
    specs: &[String],
    services: &BTreeMap<String, Service>,
    stable: StablePort<'_>,
) -> Result<Vec<Forward>, ForwardError> {
    specs
        .iter()
        .map(|s| parse_spec_with(s, services, Some(stable)))
        .collect()
}

/// Parses one SPEC.
pub fn parse_spec(
    spec: &str,
    services: &BTreeMap<String, Service>,
) -> Result<Forward, ForwardError> {
    parse_spec_with(spec, services, None)
}

fn parse_spec_with(
    whole: &str,
    services: &BTreeMap<String, Service>,
    stable: Option<StablePort<'_>>,
) -> Result<Forward, ForwardError> {
    let bad = |message: String| ForwardError::Spec {
        spec: whole.to_string(),
        message,
    };
    // `NAME=SPEC` names the forward (for --list and --stop NAME); no host or service name
    // holds a `=`.
    let (name, spec) = match whole.split_once('=') {
        Some((name, spec)) => (Some(forward_name(name).map_err(bad)?), spec),
        None => (None, whole),
    };
    let mut f = parse_unnamed(spec, services, stable, &bad)?;
    if let Some(name) = name {
        f.name = name;
    }
    Ok(f)
}

/// A name given as `NAME=`: letters, digits, `-`, `_` and `.`, starting with a letter or
/// digit, at most 63 characters (it shows in listings and is typed after --stop).
fn forward_name(name: &str) -> Result<String, String> {
    let ok = !name.is_empty()
        && name.len() <= 63
        && name.starts_with(|c: char| c.is_ascii_alphanumeric())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if !ok {
        return Err(format!(
            "forward name `{name}`: use letters, digits, `-`, `_` or `.` (at most 63), as in db=5432:HOST:5432"
        ));
    }
    if name == "all" || name == "socks" {
        return Err(format!("`{name}` is reserved: choose another forward name"));
    }
    Ok(name.to_string())
}

fn parse_unnamed(
    spec: &str,
    services: &BTreeMap<String, Service>,
    stable: Option<StablePort<'_>>,
    bad: &dyn Fn(String) -> ForwardError,
) -> Result<Forward, ForwardError> {
    let parts = split_outside_brackets(spec).ok_or_else(|| bad("unbalanced `[`".to_string()))?;
    match parts.as_slice() {
        [name] => {
            let mut f = service_forward(name, None, services).map_err(bad)?;
            if let Some(stable) = stable
                && f.local_port == 0
            {
                f.local_port = stable(&f.name)?;
            }
            Ok(f)
        }
        [a, b] if is_port(b) => {
            let port = remote_port(b).map_err(bad)?;
            Ok(tunnel(host(a).map_err(bad)?, port, port))
        }
        [a, b] if is_port(a) => {
            let local = local_port(a).map_err(bad)?;
            service_forward(b, Some(local), services).map_err(bad)
        }
        [_, _] => Err(bad(
            "expected HOST:PORT, LOCAL_PORT:HOST:PORT or LOCAL_PORT:SERVICE".to_string(),
        )),
        [l, h, p] => {
            let local = local_port(l).map_err(bad)?;
            let port = remote_port(p).map_err(bad)?;
            Ok(tunnel(host(h).map_err(bad)?, port, local))
        }
        _ => Err(bad(
            "too many `:`; put an IPv6 address in brackets, as [2001:db8::1]:80".to_string(),
        )),
    }
}

fn tunnel(host: String, port: u16, local_port: u16) -> Forward {
    Forward {
        name: crate::dial::target(&host, port),
        target: Target::Tunnel { host, port },
        local_port,
        service: None,
    }
}

fn service_forward(
    name: &str,
    local: Option<u16>,
    services: &BTreeMap<String, Service>,
) -> Result<Forward, String> {
    let Some(s) = services.get(name) else {
        let known: Vec<&str> = services.keys().map(String::as_str).collect();
        return Err(format!(
            "no service named `{name}` (services: {}); or give HOST:PORT",
            known.join(", ")
        ));
    };
    Ok(Forward {
        name: s.name.clone(),
        target: Target::Tunnel {
            host: s.host.clone(),
            port: s.port,
        },
        local_port: local.unwrap_or(s.local_port),
        service: Some(s.clone()),
    })
}

/// Splits on `:` except inside `[...]`; `None` when brackets do not balance.
fn split_outside_brackets(s: &str) -> Option<Vec<&str>> {
    let mut parts = Vec::new();
    let mut depth = 0usize;
    let mut start = 0;
    for (i, c) in s.char_indices() {
        match c {
            '[' => depth += 1,
            ']' => depth = depth.checked_sub(1)?,
            ':' if depth == 0 => {
                parts.push(&s[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    (depth == 0).then(|| {
        parts.push(&s[start..]);
        parts
    })
}

fn is_port(s: &str) -> bool {
    !s.is_empty() && s.chars().all(|c| c.is_ascii_digit())
}

fn local_port(s: &str) -> Result<u16, String> {
    s.parse()
        .map_err(|_| format!("local port `{s}` is out of range (0-65535, 0 = any free port)"))
}

fn remote_port(s: &str) -> Result<u16, String> {
    match s.parse::<u16>() {
        Ok(p) if p > 0 => Ok(p),
        _ => Err(format!("port `{s}` is out of range (1-65535)")),
    }
}

fn host(s: &str) -> Result<String, String> {
    let h = s
        .strip_prefix('[')
        .and_then(|r| r.strip_suffix(']'))
        .unwrap_or(s);
    if h.is_empty() {
        return Err("the host is empty".to_string());
    }
    if h.chars()
        .any(|c| c.is_whitespace() || matches!(c, '/' | '@' | '[' | ']'))
    {
        return Err(format!("`{s}` is not a host name or address"));
    }
    Ok(h.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::builtin_services;

    fn services() -> BTreeMap<String, Service> {
        builtin_services()
            .into_iter()
            .map(|s| (s.name.clone(), s))
            .collect()
    }

    fn parse(s: &str) -> Result<Forward, ForwardError> {
        parse_spec(s, &services())
    }

    #[test]
    fn name_equals_spec_names_the_forward() {
        let f = parse("db=5432:10.0.0.5:5432").unwrap();
        assert_eq!(f.name, "db");
        assert_eq!(
            (f.target, f.local_port),
            (
                Target::Tunnel {
                    host: "10.0.0.5".into(),
                    port: 5432
                },
                5432
            )
        );
        assert_eq!(parse("ui=grafana").unwrap().name, "ui");
        for bad in ["=80:h:80", "a b=h:80", "all=h:80", "-x=h:80"] {
            let e = parse(bad).unwrap_err().to_string();
            assert!(e.contains(bad), "{e}");
        }
    }

    #[test]
    fn service_name_uses_its_target_and_local_port() {
        let f = parse("grafana").unwrap();
        assert_eq!(f.name, "grafana");
        assert_eq!(
            f.target,
            Target::Tunnel {
                host: "grafana.paragon.svc.cluster.local".into(),
                port: 4500
            }
        );
        assert_eq!(f.local_port, 4500);
        let local = "127.0.0.1:4500".parse().unwrap();
        assert_eq!(f.url(local), "http://127.0.0.1:4500/");
    }

    #[test]
    fn local_port_can_override_a_service() {
        let f = parse("3000:grafana").unwrap();
        assert_eq!((f.name.as_str(), f.local_port), ("grafana", 3000));
    }

    #[test]
    fn ssh_style_specs() {
        let f = parse("8080:10.0.0.5:80").unwrap();
        assert_eq!(f.local_port, 8080);
        assert_eq!(f.name, "10.0.0.5:80");
        let f = parse("db.internal:5432").unwrap();
        assert_eq!(f.local_port, 5432);
        assert_eq!(
            f.target,
            Target::Tunnel {
                host: "db.internal".into(),
                port: 5432
            }
        );
        let f = parse("0:[2001:db8::1]:443").unwrap();
        assert_eq!(f.local_port, 0);
        assert_eq!(f.name, "[2001:db8::1]:443");
        assert_eq!(f.target_text().unwrap(), "[2001:db8::1]:443");
    }

    #[test]
    fn bad_specs_name_the_spec_and_the_problem() {
        for (spec, want) in [
            ("nosuch", "no service named `nosuch`"),
            ("h:0", "port `0` is out of range"),
            ("70000:h:80", "local port `70000` is out of range"),
            ("2001:db8::1:80", "put an IPv6 address in brackets"),
            ("[::1:80", "unbalanced"),
            (":80", "the host is empty"),
            ("a b:80", "is not a host name"),
            ("x:grafana", "expected HOST:PORT"),
        ] {
            let e = parse(spec).unwrap_err().to_string();
            assert!(e.starts_with(&format!("`{spec}`: ")), "{e}");
            assert!(e.contains(want), "{spec}: {e}");
        }
        let e = parse("nosuch").unwrap_err().to_string();
        assert!(
            e.contains("grafana, kibana, openobserve, prometheus"),
            "{e}"
        );
    }

    #[test]
    fn only_a_service_without_a_local_port_of_its_own_takes_the_stable_one() {
        let mut all = services();
        all.get_mut("kibana").unwrap().local_port = 0;
        let stable = |name: &str| -> Result<u16, crate::state::StateError> {
            assert_eq!(name, "kibana");
            Ok(24001)
        };
        let specs = |words: &[&str]| words.iter().map(|w| w.to_string()).collect::<Vec<_>>();
        let got = parse_specs_stable(
            &specs(&["kibana", "grafana", "0:kibana", "3000:kibana", "h:80"]),
            &all,
            &stable,
        )
        .unwrap();
        let ports: Vec<u16> = got.iter().map(|f| f.local_port).collect();
        assert_eq!(ports, [24001, 4500, 0, 3000, 80]);
        assert_eq!(parse_spec("kibana", &all).unwrap().local_port, 0);
    }
}
