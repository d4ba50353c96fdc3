//! Connection limits of the REST and gRPC ports, so that idle, half-sent or slowly dripped connections cannot pile
//! up: at most `max_connections` are open per port (one more is closed as soon as it is accepted), a connection
//! whose reads stall longer than `idle_timeout` is closed, and the REST server bounds the time to read a request's
//! headers (`header_read_timeout`) and its body (`body_read_timeout`, 408 past it).
//!
//! Live peers are never idle for long: the gRPC server pings HTTP/2 clients every 2 s (their answers are reads),
//! agents send heartbeats, and the REST idle timeout is longer than the request time limit.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::Request;
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::{Instant, Sleep};

/// The limits of one port.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnectionLimits {
    /// Most connections open at once; more are closed as soon as they are accepted.
    pub max_connections: usize,
    /// A connection that sends nothing for this long while the server waits to read is closed (an idle keep-alive
    /// connection, a request cut off mid-way, a client that never sends a byte).
    pub idle_timeout: Duration,
    /// Time to receive a request's headers (HTTP/1.1 on the REST port).
    pub header_read_timeout: Duration,
    /// Time to receive a request's body once its headers arrived (REST port): 408 past it.
    pub body_read_timeout: Duration,
}

impl Default for ConnectionLimits {
    fn default() -> Self {
        ConnectionLimits {
            max_connections: 1024,
            idle_timeout: Duration::from_secs(60),
            header_read_timeout: Duration::from_secs(10),
            body_read_timeout: Duration::from_secs(30),
        }
    }
}

/// Connections closed because of these limits, by reason (for logs and tests).
#[derive(Debug, Default)]
pub struct ConnectionCounters {
    pub refused: AtomicU64,
    pub idle_closed: AtomicU64,
}

/// Accepts TCP connections within a limit: each holds a permit until it closes.
pub struct LimitedListener {
    listener: TcpListener,
    permits: Arc<Semaphore>,
    limits: ConnectionLimits,
    counters: Arc<ConnectionCounters>,
    port: &'static str,
}

impl LimitedListener {
    pub fn new(listener: TcpListener, limits: ConnectionLimits, port: &'static str) -> Self {
        LimitedListener {
            listener,
            permits: Arc::new(Semaphore::new(limits.max_connections.max(1))),
            limits,
            counters: Arc::default(),
            port,
        }
    }

    pub fn local_addr(&self) -> io::Result<std::net::SocketAddr> {
        self.listener.local_addr()
    }

    /// The next connection within the limit. Connections beyond it are closed at once (logged every 100th time).
    pub async fn accept(&self) -> (GuardedIo<TcpStream>, std::net::SocketAddr) {
        loop {
            let (stream, peer) = match self.listener.accept().await {
                Ok(accepted) => accepted,
                Err(e) => {
                    // Out of file descriptors and the like: wait a little instead of spinning.
                    tracing::warn!(port = self.port, error = %e, "cannot accept a connection");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            };
            let Ok(permit) = self.permits.clone().try_acquire_owned() else {
                let refused = self.counters.refused.fetch_add(1, Ordering::Relaxed);
                if refused.is_multiple_of(100) {
                    tracing::warn!(port = self.port, %peer, max_connections = self.limits.max_connections, refused = refused + 1,
                        "connection limit reached: closing new connections");
                }
                drop(stream);
                continue;
            };
            let _ = stream.set_nodelay(true);
            let io = GuardedIo::new(stream, permit, self.limits.idle_timeout, self.counters.clone());
            return (io, peer);
        }
    }

    /// The accepted connections as a stream, for tonic's `serve_with_incoming_shutdown`.
    pub fn into_stream(self) -> impl futures::Stream<Item = io::Result<GuardedIo<TcpStream>>> + Send + 'static {
        futures::stream::unfold(self, |listener| async move {
            let (io, _) = listener.accept().await;
            Some((Ok(io), listener))
        })
    }
}

impl axum::serve::Listener for LimitedListener {
    type Io = GuardedIo<TcpStream>;
    type Addr = std::net::SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        LimitedListener::accept(self).await
    }

    fn local_addr(&self) -> io::Result<Self::Addr> {
        self.listener.local_addr()
    }
}

/// A connection that holds its listener's permit while open and fails a read that waited `idle` since the
/// connection last made progress (read or wrote anything).
pub struct GuardedIo<T> {
    inner: T,
    _permit: OwnedSemaphorePermit,
    idle: Duration,
    last_progress: Instant,
    timer: Pin<Box<Sleep>>,
    counters: Arc<ConnectionCounters>,
}

impl<T> GuardedIo<T> {
    fn new(inner: T, permit: OwnedSemaphorePermit, idle: Duration, counters: Arc<ConnectionCounters>) -> Self {
        let now = Instant::now();
        GuardedIo {
            inner,
            _permit: permit,
            idle,
            last_progress: now,
            timer: Box::pin(tokio::time::sleep_until(now + idle)),
            counters,
        }
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for GuardedIo<T> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let this = &mut *self;
        match Pin::new(&mut this.inner).poll_read(cx, buf) {
            Poll::Ready(result) => {
                this.last_progress = Instant::now();
                Poll::Ready(result)
            }
            Poll::Pending => {
                let deadline = this.last_progress + this.idle;
                if this.timer.deadline() != deadline {
                    this.timer.as_mut().reset(deadline);
                }
                match this.timer.as_mut().poll(cx) {
                    Poll::Ready(()) => {
                        this.counters.idle_closed.fetch_add(1, Ordering::Relaxed);
                        Poll::Ready(Err(io::Error::new(
                            io::ErrorKind::TimedOut,
                            format!("connection idle for {} ms", this.idle.as_millis()),
                        )))
                    }
                    Poll::Pending => Poll::Pending,
                }
            }
        }
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for GuardedIo<T> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, data: &[u8]) -> Poll<io::Result<usize>> {
        let written = Pin::new(&mut self.inner).poll_write(cx, data);
        if matches!(written, Poll::Ready(Ok(n)) if n > 0) {
            self.last_progress = Instant::now();
        }
        written
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let written = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        if matches!(written, Poll::Ready(Ok(n)) if n > 0) {
            self.last_progress = Instant::now();
        }
        written
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

impl<T: tonic::transport::server::Connected> tonic::transport::server::Connected for GuardedIo<T> {
    type ConnectInfo = T::ConnectInfo;

    fn connect_info(&self) -> Self::ConnectInfo {
        self.inner.connect_info()
    }
}

/// Reads a request's body within `limit` (408 with Kafka Connect's error body past it), so a client that sends its
/// headers and then drips the body cannot hold a request open.
pub async fn read_body_within(limit: Duration, request: Request, next: Next) -> Response {
    let (parts, body) = request.into_parts();
    // The same cap as axum's default body limit: beyond it, 413.
    let read = tokio::time::timeout(limit, axum::body::to_bytes(body, MAX_BODY_BYTES)).await;
    match read {
        Ok(Ok(bytes)) => next.run(Request::from_parts(parts, Body::from(bytes))).await,
        Ok(Err(e)) => {
            let mut chain = e.to_string();
            let mut cause = std::error::Error::source(&e);
            while let Some(c) = cause {
                chain.push_str(&c.to_string());
                cause = c.source();
            }
            let too_large = chain.contains("length limit exceeded");
            if too_large {
                error(StatusCode::PAYLOAD_TOO_LARGE, format!("Request body is larger than {MAX_BODY_BYTES} bytes"))
            } else {
                error(StatusCode::BAD_REQUEST, format!("Cannot read the request body: {e}"))
            }
        }
        Err(_) => error(
            StatusCode::REQUEST_TIMEOUT,
            format!("The request body did not arrive within {} ms", limit.as_millis()),
        ),
    }
}

/// Largest REST request body (axum's default limit).
pub const MAX_BODY_BYTES: usize = 2 * 1024 * 1024;

fn error(status: StatusCode, message: String) -> Response {
    let body = serde_json::json!({"error_code": status.as_u16(), "message": message});
    (status, axum::Json(body)).into_response()
}

/// Serves `app` over HTTP/1.1 and HTTP/2 on connections from `accept` until `shutdown` completes, then lets open
/// connections finish their requests (up to 10 s). Headers must arrive within `header_read_timeout`.
pub async fn serve_http<L>(
    mut listener: L,
    app: Router,
    limits: ConnectionLimits,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> io::Result<()>
where
    L: axum::serve::Listener,
    L::Io: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let app = app.layer(axum::middleware::from_fn(move |request: Request, next: Next| {
        read_body_within(limits.body_read_timeout, request, next)
    }));
    let mut builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
    builder.http1().timer(TokioTimer::new()).header_read_timeout(limits.header_read_timeout);
    builder.http2().timer(TokioTimer::new()).keep_alive_interval(Some(Duration::from_secs(20)));
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let io = tokio::select! {
            (io, _) = listener.accept() => io,
            () = &mut shutdown => break,
        };
        let service = TowerToHyperService::new(tower::ServiceExt::map_request(
            app.clone(),
            |request: Request<hyper::body::Incoming>| request.map(Body::new),
        ));
        let connection = builder.serve_connection_with_upgrades(TokioIo::new(io), service).into_owned();
        let connection = graceful.watch(connection);
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::trace!(error = %e, "connection ended with an error");
            }
        });
    }
    if tokio::time::timeout(Duration::from_secs(10), graceful.shutdown()).await.is_err() {
        tracing::warn!("open REST connections did not finish within 10 s of shutdown");
    }
    Ok(())
}
