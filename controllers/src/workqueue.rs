//! controller-runtime's `workqueue_*` families for controllers built on
//! kube-rs's [`Controller`].
//!
//! kube-rs keeps its queue (the scheduler between the trigger streams and
//! the reconciles) private, so a [`Queue`] follows every object key through
//! the places where the controller is built here:
//!
//! - a key is **added** when a trigger for it enters the controller: the
//!   main watch ([`Queue::controller`], [`Queue::objects`]), a mapper of a
//!   related watch ([`Queue::mapper`]) or an explicit trigger
//!   ([`Queue::refs`]). A trigger for a key already waiting is not a second
//!   add: kube-rs's scheduler merges it, as client-go's workqueue does;
//! - a key is **taken** when its reconcile starts ([`Queue::run`]), or when
//!   the controller drops it because the object is not in its cache (gone,
//!   or not seen yet by the controller's own watch);
//! - an `Action::requeue(d)` puts the key back **d later**: it counts as an
//!   add (and in the depth) from that instant on, unless a trigger came
//!   first. Requeues asked by the error policy also count as retries.
//!
//! Every request kube-rs schedules goes through one of those paths, so the
//! counts are exact, not sampled. (kube-rs keeps an `Action`'s delay
//! private too; [`requeue_after`] reads it from its `Debug` text, and a unit
//! test pins that format.) Depth, `unfinished_work_seconds` and
//! `longest_running_processor_seconds` are brought up to date when the
//! registry is scraped.
//!
//! The families, labelled `name` and `controller` (both the controller's
//! `--controllers` name, as controller-runtime labels them):
//! `workqueue_depth`, `workqueue_adds_total`,
//! `workqueue_queue_duration_seconds`, `workqueue_work_duration_seconds`,
//! `workqueue_retries_total`, `workqueue_unfinished_work_seconds` and
//! `workqueue_longest_running_processor_seconds`.
//!
//! ```no_run
//! # use std::sync::Arc;
//! # use futures::StreamExt;
//! # use k8s_openapi::api::core::v1::ConfigMap;
//! # use kube::runtime::{controller::Action, watcher};
//! # async fn reconcile(_: Arc<ConfigMap>, _: Arc<()>) -> Result<Action, kube::Error> { Ok(Action::await_change()) }
//! # fn error_policy(_: Arc<ConfigMap>, _: &kube::Error, _: Arc<()>) -> Action { Action::await_change() }
//! # async fn doc(client: kube::Client) {
//! use flotilla_controllers::workqueue::Queue;
//! let queue = Queue::new("example");
//! let controller = queue.controller(kube::Api::<ConfigMap>::all(client), watcher::Config::default());
//! queue
//!     .run(controller, reconcile, error_policy, Arc::new(()))
//!     .for_each(|_| async {})
//!     .await;
//! # }
//! ```

use std::collections::{HashMap, HashSet};
use std::fmt::Debug;
use std::future::Future;
use std::hash::Hash;
use std::sync::{Arc, LazyLock, Mutex, MutexGuard, Weak};
use std::time::{Duration, Instant};

use futures::{Stream, StreamExt};
use kube::runtime::controller::{self, Action};
use kube::runtime::reflector::{self, Lookup, ObjectRef};
use kube::runtime::{Controller, WatchStreamExt, watcher};
use kube::{Api, Resource};
use prometheus::core::{Collector, Desc};
use prometheus::proto::MetricFamily;
use prometheus::{
    GaugeVec, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge,
    IntGaugeVec, Opts,
};
use serde::de::DeserializeOwned;

use crate::metrics;

/// The labels of every family: the controller's name, twice.
const LABELS: &[&str] = &["name", "controller"];

struct Families {
    depth: IntGaugeVec,
    adds: IntCounterVec,
    queue_duration: HistogramVec,
    work_duration: HistogramVec,
    unfinished: GaugeVec,
    longest: GaugeVec,
    retries: IntCounterVec,
}

/// controller-runtime's buckets for both histograms: 10 ns to 1000 s, ×10.
const BUCKETS: &[f64] = &[
    1e-8, 1e-7, 1e-6, 1e-5, 1e-4, 1e-3, 1e-2, 1e-1, 1.0, 10.0, 100.0, 1000.0,
];

static FAMILIES: LazyLock<Families> = LazyLock::new(|| {
    let histogram = |name: &str, help: &str| {
        HistogramVec::new(
            HistogramOpts::new(name, help).buckets(BUCKETS.to_vec()),
            LABELS,
        )
        .expect("valid metric definition")
    };
    Families {
        depth: IntGaugeVec::new(
            Opts::new("workqueue_depth", "Current depth of workqueue."),
            LABELS,
        )
        .expect("valid metric definition"),
        adds: IntCounterVec::new(
            Opts::new(
                "workqueue_adds_total",
                "Total number of adds handled by workqueue.",
            ),
            LABELS,
        )
        .expect("valid metric definition"),
        queue_duration: histogram(
            "workqueue_queue_duration_seconds",
            "How long in seconds an item stays in workqueue before being requested.",
        ),
        work_duration: histogram(
            "workqueue_work_duration_seconds",
            "How long in seconds processing an item from workqueue takes.",
        ),
        unfinished: GaugeVec::new(
            Opts::new(
                "workqueue_unfinished_work_seconds",
                "How many seconds of work has been done that is in progress and hasn't been \
                 observed by work_duration. Large values indicate stuck reconciles.",
            ),
            LABELS,
        )
        .expect("valid metric definition"),
        longest: GaugeVec::new(
            Opts::new(
                "workqueue_longest_running_processor_seconds",
                "How many seconds has the longest running processor for workqueue been running.",
            ),
            LABELS,
        )
        .expect("valid metric definition"),
        retries: IntCounterVec::new(
            Opts::new(
                "workqueue_retries_total",
                "Total number of retries handled by workqueue.",
            ),
            LABELS,
        )
        .expect("valid metric definition"),
    }
});

/// The live queues, for the scrape-time refresh, and every name seen.
#[derive(Default)]
struct Live {
    queues: Vec<Weak<Tracker>>,
    names: HashSet<&'static str>,
}

static LIVE: LazyLock<Mutex<Live>> = LazyLock::new(Mutex::default);

/// Registers the families in [`metrics::registry`] once, behind a collector
/// that brings the time-dependent values up to date before each scrape.
static REGISTERED: LazyLock<()> = LazyLock::new(|| {
    LazyLock::force(&FAMILIES);
    metrics::register(Refresh);
});

#[derive(Clone)]
struct Refresh;

impl Collector for Refresh {
    fn desc(&self) -> Vec<&Desc> {
        let f = &*FAMILIES;
        let mut d = f.depth.desc();
        d.extend(f.adds.desc());
        d.extend(f.queue_duration.desc());
        d.extend(f.work_duration.desc());
        d.extend(f.unfinished.desc());
        d.extend(f.longest.desc());
        d.extend(f.retries.desc());
        d
    }

    fn collect(&self) -> Vec<MetricFamily> {
        refresh(Instant::now());
        let f = &*FAMILIES;
        let mut out = f.depth.collect();
        out.extend(f.adds.collect());
        out.extend(f.queue_duration.collect());
        out.extend(f.work_duration.collect());
        out.extend(f.unfinished.collect());
        out.extend(f.longest.collect());
        out.extend(f.retries.collect());
        out
    }
}

/// Promotes requeues that came due and sets the in-progress gauges of
/// every controller (0 for one with no live queue).
fn refresh(now: Instant) {
    let mut live = lock(&LIVE);
    live.queues.retain(|q| q.strong_count() > 0);
    let mut progress: HashMap<&'static str, (f64, f64)> = HashMap::new();
    for tracker in live.queues.iter().filter_map(Weak::upgrade) {
        let (sum, longest) = lock(&tracker.state).refresh(now, &tracker.m);
        let p = progress.entry(tracker.name).or_default();
        p.0 += sum;
        p.1 = p.1.max(longest);
    }
    let f = &*FAMILIES;
    for name in &live.names {
        let (sum, longest) = progress.get(name).copied().unwrap_or_default();
        f.unfinished.with_label_values(&[name, name]).set(sum);
        f.longest.with_label_values(&[name, name]).set(longest);
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// (namespace, name) of an object in one controller's cache.
type Key = (Option<String>, String);

fn key_of_obj<K: Resource>(obj: &K) -> Key {
    let meta = obj.meta();
    (
        meta.namespace.clone(),
        meta.name.clone().unwrap_or_default(),
    )
}

fn key_of_ref<K: Lookup + ?Sized>(r: &ObjectRef<K>) -> Key {
    (r.namespace.clone(), r.name.clone())
}

/// One controller's series.
struct Children {
    depth: IntGauge,
    adds: IntCounter,
    queue_duration: Histogram,
    work_duration: Histogram,
    retries: IntCounter,
}

impl Children {
    fn of(name: &str) -> Self {
        let f = &*FAMILIES;
        let l = [name, name];
        // every series exists (at 0) from the controller's start
        f.unfinished.with_label_values(&l);
        f.longest.with_label_values(&l);
        Children {
            depth: f.depth.with_label_values(&l),
            adds: f.adds.with_label_values(&l),
            queue_duration: f.queue_duration.with_label_values(&l),
            work_duration: f.work_duration.with_label_values(&l),
            retries: f.retries.with_label_values(&l),
        }
    }
}

/// Where one key is. A key is in the map only while one field is set.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Entry {
    /// Waiting to be reconciled, since then (counted in the depth).
    queued: Option<Instant>,
    /// Requeued by an `Action`: waiting for that instant, not yet counted.
    requeued: Option<Instant>,
    /// Being reconciled, since then.
    processing: Option<Instant>,
}

impl Entry {
    fn is_empty(&self) -> bool {
        *self == Entry::default()
    }

    /// A requeue due by `now` becomes an add at its due time.
    fn promote(&mut self, now: Instant, m: &Children) {
        if let Some(due) = self.requeued
            && due <= now
        {
            self.requeued = None;
            if self.queued.is_none() {
                self.queued = Some(due);
                m.adds.inc();
                m.depth.inc();
            }
        }
    }
}

/// The keys of one queue and what happened to them.
#[derive(Default)]
struct State {
    entries: HashMap<Key, Entry>,
}

impl State {
    fn tidy(&mut self, key: &Key) {
        if self.entries.get(key).is_some_and(Entry::is_empty) {
            self.entries.remove(key);
        }
    }

    /// A trigger for `key` entered the controller.
    fn add(&mut self, key: Key, now: Instant, m: &Children) {
        let e = self.entries.entry(key).or_default();
        e.promote(now, m);
        if e.queued.is_none() {
            // a trigger overtakes a later requeue: the scheduler keeps the earlier time
            e.requeued = None;
            e.queued = Some(now);
            m.adds.inc();
            m.depth.inc();
        }
    }

    /// Leaves the queue (its reconcile starts, or the controller drops it);
    /// answers whether it was waiting.
    fn take(&mut self, key: &Key, now: Instant, m: &Children) -> Option<Instant> {
        let e = self.entries.get_mut(key)?;
        // the scheduler releases a requeue only once it is due
        if let Some(due) = e.requeued {
            e.requeued = Some(due.min(now));
        }
        e.promote(now, m);
        let since = e.queued.take()?;
        m.depth.dec();
        m.queue_duration
            .observe(now.saturating_duration_since(since).as_secs_f64());
        Some(since)
    }

    /// The reconcile of `key` starts.
    fn start(&mut self, key: Key, now: Instant, m: &Children) {
        if self.take(&key, now, m).is_none() {
            // no trigger seen for it (none is expected): an add taken at once
            m.adds.inc();
            m.queue_duration.observe(0.0);
        }
        self.entries.entry(key).or_default().processing = Some(now);
    }

    /// The reconcile of `key` ended.
    fn finish(&mut self, key: &Key, now: Instant, m: &Children) {
        if let Some(started) = self.entries.get_mut(key).and_then(|e| e.processing.take()) {
            m.work_duration
                .observe(now.saturating_duration_since(started).as_secs_f64());
        }
        self.tidy(key);
    }

    /// The controller dropped `key` without reconciling it (its object left
    /// the cache).
    fn drop_key(&mut self, key: &Key, now: Instant, m: &Children) {
        self.take(key, now, m);
        self.tidy(key);
    }

    /// An `Action` asked to look at `key` again `after` from now (`None`:
    /// after an unknown time); `retry` when the error policy asked.
    fn requeue(
        &mut self,
        key: Key,
        now: Instant,
        after: Option<Duration>,
        retry: bool,
        m: &Children,
    ) {
        if retry {
            m.retries.inc();
        }
        let e = self.entries.entry(key.clone()).or_default();
        if e.queued.is_none() {
            // an unknown delay is promoted when the reconcile starts
            let due = after
                .and_then(|d| now.checked_add(d))
                .unwrap_or_else(|| now + Duration::from_secs(100 * 365 * 24 * 3600));
            e.requeued = Some(e.requeued.map_or(due, |d| d.min(due)));
        }
        self.tidy(&key);
    }

    /// Promotes due requeues; answers the seconds of work in progress and
    /// the longest of them.
    fn refresh(&mut self, now: Instant, m: &Children) -> (f64, f64) {
        let (mut sum, mut longest) = (0.0, 0.0_f64);
        for e in self.entries.values_mut() {
            e.promote(now, m);
            if let Some(started) = e.processing {
                let s = now.saturating_duration_since(started).as_secs_f64();
                sum += s;
                longest = longest.max(s);
            }
        }
        (sum, longest)
    }

    fn depth(&self) -> usize {
        self.entries.values().filter(|e| e.queued.is_some()).count()
    }
}

struct Tracker {
    name: &'static str,
    state: Mutex<State>,
    m: Children,
}

impl Drop for Tracker {
    fn drop(&mut self) {
        // a stopped controller's waiting keys leave the depth with it
        let waiting = lock(&self.state).depth();
        self.m.depth.sub(waiting as i64);
    }
}

/// The queue of one controller instance (several instances may share a
/// name: both binding kinds, the detector's kinds); see the module docs.
#[derive(Clone)]
pub struct Queue {
    tracker: Arc<Tracker>,
}

impl Queue {
    /// A queue counted under `name` (the controller's `--controllers` name).
    pub fn new(name: &'static str) -> Self {
        LazyLock::force(&REGISTERED);
        let tracker = Arc::new(Tracker {
            name,
            state: Mutex::default(),
            m: Children::of(name),
        });
        let mut live = lock(&LIVE);
        live.names.insert(name);
        // queues of stopped controllers (a lost leadership) go here too
        live.queues.retain(|q| q.strong_count() > 0);
        live.queues.push(Arc::downgrade(&tracker));
        Queue { tracker }
    }

    /// The controller's name.
    pub fn name(&self) -> &'static str {
        self.tracker.name
    }

    fn with_state(&self, f: impl FnOnce(&mut State, &Children)) {
        f(&mut lock(&self.tracker.state), &self.tracker.m);
    }

    fn add(&self, key: Key) {
        self.with_state(|s, m| s.add(key, Instant::now(), m));
    }

    /// For a loop that is not a kube-rs `Controller`: `key` was triggered.
    pub fn trigger(&self, key: &str) {
        self.add((None, key.to_string()));
    }

    /// For a loop that is not a kube-rs `Controller`: the work on `key`
    /// starts now.
    pub fn start(&self, key: &str) {
        self.with_state(|s, m| s.start((None, key.to_string()), Instant::now(), m));
    }

    /// For a loop that is not a kube-rs `Controller`: the work on `key`
    /// ended now; `retry` when it failed and will be tried again (the loop
    /// calls [`Queue::trigger`] when it does).
    pub fn finish(&self, key: &str, retry: bool) {
        self.with_state(|s, m| {
            s.finish(&(None, key.to_string()), Instant::now(), m);
            if retry {
                m.retries.inc();
            }
        });
    }

    /// `Controller::new(api, wc)` with its triggers counted.
    pub fn controller<K>(&self, api: Api<K>, wc: watcher::Config) -> Controller<K>
    where
        K: Resource<DynamicType = ()> + Clone + Debug + DeserializeOwned + Send + Sync + 'static,
    {
        let (store, writer) = reflector::store();
        let stream = reflector::reflector(writer, watcher(api, wc)).applied_objects();
        Controller::for_stream(self.objects(stream), store)
    }

    /// A stream of changed objects (`Controller::for_stream`'s trigger),
    /// each counted as a trigger for itself.
    pub fn objects<K, E, S>(
        &self,
        stream: S,
    ) -> impl Stream<Item = Result<K, E>> + Send + 'static + use<K, E, S>
    where
        K: Resource + 'static,
        E: 'static,
        S: Stream<Item = Result<K, E>> + Send + 'static,
    {
        let q = self.clone();
        stream.inspect(move |item| {
            if let Ok(obj) = item {
                q.add(key_of_obj(obj));
            }
        })
    }

    /// A stream of changed objects from a shared cache
    /// (`Controller::for_shared_stream`'s trigger), each counted as a trigger
    /// for itself.
    pub fn shared_objects<K, S>(
        &self,
        stream: S,
    ) -> impl Stream<Item = Arc<K>> + Send + 'static + use<K, S>
    where
        K: Resource + 'static,
        S: Stream<Item = Arc<K>> + Send + 'static,
    {
        let q = self.clone();
        stream.inspect(move |obj| q.add(key_of_obj(obj.as_ref())))
    }

    /// A stream of keys (`Controller::reconcile_on`'s trigger), counted.
    pub fn refs<K, S>(
        &self,
        stream: S,
    ) -> impl Stream<Item = ObjectRef<K>> + Send + 'static + use<K, S>
    where
        K: Lookup + 'static,
        S: Stream<Item = ObjectRef<K>> + Send + 'static,
    {
        let q = self.clone();
        stream.inspect(move |r| q.add(key_of_ref(r)))
    }

    /// A `watches_stream` mapper whose answers are counted as triggers.
    pub fn mapper<O, K, I, F>(
        &self,
        f: F,
    ) -> impl Fn(O) -> Vec<ObjectRef<K>> + Send + Sync + 'static + use<O, K, I, F>
    where
        O: 'static,
        K: Lookup + 'static,
        I: IntoIterator<Item = ObjectRef<K>> + 'static,
        F: Fn(O) -> I + Send + Sync + 'static,
    {
        let q = self.clone();
        move |obj| {
            let refs: Vec<ObjectRef<K>> = f(obj).into_iter().collect();
            for r in &refs {
                q.add(key_of_ref(r));
            }
            refs
        }
    }

    /// `controller.run(reconcile, error_policy, ctx)`, with every reconcile
    /// counted by [`metrics::reconciled`] and followed through this queue.
    pub fn run<K, C, E, F, Fut, P>(
        &self,
        controller: Controller<K>,
        reconcile: F,
        error_policy: P,
        ctx: Arc<C>,
    ) -> impl Stream<Item = Result<(ObjectRef<K>, Action), controller::Error<E, watcher::Error>>>
    + Send
    + use<K, C, E, F, Fut, P>
    where
        K: Resource + Clone + Debug + DeserializeOwned + Send + Sync + 'static,
        K::DynamicType: Eq + Hash + Clone + Debug + Unpin + Send + Sync,
        C: Send + Sync + 'static,
        E: std::error::Error + Send + 'static,
        F: Fn(Arc<K>, Arc<C>) -> Fut + Send + Sync + Clone + 'static,
        Fut: Future<Output = Result<Action, E>> + Send + 'static,
        P: Fn(Arc<K>, &E, Arc<C>) -> Action + Send + Sync + 'static,
    {
        let mut inner = metrics::reconciled(self.name(), reconcile);
        let q = self.clone();
        let reconciler = move |obj: Arc<K>, ctx: Arc<C>| -> metrics::ReconcileFuture<E> {
            let key = key_of_obj(&*obj);
            q.with_state(|s, m| s.start(key.clone(), Instant::now(), m));
            let fut = inner(obj, ctx);
            let q = q.clone();
            Box::pin(async move {
                let out = fut.await;
                let now = Instant::now();
                q.with_state(|s, m| {
                    s.finish(&key, now, m);
                    if let Ok(action) = &out
                        && *action != Action::await_change()
                    {
                        s.requeue(key, now, requeue_after(action), false, m);
                    }
                });
                out
            })
        };
        let q = self.clone();
        let policy = move |obj: Arc<K>, err: &E, ctx: Arc<C>| {
            let action = error_policy(obj.clone(), err, ctx);
            if action != Action::await_change() {
                let key = key_of_obj(&*obj);
                q.with_state(|s, m| {
                    s.requeue(key, Instant::now(), requeue_after(&action), true, m)
                });
            }
            action
        };
        let q = self.clone();
        controller.run(reconciler, policy, ctx).inspect(move |r| {
            if let Err(controller::Error::ObjectNotFound(obj_ref)) = r {
                tracing::debug!(controller = q.name(), object = %obj_ref, "queued key dropped: the object is not in the cache");
                let key = key_of_ref(&**obj_ref);
                q.with_state(|s, m| s.drop_key(&key, Instant::now(), m));
            }
        })
    }
}

/// `controller.run_queued(&queue, reconcile, error_policy, ctx)`: [`Queue::run`]
/// at the end of a `Controller` builder chain.
pub trait RunQueued<K>: Sized
where
    K: Resource + Clone + Debug + DeserializeOwned + Send + Sync + 'static,
    K::DynamicType: Eq + Hash + Clone + Debug + Unpin + Send + Sync,
{
    /// See [`Queue::run`].
    fn run_queued<C, E, F, Fut, P>(
        self,
        queue: &Queue,
        reconcile: F,
        error_policy: P,
        ctx: Arc<C>,
    ) -> impl Stream<Item = Result<(ObjectRef<K>, Action), controller::Error<E, watcher::Error>>> + Send
    where
        C: Send + Sync + 'static,
        E: std::error::Error + Send + 'static,
        F: Fn(Arc<K>, Arc<C>) -> Fut + Send + Sync + Clone + 'static,
        Fut: Future<Output = Result<Action, E>> + Send + 'static,
        P: Fn(Arc<K>, &E, Arc<C>) -> Action + Send + Sync + 'static;
}

impl<K> RunQueued<K> for Controller<K>
where
    K: Resource + Clone + Debug + DeserializeOwned + Send + Sync + 'static,
    K::DynamicType: Eq + Hash + Clone + Debug + Unpin + Send + Sync,
{
    fn run_queued<C, E, F, Fut, P>(
        self,
        queue: &Queue,
        reconcile: F,
        error_policy: P,
        ctx: Arc<C>,
    ) -> impl Stream<Item = Result<(ObjectRef<K>, Action), controller::Error<E, watcher::Error>>> + Send
    where
        C: Send + Sync + 'static,
        E: std::error::Error + Send + 'static,
        F: Fn(Arc<K>, Arc<C>) -> Fut + Send + Sync + Clone + 'static,
        Fut: Future<Output = Result<Action, E>> + Send + 'static,
        P: Fn(Arc<K>, &E, Arc<C>) -> Action + Send + Sync + 'static,
    {
        queue.run(self, reconcile, error_policy, ctx)
    }
}

/// The delay of a requeueing `Action`. kube-rs keeps the field private; its
/// `Debug` text (`Action { requeue_after: Some(1.5s) }`) has it, exactly.
/// `None` when the text cannot be read (the queue then counts the requeue
/// when its reconcile starts).
pub fn requeue_after(action: &Action) -> Option<Duration> {
    let text = format!("{action:?}");
    let inner = text.split("Some(").nth(1)?.split(')').next()?;
    parse_duration_debug(inner)
}

/// Parses `Duration`'s `Debug` text: `1.5s`, `250ms`, `10µs`, `3ns`.
fn parse_duration_debug(s: &str) -> Option<Duration> {
    let split = s.find(|c: char| !(c.is_ascii_digit() || c == '.'))?;
    let (number, unit) = s.split_at(split);
    let nanos_per_unit: u128 = match unit {
        "s" => 1_000_000_000,
        "ms" => 1_000_000,
        "µs" => 1_000,
        "ns" => 1,
        _ => return None,
    };
    let (whole, frac) = number.split_once('.').unwrap_or((number, ""));
    let whole: u128 = whole.parse().ok()?;
    let mut nanos = whole.checked_mul(nanos_per_unit)?;
    let mut scale = nanos_per_unit;
    for digit in frac.chars() {
        scale /= 10;
        if scale == 0 {
            break;
        }
        nanos += u128::from(digit.to_digit(10)?) * scale;
    }
    let secs = u64::try_from(nanos / 1_000_000_000).ok()?;
    Some(Duration::new(secs, (nanos % 1_000_000_000) as u32))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(name: &str) -> Key {
        (Some("ns".into()), name.into())
    }

    fn at(t0: Instant, ms: u64) -> Instant {
        t0 + Duration::from_millis(ms)
    }

    #[test]
    fn a_trigger_while_waiting_is_not_a_second_add() {
        let m = Children::of("test-dedup");
        let mut s = State::default();
        let t0 = Instant::now();
        s.add(key("a"), t0, &m);
        s.add(key("a"), at(t0, 5), &m);
        s.add(key("b"), at(t0, 6), &m);
        assert_eq!(m.adds.get(), 2);
        assert_eq!(m.depth.get(), 2);
        s.start(key("a"), at(t0, 10), &m);
        s.start(key("b"), at(t0, 10), &m);
        assert_eq!(m.depth.get(), 0);
        // the wait is counted from the first trigger
        assert_eq!(m.queue_duration.get_sample_count(), 2);
        assert!((m.queue_duration.get_sample_sum() - 0.014).abs() < 1e-9);
        s.finish(&key("a"), at(t0, 30), &m);
        s.finish(&key("b"), at(t0, 20), &m);
        assert_eq!(m.work_duration.get_sample_count(), 2);
        assert!((m.work_duration.get_sample_sum() - 0.030).abs() < 1e-9);
        assert!(s.entries.is_empty(), "{:?}", s.entries);
    }

    #[test]
    fn a_trigger_during_the_reconcile_waits_for_it() {
        let m = Children::of("test-running");
        let mut s = State::default();
        let t0 = Instant::now();
        s.add(key("a"), t0, &m);
        s.start(key("a"), at(t0, 1), &m);
        s.add(key("a"), at(t0, 2), &m);
        s.add(key("a"), at(t0, 3), &m);
        assert_eq!((m.adds.get(), m.depth.get()), (2, 1));
        // a requeue asked while a trigger waits is merged into it
        s.finish(&key("a"), at(t0, 10), &m);
        s.requeue(
            key("a"),
            at(t0, 10),
            Some(Duration::from_secs(5)),
            false,
            &m,
        );
        s.start(key("a"), at(t0, 11), &m);
        s.finish(&key("a"), at(t0, 12), &m);
        assert_eq!((m.adds.get(), m.depth.get()), (2, 0));
        assert!((m.queue_duration.get_sample_sum() - 0.010).abs() < 1e-9);
        assert!(s.entries.is_empty());
    }

    #[test]
    fn a_requeue_is_an_add_when_it_comes_due() {
        let m = Children::of("test-requeue");
        let mut s = State::default();
        let t0 = Instant::now();
        s.add(key("a"), t0, &m);
        s.start(key("a"), t0, &m);
        s.finish(&key("a"), at(t0, 10), &m);
        s.requeue(
            key("a"),
            at(t0, 10),
            Some(Duration::from_millis(100)),
            true,
            &m,
        );
        assert_eq!((m.adds.get(), m.depth.get(), m.retries.get()), (1, 0, 1));
        // not due yet at a scrape
        s.refresh(at(t0, 50), &m);
        assert_eq!((m.adds.get(), m.depth.get()), (1, 0));
        // due: an add at 110 ms, waiting until taken
        s.refresh(at(t0, 130), &m);
        assert_eq!((m.adds.get(), m.depth.get()), (2, 1));
        s.start(key("a"), at(t0, 140), &m);
        assert_eq!(m.depth.get(), 0);
        assert!((m.queue_duration.get_sample_sum() - 0.030).abs() < 1e-9);
        s.finish(&key("a"), at(t0, 150), &m);
        assert!(s.entries.is_empty());
    }

    #[test]
    fn a_trigger_overtakes_a_pending_requeue() {
        let m = Children::of("test-overtake");
        let mut s = State::default();
        let t0 = Instant::now();
        s.requeue(key("a"), t0, Some(Duration::from_secs(60)), false, &m);
        s.add(key("a"), at(t0, 5), &m);
        assert_eq!((m.adds.get(), m.depth.get()), (1, 1));
        s.start(key("a"), at(t0, 6), &m);
        s.finish(&key("a"), at(t0, 7), &m);
        // the requeue was replaced, not kept for later
        s.refresh(at(t0, 120_000), &m);
        assert_eq!((m.adds.get(), m.depth.get()), (1, 0));
        assert!(s.entries.is_empty());
    }

    #[test]
    fn a_dropped_key_leaves_the_depth_and_in_progress_work_is_reported() {
        let m = Children::of("test-drop");
        let mut s = State::default();
        let t0 = Instant::now();
        s.add(key("gone"), t0, &m);
        s.drop_key(&key("gone"), at(t0, 3), &m);
        assert_eq!(m.depth.get(), 0);
        assert_eq!(m.work_duration.get_sample_count(), 0);
        s.add(key("a"), t0, &m);
        s.add(key("b"), t0, &m);
        s.start(key("a"), at(t0, 1000), &m);
        s.start(key("b"), at(t0, 1500), &m);
        let (sum, longest) = s.refresh(at(t0, 2000), &m);
        assert!((sum - 1.5).abs() < 1e-9 && (longest - 1.0).abs() < 1e-9);
        assert!(!s.entries.is_empty());
    }

    #[test]
    fn a_stopped_queue_takes_its_waiting_keys_out_of_the_depth() {
        let q = Queue::new("test-stopped");
        q.add(key("a"));
        q.add(key("b"));
        let depth = FAMILIES
            .depth
            .with_label_values(&["test-stopped", "test-stopped"]);
        assert_eq!(depth.get(), 2);
        drop(q);
        assert_eq!(depth.get(), 0);
    }

    #[test]
    fn requeue_delays_are_read_exactly() {
        for d in [
            Duration::from_millis(50),
            Duration::from_secs(1),
            Duration::from_millis(1500),
            Duration::from_secs(3600),
            Duration::from_micros(7),
            Duration::from_nanos(3),
            Duration::new(2, 1),
        ] {
            assert_eq!(requeue_after(&Action::requeue(d)), Some(d), "{d:?}");
        }
        assert_eq!(requeue_after(&Action::await_change()), None);
    }

    #[tokio::test]
    async fn the_families_are_served_with_help_and_both_labels() {
        let q = Queue::new("test-served");
        q.add(key("a"));
        let text = metrics::encode();
        for family in [
            "workqueue_depth",
            "workqueue_adds_total",
            "workqueue_queue_duration_seconds",
            "workqueue_work_duration_seconds",
            "workqueue_retries_total",
            "workqueue_unfinished_work_seconds",
            "workqueue_longest_running_processor_seconds",
        ] {
            assert!(
                text.contains(&format!("# HELP {family} ")),
                "{family}\n{text}"
            );
        }
        assert!(
            text.contains(r#"workqueue_depth{controller="test-served",name="test-served"} 1"#),
            "{text}"
        );
        assert!(
            text.contains(r#"workqueue_queue_duration_seconds_bucket{controller="test-served",name="test-served",le="1000"} 0"#),
            "{text}"
        );
        drop(q);
    }
}
