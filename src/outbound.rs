//! Sending outbound webhooks: every replica runs a [`Sender`] loop that
//! leases the messages due (see `store::outbound`), signs each as Standard
//! Webhooks, POSTs it with a 10 s limit, and records the attempt: delivered
//! on a 2xx, else retried on the schedule, then `failed`.
//!
//! At most [`MAX_IN_FLIGHT`] sends at once per replica, and at most
//! [`PER_ENDPOINT`] to one endpoint, so a slow or dead endpoint holds a few
//! slots and every other endpoint keeps receiving.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use http_body_util::Full;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde_json::json;

use crate::crypto::standard_webhooks::signature_header;
use crate::domain::{Instant, add_seconds};
use crate::metrics::{AttemptResult, Metrics};
use crate::store::{
    ACCESS_CHANGED, ENDPOINT_TEST, Lease, Leased, MessageAttempt, MessageStatus, Settle, Store,
    StoreError, Target,
};
use crate::time_fmt;

/// How long one attempt may take, connection included.
pub const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(10);

/// Sends at once, per replica.
pub const MAX_IN_FLIGHT: usize = 64;

/// Sends at once to one endpoint, per replica.
pub const PER_ENDPOINT: usize = 4;

/// How long a sender holds a message it tries: past the attempt's limit and
/// the time to record it, so only a sender that died loses it; short, so
/// another replica (or the restarted one) takes a dead sender's messages soon.
const LEASE: time::Duration = time::Duration::seconds(15);

/// How often the loop looks for due messages.
const POLL: Duration = Duration::from_millis(200);

/// How long the previous secret keeps signing after `rotate-secret`.
pub const ROTATION_OVERLAP: time::Duration = time::Duration::hours(24);

/// The default retry schedule: seconds after each failed attempt.
pub const DEFAULT_SCHEDULE: [u32; 7] = [5, 300, 1800, 7200, 18000, 36000, 36000];

/// Reads `ENTITLED_OUTBOUND_RETRY_SCHEDULE`: comma-separated seconds.
pub fn parse_schedule(raw: &str) -> Result<Vec<u32>, String> {
    let raw = raw.trim();
    if raw.is_empty() {
        return Ok(Vec::new());
    }
    raw.split(',')
        .map(|entry| {
            entry
                .trim()
                .parse::<u32>()
                .ok()
                .filter(|s| *s <= 30 * 86_400)
                .ok_or_else(|| {
                    format!("the retry schedule takes seconds (0 to 2592000) separated by commas, not {entry:?}")
                })
        })
        .collect()
}

type HttpsClient = Client<hyper_rustls::HttpsConnector<HttpConnector>, Full<Bytes>>;

/// Sends messages: the HTTP client, the schedule, and what is in flight.
pub struct Sender {
    store: Store,
    client: HttpsClient,
    schedule: Vec<u32>,
    /// This process's name on the leases it takes.
    owner: String,
    metrics: Arc<Metrics>,
    slots: Arc<tokio::sync::Semaphore>,
    per_endpoint: Mutex<HashMap<String, usize>>,
    /// Told when an attempt ends and its slot is free.
    finished: tokio::sync::Notify,
}

impl std::fmt::Debug for Sender {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sender")
            .field("schedule", &self.schedule)
            .finish_non_exhaustive()
    }
}

/// What a resend found.
#[derive(Debug)]
pub enum Resent {
    Tried(MessageAttempt),
    /// Another sender is trying it now.
    Busy,
    Missing,
}

impl Sender {
    pub fn new(store: Store, schedule: Vec<u32>, metrics: Arc<Metrics>) -> Self {
        let https = hyper_rustls::HttpsConnectorBuilder::new()
            .with_webpki_roots()
            .https_or_http()
            .enable_http1()
            .build();
        Self {
            store,
            client: Client::builder(TokioExecutor::new()).build(https),
            schedule,
            owner: format!("sender_{}", uuid::Uuid::now_v7().simple()),
            metrics,
            slots: Arc::new(tokio::sync::Semaphore::new(MAX_IN_FLIGHT)),
            per_endpoint: Mutex::default(),
            finished: tokio::sync::Notify::new(),
        }
    }

    /// Sends due messages until the process ends.
    pub async fn run(self: Arc<Self>) {
        loop {
            let started = match self.clone().round().await {
                Ok(tasks) => !tasks.is_empty(),
                Err(e) => {
                    tracing::warn!(error = %e, "outbound: could not lease due messages");
                    false
                }
            };
            if started {
                // A backlog goes out as fast as slots free up.
                tokio::select! {
                    () = self.finished.notified() => {}
                    () = tokio::time::sleep(POLL) => {}
                }
            } else {
                tokio::time::sleep(POLL).await;
            }
        }
    }

    /// One look for due messages, and every attempt it starts, awaited: for
    /// tests that step the sender. Returns how many were tried.
    pub async fn deliver_due(self: &Arc<Self>) -> Result<usize, StoreError> {
        let tasks = self.clone().round().await?;
        let n = tasks.len();
        for task in tasks {
            let _ = task.await;
        }
        Ok(n)
    }

    /// Leases as many due messages as there are free slots (none for an
    /// endpoint at its limit) and starts an attempt at each.
    async fn round(self: Arc<Self>) -> Result<Vec<tokio::task::JoinHandle<()>>, StoreError> {
        let free = self.slots.available_permits();
        if free == 0 {
            return Ok(Vec::new());
        }
        let busy: Vec<String> = self
            .per_endpoint
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .iter()
            .filter(|(_, n)| **n >= PER_ENDPOINT)
            .map(|(endpoint, _)| endpoint.clone())
            .collect();
        let now = time_fmt::now();
        let leased = self
            .store
            .lease_due_messages(now, &self.owner, now + LEASE, free as i64, &busy)
            .await?;
        let mut tasks = Vec::with_capacity(leased.len());
        let mut over = Vec::new();
        for message in leased {
            let Ok(permit) = self.slots.clone().try_acquire_owned() else {
                over.push(message.id);
                continue;
            };
            {
                let mut per = self
                    .per_endpoint
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
                let n = per.entry(message.target.endpoint.clone()).or_default();
                if *n >= PER_ENDPOINT {
                    over.push(message.id);
                    continue;
                }
                *n += 1;
            }
            let sender = self.clone();
            tasks.push(tokio::spawn(async move {
                let endpoint = message.target.endpoint.clone();
                if let Err(e) = sender.try_leased(&message).await {
                    tracing::warn!(message = message.id, error = %e, "outbound: could not record an attempt");
                }
                let mut per = sender
                    .per_endpoint
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
                if let Some(n) = per.get_mut(&endpoint) {
                    *n -= 1;
                    if *n == 0 {
                        per.remove(&endpoint);
                    }
                }
                drop(per);
                drop(permit);
                sender.finished.notify_one();
            }));
        }
        if !over.is_empty() {
            self.store.release_leases(&over, &self.owner).await?;
        }
        Ok(tasks)
    }

    /// One attempt at a leased message, recorded, and the message left as the
    /// schedule says.
    async fn try_leased(&self, message: &Leased) -> Result<(), StoreError> {
        let Some(body) = body_of(message) else {
            return Err(StoreError::Corrupt(format!(
                "message {} has neither a change nor a body",
                message.id
            )));
        };
        let attempt = self.attempt(&message.target, &message.id, &body).await;
        let settle = self.settle(message, &attempt);
        if !self
            .store
            .finish_attempt(&message.id, &self.owner, &attempt, settle)
            .await?
        {
            tracing::warn!(
                message = message.id,
                "outbound: an attempt outlived its lease; another sender has the message"
            );
        }
        Ok(())
    }

    /// How an attempt leaves its message: delivered on a 2xx; otherwise a
    /// pending message waits for its next retry (or is `failed` after the
    /// last), and any other (a resend of a failed, superseded or delivered
    /// message) keeps its status.
    fn settle(&self, message: &Leased, attempt: &MessageAttempt) -> Settle {
        if attempt.succeeded() {
            return Settle {
                status: MessageStatus::Delivered,
                next_attempt_at: None,
            };
        }
        if message.status != MessageStatus::Pending {
            return Settle {
                status: message.status,
                next_attempt_at: None,
            };
        }
        match self.schedule.get(message.attempts_made as usize) {
            Some(&delay) => Settle {
                status: MessageStatus::Pending,
                next_attempt_at: Some(add_seconds(time_fmt::now(), i64::from(delay))),
            },
            None => Settle {
                status: MessageStatus::Failed,
                next_attempt_at: None,
            },
        }
    }

    /// Sends `endpoint.test` to an endpoint at once and keeps it as a message;
    /// `None` when there is no such endpoint.
    pub async fn test(&self, endpoint: &str) -> Result<Option<MessageAttempt>, StoreError> {
        let now = time_fmt::now();
        let Some(target) = self.store.endpoint_target(endpoint, now).await? else {
            return Ok(None);
        };
        let id = format!("msg_{}", uuid::Uuid::now_v7().simple());
        let body = json!({
            "type": ENDPOINT_TEST,
            "timestamp": time_fmt::rfc3339(now),
            "data": {"endpoint": endpoint},
        })
        .to_string();
        let attempt = self.attempt(&target, &id, &body).await;
        self.store
            .record_test_message(endpoint, &id, &body, &attempt)
            .await?;
        Ok(Some(attempt))
    }

    /// Sends one message again now, whatever its status, and leaves it as
    /// [`Sender::settle`] says.
    pub async fn resend(&self, endpoint: &str, message: &str) -> Result<Resent, StoreError> {
        let now = time_fmt::now();
        let leased = match self
            .store
            .lease_message(endpoint, message, &self.owner, now, now + LEASE)
            .await?
        {
            Lease::Leased(leased) => leased,
            Lease::Busy => return Ok(Resent::Busy),
            Lease::Missing => return Ok(Resent::Missing),
        };
        let Some(body) = body_of(&leased) else {
            self.store
                .release_leases(std::slice::from_ref(&leased.id), &self.owner)
                .await?;
            return Err(StoreError::Corrupt(format!(
                "message {} has neither a change nor a body",
                leased.id
            )));
        };
        let attempt = self.attempt(&leased.target, &leased.id, &body).await;
        let settle = self.settle(&leased, &attempt);
        self.store
            .finish_attempt(&leased.id, &self.owner, &attempt, settle)
            .await?;
        Ok(Resent::Tried(attempt))
    }

    /// One signed POST, within [`ATTEMPT_TIMEOUT`]. Never fails: what went
    /// wrong is the attempt's `error`.
    pub async fn attempt(&self, target: &Target, id: &str, body: &str) -> MessageAttempt {
        let at = time_fmt::now();
        let started = std::time::Instant::now();
        let outcome = tokio::time::timeout(ATTEMPT_TIMEOUT, self.post(target, id, body, at)).await;
        let duration_ms = started.elapsed().as_millis().min(i64::MAX as u128) as i64;
        let (status_code, error, result) = match outcome {
            Ok(Ok(status)) if (200..300).contains(&status) => {
                (Some(status), None, AttemptResult::Delivered)
            }
            Ok(Ok(status)) => (
                Some(status),
                Some(format!("the endpoint answered {status}")),
                AttemptResult::Rejected,
            ),
            Ok(Err(error)) => (None, Some(error), AttemptResult::Unreachable),
            Err(_) => (
                None,
                Some(format!("no answer within {} s", ATTEMPT_TIMEOUT.as_secs())),
                AttemptResult::TimedOut,
            ),
        };
        self.metrics.outbound_attempt(result);
        MessageAttempt {
            at,
            status_code,
            error,
            duration_ms,
        }
    }

    async fn post(
        &self,
        target: &Target,
        id: &str,
        body: &str,
        at: Instant,
    ) -> Result<u16, String> {
        let secrets: Vec<_> = target.secrets.iter().collect();
        let signature = signature_header(&secrets, id, at.unix_timestamp(), body.as_bytes())
            .map_err(|_| "the endpoint's secret cannot sign".to_owned())?;
        let request = axum::http::Request::post(target.url.as_str())
            .header("content-type", "application/json")
            .header(
                "user-agent",
                concat!("entitled/", env!("CARGO_PKG_VERSION")),
            )
            .header("webhook-id", id)
            .header("webhook-timestamp", at.unix_timestamp().to_string())
            .header("webhook-signature", signature)
            .body(Full::new(Bytes::from(body.to_owned())))
            .map_err(|_| "the endpoint's URL cannot be requested".to_owned())?;
        let response = self.client.request(request).await.map_err(|e| chain(&e))?;
        Ok(response.status().as_u16())
    }
}

/// An error and its sources, as one line (none of them carries the URL or a
/// secret).
fn chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut line = error.to_string();
    let mut source = error.source();
    while let Some(e) = source {
        line.push_str(": ");
        line.push_str(&e.to_string());
        source = e.source();
    }
    line.chars().take(500).collect()
}

/// The body a message carries: its change as `access.changed`, or the body
/// kept for a test.
fn body_of(message: &Leased) -> Option<String> {
    match (&message.change, &message.body) {
        (Some(change), _) => Some(
            json!({
                "type": ACCESS_CHANGED,
                "timestamp": time_fmt::rfc3339(change.at),
                "data": crate::wire::ChangeView::from(change.clone()),
            })
            .to_string(),
        ),
        (None, Some(body)) => Some(body.clone()),
        (None, None) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_schedule_reads_comma_separated_seconds() {
        assert_eq!(parse_schedule("1,1,2").unwrap(), vec![1, 1, 2]);
        assert_eq!(parse_schedule(" 5, 300 ").unwrap(), vec![5, 300]);
        assert_eq!(parse_schedule("").unwrap(), Vec::<u32>::new());
        assert_eq!(
            parse_schedule(&DEFAULT_SCHEDULE.map(|s| s.to_string()).join(",")).unwrap(),
            DEFAULT_SCHEDULE.to_vec()
        );
        for bad in ["1,,2", "-1", "x", "1.5", "99999999"] {
            let e = parse_schedule(bad).unwrap_err();
            assert!(e.contains("seconds"), "{bad}: {e}");
        }
    }
}
