//! The access decision, rule by rule: DESIGN.md "Access decision".

use time::Duration;
use time::macros::datetime;

use super::*;
use crate::domain::subscription::State as Sub;

/// The subscription's `access_from`, an order's paid time, a grant's `valid_from`.
const FROM: Instant = datetime!(2026-01-01 0:00 UTC);
/// The subscription's `current_period_end`.
const END: Instant = datetime!(2026-02-01 0:00 UTC);
/// The default grace: 259200 seconds.
const GRACE: Duration = Duration::days(3);
const SECOND: Duration = Duration::SECOND;
/// The integration subscriptions come through.
const SAAS: &str = "zenofy-saas";
/// The integration orders come through, unless a test says otherwise.
const SHOP: &str = "zenofy-shop";

fn subscription_facts(state: Sub) -> Facts {
    Facts {
        state: SourceState::Subscription(state),
        start: FROM,
        end: Some(END),
    }
}

fn order_facts(state: order::State) -> Facts {
    Facts {
        state: SourceState::Order(state),
        start: FROM,
        end: None,
    }
}

fn grant_facts(revoked: bool, from: Instant, until: Option<Instant>) -> Facts {
    Facts {
        state: SourceState::Grant { revoked },
        start: from,
        end: until,
    }
}

/// An entitlement row as storage would keep it: the window computed under `policy`.
fn row(facts: Facts, policy: &Policy, changed_at: Instant) -> Source<'static> {
    Source {
        state: facts.state,
        window: window(&facts, policy),
        changed_at,
        // Orders through another integration than subscriptions: see
        // `beside` for an order through the subscription's own.
        integration: match facts.state {
            SourceState::Subscription(_) => Some(SAAS),
            SourceState::Order(_) => Some(SHOP),
            SourceState::Grant { .. } => None,
        },
    }
}

fn subscription(state: Sub, policy: &Policy) -> Source<'static> {
    row(subscription_facts(state), policy, FROM)
}

/// The most generous policy there is: whatever it still refuses, nothing grants.
fn generous() -> Policy {
    Policy {
        grace_period_seconds: 30 * 86_400,
        suspended_access: true,
        canceled_access: CanceledAccess::PeriodEnd,
        purchase_access_seconds: None,
    }
}

fn with_grace(seconds: i64) -> Policy {
    Policy {
        grace_period_seconds: seconds,
        ..Policy::default()
    }
}

fn entitled(reason: Reason, valid_until: Option<Instant>, source: usize) -> Decision {
    Decision {
        entitled: true,
        reason,
        valid_until,
        source: Some(source),
    }
}

fn denied(reason: Reason, valid_until: Option<Instant>, source: Option<usize>) -> Decision {
    Decision {
        entitled: false,
        reason,
        valid_until,
        source,
    }
}

// window: what one source grants under a policy.

#[test]
fn an_active_subscription_grants_its_period_plus_grace() {
    assert_eq!(
        window(&subscription_facts(Sub::Active), &Policy::default()),
        Some(Window {
            from: FROM,
            until: Some(END + GRACE),
            grace_from: Some(END),
        })
    );
}

#[test]
fn grace_period_seconds_sets_the_grace_after_the_period() {
    let cases = [
        (0, Some(END), None),
        (3_600, Some(END + Duration::hours(1)), Some(END)),
        (259_200, Some(END + Duration::days(3)), Some(END)),
    ];
    for (seconds, until, grace_from) in cases {
        assert_eq!(
            window(&subscription_facts(Sub::Active), &with_grace(seconds)),
            Some(Window {
                from: FROM,
                until,
                grace_from
            }),
            "grace_period_seconds {seconds}"
        );
    }
}

#[test]
fn an_active_subscription_without_a_period_end_grants_for_ever() {
    let facts = Facts {
        end: None,
        ..subscription_facts(Sub::Active)
    };
    assert_eq!(
        window(&facts, &Policy::default()),
        Some(Window {
            from: FROM,
            until: None,
            grace_from: None,
        })
    );
}

#[test]
fn a_suspended_subscription_grants_only_with_suspended_access() {
    let facts = subscription_facts(Sub::Suspended);
    let refused = Policy {
        suspended_access: false,
        ..generous()
    };
    assert_eq!(window(&facts, &refused), None);

    let allowed = Policy {
        suspended_access: true,
        ..Policy::default()
    };
    assert_eq!(
        window(&facts, &allowed),
        Some(Window {
            from: FROM,
            until: Some(END + GRACE),
            grace_from: Some(END),
        }),
        "like an active one, grace included"
    );
}

#[test]
fn a_canceled_subscription_keeps_its_paid_period_only_with_canceled_access_period_end() {
    let facts = subscription_facts(Sub::Canceled);
    let immediate = Policy {
        canceled_access: CanceledAccess::Immediate,
        ..generous()
    };
    assert_eq!(window(&facts, &immediate), None);

    let period_end = Policy {
        canceled_access: CanceledAccess::PeriodEnd,
        ..Policy::default()
    };
    assert_eq!(
        window(&facts, &period_end),
        Some(Window {
            from: FROM,
            until: Some(END),
            grace_from: None,
        }),
        "until the period end, no grace"
    );

    let no_known_end = Facts { end: None, ..facts };
    assert_eq!(
        window(&no_known_end, &period_end),
        None,
        "a canceled subscription never grants for ever"
    );
}

#[test]
fn pending_expired_and_refunded_subscriptions_never_grant() {
    for state in [Sub::Pending, Sub::Expired, Sub::Refunded] {
        assert_eq!(
            window(&subscription_facts(state), &generous()),
            None,
            "{}",
            state.as_str()
        );
    }
}

#[test]
fn a_paid_order_grants_for_purchase_access_seconds() {
    let cases = [(None, None), (Some(86_400), Some(FROM + Duration::days(1)))];
    for (purchase_access_seconds, until) in cases {
        let policy = Policy {
            purchase_access_seconds,
            ..Policy::default()
        };
        assert_eq!(
            window(&order_facts(order::State::Paid), &policy),
            Some(Window {
                from: FROM,
                until,
                grace_from: None,
            }),
            "purchase_access_seconds {purchase_access_seconds:?}"
        );
    }
}

#[test]
fn an_order_in_any_other_state_never_grants() {
    for state in order::State::ALL
        .into_iter()
        .filter(|s| *s != order::State::Paid)
    {
        assert_eq!(
            window(&order_facts(state), &generous()),
            None,
            "{}",
            state.as_str()
        );
    }
}

#[test]
fn a_grant_runs_from_valid_from_to_valid_until_unless_revoked() {
    for until in [Some(END), None] {
        assert_eq!(
            window(&grant_facts(false, FROM, until), &Policy::default()),
            Some(Window {
                from: FROM,
                until,
                grace_from: None,
            }),
            "valid_until {until:?}"
        );
        assert_eq!(window(&grant_facts(true, FROM, until), &generous()), None);
    }
}

// decide: one source.

/// With no `expired` event at all, an active subscription stops granting once
/// its period and grace are over.
#[test]
fn an_active_subscription_is_active_then_in_grace_then_period_ended() {
    let rows = [subscription(Sub::Active, &Policy::default())];
    let until = Some(END + GRACE);
    let cases = [
        (FROM, entitled(Reason::Active, until, 0)),
        (END - SECOND, entitled(Reason::Active, until, 0)),
        (END, entitled(Reason::GracePeriod, until, 0)),
        (
            END + GRACE - SECOND,
            entitled(Reason::GracePeriod, until, 0),
        ),
        (END + GRACE, denied(Reason::PeriodEnded, until, Some(0))),
        (
            END + Duration::days(365),
            denied(Reason::PeriodEnded, until, Some(0)),
        ),
    ];
    for (at, want) in cases {
        assert_eq!(decide(&rows, at), want, "at {at}");
    }
}

#[test]
fn without_grace_access_ends_with_the_period() {
    let rows = [subscription(Sub::Active, &with_grace(0))];
    assert_eq!(
        decide(&rows, END - SECOND),
        entitled(Reason::Active, Some(END), 0)
    );
    assert_eq!(
        decide(&rows, END),
        denied(Reason::PeriodEnded, Some(END), Some(0))
    );
}

#[test]
fn a_custom_grace_is_honoured() {
    let rows = [subscription(Sub::Active, &with_grace(86_400))];
    let until = Some(END + Duration::days(1));
    assert_eq!(
        decide(&rows, END - SECOND),
        entitled(Reason::Active, until, 0)
    );
    assert_eq!(
        decide(&rows, END + Duration::hours(12)),
        entitled(Reason::GracePeriod, until, 0)
    );
    assert_eq!(
        decide(&rows, END + Duration::days(1)),
        denied(Reason::PeriodEnded, until, Some(0))
    );
}

#[test]
fn suspended_access_decides_whether_a_suspended_subscription_is_entitled() {
    let allowed = [subscription(
        Sub::Suspended,
        &Policy {
            suspended_access: true,
            ..Policy::default()
        },
    )];
    let until = Some(END + GRACE);
    assert_eq!(
        decide(&allowed, END - SECOND),
        entitled(Reason::Active, until, 0)
    );
    assert_eq!(
        decide(&allowed, END),
        entitled(Reason::GracePeriod, until, 0)
    );
    assert_eq!(
        decide(&allowed, END + GRACE),
        denied(Reason::Suspended, until, Some(0)),
        "once its time ran out, a suspended subscription is still explained by its state"
    );

    let refused = [subscription(Sub::Suspended, &Policy::default())];
    assert_eq!(
        decide(&refused, END - SECOND),
        denied(Reason::Suspended, None, Some(0))
    );
}

#[test]
fn canceled_access_decides_whether_a_canceled_subscription_keeps_its_period() {
    let immediate = [subscription(Sub::Canceled, &Policy::default())];
    assert_eq!(
        decide(&immediate, FROM),
        denied(Reason::Canceled, None, Some(0))
    );

    let period_end = [subscription(
        Sub::Canceled,
        &Policy {
            canceled_access: CanceledAccess::PeriodEnd,
            ..Policy::default()
        },
    )];
    assert_eq!(
        decide(&period_end, END - SECOND),
        entitled(Reason::Active, Some(END), 0)
    );
    assert_eq!(
        decide(&period_end, END),
        denied(Reason::Canceled, Some(END), Some(0)),
        "no grace after a canceled period; the reason is the cancellation"
    );
}

#[test]
fn purchase_access_seconds_decides_how_long_a_purchase_grants() {
    let for_ever = [row(
        order_facts(order::State::Paid),
        &Policy::default(),
        FROM,
    )];
    assert_eq!(
        decide(&for_ever, FROM + Duration::days(36_500)),
        entitled(Reason::Purchase, None, 0)
    );

    let thirty_days = Policy {
        purchase_access_seconds: Some(30 * 86_400),
        ..Policy::default()
    };
    let limited = [row(order_facts(order::State::Paid), &thirty_days, FROM)];
    let until = Some(FROM + Duration::days(30));
    assert_eq!(
        decide(&limited, FROM + Duration::days(29)),
        entitled(Reason::Purchase, until, 0)
    );
    assert_eq!(
        decide(&limited, FROM + Duration::days(30)),
        denied(Reason::PeriodEnded, until, Some(0))
    );
}

/// Every reason code DESIGN.md names, with its wire spelling, each from a
/// customer with a single source (or none).
#[test]
fn every_reason_code() {
    let default = Policy::default();
    let short_purchase = Policy {
        purchase_access_seconds: Some(86_400),
        ..Policy::default()
    };
    let mid = FROM + Duration::days(10);
    let later = END + Duration::days(30);
    let cases: Vec<(&str, bool, Vec<Source>, Instant)> = vec![
        (
            "active",
            true,
            vec![subscription(Sub::Active, &default)],
            mid,
        ),
        (
            "grace_period",
            true,
            vec![subscription(Sub::Active, &default)],
            END,
        ),
        (
            "purchase",
            true,
            vec![row(order_facts(order::State::Paid), &default, FROM)],
            mid,
        ),
        (
            "grant",
            true,
            vec![row(grant_facts(false, FROM, None), &default, FROM)],
            mid,
        ),
        (
            "period_ended",
            false,
            vec![subscription(Sub::Active, &default)],
            later,
        ),
        (
            "period_ended",
            false,
            vec![row(order_facts(order::State::Paid), &short_purchase, FROM)],
            later,
        ),
        (
            "period_ended",
            false,
            vec![row(grant_facts(false, FROM, Some(END)), &default, FROM)],
            later,
        ),
        (
            "pending",
            false,
            vec![subscription(Sub::Pending, &default)],
            mid,
        ),
        (
            "pending",
            false,
            vec![row(order_facts(order::State::Pending), &default, FROM)],
            mid,
        ),
        (
            "suspended",
            false,
            vec![subscription(Sub::Suspended, &default)],
            mid,
        ),
        (
            "canceled",
            false,
            vec![subscription(Sub::Canceled, &default)],
            mid,
        ),
        (
            "canceled",
            false,
            vec![row(order_facts(order::State::Canceled), &default, FROM)],
            mid,
        ),
        (
            "expired",
            false,
            vec![subscription(Sub::Expired, &default)],
            mid,
        ),
        (
            "expired",
            false,
            vec![row(order_facts(order::State::Expired), &default, FROM)],
            mid,
        ),
        (
            "refunded",
            false,
            vec![subscription(Sub::Refunded, &default)],
            mid,
        ),
        (
            "refunded",
            false,
            vec![row(order_facts(order::State::Refunded), &default, FROM)],
            mid,
        ),
        (
            "revoked",
            false,
            vec![row(grant_facts(true, FROM, None), &default, FROM)],
            mid,
        ),
        ("no_entitlement", false, vec![], mid),
    ];
    for (code, entitled, rows, at) in cases {
        let decision = decide(&rows, at);
        assert_eq!(decision.reason.as_str(), code, "{rows:?}: {decision:?}");
        assert_eq!(decision.entitled, entitled, "{code}: {decision:?}");
        let source = (!rows.is_empty()).then_some(0);
        assert_eq!(
            decision.source, source,
            "{code}: the reason speaks for the source"
        );
    }
}

// decide: several sources.

#[test]
fn any_granting_source_grants() {
    let default = Policy::default();
    let rows = [
        row(subscription_facts(Sub::Refunded), &default, END),
        row(order_facts(order::State::Paid), &default, FROM),
        row(
            grant_facts(true, FROM, None),
            &default,
            END + Duration::days(1),
        ),
    ];
    assert_eq!(
        decide(&rows, END + Duration::days(2)),
        entitled(Reason::Purchase, None, 1),
        "a paid order grants however recently other sources changed"
    );
}

#[test]
fn the_source_granting_the_longest_gives_the_reason_and_valid_until() {
    let default = Policy::default();
    let in_grace = row(subscription_facts(Sub::Active), &default, FROM);
    let short_grant = row(
        grant_facts(false, FROM, Some(END + Duration::days(1))),
        &default,
        END,
    );
    let long_grant = row(
        grant_facts(false, FROM, Some(END + Duration::days(10))),
        &default,
        FROM,
    );

    let at = END + Duration::hours(1);
    assert_eq!(
        decide(&[in_grace.clone(), short_grant.clone()], at),
        entitled(Reason::GracePeriod, Some(END + GRACE), 0)
    );
    assert_eq!(
        decide(&[short_grant, in_grace.clone()], at),
        entitled(Reason::GracePeriod, Some(END + GRACE), 1),
        "whatever the order of the rows"
    );
    assert_eq!(
        decide(&[in_grace.clone(), long_grant.clone()], at),
        entitled(Reason::Grant, Some(END + Duration::days(10)), 1)
    );
    assert_eq!(
        decide(&[long_grant, in_grace], at),
        entitled(Reason::Grant, Some(END + Duration::days(10)), 0)
    );
}

#[test]
fn for_ever_beats_any_instant() {
    let default = Policy::default();
    let lifetime = row(order_facts(order::State::Paid), &default, FROM);
    let long_grant = row(
        grant_facts(false, FROM, Some(datetime!(2999-12-31 0:00 UTC))),
        &default,
        END,
    );
    let open_subscription = row(
        Facts {
            end: None,
            ..subscription_facts(Sub::Active)
        },
        &default,
        FROM,
    );
    let at = FROM + Duration::days(1);
    assert_eq!(
        decide(&[long_grant.clone(), lifetime.clone()], at),
        entitled(Reason::Purchase, None, 1)
    );
    assert_eq!(
        decide(&[lifetime, long_grant.clone()], at),
        entitled(Reason::Purchase, None, 0)
    );
    assert_eq!(
        decide(&[long_grant, open_subscription], at),
        entitled(Reason::Active, None, 1)
    );
}

#[test]
fn when_not_entitled_the_most_recently_changed_source_explains() {
    let default = Policy::default();
    let at = END + Duration::days(60);
    let ended = |changed_at| row(subscription_facts(Sub::Active), &default, changed_at);
    let refunded = |changed_at| row(order_facts(order::State::Refunded), &default, changed_at);
    let revoked = |changed_at| row(grant_facts(true, FROM, None), &default, changed_at);
    let march = datetime!(2026-03-01 0:00 UTC);
    let february = datetime!(2026-02-15 0:00 UTC);
    let january = datetime!(2026-01-15 0:00 UTC);

    // valid_until is the end of the most recent access window whichever source
    // explains the denial.
    let until = Some(END + GRACE);
    assert_eq!(
        decide(&[ended(january), refunded(march), revoked(february)], at),
        denied(Reason::Refunded, until, Some(1))
    );
    assert_eq!(
        decide(&[ended(january), refunded(february), revoked(march)], at),
        denied(Reason::Revoked, until, Some(2))
    );
    assert_eq!(
        decide(&[ended(march), refunded(february), revoked(january)], at),
        denied(Reason::PeriodEnded, until, Some(0))
    );
    assert_eq!(
        decide(&[refunded(february), revoked(march)], at),
        denied(Reason::Revoked, None, Some(1)),
        "no access window ever: no valid_until"
    );
}

#[test]
fn valid_until_when_not_entitled_is_the_end_of_the_most_recent_window() {
    let default = Policy::default();
    let rows = [
        row(
            grant_facts(false, FROM, Some(END + Duration::days(10))),
            &default,
            FROM,
        ),
        row(subscription_facts(Sub::Active), &default, END),
        row(grant_facts(false, FROM, Some(END)), &default, FROM),
    ];
    assert_eq!(
        decide(&rows, END + Duration::days(20)),
        denied(Reason::PeriodEnded, Some(END + Duration::days(10)), Some(1))
    );
}

/// `at` evaluates the rows as they are now at another instant; it does not
/// replay history.
#[test]
fn at_evaluates_the_same_rows_at_that_instant() {
    let default = Policy::default();
    let grant_from = datetime!(2026-03-01 0:00 UTC);
    let grant_until = datetime!(2026-04-01 0:00 UTC);
    let rows = [
        row(subscription_facts(Sub::Active), &default, FROM),
        row(
            grant_facts(false, grant_from, Some(grant_until)),
            &default,
            grant_from,
        ),
    ];
    let sub_until = Some(END + GRACE);
    let cases = [
        (
            "before any source began",
            FROM - SECOND,
            denied(Reason::NoEntitlement, None, None),
        ),
        (
            "in the period",
            FROM + Duration::days(5),
            entitled(Reason::Active, sub_until, 0),
        ),
        (
            "in the grace",
            END + Duration::days(1),
            entitled(Reason::GracePeriod, sub_until, 0),
        ),
        (
            "between the two",
            END + Duration::days(10),
            denied(Reason::PeriodEnded, sub_until, Some(0)),
        ),
        (
            "in the grant",
            grant_from,
            entitled(Reason::Grant, Some(grant_until), 1),
        ),
        (
            "after both",
            grant_until,
            denied(Reason::PeriodEnded, Some(grant_until), Some(1)),
        ),
    ];
    for (case, at, want) in cases {
        assert_eq!(decide(&rows, at), want, "{case}");
    }
}

#[test]
fn reason_codes_are_spelled_as_in_the_design() {
    let codes = [
        (Reason::Active, "active"),
        (Reason::GracePeriod, "grace_period"),
        (Reason::Purchase, "purchase"),
        (Reason::Grant, "grant"),
        (Reason::PeriodEnded, "period_ended"),
        (Reason::Pending, "pending"),
        (Reason::Suspended, "suspended"),
        (Reason::Canceled, "canceled"),
        (Reason::Expired, "expired"),
        (Reason::Refunded, "refunded"),
        (Reason::Revoked, "revoked"),
        (Reason::NoEntitlement, "no_entitlement"),
    ];
    for (reason, code) in codes {
        assert_eq!(reason.as_str(), code);
        assert_eq!(
            serde_json::to_value(reason).unwrap(),
            serde_json::json!(code)
        );
    }
}

// ------------------------------------------ an order beside a subscription

/// An order row through the subscriptions' own integration.
fn beside(state: order::State, policy: &Policy, changed_at: Instant) -> Source<'static> {
    Source {
        integration: Some(SAAS),
        ..row(order_facts(state), policy, changed_at)
    }
}

/// DESIGN.md "An order never outlives the subscription it paid for", cell by
/// cell: a paid order beside a subscription of its integration grants nothing
/// whatever the subscription's state; the subscription decides, reason and
/// `valid_until` included, at every instant, even when the order changed last.
#[test]
fn an_order_beside_a_subscription_of_its_integration_grants_nothing() {
    let policy = Policy {
        canceled_access: CanceledAccess::PeriodEnd,
        suspended_access: true,
        ..Policy::default()
    };
    let later = END + Duration::days(400);
    for state in Sub::ALL {
        let sub = subscription(state, &policy);
        let paid = beside(order::State::Paid, &policy, END + Duration::days(1));
        for at in [FROM, END - SECOND, END + SECOND, later] {
            let alone = decide(std::slice::from_ref(&sub), at);
            let both = decide(&[sub.clone(), paid.clone()], at);
            assert_eq!(both, alone, "{state:?} at {at}");
            // In either order of the rows.
            let reversed = decide(&[paid.clone(), sub.clone()], at);
            assert_eq!(
                (reversed.entitled, reversed.reason, reversed.valid_until),
                (alone.entitled, alone.reason, alone.valid_until),
                "{state:?} at {at}, order first"
            );
        }
        assert!(shadowed(&[sub.clone(), paid.clone()], 1), "{state:?}");
        assert!(!shadowed(&[sub.clone(), paid.clone()], 0), "{state:?}");
    }
}

/// The case: activated, then `order_paid` for the same product, then
/// expired: a year later not entitled, the subscription's `expired` speaks.
#[test]
fn an_expired_subscription_is_not_revived_by_its_own_payment_order() {
    let policy = Policy::default();
    let expired = Source {
        changed_at: END + GRACE,
        ..subscription(Sub::Expired, &policy)
    };
    let paid = beside(order::State::Paid, &policy, FROM + SECOND);
    assert_eq!(
        decide(&[paid, expired], END + Duration::days(365)),
        denied(Reason::Expired, None, Some(1))
    );
}

/// The same order through another integration, or with no subscription for
/// its product, is a purchase as before.
#[test]
fn an_order_through_another_integration_or_alone_is_a_purchase() {
    let policy = Policy::default();
    let canceled = subscription(Sub::Canceled, &policy);
    let elsewhere = row(order_facts(order::State::Paid), &policy, FROM);
    assert_eq!(
        decide(
            &[canceled.clone(), elsewhere.clone()],
            END + Duration::days(10)
        ),
        entitled(Reason::Purchase, None, 1)
    );
    assert!(!shadowed(&[canceled, elsewhere.clone()], 1));
    let alone = beside(order::State::Paid, &policy, FROM);
    assert_eq!(
        decide(std::slice::from_ref(&alone), END),
        entitled(Reason::Purchase, None, 0)
    );
    // A grant beside the subscription still grants: only orders give way.
    let grant = row(grant_facts(false, FROM, None), &policy, FROM);
    assert_eq!(
        decide(&[subscription(Sub::Expired, &policy), grant], END),
        entitled(Reason::Grant, None, 1)
    );
}

/// Shown among the sources with an empty window at its paid time; orders in
/// other states show no window, as before.
#[test]
fn a_shadowed_order_is_shown_with_an_empty_window() {
    let policy = Policy::default();
    let sources = [
        subscription(Sub::Active, &policy),
        beside(order::State::Paid, &policy, FROM),
        beside(order::State::Refunded, &policy, FROM),
        row(order_facts(order::State::Paid), &policy, FROM),
    ];
    assert_eq!(
        shown_window(&sources, 1),
        Some(Window {
            from: FROM,
            until: Some(FROM),
            grace_from: None
        })
    );
    assert_eq!(shown_window(&sources, 2), None);
    assert_eq!(shown_window(&sources, 3), sources[3].window);
    assert_eq!(shown_window(&sources, 0), sources[0].window);
}

/// The clock follows the subscription too: a shadowed purchase's edges are no
/// boundaries.
#[test]
fn a_shadowed_orders_edges_are_no_boundaries() {
    let policy = Policy {
        purchase_access_seconds: Some(86_400),
        ..Policy::default()
    };
    let sub = subscription(Sub::Expired, &policy);
    let paid = beside(order::State::Paid, &policy, FROM);
    assert_eq!(
        next_boundary(&[sub.clone(), paid.clone()], FROM - SECOND),
        None
    );
    assert_eq!(last_boundary(&[sub, paid], FROM, END), None);
}
