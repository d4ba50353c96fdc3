//! The Sluice processes under test: control-plane replicas, agents and the standalone binary.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::{Context, bail};

use crate::bins::binary;
use crate::env::TestEnv;
use crate::net::{free_port, reachable};
use crate::process::Process;
use crate::rest::RestClient;
use crate::wait::wait_until;

/// How long a process may take to start answering.
const STARTUP_TIMEOUT: Duration = Duration::from_secs(30);
/// Free ports are found by binding and releasing: another process may grab one in between. Retry then.
const START_ATTEMPTS: usize = 3;

/// Writes a Java-style properties file (`key=value` lines) and returns its path.
pub fn write_properties(path: &Path, entries: &[(&str, &str)]) -> anyhow::Result<PathBuf> {
    let text: String = entries.iter().map(|(k, v)| format!("{k}={v}\n")).collect();
    std::fs::write(path, text).with_context(|| format!("cannot write {}", path.display()))?;
    Ok(path.to_path_buf())
}

/// The worker settings every agent in these tests uses (String converters, fast offset flushes).
pub fn worker_entries(kafka: &str) -> Vec<(&'static str, String)> {
    vec![
        ("bootstrap.servers", kafka.to_string()),
        ("key.converter", "org.apache.kafka.connect.storage.StringConverter".into()),
        ("value.converter", "org.apache.kafka.connect.storage.StringConverter".into()),
        ("offset.flush.interval.ms", "500".into()),
    ]
}

/// The join token the harness's control planes require and its agents present (`--agent-token`), unless a test
/// passes its own agent credentials (or `--insecure-agents`).
pub const AGENT_TOKEN: &str = "sluice-integration-test-agent-token";

/// Flags that choose how agents authenticate: with any of them, the harness adds no `--agent-token` of its own.
const CONTROL_PLANE_AGENT_AUTH_FLAGS: &[&str] = &["--agent-token", "--insecure-agents", "--agent-tls-client-ca"];
const AGENT_AUTH_FLAGS: &[&str] = &["--agent-token", "--tls-cert"];

fn chooses_agent_auth(args: &[String], flags: &[&str]) -> bool {
    args.iter().any(|a| flags.contains(&a.as_str()))
}

fn address_in_use(log: &str) -> bool {
    let lower = log.to_lowercase();
    lower.contains("address already in use") || lower.contains("addrinuse")
}

/// Waits until `GET /` answers 200 (or 401) and `extra_port` (if any) accepts connections, while the process runs.
async fn wait_ready(process: &mut Process, rest: &RestClient, extra_port: Option<u16>) -> anyhow::Result<()> {
    let label = process.label().to_string();
    // A process that exited is a final answer (Some(Err)), not a "not yet".
    wait_until(STARTUP_TIMEOUT, format!("{label} to answer GET {}/", rest.base()), || {
        let running = process.ensure_running();
        async move {
            if let Err(e) = running {
                return Ok(Some(Err(e)));
            }
            let reply = rest.get("/").await?;
            // 401: the replica is up and requires credentials (started with `--rest-auth-token`).
            if reply.status != 200 && reply.status != 401 {
                bail!("GET / answered {}: {}", reply.status, reply.body);
            }
            if let Some(port) = extra_port
                && !reachable(&format!("127.0.0.1:{port}"))
            {
                return Ok(None);
            }
            Ok(Some(Ok(())))
        }
    })
    .await?
}

/// One `sluice-control-plane` replica.
pub struct ControlPlane {
    pub process: Process,
    pub rest: RestClient,
    pub replica_id: String,
    pub cluster: String,
    pub rest_port: u16,
    pub grpc_port: u16,
    /// The etcd endpoints and extra arguments it was started with (for [`ControlPlane::restart`]).
    etcd: String,
    args: Vec<String>,
}

impl ControlPlane {
    /// Starts a replica of `cluster` against `etcd` with a generated replica id.
    pub async fn start(env: &TestEnv, cluster: &str, etcd: &str) -> anyhow::Result<ControlPlane> {
        Self::start_replica(env, cluster, etcd, "cp").await
    }

    /// Starts a replica with the given replica id (also its log label); returns once REST and gRPC answer.
    pub async fn start_replica(
        env: &TestEnv,
        cluster: &str,
        etcd: &str,
        replica_id: &str,
    ) -> anyhow::Result<ControlPlane> {
        Self::start_replica_with_args(env, cluster, etcd, replica_id, &[]).await
    }

    /// [`ControlPlane::start_replica`] with extra command-line arguments (e.g. `--rest-auth-token`).
    pub async fn start_replica_with_args(
        env: &TestEnv,
        cluster: &str,
        etcd: &str,
        replica_id: &str,
        args: &[String],
    ) -> anyhow::Result<ControlPlane> {
        let mut last_error = None;
        for _ in 0..START_ATTEMPTS {
            let (rest_port, grpc_port) = (free_port(), free_port());
            let command = Self::command(env, cluster, etcd, replica_id, rest_port, grpc_port, args)?;
            let mut process = Process::spawn(env, replica_id, command)?;
            let rest = RestClient::new(format!("http://127.0.0.1:{rest_port}"));
            match wait_ready(&mut process, &rest, Some(grpc_port)).await {
                Ok(()) => {
                    env.note(format!(
                        "control plane {replica_id} (pid {}) rest :{rest_port} grpc :{grpc_port} cluster {cluster}",
                        process.pid()
                    ));
                    return Ok(ControlPlane {
                        process,
                        rest,
                        replica_id: replica_id.to_string(),
                        cluster: cluster.to_string(),
                        rest_port,
                        grpc_port,
                        etcd: etcd.to_string(),
                        args: args.to_vec(),
                    });
                }
                Err(e) if !process.is_running() && address_in_use(&process.log_text()) => last_error = Some(e),
                Err(e) => return Err(e.context(format!("control plane {replica_id} did not start"))),
            }
        }
        Err(last_error
            .unwrap_or_else(|| anyhow::anyhow!("no attempt made"))
            .context("control plane: ports kept being taken"))
    }

    /// Starts the replica again on the same ports (after it was killed), so agents find it where they look.
    pub async fn restart(&mut self, env: &TestEnv) -> anyhow::Result<()> {
        let _ = self.process.is_running();
        let command = Self::command(
            env,
            &self.cluster,
            &self.etcd,
            &self.replica_id,
            self.rest_port,
            self.grpc_port,
            &self.args,
        )?;
        self.process = Process::spawn(env, &self.replica_id, command)?;
        wait_ready(&mut self.process, &self.rest, Some(self.grpc_port))
            .await
            .with_context(|| format!("control plane {} did not start again", self.replica_id))?;
        env.note(format!("control plane {} started again (pid {})", self.replica_id, self.process.pid()));
        Ok(())
    }

    fn command(
        env: &TestEnv,
        cluster: &str,
        etcd: &str,
        replica_id: &str,
        rest_port: u16,
        grpc_port: u16,
        args: &[String],
    ) -> anyhow::Result<Command> {
        let program = binary("sluice-control-plane")?;
        let mut command = Command::new(&program);
        command.args([
            "--etcd-endpoints",
            etcd,
            "--cluster",
            cluster,
            "--rest-listen",
            &format!("127.0.0.1:{rest_port}"),
            "--grpc-listen",
            &format!("127.0.0.1:{grpc_port}"),
            "--replica-id",
            replica_id,
            "--agent-lease-ttl-ms",
            "3000",
            "--heartbeat-interval-ms",
            "500",
            "--leader-lease-ttl-ms",
            "3000",
            "--kafka-bootstrap-servers",
            &env.services.kafka,
            "--log",
            "info",
        ]);
        if !chooses_agent_auth(args, CONTROL_PLANE_AGENT_AUTH_FLAGS) {
            command.args(["--agent-token", AGENT_TOKEN]);
        }
        command.args(args);
        Ok(command)
    }

    /// The gRPC endpoint agents connect to, e.g. `http://127.0.0.1:40123`.
    pub fn grpc_endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.grpc_port)
    }

    /// True once this replica has logged that it became leader (and not stepped down since).
    pub fn logs_leadership(&self) -> bool {
        let log = self.process.log_text();
        match (log.rfind("became leader"), log.rfind("stepped down as leader")) {
            (Some(became), Some(stepped)) => became > stepped,
            (Some(_), None) => true,
            _ => false,
        }
    }
}

/// One `sluice-agent`.
pub struct Agent {
    pub process: Process,
    pub id: String,
    pub config: PathBuf,
}

impl Agent {
    /// Starts an agent with id `id` connected to `control_planes` (gRPC endpoints), using Kafka at `kafka`.
    /// There is no readiness probe in the interface: tests wait for the outcomes (task states) instead.
    pub async fn start(env: &TestEnv, control_planes: &[String], id: &str, kafka: &str) -> anyhow::Result<Agent> {
        Self::start_with_args(env, control_planes, id, kafka, &[]).await
    }

    /// [`Agent::start`] with extra command-line arguments (e.g. `--metrics-listen 127.0.0.1:PORT`).
    pub async fn start_with_args(
        env: &TestEnv,
        control_planes: &[String],
        id: &str,
        kafka: &str,
        args: &[String],
    ) -> anyhow::Result<Agent> {
        Self::start_with_worker(env, control_planes, id, kafka, &[], args).await
    }

    /// [`Agent::start_with_args`] with extra `worker.properties` entries (added after, so they win over, the
    /// defaults of [`worker_entries`]).
    pub async fn start_with_worker(
        env: &TestEnv,
        control_planes: &[String],
        id: &str,
        kafka: &str,
        worker: &[(&str, &str)],
        args: &[String],
    ) -> anyhow::Result<Agent> {
        Self::start_with_env(env, control_planes, id, kafka, worker, args, &[], &[]).await
    }

    /// [`Agent::start_with_worker`] with extra environment variables (e.g. for `${env:...}` config providers) and a
    /// command prefix the agent runs under (e.g. `ip netns exec <ns>`, which execs: the pid stays the agent's).
    #[allow(clippy::too_many_arguments)]
    pub async fn start_with_env(
        env: &TestEnv,
        control_planes: &[String],
        id: &str,
        kafka: &str,
        worker: &[(&str, &str)],
        args: &[String],
        vars: &[(&str, &str)],
        prefix: &[String],
    ) -> anyhow::Result<Agent> {
        let program = binary("sluice-agent")?;
        let defaults = worker_entries(kafka);
        let mut entries: Vec<(&str, &str)> = defaults
            .iter()
            .filter(|(k, _)| !worker.iter().any(|(w, _)| w == k))
            .map(|(k, v)| (*k, v.as_str()))
            .collect();
        entries.extend_from_slice(worker);
        let config = write_properties(&env.path(&format!("{id}.worker.properties")), &entries)?;
        let mut command = match prefix.split_first() {
            Some((first, rest)) => {
                let mut command = Command::new(first);
                command.args(rest).arg(&program);
                command
            }
            None => Command::new(&program),
        };
        command.envs(vars.iter().copied());
        command
            .arg("--control-plane")
            .arg(control_planes.join(","))
            .arg("--agent-id")
            .arg(id)
            .arg("--config")
            .arg(&config);
        if !chooses_agent_auth(args, AGENT_AUTH_FLAGS) {
            command.args(["--agent-token", AGENT_TOKEN]);
        }
        command.args(args);
        let mut process = Process::spawn(env, id, command)?;
        process.ensure_running()?;
        env.note(format!("agent {id} (pid {}) -> {}", process.pid(), control_planes.join(",")));
        Ok(Agent { process, id: id.to_string(), config })
    }
}

/// One `sluice-standalone` process.
pub struct Standalone {
    pub process: Process,
    pub rest: RestClient,
    pub port: u16,
}

impl Standalone {
    /// Starts `sluice-standalone worker connectors...`; the worker file must set `listeners=http://127.0.0.1:{port}`.
    /// Returns once `GET /` answers.
    pub async fn start(
        env: &TestEnv,
        label: &str,
        port: u16,
        worker: &Path,
        connectors: &[PathBuf],
    ) -> anyhow::Result<Standalone> {
        let program = binary("sluice-standalone")?;
        let mut command = Command::new(&program);
        command.arg(worker).args(connectors);
        let mut process = Process::spawn(env, label, command)?;
        let rest = RestClient::new(format!("http://127.0.0.1:{port}"));
        wait_ready(&mut process, &rest, None).await.with_context(|| format!("{label} did not start"))?;
        env.note(format!("standalone {label} (pid {}) rest :{port}", process.pid()));
        Ok(Standalone { process, rest, port })
    }
}
