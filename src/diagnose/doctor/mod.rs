//! The hop-by-hop doctor: walks the path a command takes (the profile's files, the bastion or
//! its jump host by name, TCP, banner, key exchange, host key and authentication, the kept
//! connection, then from the bastion the API server, the datastores and the services) and says
//! for each hop whether it works, how long it took and what it found; the first hop that fails
//! also gets one sentence with its likely cause and the fix.
//!
//! The SSH session is the one `ssh::Bastion::connect` makes: its typed errors are mapped to the
//! hop they stopped at; only name resolution, the TCP connect and the banner are probed apart,
//! since the handshake cannot say what answered on a port that is not SSH's. Knows nothing of
//! clap; the table and JSON are rendered here so that `bundle` can carry the same result.

mod bastion;
mod beyond;
mod local;

use std::time::{Duration, Instant};

use serde::Serialize;

use crate::config::Resolved;

/// How a hop ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Ok,
    Failed,
    /// Not tried: an earlier hop failed, or there is nothing to try (no agent runs).
    Skipped,
}

impl std::fmt::Display for Status {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Status::Ok => "ok",
            Status::Failed => "FAILED",
            Status::Skipped => "skipped",
        })
    }
}

/// Where on the path a hop is; a failure's exit status follows from it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Stage {
    /// This machine's config and files: 2.
    Config,
    /// Reaching, verifying and authenticating to the bastion (or its jump host): 255.
    Bastion,
    /// The kept connection and what lies past the bastion: 1.
    Beyond,
}

/// One hop of the path.
#[derive(Debug, Clone, Serialize)]
pub struct Hop {
    pub name: String,
    pub stage: Stage,
    pub status: Status,
    /// How long the hop took; `None` when it was not timed on its own (skipped, or part of
    /// another hop's exchange).
    pub duration_ms: Option<u64>,
    pub detail: String,
    /// For the first failing hop only: its likely cause and the fix, in one sentence.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub advice: Option<String>,
}

/// The whole walk: `doctor.json` in a bundle, `--output json` of `doctor`.
#[derive(Debug, Clone, Serialize)]
pub struct Diagnosis {
    pub profile: String,
    pub hops: Vec<Hop>,
}

/// How the walk is bounded.
#[derive(Debug, Clone, Copy)]
pub struct Options {
    /// The deadline of each network step (a name lookup, a connect, a banner, a probe).
    pub timeout: Duration,
    /// `--no-agent`: past the bastion, dial through doctor's own session even when the
    /// profile's agent is up.
    pub no_agent: bool,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            timeout: Duration::from_secs(10),
            no_agent: false,
        }
    }
}

impl Diagnosis {
    fn new(profile: &str) -> Diagnosis {
        Diagnosis {
            profile: profile.to_string(),
            hops: Vec::new(),
        }
    }

    /// A profile that could not be read: the one config hop, failed.
    pub fn config_failed(profile: Option<&str>, error: &dyn std::fmt::Display) -> Diagnosis {
        let mut d = Diagnosis::new(profile.unwrap_or_default());
        d.failed(
            Stage::Config,
            "config",
            None,
            error.to_string(),
            "the config file or profile cannot be used: fix what the message names, or run `paragon-admin init`".to_string(),
        );
        d.finish()
    }

    fn ok(&mut self, stage: Stage, name: &str, since: Option<Instant>, detail: String) {
        self.push(stage, name, Status::Ok, since, detail, None);
    }

    fn failed(
        &mut self,
        stage: Stage,
        name: &str,
        since: Option<Instant>,
        detail: String,
        advice: String,
    ) {
        self.push(stage, name, Status::Failed, since, detail, Some(advice));
    }

    fn skipped(&mut self, stage: Stage, name: &str, detail: &str) {
        self.push(stage, name, Status::Skipped, None, detail.to_string(), None);
    }

    fn push(
        &mut self,
        stage: Stage,
        name: &str,
        status: Status,
        since: Option<Instant>,
        detail: String,
        advice: Option<String>,
    ) {
        self.hops.push(Hop {
            name: name.to_string(),
            stage,
            status,
            duration_ms: since.map(|s| u64::try_from(s.elapsed().as_millis()).unwrap_or(u64::MAX)),
            detail: crate::text::printable(&detail),
            advice,
        });
    }

    /// Keeps the advice of the first failing hop only: the later ones may follow from it.
    fn finish(mut self) -> Diagnosis {
        let mut first = true;
        for h in &mut self.hops {
            if h.status == Status::Failed && first {
                first = false;
            } else {
                h.advice = None;
            }
        }
        self
    }

    /// The first hop that failed.
    pub fn first_failure(&self) -> Option<&Hop> {
        self.hops.iter().find(|h| h.status == Status::Failed)
    }

    /// 0 when every hop works, else by the first failure: 2 for this machine's config, 255
    /// when the bastion is not reached, 1 for a hop past it.
    pub fn exit_status(&self) -> u8 {
        match self.first_failure().map(|h| h.stage) {
            None => 0,
            Some(Stage::Config) => crate::exit::USAGE,
            Some(Stage::Bastion) => crate::exit::UNREACHABLE,
            Some(Stage::Beyond) => crate::exit::FAILED,
        }
    }

    /// The table for people, as wide as the terminal (100 columns off one), and the first
    /// failure's advice under it.
    pub fn render(&self) -> String {
        let width = crossterm::terminal::size()
            .ok()
            .filter(|_| std::io::IsTerminal::is_terminal(&std::io::stdout()))
            .map(|(w, _)| usize::from(w))
            .unwrap_or(100);
        self.render_width(width)
    }

    fn render_width(&self, width: usize) -> String {
        let mut t = crate::output::table(["HOP", "STATUS", "TIME", "DETAIL"]);
        // The details are wrapped here, at spaces: comfy-table must not wrap them again.
        t.set_content_arrangement(comfy_table::ContentArrangement::Disabled);
        let time = |h: &Hop| {
            h.duration_ms
                .map(|ms| format!("{ms} ms"))
                .unwrap_or_else(|| "-".to_string())
        };
        let widest = |f: &dyn Fn(&Hop) -> usize, header: &str| {
            self.hops.iter().map(f).max().unwrap_or(0).max(header.len())
        };
        let left = widest(&|h| h.name.chars().count(), "HOP")
            + widest(&|h| h.status.to_string().len(), "STATUS")
            + widest(&|h| time(h).len(), "TIME");
        // Four columns: a border and a space either side of each, and the last border.
        let detail = width.saturating_sub(left + 3 * 4 + 1).max(30);
        for h in &self.hops {
            t.add_row([
                h.name.clone(),
                h.status.to_string(),
                time(h),
                crate::health::wrap(&h.detail, detail),
            ]);
        }
        let mut out = t.to_string();
        out.push('\n');
        match self.first_failure() {
            None => out.push_str("every hop works\n"),
            Some(h) => {
                let mut line = format!("first failure: {}", h.name);
                if let Some(a) = &h.advice {
                    line.push_str(&format!(": {a}"));
                }
                out.push_str(&crate::health::wrap(&line, width));
                out.push('\n');
            }
        }
        out
    }
}

/// Walks the path of `profile` and says how each hop went.
pub async fn run(profile: &Resolved, options: Options) -> Diagnosis {
    let mut d = Diagnosis::new(&profile.name);
    let Some(profile) = local::check(profile, &mut d) else {
        skip_from(&mut d, profile, Skip::Bastion);
        return d.finish();
    };
    let Some(session) = bastion::reach(&profile, &mut d, options).await else {
        skip_from(&mut d, &profile, Skip::Beyond);
        return d.finish();
    };
    // Past the bastion, as every command goes: through the kept connection when it is up.
    let remote = match bastion::kept(&profile, &mut d, options.no_agent).await {
        Some(agent) => crate::agent::Remote::Agent(agent),
        None => crate::agent::Remote::Direct(session),
    };
    beyond::check(&profile, remote, &mut d, options).await;
    d.finish()
}

/// Where skipping starts after a failure.
enum Skip {
    Bastion,
    Beyond,
}

/// The hops that were not tried after a failure, so the path is seen whole.
fn skip_from(d: &mut Diagnosis, profile: &Resolved, from: Skip) {
    const WHY: &str = "not tried: an earlier hop failed";
    for name in bastion::HOPS {
        let walked = d.hops.iter().any(|h| h.name == name);
        if matches!(from, Skip::Bastion) || !walked {
            d.skipped(Stage::Bastion, name, WHY);
        }
    }
    d.skipped(Stage::Beyond, "kept connection", WHY);
    for name in beyond::hop_names(profile) {
        d.skipped(Stage::Beyond, &name, WHY);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hop(d: &mut Diagnosis, stage: Stage, ok: bool) {
        if ok {
            d.ok(stage, "x", None, String::new());
        } else {
            d.failed(stage, "x", None, "broken".into(), "fix it".into());
        }
    }

    #[test]
    fn the_first_failure_decides_the_exit_status_and_alone_keeps_its_advice() {
        let mut d = Diagnosis::new("p");
        hop(&mut d, Stage::Config, true);
        assert_eq!(d.clone().finish().exit_status(), 0);
        hop(&mut d, Stage::Bastion, false);
        hop(&mut d, Stage::Beyond, false);
        let d = d.finish();
        assert_eq!(d.exit_status(), 255);
        assert_eq!(d.hops[1].advice.as_deref(), Some("fix it"));
        assert_eq!(d.hops[2].advice, None);
        let mut d = Diagnosis::new("p");
        hop(&mut d, Stage::Beyond, false);
        assert_eq!(d.finish().exit_status(), 1);
        let d = Diagnosis::config_failed(None, &"no config file");
        assert_eq!(d.exit_status(), 2);
        let text = d.render_width(100);
        assert!(text.contains("first failure: config: "), "{text}");
        assert!(text.lines().all(|l| l.chars().count() <= 100), "{text}");
    }
}
