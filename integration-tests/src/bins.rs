//! Where the `sluice-*` binaries under test are. The tests never build them: `deploy/test` does
//! (`cargo build --workspace --bins`) before `cargo test`.

use std::path::PathBuf;

use anyhow::bail;

/// Candidate directories, in order: `$SLUICE_BIN_DIR`, `$CARGO_TARGET_DIR/debug`, and the directory of the
/// running test executable's profile (`target/debug/deps/<test>` → `target/debug`).
fn candidate_dirs() -> Vec<PathBuf> {
    let mut dirs = Vec::new();
    if let Some(dir) = std::env::var_os("SLUICE_BIN_DIR").filter(|d| !d.is_empty()) {
        dirs.push(PathBuf::from(dir));
    }
    if let Some(dir) = std::env::var_os("CARGO_TARGET_DIR").filter(|d| !d.is_empty()) {
        dirs.push(PathBuf::from(dir).join("debug"));
    }
    if let Ok(exe) = std::env::current_exe()
        && let Some(deps) = exe.parent()
    {
        if deps.file_name().is_some_and(|n| n == "deps")
            && let Some(profile) = deps.parent()
        {
            dirs.push(profile.to_path_buf());
        }
        dirs.push(deps.to_path_buf());
    }
    dirs
}

/// Path of the binary `name` (e.g. `sluice-control-plane`), or an error that says how to build it.
pub fn binary(name: &str) -> anyhow::Result<PathBuf> {
    let dirs = candidate_dirs();
    for dir in &dirs {
        let path = dir.join(name);
        if path.is_file() {
            return Ok(path);
        }
    }
    let looked: Vec<String> = dirs.iter().map(|d| d.display().to_string()).collect();
    bail!(
        "binary `{name}` not found (looked in: {}). Build the binaries first: `cargo build --workspace --bins` \
         (deploy/test does this), or point SLUICE_BIN_DIR at the directory that holds them",
        looked.join(", ")
    )
}
