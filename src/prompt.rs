//! Questions to the person at the terminal, and the refusal when there is none.
//!
//! Every prompt needs stdin and stderr to be terminals; without one it fails with a hint that
//! says how to give the answer another way (a flag, a stored secret). It knows nothing of SSH.

use std::io::IsTerminal;

#[derive(Debug, thiserror::Error)]
pub enum PromptError {
    #[error("{question}: no terminal to ask on; {hint}")]
    NoTerminal { question: String, hint: String },
    #[error("{question}")]
    Failed {
        question: String,
        source: dialoguer::Error,
    },
}

impl crate::exit::ExitStatus for PromptError {
    /// Always a usage or configuration error (2).
    fn exit_status(&self) -> u8 {
        crate::exit::USAGE
    }
}

/// Whether a person can be asked: stdin and stderr are both terminals.
pub fn interactive() -> bool {
    std::io::stdin().is_terminal() && std::io::stderr().is_terminal()
}

fn require(question: &str, hint: &str) -> Result<(), PromptError> {
    if interactive() {
        Ok(())
    } else {
        Err(PromptError::NoTerminal {
            question: question.to_string(),
            hint: hint.to_string(),
        })
    }
}

/// Asks yes or no; `default` is the answer to a bare Enter.
pub fn confirm(question: &str, default: bool, hint: &str) -> Result<bool, PromptError> {
    require(question, hint)?;
    dialoguer::Confirm::new()
        .with_prompt(question)
        .default(default)
        .interact()
        .map_err(|source| PromptError::Failed {
            question: question.to_string(),
            source,
        })
}

/// Asks for a secret without echoing it.
pub fn password(question: &str, hint: &str) -> Result<String, PromptError> {
    require(question, hint)?;
    dialoguer::Password::new()
        .with_prompt(question)
        .allow_empty_password(true)
        .interact()
        .map_err(|source| PromptError::Failed {
            question: question.to_string(),
            source,
        })
}

/// Asks for a line of text; `default` is the answer to a bare Enter (empty allowed when it is
/// `Some("")`). `validate` is asked again after every answer until it accepts one.
pub fn input(
    question: &str,
    default: Option<&str>,
    hint: &str,
    validate: impl Fn(&str) -> Result<(), String>,
) -> Result<String, PromptError> {
    require(question, hint)?;
    let mut p = dialoguer::Input::<String>::new()
        .with_prompt(question)
        .validate_with(move |s: &String| validate(s.trim()));
    if let Some(d) = default {
        p = p.default(d.to_string()).allow_empty(d.is_empty());
        p = p.show_default(!d.is_empty());
    }
    p.interact_text()
        .map(|s| s.trim().to_string())
        .map_err(|source| PromptError::Failed {
            question: question.to_string(),
            source,
        })
}

/// Asks to pick one of `items` with the arrow keys; returns its index.
pub fn select(
    question: &str,
    items: &[String],
    default: usize,
    hint: &str,
) -> Result<usize, PromptError> {
    require(question, hint)?;
    dialoguer::Select::new()
        .with_prompt(question)
        .items(items)
        .default(default)
        .interact()
        .map_err(|source| PromptError::Failed {
            question: question.to_string(),
            source,
        })
}
