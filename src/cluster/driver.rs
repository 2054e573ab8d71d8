//! The pub/sub driver under socketioxide's Redis adapter. The adapter's own driver sits on a
//! plain multiplexed connection that stays dead once Redis goes away; this one sits on a
//! `ConnectionManager`, which reconnects with backoff and subscribes again to every channel,
//! so an instance resumes cross-instance emits by itself when Redis comes back.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{FromRedisValue, PushInfo, PushKind};
use socketioxide_redis::drivers::{ChanItem, Driver, MessageStream};
use tokio::sync::mpsc;

use super::connection;

type Handlers = Arc<RwLock<HashMap<String, mpsc::Sender<ChanItem>>>>;

#[derive(Clone)]
pub struct ReconnectingDriver {
    handlers: Handlers,
    conn: ConnectionManager,
}

#[derive(Debug, thiserror::Error)]
#[error(transparent)]
pub struct DriverError(#[from] redis::RedisError);

impl ReconnectingDriver {
    pub async fn connect(client: &redis::Client) -> redis::RedisResult<Self> {
        let handlers: Handlers = Arc::default();
        let sink = handlers.clone();
        let config: ConnectionManagerConfig = connection::manager_config()
            .set_push_sender(move |push: PushInfo| {
                route(push, &sink);
                Ok::<(), std::convert::Infallible>(())
            })
            .set_automatic_resubscription();
        let conn = ConnectionManager::new_with_config(client.clone(), config).await?;
        Ok(Self { handlers, conn })
    }

    /// A round trip on the pub/sub connection; after an outage it also starts the
    /// reconnection that subscribes again.
    pub async fn ping(&self) -> redis::RedisResult<()> {
        redis::cmd("PING").exec_async(&mut self.conn.clone()).await
    }
}

/// Hands a pub/sub message to the stream subscribed to its channel. Never blocks: the
/// connection's reader calls this.
fn route(push: PushInfo, handlers: &Handlers) {
    if !matches!(push.kind, PushKind::Message | PushKind::SMessage) {
        return;
    }
    let mut data = push.data.into_iter();
    let (Some(channel), Some(message)) = (data.next(), data.next()) else {
        return;
    };
    let (Ok(channel), Ok(message)) = (
        String::from_redis_value(channel),
        Vec::<u8>::from_redis_value(message),
    ) else {
        tracing::warn!("unreadable pub/sub message from redis");
        return;
    };
    let Ok(handlers) = handlers.read() else {
        return;
    };
    if let Some(tx) = handlers.get(&channel)
        && let Err(e) = tx.try_send((channel, message))
    {
        tracing::warn!("cluster message dropped, the adapter is behind: {e}");
    }
}

impl Driver for ReconnectingDriver {
    type Error = DriverError;

    async fn publish(&self, chan: String, val: Vec<u8>) -> Result<(), Self::Error> {
        redis::cmd("PUBLISH")
            .arg(chan)
            .arg(val)
            .exec_async(&mut self.conn.clone())
            .await?;
        Ok(())
    }

    async fn subscribe(
        &self,
        chan: String,
        size: usize,
    ) -> Result<MessageStream<ChanItem>, Self::Error> {
        let (tx, rx) = mpsc::channel(size);
        if let Ok(mut handlers) = self.handlers.write() {
            handlers.insert(chan.clone(), tx);
        }
        self.conn.clone().subscribe(chan).await?;
        Ok(MessageStream::new(rx))
    }

    async fn unsubscribe(&self, chan: String) -> Result<(), Self::Error> {
        if let Ok(mut handlers) = self.handlers.write() {
            handlers.remove(&chan);
        }
        self.conn.clone().unsubscribe(chan).await?;
        Ok(())
    }

    async fn num_serv(&self, chan: &str) -> Result<u16, Self::Error> {
        let (_, count): (String, u16) = redis::cmd("PUBSUB")
            .arg("NUMSUB")
            .arg(chan)
            .query_async(&mut self.conn.clone())
            .await?;
        Ok(count)
    }
}
