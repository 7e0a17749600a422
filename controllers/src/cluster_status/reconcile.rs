//! The pure part of the cluster status controller (Karmada
//! `pkg/controllers/status/cluster_status_controller.go`): the Ready
//! condition from a probe, the success/failure thresholds, API enablements,
//! node and resource summaries, and the next status.

use std::borrow::Borrow;
use std::collections::BTreeMap;
use std::time::Duration;

use flotilla_api::cluster::{
    AllocatableModeling, ApiEnablement, CONDITION_READY, ClusterStatus, NodeSummary, ResourceModel,
    ResourceSummary,
};
use k8s_openapi::api::core::v1::{Node, Pod, PodSpec};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use k8s_openapi::jiff::Timestamp;

use crate::member::{Health, Observed};
use crate::quantity::{Format, Value};

/// Condition type `CompleteAPIEnablements`.
pub const CONDITION_COMPLETE_API_ENABLEMENTS: &str = "CompleteAPIEnablements";
/// Ready=True reason.
pub const REASON_CLUSTER_READY: &str = "ClusterReady";
/// Ready=True message.
pub const MESSAGE_CLUSTER_HEALTHY: &str = "cluster is healthy and ready to accept workloads";
/// Ready=False reason when the health endpoint did not say ok.
pub const REASON_CLUSTER_NOT_READY: &str = "ClusterNotReady";
/// Ready=False message when the health endpoint did not say ok.
pub const MESSAGE_CLUSTER_UNHEALTHY: &str =
    "cluster is reachable but health endpoint responded without ok";
/// Ready=False reason when the member did not answer.
pub const REASON_CLUSTER_NOT_REACHABLE: &str = "ClusterNotReachable";
/// Ready=False message when the member did not answer.
pub const MESSAGE_CLUSTER_NOT_REACHABLE: &str = "cluster is not reachable";

/// A condition with `lastTransitionTime` = `now` (Karmada `util.NewCondition`;
/// the time is kept from the existing condition when the status is unchanged,
/// see [`set_condition`]).
pub fn condition(
    type_: &str,
    status: &str,
    reason: &str,
    message: &str,
    now: Timestamp,
) -> Condition {
    Condition {
        type_: type_.into(),
        status: status.into(),
        reason: reason.into(),
        message: message.into(),
        last_transition_time: Time(now),
        observed_generation: None,
    }
}

/// The Ready condition a probe observes (Karmada `generateReadyCondition`):
/// offline → False/ClusterNotReachable; online but not ok →
/// False/ClusterNotReady; ok → True/ClusterReady.
pub fn ready_condition(health: Health, now: Timestamp) -> Condition {
    if !health.online {
        condition(
            CONDITION_READY,
            "False",
            REASON_CLUSTER_NOT_REACHABLE,
            MESSAGE_CLUSTER_NOT_REACHABLE,
            now,
        )
    } else if !health.healthy {
        condition(
            CONDITION_READY,
            "False",
            REASON_CLUSTER_NOT_READY,
            MESSAGE_CLUSTER_UNHEALTHY,
            now,
        )
    } else {
        condition(
            CONDITION_READY,
            "True",
            REASON_CLUSTER_READY,
            MESSAGE_CLUSTER_HEALTHY,
            now,
        )
    }
}

/// What the threshold logic remembers per cluster (Karmada `clusterData`).
#[derive(Clone, Debug, PartialEq)]
pub struct ThresholdState {
    /// Last observed Ready status.
    pub observed_status: String,
    /// When the observed status last changed.
    pub since: Timestamp,
}

/// Karmada's `thresholdAdjustedReadyCondition`: a flip between True and
/// not-True of the stored Ready condition only happens once the observation
/// has been stable for the success threshold (towards True) or the failure
/// threshold (away from True); until then the stored condition is kept. The
/// first observation of a cluster (no state) is taken as is.
pub fn threshold_adjusted(
    state: Option<&ThresholdState>,
    current: Option<&Condition>,
    observed: Condition,
    now: Timestamp,
    success: Duration,
    failure: Duration,
) -> (Condition, ThresholdState) {
    let Some(saved) = state else {
        let st = ThresholdState {
            observed_status: observed.status.clone(),
            since: now,
        };
        return (observed, st);
    };
    let mut saved = saved.clone();
    let Some(current) = current else {
        if saved.observed_status != observed.status {
            saved = ThresholdState {
                observed_status: observed.status.clone(),
                since: now,
            };
        }
        return (observed, saved);
    };
    if saved.observed_status != observed.status {
        saved = ThresholdState {
            observed_status: observed.status.clone(),
            since: now,
        };
    }
    let threshold = if observed.status == "True" {
        success
    } else {
        failure
    };
    let flips = (observed.status == "True") != (current.status == "True");
    let elapsed_ms = now.as_millisecond() - saved.since.as_millisecond();
    let threshold_ms = i64::try_from(threshold.as_millis()).unwrap_or(i64::MAX);
    if flips && elapsed_ms < threshold_ms {
        return (current.clone(), saved);
    }
    (observed, saved)
}

/// `meta.SetStatusCondition`: replaces the condition of the same type, keeping
/// its `lastTransitionTime` when the status did not change; appends otherwise.
/// Returns whether anything changed.
pub fn set_condition(conditions: &mut Vec<Condition>, new: Condition) -> bool {
    match conditions.iter_mut().find(|c| c.type_ == new.type_) {
        Some(c) => {
            let mut new = new;
            if c.status == new.status {
                new.last_transition_time = c.last_transition_time.clone();
            }
            if *c == new {
                return false;
            }
            *c = new;
            true
        }
        None => {
            conditions.push(new);
            true
        }
    }
}

/// The Ready condition of a status, if any.
pub fn ready(status: Option<&ClusterStatus>) -> Option<&Condition> {
    status?
        .conditions
        .iter()
        .find(|c| c.type_ == CONDITION_READY)
}

/// Karmada `getAPIEnablements`: subresources (names with `/`) dropped,
/// resources sorted by name, group versions sorted.
pub fn api_enablements(raw: &[ApiEnablement]) -> Vec<ApiEnablement> {
    let mut out: Vec<ApiEnablement> = raw
        .iter()
        .map(|e| {
            let mut resources: Vec<_> = e
                .resources
                .iter()
                .filter(|r| !r.name.contains('/'))
                .cloned()
                .collect();
            resources.sort_by(|a, b| a.name.cmp(&b.name));
            ApiEnablement {
                group_version: e.group_version.clone(),
                resources,
            }
        })
        .collect();
    out.sort_by(|a, b| a.group_version.cmp(&b.group_version));
    out
}

/// The `CompleteAPIEnablements` condition: Empty / Partial / Complete.
pub fn api_enablement_condition(count: usize, partial: bool, now: Timestamp) -> Condition {
    if count == 0 {
        condition(
            CONDITION_COMPLETE_API_ENABLEMENTS,
            "False",
            "Empty",
            "collected empty APIEnablements from the cluster",
            now,
        )
    } else if partial {
        condition(
            CONDITION_COMPLETE_API_ENABLEMENTS,
            "False",
            "Partial",
            &format!("might collect partial APIEnablements({count}) from the cluster"),
            now,
        )
    } else {
        condition(
            CONDITION_COMPLETE_API_ENABLEMENTS,
            "True",
            "Complete",
            "collected complete APIEnablements from the cluster",
            now,
        )
    }
}

fn node_ready(node: &Node) -> bool {
    node.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

/// Total and Ready nodes (Karmada `getNodeSummary`).
pub fn node_summary(nodes: &[Node]) -> NodeSummary {
    let total = i32::try_from(nodes.len()).unwrap_or(i32::MAX);
    let ready = i32::try_from(nodes.iter().filter(|n| node_ready(n)).count()).unwrap_or(i32::MAX);
    NodeSummary {
        total_num: Some(total),
        ready_num: Some(ready),
    }
}

/// Karmada's `util.Resource`: cpu in millis, memory / ephemeral storage /
/// scalar resources as integers, and a pod count.
#[derive(Clone, Debug, Default, PartialEq)]
struct Resource {
    milli_cpu: i128,
    memory: i128,
    ephemeral_storage: i128,
    pods: i128,
    scalar: BTreeMap<String, i128>,
}

impl Resource {
    fn add_list(&mut self, list: &BTreeMap<String, Quantity>) {
        for (name, q) in list {
            let Some(v) = flotilla_api::quantity::of(q) else {
                continue;
            };
            match name.as_str() {
                "cpu" => self.milli_cpu += v.milli_value(),
                "memory" => self.memory += v.value(),
                "ephemeral-storage" => self.ephemeral_storage += v.value(),
                "pods" => self.pods += v.value(),
                other if is_scalar(other) => {
                    *self.scalar.entry(other.into()).or_default() += v.value()
                }
                _ => {}
            }
        }
    }

    fn max_list(&mut self, list: &BTreeMap<String, Quantity>) {
        for (name, q) in list {
            let Some(v) = flotilla_api::quantity::of(q) else {
                continue;
            };
            let slot = match name.as_str() {
                "cpu" => {
                    self.milli_cpu = self.milli_cpu.max(v.milli_value());
                    continue;
                }
                "memory" => &mut self.memory,
                "ephemeral-storage" => &mut self.ephemeral_storage,
                "pods" => &mut self.pods,
                other if is_scalar(other) => self.scalar.entry(other.into()).or_default(),
                _ => continue,
            };
            *slot = (*slot).max(v.value());
        }
    }

    fn add(&mut self, other: &Resource) {
        self.milli_cpu += other.milli_cpu;
        self.memory += other.memory;
        self.ephemeral_storage += other.ephemeral_storage;
        self.pods += other.pods;
        for (k, v) in &other.scalar {
            *self.scalar.entry(k.clone()).or_default() += v;
        }
    }

    /// Karmada `AddPodRequest`'s amount: containers summed, each init
    /// container as a floor, plus overhead.
    fn pod_request(spec: &PodSpec) -> Resource {
        let mut r = Resource::default();
        for c in &spec.containers {
            if let Some(req) = c.resources.as_ref().and_then(|r| r.requests.as_ref()) {
                r.add_list(req);
            }
        }
        for c in spec.init_containers.iter().flatten() {
            if let Some(req) = c.resources.as_ref().and_then(|r| r.requests.as_ref()) {
                r.max_list(req);
            }
        }
        if let Some(o) = &spec.overhead {
            r.add_list(o);
        }
        r
    }

    fn sub(&mut self, other: &Resource) {
        self.milli_cpu -= other.milli_cpu;
        self.memory -= other.memory;
        self.ephemeral_storage -= other.ephemeral_storage;
        self.pods -= other.pods;
        for (k, v) in &other.scalar {
            *self.scalar.entry(k.clone()).or_default() -= v;
        }
    }

    /// The amount of one resource: millis for cpu, units otherwise.
    fn get(&self, name: &str) -> i128 {
        match name {
            "cpu" => self.milli_cpu,
            "memory" => self.memory,
            "ephemeral-storage" => self.ephemeral_storage,
            "pods" => self.pods,
            other => self.scalar.get(other).copied().unwrap_or_default(),
        }
    }

    fn list(&self) -> BTreeMap<String, Quantity> {
        let mut out = BTreeMap::new();
        out.insert("cpu".into(), Value::milli(self.milli_cpu).quantity());
        out.insert(
            "memory".into(),
            Value::int(self.memory, Format::BinarySi).quantity(),
        );
        out.insert(
            "ephemeral-storage".into(),
            Value::int(self.ephemeral_storage, Format::BinarySi).quantity(),
        );
        out.insert(
            "pods".into(),
            Value::int(self.pods, Format::DecimalSi).quantity(),
        );
        for (k, v) in &self.scalar {
            let f = if k.starts_with("hugepages-") {
                Format::BinarySi
            } else {
                Format::DecimalSi
            };
            out.insert(k.clone(), Value::int(*v, f).quantity());
        }
        out
    }
}

/// Kubernetes' `IsScalarResourceName`: extended (domain-prefixed, not
/// `kubernetes.io/`), hugepages, prefixed native and attachable-volume names.
fn is_scalar(name: &str) -> bool {
    name.starts_with("hugepages-") || name.starts_with("attachable-volumes-") || name.contains('/')
}

/// What the resource summary and the allocatable modelings read of a pod:
/// its node, whether it finished, and its request (Karmada
/// `AddPodRequest`), computed once when the pod is seen. The cluster status
/// controller keeps a member's pods in this form between rounds: a `Pod`,
/// even stripped to these fields, takes a few kilobytes (its structs' many
/// optional fields), this a hundred bytes.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct PodUsage {
    /// `spec.nodeName` (empty while unbound).
    node: Box<str>,
    /// Whether `status.phase` is Succeeded or Failed.
    finished: bool,
    /// The pod's request; `None` without a spec.
    request: Option<Resource>,
}

impl From<&Pod> for PodUsage {
    fn from(p: &Pod) -> PodUsage {
        let phase = p.status.as_ref().and_then(|s| s.phase.as_deref());
        PodUsage {
            node: p
                .spec
                .as_ref()
                .and_then(|s| s.node_name.as_deref())
                .unwrap_or_default()
                .into(),
            finished: matches!(phase, Some("Succeeded" | "Failed")),
            request: p.spec.as_ref().map(Resource::pod_request),
        }
    }
}

/// Karmada `getResourceSummary`: allocatable = sum of nodes' allocatable
/// (each sum keeps the first value's format); allocating = requests of pods
/// not yet bound to a node; allocated = requests of bound pods that are
/// neither Succeeded nor Failed; both with `pods` = the pod count.
pub fn resource_summary<P: Borrow<PodUsage>>(nodes: &[Node], pods: &[P]) -> ResourceSummary {
    let mut allocatable: BTreeMap<String, Value> = BTreeMap::new();
    for n in nodes {
        for (k, q) in n
            .status
            .as_ref()
            .and_then(|s| s.allocatable.as_ref())
            .into_iter()
            .flatten()
        {
            let Some(v) = Value::parse(q) else { continue };
            allocatable
                .entry(k.clone())
                .and_modify(|acc| *acc = acc.plus(v))
                .or_insert(v);
        }
    }
    let mut allocating = Resource::default();
    let mut allocated = Resource::default();
    for p in pods {
        let p = p.borrow();
        let Some(request) = &p.request else { continue };
        if p.node.is_empty() {
            allocating.add(request);
            allocating.pods += 1;
        } else if !p.finished {
            allocated.add(request);
            allocated.pods += 1;
        }
    }
    ResourceSummary {
        allocatable: allocatable
            .into_iter()
            .map(|(k, v)| (k, v.quantity()))
            .collect(),
        allocating: allocating.list(),
        allocated: allocated.list(),
        allocatable_modelings: Vec::new(),
    }
}

/// Karmada `getAllocatableModelings` (gate `CustomizedClusterResourceModeling`,
/// on by default): each node's available resources (allocatable minus the
/// requests of its bound, unfinished pods) fall into the highest grade whose
/// minimum they reach for every resource of the model; one count per grade.
/// Empty without resource models.
pub fn allocatable_modelings<P: Borrow<PodUsage>>(
    models: &[ResourceModel],
    nodes: &[Node],
    pods: &[P],
) -> Vec<AllocatableModeling> {
    let Some(first) = models.first() else {
        return Vec::new();
    };
    let names: Vec<&str> = first.ranges.iter().map(|r| r.name.as_str()).collect();
    let amount = |name: &str, q: &Quantity| {
        flotilla_api::quantity::of(q).map(|e| {
            if name == "cpu" {
                e.milli_value()
            } else {
                e.value()
            }
        })
    };
    // per resource, the minimum of each grade
    let mins: Vec<Vec<i128>> = names
        .iter()
        .map(|name| {
            models
                .iter()
                .map(|m| {
                    m.ranges
                        .iter()
                        .find(|r| r.name == *name)
                        .and_then(|r| amount(name, &r.min))
                        .unwrap_or_default()
                })
                .collect()
        })
        .collect();
    let mut requested: BTreeMap<&str, Resource> = BTreeMap::new();
    for p in pods {
        let p = p.borrow();
        let Some(request) = &p.request else { continue };
        if !p.node.is_empty() && !p.finished {
            let r = requested.entry(&p.node).or_default();
            r.add(request);
            r.pods += 1;
        }
    }
    let mut counts = vec![0i32; models.len()];
    for n in nodes {
        let mut available = Resource::default();
        if let Some(a) = n.status.as_ref().and_then(|s| s.allocatable.as_ref()) {
            available.add_list(a);
        }
        if let Some(r) = requested.get(n.metadata.name.as_deref().unwrap_or_default()) {
            available.sub(r);
        }
        let grade = names
            .iter()
            .zip(&mins)
            .map(|(name, mins)| {
                let v = available.get(name);
                mins.iter().rposition(|m| *m <= v)
            })
            .min()
            .flatten();
        if let Some(g) = grade {
            counts[g] += 1;
        }
    }
    models
        .iter()
        .zip(counts)
        .map(|(m, count)| AllocatableModeling {
            grade: m.grade,
            count,
        })
        .collect()
}

/// The next status of a cluster (Karmada `syncClusterStatus`): always the
/// threshold-adjusted Ready condition; when the member is online, healthy and
/// Ready is True, also version, API enablements (+ `CompleteAPIEnablements`),
/// node and resource summaries from `observed` (fields whose read failed keep
/// their old values).
pub fn next_status(
    current: Option<&ClusterStatus>,
    models: &[ResourceModel],
    health: Health,
    ready: Condition,
    observed: Option<&Observed>,
    now: Timestamp,
) -> ClusterStatus {
    let mut status = current.cloned().unwrap_or_default();
    if let Some(obs) =
        observed.filter(|_| health.online && health.healthy && ready.status == "True")
    {
        if let Some(v) = &obs.kubernetes_version {
            status.kubernetes_version = v.clone();
        }
        let enablements = api_enablements(&obs.api_enablements);
        set_condition(
            &mut status.conditions,
            api_enablement_condition(enablements.len(), obs.api_discovery_partial, now),
        );
        if !enablements.is_empty() {
            status.api_enablements = enablements;
        }
        if let Some(nodes) = &obs.nodes {
            status.node_summary = Some(node_summary(nodes));
            if let Some(pods) = &obs.pods {
                let mut summary = resource_summary(nodes, pods);
                summary.allocatable_modelings = allocatable_modelings(models, nodes, pods);
                status.resource_summary = Some(summary);
            }
        }
    }
    set_condition(&mut status.conditions, ready);
    status
}

#[cfg(test)]
mod tests {
    use super::*;
    use flotilla_api::cluster::ApiResource;

    fn ts(s: i64) -> Timestamp {
        Timestamp::from_second(s).unwrap()
    }

    const ONLINE: Health = Health {
        online: true,
        healthy: true,
    };
    const OFFLINE: Health = Health {
        online: false,
        healthy: false,
    };

    #[test]
    fn ready_conditions() {
        let c = ready_condition(ONLINE, ts(1));
        assert_eq!(
            (c.status.as_str(), c.reason.as_str()),
            ("True", "ClusterReady")
        );
        assert_eq!(
            c.message,
            "cluster is healthy and ready to accept workloads"
        );
        let c = ready_condition(OFFLINE, ts(1));
        assert_eq!(
            (c.status.as_str(), c.reason.as_str(), c.message.as_str()),
            ("False", "ClusterNotReachable", "cluster is not reachable")
        );
        let c = ready_condition(
            Health {
                online: true,
                healthy: false,
            },
            ts(1),
        );
        assert_eq!(
            (c.status.as_str(), c.reason.as_str()),
            ("False", "ClusterNotReady")
        );
    }

    #[test]
    fn thresholds_debounce_flips() {
        let s30 = Duration::from_secs(30);
        // first observation is taken as is
        let (c, st) =
            threshold_adjusted(None, None, ready_condition(ONLINE, ts(0)), ts(0), s30, s30);
        assert_eq!(c.status, "True");
        let current = c;
        // goes offline at t=10: kept True until 30 s have passed
        let (c, st) = threshold_adjusted(
            Some(&st),
            Some(&current),
            ready_condition(OFFLINE, ts(10)),
            ts(10),
            s30,
            s30,
        );
        assert_eq!(c.status, "True");
        assert_eq!(st.since, ts(10));
        let (c, st2) = threshold_adjusted(
            Some(&st),
            Some(&current),
            ready_condition(OFFLINE, ts(39)),
            ts(39),
            s30,
            s30,
        );
        assert_eq!(c.status, "True");
        assert_eq!(st2.since, ts(10));
        let (c, st) = threshold_adjusted(
            Some(&st2),
            Some(&current),
            ready_condition(OFFLINE, ts(40)),
            ts(40),
            s30,
            s30,
        );
        assert_eq!(
            (c.status.as_str(), c.reason.as_str()),
            ("False", "ClusterNotReachable")
        );
        let current = c;
        // back online at t=50: stays False until t=80
        let (c, st) = threshold_adjusted(
            Some(&st),
            Some(&current),
            ready_condition(ONLINE, ts(50)),
            ts(50),
            s30,
            s30,
        );
        assert_eq!(c.status, "False");
        let (c, _) = threshold_adjusted(
            Some(&st),
            Some(&current),
            ready_condition(ONLINE, ts(80)),
            ts(80),
            s30,
            s30,
        );
        assert_eq!(c.status, "True");
        // False -> False with another reason is not debounced
        let unhealthy = ready_condition(
            Health {
                online: true,
                healthy: false,
            },
            ts(90),
        );
        let (c, _) = threshold_adjusted(Some(&st), Some(&current), unhealthy, ts(90), s30, s30);
        assert_eq!(c.reason, "ClusterNotReady");
        // a flapping member never flips: each change restarts the clock
        let mut st = ThresholdState {
            observed_status: "True".into(),
            since: ts(0),
        };
        let true_current = ready_condition(ONLINE, ts(0));
        for t in (100..200).step_by(20) {
            let h = if (t / 20) % 2 == 0 { OFFLINE } else { ONLINE };
            let (c, s) = threshold_adjusted(
                Some(&st),
                Some(&true_current),
                ready_condition(h, ts(t)),
                ts(t),
                s30,
                s30,
            );
            assert_eq!(c.status, "True", "t={t}");
            st = s;
        }
    }

    #[test]
    fn set_condition_keeps_transition_time() {
        let mut cs = vec![ready_condition(ONLINE, ts(1))];
        assert!(!set_condition(&mut cs, ready_condition(ONLINE, ts(5))));
        assert_eq!(cs[0].last_transition_time, Time(ts(1)));
        assert!(set_condition(&mut cs, ready_condition(OFFLINE, ts(6))));
        assert_eq!(cs[0].last_transition_time, Time(ts(6)));
        assert!(set_condition(
            &mut cs,
            api_enablement_condition(3, false, ts(6))
        ));
        assert_eq!(cs.len(), 2);
    }

    #[test]
    fn enablements_sorted_without_subresources() {
        let raw = vec![
            ApiEnablement {
                group_version: "v1".into(),
                resources: vec![
                    ApiResource {
                        name: "pods".into(),
                        kind: "Pod".into(),
                    },
                    ApiResource {
                        name: "pods/status".into(),
                        kind: "Pod".into(),
                    },
                    ApiResource {
                        name: "configmaps".into(),
                        kind: "ConfigMap".into(),
                    },
                ],
            },
            ApiEnablement {
                group_version: "apps/v1".into(),
                resources: vec![],
            },
        ];
        let e = api_enablements(&raw);
        assert_eq!(e[0].group_version, "apps/v1");
        assert_eq!(
            e[1].resources
                .iter()
                .map(|r| r.name.as_str())
                .collect::<Vec<_>>(),
            vec!["configmaps", "pods"]
        );
        assert_eq!(api_enablement_condition(0, false, ts(0)).reason, "Empty");
        let p = api_enablement_condition(2, true, ts(0));
        assert_eq!(
            (p.reason.as_str(), p.message.as_str()),
            (
                "Partial",
                "might collect partial APIEnablements(2) from the cluster"
            )
        );
        assert_eq!(api_enablement_condition(2, false, ts(0)).status, "True");
    }

    fn node(ready: &str, cpu: &str, mem: &str) -> Node {
        serde_json::from_value(serde_json::json!({
            "metadata": {"name": "n"},
            "status": {
                "allocatable": {"cpu": cpu, "memory": mem, "pods": "110"},
                "conditions": [{"type": "Ready", "status": ready}]
            }
        }))
        .unwrap()
    }

    /// A pod as the status controller keeps it; its labels, annotations,
    /// images, arguments and limits take no part.
    fn pod(node: &str, phase: &str, cpu: &str, mem: &str) -> PodUsage {
        let full: Pod = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "p", "labels": {"app": "x"}, "annotations": {"big": "x".repeat(1000)}},
            "spec": {
                "nodeName": node,
                "containers": [
                    {"name": "a", "image": "nginx", "args": ["-v"],
                     "resources": {"requests": {"cpu": cpu, "memory": mem}, "limits": {"cpu": "9"}}},
                    {"name": "b", "resources": {"requests": {"cpu": "100m"}}}
                ],
                "initContainers": [{"name": "i", "resources": {"requests": {"cpu": "2", "nvidia.com/gpu": "1"}}}]
            },
            "status": {"phase": phase, "podIP": "10.0.0.1"}
        }))
        .unwrap();
        let bare: Pod = serde_json::from_value(serde_json::json!({
            "spec": {
                "nodeName": node,
                "containers": [
                    {"name": "a", "resources": {"requests": {"cpu": cpu, "memory": mem}}},
                    {"name": "b", "resources": {"requests": {"cpu": "100m"}}}
                ],
                "initContainers": [{"name": "i", "resources": {"requests": {"cpu": "2", "nvidia.com/gpu": "1"}}}]
            },
            "status": {"phase": phase}
        }))
        .unwrap();
        let usage = PodUsage::from(&full);
        assert_eq!(usage, PodUsage::from(&bare));
        usage
    }

    #[test]
    fn summaries() {
        let nodes = vec![
            node("True", "4", "8Gi"),
            node("False", "4", "8Gi"),
            node("True", "500m", "512Mi"),
        ];
        let s = node_summary(&nodes);
        assert_eq!((s.total_num, s.ready_num), (Some(3), Some(2)));
        let pods = vec![
            pod("n1", "Running", "250m", "128Mi"),
            pod("n1", "Succeeded", "8", "1Gi"),
            pod("", "Pending", "500m", "1Gi"),
        ];
        let r = resource_summary(&nodes, &pods);
        let get = |m: &BTreeMap<String, Quantity>, k: &str| {
            m.get(k).map(|q| q.0.clone()).unwrap_or_default()
        };
        assert_eq!(get(&r.allocatable, "cpu"), "8500m");
        assert_eq!(get(&r.allocatable, "memory"), "16896Mi");
        assert_eq!(get(&r.allocatable, "pods"), "330");
        // running pod: max(250m+100m, 2) = 2 cpu, 128Mi, gpu 1
        assert_eq!(get(&r.allocated, "cpu"), "2");
        assert_eq!(get(&r.allocated, "memory"), "128Mi");
        assert_eq!(get(&r.allocated, "pods"), "1");
        assert_eq!(get(&r.allocated, "nvidia.com/gpu"), "1");
        assert_eq!(get(&r.allocated, "ephemeral-storage"), "0");
        assert_eq!(get(&r.allocating, "cpu"), "2");
        assert_eq!(get(&r.allocating, "memory"), "1Gi");
        assert_eq!(get(&r.allocating, "pods"), "1");
    }

    #[test]
    fn modelings() {
        let range = |name: &str, min: &str, max: &str| flotilla_api::cluster::ResourceModelRange {
            name: name.into(),
            min: Quantity(min.into()),
            max: Quantity(max.into()),
        };
        let models = vec![
            ResourceModel {
                grade: 0,
                ranges: vec![range("cpu", "0", "1"), range("memory", "0", "4Gi")],
            },
            ResourceModel {
                grade: 1,
                ranges: vec![range("cpu", "1", "2"), range("memory", "4Gi", "16Gi")],
            },
            ResourceModel {
                grade: 2,
                ranges: vec![range("cpu", "2", "4"), range("memory", "16Gi", "32Gi")],
            },
        ];
        let mut busy = node("True", "4", "8Gi");
        busy.metadata.name = Some("n1".into());
        let nodes = vec![busy, node("True", "4", "32Gi"), node("True", "500m", "8Gi")];
        // n1 loses 2 cpu and 128Mi: cpu 2 -> grade 2, memory ~7.9Gi -> grade 1
        let pods = vec![pod("n1", "Running", "250m", "128Mi")];
        let m = allocatable_modelings(&models, &nodes, &pods);
        assert_eq!(
            m.iter().map(|m| (m.grade, m.count)).collect::<Vec<_>>(),
            vec![(0, 1), (1, 1), (2, 1)]
        );
        assert!(allocatable_modelings(&[], &nodes, &pods).is_empty());
    }

    #[test]
    fn next_status_collects_only_when_ready() {
        let obs = Observed {
            kubernetes_version: Some("v1.33.0".into()),
            api_enablements: vec![ApiEnablement {
                group_version: "v1".into(),
                resources: vec![],
            }],
            api_discovery_partial: false,
            nodes: Some(vec![node("True", "1", "1Gi")]),
            pods: Some(vec![]),
        };
        let s = next_status(
            None,
            &[],
            ONLINE,
            ready_condition(ONLINE, ts(0)),
            Some(&obs),
            ts(0),
        );
        assert_eq!(s.kubernetes_version, "v1.33.0");
        assert_eq!(s.conditions.len(), 2);
        assert_eq!(s.node_summary.as_ref().and_then(|n| n.total_num), Some(1));
        let off = next_status(
            Some(&s),
            &[],
            OFFLINE,
            ready_condition(OFFLINE, ts(9)),
            None,
            ts(9),
        );
        assert_eq!(off.kubernetes_version, "v1.33.0");
        assert_eq!(ready(Some(&off)).unwrap().reason, "ClusterNotReachable");
        // unchanged observation gives an identical status (no write)
        let again = next_status(
            Some(&s),
            &[],
            ONLINE,
            ready_condition(ONLINE, ts(20)),
            Some(&obs),
            ts(20),
        );
        assert_eq!(again, s);
    }
}
