//! Kafka Connect's primitive converters of `org.apache.kafka.connect.converters`: `BooleanConverter` and the number
//! converters `ShortConverter`, `IntegerConverter`, `LongConverter`, `FloatConverter` and `DoubleConverter`. Each is a
//! converter and a header converter, as in Kafka Connect, and writes what Kafka's own serializers write: one byte
//! (`0`/`1`) for a boolean, the big-endian two's complement or IEEE 754 bits for a number.
//!
//! Like Kafka Connect they are strict about the Java type of the value and lenient about the schema: a number
//! converter ignores the schema and accepts only its own type (an `INT16` value is refused by `IntegerConverter`, not
//! widened), `BooleanConverter` also refuses any schema that is not `BOOLEAN`, even for a null. Reading always gives
//! the converter's optional schema; bytes of the wrong length are a data error.

use std::sync::{Arc, OnceLock};

use crate::config::ConfigMap;
use crate::converter::Converter;
use crate::error::ConnectError;
use crate::record::{Schema, SchemaType, Value};

/// Logical types whose Java value is a `java.util.Date` or a `BigDecimal`: never a boxed number for Kafka Connect,
/// although Sluice carries them as integers or bytes.
const LOGICAL_NAMES: &[(&str, &str)] = &[
    ("org.apache.kafka.connect.data.Date", "java.util.Date"),
    ("org.apache.kafka.connect.data.Time", "java.util.Date"),
    ("org.apache.kafka.connect.data.Timestamp", "java.util.Date"),
    ("org.apache.kafka.connect.data.Decimal", "java.math.BigDecimal"),
];

/// The Java class Kafka Connect would hold for `value` (with `schema`), as its error messages name it.
fn java_class(schema: Option<&Schema>, value: &Value) -> &'static str {
    if let Some(class) = schema
        .and_then(|s| s.name.as_deref())
        .and_then(|name| LOGICAL_NAMES.iter().find(|(logical, _)| *logical == name))
        .map(|(_, class)| *class)
    {
        return class;
    }
    match value {
        Value::Null => "null",
        Value::Boolean(_) => "java.lang.Boolean",
        Value::Int8(_) => "java.lang.Byte",
        Value::Int16(_) => "java.lang.Short",
        Value::Int32(_) => "java.lang.Integer",
        Value::Int64(_) => "java.lang.Long",
        Value::Float32(_) => "java.lang.Float",
        Value::Float64(_) => "java.lang.Double",
        Value::String(_) => "java.lang.String",
        Value::Bytes(_) => "[B",
        Value::Array(_) => "java.util.List",
        Value::Map(_) => "java.util.Map",
        Value::Struct(_) => "org.apache.kafka.connect.data.Struct",
    }
}

fn is_logical(schema: Option<&Schema>) -> bool {
    schema.and_then(|s| s.name.as_deref()).is_some_and(|name| LOGICAL_NAMES.iter().any(|(l, _)| *l == name))
}

fn optional_schema(schema_type: SchemaType) -> Arc<Schema> {
    static SCHEMAS: OnceLock<Vec<Arc<Schema>>> = OnceLock::new();
    let all = SCHEMAS.get_or_init(|| {
        NumberKind::ALL
            .iter()
            .map(|k| k.schema_type())
            .chain([SchemaType::Boolean])
            .map(|t| Arc::new(Schema::primitive(t, true)))
            .collect()
    });
    all.iter()
        .find(|s| s.schema_type == schema_type)
        .cloned()
        .unwrap_or_else(|| Arc::new(Schema::primitive(schema_type, true)))
}

/// The number type of a [`NumberConverter`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NumberKind {
    Short,
    Integer,
    Long,
    Float,
    Double,
}

impl NumberKind {
    const ALL: [NumberKind; 5] =
        [NumberKind::Short, NumberKind::Integer, NumberKind::Long, NumberKind::Float, NumberKind::Double];

    fn schema_type(self) -> SchemaType {
        match self {
            NumberKind::Short => SchemaType::Int16,
            NumberKind::Integer => SchemaType::Int32,
            NumberKind::Long => SchemaType::Int64,
            NumberKind::Float => SchemaType::Float32,
            NumberKind::Double => SchemaType::Float64,
        }
    }

    /// The type name in Kafka Connect's messages (`Failed to serialize to integer ...`).
    fn type_name(self) -> &'static str {
        match self {
            NumberKind::Short => "short",
            NumberKind::Integer => "integer",
            NumberKind::Long => "long",
            NumberKind::Float => "float",
            NumberKind::Double => "double",
        }
    }

    /// The boxed Java type, as Kafka's `<Type>Deserializer` is named.
    fn java_name(self) -> &'static str {
        match self {
            NumberKind::Short => "Short",
            NumberKind::Integer => "Integer",
            NumberKind::Long => "Long",
            NumberKind::Float => "Float",
            NumberKind::Double => "Double",
        }
    }

    fn width(self) -> usize {
        match self {
            NumberKind::Short => 2,
            NumberKind::Integer | NumberKind::Float => 4,
            NumberKind::Long | NumberKind::Double => 8,
        }
    }
}

/// The schema type a primitive converter writes, by Kafka Connect class name; `None` for other converters.
pub fn primitive_type(class: &str) -> Option<SchemaType> {
    Some(match class {
        "org.apache.kafka.connect.converters.BooleanConverter" => SchemaType::Boolean,
        "org.apache.kafka.connect.converters.ShortConverter" => SchemaType::Int16,
        "org.apache.kafka.connect.converters.IntegerConverter" => SchemaType::Int32,
        "org.apache.kafka.connect.converters.LongConverter" => SchemaType::Int64,
        "org.apache.kafka.connect.converters.FloatConverter" => SchemaType::Float32,
        "org.apache.kafka.connect.converters.DoubleConverter" => SchemaType::Float64,
        _ => return None,
    })
}

/// A header value read back from `SimpleHeaderConverter`'s text, in the type a primitive header converter takes.
/// The text infers the narrowest type (`42` is INT8) where the header Kafka Connect held was typed (an `Integer`), so
/// a number that the target type holds exactly is converted; anything else is left for the converter to refuse.
pub fn coerce_header_value(target: SchemaType, value: Value) -> Value {
    let integer = match value {
        Value::Int8(v) => Some(i64::from(v)),
        Value::Int16(v) => Some(i64::from(v)),
        Value::Int32(v) => Some(i64::from(v)),
        Value::Int64(v) => Some(v),
        _ => None,
    };
    match (target, integer, &value) {
        (SchemaType::Int16, Some(v), _) => i16::try_from(v).map_or(value, Value::Int16),
        (SchemaType::Int32, Some(v), _) => i32::try_from(v).map_or(value, Value::Int32),
        (SchemaType::Int64, Some(v), _) => Value::Int64(v),
        // Integers within 2^24 (2^53) are exact in a float (double).
        (SchemaType::Float32, Some(v), _) if v.unsigned_abs() <= 1 << 24 => Value::Float32(v as f32),
        (SchemaType::Float64, Some(v), _) if v.unsigned_abs() <= 1 << 53 => Value::Float64(v as f64),
        // The float's shortest text read as a double: `0.1` stays 0.1, not 0.10000000149011612.
        (SchemaType::Float64, None, Value::Float32(v)) => {
            Value::Float64(v.to_string().parse().unwrap_or_else(|_| f64::from(*v)))
        }
        _ => value,
    }
}

/// Kafka Connect's `ShortConverter`, `IntegerConverter`, `LongConverter`, `FloatConverter` and `DoubleConverter`.
#[derive(Debug, Clone, Copy)]
pub struct NumberConverter(pub NumberKind);

impl Converter for NumberConverter {
    /// Kafka Connect's only key, `converter.type`, is set by the worker; the serializers take no settings.
    fn configure(&mut self, _config: &ConfigMap, _is_key: bool) -> Result<(), ConnectError> {
        Ok(())
    }

    fn from_connect(
        &self,
        _topic: &str,
        schema: Option<&Schema>,
        value: &Value,
        out: &mut Vec<u8>,
    ) -> Result<bool, ConnectError> {
        out.clear();
        let logical = is_logical(schema);
        match (self.0, value) {
            (_, Value::Null) => return Ok(false),
            (NumberKind::Short, Value::Int16(v)) if !logical => out.extend_from_slice(&v.to_be_bytes()),
            (NumberKind::Integer, Value::Int32(v)) if !logical => out.extend_from_slice(&v.to_be_bytes()),
            (NumberKind::Long, Value::Int64(v)) if !logical => out.extend_from_slice(&v.to_be_bytes()),
            (NumberKind::Float, Value::Float32(v)) => out.extend_from_slice(&v.to_bits().to_be_bytes()),
            (NumberKind::Double, Value::Float64(v)) => out.extend_from_slice(&v.to_bits().to_be_bytes()),
            (kind, other) => {
                return Err(ConnectError::Data(format!(
                    "Failed to serialize to {} (was class {}): ",
                    kind.type_name(),
                    java_class(schema, other)
                )));
            }
        }
        Ok(true)
    }

    fn to_connect(&self, _topic: &str, bytes: Option<&[u8]>) -> Result<(Option<Arc<Schema>>, Value), ConnectError> {
        let schema = Some(optional_schema(self.0.schema_type()));
        let Some(bytes) = bytes else { return Ok((schema, Value::Null)) };
        let wrong_size = || {
            ConnectError::Data(format!(
                "Failed to deserialize {}: Size of data received by {}Deserializer is not {}",
                self.0.type_name(),
                self.0.java_name(),
                self.0.width()
            ))
        };
        let value = match self.0 {
            NumberKind::Short => Value::Int16(i16::from_be_bytes(bytes.try_into().map_err(|_| wrong_size())?)),
            NumberKind::Integer => Value::Int32(i32::from_be_bytes(bytes.try_into().map_err(|_| wrong_size())?)),
            NumberKind::Long => Value::Int64(i64::from_be_bytes(bytes.try_into().map_err(|_| wrong_size())?)),
            NumberKind::Float => {
                Value::Float32(f32::from_bits(u32::from_be_bytes(bytes.try_into().map_err(|_| wrong_size())?)))
            }
            NumberKind::Double => {
                Value::Float64(f64::from_bits(u64::from_be_bytes(bytes.try_into().map_err(|_| wrong_size())?)))
            }
        };
        Ok((schema, value))
    }
}

/// Kafka Connect's `BooleanConverter`: one byte, `1` for true and `0` for false.
#[derive(Debug, Default, Clone, Copy)]
pub struct BooleanConverter;

impl Converter for BooleanConverter {
    /// Kafka Connect's only key, `converter.type`, is set by the worker; the serializer takes no settings.
    fn configure(&mut self, _config: &ConfigMap, _is_key: bool) -> Result<(), ConnectError> {
        Ok(())
    }

    fn from_connect(
        &self,
        _topic: &str,
        schema: Option<&Schema>,
        value: &Value,
        out: &mut Vec<u8>,
    ) -> Result<bool, ConnectError> {
        out.clear();
        // The schema is checked first, even for a null (Kafka Connect does the same).
        if let Some(schema) = schema
            && schema.schema_type != SchemaType::Boolean
        {
            return Err(ConnectError::Data(format!(
                "Invalid schema type for BooleanConverter: {}",
                schema.schema_type.name()
            )));
        }
        match value {
            Value::Null => Ok(false),
            Value::Boolean(v) => {
                out.push(u8::from(*v));
                Ok(true)
            }
            other => Err(ConnectError::Data(format!(
                "BooleanConverter is not compatible with objects of type class {}",
                java_class(schema, other)
            ))),
        }
    }

    fn to_connect(&self, _topic: &str, bytes: Option<&[u8]>) -> Result<(Option<Arc<Schema>>, Value), ConnectError> {
        let schema = Some(optional_schema(SchemaType::Boolean));
        let value = match bytes {
            None => Value::Null,
            Some([0]) => Value::Boolean(false),
            Some([1]) => Value::Boolean(true),
            Some([other]) => {
                return Err(ConnectError::Data(format!(
                    "Failed to deserialize boolean: Unexpected byte received by BooleanDeserializer: {other}"
                )));
            }
            Some(_) => {
                return Err(ConnectError::Data(
                    "Failed to deserialize boolean: Size of data received by BooleanDeserializer is not 1".into(),
                ));
            }
        };
        Ok((schema, value))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(converter: &dyn Converter, schema: Option<&Schema>, value: &Value) -> Result<Option<Vec<u8>>, String> {
        let mut out = vec![9, 9];
        converter.from_connect("t", schema, value, &mut out).map(|some| some.then_some(out)).map_err(|e| e.to_string())
    }

    #[test]
    fn numbers_are_big_endian_and_strictly_typed() {
        let int = NumberConverter(NumberKind::Integer);
        assert_eq!(write(&int, None, &Value::Int32(0x01020304)), Ok(Some(vec![1, 2, 3, 4])));
        assert_eq!(write(&int, None, &Value::Null), Ok(None));
        let err = write(&int, None, &Value::Int16(1)).unwrap_err();
        assert!(err.contains("Failed to serialize to integer (was class java.lang.Short)"), "{err}");
        let mut date = Schema::primitive(SchemaType::Int32, false);
        date.name = Some("org.apache.kafka.connect.data.Date".into());
        let err = write(&int, Some(&date), &Value::Int32(1)).unwrap_err();
        assert!(err.contains("was class java.util.Date"), "{err}");
        let double = NumberConverter(NumberKind::Double);
        assert_eq!(write(&double, None, &Value::Float64(-0.0)), Ok(Some(vec![0x80, 0, 0, 0, 0, 0, 0, 0])));
        let (schema, value) = double.to_connect("t", Some(&[0x3f, 0xf0, 0, 0, 0, 0, 0, 0])).expect("reads");
        assert_eq!((schema.expect("schema").schema_type, value), (SchemaType::Float64, Value::Float64(1.0)));
        assert!(double.to_connect("t", Some(&[1, 2, 3, 4])).is_err());
        let (_, value) = NumberConverter(NumberKind::Short).to_connect("t", None).expect("null");
        assert_eq!(value, Value::Null);
    }

    #[test]
    fn header_values_take_the_converters_type_when_exact() {
        assert_eq!(coerce_header_value(SchemaType::Int32, Value::Int8(42)), Value::Int32(42));
        assert_eq!(coerce_header_value(SchemaType::Int16, Value::Int32(70000)), Value::Int32(70000));
        assert_eq!(coerce_header_value(SchemaType::Float64, Value::Int16(-3)), Value::Float64(-3.0));
        assert_eq!(coerce_header_value(SchemaType::Float32, Value::Int64(1 << 40)), Value::Int64(1 << 40));
        assert_eq!(coerce_header_value(SchemaType::Boolean, Value::Int8(1)), Value::Int8(1));
        assert_eq!(coerce_header_value(SchemaType::Float64, Value::Float32(0.1)), Value::Float64(0.1));
        assert_eq!(primitive_type("org.apache.kafka.connect.converters.LongConverter"), Some(SchemaType::Int64));
    }

    #[test]
    fn booleans_are_one_byte_and_check_the_schema() {
        let b = BooleanConverter;
        assert_eq!(write(&b, None, &Value::Boolean(true)), Ok(Some(vec![1])));
        assert_eq!(write(&b, None, &Value::Boolean(false)), Ok(Some(vec![0])));
        let int32 = Schema::primitive(SchemaType::Int32, true);
        assert!(write(&b, Some(&int32), &Value::Null).unwrap_err().contains("Invalid schema type"));
        assert!(write(&b, None, &Value::Int8(1)).unwrap_err().contains("class java.lang.Byte"));
        assert_eq!(b.to_connect("t", Some(&[1])).expect("reads").1, Value::Boolean(true));
        assert!(b.to_connect("t", Some(&[2])).is_err());
        assert!(b.to_connect("t", Some(&[])).is_err());
    }
}
