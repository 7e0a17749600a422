//! Merged watches: one stream of every member's events in scope, each event's
//! object carrying the full multi-cluster resourceVersion (so a client resumes
//! from the last event it saw, across clusters). Members with a cache are
//! watched through it (replaying its history from the asked revision, or 410
//! when that is gone); others live, as the caller. A member going away never
//! ends the merged watch: a cache relists when its member returns and emits the
//! difference; a live member watch reconnects from the revision it reached.
//! Bookmarks name the clusters currently missing in an annotation.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::{AsyncBufReadExt, StreamExt};
use http::{Response, StatusCode, header};
use http_body::Frame;
use http_body_util::{BodyExt, StreamBody};
use serde_json::{Value, json};
use tokio::sync::{broadcast, mpsc};

use super::access::Question;
use super::cache::{self, Event, EventType, Object};
use super::fanout::{self, Target};
use super::member::{self, Member};
use super::resource_version::{self, Requested, RvMap, revision};
use super::{Gvr, Options, Selectors, Unified};
use crate::endpoints::Body;
use crate::endpoints::codec::Output;
use crate::endpoints::table::ListMeta;
use crate::server::auth::User;
use crate::status::ApiError;

/// Annotation on BOOKMARK objects naming the clusters whose events are missing.
pub const MISSING_ANNOTATION: &str = "search.flotilla.io/missing-clusters";

/// What a member's source sends the merged stream.
enum Msg {
    Event(String, Event),
    /// The member's initial state is out.
    InitialDone(String),
    /// The member is unreachable (why) or back (None).
    Down(String, Option<String>),
    /// History lost (the source fell behind): the client must relist.
    Expired(String),
}

/// Serves a merged watch.
pub async fn serve(
    u: &Arc<Unified>,
    gvr: &Gvr,
    namespace: Option<&str>,
    query: &HashMap<String, String>,
    user: &Arc<User>,
    opts: &Options,
    warnings: &mut Vec<String>,
) -> Result<Response<Body>, ApiError> {
    let sel = Arc::new(super::selectors(gvr, query)?);
    let requested = resource_version::parse(query.get("resourceVersion").map(String::as_str))?;
    let send_initial = query.get("sendInitialEvents").map(String::as_str);
    let initial_end_bookmark = send_initial == Some("true");
    let bookmarks = query
        .get("allowWatchBookmarks")
        .is_some_and(|b| b == "true");
    let timeout = query
        .get("timeoutSeconds")
        .and_then(|t| t.parse::<u64>().ok())
        .map(Duration::from_secs)
        .unwrap_or(Duration::from_secs(1800));
    let targets = u.targets(Some(gvr), namespace, &sel.clusters).await;
    let start_map = match &requested {
        Requested::Exact(map) => {
            let known: HashSet<&str> = targets.iter().map(|t| t.name.as_str()).collect();
            let all: Vec<String> = u
                .clusters()
                .iter()
                .filter_map(|c| {
                    c.pointer("/metadata/name")
                        .and_then(Value::as_str)
                        .map(String::from)
                })
                .collect();
            if let Some(gone) = map.keys().find(|c| !all.contains(c)) {
                return Err(ApiError::gone(format!(
                    "too old resource version: cluster \"{gone}\" is no longer registered"
                )));
            }
            map.iter()
                .filter(|(c, _)| known.contains(c.as_str()))
                .map(|(c, v)| (c.clone(), v.clone()))
                .collect()
        }
        _ => RvMap::new(),
    };
    let (tx, rx) = mpsc::channel::<Msg>(1024);
    let mut tasks = Vec::new();
    let mut missing: BTreeMap<String, String> = BTreeMap::new();
    let mut pending_initial = HashSet::new();
    let mut initial_rv = start_map.clone();
    for t in targets {
        let Target {
            name,
            member,
            cache,
        } = t;
        let member = match member {
            Ok(m) => m,
            Err(e) => {
                warnings.push(format!(
                    "cluster {name} is missing from this watch: {}",
                    e.0
                ));
                missing.insert(name, e.0);
                continue;
            }
        };
        let from = start_map.get(&name).cloned();
        pending_initial.insert(name.clone());
        let usable_cache = cache.filter(|c| c.has_data() && !opts.live);
        match usable_cache {
            Some(cache) => {
                // Subscribe now, so a too-old revision fails the request before it streams.
                let start = match &from {
                    Some(rv) => {
                        let Some(n) = revision(rv) else {
                            return Err(ApiError::bad_request(format!(
                                "invalid resourceVersion for cluster \"{name}\": \"{rv}\""
                            )));
                        };
                        match cache.resume(n) {
                            Ok((replay, rx)) => Start::Resume(replay, n, rx),
                            Err(cache::ResumeError::TooOld { oldest }) => {
                                return Err(ApiError::gone(format!(
                                    "too old resource version: {n} (cluster \"{name}\" keeps history from {oldest})"
                                )));
                            }
                            Err(cache::ResumeError::NotReady) => {
                                let (state, rev, rx) = cache.subscribe_with_state();
                                Start::State(state, rev, rx)
                            }
                        }
                    }
                    None => {
                        let (state, rev, rx) = cache.subscribe_with_state();
                        initial_rv.insert(name.clone(), rev.to_string());
                        Start::State(state, rev, rx)
                    }
                };
                if !cache.is_current() {
                    let why = match cache.health() {
                        cache::Health::Down(why) => why,
                        _ => "its cache is resyncing".into(),
                    };
                    warnings.push(format!(
                        "cluster {name} is served from a cache that may be stale: {why}"
                    ));
                }
                tasks.push(tokio::spawn(from_cache(
                    u.clone(),
                    member,
                    cache,
                    start,
                    sel.clone(),
                    namespace.map(str::to_string),
                    gvr.clone(),
                    user.clone(),
                    tx.clone(),
                )));
            }
            None => {
                tasks.push(tokio::spawn(live(
                    member,
                    gvr.clone(),
                    namespace.map(str::to_string),
                    sel.clone(),
                    from,
                    initial_end_bookmark,
                    user.clone(),
                    tx.clone(),
                )));
            }
        }
    }
    drop(tx);
    if !missing.is_empty() {
        u.count_missing(
            &missing
                .iter()
                .map(|(a, b)| (a.clone(), b.clone()))
                .collect::<Vec<_>>(),
        );
        if opts.strict {
            return Err(super::strict_failure(
                &missing.into_iter().collect::<Vec<_>>(),
            ));
        }
    }
    let state = State {
        gvr: gvr.clone(),
        rx,
        _tasks: TaskGuard(tasks),
        rv: initial_rv,
        missing,
        pending_initial,
        initial_end_bookmark,
        bookmarks,
        output: opts.output,
        include: opts.include,
        headers_sent: false,
        deadline: Box::pin(tokio::time::sleep(timeout)),
        ticker: tokio::time::interval_at(
            tokio::time::Instant::now() + Duration::from_secs(30),
            Duration::from_secs(30),
        ),
        done: false,
    };
    let stream = futures::stream::unfold(state, |mut s| async move {
        loop {
            if s.done {
                return None;
            }
            let msg = tokio::select! {
                _ = &mut s.deadline => {
                    // a last bookmark, so that the client resumes from now
                    s.done = true;
                    if s.bookmarks {
                        let b = s.bookmark(false);
                        return Some((Ok::<_, std::convert::Infallible>(Frame::data(b)), s));
                    }
                    return None;
                }
                _ = s.ticker.tick() => {
                    if s.bookmarks {
                        let b = s.bookmark(false);
                        return Some((Ok::<_, std::convert::Infallible>(Frame::data(b)), s));
                    }
                    continue;
                }
                m = s.rx.recv() => m,
            };
            let Some(msg) = msg else {
                // Every source ended (none left): end the watch.
                return None;
            };
            if let Some(bytes) = s.encode(msg) {
                return Some((Ok(Frame::data(bytes)), s));
            }
        }
    });
    let mut response = Response::new(StreamBody::new(stream).boxed_unsync());
    *response.status_mut() = StatusCode::OK;
    let ct = match opts.output {
        Output::Table => "application/json;as=Table;v=v1;g=meta.k8s.io",
        _ => "application/json",
    };
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, http::HeaderValue::from_static(ct));
    Ok(response)
}

/// How a cache source starts.
enum Start {
    /// Replay these events (after revision n), then live.
    Resume(Vec<Event>, u64, broadcast::Receiver<Event>),
    /// Send the current objects as ADDED (at revision n), then live.
    State(Vec<Event>, u64, broadcast::Receiver<Event>),
}

struct TaskGuard(Vec<tokio::task::JoinHandle<()>>);

impl Drop for TaskGuard {
    fn drop(&mut self) {
        for t in &self.0 {
            t.abort();
        }
    }
}

struct State {
    gvr: Gvr,
    rx: mpsc::Receiver<Msg>,
    _tasks: TaskGuard,
    rv: RvMap,
    missing: BTreeMap<String, String>,
    pending_initial: HashSet<String>,
    initial_end_bookmark: bool,
    bookmarks: bool,
    output: Output,
    include: crate::endpoints::table::IncludeObject,
    headers_sent: bool,
    deadline: std::pin::Pin<Box<tokio::time::Sleep>>,
    ticker: tokio::time::Interval,
    done: bool,
}

fn line(v: &Value) -> Bytes {
    let mut out = serde_json::to_vec(v).unwrap_or_default();
    out.push(b'\n');
    Bytes::from(out)
}

impl State {
    fn bookmark(&self, initial_end: bool) -> Bytes {
        let mut metadata = json!({"resourceVersion": resource_version::encode(&self.rv)});
        let mut annotations = serde_json::Map::new();
        if initial_end {
            annotations.insert("k8s.io/initial-events-end".into(), json!("true"));
        }
        if !self.missing.is_empty() {
            let names: Vec<&str> = self.missing.keys().map(String::as_str).collect();
            annotations.insert(MISSING_ANNOTATION.into(), json!(names.join(",")));
        }
        if !annotations.is_empty() {
            metadata["annotations"] = Value::Object(annotations);
        }
        line(&json!({"type": "BOOKMARK", "object": {
            "kind": self.gvr.kind, "apiVersion": self.gvr.api_version(), "metadata": metadata}}))
    }

    fn encode(&mut self, msg: Msg) -> Option<Bytes> {
        match msg {
            Msg::InitialDone(cluster) => {
                self.pending_initial.remove(&cluster);
                if self.pending_initial.is_empty() && self.initial_end_bookmark {
                    self.initial_end_bookmark = false;
                    return Some(self.bookmark(true));
                }
                None
            }
            Msg::Down(cluster, why) => {
                let changed = match why {
                    Some(why) => self.missing.insert(cluster, why).is_none(),
                    None => self.missing.remove(&cluster).is_some(),
                };
                (changed && self.bookmarks).then(|| self.bookmark(false))
            }
            Msg::Expired(cluster) => {
                self.done = true;
                Some(line(
                    &json!({"type": "ERROR", "object": ApiError::gone(format!(
                    "the watch fell behind cluster \"{cluster}\"; list again")).to_status()}),
                ))
            }
            Msg::Event(cluster, event) => {
                if event.revision > 0 {
                    self.rv.insert(cluster, event.revision.to_string());
                }
                if event.kind == EventType::Bookmark {
                    return self.bookmarks.then(|| self.bookmark(false));
                }
                let mut object = event.object.value();
                object["metadata"]["resourceVersion"] = json!(resource_version::encode(&self.rv));
                let encoded = match self.output {
                    Output::Table => {
                        let meta = ListMeta {
                            resource_version: resource_version::encode(&self.rv),
                            ..Default::default()
                        };
                        let headers = !self.headers_sent;
                        self.headers_sent = true;
                        super::table::table(
                            &super::table::info_for(&self.gvr),
                            &[Arc::new(object)],
                            self.include,
                            &meta,
                            headers,
                        )
                    }
                    Output::Metadata => crate::endpoints::table::partial_metadata(&object),
                    Output::Json | Output::Yaml => object,
                };
                Some(line(
                    &json!({"type": event.kind.as_str(), "object": encoded}),
                ))
            }
        }
    }
}

fn selected(sel: &Selectors, namespace: Option<&str>, o: &Object) -> bool {
    if let Some(ns) = namespace
        && o.namespace() != ns
    {
        return false;
    }
    o.matches(&sel.labels, &sel.fields)
}

#[allow(clippy::too_many_arguments)]
async fn from_cache(
    u: Arc<Unified>,
    member: Member,
    cache: Arc<cache::Cache>,
    start: Start,
    sel: Arc<Selectors>,
    namespace: Option<String>,
    gvr: Gvr,
    user: Arc<User>,
    tx: mpsc::Sender<Msg>,
) {
    let cluster = cache.cluster.clone();
    let timeout = u.config.member_timeout;
    let question = |ns: &str| Question {
        cluster: cluster.clone(),
        verb: "watch".into(),
        group: gvr.group.clone(),
        resource: gvr.plural.clone(),
        namespace: ns.to_string(),
        name: String::new(),
    };
    let scope = namespace.clone().unwrap_or_default();
    let whole = u
        .access
        .allowed(&member, &user, &question(&scope), timeout)
        .await
        .unwrap_or(false);
    if !whole && (!gvr.namespaced || namespace.is_some()) {
        let _ = tx
            .send(Msg::Down(cluster.clone(), Some("forbidden".into())))
            .await;
        let _ = tx.send(Msg::InitialDone(cluster.clone())).await;
        return;
    }
    let may_read = |o: &Object| {
        let u = u.clone();
        let member = member.clone();
        let user = user.clone();
        let q = question(o.namespace());
        async move {
            whole
                || u.access
                    .allowed(&member, &user, &q, timeout)
                    .await
                    .unwrap_or(false)
        }
    };
    let (first, seen, mut rx) = match start {
        Start::Resume(replay, n, rx) => {
            let seen = replay.last().map_or(n, |e| e.revision.max(n));
            (replay, seen, rx)
        }
        Start::State(state, n, rx) => (state, n, rx),
    };
    for e in first {
        if e.kind != EventType::Bookmark && !selected(&sel, namespace.as_deref(), &e.object) {
            continue;
        }
        if e.kind != EventType::Bookmark && !may_read(&e.object).await {
            continue;
        }
        if tx.send(Msg::Event(cluster.clone(), e)).await.is_err() {
            return;
        }
    }
    if tx.send(Msg::InitialDone(cluster.clone())).await.is_err() {
        return;
    }
    let mut down = false;
    let mut health_check = tokio::time::interval(Duration::from_secs(1));
    loop {
        let e = tokio::select! {
            _ = health_check.tick() => {
                let now_down = !cache.is_current();
                if now_down != down {
                    down = now_down;
                    let why = match cache.health() { cache::Health::Down(w) => Some(w), cache::Health::Syncing => Some("resyncing".into()), cache::Health::Current => None };
                    if tx.send(Msg::Down(cluster.clone(), why)).await.is_err() { return; }
                }
                continue;
            }
            e = rx.recv() => e,
        };
        let e = match e {
            Ok(e) => e,
            Err(broadcast::error::RecvError::Lagged(_)) => {
                let _ = tx.send(Msg::Expired(cluster.clone())).await;
                return;
            }
            Err(broadcast::error::RecvError::Closed) => return,
        };
        if e.revision <= seen && e.kind != EventType::Bookmark {
            continue;
        }
        if e.kind != EventType::Bookmark
            && (!selected(&sel, namespace.as_deref(), &e.object) || !may_read(&e.object).await)
        {
            continue;
        }
        if tx.send(Msg::Event(cluster.clone(), e)).await.is_err() {
            return;
        }
    }
}

/// A member watched live as the caller, reconnecting from the revision reached.
#[allow(clippy::too_many_arguments)]
async fn live(
    member: Member,
    gvr: Gvr,
    namespace: Option<String>,
    sel: Arc<Selectors>,
    from: Option<String>,
    watch_list: bool,
    user: Arc<User>,
    tx: mpsc::Sender<Msg>,
) {
    let cluster = member.name.clone();
    let shape = cache::Shape::of(&gvr);
    let mut rv = from.unwrap_or_default();
    // With watch-list, the member marks the end of its initial events itself.
    let await_marker = watch_list && rv.is_empty();
    let mut initial_sent = false;
    let mut down: Option<String> = None;
    loop {
        let mut q = vec![
            "watch=1".to_string(),
            "allowWatchBookmarks=true".to_string(),
            format!("resourceVersion={}", fanout::encode(&rv)),
        ];
        if !sel.label_text.is_empty() {
            q.push(format!("labelSelector={}", fanout::encode(&sel.label_text)));
        }
        if !sel.field_text.is_empty() {
            q.push(format!("fieldSelector={}", fanout::encode(&sel.field_text)));
        }
        if await_marker && !initial_sent {
            q.push("sendInitialEvents=true".into());
            q.push("resourceVersionMatch=NotOlderThan".into());
        }
        let path = format!(
            "{}?{}",
            gvr.collection_path(namespace.as_deref()),
            q.join("&")
        );
        let resp = member::send(
            &member,
            http::Method::GET,
            &path,
            "application/json",
            Some(&user),
            Vec::new(),
            None,
        )
        .await;
        let why = match resp {
            Ok(r) if r.status().is_success() => {
                if down.take().is_some() && tx.send(Msg::Down(cluster.clone(), None)).await.is_err()
                {
                    return;
                }
                if !initial_sent && !await_marker {
                    initial_sent = true;
                    // Initial events were not asked for: nothing to wait for.
                    if tx.send(Msg::InitialDone(cluster.clone())).await.is_err() {
                        return;
                    }
                }
                let body = http_body_util::BodyDataStream::new(r.into_body());
                let reader = futures::TryStreamExt::into_async_read(
                    futures::TryStreamExt::map_err(body, std::io::Error::other),
                );
                let mut lines = reader.lines();
                let mut why = None;
                while let Some(Ok(l)) = lines.next().await {
                    let Ok(mut ev) = serde_json::from_str::<Value>(&l) else {
                        continue;
                    };
                    let kind = match ev["type"].as_str() {
                        Some("ADDED") => EventType::Added,
                        Some("MODIFIED") => EventType::Modified,
                        Some("DELETED") => EventType::Deleted,
                        Some("BOOKMARK") => EventType::Bookmark,
                        Some("ERROR") => {
                            if ev.pointer("/object/code").and_then(Value::as_u64) == Some(410) {
                                let _ = tx.send(Msg::Expired(cluster.clone())).await;
                                return;
                            }
                            why = Some(
                                ev.pointer("/object/message")
                                    .and_then(Value::as_str)
                                    .unwrap_or("watch error")
                                    .to_string(),
                            );
                            break;
                        }
                        _ => continue,
                    };
                    let object = ev["object"].take();
                    let end_marker = kind == EventType::Bookmark
                        && object
                            .pointer("/metadata/annotations/k8s.io~1initial-events-end")
                            .is_some_and(|v| v == "true");
                    if end_marker && !initial_sent {
                        initial_sent = true;
                        if tx.send(Msg::InitialDone(cluster.clone())).await.is_err() {
                            return;
                        }
                    }
                    let member_rv = object
                        .pointer("/metadata/resourceVersion")
                        .and_then(Value::as_str)
                        .unwrap_or("")
                        .to_string();
                    if !member_rv.is_empty() {
                        rv = member_rv.clone();
                    }
                    let object = if kind == EventType::Bookmark {
                        Object::null()
                    } else {
                        Arc::new(Object::new(
                            &cache::annotate(object, &cluster, &gvr),
                            &shape,
                        ))
                    };
                    let event = Event {
                        kind,
                        revision: revision(&member_rv).unwrap_or(0),
                        object,
                    };
                    if tx.send(Msg::Event(cluster.clone(), event)).await.is_err() {
                        return;
                    }
                }
                why
            }
            Ok(r) if r.status() == StatusCode::GONE => {
                let _ = tx.send(Msg::Expired(cluster.clone())).await;
                return;
            }
            Ok(r) if r.status() == StatusCode::FORBIDDEN => {
                let _ = tx
                    .send(Msg::Down(cluster.clone(), Some("forbidden".into())))
                    .await;
                if !initial_sent {
                    let _ = tx.send(Msg::InitialDone(cluster.clone())).await;
                }
                // The caller may not watch there; nothing more will come.
                std::future::pending::<()>().await;
                return;
            }
            Ok(r) => Some(format!("watch answered HTTP {}", r.status())),
            Err(e) => Some(e.0),
        };
        if let Some(why) = why {
            if down.is_none() {
                down = Some(why.clone());
                if tx
                    .send(Msg::Down(cluster.clone(), Some(why)))
                    .await
                    .is_err()
                {
                    return;
                }
            }
            if !initial_sent {
                initial_sent = true;
                if tx.send(Msg::InitialDone(cluster.clone())).await.is_err() {
                    return;
                }
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
        if tx.is_closed() {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state() -> State {
        let (_tx, rx) = mpsc::channel(1);
        State {
            gvr: Gvr::new("", "v1", "pods", "Pod", true),
            rx,
            _tasks: TaskGuard(Vec::new()),
            rv: RvMap::new(),
            missing: BTreeMap::new(),
            pending_initial: ["m1".to_string(), "m2".to_string()].into_iter().collect(),
            initial_end_bookmark: true,
            bookmarks: true,
            output: Output::Json,
            include: crate::endpoints::table::IncludeObject::Metadata,
            headers_sent: false,
            deadline: Box::pin(tokio::time::sleep(Duration::from_secs(60))),
            ticker: tokio::time::interval(Duration::from_secs(60)),
            done: false,
        }
    }

    fn decode(b: Option<Bytes>) -> Value {
        serde_json::from_slice(&b.expect("an event")).expect("JSON")
    }

    #[tokio::test]
    async fn events_carry_the_full_map_and_bookmarks_name_missing_clusters() {
        let mut s = state();
        let pod = |name: &str, cluster: &str| {
            Arc::new(Object::new(
                &cache::annotate(
                    json!({"metadata": {"name": name, "namespace": "ns", "resourceVersion": "1"}}),
                    cluster,
                    &s_gvr(),
                ),
                &Default::default(),
            ))
        };
        fn s_gvr() -> Gvr {
            Gvr::new("", "v1", "pods", "Pod", true)
        }
        let e = decode(s.encode(Msg::Event(
            "m1".into(),
            Event {
                kind: EventType::Added,
                revision: 7,
                object: pod("a", "m1"),
            },
        )));
        assert_eq!(e["type"], "ADDED");
        let e = decode(s.encode(Msg::Event(
            "m2".into(),
            Event {
                kind: EventType::Modified,
                revision: 3,
                object: pod("b", "m2"),
            },
        )));
        let rv = e["object"]["metadata"]["resourceVersion"]
            .as_str()
            .expect("rv");
        let mut want = RvMap::new();
        want.insert("m1".into(), "7".into());
        want.insert("m2".into(), "3".into());
        assert_eq!(rv, resource_version::encode(&want));
        // The end of initial events waits for every member.
        assert!(s.encode(Msg::InitialDone("m1".into())).is_none());
        let b = decode(s.encode(Msg::InitialDone("m2".into())));
        assert_eq!(
            b["object"]["metadata"]["annotations"]["k8s.io/initial-events-end"],
            "true"
        );
        // A member going away is named on the next bookmark, and cleared.
        let b = decode(s.encode(Msg::Down("m2".into(), Some("refused".into()))));
        assert_eq!(b["type"], "BOOKMARK");
        assert_eq!(
            b["object"]["metadata"]["annotations"][MISSING_ANNOTATION],
            "m2"
        );
        let b = decode(s.encode(Msg::Down("m2".into(), None)));
        assert!(b["object"]["metadata"].get("annotations").is_none(), "{b}");
        // Falling behind ends the watch with 410.
        let e = decode(s.encode(Msg::Expired("m1".into())));
        assert_eq!(
            (e["type"].as_str(), e["object"]["code"].as_u64()),
            (Some("ERROR"), Some(410))
        );
        assert!(s.done);
    }
}
