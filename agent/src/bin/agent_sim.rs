//! `sluice-agent-sim`: many simulated agents in one process, to measure the control plane alone at scale (the
//! `scale` scenario of `deploy/bench/run`). Each simulated agent has its own gRPC connection and session and speaks
//! agent.proto the way `sluice-agent` does — Hello, heartbeats at the interval the Welcome asks for, and a
//! `TaskStatus` (RUNNING, or PAUSED when the target says so) for every task epoch it is assigned — but runs no
//! connector. The simulator also creates the connectors (admin gRPC `CreateConnector`, many in flight), waits until
//! every task runs, kills some agents the way `kill -9` would (connection dropped, no Goodbye) and waits until
//! their tasks run elsewhere. It prints one JSON object with the timings and the balance.
//!
//! "Runs" is checked two ways: the simulator's own view (every task is in the latest assignment of exactly one
//! live agent, which reported it RUNNING for that epoch and got no Reject), then the control plane's (admin
//! `ListConnectors` with `expand_status`: every task RUNNING on a live agent), which is what `GET
//! /connectors?expand=status` answers.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::Parser;
use serde_json::json;
use sluice_proto::admin::admin_service_client::AdminServiceClient;
use sluice_proto::admin::{CreateConnectorRequest, ListConnectorsRequest};
use sluice_proto::agent::agent_message::Kind as Up;
use sluice_proto::agent::agent_service_client::AgentServiceClient;
use sluice_proto::agent::control_message::Kind as Down;
use sluice_proto::agent::{AgentMessage, Heartbeat, Hello, TargetState, TaskId, TaskState, TaskStatus};
use tokio::sync::{Semaphore, mpsc};
use tokio::task::JoinHandle;
use tokio_stream::wrappers::ReceiverStream;
use tonic::transport::{Channel, Endpoint};

#[derive(Parser, Debug)]
#[command(name = "sluice-agent-sim", about = "Many simulated agents against one control plane: scale measurements")]
struct Options {
    /// gRPC URL of the control plane (agent streams and admin API).
    #[arg(long, default_value = "http://127.0.0.1:9083")]
    control_plane: String,
    /// Simulated agents, each with its own connection and session.
    #[arg(long, default_value_t = 1000)]
    agents: usize,
    /// Connectors to create (FileStreamSource, tasks.max=1, never started for real).
    #[arg(long, default_value_t = 10000)]
    connectors: usize,
    /// Agents to kill after convergence (0: skip the failover phase).
    #[arg(long, default_value_t = 100)]
    kill: usize,
    /// CreateConnector requests in flight at once.
    #[arg(long, default_value_t = 32)]
    create_concurrency: usize,
    /// Prefix of agent ids and connector names.
    #[arg(long, default_value = "sim")]
    prefix: String,
    /// Time limit of each phase, in seconds.
    #[arg(long, default_value_t = 300.0)]
    timeout_s: f64,
    /// Seconds to stay connected at the end (so the caller can sample the control plane's steady RSS).
    #[arg(long, default_value_t = 0.0)]
    linger_s: f64,
}

type TaskKey = (String, u32);

/// What one simulated agent knows: its latest assignment and what it reported.
#[derive(Default)]
struct AgentView {
    /// Task → (epoch of the latest assignment, reported RUNNING for that epoch and not rejected).
    tasks: HashMap<TaskKey, (u64, bool)>,
    welcomed: bool,
}

struct Counters {
    welcomed: AtomicUsize,
    rejects: AtomicU64,
    assignments: AtomicU64,
    statuses: AtomicU64,
    session_errors: AtomicU64,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let options = Options::parse();
    if options.kill >= options.agents && options.kill > 0 {
        bail!("--kill must be smaller than --agents");
    }
    let timeout = Duration::from_secs_f64(options.timeout_s);
    let endpoint = Endpoint::from_shared(options.control_plane.clone())?
        .connect_timeout(Duration::from_secs(5))
        .tcp_nodelay(true)
        .http2_keep_alive_interval(Duration::from_secs(5))
        .keep_alive_timeout(Duration::from_secs(5))
        .keep_alive_while_idle(true);
    let counters = Arc::new(Counters {
        welcomed: AtomicUsize::new(0),
        rejects: AtomicU64::new(0),
        assignments: AtomicU64::new(0),
        statuses: AtomicU64::new(0),
        session_errors: AtomicU64::new(0),
    });
    let start = Instant::now();
    let ids: Vec<String> = (0..options.agents).map(|i| format!("{}-agent-{i:05}", options.prefix)).collect();
    let views: Vec<Arc<Mutex<AgentView>>> = ids.iter().map(|_| Arc::default()).collect();
    // Connections are opened a few dozen at a time, as a fleet of agents starting would.
    let connecting = Arc::new(Semaphore::new(50));
    let mut handles: Vec<Option<JoinHandle<()>>> = Vec::new();
    for (id, view) in ids.iter().zip(&views) {
        let (endpoint, id, view, counters, connecting) =
            (endpoint.clone(), id.clone(), view.clone(), counters.clone(), connecting.clone());
        handles.push(Some(tokio::spawn(run_agent(endpoint, id, view, counters, connecting))));
    }
    wait_for("every agent welcomed", timeout, || counters.welcomed.load(Ordering::Relaxed) >= options.agents).await?;
    let welcome_s = start.elapsed().as_secs_f64();
    eprintln!("sim: {} agents welcomed after {welcome_s:.2}s", options.agents);

    // Phase 1: create the connectors, wait until every task runs.
    let admin = AdminServiceClient::new(endpoint.connect().await.context("admin connection")?);
    let names: Vec<String> = (0..options.connectors).map(|i| format!("{}-conn-{i:05}", options.prefix)).collect();
    let t0 = Instant::now();
    create_all(&admin, &names, options.create_concurrency).await?;
    let created_s = t0.elapsed().as_secs_f64();
    eprintln!("sim: {} connectors created in {created_s:.2}s", names.len());
    let live: Vec<usize> = (0..options.agents).collect();
    let expected: HashSet<TaskKey> = names.iter().map(|n| (n.clone(), 0)).collect();
    wait_for("every task RUNNING (simulator's view)", timeout, || converged(&views, &live, &expected)).await?;
    let converged_s = t0.elapsed().as_secs_f64();
    eprintln!("sim: every task RUNNING (simulator's view) after {converged_s:.2}s");
    let live_ids: HashSet<&str> = live.iter().map(|&i| ids[i].as_str()).collect();
    let confirm = wait_confirmed(&admin, &live_ids, names.len(), timeout).await?;
    let confirmed_s = t0.elapsed().as_secs_f64();
    eprintln!(
        "sim: every task RUNNING (control plane's view) after {confirmed_s:.2}s (one expand=status listing: {:.2}s)",
        confirm.as_secs_f64()
    );
    let (balance_min, balance_max) = balance(&views, &live);
    let before: BTreeMap<TaskKey, usize> = placements(&views, &live);

    // Phase 2: kill agents like kill -9 (no Goodbye: the control plane waits for their lease to expire).
    let mut failover = serde_json::Value::Null;
    if let Some(step) = options.agents.checked_div(options.kill) {
        let victims: Vec<usize> = (0..options.kill).map(|i| i * step).collect();
        let victim_set: HashSet<usize> = victims.iter().copied().collect();
        let orphaned = before.values().filter(|a| victim_set.contains(a)).count();
        let t_kill = Instant::now();
        for &v in &victims {
            if let Some(h) = handles[v].take() {
                h.abort();
            }
        }
        let survivors: Vec<usize> = (0..options.agents).filter(|i| !victim_set.contains(i)).collect();
        wait_for("the killed agents' tasks RUNNING elsewhere (simulator's view)", timeout, || {
            converged(&views, &survivors, &expected)
        })
        .await?;
        let moved_s = t_kill.elapsed().as_secs_f64();
        eprintln!("sim: {orphaned} tasks of {} killed agents RUNNING elsewhere after {moved_s:.2}s", victims.len());
        let survivor_ids: HashSet<&str> = survivors.iter().map(|&i| ids[i].as_str()).collect();
        let confirm = wait_confirmed(&admin, &survivor_ids, names.len(), timeout).await?;
        let confirmed_s = t_kill.elapsed().as_secs_f64();
        let after = placements(&views, &survivors);
        // Stickiness: tasks that were on a survivor and moved anyway.
        let needless_moves =
            before.iter().filter(|(k, a)| !victim_set.contains(a) && after.get(*k) != Some(*a)).count();
        let (min, max) = balance(&views, &survivors);
        failover = json!({
            "killed_agents": victims.len(),
            "orphaned_tasks": orphaned,
            "running_elsewhere_s": moved_s,
            "confirmed_s": confirmed_s,
            "confirm_listing_s": confirm.as_secs_f64(),
            "tasks_moved_between_survivors": needless_moves,
            "balance_min": min,
            "balance_max": max,
        });
    }
    if options.linger_s > 0.0 {
        eprintln!("sim: lingering {:.1}s", options.linger_s);
        tokio::time::sleep(Duration::from_secs_f64(options.linger_s)).await;
    }
    let out = json!({
        "agents": options.agents,
        "connectors": options.connectors,
        "tasks": expected.len(),
        "welcome_s": welcome_s,
        "create_s": created_s,
        "create_rate_per_s": names.len() as f64 / created_s.max(1e-9),
        "converged_from_first_create_s": converged_s,
        "converged_after_last_create_s": converged_s - created_s,
        "confirmed_from_first_create_s": confirmed_s,
        "confirmed_after_last_create_s": confirmed_s - created_s,
        "confirm_listing_s": confirm.as_secs_f64(),
        "balance_min": balance_min,
        "balance_max": balance_max,
        "failover": failover,
        "rejects": counters.rejects.load(Ordering::Relaxed),
        "assignments_received": counters.assignments.load(Ordering::Relaxed),
        "statuses_sent": counters.statuses.load(Ordering::Relaxed),
        "session_errors": counters.session_errors.load(Ordering::Relaxed),
    });
    println!("{out}");
    for h in handles.into_iter().flatten() {
        h.abort();
    }
    Ok(())
}

async fn wait_for(what: &str, timeout: Duration, mut done: impl FnMut() -> bool) -> anyhow::Result<()> {
    let deadline = Instant::now() + timeout;
    while !done() {
        if Instant::now() >= deadline {
            bail!("timed out after {:.0}s waiting for {what}", timeout.as_secs_f64());
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    Ok(())
}

async fn create_all(admin: &AdminServiceClient<Channel>, names: &[String], concurrency: usize) -> anyhow::Result<()> {
    let next = Arc::new(AtomicUsize::new(0));
    let names: Arc<Vec<String>> = Arc::new(names.to_vec());
    let mut workers = Vec::new();
    for _ in 0..concurrency.max(1) {
        let (mut admin, next, names) = (admin.clone(), next.clone(), names.clone());
        workers.push(tokio::spawn(async move {
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(name) = names.get(i) else { return Ok::<(), anyhow::Error>(()) };
                let config = [
                    ("connector.class", "FileStreamSource".to_string()),
                    ("tasks.max", "1".to_string()),
                    ("file", format!("/nonexistent/sluice-agent-sim/{name}.txt")),
                    ("topic", name.clone()),
                ]
                .into_iter()
                .map(|(k, v)| (k.to_string(), v))
                .collect();
                let request = CreateConnectorRequest { name: name.clone(), config, initial_state: 0 };
                admin.create_connector(request).await.with_context(|| format!("creating connector {name}"))?;
            }
        }));
    }
    for w in workers {
        w.await??;
    }
    Ok(())
}

/// Every expected task is in the latest assignment of exactly one of `live`, reported RUNNING for that epoch.
fn converged(views: &[Arc<Mutex<AgentView>>], live: &[usize], expected: &HashSet<TaskKey>) -> bool {
    let mut seen = 0usize;
    for &i in live {
        let view = views[i].lock().unwrap_or_else(|e| e.into_inner());
        for (key, (_, running)) in &view.tasks {
            if !*running || !expected.contains(key) {
                return false;
            }
            seen += 1;
        }
    }
    // No task counted twice and none missing: `seen` entries, all distinct expected keys, across agents.
    seen == expected.len() && placements(views, live).len() == expected.len()
}

fn placements(views: &[Arc<Mutex<AgentView>>], live: &[usize]) -> BTreeMap<TaskKey, usize> {
    let mut out = BTreeMap::new();
    for &i in live {
        let view = views[i].lock().unwrap_or_else(|e| e.into_inner());
        for key in view.tasks.keys() {
            out.insert(key.clone(), i);
        }
    }
    out
}

fn balance(views: &[Arc<Mutex<AgentView>>], live: &[usize]) -> (usize, usize) {
    let counts: Vec<usize> =
        live.iter().map(|&i| views[i].lock().unwrap_or_else(|e| e.into_inner()).tasks.len()).collect();
    (counts.iter().copied().min().unwrap_or(0), counts.iter().copied().max().unwrap_or(0))
}

/// Polls the admin API until every connector's tasks are RUNNING on agents in `live`; returns how long the last
/// (successful) listing took.
async fn wait_confirmed(
    admin: &AdminServiceClient<Channel>,
    live: &HashSet<&str>,
    connectors: usize,
    timeout: Duration,
) -> anyhow::Result<Duration> {
    let deadline = Instant::now() + timeout;
    loop {
        let asked = Instant::now();
        let listing = admin
            .clone()
            .list_connectors(ListConnectorsRequest { expand_status: true, expand_info: false })
            .await
            .context("ListConnectors expand_status")?
            .into_inner();
        let took = asked.elapsed();
        let running = listing
            .expanded
            .iter()
            .filter_map(|e| e.status.as_ref())
            .filter(|s| {
                !s.tasks.is_empty()
                    && s.tasks.iter().all(|t| t.state == "RUNNING" && live.contains(t.worker_id.as_str()))
            })
            .count();
        if running == connectors {
            return Ok(took);
        }
        if Instant::now() >= deadline {
            bail!("timed out: the control plane shows {running} of {connectors} connectors with every task RUNNING");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// One simulated agent: connects (reconnecting after a lost stream, as `sluice-agent` does) until aborted.
async fn run_agent(
    endpoint: Endpoint,
    id: String,
    view: Arc<Mutex<AgentView>>,
    counters: Arc<Counters>,
    connecting: Arc<Semaphore>,
) {
    loop {
        let result = session(&endpoint, &id, &view, &counters, &connecting).await;
        counters.session_errors.fetch_add(1, Ordering::Relaxed);
        if let Err(e) = result {
            eprintln!("sim: agent {id}: session ended: {e:#}");
        }
        {
            let mut v = view.lock().unwrap_or_else(|e| e.into_inner());
            if v.welcomed {
                v.welcomed = false;
                counters.welcomed.fetch_sub(1, Ordering::Relaxed);
            }
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

async fn session(
    endpoint: &Endpoint,
    id: &str,
    view: &Mutex<AgentView>,
    counters: &Counters,
    connecting: &Semaphore,
) -> anyhow::Result<()> {
    let permit = connecting.acquire().await?;
    let channel = endpoint.connect().await.context("connect")?;
    let (outbox, inbox) = mpsc::channel::<AgentMessage>(1024);
    let hello = Hello {
        agent_id: id.to_string(),
        host: "sluice-agent-sim".into(),
        capacity: 0,
        version: env!("CARGO_PKG_VERSION").into(),
        worker_id: String::new(),
        ..Default::default()
    };
    outbox.try_send(AgentMessage { kind: Some(Up::Hello(hello)) })?;
    let mut inbound = AgentServiceClient::new(channel).session(ReceiverStream::new(inbox)).await?.into_inner();
    let welcome = match inbound.message().await? {
        Some(m) => match m.kind {
            Some(Down::Welcome(w)) => w,
            other => bail!("expected Welcome, got {other:?}"),
        },
        None => bail!("stream closed before Welcome"),
    };
    drop(permit);
    {
        let mut v = view.lock().unwrap_or_else(|e| e.into_inner());
        v.welcomed = true;
        v.tasks.clear();
    }
    counters.welcomed.fetch_add(1, Ordering::Relaxed);
    let interval = Duration::from_millis(welcome.heartbeat_interval_ms.max(50));
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut seq = 0u64;
    loop {
        tokio::select! {
            _ = ticker.tick() => {
                seq += 1;
                let running = view.lock().unwrap_or_else(|e| e.into_inner()).tasks.len() as u32;
                let hb = AgentMessage { kind: Some(Up::Heartbeat(Heartbeat { seq, running_tasks: running })) };
                outbox.send(hb).await?;
            }
            message = inbound.message() => {
                let Some(message) = message? else { bail!("the control plane closed the stream") };
                match message.kind {
                    Some(Down::Assignment(a)) => {
                        counters.assignments.fetch_add(1, Ordering::Relaxed);
                        let mut reports = Vec::new();
                        {
                            let mut v = view.lock().unwrap_or_else(|e| e.into_inner());
                            let mut next = HashMap::with_capacity(a.tasks.len());
                            for t in &a.tasks {
                                let Some(tid) = &t.id else { continue };
                                let key = (tid.connector.clone(), tid.task);
                                let reported = v.tasks.get(&key).is_some_and(|&(e, r)| e == t.epoch && r);
                                if !reported {
                                    let state = if t.target_state == TargetState::Paused as i32 {
                                        TaskState::Paused
                                    } else {
                                        TaskState::Running
                                    };
                                    reports.push((tid.clone(), t.epoch, state));
                                }
                                next.insert(key, (t.epoch, true));
                            }
                            v.tasks = next;
                        }
                        for (tid, epoch, state) in reports {
                            counters.statuses.fetch_add(1, Ordering::Relaxed);
                            let status = TaskStatus { id: Some(tid), epoch, state: state as i32, trace: String::new() };
                            outbox.send(AgentMessage { kind: Some(Up::TaskStatus(status)) }).await?;
                        }
                    }
                    Some(Down::Reject(r)) => {
                        counters.rejects.fetch_add(1, Ordering::Relaxed);
                        if let Some(TaskId { connector, task }) = r.id {
                            let mut v = view.lock().unwrap_or_else(|e| e.into_inner());
                            if let Some(entry) = v.tasks.get_mut(&(connector, task))
                                && entry.0 == r.epoch
                            {
                                entry.1 = false;
                            }
                        }
                    }
                    Some(Down::HeartbeatAck(_)) | Some(Down::Welcome(_)) | Some(Down::LoggerLevels(_))
                    | Some(Down::SharedState(_))
                    | None => {}
                }
            }
        }
    }
}
