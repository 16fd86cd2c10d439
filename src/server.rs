//! Connections: accepting, capping and timing them out, so that slow or idle
//! clients cannot starve the service.
//!
//! - A request's headers must arrive within [`Limits::header_timeout`] of its
//!   first byte (of the connection's opening, for the first request).
//! - A connection with no request in flight closes after [`Limits::idle_timeout`].
//! - At most [`Limits::max_connections`] are open (and never more than the
//!   process's file-descriptor limit allows, less a reserve for storage). At the
//!   cap the connection idle the longest is closed to make room, so a health
//!   check still gets through a crowd of idle sockets; while every connection is
//!   busy, new ones wait in the listen backlog.
//!
//! The body's deadline is the router's (see `http::guard`): the connection layer
//! only tells it when the request began.

use std::collections::HashMap;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes, HttpBody};
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Notify, watch};
use tokio::time::Instant;
use tower::ServiceExt;

use crate::http::RequestStarted;

/// How long clients may take, and how many may be connected.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub max_connections: usize,
    pub header_timeout: Duration,
    pub idle_timeout: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_connections: 4096,
            header_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(60),
        }
    }
}

/// File descriptors kept back from connections for storage, logs and the listener.
const FD_RESERVE: u64 = 64;

impl Limits {
    /// The cap in force: the configured one, lowered to fit the process's
    /// open-file limit.
    pub fn effective_max_connections(&self) -> usize {
        let configured = self.max_connections.max(1);
        match open_file_limit() {
            Some(limit) => configured.min(limit.saturating_sub(FD_RESERVE).max(1) as usize),
            None => configured,
        }
    }
}

/// The soft `RLIMIT_NOFILE`, read from `/proc/self/limits` where there is one.
fn open_file_limit() -> Option<u64> {
    let limits = std::fs::read_to_string("/proc/self/limits").ok()?;
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    line.split_whitespace().nth(3)?.parse().ok()
}

/// Serves `app` on `listener` until `shutdown` completes, then lets requests in
/// flight finish.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    limits: Limits,
    shutdown: impl Future<Output = ()>,
) -> io::Result<()> {
    let cap = limits.effective_max_connections();
    tracing::debug!(cap, "connection cap");
    let registry = Arc::new(Registry::default());
    let clock = Clock(Instant::now());
    let (stop_tx, stop_rx) = watch::channel(false);
    tokio::pin!(shutdown);
    loop {
        if registry.open() >= cap && !registry.evict_longest_idle() {
            // Every connection is busy: wait for one to end, or to go idle.
            tokio::select! {
                () = &mut shutdown => break,
                () = registry.closed.notified() => {}
                () = tokio::time::sleep(Duration::from_millis(50)) => {}
            }
            continue;
        }
        let stream = tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(e) => {
                    // Out of descriptors (or a connection reset before accept):
                    // make room and try again shortly.
                    tracing::warn!(error = %e, "accept failed");
                    registry.evict_longest_idle();
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    continue;
                }
            },
        };
        let _ = stream.set_nodelay(true);
        let conn = registry.add(clock.now());
        tokio::spawn(run_connection(
            stream,
            app.clone(),
            conn,
            registry.clone(),
            clock,
            limits,
            stop_rx.clone(),
        ));
    }
    drop(listener);
    let _ = stop_tx.send(true);
    while registry.open() > 0 {
        tokio::select! {
            () = registry.closed.notified() => {}
            () = tokio::time::sleep(Duration::from_millis(100)) => {}
        }
    }
    Ok(())
}

/// Milliseconds since the server started: cheap to keep in an atomic.
#[derive(Debug, Clone, Copy)]
struct Clock(Instant);

impl Clock {
    fn now(&self) -> u64 {
        self.0.elapsed().as_millis() as u64
    }

    fn instant(&self, millis: u64) -> Instant {
        self.0 + Duration::from_millis(millis)
    }
}

/// No first byte seen since the connection went idle.
const NOT_STARTED: u64 = u64::MAX;

/// What the accept loop and a connection's watchdog know of one connection.
#[derive(Debug)]
struct Conn {
    id: u64,
    /// Requests being answered (handler running or response being written).
    busy: AtomicUsize,
    /// When it last had nothing in flight (its opening, or the last response).
    idle_since: AtomicU64,
    /// When the first byte of the next request arrived, or [`NOT_STARTED`].
    request_started: AtomicU64,
    served: AtomicU64,
    evicted: AtomicBool,
    evict: Notify,
}

impl Conn {
    /// When the watchdog should close it if nothing changes; `None` while busy.
    fn deadline(&self, limits: &Limits) -> Option<u64> {
        if self.busy.load(Ordering::Acquire) > 0 {
            return None;
        }
        let header = limits.header_timeout.as_millis() as u64;
        let started = self.request_started.load(Ordering::Acquire);
        let idle_since = self.idle_since.load(Ordering::Acquire);
        Some(if started != NOT_STARTED {
            started + header
        } else if self.served.load(Ordering::Acquire) == 0 {
            idle_since + header
        } else {
            idle_since + limits.idle_timeout.as_millis() as u64
        })
    }
}

/// Every open connection, for the cap and for shutdown. Its lock is taken when
/// a connection opens or closes, never per request.
#[derive(Debug, Default)]
struct Registry {
    conns: Mutex<HashMap<u64, Arc<Conn>>>,
    next_id: AtomicU64,
    evicting: AtomicUsize,
    closed: Notify,
}

impl Registry {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<u64, Arc<Conn>>> {
        self.conns
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Open connections, not counting those already told to close.
    fn open(&self) -> usize {
        self.lock()
            .len()
            .saturating_sub(self.evicting.load(Ordering::Acquire))
    }

    fn add(&self, now: u64) -> Arc<Conn> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let conn = Arc::new(Conn {
            id,
            busy: AtomicUsize::new(0),
            idle_since: AtomicU64::new(now),
            request_started: AtomicU64::new(NOT_STARTED),
            served: AtomicU64::new(0),
            evicted: AtomicBool::new(false),
            evict: Notify::new(),
        });
        self.lock().insert(id, conn.clone());
        conn
    }

    fn remove(&self, conn: &Conn) {
        self.lock().remove(&conn.id);
        if conn.evicted.load(Ordering::Acquire) {
            self.evicting.fetch_sub(1, Ordering::AcqRel);
        }
        self.closed.notify_waiters();
    }

    /// Tells the connection idle the longest to close; false when none is idle.
    fn evict_longest_idle(&self) -> bool {
        let conns = self.lock();
        let victim = conns
            .values()
            .filter(|c| c.busy.load(Ordering::Acquire) == 0 && !c.evicted.load(Ordering::Acquire))
            .min_by_key(|c| c.idle_since.load(Ordering::Acquire));
        match victim {
            Some(conn) => {
                conn.evicted.store(true, Ordering::Release);
                self.evicting.fetch_add(1, Ordering::AcqRel);
                conn.evict.notify_one();
                true
            }
            None => false,
        }
    }
}

async fn run_connection(
    stream: TcpStream,
    app: Router,
    conn: Arc<Conn>,
    registry: Arc<Registry>,
    clock: Clock,
    limits: Limits,
    mut stop: watch::Receiver<bool>,
) {
    let io = TokioIo::new(Tracked {
        inner: stream,
        conn: conn.clone(),
        clock,
    });
    let service_conn = conn.clone();
    let service = hyper::service::service_fn(move |request: hyper::Request<Incoming>| {
        let app = app.clone();
        let busy = Busy::begin(service_conn.clone(), clock);
        async move {
            let mut request = request.map(Body::new);
            request.extensions_mut().insert(busy.started);
            let response = app.oneshot(request).await;
            response.map(|r| {
                r.map(|body| {
                    Body::new(Finishing {
                        inner: body,
                        _busy: busy,
                    })
                })
            })
        }
    });
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(None)
        .keep_alive(true);
    let connection = builder.serve_connection(io, service);
    tokio::pin!(connection);
    let mut stopping = false;
    loop {
        let wake = match conn.deadline(&limits) {
            Some(deadline) => clock.instant(deadline),
            // Busy: look again shortly, to start the idle clock once it is done.
            None => Instant::now() + Duration::from_millis(500),
        };
        tokio::select! {
            _ = connection.as_mut() => break,
            () = conn.evict.notified() => break,
            changed = stop.changed(), if !stopping => {
                let _ = changed;
                stopping = true;
                connection.as_mut().graceful_shutdown();
            }
            () = tokio::time::sleep_until(wake) => {
                if conn.deadline(&limits).is_some_and(|d| d <= clock.now()) {
                    break;
                }
            }
        }
    }
    registry.remove(&conn);
}

/// Marks a connection busy from the moment hyper hands over a request until its
/// response has been written (or abandoned).
struct Busy {
    conn: Arc<Conn>,
    clock: Clock,
    started: RequestStarted,
}

impl Busy {
    fn begin(conn: Arc<Conn>, clock: Clock) -> Self {
        conn.busy.fetch_add(1, Ordering::AcqRel);
        let started = conn.request_started.swap(NOT_STARTED, Ordering::AcqRel);
        let started = if started == NOT_STARTED {
            Instant::now()
        } else {
            clock.instant(started)
        };
        Self {
            conn,
            clock,
            started: RequestStarted(started),
        }
    }
}

impl Drop for Busy {
    fn drop(&mut self) {
        self.conn
            .idle_since
            .store(self.clock.now(), Ordering::Release);
        self.conn.served.fetch_add(1, Ordering::AcqRel);
        self.conn.busy.fetch_sub(1, Ordering::AcqRel);
    }
}

/// A response body that keeps its connection busy until it is dropped.
struct Finishing {
    inner: Body,
    _busy: Busy,
}

impl HttpBody for Finishing {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Self::Data>, Self::Error>>> {
        Pin::new(&mut self.inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

/// The socket, noting when the first byte of a request arrives while idle.
struct Tracked {
    inner: TcpStream,
    conn: Arc<Conn>,
    clock: Clock,
}

impl AsyncRead for Tracked {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.inner).poll_read(cx, buf);
        if buf.filled().len() > before
            && self.conn.busy.load(Ordering::Acquire) == 0
            && self.conn.request_started.load(Ordering::Acquire) == NOT_STARTED
        {
            let now = self.clock.now();
            self.conn.request_started.store(now, Ordering::Release);
        }
        polled
    }
}

impl AsyncWrite for Tracked {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
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
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}
