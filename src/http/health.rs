//! Liveness and readiness, for load balancers and orchestrators.

use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{Value, json};

use super::AppState;
use super::error::{ApiError, ApiResult};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
}

/// `/metrics`, outside the request measurement so scrapes do not measure themselves.
pub fn metrics_router() -> Router<AppState> {
    Router::new().route("/metrics", get(metrics))
}

/// Prometheus text format.
async fn metrics(State(state): State<AppState>) -> impl axum::response::IntoResponse {
    (
        [(
            axum::http::header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        state.metrics.render(),
    )
}

/// The process is up.
async fn healthz() -> Json<Value> {
    Json(json!({"status": "ok"}))
}

/// The process can serve: storage answers. 503 otherwise.
async fn readyz(State(state): State<AppState>) -> ApiResult<Json<Value>> {
    if let Err(e) = state.store.ping().await {
        tracing::warn!(error = %e, "not ready: storage does not answer");
        return Err(ApiError::Unavailable);
    }
    Ok(Json(json!({"status": "ready"})))
}
