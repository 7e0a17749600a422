//! [`EtcdStore`]: storage on an etcd v3 cluster, shared by any number of API servers.
//!
//! Layout, as Kubernetes does it: every object is one etcd key, `PREFIX` + the
//! storage key (`/registry/apps/deployments/default/nginx` under the default prefix
//! `/registry`), holding the object's JSON without `metadata.resourceVersion`; the
//! resourceVersion is the key's etcd `mod_revision`, so every replica hands out
//! the same resourceVersions.
//!
//! Writes are etcd transactions that compare the key's revision (create: the key
//! must not exist; update and delete: its `mod_revision` must equal the
//! precondition), so conflicts between replicas are caught by etcd itself.
//!
//! Reads and watches are served from a [`Cache`] that a mirror task keeps in step
//! with etcd's watch of the prefix, whoever wrote: after loading the prefix at one
//! revision, it applies every event etcd reports and follows etcd's progress
//! notifications. A write is answered once the mirror has caught up with its
//! revision, so the writer reads its own write; [`Storage::sync`] asks etcd for its
//! current revision and waits for the mirror to reach it, so any replica's read
//! follows every write acknowledged before it. A watch from older than the cache's
//! window is served by an etcd watch from that revision, and fails as
//! [`Error::Compacted`] (`410 Gone`) when etcd has compacted it; the store compacts
//! etcd periodically, as kube-apiserver does.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

use etcd_client::{
    Certificate, Client, Compare, CompareOp, ConnectOptions, DeleteOptions, EventType, GetOptions,
    Identity, TlsOptions, Txn, TxnOp, TxnOpResponse, WatchOptions, WatchResponse,
};
use futures::future::BoxFuture;
use futures::stream::BoxStream;
use serde_json::Value;
use tokio::sync::mpsc;

use super::cache::Cache;
use super::kv::stamp;
use super::{
    Error, Event, EventKind, KeepParsed, KeyValue, Precondition, Result, Revision, Snapshot,
    Storage,
};
use crate::packed::Packers;

/// TLS material for talking to etcd (PEM text).
#[derive(Debug, Clone, Default)]
pub struct Tls {
    /// CA bundle that signed etcd's serving certificates (needed for TLS: no system
    /// roots are trusted).
    pub ca_pem: Option<String>,
    /// Client certificate and key, when etcd requires client authentication.
    pub cert_pem: Option<String>,
    pub key_pem: Option<String>,
}

/// How to reach etcd and what to keep in memory.
#[derive(Debug, Clone)]
pub struct Config {
    /// Client URLs of the etcd members (`http://127.0.0.1:2379`).
    pub endpoints: Vec<String>,
    /// Prefix of every key this store writes (kube-apiserver's `--etcd-prefix`).
    pub prefix: String,
    /// TLS, for `https://` endpoints.
    pub tls: Option<Tls>,
    /// Compact etcd's history to what it was this long ago, repeatedly; `None` leaves
    /// compaction to etcd or to an operator.
    pub compaction_interval: Option<Duration>,
    /// Events kept in memory for watches resuming from a past revision.
    pub history: super::cache::HistoryLimit,
    /// Past snapshots kept for continue tokens.
    pub snapshots: usize,
    /// How long start-up keeps trying to reach etcd.
    pub connect_timeout: Duration,
}

impl Default for Config {
    fn default() -> Self {
        let kv = super::kv::Config::default();
        Config {
            endpoints: vec!["http://127.0.0.1:2379".into()],
            prefix: "/registry".into(),
            tls: None,
            compaction_interval: Some(Duration::from_secs(300)),
            history: kv.history,
            snapshots: kv.snapshots,
            connect_timeout: Duration::from_secs(30),
        }
    }
}

/// Objects read per request when loading the prefix.
const PAGE: i64 = 1000;
/// How long a write waits for the mirror to show it.
const WRITE_VISIBLE: Duration = Duration::from_secs(10);
/// How long a consistent read waits for the mirror to catch up with etcd.
const SYNC_WAIT: Duration = Duration::from_secs(5);

/// The store; see the module docs.
pub struct EtcdStore {
    client: Client,
    /// The key prefix, without a trailing `/`.
    prefix: String,
    cache: Arc<Cache>,
    /// Asks the mirror for a progress notification.
    progress: mpsc::Sender<()>,
    tasks: Vec<tokio::task::AbortHandle>,
}

impl Drop for EtcdStore {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

fn unavailable(e: etcd_client::Error) -> Error {
    Error::Unavailable(format!("etcd: {e}"))
}

/// The first key after every key starting with `prefix`.
fn prefix_end(prefix: &[u8]) -> Vec<u8> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return end;
        }
    }
    vec![0]
}

/// The packers of the objects read from etcd ([`crate::packed`]): one set
/// for the process, as the API servers of one process that share an etcd
/// see the same kinds.
static PACKERS: std::sync::LazyLock<Packers> = std::sync::LazyLock::new(Packers::default);

/// Decodes a stored object, setting its resourceVersion to `revision`, in the
/// form the cache keeps.
fn decode(key: Arc<str>, value: &[u8], revision: Revision) -> Result<KeyValue> {
    let mut object: Value =
        serde_json::from_slice(value).map_err(|e| Error::Backend(Box::new(e)))?;
    stamp(&mut object, revision);
    Ok(KeyValue::new(key, Arc::new(object), revision).cached(KeepParsed::Listed, &PACKERS))
}

/// The last state of a deleted object: `prev` stamped with the deletion's revision.
fn deleted(prev: &KeyValue, at: Revision) -> KeyValue {
    let mut last = Arc::unwrap_or_clone(prev.value());
    stamp(&mut last, at);
    KeyValue::new(prev.key.clone(), Arc::new(last), at).cached(KeepParsed::Listed, &PACKERS)
}

/// The stored form of an object: its JSON without `metadata.resourceVersion`.
fn encode(mut object: Value) -> Result<Vec<u8>> {
    if let Some(meta) = object.get_mut("metadata").and_then(Value::as_object_mut) {
        meta.remove("resourceVersion");
    }
    serde_json::to_vec(&object).map_err(|e| Error::Backend(Box::new(e)))
}

fn header_revision(header: Option<&etcd_client::ResponseHeader>) -> Revision {
    header.map_or(0, |h| h.revision().max(0) as Revision)
}

impl EtcdStore {
    /// Connects, loads everything under the prefix and starts following etcd.
    pub async fn open(config: Config) -> Result<Self> {
        let prefix = config.prefix.trim_end_matches('/').to_string();
        let started = Instant::now();
        let (client, snapshot) = loop {
            let loaded = match connect(&config).await {
                Ok(client) => load(&client, &prefix).await.map(|s| (client, s)),
                Err(e) => Err(e),
            };
            match loaded {
                Ok(loaded) => break loaded,
                Err(e) if started.elapsed() < config.connect_timeout => {
                    tracing::warn!(error = %e, endpoints = ?config.endpoints, "etcd not reachable yet; retrying");
                    tokio::time::sleep(Duration::from_millis(500)).await;
                }
                Err(e) => return Err(e),
            }
        };
        tracing::info!(
            endpoints = ?config.endpoints,
            prefix = %prefix,
            rev = snapshot.revision,
            objects = snapshot.map.len(),
            "etcd storage loaded"
        );
        let cache = Arc::new(Cache::new(snapshot, config.history, config.snapshots));
        let (progress, asked) = mpsc::channel(1);
        let mut tasks = vec![
            tokio::spawn(mirror(client.clone(), prefix.clone(), cache.clone(), asked))
                .abort_handle(),
        ];
        if let Some(interval) = config.compaction_interval.filter(|i| !i.is_zero()) {
            tasks.push(
                tokio::spawn(compact_periodically(
                    client.clone(),
                    cache.clone(),
                    interval,
                ))
                .abort_handle(),
            );
        }
        Ok(EtcdStore {
            client,
            prefix,
            cache,
            progress,
            tasks,
        })
    }

    fn etcd_key(&self, key: &str) -> String {
        format!("{}{key}", self.prefix)
    }

    /// Compacts etcd's history up to `revision`: watches from before it fail as
    /// compacted.
    pub async fn compact(&self, revision: Revision) -> Result<()> {
        self.client
            .kv_client()
            .compact(revision as i64, None)
            .await
            .map_err(unavailable)?;
        Ok(())
    }

    /// Waits for the mirror to show a write at `revision`.
    async fn visible(&self, revision: Revision) {
        if !self.cache.wait_for(revision, WRITE_VISIBLE).await {
            tracing::warn!(
                rev = revision,
                "etcd write not yet seen by this server's watch of etcd"
            );
        }
    }

    /// Runs `txn`; on success the transaction's revision, else the key's current
    /// state (if it exists) from the `or_else` get.
    async fn run(
        &self,
        txn: Txn,
    ) -> Result<std::result::Result<(Revision, Vec<TxnOpResponse>), Option<(i64, Vec<u8>)>>> {
        let response = self
            .client
            .kv_client()
            .txn(txn)
            .await
            .map_err(unavailable)?;
        let revision = header_revision(response.header());
        let ops = response.op_responses();
        if response.succeeded() {
            return Ok(Ok((revision, ops)));
        }
        let current = ops.into_iter().find_map(|op| match op {
            TxnOpResponse::Get(get) => get
                .kvs()
                .first()
                .map(|kv| (kv.mod_revision(), kv.value().to_vec())),
            _ => None,
        });
        Ok(Err(current))
    }

    /// The compare that a precondition asks of `key`: it exists, at the expected
    /// revision when one is given.
    fn precondition(key: &str, precondition: Precondition) -> Compare {
        match precondition.revision {
            Some(expected) => Compare::mod_revision(key, CompareOp::Equal, expected as i64),
            None => Compare::version(key, CompareOp::Greater, 0),
        }
    }

    fn failed(key: String, precondition: Precondition, current: Option<(i64, Vec<u8>)>) -> Error {
        match current {
            None => Error::NotFound { key },
            Some((actual, _)) => Error::Conflict {
                key,
                expected: precondition.revision.unwrap_or_default(),
                actual: actual.max(0) as Revision,
            },
        }
    }
}

async fn connect(config: &Config) -> Result<Client> {
    let mut options = ConnectOptions::new()
        .with_connect_timeout(Duration::from_secs(5))
        .with_keep_alive(Duration::from_secs(10), Duration::from_secs(5));
    if let Some(tls) = &config.tls {
        let mut t = TlsOptions::new();
        if let Some(ca) = &tls.ca_pem {
            t = t.ca_certificate(Certificate::from_pem(ca));
        }
        if let (Some(cert), Some(key)) = (&tls.cert_pem, &tls.key_pem) {
            t = t.identity(Identity::from_pem(cert, key));
        }
        options = options.with_tls(t);
    }
    Client::connect(&config.endpoints, Some(options))
        .await
        .map_err(unavailable)
}

/// Everything under `prefix` at one revision, read in pages.
async fn load(client: &Client, prefix: &str) -> Result<Snapshot> {
    let start = format!("{prefix}/").into_bytes();
    let end = prefix_end(&start);
    read(client, prefix, start, end, 0).await
}

/// The keys in `[from, end)` (etcd keys under the store's `prefix`) at `revision`
/// (0: the current one), read in pages at one revision.
async fn read(
    client: &Client,
    prefix: &str,
    mut from: Vec<u8>,
    end: Vec<u8>,
    mut revision: i64,
) -> Result<Snapshot> {
    let mut kv = client.kv_client();
    let mut map = imbl::OrdMap::new();
    loop {
        let mut options = GetOptions::new().with_range(end.clone()).with_limit(PAGE);
        if revision > 0 {
            options = options.with_revision(revision);
        }
        let response = kv
            .get(from.clone(), Some(options))
            .await
            .map_err(unavailable)?;
        if revision == 0 {
            revision = response.header().map_or(0, |h| h.revision());
        }
        for item in response.kvs() {
            let Some(key) = local_key(prefix, item.key()) else {
                continue;
            };
            match decode(
                key.clone(),
                item.value(),
                item.mod_revision().max(0) as Revision,
            ) {
                Ok(kv) => {
                    map.insert(key, kv);
                }
                Err(e) => tracing::warn!(%key, error = %e, "skipping an undecodable etcd value"),
            }
        }
        match response.kvs().last() {
            Some(last) if response.more() => {
                from = last.key().to_vec();
                from.push(0);
            }
            _ => break,
        }
    }
    Ok(Snapshot {
        map,
        revision: revision.max(0) as Revision,
    })
}

/// The storage key of an etcd key under `prefix`.
fn local_key(prefix: &str, etcd_key: &[u8]) -> Option<Arc<str>> {
    let key = std::str::from_utf8(etcd_key).ok()?.strip_prefix(prefix)?;
    key.starts_with('/').then(|| Arc::from(key))
}

/// How following etcd's watch ended.
enum Followed {
    /// etcd no longer has the events after the cache's revision.
    Compacted,
    /// The store was dropped.
    Stopped,
}

/// Keeps `cache` in step with etcd, resuming after errors and reloading after
/// falling behind a compaction.
async fn mirror(client: Client, prefix: String, cache: Arc<Cache>, mut asked: mpsc::Receiver<()>) {
    let mut backoff = Duration::from_millis(100);
    loop {
        match follow(&client, &prefix, &cache, &mut asked).await {
            Ok(Followed::Stopped) => return,
            Ok(Followed::Compacted) => match load(&client, &prefix).await {
                Ok(snapshot) => {
                    tracing::warn!(
                        rev = snapshot.revision,
                        "etcd compacted past this server's revision; reloaded, older watches end with 410"
                    );
                    cache.reset(snapshot);
                    backoff = Duration::from_millis(100);
                }
                Err(e) => {
                    tracing::warn!(error = %e, "reloading from etcd failed; retrying");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(5));
                }
            },
            Err(e) => {
                tracing::warn!(error = %e, rev = cache.current_revision(), "etcd watch failed; resuming");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(5));
            }
        }
    }
}

/// Follows one etcd watch from the cache's revision until it fails.
async fn follow(
    client: &Client,
    prefix: &str,
    cache: &Cache,
    asked: &mut mpsc::Receiver<()>,
) -> Result<Followed> {
    let from = cache.current_revision() + 1;
    let options = WatchOptions::new()
        .with_prefix()
        .with_start_revision(from as i64)
        .with_progress_notify();
    let (mut requests, mut responses) = client
        .watch_client()
        .watch(format!("{prefix}/"), Some(options))
        .await
        .map_err(unavailable)?
        .split();
    loop {
        tokio::select! {
            ask = asked.recv() => {
                if ask.is_none() {
                    return Ok(Followed::Stopped);
                }
                requests.request_progress().await.map_err(unavailable)?;
            }
            message = responses.message() => {
                let Some(response) = message.map_err(unavailable)? else {
                    return Err(Error::Unavailable("etcd ended the watch".into()));
                };
                if response.canceled() {
                    if response.compact_revision() > 0 {
                        return Ok(Followed::Compacted);
                    }
                    return Err(Error::Unavailable(format!(
                        "etcd canceled the watch: {}",
                        response.cancel_reason()
                    )));
                }
                apply(prefix, cache, &response);
            }
        }
    }
}

/// Applies one watch response to the cache.
fn apply(prefix: &str, cache: &Cache, response: &WatchResponse) {
    if response.events().is_empty() {
        // A progress notification: every event up to its revision has been sent.
        // (The response that confirms the watch's creation says nothing of the kind.)
        if !response.created() {
            cache.advance(header_revision(response.header()));
        }
        return;
    }
    let base = cache.snapshot();
    let seen = base.revision;
    let mut map = base.map;
    let mut revision = seen;
    let mut events = Vec::with_capacity(response.events().len());
    for event in response.events() {
        let Some(kv) = event.kv() else { continue };
        let Some(key) = local_key(prefix, kv.key()) else {
            continue;
        };
        let at = kv.mod_revision().max(0) as Revision;
        if at <= seen {
            continue;
        }
        revision = revision.max(at);
        let prev = map.get(&key).cloned();
        match event.event_type() {
            EventType::Put => {
                let next = match decode(key.clone(), kv.value(), at) {
                    Ok(next) => next,
                    Err(e) => {
                        tracing::warn!(%key, error = %e, "skipping an undecodable etcd value");
                        continue;
                    }
                };
                map.insert(key, next.clone());
                let kind = if prev.is_some() {
                    EventKind::Modified
                } else {
                    EventKind::Added
                };
                events.push(Event::new(kind, &next, prev.as_ref()));
            }
            EventType::Delete => {
                let Some(prev) = prev else { continue };
                map.remove(&key);
                events.push(Event::new(
                    EventKind::Deleted,
                    &deleted(&prev, at),
                    Some(&prev),
                ));
            }
        }
    }
    cache.publish(Snapshot { map, revision }, events);
}

/// Every `interval`, compacts etcd to the revision seen one interval before.
async fn compact_periodically(client: Client, cache: Arc<Cache>, interval: Duration) {
    let mut ticks = tokio::time::interval(interval);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    ticks.tick().await;
    let mut previous: Option<Revision> = None;
    loop {
        ticks.tick().await;
        if let Some(revision) = previous.filter(|r| *r > 0) {
            match client.kv_client().compact(revision as i64, None).await {
                Ok(_) => tracing::info!(rev = revision, "etcd compacted"),
                // Another API server on the same etcd may have compacted further.
                Err(e) => tracing::debug!(rev = revision, error = %e, "etcd compaction skipped"),
            }
        }
        previous = Some(cache.current_revision());
    }
}

/// Where an etcd-served watch is.
enum Direct {
    Start,
    Running(Box<etcd_client::WatchStream>, VecDeque<Event>),
    Done,
}

impl EtcdStore {
    /// A watch served by etcd itself, for revisions older than the cache's window.
    fn watch_etcd(&self, prefix: String, from: Revision) -> BoxStream<'static, Result<Event>> {
        let client = self.client.clone();
        let store_prefix = self.prefix.clone();
        let stream = futures::stream::unfold(Direct::Start, move |state| {
            let client = client.clone();
            let store_prefix = store_prefix.clone();
            let prefix = prefix.clone();
            async move {
                let (mut watch, mut buffer) = match state {
                    Direct::Done => return None,
                    Direct::Running(watch, buffer) => (watch, buffer),
                    Direct::Start => {
                        let options = WatchOptions::new()
                            .with_prefix()
                            .with_prev_key()
                            .with_start_revision(from as i64 + 1);
                        match client
                            .watch_client()
                            .watch(format!("{store_prefix}{prefix}"), Some(options))
                            .await
                        {
                            Ok(watch) => (Box::new(watch), VecDeque::new()),
                            Err(e) => return Some((Err(unavailable(e)), Direct::Done)),
                        }
                    }
                };
                loop {
                    if let Some(event) = buffer.pop_front() {
                        return Some((Ok(event), Direct::Running(watch, buffer)));
                    }
                    let response = match watch.message().await {
                        Ok(Some(r)) => r,
                        Ok(None) => return None,
                        Err(e) => return Some((Err(unavailable(e)), Direct::Done)),
                    };
                    if response.canceled() {
                        let error = if response.compact_revision() > 0 {
                            Error::Compacted {
                                requested: from,
                                oldest: response.compact_revision() as Revision,
                            }
                        } else {
                            Error::Unavailable(format!(
                                "etcd canceled the watch: {}",
                                response.cancel_reason()
                            ))
                        };
                        return Some((Err(error), Direct::Done));
                    }
                    buffer.extend(direct_events(&store_prefix, &response));
                }
            }
        });
        Box::pin(stream)
    }
}

/// The events of a watch response that carries previous values.
fn direct_events(prefix: &str, response: &WatchResponse) -> Vec<Event> {
    let mut out = Vec::new();
    for event in response.events() {
        let Some(kv) = event.kv() else { continue };
        let Some(key) = local_key(prefix, kv.key()) else {
            continue;
        };
        let at = kv.mod_revision().max(0) as Revision;
        let prev = event
            .prev_kv()
            .and_then(|p| decode(key.clone(), p.value(), p.mod_revision().max(0) as Revision).ok());
        match event.event_type() {
            EventType::Put => {
                let Ok(next) = decode(key.clone(), kv.value(), at) else {
                    continue;
                };
                let kind = if kv.version() == 1 {
                    EventKind::Added
                } else {
                    EventKind::Modified
                };
                out.push(Event::new(kind, &next, prev.as_ref()));
            }
            EventType::Delete => {
                let Some(prev) = prev else {
                    tracing::warn!(%key, rev = at, "etcd no longer has the state before a deletion; not reported");
                    continue;
                };
                out.push(Event::new(
                    EventKind::Deleted,
                    &deleted(&prev, at),
                    Some(&prev),
                ));
            }
        }
    }
    out
}

impl Storage for EtcdStore {
    fn snapshot(&self) -> Snapshot {
        self.cache.snapshot()
    }

    fn current_revision(&self) -> Revision {
        self.cache.current_revision()
    }

    fn snapshot_at(&self, revision: Revision) -> Option<Snapshot> {
        self.cache.snapshot_at(revision)
    }

    fn retain_snapshot(&self, snapshot: &Snapshot) {
        self.cache.retain_snapshot(snapshot);
    }

    fn create(&self, key: String, value: Value) -> BoxFuture<'_, Result<KeyValue>> {
        Box::pin(async move {
            let etcd_key = self.etcd_key(&key);
            let txn = Txn::new()
                .when([Compare::create_revision(
                    etcd_key.clone(),
                    CompareOp::Equal,
                    0,
                )])
                .and_then([TxnOp::put(etcd_key.clone(), encode(value.clone())?, None)])
                .or_else([TxnOp::get(etcd_key, None)]);
            let (revision, _) = self
                .run(txn)
                .await?
                .map_err(|_| Error::AlreadyExists { key: key.clone() })?;
            let mut value = value;
            stamp(&mut value, revision);
            self.visible(revision).await;
            Ok(KeyValue::new(Arc::from(key), Arc::new(value), revision))
        })
    }

    fn update(
        &self,
        key: String,
        value: Value,
        precondition: Precondition,
    ) -> BoxFuture<'_, Result<KeyValue>> {
        Box::pin(async move {
            let etcd_key = self.etcd_key(&key);
            let txn = Txn::new()
                .when([Self::precondition(&etcd_key, precondition)])
                .and_then([TxnOp::put(etcd_key.clone(), encode(value.clone())?, None)])
                .or_else([TxnOp::get(etcd_key, None)]);
            let (revision, _) = match self.run(txn).await? {
                Ok(done) => done,
                Err(current) => return Err(Self::failed(key, precondition, current)),
            };
            let mut value = value;
            stamp(&mut value, revision);
            self.visible(revision).await;
            Ok(KeyValue::new(Arc::from(key), Arc::new(value), revision))
        })
    }

    fn delete(&self, key: String, precondition: Precondition) -> BoxFuture<'_, Result<KeyValue>> {
        Box::pin(async move {
            let etcd_key = self.etcd_key(&key);
            let txn = Txn::new()
                .when([Self::precondition(&etcd_key, precondition)])
                .and_then([TxnOp::delete(
                    etcd_key.clone(),
                    Some(DeleteOptions::new().with_prev_key()),
                )])
                .or_else([TxnOp::get(etcd_key, None)]);
            let (revision, ops) = match self.run(txn).await? {
                Ok(done) => done,
                Err(current) => return Err(Self::failed(key, precondition, current)),
            };
            let last = ops.iter().find_map(|op| match op {
                TxnOpResponse::Delete(d) => d.prev_kvs().first().map(|kv| kv.value().to_vec()),
                _ => None,
            });
            let key: Arc<str> = Arc::from(key);
            let last = match last {
                Some(bytes) => decode(key.clone(), &bytes, revision)?,
                None => {
                    return Err(Error::NotFound {
                        key: key.to_string(),
                    });
                }
            };
            self.visible(revision).await;
            Ok(last)
        })
    }

    fn history(&self) -> super::cache::HistoryStats {
        self.cache.history_stats()
    }

    fn watch_progress(
        &self,
        prefix: String,
        from: Revision,
    ) -> Result<BoxStream<'static, Result<Event>>> {
        // from etcd (no progress reported) when the revision left the memory
        match self.cache.watch_progress(prefix.clone(), from) {
            Err(Error::Compacted { .. }) => Ok(self.watch_etcd(prefix, from)),
            other => other,
        }
    }

    fn watch(&self, prefix: String, from: Revision) -> Result<BoxStream<'static, Result<Event>>> {
        match self.cache.watch(prefix.clone(), from) {
            Err(Error::Compacted { .. }) => Ok(self.watch_etcd(prefix, from)),
            other => other,
        }
    }

    fn sync(&self) -> BoxFuture<'_, Result<()>> {
        Box::pin(async move {
            // A linearizable read of one key: its header has etcd's current revision.
            let response = self
                .client
                .kv_client()
                .get(format!("{}/", self.prefix), None)
                .await
                .map_err(unavailable)?;
            let revision = header_revision(response.header());
            let started = Instant::now();
            while self.cache.current_revision() < revision {
                // Changes outside the prefix move etcd's revision too; a progress
                // notification tells the mirror it has seen everything up to it.
                let _ = self.progress.try_send(());
                if self
                    .cache
                    .wait_for(revision, Duration::from_millis(200))
                    .await
                {
                    break;
                }
                if started.elapsed() > SYNC_WAIT {
                    return Err(Error::Unavailable(format!(
                        "this server's view of etcd is at revision {}, behind etcd's {revision}",
                        self.cache.current_revision()
                    )));
                }
            }
            Ok(())
        })
    }

    fn past(
        &self,
        prefix: String,
        after: Option<String>,
        revision: Revision,
    ) -> BoxFuture<'_, Result<Option<Snapshot>>> {
        Box::pin(async move {
            if revision == 0 || revision > self.cache.current_revision() {
                return Ok(None);
            }
            let start = self.etcd_key(&prefix).into_bytes();
            let end = prefix_end(&start);
            let from = match after {
                Some(after) => {
                    let mut from = self.etcd_key(&after).into_bytes();
                    from.push(0);
                    from
                }
                None => start,
            };
            match read(&self.client, &self.prefix, from, end, revision as i64).await {
                Ok(snapshot) => Ok(Some(snapshot)),
                // etcd answers OutOfRange for a revision it has compacted.
                Err(Error::Unavailable(message)) if message.contains("compacted") => Ok(None),
                Err(e) => Err(e),
            }
        })
    }
}

#[cfg(test)]
mod tests;
