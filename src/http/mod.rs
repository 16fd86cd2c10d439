//! HTTP: one module per resource, each with its own `router()`, merged here.
//! Handlers are thin: parse and validate the request, call the library, shape
//! the answer.

mod access;
mod auth;
mod changes;
mod console;
mod customers;
mod deliveries;
mod endpoints;
mod entitlement_tokens;
mod error;
mod events;
mod extract;
mod grants;
mod guard;
mod health;
mod integrations;
mod links;
pub mod openapi;
mod orders;
mod pagination;
mod products;
pub mod rebuild;
mod rules;
mod subscriptions;
mod tokens;
mod webhooks;

use std::sync::Arc;

use axum::Router;
use axum::extract::{DefaultBodyLimit, MatchedPath, Request, State};
use axum::http::HeaderValue;
use axum::middleware::Next;
use axum::response::Response;
use tracing::Instrument;

pub use changes::ChangeView;
pub use error::{ApiError, Problem};
pub use guard::RequestStarted;

use crate::metrics::Metrics;
use crate::store::Store;

/// Largest JSON body the API (not the webhook ingress) accepts.
pub const JSON_BODY_LIMIT: usize = 64 * 1024;

/// What every handler can reach, behind one `Arc`: the middleware and the
/// handler of every request clone it, and one reference count is cheaper to
/// share between cores than one per field.
#[derive(Clone)]
pub struct AppState(Arc<Shared>);

/// The fields of [`AppState`].
pub struct Shared {
    pub store: Store,
    pub settings: Settings,
    pub metrics: Arc<Metrics>,
    /// Sends outbound webhooks: `test` and `resend` here, the due messages in
    /// the loop `serve` runs.
    pub sender: Arc<crate::outbound::Sender>,
    /// Set when the service shuts down: event streams end, so in-flight
    /// requests can finish.
    pub stopping: tokio::sync::watch::Sender<bool>,
}

impl std::ops::Deref for AppState {
    type Target = Shared;

    fn deref(&self) -> &Shared {
        &self.0
    }
}

impl AppState {
    pub fn new(store: Store, settings: Settings) -> Self {
        let metrics = Arc::new(Metrics::new());
        let sender = Arc::new(crate::outbound::Sender::new(
            store.clone(),
            settings.retry_schedule.clone(),
            metrics.clone(),
        ));
        Self(Arc::new(Shared {
            store,
            settings,
            metrics,
            sender,
            stopping: tokio::sync::watch::Sender::new(false),
        }))
    }

    /// Ends every event stream (at shutdown).
    pub fn stop_streams(&self) {
        self.stopping.send_replace(true);
    }
}

/// Run-time settings the handlers need.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Largest webhook body accepted; larger is 413 with nothing stored.
    pub max_body_bytes: usize,
    /// Seconds before each retry of an outbound message.
    pub retry_schedule: Vec<u32>,
    /// `ENTITLED_PUBLIC_URL`, when set: the console's origin (its forms must
    /// come from it) and, when https, its cookie is `Secure`. Unset, the
    /// origin is `http://` and the request's `Host`.
    pub public_url: Option<String>,
    /// The entitlement tokens' `iss`: `ENTITLED_PUBLIC_URL`, else `http://`
    /// and the listen address.
    pub issuer: String,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            max_body_bytes: 262_144,
            retry_schedule: crate::outbound::DEFAULT_SCHEDULE.to_vec(),
            public_url: None,
            issuer: "http://127.0.0.1:8080".to_owned(),
        }
    }
}

/// The whole API, ready to serve (or to drive in tests with `oneshot`).
pub fn app(state: AppState) -> Router {
    Router::new()
        .merge(webhooks::router())
        .merge(access::router())
        .merge(entitlement_tokens::router())
        .merge(integrations::router())
        .merge(orders::router())
        .merge(products::router())
        .merge(rebuild::router())
        .merge(subscriptions::router())
        .merge(deliveries::router())
        .merge(grants::router())
        .merge(tokens::router())
        .merge(customers::router())
        .merge(changes::router())
        .merge(endpoints::router())
        .merge(events::router())
        .merge(console::router())
        .merge(health::router())
        .merge(health::metrics_router())
        .merge(openapi::router())
        .route_layer(axum::middleware::from_fn(remember_route))
        .route_layer(axum::middleware::from_fn(guard::path_params))
        .fallback(|| async { ApiError::not_found("no such endpoint") })
        .layer(tower_http::catch_panic::CatchPanicLayer::custom(
            guard::panic_response,
        ))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            guard::limits,
        ))
        .layer(axum::middleware::from_fn_with_state(state.clone(), observe))
        .layer(DefaultBodyLimit::max(JSON_BODY_LIMIT))
        .with_state(state)
}

/// Hands the matched route template out to [`observe`], which runs before
/// routing and so cannot see it on the request.
async fn remember_route(matched: MatchedPath, request: Request, next: Next) -> Response {
    let mut response = next.run(request).await;
    response.extensions_mut().insert(matched);
    response
}

/// One log line and one latency observation per request, under a request id
/// (the caller's `x-request-id`, or a new one) echoed in the response. Only the
/// route template is logged: never the query string, which may carry a token.
async fn observe(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let started = std::time::Instant::now();
    let method = request.method().clone();
    let request_id = request
        .headers()
        .get(REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty() && v.len() <= 128 && v.bytes().all(|b| b.is_ascii_graphic()))
        .map_or_else(request_id, str::to_owned);
    let span = tracing::info_span!("request", request_id = %request_id);
    let mut response = next.run(request).instrument(span.clone()).await;
    let elapsed = started.elapsed();
    let status = response.status().as_u16();
    let route = response
        .extensions()
        .get::<MatchedPath>()
        .map_or("unmatched", MatchedPath::as_str);
    state
        .metrics
        .request(method.as_str(), route, status, elapsed.as_secs_f64());
    span.in_scope(|| {
        tracing::info!(
            method = %method,
            route,
            status,
            latency_ms = elapsed.as_secs_f64() * 1000.0,
            "request"
        );
    });
    if let Ok(value) = HeaderValue::from_str(&request_id) {
        response.headers_mut().insert(REQUEST_ID, value);
    }
    response
}

/// A new request id: a UUIDv7 whose random part is this process's random
/// bytes mixed with a counter, so ids are unique without a system call each.
fn request_id() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static PROCESS: std::sync::OnceLock<[u8; 10]> = std::sync::OnceLock::new();
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let mut bytes = *PROCESS.get_or_init(|| {
        let mut bytes = [0; 10];
        // Without the OS's random bytes, the counter alone still keeps ids apart.
        let _ = getrandom::fill(&mut bytes);
        bytes
    });
    let count = COUNTER.fetch_add(1, Ordering::Relaxed).to_be_bytes();
    for (byte, c) in bytes[2..].iter_mut().zip(count) {
        *byte ^= c;
    }
    let millis = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64);
    uuid::Builder::from_unix_timestamp_millis(millis, &bytes)
        .into_uuid()
        .to_string()
}

/// The header that carries a request's id.
const REQUEST_ID: &str = "x-request-id";
