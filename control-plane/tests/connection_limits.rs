//! The REST and gRPC ports close idle and half-sent connections and hold at most `max_connections` open: 200
//! connections that never send a request (or stop half-way through one) must not stay open, and the replica still
//! answers afterwards.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use sluice_control_plane::connections::ConnectionLimits;
use sluice_control_plane::server::{self, ReplicaSettings};
use sluice_control_plane::store::embedded::EmbeddedStore;
use sluice_control_plane::stream::SessionSettings;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_util::sync::CancellationToken;

const LIMITS: ConnectionLimits = ConnectionLimits {
    max_connections: 100,
    idle_timeout: Duration::from_secs(2),
    header_read_timeout: Duration::from_secs(2),
    body_read_timeout: Duration::from_secs(2),
};

/// What each of the 200 connections sends before it goes quiet.
fn opening(port: &str, n: usize) -> &'static [u8] {
    match (port, n % 3) {
        (_, 0) => b"",
        ("rest", 1) => b"GET /connectors HTTP/1.1\r\nHost: x\r\n",
        ("rest", _) => b"POST /connectors HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"na",
        (_, 1) => b"PRI * HTTP/2.0\r\n",
        _ => b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00",
    }
}

/// Waits until the peer closes the connection (EOF or error); returns when it happened.
async fn closed_after(mut stream: TcpStream, started: Instant) -> Duration {
    let mut buf = [0u8; 4096];
    loop {
        match stream.read(&mut buf).await {
            Ok(0) | Err(_) => return started.elapsed(),
            Ok(_) => {}
        }
    }
}

async fn flood(addr: SocketAddr, port: &'static str) -> Vec<Duration> {
    let started = Instant::now();
    let mut waits = Vec::new();
    for n in 0..200 {
        let mut stream = TcpStream::connect(addr).await.expect("connect");
        let _ = stream.write_all(opening(port, n)).await;
        waits.push(tokio::spawn(closed_after(stream, started)));
    }
    let mut closed = Vec::new();
    for wait in waits {
        closed.push(
            tokio::time::timeout(Duration::from_secs(15), wait).await.expect("closed within 15 s").expect("join"),
        );
    }
    closed
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn idle_and_half_sent_connections_are_closed_and_limited() {
    let shutdown = CancellationToken::new();
    let store = std::sync::Arc::new(EmbeddedStore::in_memory());
    let rest = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let grpc = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let settings = ReplicaSettings {
        cluster: "limits".into(),
        replica_id: "r1".into(),
        session: SessionSettings::default(),
        leader_lease_ttl: Duration::from_secs(2),
        kafka_bootstrap_servers: None,
        request_timeout: sluice_control_plane::deadline::DEFAULT_REQUEST_TIMEOUT,
        credentials: None,
        cors: Default::default(),
        worker_converters: Default::default(),
        rest_tls: None,
        grpc_tls: None,
        agent_auth: Default::default(),
        connection_limits: LIMITS,
    };
    let replica = server::start(store, settings, rest, grpc, shutdown.clone()).await.expect("start");

    for (port, addr) in [("rest", replica.rest_addr), ("grpc", replica.grpc_addr)] {
        let closed = flood(addr, port).await;
        let at_once = closed.iter().filter(|d| **d < Duration::from_millis(1500)).count();
        let slowest = closed.iter().max().copied().unwrap_or_default();
        println!(
            "{port}: 200 quiet connections, {at_once} closed at once (over the limit), all closed after {slowest:?}"
        );
        assert!(at_once >= 100, "{port}: connections over the limit of 100 must be closed at once ({at_once})");
        assert!(
            slowest < Duration::from_secs(6),
            "{port}: idle connections must be closed after ~2 s, took {slowest:?}"
        );
    }

    // Still serving: a complete request is answered.
    let mut stream = TcpStream::connect(replica.rest_addr).await.expect("connect");
    stream.write_all(b"GET /connectors HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").await.expect("write");
    let mut answer = String::new();
    stream.read_to_string(&mut answer).await.expect("read");
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");

    // A body dripped slower than the body read timeout: 408 with Kafka Connect's error body.
    let mut stream = TcpStream::connect(replica.rest_addr).await.expect("connect");
    stream
        .write_all(
            b"POST /connectors HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 40\r\n\r\n{",
        )
        .await
        .expect("write");
    let drip = tokio::spawn(async move {
        for _ in 0..8 {
            tokio::time::sleep(Duration::from_millis(500)).await;
            if stream.write_all(b" ").await.is_err() {
                break;
            }
        }
        let mut answer = String::new();
        let _ = stream.read_to_string(&mut answer).await;
        answer
    });
    let answer = tokio::time::timeout(Duration::from_secs(10), drip).await.expect("answered").expect("join");
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains(r#""error_code":408"#), "{answer}");
    shutdown.cancel();
    replica.join().await;
}
