//! Integrations: configured webhook sources.

use std::collections::BTreeMap;

use sqlx::any::AnyRow;

use super::{
    Result, Store, StoreError, flag, instant, micros, opt_instant, opt_text, text, trusted,
};
use crate::domain::{Instant, IntegrationId, ProductKey, Provider};
use crate::secret::Secret;

/// One configured webhook source.
#[derive(Debug, Clone)]
pub struct Integration {
    pub id: IntegrationId,
    pub provider: Provider,
    pub secret: Secret,
    /// The secret replaced last, still accepted until its instant.
    pub previous_secret: Option<(Secret, Instant)>,
    /// External product id -> product key.
    pub product_map: BTreeMap<String, ProductKey>,
    pub enabled: bool,
    pub created_at: Instant,
    pub updated_at: Instant,
}

/// The longest a replaced secret may still be accepted: 30 days.
pub const MAX_KEEP_PREVIOUS_SECRET_SECONDS: i64 = 2_592_000;

/// What `PUT /v1/admin/integrations/{id}` sets.
pub struct IntegrationPut<'a> {
    pub provider: Provider,
    pub secret: &'a Secret,
    pub product_map: &'a BTreeMap<String, ProductKey>,
    pub enabled: bool,
    /// 0: hold no previous secret. Otherwise, when `secret` replaces another,
    /// the replaced one is accepted for this many seconds more (when it is the
    /// same secret, the previous one held stays as it is).
    pub keep_previous_secret_seconds: i64,
}

impl Integration {
    /// The secrets that authenticate a delivery received at `now`: the
    /// current one, then the previous one until its time is up.
    pub fn secrets_at(&self, now: Instant) -> impl Iterator<Item = &Secret> {
        let previous = self
            .previous_secret
            .as_ref()
            .filter(|(_, until)| now < *until)
            .map(|(secret, _)| secret);
        std::iter::once(&self.secret).chain(previous)
    }

    /// Until when a previous secret is accepted, if one still is at `now`.
    pub fn previous_secret_until(&self, now: Instant) -> Option<Instant> {
        self.previous_secret
            .as_ref()
            .map(|(_, until)| *until)
            .filter(|until| now < *until)
    }

    /// The product key for a provider's product id: mapped, or the id itself.
    pub fn product_key(&self, external: &str) -> Result<ProductKey, crate::domain::InvalidValue> {
        match self.product_map.get(external) {
            Some(key) => Ok(key.clone()),
            None => ProductKey::parse(external),
        }
    }
}

const COLUMNS: &str = "id, provider, secret, product_map, enabled, created_at, updated_at, \
                       previous_secret, previous_secret_until";

fn from_row(row: &AnyRow) -> Result<Integration> {
    let provider = text(row, "provider")?;
    let map: BTreeMap<String, String> = serde_json::from_str(&text(row, "product_map")?)
        .map_err(|e| StoreError::Corrupt(format!("integration product_map: {e}")))?;
    Ok(Integration {
        id: IntegrationId::parse(&text(row, "id")?)?,
        provider: Provider::parse(&provider)
            .ok_or_else(|| StoreError::Corrupt(format!("unknown provider {provider:?}")))?,
        secret: Secret::new(text(row, "secret")?),
        previous_secret: match (
            opt_text(row, "previous_secret")?,
            opt_instant(row, "previous_secret_until")?,
        ) {
            (Some(secret), Some(until)) => Some((Secret::new(secret), until)),
            _ => None,
        },
        product_map: map
            .into_iter()
            .map(|(k, v)| Ok((k, ProductKey::parse(&v)?)))
            .collect::<Result<_>>()?,
        enabled: flag(row, "enabled")?,
        created_at: instant(row, "created_at")?,
        updated_at: instant(row, "updated_at")?,
    })
}

impl Store {
    /// Creates or replaces an integration; `true` when it was created. The
    /// replaced secret moves to the previous one in the same statement, so two
    /// replacements at once cannot lose one.
    pub async fn put_integration(
        &self,
        id: &IntegrationId,
        put: &IntegrationPut<'_>,
        now: Instant,
    ) -> Result<(Integration, bool)> {
        let map: BTreeMap<&str, &str> = put
            .product_map
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        let map = serde_json::to_string(&map).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        let keep = put.keep_previous_secret_seconds > 0;
        let until = crate::domain::add_seconds(now, put.keep_previous_secret_seconds);
        let _turn = self.write_turn().await;
        let row = sqlx::query(trusted(format!(
            "INSERT INTO integrations ({COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $6, NULL, NULL)
             ON CONFLICT (id) DO UPDATE SET provider = $2, secret = $3, product_map = $4,
                 enabled = $5, updated_at = $6,
                 previous_secret = CASE
                     WHEN $7 = 0 THEN NULL
                     WHEN integrations.secret <> $3 THEN integrations.secret
                     ELSE integrations.previous_secret END,
                 previous_secret_until = CASE
                     WHEN $7 = 0 THEN NULL
                     WHEN integrations.secret <> $3 THEN $8
                     ELSE integrations.previous_secret_until END
             RETURNING {COLUMNS}"
        )))
        .bind(id.as_str())
        .bind(put.provider.as_str())
        .bind(put.secret.expose())
        .bind(map)
        .bind(i64::from(put.enabled))
        .bind(micros(now))
        .bind(i64::from(keep))
        .bind(micros(until))
        .fetch_one(&self.pool)
        .await?;
        let integration = from_row(&row)?;
        self.integrations.keep(integration.clone());
        let created =
            integration.created_at == integration.updated_at && integration.created_at == now;
        Ok((integration, created))
    }

    /// An integration as deliveries see it: from memory when this replica read
    /// it less than [`INTEGRATION_FRESH`] ago or changed it since. A change on
    /// another replica reaches this one within that time.
    pub async fn integration_for_delivery(&self, id: &str) -> Result<Option<Integration>> {
        if let Some(fresh) = self.integrations.fresh(id) {
            return Ok(Some(fresh));
        }
        let read = self.integration(id).await?;
        if let Some(integration) = &read {
            self.integrations.keep(integration.clone());
        }
        Ok(read)
    }

    pub async fn integration(&self, id: &str) -> Result<Option<Integration>> {
        sqlx::query(trusted(format!(
            "SELECT {COLUMNS} FROM integrations WHERE id = $1"
        )))
        .bind(id)
        .fetch_optional(&self.pool)
        .await?
        .as_ref()
        .map(from_row)
        .transpose()
    }

    pub async fn integrations(&self) -> Result<Vec<Integration>> {
        sqlx::query(trusted(format!(
            "SELECT {COLUMNS} FROM integrations ORDER BY id"
        )))
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(from_row)
        .collect()
    }

    /// Deletes an integration; its deliveries, subscriptions and history stay.
    pub async fn delete_integration(&self, id: &str) -> Result<bool> {
        let _turn = self.write_turn().await;
        let done = sqlx::query("DELETE FROM integrations WHERE id = $1")
            .bind(id)
            .execute(&self.pool)
            .await?;
        self.integrations.forget(id);
        Ok(done.rows_affected() > 0)
    }
}

/// How long a replica uses an integration it read without reading it again.
pub const INTEGRATION_FRESH: std::time::Duration = std::time::Duration::from_secs(1);

/// Integrations recently read, by id: a delivery's first lookup, before any
/// transaction, without a round trip. Bounded by the integrations configured
/// (only found ones are kept).
#[derive(Debug, Default)]
pub(super) struct Cache {
    kept: std::sync::RwLock<std::collections::HashMap<String, (Integration, std::time::Instant)>>,
}

impl Cache {
    fn fresh(&self, id: &str) -> Option<Integration> {
        let kept = self.kept.read().unwrap_or_else(|e| e.into_inner());
        kept.get(id)
            .filter(|(_, at)| at.elapsed() < INTEGRATION_FRESH)
            .map(|(integration, _)| integration.clone())
    }

    fn keep(&self, integration: Integration) {
        let mut kept = self.kept.write().unwrap_or_else(|e| e.into_inner());
        kept.insert(
            integration.id.to_string(),
            (integration, std::time::Instant::now()),
        );
    }

    fn forget(&self, id: &str) {
        let mut kept = self.kept.write().unwrap_or_else(|e| e.into_inner());
        kept.remove(id);
    }
}
