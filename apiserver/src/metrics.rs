//! The API server's Prometheus metrics, one [`Metrics`] per server (a process
//! may run several: `flotilla up` runs the host, the aggregated server and
//! every simulated member), served at `/metrics` to anyone allowed
//! `get` on that path (the bootstrap `system:monitoring` group is).
//!
//! Names and labels follow kube-apiserver's where it has the metric, so its
//! dashboards and alerts work unchanged:
//!
//! - `apiserver_request_total{verb,group,version,resource,subresource,scope,component,code}`
//! - `apiserver_request_duration_seconds{verb,group,version,resource,subresource,scope,component}`
//!   (not WATCH or CONNECT, which last as long as the client wants)
//! - `apiserver_current_inflight_requests{request_kind}` (`readOnly`, `mutating`)
//! - `apiserver_longrunning_requests{verb,group,version,resource,subresource,scope,component}`
//!   — open watches
//! - `apiserver_storage_objects{resource}` — objects stored, by `resource.group`
//! - `apiserver_storage_size_bytes` — the store's size on disk (0 in memory)
//! - `flotilla_storage_object_bytes{resource}` — the memory the stored objects'
//!   JSON holds, by `resource.group` (packed, see [`crate::packed`]; a few
//!   kinds the server reads on every request are held parsed as well)
//! - `flotilla_storage_watch_history_events` and
//!   `flotilla_storage_watch_history_bytes` — the recent events kept for watches
//!   resuming from the past, and the memory they hold (estimated)
//! - `flotilla_storage_operation_duration_seconds{operation,result}` — storage
//!   writes (create, update, delete) as the backend commits them
//!
//! The `resource` label only takes names the server serves (anything else is
//! counted as `""`), so label values stay bounded.

use std::collections::BTreeMap;
use std::time::Duration;

use prometheus::{
    Encoder, HistogramOpts, HistogramVec, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry,
};

use crate::endpoints::request_info::{Route, Verb};
use crate::registry::Catalog;
use crate::storage::Snapshot;
use crate::storage::cache::HistoryStats;

/// Request latency buckets (seconds), kube-apiserver's range.
const REQUEST_BUCKETS: &[f64] = &[
    0.005, 0.01, 0.025, 0.05, 0.1, 0.2, 0.4, 0.6, 0.8, 1.0, 1.25, 1.5, 2.0, 3.0, 4.0, 5.0, 6.0,
    8.0, 10.0, 15.0, 20.0, 30.0, 45.0, 60.0,
];

/// Storage commit latency buckets (seconds).
const STORAGE_BUCKETS: &[f64] = &[
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0,
];

/// The metric families of one API server.
#[derive(Clone)]
pub struct Metrics {
    registry: Registry,
    component: &'static str,
    requests: IntCounterVec,
    duration: HistogramVec,
    inflight: IntGaugeVec,
    longrunning: IntGaugeVec,
    objects: IntGaugeVec,
    object_bytes: IntGaugeVec,
    history_events: IntGauge,
    history_bytes: IntGauge,
    size: IntGauge,
    storage: HistogramVec,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics")
            .field("component", &self.component)
            .finish_non_exhaustive()
    }
}

/// The labels that name what a request addressed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestLabels {
    /// kube-apiserver's verb: `GET`, `LIST`, `WATCH`, `POST`, `PUT`, `PATCH`,
    /// `APPLY`, `DELETE`, `DELETECOLLECTION`, `CONNECT`, or the HTTP method of a
    /// non-resource request.
    pub verb: &'static str,
    group: String,
    version: String,
    resource: String,
    subresource: String,
    scope: &'static str,
}

impl RequestLabels {
    /// Whether the request stays open (watches, proxies, exec).
    pub fn long_running(&self) -> bool {
        matches!(self.verb, "WATCH" | "CONNECT")
    }

    /// Whether the request changes state (for the in-flight gauge).
    pub fn mutating(&self) -> bool {
        !matches!(self.verb, "GET" | "LIST" | "WATCH" | "HEAD" | "OPTIONS")
    }
}

fn family<T>(registry: &Registry, collector: T) -> T
where
    T: prometheus::core::Collector + Clone + 'static,
{
    registry
        .register(Box::new(collector.clone()))
        .expect("metric names are unique within a server");
    collector
}

impl Metrics {
    /// Fresh families; `component` is the `component` label
    /// (`apiserver`, `aggregated-apiserver`).
    pub fn new(component: &'static str) -> Self {
        let registry = Registry::new();
        let request_labels = [
            "verb",
            "group",
            "version",
            "resource",
            "subresource",
            "scope",
            "component",
        ];
        let mut with_code = request_labels.to_vec();
        with_code.push("code");
        let requests = family(
            &registry,
            IntCounterVec::new(
                Opts::new(
                    "apiserver_request_total",
                    "Counter of apiserver requests broken out for each verb, group, version, resource, scope, component, and HTTP response code.",
                ),
                &with_code,
            )
            .expect("valid metric definition"),
        );
        let duration = family(
            &registry,
            HistogramVec::new(
                HistogramOpts::new(
                    "apiserver_request_duration_seconds",
                    "Response latency distribution in seconds for each verb, group, version, resource, subresource, scope and component (watches and connects excluded).",
                )
                .buckets(REQUEST_BUCKETS.to_vec()),
                &request_labels,
            )
            .expect("valid metric definition"),
        );
        let inflight = family(
            &registry,
            IntGaugeVec::new(
                Opts::new(
                    "apiserver_current_inflight_requests",
                    "Number of requests being served now, by kind (readOnly or mutating).",
                ),
                &["request_kind"],
            )
            .expect("valid metric definition"),
        );
        let longrunning = family(
            &registry,
            IntGaugeVec::new(
                Opts::new(
                    "apiserver_longrunning_requests",
                    "Number of open long-running requests (watches, proxies) by verb, group, version, resource, scope and component.",
                ),
                &request_labels,
            )
            .expect("valid metric definition"),
        );
        let objects = family(
            &registry,
            IntGaugeVec::new(
                Opts::new(
                    "apiserver_storage_objects",
                    "Number of stored objects at the time of the last scrape, by resource (plural.group).",
                ),
                &["resource"],
            )
            .expect("valid metric definition"),
        );
        let object_bytes = family(
            &registry,
            IntGaugeVec::new(
                Opts::new(
                    "flotilla_storage_object_bytes",
                    "Memory the stored objects' JSON holds (packed where that pays) at the time of the last scrape, by resource (plural.group).",
                ),
                &["resource"],
            )
            .expect("valid metric definition"),
        );
        let history_events = family(
            &registry,
            IntGauge::new(
                "flotilla_storage_watch_history_events",
                "Recent events kept for watches that resume from an older resourceVersion.",
            )
            .expect("valid metric definition"),
        );
        let history_bytes = family(
            &registry,
            IntGauge::new(
                "flotilla_storage_watch_history_bytes",
                "Memory the kept watch events hold (estimated: their JSON and parsed objects).",
            )
            .expect("valid metric definition"),
        );
        let size = family(
            &registry,
            IntGauge::new(
                "apiserver_storage_size_bytes",
                "Size of the storage database file in bytes (0 for in-memory storage).",
            )
            .expect("valid metric definition"),
        );
        let storage = family(
            &registry,
            HistogramVec::new(
                HistogramOpts::new(
                    "flotilla_storage_operation_duration_seconds",
                    "Latency of storage writes as the backend commits them, by operation and result.",
                )
                .buckets(STORAGE_BUCKETS.to_vec()),
                &["operation", "result"],
            )
            .expect("valid metric definition"),
        );
        for kind in ["readOnly", "mutating"] {
            inflight.with_label_values(&[kind]).set(0);
        }
        Metrics {
            registry,
            component,
            requests,
            duration,
            inflight,
            longrunning,
            objects,
            object_bytes,
            history_events,
            history_bytes,
            size,
            storage,
        }
    }

    /// The labels of a request, from its parsed route; resource names the
    /// catalog does not serve are reported as `""`.
    pub fn labels(
        &self,
        catalog: &Catalog,
        method: &http::Method,
        route: &Route,
        apply: bool,
    ) -> RequestLabels {
        let Route::Resource(info) = route else {
            return RequestLabels {
                verb: match *method {
                    http::Method::GET => "GET",
                    http::Method::POST => "POST",
                    http::Method::PUT => "PUT",
                    http::Method::PATCH => "PATCH",
                    http::Method::DELETE => "DELETE",
                    http::Method::HEAD => "HEAD",
                    http::Method::OPTIONS => "OPTIONS",
                    _ => "OTHER",
                },
                group: String::new(),
                version: String::new(),
                resource: String::new(),
                subresource: String::new(),
                scope: "",
            };
        };
        let served = catalog.get(&info.group, &info.version, &info.resource);
        let subresource = info.subresource.as_deref().unwrap_or("");
        let connect = matches!(subresource, "proxy" | "exec" | "attach" | "portforward")
            || subresource.starts_with("proxy/");
        let verb = match info.verb {
            _ if connect => "CONNECT",
            Verb::Get => "GET",
            Verb::List => "LIST",
            Verb::Watch => "WATCH",
            Verb::Create => "POST",
            Verb::Update => "PUT",
            Verb::Patch if apply => "APPLY",
            Verb::Patch => "PATCH",
            Verb::Delete => "DELETE",
            Verb::DeleteCollection => "DELETECOLLECTION",
        };
        let scope = match (&info.namespace, &info.name) {
            (_, Some(_)) => "resource",
            (Some(_), None) => "namespace",
            (None, None) => "cluster",
        };
        let (resource, subresource) = match served {
            Some(_) => (
                info.resource.clone(),
                subresource.split('/').next().unwrap_or("").to_string(),
            ),
            None => (String::new(), String::new()),
        };
        RequestLabels {
            verb,
            group: if served.is_some() {
                info.group.clone()
            } else {
                String::new()
            },
            version: if served.is_some() {
                info.version.clone()
            } else {
                String::new()
            },
            resource,
            subresource,
            scope,
        }
    }

    fn values<'a>(&'a self, l: &'a RequestLabels) -> [&'a str; 7] {
        [
            l.verb,
            &l.group,
            &l.version,
            &l.resource,
            &l.subresource,
            l.scope,
            self.component,
        ]
    }

    /// Counts a request as in flight until the guard is dropped (also when
    /// the client goes away and the request's future with it).
    pub fn in_flight(&self, labels: &RequestLabels) -> LongRunning {
        let gauge = self.inflight.with_label_values(&[if labels.mutating() {
            "mutating"
        } else {
            "readOnly"
        }]);
        gauge.inc();
        LongRunning(gauge)
    }

    /// Records a finished request (for a watch: one that started).
    pub fn observe(&self, labels: &RequestLabels, code: u16, elapsed: Duration) {
        let mut values = self.values(labels).to_vec();
        if !labels.long_running() {
            self.duration
                .with_label_values(&values)
                .observe(elapsed.as_secs_f64());
        }
        let code = code.to_string();
        values.push(&code);
        self.requests.with_label_values(&values).inc();
    }

    /// Counts an open long-running request; decrement the gauge when it ends
    /// (see [`LongRunning`]).
    pub fn long_running(&self, labels: &RequestLabels) -> LongRunning {
        let gauge = self.longrunning.with_label_values(&self.values(labels));
        gauge.inc();
        LongRunning(gauge)
    }

    /// Records one storage write.
    pub fn storage_write(&self, operation: &'static str, ok: bool, elapsed: Duration) {
        self.storage
            .with_label_values(&[operation, if ok { "success" } else { "error" }])
            .observe(elapsed.as_secs_f64());
    }

    /// The families as Prometheus text, with the object counts and sizes taken
    /// from `snapshot`, the watch history from `history` and the database size
    /// `size_bytes`.
    pub fn encode(&self, snapshot: &Snapshot, history: HistoryStats, size_bytes: u64) -> String {
        let mut counts: BTreeMap<String, (i64, i64)> = BTreeMap::new();
        for (key, kv) in snapshot.map.iter() {
            // Keys are `/{group}/{plural}/...`, the core group's `/core/...`;
            // kube-apiserver names core resources without a group.
            let mut parts = key.split('/').skip(1);
            let (Some(group), Some(plural)) = (parts.next(), parts.next()) else {
                continue;
            };
            let resource = if group.is_empty() || group == "core" {
                plural.to_string()
            } else {
                format!("{plural}.{group}")
            };
            let entry = counts.entry(resource).or_default();
            entry.0 += 1;
            entry.1 += i64::try_from(kv.json.held()).unwrap_or(i64::MAX);
        }
        self.objects.reset();
        self.object_bytes.reset();
        for (resource, (n, bytes)) in counts {
            self.objects.with_label_values(&[&resource]).set(n);
            self.object_bytes.with_label_values(&[&resource]).set(bytes);
        }
        self.history_events
            .set(i64::try_from(history.events).unwrap_or(i64::MAX));
        self.history_bytes
            .set(i64::try_from(history.bytes).unwrap_or(i64::MAX));
        self.size.set(i64::try_from(size_bytes).unwrap_or(i64::MAX));
        let mut out = Vec::new();
        prometheus::TextEncoder::new()
            .encode(&self.registry.gather(), &mut out)
            .expect("text encoding cannot fail");
        String::from_utf8(out).expect("the text format is UTF-8")
    }

    /// The registry, for servers that add families of their own (the unified view).
    pub fn registry(&self) -> &Registry {
        &self.registry
    }
}

/// A request counted in a gauge (in flight, or an open long-running
/// request); dropping it takes it out.
#[derive(Debug)]
pub struct LongRunning(prometheus::IntGauge);

impl Drop for LongRunning {
    fn drop(&mut self) {
        self.0.dec();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::endpoints::request_info::{parse, parse_query};

    fn labels(m: &Metrics, method: http::Method, path: &str, query: &str) -> RequestLabels {
        let q = parse_query(Some(query));
        let route = parse(&method, path, &q);
        m.labels(&Catalog::builtin(), &method, &route, false)
    }

    #[test]
    fn labels_follow_kube_apiserver() {
        let m = Metrics::new("apiserver");
        let l = labels(&m, http::Method::GET, "/api/v1/namespaces/default/pods", "");
        assert_eq!(
            (l.verb, l.resource.as_str(), l.scope),
            ("LIST", "pods", "namespace")
        );
        let l = labels(&m, http::Method::GET, "/api/v1/pods", "watch=true");
        assert_eq!((l.verb, l.scope), ("WATCH", "cluster"));
        assert!(l.long_running());
        let l = labels(
            &m,
            http::Method::GET,
            "/apis/apps/v1/namespaces/a/deployments/x/scale",
            "",
        );
        assert_eq!(
            (l.verb, l.group.as_str(), l.subresource.as_str(), l.scope),
            ("GET", "apps", "scale", "resource")
        );
        // Unknown resources do not grow the label space.
        let l = labels(&m, http::Method::GET, "/apis/nope.io/v1/things-12345", "");
        assert_eq!((l.group.as_str(), l.resource.as_str()), ("", ""));
        let l = labels(&m, http::Method::GET, "/healthz", "");
        assert_eq!((l.verb, l.resource.as_str()), ("GET", ""));
    }

    #[test]
    fn encodes_requests_and_object_counts() {
        let m = Metrics::new("apiserver");
        let l = labels(
            &m,
            http::Method::POST,
            "/api/v1/namespaces/default/configmaps",
            "",
        );
        m.observe(&l, 201, Duration::from_millis(3));
        {
            let _open = m.long_running(&labels(&m, http::Method::GET, "/api/v1/pods", "watch=1"));
            let text = m.encode(&Snapshot::empty(), HistoryStats::default(), 0);
            assert!(text.contains("apiserver_longrunning_requests{"), "{text}");
            assert!(text.contains("} 1\n"), "{text}");
        }
        let mut snapshot = Snapshot::empty();
        for key in [
            "/core/configmaps/default/a",
            "/apps/deployments/default/web",
        ] {
            let key: std::sync::Arc<str> = key.into();
            let value = serde_json::json!({"metadata": {"name": "x"}});
            let kv = crate::storage::KeyValue::new(key.clone(), value.into(), 1);
            snapshot.map.insert(key, kv);
        }
        let history = HistoryStats {
            events: 7,
            bytes: 9000,
            oldest: 1,
        };
        let text = m.encode(&snapshot, history, 4096);
        for line in [
            r#"apiserver_storage_objects{resource="configmaps"} 1"#,
            r#"apiserver_storage_objects{resource="deployments.apps"} 1"#,
            r#"flotilla_storage_object_bytes{resource="deployments.apps"} 25"#,
            "flotilla_storage_watch_history_events 7",
            "flotilla_storage_watch_history_bytes 9000",
        ] {
            assert!(text.contains(line), "{line} in {text}");
        }
        assert!(
            text.contains(r#"apiserver_request_total{code="201",component="apiserver",group="",resource="configmaps",scope="namespace",subresource="",verb="POST",version="v1"} 1"#),
            "{text}"
        );
        assert!(text.contains("apiserver_storage_size_bytes 4096"), "{text}");
        assert!(text.contains("# HELP apiserver_request_duration_seconds"));
    }
}
