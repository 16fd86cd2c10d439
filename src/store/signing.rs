//! Entitlement-token signing keys, kept in the database so every replica
//! signs with the same key and publishes the same set.

use super::{Result, Store, StoreError, micros, opt_text, text};
use crate::domain::Instant;
use crate::signing::{Jwk, SigningKey};

/// How long a retired key stays published: the longest a token lives, so
/// every token it signed has expired by then.
pub const KEY_PUBLISHED_AFTER_RETIREMENT: time::Duration = time::Duration::seconds(3600);

/// What `entitled rotate-signing-key` did.
#[derive(Debug)]
pub struct Rotation {
    /// The new key's id: tokens are signed with it from now on.
    pub added: String,
    /// The keys it replaced: published until `published_until`.
    pub retired: Vec<String>,
    pub published_until: Instant,
}

impl Store {
    /// The key to sign with: the newest that is not retired, made and stored
    /// on first use.
    pub async fn signing_key(&self, now: Instant) -> Result<SigningKey> {
        if let Some(key) = self.current_signing_key().await? {
            return Ok(key);
        }
        let _turn = self.write_turn().await;
        // Another request (or replica) may have made one meanwhile: two keys
        // made at once are both published, and the newer signs.
        if let Some(key) = self.current_signing_key().await? {
            return Ok(key);
        }
        let key = SigningKey::generate();
        insert(&self.pool, &key, now).await?;
        tracing::info!(
            kid = key.kid(),
            "made the first entitlement-token signing key"
        );
        Ok(key)
    }

    async fn current_signing_key(&self) -> Result<Option<SigningKey>> {
        let row = sqlx::query(
            "SELECT kid, private_d FROM signing_keys
             WHERE retired_at IS NULL AND private_d IS NOT NULL
             ORDER BY created_at DESC, kid DESC LIMIT 1",
        )
        .fetch_optional(&self.pool)
        .await?;
        let Some(row) = row else { return Ok(None) };
        let kid = text(&row, "kid")?;
        let key = opt_text(&row, "private_d")?
            .as_deref()
            .and_then(SigningKey::from_stored)
            .filter(|key| key.kid() == kid)
            .ok_or_else(|| StoreError::Corrupt(format!("signing key {kid} does not read")))?;
        Ok(Some(key))
    }

    /// Every key a token that has not expired may be signed with, newest
    /// first; the first key is made if there is none.
    pub async fn published_keys(&self, now: Instant) -> Result<Vec<Jwk>> {
        self.signing_key(now).await?;
        let rows = sqlx::query(
            "SELECT kid, public_x FROM signing_keys
             WHERE retired_at IS NULL OR retired_at > $1
             ORDER BY created_at DESC, kid DESC",
        )
        .bind(micros(now - KEY_PUBLISHED_AFTER_RETIREMENT))
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| {
                let kid = text(row, "kid")?;
                Jwk::ed25519(text(row, "public_x")?)
                    .filter(|jwk| jwk.kid == kid)
                    .ok_or_else(|| StoreError::Corrupt(format!("signing key {kid} does not read")))
            })
            .collect()
    }

    /// Adds a new signing key and retires the others: their private halves
    /// are cleared, their public halves stay published for
    /// [`KEY_PUBLISHED_AFTER_RETIREMENT`]. Keys retired longer ago are
    /// deleted.
    pub async fn rotate_signing_key(&self, now: Instant) -> Result<Rotation> {
        let _turn = self.write_turn().await;
        let mut tx = self.pool.begin().await?;
        let retired = sqlx::query(
            "UPDATE signing_keys SET retired_at = $1, private_d = NULL
             WHERE retired_at IS NULL RETURNING kid",
        )
        .bind(micros(now))
        .fetch_all(&mut *tx)
        .await?
        .iter()
        .map(|row| text(row, "kid"))
        .collect::<Result<Vec<_>>>()?;
        sqlx::query("DELETE FROM signing_keys WHERE retired_at <= $1")
            .bind(micros(now - KEY_PUBLISHED_AFTER_RETIREMENT))
            .execute(&mut *tx)
            .await?;
        let key = SigningKey::generate();
        insert(&mut *tx, &key, now).await?;
        tx.commit().await?;
        Ok(Rotation {
            added: key.kid().to_owned(),
            retired,
            published_until: now + KEY_PUBLISHED_AFTER_RETIREMENT,
        })
    }
}

async fn insert<'e>(
    executor: impl sqlx::Executor<'e, Database = sqlx::Any>,
    key: &SigningKey,
    now: Instant,
) -> Result<()> {
    sqlx::query(
        "INSERT INTO signing_keys (kid, public_x, private_d, created_at) VALUES ($1, $2, $3, $4)",
    )
    .bind(key.kid())
    .bind(key.public_x())
    .bind(key.stored_seed())
    .bind(micros(now))
    .execute(executor)
    .await?;
    Ok(())
}
