//! Karmada's cluster metrics, read from each Cluster's status as the cluster
//! controller sees it (so Push clusters, whose status the cluster-status
//! controller writes, and Pull clusters, whose agent writes it, are covered
//! alike). All labelled `member_cluster`:
//!
//! - `cluster_ready_state` — 1 when Ready=True, else 0;
//! - `cluster_node_number`, `cluster_ready_node_number`;
//! - `cluster_cpu_allocatable_number`, `cluster_memory_allocatable_bytes`,
//!   `cluster_pod_allocatable_number`, and the `_allocated_` counterparts.

use std::sync::LazyLock;

use flotilla_api::cluster::{CONDITION_READY, Cluster};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use kube::ResourceExt;
use prometheus::GaugeVec;

use crate::metrics;

struct Families {
    ready: prometheus::IntGaugeVec,
    nodes: prometheus::IntGaugeVec,
    ready_nodes: prometheus::IntGaugeVec,
    /// (resource name in the summary, allocatable family, allocated family)
    resources: Vec<(&'static str, GaugeVec, GaugeVec)>,
}

fn gauge(name: &str, help: &str) -> GaugeVec {
    metrics::register(
        GaugeVec::new(prometheus::Opts::new(name, help), &["member_cluster"])
            .expect("valid metric definition"),
    )
}

static FAMILIES: LazyLock<Families> = LazyLock::new(|| Families {
    ready: metrics::gauge_vec(
        "cluster_ready_state",
        "State of the cluster: 1 if Ready, 0 otherwise.",
        &["member_cluster"],
    ),
    nodes: metrics::gauge_vec(
        "cluster_node_number",
        "Number of nodes in the cluster.",
        &["member_cluster"],
    ),
    ready_nodes: metrics::gauge_vec(
        "cluster_ready_node_number",
        "Number of ready nodes in the cluster.",
        &["member_cluster"],
    ),
    resources: vec![
        (
            "cpu",
            gauge(
                "cluster_cpu_allocatable_number",
                "Number of allocatable CPUs in the cluster.",
            ),
            gauge(
                "cluster_cpu_allocated_number",
                "Number of CPUs allocated to pods in the cluster.",
            ),
        ),
        (
            "memory",
            gauge(
                "cluster_memory_allocatable_bytes",
                "Allocatable memory in the cluster, in bytes.",
            ),
            gauge(
                "cluster_memory_allocated_bytes",
                "Memory allocated to pods in the cluster, in bytes.",
            ),
        ),
        (
            "pods",
            gauge(
                "cluster_pod_allocatable_number",
                "Number of pods the cluster can hold.",
            ),
            gauge(
                "cluster_pod_allocated_number",
                "Number of pods allocated in the cluster.",
            ),
        ),
    ],
});

fn as_f64(q: Option<&Quantity>) -> f64 {
    q.and_then(flotilla_api::quantity::of)
        .map_or(0.0, |e| e.num as f64 / e.den as f64)
}

/// Sets the gauges of `cluster` from its status.
pub fn record(cluster: &Cluster) {
    let f = &*FAMILIES;
    let name = cluster.name_any();
    let labels = [name.as_str()];
    let status = cluster.status.as_ref();
    let ready = status.is_some_and(|s| {
        s.conditions
            .iter()
            .any(|c| c.type_ == CONDITION_READY && c.status == "True")
    });
    f.ready.with_label_values(&labels).set(i64::from(ready));
    let nodes = status.and_then(|s| s.node_summary.as_ref());
    f.nodes
        .with_label_values(&labels)
        .set(i64::from(nodes.and_then(|n| n.total_num).unwrap_or(0)));
    f.ready_nodes
        .with_label_values(&labels)
        .set(i64::from(nodes.and_then(|n| n.ready_num).unwrap_or(0)));
    let summary = status.and_then(|s| s.resource_summary.as_ref());
    for (resource, allocatable, allocated) in &f.resources {
        allocatable
            .with_label_values(&labels)
            .set(as_f64(summary.and_then(|s| s.allocatable.get(*resource))));
        allocated
            .with_label_values(&labels)
            .set(as_f64(summary.and_then(|s| s.allocated.get(*resource))));
    }
}

/// Drops the gauges of a cluster that is gone.
pub fn forget(cluster: &str) {
    let f = &*FAMILIES;
    for g in [&f.ready, &f.nodes, &f.ready_nodes] {
        let _ = g.remove_label_values(&[cluster]);
    }
    for (_, a, b) in &f.resources {
        let _ = a.remove_label_values(&[cluster]);
        let _ = b.remove_label_values(&[cluster]);
    }
}
