//! The agent-stream service: holds one bidirectional gRPC stream per agent. It registers the agent under a lease
//! and keeps that lease alive on heartbeats, pushes the agent's assignment (a full snapshot) whenever it changes,
//! and records task statuses and source offsets that come up the stream — only when they carry the epoch the
//! agent's current assignment gives the task (fencing: a report with any other epoch comes from a zombie).

use std::collections::{BTreeMap, HashSet};
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use futures::{FutureExt, Stream};
use sluice_connectors::registry;
use sluice_proto::agent::agent_message::Kind as Up;
use sluice_proto::agent::agent_service_server::AgentService;
use sluice_proto::agent::control_message::Kind as Down;
use sluice_proto::agent::{
    AgentMessage, Assignment, ClusterLoggerLevel, ControlMessage, HeartbeatAck, Hello, LoggerLevels, OffsetCommit,
    Reject, SharedState, SharedStatePut, SourceOffset, TaskAssignment, TaskId, TaskState, TaskStatus, TopicsUsed,
    Welcome,
};
use tokio::sync::{mpsc, watch};
use tokio_stream::wrappers::ReceiverStream;
use tokio_util::sync::CancellationToken;
use tonic::{Request, Response, Status, Streaming};

use crate::agent_auth::AgentAuth;
use crate::api::TargetState;
use crate::model::{AgentRecord, AssignmentRecord, ClusterState, Keys, TaskStatusRecord, unescape};
use crate::store::mirror::Snapshot;
use crate::store::{Compare, KvStore, Op, StoreError};

/// Most messages handled together after one arrived (statuses among them share one transaction).
const MAX_BATCH: usize = 256;

/// Most statuses written in one transaction (etcd's `--max-txn-ops` is 128 by default).
const MAX_STATUS_TXN: usize = 100;

/// Largest value of a connector's shared state: it is coordination data (a plan, a flag), pushed to every agent
/// that runs one of the connector's tasks on every change.
const MAX_SHARED_VALUE: usize = 256 * 1024;

/// Timing the agents must honour.
#[derive(Debug, Clone)]
pub struct SessionSettings {
    pub lease_ttl: Duration,
    pub heartbeat_interval: Duration,
}

impl Default for SessionSettings {
    fn default() -> Self {
        SessionSettings { lease_ttl: Duration::from_secs(3), heartbeat_interval: Duration::from_millis(500) }
    }
}

/// The tonic service; one instance per replica.
#[derive(Clone)]
pub struct AgentStreamService {
    inner: Arc<Shared>,
    /// Who may open a stream, as which agent id; refuses everyone until [`AgentStreamService::with_auth`].
    auth: Arc<AgentAuth>,
}

struct Shared {
    store: Arc<dyn KvStore>,
    keys: Keys,
    replica_id: String,
    mirror: watch::Receiver<Arc<Snapshot>>,
    /// The replica's parsed mirror, shared by every session (assignments are pushed from it).
    view: watch::Receiver<Arc<ClusterState>>,
    settings: SessionSettings,
    shutdown: CancellationToken,
}

impl AgentStreamService {
    pub fn new(
        store: Arc<dyn KvStore>,
        keys: Keys,
        replica_id: String,
        mirror: watch::Receiver<Arc<Snapshot>>,
        view: watch::Receiver<Arc<ClusterState>>,
        settings: SessionSettings,
        shutdown: CancellationToken,
    ) -> Self {
        AgentStreamService {
            inner: Arc::new(Shared { store, keys, replica_id, mirror, view, settings, shutdown }),
            auth: Arc::new(AgentAuth::default()),
        }
    }

    /// The agent-stream authentication policy (default: every stream refused).
    pub fn with_auth(mut self, auth: AgentAuth) -> Self {
        self.auth = Arc::new(auth);
        self
    }
}

type SessionStream = Pin<Box<dyn Stream<Item = Result<ControlMessage, Status>> + Send>>;

#[tonic::async_trait]
impl AgentService for AgentStreamService {
    type SessionStream = SessionStream;

    async fn session(&self, request: Request<Streaming<AgentMessage>>) -> Result<Response<SessionStream>, Status> {
        let presented = self.auth.presented(&request);
        let mut inbound = request.into_inner();
        let first = tokio::time::timeout(Duration::from_secs(10), inbound.message())
            .await
            .map_err(|_| Status::deadline_exceeded("no Hello within 10 s"))??;
        let hello = match first.and_then(|m| m.kind) {
            Some(Up::Hello(h)) => h,
            _ => return Err(Status::invalid_argument("the first message of a session must be Hello")),
        };
        if hello.agent_id.trim().is_empty() {
            return Err(Status::invalid_argument("Hello.agent_id must not be empty"));
        }
        // Before anything is registered or sent: a stream acts as this id only once its credentials cover it.
        if let Err(refused) = self.auth.authorize(&presented, &hello.agent_id) {
            tracing::warn!(agent = %hello.agent_id, peer = ?presented.peer, reason = refused.message(), "agent stream refused");
            return Err(refused);
        }
        let shared = self.inner.clone();
        let (lease, registered_at) = register(&shared, &hello).await.map_err(RegisterError::status)?;
        let (tx, rx) = mpsc::channel(32);
        let welcome = Welcome {
            lease_ttl_ms: shared.settings.lease_ttl.as_millis() as u64,
            heartbeat_interval_ms: shared.settings.heartbeat_interval.as_millis() as u64,
            control_plane_id: shared.replica_id.clone(),
        };
        let _ = tx.send(Ok(ControlMessage { kind: Some(Down::Welcome(welcome)) })).await;
        tracing::info!(agent = %hello.agent_id, host = %hello.host, lease, "agent connected");
        let session = Session {
            shared,
            hello,
            lease,
            registered_at,
            tx,
            sent: None,
            pushed_from: None,
            sent_levels: None,
            sent_shared: BTreeMap::new(),
            _counted: crate::metrics::global().agent_session(),
        };
        tokio::spawn(session.run(inbound));
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }
}

/// Why an agent's session cannot be registered.
#[derive(Debug, thiserror::Error)]
enum RegisterError {
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Another process with the same agent id is connected.
    #[error(
        "agent id `{agent}` is in use by another connected agent process (instance {instance} on replica {replica}); \
         every agent needs its own --agent-id. If that process is gone, its connection closes and this one is \
         accepted on its next attempt"
    )]
    InUse { agent: String, instance: String, replica: String },
    #[error("agent `{0}` is being registered concurrently; retry")]
    Contended(String),
}

impl RegisterError {
    fn status(self) -> Status {
        match self {
            RegisterError::InUse { .. } => Status::already_exists(self.to_string()),
            other => Status::unavailable(other.to_string()),
        }
    }
}

/// Puts `agents/<id>` under a lease: the agent's existing one if it is still alive (a quick reconnect keeps the
/// assignment), else a new one. Refused while another instance (another process with the same agent id) holds a
/// connected session: two processes must never run the same tasks under one id. A record whose stream closed
/// (the process crashed, or lost its connection) does not block: a restart under the same id works at once.
/// Returns the lease and the revision the record was written at.
async fn register(shared: &Shared, hello: &Hello) -> Result<(i64, i64), RegisterError> {
    let key = shared.keys.agent(&hello.agent_id);
    for _ in 0..5 {
        let existing = shared.store.get(&key).await?;
        let mut lease = None;
        let guard = match &existing {
            Some(kv) => {
                // The key exists, so its lease is alive (etcd deletes it with the lease).
                if let Ok(record) = serde_json::from_slice::<AgentRecord>(&kv.value)
                    && !record.instance.is_empty()
                    && !hello.instance_id.is_empty()
                    && record.instance != hello.instance_id
                {
                    // Another process of this agent id. Known dead (the new one took over its per-host lock):
                    // take over its lease and assignment at once. Else a connected one refuses this session; a
                    // disconnected one may be alive and reconnecting (cut off, not crashed), still running its tasks
                    // until its lease deadline: this session waits until that lease has expired (then the old
                    // process has fenced itself), and is refused if the old one reconnects meanwhile.
                    let proven_dead = hello.replaces_instance == record.instance;
                    if !proven_dead && record.connected {
                        return Err(RegisterError::InUse {
                            agent: hello.agent_id.clone(),
                            instance: record.instance,
                            replica: record.replica,
                        });
                    }
                    if !proven_dead {
                        tracing::info!(agent = %hello.agent_id, old_instance = %record.instance,
                            new_instance = %hello.instance_id,
                            "another process of this agent id disconnected without proof that it is gone: waiting \
                             for its lease to expire before taking over");
                        wait_for_change(shared, &key, kv.mod_revision).await?;
                        continue;
                    }
                }
                if kv.lease != 0 && shared.store.keep_alive(kv.lease).await.unwrap_or(false) {
                    lease = Some(kv.lease);
                }
                Compare::ModRevision(key.clone(), kv.mod_revision)
            }
            None => Compare::Missing(key.clone()),
        };
        let lease = match lease {
            Some(l) => l,
            None => shared.store.grant_lease(shared.settings.lease_ttl).await?,
        };
        let record = AgentRecord {
            agent_id: hello.agent_id.clone(),
            host: hello.host.clone(),
            capacity: hello.capacity,
            worker_id: if hello.worker_id.is_empty() { hello.agent_id.clone() } else { hello.worker_id.clone() },
            version: hello.version.clone(),
            lease,
            replica: shared.replica_id.clone(),
            instance: hello.instance_id.clone(),
            connected: true,
        };
        let value = serde_json::to_vec(&record).unwrap_or_default();
        let outcome =
            shared.store.txn(vec![guard], vec![Op::Put { key: key.clone(), value, lease: Some(lease) }]).await?;
        if outcome.succeeded {
            return Ok((lease, outcome.revision));
        }
        // Someone registered this id in between: look again (it may be another instance, now connected).
    }
    Err(RegisterError::Contended(hello.agent_id.clone()))
}

/// Waits until `key` is gone (its lease expired) or was written again (the old process reconnected), at most a
/// little longer than a lease.
async fn wait_for_change(shared: &Shared, key: &str, mod_revision: i64) -> Result<(), RegisterError> {
    let until = tokio::time::Instant::now() + shared.settings.lease_ttl + Duration::from_secs(1);
    while tokio::time::Instant::now() < until {
        tokio::time::sleep(Duration::from_millis(200)).await;
        match shared.store.get(key).await? {
            Some(kv) if kv.mod_revision == mod_revision => {}
            _ => return Ok(()),
        }
    }
    Ok(())
}

struct Session {
    shared: Arc<Shared>,
    hello: Hello,
    lease: i64,
    /// The revision this session wrote `agents/<id>` at: if it changed, another session registered since.
    registered_at: i64,
    tx: mpsc::Sender<Result<ControlMessage, Status>>,
    /// The last snapshot sent (without offsets), to push only real changes.
    sent: Option<Vec<TaskAssignment>>,
    /// What `sent` was built from: the assignment key's revision and the view's `connectors_changed`. While both
    /// are the same, a new view cannot change the snapshot (new connectors are not in it), so it is not rebuilt.
    pushed_from: Option<(i64, u64)>,
    /// The cluster-scope log levels last sent; `None` until the first (the agent's baseline) went out.
    sent_levels: Option<Vec<ClusterLoggerLevel>>,
    /// The shared state last sent per connector the agent runs tasks of (see [`Session::push_shared`]).
    sent_shared: BTreeMap<String, Arc<BTreeMap<String, String>>>,
    /// Counts this stream in `sluice_control_plane_agent_sessions` while it lives.
    _counted: crate::metrics::SessionGuard,
}

fn task_state_name(state: i32) -> &'static str {
    match TaskState::try_from(state).unwrap_or(TaskState::Unspecified) {
        TaskState::Running => "RUNNING",
        TaskState::Paused => "PAUSED",
        TaskState::Failed => "FAILED",
        TaskState::Restarting => "RESTARTING",
        TaskState::Stopped => "STOPPED",
        TaskState::Unassigned | TaskState::Unspecified => "UNASSIGNED",
    }
}

impl Session {
    async fn run(mut self, mut inbound: Streaming<AgentMessage>) {
        let agent = self.hello.agent_id.clone();
        let mut mirror = self.shared.mirror.clone();
        mirror.mark_changed();
        let mut view = self.shared.view.clone();
        view.mark_changed();
        let shutdown = self.shared.shutdown.clone();
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = self.tx.closed() => break,
                changed = mirror.changed() => {
                    if changed.is_err() { break }
                    let snapshot = mirror.borrow_and_update().clone();
                    self.push_logger_levels(&snapshot).await;
                }
                changed = view.changed() => {
                    if changed.is_err() { break }
                    let state = view.borrow_and_update().clone();
                    // Before the assignment: a task starts with its connector's shared state already there.
                    self.push_shared(&state).await;
                    if let Err(e) = self.push_assignment(&state).await {
                        tracing::warn!(agent = %agent, error = %e, "cannot push assignment");
                        tokio::time::sleep(Duration::from_millis(200)).await;
                        view.mark_changed();
                    }
                }
                message = inbound.message() => {
                    match message {
                        Ok(Some(m)) => {
                            // Whatever else already arrived is handled with it: the statuses of an agent that
                            // just started its tasks are recorded in one transaction, not one per task.
                            let mut batch = vec![m];
                            let mut ended = false;
                            while batch.len() < MAX_BATCH {
                                match inbound.message().now_or_never() {
                                    Some(Ok(Some(m))) => batch.push(m),
                                    Some(Ok(None)) | Some(Err(_)) => {
                                        ended = true;
                                        break;
                                    }
                                    None => break,
                                }
                            }
                            if !self.handle_batch(batch).await {
                                return;
                            }
                            if ended {
                                break;
                            }
                        }
                        Ok(None) | Err(_) => break,
                    }
                }
            }
        }
        // The stream ended without Goodbye: keep the lease until it expires, so a quick reconnect (to any replica)
        // keeps the agent's tasks where they are. A dead agent's tasks move when the lease runs out.
        self.mark_disconnected().await;
        tracing::info!(agent = %agent, "agent stream closed");
    }

    /// Notes in `agents/<id>` that no stream of this instance is open any more, so that a new process with the same
    /// id (a restart after a crash) is accepted at once. Only if no other session registered since.
    async fn mark_disconnected(&self) {
        let key = self.shared.keys.agent(&self.hello.agent_id);
        let Ok(Some(kv)) = self.shared.store.get(&key).await else { return };
        if kv.mod_revision != self.registered_at {
            return;
        }
        let Ok(mut record) = serde_json::from_slice::<AgentRecord>(&kv.value) else { return };
        record.connected = false;
        let value = serde_json::to_vec(&record).unwrap_or_default();
        let guard = Compare::ModRevision(key.clone(), kv.mod_revision);
        if let Err(e) = self.shared.store.txn(vec![guard], vec![Op::Put { key, value, lease: Some(kv.lease) }]).await {
            tracing::debug!(agent = %self.hello.agent_id, error = %e, "cannot mark the agent disconnected");
        }
    }

    /// Handles messages in order; consecutive task statuses are recorded together. `false` ends the session.
    async fn handle_batch(&mut self, batch: Vec<AgentMessage>) -> bool {
        let mut statuses = Vec::new();
        for message in batch {
            if let Some(Up::TaskStatus(status)) = message.kind {
                statuses.push(status);
                if statuses.len() == MAX_STATUS_TXN {
                    self.record_statuses(std::mem::take(&mut statuses)).await;
                }
                continue;
            }
            if !statuses.is_empty() {
                self.record_statuses(std::mem::take(&mut statuses)).await;
            }
            if !self.handle(message).await {
                return false;
            }
        }
        if !statuses.is_empty() {
            self.record_statuses(statuses).await;
        }
        true
    }

    /// Handles one message; `false` ends the session.
    async fn handle(&mut self, message: AgentMessage) -> bool {
        let agent = self.hello.agent_id.clone();
        match message.kind {
            Some(Up::Heartbeat(hb)) => match self.shared.store.keep_alive(self.lease).await {
                Ok(true) => {
                    let ack = ControlMessage { kind: Some(Down::HeartbeatAck(HeartbeatAck { seq: hb.seq })) };
                    let _ = self.tx.send(Ok(ack)).await;
                }
                Ok(false) => {
                    // The lease expired: the agent has fenced itself by now and its tasks were moved. Register
                    // again; it gets a fresh assignment through the mirror.
                    tracing::warn!(agent = %agent, "agent lease had expired, registering again");
                    match register(&self.shared, &self.hello).await {
                        Ok((lease, revision)) => {
                            self.lease = lease;
                            self.registered_at = revision;
                        }
                        Err(e @ RegisterError::InUse { .. }) => {
                            // Another process took this id over meanwhile: this one is out.
                            tracing::warn!(agent = %agent, error = %e, "ending the session of a replaced agent");
                            let _ = self.tx.send(Err(e.status())).await;
                            return false;
                        }
                        Err(e) => tracing::warn!(agent = %agent, error = %e, "cannot register agent"),
                    }
                }
                Err(e) => tracing::warn!(agent = %agent, error = %e, "cannot renew agent lease"),
            },
            Some(Up::TaskStatus(status)) => self.record_statuses(vec![status]).await,
            Some(Up::OffsetCommit(commit)) => self.record_offsets(commit).await,
            Some(Up::TopicsUsed(used)) => self.record_topics(used).await,
            Some(Up::SharedStatePut(put)) => self.record_shared(put).await,
            Some(Up::Goodbye(bye)) => {
                tracing::info!(agent = %agent, reason = %bye.reason, "agent said goodbye");
                // Releasing the lease deletes agents/<id> at once, so the leader moves the tasks without waiting.
                let _ = self.shared.store.revoke_lease(self.lease).await;
                return false;
            }
            Some(Up::Hello(_)) => tracing::warn!(agent = %agent, "ignoring a second Hello"),
            None => {}
        }
        true
    }

    /// The agent's current assignment from the store, with the key's revision, for guarding a report.
    async fn current_assignment(&self) -> Result<Option<(AssignmentRecord, i64)>, StoreError> {
        let Some(kv) = self.shared.store.get(&self.shared.keys.assignment(&self.hello.agent_id)).await? else {
            return Ok(None);
        };
        let record = serde_json::from_slice(&kv.value)
            .map_err(|e| StoreError::Corrupt { key: kv.key.clone(), message: e.to_string() })?;
        Ok(Some((record, kv.mod_revision)))
    }

    /// Runs `ops` only if the task still has `epoch` in this agent's assignment (checked and written atomically).
    async fn guarded_write(&self, id: &TaskId, epoch: u64, ops: Vec<Op>) -> Result<bool, StoreError> {
        for _ in 0..3 {
            let Some((record, revision)) = self.current_assignment().await? else { return Ok(false) };
            let current =
                record.tasks.iter().any(|t| t.connector == id.connector && t.task == id.task && t.epoch == epoch);
            if !current {
                return Ok(false);
            }
            let compare = Compare::ModRevision(self.shared.keys.assignment(&self.hello.agent_id), revision);
            if self.shared.store.txn(vec![compare], ops.clone()).await?.succeeded {
                return Ok(true);
            }
        }
        Ok(false)
    }

    async fn reject(&self, id: TaskId, epoch: u64, reason: &str) {
        tracing::warn!(agent = %self.hello.agent_id, connector = %id.connector, task = id.task, epoch, reason, "rejected report");
        crate::metrics::global().report_rejected();
        let reject = Reject { id: Some(id), epoch, reason: reason.to_string() };
        let _ = self.tx.send(Ok(ControlMessage { kind: Some(Down::Reject(reject)) })).await;
    }

    /// Records task statuses, each only if the task still has the report's epoch in this agent's assignment. All
    /// that pass go into one transaction guarded by the assignment key's revision (checked against the replica's
    /// view first, the store itself when the view is behind); the others are rejected.
    async fn record_statuses(&self, statuses: Vec<TaskStatus>) {
        let agent = &self.hello.agent_id;
        let worker_id = if self.hello.worker_id.is_empty() { agent.clone() } else { self.hello.worker_id.clone() };
        // The latest report per task: one transaction may write a key only once.
        let mut latest: BTreeMap<(String, u32), TaskStatus> = BTreeMap::new();
        for status in statuses {
            let Some(id) = &status.id else { continue };
            latest.insert((id.connector.clone(), id.task), status);
        }
        let assignment_key = self.shared.keys.assignment(agent);
        for attempt in 0..3 {
            let current = if attempt == 0 {
                self.shared.view.borrow().assignments.get(agent).map(|(r, rev)| (r.clone(), *rev))
            } else {
                match self.current_assignment().await {
                    Ok(c) => c.map(|(r, rev)| (Arc::new(r), rev)),
                    Err(e) => {
                        tracing::warn!(error = %e, "cannot record task status");
                        return;
                    }
                }
            };
            let epochs: BTreeMap<(&str, u32), u64> = current
                .as_ref()
                .map(|(r, _)| r.tasks.iter().map(|t| ((t.connector.as_str(), t.task), t.epoch)).collect())
                .unwrap_or_default();
            let (valid, stale): (Vec<_>, Vec<_>) = latest
                .iter()
                .partition(|((connector, task), s)| epochs.get(&(connector.as_str(), *task)) == Some(&s.epoch));
            if attempt == 0 && !stale.is_empty() {
                // Only the store itself may call a report stale: the view can lag behind it.
                continue;
            }
            let records: Vec<(&TaskStatus, TaskStatusRecord)> = valid
                .iter()
                .map(|(_, status)| {
                    let record = TaskStatusRecord {
                        state: task_state_name(status.state).to_string(),
                        worker_id: worker_id.clone(),
                        trace: Some(status.trace.clone()).filter(|t| !t.is_empty()),
                        epoch: status.epoch,
                        agent_id: agent.clone(),
                    };
                    (*status, record)
                })
                .collect();
            let written = match (&current, records.is_empty()) {
                (_, true) => true,
                (None, false) => false,
                (Some((_, revision)), false) => {
                    let compare = Compare::ModRevision(assignment_key.clone(), *revision);
                    let ops = records
                        .iter()
                        .filter_map(|(status, record)| {
                            let id = status.id.as_ref()?;
                            let key = self.shared.keys.task_status(&id.connector, id.task);
                            Some(Op::put(key, serde_json::to_vec(record).unwrap_or_default()))
                        })
                        .collect();
                    match self.shared.store.txn(vec![compare], ops).await {
                        Ok(outcome) => outcome.succeeded,
                        Err(e) => {
                            tracing::warn!(error = %e, "cannot record task status");
                            return;
                        }
                    }
                }
            };
            if !written && attempt < 2 {
                continue;
            }
            let rejected: Vec<&TaskStatus> = if written {
                for (status, record) in &records {
                    if let Some(id) = &status.id {
                        tracing::info!(agent = %agent, connector = %id.connector, task = id.task, epoch = status.epoch, state = %record.state, "task status");
                    }
                }
                stale.iter().map(|(_, s)| *s).collect()
            } else {
                latest.values().collect()
            };
            for status in rejected {
                if let Some(id) = status.id.clone() {
                    self.reject(
                        id,
                        status.epoch,
                        "stale epoch: the task is no longer assigned to this agent with this epoch",
                    )
                    .await;
                }
            }
            return;
        }
    }

    async fn record_offsets(&self, commit: OffsetCommit) {
        let Some(id) = commit.id.clone() else { return };
        if commit.offsets.is_empty() {
            // The last report of a stopped source task: releases its handover, if it is being moved.
            if let Err(e) = self.release_handover(&id, commit.epoch, Vec::new()).await {
                tracing::warn!(error = %e, "cannot release a handover");
            }
            return;
        }
        let ops: Vec<Op> = commit
            .offsets
            .iter()
            .map(|o| {
                let key = self.shared.keys.offset(&id.connector, &o.partition_json);
                if o.offset_json.is_empty() {
                    Op::delete(key)
                } else {
                    Op::put(key, o.offset_json.clone().into_bytes())
                }
            })
            .collect();
        let written = match self.guarded_write(&id, commit.epoch, ops.clone()).await {
            Ok(false) => match self.release_handover(&id, commit.epoch, ops.clone()).await {
                Ok(false) => self.record_final_offsets(&id, ops).await,
                other => other,
            },
            other => other,
        };
        match written {
            Ok(true) => {
                tracing::debug!(connector = %id.connector, task = id.task, partitions = commit.offsets.len(), "offsets committed")
            }
            Ok(false) => {
                self.reject(id, commit.epoch, "stale epoch: offsets of a task that was moved are not committed").await
            }
            Err(e) => tracing::warn!(error = %e, "cannot commit offsets"),
        }
    }

    /// The final offsets of a source task the scheduler is moving away from this agent: taken (and the handover
    /// released, so the task is assigned again) while the handover record names this agent and epoch, in one
    /// transaction guarded by the record's revision. No other agent runs the task while the record exists.
    async fn release_handover(&self, id: &TaskId, epoch: u64, mut ops: Vec<Op>) -> Result<bool, StoreError> {
        let key = self.shared.keys.handover(&id.connector, id.task);
        let Some(kv) = self.shared.store.get(&key).await? else { return Ok(false) };
        let Ok(record) = serde_json::from_slice::<crate::model::HandoverRecord>(&kv.value) else { return Ok(false) };
        if record.agent_id != self.hello.agent_id || record.epoch != epoch {
            return Ok(false);
        }
        ops.push(Op::delete(key.clone()));
        let written = self.shared.store.txn(vec![Compare::ModRevision(key, kv.mod_revision)], ops).await?;
        if written.succeeded {
            tracing::info!(agent = %self.hello.agent_id, connector = %id.connector, task = id.task, epoch,
                "source task released by its old owner: final offsets committed");
        }
        Ok(written.succeeded)
    }

    /// The final offsets of a task that was stopped with its connector (`PUT /connectors/<name>/stop`): its agent
    /// drains what is in flight and reports what Kafka acknowledged after the assignment dropped the task. Taken
    /// while the connector is still STOPPED and no agent holds the task, checked against the target key's revision
    /// in the same transaction, so no incarnation started after a resume can be overwritten by them.
    async fn record_final_offsets(&self, id: &TaskId, ops: Vec<Op>) -> Result<bool, StoreError> {
        let assigned = self
            .shared
            .view
            .borrow()
            .assignments
            .values()
            .any(|(record, _)| record.tasks.iter().any(|t| t.connector == id.connector && t.task == id.task));
        if assigned {
            return Ok(false);
        }
        let target_key = self.shared.keys.target(&id.connector);
        let Some(target) = self.shared.store.get(&target_key).await? else { return Ok(false) };
        if serde_json::from_slice::<TargetState>(&target.value).ok() != Some(TargetState::Stopped) {
            return Ok(false);
        }
        let written = self.shared.store.txn(vec![Compare::ModRevision(target_key, target.mod_revision)], ops).await?;
        if written.succeeded {
            tracing::info!(agent = %self.hello.agent_id, connector = %id.connector, task = id.task,
                "final offsets of a stopped task committed");
        }
        Ok(written.succeeded)
    }

    /// Writes a value of a connector's shared state, only while the task has the put's epoch in this agent's
    /// assignment and the connector exists (both checked in the write's transaction): a zombie's write, or a late
    /// one after the connector was deleted (a new connector of the same name must start empty), is dropped.
    async fn record_shared(&self, put: SharedStatePut) {
        let Some(id) = put.id else { return };
        let agent = &self.hello.agent_id;
        let key = self.shared.keys.shared(&id.connector, &put.key);
        let op = if put.value_json.is_empty() {
            Op::delete(key)
        } else if put.value_json.len() > MAX_SHARED_VALUE
            || serde_json::from_str::<serde_json::Value>(&put.value_json).is_err()
        {
            tracing::warn!(agent = %agent, connector = %id.connector, task = id.task, key = %put.key,
                size = put.value_json.len(), "ignoring a shared-state value that is not JSON or too large");
            return;
        } else {
            Op::put(key, put.value_json.into_bytes())
        };
        for _ in 0..3 {
            let written: Result<Option<bool>, StoreError> = async {
                let Some((record, revision)) = self.current_assignment().await? else { return Ok(None) };
                let Some(assigned) = record
                    .tasks
                    .iter()
                    .find(|t| t.connector == id.connector && t.task == id.task && t.epoch == put.epoch)
                else {
                    return Ok(None);
                };
                // The task config this epoch runs with must still be the connector's: a connector deleted and
                // created again under the same name has new ones, even while the old epoch is still assigned.
                let keys = &self.shared.keys;
                let mut task_config = self.shared.store.get(&keys.task_configs(&id.connector)).await?;
                if task_config.is_none() {
                    task_config = self.shared.store.get(&keys.task(&id.connector, id.task)).await?;
                }
                let Some(task_config) = task_config.filter(|kv| kv.mod_revision == assigned.config_revision) else {
                    return Ok(None);
                };
                let compares = vec![
                    Compare::ModRevision(keys.assignment(agent), revision),
                    Compare::ModRevision(task_config.key, task_config.mod_revision),
                ];
                Ok(Some(self.shared.store.txn(compares, vec![op.clone()]).await?.succeeded))
            }
            .await;
            match written {
                Ok(Some(true)) => {
                    tracing::debug!(agent = %agent, connector = %id.connector, task = id.task, key = %put.key,
                        "shared state written");
                    return;
                }
                Ok(Some(false)) => continue,
                Ok(None) => break,
                Err(e) => {
                    tracing::warn!(error = %e, "cannot write shared state");
                    return;
                }
            }
        }
        tracing::info!(agent = %agent, connector = %id.connector, task = id.task, epoch = put.epoch, key = %put.key,
            "dropping a shared-state write of a task that is not current (stale epoch or deleted connector)");
    }

    /// Sends the agent the shared state of every connector it runs a task of, where it changed since last sent (all
    /// of them on a new session), and forgets connectors it no longer runs.
    async fn push_shared(&mut self, state: &ClusterState) {
        if state.revision == 0 {
            return;
        }
        let connectors: std::collections::BTreeSet<&String> = state
            .assignments
            .get(&self.hello.agent_id)
            .map(|(record, _)| record.tasks.iter().map(|t| &t.connector).collect())
            .unwrap_or_default();
        self.sent_shared.retain(|name, _| connectors.contains(name));
        for name in connectors {
            let current = state.shared.get(name).cloned().unwrap_or_default();
            if self.sent_shared.get(name).is_some_and(|sent| Arc::ptr_eq(sent, &current) || **sent == *current) {
                continue;
            }
            let message = SharedState {
                connector: name.clone(),
                values: current.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
            };
            let _ = self.tx.send(Ok(ControlMessage { kind: Some(Down::SharedState(message)) })).await;
            self.sent_shared.insert(name.clone(), current);
        }
    }

    /// Records the topics a source task produced to. Not fenced: a topic a zombie wrote to was used all the same.
    async fn record_topics(&self, used: TopicsUsed) {
        let Some(id) = used.id else { return };
        // Only for a connector this agent was given a task of (now or earlier in this session).
        let assigned_now = self
            .shared
            .view
            .borrow()
            .assignments
            .get(&self.hello.agent_id)
            .is_some_and(|(record, _)| record.tasks.iter().any(|t| t.connector == id.connector));
        let sent = self.sent.iter().flatten().any(|t| t.id.as_ref().is_some_and(|i| i.connector == id.connector));
        if !assigned_now && !sent {
            tracing::warn!(agent = %self.hello.agent_id, connector = %id.connector, "ignoring topics of a connector not assigned to this agent");
            return;
        }
        let ops: Vec<Op> = used
            .topics
            .iter()
            .map(|topic| Op::put(self.shared.keys.topic(&id.connector, topic), b"{}".to_vec()))
            .collect();
        if ops.is_empty() {
            return;
        }
        // Only while the connector exists: a late report must not resurrect the topics of a deleted connector.
        match self.shared.store.get(&self.shared.keys.config(&id.connector)).await {
            Ok(Some(config)) => {
                let guard = Compare::ModRevision(config.key.clone(), config.mod_revision);
                if let Err(e) = self.shared.store.txn(vec![guard], ops).await {
                    tracing::warn!(error = %e, "cannot record topics used");
                }
            }
            Ok(None) => {}
            Err(e) => tracing::warn!(error = %e, "cannot record topics used"),
        }
    }

    /// Sends the agent the cluster-scope log levels: once the mirror has listed the store (also when there are none:
    /// that is the agent's baseline), then whenever they change.
    async fn push_logger_levels(&mut self, snapshot: &Snapshot) {
        if snapshot.revision == 0 {
            return;
        }
        let levels: Vec<ClusterLoggerLevel> = crate::logging::cluster_levels(&self.shared.keys, snapshot)
            .into_iter()
            .map(|l| ClusterLoggerLevel { logger: l.logger, level: l.level, revision: l.revision })
            .collect();
        if self.sent_levels.as_ref() == Some(&levels) {
            return;
        }
        let message = LoggerLevels { levels: levels.clone() };
        let _ = self.tx.send(Ok(ControlMessage { kind: Some(Down::LoggerLevels(message)) })).await;
        self.sent_levels = Some(levels);
    }

    /// Sends the agent its assignment if it differs from the last one sent.
    async fn push_assignment(&mut self, state: &ClusterState) -> Result<(), StoreError> {
        if state.revision == 0 {
            return Ok(());
        }
        let keys = &self.shared.keys;
        let Some((record, revision)) = state.assignments.get(&self.hello.agent_id) else {
            self.pushed_from = None;
            if let Some(previous) = self.sent.take()
                && !previous.is_empty()
            {
                let revoked = previous.iter().filter_map(|t| t.id.clone()).collect();
                self.send(Assignment { revision: state.revision as u64, tasks: Vec::new(), revoked }).await;
            }
            self.sent = Some(Vec::new());
            return Ok(());
        };
        // Most views change nothing for this agent (with 1,000 agents, a new connector concerns one of them).
        let source = (*revision, state.connectors_changed);
        if self.pushed_from == Some(source) {
            return Ok(());
        }
        let mut tasks = Vec::new();
        for assigned in &record.tasks {
            let Some(connector) = state.connectors.get(&assigned.connector) else { continue };
            let Some((task_config, _)) = connector.tasks.get(&assigned.task) else { continue };
            let connector_type = connector
                .config
                .get("connector.class")
                .and_then(|c| registry::connector(c))
                .map(|c| c.connector_type().as_str())
                .unwrap_or("unknown");
            tasks.push(TaskAssignment {
                id: Some(TaskId { connector: assigned.connector.clone(), task: assigned.task }),
                epoch: assigned.epoch,
                connector_type: connector_type.to_string(),
                connector_config: connector.config.clone().into_iter().collect(),
                task_config: task_config.clone().into_iter().collect(),
                offsets: Vec::new(),
                target_state: match connector.target {
                    TargetState::Running => sluice_proto::agent::TargetState::Running as i32,
                    TargetState::Paused => sluice_proto::agent::TargetState::Paused as i32,
                    TargetState::Stopped => sluice_proto::agent::TargetState::Stopped as i32,
                },
                cluster: keys.cluster().to_string(),
                offsets_generation: String::new(),
            });
        }
        if self.sent.as_ref() == Some(&tasks) {
            self.pushed_from = Some(source);
            return Ok(());
        }
        let previous = self.sent.clone().unwrap_or_default();
        let previous_epochs: HashSet<(&str, u32, u64)> =
            previous.iter().filter_map(|p| p.id.as_ref().map(|id| (id.connector.as_str(), id.task, p.epoch))).collect();
        let mut message_tasks = tasks.clone();
        // Offsets matter only when a task (re)starts, i.e. for epochs the agent has not seen yet.
        let mut offsets_by_connector: BTreeMap<String, (Vec<SourceOffset>, String)> = BTreeMap::new();
        for t in message_tasks.iter_mut() {
            let Some(id) = &t.id else { continue };
            let is_new = !previous_epochs.contains(&(id.connector.as_str(), id.task, t.epoch));
            if !is_new || t.connector_type != "source" {
                continue;
            }
            if !offsets_by_connector.contains_key(&id.connector) {
                let prefix = keys.offsets_prefix(&id.connector);
                let (kvs, _) = self.shared.store.list(&prefix).await?;
                let offsets = kvs
                    .into_iter()
                    .filter_map(|kv| {
                        let partition = unescape(kv.key.strip_prefix(&prefix)?);
                        Some(SourceOffset { partition_json: partition, offset_json: String::from_utf8(kv.value).ok()? })
                    })
                    .collect();
                // Read after the offsets: a generation always comes with the offsets it was written with (a task of a
                // running connector reports offsets, but generations change only while it is STOPPED).
                let generation = self.shared.store.get(&keys.offsets_generation(&id.connector)).await?;
                let generation = generation.map(|kv| String::from_utf8_lossy(&kv.value).into_owned());
                offsets_by_connector.insert(id.connector.clone(), (offsets, generation.unwrap_or_default()));
            }
            if let Some((offsets, generation)) = offsets_by_connector.get(&id.connector) {
                t.offsets = offsets.clone();
                t.offsets_generation = generation.clone();
            }
        }
        let current: HashSet<(&str, u32)> =
            tasks.iter().filter_map(|t| t.id.as_ref().map(|id| (id.connector.as_str(), id.task))).collect();
        let revoked = previous
            .iter()
            .filter_map(|p| p.id.clone())
            .filter(|id| !current.contains(&(id.connector.as_str(), id.task)))
            .collect();
        self.send(Assignment { revision: *revision as u64, tasks: message_tasks, revoked }).await;
        tracing::info!(agent = %self.hello.agent_id, tasks = tasks.len(), revision, "assignment pushed");
        self.pushed_from = Some(source);
        self.sent = Some(tasks);
        Ok(())
    }

    async fn send(&self, assignment: Assignment) {
        let _ = self.tx.send(Ok(ControlMessage { kind: Some(Down::Assignment(assignment)) })).await;
    }
}
