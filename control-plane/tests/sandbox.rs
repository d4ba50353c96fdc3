//! An in-process cluster sandbox: a real control-plane replica on the embedded store, driven through the admin
//! API and a raw agent stream (the real gRPC protocol, no agent runtime), to check scheduling and fencing without
//! Kafka.

use std::collections::BTreeMap;
use std::time::Duration;

use sluice_control_plane::agent_auth::AgentAuth;
use sluice_control_plane::api::{ApiErrorKind, CreateConnector, TargetState};
use sluice_control_plane::server::{self, Replica, ReplicaSettings};
use sluice_control_plane::store::embedded::EmbeddedStore;
use sluice_control_plane::stream::SessionSettings;
use sluice_proto::agent::agent_message::Kind as Up;
use sluice_proto::agent::agent_service_client::AgentServiceClient;
use sluice_proto::agent::control_message::Kind as Down;
use sluice_proto::agent::{
    AgentMessage, Assignment, ControlMessage, Heartbeat, Hello, OffsetCommit, SourceOffset, TaskId, TaskState,
    TaskStatus,
};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tokio_util::sync::CancellationToken;

async fn replica(shutdown: &CancellationToken) -> Replica {
    replica_with_auth(shutdown, AgentAuth::insecure()).await
}

async fn replica_with_auth(shutdown: &CancellationToken, agent_auth: AgentAuth) -> Replica {
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
        cors: Default::default(),
        worker_converters: Default::default(),
        rest_tls: None,
        grpc_tls: None,
        agent_auth,
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
        Self::try_connect(replica, id, None, Vec::new()).await.unwrap()
    }

    /// Opens a stream as `id`, presenting `token` (if any), with `then` queued right after Hello.
    async fn try_connect(
        replica: &Replica,
        id: &str,
        token: Option<&str>,
        then: Vec<AgentMessage>,
    ) -> Result<Self, tonic::Status> {
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
        for message in then {
            up.send(message).await.unwrap();
        }
        let mut request = tonic::Request::new(ReceiverStream::new(rx));
        if let Some(token) = token {
            request.metadata_mut().insert("authorization", format!("Bearer {token}").parse().unwrap());
        }
        let down = client.session(request).await?.into_inner();
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
        Ok(FakeAgentStream { up, down })
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

fn status_message(id: &TaskId, epoch: u64, state: TaskState) -> AgentMessage {
    AgentMessage {
        kind: Some(Up::TaskStatus(TaskStatus {
            id: Some(id.clone()),
            epoch,
            state: state as i32,
            trace: String::new(),
        })),
    }
}

fn offset_message(id: &TaskId, epoch: u64, position: u64) -> AgentMessage {
    AgentMessage {
        kind: Some(Up::OffsetCommit(OffsetCommit {
            id: Some(id.clone()),
            epoch,
            offsets: vec![SourceOffset {
                partition_json: r#"{"filename":"/tmp/sluice-sandbox-input.txt"}"#.into(),
                offset_json: format!(r#"{{"position":{position}}}"#),
            }],
        })),
    }
}

/// Waits until `check` holds (up to 10 s).
async fn eventually<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    for _ in 0..100 {
        if check().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("{what}: not within 10 s");
}

async fn offsets_text(api: &std::sync::Arc<dyn sluice_control_plane::api::ConnectApi>) -> String {
    serde_json::to_string(&api.connector_offsets("src").await.unwrap()).unwrap()
}

/// Issue 13, finding 1: a client without the agent credential gets no Welcome, no assignment (so no task config and
/// none of its secrets), and changes no status and no offset, also when it claims the id of a live agent and says
/// Goodbye for it. An authenticated agent acts only as itself: reports on another agent's task are rejected.
#[tokio::test(flavor = "multi_thread")]
async fn streams_without_the_agent_credential_get_nothing() {
    let shutdown = CancellationToken::new();
    let auth = AgentAuth::new(Some("j0in-token".into()), false, &[]).unwrap();
    let replica = replica_with_auth(&shutdown, auth).await;
    let api = replica.api.clone();
    let mut config = source_config("src");
    config.insert("connection.password".into(), "hunter2".into());
    api.create_connector(CreateConnector { name: "src".into(), config, initial_state: TargetState::Running })
        .await
        .unwrap();

    // The real agent, with the token: assignment, RUNNING, an offset.
    let mut agent = FakeAgentStream::try_connect(&replica, "agent-a", Some("j0in-token"), Vec::new()).await.unwrap();
    let mut assignment = agent.next_assignment().await;
    while assignment.tasks.is_empty() {
        assignment = agent.next_assignment().await;
    }
    let task = assignment.tasks[0].clone();
    let id = task.id.clone().unwrap();
    agent.up.send(status_message(&id, task.epoch, TaskState::Running)).await.unwrap();
    agent.up.send(offset_message(&id, task.epoch, 10)).await.unwrap();
    eventually("RUNNING on agent-a with offset 10", || {
        let api = api.clone();
        async move {
            let status = api.connector_status("src").await.unwrap();
            status.tasks[0].state == "RUNNING" && offsets_text(&api).await.contains(r#""position":10"#)
        }
    })
    .await;
    let offsets_before = offsets_text(&api).await;

    // Rogue streams: no token, a wrong token, and the live agent's id without a token. Each queues a FAILED
    // status, an offset of 424242 and a Goodbye behind its Hello.
    let rogue_messages = || {
        vec![
            status_message(&id, task.epoch, TaskState::Failed),
            offset_message(&id, task.epoch, 424242),
            AgentMessage { kind: Some(Up::Goodbye(sluice_proto::agent::Goodbye { reason: "rogue".into() })) },
        ]
    };
    for (agent_id, token) in [("rogue", None), ("rogue", Some("wrong")), ("agent-a", None), ("agent-a", Some(""))] {
        let refused = FakeAgentStream::try_connect(&replica, agent_id, token, rogue_messages()).await;
        let status = refused.err().unwrap_or_else(|| panic!("{agent_id} with {token:?} got a stream"));
        assert_eq!(status.code(), tonic::Code::Unauthenticated, "{agent_id} with {token:?}: {status:?}");
    }
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let status = api.connector_status("src").await.unwrap();
    assert_eq!(status.tasks[0].state, "RUNNING");
    assert_eq!(status.tasks[0].worker_id, "agent-a");
    assert_eq!(offsets_text(&api).await, offsets_before);
    // The real agent kept its lease and its task: no new assignment was pushed to it.
    assert!(tokio::time::timeout(Duration::from_millis(300), agent.next_assignment()).await.is_err());

    // Another authenticated agent cannot report on agent-a's task, nor commit its offsets.
    let mut other = FakeAgentStream::try_connect(&replica, "agent-b", Some("j0in-token"), Vec::new()).await.unwrap();
    let stolen = AgentMessage {
        kind: Some(Up::TopicsUsed(sluice_proto::agent::TopicsUsed {
            id: Some(id.clone()),
            epoch: task.epoch,
            topics: vec!["stolen".into()],
        })),
    };
    other.up.send(stolen).await.unwrap();
    other.up.send(status_message(&id, task.epoch, TaskState::Failed)).await.unwrap();
    other.up.send(offset_message(&id, task.epoch, 424242)).await.unwrap();
    let mut rejects = 0;
    while rejects < 2 {
        match tokio::time::timeout(Duration::from_secs(5), other.down.message()).await.unwrap().unwrap().unwrap().kind {
            Some(Down::Reject(r)) => {
                assert_eq!(r.id.as_ref(), Some(&id));
                rejects += 1;
            }
            _ => continue,
        }
    }
    let status = api.connector_status("src").await.unwrap();
    assert_eq!((status.tasks[0].state.as_str(), status.tasks[0].worker_id.as_str()), ("RUNNING", "agent-a"));
    assert_eq!(offsets_text(&api).await, offsets_before);
    // Handled before the rejected reports: topics of a connector not assigned to agent-b are not recorded.
    assert!(!api.connector_topics("src").await.unwrap().contains(&"stolen".to_string()));
    shutdown.cancel();
}

/// Without any agent authentication configured, a replica refuses every agent stream.
#[tokio::test(flavor = "multi_thread")]
async fn a_replica_without_agent_authentication_refuses_every_stream() {
    let shutdown = CancellationToken::new();
    let replica = replica_with_auth(&shutdown, AgentAuth::default()).await;
    for token in [None, Some("anything")] {
        let refused = FakeAgentStream::try_connect(&replica, "agent-a", token, Vec::new()).await;
        let status = refused.err().expect("refused");
        assert_eq!(status.code(), tonic::Code::Unauthenticated);
        assert!(status.message().contains("--insecure-agents"), "{}", status.message());
    }
    shutdown.cancel();
}

/// The next message of the stream that `pick` accepts (others are skipped), within 10 s.
async fn next_down<T>(agent: &mut FakeAgentStream, mut pick: impl FnMut(Down) -> Option<T>) -> T {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let message = tokio::time::timeout_at(deadline, agent.down.message()).await.expect("nothing in time");
        if let Some(kind) = message.unwrap().unwrap().kind
            && let Some(out) = pick(kind)
        {
            return out;
        }
    }
}

fn shared_put(id: &TaskId, epoch: u64, key: &str, value_json: &str) -> AgentMessage {
    AgentMessage {
        kind: Some(Up::SharedStatePut(sluice_proto::agent::SharedStatePut {
            id: Some(id.clone()),
            epoch,
            key: key.into(),
            value_json: value_json.into(),
        })),
    }
}

fn sink_config(name: &str) -> BTreeMap<String, String> {
    [
        ("name", name),
        ("connector.class", "FileStreamSink"),
        ("tasks.max", "2"),
        ("file", "/tmp/sluice-sandbox-output.txt"),
        ("topics", "sandbox-topic"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect()
}

/// The connector's shared state: every agent running one of its tasks gets all of it before the assignment that
/// gives it the task, and again on every change and every new session; only current incarnations write; a new
/// connector of the same name starts empty.
#[tokio::test(flavor = "multi_thread")]
async fn shared_state_reaches_every_agent_of_the_connector() {
    let shutdown = CancellationToken::new();
    let replica = replica(&shutdown).await;
    let api = replica.api.clone();
    let mut a = FakeAgentStream::connect(&replica, "agent-a").await;
    let mut b = FakeAgentStream::connect(&replica, "agent-b").await;
    let create =
        || CreateConnector { name: "co".into(), config: sink_config("co"), initial_state: TargetState::Running };
    api.create_connector(create()).await.unwrap();

    // Before the assignment with a task of the connector: its (empty) shared state.
    let mut tasks = Vec::new();
    for agent in [&mut a, &mut b] {
        let mut seen_state = false;
        let assignment = next_down(agent, |kind| match kind {
            Down::SharedState(s) => {
                assert_eq!(s.connector, "co");
                assert!(s.values.is_empty(), "{:?}", s.values);
                seen_state = true;
                None
            }
            Down::Assignment(a) if !a.tasks.is_empty() => Some(a),
            _ => None,
        })
        .await;
        assert!(seen_state, "no shared state before the assignment");
        assert_eq!(assignment.tasks.len(), 1, "one task per agent");
        tasks.push(assignment.tasks[0].clone());
    }
    let (task_a, task_b) = (tasks[0].clone(), tasks[1].clone());
    let id_a = task_a.id.clone().unwrap();

    // A stale epoch is not taken; the current one is, and both agents see it.
    a.up.send(shared_put(&id_a, task_a.epoch - 1, "plan", r#"{"zombie":true}"#)).await.unwrap();
    a.up.send(shared_put(&id_a, task_a.epoch, "plan", r#"{"generation":"g1"}"#)).await.unwrap();
    for agent in [&mut a, &mut b] {
        let values = next_down(agent, |kind| match kind {
            Down::SharedState(s) => Some(s.values),
            _ => None,
        })
        .await;
        assert_eq!(values, [("plan".to_string(), r#"{"generation":"g1"}"#.to_string())].into());
    }
    // Not JSON: refused.
    let id_b = task_b.id.clone().unwrap();
    b.up.send(shared_put(&id_b, task_b.epoch, "bad", "{not json")).await.unwrap();
    b.up.send(shared_put(&id_b, task_b.epoch, "done.1", r#"{"generation":"g1"}"#)).await.unwrap();
    let values = next_down(&mut a, |kind| match kind {
        Down::SharedState(s) => Some(s.values),
        _ => None,
    })
    .await;
    assert_eq!(values.len(), 2, "{values:?}");
    assert_eq!(values["done.1"], r#"{"generation":"g1"}"#);

    // A new session gets the current values before its assignment.
    drop(b);
    let mut b = FakeAgentStream::connect(&replica, "agent-b").await;
    let mut values = None;
    next_down(&mut b, |kind| match kind {
        Down::SharedState(s) => {
            values = Some(s.values);
            None
        }
        Down::Assignment(a) if !a.tasks.is_empty() => Some(()),
        _ => None,
    })
    .await;
    assert_eq!(values.map(|v| v.len()), Some(2));

    // An empty value removes a key.
    a.up.send(shared_put(&id_a, task_a.epoch, "plan", "")).await.unwrap();
    let values = next_down(&mut b, |kind| match kind {
        Down::SharedState(s) => Some(s.values),
        _ => None,
    })
    .await;
    assert_eq!(values.keys().collect::<Vec<_>>(), vec!["done.1"]);
    next_down(&mut a, |kind| matches!(kind, Down::SharedState(_)).then_some(())).await;

    // Deleted with the connector: a new one of the same name starts empty, and the old tasks cannot write.
    api.delete_connector("co").await.unwrap();
    a.up.send(shared_put(&id_a, task_a.epoch, "late", r#"1"#)).await.unwrap();
    api.create_connector(create()).await.unwrap();
    let values = next_down(&mut a, |kind| match kind {
        Down::SharedState(s) => Some(s.values),
        _ => None,
    })
    .await;
    assert!(values.is_empty(), "{values:?}");
    shutdown.cancel();
}
