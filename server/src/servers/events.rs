//! The event bus: every change to a server row, as it is written, for open dashboards, consoles and the
//! reconciler. Each event carries the row's version, so a receiver that gets two views of one server keeps the
//! newer (see [`catalog::gameserver::GameServer::version`]).

use catalog::gameserver::ServerEvent;
use tokio::sync::broadcast;

/// Events a slow receiver may fall behind by before it gets `Lagged` (and should reload).
const CAPACITY: usize = 1024;

/// Cheap to clone; clones share subscribers.
#[derive(Clone)]
pub struct EventBus {
    sender: broadcast::Sender<ServerEvent>,
}

impl Default for EventBus {
    fn default() -> Self {
        Self { sender: broadcast::channel(CAPACITY).0 }
    }
}

impl EventBus {
    /// Every change from now on. A receiver that falls behind gets `Lagged` and should reload.
    pub fn subscribe(&self) -> broadcast::Receiver<ServerEvent> {
        self.sender.subscribe()
    }

    pub fn send(&self, event: ServerEvent) {
        // No subscriber is no failure: nobody is looking.
        let _ = self.sender.send(event);
    }
}
