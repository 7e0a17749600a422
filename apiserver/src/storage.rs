//! Storage: a small etcd-shaped key-value store of Kubernetes objects.
//!
//! Every write gets the next global revision, and that revision is the object's
//! `metadata.resourceVersion`. Reads are served from an immutable snapshot of the
//! whole keyspace (a persistent ordered map, so taking one is O(1)), which makes
//! paginated lists consistent. Watches replay a bounded window of recent events and
//! then follow live ones; a revision older than the window is [`Error::Compacted`],
//! which the registry turns into `410 Gone`.
//!
//! Start at [`Storage`]. Both implementations serve reads and watches from a
//! [`cache::Cache`]: [`kv::KvStore`], the only writer of its data, over a
//! [`kv::Backend`] ([`memory`] for tests, or [`redb`], durable, the default); and
//! [`etcd::EtcdStore`], one of possibly many API servers sharing an etcd cluster, whose
//! cache follows etcd's watch.

pub mod cache;
pub mod etcd;
pub mod kv;
pub mod memory;
pub mod metered;
pub mod redb;

#[cfg(test)]
pub mod conformance;

use std::sync::Arc;

use futures::future::BoxFuture;
use futures::stream::BoxStream;
use serde_json::Value;

/// An estimate of the heap a parsed JSON value takes (its allocations, not the
/// allocator's own overhead): strings by capacity, arrays by capacity, objects as
/// an ordered map (entries of key, value and hash, plus the index table).
pub fn heap_size(v: &Value) -> usize {
    const VALUE: usize = std::mem::size_of::<Value>();
    match v {
        Value::Null | Value::Bool(_) | Value::Number(_) => 0,
        Value::String(s) => s.capacity(),
        Value::Array(a) => a.capacity() * VALUE + a.iter().map(heap_size).sum::<usize>(),
        Value::Object(m) => {
            let entries = m.len() * (VALUE + std::mem::size_of::<String>() + 8);
            let index = m.len() * 8 * 8 / 7 + 16;
            entries
                + index
                + m.iter()
                    .map(|(k, v)| k.capacity() + heap_size(v))
                    .sum::<usize>()
        }
    }
}

/// A global revision of the store; the `resourceVersion` of Kubernetes.
pub type Revision = u64;

/// One stored object and the revision that last wrote it.
#[derive(Debug, Clone)]
pub struct KeyValue {
    pub key: Arc<str>,
    /// The object, with `metadata.resourceVersion` already set to `mod_revision`.
    pub value: Arc<Value>,
    /// The object's JSON encoding, made once when it was written.
    pub json: bytes::Bytes,
    pub mod_revision: Revision,
}

impl KeyValue {
    /// A stored object, encoding it once.
    pub fn new(key: Arc<str>, value: Arc<Value>, mod_revision: Revision) -> Self {
        let json = bytes::Bytes::from(serde_json::to_vec(value.as_ref()).unwrap_or_default());
        KeyValue {
            key,
            value,
            json,
            mod_revision,
        }
    }
}

/// What a watch event reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventKind {
    Added,
    Modified,
    Deleted,
    /// Nothing changed under the watched prefix up to the event's revision
    /// (only from [`Storage::watch_progress`]; no key or object).
    Progress,
}

/// One change to the store, as delivered to watchers.
#[derive(Debug, Clone)]
pub struct Event {
    pub kind: EventKind,
    pub key: Arc<str>,
    /// The new object; for `Deleted`, the last state with the deletion's revision.
    pub object: Arc<Value>,
    /// The JSON encoding of `object`.
    pub json: bytes::Bytes,
    /// The object before this change (none for `Added`).
    pub prev: Option<Arc<Value>>,
    pub revision: Revision,
}

impl Event {
    /// A [`EventKind::Progress`] event at `revision`.
    pub fn progress(revision: Revision) -> Event {
        static NULL: std::sync::OnceLock<Arc<Value>> = std::sync::OnceLock::new();
        Event {
            kind: EventKind::Progress,
            key: Arc::from(""),
            object: NULL.get_or_init(|| Arc::new(Value::Null)).clone(),
            json: bytes::Bytes::new(),
            prev: None,
            revision,
        }
    }
}

/// A consistent, immutable view of the whole store at one revision.
#[derive(Clone)]
pub struct Snapshot {
    pub(crate) map: imbl::OrdMap<Arc<str>, KeyValue>,
    pub revision: Revision,
}

impl Snapshot {
    /// A snapshot of an empty store at revision 0.
    pub fn empty() -> Self {
        Snapshot {
            map: imbl::OrdMap::new(),
            revision: 0,
        }
    }

    /// The object at `key`, if any.
    pub fn get(&self, key: &str) -> Option<&KeyValue> {
        self.map.get(key)
    }

    /// Objects whose key starts with `prefix`, in key order, starting after `after`.
    pub fn range<'a>(
        &'a self,
        prefix: &'a str,
        after: Option<&str>,
    ) -> impl Iterator<Item = &'a KeyValue> + 'a {
        use std::ops::Bound;
        let start: Bound<Arc<str>> = match after {
            Some(a) => Bound::Excluded(Arc::from(a)),
            None => Bound::Included(Arc::from(prefix)),
        };
        self.map
            .range((start, Bound::Unbounded))
            .take_while(move |(k, _)| k.starts_with(prefix))
            .map(|(_, v)| v)
    }

    /// Number of objects under `prefix`.
    pub fn count(&self, prefix: &str) -> usize {
        self.range(prefix, None).count()
    }
}

/// Storage failures. The registry maps each to a Kubernetes `Status`.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("key {key} not found")]
    NotFound { key: String },
    #[error("key {key} already exists")]
    AlreadyExists { key: String },
    #[error("conflict on {key}: expected revision {expected}, found {actual}")]
    Conflict {
        key: String,
        expected: Revision,
        actual: Revision,
    },
    #[error("revision {requested} has been compacted; oldest available is {oldest}")]
    Compacted {
        requested: Revision,
        oldest: Revision,
    },
    #[error("storage unavailable: {0}")]
    Unavailable(String),
    #[error("storage backend failed: {0}")]
    Backend(#[source] Box<dyn std::error::Error + Send + Sync>),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// A precondition on the current state of a key for update and delete.
#[derive(Debug, Clone, Copy, Default)]
pub struct Precondition {
    /// The key's current `mod_revision` must equal this.
    pub revision: Option<Revision>,
}

/// The etcd-shaped storage interface every backend provides.
pub trait Storage: Send + Sync + 'static {
    /// A consistent view of everything at the current revision.
    fn snapshot(&self) -> Snapshot;

    /// The latest revision written.
    fn current_revision(&self) -> Revision;

    /// A past snapshot kept for paginated lists, if still available.
    fn snapshot_at(&self, revision: Revision) -> Option<Snapshot>;

    /// Keep `snapshot` available for later `snapshot_at` calls (continue tokens).
    fn retain_snapshot(&self, snapshot: &Snapshot);

    /// Stores a new key; fails with `AlreadyExists`.
    fn create(&self, key: String, value: Value) -> BoxFuture<'_, Result<KeyValue>>;

    /// Replaces an existing key; fails with `NotFound` or `Conflict`.
    fn update(
        &self,
        key: String,
        value: Value,
        precondition: Precondition,
    ) -> BoxFuture<'_, Result<KeyValue>>;

    /// Removes a key, returning its last state stamped with the deletion's revision.
    fn delete(&self, key: String, precondition: Precondition) -> BoxFuture<'_, Result<KeyValue>>;

    /// Events under `prefix` with a revision greater than `from`; fails with
    /// `Compacted` when `from` is older than the kept window.
    fn watch(&self, prefix: String, from: Revision) -> Result<BoxStream<'static, Result<Event>>>;

    /// As [`Storage::watch`], with an [`EventKind::Progress`] event each time
    /// the watch has looked at every change up to a revision past the last
    /// event it delivered (what a watch's bookmarks report).
    fn watch_progress(
        &self,
        prefix: String,
        from: Revision,
    ) -> Result<BoxStream<'static, Result<Event>>>;

    /// How much history is kept for watches resuming from the past.
    fn history(&self) -> cache::HistoryStats;

    /// Waits until [`Storage::snapshot`] includes every write acknowledged before the
    /// call, by this process or any other sharing the data (a consistent read). A
    /// store that is the only writer of its data is always in sync.
    fn sync(&self) -> BoxFuture<'_, Result<()>> {
        Box::pin(futures::future::ready(Ok(())))
    }

    /// The keys under `prefix` (only those after `after`, when given) as they were at
    /// `revision`, read from where the data lives, for a past state this process
    /// keeps no snapshot of (a continue token another API server issued). `None`
    /// when that revision is gone, or when the store keeps no history beyond memory.
    fn past(
        &self,
        prefix: String,
        after: Option<String>,
        revision: Revision,
    ) -> BoxFuture<'_, Result<Option<Snapshot>>> {
        let _ = (prefix, after, revision);
        Box::pin(futures::future::ready(Ok(None)))
    }
}
