//! ZayPay order status changes. No signature is documented: a secret token in
//! the registered URL (`?token=`) is the only guard. Orders carry no email, so
//! the SaaS backend registers them; they are keyed by `subject_id`.

use crate::domain::order::Event;
use crate::secret::Secret;

use super::{
    Authenticated, Fields, Malformed, Meaning, OrderEvent, Parsed, Request, Unauthenticated,
};

pub fn authenticate(
    secret: &Secret,
    request: &Request<'_>,
) -> Result<Authenticated, Unauthenticated> {
    let by_query = super::query_param(request.query, "token")
        .is_some_and(|token| secret.matches(token.as_bytes()));
    if by_query {
        Ok(Authenticated { message_id: None })
    } else {
        Err(Unauthenticated)
    }
}

/// DESIGN.md's mapping of `payload.order.status`.
fn event(status: &str) -> Option<Event> {
    Some(match status {
        "creating" | "transfer_pending" | "deposit_received" | "kyc_required" | "deposit_only" => {
            Event::Progressed
        }
        "completed" => Event::Paid,
        "cancelled" | "creation_blocked" | "creation_rate_limited" => Event::Canceled,
        "refund_completed" => Event::Refunded,
        "refund_initiated" | "refund_failed" => Event::Informational,
        _ => return None,
    })
}

pub fn parse(body: &[u8]) -> Result<Parsed, Malformed> {
    let json = super::json(body)?;
    let root = Fields::root(&json)?;
    let kind = root.str("event_type")?;
    if kind != "order_status_changed" {
        return Ok(Parsed {
            event_name: Some(kind.to_owned()),
            meaning: Meaning::Ignored,
        });
    }
    let external_id = root.id("subject_id")?;
    let payload = root
        .object("payload")?
        .ok_or_else(|| Malformed::missing("payload"))?;
    let order = payload
        .object("order")?
        .ok_or_else(|| Malformed::missing("payload.order"))?;
    let status = order.str("status")?;
    let name = format!("{kind}:{status}");
    let Some(event) = event(status) else {
        return Ok(Parsed {
            event_name: Some(name),
            meaning: Meaning::Ignored,
        });
    };
    Ok(Parsed {
        event_name: Some(name),
        meaning: Meaning::Order(OrderEvent {
            external_id,
            event,
            paid_at: if event == Event::Paid {
                root.opt_instant("created_at")?
            } else {
                None
            },
            buyer: None,
        }),
    })
}

#[cfg(test)]
#[path = "zaypay_tests.rs"]
mod tests;
