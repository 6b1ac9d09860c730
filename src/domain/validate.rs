//! Parsing of user-supplied names and addresses: parse, don't validate.

/// Trims and bounds a free-text field; `None` when empty or too long.
pub fn bounded_text(value: &str, max_chars: usize) -> Option<String> {
    let trimmed = value.trim();
    if trimmed.is_empty() || trimmed.chars().count() > max_chars || has_control(trimmed) {
        None
    } else {
        Some(trimmed.to_string())
    }
}

/// Like [`bounded_text`] but an empty value is fine: one line, no control characters.
pub fn optional_text(value: &str, max_chars: usize) -> Option<String> {
    let trimmed = value.trim();
    if trimmed.chars().count() > max_chars || has_control(trimmed) {
        None
    } else {
        Some(trimmed.to_string())
    }
}

/// Free text of several lines (a comment): may be empty, may hold line breaks and tabs, no
/// other control characters (escape sequences, NUL).
pub fn optional_multiline(value: &str, max_chars: usize) -> Option<String> {
    let trimmed = value.trim();
    let bad = trimmed
        .chars()
        .any(|c| c.is_control() && !matches!(c, '\n' | '\r' | '\t'));
    if trimmed.chars().count() > max_chars || bad {
        None
    } else {
        Some(trimmed.to_string())
    }
}

fn has_control(s: &str) -> bool {
    s.chars().any(|c| c.is_control())
}

/// A login name, NFC-normalised: 1..=64 of letters, digits, `.`, `_`, `-`, `@`; unique after
/// NFKC normalisation and lower-casing (see the store's `username_key`).
pub fn parse_username(value: &str) -> Option<String> {
    use unicode_normalization::UnicodeNormalization;
    let composed: String = value.trim().nfc().collect();
    let v = composed.as_str();
    let ok = !v.is_empty()
        && v.chars().count() <= 64
        && v.chars()
            .all(|c| c.is_alphanumeric() || matches!(c, '.' | '_' | '-' | '@'));
    ok.then(|| v.to_string())
}

/// A mail address of plausible syntax (one `@`, a dot in the domain, no spaces), ≤ 254 bytes.
pub fn parse_email(value: &str) -> Option<String> {
    let v = value.trim();
    if v.len() > 254 || v.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return None;
    }
    let (local, domain) = v.split_once('@')?;
    let ok = !local.is_empty()
        && local.len() <= 64
        && !domain.contains('@')
        && domain.contains('.')
        && !domain.starts_with('.')
        && !domain.ends_with('.')
        && !domain.contains("..");
    ok.then(|| v.to_string())
}

/// A phone number in E.164: `+` and 8 to 15 digits.
pub fn parse_phone(value: &str) -> Option<String> {
    let v = value.trim();
    let digits = v.strip_prefix('+')?;
    let ok = (8..=15).contains(&digits.len())
        && digits.chars().all(|c| c.is_ascii_digit())
        && !digits.starts_with('0');
    ok.then(|| v.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emails() {
        assert!(parse_email("a.b@example.com").is_some());
        assert!(parse_email("no-at.example.com").is_none());
        assert!(parse_email("a@b@c.de").is_none());
        assert!(parse_email("a@localhost").is_none());
        assert!(parse_email("a b@c.de").is_none());
    }

    #[test]
    fn phones_are_e164() {
        assert!(parse_phone("+4930123456").is_some());
        assert!(parse_phone("030123456").is_none());
        assert!(parse_phone("+49 30 123").is_none());
    }

    #[test]
    fn usernames() {
        assert_eq!(parse_username(" jane.doe "), Some("jane.doe".into()));
        assert!(parse_username("jane doe").is_none());
        assert!(parse_username("").is_none());
        assert_eq!(parse_username("ju\u{308}rgen"), Some("jürgen".into()));
    }

    #[test]
    fn bounded_text_refuses_control_characters() {
        assert!(bounded_text("hi\u{0}", 10).is_none());
        assert_eq!(bounded_text(" hi ", 10), Some("hi".into()));
    }

    #[test]
    fn optional_text_is_one_line_and_multiline_allows_only_line_breaks_and_tabs() {
        assert_eq!(optional_text("  ", 10), Some(String::new()));
        assert_eq!(optional_text(" Berlin ", 10), Some("Berlin".into()));
        assert!(optional_text("a\nb", 10).is_none());
        assert!(optional_text("a\u{1b}[2J", 10).is_none());
        assert!(optional_text("elevenchars", 10).is_none());
        assert_eq!(
            optional_multiline("line 1\r\n\tline 2", 20),
            Some("line 1\r\n\tline 2".into())
        );
        assert!(optional_multiline("bell\u{7}", 20).is_none());
        assert!(optional_multiline("nul\u{0}", 20).is_none());
    }
}
