//! `/v1/admin/endpoints`: where outbound webhooks go, what was sent to each,
//! every attempt; `rotate-secret`, `test` and `resend`.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::AppState;
use super::auth::Admin;
use super::error::{ApiError, ApiResult, Problem, one_of};
use super::extract::{Body, Params};
use super::pagination::{self, Page, Paging, page_loaded};
use crate::app;
use crate::domain::{Instant, IntegrationId, ProductKey};
use crate::store::{Endpoint, Message, MessageAttempt, MessageFilter, MessageStatus};
use crate::time_fmt::{self, serde_rfc3339};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/admin/endpoints", get(list))
        .route(
            "/v1/admin/endpoints/{id}",
            get(show).put(put).delete(remove),
        )
        .route("/v1/admin/endpoints/{id}/rotate-secret", post(rotate))
        .route("/v1/admin/endpoints/{id}/test", post(test))
        .route("/v1/admin/endpoints/{id}/messages", get(messages))
        .route(
            "/v1/admin/endpoints/{id}/messages/{message}/resend",
            post(resend),
        )
}

/// The longest endpoint URL accepted.
pub const MAX_URL: usize = 2048;

/// The URLs accepted, as the OpenAPI document states them: `http` or
/// `https`, a host name or IPv4 address, an optional port from 1 to 65535,
/// then a path and query of URL characters (no fragment, no user info).
pub const URL_PATTERN: &str = "^https?://[A-Za-z0-9.-]+(:(6553[0-5]|655[0-2][0-9]|65[0-4][0-9]{2}|6[0-4][0-9]{3}|[1-5][0-9]{4}|[1-9][0-9]{0,3}))?(/[A-Za-z0-9._~!$&'()*+,;=:@%/?-]*)?$";

/// Checks an endpoint URL against [`URL_PATTERN`] and [`MAX_URL`].
pub fn check_url(raw: &str) -> Result<(), ApiError> {
    let invalid = |detail: &str| ApiError::invalid("url", format!("`url` {detail}"));
    if raw.len() > MAX_URL {
        return Err(invalid(&format!("must be at most {MAX_URL} characters")));
    }
    let rest = raw
        .strip_prefix("https://")
        .or_else(|| raw.strip_prefix("http://"))
        .ok_or_else(|| invalid("must start with http:// or https://"))?;
    let (authority, path) = rest.find('/').map_or((rest, ""), |i| rest.split_at(i));
    let (host, port) = match authority.split_once(':') {
        Some((host, port)) => (host, Some(port)),
        None => (authority, None),
    };
    if host.is_empty()
        || !host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-'))
    {
        return Err(invalid(
            "must name a host of letters, digits, dots and hyphens",
        ));
    }
    if let Some(port) = port {
        let valid = !port.starts_with('0')
            && port.bytes().all(|b| b.is_ascii_digit())
            && port.parse::<u16>().is_ok_and(|p| p > 0);
        if !valid {
            return Err(invalid("must have a port from 1 to 65535"));
        }
    }
    let path_ok = path.bytes().all(|b| {
        b.is_ascii_alphanumeric()
            || matches!(
                b,
                b'.' | b'_'
                    | b'~'
                    | b'!'
                    | b'$'
                    | b'&'
                    | b'\''
                    | b'('
                    | b')'
                    | b'*'
                    | b'+'
                    | b','
                    | b';'
                    | b'='
                    | b':'
                    | b'@'
                    | b'%'
                    | b'/'
                    | b'?'
                    | b'-'
            )
    });
    if !path_ok {
        return Err(invalid(
            "must have a path and query of URL characters only (no spaces, no fragment)",
        ));
    }
    raw.parse::<axum::http::Uri>()
        .map_err(|_| invalid("is not a URL"))?;
    Ok(())
}

/// Create or update an endpoint.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct EndpointBody {
    /// Where messages are POSTed (`http` or `https`).
    #[schema(example = "https://backend.example.com/hooks/entitled")]
    url: String,
    /// The products whose changes it receives; omitted or `null`: every product.
    #[serde(default)]
    #[schema(max_items = 100)]
    products: Option<Vec<String>>,
    #[serde(default = "enabled_by_default")]
    #[schema(default = true)]
    enabled: bool,
}

fn enabled_by_default() -> bool {
    true
}

/// An endpoint, as shown.
#[derive(Debug, Serialize, ToSchema)]
pub struct EndpointView {
    pub id: String,
    pub url: String,
    /// `null`: every product.
    #[schema(required = true)]
    pub products: Option<Vec<String>>,
    pub enabled: bool,
    /// `healthy`, `failing` (its last attempt failed) or `disabled`.
    #[schema(example = "healthy")]
    pub status: &'static str,
    #[serde(with = "serde_rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: Instant,
    #[serde(with = "serde_rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub updated_at: Instant,
}

impl From<Endpoint> for EndpointView {
    fn from(e: Endpoint) -> Self {
        Self {
            id: e.id,
            url: e.url,
            products: e
                .products
                .map(|keys| keys.iter().map(ToString::to_string).collect()),
            enabled: e.enabled,
            status: e.status.as_str(),
            created_at: e.created_at,
            updated_at: e.updated_at,
        }
    }
}

/// An endpoint with its signing secret: the answer to creating one and to
/// `rotate-secret`, the only times the secret is shown.
#[derive(Debug, Serialize, ToSchema)]
pub struct EndpointWithSecret {
    #[serde(flatten)]
    pub endpoint: EndpointView,
    /// `whsec_` and the base64 of 24 random bytes: verify messages with it
    /// (Standard Webhooks). Shown only this once.
    pub secret: String,
}

/// An attempt at sending a message.
#[derive(Debug, Serialize, ToSchema)]
pub struct MessageAttemptView {
    #[serde(with = "serde_rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub at: Instant,
    /// The endpoint's answer; `null` when none came.
    #[schema(required = true)]
    pub status_code: Option<u16>,
    /// Why it failed; `null` on a 2xx.
    #[schema(required = true)]
    pub error: Option<String>,
    pub duration_ms: i64,
}

impl From<MessageAttempt> for MessageAttemptView {
    fn from(a: MessageAttempt) -> Self {
        Self {
            at: a.at,
            status_code: a.status_code,
            error: a.error,
            duration_ms: a.duration_ms,
        }
    }
}

/// A message to an endpoint, with every attempt.
#[derive(Debug, Serialize, ToSchema)]
pub struct MessageView {
    /// The `webhook-id` of every attempt.
    pub id: String,
    pub endpoint: String,
    /// The change's sequence; `null` for a test.
    #[schema(required = true)]
    pub sequence: Option<i64>,
    /// `access.changed` or `endpoint.test`.
    #[serde(rename = "type")]
    #[schema(example = "access.changed")]
    pub kind: String,
    /// `pending`, `delivered`, `failed` or `superseded`.
    #[schema(example = "delivered")]
    pub status: &'static str,
    /// Oldest first.
    pub attempts: Vec<MessageAttemptView>,
    /// When a pending message is tried next; `null` otherwise.
    #[serde(with = "serde_rfc3339::option")]
    #[schema(value_type = Option<String>, format = DateTime, required = true)]
    pub next_attempt_at: Option<Instant>,
    #[serde(with = "serde_rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: Instant,
}

impl From<Message> for MessageView {
    fn from(m: Message) -> Self {
        Self {
            id: m.id,
            endpoint: m.endpoint,
            sequence: m.sequence,
            kind: m.kind,
            status: m.status.as_str(),
            attempts: m.attempts.into_iter().map(Into::into).collect(),
            next_attempt_at: m.next_attempt_at,
            created_at: m.created_at,
        }
    }
}

/// Which messages to list.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct MessagesQuery {
    /// Only messages in this status.
    #[param(value_type = Option<String>, pattern = "^(pending|delivered|failed|superseded)$")]
    status: Option<String>,
    /// Page size, 1 to 500 (default 50).
    #[param(value_type = Option<i64>, minimum = 1, maximum = 500)]
    limit: Option<String>,
    /// The previous page's `next_cursor`.
    cursor: Option<String>,
}

fn endpoint_id(raw: &str) -> ApiResult<String> {
    IntegrationId::parse(raw)
        .map(|id| id.to_string())
        .map_err(|e| ApiError::invalid("id", format!("`id`: {}", e.0)))
}

fn no_endpoint(id: &str) -> ApiError {
    ApiError::not_found(format!("no endpoint {id:?}"))
}

/// Create or update an outbound webhook endpoint.
///
/// Creates the endpoint (201) and returns its signing `secret`, only this
/// once; or updates its URL, products and `enabled` (200, the secret
/// unchanged and not shown). Every change of an access answer for one of its
/// products becomes a message to it, signed as Standard Webhooks.
#[utoipa::path(
    put,
    path = "/v1/admin/endpoints/{id}",
    operation_id = "put_endpoint",
    tag = "endpoints",
    params(("id" = String, Path, description = "The endpoint's id (letters, digits, `_` and `-`)")),
    request_body = EndpointBody,
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Updated", body = EndpointView),
        (status = 201, description = "Created, with its secret", body = EndpointWithSecret),
        (status = 400, description = "The id or a field is invalid", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Missing or unknown bearer token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "The token's scope is not `admin`", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "The body is larger than 64 KiB", body = Problem, content_type = "application/problem+json"),
    )
)]
async fn put(
    State(state): State<AppState>,
    _admin: Admin,
    Path(id): Path<String>,
    Body(body): Body<EndpointBody>,
) -> ApiResult<axum::response::Response> {
    use axum::response::IntoResponse;
    let (id, url, products) = parse_endpoint(&id, &body.url, body.products.as_deref())?;
    let (endpoint, secret) = app::endpoints::save(
        &state.store,
        &id,
        url,
        products.as_deref(),
        body.enabled,
        time_fmt::now(),
    )
    .await?;
    Ok(match secret {
        Some(secret) => (
            StatusCode::CREATED,
            Json(EndpointWithSecret {
                endpoint: endpoint.into(),
                secret: secret.expose().to_owned(),
            }),
        )
            .into_response(),
        None => (StatusCode::OK, Json(EndpointView::from(endpoint))).into_response(),
    })
}

/// The endpoint a request asks for, its fields checked: id, URL and
/// products (`None`: all), for [`app::endpoints::save`].
pub(super) fn parse_endpoint<'a>(
    id: &'a str,
    url: &'a str,
    products: Option<&[String]>,
) -> ApiResult<(String, &'a str, Option<Vec<ProductKey>>)> {
    let id = endpoint_id(id)?;
    check_url(url)?;
    let products = products
        .map(|keys| {
            if keys.len() > 100 {
                return Err(ApiError::invalid(
                    "products",
                    "`products` lists at most 100 products",
                ));
            }
            keys.iter()
                .enumerate()
                .map(|(i, key)| {
                    ProductKey::parse(key).map_err(|e| {
                        let field = format!("products[{i}]");
                        ApiError::invalid(&field, format!("`{field}`: {}", e.0))
                    })
                })
                .collect::<Result<Vec<_>, _>>()
        })
        .transpose()?;
    Ok((id.to_string(), url, products))
}

/// List outbound webhook endpoints.
///
/// All endpoints, by id, with their health.
#[utoipa::path(
    get,
    path = "/v1/admin/endpoints",
    operation_id = "list_endpoints",
    tag = "endpoints",
    params(Paging),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "A page of endpoints", body = Page<EndpointView>),
        (status = 400, description = "`limit` or `cursor` is invalid", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Missing or unknown bearer token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "The token's scope is not `admin`", body = Problem, content_type = "application/problem+json"),
    )
)]
async fn list(
    State(state): State<AppState>,
    _admin: Admin,
    Params(paging): Params<Paging>,
) -> ApiResult<Json<Page<EndpointView>>> {
    Ok(Json(page_loaded(
        state.store.endpoints().await?,
        paging.limit.as_deref(),
        paging.cursor.as_deref(),
        false,
        |e| e.id.clone(),
        Into::into,
    )?))
}

/// Show one outbound webhook endpoint.
///
/// The endpoint and its health (`healthy`, `failing`, `disabled`), never its secret.
#[utoipa::path(
    get,
    path = "/v1/admin/endpoints/{id}",
    operation_id = "get_endpoint",
    tag = "endpoints",
    params(("id" = String, Path, description = "The endpoint's id")),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The endpoint", body = EndpointView),
        (status = 401, description = "Missing or unknown bearer token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "The token's scope is not `admin`", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such endpoint", body = Problem, content_type = "application/problem+json"),
    )
)]
async fn show(
    State(state): State<AppState>,
    _admin: Admin,
    Path(id): Path<String>,
) -> ApiResult<Json<EndpointView>> {
    let endpoint = state
        .store
        .endpoint(&id)
        .await?
        .ok_or_else(|| no_endpoint(&id))?;
    Ok(Json(endpoint.into()))
}

/// Delete an outbound webhook endpoint.
///
/// The endpoint and its messages; nothing more is sent to it.
#[utoipa::path(
    delete,
    path = "/v1/admin/endpoints/{id}",
    operation_id = "delete_endpoint",
    tag = "endpoints",
    params(("id" = String, Path, description = "The endpoint's id")),
    security(("bearer" = [])),
    responses(
        (status = 204, description = "Deleted"),
        (status = 401, description = "Missing or unknown bearer token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "The token's scope is not `admin`", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such endpoint", body = Problem, content_type = "application/problem+json"),
    )
)]
async fn remove(
    State(state): State<AppState>,
    _admin: Admin,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    if state.store.delete_endpoint(&id).await? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(no_endpoint(&id))
    }
}

/// Rotate an endpoint's signing secret.
///
/// A new secret, returned only this once. For 24 hours every message carries
/// a signature under the old secret beside the new one, so a receiver can
/// switch without missing a message.
#[utoipa::path(
    post,
    path = "/v1/admin/endpoints/{id}/rotate-secret",
    operation_id = "rotate_endpoint_secret",
    tag = "endpoints",
    params(("id" = String, Path, description = "The endpoint's id")),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The endpoint with its new secret", body = EndpointWithSecret),
        (status = 401, description = "Missing or unknown bearer token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "The token's scope is not `admin`", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such endpoint", body = Problem, content_type = "application/problem+json"),
    )
)]
async fn rotate(
    State(state): State<AppState>,
    _admin: Admin,
    Path(id): Path<String>,
) -> ApiResult<Json<EndpointWithSecret>> {
    let (endpoint, secret) = state
        .store
        .rotate_endpoint_secret(&id, time_fmt::now(), crate::outbound::ROTATION_OVERLAP)
        .await?
        .ok_or_else(|| no_endpoint(&id))?;
    Ok(Json(EndpointWithSecret {
        endpoint: endpoint.into(),
        secret: secret.expose().to_owned(),
    }))
}

/// Send a test message to an endpoint.
///
/// Sends `{"type": "endpoint.test", ...}` at once (whether or not the
/// endpoint is enabled), signed like every message, and answers the attempt:
/// a failed attempt is still a 200, with its `status_code` or `error`. The
/// message is kept with the endpoint's others.
#[utoipa::path(
    post,
    path = "/v1/admin/endpoints/{id}/test",
    operation_id = "test_endpoint",
    tag = "endpoints",
    params(("id" = String, Path, description = "The endpoint's id")),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The attempt", body = MessageAttemptView),
        (status = 401, description = "Missing or unknown bearer token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "The token's scope is not `admin`", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such endpoint", body = Problem, content_type = "application/problem+json"),
    )
)]
async fn test(
    State(state): State<AppState>,
    _admin: Admin,
    Path(id): Path<String>,
) -> ApiResult<Json<MessageAttemptView>> {
    let attempt = state
        .sender
        .test(&id)
        .await?
        .ok_or_else(|| no_endpoint(&id))?;
    Ok(Json(attempt.into()))
}

/// List what was sent to an endpoint.
///
/// Its messages, newest first, each with every attempt.
#[utoipa::path(
    get,
    path = "/v1/admin/endpoints/{id}/messages",
    operation_id = "list_endpoint_messages",
    tag = "endpoints",
    params(("id" = String, Path, description = "The endpoint's id"), MessagesQuery),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "A page of messages", body = Page<MessageView>),
        (status = 400, description = "`status`, `limit` or `cursor` is invalid", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Missing or unknown bearer token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "The token's scope is not `admin`", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such endpoint", body = Problem, content_type = "application/problem+json"),
    )
)]
async fn messages(
    State(state): State<AppState>,
    _admin: Admin,
    Path(id): Path<String>,
    Params(query): Params<MessagesQuery>,
) -> ApiResult<Json<Page<MessageView>>> {
    let limit = pagination::limit(query.limit.as_deref())?;
    one_of(
        "status",
        query.status.as_deref(),
        &MessageStatus::ALL,
        MessageStatus::as_str,
    )?;
    let before = pagination::cursor(query.cursor.as_deref())?;
    if state.store.endpoint(&id).await?.is_none() {
        return Err(no_endpoint(&id));
    }
    let rows = state
        .store
        .messages(&MessageFilter {
            endpoint: &id,
            status: query.status.as_deref().and_then(MessageStatus::parse),
            before: before.as_deref(),
            limit: limit + 1,
        })
        .await?;
    Ok(Json(pagination::page(
        rows,
        limit,
        |m| m.id.clone(),
        Into::into,
    )))
}

/// Send a message again.
///
/// One attempt now, whatever the message's status, signed with the same
/// `webhook-id`; a 2xx makes it `delivered`. Answers the message with every
/// attempt. 409 while another attempt at it is in flight.
#[utoipa::path(
    post,
    path = "/v1/admin/endpoints/{id}/messages/{message}/resend",
    operation_id = "resend_endpoint_message",
    tag = "endpoints",
    params(
        ("id" = String, Path, description = "The endpoint's id"),
        ("message" = String, Path, description = "The message's id (`msg_…`)"),
    ),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The message after the attempt", body = MessageView),
        (status = 401, description = "Missing or unknown bearer token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "The token's scope is not `admin`", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such endpoint or message", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "An attempt at the message is in flight", body = Problem, content_type = "application/problem+json"),
    )
)]
async fn resend(
    State(state): State<AppState>,
    _admin: Admin,
    Path((id, message)): Path<(String, String)>,
) -> ApiResult<Json<MessageView>> {
    Ok(Json(
        app::endpoints::resend(&state.sender, &state.store, &id, &message)
            .await?
            .into(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_checked_as_the_pattern_states() {
        for good in [
            "http://127.0.0.1:8080/hooks",
            "https://backend.example.com",
            "https://backend.example.com/a/b?x=1&y=%20",
            "http://localhost:65535/",
            "http://a:1",
        ] {
            assert!(check_url(good).is_ok(), "{good}");
        }
        for bad in [
            "ftp://example.com/",
            "http://",
            "http://:80/",
            "http://example.com:0/",
            "http://example.com:65536/",
            "http://example.com:080/",
            "http://user:pass@example.com/",
            "http://example.com/a b",
            "http://example.com/#frag",
            "http://exa_mple.com/",
            "https://example.com/\u{0}",
        ] {
            let e = check_url(bad).unwrap_err();
            assert!(e.to_string().contains("`url`"), "{bad}: {e}");
        }
        let long = format!("https://example.com/{}", "a".repeat(MAX_URL));
        assert!(check_url(&long).is_err());
    }
}
