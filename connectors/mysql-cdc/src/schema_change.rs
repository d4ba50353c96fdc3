//! Debezium's schema change events (`include.schema.changes`, topic `<topic.prefix>`): key
//! `<package>.SchemaChangeKey {databaseName}`, value `<package>.SchemaChangeValue {source, ts_ms, databaseName,
//! schemaName, ddl, tableChanges}` with each table's structure as `io.debezium.connector.schema.Change/Table/Column`
//! (Debezium's `ConnectTableChangeSerializer`). Also the table structure Sluice keeps in its schema history, and the
//! names of the tables a DDL statement touches.

use std::sync::{Arc, OnceLock};

use serde::{Deserialize, Serialize};
use sluice_connect_api::record::{Field, Schema, SchemaType, Value};

use crate::config::Flavor;
use crate::envelope;
use crate::types::{ColumnInfo, paren_list};

/// A table's structure at one binlog position: what a row event is decoded with.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct TableStructure {
    pub db: String,
    pub table: String,
    pub columns: Vec<ColumnInfo>,
    /// Primary key column names, in key order.
    pub keys: Vec<String>,
    /// The table's default character set (`utf8mb4`).
    pub charset: Option<String>,
    pub comment: Option<String>,
}

/// What a DDL statement did to a table (`tableChanges[].type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChangeType {
    Create,
    Alter,
    Drop,
}

impl ChangeType {
    fn name(self) -> &'static str {
        match self {
            ChangeType::Create => "CREATE",
            ChangeType::Alter => "ALTER",
            ChangeType::Drop => "DROP",
        }
    }
}

fn prim(t: SchemaType, optional: bool) -> Arc<Schema> {
    Arc::new(Schema::primitive(t, optional))
}

fn structure(name: &str, optional: bool, version: Option<i32>, fields: Vec<(&str, Arc<Schema>)>) -> Schema {
    let mut s = Schema::primitive(SchemaType::Struct, optional);
    s.name = Some(name.to_string());
    s.version = version;
    s.fields = fields
        .into_iter()
        .enumerate()
        .map(|(index, (n, schema))| Field { name: n.to_string(), index, schema })
        .collect();
    s
}

fn array(items: Arc<Schema>, optional: bool) -> Arc<Schema> {
    let mut s = Schema::primitive(SchemaType::Array, optional);
    s.value_schema = Some(items);
    Arc::new(s)
}

/// `io.debezium.connector.schema.Change` (with `Table` and `Column`), as the schema change value carries it.
fn change_schema() -> Arc<Schema> {
    static S: OnceLock<Arc<Schema>> = OnceLock::new();
    S.get_or_init(|| {
        use SchemaType::*;
        let strings = || array(prim(String, false), true);
        let column = structure(
            "io.debezium.connector.schema.Column",
            false,
            Some(1),
            vec![
                ("name", prim(String, false)),
                ("jdbcType", prim(Int32, false)),
                ("nativeType", prim(Int32, true)),
                ("typeName", prim(String, false)),
                ("typeExpression", prim(String, true)),
                ("charsetName", prim(String, true)),
                ("length", prim(Int32, true)),
                ("scale", prim(Int32, true)),
                ("position", prim(Int32, false)),
                ("optional", prim(Boolean, true)),
                ("autoIncremented", prim(Boolean, true)),
                ("generated", prim(Boolean, true)),
                ("comment", prim(String, true)),
                ("defaultValueExpression", prim(String, true)),
                ("enumValues", strings()),
            ],
        );
        let table = structure(
            "io.debezium.connector.schema.Table",
            true,
            Some(1),
            vec![
                ("defaultCharsetName", prim(String, true)),
                ("primaryKeyColumnNames", strings()),
                ("columns", array(Arc::new(column), false)),
                ("comment", prim(String, true)),
            ],
        );
        Arc::new(structure(
            "io.debezium.connector.schema.Change",
            false,
            Some(1),
            vec![("type", prim(String, false)), ("id", prim(String, false)), ("table", Arc::new(table))],
        ))
    })
    .clone()
}

/// The key schema `<package>.SchemaChangeKey {databaseName}`.
pub fn key_schema(flavor: Flavor) -> Arc<Schema> {
    static MYSQL: OnceLock<Arc<Schema>> = OnceLock::new();
    static MARIADB: OnceLock<Arc<Schema>> = OnceLock::new();
    let cell = if flavor == Flavor::MySql { &MYSQL } else { &MARIADB };
    cell.get_or_init(|| {
        Arc::new(structure(
            &format!("{}.SchemaChangeKey", flavor.package()),
            false,
            Some(1),
            vec![("databaseName", prim(SchemaType::String, false))],
        ))
    })
    .clone()
}

/// The value schema `<package>.SchemaChangeValue`.
pub fn value_schema(flavor: Flavor) -> Arc<Schema> {
    static MYSQL: OnceLock<Arc<Schema>> = OnceLock::new();
    static MARIADB: OnceLock<Arc<Schema>> = OnceLock::new();
    let cell = if flavor == Flavor::MySql { &MYSQL } else { &MARIADB };
    cell.get_or_init(|| {
        use SchemaType::*;
        Arc::new(structure(
            &format!("{}.SchemaChangeValue", flavor.package()),
            false,
            Some(1),
            vec![
                ("source", envelope::source_schema(flavor)),
                ("ts_ms", prim(Int64, false)),
                ("databaseName", prim(String, true)),
                ("schemaName", prim(String, true)),
                ("ddl", prim(String, true)),
                ("tableChanges", array(change_schema(), false)),
            ],
        ))
    })
    .clone()
}

/// The key value.
pub fn key(database: &str) -> Value {
    Value::Struct(vec![Value::String(database.to_string())])
}

/// The value: `source` already built, processing time now.
pub fn value(
    source: Value,
    database: &str,
    ddl: &str,
    changes: &[(ChangeType, String, String, Option<&TableStructure>)],
) -> Value {
    let changes = changes
        .iter()
        .map(|(t, db, table, structure)| {
            Value::Struct(vec![
                Value::String(t.name().to_string()),
                Value::String(format!("\"{db}\".\"{table}\"")),
                structure.map(table_value).unwrap_or(Value::Null),
            ])
        })
        .collect();
    Value::Struct(vec![
        source,
        Value::Int64(envelope::now_ns() / 1_000_000),
        Value::String(database.to_string()),
        Value::Null,
        Value::String(ddl.to_string()),
        Value::Array(changes),
    ])
}

fn opt_string(v: Option<&str>) -> Value {
    v.map(|s| Value::String(s.to_string())).unwrap_or(Value::Null)
}

fn table_value(t: &TableStructure) -> Value {
    Value::Struct(vec![
        opt_string(t.charset.as_deref()),
        Value::Array(t.keys.iter().map(|k| Value::String(k.clone())).collect()),
        Value::Array(t.columns.iter().enumerate().map(|(i, c)| column_value(c, i as i32 + 1)).collect()),
        opt_string(t.comment.as_deref().filter(|c| !c.is_empty())),
    ])
}

/// `java.sql.Types` of a column, as Debezium's MySQL type resolver picks it.
fn jdbc_type(c: &ColumnInfo) -> i32 {
    match c.declared_type.as_deref() {
        Some("BOOL" | "BOOLEAN") => return 16,
        Some("NUMERIC") => return 2,
        Some("REAL") => return 7,
        Some("FLOAT") => return 6,
        Some("NCHAR") => return -15,
        Some("NVARCHAR") => return -9,
        _ => {}
    }
    match c.data_type.as_str() {
        "bit" => -7,
        "tinyint" | "smallint" => 5,
        "mediumint" | "int" | "integer" | "year" => 4,
        "bigint" => -5,
        "float" => 6,
        "double" | "real" => 8,
        "decimal" | "numeric" => 3,
        "char" | "enum" | "set" => 1,
        "binary" => -2,
        "varbinary" => -3,
        "tinyblob" | "blob" | "mediumblob" | "longblob" => 2004,
        "date" => 91,
        "time" => 92,
        "datetime" => 93,
        "timestamp" => 2014,
        "bool" | "boolean" => 16,
        "json" | "geometry" | "point" | "linestring" | "polygon" => 1111,
        _ => 12,
    }
}

/// The first number in the parentheses of `COLUMN_TYPE` (`varchar(20)` → 20, `decimal(10,2)` → 10).
fn type_length(column_type: &str) -> Option<i32> {
    let start = column_type.find('(')?;
    let rest = &column_type[start + 1..];
    let end = rest.find([',', ')'])?;
    rest[..end].trim().parse().ok()
}

fn column_value(c: &ColumnInfo, position: i32) -> Value {
    let mut type_name = c.declared_type.clone().unwrap_or_else(|| c.data_type.to_ascii_uppercase());
    if c.column_type.to_ascii_lowercase().contains("unsigned") {
        type_name.push_str(" UNSIGNED");
    }
    let enum_values = matches!(c.data_type.as_str(), "enum" | "set").then(|| paren_list(&c.column_type));
    let length = match c.data_type.as_str() {
        // Debezium's DDL parser: an ENUM holds one value, a SET at most all of them joined with commas
        "enum" => Some(1),
        "set" => enum_values.as_ref().map(|v| v.iter().map(|s| s.len() as i32).sum::<i32>() + v.len() as i32 - 1),
        _ if c.declared_boolean() => None,
        _ if c.declared_length.is_some() => c.declared_length.map(|l| l as i32),
        _ => type_length(&c.column_type),
    };
    // Debezium's parser names the national character set `utf8` (the server says utf8mb3)
    let charset = match c.declared_type.as_deref() {
        Some("NCHAR" | "NVARCHAR") => Some("utf8"),
        _ => c.charset.as_deref(),
    };
    let scale = match c.data_type.as_str() {
        "decimal" | "numeric" => c.scale.map(|s| s as i32),
        _ => None,
    };
    let extra = c.extra.to_ascii_lowercase();
    let auto = extra.contains("auto_increment");
    let generated = auto || extra.contains("generated") || extra.contains("virtual") || extra.contains("persistent");
    Value::Struct(vec![
        Value::String(c.name.clone()),
        Value::Int32(jdbc_type(c)),
        Value::Null,
        Value::String(type_name.clone()),
        Value::String(type_name),
        opt_string(charset),
        length.map(Value::Int32).unwrap_or(Value::Null),
        scale.map(Value::Int32).unwrap_or(Value::Null),
        Value::Int32(position),
        Value::Boolean(c.nullable),
        Value::Boolean(auto),
        Value::Boolean(generated),
        opt_string(Some(c.comment.as_str()).filter(|s| !s.is_empty())),
        default_expression(c.default.as_deref()),
        enum_values
            .map(|v| Value::Array(v.into_iter().map(|s| Value::String(format!("'{s}'"))).collect()))
            .unwrap_or(Value::Null),
    ])
}

/// `COLUMN_DEFAULT` as Debezium's parser keeps it: string literals unquoted, `NULL` as no default.
fn default_expression(raw: Option<&str>) -> Value {
    let Some(raw) = raw.map(str::trim) else { return Value::Null };
    // a hex literal (`X'01ff'`, as MariaDB shows a BLOB's default) is none to Debezium (compared side by side)
    if raw.eq_ignore_ascii_case("null") || raw.starts_with("X'") || raw.starts_with("x'") {
        return Value::Null;
    }
    if raw.len() >= 2 && raw.starts_with('\'') && raw.ends_with('\'') {
        return Value::String(raw[1..raw.len() - 1].replace("''", "'").replace("\\'", "'"));
    }
    Value::String(raw.to_string())
}

/// An identifier of a DDL statement, unquoted (`` `a` ``, `"a"`, `a`).
fn unquote(name: &str) -> String {
    let name = name.trim();
    let stripped = name.strip_prefix('`').and_then(|s| s.strip_suffix('`')).unwrap_or(name);
    stripped.replace("``", "`")
}

/// `[db.]table` → (db, table).
fn qualified(name: &str, default_db: &str) -> (String, String) {
    // split on the first dot outside backquotes
    let mut in_quote = false;
    for (i, ch) in name.char_indices() {
        match ch {
            '`' => in_quote = !in_quote,
            '.' if !in_quote => return (unquote(&name[..i]), unquote(&name[i + 1..])),
            _ => {}
        }
    }
    (default_db.to_string(), unquote(name))
}

/// The statement's words, skipping comments; identifiers keep their backquotes (which may hold spaces).
fn words(sql: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut chars = sql.chars().peekable();
    let mut quote = false;
    while let Some(c) = chars.next() {
        if quote {
            cur.push(c);
            if c == '`' {
                quote = false;
            }
            continue;
        }
        match c {
            '`' => {
                quote = true;
                cur.push(c);
            }
            '/' if chars.peek() == Some(&'*') => {
                chars.next();
                let mut prev = ' ';
                for n in chars.by_ref() {
                    if prev == '*' && n == '/' {
                        break;
                    }
                    prev = n;
                }
            }
            c if c.is_whitespace() || c == '(' || c == ',' || c == ';' => {
                if !cur.is_empty() {
                    out.push(std::mem::take(&mut cur));
                }
                if c == '(' {
                    out.push("(".into());
                }
            }
            c => cur.push(c),
        }
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    out
}

/// The tables a DDL statement creates, alters or drops (`RENAME` gives the old name dropped and the new one
/// created); empty for statements on databases, views, routines, ...
pub fn ddl_tables(sql: &str, default_db: &str) -> Vec<(ChangeType, String, String)> {
    let w = words(sql);
    let up: Vec<String> = w.iter().map(|s| s.to_ascii_uppercase()).collect();
    let is = |i: usize, k: &str| up.get(i).map(|s| s == k).unwrap_or(false);
    let mut i = 1;
    // skip modifiers: CREATE OR REPLACE TEMPORARY TABLE, DROP TEMPORARY TABLE, CREATE UNIQUE/FULLTEXT INDEX, ...
    let skip = ["OR", "REPLACE", "TEMPORARY", "ONLINE", "OFFLINE", "IGNORE", "UNIQUE", "FULLTEXT", "SPATIAL"];
    while up.get(i).map(|s| skip.contains(&s.as_str())).unwrap_or(false) {
        i += 1;
    }
    let after_if = |mut j: usize| {
        if is(j, "IF") {
            j += if is(j + 1, "NOT") { 3 } else { 2 };
        }
        j
    };
    let name_list = |mut j: usize, kind: ChangeType| {
        let mut out = Vec::new();
        while let Some(n) = w.get(j) {
            let u = up[j].as_str();
            if n == "(" || ["RESTRICT", "CASCADE", "WAIT", "NOWAIT"].contains(&u) {
                break;
            }
            let (db, t) = qualified(n, default_db);
            out.push((kind, db, t));
            j += 1;
        }
        out
    };
    match (up.first().map(String::as_str), up.get(i).map(String::as_str)) {
        (Some("CREATE"), Some("TABLE")) => {
            let j = after_if(i + 1);
            w.get(j)
                .map(|n| qualified(n, default_db))
                .map(|(d, t)| vec![(ChangeType::Create, d, t)])
                .unwrap_or_default()
        }
        (Some("ALTER"), Some("TABLE")) => {
            let j = after_if(i + 1);
            let Some(n) = w.get(j) else { return Vec::new() };
            let (db, t) = qualified(n, default_db);
            // ALTER TABLE a RENAME [TO|AS] b
            if let Some(r) = up.iter().position(|s| s == "RENAME")
                && !is(r + 1, "COLUMN")
                && !is(r + 1, "INDEX")
                && !is(r + 1, "KEY")
            {
                let k = if is(r + 1, "TO") || is(r + 1, "AS") { r + 2 } else { r + 1 };
                if let Some(new) = w.get(k) {
                    let (nd, nt) = qualified(new, default_db);
                    return vec![(ChangeType::Drop, db, t), (ChangeType::Create, nd, nt)];
                }
            }
            vec![(ChangeType::Alter, db, t)]
        }
        (Some("DROP"), Some("TABLE")) => name_list(after_if(i + 1), ChangeType::Drop),
        (Some("RENAME"), Some("TABLE")) => {
            let mut out = Vec::new();
            let mut j = i + 1;
            while let (Some(a), true, Some(b)) = (w.get(j), is(j + 1, "TO"), w.get(j + 2)) {
                let (ad, at) = qualified(a, default_db);
                let (bd, bt) = qualified(b, default_db);
                out.push((ChangeType::Drop, ad, at));
                out.push((ChangeType::Create, bd, bt));
                j += 3;
            }
            out
        }
        (Some("CREATE"), Some("INDEX")) | (Some("DROP"), Some("INDEX")) => {
            match up.iter().position(|s| s == "ON").and_then(|on| w.get(on + 1)) {
                Some(n) => {
                    let (db, t) = qualified(n, default_db);
                    vec![(ChangeType::Alter, db, t)]
                }
                None => Vec::new(),
            }
        }
        _ => Vec::new(),
    }
}

/// The database a statement is about, for the key: the first table's, else `CREATE/DROP/ALTER DATABASE x`'s, else
/// the session's current database.
pub fn ddl_database(sql: &str, default_db: &str, tables: &[(ChangeType, String, String)]) -> String {
    if let Some((_, db, _)) = tables.first() {
        return db.clone();
    }
    let w = words(sql);
    let up: Vec<String> = w.iter().map(|s| s.to_ascii_uppercase()).collect();
    if matches!(up.first().map(String::as_str), Some("CREATE" | "DROP" | "ALTER"))
        && matches!(up.get(1).map(String::as_str), Some("DATABASE" | "SCHEMA"))
    {
        let mut j = 2;
        if up.get(j).map(|s| s == "IF").unwrap_or(false) {
            j += if up.get(j + 1).map(|s| s == "NOT").unwrap_or(false) { 3 } else { 2 };
        }
        if let Some(n) = w.get(j) {
            return unquote(n);
        }
    }
    default_db.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_of_ddl() {
        use ChangeType::*;
        let t = |sql: &str| ddl_tables(sql, "d");
        assert_eq!(t("ALTER TABLE orders ADD COLUMN qty INT"), vec![(Alter, "d".into(), "orders".into())]);
        assert_eq!(t("create table if not exists `x`.`a b` (k int)"), vec![(Create, "x".into(), "a b".into())]);
        assert_eq!(t("CREATE TABLE later(k VARCHAR(10) PRIMARY KEY)"), vec![(Create, "d".into(), "later".into())]);
        assert_eq!(
            t("DROP TABLE IF EXISTS a, `e`.b /* generated by server */"),
            vec![(Drop, "d".into(), "a".into()), (Drop, "e".into(), "b".into())]
        );
        assert_eq!(t("RENAME TABLE a TO b"), vec![(Drop, "d".into(), "a".into()), (Create, "d".into(), "b".into())]);
        assert_eq!(t("CREATE UNIQUE INDEX i ON t (a)"), vec![(Alter, "d".into(), "t".into())]);
        assert_eq!(t("ALTER TABLE t RENAME COLUMN a TO b"), vec![(Alter, "d".into(), "t".into())]);
        assert!(t("CREATE DATABASE z").is_empty());
        assert_eq!(ddl_database("CREATE DATABASE IF NOT EXISTS `z`", "d", &[]), "z");
    }

    #[test]
    fn column_description() {
        let c = ColumnInfo {
            name: "st".into(),
            data_type: "set".into(),
            column_type: "set('a','b','c')".into(),
            nullable: true,
            charset: Some("utf8mb4".into()),
            ..Default::default()
        };
        let Value::Struct(v) = column_value(&c, 20) else { panic!() };
        assert_eq!(v[3], Value::String("SET".into()));
        assert_eq!(v[6], Value::Int32(5));
        let d = ColumnInfo {
            name: "vc".into(),
            data_type: "varchar".into(),
            column_type: "varchar(20)".into(),
            default: Some("'dflt'".into()),
            ..Default::default()
        };
        let Value::Struct(v) = column_value(&d, 1) else { panic!() };
        assert_eq!(v[6], Value::Int32(20));
        assert_eq!(v[13], Value::String("dflt".into()));
        assert_eq!(default_expression(Some("NULL")), Value::Null);
    }
}
