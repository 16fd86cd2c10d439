//! The questions a SaaS backend asks: `GET /v1/access` and
//! `GET /v1/customers/{email}/entitlements`.

use axum::extract::{Path, State};
use axum::routing::get;
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::AppState;
use super::auth::App;
use super::error::{ApiError, ApiResult, Problem, field};
use super::extract::Params;
use crate::domain::access::{Reason, SourceKind};
use crate::domain::{Email, Instant, ProductKey};
use crate::store::EntitlementRow;
use crate::time_fmt::{self, serde_rfc3339};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/access", get(check))
        .route("/v1/customers/{email}/entitlements", get(entitlements))
}

/// Whom and what to check, and when.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct AccessQuery {
    /// The customer's email (compared trimmed and lower-cased).
    #[param(required = true, value_type = String, format = Email, example = "ada@example.com")]
    email: Option<String>,
    /// The product key, e.g. `pro`.
    #[param(required = true, value_type = String, example = "pro")]
    product: Option<String>,
    /// The instant to answer for (RFC 3339); now when omitted.
    #[param(value_type = Option<String>, format = DateTime, example = "2026-05-01T08:30:00Z")]
    at: Option<String>,
}

/// When to answer.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct AtQuery {
    /// The instant to answer for (RFC 3339); now when omitted.
    #[param(value_type = Option<String>, format = DateTime, example = "2026-05-01T08:30:00Z")]
    at: Option<String>,
}

/// Whether one customer is entitled to one product at one instant, and why.
#[derive(Debug, Serialize, ToSchema)]
pub struct AccessAnswer {
    #[schema(value_type = String, format = Email)]
    pub email: Email,
    #[schema(value_type = String)]
    pub product: ProductKey,
    pub entitled: bool,
    pub reason: Reason,
    /// When the access ends, if it is granted and not for ever.
    #[serde(with = "serde_rfc3339::option")]
    #[schema(value_type = Option<String>, format = DateTime, required = true)]
    pub valid_until: Option<Instant>,
    /// The plan of the source that grants access, if it names one.
    #[schema(required = true)]
    pub plan: Option<String>,
    /// The instant answered for.
    #[serde(with = "serde_rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub at: Instant,
    pub sources: Vec<SourceView>,
}

/// One source the answer considered.
#[derive(Debug, Serialize, ToSchema)]
pub struct SourceView {
    #[schema(value_type = SourceKind)]
    pub kind: &'static str,
    /// The subscription, order or grant.
    pub id: String,
    /// The source's state (a subscription's, an order's, or a grant's `active`/`revoked`).
    pub state: &'static str,
    #[schema(required = true)]
    pub provider: Option<String>,
    #[schema(required = true)]
    pub integration: Option<String>,
    #[serde(with = "serde_rfc3339::option")]
    #[schema(value_type = Option<String>, format = DateTime, required = true)]
    pub access_from: Option<Instant>,
    #[serde(with = "serde_rfc3339::option")]
    #[schema(value_type = Option<String>, format = DateTime, required = true)]
    pub access_until: Option<Instant>,
    #[schema(required = true)]
    pub plan: Option<String>,
}

/// Every product a customer has any source for, each answered at one instant.
#[derive(Debug, Serialize, ToSchema)]
pub struct EntitlementsAnswer {
    #[schema(value_type = String, format = Email)]
    pub email: Email,
    #[serde(with = "serde_rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub at: Instant,
    pub items: Vec<AccessAnswer>,
}

fn email_param(raw: Option<&str>) -> Result<Email, ApiError> {
    let raw = raw.ok_or_else(|| ApiError::invalid("email", "`email` is required"))?;
    field("email", raw, Email::parse)
}

fn at_param(raw: Option<&str>) -> Result<Instant, ApiError> {
    match raw {
        None => Ok(time_fmt::now()),
        Some(raw) => time_fmt::parse_lenient(raw).ok_or_else(|| {
            ApiError::invalid("at", format!("`at`: {}", time_fmt::not_an_instant(raw)))
        }),
    }
}

/// Answers for one customer and product from that pair's entitlement rows.
pub fn answer(
    email: &Email,
    product: &ProductKey,
    rows: &[EntitlementRow],
    at: Instant,
) -> AccessAnswer {
    let decided = crate::store::Answer::of(rows, at);
    AccessAnswer {
        email: email.clone(),
        product: product.clone(),
        entitled: decided.entitled,
        reason: decided.reason,
        valid_until: decided.valid_until,
        plan: decided.plan,
        at,
        sources: rows
            .iter()
            .map(|row| SourceView {
                kind: row.state.kind().as_str(),
                id: row.source_id.clone(),
                state: row.state.as_str(),
                provider: row.provider.clone(),
                integration: row.integration.clone(),
                access_from: row.window.map(|w| w.from),
                access_until: row.window.and_then(|w| w.until),
                plan: row.plan.clone(),
            })
            .collect(),
    }
}

/// Check one customer's access to one product.
///
/// Is this email entitled to this product now (or at `at`)? Unknown customers
/// are simply not entitled (`no_entitlement`).
#[utoipa::path(
    get,
    path = "/v1/access",
    operation_id = "check_access",
    tag = "access",
    params(AccessQuery),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The answer, with every source considered", body = AccessAnswer),
        (status = 400, description = "`email`, `product` or `at` is missing or invalid", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Missing or unknown bearer token", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "This replica is still loading its read model (see `/readyz`)", body = Problem, content_type = "application/problem+json"),
    )
)]
async fn check(
    State(state): State<AppState>,
    _caller: App,
    Params(query): Params<AccessQuery>,
) -> ApiResult<Json<AccessAnswer>> {
    let email = email_param(query.email.as_deref())?;
    let product = query
        .product
        .as_deref()
        .ok_or_else(|| ApiError::invalid("product", "`product` is required"))
        .and_then(|raw| field("product", raw, ProductKey::parse))?;
    let at = at_param(query.at.as_deref())?;
    let rows = state.store.entitlement_rows(&email, Some(&product)).await?;
    let answer = answer(&email, &product, &rows, at);
    state.metrics.access_check(answer.reason);
    Ok(Json(answer))
}

/// List one customer's entitlements.
///
/// One access answer per product the customer has any source for, at `at`
/// (default now). Unknown customers have none.
#[utoipa::path(
    get,
    path = "/v1/customers/{email}/entitlements",
    operation_id = "customer_entitlements",
    tag = "access",
    params(
        ("email" = String, Path, description = "The customer's email", format = Email),
        AtQuery,
    ),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "One access answer per product", body = EntitlementsAnswer),
        (status = 400, description = "`email` or `at` is invalid", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Missing or unknown bearer token", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "This replica is still loading its read model (see `/readyz`)", body = Problem, content_type = "application/problem+json"),
    )
)]
async fn entitlements(
    State(state): State<AppState>,
    _caller: App,
    Path(email): Path<String>,
    Params(query): Params<AtQuery>,
) -> ApiResult<Json<EntitlementsAnswer>> {
    let email = email_param(Some(&email))?;
    let at = at_param(query.at.as_deref())?;
    let rows = state.store.entitlement_rows(&email, None).await?;
    Ok(Json(EntitlementsAnswer {
        items: by_product(&rows)
            .into_iter()
            .map(|(product, rows)| answer(&email, product, rows, at))
            .collect(),
        email,
        at,
    }))
}

/// Splits rows (ordered by product) into one slice per product.
pub fn by_product(rows: &[EntitlementRow]) -> Vec<(&ProductKey, &[EntitlementRow])> {
    rows.chunk_by(|a, b| a.product == b.product)
        .map(|chunk| (&chunk[0].product, chunk))
        .collect()
}
