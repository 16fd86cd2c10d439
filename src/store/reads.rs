//! Fast reads (DESIGN.md "The change log, fast reads and notifications"):
//! every replica keeps each customer's entitlement rows and the API tokens in
//! memory, so an access check never waits on the database.
//!
//! The model follows `entitlement_touches`. Every write of entitlement rows
//! appends, in its transaction, one touch per customer it wrote, or one per
//! product whose windows a policy change rewrote; touches are numbered in
//! commit order (SQLite as they are written, PostgreSQL by the sequencer). A
//! replica that has applied touch N reloads the rows of each customer touched
//! above N, and takes each touched product's stored policy, under which the
//! windows of its rows are computed from their facts at read time (what the
//! policy change recomputed in the database). A reload reads the rows as they
//! are then, at least as new as the touch, so the model never goes back.
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

use sqlx::AnyPool;

use super::entitlements::{self, EntitlementRow};
use super::runs::Runs;
use super::tokens::{self, Token};
use super::{Result, StoreError, micros, opt_text, text, time_fmt};
use crate::domain::access::{Facts, SourceKind, SourceState};
use crate::domain::{Email, Policy, ProductKey, access};

/// How often the follower runs when no write on this replica asks for it.
const POLL: Duration = Duration::from_millis(200);

/// How often the tokens are reloaded.
const TOKEN_POLL: Duration = Duration::from_millis(200);

/// How long a write waits for the model to show it before answering anyway
/// (its write is committed; the next run shows it).
const WAIT: Duration = Duration::from_secs(5);

/// A replica whose model has not caught up for this long is not ready.
const STALE: Duration = Duration::from_secs(5);

/// A replica that could not follow for this long loads everything again
/// (touches are kept `touches::TOUCH_RETENTION`, far longer).
const RELOAD_AFTER: Duration = Duration::from_secs(3600);

/// Maps the model is split into.
const SHARDS: usize = 64;

/// Rows or touches per statement while loading and following.
const PAGE: i64 = 10_000;

/// Customers per reload statement.
const RELOAD_CHUNK: usize = 500;

/// No name, in a [`Row`]'s name fields.
const NO_NAME: u32 = u32::MAX;

/// No instant, in a [`Row`]'s `end`.
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

/// A source id: a UUID (every id this service makes) as its 16 bytes, or,
/// for anything else, the id of the text among the [`Names`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SourceId {
    Uuid([u8; 16]),
    Text(u32),
}

impl SourceId {
    fn new(raw: &str, names: &Names) -> Result<Self> {
        if let Ok(uuid) = uuid::Uuid::try_parse(raw) {
            let mut canonical = [0; uuid::fmt::Hyphenated::LENGTH];
            // Only ids that read back as written: the answer shows them as stored.
            if uuid.hyphenated().encode_lower(&mut canonical) == raw {
                return Ok(Self::Uuid(uuid.into_bytes()));
            }
        }
        Ok(Self::Text(names.intern(Some(raw))?))
    }

    fn to_text(self, names: &Names) -> String {
        match self {
            Self::Uuid(bytes) => uuid::Uuid::from_bytes(bytes).hyphenated().to_string(),
            Self::Text(id) => names.get(id).unwrap_or_default().to_owned(),
        }
    }

    /// The order of the stored text (canonical UUIDs sort as their bytes).
    fn cmp_text(self, other: Self, names: &Names) -> std::cmp::Ordering {
        match (self, other) {
            (Self::Uuid(a), Self::Uuid(b)) => a.cmp(&b),
            _ => self.to_text(names).cmp(&other.to_text(names)),
        }
    }
}

/// One entitlement row, compact: its facts, not its window, which is
/// computed under the product's policy when it is read (what the database
/// stores is that same computation: every write computes it under the policy
/// it reads, and a policy change recomputes every row of its product).
#[derive(Debug, Clone)]
struct Row {
    id: SourceId,
    changed_at: i64,
    start: i64,
    /// [`NO_INSTANT`] when there is none.
    end: i64,
    product: u32,
    integration: u32,
    provider: u32,
    plan: u32,
    state: SourceState,
}

impl Row {
    fn facts(&self) -> Facts {
        Facts {
            state: self.state,
            start: time_fmt::from_micros(self.start),
            end: (self.end != NO_INSTANT).then(|| time_fmt::from_micros(self.end)),
        }
    }
}

/// A customer's rows; most customers have one, kept inline.
#[derive(Debug)]
enum Rows {
    One(Row),
    Many(Box<[Row]>),
}

impl Rows {
    fn new(mut rows: Vec<Row>) -> Option<Self> {
        match rows.len() {
            0 => None,
            1 => rows.pop().map(Self::One),
            _ => Some(Self::Many(rows.into_boxed_slice())),
        }
    }

    fn as_slice(&self) -> &[Row] {
        match self {
            Self::One(row) => std::slice::from_ref(row),
            Self::Many(rows) => rows,
        }
    }
}

#[derive(Debug)]
struct Customer {
    email: Box<str>,
    rows: Rows,
}

/// One part of the model: customers stored densely, found through a table of
/// their positions by the email's hash; and a copy of every product's policy,
/// so a check reads both under the one lock it takes.
#[derive(Default)]
struct Shard {
    index: hashbrown::HashTable<u32>,
    customers: Vec<Customer>,
    policies: HashMap<u32, Policy>,
}

impl Shard {
    fn get(&self, hash: u64, email: &str) -> Option<&Customer> {
        self.index
            .find(hash, |&i| &*self.customers[i as usize].email == email)
            .map(|&i| &self.customers[i as usize])
    }

    /// Sets a customer's rows; none removes the customer.
    fn put(&mut self, hasher: &Hasher, email: &str, rows: Vec<Row>) {
        let hash = hasher.hash_one(email);
        let found = self
            .index
            .find(hash, |&i| &*self.customers[i as usize].email == email)
            .copied();
        match (found, Rows::new(rows)) {
            (Some(i), Some(rows)) => self.customers[i as usize].rows = rows,
            (None, Some(rows)) => {
                let i = self.customers.len() as u32;
                self.customers.push(Customer {
                    email: email.into(),
                    rows,
                });
                let customers = &self.customers;
                self.index
                    .insert_unique(hash, i, |&j| hasher.hash_one(&*customers[j as usize].email));
            }
            (Some(i), None) => self.remove(hasher, hash, i),
            (None, None) => {}
        }
    }

    /// Adds one row to a customer (the loader's way; it sorts them after).
    fn append(&mut self, hasher: &Hasher, hash: u64, email: &str, row: Row) {
        let found = self
            .index
            .find(hash, |&i| &*self.customers[i as usize].email == email)
            .copied();
        match found {
            Some(i) => {
                let rows = &mut self.customers[i as usize].rows;
                let mut all = rows.as_slice().to_vec();
                all.push(row);
                *rows = Rows::Many(all.into_boxed_slice());
            }
            None => self.put(hasher, email, vec![row]),
        }
    }

    /// Removes customer `i` (whose email hashes to `hash`); the last customer
    /// takes its place.
    fn remove(&mut self, hasher: &Hasher, hash: u64, i: u32) {
        if let Ok(entry) = self.index.find_entry(hash, |&j| j == i) {
            entry.remove();
        }
        let last = self.customers.len() as u32 - 1;
        self.customers.swap_remove(i as usize);
        if i != last {
            let moved = hasher.hash_one(&*self.customers[i as usize].email);
            if let Some(slot) = self.index.find_mut(moved, |&j| j == last) {
                *slot = i;
            }
        }
    }
}

/// The email hash: the shard from its middle bits, the position in the
/// shard's table from the rest (hashbrown reads the low and the top bits).
type Hasher = std::hash::RandomState;

fn shard_of(hash: u64) -> usize {
    (hash >> 32) as usize % SHARDS
}

/// What this replica knows, and how far it has followed.
pub(super) struct ReadModel {
    names: Names,
    hasher: Hasher,
    shards: Box<[RwLock<Shard>]>,
    tokens: Tokens,
    /// The last touch applied.
    applied: AtomicI64,
    /// Everything loaded once: checks may be answered. Read through
    /// `is_loaded` (a watch's value sits behind a lock); waited for here.
    loaded: tokio::sync::watch::Sender<bool>,
    is_loaded: AtomicBool,
    /// When the follower last caught up, in milliseconds since `epoch`.
    caught_up_at: AtomicU64,
    epoch: std::time::Instant,
    runs: Runs,
    started: AtomicBool,
    /// Bumped whenever the model changes: waiting checks look again.
    changed: tokio::sync::watch::Sender<u64>,
}

impl std::fmt::Debug for ReadModel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReadModel")
            .field("applied", &self.applied)
            .field("loaded", &self.is_loaded)
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
            is_loaded: AtomicBool::new(false),
            caught_up_at: AtomicU64::new(0),
            epoch: std::time::Instant::now(),
            runs: Runs::default(),
            started: AtomicBool::new(false),
            changed: tokio::sync::watch::Sender::new(0),
        }
    }
}

/// A row as the loader reads it (from a JSON page).
type Loaded = (
    String,
    String,
    String,
    String,
    Option<String>,
    Option<String>,
    String,
    Option<String>,
    i64,
    Option<i64>,
    i64,
);

impl ReadModel {
    /// The task that follows `pool` (the schema must be migrated), for the
    /// caller to run (`super::Background`); `None` when one was made already.
    pub(super) fn follower(self: &Arc<Self>, pool: AnyPool) -> Option<super::Task> {
        if self.started.swap(true, Ordering::SeqCst) {
            return None;
        }
        Some(("read model follower", Box::pin(self.clone().follow(pool))))
    }

    /// Waits until the model shows every write committed before this call.
    pub(super) async fn caught_up(&self) {
        if self.started.load(Ordering::SeqCst) && !self.runs.wait(WAIT).await {
            tracing::warn!("the read model has not caught up after 5 s; answering anyway");
        }
    }

    /// A receiver that is told of the next change to the model.
    pub(super) fn changes(&self) -> tokio::sync::watch::Receiver<u64> {
        self.changed.subscribe()
    }

    fn bump(&self) {
        self.changed.send_modify(|n| *n += 1);
    }

    /// Loaded, and caught up within [`STALE`].
    pub(super) fn ready(&self) -> bool {
        self.is_loaded.load(Ordering::Acquire)
            && self
                .millis()
                .saturating_sub(self.caught_up_at.load(Ordering::Relaxed))
                < STALE.as_millis() as u64
    }

    /// Waits (at most [`WAIT`]) until everything is loaded once.
    async fn loaded(&self) -> Result<()> {
        if self.is_loaded.load(Ordering::Acquire) {
            return Ok(());
        }
        let mut loaded = self.loaded.subscribe();
        match tokio::time::timeout(WAIT, loaded.wait_for(|l| *l)).await {
            Ok(Ok(_)) => Ok(()),
            _ => Err(StoreError::NotReady),
        }
    }

    fn millis(&self) -> u64 {
        self.epoch.elapsed().as_millis() as u64
    }

    /// One customer's rows, for one product or all, ordered by product, then
    /// change time, then source id.
    pub(super) async fn rows(
        &self,
        email: &Email,
        product: Option<&ProductKey>,
    ) -> Result<Vec<EntitlementRow>> {
        self.loaded().await?;
        let hash = self.hasher.hash_one(email.as_str());
        let shard = self.shards[shard_of(hash)]
            .read()
            .unwrap_or_else(PoisonError::into_inner);
        let Some(customer) = shard.get(hash, email.as_str()) else {
            return Ok(Vec::new());
        };
        customer
            .rows
            .as_slice()
            .iter()
            .filter(|row| product.is_none_or(|p| self.names.get(row.product) == Some(p.as_str())))
            .map(|row| self.expand(email, row, shard.policies.get(&row.product)))
            .collect()
    }

    fn expand(&self, email: &Email, row: &Row, policy: Option<&Policy>) -> Result<EntitlementRow> {
        let name = |id| self.names.get(id).map(str::to_owned);
        let facts = row.facts();
        Ok(EntitlementRow {
            source_id: row.id.to_text(&self.names),
            product: ProductKey::parse(self.names.get(row.product).unwrap_or_default())?,
            email: email.clone(),
            integration: name(row.integration),
            provider: name(row.provider),
            state: row.state,
            plan: name(row.plan),
            window: access::window(&facts, policy.unwrap_or(&Policy::default())),
            facts,
            changed_at: time_fmt::from_micros(row.changed_at),
        })
    }

    fn compact(&self, row: &EntitlementRow) -> Result<Row> {
        Ok(Row {
            id: SourceId::new(&row.source_id, &self.names)?,
            changed_at: micros(row.changed_at),
            start: micros(row.facts.start),
            end: row.facts.end.map_or(NO_INSTANT, micros),
            product: self.names.intern(Some(row.product.as_str()))?,
            integration: self.names.intern(row.integration.as_deref())?,
            provider: self.names.intern(row.provider.as_deref())?,
            plan: self.names.intern(row.plan.as_deref())?,
            state: row.state,
        })
    }

    /// A row from the loader's JSON page.
    fn compact_loaded(&self, loaded: &Loaded) -> Result<Row> {
        let (kind, id, product, _email, integration, provider, state, plan, start, end, changed) =
            loaded;
        let kind = SourceKind::parse(kind)
            .ok_or_else(|| StoreError::Corrupt(format!("source kind {kind:?}")))?;
        let state = SourceState::parse(kind, state)
            .ok_or_else(|| StoreError::Corrupt(format!("{} state {state:?}", kind.as_str())))?;
        Ok(Row {
            id: SourceId::new(id, &self.names)?,
            changed_at: *changed,
            start: *start,
            end: end.unwrap_or(NO_INSTANT),
            product: self
                .names
                .intern(Some(ProductKey::parse(product)?.as_str()))?,
            integration: self.names.intern(integration.as_deref())?,
            provider: self.names.intern(provider.as_deref())?,
            plan: self.names.intern(plan.as_deref())?,
            state,
        })
    }

    /// The order [`ReadModel::rows`] answers in.
    fn sort(&self, rows: &mut [Row]) {
        rows.sort_by(|a, b| {
            self.names
                .get(a.product)
                .cmp(&self.names.get(b.product))
                .then(a.changed_at.cmp(&b.changed_at))
                .then_with(|| a.id.cmp_text(b.id, &self.names))
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
                    self.is_loaded.store(true, Ordering::Release);
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
        if !self.is_loaded.load(Ordering::Acquire) || behind >= RELOAD_AFTER.as_millis() as u64 {
            self.load_all(pool).await
        } else {
            self.apply_touches(pool).await
        }
    }

    /// Loads every row: first the last touch, then the rows (at least as new),
    /// then the policies.
    async fn load_all(&self, pool: &AnyPool) -> Result<()> {
        let started = std::time::Instant::now();
        let mark: i64 = sqlx::Row::try_get(
            &sqlx::query("SELECT COALESCE(MAX(sequence), 0) AS mark FROM entitlement_touches")
                .fetch_one(pool)
                .await?,
            "mark",
        )?;
        // Built apart, published shard by shard at the end.
        let mut fresh: Vec<Shard> = (0..SHARDS).map(|_| Shard::default()).collect();
        let mut count = 0u64;
        // One connection for the whole scan: on SQLite, one page cache fills.
        let mut conn = pool.acquire().await?;
        let mut add = |row: Row, email: &str| {
            let hash = self.hasher.hash_one(email);
            fresh[shard_of(hash)].append(&self.hasher, hash, email, row);
            count += 1;
        };
        let mut after: Option<(String, String, String)> = None;
        loop {
            let page = entitlements::json_page(&mut conn, after.as_ref(), PAGE).await?;
            let rows: Vec<Loaded> = serde_json::from_str(&page)
                .map_err(|e| StoreError::Corrupt(format!("a page of rows: {e}")))?;
            let Some(last) = rows.last() else { break };
            after = Some((last.0.clone(), last.1.clone(), last.2.clone()));
            let full = rows.len() as i64 == PAGE;
            for loaded in &rows {
                add(self.compact_loaded(loaded)?, &loaded.3);
            }
            if !full {
                break;
            }
        }
        if conn.backend_name() == "SQLite" {
            // Hands the scan's page cache back.
            sqlx::query("PRAGMA shrink_memory")
                .execute(&mut *conn)
                .await?;
        }
        drop(conn);
        let policies = self.stored_policies(pool).await?;
        for (shard, mut built) in self.shards.iter().zip(fresh) {
            built.policies = policies.clone();
            built.customers.shrink_to_fit();
            for customer in &mut built.customers {
                if let Rows::Many(rows) = &mut customer.rows {
                    self.sort(rows);
                }
            }
            *shard.write().unwrap_or_else(PoisonError::into_inner) = built;
        }
        self.applied.store(mark, Ordering::SeqCst);
        self.bump();
        tracing::info!(
            rows = count,
            elapsed_ms = started.elapsed().as_millis() as u64,
            "read model loaded"
        );
        Ok(())
    }

    /// Every stored policy, by product name id.
    async fn stored_policies(&self, pool: &AnyPool) -> Result<HashMap<u32, Policy>> {
        let mut policies = HashMap::new();
        for (product, policy) in super::policies::stored_policies(pool).await? {
            policies.insert(self.names.intern(Some(product.as_str()))?, policy);
        }
        Ok(policies)
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
                self.take_policy(pool, &ProductKey::parse(product)?).await?;
            }
            let emails: Vec<String> = emails.into_iter().collect();
            for chunk in emails.chunks(RELOAD_CHUNK) {
                self.reload(pool, chunk).await?;
            }
            self.applied.store(last, Ordering::SeqCst);
            self.bump();
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
            self.shards[shard_of(self.hasher.hash_one(email))]
                .write()
                .unwrap_or_else(PoisonError::into_inner)
                .put(&self.hasher, email, rows);
        }
        Ok(())
    }

    /// Takes `product`'s stored policy (the default when it has none): the
    /// windows of its rows are computed under it from now on.
    async fn take_policy(&self, pool: &AnyPool, product: &ProductKey) -> Result<()> {
        let policy = super::policies::stored_policies(pool)
            .await?
            .into_iter()
            .find_map(|(key, policy)| (&key == product).then_some(policy))
            .unwrap_or_default();
        let id = self.names.intern(Some(product.as_str()))?;
        for shard in self.shards.iter() {
            shard
                .write()
                .unwrap_or_else(PoisonError::into_inner)
                .policies
                .insert(id, policy.clone());
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
        let names = Names::new();
        let id = "0190a3c4-5e6f-7a8b-9c0d-1e2f3a4b5c6d";
        let uuid = uuid::Uuid::parse_str(id).unwrap().into_bytes();
        assert_eq!(SourceId::new(id, &names).unwrap(), SourceId::Uuid(uuid));
        assert_eq!(SourceId::new(id, &names).unwrap().to_text(&names), id);
        for other in [
            "0190A3C4-5E6F-7A8B-9C0D-1E2F3A4B5C6D",
            "0190a3c45e6f7a8b9c0d1e2f3a4b5c6d",
            "sub_1",
        ] {
            let stored = SourceId::new(other, &names).unwrap();
            assert!(matches!(stored, SourceId::Text(_)), "{other}");
            assert_eq!(stored.to_text(&names), other);
        }
    }

    #[test]
    fn source_ids_sort_as_their_text() {
        let names = Names::new();
        let ids = [
            "0190a3c4-5e6f-7a8b-9c0d-1e2f3a4b5c6d",
            "0190a3c4-5e6f-7a8b-9c0d-1e2f3a4b5c6e",
            "0190a3c4-5e6f-7a8b-9c0d-1e2f3a4b5d00",
            "A",
            "sub_1",
        ];
        for a in ids {
            for b in ids {
                let (x, y) = (
                    SourceId::new(a, &names).unwrap(),
                    SourceId::new(b, &names).unwrap(),
                );
                assert_eq!(x.cmp_text(y, &names), a.cmp(b), "{a} {b}");
            }
        }
    }

    #[test]
    fn a_shard_finds_puts_replaces_and_removes_customers() {
        let names = Names::new();
        let hasher = Hasher::default();
        let row = |id: &str| Row {
            id: SourceId::new(id, &names).unwrap(),
            changed_at: 1,
            start: 0,
            end: NO_INSTANT,
            product: names.intern(Some("pro")).unwrap(),
            integration: NO_NAME,
            provider: NO_NAME,
            plan: NO_NAME,
            state: SourceState::Grant { revoked: false },
        };
        let mut shard = Shard::default();
        let emails: Vec<String> = (0..200).map(|i| format!("c{i}@example.com")).collect();
        for (i, email) in emails.iter().enumerate() {
            let rows = (0..=i % 3).map(|k| row(&format!("g-{i}-{k}"))).collect();
            shard.put(&hasher, email, rows);
        }
        let found = |shard: &Shard, email: &str| {
            shard
                .get(hasher.hash_one(email), email)
                .map(|c| c.rows.as_slice().len())
        };
        for (i, email) in emails.iter().enumerate() {
            assert_eq!(found(&shard, email), Some(i % 3 + 1), "{email}");
        }
        // Remove every other customer, replace the rest with one row.
        for (i, email) in emails.iter().enumerate() {
            let rows = if i % 2 == 0 { vec![] } else { vec![row("x")] };
            shard.put(&hasher, email, rows);
        }
        assert_eq!(shard.customers.len(), 100);
        for (i, email) in emails.iter().enumerate() {
            let expected = (i % 2 == 1).then_some(1);
            assert_eq!(found(&shard, email), expected, "{email}");
        }
        assert_eq!(found(&shard, "nobody@example.com"), None);
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
