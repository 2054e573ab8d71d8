//! Cluster chat, batched: every chat message of this instance goes through one task, which
//! sends all the messages that arrived while its previous call was in flight in one call of
//! `chat.lua`. A call's fixed costs (the script's prelude, the request and its reply, and the
//! publication to every instance) are then paid once per batch rather than once per message,
//! which is where a cluster spent most of its CPU on chat (see `docs/PERFORMANCE.md`). An
//! idle instance sends a lone message at once; a busy one (a call within the last
//! [`BUSY`]) also gathers what arrives in the next [`GATHER`], so batches grow with the load.
//!
//! Order is kept: the batch's messages are made, published and answered in the order they
//! arrived, and a socket's next event waits for the answer to its message (see
//! `signaling::order`).

use std::sync::Arc;
use std::time::Duration;

use redis::Script;
use redis::aio::ConnectionManager;
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

use serde::{Deserialize, Serialize};

use super::connection::deadline;
use super::wire::{internal, malformed, ticket_arg};
use crate::model::{ChatMessage, Timestamp};
use crate::protocol::ProtocolError;
use crate::registry::error::StoreUnavailable;
use crate::registry::outcome::{Limits, Said};

/// Most messages one call carries: a bound on the call's size (each text is at most
/// `protocol::MESSAGE_MAX` characters) and on how long the script holds Redis.
const MAX_BATCH: usize = 128;

/// A batch that starts within this of the previous call finds the instance busy: it waits
/// [`GATHER`] for more messages before its call. A message to an idle instance goes at once.
const BUSY: Duration = Duration::from_millis(10);
/// How long a busy instance gathers messages for one call: each message waits at most this
/// (plus a timer tick) more, and the call, its prelude, its reply, its publication and the
/// wake-ups of every instance are shared by all the messages of those moments (at 2,500
/// messages/s an instance, ~25 rather than ~5). 10 ms, not 2: alternating rounds at 5,000
/// msg/s measured 15 % less CPU (instances and Redis) for chat that is ~6 ms later under
/// load, which nobody reading a chat sees (see `docs/PERFORMANCE.md`).
const GATHER: Duration = Duration::from_millis(10);

/// How many strings `chat.lua` answers per message.
const REPLY_STRINGS: usize = 3;

/// A message waiting for its batch.
struct Pending {
    socket: Arc<str>,
    /// `''`, or `=` and the room the sender named (so an empty name stays a name).
    named_room: String,
    message_id: Arc<str>,
    text: Arc<str>,
    timestamp: Timestamp,
    /// The message's JSON fields but the sender's name and avatar, which the script adds
    /// from the registry: `"id":…,"senderId":…,"message":…,"timestamp":…`.
    fields: String,
    ticket: Option<u64>,
    answer: oneshot::Sender<Result<Said, ProtocolError>>,
}

/// The fields of a message the instance knows, as `chat.lua` takes them.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct KnownFields<'a> {
    id: &'a str,
    sender_id: &'a str,
    message: &'a str,
    timestamp: Timestamp,
}

impl Pending {
    fn new(
        socket: &str,
        named_room: Option<&str>,
        text: &str,
        ticket: Option<u64>,
        answer: oneshot::Sender<Result<Said, ProtocolError>>,
    ) -> Result<Self, ProtocolError> {
        let message_id = uuid::Uuid::new_v4().to_string();
        let timestamp = Timestamp::now();
        let mut fields = serde_json::to_string(&KnownFields {
            id: &message_id,
            sender_id: socket,
            message: text,
            timestamp,
        })
        .map_err(internal)?;
        // Serialized as an object, so the fields are what lies between its braces.
        if !(fields.starts_with('{') && fields.ends_with('}')) {
            return Err(internal("a chat message did not serialize as an object"));
        }
        fields.pop();
        fields.remove(0);
        Ok(Self {
            socket: socket.into(),
            named_room: named_room.map_or_else(String::new, |room| format!("={room}")),
            message_id: message_id.into(),
            text: text.into(),
            timestamp,
            fields,
            ticket,
            answer,
        })
    }

    /// The message as the registry answers it, from the script's answer for it.
    fn said(&self, reply: &[String]) -> Result<Said, ProtocolError> {
        match reply {
            [outcome, room_id, sender] if outcome == "said" => {
                let sender = SenderFields::read(sender)?;
                Ok(Said {
                    room_id: room_id.as_str().into(),
                    message: Arc::new(ChatMessage::new(
                        self.message_id.clone(),
                        self.socket.clone(),
                        sender.user_name.into(),
                        self.text.clone(),
                        self.timestamp,
                        sender.user_avatar.map(Into::into),
                    )),
                })
            }
            [outcome, ..] if outcome == "not_in_room" => Err(ProtocolError::not_in_room()),
            [outcome, what, ..] if outcome == "malformed" => {
                Err(StoreUnavailable(format!("{what} (chat)")).into())
            }
            _ => Err(internal(format!("chat.lua answered {reply:?}"))),
        }
    }
}

/// The sender's name and avatar as `chat.lua` answers them: the JSON members its messages
/// carry (`"userName":…,"userAvatar":…` or `null`).
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct SenderFields {
    user_name: String,
    #[serde(default)]
    user_avatar: Option<String>,
}

impl SenderFields {
    fn read(members: &str) -> Result<Self, StoreUnavailable> {
        serde_json::from_str(&format!("{{{members}}}"))
            .map_err(|e| malformed(format!("{e} in a chat sender's fields")))
    }
}

/// Where the registry hands chat messages to the batching task.
#[derive(Clone)]
pub(super) struct ChatBatcher {
    queue: mpsc::UnboundedSender<Pending>,
}

/// What the task needs to make a call.
struct Caller {
    conn: ConnectionManager,
    script: &'static Script,
    /// `{prefix}:rooms`, the key every script declares so Redis routes it.
    rooms_key: String,
    /// `{prefix}`, the hash tag every key starts with.
    tag: String,
    instance: Arc<str>,
    limits: Limits,
}

impl ChatBatcher {
    /// Starts the task; it ends when the last batcher is dropped.
    pub(super) fn start(
        conn: ConnectionManager,
        script: &'static Script,
        tag: String,
        instance: Arc<str>,
        limits: Limits,
    ) -> Self {
        // Unbounded, yet bounded by the sockets: a socket's next event waits for the answer
        // to its message, so each socket has at most one message here.
        let (queue, pending) = mpsc::unbounded_channel();
        let caller = Caller {
            conn,
            script,
            rooms_key: format!("{tag}:rooms"),
            tag,
            instance,
            limits,
        };
        tokio::spawn(caller.run(pending));
        Self { queue }
    }

    /// Records a chat message from `socket` in its batch and waits for the batch's answer.
    pub(super) async fn chat(
        &self,
        socket: &str,
        named_room: Option<&str>,
        text: &str,
        ticket: Option<u64>,
    ) -> Result<Said, ProtocolError> {
        let (answer, answered) = oneshot::channel();
        let pending = Pending::new(socket, named_room, text, ticket, answer)?;
        if self.queue.send(pending).is_err() {
            return Err(StoreUnavailable("the chat batcher has stopped".into()).into());
        }
        answered.await.unwrap_or_else(|_| {
            Err(StoreUnavailable("the chat batcher dropped a message".into()).into())
        })
    }
}

impl Caller {
    async fn run(mut self, mut queue: mpsc::UnboundedReceiver<Pending>) {
        let mut batch = Vec::with_capacity(MAX_BATCH);
        let mut last_call: Option<Instant> = None;
        while queue.recv_many(&mut batch, MAX_BATCH).await > 0 {
            // Busy: gather what comes in the next moment too, so the call carries more.
            if last_call.is_some_and(|at| at.elapsed() < BUSY) && batch.len() < MAX_BATCH {
                tokio::time::sleep(GATHER).await;
                while batch.len() < MAX_BATCH
                    && let Ok(pending) = queue.try_recv()
                {
                    batch.push(pending);
                }
            }
            last_call = Some(Instant::now());
            match self.call(&batch).await {
                Ok(reply) => {
                    for (pending, answer) in batch.drain(..).zip(reply.chunks_exact(REPLY_STRINGS))
                    {
                        let said = pending.said(answer);
                        pending.answer.send(said).ok();
                    }
                }
                Err(e) => {
                    // Redis is out (or answered nonsense): whatever queued up during this
                    // call fails now too, rather than each batch waiting out its own deadline.
                    while let Ok(pending) = queue.try_recv() {
                        batch.push(pending);
                    }
                    for pending in batch.drain(..) {
                        pending.answer.send(Err(e.clone())).ok();
                    }
                }
            }
        }
    }

    /// One call of `chat.lua` for `batch`: [`REPLY_STRINGS`] per message, in order.
    async fn call(&mut self, batch: &[Pending]) -> Result<Vec<String>, ProtocolError> {
        let mut call = self.script.key(&self.rooms_key);
        call.arg(&self.tag)
            .arg(&*self.instance)
            .arg(self.limits.chat_history_limit)
            .arg(self.limits.chat_history_bytes)
            .arg(self.limits.chat_history_total_bytes)
            .arg(batch.len());
        for pending in batch {
            call.arg(&*pending.socket)
                .arg(&pending.named_room)
                .arg(&pending.fields)
                .arg(ticket_arg(pending.ticket));
        }
        let reply: Vec<String> = deadline(call.invoke_async(&mut self.conn)).await?;
        if reply.len() != batch.len() * REPLY_STRINGS {
            return Err(internal(format!(
                "chat.lua answered {} strings for {} messages",
                reply.len(),
                batch.len()
            )));
        }
        Ok(reply)
    }
}
