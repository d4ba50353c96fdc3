//! Building Kafka Connect schemas, and Debezium's logical types for columns.

use std::sync::Arc;

use sluice_connect_api::record::{Field, Schema, SchemaType, Value};

/// A builder for [`Schema`], like Kafka Connect's `SchemaBuilder`.
#[derive(Debug, Clone)]
pub struct SchemaBuilder {
    schema: Schema,
}

impl SchemaBuilder {
    pub fn new(schema_type: SchemaType) -> Self {
        SchemaBuilder { schema: Schema::primitive(schema_type, false) }
    }

    pub fn int8() -> Self {
        Self::new(SchemaType::Int8)
    }
    pub fn int16() -> Self {
        Self::new(SchemaType::Int16)
    }
    pub fn int32() -> Self {
        Self::new(SchemaType::Int32)
    }
    pub fn int64() -> Self {
        Self::new(SchemaType::Int64)
    }
    pub fn float32() -> Self {
        Self::new(SchemaType::Float32)
    }
    pub fn float64() -> Self {
        Self::new(SchemaType::Float64)
    }
    pub fn boolean() -> Self {
        Self::new(SchemaType::Boolean)
    }
    pub fn string() -> Self {
        Self::new(SchemaType::String)
    }
    pub fn bytes() -> Self {
        Self::new(SchemaType::Bytes)
    }
    pub fn struct_() -> Self {
        Self::new(SchemaType::Struct)
    }
    pub fn array(element: Arc<Schema>) -> Self {
        let mut b = Self::new(SchemaType::Array);
        b.schema.value_schema = Some(element);
        b
    }
    pub fn map(key: Arc<Schema>, value: Arc<Schema>) -> Self {
        let mut b = Self::new(SchemaType::Map);
        b.schema.key_schema = Some(key);
        b.schema.value_schema = Some(value);
        b
    }

    pub fn optional(mut self) -> Self {
        self.schema.optional = true;
        self
    }
    pub fn set_optional(mut self, optional: bool) -> Self {
        self.schema.optional = optional;
        self
    }
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.schema.name = Some(name.into());
        self
    }
    pub fn version(mut self, version: i32) -> Self {
        self.schema.version = Some(version);
        self
    }
    pub fn doc(mut self, doc: impl Into<String>) -> Self {
        self.schema.doc = Some(doc.into());
        self
    }
    /// Adds a parameter (kept in insertion order).
    pub fn parameter(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.schema.parameters.get_or_insert_with(Vec::new).push((key.into(), value.into()));
        self
    }
    pub fn default_value(mut self, value: Value) -> Self {
        self.schema.default = Some(Box::new(value));
        self
    }
    /// Adds a struct field (index = position).
    pub fn field(mut self, name: impl Into<String>, schema: Arc<Schema>) -> Self {
        let index = self.schema.fields.len();
        self.schema.fields.push(Field { name: name.into(), index, schema });
        self
    }
    pub fn build(self) -> Schema {
        self.schema
    }
    pub fn arc(self) -> Arc<Schema> {
        Arc::new(self.schema)
    }
}

/// A copy of `schema` with `optional` set.
pub fn with_optional(schema: &Schema, optional: bool) -> Schema {
    let mut s = schema.clone();
    s.optional = optional;
    s
}

// Logical type names.
pub const DECIMAL: &str = "org.apache.kafka.connect.data.Decimal";
pub const CONNECT_DATE: &str = "org.apache.kafka.connect.data.Date";
pub const CONNECT_TIME: &str = "org.apache.kafka.connect.data.Time";
pub const CONNECT_TIMESTAMP: &str = "org.apache.kafka.connect.data.Timestamp";
pub const DATE: &str = "io.debezium.time.Date";
pub const TIME: &str = "io.debezium.time.Time";
pub const MICRO_TIME: &str = "io.debezium.time.MicroTime";
pub const NANO_TIME: &str = "io.debezium.time.NanoTime";
pub const TIMESTAMP: &str = "io.debezium.time.Timestamp";
pub const MICRO_TIMESTAMP: &str = "io.debezium.time.MicroTimestamp";
pub const NANO_TIMESTAMP: &str = "io.debezium.time.NanoTimestamp";
pub const ZONED_TIMESTAMP: &str = "io.debezium.time.ZonedTimestamp";
pub const ZONED_TIME: &str = "io.debezium.time.ZonedTime";
pub const ISO_DATE: &str = "io.debezium.time.IsoDate";
pub const ISO_TIME: &str = "io.debezium.time.IsoTime";
pub const ISO_TIMESTAMP: &str = "io.debezium.time.IsoTimestamp";
pub const MICRO_DURATION: &str = "io.debezium.time.MicroDuration";
pub const INTERVAL: &str = "io.debezium.time.Interval";
pub const YEAR: &str = "io.debezium.time.Year";
pub const VARIABLE_SCALE_DECIMAL: &str = "io.debezium.data.VariableScaleDecimal";
pub const JSON: &str = "io.debezium.data.Json";
pub const UUID: &str = "io.debezium.data.Uuid";
pub const XML: &str = "io.debezium.data.Xml";
pub const ENUM: &str = "io.debezium.data.Enum";
pub const ENUM_SET: &str = "io.debezium.data.EnumSet";
pub const BITS: &str = "io.debezium.data.Bits";
pub const LTREE: &str = "io.debezium.data.Ltree";
pub const GEOMETRY: &str = "io.debezium.data.geometry.Geometry";
pub const POINT: &str = "io.debezium.data.geometry.Point";

fn logical(b: SchemaBuilder, name: &str) -> SchemaBuilder {
    b.name(name).version(1)
}

/// Kafka Connect's `Decimal` with Debezium's extra `connect.decimal.precision` parameter (omitted when `None`, as
/// for PostgreSQL `money`).
pub fn decimal(scale: i32, precision: Option<i32>) -> SchemaBuilder {
    let b = logical(SchemaBuilder::bytes(), DECIMAL).parameter("scale", scale.to_string());
    match precision {
        Some(p) => b.parameter("connect.decimal.precision", p.to_string()),
        None => b,
    }
}

/// `io.debezium.data.VariableScaleDecimal {scale: int32, value: bytes}` (numeric without a declared scale).
pub fn variable_scale_decimal() -> SchemaBuilder {
    logical(SchemaBuilder::struct_(), VARIABLE_SCALE_DECIMAL)
        .doc("Variable scaled decimal")
        .field("scale", SchemaBuilder::int32().arc())
        .field("value", SchemaBuilder::bytes().arc())
}

pub fn date() -> SchemaBuilder {
    logical(SchemaBuilder::int32(), DATE)
}
pub fn time_millis() -> SchemaBuilder {
    logical(SchemaBuilder::int32(), TIME)
}
pub fn micro_time() -> SchemaBuilder {
    logical(SchemaBuilder::int64(), MICRO_TIME)
}
pub fn nano_time() -> SchemaBuilder {
    logical(SchemaBuilder::int64(), NANO_TIME)
}
pub fn timestamp_millis() -> SchemaBuilder {
    logical(SchemaBuilder::int64(), TIMESTAMP)
}
pub fn micro_timestamp() -> SchemaBuilder {
    logical(SchemaBuilder::int64(), MICRO_TIMESTAMP)
}
pub fn nano_timestamp() -> SchemaBuilder {
    logical(SchemaBuilder::int64(), NANO_TIMESTAMP)
}
pub fn zoned_timestamp() -> SchemaBuilder {
    logical(SchemaBuilder::string(), ZONED_TIMESTAMP)
}
pub fn zoned_time() -> SchemaBuilder {
    logical(SchemaBuilder::string(), ZONED_TIME)
}
pub fn iso_date() -> SchemaBuilder {
    logical(SchemaBuilder::string(), ISO_DATE)
}
pub fn iso_time() -> SchemaBuilder {
    logical(SchemaBuilder::string(), ISO_TIME)
}
pub fn iso_timestamp() -> SchemaBuilder {
    logical(SchemaBuilder::string(), ISO_TIMESTAMP)
}
pub fn micro_duration() -> SchemaBuilder {
    logical(SchemaBuilder::int64(), MICRO_DURATION)
}
pub fn interval_string() -> SchemaBuilder {
    logical(SchemaBuilder::string(), INTERVAL)
}
pub fn year() -> SchemaBuilder {
    logical(SchemaBuilder::int32(), YEAR)
}
pub fn json() -> SchemaBuilder {
    logical(SchemaBuilder::string(), JSON)
}
pub fn uuid() -> SchemaBuilder {
    logical(SchemaBuilder::string(), UUID)
}
pub fn xml() -> SchemaBuilder {
    logical(SchemaBuilder::string(), XML)
}
pub fn ltree() -> SchemaBuilder {
    logical(SchemaBuilder::string(), LTREE)
}
/// `io.debezium.data.Enum` with `allowed` = the values joined by commas.
pub fn enumeration(allowed: &[String]) -> SchemaBuilder {
    logical(SchemaBuilder::string(), ENUM).parameter("allowed", allowed.join(","))
}
pub fn enum_set(allowed: &[String]) -> SchemaBuilder {
    logical(SchemaBuilder::string(), ENUM_SET).parameter("allowed", allowed.join(","))
}
/// `io.debezium.data.Bits` (bit(n) with n > 1), parameter `length`.
pub fn bits(length: u32) -> SchemaBuilder {
    logical(SchemaBuilder::bytes(), BITS).parameter("length", length.to_string())
}
pub fn connect_date() -> SchemaBuilder {
    logical(SchemaBuilder::int32(), CONNECT_DATE)
}
pub fn connect_time() -> SchemaBuilder {
    logical(SchemaBuilder::int32(), CONNECT_TIME)
}
pub fn connect_timestamp() -> SchemaBuilder {
    logical(SchemaBuilder::int64(), CONNECT_TIMESTAMP)
}

/// `decimal.handling.mode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DecimalHandlingMode {
    #[default]
    Precise,
    Double,
    String,
}

impl DecimalHandlingMode {
    pub const ALLOWED: &'static [&'static str] = &["precise", "string", "double"];
    pub fn parse(s: &str) -> Option<Self> {
        match s.trim().to_ascii_lowercase().as_str() {
            "precise" => Some(Self::Precise),
            "double" => Some(Self::Double),
            "string" => Some(Self::String),
            _ => None,
        }
    }
}

/// `time.precision.mode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TimePrecisionMode {
    #[default]
    Adaptive,
    AdaptiveTimeMicroseconds,
    Connect,
    IsoString,
    Microseconds,
    Nanoseconds,
}

impl TimePrecisionMode {
    pub const ALLOWED: &'static [&'static str] =
        &["adaptive", "adaptive_time_microseconds", "connect", "isostring", "microseconds", "nanoseconds"];
    pub fn parse(s: &str) -> Option<Self> {
        match s.trim().to_ascii_lowercase().as_str() {
            "adaptive" => Some(Self::Adaptive),
            "adaptive_time_microseconds" => Some(Self::AdaptiveTimeMicroseconds),
            "connect" => Some(Self::Connect),
            "isostring" => Some(Self::IsoString),
            "microseconds" => Some(Self::Microseconds),
            "nanoseconds" => Some(Self::Nanoseconds),
            _ => None,
        }
    }
}

/// `binary.handling.mode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum BinaryHandlingMode {
    #[default]
    Bytes,
    Base64,
    Base64UrlSafe,
    Hex,
}

impl BinaryHandlingMode {
    pub const ALLOWED: &'static [&'static str] = &["bytes", "base64", "base64-url-safe", "hex"];
    pub fn parse(s: &str) -> Option<Self> {
        match s.trim().to_ascii_lowercase().as_str() {
            "bytes" => Some(Self::Bytes),
            "base64" => Some(Self::Base64),
            "base64-url-safe" => Some(Self::Base64UrlSafe),
            "hex" => Some(Self::Hex),
            _ => None,
        }
    }
}

/// The column modes together.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ColumnModes {
    pub decimal: DecimalHandlingMode,
    pub time: TimePrecisionMode,
    pub binary: BinaryHandlingMode,
    /// `interval.handling.mode=string` (PostgreSQL): `io.debezium.time.Interval` ISO 8601 strings instead of
    /// `io.debezium.time.MicroDuration` numbers.
    pub interval_string: bool,
}

/// What temporal kind a column is, for [`temporal_schema`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Temporal {
    Date,
    /// Time without zone, with its fractional digits (0-6).
    Time(u32),
    /// Timestamp without zone (wall clock), with its fractional digits.
    Timestamp(u32),
}

/// The schema of a date/time/timestamp column under `time.precision.mode`, as Debezium's `TimeZoneAdapter`-free
/// `JdbcValueConverters.schemaBuilder` gives it.
pub fn temporal_schema(kind: Temporal, mode: TimePrecisionMode) -> SchemaBuilder {
    use TimePrecisionMode as M;
    match (kind, mode) {
        (Temporal::Date, M::Connect) => connect_date(),
        (Temporal::Date, M::IsoString) => iso_date(),
        (Temporal::Date, _) => date(),
        (Temporal::Time(_), M::Connect) => connect_time(),
        (Temporal::Time(_), M::IsoString) => iso_time(),
        (Temporal::Time(_), M::Nanoseconds) => nano_time(),
        (Temporal::Time(_), M::Microseconds | M::AdaptiveTimeMicroseconds) => micro_time(),
        (Temporal::Time(p), M::Adaptive) => {
            if p <= 3 {
                time_millis()
            } else {
                micro_time()
            }
        }
        (Temporal::Timestamp(_), M::Connect) => connect_timestamp(),
        (Temporal::Timestamp(_), M::IsoString) => iso_timestamp(),
        (Temporal::Timestamp(_), M::Nanoseconds) => nano_timestamp(),
        (Temporal::Timestamp(_), M::Microseconds) => micro_timestamp(),
        (Temporal::Timestamp(p), M::Adaptive | M::AdaptiveTimeMicroseconds) => {
            if p <= 3 {
                timestamp_millis()
            } else {
                micro_timestamp()
            }
        }
    }
}

/// The schema of a decimal column under `decimal.handling.mode`. `scale` `None` = no declared scale
/// (VariableScaleDecimal in precise mode).
pub fn decimal_schema(precision: Option<i32>, scale: Option<i32>, mode: DecimalHandlingMode) -> SchemaBuilder {
    match mode {
        DecimalHandlingMode::Precise => match scale {
            Some(s) => decimal(s, precision),
            None => variable_scale_decimal(),
        },
        DecimalHandlingMode::Double => SchemaBuilder::float64(),
        DecimalHandlingMode::String => SchemaBuilder::string(),
    }
}

/// The schema of a binary column under `binary.handling.mode`.
pub fn binary_schema(mode: BinaryHandlingMode) -> SchemaBuilder {
    match mode {
        BinaryHandlingMode::Bytes => SchemaBuilder::bytes(),
        _ => SchemaBuilder::string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decimal_parameters_in_debezium_order() {
        let s = decimal(2, Some(10)).optional().build();
        assert_eq!(
            s.parameters.unwrap(),
            vec![("scale".into(), "2".into()), ("connect.decimal.precision".into(), "10".into())]
        );
        assert_eq!(s.name.as_deref(), Some(DECIMAL));
        assert_eq!(s.version, Some(1));
    }

    #[test]
    fn adaptive_time_precision() {
        assert_eq!(temporal_schema(Temporal::Time(3), TimePrecisionMode::Adaptive).build().name.as_deref(), Some(TIME));
        assert_eq!(
            temporal_schema(Temporal::Timestamp(6), TimePrecisionMode::Adaptive).build().name.as_deref(),
            Some(MICRO_TIMESTAMP)
        );
        assert_eq!(
            temporal_schema(Temporal::Time(0), TimePrecisionMode::AdaptiveTimeMicroseconds).build().name.as_deref(),
            Some(MICRO_TIME)
        );
    }
}
