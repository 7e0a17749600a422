//! Karmada's native resource interpreter for the built-in workloads
//! (`pkg/resourceinterpreter/default/native/`): replicas and per-replica
//! requirements of a template, health of a member object, the status
//! reflected from a member into a Work, and the aggregation of member
//! statuses back into the template. Covered kinds are listed on each function;
//! other kinds fall back to Karmada's defaults (no replicas, healthy, whole
//! `.status` reflected, no aggregation).

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::api::core::v1::{NodeSelector, Toleration};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use serde_json::{Map, Value, json};

use crate::quantity;
use crate::raw::RawJson;
use crate::work::{AggregatedStatusItem, NodeClaim, ReplicaRequirements};

fn get_i64(v: &Value, p: &str) -> i64 {
    v.pointer(p).and_then(Value::as_i64).unwrap_or(0)
}

fn pod_spec_path(kind: &str) -> Option<&'static str> {
    match kind {
        "Deployment" | "ReplicaSet" | "StatefulSet" | "Job" => Some("/spec/template/spec"),
        "Pod" => Some("/spec"),
        _ => None,
    }
}

/// Node constraints of a pod spec (Karmada `GenerateNodeClaimByPodSpec`):
/// nodeSelector, tolerations and required node affinity; `None` when all are empty.
pub fn node_claim(pod_spec: &Value) -> Option<NodeClaim> {
    let node_selector: BTreeMap<String, String> = pod_spec
        .get("nodeSelector")
        .and_then(|v| serde_json::from_value(v.clone()).ok())
        .unwrap_or_default();
    let tolerations: Vec<Toleration> = pod_spec
        .get("tolerations")
        .and_then(|v| serde_json::from_value(v.clone()).ok())
        .unwrap_or_default();
    let hard: Option<NodeSelector> = pod_spec
        .pointer("/affinity/nodeAffinity/requiredDuringSchedulingIgnoredDuringExecution")
        .and_then(|v| serde_json::from_value(v.clone()).ok());
    let has_selector = pod_spec.get("nodeSelector").is_some_and(|v| !v.is_null());
    if !has_selector && hard.is_none() && tolerations.is_empty() {
        return None;
    }
    Some(NodeClaim {
        hard_node_affinity: hard,
        node_selector,
        tolerations,
    })
}

fn is_scalar(name: &str) -> bool {
    name.starts_with("hugepages-")
        || name.starts_with("attachable-volumes-")
        || (name.contains('/')
            && !name.starts_with("kubernetes.io/")
            && !name.contains(".kubernetes.io/"))
}

/// Requests of a container, with limits standing in for missing requests.
fn container_requests(c: &Value) -> BTreeMap<String, Quantity> {
    let get = |k: &str| -> BTreeMap<String, Quantity> {
        c.pointer(&format!("/resources/{k}"))
            .and_then(|v| serde_json::from_value(v.clone()).ok())
            .unwrap_or_default()
    };
    let mut requests = get("requests");
    for (k, v) in get("limits") {
        requests.entry(k).or_insert(v);
    }
    requests
}

/// Canonical rendering of a milli-CPU amount (`resource.NewMilliQuantity`, DecimalSI).
fn format_milli(milli: i128) -> String {
    if milli % 1000 == 0 {
        (milli / 1000).to_string()
    } else {
        format!("{milli}m")
    }
}

/// Canonical rendering of a BinarySI amount (`resource.NewQuantity`, BinarySI).
fn format_binary(v: i128) -> String {
    for (shift, suffix) in [
        (60, "Ei"),
        (50, "Pi"),
        (40, "Ti"),
        (30, "Gi"),
        (20, "Mi"),
        (10, "Ki"),
    ] {
        let unit = 1i128 << shift;
        if v != 0 && v % unit == 0 {
            return format!("{}{suffix}", v / unit);
        }
    }
    v.to_string()
}

/// Canonical rendering of a DecimalSI amount (`resource.NewQuantity`, DecimalSI).
fn format_decimal(v: i128) -> String {
    for (exp, suffix) in [
        (18, "E"),
        (15, "P"),
        (12, "T"),
        (9, "G"),
        (6, "M"),
        (3, "k"),
    ] {
        let unit = 10i128.pow(exp);
        if v != 0 && v % unit == 0 {
            return format!("{}{suffix}", v / unit);
        }
    }
    v.to_string()
}

/// Per-replica resource requests of a pod spec (Karmada
/// `Resource.AddPodTemplateRequest`): containers summed, init containers by
/// maximum, overhead added; limits stand in for missing requests; only cpu,
/// memory, ephemeral-storage, pods and extended resources count.
pub fn pod_requests(pod_spec: &Value) -> BTreeMap<String, Quantity> {
    let mut milli_cpu: i128 = 0;
    let mut totals: BTreeMap<String, i128> = BTreeMap::new();
    let add = |name: &str,
               q: &Quantity,
               max: bool,
               milli_cpu: &mut i128,
               totals: &mut BTreeMap<String, i128>| {
        let Some(e) = quantity::of(q) else { return };
        if name == "cpu" {
            let v = e.milli_value();
            *milli_cpu = if max {
                (*milli_cpu).max(v)
            } else {
                *milli_cpu + v
            };
        } else if matches!(name, "memory" | "ephemeral-storage" | "pods") || is_scalar(name) {
            let slot = totals.entry(name.to_string()).or_insert(0);
            *slot = if max {
                (*slot).max(e.value())
            } else {
                *slot + e.value()
            };
        }
    };
    for c in pod_spec
        .get("containers")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        for (k, q) in container_requests(c) {
            add(&k, &q, false, &mut milli_cpu, &mut totals);
        }
    }
    for c in pod_spec
        .get("initContainers")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        for (k, q) in container_requests(c) {
            add(&k, &q, true, &mut milli_cpu, &mut totals);
        }
    }
    let overhead: BTreeMap<String, Quantity> = pod_spec
        .get("overhead")
        .and_then(|v| serde_json::from_value(v.clone()).ok())
        .unwrap_or_default();
    for (k, q) in overhead {
        add(&k, &q, false, &mut milli_cpu, &mut totals);
    }
    let mut out = BTreeMap::new();
    if milli_cpu > 0 {
        out.insert("cpu".to_string(), Quantity(format_milli(milli_cpu)));
    }
    for (k, v) in totals {
        if v <= 0 {
            continue;
        }
        let s = match k.as_str() {
            "memory" | "ephemeral-storage" => format_binary(v),
            n if n.starts_with("hugepages-") => format_binary(v),
            _ => format_decimal(v),
        };
        out.insert(k, Quantity(s));
    }
    out
}

/// Replicas and per-replica requirements of a template (Karmada
/// `GetReplicas`): Deployment, ReplicaSet, StatefulSet → `spec.replicas`;
/// Job → `min(parallelism, completions)` (completions default to
/// parallelism); Pod → 1. `None` for kinds without a replica interpreter.
pub fn replicas(obj: &Value) -> Option<(i32, Option<ReplicaRequirements>)> {
    let kind = obj.get("kind").and_then(Value::as_str).unwrap_or_default();
    let spec_path = pod_spec_path(kind)?;
    let as_i32 = |p: &str| {
        obj.pointer(p)
            .and_then(Value::as_i64)
            .and_then(|v| i32::try_from(v).ok())
    };
    let n = match kind {
        "Pod" => 1,
        "Job" => {
            let parallelism = as_i32("/spec/parallelism").unwrap_or(0);
            parallelism.min(as_i32("/spec/completions").unwrap_or(parallelism))
        }
        _ => as_i32("/spec/replicas").unwrap_or(0),
    };
    let pod_spec = obj.pointer(spec_path).cloned().unwrap_or(Value::Null);
    let claim = node_claim(&pod_spec);
    let requests = pod_requests(&pod_spec);
    let requirements = (claim.is_some() || !requests.is_empty()).then(|| ReplicaRequirements {
        node_claim: claim,
        resource_request: requests,
        ..Default::default()
    });
    Some((n, requirements))
}

/// Health of a member object (Karmada `InterpretHealth` with the native
/// interpreters); kinds without one are healthy.
pub fn healthy(obj: &Value) -> bool {
    let kind = obj.get("kind").and_then(Value::as_str).unwrap_or_default();
    let i = |p: &str| get_i64(obj, p);
    let generation_observed = i("/status/observedGeneration") == i("/metadata/generation");
    let ingress_ready = || {
        obj.pointer("/status/loadBalancer/ingress")
            .and_then(Value::as_array)
            .is_some_and(|l| {
                l.iter().any(|e| {
                    e.get("ip")
                        .and_then(Value::as_str)
                        .is_some_and(|s| !s.is_empty())
                        || e.get("hostname")
                            .and_then(Value::as_str)
                            .is_some_and(|s| !s.is_empty())
                })
            })
    };
    match kind {
        "Deployment" | "StatefulSet" => {
            let desired = obj.pointer("/spec/replicas").and_then(Value::as_i64);
            generation_observed
                && desired.is_none_or(|d| i("/status/updatedReplicas") >= d)
                && i("/status/availableReplicas") >= i("/status/updatedReplicas")
        }
        "ReplicaSet" => {
            let desired = obj.pointer("/spec/replicas").and_then(Value::as_i64);
            generation_observed && desired.is_none_or(|d| i("/status/availableReplicas") >= d)
        }
        "DaemonSet" => {
            generation_observed
                && i("/status/updatedNumberScheduled") >= i("/status/desiredNumberScheduled")
                && i("/status/numberAvailable") >= i("/status/updatedNumberScheduled")
        }
        "Service" => {
            obj.pointer("/spec/type").and_then(Value::as_str) != Some("LoadBalancer")
                || ingress_ready()
        }
        "Ingress" => ingress_ready(),
        "PersistentVolumeClaim" => {
            obj.pointer("/status/phase").and_then(Value::as_str) == Some("Bound")
        }
        "Pod" => {
            let phase = obj
                .pointer("/status/phase")
                .and_then(Value::as_str)
                .unwrap_or_default();
            let ready = obj
                .pointer("/status/conditions")
                .and_then(Value::as_array)
                .is_some_and(|cs| {
                    cs.iter().any(|c| {
                        c.get("type") == Some(&json!("Ready"))
                            && c.get("status") == Some(&json!("True"))
                    })
                });
            phase == "Succeeded" || (phase == "Running" && ready)
        }
        "PodDisruptionBudget" => i("/status/currentHealthy") >= i("/status/desiredHealthy"),
        _ => true,
    }
}

/// `(field, always emitted)` lists of the reflected workload statuses.
fn reflected_fields(kind: &str) -> Option<&'static [(&'static str, bool)]> {
    Some(match kind {
        "Deployment" => &[
            ("replicas", false),
            ("updatedReplicas", false),
            ("readyReplicas", false),
            ("availableReplicas", false),
            ("unavailableReplicas", false),
            ("observedGeneration", false),
        ],
        "ReplicaSet" => &[
            ("replicas", true),
            ("readyReplicas", false),
            ("availableReplicas", false),
            ("observedGeneration", false),
        ],
        "StatefulSet" => &[
            ("replicas", true),
            ("readyReplicas", false),
            ("currentReplicas", false),
            ("updatedReplicas", false),
            ("availableReplicas", false),
        ],
        "DaemonSet" => &[
            ("currentNumberScheduled", true),
            ("numberMisscheduled", true),
            ("desiredNumberScheduled", true),
            ("numberReady", true),
            ("observedGeneration", false),
            ("updatedNumberScheduled", false),
            ("numberAvailable", false),
            ("numberUnavailable", false),
        ],
        _ => return None,
    })
}

/// The status a member object reports into its Work (Karmada
/// `ReflectStatus`): selected counters plus `generation` and
/// `resourceTemplateGeneration` for Deployment, ReplicaSet, StatefulSet and
/// DaemonSet; counters, conditions and times of Jobs; the counters of
/// PodDisruptionBudgets and HorizontalPodAutoscalers; `loadBalancer` of
/// LoadBalancer Services only; the whole `.status` for other kinds. `None`
/// when there is nothing to report.
pub fn reflect_status(obj: &Value) -> Option<Value> {
    let kind = obj.get("kind").and_then(Value::as_str).unwrap_or_default();
    let status = obj.get("status")?;
    if kind == "Service" {
        if obj.pointer("/spec/type").and_then(Value::as_str) != Some("LoadBalancer") {
            return None;
        }
        return Some(
            json!({ "loadBalancer": status.get("loadBalancer").cloned().unwrap_or(json!({})) }),
        );
    }
    let select = |fields: &[(&str, bool)]| {
        let mut out = Map::new();
        for (f, always) in fields {
            match status.get(*f) {
                Some(v) if *always || !is_empty_value(v) => {
                    out.insert((*f).to_string(), v.clone());
                }
                None if *always => {
                    out.insert((*f).to_string(), json!(0));
                }
                _ => {}
            }
        }
        Value::Object(out)
    };
    match kind {
        "Job" => {
            return Some(select(&[
                ("active", false),
                ("succeeded", false),
                ("failed", false),
                ("conditions", false),
                ("startTime", false),
                ("completionTime", false),
            ]));
        }
        "PodDisruptionBudget" => {
            return Some(select(&[
                ("disruptedPods", false),
                ("disruptionsAllowed", true),
                ("currentHealthy", true),
                ("desiredHealthy", true),
                ("expectedPods", true),
            ]));
        }
        "HorizontalPodAutoscaler" => {
            return Some(select(&[
                ("currentReplicas", false),
                ("desiredReplicas", true),
            ]));
        }
        _ => {}
    }
    let Some(fields) = reflected_fields(kind) else {
        return Some(status.clone());
    };
    let mut out = Map::new();
    let generation = get_i64(obj, "/metadata/generation");
    if generation != 0 {
        out.insert("generation".into(), json!(generation));
    }
    let template_generation: i64 = obj
        .pointer("/metadata/annotations/resourcetemplate.karmada.io~1generation")
        .and_then(Value::as_str)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    if template_generation != 0 {
        out.insert(
            "resourceTemplateGeneration".into(),
            json!(template_generation),
        );
    }
    for (f, always) in fields {
        let v = status.get(*f).and_then(Value::as_i64).unwrap_or(0);
        if *always || v != 0 {
            out.insert((*f).to_string(), json!(v));
        }
    }
    if out.is_empty() {
        None
    } else {
        Some(Value::Object(out))
    }
}

/// Summed counters per kind for aggregation.
fn aggregated_fields(kind: &str) -> Option<&'static [&'static str]> {
    Some(match kind {
        "Deployment" => &[
            "replicas",
            "readyReplicas",
            "updatedReplicas",
            "availableReplicas",
            "unavailableReplicas",
        ],
        "ReplicaSet" => &["replicas", "readyReplicas", "availableReplicas"],
        "StatefulSet" => &[
            "availableReplicas",
            "currentReplicas",
            "readyReplicas",
            "replicas",
            "updatedReplicas",
        ],
        "DaemonSet" => &[
            "currentNumberScheduled",
            "desiredNumberScheduled",
            "numberAvailable",
            "numberMisscheduled",
            "numberReady",
            "updatedNumberScheduled",
            "numberUnavailable",
        ],
        _ => return None,
    })
}

/// Aggregates member statuses into the template's status (Karmada
/// `AggregateStatus`) for Deployment, ReplicaSet, StatefulSet and DaemonSet:
/// counters are summed over items with status; `observedGeneration` becomes
/// the template generation only when every item has caught up (for
/// StatefulSet Karmada compares the template generation annotation with the
/// member's own generation, kept as is). Returns the updated template, or
/// `None` when nothing changed or the kind has no aggregation.
pub fn aggregate_status(template: &Value, items: &[AggregatedStatusItem]) -> Option<Value> {
    let kind = template
        .get("kind")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let fields = aggregated_fields(kind)?;
    let generation = get_i64(template, "/metadata/generation");
    let mut sums: BTreeMap<&str, i64> = fields.iter().map(|f| (*f, 0)).collect();
    let mut caught_up = 0usize;
    for item in items {
        let Some(status) = &item.status else { continue };
        let member = |f: &str| status.get(f).and_then(Value::as_i64).unwrap_or(0);
        let observed = member("observedGeneration");
        let member_generation = member("generation");
        let template_generation = member("resourceTemplateGeneration");
        let ok = match kind {
            "StatefulSet" => {
                observed >= member_generation && template_generation >= member_generation
            }
            _ => observed >= member_generation && template_generation >= generation,
        };
        if ok {
            caught_up += 1;
        }
        for f in fields {
            if let Some(s) = sums.get_mut(f) {
                *s += member(f);
            }
        }
    }
    let old_observed = get_i64(template, "/status/observedGeneration");
    let new_observed = if caught_up == items.len() {
        generation
    } else {
        old_observed
    };
    let unchanged = new_observed == old_observed
        && fields.iter().all(|f| {
            get_i64(template, &format!("/status/{f}")) == sums.get(f).copied().unwrap_or(0)
        });
    if unchanged {
        return None;
    }
    let mut out = template.clone();
    let root = out.as_object_mut()?;
    let status = root.entry("status").or_insert_with(|| json!({}));
    if !status.is_object() {
        *status = json!({});
    }
    let status = status.as_object_mut()?;
    let mut set = |k: &str, v: i64| {
        if v == 0 {
            status.remove(k);
        } else {
            status.insert(k.to_string(), json!(v));
        }
    };
    set("observedGeneration", new_observed);
    for f in fields {
        set(f, sums.get(f).copied().unwrap_or(0));
    }
    Some(out)
}

fn port_key(p: &Value) -> (i64, String, Option<String>) {
    (
        p.get("port").and_then(Value::as_i64).unwrap_or(0),
        p.get("protocol")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string(),
        p.get("error").and_then(Value::as_str).map(str::to_string),
    )
}

/// Merges load-balancer ingress entries from several members (Karmada
/// `DedupeAndSort{Service,Ingress}LoadBalancerIngress`): entries with the same
/// hostname, IP and IP mode are merged with their ports de-duplicated and
/// sorted (port, protocol, error with none first); entries sorted with
/// hostnames first (ascending), then IP, then IP mode (none last).
pub fn merge_load_balancer_ingress(entries: &[Value]) -> Vec<Value> {
    type Key = (String, String, Option<String>);
    let key_of = |e: &Value| -> Key {
        let s = |k: &str| {
            e.get(k)
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string()
        };
        (
            s("hostname"),
            s("ip"),
            e.get("ipMode").and_then(Value::as_str).map(str::to_string),
        )
    };
    let mut merged: BTreeMap<Key, (Value, Vec<Value>)> = BTreeMap::new();
    for e in entries {
        let slot = merged
            .entry(key_of(e))
            .or_insert_with(|| (e.clone(), Vec::new()));
        slot.0 = e.clone();
        for p in e
            .get("ports")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            if !slot.1.iter().any(|q| port_key(q) == port_key(p)) {
                slot.1.push(p.clone());
            }
        }
    }
    let mut out: Vec<(Key, Value)> = merged
        .into_iter()
        .map(|(k, (mut e, mut ports))| {
            ports.sort_by_key(port_key);
            if let Some(m) = e.as_object_mut() {
                if ports.is_empty() {
                    m.remove("ports");
                } else {
                    m.insert("ports".into(), Value::Array(ports));
                }
            }
            (k, e)
        })
        .collect();
    out.sort_by(|(a, _), (b, _)| {
        let host = match (a.0.is_empty(), b.0.is_empty()) {
            (false, true) => std::cmp::Ordering::Less,
            (true, false) => std::cmp::Ordering::Greater,
            _ => a.0.cmp(&b.0),
        };
        host.then_with(|| a.1.cmp(&b.1))
            .then_with(|| match (&a.2, &b.2) {
                (Some(x), Some(y)) => x.cmp(y),
                (Some(_), None) => std::cmp::Ordering::Less,
                (None, Some(_)) => std::cmp::Ordering::Greater,
                (None, None) => std::cmp::Ordering::Equal,
            })
    });
    out.into_iter().map(|(_, e)| e).collect()
}

/// Aggregates member load-balancer statuses into a LoadBalancer Service or
/// an Ingress template (Karmada `aggregateServiceStatus` /
/// `aggregateIngressStatus`): the template status becomes exactly the merged
/// `loadBalancer.ingress`. `None` when unchanged, or for a Service that is
/// not of type LoadBalancer.
pub fn aggregate_load_balancer_status(
    template: &Value,
    items: &[AggregatedStatusItem],
) -> Option<Value> {
    let kind = template
        .get("kind")
        .and_then(Value::as_str)
        .unwrap_or_default();
    match kind {
        "Service"
            if template.pointer("/spec/type").and_then(Value::as_str) == Some("LoadBalancer") => {}
        "Ingress" => {}
        _ => return None,
    }
    let entries: Vec<Value> = items
        .iter()
        .filter_map(|i| i.status.as_ref())
        .flat_map(|s| {
            s.pointer("/loadBalancer/ingress")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default()
        })
        .collect();
    let merged = merge_load_balancer_ingress(&entries);
    let new_status = if merged.is_empty() {
        json!({ "loadBalancer": {} })
    } else {
        json!({ "loadBalancer": { "ingress": merged } })
    };
    let normalize = |s: Option<&Value>| -> Value {
        let ingress = s
            .and_then(|s| s.pointer("/loadBalancer/ingress"))
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        let rest: Map<String, Value> = s
            .and_then(Value::as_object)
            .map(|m| {
                m.iter()
                    .filter(|(k, _)| *k != "loadBalancer")
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect()
            })
            .unwrap_or_default();
        json!({ "ingress": ingress, "rest": rest })
    };
    if normalize(template.get("status")) == normalize(Some(&new_status)) {
        return None;
    }
    let mut out = template.clone();
    out.as_object_mut()?.insert("status".into(), new_status);
    Some(out)
}

fn job_finished(status: &Value) -> Option<String> {
    status
        .get("conditions")
        .and_then(Value::as_array)?
        .iter()
        .find_map(|c| {
            let t = c.get("type").and_then(Value::as_str)?;
            ((t == "Complete" || t == "Failed")
                && c.get("status").and_then(Value::as_str) == Some("True"))
            .then(|| t.to_string())
        })
}

/// Aggregates member Job statuses into the Job template (Karmada
/// `aggregateJobStatus` / `ParsingJobStatus`): nothing changes once the
/// template is Complete or Failed; otherwise active/succeeded/failed are
/// summed, a `Failed` condition names the failed clusters, `Complete` (plus
/// `SuccessCriteriaMet` when every member met it) is set when every member
/// completed, startTime is the earliest member start (only when the template
/// has none and all members started) and completionTime the latest (only
/// when all completed). `now` (RFC 3339) stamps new conditions. `None` when
/// unchanged.
pub fn aggregate_job_status(
    template: &Value,
    items: &[AggregatedStatusItem],
    now: &str,
) -> Option<Value> {
    if template.get("kind").and_then(Value::as_str) != Some("Job") {
        return None;
    }
    let old = template.get("status").cloned().unwrap_or(json!({}));
    if job_finished(&old).is_some() {
        return None;
    }
    let (mut active, mut succeeded, mut failed_pods) = (0i64, 0i64, 0i64);
    let (mut failed, mut successful, mut criteria, mut started, mut completed) =
        (Vec::new(), 0usize, 0usize, 0usize, 0usize);
    let mut start: Option<String> = None;
    let mut completion: Option<String> = None;
    for item in items {
        let Some(st) = &item.status else { continue };
        let n = |f: &str| st.get(f).and_then(Value::as_i64).unwrap_or(0);
        active += n("active");
        succeeded += n("succeeded");
        failed_pods += n("failed");
        match job_finished(st).as_deref() {
            Some("Complete") => successful += 1,
            Some("Failed") => failed.push(item.cluster_name.clone()),
            _ => {}
        }
        let met = st
            .get("conditions")
            .and_then(Value::as_array)
            .is_some_and(|cs| {
                cs.iter().any(|c| {
                    c.get("type") == Some(&json!("SuccessCriteriaMet"))
                        && c.get("status") == Some(&json!("True"))
                })
            });
        if met {
            criteria += 1;
        }
        // RFC 3339 UTC timestamps compare correctly as strings.
        let member_start = st
            .get("startTime")
            .and_then(Value::as_str)
            .map(str::to_string);
        if member_start.is_some() {
            started += 1;
        }
        if start.is_none()
            || member_start
                .as_ref()
                .is_some_and(|m| start.as_ref().is_some_and(|s| m < s))
        {
            start = member_start;
        }
        if let Some(c) = st.get("completionTime").and_then(Value::as_str) {
            completed += 1;
            if completion.as_deref().is_none_or(|cur| cur < c) {
                completion = Some(c.to_string());
            }
        }
    }
    let condition = |t: &str, reason: &str, message: String| json!({"type": t, "status": "True", "lastProbeTime": now, "lastTransitionTime": now, "reason": reason, "message": message});
    let mut conditions = Vec::new();
    if !failed.is_empty() {
        conditions.push(condition(
            "Failed",
            "JobFailed",
            format!(
                "Job executed failed in member clusters {}",
                failed.join(",")
            ),
        ));
    }
    if successful == items.len() && successful > 0 {
        conditions.push(condition("Complete", "Completed", "Job completed".into()));
        if criteria == items.len() {
            conditions.push(condition(
                "SuccessCriteriaMet",
                "CompletionsReached",
                "All member clusters have met success criteria".into(),
            ));
        }
    }
    let mut new = Map::new();
    for (k, v) in [
        ("active", active),
        ("succeeded", succeeded),
        ("failed", failed_pods),
    ] {
        if v != 0 {
            new.insert(k.into(), json!(v));
        }
    }
    if !conditions.is_empty() {
        new.insert("conditions".into(), Value::Array(conditions));
    }
    let old_start = old.get("startTime").cloned();
    match old_start {
        Some(s) if !s.is_null() => {
            new.insert("startTime".into(), s);
        }
        _ if started == items.len() && started > 0 => {
            if let Some(s) = start {
                new.insert("startTime".into(), Value::String(s));
            }
        }
        _ => {}
    }
    if let Some(c) = completion.filter(|_| completed == items.len()) {
        new.insert("completionTime".into(), Value::String(c));
    }
    let new = Value::Object(new);
    if new == old {
        return None;
    }
    let mut out = template.clone();
    out.as_object_mut()?.insert("status".into(), new);
    Some(out)
}

/// Drops zero numbers, empty strings, empty lists/maps and nulls, so that
/// statuses compare the way Go compares the typed structs.
fn pruned(v: &Value) -> Value {
    match v {
        Value::Object(m) => Value::Object(
            m.iter()
                .map(|(k, v)| (k.clone(), pruned(v)))
                .filter(|(_, v)| !is_empty_value(v))
                .collect(),
        ),
        Value::Array(a) => Value::Array(a.iter().map(pruned).collect()),
        other => other.clone(),
    }
}

fn is_empty_value(v: &Value) -> bool {
    match v {
        Value::Null => true,
        Value::Bool(b) => !b,
        Value::Number(n) => n.as_f64() == Some(0.0),
        Value::String(s) => s.is_empty(),
        Value::Array(a) => a.is_empty(),
        Value::Object(m) => m.is_empty(),
    }
}

fn replace_status(template: &Value, new_status: Value) -> Option<Value> {
    let old = template.get("status").cloned().unwrap_or(Value::Null);
    if pruned(&old) == pruned(&new_status) {
        return None;
    }
    let mut out = template.clone();
    out.as_object_mut()?.insert("status".into(), new_status);
    Some(out)
}

fn statuses(
    items: &[AggregatedStatusItem],
) -> impl Iterator<Item = (&AggregatedStatusItem, Option<&Value>)> {
    items.iter().map(|i| (i, i.status.as_ref()))
}

fn phase_by_precedence(phases: &BTreeSet<String>, order: &[&str]) -> Option<String> {
    order
        .iter()
        .find(|p| phases.contains(**p))
        .map(|p| p.to_string())
}

/// Aggregation for the remaining native kinds (Karmada `aggregate*Status`):
/// Pod (container states concatenated, phase Failed > Pending > Running >
/// Succeeded, a member without status counting as Pending), PersistentVolume
/// (Failed > Pending > Available > Bound > Released), PersistentVolumeClaim
/// (Lost if any, else the last non-Bound phase, else Bound),
/// PodDisruptionBudget (sums, disrupted pods prefixed `<cluster>/`),
/// HorizontalPodAutoscaler (summed replicas) and CronJob (active jobs
/// concatenated, latest schedule and success times). `None` when unchanged.
pub fn aggregate_other_status(template: &Value, items: &[AggregatedStatusItem]) -> Option<Value> {
    let kind = template
        .get("kind")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let n = |v: &Value, f: &str| v.get(f).and_then(Value::as_i64).unwrap_or(0);
    match kind {
        "Pod" => {
            if items.is_empty() {
                return None;
            }
            let mut phases = BTreeSet::new();
            let (mut containers, mut inits) = (Vec::new(), Vec::new());
            for (_, st) in statuses(items) {
                let Some(st) = st else {
                    phases.insert("Pending".to_string());
                    continue;
                };
                phases.insert(
                    st.get("phase")
                        .and_then(Value::as_str)
                        .unwrap_or_default()
                        .to_string(),
                );
                let reduce = |c: &Value| {
                    json!({"name": "", "state": c.get("state").cloned().unwrap_or(json!({})), "lastState": {},
                           "ready": c.get("ready").and_then(Value::as_bool).unwrap_or(false),
                           "restartCount": 0, "image": "", "imageID": ""})
                };
                containers.extend(
                    st.get("containerStatuses")
                        .and_then(Value::as_array)
                        .into_iter()
                        .flatten()
                        .map(reduce),
                );
                inits.extend(
                    st.get("initContainerStatuses")
                        .and_then(Value::as_array)
                        .into_iter()
                        .flatten()
                        .map(reduce),
                );
            }
            let mut new = Map::new();
            if let Some(p) =
                phase_by_precedence(&phases, &["Failed", "Pending", "Running", "Succeeded"])
            {
                new.insert("phase".into(), json!(p));
            }
            if !containers.is_empty() {
                new.insert("containerStatuses".into(), Value::Array(containers));
            }
            if !inits.is_empty() {
                new.insert("initContainerStatuses".into(), Value::Array(inits));
            }
            replace_status(template, Value::Object(new))
        }
        "PersistentVolume" => {
            let phases: BTreeSet<String> = statuses(items)
                .map(|(_, st)| {
                    st.map_or("Pending".to_string(), |s| {
                        s.get("phase")
                            .and_then(Value::as_str)
                            .unwrap_or_default()
                            .to_string()
                    })
                })
                .collect();
            let new = match phase_by_precedence(
                &phases,
                &["Failed", "Pending", "Available", "Bound", "Released"],
            ) {
                Some(p) => json!({ "phase": p }),
                None => json!({}),
            };
            replace_status(template, new)
        }
        "PersistentVolumeClaim" => {
            let mut phase = "Bound".to_string();
            for (_, st) in statuses(items) {
                let Some(st) = st else { continue };
                let p = st.get("phase").and_then(Value::as_str).unwrap_or_default();
                if p == "Lost" {
                    phase = "Lost".into();
                    break;
                }
                if p != "Bound" {
                    phase = p.to_string();
                }
            }
            replace_status(template, json!({ "phase": phase }))
        }
        "PodDisruptionBudget" => {
            let (mut current, mut desired, mut expected, mut allowed) = (0, 0, 0, 0);
            let mut disrupted = Map::new();
            for (item, st) in statuses(items) {
                let Some(st) = st else { continue };
                current += n(st, "currentHealthy");
                desired += n(st, "desiredHealthy");
                expected += n(st, "expectedPods");
                allowed += n(st, "disruptionsAllowed");
                for (pod, t) in st
                    .get("disruptedPods")
                    .and_then(Value::as_object)
                    .into_iter()
                    .flatten()
                {
                    disrupted.insert(format!("{}/{pod}", item.cluster_name), t.clone());
                }
            }
            let mut new = json!({"disruptionsAllowed": allowed, "currentHealthy": current, "desiredHealthy": desired, "expectedPods": expected});
            if !disrupted.is_empty() {
                new["disruptedPods"] = Value::Object(disrupted);
            }
            replace_status(template, new)
        }
        "HorizontalPodAutoscaler" => {
            let (mut current, mut desired) = (0, 0);
            for (_, st) in statuses(items) {
                let Some(st) = st else { continue };
                current += n(st, "currentReplicas");
                desired += n(st, "desiredReplicas");
            }
            let mut new = json!({ "desiredReplicas": desired });
            if current != 0 {
                new["currentReplicas"] = json!(current);
            }
            replace_status(template, new)
        }
        "CronJob" => {
            let mut active = Vec::new();
            let (mut last_schedule, mut last_success): (Option<String>, Option<String>) =
                (None, None);
            for (_, st) in statuses(items) {
                let Some(st) = st else { continue };
                active.extend(
                    st.get("active")
                        .and_then(Value::as_array)
                        .cloned()
                        .unwrap_or_default(),
                );
                for (slot, f) in [
                    (&mut last_schedule, "lastScheduleTime"),
                    (&mut last_success, "lastSuccessfulTime"),
                ] {
                    if let Some(t) = st.get(f).and_then(Value::as_str)
                        && slot.as_deref().is_none_or(|cur| cur < t)
                    {
                        *slot = Some(t.to_string());
                    }
                }
            }
            let mut new = Map::new();
            if !active.is_empty() {
                new.insert("active".into(), Value::Array(active));
            }
            if let Some(t) = last_schedule {
                new.insert("lastScheduleTime".into(), json!(t));
            }
            if let Some(t) = last_success {
                new.insert("lastSuccessfulTime".into(), json!(t));
            }
            replace_status(template, Value::Object(new))
        }
        _ => None,
    }
}

/// Aggregates member statuses into a template of any native kind, routing
/// to [`aggregate_status`], [`aggregate_load_balancer_status`],
/// [`aggregate_job_status`] or [`aggregate_other_status`]. `now` (RFC 3339)
/// stamps new Job conditions. `None` when nothing changes or the kind has no
/// aggregation (its status is then never written back, as in Karmada).
pub fn aggregate(template: &Value, items: &[AggregatedStatusItem], now: &str) -> Option<Value> {
    match template
        .get("kind")
        .and_then(Value::as_str)
        .unwrap_or_default()
    {
        "Deployment" | "ReplicaSet" | "StatefulSet" | "DaemonSet" => {
            aggregate_status(template, items)
        }
        "Service" | "Ingress" => aggregate_load_balancer_status(template, items),
        "Job" => aggregate_job_status(template, items, now),
        _ => aggregate_other_status(template, items),
    }
}

/// The `status.aggregatedStatus` entry for one Work (Karmada
/// `assembleWorkStatus`): when the Work's `Applied` condition is not True,
/// `{applied: false, appliedMessage, health: Unknown}`; otherwise the
/// reflected manifest status and its health (`Unknown` when missing).
pub fn aggregated_status_item(
    cluster: &str,
    applied: Option<&k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition>,
    manifest: Option<&crate::work::ManifestStatus>,
) -> AggregatedStatusItem {
    match applied {
        Some(c) if c.status == "True" => AggregatedStatusItem {
            cluster_name: cluster.to_string(),
            status: manifest.and_then(|m| m.status.as_ref()).map(RawJson::value),
            applied: true,
            applied_message: String::new(),
            health: manifest
                .map(|m| m.health.clone())
                .filter(|h| !h.is_empty())
                .unwrap_or_else(|| "Unknown".into()),
        },
        other => AggregatedStatusItem {
            cluster_name: cluster.to_string(),
            status: None,
            applied: false,
            applied_message: other.map(|c| c.message.clone()).unwrap_or_default(),
            health: "Unknown".into(),
        },
    }
}

/// The `FullyApplied` condition `(status, reason, message)` (Karmada
/// `generateFullyAppliedCondition`): True when the expected clusters are
/// non-empty, as many as the items, and every item is applied and expected.
pub fn fully_applied(
    expected: &[String],
    items: &[AggregatedStatusItem],
) -> (bool, &'static str, &'static str) {
    let ok = !expected.is_empty()
        && expected.len() == items.len()
        && items
            .iter()
            .all(|i| i.applied && expected.contains(&i.cluster_name));
    if ok {
        (
            true,
            "FullyAppliedSuccess",
            "All works have been successfully applied",
        )
    } else {
        (
            false,
            "FullyAppliedFailed",
            "Failed to apply all works, see status.aggregatedStatus for details",
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn deployment(status: Value) -> Value {
        json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "nginx", "namespace": "default", "generation": 2,
                         "annotations": {"resourcetemplate.karmada.io/generation": "3"}},
            "spec": {"replicas": 2, "template": {"spec": {
                "nodeSelector": {"disk": "ssd"},
                "containers": [
                    {"name": "a", "resources": {"requests": {"cpu": "100m", "memory": "64Mi"}}},
                    {"name": "b", "resources": {"limits": {"cpu": "1", "nvidia.com/gpu": "1"}}}
                ],
                "initContainers": [{"name": "i", "resources": {"requests": {"cpu": "2", "memory": "32Mi"}}}]
            }}},
            "status": status
        })
    }

    #[test]
    fn replicas_and_requirements() {
        let (n, req) = replicas(&deployment(json!({}))).unwrap();
        assert_eq!(n, 2);
        let req = req.unwrap();
        // cpu: max(100m + 1, 2) = 2; memory: max(64Mi, 32Mi); gpu from limits.
        assert_eq!(req.resource_request["cpu"].0, "2");
        assert_eq!(req.resource_request["memory"].0, "64Mi");
        assert_eq!(req.resource_request["nvidia.com/gpu"].0, "1");
        assert_eq!(req.node_claim.unwrap().node_selector["disk"], "ssd");
        let job = json!({"kind": "Job", "spec": {"parallelism": 4, "completions": 3, "template": {"spec": {"containers": [{"name": "c"}]}}}});
        assert_eq!(replicas(&job), Some((3, None)));
        let job = json!({"kind": "Job", "spec": {"parallelism": 4, "template": {"spec": {}}}});
        assert_eq!(replicas(&job).map(|r| r.0), Some(4));
        assert_eq!(replicas(&json!({"kind": "Pod", "spec": {"containers": [{"name": "c", "resources": {"requests": {"cpu": "1500m"}}}]}})).unwrap().1.unwrap().resource_request["cpu"].0, "1500m");
        assert_eq!(replicas(&json!({"kind": "ConfigMap"})), None);
    }

    #[test]
    fn health_rules() {
        let d = |status: Value| healthy(&deployment(status));
        assert!(d(
            json!({"observedGeneration": 2, "updatedReplicas": 2, "availableReplicas": 2})
        ));
        assert!(!d(
            json!({"observedGeneration": 1, "updatedReplicas": 2, "availableReplicas": 2})
        ));
        assert!(!d(
            json!({"observedGeneration": 2, "updatedReplicas": 1, "availableReplicas": 1})
        ));
        assert!(!d(
            json!({"observedGeneration": 2, "updatedReplicas": 2, "availableReplicas": 1})
        ));
        let svc = |t: &str, ingress: Value| {
            healthy(
                &json!({"kind": "Service", "spec": {"type": t}, "status": {"loadBalancer": {"ingress": ingress}}}),
            )
        };
        assert!(svc("ClusterIP", json!([])));
        assert!(!svc("LoadBalancer", json!([])));
        assert!(svc("LoadBalancer", json!([{"ip": "1.2.3.4"}])));
        assert!(healthy(
            &json!({"kind": "PersistentVolumeClaim", "status": {"phase": "Bound"}})
        ));
        assert!(!healthy(
            &json!({"kind": "PersistentVolumeClaim", "status": {"phase": "Pending"}})
        ));
        assert!(healthy(
            &json!({"kind": "Pod", "status": {"phase": "Running", "conditions": [{"type": "Ready", "status": "True"}]}})
        ));
        assert!(!healthy(
            &json!({"kind": "Pod", "status": {"phase": "Running"}})
        ));
        assert!(healthy(
            &json!({"kind": "Pod", "status": {"phase": "Succeeded"}})
        ));
        assert!(healthy(
            &json!({"kind": "PodDisruptionBudget", "status": {"currentHealthy": 2, "desiredHealthy": 2}})
        ));
        assert!(healthy(&json!({"kind": "ConfigMap"})));
        assert!(healthy(
            &json!({"kind": "DaemonSet", "metadata": {"generation": 1}, "status": {"observedGeneration": 1, "desiredNumberScheduled": 2, "updatedNumberScheduled": 2, "numberAvailable": 2}})
        ));
        assert!(!healthy(
            &json!({"kind": "ReplicaSet", "metadata": {"generation": 1}, "spec": {"replicas": 3}, "status": {"observedGeneration": 1, "availableReplicas": 2}})
        ));
    }

    #[test]
    fn reflection() {
        let d = deployment(
            json!({"replicas": 2, "readyReplicas": 2, "observedGeneration": 2, "conditions": [{"type": "Available"}]}),
        );
        assert_eq!(
            reflect_status(&d),
            Some(
                json!({"generation": 2, "resourceTemplateGeneration": 3, "replicas": 2, "readyReplicas": 2, "observedGeneration": 2})
            )
        );
        let bare = json!({"kind": "Deployment", "metadata": {}, "status": {}});
        assert_eq!(reflect_status(&bare), None);
        let sts = json!({"kind": "StatefulSet", "metadata": {}, "status": {}});
        assert_eq!(reflect_status(&sts), Some(json!({"replicas": 0})));
        let svc = json!({"kind": "Service", "spec": {"type": "ClusterIP"}, "status": {"loadBalancer": {}}});
        assert_eq!(reflect_status(&svc), None);
        let lb = json!({"kind": "Service", "spec": {"type": "LoadBalancer"}, "status": {"loadBalancer": {"ingress": [{"ip": "1.1.1.1"}]}}});
        assert_eq!(
            reflect_status(&lb),
            Some(json!({"loadBalancer": {"ingress": [{"ip": "1.1.1.1"}]}}))
        );
        let job = json!({"kind": "Job", "status": {"active": 1, "ready": 1, "startTime": "2026-01-01T00:00:00Z", "uncountedTerminatedPods": {}}});
        assert_eq!(
            reflect_status(&job),
            Some(json!({"active": 1, "startTime": "2026-01-01T00:00:00Z"}))
        );
        let hpa = json!({"kind": "HorizontalPodAutoscaler", "status": {"currentReplicas": 2, "desiredReplicas": 3, "currentMetrics": []}});
        assert_eq!(
            reflect_status(&hpa),
            Some(json!({"currentReplicas": 2, "desiredReplicas": 3}))
        );
        let pdb = json!({"kind": "PodDisruptionBudget", "status": {"currentHealthy": 1, "observedGeneration": 4}});
        assert_eq!(
            reflect_status(&pdb),
            Some(
                json!({"disruptionsAllowed": 0, "currentHealthy": 1, "desiredHealthy": 0, "expectedPods": 0})
            )
        );
        let cm = json!({"kind": "Widget", "status": {"phase": "Ok"}});
        assert_eq!(reflect_status(&cm), Some(json!({"phase": "Ok"})));
        assert_eq!(reflect_status(&json!({"kind": "Widget"})), None);
    }

    fn item(cluster: &str, status: Option<Value>) -> AggregatedStatusItem {
        AggregatedStatusItem {
            cluster_name: cluster.into(),
            status,
            applied: true,
            ..Default::default()
        }
    }

    #[test]
    fn deployment_aggregation() {
        let mut template = deployment(json!({"observedGeneration": 1}));
        template["metadata"]["generation"] = json!(3);
        let m = |ready: i64, observed: i64, tg: i64| json!({"replicas": 1, "readyReplicas": ready, "updatedReplicas": 1, "availableReplicas": ready, "observedGeneration": observed, "generation": observed, "resourceTemplateGeneration": tg});
        let out = aggregate_status(
            &template,
            &[item("m1", Some(m(1, 5, 3))), item("m2", Some(m(1, 7, 3)))],
        )
        .unwrap();
        assert_eq!(
            out["status"],
            json!({"observedGeneration": 3, "replicas": 2, "readyReplicas": 2, "updatedReplicas": 2, "availableReplicas": 2})
        );
        // A member still on an older template keeps the old observedGeneration.
        let out = aggregate_status(
            &template,
            &[item("m1", Some(m(1, 5, 3))), item("m2", Some(m(0, 7, 2)))],
        )
        .unwrap();
        assert_eq!(out["status"]["observedGeneration"], 1);
        assert_eq!(out["status"]["readyReplicas"], 1);
        // Items without status count against observedGeneration but add nothing.
        let out =
            aggregate_status(&template, &[item("m1", Some(m(1, 5, 3))), item("m2", None)]).unwrap();
        assert_eq!(out["status"]["observedGeneration"], 1);
        // Unchanged status gives None.
        let same = aggregate_status(&out, &[item("m1", Some(m(1, 5, 3))), item("m2", None)]);
        assert_eq!(same, None);
        assert_eq!(aggregate_status(&json!({"kind": "ConfigMap"}), &[]), None);
    }

    #[test]
    fn binding_status_items() {
        use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
        let cond = |status: &str, message: &str| -> Condition {
            serde_json::from_value(json!({"type": "Applied", "status": status, "reason": "r", "message": message, "lastTransitionTime": "2026-01-01T00:00:00Z"})).unwrap()
        };
        let manifest: crate::work::ManifestStatus = serde_json::from_value(json!({"identifier": {"ordinal": 0, "version": "v1", "kind": "Deployment", "resource": "deployments", "name": "n"}, "status": {"replicas": 1}, "health": "Healthy"})).unwrap();
        let ok = aggregated_status_item("m1", Some(&cond("True", "")), Some(&manifest));
        assert_eq!(
            (ok.applied, ok.health.as_str(), ok.status.clone()),
            (true, "Healthy", Some(json!({"replicas": 1})))
        );
        let failed = aggregated_status_item(
            "m2",
            Some(&cond("False", "Failed to apply all manifests (0/1): boom")),
            None,
        );
        assert_eq!(
            (
                failed.applied,
                failed.applied_message.as_str(),
                failed.health.as_str()
            ),
            (
                false,
                "Failed to apply all manifests (0/1): boom",
                "Unknown"
            )
        );
        let expected = vec!["m1".to_string(), "m2".to_string()];
        assert!(!fully_applied(&expected, &[ok.clone(), failed]).0);
        let ok2 = AggregatedStatusItem {
            cluster_name: "m2".into(),
            ..ok.clone()
        };
        assert_eq!(
            fully_applied(&expected, &[ok.clone(), ok2]),
            (
                true,
                "FullyAppliedSuccess",
                "All works have been successfully applied"
            )
        );
        assert!(!fully_applied(&[], &[]).0);
    }

    #[test]
    fn load_balancer_aggregation() {
        let svc = json!({"kind": "Service", "spec": {"type": "LoadBalancer"}, "status": {"conditions": [{"type": "x"}]}});
        let st = |ingress: Value| Some(json!({"loadBalancer": {"ingress": ingress}}));
        let items = vec![
            item(
                "m1",
                st(
                    json!([{"ip": "10.0.0.2", "ports": [{"port": 443, "protocol": "TCP"}]}, {"hostname": "b.example"}]),
                ),
            ),
            item(
                "m2",
                st(
                    json!([{"ip": "10.0.0.2", "ports": [{"port": 80, "protocol": "TCP"}, {"port": 443, "protocol": "TCP"}]}, {"hostname": "a.example"}, {"ip": "10.0.0.1", "ipMode": "VIP"}]),
                ),
            ),
            item("m3", None),
        ];
        let out = aggregate_load_balancer_status(&svc, &items).unwrap();
        assert_eq!(
            out["status"],
            json!({"loadBalancer": {"ingress": [
                {"hostname": "a.example"},
                {"hostname": "b.example"},
                {"ip": "10.0.0.1", "ipMode": "VIP"},
                {"ip": "10.0.0.2", "ports": [{"port": 80, "protocol": "TCP"}, {"port": 443, "protocol": "TCP"}]}
            ]}})
        );
        assert_eq!(aggregate_load_balancer_status(&out, &items), None);
        let cluster_ip = json!({"kind": "Service", "spec": {"type": "ClusterIP"}});
        assert_eq!(aggregate_load_balancer_status(&cluster_ip, &items), None);
        let ing = json!({"kind": "Ingress", "status": {"loadBalancer": {}}});
        assert_eq!(aggregate_load_balancer_status(&ing, &[]), None);
        assert!(aggregate_load_balancer_status(&ing, &items[..1]).is_some());
    }

    #[test]
    fn job_aggregation() {
        let now = "2026-01-02T00:00:00Z";
        let job = json!({"kind": "Job", "metadata": {"name": "pi"}, "status": {}});
        let done = |start: &str, end: &str| {
            Some(
                json!({"succeeded": 2, "startTime": start, "completionTime": end,
                        "conditions": [{"type": "SuccessCriteriaMet", "status": "True"}, {"type": "Complete", "status": "True"}]}),
            )
        };
        let items = vec![
            item("m1", done("2026-01-01T00:00:05Z", "2026-01-01T00:01:00Z")),
            item("m2", done("2026-01-01T00:00:01Z", "2026-01-01T00:02:00Z")),
        ];
        let out = aggregate_job_status(&job, &items, now).unwrap();
        assert_eq!(out["status"]["succeeded"], 4);
        assert_eq!(out["status"]["startTime"], "2026-01-01T00:00:01Z");
        assert_eq!(out["status"]["completionTime"], "2026-01-01T00:02:00Z");
        let types: Vec<&str> = out["status"]["conditions"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["type"].as_str().unwrap())
            .collect();
        assert_eq!(types, vec!["Complete", "SuccessCriteriaMet"]);
        assert_eq!(out["status"]["conditions"][0]["message"], "Job completed");
        // Finished templates are left alone.
        assert_eq!(aggregate_job_status(&out, &items, now), None);
        // A failed member.
        let failed = vec![
            item(
                "m1",
                Some(
                    json!({"failed": 1, "startTime": "2026-01-01T00:00:00Z", "conditions": [{"type": "Failed", "status": "True"}]}),
                ),
            ),
            item("m2", Some(json!({"active": 1}))),
        ];
        let out = aggregate_job_status(&job, &failed, now).unwrap();
        assert_eq!(
            out["status"]["conditions"][0]["message"],
            "Job executed failed in member clusters m1"
        );
        assert_eq!(
            (
                out["status"]["active"].clone(),
                out["status"]["failed"].clone()
            ),
            (json!(1), json!(1))
        );
        assert!(
            out["status"].get("startTime").is_none(),
            "not every member started"
        );
        assert_eq!(
            aggregate_job_status(&json!({"kind": "Deployment"}), &failed, now),
            None
        );
    }

    #[test]
    fn other_kinds_aggregation() {
        let st = |v: Value| Some(v);
        // Pod: phase precedence, reduced container statuses.
        let pod = json!({"kind": "Pod", "status": {}});
        let out = aggregate(&pod, &[item("m1", st(json!({"phase": "Running", "containerStatuses": [{"name": "c", "ready": true, "state": {"running": {}}}]}))), item("m2", None)], "").unwrap();
        assert_eq!(out["status"]["phase"], "Pending");
        assert_eq!(out["status"]["containerStatuses"][0]["ready"], true);
        assert_eq!(out["status"]["containerStatuses"][0]["name"], "");
        assert_eq!(aggregate(&pod, &[], ""), None);
        // PVC: Lost wins, else last non-Bound, else Bound.
        let pvc = json!({"kind": "PersistentVolumeClaim", "status": {}});
        let phase = |phases: &[&str]| {
            let items: Vec<_> = phases
                .iter()
                .enumerate()
                .map(|(i, p)| item(&format!("m{i}"), st(json!({"phase": p}))))
                .collect();
            aggregate(&pvc, &items, "").map(|o| o["status"]["phase"].clone())
        };
        assert_eq!(phase(&["Bound", "Lost", "Pending"]), Some(json!("Lost")));
        assert_eq!(phase(&["Pending", "Bound"]), Some(json!("Pending")));
        assert_eq!(phase(&["Bound", "Bound"]), Some(json!("Bound")));
        // PV precedence.
        let pv = json!({"kind": "PersistentVolume"});
        let out = aggregate(
            &pv,
            &[
                item("m1", st(json!({"phase": "Bound"}))),
                item("m2", st(json!({"phase": "Available"}))),
            ],
            "",
        )
        .unwrap();
        assert_eq!(out["status"]["phase"], "Available");
        // PDB sums and prefixes.
        let pdb = json!({"kind": "PodDisruptionBudget", "status": {"observedGeneration": 1}});
        let out = aggregate(&pdb, &[item("m1", st(json!({"currentHealthy": 2, "desiredHealthy": 1, "expectedPods": 2, "disruptionsAllowed": 1, "disruptedPods": {"p1": "2026-01-01T00:00:00Z"}})))], "").unwrap();
        assert_eq!(
            out["status"]["disruptedPods"],
            json!({"m1/p1": "2026-01-01T00:00:00Z"})
        );
        assert_eq!(out["status"]["currentHealthy"], 2);
        // HPA sums; unchanged gives None.
        let hpa = json!({"kind": "HorizontalPodAutoscaler", "status": {"currentReplicas": 3, "desiredReplicas": 4}});
        let items = [
            item(
                "m1",
                st(json!({"currentReplicas": 1, "desiredReplicas": 2})),
            ),
            item(
                "m2",
                st(json!({"currentReplicas": 2, "desiredReplicas": 2})),
            ),
        ];
        assert_eq!(aggregate(&hpa, &items, ""), None);
        // CronJob: latest times, active concatenated.
        let cj = json!({"kind": "CronJob"});
        let out = aggregate(&cj, &[
            item("m1", st(json!({"active": [{"name": "a"}], "lastScheduleTime": "2026-01-01T00:00:00Z"}))),
            item("m2", st(json!({"active": [{"name": "b"}], "lastScheduleTime": "2026-01-02T00:00:00Z", "lastSuccessfulTime": "2026-01-01T00:00:00Z"}))),
        ], "").unwrap();
        assert_eq!(
            out["status"],
            json!({"active": [{"name": "a"}, {"name": "b"}], "lastScheduleTime": "2026-01-02T00:00:00Z", "lastSuccessfulTime": "2026-01-01T00:00:00Z"})
        );
        assert_eq!(aggregate(&json!({"kind": "ConfigMap"}), &items, ""), None);
    }

    #[test]
    fn quantity_formatting() {
        assert_eq!(format_milli(1500), "1500m");
        assert_eq!(format_milli(2000), "2");
        assert_eq!(format_binary(1536 * 1024 * 1024), "1536Mi");
        assert_eq!(format_binary(1 << 30), "1Gi");
        assert_eq!(format_binary(1000), "1000");
        assert_eq!(format_decimal(110), "110");
        assert_eq!(format_decimal(2000), "2k");
    }
}
