//! The served world: per resource kind, one table of pre-serialized objects sorted by
//! (namespace, name), so that a namespace is a contiguous slice, a get is a binary search and
//! a page is a copy of bytes. Each object is kept once: its metadata JSON and its body JSON
//! (with an empty `metadata` to splice it back into), plus the few strings selectors and
//! table rows need.
//!
//! Rooms: `kinds` (what each kind is), `columns` (its table columns), `render` (writing
//! answers); this file holds the entries and the world, and answers gets and pages.

mod columns;
mod kinds;
mod render;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use k8s_openapi::Metadata;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde::Serialize;

use super::selector::{FieldSelector, LabelSelector};
pub(crate) use kinds::{ALL, Res};
pub(crate) use render::{Cell, Include, Shape, human_duration, write_list, write_one};

/// One served object.
#[derive(Debug, Clone)]
pub(crate) struct Entry {
    /// Empty for cluster-scoped objects.
    pub namespace: Box<str>,
    pub name: Box<str>,
    pub labels: Box<[(Box<str>, Box<str>)]>,
    /// Values of the kind's selectable fields (`Kind::fields`), in order.
    pub fields: Box<[Box<str>]>,
    pub cells: Box<[Cell]>,
    meta: Box<str>,
    body: Box<str>,
    meta_at: usize,
}

const EMPTY_META: &str = "\"metadata\":{}";

#[derive(Debug, thiserror::Error)]
pub(crate) enum EntryError {
    // `cause`, not `source`: the sandbox answers with this error's text alone.
    #[error("cannot serialize {kind} {name}: {cause}")]
    Serialize {
        kind: &'static str,
        name: String,
        cause: serde_json::Error,
    },
    #[error("{kind} {name} has no metadata field after serializing")]
    NoMetadata { kind: &'static str, name: String },
}

impl Entry {
    /// Serializes `obj` once, keeping its metadata apart for metadata-only answers.
    pub(crate) fn new<K>(
        res: Res,
        mut obj: K,
        fields: Vec<String>,
        cells: Vec<Cell>,
    ) -> Result<Entry, EntryError>
    where
        K: Metadata<Ty = ObjectMeta> + Serialize,
    {
        let meta = std::mem::take(obj.metadata_mut());
        let name = meta.name.clone().unwrap_or_default();
        let err = |cause| EntryError::Serialize {
            kind: res.kind().kind,
            name: name.clone(),
            cause,
        };
        let meta_json = serde_json::to_string(&meta).map_err(err)?;
        let body = serde_json::to_string(&obj).map_err(err)?;
        let meta_at = body
            .find(EMPTY_META)
            .ok_or_else(|| EntryError::NoMetadata {
                kind: res.kind().kind,
                name: name.clone(),
            })?
            + EMPTY_META.len()
            - 2;
        debug_assert_eq!(fields.len(), res.kind().fields.len());
        Ok(Entry {
            namespace: meta.namespace.unwrap_or_default().into_boxed_str(),
            labels: meta
                .labels
                .unwrap_or_default()
                .into_iter()
                .map(|(k, v)| (k.into_boxed_str(), v.into_boxed_str()))
                .collect(),
            name: name.into_boxed_str(),
            fields: fields.into_iter().map(String::into_boxed_str).collect(),
            cells: cells.into_boxed_slice(),
            meta: meta_json.into_boxed_str(),
            body: body.into_boxed_str(),
            meta_at,
        })
    }

    /// The whole object as JSON.
    pub(crate) fn write_object(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.body.as_bytes()[..self.meta_at]);
        out.extend_from_slice(self.meta.as_bytes());
        out.extend_from_slice(&self.body.as_bytes()[self.meta_at + 2..]);
    }

    /// The object as `PartialObjectMetadata`.
    pub(crate) fn write_partial(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(
            br#"{"kind":"PartialObjectMetadata","apiVersion":"meta.k8s.io/v1","metadata":"#,
        );
        out.extend_from_slice(self.meta.as_bytes());
        out.push(b'}');
    }

    fn field(&self, res: Res, name: &str) -> &str {
        match name {
            "metadata.name" => &self.name,
            "metadata.namespace" => &self.namespace,
            other => res
                .kind()
                .fields
                .iter()
                .position(|f| *f == other)
                .and_then(|i| self.fields.get(i))
                .map_or("", |v| v),
        }
    }

    fn matches(&self, res: Res, labels: &LabelSelector, fields: &FieldSelector) -> bool {
        labels.matches(&self.labels)
            && fields
                .terms
                .iter()
                .all(|t| (self.field(res, &t.field) == t.value) == t.equal)
    }
}

/// All served objects, never changed after generation.
#[derive(Debug)]
pub(crate) struct World {
    /// The one resourceVersion of every list (objects have smaller ones).
    pub resource_version: u64,
    tables: Vec<Vec<Entry>>,
}

/// A list request's options.
#[derive(Debug, Default)]
pub(crate) struct ListQuery {
    pub limit: Option<usize>,
    pub continue_token: Option<String>,
    pub labels: LabelSelector,
    pub fields: FieldSelector,
}

/// One page of a list.
#[derive(Debug)]
pub(crate) struct Page<'a> {
    pub items: Vec<&'a Entry>,
    pub continue_token: Option<String>,
    pub remaining: Option<usize>,
}

#[derive(Debug, PartialEq, Eq)]
pub(crate) enum ListError {
    BadContinue(String),
    Expired,
}

impl World {
    /// Sorts each table by (namespace, name); `tables` is indexed by `Res`.
    pub(crate) fn new(resource_version: u64, mut tables: Vec<Vec<Entry>>) -> Self {
        tables.resize_with(ALL.len(), Vec::new);
        for t in &mut tables {
            t.sort_unstable_by(|a, b| (&a.namespace, &a.name).cmp(&(&b.namespace, &b.name)));
        }
        World {
            resource_version,
            tables,
        }
    }

    /// The next world (resourceVersion + 1): `namespace/name` of `res` gone (when there is
    /// one) and `new` in, the one way a write changes what the sandbox serves.
    pub(crate) fn replacing(&self, res: Res, namespace: &str, name: &str, new: Entry) -> World {
        let mut new = Some(new);
        let tables: Vec<Vec<Entry>> = ALL
            .iter()
            .map(|&r| {
                let mut t: Vec<Entry> = self
                    .all(r)
                    .iter()
                    .filter(|e| !(r == res && &*e.namespace == namespace && &*e.name == name))
                    .cloned()
                    .collect();
                if r == res {
                    t.extend(new.take());
                }
                t
            })
            .collect();
        World::new(self.resource_version + 1, tables)
    }

    pub(crate) fn all(&self, res: Res) -> &[Entry] {
        self.tables.get(res as usize).map_or(&[], Vec::as_slice)
    }

    /// The objects of one namespace (or all for `None`).
    pub(crate) fn scope(&self, res: Res, namespace: Option<&str>) -> &[Entry] {
        let all = self.all(res);
        match namespace {
            None => all,
            Some(ns) => {
                let start = all.partition_point(|e| &*e.namespace < ns);
                let end = start + all[start..].partition_point(|e| &*e.namespace == ns);
                &all[start..end]
            }
        }
    }

    pub(crate) fn get(&self, res: Res, namespace: &str, name: &str) -> Option<&Entry> {
        let all = self.all(res);
        all.binary_search_by(|e| (&*e.namespace, &*e.name).cmp(&(namespace, name)))
            .ok()
            .map(|i| &all[i])
    }

    pub(crate) fn list(
        &self,
        res: Res,
        namespace: Option<&str>,
        q: &ListQuery,
    ) -> Result<Page<'_>, ListError> {
        let scope = self.scope(res, namespace);
        let start = match &q.continue_token {
            None => 0,
            Some(token) => {
                let (rv, ns, name) = decode_continue(token)?;
                if rv != self.resource_version {
                    return Err(ListError::Expired);
                }
                scope.partition_point(|e| (&*e.namespace, &*e.name) <= (ns.as_str(), name.as_str()))
            }
        };
        let rest = &scope[start..];
        let limit = q.limit.filter(|l| *l > 0).unwrap_or(usize::MAX);
        let filtered = !q.labels.is_empty() || !q.fields.is_empty();
        let mut items = Vec::new();
        let mut last = None;
        let mut more = false;
        for (i, e) in rest.iter().enumerate() {
            if !e.matches(res, &q.labels, &q.fields) {
                continue;
            }
            if items.len() == limit {
                more = true;
                break;
            }
            items.push(e);
            last = Some(i);
        }
        let continue_token = match (more, items.last()) {
            (true, Some(e)) => Some(encode_continue(
                self.resource_version,
                &e.namespace,
                &e.name,
            )),
            _ => None,
        };
        let remaining = match (more, last, filtered) {
            (true, Some(i), false) => Some(rest.len() - i - 1),
            _ => None,
        };
        Ok(Page {
            items,
            continue_token,
            remaining,
        })
    }
}

fn encode_continue(rv: u64, namespace: &str, name: &str) -> String {
    URL_SAFE_NO_PAD.encode(format!("{rv}\0{namespace}\0{name}"))
}

fn decode_continue(token: &str) -> Result<(u64, String, String), ListError> {
    let bad = || ListError::BadContinue(token.to_string());
    let bytes = URL_SAFE_NO_PAD.decode(token).map_err(|_| bad())?;
    let text = String::from_utf8(bytes).map_err(|_| bad())?;
    let mut parts = text.splitn(3, '\0');
    let rv = parts.next().and_then(|r| r.parse().ok()).ok_or_else(bad)?;
    let ns = parts.next().ok_or_else(bad)?.to_string();
    let name = parts.next().ok_or_else(bad)?.to_string();
    Ok((rv, ns, name))
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::ConfigMap;
    use std::collections::BTreeMap;

    fn cm(ns: &str, name: &str, app: &str) -> Entry {
        let obj = ConfigMap {
            metadata: ObjectMeta {
                name: Some(name.into()),
                namespace: Some(ns.into()),
                labels: Some(BTreeMap::from([("app".to_string(), app.to_string())])),
                ..Default::default()
            },
            data: Some(BTreeMap::from([("k".to_string(), "v".to_string())])),
            ..Default::default()
        };
        Entry::new(Res::ConfigMaps, obj, vec![], vec![Cell::text(name)]).unwrap()
    }

    fn world() -> World {
        let mut tables: Vec<Vec<Entry>> = ALL.iter().map(|_| Vec::new()).collect();
        tables[Res::ConfigMaps as usize] = vec![
            cm("b", "z", "x"),
            cm("a", "y", "x"),
            cm("b", "a", "y"),
            cm("a", "b", "x"),
            cm("c", "c", "x"),
        ];
        World::new(42, tables)
    }

    #[test]
    fn object_json_is_spliced_back_whole() {
        let w = world();
        let e = w.get(Res::ConfigMaps, "a", "y").unwrap();
        let mut out = Vec::new();
        e.write_object(&mut out);
        let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(v["kind"], "ConfigMap");
        assert_eq!(v["metadata"]["name"], "y");
        assert_eq!(v["metadata"]["labels"]["app"], "x");
        assert_eq!(v["data"]["k"], "v");
    }

    #[test]
    fn pages_cover_everything_once_in_order() {
        let w = world();
        let mut names = Vec::new();
        let mut q = ListQuery {
            limit: Some(2),
            ..Default::default()
        };
        loop {
            let page = w.list(Res::ConfigMaps, None, &q).unwrap();
            names.extend(
                page.items
                    .iter()
                    .map(|e| format!("{}/{}", e.namespace, e.name)),
            );
            match page.continue_token {
                Some(c) => q.continue_token = Some(c),
                None => break,
            }
        }
        assert_eq!(names, ["a/b", "a/y", "b/a", "b/z", "c/c"]);
    }

    #[test]
    fn remaining_count_only_without_selectors() {
        let w = world();
        let q = ListQuery {
            limit: Some(2),
            ..Default::default()
        };
        let page = w.list(Res::ConfigMaps, None, &q).unwrap();
        assert_eq!(page.remaining, Some(3));
        let q = ListQuery {
            limit: Some(1),
            labels: LabelSelector::parse("app=x").unwrap(),
            ..Default::default()
        };
        let page = w.list(Res::ConfigMaps, None, &q).unwrap();
        assert_eq!(page.remaining, None);
        assert!(page.continue_token.is_some());
    }

    #[test]
    fn last_matching_page_has_no_continue() {
        let w = world();
        let q = ListQuery {
            limit: Some(1),
            labels: LabelSelector::parse("app=y").unwrap(),
            ..Default::default()
        };
        let page = w.list(Res::ConfigMaps, None, &q).unwrap();
        assert_eq!(page.items.len(), 1);
        assert_eq!(page.continue_token, None);
    }

    #[test]
    fn namespace_scope_and_get() {
        let w = world();
        let names: Vec<_> = w
            .scope(Res::ConfigMaps, Some("b"))
            .iter()
            .map(|e| &*e.name)
            .collect();
        assert_eq!(names, ["a", "z"]);
        assert!(w.scope(Res::ConfigMaps, Some("nope")).is_empty());
        assert!(w.get(Res::ConfigMaps, "c", "c").is_some());
        assert!(w.get(Res::ConfigMaps, "c", "d").is_none());
    }

    #[test]
    fn foreign_or_garbled_continue_tokens_are_refused() {
        let w = world();
        let q = ListQuery {
            continue_token: Some("!!!".into()),
            ..Default::default()
        };
        assert!(matches!(
            w.list(Res::ConfigMaps, None, &q),
            Err(ListError::BadContinue(_))
        ));
        let q = ListQuery {
            continue_token: Some(encode_continue(7, "a", "b")),
            ..Default::default()
        };
        assert_eq!(
            w.list(Res::ConfigMaps, None, &q).unwrap_err(),
            ListError::Expired
        );
    }

    #[test]
    fn ages_print_like_kubectl() {
        for (s, want) in [
            (5, "5s"),
            (119, "119s"),
            (150, "2m30s"),
            (600, "10m"),
            (3 * 3600 + 60, "3h1m"),
            (30 * 3600, "30h"),
            (3 * 86400 + 3600 * 4, "3d4h"),
            (40 * 86400, "40d"),
            (800 * 86400, "2y70d"),
        ] {
            assert_eq!(human_duration(s), want, "{s}");
        }
    }
}
