//! `GET /v1/events`: the change log as Server-Sent Events, from any replica.
//!
//! Each stream reads the log on from the last sequence it sent, in sequence
//! order, whenever this replica's read model moves (it follows the same
//! commits) and at least every [`POLL`] (time-driven changes touch no rows).
//! Sequences increase in commit order with no gaps, so reading on from the
//! last one sent never skips a change and never repeats one.

use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde::Deserialize;
use utoipa::IntoParams;

use super::AppState;
use super::auth::App;
use super::changes::{ChangeView, sequence};
use super::error::{ApiResult, Problem, opt_field};
use super::extract::Params;
use crate::domain::{Email, ProductKey};
use crate::store::{ChangeFilter, Store};

pub fn router() -> Router<AppState> {
    Router::new().route("/v1/events", get(stream))
}

/// How often a stream looks at the log when nothing woke it.
const POLL: Duration = Duration::from_millis(500);

/// A comment line this often keeps proxies from closing an idle stream.
pub const HEARTBEAT: Duration = Duration::from_secs(15);

/// Changes read per query.
const PAGE: i64 = 500;

/// The `event` field of every event the stream sends.
pub const EVENT: &str = "access.changed";

/// Describes each event of `GET /v1/events` as it is sent, in place of the
/// `String` the derive macro can spell: `id` (the sequence), `event`
/// ([`EVENT`]) and `data` (a [`ChangeView`] as JSON). OpenAPI 3.1 has no
/// `itemSchema` (3.2's), so the media type's `schema` is one event, which is
/// how OpenAPI tools read a `text/event-stream` schema before 3.2
/// (schemathesis among them); comment lines are not events.
pub(super) fn document_events(doc: &mut serde_json::Value) {
    let pointer = "/paths/~1v1~1events/get/responses/200/content/text~1event-stream/schema";
    if let Some(schema) = doc.pointer_mut(pointer) {
        *schema = serde_json::json!({
            "type": "object",
            "description": "One event: a change of the change log, as `GET /v1/admin/changes` lists it",
            "required": ["id", "event", "data"],
            "properties": {
                "id": {
                    "type": "string",
                    "description": "The change's `sequence`: what `Last-Event-ID` resumes after",
                    "pattern": "^[1-9][0-9]*$",
                },
                "event": {"type": "string", "const": EVENT},
                "data": {
                    "type": "string",
                    "description": "The change as JSON",
                    "contentMediaType": "application/json",
                    "contentSchema": {"$ref": "#/components/schemas/ChangeView"},
                },
            },
            "additionalProperties": false,
        });
    }
}

/// Where a stream starts and what it carries.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct StreamQuery {
    /// Start after this sequence (exclusive; default 0: from the oldest
    /// kept). A `Last-Event-ID` header takes its place.
    #[param(value_type = Option<i64>, minimum = 0, maximum = 999_999_999_999_999_999_i64)]
    since: Option<String>,
    /// Only this customer's changes.
    #[param(format = Email)]
    email: Option<String>,
    /// Only this product's changes.
    product: Option<String>,
}

/// Stream changes as Server-Sent Events.
///
/// `text/event-stream`: one event per change, `id: <sequence>`, `event:
/// access.changed`, `data: <the change as JSON>` (as `GET /v1/admin/changes`
/// lists it), in sequence order, each once; a comment line every 15 s keeps
/// the connection open. Resume with the `Last-Event-ID` header (what
/// `EventSource` sends on reconnect) or `since`: the stream starts after that
/// sequence, from the log kept (`ENTITLED_CHANGE_RETENTION_DAYS`).
#[utoipa::path(
    get,
    path = "/v1/events",
    operation_id = "stream_events",
    tag = "events",
    params(
        StreamQuery,
        ("Last-Event-ID" = Option<i64>, Header, description = "The last sequence received: resume after it (takes the place of `since`)", minimum = 0, maximum = 999_999_999_999_999_999_i64),
    ),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The stream of changes: one event per change (`id`, `event`, `data`); comment lines keep it open", content_type = "text/event-stream", body = String),
        (status = 400, description = "`since`, `Last-Event-ID`, `email` or `product` is invalid", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Missing or unknown bearer token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "The token's scope is neither `app` nor `admin`", body = Problem, content_type = "application/problem+json"),
    )
)]
async fn stream(
    State(state): State<AppState>,
    _app: App,
    headers: HeaderMap,
    Params(query): Params<StreamQuery>,
) -> ApiResult<Response> {
    let email = opt_field("email", query.email.as_deref(), Email::parse)?;
    let product = opt_field("product", query.product.as_deref(), ProductKey::parse)?;
    // `since` is checked even when `Last-Event-ID` takes its place: every
    // parameter the document declares is validated.
    let since = query
        .since
        .as_deref()
        .map(|raw| sequence("since", raw))
        .transpose()?;
    let resume = headers
        .get("last-event-id")
        .map(|v| v.to_str().unwrap_or("\u{fffd}").trim())
        .map(|raw| sequence("Last-Event-ID", raw))
        .transpose()?;
    let since = resume.or(since).unwrap_or(0);
    let (tx, rx) = tokio::sync::mpsc::channel::<Bytes>(16);
    let guard = state.metrics.event_stream();
    let store = state.store.clone();
    let mut stopping = state.stopping.subscribe();
    tokio::spawn(async move {
        let _open = guard;
        let filter = Filter {
            email: email.map(|e| e.as_str().to_owned()),
            product: product.map(|p| p.as_str().to_owned()),
        };
        tokio::select! {
            fed = feed(&store, &filter, since, &tx) => {
                if let Err(e) = fed {
                    tracing::warn!(error = %e, "event stream ended: the change log could not be read");
                }
            }
            // At shutdown the stream ends; the client reconnects elsewhere
            // with its Last-Event-ID.
            _ = stopping.wait_for(|stop| *stop) => {}
        }
    });
    let mut response = axum::body::Body::new(Channel(rx)).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/event-stream"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    // Proxies such as nginx would otherwise hold events back.
    headers.insert("x-accel-buffering", HeaderValue::from_static("no"));
    Ok(response)
}

struct Filter {
    email: Option<String>,
    product: Option<String>,
}

/// Sends every change after `since` that passes `filter`, then each new one,
/// until the client goes away.
async fn feed(
    store: &Store,
    filter: &Filter,
    mut since: i64,
    tx: &tokio::sync::mpsc::Sender<Bytes>,
) -> Result<(), crate::store::StoreError> {
    let mut moved = store.read_model_changes();
    let mut quiet_since = tokio::time::Instant::now();
    // An opening comment: the client knows at once the stream is live.
    if tx
        .send(Bytes::from_static(b": stream open\n\n"))
        .await
        .is_err()
    {
        return Ok(());
    }
    loop {
        let changes = store
            .changes(&ChangeFilter {
                email: filter.email.as_deref(),
                product: filter.product.as_deref(),
                since,
                limit: PAGE,
            })
            .await?;
        let full = changes.len() as i64 == PAGE;
        for change in changes {
            since = change.sequence;
            let data = serde_json::to_string(&ChangeView::from(change))
                .map_err(|e| crate::store::StoreError::Corrupt(e.to_string()))?;
            let event = format!("id: {since}\nevent: {EVENT}\ndata: {data}\n\n");
            if tx.send(Bytes::from(event)).await.is_err() {
                return Ok(());
            }
            quiet_since = tokio::time::Instant::now();
        }
        if full {
            continue;
        }
        if quiet_since.elapsed() >= HEARTBEAT {
            if tx
                .send(Bytes::from_static(b": heartbeat\n\n"))
                .await
                .is_err()
            {
                return Ok(());
            }
            quiet_since = tokio::time::Instant::now();
        }
        tokio::select! {
            moved = moved.changed() => {
                if moved.is_err() {
                    // The read model is gone (the store is closing): poll.
                    tokio::time::sleep(POLL).await;
                }
            }
            () = tokio::time::sleep(POLL) => {}
            () = tx.closed() => return Ok(()),
        }
    }
}

/// A response body fed by a channel: each message one frame.
struct Channel(tokio::sync::mpsc::Receiver<Bytes>);

impl http_body::Body for Channel {
    type Data = Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, Self::Error>>> {
        self.0
            .poll_recv(cx)
            .map(|chunk| chunk.map(|bytes| Ok(http_body::Frame::data(bytes))))
    }
}
