//! One scheduling pass for a (Cluster)ResourceBinding, as Karmada's
//! scheduler runs it (`pkg/scheduler/scheduler.go`
//! `scheduleResourceBindingWithClusterAffinities`, `core/generic_scheduler.go`):
//! filter plugins → ClusterLocality score → available replicas → spread
//! selection → replica assignment, trying `clusterAffinities` terms in order.
//!
//! Pure: the caller supplies the clusters (and optionally estimator answers)
//! and writes the result back (`spec.clusters`, the
//! `policy.karmada.io/applied-placement` annotation, the `Scheduled`
//! condition, `schedulerObservingAffinityName`). Start at [`schedule`].

use std::collections::BTreeMap;

use crate::cluster::Cluster;
use crate::division::{self, Candidate, DivisionInput};
use crate::estimator;
use crate::placement::{self, FilterInput, ScoredCluster};
use crate::policy::Placement;
use crate::work::{ResourceBindingSpec, ResourceBindingStatus, TargetCluster};

/// Condition reason `Success`.
pub const REASON_SUCCESS: &str = "Success";
/// Condition reason `NoClusterFit`.
pub const REASON_NO_CLUSTER_FIT: &str = "NoClusterFit";
/// Condition reason `Unschedulable`.
pub const REASON_UNSCHEDULABLE: &str = "Unschedulable";
/// Condition reason `SchedulerError`.
pub const REASON_SCHEDULER_ERROR: &str = "SchedulerError";
/// Message of a successful `Scheduled` condition.
pub const SUCCESS_MESSAGE: &str = "Binding has been scheduled successfully.";

/// A failed scheduling pass, with the `Scheduled=False` reason it maps to.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScheduleError {
    /// No cluster passed the filters (`NoClusterFit`); the caller clears
    /// `spec.clusters`, as Karmada does.
    #[error("{0}")]
    NoClusterFit(String),
    /// Not enough available replicas (`Unschedulable`).
    #[error("{0}")]
    Unschedulable(String),
    /// Anything else (`SchedulerError`).
    #[error("{0}")]
    SchedulerError(String),
}

impl ScheduleError {
    /// The `Scheduled` condition reason.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::NoClusterFit(_) => REASON_NO_CLUSTER_FIT,
            Self::Unschedulable(_) => REASON_UNSCHEDULABLE,
            Self::SchedulerError(_) => REASON_SCHEDULER_ERROR,
        }
    }
}

/// A successful scheduling pass.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScheduleResult {
    /// The new `spec.clusters`.
    pub clusters: Vec<TargetCluster>,
    /// The affinity term that succeeded (`status.schedulerObservingAffinityName`);
    /// empty without `clusterAffinities`.
    pub affinity_name: String,
}

/// What one pass needs.
#[derive(Debug, Clone, Copy)]
pub struct ScheduleInput<'a> {
    /// The binding spec (placement, replicas, previous `clusters`, ...).
    pub spec: &'a ResourceBindingSpec,
    /// The binding status (observed affinity term).
    pub status: Option<&'a ResourceBindingStatus>,
    /// Every Cluster object.
    pub clusters: &'a [Cluster],
    /// Estimated available replicas per cluster name; `None` uses the
    /// general estimator ([`estimator::available_replicas`]).
    pub estimates: Option<&'a BTreeMap<String, i32>>,
    /// Fresh mode: `spec.rescheduleTriggeredAt` is later than `status.lastScheduledTime`.
    pub fresh: bool,
}

/// Whether `rescheduleTriggeredAt` asks for a fresh reschedule (Karmada
/// `RescheduleRequired`): set, and later than `lastScheduledTime` (or never scheduled).
pub fn reschedule_required(
    spec: &ResourceBindingSpec,
    status: Option<&ResourceBindingStatus>,
) -> bool {
    let Some(trigger) = &spec.reschedule_triggered_at else {
        return false;
    };
    match status.and_then(|s| s.last_scheduled_time.as_ref()) {
        None => true,
        Some(last) => trigger.0 > last.0,
    }
}

fn is_workload(spec: &ResourceBindingSpec) -> bool {
    spec.replicas > 0 || spec.replica_requirements.is_some()
}

/// Runs one scheduling pass (see the module docs). With `clusterAffinities`
/// the terms are tried from the observed one (the first in fresh mode); the
/// first error is returned when every term fails.
pub fn schedule(input: &ScheduleInput<'_>) -> Result<ScheduleResult, ScheduleError> {
    let default_placement = Placement::default();
    let placement = input.spec.placement.as_ref().unwrap_or(&default_placement);
    if placement.cluster_affinities.is_empty() {
        return schedule_term(input, placement, "").map(|clusters| ScheduleResult {
            clusters,
            affinity_name: String::new(),
        });
    }
    let observed = if input.fresh {
        ""
    } else {
        input
            .status
            .map(|s| s.scheduler_observed_affinity_name.as_str())
            .unwrap_or_default()
    };
    let mut first_err = None;
    for term in placement::affinity_terms_from(placement, observed) {
        match schedule_term(input, placement, term) {
            Ok(clusters) => {
                return Ok(ScheduleResult {
                    clusters,
                    affinity_name: term.to_string(),
                });
            }
            Err(e) => {
                first_err.get_or_insert(e);
            }
        }
    }
    Err(first_err
        .unwrap_or_else(|| ScheduleError::SchedulerError("no affinity term to schedule".into())))
}

fn schedule_term(
    input: &ScheduleInput<'_>,
    placement: &Placement,
    term: &str,
) -> Result<Vec<TargetCluster>, ScheduleError> {
    let spec = input.spec;
    let scheduled: Vec<String> = spec.clusters.iter().map(|c| c.name.clone()).collect();
    let evicting: Vec<String> = spec
        .graceful_eviction_tasks
        .iter()
        .map(|t| t.from_cluster.clone())
        .collect();
    let filter = FilterInput {
        placement,
        api_version: &spec.resource.api_version,
        kind: &spec.resource.kind,
        observed_affinity: term,
        is_workload: is_workload(spec),
        scheduled: &scheduled,
        evicting: &evicting,
    };
    let (feasible, failures) = placement::filter_clusters(&filter, input.clusters);
    if feasible.is_empty() {
        return Err(ScheduleError::NoClusterFit(placement::fit_error_message(
            input.clusters.len(),
            &failures,
        )));
    }
    let estimates: BTreeMap<String, i32> = match input.estimates {
        Some(e) => e.clone(),
        None => estimator::available_replicas(&feasible, spec)
            .into_iter()
            .collect(),
    };
    let assigned = |name: &str| {
        spec.clusters
            .iter()
            .find(|t| t.name == name)
            .map_or(0, |t| t.replicas)
    };
    let scored: Vec<ScoredCluster<'_>> = feasible
        .iter()
        .map(|c| {
            let estimate = estimates.get(c.name()).copied().unwrap_or(0);
            ScoredCluster {
                cluster: c,
                score: if scheduled.iter().any(|s| s == c.name()) {
                    100
                } else {
                    0
                },
                overflow_order: placement::overflow_order(c, placement, term),
                available_replicas: i64::from(estimate) + i64::from(assigned(c.name())),
            }
        })
        .collect();
    let selected = placement::select_best_clusters(placement, scored, spec.replicas)
        .map_err(|e| ScheduleError::SchedulerError(format!("failed to select clusters: {e}")))?;
    if selected.is_empty() {
        return Err(ScheduleError::SchedulerError(
            "failed to assign replicas: no clusters available to schedule".into(),
        ));
    }
    if !(is_workload(spec) && spec.components.len() <= 1) {
        return Ok(selected
            .iter()
            .map(|c| TargetCluster::new(c.cluster.name(), 0))
            .collect());
    }
    let candidates: Vec<Candidate<'_>> = selected
        .iter()
        .map(|c| Candidate {
            cluster: c.cluster,
            available_replicas: estimates.get(c.cluster.name()).copied().unwrap_or(0),
            overflow_order: c.overflow_order,
        })
        .collect();
    let division_input = DivisionInput {
        placement: Some(placement),
        replicas: spec.replicas,
        has_replica_requirements: spec.replica_requirements.is_some(),
        resource_uid: &spec.resource.uid,
        previous: &spec.clusters,
        fresh: input.fresh,
        observed_affinity: term,
    };
    division::assign_replicas(&candidates, &division_input).map_err(|e| match e {
        division::Error::Unschedulable { .. } | division::Error::OverflowUnschedulable => {
            ScheduleError::Unschedulable(format!("failed to assign replicas: {e}"))
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::{cluster_with_labels, yaml};

    fn member(name: &str, labels: &[(&str, &str)], pods: u32) -> Cluster {
        let mut c = cluster_with_labels(name, labels);
        c.status = Some(yaml(&format!(
            "{{apiEnablements: [{{groupVersion: apps/v1, resources: [{{name: deployments, kind: Deployment}}]}}, {{groupVersion: v1, resources: [{{name: configmaps, kind: ConfigMap}}]}}], conditions: [{{type: CompleteAPIEnablements, status: 'True', reason: Complete, message: '', lastTransitionTime: '2026-01-01T00:00:00Z'}}], resourceSummary: {{allocatable: {{pods: '{pods}'}}}}}}"
        )));
        c
    }

    fn spec(s: &str) -> ResourceBindingSpec {
        yaml(s)
    }

    fn run(
        spec: &ResourceBindingSpec,
        clusters: &[Cluster],
    ) -> Result<ScheduleResult, ScheduleError> {
        schedule(&ScheduleInput {
            spec,
            status: None,
            clusters,
            estimates: None,
            fresh: false,
        })
    }

    fn pairs(r: &ScheduleResult) -> Vec<(&str, i32)> {
        r.clusters
            .iter()
            .map(|c| (c.name.as_str(), c.replicas))
            .collect()
    }

    #[test]
    fn nginx_sample_divides_one_each() {
        let clusters = vec![
            member("member1", &[], 110),
            member("member2", &[], 110),
            member("member3", &[], 110),
        ];
        let s = spec(
            "resource: {apiVersion: apps/v1, kind: Deployment, namespace: default, name: nginx, uid: 7a2c}\nreplicas: 2\nplacement:\n  clusterAffinity: {clusterNames: [member1, member2]}\n  replicaScheduling: {replicaSchedulingType: Divided, replicaDivisionPreference: Weighted, weightPreference: {staticWeightList: [{targetCluster: {clusterNames: [member1]}, weight: 1}, {targetCluster: {clusterNames: [member2]}, weight: 1}]}}",
        );
        let r = run(&s, &clusters).unwrap();
        assert_eq!(pairs(&r), vec![("member1", 1), ("member2", 1)]);
        assert_eq!(r.affinity_name, "");
    }

    #[test]
    fn duplicated_without_replica_scheduling() {
        let clusters = vec![member("member1", &[], 110), member("member2", &[], 110)];
        let s = spec(
            "resource: {apiVersion: apps/v1, kind: Deployment, name: web}\nreplicas: 3\nplacement: {}",
        );
        assert_eq!(
            pairs(&run(&s, &clusters).unwrap()),
            vec![("member1", 3), ("member2", 3)]
        );
    }

    #[test]
    fn non_workloads_go_everywhere_selected() {
        let clusters = vec![member("member1", &[], 110), member("member2", &[], 110)];
        let s = spec(
            "resource: {apiVersion: v1, kind: ConfigMap, name: c}\nplacement: {replicaScheduling: {replicaSchedulingType: Divided, replicaDivisionPreference: Weighted}}",
        );
        assert_eq!(
            pairs(&run(&s, &clusters).unwrap()),
            vec![("member1", 0), ("member2", 0)]
        );
    }

    #[test]
    fn no_cluster_fit_message() {
        let clusters = vec![member("member1", &[], 110), member("member2", &[], 110)];
        let s = spec(
            "resource: {apiVersion: batch/v1, kind: Job, name: j}\nreplicas: 1\nplacement: {clusterAffinity: {clusterNames: [member1]}}",
        );
        let err = run(&s, &clusters).unwrap_err();
        assert_eq!(err.reason(), "NoClusterFit");
        assert_eq!(
            err.to_string(),
            "0/2 clusters are available: 2 cluster(s) did not have the API resource."
        );
    }

    #[test]
    fn affinity_terms_fall_through_in_order() {
        let clusters = vec![
            member("member1", &[("env", "prod")], 110),
            member("member2", &[("env", "backup")], 110),
        ];
        let s = spec(
            "resource: {apiVersion: apps/v1, kind: Deployment, name: web}\nreplicas: 2\nplacement: {clusterAffinities: [{affinityName: primary, labelSelector: {matchLabels: {env: missing}}}, {affinityName: backup, labelSelector: {matchLabels: {env: backup}}}]}",
        );
        let r = run(&s, &clusters).unwrap();
        assert_eq!(r.affinity_name, "backup");
        assert_eq!(pairs(&r), vec![("member2", 2)]);
        let s2 = spec(
            "resource: {apiVersion: apps/v1, kind: Deployment, name: web}\nreplicas: 2\nplacement: {clusterAffinities: [{affinityName: a, clusterNames: [nope]}, {affinityName: b, clusterNames: [nope2]}]}",
        );
        let err = run(&s2, &clusters).unwrap_err();
        assert_eq!(
            err.to_string(),
            "0/2 clusters are available: 2 cluster(s) did not match the placement cluster affinity constraint."
        );
    }

    #[test]
    fn dynamic_weights_use_the_estimator() {
        let clusters = vec![
            member("member1", &[], 6),
            member("member2", &[], 8),
            member("member3", &[], 10),
        ];
        let s = spec(
            "resource: {apiVersion: apps/v1, kind: Deployment, name: web}\nreplicas: 12\nplacement: {replicaScheduling: {replicaSchedulingType: Divided, replicaDivisionPreference: Weighted, weightPreference: {dynamicWeight: AvailableReplicas}}}",
        );
        assert_eq!(
            pairs(&run(&s, &clusters).unwrap()),
            vec![("member1", 3), ("member2", 4), ("member3", 5)]
        );
        let s = spec(
            "resource: {apiVersion: apps/v1, kind: Deployment, name: web}\nreplicas: 30\nplacement: {replicaScheduling: {replicaSchedulingType: Divided, replicaDivisionPreference: Aggregated}}",
        );
        let err = run(&s, &clusters).unwrap_err();
        assert_eq!(err.reason(), "Unschedulable");
        assert_eq!(
            err.to_string(),
            "failed to assign replicas: Clusters available replicas 24 are not enough to schedule."
        );
    }

    #[test]
    fn spread_by_cluster_limits_groups() {
        let clusters = vec![
            member("member1", &[], 10),
            member("member2", &[], 10),
            member("member3", &[], 10),
        ];
        let s = spec(
            "resource: {apiVersion: apps/v1, kind: Deployment, name: web}\nreplicas: 3\nplacement: {spreadConstraints: [{spreadByField: cluster, minGroups: 1, maxGroups: 2}]}",
        );
        assert_eq!(
            pairs(&run(&s, &clusters).unwrap()),
            vec![("member1", 3), ("member2", 3)]
        );
        // Already-scheduled clusters score higher (ClusterLocality) and stay.
        let s = spec(
            "resource: {apiVersion: apps/v1, kind: Deployment, name: web}\nreplicas: 3\nclusters: [{name: member3, replicas: 3}]\nplacement: {spreadConstraints: [{spreadByField: cluster, minGroups: 1, maxGroups: 1}]}",
        );
        assert_eq!(pairs(&run(&s, &clusters).unwrap()), vec![("member3", 3)]);
    }

    #[test]
    fn reschedule_trigger() {
        let s = spec(
            "resource: {apiVersion: v1, kind: ConfigMap, name: c}\nrescheduleTriggeredAt: '2026-01-02T00:00:00Z'",
        );
        assert!(reschedule_required(&s, None));
        let st: ResourceBindingStatus = yaml("lastScheduledTime: '2026-01-03T00:00:00Z'");
        assert!(!reschedule_required(&s, Some(&st)));
        let st: ResourceBindingStatus = yaml("lastScheduledTime: '2026-01-01T00:00:00Z'");
        assert!(reschedule_required(&s, Some(&st)));
        assert!(!reschedule_required(
            &spec("resource: {apiVersion: v1, kind: ConfigMap, name: c}"),
            Some(&st)
        ));
    }
}

#[cfg(test)]
mod props {
    use proptest::prelude::*;

    use super::*;
    use crate::testutil::{cluster_with_labels, yaml};

    fn member(i: usize, pods: u32, tainted: bool) -> Cluster {
        let mut c = cluster_with_labels(
            &format!("m{i}"),
            &[("env", if i.is_multiple_of(2) { "prod" } else { "dev" })],
        );
        c.status = Some(yaml(&format!(
            "{{apiEnablements: [{{groupVersion: apps/v1, resources: [{{name: deployments, kind: Deployment}}]}}], conditions: [{{type: CompleteAPIEnablements, status: 'True', reason: Complete, message: '', lastTransitionTime: '2026-01-01T00:00:00Z'}}], resourceSummary: {{allocatable: {{pods: '{pods}'}}}}}}"
        )));
        if tainted {
            c.spec.taints = vec![yaml(
                "{key: cluster.karmada.io/not-ready, effect: NoSchedule}",
            )];
        }
        c
    }

    proptest! {
        /// A successful pass places exactly the requested replicas on clusters
        /// that pass the filters (untainted, matching the affinity), and is deterministic.
        #[test]
        fn schedule_respects_filters_and_sums(
            pods in prop::collection::vec(0u32..30, 1..6),
            tainted in prop::collection::vec(any::<bool>(), 6),
            replicas in 1i32..40,
            strategy in 0usize..4,
        ) {
            let clusters: Vec<Cluster> = pods.iter().enumerate().map(|(i, p)| member(i, *p, tainted[i])).collect();
            let scheduling = [
                "{replicaSchedulingType: Duplicated}",
                "{replicaSchedulingType: Divided, replicaDivisionPreference: Weighted}",
                "{replicaSchedulingType: Divided, replicaDivisionPreference: Weighted, weightPreference: {dynamicWeight: AvailableReplicas}}",
                "{replicaSchedulingType: Divided, replicaDivisionPreference: Aggregated}",
            ][strategy];
            let spec: ResourceBindingSpec = yaml(&format!(
                "resource: {{apiVersion: apps/v1, kind: Deployment, name: web, uid: u1}}\nreplicas: {replicas}\nplacement: {{clusterAffinity: {{labelSelector: {{matchLabels: {{env: prod}}}}}}, replicaScheduling: {scheduling}}}"
            ));
            let input = ScheduleInput { spec: &spec, status: None, clusters: &clusters, estimates: None, fresh: false };
            let first = schedule(&input);
            prop_assert_eq!(&first, &schedule(&input));
            if let Ok(result) = first {
                for t in &result.clusters {
                    let i: usize = t.name[1..].parse().unwrap();
                    prop_assert!(i.is_multiple_of(2) && !tainted[i], "{} should have been filtered out", t.name);
                }
                let total: i32 = result.clusters.iter().map(|t| t.replicas).sum();
                if strategy == 0 {
                    prop_assert!(result.clusters.iter().all(|t| t.replicas == replicas));
                } else {
                    prop_assert_eq!(total, replicas);
                }
            }
        }
    }
}
