//! Rendering results: tables for people, JSON for scripts.
//!
//! Colour only when stdout is a terminal and `NO_COLOR` is unset. stdout carries the result
//! and nothing else; progress and warnings go to stderr elsewhere.

use std::io::{IsTerminal, Write};

use comfy_table::presets::UTF8_FULL_CONDENSED;
use comfy_table::{ContentArrangement, Table};
use serde::Serialize;

/// How a command prints its result.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    #[default]
    Table,
    Json,
}

/// Whether stdout may carry colour: a terminal, and `NO_COLOR` unset or empty.
pub fn color_enabled() -> bool {
    std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
}

/// A table with our look: sized to the terminal when there is one, plain ASCII otherwise.
pub fn table<I, S>(header: I) -> Table
where
    I: IntoIterator<Item = S>,
    S: Into<comfy_table::Cell>,
{
    let mut t = Table::new();
    if std::io::stdout().is_terminal() {
        t.load_style(UTF8_FULL_CONDENSED)
            .set_content_arrangement(ContentArrangement::Dynamic);
    } else {
        t.load_style(comfy_table::presets::ASCII_MARKDOWN)
            .set_content_arrangement(ContentArrangement::Disabled);
    }
    if !color_enabled() {
        t.force_no_tty();
    }
    t.set_header(header);
    t
}

/// Prints a table to stdout.
pub fn print_table(t: &Table) -> std::io::Result<()> {
    let mut out = std::io::stdout().lock();
    writeln!(out, "{t}")?;
    out.flush()
}

/// Prints one JSON document (pretty) to stdout.
pub fn print_json<T: Serialize + ?Sized>(value: &T) -> std::io::Result<()> {
    let mut out = std::io::stdout().lock();
    serde_json::to_writer_pretty(&mut out, value)?;
    writeln!(out)?;
    out.flush()
}

/// Prints one JSON object as a single line to stdout (for event streams).
pub fn print_json_line<T: Serialize + ?Sized>(value: &T) -> std::io::Result<()> {
    let mut out = std::io::stdout().lock();
    serde_json::to_writer(&mut out, value)?;
    writeln!(out)?;
    out.flush()
}
