//! What Sluice's Debezium-compatible change data capture connectors (PostgreSQL, MySQL/MariaDB) share, so that
//! their events are, field for field, what Debezium 3.x writes:
//!
//! - [`schema`]: a small schema builder and Debezium's logical column types (`io.debezium.time.*`, Kafka Connect's
//!   `Decimal`, `io.debezium.data.VariableScaleDecimal`, `Json`, `Uuid`, `Enum`, `Bits`, ...), with
//!   [`schema::ColumnModes`] (`decimal.handling.mode`, `time.precision.mode`, `binary.handling.mode`).
//! - [`values`]: the value encodings those types take (Decimal bytes, days, micros, ISO strings, ...).
//! - [`envelope`]: the change event (`<topic>.Envelope` v2, `<topic>.Key`, `<topic>.Value`), operations,
//!   the `transaction` block, processing timestamps, tombstones.
//! - [`source`]: the common head of the `source` block and the snapshot markers.
//! - [`transaction`]: the transaction metadata topic (`BEGIN`/`END`).
//! - [`heartbeat`]: heartbeat records (`__debezium-heartbeat.<prefix>`).
//! - [`headers`]: the four `__debezium.context.*` headers.
//! - [`filters`]: include/exclude regex lists and `skipped.operations`.
//!
//! The API only grows (new items are added, nothing is renamed): two connector crates build on it in parallel.

pub mod envelope;
pub mod filters;
pub mod headers;
pub mod heartbeat;
pub mod mapping;
pub mod schema;
pub mod snapshot;
pub mod source;
pub mod transaction;
pub mod values;

pub use envelope::{Envelope, Op, ProcessingTime, TransactionBlock};
pub use schema::{BinaryHandlingMode, ColumnModes, DecimalHandlingMode, SchemaBuilder, TimePrecisionMode};
pub use source::SnapshotMarker;
