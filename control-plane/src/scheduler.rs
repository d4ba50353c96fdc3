//! The scheduler as a pure function: given where tasks run now, the live agents and the tasks that should run,
//! compute the next placement. Balanced (task counts differ by at most one between agents with room), sticky (a
//! task stays where it is unless its agent has more than its share), spread (one connector's tasks go to
//! different agents when possible), deterministic, and every task placed at most once. No I/O: the reconcile loop
//! in [`crate::leader`] reads the store, calls [`assign`] and writes the result.

use std::collections::{BTreeMap, BTreeSet};

use crate::model::AssignedTask;

/// A live agent and how many tasks it accepts (0 = unlimited).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgentSlot {
    pub id: String,
    pub capacity: u32,
}

/// A task that should run, with the revision of its current config.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct DesiredTask {
    pub connector: String,
    pub task: u32,
    pub config_revision: i64,
}

/// Computes the next placement. Tasks that are new, moved, restarted or whose config changed get `next_epoch`;
/// tasks that stay keep their epoch. The result has an entry (maybe empty) for every agent in `agents`.
pub fn assign(
    current: &BTreeMap<String, Vec<AssignedTask>>,
    agents: &[AgentSlot],
    tasks: &[DesiredTask],
    restarts: &BTreeSet<(String, u32)>,
    next_epoch: u64,
) -> BTreeMap<String, Vec<AssignedTask>> {
    let mut plan: BTreeMap<String, Vec<AssignedTask>> = agents.iter().map(|a| (a.id.clone(), Vec::new())).collect();
    if agents.is_empty() {
        return plan;
    }
    let desired: BTreeMap<(&str, u32), &DesiredTask> =
        tasks.iter().map(|t| ((t.connector.as_str(), t.task), t)).collect();

    // 1. Keep what still holds: the task is wanted, its agent is alive, same config, no restart asked, not a
    //    duplicate.
    let mut placed: BTreeSet<(String, u32)> = BTreeSet::new();
    for (agent, assigned) in current {
        let Some(slot) = plan.get_mut(agent) else { continue };
        for t in assigned {
            let key = (t.connector.clone(), t.task);
            let keep =
                desired.get(&(t.connector.as_str(), t.task)).is_some_and(|d| d.config_revision == t.config_revision)
                    && !restarts.contains(&key)
                    && !placed.contains(&key);
            if keep {
                placed.insert(key);
                slot.push(t.clone());
            }
        }
    }

    // 2. Quotas: floor(T/N) each, one more for the first T mod N agents (those holding most, to move little),
    //    never above capacity.
    let total = desired.len();
    let mut order: Vec<&AgentSlot> = agents.iter().collect();
    order.sort_by(|a, b| plan[&b.id].len().cmp(&plan[&a.id].len()).then_with(|| a.id.cmp(&b.id)));
    let base = total / agents.len();
    let extra = total % agents.len();
    let mut quota: BTreeMap<&str, usize> = BTreeMap::new();
    for (i, agent) in order.iter().enumerate() {
        let mut q = base + usize::from(i < extra);
        if agent.capacity > 0 {
            q = q.min(agent.capacity as usize);
        }
        quota.insert(agent.id.as_str(), q);
    }

    // 3. Shed above quota: drop the tasks of the connector most represented on that agent first.
    let mut pool: Vec<DesiredTask> = Vec::new();
    for agent in agents {
        let q = quota[agent.id.as_str()];
        let Some(list) = plan.get_mut(&agent.id) else { continue };
        while list.len() > q {
            let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
            for t in list.iter() {
                *counts.entry(t.connector.as_str()).or_default() += 1;
            }
            let idx = (0..list.len())
                .max_by(|&a, &b| {
                    counts[list[a].connector.as_str()]
                        .cmp(&counts[list[b].connector.as_str()])
                        .then_with(|| (&list[b].connector, list[b].task).cmp(&(&list[a].connector, list[a].task)))
                })
                .unwrap_or(0);
            let t = list.remove(idx);
            placed.remove(&(t.connector.clone(), t.task));
            if let Some(d) = desired.get(&(t.connector.as_str(), t.task)) {
                pool.push((*d).clone());
            }
        }
    }
    let pooled: BTreeSet<(String, u32)> = pool.iter().map(|p| (p.connector.clone(), p.task)).collect();
    for d in desired.values() {
        let key = (d.connector.clone(), d.task);
        if !placed.contains(&key) && !pooled.contains(&key) {
            pool.push((*d).clone());
        }
    }
    pool.sort();

    // 4. Fill: each task goes to the agent below quota with the fewest tasks, then fewest of this connector, then
    //    the smallest id. What no quota can take (capacity limits) goes to any agent with room left.
    //    `below_quota` orders the candidates by (task count, id), so the fewest-tasks group is its first range and
    //    only agents that already hold this connector are skipped within it: O(log n) per task in the usual case.
    let mut below_quota: BTreeSet<(usize, &str)> =
        agents.iter().map(|a| (plan[&a.id].len(), a.id.as_str())).filter(|(len, id)| *len < quota[id]).collect();
    let names: BTreeSet<&str> = tasks.iter().map(|t| t.connector.as_str()).collect();
    let mut per_connector: BTreeMap<&str, BTreeMap<&str, usize>> = BTreeMap::new();
    for agent in agents {
        for t in plan.get(&agent.id).into_iter().flatten() {
            let Some(&connector) = names.get(t.connector.as_str()) else { continue };
            *per_connector.entry(connector).or_default().entry(agent.id.as_str()).or_default() += 1;
        }
    }
    for task in &pool {
        let holders = per_connector.entry(task.connector.as_str()).or_default();
        let held = |id: &str| holders.get(id).copied().unwrap_or(0);
        let mut pick: Option<(usize, usize, &str)> = None;
        if let Some(&(fewest, _)) = below_quota.first() {
            for &(len, id) in below_quota.range((fewest, "")..) {
                if len != fewest {
                    break;
                }
                let count = held(id);
                if pick.is_none_or(|(_, c, _)| count < c) {
                    pick = Some((len, count, id));
                }
                if count == 0 {
                    break;
                }
            }
        }
        let chosen: Option<&str> = match pick {
            Some((len, _, id)) => {
                below_quota.remove(&(len, id));
                if len + 1 < quota[id] {
                    below_quota.insert((len + 1, id));
                }
                Some(id)
            }
            None => agents
                .iter()
                .filter(|a| a.capacity == 0 || plan[&a.id].len() < a.capacity as usize)
                .min_by(|a, b| (plan[&a.id].len(), held(&a.id), &a.id).cmp(&(plan[&b.id].len(), held(&b.id), &b.id)))
                .map(|a| a.id.as_str()),
        };
        let Some(agent) = chosen else { continue };
        *holders.entry(agent).or_default() += 1;
        if let Some(list) = plan.get_mut(agent) {
            list.push(AssignedTask {
                connector: task.connector.clone(),
                task: task.task,
                epoch: next_epoch,
                config_revision: task.config_revision,
            });
        }
    }
    for list in plan.values_mut() {
        list.sort_by(|a, b| (&a.connector, a.task).cmp(&(&b.connector, b.task)));
    }
    plan
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn agents(n: usize) -> Vec<AgentSlot> {
        (0..n).map(|i| AgentSlot { id: format!("a{i}"), capacity: 0 }).collect()
    }

    fn tasks(connectors: &[u32]) -> Vec<DesiredTask> {
        connectors
            .iter()
            .enumerate()
            .flat_map(|(c, &n)| {
                (0..n).map(move |t| DesiredTask { connector: format!("c{c}"), task: t, config_revision: 1 })
            })
            .collect()
    }

    fn counts(plan: &BTreeMap<String, Vec<AssignedTask>>) -> Vec<usize> {
        plan.values().map(Vec::len).collect()
    }

    #[test]
    fn spreads_one_connector_over_agents() {
        let plan = assign(&BTreeMap::new(), &agents(3), &tasks(&[3]), &BTreeSet::new(), 7);
        assert_eq!(counts(&plan), vec![1, 1, 1]);
        assert!(plan.values().flatten().all(|t| t.epoch == 7));
    }

    #[test]
    fn dead_agent_tasks_move_and_others_stay() {
        let first = assign(&BTreeMap::new(), &agents(3), &tasks(&[2, 2, 2]), &BTreeSet::new(), 1);
        let survivors = vec![agents(3)[0].clone(), agents(3)[1].clone()];
        let second = assign(&first, &survivors, &tasks(&[2, 2, 2]), &BTreeSet::new(), 2);
        for agent in ["a0", "a1"] {
            for t in &first[agent] {
                assert!(second[agent].contains(t), "{t:?} moved although its agent lived");
            }
        }
        assert_eq!(counts(&second), vec![3, 3]);
    }

    #[test]
    fn restart_and_config_change_bump_epoch() {
        let first = assign(&BTreeMap::new(), &agents(1), &tasks(&[2]), &BTreeSet::new(), 1);
        let restarts: BTreeSet<_> = [("c0".to_string(), 1)].into();
        let second = assign(&first, &agents(1), &tasks(&[2]), &restarts, 5);
        let epochs: Vec<u64> = second["a0"].iter().map(|t| t.epoch).collect();
        assert_eq!(epochs, vec![1, 5]);
        let mut changed = tasks(&[2]);
        changed[0].config_revision = 9;
        let third = assign(&second, &agents(1), &changed, &BTreeSet::new(), 6);
        assert_eq!(third["a0"][0].epoch, 6);
        assert_eq!(third["a0"][1].epoch, 5);
    }

    #[test]
    fn capacity_is_respected() {
        let mut slots = agents(2);
        slots[0].capacity = 1;
        let plan = assign(&BTreeMap::new(), &slots, &tasks(&[4]), &BTreeSet::new(), 1);
        assert_eq!(plan["a0"].len(), 1);
        assert_eq!(plan["a1"].len(), 3);
    }

    proptest! {
        #[test]
        fn balanced_sticky_deterministic_and_complete(
            conn in proptest::collection::vec(0u32..6, 0..8),
            n_agents in 1usize..7,
            survivors in 1usize..7,
            seed_epoch in 1u64..100,
        ) {
            let all = agents(n_agents);
            let desired = tasks(&conn);
            let first = assign(&BTreeMap::new(), &all, &desired, &BTreeSet::new(), seed_epoch);
            let live: Vec<AgentSlot> = all.iter().take(survivors.min(n_agents)).cloned().collect();
            let second = assign(&first, &live, &desired, &BTreeSet::new(), seed_epoch + 1);
            // Deterministic.
            prop_assert_eq!(&second, &assign(&first, &live, &desired, &BTreeSet::new(), seed_epoch + 1));
            for plan in [&first, &second] {
                // Every task exactly once.
                let placed: Vec<(String, u32)> = plan.values().flatten().map(|t| (t.connector.clone(), t.task)).collect();
                let unique: BTreeSet<_> = placed.iter().cloned().collect();
                prop_assert_eq!(placed.len(), unique.len());
                prop_assert_eq!(unique.len(), desired.len());
                // Balanced.
                let c = counts(plan);
                prop_assert!(c.iter().max().unwrap_or(&0) - c.iter().min().unwrap_or(&0) <= 1);
            }
            // Sticky: a task on a surviving agent that was not over its share stays with its epoch.
            let share = desired.len().div_ceil(live.len());
            for a in &live {
                if first[&a.id].len() <= share.saturating_sub(1) {
                    for t in &first[&a.id] {
                        prop_assert!(second[&a.id].contains(t));
                    }
                }
            }
        }
    }
}
