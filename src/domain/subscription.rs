//! The subscription state machine: DESIGN.md rules 1–4 and the transition table.
//!
//! [`decide`] is a pure function from what is known (the current snapshot, if
//! any) and what just arrived (an [`Incoming`] event) to a [`Decision`]: the
//! outcome, the reason, and the next snapshot. Storage persists the decision;
//! nothing here knows it exists.

use serde::{Deserialize, Serialize};

use super::{Email, Instant, Outcome, ProductKey};

/// Where a subscription is in its lifecycle.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
#[schema(as = SubscriptionState)]
pub enum State {
    Pending,
    Active,
    Suspended,
    Canceled,
    Expired,
    Refunded,
}

impl State {
    pub const ALL: [State; 6] = [
        Self::Pending,
        Self::Active,
        Self::Suspended,
        Self::Canceled,
        Self::Expired,
        Self::Refunded,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Active => "active",
            Self::Suspended => "suspended",
            Self::Canceled => "canceled",
            Self::Expired => "expired",
            Self::Refunded => "refunded",
        }
    }

    pub fn parse(raw: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.as_str() == raw)
    }

    /// The lifecycle is over: only a new paid period (or a reinstall) reopens it.
    fn has_ended(self) -> bool {
        matches!(self, Self::Canceled | Self::Expired | Self::Refunded)
    }
}

/// The canonical subscription events every provider's payloads translate into.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Event {
    Created,
    Installed,
    Activated,
    Renewed,
    Upgraded,
    Warned,
    Suspended,
    Canceled,
    Uninstalled,
    Expired,
    Refunded,
}

impl Event {
    pub const ALL: [Event; 11] = [
        Self::Created,
        Self::Installed,
        Self::Activated,
        Self::Renewed,
        Self::Upgraded,
        Self::Warned,
        Self::Suspended,
        Self::Canceled,
        Self::Uninstalled,
        Self::Expired,
        Self::Refunded,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Created => "created",
            Self::Installed => "installed",
            Self::Activated => "activated",
            Self::Renewed => "renewed",
            Self::Upgraded => "upgraded",
            Self::Warned => "warned",
            Self::Suspended => "suspended",
            Self::Canceled => "canceled",
            Self::Uninstalled => "uninstalled",
            Self::Expired => "expired",
            Self::Refunded => "refunded",
        }
    }

    pub fn parse(raw: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|e| e.as_str() == raw)
    }

    /// The state the event moves a subscription to; `None` for `warned`, which
    /// is only ever noted.
    pub fn target(self) -> Option<State> {
        Some(match self {
            Self::Created | Self::Installed => State::Pending,
            Self::Activated | Self::Renewed | Self::Upgraded => State::Active,
            Self::Warned => return None,
            Self::Suspended => State::Suspended,
            Self::Canceled | Self::Uninstalled => State::Canceled,
            Self::Expired => State::Expired,
            Self::Refunded => State::Refunded,
        })
    }
}

/// One event as a provider adapter reported it, with the time it was received.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Incoming {
    pub event: Event,
    pub email: Email,
    pub product: ProductKey,
    pub plan: Option<String>,
    pub period_start: Option<Instant>,
    pub period_end: Option<Instant>,
    pub received_at: Instant,
}

/// What is known about a subscription: everything the rules need, and everything
/// the entitlement row is computed from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Snapshot {
    pub state: State,
    pub email: Email,
    pub product: ProductKey,
    pub plan: Option<String>,
    pub current_period_start: Option<Instant>,
    pub current_period_end: Option<Instant>,
    /// When the current stretch of access began: see DESIGN.md "Access decision".
    pub access_from: Instant,
}

/// The verdict on one incoming event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    pub outcome: Outcome,
    /// Why, in words an operator can act on; `None` for a plain `applied`.
    pub reason: Option<String>,
    pub from: Option<State>,
    pub to: Option<State>,
    /// The snapshot after the event: `Some` exactly when the outcome is `applied`.
    pub next: Option<Snapshot>,
}

/// Applies DESIGN.md rules 1–4, in order, to one incoming event.
pub fn decide(current: Option<&Snapshot>, incoming: &Incoming) -> Decision {
    let Some(current) = current else {
        return first_sight(incoming);
    };
    let from = current.state;
    let unchanged = |outcome: Outcome, reason: String| Decision {
        outcome,
        reason: Some(reason),
        from: Some(from),
        to: Some(from),
        next: None,
    };

    // Rule 2: stale period.
    if let (Some(theirs), Some(ours)) = (incoming.period_end, current.current_period_end)
        && theirs < ours
    {
        return unchanged(
            Outcome::Stale,
            format!(
                "{} for a period ending {} is older than the known period ending {}",
                incoming.event.as_str(),
                rfc3339(theirs),
                rfc3339(ours)
            ),
        );
    }

    // Rule 3: duplicate by meaning.
    let target = incoming.event.target();
    let plan_changes = incoming.event == Event::Upgraded
        && incoming.plan.is_some()
        && incoming.plan != current.plan;
    if target == Some(from) && incoming.period_end == current.current_period_end && !plan_changes {
        return unchanged(Outcome::Duplicate, already(current, incoming));
    }

    // Rule 4: the table.
    match cell(incoming.event, from) {
        Cell::To(to) => apply(current, incoming, to),
        Cell::Duplicate => unchanged(Outcome::Duplicate, already(current, incoming)),
        Cell::Noted => unchanged(
            Outcome::Noted,
            format!(
                "{} noted; the subscription stays {}",
                incoming.event.as_str(),
                from.as_str()
            ),
        ),
        Cell::Stale => unchanged(
            Outcome::Stale,
            format!(
                "{} starts a lifecycle that has already moved on to {}",
                incoming.event.as_str(),
                from.as_str()
            ),
        ),
        Cell::Rejected => unchanged(Outcome::Rejected, invalid(incoming.event, from)),
        Cell::Reactivate => match (incoming.period_end, current.current_period_end) {
            (Some(theirs), Some(ours)) if theirs > ours => apply(current, incoming, State::Active),
            (Some(_), Some(_)) => unchanged(
                Outcome::Rejected,
                format!(
                    "{}: {} cannot become active again for the period it ended in; \
                     only a later paid period reactivates it",
                    invalid(incoming.event, from),
                    from.as_str()
                ),
            ),
            _ => unchanged(
                Outcome::Rejected,
                format!(
                    "{}: reactivation needs a period ending after the known one, and a period is unknown",
                    invalid(incoming.event, from)
                ),
            ),
        },
        Cell::Recover => match (incoming.period_end, current.current_period_end) {
            (Some(theirs), Some(ours)) if theirs > ours => apply(current, incoming, State::Active),
            (Some(_), Some(_)) => unchanged(
                Outcome::Stale,
                format!(
                    "{} for the period the subscription was suspended after: that payment came before the suspension",
                    incoming.event.as_str()
                ),
            ),
            _ => unchanged(
                Outcome::Rejected,
                format!(
                    "{}: recovery from suspension needs a period ending after the known one, and a period is unknown",
                    invalid(incoming.event, from)
                ),
            ),
        },
    }
}

/// One cell of the transition table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cell {
    To(State),
    Duplicate,
    Stale,
    Rejected,
    Noted,
    /// Footnote ²: → active only for a strictly later period, else rejected.
    Reactivate,
    /// Footnote ³: → active only for a strictly later period, else stale.
    Recover,
}

/// DESIGN.md's table, row by row.
pub fn cell(event: Event, from: State) -> Cell {
    use Cell::*;
    use State as S;
    match (event, from) {
        (Event::Created, S::Pending) => Duplicate,
        (Event::Created, _) => Stale,

        (Event::Installed, S::Pending) => Duplicate,
        (Event::Installed, S::Active | S::Suspended) => Stale,
        (Event::Installed, S::Canceled | S::Expired | S::Refunded) => To(S::Pending),

        (Event::Activated | Event::Renewed, S::Pending | S::Active) => To(S::Active),
        (Event::Activated | Event::Renewed, S::Suspended) => Recover,
        (Event::Activated | Event::Renewed, S::Canceled | S::Expired | S::Refunded) => Reactivate,

        (Event::Upgraded, S::Pending | S::Active | S::Suspended) => To(S::Active),
        (Event::Upgraded, S::Canceled | S::Expired | S::Refunded) => Rejected,

        (Event::Warned, _) => Noted,

        (Event::Suspended, S::Active) => To(S::Suspended),
        (Event::Suspended, S::Suspended) => Duplicate,
        (Event::Suspended, _) => Rejected,

        (Event::Canceled, S::Canceled) => Duplicate,
        (Event::Canceled, S::Refunded) => Noted,
        (Event::Canceled, _) => To(S::Canceled),

        (Event::Uninstalled, S::Canceled | S::Refunded) => Noted,
        (Event::Uninstalled, _) => To(S::Canceled),

        (Event::Expired, S::Expired) => Duplicate,
        (Event::Expired, S::Refunded) => Noted,
        (Event::Expired, _) => To(S::Expired),

        (Event::Refunded, S::Pending) => Rejected,
        (Event::Refunded, S::Refunded) => Duplicate,
        (Event::Refunded, _) => To(S::Refunded),
    }
}

/// Rule 1: the first event seen creates the subscription in its target state.
fn first_sight(incoming: &Incoming) -> Decision {
    let Some(to) = incoming.event.target() else {
        return Decision {
            outcome: Outcome::Ignored,
            reason: Some(format!(
                "{} for a subscription not seen before",
                incoming.event.as_str()
            )),
            from: None,
            to: None,
            next: None,
        };
    };
    let next = Snapshot {
        state: to,
        email: incoming.email.clone(),
        product: incoming.product.clone(),
        plan: incoming.plan.clone(),
        current_period_start: incoming.period_start,
        current_period_end: incoming.period_end,
        access_from: incoming.period_start.unwrap_or(incoming.received_at),
    };
    Decision {
        outcome: Outcome::Applied,
        reason: None,
        from: None,
        to: Some(to),
        next: Some(next),
    }
}

/// Moves to `to`, taking the period and plan from the event where they are later
/// or different. An event that changes nothing at all is a duplicate.
fn apply(current: &Snapshot, incoming: &Incoming, to: State) -> Decision {
    let mut next = current.clone();
    next.state = to;
    next.email = incoming.email.clone();
    next.product = incoming.product.clone();
    if let Some(theirs) = incoming.period_end
        && current.current_period_end.is_none_or(|ours| theirs > ours)
    {
        next.current_period_end = Some(theirs);
        if incoming.period_start.is_some() {
            next.current_period_start = incoming.period_start;
        }
    }
    if next.current_period_start.is_none() {
        next.current_period_start = incoming.period_start;
    }
    if incoming.plan.is_some() {
        next.plan = incoming.plan.clone();
    }
    let reopens =
        to == State::Active && (current.state == State::Pending || current.state.has_ended());
    if reopens {
        next.access_from = incoming.period_start.unwrap_or(incoming.received_at);
    }
    if next == *current {
        return Decision {
            outcome: Outcome::Duplicate,
            reason: Some(already(current, incoming)),
            from: Some(current.state),
            to: Some(current.state),
            next: None,
        };
    }
    Decision {
        outcome: Outcome::Applied,
        reason: None,
        from: Some(current.state),
        to: Some(to),
        next: Some(next),
    }
}

fn already(current: &Snapshot, incoming: &Incoming) -> String {
    format!(
        "{} changes nothing: the subscription is already {} for this period",
        incoming.event.as_str(),
        current.state.as_str()
    )
}

fn invalid(event: Event, from: State) -> String {
    match event.target() {
        Some(to) => format!(
            "invalid transition {} -> {} ({} on a {} subscription)",
            from.as_str(),
            to.as_str(),
            event.as_str(),
            from.as_str()
        ),
        None => format!(
            "{} is not valid on a {} subscription",
            event.as_str(),
            from.as_str()
        ),
    }
}

fn rfc3339(at: Instant) -> String {
    crate::time_fmt::rfc3339(at)
}

#[cfg(test)]
#[path = "subscription_tests.rs"]
mod tests;
