//! A scripted control plane for agent tests: a real tonic server on 127.0.0.1:0 whose sessions the test drives by
//! hand (what to send down, what came up), plus helpers to start an agent in-process.

#![allow(dead_code)]

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::time::Duration;

use sluice_proto::agent::agent_message::Kind as Up;
use sluice_proto::agent::agent_service_server::{AgentService, AgentServiceServer};
use sluice_proto::agent::control_message::Kind as Down;
use sluice_proto::agent::{
    AgentMessage, Assignment, ControlMessage, HeartbeatAck, TargetState, TaskAssignment, TaskId, Welcome,
};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_stream::wrappers::{ReceiverStream, TcpListenerStream};
use tokio_util::sync::CancellationToken;
use tonic::{Request, Response, Status, Streaming};

/// One agent session as the fake control plane sees it.
pub struct Session {
    pub down: mpsc::Sender<Result<ControlMessage, Status>>,
    pub up: mpsc::UnboundedReceiver<AgentMessage>,
}

impl Session {
    pub async fn send(&self, kind: Down) {
        self.down.send(Ok(ControlMessage { kind: Some(kind) })).await.expect("agent stream open");
    }

    pub async fn welcome(&self, lease_ttl_ms: u64, heartbeat_interval_ms: u64) {
        self.send(Down::Welcome(Welcome { lease_ttl_ms, heartbeat_interval_ms, control_plane_id: "fake".into() }))
            .await;
    }

    pub async fn assign(&self, revision: u64, tasks: Vec<TaskAssignment>) {
        self.send(Down::Assignment(Assignment { revision, tasks, revoked: vec![] })).await;
    }

    /// The next message that is not a heartbeat; heartbeats are acknowledged when `ack` is set.
    pub async fn next(&mut self, ack: bool, within: Duration) -> Up {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let message = tokio::time::timeout_at(deadline, self.up.recv())
                .await
                .expect("timed out waiting for the agent")
                .expect("agent stream closed");
            match message.kind.expect("message kind") {
                Up::Heartbeat(beat) => {
                    if ack {
                        let _ = self
                            .down
                            .send(Ok(ControlMessage { kind: Some(Down::HeartbeatAck(HeartbeatAck { seq: beat.seq })) }))
                            .await;
                    }
                }
                other => return other,
            }
        }
    }
}

struct FakeService {
    sessions: mpsc::UnboundedSender<Session>,
}

#[tonic::codegen::async_trait]
impl AgentService for FakeService {
    type SessionStream = ReceiverStream<Result<ControlMessage, Status>>;

    async fn session(
        &self,
        request: Request<Streaming<AgentMessage>>,
    ) -> Result<Response<Self::SessionStream>, Status> {
        let mut inbound = request.into_inner();
        let (down, down_rx) = mpsc::channel(64);
        let (up_tx, up) = mpsc::unbounded_channel();
        tokio::spawn(async move {
            while let Ok(Some(message)) = inbound.message().await {
                if up_tx.send(message).is_err() {
                    break;
                }
            }
        });
        let _ = self.sessions.send(Session { down, up });
        Ok(Response::new(ReceiverStream::new(down_rx)))
    }
}

pub struct FakeControlPlane {
    pub address: SocketAddr,
    pub sessions: mpsc::UnboundedReceiver<Session>,
    _server: JoinHandle<()>,
}

impl FakeControlPlane {
    pub async fn start() -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let address = listener.local_addr().expect("address");
        let (tx, sessions) = mpsc::unbounded_channel();
        let server = tokio::spawn(async move {
            let _ = tonic::transport::Server::builder()
                .add_service(AgentServiceServer::new(FakeService { sessions: tx }))
                .serve_with_incoming(TcpListenerStream::new(listener))
                .await;
        });
        FakeControlPlane { address, sessions, _server: server }
    }

    pub async fn next_session(&mut self, within: Duration) -> Session {
        tokio::time::timeout(within, self.sessions.recv()).await.expect("no session in time").expect("server alive")
    }
}

pub struct RunningAgent {
    pub shutdown: CancellationToken,
    pub join: JoinHandle<Result<(), sluice_agent::AgentError>>,
}

pub fn start_agent(
    control_plane: &FakeControlPlane,
    worker: &[(&str, &str)],
    metrics_listen: Option<SocketAddr>,
) -> RunningAgent {
    let shutdown = CancellationToken::new();
    let opts = sluice_agent::AgentOptions {
        control_plane: vec![format!("http://{}", control_plane.address)],
        tls_ca: None,
        client_identity: None,
        agent_token: None,
        agent_id: "agent-1".into(),
        worker_config: worker.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
        capacity: 0,
        worker_id: None,
        metrics_listen,
        metrics_auth: None,
    };
    let join = tokio::spawn(sluice_agent::run(opts, shutdown.clone()));
    RunningAgent { shutdown, join }
}

pub fn task(connector: &str, task: u32, epoch: u64, kind: &str, config: &[(&str, &str)]) -> TaskAssignment {
    let connector_config: HashMap<String, String> =
        config.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    TaskAssignment {
        id: Some(TaskId { connector: connector.into(), task }),
        epoch,
        connector_type: kind.into(),
        connector_config,
        task_config: HashMap::new(),
        offsets: vec![],
        target_state: TargetState::Running as i32,
        cluster: String::new(),
        offsets_generation: String::new(),
    }
}

/// A free local port (bound and released), for the metrics endpoint.
pub fn free_port() -> SocketAddr {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.local_addr().expect("address")
}

/// A minimal HTTP/1.0 GET, enough for `/metrics` and `/health`.
pub async fn http_get(address: SocketAddr, path: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(address).await.expect("connect");
    stream.write_all(format!("GET {path} HTTP/1.0\r\nHost: localhost\r\n\r\n").as_bytes()).await.expect("write");
    let mut body = String::new();
    stream.read_to_string(&mut body).await.expect("read");
    body
}

pub fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
}
