//! Parquet files as Confluent's `ParquetFormat` writes them (parquet-avro over the Avro schema of
//! `AvroData.fromConnectSchema`): the Parquet schema is the one parquet-avro's `AvroSchemaConverter` derives from
//! that Avro schema, the Avro schema is kept in the footer (`parquet.avro.schema`, `writer.model.name=avro`), values
//! are shredded into columns (definition / repetition levels) and written with the `parquet` crate's low-level
//! writer (no Arrow), compressed with `parquet.codec` (none, snappy, gzip).
//!
//! Facts followed: confluentinc/kafka-connect-storage-cloud@v12.1.9 `format/parquet/ParquetRecordWriterProvider.java`
//! (extension `<codec extension>.parquet`, page size 64 KiB, dictionary encoding, the 3-level list structure only
//! for arrays of optional items, else parquet-avro's old 2-level one; keys and headers enveloped as `RecordKey{key}`
//! / `RecordHeaders{headers}`); parquet-avro's `AvroSchemaConverter`: int/long/float/double/boolean, string as
//! `BINARY (STRING)`, bytes as `BINARY`, decimal as `BINARY (DECIMAL(p,s))`, date `INT32 (DATE)`, time-millis
//! `INT32 (TIME(MILLIS,true))`, timestamp-millis `INT64 (TIMESTAMP(MILLIS,true))`, `["null", T]` as optional,
//! maps as `group (MAP) { repeated group key_value { required binary key (STRING); value } }`, old lists as
//! `group (LIST) { repeated <item> array }`, new ones as `group (LIST) { repeated group list { element } }`.
//!
//! Confluent writes one row group per file (parquet-mr's 128 MB block size); Sluice closes a row group every
//! [`ROW_GROUP_BYTES`] so that a file's bytes can go up in multipart parts as it grows (memory per open file stays
//! bounded). Row group boundaries depend on the records only, so a replay writes the same bytes.

use std::io::Write;
use std::sync::{Arc, Mutex};

use parquet::basic::{Compression, LogicalType, Repetition, TimeUnit, Type as PhysicalType};
use parquet::column::writer::ColumnWriter;
use parquet::data_type::ByteArray;
use parquet::file::metadata::KeyValue;
use parquet::file::properties::WriterProperties;
use parquet::file::writer::SerializedFileWriter;
use parquet::schema::types::Type;

use sluice_connect_api::record::{Schema, SchemaType, Value};
use sluice_connect_api::values::{DATE_LOGICAL, DECIMAL_LOGICAL, TIME_LOGICAL, TIMESTAMP_LOGICAL};

/// A row group is closed once its buffered column data reach this many bytes.
pub const ROW_GROUP_BYTES: usize = 8 * 1024 * 1024;

/// `parquet.codec`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum ParquetCodec {
    None,
    Snappy,
    Gzip,
}

impl ParquetCodec {
    /// parquet-mr's `CompressionCodecName.getExtension`.
    pub fn extension(self) -> &'static str {
        match self {
            ParquetCodec::None => "",
            ParquetCodec::Snappy => ".snappy",
            ParquetCodec::Gzip => ".gz",
        }
    }
    fn compression(self) -> Compression {
        match self {
            ParquetCodec::None => Compression::UNCOMPRESSED,
            ParquetCodec::Snappy => Compression::SNAPPY,
            ParquetCodec::Gzip => Compression::GZIP(Default::default()),
        }
    }
}

/// How a node takes its value apart.
#[derive(Debug)]
enum Shape {
    Leaf {
        column: usize,
        kind: LeafKind,
    },
    /// A struct: child i holds field i.
    Struct(Vec<Node>),
    /// A list group: its single repeated child holds each item (old structure: the child is the item; new: the
    /// child `list` holds the item in its child `element`).
    List(Box<Node>),
    /// The repeated `list` group of the new list structure: its child `element` is the item.
    ListElement(Box<Node>),
    /// A map group (MAP, or the list of MapEntry records): its repeated child holds each entry.
    Map(Box<Node>),
    /// A map entry (`key_value` / `MapEntry`): children `key` and `value`.
    Entry(Box<Node>, Box<Node>),
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum LeafKind {
    Boolean,
    Int32,
    Int64,
    Float,
    Double,
    Binary,
}

#[derive(Debug)]
struct Node {
    name: String,
    repetition: Repetition,
    shape: Shape,
    /// The repetition level of this node (for a repeated node: the level its items after the first get).
    rep_level: i16,
}

#[derive(Debug)]
enum Values {
    Boolean(Vec<bool>),
    Int32(Vec<i32>),
    Int64(Vec<i64>),
    Float(Vec<f32>),
    Double(Vec<f64>),
    Binary(Vec<ByteArray>),
}

#[derive(Debug)]
struct ColumnBuffer {
    values: Values,
    defs: Vec<i16>,
    reps: Vec<i16>,
    max_def: i16,
    max_rep: i16,
    bytes: usize,
}

/// Builds the Parquet schema and the shredding tree of a Connect schema.
struct Builder {
    columns: Vec<ColumnBuffer>,
}

fn repetition(optional: bool) -> Repetition {
    if optional { Repetition::OPTIONAL } else { Repetition::REQUIRED }
}

fn perr(e: parquet::errors::ParquetError) -> String {
    e.to_string()
}

impl Builder {
    fn leaf(
        &mut self,
        name: &str,
        schema: &Schema,
        rep: Repetition,
        def: i16,
        replevel: i16,
    ) -> Result<(Type, Node), String> {
        let (physical, kind, logical) = match (schema.schema_type, schema.name.as_deref()) {
            (SchemaType::Boolean, _) => (PhysicalType::BOOLEAN, LeafKind::Boolean, None),
            (SchemaType::Int32, Some(DATE_LOGICAL)) => (PhysicalType::INT32, LeafKind::Int32, Some(LogicalType::Date)),
            (SchemaType::Int32, Some(TIME_LOGICAL)) => {
                (PhysicalType::INT32, LeafKind::Int32, Some(LogicalType::time(true, TimeUnit::MILLIS)))
            }
            (SchemaType::Int8 | SchemaType::Int16 | SchemaType::Int32, _) => {
                (PhysicalType::INT32, LeafKind::Int32, None)
            }
            (SchemaType::Int64, Some(TIMESTAMP_LOGICAL)) => {
                (PhysicalType::INT64, LeafKind::Int64, Some(LogicalType::timestamp(true, TimeUnit::MILLIS)))
            }
            (SchemaType::Int64, _) => (PhysicalType::INT64, LeafKind::Int64, None),
            (SchemaType::Float32, _) => (PhysicalType::FLOAT, LeafKind::Float, None),
            (SchemaType::Float64, _) => (PhysicalType::DOUBLE, LeafKind::Double, None),
            (SchemaType::String, _) => (PhysicalType::BYTE_ARRAY, LeafKind::Binary, Some(LogicalType::String)),
            (SchemaType::Bytes, Some(DECIMAL_LOGICAL)) => {
                let scale: i32 = schema.parameter("scale").and_then(|s| s.parse().ok()).unwrap_or(0);
                let precision: i32 =
                    schema.parameter("connect.decimal.precision").and_then(|s| s.parse().ok()).unwrap_or(64);
                (PhysicalType::BYTE_ARRAY, LeafKind::Binary, Some(LogicalType::decimal(scale, precision)))
            }
            (SchemaType::Bytes, _) => (PhysicalType::BYTE_ARRAY, LeafKind::Binary, None),
            (t, _) => return Err(format!("{} is not a primitive type", t.name())),
        };
        let mut b =
            Type::primitive_type_builder(name, physical).with_repetition(rep).with_logical_type(logical.clone());
        if let Some(LogicalType::Decimal(d)) = &logical {
            b = b.with_precision(d.precision).with_scale(d.scale);
        }
        let column = self.columns.len();
        self.columns.push(ColumnBuffer {
            values: match kind {
                LeafKind::Boolean => Values::Boolean(Vec::new()),
                LeafKind::Int32 => Values::Int32(Vec::new()),
                LeafKind::Int64 => Values::Int64(Vec::new()),
                LeafKind::Float => Values::Float(Vec::new()),
                LeafKind::Double => Values::Double(Vec::new()),
                LeafKind::Binary => Values::Binary(Vec::new()),
            },
            defs: Vec::new(),
            reps: Vec::new(),
            max_def: def,
            max_rep: replevel,
            bytes: 0,
        });
        let node =
            Node { name: name.into(), repetition: rep, shape: Shape::Leaf { column, kind }, rep_level: replevel };
        Ok((b.build().map_err(perr)?, node))
    }

    /// The node of a field named `name` with this Connect schema. `def`/`replevel`: the levels of the parent.
    fn field(&mut self, name: &str, schema: &Schema, def: i16, replevel: i16) -> Result<(Type, Node), String> {
        self.node(name, schema, repetition(schema.optional), def, replevel)
    }

    fn node(
        &mut self,
        name: &str,
        schema: &Schema,
        rep: Repetition,
        def: i16,
        replevel: i16,
    ) -> Result<(Type, Node), String> {
        let def = if rep == Repetition::REQUIRED { def } else { def + 1 };
        let replevel = if rep == Repetition::REPEATED { replevel + 1 } else { replevel };
        match schema.schema_type {
            SchemaType::Struct => {
                let mut types = Vec::new();
                let mut nodes = Vec::new();
                for f in &schema.fields {
                    let (t, n) = self.field(&f.name, &f.schema, def, replevel)?;
                    types.push(Arc::new(t));
                    nodes.push(n);
                }
                if types.is_empty() {
                    return Err(format!("struct {name:?} has no fields (Parquet groups need at least one)"));
                }
                let t = Type::group_type_builder(name).with_repetition(rep).with_fields(types).build().map_err(perr)?;
                Ok((t, Node { name: name.into(), repetition: rep, shape: Shape::Struct(nodes), rep_level: replevel }))
            }
            SchemaType::Array => {
                let es = schema.value_schema.as_deref().ok_or("array schema without element schema")?;
                let (child_type, child) = if es.optional {
                    // The 3-level structure (WRITE_OLD_LIST_STRUCTURE=false for arrays of optional items).
                    let (et, en) = self.node("element", es, Repetition::OPTIONAL, def + 1, replevel + 1)?;
                    let lt = Type::group_type_builder("list")
                        .with_repetition(Repetition::REPEATED)
                        .with_fields(vec![Arc::new(et)])
                        .build()
                        .map_err(perr)?;
                    let ln = Node {
                        name: "list".into(),
                        repetition: Repetition::REPEATED,
                        shape: Shape::ListElement(Box::new(en)),
                        rep_level: replevel + 1,
                    };
                    (lt, ln)
                } else {
                    self.node("array", es, Repetition::REPEATED, def, replevel)?
                };
                let t = Type::group_type_builder(name)
                    .with_repetition(rep)
                    .with_logical_type(Some(LogicalType::List))
                    .with_fields(vec![Arc::new(child_type)])
                    .build()
                    .map_err(perr)?;
                Ok((
                    t,
                    Node {
                        name: name.into(),
                        repetition: rep,
                        shape: Shape::List(Box::new(child)),
                        rep_level: replevel,
                    },
                ))
            }
            SchemaType::Map => {
                let ks = schema.key_schema.as_deref().ok_or("map schema without key schema")?;
                let vs = schema.value_schema.as_deref().ok_or("map schema without value schema")?;
                let string_keys = ks.schema_type == SchemaType::String && !ks.optional;
                let (entry_name, logical) =
                    if string_keys { ("key_value", LogicalType::Map) } else { ("array", LogicalType::List) };
                // The repeated entry group: one level deeper in both definition and repetition.
                let (kt, kn) = self.field("key", ks, def + 1, replevel + 1)?;
                let (vt, vn) = self.field("value", vs, def + 1, replevel + 1)?;
                let et = Type::group_type_builder(entry_name)
                    .with_repetition(Repetition::REPEATED)
                    .with_fields(vec![Arc::new(kt), Arc::new(vt)])
                    .build()
                    .map_err(perr)?;
                let en = Node {
                    name: entry_name.into(),
                    repetition: Repetition::REPEATED,
                    shape: Shape::Entry(Box::new(kn), Box::new(vn)),
                    rep_level: replevel + 1,
                };
                let t = Type::group_type_builder(name)
                    .with_repetition(rep)
                    .with_logical_type(Some(logical))
                    .with_fields(vec![Arc::new(et)])
                    .build()
                    .map_err(perr)?;
                Ok((
                    t,
                    Node { name: name.into(), repetition: rep, shape: Shape::Map(Box::new(en)), rep_level: replevel },
                ))
            }
            _ => self.leaf(name, schema, rep, def, replevel),
        }
    }
}

/// The levels of a node's parent when the node is written.
impl ColumnBuffer {
    fn push_null(&mut self, def: i16, rep: i16) {
        self.defs.push(def);
        self.reps.push(rep);
        self.bytes += 4;
    }
}

fn shred_null(node: &Node, def: i16, rep: i16, cols: &mut [ColumnBuffer]) {
    match &node.shape {
        Shape::Leaf { column, .. } => cols[*column].push_null(def, rep),
        Shape::Struct(children) => children.iter().for_each(|c| shred_null(c, def, rep, cols)),
        Shape::List(c) | Shape::ListElement(c) | Shape::Map(c) => shred_null(c, def, rep, cols),
        Shape::Entry(k, v) => {
            shred_null(k, def, rep, cols);
            shred_null(v, def, rep, cols);
        }
    }
}

/// Writes `value` into `node` (Dremel shredding): `def` = the definition level of the parent, `rep` = the
/// repetition level the first value written here gets.
fn shred(node: &Node, value: &Value, def: i16, rep: i16, cols: &mut [ColumnBuffer]) -> Result<(), String> {
    let def = match node.repetition {
        Repetition::OPTIONAL => {
            if matches!(value, Value::Null) {
                shred_null(node, def, rep, cols);
                return Ok(());
            }
            def + 1
        }
        Repetition::REPEATED => def + 1,
        Repetition::REQUIRED => {
            if matches!(value, Value::Null) {
                return Err(format!("null value for the required field {:?}", node.name));
            }
            def
        }
    };
    content(node, value, def, rep, cols)
}

fn repeated<'a>(
    child: &Node,
    items: impl ExactSizeIterator<Item = Item<'a>>,
    def: i16,
    rep: i16,
    cols: &mut [ColumnBuffer],
) -> Result<(), String> {
    if items.len() == 0 {
        shred_null(child, def, rep, cols);
        return Ok(());
    }
    for (i, item) in items.enumerate() {
        let r = if i == 0 { rep } else { child.rep_level };
        match item {
            Item::One(v) => shred(child, v, def, r, cols)?,
            Item::Pair(k, v) => {
                let Shape::Entry(kn, vn) = &child.shape else { return Err("map entry without key and value".into()) };
                // The entry group itself is repeated: one definition level.
                shred(kn, k, def + 1, r, cols)?;
                shred(vn, v, def + 1, r, cols)?;
            }
        }
    }
    Ok(())
}

enum Item<'a> {
    One(&'a Value),
    Pair(&'a Value, &'a Value),
}

fn content(node: &Node, value: &Value, def: i16, rep: i16, cols: &mut [ColumnBuffer]) -> Result<(), String> {
    match (&node.shape, value) {
        (Shape::Leaf { column, kind }, v) => {
            let c = &mut cols[*column];
            let size = match (kind, &mut c.values, v) {
                (LeafKind::Boolean, Values::Boolean(vs), Value::Boolean(b)) => {
                    vs.push(*b);
                    1
                }
                (LeafKind::Int32, Values::Int32(vs), Value::Int8(i)) => {
                    vs.push(i32::from(*i));
                    4
                }
                (LeafKind::Int32, Values::Int32(vs), Value::Int16(i)) => {
                    vs.push(i32::from(*i));
                    4
                }
                (LeafKind::Int32, Values::Int32(vs), Value::Int32(i)) => {
                    vs.push(*i);
                    4
                }
                (LeafKind::Int64, Values::Int64(vs), Value::Int64(i)) => {
                    vs.push(*i);
                    8
                }
                (LeafKind::Float, Values::Float(vs), Value::Float32(f)) => {
                    vs.push(*f);
                    4
                }
                (LeafKind::Double, Values::Double(vs), Value::Float64(f)) => {
                    vs.push(*f);
                    8
                }
                (LeafKind::Binary, Values::Binary(vs), Value::String(s)) => {
                    vs.push(ByteArray::from(s.as_bytes().to_vec()));
                    s.len() + 4
                }
                (LeafKind::Binary, Values::Binary(vs), Value::Bytes(b)) => {
                    vs.push(ByteArray::from(b.to_vec()));
                    b.len() + 4
                }
                (_, _, v) => return Err(format!("field {:?} cannot hold {v:?}", node.name)),
            };
            c.defs.push(def);
            c.reps.push(rep);
            c.bytes += size + 4;
            Ok(())
        }
        (Shape::Struct(children), Value::Struct(values)) => {
            if values.len() != children.len() {
                return Err(format!("struct {:?}: {} values for {} fields", node.name, values.len(), children.len()));
            }
            for (c, v) in children.iter().zip(values) {
                shred(c, v, def, rep, cols)?;
            }
            Ok(())
        }
        (Shape::List(child), Value::Array(items)) => repeated(child, items.iter().map(Item::One), def, rep, cols),
        (Shape::ListElement(element), v) => shred(element, v, def, rep, cols),
        (Shape::Map(entry), Value::Map(entries)) => {
            repeated(entry, entries.iter().map(|(k, v)| Item::Pair(k, v)), def, rep, cols)
        }
        (_, v) => Err(format!("field {:?} cannot hold {v:?}", node.name)),
    }
}

/// A `Write` whose bytes the owner drains between row groups.
#[derive(Clone, Default)]
struct SharedBuffer(Arc<Mutex<Vec<u8>>>);

impl Write for SharedBuffer {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().map_err(|_| std::io::Error::other("poisoned"))?.extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// One Parquet file being written.
pub struct ParquetFileWriter {
    root: Node,
    columns: Vec<ColumnBuffer>,
    rows: usize,
    writer: Option<SerializedFileWriter<SharedBuffer>>,
    shared: SharedBuffer,
    out: Vec<u8>,
}

impl std::fmt::Debug for ParquetFileWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ParquetFileWriter")
            .field("rows", &self.rows)
            .field("out", &self.out.len())
            .finish_non_exhaustive()
    }
}

/// The Parquet schema (message) of a Connect struct schema, as text (for tests and messages).
pub fn parquet_schema(schema: &Schema) -> Result<String, String> {
    let (t, _, _) = build(schema)?;
    let mut s = Vec::new();
    parquet::schema::printer::print_schema(&mut s, &t);
    Ok(String::from_utf8_lossy(&s).into_owned())
}

fn build(schema: &Schema) -> Result<(Type, Node, Vec<ColumnBuffer>), String> {
    if schema.schema_type != SchemaType::Struct {
        return Err(format!(
            "ParquetFormat writes Struct records (parquet-avro needs an Avro record); this schema is {}",
            schema.schema_type.name()
        ));
    }
    // parquet-avro names the message after the record's full name.
    let name = schema.name.clone().unwrap_or_else(|| "io.confluent.connect.avro.ConnectDefault".into());
    let mut b = Builder { columns: Vec::new() };
    let mut fields = Vec::new();
    let mut nodes = Vec::new();
    for f in &schema.fields {
        let (t, n) = b.field(&f.name, &f.schema, 0, 0)?;
        fields.push(Arc::new(t));
        nodes.push(n);
    }
    if fields.is_empty() {
        return Err("a struct without fields cannot be written as Parquet".into());
    }
    let message = Type::group_type_builder(&name).with_fields(fields).build().map_err(perr)?;
    let root = Node { name, repetition: Repetition::REQUIRED, shape: Shape::Struct(nodes), rep_level: 0 };
    Ok((message, root, b.columns))
}

impl ParquetFileWriter {
    pub fn new(schema: Option<&Schema>, codec: ParquetCodec, avro_schema: String) -> Result<Self, String> {
        let schema = schema.ok_or("ParquetFormat writes records with schemas; this one has none")?;
        let (message, root, columns) = build(schema)?;
        let props = WriterProperties::builder()
            .set_compression(codec.compression())
            .set_dictionary_enabled(true)
            .set_data_page_size_limit(64 * 1024)
            .set_key_value_metadata(Some(vec![
                KeyValue::new("parquet.avro.schema".to_string(), avro_schema),
                KeyValue::new("writer.model.name".to_string(), "avro".to_string()),
            ]))
            .build();
        let shared = SharedBuffer::default();
        let writer = SerializedFileWriter::new(shared.clone(), Arc::new(message), Arc::new(props)).map_err(perr)?;
        let mut w = ParquetFileWriter { root, columns, rows: 0, writer: Some(writer), shared, out: Vec::new() };
        w.drain();
        Ok(w)
    }

    fn drain(&mut self) {
        if let Ok(mut b) = self.shared.0.lock() {
            self.out.append(&mut b);
        }
    }

    pub fn append(&mut self, value: &Value) -> Result<(), String> {
        content(&self.root, value, 0, 0, &mut self.columns)?;
        self.rows += 1;
        if self.columns.iter().map(|c| c.bytes).sum::<usize>() >= ROW_GROUP_BYTES {
            self.write_row_group().map_err(perr)?;
        }
        Ok(())
    }

    fn write_row_group(&mut self) -> parquet::errors::Result<()> {
        if self.rows == 0 {
            return Ok(());
        }
        let Some(writer) = self.writer.as_mut() else { return Ok(()) };
        let mut rg = writer.next_row_group()?;
        let mut i = 0;
        while let Some(mut col) = rg.next_column()? {
            let c = &mut self.columns[i];
            let defs = (c.max_def > 0).then_some(&c.defs[..]);
            let reps = (c.max_rep > 0).then_some(&c.reps[..]);
            match (col.untyped(), &c.values) {
                (ColumnWriter::BoolColumnWriter(w), Values::Boolean(v)) => w.write_batch(v, defs, reps)?,
                (ColumnWriter::Int32ColumnWriter(w), Values::Int32(v)) => w.write_batch(v, defs, reps)?,
                (ColumnWriter::Int64ColumnWriter(w), Values::Int64(v)) => w.write_batch(v, defs, reps)?,
                (ColumnWriter::FloatColumnWriter(w), Values::Float(v)) => w.write_batch(v, defs, reps)?,
                (ColumnWriter::DoubleColumnWriter(w), Values::Double(v)) => w.write_batch(v, defs, reps)?,
                (ColumnWriter::ByteArrayColumnWriter(w), Values::Binary(v)) => w.write_batch(v, defs, reps)?,
                _ => return Err(parquet::errors::ParquetError::General("column type mismatch".into())),
            };
            col.close()?;
            c.defs.clear();
            c.reps.clear();
            c.bytes = 0;
            match &mut c.values {
                Values::Boolean(v) => v.clear(),
                Values::Int32(v) => v.clear(),
                Values::Int64(v) => v.clear(),
                Values::Float(v) => v.clear(),
                Values::Double(v) => v.clear(),
                Values::Binary(v) => v.clear(),
            }
            i += 1;
        }
        rg.close()?;
        self.rows = 0;
        self.drain();
        Ok(())
    }

    pub fn ready(&mut self) -> &mut Vec<u8> {
        &mut self.out
    }

    pub fn buffered(&self) -> usize {
        self.out.len() + self.columns.iter().map(|c| c.bytes).sum::<usize>()
    }

    /// Writes the last row group and the footer (idempotent).
    pub fn finish(&mut self) -> std::io::Result<()> {
        self.write_row_group().map_err(std::io::Error::other)?;
        if let Some(w) = self.writer.take() {
            w.close().map_err(std::io::Error::other)?;
            self.drain();
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sluice_connect_api::record::Field;

    fn f(name: &str, index: usize, schema: Schema) -> Field {
        Field { name: name.into(), index, schema: Arc::new(schema) }
    }

    /// Fixture: parquet-avro AvroSchemaConverter over AvroData's schema (old list structure, MAP key_value).
    #[test]
    fn schema_and_levels() {
        let mut tags = Schema::primitive(SchemaType::Array, true);
        tags.value_schema = Some(Arc::new(Schema::primitive(SchemaType::String, false)));
        let mut attrs = Schema::primitive(SchemaType::Map, false);
        attrs.key_schema = Some(Schema::string());
        attrs.value_schema = Some(Arc::new(Schema::primitive(SchemaType::Int64, true)));
        let mut s = Schema::primitive(SchemaType::Struct, false);
        s.name = Some("shop.Order".into());
        s.fields = vec![
            f("id", 0, Schema::primitive(SchemaType::Int32, false)),
            f("note", 1, Schema::primitive(SchemaType::String, true)),
            f("tags", 2, tags),
            f("attrs", 3, attrs),
        ];
        let text = parquet_schema(&s).unwrap();
        assert!(text.contains("message shop.Order"), "{text}");
        assert!(text.contains("REQUIRED INT32 id;"), "{text}");
        assert!(text.contains("OPTIONAL BYTE_ARRAY note (STRING);"), "{text}");
        assert!(
            text.contains("OPTIONAL group tags (LIST)") && text.contains("REPEATED BYTE_ARRAY array (STRING);"),
            "{text}"
        );
        assert!(text.contains("REQUIRED group attrs (MAP)") && text.contains("REPEATED group key_value"), "{text}");
        let mut w = ParquetFileWriter::new(Some(&s), ParquetCodec::Snappy, "{}".into()).unwrap();
        w.append(&Value::Struct(vec![
            Value::Int32(1),
            Value::Null,
            Value::Array(vec![Value::String("a".into()), Value::String("b".into())]),
            Value::Map(vec![(Value::String("k".into()), Value::Int64(5))]),
        ]))
        .unwrap();
        w.append(&Value::Struct(vec![Value::Int32(2), Value::String("n".into()), Value::Null, Value::Map(vec![])]))
            .unwrap();
        // tags.array: [a (def 2, rep 0), b (def 2, rep 1)], then null list (def 0, rep 0).
        assert_eq!((w.columns[2].defs.clone(), w.columns[2].reps.clone()), (vec![2, 2, 0], vec![0, 1, 0]));
        // attrs.key_value.key: k (def 1), then an empty map (def 0).
        assert_eq!(w.columns[3].defs, vec![1, 0]);
        w.finish().unwrap();
        let bytes = std::mem::take(w.ready());
        assert!(bytes.starts_with(b"PAR1") && bytes.ends_with(b"PAR1"));
        let mut w = ParquetFileWriter::new(Some(&s), ParquetCodec::None, "{}".into()).unwrap();
        assert!(w.append(&Value::Struct(vec![Value::Null, Value::Null, Value::Null, Value::Map(vec![])])).is_err());
    }
}
