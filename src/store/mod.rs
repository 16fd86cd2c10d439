//! Storage: the only place with SQL. One set of statements serves SQLite and
//! PostgreSQL through sqlx's `Any` driver (`$n` parameters, `ON CONFLICT`,
//! `RETURNING`); only the DDL differs, in `migrations/<engine>/`. Instants travel
//! as unix microseconds and booleans as 0/1, which both engines carry as integers.

mod changes;
mod clock;
mod console;
mod deliveries;
mod effects;
mod entitlements;
mod grants;
mod history;
mod ingest;
mod inputs;
mod integrations;
mod migrate;
mod orders;
mod outbound;
mod policies;
mod products;
mod reads;
mod rebuild;
mod runs;
mod signing;
mod subscriptions;
mod timers;
mod tokens;
mod touches;
mod tx;
mod writer;

use std::time::Duration;

use sqlx::any::{AnyPoolOptions, AnyRow};
use sqlx::{AnyPool, Row};
use tokio::sync::Mutex;

use crate::domain::{Instant, InvalidValue};
use crate::time_fmt;

pub use changes::{Answer, CauseKind, Change, ChangeFilter};
pub use console::{ConsoleSession, StateCounts};
pub use deliveries::{AttemptRecord, DeliveryDetail, DeliveryFilter, DeliveryRecord};
pub use entitlements::EntitlementRow;
pub use grants::Grant;
pub use history::HistoryEntry;
pub use ingest::{Apply, Inbound, Recorded, Subject};
pub use inputs::{Input, InputKind};
pub use integrations::{Integration, IntegrationPut, MAX_KEEP_PREVIOUS_SECRET_SECONDS};
pub use orders::{Buyer, OrderFilter, OrderRecord};
pub use outbound::{
    ACCESS_CHANGED, ENDPOINT_TEST, Endpoint, EndpointStatus, Lease, Leased, Message,
    MessageAttempt, MessageFilter, MessageStatus, OutboundStats, Settle, Target,
};
pub use products::{Flip, PREVIEW_LISTED, PolicyPreview, PreviewCounts, Product};
pub use rebuild::{
    Divergence, Facts as ImageFacts, IMAGE_PAGE, Image, Registration, RowFacts, StoredDelivery,
};
pub use signing::{KEY_PUBLISHED_AFTER_RETIREMENT, KEY_PUBLISHED_BEFORE_SIGNING, Rotation};
pub use subscriptions::{SubscriptionFilter, SubscriptionRecord};
pub use tokens::{Scope, Token};
pub use writer::{Applying, Delivery, MAX_BATCH};

/// Which database engine a URL names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Engine {
    Sqlite,
    Postgres,
}

impl Engine {
    pub fn of(url: &str) -> Option<Self> {
        if url.starts_with("sqlite:") {
            Some(Self::Sqlite)
        } else if url.starts_with("postgres:") || url.starts_with("postgresql:") {
            Some(Self::Postgres)
        } else {
            None
        }
    }
}

/// A storage failure. Details are for logs: the HTTP layer answers 500/503
/// without them.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    #[error("unsupported database URL (expected sqlite:// or postgres://)")]
    UnsupportedUrl,
    #[error("stored data is invalid: {0}")]
    Corrupt(String),
    #[error("gave up after {0} attempts: the row kept changing under us")]
    Contention(u32),
    #[error("the writer has stopped")]
    WriterStopped,
    #[error("the read model is still loading")]
    NotReady,
    /// What a write rested on changed under it (a rebuild's comparison).
    #[error("{0}")]
    Changed(String),
}

impl From<InvalidValue> for StoreError {
    fn from(e: InvalidValue) -> Self {
        Self::Corrupt(e.0)
    }
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// The database, behind one pool.
#[derive(Debug, Clone)]
pub struct Store {
    pool: AnyPool,
    engine: Engine,
    /// SQLite has one writer at a time anyway; taking turns in-process avoids
    /// `SQLITE_BUSY` on snapshot upgrades. PostgreSQL needs no such lock.
    write_lock: Option<std::sync::Arc<Mutex<()>>>,
    /// The group-commit writer's queue (see `writer`).
    writer: writer::Queue,
    /// Group commits so far, and the deliveries they took.
    commits: std::sync::Arc<writer::Commits>,
    /// Integrations deliveries looked up lately.
    integrations: std::sync::Arc<integrations::Cache>,
    /// PostgreSQL: numbers the change log after commits (see `changes`).
    sequencer: Option<std::sync::Arc<changes::Sequencer>>,
    /// What checks read: rows and tokens in memory (see `reads`).
    reads: std::sync::Arc<reads::ReadModel>,
    /// Held by the rebuild running on this store, if any.
    rebuilding: std::sync::Arc<Mutex<()>>,
    /// Set by [`Store::close`]: the writer tasks end.
    closed: std::sync::Arc<tokio::sync::watch::Sender<bool>>,
}

/// One named background task of a store.
pub type Task = (
    &'static str,
    std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>,
);

/// A store's own background work: the group-commit writers (and the tasks
/// that answer their batches), PostgreSQL's change-log sequencer and the read
/// model's follower. Storage spawns nothing: whoever opens a store runs these
/// beside its other work (`crate::workers`). They end when the store closes.
#[must_use = "a store's writes wait for its background tasks: run them"]
pub struct Background {
    tasks: Vec<Task>,
}

impl Background {
    /// The tasks, each named.
    pub fn into_tasks(self) -> Vec<Task> {
        self.tasks
    }
}

impl Store {
    /// Connects and applies pending migrations. A SQLite file is created if
    /// missing, in WAL mode with `synchronous=FULL` and a busy timeout.
    pub async fn connect(url: &str) -> Result<(Self, Background)> {
        let (store, mut background) = Self::connect_without_migrating(url).await?;
        store.migrate().await?;
        background
            .tasks
            .extend(store.reads.follower(store.pool.clone()));
        Ok((store, background))
    }

    /// Connects without migrating and without a read model (commands that
    /// do not answer checks).
    pub async fn connect_without_migrating(url: &str) -> Result<(Self, Background)> {
        Self::open(url, true).await
    }

    /// `durable`: on SQLite, every commit is flushed to disk (`synchronous =
    /// FULL`); a scratch database (see `rebuild`) is not.
    async fn open(url: &str, durable: bool) -> Result<(Self, Background)> {
        sqlx::any::install_default_drivers();
        let engine = Engine::of(url).ok_or(StoreError::UnsupportedUrl)?;
        let (url, options) = match engine {
            Engine::Sqlite => (
                sqlite_url(url),
                AnyPoolOptions::new()
                    .max_connections(8)
                    .after_connect(move |conn, _| {
                        Box::pin(async move {
                            sqlx::raw_sql(if durable {
                                "PRAGMA busy_timeout = 10000; PRAGMA journal_mode = WAL; \
                                 PRAGMA synchronous = FULL; PRAGMA foreign_keys = ON; \
                                 PRAGMA cache_size = -16384;"
                            } else {
                                "PRAGMA busy_timeout = 10000; PRAGMA journal_mode = WAL; \
                                 PRAGMA synchronous = OFF; PRAGMA foreign_keys = ON; \
                                 PRAGMA cache_size = -16384;"
                            })
                            .execute(conn)
                            .await?;
                            Ok(())
                        })
                    }),
            ),
            // Writers, the sequencer and reads.
            Engine::Postgres => (url.to_owned(), AnyPoolOptions::new().max_connections(32)),
        };
        let pool = options
            .acquire_timeout(Duration::from_secs(10))
            .connect(&url)
            .await?;
        let (queue, jobs) = writer::queue();
        let mut tasks = Vec::new();
        let sequencer = (engine == Engine::Postgres).then(|| {
            let (sequencer, task) = changes::Sequencer::new(pool.clone());
            tasks.push(task);
            sequencer
        });
        let mut store = Self {
            pool: pool.clone(),
            engine,
            write_lock: (engine == Engine::Sqlite).then(|| std::sync::Arc::new(Mutex::new(()))),
            writer: queue,
            commits: std::sync::Arc::default(),
            integrations: std::sync::Arc::default(),
            sequencer: None,
            reads: std::sync::Arc::default(),
            rebuilding: std::sync::Arc::default(),
            closed: std::sync::Arc::new(tokio::sync::watch::Sender::new(false)),
        };
        let (writers, batch) = match engine {
            Engine::Sqlite => (1, writer::MAX_BATCH),
            Engine::Postgres => (writer::POSTGRES_WRITERS, writer::POSTGRES_BATCH),
        };
        store.sequencer = sequencer;
        tasks.extend(writer::tasks(&store, jobs, writers, batch));
        Ok((store, Background { tasks }))
    }

    pub fn engine(&self) -> Engine {
        self.engine
    }

    /// Readiness: the database answers a query and the read model has
    /// caught up (loaded, and followed within the last seconds).
    pub async fn ping(&self) -> Result<()> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        if !self.reads.ready() {
            return Err(StoreError::NotReady);
        }
        Ok(())
    }

    /// Waits (at most `limit`) until this replica's read model is ready: tests
    /// and benchmarks that start a store and query it at once.
    pub async fn wait_ready(&self, limit: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + limit;
        while !self.reads.ready() {
            if tokio::time::Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        true
    }

    /// Closes the pool, waiting for connections in use to be returned.
    pub async fn close(&self) {
        self.closed.send_replace(true);
        self.pool.close().await;
    }

    /// Commits a write that may have changed answers; once this returns, its
    /// changes are in the log, numbered, and this replica's checks show it.
    async fn commit(&self, tx: sqlx::Transaction<'_, sqlx::Any>) -> Result<()> {
        tx.commit().await?;
        self.settled().await;
        Ok(())
    }

    /// Waits until every change committed so far is numbered (PostgreSQL; on
    /// SQLite they are numbered in their transactions) and the read model
    /// shows every write committed so far.
    async fn settled(&self) {
        if let Some(sequencer) = &self.sequencer {
            sequencer.numbered().await;
        }
        self.reads.caught_up().await;
    }

    /// Takes the in-process write turn (SQLite only).
    async fn write_turn(&self) -> Option<tokio::sync::MutexGuard<'_, ()>> {
        match &self.write_lock {
            Some(lock) => Some(lock.lock().await),
            None => None,
        }
    }
}

/// Adds `mode=rwc` so a missing SQLite file is created.
fn sqlite_url(url: &str) -> String {
    if url.contains("mode=") || url.contains(":memory:") {
        url.to_owned()
    } else if url.contains('?') {
        format!("{url}&mode=rwc")
    } else {
        format!("{url}?mode=rwc")
    }
}

// Reading columns. `Any` has no date type: instants are integers.

fn instant(row: &AnyRow, column: &str) -> Result<Instant> {
    Ok(time_fmt::from_micros(row.try_get::<i64, _>(column)?))
}

fn opt_instant(row: &AnyRow, column: &str) -> Result<Option<Instant>> {
    Ok(row
        .try_get::<Option<i64>, _>(column)?
        .map(time_fmt::from_micros))
}

fn text(row: &AnyRow, column: &str) -> Result<String> {
    Ok(row.try_get::<String, _>(column)?)
}

fn opt_text(row: &AnyRow, column: &str) -> Result<Option<String>> {
    Ok(row.try_get::<Option<String>, _>(column)?)
}

fn flag(row: &AnyRow, column: &str) -> Result<bool> {
    Ok(row.try_get::<i64, _>(column)? != 0)
}

fn micros(at: Instant) -> i64 {
    time_fmt::to_micros(at)
}

fn opt_micros(at: Option<Instant>) -> Option<i64> {
    at.map(time_fmt::to_micros)
}

/// SQL assembled from constants and numbered placeholders, never from values.
/// The placeholders of a multi-row `VALUES` list: `rows` tuples of `width`
/// parameters each, numbered from `$first`: `($1, $2), ($3, $4)`.
fn values_list(rows: usize, width: usize, first: usize) -> String {
    (0..rows)
        .map(|i| {
            let p = first + width * i;
            let params: Vec<String> = (p..p + width).map(|n| format!("${n}")).collect();
            format!("({})", params.join(", "))
        })
        .collect::<Vec<_>>()
        .join(", ")
}

fn trusted(sql: String) -> sqlx::AssertSqlSafe<String> {
    sqlx::AssertSqlSafe(sql)
}

/// A fresh id: UUIDv7, so ids sort by creation time.
pub fn new_id() -> String {
    uuid::Uuid::now_v7().to_string()
}

/// `WHERE` clauses built from optional filters, every value bound.
#[derive(Default)]
struct Filter {
    clauses: Vec<String>,
    binds: Vec<String>,
}

impl Filter {
    fn push(&mut self, column: &str, op: &str, value: Option<&str>) {
        if let Some(value) = value {
            self.binds.push(value.to_owned());
            self.clauses
                .push(format!("{column} {op} ${}", self.binds.len()));
        }
    }

    fn eq(&mut self, column: &str, value: Option<&str>) {
        self.push(column, "=", value);
    }

    fn is_empty(&self) -> bool {
        self.clauses.is_empty()
    }

    fn sql(&self) -> String {
        if self.clauses.is_empty() {
            String::new()
        } else {
            format!("WHERE {}", self.clauses.join(" AND "))
        }
    }

    /// The next placeholder number, for a `LIMIT` after the filters.
    fn next(&self) -> usize {
        self.binds.len() + 1
    }

    fn query(&self, sql: String) -> sqlx::query::Query<'_, sqlx::Any, sqlx::any::AnyArguments> {
        let mut query = sqlx::query(trusted(sql));
        for value in &self.binds {
            query = query.bind(value.as_str());
        }
        query
    }
}

impl Store {
    /// Runs a statement with no parameters (schema set-up in tests and tools).
    /// Never call it with anything built from user input.
    pub async fn execute_admin(&self, sql: &str) -> Result<()> {
        sqlx::raw_sql(trusted(sql.to_owned()))
            .execute(&self.pool)
            .await?;
        Ok(())
    }
}
