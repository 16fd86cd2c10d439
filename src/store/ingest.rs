//! Recording a delivery and everything it causes, in one transaction: the
//! delivery row, the dedup claim, the subject's new state, its history entry and
//! its entitlement rows. Nothing is acknowledged before this commits.

use sqlx::AnyConnection;

use super::entitlements::{EntitlementRow, replace_for_source};
use super::subscriptions::{load_for_update, snapshot_facts};
use super::{
    Integration, MAX_ATTEMPTS, Result, Store, StoreError, backoff, is_retryable, micros, new_id,
    text,
};
use crate::domain::access::SourceKind;
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

/// Why one attempt at the transaction did not commit.
pub(super) enum Attempt {
    /// Lost a race (compare-and-set miss, busy database): run it again.
    Retry,
    Failed(StoreError),
}

impl From<sqlx::Error> for Attempt {
    fn from(e: sqlx::Error) -> Self {
        if is_retryable(&e) {
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

impl Store {
    /// Stores a delivery that authenticated but could not be parsed. It claims no
    /// dedup key: the same bytes again are just as malformed.
    pub async fn record_malformed(&self, inbound: &Inbound<'_>, reason: &str) -> Result<Recorded> {
        let _turn = self.write_turn().await;
        let id = new_id();
        let recorded = Recorded {
            delivery_id: id,
            outcome: Outcome::Malformed,
            reason: Some(reason.to_owned()),
            subject: None,
        };
        let mut conn = self.pool.acquire().await?;
        insert_delivery(&mut conn, inbound, &recorded).await?;
        Ok(recorded)
    }

    /// Stores a delivery whose event means nothing for entitlements.
    pub async fn record_ignored(&self, inbound: &Inbound<'_>, reason: &str) -> Result<Recorded> {
        self.transact(inbound, &Apply::Ignored { reason }).await
    }

    /// Applies a subscription event to the subscription `(integration,
    /// external_id)` through the state machine, and stores it all.
    pub async fn apply_subscription_event(
        &self,
        inbound: &Inbound<'_>,
        external_id: &str,
        incoming: &Incoming,
    ) -> Result<Recorded> {
        self.transact(
            inbound,
            &Apply::Subscription {
                external_id,
                incoming,
            },
        )
        .await
    }

    /// Runs one delivery's transaction: claim the dedup key (a redelivery is
    /// recorded as `duplicate` and goes no further), apply, store the delivery
    /// row with the outcome, commit. A transaction that lost a race runs again.
    async fn transact(&self, inbound: &Inbound<'_>, apply: &Apply<'_>) -> Result<Recorded> {
        let _turn = self.write_turn().await;
        for attempt in 1..=MAX_ATTEMPTS {
            match self.attempt(inbound, apply).await {
                Ok(recorded) => return Ok(recorded),
                Err(Attempt::Retry) => backoff(attempt).await,
                Err(Attempt::Failed(e)) => return Err(e),
            }
        }
        Err(StoreError::Contention(MAX_ATTEMPTS))
    }

    async fn attempt(
        &self,
        inbound: &Inbound<'_>,
        apply: &Apply<'_>,
    ) -> std::result::Result<Recorded, Attempt> {
        let mut tx = self.pool.begin().await?;
        let delivery_id = new_id();
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
        let effect = match apply {
            _ if !claimed => redelivery(&mut tx, inbound).await?,
            Apply::Ignored { reason } => Effect {
                outcome: Outcome::Ignored,
                reason: Some((*reason).to_owned()),
                subject: None,
            },
            Apply::Subscription {
                external_id,
                incoming,
            } => {
                apply_subscription(
                    &mut tx,
                    inbound.integration,
                    external_id,
                    incoming,
                    &delivery_id,
                )
                .await?
            }
        };
        let recorded = Recorded {
            delivery_id,
            outcome: effect.outcome,
            reason: effect.reason,
            subject: effect.subject,
        };
        insert_delivery(&mut tx, inbound, &recorded).await?;
        tx.commit().await?;
        Ok(recorded)
    }
}

/// What a delivery asks of the store.
enum Apply<'a> {
    Ignored {
        reason: &'a str,
    },
    Subscription {
        external_id: &'a str,
        incoming: &'a Incoming,
    },
}

async fn apply_subscription(
    tx: &mut AnyConnection,
    integration: &Integration,
    external_id: &str,
    incoming: &Incoming,
    delivery_id: &str,
) -> std::result::Result<Effect, Attempt> {
    let current = load_for_update(tx, integration.id.as_str(), external_id).await?;
    let decision = subscription::decide(current.as_ref().map(|c| &c.snapshot), incoming);
    let recorded = super::subscriptions::record_decision(
        tx,
        integration,
        external_id,
        current.as_ref(),
        incoming,
        &decision,
        delivery_id,
    )
    .await?;
    let Some(subscription_id) = recorded else {
        return Ok(Effect {
            outcome: decision.outcome,
            reason: decision.reason,
            subject: None,
        });
    };
    if let Some(next) = &decision.next {
        let policy = super::products::policy_in(tx, &next.product).await?;
        let row = EntitlementRow::new(
            &subscription_id,
            &next.product,
            &next.email,
            Some(integration.id.as_str()),
            Some(integration.provider.as_str()),
            next.plan.as_deref(),
            snapshot_facts(next),
            &policy,
            incoming.received_at,
        );
        replace_for_source(tx, SourceKind::Subscription, &subscription_id, &[row]).await?;
    }
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

async fn insert_delivery(
    conn: &mut AnyConnection,
    inbound: &Inbound<'_>,
    recorded: &Recorded,
) -> Result<()> {
    sqlx::query(
        "INSERT INTO deliveries (id, integration, provider, received_at, dedup_key, event, outcome,
             reason, subject_kind, subject_id, body, headers)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
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
    .execute(&mut *conn)
    .await?;
    Ok(())
}
