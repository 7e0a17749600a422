//! Cluster selection: which clusters a placement allows. Mirrors Karmada's
//! `util.ClusterMatches` (clusterAffinity with names, exclude, labelSelector,
//! fieldSelector on provider/region/zone), the scheduler's filter plugins
//! (ClusterAffinity with ordered `clusterAffinities`, TaintToleration,
//! SpreadConstraint property checks) and `SelectBestClusters` for
//! `spreadConstraints`.
//!
//! Start at [`filter_clusters`], then [`select_best_clusters`].

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Taint, Toleration};

use crate::cluster::Cluster;
use crate::division::Candidate;
use crate::labels::{requirements_match, selector_matches};
use crate::policy::{
    ClusterAffinity, DIVISION_WEIGHTED, Placement, REPLICA_SCHEDULING_DIVIDED,
    SPREAD_BY_FIELD_CLUSTER, SPREAD_BY_FIELD_PROVIDER, SPREAD_BY_FIELD_REGION,
    SPREAD_BY_FIELD_ZONE, SpreadConstraint,
};

/// Errors of cluster selection.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// Fewer feasible clusters than `minGroups`.
    #[error("the number of feasible clusters is less than spreadConstraint.MinGroups")]
    TooFewClusters,
    /// Fewer feasible groups than `minGroups` for a topology constraint.
    #[error("the number of feasible {field} groups is less than spreadConstraint.MinGroups")]
    TooFewGroups {
        /// spreadByField.
        field: String,
    },
    /// The chosen clusters cannot hold the replicas.
    #[error("no enough resource when selecting {count} clusters")]
    NotEnoughResource {
        /// Number of clusters wanted.
        count: usize,
    },
    /// Only cluster and region (plus zone/provider as groups) are supported.
    #[error("just support cluster and region spread constraint")]
    Unsupported,
}

/// Result of this module.
pub type Result<T, E = Error> = std::result::Result<T, E>;

fn cluster_labels(cluster: &Cluster) -> BTreeMap<String, String> {
    cluster.metadata.labels.clone().unwrap_or_default()
}

fn zones_match(op: &str, values: &[String], zones: &[String]) -> bool {
    match op {
        "In" => zones.iter().any(|z| values.contains(z)),
        "NotIn" => !zones.iter().any(|z| values.contains(z)),
        "Exists" => !zones.is_empty(),
        "DoesNotExist" => zones.is_empty(),
        _ => false,
    }
}

/// Whether a cluster belongs to the group an affinity describes
/// (Karmada `util.ClusterMatches`): not excluded, labels match, fields
/// (provider, region; zone against `spec.zones`) match, and listed by name
/// when `clusterNames` is non-empty.
pub fn cluster_matches(cluster: &Cluster, affinity: &ClusterAffinity) -> bool {
    let name = cluster.name();
    if affinity.exclude.iter().any(|e| e == name) {
        return false;
    }
    if let Some(sel) = &affinity.label_selector
        && !selector_matches(sel, &cluster_labels(cluster))
    {
        return false;
    }
    if let Some(fs) = &affinity.field_selector {
        let mut others = Vec::new();
        for req in &fs.match_expressions {
            if req.key == SPREAD_BY_FIELD_ZONE {
                let values = req.values.as_deref().unwrap_or_default();
                if !zones_match(&req.operator, values, &cluster.spec.zones) {
                    return false;
                }
            } else {
                others.push(req.clone());
            }
        }
        if !others.is_empty() {
            let mut fields = BTreeMap::new();
            if !cluster.spec.provider.is_empty() {
                fields.insert(
                    SPREAD_BY_FIELD_PROVIDER.to_string(),
                    cluster.spec.provider.clone(),
                );
            }
            if !cluster.spec.region.is_empty() {
                fields.insert(
                    SPREAD_BY_FIELD_REGION.to_string(),
                    cluster.spec.region.clone(),
                );
            }
            if !requirements_match(&others, &fields) {
                return false;
            }
        }
    }
    affinity.cluster_names.is_empty() || affinity.cluster_names.iter().any(|n| n == name)
}

/// Whether a toleration tolerates a taint (`corev1.Toleration.ToleratesTaint`).
pub fn tolerates(toleration: &Toleration, taint: &Taint) -> bool {
    let effect = toleration.effect.as_deref().unwrap_or_default();
    if !effect.is_empty() && effect != taint.effect {
        return false;
    }
    let key = toleration.key.as_deref().unwrap_or_default();
    if !key.is_empty() && key != taint.key {
        return false;
    }
    match toleration.operator.as_deref().unwrap_or_default() {
        "" | "Equal" => {
            toleration.value.as_deref().unwrap_or_default()
                == taint.value.as_deref().unwrap_or_default()
        }
        "Exists" => true,
        _ => false,
    }
}

/// The first NoSchedule/NoExecute taint of `taints` that no toleration
/// tolerates (Karmada's TaintToleration filter), if any.
pub fn find_untolerated_taint<'a>(
    taints: &'a [Taint],
    tolerations: &[Toleration],
) -> Option<&'a Taint> {
    taints
        .iter()
        .filter(|t| t.effect == "NoSchedule" || t.effect == "NoExecute")
        .find(|t| !tolerations.iter().any(|tol| tolerates(tol, t)))
}

/// The affinity the ClusterAffinity filter uses: `clusterAffinity`, or the
/// `clusterAffinities` term named `observed` (the binding's
/// `schedulerObservingAffinityName`), or the first term when that is empty.
pub fn active_affinity<'a>(
    placement: &'a Placement,
    observed: &str,
) -> Option<&'a ClusterAffinity> {
    if let Some(a) = &placement.cluster_affinity {
        return Some(a);
    }
    if placement.cluster_affinities.is_empty() {
        return None;
    }
    placement
        .cluster_affinities
        .iter()
        .find(|t| t.affinity_name == observed)
        .or_else(|| placement.cluster_affinities.first())
        .map(|t| &t.affinity)
}

/// Why a cluster was filtered out, with Karmada's reason text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FilterFailure {
    /// Cluster name.
    pub cluster: String,
    /// Reason, e.g. `cluster(s) did not match the placement cluster affinity constraint`.
    pub reason: String,
}

/// Runs the filter plugins over `clusters` (ClusterAffinity, TaintToleration,
/// SpreadConstraint properties, skipping clusters being deleted); clusters in
/// `scheduled` (the current `spec.clusters`) bypass the taint check, as in
/// Karmada. Returns the clusters that pass, in input order, and the failures.
pub fn filter_clusters<'a>(
    placement: &Placement,
    observed_affinity: &str,
    clusters: &'a [Cluster],
    scheduled: &[String],
) -> (Vec<&'a Cluster>, Vec<FilterFailure>) {
    let affinity = active_affinity(placement, observed_affinity);
    let mut passed = Vec::new();
    let mut failed = Vec::new();
    for c in clusters {
        if c.metadata.deletion_timestamp.is_some() {
            continue;
        }
        let name = c.name().to_string();
        let fail = |reason: String| FilterFailure {
            cluster: name.clone(),
            reason,
        };
        if let Some(t) = (!scheduled.contains(&name))
            .then(|| find_untolerated_taint(&c.spec.taints, &placement.cluster_tolerations))
            .flatten()
        {
            let value = t.value.as_deref().unwrap_or_default();
            failed.push(fail(format!(
                "cluster(s) had untolerated taint {{{}={}:{}}}",
                t.key, value, t.effect
            )));
            continue;
        }
        if let Some(a) = affinity
            && !cluster_matches(c, a)
        {
            failed.push(fail(
                "cluster(s) did not match the placement cluster affinity constraint".into(),
            ));
            continue;
        }
        if let Some(missing) = missing_spread_property(c, &placement.spread_constraints) {
            failed.push(fail(format!("cluster(s) did not have {missing} property")));
            continue;
        }
        passed.push(c);
    }
    (passed, failed)
}

fn missing_spread_property(
    cluster: &Cluster,
    constraints: &[SpreadConstraint],
) -> Option<&'static str> {
    for sc in constraints {
        match sc.spread_by_field.as_str() {
            SPREAD_BY_FIELD_PROVIDER if cluster.spec.provider.is_empty() => {
                return Some("provider");
            }
            SPREAD_BY_FIELD_REGION if cluster.spec.region.is_empty() => return Some("region"),
            SPREAD_BY_FIELD_ZONE if cluster.spec.zones.is_empty() => return Some("zones"),
            _ => {}
        }
    }
    None
}

/// Whether spread constraints are ignored: static-weighted Divided/Weighted
/// (weightPreference nil, or static list without dynamicWeight) — Karmada
/// `shouldIgnoreSpreadConstraint`.
pub fn spread_constraints_ignored(placement: &Placement) -> bool {
    let Some(rs) = &placement.replica_scheduling else {
        return false;
    };
    rs.replica_scheduling_type == REPLICA_SCHEDULING_DIVIDED
        && rs.replica_division_preference == DIVISION_WEIGHTED
        && match &rs.weight_preference {
            None => true,
            Some(w) => !w.static_weight_list.is_empty() && w.dynamic_weight.is_empty(),
        }
}

/// Chooses clusters under `spreadConstraints` (Karmada `SelectBestClusters`).
/// `candidates` must be in the scheduler's order (score, then available
/// replicas, then name). With a cluster constraint: `min(#candidates,
/// maxGroups)` clusters, failing below `minGroups`; for Divided placements
/// higher-capacity clusters are swapped in until `replicas` fit. With a
/// region/zone/provider constraint, whole groups are chosen first (groups
/// ordered by total available replicas, then name).
pub fn select_best_clusters<'a>(
    placement: &Placement,
    candidates: Vec<Candidate<'a>>,
    replicas: i32,
) -> Result<Vec<Candidate<'a>>> {
    if placement.spread_constraints.is_empty() || spread_constraints_ignored(placement) {
        return Ok(candidates);
    }
    let duplicated = placement.replica_scheduling.is_none()
        || placement.replica_scheduling_type() == crate::policy::REPLICA_SCHEDULING_DUPLICATED;
    let need = if duplicated { None } else { Some(replicas) };
    let by_field = |f: &str| {
        placement
            .spread_constraints
            .iter()
            .find(|s| s.spread_by_field == f)
    };
    let cluster_sc = by_field(SPREAD_BY_FIELD_CLUSTER);
    for field in [
        SPREAD_BY_FIELD_REGION,
        SPREAD_BY_FIELD_ZONE,
        SPREAD_BY_FIELD_PROVIDER,
    ] {
        if let Some(sc) = by_field(field) {
            let grouped = select_groups(field, sc, candidates)?;
            return match cluster_sc {
                Some(c) => select_by_cluster(c, grouped, need),
                None => Ok(grouped),
            };
        }
    }
    match cluster_sc {
        Some(sc) => select_by_cluster(sc, candidates, need),
        None => Err(Error::Unsupported),
    }
}

fn group_key(c: &Cluster, field: &str) -> Vec<String> {
    match field {
        SPREAD_BY_FIELD_REGION => vec![c.spec.region.clone()],
        SPREAD_BY_FIELD_PROVIDER => vec![c.spec.provider.clone()],
        _ => c.spec.zones.clone(),
    }
}

fn select_groups<'a>(
    field: &str,
    sc: &SpreadConstraint,
    candidates: Vec<Candidate<'a>>,
) -> Result<Vec<Candidate<'a>>> {
    let mut groups: BTreeMap<String, i64> = BTreeMap::new();
    for c in &candidates {
        for k in group_key(c.cluster, field) {
            *groups.entry(k).or_default() += i64::from(c.available_replicas);
        }
    }
    if (groups.len() as i64) < i64::from(sc.min_groups) {
        return Err(Error::TooFewGroups {
            field: field.to_string(),
        });
    }
    let mut order: Vec<(String, i64)> = groups.into_iter().collect();
    order.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    let take = order
        .len()
        .min(usize::try_from(sc.max_groups.max(0)).unwrap_or(0));
    let chosen: Vec<String> = order.into_iter().take(take).map(|(k, _)| k).collect();
    Ok(candidates
        .into_iter()
        .filter(|c| {
            group_key(c.cluster, field)
                .iter()
                .any(|k| chosen.contains(k))
        })
        .collect())
}

fn select_by_cluster<'a>(
    sc: &SpreadConstraint,
    candidates: Vec<Candidate<'a>>,
    need: Option<i32>,
) -> Result<Vec<Candidate<'a>>> {
    if (candidates.len() as i64) < i64::from(sc.min_groups) {
        return Err(Error::TooFewClusters);
    }
    let count = candidates
        .len()
        .min(usize::try_from(sc.max_groups.max(0)).unwrap_or(0));
    let mut chosen: Vec<Candidate<'a>> = candidates[..count].to_vec();
    let mut rest: Vec<Candidate<'a>> = candidates[count..].to_vec();
    let Some(need) = need else {
        return Ok(chosen);
    };
    let fits = |cs: &[Candidate<'_>]| {
        cs.iter()
            .map(|c| i64::from(c.available_replicas))
            .sum::<i64>()
            >= i64::from(need)
    };
    let mut idx = chosen.len();
    while !fits(&chosen) && idx > 0 {
        idx -= 1;
        let mut best: Option<usize> = None;
        let mut best_avail = chosen[idx].available_replicas;
        for (i, r) in rest.iter().enumerate() {
            if r.available_replicas > best_avail {
                best = Some(i);
                best_avail = r.available_replicas;
            }
        }
        if let Some(i) = best {
            std::mem::swap(&mut chosen[idx], &mut rest[i]);
        }
    }
    if !fits(&chosen) {
        return Err(Error::NotEnoughResource { count });
    }
    Ok(chosen)
}

#[cfg(test)]
mod tests;
