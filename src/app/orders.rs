//! One-time orders registered by the SaaS backend.

use super::{Error, Result};
use crate::domain::{Email, Instant, IntegrationId, ProductKey};
use crate::ingest::{self, RegisterError};
use crate::store::{OrderRecord, Store};

/// Registers who bought an order and applies the deliveries that waited for
/// it; whether this call registered it (the same registration again is
/// harmless).
pub async fn register(
    store: &Store,
    integration: &IntegrationId,
    external_id: &str,
    email: &Email,
    product: &ProductKey,
    now: Instant,
) -> Result<(OrderRecord, bool)> {
    ingest::register_order(
        store,
        integration.as_str(),
        external_id,
        email,
        product,
        now,
    )
    .await
    .map_err(|e| match e {
        RegisterError::UnknownIntegration(_) | RegisterError::NotRegistrable { .. } => {
            Error::Invalid {
                field: "integration",
                detail: e.to_string(),
            }
        }
        RegisterError::Conflict { .. } => Error::Conflict(e.to_string()),
        RegisterError::Store(e) => Error::Store(e),
    })
}
