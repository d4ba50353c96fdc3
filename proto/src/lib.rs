//! Generated types and services of Sluice's two gRPC contracts, plus the file descriptor set for server reflection.

/// The public admin API (`sluice.admin.v1`).
pub mod admin {
    #![allow(clippy::all, missing_docs, rust_2018_idioms)]
    tonic::include_proto!("sluice.admin.v1");
}

/// The agent protocol (`sluice.agent.v1`).
pub mod agent {
    #![allow(clippy::all, missing_docs, rust_2018_idioms)]
    tonic::include_proto!("sluice.agent.v1");
}

/// Encoded `FileDescriptorSet` of both packages, for `tonic-reflection`.
pub const FILE_DESCRIPTOR_SET: &[u8] = tonic::include_file_descriptor_set!("sluice_descriptor");
