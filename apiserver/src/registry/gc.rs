//! The garbage collector: follows `metadata.ownerReferences` as Kubernetes does.
//!
//! - An owner deleted in the background: dependents whose owners are all gone are
//!   deleted; dependents with another live owner only lose the reference.
//! - `propagationPolicy: Foreground`: the owner carries the `foregroundDeletion`
//!   finalizer; its dependents are deleted (in the foreground too), and the finalizer
//!   is removed once no dependent with `blockOwnerDeletion: true` remains.
//! - `propagationPolicy: Orphan`: the owner carries the `orphan` finalizer; the
//!   references are removed from its dependents, then the finalizer.
//!
//! It keeps an index owner uid → dependents, built from a snapshot and kept current
//! from a watch of the whole store; after a compacted watch it rebuilds and resyncs.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use serde_json::{Value, json};

use super::ResourceInfo;
use super::meta::meta_str;
use super::patch::PatchType;
use super::store::{DeleteOptions, Part, Propagation, Store, WriteOptions};
use crate::storage::{EventKind, KeyValue, Snapshot};

pub const FOREGROUND: &str = "foregroundDeletion";
pub const ORPHAN: &str = "orphan";

#[derive(Default)]
struct Index {
    /// owner uid → keys of objects referencing it.
    dependents: HashMap<String, HashSet<Arc<str>>>,
    /// object key → owner uids it references.
    owners: HashMap<Arc<str>, Vec<String>>,
    /// uid → key of every object.
    keys: HashMap<String, Arc<str>>,
}

fn owner_uids(object: &Value) -> Vec<String> {
    object
        .pointer("/metadata/ownerReferences")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|r| r.get("uid").and_then(Value::as_str).map(String::from))
        .collect()
}

fn has_finalizer(object: &Value, f: &str) -> bool {
    object
        .pointer("/metadata/finalizers")
        .and_then(Value::as_array)
        .is_some_and(|l| l.iter().any(|x| x == f))
}

impl Index {
    fn remove(&mut self, key: &Arc<str>, uid: &str) {
        if let Some(old) = self.owners.remove(key) {
            for o in old {
                if let Some(set) = self.dependents.get_mut(&o) {
                    set.remove(key);
                    if set.is_empty() {
                        self.dependents.remove(&o);
                    }
                }
            }
        }
        if self.keys.get(uid) == Some(key) {
            self.keys.remove(uid);
        }
    }

    fn put(&mut self, key: Arc<str>, object: &Value) {
        let uid = meta_str(object, "uid").to_string();
        self.remove(&key, &uid);
        let owners = owner_uids(object);
        for o in &owners {
            self.dependents
                .entry(o.clone())
                .or_default()
                .insert(key.clone());
        }
        if !owners.is_empty() {
            self.owners.insert(key.clone(), owners);
        }
        if !uid.is_empty() {
            self.keys.insert(uid, key);
        }
    }

    fn build(snapshot: &Snapshot) -> Index {
        let mut index = Index::default();
        for kv in snapshot.range("/", None) {
            index.put(kv.key.clone(), &kv.value());
        }
        index
    }
}

/// Whether every owner of `object` is a kind this server stores and none of them
/// exists any more. Owners of kinds served elsewhere (an aggregated API, such as
/// Karmada's Clusters) are not this collector's to judge.
fn orphaned(store: &Store, index: &Index, object: &Value) -> bool {
    let refs: Vec<&Value> = object
        .pointer("/metadata/ownerReferences")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .collect();
    !refs.is_empty()
        && refs.iter().all(|r| {
            let uid = r.get("uid").and_then(Value::as_str).unwrap_or("");
            let kind = r.get("kind").and_then(Value::as_str).unwrap_or("");
            let api_version = r.get("apiVersion").and_then(Value::as_str).unwrap_or("");
            let (group, version) = api_version.rsplit_once('/').unwrap_or(("", api_version));
            let local = store
                .catalog
                .resources(group, version)
                .iter()
                .any(|i| i.kind == kind);
            local && !index.keys.contains_key(uid)
        })
}

/// Which resource a storage key belongs to (`/group/plural/...`).
fn resource_of(store: &Arc<Store>, key: &str) -> Option<Arc<ResourceInfo>> {
    let mut parts = key.trim_start_matches('/').split('/');
    let group = parts.next()?;
    let plural = parts.next()?;
    let group = if group == "core" { "" } else { group };
    store.catalog.find_resource(group, plural)
}

fn namespace_of(object: &Value) -> Option<&str> {
    Some(meta_str(object, "namespace")).filter(|n| !n.is_empty())
}

/// Runs the collector until the store's watch ends.
pub async fn run(store: Arc<Store>) {
    loop {
        let snapshot = store.storage.snapshot();
        let mut index = Index::build(&snapshot);
        resync(&store, &snapshot, &index).await;
        let mut events = match store.storage.watch("/".into(), snapshot.revision) {
            Ok(e) => e,
            Err(e) => {
                tracing::warn!(error = %e, "garbage collector cannot watch; retrying");
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        };
        while let Some(event) = events.next().await {
            let event = match event {
                Ok(e) => e,
                Err(e) => {
                    tracing::info!(error = %e, "garbage collector fell behind; resyncing");
                    break;
                }
            };
            let object = event.object();
            let uid = meta_str(&object, "uid").to_string();
            match event.kind {
                EventKind::Deleted => {
                    index.remove(&event.key, &uid);
                    owner_gone(&store, &index, &uid).await;
                    // A deleted dependent may unblock owners in foreground deletion.
                    for owner in owner_uids(&object) {
                        if let Some(key) = index.keys.get(&owner).cloned()
                            && let Some(owner) =
                                store.storage.snapshot().get(&key).map(KeyValue::value)
                            && has_finalizer(&owner, FOREGROUND)
                        {
                            foreground(&store, &index, &key, &owner).await;
                        }
                    }
                }
                // not asked for (`watch`, not `watch_progress`)
                EventKind::Progress => {}
                EventKind::Added | EventKind::Modified => {
                    index.put(event.key.clone(), &object);
                    if object.pointer("/metadata/deletionTimestamp").is_some() {
                        if has_finalizer(&object, FOREGROUND) {
                            foreground(&store, &index, &event.key, &object).await;
                        }
                        if has_finalizer(&object, ORPHAN) {
                            orphan(&store, &index, &event.key, &object).await;
                        }
                    }
                    // A dependent whose owners are already gone is collected.
                    if orphaned(&store, &index, &object) {
                        delete(&store, &event.key, &object, Propagation::Background).await;
                    }
                }
            }
        }
    }
}

/// Handles every object whose owners vanished, or that waits on the collector.
async fn resync(store: &Arc<Store>, snapshot: &Snapshot, index: &Index) {
    for kv in snapshot.range("/", None) {
        let object = kv.value();
        if orphaned(store, index, &object) {
            delete(store, &kv.key, &object, Propagation::Background).await;
        }
        if object.pointer("/metadata/deletionTimestamp").is_some() {
            if has_finalizer(&object, FOREGROUND) {
                foreground(store, index, &kv.key, &object).await;
            }
            if has_finalizer(&object, ORPHAN) {
                orphan(store, index, &kv.key, &object).await;
            }
        }
    }
}

async fn delete(store: &Arc<Store>, key: &str, object: &Value, propagation: Propagation) {
    let Some(info) = resource_of(store, key) else {
        return;
    };
    let opts = DeleteOptions {
        precondition_uid: Some(meta_str(object, "uid").to_string()),
        propagation,
        ..Default::default()
    };
    match store
        .delete(&info, namespace_of(object), meta_str(object, "name"), &opts)
        .await
    {
        Ok(_) => tracing::debug!(%key, "garbage collected"),
        Err(e) if e.code == 404 || e.code == 409 => {}
        Err(e) => tracing::warn!(%key, error = %e, "garbage collection failed"),
    }
}

/// Removes the reference to `owner` from a dependent.
async fn drop_reference(store: &Arc<Store>, key: &str, owner: &str) {
    let Some(info) = resource_of(store, key) else {
        return;
    };
    let Some(object) = store.storage.snapshot().get(key).map(KeyValue::value) else {
        return;
    };
    let refs: Vec<Value> = object
        .pointer("/metadata/ownerReferences")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter(|r| r.get("uid").and_then(Value::as_str) != Some(owner))
        .cloned()
        .collect();
    let patch = json!({"metadata": {"ownerReferences": if refs.is_empty() { Value::Null } else { Value::Array(refs) }}});
    if let Err(e) = store
        .patch(
            &info,
            namespace_of(&object),
            meta_str(&object, "name"),
            PatchType::Merge,
            &patch,
            Part::Main,
            &WriteOptions::manager("garbage-collector"),
        )
        .await
        && e.code != 404
    {
        tracing::warn!(%key, error = %e, "removing owner reference failed");
    }
}

/// Removes one finalizer from an object.
async fn release(store: &Arc<Store>, key: &str, finalizer: &str) {
    let Some(info) = resource_of(store, key) else {
        return;
    };
    let Some(kv) = store.storage.snapshot().get(key).cloned() else {
        return;
    };
    let object = kv.value();
    let remaining: Vec<Value> = object
        .pointer("/metadata/finalizers")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter(|f| *f != finalizer)
        .cloned()
        .collect();
    let patch = json!({"metadata": {"finalizers": remaining, "resourceVersion": kv.mod_revision.to_string()}});
    if let Err(e) = store
        .patch(
            &info,
            namespace_of(&object),
            meta_str(&object, "name"),
            PatchType::Merge,
            &patch,
            Part::Main,
            &WriteOptions::manager("garbage-collector"),
        )
        .await
        && e.code != 404
        && e.code != 409
    {
        tracing::warn!(%key, error = %e, "removing finalizer failed");
    }
}

/// An owner is gone for good: collect or detach its dependents.
async fn owner_gone(store: &Arc<Store>, index: &Index, uid: &str) {
    let Some(dependents) = index.dependents.get(uid) else {
        return;
    };
    for key in dependents.clone() {
        let Some(object) = store.storage.snapshot().get(&key).map(KeyValue::value) else {
            continue;
        };
        let live_owner = owner_uids(&object)
            .iter()
            .any(|o| o != uid && index.keys.contains_key(o));
        if live_owner {
            drop_reference(store, &key, uid).await;
        } else {
            delete(store, &key, &object, Propagation::Background).await;
        }
    }
}

/// Foreground deletion: delete dependents; release the owner when none blocks.
async fn foreground(store: &Arc<Store>, index: &Index, key: &str, owner: &Value) {
    let uid = meta_str(owner, "uid");
    let mut blocking = 0;
    for dep in index.dependents.get(uid).cloned().unwrap_or_default() {
        let Some(object) = store.storage.snapshot().get(&dep).map(KeyValue::value) else {
            continue;
        };
        let blocks = object
            .pointer("/metadata/ownerReferences")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .any(|r| {
                r.get("uid").and_then(Value::as_str) == Some(uid)
                    && r.get("blockOwnerDeletion") == Some(&Value::Bool(true))
            });
        if blocks {
            blocking += 1;
        }
        if object.pointer("/metadata/deletionTimestamp").is_none() {
            delete(store, &dep, &object, Propagation::Foreground).await;
        }
    }
    if blocking == 0 {
        release(store, key, FOREGROUND).await;
    }
}

/// Orphan deletion: detach every dependent, then release the owner.
async fn orphan(store: &Arc<Store>, index: &Index, key: &str, owner: &Value) {
    let uid = meta_str(owner, "uid");
    for dep in index.dependents.get(uid).cloned().unwrap_or_default() {
        drop_reference(store, &dep, uid).await;
    }
    release(store, key, ORPHAN).await;
}
