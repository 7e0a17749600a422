//! Replica division: how a binding's `spec.replicas` is spread over the
//! selected clusters. Mirrors Karmada's `pkg/scheduler/core/assignment.go`,
//! `division_algorithm.go` and the Webster (Sainte-Laguë) dispenser of
//! `pkg/util/helper/webstermethod.go` / `binding.go`.
//!
//! Start at [`assign_replicas`]; [`allocate_webster_seats`] is the apportionment
//! primitive shared by every Divided strategy.

use std::cmp::Ordering;
use std::collections::BTreeMap;

use crate::cluster::Cluster;
use crate::placement::cluster_matches;
use crate::policy::{Placement, ReplicaStrategy};
use crate::work::TargetCluster;

/// Errors of replica division.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// Dynamic/aggregated division cannot fit the replicas (Karmada `UnschedulableError`).
    #[error("Clusters available replicas {available} are not enough to schedule.")]
    Unschedulable {
        /// Sum of available replicas.
        available: i64,
    },
    /// The primary and overflow tiers together cannot hold the replicas.
    #[error("Clusters available replicas are not enough to schedule.")]
    OverflowUnschedulable,
}

/// Result of this module.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// A party of the Webster apportionment: a cluster, its votes (weight) and seats (replicas).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Party {
    /// Cluster name.
    pub name: String,
    /// Weight.
    pub votes: i64,
    /// Replicas.
    pub seats: i32,
}

/// How equal Webster priorities are broken after "fewer seats first"
/// (Karmada `tieBreakerByUID`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TieBreak {
    /// Name ascending: UID empty or its FNV-1a-32 hash is even.
    NameAscending,
    /// Name descending: the hash is odd.
    NameDescending,
}

/// FNV-1a 32-bit hash (Go `hash/fnv` `New32a`).
pub fn fnv1a32(bytes: &[u8]) -> u32 {
    let mut h: u32 = 0x811c_9dc5;
    for b in bytes {
        h ^= u32::from(*b);
        h = h.wrapping_mul(0x0100_0193);
    }
    h
}

/// The tie-break Karmada derives from the resource template UID.
pub fn tie_break_by_uid(uid: &str) -> TieBreak {
    if uid.is_empty() || fnv1a32(uid.as_bytes()) & 1 == 0 {
        TieBreak::NameAscending
    } else {
        TieBreak::NameDescending
    }
}

/// Whether party `a` gets the next seat before `b`: higher `votes/(2*seats+1)`
/// (compared exactly), then fewer seats, then name per `tie`.
fn before(a: &Party, b: &Party, tie: TieBreak) -> bool {
    let lhs = i128::from(a.votes) * (2 * i128::from(b.seats) + 1);
    let rhs = i128::from(b.votes) * (2 * i128::from(a.seats) + 1);
    match lhs.cmp(&rhs) {
        Ordering::Greater => true,
        Ordering::Less => false,
        Ordering::Equal => {
            if a.seats != b.seats {
                return a.seats < b.seats;
            }
            match tie {
                TieBreak::NameAscending => a.name < b.name,
                TieBreak::NameDescending => a.name > b.name,
            }
        }
    }
}

/// Webster/Sainte-Laguë apportionment of `new_seats` on top of `initial`
/// seats (Karmada `AllocateWebsterSeats`). Parties are the union of `votes`
/// and `initial` (a party only in `initial` has 0 votes). The result is sorted
/// by name; empty when there are no parties.
pub fn allocate_webster_seats(
    new_seats: i32,
    votes: &[(String, i64)],
    initial: &[(String, i32)],
    tie: TieBreak,
) -> Vec<Party> {
    let mut parties: BTreeMap<String, Party> = BTreeMap::new();
    for (name, seats) in initial {
        parties.insert(
            name.clone(),
            Party {
                name: name.clone(),
                votes: 0,
                seats: *seats,
            },
        );
    }
    for (name, v) in votes {
        parties
            .entry(name.clone())
            .and_modify(|p| p.votes = *v)
            .or_insert_with(|| Party {
                name: name.clone(),
                votes: *v,
                seats: 0,
            });
    }
    let mut parties: Vec<Party> = parties.into_values().collect();
    if parties.is_empty() {
        return parties;
    }
    for _ in 0..new_seats.max(0) {
        let mut best = 0;
        for i in 1..parties.len() {
            if before(&parties[i], &parties[best], tie) {
                best = i;
            }
        }
        parties[best].seats += 1;
    }
    parties
}

/// Divides `replicas` by `weights` from scratch and returns the target list in
/// name order, zero-seat parties included (Karmada `Dispenser.AllocateByWeight`
/// with no initial result). Empty if the weights sum to 0.
pub fn divide_by_weights(
    replicas: i32,
    weights: &[(String, i64)],
    uid: &str,
) -> Vec<TargetCluster> {
    if weights.iter().map(|(_, w)| *w).sum::<i64>() == 0 {
        return Vec::new();
    }
    allocate_webster_seats(replicas, weights, &[], tie_break_by_uid(uid))
        .into_iter()
        .map(|p| TargetCluster::new(p.name, p.seats))
        .collect()
}

/// A cluster that passed filtering, in the scheduler's candidate order, with
/// its estimated available replicas (Karmada `ClusterDetailInfo`).
#[derive(Debug, Clone)]
pub struct Candidate<'a> {
    /// The cluster.
    pub cluster: &'a Cluster,
    /// Replicas the estimators say still fit (not counting already-assigned ones).
    pub available_replicas: i32,
    /// Overflow tier (0 = the primary affinity group); see
    /// [`crate::placement::overflow_order`].
    pub overflow_order: i32,
}

impl<'a> Candidate<'a> {
    /// A primary-tier candidate.
    pub fn new(cluster: &'a Cluster, available_replicas: i32) -> Self {
        Candidate {
            cluster,
            available_replicas,
            overflow_order: 0,
        }
    }
}

/// What division needs from the binding.
#[derive(Debug, Clone, Default)]
pub struct DivisionInput<'a> {
    /// The placement being scheduled.
    pub placement: Option<&'a Placement>,
    /// `spec.replicas`.
    pub replicas: i32,
    /// Whether `spec.replicaRequirements` is set (a workload even with 0 replicas).
    pub has_replica_requirements: bool,
    /// `spec.resource.uid` (drives the Webster tie-break).
    pub resource_uid: &'a str,
    /// The previous result, `spec.clusters`.
    pub previous: &'a [TargetCluster],
    /// Fresh mode (`rescheduleTriggeredAt` later than `lastScheduledTime`).
    pub fresh: bool,
    /// The affinity term in use (`status.schedulerObservingAffinityName`);
    /// enables overflow tiers when that term has overflow affinities.
    pub observed_affinity: &'a str,
}

/// Assigns replicas to the candidates as Karmada's scheduler does
/// (`AssignReplicas` / `assignWorkloadReplicas`): non-workloads (0 replicas,
/// no requirements) get every candidate with no replicas; otherwise the
/// placement's strategy (Duplicated, StaticWeight, DynamicWeight, Aggregated)
/// decides, and clusters left with 0 replicas are dropped. When the affinity
/// term in use has overflow affinities, tiers are filled in order, each with
/// at most its available replicas. The result is sorted by name.
pub fn assign_replicas(
    candidates: &[Candidate<'_>],
    input: &DivisionInput<'_>,
) -> Result<Vec<TargetCluster>> {
    if input.replicas <= 0 && !input.has_replica_requirements {
        return Ok(candidates
            .iter()
            .map(|c| TargetCluster::new(c.cluster.name(), 0))
            .collect());
    }
    let default_placement = Placement::default();
    let placement = input.placement.unwrap_or(&default_placement);
    let mut result = if overflow_enabled(placement, input.observed_affinity) {
        let max_tier = candidates
            .iter()
            .map(|c| c.overflow_order)
            .max()
            .unwrap_or(0);
        let mut remaining = i64::from(input.replicas);
        let mut all = Vec::new();
        for tier in 0..=max_tier {
            let members: Vec<Candidate<'_>> = candidates
                .iter()
                .filter(|c| c.overflow_order == tier)
                .cloned()
                .collect();
            if members.is_empty() {
                continue;
            }
            let tier_available: i64 = members
                .iter()
                .map(|c| {
                    let assigned = input
                        .previous
                        .iter()
                        .find(|t| t.name == c.cluster.name())
                        .map_or(0, |t| t.replicas);
                    i64::from(c.available_replicas) + i64::from(assigned)
                })
                .sum();
            let take = remaining.min(tier_available);
            let tier_input = DivisionInput {
                replicas: i32::try_from(take).unwrap_or(i32::MAX),
                ..input.clone()
            };
            let mut part = assign_strategy(&members, placement, &tier_input)?;
            part.retain(|t| t.replicas > 0);
            all.extend(part);
            remaining -= take;
            if remaining <= 0 {
                break;
            }
        }
        if remaining > 0 {
            return Err(Error::OverflowUnschedulable);
        }
        all
    } else {
        assign_strategy(candidates, placement, input)?
    };
    result.retain(|t| t.replicas > 0);
    result.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(result)
}

/// Whether overflow tiers apply (Karmada `enableOverflow`): no
/// `clusterAffinity`, and the term named `observed` has overflow affinities.
pub fn overflow_enabled(placement: &Placement, observed: &str) -> bool {
    placement.cluster_affinity.is_none()
        && !observed.is_empty()
        && placement
            .cluster_affinities
            .iter()
            .any(|t| t.affinity_name == observed && !t.overflow_affinities.is_empty())
}

fn assign_strategy(
    candidates: &[Candidate<'_>],
    placement: &Placement,
    input: &DivisionInput<'_>,
) -> Result<Vec<TargetCluster>> {
    Ok(match placement.replica_strategy() {
        ReplicaStrategy::Duplicated => candidates
            .iter()
            .map(|c| TargetCluster::new(c.cluster.name(), input.replicas))
            .collect(),
        ReplicaStrategy::StaticWeight => static_weight(candidates, placement, input),
        ReplicaStrategy::DynamicWeight => dynamic(candidates, input, false)?,
        ReplicaStrategy::Aggregated => dynamic(candidates, input, true)?,
    })
}

/// Static weights of the candidates: the largest matching `staticWeightList`
/// weight; clusters without weight dropped; all 1 if the total is 0
/// (Karmada `getStaticWeightInfoList`).
pub fn static_weights(candidates: &[Candidate<'_>], placement: &Placement) -> Vec<(String, i64)> {
    let list = placement
        .replica_scheduling
        .as_ref()
        .and_then(|r| r.weight_preference.as_ref())
        .map(|w| w.static_weight_list.as_slice())
        .unwrap_or_default();
    let mut weights: Vec<(String, i64)> = candidates
        .iter()
        .filter_map(|c| {
            let w = list
                .iter()
                .filter(|s| cluster_matches(c.cluster, &s.target_cluster))
                .map(|s| s.weight)
                .max()
                .unwrap_or(0);
            (w > 0).then(|| (c.cluster.name().to_string(), w))
        })
        .collect();
    if weights.iter().map(|(_, w)| *w).sum::<i64>() == 0 {
        weights = candidates
            .iter()
            .map(|c| (c.cluster.name().to_string(), 1))
            .collect();
    }
    weights
}

fn static_weight(
    candidates: &[Candidate<'_>],
    placement: &Placement,
    input: &DivisionInput<'_>,
) -> Vec<TargetCluster> {
    divide_by_weights(
        input.replicas,
        &static_weights(candidates, placement),
        input.resource_uid,
    )
}

/// Stable sort by replicas descending (Karmada sorts `TargetClustersList`).
fn sort_desc(list: &mut [TargetCluster]) {
    list.sort_by_key(|t| std::cmp::Reverse(t.replicas));
}

fn dynamic(
    candidates: &[Candidate<'_>],
    input: &DivisionInput<'_>,
    aggregated: bool,
) -> Result<Vec<TargetCluster>> {
    let in_candidates = |n: &str| candidates.iter().any(|c| c.cluster.name() == n);
    let scheduled: Vec<TargetCluster> = input
        .previous
        .iter()
        .filter(|t| in_candidates(&t.name))
        .cloned()
        .collect();
    let assigned: i64 = scheduled.iter().map(|t| i64::from(t.replicas)).sum();
    let desired = i64::from(input.replicas);
    let available_list = || -> Vec<TargetCluster> {
        candidates
            .iter()
            .map(|c| TargetCluster::new(c.cluster.name(), c.available_replicas))
            .collect()
    };
    let (mut available, target, base) = if input.fresh {
        let mut list = available_list();
        for s in &scheduled {
            if let Some(a) = list.iter_mut().find(|a| a.name == s.name) {
                a.replicas += s.replicas;
            }
        }
        sort_desc(&mut list);
        (list, input.replicas, Vec::new())
    } else if assigned > desired {
        let mut list = scheduled.clone();
        sort_desc(&mut list);
        (list, input.replicas, Vec::new())
    } else if assigned < desired {
        let mut list = available_list();
        sort_desc(&mut list);
        (list, input.replicas - assigned as i32, scheduled.clone())
    } else {
        return Ok(scheduled);
    };
    let total: i64 = available.iter().map(|t| i64::from(t.replicas)).sum();
    if total < i64::from(target) {
        return Err(Error::Unschedulable { available: total });
    }
    if aggregated {
        // Clusters that already hold replicas go first, then cut at the first
        // prefix that can hold the target.
        let (mut prior, rest): (Vec<_>, Vec<_>) = available
            .into_iter()
            .partition(|a| base.iter().any(|s| s.name == a.name && s.replicas > 0));
        prior.extend(rest);
        available = prior;
        let mut sum = 0i64;
        for i in 0..available.len() {
            sum += i64::from(available[i].replicas);
            if sum >= i64::from(target) {
                available.truncate(i + 1);
                break;
            }
        }
    }
    let weights: Vec<(String, i64)> = available
        .iter()
        .map(|a| (a.name.clone(), i64::from(a.replicas)))
        .collect();
    let new = divide_by_weights(target, &weights, input.resource_uid);
    Ok(merge_target_clusters(&base, new))
}

/// Whether a Job's `spec.completions` is divided too: the binding has
/// replicas and a Divided placement (Karmada `needReviseJobCompletions`).
pub fn need_revise_job_completions(replicas: i32, placement: Option<&Placement>) -> bool {
    replicas > 0
        && placement.is_some_and(|p| {
            p.replica_scheduling.as_ref().is_some_and(|r| {
                r.replica_scheduling_type == crate::policy::REPLICA_SCHEDULING_DIVIDED
            })
        })
}

/// Divides a Job's `completions` over the target clusters with their
/// scheduled replicas as weights (Karmada `divideReplicasByJobCompletions`);
/// empty when the replicas sum to 0.
pub fn divide_job_completions(
    completions: i32,
    clusters: &[TargetCluster],
    template_uid: &str,
) -> Vec<TargetCluster> {
    let weights: Vec<(String, i64)> = clusters
        .iter()
        .map(|c| (c.name.clone(), i64::from(c.replicas)))
        .collect();
    divide_by_weights(completions, &weights, template_uid)
}

/// Adds `old` replicas onto `new` by cluster name (Karmada `MergeTargetClusters`).
pub fn merge_target_clusters(
    old: &[TargetCluster],
    mut new: Vec<TargetCluster>,
) -> Vec<TargetCluster> {
    if old.is_empty() {
        return new;
    }
    if new.is_empty() {
        return old.to_vec();
    }
    for o in old {
        match new.iter_mut().find(|n| n.name == o.name) {
            Some(n) => n.replicas += o.replicas,
            None => new.push(o.clone()),
        }
    }
    new
}

#[cfg(test)]
mod tests;
