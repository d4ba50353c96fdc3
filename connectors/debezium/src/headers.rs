//! The four `__debezium.context.*` headers every record carries (`extended.headers.enabled=true`, since 3.2.1).

use bytes::Bytes;

pub const CONNECTOR_LOGICAL_NAME: &str = "__debezium.context.connectorLogicalName";
pub const TASK_ID: &str = "__debezium.context.taskId";
pub const CONNECTOR_NAME: &str = "__debezium.context.connectorName";
pub const RUN_ID: &str = "__debezium.context.runId";
/// Primary key change headers (before the context headers).
pub const NEW_KEY: &str = "__debezium.newkey";
pub const OLD_KEY: &str = "__debezium.oldkey";

/// The context headers, in Debezium's order. `connector_name` is `postgresql`, `mysql` or `mariadb`.
pub fn context_headers(
    logical_name: &str,
    task_id: u32,
    connector_name: &str,
    run_id: &str,
) -> Vec<(String, Option<Bytes>)> {
    vec![
        (CONNECTOR_LOGICAL_NAME.to_string(), Some(Bytes::from(logical_name.to_string()))),
        (TASK_ID.to_string(), Some(Bytes::from(task_id.to_string()))),
        (CONNECTOR_NAME.to_string(), Some(Bytes::from(connector_name.to_string()))),
        (RUN_ID.to_string(), Some(Bytes::from(run_id.to_string()))),
    ]
}

/// A UUIDv7 (RFC 9562) string for the run id: 48-bit Unix ms, version 7, variant 10, random rest.
pub fn uuid_v7() -> String {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    let ms = now.as_millis() as u64 & 0xFFFF_FFFF_FFFF;
    // Randomness without a dependency: hash the time and the process id through the std RandomState.
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(now.as_nanos());
    h.write_u32(std::process::id());
    let r1 = h.finish();
    h.write_u64(r1);
    let r2 = h.finish();
    let mut b = [0u8; 16];
    b[..6].copy_from_slice(&ms.to_be_bytes()[2..]);
    b[6..14].copy_from_slice(&r1.to_be_bytes());
    b[14..].copy_from_slice(&r2.to_be_bytes()[..2]);
    b[6] = (b[6] & 0x0F) | 0x70;
    b[8] = (b[8] & 0x3F) | 0x80;
    let hex: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!("{}-{}-{}-{}-{}", &hex[..8], &hex[8..12], &hex[12..16], &hex[16..20], &hex[20..])
}

#[cfg(test)]
mod tests {
    #[test]
    fn uuid_v7_shape() {
        let u = super::uuid_v7();
        assert_eq!(u.len(), 36);
        assert_eq!(&u[14..15], "7");
        assert!(matches!(&u[19..20], "8" | "9" | "a" | "b"));
    }
}
