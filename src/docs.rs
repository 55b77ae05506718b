//! Shell completion scripts and man pages, generated from the clap definitions in `cli` so
//! that they can never drift from `--help`. The candidates the scripts ask for at each <Tab>
//! are `complete`'s. It knows nothing of SSH or of the config file.

use std::io::{self, Write};
use std::path::Path;

use clap_complete::env::{Bash, Elvish, EnvCompleter, Fish, Powershell, Zsh};

use crate::cli::Shell;
use crate::complete::{BIN, COMPLETE_VAR};

/// The writer of each shell's registration script.
fn completer(shell: Shell) -> &'static dyn EnvCompleter {
    match shell {
        Shell::Bash => &Bash,
        Shell::Zsh => &Zsh,
        Shell::Fish => &Fish,
        Shell::Powershell => &Powershell,
        Shell::Elvish => &Elvish,
    }
}

/// Writes the completion script for `shell`. The script asks the installed binary for
/// candidates at each <Tab>, so profile and service names come from the user's own config.
pub fn write_completions(shell: Shell, out: &mut dyn Write) -> io::Result<()> {
    completer(shell).write_registration(COMPLETE_VAR, BIN, BIN, BIN, out)?;
    if let Shell::Zsh = shell {
        // compinit autoloads `_paragon-admin` from fpath at the first <Tab> and runs it: the
        // registration alone would only take effect from the second <Tab>.
        let function = format!("_clap_dynamic_completer_{}", BIN.replace('-', "_"));
        writeln!(
            out,
            "\n# Autoloaded from fpath at the first <Tab>: complete that <Tab> too.\n\
             if [[ \"${{funcstack[1]}}\" = \"_{BIN}\" ]]; then\n    {function} \"$@\"\nfi"
        )?;
    }
    Ok(())
}

/// What every page says about exit statuses (DESIGN.md).
const EXIT_STATUS: &[(&str, &str)] = &[
    (
        "0",
        "Success; for health: nothing failed (warnings allowed).",
    ),
    (
        "1",
        "For health: at least one check failed; other commands: an operation failed after connecting.",
    ),
    ("2", "Usage or configuration error."),
    ("130", "Interrupted."),
    (
        "255",
        "Could not connect to, authenticate with or verify the bastion (as OpenSSH).",
    ),
    (
        "other",
        "ssh -- CMD, kubectl and helm return the remote command's own exit status.",
    ),
];

/// A file or an environment variable a page lists, and the global option it goes with: a
/// page whose command ignores (hides) that option does not list it.
struct Entry {
    name: &'static str,
    option: Option<&'static str>,
    meaning: &'static str,
}

const FILES: &[Entry] = &[
    Entry {
        name: "~/.config/paragon-admin/config.toml",
        option: Some("config"),
        meaning: "The config file with the profiles (the platform's config folder elsewhere).",
    },
    Entry {
        name: "~/.ssh/known_hosts",
        option: Some("profile"),
        meaning: "The host keys of bastions, in OpenSSH's format (per profile: known_hosts).",
    },
];

const ENVIRONMENT: &[Entry] = &[
    Entry {
        name: "PARAGON_ADMIN_CONFIG",
        option: Some("config"),
        meaning: "The config file, unless --config is given.",
    },
    Entry {
        name: "PARAGON_ADMIN_PROFILE",
        option: Some("profile"),
        meaning: "The profile, unless --profile is given.",
    },
    Entry {
        name: "PARAGON_ADMIN_LOG",
        option: None,
        meaning: "A tracing filter (as RUST_LOG) that overrides -v and -q.",
    },
    Entry {
        name: "SSH_AUTH_SOCK",
        option: Some("profile"),
        meaning: "The ssh-agent to authenticate with.",
    },
    Entry {
        name: "NO_COLOR",
        option: Some("output"),
        meaning: "When set and not empty, no colour in tables.",
    },
];

/// The entries of `table` that concern `cmd`: those of no option, or of one it shows.
fn entries_of<'a>(cmd: &'a clap::Command, table: &'a [Entry]) -> impl Iterator<Item = &'a Entry> {
    table.iter().filter(|e| {
        e.option.is_none_or(|id| {
            cmd.get_arguments()
                .any(|a| a.get_id() == id && !a.is_hide_set())
        })
    })
}

/// Writes the man page of `cmd`, a (sub)command of `paragon-admin` named `page` (for example
/// `paragon-admin-ssh`), with examples, exit statuses, files and environment.
fn write_man_page(cmd: clap::Command, page: &str, out: &mut dyn Write) -> io::Result<()> {
    let examples = cmd
        .get_after_help()
        .map(|h| h.to_string())
        .unwrap_or_default();
    // The committed pages must not change with every commit: no git revision in them.
    let mut cmd = cmd
        .name(page.to_string())
        .after_help(None::<&str>)
        .long_version(None::<&str>);
    // clap's `help` subcommand has no page of its own: do not point at one.
    if cmd.find_subcommand("help").is_some() {
        cmd = cmd.mut_subcommand("help", |h| h.hide(true));
    }
    let man = clap_mangen::Man::new(cmd.clone())
        .date("")
        .source(format!("paragon-admin {}", env!("CARGO_PKG_VERSION")))
        .manual("paragon-admin manual");
    man.render_title(out)?;
    man.render_name_section(out)?;
    writeln!(out, ".SH SYNOPSIS\n{}", synopsis(&cmd))?;
    man.render_description_section(out)?;
    if cmd.get_arguments().any(|a| !a.is_hide_set()) {
        man.render_options_section(out)?;
    }
    if cmd.get_subcommands().any(|s| !s.is_hide_set()) {
        man.render_subcommands_section(out)?;
    }
    let examples = example_blocks(&examples);
    if !examples.is_empty() {
        writeln!(out, ".SH EXAMPLES")?;
        for block in examples {
            let lines: Vec<String> = block.iter().map(|l| roff_escape(l)).collect();
            writeln!(out, ".PP\n.nf\n{}\n.fi", lines.join("\n"))?;
        }
    }
    writeln!(out, ".SH \"EXIT STATUS\"")?;
    for (status, meaning) in EXIT_STATUS {
        writeln!(out, ".TP\n\\fB{status}\\fR\n{}", roff_escape(meaning))?;
    }
    let files: Vec<&Entry> = entries_of(&cmd, FILES).collect();
    if !files.is_empty() {
        writeln!(out, ".SH FILES")?;
    }
    for file in files {
        writeln!(
            out,
            ".TP\n\\fI{}\\fR\n{}",
            roff_escape(file.name),
            roff_escape(file.meaning)
        )?;
    }
    writeln!(out, ".SH ENVIRONMENT")?;
    for var in entries_of(&cmd, ENVIRONMENT) {
        writeln!(
            out,
            ".TP\n\\fB{}\\fR\n{}",
            var.name,
            roff_escape(var.meaning)
        )?;
    }
    man.render_version_section(out)
}

/// The examples of an `after_help`, one block per command: a line ending in `\` continues
/// on the next, which keeps its indentation.
fn example_blocks(after_help: &str) -> Vec<Vec<String>> {
    let mut blocks: Vec<Vec<String>> = Vec::new();
    let mut continued = false;
    for line in after_help.lines() {
        let trimmed = line.trim();
        if trimmed.is_empty() || trimmed == "Examples:" {
            continued = false;
            continue;
        }
        match blocks.last_mut() {
            Some(block) if continued => block.push(line.trim_end().to_string()),
            _ => blocks.push(vec![trimmed.to_string()]),
        }
        continued = trimmed.ends_with('\\');
    }
    blocks
}

/// The SYNOPSIS line: the command, then each option with its value name (clap_mangen's own
/// shows `[--config]` without saying that it takes a FILE), then the positionals.
fn synopsis(cmd: &clap::Command) -> String {
    // The page `paragon-admin-secrets-set` is typed `paragon-admin secrets set`.
    let page = cmd.get_name();
    let typed = match page.strip_prefix(BIN) {
        Some(rest) => format!("{BIN}{}", rest.replace('-', " ")),
        None => page.to_string(),
    };
    let mut line = format!("\\fB{}\\fR", roff_escape(&typed));
    let visible = || cmd.get_arguments().filter(|a| !a.is_hide_set());
    for arg in visible().filter(|a| !a.is_positional()) {
        let names: Vec<String> = arg
            .get_short()
            .map(|s| format!("-{s}"))
            .into_iter()
            .chain(arg.get_long().map(|l| format!("--{l}")))
            .map(|n| format!("\\fB{}\\fR", roff_escape(&n)))
            .collect();
        let value = match (arg.get_action().takes_values(), arg.get_value_names()) {
            (true, Some(v)) => format!(" \\fI{}\\fR", roff_escape(&v.join(" "))),
            (true, None) => format!(
                " \\fI{}\\fR",
                roff_escape(&arg.get_id().as_str().to_uppercase())
            ),
            (false, _) => String::new(),
        };
        line.push_str(&format!(" [{}{value}]", names.join("|")));
    }
    for arg in visible().filter(|a| a.is_positional()) {
        let name = arg
            .get_value_names()
            .map(|v| v.join(" "))
            .unwrap_or_else(|| arg.get_id().as_str().to_uppercase());
        let many = if arg.get_num_args().is_some_and(|n| n.max_values() > 1) {
            "..."
        } else {
            ""
        };
        let word = format!("\\fI{}\\fR{many}", roff_escape(&name));
        line.push(' ');
        line.push_str(&if arg.is_required_set() {
            word
        } else {
            format!("[{word}]")
        });
    }
    if cmd.get_subcommands().any(|s| !s.is_hide_set()) {
        line.push_str(" \\fICOMMAND\\fR");
    }
    line
}

/// Escapes text for a roff line: backslashes, and a leading `.` or `'` that would be a request.
fn roff_escape(s: &str) -> String {
    let s = s.replace('\\', "\\e").replace('-', "\\-");
    if s.starts_with('.') || s.starts_with('\'') {
        format!("\\&{s}")
    } else {
        s
    }
}

/// Every man page: (file name, text). One for the tool and one per subcommand, nested ones
/// included (`paragon-admin-secrets-set.1`).
pub fn man_pages() -> io::Result<Vec<(String, Vec<u8>)>> {
    let mut root = crate::cli::command();
    root.build();
    let mut pages = Vec::new();
    collect_pages(&root, "paragon-admin", &mut pages)?;
    Ok(pages)
}

fn collect_pages(
    cmd: &clap::Command,
    page: &str,
    pages: &mut Vec<(String, Vec<u8>)>,
) -> io::Result<()> {
    let mut text = Vec::new();
    write_man_page(cmd.clone(), page, &mut text)?;
    pages.push((format!("{page}.1"), text));
    for sub in cmd.get_subcommands() {
        if sub.is_hide_set() || sub.get_name() == "help" {
            continue;
        }
        collect_pages(sub, &format!("{page}-{}", sub.get_name()), pages)?;
    }
    Ok(())
}

/// Every completion script: (file name, text).
pub fn completion_scripts() -> io::Result<Vec<(String, Vec<u8>)>> {
    Shell::ALL
        .iter()
        .map(|&shell| {
            let mut text = Vec::new();
            write_completions(shell, &mut text)?;
            Ok((shell.file_name().to_string(), text))
        })
        .collect()
}

/// Writes `files` into `dir` (created when missing), each through a temporary file and a
/// rename so that no file is ever half-written.
pub fn write_files(
    dir: &Path,
    files: &[(String, Vec<u8>)],
) -> Result<(), crate::files::WriteError> {
    std::fs::create_dir_all(dir)?;
    for (name, text) in files {
        crate::files::write_atomic(&dir.join(name), text, crate::files::Access::Public)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The text of the generated man page `name`.
    fn page(name: &str) -> String {
        let pages = man_pages().unwrap();
        let (_, text) = pages.iter().find(|(n, _)| n == name).unwrap();
        String::from_utf8_lossy(text).into_owned()
    }

    #[test]
    fn every_subcommand_gets_a_page_with_the_fixed_sections() {
        let pages = man_pages().unwrap();
        let names: Vec<&str> = pages.iter().map(|(n, _)| n.as_str()).collect();
        assert!(names.contains(&"paragon-admin.1"));
        assert!(names.contains(&"paragon-admin-ssh.1"));
        assert!(names.contains(&"paragon-admin-secrets-set.1"));
        for (name, text) in &pages {
            let text = String::from_utf8_lossy(text);
            for section in [".SH \"EXIT STATUS\"", ".SH ENVIRONMENT"] {
                assert!(text.contains(section), "{name} lacks {section}");
            }
        }
        let ssh = page("paragon-admin-ssh.1");
        assert!(ssh.contains(".SH EXAMPLES"));
        assert!(ssh.contains(".SH FILES") && ssh.contains("PARAGON_ADMIN_PROFILE"));
    }

    #[test]
    fn a_page_lists_no_file_or_variable_of_an_option_its_command_ignores() {
        let man = page("paragon-admin-man.1");
        assert!(!man.contains(".SH FILES"), "{man}");
        assert!(!man.contains("PARAGON_ADMIN_CONFIG"), "{man}");
        assert!(man.contains("PARAGON_ADMIN_LOG"), "{man}");
        let profiles = page("paragon-admin-profiles.1");
        assert!(profiles.contains("PARAGON_ADMIN_CONFIG"), "{profiles}");
        assert!(!profiles.contains("PARAGON_ADMIN_PROFILE"), "{profiles}");
    }

    #[test]
    fn an_example_continued_with_a_backslash_stays_one_block() {
        let blocks = example_blocks("Examples:\n  a \\\n      --b\n  c\n");
        assert_eq!(
            blocks,
            [
                vec!["a \\".to_string(), "      --b".into()],
                vec!["c".into()]
            ]
        );
        let init = page("paragon-admin-init.1");
        assert!(init.contains("\\e\n      \\-\\-identity\\-file"), "{init}");
    }

    #[test]
    fn synopsis_shows_value_names() {
        let init = page("paragon-admin-init.1");
        let line = init
            .lines()
            .skip_while(|l| *l != ".SH SYNOPSIS")
            .nth(1)
            .unwrap();
        assert!(line.starts_with("\\fBparagon\\-admin init\\fR"), "{line}");
        assert!(
            line.contains("[\\fB\\-\\-config\\fR \\fIFILE\\fR]"),
            "{line}"
        );
        assert!(line.contains("[\\fB\\-\\-host\\fR \\fIHOST\\fR]"), "{line}");
        assert!(line.contains("[\\fB\\-\\-force\\fR]"), "{line}");
        let ssh = page("paragon-admin-ssh.1");
        assert!(ssh.contains("[\\fICMD\\fR...]"), "{ssh}");
    }

    #[test]
    fn no_page_points_at_a_help_page_that_does_not_exist() {
        for (name, text) in man_pages().unwrap() {
            assert!(
                !String::from_utf8_lossy(&text).contains("help(1)"),
                "{name}"
            );
        }
    }

    #[test]
    fn roff_requests_are_escaped() {
        assert_eq!(roff_escape(".x"), "\\&.x");
        assert_eq!(roff_escape("a\\b"), "a\\eb");
    }

    #[test]
    fn every_shell_script_calls_the_binary_by_name() {
        for (name, text) in completion_scripts().unwrap() {
            let text = String::from_utf8(text).unwrap();
            assert!(text.contains("paragon-admin"), "{name}");
            assert!(text.contains("COMPLETE"), "{name}");
        }
    }
}
