//! The simulator's etcd: objects by resource, namespace and name, one cluster-wide resourceVersion counter, and
//! a bounded history of changes from which watches resume (older than the history: 410 Gone, as after an etcd
//! compaction).

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;

use serde_json::{Value, json};
use tokio::sync::broadcast;

/// A resource type the simulator serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Resource {
    pub plural: &'static str,
    pub kind: &'static str,
    pub api_version: &'static str,
    pub namespaced: bool,
}

pub const NODES: Resource = Resource { plural: "nodes", kind: "Node", api_version: "v1", namespaced: false };
pub const PODS: Resource = Resource { plural: "pods", kind: "Pod", api_version: "v1", namespaced: true };
pub const PVCS: Resource =
    Resource { plural: "persistentvolumeclaims", kind: "PersistentVolumeClaim", api_version: "v1", namespaced: true };
pub const GAMESERVERS: Resource =
    Resource { plural: "gameservers", kind: "GameServer", api_version: "agones.dev/v1", namespaced: true };

/// Stored and validated; no controller acts on Fleets yet (session-based games will use them).
pub const FLEETS: Resource =
    Resource { plural: "fleets", kind: "Fleet", api_version: "agones.dev/v1", namespaced: true };

pub const RESOURCES: [Resource; 5] = [NODES, PODS, PVCS, GAMESERVERS, FLEETS];

/// One change, as a watch reports it.
#[derive(Debug, Clone)]
pub struct Change {
    pub revision: u64,
    pub resource: Resource,
    pub namespace: String,
    /// `ADDED`, `MODIFIED` or `DELETED`.
    pub kind: &'static str,
    pub object: Value,
}

type Key = (Resource, String, String);

pub struct Store {
    objects: BTreeMap<Key, Value>,
    revision: u64,
    history: VecDeque<Arc<Change>>,
    history_limit: usize,
    changes: broadcast::Sender<Arc<Change>>,
}

/// Why a write was refused, as the API server says it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreError {
    NotFound,
    AlreadyExists,
    /// A write carrying a resourceVersion that is no longer current.
    Conflict,
}

impl Store {
    pub fn new(history_limit: usize) -> Self {
        Self {
            objects: BTreeMap::new(),
            revision: 100,
            history: VecDeque::new(),
            history_limit,
            changes: broadcast::channel(4096).0,
        }
    }

    pub fn revision(&self) -> u64 {
        self.revision
    }

    pub fn subscribe(&self) -> broadcast::Receiver<Arc<Change>> {
        self.changes.subscribe()
    }

    /// The oldest revision a watch can resume from; anything older is gone.
    pub fn oldest_resumable(&self) -> u64 {
        self.history.front().map_or(self.revision, |change| change.revision - 1)
    }

    /// Changes after `revision`, oldest first.
    pub fn history_after(&self, revision: u64) -> Vec<Arc<Change>> {
        self.history.iter().filter(|change| change.revision > revision).cloned().collect()
    }

    /// Forgets all history, as an etcd compaction does: every watch resuming from before now gets 410.
    pub fn compact(&mut self) {
        self.history.clear();
    }

    pub fn get(&self, resource: Resource, namespace: &str, name: &str) -> Option<Value> {
        self.objects.get(&(resource, namespace.to_owned(), name.to_owned())).cloned()
    }

    /// Objects of `resource` in `namespace` (every namespace when `None`), in name order.
    pub fn list(&self, resource: Resource, namespace: Option<&str>) -> Vec<Value> {
        self.objects
            .iter()
            .filter(|((r, ns, _), _)| *r == resource && namespace.is_none_or(|wanted| wanted == ns))
            .map(|(_, object)| object.clone())
            .collect()
    }

    /// Stores a new object, filling in the metadata the API server owns.
    pub fn create(&mut self, resource: Resource, namespace: &str, mut object: Value) -> Result<Value, StoreError> {
        let name = object["metadata"]["name"].as_str().unwrap_or_default().to_owned();
        let key = (resource, namespace.to_owned(), name);
        if self.objects.contains_key(&key) {
            return Err(StoreError::AlreadyExists);
        }
        self.revision += 1;
        object["kind"] = json!(resource.kind);
        object["apiVersion"] = json!(resource.api_version);
        let metadata = &mut object["metadata"];
        if resource.namespaced {
            metadata["namespace"] = json!(namespace);
        }
        metadata["uid"] = json!(uuid::Uuid::new_v4().to_string());
        metadata["resourceVersion"] = json!(self.revision.to_string());
        metadata["generation"] = json!(1);
        metadata["creationTimestamp"] = json!(timestamp());
        self.objects.insert(key, object.clone());
        self.record(resource, namespace, "ADDED", &object);
        Ok(object)
    }

    /// Replaces an object with `change(object)`; the resourceVersion moves on. `expected_revision`, when given,
    /// must be the object's current one (optimistic concurrency).
    pub fn update(
        &mut self,
        resource: Resource,
        namespace: &str,
        name: &str,
        expected_revision: Option<&str>,
        change: impl FnOnce(&mut Value),
    ) -> Result<Value, StoreError> {
        let key = (resource, namespace.to_owned(), name.to_owned());
        let current = self.objects.get(&key).ok_or(StoreError::NotFound)?;
        if expected_revision.is_some_and(|expected| current["metadata"]["resourceVersion"] != expected) {
            return Err(StoreError::Conflict);
        }
        let mut object = current.clone();
        let before = object.clone();
        change(&mut object);
        // What the server owns stays the server's.
        for field in ["uid", "creationTimestamp", "namespace", "name"] {
            object["metadata"][field] = before["metadata"][field].clone();
        }
        if object["spec"] != before["spec"] {
            let generation = before["metadata"]["generation"].as_i64().unwrap_or(1);
            object["metadata"]["generation"] = json!(generation + 1);
        }
        if object == before {
            return Ok(object);
        }
        self.revision += 1;
        object["metadata"]["resourceVersion"] = json!(self.revision.to_string());
        self.objects.insert(key, object.clone());
        self.record(resource, namespace, "MODIFIED", &object);
        Ok(object)
    }

    pub fn delete(&mut self, resource: Resource, namespace: &str, name: &str) -> Result<Value, StoreError> {
        let mut object =
            self.objects.remove(&(resource, namespace.to_owned(), name.to_owned())).ok_or(StoreError::NotFound)?;
        self.revision += 1;
        object["metadata"]["resourceVersion"] = json!(self.revision.to_string());
        self.record(resource, namespace, "DELETED", &object);
        Ok(object)
    }

    fn record(&mut self, resource: Resource, namespace: &str, kind: &'static str, object: &Value) {
        let change = Arc::new(Change {
            revision: self.revision,
            resource,
            namespace: namespace.to_owned(),
            kind,
            object: object.clone(),
        });
        if self.history.len() == self.history_limit {
            self.history.pop_front();
        }
        self.history.push_back(change.clone());
        let _ = self.changes.send(change);
    }
}

/// Now, as RFC 3339 in UTC with second precision (what the API server writes).
pub fn timestamp() -> String {
    let secs = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let (days, rest) = (secs / 86_400, secs % 86_400);
    let (year, month, day) = civil_from_days(days as i64);
    format!("{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z", rest / 3600, rest % 3600 / 60, rest % 60)
}

/// Days since 1970-01-01 → (year, month, day), Howard Hinnant's algorithm.
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (yoe + era * 400 + i64::from(month <= 2), month, day)
}

/// Whether `object`'s labels satisfy a label selector (`a=b`, `a==b`, `a!=b`, `a`, `!a`, comma-separated).
/// `Err` names a selector this simulator does not understand.
pub fn matches_selector(object: &Value, selector: &str) -> Result<bool, String> {
    let labels = &object["metadata"]["labels"];
    let label = |key: &str| labels.get(key).and_then(Value::as_str);
    for requirement in selector.split(',').map(str::trim).filter(|r| !r.is_empty()) {
        let holds = if let Some((key, value)) = requirement.split_once("!=") {
            label(key.trim()) != Some(value.trim())
        } else if let Some((key, value)) = requirement.split_once("==").or_else(|| requirement.split_once('=')) {
            label(key.trim()) == Some(value.trim())
        } else if let Some(key) = requirement.strip_prefix('!') {
            label(key.trim()).is_none()
        } else if requirement.contains(' ') || requirement.contains('(') {
            return Err(format!("unsupported label selector requirement `{requirement}`"));
        } else {
            label(requirement).is_some()
        };
        if !holds {
            return Ok(false);
        }
    }
    Ok(true)
}

/// RFC 7386 JSON merge patch.
pub fn merge_patch(target: &mut Value, patch: &Value) {
    match patch {
        Value::Object(fields) => {
            if !target.is_object() {
                *target = json!({});
            }
            for (key, value) in fields {
                if value.is_null() {
                    if let Some(map) = target.as_object_mut() {
                        map.remove(key);
                    }
                } else {
                    merge_patch(&mut target[key.as_str()], value);
                }
            }
        }
        other => *target = other.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn selectors_follow_the_equality_rules() {
        let object = json!({ "metadata": { "labels": { "app": "web", "tier": "front" } } });
        for (selector, expected) in [
            ("app=web", true),
            ("app==web,tier=front", true),
            ("app=db", false),
            ("app!=db", true),
            ("app", true),
            ("!app", false),
            ("!missing", true),
            ("", true),
        ] {
            assert_eq!(matches_selector(&object, selector), Ok(expected), "{selector}");
        }
        assert!(matches_selector(&object, "app in (web)").is_err());
    }

    #[test]
    fn merge_patches_set_replace_and_remove() {
        let mut target = json!({ "a": 1, "b": { "c": 2, "d": 3 }, "list": [1, 2] });
        merge_patch(&mut target, &json!({ "a": null, "b": { "c": 5 }, "list": [3], "new": "x" }));
        assert_eq!(target, json!({ "b": { "c": 5, "d": 3 }, "list": [3], "new": "x" }));
    }

    #[test]
    fn timestamps_are_rfc3339() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(20_778), (2026, 11, 21));
        let now = timestamp();
        assert_eq!(now.len(), 20, "{now}");
        assert!(now.ends_with('Z'));
    }

    #[test]
    fn versions_move_on_and_history_resumes_or_is_gone() {
        let mut store = Store::new(2);
        let first = store.create(PVCS, "ns", json!({ "metadata": { "name": "a" } })).expect("created");
        assert_eq!(store.create(PVCS, "ns", json!({ "metadata": { "name": "a" } })), Err(StoreError::AlreadyExists));
        let rv: u64 = first["metadata"]["resourceVersion"].as_str().expect("rv").parse().expect("number");
        let stale = Some("1");
        assert_eq!(store.update(PVCS, "ns", "a", stale, |_| {}), Err(StoreError::Conflict));
        store.update(PVCS, "ns", "a", None, |o| o["spec"] = json!({ "x": 1 })).expect("updated");
        store.delete(PVCS, "ns", "a").expect("deleted");
        assert_eq!(store.history_after(rv).len(), 2);
        assert_eq!(store.oldest_resumable(), rv, "the create fell out of a history of two");
        assert_eq!(store.delete(PVCS, "ns", "a"), Err(StoreError::NotFound));
    }
}
