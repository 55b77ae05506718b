//! `paragon-admin completions` and `paragon-admin man`.

use std::io::Write;

use crate::cli::{CompletionsArgs, ManArgs};
use crate::docs;
use crate::exit::Error;

pub fn completions(a: &CompletionsArgs) -> Result<u8, Error> {
    match (&a.dir, a.shell) {
        (Some(dir), _) => docs::write_files(dir, &docs::completion_scripts()?)?,
        (None, Some(shell)) => {
            let mut out = std::io::stdout().lock();
            docs::write_completions(shell, &mut out)?;
            out.flush()?;
        }
        (None, None) => return Err(Error::usage("name a shell or pass --dir DIR")),
    }
    Ok(0)
}

pub fn man(a: &ManArgs) -> Result<u8, Error> {
    let pages = docs::man_pages()?;
    match &a.dir {
        Some(dir) => docs::write_files(dir, &pages)?,
        None => {
            let mut out = std::io::stdout().lock();
            if let Some((_, text)) = pages.first() {
                out.write_all(text)?;
            }
            out.flush()?;
        }
    }
    Ok(0)
}
