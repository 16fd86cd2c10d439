//! Integrations: configured webhook sources.

use super::{Error, Result};
use crate::domain::{Instant, IntegrationId};
use crate::store::{Integration, IntegrationPut, Store};

/// Creates or replaces an integration (a replaced secret kept as its previous
/// one when asked); whether it was created.
pub async fn put(
    store: &Store,
    id: &IntegrationId,
    put: &IntegrationPut<'_>,
    now: Instant,
) -> Result<(Integration, bool)> {
    Ok(store.put_integration(id, put, now).await?)
}

/// Deletes an integration; its deliveries, sources and history stay.
pub async fn delete(store: &Store, id: &str) -> Result<()> {
    if store.delete_integration(id).await? {
        Ok(())
    } else {
        Err(Error::NotFound(format!("no integration {id:?}")))
    }
}
