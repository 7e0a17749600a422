//! The unified multi-cluster view: Karmada's karmada-search proxy
//! (`/apis/search.karmada.io/v1alpha1/proxying/karmada/proxy/...`), served by the
//! aggregated API server. Every member cluster's read API as one cluster:
//! discovery is the union of the members', get/list/watch merge every member's
//! objects in one global order (namespace, name, cluster) with a multi-cluster
//! resourceVersion, every object says where it came from, Tables get a CLUSTER
//! column, and requests on one object go to the member that holds it, as the
//! caller.
//!
//! Where to start: [`handle`] routes a request; [`Unified::run`] keeps the
//! per-cluster caches in line with the ResourceRegistry objects; [`fanout`] reads
//! members (cache or live); [`watch`] merges watches; [`resource_version`] is the
//! multi-cluster resourceVersion and continue token; [`access`] checks what a
//! caller may read from a cache.

pub mod access;
pub mod cache;
pub mod discovery;
pub mod fanout;
pub mod member;
pub mod merge;
pub mod metrics;
pub mod resource_version;
pub mod table;
pub mod watch;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderValue, Method, Response, StatusCode, header};
use http_body_util::{BodyExt, Full};
use serde_json::{Value, json};

use crate::endpoints::codec::{self, Output};
use crate::endpoints::request_info::{self, Route, Verb};
use crate::endpoints::table::{IncludeObject, ListMeta};
use crate::endpoints::{Body, error_response, json_response};
use crate::registry::selector::{FieldSelector, LabelSelector};
use crate::registry::store::Store;
use crate::server::auth::User;
use crate::status::{ApiError, Cause};
use cache::Cache;
use fanout::{ListRequest, Part, Target};
use resource_version::{Continue, Requested, RvMap};

/// Karmada's unified-view path prefix.
pub const PREFIX: &str = "/apis/search.karmada.io/v1alpha1/proxying/karmada/proxy";

/// karmada-search's older, read-only cache path: the same reads under another
/// prefix (`kubectl get --raw CACHE_PREFIX/apis/apps/v1/deployments`).
pub const CACHE_PREFIX: &str = "/apis/search.karmada.io/v1alpha1/search/cache";

/// The unified-view path after whichever prefix `path` starts with, and
/// whether it was the read-only cache prefix.
pub fn strip_prefix(path: &str) -> Option<(&str, bool)> {
    for (prefix, read_only) in [(PREFIX, false), (CACHE_PREFIX, true)] {
        if let Some(rest) = path.strip_prefix(prefix)
            && (rest.is_empty() || rest.starts_with('/'))
        {
            return Some((rest, read_only));
        }
    }
    None
}

/// Header asking for live reads from every member (no cache), per request.
pub const LIVE_HEADER: &str = "x-flotilla-consistency";
/// Header asking for a strict answer: any member missing → 503.
pub const STRICT_HEADER: &str = "x-flotilla-partial";

/// A member resource: group, version, plural, and what discovery says of it.
/// Two are the same resource when group, version, plural, kind and scope are.
#[derive(Debug, Clone)]
pub struct Gvr {
    pub group: String,
    pub version: String,
    pub plural: String,
    pub kind: String,
    pub namespaced: bool,
    /// A custom resource's printer columns, from its CRD in a member.
    pub columns: Option<Arc<Vec<crate::registry::crd::PrinterColumn>>>,
}

impl Gvr {
    /// A resource without printer columns (built-ins, and custom kinds until
    /// their CRD is read).
    pub fn new(group: &str, version: &str, plural: &str, kind: &str, namespaced: bool) -> Gvr {
        Gvr {
            group: group.to_string(),
            version: version.to_string(),
            plural: plural.to_string(),
            kind: kind.to_string(),
            namespaced,
            columns: None,
        }
    }

    fn identity(&self) -> (&str, &str, &str, &str, bool) {
        (
            &self.group,
            &self.version,
            &self.plural,
            &self.kind,
            self.namespaced,
        )
    }
}

impl PartialEq for Gvr {
    fn eq(&self, other: &Self) -> bool {
        self.identity() == other.identity()
    }
}

impl Eq for Gvr {}

impl std::hash::Hash for Gvr {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.identity().hash(state);
    }
}

impl Gvr {
    /// `group/version`, or `version` for the core group.
    pub fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.clone()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }

    /// The collection's path on a member.
    pub fn collection_path(&self, namespace: Option<&str>) -> String {
        let base = if self.group.is_empty() {
            format!("/api/{}", self.version)
        } else {
            format!("/apis/{}/{}", self.group, self.version)
        };
        match namespace {
            Some(ns) if self.namespaced => format!("{base}/namespaces/{ns}/{}", self.plural),
            _ => format!("{base}/{}", self.plural),
        }
    }
}

/// How the unified view runs.
#[derive(Debug, Clone)]
pub struct Config {
    /// Longest a member may take to answer before it is reported missing.
    pub member_timeout: Duration,
    /// Never answer from caches (every read live).
    pub force_live: bool,
    /// Any member missing fails the request (503) instead of a partial answer.
    pub strict: bool,
    /// Continue-token snapshots kept.
    pub snapshots: usize,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            member_timeout: Duration::from_secs(5),
            force_live: false,
            strict: false,
            snapshots: 64,
        }
    }
}

struct CacheEntry {
    cache: Arc<Cache>,
    task: tokio::task::JoinHandle<()>,
    /// What the cache's client was built from.
    fingerprint: String,
}

impl Drop for CacheEntry {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The unified view's state.
pub struct Unified {
    /// The aggregated server's store: Clusters and ResourceRegistries.
    pub store: Arc<Store>,
    pub members: member::Members,
    pub config: Config,
    pub access: access::Access,
    pub resources: discovery::Resources,
    pub metrics: metrics::Metrics,
    caches: RwLock<HashMap<(String, String, String), CacheEntry>>,
    /// The members' snapshots that continue tokens page through, by snapshot.
    snapshots: Mutex<lru::LruCache<String, Arc<merge::View>>>,
}

const CLUSTERS: &str = "/cluster.karmada.io/clusters/";
const REGISTRIES: &str = "/search.karmada.io/resourceregistries/";

impl Unified {
    pub fn new(
        store: Arc<Store>,
        credentials: Option<crate::cluster_proxy::CredentialsSource>,
        config: Config,
    ) -> Arc<Unified> {
        let size = std::num::NonZeroUsize::new(config.snapshots.max(1))
            .unwrap_or(std::num::NonZeroUsize::MIN);
        Arc::new(Unified {
            store,
            members: member::Members::new(credentials),
            config,
            access: access::Access::new(access::Ttl::default()),
            resources: discovery::Resources::default(),
            metrics: metrics::Metrics::default(),
            caches: RwLock::new(HashMap::new()),
            snapshots: Mutex::new(lru::LruCache::new(size)),
        })
    }

    /// Every Cluster object, by name.
    pub fn clusters(&self) -> Vec<Value> {
        self.store
            .storage
            .snapshot()
            .range(CLUSTERS, None)
            .map(|kv| Arc::unwrap_or_clone(kv.value()))
            .collect()
    }

    /// The cache of `gvr` in `cluster`, if a registry selects it.
    pub fn cache(&self, cluster: &str, gvr: &Gvr) -> Option<Arc<Cache>> {
        self.caches
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(&(cluster.to_string(), gvr.group.clone(), gvr.plural.clone()))
            .map(|e| e.cache.clone())
    }

    /// Every cache (for metrics and the bench).
    pub fn all_caches(&self) -> Vec<Arc<Cache>> {
        self.caches
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .values()
            .map(|e| e.cache.clone())
            .collect()
    }

    /// The members in scope, with their clients and caches of `gvr` (a cache
    /// only when it holds everything of `namespace`, all when `None`).
    async fn targets(
        &self,
        gvr: Option<&Gvr>,
        namespace: Option<&str>,
        clusters: &ClusterFilter,
    ) -> Vec<Target> {
        // each member's client (its credentials may be read from the host) side by side
        let admitted = self.clusters().into_iter().filter_map(|c| {
            let name = c
                .pointer("/metadata/name")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string();
            clusters.admits(&name).then_some((name, c))
        });
        futures::future::join_all(admitted.map(|(name, c)| async move {
            let member = self.members.get(&c).await;
            let cache = gvr
                .and_then(|g| self.cache(&name, g))
                .filter(|c| c.covers(namespace));
            Target {
                name,
                member,
                cache,
            }
        }))
        .await
    }

    /// Resolves a member resource, refreshing the discovery map when it misses.
    async fn resolve(&self, group: &str, version: &str, plural: &str) -> Option<Gvr> {
        if let Some(g) = self.resources.by_plural(group, version, plural) {
            return Some(g);
        }
        if self.resources.older_than(Duration::from_secs(2)) {
            self.refresh_resources().await;
        }
        self.resources.by_plural(group, version, plural)
    }

    async fn refresh_resources(&self) {
        let targets = self.targets(None, None, &ClusterFilter::default()).await;
        let members: Vec<member::Member> =
            targets.into_iter().filter_map(|t| t.member.ok()).collect();
        self.resources
            .refresh(&members, self.config.member_timeout)
            .await;
    }

    /// Keeps the caches in line with the ResourceRegistries and Clusters, until
    /// the task is dropped.
    pub async fn run(self: Arc<Self>) {
        let mut seen = u64::MAX;
        let mut resolved = false;
        let mut retry = KindsRetry::default();
        let mut clusters = usize::MAX;
        loop {
            let (revision, now) = {
                let snapshot = self.store.storage.snapshot();
                (snapshot.revision, snapshot.range(CLUSTERS, None).count())
            };
            if now != clusters {
                // a member joined or left: its kinds are worth a prompt look
                clusters = now;
                retry = KindsRetry::default();
            }
            let refresh = retry.due(self.resources.age(), resolved);
            if revision != seen || refresh {
                if refresh {
                    self.refresh_resources().await;
                    if !resolved {
                        retry.back_off();
                    }
                }
                resolved = self.reconcile().await;
                if resolved {
                    seen = revision;
                    retry = KindsRetry::default();
                }
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    /// Starts and stops caches; false when something could not be resolved yet.
    async fn reconcile(&self) -> bool {
        let snapshot = self.store.storage.snapshot();
        // Each Cluster parsed once (this runs on every change of the store,
        // which at 100 members is several times a second: deep copies of
        // every Cluster for every selected kind were megabytes each time).
        let clusters: Vec<(Arc<Value>, flotilla_api::cluster::Cluster)> = snapshot
            .range(CLUSTERS, None)
            .filter_map(|kv| {
                let object = kv.value();
                let typed = serde::Deserialize::deserialize(object.as_ref()).ok()?;
                Some((object, typed))
            })
            .collect();
        let registries: Vec<flotilla_api::search::ResourceRegistrySpec> = snapshot
            .range(REGISTRIES, None)
            .filter_map(|kv| serde::Deserialize::deserialize(&kv.value()["spec"]).ok())
            .collect();
        let mut complete = true;
        // (cluster, group, plural) → (index in `clusters`, resource, namespaces; None = all)
        type Scope = Option<std::collections::BTreeSet<String>>;
        let mut desired: HashMap<(String, String, String), (usize, Gvr, Scope)> = HashMap::new();
        for registry in &registries {
            for (index, (_, typed)) in clusters.iter().enumerate() {
                if !flotilla_api::placement::cluster_matches(typed, &registry.target_cluster) {
                    continue;
                }
                let name = typed.metadata.name.clone().unwrap_or_default();
                for sel in &registry.resource_selectors {
                    match self.resources.by_kind(&sel.api_version, &sel.kind) {
                        Some(gvr) => {
                            let key = (name.clone(), gvr.group.clone(), gvr.plural.clone());
                            let entry = desired.entry(key).or_insert_with(|| {
                                (index, gvr, Some(std::collections::BTreeSet::new()))
                            });
                            // the union of the selectors' namespaces; an empty one is all
                            match (&mut entry.2, sel.namespace.as_str()) {
                                (scope, "") => *scope = None,
                                (Some(scope), ns) => {
                                    scope.insert(ns.to_string());
                                }
                                (None, _) => {}
                            }
                        }
                        None => complete = false,
                    }
                }
            }
        }
        // Clients first (they may need the credentials source), one per cluster.
        let mut clients: HashMap<usize, Option<member::Member>> = HashMap::new();
        for (index, _, _) in desired.values() {
            if !clients.contains_key(index) {
                let client = self.members.get(&clusters[*index].0).await.ok();
                clients.insert(*index, client);
            }
        }
        let mut wanted = Vec::new();
        for (key, (index, gvr, scope)) in desired {
            match clients.get(&index).cloned().flatten() {
                Some(m) => wanted.push((key, m, gvr, scope)),
                None => complete = false,
            }
        }
        let mut caches = self.caches.write().unwrap_or_else(|e| e.into_inner());
        let keep: std::collections::HashSet<_> =
            wanted.iter().map(|(k, _, _, _)| k.clone()).collect();
        caches.retain(|k, _| keep.contains(k));
        for (key, member, gvr, scope) in wanted {
            let scope = scope.filter(|_| gvr.namespaced);
            let stale = caches.get(&key).is_some_and(|e| {
                e.fingerprint != member.fingerprint || e.cache.namespaces != scope
            });
            if stale {
                caches.remove(&key);
            }
            caches.entry(key).or_insert_with(|| {
                tracing::info!(cluster = %member.name, resource = %gvr.plural, "caching");
                let fingerprint = member.fingerprint.clone();
                let (cache, task) = Cache::spawn(member, gvr, scope);
                CacheEntry {
                    cache,
                    task,
                    fingerprint,
                }
            });
        }
        complete
    }

    fn count_missing(&self, missing: &[(String, String)]) {
        if !missing.is_empty() {
            self.metrics
                .partial(missing.iter().map(|(c, _)| c.as_str()));
        }
    }

    /// Prometheus text of the unified view's metrics.
    pub fn metrics_text(&self) -> String {
        self.metrics.encode(&self.all_caches())
    }
}

/// When the members' kinds are read again before the caches are reconciled:
/// every 30 s, and sooner while a registry names a kind no member was known
/// to serve: after 2 s, then 4, 8, 16 and 30 s (a member that just joined
/// gets its caches within seconds instead of at the next 30 s read, when they
/// would all start at once; a kind no member serves costs a read of every
/// member only every 30 s). A change in the Clusters starts over at 2 s.
#[derive(Debug, Clone, Copy, PartialEq)]
struct KindsRetry {
    wait: Duration,
}

impl KindsRetry {
    const FIRST: Duration = Duration::from_secs(2);
    const EVERY: Duration = Duration::from_secs(30);

    /// Whether a read is due, `age` after the last one (None: never read).
    fn due(&self, age: Option<Duration>, resolved: bool) -> bool {
        let limit = if resolved { Self::EVERY } else { self.wait };
        age.is_none_or(|age| age > limit)
    }

    /// After a read that left something unresolved.
    fn back_off(&mut self) {
        self.wait = (self.wait * 2).min(Self::EVERY);
    }
}

impl Default for KindsRetry {
    fn default() -> Self {
        KindsRetry { wait: Self::FIRST }
    }
}

/// The synthetic `cluster` field-selector terms (`cluster=a`, `cluster!=b`).
#[derive(Debug, Default, Clone)]
pub struct ClusterFilter {
    terms: Vec<(bool, String)>,
}

impl ClusterFilter {
    pub fn admits(&self, cluster: &str) -> bool {
        self.terms.iter().all(|(eq, v)| (v == cluster) == *eq)
    }
}

/// Splits the `cluster` terms off a field selector; the rest goes to members.
pub fn split_cluster_terms(selector: &str) -> (ClusterFilter, String) {
    let mut filter = ClusterFilter::default();
    let mut rest = Vec::new();
    for term in selector.split(',').map(str::trim).filter(|t| !t.is_empty()) {
        let parsed = if let Some(v) = term.strip_prefix("cluster!=") {
            Some((false, v))
        } else if let Some(v) = term.strip_prefix("cluster==") {
            Some((true, v))
        } else {
            term.strip_prefix("cluster=").map(|v| (true, v))
        };
        match parsed {
            Some((eq, v)) => filter.terms.push((eq, v.trim().to_string())),
            None => rest.push(term),
        }
    }
    (filter, rest.join(","))
}

fn full(bytes: impl Into<Bytes>) -> Body {
    Full::new(bytes.into())
        .map_err(|never| match never {})
        .boxed_unsync()
}

/// Appends Warning headers (kubectl prints them).
fn add_warnings(response: &mut Response<Body>, warnings: &[String]) {
    for w in warnings {
        let text = format!("299 - \"{}\"", w.replace('\\', "\\\\").replace('"', "\\\""));
        if let Ok(v) = HeaderValue::from_str(&text) {
            response.headers_mut().append(header::WARNING, v);
        }
    }
}

/// 503 naming every missing cluster in `details.causes`.
fn strict_failure(missing: &[(String, String)]) -> ApiError {
    let mut e = ApiError::unavailable(format!(
        "{} cluster(s) did not answer: {}",
        missing.len(),
        missing
            .iter()
            .map(|(c, _)| c.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    ));
    e.details = Some(crate::status::Details {
        causes: missing
            .iter()
            .map(|(c, why)| Cause::new("ClusterUnavailable", c.clone(), why.clone()))
            .collect(),
        ..Default::default()
    });
    e
}

/// Answers one request under [`PREFIX`] for `user` (authorized by the host for
/// Karmada's `proxying/proxy`).
pub async fn handle<B>(
    u: &Arc<Unified>,
    parts: http::request::Parts,
    body: B,
    user: Arc<User>,
) -> Response<Body>
where
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let mut warnings = Vec::new();
    let mut response = match route(u, &parts, body, &user, &mut warnings).await {
        Ok(r) => r,
        Err(e) => error_response(&e),
    };
    add_warnings(&mut response, &warnings);
    response
}

async fn route<B>(
    u: &Arc<Unified>,
    parts: &http::request::Parts,
    body: B,
    user: &Arc<User>,
    warnings: &mut Vec<String>,
) -> Result<Response<Body>, ApiError>
where
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let full_path = parts.uri.path();
    let (rest, read_only) = strip_prefix(full_path).unwrap_or(("", false));
    if read_only && parts.method != Method::GET && parts.method != Method::HEAD {
        return Err(ApiError::method_not_allowed(format!(
            "{CACHE_PREFIX} is read-only: use {PREFIX} to change member objects"
        )));
    }
    let rest = if rest.is_empty() { "/" } else { rest };
    let path = rest.trim_end_matches('/');
    let query = request_info::parse_query(parts.uri.query());
    let accept = parts
        .headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("application/json")
        .to_string();
    let is_get = parts.method == Method::GET || parts.method == Method::HEAD;
    match path {
        "/version" if is_get => {
            return Ok(json_response(
                StatusCode::OK,
                "application/json",
                serde_json::to_vec(&crate::endpoints::discovery::version()).unwrap_or_default(),
            ));
        }
        "" | "/healthz" | "/livez" | "/readyz" if is_get => {
            let mut r = Response::new(full("ok"));
            r.headers_mut()
                .insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain"));
            return Ok(r);
        }
        _ => {}
    }
    let route = request_info::parse(&parts.method, path, &query);
    let discovery_path = matches!(route, Route::GroupVersion { .. } | Route::Group(_))
        || path == "/api"
        || path == "/apis"
        || path.starts_with("/openapi/");
    if discovery_path {
        if !is_get {
            return Err(ApiError::method_not_allowed(
                "the server does not allow this method on the requested resource",
            ));
        }
        return discovery(u, path, parts.uri.query(), &accept, user, warnings).await;
    }
    let Route::Resource(info) = route else {
        return Err(ApiError::no_route());
    };
    let gvr = u
        .resolve(&info.group, &info.version, &info.resource)
        .await
        .ok_or_else(|| {
            ApiError::new(
                404,
                "NotFound",
                format!(
                    "the server could not find the requested resource: no member cluster serves {}",
                    crate::status::qualified(&info.resource, &info.group)
                ),
            )
        })?;
    if info.namespace.is_some() && !gvr.namespaced {
        return Err(ApiError::no_route());
    }
    let live_requested = u.config.force_live
        || parts
            .headers
            .get(LIVE_HEADER)
            .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"live"));
    let strict = u.config.strict
        || parts
            .headers
            .get(STRICT_HEADER)
            .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"strict"));
    let opts = Options {
        output: codec::negotiate(Some(&accept))?,
        include: IncludeObject::parse(query.get("includeObject").map(String::as_str)),
        live: live_requested,
        strict,
    };
    match (info.verb, info.subresource.as_deref()) {
        (Verb::List, None) => {
            list(
                u,
                &gvr,
                info.namespace.as_deref(),
                &query,
                user,
                &opts,
                warnings,
            )
            .await
        }
        (Verb::Watch, None) => {
            watch::serve(
                u,
                &gvr,
                info.namespace.as_deref(),
                &query,
                user,
                &opts,
                warnings,
            )
            .await
        }
        (Verb::Get, None) if query.get("watch").is_some_and(|w| w == "true" || w == "1") => {
            // A watch on one object: the list watch with a name selector.
            let mut q = query.clone();
            let name = info.name.clone().unwrap_or_default();
            let fs = q.get("fieldSelector").cloned().unwrap_or_default();
            let fs = if fs.is_empty() {
                format!("metadata.name={name}")
            } else {
                format!("{fs},metadata.name={name}")
            };
            q.insert("fieldSelector".into(), fs);
            watch::serve(
                u,
                &gvr,
                info.namespace.as_deref(),
                &q,
                user,
                &opts,
                warnings,
            )
            .await
        }
        (Verb::Get, None) => {
            let name = info.name.clone().unwrap_or_default();
            get(
                u,
                &gvr,
                info.namespace.as_deref(),
                &name,
                user,
                &opts,
                warnings,
            )
            .await
        }
        (Verb::Create, _) if info.name.is_none() => Err(ApiError::method_not_allowed(format!(
            "the unified view does not know which cluster to create {} in: create it through the \
             control plane (kubectl --context flotilla, with a PropagationPolicy) or in one member \
             through /apis/cluster.karmada.io/v1alpha1/clusters/NAME/proxy/",
            crate::status::qualified(&gvr.plural, &gvr.group)
        ))),
        (Verb::DeleteCollection, _) => Err(ApiError::method_not_allowed(
            "the unified view does not delete collections across clusters: delete through one \
             member's /apis/cluster.karmada.io/v1alpha1/clusters/NAME/proxy/",
        )),
        _ => {
            let name = info.name.clone().unwrap_or_default();
            forward(
                u,
                parts,
                body,
                &gvr,
                info.namespace.as_deref(),
                &name,
                rest,
                user,
                warnings,
            )
            .await
        }
    }
}

/// What the client asked for besides the resource.
pub struct Options {
    pub output: Output,
    pub include: IncludeObject,
    pub live: bool,
    pub strict: bool,
}

async fn discovery(
    u: &Arc<Unified>,
    path: &str,
    query: Option<&str>,
    accept: &str,
    user: &User,
    warnings: &mut Vec<String>,
) -> Result<Response<Body>, ApiError> {
    let targets = u.targets(None, None, &ClusterFilter::default()).await;
    let mut members = Vec::new();
    for t in targets {
        match t.member {
            Ok(m) => members.push(m),
            Err(e) => warnings.push(format!(
                "cluster {} is missing from discovery: {}",
                t.name, e.0
            )),
        }
    }
    let target = match query {
        Some(q) if !q.is_empty() => format!("{path}?{q}"),
        _ => path.to_string(),
    };
    let (doc, failed) =
        discovery::union(&members, &target, accept, user, u.config.member_timeout).await;
    for (c, why) in failed {
        warnings.push(format!("cluster {c} is missing from discovery: {why}"));
    }
    let (doc, content_type) = doc.ok_or_else(|| {
        if members.is_empty() {
            ApiError::unavailable("no member cluster is reachable")
        } else {
            ApiError::no_route()
        }
    })?;
    Ok(json_response(
        StatusCode::OK,
        &content_type,
        serde_json::to_vec(&doc).unwrap_or_default(),
    ))
}

/// Label and field selectors of a request (the `cluster` terms split off).
pub struct Selectors {
    pub labels: LabelSelector,
    pub fields: FieldSelector,
    pub label_text: String,
    pub field_text: String,
    pub clusters: ClusterFilter,
}

/// The fields besides `metadata.name` and `metadata.namespace` that field
/// selectors may name for a member resource: the host's own for the core kinds
/// members serve with selectable fields, none for the rest.
pub fn selectable_fields(gvr: &Gvr) -> Vec<&'static str> {
    let core = gvr.group.is_empty()
        && matches!(
            gvr.plural.as_str(),
            "pods"
                | "nodes"
                | "events"
                | "secrets"
                | "services"
                | "namespaces"
                | "replicationcontrollers"
        );
    if core {
        table::info_for(gvr).field_selectors
    } else {
        Vec::new()
    }
}

fn selectors(gvr: &Gvr, query: &HashMap<String, String>) -> Result<Selectors, ApiError> {
    let label_text = query.get("labelSelector").cloned().unwrap_or_default();
    let labels = LabelSelector::parse(&label_text).map_err(ApiError::bad_request)?;
    let (clusters, field_text) =
        split_cluster_terms(query.get("fieldSelector").map(String::as_str).unwrap_or(""));
    let fields = FieldSelector::parse(&field_text, &selectable_fields(gvr))
        .map_err(ApiError::bad_request)?;
    Ok(Selectors {
        labels,
        fields,
        label_text,
        field_text,
        clusters,
    })
}

/// Every member's part of a list, ready to be paged in global order, with the
/// map of member revisions.
pub struct Merged {
    pub view: merge::View,
    pub rv: RvMap,
}

#[allow(clippy::too_many_arguments)]
async fn gather(
    u: &Arc<Unified>,
    gvr: &Gvr,
    namespace: Option<&str>,
    sel: &Selectors,
    requested: &Requested,
    user: &User,
    opts: &Options,
    warnings: &mut Vec<String>,
) -> Result<Merged, ApiError> {
    if let Requested::Exact(map) = requested {
        let known: Vec<String> = u
            .clusters()
            .iter()
            .filter_map(|c| {
                c.pointer("/metadata/name")
                    .and_then(Value::as_str)
                    .map(String::from)
            })
            .collect();
        if let Some(unknown) = map.keys().find(|c| !known.contains(c)) {
            return Err(ApiError::gone(format!(
                "too old resource version: it names cluster \"{unknown}\", which is no longer registered"
            )));
        }
    }
    let targets = u.targets(Some(gvr), namespace, &sel.clusters).await;
    let req = ListRequest {
        gvr,
        namespace,
        labels: &sel.labels,
        fields: &sel.fields,
        label_text: &sel.label_text,
        field_text: &sel.field_text,
        requested,
        force_live: opts.live,
        user,
    };
    let started = std::time::Instant::now();
    let parts = futures::future::join_all(
        targets
            .iter()
            .map(|t| async { (t.name.clone(), fanout::list_one(u, t, &req).await) }),
    )
    .await;
    u.metrics.list(started.elapsed());
    let mut sources = Vec::new();
    let mut rv = RvMap::new();
    let mut missing = Vec::new();
    let mut forbidden = Vec::new();
    let total = parts.len();
    for (cluster, part) in parts {
        match part {
            Part::Items {
                objects,
                namespaces,
                revision,
                from_cache,
                warning,
            } => {
                u.metrics.member_list(from_cache);
                if let Some(w) = warning {
                    warnings.push(w);
                }
                if !revision.is_empty() {
                    rv.insert(cluster.clone(), revision);
                }
                sources.push(merge::Source {
                    cluster,
                    objects,
                    namespaces,
                });
            }
            Part::Forbidden(why) => forbidden.push((cluster, why)),
            Part::Missing(why) => missing.push((cluster, why)),
        }
    }
    u.count_missing(&missing);
    if opts.strict && !missing.is_empty() {
        return Err(strict_failure(&missing));
    }
    if total > 0 && missing.len() == total {
        return Err(strict_failure(&missing));
    }
    if total > 0 && forbidden.len() == total {
        return Err(ApiError::forbidden(format!(
            "{}: in every member cluster",
            forbidden[0].1
        )));
    }
    for (c, why) in &missing {
        warnings.push(format!("cluster {c} is missing from this answer: {why}"));
    }
    for (c, why) in &forbidden {
        warnings.push(format!("cluster {c} is left out: {why}"));
    }
    let view = merge::View {
        sources,
        namespace: namespace.map(str::to_string),
        labels: sel.labels.clone(),
        fields: sel.fields.clone(),
    };
    Ok(Merged { view, rv })
}

fn snapshot_key(rv: &str, scope: &str) -> String {
    format!("{scope}/{rv}")
}

#[allow(clippy::too_many_arguments)]
async fn list(
    u: &Arc<Unified>,
    gvr: &Gvr,
    namespace: Option<&str>,
    query: &HashMap<String, String>,
    user: &User,
    opts: &Options,
    warnings: &mut Vec<String>,
) -> Result<Response<Body>, ApiError> {
    let sel = selectors(gvr, query)?;
    let limit = match query.get("limit").map(String::as_str) {
        None | Some("") | Some("0") => None,
        Some(l) => Some(
            l.parse::<usize>()
                .map_err(|_| ApiError::bad_request(format!("invalid limit \"{l}\"")))?,
        ),
    };
    let scope = resource_version::scope_hash(&[
        &gvr.group,
        &gvr.plural,
        namespace.unwrap_or(""),
        &sel.label_text,
        query.get("fieldSelector").map(String::as_str).unwrap_or(""),
        &user.name,
    ]);
    let token = query
        .get("continue")
        .filter(|c| !c.is_empty())
        .map(|c| Continue::decode(c))
        .transpose()?;
    let (view, rv) = match &token {
        Some(t) => {
            if t.scope != scope {
                return Err(ApiError::bad_request(
                    "the continue token was issued for another request (resource, namespace or selectors differ)",
                ));
            }
            let cached = u
                .snapshots
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .get(&snapshot_key(&t.rv, &scope))
                .cloned();
            match cached {
                Some(view) => (view, t.rv.clone()),
                None => {
                    // The snapshot is gone; the current state serves if it is the same.
                    let requested = Requested::Exact(t.rv_map());
                    let merged =
                        gather(u, gvr, namespace, &sel, &requested, user, opts, warnings).await?;
                    if resource_version::encode(&merged.rv) != t.rv {
                        return Err(ApiError::new(
                            410,
                            "Expired",
                            "The provided continue parameter is too old to display a consistent list result. You can start a new list without the continue parameter.",
                        ));
                    }
                    (Arc::new(merged.view), t.rv.clone())
                }
            }
        }
        None => {
            let requested =
                resource_version::parse(query.get("resourceVersion").map(String::as_str))?;
            let merged = gather(u, gvr, namespace, &sel, &requested, user, opts, warnings).await?;
            let rv = resource_version::encode(&merged.rv);
            (Arc::new(merged.view), rv)
        }
    };
    let page = view.page(token.as_ref().map(|t| &t.key), limit);
    let mut meta = ListMeta {
        resource_version: rv.clone(),
        continue_token: None,
        remaining: None,
    };
    if let Some(last) = page.next {
        meta.continue_token = Some(
            Continue {
                v: 1,
                rv: rv.clone(),
                key: last,
                scope: scope.clone(),
            }
            .encode(),
        );
        // Later pages read the same snapshots (clones of the members' maps).
        u.snapshots
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .put(snapshot_key(&rv, &scope), view.clone());
    }
    Ok(list_response(gvr, &page.items, &meta, opts))
}

/// Encodes a list in the asked representation.
fn list_response(
    gvr: &Gvr,
    items: &[Arc<cache::Object>],
    meta: &ListMeta,
    opts: &Options,
) -> Response<Body> {
    match opts.output {
        Output::Table => {
            // Every row from the cells and JSON its object keeps: nothing is parsed.
            let mut out = Vec::with_capacity(
                512 + items.len()
                    * match opts.include {
                        IncludeObject::Object => 2048,
                        _ => 1024,
                    },
            );
            table::write_table(
                &mut out,
                &table::info_for(gvr),
                items,
                opts.include,
                meta,
                jiff::Timestamp::now(),
            );
            json_response(
                StatusCode::OK,
                "application/json;as=Table;v=v1;g=meta.k8s.io",
                out,
            )
        }
        Output::Metadata => {
            let metadata = meta.to_json();
            let mut out = Vec::with_capacity(512 + items.len() * 1024);
            out.extend_from_slice(
                b"{\"kind\":\"PartialObjectMetadataList\",\"apiVersion\":\"meta.k8s.io/v1\",\"metadata\":",
            );
            let _ = serde_json::to_writer(&mut out, &metadata);
            out.extend_from_slice(b",\"items\":[");
            // Every object's metadata, a slice of its cached JSON.
            for (i, o) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                out.extend_from_slice(
                    b"{\"kind\":\"PartialObjectMetadata\",\"apiVersion\":\"meta.k8s.io/v1\",\"metadata\":",
                );
                o.write_metadata(&mut out);
                out.push(b'}');
            }
            out.extend_from_slice(b"]}");
            json_response(
                StatusCode::OK,
                "application/json;as=PartialObjectMetadataList;v=v1;g=meta.k8s.io",
                out,
            )
        }
        Output::Json | Output::Yaml => {
            let mut out =
                Vec::with_capacity(items.iter().map(|o| o.json.len() + 1).sum::<usize>() + 512);
            let metadata = meta.to_json();
            out.extend_from_slice(b"{\"kind\":");
            let _ = serde_json::to_writer(&mut out, &format!("{}List", gvr.kind));
            out.extend_from_slice(b",\"apiVersion\":");
            let _ = serde_json::to_writer(&mut out, &gvr.api_version());
            out.extend_from_slice(b",\"metadata\":");
            let _ = serde_json::to_writer(&mut out, &metadata);
            out.extend_from_slice(b",\"items\":[");
            // Every object as it was encoded when it was cached.
            for (i, o) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                o.json.write_to(&mut out);
            }
            out.extend_from_slice(b"]}");
            if opts.output == Output::Yaml {
                let v: Value = serde_json::from_slice(&out).unwrap_or(Value::Null);
                return object_response(&v, Output::Yaml, opts.include, gvr);
            }
            json_response(StatusCode::OK, "application/json", out)
        }
    }
}

/// Encodes one object in the asked representation.
fn object_response(v: &Value, output: Output, include: IncludeObject, gvr: &Gvr) -> Response<Body> {
    match output {
        Output::Table => {
            let meta = ListMeta {
                resource_version: v
                    .pointer("/metadata/resourceVersion")
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_string(),
                ..Default::default()
            };
            let t = table::table(
                &table::info_for(gvr),
                &[Arc::new(v.clone())],
                include,
                &meta,
                true,
            );
            json_response(
                StatusCode::OK,
                "application/json;as=Table;v=v1;g=meta.k8s.io",
                serde_json::to_vec(&t).unwrap_or_default(),
            )
        }
        Output::Metadata => json_response(
            StatusCode::OK,
            "application/json;as=PartialObjectMetadata;v=v1;g=meta.k8s.io",
            serde_json::to_vec(&crate::endpoints::table::partial_metadata(v)).unwrap_or_default(),
        ),
        Output::Yaml => {
            let text = serde_saphyr::to_string(v).unwrap_or_default();
            let mut r = Response::new(full(text));
            r.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/yaml"),
            );
            r
        }
        Output::Json => json_response(
            StatusCode::OK,
            "application/json",
            serde_json::to_vec(v).unwrap_or_default(),
        ),
    }
}

fn ambiguous(gvr: &Gvr, name: &str, clusters: &[String]) -> ApiError {
    ApiError::new(
        409,
        "Conflict",
        format!(
            "ambiguous objects in clusters [{}]: {} \"{name}\" exists in more than one cluster; \
             address one through /apis/cluster.karmada.io/v1alpha1/clusters/NAME/proxy/ \
             (or list with --field-selector cluster=NAME)",
            clusters.join(" "),
            crate::status::qualified(&gvr.plural, &gvr.group)
        ),
    )
}

#[allow(clippy::too_many_arguments)]
async fn get(
    u: &Arc<Unified>,
    gvr: &Gvr,
    namespace: Option<&str>,
    name: &str,
    user: &User,
    opts: &Options,
    warnings: &mut Vec<String>,
) -> Result<Response<Body>, ApiError> {
    let targets = u
        .targets(Some(gvr), namespace, &ClusterFilter::default())
        .await;
    let (found, missing, forbidden) = fanout::locate(u, &targets, gvr, namespace, name, user).await;
    u.count_missing(&missing);
    if opts.strict && !missing.is_empty() {
        return Err(strict_failure(&missing));
    }
    for (c, why) in &missing {
        warnings.push(format!("cluster {c} is missing from this answer: {why}"));
    }
    match found.len() {
        0 if !forbidden.is_empty() && forbidden.len() + missing.len() == targets.len() => {
            Err(ApiError::forbidden(format!(
                "User \"{}\" cannot get resource \"{}\" in API group \"{}\" in the member clusters",
                user.name, gvr.plural, gvr.group
            )))
        }
        0 if !targets.is_empty() && missing.len() == targets.len() => Err(strict_failure(&missing)),
        0 => Err(ApiError::not_found(&gvr.group, &gvr.plural, name)),
        1 if opts.output == Output::Json => Ok(json_response(
            StatusCode::OK,
            "application/json",
            found[0].1.json.bytes().to_vec(),
        )),
        1 => Ok(object_response(
            &found[0].1.value(),
            opts.output,
            opts.include,
            gvr,
        )),
        _ => Err(ambiguous(
            gvr,
            name,
            &found.iter().map(|(c, _)| c.clone()).collect::<Vec<_>>(),
        )),
    }
}

/// Routes a request on one existing object (update, patch, delete, `pods/log`,
/// exec, port-forward...) to the member holding it, as the caller.
#[allow(clippy::too_many_arguments)]
async fn forward<B>(
    u: &Arc<Unified>,
    parts: &http::request::Parts,
    body: B,
    gvr: &Gvr,
    namespace: Option<&str>,
    name: &str,
    rest: &str,
    user: &User,
    warnings: &mut Vec<String>,
) -> Result<Response<Body>, ApiError>
where
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let targets = u
        .targets(Some(gvr), namespace, &ClusterFilter::default())
        .await;
    let (found, missing, _) = fanout::locate(u, &targets, gvr, namespace, name, user).await;
    let cluster = match found.as_slice() {
        [] if !missing.is_empty() => {
            for (c, why) in &missing {
                warnings.push(format!("cluster {c} could not be searched: {why}"));
            }
            return Err(ApiError::not_found(&gvr.group, &gvr.plural, name));
        }
        [] => return Err(ApiError::not_found(&gvr.group, &gvr.plural, name)),
        [(c, _)] => c.clone(),
        many => {
            return Err(ambiguous(
                gvr,
                name,
                &many.iter().map(|(c, _)| c.clone()).collect::<Vec<_>>(),
            ));
        }
    };
    let cluster_obj = u
        .clusters()
        .into_iter()
        .find(|c| c.pointer("/metadata/name").and_then(Value::as_str) == Some(cluster.as_str()))
        .ok_or_else(|| ApiError::not_found("cluster.karmada.io", "clusters", &cluster))?;
    tracing::debug!(%cluster, %name, method = %parts.method, "routing to the cluster holding the object");
    if parts.method == Method::PUT {
        // An update: back to the member's own resourceVersion, without our annotation.
        let bytes = http_body_util::Limited::new(body, codec::MAX_BODY)
            .collect()
            .await
            .map_err(|e| ApiError::bad_request(format!("failed to read the request body: {e}")))?
            .to_bytes();
        let content_type = parts
            .headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok());
        let mut object = codec::decode_object(content_type, &bytes)?;
        if let Some(meta) = object.get_mut("metadata").and_then(Value::as_object_mut) {
            if let Some(rv) = meta.get("resourceVersion").and_then(Value::as_str) {
                match resource_version::parse(Some(rv))? {
                    Requested::Exact(map) => match map.get(&cluster) {
                        Some(member_rv) => {
                            meta.insert("resourceVersion".into(), json!(member_rv));
                        }
                        None => {
                            return Err(ApiError::bad_request(format!(
                                "metadata.resourceVersion names no revision of cluster \"{cluster}\""
                            )));
                        }
                    },
                    _ => {
                        meta.remove("resourceVersion");
                    }
                }
            }
            if let Some(a) = meta.get_mut("annotations").and_then(Value::as_object_mut) {
                a.remove(cache::CLUSTER_ANNOTATION);
            }
        }
        let mut parts = parts.clone();
        parts.headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        parts.headers.remove(header::CONTENT_LENGTH);
        let body = Full::new(Bytes::from(serde_json::to_vec(&object).unwrap_or_default()));
        return crate::cluster_proxy::proxy(
            &cluster_obj,
            u.members.credentials(),
            parts,
            body,
            rest,
            user,
        )
        .await;
    }
    crate::cluster_proxy::proxy(
        &cluster_obj,
        u.members.credentials(),
        parts.clone(),
        body,
        rest,
        user,
    )
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Kinds of members that joined after the last read are looked up again
    /// within seconds, not at the next 30 s read; a kind nobody serves backs
    /// off to the 30 s read.
    #[test]
    fn unresolved_registries_read_the_members_kinds_again_soon() {
        let s = Duration::from_secs;
        let mut retry = KindsRetry::default();
        assert!(retry.due(None, true) && retry.due(None, false));
        assert!(!retry.due(Some(s(1)), false));
        assert!(retry.due(Some(s(3)), false));
        assert!(!retry.due(Some(s(3)), true));
        assert!(!retry.due(Some(s(29)), true));
        assert!(retry.due(Some(s(31)), true));
        let waits: Vec<u64> = (0..6)
            .map(|_| {
                retry.back_off();
                retry.wait.as_secs()
            })
            .collect();
        assert_eq!(waits, [4, 8, 16, 30, 30, 30]);
        assert!(!retry.due(Some(s(29)), false));
    }

    #[test]
    fn cluster_terms_are_ours() {
        let (f, rest) = split_cluster_terms("cluster=m1,status.phase=Running");
        assert!(f.admits("m1") && !f.admits("m2"));
        assert_eq!(rest, "status.phase=Running");
        let (f, rest) = split_cluster_terms("cluster!=m3");
        assert!(f.admits("m1") && !f.admits("m3"));
        assert_eq!(rest, "");
        let (f, _) = split_cluster_terms("");
        assert!(f.admits("anything"));
    }

    #[test]
    fn paths() {
        let g = Gvr::new("apps", "v1", "deployments", "Deployment", true);
        assert_eq!(
            g.collection_path(Some("ns")),
            "/apis/apps/v1/namespaces/ns/deployments"
        );
        assert_eq!(g.collection_path(None), "/apis/apps/v1/deployments");
        assert_eq!(g.api_version(), "apps/v1");
    }
}
