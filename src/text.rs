//! Text a server sent, made fit for a terminal: its control characters shown escaped, as
//! OpenSSH's client shows a remote banner (`strnvis` with `VIS_SAFE | VIS_OCTAL`), so an
//! escape sequence from the bastion or the API can neither recolour nor rewrite the user's
//! screen inside our messages and tables. Knows nothing of where the text came from.

/// `s` with every control character but the tab written as an octal escape (`ESC` is
/// `\033`, as OpenSSH writes it); a C1 control (`U+0080`..`U+009F`) likewise, by code point.
pub fn printable(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if c.is_control() && c != '\t' {
            out.push_str(&format!("\\{:03o}", u32::from(c)));
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escape_sequences_and_controls_are_shown_not_sent() {
        assert_eq!(
            printable("error: \u{1b}[31mred\u{1b}[0m\r\u{7}"),
            "error: \\033[31mred\\033[0m\\015\\007"
        );
        assert_eq!(printable("tab\tand ünïcode"), "tab\tand ünïcode");
        assert_eq!(printable("\u{9b}2J"), "\\2332J");
    }
}
