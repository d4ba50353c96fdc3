//! The agent's session against a scripted control plane: handshake, statuses, fencing, reconnect, goodbye.
//! No Kafka needed: tasks either fail on purpose or run against an unreachable broker.

mod support;

use std::time::Duration;

use sluice_proto::agent::TaskState;
use sluice_proto::agent::agent_message::Kind as Up;
use support::{FakeControlPlane, free_port, http_get, start_agent, task};

const WAIT: Duration = Duration::from_secs(10);

#[tokio::test]
async fn handshake_failed_task_status_and_goodbye() {
    let mut cp = FakeControlPlane::start().await;
    let agent = start_agent(&cp, &[], None);
    let mut session = cp.next_session(WAIT).await;

    let Up::Hello(hello) = session.next(true, WAIT).await else { panic!("expected Hello first") };
    assert_eq!(hello.agent_id, "agent-1");
    assert_eq!(hello.worker_id, "agent-1", "worker id defaults to the agent id");
    assert!(!hello.version.is_empty());
    session.welcome(5_000, 100).await;

    session.assign(1, vec![task("broken", 0, 7, "source", &[("connector.class", "NoSuchConnector")])]).await;
    let Up::TaskStatus(status) = session.next(true, WAIT).await else { panic!("expected a task status") };
    assert_eq!(status.state, TaskState::Failed as i32);
    assert_eq!(status.epoch, 7);
    assert!(status.trace.contains("NoSuchConnector"), "{}", status.trace);

    agent.shutdown.cancel();
    // A stopping source task always reports a final (here empty) commit, which releases a pending handover.
    let mut next = session.next(true, WAIT).await;
    if let Up::OffsetCommit(commit) = &next {
        assert_eq!((commit.epoch, commit.offsets.len()), (7, 0), "{commit:?}");
        next = session.next(true, WAIT).await;
    }
    let Up::Goodbye(_) = next else { panic!("expected Goodbye, got {next:?}") };
    tokio::time::timeout(WAIT, agent.join).await.expect("agent exits").expect("no panic").expect("clean exit");
}

#[tokio::test]
async fn a_silent_control_plane_fences_the_tasks_and_the_agent_reconnects() {
    let mut cp = FakeControlPlane::start().await;
    let metrics = free_port();
    let dir = tempfile::tempdir().expect("tempdir");
    let output = dir.path().join("out.txt");
    let output = output.to_str().expect("utf-8 path");
    // An unreachable broker: the sink task starts and runs, it just never receives anything.
    let agent = start_agent(&cp, &[("bootstrap.servers", "127.0.0.1:1")], Some(metrics));
    let sink = || {
        task(
            "sink",
            0,
            3,
            "sink",
            &[("connector.class", "FileStreamSink"), ("topics", "nothing-here"), ("file", output)],
        )
    };

    let mut first = cp.next_session(WAIT).await;
    let Up::Hello(_) = first.next(true, WAIT).await else { panic!("expected Hello") };
    first.welcome(1_000, 100).await;
    first.assign(1, vec![sink()]).await;
    let Up::TaskStatus(status) = first.next(false, WAIT).await else { panic!("expected a task status") };
    assert_eq!(status.state, TaskState::Running as i32, "{}", status.trace);
    let page = http_get(metrics, "/metrics").await;
    assert!(page.contains("sluice_task_count 1"), "{page}");

    // No acks: within the lease TTL (minus the margin) the agent stops everything and looks for another replica.
    let mut second = cp.next_session(Duration::from_secs(5)).await;
    let page = http_get(metrics, "/metrics").await;
    assert!(page.contains("sluice_agent_self_fenced_total 1"), "{page}");
    assert!(page.contains("sluice_task_count 0"), "{page}");

    let Up::Hello(_) = second.next(true, WAIT).await else { panic!("expected Hello on the new session") };
    second.welcome(5_000, 100).await;
    // The first assignment of the new session is authoritative: same epoch, still ours, so it runs again.
    second.assign(2, vec![sink()]).await;
    let Up::TaskStatus(status) = second.next(true, WAIT).await else { panic!("expected a task status") };
    assert_eq!(status.state, TaskState::Running as i32);
    let health = http_get(metrics, "/health").await;
    assert!(health.starts_with("HTTP/1.0 200") || health.starts_with("HTTP/1.1 200"), "{health}");

    agent.shutdown.cancel();
    let Up::Goodbye(_) = second.next(true, WAIT).await else { panic!("expected Goodbye") };
    tokio::time::timeout(WAIT, agent.join).await.expect("agent exits").expect("no panic").expect("clean exit");
}

#[tokio::test]
async fn pause_and_revoke() {
    let mut cp = FakeControlPlane::start().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let output = dir.path().join("out.txt");
    let output = output.to_str().expect("utf-8 path");
    let agent = start_agent(&cp, &[("bootstrap.servers", "127.0.0.1:1")], None);
    let mut sink =
        task("sink", 0, 3, "sink", &[("connector.class", "FileStreamSink"), ("topics", "t"), ("file", output)]);

    let mut session = cp.next_session(WAIT).await;
    let Up::Hello(_) = session.next(true, WAIT).await else { panic!("expected Hello") };
    session.welcome(5_000, 100).await;
    session.assign(1, vec![sink.clone()]).await;
    let Up::TaskStatus(status) = session.next(true, WAIT).await else { panic!("expected a task status") };
    assert_eq!(status.state, TaskState::Running as i32, "{}", status.trace);

    sink.target_state = sluice_proto::agent::TargetState::Paused as i32;
    session.assign(2, vec![sink.clone()]).await;
    let Up::TaskStatus(status) = session.next(true, WAIT).await else { panic!("expected a task status") };
    assert_eq!(status.state, TaskState::Paused as i32);

    sink.target_state = sluice_proto::agent::TargetState::Running as i32;
    session.assign(3, vec![sink.clone()]).await;
    let Up::TaskStatus(status) = session.next(true, WAIT).await else { panic!("expected a task status") };
    assert_eq!(status.state, TaskState::Running as i32);

    // A new epoch restarts the task: the new incarnation reports RUNNING with its own epoch.
    sink.epoch = 4;
    session.assign(4, vec![sink.clone()]).await;
    let Up::TaskStatus(status) = session.next(true, WAIT).await else { panic!("expected a task status") };
    assert_eq!((status.state, status.epoch), (TaskState::Running as i32, 4));

    session.assign(5, vec![]).await;
    agent.shutdown.cancel();
    let Up::Goodbye(_) = session.next(true, WAIT).await else { panic!("expected Goodbye, nothing else") };
    tokio::time::timeout(WAIT, agent.join).await.expect("agent exits").expect("no panic").expect("clean exit");
}

#[tokio::test]
async fn invalid_options_are_errors() {
    let shutdown = tokio_util::sync::CancellationToken::new();
    let opts = sluice_agent::AgentOptions { agent_id: "a".into(), ..Default::default() };
    let err = sluice_agent::run(opts, shutdown.clone()).await.unwrap_err();
    assert!(matches!(err, sluice_agent::AgentError::NoControlPlane), "{err}");

    let opts = sluice_agent::AgentOptions {
        agent_id: "a".into(),
        control_plane: vec!["http://127.0.0.1:1".into()],
        worker_config: support::map(&[("offset.flush.interval.ms", "often")]),
        ..Default::default()
    };
    let err = sluice_agent::run(opts, shutdown).await.unwrap_err();
    assert!(err.to_string().contains("offset.flush.interval.ms"), "{err}");
}
