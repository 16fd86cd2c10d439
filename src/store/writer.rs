//! Group commit: deliveries that arrive together are applied in one
//! transaction, each in its own savepoint (so one failure never sinks the
//! others), and committed with one fsync. Each delivery is answered only once
//! that commit is done, so a 2xx still means "stored".
//!
//! A writer task takes whatever deliveries are waiting (up to [`MAX_BATCH`])
//! whenever its previous batch is committed: under load batches grow by
//! themselves, and a lone delivery waits for nobody. SQLite has one writer (the
//! engine takes one write transaction at a time anyway); PostgreSQL has
//! [`POSTGRES_WRITERS`] taking up to [`POSTGRES_BATCH`] each, since there a
//! round trip, not the fsync, is what a delivery waits for. A delivery a batch cannot take (a lost race with another
//! batch or replica, a batch whose commit failed) is applied again on its own,
//! with the usual retries.

use tokio::sync::{mpsc, oneshot};

use super::ingest::{Apply, Inbound, Recorded, attempt_in};
use super::orders::Buyer;
use super::{Integration, Result, Store, StoreError};
use crate::domain::subscription::Incoming;
use crate::domain::{Instant, order};

/// The most deliveries one transaction takes.
pub const MAX_BATCH: usize = 64;

/// Writer tasks on PostgreSQL: batches in flight at once.
pub const POSTGRES_WRITERS: usize = 12;

/// The most deliveries one PostgreSQL transaction takes: there a batch's
/// statements run one round trip after another on one connection, and the
/// server groups concurrent commits' WAL flushes by itself, so small batches
/// on many connections beat one large one.
pub const POSTGRES_BATCH: usize = 4;

/// How many deliveries may wait for the writer before senders wait too.
const QUEUE: usize = 1024;

/// An authenticated delivery, owned, on its way to the writer.
#[derive(Debug)]
pub struct Delivery {
    pub integration: Integration,
    pub received_at: Instant,
    /// The provider's message id, or a hash of the integration and raw body.
    pub dedup_key: String,
    pub event_name: Option<String>,
    pub body: Vec<u8>,
    /// JSON object of the request headers, secrets already redacted.
    pub headers: String,
    /// The external id of the subscription or order the payload names, if any.
    pub external_ref: Option<String>,
    pub apply: Applying,
}

impl Delivery {
    fn inbound(&self) -> Inbound<'_> {
        Inbound {
            integration: &self.integration,
            received_at: self.received_at,
            dedup_key: self.dedup_key.clone(),
            event_name: self.event_name.as_deref(),
            body: &self.body,
            headers: &self.headers,
            external_ref: self.external_ref.as_deref(),
            delivery_id: None,
        }
    }
}

/// What a delivery asks of the store, owned (see [`Apply`]).
#[derive(Debug)]
pub enum Applying {
    Ignored {
        reason: String,
    },
    Subscription {
        external_id: String,
        incoming: Incoming,
        previous_plan: Option<String>,
    },
    Order {
        external_id: String,
        incoming: order::Incoming,
        buyer: Option<Buyer>,
    },
}

impl Applying {
    pub fn as_apply(&self) -> Apply<'_> {
        match self {
            Self::Ignored { reason } => Apply::Ignored { reason },
            Self::Subscription {
                external_id,
                incoming,
                previous_plan,
            } => Apply::Subscription {
                external_id,
                incoming,
                previous_plan: previous_plan.as_deref(),
            },
            Self::Order {
                external_id,
                incoming,
                buyer,
            } => Apply::Order {
                external_id,
                incoming,
                buyer: buyer.as_ref(),
            },
        }
    }
}

/// How many group commits there were, and how many deliveries they took.
#[derive(Debug, Default)]
pub struct Commits {
    pub batches: std::sync::atomic::AtomicU64,
    pub deliveries: std::sync::atomic::AtomicU64,
}

/// One delivery and where its answer goes.
#[derive(Debug)]
pub(super) struct Job {
    delivery: Delivery,
    reply: oneshot::Sender<Result<Recorded>>,
}

/// The queue in front of the writer task.
pub(super) type Queue = mpsc::Sender<Job>;

/// Batches committed, whose answers wait until their changes are in the log.
type Answers = Vec<(oneshot::Sender<Result<Recorded>>, Result<Recorded>)>;

/// `writers` writer tasks of `store`, all fed by one queue, each committing
/// up to `batch` deliveries at once, and each with the task that answers its
/// batches once their changes are in the log (meanwhile the writer takes the
/// next batch). For the caller to run (`super::Background`).
pub(super) fn tasks(
    store: &Store,
    jobs: mpsc::Receiver<Job>,
    writers: usize,
    batch: usize,
) -> Vec<super::Task> {
    let jobs = std::sync::Arc::new(tokio::sync::Mutex::new(jobs));
    let mut tasks: Vec<super::Task> = Vec::new();
    for _ in 0..writers.max(1) {
        let (answers, answering) = mpsc::unbounded_channel();
        tasks.push((
            "writer",
            Box::pin(run(
                store.clone(),
                jobs.clone(),
                batch.clamp(1, MAX_BATCH),
                answers,
            )),
        ));
        tasks.push(("writer answers", Box::pin(answer(store.clone(), answering))));
    }
    tasks
}

/// Answers each committed batch once its changes are numbered and shown by
/// this replica's read model; ends when its writer does.
async fn answer(store: Store, mut batches: mpsc::UnboundedReceiver<Answers>) {
    while let Some(answers) = batches.recv().await {
        store.settled().await;
        for (reply, answer) in answers {
            // The sender may have gone (the client hung up): the delivery
            // is stored all the same.
            let _ = reply.send(answer);
        }
    }
}

pub(super) fn queue() -> (Queue, mpsc::Receiver<Job>) {
    mpsc::channel(QUEUE)
}

async fn run(
    store: Store,
    jobs: std::sync::Arc<tokio::sync::Mutex<mpsc::Receiver<Job>>>,
    most: usize,
    answers: mpsc::UnboundedSender<Answers>,
) {
    // The writers end with their store (`Store::close`): each holds a clone
    // of it, and so of the queue's sender, so the queue alone never ends.
    let mut closed = store.closed.subscribe();
    loop {
        let batch = {
            // One writer at a time takes from the queue: what waits, at once.
            let mut jobs = tokio::select! {
                jobs = jobs.lock() => jobs,
                _ = closed.wait_for(|closed| *closed) => return,
            };
            let first = tokio::select! {
                first = jobs.recv() => first,
                _ = closed.wait_for(|closed| *closed) => return,
            };
            let Some(first) = first else {
                return;
            };
            let mut batch = Vec::with_capacity(most);
            batch.push(first);
            while batch.len() < most {
                match jobs.try_recv() {
                    Ok(job) => batch.push(job),
                    Err(_) => break,
                }
            }
            batch
        };
        let answered = store.apply_batch(batch).await;
        if answers.send(answered).is_err() {
            return;
        }
    }
}

/// What became of one delivery in its batch.
enum InBatch {
    Recorded(Recorded),
    Failed(StoreError),
    /// Lost a race: apply it again on its own.
    Again,
}

impl Store {
    /// Records an authenticated delivery and applies it (see
    /// [`attempt_in`]), in the next group commit; answers once that is
    /// committed.
    pub async fn record_delivery(&self, delivery: Delivery) -> Result<Recorded> {
        let (reply, answer) = oneshot::channel();
        self.writer
            .send(Job { delivery, reply })
            .await
            .map_err(|_| StoreError::WriterStopped)?;
        answer.await.map_err(|_| StoreError::WriterStopped)?
    }

    /// Commits a batch; returns each delivery's answer, to be sent once its
    /// changes are in the log.
    async fn apply_batch(&self, jobs: Vec<Job>) -> Answers {
        let outcomes = {
            let _turn = self.write_turn().await;
            self.try_batch(&jobs).await
        };
        let outcomes = match outcomes {
            Ok(outcomes) => outcomes,
            Err(e) => {
                // The batch's own begin or commit failed: nothing of it is
                // stored. Each delivery goes again on its own.
                tracing::debug!(error = %e, deliveries = jobs.len(), "group commit failed; applying one by one");
                jobs.iter().map(|_| InBatch::Again).collect()
            }
        };
        let mut answers = Vec::with_capacity(jobs.len());
        for (job, outcome) in jobs.into_iter().zip(outcomes) {
            let answer = match outcome {
                InBatch::Recorded(recorded) => Ok(recorded),
                InBatch::Failed(e) => Err(e),
                InBatch::Again => {
                    let apply = job.delivery.apply.as_apply();
                    self.record_delivery_alone(&job.delivery.inbound(), &apply)
                        .await
                }
            };
            answers.push((job.reply, answer));
        }
        answers
    }

    /// One transaction, one savepoint per delivery.
    async fn try_batch(&self, jobs: &[Job]) -> Result<Vec<InBatch>> {
        use sqlx::Acquire;
        let mut tx = self.pool.begin().await?;
        let mut outcomes = Vec::with_capacity(jobs.len());
        for job in jobs {
            let inbound = job.delivery.inbound();
            let apply = job.delivery.apply.as_apply();
            let mut savepoint = tx.begin().await?;
            match attempt_in(&mut savepoint, &inbound, &apply).await {
                Ok(recorded) => {
                    savepoint.commit().await?;
                    outcomes.push(InBatch::Recorded(recorded));
                }
                Err(super::tx::Attempt::Failed(e)) => {
                    savepoint.rollback().await?;
                    outcomes.push(InBatch::Failed(e));
                }
                Err(_) => {
                    savepoint.rollback().await?;
                    outcomes.push(InBatch::Again);
                }
            }
        }
        tx.commit().await?;
        let taken = outcomes
            .iter()
            .filter(|o| matches!(o, InBatch::Recorded(_)))
            .count() as u64;
        use std::sync::atomic::Ordering::Relaxed;
        self.commits.batches.fetch_add(1, Relaxed);
        self.commits.deliveries.fetch_add(taken, Relaxed);
        Ok(outcomes)
    }

    /// Group commits so far and the deliveries they took, for `/metrics`.
    pub fn group_commits(&self) -> (u64, u64) {
        use std::sync::atomic::Ordering::Relaxed;
        (
            self.commits.batches.load(Relaxed),
            self.commits.deliveries.load(Relaxed),
        )
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::domain::subscription::Event;
    use crate::domain::{Email, IntegrationId, Outcome, ProductKey, Provider};

    fn activation(integration: &Integration, n: usize) -> Delivery {
        let now = crate::time_fmt::now();
        Delivery {
            integration: integration.clone(),
            received_at: now,
            dedup_key: format!("test:{n}"),
            event_name: Some("subscription.activated".into()),
            body: format!("{{\"n\": {n}}}").into_bytes(),
            headers: "{}".into(),
            external_ref: Some(format!("sub-{n}")),
            apply: Applying::Subscription {
                external_id: format!("sub-{n}"),
                incoming: Incoming {
                    event: Event::Activated,
                    email: Email::parse(&format!("c{n}@example.com")).unwrap(),
                    product: ProductKey::parse("pro").unwrap(),
                    plan: None,
                    period_start: Some(now),
                    period_end: Some(crate::domain::add_seconds(now, 86_400)),
                    received_at: now,
                },
                previous_plan: None,
            },
        }
    }

    /// Deliveries that queue while a commit is under way go in the next one,
    /// together; each is answered with its own outcome.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn deliveries_that_wait_together_commit_together() {
        let dir = std::env::temp_dir().join(format!("entitled-writer-{}", crate::store::new_id()));
        std::fs::create_dir_all(&dir).unwrap();
        let (store, _workers) =
            crate::workers::connect(&format!("sqlite://{}/e.db", dir.display()))
                .await
                .unwrap();
        let (integration, _) = store
            .put_integration(
                &IntegrationId::parse("zen").unwrap(),
                &crate::store::IntegrationPut {
                    provider: Provider::Zenofy,
                    secret: &crate::secret::Secret::new("secret-secret"),
                    product_map: &BTreeMap::new(),
                    enabled: true,
                    keep_previous_secret_seconds: 0,
                },
                crate::time_fmt::now(),
            )
            .await
            .unwrap();
        // Hold the write turn: the writer takes the first delivery and waits.
        let turn = store.write_turn().await;
        let (reply, first) = oneshot::channel();
        store
            .writer
            .send(Job {
                delivery: activation(&integration, 0),
                reply,
            })
            .await
            .unwrap();
        // Taken off the queue: the writer now waits for the turn with it (and
        // has long finished looking for more to take along).
        while store.writer.capacity() < QUEUE {
            tokio::task::yield_now().await;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        let rest: Vec<_> = (1..=9)
            .map(|n| {
                let store = store.clone();
                let delivery = activation(&integration, n);
                tokio::spawn(async move { store.record_delivery(delivery).await })
            })
            .collect();
        while store.writer.capacity() > QUEUE - 9 {
            tokio::task::yield_now().await;
        }
        drop(turn);
        let mut outcomes = vec![first.await.unwrap().unwrap().outcome];
        for task in rest {
            outcomes.push(task.await.unwrap().unwrap().outcome);
        }
        assert_eq!(outcomes, vec![Outcome::Applied; 10]);
        assert_eq!(
            store.group_commits(),
            (2, 10),
            "one commit for the first, one for the nine"
        );
        store.close().await;
        let _ = std::fs::remove_dir_all(dir);
    }
}
