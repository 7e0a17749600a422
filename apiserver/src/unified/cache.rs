//! Per-cluster watch caches: one [`Cache`] per (member, resource) that a
//! ResourceRegistry selects, filled by a list-then-watch loop with the control
//! plane's credentials for that member. It keeps the member's current objects
//! (annotated with their cluster, resourceVersion rewritten to the one-entry
//! multi-cluster form), the member's revision, a bounded history of events for
//! watches resuming from the past, and a broadcast of live events. Start at
//! [`Cache::spawn`].
//!
//! Objects are kept as their encoded JSON ([`Object`]), without their
//! `managedFields` (the members' server-side apply bookkeeping, often nearly
//! half of an object, which the unified view does not serve), packed against
//! a dictionary of their kind ([`crate::packed`]; one per kind for every
//! member, as a kind's objects look alike from member to member), with the
//! few fields selectors read alongside, so a list writes them out without parsing or
//! encoding anything; they sit in a persistent ordered map ([`Objects`]), so a
//! snapshot of a cache is a clone that costs nothing and stays valid (for the
//! pages of a list) while the cache moves on.
//!
//! A cache is *current* while its watch is connected and has heard from the
//! member recently; requests read live from members whose cache is not.

use std::collections::{BTreeSet, VecDeque};
use std::sync::{Arc, OnceLock, RwLock};
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::{AsyncBufReadExt, StreamExt};
use serde_json::{Value, json};
use tokio::sync::broadcast;

use super::Gvr;
use super::member::{self, Member};
use super::resource_version::{self, revision};
use super::table::Row;
use crate::packed::{Json, Packer, Packers};
use crate::registry::Printer;
use crate::registry::selector::{FieldSelector, LabelSelector};

/// Annotation naming the cluster an object came from (Karmada's).
pub const CLUSTER_ANNOTATION: &str = "resource.karmada.io/cached-from-cluster";

/// Events kept per cache for watches resuming from the past, at most: no more
/// than this many, and no more memory than a quarter of what the cache's
/// objects take (or [`HISTORY_MIN_BYTES`] for a small cache), since the old
/// versions of objects live on in the history. (kube-apiserver's watch cache
/// keeps 100 events per resource by default.) A watch from further back is
/// answered 410 Gone, and its client lists again.
pub const HISTORY: usize = 1024;
/// The memory a cache's history may always take: a few versions of a Node,
/// a dozen of a pod. Most of the unified view's caches are small (one
/// member's objects of one kind), and 64 KiB each came to tens of MiB at 100
/// members.
pub const HISTORY_MIN_BYTES: usize = 16 << 10;

/// What happened to an object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventType {
    Added,
    Modified,
    Deleted,
    /// Progress: the member reached `revision` (object is Null).
    Bookmark,
}

impl EventType {
    pub fn as_str(self) -> &'static str {
        match self {
            EventType::Added => "ADDED",
            EventType::Modified => "MODIFIED",
            EventType::Deleted => "DELETED",
            EventType::Bookmark => "BOOKMARK",
        }
    }
}

/// How a resource's objects are kept besides their JSON: the fields selectors
/// may name and the printer of their Table rows.
#[derive(Debug, Clone)]
pub struct Shape {
    /// The kind's selectable fields (see [`super::selectable_fields`]).
    pub fields: Vec<&'static str>,
    /// The kind's Table columns (see [`super::table::info_for`]).
    pub printer: Printer,
}

impl Shape {
    /// The shape of a member resource's objects.
    pub fn of(gvr: &Gvr) -> Shape {
        Shape {
            fields: super::selectable_fields(gvr),
            printer: super::table::info_for(gvr).printer,
        }
    }
}

impl Default for Shape {
    /// No selectable fields besides name and namespace; NAME and AGE columns.
    fn default() -> Shape {
        Shape {
            fields: Vec::new(),
            printer: Printer::NameAge,
        }
    }
}

/// Where `metadata` is in an object's JSON.
#[derive(Debug, Clone, Copy, PartialEq)]
struct MetadataSpan {
    start: u32,
    end: u32,
}

/// One member object as the unified view returns it (annotated, without
/// `metadata.managedFields`): its JSON, encoded once, its key, what label and field selectors read, and its Table
/// row.
#[derive(Debug, PartialEq)]
pub struct Object {
    /// The object's JSON (packed in a cache, see [`Object::packed`]).
    pub json: Json,
    /// `metadata.namespace` (`""` for cluster-scoped objects), shared with the cache's key.
    pub namespace: Arc<str>,
    /// `metadata.name`, shared with the cache's key.
    pub name: Arc<str>,
    /// The JSON of `metadata.namespace`, `metadata.name`, `metadata.labels` and
    /// the kind's selectable fields (see [`super::selectable_fields`]) at their
    /// paths, nothing else: a few hundred bytes, parsed only for a request
    /// with selectors, which match it as they would the whole object.
    selectable: Box<[u8]>,
    /// Where `metadata` is in `json`, so a Table row's PartialObjectMetadata
    /// and a metadata list are written from slices of it.
    metadata: Option<MetadataSpan>,
    /// The object's Table row cells (CLUSTER after NAME), encoded, ages left
    /// to render when served.
    row: Row,
}

impl Object {
    /// Encodes `object` once, leaving out `metadata.managedFields`, and keeps
    /// what selectors read and its Table row (`shape`: the kind's selectable
    /// fields and printer).
    pub fn new(object: &Value, shape: &Shape) -> Object {
        let (json, metadata) = encode(object);
        let mut selectable = json!({"metadata": {}});
        for field in ["metadata.namespace", "metadata.name", "metadata.labels"]
            .into_iter()
            .chain(shape.fields.iter().copied())
        {
            copy_field(object, &mut selectable, field);
        }
        let meta = |f: &str| {
            object
                .get("metadata")
                .and_then(|m| m.get(f))
                .and_then(Value::as_str)
                .unwrap_or("")
        };
        Object {
            json: Json::from(json),
            namespace: Arc::from(meta("namespace")),
            name: Arc::from(meta("name")),
            selectable: serde_json::to_vec(&selectable)
                .unwrap_or_default()
                .into_boxed_slice(),
            metadata,
            row: Row::new(&shape.printer, object),
        }
    }

    /// The JSON `null`, the object of bookmarks.
    pub fn null() -> Arc<Object> {
        static NULL: OnceLock<Arc<Object>> = OnceLock::new();
        NULL.get_or_init(|| {
            Arc::new(Object {
                json: Json::Plain(Bytes::from_static(b"null")),
                namespace: Arc::from(""),
                name: Arc::from(""),
                selectable: Box::from(&b"null"[..]),
                metadata: None,
                row: Row::default(),
            })
        })
        .clone()
    }

    /// The object parsed (for Tables, metadata and watch events).
    pub fn value(&self) -> Value {
        serde_json::from_slice(&self.json.bytes()).unwrap_or(Value::Null)
    }

    /// The object with its JSON packed by `packer`, as a cache keeps it.
    pub fn packed(mut self, packer: &Packer) -> Object {
        if let Json::Plain(json) = &self.json {
            self.json = packer.pack(json.clone());
        }
        self
    }

    /// What selectors read, parsed (see [`Object::selectable`]).
    pub fn selectable(&self) -> Value {
        serde_json::from_slice(&self.selectable).unwrap_or(Value::Null)
    }

    /// Whether the object passes a request's selectors (without parsing
    /// anything when there are none).
    pub fn matches(&self, labels: &LabelSelector, fields: &FieldSelector) -> bool {
        if labels.is_empty() && fields.is_empty() {
            return true;
        }
        let v = self.selectable();
        labels.matches(&v) && fields.matches(&v)
    }

    /// `metadata.namespace` (`""` for cluster-scoped objects).
    pub fn namespace(&self) -> &str {
        &self.namespace
    }

    /// `metadata.name`.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The object's key in a cache (sharing its strings).
    pub fn key(&self) -> ObjectKey {
        (self.namespace.clone(), self.name.clone())
    }

    /// An estimate of the heap the object takes: its JSON, its key strings
    /// (with their counts), what selectors read, and the `Arc` around it.
    pub fn heap_size(&self) -> usize {
        self.json.held()
            + self.namespace.len()
            + self.name.len()
            + 2 * 16
            + self.selectable.len()
            + self.row.heap_size()
            + std::mem::size_of::<Object>()
            + 16
    }

    /// The object's `metadata` as JSON (`{}` without one), a slice of the
    /// cached JSON (what Table rows and metadata lists carry).
    pub fn write_metadata(&self, out: &mut Vec<u8>) {
        let Some(span) = self.metadata else {
            out.extend_from_slice(b"{}");
            return;
        };
        let json = self.json.bytes();
        match json.get(span.start as usize..span.end as usize) {
            Some(metadata) => out.extend_from_slice(metadata),
            None => out.extend_from_slice(b"{}"),
        }
    }

    /// The object's Table row, its ages rendered at `now`.
    pub fn write_row_cells(&self, out: &mut Vec<u8>, now: jiff::Timestamp) {
        self.row.write(out, now);
    }
}

/// `object` encoded as `serde_json::to_vec` encodes it, but without
/// `metadata.managedFields`, with where its `metadata` is.
fn encode(object: &Value) -> (Vec<u8>, Option<MetadataSpan>) {
    let Value::Object(map) = object else {
        return (serde_json::to_vec(object).unwrap_or_default(), None);
    };
    let mut out = Vec::with_capacity(1024);
    let mut span = None;
    out.push(b'{');
    for (i, (k, v)) in map.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        let _ = serde_json::to_writer(&mut out, k);
        out.push(b':');
        match v {
            Value::Object(metadata) if k == "metadata" => {
                let start = out.len();
                out.push(b'{');
                let kept = metadata.iter().filter(|(mk, _)| *mk != "managedFields");
                for (j, (mk, mv)) in kept.enumerate() {
                    if j > 0 {
                        out.push(b',');
                    }
                    let _ = serde_json::to_writer(&mut out, mk);
                    out.push(b':');
                    let _ = serde_json::to_writer(&mut out, mv);
                }
                out.push(b'}');
                span = Some(MetadataSpan {
                    start: start as u32,
                    end: out.len() as u32,
                });
            }
            _ => {
                let _ = serde_json::to_writer(&mut out, v);
            }
        }
    }
    out.push(b'}');
    (out, span)
}

/// Copies the value at the dotted `path` of `from`, if any, to the same path of `to`.
fn copy_field(from: &Value, to: &mut Value, path: &str) {
    let mut node = from;
    for segment in path.split('.') {
        match node.get(segment) {
            Some(n) => node = n,
            None => return,
        }
    }
    let mut target = to;
    let mut segments = path.split('.').peekable();
    while let Some(segment) = segments.next() {
        let Some(map) = target.as_object_mut() else {
            return;
        };
        if segments.peek().is_none() {
            map.insert(segment.to_string(), node.clone());
            return;
        }
        target = map.entry(segment.to_string()).or_insert_with(|| json!({}));
    }
}

/// A cache's key of an object: (namespace, name).
pub type ObjectKey = (Arc<str>, Arc<str>);

/// A cache's objects in key order: a persistent map, so clones are cheap
/// snapshots that share everything the cache has not changed since.
pub type Objects = imbl::OrdMap<ObjectKey, Arc<Object>>;

/// One change of a member object (already annotated).
#[derive(Debug, Clone)]
pub struct Event {
    pub kind: EventType,
    /// The member's revision after the change.
    pub revision: u64,
    /// The object ([`Object::null`] for bookmarks).
    pub object: Arc<Object>,
}

/// The cache's view of its member.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Health {
    /// Listing for the first time (or again after a 410).
    Syncing,
    /// Watch connected.
    Current,
    /// The member could not be read: why.
    Down(String),
}

#[derive(Debug)]
struct Inner {
    objects: Objects,
    /// The heap `objects` take, estimated (see [`entry_bytes`]).
    bytes: usize,
    revision: u64,
    history: VecDeque<Event>,
    /// The heap the objects of `history` take, estimated.
    history_bytes: usize,
    /// History is complete for revisions above this.
    floor: u64,
    health: Health,
    last_contact: Instant,
    /// Whether the member has sent a bookmark on a watch: only a member that
    /// sends them while idle (kube-apiserver does, about once a minute) can be
    /// told silent from idle.
    bookmarks_seen: bool,
    synced_once: bool,
}

/// A member's objects of one resource.
#[derive(Debug)]
pub struct Cache {
    pub cluster: String,
    pub resource: Gvr,
    /// The namespaces the ResourceRegistries ask to cache (`None`: all);
    /// objects elsewhere are left out.
    pub namespaces: Option<BTreeSet<String>>,
    /// The kind's selectable fields and printer, for what is kept next to each object.
    shape: Shape,
    /// Packs the kind's objects (shared by every member's cache of the kind).
    packer: Arc<Packer>,
    inner: RwLock<Inner>,
    /// Made on the first subscription: a ring of 1,024 events is about 49 KB,
    /// and most caches (1,100 at 100 members with `flotilla up`'s default
    /// registry) are never watched.
    events: std::sync::OnceLock<broadcast::Sender<Event>>,
}

/// A consistent read of a cache: every object, at one revision.
pub struct Snapshot {
    pub objects: Objects,
    pub revision: u64,
}

/// Why a watch cannot start from a revision.
#[derive(Debug)]
pub enum ResumeError {
    /// Older than the history kept.
    TooOld { oldest: u64 },
    /// Not synced yet.
    NotReady,
}

/// The packers of cached objects, one per kind (group/version/plural).
static PACKERS: std::sync::LazyLock<Packers> = std::sync::LazyLock::new(Packers::default);

/// Longest a connected watch may be silent before the cache counts as lagging.
pub const LAG: Duration = Duration::from_secs(90);

impl Cache {
    fn new(cluster: &str, resource: Gvr, namespaces: Option<BTreeSet<String>>) -> Arc<Cache> {
        // a namespace scope means nothing for cluster-scoped kinds
        let namespaces = namespaces.filter(|_| resource.namespaced);
        let shape = Shape::of(&resource);
        let packer = PACKERS.get(&format!(
            "{}/{}/{}",
            resource.group, resource.version, resource.plural
        ));
        Arc::new(Cache {
            packer,
            cluster: cluster.to_string(),
            resource,
            namespaces,
            shape,
            events: std::sync::OnceLock::new(),
            inner: RwLock::new(Inner {
                objects: Objects::new(),
                bytes: 0,
                revision: 0,
                history: VecDeque::new(),
                history_bytes: 0,
                floor: 0,
                health: Health::Syncing,
                last_contact: Instant::now(),
                bookmarks_seen: false,
                synced_once: false,
            }),
        })
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Inner> {
        self.inner.read().unwrap_or_else(|e| e.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, Inner> {
        self.inner.write().unwrap_or_else(|e| e.into_inner())
    }

    /// Starts a cache and its list/watch loop; the task ends when the handle is aborted.
    pub fn spawn(
        member: Member,
        resource: Gvr,
        namespaces: Option<BTreeSet<String>>,
    ) -> (Arc<Cache>, tokio::task::JoinHandle<()>) {
        let cache = Cache::new(&member.name, resource, namespaces);
        let task = tokio::spawn(reflect(cache.clone(), member));
        (cache, task)
    }

    /// Whether the cache holds every object a request in `namespace` (all
    /// namespaces when `None`) may ask for.
    pub fn covers(&self, namespace: Option<&str>) -> bool {
        match (&self.namespaces, namespace) {
            (None, _) => true,
            (Some(scope), Some(ns)) => scope.contains(ns),
            (Some(_), None) => false,
        }
    }

    /// Encodes a member object (annotated) for the cache.
    fn object(&self, object: Value) -> Arc<Object> {
        let annotated = annotate(object, &self.cluster, &self.resource);
        Arc::new(Object::new(&annotated, &self.shape).packed(&self.packer))
    }

    /// Whether `object` belongs in the cache.
    fn in_scope(&self, object: &Value) -> bool {
        self.namespaces.as_ref().is_none_or(|scope| {
            scope.contains(
                object
                    .pointer("/metadata/namespace")
                    .and_then(Value::as_str)
                    .unwrap_or(""),
            )
        })
    }

    /// The health, with a connected but silent watch reported as lagging
    /// when the member is known to send bookmarks while idle (one that does
    /// not, like flotilla's own API server, is silent whenever nothing changes:
    /// its watch is judged only by its connection, which the member's
    /// `timeoutSeconds` renews every few minutes).
    pub fn health(&self) -> Health {
        let inner = self.read();
        match &inner.health {
            Health::Current if inner.bookmarks_seen && inner.last_contact.elapsed() > LAG => {
                Health::Down(format!(
                    "its watch has been silent for {}s",
                    inner.last_contact.elapsed().as_secs()
                ))
            }
            h => h.clone(),
        }
    }

    /// Whether requests may be answered from this cache.
    pub fn is_current(&self) -> bool {
        self.health() == Health::Current
    }

    /// Whether the cache has ever been filled (it may be stale now).
    pub fn has_data(&self) -> bool {
        self.read().synced_once
    }

    /// The member revision the cache has reached.
    pub fn revision(&self) -> u64 {
        self.read().revision
    }

    /// Every object and the revision they are at; a clone of the map, which
    /// costs nothing and does not change as the cache moves on.
    pub fn snapshot(&self) -> Snapshot {
        let inner = self.read();
        Snapshot {
            objects: inner.objects.clone(),
            revision: inner.revision,
        }
    }

    /// One object.
    pub fn get(&self, namespace: &str, name: &str) -> Option<Arc<Object>> {
        self.read()
            .objects
            .get(&(Arc::from(namespace), Arc::from(name)))
            .cloned()
    }

    /// Number of objects, the size of their JSON, and an estimate of the heap
    /// the cache takes for them (see [`Object::heap_size`], plus the keys and
    /// the map's nodes), for metrics and the bench.
    pub fn size(&self) -> (usize, usize, usize) {
        let inner = self.read();
        let mut bytes = 0;
        let mut heap = 0;
        for o in inner.objects.values() {
            bytes += o.json.len();
            heap += entry_bytes(o);
        }
        (inner.objects.len(), bytes, heap)
    }

    /// Live events, and the history after `from` (exclusive); subscribe first so
    /// nothing falls between the two (repeats are dropped by revision).
    pub fn resume(
        &self,
        from: u64,
    ) -> Result<(Vec<Event>, broadcast::Receiver<Event>), ResumeError> {
        let rx = self.subscribe();
        let inner = self.read();
        if !inner.synced_once {
            return Err(ResumeError::NotReady);
        }
        if from < inner.floor {
            return Err(ResumeError::TooOld {
                oldest: inner.floor,
            });
        }
        let replay = inner
            .history
            .iter()
            .filter(|e| e.revision > from)
            .cloned()
            .collect();
        Ok((replay, rx))
    }

    /// Live events and the current objects as synthetic ADDED events.
    pub fn subscribe_with_state(&self) -> (Vec<Event>, u64, broadcast::Receiver<Event>) {
        let rx = self.subscribe();
        let inner = self.read();
        let state = inner
            .objects
            .values()
            .map(|o| Event {
                kind: EventType::Added,
                revision: inner.revision,
                object: o.clone(),
            })
            .collect();
        (state, inner.revision, rx)
    }

    fn set_health(&self, health: Health) {
        let mut inner = self.write();
        if let Health::Down(why) = &health
            && inner.health != health
        {
            tracing::warn!(cluster = %self.cluster, resource = %self.resource.plural, reason = %why, "cache watch down");
        }
        inner.health = health;
    }

    /// Replaces the contents with a fresh list, emitting the difference.
    fn replace(&self, items: Vec<Value>, rv: u64) {
        let mut inner = self.write();
        let mut fresh = Objects::new();
        let mut bytes = 0;
        for item in items.into_iter().filter(|i| self.in_scope(i)) {
            let obj = self.object(item);
            bytes += entry_bytes(&obj);
            if let Some(old) = fresh.insert(obj.key(), obj) {
                bytes -= entry_bytes(&old);
            }
        }
        let mut diff = Vec::new();
        for (k, old) in &inner.objects {
            if !fresh.contains_key(k) {
                diff.push(Event {
                    kind: EventType::Deleted,
                    revision: rv,
                    object: old.clone(),
                });
            }
        }
        for (k, new) in &fresh {
            match inner.objects.get(k) {
                None => diff.push(Event {
                    kind: EventType::Added,
                    revision: rv,
                    object: new.clone(),
                }),
                Some(old) if old != new => diff.push(Event {
                    kind: EventType::Modified,
                    revision: rv,
                    object: new.clone(),
                }),
                Some(_) => {}
            }
        }
        inner.objects = fresh;
        inner.bytes = bytes;
        inner.revision = rv;
        // Events before a relist are unknown: resuming from before it is 410.
        inner.history.clear();
        inner.history_bytes = 0;
        inner.floor = rv;
        inner.synced_once = true;
        inner.last_contact = Instant::now();
        drop(inner);
        for e in diff {
            self.publish(e);
        }
        self.publish(Event {
            kind: EventType::Bookmark,
            revision: rv,
            object: Object::null(),
        });
    }

    fn apply(&self, kind: EventType, object: Value, rv: u64) {
        let mut inner = self.write();
        inner.last_contact = Instant::now();
        if kind == EventType::Bookmark {
            inner.bookmarks_seen = true;
        }
        if rv > inner.revision {
            inner.revision = rv;
        }
        if kind != EventType::Bookmark && !self.in_scope(&object) {
            // outside the registries' namespaces: only the revision moves
            return;
        }
        let event = if kind == EventType::Bookmark {
            Event {
                kind,
                revision: rv,
                object: Object::null(),
            }
        } else {
            let obj = self.object(object);
            let key = obj.key();
            let old = if kind == EventType::Deleted {
                inner.objects.remove(&key)
            } else {
                inner.bytes += entry_bytes(&obj);
                inner.objects.insert(key, obj.clone())
            };
            if let Some(old) = old {
                inner.bytes -= entry_bytes(&old);
            }
            let e = Event {
                kind,
                revision: rv,
                object: obj,
            };
            inner.history_bytes += entry_bytes(&e.object);
            inner.history.push_back(e.clone());
            let budget = HISTORY_MIN_BYTES.max(inner.bytes / 4);
            while inner.history.len() > HISTORY
                || (inner.history_bytes > budget && inner.history.len() > 1)
            {
                let Some(old) = inner.history.pop_front() else {
                    break;
                };
                inner.history_bytes -= entry_bytes(&old.object);
                inner.floor = old.revision;
            }
            e
        };
        drop(inner);
        self.publish(event);
    }

    /// A receiver of the live events (subscribe before reading the state, so
    /// that nothing falls between the two).
    fn subscribe(&self) -> broadcast::Receiver<Event> {
        self.events
            .get_or_init(|| broadcast::channel(1024).0)
            .subscribe()
    }

    /// Sends a live event to the watchers, if there ever were any.
    fn publish(&self, event: Event) {
        if let Some(tx) = self.events.get() {
            let _ = tx.send(event);
        }
    }
}

/// The heap an object takes in a cache, estimated: the object (see
/// [`Object::heap_size`]) and its entry in a map node (key, pointer, and the
/// node's unused room; the key's strings are the object's own).
fn entry_bytes(object: &Object) -> usize {
    object.heap_size() + 2 * (32 + 8)
}

/// (namespace, name) of an object.
pub fn key_of(v: &Value) -> (String, String) {
    let m = |f: &str| {
        v.pointer(&format!("/metadata/{f}"))
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string()
    };
    (m("namespace"), m("name"))
}

/// Marks an object with its cluster: the annotation, kind/apiVersion, and a
/// one-entry multi-cluster resourceVersion.
pub fn annotate(mut object: Value, cluster: &str, resource: &Gvr) -> Value {
    if !object.is_object() {
        return object;
    }
    if object
        .get("kind")
        .is_none_or(|k| k.as_str().is_none_or(str::is_empty))
    {
        object["kind"] = json!(resource.kind);
    }
    if object
        .get("apiVersion")
        .is_none_or(|k| k.as_str().is_none_or(str::is_empty))
    {
        object["apiVersion"] = json!(resource.api_version());
    }
    if !object["metadata"].is_object() {
        object["metadata"] = json!({});
    }
    let meta = &mut object["metadata"];
    let rv = meta
        .get("resourceVersion")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    if !rv.is_empty() {
        meta["resourceVersion"] = json!(resource_version::single(cluster, &rv));
    }
    if !meta["annotations"].is_object() {
        meta["annotations"] = json!({});
    }
    meta["annotations"][CLUSTER_ANNOTATION] = json!(cluster);
    object
}

/// The member's own resourceVersion of an annotated object.
pub fn member_rv(object: &Value, cluster: &str) -> Option<String> {
    let rv = object.pointer("/metadata/resourceVersion")?.as_str()?;
    match resource_version::parse(Some(rv)).ok()? {
        resource_version::Requested::Exact(map) => map.get(cluster).cloned(),
        _ => None,
    }
}

/// The list-then-watch loop.
async fn reflect(cache: Arc<Cache>, member: Member) {
    let mut backoff = Duration::from_millis(200);
    let path = cache.resource.collection_path(None);
    loop {
        // List.
        let listed = member::call(
            &member,
            http::Method::GET,
            &path,
            None,
            Vec::new(),
            Duration::from_secs(30),
        )
        .await;
        let answer = match listed {
            Ok(a) if a.status.is_success() => a,
            Ok(a) => {
                cache.set_health(Health::Down(format!("listing: {}", a.message())));
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(5));
                continue;
            }
            Err(e) => {
                cache.set_health(Health::Down(e.0));
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(5));
                continue;
            }
        };
        // Decoding and indexing a list of thousands of objects would hold a
        // runtime worker, and every task queued on it, for a tenth of a
        // second or more: done on the blocking pool.
        let filling = cache.clone();
        let filled = tokio::task::spawn_blocking(move || {
            let mut list = answer.json();
            let rv = list
                .pointer("/metadata/resourceVersion")
                .and_then(Value::as_str)
                .and_then(revision)
                .unwrap_or(0);
            let items = match list.get_mut("items").map(Value::take) {
                Some(Value::Array(items)) => items,
                _ => Vec::new(),
            };
            filling.replace(items, rv);
        })
        .await;
        if filled.is_err() {
            cache.set_health(Health::Down("filling the cache failed".into()));
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(Duration::from_secs(5));
            continue;
        }
        // Watch until it ends; re-watch from where it got, relist after a 410.
        loop {
            match watch(&cache, &member, &path).await {
                WatchEnd::Closed => {
                    tracing::debug!(cluster = %cache.cluster, resource = %cache.resource.plural, "cache watch ended; resuming");
                    backoff = Duration::from_millis(200);
                    continue;
                }
                WatchEnd::Expired => {
                    tracing::info!(cluster = %cache.cluster, resource = %cache.resource.plural, revision = cache.revision(), "cache relists: the member no longer has the events since its revision");
                    cache.set_health(Health::Syncing);
                    break;
                }
                WatchEnd::Failed(why) => {
                    cache.set_health(Health::Down(why));
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(5));
                    // Resume from the revision reached; a 410 then relists.
                    continue;
                }
            }
        }
    }
}

enum WatchEnd {
    /// The member ended it (timeout): resume.
    Closed,
    /// 410: relist.
    Expired,
    /// Could not connect or broke: why.
    Failed(String),
}

async fn watch(cache: &Cache, member: &Member, path: &str) -> WatchEnd {
    let from = cache.revision();
    let url = format!(
        "{path}?watch=1&allowWatchBookmarks=true&resourceVersion={from}&timeoutSeconds=300"
    );
    let resp = match member::send(
        member,
        http::Method::GET,
        &url,
        "application/json",
        None,
        Vec::new(),
        None,
    )
    .await
    {
        Ok(r) => r,
        Err(e) => return WatchEnd::Failed(e.0),
    };
    if resp.status() == http::StatusCode::GONE {
        return WatchEnd::Expired;
    }
    if !resp.status().is_success() {
        return WatchEnd::Failed(format!("watch answered HTTP {}", resp.status()));
    }
    cache.set_health(Health::Current);
    {
        cache.write().last_contact = Instant::now();
    }
    let body = http_body_util::BodyDataStream::new(resp.into_body());
    let reader = futures::TryStreamExt::into_async_read(futures::TryStreamExt::map_err(
        body,
        std::io::Error::other,
    ));
    let mut lines = reader.lines();
    while let Some(line) = lines.next().await {
        let line = match line {
            Ok(l) => l,
            Err(e) => return WatchEnd::Failed(format!("watch broke: {e}")),
        };
        if line.trim().is_empty() {
            continue;
        }
        let Ok(mut event) = serde_json::from_str::<Value>(&line) else {
            return WatchEnd::Failed("watch sent an undecodable event".into());
        };
        let kind = match event["type"].as_str() {
            Some("ADDED") => EventType::Added,
            Some("MODIFIED") => EventType::Modified,
            Some("DELETED") => EventType::Deleted,
            Some("BOOKMARK") => EventType::Bookmark,
            Some("ERROR") => {
                if event.pointer("/object/code").and_then(Value::as_u64) == Some(410) {
                    return WatchEnd::Expired;
                }
                let msg = event
                    .pointer("/object/message")
                    .and_then(Value::as_str)
                    .unwrap_or("watch error")
                    .to_string();
                return WatchEnd::Failed(msg);
            }
            _ => continue,
        };
        let object = event["object"].take();
        let rv = object
            .pointer("/metadata/resourceVersion")
            .and_then(Value::as_str)
            .and_then(revision)
            .unwrap_or(0);
        cache.apply(kind, object, rv);
    }
    WatchEnd::Closed
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::heap_size;

    fn pods() -> Gvr {
        Gvr::new("", "v1", "pods", "Pod", true)
    }

    fn pod(ns: &str, name: &str, rv: u64) -> Value {
        json!({"metadata": {"namespace": ns, "name": name, "resourceVersion": rv.to_string()}})
    }

    /// A quiet watch stays current unless the member is known to send
    /// bookmarks while idle: then silence past [`LAG`] means lagging.
    #[test]
    fn silence_counts_only_from_members_that_send_bookmarks() {
        let cache = Cache::new("m1", pods(), None);
        cache.replace(vec![pod("a", "p1", 5)], 10);
        cache.set_health(Health::Current);
        let long_ago = |c: &Cache| {
            c.write().last_contact = Instant::now()
                .checked_sub(LAG + Duration::from_secs(1))
                .expect("an instant that long ago");
        };
        long_ago(&cache);
        assert!(cache.is_current(), "{:?}", cache.health());
        cache.apply(
            EventType::Bookmark,
            json!({"metadata": {"resourceVersion": "11"}}),
            11,
        );
        assert!(cache.is_current());
        long_ago(&cache);
        assert!(
            matches!(cache.health(), Health::Down(why) if why.contains("silent")),
            "{:?}",
            cache.health()
        );
    }

    /// A pod modified again and again: the history keeps the last versions
    /// that fit its memory limit, not 1,024 of them.
    #[test]
    fn history_is_bounded_by_memory() {
        let cache = Cache::new("m1", pods(), None);
        cache.replace(vec![pod("a", "p1", 5)], 10);
        // padding that does not pack: letters from a simple generator
        let big = |rv: u64| {
            let mut state = rv.wrapping_mul(6364136223846793005).wrapping_add(1);
            let padding: String = (0..4096)
                .map(|_| {
                    state = state
                        .wrapping_mul(6364136223846793005)
                        .wrapping_add(1442695040888963407);
                    char::from(b'a' + (state >> 59) as u8 % 26)
                })
                .collect();
            let mut p = pod("a", "p1", rv);
            p["spec"] = json!({ "padding": padding });
            p
        };
        for rv in 11..=100 {
            cache.apply(EventType::Modified, big(rv), rv);
        }
        let inner = cache.read();
        assert!(
            inner.history_bytes <= HISTORY_MIN_BYTES,
            "{}",
            inner.history_bytes
        );
        // each event takes a little over 4 KiB
        let fit = HISTORY_MIN_BYTES / 4096;
        assert!(
            (fit / 2..=fit).contains(&inner.history.len()),
            "{}",
            inner.history.len()
        );
        assert_eq!(inner.bytes, entry_bytes(&cache_object(&inner, "p1")));
        let oldest = inner.floor;
        drop(inner);
        assert!(matches!(
            cache.resume(oldest - 1),
            Err(ResumeError::TooOld { .. })
        ));
        let (replay, _rx) = cache.resume(oldest).expect("resumable");
        assert_eq!(replay.last().map(|e| e.revision), Some(100));
    }

    fn cache_object(inner: &Inner, name: &str) -> Arc<Object> {
        inner
            .objects
            .values()
            .find(|o| o.name() == name)
            .cloned()
            .expect("cached")
    }

    #[test]
    fn replace_apply_resume() {
        let cache = Cache::new("m1", pods(), None);
        assert!(matches!(cache.resume(0), Err(ResumeError::NotReady)));
        cache.replace(vec![pod("a", "p1", 5), pod("b", "p2", 6)], 10);
        let (replay, _rx) = cache.resume(10).expect("resumable");
        assert!(replay.is_empty());
        cache.apply(EventType::Added, pod("a", "p0", 11), 11);
        cache.apply(EventType::Deleted, pod("b", "p2", 12), 12);
        let (replay, _rx) = cache.resume(10).expect("resumable");
        assert_eq!(
            replay.iter().map(|e| e.revision).collect::<Vec<_>>(),
            [11, 12]
        );
        assert!(matches!(cache.resume(9), Err(ResumeError::TooOld { .. })));
        let snap = cache.snapshot();
        let names: Vec<_> = snap
            .objects
            .values()
            .map(|o| o.name().to_string())
            .collect();
        assert_eq!(names, ["p0", "p1"]);
        assert_eq!(snap.revision, 12);
        let o = cache.get("a", "p1").expect("cached").value();
        assert_eq!(o["metadata"]["annotations"][CLUSTER_ANNOTATION], "m1");
        assert_eq!(o["kind"], "Pod");
        assert_eq!(member_rv(&o, "m1").as_deref(), Some("5"));
        // A snapshot stays as it was while the cache moves on.
        cache.apply(EventType::Added, pod("b", "p3", 13), 13);
        assert_eq!(snap.objects.len(), 2);
        assert_eq!(cache.snapshot().objects.len(), 3);
    }

    #[test]
    fn cached_pods_take_little_more_than_their_json() {
        // A pod as the simulated members serve it (with managedFields).
        let pod = json!({"kind":"Pod","apiVersion":"v1","metadata":{"name":"web-7957885594-7sp46","generateName":"web-7957885594-","namespace":"default","uid":"d72ad2d0-bcfa-471c-9613-d3ca3fd147a4","resourceVersion":"86","creationTimestamp":"2026-11-26T08:13:34Z","labels":{"app":"web","pod-template-hash":"7957885594"},"ownerReferences":[{"apiVersion":"apps/v1","kind":"ReplicaSet","name":"web-7957885594","uid":"05f46c54-a829-49c8-8563-974dc3606215","controller":true,"blockOwnerDeletion":true}],
            "managedFields":[{"manager":"kube-controller-manager","operation":"Update","apiVersion":"v1","time":"2026-11-26T08:13:34Z","fieldsType":"FieldsV1","fieldsV1":{"f:metadata":{"f:labels":{"f:app":{},"f:pod-template-hash":{}},"f:ownerReferences":{"k:{\"uid\":\"05f46c54\"}":{".":{},"f:apiVersion":{},"f:blockOwnerDeletion":{},"f:controller":{},"f:kind":{},"f:name":{},"f:uid":{}}}},"f:spec":{"f:containers":{"k:{\"name\":\"nginx\"}":{".":{},"f:image":{},"f:imagePullPolicy":{},"f:name":{},"f:resources":{},"f:terminationMessagePath":{},"f:terminationMessagePolicy":{}}},"f:dnsPolicy":{},"f:enableServiceLinks":{},"f:restartPolicy":{},"f:schedulerName":{},"f:securityContext":{},"f:terminationGracePeriodSeconds":{}}}},
                {"manager":"kube-scheduler","operation":"Update","apiVersion":"v1","time":"2026-11-26T08:13:34Z","fieldsType":"FieldsV1","fieldsV1":{"f:spec":{"f:nodeName":{}}}},
                {"manager":"kubelet","operation":"Update","apiVersion":"v1","time":"2026-11-26T08:13:34Z","fieldsType":"FieldsV1","fieldsV1":{"f:status":{"f:conditions":{"k:{\"type\":\"Ready\"}":{".":{},"f:lastProbeTime":{},"f:lastTransitionTime":{},"f:status":{},"f:type":{}}},"f:containerStatuses":{},"f:hostIP":{},"f:phase":{},"f:podIP":{},"f:startTime":{}}},"subresource":"status"}]},
            "spec":{"containers":[{"name":"nginx","image":"nginx","resources":{},"imagePullPolicy":"Always","terminationMessagePath":"/dev/termination-log","terminationMessagePolicy":"File"}],"restartPolicy":"Always","dnsPolicy":"ClusterFirst","terminationGracePeriodSeconds":30,"schedulerName":"default-scheduler","securityContext":{},"enableServiceLinks":true,"nodeName":"member1-node-0"},
            "status":{"phase":"Running","conditions":[{"type":"Ready","status":"True","lastProbeTime":null,"lastTransitionTime":"2026-11-26T08:13:34Z"},{"type":"PodScheduled","status":"True","lastProbeTime":null,"lastTransitionTime":"2026-11-26T08:13:34Z"}],"hostIP":"172.18.0.2","podIP":"10.244.0.3","startTime":"2026-11-26T08:13:34Z","qosClass":"BestEffort","containerStatuses":[{"name":"nginx","image":"nginx","imageID":"nginx@sha256:96e5","containerID":"containerd://284f","ready":true,"started":true,"restartCount":0,"state":{"running":{"startedAt":"2026-11-26T08:13:34Z"}},"lastState":{}}]}});
        let json = serde_json::to_vec(&pod).expect("json").len();
        let heap = heap_size(&pod);
        let ratio = heap as f64 / json as f64;
        eprintln!("pod: {json} bytes of JSON, about {heap} bytes parsed ({ratio:.1}x)");
        assert!((2.0..8.0).contains(&ratio), "{ratio}");
        // As the cache keeps it: the JSON without managedFields, the
        // selectable fields and the row.
        let cached = Object::new(&pod, &Shape::of(&pods()));
        let kept = cached.heap_size() as f64 / json as f64;
        eprintln!("cached: about {} bytes ({kept:.2}x)", cached.heap_size());
        assert!(kept < 0.9, "{kept}");
        let mut served = pod.clone();
        served["metadata"]
            .as_object_mut()
            .expect("metadata")
            .shift_remove("managedFields");
        assert_eq!(cached.value(), served);
        assert_eq!(
            (cached.namespace(), cached.name()),
            ("default", "web-7957885594-7sp46")
        );
        // Selectors see in it what they see in the whole pod.
        for (labels, fields) in [
            ("app=web", "status.phase=Running"),
            ("app=web,pod-template-hash", "spec.nodeName=member1-node-0"),
            ("app!=web", ""),
            ("", "status.phase!=Running"),
            (
                "",
                "metadata.name=web-7957885594-7sp46,metadata.namespace=default",
            ),
            ("", "spec.hostNetwork=true"),
            ("", "status.nominatedNodeName="),
        ] {
            let l = LabelSelector::parse(labels).expect("labels");
            let f = FieldSelector::parse(fields, &fields_of_pods()).expect("fields");
            assert_eq!(
                cached.matches(&l, &f),
                l.matches(&pod) && f.matches(&pod),
                "{labels} / {fields}"
            );
        }
    }

    fn fields_of_pods() -> Vec<&'static str> {
        crate::unified::selectable_fields(&pods())
    }

    #[test]
    fn relist_emits_the_difference() {
        let cache = Cache::new("m1", pods(), None);
        cache.replace(vec![pod("a", "p1", 5), pod("a", "p2", 6)], 10);
        let mut rx = cache.subscribe();
        cache.replace(vec![pod("a", "p2", 6), pod("a", "p3", 20)], 20);
        let mut got = Vec::new();
        while let Ok(e) = rx.try_recv() {
            got.push((e.kind, e.object.name().to_string()));
        }
        assert_eq!(
            got,
            [
                (EventType::Deleted, "p1".to_string()),
                (EventType::Added, "p3".to_string()),
                (EventType::Bookmark, String::new()),
            ]
        );
    }

    #[test]
    fn a_namespace_scope_keeps_only_its_namespaces() {
        let scope: BTreeSet<String> = ["team-a".to_string()].into();
        let cache = Cache::new("m1", pods(), Some(scope));
        assert!(cache.covers(Some("team-a")));
        assert!(!cache.covers(Some("team-b")));
        assert!(
            !cache.covers(None),
            "an all-namespaces list needs more than the cache"
        );
        cache.replace(vec![pod("team-a", "x", 5), pod("team-b", "y", 6)], 6);
        let all = cache.snapshot();
        assert_eq!(all.objects.len(), 1);
        cache.apply(EventType::Added, pod("team-b", "z", 7), 7);
        cache.apply(EventType::Added, pod("team-a", "w", 8), 8);
        assert_eq!(cache.snapshot().objects.len(), 2);
        assert_eq!(cache.revision(), 8);
        // cluster-scoped kinds ignore a scope
        let mut nodes = pods();
        nodes.namespaced = false;
        let c = Cache::new("m1", nodes, Some(BTreeSet::new()));
        assert!(c.covers(None));
    }
}
