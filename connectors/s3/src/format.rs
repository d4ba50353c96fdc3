//! Record writers: the bytes of one object, as Confluent's record writer providers produce them. JSON lines and
//! ByteArray (optionally gzip-compressed, `s3.compression.type`), Avro object container files ([`crate::avro`]),
//! and the three views of a record Confluent writes into separate objects: the value, the key (`.keys`) and the
//! headers (`.headers`).
//!
//! Sources: confluentinc/kafka-connect-storage-cloud@v12.1.9 `kafka-connect-s3/.../format/json/
//! JsonRecordWriterProvider.java`, `format/bytearray/ByteArrayRecordWriterProvider.java`,
//! `format/avro/AvroRecordWriterProvider.java`, `format/RecordViews.java`, `format/KeyValueHeaderRecordWriterProvider
//! .java`, `storage/CompressionType.java`, `util/Utils.java` (`getAdjustedFilename`).

use std::borrow::Cow;
use std::io::Write;
use std::sync::{Arc, OnceLock};

use flate2::Compression as GzLevel;
use flate2::write::GzEncoder;

use sluice_connect_api::error::ConnectError;
use sluice_connect_api::record::{Schema, SchemaType, SinkRecord, Value};
use sluice_connect_api::values::{append_text, write_text};
use sluice_converters::converter::{Converter, JsonConverter};
use sluice_converters::header_converter::parse_string;

use crate::avro::{AvroCodec, AvroFileWriter};
use crate::parquet_file::{ParquetCodec, ParquetFileWriter};

/// `s3.compression.type`: applied to JsonFormat and ByteArrayFormat objects (Avro has its own codecs).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Compression {
    None,
    /// gzip at a level 0..=9 (`s3.compression.level`; -1, Java's `Deflater.DEFAULT_COMPRESSION`, is zlib's 6).
    Gzip(u32),
}

impl Compression {
    /// `CompressionType.extension`.
    pub fn extension(self) -> &'static str {
        match self {
            Compression::None => "",
            Compression::Gzip(_) => ".gz",
        }
    }
}

/// Output formats (`format.class`, `keys.format.class`, `headers.format.class`).
#[derive(Debug, Clone, PartialEq)]
pub enum Format {
    Json,
    ByteArray { extension: String, separator: Vec<u8> },
    Avro { codec: AvroCodec, connect_meta_data: bool },
    Parquet { codec: ParquetCodec, connect_meta_data: bool },
}

/// One record's view, ready for an [`ObjectWriter`]: bytes (JSON line, raw bytes, Avro datum) or, for Parquet
/// (shredded into columns), the value itself. The task keeps one per view and encodes every record into it
/// ([`Format::encode_view_into`]), so the bytes buffer is reused from record to record.
#[derive(Debug)]
pub enum Encoded {
    Bytes(Vec<u8>),
    Value(Value),
}

/// Which part of a record an object holds (Confluent's `RecordView`s).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum View {
    Value,
    Key,
    Headers,
}

impl View {
    /// `RecordView.getExtension`: inserted before the format's extension.
    pub fn infix(self) -> &'static str {
        match self {
            View::Value => "",
            View::Key => ".keys",
            View::Headers => ".headers",
        }
    }
}

/// The Connect schema of the headers view (`HeaderRecordView`): an array of `{key: string, value: string}`.
fn header_entry_schema() -> Arc<Schema> {
    static S: std::sync::OnceLock<Arc<Schema>> = std::sync::OnceLock::new();
    S.get_or_init(|| {
        let mut entry = Schema::primitive(SchemaType::Struct, false);
        entry.fields = vec![
            sluice_connect_api::record::Field { name: "key".into(), index: 0, schema: Schema::string() },
            sluice_connect_api::record::Field { name: "value".into(), index: 1, schema: Schema::string() },
        ];
        Arc::new(entry)
    })
    .clone()
}

pub fn headers_schema() -> Arc<Schema> {
    static S: std::sync::OnceLock<Arc<Schema>> = std::sync::OnceLock::new();
    S.get_or_init(|| {
        let mut array = Schema::primitive(SchemaType::Array, false);
        array.value_schema = Some(header_entry_schema());
        Arc::new(array)
    })
    .clone()
}

fn loggable(r: &SinkRecord) -> String {
    // Utils.sinkRecordToLoggableString
    format!("SinkRecord{{kafkaOffset={}, topic='{}', kafkaPartition={}}} ", r.offset, r.topic, r.partition)
}

/// The headers view of a record: `[{key, value}]` with each value as `Values.convertToString` renders the header's
/// Connect value (headers travel in SimpleHeaderConverter's text form inside Sluice: parsed, then rendered).
pub fn headers_view(record: &SinkRecord) -> Result<Value, ConnectError> {
    let mut entries = Vec::with_capacity(record.headers.len());
    for (key, bytes) in &record.headers {
        let Some(bytes) = bytes else {
            // Struct.put of null into the required STRING field "value".
            return Err(ConnectError::Data(format!(
                "Invalid value: null used for required field: \"value\", schema type: STRING (header {key:?} of {})",
                loggable(record)
            )));
        };
        let (schema, value) = parse_string(&String::from_utf8_lossy(bytes));
        let mut text = String::new();
        append_text(schema.as_deref(), &value, false, &mut text);
        entries.push(Value::Struct(vec![Value::String(key.clone()), Value::String(text)]));
    }
    Ok(Value::Array(entries))
}

/// `RecordKey{key}` / `RecordHeaders{headers}`: the envelope of the key and headers views (Parquet's).
fn envelope<'a>(
    struct_name: &str,
    field: &str,
    schema: Option<Arc<Schema>>,
    value: Cow<'a, Value>,
) -> (Option<Arc<Schema>>, Cow<'a, Value>) {
    let mut s = Schema::primitive(SchemaType::Struct, false);
    s.name = Some(struct_name.into());
    s.fields = vec![sluice_connect_api::record::Field {
        name: field.into(),
        index: 0,
        schema: schema.unwrap_or_else(Schema::string),
    }];
    (Some(Arc::new(s)), Cow::Owned(Value::Struct(vec![value.into_owned()])))
}

/// The view's schema and value of a record, after Confluent's checks that keep the objects aligned: with keys
/// stored, a null key fails the record; with headers stored, a record without headers fails (before anything of
/// the record is written). `enveloped`: the key and headers views wrapped in a struct (`getViewSchema(record,
/// true)`, as ParquetRecordWriterProvider asks).
pub fn view_of(
    view: View,
    record: &SinkRecord,
    enveloped: bool,
) -> Result<(Option<Arc<Schema>>, Cow<'_, Value>), ConnectError> {
    let (schema, value) = plain_view(view, record)?;
    if enveloped && schema.is_none() {
        return Err(ConnectError::Data(format!(
            "the {} of {} has no schema; ParquetFormat writes records with schemas",
            view_name(view),
            loggable(record)
        )));
    }
    Ok(match (view, enveloped) {
        (View::Key, true) => envelope("RecordKey", "key", schema, value),
        (View::Headers, true) => envelope("RecordHeaders", "headers", schema, value),
        _ => (schema, value),
    })
}

fn plain_view(view: View, record: &SinkRecord) -> Result<(Option<Arc<Schema>>, Cow<'_, Value>), ConnectError> {
    match view {
        View::Value => Ok((record.value_schema.clone(), Cow::Borrowed(&record.value))),
        View::Key => {
            if matches!(record.key, Value::Null) {
                return Err(ConnectError::Data(format!("Key cannot be null for SinkRecord: {}", loggable(record))));
            }
            Ok((record.key_schema.clone(), Cow::Borrowed(&record.key)))
        }
        View::Headers => {
            if record.headers.is_empty() {
                return Err(ConnectError::Data(format!("Headers cannot be null for SinkRecord: {}", loggable(record))));
            }
            Ok((Some(headers_schema()), Cow::Owned(headers_view(record)?)))
        }
    }
}

impl Format {
    /// The object key's extension: `.json`/`.bin` (+ `.gz`), `.avro` (Avro ignores `s3.compression.type`).
    pub fn extension(&self, compression: Compression) -> String {
        match self {
            Format::Json => format!(".json{}", compression.extension()),
            Format::ByteArray { extension, .. } => format!("{extension}{}", compression.extension()),
            Format::Avro { .. } => ".avro".to_string(),
            Format::Parquet { codec, .. } => format!("{}.parquet", codec.extension()),
        }
    }

    /// Whether a file holds records of one schema (a change of the key schema starts a new file too).
    pub fn needs_one_schema(&self) -> bool {
        matches!(self, Format::Avro { .. } | Format::Parquet { .. })
    }

    /// Whether the key and headers views are enveloped (`RecordKey` / `RecordHeaders` structs).
    pub fn envelops(&self) -> bool {
        matches!(self, Format::Parquet { .. })
    }

    /// One record's view for this format: a JSON line, raw bytes + separator, an Avro datum, or the value for
    /// Parquet (checked against the schema here, so appending it cannot fail).
    pub fn encode_view(
        &self,
        view: View,
        schema: Option<&Schema>,
        value: Value,
        record: &SinkRecord,
    ) -> Result<Encoded, ConnectError> {
        let mut slot = Encoded::Bytes(Vec::new());
        self.encode_view_into(view, schema, Cow::Owned(value), record, &mut slot)?;
        Ok(slot)
    }

    /// [`Format::encode_view`] into a slot kept from record to record (its bytes buffer is reused).
    pub fn encode_view_into(
        &self,
        view: View,
        schema: Option<&Schema>,
        value: Cow<'_, Value>,
        record: &SinkRecord,
        slot: &mut Encoded,
    ) -> Result<(), ConnectError> {
        if let Format::Parquet { .. } = self {
            // The Avro encoding checks exactly what shredding needs: types per schema, no null where required.
            crate::avro::encode_datum(schema, &value, &mut Vec::new()).map_err(|e| {
                ConnectError::Data(format!("ParquetFormat: {e} ({} of {})", view_name(view), loggable(record)))
            })?;
            *slot = Encoded::Value(value.into_owned());
            return Ok(());
        }
        if !matches!(slot, Encoded::Bytes(_)) {
            *slot = Encoded::Bytes(Vec::new());
        }
        let Encoded::Bytes(out) = slot else { unreachable!() };
        out.clear();
        self.encode(view, schema, &value, record, out)
    }

    /// One record's bytes for this format: a JSON line, raw bytes + separator, or an Avro datum.
    pub fn encode(
        &self,
        view: View,
        schema: Option<&Schema>,
        value: &Value,
        record: &SinkRecord,
        out: &mut Vec<u8>,
    ) -> Result<(), ConnectError> {
        match self {
            Format::Json => {
                // JsonRecordWriterProvider: Structs through JsonConverter (schemas.enable=false), anything else
                // through Jackson; for the values Connect produces both render alike. Then "\n". The headers view
                // is enveloped as {"headers": [...]} (a `RecordHeaders` struct).
                let converter = json_converter();
                if view == View::Headers || !out.is_empty() {
                    if view == View::Headers {
                        out.extend_from_slice(b"{\"headers\":");
                    }
                    let mut buf = Vec::new();
                    if !converter.from_connect(&record.topic, schema, value, &mut buf)? {
                        buf.extend_from_slice(b"null");
                    }
                    out.extend_from_slice(&buf);
                    if view == View::Headers {
                        out.push(b'}');
                    }
                } else if !converter.from_connect(&record.topic, schema, value, out)? {
                    // Straight into `out` (the converter starts by clearing it: it is empty here).
                    out.extend_from_slice(b"null");
                }
                out.push(b'\n');
            }
            Format::ByteArray { separator, .. } => {
                match value {
                    Value::Bytes(b) => out.extend_from_slice(b),
                    Value::String(s) => out.extend_from_slice(s.as_bytes()),
                    other => {
                        // ByteArrayConverter-compatible values only; render other values as text.
                        if schema.is_some_and(|s| s.schema_type == SchemaType::Bytes) {
                            return Err(ConnectError::Data("ByteArrayFormat: bytes schema without bytes".into()));
                        }
                        let mut s = String::new();
                        write_text(schema, other, &mut s);
                        out.extend_from_slice(s.as_bytes());
                    }
                }
                out.extend_from_slice(separator);
            }
            Format::Avro { .. } | Format::Parquet { .. } => {
                crate::avro::encode_datum(schema, value, out).map_err(|e| {
                    ConnectError::Data(format!("AvroFormat: {e} ({} of {})", view_name(view), loggable(record)))
                })?
            }
        }
        Ok(())
    }

    /// A writer for a new object whose records have this (view) schema.
    pub fn writer(
        &self,
        compression: Compression,
        schema: Option<&Schema>,
        object_key: &str,
    ) -> Result<ObjectWriter, ConnectError> {
        Ok(match self {
            Format::Json | Format::ByteArray { .. } => ObjectWriter::Lines(match compression {
                Compression::None => LineOutput::Plain(Vec::new()),
                // Java's GZIPOutputStream header: no name, mtime 0, OS 0.
                Compression::Gzip(level) => LineOutput::Gzip(
                    flate2::GzBuilder::new().operating_system(0).write(Vec::new(), GzLevel::new(level)),
                ),
            }),
            Format::Avro { codec, connect_meta_data } => ObjectWriter::Avro(
                AvroFileWriter::new(schema, *codec, *connect_meta_data, object_key)
                    .map_err(|e| ConnectError::Data(format!("AvroFormat: {e} (object {object_key})")))?,
            ),
            Format::Parquet { codec, connect_meta_data } => {
                let data = |e: String| ConnectError::Data(format!("ParquetFormat: {e} (object {object_key})"));
                let avro = schema
                    .map(|s| crate::avro::avro_schema(s, *connect_meta_data))
                    .transpose()
                    .map_err(data)?
                    .unwrap_or_default();
                ObjectWriter::Parquet(Box::new(ParquetFileWriter::new(schema, *codec, avro).map_err(data)?))
            }
        })
    }
}

/// The JsonConverter (schemas.enable=false) JsonRecordWriterProvider writes values with: one for the process.
fn json_converter() -> &'static JsonConverter {
    static C: OnceLock<JsonConverter> = OnceLock::new();
    C.get_or_init(|| JsonConverter::new(false))
}

fn view_name(view: View) -> &'static str {
    match view {
        View::Value => "value",
        View::Key => "key",
        View::Headers => "headers",
    }
}

#[derive(Debug)]
pub enum LineOutput {
    Plain(Vec<u8>),
    Gzip(GzEncoder<Vec<u8>>),
}

/// The bytes of one object being written: records go in, finished bytes come out of [`ObjectWriter::ready`]
/// (uploaded as parts as they grow) until [`ObjectWriter::finish`] flushes the rest.
#[derive(Debug)]
pub enum ObjectWriter {
    Lines(LineOutput),
    Avro(AvroFileWriter),
    Parquet(Box<ParquetFileWriter>),
}

fn io_error(e: std::io::Error) -> ConnectError {
    ConnectError::Data(format!("compressing an object: {e}"))
}

impl ObjectWriter {
    /// Appends one encoded record ([`Format::encode_view`]).
    pub fn append(&mut self, encoded: &Encoded) -> Result<(), ConnectError> {
        match (self, encoded) {
            (ObjectWriter::Lines(LineOutput::Plain(v)), Encoded::Bytes(b)) => v.extend_from_slice(b),
            (ObjectWriter::Lines(LineOutput::Gzip(g)), Encoded::Bytes(b)) => g.write_all(b).map_err(io_error)?,
            (ObjectWriter::Avro(a), Encoded::Bytes(b)) => a.append(b),
            (ObjectWriter::Parquet(p), Encoded::Value(v)) => {
                p.append(v).map_err(|e| ConnectError::Data(format!("ParquetFormat: {e}")))?
            }
            _ => return Err(ConnectError::Data("an encoded record of another format".into())),
        }
        Ok(())
    }

    /// Takes `spare` (an empty buffer with capacity) as the output buffer, if this writer writes plain lines and
    /// has nothing yet; otherwise leaves it.
    pub fn adopt_buffer(&mut self, spare: &mut Vec<u8>) {
        if let ObjectWriter::Lines(LineOutput::Plain(buffer)) = self
            && buffer.is_empty()
            && buffer.capacity() < spare.capacity()
        {
            spare.clear();
            std::mem::swap(buffer, spare);
        }
    }

    /// Bytes ready to upload (taken by the uploader).
    pub fn ready(&mut self) -> &mut Vec<u8> {
        match self {
            ObjectWriter::Lines(LineOutput::Plain(v)) => v,
            ObjectWriter::Lines(LineOutput::Gzip(g)) => g.get_mut(),
            ObjectWriter::Avro(a) => a.ready(),
            ObjectWriter::Parquet(p) => p.ready(),
        }
    }

    /// Bytes held in memory (ready or still to be encoded into a block).
    pub fn buffered(&self) -> usize {
        match self {
            ObjectWriter::Lines(LineOutput::Plain(v)) => v.len(),
            ObjectWriter::Lines(LineOutput::Gzip(g)) => g.get_ref().len(),
            ObjectWriter::Avro(a) => a.buffered(),
            ObjectWriter::Parquet(p) => p.buffered(),
        }
    }

    /// Ends the object's stream (gzip trailer, last Avro block). Safe to call again after a failed upload.
    pub fn finish(&mut self) -> Result<(), ConnectError> {
        match self {
            ObjectWriter::Lines(LineOutput::Plain(_)) => {}
            ObjectWriter::Lines(LineOutput::Gzip(g)) => g.try_finish().map_err(io_error)?,
            ObjectWriter::Avro(a) => a.finish().map_err(io_error)?,
            ObjectWriter::Parquet(p) => p.finish().map_err(io_error)?,
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    fn rec(value: Value) -> SinkRecord {
        SinkRecord {
            topic: "t".into(),
            partition: 0,
            offset: 0,
            key_schema: None,
            key: Value::Null,
            value_schema: None,
            value,
            timestamp: Some(1_700_000_000_123),
            headers: Vec::new(),
        }
    }

    fn encode(f: &Format, view: View, r: &SinkRecord) -> Vec<u8> {
        let (schema, value) = view_of(view, r, false).unwrap();
        let mut out = Vec::new();
        f.encode(view, schema.as_deref(), &value, r, &mut out).unwrap();
        out
    }

    /// Fixture: JsonRecordWriterProvider (kafka-connect-storage-cloud v12.1.9): each value then "\n"; a String
    /// value is written by Jackson as a quoted JSON string.
    #[test]
    fn json_lines() {
        let mut out = encode(&Format::Json, View::Value, &rec(Value::String("hello \"w\"".into())));
        out.extend(encode(
            &Format::Json,
            View::Value,
            &rec(Value::Map(vec![(Value::String("a".into()), Value::Int64(1))])),
        ));
        assert_eq!(out, b"\"hello \\\"w\\\"\"\n{\"a\":1}\n");
        let f = Format::ByteArray { extension: ".bin".into(), separator: b"\n".to_vec() };
        assert_eq!(encode(&f, View::Value, &rec(Value::Bytes(bytes::Bytes::from_static(b"raw")))), b"raw\n");
    }

    /// Fixture: RecordViews.HeaderRecordView (v12.1.9): `{key, value}` structs with `Values.convertToString`,
    /// enveloped in a `RecordHeaders` struct for JSON; KeyValueHeaderRecordWriterProvider refuses null keys and
    /// records without headers.
    #[test]
    fn key_and_header_views() {
        let mut r = rec(Value::String("v".into()));
        assert!(view_of(View::Key, &r, false).unwrap_err().to_string().contains("Key cannot be null"));
        assert!(view_of(View::Headers, &r, false).unwrap_err().to_string().contains("Headers cannot be null"));
        r.key = Value::String("k1".into());
        r.headers = vec![("h".into(), Some(bytes::Bytes::from_static(b"1"))), ("s".into(), Some("x y".into()))];
        assert_eq!(encode(&Format::Json, View::Key, &r), b"\"k1\"\n");
        assert_eq!(
            String::from_utf8(encode(&Format::Json, View::Headers, &r)).unwrap(),
            "{\"headers\":[{\"key\":\"h\",\"value\":\"1\"},{\"key\":\"s\",\"value\":\"x y\"}]}\n"
        );
        r.headers.push(("n".into(), None));
        assert!(view_of(View::Headers, &r, false).is_err());
    }

    #[test]
    fn gzip_stream_reads_back() {
        let f = Format::Json;
        let mut w = f.writer(Compression::Gzip(6), None, "k").unwrap();
        let mut expected = Vec::new();
        for i in 0..1000 {
            let line = encode(&f, View::Value, &rec(Value::String(format!("line {i}"))));
            w.append(&Encoded::Bytes(line.clone())).unwrap();
            expected.extend(line);
        }
        let mut all = std::mem::take(w.ready());
        w.finish().unwrap();
        w.finish().unwrap();
        all.extend(std::mem::take(w.ready()));
        assert_eq!(&all[..4], &[0x1f, 0x8b, 8, 0]);
        let mut text = Vec::new();
        flate2::read::GzDecoder::new(&all[..]).read_to_end(&mut text).unwrap();
        assert_eq!(text, expected);
        assert_eq!(f.extension(Compression::Gzip(6)), ".json.gz");
    }
}
