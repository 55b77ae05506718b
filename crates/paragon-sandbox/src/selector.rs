//! Label and field selectors as the Kubernetes API server reads them from a query string.
//!
//! Labels: `k=v`, `k==v`, `k!=v`, `k in (a,b)`, `k notin (a,b)`, `k` and `!k`, joined by
//! commas. Fields: `f=v`, `f==v`, `f!=v`, joined by commas, over the fields a kind supports.

/// Why a selector could not be read; becomes a 400 BadRequest `Status`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SelectorError(pub String);

#[derive(Debug, Clone, PartialEq, Eq)]
enum LabelOp {
    Eq(String),
    NotEq(String),
    In(Vec<String>),
    NotIn(Vec<String>),
    Exists,
    NotExists,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Requirement {
    key: String,
    op: LabelOp,
}

/// A parsed `labelSelector`; the empty selector matches everything.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct LabelSelector {
    requirements: Vec<Requirement>,
}

impl LabelSelector {
    pub(crate) fn parse(text: &str) -> Result<Self, SelectorError> {
        let mut requirements = Vec::new();
        for term in split_outside_parens(text) {
            let term = term.trim();
            if term.is_empty() {
                continue;
            }
            requirements.push(parse_requirement(term)?);
        }
        Ok(LabelSelector { requirements })
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.requirements.is_empty()
    }

    pub(crate) fn matches(&self, labels: &[(Box<str>, Box<str>)]) -> bool {
        self.requirements.iter().all(|r| {
            let value = labels
                .iter()
                .find(|(k, _)| **k == *r.key)
                .map(|(_, v)| &**v);
            match (&r.op, value) {
                (LabelOp::Eq(want), Some(v)) => v == want,
                (LabelOp::Eq(_), None) => false,
                (LabelOp::NotEq(want), v) => v != Some(want.as_str()),
                (LabelOp::In(set), Some(v)) => set.iter().any(|s| s == v),
                (LabelOp::In(_), None) => false,
                (LabelOp::NotIn(set), v) => v.is_none_or(|v| !set.iter().any(|s| s == v)),
                (LabelOp::Exists, v) => v.is_some(),
                (LabelOp::NotExists, v) => v.is_none(),
            }
        })
    }
}

fn split_outside_parens(text: &str) -> Vec<&str> {
    let mut parts = Vec::new();
    let (mut depth, mut start) = (0usize, 0usize);
    for (i, c) in text.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth = depth.saturating_sub(1),
            ',' if depth == 0 => {
                parts.push(&text[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(&text[start..]);
    parts
}

fn is_key_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '/')
}

fn check_value(term: &str, v: &str) -> Result<String, SelectorError> {
    if v.chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
    {
        Ok(v.to_string())
    } else {
        Err(SelectorError(format!(
            "unable to parse requirement: invalid label value {v:?} in {term:?}"
        )))
    }
}

fn parse_requirement(term: &str) -> Result<Requirement, SelectorError> {
    let bad = |why: &str| SelectorError(format!("unable to parse requirement {term:?}: {why}"));
    if let Some(key) = term.strip_prefix('!') {
        let key = key.trim();
        if key.is_empty() || !key.chars().all(is_key_char) {
            return Err(bad("invalid label key"));
        }
        return Ok(Requirement {
            key: key.to_string(),
            op: LabelOp::NotExists,
        });
    }
    let end = term.find(|c| !is_key_char(c)).unwrap_or(term.len());
    let key = &term[..end];
    if key.is_empty() {
        return Err(bad("missing label key"));
    }
    let rest = term[end..].trim_start();
    let op = if rest.is_empty() {
        LabelOp::Exists
    } else if let Some(v) = rest.strip_prefix("==") {
        LabelOp::Eq(check_value(term, v.trim())?)
    } else if let Some(v) = rest.strip_prefix("!=") {
        LabelOp::NotEq(check_value(term, v.trim())?)
    } else if let Some(v) = rest.strip_prefix('=') {
        LabelOp::Eq(check_value(term, v.trim())?)
    } else if let Some(set) = rest.strip_prefix("notin") {
        LabelOp::NotIn(parse_set(term, set)?)
    } else if let Some(set) = rest.strip_prefix("in") {
        LabelOp::In(parse_set(term, set)?)
    } else {
        return Err(bad("expected one of =, ==, !=, in, notin"));
    };
    Ok(Requirement {
        key: key.to_string(),
        op,
    })
}

fn parse_set(term: &str, text: &str) -> Result<Vec<String>, SelectorError> {
    let inner = text
        .trim()
        .strip_prefix('(')
        .and_then(|t| t.strip_suffix(')'))
        .ok_or_else(|| {
            SelectorError(format!(
                "unable to parse requirement {term:?}: expected a set of values in parentheses"
            ))
        })?;
    inner
        .split(',')
        .map(|v| check_value(term, v.trim()))
        .collect()
}

/// A parsed `fieldSelector`: each term names a field by its index in the kind's list of
/// selectable fields (`metadata.name` and `metadata.namespace` are handled by the store).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct FieldSelector {
    pub(crate) terms: Vec<FieldTerm>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct FieldTerm {
    pub(crate) field: String,
    pub(crate) value: String,
    pub(crate) equal: bool,
}

impl FieldSelector {
    /// Parses `text`, accepting only `metadata.name`, `metadata.namespace` and `supported`.
    pub(crate) fn parse(text: &str, supported: &[&str]) -> Result<Self, SelectorError> {
        let mut terms = Vec::new();
        for term in text.split(',') {
            let term = term.trim();
            if term.is_empty() {
                continue;
            }
            let (field, value, equal) = if let Some((f, v)) = term.split_once("!=") {
                (f, v, false)
            } else if let Some((f, v)) = term.split_once("==") {
                (f, v, true)
            } else if let Some((f, v)) = term.split_once('=') {
                (f, v, true)
            } else {
                return Err(SelectorError(format!(
                    "invalid selector: {term:?}; expected FIELD=VALUE or FIELD!=VALUE"
                )));
            };
            let field = field.trim();
            if !matches!(field, "metadata.name" | "metadata.namespace")
                && !supported.contains(&field)
            {
                return Err(SelectorError(format!("field label not supported: {field}")));
            }
            terms.push(FieldTerm {
                field: field.to_string(),
                value: value.trim().to_string(),
                equal,
            });
        }
        Ok(FieldSelector { terms })
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.terms.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> Vec<(Box<str>, Box<str>)> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).into(), (*v).into()))
            .collect()
    }

    #[test]
    fn equality_and_inequality_requirements() {
        let l = labels(&[("app.kubernetes.io/name", "hermes"), ("tier", "api")]);
        assert!(
            LabelSelector::parse("app.kubernetes.io/name=hermes")
                .unwrap()
                .matches(&l)
        );
        assert!(
            LabelSelector::parse("app.kubernetes.io/name==hermes,tier=api")
                .unwrap()
                .matches(&l)
        );
        assert!(!LabelSelector::parse("tier!=api").unwrap().matches(&l));
        assert!(LabelSelector::parse("missing!=x").unwrap().matches(&l));
        assert!(!LabelSelector::parse("tier=web").unwrap().matches(&l));
    }

    #[test]
    fn set_and_existence_requirements() {
        let l = labels(&[("status", "failed"), ("owner", "helm")]);
        assert!(
            LabelSelector::parse("status in (deployed, failed),owner")
                .unwrap()
                .matches(&l)
        );
        assert!(
            !LabelSelector::parse("status notin (failed)")
                .unwrap()
                .matches(&l)
        );
        assert!(LabelSelector::parse("!missing").unwrap().matches(&l));
        assert!(!LabelSelector::parse("!owner").unwrap().matches(&l));
        assert!(LabelSelector::parse("").unwrap().is_empty());
    }

    #[test]
    fn malformed_label_selectors_are_rejected() {
        for bad in ["=x", "a in b", "a in (b", "a ~ b", "a=b c"] {
            assert!(LabelSelector::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn field_selector_accepts_only_supported_fields() {
        let f = FieldSelector::parse("status.phase=Pending,metadata.name!=x", &["status.phase"])
            .unwrap();
        assert_eq!(f.terms.len(), 2);
        assert!(f.terms[0].equal && !f.terms[1].equal);
        let e = FieldSelector::parse("spec.bogus=1", &["status.phase"]).unwrap_err();
        assert_eq!(e.0, "field label not supported: spec.bogus");
    }
}
