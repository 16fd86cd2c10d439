//! API tokens: stored as SHA-256 hashes, shown once at creation.

use sqlx::any::AnyRow;

use super::{Result, Store, StoreError, instant, micros, new_id, text};
use crate::domain::Instant;
use crate::secret::{Secret, hash_token};

/// What a token may reach.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize, utoipa::ToSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum Scope {
    /// Everything.
    Admin,
    /// What a SaaS backend needs: access checks, entitlements, order registration.
    App,
}

impl Scope {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Admin => "admin",
            Self::App => "app",
        }
    }

    pub fn parse(raw: &str) -> Option<Self> {
        match raw {
            "admin" => Some(Self::Admin),
            "app" => Some(Self::App),
            _ => None,
        }
    }

    /// Whether a token of this scope reaches what `required` guards.
    pub fn covers(self, required: Scope) -> bool {
        self == Scope::Admin || self == required
    }
}

/// A stored token, without its value.
#[derive(Debug, Clone)]
pub struct Token {
    pub id: String,
    pub name: String,
    pub scope: Scope,
    pub created_at: Instant,
}

/// The name of the token `ENTITLED_ADMIN_TOKEN` (or the generated one) is stored as.
pub const BOOTSTRAP_NAME: &str = "bootstrap";

pub(super) fn from_row(row: &AnyRow) -> Result<Token> {
    let scope = text(row, "scope")?;
    Ok(Token {
        id: text(row, "id")?,
        name: text(row, "name")?,
        scope: Scope::parse(&scope)
            .ok_or_else(|| StoreError::Corrupt(format!("token scope {scope:?}")))?,
        created_at: instant(row, "created_at")?,
    })
}

impl Store {
    /// Stores a new token's hash.
    pub async fn create_token(
        &self,
        name: &str,
        scope: Scope,
        token: &Secret,
        now: Instant,
    ) -> Result<Token> {
        let _turn = self.write_turn().await;
        let row = sqlx::query(
            "INSERT INTO api_tokens (id, name, scope, token_hash, created_at)
             VALUES ($1, $2, $3, $4, $5) RETURNING id, name, scope, created_at",
        )
        .bind(new_id())
        .bind(name)
        .bind(scope.as_str())
        .bind(token.hash())
        .bind(micros(now))
        .fetch_one(&self.pool)
        .await?;
        self.reads.reload_tokens(&self.pool).await?;
        from_row(&row)
    }

    /// The token a request presented, if it is one of ours.
    pub async fn authenticate_token(&self, presented: &str) -> Result<Option<Token>> {
        self.reads.token(&hash_token(presented.as_bytes())).await
    }

    /// Makes the bootstrap admin token work. With `configured` (from
    /// `ENTITLED_ADMIN_TOKEN`) its hash replaces the stored bootstrap token's;
    /// without it, on a database with no admin token, one is generated and
    /// returned so the caller can print it once.
    pub async fn bootstrap_admin_token(
        &self,
        configured: Option<&Secret>,
        now: Instant,
    ) -> Result<Option<Secret>> {
        if let Some(token) = configured {
            let _turn = self.write_turn().await;
            let mut tx = self.pool.begin().await?;
            sqlx::query("DELETE FROM api_tokens WHERE name = $1 AND scope = 'admin'")
                .bind(BOOTSTRAP_NAME)
                .execute(&mut *tx)
                .await?;
            sqlx::query(
                "INSERT INTO api_tokens (id, name, scope, token_hash, created_at)
                 VALUES ($1, $2, 'admin', $3, $4) ON CONFLICT (token_hash) DO NOTHING",
            )
            .bind(new_id())
            .bind(BOOTSTRAP_NAME)
            .bind(token.hash())
            .bind(micros(now))
            .execute(&mut *tx)
            .await?;
            tx.commit().await?;
            self.reads.reload_tokens(&self.pool).await?;
            return Ok(None);
        }
        let admins: i64 = sqlx::Row::try_get(
            &sqlx::query("SELECT COUNT(*) AS n FROM api_tokens WHERE scope = 'admin'")
                .fetch_one(&self.pool)
                .await?,
            "n",
        )?;
        if admins > 0 {
            return Ok(None);
        }
        let token = Secret::generate("ent_");
        self.create_token(BOOTSTRAP_NAME, Scope::Admin, &token, now)
            .await?;
        Ok(Some(token))
    }
}

impl Store {
    /// Every token, without values, oldest first.
    pub async fn tokens(&self) -> Result<Vec<Token>> {
        sqlx::query("SELECT id, name, scope, created_at FROM api_tokens ORDER BY id")
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(from_row)
            .collect()
    }

    /// Deletes a token: requests presenting it are refused from now on.
    pub async fn delete_token(&self, id: &str) -> Result<bool> {
        let _turn = self.write_turn().await;
        let done = sqlx::query("DELETE FROM api_tokens WHERE id = $1")
            .bind(id)
            .execute(&self.pool)
            .await?;
        self.reads.reload_tokens(&self.pool).await?;
        Ok(done.rows_affected() > 0)
    }
}
