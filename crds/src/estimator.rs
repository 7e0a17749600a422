//! The general replica estimator: how many more replicas of a workload fit
//! in a member cluster, from the cluster's `status.resourceSummary`. Mirrors
//! Karmada's `pkg/estimator/client/general.go` (summary-based path) and the
//! scheduler's `calAvailableReplicas` wrapper (`pkg/scheduler/core/util.go`).

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::api::resource::Quantity;

use crate::cluster::{Cluster, ResourceSummary};
use crate::quantity;
use crate::work::{ReplicaRequirements, ResourceBindingSpec};

fn amount(list: &BTreeMap<String, Quantity>, key: &str) -> Option<quantity::Exact> {
    list.get(key).and_then(quantity::of)
}

/// Pods that still fit: allocatable − allocated − allocating pods, never
/// below 0 (Karmada `getAllowedPodNumber`).
pub fn allowed_pods(summary: &ResourceSummary) -> i64 {
    let pods = |l: &BTreeMap<String, Quantity>| amount(l, "pods").map_or(0, |e| e.value());
    let n = pods(&summary.allocatable) - pods(&summary.allocated) - pods(&summary.allocating);
    i64::try_from(n.max(0)).unwrap_or(i64::MAX)
}

/// Replicas that fit by requested resources (Karmada
/// `getMaximumReplicasBasedOnClusterSummary`): for every requested resource,
/// free = allocatable − allocated − allocating (cpu in millicores); a
/// resource the cluster does not list, or with nothing free, gives 0.
pub fn replicas_by_summary(summary: &ResourceSummary, req: &ReplicaRequirements) -> i64 {
    let mut max = i64::MAX;
    for (name, request) in &req.resource_request {
        let Some(request) = quantity::of(request) else {
            continue;
        };
        if request.value() <= 0 {
            continue;
        }
        let Some(alloc) = amount(&summary.allocatable, name) else {
            return 0;
        };
        let sub = |l: &BTreeMap<String, Quantity>| {
            amount(l, name).unwrap_or(quantity::Exact { num: 0, den: 1 })
        };
        let (used, pending) = (sub(&summary.allocated), sub(&summary.allocating));
        let den = alloc.den * used.den * pending.den;
        let free = quantity::Exact {
            num: alloc.num * used.den * pending.den
                - used.num * alloc.den * pending.den
                - pending.num * alloc.den * used.den,
            den,
        };
        if free.value() <= 0 {
            return 0;
        }
        let (want, have) = if name == "cpu" {
            (request.milli_value(), free.milli_value())
        } else {
            (request.value(), free.value())
        };
        let n = i64::try_from(have / want).unwrap_or(i64::MAX);
        max = max.min(n);
    }
    max
}

/// The general estimator's answer for one cluster (Karmada
/// `GeneralEstimator.maxAvailableReplicas`, without resource models or
/// overcommit protection): 0 without a resource summary; else the allowed
/// pods, bounded by the requested resources when there are requirements.
pub fn max_available_replicas(
    cluster: &Cluster,
    requirements: Option<&ReplicaRequirements>,
) -> i32 {
    let Some(summary) = cluster
        .status
        .as_ref()
        .and_then(|s| s.resource_summary.as_ref())
    else {
        return 0;
    };
    let mut max = allowed_pods(summary);
    if max <= 0 {
        return 0;
    }
    if let Some(req) = requirements {
        max = max.min(replicas_by_summary(summary, req));
    }
    i32::try_from(max).unwrap_or(i32::MAX)
}

/// Available replicas per cluster as the scheduler computes them (Karmada
/// `calAvailableReplicas` with only the general estimator): non-workloads
/// (no replicas, no components) get `i32::MAX`; otherwise the estimate, with
/// an unbounded answer replaced by `spec.replicas`.
pub fn available_replicas(clusters: &[&Cluster], spec: &ResourceBindingSpec) -> Vec<(String, i32)> {
    clusters
        .iter()
        .map(|c| {
            let name = c.name().to_string();
            if spec.replicas == 0 && spec.components.is_empty() {
                return (name, i32::MAX);
            }
            let n = max_available_replicas(c, spec.replica_requirements.as_ref());
            (name, if n == i32::MAX { spec.replicas } else { n })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::{cluster, yaml};

    fn with_summary(summary: &str) -> Cluster {
        let mut c = cluster("m1");
        c.status = Some(yaml(&format!("{{resourceSummary: {summary}}}")));
        c
    }

    fn req(s: &str) -> ReplicaRequirements {
        yaml(&format!("{{resourceRequest: {s}}}"))
    }

    #[test]
    fn no_summary_means_zero() {
        assert_eq!(max_available_replicas(&cluster("m1"), None), 0);
    }

    #[test]
    fn pods_bound() {
        let c = with_summary(
            "{allocatable: {pods: '110'}, allocated: {pods: '100'}, allocating: {pods: '4'}}",
        );
        assert_eq!(max_available_replicas(&c, None), 6);
        let full = with_summary("{allocatable: {pods: '10'}, allocated: {pods: '12'}}");
        assert_eq!(max_available_replicas(&full, None), 0);
    }

    #[test]
    fn resource_bound() {
        let c = with_summary(
            "{allocatable: {pods: '110', cpu: '4', memory: 8Gi}, allocated: {cpu: 1500m, memory: 2Gi}}",
        );
        // cpu: 2500m free / 500m = 5; memory: 6Gi / 1Gi = 6.
        assert_eq!(
            max_available_replicas(&c, Some(&req("{cpu: 500m, memory: 1Gi}"))),
            5
        );
        assert_eq!(max_available_replicas(&c, Some(&req("{memory: 4Gi}"))), 1);
        // A resource the cluster does not have.
        assert_eq!(
            max_available_replicas(&c, Some(&req("{nvidia.com/gpu: '1'}"))),
            0
        );
        // Zero requests are ignored.
        assert_eq!(max_available_replicas(&c, Some(&req("{cpu: '0'}"))), 110);
    }

    #[test]
    fn scheduler_wrapper() {
        let c = with_summary("{allocatable: {pods: '3'}}");
        let spec: ResourceBindingSpec =
            yaml("{resource: {apiVersion: v1, kind: ConfigMap, name: c}}");
        assert_eq!(
            available_replicas(&[&c], &spec),
            vec![("m1".to_string(), i32::MAX)]
        );
        let spec: ResourceBindingSpec =
            yaml("{resource: {apiVersion: apps/v1, kind: Deployment, name: d}, replicas: 5}");
        assert_eq!(
            available_replicas(&[&c], &spec),
            vec![("m1".to_string(), 3)]
        );
    }
}
