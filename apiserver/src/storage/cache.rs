//! [`Cache`]: the in-memory view of the keyspace that every store serves reads and
//! watches from.
//!
//! It holds the current [`Snapshot`], a bounded window of recent events for watches
//! that resume from a past revision, and the past snapshots kept for continue
//! tokens. Its writer is whoever knows the truth: the embedded store's writer thread
//! ([`kv`](super::kv)) after each durable commit, or the etcd store's mirror task
//! ([`etcd`](super::etcd)) as etcd's watch reports changes.

use std::collections::VecDeque;
use std::num::NonZeroUsize;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use futures::stream::BoxStream;
use tokio::sync::watch;

use super::{Error, Event, Result, Revision, Snapshot};

struct History {
    events: VecDeque<Event>,
    /// Events at or below this revision may be missing from `events`.
    compacted_through: Revision,
    capacity: usize,
}

/// The published state; see the module docs.
pub struct Cache {
    state: RwLock<Snapshot>,
    history: RwLock<History>,
    snapshots: Mutex<lru::LruCache<Revision, Snapshot>>,
    notify: watch::Sender<Revision>,
}

impl Cache {
    /// A cache starting at `snapshot`, keeping `history` events and `snapshots` past
    /// snapshots. Watches from before `snapshot.revision` are compacted.
    pub fn new(snapshot: Snapshot, history: usize, snapshots: usize) -> Self {
        let revision = snapshot.revision;
        Cache {
            state: RwLock::new(snapshot),
            history: RwLock::new(History {
                events: VecDeque::new(),
                compacted_through: revision,
                capacity: history.max(1),
            }),
            snapshots: Mutex::new(lru::LruCache::new(
                NonZeroUsize::new(snapshots.max(1)).expect("max(1) is non-zero"),
            )),
            notify: watch::channel(revision).0,
        }
    }

    /// The current snapshot.
    pub fn snapshot(&self) -> Snapshot {
        self.state.read().expect("state lock").clone()
    }

    /// The current snapshot's revision.
    pub fn current_revision(&self) -> Revision {
        self.state.read().expect("state lock").revision
    }

    /// The oldest revision a watch may resume from.
    pub fn compacted_through(&self) -> Revision {
        self.history.read().expect("history lock").compacted_through
    }

    /// A retained past snapshot (or the current one) at `revision`.
    pub fn snapshot_at(&self, revision: Revision) -> Option<Snapshot> {
        let current = self.snapshot();
        if current.revision == revision {
            return Some(current);
        }
        self.snapshots
            .lock()
            .expect("snapshot lock")
            .get(&revision)
            .cloned()
    }

    /// Keeps `snapshot` for later [`Cache::snapshot_at`] calls.
    pub fn retain_snapshot(&self, snapshot: &Snapshot) {
        self.snapshots
            .lock()
            .expect("snapshot lock")
            .put(snapshot.revision, snapshot.clone());
    }

    /// Publishes a new state and the events (in revision order) that led to it.
    pub fn publish(&self, snapshot: Snapshot, events: Vec<Event>) {
        let revision = snapshot.revision;
        *self.state.write().expect("state lock") = snapshot;
        {
            let mut history = self.history.write().expect("history lock");
            history.events.extend(events);
            while history.events.len() > history.capacity {
                if let Some(old) = history.events.pop_front() {
                    history.compacted_through = old.revision;
                }
            }
        }
        self.notify.send_replace(revision);
    }

    /// Moves the current revision forward to `revision` with no change under this
    /// cache's keys (etcd reported progress made elsewhere in its keyspace).
    pub fn advance(&self, revision: Revision) {
        {
            let mut state = self.state.write().expect("state lock");
            if revision <= state.revision {
                return;
            }
            state.revision = revision;
        }
        self.notify.send_replace(revision);
    }

    /// Replaces everything with `snapshot` after events were lost (the source's
    /// history was compacted away): every watch from before it fails as compacted.
    pub fn reset(&self, snapshot: Snapshot) {
        let revision = snapshot.revision;
        *self.state.write().expect("state lock") = snapshot;
        {
            let mut history = self.history.write().expect("history lock");
            history.events.clear();
            history.compacted_through = revision;
        }
        self.notify.send_replace(revision);
    }

    /// Waits until the current revision is at least `revision`; false on timeout.
    pub async fn wait_for(&self, revision: Revision, timeout: Duration) -> bool {
        let mut seen = self.notify.subscribe();
        tokio::time::timeout(timeout, seen.wait_for(|r| *r >= revision))
            .await
            .is_ok_and(|r| r.is_ok())
    }

    /// Events under `prefix` after `from`, replayed from history and then live;
    /// `Compacted` when `from` is older than the kept window.
    pub fn watch(
        self: &Arc<Self>,
        prefix: String,
        from: Revision,
    ) -> Result<BoxStream<'static, Result<Event>>> {
        let mut state = WatchState {
            cache: self.clone(),
            prefix,
            cursor: from,
            notify: self.notify.subscribe(),
            buffer: VecDeque::new(),
            failed: false,
        };
        state.notify.borrow_and_update();
        if !state.refill() {
            return Err(Error::Compacted {
                requested: from,
                oldest: self.compacted_through(),
            });
        }
        let stream = futures::stream::unfold(state, |mut state| async move {
            if state.failed {
                return None;
            }
            loop {
                if let Some(event) = state.buffer.pop_front() {
                    return Some((Ok(event), state));
                }
                state.notify.borrow_and_update();
                if !state.refill() {
                    state.failed = true;
                    let oldest = state.cache.compacted_through();
                    let requested = state.cursor;
                    return Some((Err(Error::Compacted { requested, oldest }), state));
                }
                if state.buffer.is_empty() && state.notify.changed().await.is_err() {
                    return None;
                }
            }
        });
        Ok(Box::pin(stream))
    }
}

struct WatchState {
    cache: Arc<Cache>,
    prefix: String,
    cursor: Revision,
    notify: watch::Receiver<Revision>,
    buffer: VecDeque<Event>,
    failed: bool,
}

/// Events handed to a watcher per look at the history.
const WATCH_BATCH: usize = 1024;

impl WatchState {
    /// Moves the next events after `cursor` into `buffer`; false when compacted away.
    fn refill(&mut self) -> bool {
        let history = self.cache.history.read().expect("history lock");
        if self.cursor < history.compacted_through {
            return false;
        }
        let start = history
            .events
            .partition_point(|e| e.revision <= self.cursor);
        for event in history.events.range(start..).take(WATCH_BATCH) {
            self.cursor = event.revision;
            if event.key.starts_with(self.prefix.as_str()) {
                self.buffer.push_back(event.clone());
            }
        }
        true
    }
}
