//! Harness for Sluice's end-to-end tests: real Kafka, real etcd and the real `sluice-*` binaries started as
//! processes, driven through their public interfaces (REST, gRPC, files, Kafka topics) and nothing else.
//!
//! A test creates one [`TestEnv`] first (services up, private temp dir, unique names), starts processes through
//! [`ControlPlane`], [`Agent`], [`Standalone`] or [`EtcdServer`], and polls for outcomes with [`wait_until`].
//! When a test fails, the `TestEnv` prints the tail of every process log and keeps its temp dir for a look.
//!
//! Running: `deploy/test -p sluice-integration-tests` (services up, binaries built, then the tests), or by hand
//! after `cargo build --workspace --bins`: `cargo test -p sluice-integration-tests --test leader_failover --
//! --nocapture` (`--nocapture` shows each test's measurements: failover times, duplicate counts).
//! Environment: `SLUICE_TEST_KAFKA`, `SLUICE_TEST_ETCD` (used when reachable, else `deploy/local/{kafka,etcd} up`
//! is run), `SLUICE_BIN_DIR` (else `$CARGO_TARGET_DIR/debug`, else next to the test executable),
//! `SLUICE_TEST_KEEP=1` (keep every test's directory with its process logs, not only failed ones).
//! Every test uses its own cluster name, topics, connector names and temp dir, so tests run in parallel; the one
//! that restarts etcd runs a private etcd.

pub mod bins;
pub mod cdc_split;
pub mod cluster;
pub mod connectors;
pub mod env;
pub mod jdbc;
pub mod kafka;
pub mod lines;
pub mod mariadb;
pub mod net;
pub mod process;
pub mod rest;
pub mod s3;
pub mod services;
pub mod tools;
pub mod wait;

pub use bins::binary;
pub use cluster::{AGENT_TOKEN, Agent, ControlPlane, Standalone, write_properties};
pub use connectors::{file_sink, file_source};
pub use env::TestEnv;
pub use lines::{LineReport, LineWriter, analyze, append_lines, numbered_lines, read_complete_lines, wait_for_lines};
pub use net::free_port;
pub use process::Process;
pub use rest::{Reply, RestClient, all_in_state, task_state, task_worker};
pub use services::{EtcdServer, Services, ensure_services, repo_root};
pub use wait::wait_until;
pub mod postgres;
