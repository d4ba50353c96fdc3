//! The Sluice control plane: stores connector definitions in etcd (or the embedded store of standalone mode),
//! elects a leader that schedules tasks onto agents, holds the agents' gRPC streams, and serves the admin API over
//! gRPC and as Kafka Connect's REST API.

pub mod api;
pub mod model;
pub mod scheduler;
pub mod store;
pub mod leader;
pub mod service;
pub mod stream;
pub mod logging;
pub mod server;
pub mod standalone;
pub mod rest;
pub mod admin_grpc;
