//! Zenofy: SaaS subscription webhooks (`subscription.*`) and, told apart by
//! `event`, order webhooks. Authentication is the shared secret itself, in the
//! `X-Webhook-Secret` header or the `token` query parameter.

use crate::domain::order;
use crate::domain::subscription::Event;
use crate::secret::Secret;

use super::{
    Fields, Malformed, Meaning, OrderBuyer, OrderEvent, Parsed, Request, SubscriptionEvent,
    Unauthenticated,
};

/// The header Zenofy puts the configured secret in.
pub const SECRET_HEADER: &str = "x-webhook-secret";

pub fn authenticate(secret: &Secret, request: &Request<'_>) -> Result<(), Unauthenticated> {
    let by_header = request
        .headers
        .get(SECRET_HEADER)
        .is_some_and(|v| secret.matches(v.as_bytes()));
    let by_query = super::query_param(request.query, "token")
        .is_some_and(|token| secret.matches(token.as_bytes()));
    if by_header | by_query {
        Ok(())
    } else {
        Err(Unauthenticated)
    }
}

/// The canonical event for a Zenofy subscription `event` value.
fn subscription_event(name: &str) -> Option<Event> {
    Some(match name {
        "subscription.created" => Event::Created,
        "subscription.activated" => Event::Activated,
        "subscription.renewed" => Event::Renewed,
        "subscription.suspended" => Event::Suspended,
        "subscription.canceled" => Event::Canceled,
        "subscription.expired" => Event::Expired,
        _ => return None,
    })
}

/// The canonical event for a Zenofy order `event` value.
fn order_event(name: &str) -> Option<order::Event> {
    Some(match name {
        "order_paid" => order::Event::Paid,
        "order_refunded" => order::Event::Refunded,
        "order_cancelled" => order::Event::Canceled,
        _ => return None,
    })
}

/// An order webhook: the customer and every item's product (bump products
/// included) are in the payload, so the order needs no registration.
fn parse_order(root: &Fields<'_>, name: &str, event: order::Event) -> Result<Parsed, Malformed> {
    let external_id = root.id("orderId")?;
    let customer = root
        .object("customer")?
        .ok_or_else(|| Malformed::missing("customer"))?;
    let email = customer.email("email")?;
    let items = root.objects("items")?.unwrap_or_default();
    if items.is_empty() {
        return Err(Malformed::field(
            "items",
            "`items` must list at least one product",
        ));
    }
    let external_products = items
        .iter()
        .map(|item| item.id("productId"))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Parsed {
        event_name: Some(name.to_owned()),
        meaning: Meaning::Order(OrderEvent {
            external_id,
            event,
            paid_at: root.opt_instant_or_epoch("paidAt")?,
            buyer: Some(OrderBuyer {
                email,
                external_products,
            }),
        }),
    })
}

pub fn parse(body: &[u8]) -> Result<Parsed, Malformed> {
    let json = super::json(body)?;
    let root = Fields::root(&json)?;
    let name = root.str("event")?;
    if let Some(event) = order_event(name) {
        return parse_order(&root, name, event);
    }
    let Some(event) = subscription_event(name) else {
        return Ok(Parsed {
            event_name: Some(name.to_owned()),
            meaning: Meaning::Ignored,
        });
    };
    let external_id = root.id("subscriptionId")?;
    let external_product = root.id("productId")?;
    let email = root.email("customerEmail")?;
    let period_start = root.opt_instant_or_epoch("currentPeriodStart")?;
    let mut period_end = root.opt_instant_or_epoch("currentPeriodEnd")?;
    if event == Event::Renewed
        && let Some(renewal) = root.object("renewal")?
        && let Some(new_end) = renewal.opt_instant_or_epoch("newPeriodEnd")?
    {
        period_end = Some(new_end);
    }
    Ok(Parsed {
        event_name: Some(name.to_owned()),
        meaning: Meaning::Subscription(SubscriptionEvent {
            external_id,
            event,
            email,
            external_product,
            plan: None,
            previous_plan: None,
            period_start,
            period_end,
        }),
    })
}

#[cfg(test)]
#[path = "zenofy_tests.rs"]
mod tests;
