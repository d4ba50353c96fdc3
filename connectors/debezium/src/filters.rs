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

/// `message.key.columns`: `<table regex>:<column>,<column>;...`, the columns that form the message key of the
/// tables they match instead of the primary key (Debezium's `Key.CustomKeyMapper`). Each `table:column` becomes one
/// anchored, case-insensitive regex `table.column`, tested against a column's fully-qualified name
/// (`<schema>.<table>.<column>` on PostgreSQL, `<database>.<table>.<column>` on MySQL/MariaDB). A table's key is the
/// columns the regexes match, in the order of the regexes (and of the table's columns within one regex); a table
/// no regex matches keeps its primary key.
#[derive(Debug, Clone, Default)]
pub struct MessageKeyColumns {
    patterns: Vec<Regex>,
}

/// Debezium's `MSG_KEY_COLUMNS_PATTERN`, which every `;`-separated part must match.
const MSG_KEY_COLUMNS_PATTERN: &str = r"^\s*([^\s:]+):([^:\s]+)\s*$";

impl MessageKeyColumns {
    /// Parses the setting; the error is Debezium's validation message.
    pub fn parse(value: Option<&str>) -> Result<Self, String> {
        let Some(value) = value else { return Ok(Self::default()) };
        if value.is_empty() {
            return Err("Must not be empty".into());
        }
        let shape = Regex::new(MSG_KEY_COLUMNS_PATTERN).expect("valid");
        let mut patterns = Vec::new();
        // Java's String/Pattern.split drops trailing empty parts.
        let mut parts: Vec<&str> = value.split(';').collect();
        while parts.last() == Some(&"") {
            parts.pop();
        }
        for part in parts {
            if !shape.is_match(part) {
                return Err(format!("{part} has an invalid format (expecting '{MSG_KEY_COLUMNS_PATTERN}')"));
            }
            // As CustomKeyMapper splits (no trimming: surrounding blanks stay in the regex).
            let (table, columns) = part.split_once(':').expect("matched the pattern");
            for column in columns.split(',').filter(|c| !c.is_empty()) {
                let re = format!("(?i)^(?:{table}.{column})$");
                patterns.push(Regex::new(&re).map_err(|e| format!("{part}: invalid regex {table}.{column}: {e}"))?);
            }
        }
        Ok(MessageKeyColumns { patterns })
    }

    pub fn is_empty(&self) -> bool {
        self.patterns.is_empty()
    }

    /// The key columns of table `table_id` (`schema.table` or `database.table`) among `columns` (names, in table
    /// order), as indexes into `columns`; `None` when no regex matches (the primary key applies). A column matched
    /// by several regexes is taken once.
    pub fn key_columns<'a>(&self, table_id: &str, columns: impl IntoIterator<Item = &'a str>) -> Option<Vec<usize>> {
        if self.patterns.is_empty() {
            return None;
        }
        let names: Vec<String> = columns.into_iter().map(|c| format!("{table_id}.{c}")).collect();
        let mut out = Vec::new();
        for p in &self.patterns {
            for (i, n) in names.iter().enumerate() {
                if p.is_match(n) && !out.contains(&i) {
                    out.push(i);
                }
            }
        }
        (!out.is_empty()).then_some(out)
    }
}

/// `snapshot.select.statement.overrides`: a comma-separated list of tables (`schema.table` or `database.table`, as
/// written, not regexes), each with its statement in `snapshot.select.statement.overrides.<table>`; the snapshot
/// reads that table with it instead of the whole table. A listed table without a statement keeps the default (as
/// Debezium, which finds no statement for it). Returns table -> statement.
pub fn snapshot_select_overrides<'a>(
    get: impl Fn(&str) -> Option<&'a str>,
) -> std::collections::HashMap<String, String> {
    let mut out = std::collections::HashMap::new();
    if let Some(list) = get("snapshot.select.statement.overrides") {
        for table in split_list(list) {
            if let Some(statement) =
                get(&format!("snapshot.select.statement.overrides.{table}")).map(str::trim).filter(|s| !s.is_empty())
            {
                out.insert(table, statement.trim_end_matches(';').trim_end().to_string());
            }
        }
    }
    out
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

    #[test]
    fn message_key_columns_as_debeziums_custom_key_mapper() {
        let k = MessageKeyColumns::parse(Some("inventory.customers:pk1,pk2;(.*).purchaseorders:pk3")).unwrap();
        let cols = ["pk2", "x", "PK1"];
        // regex order first, then table order; case-insensitive, whole name
        assert_eq!(k.key_columns("inventory.customers", cols), Some(vec![2, 0]));
        assert_eq!(k.key_columns("inventory.customers2", cols), None);
        assert_eq!(k.key_columns("other.purchaseorders", ["a", "pk3"]), Some(vec![1]));
        assert_eq!(k.key_columns("other.orders", ["pk3"]), None);
        assert!(MessageKeyColumns::parse(None).unwrap().key_columns("a.b", ["c"]).is_none());
        assert_eq!(MessageKeyColumns::parse(Some("")).unwrap_err(), "Must not be empty");
        assert_eq!(
            MessageKeyColumns::parse(Some("a.b:c;nocolon")).unwrap_err(),
            r"nocolon has an invalid format (expecting '^\s*([^\s:]+):([^:\s]+)\s*$')"
        );
        assert!(MessageKeyColumns::parse(Some("a.b:c;")).is_ok());
        // a column matched twice is taken once
        let k = MessageKeyColumns::parse(Some("s.t:a;s.t:a,b")).unwrap();
        assert_eq!(k.key_columns("s.t", ["b", "a"]), Some(vec![1, 0]));
    }

    #[test]
    fn snapshot_select_overrides_by_table() {
        let config: std::collections::HashMap<&str, &str> = [
            ("snapshot.select.statement.overrides", "s.a, s.b,s.c"),
            ("snapshot.select.statement.overrides.s.a", "SELECT * FROM s.a WHERE x > 1 ; "),
            ("snapshot.select.statement.overrides.s.c", "  "),
        ]
        .into_iter()
        .collect();
        let o = snapshot_select_overrides(|k| config.get(k).copied());
        assert_eq!(o.len(), 1, "{o:?}");
        assert_eq!(o["s.a"], "SELECT * FROM s.a WHERE x > 1");
        assert!(snapshot_select_overrides(|_| None).is_empty());
    }
}
