//! The fast way `JsonConverter` reads an envelope `{"schema":...,"payload":...}`: the schema is parsed once and
//! kept by its exact text (Kafka Connect's `schemas.cache.size`), and the payload is read straight into Connect
//! data, guided by the schema, without building a `serde_json::Value` tree first.
//!
//! Every message repeats the same schema, which is most of its bytes and most of the parsing work (every field is
//! a small JSON object). This reader only ever answers with a value the full reader (`json_to_schema` +
//! `json_to_connect`) would give: whatever it does not handle the same way, or any error, makes it give up
//! (`None`), and the caller reads the message again the full way, which also words the error exactly.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex};

use serde::Deserialize;
use serde::de::{DeserializeSeed, Deserializer, IgnoredAny, MapAccess, Visitor};
use serde_json::value::RawValue;

use crate::record::{Schema, SchemaType, Value};

/// Schemas of envelopes, by the exact text of their `schema` part.
pub(crate) struct SchemaCache {
    capacity: usize,
    inner: Mutex<CacheInner>,
}

#[derive(Default)]
struct CacheInner {
    /// The schema of the last message: nearly every message of a topic repeats it.
    last: Option<(Box<str>, Arc<Schema>)>,
    by_text: HashMap<Box<str>, Arc<Schema>>,
}

impl SchemaCache {
    pub(crate) fn new(capacity: usize) -> Self {
        SchemaCache { capacity, inner: Mutex::new(CacheInner::default()) }
    }

    fn get(&self, text: &str) -> Option<Arc<Schema>> {
        let mut inner = self.inner.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some((last, schema)) = &inner.last
            && **last == *text
        {
            return Some(schema.clone());
        }
        let schema = inner.by_text.get(text)?.clone();
        inner.last = Some((text.into(), schema.clone()));
        Some(schema)
    }

    /// The last schema, when `bytes` starts with its text: its length and the schema.
    fn last_at_start_of(&self, bytes: &[u8]) -> Option<(usize, Arc<Schema>)> {
        let inner = self.inner.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let (text, schema) = inner.last.as_ref()?;
        bytes.starts_with(text.as_bytes()).then(|| (text.len(), schema.clone()))
    }

    fn insert(&self, text: &str, schema: Arc<Schema>) {
        if self.capacity == 0 {
            return;
        }
        let mut inner = self.inner.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        // Kafka Connect's cache is an LRU; dropping everything at the bound is simpler and as good for the usual
        // handful of schemas per topic.
        if inner.by_text.len() >= self.capacity {
            inner.by_text.clear();
        }
        inner.by_text.insert(text.into(), schema.clone());
        inner.last = Some((text.into(), schema));
    }
}

impl fmt::Debug for SchemaCache {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SchemaCache").field("capacity", &self.capacity).finish_non_exhaustive()
    }
}

impl Clone for SchemaCache {
    /// A clone starts with an empty cache of the same size.
    fn clone(&self) -> Self {
        SchemaCache::new(self.capacity)
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Envelope<'a> {
    #[serde(borrow)]
    schema: &'a RawValue,
    #[serde(borrow)]
    payload: &'a RawValue,
}

/// Reads an envelope; `None` when the full reader must do it (an error, or anything unusual).
pub(crate) fn read_envelope(cache: &SchemaCache, bytes: &[u8]) -> Option<(Option<Arc<Schema>>, Value)> {
    if let Some(read) = read_compact_with_last_schema(cache, bytes) {
        return Some(read);
    }
    let envelope: Envelope<'_> = serde_json::from_slice(bytes).ok()?;
    let text = envelope.schema.get();
    let schema = if text == "null" {
        None
    } else {
        match cache.get(text) {
            Some(schema) => Some(schema),
            None => {
                let json: serde_json::Value = serde_json::from_str(text).ok()?;
                let schema = Arc::new(crate::converter::json_to_schema(&json).ok()?);
                cache.insert(text, schema.clone());
                Some(schema)
            }
        }
    };
    let value = match schema.as_deref() {
        Some(schema) => {
            let mut de = serde_json::Deserializer::from_str(envelope.payload.get());
            let value = Typed(schema).deserialize(&mut de).ok()?;
            de.end().ok()?;
            value
        }
        None => {
            let json: serde_json::Value = serde_json::from_str(envelope.payload.get()).ok()?;
            crate::converter::json_to_connect(None, &json).ok()?
        }
    };
    Some((schema, value))
}

/// The envelope as JsonConverter writes it, `{"schema":<S>,"payload":<P>}` without spaces, where `S` is the text
/// of the last schema read: the schema part is compared, not parsed. `P` followed by the closing `}` must be all
/// that is left, so the envelope is valid JSON with exactly those two keys.
fn read_compact_with_last_schema(cache: &SchemaCache, bytes: &[u8]) -> Option<(Option<Arc<Schema>>, Value)> {
    let rest = bytes.strip_prefix(b"{\"schema\":")?;
    let (len, schema) = cache.last_at_start_of(rest)?;
    let payload = rest[len..].strip_prefix(b",\"payload\":")?.trim_ascii_end().strip_suffix(b"}")?;
    // UTF-8 checked once for the whole payload, rather than string by string (keys included) as a reader of bytes
    // does; invalid UTF-8 anywhere goes to the full reader, which reports it.
    let payload = std::str::from_utf8(payload).ok()?;
    let mut de = serde_json::Deserializer::from_str(payload);
    let value = Typed(&schema).deserialize(&mut de).ok()?;
    de.end().ok()?;
    Some((Some(schema), value))
}

/// Reads one JSON value as Connect data of `schema`. Structs and strings directly; other scalars through a
/// one-node `serde_json::Value` and the full reader's rules; arrays, maps and bytes through the full reader.
struct Typed<'s>(&'s Schema);

/// The error of the fast reader: its text is never shown (the full reader words the real one).
fn give_up<E: serde::de::Error>() -> E {
    E::custom("not for the fast reader")
}

fn full<E: serde::de::Error>(schema: &Schema, json: &serde_json::Value) -> Result<Value, E> {
    crate::converter::json_to_connect(Some(schema), json).map_err(|_| give_up())
}

impl<'de> DeserializeSeed<'de> for Typed<'_> {
    type Value = Value;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Value, D::Error> {
        match self.0.schema_type {
            SchemaType::Array | SchemaType::Map | SchemaType::Bytes => {
                let json = serde_json::Value::deserialize(deserializer)?;
                full(self.0, &json)
            }
            _ => deserializer.deserialize_any(self),
        }
    }
}

impl<'de> Visitor<'de> for Typed<'_> {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "a JSON value for a {} schema", self.0.schema_type.name())
    }

    fn visit_unit<E: serde::de::Error>(self) -> Result<Value, E> {
        full(self.0, &serde_json::Value::Null)
    }

    fn visit_bool<E: serde::de::Error>(self, v: bool) -> Result<Value, E> {
        match self.0.schema_type {
            SchemaType::Boolean => Ok(Value::Boolean(v)),
            _ => full(self.0, &serde_json::Value::Bool(v)),
        }
    }

    fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<Value, E> {
        match self.0.schema_type {
            SchemaType::Int64 => Ok(Value::Int64(v)),
            _ => full(self.0, &serde_json::Value::from(v)),
        }
    }

    fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<Value, E> {
        match (self.0.schema_type, i64::try_from(v)) {
            (SchemaType::Int64, Ok(v)) => Ok(Value::Int64(v)),
            _ => full(self.0, &serde_json::Value::from(v)),
        }
    }

    fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<Value, E> {
        match self.0.schema_type {
            SchemaType::Float64 => Ok(Value::Float64(crate::converter::kafka_float(v))),
            _ => {
                let json = serde_json::Number::from_f64(v).map(serde_json::Value::Number).ok_or_else(give_up)?;
                full(self.0, &json)
            }
        }
    }

    fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Value, E> {
        match self.0.schema_type {
            SchemaType::String => Ok(Value::String(v.to_string())),
            _ => full(self.0, &serde_json::Value::String(v.to_string())),
        }
    }

    fn visit_string<E: serde::de::Error>(self, v: String) -> Result<Value, E> {
        match self.0.schema_type {
            SchemaType::String => Ok(Value::String(v)),
            _ => full(self.0, &serde_json::Value::String(v)),
        }
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let schema = self.0;
        if schema.schema_type != SchemaType::Struct {
            return Err(give_up());
        }
        // Fields usually come in schema order, each once: read straight into place.
        let mut fields = Vec::with_capacity(schema.fields.len());
        let mut key = map.next_key::<std::borrow::Cow<'de, str>>()?;
        while let Some(name) = &key {
            match schema.fields.get(fields.len()) {
                Some(field) if field.name == **name => {
                    fields.push(map.next_value_seed(Typed(&field.schema))?);
                    key = map.next_key()?;
                }
                _ => break,
            }
        }
        if key.is_none() && fields.len() == schema.fields.len() {
            return Ok(Value::Struct(fields));
        }
        // Anything else (another order, unknown, repeated or missing keys): by field index.
        let mut next = fields.len();
        let mut values: Vec<Option<Value>> = fields.into_iter().map(Some).collect();
        values.resize(schema.fields.len(), None);
        loop {
            let key = match key.take() {
                Some(key) => key,
                None => match map.next_key::<std::borrow::Cow<'de, str>>()? {
                    Some(key) => key,
                    None => break,
                },
            };
            let index = match schema.fields.get(next) {
                Some(f) if f.name == *key => Some(next),
                _ => schema.fields.iter().position(|f| f.name == *key),
            };
            match index {
                Some(index) => {
                    // A repeated key: the last one counts, as in the full reader.
                    values[index] = Some(map.next_value_seed(Typed(&schema.fields[index].schema))?);
                    next = index + 1;
                }
                None => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        let mut fields = Vec::with_capacity(values.len());
        for (value, field) in values.into_iter().zip(&schema.fields) {
            fields.push(match value {
                Some(value) => value,
                None => full(&field.schema, &serde_json::Value::Null)?,
            });
        }
        Ok(Value::Struct(fields))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The full reader, as `JsonConverter::to_connect` runs it when the fast one gives up.
    fn full_read(bytes: &str) -> Result<(Option<Schema>, Value), String> {
        let json: serde_json::Value = serde_json::from_str(bytes).map_err(|e| e.to_string())?;
        let schema = match &json["schema"] {
            serde_json::Value::Null => None,
            s => Some(crate::converter::json_to_schema(s).map_err(|e| e.to_string())?),
        };
        let value = crate::converter::json_to_connect(schema.as_ref(), &json["payload"]).map_err(|e| e.to_string())?;
        Ok((schema, value))
    }

    const FIELDS: &str = r#"{"type":"struct","name":"r","optional":false,"fields":[
        {"field":"id","type":"int32","optional":false},
        {"field":"big","type":"int64","optional":true},
        {"field":"name","type":"string","optional":true},
        {"field":"score","type":"double","optional":true},
        {"field":"f","type":"float","optional":true},
        {"field":"flag","type":"boolean","optional":true},
        {"field":"small","type":"int8","optional":true,"default":7},
        {"field":"raw","type":"bytes","optional":true},
        {"field":"dec","type":"bytes","optional":true,"name":"org.apache.kafka.connect.data.Decimal","version":1,"parameters":{"scale":"2"}},
        {"field":"tags","type":"array","items":{"type":"string","optional":false},"optional":true},
        {"field":"m","type":"map","keys":{"type":"string","optional":false},"values":{"type":"int32","optional":true},"optional":true},
        {"field":"inner","type":"struct","optional":true,"fields":[{"field":"a","type":"int16","optional":true},{"field":"b","type":"string","optional":false,"default":"x"}]}
    ]}"#;

    #[test]
    fn the_fast_reader_reads_what_the_full_reader_reads() {
        let cache = SchemaCache::new(10);
        let payloads = [
            r#"{"id":1,"big":9007199254740993,"name":"a\"b\u00e9","score":1.5,"f":0.1,"flag":true,"small":-3,"raw":"AQI=","dec":"AMg=","tags":["x","y"],"m":{"k":1,"j":null},"inner":{"a":2,"b":"q"}}"#,
            r#"{"id":2}"#,
            r#"{"id":3,"name":null,"small":null,"inner":{"a":null}}"#,
            r#"{"inner":null,"id":1e3,"score":4,"f":"Infinity","big":-5,"unknown":{"deep":[1,2,{"x":null}]}}"#,
            r#"{"id":4,"id":5,"score":"-Infinity","name":"dup","name":"last"}"#,
            r#"{"id":6,"big":1.0,"small":127,"m":{}}"#,
        ];
        for payload in payloads {
            let text = format!(r#"{{"schema":{FIELDS},"payload":{payload}}}"#);
            let (schema, value) = read_envelope(&cache, text.as_bytes()).unwrap_or_else(|| panic!("fast: {payload}"));
            let (want_schema, want_value) = full_read(&text).unwrap();
            assert_eq!(schema.as_deref(), want_schema.as_ref(), "{payload}");
            assert_eq!(value, want_value, "{payload}");
        }
        // Bad payloads: the fast reader gives up and the full reader words the error.
        for payload in [
            r#"{"id":null}"#,
            r#"{"id":"1"}"#,
            r#"{"id":1.5}"#,
            r#"{"id":3000000000}"#,
            r#"{"id":1,"small":300}"#,
            r#"{"id":1,"big":18446744073709551615}"#,
            r#"{"id":1,"raw":"%%%"}"#,
            r#"{"id":1,"inner":{"a":"s"}}"#,
            r#"[1]"#,
        ] {
            let text = format!(r#"{{"schema":{FIELDS},"payload":{payload}}}"#);
            assert!(read_envelope(&cache, text.as_bytes()).is_none(), "{payload}");
            assert!(full_read(&text).is_err(), "{payload}");
        }
    }

    #[test]
    fn envelopes_the_fast_reader_leaves_to_the_full_reader() {
        let cache = SchemaCache::new(10);
        for text in [
            r#"{"schema":{"type":"string"},"payload":"a","extra":1}"#,
            r#"{"schema":{"type":"string"}}"#,
            r#"{"payload":"a"}"#,
            r#"{"schema":{"type":"nope"},"payload":"a"}"#,
            r#"[1,2]"#,
            r#"{"schema":{"type":"string"},"payload":"a"} x"#,
        ] {
            assert!(read_envelope(&cache, text.as_bytes()).is_none(), "{text}");
        }
        let (schema, value) = read_envelope(&cache, br#"{"schema":null,"payload":{"a":[1,2.5,"x"]}}"#).unwrap();
        assert!(schema.is_none());
        assert_eq!(
            value,
            Value::Map(vec![(
                Value::String("a".into()),
                Value::Array(vec![Value::Int64(1), Value::Float64(2.5), Value::String("x".into())])
            )])
        );
        let (schema, value) =
            read_envelope(&cache, br#"{"payload":null,"schema":{"type":"int64","optional":true}}"#).unwrap();
        assert_eq!(schema.map(|s| s.schema_type), Some(SchemaType::Int64));
        assert_eq!(value, Value::Null);
    }

    #[test]
    fn schemas_are_read_once_and_shared() {
        let cache = SchemaCache::new(2);
        let a = br#"{"schema":{"type":"string","optional":false},"payload":"a"}"#;
        let b = br#"{"schema":{"type":"int32","optional":false},"payload":1}"#;
        let c = br#"{"schema":{"type":"boolean","optional":false},"payload":true}"#;
        let first = read_envelope(&cache, a).unwrap().0.unwrap();
        let again = read_envelope(&cache, a).unwrap().0.unwrap();
        assert!(Arc::ptr_eq(&first, &again));
        read_envelope(&cache, b).unwrap();
        assert!(Arc::ptr_eq(&first, &read_envelope(&cache, a).unwrap().0.unwrap()));
        // Past the bound the cache starts over; the schemas still read the same.
        read_envelope(&cache, c).unwrap();
        assert_eq!(*read_envelope(&cache, a).unwrap().0.unwrap(), *first);
        // The compact form with the last schema: compared, not parsed; anything else after it goes the long way.
        let compact = br#"{"schema":{"type":"string","optional":false},"payload":"b"}"#;
        assert_eq!(read_envelope(&cache, compact).unwrap().1, Value::String("b".into()));
        for odd in [
            &br#"{"schema":{"type":"string","optional":false},"payload":"b"}}"#[..],
            br#"{"schema":{"type":"string","optional":false},"payload":"b","x":1}"#,
            br#"{"schema":{"type":"string","optional":false},"payload":"b""#,
            br#"{"schema":{"type":"string","optional":false},"payload":}"#,
        ] {
            assert!(read_envelope(&cache, odd).is_none(), "{}", String::from_utf8_lossy(odd));
        }
        let spaced = br#"{"schema":{"type":"string","optional":false},"payload":"c"}  "#;
        assert_eq!(read_envelope(&cache, spaced).unwrap().1, Value::String("c".into()));
        let none = SchemaCache::new(0);
        let x = read_envelope(&none, a).unwrap().0.unwrap();
        assert!(!Arc::ptr_eq(&x, &read_envelope(&none, a).unwrap().0.unwrap()));
    }
}
