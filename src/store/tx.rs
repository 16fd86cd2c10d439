//! Transactions that may lose a race, and trying them again: why an attempt did
//! not commit, which database errors a retry can fix, the jittered backoff,
//! and the bounded retry loop every writer shares.

use std::time::Duration;

use super::StoreError;

/// How many times a transaction is tried in all before a lost race is reported
/// as contention (503, which the provider retries).
pub(super) const MAX_ATTEMPTS: u32 = 20;

/// Whether a failed transaction lost a race and is worth running again.
pub(super) fn is_retryable(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::Database(db) => {
            let code = db.code().unwrap_or_default();
            // SQLite: BUSY (5, and extended codes ending in it), LOCKED (6).
            // PostgreSQL: serialization failure, deadlock.
            matches!(code.as_ref(), "5" | "6" | "517" | "261" | "40001" | "40P01")
                || db.message().contains("database is locked")
        }
        _ => false,
    }
}

/// A unique violation (PostgreSQL 23505; SQLite's constraint codes 1555 and
/// 2067): retried only where a concurrent first insert of the same row explains it.
pub(super) fn is_unique_violation(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::Database(db) => {
            matches!(
                db.code().unwrap_or_default().as_ref(),
                "23505" | "1555" | "2067"
            )
        }
        _ => false,
    }
}

/// Waits before trying a lost race again: exponential (0.5 ms doubling, capped
/// at 64 ms) with full jitter, so writers that collided do not collide again
/// in step.
pub(super) async fn backoff(attempt: u32) {
    let ceiling = 500u64 << attempt.min(7);
    let mut random = [0u8; 8];
    let jitter = match getrandom::fill(&mut random) {
        Ok(()) => u64::from_le_bytes(random) % ceiling,
        Err(_) => ceiling / 2,
    };
    tokio::time::sleep(Duration::from_micros(ceiling / 2 + jitter / 2)).await;
}

/// Why one attempt at the transaction did not commit.
pub(super) enum Attempt {
    /// Lost a race (compare-and-set miss, busy database): run it again.
    Retry,
    /// A unique violation: a concurrent first insert of the same row explains
    /// one, so it is run again, but only [`MAX_UNIQUE_RETRIES`] times; more
    /// means the statement itself is at fault, which a retry cannot fix.
    RetryUnique(sqlx::Error),
    Failed(StoreError),
}

/// How many unique violations one write survives.
pub(super) const MAX_UNIQUE_RETRIES: u32 = 2;

impl From<sqlx::Error> for Attempt {
    fn from(e: sqlx::Error) -> Self {
        if is_unique_violation(&e) {
            Self::RetryUnique(e)
        } else if is_retryable(&e) {
            Self::Retry
        } else {
            Self::Failed(e.into())
        }
    }
}

impl From<StoreError> for Attempt {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Database(e) => e.into(),
            e => Self::Failed(e),
        }
    }
}

/// Takes the store's write turn and runs one transaction attempt (a future
/// yielding `Result<T, Attempt>`, built afresh each time) until it commits or
/// fails for good: an attempt that lost a race runs again, a little later each
/// time. (A macro, not a function taking an async closure: the futures must stay
/// `Send` for axum's handlers.)
macro_rules! retrying {
    ($store:expr, $attempt:expr) => {{
        let _turn = $store.write_turn().await;
        let mut n = 0;
        let mut unique = 0;
        loop {
            n += 1;
            match $attempt.await {
                Ok(done) => break Ok(done),
                Err($crate::store::tx::Attempt::RetryUnique(e)) => {
                    unique += 1;
                    if unique > $crate::store::tx::MAX_UNIQUE_RETRIES {
                        break Err($crate::store::StoreError::Database(e));
                    }
                    if n >= $crate::store::tx::MAX_ATTEMPTS {
                        break Err($crate::store::StoreError::Contention(
                            $crate::store::tx::MAX_ATTEMPTS,
                        ));
                    }
                    $crate::store::tx::backoff(n).await
                }
                Err($crate::store::tx::Attempt::Retry) if n < $crate::store::tx::MAX_ATTEMPTS => {
                    $crate::store::tx::backoff(n).await
                }
                Err($crate::store::tx::Attempt::Retry) => {
                    break Err($crate::store::StoreError::Contention(
                        $crate::store::tx::MAX_ATTEMPTS,
                    ));
                }
                Err($crate::store::tx::Attempt::Failed(e)) => break Err(e),
            }
        }
    }};
}

pub(super) use retrying;
