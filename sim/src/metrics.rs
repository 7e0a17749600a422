//! The simulated metrics API (`metrics.k8s.io/v1beta1` pods and nodes).
//!
//! The API server library serves a group only from its catalogue, which is filled
//! from built-in kinds and CRDs, and has no hook for a computed (non-stored) API
//! group. So, as a documented choice, a member serves metrics as *stored* objects of
//! two CRDs, `pods.metrics.k8s.io` (PodMetrics, namespaced) and
//! `nodes.metrics.k8s.io` (NodeMetrics, cluster-scoped), which the fake controller
//! keeps current: one PodMetrics per running pod (with the pod's labels, so label
//! selectors work as with metrics-server) and one NodeMetrics per node (the sum of
//! its pods plus a base system usage). `kubectl top` and an HPA read them with
//! ordinary GETs. Objects are rewritten only when a value changes, so `timestamp` is
//! the time of the last change, not of the last scrape.
//!
//! Usage is per pod, split evenly over its containers: a per-pod setting made
//! in process, else the annotations [`CPU_USAGE_ANNOTATION`] /
//! [`MEMORY_USAGE_ANNOTATION`] of the pod or of its controlling workload
//! (ReplicaSet, then Deployment; StatefulSet, DaemonSet, Job), else the last
//! matching label rule, else the default ([`UsageTable::for_pod`],
//! [`annotated_usage`]). The annotations let a client of the member (or the
//! control plane, through propagation) set usage with kubectl:
//! `kubectl annotate deploy web sim.flotilla.io/cpu-usage=80m`.

use std::collections::{BTreeMap, HashMap};

use serde_json::{Map, Value, json};

use crate::object::{self, name, str_at};
use crate::quantity;

/// CPU and memory used by one pod (or node).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Usage {
    /// Millicores.
    pub cpu_millis: i64,
    /// Bytes.
    pub memory_bytes: i64,
}

impl Usage {
    /// A usage of `cpu_millis` millicores and `memory_bytes` bytes.
    pub fn new(cpu_millis: i64, memory_bytes: i64) -> Self {
        Usage {
            cpu_millis,
            memory_bytes,
        }
    }
}

/// The metrics API group.
pub const GROUP: &str = "metrics.k8s.io";
/// The metrics API version.
pub const VERSION: &str = "v1beta1";
/// How long a sample is said to cover.
const WINDOW: &str = "15s";

/// Per-pod CPU usage (a quantity, `80m`) the simulated metrics-server
/// reports for the pods of the annotated pod or workload.
pub const CPU_USAGE_ANNOTATION: &str = "sim.flotilla.io/cpu-usage";
/// Per-pod memory usage (a quantity, `64Mi`), like [`CPU_USAGE_ANNOTATION`].
pub const MEMORY_USAGE_ANNOTATION: &str = "sim.flotilla.io/memory-usage";

fn annotation<'a>(object: &'a Value, key: &str) -> Option<&'a str> {
    object
        .pointer("/metadata/annotations")
        .and_then(|a| a.get(key))
        .and_then(Value::as_str)
}

/// `fallback` with cpu and memory replaced by the first of `objects` (the
/// pod, then its owners) annotated with a valid quantity.
pub fn annotated_usage(objects: &[&Value], fallback: Usage) -> Usage {
    let first = |key: &str, parse: fn(&str) -> Option<i64>| {
        objects
            .iter()
            .find_map(|o| annotation(o, key).and_then(parse))
    };
    Usage {
        cpu_millis: first(CPU_USAGE_ANNOTATION, quantity::cpu_millis)
            .unwrap_or(fallback.cpu_millis),
        memory_bytes: first(MEMORY_USAGE_ANNOTATION, quantity::bytes)
            .unwrap_or(fallback.memory_bytes),
    }
}

/// Whether a workload's usage annotations differ from its previous version.
pub fn usage_annotations_changed(object: &Value, prev: Option<&Value>) -> bool {
    [CPU_USAGE_ANNOTATION, MEMORY_USAGE_ANNOTATION]
        .iter()
        .any(|k| annotation(object, k) != prev.and_then(|p| annotation(p, k)))
}

/// Where pod usage comes from; see the module docs.
#[derive(Debug, Clone, Default)]
pub struct UsageTable {
    /// Usage of pods nothing else applies to.
    pub default: Usage,
    /// Added to the sum of a node's pods.
    pub node_base: Usage,
    /// Per pod, by (namespace, name).
    pub pods: HashMap<(String, String), Usage>,
    /// Per label selector (`k=v,k2=v2`), the last match winning.
    pub rules: Vec<(BTreeMap<String, String>, Usage)>,
}

/// Parses an equality label selector `k=v,k2=v2` (also `k==v`).
pub fn parse_selector(selector: &str) -> Option<BTreeMap<String, String>> {
    let mut out = BTreeMap::new();
    for part in selector.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (k, v) = part.split_once("==").or_else(|| part.split_once('='))?;
        if k.trim().is_empty() {
            return None;
        }
        out.insert(k.trim().to_string(), v.trim().to_string());
    }
    Some(out)
}

impl UsageTable {
    /// The usage of one pod.
    pub fn for_pod(&self, pod: &Value) -> Usage {
        let key = (object::namespace(pod).to_string(), name(pod).to_string());
        if let Some(u) = self.pods.get(&key) {
            return *u;
        }
        let labels = object::labels(pod);
        self.rules
            .iter()
            .rev()
            .find(|(sel, _)| {
                sel.iter()
                    .all(|(k, v)| labels.get(k).and_then(Value::as_str) == Some(v.as_str()))
            })
            .map_or(self.default, |(_, u)| *u)
    }
}

/// The CRDs serving the metrics API.
pub fn crds() -> Vec<Value> {
    let crd = |plural: &str, singular: &str, kind: &str, scope: &str| {
        json!({
            "apiVersion": "apiextensions.k8s.io/v1",
            "kind": "CustomResourceDefinition",
            "metadata": {
                "name": format!("{plural}.{GROUP}"),
                "annotations": {"api-approved.kubernetes.io": "https://github.com/kubernetes/metrics"},
                "labels": {"app.kubernetes.io/managed-by": "flotilla-sim"},
            },
            "spec": {
                "group": GROUP,
                "names": {"plural": plural, "singular": singular, "kind": kind, "listKind": format!("{kind}List")},
                "scope": scope,
                "versions": [{
                    "name": VERSION,
                    "served": true,
                    "storage": true,
                    "schema": {"openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}},
                }],
            },
        })
    };
    vec![
        crd("pods", "podmetrics", "PodMetrics", "Namespaced"),
        crd("nodes", "nodemetrics", "NodeMetrics", "Cluster"),
    ]
}

fn usage_json(u: Usage) -> Value {
    json!({"cpu": quantity::format_cpu(u.cpu_millis), "memory": quantity::format_bytes(u.memory_bytes)})
}

/// The PodMetrics of a running pod using `usage`, split over its containers.
pub fn pod_metrics(pod: &Value, usage: Usage) -> Value {
    let containers: Vec<&str> = pod
        .pointer("/spec/containers")
        .and_then(Value::as_array)
        .map(|cs| cs.iter().map(|c| str_at(c, "/name")).collect())
        .unwrap_or_default();
    let n = containers.len().max(1) as i64;
    let per = |total: i64, i: usize| total / n + if i == 0 { total % n } else { 0 };
    let containers: Vec<Value> = containers
        .iter()
        .enumerate()
        .map(|(i, c)| {
            json!({"name": c, "usage": usage_json(Usage::new(per(usage.cpu_millis, i), per(usage.memory_bytes, i)))})
        })
        .collect();
    json!({
        "apiVersion": format!("{GROUP}/{VERSION}"),
        "kind": "PodMetrics",
        "metadata": {"name": name(pod), "namespace": object::namespace(pod), "labels": object::labels(pod)},
        "timestamp": object::now(),
        "window": WINDOW,
        "containers": containers,
    })
}

/// The NodeMetrics of a node whose pods use `usage` in total.
pub fn node_metrics(node: &Value, usage: Usage) -> Value {
    json!({
        "apiVersion": format!("{GROUP}/{VERSION}"),
        "kind": "NodeMetrics",
        "metadata": {"name": name(node), "labels": object::labels(node)},
        "timestamp": object::now(),
        "window": WINDOW,
        "usage": usage_json(usage),
    })
}

/// Whether a stored metrics object says the same as a desired one (timestamps aside).
pub fn same(existing: &Value, desired: &Value) -> bool {
    let labels = |v: &Value| -> Map<String, Value> { object::labels(v) };
    labels(existing) == labels(desired)
        && existing.get("containers") == desired.get("containers")
        && existing.get("usage") == desired.get("usage")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usage_resolution_order() {
        let mut t = UsageTable {
            default: Usage::new(1, 1),
            ..Default::default()
        };
        let pod = json!({"metadata": {"name": "p", "namespace": "d", "labels": {"app": "web"}},
            "spec": {"containers": [{"name": "a"}, {"name": "b"}]}});
        assert_eq!(t.for_pod(&pod), Usage::new(1, 1));
        t.rules.push((
            parse_selector("app=web").expect("selector"),
            Usage::new(300, 2 << 20),
        ));
        assert_eq!(t.for_pod(&pod), Usage::new(300, 2 << 20));
        t.pods.insert(("d".into(), "p".into()), Usage::new(5, 5));
        assert_eq!(t.for_pod(&pod), Usage::new(5, 5));
        t.pods.clear();
        let m = pod_metrics(&pod, t.for_pod(&pod));
        assert_eq!(m["containers"][0]["usage"]["cpu"], json!("150m"));
        assert_eq!(m["containers"][1]["usage"]["memory"], json!("1Mi"));
        assert_eq!(m["metadata"]["labels"]["app"], json!("web"));
        assert!(parse_selector("=x").is_none());
    }

    #[test]
    fn usage_annotations() {
        let pod = json!({"metadata": {"name": "p"}});
        let rs = json!({"metadata": {"name": "rs"}});
        let d = json!({"metadata": {"name": "d", "annotations": {CPU_USAGE_ANNOTATION: "250m", MEMORY_USAGE_ANNOTATION: "bad"}}});
        let u = annotated_usage(&[&pod, &rs, &d], Usage::new(1, 2));
        assert_eq!(u, Usage::new(250, 2));
        let pod = json!({"metadata": {"name": "p", "annotations": {CPU_USAGE_ANNOTATION: "1"}}});
        assert_eq!(
            annotated_usage(&[&pod, &d], Usage::new(1, 2)).cpu_millis,
            1000
        );
        assert!(usage_annotations_changed(&d, None));
        assert!(!usage_annotations_changed(&d, Some(&d)));
        assert!(!usage_annotations_changed(&rs, None));
    }
}
