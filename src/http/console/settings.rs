//! The console's pages for what operators configure: products and their
//! policies (with a preview of a change before it is made), outbound
//! endpoints and their messages (test, rotate, resend), and API tokens. A
//! secret is shown once, on the page that answers the form that made it.

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use maud::{Markup, html};
use serde::Deserialize;

use super::pages::{Notice, segment, short, when};
use super::{Form, Operator, PageResult, back_to, check_form, csrf, layout};
use crate::domain::{CanceledAccess, Policy};
use crate::http::AppState;
use crate::http::changes::AnswerView;
use crate::http::error::{ApiError, one_of};
use crate::http::pagination::{self, Page, page_loaded};
use crate::http::products::{FlipView, PolicyBody, PreviewView};
use crate::store::{ConsoleSession, Endpoint, MessageFilter, MessageStatus, Scope};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/console/products", get(products))
        .route("/console/products/{key}", get(product).post(save_product))
        .route("/console/products/{key}/preview", post(preview_product))
        .route("/console/endpoints", get(endpoints).post(save_endpoint))
        .route("/console/endpoints/{id}", get(endpoint))
        .route("/console/endpoints/{id}/test", post(test_endpoint))
        .route(
            "/console/endpoints/{id}/rotate-secret",
            post(rotate_endpoint),
        )
        .route("/console/endpoints/{id}/delete", post(delete_endpoint))
        .route(
            "/console/endpoints/{id}/messages/{message}/resend",
            post(resend_message),
        )
        .route("/console/tokens", get(tokens).post(create_token))
        .route("/console/tokens/{id}/delete", post(delete_token))
}

/// Rows shown per page.
const PAGE: &str = "50";

#[derive(Debug, Deserialize)]
pub struct ListQuery {
    /// Products: open this product's page.
    key: Option<String>,
    /// Endpoint messages: only this status.
    status: Option<String>,
    cursor: Option<String>,
    done: Option<String>,
}

impl ListQuery {
    fn cursor(&self) -> Option<&str> {
        self.cursor.as_deref().filter(|c| !c.is_empty())
    }

    fn notice(&self) -> Markup {
        Notice {
            done: self.done.clone(),
        }
        .shown()
    }
}

fn older(path: &str, next: Option<String>) -> Markup {
    html! {
        @if let Some(next) = next {
            p { a href={(path) "?cursor=" (segment(&next))} { "More" } }
        }
    }
}

fn seconds(s: i64) -> String {
    match s {
        0 => "none".to_owned(),
        s if s % 86_400 == 0 => format!("{s} s ({} days)", s / 86_400),
        s if s % 3600 == 0 => format!("{s} s ({} hours)", s / 3600),
        s => format!("{s} s"),
    }
}

// ---- products ----

async fn products(
    State(state): State<AppState>,
    Operator(session): Operator,
    Query(query): Query<ListQuery>,
) -> PageResult {
    if let Some(key) = query
        .key
        .as_deref()
        .map(str::trim)
        .filter(|k| !k.is_empty())
    {
        crate::http::products::product_key(key)?;
        return Ok(Redirect::to(&format!("/console/products/{}", segment(key))).into_response());
    }
    let Page { items, next_cursor } = page_loaded(
        state.store.products().await?,
        Some(PAGE),
        query.cursor(),
        false,
        |p| p.key.to_string(),
        |p| p,
    )?;
    let content = html! {
        (query.notice())
        p class="hint" { "A product nobody configured uses the defaults: three days of grace, no access while suspended, none once canceled, purchases for ever." }
        @if items.is_empty() { p { "No product is configured yet." } }
        @else {
            div class="scroll" {
                table {
                    thead { tr { th scope="col" { "Product" } th scope="col" { "Grace" } th scope="col" { "Suspended" } th scope="col" { "Canceled" } th scope="col" { "Purchases" } th scope="col" { "Changed" } } }
                    tbody {
                        @for p in &items {
                            tr {
                                td { a href={"/console/products/" (segment(p.key.as_str()))} { (p.key.as_str()) } }
                                td { (seconds(p.policy.grace_period_seconds)) }
                                td { (if p.policy.suspended_access { "keeps access" } else { "no access" }) }
                                td { (p.policy.canceled_access.as_str()) }
                                td { (purchase(p.policy.purchase_access_seconds)) }
                                td { (when(p.updated_at)) }
                            }
                        }
                    }
                }
            }
        }
        (older("/console/products", next_cursor))
        h2 { "Open a product" }
        form method="get" action="/console/products" {
            div class="fields" {
                div { label for="p-key" { "Product key" } input id="p-key" name="key" type="text" required; }
                div { button type="submit" { "Open" } }
            }
        }
    };
    Ok(layout(&session, "Products", content))
}

fn purchase(seconds: Option<i64>) -> String {
    match seconds {
        None => "for ever".to_owned(),
        Some(s) => self::seconds(s),
    }
}

/// The policy form: `Preview` shows what it would change, `Save` makes it.
fn policy_form(session: &ConsoleSession, key: &str, policy: &Policy) -> Markup {
    let action = format!("/console/products/{}", segment(key));
    html! {
        form method="post" action=(action) {
            (csrf(session))
            label for="grace" { "Grace after a missed renewal (seconds)" }
            input id="grace" name="grace_period_seconds" type="text" inputmode="numeric" value=(policy.grace_period_seconds);
            div {
                input id="suspended" name="suspended_access" type="checkbox" value="true" checked[policy.suspended_access];
                label for="suspended" class="inline" { "A suspended subscription keeps access" }
            }
            label for="canceled" { "A canceled subscription" }
            select id="canceled" name="canceled_access" {
                option value="immediate" selected[policy.canceled_access == CanceledAccess::Immediate] { "loses access at once (immediate)" }
                option value="period_end" selected[policy.canceled_access == CanceledAccess::PeriodEnd] { "keeps access to its period's end (period_end)" }
            }
            label for="purchase" { "A paid purchase grants access for (seconds; blank: for ever)" }
            input id="purchase" name="purchase_access_seconds" type="text" inputmode="numeric" value=(policy.purchase_access_seconds.map(|s| s.to_string()).unwrap_or_default());
            div class="fields" {
                div { button type="submit" formaction={(action) "/preview"} { "Preview this change" } }
                div { button type="submit" { "Save policy" } }
            }
        }
    }
}

/// A policy from the form's fields, checked as the API checks its body.
fn policy_body(form: &Form) -> Result<PolicyBody, ApiError> {
    let whole = |field: &str| -> Result<Option<i64>, ApiError> {
        form.get(field)
            .map(|raw| {
                raw.parse::<i64>().map_err(|_| {
                    ApiError::invalid(
                        field,
                        format!("`{field}` must be a whole number of seconds"),
                    )
                })
            })
            .transpose()
    };
    let canceled = form.get("canceled_access");
    one_of(
        "canceled_access",
        canceled,
        &["immediate", "period_end"],
        |s| s,
    )?;
    Ok(PolicyBody {
        grace_period_seconds: whole("grace_period_seconds")?,
        suspended_access: Some(form.get("suspended_access") == Some("true")),
        canceled_access: canceled.and_then(CanceledAccess::parse),
        purchase_access_seconds: whole("purchase_access_seconds")?,
    })
}

async fn product(
    State(state): State<AppState>,
    Operator(session): Operator,
    Path(key): Path<String>,
    Query(query): Query<ListQuery>,
) -> PageResult {
    let key = crate::http::products::product_key(&key)?;
    let stored = state.store.product(key.as_str()).await?;
    let policy = stored
        .as_ref()
        .map(|p| p.policy.clone())
        .unwrap_or_default();
    let content = html! {
        (query.notice())
        @match &stored {
            Some(p) => p class="hint" { "Configured " (when(p.created_at)) ", last changed " (when(p.updated_at)) "." },
            None => p class="hint" { "Not configured: its customers are answered under the defaults shown. Saving configures it." },
        }
        (policy_form(&session, key.as_str(), &policy))
    };
    Ok(layout(
        &session,
        &format!("Product {}", key.as_str()),
        content,
    ))
}

async fn save_product(
    State(state): State<AppState>,
    Operator(session): Operator,
    Path(key): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> PageResult {
    let form = Form::parse(&body);
    check_form(&state, &headers, &session, &form)?;
    let (product, _) = crate::app::products::set_policy(
        &state.store,
        &crate::http::products::product_key(&key)?,
        &crate::http::products::policy(&policy_body(&form)?)?,
        crate::time_fmt::now(),
    )
    .await?;
    Ok(back_to(
        &format!("/console/products/{}", segment(product.key.as_str())),
        &format!("Saved the policy of {}.", product.key.as_str()),
    ))
}

fn answer(a: &AnswerView) -> Markup {
    html! {
        span class=(if a.entitled { "yes" } else { "no" }) { (a.reason.as_str()) }
        @if let Some(until) = a.valid_until { br; span class="muted" { "until " (when(until)) } }
    }
}

fn flips(caption: &str, listed: &[FlipView], count: u64) -> Markup {
    html! {
        h2 { (caption) ": " (count) }
        @if !listed.is_empty() {
            @if (listed.len() as u64) < count {
                p class="hint" { "The first " (listed.len()) " by email." }
            }
            div class="scroll" {
                table {
                    thead { tr { th scope="col" { "Customer" } th scope="col" { "Now" } th scope="col" { "Under this policy" } } }
                    tbody {
                        @for f in listed {
                            tr {
                                td { a href={"/console/customers/" (segment(f.email.as_str()))} { (f.email.as_str()) } }
                                td { (answer(&f.before)) }
                                td { (answer(&f.after)) }
                            }
                        }
                    }
                }
            }
        }
    }
}

async fn preview_product(
    State(state): State<AppState>,
    Operator(session): Operator,
    Path(key): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> PageResult {
    let form = Form::parse(&body);
    check_form(&state, &headers, &session, &form)?;
    let body = policy_body(&form)?;
    let candidate = crate::http::products::policy(&body)?;
    let preview: PreviewView = crate::app::products::preview(
        &state.store,
        &crate::http::products::product_key(&key)?,
        &candidate,
        crate::time_fmt::now(),
    )
    .await?
    .into();
    let content = html! {
        p role="status" {
            "Nothing has changed yet. Under this policy, now: "
            (preview.counts.gained) " would gain access, "
            (preview.counts.lost) " would lose it, "
            (preview.counts.moved) " would keep it with another end, "
            (preview.counts.unchanged) " would be answered as they are."
        }
        (policy_form(&session, &key, &candidate))
        (flips("Would gain access", &preview.gained, preview.counts.gained))
        (flips("Would lose access", &preview.lost, preview.counts.lost))
        (flips("Would keep access, with another end", &preview.moved, preview.counts.moved))
    };
    Ok(layout(&session, &format!("Preview for {key}"), content))
}

// ---- endpoints ----

/// The create-or-update form; `endpoint` fills it for an update.
fn endpoint_form(session: &ConsoleSession, endpoint: Option<&Endpoint>) -> Markup {
    let products = endpoint
        .and_then(|e| e.products.as_ref())
        .map(|keys| {
            keys.iter()
                .map(|k| k.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        })
        .unwrap_or_default();
    html! {
        form method="post" action="/console/endpoints" {
            (csrf(session))
            @match endpoint {
                Some(e) => input type="hidden" name="id" value=(e.id);,
                None => {
                    label for="e-id" { "Id (letters, digits, _ and -)" }
                    input id="e-id" name="id" type="text" required;
                }
            }
            label for="e-url" { "URL (http or https)" }
            input id="e-url" name="url" type="text" inputmode="url" required value=(endpoint.map(|e| e.url.as_str()).unwrap_or_default());
            label for="e-products" { "Products, separated by commas (blank: every product)" }
            input id="e-products" name="products" type="text" value=(products);
            div {
                input id="e-enabled" name="enabled" type="checkbox" value="true" checked[endpoint.is_none_or(|e| e.enabled)];
                label for="e-enabled" class="inline" { "Enabled" }
            }
            button type="submit" { (if endpoint.is_some() { "Save endpoint" } else { "Add endpoint" }) }
        }
    }
}

/// A page that shows a secret, the only time it is shown.
fn secret_page(
    session: &ConsoleSession,
    title: &str,
    what: &str,
    secret: &str,
    next: &str,
) -> Response {
    layout(
        session,
        title,
        html! {
            p role="status" { (what) }
            label for="secret" { "Copy it now: it is not shown again" }
            input id="secret" type="text" readonly value=(secret);
            p { a href=(next) { "Continue" } }
        },
    )
}

async fn endpoints(
    State(state): State<AppState>,
    Operator(session): Operator,
    Query(query): Query<ListQuery>,
) -> PageResult {
    let Page { items, next_cursor } = page_loaded(
        state.store.endpoints().await?,
        Some(PAGE),
        query.cursor(),
        false,
        |e| e.id.clone(),
        |e| e,
    )?;
    let content = html! {
        (query.notice())
        @if items.is_empty() { p { "No endpoint: changes are kept in the log and streamed, sent nowhere." } }
        @else {
            div class="scroll" {
                table {
                    thead { tr { th scope="col" { "Endpoint" } th scope="col" { "URL" } th scope="col" { "Products" } th scope="col" { "Status" } } }
                    tbody {
                        @for e in &items {
                            tr {
                                td { a href={"/console/endpoints/" (segment(&e.id))} { (e.id) } }
                                td { code { (e.url) } }
                                td { (products_of(e)) }
                                td { (e.status.as_str()) }
                            }
                        }
                    }
                }
            }
        }
        (older("/console/endpoints", next_cursor))
        h2 { "Add an endpoint" }
        (endpoint_form(&session, None))
    };
    Ok(layout(&session, "Endpoints", content))
}

fn products_of(e: &Endpoint) -> String {
    match &e.products {
        None => "every product".to_owned(),
        Some(keys) => keys
            .iter()
            .map(|k| k.as_str())
            .collect::<Vec<_>>()
            .join(", "),
    }
}

async fn save_endpoint(
    State(state): State<AppState>,
    Operator(session): Operator,
    headers: HeaderMap,
    body: Bytes,
) -> PageResult {
    let form = Form::parse(&body);
    check_form(&state, &headers, &session, &form)?;
    let products: Option<Vec<String>> = form.get("products").map(|raw| {
        raw.split(',')
            .map(str::trim)
            .filter(|k| !k.is_empty())
            .map(str::to_owned)
            .collect()
    });
    let (id, url, products) = crate::http::endpoints::parse_endpoint(
        form.get("id").unwrap_or_default(),
        form.get("url").unwrap_or_default(),
        products.as_deref(),
    )?;
    let (endpoint, secret) = crate::app::endpoints::save(
        &state.store,
        &id,
        url,
        products.as_deref(),
        form.get("enabled") == Some("true"),
        crate::time_fmt::now(),
    )
    .await?;
    let path = format!("/console/endpoints/{}", segment(&endpoint.id));
    Ok(match secret {
        Some(secret) => secret_page(
            &session,
            "Endpoint added",
            &format!(
                "Endpoint {} added. Every message to it is signed with this secret (Standard Webhooks).",
                endpoint.id
            ),
            secret.expose(),
            &path,
        ),
        None => back_to(&path, &format!("Saved endpoint {}.", endpoint.id)),
    })
}

async fn endpoint(
    State(state): State<AppState>,
    Operator(session): Operator,
    Path(id): Path<String>,
    Query(query): Query<ListQuery>,
) -> PageResult {
    let e = state
        .store
        .endpoint(&id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no endpoint {id:?}")))?;
    let status = query.status.as_deref().filter(|s| !s.is_empty());
    one_of("status", status, &MessageStatus::ALL, MessageStatus::as_str)?;
    let before = pagination::cursor(query.cursor())?;
    let rows = state
        .store
        .messages(&MessageFilter {
            endpoint: &e.id,
            status: status.and_then(MessageStatus::parse),
            before: before.as_deref(),
            limit: 51,
        })
        .await?;
    let Page {
        items: messages,
        next_cursor,
    } = pagination::page(rows, 50, |m| m.id.clone(), |m| m);
    let path = format!("/console/endpoints/{}", segment(&e.id));
    let content = html! {
        (query.notice())
        dl {
            dt { "URL" } dd { code { (e.url) } }
            dt { "Products" } dd { (products_of(&e)) }
            dt { "Status" } dd { (e.status.as_str()) }
            dt { "Added" } dd { (when(e.created_at)) }
        }
        div class="fields" {
            form method="post" action={(path) "/test"} { (csrf(&session)) button type="submit" { "Send a test message" } }
            form method="post" action={(path) "/rotate-secret"} { (csrf(&session)) button type="submit" { "Rotate the secret" } }
            form method="post" action={(path) "/delete"} { (csrf(&session)) button type="submit" { "Delete this endpoint" } }
        }
        h2 { "Messages" }
        form method="get" action=(path) {
            div class="fields" {
                div { (super::any_of("m-status", "status", "Status", MessageStatus::ALL.iter().map(|s| s.as_str()), status)) }
                div { button type="submit" { "Filter" } }
            }
        }
        @if messages.is_empty() { p { "No messages match." } }
        @else {
            div class="scroll" {
                table {
                    thead { tr { th scope="col" { "Created" } th scope="col" { "Message" } th scope="col" { "Change" } th scope="col" { "Status" } th scope="col" { "Attempts" } th scope="col" { "Send" } } }
                    tbody {
                        @for m in &messages {
                            tr {
                                td { (when(m.created_at)) }
                                td { code { (m.id) } br; span class="muted" { (m.kind) } }
                                td { (m.sequence.map(|s| s.to_string()).unwrap_or_else(|| "test".into())) }
                                td {
                                    (m.status.as_str())
                                    @if let Some(next) = m.next_attempt_at { br; span class="muted" { "next " (when(next)) } }
                                }
                                td {
                                    @for a in &m.attempts {
                                        (when(a.at)) ": "
                                        (a.status_code.map(|c| c.to_string()).or_else(|| a.error.clone()).unwrap_or_default())
                                        " (" (a.duration_ms) " ms)" br;
                                    }
                                }
                                td {
                                    form method="post" class="inline" action={(path) "/messages/" (segment(&m.id)) "/resend"} {
                                        (csrf(&session))
                                        button type="submit" aria-label={"Resend " (short(&m.id))} { "Resend" }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
        @if let Some(next) = next_cursor {
            p { a href={(path) "?status=" (segment(status.unwrap_or_default())) "&cursor=" (segment(&next))} { "Older messages" } }
        }
        h2 { "Change this endpoint" }
        (endpoint_form(&session, Some(&e)))
    };
    Ok(layout(&session, &format!("Endpoint {}", e.id), content))
}

async fn test_endpoint(
    State(state): State<AppState>,
    Operator(session): Operator,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> PageResult {
    check_form(&state, &headers, &session, &Form::parse(&body))?;
    let attempt = state
        .sender
        .test(&id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no endpoint {id:?}")))?;
    let done = match (attempt.status_code, &attempt.error) {
        (Some(code), None) => format!("Test message delivered: {code}."),
        (Some(code), Some(_)) => format!("Test message refused: {code}."),
        (None, Some(error)) => format!("Test message not delivered: {error}."),
        (None, None) => "Test message sent.".to_owned(),
    };
    Ok(back_to(
        &format!("/console/endpoints/{}", segment(&id)),
        &done,
    ))
}

async fn rotate_endpoint(
    State(state): State<AppState>,
    Operator(session): Operator,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> PageResult {
    check_form(&state, &headers, &session, &Form::parse(&body))?;
    let (endpoint, secret) = state
        .store
        .rotate_endpoint_secret(
            &id,
            crate::time_fmt::now(),
            crate::outbound::ROTATION_OVERLAP,
        )
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no endpoint {id:?}")))?;
    Ok(secret_page(
        &session,
        "Secret rotated",
        &format!(
            "Endpoint {} has a new secret. For 24 hours its messages are signed with the old one too.",
            endpoint.id
        ),
        secret.expose(),
        &format!("/console/endpoints/{}", segment(&endpoint.id)),
    ))
}

async fn delete_endpoint(
    State(state): State<AppState>,
    Operator(session): Operator,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> PageResult {
    check_form(&state, &headers, &session, &Form::parse(&body))?;
    if !state.store.delete_endpoint(&id).await? {
        return Err(ApiError::not_found(format!("no endpoint {id:?}")).into());
    }
    Ok(back_to(
        "/console/endpoints",
        &format!("Deleted endpoint {id}."),
    ))
}

async fn resend_message(
    State(state): State<AppState>,
    Operator(session): Operator,
    Path((id, message)): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> PageResult {
    check_form(&state, &headers, &session, &Form::parse(&body))?;
    let message = crate::app::endpoints::resend(&state.sender, &state.store, &id, &message).await?;
    let last = message.attempts.last();
    let result = last
        .and_then(|a| {
            a.status_code
                .map(|c| c.to_string())
                .or_else(|| a.error.clone())
        })
        .unwrap_or_default();
    Ok(back_to(
        &format!("/console/endpoints/{}", segment(&id)),
        &format!(
            "Resent {}: {result}; it is {}.",
            short(&message.id),
            message.status.as_str()
        ),
    ))
}

// ---- tokens ----

async fn tokens(
    State(state): State<AppState>,
    Operator(session): Operator,
    Query(query): Query<ListQuery>,
) -> PageResult {
    let Page { items, next_cursor } = page_loaded(
        state.store.tokens().await?,
        Some(PAGE),
        query.cursor(),
        false,
        |t| t.id.clone(),
        |t| t,
    )?;
    let content = html! {
        (query.notice())
        p class="hint" { "Scope " code { "app" } " checks access; " code { "admin" } " does everything, this console included. Values are stored hashed and shown once, when made." }
        div class="scroll" {
            table {
                thead { tr { th scope="col" { "Name" } th scope="col" { "Scope" } th scope="col" { "Made" } th scope="col" { "Id" } th scope="col" { "Delete" } } }
                tbody {
                    @for t in &items {
                        tr {
                            td { (t.name) @if t.id == session.token_id { br; span class="muted" { "this session's token" } } }
                            td { (t.scope.as_str()) }
                            td { (when(t.created_at)) }
                            td { code { (t.id) } }
                            td {
                                form method="post" class="inline" action={"/console/tokens/" (segment(&t.id)) "/delete"} {
                                    (csrf(&session))
                                    button type="submit" aria-label={"Delete token " (t.name)} { "Delete" }
                                }
                            }
                        }
                    }
                }
            }
        }
        (older("/console/tokens", next_cursor))
        h2 { "Make a token" }
        form method="post" action="/console/tokens" {
            (csrf(&session))
            label for="t-name" { "What it is for" }
            input id="t-name" name="name" type="text" required;
            label for="t-scope" { "Scope" }
            select id="t-scope" name="scope" {
                option value="app" { "app" }
                option value="admin" { "admin" }
            }
            button type="submit" { "Make token" }
        }
    };
    Ok(layout(&session, "API tokens", content))
}

async fn create_token(
    State(state): State<AppState>,
    Operator(session): Operator,
    headers: HeaderMap,
    body: Bytes,
) -> PageResult {
    let form = Form::parse(&body);
    check_form(&state, &headers, &session, &form)?;
    let scope = form.get("scope");
    one_of("scope", scope, &["app", "admin"], |s| s)?;
    let scope = if scope == Some("admin") {
        Scope::Admin
    } else {
        Scope::App
    };
    let name = crate::http::tokens::token_name(form.get("name").unwrap_or_default())?;
    let made: crate::http::tokens::CreatedToken =
        crate::app::tokens::create(&state.store, name, scope, crate::time_fmt::now())
            .await?
            .into();
    Ok(secret_page(
        &session,
        "Token made",
        &format!(
            "Token {:?} ({}) made. Present it as Authorization: Bearer followed by the value.",
            made.name,
            made.scope.as_str()
        ),
        &made.token,
        "/console/tokens",
    ))
}

async fn delete_token(
    State(state): State<AppState>,
    Operator(session): Operator,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> PageResult {
    check_form(&state, &headers, &session, &Form::parse(&body))?;
    crate::app::tokens::delete(&state.store, &id).await?;
    Ok(back_to("/console/tokens", &format!("Deleted token {id}.")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_policy_form_is_read_as_the_api_reads_a_body() {
        let body = policy_body(&Form::parse(
            b"grace_period_seconds=0&suspended_access=true&canceled_access=period_end&purchase_access_seconds=",
        ))
        .unwrap();
        assert_eq!(body.grace_period_seconds, Some(0));
        assert_eq!(body.suspended_access, Some(true));
        assert_eq!(body.canceled_access, Some(CanceledAccess::PeriodEnd));
        assert_eq!(body.purchase_access_seconds, None);

        let unchecked = policy_body(&Form::parse(b"grace_period_seconds=60")).unwrap();
        assert_eq!(unchecked.suspended_access, Some(false));

        let e = policy_body(&Form::parse(b"grace_period_seconds=3+days")).unwrap_err();
        assert!(e.to_string().contains("`grace_period_seconds`"), "{e}");
        let e = policy_body(&Form::parse(b"canceled_access=later")).unwrap_err();
        assert!(e.to_string().contains("canceled_access"), "{e}");
    }

    #[test]
    fn durations_read_in_days_or_hours_when_whole() {
        assert_eq!(seconds(259_200), "259200 s (3 days)");
        assert_eq!(seconds(7200), "7200 s (2 hours)");
        assert_eq!(seconds(90), "90 s");
        assert_eq!(seconds(0), "none");
        assert_eq!(purchase(None), "for ever");
    }
}
