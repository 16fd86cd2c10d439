//! A webhook receiver for the outbound tests: an HTTP server on port 0 that
//! verifies every message's Standard Webhooks signature with the project's own
//! verifier, under each secret it was told of, records what came, and answers
//! with the status it is told to (200 unless told otherwise).

use std::collections::VecDeque;
use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::http::{HeaderMap, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use serde_json::Value;

use entitled::crypto::standard_webhooks::verify;
use entitled::secret::Secret;

/// One message as it arrived.
#[derive(Debug, Clone)]
pub struct Received {
    pub id: String,
    pub timestamp: String,
    pub signature: String,
    pub body: Value,
    /// The secrets (by their index in the order they were added) under which
    /// the signature verified.
    pub verified_by: Vec<usize>,
    /// What the receiver answered.
    pub answered: u16,
}

#[derive(Default)]
struct State {
    secrets: Vec<Secret>,
    received: Vec<Received>,
    /// Statuses to answer, in order; once empty, `otherwise`.
    answers: VecDeque<u16>,
    otherwise: Option<u16>,
    delay: Option<Duration>,
    /// Requests being answered now, and the most there ever were.
    in_flight: usize,
    most_in_flight: usize,
}

/// The receiver; stops when dropped.
pub struct Receiver {
    pub url: String,
    state: Arc<Mutex<State>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Receiver {
    /// Listens on 127.0.0.1, port 0; messages are POSTed to `/hooks`.
    pub async fn start() -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let url = format!("http://{}/hooks", listener.local_addr().unwrap());
        let state = Arc::new(Mutex::new(State::default()));
        let shared = state.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let state = shared.clone();
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(move |request| {
                        let state = state.clone();
                        async move { Ok::<_, Infallible>(receive(state, request).await) }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Self { url, state, task }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap()
    }

    /// A secret to verify under (the endpoint's, from its create or rotate).
    pub fn trust(&self, secret: &str) {
        self.lock().secrets.push(Secret::new(secret));
    }

    /// Answer these statuses to the next requests, in order.
    pub fn answer_next(&self, statuses: &[u16]) {
        self.lock().answers.extend(statuses);
    }

    /// Answer every request with `status` (after any queued answers).
    pub fn answer_always(&self, status: u16) {
        self.lock().otherwise = Some(status);
    }

    /// Wait this long before answering.
    pub fn delay(&self, delay: Option<Duration>) {
        self.lock().delay = delay;
    }

    /// The most requests it was answering at once.
    pub fn most_in_flight(&self) -> usize {
        self.lock().most_in_flight
    }

    /// Everything received so far.
    pub fn received(&self) -> Vec<Received> {
        self.lock().received.clone()
    }

    /// Waits until `n` messages have arrived (a failing test's patience, not
    /// a performance assertion), and returns them.
    pub async fn wait_for(&self, n: usize, patience: Duration) -> Vec<Received> {
        let deadline = tokio::time::Instant::now() + patience;
        loop {
            let received = self.received();
            if received.len() >= n || tokio::time::Instant::now() >= deadline {
                return received;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

async fn receive(state: Arc<Mutex<State>>, request: Request<Incoming>) -> Response<Full<Bytes>> {
    let headers: HeaderMap = request.headers().clone();
    let body = request
        .into_body()
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned()
    };
    let delay = {
        let mut state = state.lock().unwrap();
        state.in_flight += 1;
        state.most_in_flight = state.most_in_flight.max(state.in_flight);
        state.delay
    };
    if let Some(delay) = delay {
        tokio::time::sleep(delay).await;
    }
    let mut state = state.lock().unwrap();
    state.in_flight -= 1;
    let at = header("webhook-timestamp")
        .parse::<i64>()
        .ok()
        .and_then(|t| time::OffsetDateTime::from_unix_timestamp(t).ok())
        .unwrap_or_else(time::OffsetDateTime::now_utc);
    let verified_by = state
        .secrets
        .iter()
        .enumerate()
        .filter(|(_, secret)| verify(secret, &headers, &body, at).is_ok())
        .map(|(i, _)| i)
        .collect();
    let answered = state.answers.pop_front().or(state.otherwise).unwrap_or(200);
    state.received.push(Received {
        id: header("webhook-id"),
        timestamp: header("webhook-timestamp"),
        signature: header("webhook-signature"),
        body: serde_json::from_slice(&body).unwrap_or(Value::Null),
        verified_by,
        answered,
    });
    Response::builder()
        .status(StatusCode::from_u16(answered).unwrap())
        .body(Full::new(Bytes::from_static(b"ok")))
        .unwrap()
}
