//! A DDL parser for the statements that change captured tables' structure, applied to the structures known at the
//! statement's binlog position, as Debezium's `MySqlAntlrDdlParser` does: `CREATE TABLE` (columns, `... LIKE`),
//! `ALTER TABLE` (`ADD/DROP/MODIFY/CHANGE/RENAME COLUMN`, `ADD/DROP PRIMARY KEY`, `ALTER COLUMN SET/DROP
//! DEFAULT`, `RENAME TO`, table character set and comment, several clauses), `RENAME TABLE`, `DROP TABLE`,
//! `CREATE/DROP INDEX`, `CREATE/DROP DATABASE`, `TRUNCATE`; quoted identifiers, comments (`/*! ... */` read as
//! text), case-insensitive keywords and column names.
//!
//! A statement it cannot handle (an unknown clause or type, `CREATE TABLE ... SELECT`, a table whose structure is
//! not known) gives [`Outcome::Unsupported`]: the caller then reads the structure from `information_schema`, as
//! before the parser. Column types are kept in `information_schema`'s form (`DATA_TYPE`, `COLUMN_TYPE`) with the
//! display width as written (`INT` → `int`, so `length` is null, as Debezium's).

use std::collections::HashMap;

use crate::history::TableEntry;
use crate::schema_change::TableStructure;
use crate::types::ColumnInfo;

/// What a statement does to the known structures.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// The tables the statement changed, in order, with their structure after it (`None`: dropped). Empty for a
    /// statement that changes no table (a view, a routine, a user, `CREATE DATABASE`, `TRUNCATE`, ...).
    Applied(Vec<TableEntry>),
    /// Not understood: read the structures from the database.
    Unsupported(String),
}

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    /// A bare word (keyword or identifier).
    Word(String),
    /// A quoted identifier (backquotes).
    Quoted(String),
    /// A string literal as written, quotes included.
    Str(String),
    Num(String),
    Sym(char),
}

fn tokenize(sql: &str) -> Result<Vec<Tok>, String> {
    let c: Vec<char> = sql.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < c.len() {
        let ch = c[i];
        if ch.is_whitespace() {
            i += 1;
        } else if ch == '/' && c.get(i + 1) == Some(&'*') {
            // `/*!40101 text */` and MariaDB's `/*M!100100 text */` hold text the server runs: read it
            let exec = c.get(i + 2) == Some(&'!') || (c.get(i + 2) == Some(&'M') && c.get(i + 3) == Some(&'!'));
            if exec {
                i += if c[i + 2] == 'M' { 4 } else { 3 };
                while i < c.len() && c[i].is_ascii_digit() {
                    i += 1;
                }
            } else {
                i += 2;
                while i < c.len() && !(c[i] == '*' && c.get(i + 1) == Some(&'/')) {
                    i += 1;
                }
                i += 2;
            }
        } else if ch == '*' && c.get(i + 1) == Some(&'/') {
            // the end of an executable comment
            i += 2;
        } else if ch == '#'
            || (ch == '-' && c.get(i + 1) == Some(&'-') && c.get(i + 2).is_none_or(|n| n.is_whitespace()))
        {
            while i < c.len() && c[i] != '\n' {
                i += 1;
            }
        } else if ch == '`' {
            let mut s = String::new();
            i += 1;
            loop {
                match c.get(i) {
                    None => return Err("unterminated quoted identifier".into()),
                    Some('`') if c.get(i + 1) == Some(&'`') => {
                        s.push('`');
                        i += 2;
                    }
                    Some('`') => {
                        i += 1;
                        break;
                    }
                    Some(&x) => {
                        s.push(x);
                        i += 1;
                    }
                }
            }
            out.push(Tok::Quoted(s));
        } else if ch == '\'' || ch == '"' {
            let start = i;
            i += 1;
            loop {
                match c.get(i) {
                    None => return Err("unterminated string".into()),
                    Some('\\') => i += 2,
                    Some(&q) if q == ch && c.get(i + 1) == Some(&ch) => i += 2,
                    Some(&q) if q == ch => {
                        i += 1;
                        break;
                    }
                    Some(_) => i += 1,
                }
            }
            let mut lit: String = c[start..i].iter().collect();
            if ch == '"' {
                // a double-quoted string (ANSI_QUOTES off): as a single-quoted one
                let inner = &lit[1..lit.len() - 1];
                lit = format!("'{}'", inner.replace("\"\"", "\"").replace('\'', "''"));
            }
            out.push(Tok::Str(lit));
        } else if ch.is_ascii_digit() || (ch == '.' && c.get(i + 1).is_some_and(|d| d.is_ascii_digit())) {
            let start = i;
            while i < c.len() && (c[i].is_ascii_alphanumeric() || c[i] == '.' || c[i] == '_') {
                if (c[i] == 'e' || c[i] == 'E') && matches!(c.get(i + 1), Some('-' | '+')) {
                    i += 1;
                }
                i += 1;
            }
            let s: String = c[start..i].iter().collect();
            if s.chars().any(|x| x.is_ascii_alphabetic() && x != 'e' && x != 'E') && !s.starts_with("0x") {
                out.push(Tok::Word(s)); // an identifier that starts with a digit
            } else {
                out.push(Tok::Num(s));
            }
        } else if ch.is_alphanumeric() || ch == '_' || ch == '$' {
            let start = i;
            while i < c.len() && (c[i].is_alphanumeric() || c[i] == '_' || c[i] == '$') {
                i += 1;
            }
            let w: String = c[start..i].iter().collect();
            // x'0f', b'01', _utf8mb4'text', N'text': one literal
            if c.get(i) == Some(&'\'')
                && (matches!(w.to_ascii_lowercase().as_str(), "x" | "b" | "n") || w.starts_with('_'))
            {
                let lit_start = i;
                i += 1;
                while i < c.len() && c[i] != '\'' {
                    if c[i] == '\\' {
                        i += 1;
                    }
                    i += 1;
                }
                i += 1;
                let lit: String = c[lit_start..i.min(c.len())].iter().collect();
                let prefix = if w.eq_ignore_ascii_case("n") || w.starts_with('_') { String::new() } else { w };
                out.push(Tok::Str(format!("{prefix}{lit}")));
            } else {
                out.push(Tok::Word(w));
            }
        } else {
            out.push(Tok::Sym(ch));
            i += 1;
        }
    }
    Ok(out)
}

type Res<T> = Result<T, String>;

struct Parser<'a> {
    t: Vec<Tok>,
    i: usize,
    default_db: &'a str,
}

impl Parser<'_> {
    fn peek(&self) -> Option<&Tok> {
        self.t.get(self.i)
    }
    fn peek_at(&self, n: usize) -> Option<&Tok> {
        self.t.get(self.i + n)
    }
    fn is_kw_at(&self, n: usize, kw: &str) -> bool {
        matches!(self.peek_at(n), Some(Tok::Word(w)) if w.eq_ignore_ascii_case(kw))
    }
    fn is_kw(&self, kw: &str) -> bool {
        self.is_kw_at(0, kw)
    }
    fn eat_kw(&mut self, kw: &str) -> bool {
        let yes = self.is_kw(kw);
        if yes {
            self.i += 1;
        }
        yes
    }
    fn eat_kws(&mut self, kws: &[&str]) -> bool {
        if kws.iter().enumerate().all(|(n, k)| self.is_kw_at(n, k)) {
            self.i += kws.len();
            true
        } else {
            false
        }
    }
    fn expect_kw(&mut self, kw: &str) -> Res<()> {
        if self.eat_kw(kw) { Ok(()) } else { Err(format!("expected {kw} at {}", self.here())) }
    }
    fn is_sym(&self, s: char) -> bool {
        self.peek() == Some(&Tok::Sym(s))
    }
    fn eat_sym(&mut self, s: char) -> bool {
        let yes = self.is_sym(s);
        if yes {
            self.i += 1;
        }
        yes
    }
    fn expect_sym(&mut self, s: char) -> Res<()> {
        if self.eat_sym(s) { Ok(()) } else { Err(format!("expected `{s}` at {}", self.here())) }
    }
    fn at_end(&self) -> bool {
        self.i >= self.t.len() || (self.is_sym(';') && self.i + 1 >= self.t.len())
    }
    fn here(&self) -> String {
        match self.peek() {
            None => "the end".into(),
            Some(t) => format!("{t:?}"),
        }
    }
    fn ident(&mut self) -> Res<String> {
        match self.peek().cloned() {
            Some(Tok::Word(w)) | Some(Tok::Quoted(w)) => {
                self.i += 1;
                Ok(w)
            }
            // a string in a place of a name (`ENGINE='InnoDB'`, `CHARSET 'utf8'`)
            Some(Tok::Str(s)) if s.starts_with('\'') => {
                self.i += 1;
                Ok(s[1..s.len() - 1].to_string())
            }
            _ => Err(format!("expected a name at {}", self.here())),
        }
    }
    /// `[db.]table`.
    fn table_name(&mut self) -> Res<(String, String)> {
        let first = self.ident()?;
        if self.eat_sym('.') {
            let second = self.ident()?;
            Ok((first, second))
        } else {
            Ok((self.default_db.to_string(), first))
        }
    }
    fn if_exists(&mut self) -> bool {
        self.eat_kws(&["IF", "EXISTS"])
    }
    fn if_not_exists(&mut self) -> bool {
        self.eat_kws(&["IF", "NOT", "EXISTS"])
    }
    /// Skips a balanced `( ... )` (the current token is `(`).
    fn skip_parens(&mut self) -> Res<()> {
        self.expect_sym('(')?;
        let mut depth = 1;
        while depth > 0 {
            match self.peek() {
                None => return Err("unbalanced parentheses".into()),
                Some(Tok::Sym('(')) => depth += 1,
                Some(Tok::Sym(')')) => depth -= 1,
                _ => {}
            }
            self.i += 1;
        }
        Ok(())
    }
    /// Skips to the next `,` or `)` at this depth (not consumed), or the end.
    fn skip_clause(&mut self) -> Res<()> {
        while !self.at_end() && !self.is_sym(',') && !self.is_sym(')') {
            if self.is_sym('(') {
                self.skip_parens()?;
            } else {
                self.i += 1;
            }
        }
        Ok(())
    }
    /// `(a, b(10), c DESC)` → names.
    fn index_columns(&mut self) -> Res<Vec<String>> {
        self.expect_sym('(')?;
        let mut out = Vec::new();
        loop {
            out.push(self.ident()?);
            // prefix length, order
            if self.is_sym('(') {
                self.skip_parens()?;
            }
            let _ = self.eat_kw("ASC") || self.eat_kw("DESC");
            if self.eat_sym(')') {
                return Ok(out);
            }
            self.expect_sym(',')?;
        }
    }
    /// The text of an expression up to the next column attribute, `,` or `)` (a default value).
    fn default_value(&mut self) -> Res<String> {
        match self.peek().cloned() {
            Some(Tok::Sym('(')) => {
                let start = self.i;
                self.skip_parens()?;
                Ok(render(&self.t[start..self.i]))
            }
            Some(Tok::Sym(s @ ('-' | '+'))) => {
                self.i += 1;
                match self.peek().cloned() {
                    Some(Tok::Num(n)) => {
                        self.i += 1;
                        Ok(if s == '-' { format!("-{n}") } else { n })
                    }
                    _ => Err("expected a number after a sign".into()),
                }
            }
            Some(Tok::Str(s)) | Some(Tok::Num(s)) => {
                self.i += 1;
                Ok(s)
            }
            Some(Tok::Word(w)) => {
                self.i += 1;
                let mut text = w;
                if self.is_sym('(') {
                    let start = self.i;
                    self.skip_parens()?;
                    text.push_str(&render(&self.t[start..self.i]));
                }
                Ok(text)
            }
            _ => Err(format!("expected a default value at {}", self.here())),
        }
    }
    fn string(&mut self) -> Res<String> {
        match self.peek().cloned() {
            Some(Tok::Str(s)) if s.starts_with('\'') => {
                self.i += 1;
                Ok(unquote_literal(&s))
            }
            _ => Err(format!("expected a string at {}", self.here())),
        }
    }
}

/// Tokens back to text (a default expression in parentheses).
fn render(t: &[Tok]) -> String {
    let mut s = String::new();
    for tok in t {
        match tok {
            Tok::Word(w) | Tok::Num(w) | Tok::Str(w) => {
                if s.chars().last().is_some_and(|c| c.is_alphanumeric() || c == '\'' || c == '`') {
                    s.push(' ');
                }
                s.push_str(w);
            }
            Tok::Quoted(w) => s.push_str(&format!("`{w}`")),
            Tok::Sym(c) => s.push(*c),
        }
    }
    s
}

/// `'it''s'` → `it's`.
fn unquote_literal(s: &str) -> String {
    let inner = &s[1..s.len().saturating_sub(1).max(1)];
    let mut out = String::new();
    let mut chars = inner.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\\' => {
                if let Some(n) = chars.next() {
                    out.push(match n {
                        'n' => '\n',
                        't' => '\t',
                        'r' => '\r',
                        '0' => '\0',
                        x => x,
                    });
                }
            }
            '\'' if chars.peek() == Some(&'\'') => {
                chars.next();
                out.push('\'');
            }
            c => out.push(c),
        }
    }
    out
}

/// The character set of a collation (`utf8mb4_bin` → `utf8mb4`).
fn charset_of_collation(collation: &str) -> String {
    collation.split('_').next().unwrap_or(collation).to_ascii_lowercase()
}

/// Whether `information_schema` gives the type a character set.
pub fn is_character(data_type: &str) -> bool {
    matches!(data_type, "char" | "varchar" | "tinytext" | "text" | "mediumtext" | "longtext" | "enum" | "set")
}

/// Gives a structure whose table character set was not in the statement the database's (`db_charset`).
pub fn inherit_charset(t: &mut TableStructure, db_charset: &str) {
    if t.charset.is_none() {
        t.charset = Some(db_charset.to_string());
    }
    for c in t.columns.iter_mut().filter(|c| is_character(&c.data_type) && c.charset.is_none()) {
        c.charset = Some(db_charset.to_string());
    }
}

/// A column definition: the column and whether it was declared `PRIMARY KEY`.
fn column_definition(p: &mut Parser<'_>, table_charset: Option<&str>, mariadb: bool) -> Res<(ColumnInfo, bool)> {
    let name = p.ident()?;
    let raw = p.ident().map_err(|_| format!("column {name}: expected a type"))?.to_ascii_lowercase();
    let mut raw = raw;
    // The names Debezium's parser keeps as written (typeName), where the server's name differs.
    let mut declared_type = match raw.as_str() {
        "integer" | "bool" | "boolean" | "numeric" | "dec" | "fixed" | "real" | "int1" | "int2" | "int3" | "int4"
        | "int8" | "middleint" | "character" | "nchar" | "nvarchar" => Some(raw.to_ascii_uppercase()),
        _ => None,
    };
    // two-word type names
    if raw == "double" && p.eat_kw("PRECISION") {
        declared_type = Some("DOUBLE PRECISION".into());
    }
    if raw == "national" {
        raw = format!("n{}", p.ident()?.to_ascii_lowercase());
    }
    if (raw == "char" || raw == "character" || raw == "nchar") && p.eat_kw("VARYING") {
        raw = if raw == "nchar" { "nvarchar".into() } else { "varchar".into() };
    }
    if raw == "long" {
        if p.eat_kw("VARBINARY") {
            raw = "mediumblob".into();
        } else {
            let _ = p.eat_kw("VARCHAR") || p.eat_kws(&["CHAR", "VARYING"]);
            raw = "mediumtext".into();
        }
    }
    let mut args: Vec<String> = Vec::new();
    if p.eat_sym('(') {
        loop {
            match p.peek().cloned() {
                Some(Tok::Num(n)) => args.push(n),
                Some(Tok::Str(s)) => args.push(s),
                _ => return Err(format!("column {name}: unexpected type argument {}", p.here())),
            }
            p.i += 1;
            if p.eat_sym(')') {
                break;
            }
            p.expect_sym(',')?;
        }
    }
    let num = |k: usize| args.get(k).and_then(|a| a.parse::<u32>().ok());
    let mut declared_length = None;
    if raw == "float" && args.len() == 1 {
        // FLOAT(p): the server keeps float or double, Debezium's parser FLOAT with length p
        declared_type = Some("FLOAT".into());
        declared_length = num(0);
    }
    let mut charset: Option<String> = None;
    let (mut data_type, mut precision, mut scale, mut dt_precision) = (raw.clone(), None, None, None);
    let mut width: Option<String> = args.first().cloned();
    match raw.as_str() {
        "int1" => data_type = "tinyint".into(),
        "int2" => data_type = "smallint".into(),
        "int3" | "middleint" => data_type = "mediumint".into(),
        "int4" | "integer" => data_type = "int".into(),
        "int8" => data_type = "bigint".into(),
        "bool" | "boolean" => {
            data_type = "tinyint".into();
            width = Some("1".into());
        }
        "serial" => return Err("SERIAL columns are not parsed".into()),
        "dec" | "numeric" | "fixed" | "decimal" => {
            data_type = "decimal".into();
            precision = Some(num(0).unwrap_or(10));
            scale = Some(num(1).unwrap_or(0));
        }
        "real" | "double" => data_type = "double".into(),
        "float" if args.len() == 1 => data_type = if num(0).unwrap_or(0) > 24 { "double" } else { "float" }.into(),
        "character" | "nchar" => data_type = "char".into(),
        "nvarchar" => data_type = "varchar".into(),
        "json" if mariadb => {
            // MariaDB's JSON is LONGTEXT (utf8mb4_bin) with a check: what its binlog and information_schema have
            data_type = "longtext".into();
            charset = Some("utf8mb4".into());
        }
        "datetime" | "timestamp" | "time" => dt_precision = Some(num(0).unwrap_or(0)),
        "tinyint" | "smallint" | "mediumint" | "int" | "bigint" | "float" | "bit" | "char" | "varchar" | "binary"
        | "varbinary" | "tinytext" | "text" | "mediumtext" | "longtext" | "tinyblob" | "blob" | "mediumblob"
        | "longblob" | "enum" | "set" | "date" | "year" | "json" | "geometry" | "point" | "linestring" | "polygon"
        | "multipoint" | "multilinestring" | "multipolygon" | "geometrycollection" => {}
        other => return Err(format!("column {name}: type {other} is not parsed")),
    }
    if raw.starts_with('n') && matches!(data_type.as_str(), "char" | "varchar") {
        charset = Some("utf8mb3".into());
    }
    if matches!(data_type.as_str(), "char" | "binary" | "bit") && width.is_none() {
        width = Some("1".into());
    }
    if matches!(
        data_type.as_str(),
        "tinytext"
            | "text"
            | "mediumtext"
            | "longtext"
            | "tinyblob"
            | "blob"
            | "mediumblob"
            | "longblob"
            | "date"
            | "json"
            | "double"
            | "real"
    ) && args.len() <= 1
        || raw == "float" && args.len() == 1
    {
        // TEXT(n), BLOB(n) (MariaDB picks the type by size; the width does not show)
        width = None;
    }
    let mut col = ColumnInfo { name: name.clone(), nullable: true, ..Default::default() };
    let (mut unsigned, mut zerofill, mut primary, mut collation) = (false, false, false, None::<String>);
    loop {
        if p.at_end() || p.is_sym(',') || p.is_sym(')') || p.is_kw("FIRST") || p.is_kw("AFTER") {
            break;
        }
        if p.eat_kw("UNSIGNED") {
            unsigned = true;
        } else if p.eat_kw("SIGNED") {
        } else if p.eat_kw("ZEROFILL") {
            zerofill = true;
            unsigned = true;
        } else if p.eat_kw("BINARY") || p.eat_kw("ASCII") || p.eat_kw("UNICODE") || p.eat_kw("BYTE") {
        } else if p.eat_kws(&["CHARACTER", "SET"]) || p.eat_kw("CHARSET") {
            charset = Some(p.ident()?.to_ascii_lowercase());
        } else if p.eat_kw("COLLATE") {
            collation = Some(p.ident()?);
        } else if p.eat_kws(&["NOT", "NULL"]) {
            col.nullable = false;
        } else if p.eat_kw("NULL") {
            col.nullable = true;
        } else if p.eat_kw("DEFAULT") {
            col.default = Some(p.default_value()?);
        } else if p.eat_kw("AUTO_INCREMENT") {
            col.extra = "auto_increment".into();
        } else if p.eat_kws(&["PRIMARY", "KEY"]) {
            primary = true;
        } else if p.eat_kw("UNIQUE") {
            p.eat_kw("KEY");
        } else if p.eat_kw("KEY") {
            // KEY in a column definition is PRIMARY KEY
            primary = true;
        } else if p.eat_kw("COMMENT") {
            col.comment = p.string()?;
        } else if p.eat_kws(&["ON", "UPDATE"]) {
            p.default_value()?;
        } else if p.eat_kw("GENERATED") || p.is_kw("AS") {
            p.eat_kw("ALWAYS");
            p.expect_kw("AS")?;
            if p.is_kw("ROW") {
                return Err("system-versioning columns are not parsed".into());
            }
            p.skip_parens()?;
            col.extra = if p.eat_kw("STORED") || p.eat_kw("PERSISTENT") {
                "STORED GENERATED".into()
            } else {
                p.eat_kw("VIRTUAL");
                "VIRTUAL GENERATED".into()
            };
        } else if p.eat_kw("CHECK") {
            p.skip_parens()?;
        } else if p.eat_kw("CONSTRAINT") {
            if !p.is_kw("CHECK") {
                p.ident()?;
            }
        } else if p.eat_kw("INVISIBLE") || p.eat_kw("VISIBLE") {
        } else if p.eat_kw("COLUMN_FORMAT") || p.eat_kw("STORAGE") {
            p.ident()?;
        } else if p.eat_kw("REFERENCES") {
            p.table_name()?;
            if p.is_sym('(') {
                p.skip_parens()?;
            }
            while p.eat_kw("MATCH") || p.eat_kw("ON") {
                if p.eat_kw("DELETE") || p.eat_kw("UPDATE") {
                    if !(p.eat_kw("RESTRICT") || p.eat_kw("CASCADE") || p.eat_kws(&["SET", "NULL"])) {
                        let _ = p.eat_kws(&["NO", "ACTION"]) || p.eat_kws(&["SET", "DEFAULT"]);
                    }
                } else {
                    p.ident()?;
                }
            }
        } else {
            return Err(format!("column {name}: attribute {} is not parsed", p.here()));
        }
    }
    if charset.is_none()
        && let Some(coll) = &collation
    {
        charset = Some(charset_of_collation(coll));
    }
    if charset.as_deref() == Some("binary") {
        // CHARACTER SET binary turns character types into binary ones
        data_type = match data_type.as_str() {
            "char" => "binary".into(),
            "varchar" => "varbinary".into(),
            "tinytext" => "tinyblob".into(),
            "text" => "blob".into(),
            "mediumtext" => "mediumblob".into(),
            "longtext" => "longblob".into(),
            other => other.to_string(),
        };
        charset = None;
    }
    if primary {
        col.nullable = false;
    }
    if is_character(&data_type) {
        if charset.is_none() {
            charset = table_charset.map(str::to_string);
        }
        col.charset = charset;
    }
    let mut column_type = data_type.clone();
    if matches!(data_type.as_str(), "enum" | "set") {
        column_type = format!("{data_type}({})", args.join(","));
    } else if data_type == "decimal" {
        // Debezium's default dimensions: DECIMAL is DECIMAL(10,0)
        column_type = format!("decimal({},{})", precision.unwrap_or(10), scale.unwrap_or(0));
    } else if args.len() >= 2 {
        column_type = format!("{data_type}({})", args.join(","));
    } else if let Some(w) = width {
        column_type = format!("{data_type}({w})");
    }
    if unsigned && !matches!(data_type.as_str(), "char" | "varchar") {
        column_type.push_str(" unsigned");
    }
    if zerofill {
        column_type.push_str(" zerofill");
    }
    col.data_type = data_type;
    col.column_type = column_type;
    col.precision = precision;
    col.scale = scale;
    col.datetime_precision = dt_precision;
    col.declared_type = declared_type;
    col.declared_length = declared_length;
    Ok((col, primary))
}

fn find_column(t: &TableStructure, name: &str) -> Option<usize> {
    t.columns.iter().position(|c| c.name.eq_ignore_ascii_case(name))
}

/// `FIRST` / `AFTER col` after a column definition: where to put it (`None`: at the end, or where it was).
fn placement(p: &mut Parser<'_>, t: &TableStructure) -> Res<Option<usize>> {
    if p.eat_kw("FIRST") {
        return Ok(Some(0));
    }
    if p.eat_kw("AFTER") {
        let after = p.ident()?;
        let at = find_column(t, &after).ok_or_else(|| format!("AFTER {after}: no such column"))?;
        return Ok(Some(at + 1));
    }
    Ok(None)
}

fn set_primary_key(t: &mut TableStructure, cols: Vec<String>) -> Res<()> {
    let mut keys = Vec::new();
    for k in cols {
        let at = find_column(t, &k).ok_or_else(|| format!("PRIMARY KEY ({k}): no such column"))?;
        t.columns[at].nullable = false;
        keys.push(t.columns[at].name.clone());
    }
    t.keys = keys;
    Ok(())
}

/// Table options: character set, collation, comment; everything else skipped. Stops at `)`/`;`/the end.
fn table_options(p: &mut Parser<'_>, t: &mut TableStructure) -> Res<()> {
    let mut collation_charset = None;
    while !p.at_end() {
        if p.eat_sym(',') {
            continue;
        }
        p.eat_kw("DEFAULT");
        if p.eat_kws(&["CHARACTER", "SET"]) || p.eat_kw("CHARSET") {
            p.eat_sym('=');
            t.charset = Some(p.ident()?.to_ascii_lowercase());
        } else if p.eat_kw("COLLATE") {
            p.eat_sym('=');
            collation_charset = Some(charset_of_collation(&p.ident()?));
        } else if p.eat_kw("COMMENT") {
            p.eat_sym('=');
            t.comment = Some(p.string()?).filter(|c| !c.is_empty());
        } else if p.is_kw("SELECT") || p.is_kw("AS") || p.is_kw("IGNORE") || p.is_kw("REPLACE") {
            return Err("CREATE TABLE ... SELECT is not parsed".into());
        } else if p.is_sym('(') {
            p.skip_parens()?;
        } else {
            p.i += 1;
        }
    }
    if t.charset.is_none() {
        t.charset = collation_charset;
    }
    Ok(())
}

/// The elements of `CREATE TABLE t ( ... )` (after the `(`, up to and including the `)`).
fn create_definitions(p: &mut Parser<'_>, t: &mut TableStructure, mariadb: bool) -> Res<()> {
    let mut pk: Option<Vec<String>> = None;
    loop {
        if p.eat_kw("CONSTRAINT")
            && !(p.is_kw("PRIMARY") || p.is_kw("UNIQUE") || p.is_kw("FOREIGN") || p.is_kw("CHECK"))
        {
            p.ident()?;
        }
        if p.eat_kws(&["PRIMARY", "KEY"]) {
            while !p.is_sym('(') {
                p.ident()?; // USING BTREE
            }
            pk = Some(p.index_columns()?);
            p.skip_clause()?;
        } else if ["UNIQUE", "KEY", "INDEX", "FULLTEXT", "SPATIAL", "FOREIGN", "CHECK", "PERIOD"]
            .iter()
            .any(|k| p.is_kw(k))
            && !matches!(p.peek_at(1), Some(Tok::Word(w)) if is_type_name(w))
        {
            p.skip_clause()?;
        } else {
            let (col, primary) = column_definition(p, None, mariadb)?;
            if primary {
                pk = Some(vec![col.name.clone()]);
            }
            if find_column(t, &col.name).is_some() {
                return Err(format!("duplicate column {}", col.name));
            }
            t.columns.push(col);
        }
        if p.eat_sym(')') {
            break;
        }
        p.expect_sym(',')?;
    }
    if let Some(k) = pk {
        set_primary_key(t, k)?;
    }
    Ok(())
}

/// A column named like a keyword (`key INT`): the next word is a type.
fn is_type_name(w: &str) -> bool {
    matches!(
        w.to_ascii_lowercase().as_str(),
        "int"
            | "integer"
            | "tinyint"
            | "smallint"
            | "mediumint"
            | "bigint"
            | "varchar"
            | "char"
            | "text"
            | "decimal"
            | "double"
            | "float"
            | "date"
            | "datetime"
            | "timestamp"
            | "blob"
            | "varbinary"
            | "binary"
            | "bit"
    )
}

/// Applies one statement to the known structures (`known`, keyed by database and table; only the tables the
/// statement needs must be there). `default_db`: the session's database. `mariadb`: the server is MariaDB.
pub fn apply(sql: &str, default_db: &str, known: &HashMap<(String, String), TableStructure>, mariadb: bool) -> Outcome {
    match apply_inner(sql, default_db, known, mariadb) {
        Ok(v) => Outcome::Applied(v),
        Err(e) => Outcome::Unsupported(e),
    }
}

fn apply_inner(
    sql: &str,
    default_db: &str,
    known: &HashMap<(String, String), TableStructure>,
    mariadb: bool,
) -> Res<Vec<TableEntry>> {
    let mut p = Parser { t: tokenize(sql)?, i: 0, default_db };
    // the working copy: renames and drops within the statement see each other
    let mut work: HashMap<(String, String), Option<TableStructure>> = HashMap::new();
    let mut order: Vec<(String, String)> = Vec::new();
    let get =
        |work: &HashMap<(String, String), Option<TableStructure>>, k: &(String, String)| -> Option<TableStructure> {
            match work.get(k) {
                Some(v) => v.clone(),
                None => known.get(k).cloned(),
            }
        };
    let mut put = |work: &mut HashMap<_, _>, k: (String, String), v: Option<TableStructure>| {
        order.retain(|o| o != &k);
        order.push(k.clone());
        work.insert(k, v);
    };
    let not_known = |(d, t): &(String, String)| format!("the structure of {d}.{t} is not known");
    let done = |p: &Parser<'_>| -> Res<()> {
        if p.at_end() { Ok(()) } else { Err(format!("unexpected {} after the statement", p.here())) }
    };

    if p.eat_kw("CREATE") {
        if p.eat_kw("OR") {
            p.expect_kw("REPLACE")?;
        }
        if p.eat_kw("TEMPORARY") {
            // not in a ROW binlog (and not a captured table)
            return Ok(Vec::new());
        }
        if p.eat_kw("TABLE") {
            let exists_ok = p.if_not_exists();
            let name = p.table_name()?;
            if exists_ok && get(&work, &name).is_some() {
                return Ok(Vec::new());
            }
            let mut t = TableStructure { db: name.0.clone(), table: name.1.clone(), ..Default::default() };
            let paren_like = p.is_sym('(') && p.is_kw_at(1, "LIKE");
            if p.eat_kw("LIKE") || paren_like {
                if paren_like {
                    p.i += 2;
                }
                let src = p.table_name()?;
                let s = get(&work, &src).ok_or_else(|| not_known(&src))?;
                if paren_like {
                    p.expect_sym(')')?;
                }
                t = TableStructure { db: name.0.clone(), table: name.1.clone(), ..s };
            } else {
                p.expect_sym('(')?;
                create_definitions(&mut p, &mut t, mariadb)?;
                table_options(&mut p, &mut t)?;
                // the table's character set for the columns that have none
                if let Some(cs) = t.charset.clone() {
                    for c in t.columns.iter_mut().filter(|c| is_character(&c.data_type) && c.charset.is_none()) {
                        c.charset = Some(cs.clone());
                    }
                }
            }
            done(&p)?;
            put(&mut work, name, Some(t));
        } else if p.eat_kw("DATABASE") || p.eat_kw("SCHEMA") {
            return Ok(Vec::new());
        } else {
            p.eat_kw("ONLINE");
            p.eat_kw("OFFLINE");
            if p.eat_kw("UNIQUE") || p.eat_kw("FULLTEXT") || p.eat_kw("SPATIAL") || p.is_kw("INDEX") {
                p.expect_kw("INDEX")?;
                return index_on(&mut p, &work, known);
            }
            return non_table(&p);
        }
    } else if p.eat_kw("ALTER") {
        p.eat_kw("ONLINE");
        p.eat_kw("IGNORE");
        if !p.eat_kw("TABLE") {
            return non_table(&p);
        }
        p.if_exists();
        let mut name = p.table_name()?;
        let mut t = get(&work, &name).ok_or_else(|| not_known(&name))?;
        let mut renamed_to: Option<(String, String)> = None;
        // clauses, separated by commas (table options may follow each other without)
        while !p.at_end() {
            alter_spec(&mut p, &mut t, &mut renamed_to, mariadb)?;
            p.eat_sym(',');
        }
        done(&p)?;
        if let Some(new) = renamed_to {
            put(&mut work, name.clone(), None);
            t.db = new.0.clone();
            t.table = new.1.clone();
            name = new;
        }
        put(&mut work, name, Some(t));
    } else if p.eat_kw("RENAME") {
        if !(p.eat_kw("TABLE") || p.eat_kw("TABLES")) {
            return non_table(&p);
        }
        loop {
            let from = p.table_name()?;
            p.expect_kw("TO")?;
            let to = p.table_name()?;
            let mut t = get(&work, &from).ok_or_else(|| not_known(&from))?;
            put(&mut work, from, None);
            t.db = to.0.clone();
            t.table = to.1.clone();
            put(&mut work, to, Some(t));
            if !p.eat_sym(',') {
                break;
            }
        }
        done(&p)?;
    } else if p.eat_kw("DROP") {
        if p.eat_kw("TEMPORARY") {
            return Ok(Vec::new());
        }
        if p.eat_kw("TABLE") || p.eat_kw("TABLES") {
            p.if_exists();
            loop {
                let name = p.table_name()?;
                put(&mut work, name, None);
                if !p.eat_sym(',') {
                    break;
                }
            }
            let _ = p.eat_kw("RESTRICT") || p.eat_kw("CASCADE");
        } else if p.eat_kw("DATABASE") || p.eat_kw("SCHEMA") {
            p.if_exists();
            let db = p.ident()?;
            let mut tables: Vec<(String, String)> = known.keys().filter(|(d, _)| d == &db).cloned().collect();
            tables.sort();
            for k in tables {
                put(&mut work, k, None);
            }
        } else {
            p.eat_kw("ONLINE");
            p.eat_kw("OFFLINE");
            if p.eat_kw("INDEX") {
                return index_on(&mut p, &work, known);
            }
            return non_table(&p);
        }
    } else if p.eat_kw("TRUNCATE") {
        return Ok(Vec::new());
    } else {
        return non_table(&p);
    }
    Ok(order
        .into_iter()
        .map(|k| {
            let structure = work.remove(&k).flatten();
            TableEntry { db: k.0, table: k.1, structure }
        })
        .collect())
}

/// `CREATE ... INDEX name ON t (...)`, `DROP INDEX name ON t`: the table, unchanged.
fn index_on(
    p: &mut Parser<'_>,
    work: &HashMap<(String, String), Option<TableStructure>>,
    known: &HashMap<(String, String), TableStructure>,
) -> Res<Vec<TableEntry>> {
    p.if_not_exists();
    p.if_exists();
    p.ident()?;
    p.expect_kw("ON")?;
    let name = p.table_name()?;
    let t = match work.get(&name) {
        Some(t) => t.clone(),
        None => known.get(&name).cloned(),
    }
    .ok_or_else(|| format!("the structure of {}.{} is not known", name.0, name.1))?;
    Ok(vec![TableEntry { db: name.0, table: name.1, structure: Some(t) }])
}

/// Statements that change no table: views, routines, triggers, events, users, grants, ...; any other is not parsed.
fn non_table(p: &Parser<'_>) -> Res<Vec<TableEntry>> {
    let words: Vec<String> = p.t[..p.t.len().min(p.i + 4)]
        .iter()
        .filter_map(|t| if let Tok::Word(w) = t { Some(w.to_ascii_uppercase()) } else { None })
        .collect();
    let harmless = [
        "VIEW",
        "TRIGGER",
        "PROCEDURE",
        "FUNCTION",
        "EVENT",
        "USER",
        "ROLE",
        "SERVER",
        "DEFINER",
        "ALGORITHM",
        "SQL",
        "AGGREGATE",
        "DATABASE",
        "SCHEMA",
        "LOGFILE",
        "TABLESPACE",
        "PACKAGE",
        "SYNONYM",
        "SEQUENCE",
    ];
    if words.first().is_some_and(|w| w == "GRANT" || w == "REVOKE" || w == "FLUSH" || w == "ANALYZE" || w == "OPTIMIZE")
        || words.iter().skip(1).any(|w| harmless.contains(&w.as_str()))
    {
        Ok(Vec::new())
    } else {
        Err(format!("statement {} is not parsed", words.join(" ")))
    }
}

/// One clause of `ALTER TABLE`.
fn alter_spec(
    p: &mut Parser<'_>,
    t: &mut TableStructure,
    renamed_to: &mut Option<(String, String)>,
    mariadb: bool,
) -> Res<()> {
    let table_charset = t.charset.clone();
    if p.eat_kw("ADD") {
        if p.eat_kw("CONSTRAINT")
            && !(p.is_kw("PRIMARY") || p.is_kw("UNIQUE") || p.is_kw("FOREIGN") || p.is_kw("CHECK"))
        {
            p.ident()?;
        }
        if p.eat_kws(&["PRIMARY", "KEY"]) {
            while !p.is_sym('(') {
                p.ident()?;
            }
            let cols = p.index_columns()?;
            set_primary_key(t, cols)?;
            return p.skip_clause();
        }
        if ["UNIQUE", "KEY", "INDEX", "FULLTEXT", "SPATIAL", "FOREIGN", "CHECK", "PARTITION", "PERIOD", "SYSTEM"]
            .iter()
            .any(|k| p.is_kw(k))
        {
            return p.skip_clause();
        }
        p.eat_kw("COLUMN");
        let if_not_exists = p.if_not_exists();
        if p.eat_sym('(') {
            loop {
                let (col, primary) = column_definition(p, table_charset.as_deref(), mariadb)?;
                add_column(t, col, primary, None, if_not_exists)?;
                if p.eat_sym(')') {
                    return Ok(());
                }
                p.expect_sym(',')?;
            }
        }
        let (col, primary) = column_definition(p, table_charset.as_deref(), mariadb)?;
        let at = placement(p, t)?;
        return add_column(t, col, primary, at, if_not_exists);
    }
    if p.eat_kw("DROP") {
        if p.eat_kws(&["PRIMARY", "KEY"]) {
            t.keys.clear();
            return Ok(());
        }
        if ["INDEX", "KEY", "FOREIGN", "CONSTRAINT", "CHECK", "PARTITION", "PERIOD", "SYSTEM", "UNIQUE"]
            .iter()
            .any(|k| p.is_kw(k))
        {
            return p.skip_clause();
        }
        p.eat_kw("COLUMN");
        let if_exists = p.if_exists();
        let name = p.ident()?;
        let _ = p.eat_kw("RESTRICT") || p.eat_kw("CASCADE");
        match find_column(t, &name) {
            Some(at) => {
                let removed = t.columns.remove(at);
                t.keys.retain(|k| !k.eq_ignore_ascii_case(&removed.name));
                return Ok(());
            }
            None if if_exists => return Ok(()),
            None => return Err(format!("DROP COLUMN {name}: no such column")),
        }
    }
    if p.eat_kw("MODIFY") || p.is_kw("CHANGE") {
        let change = p.eat_kw("CHANGE");
        p.eat_kw("COLUMN");
        let if_exists = p.if_exists();
        let old = if change { Some(p.ident()?) } else { None };
        let (col, primary) = column_definition(p, table_charset.as_deref(), mariadb)?;
        let old = old.unwrap_or_else(|| col.name.clone());
        let Some(at) = find_column(t, &old) else {
            return if if_exists { p.skip_clause() } else { Err(format!("MODIFY/CHANGE {old}: no such column")) };
        };
        let moved = placement(p, t)?;
        let old_name = t.columns[at].name.clone();
        let mut col = col;
        if t.keys.iter().any(|k| k.eq_ignore_ascii_case(&old_name)) {
            col.nullable = false;
        }
        for k in t.keys.iter_mut().filter(|k| k.eq_ignore_ascii_case(&old_name)) {
            *k = col.name.clone();
        }
        match moved {
            None => t.columns[at] = col.clone(),
            Some(to) => {
                t.columns.remove(at);
                let to = if to > at { to - 1 } else { to };
                t.columns.insert(to.min(t.columns.len()), col.clone());
            }
        }
        if primary {
            set_primary_key(t, vec![col.name])?;
        }
        return Ok(());
    }
    if p.eat_kw("RENAME") {
        if p.eat_kw("COLUMN") {
            let old = p.ident()?;
            p.expect_kw("TO")?;
            let new = p.ident()?;
            let at = find_column(t, &old).ok_or_else(|| format!("RENAME COLUMN {old}: no such column"))?;
            let old_name = std::mem::replace(&mut t.columns[at].name, new.clone());
            for k in t.keys.iter_mut().filter(|k| **k == old_name) {
                *k = new.clone();
            }
            return Ok(());
        }
        if p.is_kw("INDEX") || p.is_kw("KEY") {
            return p.skip_clause();
        }
        let _ = p.eat_kw("TO") || p.eat_kw("AS");
        *renamed_to = Some(p.table_name()?);
        return Ok(());
    }
    if p.eat_kw("ALTER") {
        if p.is_kw("INDEX") || p.is_kw("KEY") || p.is_kw("CHECK") || p.is_kw("CONSTRAINT") {
            return p.skip_clause();
        }
        p.eat_kw("COLUMN");
        p.if_exists();
        let name = p.ident()?;
        let at = find_column(t, &name).ok_or_else(|| format!("ALTER COLUMN {name}: no such column"))?;
        if p.eat_kws(&["SET", "DEFAULT"]) {
            t.columns[at].default = Some(p.default_value()?);
        } else if p.eat_kws(&["DROP", "DEFAULT"]) {
            t.columns[at].default = None;
        } else if p.eat_kws(&["SET", "VISIBLE"]) || p.eat_kws(&["SET", "INVISIBLE"]) {
        } else {
            return Err(format!("ALTER COLUMN {name}: {} is not parsed", p.here()));
        }
        return Ok(());
    }
    if p.eat_kw("CONVERT") {
        p.expect_kw("TO")?;
        if !(p.eat_kws(&["CHARACTER", "SET"]) || p.eat_kw("CHARSET")) {
            return Err("CONVERT TO: expected CHARACTER SET".into());
        }
        p.eat_sym('=');
        let cs = p.ident()?.to_ascii_lowercase();
        if cs == "default" {
            return Err("CONVERT TO CHARACTER SET DEFAULT is not parsed".into());
        }
        if p.eat_kw("COLLATE") {
            p.eat_sym('=');
            p.ident()?;
        }
        t.charset = Some(cs.clone());
        for c in t.columns.iter_mut().filter(|c| is_character(&c.data_type)) {
            c.charset = Some(cs.clone());
        }
        return Ok(());
    }
    if p.is_kw("DEFAULT") || p.is_kw("CHARACTER") || p.is_kw("CHARSET") || p.is_kw("COLLATE") || p.is_kw("COMMENT") {
        let mut collation_charset = None;
        p.eat_kw("DEFAULT");
        if p.eat_kws(&["CHARACTER", "SET"]) || p.eat_kw("CHARSET") {
            p.eat_sym('=');
            t.charset = Some(p.ident()?.to_ascii_lowercase());
            if p.eat_kw("COLLATE") {
                p.eat_sym('=');
                p.ident()?;
            }
        } else if p.eat_kw("COLLATE") {
            p.eat_sym('=');
            collation_charset = Some(charset_of_collation(&p.ident()?));
        } else if p.eat_kw("COMMENT") {
            p.eat_sym('=');
            t.comment = Some(p.string()?).filter(|c| !c.is_empty());
        } else {
            return Err(format!("ALTER TABLE: {} is not parsed", p.here()));
        }
        if let Some(cs) = collation_charset {
            t.charset = Some(cs);
        }
        return Ok(());
    }
    // table options `NAME [=] value` and clauses that leave the columns as they are
    let options = [
        "ENGINE",
        "AUTO_INCREMENT",
        "ROW_FORMAT",
        "ALGORITHM",
        "LOCK",
        "KEY_BLOCK_SIZE",
        "STATS_AUTO_RECALC",
        "STATS_PERSISTENT",
        "STATS_SAMPLE_PAGES",
        "PACK_KEYS",
        "CHECKSUM",
        "MAX_ROWS",
        "MIN_ROWS",
        "AVG_ROW_LENGTH",
        "DELAY_KEY_WRITE",
        "INSERT_METHOD",
        "PAGE_CHECKSUM",
        "TRANSACTIONAL",
        "ENCRYPTED",
        "ENCRYPTION_KEY_ID",
        "PAGE_COMPRESSED",
        "PAGE_COMPRESSION_LEVEL",
    ];
    if options.iter().any(|k| p.is_kw(k)) {
        p.i += 1;
        p.eat_sym('=');
        p.i += 1;
        return Ok(());
    }
    let skip = [
        "FORCE",
        "ORDER",
        "ENABLE",
        "DISABLE",
        "PARTITION",
        "REMOVE",
        "COALESCE",
        "REORGANIZE",
        "EXCHANGE",
        "ANALYZE",
        "CHECK",
        "OPTIMIZE",
        "REBUILD",
        "REPAIR",
        "TRUNCATE",
        "DISCARD",
        "IMPORT",
        "WAIT",
        "NOWAIT",
        "TABLESPACE",
        "DATA",
        "INDEX",
        "UNION",
        "WITH",
        "WITHOUT",
        "SEQUENCE",
        "IETF_QUOTES",
    ];
    if skip.iter().any(|k| p.is_kw(k)) {
        return p.skip_clause();
    }
    Err(format!("ALTER TABLE clause {} is not parsed", p.here()))
}

fn add_column(
    t: &mut TableStructure,
    col: ColumnInfo,
    primary: bool,
    at: Option<usize>,
    if_not_exists: bool,
) -> Res<()> {
    if find_column(t, &col.name).is_some() {
        return if if_not_exists { Ok(()) } else { Err(format!("ADD COLUMN {}: it exists", col.name)) };
    }
    let name = col.name.clone();
    match at {
        Some(i) => t.columns.insert(i.min(t.columns.len()), col),
        None => t.columns.push(col),
    }
    if primary {
        set_primary_key(t, vec![name])?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    type Known = HashMap<(String, String), TableStructure>;

    fn run(known: &mut Known, sql: &str) -> Vec<TableEntry> {
        match apply(sql, "d", known, true) {
            Outcome::Applied(entries) => {
                for e in &entries {
                    let k = (e.db.clone(), e.table.clone());
                    match &e.structure {
                        Some(t) => known.insert(k, t.clone()),
                        None => known.remove(&k),
                    };
                }
                entries
            }
            Outcome::Unsupported(why) => panic!("{sql}: {why}"),
        }
    }

    fn table<'a>(known: &'a Known, name: &str) -> &'a TableStructure {
        known.get(&("d".to_string(), name.to_string())).expect(name)
    }

    fn names(t: &TableStructure) -> Vec<&str> {
        t.columns.iter().map(|c| c.name.as_str()).collect()
    }

    #[test]
    fn create_table_columns_and_types() {
        let mut k = Known::new();
        run(
            &mut k,
            "/* comment */ CREATE TABLE IF NOT EXISTS `d`.`t 1` (\n  id INT UNSIGNED NOT NULL AUTO_INCREMENT, -- line\n \
             `Name` varchar(20) CHARACTER SET latin1 COLLATE latin1_bin DEFAULT 'it''s', \
             amount DECIMAL(10,2) DEFAULT -1.5, d2 NUMERIC, ts TIMESTAMP(3) NULL DEFAULT CURRENT_TIMESTAMP(3) ON UPDATE \
             CURRENT_TIMESTAMP(3), e ENUM('a','b''c') NOT NULL, b BOOLEAN, bits BIT, c CHAR, tx TEXT COMMENT 'note', \
             bin BINARY(4), vb VARCHAR(8) CHARACTER SET binary, js JSON, g INT AS (id + 1) VIRTUAL, \
             PRIMARY KEY (id), UNIQUE KEY uk (`Name`), KEY idx (amount), CONSTRAINT fk FOREIGN KEY (id) REFERENCES o (id)\n\
             ) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci COMMENT='tbl'",
        );
        let t = table(&k, "t 1");
        assert_eq!(names(t), ["id", "Name", "amount", "d2", "ts", "e", "b", "bits", "c", "tx", "bin", "vb", "js", "g"]);
        assert_eq!(t.keys, ["id"]);
        assert_eq!(t.charset.as_deref(), Some("utf8mb4"));
        assert_eq!(t.comment.as_deref(), Some("tbl"));
        let c = |n: &str| t.columns.iter().find(|c| c.name == n).unwrap();
        assert_eq!((c("id").data_type.as_str(), c("id").column_type.as_str()), ("int", "int unsigned"));
        assert!(!c("id").nullable);
        assert_eq!(c("id").extra, "auto_increment");
        assert_eq!(c("Name").column_type, "varchar(20)");
        assert_eq!(c("Name").charset.as_deref(), Some("latin1"));
        assert_eq!(c("Name").default.as_deref(), Some("'it''s'"));
        assert_eq!((c("amount").precision, c("amount").scale), (Some(10), Some(2)));
        assert_eq!(c("amount").default.as_deref(), Some("-1.5"));
        assert_eq!(c("d2").column_type, "decimal(10,0)");
        assert_eq!((c("ts").data_type.as_str(), c("ts").datetime_precision), ("timestamp", Some(3)));
        assert_eq!(c("ts").default.as_deref(), Some("CURRENT_TIMESTAMP(3)"));
        assert_eq!(c("e").column_type, "enum('a','b''c')");
        assert_eq!(crate::types::paren_list(&c("e").column_type), ["a", "b'c"]);
        assert_eq!(c("e").charset.as_deref(), Some("utf8mb4"));
        assert_eq!(c("b").column_type, "tinyint(1)");
        assert_eq!(c("bits").column_type, "bit(1)");
        assert_eq!(c("c").column_type, "char(1)");
        assert_eq!(c("tx").comment, "note");
        assert_eq!(c("tx").charset.as_deref(), Some("utf8mb4"));
        assert_eq!(c("bin").charset, None);
        assert_eq!(c("vb").data_type, "varbinary");
        assert_eq!(c("js").data_type, "longtext");
        assert_eq!(c("g").extra, "VIRTUAL GENERATED");
    }

    #[test]
    fn int_display_width_as_written() {
        let mut k = Known::new();
        run(&mut k, "create table t (a int, b int(11), c bigint(20) unsigned zerofill, d smallint)");
        let t = table(&k, "t");
        let types: Vec<&str> = t.columns.iter().map(|c| c.column_type.as_str()).collect();
        assert_eq!(types, ["int", "int(11)", "bigint(20) unsigned zerofill", "smallint"]);
        assert!(t.columns.iter().all(|c| c.nullable));
        assert_eq!(t.charset, None, "left to the database's");
    }

    /// Aliases keep the name Debezium's parser reports (checked side by side in mysql_cdc_differential); BOOLEAN
    /// and REAL also change the Connect type, FLOAT(p) the length.
    #[test]
    fn declared_type_names() {
        use crate::types::Kind;
        let mut k = Known::new();
        run(
            &mut k,
            "create table t (a INTEGER, b BOOLEAN default TRUE, c numeric(6,2), d REAL, e double precision, \
             f float(30), g float(10), h nchar(2), i int, j tinyint(1))",
        );
        let t = table(&k, "t");
        let c = |n: &str| t.columns.iter().find(|c| c.name == n).unwrap();
        let declared: Vec<Option<&str>> = t.columns.iter().map(|c| c.declared_type.as_deref()).collect();
        assert_eq!(
            declared,
            [
                Some("INTEGER"),
                Some("BOOLEAN"),
                Some("NUMERIC"),
                Some("REAL"),
                Some("DOUBLE PRECISION"),
                Some("FLOAT"),
                Some("FLOAT"),
                Some("NCHAR"),
                None,
                None
            ]
        );
        assert_eq!((c("b").kind(), c("j").kind()), (Kind::Bool, Kind::Int16));
        assert_eq!((c("d").kind(), c("f").kind(), c("g").kind()), (Kind::Float32, Kind::Float64, Kind::Float32));
        assert_eq!((c("f").declared_length, c("g").declared_length), (Some(30), Some(10)));
        assert_eq!(c("a").kind(), Kind::Int32);
    }

    #[test]
    fn alter_table_clauses() {
        let mut k = Known::new();
        run(&mut k, "CREATE TABLE t (id INT, a INT NOT NULL, b VARCHAR(5)) CHARSET latin1");
        run(
            &mut k,
            "ALTER TABLE t ADD COLUMN c INT DEFAULT 1 FIRST, ADD d DATE AFTER a, DROP COLUMN b, ADD PRIMARY KEY (id)",
        );
        assert_eq!(names(table(&k, "t")), ["c", "id", "a", "d"]);
        assert_eq!(table(&k, "t").keys, ["id"]);
        assert!(!table(&k, "t").columns[1].nullable);
        run(&mut k, "alter table `t` modify a BIGINT NULL after d, change column id ID2 int, rename column c to cc");
        let t = table(&k, "t");
        assert_eq!(names(t), ["cc", "ID2", "d", "a"]);
        assert_eq!(t.keys, ["ID2"]);
        assert!(!t.columns[1].nullable, "still in the primary key");
        assert_eq!(t.columns[3].data_type, "bigint");
        run(
            &mut k,
            "ALTER TABLE t ALTER COLUMN cc SET DEFAULT 9, ALTER d DROP DEFAULT, ENGINE=InnoDB ALGORITHM=INPLACE",
        );
        assert_eq!(table(&k, "t").columns[0].default.as_deref(), Some("9"));
        run(&mut k, "ALTER TABLE t ADD (x VARCHAR(3), y TEXT), DROP PRIMARY KEY, ADD INDEX i (x), DROP INDEX i");
        let t = table(&k, "t");
        assert!(t.keys.is_empty());
        assert_eq!(t.columns[4].charset.as_deref(), Some("latin1"), "the table's character set");
        run(&mut k, "ALTER TABLE t CONVERT TO CHARACTER SET utf8mb4 COLLATE utf8mb4_bin, COMMENT 'c'");
        assert_eq!(table(&k, "t").columns[4].charset.as_deref(), Some("utf8mb4"));
        let e = run(&mut k, "ALTER TABLE t RENAME TO d.u");
        assert_eq!(e.len(), 2);
        assert_eq!(e[0].structure, None);
        assert_eq!(e[1].structure.as_ref().map(|t| t.table.as_str()), Some("u"));
        assert!(!k.contains_key(&("d".into(), "t".into())));
        assert_eq!(table(&k, "u").table, "u");
    }

    #[test]
    fn rename_drop_like_and_databases() {
        let mut k = Known::new();
        run(&mut k, "CREATE TABLE a (id INT PRIMARY KEY)");
        run(&mut k, "CREATE TABLE b LIKE a");
        run(&mut k, "CREATE TABLE IF NOT EXISTS b (x INT)");
        assert_eq!(names(table(&k, "b")), ["id"]);
        // a swap through a temporary name, in one statement
        run(&mut k, "ALTER TABLE b ADD z INT");
        run(&mut k, "RENAME TABLE a TO tmp, b TO a, tmp TO b");
        assert_eq!(names(table(&k, "a")), ["id", "z"]);
        assert_eq!(names(table(&k, "b")), ["id"]);
        let e = run(&mut k, "DROP TABLE IF EXISTS a, `d`.b /* generated by server */");
        assert_eq!(e.len(), 2);
        assert!(k.is_empty());
        run(&mut k, "CREATE TABLE x.t (id INT)");
        run(&mut k, "CREATE TABLE y (id INT)");
        let e = run(&mut k, "DROP DATABASE IF EXISTS x");
        assert_eq!(e.len(), 1);
        assert_eq!(k.len(), 1);
        assert!(run(&mut k, "CREATE DATABASE z CHARACTER SET utf8mb4").is_empty());
        assert!(run(&mut k, "TRUNCATE TABLE y").is_empty());
        assert!(run(&mut k, "CREATE DEFINER=`root`@`%` VIEW v AS SELECT 1").is_empty());
        assert!(run(&mut k, "CREATE OR REPLACE SEQUENCE s START WITH 10").is_empty());
        assert!(run(&mut k, "DROP PROCEDURE IF EXISTS p").is_empty());
        assert_eq!(run(&mut k, "CREATE UNIQUE INDEX i ON y (id)").len(), 1);
        assert!(run(&mut k, "/*!40101 DROP TEMPORARY TABLE IF EXISTS tt */").is_empty());
    }

    #[test]
    fn unsupported_falls_back() {
        let mut k = Known::new();
        run(&mut k, "CREATE TABLE t (id INT)");
        let unsupported = |sql: &str| matches!(apply(sql, "d", &k, true), Outcome::Unsupported(_));
        assert!(unsupported("ALTER TABLE unknown ADD c INT"), "structure not known");
        assert!(unsupported("CREATE TABLE c AS SELECT * FROM t"));
        assert!(unsupported("CREATE TABLE c (id INT) SELECT 1 AS id"));
        assert!(unsupported("CREATE TABLE c (id UUID)"));
        assert!(unsupported("ALTER TABLE t ADD c INT FROBNICATE"));
        assert!(unsupported("ALTER TABLE t DROP COLUMN nope"));
        assert!(unsupported("CREATE TABLE c LIKE unknown"));
        assert!(unsupported("FROBNICATE TABLE t"));
    }

    #[test]
    fn executable_comments_and_quotes() {
        let mut k = Known::new();
        run(&mut k, "CREATE TABLE `we``ird` (`a b` INT /*!50000 NOT NULL */, \"x\" INT) /*!40101 CHARSET=latin1 */");
        let t = table(&k, "we`ird");
        assert_eq!(names(t), ["a b", "\"x\""].map(|s| s.trim_matches('"')));
        assert!(!t.columns[0].nullable);
        assert_eq!(t.charset.as_deref(), Some("latin1"));
    }
}
