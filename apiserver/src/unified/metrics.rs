//! The unified view's Prometheus families, appended to the aggregated
//! server's `/metrics`:
//!
//! - `flotilla_unified_list_total` — lists answered;
//! - `flotilla_unified_member_lists_total{source}` — member parts of those
//!   lists, answered from a cache (`cache`) or by a live request (`live`);
//! - `flotilla_unified_fanout_duration_seconds` — time to gather every
//!   member's part of a list;
//! - `flotilla_unified_partial_answers_total` — answers missing a cluster;
//! - `flotilla_unified_missing_cluster_total{cluster}` — by cluster left out;
//! - `flotilla_unified_cache_objects{cluster,resource}`,
//!   `flotilla_unified_cache_bytes{cluster,resource}` (JSON size) and
//!   `flotilla_unified_cache_heap_bytes{cluster,resource}` — the caches, read
//!   at scrape time.

use std::time::Duration;

use prometheus::{
    Encoder, Histogram, HistogramOpts, IntCounter, IntCounterVec, IntGaugeVec, Opts, Registry,
};

use super::cache::Cache;

/// The unified view's metric families, in a registry of their own.
#[derive(Clone)]
pub struct Metrics {
    registry: Registry,
    lists: IntCounter,
    member_lists: IntCounterVec,
    fanout: Histogram,
    partial: IntCounter,
    missing: IntCounterVec,
    cache_objects: IntGaugeVec,
    cache_bytes: IntGaugeVec,
    cache_heap: IntGaugeVec,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

fn register<T: prometheus::core::Collector + Clone + 'static>(r: &Registry, c: T) -> T {
    r.register(Box::new(c.clone()))
        .expect("metric names are unique within the unified view");
    c
}

impl Default for Metrics {
    fn default() -> Self {
        let r = Registry::new();
        let gauge = |name: &str, help: &str| {
            register(
                &r,
                IntGaugeVec::new(Opts::new(name, help), &["cluster", "resource"])
                    .expect("valid metric definition"),
            )
        };
        Metrics {
            lists: register(
                &r,
                IntCounter::new(
                    "flotilla_unified_list_total",
                    "Lists answered by the unified view.",
                )
                .expect("valid metric definition"),
            ),
            member_lists: register(
                &r,
                IntCounterVec::new(
                    Opts::new(
                        "flotilla_unified_member_lists_total",
                        "Member parts of unified lists, by source (cache or live).",
                    ),
                    &["source"],
                )
                .expect("valid metric definition"),
            ),
            fanout: register(
                &r,
                Histogram::with_opts(
                    HistogramOpts::new(
                        "flotilla_unified_fanout_duration_seconds",
                        "Time to gather every member's part of a unified list.",
                    )
                    .buckets(vec![
                        0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
                        10.0,
                    ]),
                )
                .expect("valid metric definition"),
            ),
            partial: register(
                &r,
                IntCounter::new(
                    "flotilla_unified_partial_answers_total",
                    "Unified answers missing at least one cluster.",
                )
                .expect("valid metric definition"),
            ),
            missing: register(
                &r,
                IntCounterVec::new(
                    Opts::new(
                        "flotilla_unified_missing_cluster_total",
                        "Unified answers that left a cluster out, by cluster.",
                    ),
                    &["cluster"],
                )
                .expect("valid metric definition"),
            ),
            cache_objects: gauge(
                "flotilla_unified_cache_objects",
                "Objects held by the unified view's caches, by cluster and resource.",
            ),
            cache_bytes: gauge(
                "flotilla_unified_cache_bytes",
                "JSON size of the objects held by the caches, by cluster and resource.",
            ),
            cache_heap: gauge(
                "flotilla_unified_cache_heap_bytes",
                "Estimated heap the caches take for their objects (encoded JSON, keys, selectable fields, map entries), by cluster and resource.",
            ),
            registry: r,
        }
    }
}

impl Metrics {
    /// One list answered after a fan-out of `elapsed`.
    pub fn list(&self, elapsed: Duration) {
        self.lists.inc();
        self.fanout.observe(elapsed.as_secs_f64());
    }

    /// One member's part of a list.
    pub fn member_list(&self, from_cache: bool) {
        self.member_lists
            .with_label_values(&[if from_cache { "cache" } else { "live" }])
            .inc();
    }

    /// An answer that left out `clusters`.
    pub fn partial<'a>(&self, clusters: impl IntoIterator<Item = &'a str>) {
        self.partial.inc();
        for c in clusters {
            self.missing.with_label_values(&[c]).inc();
        }
    }

    /// The families as Prometheus text, with the cache gauges read from `caches`.
    pub fn encode(&self, caches: &[std::sync::Arc<Cache>]) -> String {
        for g in [&self.cache_objects, &self.cache_bytes, &self.cache_heap] {
            g.reset();
        }
        for c in caches {
            let (n, bytes, heap) = c.size();
            let labels = [c.cluster.as_str(), c.resource.plural.as_str()];
            let as_i64 = |v: usize| i64::try_from(v).unwrap_or(i64::MAX);
            self.cache_objects.with_label_values(&labels).set(as_i64(n));
            self.cache_bytes
                .with_label_values(&labels)
                .set(as_i64(bytes));
            self.cache_heap.with_label_values(&labels).set(as_i64(heap));
        }
        let mut out = Vec::new();
        prometheus::TextEncoder::new()
            .encode(&self.registry.gather(), &mut out)
            .expect("text encoding cannot fail");
        String::from_utf8(out).expect("the text format is UTF-8")
    }
}
