//! `POST /v1/admin/rebuild`: every source derived again from what is stored,
//! and the difference shown (`dry_run`) or written. See `crate::rebuild`.

use axum::extract::State;
use axum::routing::post;
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::AppState;
use super::auth::Admin;
use super::changes::AnswerView;
use super::error::{ApiError, ApiResult, Problem};
use super::extract::Body;
use crate::domain::access::SourceKind;
use crate::domain::{Email, Instant, ProductKey};
use crate::rebuild::{AccessChange, Counts, RebuildError, Report, SourceChange};
use crate::store::{ImageFacts, RowFacts};
use crate::time_fmt::serde_rfc3339;

pub fn router() -> Router<AppState> {
    Router::new().route("/v1/admin/rebuild", post(rebuild))
}

/// What to do.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct RebuildBody {
    /// `true`: answer the difference only, write nothing. `false` (the
    /// default): write the difference.
    #[serde(default)]
    dry_run: bool,
}

/// One entitlement row of a source, as a rebuild compares it.
#[derive(Debug, Serialize, ToSchema)]
pub struct RowFactsView {
    #[schema(value_type = String, format = Email)]
    pub email: Email,
    #[schema(value_type = String)]
    pub product: ProductKey,
    pub state: &'static str,
    #[schema(required = true)]
    pub plan: Option<String>,
    /// Whether the row grants access at some time, and when.
    pub grants: bool,
    #[serde(with = "serde_rfc3339::option")]
    #[schema(value_type = Option<String>, format = DateTime, required = true)]
    pub access_from: Option<Instant>,
    #[serde(with = "serde_rfc3339::option")]
    #[schema(value_type = Option<String>, format = DateTime, required = true)]
    pub access_until: Option<Instant>,
    #[serde(with = "serde_rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub changed_at: Instant,
}

impl From<RowFacts> for RowFactsView {
    fn from(r: RowFacts) -> Self {
        Self {
            email: r.email,
            product: r.product,
            state: r.state.as_str(),
            plan: r.plan,
            grants: r.window.is_some(),
            access_from: r.window.map(|w| w.from),
            access_until: r.window.and_then(|w| w.until),
            changed_at: r.changed_at,
        }
    }
}

/// A source's state and rows, as a rebuild compares them.
#[derive(Debug, Serialize, ToSchema)]
pub struct SourceFactsView {
    /// The subscription's or order's state; a grant's is `active` or `revoked`.
    pub state: &'static str,
    #[schema(value_type = String, format = Email)]
    pub email: Email,
    #[schema(value_type = Vec<String>)]
    pub products: Vec<ProductKey>,
    #[schema(required = true)]
    pub plan: Option<String>,
    #[serde(with = "serde_rfc3339::option")]
    #[schema(value_type = Option<String>, format = DateTime, required = true)]
    pub current_period_start: Option<Instant>,
    /// A subscription's period end; a grant's `valid_until`.
    #[serde(with = "serde_rfc3339::option")]
    #[schema(value_type = Option<String>, format = DateTime, required = true)]
    pub current_period_end: Option<Instant>,
    /// A subscription's `access_from`, an order's `paid_at`, a grant's `valid_from`.
    #[serde(with = "serde_rfc3339::option")]
    #[schema(value_type = Option<String>, format = DateTime, required = true)]
    pub since: Option<Instant>,
    pub entitlements: Vec<RowFactsView>,
}

impl From<ImageFacts> for SourceFactsView {
    fn from(f: ImageFacts) -> Self {
        Self {
            state: f.state.as_str(),
            email: f.email,
            products: f.products,
            plan: f.plan,
            current_period_start: f.period_start,
            current_period_end: f.period_end,
            since: f.since,
            entitlements: f.rows.into_iter().map(Into::into).collect(),
        }
    }
}

/// A source whose state or rows differ from what its deliveries derive.
#[derive(Debug, Serialize, ToSchema)]
pub struct SourceChangeView {
    pub kind: SourceKind,
    pub id: String,
    /// What is stored now; `null`: the source does not exist but derives.
    #[schema(required = true)]
    pub before: Option<SourceFactsView>,
    /// What derives; `null`: nothing stored derives the source.
    #[schema(required = true)]
    pub after: Option<SourceFactsView>,
}

impl From<SourceChange> for SourceChangeView {
    fn from(c: SourceChange) -> Self {
        Self {
            kind: c.kind,
            id: c.id,
            before: c.before.map(Into::into),
            after: c.after.map(Into::into),
        }
    }
}

/// A customer and product whose answer now would change.
#[derive(Debug, Serialize, ToSchema)]
pub struct AccessChangeView {
    #[schema(value_type = String, format = Email)]
    pub email: Email,
    #[schema(value_type = String)]
    pub product: ProductKey,
    pub before: AnswerView,
    pub after: AnswerView,
}

impl From<AccessChange> for AccessChangeView {
    fn from(c: AccessChange) -> Self {
        Self {
            email: c.email,
            product: c.product,
            before: c.before.into(),
            after: c.after.into(),
        }
    }
}

/// A rebuild's answer.
#[derive(Debug, Serialize, ToSchema)]
pub struct RebuildView {
    pub dry_run: bool,
    /// Whether the difference was written (never on a dry run; not when
    /// there was none).
    pub applied: bool,
    /// At most 1000 listed.
    pub sources_changed: Vec<SourceChangeView>,
    /// At most 1000 listed.
    pub access_changed: Vec<AccessChangeView>,
    pub counts: Counts,
}

impl From<Report> for RebuildView {
    fn from(r: Report) -> Self {
        Self {
            dry_run: r.dry_run,
            applied: r.applied,
            sources_changed: r.sources_changed.into_iter().map(Into::into).collect(),
            access_changed: r.access_changed.into_iter().map(Into::into).collect(),
            counts: r.counts,
        }
    }
}

impl From<RebuildError> for ApiError {
    fn from(e: RebuildError) -> Self {
        match e {
            RebuildError::Busy => ApiError::Conflict(e.to_string()),
            RebuildError::Store(e) => e.into(),
            RebuildError::Scratch { .. } => {
                tracing::error!(error = %e, "rebuild: no scratch store");
                ApiError::Unavailable
            }
        }
    }
}

/// Rebuild every source from the stored deliveries.
///
/// Derives every subscription's and order's state again from what is stored
/// (deliveries in arrival order through the current adapters and product
/// maps, with registrations, replays, grants and the clock at the instants
/// they were recorded, then the clock at now), in a scratch store, and
/// compares it with what is stored. With `dry_run` the difference is the
/// answer and nothing changes; without, it is written in one transaction,
/// each access change appended to the change log with cause `rebuild`. A
/// database nothing touched by hand has no difference. 409 while another
/// rebuild runs, or when a source changed while it was compared.
#[utoipa::path(
    post,
    path = "/v1/admin/rebuild",
    operation_id = "rebuild",
    tag = "rebuild",
    request_body = RebuildBody,
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The difference, and whether it was written", body = RebuildView),
        (status = 400, description = "A field is invalid", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Missing or unknown bearer token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "The token's scope is not `admin`", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "Another rebuild is running, or a source changed under this one", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "The body is larger than 64 KiB", body = Problem, content_type = "application/problem+json"),
    )
)]
async fn rebuild(
    State(state): State<AppState>,
    _admin: Admin,
    Body(body): Body<RebuildBody>,
) -> ApiResult<Json<RebuildView>> {
    // A task of its own: a client that hangs up does not stop a rebuild
    // halfway (the difference is written in one transaction either way).
    let store = state.store.clone();
    let report =
        tokio::spawn(async move { crate::rebuild::rebuild(&store, body.dry_run, &|_| {}).await })
            .await
            .map_err(|e| {
                tracing::error!(error = %e, "rebuild: the task failed");
                ApiError::Panicked
            })??;
    Ok(Json(report.into()))
}
