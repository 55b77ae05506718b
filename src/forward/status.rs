//! What a running forward tells its user: one line per listener, reconnect notices, and on a
//! terminal a live status line (connections, bytes, the bastion's state); or, for scripts,
//! one JSON object per line for every event.

use std::io::Write;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use tokio::sync::mpsc::UnboundedReceiver;

use super::Event;
use super::relay::Stats;
use super::supervisor::Link;

/// How events are printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Style {
    /// Lines for people; `live` redraws a status line every second (a terminal only).
    Human { live: bool },
    /// One JSON object per line.
    Json,
}

/// Where the result goes: stdout, or stderr when stdout carries something else (a kubeconfig).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sink {
    Stdout,
    Stderr,
}

/// Prints events (and the live status) until the event channel closes.
pub(crate) async fn report(
    mut events: UnboundedReceiver<Event>,
    style: Style,
    sink: Sink,
    stats: Vec<Arc<Stats>>,
    link: Link,
) {
    let live = matches!(style, Style::Human { live: true });
    // The live line is indicatif's: every event is printed with the line taken down and
    // redrawn after, so that no message is ever glued to it.
    let bar = live.then(|| {
        let target = match sink {
            Sink::Stdout => indicatif::ProgressDrawTarget::stdout(),
            Sink::Stderr => indicatif::ProgressDrawTarget::stderr(),
        };
        let bar = indicatif::ProgressBar::with_draw_target(None, target);
        if let Ok(style) = indicatif::ProgressStyle::with_template("{msg}") {
            bar.set_style(style);
        }
        bar
    });
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    loop {
        tokio::select! {
            e = events.recv() => {
                let Some(e) = e else { break };
                match &bar {
                    Some(bar) => bar.suspend(|| print_event(&e, style, sink)),
                    None => print_event(&e, style, sink),
                }
            }
            _ = tick.tick(), if live => {
                if let Some(bar) = &bar {
                    bar.set_message(status_line(&stats, link.is_up()));
                }
            }
        }
    }
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
}

/// Prints one event as `style` says (also the detached forwards' lines, printed by the
/// command that handed them to the agent).
pub fn print_event(e: &Event, style: Style, sink: Sink) {
    // A closed stdout (a pipe whose reader left) must not stop the forwards: ignore errors.
    match style {
        Style::Json => {
            let _ = match sink {
                Sink::Stdout => crate::output::print_json_line(e),
                Sink::Stderr => serde_json::to_string(e)
                    .map_or(Ok(()), |line| writeln!(std::io::stderr().lock(), "{line}")),
            };
        }
        Style::Human { .. } => match e {
            Event::Listening { .. } => {
                let _ = write_line(sink, &human_line(e));
            }
            // Reconnect notices are progress: stderr, whatever the result's sink.
            _ => {
                let _ = write_line(Sink::Stderr, &human_line(e));
            }
        },
    }
}

/// The human line for an event.
pub(crate) fn human_line(e: &Event) -> String {
    match e {
        Event::Listening {
            name,
            url,
            target,
            route,
            protocol,
            ..
        } => match target {
            Some(t) if *route == super::route::Route::Api => match protocol {
                Some(p) => format!(
                    "{name:<12} {url}  ->  {t} (through the Kubernetes API, {})",
                    p.name()
                ),
                None => format!("{name:<12} {url}  ->  {t} (through the Kubernetes API)"),
            },
            Some(t) => format!("{name:<12} {url}  ->  {t}"),
            None => format!("{name:<12} {url}  ->  any host, through the bastion"),
        },
        Event::Disconnected => {
            "paragon-admin: lost the connection to the bastion; reconnecting (listeners stay open)"
                .to_string()
        }
        Event::Reconnecting { attempt } => {
            format!("paragon-admin: reconnecting to the bastion (attempt {attempt})")
        }
        Event::ReconnectFailed {
            attempt,
            error,
            retry_in_secs,
        } => {
            format!("paragon-admin: attempt {attempt} failed: {error}; next in {retry_in_secs:.1}s")
        }
        Event::Reconnected {
            attempts,
            down_secs,
        } => format!(
            "paragon-admin: reconnected to the bastion after {down_secs:.1}s ({attempts} attempt{})",
            if *attempts == 1 { "" } else { "s" }
        ),
    }
}

fn write_line(sink: Sink, line: &str) -> std::io::Result<()> {
    match sink {
        Sink::Stdout => {
            let mut out = std::io::stdout().lock();
            writeln!(out, "{line}")?;
            out.flush()
        }
        Sink::Stderr => writeln!(std::io::stderr().lock(), "{line}"),
    }
}

/// The live status: connections and bytes over all forwards, and the bastion's state.
pub(crate) fn status_line(stats: &[Arc<Stats>], bastion_up: bool) -> String {
    let sum = |f: fn(&Stats) -> u64| stats.iter().map(|s| f(s)).sum::<u64>();
    let open = sum(|s| s.open.load(Ordering::Relaxed));
    let total = sum(|s| s.total.load(Ordering::Relaxed));
    let failed = sum(|s| s.failed.load(Ordering::Relaxed));
    let sent = sum(|s| s.sent.load(Ordering::Relaxed));
    let received = sum(|s| s.received.load(Ordering::Relaxed));
    let failed = if failed > 0 {
        format!(" ({failed} failed)")
    } else {
        String::new()
    };
    format!(
        "{open} open, {total} total{failed} | sent {} received {} | bastion {}",
        bytes(sent),
        bytes(received),
        if bastion_up { "up" } else { "reconnecting" }
    )
}

/// A byte count for people: B, KiB, MiB, GiB.
pub(crate) fn bytes(n: u64) -> String {
    const UNITS: [&str; 4] = ["B", "KiB", "MiB", "GiB"];
    let mut value = n as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{n} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn byte_counts_read_well() {
        assert_eq!(bytes(0), "0 B");
        assert_eq!(bytes(1023), "1023 B");
        assert_eq!(bytes(1536), "1.5 KiB");
        assert_eq!(bytes(5 * 1024 * 1024 * 1024), "5.0 GiB");
    }

    #[test]
    fn status_sums_over_forwards() {
        let a = Arc::new(Stats::default());
        let b = Arc::new(Stats::default());
        a.open.store(2, Ordering::Relaxed);
        a.total.store(10, Ordering::Relaxed);
        b.total.store(5, Ordering::Relaxed);
        b.failed.store(1, Ordering::Relaxed);
        b.received.store(2048, Ordering::Relaxed);
        let line = status_line(&[a, b], false);
        assert_eq!(
            line,
            "2 open, 15 total (1 failed) | sent 0 B received 2.0 KiB | bastion reconnecting"
        );
    }

    #[test]
    fn listening_line_shows_url_target_and_route() {
        let mut e = Event::Listening {
            name: "grafana".into(),
            local: "127.0.0.1:4500".parse().unwrap(),
            target: Some("grafana.paragon.svc.cluster.local:4500".into()),
            url: "http://127.0.0.1:4500/".into(),
            route: super::super::route::Route::Bastion,
            protocol: None,
        };
        assert_eq!(
            human_line(&e),
            "grafana      http://127.0.0.1:4500/  ->  grafana.paragon.svc.cluster.local:4500"
        );
        let json = serde_json::to_value(&e).unwrap();
        assert_eq!(json["event"], "listening");
        assert_eq!(json["local"], "127.0.0.1:4500");
        assert_eq!(json["route"], "bastion");
        assert!(json.get("protocol").is_none(), "{json}");
        let Event::Listening {
            route, protocol, ..
        } = &mut e
        else {
            unreachable!()
        };
        *route = super::super::route::Route::Api;
        *protocol = Some(super::super::route::Protocol::SpdyTunnel);
        assert!(
            human_line(&e).ends_with("4500 (through the Kubernetes API, SPDY over WebSocket)"),
            "{}",
            human_line(&e)
        );
        let json = serde_json::to_value(&e).unwrap();
        assert_eq!(json["route"], "api");
        assert_eq!(json["protocol"], "spdy-websocket");
    }
}
