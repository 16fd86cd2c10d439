//! `GET /v1/admin/changes`: the change log, oldest first.

use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use serde::Deserialize;
use utoipa::IntoParams;

use super::AppState;
use super::auth::Admin;
use super::error::{ApiError, ApiResult, Problem, opt_field};
use super::extract::Params;
use super::pagination::{self, Page};
use crate::domain::{Email, ProductKey};
use crate::store::ChangeFilter;
pub use crate::wire::{AnswerView, ChangeView};

pub fn router() -> Router<AppState> {
    Router::new().route("/v1/admin/changes", get(list))
}

/// Which changes to list.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct ListQuery {
    /// Only this customer's changes.
    #[param(format = Email)]
    email: Option<String>,
    /// Only this product's changes.
    product: Option<String>,
    /// Only changes after this sequence (exclusive; default 0: from the oldest kept).
    #[param(value_type = Option<i64>, minimum = 0, maximum = 999_999_999_999_999_999_i64)]
    since: Option<String>,
    /// Page size, 1 to 500 (default 50).
    #[param(value_type = Option<i64>, minimum = 1, maximum = 500)]
    limit: Option<String>,
    /// The previous page's `next_cursor` (which takes the place of `since`).
    cursor: Option<String>,
}

/// List the change log.
///
/// Every change of what `GET /v1/access` answers for one customer and product,
/// oldest first, each appended in the transaction that caused it. Sequences
/// increase in commit order with no gaps: reading on from the last sequence
/// seen (`since`, or `next_cursor`) never misses one.
#[utoipa::path(
    get,
    path = "/v1/admin/changes",
    operation_id = "list_changes",
    tag = "changes",
    params(ListQuery),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "A page of changes, oldest first", body = Page<ChangeView>),
        (status = 400, description = "A filter, `since`, `limit` or `cursor` is invalid", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Missing or unknown bearer token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "The token's scope is not `admin`", body = Problem, content_type = "application/problem+json"),
    )
)]
async fn list(
    State(state): State<AppState>,
    _admin: Admin,
    Params(query): Params<ListQuery>,
) -> ApiResult<Json<Page<ChangeView>>> {
    let limit = pagination::limit(query.limit.as_deref())?;
    let email = opt_field("email", query.email.as_deref(), Email::parse)?;
    let product = opt_field("product", query.product.as_deref(), ProductKey::parse)?;
    // `since` is checked even when a cursor takes its place.
    let since = query
        .since
        .as_deref()
        .map(|raw| sequence("since", raw))
        .transpose()?;
    let since = match pagination::cursor(query.cursor.as_deref())? {
        Some(key) => sequence("cursor", &key)?,
        None => since.unwrap_or(0),
    };
    let rows = state
        .store
        .changes(&ChangeFilter {
            email: email.as_ref().map(Email::as_str),
            product: product.as_ref().map(ProductKey::as_str),
            since,
            limit: limit + 1,
        })
        .await?;
    Ok(Json(pagination::page(
        rows,
        limit,
        |c| c.sequence.to_string(),
        Into::into,
    )))
}

/// The largest sequence number a request may name (18 digits).
const MAX_SEQUENCE: i64 = 999_999_999_999_999_999;

/// A sequence number: an integer from 0 to [`MAX_SEQUENCE`].
pub(super) fn sequence(name: &str, raw: &str) -> Result<i64, ApiError> {
    let in_range = |n: &i64| (0..=MAX_SEQUENCE).contains(n);
    raw.parse::<i64>().ok().filter(in_range).ok_or_else(|| {
        ApiError::invalid(
            name,
            format!(
                    "`{name}` must be a sequence number (an integer from 0 to {MAX_SEQUENCE}), not {raw:?}"
                ),
        )
    })
}
