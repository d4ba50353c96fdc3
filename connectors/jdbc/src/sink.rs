//! The JDBC sink (Confluent's and Debezium's).
