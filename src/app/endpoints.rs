//! Outbound webhook endpoints and their messages.

use super::{Error, Result};
use crate::domain::{Instant, ProductKey};
use crate::outbound::{Resent, Sender};
use crate::secret::Secret;
use crate::store::{Endpoint, Message, Store};

/// Creates or updates an endpoint (`products`: `None` for all); the new
/// signing secret when it was created.
pub async fn save(
    store: &Store,
    id: &str,
    url: &str,
    products: Option<&[ProductKey]>,
    enabled: bool,
    now: Instant,
) -> Result<(Endpoint, Option<Secret>)> {
    let products = products.map(|keys| {
        let mut keys = keys.to_vec();
        keys.sort();
        keys.dedup();
        keys
    });
    Ok(store
        .put_endpoint(id, url, products.as_deref(), enabled, now)
        .await?)
}

/// One attempt at a message now; the message with every attempt after it.
pub async fn resend(sender: &Sender, store: &Store, id: &str, message: &str) -> Result<Message> {
    let missing = || Error::NotFound(format!("no message {message:?} of endpoint {id:?}"));
    match sender.resend(id, message).await? {
        Resent::Tried(_) => {}
        Resent::Busy => {
            return Err(Error::Conflict(
                "an attempt at this message is in flight; try again when it has finished".into(),
            ));
        }
        Resent::Missing => return Err(missing()),
    }
    store.message(id, message).await?.ok_or_else(missing)
}
