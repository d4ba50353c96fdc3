//! Zombie agents: an agent that is paused (SIGSTOP) or cut off from the control plane (its own network namespace,
//! Kafka and the sink still reachable) for longer than its lease must not produce, write or commit a single record
//! once its tasks may run elsewhere. Pipeline: file source -> topic -> file sink on three agents.
//!
//! Each agent writes the sink file named by its own `SLUICE_TEST_SINK_FILE` (`file=${env:...}`) and tags what its
//! source task produces with a header naming it (InsertHeader with `${env:SLUICE_TEST_AGENT}`), so every line in a
//! sink file and every record in the topic says which agent wrote it. Counted after each round:
//! - sink lines the isolated agent (the victim) wrote after its task moved (SIGSTOP: after the pause began; cut:
//!   after the new owner was seen RUNNING);
//! - topic records the victim produced after the new owner's first record (the topic has one partition, so its
//!   order is the order of appends).
//!
//! The bar is zero for both. Duplicates (at-least-once re-reads after the move) are reported, not bounded here.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context, ensure};
use serde_json::{Value, json};
use sluice_integration_tests::kafka::{create_topic, read_records};
use sluice_integration_tests::*;

/// How long the victim stays paused or cut off: well past the 3 s lease of the harness's control plane.
const ISOLATION: Duration = Duration::from_secs(12);
/// After the victim is back: time to fence itself, reconnect and (if it were broken) write.
const SETTLE: Duration = Duration::from_secs(6);
const LINES: usize = 9000;
const BATCH: usize = 20;
const INTERVAL: Duration = Duration::from_millis(50);

#[derive(Clone, Copy, Debug, PartialEq)]
enum Victim {
    /// The agent running the sink task.
    SinkAgent,
    /// The agent running the source task.
    SourceAgent,
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Isolation {
    /// SIGSTOP, then SIGCONT: a paused process (GC-like stall, VM migration).
    Pause,
    /// The agent runs in its own network namespace; its link to the control plane is dropped (iptables DROP),
    /// Kafka and the sink file stay reachable.
    Partition,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn paused_sink_agent_writes_nothing_after_its_task_moved() {
    let env = TestEnv::new("zombie_paused_sink").await;
    env.finish(round(&env, Victim::SinkAgent, Isolation::Pause).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn paused_source_agent_produces_nothing_after_its_task_moved() {
    let env = TestEnv::new("zombie_paused_source").await;
    env.finish(round(&env, Victim::SourceAgent, Isolation::Pause).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn partitioned_source_agent_produces_nothing_after_its_task_moved() {
    let env = TestEnv::new("zombie_partitioned_source").await;
    env.finish(round(&env, Victim::SourceAgent, Isolation::Partition).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn partitioned_sink_agent_writes_nothing_after_its_task_moved() {
    let env = TestEnv::new("zombie_partitioned_sink").await;
    env.finish(round(&env, Victim::SinkAgent, Isolation::Partition).await);
}

fn sink_file(env: &TestEnv, agent: &str) -> PathBuf {
    env.path(&format!("sink-{agent}.txt"))
}

fn lines_of(env: &TestEnv, agent: &str) -> anyhow::Result<Vec<String>> {
    read_complete_lines(&sink_file(env, agent))
}

async fn round(env: &TestEnv, victim_role: Victim, isolation: Isolation) -> anyhow::Result<()> {
    let kafka = env.services.kafka.as_str();
    let cp = ControlPlane::start(env, &env.unique("zombie"), &env.services.etcd).await?;
    let ids: Vec<String> = ["a", "b", "c"].iter().map(|n| env.unique(&format!("agent-{n}"))).collect();
    let mut netns = None;
    let mut agents = Vec::new();
    let topic = env.unique("zombie");
    create_topic(kafka, &topic, 1).await?;
    let input = env.path("input.txt");
    append_lines(&input, &[])?;
    let source = env.unique("source");
    // The scheduler sheds the task of the alphabetically first connector when an agent holds more than its share:
    // name the victim's connector so that it sorts last and stays on the namespaced agent.
    let sink = env.unique(if victim_role == Victim::SinkAgent { "tsink" } else { "sink" });
    for (n, id) in ids.iter().enumerate() {
        let file = sink_file(env, id).display().to_string();
        let vars = [("SLUICE_TEST_SINK_FILE", file.as_str()), ("SLUICE_TEST_AGENT", id.as_str())];
        // `${env:...}` resolves only where the worker offers the env provider, limited to these variables.
        let worker = [
            ("config.providers", "env"),
            ("config.providers.env.class", "org.apache.kafka.common.config.provider.EnvVarConfigProvider"),
            ("config.providers.env.param.allowlist.pattern", "SLUICE_TEST_.*"),
        ];
        let agent = if isolation == Isolation::Partition && n == 0 {
            let ns = ns::Namespace::create(env, kafka, cp.grpc_port).await?;
            let endpoint = ns.control_plane_endpoint();
            let prefix = ns.exec_prefix();
            let agent = Agent::start_with_env(env, &[endpoint], id, kafka, &worker, &[], &vars, &prefix).await?;
            netns = Some(ns);
            agent
        } else {
            Agent::start_with_env(env, &[cp.grpc_endpoint()], id, kafka, &worker, &[], &vars, &[]).await?
        };
        agents.push(agent);
        // To be cut off, the namespaced agent gets the victim's task before the others exist (and keeps it: the
        // scheduler is sticky); the other task goes to another agent.
        let (first, second) = match victim_role {
            Victim::SourceAgent => (Role::Source, Role::Sink),
            Victim::SinkAgent => (Role::Sink, Role::Source),
        };
        if n == 0 && isolation == Isolation::Partition {
            create(env, &cp, first, &input, &topic, &source, &sink).await?;
        }
        if n == 2 {
            if isolation == Isolation::Pause {
                create(env, &cp, first, &input, &topic, &source, &sink).await?;
            }
            create(env, &cp, second, &input, &topic, &source, &sink).await?;
        }
    }

    let lines = numbered_lines("zombie", 0, LINES);
    let writer = LineWriter::start(&input, lines.clone(), BATCH, INTERVAL);
    writer.wait_written(300, Duration::from_secs(30)).await?;
    wait_until(Duration::from_secs(60), "the sink to receive lines", || async {
        let total: usize = ids.iter().map(|id| lines_of(env, id).map(|l| l.len()).unwrap_or(0)).sum();
        Ok((total >= 200).then_some(()))
    })
    .await?;

    let by_role = if victim_role == Victim::SourceAgent { &source } else { &sink };
    let victim_id = match isolation {
        Isolation::Partition => ids[0].clone(),
        Isolation::Pause => {
            let status = cp.rest.status(by_role).await?;
            task_worker(&status, 0).with_context(|| format!("no worker for {by_role}: {status}"))?
        }
    };
    let victim = ids.iter().position(|id| *id == victim_id).context("victim is no agent")?;
    let victim_tasks: Vec<&String> = {
        let mut held = Vec::new();
        for name in [&source, &sink] {
            if task_worker(&cp.rest.status(name).await?, 0).as_deref() == Some(victim_id.as_str()) {
                held.push(name);
            }
        }
        held
    };
    env.note(format!("victim {victim_id} ({victim_role:?}, {isolation:?}) holds {victim_tasks:?}"));
    ensure!(!victim_tasks.is_empty(), "the victim {victim_id} holds no task");

    let isolated_at = Instant::now();
    // Paused: lines already in the input file may have been polled and handed to the Kafka client before the
    // pause; the client's own threads may still send them after it (records in flight, see below).
    let mut in_file_at_pause = None;
    match isolation {
        Isolation::Pause => {
            agents[victim].process.signal("STOP")?;
            in_file_at_pause = Some(read_complete_lines(&input)?.len());
        }
        Isolation::Partition => netns.as_ref().context("no namespace")?.cut_control_plane()?,
    }
    // While paused nothing of the victim moves, so this is exact; while cut off it is re-read at the handover.
    let mut victim_lines_at_handover = lines_of(env, &victim_id)?.len();

    // Every task the victim held runs elsewhere.
    let moved =
        |s: &Value| task_state(s, 0).as_deref() == Some("RUNNING") && task_worker(s, 0).is_some_and(|w| w != victim_id);
    let mut new_owners = Vec::new();
    for name in &victim_tasks {
        let left = ISOLATION.saturating_sub(isolated_at.elapsed());
        let status = cp.rest.wait_for_status_matching(name, "RUNNING on another agent", left, moved).await?;
        if isolation == Isolation::Partition && new_owners.is_empty() {
            victim_lines_at_handover = lines_of(env, &victim_id)?.len();
        }
        let owner = task_worker(&status, 0).context("no worker")?;
        env.note(format!("{name} moved to {owner} {:?} after the isolation", isolated_at.elapsed()));
        new_owners.push(((*name).clone(), owner));
    }
    tokio::time::sleep(ISOLATION.saturating_sub(isolated_at.elapsed())).await;
    match isolation {
        Isolation::Pause => agents[victim].process.signal("CONT")?,
        Isolation::Partition => netns.as_ref().context("no namespace")?.restore_control_plane()?,
    }
    let restored_log_len = agents[victim].process.log_text().len();
    env.note(format!("victim back after {:?}", isolated_at.elapsed()));
    tokio::time::sleep(SETTLE).await;

    writer.finish().await?;
    let all_lines = || -> anyhow::Result<Vec<String>> {
        let mut all = Vec::new();
        for id in &ids {
            all.extend(lines_of(env, id)?);
        }
        Ok(all)
    };
    let report = wait_until(Duration::from_secs(90), "every line in the sink files", || async {
        let report = analyze(&lines, &all_lines()?);
        Ok(report.missing.is_empty().then_some(report))
    })
    .await?;

    for agent in agents.iter_mut() {
        agent.process.ensure_running()?;
    }
    let victim_log = agents[victim].process.log_text();
    let after_restore = &victim_log[restored_log_len.min(victim_log.len())..];
    ensure!(
        !after_restore.contains("starting task"),
        "inconclusive: the victim was given a task again after it came back, so its later writes are legitimate"
    );

    // The new owners never fail a task: a zombie's rejoining consumer that fences the new owner's (same static
    // group.instance.id) is answered by a rejoin in place, not FAILED and a restart.
    let (mut failed, mut rejoins) = (0, 0);
    for (n, agent) in agents.iter().enumerate() {
        if n != victim {
            let log = agent.process.log_text();
            failed += log.lines().filter(|l| l.contains("task failed")).count();
            rejoins += log.lines().filter(|l| l.contains("rejoining with a new consumer")).count();
        }
    }
    let victim_sink_after = lines_of(env, &victim_id)?.len().saturating_sub(victim_lines_at_handover);
    let records = read_records(kafka, &topic).await?;
    let source_owner = new_owners.iter().find(|(name, _)| *name == source).map(|(_, owner)| owner.clone());
    // Records the victim produced after the new owner's first one. Those of lines that were in the input file when
    // the victim was paused were polled and handed to the Kafka client before the pause, and sent by the client's
    // threads as soon as the process ran again: in flight at the pause, duplicates of what the new owner re-reads.
    // Any other is new work done after the fence: the bar is zero.
    let (mut victim_produced_after, mut in_flight_at_pause) = (0, 0);
    if let Some(owner) = &source_owner
        && let Some(first) = records.iter().position(|r| r.header("agent") == Some(owner.as_str()))
    {
        for record in records[first..].iter().filter(|r| r.header("agent") == Some(victim_id.as_str())) {
            let index = record.value.rsplit('-').next().and_then(|n| n.parse::<usize>().ok());
            match (index, in_file_at_pause) {
                (Some(index), Some(in_file)) if index < in_file => in_flight_at_pause += 1,
                _ => victim_produced_after += 1,
            }
        }
    }
    let topic_values: Vec<String> = records.iter().map(|r| r.value.clone()).collect();
    let topic_report = analyze(&lines, &topic_values);
    env.note(format!(
        "ZOMBIE ROUND ({victim_role:?}, {isolation:?}): victim wrote {victim_sink_after} sink lines after the handover, \
         produced {victim_produced_after} new records after the new owner's first (+{in_flight_at_pause} in flight \
         at the pause); duplicates: {} in the sink files, {} in the topic; new owners: {failed} task failures, \
         {rejoins} consumer rejoins",
        report.duplicates, topic_report.duplicates
    ));
    ensure!(failed == 0, "a task failed on an agent other than the victim ({failed} times)");
    // The sink files are read one agent after the other, not in the order they were written: no order check here.
    ensure!(report.missing.is_empty() && report.unexpected.is_empty(), "sink files: {report}");
    topic_report.check_complete_at_least_once("topic")?;
    ensure!(victim_sink_after == 0, "the isolated agent wrote {victim_sink_after} sink lines after its task moved");
    ensure!(
        victim_produced_after == 0,
        "the isolated agent produced {victim_produced_after} records after the new owner started"
    );
    Ok(())
}

#[derive(Clone, Copy)]
enum Role {
    Source,
    Sink,
}

/// Creates the source or the sink connector and waits until it runs.
async fn create(
    env: &TestEnv,
    cp: &ControlPlane,
    role: Role,
    input: &std::path::Path,
    topic: &str,
    source: &str,
    sink: &str,
) -> anyhow::Result<()> {
    let (name, config) = match role {
        Role::Source => {
            let mut config = file_source(input, topic);
            merge(
                &mut config,
                json!({
                    "transforms": "tag",
                    "transforms.tag.type": "org.apache.kafka.connect.transforms.InsertHeader",
                    "transforms.tag.header": "agent",
                    "transforms.tag.value.literal": "${env:SLUICE_TEST_AGENT}",
                }),
            );
            (source, config)
        }
        Role::Sink => {
            let mut config = file_sink(std::path::Path::new("/unused"), topic);
            merge(&mut config, json!({ "file": "${env:SLUICE_TEST_SINK_FILE}" }));
            (sink, config)
        }
    };
    cp.rest.create_connector(name, &config).await?;
    let status = cp.rest.wait_for_status(name, "RUNNING", Duration::from_secs(60)).await?;
    env.note(format!("{name}: {status}"));
    Ok(())
}

fn merge(config: &mut Value, extra: Value) {
    if let (Some(config), Value::Object(extra)) = (config.as_object_mut(), extra) {
        config.extend(extra);
    }
}

/// A network namespace with a veth link to the host, for one agent: Kafka and the control plane are reached
/// through TCP forwarders (Kafka advertises 127.0.0.1:9092, so inside the namespace 127.0.0.1:<port> forwards
/// to the host), and the link to the control plane can be cut with an iptables DROP inside the namespace.
mod ns {
    use std::process::Command;

    use anyhow::{Context, bail};
    use sluice_integration_tests::*;

    pub struct Namespace {
        name: String,
        host_veth: String,
        host_ip: String,
        cp_port: u16,
        /// Forwarders: one inside the namespace for Kafka, one on the host for each target.
        _forwarders: Vec<Process>,
    }

    fn run(args: &[&str]) -> anyhow::Result<()> {
        let out = Command::new(args[0]).args(&args[1..]).output().with_context(|| format!("cannot run {args:?}"))?;
        if !out.status.success() {
            bail!("{args:?} failed: {}", String::from_utf8_lossy(&out.stderr));
        }
        Ok(())
    }

    impl Namespace {
        pub async fn create(env: &TestEnv, kafka: &str, cp_grpc_port: u16) -> anyhow::Result<Namespace> {
            let tag: u16 = rand::random::<u16>() % 250 + 2;
            let tag2: u8 = rand::random::<u8>() % 250 + 2;
            let name = format!("sluicez{tag}x{tag2}");
            let host_veth = format!("szh{tag}x{tag2}");
            let ns_veth = format!("szn{tag}x{tag2}");
            let subnet = format!("10.{}.{}", 100 + tag2 % 100, tag % 250);
            let host_ip = format!("{subnet}.1");
            let ns_ip = format!("{subnet}.2");
            run(&["ip", "netns", "add", &name])?;
            let ns = Namespace {
                name: name.clone(),
                host_veth: host_veth.clone(),
                host_ip: host_ip.clone(),
                cp_port: 0,
                _forwarders: Vec::new(),
            };
            run(&["ip", "link", "add", &host_veth, "type", "veth", "peer", "name", &ns_veth])?;
            run(&["ip", "link", "set", &ns_veth, "netns", &name])?;
            run(&["ip", "addr", "add", &format!("{host_ip}/24"), "dev", &host_veth])?;
            run(&["ip", "link", "set", &host_veth, "up"])?;
            run(&["ip", "netns", "exec", &name, "ip", "addr", "add", &format!("{ns_ip}/24"), "dev", &ns_veth])?;
            run(&["ip", "netns", "exec", &name, "ip", "link", "set", &ns_veth, "up"])?;
            run(&["ip", "netns", "exec", &name, "ip", "link", "set", "lo", "up"])?;
            let mut ns = ns;
            // Host side: <host_ip>:<port> -> 127.0.0.1:<port> for Kafka and the control plane's gRPC port.
            let kafka_port = kafka.rsplit(':').next().context("kafka address without port")?.to_string();
            let forwarder = binary("sluice-test-forward")?;
            for port in [kafka_port.as_str(), &cp_grpc_port.to_string()] {
                let mut command = Command::new(&forwarder);
                command.arg(format!("{host_ip}:{port}")).arg(format!("127.0.0.1:{port}"));
                ns._forwarders.push(Process::spawn(env, &format!("forward-host-{port}"), command)?);
            }
            // Inside: 127.0.0.1:<kafka port> -> <host_ip>:<kafka port> (the broker's advertised address).
            let mut command = Command::new("ip");
            command
                .args(["netns", "exec", &name])
                .arg(&forwarder)
                .arg(format!("127.0.0.1:{kafka_port}"))
                .arg(format!("{host_ip}:{kafka_port}"));
            ns._forwarders.push(Process::spawn(env, "forward-ns-kafka", command)?);
            ns.cp_port = cp_grpc_port;
            tokio::time::sleep(std::time::Duration::from_millis(300)).await;
            env.note(format!("network namespace {name}: {ns_ip} <-> host {host_ip}"));
            Ok(ns)
        }

        pub fn control_plane_endpoint(&self) -> String {
            format!("http://{}:{}", self.host_ip, self.cp_port)
        }

        pub fn exec_prefix(&self) -> Vec<String> {
            vec!["ip".into(), "netns".into(), "exec".into(), self.name.clone()]
        }

        fn rule(&self, action: &str) -> anyhow::Result<()> {
            let port = self.cp_port.to_string();
            let ns = ["ip", "netns", "exec", &self.name, "iptables", action];
            let out = ["OUTPUT", "-p", "tcp", "-d", &self.host_ip, "--dport", &port, "-j", "DROP"];
            let inbound = ["INPUT", "-p", "tcp", "-s", &self.host_ip, "--sport", &port, "-j", "DROP"];
            run(&[&ns[..], &out[..]].concat())?;
            run(&[&ns[..], &inbound[..]].concat())
        }

        /// Drops every packet to the control plane (established connections included): a silent partition.
        pub fn cut_control_plane(&self) -> anyhow::Result<()> {
            self.rule("-A")
        }

        pub fn restore_control_plane(&self) -> anyhow::Result<()> {
            self.rule("-D")
        }
    }

    impl Drop for Namespace {
        fn drop(&mut self) {
            let _ = run(&["ip", "link", "del", &self.host_veth]);
            let _ = run(&["ip", "netns", "del", &self.name]);
        }
    }
}
