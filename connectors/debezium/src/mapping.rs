//! Debezium's column mappers for string columns: `column.truncate.to.<n>.chars`, `column.mask.with.<n>.chars`,
//! `column.mask.hash.<algorithm>.with.salt.<salt>` and `column.mask.hash.v2.<algorithm>.with.salt.<salt>`, each a
//! comma-separated list of regexes matched against a column's fully-qualified name (`<schema>.<table>.<column>` on
//! PostgreSQL, `<database>.<table>.<column>` on MySQL/MariaDB), as `io.debezium.relational.mapping.ColumnMappers`:
//! - the rules are tried truncations first, then masks, then v2 hashes, then v1 hashes (keys of one kind in name
//!   order); the first that matches a column decides;
//! - they apply to the values of character columns only (the value, `before` and `after`; not the message key);
//! - a truncation adds the parameter `truncateLength=<n>` to the field's schema, a mask or a hash `masked=true`;
//! - truncation cuts a string to at most `n` UTF-16 units (Java's `substring`); a mask replaces every value, null
//!   included, by `n` asterisks; a hash is the lowercase hex digest of the salt's bytes followed by the value's bytes
//!   (v1: the value as Java serialization writes a `String`, v2: its UTF-8 bytes), cut to the column's length when it
//!   has one; null stays null.

use crate::filters::RegexList;

/// A digest Java's `MessageDigest` offers under this name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HashAlgorithm {
    Md5,
    Sha1,
    Sha256,
    Sha384,
    Sha512,
    Sha512_256,
}

impl HashAlgorithm {
    fn parse(name: &str) -> Option<Self> {
        Some(match name.to_ascii_uppercase().as_str() {
            "MD5" => HashAlgorithm::Md5,
            "SHA-1" | "SHA1" | "SHA" => HashAlgorithm::Sha1,
            "SHA-256" => HashAlgorithm::Sha256,
            "SHA-384" => HashAlgorithm::Sha384,
            "SHA-512" => HashAlgorithm::Sha512,
            "SHA-512/256" => HashAlgorithm::Sha512_256,
            _ => return None,
        })
    }

    fn digest(self, parts: &[&[u8]]) -> Vec<u8> {
        use ring::digest;
        let alg = match self {
            HashAlgorithm::Md5 => {
                use md5::Digest;
                let mut h = md5::Md5::new();
                for p in parts {
                    h.update(p);
                }
                return h.finalize().to_vec();
            }
            HashAlgorithm::Sha1 => &digest::SHA1_FOR_LEGACY_USE_ONLY,
            HashAlgorithm::Sha256 => &digest::SHA256,
            HashAlgorithm::Sha384 => &digest::SHA384,
            HashAlgorithm::Sha512 => &digest::SHA512,
            HashAlgorithm::Sha512_256 => &digest::SHA512_256,
        };
        let mut ctx = digest::Context::new(alg);
        for p in parts {
            ctx.update(p);
        }
        ctx.finish().as_ref().to_vec()
    }
}

/// What a rule does to a matched column's values.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mapper {
    Truncate(usize),
    Mask(String),
    Hash { salt: Vec<u8>, algorithm: HashAlgorithm, v2: bool },
}

impl Mapper {
    /// The parameter the field's schema gets: `truncateLength=<n>` (TruncateStrings) or `masked=true` (MaskStrings).
    pub fn schema_parameter(&self) -> (String, String) {
        match self {
            Mapper::Truncate(n) => ("truncateLength".into(), n.to_string()),
            _ => ("masked".into(), "true".into()),
        }
    }

    /// The new value of a character column (`None`: null); `length` is the column's declared length, if any.
    pub fn apply(&self, value: Option<&str>, length: Option<usize>) -> Option<String> {
        match self {
            Mapper::Truncate(n) => value.map(|v| truncate_utf16(v, *n).to_string()),
            Mapper::Mask(mask) => Some(mask.clone()),
            Mapper::Hash { salt, algorithm, v2 } => {
                let v = value?;
                let bytes = if *v2 { v.as_bytes().to_vec() } else { java_serialized_string(v) };
                let hex: String = algorithm.digest(&[salt, &bytes]).iter().map(|b| format!("{b:02x}")).collect();
                Some(match length {
                    Some(n) if n > 0 => truncate_utf16(&hex, n).to_string(),
                    _ => hex,
                })
            }
        }
    }
}

/// The longest prefix of `s` of at most `max` UTF-16 units.
fn truncate_utf16(s: &str, max: usize) -> &str {
    let mut units = 0;
    for (i, c) in s.char_indices() {
        units += c.len_utf16();
        if units > max {
            return &s[..i];
        }
    }
    s
}

/// A `String` as `ObjectOutputStream.writeObject` writes it: the stream header, then TC_STRING with a 2-byte length
/// (TC_LONGSTRING with an 8-byte one past 65,535 bytes) and the modified UTF-8 bytes.
fn java_serialized_string(s: &str) -> Vec<u8> {
    let mut m = Vec::with_capacity(s.len() + 2);
    for c in s.chars() {
        let mut units = [0u16; 2];
        for &u in c.encode_utf16(&mut units).iter() {
            match u {
                0x0001..=0x007f => m.push(u as u8),
                0x0000 | 0x0080..=0x07ff => {
                    m.push(0xc0 | (u >> 6) as u8);
                    m.push(0x80 | (u & 0x3f) as u8);
                }
                _ => {
                    m.push(0xe0 | (u >> 12) as u8);
                    m.push(0x80 | ((u >> 6) & 0x3f) as u8);
                    m.push(0x80 | (u & 0x3f) as u8);
                }
            }
        }
    }
    let mut out = vec![0xac, 0xed, 0x00, 0x05];
    if m.len() <= 0xffff {
        out.push(0x74);
        out.extend_from_slice(&(m.len() as u16).to_be_bytes());
    } else {
        out.push(0x7c);
        out.extend_from_slice(&(m.len() as u64).to_be_bytes());
    }
    out.extend_from_slice(&m);
    out
}

/// The rules of a connector's configuration, in the order they are tried.
#[derive(Debug, Clone, Default)]
pub struct ColumnMappers {
    rules: Vec<(RegexList, Mapper)>,
}

impl ColumnMappers {
    /// Reads the mapper keys out of `config`; an error names the key and what is wrong with it.
    pub fn parse<'a>(config: impl IntoIterator<Item = (&'a str, &'a str)>) -> Result<Self, (String, String)> {
        let mut kinds: [Vec<(String, RegexList, Mapper)>; 4] = Default::default();
        let number = |key: &str, digits: &str| {
            digits.parse::<usize>().map_err(|_| (key.to_string(), format!("{digits:?} is not a number of characters")))
        };
        for (key, value) in config {
            let (kind, mapper) =
                if let Some(n) = key.strip_prefix("column.truncate.to.").and_then(|r| r.strip_suffix(".chars")) {
                    (0, Mapper::Truncate(number(key, n)?))
                } else if let Some(n) = key.strip_prefix("column.mask.with.").and_then(|r| r.strip_suffix(".chars")) {
                    (1, Mapper::Mask("*".repeat(number(key, n)?)))
                } else if let Some(rest) = key.strip_prefix("column.mask.hash.") {
                    let (v2, rest) = match rest.strip_prefix("v2.") {
                        Some(r) => (true, r),
                        None => (false, rest),
                    };
                    let Some((algorithm, salt)) = rest.split_once(".with.salt.") else { continue };
                    if algorithm.contains('.') || salt.is_empty() {
                        continue;
                    }
                    let algorithm = HashAlgorithm::parse(algorithm).ok_or_else(|| {
                    (
                        key.to_string(),
                        format!(
                            "{algorithm} MessageDigest not available (Sluice: MD5, SHA-1, SHA-256, SHA-384, SHA-512, \
                             SHA-512/256)"
                        ),
                    )
                })?;
                    (if v2 { 2 } else { 3 }, Mapper::Hash { salt: salt.as_bytes().to_vec(), algorithm, v2 })
                } else {
                    continue;
                };
            let columns = RegexList::parse(Some(value)).map_err(|e| (key.to_string(), e))?;
            kinds[kind].push((key.to_string(), columns, mapper));
        }
        let mut rules = Vec::new();
        for mut k in kinds {
            k.sort_by(|a, b| a.0.cmp(&b.0));
            rules.extend(k.into_iter().map(|(_, columns, mapper)| (columns, mapper)));
        }
        Ok(ColumnMappers { rules })
    }

    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    /// The mapper of the column `fq_column` (`schema.table.column` or `database.table.column`), if a rule matches.
    pub fn mapper_for(&self, fq_column: &str) -> Option<&Mapper> {
        self.rules.iter().find(|(columns, _)| columns.matches(fq_column)).map(|(_, m)| m)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules_in_debeziums_order() {
        let m = ColumnMappers::parse([
            ("column.mask.hash.SHA-256.with.salt.pepper", "s.t.h1"),
            ("column.mask.hash.v2.SHA-256.with.salt.pepper", "s.t.h2,s.t.both"),
            ("column.mask.with.3.chars", "s.t.m,s.t.both"),
            ("column.truncate.to.2.chars", "s.t.tr"),
            ("database.hostname", "x"),
        ])
        .unwrap();
        assert_eq!(m.mapper_for("s.t.tr"), Some(&Mapper::Truncate(2)));
        assert_eq!(m.mapper_for("S.T.M"), Some(&Mapper::Mask("***".into())));
        // a mask comes before a hash
        assert_eq!(m.mapper_for("s.t.both"), Some(&Mapper::Mask("***".into())));
        assert!(matches!(m.mapper_for("s.t.h2"), Some(Mapper::Hash { v2: true, .. })));
        assert!(matches!(m.mapper_for("s.t.h1"), Some(Mapper::Hash { v2: false, .. })));
        assert_eq!(m.mapper_for("s.t.other"), None);
        let err = ColumnMappers::parse([("column.mask.hash.FOO.with.salt.x", "a")]).unwrap_err();
        assert_eq!(err.0, "column.mask.hash.FOO.with.salt.x");
    }

    #[test]
    fn values() {
        assert_eq!(Mapper::Truncate(3).apply(Some("abcdef"), None).as_deref(), Some("abc"));
        assert_eq!(Mapper::Truncate(3).apply(Some("ab"), None).as_deref(), Some("ab"));
        // UTF-16 units: an astral character counts two
        assert_eq!(Mapper::Truncate(2).apply(Some("a😀b"), None).as_deref(), Some("a"));
        assert_eq!(Mapper::Truncate(3).apply(None, None), None);
        assert_eq!(Mapper::Mask("**".into()).apply(None, None).as_deref(), Some("**"));
        let v2 = Mapper::Hash { salt: b"salt".to_vec(), algorithm: HashAlgorithm::Sha256, v2: true };
        // sha256("saltvalue")
        let want: String = ring::digest::digest(&ring::digest::SHA256, b"saltvalue")
            .as_ref()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        assert_eq!(v2.apply(Some("value"), None), Some(want));
        assert_eq!(v2.apply(Some("value"), Some(10)).map(|s| s.len()), Some(10));
        assert_eq!(v2.apply(None, Some(10)), None);
        // Java serialization of a String
        assert_eq!(java_serialized_string("ab"), vec![0xac, 0xed, 0, 5, 0x74, 0, 2, b'a', b'b']);
        assert_eq!(java_serialized_string("\0é"), vec![0xac, 0xed, 0, 5, 0x74, 0, 4, 0xc0, 0x80, 0xc3, 0xa9]);
        assert_eq!(java_serialized_string("😀").len(), 7 + 6);
        let md5 = Mapper::Hash { salt: Vec::new(), algorithm: HashAlgorithm::Md5, v2: true };
        assert_eq!(md5.apply(Some(""), None).as_deref(), Some("d41d8cd98f00b204e9800998ecf8427e"));
    }
}
