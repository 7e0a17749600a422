//! [`KvStore`]: the in-memory, revisioned keyspace shared by every backend.
//!
//! All writes go through one writer thread. It takes every write waiting in its
//! queue (group commit), checks each against the state left by the ones before it,
//! stamps revisions, hands the whole batch to the [`Backend`] in one durable commit,
//! and only then publishes the new snapshot and events and answers the callers.
//! So an acknowledged write is on disk, and a reader that follows an acknowledgement
//! always sees it.

use std::sync::{Arc, mpsc};

use futures::future::BoxFuture;
use futures::stream::BoxStream;
use serde_json::Value;
use tokio::sync::oneshot;

use super::cache::{Cache, HistoryLimit};
use super::{
    Error, Event, EventKind, KeepParsed, KeyValue, Precondition, Result, Revision, Snapshot,
    Storage,
};
use crate::packed::Packers;

/// A change handed to a backend for durable commit.
#[derive(Debug)]
pub enum Change {
    /// A new or changed object, as its JSON encoding.
    Put {
        key: Arc<str>,
        json: bytes::Bytes,
    },
    Delete {
        key: Arc<str>,
    },
}

/// Where a [`KvStore`] keeps its data durably.
pub trait Backend: Send + 'static {
    /// Every stored key and object (with `metadata.resourceVersion` set), and the
    /// last revision.
    fn load(&mut self) -> Result<(Vec<(String, Value)>, Revision)>;
    /// Makes a batch of changes durable, all or nothing, recording `revision` as the latest.
    fn commit(&mut self, changes: &[Change], revision: Revision) -> Result<()>;
}

/// Tunables of a [`KvStore`].
#[derive(Debug, Clone)]
pub struct Config {
    /// How many recent events are kept for watches resuming from a past revision.
    pub history: HistoryLimit,
    /// How many past snapshots are kept for continue tokens.
    pub snapshots: usize,
    /// The most writes committed together.
    pub max_batch: usize,
    /// Which objects the cache keeps parsed besides their JSON.
    pub keep_parsed: KeepParsed,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            history: HistoryLimit::default(),
            snapshots: 64,
            max_batch: 4096,
            keep_parsed: KeepParsed::default(),
        }
    }
}

impl Config {
    pub fn history(mut self, limit: HistoryLimit) -> Self {
        self.history = limit;
        self
    }
}

enum Op {
    Create(Value),
    Update(Value, Precondition),
    Delete(Precondition),
}

struct Request {
    key: String,
    op: Op,
    reply: oneshot::Sender<Result<KeyValue>>,
}

/// The revisioned store over a backend; see the module docs.
pub struct KvStore {
    shared: Arc<Cache>,
    writer: mpsc::Sender<Request>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Drop for KvStore {
    /// Stops the writer thread once the queued writes are done, closing the backend.
    fn drop(&mut self) {
        let (closed, _) = mpsc::channel();
        drop(std::mem::replace(&mut self.writer, closed));
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl KvStore {
    /// Loads everything from `backend` and starts the writer thread.
    pub fn open<B: Backend>(mut backend: B, config: Config) -> Result<Self> {
        let (objects, revision) = backend.load()?;
        let mut map = imbl::OrdMap::new();
        let packers = Packers::default();
        for (key, object) in objects {
            let mod_revision = resource_version(&object).unwrap_or(0);
            let key: Arc<str> = Arc::from(key);
            map.insert(
                key.clone(),
                KeyValue::new(key, Arc::new(object), mod_revision)
                    .cached(config.keep_parsed, &packers),
            );
        }
        let snapshot = Snapshot { map, revision };
        let shared = Arc::new(Cache::new(snapshot, config.history, config.snapshots));
        let (writer, requests) = mpsc::channel();
        let thread_shared = shared.clone();
        let max_batch = config.max_batch.max(1);
        let keep = config.keep_parsed;
        let thread = std::thread::Builder::new()
            .name("storage-writer".into())
            .spawn(move || write_loop(backend, thread_shared, requests, max_batch, (keep, packers)))
            .map_err(|e| Error::Backend(Box::new(e)))?;
        Ok(KvStore {
            shared,
            writer,
            thread: Some(thread),
        })
    }

    fn submit(&self, key: String, op: Op) -> BoxFuture<'_, Result<KeyValue>> {
        let (reply, answer) = oneshot::channel();
        let sent = self.writer.send(Request { key, op, reply });
        Box::pin(async move {
            sent.map_err(|_| Error::Unavailable("storage writer has stopped".into()))?;
            answer
                .await
                .map_err(|_| Error::Unavailable("storage writer has stopped".into()))?
        })
    }
}

/// Parses `metadata.resourceVersion`.
pub fn resource_version(object: &Value) -> Option<Revision> {
    object
        .pointer("/metadata/resourceVersion")
        .and_then(Value::as_str)
        .and_then(|s| s.parse().ok())
}

/// Sets `metadata.resourceVersion` to `revision`.
pub(crate) fn stamp(value: &mut Value, revision: Revision) {
    if let Some(meta) = value.get_mut("metadata").and_then(Value::as_object_mut) {
        meta.insert(
            "resourceVersion".into(),
            Value::String(revision.to_string()),
        );
    }
}

fn write_loop<B: Backend>(
    mut backend: B,
    shared: Arc<Cache>,
    requests: mpsc::Receiver<Request>,
    max_batch: usize,
    (keep, packers): (KeepParsed, Packers),
) {
    while let Ok(first) = requests.recv() {
        let mut batch = vec![first];
        while batch.len() < max_batch {
            match requests.try_recv() {
                Ok(r) => batch.push(r),
                Err(_) => break,
            }
        }
        let base = shared.snapshot();
        let mut map = base.map.clone();
        let mut revision = base.revision;
        let mut changes = Vec::new();
        let mut events = Vec::new();
        let mut replies = Vec::with_capacity(batch.len());
        for Request { key, op, reply } in batch {
            let outcome = apply(
                &mut map,
                &mut revision,
                (key, op),
                (keep, &packers),
                &mut changes,
                &mut events,
            );
            replies.push((reply, outcome));
        }
        if !changes.is_empty() {
            if let Err(e) = backend.commit(&changes, revision) {
                let message = e.to_string();
                tracing::error!(error = %message, "storage commit failed");
                for (reply, outcome) in replies {
                    let answer = match outcome {
                        Ok(_) => Err(Error::Unavailable(message.clone())),
                        Err(e) => Err(e),
                    };
                    let _ = reply.send(answer);
                }
                continue;
            }
            shared.publish(Snapshot { map, revision }, events);
        }
        for (reply, outcome) in replies {
            let _ = reply.send(outcome);
        }
    }
}

fn apply(
    map: &mut imbl::OrdMap<Arc<str>, KeyValue>,
    revision: &mut Revision,
    (key, op): (String, Op),
    (keep, packers): (KeepParsed, &Packers),
    changes: &mut Vec<Change>,
    events: &mut Vec<Event>,
) -> Result<KeyValue> {
    let key: Arc<str> = Arc::from(key);
    let current = map.get(&key).cloned();
    let check = |precondition: &Precondition, current: &KeyValue| match precondition.revision {
        Some(expected) if expected != current.mod_revision => Err(Error::Conflict {
            key: key.to_string(),
            expected,
            actual: current.mod_revision,
        }),
        _ => Ok(()),
    };
    let (kind, mut value) = match op {
        Op::Create(value) => {
            if current.is_some() {
                return Err(Error::AlreadyExists {
                    key: key.to_string(),
                });
            }
            (EventKind::Added, value)
        }
        Op::Update(value, precondition) => {
            let Some(current) = &current else {
                return Err(Error::NotFound {
                    key: key.to_string(),
                });
            };
            check(&precondition, current)?;
            (EventKind::Modified, value)
        }
        Op::Delete(precondition) => {
            let Some(current) = &current else {
                return Err(Error::NotFound {
                    key: key.to_string(),
                });
            };
            check(&precondition, current)?;
            (EventKind::Deleted, Arc::unwrap_or_clone(current.value()))
        }
    };
    *revision += 1;
    stamp(&mut value, *revision);
    let kv = KeyValue::new(key.clone(), Arc::new(value), *revision);
    let cached = kv.clone().cached(keep, packers);
    if kind == EventKind::Deleted {
        map.remove(&key);
        changes.push(Change::Delete { key: key.clone() });
    } else {
        map.insert(key.clone(), cached.clone());
        changes.push(Change::Put {
            key: key.clone(),
            json: kv.json.bytes(),
        });
    }
    events.push(Event::new(kind, &cached, current.as_ref()));
    Ok(kv)
}

impl Storage for KvStore {
    fn snapshot(&self) -> Snapshot {
        self.shared.snapshot()
    }

    fn current_revision(&self) -> Revision {
        self.shared.current_revision()
    }

    fn snapshot_at(&self, revision: Revision) -> Option<Snapshot> {
        self.shared.snapshot_at(revision)
    }

    fn retain_snapshot(&self, snapshot: &Snapshot) {
        self.shared.retain_snapshot(snapshot);
    }

    fn create(&self, key: String, value: Value) -> BoxFuture<'_, Result<KeyValue>> {
        self.submit(key, Op::Create(value))
    }

    fn update(
        &self,
        key: String,
        value: Value,
        precondition: Precondition,
    ) -> BoxFuture<'_, Result<KeyValue>> {
        self.submit(key, Op::Update(value, precondition))
    }

    fn delete(&self, key: String, precondition: Precondition) -> BoxFuture<'_, Result<KeyValue>> {
        self.submit(key, Op::Delete(precondition))
    }

    fn history(&self) -> super::cache::HistoryStats {
        self.shared.history_stats()
    }

    fn watch_progress(
        &self,
        prefix: String,
        from: Revision,
    ) -> Result<BoxStream<'static, Result<Event>>> {
        self.shared.watch_progress(prefix, from)
    }

    fn watch(&self, prefix: String, from: Revision) -> Result<BoxStream<'static, Result<Event>>> {
        self.shared.watch(prefix, from)
    }
}
