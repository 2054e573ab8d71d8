//! The one table of the client events the server handles: each event's name, the handler
//! that takes it, and the class of rate limit it counts against.

use crate::limits::Class;

/// Which handler takes an event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Handler {
    Join,
    Leave,
    Chat,
    Relay,
    Toggle,
    ScreenShare,
    /// The host's moderation events (`moderation.rs`).
    Moderate,
}

pub const EVENTS: &[(&str, Handler, Class)] = &[
    ("join-room", Handler::Join, Class::Join),
    ("leave-room", Handler::Leave, Class::Join),
    ("send-message", Handler::Chat, Class::Chat),
    ("webrtc-offer", Handler::Relay, Class::Signal),
    ("webrtc-answer", Handler::Relay, Class::Signal),
    ("webrtc-ice-candidate", Handler::Relay, Class::Signal),
    ("request-connection", Handler::Relay, Class::Signal),
    ("toggle-audio", Handler::Toggle, Class::Signal),
    ("toggle-video", Handler::Toggle, Class::Signal),
    ("toggle-media", Handler::Toggle, Class::Signal),
    ("start-screen-share", Handler::ScreenShare, Class::Signal),
    ("stop-screen-share", Handler::ScreenShare, Class::Signal),
    ("toggle-screen-share", Handler::ScreenShare, Class::Signal),
    (
        "admin-toggle-mic-permission",
        Handler::Moderate,
        Class::Moderation,
    ),
    (
        "admin-toggle-camera-permission",
        Handler::Moderate,
        Class::Moderation,
    ),
    (
        "admin-toggle-screen-share-permission",
        Handler::Moderate,
        Class::Moderation,
    ),
    ("mute-all", Handler::Moderate, Class::Moderation),
    ("kick-participant", Handler::Moderate, Class::Moderation),
    ("transfer-host", Handler::Moderate, Class::Moderation),
    ("lock-room", Handler::Moderate, Class::Moderation),
    ("set-lobby", Handler::Moderate, Class::Moderation),
    ("admit-participant", Handler::Moderate, Class::Moderation),
    ("deny-participant", Handler::Moderate, Class::Moderation),
    ("set-room-password", Handler::Moderate, Class::Moderation),
    ("end-room", Handler::Moderate, Class::Moderation),
];

/// The handler that takes a known event.
pub fn handler_of(event: &str) -> Option<Handler> {
    EVENTS
        .iter()
        .find(|(name, _, _)| *name == event)
        .map(|(_, handler, _)| *handler)
}

/// The rate-limit class of a known event.
pub fn class_of(event: &str) -> Option<Class> {
    EVENTS
        .iter()
        .find(|(name, _, _)| *name == event)
        .map(|(_, _, class)| *class)
}
