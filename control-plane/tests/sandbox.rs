//! An in-process cluster sandbox: a real control-plane replica on the embedded store, driven through the admin
//! API and a raw agent stream (the real gRPC protocol, no agent runtime), to check scheduling and fencing without
//! Kafka.

use std::collections::BTreeMap;
use std::time::Duration;

use sluice_control_plane::api::{ApiErrorKind, CreateConnector, TargetState};
use sluice_control_plane::server::{self, Replica, ReplicaSettings};
use sluice_control_plane::store::embedded::EmbeddedStore;
use sluice_control_plane::stream::SessionSettings;
use sluice_proto::agent::agent_message::Kind as Up;
use sluice_proto::agent::agent_service_client::AgentServiceClient;
use sluice_proto::agent::control_message::Kind as Down;
use sluice_proto::agent::{AgentMessage, Assignment, ControlMessage, Heartbeat, Hello, TaskId, TaskState, TaskStatus};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tokio_util::sync::CancellationToken;

async fn replica(shutdown: &CancellationToken) -> Replica {
    let store = std::sync::Arc::new(EmbeddedStore::in_memory());
    let rest = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let grpc = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let settings = ReplicaSettings {
        cluster: "sandbox".into(),
        replica_id: "r1".into(),
        session: SessionSettings {
            lease_ttl: Duration::from_millis(1500),
            heartbeat_interval: Duration::from_millis(200),
        },
        leader_lease_ttl: Duration::from_secs(2),
        kafka_bootstrap_servers: None,
        request_timeout: sluice_control_plane::deadline::DEFAULT_REQUEST_TIMEOUT,
        credentials: None,
        rest_tls: None,
        grpc_tls: None,
        connection_limits: sluice_control_plane::connections::ConnectionLimits::default(),
    };
    server::start(store, settings, rest, grpc, shutdown.clone()).await.unwrap()
}

fn source_config(name: &str) -> BTreeMap<String, String> {
    [
        ("name", name),
        ("connector.class", "FileStreamSource"),
        ("tasks.max", "1"),
        ("file", "/tmp/sluice-sandbox-input.txt"),
        ("topic", "sandbox-topic"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect()
}

struct FakeAgentStream {
    up: mpsc::Sender<AgentMessage>,
    down: tonic::Streaming<ControlMessage>,
}

impl FakeAgentStream {
    async fn connect(replica: &Replica, id: &str) -> Self {
        let mut client = AgentServiceClient::connect(format!("http://{}", replica.grpc_addr)).await.unwrap();
        let (up, rx) = mpsc::channel(16);
        up.send(AgentMessage {
            kind: Some(Up::Hello(Hello {
                agent_id: id.into(),
                host: "h".into(),
                worker_id: id.into(),
                ..Default::default()
            })),
        })
        .await
        .unwrap();
        let down = client.session(ReceiverStream::new(rx)).await.unwrap().into_inner();
        // Keep the lease alive for the whole test.
        let beat = up.clone();
        tokio::spawn(async move {
            for seq in 1.. {
                let hb = AgentMessage { kind: Some(Up::Heartbeat(Heartbeat { seq, running_tasks: 0 })) };
                if beat.send(hb).await.is_err() {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        });
        FakeAgentStream { up, down }
    }

    /// The next assignment pushed down the stream.
    async fn next_assignment(&mut self) -> Assignment {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        loop {
            let message = tokio::time::timeout_at(deadline, self.down.message()).await.expect("no assignment in time");
            match message.unwrap().unwrap().kind {
                Some(Down::Assignment(a)) => return a,
                _ => continue,
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn scheduling_status_and_fencing() {
    let shutdown = CancellationToken::new();
    let replica = replica(&shutdown).await;
    let api = replica.api.clone();

    let info = api
        .create_connector(CreateConnector {
            name: "src".into(),
            config: source_config("src"),
            initial_state: TargetState::Running,
        })
        .await
        .unwrap();
    assert_eq!(info.connector_type, "source");
    assert_eq!(info.tasks.len(), 1);

    // Bad input changes nothing.
    let dup = api
        .create_connector(CreateConnector {
            name: "src".into(),
            config: source_config("src"),
            initial_state: TargetState::Running,
        })
        .await
        .unwrap_err();
    assert_eq!(dup.kind, ApiErrorKind::AlreadyExists);
    assert_eq!(dup.message, "Connector src already exists");
    let mut missing = source_config("bad");
    missing.remove("topic");
    let err = api
        .create_connector(CreateConnector { name: "bad".into(), config: missing, initial_state: TargetState::Running })
        .await
        .unwrap_err();
    assert_eq!(err.kind, ApiErrorKind::BadRequest);
    assert!(err.message.contains("topic"), "{}", err.message);
    assert_eq!(api.list_connectors().await.unwrap(), vec!["src".to_string()]);

    // The agent gets the task with an epoch, reports RUNNING, and the status shows it.
    let mut agent = FakeAgentStream::connect(&replica, "agent-a").await;
    let mut assignment = agent.next_assignment().await;
    while assignment.tasks.is_empty() {
        assignment = agent.next_assignment().await;
    }
    let task = assignment.tasks[0].clone();
    assert_eq!(task.id, Some(TaskId { connector: "src".into(), task: 0 }));
    assert_eq!(task.connector_type, "source");
    let report = |epoch: u64| AgentMessage {
        kind: Some(Up::TaskStatus(TaskStatus {
            id: task.id.clone(),
            epoch,
            state: TaskState::Running as i32,
            trace: String::new(),
        })),
    };
    agent.up.send(report(task.epoch)).await.unwrap();
    let mut running = false;
    for _ in 0..50 {
        let status = api.connector_status("src").await.unwrap();
        if status.tasks[0].state == "RUNNING" {
            assert_eq!(status.tasks[0].worker_id, "agent-a");
            running = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(running, "task never showed RUNNING");

    // A report with a stale epoch is rejected.
    agent.up.send(report(task.epoch - 1)).await.unwrap();
    let rejected = loop {
        match tokio::time::timeout(Duration::from_secs(5), agent.down.message()).await.unwrap().unwrap().unwrap().kind {
            Some(Down::Reject(r)) => break r,
            _ => continue,
        }
    };
    assert_eq!(rejected.epoch, task.epoch - 1);

    // Restarting the task gives it a new, larger epoch.
    api.restart_task("src", 0).await.unwrap();
    let next = agent.next_assignment().await;
    assert!(next.tasks[0].epoch > task.epoch);

    // Stop revokes it; delete removes the connector.
    api.stop_connector("src").await.unwrap();
    let stopped = agent.next_assignment().await;
    assert!(stopped.tasks.is_empty());
    assert_eq!(stopped.revoked.len(), 1);
    assert_eq!(api.connector_status("src").await.unwrap().connector.state, "STOPPED");
    api.delete_connector("src").await.unwrap();
    assert_eq!(api.connector_info("src").await.unwrap_err().kind, ApiErrorKind::NotFound);
    shutdown.cancel();
}
