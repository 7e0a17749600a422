//! Failover: the ClusterTaintPolicy kind (`policy.karmada.io/v1alpha1`) and
//! the pure decisions of Karmada's failover machinery, with no I/O:
//!
//! - [`policy_taints`]: the taints a Cluster should carry under the
//!   ClusterTaintPolicies that target it (the `clusterTaintPolicy` controller);
//! - [`no_execute_decision`]: whether a binding placed on a cluster with
//!   NoExecute taints must leave it now, later (toleration seconds) or never
//!   (the taint manager);
//! - [`evict_cluster`]: the binding spec after a cluster is taken out of the
//!   scheduling result and recorded in `gracefulEvictionTasks` (Karmada
//!   `GracefulEvictCluster`);
//! - [`assess_eviction_tasks`]: which graceful eviction tasks are done (the
//!   replacement is healthy elsewhere, the grace period ran out, or the user
//!   said so), as Karmada's graceful eviction controller decides;
//! - [`application_unhealthy_clusters`]: the clusters where a workload is
//!   reported unhealthy, for application failover;
//! - [`containment_holds`]: whether a template change must wait for its first
//!   cluster (flotilla's containment extension, see [`CONTAINMENT_ANNOTATION`]).

use std::time::Duration;

use k8s_openapi::api::core::v1::{Taint, Toleration};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use k8s_openapi::jiff::Timestamp;
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::cluster::Cluster;
use crate::placement::{cluster_matches, tolerates};
use crate::policy::ClusterAffinity;
use crate::work::{GracefulEvictionTask, ResourceBindingSpec, ResourceBindingStatus};

/// Purge mode: the old cluster's workload is removed at once.
pub const PURGE_MODE_DIRECTLY: &str = "Directly";
/// Purge mode: the old cluster's workload is removed once the replacement is
/// healthy, or when the grace period ends.
pub const PURGE_MODE_GRACEFULLY: &str = "Gracefully";
/// Purge mode: the old cluster's workload is never removed automatically.
pub const PURGE_MODE_NEVER: &str = "Never";
/// Eviction reason of the taint manager (Karmada `EvictionReasonTaintUntolerated`).
pub const REASON_TAINT_UNTOLERATED: &str = "TaintUntolerated";
/// Eviction reason of application failover (Karmada `EvictionReasonApplicationFailure`).
pub const REASON_APPLICATION_FAILURE: &str = "ApplicationFailure";
/// Producer of taint-manager evictions (Karmada `EvictionProducerTaintManager`).
pub const PRODUCER_TAINT_MANAGER: &str = "TaintManager";
/// Producer of application-failover evictions of ResourceBindings.
pub const PRODUCER_RB_APPLICATION_FAILOVER: &str =
    "resource-binding-application-failover-controller";
/// Producer of application-failover evictions of ClusterResourceBindings.
pub const PRODUCER_CRB_APPLICATION_FAILOVER: &str =
    "cluster-resource-binding-application-failover-controller";
/// Taint effect that evicts.
pub const EFFECT_NO_EXECUTE: &str = "NoExecute";
/// Karmada's default `--graceful-eviction-timeout`.
pub const DEFAULT_GRACEFUL_EVICTION_TIMEOUT: Duration = Duration::from_secs(600);
/// CRD default of `failover.application.decisionConditions.tolerationSeconds`.
pub const DEFAULT_APPLICATION_TOLERATION_SECONDS: i32 = 300;

/// flotilla's containment extension, an annotation on a PropagationPolicy or
/// ClusterPropagationPolicy (Karmada ignores it): `"true"` asks that a
/// template change be rolled out to the first cluster of the scheduling
/// result alone, and reach the other clusters only once the workload is
/// healthy there at the template's new generation.
pub const CONTAINMENT_ANNOTATION: &str = "flotilla.io/contain-template-changes";

/// Spec of a ClusterTaintPolicy (Karmada `ClusterTaintPolicySpec`).
#[derive(CustomResource, Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "policy.karmada.io",
    version = "v1alpha1",
    kind = "ClusterTaintPolicy",
    plural = "clustertaintpolicies",
    singular = "clustertaintpolicy",
    doc = "ClusterTaintPolicy automates taint management on Cluster objects based on declarative conditions.",
    derive = "PartialEq",
    derive = "Default"
)]
#[serde(rename_all = "camelCase")]
pub struct ClusterTaintPolicySpec {
    /// Clusters the policy looks at; unset means every cluster.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_clusters: Option<ClusterAffinity>,
    /// Conditions (ANDed) on which the taints are added; empty: never.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub add_on_conditions: Vec<MatchCondition>,
    /// Conditions (ANDed) on which the taints are removed; empty: never.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub remove_on_conditions: Vec<MatchCondition>,
    /// The taints added or removed.
    #[schemars(extend("minItems" = 1))]
    pub taints: Vec<PolicyTaint>,
}

/// A condition a cluster must match (Karmada `MatchCondition`).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct MatchCondition {
    /// Type of the Cluster's status condition (`Ready`, ...).
    pub condition_type: String,
    /// `In` or `NotIn`.
    pub operator: String,
    /// Condition statuses (`True`, `False`, `Unknown`).
    pub status_values: Vec<String>,
}

/// A taint of a ClusterTaintPolicy (Karmada `Taint` of the policy API).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PolicyTaint {
    /// Taint key.
    pub key: String,
    /// `NoSchedule`, `PreferNoSchedule` or `NoExecute`.
    pub effect: String,
    /// Taint value.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub value: String,
}

/// Whether every match condition holds for `conditions` (ANDed). An empty
/// list never matches. A condition type the cluster does not report has an
/// empty status: `In` fails and `NotIn` holds.
pub fn conditions_match(conditions: &[Condition], matches: &[MatchCondition]) -> bool {
    if matches.is_empty() {
        return false;
    }
    matches.iter().all(|m| {
        let status = conditions
            .iter()
            .find(|c| c.type_ == m.condition_type)
            .map(|c| c.status.as_str())
            .unwrap_or_default();
        let listed = m.status_values.iter().any(|v| v == status);
        match m.operator.as_str() {
            "In" => listed,
            "NotIn" => !listed,
            _ => false,
        }
    })
}

/// The taints `cluster` should carry under `policies` (Karmada's cluster
/// taint policy controller): for each policy targeting the cluster, its
/// taints are added (with `timeAdded` = `now`, or the value updated) when
/// its addOnConditions match, and removed (by key and effect) when its
/// removeOnConditions match; other taints stay. `None` when nothing changes.
pub fn policy_taints(
    cluster: &Cluster,
    policies: &[&ClusterTaintPolicySpec],
    now: Timestamp,
) -> Option<Vec<Taint>> {
    let conditions = cluster
        .status
        .as_ref()
        .map(|s| s.conditions.as_slice())
        .unwrap_or_default();
    let mut taints = cluster.spec.taints.clone();
    for p in policies {
        if let Some(target) = &p.target_clusters
            && !cluster_matches(cluster, target)
        {
            continue;
        }
        if conditions_match(conditions, &p.add_on_conditions) {
            for t in &p.taints {
                let value = (!t.value.is_empty()).then(|| t.value.clone());
                match taints
                    .iter_mut()
                    .find(|c| c.key == t.key && c.effect == t.effect)
                {
                    Some(existing) if existing.value == value => {}
                    Some(existing) => existing.value = value,
                    None => taints.push(Taint {
                        key: t.key.clone(),
                        effect: t.effect.clone(),
                        value,
                        time_added: Some(Time(now)),
                    }),
                }
            }
        } else if conditions_match(conditions, &p.remove_on_conditions) {
            taints.retain(|c| {
                !p.taints
                    .iter()
                    .any(|t| t.key == c.key && t.effect == c.effect)
            });
        }
    }
    (taints != cluster.spec.taints).then_some(taints)
}

/// What the taint manager does with a binding on a cluster.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TaintDecision {
    /// No NoExecute taint, or every one tolerated forever.
    Stay,
    /// An untolerated NoExecute taint, or the toleration time is over.
    EvictNow,
    /// Tolerated for this much longer.
    EvictAfter(Duration),
}

/// Kubernetes' NoExecute semantics over a cluster's taints and a placement's
/// `clusterTolerations`: an untolerated NoExecute taint evicts at once; when
/// all are tolerated, the shortest `tolerationSeconds` counted from the
/// taint's `timeAdded` (else from `now`) bounds the stay; tolerations without
/// seconds tolerate forever.
pub fn no_execute_decision(
    taints: &[Taint],
    tolerations: &[Toleration],
    now: Timestamp,
) -> TaintDecision {
    let mut earliest: Option<Timestamp> = None;
    for taint in taints.iter().filter(|t| t.effect == EFFECT_NO_EXECUTE) {
        let matching: Vec<&Toleration> =
            tolerations.iter().filter(|t| tolerates(t, taint)).collect();
        if matching.is_empty() {
            return TaintDecision::EvictNow;
        }
        // a toleration without seconds tolerates forever
        let Some(seconds) = matching
            .iter()
            .map(|t| t.toleration_seconds)
            .try_fold(i64::MAX, |min, s| s.map(|s| min.min(s)))
        else {
            continue;
        };
        let added = taint.time_added.as_ref().map(|t| t.0).unwrap_or(now);
        let until = added
            .checked_add(std::time::Duration::from_secs(seconds.max(0) as u64))
            .unwrap_or(Timestamp::MAX);
        earliest = Some(earliest.map_or(until, |e| e.min(until)));
    }
    match earliest {
        None => TaintDecision::Stay,
        Some(until) if until <= now => TaintDecision::EvictNow,
        Some(until) => {
            let left = until.duration_since(now);
            TaintDecision::EvictAfter(Duration::try_from(left).unwrap_or(Duration::ZERO))
        }
    }
}

/// How a cluster is evicted from a binding.
#[derive(Clone, Debug, Default)]
pub struct Eviction<'a> {
    /// The cluster.
    pub cluster: &'a str,
    /// `Directly`, `Gracefully` or `Never`.
    pub purge_mode: &'a str,
    /// Machine-readable reason.
    pub reason: &'a str,
    /// Human-readable message.
    pub message: String,
    /// Who evicts.
    pub producer: &'a str,
    /// The task's own grace period (application failover).
    pub grace_period_seconds: Option<i32>,
    /// Labels preserved from the old cluster's status.
    pub preserved_label_state: std::collections::BTreeMap<String, String>,
    /// When.
    pub now: Timestamp,
}

/// Karmada `GracefulEvictCluster`: takes `eviction.cluster` out of
/// `spec.clusters` and records a graceful eviction task (its replicas for
/// workloads, the clusters before the failover, `suppressDeletion: true` for
/// purge mode `Never`), unless one for that cluster exists. Returns whether
/// the spec changed (false when the cluster was not a target).
pub fn evict_cluster(spec: &mut ResourceBindingSpec, eviction: &Eviction<'_>) -> bool {
    let Some(pos) = spec
        .clusters
        .iter()
        .position(|c| c.name == eviction.cluster)
    else {
        return false;
    };
    let before: Vec<String> = spec.clusters.iter().map(|c| c.name.clone()).collect();
    let removed = spec.clusters.remove(pos);
    if spec
        .graceful_eviction_tasks
        .iter()
        .any(|t| t.from_cluster == eviction.cluster)
    {
        return true;
    }
    let workload = spec.replicas > 0 || spec.replica_requirements.is_some();
    spec.graceful_eviction_tasks.push(GracefulEvictionTask {
        from_cluster: eviction.cluster.to_string(),
        purge_mode: eviction.purge_mode.to_string(),
        replicas: workload.then_some(removed.replicas),
        reason: eviction.reason.to_string(),
        message: eviction.message.chars().take(1024).collect(),
        producer: eviction.producer.to_string(),
        grace_period_seconds: eviction.grace_period_seconds,
        suppress_deletion: (eviction.purge_mode == PURGE_MODE_NEVER).then_some(true),
        preserved_label_state: eviction.preserved_label_state.clone(),
        creation_timestamp: Some(Time(eviction.now)),
        clusters_before_failover: before,
    });
    true
}

/// The clusters whose Works stay while an eviction is pending: those of
/// tasks whose purge mode is not `Directly`.
pub fn retained_clusters(spec: &ResourceBindingSpec) -> Vec<&str> {
    spec.graceful_eviction_tasks
        .iter()
        .filter(|t| t.purge_mode != PURGE_MODE_DIRECTLY)
        .map(|t| t.from_cluster.as_str())
        .collect()
}

/// Whether every cluster of the scheduling result reports the workload
/// healthy: an aggregated status item per target, applied, `Healthy`, and —
/// stricter than Karmada, so the old cluster is not purged while the new
/// ones still start — for workloads whose reflected status counts ready
/// replicas, at least the replicas assigned there ready.
pub fn scheduled_clusters_healthy(
    spec: &ResourceBindingSpec,
    status: Option<&ResourceBindingStatus>,
) -> bool {
    let items = status
        .map(|s| s.aggregated_status.as_slice())
        .unwrap_or_default();
    !spec.clusters.is_empty()
        && spec.clusters.iter().all(|target| {
            items
                .iter()
                .find(|i| i.cluster_name == target.name)
                .is_some_and(|i| {
                    // a replica count absent from a workload status is zero
                    let ready = i
                        .status
                        .as_ref()
                        .filter(|s| {
                            ["replicas", "readyReplicas", "availableReplicas"]
                                .iter()
                                .any(|k| s.get(k).is_some())
                        })
                        .map(|s| {
                            s.get("readyReplicas")
                                .or_else(|| s.get("availableReplicas"))
                                .and_then(serde_json::Value::as_i64)
                                .unwrap_or(0)
                        });
                    i.applied
                        && i.health == "Healthy"
                        && (target.replicas <= 0
                            || ready.is_none_or(|r| r >= i64::from(target.replicas)))
                })
        })
}

/// The outcome of assessing a binding's graceful eviction tasks.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Assessment {
    /// The tasks that stay.
    pub kept: Vec<GracefulEvictionTask>,
    /// The clusters whose tasks are done.
    pub done: Vec<String>,
    /// When to look again (the nearest timeout of a kept task).
    pub recheck_after: Option<Duration>,
}

/// Karmada's graceful eviction assessment, task by task:
/// `suppressDeletion: true` keeps it, `false` ends it; a task older than its
/// `gracePeriodSeconds` (else `timeout`) ends; otherwise it ends when the
/// scheduler has seen the current generation (`scheduled`) and every cluster
/// of the result is healthy ([`scheduled_clusters_healthy`]).
pub fn assess_eviction_tasks(
    spec: &ResourceBindingSpec,
    status: Option<&ResourceBindingStatus>,
    scheduled: bool,
    timeout: Duration,
    now: Timestamp,
) -> Assessment {
    let healthy = scheduled && scheduled_clusters_healthy(spec, status);
    let mut out = Assessment::default();
    for task in &spec.graceful_eviction_tasks {
        let keep = match task.suppress_deletion {
            Some(keep) => keep,
            None => {
                let limit = task
                    .grace_period_seconds
                    .map(|s| Duration::from_secs(s.max(0) as u64))
                    .unwrap_or(timeout);
                let created = task.creation_timestamp.as_ref().map(|t| t.0).unwrap_or(now);
                let age = Duration::try_from(now.duration_since(created)).unwrap_or(Duration::ZERO);
                if age >= limit || healthy {
                    false
                } else {
                    let left = limit - age;
                    out.recheck_after = Some(out.recheck_after.map_or(left, |r| r.min(left)));
                    true
                }
            }
        };
        if keep {
            out.kept.push(task.clone());
        } else {
            out.done.push(task.from_cluster.clone());
        }
    }
    out
}

/// The target clusters where the workload is reported `Unhealthy` (Karmada's
/// application failover looks at `aggregatedStatus[].health`; `Unknown` is
/// not a failure).
pub fn application_unhealthy_clusters(
    spec: &ResourceBindingSpec,
    status: Option<&ResourceBindingStatus>,
) -> Vec<String> {
    let items = status
        .map(|s| s.aggregated_status.as_slice())
        .unwrap_or_default();
    spec.clusters
        .iter()
        .filter(|t| {
            items
                .iter()
                .any(|i| i.cluster_name == t.name && i.applied && i.health == "Unhealthy")
        })
        .map(|t| t.name.clone())
        .collect()
}

/// Karmada's state preservation: for each rule, the value at its JSONPath
/// (relative to the member object's `.status`, simple dotted paths like
/// `{.replicas}` or `.conditions[0].status`) stored under its alias label.
/// Rules whose path yields nothing are skipped.
pub fn preserved_label_state(
    rules: &[crate::policy::StatePreservationRule],
    status: &serde_json::Value,
) -> std::collections::BTreeMap<String, String> {
    let mut out = std::collections::BTreeMap::new();
    for rule in rules {
        let path = rule
            .json_path
            .trim()
            .trim_start_matches('{')
            .trim_end_matches('}')
            .trim_start_matches('.');
        let mut cur = Some(status);
        for part in path.split('.').filter(|p| !p.is_empty()) {
            let (name, index) = match part.split_once('[') {
                Some((n, rest)) => (n, rest.trim_end_matches(']').parse::<usize>().ok()),
                None => (part, None),
            };
            cur = cur.and_then(|v| {
                if name.is_empty() {
                    Some(v)
                } else {
                    v.get(name)
                }
            });
            if let Some(i) = index {
                cur = cur.and_then(|v| v.get(i));
            }
        }
        let value = match cur {
            Some(serde_json::Value::String(s)) => Some(s.clone()),
            Some(serde_json::Value::Null) | None => None,
            Some(v) => Some(v.to_string()),
        };
        if let Some(v) = value {
            out.insert(rule.alias_label_name.clone(), v);
        }
    }
    out
}

/// Whether a policy's annotations ask for containment ([`CONTAINMENT_ANNOTATION`] = `"true"`).
pub fn containment_requested(
    annotations: Option<&std::collections::BTreeMap<String, String>>,
) -> bool {
    annotations
        .and_then(|a| a.get(CONTAINMENT_ANNOTATION))
        .is_some_and(|v| v == "true")
}

/// Whether the first cluster runs the template's current generation and is
/// healthy with it: its aggregated status item is `Healthy` and its
/// reflected `resourceTemplateGeneration` (the template generation the member
/// object was rendered from) is `template_generation`.
pub fn first_cluster_proven(
    item: Option<&crate::work::AggregatedStatusItem>,
    template_generation: i64,
) -> bool {
    item.is_some_and(|i| {
        i.applied
            && i.health == "Healthy"
            && i.status
                .as_ref()
                .and_then(|s| s.get("resourceTemplateGeneration"))
                .and_then(serde_json::Value::as_i64)
                == Some(template_generation)
    })
}

/// The containment decision for one cluster of a binding whose policy asks
/// for it: a cluster other than `first_cluster` (the first of the scheduling
/// result) that already has a Work keeps it unchanged (`true` = hold) until
/// the first cluster is proven healthy at the template's current generation
/// (`first_proven`, see [`first_cluster_proven`]). The first cluster, and
/// clusters without a Work yet, are always written.
pub fn containment_holds(
    cluster: &str,
    first_cluster: &str,
    first_proven: bool,
    has_current_work: bool,
) -> bool {
    cluster != first_cluster && has_current_work && !first_proven
}

/// The names of clusters whose `Ready` condition exists and is not `True`.
pub fn unready_clusters<'a>(clusters: impl IntoIterator<Item = &'a Cluster>) -> Vec<String> {
    clusters
        .into_iter()
        .filter(|c| {
            c.status.as_ref().is_some_and(|s| {
                s.conditions.iter().any(|cond| {
                    cond.type_ == crate::cluster::CONDITION_READY && cond.status != "True"
                })
            })
        })
        .filter_map(|c| c.metadata.name.clone())
        .collect()
}

/// flotilla's honest view of members that stopped answering: their
/// aggregated status items keep the last reflected status but say
/// `health: Unknown`, and the template's status is aggregated from the
/// items of reachable clusters only, so `kubectl get` on the template shows
/// the replicas actually known to run. Returns the items for the template.
pub fn degrade_unready(
    items: &mut [crate::work::AggregatedStatusItem],
    unready: &[String],
) -> Vec<crate::work::AggregatedStatusItem> {
    for i in items.iter_mut() {
        if unready.contains(&i.cluster_name) {
            i.health = "Unknown".to_string();
        }
    }
    items
        .iter()
        .filter(|i| !unready.contains(&i.cluster_name))
        .cloned()
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::{cluster, cluster_with_labels, yaml};
    use crate::work::{AggregatedStatusItem, TargetCluster};
    use serde_json::json;

    fn ts(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    fn with_ready(mut c: Cluster, status: &str) -> Cluster {
        c.status = Some(yaml(&format!(
            "conditions: [{{type: Ready, status: \"{status}\", reason: r, message: m, lastTransitionTime: \"2026-01-01T00:00:00Z\"}}]"
        )));
        c
    }

    fn policy() -> ClusterTaintPolicySpec {
        yaml(
            "
addOnConditions: [{conditionType: Ready, operator: In, statusValues: [\"False\", Unknown]}]
removeOnConditions: [{conditionType: Ready, operator: In, statusValues: [\"True\"]}]
taints: [{key: fail, effect: NoExecute}]
",
        )
    }

    #[test]
    fn conditions_and_operators() {
        let c = with_ready(cluster("m"), "False");
        let conds = &c.status.as_ref().unwrap().conditions;
        let m = |op: &str, vals: &[&str]| MatchCondition {
            condition_type: "Ready".into(),
            operator: op.into(),
            status_values: vals.iter().map(|s| s.to_string()).collect(),
        };
        assert!(conditions_match(conds, &[m("In", &["False"])]));
        assert!(!conditions_match(conds, &[m("In", &["True"])]));
        assert!(conditions_match(conds, &[m("NotIn", &["True"])]));
        assert!(!conditions_match(
            conds,
            &[m("In", &["False"]), m("NotIn", &["False"])]
        ));
        assert!(!conditions_match(conds, &[]), "empty never matches");
        let absent = MatchCondition {
            condition_type: "SchedulerDown".into(),
            ..m("In", &["True"])
        };
        assert!(!conditions_match(conds, std::slice::from_ref(&absent)));
        assert!(conditions_match(
            conds,
            &[MatchCondition {
                operator: "NotIn".into(),
                ..absent
            }]
        ));
    }

    #[test]
    fn taints_added_on_failure_removed_on_recovery_others_kept() {
        let now = ts("2026-01-01T00:00:10Z");
        let p = policy();
        let mut c = with_ready(cluster("m"), "False");
        c.spec.taints = vec![yaml("{key: user, effect: NoSchedule}")];
        let t = policy_taints(&c, &[&p], now).expect("added");
        assert_eq!(t.len(), 2);
        assert_eq!(t[1].key, "fail");
        assert_eq!(t[1].effect, "NoExecute");
        assert_eq!(t[1].time_added, Some(Time(now)));
        c.spec.taints = t;
        assert_eq!(policy_taints(&c, &[&p], now), None, "idempotent");
        let mut back = with_ready(c.clone(), "True");
        back.spec.taints = c.spec.taints.clone();
        let t = policy_taints(&back, &[&p], now).expect("removed");
        assert_eq!(t.len(), 1);
        assert_eq!(t[0].key, "user");
        // Unknown matches the add conditions too; no condition at all matches neither
        assert!(policy_taints(&with_ready(cluster("m"), "Unknown"), &[&p], now).is_some());
        assert_eq!(policy_taints(&cluster("m"), &[&p], now), None);
    }

    #[test]
    fn target_clusters_and_value_updates() {
        let now = ts("2026-01-01T00:00:10Z");
        let mut p = policy();
        p.target_clusters = Some(yaml("labelSelector: {matchLabels: {tier: edge}}"));
        let plain = with_ready(cluster("m"), "False");
        assert_eq!(policy_taints(&plain, &[&p], now), None, "not targeted");
        let edge = with_ready(cluster_with_labels("e", &[("tier", "edge")]), "False");
        assert!(policy_taints(&edge, &[&p], now).is_some());
        p.target_clusters = None;
        p.taints[0].value = "v2".into();
        let mut c = with_ready(cluster("m"), "False");
        c.spec.taints = vec![yaml("{key: fail, effect: NoExecute, value: v1}")];
        let t = policy_taints(&c, &[&p], now).unwrap();
        assert_eq!(t.len(), 1);
        assert_eq!(t[0].value.as_deref(), Some("v2"));
    }

    #[test]
    fn no_execute_tolerations() {
        let now = ts("2026-01-01T00:01:00Z");
        let taint: Taint =
            yaml("{key: fail, effect: NoExecute, timeAdded: \"2026-01-01T00:00:00Z\"}");
        let soft: Taint = yaml("{key: x, effect: NoSchedule}");
        assert_eq!(
            no_execute_decision(std::slice::from_ref(&soft), &[], now),
            TaintDecision::Stay
        );
        assert_eq!(
            no_execute_decision(&[soft, taint.clone()], &[], now),
            TaintDecision::EvictNow
        );
        let forever: Toleration = yaml("{key: fail, operator: Exists, effect: NoExecute}");
        assert_eq!(
            no_execute_decision(std::slice::from_ref(&taint), &[forever], now),
            TaintDecision::Stay
        );
        let for_90: Toleration =
            yaml("{key: fail, operator: Exists, effect: NoExecute, tolerationSeconds: 90}");
        assert_eq!(
            no_execute_decision(
                std::slice::from_ref(&taint),
                std::slice::from_ref(&for_90),
                now
            ),
            TaintDecision::EvictAfter(Duration::from_secs(30))
        );
        let later = ts("2026-01-01T00:02:00Z");
        assert_eq!(
            no_execute_decision(&[taint], &[for_90], later),
            TaintDecision::EvictNow
        );
    }

    fn spec() -> ResourceBindingSpec {
        ResourceBindingSpec {
            replicas: 6,
            clusters: vec![
                TargetCluster::new("m1", 2),
                TargetCluster::new("m2", 2),
                TargetCluster::new("m3", 2),
            ],
            ..Default::default()
        }
    }

    fn eviction<'a>(cluster: &'a str, mode: &'static str) -> Eviction<'a> {
        Eviction {
            cluster,
            purge_mode: mode,
            reason: REASON_TAINT_UNTOLERATED,
            message: "taint".into(),
            producer: PRODUCER_TAINT_MANAGER,
            now: ts("2026-01-01T00:00:00Z"),
            ..Default::default()
        }
    }

    #[test]
    fn evicting_records_a_task_once() {
        let mut s = spec();
        assert!(evict_cluster(
            &mut s,
            &eviction("m3", PURGE_MODE_GRACEFULLY)
        ));
        assert_eq!(s.clusters.len(), 2);
        let t = &s.graceful_eviction_tasks[0];
        assert_eq!(t.from_cluster, "m3");
        assert_eq!(t.replicas, Some(2));
        assert_eq!(t.clusters_before_failover, vec!["m1", "m2", "m3"]);
        assert_eq!(t.suppress_deletion, None);
        assert!(!evict_cluster(
            &mut s,
            &eviction("m3", PURGE_MODE_GRACEFULLY)
        ));
        assert_eq!(retained_clusters(&s), vec!["m3"]);
        assert!(evict_cluster(&mut s, &eviction("m2", PURGE_MODE_DIRECTLY)));
        assert_eq!(retained_clusters(&s), vec!["m3"], "Directly keeps nothing");
        assert!(evict_cluster(&mut s, &eviction("m1", PURGE_MODE_NEVER)));
        assert_eq!(s.graceful_eviction_tasks[2].suppress_deletion, Some(true));
        // a non-workload records no replicas
        let mut s = spec();
        s.replicas = 0;
        evict_cluster(&mut s, &eviction("m1", PURGE_MODE_GRACEFULLY));
        assert_eq!(s.graceful_eviction_tasks[0].replicas, None);
    }

    fn item(cluster: &str, health: &str, ready: i64) -> AggregatedStatusItem {
        AggregatedStatusItem {
            cluster_name: cluster.into(),
            status: Some(json!({"replicas": ready, "readyReplicas": ready})),
            applied: true,
            health: health.into(),
            ..Default::default()
        }
    }

    #[test]
    fn tasks_end_when_replacements_are_ready_or_time_runs_out() {
        let mut s = spec();
        evict_cluster(&mut s, &eviction("m3", PURGE_MODE_GRACEFULLY));
        s.clusters = vec![TargetCluster::new("m1", 3), TargetCluster::new("m2", 3)];
        let now = ts("2026-01-01T00:01:00Z");
        let timeout = Duration::from_secs(600);
        let status = |a: i64, b: i64| ResourceBindingStatus {
            aggregated_status: vec![item("m1", "Healthy", a), item("m2", "Healthy", b)],
            ..Default::default()
        };
        // still starting: 2 of 3 ready in m2; none ready (the field omitted)
        let mut none_ready = status(3, 3);
        none_ready.aggregated_status[1].status = Some(json!({"replicas": 3}));
        assert_eq!(
            assess_eviction_tasks(&s, Some(&none_ready), true, timeout, now)
                .kept
                .len(),
            1
        );
        let a = assess_eviction_tasks(&s, Some(&status(3, 2)), true, timeout, now);
        assert_eq!(a.kept.len(), 1);
        assert_eq!(a.recheck_after, Some(Duration::from_secs(540)));
        // all ready, but the scheduler has not seen the generation yet
        assert_eq!(
            assess_eviction_tasks(&s, Some(&status(3, 3)), false, timeout, now)
                .kept
                .len(),
            1
        );
        let a = assess_eviction_tasks(&s, Some(&status(3, 3)), true, timeout, now);
        assert_eq!(a.done, vec!["m3"]);
        assert!(a.kept.is_empty());
        // the timeout ends it regardless
        let late = ts("2026-01-01T00:10:00Z");
        assert_eq!(
            assess_eviction_tasks(&s, None, false, timeout, late).done,
            vec!["m3"]
        );
        // its own grace period first
        s.graceful_eviction_tasks[0].grace_period_seconds = Some(30);
        assert_eq!(
            assess_eviction_tasks(&s, None, false, timeout, now).done,
            vec!["m3"]
        );
        // suppressDeletion decides alone
        s.graceful_eviction_tasks[0].suppress_deletion = Some(true);
        assert_eq!(
            assess_eviction_tasks(&s, None, true, timeout, late)
                .kept
                .len(),
            1
        );
        s.graceful_eviction_tasks[0].suppress_deletion = Some(false);
        assert_eq!(
            assess_eviction_tasks(&s, None, false, timeout, now).done,
            vec!["m3"]
        );
    }

    #[test]
    fn unhealthy_clusters_and_preserved_state() {
        let s = spec();
        let st = ResourceBindingStatus {
            aggregated_status: vec![
                item("m1", "Healthy", 2),
                item("m2", "Unhealthy", 0),
                item("m3", "Unknown", 0),
            ],
            ..Default::default()
        };
        assert_eq!(application_unhealthy_clusters(&s, Some(&st)), vec!["m2"]);
        let rules: Vec<crate::policy::StatePreservationRule> = yaml(
            "[{aliasLabelName: app.io/replicas, jsonPath: \"{.replicas}\"}, {aliasLabelName: a/c, jsonPath: \"{.conditions[0].type}\"}, {aliasLabelName: gone, jsonPath: \"{.nope}\"}]",
        );
        let state = preserved_label_state(
            &rules,
            &json!({"replicas": 2, "conditions": [{"type": "Available"}]}),
        );
        assert_eq!(state.get("app.io/replicas").map(String::as_str), Some("2"));
        assert_eq!(state.get("a/c").map(String::as_str), Some("Available"));
        assert!(!state.contains_key("gone"));
    }

    #[test]
    fn unready_members_are_unknown_and_left_out_of_the_template() {
        let clusters = [
            with_ready(cluster("m1"), "True"),
            with_ready(cluster("m2"), "False"),
            with_ready(cluster("m3"), "Unknown"),
            cluster("new"),
        ];
        let unready = unready_clusters(&clusters);
        assert_eq!(unready, vec!["m2", "m3"]);
        let mut items = vec![item("m1", "Healthy", 2), item("m2", "Healthy", 2)];
        let for_template = degrade_unready(&mut items, &unready);
        assert_eq!(items[1].health, "Unknown");
        assert!(items[1].status.is_some(), "the last status is kept");
        assert_eq!(for_template.len(), 1);
        assert_eq!(for_template[0].cluster_name, "m1");
    }

    #[test]
    fn containment_waits_for_the_first_cluster() {
        let mut a = std::collections::BTreeMap::new();
        assert!(!containment_requested(Some(&a)));
        a.insert(CONTAINMENT_ANNOTATION.to_string(), "true".to_string());
        assert!(containment_requested(Some(&a)));
        let at = |health: &str, tg: i64| AggregatedStatusItem {
            cluster_name: "m1".into(),
            status: Some(json!({"resourceTemplateGeneration": tg})),
            applied: true,
            health: health.into(),
            ..Default::default()
        };
        assert!(first_cluster_proven(Some(&at("Healthy", 7)), 7));
        assert!(
            !first_cluster_proven(Some(&at("Healthy", 6)), 7),
            "an older rendering"
        );
        assert!(!first_cluster_proven(Some(&at("Unhealthy", 7)), 7));
        assert!(!first_cluster_proven(None, 7));
        assert!(
            !containment_holds("m1", "m1", false, true),
            "the first is written"
        );
        assert!(containment_holds("m2", "m1", false, true));
        assert!(!containment_holds("m2", "m1", true, true));
        assert!(
            !containment_holds("m2", "m1", false, false),
            "new Works are written"
        );
    }
}
