//! What one source file names: every `crate::`, `super::` and `self::` path, in `use` trees
//! (grouped ones too) and anywhere in the code, resolved to the module it lands in; and which
//! of its child modules are test code. Read from the text: comments, string and character
//! literals name nothing, and test code (an item under `#[cfg(test)]` or
//! `#[cfg(all(test, ..))]`) is left out.

use super::ModPath;

/// What one file names, and which of its child modules are test code.
#[derive(Default)]
pub(super) struct Source {
    /// Line, the module named (absolute), and the path as written.
    pub(super) references: Vec<(usize, ModPath, String)>,
    /// Child modules declared under `#[cfg(test)]` (`mod tests;`), as absolute paths.
    pub(super) test_modules: Vec<ModPath>,
}

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Ident(String),
    /// `::`
    Sep,
    Punct(char),
}

/// Reads the file of module `module`: its references and test-only children.
pub(super) fn read_source(text: &str, module: &ModPath) -> Source {
    let toks = tokens(text);
    let mut source = Source::default();
    // Inline modules (`mod x { .. }`) we are inside, each with the depth its body opened at.
    let mut inline: Vec<(String, usize)> = Vec::new();
    let mut depth = 0;
    let mut i = 0;
    let ident = |i: usize| match toks.get(i) {
        Some((Tok::Ident(s), _)) => Some(s.as_str()),
        _ => None,
    };
    let is = |i: usize, t: Tok| toks.get(i).is_some_and(|(x, _)| *x == t);
    while i < toks.len() {
        let here = || -> ModPath {
            let inner = inline.iter().map(|(m, _)| m.clone());
            module.iter().cloned().chain(inner).collect()
        };
        let line = toks[i].1;
        if is(i, Tok::Punct('#')) {
            let (end, test) = attribute(&toks, i);
            if !test {
                // What an attribute names counts (`#[arg(add = crate::complete::..)]`).
                i += 1;
                continue;
            }
            // Test code: the item the attribute stands on is skipped whole, and a module
            // declared there (`mod tests;`) is marked so that its file is skipped too.
            let mut j = end;
            while is(j, Tok::Punct('#')) {
                j = attribute(&toks, j).0;
            }
            if ident(j) == Some("pub") {
                j += 1;
                if is(j, Tok::Punct('(')) {
                    j = skip_group(&toks, j);
                }
            }
            if ident(j) == Some("mod")
                && let Some(name) = ident(j + 1)
                && is(j + 2, Tok::Punct(';'))
            {
                source
                    .test_modules
                    .push([here(), vec![name.to_string()]].concat());
            }
            i = skip_item(&toks, j);
            continue;
        }
        match &toks[i].0 {
            Tok::Ident(kw) if kw == "mod" && is(i + 2, Tok::Punct('{')) => {
                if let Some(name) = ident(i + 1) {
                    depth += 1;
                    inline.push((name.to_string(), depth));
                }
                i += 3;
                continue;
            }
            Tok::Ident(kw) if kw == "use" => {
                let mut paths = Vec::new();
                i = use_tree(&toks, i + 1, Vec::new(), &mut paths);
                for written in paths {
                    if let Some(target) = resolve(&here(), &written) {
                        source.references.push((line, target, written.join("::")));
                    }
                }
                continue;
            }
            Tok::Ident(first)
                if matches!(first.as_str(), "crate" | "super" | "self") && is(i + 1, Tok::Sep) =>
            {
                let mut written = vec![first.clone()];
                i += 1;
                while is(i, Tok::Sep)
                    && let Some(next) = ident(i + 1)
                {
                    written.push(next.to_string());
                    i += 2;
                }
                if let Some(target) = resolve(&here(), &written) {
                    source.references.push((line, target, written.join("::")));
                }
                continue;
            }
            Tok::Punct('{') => depth += 1,
            Tok::Punct('}') => {
                if inline.last().is_some_and(|(_, d)| *d == depth) {
                    inline.pop();
                }
                depth = depth.saturating_sub(1);
            }
            _ => {}
        }
        i += 1;
    }
    source
}

/// The module a written path lands in, from module `here`: `crate::`, `super::` and `self::`
/// paths only (any other starts at an external crate or a child, never at a sibling).
fn resolve(here: &ModPath, written: &[String]) -> Option<ModPath> {
    let mut at = match written.first()?.as_str() {
        "crate" => Vec::new(),
        "super" | "self" => here.clone(),
        _ => return None,
    };
    let mut rest = &written[1..];
    if written[0] == "super" {
        at.pop()?;
        while rest.first().is_some_and(|s| s == "super") {
            at.pop()?;
            rest = &rest[1..];
        }
    }
    at.extend(rest.iter().cloned());
    Some(at)
}

/// Reads the use tree starting at `i` (after `use` or inside braces) under `prefix`, pushes
/// each full path it names and returns the index after it (after the `;` at the top).
fn use_tree(
    toks: &[(Tok, usize)],
    mut i: usize,
    mut prefix: Vec<String>,
    out: &mut Vec<Vec<String>>,
) -> usize {
    let group = !prefix.is_empty() || matches!(toks.get(i), Some((Tok::Punct('{'), _)));
    while let Some((tok, _)) = toks.get(i) {
        match tok {
            Tok::Ident(s) if s == "as" => i += 2,
            // `{self, ..}` names the prefix itself.
            Tok::Ident(s) if s == "self" && !prefix.is_empty() => i += 1,
            Tok::Ident(s) => {
                prefix.push(s.clone());
                i += 1;
            }
            Tok::Sep => i += 1,
            Tok::Punct('{') => {
                i += 1;
                while !matches!(toks.get(i), None | Some((Tok::Punct('}'), _))) {
                    i = use_tree(toks, i, prefix.clone(), out);
                    if matches!(toks.get(i), Some((Tok::Punct(','), _))) {
                        i += 1;
                    }
                }
                i += 1;
                prefix.clear(); // the group named them all
            }
            Tok::Punct('*') => i += 1,
            Tok::Punct(',' | '}') if group => break,
            Tok::Punct(';') => {
                i += 1;
                break;
            }
            Tok::Punct(_) => i += 1,
        }
    }
    if !prefix.is_empty() {
        out.push(prefix);
    }
    i
}

/// The attribute at `i` (`#[..]` or `#![..]`): the index after it, and whether it makes what
/// follows test code (`cfg(test)`, `cfg(all(test, ..))`).
fn attribute(toks: &[(Tok, usize)], i: usize) -> (usize, bool) {
    let mut j = i + 1;
    if matches!(toks.get(j), Some((Tok::Punct('!'), _))) {
        j += 1;
    }
    if !matches!(toks.get(j), Some((Tok::Punct('['), _))) {
        return (i + 1, false); // a `#` of a macro's syntax
    }
    let end = skip_group(toks, j);
    let words: Vec<String> = toks[j..end]
        .iter()
        .map(|(t, _)| match t {
            Tok::Ident(s) => s.clone(),
            Tok::Sep => "::".to_string(),
            Tok::Punct(c) => c.to_string(),
        })
        .collect();
    let words: Vec<&str> = words.iter().map(String::as_str).collect();
    let test = match words.as_slice() {
        ["[", "cfg", "(", "test", ")", "]"] => true,
        // `test` among the arguments of `all(..)` itself, not inside a `not(..)`.
        ["[", "cfg", "(", "all", "(", args @ .., ")", ")", "]"] => {
            let mut depth = 0;
            args.iter().any(|w| {
                match *w {
                    "(" => depth += 1,
                    ")" => depth -= 1,
                    _ => {}
                }
                depth == 0 && *w == "test"
            })
        }
        _ => false,
    };
    (end, test)
}

/// The index after the bracketed group opening at `i` (`(..)`, `[..]` or `{..}`).
fn skip_group(toks: &[(Tok, usize)], i: usize) -> usize {
    let mut depth = 0usize;
    let mut j = i;
    while let Some((tok, _)) = toks.get(j) {
        match tok {
            Tok::Punct('(' | '[' | '{') => depth += 1,
            Tok::Punct(')' | ']' | '}') => {
                depth = depth.saturating_sub(1);
                if depth == 0 {
                    return j + 1;
                }
            }
            _ => {}
        }
        j += 1;
    }
    j
}

/// The index after the item starting at `i`: its `;`, or its body's closing brace.
fn skip_item(toks: &[(Tok, usize)], mut i: usize) -> usize {
    while let Some((tok, _)) = toks.get(i) {
        match tok {
            Tok::Punct(';') => return i + 1,
            Tok::Punct('{') => return skip_group(toks, i),
            Tok::Punct('(' | '[') => i = skip_group(toks, i),
            _ => i += 1,
        }
    }
    i
}

/// Identifiers, `::` and single punctuation, each with its line; comments, string and
/// character literals and lifetimes dropped.
fn tokens(text: &str) -> Vec<(Tok, usize)> {
    let chars: Vec<char> = text.chars().collect();
    let at = |i: usize| chars.get(i).copied().unwrap_or('\0');
    let mut out = Vec::new();
    let mut line = 1;
    let mut i = 0;
    // Skips from `i` to past the closing `"` (followed by `hashes` `#`), counting lines; a
    // raw string has no escapes.
    let skip_string = |mut i: usize, raw: bool, hashes: usize, line: &mut usize| {
        while i < chars.len() {
            match chars[i] {
                '\\' if !raw => {
                    i += 1; // the escaped character, maybe a line break
                    if at(i) == '\n' {
                        *line += 1;
                    }
                }
                '\n' => *line += 1,
                '"' if (1..=hashes).all(|h| at(i + h) == '#') => return i + 1 + hashes,
                _ => {}
            }
            i += 1;
        }
        i
    };
    while i < chars.len() {
        let c = chars[i];
        if c == '\n' {
            line += 1;
            i += 1;
        } else if c.is_whitespace() {
            i += 1;
        } else if c == '/' && at(i + 1) == '/' {
            while i < chars.len() && chars[i] != '\n' {
                i += 1;
            }
        } else if c == '/' && at(i + 1) == '*' {
            let mut depth = 0;
            while i < chars.len() {
                if chars[i] == '/' && at(i + 1) == '*' {
                    depth += 1;
                    i += 2;
                } else if chars[i] == '*' && at(i + 1) == '/' {
                    depth -= 1;
                    i += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    if chars[i] == '\n' {
                        line += 1;
                    }
                    i += 1;
                }
            }
        } else if c == '"' {
            i = skip_string(i + 1, false, 0, &mut line);
        } else if c == '\'' {
            if at(i + 1) == '\\' {
                i += 3; // the quote, the backslash and the escaped character
                while i < chars.len() && chars[i] != '\'' {
                    i += 1;
                }
                i += 1;
            } else if at(i + 2) == '\'' {
                i += 3; // a character
            } else {
                i += 1; // a lifetime or label: its name follows as an identifier
            }
        } else if c.is_alphabetic() || c == '_' {
            let start = i;
            while at(i).is_alphanumeric() || at(i) == '_' {
                i += 1;
            }
            let word: String = chars[start..i].iter().collect();
            let hashes = (0..).take_while(|h| at(i + h) == '#').count();
            if matches!(word.as_str(), "r" | "br" | "cr") && at(i + hashes) == '"' {
                i = skip_string(i + hashes + 1, true, hashes, &mut line);
            } else if matches!(word.as_str(), "b" | "c") && at(i) == '"' {
                i = skip_string(i + 1, false, 0, &mut line);
            } else if word == "b" && at(i) == '\'' {
                i += 1;
                while i < chars.len() && chars[i] != '\'' {
                    i += if chars[i] == '\\' { 2 } else { 1 };
                }
                i += 1;
            } else if word == "r" && hashes == 1 {
                i += 1; // a raw identifier, `r#type`: the name follows
            } else {
                out.push((Tok::Ident(word), line));
            }
        } else if c.is_ascii_digit() {
            while at(i).is_alphanumeric() || at(i) == '_' {
                i += 1;
            }
        } else if c == ':' && at(i + 1) == ':' {
            out.push((Tok::Sep, line));
            i += 2;
        } else {
            out.push((Tok::Punct(c), line));
            i += 1;
        }
    }
    out
}
