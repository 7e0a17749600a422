//! [`Metered`]: any [`Storage`] with its writes timed into the server's
//! [`Metrics`](crate::metrics::Metrics). Reads come from in-memory snapshots
//! and are not timed.

use std::sync::Arc;
use std::time::Instant;

use futures::future::BoxFuture;
use futures::stream::BoxStream;
use serde_json::Value;

use super::{Event, KeyValue, Precondition, Result, Revision, Snapshot, Storage};
use crate::metrics::Metrics;

/// A storage whose create, update and delete calls are timed.
pub struct Metered {
    inner: Arc<dyn Storage>,
    metrics: Arc<Metrics>,
}

impl Metered {
    /// Wraps `inner`, recording into `metrics`.
    pub fn new(inner: Arc<dyn Storage>, metrics: Arc<Metrics>) -> Self {
        Metered { inner, metrics }
    }

    fn timed<'a>(
        &'a self,
        operation: &'static str,
        write: BoxFuture<'a, Result<KeyValue>>,
    ) -> BoxFuture<'a, Result<KeyValue>> {
        Box::pin(async move {
            let started = Instant::now();
            let out = write.await;
            self.metrics
                .storage_write(operation, out.is_ok(), started.elapsed());
            out
        })
    }
}

impl Storage for Metered {
    fn snapshot(&self) -> Snapshot {
        self.inner.snapshot()
    }

    fn current_revision(&self) -> Revision {
        self.inner.current_revision()
    }

    fn snapshot_at(&self, revision: Revision) -> Option<Snapshot> {
        self.inner.snapshot_at(revision)
    }

    fn retain_snapshot(&self, snapshot: &Snapshot) {
        self.inner.retain_snapshot(snapshot);
    }

    fn create(&self, key: String, value: Value) -> BoxFuture<'_, Result<KeyValue>> {
        self.timed("create", self.inner.create(key, value))
    }

    fn update(
        &self,
        key: String,
        value: Value,
        precondition: Precondition,
    ) -> BoxFuture<'_, Result<KeyValue>> {
        self.timed("update", self.inner.update(key, value, precondition))
    }

    fn delete(&self, key: String, precondition: Precondition) -> BoxFuture<'_, Result<KeyValue>> {
        self.timed("delete", self.inner.delete(key, precondition))
    }

    fn history(&self) -> super::cache::HistoryStats {
        self.inner.history()
    }

    fn watch_progress(
        &self,
        prefix: String,
        from: Revision,
    ) -> Result<BoxStream<'static, Result<Event>>> {
        self.inner.watch_progress(prefix, from)
    }

    fn watch(&self, prefix: String, from: Revision) -> Result<BoxStream<'static, Result<Event>>> {
        self.inner.watch(prefix, from)
    }

    fn sync(&self) -> BoxFuture<'_, Result<()>> {
        self.inner.sync()
    }

    fn past(
        &self,
        prefix: String,
        after: Option<String>,
        revision: Revision,
    ) -> BoxFuture<'_, Result<Option<Snapshot>>> {
        self.inner.past(prefix, after, revision)
    }
}
