//! Cluster selection: which clusters a placement allows. Mirrors Karmada's
//! `util.ClusterMatches` (clusterAffinity with names, exclude, labelSelector,
//! fieldSelector on provider/region/zone), the scheduler's filter plugins
//! (ClusterAffinity with ordered `clusterAffinities`, TaintToleration,
//! SpreadConstraint property checks) and `SelectBestClusters` for
//! `spreadConstraints`.
//!
//! Start at [`filter_clusters`], then [`select_best_clusters`]; the
//! survivors go to [`crate::division::assign_replicas`].

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Taint, Toleration};

use crate::cluster::Cluster;
use crate::labels::{requirements_match, selector_matches};
use crate::policy::{
    ClusterAffinity, DIVISION_WEIGHTED, Placement, REPLICA_SCHEDULING_DIVIDED,
    REPLICA_SCHEDULING_DUPLICATED, SPREAD_BY_FIELD_CLUSTER, SPREAD_BY_FIELD_PROVIDER,
    SPREAD_BY_FIELD_REGION, SPREAD_BY_FIELD_ZONE, SpreadConstraint,
};

/// Errors of cluster selection.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// Fewer feasible clusters than `minGroups` (or no feasible region combination).
    #[error("the number of feasible clusters is less than spreadConstraint.MinGroups")]
    TooFewClusters,
    /// Fewer feasible regions than `minGroups`.
    #[error("the number of feasible {field} is less than spreadConstraint.MinGroups")]
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

/// The affinities the ClusterAffinity filter checks (Karmada ClusterAffinity
/// plugin): `clusterAffinity` when set; else the `clusterAffinities` term named
/// `observed` (the binding's `schedulerObservingAffinityName`) plus, for
/// workloads, its overflow affinities. Empty means no constraint (also when no
/// term has that name, as in Karmada).
pub fn active_affinities<'a>(
    placement: &'a Placement,
    observed: &str,
    is_workload: bool,
) -> Vec<&'a ClusterAffinity> {
    if let Some(a) = &placement.cluster_affinity {
        return vec![a];
    }
    let Some(term) = placement
        .cluster_affinities
        .iter()
        .find(|t| t.affinity_name == observed)
    else {
        return Vec::new();
    };
    let mut out = vec![&term.affinity];
    if is_workload {
        out.extend(term.overflow_affinities.iter().map(|o| &o.affinity));
    }
    out
}

/// The overflow tier of a cluster (Karmada `getClusterOverflowOrder`): 0 when
/// there is no term in use or the cluster matches the term's own affinity,
/// `i + 1` for the first overflow affinity `i` it matches, 1000 otherwise.
pub fn overflow_order(cluster: &Cluster, placement: &Placement, observed: &str) -> i32 {
    if placement.cluster_affinity.is_some() || placement.cluster_affinities.is_empty() {
        return 0;
    }
    let Some(term) = placement
        .cluster_affinities
        .iter()
        .find(|t| t.affinity_name == observed)
    else {
        return 1000;
    };
    if cluster_matches(cluster, &term.affinity) {
        return 0;
    }
    term.overflow_affinities
        .iter()
        .position(|o| cluster_matches(cluster, &o.affinity))
        .map_or(1000, |i| i32::try_from(i + 1).unwrap_or(1000))
}

/// The names of the `clusterAffinities` terms in the order the scheduler
/// tries them, starting at `observed` (or the first term when `observed` is
/// empty or unknown) — Karmada `scheduleByAffinityTerms`.
pub fn affinity_terms_from<'a>(placement: &'a Placement, observed: &str) -> Vec<&'a str> {
    let names: Vec<&str> = placement
        .cluster_affinities
        .iter()
        .map(|t| t.affinity_name.as_str())
        .collect();
    let start = names.iter().position(|n| *n == observed).unwrap_or(0);
    names[start..].to_vec()
}

/// Whether a cluster serves the API of `api_version`/`kind` (Karmada
/// `Cluster.APIEnablement`): `Some(true)` enabled, `Some(false)` disabled
/// (the list is complete and lacks it), `None` unknown (list incomplete).
pub fn api_enablement(cluster: &Cluster, api_version: &str, kind: &str) -> Option<bool> {
    let status = cluster.status.as_ref();
    let enabled = status
        .map(|s| s.api_enablements.iter())
        .into_iter()
        .flatten()
        .filter(|e| e.group_version == api_version)
        .any(|e| e.resources.iter().any(|r| r.kind == kind));
    if enabled {
        return Some(true);
    }
    let complete = status.is_some_and(|s| {
        s.conditions
            .iter()
            .any(|c| c.type_ == "CompleteAPIEnablements" && c.status == "True")
    });
    if complete { Some(false) } else { None }
}

/// Why a cluster was filtered out, with Karmada's reason text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FilterFailure {
    /// Cluster name.
    pub cluster: String,
    /// Reason, e.g. `cluster(s) did not match the placement cluster affinity constraint`.
    pub reason: String,
}

/// What the filter plugins need to know about the binding being scheduled.
#[derive(Debug, Clone, Copy)]
pub struct FilterInput<'a> {
    /// The binding's placement.
    pub placement: &'a Placement,
    /// `spec.resource.apiVersion` and `kind` (APIEnablement plugin).
    pub api_version: &'a str,
    /// Resource kind.
    pub kind: &'a str,
    /// The affinity term being tried (`schedulerObservingAffinityName`).
    pub observed_affinity: &'a str,
    /// Whether the binding is a workload (replicas or requirements set).
    pub is_workload: bool,
    /// Clusters already in `spec.clusters`; they bypass APIEnablement and TaintToleration.
    pub scheduled: &'a [String],
    /// `gracefulEvictionTasks[].fromCluster`.
    pub evicting: &'a [String],
}

/// Runs Karmada's filter plugins on one cluster, in registry order:
/// APIEnablement, TaintToleration, ClusterAffinity, SpreadConstraint,
/// ClusterEviction. Returns the first failure's reason.
pub fn filter_cluster(input: &FilterInput<'_>, c: &Cluster) -> Result<(), String> {
    let name = c.name();
    let scheduled = input.scheduled.iter().any(|s| s == name);
    if !scheduled && api_enablement(c, input.api_version, input.kind) != Some(true) {
        return Err("cluster(s) did not have the API resource".into());
    }
    if !scheduled
        && let Some(t) =
            find_untolerated_taint(&c.spec.taints, &input.placement.cluster_tolerations)
    {
        let value = t.value.as_deref().unwrap_or_default();
        return Err(format!(
            "cluster(s) had untolerated taint {{{}={}:{}}}",
            t.key, value, t.effect
        ));
    }
    let affinities = active_affinities(input.placement, input.observed_affinity, input.is_workload);
    if !affinities.is_empty() && !affinities.iter().any(|a| cluster_matches(c, a)) {
        return Err("cluster(s) did not match the placement cluster affinity constraint".into());
    }
    if let Some(missing) = missing_spread_property(c, &input.placement.spread_constraints) {
        return Err(format!("cluster(s) did not have {missing} property"));
    }
    if input.evicting.iter().any(|e| e == name) {
        return Err("cluster(s) is in the process of eviction".into());
    }
    Ok(())
}

/// Runs [`filter_cluster`] over `clusters`, skipping clusters being deleted.
/// Returns the clusters that pass, in input order, and the failures.
pub fn filter_clusters<'a>(
    input: &FilterInput<'_>,
    clusters: &'a [Cluster],
) -> (Vec<&'a Cluster>, Vec<FilterFailure>) {
    let mut passed = Vec::new();
    let mut failed = Vec::new();
    for c in clusters {
        if c.metadata.deletion_timestamp.is_some() {
            continue;
        }
        match filter_cluster(input, c) {
            Ok(()) => passed.push(c),
            Err(reason) => failed.push(FilterFailure {
                cluster: c.name().to_string(),
                reason,
            }),
        }
    }
    (passed, failed)
}

/// The scheduler's message when no cluster fits (Karmada `FitError.Error`):
/// `0/<N> clusters are available: <count> <reason>, ...` with the reason
/// histogram sorted, or `... no cluster exists.`.
pub fn fit_error_message(total_clusters: usize, failures: &[FilterFailure]) -> String {
    if total_clusters == 0 || failures.is_empty() {
        return format!("0/{total_clusters} clusters are available: no cluster exists.");
    }
    let mut hist: BTreeMap<&str, usize> = BTreeMap::new();
    for f in failures {
        *hist.entry(f.reason.as_str()).or_default() += 1;
    }
    let mut parts: Vec<String> = hist.into_iter().map(|(r, n)| format!("{n} {r}")).collect();
    parts.sort();
    format!(
        "0/{total_clusters} clusters are available: {}.",
        parts.join(", ")
    )
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

/// A cluster candidate for spread selection (Karmada `ClusterDetailInfo`).
#[derive(Debug, Clone)]
pub struct ScoredCluster<'a> {
    /// The cluster.
    pub cluster: &'a Cluster,
    /// Summed plugin score (ClusterLocality: 100 if already scheduled).
    pub score: i64,
    /// Overflow tier (0 = primary affinity group).
    pub overflow_order: i32,
    /// Estimated available replicas plus those already assigned to it.
    pub available_replicas: i64,
}

impl ScoredCluster<'_> {
    fn name(&self) -> &str {
        self.cluster.name()
    }
}

/// Karmada's candidate order (`sortClusters`): overflow tier ascending, score
/// descending, available replicas descending, name ascending.
pub fn sort_candidates(list: &mut [ScoredCluster<'_>]) {
    list.sort_by(|a, b| {
        a.overflow_order
            .cmp(&b.overflow_order)
            .then_with(|| b.score.cmp(&a.score))
            .then_with(|| b.available_replicas.cmp(&a.available_replicas))
            .then_with(|| a.name().cmp(b.name()))
    });
}

/// Chooses clusters under `spreadConstraints` (Karmada `SelectBestClusters`).
/// `candidates` are sorted with [`sort_candidates`] first. Ignored without
/// constraints or for static weights. A region constraint selects regions
/// (Karmada's DFS over region groups) then clusters; otherwise a cluster
/// constraint takes `min(#candidates, maxGroups)` clusters, failing below
/// `minGroups`, and for Divided placements swaps in higher-capacity clusters
/// until `replicas` fit. Zone and provider constraints only filter.
pub fn select_best_clusters<'a>(
    placement: &Placement,
    mut candidates: Vec<ScoredCluster<'a>>,
    replicas: i32,
) -> Result<Vec<ScoredCluster<'a>>> {
    sort_candidates(&mut candidates);
    if placement.spread_constraints.is_empty() || spread_constraints_ignored(placement) {
        return Ok(candidates);
    }
    let duplicated = placement.replica_scheduling.is_none()
        || placement
            .replica_scheduling
            .as_ref()
            .is_some_and(|r| r.replica_scheduling_type == REPLICA_SCHEDULING_DUPLICATED);
    let need = if duplicated {
        None
    } else {
        Some(i64::from(replicas))
    };
    let by_field = |f: &str| {
        placement
            .spread_constraints
            .iter()
            .rev()
            .find(|s| s.spread_by_field == f)
    };
    let cluster_sc = by_field(SPREAD_BY_FIELD_CLUSTER)
        .cloned()
        .unwrap_or_default();
    if let Some(region_sc) = by_field(SPREAD_BY_FIELD_REGION) {
        return select_by_region(placement, replicas, region_sc, &cluster_sc, candidates);
    }
    if by_field(SPREAD_BY_FIELD_CLUSTER).is_some() {
        return select_by_cluster(&cluster_sc, candidates, need);
    }
    Err(Error::Unsupported)
}

const WEIGHT_UNIT: i64 = 1000;

/// A region's score (Karmada `calcGroupScore`).
fn group_score(
    placement: &Placement,
    replicas: i32,
    clusters: &[ScoredCluster<'_>],
    min_groups: i32,
) -> i64 {
    let duplicated = placement.replica_scheduling.is_none()
        || placement
            .replica_scheduling
            .as_ref()
            .is_some_and(|r| r.replica_scheduling_type == REPLICA_SCHEDULING_DUPLICATED);
    if duplicated {
        let target = i64::from(replicas);
        let valid: Vec<&ScoredCluster<'_>> = clusters
            .iter()
            .filter(|c| c.available_replicas >= target)
            .collect();
        if valid.is_empty() {
            return 0;
        }
        let n = valid.len() as i64;
        return n * WEIGHT_UNIT + valid.iter().map(|c| c.score).sum::<i64>() / n;
    }
    let min_groups = min_groups.max(1);
    let target = (i64::from(replicas) + i64::from(min_groups) - 1) / i64::from(min_groups);
    let cluster_min = placement
        .spread_constraints
        .iter()
        .filter(|s| s.spread_by_field == SPREAD_BY_FIELD_CLUSTER)
        .map(|s| s.min_groups)
        .next_back()
        .unwrap_or(0)
        .max(min_groups);
    let (mut sum_avail, mut sum_score, mut valid) = (0i64, 0i64, 0i64);
    for c in clusters {
        sum_avail += c.available_replicas;
        sum_score += c.score;
        valid += 1;
        if valid >= i64::from(cluster_min) && sum_avail >= target {
            break;
        }
    }
    if sum_avail < target {
        return sum_avail * WEIGHT_UNIT + sum_score / clusters.len().max(1) as i64;
    }
    target * WEIGHT_UNIT + sum_score / valid.max(1)
}

#[derive(Debug, Clone)]
struct Group {
    name: String,
    value: usize,
    weight: i64,
}

#[derive(Debug, Clone)]
struct Path {
    id: usize,
    groups: Vec<Group>,
    weight: i64,
    value: usize,
}

/// Depth-first enumeration state of [`select_groups`].
struct GroupSearch<'g> {
    groups: &'g [Group],
    min: usize,
    max: usize,
    target: usize,
    stack: Vec<Group>,
    paths: Vec<Path>,
    next_id: usize,
}

impl GroupSearch<'_> {
    fn dfs(&mut self, sum: usize, begin: usize) {
        if sum >= self.target && self.stack.len() >= self.min && self.stack.len() <= self.max {
            self.next_id += 1;
            let mut gs = self.stack.clone();
            let weight = gs.iter().map(|g| g.weight).sum();
            let value = gs.iter().map(|g| g.value).sum();
            gs.sort_by(|a, b| b.weight.cmp(&a.weight).then_with(|| a.name.cmp(&b.name)));
            self.paths.push(Path {
                id: self.next_id,
                groups: gs,
                weight,
                value,
            });
            return;
        }
        if self.stack.len() >= self.max {
            return;
        }
        for i in begin..self.groups.len() {
            self.stack.push(self.groups[i].clone());
            self.dfs(sum + self.groups[i].value, i + 1);
            if self.groups.len() == self.min {
                break;
            }
            self.stack.pop();
        }
    }
}

/// Karmada `selectGroups`: enumerate feasible group combinations depth-first
/// (groups ordered by cluster count ascending, weight descending, name), then
/// keep the heaviest, preferring a shorter prefix of it when one is feasible.
fn select_groups(mut groups: Vec<Group>, min: i32, max: i32, target: usize) -> Vec<Group> {
    if groups.is_empty() {
        return Vec::new();
    }
    groups.sort_by(|a, b| {
        a.value
            .cmp(&b.value)
            .then_with(|| b.weight.cmp(&a.weight))
            .then_with(|| a.name.cmp(&b.name))
    });
    let (min, max) = (
        usize::try_from(min.max(0)).unwrap_or(0),
        usize::try_from(max.max(0)).unwrap_or(0),
    );
    let mut search = GroupSearch {
        groups: &groups,
        min,
        max,
        target,
        stack: Vec::new(),
        paths: Vec::new(),
        next_id: 0,
    };
    search.dfs(0, 0);
    let mut paths = search.paths;
    if paths.is_empty() {
        return Vec::new();
    }
    paths.sort_by(|a, b| {
        b.weight
            .cmp(&a.weight)
            .then_with(|| b.value.cmp(&a.value))
            .then_with(|| a.id.cmp(&b.id))
    });
    let mut best = paths[0].clone();
    for p in &paths[1..] {
        let is_prefix = p.groups.len() < best.groups.len()
            && p.groups
                .iter()
                .zip(&best.groups)
                .all(|(a, b)| a.name == b.name);
        if is_prefix {
            best = p.clone();
        }
    }
    best.groups
}

fn select_by_region<'a>(
    placement: &Placement,
    replicas: i32,
    region_sc: &SpreadConstraint,
    cluster_sc: &SpreadConstraint,
    candidates: Vec<ScoredCluster<'a>>,
) -> Result<Vec<ScoredCluster<'a>>> {
    let mut regions: BTreeMap<String, Vec<ScoredCluster<'a>>> = BTreeMap::new();
    for c in &candidates {
        if !c.cluster.spec.region.is_empty() {
            regions
                .entry(c.cluster.spec.region.clone())
                .or_default()
                .push(c.clone());
        }
    }
    if (regions.len() as i64) < i64::from(region_sc.min_groups) {
        return Err(Error::TooFewGroups {
            field: "region".into(),
        });
    }
    let groups: Vec<Group> = regions
        .iter()
        .map(|(name, cs)| Group {
            name: name.clone(),
            value: cs.len(),
            weight: group_score(placement, replicas, cs, region_sc.min_groups),
        })
        .collect();
    let target = usize::try_from(cluster_sc.min_groups.max(0)).unwrap_or(0);
    let chosen = select_groups(groups, region_sc.min_groups, region_sc.max_groups, target);
    if chosen.is_empty() {
        return Err(Error::TooFewClusters);
    }
    let mut selected = Vec::new();
    let mut rest = Vec::new();
    for g in &chosen {
        if let Some((first, others)) = regions.get(&g.name).and_then(|cs| cs.split_first()) {
            selected.push(first.clone());
            rest.extend(others.iter().cloned());
        }
    }
    let max = usize::try_from(cluster_sc.max_groups.max(0)).unwrap_or(0);
    let need = (selected.len() + rest.len()).min(max);
    if need > selected.len() {
        sort_candidates(&mut rest);
        selected.extend(rest.into_iter().take(need - selected.len()));
    }
    Ok(selected)
}

fn select_by_cluster<'a>(
    sc: &SpreadConstraint,
    candidates: Vec<ScoredCluster<'a>>,
    need: Option<i64>,
) -> Result<Vec<ScoredCluster<'a>>> {
    if (candidates.len() as i64) < i64::from(sc.min_groups) {
        return Err(Error::TooFewClusters);
    }
    let count = candidates
        .len()
        .min(usize::try_from(sc.max_groups.max(0)).unwrap_or(0));
    let mut chosen: Vec<ScoredCluster<'a>> = candidates[..count].to_vec();
    let mut rest: Vec<ScoredCluster<'a>> = candidates[count..].to_vec();
    let Some(need) = need else {
        return Ok(chosen);
    };
    let fits =
        |cs: &[ScoredCluster<'_>]| cs.iter().map(|c| c.available_replicas).sum::<i64>() >= need;
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
    if !fits(&chosen) || chosen.is_empty() {
        return Err(Error::NotEnoughResource { count });
    }
    Ok(chosen)
}

#[cfg(test)]
mod tests;
