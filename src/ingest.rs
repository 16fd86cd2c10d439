//! The path of one webhook delivery, in one direction: integration lookup →
//! provider authentication → provider parsing → domain decision and storage in
//! one transaction → the recorded outcome. HTTP handlers only translate.

use axum::http::HeaderMap;
use sha2::{Digest, Sha256};

use crate::domain::subscription::Incoming;
use crate::domain::{Instant, Provider};
use crate::providers::{self, Meaning, Request};
use crate::store::{Inbound, Integration, Recorded, Store, StoreError};

/// One inbound webhook request.
pub struct Delivery<'a> {
    pub integration: &'a str,
    pub headers: &'a HeaderMap,
    pub query: Option<&'a str>,
    pub body: &'a [u8],
    pub received_at: Instant,
}

/// Why a delivery was not recorded with a 2xx outcome.
#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    #[error("no enabled integration {0:?}")]
    UnknownIntegration(String),
    /// Nothing was stored.
    #[error("webhook authentication failed")]
    Unauthenticated { provider: Provider },
    /// Stored, with outcome `malformed`.
    #[error("{detail}")]
    Malformed {
        recorded: Recorded,
        field: Option<String>,
        detail: String,
    },
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Authenticates, stores and applies one delivery.
pub async fn receive(
    store: &Store,
    delivery: Delivery<'_>,
) -> Result<(Integration, Recorded), IngestError> {
    let integration = store
        .integration(delivery.integration)
        .await?
        .filter(|i| i.enabled)
        .ok_or_else(|| IngestError::UnknownIntegration(delivery.integration.to_owned()))?;
    let request = Request {
        headers: delivery.headers,
        query: delivery.query,
        body: delivery.body,
    };
    providers::authenticate(integration.provider, &integration.secret, &request).map_err(|_| {
        IngestError::Unauthenticated {
            provider: integration.provider,
        }
    })?;

    let headers = redacted_headers(delivery.headers);
    let parsed = providers::parse(integration.provider, delivery.body);
    let inbound = Inbound {
        integration: &integration,
        received_at: delivery.received_at,
        dedup_key: body_key(&integration, delivery.body),
        event_name: parsed.as_ref().ok().and_then(|p| p.event_name.as_deref()),
        body: delivery.body,
        headers: &headers,
    };
    let malformed = |field: Option<String>, detail: String| async {
        let recorded = store.record_malformed(&inbound, &detail).await?;
        Err(IngestError::Malformed {
            recorded,
            field,
            detail,
        })
    };
    let parsed = match &parsed {
        Ok(parsed) => parsed,
        Err(e) => return malformed(e.field.clone(), e.detail.clone()).await,
    };
    let recorded = match &parsed.meaning {
        Meaning::Ignored => {
            let reason = format!(
                "{} means nothing for entitlements",
                parsed.event_name.as_deref().unwrap_or("this event")
            );
            store.record_ignored(&inbound, &reason).await?
        }
        Meaning::Subscription(event) => {
            let product = match integration.product_key(&event.external_product) {
                Ok(product) => product,
                Err(e) => {
                    return malformed(Some("product".into()), format!("product id: {e}")).await;
                }
            };
            let incoming = Incoming {
                event: event.event,
                email: event.email.clone(),
                product,
                plan: event.plan.clone(),
                period_start: event.period_start,
                period_end: event.period_end,
                received_at: delivery.received_at,
            };
            store
                .apply_subscription_event(&inbound, &event.external_id, &incoming)
                .await?
        }
    };
    Ok((integration.clone(), recorded))
}

/// The dedup key of a provider without message ids: the hash of the
/// integration and the raw body.
fn body_key(integration: &Integration, body: &[u8]) -> String {
    let mut hash = Sha256::new();
    hash.update(integration.id.as_str().as_bytes());
    hash.update([0]);
    hash.update(body);
    format!("sha256:{}", hex::encode(hash.finalize()))
}

/// Headers that carry credentials, whatever the provider.
const SECRET_HEADERS: &[&str] = &[
    "authorization",
    "proxy-authorization",
    "cookie",
    "set-cookie",
    "x-webhook-secret",
    "x-api-key",
];

/// The request headers as a JSON object, credentials replaced by `[REDACTED]`.
pub fn redacted_headers(headers: &HeaderMap) -> String {
    let mut map = serde_json::Map::new();
    for (name, value) in headers {
        let name = name.as_str();
        let secret =
            SECRET_HEADERS.contains(&name) || name.contains("secret") || name.contains("token");
        let value = if secret {
            "[REDACTED]".to_owned()
        } else {
            String::from_utf8_lossy(value.as_bytes()).into_owned()
        };
        match map.get_mut(name) {
            Some(serde_json::Value::String(existing)) => {
                existing.push_str(", ");
                existing.push_str(&value);
            }
            _ => {
                map.insert(name.to_owned(), serde_json::Value::String(value));
            }
        }
    }
    serde_json::Value::Object(map).to_string()
}
