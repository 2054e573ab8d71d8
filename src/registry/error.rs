//! What can go wrong in the registry besides a client's own mistake: the shared store is
//! unreachable, or the server holds as many rooms as it may.

use crate::protocol::{ErrorCode, ProtocolError};

/// The shared room store could not be reached (or answered nonsense).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("room store unavailable: {0}")]
pub struct StoreUnavailable(pub String);

impl From<StoreUnavailable> for ProtocolError {
    fn from(e: StoreUnavailable) -> Self {
        tracing::warn!("{e}");
        ProtocolError::new(
            ErrorCode::Unavailable,
            "The server cannot reach its room store; try again shortly",
        )
    }
}

/// No room can be made now: the server holds `MAX_ROOMS` rooms, or the creator's address
/// holds `MAX_ROOMS_PER_ADDRESS`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum RoomLimitReached {
    #[error("The server has reached its room limit; try again later")]
    Server,
    #[error("Your address holds as many rooms as it may; leave some first")]
    Address,
}

impl From<RoomLimitReached> for ProtocolError {
    fn from(e: RoomLimitReached) -> Self {
        ProtocolError::new(ErrorCode::TooManyRooms, e.to_string())
    }
}
