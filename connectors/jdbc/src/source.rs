//! The JDBC source (Confluent's `JdbcSourceConnector`).
