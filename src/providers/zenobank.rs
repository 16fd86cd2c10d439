//! Zeno Bank checkouts, delivered by Svix and signed with Standard Webhooks.
//! The message id (`svix-id` / `webhook-id`) is the dedup key; the order is
//! keyed by `data.orderId`, registered by the SaaS backend beforehand.

use crate::domain::Instant;
use crate::domain::order::Event;
use crate::secret::Secret;

use super::{
    Authenticated, Fields, Malformed, Meaning, OrderEvent, Parsed, Request, Unauthenticated,
};
use crate::crypto::standard_webhooks;

pub fn authenticate(
    secret: &Secret,
    request: &Request<'_>,
    now: Instant,
) -> Result<Authenticated, Unauthenticated> {
    match standard_webhooks::verify(secret, request.headers, request.body, now) {
        Ok(id) => Ok(Authenticated {
            message_id: Some(id.into_string()),
        }),
        Err(e) => {
            tracing::debug!(error = %e, "Standard Webhooks verification failed");
            Err(Unauthenticated)
        }
    }
}

fn event(kind: &str) -> Option<Event> {
    Some(match kind {
        "checkout.completed" => Event::Paid,
        "checkout.expired" => Event::Expired,
        "checkout.partially_paid" => Event::Informational,
        _ => return None,
    })
}

pub fn parse(body: &[u8]) -> Result<Parsed, Malformed> {
    let json = super::json(body)?;
    let root = Fields::root(&json)?;
    let kind = root.str("type")?;
    let Some(event) = event(kind) else {
        return Ok(Parsed {
            event_name: Some(kind.to_owned()),
            meaning: Meaning::Ignored,
        });
    };
    let data = root
        .object("data")?
        .ok_or_else(|| Malformed::missing("data"))?;
    Ok(Parsed {
        event_name: Some(kind.to_owned()),
        meaning: Meaning::Order(OrderEvent {
            external_id: data.id("orderId")?,
            event,
            paid_at: None,
            buyer: None,
        }),
    })
}

#[cfg(test)]
#[path = "zenobank_tests.rs"]
mod tests;
