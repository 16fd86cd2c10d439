//! Coalesced runs of one background job: callers ask for a run that starts
//! after their call and wait for it; every caller waiting at once is served by
//! the same run. The change-log sequencer and the read-model follower work
//! this way.

use std::sync::atomic::{AtomicU64, Ordering::SeqCst};
use std::time::Duration;

#[derive(Debug)]
pub(super) struct Runs {
    /// Tickets handed out: a run that starts after ticket N was taken serves N.
    requested: AtomicU64,
    wake: tokio::sync::Notify,
    /// The highest ticket served by a finished run.
    done: tokio::sync::watch::Sender<u64>,
}

impl Default for Runs {
    fn default() -> Self {
        Self {
            requested: AtomicU64::new(0),
            wake: tokio::sync::Notify::new(),
            done: tokio::sync::watch::Sender::new(0),
        }
    }
}

impl Runs {
    /// Asks for a run that starts after this call and waits for it to finish,
    /// at most `limit`. False when it did not finish in time.
    pub(super) async fn wait(&self, limit: Duration) -> bool {
        let ticket = self.requested.fetch_add(1, SeqCst) + 1;
        let mut done = self.done.subscribe();
        self.wake.notify_one();
        tokio::time::timeout(limit, done.wait_for(|d| *d >= ticket))
            .await
            .is_ok_and(|r| r.is_ok())
    }

    /// The job's side: waits until a run is asked for or `every` passes, and
    /// returns the ticket the coming run serves (pass it to [`Runs::finished`]).
    pub(super) async fn next(&self, every: Duration) -> u64 {
        let _ = tokio::time::timeout(every, self.wake.notified()).await;
        self.requested.load(SeqCst)
    }

    /// The run that [`Runs::next`] announced has finished.
    pub(super) fn finished(&self, ticket: u64) {
        self.done.send_if_modified(|done| {
            let newer = ticket > *done;
            if newer {
                *done = ticket;
            }
            newer
        });
    }

    /// The run failed: run again soon, for the same waiters.
    pub(super) fn again(&self) {
        self.wake.notify_one();
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    #[tokio::test]
    async fn a_waiter_is_served_by_the_run_after_its_call_and_not_before() {
        let runs = Arc::new(Runs::default());
        let runs_in_job = runs.clone();
        let (started, mut seen) = tokio::sync::mpsc::unbounded_channel();
        tokio::spawn(async move {
            loop {
                let ticket = runs_in_job.next(Duration::from_secs(60)).await;
                started.send(ticket).unwrap();
                runs_in_job.finished(ticket);
            }
        });
        assert!(runs.wait(Duration::from_secs(5)).await);
        assert!(seen.recv().await.unwrap() >= 1);
        // Five waiters at once: every one is served, by one run or a few.
        let waiters: Vec<_> = (0..5)
            .map(|_| {
                let runs = runs.clone();
                tokio::spawn(async move { runs.wait(Duration::from_secs(5)).await })
            })
            .collect();
        for waiter in waiters {
            assert!(waiter.await.unwrap());
        }
        assert!(*runs.done.borrow() >= 6);
    }

    #[tokio::test]
    async fn a_waiter_gives_up_when_no_run_comes() {
        let runs = Runs::default();
        assert!(!runs.wait(Duration::from_millis(10)).await);
    }
}
