//! Quoting for the remote POSIX shell: SSH carries a command as one string, which the
//! remote user's shell splits again, so each argument is quoted to arrive exactly as given.

use std::borrow::Cow;

/// Quotes one argument: left bare when it holds only characters no shell treats specially,
/// else in single quotes, with each `'` written as `'\''`. The empty string becomes `''`.
pub fn quote(arg: &str) -> Cow<'_, str> {
    let safe = |c: char| c.is_ascii_alphanumeric() || "_-./=:,+@%".contains(c);
    if !arg.is_empty() && arg.chars().all(safe) {
        return Cow::Borrowed(arg);
    }
    let mut out = String::with_capacity(arg.len() + 2);
    out.push('\'');
    for c in arg.chars() {
        if c == '\'' {
            out.push_str("'\\''");
        } else {
            out.push(c);
        }
    }
    out.push('\'');
    Cow::Owned(out)
}

/// `program` followed by each argument quoted, separated by spaces.
pub fn command_line(program: &str, args: &[String]) -> String {
    let mut line = quote(program).into_owned();
    for a in args {
        line.push(' ');
        line.push_str(&quote(a));
    }
    line
}

/// `program` followed by each argument quoted, as bytes: an argument that is not UTF-8 (a
/// file name in another encoding) arrives byte for byte, as with OpenSSH.
pub fn command_line_bytes(program: &str, args: &[std::ffi::OsString]) -> Vec<u8> {
    use std::os::unix::ffi::OsStrExt;
    let mut line = quote(program).into_owned().into_bytes();
    for a in args {
        line.push(b' ');
        let bytes = a.as_bytes();
        let safe = |b: &u8| b.is_ascii_alphanumeric() || b"_-./=:,+@%".contains(b);
        if !bytes.is_empty() && bytes.iter().all(safe) {
            line.extend_from_slice(bytes);
            continue;
        }
        line.push(b'\'');
        for &b in bytes {
            if b == b'\'' {
                line.extend_from_slice(b"'\\''");
            } else {
                line.push(b);
            }
        }
        line.push(b'\'');
    }
    line
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn byte_arguments_quote_as_their_text_would_and_keep_other_bytes() {
        use std::os::unix::ffi::OsStringExt;
        let words = ["", "a b", "it's", "-n", "$HOME"];
        let os: Vec<std::ffi::OsString> = words.iter().map(Into::into).collect();
        let text: Vec<String> = words.iter().map(|w| w.to_string()).collect();
        assert_eq!(
            command_line_bytes("kubectl", &os),
            command_line("kubectl", &text).into_bytes()
        );
        let latin1 = std::ffi::OsString::from_vec(b"caf\xe9".to_vec());
        assert_eq!(command_line_bytes("helm", &[latin1]), b"helm 'caf\xe9'");
    }

    #[test]
    fn plain_words_stay_bare() {
        assert_eq!(quote("get"), "get");
        assert_eq!(quote("-n"), "-n");
        assert_eq!(
            quote("--selector=app.kubernetes.io/name=hermes,tier=1"),
            "--selector=app.kubernetes.io/name=hermes,tier=1"
        );
    }

    #[test]
    fn special_characters_are_single_quoted() {
        assert_eq!(quote(""), "''");
        assert_eq!(quote("a b"), "'a b'");
        assert_eq!(quote("$HOME"), "'$HOME'");
        assert_eq!(quote("a;rm -rf /"), "'a;rm -rf /'");
        assert_eq!(quote("it's"), "'it'\\''s'");
        assert_eq!(quote("\"q\""), "'\"q\"'");
        assert_eq!(quote("*"), "'*'");
        assert_eq!(quote("~"), "'~'");
        assert_eq!(quote("a\nb"), "'a\nb'");
        assert_eq!(quote("`id`"), "'`id`'");
    }

    #[test]
    fn quoted_words_survive_a_real_shell() {
        let args: Vec<String> = [
            "",
            "a b",
            "$HOME",
            "it's",
            "a;b",
            "\"x\"",
            "*",
            "\\",
            "tab\there",
            "-n",
            "é",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let line = command_line(
            "printf",
            &std::iter::once("<%s>\\n".to_string())
                .chain(args.clone())
                .collect::<Vec<_>>(),
        );
        let out = std::process::Command::new("sh")
            .arg("-c")
            .arg(&line)
            .output()
            .unwrap();
        let want: String = args.iter().map(|a| format!("<{a}>\n")).collect();
        assert_eq!(String::from_utf8(out.stdout).unwrap(), want);
    }
}
