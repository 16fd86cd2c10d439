//! The questions a SaaS backend asks: `GET /v1/access` and
//! `GET /v1/customers/{email}/entitlements`.

use axum::extract::{Path, State};
use axum::routing::get;
use axum::{Json, Router};
use serde::{Deserialize, Serialize};

use super::AppState;
use super::auth::App;
use super::error::{ApiError, ApiResult};
use super::extract::Params;
use crate::domain::access::{self, Reason};
use crate::domain::{Email, Instant, ProductKey};
use crate::store::EntitlementRow;
use crate::time_fmt::{self, serde_rfc3339};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/access", get(check))
        .route("/v1/customers/{email}/entitlements", get(entitlements))
}

#[derive(Debug, Deserialize)]
struct AccessQuery {
    email: Option<String>,
    product: Option<String>,
    at: Option<String>,
}

#[derive(Debug, Deserialize)]
struct AtQuery {
    at: Option<String>,
}

/// Whether one customer is entitled to one product at one instant, and why.
#[derive(Debug, Serialize)]
pub struct AccessAnswer {
    pub email: Email,
    pub product: ProductKey,
    pub entitled: bool,
    pub reason: Reason,
    #[serde(with = "serde_rfc3339::option")]
    pub valid_until: Option<Instant>,
    pub plan: Option<String>,
    #[serde(with = "serde_rfc3339")]
    pub at: Instant,
    pub sources: Vec<SourceView>,
}

/// One source the answer considered.
#[derive(Debug, Serialize)]
pub struct SourceView {
    pub kind: &'static str,
    pub id: String,
    pub state: &'static str,
    pub provider: Option<String>,
    pub integration: Option<String>,
    #[serde(with = "serde_rfc3339::option")]
    pub access_from: Option<Instant>,
    #[serde(with = "serde_rfc3339::option")]
    pub access_until: Option<Instant>,
    pub plan: Option<String>,
}

/// Every product a customer has any source for, each answered at one instant.
#[derive(Debug, Serialize)]
pub struct EntitlementsAnswer {
    pub email: Email,
    #[serde(with = "serde_rfc3339")]
    pub at: Instant,
    pub items: Vec<AccessAnswer>,
}

fn email_param(raw: Option<&str>) -> Result<Email, ApiError> {
    let raw = raw.ok_or_else(|| ApiError::invalid("email", "`email` is required"))?;
    Email::parse(raw).map_err(|e| ApiError::invalid("email", format!("`email`: {e}")))
}

fn at_param(raw: Option<&str>) -> Result<Instant, ApiError> {
    match raw {
        None => Ok(time_fmt::now()),
        Some(raw) => time_fmt::parse_lenient(raw).ok_or_else(|| {
            ApiError::invalid(
                "at",
                format!(
                    "`at` must be an RFC 3339 date-time such as 2026-05-01T08:30:00Z, not {raw:?}"
                ),
            )
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
    let sources: Vec<_> = rows.iter().map(EntitlementRow::source).collect();
    let decision = access::decide(&sources, at);
    let plan = decision
        .source
        .filter(|_| decision.entitled)
        .and_then(|i| rows[i].plan.clone());
    AccessAnswer {
        email: email.clone(),
        product: product.clone(),
        entitled: decision.entitled,
        reason: decision.reason,
        valid_until: decision.valid_until,
        plan,
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

/// Is this email entitled to this product now (or at `at`)? Unknown customers
/// are simply not entitled (`no_entitlement`).
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
        .and_then(|raw| {
            ProductKey::parse(raw)
                .map_err(|e| ApiError::invalid("product", format!("`product`: {e}")))
        })?;
    let at = at_param(query.at.as_deref())?;
    let rows = state.store.entitlement_rows(&email, Some(&product)).await?;
    let answer = answer(&email, &product, &rows, at);
    state.metrics.access_check(answer.entitled, answer.reason.as_str());
    Ok(Json(answer))
}

/// One access answer per product the customer has any source for.
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
