//! [`Cache`]: the in-memory view of the keyspace that every store serves reads and
//! watches from.
//!
//! It holds the current [`Snapshot`], a bounded window of recent events for watches
//! that resume from a past revision, and the past snapshots kept for continue
//! tokens. The window is bounded twice: by a number of events and by an estimate
//! of the memory they hold (mostly their JSON), since the old
//! versions of objects live on in it after the store has moved on. Its writer is
//! whoever knows the truth: the embedded store's writer thread ([`kv`](super::kv))
//! after each durable commit, or the etcd store's mirror task
//! ([`etcd`](super::etcd)) as etcd's watch reports changes.

use std::collections::VecDeque;
use std::num::NonZeroUsize;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use futures::stream::BoxStream;
use tokio::sync::watch;

use super::{Error, Event, Result, Revision, Snapshot, heap_size};

/// How much recent history a [`Cache`] keeps for resuming watches.
#[derive(Debug, Clone, Copy)]
pub struct HistoryLimit {
    /// The most events kept.
    pub events: usize,
    /// The most memory the kept events may hold, estimated by [`event_bytes`].
    pub bytes: usize,
}

impl Default for HistoryLimit {
    /// 50,000 events and 2 MiB: most events hold only their JSON and the
    /// JSON before them, packed ([`crate::packed`]; about 1 KB for a Work
    /// and the Work before it), so at a few hundred writes a second, several
    /// seconds of history. A watch's bookmarks (and the last one before its
    /// timeout) carry the revision it has seen everything up to, so a client
    /// resumes from there; one that falls further behind lists again.
    fn default() -> Self {
        HistoryLimit {
            events: 50_000,
            bytes: 2 << 20,
        }
    }
}

/// The state of a [`Cache`]'s history, for metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct HistoryStats {
    pub events: usize,
    /// Estimated memory the events hold (see [`event_bytes`]).
    pub bytes: usize,
    /// Watches from this revision or later can resume.
    pub oldest: Revision,
}

/// The memory an event holds at most, estimated: its JSON and parsed object
/// (when kept), and those of the object before it (mostly shared with the
/// event before, but kept alive by this one once that event has left the
/// history).
pub fn event_bytes(event: &Event) -> usize {
    event.json.held()
        + event.parsed.as_deref().map_or(0, heap_size)
        + event.prev.as_ref().map_or(0, crate::packed::Json::held)
        + event.prev_parsed.as_deref().map_or(0, heap_size)
        + std::mem::size_of::<Event>()
}

struct History {
    /// Events in revision order, each with its [`event_bytes`].
    events: VecDeque<(Event, usize)>,
    /// Events at or below this revision may be missing from `events`.
    compacted_through: Revision,
    limit: HistoryLimit,
    bytes: usize,
}

/// The published state; see the module docs.
pub struct Cache {
    state: RwLock<Snapshot>,
    history: RwLock<History>,
    /// Past snapshots for continue tokens, with when each was kept.
    snapshots: Mutex<lru::LruCache<Revision, (Instant, Snapshot)>>,
    /// How long a past snapshot is kept ([`SNAPSHOT_TTL`]).
    snapshot_ttl: Duration,
    notify: watch::Sender<Revision>,
}

/// How long a past snapshot stays available to continue tokens. A snapshot
/// keeps alive the versions of every object changed since it was taken, so
/// it must not outlive its use: kube-apiserver's tokens last until etcd
/// compacts their revision, every 5 minutes. A token older than this reads
/// the past from the storage where it can (etcd), and is answered 410 Gone
/// otherwise.
pub const SNAPSHOT_TTL: Duration = Duration::from_secs(300);

impl Cache {
    /// A cache starting at `snapshot`, keeping the events `history` allows and
    /// `snapshots` past snapshots. Watches from before `snapshot.revision` are
    /// compacted.
    pub fn new(snapshot: Snapshot, history: HistoryLimit, snapshots: usize) -> Self {
        let revision = snapshot.revision;
        Cache {
            state: RwLock::new(snapshot),
            history: RwLock::new(History {
                events: VecDeque::new(),
                compacted_through: revision,
                limit: HistoryLimit {
                    events: history.events.max(1),
                    bytes: history.bytes,
                },
                bytes: 0,
            }),
            snapshots: Mutex::new(lru::LruCache::new(
                NonZeroUsize::new(snapshots.max(1)).expect("max(1) is non-zero"),
            )),
            snapshot_ttl: SNAPSHOT_TTL,
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

    /// How much history is kept now.
    pub fn history_stats(&self) -> HistoryStats {
        let history = self.history.read().expect("history lock");
        HistoryStats {
            events: history.events.len(),
            bytes: history.bytes,
            oldest: history.compacted_through,
        }
    }

    /// A retained past snapshot (or the current one) at `revision`, if it
    /// was last retained less than [`SNAPSHOT_TTL`] ago.
    pub fn snapshot_at(&self, revision: Revision) -> Option<Snapshot> {
        let current = self.snapshot();
        if current.revision == revision {
            return Some(current);
        }
        let mut kept = self.snapshots.lock().expect("snapshot lock");
        self.expire(&mut kept);
        match kept.get(&revision) {
            Some((at, _)) if at.elapsed() > self.snapshot_ttl => {
                kept.pop(&revision);
                None
            }
            found => found.map(|(_, s)| s.clone()),
        }
    }

    /// Keeps `snapshot` for later [`Cache::snapshot_at`] calls, for
    /// [`SNAPSHOT_TTL`] from now (each page of a list retains its snapshot
    /// again, so a list being paged through keeps it).
    pub fn retain_snapshot(&self, snapshot: &Snapshot) {
        let mut kept = self.snapshots.lock().expect("snapshot lock");
        self.expire(&mut kept);
        kept.put(snapshot.revision, (Instant::now(), snapshot.clone()));
    }

    /// Drops expired snapshots from the least recently used end (one read
    /// again since is dropped when next asked for).
    fn expire(&self, kept: &mut lru::LruCache<Revision, (Instant, Snapshot)>) {
        while kept
            .peek_lru()
            .is_some_and(|(_, (at, _))| at.elapsed() > self.snapshot_ttl)
        {
            kept.pop_lru();
        }
    }

    /// Publishes a new state and the events (in revision order) that led to it.
    ///
    /// The oldest events leave the history while it holds more than its limits
    /// allow (the newest event always stays).
    pub fn publish(&self, snapshot: Snapshot, events: Vec<Event>) {
        let revision = snapshot.revision;
        let sized: Vec<(Event, usize)> = events
            .into_iter()
            .map(|e| {
                let bytes = event_bytes(&e);
                (e, bytes)
            })
            .collect();
        *self.state.write().expect("state lock") = snapshot;
        {
            let mut history = self.history.write().expect("history lock");
            for (event, bytes) in sized {
                history.bytes += bytes;
                history.events.push_back((event, bytes));
            }
            while history.events.len() > history.limit.events
                || (history.bytes > history.limit.bytes && history.events.len() > 1)
            {
                let Some((old, bytes)) = history.events.pop_front() else {
                    break;
                };
                history.bytes -= bytes;
                history.compacted_through = old.revision;
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
            history.bytes = 0;
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
        self.watch_with(prefix, from, false)
    }

    /// As [`Cache::watch`], with a [`EventKind::Progress`] event whenever the
    /// watch has caught up with the store past the last event it delivered.
    pub fn watch_progress(
        self: &Arc<Self>,
        prefix: String,
        from: Revision,
    ) -> Result<BoxStream<'static, Result<Event>>> {
        self.watch_with(prefix, from, true)
    }

    fn watch_with(
        self: &Arc<Self>,
        prefix: String,
        from: Revision,
        progress: bool,
    ) -> Result<BoxStream<'static, Result<Event>>> {
        let mut state = WatchState {
            cache: self.clone(),
            prefix,
            cursor: from,
            reported: progress.then_some(from),
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
                    state.delivered(event.revision);
                    return Some((Ok(event), state));
                }
                state.notify.borrow_and_update();
                if !state.refill() {
                    state.failed = true;
                    let oldest = state.cache.compacted_through();
                    let requested = state.cursor;
                    return Some((Err(Error::Compacted { requested, oldest }), state));
                }
                if state.buffer.is_empty() {
                    if let Some(progress) = state.progress() {
                        return Some((Ok(progress), state));
                    }
                    if state.notify.changed().await.is_err() {
                        return None;
                    }
                }
            }
        });
        Ok(Box::pin(stream))
    }
}

struct WatchState {
    cache: Arc<Cache>,
    prefix: String,
    /// Every event up to here has been looked at.
    cursor: Revision,
    /// The revision the watcher knows it has seen everything up to, when it
    /// wants progress reported.
    reported: Option<Revision>,
    notify: watch::Receiver<Revision>,
    buffer: VecDeque<Event>,
    failed: bool,
}

/// Events handed to a watcher per look at the history.
const WATCH_BATCH: usize = 1024;

impl WatchState {
    /// Notes that an event at `revision` reached the watcher.
    fn delivered(&mut self, revision: Revision) {
        if let Some(reported) = &mut self.reported {
            *reported = revision;
        }
    }

    /// A progress event, when progress is reported and the cursor has moved
    /// past what the watcher knows.
    fn progress(&mut self) -> Option<Event> {
        let reported = self.reported.as_mut()?;
        if self.cursor <= *reported {
            return None;
        }
        *reported = self.cursor;
        Some(Event::progress(self.cursor))
    }

    /// Moves the next events after `cursor` into `buffer`; false when compacted away.
    fn refill(&mut self) -> bool {
        let history = self.cache.history.read().expect("history lock");
        if self.cursor < history.compacted_through {
            return false;
        }
        let start = history
            .events
            .partition_point(|(e, _)| e.revision <= self.cursor);
        for (event, _) in history.events.range(start..).take(WATCH_BATCH) {
            self.cursor = event.revision;
            if event.key.starts_with(self.prefix.as_str()) {
                self.buffer.push_back(event.clone());
            }
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use futures::StreamExt;
    use serde_json::json;

    use super::*;
    use crate::storage::{EventKind, KeyValue};

    /// An event writing `key` at `revision` with a 1 KiB payload.
    fn event(key: &str, revision: Revision) -> Event {
        let value = json!({"metadata": {"name": key}, "data": "x".repeat(1024)});
        let kv = KeyValue::new(key.into(), Arc::new(value), revision)
            .cached(Default::default(), &Default::default());
        Event::new(EventKind::Added, &kv, None)
    }

    fn publish(cache: &Cache, revision: Revision) {
        let mut snapshot = cache.snapshot();
        snapshot.revision = revision;
        cache.publish(snapshot, vec![event(&format!("/k/{revision}"), revision)]);
    }

    #[tokio::test]
    async fn history_keeps_what_its_memory_limit_allows() {
        let one = event_bytes(&event("/k/1", 1));
        let limit = HistoryLimit {
            events: 100,
            bytes: 3 * one + one / 2,
        };
        let cache = Arc::new(Cache::new(Snapshot::empty(), limit, 4));
        for revision in 1..=5 {
            publish(&cache, revision);
        }
        let stats = cache.history_stats();
        assert_eq!((stats.events, stats.oldest), (3, 2), "{stats:?}");
        assert_eq!(stats.bytes, 3 * one);
        assert!(matches!(
            cache.watch("/k/".into(), 1),
            Err(Error::Compacted {
                requested: 1,
                oldest: 2
            })
        ));
        let resumed: Vec<Revision> = cache
            .watch("/k/".into(), 2)
            .expect("within the window")
            .take(3)
            .map(|e| e.expect("event").revision)
            .collect()
            .await;
        assert_eq!(resumed, [3, 4, 5]);
    }

    #[test]
    fn the_newest_event_stays_when_it_alone_is_over_the_limit() {
        let limit = HistoryLimit {
            events: 100,
            bytes: 10,
        };
        let cache = Cache::new(Snapshot::empty(), limit, 4);
        publish(&cache, 1);
        publish(&cache, 2);
        let stats = cache.history_stats();
        assert_eq!((stats.events, stats.oldest), (1, 1), "{stats:?}");
    }

    /// A past snapshot serves continue tokens for its TTL after it was last
    /// retained, then is let go (and with it the old versions it kept).
    #[test]
    fn past_snapshots_are_kept_for_their_ttl() {
        let mut cache = Cache::new(Snapshot::empty(), HistoryLimit::default(), 4);
        cache.snapshot_ttl = Duration::from_millis(1000);
        let at = |revision| Snapshot {
            map: Default::default(),
            revision,
        };
        cache.retain_snapshot(&at(1));
        cache.retain_snapshot(&at(2));
        assert!(cache.snapshot_at(1).is_some());
        std::thread::sleep(Duration::from_millis(600));
        // the next page of the list at 2 retains it again
        cache.retain_snapshot(&at(2));
        std::thread::sleep(Duration::from_millis(600));
        assert!(cache.snapshot_at(1).is_none(), "kept past its TTL");
        assert!(cache.snapshot_at(2).is_some(), "retained again 600 ms ago");
        std::thread::sleep(Duration::from_millis(1100));
        assert!(cache.snapshot_at(2).is_none());
        assert_eq!(cache.snapshots.lock().expect("lock").len(), 0);
    }
}
