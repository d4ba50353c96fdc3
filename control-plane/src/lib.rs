//! The Sluice control plane: stores connector definitions in etcd (or the embedded store of standalone mode),
//! elects a leader that schedules tasks onto agents, holds the agents' gRPC streams, and serves the admin API over
//! gRPC and as Kafka Connect's REST API.

pub mod admin_grpc;
pub mod agent_auth;
pub mod api;
pub mod auth;
pub mod connections;
pub mod deadline;
pub mod leader;
pub mod logging;
pub mod metrics;
pub mod model;
pub mod rest;
pub mod scheduler;
pub mod secrets;
pub mod server;
pub mod service;
pub mod sink_offsets;
pub mod standalone;
pub mod store;
pub mod stream;
pub mod tls;
