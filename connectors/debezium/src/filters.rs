//! Include/exclude lists (comma-separated regular expressions matched against the whole name, case-insensitive
//! as Debezium's `Selectors`) and `skipped.operations`.

use regex::Regex;

use crate::envelope::Op;

/// A comma-separated list of anchored, case-insensitive regexes. Errors name the bad pattern.
#[derive(Debug, Clone, Default)]
pub struct RegexList {
    patterns: Vec<Regex>,
}

impl RegexList {
    pub fn parse(list: Option<&str>) -> Result<Self, String> {
        let mut patterns = Vec::new();
        if let Some(list) = list {
            for p in split_list(list) {
                let re = Regex::new(&format!("(?i)^(?:{p})$")).map_err(|e| format!("invalid regex {p:?}: {e}"))?;
                patterns.push(re);
            }
        }
        Ok(RegexList { patterns })
    }
    pub fn is_empty(&self) -> bool {
        self.patterns.is_empty()
    }
    pub fn matches(&self, name: &str) -> bool {
        self.patterns.iter().any(|p| p.is_match(name))
    }
}

/// Splits a Debezium list on commas (`\,` escapes a comma inside a regex), trimming and dropping empties.
pub fn split_list(list: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut chars = list.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\\' && chars.peek() == Some(&',') {
            cur.push(',');
            chars.next();
        } else if c == ',' {
            out.push(std::mem::take(&mut cur));
        } else {
            cur.push(c);
        }
    }
    out.push(cur);
    out.into_iter().map(|s| s.trim().to_string()).filter(|s| !s.is_empty()).collect()
}

/// An include list and an exclude list (only one may be set, as Debezium validates).
#[derive(Debug, Clone, Default)]
pub struct IncludeExclude {
    pub include: RegexList,
    pub exclude: RegexList,
}

impl IncludeExclude {
    pub fn new(include: Option<&str>, exclude: Option<&str>) -> Result<Self, String> {
        Ok(IncludeExclude { include: RegexList::parse(include)?, exclude: RegexList::parse(exclude)? })
    }
    pub fn accepts(&self, name: &str) -> bool {
        if !self.include.is_empty() {
            return self.include.matches(name);
        }
        !self.exclude.matches(name)
    }
}

/// `skipped.operations`: `c,u,d,t` (default `t`), `none` keeps all.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SkippedOperations {
    pub create: bool,
    pub update: bool,
    pub delete: bool,
    pub truncate: bool,
}

impl Default for SkippedOperations {
    fn default() -> Self {
        SkippedOperations { create: false, update: false, delete: false, truncate: true }
    }
}

impl SkippedOperations {
    pub fn parse(value: Option<&str>) -> Result<Self, String> {
        let Some(value) = value else { return Ok(Self::default()) };
        let mut s = SkippedOperations { create: false, update: false, delete: false, truncate: false };
        for op in split_list(value) {
            match op.to_ascii_lowercase().as_str() {
                "none" => {}
                "c" => s.create = true,
                "u" => s.update = true,
                "d" => s.delete = true,
                "t" => s.truncate = true,
                other => return Err(format!("unknown operation {other:?}; use c, u, d, t or none")),
            }
        }
        Ok(s)
    }
    pub fn skips(&self, op: Op) -> bool {
        match op {
            Op::Create => self.create,
            Op::Update => self.update,
            Op::Delete => self.delete,
            Op::Truncate => self.truncate,
            _ => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists() {
        let f = IncludeExclude::new(Some("public\\.orders,inv\\..*"), None).unwrap();
        assert!(f.accepts("public.orders"));
        assert!(f.accepts("PUBLIC.ORDERS"));
        assert!(!f.accepts("public.orders2"));
        assert!(f.accepts("inv.x"));
        let s = SkippedOperations::parse(Some("none")).unwrap();
        assert!(!s.skips(Op::Truncate));
        assert!(SkippedOperations::default().skips(Op::Truncate));
    }
}
