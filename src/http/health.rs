//! Liveness and readiness, for load balancers and orchestrators.

use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use serde::Serialize;
use utoipa::ToSchema;

use super::AppState;
use super::error::{ApiError, ApiResult, Problem};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
}

/// `/metrics`, outside the request measurement so scrapes do not measure themselves.
pub fn metrics_router() -> Router<AppState> {
    Router::new().route("/metrics", get(metrics))
}

/// The process's health.
#[derive(Debug, Serialize, ToSchema)]
pub struct Health {
    /// `ok` (liveness) or `ready` (readiness).
    #[schema(example = "ok")]
    pub status: &'static str,
}

/// Prometheus metrics.
///
/// The Prometheus text format (0.0.4), or OpenMetrics when `Accept` asks for
/// `application/openmetrics-text`: requests, deliveries by outcome, webhook
/// authentication failures, access checks, outbound messages by status and
/// attempts by result, the oldest pending message's age, open event streams.
#[utoipa::path(
    get,
    path = "/metrics",
    operation_id = "metrics",
    tag = "health",
    responses(
        (status = 200, description = "The metrics", content(
            (String = "text/plain; version=0.0.4; charset=utf-8"),
            (String = "application/openmetrics-text; version=1.0.0; charset=utf-8"),
        )),
    )
)]
async fn metrics(
    State(state): State<AppState>,
    headers: axum::http::HeaderMap,
) -> impl axum::response::IntoResponse {
    let (batches, deliveries) = state.store.group_commits();
    state.metrics.group_commits(batches, deliveries);
    // Without the database the gauges keep their last values; the scrape
    // still answers.
    match state.store.outbound_stats().await {
        Ok(stats) => state.metrics.outbound(&stats, crate::time_fmt::now()),
        Err(e) => tracing::warn!(error = %e, "metrics: could not count outbound messages"),
    }
    let openmetrics = headers
        .get_all(axum::http::header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|v| v.contains("application/openmetrics-text"));
    if openmetrics {
        (
            [(
                axum::http::header::CONTENT_TYPE,
                "application/openmetrics-text; version=1.0.0; charset=utf-8",
            )],
            state.metrics.render_openmetrics(),
        )
    } else {
        (
            [(
                axum::http::header::CONTENT_TYPE,
                "text/plain; version=0.0.4; charset=utf-8",
            )],
            state.metrics.render(),
        )
    }
}

/// Liveness.
///
/// The process is up.
#[utoipa::path(
    get,
    path = "/healthz",
    operation_id = "healthz",
    tag = "health",
    responses((status = 200, description = "`{\"status\": \"ok\"}`", body = Health)),
)]
async fn healthz() -> Json<Health> {
    Json(Health { status: "ok" })
}

/// Readiness.
///
/// The process can serve: storage answers. 503 otherwise.
#[utoipa::path(
    get,
    path = "/readyz",
    operation_id = "readyz",
    tag = "health",
    responses(
        (status = 200, description = "`{\"status\": \"ready\"}`", body = Health),
        (status = 503, description = "Storage does not answer, or this replica has not caught up with it", body = Problem, content_type = "application/problem+json"),
    )
)]
async fn readyz(State(state): State<AppState>) -> ApiResult<Json<Health>> {
    match state.store.ping().await {
        Ok(()) => {}
        Err(e @ crate::store::StoreError::NotReady) => return Err(e.into()),
        Err(e) => {
            tracing::warn!(error = %e, "not ready: storage does not answer");
            return Err(ApiError::Unavailable);
        }
    }
    Ok(Json(Health { status: "ready" }))
}
