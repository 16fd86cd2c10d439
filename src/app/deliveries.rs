//! Stored deliveries applied again by an operator.

use super::{Error, Result};
use crate::domain::Instant;
use crate::ingest::{self, ReplayError};
use crate::store::{Recorded, Store};

/// Applies a stored delivery's body again to the current state; the new
/// outcome is kept beside the earlier ones.
pub async fn replay(store: &Store, id: &str, now: Instant) -> Result<Recorded> {
    match ingest::replay(store, id, now).await {
        Ok(recorded) => Ok(recorded),
        Err(ReplayError::UnknownDelivery(_)) => Err(Error::NotFound(format!("no delivery {id:?}"))),
        Err(e @ (ReplayError::IntegrationGone(_) | ReplayError::BodyDropped(_))) => {
            Err(Error::Conflict(e.to_string()))
        }
        Err(ReplayError::Store(e)) => Err(e.into()),
    }
}
