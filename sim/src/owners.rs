//! Which stored objects each controller owns, by the owner's uid: the index a
//! workload controller needs to find a ReplicaSet's pods or a Deployment's
//! ReplicaSets without reading every object of the namespace (as
//! kube-controller-manager's informers index pods by their controller).
//!
//! The index follows the loop's watch events and the loop's own creates, and
//! is rebuilt from a snapshot when the watch resynchronises. It only narrows
//! the search: every object it names is read from the snapshot and its
//! controller reference checked again, so an entry that is out of date costs
//! a lookup, never a wrong answer. An object another client has just created
//! and whose event the loop has not read yet is missing for a moment; its
//! event queues the owner again.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use flotilla_apiserver::storage::Snapshot;
use serde_json::Value;

use crate::object::{self, str_at};

/// Storage keys of owned objects by their controller's uid.
#[derive(Debug, Default)]
pub struct Owners {
    by_owner: HashMap<String, BTreeSet<String>>,
    owner_of: HashMap<String, String>,
}

/// The uid of an object's controlling owner, whatever its kind.
fn controller_of(object: &Value) -> Option<&str> {
    object
        .pointer("/metadata/ownerReferences")
        .and_then(Value::as_array)?
        .iter()
        .find(|r| r.get("controller") == Some(&Value::Bool(true)))
        .map(|r| str_at(r, "/uid"))
        .filter(|uid| !uid.is_empty())
}

impl Owners {
    /// Records the object now stored at `key`, or its deletion (`None`).
    pub fn record(&mut self, key: &str, object: Option<&Value>) {
        let owner = object.and_then(controller_of);
        match (self.owner_of.get(key), owner) {
            (Some(old), Some(new)) if old == new => return,
            (None, None) => return,
            _ => {}
        }
        if let Some(old) = self.owner_of.remove(key)
            && let Some(keys) = self.by_owner.get_mut(&old)
        {
            keys.remove(key);
            if keys.is_empty() {
                self.by_owner.remove(&old);
            }
        }
        if let Some(new) = owner {
            self.owner_of.insert(key.to_string(), new.to_string());
            self.by_owner
                .entry(new.to_string())
                .or_default()
                .insert(key.to_string());
        }
    }

    /// Forgets everything and indexes every object of `snapshot`.
    pub fn rebuild(&mut self, snapshot: &Snapshot) {
        self.by_owner.clear();
        self.owner_of.clear();
        for kv in snapshot.range("/", None) {
            self.record(&kv.key, Some(kv.kept()));
        }
    }

    /// The objects under `prefix` (one resource in one namespace) whose
    /// controller is `owner`, a `kind`, in key order.
    pub fn owned(
        &self,
        snapshot: &Snapshot,
        prefix: &str,
        kind: &str,
        owner: &Value,
    ) -> Vec<Arc<Value>> {
        let uid = object::uid(owner);
        let Some(keys) = self.by_owner.get(uid) else {
            return Vec::new();
        };
        keys.iter()
            .filter(|k| k.starts_with(prefix))
            .filter_map(|k| snapshot.get(k))
            .filter(|kv| object::controller_uid(kv.kept(), kind) == Some(uid))
            .map(|kv| kv.value())
            .collect()
    }

    /// How many objects are indexed (for tests).
    #[cfg(test)]
    fn len(&self) -> usize {
        self.owner_of.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod(owner: Option<&str>) -> Value {
        match owner {
            Some(uid) => json!({"metadata": {"ownerReferences": [
                {"kind": "ReplicaSet", "name": "rs", "uid": uid, "controller": true}]}}),
            None => json!({"metadata": {}}),
        }
    }

    #[test]
    fn records_follow_owner_changes_and_deletions() {
        let mut o = Owners::default();
        o.record("/core/pods/ns/a", Some(&pod(Some("u1"))));
        o.record("/core/pods/ns/b", Some(&pod(Some("u1"))));
        o.record("/core/pods/ns/c", Some(&pod(None)));
        assert_eq!(o.len(), 2);
        assert_eq!(o.by_owner["u1"].len(), 2);
        // orphaned, then adopted by another owner
        o.record("/core/pods/ns/a", Some(&pod(None)));
        o.record("/core/pods/ns/b", Some(&pod(Some("u2"))));
        assert!(!o.by_owner.contains_key("u1"));
        assert_eq!(
            o.by_owner["u2"].iter().collect::<Vec<_>>(),
            ["/core/pods/ns/b"]
        );
        o.record("/core/pods/ns/b", None);
        assert_eq!(o.len(), 0);
        assert!(o.by_owner.is_empty());
    }

    #[test]
    fn a_non_controller_reference_is_not_ownership() {
        let mut o = Owners::default();
        let shared = json!({"metadata": {"ownerReferences": [
            {"kind": "ReplicaSet", "name": "rs", "uid": "u1"}]}});
        o.record("/core/pods/ns/a", Some(&shared));
        assert_eq!(o.len(), 0);
    }
}
