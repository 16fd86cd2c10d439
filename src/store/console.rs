//! The operator console's own storage: sign-in sessions, and the counts its
//! overview shows. Everything else the console shows or changes goes through
//! the same functions as the API.

use super::{Result, Store, instant, micros, new_id, text};
use crate::domain::Instant;
use crate::secret::{Secret, hash_token};

/// A signed-in operator's session.
#[derive(Debug, Clone)]
pub struct ConsoleSession {
    pub id: String,
    /// The token the forms of this session carry (compared in constant time).
    pub csrf: Secret,
    /// The admin token the operator signed in with: the session ends with it.
    pub token_id: String,
    pub expires_at: Instant,
}

/// How many sources are in each state, for the overview.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StateCounts {
    pub subscriptions: Vec<(String, i64)>,
    pub orders: Vec<(String, i64)>,
    pub active_grants: i64,
}

impl Store {
    /// Opens a session for `token_id` until `expires_at`; returns the cookie's
    /// secret (only its hash is stored) and the session.
    pub async fn open_console_session(
        &self,
        token_id: &str,
        now: Instant,
        expires_at: Instant,
    ) -> Result<(Secret, ConsoleSession)> {
        let secret = Secret::generate("");
        let csrf = Secret::generate("");
        let id = new_id();
        let _turn = self.write_turn().await;
        // Sessions past their end go when a new one opens.
        sqlx::query("DELETE FROM console_sessions WHERE expires_at <= $1")
            .bind(micros(now))
            .execute(&self.pool)
            .await?;
        sqlx::query(
            "INSERT INTO console_sessions (id, secret_hash, csrf, token_id, created_at, expires_at)
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(id.as_str())
        .bind(secret.hash())
        .bind(csrf.expose())
        .bind(token_id)
        .bind(micros(now))
        .bind(micros(expires_at))
        .execute(&self.pool)
        .await?;
        Ok((
            secret,
            ConsoleSession {
                id,
                csrf,
                token_id: token_id.to_owned(),
                expires_at,
            },
        ))
    }

    /// The live session a cookie's secret names: not past its end, and its
    /// admin token not deleted.
    pub async fn console_session(
        &self,
        presented: &str,
        now: Instant,
    ) -> Result<Option<ConsoleSession>> {
        let row = sqlx::query(
            "SELECT s.id AS id, s.csrf AS csrf, s.token_id AS token_id, s.expires_at AS expires_at
             FROM console_sessions s JOIN api_tokens t ON t.id = s.token_id
             WHERE s.secret_hash = $1 AND s.expires_at > $2 AND t.scope = 'admin'",
        )
        .bind(hash_token(presented.as_bytes()))
        .bind(micros(now))
        .fetch_optional(&self.pool)
        .await?;
        row.map(|row| {
            Ok(ConsoleSession {
                id: text(&row, "id")?,
                csrf: Secret::new(text(&row, "csrf")?),
                token_id: text(&row, "token_id")?,
                expires_at: instant(&row, "expires_at")?,
            })
        })
        .transpose()
    }

    /// Ends a session (sign-out).
    pub async fn close_console_session(&self, id: &str) -> Result<()> {
        let _turn = self.write_turn().await;
        sqlx::query("DELETE FROM console_sessions WHERE id = $1")
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Sources by state, for the overview (each count through an index on
    /// the state).
    pub async fn state_counts(&self, now: Instant) -> Result<StateCounts> {
        let mut counts = StateCounts::default();
        for (table, into) in [
            ("subscriptions", &mut counts.subscriptions),
            ("orders", &mut counts.orders),
        ] {
            let rows = sqlx::query(super::trusted(format!(
                "SELECT state, COUNT(*) AS n FROM {table} GROUP BY state ORDER BY state"
            )))
            .fetch_all(&self.pool)
            .await?;
            for row in rows {
                into.push((text(&row, "state")?, sqlx::Row::try_get(&row, "n")?));
            }
        }
        let row = sqlx::query(
            "SELECT COUNT(*) AS n FROM grants
             WHERE revoked_at IS NULL AND (valid_until IS NULL OR valid_until > $1)",
        )
        .bind(micros(now))
        .fetch_one(&self.pool)
        .await?;
        counts.active_grants = sqlx::Row::try_get(&row, "n")?;
        Ok(counts)
    }

    /// Deliveries received since `since`, by day (days since the epoch, UTC)
    /// and outcome.
    pub async fn deliveries_by_day(&self, since: Instant) -> Result<Vec<(i64, String, i64)>> {
        let rows = sqlx::query(
            "SELECT received_at / 86400000000 AS day, outcome, COUNT(*) AS n FROM deliveries
             WHERE received_at >= $1 GROUP BY received_at / 86400000000, outcome
             ORDER BY day, outcome",
        )
        .bind(micros(since))
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| {
                Ok((
                    sqlx::Row::try_get(row, "day")?,
                    text(row, "outcome")?,
                    sqlx::Row::try_get(row, "n")?,
                ))
            })
            .collect()
    }

    /// Customers whose email starts with `prefix`, in order, from the
    /// entitlement rows of every kind of source (through their index).
    pub async fn customers_matching(&self, prefix: &str, limit: i64) -> Result<Vec<String>> {
        let upper = format!("{prefix}\u{10FFFF}");
        sqlx::query(
            "SELECT DISTINCT email FROM entitlements WHERE email >= $1 AND email < $2
             ORDER BY email LIMIT $3",
        )
        .bind(prefix)
        .bind(upper.as_str())
        .bind(limit)
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(|row| text(row, "email"))
        .collect()
    }
}
