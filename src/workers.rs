//! Background work, started and stopped in one place, as svix-server's `run`
//! keeps its server and workers side by side: a store's own tasks (the
//! group-commit writers and their answers, PostgreSQL's change-log sequencer,
//! the read model's follower) and, for `serve`, the clock and the outbound
//! sender. Storage spawns nothing itself.

use crate::store::{Background, Store, StoreError};
use crate::{domain, time_fmt};

/// Running background tasks, by name.
pub struct Workers {
    running: Vec<(&'static str, tokio::task::JoinHandle<()>)>,
}

impl Workers {
    /// Runs a store's own tasks.
    pub fn of_store(background: Background) -> Self {
        let mut workers = Self {
            running: Vec::new(),
        };
        for (name, task) in background.into_tasks() {
            workers.run(name, task);
        }
        workers
    }

    /// Runs one more task beside the others.
    pub fn run(
        &mut self,
        name: &'static str,
        task: impl std::future::Future<Output = ()> + Send + 'static,
    ) {
        self.running.push((name, tokio::spawn(task)));
    }

    /// The names of the tasks running.
    pub fn names(&self) -> Vec<&'static str> {
        self.running.iter().map(|(name, _)| *name).collect()
    }

    /// Stops every task: the clock and the sender at once; a store's own end
    /// by themselves once it is closed, so close it after.
    pub fn stop(self) {
        for (_, handle) in self.running {
            handle.abort();
        }
    }
}

/// Connects to (and migrates) a store and runs its own tasks: what every
/// command and test that reads and writes through a store starts with.
pub async fn connect(url: &str) -> Result<(Store, Workers), StoreError> {
    let (store, background) = Store::connect(url).await?;
    Ok((store, Workers::of_store(background)))
}

/// How long the clock keeps what it trims.
pub struct Retention {
    pub changes: time::Duration,
    pub delivery_bodies: time::Duration,
}

/// Now and every `interval` (`ENTITLED_CLOCK_INTERVAL_SECONDS`): records
/// `expired` (source `clock`) for lapsed active subscriptions, appends the
/// changes time alone made (a period, a grace, a grant or purchase window
/// ending or beginning), drops changes and delivery bodies past their
/// retention.
pub async fn clock(store: Store, interval: std::time::Duration, retention: Retention) {
    let mut ticks = tokio::time::interval(interval);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        match store.expire_lapsed(time_fmt::now()).await {
            Ok(0) => {}
            Ok(expired) => {
                tracing::info!(expired, "clock: recorded lapsed subscriptions as expired")
            }
            Err(e) => tracing::warn!(error = %e, "clock: could not check for lapsed subscriptions"),
        }
        match store.settle_due_timers(time_fmt::now()).await {
            Ok(0) => {}
            Ok(changes) => tracing::info!(changes, "clock: appended the changes time made"),
            Err(e) => tracing::warn!(error = %e, "clock: could not settle due timers"),
        }
        let now = time_fmt::now();
        let horizon = domain::add_seconds(now, -retention.changes.whole_seconds());
        match store.drop_changes_before(horizon).await {
            Ok(0) => {}
            Ok(dropped) => tracing::info!(dropped, "clock: dropped changes past their retention"),
            Err(e) => tracing::warn!(error = %e, "clock: could not drop old changes"),
        }
        if let Err(e) = store.drop_old_touches(now).await {
            tracing::warn!(error = %e, "clock: could not drop old read-model touches");
        }
        match store.forget_retired_signing_keys(now).await {
            Ok(0) => {}
            Ok(keys) => tracing::info!(
                keys,
                "clock: deleted the private halves of retired signing keys"
            ),
            Err(e) => tracing::warn!(error = %e, "clock: could not forget retired signing keys"),
        }
        let horizon = domain::add_seconds(now, -retention.delivery_bodies.whole_seconds());
        match store
            .drop_delivery_bodies_before(horizon, now, 10_000)
            .await
        {
            Ok(0) => {}
            Ok(dropped) => {
                tracing::info!(
                    dropped,
                    "clock: dropped delivery bodies past their retention"
                )
            }
            Err(e) => tracing::warn!(error = %e, "clock: could not drop old delivery bodies"),
        }
    }
}
