//! `POST /v1/webhooks/{integration}`: the ingress.

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, Uri};
use axum::routing::post;
use axum::{Json, Router};
use serde::Serialize;

use super::AppState;
use super::error::{ApiError, ApiResult};
use crate::domain::Outcome;
use crate::ingest::{self, Delivery, IngestError};
use crate::store::Recorded;

pub fn router() -> Router<AppState> {
    Router::new().route("/v1/webhooks/{integration}", post(receive))
}

/// The answer to an accepted delivery.
#[derive(Debug, Serialize)]
pub struct DeliveryAnswer {
    pub delivery_id: String,
    pub outcome: Outcome,
    pub reason: Option<String>,
    pub subject: Option<SubjectView>,
}

/// The subscription or order a delivery reached.
#[derive(Debug, Serialize)]
pub struct SubjectView {
    pub kind: &'static str,
    pub id: String,
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

/// Receives one provider webhook. Answers 2xx only once the delivery and all
/// its effects are committed.
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
            state
                .metrics
                .delivery(integration_record.provider.as_str(), recorded.outcome.as_str());
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
