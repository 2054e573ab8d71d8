//! The sender of one endpoint: a background task that takes events from the endpoint's queue
//! ([`super::queue`]) and POSTs them, signed, several rooms at once but one event per room at
//! a time. A 2xx ends an event; anything else (a status, a timeout, no connection) retries it
//! after an exponential backoff (1 s doubling up to 60 s, less up to a quarter of jitter),
//! until `WEBHOOK_MAX_ATTEMPTS`. Nothing here is awaited by a socket handler.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use reqwest::header::CONTENT_TYPE;
use tokio::sync::Notify;
use tokio::task::JoinSet;

use super::body::Hook;
use super::queue::{Finished, Job, Queue};
use crate::config::WebhookSettings;
use crate::metrics::Metrics;
use crate::webhook_secret::WebhookSecret;

/// Events of different rooms in flight at once, per endpoint.
const CONCURRENCY: usize = 16;
const BACKOFF_START: Duration = Duration::from_secs(1);
const BACKOFF_MAX: Duration = Duration::from_secs(60);
/// Queue overflow is logged at most this often per endpoint (the metric counts each drop).
const DROP_WARNING_EVERY: Duration = Duration::from_secs(60);

/// One `WEBHOOK_URLS` entry and its queue.
pub struct Endpoint {
    url: String,
    /// Scheme, host and port only, for logs: paths and queries can hold credentials.
    label: String,
    queue: Mutex<Queue>,
    wake: Notify,
    last_drop_warning: Mutex<Option<Instant>>,
}

impl Endpoint {
    pub fn new(url: &str, capacity: usize) -> Self {
        let label = reqwest::Url::parse(url).map_or_else(
            |_| "(webhook endpoint)".to_owned(),
            |u| u.origin().ascii_serialization(),
        );
        Self {
            url: url.to_owned(),
            label,
            queue: Mutex::new(Queue::new(capacity)),
            wake: Notify::new(),
            last_drop_warning: Mutex::new(None),
        }
    }

    fn queue(&self) -> MutexGuard<'_, Queue> {
        self.queue.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Queues `hook` and wakes the sender; how many old events were dropped for it.
    pub fn push(&self, hook: Arc<Hook>) -> usize {
        let dropped = self.queue().push(hook);
        self.wake.notify_one();
        if dropped > 0 {
            let mut last = self
                .last_drop_warning
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            if last.is_none_or(|at| at.elapsed() >= DROP_WARNING_EVERY) {
                *last = Some(Instant::now());
                tracing::warn!(endpoint = %self.label, "webhook queue full (WEBHOOK_QUEUE_MAX): oldest events dropped");
            }
        }
        dropped
    }

    /// Nothing waits and nothing is in flight.
    pub fn is_idle(&self) -> bool {
        self.queue().is_idle()
    }
}

/// Why an attempt failed.
#[derive(Debug)]
enum Failure {
    Status(u16),
    Timeout,
    Unreachable(String),
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Status(status) => write!(f, "answered {status}"),
            Self::Timeout => f.write_str("no answer in time (WEBHOOK_TIMEOUT_MS)"),
            Self::Unreachable(e) => write!(f, "unreachable: {e}"),
        }
    }
}

impl Failure {
    /// The `outcome` label of `webhook_deliveries_total`.
    fn outcome(&self) -> &'static str {
        match self {
            Self::Status(_) => "rejected",
            Self::Timeout => "timeout",
            Self::Unreachable(_) => "unreachable",
        }
    }
}

/// Delivers `endpoint`'s events until the task is aborted.
pub async fn run(endpoint: Arc<Endpoint>, settings: WebhookSettings, metrics: Arc<Metrics>) {
    let client = match reqwest::Client::builder()
        .timeout(settings.timeout)
        // A redirect is an answer, not a 2xx: the receiver's URL is configured, not followed.
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!("ProLiteMeet-Webhooks/", env!("CARGO_PKG_VERSION")))
        .build()
    {
        Ok(client) => client,
        Err(e) => {
            tracing::error!(endpoint = %endpoint.label, "webhook sender cannot start: {e}");
            return;
        }
    };
    let mut in_flight: JoinSet<Result<(), Failure>> = JoinSet::new();
    let mut jobs: HashMap<tokio::task::Id, Job> = HashMap::new();
    loop {
        let now = Instant::now();
        while in_flight.len() < CONCURRENCY {
            let Some(job) = endpoint.queue().next_job(now) else {
                break;
            };
            let attempt = send(
                client.clone(),
                endpoint.url.clone(),
                signed(&settings.secret, &job.hook),
                job.hook.clone(),
            );
            let task = in_flight.spawn(attempt);
            jobs.insert(task.id(), job);
        }
        let next_retry = endpoint.queue().next_retry();
        let retry_due = tokio::time::sleep_until(next_retry.map_or_else(
            || tokio::time::Instant::now() + Duration::from_secs(3600),
            tokio::time::Instant::from_std,
        ));
        tokio::select! {
            () = endpoint.wake.notified() => {}
            Some(done) = in_flight.join_next_with_id(), if !in_flight.is_empty() => {
                let (id, result) = match done {
                    Ok((id, result)) => (id, result),
                    Err(e) => (e.id(), Err(Failure::Unreachable(e.to_string()))),
                };
                if let Some(job) = jobs.remove(&id) {
                    finish(&endpoint, &settings, &metrics, &job, result);
                }
            }
            () = retry_due, if next_retry.is_some() => {}
        }
    }
}

/// Records an attempt's end: metrics, logs, and the event's next step.
fn finish(
    endpoint: &Endpoint,
    settings: &WebhookSettings,
    metrics: &Metrics,
    job: &Job,
    result: Result<(), Failure>,
) {
    let finished = match result {
        Ok(()) => {
            metrics.webhook_attempt("delivered");
            Finished::Delivered
        }
        Err(failure) => {
            metrics.webhook_attempt(failure.outcome());
            if job.attempt >= settings.max_attempts {
                tracing::warn!(endpoint = %endpoint.label, id = %job.hook.id, kind = job.hook.kind, attempts = job.attempt, "webhook given up: {failure}");
                metrics.webhook_dropped("max_attempts", 1);
                Finished::GaveUp
            } else {
                let wait = backoff(job.attempt);
                tracing::debug!(endpoint = %endpoint.label, id = %job.hook.id, attempt = job.attempt, ?wait, "webhook attempt failed: {failure}");
                Finished::RetryAt(Instant::now() + wait)
            }
        }
    };
    if endpoint.queue().finish(job, finished) {
        metrics.webhook_queued(-1);
    }
}

/// The wait after the `failed`-th failed attempt: 1 s, 2 s, 4 s … at most 60 s, shortened by
/// up to a quarter at random so retries from many rooms spread out.
fn backoff(failed: u32) -> Duration {
    let doubled = BACKOFF_START.saturating_mul(2u32.saturating_pow(failed.saturating_sub(1)));
    doubled
        .min(BACKOFF_MAX)
        .mul_f64(0.75 + 0.25 * fastrand::f64())
}

/// Seconds since the Unix epoch: `webhook-timestamp` is the time of the attempt.
fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// The signed headers of one attempt.
struct Signed {
    timestamp: u64,
    signature: String,
}

/// Signs an attempt of `hook` made now.
fn signed(secret: &WebhookSecret, hook: &Hook) -> Signed {
    let timestamp = unix_now();
    Signed {
        timestamp,
        signature: secret.sign(&hook.id, timestamp, &hook.body),
    }
}

/// One POST of `hook` to `url`.
async fn send(
    client: reqwest::Client,
    url: String,
    signed: Signed,
    hook: Arc<Hook>,
) -> Result<(), Failure> {
    let response = client
        .post(url)
        .header(CONTENT_TYPE, "application/json")
        .header("webhook-id", &hook.id)
        .header("webhook-timestamp", signed.timestamp.to_string())
        .header("webhook-signature", signed.signature)
        .body(hook.body.clone())
        .send()
        .await;
    match response {
        Ok(answer) if answer.status().is_success() => Ok(()),
        Ok(answer) => Err(Failure::Status(answer.status().as_u16())),
        Err(e) if e.is_timeout() => Err(Failure::Timeout),
        Err(e) => Err(Failure::Unreachable(e.to_string())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_from_one_second_up_to_a_minute_with_jitter() {
        for (failed, full) in [(1, 1), (2, 2), (3, 4), (6, 32), (7, 60), (8, 60), (40, 60)] {
            let full = Duration::from_secs(full);
            for _ in 0..50 {
                let wait = backoff(failed);
                assert!(
                    wait <= full && wait >= full.mul_f64(0.75),
                    "{failed}: {wait:?}"
                );
            }
        }
    }
}
