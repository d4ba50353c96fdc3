//! The per-host lock of an agent id: proof that the previous process of this id on this host is gone.
//!
//! The control plane cannot tell a crashed agent process from one that is only cut off and reconnecting: both
//! streams just end. A new process with the same `--agent-id` may take the tasks over at once only if the old one
//! runs no more. On one host the kernel knows: each process holds an exclusive lock on
//! `<dir>/sluice-agent-<id>.lock` (dir: `SLUICE_AGENT_LOCK_DIR`, else the temp dir) and writes its instance id
//! into it; the lock is released when the process dies, however it dies. A new process that gets the lock reads
//! the instance id it replaces and says so in its Hello (`replaces_instance`). One that does not get it (the old
//! process is alive) or starts on another host proves nothing: the control plane then waits for the old lease.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::PathBuf;
use std::sync::OnceLock;

use tracing::{debug, warn};

/// Held for the life of the process (the lock goes with the file handle).
static HELD: OnceLock<File> = OnceLock::new();

fn path(agent_id: &str) -> PathBuf {
    let dir = std::env::var_os("SLUICE_AGENT_LOCK_DIR").map(PathBuf::from).unwrap_or_else(std::env::temp_dir);
    let safe: String =
        agent_id.chars().map(|c| if c.is_ascii_alphanumeric() || "-_.".contains(c) { c } else { '_' }).collect();
    dir.join(format!("sluice-agent-{safe}.lock"))
}

/// Takes the lock of `agent_id` for this process and records `instance_id` in it. Returns the instance id of the
/// process that held it before (known dead), if any; `None` when the lock is held by a live process or cannot be
/// taken (then this process proves nothing, which is safe).
pub(crate) fn take(agent_id: &str, instance_id: &str) -> Option<String> {
    let path = path(agent_id);
    let mut file = match OpenOptions::new().read(true).write(true).create(true).truncate(false).open(&path) {
        Ok(file) => file,
        Err(err) => {
            debug!(path = %path.display(), error = %err, "cannot open the agent id lock");
            return None;
        }
    };
    if let Err(err) = file.try_lock() {
        warn!(path = %path.display(), error = %err,
            "another process with this --agent-id runs on this host (its lock is held); the control plane decides");
        return None;
    }
    let mut previous = String::new();
    let _ = file.read_to_string(&mut previous);
    let written = file
        .set_len(0)
        .and_then(|_| file.seek(SeekFrom::Start(0)))
        .and_then(|_| file.write_all(instance_id.as_bytes()))
        .and_then(|_| file.sync_all());
    if let Err(err) = written {
        debug!(path = %path.display(), error = %err, "cannot record the instance in the agent id lock");
    }
    let _ = HELD.set(file);
    let previous = previous.trim().to_string();
    (!previous.is_empty() && previous != instance_id).then_some(previous)
}
