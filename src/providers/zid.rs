//! Zid App Market: app events (install, subscription active/renew/upgrade/…,
//! uninstall) in one flat JSON shape told apart by `event_name`. Zid documents
//! no signature: the secret arrives as the `token` query parameter, or as the
//! password of HTTP Basic auth on webhooks created through Zid's merchant API.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;

use crate::domain::subscription::Event;
use crate::secret::Secret;

use super::{Fields, Malformed, Meaning, Parsed, Request, SubscriptionEvent, Unauthenticated};

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

#[cfg(test)]
#[path = "zid_tests.rs"]
mod tests;
