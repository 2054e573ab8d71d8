//! Room chat: `send-message` → `new-message` to everyone in the room, sender included.
//! The sender's name and avatar come from the registry, never from the payload.

use socketioxide::adapter::Adapter;

use super::deliver::to_room;
use super::incoming::{Admitted, Incoming};
use crate::limits::Class;
use crate::protocol::decode_chat;

pub async fn on_send_message<A: Adapter>(incoming: Incoming<A>) {
    let Some(Admitted(s, app, data, reply, _turn)) = incoming.admit(Class::Chat).await else {
        return;
    };
    let said = match data.and_then(|p| decode_chat(&p)) {
        Ok(req) => {
            app.registry
                .chat(&s.id.to_string(), req.room.as_deref(), &req.text)
                .await
        }
        Err(e) => Err(e),
    };
    match said {
        Ok(said) => {
            // Chat text is private: it never reaches logs above debug, and not even there.
            tracing::debug!(socket = %s.id, room = %said.room_id, chars = said.message.message.chars().count(), "chat message");
            app.metrics.chat_message();
            to_room(&s, &app, &said.room_id, "new-message", &said.message).await;
            reply.ok(&said.message.fields());
        }
        Err(e) => reply.fail(e),
    }
}
