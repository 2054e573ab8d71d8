//! Per-socket ordering. socketioxide runs every incoming event in a task of its own, so two
//! events from one client could otherwise be handled out of order (an ICE candidate overtaking
//! its offer, a chat message overtaking its join). A [`Turn`] is taken synchronously, in
//! arrival order, while socketioxide extracts the handler's arguments; [`Turn::wait`] then
//! lets a handler run only once every earlier event of its socket has been handled.

use std::sync::Mutex;

use tokio::sync::oneshot;

/// A socket's queue of events, one per socket.
#[derive(Default)]
pub struct Queue {
    /// Resolves (or is dropped) when the latest handed-out turn is over.
    tail: Mutex<Option<oneshot::Receiver<()>>>,
}

impl Queue {
    pub fn take_turn(&self) -> Turn {
        let (done, next) = oneshot::channel();
        let previous = match self.tail.lock() {
            Ok(mut tail) => tail.replace(next),
            Err(poisoned) => poisoned.into_inner().replace(next),
        };
        Turn { previous, done }
    }
}

/// A place in the socket's queue of events. Dropping it (or the guard from
/// [`Turn::wait`]) lets the next event run.
pub struct Turn {
    previous: Option<oneshot::Receiver<()>>,
    done: oneshot::Sender<()>,
}

/// Held while a handler runs; the next event of the socket waits for it to drop.
pub struct TurnGuard {
    _done: oneshot::Sender<()>,
}

impl Turn {
    pub async fn wait(self) -> TurnGuard {
        if let Some(previous) = self.previous {
            // An error only means the previous turn's sender was dropped: it is over too.
            let _ = previous.await;
        }
        TurnGuard { _done: self.done }
    }
}
