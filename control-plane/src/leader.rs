//! Leader election and the scheduler's reconcile loop. Replicas campaign for the `leader` key (attached to a
//! lease); the winner keeps its lease alive and reconciles: on every change of agents, connectors, target states
//! or restart requests it computes [`crate::scheduler::assign`] and writes the changed assignments in one
//! transaction guarded by its leader key, so a deposed leader can never write.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::api::TargetState;
use crate::model::{AssignedTask, AssignmentRecord, ClusterState, Keys};
use crate::scheduler::{self, AgentSlot, DesiredTask};
use crate::store::mirror::Snapshot;
use crate::store::{Compare, KvStore, Op};

/// Settings of the election.
#[derive(Debug, Clone)]
pub struct LeaderSettings {
    /// TTL of the leader's lease: how long a dead leader blocks scheduling at most.
    pub lease_ttl: Duration,
}

/// Runs forever (until `shutdown`): campaign, lead while the lease lives, campaign again.
/// `is_leader` tells the rest of the replica (metrics, `/health`) whether it leads.
pub async fn run(
    store: Arc<dyn KvStore>,
    keys: Keys,
    replica_id: String,
    mut mirror: watch::Receiver<Arc<Snapshot>>,
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
                reconcile_loop(&store, &keys, &replica_id, &mut mirror, &term).await;
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
                    let leader_seen = ClusterState::from_snapshot(&keys, &mirror.borrow()).leader.is_some();
                    if !leader_seen {
                        break;
                    }
                    tokio::select! {
                        _ = shutdown.cancelled() => return,
                        _ = &mut deadline => break,
                        changed = mirror.changed() => if changed.is_err() { return },
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

async fn reconcile_loop(
    store: &Arc<dyn KvStore>,
    keys: &Keys,
    replica_id: &str,
    mirror: &mut watch::Receiver<Arc<Snapshot>>,
    term: &CancellationToken,
) {
    mirror.mark_changed();
    loop {
        tokio::select! {
            _ = term.cancelled() => return,
            changed = mirror.changed() => if changed.is_err() { return },
            // A periodic pass repairs anything a lost watch event left behind.
            _ = tokio::time::sleep(Duration::from_secs(5)) => {}
        }
        let snapshot = mirror.borrow_and_update().clone();
        if snapshot.revision == 0 {
            continue;
        }
        // No check of the mirror's leader key here: it may lag behind our own campaign. The transaction's
        // compare on the leader key is what keeps a deposed leader from writing.
        let state = ClusterState::from_snapshot(keys, &snapshot);
        let (compares, ops) = plan_writes(keys, replica_id, &state);
        if ops.is_empty() {
            continue;
        }
        match store.txn(compares, ops).await {
            Ok(outcome) if outcome.succeeded => {
                tracing::debug!(revision = outcome.revision, "assignments written");
                crate::metrics::global().rebalanced();
            }
            Ok(_) => {
                // Our view was stale (or we lost the leader key); the mirror will bring the news.
                tracing::debug!("assignment write lost a race, will retry on the next change");
                tokio::time::sleep(Duration::from_millis(50)).await;
                mirror.mark_changed();
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot write assignments");
                tokio::time::sleep(Duration::from_millis(500)).await;
                mirror.mark_changed();
            }
        }
    }
}

/// The transaction that moves the cluster from `state` to the scheduler's plan: guarded by our leader key and by
/// the revision of every assignment key it replaces.
pub fn plan_writes(keys: &Keys, replica_id: &str, state: &ClusterState) -> (Vec<Compare>, Vec<Op>) {
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
        .collect();
    let current: BTreeMap<String, Vec<AssignedTask>> =
        state.assignments.iter().map(|(agent, (record, _))| (agent.clone(), record.tasks.clone())).collect();
    // Epochs only grow: every earlier epoch was written at a revision <= the snapshot's.
    let next_epoch = state.revision as u64 + 1;
    let plan = scheduler::assign(&current, &agents, &desired, &state.restarts, next_epoch);

    let mut compares = vec![Compare::Value(keys.leader(), replica_id.as_bytes().to_vec())];
    let mut ops = Vec::new();
    for (agent, tasks) in &plan {
        let unchanged = state.assignments.get(agent).is_some_and(|(r, _)| &r.tasks == tasks);
        if unchanged {
            continue;
        }
        match state.assignments.get(agent) {
            Some((_, rev)) => compares.push(Compare::ModRevision(keys.assignment(agent), *rev)),
            None => compares.push(Compare::Missing(keys.assignment(agent))),
        }
        let record = AssignmentRecord { tasks: tasks.clone() };
        ops.push(Op::put(keys.assignment(agent), serde_json::to_vec(&record).unwrap_or_default()));
    }
    for (agent, (_, rev)) in &state.assignments {
        if !plan.contains_key(agent) {
            compares.push(Compare::ModRevision(keys.assignment(agent), *rev));
            ops.push(Op::delete(keys.assignment(agent)));
        }
    }
    for (connector, task) in &state.restarts {
        ops.push(Op::delete(keys.restart(connector, *task)));
    }
    if !ops.is_empty() {
        let moved: usize = plan.values().flatten().filter(|t| t.epoch == next_epoch).count();
        tracing::info!(agents = plan.len(), tasks = desired.len(), started = moved, "rebalancing");
    }
    (compares, ops)
}
