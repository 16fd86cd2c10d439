//! The subscription state machine, rule by rule: DESIGN.md "Subscription state
//! machine" (rules 1–4, the table and its footnotes) and the `access_from` rules
//! of "Access decision".

use proptest::prelude::*;
use time::Duration;
use time::macros::datetime;

use super::*;

/// The period the subscription under test is known to be in.
const KNOWN_START: Instant = datetime!(2026-01-01 0:00 UTC);
const KNOWN_END: Instant = datetime!(2026-02-01 0:00 UTC);
/// The next paid period.
const LATER_START: Instant = datetime!(2026-02-01 0:00 UTC);
const LATER_END: Instant = datetime!(2026-03-01 0:00 UTC);
/// The period before the known one.
const EARLIER_START: Instant = datetime!(2025-12-01 0:00 UTC);
const EARLIER_END: Instant = datetime!(2026-01-01 0:00 UTC);
/// When the known stretch of access began: before the known period, so that
/// "kept" and "reset" can be told apart.
const ACCESS_FROM: Instant = datetime!(2025-10-15 9:30 UTC);
/// When the event under test was received.
const RECEIVED: Instant = datetime!(2026-01-25 12:00 UTC);

fn email() -> Email {
    Email::parse("ada@example.com").unwrap()
}

fn product() -> ProductKey {
    ProductKey::parse("pro").unwrap()
}

/// A subscription in `state`, in the known period, on plan `basic`.
fn known(state: State) -> Snapshot {
    Snapshot {
        state,
        email: email(),
        product: product(),
        plan: Some("basic".to_owned()),
        current_period_start: Some(KNOWN_START),
        current_period_end: Some(KNOWN_END),
        access_from: ACCESS_FROM,
    }
}

/// A subscription in `state` whose provider never sent a period.
fn without_period(state: State) -> Snapshot {
    Snapshot {
        current_period_start: None,
        current_period_end: None,
        ..known(state)
    }
}

/// `event` carrying no period and no plan.
fn incoming(event: Event) -> Incoming {
    Incoming {
        event,
        email: email(),
        product: product(),
        plan: None,
        period_start: None,
        period_end: None,
        received_at: RECEIVED,
    }
}

/// `event` for the period `[start, end)`.
fn for_period(event: Event, start: Instant, end: Instant) -> Incoming {
    Incoming {
        period_start: Some(start),
        period_end: Some(end),
        ..incoming(event)
    }
}

fn later(event: Event) -> Incoming {
    for_period(event, LATER_START, LATER_END)
}

fn same(event: Event) -> Incoming {
    for_period(event, KNOWN_START, KNOWN_END)
}

fn earlier(event: Event) -> Incoming {
    for_period(event, EARLIER_START, EARLIER_END)
}

/// Checks a decision that leaves the subscription as it was.
fn assert_unchanged(decision: &Decision, from: State, outcome: Outcome, case: &str) {
    assert_eq!(decision.outcome, outcome, "{case}: {decision:?}");
    assert_eq!(decision.from, Some(from), "{case}: from");
    assert_eq!(decision.to, Some(from), "{case}: to");
    assert_eq!(decision.next, None, "{case}: nothing changes");
    assert!(
        decision.reason.as_deref().is_some_and(|r| !r.is_empty()),
        "{case}: a {} needs a reason: {decision:?}",
        outcome.as_str()
    );
}

/// Checks an `applied` decision and returns the next snapshot.
fn assert_applied(decision: &Decision, from: Option<State>, to: State, case: &str) -> Snapshot {
    assert_eq!(decision.outcome, Outcome::Applied, "{case}: {decision:?}");
    assert_eq!(
        decision.reason, None,
        "{case}: a plain applied has no reason"
    );
    assert_eq!(decision.from, from, "{case}: from");
    assert_eq!(decision.to, Some(to), "{case}: to");
    let next = decision
        .next
        .clone()
        .unwrap_or_else(|| panic!("{case}: applied without a next snapshot"));
    assert_eq!(next.state, to, "{case}: next state");
    next
}

/// One cell of DESIGN.md's table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Want {
    /// `→ X`: applied, the subscription moves to X.
    To(State),
    /// `→ active ²`: reactivation, only for a strictly later period, else rejected.
    Reactivates,
    /// `→ active ³`: recovery, only for a strictly later period, else stale.
    Recovers,
    Duplicate,
    Stale,
    Rejected,
    Noted,
}

const TO_PENDING: Want = Want::To(State::Pending);
const TO_ACTIVE: Want = Want::To(State::Active);
const TO_SUSPENDED: Want = Want::To(State::Suspended);
const TO_CANCELED: Want = Want::To(State::Canceled);
const TO_EXPIRED: Want = Want::To(State::Expired);
const TO_REFUNDED: Want = Want::To(State::Refunded);
const ACTIVE_2: Want = Want::Reactivates;
const ACTIVE_3: Want = Want::Recovers;
const DUPLICATE: Want = Want::Duplicate;
const STALE: Want = Want::Stale;
const REJECTED: Want = Want::Rejected;
const NOTED: Want = Want::Noted;

/// The table's columns, in DESIGN.md's order.
const FROM: [State; 6] = [
    State::Pending,
    State::Active,
    State::Suspended,
    State::Canceled,
    State::Expired,
    State::Refunded,
];

/// DESIGN.md's table, copied cell by cell.
#[rustfmt::skip]
const TABLE: [(&[Event], [Want; 6]); 10] = [
    //                                       pending       active        suspended     canceled      expired       refunded
    (&[Event::Created],                     [DUPLICATE,    STALE,        STALE,        STALE,        STALE,        STALE]),
    (&[Event::Installed],                   [DUPLICATE,    STALE,        STALE,        TO_PENDING,   TO_PENDING,   TO_PENDING]),
    (&[Event::Activated, Event::Renewed],   [TO_ACTIVE,    TO_ACTIVE,    ACTIVE_3,     ACTIVE_2,     ACTIVE_2,     ACTIVE_2]),
    (&[Event::Upgraded],                    [TO_ACTIVE,    TO_ACTIVE,    TO_ACTIVE,    REJECTED,     REJECTED,     REJECTED]),
    (&[Event::Warned],                      [NOTED,        NOTED,        NOTED,        NOTED,        NOTED,        NOTED]),
    (&[Event::Suspended],                   [REJECTED,     TO_SUSPENDED, DUPLICATE,    REJECTED,     REJECTED,     REJECTED]),
    (&[Event::Canceled],                    [TO_CANCELED,  TO_CANCELED,  TO_CANCELED,  DUPLICATE,    TO_CANCELED,  NOTED]),
    (&[Event::Uninstalled],                 [TO_CANCELED,  TO_CANCELED,  TO_CANCELED,  NOTED,        TO_CANCELED,  NOTED]),
    (&[Event::Expired],                     [TO_EXPIRED,   TO_EXPIRED,   TO_EXPIRED,   TO_EXPIRED,   DUPLICATE,    NOTED]),
    (&[Event::Refunded],                    [REJECTED,     TO_REFUNDED,  TO_REFUNDED,  TO_REFUNDED,  TO_REFUNDED,  DUPLICATE]),
];

/// Every (event, from, want) of the table.
fn cells() -> impl Iterator<Item = (Event, State, Want)> {
    TABLE.iter().flat_map(|(events, row)| {
        events.iter().flat_map(move |&event| {
            FROM.iter()
                .zip(row)
                .map(move |(&from, &want)| (event, from, want))
        })
    })
}

#[test]
fn the_table_lists_every_event_against_every_state_once() {
    let mut seen: Vec<(Event, State)> = cells().map(|(event, from, _)| (event, from)).collect();
    assert_eq!(seen.len(), 66);
    seen.sort_by_key(|(event, from)| (event.as_str(), from.as_str()));
    seen.dedup();
    assert_eq!(seen.len(), Event::ALL.len() * State::ALL.len());
}

/// Rule 4, every cell, for an event whose period ends strictly after the known
/// one: rules 2 (stale period) and 3 (duplicate by meaning) never fire, so what
/// happens is the table's cell alone.
#[test]
fn every_cell_of_the_table_for_a_later_period() {
    let mut wrong = Vec::new();
    for (event, from, want) in cells() {
        let case = format!("{} on {}", event.as_str(), from.as_str());
        let decision = decide(Some(&known(from)), &later(event));
        let (outcome, to) = match want {
            Want::To(to) => (Outcome::Applied, to),
            Want::Reactivates | Want::Recovers => (Outcome::Applied, State::Active),
            Want::Duplicate => (Outcome::Duplicate, from),
            Want::Stale => (Outcome::Stale, from),
            Want::Rejected => (Outcome::Rejected, from),
            Want::Noted => (Outcome::Noted, from),
        };
        let next = decision.next.as_ref();
        let ok = decision.outcome == outcome
            && decision.from == Some(from)
            && decision.to == Some(to)
            && if outcome == Outcome::Applied {
                decision.reason.is_none()
                    && next.is_some_and(|n| {
                        n.state == to
                            && n.current_period_start == Some(LATER_START)
                            && n.current_period_end == Some(LATER_END)
                    })
            } else {
                decision.reason.is_some() && next.is_none()
            };
        if !ok {
            wrong.push(format!(
                "{case}: want {} -> {}, got {decision:?}",
                outcome.as_str(),
                to.as_str()
            ));
        }
    }
    assert!(
        wrong.is_empty(),
        "cells that differ from DESIGN.md:\n{}",
        wrong.join("\n")
    );
}

/// Footnote ²: an ended subscription becomes active again only for a period
/// ending strictly after the known one; for the same period, or when either
/// period is unknown, it is rejected.
#[test]
fn reactivating_an_ended_subscription_needs_a_strictly_later_period() {
    let reactivations: Vec<_> = cells().filter(|&(_, _, want)| want == ACTIVE_2).collect();
    assert_eq!(reactivations.len(), 6);
    for (event, from, _) in reactivations {
        let case = format!("{} on {}", event.as_str(), from.as_str());

        let next = assert_applied(
            &decide(Some(&known(from)), &later(event)),
            Some(from),
            State::Active,
            &format!("{case}, later period"),
        );
        assert_eq!(next.current_period_end, Some(LATER_END), "{case}");

        let rejected = [
            ("same period", known(from), same(event)),
            ("event without a period", known(from), incoming(event)),
            (
                "subscription without a period",
                without_period(from),
                later(event),
            ),
            (
                "neither has a period",
                without_period(from),
                incoming(event),
            ),
        ];
        for (what, current, event_in) in rejected {
            let decision = decide(Some(&current), &event_in);
            assert_unchanged(
                &decision,
                from,
                Outcome::Rejected,
                &format!("{case}, {what}"),
            );
            let reason = decision.reason.unwrap();
            assert!(
                reason.contains(&format!("{} -> active", from.as_str())),
                "{case}, {what}: the reason names both states: {reason}"
            );
        }
    }
}

/// Footnote ³: a suspended subscription recovers only for a period ending
/// strictly after the known one; the payment for the same period came before
/// the suspension, so it is stale; with a period unknown it is rejected.
#[test]
fn recovering_from_suspension_needs_a_strictly_later_period() {
    let recoveries: Vec<_> = cells().filter(|&(_, _, want)| want == ACTIVE_3).collect();
    assert_eq!(recoveries.len(), 2);
    for (event, from, _) in recoveries {
        let case = format!("{} on {}", event.as_str(), from.as_str());

        let next = assert_applied(
            &decide(Some(&known(from)), &later(event)),
            Some(from),
            State::Active,
            &format!("{case}, later period"),
        );
        assert_eq!(next.current_period_end, Some(LATER_END), "{case}");

        let decision = decide(Some(&known(from)), &same(event));
        assert_unchanged(
            &decision,
            from,
            Outcome::Stale,
            &format!("{case}, same period"),
        );
        assert!(decision.reason.unwrap().contains("before the suspension"));

        for (what, current, event_in) in [
            ("event without a period", known(from), incoming(event)),
            (
                "subscription without a period",
                without_period(from),
                later(event),
            ),
            (
                "neither has a period",
                without_period(from),
                incoming(event),
            ),
        ] {
            let decision = decide(Some(&current), &event_in);
            assert_unchanged(
                &decision,
                from,
                Outcome::Rejected,
                &format!("{case}, {what}"),
            );
            let reason = decision.reason.unwrap();
            assert!(
                reason.contains("suspended -> active"),
                "{case}, {what}: the reason names both states: {reason}"
            );
        }
    }
}

/// Rule 1: the first event seen creates the subscription in its target state,
/// taking everything it carries.
#[test]
fn first_sight_creates_the_subscription_in_the_events_target_state() {
    let targets = [
        (Event::Created, State::Pending),
        (Event::Installed, State::Pending),
        (Event::Activated, State::Active),
        (Event::Renewed, State::Active),
        (Event::Upgraded, State::Active),
        (Event::Suspended, State::Suspended),
        (Event::Canceled, State::Canceled),
        (Event::Uninstalled, State::Canceled),
        (Event::Expired, State::Expired),
        (Event::Refunded, State::Refunded),
    ];
    for (event, to) in targets {
        let first = Incoming {
            plan: Some("basic".to_owned()),
            ..same(event)
        };
        let next = assert_applied(&decide(None, &first), None, to, event.as_str());
        assert_eq!(
            next,
            Snapshot {
                state: to,
                email: email(),
                product: product(),
                plan: Some("basic".to_owned()),
                current_period_start: Some(KNOWN_START),
                current_period_end: Some(KNOWN_END),
                access_from: KNOWN_START,
            },
            "{}",
            event.as_str()
        );
    }
}

#[test]
fn warned_for_an_unknown_subscription_is_ignored() {
    for warned in [incoming(Event::Warned), same(Event::Warned)] {
        let decision = decide(None, &warned);
        assert_eq!(decision.outcome, Outcome::Ignored);
        assert_eq!((decision.from, decision.to), (None, None));
        assert_eq!(decision.next, None);
        assert!(
            decision
                .reason
                .as_deref()
                .is_some_and(|r| r.contains("warned")),
            "{decision:?}"
        );
    }
}

/// Rule 2, before the table: whatever the event and the state.
#[test]
fn an_event_for_an_earlier_period_is_stale() {
    for from in State::ALL {
        for event in Event::ALL {
            let case = format!("{} on {}", event.as_str(), from.as_str());
            let decision = decide(Some(&known(from)), &earlier(event));
            assert_unchanged(&decision, from, Outcome::Stale, &case);
            let reason = decision.reason.unwrap();
            assert!(
                reason.contains("2026-01-01T00:00:00Z") && reason.contains("2026-02-01T00:00:00Z"),
                "{case}: the reason names both period ends: {reason}"
            );
        }
    }
}

/// Rule 3, before the table: the target state is the current state and the
/// period end is the same, or both are absent. Even where the table says
/// `→ active` (activated, renewed, upgraded on an active subscription).
#[test]
fn an_event_that_changes_nothing_is_a_duplicate() {
    for event in Event::ALL {
        let Some(target) = event.target() else {
            continue;
        };
        let case = event.as_str();

        let decision = decide(Some(&known(target)), &same(event));
        assert_unchanged(
            &decision,
            target,
            Outcome::Duplicate,
            &format!("{case}, same period"),
        );
        assert!(decision.reason.unwrap().contains(target.as_str()));

        // The same end with another start is still the same period.
        let shifted = Incoming {
            period_start: Some(EARLIER_START),
            ..same(event)
        };
        let decision = decide(Some(&known(target)), &shifted);
        assert_unchanged(
            &decision,
            target,
            Outcome::Duplicate,
            &format!("{case}, same end"),
        );

        let decision = decide(Some(&without_period(target)), &incoming(event));
        assert_unchanged(
            &decision,
            target,
            Outcome::Duplicate,
            &format!("{case}, both absent"),
        );
    }
}

/// Rule 3 needs both period ends equal: learning a period where none was known
/// changes something (where the table moves the subscription at all: an active
/// one; `canceled` on a canceled one stays a duplicate by the table).
#[test]
fn a_first_known_period_is_not_a_duplicate() {
    for event in [Event::Activated, Event::Renewed, Event::Upgraded] {
        let next = assert_applied(
            &decide(Some(&without_period(State::Active)), &same(event)),
            Some(State::Active),
            State::Active,
            event.as_str(),
        );
        assert_eq!(
            next,
            Snapshot {
                current_period_start: Some(KNOWN_START),
                current_period_end: Some(KNOWN_END),
                ..known(State::Active)
            }
        );
    }
}

#[test]
fn an_upgrade_to_a_different_plan_is_applied_not_duplicate() {
    let current = known(State::Active);
    let upgrade = Incoming {
        plan: Some("premium".to_owned()),
        ..same(Event::Upgraded)
    };
    let next = assert_applied(
        &decide(Some(&current), &upgrade),
        Some(State::Active),
        State::Active,
        "upgrade",
    );
    assert_eq!(
        next,
        Snapshot {
            plan: Some("premium".to_owned()),
            ..current.clone()
        },
        "only the plan changes"
    );

    let same_plan = Incoming {
        plan: Some("basic".to_owned()),
        ..same(Event::Upgraded)
    };
    let no_plan = same(Event::Upgraded);
    let renewal_naming_a_plan = Incoming {
        plan: Some("premium".to_owned()),
        ..same(Event::Renewed)
    };
    for (case, event) in [
        ("upgrade to the same plan", same_plan),
        ("upgrade naming no plan", no_plan),
        ("a renewal naming another plan", renewal_naming_a_plan),
    ] {
        let decision = decide(Some(&current), &event);
        assert_unchanged(&decision, State::Active, Outcome::Duplicate, case);
    }
}

/// Rule 4: the period and plan come from the event whenever they are later or
/// different, and stay when the event carries nothing newer; email and product
/// come from the latest applied event.
#[test]
fn a_transition_takes_the_later_period_and_the_events_plan_and_email() {
    let current = known(State::Active);
    let new_email = Email::parse("ada@new.example.com").unwrap();

    let mut event = later(Event::Canceled);
    event.plan = Some("premium".to_owned());
    event.email = new_email.clone();
    let next = assert_applied(
        &decide(Some(&current), &event),
        Some(State::Active),
        State::Canceled,
        "later",
    );
    assert_eq!(
        next,
        Snapshot {
            state: State::Canceled,
            email: new_email,
            plan: Some("premium".to_owned()),
            current_period_start: Some(LATER_START),
            current_period_end: Some(LATER_END),
            ..current.clone()
        }
    );

    for (case, event) in [
        ("same period", same(Event::Canceled)),
        ("no period, no plan", incoming(Event::Canceled)),
    ] {
        let next = assert_applied(
            &decide(Some(&current), &event),
            Some(State::Active),
            State::Canceled,
            case,
        );
        assert_eq!(
            next,
            Snapshot {
                state: State::Canceled,
                ..current.clone()
            },
            "{case}: only the state changes"
        );
    }
}

/// "Access decision": an event making an ended subscription active starts a new
/// stretch of access at its period start.
#[test]
fn reactivation_after_cancel_with_a_later_period_resets_access_from() {
    for from in [State::Canceled, State::Expired, State::Refunded] {
        for event in [Event::Activated, Event::Renewed] {
            let case = format!("{} on {}", event.as_str(), from.as_str());
            let next = assert_applied(
                &decide(Some(&known(from)), &later(event)),
                Some(from),
                State::Active,
                &case,
            );
            assert_eq!(next.access_from, LATER_START, "{case}");
            assert_eq!(next.current_period_start, Some(LATER_START), "{case}");
            assert_eq!(next.current_period_end, Some(LATER_END), "{case}");
        }
    }
}

#[test]
fn activation_from_pending_sets_access_from() {
    for event in [Event::Activated, Event::Renewed, Event::Upgraded] {
        let next = assert_applied(
            &decide(Some(&without_period(State::Pending)), &later(event)),
            Some(State::Pending),
            State::Active,
            event.as_str(),
        );
        assert_eq!(next.access_from, LATER_START, "{}", event.as_str());
    }
}

/// A renewal that arrives early (Zid renews five days before the end) never
/// opens a gap before its new period.
#[test]
fn renewal_from_active_keeps_access_from() {
    let early = Incoming {
        received_at: KNOWN_END - Duration::days(5),
        ..later(Event::Renewed)
    };
    for renewal in [later(Event::Renewed), later(Event::Activated), early] {
        let next = assert_applied(
            &decide(Some(&known(State::Active)), &renewal),
            Some(State::Active),
            State::Active,
            renewal.event.as_str(),
        );
        assert_eq!(
            next,
            Snapshot {
                current_period_start: Some(LATER_START),
                current_period_end: Some(LATER_END),
                ..known(State::Active)
            }
        );
    }
}

#[test]
fn upgrades_and_recoveries_from_suspension_keep_access_from() {
    let upgrade = Incoming {
        plan: Some("premium".to_owned()),
        ..same(Event::Upgraded)
    };
    for (from, event) in [
        (State::Active, upgrade.clone()),
        (State::Suspended, upgrade),
        (State::Suspended, later(Event::Renewed)),
        (State::Suspended, later(Event::Activated)),
    ] {
        let case = format!("{} on {}", event.event.as_str(), from.as_str());
        let next = assert_applied(
            &decide(Some(&known(from)), &event),
            Some(from),
            State::Active,
            &case,
        );
        assert_eq!(next.access_from, ACCESS_FROM, "{case}");
    }
}

#[test]
fn access_from_falls_back_to_received_at_when_no_period_start() {
    let end_only = |event| Incoming {
        period_end: Some(LATER_END),
        ..incoming(event)
    };
    let cases = [
        (
            "first sight without a period",
            None,
            incoming(Event::Activated),
        ),
        (
            "first sight with only an end",
            None,
            end_only(Event::Renewed),
        ),
        (
            "first sight of a pending one",
            None,
            incoming(Event::Created),
        ),
        (
            "activation from pending",
            Some(without_period(State::Pending)),
            end_only(Event::Activated),
        ),
        (
            "reactivation",
            Some(known(State::Canceled)),
            end_only(Event::Renewed),
        ),
    ];
    for (case, current, event) in cases {
        let decision = decide(current.as_ref(), &event);
        assert_eq!(decision.outcome, Outcome::Applied, "{case}: {decision:?}");
        let next = decision.next.unwrap();
        assert_eq!(next.access_from, RECEIVED, "{case}");
        assert_eq!(next.current_period_end, event.period_end, "{case}");
    }
}

#[test]
fn a_rejected_reason_names_both_states() {
    let mut rejected = 0;
    for (event, from, want) in cells() {
        let attempt = match want {
            Want::Rejected => later(event),
            Want::Reactivates => same(event),
            _ => continue,
        };
        let decision = decide(Some(&known(from)), &attempt);
        let case = format!("{} on {}", event.as_str(), from.as_str());
        assert_unchanged(&decision, from, Outcome::Rejected, &case);
        let target = event.target().unwrap();
        let reason = decision.reason.unwrap();
        assert!(
            reason.contains(&format!("{} -> {}", from.as_str(), target.as_str())),
            "{case}: {reason}"
        );
        rejected += 1;
    }
    // upgraded ×3, suspended ×4, refunded ×1, and the six ² cells for the same period.
    assert_eq!(rejected, 8 + 6);
}

#[test]
fn noted_and_lifecycle_start_reasons_name_the_state() {
    let decision = decide(Some(&known(State::Suspended)), &later(Event::Warned));
    assert_unchanged(&decision, State::Suspended, Outcome::Noted, "warned");
    assert!(decision.reason.unwrap().contains("stays suspended"));

    let decision = decide(Some(&known(State::Active)), &incoming(Event::Created));
    assert_unchanged(&decision, State::Active, Outcome::Stale, "created");
    assert!(decision.reason.unwrap().contains("moved on to active"));
}

// A valid lifecycle, delivered in any order with redeliveries, always ends on
// the latest period it delivered.

/// created (no period), activated for p1, renewed for p2..pn with strictly
/// increasing ends, then maybe one of suspended, canceled, expired for pn.
fn lifecycle() -> impl Strategy<Value = Vec<Incoming>> {
    (
        prop::collection::vec(1i64..=45, 1..=6),
        prop::option::of(prop::sample::select(vec![
            Event::Suspended,
            Event::Canceled,
            Event::Expired,
        ])),
    )
        .prop_map(|(period_days, ending)| {
            let mut start = datetime!(2026-01-01 0:00 UTC);
            let mut events = vec![Incoming {
                received_at: start,
                ..incoming(Event::Created)
            }];
            for (i, days) in period_days.into_iter().enumerate() {
                let end = start + Duration::days(days);
                let event = if i == 0 {
                    Event::Activated
                } else {
                    Event::Renewed
                };
                events.push(Incoming {
                    received_at: start,
                    ..for_period(event, start, end)
                });
                start = end;
            }
            if let Some(ending) = ending {
                let last = events.last().unwrap().clone();
                events.push(Incoming {
                    event: ending,
                    received_at: last.period_end.unwrap(),
                    ..last
                });
            }
            events
        })
}

/// The lifecycle, and its deliveries: every event, some twice or more, shuffled.
fn deliveries() -> impl Strategy<Value = (Vec<Incoming>, Vec<Incoming>)> {
    (
        lifecycle(),
        prop::collection::vec(any::<prop::sample::Index>(), 0..=5),
    )
        .prop_flat_map(|(events, again)| {
            let mut delivered = events.clone();
            delivered.extend(again.iter().map(|i| events[i.index(events.len())].clone()));
            (Just(events), Just(delivered).prop_shuffle())
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn any_delivery_order_ends_on_the_latest_period((events, delivered) in deliveries()) {
        let mut current: Option<Snapshot> = None;
        let mut history: Vec<Decision> = Vec::new();
        for event in &delivered {
            let decision = decide(current.as_ref(), event);
            let before = current.as_ref().map(|s| s.state);
            prop_assert_eq!(decision.from, before);
            prop_assert_eq!(decision.next.is_some(), decision.outcome == Outcome::Applied);
            if let Some(next) = &decision.next {
                prop_assert_eq!(decision.to, Some(next.state));
                let known_end = current.as_ref().and_then(|s| s.current_period_end);
                prop_assert!(next.current_period_end >= known_end, "the period never goes back");
                current = Some(next.clone());
            } else {
                prop_assert_eq!(decision.to, before);
            }
            history.push(decision);
        }

        prop_assert_eq!(history.len(), delivered.len());
        let latest = events.iter().filter_map(|e| e.period_end).max();
        let current = current.expect("the lifecycle creates the subscription");
        prop_assert_eq!(current.current_period_end, latest);

        // Where it ends: the lifecycle's last state. A suspension that only
        // ever arrived while the subscription was pending was rightly
        // rejected, and the activation that followed stands.
        let ending = events.last().map(|e| e.event).filter(|e| e.target() != Some(State::Active));
        let suspension_applied = delivered
            .iter()
            .zip(&history)
            .any(|(e, d)| e.event == Event::Suspended && d.outcome == Outcome::Applied);
        let want = match ending {
            None => State::Active,
            Some(Event::Suspended) if !suspension_applied => State::Active,
            Some(ending) => ending.target().unwrap(),
        };
        prop_assert_eq!(current.state, want);
    }
}
