//! The console's pages for sources and their configuration: subscriptions and
//! orders (filtered lists, each with its history linking to the deliveries
//! behind it), and integrations with the URL to paste into each provider.

use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use axum::routing::get;
use maud::{Markup, html};
use serde::Deserialize;

use super::pages::{segment, short, when, when_opt};
use super::{Operator, PageResult, layout};
use crate::domain::access::SourceKind;
use crate::http::AppState;
use crate::http::error::{ApiError, one_of};
use crate::http::orders::OrderView;
use crate::http::subscriptions::SubscriptionView;
use crate::store::{HistoryEntry, OrderFilter, SubscriptionFilter};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/console/subscriptions", get(subscriptions))
        .route("/console/subscriptions/{id}", get(subscription))
        .route("/console/orders", get(orders))
        .route("/console/orders/{id}", get(order))
        .route("/console/integrations", get(integrations))
}

/// Rows shown per page.
const PAGE: i64 = 50;

#[derive(Debug, Deserialize)]
pub struct ListQuery {
    email: Option<String>,
    state: Option<String>,
    integration: Option<String>,
    cursor: Option<String>,
}

/// A filter's value, `None` when left blank.
fn given(raw: &Option<String>) -> Option<&str> {
    raw.as_deref().map(str::trim).filter(|s| !s.is_empty())
}

/// The filter form of a list, keeping what was asked.
fn filters(action: &str, query: &ListQuery, states: &[&str]) -> Markup {
    let state = given(&query.state);
    html! {
        form method="get" action=(action) {
            div class="fields" {
                div { label for="f-email" { "Email" } input id="f-email" name="email" type="text" value=(given(&query.email).unwrap_or_default()); }
                div { (super::any_of("f-state", "state", "State", states.iter().copied(), state)) }
                div { label for="f-integration" { "Integration" } input id="f-integration" name="integration" type="text" value=(given(&query.integration).unwrap_or_default()); }
                div { button type="submit" { "Filter" } }
            }
        }
    }
}

/// The link to a list's next page, keeping its filters.
fn next_page(action: &str, query: &ListQuery, next: Option<String>) -> Markup {
    html! {
        @if let Some(next) = next {
            p {
                a href={(action) "?email=" (segment(given(&query.email).unwrap_or_default()))
                    "&state=" (segment(given(&query.state).unwrap_or_default()))
                    "&integration=" (segment(given(&query.integration).unwrap_or_default()))
                    "&cursor=" (segment(&next))} { "Older" }
            }
        }
    }
}

/// A source's history, oldest first, each entry linking to its delivery.
fn history(entries: &[HistoryEntry]) -> Markup {
    html! {
        div class="scroll" {
            table {
                thead { tr { th scope="col" { "At" } th scope="col" { "Event" } th scope="col" { "State" } th scope="col" { "Outcome" } th scope="col" { "By" } th scope="col" { "Delivery" } } }
                tbody {
                    @for entry in entries {
                        tr {
                            td { (when(entry.at)) }
                            td { (entry.event) }
                            td { (entry.from_state.as_deref().unwrap_or("—")) " → " (entry.to_state.as_deref().unwrap_or("—")) }
                            td { (entry.outcome.as_str()) @if let Some(r) = &entry.reason { br; span class="muted" { (r) } } }
                            td { (entry.source) }
                            td {
                                @if let Some(id) = &entry.delivery_id {
                                    a href={"/console/deliveries/" (segment(id))} { "delivery " (short(id)) }
                                } @else { span class="muted" { "—" } }
                            }
                        }
                    }
                }
            }
        }
    }
}

const SUBSCRIPTION_STATES: [&str; 6] = [
    "pending",
    "active",
    "suspended",
    "canceled",
    "expired",
    "refunded",
];

const ORDER_STATES: [&str; 5] = ["pending", "paid", "canceled", "expired", "refunded"];

async fn subscriptions(
    State(state): State<AppState>,
    Operator(session): Operator,
    Query(query): Query<ListQuery>,
) -> PageResult {
    one_of("state", given(&query.state), &SUBSCRIPTION_STATES, |s| s)?;
    let email = given(&query.email).map(|e| e.to_ascii_lowercase());
    let before = crate::http::pagination::cursor(given(&query.cursor))?;
    let rows = state
        .store
        .subscriptions(&SubscriptionFilter {
            email: email.as_deref(),
            state: given(&query.state),
            integration: given(&query.integration),
            before: before.as_deref(),
            limit: PAGE + 1,
            ..Default::default()
        })
        .await?;
    let crate::http::pagination::Page {
        items: rows,
        next_cursor: next,
    } = crate::http::pagination::page(rows, PAGE, |s| s.id.clone(), SubscriptionView::from);
    let content = html! {
        (filters("/console/subscriptions", &query, &SUBSCRIPTION_STATES))
        @if rows.is_empty() { p { "No subscriptions match." } }
        @else {
            div class="scroll" {
                table {
                    thead { tr { th scope="col" { "Customer" } th scope="col" { "Product" } th scope="col" { "State" } th scope="col" { "Period ends" } th scope="col" { "Integration" } th scope="col" { "Subscription" } } }
                    tbody {
                        @for s in &rows {
                            tr {
                                td { a href={"/console/customers/" (segment(s.email.as_str()))} { (s.email.as_str()) } }
                                td { (s.product.as_str()) }
                                td { (s.state.as_str()) }
                                td { (when_opt(s.current_period_end)) }
                                td { (s.integration) }
                                td { a href={"/console/subscriptions/" (segment(&s.id))} { (short(&s.id)) } }
                            }
                        }
                    }
                }
            }
        }
        (next_page("/console/subscriptions", &query, next))
    };
    Ok(layout(&session, "Subscriptions", content))
}

async fn subscription(
    State(state): State<AppState>,
    Operator(session): Operator,
    Path(id): Path<String>,
) -> PageResult {
    let record = state
        .store
        .subscription(&id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no subscription {id:?}")))?;
    let entries = state.store.history(SourceKind::Subscription, &id).await?;
    let s: SubscriptionView = record.into();
    let content = html! {
        dl {
            dt { "Customer" } dd { a href={"/console/customers/" (segment(s.email.as_str()))} { (s.email.as_str()) } }
            dt { "Product" } dd { (s.product.as_str()) @if let Some(plan) = &s.plan { " (plan " (plan) ")" } }
            dt { "State" } dd { (s.state.as_str()) }
            dt { "Period" } dd { (when_opt(s.current_period_start)) " to " (when_opt(s.current_period_end)) }
            dt { "Access from" } dd { (when(s.access_from)) }
            dt { "Provider" } dd { (s.provider) ", integration " (s.integration) ", id " code { (s.external_id) } }
        }
        h2 { "History" }
        (history(&entries))
    };
    Ok(layout(&session, "Subscription", content))
}

async fn orders(
    State(state): State<AppState>,
    Operator(session): Operator,
    Query(query): Query<ListQuery>,
) -> PageResult {
    one_of("state", given(&query.state), &ORDER_STATES, |s| s)?;
    let email = given(&query.email).map(|e| e.to_ascii_lowercase());
    let before = crate::http::pagination::cursor(given(&query.cursor))?;
    let rows = state
        .store
        .orders(&OrderFilter {
            email: email.as_deref(),
            state: given(&query.state),
            integration: given(&query.integration),
            before: before.as_deref(),
            limit: PAGE + 1,
        })
        .await?;
    let crate::http::pagination::Page {
        items: rows,
        next_cursor: next,
    } = crate::http::pagination::page(rows, PAGE, |o| o.id.clone(), OrderView::from);
    let content = html! {
        (filters("/console/orders", &query, &ORDER_STATES))
        @if rows.is_empty() { p { "No orders match." } }
        @else {
            div class="scroll" {
                table {
                    thead { tr { th scope="col" { "Customer" } th scope="col" { "Products" } th scope="col" { "State" } th scope="col" { "Paid" } th scope="col" { "Integration" } th scope="col" { "Order" } } }
                    tbody {
                        @for o in &rows {
                            tr {
                                td { a href={"/console/customers/" (segment(o.email.as_str()))} { (o.email.as_str()) } }
                                td { (o.products.iter().map(|p| p.as_str()).collect::<Vec<_>>().join(", ")) }
                                td { (o.state.as_str()) }
                                td { (when_opt(o.paid_at)) }
                                td { (o.integration) }
                                td { a href={"/console/orders/" (segment(&o.id))} { (short(&o.id)) } }
                            }
                        }
                    }
                }
            }
        }
        (next_page("/console/orders", &query, next))
    };
    Ok(layout(&session, "Orders", content))
}

async fn order(
    State(state): State<AppState>,
    Operator(session): Operator,
    Path(id): Path<String>,
) -> PageResult {
    let record = state
        .store
        .order(&id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no order {id:?}")))?;
    let entries = state.store.history(SourceKind::Order, &id).await?;
    let o: OrderView = record.into();
    let content = html! {
        dl {
            dt { "Customer" } dd { a href={"/console/customers/" (segment(o.email.as_str()))} { (o.email.as_str()) } }
            dt { "Products" } dd { (o.products.iter().map(|p| p.as_str()).collect::<Vec<_>>().join(", ")) }
            dt { "State" } dd { (o.state.as_str()) }
            dt { "Paid" } dd { (when_opt(o.paid_at)) }
            dt { "Provider" } dd { (o.provider) ", integration " (o.integration) ", id " code { (o.external_id) } }
        }
        h2 { "History" }
        (history(&entries))
    };
    Ok(layout(&session, "Order", content))
}

/// Integrations, each with the URL its provider should POST to (never its
/// secret).
async fn integrations(
    State(state): State<AppState>,
    Operator(session): Operator,
    headers: HeaderMap,
) -> PageResult {
    let base = super::own_origin(&state, &headers).unwrap_or_default();
    let all = state.store.integrations().await?;
    let now = crate::time_fmt::now();
    let content = html! {
        @if all.is_empty() {
            p { "No integrations yet: create one with " code { "PUT /v1/admin/integrations/{id}" } "." }
        }
        div class="scroll" {
            table {
                thead { tr { th scope="col" { "Integration" } th scope="col" { "Provider" } th scope="col" { "Enabled" } th scope="col" { "Webhook URL" } th scope="col" { "Product map" } th scope="col" { "Previous secret" } } }
                tbody {
                    @for i in &all {
                        tr {
                            td { (i.id.as_str()) }
                            td { (i.provider.as_str()) }
                            td { @if i.enabled { "yes" } @else { "no" } }
                            td { code { (base) "/v1/webhooks/" (i.id.as_str()) } }
                            td {
                                @for (external, key) in &i.product_map {
                                    code { (external) } " → " (key.as_str()) br;
                                }
                            }
                            td {
                                @match i.previous_secret_until(now) {
                                    Some(until) => { "accepted until " (crate::time_fmt::rfc3339(until)) }
                                    None => { "none" }
                                }
                            }
                        }
                    }
                }
            }
        }
        p class="hint" {
            "Zenofy takes the secret in the " code { "X-Webhook-Secret" } " header (or a "
            code { "token" } " query parameter); ZayPay in the " code { "token" }
            " query parameter; Zid in the " code { "token" }
            " query parameter, or as the password of HTTP Basic auth (merchant webhooks: one URL for every event); Zeno Bank signs with its own "
            code { "whsec_" } " secret. A replaced secret is still accepted until the time shown when it was replaced with "
            code { "keep_previous_secret_seconds" } "."
        }
    };
    Ok(layout(&session, "Integrations", content))
}
