//! Clients to member clusters and the requests the status controller makes to
//! them: the health probe (`/readyz`, falling back to `/healthz`), `/version`,
//! discovery, nodes and pods.
//!
//! A Push cluster is reached with its `spec.apiEndpoint` and the Secret named
//! by `spec.secretRef` (keys `token` and `caBundle`, as in Karmada);
//! [`MemberClients`] caches one client per cluster, rebuilt when the endpoint
//! or the Secret changes.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use flotilla_api::cluster::{ApiEnablement, ApiResource, Cluster};
use futures::StreamExt;
use k8s_openapi::api::core::v1::{Node, Pod, Secret};
use kube::api::ListParams;
use kube::core::discovery::v2::APIGroupDiscoveryList;
use kube::runtime::watcher;
use kube::{Api, Client};
use tokio::task::JoinHandle;

use crate::cluster_status::reconcile::PodUsage;
use crate::{Error, Result};

/// Secret key of the bearer token (Karmada `SecretTokenKey`).
pub const SECRET_TOKEN_KEY: &str = "token";
/// Secret key of the member's CA bundle, PEM (Karmada `SecretCADataKey`).
pub const SECRET_CA_BUNDLE_KEY: &str = "caBundle";

/// The kube client configuration for a member: endpoint, CA (PEM), token,
/// `insecureSkipTLSVerification`, `proxyURL`, with `timeout` on connect and read
/// and no automatic retries (a failing member must fail fast).
pub fn member_config(
    cluster: &Cluster,
    token: Option<&str>,
    ca_bundle_pem: Option<&[u8]>,
    timeout: Duration,
) -> Result<kube::Config> {
    let name = cluster.name().to_string();
    let bad = |message: String| Error::ClusterCredentials {
        cluster: name.clone(),
        message,
    };
    if cluster.spec.api_endpoint.is_empty() {
        return Err(bad("spec.apiEndpoint is empty".into()));
    }
    let uri: http::Uri = cluster
        .spec
        .api_endpoint
        .parse()
        .map_err(|e| bad(format!("invalid spec.apiEndpoint: {e}")))?;
    let mut config = kube::Config::new(uri);
    config.connect_timeout = Some(timeout);
    config.read_timeout = Some(timeout);
    config.write_timeout = Some(timeout);
    config.default_retry = false;
    config.accept_invalid_certs = cluster.spec.insecure_skip_tls_verification;
    if let Some(pem) = ca_bundle_pem.filter(|p| !p.is_empty()) {
        use rustls_pki_types::pem::PemObject;
        let certs = rustls_pki_types::CertificateDer::pem_slice_iter(pem)
            .map(|c| c.map(|c| c.to_vec()))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| bad(format!("invalid caBundle: {e}")))?;
        if certs.is_empty() {
            return Err(bad("caBundle holds no certificate".into()));
        }
        config.root_cert = Some(certs);
    }
    if let Some(token) = token {
        config.auth_info = serde_json::from_value(serde_json::json!({ "token": token }))?;
    }
    if !cluster.spec.proxy_url.is_empty() {
        config.proxy_url = Some(
            cluster
                .spec
                .proxy_url
                .parse()
                .map_err(|e| bad(format!("invalid spec.proxyURL: {e}")))?,
        );
    }
    Ok(config)
}

#[derive(Clone, PartialEq, Eq)]
struct CacheKey {
    endpoint: String,
    secret: Option<(String, String)>,
    secret_version: Option<String>,
    insecure: bool,
    proxy: String,
}

impl CacheKey {
    fn same_cluster_settings(&self, other: &CacheKey) -> bool {
        self.endpoint == other.endpoint
            && self.secret == other.secret
            && self.insecure == other.insecure
            && self.proxy == other.proxy
    }
}

/// How long a cached client is used before its Secret is read again.
pub const SECRET_REFRESH: Duration = Duration::from_secs(30);

struct Cached {
    key: CacheKey,
    client: Client,
    checked: std::time::Instant,
}

/// Cache of member clients, keyed by cluster name; cheap to clone. A cached
/// client is reused while the Cluster's endpoint, TLS and proxy settings and
/// secret reference are unchanged; its Secret is re-read every
/// [`SECRET_REFRESH`] (a changed Secret gives a new client).
#[derive(Clone)]
pub struct MemberClients {
    control_plane: Client,
    timeout: Duration,
    cache: Arc<Mutex<HashMap<String, Cached>>>,
}

impl MemberClients {
    /// An empty cache reading Secrets through `control_plane`.
    pub fn new(control_plane: Client, timeout: Duration) -> Self {
        MemberClients {
            control_plane,
            timeout,
            cache: Arc::default(),
        }
    }

    /// The client for `cluster`, built from its endpoint and secret (read now)
    /// unless a client for the same endpoint and secret version is cached.
    pub async fn get(&self, cluster: &Cluster) -> Result<Client> {
        let name = cluster.name().to_string();
        let settings = CacheKey {
            endpoint: cluster.spec.api_endpoint.clone(),
            secret: cluster
                .spec
                .secret_ref
                .as_ref()
                .map(|r| (r.namespace.clone(), r.name.clone())),
            secret_version: None,
            insecure: cluster.spec.insecure_skip_tls_verification,
            proxy: cluster.spec.proxy_url.clone(),
        };
        if let Ok(cache) = self.cache.lock()
            && let Some(c) = cache.get(&name)
            && c.key.same_cluster_settings(&settings)
            && c.checked.elapsed() < SECRET_REFRESH
        {
            return Ok(c.client.clone());
        }
        let secret = match &cluster.spec.secret_ref {
            Some(r) => {
                let api: Api<Secret> = Api::namespaced(self.control_plane.clone(), &r.namespace);
                Some(
                    api.get_opt(&r.name)
                        .await?
                        .ok_or_else(|| Error::ClusterCredentials {
                            cluster: name.clone(),
                            message: format!("secret {}/{} not found", r.namespace, r.name),
                        })?,
                )
            }
            None => None,
        };
        let key = CacheKey {
            secret_version: secret
                .as_ref()
                .and_then(|s| s.metadata.resource_version.clone()),
            ..settings
        };
        if let Ok(mut cache) = self.cache.lock()
            && let Some(c) = cache.get_mut(&name)
            && c.key == key
        {
            c.checked = std::time::Instant::now();
            return Ok(c.client.clone());
        }
        let data = secret.and_then(|s| s.data).unwrap_or_default();
        let token = data
            .get(SECRET_TOKEN_KEY)
            .map(|b| String::from_utf8_lossy(&b.0).trim().to_string());
        let ca = data.get(SECRET_CA_BUNDLE_KEY).map(|b| b.0.as_slice());
        let config = member_config(cluster, token.as_deref(), ca, self.timeout)?;
        let client = crate::client::build(config)?;
        if let Ok(mut cache) = self.cache.lock() {
            cache.insert(
                name,
                Cached {
                    key,
                    client: client.clone(),
                    checked: std::time::Instant::now(),
                },
            );
        }
        Ok(client)
    }

    /// Drops the cached client of a cluster.
    pub fn forget(&self, cluster: &str) {
        if let Ok(mut cache) = self.cache.lock() {
            cache.remove(cluster);
        }
    }
}

/// Result of a health probe (Karmada `getClusterHealthStatus`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Health {
    /// The member answered.
    pub online: bool,
    /// It answered `ok` (HTTP 200).
    pub healthy: bool,
}

async fn get_path(client: &Client, path: &str) -> Result<(), kube::Error> {
    let req = http::Request::get(path)
        .body(Vec::new())
        .map_err(kube::Error::HttpError)?;
    client.request_text(req).await.map(|_| ())
}

/// Probes `/readyz`, then `/healthz` if `/readyz` is not found. Any error
/// (refused, timeout, non-2xx) counts as offline, as in Karmada, where the
/// REST client turns non-2xx answers into errors.
pub async fn probe(client: &Client) -> Health {
    let mut res = get_path(client, "/readyz").await;
    if let Err(kube::Error::Api(s)) = &res
        && s.code == 404
    {
        res = get_path(client, "/healthz").await;
    }
    match res {
        Ok(()) => Health {
            online: true,
            healthy: true,
        },
        Err(e) => {
            tracing::debug!(error = %e, "member health check failed");
            Health {
                online: false,
                healthy: false,
            }
        }
    }
}

/// Everything the status controller reads from a healthy member.
#[derive(Clone, Debug, Default)]
pub struct Observed {
    /// `/version` gitVersion (`None` if it failed).
    pub kubernetes_version: Option<String>,
    /// Discovered API enablements (unsorted, subresources included).
    pub api_enablements: Vec<ApiEnablement>,
    /// Whether part of discovery failed.
    pub api_discovery_partial: bool,
    /// Nodes (`None` if listing failed).
    pub nodes: Option<Vec<Node>>,
    /// What the status reads of the pods of all namespaces (`None` if
    /// listing failed).
    pub pods: Option<Vec<Arc<PodUsage>>>,
}

/// API enablements from aggregated discovery documents (`/api` and `/apis`);
/// `partial` when a version is marked `Stale` (an aggregated API that did not
/// answer).
pub fn enablements_from_aggregated(
    lists: &[kube::core::discovery::v2::APIGroupDiscoveryList],
) -> (Vec<ApiEnablement>, bool) {
    let mut out = Vec::new();
    let mut partial = false;
    for group in lists.iter().flat_map(|l| &l.items) {
        let name = group
            .metadata
            .as_ref()
            .and_then(|m| m.name.clone())
            .unwrap_or_default();
        for v in &group.versions {
            let Some(version) = v.version.as_deref() else {
                continue;
            };
            if v.freshness.as_deref() == Some("Stale") {
                partial = true;
            }
            out.push(ApiEnablement {
                group_version: if name.is_empty() {
                    version.to_string()
                } else {
                    format!("{name}/{version}")
                },
                resources: v
                    .resources
                    .iter()
                    .filter_map(|r| {
                        Some(ApiResource {
                            name: r.resource.clone()?,
                            kind: r
                                .response_kind
                                .as_ref()
                                .and_then(|k| k.kind.clone())
                                .unwrap_or_default(),
                        })
                    })
                    .collect(),
            });
        }
    }
    (out, partial)
}

/// Discovery of every group version (all versions of every group, like
/// client-go's `ServerGroupsAndResources`): aggregated discovery (two
/// requests) when the member serves it, else the legacy per-group-version
/// documents; `partial` when some failed. `cache` keeps the result with the
/// aggregated documents' ETags: a member answers 304 to both when nothing
/// changed, so a round costs two small requests instead of reading and
/// parsing the documents again.
pub async fn discover(client: &Client, cache: &mut DiscoveryCache) -> (Vec<ApiEnablement>, bool) {
    if let Some(known) = &cache.known {
        let core = aggregated_discovery(client, "/api", Some(&known.core_etag)).await;
        let groups = aggregated_discovery(client, "/apis", Some(&known.groups_etag)).await;
        if matches!(
            (&core, &groups),
            (Fetched::NotModified, Fetched::NotModified)
        ) {
            return known.result.clone();
        }
    }
    cache.known = None;
    let core = aggregated_discovery(client, "/api", None).await;
    let groups = aggregated_discovery(client, "/apis", None).await;
    if let (Fetched::Document(core_etag, core), Fetched::Document(groups_etag, groups)) =
        (core, groups)
        && !core.items.is_empty()
    {
        let result = enablements_from_aggregated(&[core, groups]);
        if let (Some(core_etag), Some(groups_etag)) = (core_etag, groups_etag) {
            cache.known = Some(KnownDiscovery {
                core_etag,
                groups_etag,
                result: result.clone(),
            });
        }
        return result;
    }
    discover_legacy(client).await
}

/// A member's discovery as last read from its aggregated documents, with
/// their ETags.
#[derive(Default)]
pub struct DiscoveryCache {
    known: Option<KnownDiscovery>,
}

struct KnownDiscovery {
    core_etag: String,
    groups_etag: String,
    result: (Vec<ApiEnablement>, bool),
}

/// kube-apiserver's aggregated discovery, version 2.
const AGGREGATED_DISCOVERY: &str =
    "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList";

/// What a read of an aggregated discovery document gave.
enum Fetched {
    /// 304: the document has the ETag asked with.
    NotModified,
    /// The document and its ETag, if any.
    Document(Option<String>, APIGroupDiscoveryList),
    /// The member does not serve it (or the read failed).
    Unavailable,
}

/// The aggregated discovery document at `path` (`/api` or `/apis`), asking
/// with `etag` when given.
async fn aggregated_discovery(client: &Client, path: &str, etag: Option<&str>) -> Fetched {
    use http_body_util::BodyExt;
    let mut request = http::Request::get(path).header(http::header::ACCEPT, AGGREGATED_DISCOVERY);
    if let Some(etag) = etag {
        request = request.header(http::header::IF_NONE_MATCH, etag);
    }
    let Ok(request) = request.body(kube::client::Body::empty()) else {
        return Fetched::Unavailable;
    };
    let Ok(response) = client.send(request).await else {
        return Fetched::Unavailable;
    };
    if response.status() == http::StatusCode::NOT_MODIFIED {
        return Fetched::NotModified;
    }
    if !response.status().is_success() {
        return Fetched::Unavailable;
    }
    let etag = response
        .headers()
        .get(http::header::ETAG)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let Ok(body) = response.into_body().collect().await else {
        return Fetched::Unavailable;
    };
    match serde_json::from_slice(&body.to_bytes()) {
        Ok(list) => Fetched::Document(etag, list),
        Err(_) => Fetched::Unavailable,
    }
}

/// Legacy discovery: `/api`, `/apis`, then one request per group version.
pub async fn discover_legacy(client: &Client) -> (Vec<ApiEnablement>, bool) {
    let mut out = Vec::new();
    let mut partial = false;
    let mut gvs = Vec::new();
    match client.list_core_api_versions().await {
        Ok(v) => gvs.extend(v.versions),
        Err(_) => partial = true,
    }
    match client.list_api_groups().await {
        Ok(groups) => {
            for g in groups.groups {
                gvs.extend(g.versions.into_iter().map(|v| v.group_version));
            }
        }
        Err(_) => partial = true,
    }
    for gv in gvs {
        let list = if gv.contains('/') {
            client.list_api_group_resources(&gv).await
        } else {
            client.list_core_api_resources(&gv).await
        };
        match list {
            Ok(list) => out.push(ApiEnablement {
                group_version: list.group_version,
                resources: list
                    .resources
                    .into_iter()
                    .map(|r| ApiResource {
                        name: r.name,
                        kind: r.kind,
                    })
                    .collect(),
            }),
            Err(_) => partial = true,
        }
    }
    (out, partial)
}

/// Reads version, discovery, nodes and pods from a member.
pub async fn observe(client: &Client, observer: &mut Observer, timeout: Duration) -> Observed {
    let version = client.apiserver_version().await.ok().map(|v| v.git_version);
    let (api_enablements, api_discovery_partial) = discover(client, &mut observer.discovery).await;
    let pods = &mut observer.pods;
    let nodes = Api::<Node>::all(client.clone())
        .list(&ListParams::default())
        .await
        .ok()
        .map(|l| l.items);
    // the watch's pods once it has synced; a list until then (or when it ended)
    let watched = match pods.as_ref().filter(|w| !w.task.is_finished()) {
        Some(w) => w.pods(),
        None => {
            *pods = Some(PodWatch::start(client, timeout));
            None
        }
    };
    let pods = match watched {
        Some(p) => Some(p),
        None => Api::<Pod>::all(client.clone())
            .list(&ListParams::default())
            .await
            .ok()
            .map(|l| {
                l.items
                    .iter()
                    .map(|p| Arc::new(PodUsage::from(p)))
                    .collect()
            }),
    };
    Observed {
        kubernetes_version: version,
        api_enablements,
        api_discovery_partial,
        nodes,
        pods,
    }
}

/// What the cluster status controller keeps of a member between rounds:
/// its pod watch and its discovery documents.
#[derive(Default)]
pub struct Observer {
    pods: Option<PodWatch>,
    discovery: DiscoveryCache,
}

/// A member's pods kept current by a watch, so that a status round does not
/// list every pod of the member (Karmada's status controller reads them from
/// an informer too). Each pod is kept as the [`PodUsage`] the resource
/// summary reads. The watch ends at its first error (a later round starts a
/// new one, with the member's current client); dropping it stops it.
pub struct PodWatch {
    pods: Arc<Mutex<PodMap>>,
    synced: Arc<AtomicBool>,
    task: JoinHandle<()>,
}

/// A pod's key: (namespace, name).
type PodKey = (String, String);

#[derive(Default)]
struct PodMap {
    current: HashMap<PodKey, Arc<PodUsage>>,
    /// The pods of a (re)list under way, replacing `current` when done.
    listing: Option<HashMap<PodKey, Arc<PodUsage>>>,
}

fn pod_key(p: &Pod) -> PodKey {
    (
        p.metadata.namespace.clone().unwrap_or_default(),
        p.metadata.name.clone().unwrap_or_default(),
    )
}

impl PodWatch {
    /// Starts watching every pod of the member. Each watch request asks the
    /// server to end it before `timeout` (the member client's read timeout)
    /// would cut a quiet watch, and is renewed from where it stopped.
    pub fn start(client: &Client, timeout: Duration) -> PodWatch {
        let pods = Arc::new(Mutex::new(PodMap::default()));
        let synced = Arc::new(AtomicBool::new(false));
        let seconds = timeout.as_secs().saturating_sub(1).clamp(1, 290) as u32;
        let config = watcher::Config::default().timeout(seconds);
        let stream = watcher(Api::<Pod>::all(client.clone()), config);
        let (flag, map) = (synced.clone(), pods.clone());
        let task = tokio::spawn(async move {
            let mut stream = std::pin::pin!(stream);
            while let Some(event) = stream.next().await {
                let mut m = map.lock().unwrap_or_else(|e| e.into_inner());
                match event {
                    Ok(watcher::Event::Apply(p)) => {
                        m.current.insert(pod_key(&p), Arc::new(PodUsage::from(&p)));
                    }
                    Ok(watcher::Event::Delete(p)) => {
                        m.current.remove(&pod_key(&p));
                    }
                    Ok(watcher::Event::Init) => m.listing = Some(HashMap::new()),
                    Ok(watcher::Event::InitApply(p)) => {
                        m.listing
                            .get_or_insert_default()
                            .insert(pod_key(&p), Arc::new(PodUsage::from(&p)));
                    }
                    Ok(watcher::Event::InitDone) => {
                        m.current = m.listing.take().unwrap_or_default();
                        flag.store(true, Ordering::Release);
                    }
                    Err(e) => {
                        tracing::debug!(error = %e, "member pod watch ended");
                        break;
                    }
                }
            }
            flag.store(false, Ordering::Release);
        });
        PodWatch { pods, synced, task }
    }

    /// The member's pods, if the watch has synced and is still running
    /// (shared with the watch's map, not copied: a status round reads them
    /// every few seconds, and a member may hold thousands).
    pub fn pods(&self) -> Option<Vec<Arc<PodUsage>>> {
        (self.synced.load(Ordering::Acquire) && !self.task.is_finished()).then(|| {
            let m = self.pods.lock().unwrap_or_else(|e| e.into_inner());
            m.current.values().cloned().collect()
        })
    }
}

impl Drop for PodWatch {
    fn drop(&mut self) {
        self.task.abort();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use flotilla_api::cluster::ClusterSpec;

    fn cluster(endpoint: &str) -> Cluster {
        Cluster::new(
            "m1",
            ClusterSpec {
                sync_mode: "Push".into(),
                api_endpoint: endpoint.into(),
                ..Default::default()
            },
        )
    }

    #[test]
    fn aggregated_discovery() {
        let list = |v: serde_json::Value| -> kube::core::discovery::v2::APIGroupDiscoveryList {
            serde_json::from_value(v).unwrap()
        };
        let core = list(
            serde_json::json!({"items": [{"metadata": {"name": ""}, "versions": [{"version": "v1",
            "resources": [{"resource": "pods", "responseKind": {"group": "", "version": "v1", "kind": "Pod"}, "scope": "Namespaced", "verbs": ["get"]}]}]}]}),
        );
        let groups = list(
            serde_json::json!({"items": [{"metadata": {"name": "apps"}, "versions": [
            {"version": "v1", "resources": [{"resource": "deployments", "responseKind": {"group": "apps", "version": "v1", "kind": "Deployment"}, "scope": "Namespaced", "verbs": ["get"]}]}]},
            {"metadata": {"name": "metrics.k8s.io"}, "versions": [{"version": "v1beta1", "resources": [], "freshness": "Stale"}]}]}),
        );
        let (e, partial) = enablements_from_aggregated(&[core, groups]);
        assert!(partial);
        assert_eq!(
            e.iter()
                .map(|e| e.group_version.as_str())
                .collect::<Vec<_>>(),
            vec!["v1", "apps/v1", "metrics.k8s.io/v1beta1"]
        );
        assert_eq!(
            (
                e[0].resources[0].name.as_str(),
                e[0].resources[0].kind.as_str()
            ),
            ("pods", "Pod")
        );
    }

    #[test]
    fn config_from_cluster() {
        let c = member_config(
            &cluster("https://127.0.0.1:6443"),
            Some("tok"),
            None,
            Duration::from_secs(2),
        )
        .unwrap();
        assert_eq!(c.cluster_url.to_string(), "https://127.0.0.1:6443/");
        assert_eq!(c.read_timeout, Some(Duration::from_secs(2)));
        assert!(!c.default_retry);
        assert!(c.auth_info.token.is_some());
        assert!(member_config(&cluster(""), None, None, Duration::from_secs(1)).is_err());
        assert!(
            member_config(
                &cluster("https://x"),
                None,
                Some(b"not pem"),
                Duration::from_secs(1)
            )
            .is_err()
        );
    }
}
