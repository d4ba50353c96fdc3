//! The task's `header.converter` (Kafka Connect's default: `SimpleHeaderConverter`).
//!
//! Records carry their headers as bytes in `SimpleHeaderConverter`'s text form: that is what connectors and the
//! header transforms (`InsertHeader`, `HeaderFrom`) produce, and what sink tasks and predicates read. So with the
//! default converter, and with `ByteArrayConverter` (raw bytes), headers pass through untouched. Another converter
//! (`StringConverter`, `JsonConverter`) translates at the Kafka boundary: on the source path a header is read as a
//! Connect value (type inferred as `SimpleHeaderConverter` does) and written with the converter; on the sink path
//! the consumed bytes are read with the converter and rendered as `SimpleHeaderConverter` text.

use std::borrow::Cow;

use bytes::Bytes;
use sluice_connectors::header_converter::{HeaderConverter, SimpleHeaderConverter};
use sluice_connectors::primitive_converter::{coerce_header_value, primitive_type};
use sluice_connectors::{ConfigMap, ConnectError, Schema, SchemaType, registry};

/// The class used when neither the connector nor the worker names a `header.converter`.
pub(crate) const DEFAULT_HEADER_CONVERTER: &str = registry::SIMPLE_HEADER_CONVERTER;

const BYTE_ARRAY_CONVERTER: &str = "org.apache.kafka.connect.converters.ByteArrayConverter";

pub(crate) struct HeaderConversion {
    /// `None` when headers pass through as they are (SimpleHeaderConverter, ByteArrayConverter).
    converter: Option<Box<dyn HeaderConverter>>,
    /// Kafka Connect's class name of the converter, for error reports.
    pub class: String,
    /// The type a primitive converter (`IntegerConverter`, ...) writes: the text's inferred type is widened to it.
    primitive: Option<SchemaType>,
}

impl HeaderConversion {
    /// A configured converter for `class` (class name or alias) with its `header.converter.*` keys.
    pub fn new(class: &str, config: &ConfigMap) -> Result<Self, ConnectError> {
        let converter = registry::new_header_converter(class, config)?;
        let class = registry::header_converter_class_name(class).unwrap_or(class).to_string();
        let pass_through = class == registry::SIMPLE_HEADER_CONVERTER || class == BYTE_ARRAY_CONVERTER;
        let primitive = primitive_type(&class);
        Ok(HeaderConversion { converter: (!pass_through).then_some(converter), class, primitive })
    }

    /// The bytes to produce for a record header.
    pub fn encode_produced<'b>(
        &self,
        topic: &str,
        key: &str,
        value: Option<&'b [u8]>,
    ) -> Result<Option<Cow<'b, [u8]>>, ConnectError> {
        let Some(converter) = &self.converter else { return Ok(value.map(Cow::Borrowed)) };
        let (schema, value) = SimpleHeaderConverter.to_connect_header(topic, key, value)?;
        if let Some(target) = self.primitive {
            let value = coerce_header_value(target, value);
            let schema = Schema::primitive(target, true);
            return Ok(converter.from_connect_header(topic, key, Some(&schema), &value)?.map(Cow::Owned));
        }
        Ok(converter.from_connect_header(topic, key, schema.as_deref(), &value)?.map(Cow::Owned))
    }

    /// The record header of bytes consumed from Kafka.
    pub fn decode_consumed(&self, topic: &str, key: &str, value: Option<&[u8]>) -> Result<Option<Bytes>, ConnectError> {
        let Some(converter) = &self.converter else { return Ok(value.map(Bytes::copy_from_slice)) };
        let (schema, value) = converter.to_connect_header(topic, key, value)?;
        Ok(SimpleHeaderConverter.from_connect_header(topic, key, schema.as_deref(), &value)?.map(Bytes::from))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn conversion(class: &str, config: &[(&str, &str)]) -> HeaderConversion {
        let config = config.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        HeaderConversion::new(class, &config).expect("known converter")
    }

    #[test]
    fn simple_and_byte_array_pass_bytes_through() {
        for class in ["SimpleHeaderConverter", "org.apache.kafka.connect.converters.ByteArrayConverter"] {
            let c = conversion(class, &[]);
            assert!(matches!(c.encode_produced("t", "h", Some(b"[1,2]")), Ok(Some(Cow::Borrowed(b"[1,2]")))));
            assert_eq!(c.decode_consumed("t", "h", Some(b"\xff")).expect("raw"), Some(Bytes::from_static(b"\xff")));
            assert_eq!(c.encode_produced("t", "h", None).expect("null"), None);
        }
        assert_eq!(conversion("Simple", &[]).class, registry::SIMPLE_HEADER_CONVERTER);
    }

    #[test]
    fn json_converter_translates_at_the_boundary() {
        let c = conversion("JsonConverter", &[("schemas.enable", "true")]);
        let out = c.encode_produced("t", "h", Some(b"42")).expect("converts").expect("not null");
        assert_eq!(&*out, br#"{"schema":{"type":"int8","optional":false},"payload":42}"#);
        let back = c.decode_consumed("t", "h", Some(&out)).expect("reads");
        assert_eq!(back, Some(Bytes::from_static(b"42")));
        let plain = conversion("JsonConverter", &[("schemas.enable", "false")]);
        assert_eq!(plain.encode_produced("t", "h", Some(b"hi")).expect("converts").as_deref(), Some(&b"\"hi\""[..]));
        assert!(c.decode_consumed("t", "h", Some(b"not json")).is_err());
        assert!(HeaderConversion::new("AvroConverter", &ConfigMap::new()).is_err());
    }

    #[test]
    fn primitive_converters_take_the_inferred_number_in_their_type() {
        let c = conversion("IntegerConverter", &[]);
        let out = c.encode_produced("t", "h", Some(b"42")).expect("converts").expect("not null");
        assert_eq!(&*out, &[0, 0, 0, 42]);
        assert_eq!(c.decode_consumed("t", "h", Some(&out)).expect("reads"), Some(Bytes::from_static(b"42")));
        assert!(c.encode_produced("t", "h", Some(b"text")).is_err());
        assert!(c.encode_produced("t", "h", Some(b"9999999999")).is_err());
        let b = conversion("BooleanConverter", &[]);
        assert_eq!(b.encode_produced("t", "h", Some(b"true")).expect("converts").as_deref(), Some(&[1u8][..]));
        let d = conversion("DoubleConverter", &[]);
        let out = d.encode_produced("t", "h", Some(b"1.5")).expect("converts").expect("not null");
        assert_eq!(&*out, &1.5f64.to_bits().to_be_bytes());
    }
}
