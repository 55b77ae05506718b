//! The support bundle's redactor: every collected text passes through it before it is
//! written. Each rule finds one kind of secret and replaces its value (never the words
//! around it) with `***HIDDEN***`; what it hid is counted per rule, never kept. Knows nothing
//! of where the text came from.

use std::collections::BTreeMap;

use regex::{Captures, Regex};

/// What a hidden value is replaced with (troubleshoot's marker).
pub const HIDDEN: &str = "***HIDDEN***";

/// How many values each rule hid, by rule name.
pub type Counts = BTreeMap<&'static str, usize>;

/// A rule: its name, and a pattern whose groups are `(before)(value)(after)`; the value is
/// replaced, the rest kept.
struct Rule {
    name: &'static str,
    pattern: Regex,
}

/// The rules, in the order they run: whole blocks first, then the most specific shapes, so
/// that a value is counted once, by the rule that knows it best.
const RULES: [(&str, &str); 10] = [
    (
        "private-key",
        r"(-----BEGIN [A-Z0-9 ]*PRIVATE KEY-----)((?s:.*?))(-----END [A-Z0-9 ]*PRIVATE KEY-----)",
    ),
    (
        "jwt",
        r"()(\beyJ[A-Za-z0-9_-]+\.eyJ[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+)()",
    ),
    (
        "bearer-token",
        r"((?i:\bbearer)\s+)([A-Za-z0-9\-._~+/]+=*)()",
    ),
    ("aws-access-key", r"()(\b(?:AKIA|ASIA)[0-9A-Z]{16}\b)()"),
    (
        "url-password",
        r#"(\b[a-zA-Z][a-zA-Z0-9+.-]*://[^:/\s"'@]*:)([^@\s"'/]+)(@)"#,
    ),
    (
        "env-secret",
        r#"("name"\s*:\s*"[A-Za-z0-9_.-]*(?i:password|passwd|secret|token|api_?key|access_?key|private_?key|credential)[A-Za-z0-9_.-]*"\s*,\s*"value"\s*:\s*")((?:[^"\\]|\\.)+)(")"#,
    ),
    (
        "env-secret",
        r#"(\b[A-Z][A-Z0-9_]*(?:PASSWORD|PASSWD|SECRET|TOKEN|API_KEY|APIKEY|ACCESS_KEY|PRIVATE_KEY|CREDENTIALS?)[A-Z0-9_]*=)([^\s"']+)()"#,
    ),
    (
        "json-secret",
        r#"("[^"\\]*(?i:password|passwd|secret|token|api_?key|credential)[^"\\]*"\s*:\s*")((?:[^"\\]|\\.)+)(")"#,
    ),
    (
        "yaml-secret",
        r#"(?m)(^[ \t]*(?:-[ \t]+)?[A-Za-z0-9_.-]*(?i:password|passwd|secret|token|api_?key|access_?key|private_?key|credential)[A-Za-z0-9_.-]*[ \t]*:[ \t]+["']?)([^\s"'#|>][^\n]*?)(["']?(?:[ \t]+#.*|[ \t]*)$)"#,
    ),
    (
        "key-value",
        r#"((?i:\b(?:password|passwd|pwd|secret|token|api_key|apikey)\s*[=:]\s*))([^\s&;,"'*][^\s&;,"']*)()"#,
    ),
];

/// The redactor, its patterns compiled once.
pub struct Redactor {
    rules: Vec<Rule>,
}

impl Redactor {
    pub fn new() -> Redactor {
        let rules = RULES
            .iter()
            .filter_map(|(name, pattern)| match Regex::new(pattern) {
                Ok(pattern) => Some(Rule { name, pattern }),
                // The patterns are constants, checked by a unit test: this cannot happen.
                Err(e) => {
                    tracing::error!("redaction rule {name} does not compile: {e}");
                    None
                }
            })
            .collect();
        Redactor { rules }
    }

    /// `text` with every secret the rules know replaced, and how many each rule hid (added to
    /// `counts`).
    pub fn redact(&self, text: &str, counts: &mut Counts) -> String {
        let mut text = std::borrow::Cow::Borrowed(text);
        for rule in &self.rules {
            let mut hid = 0;
            let replaced = rule.pattern.replace_all(&text, |c: &Captures<'_>| {
                let value = c.get(2).map_or("", |m| m.as_str());
                if value == HIDDEN || value.trim().is_empty() {
                    return c[0].to_string();
                }
                hid += 1;
                let before = c.get(1).map_or("", |m| m.as_str());
                let after = c.get(3).map_or("", |m| m.as_str());
                if rule.name == "private-key" {
                    format!("{before}\n{HIDDEN}\n{after}")
                } else {
                    format!("{before}{HIDDEN}{after}")
                }
            });
            if hid > 0 {
                *counts.entry(rule.name).or_default() += hid;
                text = std::borrow::Cow::Owned(replaced.into_owned());
            }
        }
        text.into_owned()
    }
}

impl Default for Redactor {
    fn default() -> Self {
        Redactor::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn redact(text: &str) -> (String, Counts) {
        let mut counts = Counts::new();
        let out = Redactor::new().redact(text, &mut counts);
        (out, counts)
    }

    #[test]
    fn every_rule_compiles() {
        assert_eq!(Redactor::new().rules.len(), RULES.len());
    }

    #[test]
    fn each_kind_is_hidden_and_counted_by_its_rule() {
        let cases = [
            (
                "Authorization: Bearer abc.def-123",
                "bearer-token",
                "abc.def-123",
            ),
            (
                r#"{"session":"eyJhbGciOiJI.eyJzdWIiOiIx.c2lnbmF0dXJl"}"#,
                "jwt",
                "eyJhbGciOiJI",
            ),
            (
                "key AKIAABCDEFGHIJKLMNOP used",
                "aws-access-key",
                "AKIAABCDEFGHIJKLMNOP",
            ),
            ("postgres://u:pw1234@db:5432/x", "url-password", "pw1234"),
            ("GET /x?api_key=k123&a=b 200", "key-value", "k123"),
            ("Server=x;Password=p987;Ssl=true", "key-value", "p987"),
            (r#"{"dbPassword": "s3cr3t"}"#, "json-secret", "s3cr3t"),
            (
                "env SENDGRID_API_KEY=SG.abc LOG=info",
                "env-secret",
                "SG.abc",
            ),
            (
                r#"{"name":"POSTGRES_PASSWORD","value":"envpw"}"#,
                "env-secret",
                "envpw",
            ),
            (
                "global:\n  env:\n    POSTGRES_PASSWORD: yamlpw\n    HOST_ENV: AWS_K8\n",
                "yaml-secret",
                "yamlpw",
            ),
            (
                "  apiKey: 'quoted-k1' # set by ops\n",
                "yaml-secret",
                "quoted-k1",
            ),
        ];
        for (text, rule, value) in cases {
            let (out, counts) = redact(text);
            assert!(!out.contains(value), "{rule}: {out}");
            assert!(out.contains(HIDDEN), "{rule}: {out}");
            assert_eq!(counts.get(rule), Some(&1), "{rule}: {counts:?} {out}");
            assert_eq!(counts.values().sum::<usize>(), 1, "{rule}: {counts:?}");
        }
    }

    #[test]
    fn a_pem_block_keeps_its_markers_and_loses_its_body() {
        let text = "a\n-----BEGIN RSA PRIVATE KEY-----\nMIIEsecret\nline2\n-----END RSA PRIVATE KEY-----\nb";
        let (out, counts) = redact(text);
        assert!(
            !out.contains("MIIEsecret") && !out.contains("line2"),
            "{out}"
        );
        assert!(out.contains("-----BEGIN RSA PRIVATE KEY-----\n***HIDDEN***\n-----END"));
        assert_eq!(counts["private-key"], 1);
    }

    #[test]
    fn ordinary_text_and_redacted_text_are_left_alone() {
        let text =
            r#"{"level":"info","msg":"GET /healthz 200","tokenCount":"3"} token=***HIDDEN***"#;
        let (out, counts) = redact(text);
        // "tokenCount" is a JSON key with "token" in it: hidden, counted once.
        assert_eq!(counts.get("json-secret"), Some(&1), "{out}");
        assert!(out.contains("token=***HIDDEN***"));
        let (out, counts) = redact("starting hermes on port 1702");
        assert_eq!(out, "starting hermes on port 1702");
        assert!(counts.is_empty());
    }
}
