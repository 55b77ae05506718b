//! The report as a table for people: STATUS, CHECK, SUBJECT, MESSAGE, sized to the terminal
//! (100 columns when stdout is not one), failures last so they sit next to the summary line.
//! Cells are wrapped here, at spaces, before comfy-table sees them: a word is cut only when it
//! is wider than its whole column (never leaving a line that starts with a colon), and a
//! subject too wide for its column is shortened at the front, keeping the end of its name. This module knows nothing of how findings are made.

use comfy_table::{Cell, Color, ContentArrangement};

use super::{Finding, Report, Severity};
use crate::output;
use crate::text::printable;

/// Where a monitoring message's route explanation begins (`monitoring::judge` writes it).
const ROUTE_NOTE: &str = "; target ";

/// The width used when stdout is not a terminal (a file, a pipe, a CI log).
const OFF_TERMINAL_WIDTH: usize = 100;
/// Narrower than this, columns cannot be laid out usefully: lay the table out as is.
const MIN_WIDTH: usize = 40;
/// The share of the width a subject may take.
const SUBJECT_SHARE: usize = 30;

/// The column widths for a table `width` columns wide.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Widths {
    status: usize,
    check: usize,
    subject: usize,
    message: usize,
}

fn widths(findings: &[&Finding], width: usize) -> Widths {
    let longest = |f: &dyn Fn(&Finding) -> usize, header: &str| {
        findings
            .iter()
            .map(|x| f(x))
            .max()
            .unwrap_or(0)
            .max(header.len())
    };
    let status = longest(&|f| f.severity.to_string().len(), "STATUS");
    let check = longest(&|f| f.check.chars().count(), "CHECK");
    // Four columns: a border and a space either side of each, and the last border.
    let frame = 3 * 4 + 1;
    let left = width.saturating_sub(frame + status + check);
    let subject = longest(&|f| f.subject.chars().count(), "SUBJECT")
        .min(width * SUBJECT_SHARE / 100)
        .max("SUBJECT".len());
    let message = left.saturating_sub(subject).max("MESSAGE".len());
    Widths {
        status,
        check,
        subject,
        message,
    }
}

/// Wraps `text` at spaces into lines of at most `width` characters; a word longer than a
/// whole line is the only thing ever cut.
pub fn wrap(text: &str, width: usize) -> String {
    let width = width.max(1);
    let mut lines: Vec<String> = Vec::new();
    let mut line = String::new();
    for word in text.split_whitespace() {
        let mut word: Vec<char> = word.chars().collect();
        let used = line.chars().count();
        if used > 0 && used + 1 + word.len() <= width {
            line.push(' ');
            line.extend(word.iter());
            continue;
        }
        if used > 0 {
            lines.push(std::mem::take(&mut line));
        }
        while word.len() > width {
            // A piece never starts with a colon (`HOST` / `:PORT`): it reads as a new field.
            let cut = match word.get(width) {
                Some(':') if width > 1 => width - 1,
                _ => width,
            };
            let rest = word.split_off(cut);
            lines.push(word.into_iter().collect());
            word = rest;
        }
        line = word.into_iter().collect();
    }
    if !line.is_empty() || lines.is_empty() {
        lines.push(line);
    }
    lines.join("\n")
}

/// Shortens a subject to `width` characters: `namespace/kind/name` loses its namespace
/// first, then the front of what is left (`…orkflows-7c9d-x2x`), so the end of a generated
/// name, which tells pods apart, stays whole and nothing is cut out of its middle.
pub fn shorten(subject: &str, width: usize) -> String {
    if subject.chars().count() <= width {
        return subject.to_string();
    }
    let parts: Vec<&str> = subject.split('/').collect();
    let s = if parts.len() == 3 {
        format!("{}/{}", parts[1], parts[2])
    } else {
        subject.to_string()
    };
    let chars: Vec<char> = s.chars().collect();
    if chars.len() <= width {
        return s;
    }
    let keep = width.saturating_sub(1);
    let mut out = String::from('…');
    out.extend(&chars[chars.len() - keep..]);
    out
}

impl Report {
    /// A row's message as the table shows it: a monitoring row that is fine leaves out where
    /// its target came from and the route it took (`-v` and the JSON keep it); a warning or
    /// a failure keeps it, where it explains the problem.
    fn shown_message<'a>(&self, f: &'a Finding) -> &'a str {
        if self.verbose || f.route.is_none() || f.severity != Severity::Ok {
            return &f.message;
        }
        f.message
            .find(ROUTE_NOTE)
            .map_or(&f.message, |at| &f.message[..at])
    }

    /// The table for people, as wide as the terminal, or 100 columns off a terminal.
    /// Failures come last, next to the summary line.
    pub fn table(&self) -> comfy_table::Table {
        let width = crossterm::terminal::size()
            .ok()
            .filter(|_| std::io::IsTerminal::is_terminal(&std::io::stdout()))
            .map(|(w, _)| usize::from(w))
            .unwrap_or(OFF_TERMINAL_WIDTH);
        self.table_of_width(width)
    }

    /// The table laid out for `width` columns.
    pub fn table_of_width(&self, width: usize) -> comfy_table::Table {
        let mut t = output::table(["STATUS", "CHECK", "SUBJECT", "MESSAGE"]);
        // The cells are wrapped already: comfy-table must not wrap them again.
        t.set_content_arrangement(ContentArrangement::Disabled);
        let shown: Vec<&Finding> = self.checks.iter().rev().collect();
        let w = widths(&shown, width);
        let fits = width >= MIN_WIDTH;
        let colour = output::color_enabled();
        for f in shown {
            let mut status = Cell::new(f.severity);
            if colour {
                status = status.fg(match f.severity {
                    Severity::Ok => Color::Green,
                    Severity::Warn => Color::Yellow,
                    Severity::Fail => Color::Red,
                });
            }
            // The summary finding of a check names the check again: leave the subject out.
            // Subjects and messages quote servers (the API, the bastion's stderr): their
            // control characters are shown escaped, never sent to the terminal.
            let (f_subject, f_message) = (printable(&f.subject), printable(self.shown_message(f)));
            let subject = if f.subject == f.check {
                String::new()
            } else if fits {
                shorten(&f_subject, w.subject)
            } else {
                f_subject
            };
            let message = if fits {
                wrap(&f_message, w.message)
            } else {
                f_message
            };
            t.add_row(vec![
                status,
                Cell::new(&f.check),
                Cell::new(subject),
                Cell::new(message),
            ]);
        }
        t
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::health::Area;
    use std::time::Duration;

    #[test]
    fn wrapping_breaks_at_spaces_and_cuts_only_words_wider_than_the_column() {
        assert_eq!(
            wrap("container worker is not ready", 12),
            "container\nworker is\nnot ready"
        );
        assert_eq!(wrap("abcdefghij xy", 4), "abcd\nefgh\nij\nxy");
        assert_eq!(wrap("", 10), "");
        // `HOST:PORT` cut at the colon: the colon stays with the host.
        assert_eq!(
            wrap("at 10.20.30.40:5601 x", 11),
            "at\n10.20.30.4\n0:5601 x"
        );
        for line in wrap("unreachable: bastion-host.example:22", 17).lines() {
            assert!(!line.starts_with(':'), "{line}");
        }
    }

    #[test]
    fn long_subjects_lose_the_namespace_then_the_middle() {
        assert_eq!(
            shorten("paragon/pod/worker-workflows-7c9d5f-x2x9z", 34),
            "pod/worker-workflows-7c9d5f-x2x9z"
        );
        let s = shorten("paragon/pod/worker-workflows-7c9d5f-x2x9z", 20);
        assert_eq!(s, "…kflows-7c9d5f-x2x9z");
        assert_eq!(s.chars().count(), 20);
        assert_eq!(shorten("node/n1", 20), "node/n1");
    }

    fn finding(check: &str, severity: Severity, subject: &str, message: &str) -> Finding {
        let mut f = Finding::new(severity, subject, message);
        f.check = check.into();
        f.area = Area::Pods;
        f
    }

    #[test]
    fn a_narrow_table_keeps_every_line_within_its_width_and_failures_last() {
        let r = Report::new(
            vec![
                finding("pods", Severity::Ok, "pods", "120 pods, 118 running"),
                finding(
                    "pods",
                    Severity::Fail,
                    "paragon/pod/worker-workflows-7c9d5f-x2x9z",
                    "container worker in CrashLoopBackOff (9 restarts, last exit 1 Error)",
                ),
                finding(
                    "jobs",
                    Severity::Warn,
                    "paragon/job/nightly",
                    "1 job failed",
                ),
            ],
            Duration::ZERO,
        );
        let text = r.table_of_width(60).to_string();
        for line in text.lines() {
            assert!(
                line.chars().count() <= 60,
                "{} wide: {line}\n{text}",
                line.chars().count()
            );
        }
        // No word is cut: every word of the message is whole on some line.
        for word in ["CrashLoopBackOff", "restarts,", "Error)"] {
            assert!(text.contains(word), "{word} cut:\n{text}");
        }
        let rows: Vec<&str> = text
            .lines()
            .filter(|l| l.contains("fail") || l.contains("ok "))
            .collect();
        assert!(
            rows.last().unwrap().contains("fail"),
            "failures last:\n{text}"
        );
        // The summary row of a check does not repeat the check as its subject.
        let ok_row = text.lines().find(|l| l.contains("120 pods")).unwrap();
        assert_eq!(ok_row.matches("pods").count(), 2, "{ok_row}");
    }

    #[test]
    fn escape_sequences_in_a_finding_reach_the_table_escaped() {
        let r = Report::new(
            vec![finding(
                "api",
                Severity::Fail,
                "api\u{1b}[2J",
                "unreachable: \u{1b}]0;owned\u{7} \u{1b}[31mred",
            )],
            Duration::ZERO,
        );
        let text = r.table_of_width(100).to_string();
        assert!(
            !text.contains('\u{1b}') && !text.contains('\u{7}'),
            "{text:?}"
        );
        assert!(text.contains("\\033]0;owned\\007"), "{text}");
    }

    #[test]
    fn a_healthy_monitoring_row_leaves_its_route_to_verbose_and_a_failing_one_keeps_it() {
        let with_route = |severity, message: &str| {
            let mut f = finding("grafana", severity, "grafana:4500", message);
            f.area = Area::Monitoring;
            f.route = Some(crate::health::Route::Bastion);
            f
        };
        let mut r = Report::new(
            vec![
                with_route(
                    Severity::Ok,
                    "healthy; target configured; dialed from bastion b:22",
                ),
                with_route(
                    Severity::Fail,
                    "unreachable: refused; target configured; dialed from bastion b:22",
                ),
            ],
            Duration::ZERO,
        );
        let text = r.table_of_width(200).to_string();
        assert_eq!(text.matches("dialed from bastion").count(), 1, "{text}");
        assert!(text.contains("| healthy "), "{text}");
        r.verbose = true;
        let text = r.table_of_width(200).to_string();
        assert_eq!(text.matches("dialed from bastion").count(), 2, "{text}");
        // JSON keeps the whole message.
        let json = serde_json::to_string(&r).unwrap();
        assert_eq!(json.matches("dialed from bastion").count(), 2, "{json}");
    }

    #[test]
    fn off_a_terminal_the_table_is_100_columns_at_most() {
        let long = "word ".repeat(60);
        let r = Report::new(
            vec![finding("events", Severity::Warn, "paragon/pod/p", &long)],
            Duration::ZERO,
        );
        let text = r.table_of_width(OFF_TERMINAL_WIDTH).to_string();
        assert!(text.lines().all(|l| l.chars().count() <= 100), "{text}");
    }
}
