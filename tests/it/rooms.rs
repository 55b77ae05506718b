//! The rooms of the code, kept by a test rather than by a comment (DESIGN.md: arrows point
//! down and never back): no two sibling modules of `src/`, or of a workspace crate's
//! `crates/*/src/`, may name each other, directly or round a longer loop.
//!
//! A module is a file `x.rs` or a folder `x/` (with `mod.rs`, or beside `x.rs`); siblings are
//! modules with the same parent. `source` reads what each file names (`crate::`, `super::`,
//! `self::` paths). Where a path leaves the naming file's own ancestors, the ancestor's child
//! it leaves from names the sibling it enters: `agent/server.rs` naming
//! `crate::ssh::session::Input` is the arrow `agent -> ssh` in `src`.
//!
//! Test code is left out (an item under `#[cfg(test)]`, inline or in its own file): a test
//! may use whatever it checks, as exit.rs's tests build the errors of every room to pin their
//! statuses.
//!
//! Each cycle is reported once, by name, with where each of its arrows is written; a cycle is
//! the shortest one through an arrow, so every arrow that closes a loop is shown.

mod source;

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::path::{Path, PathBuf};

use source::{Source, read_source};

/// A module's path below its crate root: `["agent", "server"]`; the root is empty.
type ModPath = Vec<String>;

/// One loop among the children of one module.
#[derive(Debug)]
struct Cycle {
    /// `src/agent: forwards -> server -> forwards`.
    name: String,
    /// Per arrow, where it is written: `src/agent/server.rs:32 super::forwards::Registry`.
    arrows: Vec<String>,
}

/// Where a sibling is first named from another: file, line and the path as written.
type Evidence = (PathBuf, usize, String);

/// Every cycle between sibling modules under `src` (a crate's source folder); `label` is how
/// reports name that folder.
fn cycles_in(src: &Path, label: &str) -> Vec<Cycle> {
    let mut files = Vec::new();
    rust_files(src, &mut files);
    files.sort();
    let sources: Vec<(ModPath, PathBuf, Source)> = files
        .into_iter()
        .map(|path| {
            let text = std::fs::read_to_string(&path)
                .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
            let module = module_path(src, &path);
            let source = read_source(&text, &module);
            let relative = path.strip_prefix(src).unwrap_or(&path).to_path_buf();
            (module, relative, source)
        })
        .collect();
    let test_only: Vec<ModPath> = sources
        .iter()
        .flat_map(|(_, _, s)| s.test_modules.iter().cloned())
        .collect();
    let is_test = |m: &ModPath| test_only.iter().any(|t| m.starts_with(t));
    // A folder is a module too, even without its `mod.rs`.
    let modules: BTreeSet<ModPath> = sources
        .iter()
        .filter(|(m, _, _)| !is_test(m))
        .flat_map(|(m, _, _)| (1..=m.len()).map(|n| m[..n].to_vec()))
        .collect();

    // Per parent module, the arrows between its children.
    let mut graphs: BTreeMap<ModPath, BTreeMap<(String, String), Evidence>> = BTreeMap::new();
    for (from, file, source) in &sources {
        if is_test(from) {
            continue;
        }
        for (line, target, written) in &source.references {
            let common = from.iter().zip(target).take_while(|(a, b)| a == b).count();
            if common >= from.len() || common >= target.len() {
                continue; // itself, a descendant, or an ancestor: not a sibling
            }
            if !modules.contains(&target[..=common]) {
                continue; // an item of the common parent (`super::Bastion`)
            }
            let arrow = (from[common].clone(), target[common].clone());
            graphs
                .entry(from[..common].to_vec())
                .or_default()
                .entry(arrow)
                .or_insert_with(|| (file.clone(), *line, written.clone()));
        }
    }

    let mut found = Vec::new();
    for (parent, arrows) in &graphs {
        let mut here = Vec::new();
        let folder = std::iter::once(label.to_string())
            .chain(parent.iter().cloned())
            .collect::<Vec<_>>()
            .join("/");
        let mut seen = BTreeSet::new();
        for (from, to) in arrows.keys() {
            let Some(back) = shortest_path(arrows, to, from) else {
                continue;
            };
            // `from -> to -> ... -> from`, turned to start at its least name so that each
            // loop is named one way.
            let mut ring: Vec<String> = [from, to]
                .into_iter()
                .chain(&back[..back.len() - 1])
                .cloned()
                .collect();
            let start = (0..ring.len()).min_by_key(|&i| &ring[i]).unwrap_or(0);
            ring.rotate_left(start);
            if !seen.insert(ring.clone()) {
                continue;
            }
            let mut names: Vec<&str> = ring.iter().map(String::as_str).collect();
            names.push(&ring[0]);
            let evidence = names
                .windows(2)
                .map(|w| {
                    let (file, line, written) = &arrows[&(w[0].to_string(), w[1].to_string())];
                    let file = Path::new(label).join(file);
                    format!("{} -> {}: {}:{line} {written}", w[0], w[1], file.display())
                })
                .collect();
            here.push(Cycle {
                name: format!("{folder}: {}", names.join(" -> ")),
                arrows: evidence,
            });
        }
        here.sort_by(|a, b| a.name.cmp(&b.name));
        found.extend(here);
    }
    found
}

/// The shortest walk `from -> ... -> to` along the arrows, `from` itself left out.
fn shortest_path(
    arrows: &BTreeMap<(String, String), Evidence>,
    from: &str,
    to: &str,
) -> Option<Vec<String>> {
    let mut came_from: BTreeMap<&str, &str> = BTreeMap::new();
    let mut queue = VecDeque::from([from]);
    while let Some(at) = queue.pop_front() {
        if at == to {
            let mut path = vec![to.to_string()];
            let mut step = to;
            while let Some(&before) = came_from.get(step) {
                if before == from {
                    break;
                }
                path.push(before.to_string());
                step = before;
            }
            path.reverse();
            return Some(path);
        }
        for (a, b) in arrows.keys() {
            if a == at && b != from && !came_from.contains_key(b.as_str()) {
                came_from.insert(b, at);
                queue.push_back(b);
            }
        }
    }
    None
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let entries =
        std::fs::read_dir(dir).unwrap_or_else(|e| panic!("cannot list {}: {e}", dir.display()));
    for entry in entries {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// `src/agent/server.rs` is `agent::server`, `src/agent/mod.rs` is `agent`; `lib.rs` and
/// `main.rs` are the root.
fn module_path(src: &Path, file: &Path) -> ModPath {
    let relative = file.strip_prefix(src).unwrap_or(file).with_extension("");
    let mut path: ModPath = relative
        .iter()
        .map(|c| c.to_string_lossy().into_owned())
        .collect();
    if path.last().is_some_and(|l| l == "mod") || path == ["lib"] || path == ["main"] {
        path.pop();
    }
    path
}

/// Every cycle in the crate source folders of this repository, named, with its arrows.
fn cycles_of_this_repository() -> Vec<String> {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut folders = vec![PathBuf::from("src")];
    if let Ok(crates) = std::fs::read_dir(repo.join("crates")) {
        let mut found: Vec<PathBuf> = crates
            .map(|e| e.unwrap().path().join("src"))
            .filter(|src| src.is_dir())
            .map(|src| src.strip_prefix(repo).unwrap().to_path_buf())
            .collect();
        found.sort();
        folders.extend(found);
    }
    folders
        .iter()
        .flat_map(|f| cycles_in(&repo.join(f), &f.display().to_string()))
        .map(|c| format!("{}\n    {}", c.name, c.arrows.join("\n    ")))
        .collect()
}

#[test]
fn no_two_sibling_modules_name_each_other() {
    let cycles = cycles_of_this_repository();
    assert!(
        cycles.is_empty(),
        "{} cycles between sibling modules (move what both need to the module that owns it):\n{}",
        cycles.len(),
        cycles.join("\n")
    );
}

/// Writes `files` (path, text) under a new temporary folder.
fn tree(files: &[(&str, &str)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for (path, text) in files {
        let path = dir.path().join(path);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }
    dir
}

fn names(dir: &tempfile::TempDir) -> Vec<String> {
    cycles_in(dir.path(), "src")
        .into_iter()
        .map(|c| c.name)
        .collect()
}

/// A tree whose arrows all point one way, with every kind of path the checker reads, and
/// text that looks like a path but names nothing.
const ONE_WAY: &[(&str, &str)] = &[
    (
        "lib.rs",
        "pub mod exit;\npub mod files;\npub mod agent;\npub mod ssh;\n",
    ),
    (
        "exit.rs",
        "//! Names [`crate::files`] in a comment only.\n\
         pub trait ExitStatus {}\n\
         pub(crate) fn said() -> &'static str { \"crate::files::write\" }\n\
         /* crate::files::write, /* nested */ crate::agent */\n\
         #[cfg(test)]\nmod tests { use crate::files::write; }\n",
    ),
    (
        "files.rs",
        "use crate::exit::ExitStatus;\nimpl ExitStatus for std::io::Error {}\n\
         #[cfg(all(test, unix))]\nfn helper() { crate::agent::run(); }\n",
    ),
    (
        "agent/mod.rs",
        "mod server;\nmod forwards;\nmod uses;\npub fn run() {}\n",
    ),
    (
        "agent/server.rs",
        "use super::{forwards::Registry, uses::{self, Uses}};\n\
         use crate::{exit, ssh::session::Input};\n\
         fn f() { let _ = super::run(); let r#type = 'x'; }\n",
    ),
    (
        "agent/forwards.rs",
        "pub struct Registry(super::uses::Uses);\n",
    ),
    ("agent/uses.rs", "pub struct Uses;\n"),
    (
        "ssh/mod.rs",
        "pub mod session;\npub mod pty;\n#[cfg(test)]\nmod tests;\n",
    ),
    (
        "ssh/session.rs",
        "use super::pty::Pty;\npub enum Input {}\n",
    ),
    (
        "ssh/pty.rs",
        "pub struct Pty;\nfn size() -> self::Pty { Pty }\n",
    ),
    // Test code in its own file may name anything.
    (
        "ssh/tests.rs",
        "use crate::agent::run;\nuse super::session::Input;\n",
    ),
];

#[test]
fn a_tree_whose_arrows_point_one_way_has_no_cycle() {
    let dir = tree(ONE_WAY);
    assert_eq!(names(&dir), Vec::<String>::new());
}

#[test]
fn each_cycle_introduced_is_found_and_named() {
    // exit -> files, in a grouped `use` beside an item of the root (which is no module).
    let dir = tree(ONE_WAY);
    let add = |path: &str, text: &str| {
        let path = dir.path().join(path);
        let old = std::fs::read_to_string(&path).unwrap();
        std::fs::write(path, old + text).unwrap();
    };
    add("exit.rs", "use crate::{Version, files::{self, write}};\n");
    assert_eq!(names(&dir), ["src: exit -> files -> exit"]);

    // A path written in code, not in a `use`, one folder down.
    add("agent/uses.rs", "fn hold() { super::server::f(); }\n");
    // Round three rooms: exit -> ssh -> files -> exit.
    add("ssh/pty.rs", "fn write() { crate::files::write() }\n");
    add("exit.rs", "fn input(_: crate::ssh::session::Input) {}\n");
    let found = names(&dir);
    assert_eq!(
        found,
        [
            "src: exit -> files -> exit",
            "src: exit -> ssh -> files -> exit",
            // forwards -> uses was there already: the new arrow closes two loops.
            "src/agent: forwards -> uses -> server -> forwards",
            "src/agent: server -> uses -> server",
        ],
        "{found:?}"
    );
    let cycles = cycles_in(dir.path(), "src");
    let evidence = cycles[3].arrows.join("\n");
    assert_eq!(
        evidence,
        "server -> uses: src/agent/server.rs:1 super::uses\n\
         uses -> server: src/agent/uses.rs:2 super::server::f"
    );
}
