//! Compiles the `.proto` files into `OUT_DIR` and writes the file descriptor set that server reflection serves.
//! Needs `protoc` (Debian's `protobuf-compiler`) or `PROTOC` pointing at one.

use std::{env, path::PathBuf};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let out_dir = PathBuf::from(env::var("OUT_DIR")?);
    let protos = ["sluice/admin/v1/admin.proto", "sluice/agent/v1/agent.proto"];
    for proto in protos {
        println!("cargo:rerun-if-changed={proto}");
    }
    tonic_prost_build::configure()
        .file_descriptor_set_path(out_dir.join("sluice_descriptor.bin"))
        .compile_protos(&protos, &["."])?;
    Ok(())
}
