//! The session with the control plane: connect to any replica, Hello/Welcome, heartbeats, assignments down and
//! statuses/offsets up, reconnect with backoff, self-fencing, and the graceful goodbye. See `agent.proto` for the
//! contract this implements.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use sluice_logging::{ClusterLevel, ClusterLevels};
use sluice_proto::agent::agent_message::Kind as Up;
use sluice_proto::agent::agent_service_client::AgentServiceClient;
use sluice_proto::agent::control_message::Kind as Down;
use sluice_proto::agent::{AgentMessage, ControlMessage, Goodbye, Heartbeat, Hello, Welcome};
use tokio::sync::mpsc;
use tokio::time::{Instant, MissedTickBehavior};
use tokio_stream::wrappers::ReceiverStream;
use tokio_util::sync::CancellationToken;
use tonic::transport::{Certificate, ClientTlsConfig, Endpoint, Identity as TlsIdentity};
use tracing::{debug, error, info, warn};

use crate::fence::LeaseFence;
use crate::lease::{Backoff, LeaseClock, Renewal};
use crate::metrics::Metrics;
use crate::runtime::{StopMode, TaskEvent, WorkerConfig};
use crate::supervisor::Supervisor;

/// Messages queued for the stream; a control plane that stops reading this many is treated as gone.
const OUTBOX: usize = 1024;
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
const WELCOME_TIMEOUT: Duration = Duration::from_secs(10);
/// How long to wait for the control plane to close the stream after Goodbye.
const GOODBYE_TIMEOUT: Duration = Duration::from_secs(2);
/// Lease TTL assumed until the first Welcome says otherwise (only matters if nothing was ever welcomed).
const DEFAULT_LEASE_TTL: Duration = Duration::from_secs(10);
const MIN_HEARTBEAT_INTERVAL: Duration = Duration::from_millis(50);

/// Identity sent in Hello.
pub(crate) struct Identity {
    pub agent_id: String,
    pub worker_id: String,
    pub host: String,
    pub capacity: u32,
    /// Random per process; see `Hello.instance_id`.
    pub instance_id: String,
    /// The previous process of this agent id on this host, known dead; see `Hello.replaces_instance`.
    pub replaces_instance: String,
}

enum Outcome {
    /// Shut down gracefully; the process may exit.
    Shutdown,
    /// The control plane refused this agent's credentials, or its certificate cannot be trusted as configured:
    /// retrying would change nothing, so the agent stops and says why.
    Refused(String),
    /// The session ended; `welcomed` says whether it got as far as a Welcome (then the backoff starts over).
    Disconnected { welcomed: bool },
}

/// Why a session ended early, for the log.
enum Break {
    Lost(String),
    Fenced,
    Shutdown,
}

pub(crate) struct Agent {
    identity: Identity,
    /// `authorization` metadata of every session (the join token), if any.
    authorization: Option<tonic::metadata::MetadataValue<tonic::metadata::Ascii>>,
    endpoints: Vec<Endpoint>,
    supervisor: Supervisor,
    events: mpsc::UnboundedReceiver<TaskEvent>,
    lease: LeaseClock,
    /// What the tasks check before every effect; closed at every fence.
    fence: Arc<LeaseFence>,
    metrics: Arc<Metrics>,
    shutdown: CancellationToken,
    worker: Arc<WorkerConfig>,
    heartbeat_seq: u64,
    /// Which cluster-scope log levels were seen; kept across sessions, so a reconnect applies what it missed.
    cluster_levels: ClusterLevels,
}

impl Agent {
    pub fn new(
        identity: Identity,
        authorization: Option<tonic::metadata::MetadataValue<tonic::metadata::Ascii>>,
        endpoints: Vec<Endpoint>,
        worker: Arc<WorkerConfig>,
        metrics: Arc<Metrics>,
        shutdown: CancellationToken,
    ) -> Self {
        let (events_tx, events) = mpsc::unbounded_channel();
        let fence = Arc::new(LeaseFence::default());
        Agent {
            identity,
            authorization,
            endpoints,
            supervisor: Supervisor::new(worker.clone(), metrics.clone(), events_tx, fence.clone()),
            events,
            lease: LeaseClock::new(DEFAULT_LEASE_TTL, fence.clone()),
            fence,
            metrics,
            shutdown,
            worker,
            heartbeat_seq: 0,
            cluster_levels: ClusterLevels::default(),
        }
    }

    /// Keeps a session up (rotating through the endpoints) until shutdown; `Err` when the control plane refused
    /// the agent (its tasks stopped first).
    pub async fn run(mut self) -> Result<(), String> {
        let mut backoff = Backoff::new(Duration::from_millis(100), Duration::from_secs(5));
        let mut next = 0usize;
        // Refusals in a row: one replica that refuses may be misconfigured, all of them refusing is final.
        let mut refusals = 0usize;
        loop {
            let endpoint = self.endpoints[next % self.endpoints.len()].clone();
            next = next.wrapping_add(1);
            match self.session(endpoint).await {
                Outcome::Shutdown => return Ok(()),
                Outcome::Refused(reason) => {
                    refusals += 1;
                    if refusals >= self.endpoints.len() {
                        error!(reason, "the control plane refused this agent; stopping");
                        self.shutdown_offline().await;
                        return Err(reason);
                    }
                    warn!(reason, "this control-plane replica refused the agent; trying the next one");
                }
                Outcome::Disconnected { welcomed } => {
                    refusals = 0;
                    if welcomed {
                        backoff.reset();
                    }
                }
            }
            let delay = backoff.next_delay();
            debug!(delay_ms = delay.as_millis() as u64, "reconnecting after backoff");
            if self.offline(tokio::time::sleep(delay)).await.is_none() {
                self.shutdown_offline().await;
                return Ok(());
            }
        }
    }

    /// Drives `work` while no session is up: task reports are still recorded (statuses are re-sent, offsets kept
    /// for later) and the tasks are stopped if the lease runs out. `None` when shutdown was requested.
    async fn offline<F: Future>(&mut self, work: F) -> Option<F::Output> {
        tokio::pin!(work);
        loop {
            let fence_at = if self.supervisor.has_live_tasks() { self.lease.fence_at() } else { None };
            tokio::select! {
                biased;
                _ = sleep_until(fence_at) => self.fence(),
                _ = self.shutdown.cancelled() => return None,
                out = &mut work => return Some(out),
                Some(event) = self.events.recv() => {
                    self.supervisor.on_event(event);
                }
            }
        }
    }

    /// The lease may have expired: the tasks may already run elsewhere, so none may keep running here.
    fn fence(&mut self) {
        // First, so that no task acts between now and its stop request.
        self.fence.close();
        if self.supervisor.has_live_tasks() {
            error!(agent = %self.identity.agent_id, "no heartbeat acknowledged within the lease; stopping all tasks");
            self.metrics.self_fenced();
        }
        self.supervisor.stop_all(StopMode::Fenced);
    }

    /// A renewal came after the deadline (the renewal itself closed the fence). Tasks still running, if any, stop
    /// as at any fence; when the fence already stopped them, nothing more happens (the progress they had reached
    /// before it stays remembered for the next assignment).
    fn fence_after_lapse(&mut self) {
        if self.supervisor.has_live_tasks() {
            self.fence();
        }
    }

    /// Shutdown without a control plane: stop the tasks gracefully; their final offsets cannot be reported.
    async fn shutdown_offline(&mut self) {
        info!("shutting down while disconnected; final offsets cannot be reported");
        self.supervisor.stop_all(StopMode::Graceful);
        let deadline = Instant::now() + self.drain_timeout();
        let mut tick = tokio::time::interval(Duration::from_millis(50));
        while !self.supervisor.is_idle() {
            tokio::select! {
                Some(event) = self.events.recv() => {
                    self.supervisor.on_event(event);
                }
                _ = tick.tick() => {}
                _ = tokio::time::sleep_until(deadline) => {
                    warn!("tasks did not stop in time; aborting them");
                    self.supervisor.abort_all();
                    break;
                }
            }
        }
    }

    fn drain_timeout(&self) -> Duration {
        // Tasks get their own graceful timeout for in-flight records, plus slack for stop() and the last commit.
        self.worker.shutdown_timeout * 2 + Duration::from_secs(1)
    }

    async fn session(&mut self, endpoint: Endpoint) -> Outcome {
        let uri = endpoint.uri().to_string();
        let channel = match self.offline(endpoint.connect()).await {
            None => return self.shutdown_before_session().await,
            Some(Ok(channel)) => channel,
            Some(Err(err)) => {
                let error = error_chain(&err);
                if let Some(reason) = certificate_problem(&error) {
                    return Outcome::Refused(format!("{uri}: {error}. {reason}"));
                }
                warn!(endpoint = %uri, error, "cannot connect to the control plane");
                return Outcome::Disconnected { welcomed: false };
            }
        };
        let (outbox, inbox) = mpsc::channel::<AgentMessage>(OUTBOX);
        let hello = Hello {
            agent_id: self.identity.agent_id.clone(),
            host: self.identity.host.clone(),
            capacity: self.identity.capacity,
            version: env!("CARGO_PKG_VERSION").to_string(),
            worker_id: self.identity.worker_id.clone(),
            instance_id: self.identity.instance_id.clone(),
            replaces_instance: self.identity.replaces_instance.clone(),
        };
        let hello_sent = Instant::now();
        // Queued before the call: the control plane may read Hello before it answers with response headers.
        let _ = outbox.try_send(AgentMessage { kind: Some(Up::Hello(hello)) });
        let mut client = AgentServiceClient::new(channel);
        let mut request = tonic::Request::new(ReceiverStream::new(inbox));
        if let Some(authorization) = &self.authorization {
            request.metadata_mut().insert("authorization", authorization.clone());
        }
        let mut inbound = match self.offline(client.session(request)).await {
            None => return self.shutdown_before_session().await,
            Some(Ok(response)) => response.into_inner(),
            Some(Err(status))
                if matches!(status.code(), tonic::Code::Unauthenticated | tonic::Code::PermissionDenied) =>
            {
                return Outcome::Refused(format!("{uri}: {}: {}", status.code(), status.message()));
            }
            Some(Err(status)) if status.code() == tonic::Code::AlreadyExists => {
                error!(endpoint = %uri, agent = %self.identity.agent_id, message = status.message(),
                    "session refused: another agent process with this --agent-id is connected; retrying");
                return Outcome::Disconnected { welcomed: false };
            }
            Some(Err(status)) => {
                warn!(endpoint = %uri, code = ?status.code(), message = status.message(), "session refused");
                return Outcome::Disconnected { welcomed: false };
            }
        };
        let welcome = match self.offline(tokio::time::timeout(WELCOME_TIMEOUT, inbound.message())).await {
            None => return self.shutdown_before_session().await,
            Some(Ok(Ok(Some(ControlMessage { kind: Some(Down::Welcome(welcome)) })))) => welcome,
            Some(other) => {
                let reason = match other {
                    Err(_) => "no Welcome in time".to_string(),
                    Ok(Err(status)) => format!("{}: {}", status.code(), status.message()),
                    Ok(Ok(None)) => "stream closed before Welcome".to_string(),
                    Ok(Ok(Some(message))) => format!("expected Welcome, got {:?}", message.kind),
                };
                warn!(endpoint = %uri, reason, "session handshake failed");
                return Outcome::Disconnected { welcomed: false };
            }
        };
        let ended = self.serve(&uri, welcome, hello_sent, &outbox, &mut inbound).await;
        self.metrics.set_connected(false);
        match ended {
            Break::Shutdown => {
                info!(endpoint = %uri, "sending goodbye");
                let _ = outbox.try_send(AgentMessage {
                    kind: Some(Up::Goodbye(Goodbye { reason: "agent shutting down".into() })),
                });
                drop(outbox);
                // Let the control plane read Goodbye and close its side, so the lease is released at once.
                let _ =
                    tokio::time::timeout(GOODBYE_TIMEOUT, async { while let Ok(Some(_)) = inbound.message().await {} })
                        .await;
                Outcome::Shutdown
            }
            Break::Fenced => Outcome::Disconnected { welcomed: true },
            Break::Lost(reason) => {
                warn!(endpoint = %uri, reason, "session lost");
                Outcome::Disconnected { welcomed: true }
            }
        }
    }

    async fn shutdown_before_session(&mut self) -> Outcome {
        self.shutdown_offline().await;
        Outcome::Shutdown
    }

    /// The established session. Returns why it ended; the tasks keep running unless fenced or shut down.
    async fn serve(
        &mut self,
        uri: &str,
        welcome: Welcome,
        hello_sent: Instant,
        outbox: &mpsc::Sender<AgentMessage>,
        inbound: &mut tonic::Streaming<ControlMessage>,
    ) -> Break {
        let ttl = Duration::from_millis(welcome.lease_ttl_ms).max(Duration::from_millis(100));
        let every = Duration::from_millis(welcome.heartbeat_interval_ms).max(MIN_HEARTBEAT_INTERVAL);
        self.lease.set_ttl(ttl);
        self.lease.set_heartbeat_interval(every);
        // Welcome answers Hello, so the lease was alive when Hello was sent. After a lapse the tasks from before
        // it (if any still run) may have been moved meanwhile: they stop, the assignment brings them back.
        if self.lease.renewed(hello_sent) == Renewal::AfterLapse {
            self.fence_after_lapse();
        }
        self.metrics.set_connected(true);
        info!(endpoint = %uri, control_plane = %welcome.control_plane_id, lease_ttl_ms = welcome.lease_ttl_ms,
              heartbeat_interval_ms = welcome.heartbeat_interval_ms, "session established");

        let mut heartbeat = tokio::time::interval_at(Instant::now() + every, every);
        heartbeat.set_missed_tick_behavior(MissedTickBehavior::Delay);
        // Until the first Assignment the old picture is not authoritative: hold statuses and offsets back.
        let mut synced = false;
        let mut drain_deadline: Option<Instant> = None;
        let mut idle_check = tokio::time::interval(Duration::from_millis(50));
        loop {
            if drain_deadline.is_some() && self.supervisor.is_idle() {
                // Final offsets of gracefully stopped tasks; a failure here changes nothing, we are leaving.
                let _ = self.flush_offsets(outbox);
                return Break::Shutdown;
            }
            let fence_at = self.lease.fence_at();
            // Before anything that may have waited in the socket or a channel (after a pause of the process, all
            // of it is ready at once): a passed deadline wins.
            if fence_at.is_some_and(|at| Instant::now() >= at) {
                return self.fenced_in_session(uri, drain_deadline);
            }
            tokio::select! {
                biased;
                _ = sleep_until(fence_at) => return self.fenced_in_session(uri, drain_deadline),
                _ = self.shutdown.cancelled(), if drain_deadline.is_none() => {
                    info!("shutdown requested: stopping tasks and committing their offsets");
                    self.supervisor.stop_all(StopMode::Graceful);
                    drain_deadline = Some(Instant::now() + self.drain_timeout());
                }
                message = inbound.message() => match message {
                    Ok(Some(message)) => {
                        if let Err(brk) = self.on_control(message, outbox, &mut synced, drain_deadline.is_some()) {
                            return brk;
                        }
                    }
                    Ok(None) => return self.lost_or_done(drain_deadline, "the control plane closed the stream"),
                    Err(status) => {
                        return self.lost_or_done(drain_deadline, &format!("{}: {}", status.code(), status.message()));
                    }
                },
                _ = heartbeat.tick() => {
                    self.heartbeat_seq += 1;
                    self.lease.heartbeat_sent(self.heartbeat_seq, Instant::now());
                    let running = self.supervisor.running_count() as u32;
                    let beat = Up::Heartbeat(Heartbeat { seq: self.heartbeat_seq, running_tasks: running });
                    if let Err(brk) = send(outbox, beat) {
                        return brk;
                    }
                }
                Some(event) = self.events.recv() => {
                    let status = self.supervisor.on_event(event);
                    if synced {
                        if let Some(status) = status
                            && let Err(brk) = send(outbox, Up::TaskStatus(status))
                        {
                            return brk;
                        }
                        if let Err(brk) = self.flush_offsets(outbox) {
                            return brk;
                        }
                    }
                }
                _ = sleep_until(drain_deadline) => {
                    warn!("tasks did not stop in time; aborting them");
                    self.supervisor.abort_all();
                    let _ = self.flush_offsets(outbox);
                    return Break::Shutdown;
                }
                _ = idle_check.tick(), if drain_deadline.is_some() => {}
            }
        }
    }

    /// The lease may have expired: stop every task, then reconnect (or finish shutting down).
    fn fenced_in_session(&mut self, uri: &str, drain_deadline: Option<Instant>) -> Break {
        self.fence();
        if drain_deadline.is_some() {
            return Break::Shutdown;
        }
        warn!(endpoint = %uri, "no heartbeat acknowledged within the lease; reconnecting");
        Break::Fenced
    }

    /// A broken stream during shutdown still ends in shutdown (there is nobody to say goodbye to).
    fn lost_or_done(&mut self, drain_deadline: Option<Instant>, reason: &str) -> Break {
        if drain_deadline.is_some() {
            warn!(reason, "stream lost during shutdown; remaining offsets are dropped");
            return Break::Shutdown;
        }
        Break::Lost(reason.to_string())
    }

    fn on_control(
        &mut self,
        message: ControlMessage,
        outbox: &mpsc::Sender<AgentMessage>,
        synced: &mut bool,
        draining: bool,
    ) -> Result<(), Break> {
        match message.kind {
            Some(Down::HeartbeatAck(ack)) => {
                debug!(seq = ack.seq, "heartbeat acknowledged");
                if self.lease.acked(ack.seq) == Renewal::AfterLapse {
                    // The lease had run out before this ack (the process was paused, or acks were late): whatever
                    // runs here may run elsewhere too. Start over with a fresh session and assignment.
                    warn!("heartbeat acknowledged after the lease deadline; fencing");
                    self.fence_after_lapse();
                    return Err(if draining { Break::Shutdown } else { Break::Fenced });
                }
            }
            Some(Down::LoggerLevels(levels)) => {
                let current = levels.levels.into_iter().map(|l| ClusterLevel {
                    logger: l.logger,
                    level: l.level,
                    revision: l.revision,
                });
                self.cluster_levels.apply(current, &sluice_logging::levels());
            }
            Some(Down::Assignment(assignment)) => {
                if draining {
                    debug!(revision = assignment.revision, "ignoring an assignment during shutdown");
                    return Ok(());
                }
                info!(
                    revision = assignment.revision,
                    tasks = assignment.tasks.len(),
                    revoked = assignment.revoked.len(),
                    "assignment received"
                );
                self.supervisor.apply(assignment);
                if !*synced {
                    *synced = true;
                    self.supervisor.resend_shared_puts();
                    // Statuses produced while disconnected were never sent: report the current state of each task.
                    for status in self.supervisor.current_statuses() {
                        send(outbox, Up::TaskStatus(status))?;
                    }
                }
                self.flush_offsets(outbox)?;
            }
            Some(Down::Reject(reject)) => {
                if let Some(id) = reject.id.as_ref() {
                    self.supervisor.reject(id, reject.epoch, &reject.reason);
                }
            }
            Some(Down::SharedState(state)) => {
                debug!(connector = %state.connector, values = state.values.len(), "shared state received");
                self.supervisor.shared_state(state);
            }
            Some(Down::Welcome(_)) => debug!("ignoring a repeated Welcome"),
            None => debug!("ignoring an empty control message"),
        }
        Ok(())
    }

    fn flush_offsets(&mut self, outbox: &mpsc::Sender<AgentMessage>) -> Result<(), Break> {
        for commit in self.supervisor.take_offset_commits() {
            send(outbox, Up::OffsetCommit(commit))?;
        }
        for topics in self.supervisor.take_topics_used() {
            send(outbox, Up::TopicsUsed(topics))?;
        }
        for put in self.supervisor.take_shared_puts() {
            send(outbox, Up::SharedStatePut(put))?;
        }
        Ok(())
    }
}

fn send(outbox: &mpsc::Sender<AgentMessage>, kind: Up) -> Result<(), Break> {
    outbox.try_send(AgentMessage { kind: Some(kind) }).map_err(|err| match err {
        mpsc::error::TrySendError::Full(_) => Break::Lost("the control plane stopped reading the stream".into()),
        mpsc::error::TrySendError::Closed(_) => Break::Lost("the stream closed".into()),
    })
}

/// `transport error` alone says little: show the causes too.
fn error_chain(err: &dyn std::error::Error) -> String {
    let mut out = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        out.push_str(": ");
        out.push_str(&cause.to_string());
        source = cause.source();
    }
    out
}

async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// A TLS error no retry will fix, with what to do about it; `None` for anything else (the network, a restart).
fn certificate_problem(error: &str) -> Option<&'static str> {
    if error.contains("CaUsedAsEndEntity") {
        return Some(
            "The control plane serves a CA certificate (basicConstraints CA:TRUE, as `openssl req -x509` makes by \
             default) as its own certificate, which TLS clients refuse. Make a CA and a server certificate signed by \
             it (deploy/tls/make-certs), serve the server certificate (--grpc-tls-cert) and give agents the CA \
             (--tls-ca)",
        );
    }
    if error.contains("invalid peer certificate") {
        return Some(
            "The control plane's certificate is not trusted as configured: --tls-ca must hold the CA that signed \
             it, and the host name in --control-plane must be in its subjectAltName",
        );
    }
    if error.contains("received fatal alert") && (error.contains("Certificate") || error.contains("UnknownCA")) {
        return Some(
            "The control plane refused this agent's client certificate: --tls-cert must be signed by the CA the \
             control plane trusts (--agent-tls-client-ca)",
        );
    }
    None
}

/// An agent's client certificate and key (PEM), for control planes that authenticate agents by mutual TLS.
#[derive(Clone)]
pub struct ClientIdentity {
    pub cert_pem: Vec<u8>,
    pub key_pem: Vec<u8>,
}

impl std::fmt::Debug for ClientIdentity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ClientIdentity { .. }")
    }
}

/// Parses a control-plane address (`http://host:port`, or `host:port` meaning plain HTTP/2; `https://host:port`
/// for TLS, verifying the server against `tls_ca` (PEM) when given, else against the bundled Mozilla roots, and
/// presenting `identity` as the client certificate when given).
pub(crate) fn endpoint(
    address: &str,
    tls_ca: Option<&[u8]>,
    identity: Option<&ClientIdentity>,
) -> Result<Endpoint, tonic::transport::Error> {
    let address = address.trim();
    let uri = if address.contains("://") { address.to_string() } else { format!("http://{address}") };
    let mut endpoint = Endpoint::from_shared(uri)?;
    if endpoint.uri().scheme_str() == Some("https") {
        let tls = ClientTlsConfig::new().timeout(CONNECT_TIMEOUT);
        let tls = match tls_ca {
            Some(pem) => tls.ca_certificate(Certificate::from_pem(pem)),
            None => tls.with_webpki_roots(),
        };
        let tls = match identity {
            Some(identity) => tls.identity(TlsIdentity::from_pem(&identity.cert_pem, &identity.key_pem)),
            None => tls,
        };
        endpoint = endpoint.tls_config(tls)?;
    }
    Ok(endpoint
        .connect_timeout(CONNECT_TIMEOUT)
        .tcp_nodelay(true)
        .http2_keep_alive_interval(Duration::from_secs(5))
        .keep_alive_timeout(Duration::from_secs(5))
        .keep_alive_while_idle(true))
}
