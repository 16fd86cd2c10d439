//! `GET /v1/admin/customers/{email}`: everything about one customer, to answer
//! "why was this customer denied?" in one request.

use axum::extract::{Path, State};
use axum::routing::get;
use axum::{Json, Router};
use serde::Serialize;
use utoipa::ToSchema;

use super::AppState;
use super::access::{AccessAnswer, answer, by_product};
use super::auth::Admin;
use super::error::{ApiResult, Problem, field};
use super::grants::GrantView;
use super::orders::OrderView;
use super::subscriptions::{HistoryView, SubscriptionView};
use crate::domain::access::SourceKind;
use crate::domain::{Email, Instant};
use crate::store::{OrderFilter, SubscriptionFilter};
use crate::time_fmt::{self, serde_rfc3339};

pub fn router() -> Router<AppState> {
    Router::new().route("/v1/admin/customers/{email}", get(show))
}

/// One customer's sources, current entitlements and merged timeline.
#[derive(Debug, Serialize, ToSchema)]
pub struct CustomerView {
    #[schema(value_type = String, format = Email)]
    pub email: Email,
    /// The instant the entitlements are answered for (now).
    #[serde(with = "serde_rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub at: Instant,
    pub subscriptions: Vec<SubscriptionView>,
    pub orders: Vec<OrderView>,
    pub grants: Vec<GrantView>,
    /// One access answer per product, now.
    pub entitlements: Vec<AccessAnswer>,
    /// Every history entry of every source, oldest first.
    pub timeline: Vec<TimelineEntry>,
}

/// One entry of the merged timeline.
#[derive(Debug, Serialize, ToSchema)]
pub struct TimelineEntry {
    #[schema(value_type = SourceKind)]
    pub kind: &'static str,
    /// The subscription, order or grant.
    pub id: String,
    #[serde(flatten)]
    pub entry: HistoryView,
}

/// Show everything about one customer.
///
/// A customer's subscriptions, orders, grants, current entitlements and one
/// merged timeline of every source's history, oldest first: the answer to
/// "why was this customer denied?" in one request.
#[utoipa::path(
    get,
    path = "/v1/admin/customers/{email}",
    operation_id = "get_customer",
    tag = "customers",
    params(("email" = String, Path, description = "The customer's email", format = Email)),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The customer (empty lists for an unknown one)", body = CustomerView),
        (status = 400, description = "`email` is not an email address", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Missing or unknown bearer token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "The token's scope is not `admin`", body = Problem, content_type = "application/problem+json"),
    )
)]
async fn show(
    State(state): State<AppState>,
    _admin: Admin,
    Path(email): Path<String>,
) -> ApiResult<Json<CustomerView>> {
    let email = field("email", &email, Email::parse)?;
    Ok(Json(customer(&state, email).await?))
}

/// Everything about one customer now: the API's view, and the console's.
pub(super) async fn customer(state: &AppState, email: Email) -> ApiResult<CustomerView> {
    let store = &state.store;
    let now = time_fmt::now();
    let subscriptions = store
        .subscriptions(&SubscriptionFilter {
            email: Some(email.as_str()),
            limit: 10_000,
            ..Default::default()
        })
        .await?;
    let orders = store
        .orders(&OrderFilter {
            email: Some(email.as_str()),
            limit: 10_000,
            ..Default::default()
        })
        .await?;
    let grants = store.grants(Some(&email)).await?;
    // From the database, like the sources beside them: one consistent view.
    let rows = store.stored_entitlement_rows(&email, None).await?;

    let mut timeline: Vec<TimelineEntry> = store
        .customer_history(email.as_str())
        .await?
        .into_iter()
        .map(|(kind, id, entry)| TimelineEntry {
            kind: kind.as_str(),
            id,
            entry: entry.into(),
        })
        .collect();
    for grant in &grants {
        let mut push = |at: Instant, event: &str, from: Option<&str>, to: &str| {
            timeline.push(TimelineEntry {
                kind: SourceKind::Grant.as_str(),
                id: grant.id.clone(),
                entry: HistoryView {
                    at,
                    event: event.to_owned(),
                    from_state: from.map(str::to_owned),
                    to_state: Some(to.to_owned()),
                    outcome: crate::domain::Outcome::Applied,
                    reason: Some(grant.reason.clone()),
                    delivery_id: None,
                    source: "admin".to_owned(),
                    plan: None,
                    previous_plan: None,
                },
            });
        };
        push(grant.created_at, "granted", None, "active");
        if let Some(revoked_at) = grant.revoked_at {
            push(revoked_at, "revoked", Some("active"), "revoked");
        }
    }
    timeline.sort_by_key(|t| t.entry.at);

    Ok(CustomerView {
        entitlements: by_product(&rows)
            .into_iter()
            .map(|(product, rows)| answer(&email, product, rows, now))
            .collect(),
        subscriptions: subscriptions.into_iter().map(Into::into).collect(),
        orders: orders.into_iter().map(Into::into).collect(),
        grants: grants.into_iter().map(Into::into).collect(),
        timeline,
        email,
        at: now,
    })
}
