//! Signed webhooks for the application's backend (`WEBHOOK_URLS`, off when empty), following
//! the Standard Webhooks specification: `room.started`, `room.finished`, `participant.joined`
//! and `participant.left`, POSTed with `webhook-id`, `webhook-timestamp` and
//! `webhook-signature`.
//!
//! The source is the registry's batches, as the announcer receives them ([`Webhooks::observe`]
//! is called for every batch, in order). Exactly one instance delivers each batch's webhooks:
//! the batch's room's webhook owner in a cluster (the instance that made the room, or its
//! heir; the Redis scripts name it in the batch), else the batch's origin. So a cluster
//! delivers every event once, and all of a room's events go out from one queue, in the
//! room's order. Observing only queues (no I/O, no await); one sender task per endpoint
//! ([`deliver`]) does the network.

mod body;
mod deliver;
mod queue;

use std::sync::Arc;
use std::time::Duration;

use tokio::task::JoinHandle;

use crate::config::WebhookSettings;
use crate::metrics::Metrics;
use crate::model::Timestamp;
use crate::registry::events::Batch;
use deliver::Endpoint;

pub struct Webhooks {
    /// This instance: it delivers the batches naming it.
    instance: Arc<str>,
    settings: Option<WebhookSettings>,
    endpoints: Vec<Arc<Endpoint>>,
    metrics: Arc<Metrics>,
}

impl Webhooks {
    /// Webhooks as `settings` configure them (`None`: off, and observing does nothing).
    pub fn new(
        settings: Option<&WebhookSettings>,
        instance: Arc<str>,
        metrics: Arc<Metrics>,
    ) -> Self {
        let endpoints = settings.map_or_else(Vec::new, |s| {
            s.urls
                .iter()
                .map(|url| Arc::new(Endpoint::new(url, s.queue_max)))
                .collect()
        });
        Self {
            instance,
            settings: settings.cloned(),
            endpoints,
            metrics,
        }
    }

    /// Queues the webhooks of `batch`, if this instance delivers them. Never blocks.
    pub fn observe(&self, batch: &Batch) {
        if self.endpoints.is_empty() {
            return;
        }
        let deliverer = batch.hooks.as_ref().unwrap_or(&batch.origin.instance);
        if *deliverer != self.instance {
            return;
        }
        let now = Timestamp::now();
        for event in &batch.events {
            for hook in body::hooks_of(event, now) {
                let hook = Arc::new(hook);
                for endpoint in &self.endpoints {
                    let dropped = endpoint.push(hook.clone());
                    self.metrics.webhook_queued(1 - dropped as i64);
                    if dropped > 0 {
                        self.metrics.webhook_dropped("queue_full", dropped as u64);
                    }
                }
            }
        }
    }

    /// Starts one sender per endpoint; none when webhooks are off.
    pub fn start(&self) -> Vec<JoinHandle<()>> {
        let Some(settings) = &self.settings else {
            return Vec::new();
        };
        self.endpoints
            .iter()
            .map(|endpoint| {
                tokio::spawn(deliver::run(
                    endpoint.clone(),
                    settings.clone(),
                    self.metrics.clone(),
                ))
            })
            .collect()
    }

    /// Waits (at most `within`) until every queued webhook is delivered or given up: at
    /// shutdown, so the last events of this instance still go out.
    pub async fn drain(&self, within: Duration) {
        const POLL: Duration = Duration::from_millis(50);
        let idle = || self.endpoints.iter().all(|e| e.is_idle());
        let waited = tokio::time::timeout(within, async {
            while !idle() {
                tokio::time::sleep(POLL).await;
            }
        })
        .await;
        if waited.is_err() {
            tracing::warn!("webhooks still queued at shutdown after {within:?}: dropped");
        }
    }
}
