//! Rendering: lists, single objects, metadata-only answers and server-side `Table`s written
//! straight from the pre-serialized entries, and kubectl's cell formats (ages, restarts).
//! Knows nothing of how entries are chosen.

use std::fmt::Write as _;

use super::{Entry, Page, Res, World};

/// One cell of a table row; times stay timestamps so ages are computed when served.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Cell {
    Text(Box<str>),
    Int(i64),
    Bool(bool),
    /// How long ago (a unix time), as kubectl prints ages: `5m`, `3d4h`.
    Age(i64),
    /// An age, or `<unknown>` / `<none>` when absent.
    AgeOr(Option<i64>, &'static str),
    /// `0`, or `7 (3m ago)` with the time of the last restart.
    Restarts(i32, Option<i64>),
}

impl Cell {
    pub(crate) fn text(s: impl Into<String>) -> Cell {
        Cell::Text(s.into().into_boxed_str())
    }

    fn write_json(&self, now: i64, out: &mut Vec<u8>) {
        let s = match self {
            Cell::Int(i) => return out.extend_from_slice(i.to_string().as_bytes()),
            Cell::Bool(b) => return out.extend_from_slice(if *b { b"true" } else { b"false" }),
            Cell::Text(s) => s.to_string(),
            Cell::Age(t) => human_duration(now - t),
            Cell::AgeOr(Some(t), _) => human_duration(now - t),
            Cell::AgeOr(None, none) => (*none).to_string(),
            Cell::Restarts(n, Some(t)) if *n > 0 => {
                format!("{n} ({} ago)", human_duration(now - t))
            }
            Cell::Restarts(n, _) => n.to_string(),
        };
        write_json_string(&s, out);
    }
}

fn write_json_string(s: &str, out: &mut Vec<u8>) {
    // Serializing a &str into a Vec cannot fail.
    let _ = serde_json::to_writer(&mut *out, s);
}

/// kubectl's age format (apimachinery `duration.HumanDuration`).
pub(crate) fn human_duration(seconds: i64) -> String {
    if seconds < -1 {
        return "<invalid>".into();
    }
    if seconds < 0 {
        return "0s".into();
    }
    if seconds < 120 {
        return format!("{seconds}s");
    }
    let minutes = seconds / 60;
    if minutes < 10 {
        let s = seconds % 60;
        return if s == 0 {
            format!("{minutes}m")
        } else {
            format!("{minutes}m{s}s")
        };
    }
    if minutes < 180 {
        return format!("{minutes}m");
    }
    let hours = seconds / 3600;
    if hours < 8 {
        let m = minutes % 60;
        return if m == 0 {
            format!("{hours}h")
        } else {
            format!("{hours}h{m}m")
        };
    }
    if hours < 48 {
        return format!("{hours}h");
    }
    if hours < 24 * 8 {
        let h = hours % 24;
        return if h == 0 {
            format!("{}d", hours / 24)
        } else {
            format!("{}d{h}h", hours / 24)
        };
    }
    if hours < 24 * 365 * 2 {
        return format!("{}d", hours / 24);
    }
    if hours < 24 * 365 * 8 {
        let dy = (hours / 24) % 365;
        return if dy == 0 {
            format!("{}y", hours / 24 / 365)
        } else {
            format!("{}y{dy}d", hours / 24 / 365)
        };
    }
    format!("{}y", hours / 24 / 365)
}

/// What a list or get answers with, chosen from the `Accept` header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Shape {
    Full,
    Table { beta: bool, include: Include },
    Metadata,
}

/// A table row's `object`: as `includeObject` asks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Include {
    None,
    Metadata,
    Object,
}

/// Writes a list (or a table) of `page`.
pub(crate) fn write_list(
    world: &World,
    res: Res,
    page: &Page<'_>,
    shape: Shape,
    now: i64,
) -> Vec<u8> {
    let kind = res.kind();
    let per_item = match shape {
        Shape::Full => 2048,
        _ => 512,
    };
    let mut out = Vec::with_capacity(256 + page.items.len() * per_item);
    let mut meta = format!("{{\"resourceVersion\":\"{}\"", world.resource_version);
    if let Some(c) = &page.continue_token {
        let _ = write!(meta, ",\"continue\":\"{c}\"");
    }
    if let Some(n) = page.remaining {
        let _ = write!(meta, ",\"remainingItemCount\":{n}");
    }
    meta.push('}');
    match shape {
        Shape::Full | Shape::Metadata => {
            let (list_kind, api_version) = if shape == Shape::Full {
                (format!("{}List", kind.kind), kind.api_version())
            } else {
                (
                    "PartialObjectMetadataList".to_string(),
                    "meta.k8s.io/v1".to_string(),
                )
            };
            let _ = write!(
                PushStr(&mut out),
                "{{\"kind\":\"{list_kind}\",\"apiVersion\":\"{api_version}\",\"metadata\":{meta},\"items\":["
            );
            for (i, e) in page.items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                if shape == Shape::Full {
                    e.write_object(&mut out);
                } else {
                    e.write_partial(&mut out);
                }
            }
            out.extend_from_slice(b"]}");
        }
        Shape::Table { beta, include } => {
            write_table_head(&mut out, res, beta, &meta);
            for (i, e) in page.items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_row(&mut out, e, include, now);
            }
            out.extend_from_slice(b"]}");
        }
    }
    out
}

/// Writes one object (or its one-row table).
pub(crate) fn write_one(world: &World, res: Res, e: &Entry, shape: Shape, now: i64) -> Vec<u8> {
    let mut out = Vec::with_capacity(4096);
    match shape {
        Shape::Full => e.write_object(&mut out),
        Shape::Metadata => e.write_partial(&mut out),
        Shape::Table { beta, include } => {
            let meta = format!("{{\"resourceVersion\":\"{}\"}}", world.resource_version);
            write_table_head(&mut out, res, beta, &meta);
            write_row(&mut out, e, include, now);
            out.extend_from_slice(b"]}");
        }
    }
    out
}

fn write_table_head(out: &mut Vec<u8>, res: Res, beta: bool, meta: &str) {
    let version = if beta { "v1beta1" } else { "v1" };
    let _ = write!(
        PushStr(out),
        "{{\"kind\":\"Table\",\"apiVersion\":\"meta.k8s.io/{version}\",\"metadata\":{meta},\"columnDefinitions\":["
    );
    for (i, c) in res.kind().columns.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        let format = if c.name == "Name" { "name" } else { "" };
        let _ = write!(
            PushStr(out),
            "{{\"name\":\"{}\",\"type\":\"{}\",\"format\":\"{format}\",\"description\":",
            c.name,
            c.ty
        );
        write_json_string(c.description, out);
        let _ = write!(PushStr(out), ",\"priority\":{}}}", c.priority);
    }
    out.extend_from_slice(b"],\"rows\":[");
}

fn write_row(out: &mut Vec<u8>, e: &Entry, include: Include, now: i64) {
    out.extend_from_slice(b"{\"cells\":[");
    for (i, c) in e.cells.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        c.write_json(now, out);
    }
    out.push(b']');
    match include {
        Include::None => {}
        Include::Metadata => {
            out.extend_from_slice(b",\"object\":");
            e.write_partial(out);
        }
        Include::Object => {
            out.extend_from_slice(b",\"object\":");
            e.write_object(out);
        }
    }
    out.push(b'}');
}

/// `write!` into a byte buffer.
struct PushStr<'a>(&'a mut Vec<u8>);

impl std::fmt::Write for PushStr<'_> {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        self.0.extend_from_slice(s.as_bytes());
        Ok(())
    }
}
