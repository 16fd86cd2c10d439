//! Fast reads (DESIGN.md "The change log, fast reads and notifications"):
//! every replica keeps each customer's entitlement rows and the API tokens in
//! memory, so an access check never waits on the database.
//!
//! The model follows `entitlement_touches`. Every write of entitlement rows
//! appends, in its transaction, one touch per customer it wrote, or one per
//! product whose windows a policy change rewrote; touches are numbered in
//! commit order (SQLite as they are written, PostgreSQL by the sequencer). A
//! replica that has applied touch N reloads the rows of each customer touched
//! above N, and recomputes each touched product's windows under its stored
//! policy from the facts it holds (what the policy change did in the
//! database). A reload reads the rows as they are then, at least as new as the
//! touch, so the model never goes back.
//!
//! - **Read-your-writes:** a write waits, before it answers, for a follow run
//!   that starts after its commit (and, on PostgreSQL, after its touches are
//!   numbered): its request's 2xx is sent once the model shows it.
//! - **Other replicas** run the follower every [`POLL`] whatever happens, so
//!   they show a write within about that, well inside 1 s.
//! - **Tokens** are reloaded every [`TOKEN_POLL`] and at once after a change
//!   on this replica: a revoked token is refused everywhere within 1 s.
//!
//! Checks read one of [`SHARDS`] maps, chosen by the email's hash, under its
//! read lock: no lock is shared by every check. Tokens are read without a
//! lock from a per-thread copy, refreshed when the set changes.

use std::cell::RefCell;
use std::collections::{HashMap, HashSet};
use std::hash::BuildHasher;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock, PoisonError, RwLock};
use std::time::Duration;

use sqlx::{AnyConnection, AnyPool};

use super::entitlements::{self, EntitlementRow};
use super::runs::Runs;
use super::tokens::{self, Token};
use super::{Result, StoreError, micros, opt_text, text, time_fmt, trusted};
use crate::domain::access::{Facts, SourceState, Window};
use crate::domain::{Email, Instant, Policy, ProductKey, access};

/// How often the follower runs when no write on this replica asks for it.
const POLL: Duration = Duration::from_millis(200);

/// How often the tokens are reloaded.
const TOKEN_POLL: Duration = Duration::from_millis(500);

/// How long a write waits for the model to show it before answering anyway
/// (its write is committed; the next run shows it).
const WAIT: Duration = Duration::from_secs(5);

/// A replica whose model has not caught up for this long is not ready.
const STALE: Duration = Duration::from_secs(5);

/// A replica that could not follow for this long loads everything again
/// (touches are kept [`TOUCH_RETENTION`], far longer).
const RELOAD_AFTER: Duration = Duration::from_secs(3600);

/// How long touches are kept.
pub(super) const TOUCH_RETENTION: Duration = Duration::from_secs(86_400);

/// Maps the model is split into.
const SHARDS: usize = 64;

/// Rows or touches per statement while loading and following.
const PAGE: i64 = 10_000;

/// Customers per reload statement.
const RELOAD_CHUNK: usize = 500;

/// Appends one touch per customer in `emails` (deduplicated by the caller).
pub(super) async fn touch_customers(tx: &mut AnyConnection, emails: &[&Email]) -> Result<()> {
    if emails.is_empty() {
        return Ok(());
    }
    let sql = format!(
        "INSERT INTO entitlement_touches (at, email) VALUES {}",
        super::values_list(emails.len(), 2, 1)
    );
    let now = micros(time_fmt::now());
    let mut query = sqlx::query(trusted(sql));
    for email in emails {
        query = query.bind(now).bind(email.as_str());
    }
    query.execute(&mut *tx).await?;
    Ok(())
}

/// Appends a touch for every row of `product`: its policy changed.
pub(super) async fn touch_product(tx: &mut AnyConnection, product: &ProductKey) -> Result<()> {
    sqlx::query("INSERT INTO entitlement_touches (at, product) VALUES ($1, $2)")
        .bind(micros(time_fmt::now()))
        .bind(product.as_str())
        .execute(&mut *tx)
        .await?;
    Ok(())
}

impl super::Store {
    /// Drops touches older than [`TOUCH_RETENTION`] before `now`: every
    /// replica has followed them long since (one that has not reloads).
    pub async fn drop_old_touches(&self, now: Instant) -> Result<u64> {
        let horizon = micros(now) - TOUCH_RETENTION.as_micros() as i64;
        let _turn = self.write_turn().await;
        Ok(sqlx::query("DELETE FROM entitlement_touches WHERE at < $1")
            .bind(horizon)
            .execute(&self.pool)
            .await?
            .rows_affected())
    }
}

/// No name, in a [`Row`]'s name fields.
const NO_NAME: u32 = u32::MAX;

/// No instant, in a [`Row`]'s instant fields.
const NO_INSTANT: i64 = i64::MIN;

/// The names rows share (products, integrations, providers, plans), each
/// stored once. Append-only: readers look names up without a lock.
struct Names {
    ids: std::sync::Mutex<HashMap<Box<str>, u32>>,
    chunks: Box<[OnceLock<NameChunk>]>,
}

/// [`NAME_CHUNK`] names, each set once.
type NameChunk = Box<[OnceLock<Box<str>>]>;

const NAME_CHUNK: usize = 1024;
const NAME_CHUNKS: usize = 1 << 16;

impl Names {
    fn new() -> Self {
        Self {
            ids: Default::default(),
            chunks: (0..NAME_CHUNKS).map(|_| OnceLock::new()).collect(),
        }
    }

    fn intern(&self, name: Option<&str>) -> Result<u32> {
        let Some(name) = name else {
            return Ok(NO_NAME);
        };
        let mut ids = self.ids.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(&id) = ids.get(name) {
            return Ok(id);
        }
        let id = ids.len();
        if id >= NAME_CHUNK * NAME_CHUNKS {
            return Err(StoreError::Corrupt(
                "more distinct product, integration, provider and plan names than the read model holds"
                    .into(),
            ));
        }
        let chunk = self.chunks[id / NAME_CHUNK]
            .get_or_init(|| (0..NAME_CHUNK).map(|_| OnceLock::new()).collect());
        // Set before the id is handed out: whoever sees the id sees the name.
        let _ = chunk[id % NAME_CHUNK].set(name.into());
        ids.insert(name.into(), id as u32);
        Ok(id as u32)
    }

    fn get(&self, id: u32) -> Option<&str> {
        if id == NO_NAME {
            return None;
        }
        let id = id as usize;
        self.chunks
            .get(id / NAME_CHUNK)?
            .get()?
            .get(id % NAME_CHUNK)?
            .get()
            .map(|name| &**name)
    }
}

/// A source id: UUIDs (every id this service makes) in 16 bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
enum SourceId {
    Uuid([u8; 16]),
    Text(Box<str>),
}

impl SourceId {
    fn new(raw: &str) -> Self {
        if let Ok(uuid) = uuid::Uuid::try_parse(raw) {
            let mut canonical = [0; uuid::fmt::Hyphenated::LENGTH];
            // Only ids that read back as written: the answer shows them as stored.
            if uuid.hyphenated().encode_lower(&mut canonical) == raw {
                return Self::Uuid(uuid.into_bytes());
            }
        }
        Self::Text(raw.into())
    }

    fn to_text(&self) -> String {
        match self {
            Self::Uuid(bytes) => uuid::Uuid::from_bytes(*bytes).hyphenated().to_string(),
            Self::Text(text) => text.to_string(),
        }
    }

    /// The order of the stored text (canonical UUIDs sort as their bytes).
    fn cmp_text(&self, other: &Self) -> std::cmp::Ordering {
        match (self, other) {
            (Self::Uuid(a), Self::Uuid(b)) => a.cmp(b),
            _ => self.to_text().cmp(&other.to_text()),
        }
    }
}

/// One entitlement row, compact.
#[derive(Debug, Clone)]
struct Row {
    id: SourceId,
    state: SourceState,
    product: u32,
    integration: u32,
    provider: u32,
    plan: u32,
    changed_at: i64,
    start: i64,
    end: i64,
    /// The window; `from` is [`NO_INSTANT`] when the row grants nothing.
    from: i64,
    until: i64,
    grace_from: i64,
}

fn packed(at: Option<Instant>) -> i64 {
    at.map_or(NO_INSTANT, micros)
}

fn unpacked(at: i64) -> Option<Instant> {
    (at != NO_INSTANT).then(|| time_fmt::from_micros(at))
}

impl Row {
    fn window(&self) -> Option<Window> {
        unpacked(self.from).map(|from| Window {
            from,
            until: unpacked(self.until),
            grace_from: unpacked(self.grace_from),
        })
    }

    fn set_window(&mut self, window: Option<Window>) {
        self.from = packed(window.map(|w| w.from));
        self.until = packed(window.and_then(|w| w.until));
        self.grace_from = packed(window.and_then(|w| w.grace_from));
    }

    fn facts(&self) -> Facts {
        Facts {
            state: self.state,
            start: time_fmt::from_micros(self.start),
            end: unpacked(self.end),
        }
    }
}

type Customers = HashMap<Box<str>, Box<[Row]>>;

/// What this replica knows, and how far it has followed.
pub(super) struct ReadModel {
    names: Names,
    hasher: std::hash::RandomState,
    shards: Box<[RwLock<Customers>]>,
    tokens: Tokens,
    /// The last touch applied.
    applied: AtomicI64,
    /// Everything loaded once: checks may be answered.
    loaded: tokio::sync::watch::Sender<bool>,
    /// When the follower last caught up, in milliseconds since `epoch`.
    caught_up_at: AtomicU64,
    epoch: std::time::Instant,
    runs: Runs,
    started: AtomicBool,
}

impl std::fmt::Debug for ReadModel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReadModel")
            .field("applied", &self.applied)
            .field("loaded", &*self.loaded.borrow())
            .finish_non_exhaustive()
    }
}

impl Default for ReadModel {
    fn default() -> Self {
        Self {
            names: Names::new(),
            hasher: Default::default(),
            shards: (0..SHARDS).map(|_| RwLock::default()).collect(),
            tokens: Tokens::default(),
            applied: AtomicI64::new(0),
            loaded: tokio::sync::watch::Sender::new(false),
            caught_up_at: AtomicU64::new(0),
            epoch: std::time::Instant::now(),
            runs: Runs::default(),
            started: AtomicBool::new(false),
        }
    }
}

impl ReadModel {
    /// Starts following `pool` (once; the schema must be migrated).
    pub(super) fn start(self: &Arc<Self>, pool: AnyPool) {
        if !self.started.swap(true, Ordering::SeqCst) {
            tokio::spawn(self.clone().follow(pool));
        }
    }

    /// Waits until the model shows every write committed before this call.
    pub(super) async fn caught_up(&self) {
        if self.started.load(Ordering::SeqCst) && !self.runs.wait(WAIT).await {
            tracing::warn!("the read model has not caught up after 5 s; answering anyway");
        }
    }

    /// Loaded, and caught up within [`STALE`].
    pub(super) fn ready(&self) -> bool {
        *self.loaded.borrow()
            && self
                .millis()
                .saturating_sub(self.caught_up_at.load(Ordering::Relaxed))
                < STALE.as_millis() as u64
    }

    /// Waits (at most `limit`) until everything is loaded once.
    async fn loaded(&self) -> Result<()> {
        let mut loaded = self.loaded.subscribe();
        match tokio::time::timeout(WAIT, loaded.wait_for(|l| *l)).await {
            Ok(Ok(_)) => Ok(()),
            _ => Err(StoreError::NotReady),
        }
    }

    fn millis(&self) -> u64 {
        self.epoch.elapsed().as_millis() as u64
    }

    fn shard(&self, email: &str) -> &RwLock<Customers> {
        &self.shards[self.hasher.hash_one(email) as usize % SHARDS]
    }

    /// One customer's rows, for one product or all, ordered by product, then
    /// change time, then source id.
    pub(super) async fn rows(
        &self,
        email: &Email,
        product: Option<&ProductKey>,
    ) -> Result<Vec<EntitlementRow>> {
        self.loaded().await?;
        let customers = self
            .shard(email.as_str())
            .read()
            .unwrap_or_else(PoisonError::into_inner);
        let Some(rows) = customers.get(email.as_str()) else {
            return Ok(Vec::new());
        };
        rows.iter()
            .filter(|row| product.is_none_or(|p| self.names.get(row.product) == Some(p.as_str())))
            .map(|row| self.expand(email, row))
            .collect()
    }

    fn expand(&self, email: &Email, row: &Row) -> Result<EntitlementRow> {
        let name = |id| self.names.get(id).map(str::to_owned);
        Ok(EntitlementRow {
            source_id: row.id.to_text(),
            product: ProductKey::parse(self.names.get(row.product).unwrap_or_default())?,
            email: email.clone(),
            integration: name(row.integration),
            provider: name(row.provider),
            state: row.state,
            plan: name(row.plan),
            facts: row.facts(),
            window: row.window(),
            changed_at: time_fmt::from_micros(row.changed_at),
        })
    }

    fn compact(&self, row: &EntitlementRow) -> Result<Row> {
        let mut compact = Row {
            id: SourceId::new(&row.source_id),
            state: row.state,
            product: self.names.intern(Some(row.product.as_str()))?,
            integration: self.names.intern(row.integration.as_deref())?,
            provider: self.names.intern(row.provider.as_deref())?,
            plan: self.names.intern(row.plan.as_deref())?,
            changed_at: micros(row.changed_at),
            start: micros(row.facts.start),
            end: packed(row.facts.end),
            from: NO_INSTANT,
            until: NO_INSTANT,
            grace_from: NO_INSTANT,
        };
        compact.set_window(row.window);
        Ok(compact)
    }

    /// The order [`ReadModel::rows`] answers in.
    fn sort(&self, rows: &mut [Row]) {
        rows.sort_by(|a, b| {
            self.names
                .get(a.product)
                .cmp(&self.names.get(b.product))
                .then(a.changed_at.cmp(&b.changed_at))
                .then_with(|| a.id.cmp_text(&b.id))
        });
    }

    async fn follow(self: Arc<Self>, pool: AnyPool) {
        let mut failures = 0;
        let mut tokens_at = None::<std::time::Instant>;
        loop {
            let ticket = self.runs.next(POLL).await;
            if pool.is_closed() {
                return;
            }
            let tokens_due = tokens_at.is_none_or(|at| at.elapsed() >= TOKEN_POLL);
            let run = async {
                if tokens_due {
                    self.tokens.reload(&pool).await?;
                }
                self.step(&pool).await
            };
            match run.await {
                Ok(()) => {
                    failures = 0;
                    if tokens_due {
                        tokens_at = Some(std::time::Instant::now());
                    }
                    self.caught_up_at.store(self.millis(), Ordering::Relaxed);
                    self.loaded
                        .send_if_modified(|l| !std::mem::replace(l, true));
                    self.runs.finished(ticket);
                }
                Err(e) => {
                    failures += 1;
                    tracing::warn!(error = %e, "following the database failed; trying again");
                    super::tx::backoff(failures).await;
                    self.runs.again();
                }
            }
        }
    }

    async fn step(&self, pool: &AnyPool) -> Result<()> {
        let behind = self
            .millis()
            .saturating_sub(self.caught_up_at.load(Ordering::Relaxed));
        if !*self.loaded.borrow() || behind >= RELOAD_AFTER.as_millis() as u64 {
            self.load_all(pool).await
        } else {
            self.apply_touches(pool).await
        }
    }

    /// Loads every row: first the last touch, then the rows (at least as new).
    async fn load_all(&self, pool: &AnyPool) -> Result<()> {
        let started = std::time::Instant::now();
        let mark: i64 = sqlx::Row::try_get(
            &sqlx::query("SELECT COALESCE(MAX(sequence), 0) AS mark FROM entitlement_touches")
                .fetch_one(pool)
                .await?,
            "mark",
        )?;
        let mut fresh: Vec<Customers> = (0..SHARDS).map(|_| Customers::new()).collect();
        let mut after: Option<(String, String, String)> = None;
        let mut count = 0u64;
        loop {
            let page = entitlements::page(pool, after.as_ref(), PAGE).await?;
            let Some(last) = page.last() else { break };
            after = Some((
                last.state.kind().as_str().to_owned(),
                last.source_id.clone(),
                last.product.as_str().to_owned(),
            ));
            for row in &page {
                let compact = self.compact(row)?;
                let shard = self.hasher.hash_one(row.email.as_str()) as usize % SHARDS;
                let rows = fresh[shard]
                    .entry(row.email.as_str().into())
                    .or_insert_with(|| Box::new([]));
                let mut grown = std::mem::take(rows).into_vec();
                grown.push(compact);
                *rows = grown.into_boxed_slice();
            }
            count += page.len() as u64;
            if (page.len() as i64) < PAGE {
                break;
            }
        }
        for (shard, mut customers) in self.shards.iter().zip(fresh) {
            for rows in customers.values_mut() {
                self.sort(rows);
            }
            *shard.write().unwrap_or_else(PoisonError::into_inner) = customers;
        }
        self.applied.store(mark, Ordering::SeqCst);
        tracing::info!(
            rows = count,
            elapsed_ms = started.elapsed().as_millis() as u64,
            "read model loaded"
        );
        Ok(())
    }

    /// Applies the touches after the last one applied.
    async fn apply_touches(&self, pool: &AnyPool) -> Result<()> {
        loop {
            let applied = self.applied.load(Ordering::SeqCst);
            let touches = sqlx::query(
                "SELECT sequence, email, product FROM entitlement_touches
                 WHERE sequence > $1 ORDER BY sequence LIMIT $2",
            )
            .bind(applied)
            .bind(PAGE)
            .fetch_all(pool)
            .await?;
            let Some(last) = touches.last() else {
                return Ok(());
            };
            let last: i64 = sqlx::Row::try_get(last, "sequence")?;
            let mut emails = HashSet::new();
            let mut products = HashSet::new();
            for touch in &touches {
                match (opt_text(touch, "email")?, opt_text(touch, "product")?) {
                    (Some(email), _) => {
                        emails.insert(email);
                    }
                    (None, Some(product)) => {
                        products.insert(product);
                    }
                    (None, None) => {}
                }
            }
            for product in &products {
                self.recompute(pool, &ProductKey::parse(product)?).await?;
            }
            let emails: Vec<String> = emails.into_iter().collect();
            for chunk in emails.chunks(RELOAD_CHUNK) {
                self.reload(pool, chunk).await?;
            }
            self.applied.store(last, Ordering::SeqCst);
            if (touches.len() as i64) < PAGE {
                return Ok(());
            }
        }
    }

    /// Replaces the rows of `emails` with what the database holds now.
    async fn reload(&self, pool: &AnyPool, emails: &[String]) -> Result<()> {
        let mut by_email: HashMap<&str, Vec<Row>> =
            emails.iter().map(|e| (e.as_str(), Vec::new())).collect();
        for row in entitlements::of_customers(pool, emails).await? {
            let compact = self.compact(&row)?;
            if let Some(rows) = by_email.get_mut(row.email.as_str()) {
                rows.push(compact);
            }
        }
        for (email, mut rows) in by_email {
            self.sort(&mut rows);
            let mut customers = self
                .shard(email)
                .write()
                .unwrap_or_else(PoisonError::into_inner);
            if rows.is_empty() {
                customers.remove(email);
            } else {
                customers.insert(email.into(), rows.into_boxed_slice());
            }
        }
        Ok(())
    }

    /// Recomputes the windows of `product`'s rows under its stored policy.
    async fn recompute(&self, pool: &AnyPool, product: &ProductKey) -> Result<()> {
        let policy: Policy = super::products::stored_policy(pool, product)
            .await?
            .unwrap_or_default();
        let Some(id) = self
            .names
            .ids
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(product.as_str())
            .copied()
        else {
            return Ok(());
        };
        for shard in self.shards.iter() {
            let mut customers = shard.write().unwrap_or_else(PoisonError::into_inner);
            for rows in customers.values_mut() {
                for row in rows.iter_mut().filter(|row| row.product == id) {
                    row.set_window(access::window(&row.facts(), &policy));
                }
            }
        }
        Ok(())
    }

    /// The token whose hash is `hash`, if it is one of ours.
    pub(super) async fn token(&self, hash: &str) -> Result<Option<Token>> {
        self.loaded().await?;
        Ok(self.tokens.get(hash))
    }

    /// Reloads the tokens now (after a change on this replica).
    pub(super) async fn reload_tokens(&self, pool: &AnyPool) -> Result<()> {
        self.tokens.reload(pool).await
    }
}

/// The API tokens by hash. Checks read a per-thread copy of the current set,
/// taken again only when the set has changed (a new generation).
#[derive(Default)]
struct Tokens {
    current: RwLock<(u64, Arc<HashMap<String, Token>>)>,
    generation: AtomicU64,
    reloading: tokio::sync::Mutex<()>,
}

/// Generations are unique in the process, so a per-thread copy can never be
/// taken for another model's.
static GENERATIONS: AtomicU64 = AtomicU64::new(1);

thread_local! {
    static TOKENS_SEEN: RefCell<(u64, Arc<HashMap<String, Token>>)> = RefCell::default();
}

impl Tokens {
    fn get(&self, hash: &str) -> Option<Token> {
        let generation = self.generation.load(Ordering::Acquire);
        TOKENS_SEEN.with_borrow_mut(|seen| {
            if seen.0 != generation {
                *seen = self
                    .current
                    .read()
                    .unwrap_or_else(PoisonError::into_inner)
                    .clone();
            }
            seen.1
                .get_key_value(hash)
                .filter(|(stored, _)| {
                    crate::secret::constant_time_eq(stored.as_bytes(), hash.as_bytes())
                })
                .map(|(_, token)| token.clone())
        })
    }

    async fn reload(&self, pool: &AnyPool) -> Result<()> {
        let _one_at_a_time = self.reloading.lock().await;
        let rows = sqlx::query("SELECT id, name, scope, token_hash, created_at FROM api_tokens")
            .fetch_all(pool)
            .await?;
        let mut fresh = HashMap::with_capacity(rows.len());
        for row in &rows {
            fresh.insert(text(row, "token_hash")?, tokens::from_row(row)?);
        }
        let mut current = self.current.write().unwrap_or_else(PoisonError::into_inner);
        let same = current.1.len() == fresh.len()
            && fresh
                .iter()
                .all(|(hash, token)| current.1.get(hash).is_some_and(|t| t.id == token.id));
        if !same || current.0 == 0 {
            let generation = GENERATIONS.fetch_add(1, Ordering::SeqCst);
            *current = (generation, Arc::new(fresh));
            self.generation.store(generation, Ordering::Release);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canonical_uuids_are_kept_as_bytes_and_anything_else_as_text() {
        let id = "0190a3c4-5e6f-7a8b-9c0d-1e2f3a4b5c6d";
        assert_eq!(
            SourceId::new(id),
            SourceId::Uuid(uuid::Uuid::parse_str(id).unwrap().into_bytes())
        );
        assert_eq!(SourceId::new(id).to_text(), id);
        for other in [
            "0190A3C4-5E6F-7A8B-9C0D-1E2F3A4B5C6D",
            "0190a3c45e6f7a8b9c0d1e2f3a4b5c6d",
            "sub_1",
        ] {
            assert_eq!(SourceId::new(other), SourceId::Text(other.into()));
            assert_eq!(SourceId::new(other).to_text(), other);
        }
    }

    #[test]
    fn source_ids_sort_as_their_text() {
        let ids = [
            "0190a3c4-5e6f-7a8b-9c0d-1e2f3a4b5c6d",
            "0190a3c4-5e6f-7a8b-9c0d-1e2f3a4b5c6e",
            "0190a3c4-5e6f-7a8b-9c0d-1e2f3a4b5d00",
            "A",
            "sub_1",
        ];
        for a in ids {
            for b in ids {
                assert_eq!(
                    SourceId::new(a).cmp_text(&SourceId::new(b)),
                    a.cmp(b),
                    "{a} {b}"
                );
            }
        }
    }

    #[test]
    fn names_are_stored_once_and_read_back() {
        let names = Names::new();
        let pro = names.intern(Some("pro")).unwrap();
        assert_eq!(names.intern(Some("pro")).unwrap(), pro);
        let team = names.intern(Some("team")).unwrap();
        assert_ne!(pro, team);
        assert_eq!(names.get(pro), Some("pro"));
        assert_eq!(names.get(team), Some("team"));
        assert_eq!(names.intern(None).unwrap(), NO_NAME);
        assert_eq!(names.get(NO_NAME), None);
        assert_eq!(names.get(12345), None);
    }
}
