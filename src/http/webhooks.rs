//! `POST /v1/webhooks/{integration}`: the ingress.

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, Uri};
use axum::routing::post;
use axum::{Json, Router};
use serde::Serialize;
use utoipa::ToSchema;

use super::AppState;
use super::error::{ApiError, ApiResult, Problem};
use crate::domain::Outcome;
use crate::domain::access::SourceKind;
use crate::ingest::{self, Delivery, IngestError};
use crate::store::Recorded;

pub fn router() -> Router<AppState> {
    Router::new().route("/v1/webhooks/{integration}", post(receive))
}

/// The answer to an accepted delivery.
#[derive(Debug, Serialize, ToSchema)]
pub struct DeliveryAnswer {
    pub delivery_id: String,
    pub outcome: Outcome,
    /// Why, for outcomes other than `applied` (e.g. both states of a rejected transition).
    #[schema(required = true)]
    pub reason: Option<String>,
    #[schema(required = true)]
    pub subject: Option<SubjectView>,
}

/// The subscription or order a delivery reached.
#[derive(Debug, Serialize, ToSchema)]
pub struct SubjectView {
    /// `subscription` or `order`.
    #[schema(value_type = SourceKind)]
    pub kind: &'static str,
    pub id: String,
    /// Its state after this delivery.
    pub state: String,
}

impl From<Recorded> for DeliveryAnswer {
    fn from(r: Recorded) -> Self {
        Self {
            delivery_id: r.delivery_id,
            outcome: r.outcome,
            reason: r.reason,
            subject: r.subject.map(|s| SubjectView {
                kind: s.kind.as_str(),
                id: s.id,
                state: s.state,
            }),
        }
    }
}

/// Receive a provider webhook.
///
/// Receives one provider webhook. Answers 2xx only once the delivery and all
/// its effects are committed. Every authenticated delivery gets exactly one
/// outcome, stored and returned; only `malformed` (400) and storage faults
/// (503) answer non-2xx, so that providers retry only what a retry can fix.
///
/// Authentication is the provider's, not a bearer token:
///
/// - zenofy: header `X-Webhook-Secret` equals the secret, or query `token` does;
/// - zid: query `token` equals the secret, or HTTP Basic auth whose password does;
/// - zenobank: a Standard Webhooks signature (`webhook-*` or `svix-*` headers)
///   made with the `whsec_` secret, timestamp within 5 minutes;
/// - zaypay: query `token` equals the secret.
#[utoipa::path(
    post,
    path = "/v1/webhooks/{integration}",
    operation_id = "receive_webhook",
    tag = "webhooks",
    params(
        ("integration" = String, Path, description = "The integration's id"),
        ("token" = Option<String>, Query, description = "The integration's secret (zenofy, zid, zaypay)"),
        ("X-Webhook-Secret" = Option<String>, Header, nullable = false, description = "The integration's secret (zenofy)"),
    ),
    request_body(
        content = Object,
        content_type = "application/json",
        description = "The provider's payload, as it sends it; at most `ENTITLED_MAX_BODY_BYTES` (default 262144)"
    ),
    responses(
        (status = 200, description = "Stored and applied; the outcome says what it did", body = DeliveryAnswer),
        (status = 400, description = "Authenticated but `malformed`: stored, and the problem carries `delivery_id` and `outcome`", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Authentication failed; nothing stored", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "Unknown or disabled integration", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "The body is larger than `ENTITLED_MAX_BODY_BYTES`; nothing stored", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "Storage is unavailable; retry", body = Problem, content_type = "application/problem+json"),
    )
)]
async fn receive(
    State(state): State<AppState>,
    Path(integration): Path<String>,
    uri: Uri,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<Json<DeliveryAnswer>> {
    let limit = state.settings.max_body_bytes;
    let body = axum::body::to_bytes(body, limit)
        .await
        .map_err(|_| ApiError::TooLarge { limit })?;
    let delivery = Delivery {
        integration: &integration,
        headers: &headers,
        query: uri.query(),
        body: &body,
        received_at: crate::time_fmt::now(),
    };
    match ingest::receive(&state.store, delivery).await {
        Ok((integration_record, recorded)) => {
            state.metrics.delivery(
                integration_record.provider.as_str(),
                recorded.outcome.as_str(),
            );
            tracing::info!(
                integration,
                delivery_id = recorded.delivery_id,
                outcome = recorded.outcome.as_str(),
                "webhook delivery"
            );
            Ok(Json(recorded.into()))
        }
        Err(IngestError::UnknownIntegration(_)) => Err(ApiError::not_found(format!(
            "no enabled integration {integration:?}"
        ))),
        Err(IngestError::Unauthenticated { provider }) => {
            state.metrics.auth_failure(provider.as_str());
            tracing::warn!(
                integration,
                provider = provider.as_str(),
                "webhook authentication failed"
            );
            Err(ApiError::WebhookUnauthorized)
        }
        Err(IngestError::Malformed {
            provider,
            recorded,
            field,
            detail,
        }) => {
            state
                .metrics
                .delivery(provider.as_str(), Outcome::Malformed.as_str());
            tracing::info!(
                integration,
                delivery_id = recorded.delivery_id,
                "malformed webhook delivery"
            );
            Err(ApiError::Malformed {
                field,
                detail,
                delivery_id: recorded.delivery_id,
            })
        }
        Err(IngestError::Store(e)) => Err(e.into()),
    }
}
