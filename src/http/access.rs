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
use crate::domain::access::{self, Reason, SourceKind};
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
    /// Seconds (0 to 60) to wait, when the customer is not entitled, for them
    /// to become entitled (a payment whose webhook has not arrived yet): the
    /// answer comes as soon as they are, or when the time is up.
    #[param(value_type = Option<i64>, minimum = 0, maximum = 60, example = 10)]
    wait: Option<String>,
}

/// The longest `wait` a check may ask for.
pub const MAX_WAIT_SECONDS: u64 = 60;

/// How often a waiting check looks again even when nothing was written: time
/// alone can open access (a grant that starts later).
const WAIT_TICK: std::time::Duration = std::time::Duration::from_secs(1);

fn wait_param(raw: Option<&str>) -> Result<std::time::Duration, ApiError> {
    match raw {
        None => Ok(std::time::Duration::ZERO),
        Some(raw) => match raw.parse::<u64>() {
            Ok(n) if n <= MAX_WAIT_SECONDS => Ok(std::time::Duration::from_secs(n)),
            _ => Err(ApiError::invalid(
                "wait",
                format!(
                    "`wait` must be a whole number of seconds from 0 to {MAX_WAIT_SECONDS}, not {raw:?}"
                ),
            )),
        },
    }
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
    Ok(given_at(raw)?.unwrap_or_else(time_fmt::now))
}

/// `at` when the request names one.
fn given_at(raw: Option<&str>) -> Result<Option<Instant>, ApiError> {
    raw.map(|raw| {
        time_fmt::parse_lenient(raw).ok_or_else(|| {
            ApiError::invalid("at", format!("`at`: {}", time_fmt::not_an_instant(raw)))
        })
    })
    .transpose()
}

/// Answers for one customer and product from that pair's entitlement rows.
pub fn answer(
    email: &Email,
    product: &ProductKey,
    rows: &[EntitlementRow],
    at: Instant,
) -> AccessAnswer {
    let decided = crate::store::Answer::of(rows, at);
    let weighed: Vec<_> = rows.iter().map(EntitlementRow::source).collect();
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
            .enumerate()
            .map(|(i, row)| (row, access::shown_window(&weighed, i)))
            .map(|(row, window)| SourceView {
                kind: row.state.kind().as_str(),
                id: row.source_id.clone(),
                state: row.state.as_str(),
                provider: row.provider.clone(),
                integration: row.integration.clone(),
                access_from: window.map(|w| w.from),
                access_until: window.and_then(|w| w.until),
                plan: row.plan.clone(),
            })
            .collect(),
    }
}

/// Check one customer's access to one product.
///
/// Is this email entitled to this product now (or at `at`)? Unknown customers
/// are simply not entitled (`no_entitlement`). With `wait`, a customer who is
/// not entitled yet is answered as soon as they are (on any replica: each
/// follows every write), or when the seconds are up.
#[utoipa::path(
    get,
    path = "/v1/access",
    operation_id = "check_access",
    tag = "access",
    params(AccessQuery),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The answer, with every source considered", body = AccessAnswer),
        (status = 400, description = "`email`, `product`, `at` or `wait` is missing or invalid", body = Problem, content_type = "application/problem+json"),
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
    let fixed_at = given_at(query.at.as_deref())?;
    let wait = wait_param(query.wait.as_deref())?;
    let deadline = tokio::time::Instant::now() + wait;
    let answer = loop {
        // Subscribed before reading, so a change between the two is not missed.
        let mut changed = state.store.read_model_changes();
        let rows = state.store.entitlement_rows(&email, Some(&product)).await?;
        let at = fixed_at.unwrap_or_else(time_fmt::now);
        let answer = answer(&email, &product, &rows, at);
        let now = tokio::time::Instant::now();
        if answer.entitled || now >= deadline {
            break answer;
        }
        let _ = tokio::time::timeout((deadline - now).min(WAIT_TICK), changed.changed()).await;
    };
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
