//! Leader election and the scheduler's reconcile loop. Replicas campaign for the `leader` key (attached to a
//! lease); the winner keeps its lease alive and reconciles: on every change of agents, connectors, target states
//! or restart requests it computes [`crate::scheduler::assign`] and writes the changed assignments in one
//! transaction guarded by its leader key, so a deposed leader can never write. A plan too big for one etcd
//! transaction is written in several, each guarded the same way, every removal before any addition (see
//! [`WritePlan`]), so a task is never assigned with two epochs at once.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::api::TargetState;
use crate::model::{AssignedTask, AssignmentRecord, ClusterState, Keys};
use crate::scheduler::{self, AgentSlot, DesiredTask};
use crate::store::{Compare, KvStore, Op, StoreError};

/// Settings of the election.
#[derive(Debug, Clone)]
pub struct LeaderSettings {
    /// TTL of the leader's lease: how long a dead leader blocks scheduling at most.
    pub lease_ttl: Duration,
}

/// Runs forever (until `shutdown`): campaign, lead while the lease lives, campaign again.
/// `is_leader` tells the rest of the replica (metrics, `/health`) whether it leads. `view` is the replica's parsed
/// mirror ([`crate::model::spawn_view`]).
pub async fn run(
    store: Arc<dyn KvStore>,
    keys: Keys,
    replica_id: String,
    mut view: watch::Receiver<Arc<ClusterState>>,
    settings: LeaderSettings,
    is_leader: watch::Sender<bool>,
    shutdown: CancellationToken,
) {
    let leader_key = keys.leader();
    loop {
        if shutdown.is_cancelled() {
            return;
        }
        // Campaign only when no leader is visible (or the visible one is us from a lease we lost).
        let lease = match store.grant_lease(settings.lease_ttl).await {
            Ok(l) => l,
            Err(e) => {
                tracing::warn!(error = %e, "cannot grant leader lease, retrying");
                sleep_or_shutdown(Duration::from_millis(500), &shutdown).await;
                continue;
            }
        };
        let won = store
            .txn(
                vec![Compare::Missing(leader_key.clone())],
                vec![Op::Put { key: leader_key.clone(), value: replica_id.clone().into_bytes(), lease: Some(lease) }],
            )
            .await;
        match won {
            Ok(outcome) if outcome.succeeded => {
                tracing::info!(replica = %replica_id, lease, "became leader");
                is_leader.send_replace(true);
                let term = shutdown.child_token();
                let keeper = tokio::spawn(keep_leadership(store.clone(), lease, settings.lease_ttl, term.clone()));
                reconcile_loop(&store, &keys, &replica_id, &mut view, &term).await;
                term.cancel();
                let _ = keeper.await;
                is_leader.send_replace(false);
                // Hand over quickly on shutdown; after a lost lease this is a no-op.
                let _ = store.revoke_lease(lease).await;
                tracing::info!(replica = %replica_id, "stepped down as leader");
            }
            Ok(_) => {
                let _ = store.revoke_lease(lease).await;
                // Someone else leads: wait until the leader key disappears from the mirror (or a periodic retry).
                let deadline = tokio::time::sleep(settings.lease_ttl);
                tokio::pin!(deadline);
                loop {
                    let leader_seen = view.borrow().leader.is_some();
                    if !leader_seen {
                        break;
                    }
                    tokio::select! {
                        _ = shutdown.cancelled() => return,
                        _ = &mut deadline => break,
                        changed = view.changed() => if changed.is_err() { return },
                    }
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "campaign failed, retrying");
                let _ = store.revoke_lease(lease).await;
                sleep_or_shutdown(Duration::from_millis(500), &shutdown).await;
            }
        }
    }
}

async fn sleep_or_shutdown(d: Duration, shutdown: &CancellationToken) {
    tokio::select! {
        _ = shutdown.cancelled() => {}
        _ = tokio::time::sleep(d) => {}
    }
}

/// Renews the leader lease every third of its TTL; ends the term (cancels `term`) when the lease is gone or could
/// not be renewed for longer than the TTL, i.e. when another replica may already lead.
async fn keep_leadership(store: Arc<dyn KvStore>, lease: i64, ttl: Duration, term: CancellationToken) {
    let mut last_renewed = Instant::now();
    loop {
        tokio::select! {
            _ = term.cancelled() => return,
            _ = tokio::time::sleep(ttl / 3) => {}
        }
        match store.keep_alive(lease).await {
            Ok(true) => last_renewed = Instant::now(),
            Ok(false) => {
                tracing::warn!(lease, "leader lease expired");
                term.cancel();
                return;
            }
            Err(e) => {
                tracing::warn!(error = %e, lease, "cannot renew leader lease");
                // Step down a little before the lease could expire, so two leaders never overlap.
                if last_renewed.elapsed() + ttl / 3 >= ttl {
                    term.cancel();
                    return;
                }
            }
        }
    }
}

/// After a change, how long to let more changes gather before reconciling: a burst (connectors created in a loop,
/// agents starting or dying together) then costs one scheduler pass and one transaction instead of hundreds.
const RECONCILE_COALESCE: Duration = Duration::from_millis(20);

async fn reconcile_loop(
    store: &Arc<dyn KvStore>,
    keys: &Keys,
    replica_id: &str,
    view: &mut watch::Receiver<Arc<ClusterState>>,
    term: &CancellationToken,
) {
    view.mark_changed();
    // Revision of our last successful write: a view older than it does not show that write yet, and planning on
    // it would only lose the transaction's compares.
    let mut written_at = 0i64;
    loop {
        tokio::select! {
            _ = term.cancelled() => return,
            changed = view.changed() => {
                if changed.is_err() { return }
                tokio::time::sleep(RECONCILE_COALESCE).await;
            }
            // A periodic pass repairs anything a lost watch event left behind.
            _ = tokio::time::sleep(Duration::from_secs(5)) => written_at = 0,
        }
        let state = view.borrow_and_update().clone();
        if state.revision == 0 || state.revision < written_at {
            continue;
        }
        // No check of the view's leader key here: it may lag behind our own campaign. The transaction's compare on
        // the leader key is what keeps a deposed leader from writing.
        let rebalance = crate::metrics::global().rebalance_started();
        let plan = plan_writes(keys, &state, now_ms());
        if plan.is_empty() {
            continue;
        }
        match write_plan(store.as_ref(), keys, replica_id, plan).await {
            Ok(Some(revision)) => {
                tracing::debug!(revision, "assignments written");
                written_at = revision;
                rebalance.completed();
            }
            Ok(None) => {
                // Our view was stale (or we lost the leader key); the mirror will bring the news.
                tracing::debug!("assignment write lost a race, will retry on the next change");
                tokio::time::sleep(Duration::from_millis(50)).await;
                view.mark_changed();
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot write assignments");
                tokio::time::sleep(Duration::from_millis(500)).await;
                view.mark_changed();
            }
        }
    }
}

/// How long a source task taken from a live agent waits for that agent's final offsets before it is assigned again
/// anyway (its agent drains in-flight records for at most `task.shutdown.graceful.timeout.ms`, 5 s by default).
pub const HANDOVER_TIMEOUT: Duration = Duration::from_secs(10);

/// Wall-clock milliseconds: handover records carry it, so a new leader knows how old a handover is.
fn now_ms() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
}

/// etcd refuses a transaction with more than `--max-txn-ops` (default 128) compares or operations.
const MAX_TXN_OPS: usize = 100;

/// One assignment write: `op` runs only while `key` is still at `expected` (`None`: absent).
#[derive(Debug, Clone, PartialEq)]
pub struct GuardedWrite {
    pub key: String,
    pub expected: Option<i64>,
    pub op: Op,
}

/// The writes that move the cluster from a state to the scheduler's plan. `removals` take tasks away (agents that
/// lose tasks, assignments of agents that are gone), `additions` hand tasks out; `cleanup` deletes consumed restart
/// requests. When everything fits in one transaction it is written at once; otherwise every removal is written
/// before any addition, so a task is never in two assignments with two epochs at once (the older epoch stays
/// fenced out while the newer one starts).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct WritePlan {
    /// Handover records of source tasks taken from live agents; written with (or before) the removals.
    pub handovers: Vec<Op>,
    pub removals: Vec<GuardedWrite>,
    pub additions: Vec<GuardedWrite>,
    pub cleanup: Vec<Op>,
}

impl WritePlan {
    pub fn is_empty(&self) -> bool {
        self.handovers.is_empty() && self.removals.is_empty() && self.additions.is_empty() && self.cleanup.is_empty()
    }

    /// The end state in one list: an agent's final write replaces its intermediate one (both expect the same
    /// revision, the one in the view).
    fn combined(&self) -> Vec<GuardedWrite> {
        let added: BTreeMap<&str, &GuardedWrite> = self.additions.iter().map(|a| (a.key.as_str(), a)).collect();
        let mut out: Vec<GuardedWrite> =
            self.removals.iter().filter(|w| !added.contains_key(w.key.as_str())).cloned().collect();
        out.extend(self.additions.iter().cloned());
        out
    }
}

/// Writes `plan`, each transaction guarded by our leader key and by the revision of every assignment key it
/// replaces. `Ok(Some(revision))` of the last transaction when all went through, `Ok(None)` when a compare failed
/// (a stale view, or we are not the leader any more): the next pass plans again from the newer view.
async fn write_plan(
    store: &dyn KvStore,
    keys: &Keys,
    replica_id: &str,
    plan: WritePlan,
) -> Result<Option<i64>, StoreError> {
    let leader = Compare::Value(keys.leader(), replica_id.as_bytes().to_vec());
    let guard = |w: &GuardedWrite| match w.expected {
        Some(rev) => Compare::ModRevision(w.key.clone(), rev),
        None => Compare::Missing(w.key.clone()),
    };
    let combined = plan.combined();
    if combined.len() + plan.cleanup.len() + plan.handovers.len() < MAX_TXN_OPS {
        let mut compares = vec![leader];
        compares.extend(combined.iter().map(guard));
        let mut ops: Vec<Op> = plan.handovers;
        ops.extend(combined.into_iter().map(|w| w.op));
        ops.extend(plan.cleanup);
        let outcome = store.txn(compares, ops).await?;
        return Ok(outcome.succeeded.then_some(outcome.revision));
    }
    // Too big for one transaction: removals first, then additions (guarded by the revisions the removals wrote),
    // then the cleanup.
    let mut written: BTreeMap<String, Option<i64>> = BTreeMap::new();
    let mut last = 0;
    // Handover records first: the old owner's final offsets are only taken while its record exists.
    for chunk in plan.handovers.chunks(MAX_TXN_OPS - 1) {
        let outcome = store.txn(vec![leader.clone()], chunk.to_vec()).await?;
        if !outcome.succeeded {
            return Ok(None);
        }
        last = outcome.revision;
    }
    for phase in [plan.removals, plan.additions] {
        for chunk in phase.chunks(MAX_TXN_OPS - 1) {
            let mut compares = vec![leader.clone()];
            let mut ops = Vec::new();
            for w in chunk {
                let expected = written.get(&w.key).copied().unwrap_or(w.expected);
                compares.push(guard(&GuardedWrite { expected, ..w.clone() }));
                ops.push(w.op.clone());
            }
            let outcome = store.txn(compares, ops).await?;
            if !outcome.succeeded {
                return Ok(None);
            }
            for w in chunk {
                let now = matches!(w.op, Op::Put { .. }).then_some(outcome.revision);
                written.insert(w.key.clone(), now);
            }
            last = outcome.revision;
        }
    }
    for chunk in plan.cleanup.chunks(MAX_TXN_OPS - 1) {
        let outcome = store.txn(vec![leader.clone()], chunk.to_vec()).await?;
        if !outcome.succeeded {
            return Ok(None);
        }
        last = outcome.revision;
    }
    Ok(Some(last))
}

/// What moves the cluster from `state` to the scheduler's plan. A source task the plan moves away from a live agent
/// is only revoked this time, with a handover record; it is assigned again once the record is gone (the old owner
/// committed its final offsets), its agent is gone, or `HANDOVER_TIMEOUT` passed (`now_ms`: wall clock).
pub fn plan_writes(keys: &Keys, state: &ClusterState, now_ms: u64) -> WritePlan {
    let mut writes = WritePlan::default();
    let mut handing_over: std::collections::BTreeSet<(&str, u32)> = std::collections::BTreeSet::new();
    for ((connector, task), record) in &state.handovers {
        let pending = state.agents.contains_key(&record.agent_id)
            && state.connectors.contains_key(connector)
            && now_ms < record.since_ms.saturating_add(HANDOVER_TIMEOUT.as_millis() as u64);
        if pending {
            handing_over.insert((connector.as_str(), *task));
        } else {
            writes.cleanup.push(Op::delete(keys.handover(connector, *task)));
        }
    }
    let agents: Vec<AgentSlot> =
        state.agents.values().map(|a| AgentSlot { id: a.agent_id.clone(), capacity: a.capacity }).collect();
    let desired: Vec<DesiredTask> = state
        .connectors
        .iter()
        .filter(|(_, c)| c.target != TargetState::Stopped)
        .flat_map(|(name, c)| {
            c.tasks.iter().map(move |(n, (_, rev))| DesiredTask {
                connector: name.clone(),
                task: *n,
                config_revision: *rev,
            })
        })
        .filter(|t| !handing_over.contains(&(t.connector.as_str(), t.task)))
        .collect();
    let current: BTreeMap<String, Vec<AssignedTask>> =
        state.assignments.iter().map(|(agent, (record, _))| (agent.clone(), record.tasks.clone())).collect();
    // Epochs only grow: every earlier epoch was written at a revision <= the snapshot's.
    let next_epoch = state.revision as u64 + 1;
    let mut plan = scheduler::assign(&current, &agents, &desired, &state.restarts, next_epoch);
    // Source tasks moving away from a live agent: revoke now, assign once released.
    let holders: BTreeMap<(&str, u32), (&str, u64)> = state
        .assignments
        .iter()
        .flat_map(|(agent, (record, _))| {
            record.tasks.iter().map(move |t| ((t.connector.as_str(), t.task), (agent.as_str(), t.epoch)))
        })
        .collect();
    for (agent, tasks) in plan.iter_mut() {
        tasks.retain(|t| {
            let Some((holder, epoch)) = holders.get(&(t.connector.as_str(), t.task)) else { return true };
            let is_source = state.connectors.get(&t.connector).is_some_and(|c| {
                c.config.get("connector.class").and_then(|class| sluice_connectors::registry::connector(class)).is_some_and(|p| p.connector_type() == sluice_connectors::ConnectorType::Source)
            });
            if *holder == agent.as_str() || !state.agents.contains_key(*holder) || !is_source {
                return true;
            }
            let record = crate::model::HandoverRecord { agent_id: holder.to_string(), epoch: *epoch, since_ms: now_ms };
            writes.handovers.push(Op::put(keys.handover(&t.connector, t.task), serde_json::to_vec(&record).unwrap_or_default()));
            tracing::info!(connector = %t.connector, task = t.task, from = %holder, to = %agent, "moving a source task: revoking it first");
            false
        });
    }

    let put = |agent: &str, tasks: &[AssignedTask]| {
        let record = AssignmentRecord { tasks: tasks.to_vec() };
        Op::put(keys.assignment(agent), serde_json::to_vec(&record).unwrap_or_default())
    };
    for (agent, tasks) in &plan {
        let old = state.assignments.get(agent);
        if old.is_some_and(|(r, _)| &r.tasks == tasks) {
            continue;
        }
        let key = keys.assignment(agent);
        let expected = old.map(|(_, rev)| *rev);
        let old_tasks: &[AssignedTask] = old.map(|(r, _)| r.tasks.as_slice()).unwrap_or_default();
        let kept: Vec<AssignedTask> = old_tasks.iter().filter(|t| tasks.contains(t)).cloned().collect();
        let removes = kept.len() < old_tasks.len();
        let adds = kept.len() < tasks.len();
        if removes && adds {
            writes.removals.push(GuardedWrite { key: key.clone(), expected, op: put(agent, &kept) });
            writes.additions.push(GuardedWrite { key, expected, op: put(agent, tasks) });
        } else if removes {
            writes.removals.push(GuardedWrite { key, expected, op: put(agent, tasks) });
        } else {
            writes.additions.push(GuardedWrite { key, expected, op: put(agent, tasks) });
        }
    }
    for (agent, (_, rev)) in &state.assignments {
        if !plan.contains_key(agent) {
            let key = keys.assignment(agent);
            writes.removals.push(GuardedWrite { op: Op::delete(key.clone()), key, expected: Some(*rev) });
        }
    }
    for (connector, task) in &state.restarts {
        writes.cleanup.push(Op::delete(keys.restart(connector, *task)));
    }
    if !writes.is_empty() {
        let moved: usize = plan.values().flatten().filter(|t| t.epoch == next_epoch).count();
        tracing::info!(agents = plan.len(), tasks = desired.len(), started = moved, "rebalancing");
    }
    writes
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use super::*;
    use crate::model::{AgentRecord, ConnectorEntry};
    use crate::store::{KeyValue, WatchReceiver};

    /// Records every transaction and lets it succeed.
    #[derive(Default)]
    struct Recorder {
        txns: Mutex<Vec<(Vec<Compare>, Vec<Op>)>>,
    }

    #[async_trait::async_trait]
    impl KvStore for Recorder {
        async fn get(&self, _: &str) -> Result<Option<KeyValue>, StoreError> {
            Ok(None)
        }
        async fn list(&self, _: &str) -> Result<(Vec<KeyValue>, i64), StoreError> {
            Ok((Vec::new(), 0))
        }
        async fn txn(&self, compares: Vec<Compare>, ops: Vec<Op>) -> Result<crate::store::TxnOutcome, StoreError> {
            let mut txns = self.txns.lock().unwrap_or_else(|e| e.into_inner());
            txns.push((compares, ops));
            Ok(crate::store::TxnOutcome { succeeded: true, revision: 100 + txns.len() as i64 })
        }
        async fn watch(&self, _: &str, _: i64) -> Result<WatchReceiver, StoreError> {
            Err(StoreError::Unavailable("no watch".into()))
        }
        async fn grant_lease(&self, _: Duration) -> Result<i64, StoreError> {
            Ok(1)
        }
        async fn keep_alive(&self, _: i64) -> Result<bool, StoreError> {
            Ok(true)
        }
        async fn revoke_lease(&self, _: i64) -> Result<(), StoreError> {
            Ok(())
        }
    }

    /// `connectors` one-task connectors placed round-robin on `placed_on`, with `live` agents alive.
    fn cluster(connectors: usize, placed_on: usize, live: usize) -> ClusterState {
        let mut state = ClusterState { revision: 50, ..Default::default() };
        for c in 0..connectors {
            let entry = ConnectorEntry {
                config: Default::default(),
                config_revision: 2,
                target: TargetState::Running,
                tasks: [(0, (Default::default(), 2))].into(),
            };
            state.connectors.insert(format!("c{c:04}"), Arc::new(entry));
        }
        for a in 0..placed_on {
            let tasks = (0..connectors)
                .filter(|c| c % placed_on == a)
                .map(|c| AssignedTask { connector: format!("c{c:04}"), task: 0, epoch: 3, config_revision: 2 })
                .collect();
            state.assignments.insert(format!("a{a:04}"), (Arc::new(AssignmentRecord { tasks }), 10 + a as i64));
        }
        for a in 0..live {
            let id = format!("a{a:04}");
            let record = AgentRecord {
                agent_id: id.clone(),
                host: String::new(),
                capacity: 0,
                worker_id: id.clone(),
                version: String::new(),
                lease: 1,
                replica: "r".into(),
                ..Default::default()
            };
            state.agents.insert(id, Arc::new(record));
        }
        state
    }

    /// Two single-task source connectors on a0000, and a0001 joins: one task moves, revoked first.
    #[test]
    fn a_source_moving_from_a_live_agent_is_revoked_first_and_assigned_once_released() {
        let keys = Keys::new("t");
        let mut state = cluster(2, 1, 2);
        for entry in state.connectors.values_mut() {
            let config = [("connector.class".to_string(), "FileStreamSource".to_string())].into();
            *entry = Arc::new(ConnectorEntry { config, ..(**entry).clone() });
        }
        let plan = plan_writes(&keys, &state, 1_000);
        assert_eq!(plan.handovers.len(), 1, "{plan:?}");
        let tasks_of = |w: &GuardedWrite| match &w.op {
            Op::Put { value, .. } => serde_json::from_slice::<AssignmentRecord>(value).expect("json").tasks,
            _ => Vec::new(),
        };
        assert!(plan.additions.iter().all(|w| tasks_of(w).is_empty()), "nothing goes to the new agent yet: {plan:?}");
        let moved = plan.removals.iter().find(|w| w.key == keys.assignment("a0000")).expect("a0000 loses a task");
        let Op::Put { value, .. } = &moved.op else { panic!("{moved:?}") };
        let kept: AssignmentRecord = serde_json::from_slice(value).expect("json");
        assert_eq!(kept.tasks.len(), 1);
        let gone = if kept.tasks[0].connector == "c0000" { "c0001" } else { "c0000" };

        // Written: the task is on no agent, the handover pending.
        let record = AssignmentRecord { tasks: kept.tasks.clone() };
        state.assignments.insert("a0000".into(), (Arc::new(record), 60));
        let handover = crate::model::HandoverRecord { agent_id: "a0000".into(), epoch: 3, since_ms: 1_000 };
        state.handovers.insert((gone.to_string(), 0), handover);
        state.assignments.insert("a0001".into(), (Arc::new(AssignmentRecord::default()), 61));
        let waiting = plan_writes(&keys, &state, 5_000);
        assert!(waiting.is_empty(), "not assigned while the old owner releases it: {waiting:?}");
        // Timed out (the old owner never answered): assigned, the record cleaned up.
        let late = plan_writes(&keys, &state, 1_000 + HANDOVER_TIMEOUT.as_millis() as u64);
        assert_eq!(late.additions.len(), 1, "{late:?}");
        assert_eq!(late.cleanup, vec![Op::delete(keys.handover(gone, 0))]);
        // Released: the record is gone, the task is assigned to the new agent.
        state.handovers.clear();
        let released = plan_writes(&keys, &state, 5_000);
        assert_eq!(released.additions.len(), 1);
        assert_eq!(released.additions[0].key, keys.assignment("a0001"));
        assert!(released.handovers.is_empty());
    }

    #[tokio::test]
    async fn small_change_is_one_transaction() {
        let keys = Keys::new("t");
        // a0002 died: its task moves; the survivors keep theirs.
        let plan = plan_writes(&keys, &cluster(3, 3, 2), 0);
        assert_eq!(plan.removals.len(), 1);
        assert!(matches!(plan.removals[0].op, Op::Delete { .. }));
        let store = Recorder::default();
        let written = write_plan(&store, &keys, "me", plan).await.expect("write");
        assert_eq!(written, Some(101));
        let txns = store.txns.into_inner().unwrap_or_default();
        assert_eq!(txns.len(), 1);
        assert_eq!(txns[0].0[0], Compare::Value(keys.leader(), b"me".to_vec()));
    }

    #[tokio::test]
    async fn big_change_writes_every_removal_before_any_addition() {
        let keys = Keys::new("t");
        // 300 agents, 30 of them dead, 2,000 tasks: far more writes than one etcd transaction takes.
        let plan = plan_writes(&keys, &cluster(2000, 300, 270), 0);
        assert_eq!(plan.removals.len(), 30);
        assert!(plan.additions.len() > MAX_TXN_OPS);
        let store = Recorder::default();
        assert!(write_plan(&store, &keys, "me", plan).await.expect("write").is_some());
        let txns = store.txns.into_inner().unwrap_or_default();
        assert!(txns.len() >= 3);
        let mut seen_addition = false;
        for (compares, ops) in &txns {
            assert!(compares.len() <= MAX_TXN_OPS && ops.len() <= MAX_TXN_OPS);
            assert_eq!(compares[0], Compare::Value(keys.leader(), b"me".to_vec()));
            for op in ops {
                match op {
                    Op::Delete { .. } => assert!(!seen_addition, "a removal after an addition"),
                    _ => seen_addition = true,
                }
            }
        }
        let placed: usize = txns
            .iter()
            .flat_map(|(_, ops)| ops)
            .filter_map(|op| match op {
                Op::Put { value, .. } => serde_json::from_slice::<AssignmentRecord>(value).ok(),
                _ => None,
            })
            .map(|r| r.tasks.len())
            .sum();
        // Survivors were written only when they gained tasks: the 200 orphans spread over them.
        assert!(placed >= 200);
    }
}
