//! Rebuild (DESIGN.md "Rebuild and previews"): every subscription's and
//! order's state derived again from what is stored, through the live code,
//! in a scratch store, then compared with the live one source by source; the
//! difference is the answer (`dry_run`) or is written back in one
//! transaction, each access change appended to the change log with cause
//! `rebuild`.
//!
//! The inputs, in the order they took effect on the live service (the inputs
//! journal, written as each commits; on PostgreSQL with several writers a
//! delivery received before a clock tick can commit after it): the stored
//! deliveries through the current adapters and product maps and the one writer
//! (duplicates are duplicates again, held order events wait again), order
//! registrations, operator replays, policy changes and the clock's expiries
//! (its rule re-evaluated for that subscription at that instant); then the
//! grants as recorded, and the clock at now. The scratch store is a SQLite file in the temporary directory, so
//! memory stays bounded whatever the size of the database: inputs and
//! sources are read a page at a time.
//!
//! Not derivable, so neither compared nor changed: the sources of an
//! integration that no longer exists, and those a delivery whose body was
//! dropped (`ENTITLED_DELIVERY_RETENTION_DAYS`) named; they are counted as
//! `skipped`.

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;

use crate::domain::access::SourceKind;
use crate::domain::{Email, Instant, ProductKey};
use crate::secret::Secret;
use crate::store::{
    Answer, Divergence, Image, ImageFacts, Input, InputKind, Integration, IntegrationPut,
    Registration, Store, StoreError, StoredDelivery,
};

/// How many of each list a report shows; its counts are always whole.
pub const LISTED: usize = 1000;

/// Inputs read per page.
const PAGE: i64 = 500;

/// Progress is reported every this many inputs.
const REPORT_EVERY: u64 = 10_000;
/// How long a rebuild waits after it begins before it reads: every write
/// begun before then has committed (a delivery's transaction takes
/// milliseconds; the writers' retries, well under this).
const SETTLE: std::time::Duration = std::time::Duration::from_secs(2);

/// One source whose state or rows differ.
#[derive(Debug, Clone)]
pub struct SourceChange {
    pub kind: SourceKind,
    /// The live id; a source only derived has the id it will be written with.
    pub id: String,
    pub before: Option<ImageFacts>,
    pub after: Option<ImageFacts>,
}

/// One customer and product whose answer now differs.
#[derive(Debug, Clone)]
pub struct AccessChange {
    pub email: Email,
    pub product: ProductKey,
    pub before: Answer,
    pub after: Answer,
}

/// What a rebuild read, compared and found; always whole (the API answers
/// it as is).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
#[schema(as = RebuildCountsView)]
pub struct Counts {
    pub deliveries: u64,
    pub registrations: u64,
    pub replays: u64,
    pub clock_ticks: u64,
    pub grants: u64,
    /// Policy changes.
    pub policies: u64,
    /// Sources compared.
    pub sources: u64,
    pub sources_changed: u64,
    pub access_changed: u64,
    /// Live sources left as they are: of an integration that no longer
    /// exists, named by a delivery whose body was dropped, or written since
    /// the rebuild began.
    pub skipped: u64,
}

/// A rebuild's answer.
#[derive(Debug, Clone, Default)]
pub struct Report {
    pub dry_run: bool,
    /// Whether the difference was written (never on a dry run).
    pub applied: bool,
    pub sources_changed: Vec<SourceChange>,
    pub access_changed: Vec<AccessChange>,
    pub counts: Counts,
}

/// Where a rebuild is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    Deriving,
    Comparing,
    Applying,
    Done,
}

impl Phase {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Deriving => "deriving",
            Self::Comparing => "comparing",
            Self::Applying => "applying",
            Self::Done => "done",
        }
    }
}

/// Reported as a rebuild goes: `done` of `total` deliveries while deriving,
/// sources compared while comparing.
#[derive(Debug, Clone, Copy)]
pub struct Progress {
    pub phase: Phase,
    pub done: u64,
    pub total: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum RebuildError {
    #[error("a rebuild is already running in this process; wait for it to finish")]
    Busy,
    #[error("the scratch store could not be made in {path}: {source}")]
    Scratch {
        path: String,
        source: std::io::Error,
    },
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Re-derives everything and compares (see the module's comment); writes the
/// difference unless `dry_run`.
pub async fn rebuild(
    live: &Store,
    dry_run: bool,
    progress: &(dyn Fn(Progress) + Send + Sync),
) -> Result<Report, RebuildError> {
    let _one = live.rebuild_turn().ok_or(RebuildError::Busy)?;
    if !dry_run {
        // The clock catches up first, as it does every minute anyway: what
        // has lapsed by now is a recorded tick, not a difference. (A dry run
        // writes nothing, so it compares with what the clock recorded.)
        let now = crate::time_fmt::now();
        while live.expire_lapsed(now).await? > 0 {}
    }
    // What is recorded up to `started` is derived; a source written after it
    // is left as it is. Writes in flight at `started` commit meanwhile.
    let started = crate::time_fmt::now();
    tokio::time::sleep(SETTLE).await;
    let scratch = Scratch::create().await?;
    let result = run(live, &scratch.store, dry_run, started, progress).await;
    scratch.remove().await;
    let report = result?;
    progress(Progress {
        phase: Phase::Done,
        done: report.counts.sources,
        total: report.counts.sources,
    });
    Ok(report)
}

/// The scratch store, its background work and its directory, removed after.
struct Scratch {
    dir: PathBuf,
    store: Store,
    workers: Option<crate::workers::Workers>,
}

impl Scratch {
    async fn create() -> Result<Self, RebuildError> {
        let dir = std::env::temp_dir().join(format!("entitled-rebuild-{}", crate::store::new_id()));
        // Raw deliveries go in it: readable by this user only.
        use std::os::unix::fs::DirBuilderExt as _;
        std::fs::DirBuilder::new()
            .mode(0o700)
            .create(&dir)
            .map_err(|source| RebuildError::Scratch {
                path: dir.display().to_string(),
                source,
            })?;
        match Store::scratch(&dir.join("scratch.db")).await {
            Ok((store, background)) => Ok(Self {
                dir,
                store,
                workers: Some(crate::workers::Workers::of_store(background)),
            }),
            Err(e) => {
                let _ = std::fs::remove_dir_all(&dir);
                Err(e.into())
            }
        }
    }

    async fn remove(mut self) {
        self.store.close().await;
        if let Some(workers) = self.workers.take() {
            workers.stop();
        }
    }
}

/// Whichever way a rebuild ends, its scratch file goes, and its tasks.
impl Drop for Scratch {
    fn drop(&mut self) {
        if let Some(workers) = self.workers.take() {
            workers.stop();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

async fn run(
    live: &Store,
    scratch: &Store,
    dry_run: bool,
    now: Instant,
    progress: &(dyn Fn(Progress) + Send + Sync),
) -> Result<Report, RebuildError> {
    let mut report = Report {
        dry_run,
        ..Report::default()
    };
    let integrations = copy_configuration(live, scratch).await?;
    let mut excluded = HashSet::new();
    derive(
        live,
        scratch,
        &integrations,
        &mut excluded,
        now,
        &mut report.counts,
        progress,
    )
    .await?;
    let mut after = String::new();
    loop {
        let grants = live.grants_after(&after, PAGE).await?;
        let Some(last) = grants.last() else { break };
        after = last.id.clone();
        for grant in &grants {
            scratch.copy_grant(grant).await?;
            report.counts.grants += 1;
        }
    }
    if !dry_run {
        // The clock at now, as the live clock just ran.
        while scratch.expire_lapsed(now).await? > 0 {}
    }

    let divergences = compare(
        live,
        scratch,
        &integrations,
        &excluded,
        now,
        &mut report,
        progress,
    )
    .await?;
    if !dry_run && !divergences.is_empty() {
        progress(Progress {
            phase: Phase::Applying,
            done: 0,
            total: divergences.len() as u64,
        });
        tracing::info!(
            sources = divergences.len(),
            "rebuild: writing the difference"
        );
        live.apply_rebuild(scratch, &divergences, now, crate::time_fmt::now())
            .await?;
        report.applied = true;
    }
    Ok(report)
}

/// Integrations as they are now (with a stand-in secret: nothing is
/// authenticated again), by id. Policies are inputs: each is set at the
/// instant it was.
async fn copy_configuration(
    live: &Store,
    scratch: &Store,
) -> Result<HashMap<String, Integration>, RebuildError> {
    let stand_in = Secret::new("rebuild-scratch-secret");
    let mut copied = HashMap::new();
    for i in live.integrations().await? {
        let (integration, _) = scratch
            .put_integration(
                &i.id,
                &IntegrationPut {
                    provider: i.provider,
                    secret: &stand_in,
                    product_map: &i.product_map,
                    enabled: i.enabled,
                    keep_previous_secret_seconds: 0,
                },
                i.created_at,
            )
            .await?;
        copied.insert(integration.id.to_string(), integration);
    }
    Ok(copied)
}

/// Applies every journaled input to `scratch`, in the order it took effect
/// on the live service (the inputs journal, `store::inputs`), up to the last
/// one journaled when the rebuild began; an input recorded after `until`
/// (the rebuild's start) is not derived: the sources it touched are left as
/// they are.
async fn derive(
    live: &Store,
    scratch: &Store,
    integrations: &HashMap<String, Integration>,
    excluded: &mut HashSet<(String, String)>,
    until: Instant,
    counts: &mut Counts,
    progress: &(dyn Fn(Progress) + Send + Sync),
) -> Result<(), RebuildError> {
    let total = live.count_deliveries().await?.max(0) as u64;
    let last = live.last_input().await?;
    let policies: HashMap<(ProductKey, Instant), crate::domain::Policy> = live
        .recorded_policies()
        .await?
        .into_iter()
        .map(|(at, product, policy)| ((product, at), policy))
        .collect();
    let mut reported = 0;
    progress(Progress {
        phase: Phase::Deriving,
        done: 0,
        total,
    });
    let mut after = 0;
    loop {
        let page = live.inputs_after(after, last, PAGE).await?;
        let Some(end) = page.last() else { break };
        after = end.id;
        let page: Vec<Input> = page.into_iter().filter(|i| i.at <= until).collect();
        let of = |kind: InputKind| -> Vec<&str> {
            page.iter()
                .filter(|i| i.kind == kind)
                .map(|i| i.subject.as_str())
                .collect()
        };
        let mut deliveries: HashMap<String, StoredDelivery> = live
            .stored_deliveries(&of(InputKind::Delivery))
            .await?
            .into_iter()
            .map(|d| (d.id.clone(), d))
            .collect();
        let mut registrations: HashMap<String, Registration> = live
            .registrations(&of(InputKind::Registration))
            .await?
            .into_iter()
            .map(|r| (r.order_id.clone(), r))
            .collect();
        let expired = live.subscription_keys(&of(InputKind::Expiry)).await?;

        // Consecutive deliveries are recorded again in one transaction.
        let mut batch = Vec::new();
        for input in &page {
            if input.kind == InputKind::Delivery {
                batch.extend(deliveries.remove(&input.subject));
                continue;
            }
            record_batch(scratch, integrations, excluded, &mut batch, counts).await?;
            match input.kind {
                InputKind::Delivery => {}
                InputKind::Policy => {
                    let key = ProductKey::parse(&input.subject).map_err(StoreError::from)?;
                    if let Some(policy) = policies.get(&(key.clone(), input.at)) {
                        counts.policies += 1;
                        scratch.put_product(&key, policy, input.at).await?;
                    }
                }
                InputKind::Registration => {
                    if let Some(r) = registrations.remove(&input.subject) {
                        counts.registrations += 1;
                        register(scratch, integrations, excluded, &r).await?;
                    }
                }
                InputKind::Replay => {
                    counts.replays += 1;
                    match crate::ingest::replay(scratch, &input.subject, input.at).await {
                        Ok(_) => {}
                        Err(crate::ingest::ReplayError::Store(e)) => return Err(e.into()),
                        // A delivery that was not derived (its integration is
                        // gone, its body dropped): its subject is already skipped.
                        Err(_) => {}
                    }
                }
                InputKind::Expiry => {
                    if let Some((integration, external_id)) = expired.get(&input.subject) {
                        counts.clock_ticks += 1;
                        scratch
                            .expire_if_lapsed((integration, external_id), input.at)
                            .await?;
                    }
                }
            }
        }
        record_batch(scratch, integrations, excluded, &mut batch, counts).await?;
        if counts.deliveries - reported >= REPORT_EVERY {
            reported = counts.deliveries;
            tracing::info!(done = counts.deliveries, total, "rebuild: deriving");
            progress(Progress {
                phase: Phase::Deriving,
                done: counts.deliveries,
                total,
            });
        }
    }
    progress(Progress {
        phase: Phase::Deriving,
        done: counts.deliveries,
        total,
    });
    Ok(())
}

/// Records a run of consecutive deliveries again, and empties it.
async fn record_batch(
    scratch: &Store,
    integrations: &HashMap<String, Integration>,
    excluded: &mut HashSet<(String, String)>,
    batch: &mut Vec<StoredDelivery>,
    counts: &mut Counts,
) -> Result<(), StoreError> {
    if batch.is_empty() {
        return Ok(());
    }
    record_again(scratch, integrations, excluded, batch).await?;
    counts.deliveries += batch.len() as u64;
    batch.clear();
    Ok(())
}

/// Records deliveries again in the scratch store, each read by the current
/// adapter; one that cannot be (its integration gone, its body dropped) is
/// left out, and what it named is not compared.
async fn record_again(
    scratch: &Store,
    integrations: &HashMap<String, Integration>,
    excluded: &mut HashSet<(String, String)>,
    batch: &[StoredDelivery],
) -> Result<(), StoreError> {
    let mut readable = Vec::with_capacity(batch.len());
    for stored in batch {
        let (Some(integration), Some(body)) = (
            integrations.get(&stored.integration),
            stored.body.as_deref(),
        ) else {
            if let Some(external) = &stored.external_ref {
                excluded.insert((stored.integration.clone(), external.clone()));
            }
            continue;
        };
        let applying = crate::ingest::reinterpret(integration, body, stored.received_at);
        readable.push((stored, integration, applying));
    }
    let applies: Vec<_> = readable
        .iter()
        .map(|(stored, integration, applying)| {
            (
                *stored,
                *integration,
                applying
                    .as_ref()
                    .map(|a| a.as_apply())
                    .map_err(Clone::clone),
            )
        })
        .collect();
    scratch.record_again(&applies).await
}

async fn register(
    scratch: &Store,
    integrations: &HashMap<String, Integration>,
    excluded: &mut HashSet<(String, String)>,
    r: &Registration,
) -> Result<(), RebuildError> {
    let key = (r.integration.clone(), r.external_id.clone());
    let (Some(_), Some(product)) = (integrations.get(&r.integration), r.products.first()) else {
        excluded.insert(key);
        return Ok(());
    };
    match crate::ingest::register_order(
        scratch,
        &r.integration,
        &r.external_id,
        &r.email,
        product,
        r.at,
    )
    .await
    {
        Ok(_) => Ok(()),
        Err(crate::ingest::RegisterError::Store(e)) => Err(e.into()),
        // Refused now where it was taken then: the order is shown as it
        // derives (without this registration).
        Err(e) => {
            tracing::warn!(order = r.external_id, error = %e, "rebuild: a registration was refused");
            Ok(())
        }
    }
}

/// Compares every source, live against derived; returns those that differ
/// and fills the report.
async fn compare(
    live: &Store,
    scratch: &Store,
    integrations: &HashMap<String, Integration>,
    excluded: &HashSet<(String, String)>,
    now: Instant,
    report: &mut Report,
    progress: &(dyn Fn(Progress) + Send + Sync),
) -> Result<Vec<Divergence>, RebuildError> {
    // Not derivable (see the module's comment), or written since the
    // rebuild began (`now`): left as they are.
    let skipped = |image: &Image, live_side: bool| {
        (live_side && image.touched > now)
            || (image.kind != SourceKind::Grant
                && (!integrations.contains_key(&image.key.0) || excluded.contains(&image.key)))
    };
    let mut divergences = Vec::new();
    let mut seen_pairs = HashSet::new();
    let total = live.count_sources().await?.max(0) as u64;
    let mut reported = 0;
    for kind in [
        SourceKind::Subscription,
        SourceKind::Order,
        SourceKind::Grant,
    ] {
        // Every live source against its derivation; then the derived sources
        // the live store lacks.
        for live_side in [true, false] {
            let (walked, other) = if live_side {
                (live, scratch)
            } else {
                (scratch, live)
            };
            let mut after = (String::new(), String::new());
            loop {
                let page = walked
                    .images_after(kind, &after, crate::store::IMAGE_PAGE)
                    .await?;
                let Some(last) = page.last() else { break };
                after = last.key.clone();
                let keys: Vec<_> = page.iter().map(|i| i.key.clone()).collect();
                let mut counterparts: HashMap<(String, String), Image> = other
                    .images_of(kind, &keys)
                    .await?
                    .into_iter()
                    .map(|i| (i.key.clone(), i))
                    .collect();
                let mut differing = Vec::new();
                for image in page {
                    let counterpart = counterparts.remove(&image.key);
                    if skipped(&image, live_side) {
                        if live_side {
                            report.counts.skipped += 1;
                        }
                        continue;
                    }
                    if live_side {
                        report.counts.sources += 1;
                    } else if counterpart.is_some() {
                        continue; // compared in the first pass
                    }
                    let (live_image, derived) = if live_side {
                        (Some(image), counterpart)
                    } else {
                        (None, Some(image))
                    };
                    if live_image.as_ref().map(|i| &i.facts) != derived.as_ref().map(|i| &i.facts) {
                        differing.push((live_image, derived));
                    }
                }
                access_changes(live, scratch, &differing, &mut seen_pairs, now, report).await?;
                for (live_image, derived) in differing {
                    report.counts.sources_changed += 1;
                    divergences.push(Divergence {
                        kind,
                        live: live_image
                            .as_ref()
                            .map(|i| (i.id.clone(), i.version, i.touched)),
                        derived: derived.as_ref().map(|i| i.id.clone()),
                    });
                    if report.sources_changed.len() < LISTED {
                        let id = live_image
                            .as_ref()
                            .or(derived.as_ref())
                            .map(|i| i.id.clone())
                            .unwrap_or_default();
                        report.sources_changed.push(SourceChange {
                            kind,
                            id,
                            before: live_image.map(|i| i.facts),
                            after: derived.map(|i| i.facts),
                        });
                    }
                }
                let done = report.counts.sources + report.counts.skipped;
                if live_side && done - reported >= REPORT_EVERY {
                    reported = done;
                    tracing::info!(done, total, "rebuild: comparing");
                }
                if live_side {
                    progress(Progress {
                        phase: Phase::Comparing,
                        done,
                        total,
                    });
                }
            }
        }
    }
    Ok(divergences)
}

/// The answers now of every pair the differing sources have rows for, live
/// and derived; those that differ are access changes.
async fn access_changes(
    live: &Store,
    scratch: &Store,
    differing: &[(Option<Image>, Option<Image>)],
    seen: &mut HashSet<(Email, ProductKey)>,
    now: Instant,
    report: &mut Report,
) -> Result<(), StoreError> {
    let mut pairs: Vec<(Email, ProductKey)> = differing
        .iter()
        .flat_map(|(a, b)| a.iter().chain(b.iter()))
        .flat_map(|image| image.facts.rows.iter())
        .map(|row| (row.email.clone(), row.product.clone()))
        .filter(|pair| !seen.contains(pair))
        .collect();
    pairs.sort();
    pairs.dedup();
    if pairs.is_empty() {
        return Ok(());
    }
    let before = live.rows_of_pairs(&pairs).await?;
    let after = scratch.rows_of_pairs(&pairs).await?;
    for ((pair, before), after) in pairs.into_iter().zip(before).zip(after) {
        let (before, after) = (Answer::of(&before, now), Answer::of(&after, now));
        if before != after {
            report.counts.access_changed += 1;
            if report.access_changed.len() < LISTED {
                report.access_changed.push(AccessChange {
                    email: pair.0.clone(),
                    product: pair.1.clone(),
                    before,
                    after,
                });
            }
        }
        seen.insert(pair);
    }
    Ok(())
}

/// The report for a person: what was read, each difference on a line, and
/// what was done.
pub fn summary(report: &Report) -> String {
    use std::fmt::Write;
    let c = &report.counts;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "Read {}, {}, {}, {} and {}; compared {}{}.",
        plural(c.deliveries, "delivery", "deliveries"),
        plural(c.registrations, "registration", "registrations"),
        plural(c.replays, "replay", "replays"),
        plural(c.clock_ticks, "clock tick", "clock ticks"),
        plural(c.grants, "grant", "grants"),
        plural(c.sources, "source", "sources"),
        if c.skipped > 0 {
            format!(" ({} not derivable, left as they are)", c.skipped)
        } else {
            String::new()
        }
    );
    if c.sources_changed == 0 {
        let _ = writeln!(
            out,
            "No difference: every source is what its deliveries derive."
        );
        return out;
    }
    let _ = writeln!(
        out,
        "\n{} {}:",
        plural(c.sources_changed, "source", "sources"),
        if c.sources_changed == 1 {
            "differs"
        } else {
            "differ"
        }
    );
    for s in &report.sources_changed {
        let state = |f: &Option<ImageFacts>| {
            f.as_ref().map_or("(none)".to_owned(), |f| {
                format!(
                    "{} {} ({})",
                    f.state.as_str(),
                    f.email.as_str(),
                    plural(f.rows.len() as u64, "entitlement row", "entitlement rows")
                )
            })
        };
        let _ = writeln!(
            out,
            "  {} {}: {} -> {}",
            s.kind.as_str(),
            s.id,
            state(&s.before),
            state(&s.after)
        );
    }
    and_more(&mut out, report.sources_changed.len(), c.sources_changed);
    let _ = writeln!(
        out,
        "\n{} {}:",
        plural(c.access_changed, "answer", "answers"),
        if c.access_changed == 1 {
            "changes"
        } else {
            "change"
        }
    );
    for a in &report.access_changed {
        let _ = writeln!(
            out,
            "  {} {}: {} -> {}",
            a.email.as_str(),
            a.product.as_str(),
            answer(&a.before),
            answer(&a.after)
        );
    }
    and_more(&mut out, report.access_changed.len(), c.access_changed);
    let _ = writeln!(
        out,
        "\n{}",
        if report.applied {
            "Written in one transaction; each answer that changed is in the change log with cause `rebuild`."
        } else {
            "Nothing was written (dry run)."
        }
    );
    out
}

/// The line under a capped list: how many were left out.
fn and_more(out: &mut String, listed: usize, total: u64) {
    use std::fmt::Write;
    if (listed as u64) < total {
        let _ = writeln!(out, "  … and {} more", total - listed as u64);
    }
}

fn plural(n: u64, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

fn answer(a: &Answer) -> String {
    let until = a
        .valid_until
        .map(|u| format!(", until {}", crate::time_fmt::rfc3339(u)))
        .unwrap_or_default();
    format!(
        "{} ({}{until})",
        if a.entitled {
            "entitled"
        } else {
            "not entitled"
        },
        a.reason.as_str()
    )
}
