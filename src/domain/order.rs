//! One-time purchases: the order state machine, DESIGN.md "Order state machine".
//! It shares the subscription machine's outcome vocabulary and history shape.

use serde::{Deserialize, Serialize};

use super::{Instant, Outcome};

/// Where a one-time order is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
#[schema(as = OrderState)]
pub enum State {
    Pending,
    Paid,
    Canceled,
    Expired,
    Refunded,
}

impl State {
    pub const ALL: [State; 5] = [
        Self::Pending,
        Self::Paid,
        Self::Canceled,
        Self::Expired,
        Self::Refunded,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Paid => "paid",
            Self::Canceled => "canceled",
            Self::Expired => "expired",
            Self::Refunded => "refunded",
        }
    }

    pub fn parse(raw: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.as_str() == raw)
    }
}

/// The canonical order events provider payloads translate into.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Event {
    /// The order moved along before payment (ZayPay `transfer_pending`, …).
    Progressed,
    Paid,
    Canceled,
    Expired,
    Refunded,
    /// Worth recording, changes nothing (Zeno Bank `checkout.partially_paid`,
    /// ZayPay `refund_initiated`, `refund_failed`).
    Informational,
}

impl Event {
    pub const ALL: [Event; 6] = [
        Self::Progressed,
        Self::Paid,
        Self::Canceled,
        Self::Expired,
        Self::Refunded,
        Self::Informational,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Progressed => "progressed",
            Self::Paid => "paid",
            Self::Canceled => "canceled",
            Self::Expired => "expired",
            Self::Refunded => "refunded",
            Self::Informational => "informational",
        }
    }

    /// The state the event moves an order to; `None` for informational events.
    pub fn target(self) -> Option<State> {
        Some(match self {
            Self::Progressed => State::Pending,
            Self::Paid => State::Paid,
            Self::Canceled => State::Canceled,
            Self::Expired => State::Expired,
            Self::Refunded => State::Refunded,
            Self::Informational => return None,
        })
    }
}

/// What is known about an order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Snapshot {
    pub state: State,
    /// When it was paid: the start of the access a purchase grants.
    pub paid_at: Option<Instant>,
}

/// One order event as an adapter reported it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Incoming {
    pub event: Event,
    /// When the provider says the payment happened, if it says.
    pub paid_at: Option<Instant>,
    pub received_at: Instant,
}

/// The verdict on one order event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    pub outcome: Outcome,
    pub reason: Option<String>,
    pub from: Option<State>,
    pub to: Option<State>,
    /// The snapshot after the event: `Some` exactly when `applied`.
    pub next: Option<Snapshot>,
}

/// One cell of the order table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cell {
    To(State),
    Duplicate,
    Stale,
    Rejected,
    Noted,
}

/// DESIGN.md's order table, row by row.
pub fn cell(event: Event, from: State) -> Cell {
    use Cell::*;
    use State as S;
    match (event, from) {
        (Event::Progressed, S::Pending) => Duplicate,
        (Event::Progressed, _) => Stale,

        (Event::Paid, S::Pending) => To(S::Paid),
        (Event::Paid, S::Paid) => Duplicate,
        (Event::Paid, _) => Rejected,

        (Event::Canceled, S::Pending | S::Paid) => To(S::Canceled),
        (Event::Canceled, S::Canceled) => Duplicate,
        (Event::Canceled, S::Expired) => Rejected,
        (Event::Canceled, S::Refunded) => Noted,

        (Event::Expired, S::Pending) => To(S::Expired),
        (Event::Expired, S::Expired) => Duplicate,
        (Event::Expired, _) => Rejected,

        (Event::Refunded, S::Paid | S::Canceled) => To(S::Refunded),
        (Event::Refunded, S::Refunded) => Duplicate,
        (Event::Refunded, _) => Rejected,

        (Event::Informational, _) => Noted,
    }
}

/// A registration (`POST /v1/orders`): a new order, pending until it is paid.
pub fn register() -> Decision {
    Decision {
        outcome: Outcome::Applied,
        reason: Some("registered by the SaaS backend".into()),
        from: None,
        to: Some(State::Pending),
        next: Some(Snapshot {
            state: State::Pending,
            paid_at: None,
        }),
    }
}

/// Applies an event to an order. `current` is `None` for an order seen for the
/// first time (Zenofy orders, whose payloads say who bought what): it is created
/// in the event's target state.
pub fn decide(current: Option<&Snapshot>, incoming: &Incoming) -> Decision {
    let paid_at = incoming.paid_at.unwrap_or(incoming.received_at);
    let Some(current) = current else {
        return match incoming.event.target() {
            Some(to) => Decision {
                outcome: Outcome::Applied,
                reason: None,
                from: None,
                to: Some(to),
                next: Some(Snapshot {
                    state: to,
                    paid_at: if to == State::Paid {
                        Some(paid_at)
                    } else {
                        incoming.paid_at
                    },
                }),
            },
            None => Decision {
                outcome: Outcome::Ignored,
                reason: Some(format!(
                    "{} for an order not seen before",
                    incoming.event.as_str()
                )),
                from: None,
                to: None,
                next: None,
            },
        };
    };
    let from = current.state;
    let unchanged = |outcome: Outcome, reason: String| Decision {
        outcome,
        reason: Some(reason),
        from: Some(from),
        to: Some(from),
        next: None,
    };
    match cell(incoming.event, from) {
        Cell::To(to) => Decision {
            outcome: Outcome::Applied,
            reason: None,
            from: Some(from),
            to: Some(to),
            next: Some(Snapshot {
                state: to,
                paid_at: if to == State::Paid {
                    Some(paid_at)
                } else {
                    current.paid_at
                },
            }),
        },
        Cell::Duplicate => unchanged(
            Outcome::Duplicate,
            format!(
                "{} changes nothing: the order is already {}",
                incoming.event.as_str(),
                from.as_str()
            ),
        ),
        Cell::Stale => unchanged(
            Outcome::Stale,
            format!(
                "{} comes from before the order became {}",
                incoming.event.as_str(),
                from.as_str()
            ),
        ),
        Cell::Noted => unchanged(
            Outcome::Noted,
            format!(
                "{} noted; the order stays {}",
                incoming.event.as_str(),
                from.as_str()
            ),
        ),
        Cell::Rejected => unchanged(
            Outcome::Rejected,
            format!(
                "invalid transition {} -> {} ({} on a {} order)",
                from.as_str(),
                incoming.event.target().map_or("?", State::as_str),
                incoming.event.as_str(),
                from.as_str()
            ),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    const RECEIVED: Instant = datetime!(2026-05-01 10:00 UTC);
    const PAID: Instant = datetime!(2026-05-01 09:58 UTC);

    fn incoming(event: Event) -> Incoming {
        Incoming {
            event,
            paid_at: Some(PAID),
            received_at: RECEIVED,
        }
    }

    /// DESIGN.md's table written out: (event, from, outcome, resulting state).
    #[test]
    fn every_cell_of_the_order_table() {
        use Outcome::*;
        use State::*;
        let table: [(Event, [(Outcome, State); 5]); 6] = [
            (
                Event::Progressed,
                [
                    (Duplicate, Pending),
                    (Stale, Paid),
                    (Stale, Canceled),
                    (Stale, Expired),
                    (Stale, Refunded),
                ],
            ),
            (
                Event::Paid,
                [
                    (Applied, Paid),
                    (Duplicate, Paid),
                    (Rejected, Canceled),
                    (Rejected, Expired),
                    (Rejected, Refunded),
                ],
            ),
            (
                Event::Canceled,
                [
                    (Applied, Canceled),
                    (Applied, Canceled),
                    (Duplicate, Canceled),
                    (Rejected, Expired),
                    (Noted, Refunded),
                ],
            ),
            (
                Event::Expired,
                [
                    (Applied, Expired),
                    (Rejected, Paid),
                    (Rejected, Canceled),
                    (Duplicate, Expired),
                    (Rejected, Refunded),
                ],
            ),
            (
                Event::Refunded,
                [
                    (Rejected, Pending),
                    (Applied, Refunded),
                    (Applied, Refunded),
                    (Rejected, Expired),
                    (Duplicate, Refunded),
                ],
            ),
            (
                Event::Informational,
                [
                    (Noted, Pending),
                    (Noted, Paid),
                    (Noted, Canceled),
                    (Noted, Expired),
                    (Noted, Refunded),
                ],
            ),
        ];
        for (event, row) in table {
            for (from, (outcome, state)) in State::ALL.into_iter().zip(row) {
                let current = Snapshot {
                    state: from,
                    paid_at: None,
                };
                let decision = decide(Some(&current), &incoming(event));
                assert_eq!(decision.outcome, outcome, "{event:?} on {from:?}");
                let after = decision.next.map_or(from, |n| n.state);
                assert_eq!(after, state, "{event:?} on {from:?}");
                assert_eq!(decision.from, Some(from));
                assert_eq!(
                    decision.next.is_some(),
                    outcome == Applied,
                    "{event:?} on {from:?}"
                );
            }
        }
    }

    #[test]
    fn paying_records_the_providers_paid_time_or_the_arrival() {
        let pending = Snapshot {
            state: State::Pending,
            paid_at: None,
        };
        let paid = decide(Some(&pending), &incoming(Event::Paid)).next.unwrap();
        assert_eq!(paid.paid_at, Some(PAID));
        let without = Incoming {
            paid_at: None,
            ..incoming(Event::Paid)
        };
        assert_eq!(
            decide(Some(&pending), &without).next.unwrap().paid_at,
            Some(RECEIVED)
        );
    }

    #[test]
    fn first_sight_creates_the_order_in_the_target_state() {
        let created = decide(None, &incoming(Event::Paid));
        assert_eq!(created.outcome, Outcome::Applied);
        assert_eq!(created.from, None);
        assert_eq!(
            created.next,
            Some(Snapshot {
                state: State::Paid,
                paid_at: Some(PAID)
            })
        );
        assert_eq!(
            decide(None, &incoming(Event::Informational)).outcome,
            Outcome::Ignored
        );
    }

    #[test]
    fn a_refund_keeps_when_it_was_paid_and_a_rejection_names_both_states() {
        let paid = Snapshot {
            state: State::Paid,
            paid_at: Some(PAID),
        };
        let refunded = decide(Some(&paid), &incoming(Event::Refunded))
            .next
            .unwrap();
        assert_eq!(refunded.paid_at, Some(PAID));
        let rejected = decide(Some(&paid), &incoming(Event::Expired));
        let reason = rejected.reason.unwrap();
        assert!(reason.contains("paid -> expired"), "{reason}");
    }
}
