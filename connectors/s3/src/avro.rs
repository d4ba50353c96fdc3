//! Avro object container files as Confluent's `AvroFormat` writes them: the file's Avro schema is derived from the
//! Connect schema of the file's first record as Confluent's `AvroData.fromConnectSchema` does, records are encoded
//! in Avro's binary encoding and grouped into blocks (`avro.codec`: null, deflate, snappy).
//!
//! Facts followed: confluentinc/schema-registry `avro-data/.../AvroData.java` (`fromConnectSchema`,
//! `addAvroRecordField`, `defaultValueFromConnect`): structs become records named after the Connect schema name
//! (namespace = the part before the last dot) or `io.confluent.connect.avro.ConnectDefault`; optional schemas
//! become unions `["null", T]` (`[T, "null"]` when the schema has a default) and optional fields default to null;
//! INT8/INT16 are `int` with `connect.type`; maps with non-optional string keys are Avro maps, other maps arrays of
//! `MapEntry` records; Decimal is `bytes` with `logicalType` decimal, `scale` and `precision`
//! (`connect.decimal.precision`, default 64); Date `int`/`date`, Time `int`/`time-millis`, Timestamp
//! `long`/`timestamp-millis`; with `connect.meta.data` (default true) `connect.doc`, `connect.version`,
//! `connect.parameters`, `connect.default`, `connect.name` are kept as properties. Apache Avro 1.11 specification
//! ("Object Container Files", "Binary Encoding"): magic `Obj\x01`, metadata map (`avro.schema`, `avro.codec`),
//! 16-byte sync marker, blocks of (count, size, data, sync); deflate = raw RFC 1951, snappy = raw snappy + CRC-32
//! (big-endian) of the uncompressed block. Java's `DataFileWriter` closes a block at 64,000 bytes.
//!
//! The sync marker is derived from the object key (Java draws it at random): a replay after a crash rewrites the
//! object with the same bytes, which keeps Sluice's exactly-once promise byte for byte.

use std::collections::HashSet;
use std::io::Write;

use sluice_connect_api::record::{Schema, SchemaType, Value};
use sluice_connect_api::values::{DATE_LOGICAL, DECIMAL_LOGICAL, TIME_LOGICAL, TIMESTAMP_LOGICAL};

const NAMESPACE: &str = "io.confluent.connect.avro";
const DEFAULT_NAME: &str = "ConnectDefault";
/// Java's `DataFileConstants.DEFAULT_SYNC_INTERVAL`: a block is closed once it holds this many bytes.
const BLOCK_BYTES: usize = 64_000;

/// `avro.codec`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum AvroCodec {
    Null,
    Deflate,
    Snappy,
}

impl AvroCodec {
    pub fn name(self) -> &'static str {
        match self {
            AvroCodec::Null => "null",
            AvroCodec::Deflate => "deflate",
            AvroCodec::Snappy => "snappy",
        }
    }
}

fn quote(s: &str) -> String {
    serde_json::to_string(s).unwrap_or_else(|_| "\"\"".into())
}

/// Avro's name rule: `[A-Za-z_][A-Za-z0-9_]*`.
fn valid_name(n: &str) -> bool {
    let mut chars = n.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// Names already defined in the schema being written (Avro forbids redefinition: later uses are references).
struct SchemaWriter {
    meta: bool,
    defined: HashSet<String>,
    unnamed: usize,
}

impl SchemaWriter {
    fn record_name(&mut self, schema: &Schema) -> (Option<String>, String) {
        match &schema.name {
            Some(full) => match full.rsplit_once('.') {
                Some((ns, n)) => (Some(ns.to_string()), n.to_string()),
                None => (None, full.clone()),
            },
            None => {
                // Unnamed structs: ConnectDefault, then ConnectDefault2, ... (a name may not be defined twice).
                self.unnamed += 1;
                let n = if self.unnamed == 1 {
                    DEFAULT_NAME.to_string()
                } else {
                    format!("{DEFAULT_NAME}{}", self.unnamed)
                };
                (Some(NAMESPACE.to_string()), n)
            }
        }
    }

    /// `fromConnectSchema(schema, ctx, ignoreOptional)`.
    fn schema(&mut self, schema: &Schema, ignore_optional: bool) -> Result<String, String> {
        let mut props: Vec<(String, String)> = Vec::new();
        let mut connect_type = None;
        let base = match schema.schema_type {
            SchemaType::Int8 => {
                connect_type = Some("int8");
                "\"int\"".to_string()
            }
            SchemaType::Int16 => {
                connect_type = Some("int16");
                "\"int\"".to_string()
            }
            SchemaType::Int32 => "\"int\"".to_string(),
            SchemaType::Int64 => "\"long\"".to_string(),
            SchemaType::Float32 => "\"float\"".to_string(),
            SchemaType::Float64 => "\"double\"".to_string(),
            SchemaType::Boolean => "\"boolean\"".to_string(),
            SchemaType::String => "\"string\"".to_string(),
            SchemaType::Bytes => {
                if schema.name.as_deref() == Some(DECIMAL_LOGICAL) {
                    let scale: i64 = schema.parameter("scale").and_then(|s| s.parse().ok()).unwrap_or(0);
                    let precision: i64 =
                        schema.parameter("connect.decimal.precision").and_then(|s| s.parse().ok()).unwrap_or(64);
                    props.push(("scale".into(), scale.to_string()));
                    props.push(("precision".into(), precision.to_string()));
                }
                "\"bytes\"".to_string()
            }
            SchemaType::Array => {
                let items = schema.value_schema.as_deref().ok_or("array schema without element schema")?;
                format!("{{\"type\":\"array\",\"items\":{}", self.schema(items, false)?)
            }
            SchemaType::Map => {
                let k = schema.key_schema.as_deref().ok_or("map schema without key schema")?;
                let v = schema.value_schema.as_deref().ok_or("map schema without value schema")?;
                if k.schema_type == SchemaType::String && !k.optional {
                    format!("{{\"type\":\"map\",\"values\":{}", self.schema(v, false)?)
                } else {
                    let (ns, name) = match &schema.name {
                        None => (Some(NAMESPACE.to_string()), "MapEntry".to_string()),
                        Some(_) => self.record_name(schema),
                    };
                    let full = ns.as_ref().map_or(name.clone(), |ns| format!("{ns}.{name}"));
                    let entry = if self.defined.contains(&full) {
                        quote(&full)
                    } else {
                        self.defined.insert(full.clone());
                        let mut e = format!("{{\"type\":\"record\",\"name\":{}", quote(&name));
                        if let Some(ns) = &ns {
                            e += &format!(",\"namespace\":{}", quote(ns));
                        }
                        e +=
                            &format!(",\"fields\":[{},{}]", self.field("key", k, None)?, self.field("value", v, None)?);
                        if schema.name.is_some() {
                            e += ",\"connect.internal.type\":\"MapEntry\"";
                        }
                        e + "}"
                    };
                    // Left open, as every object base here.
                    format!("{{\"type\":\"array\",\"items\":{entry}")
                }
            }
            SchemaType::Struct => {
                if schema.optional && !ignore_optional {
                    // An optional struct: ["null", record], the record carrying the metadata.
                    let mut inner = schema.clone();
                    inner.optional = false;
                    return Ok(format!("[\"null\",{}]", self.schema(&inner, false)?));
                }
                let (ns, name) = self.record_name(schema);
                if !valid_name(&name) || ns.as_deref().is_some_and(|ns| !ns.split('.').all(valid_name)) {
                    return Err(format!(
                        "Illegal character in record name {:?} (Avro names are [A-Za-z_][A-Za-z0-9_]*)",
                        schema.name.as_deref().unwrap_or(&name)
                    ));
                }
                let full = ns.as_ref().map_or(name.clone(), |ns| format!("{ns}.{name}"));
                if self.defined.contains(&full) {
                    return Ok(quote(&full));
                }
                self.defined.insert(full);
                let mut r = format!("{{\"type\":\"record\",\"name\":{}", quote(&name));
                if let Some(ns) = &ns {
                    r += &format!(",\"namespace\":{}", quote(ns));
                }
                let mut fields = Vec::with_capacity(schema.fields.len());
                for f in &schema.fields {
                    if !valid_name(&f.name) {
                        return Err(format!("Illegal character in field name {:?}", f.name));
                    }
                    fields.push(self.field(&f.name, &f.schema, None)?);
                }
                r += &format!(",\"fields\":[{}]", fields.join(","));
                r
            }
        };
        // Metadata goes on the base type; a primitive becomes {"type": ..., props}.
        if self.meta {
            if let Some(doc) = &schema.doc {
                props.push(("connect.doc".into(), quote(doc)));
            }
            if let Some(v) = schema.version {
                props.push(("connect.version".into(), v.to_string()));
            }
            if let Some(params) = &schema.parameters {
                let p: Vec<String> = params
                    .iter()
                    .filter(|(k, _)| k != "io.confluent.connect.avro.field.default")
                    .map(|(k, v)| format!("{}:{}", quote(k), quote(v)))
                    .collect();
                if !p.is_empty() {
                    props.push(("connect.parameters".into(), format!("{{{}}}", p.join(","))));
                }
            }
            if let Some(d) = &schema.default {
                let flagged = schema.parameter("io.confluent.connect.avro.field.default").is_some();
                if !flagged {
                    props.push(("connect.default".into(), default_json(schema, d)?));
                }
            }
            if let Some(n) = &schema.name {
                props.push(("connect.name".into(), quote(n)));
            }
            if let Some(t) = connect_type {
                props.push(("connect.type".into(), quote(t)));
            }
        }
        let logical = match schema.name.as_deref() {
            Some(DECIMAL_LOGICAL) => Some("decimal"),
            Some(TIME_LOGICAL) => Some("time-millis"),
            Some(TIMESTAMP_LOGICAL) => Some("timestamp-millis"),
            Some(DATE_LOGICAL) => Some("date"),
            _ => None,
        };
        if let Some(l) = logical {
            props.push(("logicalType".into(), quote(l)));
        }
        if let Some(params) = &schema.parameters {
            for (k, v) in params.iter().filter(|(k, _)| k.starts_with("avro")) {
                props.push((k.clone(), quote(v)));
            }
        }
        // `base` is a quoted primitive name or a JSON object left open for the properties.
        let open = base.starts_with('{');
        let mut out = if !open && props.is_empty() {
            base
        } else {
            let mut o = if open { base } else { format!("{{\"type\":{base}") };
            for (k, v) in &props {
                o += &format!(",{}:{v}", quote(k));
            }
            o + "}"
        };
        if schema.optional && !ignore_optional {
            out = if schema.default.is_some() { format!("[{out},\"null\"]") } else { format!("[\"null\",{out}]") };
        }
        Ok(out)
    }

    fn field(&mut self, name: &str, schema: &Schema, doc: Option<&str>) -> Result<String, String> {
        let mut f = format!("{{\"name\":{},\"type\":{}", quote(name), self.schema(schema, false)?);
        if let Some(d) = doc {
            f += &format!(",\"doc\":{}", quote(d));
        }
        if let Some(d) = &schema.default {
            f += &format!(",\"default\":{}", default_json(schema, d)?);
        } else if schema.optional {
            f += ",\"default\":null";
        }
        Ok(f + "}")
    }
}

/// `defaultValueFromConnect`: a Connect default value as the JSON of an Avro default.
fn default_json(schema: &Schema, v: &Value) -> Result<String, String> {
    Ok(match v {
        Value::Null => "null".into(),
        Value::Boolean(b) => b.to_string(),
        Value::Int8(i) => i.to_string(),
        Value::Int16(i) => i.to_string(),
        Value::Int32(i) => i.to_string(),
        Value::Int64(i) => i.to_string(),
        Value::Float32(f) => serde_json::to_string(f).map_err(|e| e.to_string())?,
        Value::Float64(f) => serde_json::to_string(f).map_err(|e| e.to_string())?,
        Value::String(s) => quote(s),
        // Bytes as an ISO-8859-1 string, Avro's JSON form of bytes.
        Value::Bytes(b) => quote(&b.iter().map(|&c| c as char).collect::<String>()),
        Value::Array(items) => {
            let es = schema.value_schema.as_deref().ok_or("array schema without element schema")?;
            let parts: Result<Vec<String>, String> = items.iter().map(|i| default_json(es, i)).collect();
            format!("[{}]", parts?.join(","))
        }
        Value::Map(entries) => {
            let ks = schema.key_schema.as_deref().ok_or("map schema without key schema")?;
            let vs = schema.value_schema.as_deref().ok_or("map schema without value schema")?;
            if ks.schema_type == SchemaType::String && !ks.optional {
                let mut parts = Vec::new();
                for (k, v) in entries {
                    let Value::String(k) = k else { return Err("map default with a non-string key".into()) };
                    parts.push(format!("{}:{}", quote(k), default_json(vs, v)?));
                }
                format!("{{{}}}", parts.join(","))
            } else {
                let mut parts = Vec::new();
                for (k, v) in entries {
                    parts.push(format!("[{},{}]", default_json(ks, k)?, default_json(vs, v)?));
                }
                format!("[{}]", parts.join(","))
            }
        }
        Value::Struct(values) => {
            let mut parts = Vec::new();
            for (f, v) in schema.fields.iter().zip(values) {
                parts.push(format!("{}:{}", quote(&f.name), default_json(&f.schema, v)?));
            }
            format!("{{{}}}", parts.join(","))
        }
    })
}

/// The Avro schema (JSON) of a Connect schema, as `AvroData.fromConnectSchema`.
pub fn avro_schema(schema: &Schema, connect_meta_data: bool) -> Result<String, String> {
    SchemaWriter { meta: connect_meta_data, defined: HashSet::new(), unnamed: 0 }.schema(schema, false)
}

fn zigzag(n: i64, out: &mut Vec<u8>) {
    let mut z = ((n << 1) ^ (n >> 63)) as u64;
    while z >= 0x80 {
        out.push((z as u8 & 0x7f) | 0x80);
        z >>= 7;
    }
    out.push(z as u8);
}

fn bytes(b: &[u8], out: &mut Vec<u8>) {
    zigzag(b.len() as i64, out);
    out.extend_from_slice(b);
}

fn type_error(schema: &Schema, v: &Value) -> String {
    format!("a {} schema cannot hold {v:?}", schema.schema_type.name())
}

/// Encodes a value in Avro's binary encoding following the Avro schema [`avro_schema`] derives from `schema`.
pub fn encode_datum(schema: Option<&Schema>, value: &Value, out: &mut Vec<u8>) -> Result<(), String> {
    let schema = schema.ok_or(
        "AvroFormat writes records with schemas; this one has none (use a converter with schemas, e.g. JsonConverter with schemas.enable=true)",
    )?;
    encode(schema, value, false, out)
}

fn encode(schema: &Schema, value: &Value, ignore_optional: bool, out: &mut Vec<u8>) -> Result<(), String> {
    if schema.optional && !ignore_optional {
        // ["null", T], or [T, "null"] when the schema has a default.
        let null_first = schema.default.is_none();
        return match (value, null_first) {
            (Value::Null, true) => {
                zigzag(0, out);
                Ok(())
            }
            (Value::Null, false) => {
                zigzag(1, out);
                Ok(())
            }
            (v, true) => {
                zigzag(1, out);
                encode(schema, v, true, out)
            }
            (v, false) => {
                zigzag(0, out);
                encode(schema, v, true, out)
            }
        };
    }
    match (schema.schema_type, value) {
        (_, Value::Null) => {
            return Err(format!("null value for the non-optional {} schema", schema.schema_type.name()));
        }
        (SchemaType::Int8, Value::Int8(i)) => zigzag(i64::from(*i), out),
        (SchemaType::Int16, Value::Int16(i)) => zigzag(i64::from(*i), out),
        (SchemaType::Int32, Value::Int32(i)) => zigzag(i64::from(*i), out),
        (SchemaType::Int64, Value::Int64(i)) => zigzag(*i, out),
        (SchemaType::Float32, Value::Float32(f)) => out.extend_from_slice(&f.to_le_bytes()),
        (SchemaType::Float64, Value::Float64(f)) => out.extend_from_slice(&f.to_le_bytes()),
        (SchemaType::Boolean, Value::Boolean(b)) => out.push(u8::from(*b)),
        (SchemaType::String, Value::String(s)) => bytes(s.as_bytes(), out),
        (SchemaType::Bytes, Value::Bytes(b)) => bytes(b, out),
        (SchemaType::Array, Value::Array(items)) => {
            let es = schema.value_schema.as_deref().ok_or("array schema without element schema")?;
            if !items.is_empty() {
                zigzag(items.len() as i64, out);
                for i in items {
                    encode(es, i, false, out)?;
                }
            }
            zigzag(0, out);
        }
        (SchemaType::Map, Value::Map(entries)) => {
            let ks = schema.key_schema.as_deref().ok_or("map schema without key schema")?;
            let vs = schema.value_schema.as_deref().ok_or("map schema without value schema")?;
            if !entries.is_empty() {
                zigzag(entries.len() as i64, out);
                // An Avro map (string keys) and an array of MapEntry records encode alike: key then value.
                for (k, v) in entries {
                    encode(ks, k, ks.schema_type == SchemaType::String && !ks.optional, out)?;
                    encode(vs, v, false, out)?;
                }
            }
            zigzag(0, out);
        }
        (SchemaType::Struct, Value::Struct(values)) => {
            if values.len() != schema.fields.len() {
                return Err(format!("a struct of {} values for {} fields", values.len(), schema.fields.len()));
            }
            for (f, v) in schema.fields.iter().zip(values) {
                encode(&f.schema, v, false, out).map_err(|e| format!("field {:?}: {e}", f.name))?;
            }
        }
        (_, v) => return Err(type_error(schema, v)),
    }
    Ok(())
}

/// One Avro object container file being written.
#[derive(Debug)]
pub struct AvroFileWriter {
    codec: AvroCodec,
    sync: [u8; 16],
    out: Vec<u8>,
    block: Vec<u8>,
    count: i64,
}

impl AvroFileWriter {
    /// Writes the header: the schema of the file's first record decides (a schema change starts a new file).
    pub fn new(
        schema: Option<&Schema>,
        codec: AvroCodec,
        connect_meta_data: bool,
        object_key: &str,
    ) -> Result<AvroFileWriter, String> {
        let schema = schema.ok_or("AvroFormat writes records with schemas; this one has none")?;
        let json = avro_schema(schema, connect_meta_data)?;
        let digest = ring::digest::digest(&ring::digest::SHA256, object_key.as_bytes());
        let mut sync = [0u8; 16];
        sync.copy_from_slice(&digest.as_ref()[..16]);
        let mut out = b"Obj\x01".to_vec();
        zigzag(2, &mut out);
        bytes(b"avro.schema", &mut out);
        bytes(json.as_bytes(), &mut out);
        bytes(b"avro.codec", &mut out);
        bytes(codec.name().as_bytes(), &mut out);
        zigzag(0, &mut out);
        out.extend_from_slice(&sync);
        Ok(AvroFileWriter { codec, sync, out, block: Vec::new(), count: 0 })
    }

    pub fn append(&mut self, datum: &[u8]) {
        self.block.extend_from_slice(datum);
        self.count += 1;
        if self.block.len() >= BLOCK_BYTES {
            // Cannot fail for in-memory output except through the codec, whose errors surface at finish.
            let _ = self.write_block();
        }
    }

    fn write_block(&mut self) -> std::io::Result<()> {
        if self.count == 0 {
            return Ok(());
        }
        let data = match self.codec {
            AvroCodec::Null => std::mem::take(&mut self.block),
            AvroCodec::Deflate => {
                let mut e = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::default());
                e.write_all(&self.block)?;
                let d = e.finish()?;
                self.block.clear();
                d
            }
            AvroCodec::Snappy => {
                let mut d = snap::raw::Encoder::new().compress_vec(&self.block).map_err(std::io::Error::other)?;
                d.extend_from_slice(&crc32fast::hash(&self.block).to_be_bytes());
                self.block.clear();
                d
            }
        };
        zigzag(self.count, &mut self.out);
        bytes(&data, &mut self.out);
        self.out.extend_from_slice(&self.sync);
        self.count = 0;
        Ok(())
    }

    pub fn ready(&mut self) -> &mut Vec<u8> {
        &mut self.out
    }

    pub fn buffered(&self) -> usize {
        self.out.len() + self.block.len()
    }

    /// Writes the last block (idempotent).
    pub fn finish(&mut self) -> std::io::Result<()> {
        self.write_block()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sluice_connect_api::record::Field;
    use std::sync::Arc;

    fn field(name: &str, index: usize, schema: Schema) -> Field {
        Field { name: name.into(), index, schema: Arc::new(schema) }
    }

    fn named(t: SchemaType, optional: bool, name: &str) -> Schema {
        let mut s = Schema::primitive(t, optional);
        s.name = Some(name.into());
        s.version = Some(1);
        s
    }

    /// Fixture: AvroData.fromConnectSchema (confluentinc/schema-registry avro-data): record name/namespace from
    /// the Connect name, `["null", T]` with default null for optional fields, int8 as int + connect.type,
    /// Decimal bytes + scale/precision 64/logicalType, Date/Timestamp logical types, connect.name/version.
    #[test]
    fn schema_mapping() {
        let mut dec = named(SchemaType::Bytes, false, DECIMAL_LOGICAL);
        dec.parameters = Some(vec![("scale".into(), "2".into())]);
        let mut s = named(SchemaType::Struct, false, "shop.Order");
        s.fields = vec![
            field("id", 0, Schema::primitive(SchemaType::Int32, false)),
            field("note", 1, Schema::primitive(SchemaType::String, true)),
            field("tiny", 2, Schema::primitive(SchemaType::Int8, false)),
            field("amount", 3, dec),
            field("day", 4, named(SchemaType::Int32, true, DATE_LOGICAL)),
            field("at", 5, named(SchemaType::Int64, false, TIMESTAMP_LOGICAL)),
        ];
        let json = avro_schema(&s, true).unwrap();
        let v: serde_json::Value = serde_json::from_str(&json).unwrap();
        assert_eq!(v["type"], "record");
        assert_eq!((v["name"].as_str(), v["namespace"].as_str()), (Some("Order"), Some("shop")));
        assert_eq!(v["connect.name"], "shop.Order");
        assert_eq!(v["connect.version"], 1);
        let f = &v["fields"];
        assert_eq!(f[0]["type"], "int");
        assert_eq!(f[1]["type"], serde_json::json!(["null", "string"]));
        assert!(f[1]["default"].is_null() && f[1].as_object().unwrap().contains_key("default"));
        assert_eq!(f[2]["type"], serde_json::json!({"type": "int", "connect.type": "int8"}));
        assert_eq!(f[3]["type"]["logicalType"], "decimal");
        assert_eq!((f[3]["type"]["scale"].as_i64(), f[3]["type"]["precision"].as_i64()), (Some(2), Some(64)));
        assert_eq!(f[3]["type"]["connect.parameters"], serde_json::json!({"scale": "2"}));
        assert_eq!(f[4]["type"][0], "null");
        assert_eq!(f[4]["type"][1]["logicalType"], "date");
        assert_eq!(f[5]["type"]["logicalType"], "timestamp-millis");
        let mut unnamed = Schema::primitive(SchemaType::Struct, true);
        unnamed.fields = vec![field("a", 0, Schema::primitive(SchemaType::String, false))];
        let v: serde_json::Value = serde_json::from_str(&avro_schema(&unnamed, true).unwrap()).unwrap();
        assert_eq!(v[0], "null");
        assert_eq!((v[1]["name"].as_str(), v[1]["namespace"].as_str()), (Some("ConnectDefault"), Some(NAMESPACE)));
    }

    #[test]
    fn binary_encoding() {
        let mut out = Vec::new();
        zigzag(-1, &mut out);
        zigzag(64, &mut out);
        assert_eq!(out, [0x01, 0x80, 0x01]);
        let mut s = Schema::primitive(SchemaType::Struct, false);
        s.fields = vec![
            field("a", 0, Schema::primitive(SchemaType::String, true)),
            field("b", 1, Schema::primitive(SchemaType::Int64, false)),
        ];
        let mut out = Vec::new();
        encode_datum(Some(&s), &Value::Struct(vec![Value::String("hi".into()), Value::Int64(3)]), &mut out).unwrap();
        assert_eq!(out, [2, 4, b'h', b'i', 6]);
        let mut out = Vec::new();
        encode_datum(Some(&s), &Value::Struct(vec![Value::Null, Value::Int64(-2)]), &mut out).unwrap();
        assert_eq!(out, [0, 3]);
        assert!(encode_datum(Some(&s), &Value::Struct(vec![Value::Null, Value::Null]), &mut Vec::new()).is_err());
        assert!(encode_datum(None, &Value::Int64(1), &mut Vec::new()).is_err());
    }
}
