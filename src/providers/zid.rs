//! Zid: App Market events (install, subscription active/renew/upgrade/…,
//! uninstall) in one flat JSON shape told apart by `event_name`, and merchant
//! events (orders, products, customers, carts, categories), which carry the bare
//! entity with no event name at all (`providers/zid-merchant-orders.md`). Zid
//! documents no signature: the secret arrives as the `token` query parameter, or
//! as the password of HTTP Basic auth (mandatory on merchant webhooks).

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;

use crate::domain::subscription::Event;
use crate::secret::Secret;

use crate::domain::order;

use super::{
    Fields, Malformed, Meaning, OrderBuyer, OrderEvent, Parsed, Request, SubscriptionEvent,
    Unauthenticated,
};

pub fn authenticate(secret: &Secret, request: &Request<'_>) -> Result<(), Unauthenticated> {
    let by_query = super::query_param(request.query, "token")
        .is_some_and(|token| secret.matches(token.as_bytes()));
    let by_basic =
        basic_password(request.headers).is_some_and(|password| secret.matches(&password));
    if by_query | by_basic {
        Ok(())
    } else {
        Err(Unauthenticated)
    }
}

/// The password of an `Authorization: Basic` header.
fn basic_password(headers: &axum::http::HeaderMap) -> Option<Vec<u8>> {
    let value = headers
        .get(axum::http::header::AUTHORIZATION)?
        .to_str()
        .ok()?;
    let (scheme, encoded) = value.trim().split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = STANDARD.decode(encoded.trim()).ok()?;
    let colon = decoded.iter().position(|&b| b == b':')?;
    Some(decoded[colon + 1..].to_vec())
}

/// What a Zid `event_name` means.
enum Kind {
    Lifecycle(Event),
    /// An app event that means nothing for entitlements.
    OtherAppEvent,
    /// A merchant event (orders, products, …): not about the app's subscription.
    MerchantEvent,
}

fn kind(name: &str) -> Kind {
    let lifecycle = match name {
        "app.market.application.install" => Event::Installed,
        "app.market.subscription.active" => Event::Activated,
        "app.market.subscription.renew" => Event::Renewed,
        "app.market.subscription.upgrade" => Event::Upgraded,
        "app.market.subscription.warning" => Event::Warned,
        "app.market.subscription.suspended" => Event::Suspended,
        "app.market.subscription.expired" => Event::Expired,
        "app.market.subscription.refunded" => Event::Refunded,
        "app.market.application.uninstall" => Event::Uninstalled,
        name if name.starts_with("app.") => return Kind::OtherAppEvent,
        _ => return Kind::MerchantEvent,
    };
    Kind::Lifecycle(lifecycle)
}

/// The subscription id Zid implies: one per store and app.
pub fn external_id(store_id: &str, app_id: &str) -> String {
    format!("{store_id}:{app_id}")
}

pub fn parse(body: &[u8]) -> Result<Parsed, Malformed> {
    let json = super::json(body)?;
    let root = Fields::root(&json)?;
    if root.is_absent("event_name") {
        return merchant_event(&root);
    }
    let name = root.str("event_name")?;
    let ignored = || Parsed {
        event_name: Some(name.to_owned()),
        meaning: Meaning::Ignored,
    };
    let event = match kind(name) {
        Kind::MerchantEvent => return Ok(ignored()),
        Kind::OtherAppEvent => {
            // Still an app event: it must say which store and app it is about.
            root.id("store_id")?;
            root.id("app_id")?;
            return Ok(ignored());
        }
        Kind::Lifecycle(event) => event,
    };
    let store_id = root.id("store_id")?;
    let app_id = root.id("app_id")?;
    let email = root.email("merchant_email")?;
    let plan = root
        .opt_str("plan_name")?
        .map(str::trim)
        .filter(|p| !p.is_empty());
    let old_plan = root
        .opt_str("old_plan_name")?
        .map(str::trim)
        .filter(|p| !p.is_empty());
    Ok(Parsed {
        event_name: Some(name.to_owned()),
        meaning: Meaning::Subscription(SubscriptionEvent {
            external_id: external_id(&store_id, &app_id),
            event,
            email,
            external_product: app_id,
            plan: plan.map(str::to_owned),
            previous_plan: old_plan.map(str::to_owned),
            period_start: root.opt_instant("start_date")?,
            period_end: root.opt_instant("end_date")?,
        }),
    })
}

/// A merchant event: the bare entity. Orders become orders of the
/// integration; every other entity means nothing for entitlements. Nothing a
/// store can send is refused but an order without its `id`: Zid suspends an
/// endpoint that fails 30 times in an hour, and the app's own events with it.
fn merchant_event(root: &Fields<'_>) -> Result<Parsed, Malformed> {
    if root.is_absent("order_status") {
        let entity = entity(root);
        return Ok(Parsed {
            event_name: Some(format!("zid {entity} event")),
            meaning: Meaning::Ignored,
        });
    }
    let external_id = root.id("id")?;
    let status = order_status(root);
    let payment = payment_status(root);
    let event = order_event(status.as_deref(), payment.as_deref());
    Ok(Parsed {
        event_name: Some(format!(
            "order status {}, payment {}",
            status.as_deref().unwrap_or("unknown"),
            payment.as_deref().unwrap_or("unknown"),
        )),
        meaning: Meaning::Order(OrderEvent {
            external_id,
            event,
            // Zid's timestamps carry no zone: paid when the delivery arrived.
            paid_at: None,
            buyer: buyer(root),
        }),
    })
}

/// Which store entity a body is, from the fields only it carries
/// (`zid-merchant-orders.md` §8); carts first, as they also count products.
fn entity(root: &Fields<'_>) -> &'static str {
    let has = |names: &[&str]| names.iter().any(|name| !root.is_absent(name));
    if has(&["cart_total", "phase", "cart_id"]) {
        "abandoned cart"
    } else if has(&["sub_categories", "flat_name", "names"]) {
        "category"
    } else if has(&["sku", "is_published", "is_draft", "sale_price", "price"]) {
        "product"
    } else if has(&["email", "mobile", "business_name", "tax_number"]) {
        "customer"
    } else {
        "merchant"
    }
}

/// `order_status.code` (or a bare-string `order_status`), lower-cased; `None`
/// when it is neither (an integer code, a missing one): an unknown status.
fn order_status(root: &Fields<'_>) -> Option<String> {
    let code = match root.raw("order_status")? {
        serde_json::Value::String(code) => code,
        serde_json::Value::Object(status) => status.get("code")?.as_str()?,
        _ => return None,
    };
    status_word(code)
}

/// `payment_status`, lower-cased; else `payment_status_change.new` when Zid
/// sends it (`paid` or `unpaid`).
fn payment_status(root: &Fields<'_>) -> Option<String> {
    let change = || {
        root.raw("payment_status_change")?
            .as_object()?
            .get("new")?
            .as_str()
    };
    root.raw("payment_status")
        .and_then(serde_json::Value::as_str)
        .or_else(change)
        .and_then(status_word)
}

/// A status as sent, lower-cased for matching; kept (in the delivery's event
/// name) only when it is a short printable word: a merchant's custom status
/// may be anything, and no U+0000 may reach storage.
fn status_word(raw: &str) -> Option<String> {
    let word = raw.trim();
    (!word.is_empty() && word.len() <= 64 && !word.chars().any(char::is_control))
        .then(|| word.to_lowercase())
}

/// DESIGN.md's order table, Zid merchant order column: the first matching row
/// decides (the three order events share one schema, so the state does).
fn order_event(status: Option<&str>, payment: Option<&str>) -> order::Event {
    let status = status.unwrap_or_default();
    let payment = payment.unwrap_or_default();
    if matches!(status, "refunded" | "reversed" | "chargeback") || payment == "refunded" {
        order::Event::Refunded
    } else if matches!(
        status,
        "canceled" | "cancelled" | "voided" | "denied" | "failed"
    ) || payment == "voided"
    {
        order::Event::Canceled
    } else if status == "expired" {
        order::Event::Expired
    } else if payment == "paid" {
        order::Event::Paid
    } else if matches!(
        status,
        "reverse_in_progress" | "processingreverse" | "canceledreversal"
    ) {
        order::Event::Informational
    } else {
        order::Event::Progressed
    }
}

/// Who bought what: `customer.email` and `products[].id`. `None` when either
/// is unusable (a marketplace order's masked customer, a placeholder that is
/// no email, no products): the order is `unmatched` until registered.
fn buyer(root: &Fields<'_>) -> Option<OrderBuyer> {
    let customer = root.object("customer").ok()??;
    let email = customer.email("email").ok()?;
    let external_products: Vec<String> = root
        .objects("products")
        .ok()??
        .iter()
        .filter_map(|product| product.opt_id("id").ok().flatten())
        .collect();
    (!external_products.is_empty()).then_some(OrderBuyer {
        email,
        external_products,
    })
}

#[cfg(test)]
#[path = "zid_tests.rs"]
mod tests;
