//! The access decision at the extremes: instants from anywhere in the range the
//! `time` crate holds (its first and last nanosecond, and the last second of
//! 9999), policies with `grace_period_seconds` and `purchase_access_seconds` up
//! to `i64::MAX`. [`window`] and [`decide`] answer, and never panic.

use proptest::prelude::*;
use time::macros::datetime;
use time::{OffsetDateTime, PrimitiveDateTime, UtcOffset};

use super::*;
use crate::domain::subscription::State as Sub;

/// The last whole second of 9999, the latest instant RFC 3339 can write.
const LAST_SECOND: Instant = datetime!(9999-12-31 23:59:59 UTC);
const NANOS_PER_DAY: i128 = 86_400 * 1_000_000_000;

fn earliest() -> Instant {
    PrimitiveDateTime::MIN.assume_utc()
}

fn latest() -> Instant {
    PrimitiveDateTime::MAX.assume_utc()
}

fn at_nanos(nanos: i128) -> Instant {
    OffsetDateTime::from_unix_timestamp_nanos(nanos).expect("within time's range")
}

/// An instant in UTC from anywhere in `time`'s range, the edges made likely.
fn instant() -> impl Strategy<Value = Instant> {
    let (lo, hi) = (
        earliest().unix_timestamp_nanos(),
        latest().unix_timestamp_nanos(),
    );
    let last = LAST_SECOND.unix_timestamp_nanos();
    prop_oneof![
        Just(earliest()),
        Just(latest()),
        Just(LAST_SECOND),
        Just(OffsetDateTime::UNIX_EPOCH),
        (lo..=hi).prop_map(at_nanos),
        (hi - 400 * NANOS_PER_DAY..=hi).prop_map(at_nanos),
        (lo..=lo + 400 * NANOS_PER_DAY).prop_map(at_nanos),
        (last - 1_000_000_000..=hi).prop_map(at_nanos),
        (1_600_000_000i64..2_000_000_000)
            .prop_map(|s| OffsetDateTime::from_unix_timestamp(s).unwrap()),
    ]
}

/// An instant as [`instant`], expressed in any offset `time` admits (so the
/// same wall-clock reading may lie beyond `time`'s range in UTC).
fn instant_in_any_offset() -> impl Strategy<Value = Instant> {
    (instant(), -93_599i32..=93_599).prop_map(|(at, offset)| {
        PrimitiveDateTime::new(at.date(), at.time())
            .assume_offset(UtcOffset::from_whole_seconds(offset).unwrap())
    })
}

/// Seconds from 0 to `i64::MAX`, the edges made likely.
fn seconds() -> impl Strategy<Value = i64> {
    prop_oneof![
        Just(0),
        Just(1),
        Just(i64::MAX),
        Just(i64::MAX - 1),
        0..=i64::MAX,
        0..=100 * 365 * 86_400i64,
        i64::MAX - 1_000_000..=i64::MAX,
    ]
}

fn canceled_access() -> impl Strategy<Value = CanceledAccess> {
    prop::sample::select(vec![CanceledAccess::Immediate, CanceledAccess::PeriodEnd])
}

/// Any policy the type holds, with non-negative durations up to `i64::MAX`.
fn policy() -> impl Strategy<Value = Policy> {
    (
        seconds(),
        any::<bool>(),
        canceled_access(),
        prop::option::of(seconds().prop_map(|s| s.max(1))),
    )
        .prop_map(
            |(grace_period_seconds, suspended_access, canceled_access, purchase)| Policy {
                grace_period_seconds,
                suspended_access,
                canceled_access,
                purchase_access_seconds: purchase,
            },
        )
}

/// A policy `PUT /v1/admin/products/{key}` accepts: grace from 0 to 100 years,
/// purchases from 1 second to 1000 years.
fn accepted_policy() -> impl Strategy<Value = Policy> {
    const YEAR: i64 = 365 * 86_400;
    (
        prop_oneof![Just(0), Just(259_200), Just(100 * YEAR), 0..=100 * YEAR],
        any::<bool>(),
        canceled_access(),
        prop::option::of(prop_oneof![Just(1), Just(1000 * YEAR), 1..=1000 * YEAR]),
    )
        .prop_map(
            |(grace_period_seconds, suspended_access, canceled_access, purchase)| Policy {
                grace_period_seconds,
                suspended_access,
                canceled_access,
                purchase_access_seconds: purchase,
            },
        )
}

fn state() -> impl Strategy<Value = SourceState> {
    let mut all: Vec<SourceState> = Sub::ALL
        .into_iter()
        .map(SourceState::Subscription)
        .collect();
    all.extend(order::State::ALL.into_iter().map(SourceState::Order));
    all.extend([
        SourceState::Grant { revoked: false },
        SourceState::Grant { revoked: true },
    ]);
    prop::sample::select(all)
}

fn facts_with<S: Strategy<Value = Instant>>(at: fn() -> S) -> impl Strategy<Value = Facts> {
    (state(), at(), prop::option::of(at())).prop_map(|(state, start, end)| Facts {
        state,
        start,
        end,
    })
}

fn facts() -> impl Strategy<Value = Facts> {
    facts_with(instant)
}

/// Any window, not only those [`window`] computes.
fn any_window() -> impl Strategy<Value = Window> {
    (
        instant(),
        prop::option::of(instant()),
        prop::option::of(instant()),
    )
        .prop_map(|(from, until, grace_from)| Window {
            from,
            until,
            grace_from,
        })
}

/// Sources through one of two integrations, or none (a grant's).
fn integration() -> impl Strategy<Value = Option<&'static str>> {
    prop::sample::select(vec![None, Some("one"), Some("two")])
}

fn any_source() -> impl Strategy<Value = Source<'static>> {
    (
        state(),
        prop::option::of(any_window()),
        instant(),
        integration(),
    )
        .prop_map(|(state, window, changed_at, integration)| Source {
            state,
            window,
            changed_at,
            integration,
        })
}

/// What [`window`] promises whatever the instants: which states grant, from
/// when, whether for ever, and whether with grace.
fn check_window(facts: &Facts, policy: &Policy) -> Result<(), TestCaseError> {
    let got = window(facts, policy);
    let grants = match facts.state {
        SourceState::Subscription(Sub::Active) => true,
        SourceState::Subscription(Sub::Suspended) => policy.suspended_access,
        SourceState::Subscription(Sub::Canceled) => {
            policy.canceled_access == CanceledAccess::PeriodEnd && facts.end.is_some()
        }
        SourceState::Subscription(_) => false,
        SourceState::Order(state) => state == order::State::Paid,
        SourceState::Grant { revoked } => !revoked,
    };
    prop_assert_eq!(got.is_some(), grants, "{:?} under {:?}", facts, policy);
    let Some(w) = got else { return Ok(()) };
    prop_assert_eq!(w.from, facts.start);
    let for_ever = match facts.state {
        SourceState::Order(_) => policy.purchase_access_seconds.is_none(),
        _ => facts.end.is_none(),
    };
    prop_assert_eq!(w.until.is_none(), for_ever);
    let with_grace = matches!(
        facts.state,
        SourceState::Subscription(Sub::Active | Sub::Suspended)
    ) && policy.grace_period_seconds > 0;
    prop_assert_eq!(w.grace_from, facts.end.filter(|_| with_grace));
    Ok(())
}

/// What [`decide`] promises: entitled exactly when a window contains `at`, the
/// longest such window speaks, and a denial is never explained as access.
fn check_decision(sources: &[Source], at: Instant) -> Result<(), TestCaseError> {
    let decision = decide(sources, at);
    // An order beside a subscription of its integration grants nothing.
    let beside_subscription = |i: usize| {
        matches!(sources[i].state, SourceState::Order(_))
            && sources.iter().any(|s| {
                matches!(s.state, SourceState::Subscription(_))
                    && s.integration.is_some()
                    && s.integration == sources[i].integration
            })
    };
    let containing: Vec<usize> = (0..sources.len())
        .filter(|&i| !beside_subscription(i) && sources[i].window.is_some_and(|w| w.contains(at)))
        .collect();
    prop_assert_eq!(decision.entitled, !containing.is_empty());
    if decision.entitled {
        let i = decision
            .source
            .expect("an entitled decision names its source");
        prop_assert!(containing.contains(&i));
        let until = sources[i].window.unwrap().until;
        prop_assert_eq!(decision.valid_until, until);
        for &j in &containing {
            let other = sources[j].window.unwrap().until;
            prop_assert!(
                until.is_none() || other.is_some_and(|o| Some(o) <= until),
                "source {} grants longer than the one named",
                j
            );
        }
        prop_assert!(matches!(
            decision.reason,
            Reason::Active | Reason::GracePeriod | Reason::Purchase | Reason::Grant
        ));
    } else {
        prop_assert!(!matches!(
            decision.reason,
            Reason::Active | Reason::GracePeriod | Reason::Purchase | Reason::Grant
        ));
        prop_assert!(
            decision
                .source
                .is_none_or(|i| i < sources.len() && !beside_subscription(i))
        );
        prop_assert_eq!(
            decision.source.is_none(),
            decision.reason == Reason::NoEntitlement
        );
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Any facts (instants across `time`'s whole range) under any policy
    /// (grace and purchase up to `i64::MAX` seconds).
    #[test]
    fn window_answers_for_any_facts_under_any_policy(facts in facts(), policy in policy()) {
        check_window(&facts, &policy)?;
    }

    /// The same under the policies the API accepts: a period ending in 9999
    /// plus a grace of days must not panic either.
    #[test]
    fn window_answers_for_any_facts_under_an_accepted_policy(
        facts in facts(),
        policy in accepted_policy(),
    ) {
        check_window(&facts, &policy)?;
    }

    /// A subscription's window under any grace, from any period end (`end +
    /// grace_period_seconds` in isolation; suspended access keeps the grace too).
    #[test]
    fn a_subscriptions_window_answers_for_any_grace(
        state in prop::sample::select(vec![Sub::Active, Sub::Suspended]),
        start in instant(),
        end in instant(),
        grace in seconds(),
    ) {
        let facts = Facts { state: SourceState::Subscription(state), start, end: Some(end) };
        let policy = Policy { grace_period_seconds: grace, suspended_access: true, ..Policy::default() };
        check_window(&facts, &policy)?;
    }

    /// The same under the graces the API accepts (0 to 100 years): a period
    /// ending in the last days of 9999 must not panic either.
    #[test]
    fn a_subscriptions_window_answers_for_an_accepted_grace(
        state in prop::sample::select(vec![Sub::Active, Sub::Suspended]),
        start in instant(),
        end in instant(),
        grace in prop_oneof![Just(259_200), 0..=100 * 365 * 86_400i64],
    ) {
        let facts = Facts { state: SourceState::Subscription(state), start, end: Some(end) };
        let policy = Policy { grace_period_seconds: grace, suspended_access: true, ..Policy::default() };
        check_window(&facts, &policy)?;
    }

    /// A paid order's window under any `purchase_access_seconds`, from any
    /// paid time (`start + purchase_access_seconds` in isolation).
    #[test]
    fn a_paid_orders_window_answers_for_any_purchase_access_seconds(
        start in instant(),
        purchase in prop::option::of(seconds().prop_map(|s| s.max(1))),
    ) {
        let facts = Facts { state: SourceState::Order(order::State::Paid), start, end: None };
        let policy = Policy { purchase_access_seconds: purchase, ..Policy::default() };
        check_window(&facts, &policy)?;
    }

    /// The same under the purchase durations the API accepts (1 second to
    /// 1000 years): an order paid in 9999 must not panic either.
    #[test]
    fn a_paid_orders_window_answers_for_an_accepted_purchase_access_seconds(
        start in instant(),
        purchase in prop::option::of(prop_oneof![Just(1), 1..=1000 * 365 * 86_400i64]),
    ) {
        let facts = Facts { state: SourceState::Order(order::State::Paid), start, end: None };
        let policy = Policy { purchase_access_seconds: purchase, ..Policy::default() };
        check_window(&facts, &policy)?;
    }

    /// Instants in any offset, including wall-clock readings whose UTC lies past
    /// `time`'s range.
    #[test]
    fn window_answers_for_instants_in_any_offset(
        facts in facts_with(instant_in_any_offset),
        policy in accepted_policy(),
    ) {
        check_window(&facts, &policy)?;
    }

    /// Any sources with any windows at any instant: the decision explains itself.
    #[test]
    fn decide_answers_for_any_sources_at_any_instant(
        sources in prop::collection::vec(any_source(), 0..6),
        at in instant(),
    ) {
        check_decision(&sources, at)?;
    }

    /// The same in any offset.
    #[test]
    fn decide_answers_in_any_offset(
        sources in prop::collection::vec(any_source(), 0..6),
        at in instant_in_any_offset(),
    ) {
        check_decision(&sources, at)?;
    }

    /// Storage's path: the windows `window` computes for a customer's sources
    /// under one accepted policy, decided at any instant.
    #[test]
    fn windows_then_decision_answer_at_any_instant(
        all in prop::collection::vec((facts(), instant()), 0..5),
        policy in accepted_policy(),
        at in instant(),
    ) {
        let sources: Vec<Source> = all
            .iter()
            .map(|(facts, changed_at)| Source {
                state: facts.state,
                window: window(facts, &policy),
                changed_at: *changed_at,
                integration: Some("one"),
            })
            .collect();
        check_decision(&sources, at)?;
    }

    /// The clock's promise: between `at` and the next boundary the answer
    /// stays as it is, so a change appended at each boundary is every change
    /// time alone makes.
    #[test]
    fn the_answer_holds_until_the_next_boundary(
        all in prop::collection::vec((near_facts(), near_instant()), 0..5),
        policy in accepted_policy(),
        at in near_instant(),
        later in 0i64..40 * 86_400,
    ) {
        let sources: Vec<Source> = all
            .iter()
            .map(|(facts, changed_at)| Source {
                state: facts.state,
                window: window(facts, &policy),
                changed_at: *changed_at,
                integration: Some("one"),
            })
            .collect();
        let then = crate::domain::add_seconds(at, later);
        let answer = |d: Decision| (d.entitled, d.reason, d.valid_until);
        match next_boundary(&sources, at) {
            Some(next) if next <= then => {
                prop_assert!(next > at);
                // The edge just crossed is the one the clock names.
                prop_assert!(last_boundary(&sources, at, next).is_some());
            }
            _ => prop_assert_eq!(answer(decide(&sources, at)), answer(decide(&sources, then))),
        }
    }
}

/// Instants within a few months of each other, so that windows, their edges
/// and the instants asked about meet often.
fn near_instant() -> impl Strategy<Value = Instant> {
    (1_700_000_000i64..1_700_000_000 + 90 * 86_400)
        .prop_map(|s| OffsetDateTime::from_unix_timestamp(s).unwrap())
}

fn near_facts() -> impl Strategy<Value = Facts> {
    facts_with(near_instant)
}
