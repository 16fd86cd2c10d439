//! Recording a delivery and everything it causes, in one transaction: the
//! delivery row, the dedup claim, the subject's new state, its history entry and
//! its entitlement rows. Nothing is acknowledged before this commits.

use sqlx::AnyConnection;

use super::changes::{Cause, CauseKind};
use super::history::Via;
use super::inputs::{self, InputKind};
use super::orders::{self, Buyer, OrderRecord};
use super::subscriptions::load_for_update;
use super::tx::{Attempt, retrying};
use super::{Integration, Result, Store, StoreError, micros, new_id, text};
use crate::domain::access::SourceKind;
use crate::domain::order;
use crate::domain::subscription::{self, Incoming};
use crate::domain::{Instant, Outcome};

/// An authenticated request, as it will be stored.
#[derive(Debug, Clone)]
pub struct Inbound<'a> {
    pub integration: &'a Integration,
    pub received_at: Instant,
    /// The provider's message id, or a hash of the integration and raw body.
    pub dedup_key: String,
    pub event_name: Option<&'a str>,
    pub body: &'a [u8],
    /// JSON object of the request headers, secrets already redacted.
    pub headers: &'a str,
    /// The external id of the subscription or order the payload names, if any.
    pub external_ref: Option<&'a str>,
    /// The id it is stored under; `None`: a new one. A rebuild records each
    /// stored delivery again under its own id.
    pub delivery_id: Option<&'a str>,
}

/// What became of a delivery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recorded {
    pub delivery_id: String,
    pub outcome: Outcome,
    pub reason: Option<String>,
    pub subject: Option<Subject>,
}

/// The subscription or order a delivery reached, and its state afterwards.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subject {
    pub kind: SourceKind,
    pub id: String,
    pub state: String,
}

impl Store {
    /// Stores a delivery that authenticated but could not be parsed. It claims no
    /// dedup key: the same bytes again are just as malformed.
    pub async fn record_malformed(&self, inbound: &Inbound<'_>, reason: &str) -> Result<Recorded> {
        let _turn = self.write_turn().await;
        let recorded = Recorded {
            delivery_id: inbound.delivery_id.map_or_else(new_id, str::to_owned),
            outcome: Outcome::Malformed,
            reason: Some(reason.to_owned()),
            subject: None,
        };
        let mut tx = self.pool.begin().await?;
        insert_delivery(&mut tx, inbound, &recorded).await?;
        tx.commit().await?;
        Ok(recorded)
    }

    /// Registers who bought an order (`POST /v1/orders`) and, in the same
    /// transaction, applies the deliveries that arrived for it before, in
    /// arrival order. `reparse` turns a stored body back into its order event.
    /// Returns the order and whether this call created it (an order that already
    /// exists is returned unchanged).
    pub async fn register_order(
        &self,
        integration: &Integration,
        external_id: &str,
        buyer: &Buyer,
        now: Instant,
        reparse: &(dyn Fn(&[u8], Instant) -> Option<order::Incoming> + Sync),
    ) -> Result<(OrderRecord, bool)> {
        retrying!(self, async {
            let mut tx = self.pool.begin().await?;
            let result =
                register_in(&mut tx, integration, external_id, buyer, now, reparse).await?;
            self.commit(tx).await?;
            Ok(result)
        })
    }

    /// Applies a stored delivery again to the current state (an operator's
    /// replay) and records the attempt beside the earlier ones. The dedup claim
    /// is not consulted: replaying is deliberate.
    pub async fn replay_delivery(
        &self,
        delivery_id: &str,
        integration: &Integration,
        replay: &Apply<'_>,
        now: Instant,
    ) -> Result<Recorded> {
        let via = Via {
            delivery_id: Some(delivery_id),
            source: CauseKind::Replay,
            at: now,
        };
        retrying!(
            self,
            self.replay_attempt(delivery_id, integration, replay, via)
        )
    }

    async fn replay_attempt(
        &self,
        delivery_id: &str,
        integration: &Integration,
        replay: &Apply<'_>,
        via: Via<'_>,
    ) -> std::result::Result<Recorded, Attempt> {
        let mut tx = self.pool.begin().await?;
        let effect = apply(&mut tx, integration, replay, via).await?;
        record_attempt(&mut tx, delivery_id, via.at, "replay", &effect).await?;
        inputs::record(&mut tx, InputKind::Replay, delivery_id, via.at).await?;
        self.commit(tx).await?;
        Ok(Recorded {
            delivery_id: delivery_id.to_owned(),
            outcome: effect.outcome,
            reason: effect.reason,
            subject: effect.subject,
        })
    }

    /// One delivery in its own transaction: the path a delivery takes when its
    /// batch could not take it (a lost race, a failed batch commit).
    pub(super) async fn record_delivery_alone(
        &self,
        inbound: &Inbound<'_>,
        apply: &Apply<'_>,
    ) -> Result<Recorded> {
        retrying!(self, self.attempt(inbound, apply))
    }

    async fn attempt(
        &self,
        inbound: &Inbound<'_>,
        what: &Apply<'_>,
    ) -> std::result::Result<Recorded, Attempt> {
        let mut tx = self.pool.begin().await?;
        let recorded = attempt_in(&mut tx, inbound, what).await?;
        self.commit(tx).await?;
        Ok(recorded)
    }
}

/// Claims the dedup key, applies (through the state machines), and stores the
/// delivery row with its outcome, inside the caller's transaction (or
/// savepoint). A redelivery of the same message is recorded as `duplicate` and
/// goes no further. An order event without a buyer for an order nobody
/// registered is `unmatched`, kept until the order is registered.
pub(super) async fn attempt_in(
    tx: &mut AnyConnection,
    inbound: &Inbound<'_>,
    what: &Apply<'_>,
) -> std::result::Result<Recorded, Attempt> {
    let delivery_id = inbound.delivery_id.map_or_else(new_id, str::to_owned);
    let claimed = sqlx::query(
        "INSERT INTO delivery_keys (integration, dedup_key, delivery_id) VALUES ($1, $2, $3)
             ON CONFLICT (integration, dedup_key) DO NOTHING",
    )
    .bind(inbound.integration.id.as_str())
    .bind(inbound.dedup_key.as_str())
    .bind(delivery_id.as_str())
    .execute(&mut *tx)
    .await?
    .rows_affected()
        == 1;
    let effect = if claimed {
        apply(
            tx,
            inbound.integration,
            what,
            received(&delivery_id, inbound),
        )
        .await?
    } else {
        redelivery(tx, inbound).await?
    };
    let recorded = Recorded {
        delivery_id,
        outcome: effect.outcome,
        reason: effect.reason,
        subject: effect.subject,
    };
    insert_delivery(tx, inbound, &recorded).await?;
    Ok(recorded)
}

/// What a delivery asks of the store, as its provider's adapter read it: on
/// receipt, and again on replay.
pub enum Apply<'a> {
    /// Only on replay: a malformed body is stored on receipt without applying.
    Malformed {
        reason: &'a str,
    },
    Ignored {
        reason: &'a str,
    },
    Subscription {
        external_id: &'a str,
        incoming: &'a Incoming,
        previous_plan: Option<&'a str>,
    },
    Order {
        external_id: &'a str,
        incoming: &'a order::Incoming,
        buyer: Option<&'a Buyer>,
    },
}

/// Applies what a delivery asks, inside the caller's transaction.
async fn apply(
    tx: &mut AnyConnection,
    integration: &Integration,
    what: &Apply<'_>,
    via: Via<'_>,
) -> std::result::Result<Effect, Attempt> {
    match what {
        Apply::Malformed { reason } => Ok(Effect {
            outcome: Outcome::Malformed,
            reason: Some((*reason).to_owned()),
            subject: None,
        }),
        Apply::Ignored { reason } => Ok(Effect {
            outcome: Outcome::Ignored,
            reason: Some((*reason).to_owned()),
            subject: None,
        }),
        Apply::Subscription {
            external_id,
            incoming,
            previous_plan,
        } => apply_subscription(tx, integration, external_id, incoming, *previous_plan, via).await,
        Apply::Order {
            external_id,
            incoming,
            buyer,
        } => apply_order(tx, integration, external_id, incoming, *buyer, via).await,
    }
}

async fn apply_order(
    tx: &mut AnyConnection,
    integration: &Integration,
    external_id: &str,
    incoming: &order::Incoming,
    buyer: Option<&Buyer>,
    via: Via<'_>,
) -> std::result::Result<Effect, Attempt> {
    if buyer.is_none() {
        orders::touch_ref(tx, integration.id.as_str(), external_id).await?;
    }
    let current = orders::load(tx, integration.id.as_str(), external_id).await?;
    let decision = order::decide(current.as_ref().map(|c| &c.snapshot), incoming);
    let (order, seq) = match (current, buyer) {
        (Some(current), _) => {
            let next = decision.next.unwrap_or(current.snapshot);
            let seq = orders::update(
                tx,
                &current,
                &next,
                (current.version + 1, decision.next.is_some()),
                via.at,
            )
            .await?;
            (current, seq)
        }
        (None, Some(buyer)) if decision.next.is_some() => {
            let next = decision.next.unwrap_or(order::Snapshot {
                state: order::State::Pending,
                paid_at: None,
            });
            let order =
                orders::insert(tx, integration, external_id, buyer, &next, None, via.at).await?;
            (order, 1)
        }
        (None, Some(_)) => {
            return Ok(Effect {
                outcome: decision.outcome,
                reason: decision.reason,
                subject: None,
            });
        }
        (None, None) => {
            return Ok(Effect {
                outcome: Outcome::Unmatched,
                reason: Some(format!(
                    "no order {external_id:?} is registered for integration {}; \
                     registering it (POST /v1/orders) will apply this delivery",
                    integration.id
                )),
                subject: None,
            });
        }
    };
    let entry = orders::history_entry(
        incoming.event.as_str(),
        &decision,
        via.at,
        via.delivery_id,
        via.source.as_str(),
    );
    orders::record_history(tx, &order.id, seq, &entry).await?;
    if let Some(next) = &decision.next {
        orders::write_entitlements(tx, &order, next, &via.cause(incoming.event.as_str())).await?;
    }
    let state = decision.to.unwrap_or(order.snapshot.state);
    Ok(Effect {
        outcome: decision.outcome,
        reason: decision.reason,
        subject: Some(Subject {
            kind: SourceKind::Order,
            id: order.id,
            state: state.as_str().to_owned(),
        }),
    })
}

/// One attempt at a registration: see [`Store::register_order`].
async fn register_in(
    tx: &mut AnyConnection,
    integration: &Integration,
    external_id: &str,
    buyer: &Buyer,
    now: Instant,
    reparse: &(dyn Fn(&[u8], Instant) -> Option<order::Incoming> + Sync),
) -> std::result::Result<(OrderRecord, bool), Attempt> {
    orders::touch_ref(tx, integration.id.as_str(), external_id).await?;
    if let Some(existing) = orders::load(tx, integration.id.as_str(), external_id).await? {
        return Ok((existing, false));
    }
    let registered = order::register();
    let pending = registered.next.unwrap_or(order::Snapshot {
        state: order::State::Pending,
        paid_at: None,
    });
    let inserted = orders::insert(
        tx,
        integration,
        external_id,
        buyer,
        &pending,
        Some(now),
        now,
    )
    .await?;
    orders::record_history(
        tx,
        &inserted.id,
        1,
        &orders::history_entry("registered", &registered, now, None, "registration"),
    )
    .await?;
    let mut order = inserted.clone();

    let waiting = sqlx::query(
        "SELECT id, body, received_at FROM deliveries
         WHERE integration = $1 AND external_ref = $2 AND outcome = 'unmatched' ORDER BY id",
    )
    .bind(integration.id.as_str())
    .bind(external_id)
    .fetch_all(&mut *tx)
    .await?;
    let mut seq = 1;
    let mut last_applied = None;
    for row in &waiting {
        let delivery_id = text(row, "id")?;
        let body: Vec<u8> = sqlx::Row::try_get(row, "body")?;
        let received_at = super::instant(row, "received_at")?;
        let Some(incoming) = reparse(&body, received_at) else {
            continue;
        };
        let decision = order::decide(Some(&order.snapshot), &incoming);
        seq += 1;
        let entry = orders::history_entry(
            incoming.event.as_str(),
            &decision,
            now,
            Some(&delivery_id),
            "registration",
        );
        orders::record_history(tx, &order.id, seq, &entry).await?;
        let state = decision.to.unwrap_or(order.snapshot.state);
        let effect = Effect {
            outcome: decision.outcome,
            reason: decision.reason.clone(),
            subject: Some(Subject {
                kind: SourceKind::Order,
                id: order.id.clone(),
                state: state.as_str().to_owned(),
            }),
        };
        record_attempt(tx, &delivery_id, now, "registration", &effect).await?;
        if let Some(next) = decision.next {
            order.snapshot = next;
        }
        last_applied = Some(delivery_id);
    }
    // The waiting deliveries' decisions, written as one compare-and-set, like
    // every other change of an order.
    order.version = orders::update(tx, &inserted, &order.snapshot, (seq, true), now).await?;
    let snapshot = order.snapshot;
    let cause = Cause {
        kind: CauseKind::Registration,
        delivery_id: last_applied.as_deref(),
        event: Some("registered"),
        at: now,
    };
    orders::write_entitlements(tx, &order, &snapshot, &cause).await?;
    inputs::record(tx, InputKind::Registration, &order.id, now).await?;
    Ok((order, true))
}

async fn apply_subscription(
    tx: &mut AnyConnection,
    integration: &Integration,
    external_id: &str,
    incoming: &Incoming,
    previous_plan: Option<&str>,
    via: Via<'_>,
) -> std::result::Result<Effect, Attempt> {
    let current = load_for_update(tx, integration.id.as_str(), external_id).await?;
    let decision = subscription::decide(current.as_ref().map(|c| &c.snapshot), incoming);
    let recorded = super::subscriptions::write(
        tx,
        (integration.id.as_str(), integration.provider.as_str()),
        external_id,
        current.as_ref(),
        incoming,
        &decision,
        previous_plan,
        via,
    )
    .await?;
    let Some(subscription_id) = recorded else {
        return Ok(Effect {
            outcome: decision.outcome,
            reason: decision.reason,
            subject: None,
        });
    };
    let state = decision
        .to
        .or(current.as_ref().map(|c| c.snapshot.state))
        .map(|s| s.as_str().to_owned())
        .unwrap_or_default();
    Ok(Effect {
        outcome: decision.outcome,
        reason: decision.reason,
        subject: Some(Subject {
            kind: SourceKind::Subscription,
            id: subscription_id,
            state,
        }),
    })
}

/// What applying a delivery did, before the delivery row is written.
struct Effect {
    outcome: Outcome,
    reason: Option<String>,
    subject: Option<Subject>,
}

/// The same message again: point at the first delivery and its subject.
async fn redelivery(
    tx: &mut AnyConnection,
    inbound: &Inbound<'_>,
) -> std::result::Result<Effect, Attempt> {
    let row = sqlx::query(
        "SELECT d.id, d.subject_kind, d.subject_id FROM delivery_keys k
         JOIN deliveries d ON d.id = k.delivery_id
         WHERE k.integration = $1 AND k.dedup_key = $2",
    )
    .bind(inbound.integration.id.as_str())
    .bind(&inbound.dedup_key)
    .fetch_optional(&mut *tx)
    .await?;
    let Some(row) = row else {
        // The claim is visible but its delivery is not yet: a concurrent first
        // delivery is committing. Try again once it has.
        return Err(Attempt::Retry);
    };
    let first = text(&row, "id")?;
    let subject = match (
        super::opt_text(&row, "subject_kind")?,
        super::opt_text(&row, "subject_id")?,
    ) {
        (Some(kind), Some(id)) => {
            let kind = SourceKind::parse(&kind)
                .ok_or_else(|| StoreError::Corrupt(format!("subject kind {kind:?}")))?;
            let state = super::subscriptions::current_state(tx, kind, &id).await?;
            state.map(|state| Subject { kind, id, state })
        }
        _ => None,
    };
    Ok(Effect {
        outcome: Outcome::Duplicate,
        reason: Some(format!(
            "the same message was already received as delivery {first}"
        )),
        subject,
    })
}

pub(super) async fn insert_delivery(
    conn: &mut AnyConnection,
    inbound: &Inbound<'_>,
    recorded: &Recorded,
) -> Result<()> {
    sqlx::query(
        "INSERT INTO deliveries (id, integration, provider, received_at, dedup_key, event, outcome,
             reason, subject_kind, subject_id, body, headers, external_ref)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)",
    )
    .bind(&recorded.delivery_id)
    .bind(inbound.integration.id.as_str())
    .bind(inbound.integration.provider.as_str())
    .bind(micros(inbound.received_at))
    .bind(&inbound.dedup_key)
    .bind(inbound.event_name)
    .bind(recorded.outcome.as_str())
    .bind(recorded.reason.as_deref())
    .bind(recorded.subject.as_ref().map(|s| s.kind.as_str()))
    .bind(recorded.subject.as_ref().map(|s| s.id.as_str()))
    .bind(inbound.body)
    .bind(inbound.headers)
    .bind(inbound.external_ref)
    .execute(&mut *conn)
    .await?;
    sqlx::query(
        "INSERT INTO delivery_attempts (delivery_id, seq, at, trigger, outcome, reason, subject_kind, subject_id)
         VALUES ($1, 1, $2, 'received', $3, $4, $5, $6)",
    )
    .bind(&recorded.delivery_id)
    .bind(micros(inbound.received_at))
    .bind(recorded.outcome.as_str())
    .bind(recorded.reason.as_deref())
    .bind(recorded.subject.as_ref().map(|s| s.kind.as_str()))
    .bind(recorded.subject.as_ref().map(|s| s.id.as_str()))
    .execute(&mut *conn)
    .await?;
    inputs::record(
        conn,
        InputKind::Delivery,
        &recorded.delivery_id,
        inbound.received_at,
    )
    .await
}

/// Records a later attempt at a delivery (registration, replay) beside the
/// earlier ones, and makes it the delivery's current outcome.
async fn record_attempt(
    tx: &mut AnyConnection,
    delivery_id: &str,
    at: Instant,
    trigger: &str,
    effect: &Effect,
) -> Result<()> {
    sqlx::query(
        "INSERT INTO delivery_attempts (delivery_id, seq, at, trigger, outcome, reason, subject_kind, subject_id)
         SELECT $1, COALESCE(MAX(seq), 0) + 1, $2, $3, $4, $5, $6, $7
         FROM delivery_attempts WHERE delivery_id = $1",
    )
    .bind(delivery_id)
    .bind(micros(at))
    .bind(trigger)
    .bind(effect.outcome.as_str())
    .bind(effect.reason.as_deref())
    .bind(effect.subject.as_ref().map(|s| s.kind.as_str()))
    .bind(effect.subject.as_ref().map(|s| s.id.as_str()))
    .execute(&mut *tx)
    .await?;
    sqlx::query(
        "UPDATE deliveries SET outcome = $1, reason = $2, subject_kind = $3, subject_id = $4 WHERE id = $5",
    )
    .bind(effect.outcome.as_str())
    .bind(effect.reason.as_deref())
    .bind(effect.subject.as_ref().map(|s| s.kind.as_str()))
    .bind(effect.subject.as_ref().map(|s| s.id.as_str()))
    .bind(delivery_id)
    .execute(&mut *tx)
    .await?;
    Ok(())
}

/// How a delivery applies on receipt: at its arrival, source `delivery`.
fn received<'a>(delivery_id: &'a str, inbound: &Inbound<'_>) -> Via<'a> {
    Via {
        delivery_id: Some(delivery_id),
        source: CauseKind::Delivery,
        at: inbound.received_at,
    }
}
