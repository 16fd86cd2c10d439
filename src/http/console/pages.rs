//! The console's pages: the overview, customers (search, the customer page
//! with its grants), and the delivery log (filters, each delivery, replay).

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use maud::{Markup, html};
use serde::Deserialize;

use super::{Failure, Form, Operator, PageResult, check_form, csrf, layout};
use crate::domain::{Email, Instant, Outcome};
use crate::http::AppState;
use crate::http::error::ApiError;
use crate::store::{DeliveryFilter, EndpointStatus};
use crate::time_fmt;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/console/customers", get(customers))
        .route("/console/customers/{email}", get(customer))
        .route("/console/customers/{email}/grants", post(give_grant))
        .route("/console/grants/{id}/revoke", post(revoke_grant))
        .route("/console/deliveries", get(deliveries))
        .route("/console/deliveries/{id}", get(delivery))
        .route("/console/deliveries/{id}/replay", post(replay))
}

/// An instant as the console shows it: RFC 3339 to the second, UTC.
pub(super) fn when(at: Instant) -> String {
    let full = time_fmt::rfc3339(at);
    match full.find('.') {
        Some(dot) => format!("{}Z", &full[..dot]),
        None => full,
    }
}

pub(super) fn when_opt(at: Option<Instant>) -> String {
    at.map_or_else(|| "—".to_owned(), when)
}

/// What a path segment or query value keeps as it is: RFC 3986's unreserved
/// characters.
const UNRESERVED: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// A path segment or query value, percent-encoded.
pub(super) fn segment(raw: &str) -> String {
    percent_encoding::utf8_percent_encode(raw, UNRESERVED).to_string()
}

/// The colour an outcome is drawn in.
fn colour(outcome: Outcome) -> &'static str {
    match outcome {
        Outcome::Applied => "#1a7f37",
        Outcome::Duplicate => "#8c959f",
        Outcome::Stale => "#9a6700",
        Outcome::Rejected => "#cf222e",
        Outcome::Malformed => "#8250df",
        _ => "#0a58ca",
    }
}

/// Days shown in the overview's chart.
const CHART_DAYS: i64 = 14;

pub async fn overview(State(state): State<AppState>, Operator(session): Operator) -> PageResult {
    let now = time_fmt::now();
    let counts = state.store.state_counts(now).await?;
    let today = now.unix_timestamp().div_euclid(86_400);
    let first = today - (CHART_DAYS - 1);
    let since = time::OffsetDateTime::from_unix_timestamp(first * 86_400)
        .map_err(|_| Failure::from(ApiError::not_found("no such day")))?;
    let by_day = state.store.deliveries_by_day(since).await?;
    let failing: Vec<_> = state
        .store
        .endpoints()
        .await?
        .into_iter()
        .filter(|e| e.status == EndpointStatus::Failing)
        .collect();
    let content = html! {
        h2 { "Sources by state" }
        div class="scroll" {
            table {
                caption class="muted" { "Subscriptions and orders in each state; active grants" }
                thead { tr { th scope="col" { "Source" } th scope="col" { "State" } th scope="col" { "Count" } } }
                tbody {
                    @for (state_name, n) in &counts.subscriptions {
                        tr { td { "subscription" } td { (state_name) } td { (n) } }
                    }
                    @for (state_name, n) in &counts.orders {
                        tr { td { "order" } td { (state_name) } td { (n) } }
                    }
                    tr { td { "grant" } td { "active" } td { (counts.active_grants) } }
                }
            }
        }
        h2 { "Deliveries by outcome, last " (CHART_DAYS) " days" }
        (chart(&by_day, first))
        h2 { "Endpoints failing" }
        @if failing.is_empty() {
            p class="muted" { "None: every outbound endpoint's last attempt succeeded (or it has not been tried)." }
        } @else {
            ul {
                @for endpoint in &failing {
                    li { (endpoint.id) " — " (endpoint.url) }
                }
            }
        }
    };
    Ok(layout(&session, "Overview", content))
}

/// A stacked bar per day (inline SVG), with the same figures as a table.
fn chart(by_day: &[(i64, String, i64)], first: i64) -> Markup {
    let days: Vec<i64> = (first..first + CHART_DAYS).collect();
    let total = |day: i64| -> i64 {
        by_day
            .iter()
            .filter(|(d, _, _)| *d == day)
            .map(|(_, _, n)| n)
            .sum()
    };
    let most = days.iter().map(|d| total(*d)).max().unwrap_or(0).max(1);
    let (width, height, bar) = (CHART_DAYS * 40, 160_i64, 28_i64);
    let label = |day: i64| {
        time::OffsetDateTime::from_unix_timestamp(day * 86_400)
            .map(|d| format!("{:02}-{:02}", d.month() as u8, d.day()))
            .unwrap_or_default()
    };
    html! {
        svg role="img" aria-labelledby="chart-title" viewBox={"0 0 " (width) " " (height + 20)} width="100%" {
            title id="chart-title" { "Deliveries per day by outcome" }
            @for (i, day) in days.iter().enumerate() {
                @let x = i as i64 * 40 + 6;
                @let mut top = height;
                @for outcome in Outcome::ALL {
                    @let n = by_day.iter().find(|(d, o, _)| d == day && o == outcome.as_str()).map_or(0, |(_, _, n)| *n);
                    @if n > 0 {
                        @let h = (n * (height - 10) / most).max(1);
                        @let y = { top -= h; top };
                        rect x=(x) y=(y) width=(bar) height=(h) fill=(colour(outcome)) {
                            title { (label(*day)) ": " (n) " " (outcome.as_str()) }
                        }
                    }
                }
                text x=(x) y=(height + 14) { (label(*day)) }
            }
        }
        p class="legend" {
            @for outcome in Outcome::ALL {
                span {
                    svg class="swatch" viewBox="0 0 10 10" aria-hidden="true" {
                        rect width="10" height="10" fill=(colour(outcome));
                    }
                    (outcome.as_str())
                }
            }
        }
        div class="scroll" {
            table {
                caption class="muted" { "The chart's figures" }
                thead { tr { th scope="col" { "Day" } th scope="col" { "Outcome" } th scope="col" { "Deliveries" } } }
                tbody {
                    @for (day, outcome, n) in by_day {
                        tr { td { (label(*day)) } td { (outcome) } td { (n) } }
                    }
                }
            }
        }
    }
}

#[derive(Debug, Deserialize)]
pub struct Search {
    q: Option<String>,
}

/// Customer search: an exact email opens the customer; otherwise the
/// customers whose email starts with what was typed.
async fn customers(
    State(state): State<AppState>,
    Operator(session): Operator,
    Query(search): Query<Search>,
) -> PageResult {
    let q = search.q.unwrap_or_default().trim().to_ascii_lowercase();
    let found = if q.is_empty() {
        Vec::new()
    } else {
        state.store.customers_matching(&q, 50).await?
    };
    if found.len() == 1 && found[0] == q {
        return Ok(Redirect::to(&format!("/console/customers/{}", segment(&q))).into_response());
    }
    let content = html! {
        form method="get" action="/console/customers" role="search" {
            label for="q" { "Email, or its beginning" }
            input id="q" name="q" type="search" value=(q) autofocus;
            button type="submit" { "Search" }
        }
        @if !q.is_empty() {
            @if found.is_empty() {
                p { "No customer has an email starting with " code { (q) } "." }
            } @else {
                ul {
                    @for email in &found {
                        li { a href={"/console/customers/" (segment(email))} { (email) } }
                    }
                }
            }
        }
    };
    Ok(layout(&session, "Customers", content))
}

#[derive(Debug, Deserialize)]
pub struct Notice {
    pub(super) done: Option<String>,
}

impl Notice {
    /// What the last action did, when the page was reached from one.
    pub(super) fn shown(&self) -> Markup {
        html! {
            @if let Some(done) = self.done.as_deref() {
                p class="notice" role="status" { (done) }
            }
        }
    }
}

/// One customer: access per product now with what led to it, the merged
/// timeline, the sources, and grants to give or revoke.
async fn customer(
    State(state): State<AppState>,
    Operator(session): Operator,
    Path(email): Path<String>,
    Query(notice): Query<Notice>,
) -> PageResult {
    let email = crate::http::error::field("email", &email, Email::parse)?;
    let view = crate::http::customers::customer(&state, email).await?;
    let email = view.email.as_str().to_owned();
    let entry_link = |delivery: &Option<String>| -> Markup {
        html! {
            @if let Some(id) = delivery {
                a href={"/console/deliveries/" (segment(id))} { "delivery " (short(id)) }
            } @else { span class="muted" { "—" } }
        }
    };
    let content = html! {
        (notice.shown())
        h2 { "Access now" }
        @if view.entitlements.is_empty() {
            p { "No source for any product: every check answers " code { "no_entitlement" } "." }
        }
        @for answer in &view.entitlements {
            section aria-labelledby={"product-" (answer.product.as_str())} {
                h3 id={"product-" (answer.product.as_str())} {
                    (answer.product.as_str()) ": "
                    @if answer.entitled { span class="yes" { "entitled" } } @else { span class="no" { "not entitled" } }
                }
                p {
                    "Reason " code { (answer.reason.as_str()) } ", valid until " (when_opt(answer.valid_until))
                    @if let Some(plan) = &answer.plan { ", plan " (plan) }
                    "."
                }
                @let sources: Vec<(&str, &str)> = answer.sources.iter().map(|s| (s.kind, s.id.as_str())).collect();
                div class="scroll" {
                    table {
                        caption class="muted" { "What led to it" }
                        thead { tr { th scope="col" { "At" } th scope="col" { "Source" } th scope="col" { "Event" } th scope="col" { "State" } th scope="col" { "Outcome" } th scope="col" { "Delivery" } } }
                        tbody {
                            @for entry in view.timeline.iter().filter(|t| sources.contains(&(t.kind, t.id.as_str()))) {
                                tr {
                                    td { (when(entry.entry.at)) }
                                    td { (entry.kind) " " (short(&entry.id)) }
                                    td { (entry.entry.event) }
                                    td { (entry.entry.from_state.as_deref().unwrap_or("—")) " → " (entry.entry.to_state.as_deref().unwrap_or("—")) }
                                    td { (entry.entry.outcome.as_str()) @if let Some(r) = &entry.entry.reason { br; span class="muted" { (r) } } }
                                    td { (entry_link(&entry.entry.delivery_id)) }
                                }
                            }
                        }
                    }
                }
            }
        }
        h2 { "Grants" }
        @if view.grants.is_empty() { p class="muted" { "No grants." } }
        @else {
            div class="scroll" {
                table {
                    thead { tr { th scope="col" { "Product" } th scope="col" { "From" } th scope="col" { "Until" } th scope="col" { "Reason" } th scope="col" { "State" } } }
                    tbody {
                        @for grant in &view.grants {
                            tr {
                                td { (grant.product.as_str()) }
                                td { (when(grant.valid_from)) }
                                td { (when_opt(grant.valid_until)) }
                                td { (grant.reason) }
                                td {
                                    @if let Some(at) = grant.revoked_at { "revoked " (when(at)) }
                                    @else {
                                        form class="inline" method="post" action={"/console/grants/" (segment(&grant.id)) "/revoke"} {
                                            (csrf(&session))
                                            input type="hidden" name="email" value=(email);
                                            button type="submit" { "Revoke " (grant.product.as_str()) " grant" }
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
        form method="post" action={"/console/customers/" (segment(&email)) "/grants"} {
            (csrf(&session))
            div class="fields" {
                div { label for="grant-product" { "Product" } input id="grant-product" name="product" type="text" required; }
                div { label for="grant-until" { "Until (optional, RFC 3339)" } input id="grant-until" name="valid_until" type="text" placeholder="2026-12-31T23:59:59Z"; }
                div { label for="grant-reason" { "Reason" } input id="grant-reason" name="reason" type="text" required; }
                div { button type="submit" { "Give grant" } }
            }
        }
        h2 { "Timeline" }
        div class="scroll" {
            table {
                thead { tr { th scope="col" { "At" } th scope="col" { "Source" } th scope="col" { "Event" } th scope="col" { "State" } th scope="col" { "Outcome" } th scope="col" { "Delivery" } } }
                tbody {
                    @for entry in &view.timeline {
                        tr {
                            td { (when(entry.entry.at)) }
                            td { (entry.kind) " " (short(&entry.id)) }
                            td { (entry.entry.event) }
                            td { (entry.entry.from_state.as_deref().unwrap_or("—")) " → " (entry.entry.to_state.as_deref().unwrap_or("—")) }
                            td { (entry.entry.outcome.as_str()) }
                            td { (entry_link(&entry.entry.delivery_id)) }
                        }
                    }
                }
            }
        }
        h2 { "Subscriptions" }
        @if view.subscriptions.is_empty() { p class="muted" { "None." } }
        ul {
            @for s in &view.subscriptions {
                li { (s.product.as_str()) ": " (s.state.as_str()) " (" (s.provider.as_str()) " " (s.external_id) "), period ends " (when_opt(s.current_period_end)) }
            }
        }
        h2 { "Orders" }
        @if view.orders.is_empty() { p class="muted" { "None." } }
        ul {
            @for o in &view.orders {
                li { (o.state.as_str()) " (" (o.provider.as_str()) " " (o.external_id) "), paid " (when_opt(o.paid_at)) }
            }
        }
    };
    Ok(layout(&session, &format!("Customer {email}"), content))
}

/// An id's first characters, for tables (the link carries the whole id).
pub(super) fn short(id: &str) -> &str {
    id.get(..8).unwrap_or(id)
}

async fn give_grant(
    State(state): State<AppState>,
    Operator(session): Operator,
    Path(email): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> PageResult {
    let form = Form::parse(&body);
    check_form(&state, &headers, &session, &form)?;
    let valid_until = match form.get("valid_until") {
        None => None,
        Some(raw) => Some(time_fmt::parse_lenient(raw).ok_or_else(|| {
            ApiError::invalid(
                "valid_until",
                format!("`valid_until`: {}", time_fmt::not_an_instant(raw)),
            )
        })?),
    };
    let grant = crate::http::grants::parse_new(&crate::http::grants::NewGrant {
        email: email.clone(),
        product: form.get("product").unwrap_or_default().to_owned(),
        valid_from: None,
        valid_until,
        reason: form.get("reason").unwrap_or_default().to_owned(),
    })?;
    let grant = crate::app::grants::give(&state.store, &grant, time_fmt::now()).await?;
    let done = format!(
        "Granted {} to {}.",
        grant.product.as_str(),
        grant.email.as_str()
    );
    Ok(back_to_customer(grant.email.as_str(), &done))
}

async fn revoke_grant(
    State(state): State<AppState>,
    Operator(session): Operator,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> PageResult {
    let form = Form::parse(&body);
    check_form(&state, &headers, &session, &form)?;
    let grant = crate::app::grants::revoke(&state.store, &id, time_fmt::now()).await?;
    let done = format!("Revoked the {} grant.", grant.product.as_str());
    Ok(back_to_customer(grant.email.as_str(), &done))
}

fn back_to_customer(email: &str, done: &str) -> Response {
    super::back_to(&format!("/console/customers/{}", segment(email)), done)
}

#[derive(Debug, Deserialize)]
pub struct DeliveryQuery {
    integration: Option<String>,
    outcome: Option<String>,
    cursor: Option<String>,
}

/// Deliveries shown per page.
const PAGE: i64 = 50;

/// The delivery log, newest first, filtered by integration and outcome.
async fn deliveries(
    State(state): State<AppState>,
    Operator(session): Operator,
    Query(query): Query<DeliveryQuery>,
) -> PageResult {
    let integration = query
        .integration
        .as_deref()
        .map(str::trim)
        .filter(|s| !s.is_empty());
    let outcome = query.outcome.as_deref().filter(|s| !s.is_empty());
    crate::http::error::one_of("outcome", outcome, &Outcome::ALL, Outcome::as_str)?;
    let before =
        crate::http::pagination::cursor(query.cursor.as_deref().filter(|c| !c.is_empty()))?;
    let rows = state
        .store
        .deliveries(&DeliveryFilter {
            integration,
            outcome,
            before: before.as_deref(),
            limit: PAGE + 1,
        })
        .await?;
    let crate::http::pagination::Page {
        items: rows,
        next_cursor: next,
    } = crate::http::pagination::page(rows, PAGE, |d| d.id.clone(), |d| d);
    let content = html! {
        form method="get" action="/console/deliveries" {
            div class="fields" {
                div { label for="f-integration" { "Integration" } input id="f-integration" name="integration" type="text" value=(integration.unwrap_or_default()); }
                div { (super::any_of("f-outcome", "outcome", "Outcome", Outcome::ALL.iter().map(|o| o.as_str()), outcome)) }
                div { button type="submit" { "Filter" } }
            }
        }
        @if rows.is_empty() { p { "No deliveries match." } }
        @else {
            div class="scroll" {
                table {
                    thead { tr { th scope="col" { "Received" } th scope="col" { "Integration" } th scope="col" { "Event" } th scope="col" { "Outcome" } th scope="col" { "Reason" } th scope="col" { "Delivery" } } }
                    tbody {
                        @for d in &rows {
                            tr {
                                td { (when(d.received_at)) }
                                td { (d.integration) }
                                td { (d.event.as_deref().unwrap_or("—")) }
                                td { (d.outcome.as_str()) }
                                td { (d.reason.as_deref().unwrap_or("")) }
                                td { a href={"/console/deliveries/" (segment(&d.id))} { (short(&d.id)) } }
                            }
                        }
                    }
                }
            }
        }
        @if let Some(next) = next {
            p {
                a href={"/console/deliveries?integration=" (segment(integration.unwrap_or_default())) "&outcome=" (segment(outcome.unwrap_or_default())) "&cursor=" (segment(&next))} { "Older deliveries" }
            }
        }
    };
    Ok(layout(&session, "Deliveries", content))
}

/// One delivery: what came (body, redacted headers), every attempt at
/// applying it, and replay.
async fn delivery(
    State(state): State<AppState>,
    Operator(session): Operator,
    Path(id): Path<String>,
    Query(notice): Query<Notice>,
) -> PageResult {
    let detail = state
        .store
        .delivery(&id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no delivery {id:?}")))?;
    let d = &detail.delivery;
    let headers: serde_json::Value =
        serde_json::from_str(&detail.headers).unwrap_or(serde_json::Value::Null);
    let headers = serde_json::to_string_pretty(&headers).unwrap_or_default();
    let body = detail.body.as_deref().map(String::from_utf8_lossy);
    let content = html! {
        (notice.shown())
        dl {
            dt { "Id" } dd { code { (d.id) } }
            dt { "Integration" } dd { (d.integration) " (" (d.provider) ")" }
            dt { "Received" } dd { (when(d.received_at)) }
            dt { "Event" } dd { (d.event.as_deref().unwrap_or("—")) }
            dt { "Outcome" } dd { (d.outcome.as_str()) @if let Some(r) = &d.reason { " — " (r) } }
            @if let Some((kind, subject)) = &d.subject { dt { "Subject" } dd { (kind.as_str()) " " code { (subject) } } }
        }
        form method="post" action={"/console/deliveries/" (segment(&d.id)) "/replay"} {
            (csrf(&session))
            button type="submit" { "Replay this delivery" }
        }
        h2 { "Attempts" }
        div class="scroll" {
            table {
                thead { tr { th scope="col" { "At" } th scope="col" { "Trigger" } th scope="col" { "Outcome" } th scope="col" { "Reason" } } }
                tbody {
                    @for a in &detail.attempts {
                        tr { td { (when(a.at)) } td { (a.trigger) } td { (a.outcome.as_str()) } td { (a.reason.as_deref().unwrap_or("")) } }
                    }
                }
            }
        }
        h2 { "Headers" }
        p class="hint" { "Credentials are replaced by [REDACTED]." }
        pre { (headers) }
        h2 { "Body, as received" }
        @match body {
            Some(body) => pre { (body) },
            None => p { "Dropped at " (when_opt(detail.body_dropped_at)) " (ENTITLED_DELIVERY_RETENTION_DAYS)." },
        }
    };
    Ok(layout(&session, "Delivery", content))
}

async fn replay(
    State(state): State<AppState>,
    Operator(session): Operator,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> PageResult {
    let form = Form::parse(&body);
    check_form(&state, &headers, &session, &form)?;
    let recorded = crate::app::deliveries::replay(&state.store, &id, time_fmt::now()).await?;
    let outcome: crate::http::webhooks::DeliveryAnswer = recorded.into();
    let done = format!(
        "Replayed: {}{}.",
        outcome.outcome.as_str(),
        outcome
            .reason
            .map(|r| format!(" ({r})"))
            .unwrap_or_default()
    );
    Ok(super::back_to(
        &format!("/console/deliveries/{}", segment(&id)),
        &done,
    ))
}
