//! Cluster selection cases re-expressed from Karmada's `selector_test.go`
//! (TestClusterMatches, Test_matchZones), the taint-toleration and spread
//! constraint tests.

use super::*;
use crate::policy::ClusterAffinity;
use crate::testutil::{cluster, cluster_at, yaml};

fn reference_cluster() -> Cluster {
    let mut c = cluster_at(
        "cluster1",
        "provider1",
        "region1",
        &["zone1", "zone2", "zone3"],
    );
    c.metadata.labels = Some([("foo".to_string(), "bar".to_string())].into());
    c
}

#[test]
fn cluster_matches_table() {
    let c = reference_cluster();
    let cases: &[(&str, &str, bool)] = &[
        (
            "excluded and names",
            "{exclude: [cluster1], clusterNames: [cluster1]}",
            false,
        ),
        (
            "excluded and label selector",
            "{exclude: [cluster1], labelSelector: {matchLabels: {foo: bar}}}",
            false,
        ),
        (
            "excluded and field selector",
            "{exclude: [cluster1], fieldSelector: {matchExpressions: [{key: zone, operator: In, values: [zone1, zone2, zone3]}]}}",
            false,
        ),
        ("names", "{clusterNames: [cluster1]}", true),
        ("names not matched", "{clusterNames: [cluster2]}", false),
        (
            "names and labels",
            "{clusterNames: [cluster1], labelSelector: {matchLabels: {foo: bar}}}",
            true,
        ),
        (
            "names and labels not matched",
            "{clusterNames: [cluster1], labelSelector: {matchLabels: {foo: unmatched}}}",
            false,
        ),
        (
            "names, zone and region",
            "{clusterNames: [cluster1], fieldSelector: {matchExpressions: [{key: zone, operator: In, values: [zone1, zone2, zone3]}, {key: region, operator: In, values: [region1]}]}}",
            true,
        ),
        (
            "names and provider",
            "{clusterNames: [cluster1], fieldSelector: {matchExpressions: [{key: provider, operator: In, values: [provider1]}]}}",
            true,
        ),
        (
            "names and region",
            "{clusterNames: [cluster1], fieldSelector: {matchExpressions: [{key: region, operator: In, values: [region1]}]}}",
            true,
        ),
        (
            "names and zone not in",
            "{clusterNames: [cluster1], fieldSelector: {matchExpressions: [{key: zone, operator: NotIn, values: [zone1]}]}}",
            false,
        ),
        (
            "names and provider not in",
            "{clusterNames: [cluster1], fieldSelector: {matchExpressions: [{key: provider, operator: NotIn, values: [provider1]}]}}",
            false,
        ),
        (
            "names and region not in",
            "{clusterNames: [cluster1], fieldSelector: {matchExpressions: [{key: region, operator: NotIn, values: [region1]}]}}",
            false,
        ),
        (
            "labels and zone",
            "{labelSelector: {matchLabels: {foo: bar}}, fieldSelector: {matchExpressions: [{key: zone, operator: In, values: [zone1]}]}}",
            true,
        ),
        (
            "labels and provider not in other",
            "{labelSelector: {matchLabels: {foo: bar}}, fieldSelector: {matchExpressions: [{key: provider, operator: NotIn, values: [provider2]}]}}",
            true,
        ),
        (
            "label selector",
            "{labelSelector: {matchLabels: {foo: bar}}}",
            true,
        ),
        (
            "label selector not matched",
            "{labelSelector: {matchLabels: {foo: baz}}}",
            false,
        ),
        ("empty affinity", "{}", true),
        (
            "label selector error",
            "{labelSelector: {matchExpressions: [{key: foo, operator: In}]}}",
            false,
        ),
        (
            "field selector error",
            "{fieldSelector: {matchExpressions: [{key: region, operator: In}]}}",
            false,
        ),
        (
            "zone partially matched",
            "{fieldSelector: {matchExpressions: [{key: zone, operator: In, values: [zone1, zone4]}]}}",
            true,
        ),
        (
            "zone not matched",
            "{fieldSelector: {matchExpressions: [{key: zone, operator: In, values: [zone4]}]}}",
            false,
        ),
        (
            "region not matched",
            "{fieldSelector: {matchExpressions: [{key: region, operator: In, values: [region2]}]}}",
            false,
        ),
        (
            "provider not matched",
            "{fieldSelector: {matchExpressions: [{key: provider, operator: In, values: [provider2]}]}}",
            false,
        ),
        (
            "other key not matched",
            "{fieldSelector: {matchExpressions: [{key: foo, operator: In, values: [bar]}]}}",
            false,
        ),
    ];
    for (name, aff, want) in cases {
        let a: ClusterAffinity = yaml(aff);
        assert_eq!(cluster_matches(&c, &a), *want, "{name}");
    }
}

#[test]
fn match_zones_operators() {
    let cases: &[(&str, &[&str], &[&str], bool)] = &[
        ("In", &["foo"], &[], false),
        ("In", &["foo"], &["foo", "bar"], true),
        ("In", &["foo", "bar"], &["foo", "bar"], true),
        ("NotIn", &["foo"], &[], true),
        ("NotIn", &["foo"], &["foo", "bar"], false),
        ("Exists", &[], &[], false),
        ("DoesNotExist", &[], &[], true),
        ("Gt", &[], &["foo"], false),
    ];
    for (op, values, zones, want) in cases {
        let v: Vec<String> = values.iter().map(|s| s.to_string()).collect();
        let z: Vec<String> = zones.iter().map(|s| s.to_string()).collect();
        assert_eq!(zones_match(op, &v, &z), *want, "{op} {values:?} {zones:?}");
    }
}

fn taint(key: &str, value: &str, effect: &str) -> Taint {
    Taint {
        key: key.into(),
        value: (!value.is_empty()).then(|| value.into()),
        effect: effect.into(),
        time_added: None,
    }
}

#[test]
fn tolerations() {
    let t = taint("cluster.karmada.io/not-ready", "", "NoSchedule");
    let exists_all: Toleration = yaml("{operator: Exists}");
    let exists_key: Toleration = yaml("{key: cluster.karmada.io/not-ready, operator: Exists}");
    let wrong_effect: Toleration =
        yaml("{key: cluster.karmada.io/not-ready, operator: Exists, effect: NoExecute}");
    let equal: Toleration = yaml("{key: k, operator: Equal, value: v}");
    assert!(tolerates(&exists_all, &t));
    assert!(tolerates(&exists_key, &t));
    assert!(!tolerates(&wrong_effect, &t));
    assert!(tolerates(&equal, &taint("k", "v", "NoSchedule")));
    assert!(!tolerates(&equal, &taint("k", "w", "NoSchedule")));
    let default_op: Toleration = yaml("{key: k, value: v}");
    assert!(tolerates(&default_op, &taint("k", "v", "NoExecute")));
}

#[test]
fn prefer_no_schedule_taints_are_ignored() {
    let taints = vec![taint("a", "", "PreferNoSchedule")];
    assert!(find_untolerated_taint(&taints, &[]).is_none());
    let taints = vec![taint("a", "", "NoExecute")];
    assert_eq!(
        find_untolerated_taint(&taints, &[]).map(|t| t.key.as_str()),
        Some("a")
    );
}

fn input<'a>(p: &'a Placement, scheduled: &'a [String]) -> FilterInput<'a> {
    FilterInput {
        placement: p,
        api_version: "apps/v1",
        kind: "Deployment",
        observed_affinity: "",
        is_workload: true,
        scheduled,
        evicting: &[],
    }
}

fn serving(mut c: Cluster) -> Cluster {
    c.status = Some(yaml(
        "{apiEnablements: [{groupVersion: apps/v1, resources: [{name: deployments, kind: Deployment}]}], conditions: [{type: CompleteAPIEnablements, status: 'True', reason: Complete, message: '', lastTransitionTime: '2026-01-01T00:00:00Z'}]}",
    ));
    c
}

#[test]
fn filter_reports_karmada_reasons() {
    let mut tainted = serving(cluster("m2"));
    tainted.spec.taints = vec![taint("cluster.karmada.io/not-ready", "", "NoSchedule")];
    let clusters = vec![serving(cluster("m1")), tainted, serving(cluster("m3"))];
    let p: Placement = yaml("clusterAffinity: {clusterNames: [m1, m2]}");
    let (ok, failed) = filter_clusters(&input(&p, &[]), &clusters);
    assert_eq!(ok.iter().map(|c| c.name()).collect::<Vec<_>>(), vec!["m1"]);
    assert_eq!(
        failed[0].reason,
        "cluster(s) had untolerated taint {cluster.karmada.io/not-ready=:NoSchedule}"
    );
    assert_eq!(
        failed[1].reason,
        "cluster(s) did not match the placement cluster affinity constraint"
    );
    assert_eq!(
        fit_error_message(3, &failed),
        "0/3 clusters are available: 1 cluster(s) did not match the placement cluster affinity constraint, 1 cluster(s) had untolerated taint {cluster.karmada.io/not-ready=:NoSchedule}."
    );
    // A cluster already scheduled bypasses the taint filter.
    let scheduled = vec!["m2".to_string()];
    let (ok, _) = filter_clusters(&input(&p, &scheduled), &clusters);
    assert_eq!(ok.len(), 2);
}

#[test]
fn fit_error_without_clusters() {
    assert_eq!(
        fit_error_message(0, &[]),
        "0/0 clusters are available: no cluster exists."
    );
}

#[test]
fn api_enablement_states() {
    let c = serving(cluster("m1"));
    assert_eq!(api_enablement(&c, "apps/v1", "Deployment"), Some(true));
    assert_eq!(api_enablement(&c, "batch/v1", "Job"), Some(false));
    assert_eq!(
        api_enablement(&cluster("m2"), "apps/v1", "Deployment"),
        None
    );
    let p = Placement::default();
    let err = filter_cluster(&input(&p, &[]), &cluster("m2")).unwrap_err();
    assert_eq!(err, "cluster(s) did not have the API resource");
    let scheduled = vec!["m2".to_string()];
    assert!(filter_cluster(&input(&p, &scheduled), &cluster("m2")).is_ok());
}

#[test]
fn filter_eviction_and_deleting_clusters() {
    let p = Placement::default();
    let evicting = vec!["m1".to_string()];
    let mut i = input(&p, &[]);
    i.evicting = &evicting;
    assert_eq!(
        filter_cluster(&i, &serving(cluster("m1"))).unwrap_err(),
        "cluster(s) is in the process of eviction"
    );
    let mut gone = serving(cluster("m2"));
    gone.metadata.deletion_timestamp = Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
        k8s_openapi::jiff::Timestamp::UNIX_EPOCH,
    ));
    let clusters = vec![gone];
    let (ok, failed) = filter_clusters(&input(&p, &[]), &clusters);
    assert!(ok.is_empty() && failed.is_empty());
}

#[test]
fn filter_uses_observed_affinity_term_and_overflow() {
    let clusters = vec![
        serving(cluster("m1")),
        serving(cluster("m2")),
        serving(cluster("m3")),
    ];
    let p: Placement = yaml(
        "clusterAffinities: [{affinityName: primary, clusterNames: [m1], overflowAffinities: [{affinityName: burst, clusterNames: [m3]}]}, {affinityName: backup, clusterNames: [m2]}]",
    );
    let names = |term: &str, workload: bool| {
        let mut i = input(&p, &[]);
        i.observed_affinity = term;
        i.is_workload = workload;
        filter_clusters(&i, &clusters)
            .0
            .iter()
            .map(|c| c.name().to_string())
            .collect::<Vec<_>>()
    };
    assert_eq!(names("primary", true), vec!["m1", "m3"]);
    assert_eq!(names("primary", false), vec!["m1"]);
    assert_eq!(names("backup", true), vec!["m2"]);
    assert_eq!(affinity_terms_from(&p, ""), vec!["primary", "backup"]);
    assert_eq!(overflow_order(&clusters[0], &p, "primary"), 0);
    assert_eq!(overflow_order(&clusters[2], &p, "primary"), 1);
    assert_eq!(overflow_order(&clusters[1], &p, "primary"), 1000);
    assert_eq!(overflow_order(&clusters[1], &Placement::default(), ""), 0);
    assert_eq!(affinity_terms_from(&p, "backup"), vec!["backup"]);
}

#[test]
fn spread_field_requires_property() {
    let clusters = vec![
        serving(cluster_at("a", "p", "r1", &[])),
        serving(cluster("b")),
    ];
    let p: Placement = yaml(
        "spreadConstraints: [{spreadByField: region, minGroups: 1, maxGroups: 2}, {spreadByField: cluster, minGroups: 1, maxGroups: 2}]",
    );
    let (ok, failed) = filter_clusters(&input(&p, &[]), &clusters);
    assert_eq!(ok.len(), 1);
    assert_eq!(failed[0].reason, "cluster(s) did not have region property");
    let p: Placement = yaml(
        "spreadConstraints: [{spreadByField: zone, minGroups: 1}, {spreadByField: provider, minGroups: 1}]",
    );
    let (_, failed) = filter_clusters(&input(&p, &[]), &clusters);
    assert_eq!(
        failed.iter().map(|f| f.reason.as_str()).collect::<Vec<_>>(),
        vec![
            "cluster(s) did not have zones property",
            "cluster(s) did not have zones property"
        ]
    );
}

fn scored<'a>(cs: &'a [Cluster], avail: &[i64]) -> Vec<ScoredCluster<'a>> {
    cs.iter()
        .zip(avail)
        .map(|(c, a)| ScoredCluster {
            cluster: c,
            score: 0,
            overflow_order: 0,
            available_replicas: *a,
        })
        .collect()
}

fn names<'a>(v: &'a [ScoredCluster<'a>]) -> Vec<&'a str> {
    v.iter().map(|c| c.cluster.name()).collect()
}

#[test]
fn candidate_order() {
    let cs = vec![cluster("a"), cluster("b"), cluster("c"), cluster("d")];
    let mut list = scored(&cs, &[5, 9, 5, 1]);
    list[3].score = 100;
    list[1].overflow_order = 1;
    sort_candidates(&mut list);
    assert_eq!(names(&list), vec!["d", "a", "c", "b"]);
}

#[test]
fn spread_by_cluster_duplicated_takes_first_max_groups() {
    let cs = vec![cluster("a"), cluster("b"), cluster("c")];
    let p: Placement =
        yaml("spreadConstraints: [{spreadByField: cluster, minGroups: 1, maxGroups: 2}]");
    let got = select_best_clusters(&p, scored(&cs, &[3, 2, 1]), 5).unwrap();
    assert_eq!(names(&got), vec!["a", "b"]);
}

#[test]
fn spread_by_cluster_min_groups_fails() {
    let cs = vec![cluster("a")];
    let p: Placement =
        yaml("spreadConstraints: [{spreadByField: cluster, minGroups: 2, maxGroups: 3}]");
    assert_eq!(
        select_best_clusters(&p, scored(&cs, &[1]), 1).unwrap_err(),
        Error::TooFewClusters
    );
}

#[test]
fn spread_by_cluster_divided_swaps_in_capacity() {
    let cs = vec![cluster("a"), cluster("b"), cluster("c")];
    let p: Placement = yaml(
        "replicaScheduling: {replicaSchedulingType: Divided, replicaDivisionPreference: Aggregated}\nspreadConstraints: [{spreadByField: cluster, minGroups: 1, maxGroups: 2}]",
    );
    let mut list = scored(&cs, &[1, 2, 10]);
    list[0].score = 100;
    list[1].score = 100;
    let got = select_best_clusters(&p, list, 11).unwrap();
    // Sorted b (score 100, 2 available), a (score 100, 1), c: the last chosen
    // cluster (a) is swapped for the roomier c.
    assert_eq!(names(&got), vec!["b", "c"]);
    let mut list = scored(&cs, &[1, 2, 3]);
    list[0].score = 100;
    assert!(matches!(
        select_best_clusters(&p, list, 11),
        Err(Error::NotEnoughResource { count: 2 })
    ));
}

#[test]
fn spread_by_cluster_zero_max_groups_selects_nothing() {
    let cs = vec![cluster("a")];
    let p: Placement = yaml("spreadConstraints: [{spreadByField: cluster, minGroups: 0}]");
    assert!(
        select_best_clusters(&p, scored(&cs, &[1]), 1)
            .unwrap()
            .is_empty()
    );
}

#[test]
fn spread_ignored_for_static_weights() {
    let cs = vec![cluster("a"), cluster("b"), cluster("c")];
    let p: Placement = yaml(
        "replicaScheduling: {replicaSchedulingType: Divided, replicaDivisionPreference: Weighted}\nspreadConstraints: [{spreadByField: cluster, maxGroups: 1}]",
    );
    assert!(spread_constraints_ignored(&p));
    assert_eq!(
        select_best_clusters(&p, scored(&cs, &[1, 1, 1]), 3)
            .unwrap()
            .len(),
        3
    );
}

#[test]
fn spread_zone_only_is_unsupported() {
    let cs = vec![cluster_at("a", "p", "r", &["z"])];
    let p: Placement =
        yaml("spreadConstraints: [{spreadByField: zone, minGroups: 1, maxGroups: 1}]");
    assert_eq!(
        select_best_clusters(&p, scored(&cs, &[1]), 1).unwrap_err(),
        Error::Unsupported
    );
}

fn regional() -> Vec<Cluster> {
    vec![
        cluster_at("a1", "p", "r1", &[]),
        cluster_at("a2", "p", "r1", &[]),
        cluster_at("b1", "p", "r2", &[]),
        cluster_at("c1", "p", "r3", &[]),
        cluster_at("c2", "p", "r3", &[]),
        cluster_at("c3", "p", "r3", &[]),
    ]
}

#[test]
fn spread_by_region_duplicated() {
    let cs = regional();
    // Duplicated, 2 replicas: region score = 1000 * clusters that fit.
    let p: Placement = yaml(
        "spreadConstraints: [{spreadByField: region, minGroups: 2, maxGroups: 2}, {spreadByField: cluster, minGroups: 2, maxGroups: 4}]",
    );
    let got = select_best_clusters(&p, scored(&cs, &[5, 5, 5, 5, 5, 1]), 2).unwrap();
    // r3 (two fitting clusters) and r1 (two) beat r2 (one); one cluster from each
    // region first, then the best of the rest up to maxGroups 4.
    let mut n = names(&got);
    n.sort();
    assert_eq!(n, vec!["a1", "a2", "c1", "c2"]);
}

#[test]
fn spread_by_region_too_few_regions() {
    let cs = regional();
    let p: Placement = yaml(
        "spreadConstraints: [{spreadByField: region, minGroups: 4, maxGroups: 4}, {spreadByField: cluster, minGroups: 1, maxGroups: 4}]",
    );
    assert_eq!(
        select_best_clusters(&p, scored(&cs, &[1; 6]), 1).unwrap_err(),
        Error::TooFewGroups {
            field: "region".into()
        }
    );
}

#[test]
fn spread_by_region_needs_enough_clusters() {
    let cs = regional();
    // One region may hold at most 3 clusters; asking for 7 clusters from 2 regions is infeasible.
    let p: Placement = yaml(
        "spreadConstraints: [{spreadByField: region, minGroups: 1, maxGroups: 2}, {spreadByField: cluster, minGroups: 7, maxGroups: 8}]",
    );
    assert_eq!(
        select_best_clusters(&p, scored(&cs, &[1; 6]), 1).unwrap_err(),
        Error::TooFewClusters
    );
}

#[test]
fn select_groups_prefers_heavier_then_shorter_prefix() {
    let g = |name: &str, value: usize, weight: i64| Group {
        name: name.into(),
        value,
        weight,
    };
    let chosen = select_groups(
        vec![g("r1", 2, 2000), g("r2", 1, 1000), g("r3", 3, 3000)],
        1,
        2,
        2,
    );
    assert_eq!(
        chosen.iter().map(|g| g.name.as_str()).collect::<Vec<_>>(),
        vec!["r3"]
    );
    let chosen = select_groups(
        vec![g("r1", 2, 2000), g("r2", 1, 1000), g("r3", 3, 3000)],
        2,
        2,
        2,
    );
    assert_eq!(
        chosen.iter().map(|g| g.name.as_str()).collect::<Vec<_>>(),
        vec!["r3", "r1"]
    );
    assert!(select_groups(vec![g("r1", 1, 1)], 2, 2, 1).is_empty());
}
