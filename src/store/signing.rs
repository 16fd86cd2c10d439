//! Entitlement-token signing keys, kept in the database so every replica
//! signs with the same key and publishes the same set.

use super::{Result, Store, StoreError, micros, opt_text, text};
use crate::crypto::jws::{Jwk, SigningKey};
use crate::domain::Instant;

/// How long a retired key stays published: the longest a token lives, and a
/// margin for clocks that disagree and verifiers' leeway.
pub const KEY_PUBLISHED_AFTER_RETIREMENT: time::Duration = time::Duration::seconds(3600 + 300);

/// How long a rotated-in key is published before it signs: longer than the
/// JWKS may be cached (`max-age=60`), so a verifier that meets its `kid`
/// and fetches the set again finds it, even through a cache.
pub const KEY_PUBLISHED_BEFORE_SIGNING: time::Duration = time::Duration::seconds(90);

/// What `entitled rotate-signing-key` did.
#[derive(Debug)]
pub struct Rotation {
    /// The new key's id: published now, signing from `switch_at`.
    pub added: String,
    /// The keys it replaces: they sign until `switch_at`, and stay published
    /// until `published_until`.
    pub retired: Vec<String>,
    pub switch_at: Instant,
    pub published_until: Instant,
}

impl Store {
    /// The key to sign with at `now`: the one that signs latest-from among
    /// those signing now, made and stored on first use.
    pub async fn signing_key(&self, now: Instant) -> Result<SigningKey> {
        if let Some(key) = self.current_signing_key(now).await? {
            return Ok(key);
        }
        let _turn = self.write_turn().await;
        // Another request (or replica) may have made one meanwhile: two keys
        // made at once are both published, and the later signs.
        if let Some(key) = self.current_signing_key(now).await? {
            return Ok(key);
        }
        let key = SigningKey::generate();
        insert(&self.pool, &key, now, now).await?;
        tracing::info!(
            kid = key.kid(),
            "made the first entitlement-token signing key"
        );
        Ok(key)
    }

    async fn current_signing_key(&self, now: Instant) -> Result<Option<SigningKey>> {
        let row = sqlx::query(
            "SELECT kid, private_d FROM signing_keys
             WHERE private_d IS NOT NULL AND signs_from <= $1
               AND (retired_at IS NULL OR retired_at > $1)
             ORDER BY signs_from DESC, kid DESC LIMIT 1",
        )
        .bind(micros(now))
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

    /// Every key that signs, will sign, or signed a token that may not have
    /// expired, newest first; the first key is made if there is none.
    pub async fn published_keys(&self, now: Instant) -> Result<Vec<Jwk>> {
        self.signing_key(now).await?;
        let rows = sqlx::query(
            "SELECT kid, public_x FROM signing_keys
             WHERE retired_at IS NULL OR retired_at > $1
             ORDER BY signs_from DESC, kid DESC",
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

    /// Adds a new signing key, published at once, signing
    /// [`KEY_PUBLISHED_BEFORE_SIGNING`] later (at once when no key is in use
    /// yet); the keys in use retire then. Keys whose tokens have all expired
    /// are deleted.
    pub async fn rotate_signing_key(&self, now: Instant) -> Result<Rotation> {
        let _turn = self.write_turn().await;
        let mut tx = self.pool.begin().await?;
        // With no key in use yet, the new one has nothing to wait for.
        let in_use = sqlx::query("SELECT kid FROM signing_keys WHERE retired_at IS NULL LIMIT 1")
            .fetch_optional(&mut *tx)
            .await?
            .is_some();
        let switch_at = if in_use {
            now + KEY_PUBLISHED_BEFORE_SIGNING
        } else {
            now
        };
        let retired = sqlx::query(
            "UPDATE signing_keys SET retired_at = $1 WHERE retired_at IS NULL RETURNING kid",
        )
        .bind(micros(switch_at))
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
        insert(&mut *tx, &key, now, switch_at).await?;
        tx.commit().await?;
        Ok(Rotation {
            added: key.kid().to_owned(),
            retired,
            switch_at,
            published_until: switch_at + KEY_PUBLISHED_AFTER_RETIREMENT,
        })
    }

    /// Deletes the private halves of keys retired by `now` (the clock does
    /// this every tick): a retired key only verifies. Answers how many.
    pub async fn forget_retired_signing_keys(&self, now: Instant) -> Result<u64> {
        let _turn = self.write_turn().await;
        Ok(sqlx::query(
            "UPDATE signing_keys SET private_d = NULL
             WHERE retired_at <= $1 AND private_d IS NOT NULL",
        )
        .bind(micros(now))
        .execute(&self.pool)
        .await?
        .rows_affected())
    }
}

async fn insert<'e>(
    executor: impl sqlx::Executor<'e, Database = sqlx::Any>,
    key: &SigningKey,
    now: Instant,
    signs_from: Instant,
) -> Result<()> {
    sqlx::query(
        "INSERT INTO signing_keys (kid, public_x, private_d, created_at, signs_from)
         VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(key.kid())
    .bind(key.public_x())
    .bind(key.stored_seed())
    .bind(micros(now))
    .bind(micros(signs_from))
    .execute(executor)
    .await?;
    Ok(())
}
