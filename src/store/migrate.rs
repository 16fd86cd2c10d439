//! Applies the migrations embedded in the binary, once each, in order. Several
//! processes starting together take turns (an advisory lock on PostgreSQL, a
//! write transaction on SQLite).

use sqlx::{Acquire, Row};

use super::{Engine, Result, Store};

struct Migration {
    version: i64,
    description: &'static str,
    sqlite: &'static str,
    postgres: &'static str,
}

const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        description: "spine",
        sqlite: include_str!("../../migrations/sqlite/0001_spine.sql"),
        postgres: include_str!("../../migrations/postgres/0001_spine.sql"),
    },
    Migration {
        version: 2,
        description: "history plans",
        sqlite: include_str!("../../migrations/sqlite/0002_history_plans.sql"),
        postgres: include_str!("../../migrations/postgres/0002_history_plans.sql"),
    },
    Migration {
        version: 3,
        description: "orders",
        sqlite: include_str!("../../migrations/sqlite/0003_orders.sql"),
        postgres: include_str!("../../migrations/postgres/0003_orders.sql"),
    },
    Migration {
        version: 4,
        description: "grants",
        sqlite: include_str!("../../migrations/sqlite/0004_grants.sql"),
        postgres: include_str!("../../migrations/postgres/0004_grants.sql"),
    },
    Migration {
        version: 5,
        description: "changes",
        sqlite: include_str!("../../migrations/sqlite/0005_changes.sql"),
        postgres: include_str!("../../migrations/postgres/0005_changes.sql"),
    },
    Migration {
        version: 6,
        description: "scale",
        sqlite: include_str!("../../migrations/sqlite/0006_scale.sql"),
        postgres: include_str!("../../migrations/postgres/0006_scale.sql"),
    },
    Migration {
        version: 7,
        description: "reads",
        sqlite: include_str!("../../migrations/sqlite/0007_reads.sql"),
        postgres: include_str!("../../migrations/postgres/0007_reads.sql"),
    },
    Migration {
        version: 8,
        description: "notifications",
        sqlite: include_str!("../../migrations/sqlite/0008_notifications.sql"),
        postgres: include_str!("../../migrations/postgres/0008_notifications.sql"),
    },
    Migration {
        version: 9,
        description: "console",
        sqlite: include_str!("../../migrations/sqlite/0009_console.sql"),
        postgres: include_str!("../../migrations/postgres/0009_console.sql"),
    },
    Migration {
        version: 10,
        description: "rebuild",
        sqlite: include_str!("../../migrations/sqlite/0010_rebuild.sql"),
        postgres: include_str!("../../migrations/postgres/0010_rebuild.sql"),
    },
    Migration {
        version: 11,
        description: "signing keys",
        sqlite: include_str!("../../migrations/sqlite/0011_signing_keys.sql"),
        postgres: include_str!("../../migrations/postgres/0011_signing_keys.sql"),
    },
    Migration {
        version: 12,
        description: "previous secrets",
        sqlite: include_str!("../../migrations/sqlite/0012_previous_secrets.sql"),
        postgres: include_str!("../../migrations/postgres/0012_previous_secrets.sql"),
    },
    Migration {
        version: 13,
        description: "inputs journal",
        sqlite: include_str!("../../migrations/sqlite/0013_inputs.sql"),
        postgres: include_str!("../../migrations/postgres/0013_inputs.sql"),
    },
];

/// An arbitrary constant: the key of the PostgreSQL advisory lock.
const LOCK_KEY: i64 = 0x656e_7469_746c;

impl Store {
    /// Applies every migration not yet applied; returns how many ran.
    pub async fn migrate(&self) -> Result<usize> {
        self.migrate_logged(true).await
    }

    /// As [`Store::migrate`], each migration applied logged when `log` (a
    /// rebuild's scratch store is migrated quietly).
    pub(super) async fn migrate_logged(&self, log: bool) -> Result<usize> {
        let _turn = self.write_turn().await;
        let mut conn = self.pool.acquire().await?;
        if self.engine == Engine::Postgres {
            sqlx::query("SELECT pg_advisory_lock($1)")
                .bind(LOCK_KEY)
                .execute(&mut *conn)
                .await?;
        }
        // Two processes starting together on one SQLite file can meet in the
        // migration transaction; the loser waits and looks again.
        let mut result = self.apply_pending(&mut conn, log).await;
        for attempt in 1..=20 {
            match &result {
                Err(super::StoreError::Database(e))
                    if super::tx::is_retryable(e) || super::tx::is_unique_violation(e) =>
                {
                    tokio::time::sleep(std::time::Duration::from_millis(50 * attempt)).await;
                    result = self.apply_pending(&mut conn, log).await;
                }
                _ => break,
            }
        }
        if self.engine == Engine::Postgres {
            sqlx::query("SELECT pg_advisory_unlock($1)")
                .bind(LOCK_KEY)
                .execute(&mut *conn)
                .await?;
        }
        result
    }

    async fn apply_pending(&self, conn: &mut sqlx::AnyConnection, log: bool) -> Result<usize> {
        sqlx::raw_sql(
            "CREATE TABLE IF NOT EXISTS schema_migrations (
                version BIGINT PRIMARY KEY,
                description TEXT NOT NULL,
                applied_at BIGINT NOT NULL
            )",
        )
        .execute(&mut *conn)
        .await?;
        let mut applied = 0;
        for migration in MIGRATIONS {
            let mut tx = conn.begin().await?;
            let done = sqlx::query("SELECT version FROM schema_migrations WHERE version = $1")
                .bind(migration.version)
                .fetch_optional(&mut *tx)
                .await?
                .map(|row| row.try_get::<i64, _>("version"))
                .transpose()?
                .is_some();
            if done {
                continue;
            }
            let sql = match self.engine {
                Engine::Sqlite => migration.sqlite,
                Engine::Postgres => migration.postgres,
            };
            sqlx::raw_sql(sql).execute(&mut *tx).await?;
            sqlx::query(
                "INSERT INTO schema_migrations (version, description, applied_at) VALUES ($1, $2, $3)",
            )
            .bind(migration.version)
            .bind(migration.description)
            .bind(super::micros(crate::time_fmt::now()))
            .execute(&mut *tx)
            .await?;
            tx.commit().await?;
            if log {
                tracing::info!(
                    version = migration.version,
                    migration.description,
                    "applied migration"
                );
            }
            applied += 1;
        }
        Ok(applied)
    }
}
