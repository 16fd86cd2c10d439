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
/// The Prometheus text format (0.0.4), or OpenMetrics when `Accept` prefers
/// `application/openmetrics-text` (as Prometheus asks): requests, deliveries
/// by outcome, webhook authentication failures, access checks, outbound
/// messages by status and attempts by result, the oldest pending message's
/// age, open event streams.
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
    if wants_openmetrics(&headers) {
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

/// Whether a scrape asks for OpenMetrics rather than the text format:
/// `Accept` names `application/openmetrics-text` (media types are
/// case-insensitive) with a `q` above 0 and no lower than the text format's
/// (`text/plain`, `text/*` or `*/*`). Anything else, no `Accept` included,
/// gets the text format.
fn wants_openmetrics(headers: &axum::http::HeaderMap) -> bool {
    let (mut openmetrics, mut text) = (0.0_f32, 0.0_f32);
    let ranges = headers
        .get_all(axum::http::header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','));
    for range in ranges {
        let mut parts = range.split(';');
        let media = parts.next().unwrap_or_default().trim().to_ascii_lowercase();
        let q = parts
            .filter_map(|p| p.split_once('='))
            .find(|(name, _)| name.trim().eq_ignore_ascii_case("q"))
            .map_or(Some(1.0), |(_, q)| q.trim().parse::<f32>().ok())
            .filter(|q| (0.0..=1.0).contains(q))
            .unwrap_or(0.0);
        match media.as_str() {
            "application/openmetrics-text" => openmetrics = openmetrics.max(q),
            "text/plain" | "text/*" | "*/*" => text = text.max(q),
            _ => {}
        }
    }
    openmetrics > 0.0 && openmetrics >= text
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

#[cfg(test)]
mod tests {
    use super::wants_openmetrics;
    use axum::http::{HeaderMap, HeaderValue, header};

    #[test]
    fn openmetrics_is_served_when_accept_prefers_it_and_text_otherwise() {
        for (accept, openmetrics) in [
            (None, false),
            (Some("*/*"), false),
            (Some("text/plain"), false),
            (Some("application/openmetrics-text"), true),
            (Some("Application/OpenMetrics-Text; version=1.0.0"), true),
            // What Prometheus sends.
            (
                Some(
                    "application/openmetrics-text;version=1.0.0;escaping=allow-utf-8,\
                     application/openmetrics-text;version=0.0.1;q=0.75,\
                     text/plain;version=0.0.4;q=0.5,*/*;q=0.1",
                ),
                true,
            ),
            (
                Some("text/plain;version=0.0.4, application/openmetrics-text;q=0.5"),
                false,
            ),
            (Some("application/openmetrics-text;q=0, text/plain"), false),
            (Some("application/openmetrics-text;q=0"), false),
            (Some("application/openmetrics-text;q=x"), false),
            (Some("text/html, application/openmetrics-text"), true),
        ] {
            let mut headers = HeaderMap::new();
            if let Some(accept) = accept {
                headers.insert(header::ACCEPT, HeaderValue::from_str(accept).unwrap());
            }
            assert_eq!(wants_openmetrics(&headers), openmetrics, "{accept:?}");
        }
    }
}
