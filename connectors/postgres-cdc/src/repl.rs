//! A PostgreSQL replication connection (`replication=database`) on the frontend/backend protocol: startup and
//! authentication (cleartext, MD5, SCRAM-SHA-256), simple queries for the replication commands
//! (`IDENTIFY_SYSTEM`, `CREATE_REPLICATION_SLOT ... EXPORT_SNAPSHOT`), and `START_REPLICATION` in CopyBoth mode with
//! XLogData, primary keepalives and standby status updates (PostgreSQL docs: "Streaming Replication Protocol").
//! tokio-postgres has no replication mode, so the framing is done here; message encoding comes from
//! `postgres-protocol`.

use std::time::Duration;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use postgres_protocol::authentication::sasl::{ChannelBinding, SCRAM_SHA_256, ScramSha256};
use postgres_protocol::message::frontend;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Microseconds between the Unix epoch and PostgreSQL's epoch (2000-01-01).
pub const PG_EPOCH_OFFSET_MICROS: i64 = 946_684_800_000_000;

#[derive(Debug, thiserror::Error)]
pub enum ReplError {
    #[error("I/O: {0}")]
    Io(#[from] std::io::Error),
    /// An ErrorResponse from the server: SQLSTATE and message.
    #[error("server error {code}: {message}")]
    Server { code: String, message: String },
    #[error("protocol: {0}")]
    Protocol(String),
}

impl ReplError {
    pub fn code(&self) -> Option<&str> {
        match self {
            ReplError::Server { code, .. } => Some(code),
            _ => None,
        }
    }
}

/// Connection parameters.
#[derive(Debug, Clone)]
pub struct ConnParams {
    pub host: String,
    pub port: u16,
    pub user: String,
    pub password: String,
    pub dbname: String,
}

/// A backend message: tag and body.
struct Frame {
    tag: u8,
    body: Bytes,
}

pub struct ReplConnection {
    stream: TcpStream,
    rbuf: BytesMut,
    wbuf: BytesMut,
}

/// What `START_REPLICATION` streams.
#[derive(Debug)]
pub enum ReplMessage {
    /// XLogData: start of the data in WAL, server WAL end, send time, and the pgoutput message.
    XLogData { wal_start: u64, wal_end: u64, data: Bytes },
    /// Primary keepalive: server WAL end (what was sent so far), and whether a reply is requested.
    Keepalive { wal_end: u64, reply: bool },
    /// The server ended the copy.
    CopyDone,
}

fn cstr(buf: &mut Bytes) -> Result<String, ReplError> {
    let pos = buf.iter().position(|&b| b == 0).ok_or_else(|| ReplError::Protocol("unterminated string".into()))?;
    let s = String::from_utf8_lossy(&buf[..pos]).into_owned();
    buf.advance(pos + 1);
    Ok(s)
}

fn server_error(mut body: Bytes) -> ReplError {
    let mut code = String::new();
    let mut message = String::new();
    while body.has_remaining() {
        let t = body.get_u8();
        if t == 0 {
            break;
        }
        let v = cstr(&mut body).unwrap_or_default();
        match t {
            b'C' => code = v,
            b'M' => message = v,
            _ => {}
        }
    }
    ReplError::Server { code, message }
}

impl ReplConnection {
    pub async fn connect(params: &ConnParams, timeout: Duration) -> Result<Self, ReplError> {
        let stream = tokio::time::timeout(timeout, TcpStream::connect((params.host.as_str(), params.port)))
            .await
            .map_err(|_| std::io::Error::new(std::io::ErrorKind::TimedOut, "connect timed out"))??;
        stream.set_nodelay(true)?;
        let mut conn = ReplConnection { stream, rbuf: BytesMut::with_capacity(64 * 1024), wbuf: BytesMut::new() };
        frontend::startup_message(
            [
                ("user", params.user.as_str()),
                ("database", params.dbname.as_str()),
                ("replication", "database"),
                ("application_name", "sluice-postgres-cdc"),
                ("client_encoding", "UTF8"),
            ],
            &mut conn.wbuf,
        )?;
        conn.flush().await?;
        conn.authenticate(params).await?;
        // Until ReadyForQuery.
        loop {
            let f = conn.read_frame().await?;
            match f.tag {
                b'Z' => return Ok(conn),
                b'E' => return Err(server_error(f.body)),
                _ => {}
            }
        }
    }

    async fn authenticate(&mut self, params: &ConnParams) -> Result<(), ReplError> {
        let mut scram: Option<ScramSha256> = None;
        loop {
            let mut f = self.read_frame().await?;
            match f.tag {
                b'E' => return Err(server_error(f.body)),
                b'R' => {
                    let code = f.body.get_i32();
                    match code {
                        0 => return Ok(()),
                        3 => {
                            frontend::password_message(params.password.as_bytes(), &mut self.wbuf)?;
                            self.flush().await?;
                        }
                        5 => {
                            let mut salt = [0u8; 4];
                            f.body.copy_to_slice(&mut salt);
                            let hash = postgres_protocol::authentication::md5_hash(
                                params.user.as_bytes(),
                                params.password.as_bytes(),
                                salt,
                            );
                            frontend::password_message(hash.as_bytes(), &mut self.wbuf)?;
                            self.flush().await?;
                        }
                        10 => {
                            let mut mechs = Vec::new();
                            while f.body.has_remaining() && f.body[0] != 0 {
                                mechs.push(cstr(&mut f.body)?);
                            }
                            if !mechs.iter().any(|m| m == SCRAM_SHA_256) {
                                return Err(ReplError::Protocol(format!("unsupported SASL mechanisms {mechs:?}")));
                            }
                            let s = ScramSha256::new(params.password.as_bytes(), ChannelBinding::unsupported());
                            frontend::sasl_initial_response(SCRAM_SHA_256, s.message(), &mut self.wbuf)?;
                            self.flush().await?;
                            scram = Some(s);
                        }
                        11 => {
                            let s = scram.as_mut().ok_or_else(|| ReplError::Protocol("SASL continue".into()))?;
                            s.update(&f.body)?;
                            frontend::sasl_response(s.message(), &mut self.wbuf)?;
                            self.flush().await?;
                        }
                        12 => {
                            let s = scram.as_mut().ok_or_else(|| ReplError::Protocol("SASL final".into()))?;
                            s.finish(&f.body)?;
                        }
                        other => return Err(ReplError::Protocol(format!("unsupported authentication {other}"))),
                    }
                }
                _ => {}
            }
        }
    }

    async fn flush(&mut self) -> Result<(), ReplError> {
        self.stream.write_all(&self.wbuf).await?;
        self.wbuf.clear();
        Ok(())
    }

    async fn read_frame(&mut self) -> Result<Frame, ReplError> {
        loop {
            if self.rbuf.len() >= 5 {
                let len = i32::from_be_bytes([self.rbuf[1], self.rbuf[2], self.rbuf[3], self.rbuf[4]]) as usize;
                if self.rbuf.len() > len {
                    let tag = self.rbuf[0];
                    self.rbuf.advance(5);
                    let body = self.rbuf.split_to(len - 4).freeze();
                    return Ok(Frame { tag, body });
                }
                self.rbuf.reserve(len + 1 - self.rbuf.len());
            }
            if self.rbuf.capacity() - self.rbuf.len() < 8192 {
                self.rbuf.reserve(64 * 1024);
            }
            let n = self.stream.read_buf(&mut self.rbuf).await?;
            if n == 0 {
                return Err(ReplError::Io(std::io::Error::new(
                    std::io::ErrorKind::UnexpectedEof,
                    "the server closed the replication connection",
                )));
            }
        }
    }

    /// Runs a simple query and returns its rows as text (the last result set).
    pub async fn simple_query(&mut self, sql: &str) -> Result<Vec<Vec<Option<String>>>, ReplError> {
        frontend::query(sql, &mut self.wbuf)?;
        self.flush().await?;
        let mut rows = Vec::new();
        let mut error = None;
        loop {
            let mut f = self.read_frame().await?;
            match f.tag {
                b'T' => rows.clear(),
                b'D' => {
                    let n = f.body.get_i16();
                    let mut row = Vec::with_capacity(n as usize);
                    for _ in 0..n {
                        let len = f.body.get_i32();
                        if len < 0 {
                            row.push(None);
                        } else {
                            let v = f.body.split_to(len as usize);
                            row.push(Some(String::from_utf8_lossy(&v).into_owned()));
                        }
                    }
                    rows.push(row);
                }
                b'E' => error = Some(server_error(f.body)),
                b'Z' => {
                    return match error {
                        Some(e) => Err(e),
                        None => Ok(rows),
                    };
                }
                _ => {}
            }
        }
    }

    /// `START_REPLICATION SLOT ... LOGICAL <lsn> (proto_version '1', publication_names '...', messages 'true')`;
    /// returns once the server answered CopyBothResponse.
    pub async fn start_replication(&mut self, slot: &str, lsn: u64, publication: &str) -> Result<(), ReplError> {
        let sql = format!(
            "START_REPLICATION SLOT {} LOGICAL {} (proto_version '1', publication_names {}, messages 'true')",
            quote_ident(slot),
            format_lsn(lsn),
            quote_literal(&quote_ident(publication)),
        );
        frontend::query(&sql, &mut self.wbuf)?;
        self.flush().await?;
        loop {
            let f = self.read_frame().await?;
            match f.tag {
                b'W' => return Ok(()),
                b'E' => return Err(server_error(f.body)),
                _ => {}
            }
        }
    }

    /// The next replication message.
    pub async fn next_message(&mut self) -> Result<ReplMessage, ReplError> {
        loop {
            let mut f = self.read_frame().await?;
            match f.tag {
                b'd' => {
                    let kind = f.body.get_u8();
                    match kind {
                        b'w' => {
                            let wal_start = f.body.get_u64();
                            let wal_end = f.body.get_u64();
                            let _send_time = f.body.get_i64();
                            return Ok(ReplMessage::XLogData { wal_start, wal_end, data: f.body });
                        }
                        b'k' => {
                            let wal_end = f.body.get_u64();
                            let _send_time = f.body.get_i64();
                            let reply = f.body.get_u8() == 1;
                            return Ok(ReplMessage::Keepalive { wal_end, reply });
                        }
                        other => return Err(ReplError::Protocol(format!("unknown copy data kind {other}"))),
                    }
                }
                b'c' => return Ok(ReplMessage::CopyDone),
                b'E' => return Err(server_error(f.body)),
                _ => {}
            }
        }
    }

    /// Sends a standby status update: written/flushed/applied = `flushed` (what Kafka acknowledged).
    pub async fn send_status(&mut self, flushed: u64, reply: bool) -> Result<(), ReplError> {
        let now = now_pg_micros();
        let mut body = BytesMut::with_capacity(34);
        body.put_u8(b'r');
        body.put_u64(flushed);
        body.put_u64(flushed);
        body.put_u64(flushed);
        body.put_i64(now);
        body.put_u8(u8::from(reply));
        frontend::CopyData::new(body.freeze())?.write(&mut self.wbuf);
        self.flush().await
    }

    pub async fn close(mut self) {
        frontend::terminate(&mut self.wbuf);
        let _ = self.flush().await;
    }
}

fn now_pg_micros() -> i64 {
    let d = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    d.as_micros() as i64 - PG_EPOCH_OFFSET_MICROS
}

/// `X/Y` form of an LSN.
pub fn format_lsn(lsn: u64) -> String {
    format!("{:X}/{:X}", lsn >> 32, lsn & 0xFFFF_FFFF)
}

pub fn parse_lsn(s: &str) -> Option<u64> {
    let (a, b) = s.trim().split_once('/')?;
    Some((u64::from_str_radix(a, 16).ok()? << 32) | u64::from_str_radix(b, 16).ok()?)
}

pub fn quote_ident(s: &str) -> String {
    format!("\"{}\"", s.replace('"', "\"\""))
}

pub fn quote_literal(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

#[cfg(test)]
mod tests {
    #[test]
    fn lsn() {
        assert_eq!(super::parse_lsn("16/B374D848"), Some(0x16_B374_D848));
        assert_eq!(super::format_lsn(0x16_B374_D848), "16/B374D848");
    }
}
