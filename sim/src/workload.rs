//! The workload controllers' pure logic, as kube-controller-manager's: what a
//! Deployment, ReplicaSet, StatefulSet, DaemonSet or Job needs done given the
//! objects it owns, and the status it reports. No I/O: the controller loop
//! ([`crate::controller`]) reads a snapshot, calls these and performs the actions.

use serde_json::{Map, Value, json};

use crate::object::{
    self, controller_ref, generation, i64_at, int_or_percent, name, pod_active, pod_available,
    pod_ready, set_condition, str_at, template_hash,
};

/// Label of a ReplicaSet and its pods naming the pod template's hash.
pub const POD_TEMPLATE_HASH: &str = "pod-template-hash";
/// Label of StatefulSet and DaemonSet pods naming their revision.
pub const REVISION_HASH: &str = "controller-revision-hash";
const REVISION: &str = "deployment.kubernetes.io/revision";

/// A pod to create from a template.
pub fn pod_from_template(
    template: &Value,
    namespace: &str,
    owner: Value,
    extra_labels: &[(&str, String)],
    name: Option<String>,
    generate_name: &str,
) -> Value {
    let mut labels = template
        .pointer("/metadata/labels")
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    for (k, v) in extra_labels {
        labels.insert((*k).to_string(), json!(v));
    }
    let mut metadata = json!({
        "namespace": namespace,
        "labels": labels,
        "ownerReferences": [owner],
    });
    match name {
        Some(n) => metadata["name"] = json!(n),
        None => metadata["generateName"] = json!(generate_name),
    }
    if let Some(a) = template.pointer("/metadata/annotations") {
        metadata["annotations"] = a.clone();
    }
    let spec = template.get("spec").cloned().unwrap_or_else(|| json!({}));
    json!({"apiVersion": "v1", "kind": "Pod", "metadata": metadata, "spec": spec})
}

/// A template without the `pod-template-hash` label, for comparing templates.
fn without_hash(template: &Value) -> Value {
    let mut t = template.clone();
    if let Some(labels) = t
        .pointer_mut("/metadata/labels")
        .and_then(Value::as_object_mut)
    {
        labels.remove(POD_TEMPLATE_HASH);
        if labels.is_empty()
            && let Some(m) = t.get_mut("metadata").and_then(Value::as_object_mut)
        {
            m.remove("labels");
        }
    }
    t
}

fn replicas(object: &Value) -> i64 {
    i64_at(object, "/spec/replicas").unwrap_or(1)
}

fn status_i64(object: &Value, field: &str) -> i64 {
    i64_at(object, &format!("/status/{field}")).unwrap_or(0)
}

fn rs_revision(rs: &Value) -> i64 {
    str_at(
        rs,
        &format!("/metadata/annotations/{}", REVISION.replace('/', "~1")),
    )
    .parse()
    .unwrap_or(0)
}

/// What the Deployment controller does to ReplicaSets.
#[derive(Debug, Clone, PartialEq)]
pub enum RsAction {
    /// Create this ReplicaSet.
    Create(Value),
    /// Set a ReplicaSet's replicas (and the deployment annotations with them).
    Scale {
        name: String,
        replicas: i64,
        annotations: Map<String, Value>,
    },
    /// Delete an old ReplicaSet beyond the revision history limit.
    Delete(String),
}

/// The Deployment controller's decision for one Deployment.
#[derive(Debug, Clone)]
pub struct DeploymentPlan {
    pub actions: Vec<RsAction>,
    /// The whole new `status`.
    pub status: Value,
    /// The revision to record in the Deployment's annotation.
    pub revision: Option<String>,
}

/// The name of a Deployment's ReplicaSet for a template: `<deployment>-<hash>`.
pub fn replica_set_name(deployment: &Value, collision_count: Option<i64>) -> String {
    let template = deployment
        .pointer("/spec/template")
        .cloned()
        .unwrap_or_default();
    format!(
        "{}-{}",
        name(deployment),
        template_hash(&template, collision_count)
    )
}

/// maxSurge and maxUnavailable resolved against the replicas, as Kubernetes does
/// (surge rounds up, unavailable down; both zero means one unavailable).
pub fn surge_and_unavailable(deployment: &Value) -> (i64, i64) {
    let desired = replicas(deployment);
    if str_at(deployment, "/spec/strategy/type") == "Recreate" {
        return (0, 0);
    }
    let ru = deployment.pointer("/spec/strategy/rollingUpdate");
    let surge = int_or_percent(
        ru.and_then(|r| r.get("maxSurge")).or(Some(&json!("25%"))),
        desired,
        true,
        0,
    );
    let unavailable = int_or_percent(
        ru.and_then(|r| r.get("maxUnavailable"))
            .or(Some(&json!("25%"))),
        desired,
        false,
        0,
    );
    if surge == 0 && unavailable == 0 {
        (0, 1)
    } else {
        (surge, unavailable)
    }
}

/// Plans one sync of a Deployment over the ReplicaSets it controls.
pub fn plan_deployment(deployment: &Value, owned: &[&Value]) -> DeploymentPlan {
    let desired = replicas(deployment);
    let template = deployment
        .pointer("/spec/template")
        .cloned()
        .unwrap_or_default();
    let mut collision = i64_at(deployment, "/status/collisionCount");
    let (surge, max_unavailable) = surge_and_unavailable(deployment);
    let recreate = str_at(deployment, "/spec/strategy/type") == "Recreate";
    let paused = deployment.pointer("/spec/paused") == Some(&Value::Bool(true));
    let annotations = |revision: Option<i64>| {
        let mut a = Map::new();
        a.insert(
            "deployment.kubernetes.io/desired-replicas".into(),
            json!(desired.to_string()),
        );
        a.insert(
            "deployment.kubernetes.io/max-replicas".into(),
            json!((desired + surge).to_string()),
        );
        if let Some(r) = revision {
            a.insert(REVISION.into(), json!(r.to_string()));
        }
        a
    };
    let mut actions = Vec::new();
    let new_rs = owned
        .iter()
        .copied()
        .find(|rs| rs.pointer("/spec/template").map(without_hash) == Some(without_hash(&template)));
    let mut olds: Vec<&Value> = owned
        .iter()
        .copied()
        .filter(|rs| new_rs.is_none_or(|n| object::uid(n) != object::uid(rs)))
        .collect();
    olds.sort_by_key(|rs| {
        (
            rs_revision(rs),
            str_at(rs, "/metadata/creationTimestamp").to_string(),
        )
    });
    let max_old_revision = olds.iter().map(|rs| rs_revision(rs)).max().unwrap_or(0);
    let old_total: i64 = olds.iter().map(|rs| replicas(rs)).sum();
    let mut created_name = None;
    let mut revision = new_rs.map(|rs| rs_revision(rs).to_string());
    if new_rs.is_none() && !paused {
        let rs_name = replica_set_name(deployment, collision);
        if owned.iter().any(|rs| name(rs) == rs_name) {
            // A different template hashed to the same name: try the next hash.
            collision = Some(collision.unwrap_or(0) + 1);
        } else {
            let hash = template_hash(&template, collision);
            let initial = if recreate {
                if old_total > 0 { 0 } else { desired }
            } else {
                let max_total = desired + surge;
                (max_total - old_total).clamp(0, desired)
            };
            let new_revision = max_old_revision + 1;
            let mut rs_template = template.clone();
            rs_template["metadata"]["labels"][POD_TEMPLATE_HASH] = json!(hash);
            let mut selector = deployment
                .pointer("/spec/selector")
                .cloned()
                .unwrap_or_else(|| json!({}));
            selector["matchLabels"][POD_TEMPLATE_HASH] = json!(hash);
            let mut labels = template
                .pointer("/metadata/labels")
                .and_then(Value::as_object)
                .cloned()
                .unwrap_or_default();
            labels.insert(POD_TEMPLATE_HASH.into(), json!(hash));
            let mut spec = json!({
                "replicas": initial,
                "selector": selector,
                "template": rs_template,
            });
            if let Some(m) = deployment.pointer("/spec/minReadySeconds") {
                spec["minReadySeconds"] = m.clone();
            }
            actions.push(RsAction::Create(json!({
                "apiVersion": "apps/v1",
                "kind": "ReplicaSet",
                "metadata": {
                    "name": rs_name,
                    "namespace": object::namespace(deployment),
                    "labels": labels,
                    "annotations": annotations(Some(new_revision)),
                    "ownerReferences": [controller_ref("apps/v1", "Deployment", deployment)],
                },
                "spec": spec,
            })));
            created_name = Some(rs_name);
            revision = Some(new_revision.to_string());
        }
    }
    if let Some(new) = new_rs.filter(|_| !paused) {
        let current = replicas(new);
        let scale = |actions: &mut Vec<RsAction>, rs: &Value, to: i64| {
            let mut a = annotations(None);
            if rs_revision(rs) > 0 {
                a.insert(REVISION.into(), json!(rs_revision(rs).to_string()));
            }
            actions.push(RsAction::Scale {
                name: name(rs).to_string(),
                replicas: to,
                annotations: a,
            });
        };
        if recreate {
            let old_running: i64 = olds
                .iter()
                .map(|rs| replicas(rs).max(status_i64(rs, "replicas")))
                .sum();
            for rs in olds.iter().filter(|rs| replicas(rs) > 0) {
                scale(&mut actions, rs, 0);
            }
            if old_running == 0 && current != desired {
                scale(&mut actions, new, desired);
            }
        } else {
            let all_total = old_total + current;
            let target = if current >= desired {
                desired
            } else {
                let max_total = desired + surge;
                if all_total >= max_total {
                    current
                } else {
                    (current + max_total - all_total).min(desired)
                }
            };
            if target != current {
                scale(&mut actions, new, target);
            } else if old_total > 0 {
                let min_available = desired - max_unavailable;
                let new_unavailable = current - status_i64(new, "availableReplicas");
                let max_scaled_down = all_total - min_available - new_unavailable;
                if max_scaled_down > 0 {
                    let mut remaining = max_scaled_down;
                    let mut after: Vec<(&Value, i64)> =
                        olds.iter().map(|rs| (*rs, replicas(rs))).collect();
                    // First the old pods that are not available anyway.
                    for (rs, r) in after.iter_mut() {
                        if remaining == 0 {
                            break;
                        }
                        let unhealthy = (*r - status_i64(rs, "availableReplicas")).max(0);
                        let cut = unhealthy.min(remaining).min(*r);
                        *r -= cut;
                        remaining -= cut;
                    }
                    let available: i64 = owned
                        .iter()
                        .map(|rs| status_i64(rs, "availableReplicas"))
                        .sum();
                    if available > min_available {
                        let mut total = available - min_available;
                        for (_, r) in after.iter_mut() {
                            if total == 0 {
                                break;
                            }
                            let cut = (*r).min(total);
                            *r -= cut;
                            total -= cut;
                        }
                    }
                    for (rs, r) in after {
                        if r != replicas(rs) {
                            scale(&mut actions, rs, r);
                        }
                    }
                }
            }
        }
        // Old ReplicaSets beyond the history limit go.
        let limit = i64_at(deployment, "/spec/revisionHistoryLimit").unwrap_or(10);
        let idle: Vec<&&Value> = olds
            .iter()
            .filter(|rs| replicas(rs) == 0 && status_i64(rs, "replicas") == 0)
            .collect();
        let excess = idle.len() as i64 - limit;
        for rs in idle.into_iter().take(excess.max(0) as usize) {
            actions.push(RsAction::Delete(name(rs).to_string()));
        }
    }
    let status = deployment_status(
        deployment,
        owned,
        new_rs,
        created_name.as_deref(),
        collision,
        max_unavailable,
    );
    DeploymentPlan {
        actions,
        status,
        revision,
    }
}

/// A Deployment's status from its ReplicaSets, as the Deployment controller computes it.
pub fn deployment_status(
    deployment: &Value,
    owned: &[&Value],
    new_rs: Option<&Value>,
    created: Option<&str>,
    collision: Option<i64>,
    max_unavailable: i64,
) -> Value {
    let desired = replicas(deployment);
    let sum = |f: &str| owned.iter().map(|rs| status_i64(rs, f)).sum::<i64>();
    let actual = sum("replicas");
    let spec_total: i64 = owned.iter().map(|rs| replicas(rs)).sum();
    let ready = sum("readyReplicas");
    let available = sum("availableReplicas");
    let updated = new_rs.map_or(0, |rs| status_i64(rs, "replicas"));
    let old = object::conditions(deployment);
    let mut conditions = Vec::new();
    let (a_status, a_reason, a_message) = if available >= desired - max_unavailable {
        (
            "True",
            "MinimumReplicasAvailable",
            "Deployment has minimum availability.",
        )
    } else {
        (
            "False",
            "MinimumReplicasUnavailable",
            "Deployment does not have minimum availability.",
        )
    };
    set_condition(
        &mut conditions,
        &old,
        "Available",
        a_status,
        a_reason,
        a_message,
        true,
    );
    let complete = new_rs.is_some()
        && updated == desired
        && actual == desired
        && available >= desired
        && new_rs.is_some_and(|rs| replicas(rs) == desired);
    let (p_reason, p_message) = match (created, new_rs) {
        (Some(n), _) => (
            "NewReplicaSetCreated",
            format!("Created new replica set \"{n}\""),
        ),
        (None, Some(rs)) if complete => (
            "NewReplicaSetAvailable",
            format!("ReplicaSet \"{}\" has successfully progressed.", name(rs)),
        ),
        (None, Some(rs)) => (
            "ReplicaSetUpdated",
            format!("ReplicaSet \"{}\" is progressing.", name(rs)),
        ),
        (None, None) => (
            "NewReplicaSetCreated",
            "Waiting for a new replica set".to_string(),
        ),
    };
    let (p_status, p_reason) = if deployment.pointer("/spec/paused") == Some(&Value::Bool(true)) {
        ("Unknown", "DeploymentPaused")
    } else {
        ("True", p_reason)
    };
    let p_message = if p_reason == "DeploymentPaused" {
        "Deployment is paused".to_string()
    } else {
        p_message
    };
    set_condition(
        &mut conditions,
        &old,
        "Progressing",
        p_status,
        p_reason,
        &p_message,
        true,
    );
    // Keep Progressing before Available as kube lists them on a fresh rollout.
    conditions.sort_by_key(|c| str_at(c, "/type") != "Available");
    let mut status = json!({
        "observedGeneration": generation(deployment),
        "replicas": actual,
        "updatedReplicas": updated,
        "readyReplicas": ready,
        "availableReplicas": available,
        "unavailableReplicas": (spec_total.max(desired) - available).max(0),
        "conditions": conditions,
    });
    if let Some(c) = collision {
        status["collisionCount"] = json!(c);
    }
    strip_zeros(
        &mut status,
        &[
            "replicas",
            "updatedReplicas",
            "readyReplicas",
            "availableReplicas",
            "unavailableReplicas",
        ],
    );
    status
}

/// Drops zero counters, as Go's `omitempty` does.
fn strip_zeros(status: &mut Value, fields: &[&str]) {
    if let Some(m) = status.as_object_mut() {
        for f in fields {
            if m.get(*f) == Some(&json!(0)) {
                m.remove(*f);
            }
        }
    }
}

/// The order in which pods are deleted on scale-down (first is deleted first):
/// unscheduled, pending, not ready, ready for less time, newer.
pub fn deletion_rank(
    pod: &Value,
) -> (
    u8,
    u8,
    u8,
    std::cmp::Reverse<String>,
    std::cmp::Reverse<String>,
) {
    let assigned = u8::from(!str_at(pod, "/spec/nodeName").is_empty());
    let phase = match str_at(pod, "/status/phase") {
        "Pending" => 0,
        "Unknown" => 1,
        _ => 2,
    };
    let ready = u8::from(pod_ready(pod));
    let since = object::pod_ready_since(pod)
        .map(|t| t.to_string())
        .unwrap_or_default();
    (
        assigned,
        phase,
        ready,
        std::cmp::Reverse(since),
        std::cmp::Reverse(str_at(pod, "/metadata/creationTimestamp").to_string()),
    )
}

/// The ReplicaSet controller's decision for one ReplicaSet.
#[derive(Debug, Clone)]
pub struct ReplicaSetPlan {
    /// How many pods to create.
    pub create: i64,
    /// Pods to delete, by name.
    pub delete: Vec<String>,
    pub status: Value,
    /// Look again after this many seconds (pods becoming available).
    pub recheck_seconds: Option<i64>,
}

/// Plans one sync of a ReplicaSet over the pods it controls.
pub fn plan_replica_set(rs: &Value, pods: &[&Value], now: jiff::Timestamp) -> ReplicaSetPlan {
    let desired = replicas(rs);
    let mut active: Vec<&Value> = pods.iter().copied().filter(|p| pod_active(p)).collect();
    let diff = active.len() as i64 - desired;
    let mut delete = Vec::new();
    let mut create = 0;
    if diff < 0 {
        create = -diff;
    } else if diff > 0 {
        active.sort_by_key(|p| deletion_rank(p));
        delete = active
            .iter()
            .take(diff as usize)
            .map(|p| name(p).to_string())
            .collect();
    }
    let (status, recheck_seconds) = replica_set_status(rs, pods, now);
    ReplicaSetPlan {
        create,
        delete,
        status,
        recheck_seconds,
    }
}

/// A ReplicaSet's status from its pods.
pub fn replica_set_status(
    rs: &Value,
    pods: &[&Value],
    now: jiff::Timestamp,
) -> (Value, Option<i64>) {
    let min_ready = i64_at(rs, "/spec/minReadySeconds").unwrap_or(0);
    let template_labels = rs
        .pointer("/spec/template/metadata/labels")
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    let active: Vec<&Value> = pods.iter().copied().filter(|p| pod_active(p)).collect();
    let ready = active.iter().filter(|p| pod_ready(p)).count() as i64;
    let available = active
        .iter()
        .filter(|p| pod_available(p, min_ready, now))
        .count() as i64;
    let fully_labeled = active
        .iter()
        .filter(|p| {
            let l = object::labels(p);
            template_labels.iter().all(|(k, v)| l.get(k) == Some(v))
        })
        .count() as i64;
    let recheck = (ready > available).then_some(min_ready.max(1));
    let mut status = json!({
        "replicas": active.len(),
        "fullyLabeledReplicas": fully_labeled,
        "readyReplicas": ready,
        "availableReplicas": available,
        "observedGeneration": generation(rs),
    });
    strip_zeros(
        &mut status,
        &["fullyLabeledReplicas", "readyReplicas", "availableReplicas"],
    );
    (status, recheck)
}

/// The StatefulSet controller's decision for one StatefulSet.
#[derive(Debug, Clone)]
pub struct StatefulSetPlan {
    /// Pods to create (full objects, named by ordinal).
    pub create: Vec<Value>,
    /// Pods to delete, by name.
    pub delete: Vec<String>,
    pub status: Value,
}

fn ordinal(sts: &Value, pod: &Value) -> Option<i64> {
    name(pod)
        .strip_prefix(&format!("{}-", name(sts)))
        .and_then(|o| o.parse().ok())
}

/// The revision name of a StatefulSet or DaemonSet template: `<name>-<hash>`.
pub fn revision_name(owner: &Value) -> String {
    let template = owner.pointer("/spec/template").cloned().unwrap_or_default();
    format!("{}-{}", name(owner), template_hash(&template, None))
}

/// Plans one sync of a StatefulSet over its pods: ordinal pods `<sts>-<i>`,
/// created in order (OrderedReady) or together (Parallel), removed from the
/// highest ordinal, and replaced from the highest ordinal on template change.
pub fn plan_stateful_set(sts: &Value, pods: &[&Value]) -> StatefulSetPlan {
    let desired = replicas(sts);
    let update_revision = revision_name(sts);
    let parallel = str_at(sts, "/spec/podManagementPolicy") == "Parallel";
    let on_delete = str_at(sts, "/spec/updateStrategy/type") == "OnDelete";
    let partition = i64_at(sts, "/spec/updateStrategy/rollingUpdate/partition").unwrap_or(0);
    let mut by_ordinal: std::collections::BTreeMap<i64, &Value> = std::collections::BTreeMap::new();
    for p in pods.iter().copied().filter(|p| pod_active(p)) {
        if let Some(o) = ordinal(sts, p) {
            by_ordinal.insert(o, p);
        }
    }
    let revision_of =
        |p: &Value| str_at(p, &format!("/metadata/labels/{REVISION_HASH}")).to_string();
    let running_ready = |p: &Value| str_at(p, "/status/phase") == "Running" && pod_ready(p);
    let mut create = Vec::new();
    let mut delete = Vec::new();
    let make = |i: i64| {
        let pod_name = format!("{}-{i}", name(sts));
        let mut pod = pod_from_template(
            sts.pointer("/spec/template").unwrap_or(&Value::Null),
            object::namespace(sts),
            controller_ref("apps/v1", "StatefulSet", sts),
            &[
                (REVISION_HASH, update_revision.clone()),
                ("statefulset.kubernetes.io/pod-name", pod_name.clone()),
                ("apps.kubernetes.io/pod-index", i.to_string()),
            ],
            Some(pod_name.clone()),
            "",
        );
        pod["spec"]["hostname"] = json!(pod_name);
        let service = str_at(sts, "/spec/serviceName");
        if !service.is_empty() {
            pod["spec"]["subdomain"] = json!(service);
        }
        pod
    };
    let mut blocked = false;
    for i in 0..desired {
        match by_ordinal.get(&i) {
            None => {
                if !blocked {
                    create.push(make(i));
                }
                if !parallel {
                    blocked = true;
                }
            }
            Some(p) if !running_ready(p) && !parallel => blocked = true,
            Some(_) => {}
        }
    }
    let extra: Vec<i64> = by_ordinal
        .keys()
        .copied()
        .filter(|o| *o >= desired)
        .collect();
    if !extra.is_empty() {
        if parallel {
            delete.extend(extra.iter().map(|o| name(by_ordinal[o]).to_string()));
        } else if !blocked && let Some(o) = extra.last() {
            delete.push(name(by_ordinal[o]).to_string());
        }
    } else if create.is_empty() && !blocked && !on_delete {
        // Rolling update: replace the highest outdated ordinal once all are ready.
        let all_ready = (0..desired).all(|i| by_ordinal.get(&i).is_some_and(|p| running_ready(p)));
        if all_ready
            && let Some((_, p)) = by_ordinal
                .iter()
                .rev()
                .find(|(o, p)| **o >= partition && revision_of(p) != update_revision)
        {
            delete.push(name(p).to_string());
        }
    }
    let in_range: Vec<&Value> = by_ordinal.values().copied().collect();
    let ready = in_range.iter().filter(|p| pod_ready(p)).count() as i64;
    let updated = in_range
        .iter()
        .filter(|p| revision_of(p) == update_revision)
        .count() as i64;
    let previous_current = str_at(sts, "/status/currentRevision");
    let current_revision = if previous_current.is_empty()
        || (updated == desired && ready == desired && in_range.len() as i64 == desired)
    {
        update_revision.clone()
    } else {
        previous_current.to_string()
    };
    let current = in_range
        .iter()
        .filter(|p| revision_of(p) == current_revision)
        .count() as i64;
    let mut status = json!({
        "observedGeneration": generation(sts),
        "replicas": in_range.len(),
        "readyReplicas": ready,
        "currentReplicas": current,
        "updatedReplicas": updated,
        "availableReplicas": ready,
        "currentRevision": current_revision,
        "updateRevision": update_revision,
        "collisionCount": 0,
    });
    strip_zeros(
        &mut status,
        &["readyReplicas", "currentReplicas", "updatedReplicas"],
    );
    StatefulSetPlan {
        create,
        delete,
        status,
    }
}

/// The DaemonSet controller's decision for one DaemonSet.
#[derive(Debug, Clone)]
pub struct DaemonSetPlan {
    pub create: Vec<Value>,
    pub delete: Vec<String>,
    pub status: Value,
}

/// The node a DaemonSet pod is meant for (its binding, or its required
/// `metadata.name` node affinity).
pub fn daemon_pod_node(pod: &Value) -> String {
    let bound = str_at(pod, "/spec/nodeName");
    if !bound.is_empty() {
        return bound.to_string();
    }
    pod.pointer("/spec/affinity/nodeAffinity/requiredDuringSchedulingIgnoredDuringExecution/nodeSelectorTerms/0/matchFields/0/values/0")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string()
}

const DAEMON_TOLERATIONS: [(&str, &str); 7] = [
    ("node.kubernetes.io/not-ready", "NoExecute"),
    ("node.kubernetes.io/unreachable", "NoExecute"),
    ("node.kubernetes.io/disk-pressure", "NoSchedule"),
    ("node.kubernetes.io/memory-pressure", "NoSchedule"),
    ("node.kubernetes.io/pid-pressure", "NoSchedule"),
    ("node.kubernetes.io/unschedulable", "NoSchedule"),
    ("node.kubernetes.io/network-unavailable", "NoSchedule"),
];

/// Plans one sync of a DaemonSet: one pod per eligible node, pinned with node
/// affinity; outdated pods replaced up to `maxUnavailable` at a time.
pub fn plan_daemon_set(ds: &Value, pods: &[&Value], nodes: &[Value]) -> DaemonSetPlan {
    let revision = revision_name(ds);
    let hash = revision.rsplit('-').next().unwrap_or("").to_string();
    let template = ds.pointer("/spec/template").cloned().unwrap_or_default();
    let probe = json!({"spec": template.get("spec").cloned().unwrap_or_default()});
    let eligible: Vec<String> = nodes
        .iter()
        .map(crate::schedule::NodeView::from_node)
        .filter(|n| crate::schedule::affinity_matches(&probe, n))
        .map(|n| n.name)
        .collect();
    let active: Vec<&Value> = pods.iter().copied().filter(|p| pod_active(p)).collect();
    let mut create = Vec::new();
    let mut delete = Vec::new();
    for node in &eligible {
        let on_node: Vec<&&Value> = active
            .iter()
            .filter(|p| daemon_pod_node(p) == *node)
            .collect();
        if on_node.is_empty() {
            let mut pod = pod_from_template(
                &template,
                object::namespace(ds),
                controller_ref("apps/v1", "DaemonSet", ds),
                &[
                    (REVISION_HASH, hash.clone()),
                    ("pod-template-generation", generation(ds).to_string()),
                ],
                None,
                &format!("{}-", name(ds)),
            );
            pod["spec"]["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"] = json!({
                "nodeSelectorTerms": [{"matchFields": [{"key": "metadata.name", "operator": "In", "values": [node]}]}]
            });
            let mut tolerations = pod
                .pointer("/spec/tolerations")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default();
            for (key, effect) in DAEMON_TOLERATIONS {
                tolerations.push(json!({"key": key, "operator": "Exists", "effect": effect}));
            }
            pod["spec"]["tolerations"] = json!(tolerations);
            create.push(pod);
        } else {
            delete.extend(on_node.iter().skip(1).map(|p| name(p).to_string()));
        }
    }
    for p in &active {
        if !eligible.contains(&daemon_pod_node(p)) {
            delete.push(name(p).to_string());
        }
    }
    let hash_of = |p: &Value| str_at(p, &format!("/metadata/labels/{REVISION_HASH}")).to_string();
    let desired = eligible.len() as i64;
    let scheduled: Vec<&Value> = active
        .iter()
        .copied()
        .filter(|p| eligible.contains(&daemon_pod_node(p)))
        .collect();
    let ready = scheduled.iter().filter(|p| pod_ready(p)).count() as i64;
    let updated = scheduled.iter().filter(|p| hash_of(p) == hash).count() as i64;
    if str_at(ds, "/spec/updateStrategy/type") != "OnDelete" {
        let max_unavailable = int_or_percent(
            ds.pointer("/spec/updateStrategy/rollingUpdate/maxUnavailable"),
            desired,
            false,
            1,
        )
        .max(1);
        let unavailable = desired - ready;
        let budget = (max_unavailable - unavailable).max(0) as usize;
        delete.extend(
            scheduled
                .iter()
                .filter(|p| hash_of(p) != hash && pod_ready(p))
                .take(budget)
                .map(|p| name(p).to_string()),
        );
    }
    let mut status = json!({
        "observedGeneration": generation(ds),
        "desiredNumberScheduled": desired,
        "currentNumberScheduled": scheduled.len(),
        "numberMisscheduled": active.len() - scheduled.len(),
        "numberReady": ready,
        "numberAvailable": ready,
        "updatedNumberScheduled": updated,
        "numberUnavailable": desired - ready,
    });
    strip_zeros(
        &mut status,
        &[
            "numberAvailable",
            "updatedNumberScheduled",
            "numberUnavailable",
        ],
    );
    DaemonSetPlan {
        create,
        delete,
        status,
    }
}

/// The Job controller's decision for one Job.
#[derive(Debug, Clone)]
pub struct JobPlan {
    pub create: Vec<Value>,
    pub delete: Vec<String>,
    pub status: Value,
}

/// Plans one sync of a Job: keeps `parallelism` pods running until `completions`
/// have succeeded, then records completion.
pub fn plan_job(job: &Value, pods: &[&Value]) -> JobPlan {
    let parallelism = i64_at(job, "/spec/parallelism").unwrap_or(1);
    let completions = i64_at(job, "/spec/completions");
    let suspended = job.pointer("/spec/suspend") == Some(&Value::Bool(true));
    let indexed = str_at(job, "/spec/completionMode") == "Indexed";
    let active: Vec<&Value> = pods.iter().copied().filter(|p| pod_active(p)).collect();
    let succeeded_pods: Vec<&Value> = pods
        .iter()
        .copied()
        .filter(|p| str_at(p, "/status/phase") == "Succeeded")
        .collect();
    let succeeded =
        (succeeded_pods.len() as i64).max(i64_at(job, "/status/succeeded").unwrap_or(0));
    let failed = pods
        .iter()
        .filter(|p| str_at(p, "/status/phase") == "Failed")
        .count() as i64;
    let already_complete = object::conditions(job)
        .iter()
        .any(|c| str_at(c, "/type") == "Complete" && str_at(c, "/status") == "True");
    let complete = already_complete
        || match completions {
            Some(c) => succeeded >= c,
            None => succeeded > 0 && active.is_empty(),
        };
    let wanted = if complete || suspended {
        0
    } else {
        match completions {
            Some(c) => parallelism.min(c - succeeded).max(0),
            None if succeeded > 0 => 0,
            None => parallelism,
        }
    };
    let mut create = Vec::new();
    let mut delete = Vec::new();
    let index_of = |p: &Value| {
        str_at(
            p,
            "/metadata/annotations/batch.kubernetes.io~1job-completion-index",
        )
        .to_string()
    };
    if (active.len() as i64) < wanted {
        let mut taken: Vec<String> = active
            .iter()
            .chain(succeeded_pods.iter())
            .map(|p| index_of(p))
            .collect();
        for _ in 0..(wanted - active.len() as i64) {
            let labels = vec![
                (
                    "batch.kubernetes.io/controller-uid",
                    object::uid(job).to_string(),
                ),
                ("batch.kubernetes.io/job-name", name(job).to_string()),
                ("controller-uid", object::uid(job).to_string()),
                ("job-name", name(job).to_string()),
            ];
            let mut generate = format!("{}-", name(job));
            let mut index = None;
            if indexed {
                let total = completions.unwrap_or(parallelism);
                if let Some(i) = (0..total).find(|i| !taken.contains(&i.to_string())) {
                    taken.push(i.to_string());
                    generate = format!("{}-{i}-", name(job));
                    index = Some(i);
                } else {
                    break;
                }
            }
            let mut pod = pod_from_template(
                job.pointer("/spec/template").unwrap_or(&Value::Null),
                object::namespace(job),
                controller_ref("batch/v1", "Job", job),
                &labels,
                None,
                &generate,
            );
            if let Some(i) = index {
                pod["metadata"]["annotations"]["batch.kubernetes.io/job-completion-index"] =
                    json!(i.to_string());
                pod["metadata"]["labels"]["batch.kubernetes.io/job-completion-index"] =
                    json!(i.to_string());
            }
            create.push(pod);
        }
    } else if (active.len() as i64) > wanted {
        let mut sorted = active.clone();
        sorted.sort_by_key(|p| deletion_rank(p));
        delete = sorted
            .iter()
            .take(active.len() - wanted as usize)
            .map(|p| name(p).to_string())
            .collect();
    }
    let ready = active.iter().filter(|p| pod_ready(p)).count() as i64;
    let mut status = json!({
        "active": active.len(),
        "succeeded": succeeded,
        "failed": failed,
        "ready": ready,
        "terminating": 0,
        "uncountedTerminatedPods": {},
    });
    let start = str_at(job, "/status/startTime");
    if !suspended {
        status["startTime"] = json!(if start.is_empty() {
            object::now()
        } else {
            start.to_string()
        });
    }
    let old = object::conditions(job);
    let mut conditions: Vec<Value> = old
        .iter()
        .filter(|c| {
            !matches!(
                str_at(c, "/type"),
                "SuccessCriteriaMet" | "Complete" | "Suspended"
            )
        })
        .cloned()
        .collect();
    if suspended {
        set_condition(
            &mut conditions,
            &old,
            "Suspended",
            "True",
            "JobSuspended",
            "Job suspended",
            false,
        );
    }
    if complete && active.is_empty() {
        let message = "Reached expected number of succeeded pods";
        set_condition(
            &mut conditions,
            &old,
            "SuccessCriteriaMet",
            "True",
            "CompletionsReached",
            message,
            false,
        );
        set_condition(
            &mut conditions,
            &old,
            "Complete",
            "True",
            "CompletionsReached",
            message,
            false,
        );
        let done = str_at(job, "/status/completionTime");
        status["completionTime"] = json!(if done.is_empty() {
            object::now()
        } else {
            done.to_string()
        });
    }
    if !conditions.is_empty() {
        status["conditions"] = json!(conditions);
    }
    if indexed {
        let mut idx: Vec<i64> = succeeded_pods
            .iter()
            .filter_map(|p| index_of(p).parse().ok())
            .collect();
        idx.sort_unstable();
        idx.dedup();
        let listed: Vec<String> = idx.iter().map(i64::to_string).collect();
        status["completedIndexes"] = json!(listed.join(","));
    }
    strip_zeros(&mut status, &["active", "succeeded", "failed"]);
    JobPlan {
        create,
        delete,
        status,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn deployment(replicas: i64, image: &str) -> Value {
        json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "web", "namespace": "default", "uid": "d-uid", "generation": 2},
            "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": "web"}},
                "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": "25%"}},
                "template": {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [{"name": "c", "image": image}]}}}
        })
    }

    fn created(plan: &DeploymentPlan) -> Value {
        plan.actions
            .iter()
            .find_map(|a| match a {
                RsAction::Create(rs) => Some(rs.clone()),
                _ => None,
            })
            .expect("a ReplicaSet is created")
    }

    fn with_status(mut rs: Value, replicas: i64, available: i64) -> Value {
        rs["metadata"]["uid"] = json!(format!("{}-uid", name(&rs)));
        rs["spec"]["replicas"] = json!(replicas);
        rs["status"] = json!({"replicas": replicas, "readyReplicas": available, "availableReplicas": available});
        rs
    }

    #[test]
    fn replica_set_named_by_template_hash_and_owned() {
        let d = deployment(3, "nginx:1");
        let plan = plan_deployment(&d, &[]);
        let rs = created(&plan);
        let hash = template_hash(d.pointer("/spec/template").expect("template"), None);
        assert_eq!(name(&rs), format!("web-{hash}"));
        assert_eq!(replica_set_name(&d, None), name(&rs));
        assert_eq!(str_at(&rs, "/metadata/labels/pod-template-hash"), hash);
        assert_eq!(
            str_at(&rs, "/spec/selector/matchLabels/pod-template-hash"),
            hash
        );
        assert_eq!(
            rs.pointer("/metadata/ownerReferences/0/controller"),
            Some(&json!(true))
        );
        assert_eq!(str_at(&rs, "/metadata/ownerReferences/0/uid"), "d-uid");
        assert_eq!(rs.pointer("/spec/replicas"), Some(&json!(3)));
        assert_eq!(plan.revision.as_deref(), Some("1"));
        assert_ne!(replica_set_name(&deployment(3, "nginx:2"), None), name(&rs));
    }

    #[test]
    fn status_follows_replica_sets() {
        let d = deployment(3, "nginx:1");
        let rs = with_status(created(&plan_deployment(&d, &[])), 3, 3);
        let plan = plan_deployment(&d, &[&rs]);
        assert!(plan.actions.is_empty(), "{:?}", plan.actions);
        let s = &plan.status;
        assert_eq!(s["observedGeneration"], json!(2));
        assert_eq!(s["readyReplicas"], json!(3));
        assert_eq!(s["availableReplicas"], json!(3));
        assert_eq!(s["updatedReplicas"], json!(3));
        let progressing = s["conditions"]
            .as_array()
            .expect("conditions")
            .iter()
            .find(|c| c["type"] == "Progressing")
            .expect("Progressing");
        assert_eq!(progressing["reason"], json!("NewReplicaSetAvailable"));
    }

    #[test]
    fn scale_and_rolling_update() {
        let d = deployment(3, "nginx:1");
        let rs = with_status(created(&plan_deployment(&d, &[])), 3, 3);
        let bigger = deployment(5, "nginx:1");
        let plan = plan_deployment(&bigger, &[&rs]);
        assert!(
            matches!(&plan.actions[..], [RsAction::Scale { replicas: 5, .. }]),
            "{:?}",
            plan.actions
        );
        // New template: a new RS with the surge, then the old one scaled down.
        let d2 = deployment(4, "nginx:2");
        let old = with_status(
            created(&plan_deployment(&deployment(4, "nginx:1"), &[])),
            4,
            4,
        );
        let plan = plan_deployment(&d2, &[&old]);
        let new = created(&plan);
        assert_eq!(new["spec"]["replicas"], json!(1));
        let new = with_status(new, 1, 1);
        let plan = plan_deployment(&d2, &[&old, &new]);
        assert!(plan.actions.iter().any(|a| matches!(a, RsAction::Scale { name, replicas, .. } if *name == super::name(&old) && *replicas == 2)), "{:?}", plan.actions);
    }

    #[test]
    fn replica_set_creates_and_deletes() {
        let rs = json!({"metadata": {"name": "r", "generation": 1}, "spec": {"replicas": 2, "template": {"metadata": {"labels": {"a": "b"}}}}});
        let now = jiff::Timestamp::now();
        let plan = plan_replica_set(&rs, &[], now);
        assert_eq!(plan.create, 2);
        let ready = json!({"metadata": {"name": "p1", "labels": {"a": "b"}}, "spec": {"nodeName": "n"},
            "status": {"phase": "Running", "conditions": [{"type": "Ready", "status": "True", "lastTransitionTime": "2020-01-01T00:00:00Z"}]}});
        let pending = json!({"metadata": {"name": "p2"}, "status": {"phase": "Pending"}});
        let third = json!({"metadata": {"name": "p3"}, "spec": {"nodeName": "n"}, "status": {"phase": "Pending"}});
        let rs1 = json!({"metadata": {"name": "r", "generation": 1}, "spec": {"replicas": 1}});
        let plan = plan_replica_set(&rs1, &[&ready, &pending, &third], now);
        assert_eq!(plan.delete, vec!["p2".to_string(), "p3".to_string()]);
        assert_eq!(plan.status["replicas"], json!(3));
        assert_eq!(plan.status["readyReplicas"], json!(1));
    }

    #[test]
    fn stateful_set_ordered() {
        let sts = json!({"metadata": {"name": "db", "namespace": "default", "uid": "u", "generation": 1},
            "spec": {"replicas": 2, "serviceName": "db", "template": {"metadata": {"labels": {"app": "db"}}, "spec": {"containers": []}}}});
        let plan = plan_stateful_set(&sts, &[]);
        assert_eq!(plan.create.len(), 1);
        assert_eq!(name(&plan.create[0]), "db-0");
        assert_eq!(str_at(&plan.create[0], "/spec/subdomain"), "db");
    }

    #[test]
    fn job_completes() {
        let job = json!({"metadata": {"name": "j", "namespace": "default", "uid": "u"},
            "spec": {"completions": 2, "parallelism": 1, "template": {"spec": {"containers": []}}}});
        assert_eq!(plan_job(&job, &[]).create.len(), 1);
        let done = json!({"metadata": {"name": "j-1"}, "status": {"phase": "Succeeded"}});
        let done2 = json!({"metadata": {"name": "j-2"}, "status": {"phase": "Succeeded"}});
        let plan = plan_job(&job, &[&done, &done2]);
        assert!(plan.create.is_empty());
        assert_eq!(plan.status["succeeded"], json!(2));
        assert!(
            plan.status["conditions"]
                .as_array()
                .expect("c")
                .iter()
                .any(|c| c["type"] == "Complete")
        );
        assert!(plan.status.get("completionTime").is_some());
    }
}
