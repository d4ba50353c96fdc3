//! Decoding of the `pgoutput` logical replication messages, protocol version 1 (PostgreSQL docs: "Logical
//! Replication Message Formats").

use bytes::{Buf, Bytes};

#[derive(Debug, Clone, PartialEq)]
pub enum TupleValue {
    Null,
    /// An unchanged TOASTed value (not sent).
    Unchanged,
    Text(Bytes),
    Binary(Bytes),
}

#[derive(Debug, Clone, PartialEq)]
pub struct RelationColumn {
    /// Part of the replica identity (key).
    pub key: bool,
    pub name: String,
    pub type_oid: u32,
    pub type_modifier: i32,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Relation {
    pub id: u32,
    pub namespace: String,
    pub name: String,
    /// `d` default, `n` nothing, `f` full, `i` index.
    pub replica_identity: u8,
    pub columns: Vec<RelationColumn>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum PgOutput {
    Begin {
        final_lsn: u64,
        commit_ts: i64,
        xid: u32,
    },
    Commit {
        commit_lsn: u64,
        end_lsn: u64,
        commit_ts: i64,
    },
    Origin {
        lsn: u64,
        name: String,
    },
    Relation(Relation),
    Type {
        id: u32,
        namespace: String,
        name: String,
    },
    Insert {
        relation: u32,
        new: Vec<TupleValue>,
    },
    /// `old`: with `key_only` true the old key ('K'), else the full old row ('O').
    Update {
        relation: u32,
        old: Option<(bool, Vec<TupleValue>)>,
        new: Vec<TupleValue>,
    },
    Delete {
        relation: u32,
        key_only: bool,
        old: Vec<TupleValue>,
    },
    Truncate {
        options: u8,
        relations: Vec<u32>,
    },
    Message {
        transactional: bool,
        lsn: u64,
        prefix: String,
        content: Bytes,
    },
}

#[derive(Debug, thiserror::Error)]
#[error("malformed pgoutput message: {0}")]
pub struct DecodeError(pub String);

fn need(buf: &Bytes, n: usize) -> Result<(), DecodeError> {
    if buf.remaining() < n { Err(DecodeError(format!("truncated (need {n} bytes)"))) } else { Ok(()) }
}

fn cstr(buf: &mut Bytes) -> Result<String, DecodeError> {
    let pos = buf.iter().position(|&b| b == 0).ok_or_else(|| DecodeError("unterminated string".into()))?;
    let s = String::from_utf8_lossy(&buf[..pos]).into_owned();
    buf.advance(pos + 1);
    Ok(s)
}

fn tuple(buf: &mut Bytes) -> Result<Vec<TupleValue>, DecodeError> {
    need(buf, 2)?;
    let n = buf.get_i16();
    let mut out = Vec::with_capacity(n.max(0) as usize);
    for _ in 0..n {
        need(buf, 1)?;
        match buf.get_u8() {
            b'n' => out.push(TupleValue::Null),
            b'u' => out.push(TupleValue::Unchanged),
            k @ (b't' | b'b') => {
                need(buf, 4)?;
                let len = buf.get_i32() as usize;
                need(buf, len)?;
                let v = buf.split_to(len);
                out.push(if k == b't' { TupleValue::Text(v) } else { TupleValue::Binary(v) });
            }
            other => return Err(DecodeError(format!("unknown tuple kind {other}"))),
        }
    }
    Ok(out)
}

pub fn decode(mut buf: Bytes) -> Result<PgOutput, DecodeError> {
    need(&buf, 1)?;
    let tag = buf.get_u8();
    Ok(match tag {
        b'B' => {
            need(&buf, 20)?;
            PgOutput::Begin { final_lsn: buf.get_u64(), commit_ts: buf.get_i64(), xid: buf.get_u32() }
        }
        b'C' => {
            need(&buf, 25)?;
            let _flags = buf.get_u8();
            PgOutput::Commit { commit_lsn: buf.get_u64(), end_lsn: buf.get_u64(), commit_ts: buf.get_i64() }
        }
        b'O' => {
            need(&buf, 8)?;
            let lsn = buf.get_u64();
            PgOutput::Origin { lsn, name: cstr(&mut buf)? }
        }
        b'R' => {
            need(&buf, 4)?;
            let id = buf.get_u32();
            let namespace = cstr(&mut buf)?;
            let name = cstr(&mut buf)?;
            need(&buf, 3)?;
            let replica_identity = buf.get_u8();
            let n = buf.get_i16();
            let mut columns = Vec::with_capacity(n.max(0) as usize);
            for _ in 0..n {
                need(&buf, 1)?;
                let flags = buf.get_u8();
                let name = cstr(&mut buf)?;
                need(&buf, 8)?;
                columns.push(RelationColumn {
                    key: flags & 1 == 1,
                    name,
                    type_oid: buf.get_u32(),
                    type_modifier: buf.get_i32(),
                });
            }
            PgOutput::Relation(Relation { id, namespace, name, replica_identity, columns })
        }
        b'Y' => {
            need(&buf, 4)?;
            let id = buf.get_u32();
            let namespace = cstr(&mut buf)?;
            PgOutput::Type { id, namespace, name: cstr(&mut buf)? }
        }
        b'I' => {
            need(&buf, 5)?;
            let relation = buf.get_u32();
            let _n = buf.get_u8();
            PgOutput::Insert { relation, new: tuple(&mut buf)? }
        }
        b'U' => {
            need(&buf, 5)?;
            let relation = buf.get_u32();
            let mut kind = buf.get_u8();
            let mut old = None;
            if kind == b'K' || kind == b'O' {
                old = Some((kind == b'K', tuple(&mut buf)?));
                need(&buf, 1)?;
                kind = buf.get_u8();
            }
            if kind != b'N' {
                return Err(DecodeError(format!("update without new tuple ({kind})")));
            }
            PgOutput::Update { relation, old, new: tuple(&mut buf)? }
        }
        b'D' => {
            need(&buf, 5)?;
            let relation = buf.get_u32();
            let kind = buf.get_u8();
            PgOutput::Delete { relation, key_only: kind == b'K', old: tuple(&mut buf)? }
        }
        b'T' => {
            need(&buf, 5)?;
            let n = buf.get_u32();
            let options = buf.get_u8();
            need(&buf, 4 * n as usize)?;
            PgOutput::Truncate { options, relations: (0..n).map(|_| buf.get_u32()).collect() }
        }
        b'M' => {
            need(&buf, 9)?;
            let transactional = buf.get_u8() == 1;
            let lsn = buf.get_u64();
            let prefix = cstr(&mut buf)?;
            need(&buf, 4)?;
            let len = buf.get_i32() as usize;
            need(&buf, len)?;
            PgOutput::Message { transactional, lsn, prefix, content: buf.split_to(len) }
        }
        other => return Err(DecodeError(format!("unknown message type {:?}", other as char))),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::BufMut;

    #[test]
    fn insert_roundtrip() {
        let mut b = bytes::BytesMut::new();
        b.put_u8(b'I');
        b.put_u32(42);
        b.put_u8(b'N');
        b.put_i16(2);
        b.put_u8(b't');
        b.put_i32(1);
        b.put_slice(b"7");
        b.put_u8(b'n');
        assert_eq!(
            decode(b.freeze()).unwrap(),
            PgOutput::Insert { relation: 42, new: vec![TupleValue::Text(Bytes::from_static(b"7")), TupleValue::Null] }
        );
    }
}
