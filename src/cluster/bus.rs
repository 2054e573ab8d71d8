//! The cluster's side of the room events: one pub/sub connection per instance, subscribed to
//! `{p}:events` (every room change, whoever made it) and `{p}:to:<this instance>` (welcomes
//! and relays for sockets held here). Messages arrive in the order Redis published them, on
//! one connection, so the batches reach the announcer's inbox in that order. The connection
//! is a `ConnectionManager`: it reconnects with backoff and subscribes again by itself after
//! a Redis outage.

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{FromRedisValue, PushInfo, PushKind};

use crate::registry::events::Inbox;
use crate::registry::redis::{connection, decode_published};

#[derive(Clone)]
pub struct Bus {
    conn: ConnectionManager,
}

impl Bus {
    /// Subscribes to `channels`, handing every batch published there to `inbox`.
    pub async fn connect(
        client: &redis::Client,
        channels: [String; 2],
        inbox: Inbox,
    ) -> redis::RedisResult<Self> {
        let config: ConnectionManagerConfig = connection::manager_config()
            .set_push_sender(move |push: PushInfo| {
                receive(push, &inbox);
                Ok::<(), std::convert::Infallible>(())
            })
            .set_automatic_resubscription();
        let mut conn = ConnectionManager::new_with_config(client.clone(), config).await?;
        for channel in channels {
            conn.subscribe(channel).await?;
        }
        Ok(Self { conn })
    }

    /// A round trip on the pub/sub connection; after an outage it also starts the
    /// reconnection that subscribes again.
    pub async fn ping(&self) -> redis::RedisResult<()> {
        redis::cmd("PING").exec_async(&mut self.conn.clone()).await
    }
}

/// Decodes a published batch (or array of batches) and hands it on. Never blocks: the
/// connection's reader calls this.
fn receive(push: PushInfo, inbox: &Inbox) {
    if !matches!(push.kind, PushKind::Message | PushKind::SMessage) {
        return;
    }
    let Some(message) = push.data.into_iter().nth(1) else {
        return;
    };
    let Ok(message) = Vec::<u8>::from_redis_value(message) else {
        tracing::warn!("unreadable pub/sub message from redis");
        return;
    };
    match decode_published(&message) {
        Ok(batches) => {
            for batch in batches {
                inbox.send(batch).ok();
            }
        }
        Err(e) => tracing::warn!("published batch dropped: {e}"),
    }
}
