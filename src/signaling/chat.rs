//! Room chat: `send-message` → `new-message` to everyone in the room, sender included (the
//! registry announces it). The sender's name and avatar come from the registry, never from
//! the payload.

use super::incoming::{Admitted, Incoming};
use crate::protocol::decode_chat;

pub async fn on_send_message(incoming: Incoming) {
    let Some(Admitted {
        socket,
        app,
        payload,
        reply,
        turn: _turn,
        ..
    }) = incoming.admit().await
    else {
        return;
    };
    let request = match payload.and_then(|p| decode_chat(&p)) {
        Ok(request) => request,
        Err(e) => return reply.fail(e),
    };
    let ticket = app.deliveries.ticket();
    match app
        .registry
        .chat(
            &socket.id.to_string(),
            request.room.as_deref(),
            &request.text,
            Some(ticket.id),
        )
        .await
    {
        Ok(said) => {
            // Chat text is private: it never reaches logs above debug, and not even there.
            tracing::debug!(socket = %socket.id, room = %said.room_id, chars = said.message.message.chars().count(), "chat message");
            ticket.delivered().await;
            reply.ok(&said.message.fields());
        }
        Err(e) => reply.fail(e),
    }
}
