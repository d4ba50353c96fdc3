//! Java `.properties` parsing, so `worker.properties` and connector `.properties` files written for Kafka Connect
//! load unchanged. Follows `java.util.Properties.load`: `#`/`!` comments, `=`/`:`/whitespace separators, trailing
//! backslash continuations and the `\t \n \r \f \uXXXX` escapes.

use std::collections::BTreeMap;

/// Parses the text of a `.properties` file. Later duplicates win, as in Java. Never fails: like Java, a malformed
/// `\u` escape is kept as written (Java would throw; keeping it lets the validation report the odd value instead).
pub fn parse_properties(text: &str) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let mut lines = natural_lines(text);
    while let Some(line) = lines.next() {
        let first = trim_leading_whitespace(line);
        // A comment line never continues, even if it ends with a backslash.
        if first.is_empty() || first.starts_with('#') || first.starts_with('!') {
            continue;
        }
        let mut logical = String::new();
        let mut current = first;
        loop {
            if ends_with_odd_backslashes(current) {
                logical.push_str(&current[..current.len() - 1]);
                match lines.next() {
                    // Leading whitespace of a continuation line is not part of the value.
                    Some(next) => current = trim_leading_whitespace(next),
                    None => break,
                }
            } else {
                logical.push_str(current);
                break;
            }
        }
        let (key, value) = split_key_value(&logical);
        out.insert(key, value);
    }
    out
}

/// Splits on `\n`, `\r\n` and `\r`, as Java's line reader does.
fn natural_lines(text: &str) -> impl Iterator<Item = &str> {
    let mut rest = text;
    std::iter::from_fn(move || {
        if rest.is_empty() {
            return None;
        }
        match rest.find(['\n', '\r']) {
            Some(end) => {
                let line = &rest[..end];
                let skip = if rest[end..].starts_with("\r\n") { 2 } else { 1 };
                rest = &rest[end + skip..];
                Some(line)
            }
            None => {
                let line = rest;
                rest = "";
                Some(line)
            }
        }
    })
}

fn is_properties_whitespace(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\x0c')
}

fn trim_leading_whitespace(line: &str) -> &str {
    line.trim_start_matches(is_properties_whitespace)
}

fn ends_with_odd_backslashes(line: &str) -> bool {
    line.bytes().rev().take_while(|b| *b == b'\\').count() % 2 == 1
}

/// Splits a logical line (leading whitespace already removed, continuations joined) into an unescaped key and value.
fn split_key_value(line: &str) -> (String, String) {
    let chars: Vec<char> = line.chars().collect();
    let mut i = 0;
    let mut key = String::new();
    let mut separator_seen = false;
    while i < chars.len() {
        let c = chars[i];
        match c {
            '\\' => i = unescape(&chars, i, &mut key),
            '=' | ':' => {
                separator_seen = true;
                i += 1;
                break;
            }
            c if is_properties_whitespace(c) => {
                i += 1;
                break;
            }
            c => {
                key.push(c);
                i += 1;
            }
        }
    }
    while i < chars.len() && is_properties_whitespace(chars[i]) {
        i += 1;
    }
    // `key  = value`: whitespace ended the key, an `=` or `:` may still follow once.
    if !separator_seen && i < chars.len() && matches!(chars[i], '=' | ':') {
        i += 1;
        while i < chars.len() && is_properties_whitespace(chars[i]) {
            i += 1;
        }
    }
    let mut value = String::new();
    while i < chars.len() {
        if chars[i] == '\\' {
            i = unescape(&chars, i, &mut value);
        } else {
            value.push(chars[i]);
            i += 1;
        }
    }
    (key, value)
}

/// Decodes the escape starting at `chars[at] == '\\'` into `out`; returns the index after it.
fn unescape(chars: &[char], at: usize, out: &mut String) -> usize {
    let Some(&c) = chars.get(at + 1) else {
        // A lone backslash at the very end is dropped, as in Java.
        return at + 1;
    };
    match c {
        't' => out.push('\t'),
        'n' => out.push('\n'),
        'r' => out.push('\r'),
        'f' => out.push('\x0c'),
        'u' => {
            let Some(unit) = hex4(chars, at + 2) else {
                // Malformed: keep it as written.
                out.push_str("\\u");
                return at + 2;
            };
            // Java strings are UTF-16: a high surrogate escape followed by a low surrogate escape is one character.
            if (0xD800..0xDC00).contains(&unit)
                && chars.get(at + 6) == Some(&'\\')
                && chars.get(at + 7) == Some(&'u')
                && let Some(low) = hex4(chars, at + 8)
                && (0xDC00..0xE000).contains(&low)
            {
                let code = 0x10000 + ((unit - 0xD800) << 10) + (low - 0xDC00);
                out.push(char::from_u32(code).unwrap_or(char::REPLACEMENT_CHARACTER));
                return at + 12;
            }
            out.push(char::from_u32(unit).unwrap_or(char::REPLACEMENT_CHARACTER));
            return at + 6;
        }
        other => out.push(other),
    }
    at + 2
}

fn hex4(chars: &[char], from: usize) -> Option<u32> {
    let digits = chars.get(from..from + 4)?;
    digits.iter().try_fold(0u32, |acc, c| Some(acc * 16 + c.to_digit(16)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn props(text: &str) -> Vec<(String, String)> {
        parse_properties(text).into_iter().collect()
    }

    fn pair(k: &str, v: &str) -> (String, String) {
        (k.to_string(), v.to_string())
    }

    #[test]
    fn separators_equals_colon_and_whitespace() {
        let parsed = props("a=1\nb:2\nc 3\nd = 4\ne : 5\nf\t\t6\ng  =  7\n");
        assert_eq!(
            parsed,
            vec![
                pair("a", "1"),
                pair("b", "2"),
                pair("c", "3"),
                pair("d", "4"),
                pair("e", "5"),
                pair("f", "6"),
                pair("g", "7")
            ]
        );
    }

    #[test]
    fn comments_and_blank_lines_are_skipped() {
        let parsed = props("# comment\n! also a comment\n\n   \n  # indented comment\nkey=value\n");
        assert_eq!(parsed, vec![pair("key", "value")]);
    }

    #[test]
    fn leading_whitespace_trimmed_trailing_kept() {
        let parsed = props("   key = value  \n");
        assert_eq!(parsed, vec![pair("key", "value  ")]);
    }

    #[test]
    fn key_without_value() {
        assert_eq!(props("lonely\nempty=\n"), vec![pair("empty", ""), pair("lonely", "")]);
    }

    #[test]
    fn continuation_lines_join_and_drop_leading_whitespace() {
        let parsed = props("plugin.path=/a,\\\n    /b,\\\n    /c\nnext=1\n");
        assert_eq!(parsed, vec![pair("next", "1"), pair("plugin.path", "/a,/b,/c")]);
    }

    #[test]
    fn continuation_at_end_of_file() {
        assert_eq!(props("k=v\\"), vec![pair("k", "v")]);
    }

    #[test]
    fn even_backslashes_do_not_continue() {
        let parsed = props("path=C:\\\\\nnext=1\n");
        assert_eq!(parsed, vec![pair("next", "1"), pair("path", "C:\\")]);
    }

    #[test]
    fn comment_line_ending_with_backslash_does_not_continue() {
        assert_eq!(props("# comment \\\nkey=value\n"), vec![pair("key", "value")]);
    }

    #[test]
    fn continuation_line_starting_with_hash_is_value() {
        assert_eq!(props("k=a\\\n  #b\n"), vec![pair("k", "a#b")]);
    }

    #[test]
    fn escapes() {
        let parsed = props("tab=a\\tb\nnl=a\\nb\ncr=a\\rb\nff=a\\fb\nuni=caf\\u00e9\nother=\\q\\=\\:\\\\\n");
        assert_eq!(
            parsed,
            vec![
                pair("cr", "a\rb"),
                pair("ff", "a\x0cb"),
                pair("nl", "a\nb"),
                pair("other", "q=:\\"),
                pair("tab", "a\tb"),
                pair("uni", "café"),
            ]
        );
    }

    #[test]
    fn surrogate_pair_escape() {
        assert_eq!(props("emoji=\\uD83D\\uDE00"), vec![pair("emoji", "😀")]);
    }

    #[test]
    fn malformed_unicode_escape_is_kept() {
        assert_eq!(props("k=\\u12"), vec![pair("k", "\\u12")]);
    }

    #[test]
    fn escaped_separators_in_key() {
        let parsed = props("a\\=b=c\nx\\:y:z\nsp\\ ace=1\n");
        assert_eq!(parsed, vec![pair("a=b", "c"), pair("sp ace", "1"), pair("x:y", "z")]);
    }

    #[test]
    fn value_may_contain_separators() {
        assert_eq!(props("url=http://host:8083/a=b\n"), vec![pair("url", "http://host:8083/a=b")]);
    }

    #[test]
    fn crlf_and_cr_line_endings() {
        assert_eq!(props("a=1\r\nb=2\rc=3"), vec![pair("a", "1"), pair("b", "2"), pair("c", "3")]);
    }

    #[test]
    fn later_duplicates_win() {
        assert_eq!(props("a=1\na=2\n"), vec![pair("a", "2")]);
    }

    #[test]
    fn kafka_connect_worker_file() {
        let text = "bootstrap.servers=localhost:9092\n\
                    key.converter=org.apache.kafka.connect.storage.StringConverter\n\
                    value.converter=org.apache.kafka.connect.json.JsonConverter\n\
                    value.converter.schemas.enable=false\n\
                    offset.flush.interval.ms=1000\n";
        let parsed = parse_properties(text);
        assert_eq!(parsed["bootstrap.servers"], "localhost:9092");
        assert_eq!(parsed["value.converter.schemas.enable"], "false");
        assert_eq!(parsed.len(), 5);
    }
}
