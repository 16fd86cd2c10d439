//! The path of one webhook delivery, in one direction: integration lookup →
//! provider authentication → provider parsing → domain decision and storage in
//! one transaction → the recorded outcome. HTTP handlers only translate.

use axum::http::HeaderMap;
use sha2::{Digest, Sha256};

use crate::domain::subscription::Incoming;
use crate::domain::{Email, Instant, InvalidValue, ProductKey, Provider, order};
use crate::providers::{self, Meaning, OrderBuyer, Parsed, Request};
use crate::store::{
    Apply, Applying, Buyer, Inbound, Integration, OrderRecord, Recorded, Store, StoreError,
};

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
        provider: Provider,
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
        .integration_for_delivery(delivery.integration)
        .await?
        .filter(|i| i.enabled)
        .ok_or_else(|| IngestError::UnknownIntegration(delivery.integration.to_owned()))?;
    let request = Request {
        headers: delivery.headers,
        query: delivery.query,
        body: delivery.body,
    };
    // The current secret, then the previous one while it is still accepted.
    let authenticated = integration
        .secrets_at(delivery.received_at)
        .find_map(|secret| {
            providers::authenticate(integration.provider, secret, &request, delivery.received_at)
                .ok()
        })
        .ok_or(IngestError::Unauthenticated {
            provider: integration.provider,
        })?;

    let headers = redacted_headers(delivery.headers);
    let parsed = providers::parse(integration.provider, delivery.body);
    let external_ref = match parsed.as_ref().map(|p| &p.meaning) {
        Ok(Meaning::Subscription(event)) => Some(event.external_id.as_str()),
        Ok(Meaning::Order(event)) => Some(event.external_id.as_str()),
        _ => None,
    };
    let inbound = Inbound {
        integration: &integration,
        received_at: delivery.received_at,
        dedup_key: match authenticated.message_id {
            Some(id) => format!("msg:{id}"),
            None => body_key(&integration, delivery.body),
        },
        event_name: parsed.as_ref().ok().and_then(|p| p.event_name.as_deref()),
        body: delivery.body,
        headers: &headers,
        external_ref,
        delivery_id: None,
    };
    let malformed = |field: Option<String>, detail: String| async {
        let recorded = store.record_malformed(&inbound, &detail).await?;
        Err(IngestError::Malformed {
            provider: integration.provider,
            recorded,
            field,
            detail,
        })
    };
    let interpreted = match parsed
        .as_ref()
        .map_err(|e| (e.field.clone(), e.detail.clone()))
        .and_then(|parsed| interpret(&integration, parsed, delivery.received_at))
    {
        Ok(interpreted) => interpreted,
        Err((field, detail)) => return malformed(field, detail).await,
    };
    let delivery = crate::store::Delivery {
        integration: integration.clone(),
        received_at: inbound.received_at,
        dedup_key: inbound.dedup_key,
        event_name: inbound.event_name.map(str::to_owned),
        body: delivery.body.to_vec(),
        headers: headers.clone(),
        external_ref: inbound.external_ref.map(str::to_owned),
        apply: interpreted,
    };
    let recorded = store.record_delivery(delivery).await?;
    Ok((integration, recorded))
}

/// Turns a parsed payload into domain events: maps product ids through the
/// integration's `product_map` and stamps the time the delivery was received.
/// The error names the field at fault.
/// What a stored body asks of the store, read by the current adapter and
/// product map (a rebuild); `Err` is why it is malformed.
pub(crate) fn reinterpret(
    integration: &Integration,
    body: &[u8],
    received_at: Instant,
) -> Result<Applying, String> {
    providers::parse(integration.provider, body)
        .map_err(|e| e.detail)
        .and_then(|parsed| interpret(integration, &parsed, received_at).map_err(|(_, d)| d))
}

fn interpret(
    integration: &Integration,
    parsed: &Parsed,
    received_at: Instant,
) -> Result<Applying, (Option<String>, String)> {
    Ok(match &parsed.meaning {
        Meaning::Ignored => Applying::Ignored {
            reason: format!(
                "{} means nothing for entitlements",
                parsed.event_name.as_deref().unwrap_or("this event")
            ),
        },
        Meaning::Subscription(event) => {
            let product = integration
                .product_key(&event.external_product)
                .map_err(|e| (Some("product".to_owned()), format!("product id: {e}")))?;
            Applying::Subscription {
                external_id: event.external_id.clone(),
                incoming: Incoming {
                    event: event.event,
                    email: event.email.clone(),
                    product,
                    plan: event.plan.clone(),
                    period_start: event.period_start,
                    period_end: event.period_end,
                    received_at,
                },
                previous_plan: event.previous_plan.clone(),
            }
        }
        Meaning::Order(event) => Applying::Order {
            external_id: event.external_id.clone(),
            incoming: order::Incoming {
                event: event.event,
                paid_at: event.paid_at,
                received_at,
            },
            buyer: event
                .buyer
                .as_ref()
                .map(|buyer| buyer_of(integration, buyer))
                .transpose()
                .map_err(|e| (Some("productId".to_owned()), format!("product id: {e}")))?,
        },
    })
}

/// Why a delivery could not be replayed.
#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    #[error("no delivery {0:?}")]
    UnknownDelivery(String),
    #[error("integration {0:?} no longer exists: its deliveries cannot be applied")]
    IntegrationGone(String),
    #[error(
        "the body of delivery {0:?} was dropped (ENTITLED_DELIVERY_RETENTION_DAYS): it cannot be applied again"
    )]
    BodyDropped(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Applies a stored delivery's body again, as received, to the current state;
/// the new outcome is kept beside the earlier ones.
pub async fn replay(
    store: &Store,
    delivery_id: &str,
    now: Instant,
) -> Result<Recorded, ReplayError> {
    let detail = store
        .delivery(delivery_id)
        .await?
        .ok_or_else(|| ReplayError::UnknownDelivery(delivery_id.to_owned()))?;
    let stored = &detail.delivery;
    let integration = store
        .integration(&stored.integration)
        .await?
        .ok_or_else(|| ReplayError::IntegrationGone(stored.integration.clone()))?;
    let body = detail
        .body
        .as_deref()
        .ok_or_else(|| ReplayError::BodyDropped(delivery_id.to_owned()))?;
    let interpreted = providers::parse(integration.provider, body)
        .map_err(|e| (e.field, e.detail))
        .and_then(|parsed| interpret(&integration, &parsed, stored.received_at));
    let apply = match &interpreted {
        Err((_, detail)) => Apply::Malformed { reason: detail },
        Ok(interpreted) => interpreted.as_apply(),
    };
    Ok(store
        .replay_delivery(delivery_id, &integration, &apply, now)
        .await?)
}

/// The products of an order payload as product keys, deduplicated.
fn buyer_of(integration: &Integration, buyer: &OrderBuyer) -> Result<Buyer, InvalidValue> {
    let mut products = buyer
        .external_products
        .iter()
        .map(|p| integration.product_key(p))
        .collect::<Result<Vec<_>, _>>()?;
    products.sort();
    products.dedup();
    Ok(Buyer {
        email: buyer.email.clone(),
        products,
    })
}

/// Why an order could not be registered.
#[derive(Debug, thiserror::Error)]
pub enum RegisterError {
    #[error("no integration {0:?}")]
    UnknownIntegration(String),
    #[error(
        "integration {integration:?} is a {provider} integration, whose payloads say who bought what; only zenobank, zaypay and zid orders are registered"
    )]
    NotRegistrable {
        integration: String,
        provider: &'static str,
    },
    #[error("order {external_id:?} is already registered to another customer or product")]
    Conflict { external_id: String },
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Registers who bought an order (`POST /v1/orders`) and applies the
/// deliveries that arrived for it first. Registering the same order again with
/// the same buyer and product is harmless and returns it.
pub async fn register_order(
    store: &Store,
    integration: &str,
    external_id: &str,
    email: &Email,
    product: &ProductKey,
    now: Instant,
) -> Result<(OrderRecord, bool), RegisterError> {
    let integration = store
        .integration(integration)
        .await?
        .ok_or_else(|| RegisterError::UnknownIntegration(integration.to_owned()))?;
    // Zid merchant orders usually name their buyer, but a marketplace order's
    // masked customer does not: those are registered like Zeno Bank's.
    if !matches!(
        integration.provider,
        Provider::Zenobank | Provider::Zaypay | Provider::Zid
    ) {
        return Err(RegisterError::NotRegistrable {
            integration: integration.id.to_string(),
            provider: integration.provider.as_str(),
        });
    }
    let provider = integration.provider;
    let reparse = move |body: &[u8], received_at: Instant| match providers::parse(provider, body) {
        Ok(Parsed {
            meaning: Meaning::Order(event),
            ..
        }) => Some(order::Incoming {
            event: event.event,
            paid_at: event.paid_at,
            received_at,
        }),
        _ => None,
    };
    let buyer = Buyer {
        email: email.clone(),
        products: vec![product.clone()],
    };
    let (order, created) = store
        .register_order(&integration, external_id, &buyer, now, &reparse)
        .await?;
    if !created && (order.email != *email || order.products != buyer.products) {
        return Err(RegisterError::Conflict {
            external_id: external_id.to_owned(),
        });
    }
    Ok((order, created))
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
