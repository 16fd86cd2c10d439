//! HTTP: one module per resource, each with its own `router()`, merged here.
//! Handlers are thin: parse and validate the request, call the library, shape
//! the answer.

mod access;
mod auth;
mod error;
mod extract;
mod health;
mod integrations;
mod orders;
mod pagination;
mod products;
mod subscriptions;
mod webhooks;

use std::sync::Arc;

use axum::Router;
use axum::extract::DefaultBodyLimit;

pub use error::{ApiError, Problem};

use crate::store::Store;

/// Largest JSON body the API (not the webhook ingress) accepts.
pub const JSON_BODY_LIMIT: usize = 64 * 1024;

/// What every handler can reach.
#[derive(Clone)]
pub struct AppState {
    pub store: Store,
    pub settings: Arc<Settings>,
}

/// Run-time settings the handlers need.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Largest webhook body accepted; larger is 413 with nothing stored.
    pub max_body_bytes: usize,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            max_body_bytes: 262_144,
        }
    }
}

/// The whole API, ready to serve (or to drive in tests with `oneshot`).
pub fn app(state: AppState) -> Router {
    Router::new()
        .merge(webhooks::router())
        .merge(access::router())
        .merge(integrations::router())
        .merge(orders::router())
        .merge(products::router())
        .merge(subscriptions::router())
        .merge(health::router())
        .fallback(|| async { ApiError::not_found("no such endpoint") })
        .layer(DefaultBodyLimit::max(JSON_BODY_LIMIT))
        .with_state(state)
}
