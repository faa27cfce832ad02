//! The names and marks on everything Spawnpoint creates on a cluster: one function or constant for each, so a
//! GameServer, its claim and the code that finds them again always agree.

use std::collections::BTreeMap;

use catalog::ServerId;

use crate::orchestrator::ServerSpec;

pub const MANAGED_BY: (&str, &str) = ("app.kubernetes.io/managed-by", "spawnpoint");
pub const SERVER_ID_LABEL: &str = "spawnpoint.io/server-id";
/// The installation (its database) an object belongs to. Spawnpoint only ever lists, watches and collects
/// objects carrying its own, so one started against another database leaves this one's alone.
pub const INSTALLATION_LABEL: &str = "spawnpoint.io/installation";
pub const GENERATION_ANNOTATION: &str = "spawnpoint.io/generation";
/// Who the API server records as the writer of the fields Spawnpoint sets.
pub const FIELD_MANAGER: &str = "spawnpoint";

/// The claim holding server `id`'s data.
pub fn claim_name(id: &ServerId) -> String {
    format!("{id}-data")
}

/// The label selector of this installation's objects.
pub fn selector(installation: &str) -> String {
    format!("{}={},{INSTALLATION_LABEL}={installation}", MANAGED_BY.0, MANAGED_BY.1)
}

/// The label selector of Spawnpoint's objects made before objects carried their installation.
pub fn unstamped() -> String {
    format!("{}={},!{INSTALLATION_LABEL}", MANAGED_BY.0, MANAGED_BY.1)
}

/// The labels on everything Spawnpoint creates for a server.
pub fn labels(spec: &ServerSpec, installation: &str) -> BTreeMap<String, String> {
    BTreeMap::from([
        (MANAGED_BY.0.to_owned(), MANAGED_BY.1.to_owned()),
        (INSTALLATION_LABEL.to_owned(), installation.to_owned()),
        (SERVER_ID_LABEL.to_owned(), spec.id.to_string()),
        ("spawnpoint.io/user-id".to_owned(), spec.user_id.to_string()),
        ("spawnpoint.io/game".to_owned(), spec.game.id.clone()),
        ("spawnpoint.io/plan".to_owned(), spec.plan.id.clone()),
    ])
}
