//! The fake scheduler's pure part: which node a pod fits on, given what the nodes
//! can hold (allocatable cpu, memory, pods) and what is already bound to them.
//! Filters follow kube-scheduler's (resources, node selector and required node
//! affinity, unschedulable, NoSchedule/NoExecute taints); among the nodes that fit,
//! the least allocated wins, as with its default scoring.

use std::collections::BTreeMap;

use serde_json::Value;

use crate::object::{selector_matches, str_at};
use crate::quantity;

/// CPU, memory and pod count; either capacity or use.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Resources {
    /// Millicores.
    pub cpu_millis: i64,
    /// Bytes.
    pub memory_bytes: i64,
    /// Pods.
    pub pods: i64,
}

impl Resources {
    /// Adds `other` to `self`.
    pub fn add(&mut self, other: &Resources) {
        self.cpu_millis += other.cpu_millis;
        self.memory_bytes += other.memory_bytes;
        self.pods += other.pods;
    }
}

/// One node as the scheduler sees it.
#[derive(Debug, Clone)]
pub struct NodeView {
    pub name: String,
    pub labels: serde_json::Map<String, Value>,
    pub allocatable: Resources,
    /// Requests of the non-terminal pods bound to the node (pods counts them).
    pub requested: Resources,
    pub unschedulable: bool,
    pub taints: Vec<Value>,
}

impl NodeView {
    /// A view of a Node object with nothing requested yet.
    pub fn from_node(node: &Value) -> NodeView {
        let alloc = |r: &str| str_at(node, &format!("/status/allocatable/{r}")).to_string();
        NodeView {
            name: str_at(node, "/metadata/name").to_string(),
            labels: crate::object::labels(node),
            allocatable: Resources {
                cpu_millis: quantity::cpu_millis(&alloc("cpu")).unwrap_or(0),
                memory_bytes: quantity::bytes(&alloc("memory")).unwrap_or(0),
                pods: quantity::parse(&alloc("pods")).map_or(0, |p| p as i64),
            },
            requested: Resources::default(),
            unschedulable: node.pointer("/spec/unschedulable") == Some(&Value::Bool(true)),
            taints: node
                .pointer("/spec/taints")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default(),
        }
    }
}

/// The resource requests of a pod: the larger of the containers' sum and any init
/// container, with limits standing in for missing requests, plus one pod.
pub fn pod_requests(pod: &Value) -> Resources {
    let container = |c: &Value| {
        let get = |r: &str| {
            let requested = str_at(c, &format!("/resources/requests/{r}"));
            if requested.is_empty() {
                str_at(c, &format!("/resources/limits/{r}")).to_string()
            } else {
                requested.to_string()
            }
        };
        Resources {
            cpu_millis: quantity::cpu_millis(&get("cpu")).unwrap_or(0),
            memory_bytes: quantity::bytes(&get("memory")).unwrap_or(0),
            pods: 0,
        }
    };
    let list = |field: &str| -> Vec<Resources> {
        pod.pointer(&format!("/spec/{field}"))
            .and_then(Value::as_array)
            .map(|cs| cs.iter().map(container).collect())
            .unwrap_or_default()
    };
    let mut total = Resources::default();
    for r in list("containers") {
        total.add(&r);
    }
    for r in list("initContainers") {
        total.cpu_millis = total.cpu_millis.max(r.cpu_millis);
        total.memory_bytes = total.memory_bytes.max(r.memory_bytes);
    }
    total.pods = 1;
    total
}

/// Why a pod fits nowhere, worded as kube-scheduler words it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unschedulable {
    pub message: String,
}

fn tolerated(taint: &Value, tolerations: &[Value]) -> bool {
    tolerations.iter().any(|t| {
        let effect_ok =
            str_at(t, "/effect").is_empty() || str_at(t, "/effect") == str_at(taint, "/effect");
        let key_ok = str_at(t, "/key").is_empty() || str_at(t, "/key") == str_at(taint, "/key");
        let value_ok =
            str_at(t, "/operator") == "Exists" || str_at(t, "/value") == str_at(taint, "/value");
        effect_ok && key_ok && value_ok
    })
}

fn node_selector_term_matches(term: &Value, node: &NodeView) -> bool {
    let exprs = |field: &str| {
        term.get(field)
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default()
    };
    let labels_ok = selector_matches(
        Some(
            &serde_json::json!({"matchExpressions": exprs("matchExpressions").into_iter().map(|mut e| {
            // NodeSelectorRequirement operators Gt/Lt are rare; treat them as no match.
            if let Some(op) = e.get("operator").and_then(Value::as_str) && (op == "Gt" || op == "Lt") {
                e["operator"] = Value::String("Invalid".into());
            }
            e
        }).collect::<Vec<_>>()}),
        ),
        &node.labels,
    );
    let fields_ok = exprs("matchFields").iter().all(|e| {
        let values: Vec<&str> = e
            .get("values")
            .and_then(Value::as_array)
            .map(|a| a.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        match (str_at(e, "/key"), str_at(e, "/operator")) {
            ("metadata.name", "In") => values.contains(&node.name.as_str()),
            ("metadata.name", "NotIn") => !values.contains(&node.name.as_str()),
            _ => false,
        }
    });
    labels_ok && fields_ok
}

/// Whether a pod's node selector and required node affinity admit `node`.
pub fn affinity_matches(pod: &Value, node: &NodeView) -> bool {
    if let Some(selector) = pod.pointer("/spec/nodeSelector").and_then(Value::as_object)
        && !selector
            .iter()
            .all(|(k, v)| node.labels.get(k).and_then(Value::as_str) == v.as_str())
    {
        return false;
    }
    match pod
        .pointer("/spec/affinity/nodeAffinity/requiredDuringSchedulingIgnoredDuringExecution/nodeSelectorTerms")
        .and_then(Value::as_array)
    {
        Some(terms) if !terms.is_empty() => {
            terms.iter().any(|t| node_selector_term_matches(t, node))
        }
        _ => true,
    }
}

/// Picks the node for a pod, or says why none fits.
pub fn schedule(pod: &Value, nodes: &[NodeView]) -> Result<usize, Unschedulable> {
    let want = pod_requests(pod);
    let tolerations = pod
        .pointer("/spec/tolerations")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let mut reasons: BTreeMap<String, usize> = BTreeMap::new();
    let mut best: Option<(f64, usize)> = None;
    for (i, node) in nodes.iter().enumerate() {
        let mut why = Vec::new();
        if node.unschedulable {
            why.push("node(s) were unschedulable".to_string());
        } else if !affinity_matches(pod, node) {
            why.push("node(s) didn't match Pod's node affinity/selector".to_string());
        } else if let Some(t) = node.taints.iter().find(|t| {
            matches!(str_at(t, "/effect"), "NoSchedule" | "NoExecute")
                && !tolerated(t, &tolerations)
        }) {
            let value = str_at(t, "/value");
            why.push(if value.is_empty() {
                format!("node(s) had untolerated taint {{{}: }}", str_at(t, "/key"))
            } else {
                format!(
                    "node(s) had untolerated taint {{{}: {value}}}",
                    str_at(t, "/key")
                )
            });
        } else {
            let free = |alloc: i64, used: i64| alloc - used;
            if free(node.allocatable.pods, node.requested.pods) < want.pods {
                why.push("Too many pods".to_string());
            }
            if want.cpu_millis > 0
                && free(node.allocatable.cpu_millis, node.requested.cpu_millis) < want.cpu_millis
            {
                why.push("Insufficient cpu".to_string());
            }
            if want.memory_bytes > 0
                && free(node.allocatable.memory_bytes, node.requested.memory_bytes)
                    < want.memory_bytes
            {
                why.push("Insufficient memory".to_string());
            }
        }
        if why.is_empty() {
            let frac = |used: i64, alloc: i64| {
                if alloc <= 0 {
                    1.0
                } else {
                    used as f64 / alloc as f64
                }
            };
            let score = frac(
                node.requested.cpu_millis + want.cpu_millis,
                node.allocatable.cpu_millis,
            ) + frac(
                node.requested.memory_bytes + want.memory_bytes,
                node.allocatable.memory_bytes,
            ) + frac(node.requested.pods + 1, node.allocatable.pods);
            if best.is_none_or(|(s, _)| score < s) {
                best = Some((score, i));
            }
        }
        for w in why {
            *reasons.entry(w).or_default() += 1;
        }
    }
    if let Some((_, i)) = best {
        return Ok(i);
    }
    let n = nodes.len();
    let mut listed: Vec<String> = reasons.iter().map(|(r, c)| format!("{c} {r}")).collect();
    listed.sort();
    let message = if n == 0 {
        "no nodes available to schedule pods".to_string()
    } else {
        format!(
            "0/{n} nodes are available: {}. preemption: 0/{n} nodes are available: {n} No preemption victims found for incoming pod.",
            listed.join(", ")
        )
    };
    Err(Unschedulable { message })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn node(name: &str, cpu: i64, mem: i64, pods: i64) -> NodeView {
        NodeView {
            name: name.into(),
            labels: json!({"kubernetes.io/hostname": name})
                .as_object()
                .cloned()
                .unwrap_or_default(),
            allocatable: Resources {
                cpu_millis: cpu,
                memory_bytes: mem,
                pods,
            },
            requested: Resources::default(),
            unschedulable: false,
            taints: vec![],
        }
    }

    fn pod(cpu: &str, mem: &str) -> Value {
        json!({"spec": {"containers": [{"name": "c", "resources": {"requests": {"cpu": cpu, "memory": mem}}}]}})
    }

    #[test]
    fn requests_sum_containers_and_take_init_max() {
        let p = json!({"spec": {
            "containers": [{"resources": {"requests": {"cpu": "100m"}}}, {"resources": {"limits": {"cpu": "200m", "memory": "1Mi"}}}],
            "initContainers": [{"resources": {"requests": {"cpu": "1"}}}]}});
        let r = pod_requests(&p);
        assert_eq!(
            r,
            Resources {
                cpu_millis: 1000,
                memory_bytes: 1 << 20,
                pods: 1
            }
        );
    }

    #[test]
    fn picks_least_allocated_and_respects_capacity() {
        let mut nodes = vec![node("a", 1000, 1 << 30, 10), node("b", 1000, 1 << 30, 10)];
        nodes[0].requested = Resources {
            cpu_millis: 500,
            memory_bytes: 0,
            pods: 1,
        };
        assert_eq!(schedule(&pod("100m", "1Mi"), &nodes), Ok(1));
        nodes[1].requested = Resources {
            cpu_millis: 950,
            memory_bytes: 0,
            pods: 1,
        };
        assert_eq!(schedule(&pod("100m", "1Mi"), &nodes), Ok(0));
        let err = schedule(&pod("600m", "1Mi"), &nodes).expect_err("full");
        assert!(
            err.message
                .starts_with("0/2 nodes are available: 2 Insufficient cpu."),
            "{}",
            err.message
        );
    }

    #[test]
    fn pod_count_and_memory_limit() {
        let mut nodes = vec![node("a", 1000, 1 << 20, 1)];
        nodes[0].requested.pods = 1;
        let err = schedule(&pod("1m", "2Mi"), &nodes).expect_err("full");
        assert!(
            err.message
                .contains("1 Insufficient memory, 1 Too many pods"),
            "{}",
            err.message
        );
    }

    #[test]
    fn selectors_taints_and_cordon() {
        let mut nodes = vec![node("a", 1000, 1 << 30, 10), node("b", 1000, 1 << 30, 10)];
        let mut p = pod("1m", "1Mi");
        p["spec"]["nodeSelector"] = json!({"kubernetes.io/hostname": "b"});
        assert_eq!(schedule(&p, &nodes), Ok(1));
        let mut ds = pod("1m", "1Mi");
        ds["spec"]["affinity"] = json!({"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
            "nodeSelectorTerms": [{"matchFields": [{"key": "metadata.name", "operator": "In", "values": ["a"]}]}]}}});
        assert_eq!(schedule(&ds, &nodes), Ok(0));
        nodes[0].unschedulable = true;
        nodes[1].taints = vec![json!({"key": "dedicated", "value": "x", "effect": "NoSchedule"})];
        let err = schedule(&pod("1m", "1Mi"), &nodes).expect_err("none");
        assert!(
            err.message
                .contains("1 node(s) had untolerated taint {dedicated: x}"),
            "{}",
            err.message
        );
        let mut tolerant = pod("1m", "1Mi");
        tolerant["spec"]["tolerations"] = json!([{"key": "dedicated", "operator": "Exists"}]);
        assert_eq!(schedule(&tolerant, &nodes), Ok(1));
    }
}
