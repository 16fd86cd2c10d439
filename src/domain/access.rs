//! The access decision: which sources grant a customer a product at an instant,
//! and why (or why not). DESIGN.md "Access decision".
//!
//! Two steps, both pure. [`window`] turns a source's facts and the product policy
//! into the stretch of time it grants (this is what an entitlement row stores,
//! and what a policy change recomputes). [`decide`] ORs the windows of all of a
//! customer's sources for one product at one instant and explains the result.

use serde::Serialize;

use super::{CanceledAccess, Instant, Policy, order, subscription};

/// What kind of thing grants access.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum SourceKind {
    Subscription,
    Order,
    Grant,
}

impl SourceKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Subscription => "subscription",
            Self::Order => "order",
            Self::Grant => "grant",
        }
    }

    pub fn parse(raw: &str) -> Option<Self> {
        [Self::Subscription, Self::Order, Self::Grant]
            .into_iter()
            .find(|k| k.as_str() == raw)
    }
}

/// A source's state, typed by its kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SourceState {
    Subscription(subscription::State),
    Order(order::State),
    Grant { revoked: bool },
}

impl SourceState {
    pub fn kind(self) -> SourceKind {
        match self {
            Self::Subscription(_) => SourceKind::Subscription,
            Self::Order(_) => SourceKind::Order,
            Self::Grant { .. } => SourceKind::Grant,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Subscription(s) => s.as_str(),
            Self::Order(s) => s.as_str(),
            Self::Grant { revoked: false } => "active",
            Self::Grant { revoked: true } => "revoked",
        }
    }

    /// Reads back what [`SourceState::kind`] and [`SourceState::as_str`] wrote.
    pub fn parse(kind: SourceKind, state: &str) -> Option<Self> {
        match kind {
            SourceKind::Subscription => subscription::State::parse(state).map(Self::Subscription),
            SourceKind::Order => order::State::parse(state).map(Self::Order),
            SourceKind::Grant => match state {
                "active" => Some(Self::Grant { revoked: false }),
                "revoked" => Some(Self::Grant { revoked: true }),
                _ => None,
            },
        }
    }

    /// The reason given when this source grants nothing because of its state.
    fn idle_reason(self) -> Reason {
        use subscription::State as S;
        match self {
            Self::Subscription(S::Pending) | Self::Order(order::State::Pending) => Reason::Pending,
            Self::Subscription(S::Suspended) => Reason::Suspended,
            Self::Subscription(S::Canceled) | Self::Order(order::State::Canceled) => {
                Reason::Canceled
            }
            Self::Subscription(S::Expired) | Self::Order(order::State::Expired) => Reason::Expired,
            Self::Subscription(S::Refunded) | Self::Order(order::State::Refunded) => {
                Reason::Refunded
            }
            Self::Grant { revoked: true } => Reason::Revoked,
            // Sources in a granting state only fail to grant once their time ran out.
            Self::Subscription(S::Active)
            | Self::Order(order::State::Paid)
            | Self::Grant { revoked: false } => Reason::PeriodEnded,
        }
    }
}

/// What a source's window rests on: its state and two instants.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Facts {
    pub state: SourceState,
    /// Subscription: `access_from`; order: the paid time; grant: `valid_from`.
    pub start: Instant,
    /// Subscription: `current_period_end`; order: unused; grant: `valid_until`.
    pub end: Option<Instant>,
}

/// The stretch of time one source grants access: `[from, until)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    pub from: Instant,
    /// `None`: for ever (a lifetime purchase, an open grant, a subscription whose
    /// provider never sent a period end).
    pub until: Option<Instant>,
    /// From this instant the access is the grace after the period: reason
    /// `grace_period` instead of `active`.
    pub grace_from: Option<Instant>,
}

impl Window {
    fn contains(&self, at: Instant) -> bool {
        self.from <= at && self.until.is_none_or(|until| at < until)
    }

    fn ended_by(&self, at: Instant) -> bool {
        self.until.is_some_and(|until| until <= at)
    }
}

/// The window a source grants under a product's policy; `None` when its state
/// grants nothing.
pub fn window(facts: &Facts, policy: &Policy) -> Option<Window> {
    use subscription::State as S;
    let paid_period = |with_grace: bool| Window {
        from: facts.start,
        until: facts.end.map(|end| {
            if with_grace {
                super::add_seconds(end, policy.grace_period_seconds)
            } else {
                end
            }
        }),
        grace_from: facts
            .end
            .filter(|_| with_grace && policy.grace_period_seconds > 0),
    };
    match facts.state {
        SourceState::Subscription(S::Active) => Some(paid_period(true)),
        SourceState::Subscription(S::Suspended) if policy.suspended_access => {
            Some(paid_period(true))
        }
        SourceState::Subscription(S::Canceled)
            if policy.canceled_access == CanceledAccess::PeriodEnd && facts.end.is_some() =>
        {
            Some(paid_period(false))
        }
        SourceState::Subscription(_) => None,
        SourceState::Order(order::State::Paid) => Some(Window {
            from: facts.start,
            until: policy
                .purchase_access_seconds
                .map(|seconds| super::add_seconds(facts.start, seconds)),
            grace_from: None,
        }),
        SourceState::Order(_) => None,
        SourceState::Grant { revoked: false } => Some(Window {
            from: facts.start,
            until: facts.end,
            grace_from: None,
        }),
        SourceState::Grant { revoked: true } => None,
    }
}

/// One entitlement row as the decision reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Source<'a> {
    pub state: SourceState,
    pub window: Option<Window>,
    /// When the source last changed: the most recent one explains a denial.
    pub changed_at: Instant,
    /// The integration it came through (grants have none).
    pub integration: Option<&'a str>,
}

/// DESIGN.md "An order never outlives the subscription it paid for": an order
/// grants nothing for a product that the same customer also holds by
/// subscription through the same integration, whatever the subscription's
/// state (a SaaS product's payments sent as orders too). For that product the
/// subscription decides; the order is as if it were not there.
pub fn shadowed(sources: &[Source<'_>], i: usize) -> bool {
    let order = &sources[i];
    order.state.kind() == SourceKind::Order
        && order.integration.is_some()
        && sources.iter().any(|other| {
            other.state.kind() == SourceKind::Subscription && other.integration == order.integration
        })
}

/// The window a source is shown with among an answer's sources: its own, or,
/// for a [`shadowed`] order, an empty one at its start.
pub fn shown_window(sources: &[Source<'_>], i: usize) -> Option<Window> {
    let window = sources[i].window?;
    Some(if shadowed(sources, i) {
        Window {
            from: window.from,
            until: Some(window.from),
            grace_from: None,
        }
    } else {
        window
    })
}

/// The sources the decision weighs, with their index: all but [`shadowed`] ones.
fn weighed<'s, 'a>(sources: &'s [Source<'a>]) -> impl Iterator<Item = (usize, &'s Source<'a>)> {
    sources
        .iter()
        .enumerate()
        .filter(|&(i, _)| !shadowed(sources, i))
}

/// Why a customer is or is not entitled. DESIGN.md's reason codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Reason {
    Active,
    GracePeriod,
    Purchase,
    Grant,
    PeriodEnded,
    Pending,
    Suspended,
    Canceled,
    Expired,
    Refunded,
    Revoked,
    NoEntitlement,
}

impl Reason {
    pub const ALL: [Self; 12] = [
        Self::Active,
        Self::GracePeriod,
        Self::Purchase,
        Self::Grant,
        Self::PeriodEnded,
        Self::Pending,
        Self::Suspended,
        Self::Canceled,
        Self::Expired,
        Self::Refunded,
        Self::Revoked,
        Self::NoEntitlement,
    ];

    pub fn parse(raw: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|r| r.as_str() == raw)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Active => "active",
            Self::GracePeriod => "grace_period",
            Self::Purchase => "purchase",
            Self::Grant => "grant",
            Self::PeriodEnded => "period_ended",
            Self::Pending => "pending",
            Self::Suspended => "suspended",
            Self::Canceled => "canceled",
            Self::Expired => "expired",
            Self::Refunded => "refunded",
            Self::Revoked => "revoked",
            Self::NoEntitlement => "no_entitlement",
        }
    }

    /// Whether an answer with this reason is entitled.
    pub fn grants(self) -> bool {
        matches!(
            self,
            Self::Active | Self::GracePeriod | Self::Purchase | Self::Grant
        )
    }
}

/// The answer to "is this customer entitled to this product at `at`?".
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    pub entitled: bool,
    pub reason: Reason,
    /// Entitled: the latest end among the granting sources (`None`: for ever).
    /// Not entitled: the end of the most recent access window, if there was one.
    pub valid_until: Option<Instant>,
    /// Index into the sources of the one the reason speaks for, if any.
    pub source: Option<usize>,
}

/// ORs all sources of one customer and product at `at`, and explains the result.
pub fn decide(sources: &[Source<'_>], at: Instant) -> Decision {
    let granting =
        weighed(sources).filter_map(|(i, s)| s.window.filter(|w| w.contains(at)).map(|w| (i, w)));
    // The source that grants the longest: `None` (for ever) beats any instant.
    let longest = granting.max_by(|(_, a), (_, b)| match (a.until, b.until) {
        (None, None) => std::cmp::Ordering::Equal,
        (None, Some(_)) => std::cmp::Ordering::Greater,
        (Some(_), None) => std::cmp::Ordering::Less,
        (Some(x), Some(y)) => x.cmp(&y),
    });
    if let Some((i, w)) = longest {
        let reason = match sources[i].state.kind() {
            SourceKind::Subscription if w.grace_from.is_some_and(|g| g <= at) => {
                Reason::GracePeriod
            }
            SourceKind::Subscription => Reason::Active,
            SourceKind::Order => Reason::Purchase,
            SourceKind::Grant => Reason::Grant,
        };
        return Decision {
            entitled: true,
            reason,
            valid_until: w.until,
            source: Some(i),
        };
    }

    // Sources whose window has not begun at `at` did not exist yet, as far as
    // that instant is concerned: they explain nothing.
    let started = |s: &Source| s.window.is_none_or(|w| w.from <= at);
    let explaining = weighed(sources)
        .filter(|(_, s)| started(s))
        .max_by_key(|(_, s)| s.changed_at);
    let valid_until = weighed(sources)
        .filter_map(|(_, s)| s.window.filter(|w| w.ended_by(at)).and_then(|w| w.until))
        .max();
    match explaining {
        Some((i, s)) => Decision {
            entitled: false,
            // `period_ended` only for a source in a granting state (DESIGN.md):
            // a suspended or canceled one whose policy window ran out is still
            // explained by its state.
            reason: s.state.idle_reason(),
            valid_until,
            source: Some(i),
        },
        None => Decision {
            entitled: false,
            reason: Reason::NoEntitlement,
            valid_until,
            source: None,
        },
    }
}

/// Which edge of a window an instant is: what the clock says happened when it
/// passes one (the `event` of a change the clock appends).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Boundary {
    /// The window begins (a grant or purchase that starts later).
    Began,
    /// A subscription's paid period ends and its grace begins.
    PeriodEnded,
    /// The window ends (the period, or its grace, or a grant or purchase).
    Ended,
}

impl Boundary {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Began => "access_began",
            Self::PeriodEnded => "period_ended",
            Self::Ended => "access_ended",
        }
    }
}

impl Window {
    /// The window's edges, each with what it is.
    fn edges(&self) -> impl Iterator<Item = (Instant, Boundary)> {
        [
            Some((self.from, Boundary::Began)),
            self.grace_from.map(|g| (g, Boundary::PeriodEnded)),
            self.until.map(|u| (u, Boundary::Ended)),
        ]
        .into_iter()
        .flatten()
    }
}

/// The first instant after `after` at which time alone may change what
/// [`decide`] answers for `sources`: the nearest window edge. `None`: no edge
/// lies ahead, the answer stays as it is until a source changes. (Between two
/// edges every window either contains the instant or not, and none enters
/// grace, so the answer is constant there.)
pub fn next_boundary(sources: &[Source<'_>], after: Instant) -> Option<Instant> {
    weighed(sources)
        .filter_map(|(_, s)| s.window.as_ref())
        .flat_map(Window::edges)
        .map(|(at, _)| at)
        .filter(|&at| at > after)
        .min()
}

/// The most recent edge at or before `at` (and not before `since`), with the
/// index of its source: what the clock names as the cause of a change it
/// appends.
pub fn last_boundary(
    sources: &[Source<'_>],
    since: Instant,
    at: Instant,
) -> Option<(Instant, usize, Boundary)> {
    weighed(sources)
        .filter_map(|(i, s)| s.window.as_ref().map(|w| (i, w)))
        .flat_map(|(i, w)| w.edges().map(move |(edge, kind)| (edge, i, kind)))
        .filter(|&(edge, _, _)| since <= edge && edge <= at)
        .max_by_key(|&(edge, _, _)| edge)
}

#[cfg(test)]
#[path = "access_tests.rs"]
mod tests;

#[cfg(test)]
#[path = "access_proptests.rs"]
mod proptests;
