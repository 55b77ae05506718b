//! Validity durations as `access grant --valid-for` takes them: a number and a unit.

/// `90s`, `30m`, `8h`, `7d`, `52w` (a bare number is seconds) as seconds; `None` when it is
/// not one of those, zero, or absurdly large.
pub fn parse_duration(text: &str) -> Option<u64> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (n, unit) = text.split_at(split);
    let n: u64 = n.parse().ok()?;
    let scale = match unit {
        "" | "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        "w" => 7 * 86_400,
        _ => return None,
    };
    let secs = n.checked_mul(scale)?;
    // Ten years at most: longer is a key that never expires, which a grant is not.
    (secs > 0 && secs <= 3650 * 86_400).then_some(secs)
}

#[cfg(test)]
mod tests {
    use super::parse_duration;

    #[test]
    fn units_and_refusals() {
        assert_eq!(parse_duration("8h"), Some(8 * 3600));
        assert_eq!(parse_duration("90"), Some(90));
        assert_eq!(parse_duration("52w"), Some(52 * 7 * 86_400));
        for bad in ["", "0h", "h", "8x", "-1h", "99999w", "1.5h"] {
            assert_eq!(parse_duration(bad), None, "{bad:?}");
        }
    }
}
