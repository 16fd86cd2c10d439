//! API tokens.

use super::{Error, Result};
use crate::domain::Instant;
use crate::secret::Secret;
use crate::store::{Scope, Store, Token};

/// Makes a token; its value is in the answer and nowhere else (only its hash
/// is stored).
pub async fn create(
    store: &Store,
    name: &str,
    scope: Scope,
    now: Instant,
) -> Result<(Token, Secret)> {
    let value = Secret::generate("ent_");
    let token = store.create_token(name, scope, &value, now).await?;
    Ok((token, value))
}

/// Deletes a token: it is refused at once, on every replica within a second.
pub async fn delete(store: &Store, id: &str) -> Result<()> {
    if store.delete_token(id).await? {
        Ok(())
    } else {
        Err(Error::NotFound(format!("no token {id:?}")))
    }
}
