//! The report: every finding, ranked; the overall status; the table and the JSON document.

use std::time::Duration;

use serde::Serialize;

use super::{Area, Finding, Severity};

/// Everything the checks found.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// The worst severity found: `fail` if anything failed.
    pub status: Severity,
    pub summary: Summary,
    /// Every finding, failures first within each area, areas with failures first.
    pub checks: Vec<Finding>,
    pub elapsed_ms: u128,
    /// `--strict`: a check that did not run fails the report.
    #[serde(skip)]
    pub strict: bool,
    /// `-v`: the table shows every row's route explanation, not only a problem's.
    #[serde(skip)]
    pub verbose: bool,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Summary {
    pub ok: usize,
    pub warn: usize,
    pub fail: usize,
    /// Findings from checks that could not run (counted under `fail` too when that was a
    /// failure, a deadline passed; never under `warn`).
    pub not_checked: usize,
}

impl Report {
    pub fn new(mut findings: Vec<Finding>, elapsed: Duration) -> Self {
        rank(&mut findings);
        let mut summary = Summary::default();
        // A check that did not run is counted as that, not as a warning; one that could not
        // run because something failed (a deadline) still counts as a failure.
        let counted = |f: &Finding| f.checked || f.severity == Severity::Fail;
        for f in &findings {
            if !f.checked {
                summary.not_checked += 1;
            }
            if !counted(f) {
                continue;
            }
            match f.severity {
                Severity::Ok => summary.ok += 1,
                Severity::Warn => summary.warn += 1,
                Severity::Fail => summary.fail += 1,
            }
        }
        Report {
            status: findings
                .iter()
                .filter(|f| counted(f))
                .map(|f| f.severity)
                .max()
                .unwrap_or(Severity::Ok),
            summary,
            checks: findings,
            elapsed_ms: elapsed.as_millis(),
            strict: false,
            verbose: false,
        }
    }

    /// 0 when nothing failed (warnings allowed), 1 when something failed, or with
    /// `--strict` when a check did not run.
    pub fn exit_status(&self) -> u8 {
        u8::from(self.status == Severity::Fail || (self.strict && self.summary.not_checked > 0))
    }

    /// The report on stdout: the JSON document, or the table and the summary line.
    pub fn print(&self, format: crate::output::Format) -> std::io::Result<()> {
        match format {
            crate::output::Format::Json => crate::output::print_json(self),
            crate::output::Format::Table => {
                crate::output::print_table(&self.table())?;
                use std::io::Write;
                let mut out = std::io::stdout().lock();
                writeln!(out, "{}", self.summary_line())?;
                out.flush()
            }
        }
    }

    /// `2 failed, 1 warning, 14 ok (1 not checked) in 0.8s`.
    pub fn summary_line(&self) -> String {
        let s = &self.summary;
        let plural = if s.warn == 1 { "" } else { "s" };
        let mut line = format!(
            "{}: {} failed, {} warning{plural}, {} ok",
            self.status, s.fail, s.warn, s.ok
        );
        match s.not_checked {
            0 => {}
            1 => line.push_str(" (1 check did not run)"),
            n => line.push_str(&format!(" ({n} checks did not run)")),
        }
        line.push_str(&format!(" in {:.1}s", self.elapsed_ms as f64 / 1000.0));
        line
    }
}

/// Areas with the worst findings first, then the usual order; within an area, failures
/// first, then by check and subject.
fn rank(findings: &mut [Finding]) {
    let worst = |area: Area, all: &[Finding]| {
        all.iter()
            .filter(|f| f.area == area)
            .map(|f| f.severity)
            .max()
            .unwrap_or(Severity::Ok)
    };
    let mut keyed: Vec<(Severity, Finding)> = findings
        .iter()
        .map(|f| (worst(f.area, findings), f.clone()))
        .collect();
    keyed.sort_by(|(wa, a), (wb, b)| {
        wb.cmp(wa)
            .then(a.area.cmp(&b.area))
            .then(b.severity.cmp(&a.severity))
            .then(a.check.cmp(&b.check))
            .then(a.subject.cmp(&b.subject))
    });
    for (slot, (_, f)) in findings.iter_mut().zip(keyed) {
        *slot = f;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn f(area: Area, severity: Severity, subject: &str) -> Finding {
        let mut f = Finding::new(severity, subject, "m");
        f.area = area;
        f.check = area.to_string();
        f
    }

    #[test]
    fn areas_with_failures_come_first_and_failures_lead_each_area() {
        let r = Report::new(
            vec![
                f(Area::Cluster, Severity::Ok, "api"),
                f(Area::Pods, Severity::Warn, "b"),
                f(Area::Pods, Severity::Fail, "a"),
                f(Area::Nodes, Severity::Ok, "n"),
                f(Area::Storage, Severity::Warn, "s"),
            ],
            Duration::from_millis(1500),
        );
        let order: Vec<&str> = r.checks.iter().map(|f| f.subject.as_str()).collect();
        assert_eq!(order, ["a", "b", "s", "api", "n"]);
        assert_eq!(r.status, Severity::Fail);
        assert_eq!(r.exit_status(), 1);
        assert_eq!(r.summary_line(), "fail: 1 failed, 2 warnings, 2 ok in 1.5s");
    }

    #[test]
    fn warnings_alone_exit_zero_and_json_has_stable_names() {
        let r = Report::new(vec![f(Area::Events, Severity::Warn, "e")], Duration::ZERO);
        assert_eq!(r.exit_status(), 0);
        let v = serde_json::to_value(&r).unwrap();
        assert_eq!(v["status"], "warn");
        let c = &v["checks"][0];
        for key in ["name", "status", "message", "subject", "area", "checked"] {
            assert!(c.get(key).is_some(), "missing {key} in {c}");
        }
    }

    #[test]
    fn strict_fails_a_report_with_checks_that_did_not_run_and_the_summary_counts_them() {
        let mut forbidden = f(Area::Nodes, Severity::Warn, "nodes");
        forbidden.checked = false;
        let mut r = Report::new(
            vec![
                forbidden.clone(),
                forbidden,
                f(Area::Pods, Severity::Ok, "p"),
            ],
            Duration::ZERO,
        );
        assert_eq!(r.exit_status(), 0);
        assert_eq!(
            r.summary_line(),
            "ok: 0 failed, 0 warnings, 1 ok (2 checks did not run) in 0.0s"
        );
        r.strict = true;
        assert_eq!(r.exit_status(), 1);
    }
}
