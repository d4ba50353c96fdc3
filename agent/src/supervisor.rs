//! The agent's task table: reconciles the control plane's assignment snapshots with the tasks actually running,
//! remembers each task's last reported state (re-sent after a reconnect) and coalesces source offsets until they
//! can go up the stream.
//!
//! The decision of what to do with a snapshot is the pure function [`plan`]; [`Supervisor::apply`] does the I/O.
//!
//! A task that fails is restarted here after a backoff (`task.restart.on.failure`, default true; delays 1 s, 2 s,
//! 4 s, ... up to `task.restart.backoff.max.ms`), reporting FAILED (with the trace), RESTARTING, then RUNNING —
//! but only while the assignment still holds the task with the same epoch: a new epoch or a revocation replaces
//! or removes the entry, and the pending restart finds nothing to restart. A fenced agent restarts nothing until
//! a session hands it an assignment again.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use rand::Rng;

use sluice_proto::agent::{
    Assignment, OffsetCommit, SharedState, SharedStatePut, SourceOffset, TargetState, TaskAssignment, TaskId,
    TaskState, TaskStatus, TopicsUsed,
};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tracing::{info, warn};

use crate::fence::LeaseFence;
use crate::metrics::Metrics;
use crate::runtime::{
    Control, Predecessor, Progress, StopMode, TaskEvent, TaskEventKind, TaskHandle, TaskKey, WorkerConfig,
    progress_offsets, shared::SharedStates, spawn_task,
};

/// What the table knows about one task, as far as planning is concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct CurrentTask {
    pub epoch: u64,
    pub paused: bool,
    /// Failed tasks stay stopped until an assignment with a new epoch arrives.
    pub failed: bool,
}

/// One step of reconciling a snapshot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Action {
    /// Start the task (replacing a previous incarnation, if any, once it has stopped).
    Start(TaskKey),
    Stop(TaskKey, StopMode),
    Pause(TaskKey),
    Resume(TaskKey),
}

pub(crate) fn task_key(id: &TaskId) -> TaskKey {
    TaskKey { connector: id.connector.clone(), task: id.task }
}

/// Decides how to move from `current` to the snapshot `desired`. Pure, so every rule is unit-tested:
/// - not running, or running with another epoch → start (a new epoch means "restart");
/// - same epoch → pause/resume to match the target state; a failed task is left alone;
/// - absent from the snapshot, listed in `revoked`, or targeted STOPPED → stop.
pub(crate) fn plan(current: &BTreeMap<TaskKey, CurrentTask>, desired: &[TaskAssignment]) -> Vec<Action> {
    let mut actions = Vec::new();
    let mut wanted = BTreeMap::new();
    for assignment in desired {
        let Some(id) = assignment.id.as_ref() else { continue };
        let key = task_key(id);
        let target = TargetState::try_from(assignment.target_state).unwrap_or(TargetState::Running);
        if target == TargetState::Stopped {
            continue;
        }
        let paused = target == TargetState::Paused;
        wanted.insert(key.clone(), ());
        match current.get(&key) {
            Some(now) if now.epoch == assignment.epoch => {
                if now.failed {
                    continue;
                }
                if paused && !now.paused {
                    actions.push(Action::Pause(key));
                } else if !paused && now.paused {
                    actions.push(Action::Resume(key));
                }
            }
            _ => actions.push(Action::Start(key)),
        }
    }
    for (key, now) in current {
        if !wanted.contains_key(key) {
            // A failed task has nothing left to stop, but it is forgotten all the same.
            let mode = if now.failed { StopMode::Revoked } else { stop_mode_for_removal(key, desired) };
            actions.push(Action::Stop(key.clone(), mode));
        }
    }
    actions
}

/// Target STOPPED is the user pausing the connector for good: the epoch is still valid, so offsets are committed.
/// Otherwise the task moved away, and its epoch is stale.
fn stop_mode_for_removal(key: &TaskKey, desired: &[TaskAssignment]) -> StopMode {
    let stopped_in_place = desired
        .iter()
        .any(|a| a.id.as_ref().is_some_and(|id| task_key(id) == *key) && a.target_state == TargetState::Stopped as i32);
    if stopped_in_place { StopMode::Graceful } else { StopMode::Revoked }
}

/// `task.restart.on.failure` and `task.restart.backoff.max.ms` of a connector.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct RestartPolicy {
    pub enabled: bool,
    pub backoff_max: Duration,
}

const FIRST_RESTART_DELAY: Duration = Duration::from_secs(1);
const DEFAULT_RESTART_BACKOFF_MAX: Duration = Duration::from_secs(60);
/// A task that ran this long before failing starts its backoff over.
const RESTART_RESET_AFTER: Duration = Duration::from_secs(60);

impl RestartPolicy {
    pub fn of(assignment: &TaskAssignment) -> RestartPolicy {
        let get = |key: &str| assignment.connector_config.get(key).map(|v| v.trim().to_ascii_lowercase());
        let enabled = get(sluice_connectors::registry::TASK_RESTART_ON_FAILURE).as_deref() != Some("false");
        let backoff_max = get(sluice_connectors::registry::TASK_RESTART_BACKOFF_MAX_MS)
            .and_then(|v| v.parse::<u64>().ok())
            .map_or(DEFAULT_RESTART_BACKOFF_MAX, Duration::from_millis);
        RestartPolicy { enabled, backoff_max }
    }

    /// The wait before restart number `attempt` (1-based): doubling from 1 s, capped, plus up to 20% jitter
    /// (never beyond the cap).
    pub fn delay(&self, attempt: u32) -> Duration {
        let doubled = FIRST_RESTART_DELAY.saturating_mul(1u32 << attempt.saturating_sub(1).min(16));
        let base = doubled.min(self.backoff_max);
        let jitter = rand::rng().random_range(Duration::ZERO..=base / 5);
        (base + jitter).min(self.backoff_max.max(base))
    }
}

/// Where a failed task stands on its way back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum RestartState {
    /// Running, or failed for good (restarts off).
    Idle,
    /// Failed; a timer will send `RestartDue`.
    Armed,
    /// The backoff is over but the agent was fenced: restart when the next assignment arrives.
    Due,
}

struct TaskEntry {
    epoch: u64,
    /// What the task was started with, to start it again after a failure (source offsets kept up to date).
    assignment: TaskAssignment,
    restart_policy: RestartPolicy,
    restart: RestartState,
    /// Restarts since the task last ran long enough (drives the backoff).
    restarts: u32,
    started_at: Instant,
    paused: bool,
    /// `None` once the task exited after failing.
    handle: Option<TaskHandle>,
    /// Last state the task reported, re-sent after a reconnect.
    last_state: Option<(TaskState, String)>,
    /// Asked to stop gracefully; the entry lives until the task exits so its final offsets are still accepted.
    stopping: bool,
    /// Per source partition, the offsets this incarnation started from or reported (the latest [`LINEAGE`]): if
    /// the store holds one of them when the task comes back after a fence, nobody else committed meanwhile.
    lineage: BTreeMap<String, VecDeque<String>>,
}

/// Offsets remembered per partition in [`TaskEntry::lineage`]: reports go out every `offset.flush.interval.ms`,
/// so this covers far more than the reports a lease's worth of outage can hold back.
const LINEAGE: usize = 64;

fn remember(lineage: &mut BTreeMap<String, VecDeque<String>>, offset: &SourceOffset) {
    let values = lineage.entry(offset.partition_json.clone()).or_default();
    if values.back() != Some(&offset.offset_json) {
        if values.len() == LINEAGE {
            values.pop_front();
        }
        values.push_back(offset.offset_json.clone());
    }
}

/// What a source task had reached when the agent fenced itself (see [`Supervisor::fenced_progress`]).
struct FencedProgress {
    epoch: u64,
    offsets: Vec<SourceOffset>,
    progress: Progress,
    assignment: TaskAssignment,
    lineage: BTreeMap<String, VecDeque<String>>,
}

impl FencedProgress {
    /// The task comes back under `assignment` and nobody else ran it meanwhile: same epoch, or a new epoch (the
    /// agent's lease expired in etcd, e.g. an outage of every control-plane replica, and it was assigned again)
    /// with the same configuration and offsets generation, and stored offsets that this incarnation started from
    /// or reported — no other incarnation committed since.
    fn resumable_by(&self, assignment: &TaskAssignment) -> bool {
        if self.epoch == assignment.epoch {
            return true;
        }
        let old = &self.assignment;
        old.connector_config == assignment.connector_config
            && old.task_config == assignment.task_config
            && old.offsets_generation == assignment.offsets_generation
            && old.cluster == assignment.cluster
            && assignment.offsets.iter().all(|stored| {
                self.lineage.get(&stored.partition_json).is_some_and(|values| values.contains(&stored.offset_json))
            })
    }
}

/// Owns every task this agent runs; survives reconnects.
pub(crate) struct Supervisor {
    worker: Arc<WorkerConfig>,
    metrics: Arc<Metrics>,
    events: mpsc::UnboundedSender<TaskEvent>,
    /// Every task started gets a ticket of it, checked before each of its effects.
    fence: Arc<LeaseFence>,
    tasks: BTreeMap<TaskKey, TaskEntry>,
    /// Revoked or fenced tasks still winding down (their reports are ignored; shutdown waits for them).
    retiring: Vec<JoinHandle<()>>,
    /// Offsets not yet sent, coalesced per task and partition, tagged with the epoch they belong to.
    pending_offsets: BTreeMap<TaskKey, (u64, BTreeMap<String, String>)>,
    /// False from a fence until the next assignment: a fenced agent must not bring tasks back to life.
    restarts_allowed: bool,
    /// Source offsets (all acknowledged by Kafka) each task had reached when the agent fenced itself. If the next
    /// assignment gives the task back with the same epoch, nobody else ran it meanwhile: it resumes from here and
    /// these offsets are committed, instead of re-reading everything since the last commit that landed (during an
    /// etcd outage, commits cannot land at all).
    /// The task's own [`Progress`] adds what Kafka acknowledged after the last report, up to the fence.
    fenced_progress: BTreeMap<TaskKey, FencedProgress>,
    /// Topics source tasks started producing to, not yet sent (`GET /connectors/{name}/topics`).
    pending_topics: Vec<TopicsUsed>,
    /// The last offset commit of source tasks that stopped while this agent held their lease, sent even when empty:
    /// it tells the control plane the task is released, so a task being moved to another agent starts there from
    /// these offsets at once.
    final_commits: Vec<OffsetCommit>,
    /// The shared state of the connectors this agent runs tasks of, as the control plane last pushed it.
    shared: SharedStates,
    /// Shared-state writes of tasks, latest per (task, key), with the epoch they were written under: `false` not sent
    /// on this session yet, `true` sent but not yet seen in a `SharedState` (sent again on the next session).
    shared_puts: BTreeMap<(TaskKey, String), (u64, String, bool)>,
}

impl Supervisor {
    pub fn new(
        worker: Arc<WorkerConfig>,
        metrics: Arc<Metrics>,
        events: mpsc::UnboundedSender<TaskEvent>,
        fence: Arc<LeaseFence>,
    ) -> Self {
        Supervisor {
            worker,
            metrics,
            events,
            fence,
            tasks: BTreeMap::new(),
            retiring: Vec::new(),
            pending_offsets: BTreeMap::new(),
            restarts_allowed: true,
            fenced_progress: BTreeMap::new(),
            pending_topics: Vec::new(),
            final_commits: Vec::new(),
            shared: SharedStates::default(),
            shared_puts: BTreeMap::new(),
        }
    }

    fn current(&self) -> BTreeMap<TaskKey, CurrentTask> {
        self.tasks
            .iter()
            .filter(|(_, e)| !e.stopping)
            .map(|(k, e)| (k.clone(), CurrentTask { epoch: e.epoch, paused: e.paused, failed: e.handle.is_none() }))
            .collect()
    }

    /// Reconciles the running tasks with a full snapshot.
    pub fn apply(&mut self, assignment: Assignment) {
        for revoked in &assignment.revoked {
            info!(connector = %revoked.connector, task = revoked.task, "task revoked");
        }
        self.restarts_allowed = true;
        let connectors: std::collections::BTreeSet<&str> =
            assignment.tasks.iter().filter_map(|a| a.id.as_ref().map(|id| id.connector.as_str())).collect();
        self.shared.retain(|name| connectors.contains(name));
        let actions = plan(&self.current(), &assignment.tasks);
        let by_key: BTreeMap<TaskKey, &TaskAssignment> =
            assignment.tasks.iter().filter_map(|a| a.id.as_ref().map(|id| (task_key(id), a))).collect();
        for action in actions {
            match action {
                Action::Start(key) => {
                    if let Some(task) = by_key.get(&key) {
                        self.start((*task).clone());
                    }
                }
                Action::Stop(key, mode) => self.stop(&key, mode),
                Action::Pause(key) | Action::Resume(key) => {
                    if let Some(entry) = self.tasks.get_mut(&key) {
                        let pause = !entry.paused;
                        entry.paused = pause;
                        if let Some(handle) = &entry.handle {
                            handle.send(if pause { Control::Pause } else { Control::Run });
                        }
                    }
                }
            }
        }
        // Progress kept from before a fence is only good for the assignment right after it.
        self.fenced_progress.clear();
        // Restarts that fell due while fenced, for tasks this assignment kept with the same epoch.
        let due: Vec<TaskKey> =
            self.tasks.iter().filter(|(_, e)| e.restart == RestartState::Due).map(|(k, _)| k.clone()).collect();
        for key in due {
            self.restart(&key);
        }
        self.update_gauge();
    }

    fn start(&mut self, mut assignment: TaskAssignment) {
        let Some(id) = assignment.id.as_ref() else { return };
        let key = task_key(id);
        let resumed = match self.fenced_progress.remove(&key) {
            Some(fenced) if fenced.resumable_by(&assignment) => {
                let FencedProgress { mut offsets, progress, .. } = fenced;
                let epoch = assignment.epoch;
                for reached in progress_offsets(&progress) {
                    offsets.retain(|o| o.partition_json != reached.partition_json);
                    offsets.push(reached);
                }
                if offsets.is_empty() {
                    None
                } else {
                    for offset in &offsets {
                        assignment.offsets.retain(|o| o.partition_json != offset.partition_json);
                        assignment.offsets.push(offset.clone());
                    }
                    Some((epoch, offsets))
                }
            }
            _ => None,
        };
        let paused = assignment.target_state == TargetState::Paused as i32;
        // A previous incarnation (old epoch, or stopping) must be gone before the new one starts.
        let predecessor = self.tasks.remove(&key).and_then(|old| {
            old.handle.map(|handle| {
                if !old.stopping {
                    handle.send(Control::Stop(StopMode::Revoked));
                }
                Predecessor { join: handle.join, progress: handle.progress }
            })
        });
        self.pending_offsets.remove(&key);
        if let Some((epoch, offsets)) = resumed {
            info!(connector = %key.connector, task = key.task, epoch, partitions = offsets.len(), "resuming from the offsets reached before the fence");
            let pending = offsets.into_iter().map(|o| (o.partition_json, o.offset_json)).collect();
            self.pending_offsets.insert(key.clone(), (epoch, pending));
        }
        info!(connector = %key.connector, task = key.task, epoch = assignment.epoch, paused, "starting task");
        let epoch = assignment.epoch;
        let restart_policy = RestartPolicy::of(&assignment);
        let mut lineage = BTreeMap::new();
        for offset in &assignment.offsets {
            remember(&mut lineage, offset);
        }
        let handle = spawn_task(
            assignment.clone(),
            if paused { Control::Pause } else { Control::Run },
            self.worker.clone(),
            self.events.clone(),
            self.metrics.clone(),
            self.fence.ticket(),
            predecessor,
            &self.shared,
        );
        self.tasks.insert(
            key,
            TaskEntry {
                epoch,
                assignment,
                restart_policy,
                restart: RestartState::Idle,
                restarts: 0,
                started_at: Instant::now(),
                paused,
                handle: Some(handle),
                last_state: None,
                stopping: false,
                lineage,
            },
        );
    }

    /// A failed task exited: arm its restart timer if the connector wants automatic restarts.
    fn schedule_restart(&mut self, key: &TaskKey) {
        let Some(entry) = self.tasks.get_mut(key) else { return };
        if !entry.restart_policy.enabled {
            info!(connector = %key.connector, task = key.task, "task failed; automatic restart is off (task.restart.on.failure=false)");
            return;
        }
        if entry.started_at.elapsed() >= RESTART_RESET_AFTER {
            entry.restarts = 0;
        }
        let delay = entry.restart_policy.delay(entry.restarts + 1);
        entry.restart = RestartState::Armed;
        info!(connector = %key.connector, task = key.task, epoch = entry.epoch, attempt = entry.restarts + 1,
            delay_ms = delay.as_millis() as u64, "task failed; restarting it after a backoff");
        let events = self.events.clone();
        let due = TaskEvent { id: key.clone(), epoch: entry.epoch, kind: TaskEventKind::RestartDue };
        tokio::spawn(async move {
            tokio::time::sleep(delay).await;
            // The agent may be gone by now; then there is nothing to restart.
            let _ = events.send(due);
        });
    }

    /// Starts a failed task again with the same assignment (same epoch), saying RESTARTING first.
    fn restart(&mut self, key: &TaskKey) {
        let Some(entry) = self.tasks.get_mut(key) else { return };
        if entry.handle.is_some() || entry.stopping {
            entry.restart = RestartState::Idle;
            return;
        }
        entry.restart = RestartState::Idle;
        entry.restarts += 1;
        entry.started_at = Instant::now();
        info!(connector = %key.connector, task = key.task, epoch = entry.epoch, attempt = entry.restarts, "restarting failed task");
        self.metrics.task_state(key, TaskState::Restarting);
        // Through the task channel, so the status goes up the stream in order, before the new RUNNING.
        let _ = self.events.send(TaskEvent {
            id: key.clone(),
            epoch: entry.epoch,
            kind: TaskEventKind::State { state: TaskState::Restarting, trace: String::new() },
        });
        let control = if entry.paused { Control::Pause } else { Control::Run };
        let handle = spawn_task(
            entry.assignment.clone(),
            control,
            self.worker.clone(),
            self.events.clone(),
            self.metrics.clone(),
            self.fence.ticket(),
            None,
            &self.shared,
        );
        entry.handle = Some(handle);
        self.metrics.task_restarted();
    }

    fn stop(&mut self, key: &TaskKey, mode: StopMode) {
        let Some(mut entry) = self.tasks.remove(key) else { return };
        info!(connector = %key.connector, task = key.task, epoch = entry.epoch, ?mode, "stopping task");
        if let Some(handle) = entry.handle.take() {
            handle.send(Control::Stop(mode));
            // Revoked while this agent holds its lease: the task still reports the offsets it reached (the control
            // plane takes them while no other incarnation took over), so its entry lives until it exits.
            if mode != StopMode::Fenced {
                entry.handle = Some(handle);
                entry.stopping = true;
                self.tasks.insert(key.clone(), entry);
                return;
            }
            self.retiring.retain(|join| !join.is_finished());
            self.retiring.push(handle.join);
        } else if mode != StopMode::Fenced && entry.assignment.connector_type == "source" {
            // A failed source task has nothing left to drain: release it at once (a task being moved to another
            // agent would otherwise wait for the handover to time out).
            self.final_commits.push(OffsetCommit {
                id: Some(TaskId { connector: key.connector.clone(), task: key.task }),
                epoch: entry.epoch,
                offsets: Vec::new(),
            });
        }
        self.metrics.remove_task(key);
        // Offsets of a task that moved away would be rejected: the new owner re-reads the last committed ones.
        self.pending_offsets.remove(key);
    }

    /// The control plane refused a report about this task: it no longer belongs here with that epoch.
    pub fn reject(&mut self, id: &TaskId, epoch: u64, reason: &str) {
        let key = task_key(id);
        match self.tasks.get(&key) {
            Some(entry) if entry.epoch == epoch && entry.stopping => {
                warn!(connector = %key.connector, task = key.task, epoch, reason, "final report of a stopping task rejected")
            }
            Some(entry) if entry.epoch == epoch => {
                warn!(connector = %key.connector, task = key.task, epoch, reason, "report rejected, stopping task");
                self.stop(&key, StopMode::Revoked);
                self.update_gauge();
            }
            _ => {
                warn!(connector = %key.connector, task = key.task, epoch, reason, "report about an old epoch rejected")
            }
        }
    }

    /// Stops every task. Fenced: at once, nothing more is reported. Graceful: drain and commit first.
    pub fn stop_all(&mut self, mode: StopMode) {
        let keys: Vec<TaskKey> = self.tasks.keys().cloned().collect();
        if mode == StopMode::Fenced {
            self.fenced_progress = self
                .tasks
                .iter()
                .filter(|(_, e)| !e.stopping && e.assignment.connector_type == "source")
                .map(|(k, e)| {
                    let progress = e.handle.as_ref().map(|h| h.progress.clone()).unwrap_or_default();
                    let fenced = FencedProgress {
                        epoch: e.epoch,
                        offsets: e.assignment.offsets.clone(),
                        progress,
                        assignment: e.assignment.clone(),
                        lineage: e.lineage.clone(),
                    };
                    (k.clone(), fenced)
                })
                .collect();
        }
        for key in keys {
            let failed = self.tasks.get(&key).is_some_and(|e| e.handle.is_none());
            if failed && mode == StopMode::Fenced {
                // Keeps a failed task stopped across the reconnect unless its epoch changes.
                continue;
            }
            self.stop(&key, mode);
        }
        if mode == StopMode::Fenced {
            self.pending_offsets.clear();
            self.final_commits.clear();
            self.restarts_allowed = false;
        }
        self.update_gauge();
    }

    /// Records a task's report. Returns the status to send up the stream; stale reports (old epochs) are dropped.
    pub fn on_event(&mut self, event: TaskEvent) -> Option<TaskStatus> {
        let entry = self.tasks.get_mut(&event.id)?;
        if entry.epoch != event.epoch {
            return None;
        }
        match event.kind {
            TaskEventKind::State { state, trace } => {
                entry.last_state = Some((state, trace.clone()));
                Some(status(&event.id, event.epoch, state, trace))
            }
            TaskEventKind::Offsets(offsets) => {
                // A restart after a failure resumes from the latest offsets, not those of the assignment.
                for offset in &offsets {
                    entry.assignment.offsets.retain(|o| o.partition_json != offset.partition_json);
                    entry.assignment.offsets.push(offset.clone());
                    remember(&mut entry.lineage, offset);
                }
                let pending = self.pending_offsets.entry(event.id).or_insert_with(|| (event.epoch, BTreeMap::new()));
                if pending.0 != event.epoch {
                    *pending = (event.epoch, BTreeMap::new());
                }
                pending.1.extend(offsets.into_iter().map(|o| (o.partition_json, o.offset_json)));
                None
            }
            TaskEventKind::SharedPut { key, value_json } => {
                self.shared_puts.insert((event.id, key), (event.epoch, value_json, false));
                None
            }
            TaskEventKind::TopicUsed(topic) => {
                let id = TaskId { connector: event.id.connector.clone(), task: event.id.task };
                self.pending_topics.push(TopicsUsed { id: Some(id), epoch: event.epoch, topics: vec![topic] });
                None
            }
            TaskEventKind::Exited => {
                let mut failed = false;
                if entry.stopping {
                    let source = entry.assignment.connector_type == "source";
                    self.tasks.remove(&event.id);
                    if source {
                        let offsets = match self.pending_offsets.remove(&event.id) {
                            Some((epoch, offsets)) if epoch == event.epoch => offsets,
                            _ => BTreeMap::new(),
                        };
                        self.final_commits.push(OffsetCommit {
                            id: Some(TaskId { connector: event.id.connector.clone(), task: event.id.task }),
                            epoch: event.epoch,
                            offsets: offsets
                                .into_iter()
                                .map(|(partition_json, offset_json)| SourceOffset { partition_json, offset_json })
                                .collect(),
                        });
                    }
                } else {
                    // Exited without being asked: it failed. Restarted after a backoff (same epoch), or kept
                    // stopped until a new epoch when restarts are off.
                    entry.handle = None;
                    failed = matches!(entry.last_state, Some((TaskState::Failed, _)));
                    if failed {
                        self.schedule_restart(&event.id);
                    }
                }
                // A failed task still belongs here: its series stay (status `failed`) until it restarts or leaves.
                if !failed {
                    self.metrics.remove_task(&event.id);
                }
                self.update_gauge();
                None
            }
            TaskEventKind::RestartDue => {
                if entry.restart != RestartState::Armed {
                    return None;
                }
                if self.restarts_allowed {
                    self.restart(&event.id);
                    self.update_gauge();
                } else {
                    entry.restart = RestartState::Due;
                }
                None
            }
        }
    }

    /// Offsets to send now, one commit per task.
    /// The topics reported since the previous call.
    pub fn take_topics_used(&mut self) -> Vec<TopicsUsed> {
        std::mem::take(&mut self.pending_topics)
    }

    pub fn take_offset_commits(&mut self) -> Vec<OffsetCommit> {
        let finals = std::mem::take(&mut self.final_commits);
        let mut commits: Vec<OffsetCommit> = std::mem::take(&mut self.pending_offsets)
            .into_iter()
            .filter(|(key, (epoch, _))| self.tasks.get(key).is_some_and(|e| e.epoch == *epoch))
            .map(|(key, (epoch, offsets))| OffsetCommit {
                id: Some(TaskId { connector: key.connector, task: key.task }),
                epoch,
                offsets: offsets
                    .into_iter()
                    .map(|(partition_json, offset_json)| SourceOffset { partition_json, offset_json })
                    .collect(),
            })
            .collect();
        commits.extend(finals);
        commits
    }

    /// The shared state of a connector, as the control plane pushed it. Writes it shows are done with.
    pub fn shared_state(&mut self, state: SharedState) {
        self.shared_puts.retain(|(id, key), (_, value, sent)| {
            let seen = id.connector == state.connector
                && match state.values.get(key) {
                    Some(current) => current == value,
                    None => value.is_empty(),
                };
            !(*sent && seen)
        });
        self.shared.update(&state.connector, state.values);
    }

    /// Shared-state writes to send now: those not sent on this session, of tasks still running with that epoch.
    pub fn take_shared_puts(&mut self) -> Vec<SharedStatePut> {
        let tasks = &self.tasks;
        self.shared_puts.retain(|(id, _), (epoch, _, _)| tasks.get(id).is_some_and(|e| e.epoch == *epoch));
        let mut out = Vec::new();
        for ((id, key), (epoch, value_json, sent)) in self.shared_puts.iter_mut() {
            if !*sent {
                *sent = true;
                out.push(SharedStatePut {
                    id: Some(TaskId { connector: id.connector.clone(), task: id.task }),
                    epoch: *epoch,
                    key: key.clone(),
                    value_json: value_json.clone(),
                });
            }
        }
        out
    }

    /// A new session: writes sent on the previous one may never have arrived, so they go again.
    pub fn resend_shared_puts(&mut self) {
        for (_, _, sent) in self.shared_puts.values_mut() {
            *sent = false;
        }
    }

    /// The current state of every task that reported one, for a new session.
    pub fn current_statuses(&self) -> Vec<TaskStatus> {
        self.tasks
            .iter()
            .filter(|(_, e)| !e.stopping)
            .filter_map(|(key, e)| {
                e.last_state.as_ref().map(|(state, trace)| status(key, e.epoch, *state, trace.clone()))
            })
            .collect()
    }

    /// Tasks that process data (not failed, not stopping).
    pub fn running_count(&self) -> usize {
        self.tasks.values().filter(|e| e.handle.is_some() && !e.stopping).count()
    }

    /// Whether any task could still touch data; only then does fencing have anything to stop.
    pub fn has_live_tasks(&self) -> bool {
        self.tasks.values().any(|e| e.handle.is_some())
    }

    /// No task left running or winding down.
    pub fn is_idle(&mut self) -> bool {
        self.retiring.retain(|join| !join.is_finished());
        self.retiring.is_empty() && !self.has_live_tasks()
    }

    /// Last resort at the end of a shutdown that overran its deadline.
    pub fn abort_all(&mut self) {
        for join in self.retiring.drain(..) {
            join.abort();
        }
        for (_, entry) in std::mem::take(&mut self.tasks) {
            if let Some(handle) = entry.handle {
                handle.join.abort();
            }
        }
        self.update_gauge();
    }

    fn update_gauge(&self) {
        self.metrics.set_running_tasks(self.running_count());
    }
}

fn status(key: &TaskKey, epoch: u64, state: TaskState, trace: String) -> TaskStatus {
    TaskStatus {
        id: Some(TaskId { connector: key.connector.clone(), task: key.task }),
        epoch,
        state: state as i32,
        trace,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(connector: &str, task: u32) -> TaskKey {
        TaskKey { connector: connector.into(), task }
    }

    fn offset(partition: &str, value: &str) -> SourceOffset {
        SourceOffset { partition_json: partition.into(), offset_json: value.into() }
    }

    #[test]
    fn fenced_progress_is_resumed_under_a_new_epoch_only_when_nobody_else_committed() {
        let mut old = assigned("c", 0, 5, TargetState::Running);
        old.offsets = vec![offset("p", "10")];
        let mut lineage = BTreeMap::new();
        for value in ["10", "20", "30"] {
            remember(&mut lineage, &offset("p", value));
        }
        let fenced = FencedProgress {
            epoch: 5,
            offsets: vec![offset("p", "30")],
            progress: Progress::default(),
            assignment: old.clone(),
            lineage,
        };
        let mut back = old.clone();
        back.epoch = 9;
        back.offsets = vec![offset("p", "20")];
        assert!(fenced.resumable_by(&back), "the store holds a report of this incarnation");
        back.offsets = vec![offset("p", "25")];
        assert!(!fenced.resumable_by(&back), "someone else committed meanwhile");
        back.offsets = vec![offset("p", "20")];
        back.task_config.insert("file".into(), "other".into());
        assert!(!fenced.resumable_by(&back), "the task's config changed");
        let mut same_epoch = old.clone();
        same_epoch.offsets = vec![offset("p", "25")];
        assert!(fenced.resumable_by(&same_epoch), "same epoch: nobody else ran it");
    }

    fn assigned(connector: &str, task: u32, epoch: u64, target: TargetState) -> TaskAssignment {
        TaskAssignment {
            id: Some(TaskId { connector: connector.into(), task }),
            epoch,
            connector_type: "source".into(),
            target_state: target as i32,
            ..Default::default()
        }
    }

    /// A task's shared-state writes go up once per session until a `SharedState` from the control plane shows
    /// them; a new session sends the unconfirmed ones again; a write of another incarnation is dropped; tasks see
    /// the values the control plane pushed.
    #[tokio::test]
    async fn shared_state_writes_go_up_until_the_control_plane_shows_them() {
        let worker = Arc::new(WorkerConfig::from_properties(Default::default()).expect("valid"));
        let (events, _events) = mpsc::unbounded_channel();
        let mut supervisor =
            Supervisor::new(worker, Arc::new(Metrics::default()), events.clone(), Arc::new(LeaseFence::default()));
        let state = |values: &[(&str, &str)]| SharedState {
            connector: "c".into(),
            values: values.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
        };
        supervisor.shared_state(state(&[]));
        supervisor.apply(Assignment {
            revision: 1,
            tasks: vec![assigned("c", 0, 5, TargetState::Running)],
            revoked: vec![],
        });
        let handle = supervisor.shared.handle(&key("c", 0), 5, events);
        assert_eq!(handle.current().map(|v| v.len()), Some(0));
        let put = |epoch: u64, value: &str| TaskEvent {
            id: key("c", 0),
            epoch,
            kind: TaskEventKind::SharedPut { key: "k".into(), value_json: value.into() },
        };
        supervisor.on_event(put(5, "1"));
        supervisor.on_event(put(4, "2"));
        let sent = supervisor.take_shared_puts();
        assert_eq!(sent.len(), 1);
        assert_eq!((sent[0].epoch, sent[0].value_json.as_str()), (5, "1"));
        assert!(supervisor.take_shared_puts().is_empty(), "sent once per session");
        supervisor.resend_shared_puts();
        assert_eq!(supervisor.take_shared_puts().len(), 1, "again on a new session");
        supervisor.shared_state(state(&[("k", "1")]));
        assert_eq!(handle.get("k"), Some(serde_json::json!(1)));
        supervisor.resend_shared_puts();
        assert!(supervisor.take_shared_puts().is_empty(), "confirmed: not sent again");
        supervisor.stop_all(StopMode::Fenced);
    }

    fn running(epoch: u64) -> CurrentTask {
        CurrentTask { epoch, paused: false, failed: false }
    }

    #[test]
    fn starts_new_tasks_and_keeps_unchanged_ones() {
        let current = BTreeMap::from([(key("a", 0), running(5))]);
        let desired = [assigned("a", 0, 5, TargetState::Running), assigned("a", 1, 6, TargetState::Running)];
        assert_eq!(plan(&current, &desired), vec![Action::Start(key("a", 1))]);
    }

    #[test]
    fn a_new_epoch_restarts() {
        let current = BTreeMap::from([(key("a", 0), running(5))]);
        assert_eq!(plan(&current, &[assigned("a", 0, 7, TargetState::Running)]), vec![Action::Start(key("a", 0))]);
    }

    #[test]
    fn missing_tasks_are_revoked() {
        let current = BTreeMap::from([(key("a", 0), running(5)), (key("b", 0), running(3))]);
        assert_eq!(
            plan(&current, &[assigned("a", 0, 5, TargetState::Running)]),
            vec![Action::Stop(key("b", 0), StopMode::Revoked)]
        );
    }

    #[test]
    fn target_states_pause_resume_and_stop() {
        let current = BTreeMap::from([
            (key("a", 0), running(1)),
            (key("b", 0), CurrentTask { epoch: 2, paused: true, failed: false }),
            (key("c", 0), running(3)),
        ]);
        let desired = [
            assigned("a", 0, 1, TargetState::Paused),
            assigned("b", 0, 2, TargetState::Running),
            assigned("c", 0, 3, TargetState::Stopped),
        ];
        assert_eq!(
            plan(&current, &desired),
            vec![
                Action::Pause(key("a", 0)),
                Action::Resume(key("b", 0)),
                Action::Stop(key("c", 0), StopMode::Graceful),
            ]
        );
    }

    #[test]
    fn a_failed_task_stays_stopped_until_its_epoch_changes() {
        let current = BTreeMap::from([(key("a", 0), CurrentTask { epoch: 4, paused: false, failed: true })]);
        assert!(plan(&current, &[assigned("a", 0, 4, TargetState::Running)]).is_empty());
        assert_eq!(plan(&current, &[assigned("a", 0, 5, TargetState::Running)]), vec![Action::Start(key("a", 0))]);
        assert_eq!(plan(&current, &[]), vec![Action::Stop(key("a", 0), StopMode::Revoked)]);
    }

    #[test]
    fn a_paused_task_that_is_new_is_started() {
        assert_eq!(
            plan(&BTreeMap::new(), &[assigned("a", 0, 1, TargetState::Paused)]),
            vec![Action::Start(key("a", 0))]
        );
    }

    #[test]
    fn restart_policy_defaults_on_and_reads_the_keys() {
        let mut a = assigned("a", 0, 1, TargetState::Running);
        assert_eq!(RestartPolicy::of(&a), RestartPolicy { enabled: true, backoff_max: Duration::from_secs(60) });
        a.connector_config.insert("task.restart.on.failure".into(), " FALSE".into());
        a.connector_config.insert("task.restart.backoff.max.ms".into(), "5000".into());
        assert_eq!(RestartPolicy::of(&a), RestartPolicy { enabled: false, backoff_max: Duration::from_secs(5) });
    }

    #[test]
    fn restart_backoff_doubles_from_one_second_with_jitter_up_to_the_cap() {
        let policy = RestartPolicy { enabled: true, backoff_max: Duration::from_secs(5) };
        for (attempt, base) in [(1, 1000), (2, 2000), (3, 4000)] {
            let delay = policy.delay(attempt).as_millis() as u64;
            assert!((base..=(base * 6 / 5).min(5000)).contains(&delay), "attempt {attempt}: {delay}");
        }
        for attempt in [4, 10, 40] {
            assert_eq!(policy.delay(attempt), Duration::from_secs(5), "capped");
        }
    }

    #[test]
    fn assignments_without_id_are_ignored() {
        let desired = [TaskAssignment { id: None, epoch: 1, ..Default::default() }];
        assert!(plan(&BTreeMap::new(), &desired).is_empty());
    }
}
