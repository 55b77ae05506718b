//! `paragon-admin secrets set|delete|list`: glue over `crate::secrets`.

use std::io::{IsTerminal, Read};

use serde::Serialize;

use crate::cli::{Globals, SecretsAction};
use crate::exit::Error;
use crate::output::{self, Format};
use crate::secrets::{self, Secret};

#[derive(Serialize)]
struct Row {
    name: String,
}

pub fn run(g: &Globals, action: &SecretsAction) -> Result<u8, Error> {
    match action {
        SecretsAction::Set { name } => {
            secrets::validate_name(name)?;
            let value = read_value(name)?;
            secrets::set(name, &value)?;
            if !g.quiet {
                eprintln!(
                    "stored `{name}` in the keyring (service `{}`)",
                    secrets::SERVICE
                );
            }
        }
        SecretsAction::Delete { name } => {
            secrets::delete(name)?;
            if !g.quiet {
                eprintln!("deleted `{name}`");
            }
        }
        SecretsAction::List => {
            let rows: Vec<Row> = secrets::list()?
                .into_iter()
                .map(|name| Row { name })
                .collect();
            match g.output {
                Format::Json => output::print_json(&rows)?,
                Format::Table => {
                    let mut t = output::table(["NAME"]);
                    for r in &rows {
                        t.add_row([r.name.clone()]);
                    }
                    output::print_table(&t)?;
                }
            }
        }
    }
    Ok(0)
}

/// The value: stdin when it is not a terminal (one trailing newline removed), else a hidden
/// prompt.
fn read_value(name: &str) -> Result<Secret, Error> {
    let stdin = std::io::stdin();
    if stdin.is_terminal() {
        loop {
            let v = crate::prompt::password(
                &format!("Value for {name}"),
                &format!("pipe it: `paragon-admin secrets set {name} < FILE`"),
            )?;
            if !v.is_empty() {
                return Ok(Secret::new(v));
            }
            eprintln!("the value is empty: type it (Ctrl-C to give up)");
        }
    }
    let mut bytes = Vec::new();
    stdin.lock().read_to_end(&mut bytes)?;
    if bytes.ends_with(b"\n") {
        bytes.pop();
        if bytes.ends_with(b"\r") {
            bytes.pop();
        }
    }
    if bytes.is_empty() {
        return Err(Error::usage(format!(
            "the value for `{name}` on stdin is empty: nothing stored"
        )));
    }
    let text = String::from_utf8(bytes)
        .map_err(|_| Error::usage(format!("the value for `{name}` on stdin is not UTF-8 text")))?;
    Ok(Secret::new(text))
}
