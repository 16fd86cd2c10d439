//! One writer's effects in one place. A write of a source's entitlement rows
//! (or of a product's policy, or the clock's look at a pair) fans out, in this
//! order: the rows (`entitlements`), the change log (`changes`), the outbound
//! messages of those changes (`outbound`), the pairs' timers (`timers`) and
//! the read model's touches (`touches`). Only this module calls more than one
//! of them, so none of them imports another.

use sqlx::AnyConnection;

use super::changes::{self, Answer, Cause, CauseKind, Compared};
use super::entitlements::{self, EntitlementRow};
use super::timers::{self, Timer};
use super::{Result, outbound, touches};
use crate::domain::access::{self, Reason, SourceKind};
use crate::domain::{Email, Policy, ProductKey};

/// Appends the changes among `compared` and, in the same transaction, one
/// outbound message per matching endpoint for each. Returns how many changes.
pub(super) async fn append(
    tx: &mut AnyConnection,
    cause: &Cause<'_>,
    source: Option<(SourceKind, &str)>,
    compared: &[Compared<'_>],
) -> Result<usize> {
    let appended = changes::append(tx, cause, source, compared).await?;
    outbound::enqueue(tx, &appended, crate::time_fmt::now()).await?;
    Ok(appended.len())
}

/// Replaces every row of one source with `rows` (their windows computed here,
/// under the product's policy as this transaction reads it), and appends to the
/// change log every answer this changes: for each (customer, product) the
/// source had or now has rows for, the answer at `cause.at` before and after.
///
/// On PostgreSQL the pairs written are locked first (see [`entitlements::lock`]): two
/// writers of one pair take turns, so each compares against what the other
/// committed and their changes enter the log in commit order.
///
/// The common case (the source's rows stay on the same pairs) is four
/// statements: lock, read the pairs' rows and policies, upsert, append.
pub(super) async fn replace_for_source(
    tx: &mut AnyConnection,
    kind: SourceKind,
    source_id: &str,
    mut rows: Vec<EntitlementRow>,
    cause: &Cause<'_>,
) -> Result<()> {
    let mut pairs: Vec<(Email, ProductKey)> = rows
        .iter()
        .map(|r| (r.email.clone(), r.product.clone()))
        .collect();
    pairs.sort();
    pairs.dedup();
    entitlements::lock(tx, &pairs).await?;
    let mut seen = entitlements::read_pairs(tx, &pairs, Some((kind, source_id))).await?;
    let own = |r: &EntitlementRow| r.state.kind() == kind && r.source_id == source_id;
    // No rows at all: the source is gone (a rebuild removing it).
    let moved = rows.is_empty()
        || seen.own_rows > seen.rows.iter().flatten().filter(|r| own(r)).count() as i64;
    if moved {
        // The source leaves a pair (a subscription moved to another product or
        // customer): that pair's answer changes too.
        pairs.extend(entitlements::source_pairs(tx, kind, source_id).await?);
        pairs.sort();
        pairs.dedup();
        entitlements::lock(tx, &pairs).await?;
        seen = entitlements::read_pairs(tx, &pairs, Some((kind, source_id))).await?;
        entitlements::delete_of_source(tx, kind, source_id).await?;
    }
    for row in &mut rows {
        let policy = seen.policies.get(&row.product).cloned().unwrap_or_default();
        row.window = access::window(&row.facts, &policy);
    }
    for row in &rows {
        entitlements::upsert(tx, row).await?;
    }

    let mut compared = Vec::with_capacity(pairs.len());
    let mut timers = Vec::with_capacity(pairs.len());
    for (((email, product), before), last) in pairs.iter().zip(&seen.rows).zip(seen.last) {
        let mut after: Vec<EntitlementRow> = before.iter().filter(|r| !own(r)).cloned().collect();
        after.extend(
            rows.iter()
                .filter(|r| &r.email == email && &r.product == product)
                .cloned(),
        );
        after.sort_by(|a, b| (a.changed_at, &a.source_id).cmp(&(b.changed_at, &b.source_id)));
        // Rows that answered `no_entitlement` (a grant not yet begun) showed
        // nothing: `previous` is null, as for no rows.
        let stored =
            || Some(Answer::of(before, cause.at)).filter(|a| a.reason != Reason::NoEntitlement);
        compared.push(Compared {
            email,
            product,
            // What was last published, except for a rebuild: it repairs rows
            // changed behind the log's back, and the access API answered from
            // those rows, so the change is from what they answered.
            before: if cause.kind == CauseKind::Rebuild {
                stored()
            } else {
                last.or_else(stored)
            },
            after: Answer::of(&after, cause.at),
        });
        timers.push(Timer::after(email, product, &after, cause.at));
    }
    append(tx, cause, Some((kind, source_id)), &compared).await?;
    timers::set(tx, &timers).await?;
    let mut emails: Vec<&Email> = pairs.iter().map(|(email, _)| email).collect();
    emails.dedup();
    touches::touch_customers(tx, &emails).await?;
    Ok(())
}

/// Recomputes the window of every row of a product under a new policy, and
/// appends the answers that changes (cause `policy`).
pub(super) async fn recompute_product(
    tx: &mut AnyConnection,
    product: &ProductKey,
    policy: &Policy,
    cause: &Cause<'_>,
) -> Result<()> {
    let rows = entitlements::of_product(tx, product).await?;
    let recomputed: Vec<EntitlementRow> = rows
        .iter()
        .map(|row| EntitlementRow {
            window: access::window(&row.facts, policy),
            ..row.clone()
        })
        .collect();
    let moved: Vec<&EntitlementRow> = rows
        .iter()
        .zip(&recomputed)
        .filter(|(row, new)| new.window != row.window)
        .map(|(_, new)| new)
        .collect();
    for chunk in moved.chunks(entitlements::UPDATE_CHUNK) {
        entitlements::update_windows(tx, product, chunk).await?;
    }
    let mut last = changes::last_of_product(tx, product).await?;
    // Rows come by customer: one comparison per customer, before and after.
    let mut compared = Vec::new();
    let mut timers = Vec::new();
    let mut start = 0;
    for customer in rows.chunk_by(|a, b| a.email == b.email) {
        let end = start + customer.len();
        timers.push(Timer::after(
            &customer[0].email,
            product,
            &recomputed[start..end],
            cause.at,
        ));
        compared.push(Compared {
            email: &customer[0].email,
            product,
            before: Some(
                last.remove(customer[0].email.as_str())
                    .unwrap_or_else(|| Answer::of(customer, cause.at)),
            ),
            after: Answer::of(&recomputed[start..end], cause.at),
        });
        start = end;
    }
    append(tx, cause, None, &compared).await?;
    timers::set(tx, &timers).await?;
    touches::touch_product(tx, product).await?;
    Ok(())
}
