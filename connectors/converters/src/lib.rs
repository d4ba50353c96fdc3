//! Kafka Connect's converters for Sluice: `JsonConverter`, `StringConverter`, `ByteArrayConverter`, the primitive
//! converters (`BooleanConverter`, `IntegerConverter`, ...) and the header converters (`SimpleHeaderConverter`, or
//! any converter used as one). The plugin registry (`sluice-connectors`) lists them by class name and alias.

pub mod config_def;
pub mod converter;
pub mod header_converter;
mod json_read;
pub mod primitive_converter;

use sluice_connect_api::{config, error, record};

pub use converter::{ByteArrayConverter, Converter, JsonConverter, StringConverter};
pub use header_converter::{ConverterHeaderConverter, HeaderConverter, SimpleHeaderConverter};
pub use primitive_converter::{BooleanConverter, NumberConverter, NumberKind};
