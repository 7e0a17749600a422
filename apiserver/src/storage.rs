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

use crate::packed::{Json, Packers};

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

/// Key prefixes whose objects the cache also keeps parsed: what the server
/// itself reads on every request (authorization, authentication, admission,
/// aggregation, CRDs and namespaces, the unified view's Clusters). Every other
/// object is kept as JSON alone and parsed when a read needs it: a parsed
/// object takes about three times the memory of its JSON, and most reads
/// (lists and watches in JSON) send the stored JSON as it is.
const KEPT_PARSED: &[&str] = &[
    "/rbac.authorization.k8s.io/",
    "/apiregistration.k8s.io/",
    "/admissionregistration.k8s.io/",
    "/apiextensions.k8s.io/",
    "/core/namespaces/",
    "/core/serviceaccounts/",
    "/core/secrets/",
    "/core/services/",
    "/core/endpoints/",
    "/discovery.k8s.io/",
    // the aggregated server's Clusters and ResourceRegistries, which the
    // unified view reads on every change
    "/cluster.karmada.io/",
    "/search.karmada.io/",
];

/// Whether the cache keeps the object at `key` parsed (see [`KEPT_PARSED`]).
pub fn keeps_parsed(key: &str) -> bool {
    KEPT_PARSED.iter().any(|p| key.starts_with(p))
}

/// Which objects a store's cache keeps parsed besides their JSON.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum KeepParsed {
    /// Those under [`KEPT_PARSED`]: the least memory.
    #[default]
    Listed,
    /// Every object: for a server whose own controllers read every object
    /// over and over (the simulated members' fake workload controllers).
    All,
}

/// Parses stored JSON. The store only holds JSON it encoded itself (or read
/// back from etcd and parsed once), so this does not fail in practice; if it
/// does, the object reads as `null` and the failure is logged.
pub fn parse(json: &[u8]) -> Value {
    serde_json::from_slice(json).unwrap_or_else(|e| {
        tracing::error!(error = %e, "stored object is not valid JSON");
        Value::Null
    })
}

/// One stored object and the revision that last wrote it.
#[derive(Debug, Clone)]
pub struct KeyValue {
    pub key: Arc<str>,
    /// The object's JSON encoding, made once when it was written, with
    /// `metadata.resourceVersion` set to `mod_revision`; packed in the cache
    /// ([`KeyValue::cached`]).
    pub json: Json,
    /// The parsed object, when at hand: a write's result, or a kind the cache
    /// keeps parsed ([`keeps_parsed`]).
    parsed: Option<Arc<Value>>,
    pub mod_revision: Revision,
}

impl KeyValue {
    /// A stored object, encoding it once; it keeps its parsed form.
    pub fn new(key: Arc<str>, value: Arc<Value>, mod_revision: Revision) -> Self {
        let json = Json::from(serde_json::to_vec(value.as_ref()).unwrap_or_default());
        KeyValue {
            key,
            json,
            parsed: Some(value),
            mod_revision,
        }
    }

    /// The object, parsed from its JSON unless its parsed form is at hand.
    pub fn value(&self) -> Arc<Value> {
        match &self.parsed {
            Some(v) => v.clone(),
            None => Arc::new(parse(&self.json.bytes())),
        }
    }

    /// The parsed object, only if it is at hand.
    pub fn parsed(&self) -> Option<&Arc<Value>> {
        self.parsed.as_ref()
    }

    /// The parsed object of a kind the cache keeps parsed ([`keeps_parsed`],
    /// or every kind with [`KeepParsed::All`]), for readers that borrow from a
    /// snapshot (`null` for any other kind).
    pub fn kept(&self) -> &Value {
        debug_assert!(
            self.parsed.is_some(),
            "{} is not kept parsed (storage::KEPT_PARSED)",
            self.key
        );
        self.parsed.as_deref().unwrap_or(&Value::Null)
    }

    /// The form the cache keeps: without the parsed object, unless `keep`
    /// says it stays, and then with its JSON packed by its resource's packer
    /// (see [`crate::packed`]).
    pub fn cached(mut self, keep: KeepParsed, packers: &Packers) -> Self {
        if keep == KeepParsed::Listed && !keeps_parsed(&self.key) {
            self.parsed = None;
            if let Json::Plain(json) = &self.json {
                self.json = packers.for_key(&self.key).pack(json.clone());
            }
        }
        self
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
    /// The JSON of the new object; for `Deleted`, of the last state with the
    /// deletion's revision.
    pub json: Json,
    /// The new object parsed, when the cache keeps its kind parsed.
    parsed: Option<Arc<Value>>,
    /// The JSON of the object before this change (none for `Added`).
    pub prev: Option<Json>,
    /// The object before this change parsed, when the cache keeps its kind parsed.
    prev_parsed: Option<Arc<Value>>,
    pub revision: Revision,
}

impl Event {
    /// An event writing `object` (the cache's form of it) over `prev`.
    pub fn new(kind: EventKind, object: &KeyValue, prev: Option<&KeyValue>) -> Event {
        Event {
            kind,
            key: object.key.clone(),
            json: object.json.clone(),
            parsed: object.parsed.clone(),
            prev: prev.map(|p| p.json.clone()),
            prev_parsed: prev.and_then(|p| p.parsed.clone()),
            revision: object.mod_revision,
        }
    }

    /// A [`EventKind::Progress`] event at `revision`.
    pub fn progress(revision: Revision) -> Event {
        Event {
            kind: EventKind::Progress,
            key: Arc::from(""),
            json: Json::default(),
            parsed: None,
            prev: None,
            prev_parsed: None,
            revision,
        }
    }

    /// The new object (parsed from its JSON unless at hand).
    pub fn object(&self) -> Arc<Value> {
        match &self.parsed {
            Some(v) => v.clone(),
            None => Arc::new(parse(&self.json.bytes())),
        }
    }

    /// The parsed new object, only if it is at hand.
    pub fn parsed(&self) -> Option<&Arc<Value>> {
        self.parsed.as_ref()
    }

    /// The object before the change (parsed from its JSON unless at hand).
    pub fn prev_object(&self) -> Option<Arc<Value>> {
        match &self.prev_parsed {
            Some(v) => Some(v.clone()),
            None => self
                .prev
                .as_ref()
                .map(|json| Arc::new(parse(&json.bytes()))),
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
