//! What a game's Agones SDK sidecar tells the controller: here, only `Ready()`.

use serde_json::{Value, json};

use crate::Shared;
use crate::store::GAMESERVERS;

/// The game says it is ready (the Agones SDK's `Ready()`): only a GameServer still waiting, and still the same
/// one, becomes `Ready` (not one whose node died meanwhile, nor a later one of the same name).
pub(crate) fn ready(shared: &Shared, namespace: &str, name: &str, uid: &Value) -> bool {
    let mut store = shared.store();
    let waiting = store
        .get(GAMESERVERS, namespace, name)
        .is_some_and(|gs| gs["status"]["state"] == "Scheduled" && gs["metadata"]["uid"] == *uid);
    waiting && store.update(GAMESERVERS, namespace, name, None, |gs| gs["status"]["state"] = json!("Ready")).is_ok()
}
