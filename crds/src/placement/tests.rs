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

#[test]
fn filter_reports_karmada_reasons() {
    let mut tainted = cluster("m2");
    tainted.spec.taints = vec![taint("cluster.karmada.io/not-ready", "", "NoSchedule")];
    let clusters = vec![cluster("m1"), tainted, cluster("m3")];
    let p: Placement = yaml("clusterAffinity: {clusterNames: [m1, m2]}");
    let (ok, failed) = filter_clusters(&p, "", &clusters, &[]);
    assert_eq!(ok.iter().map(|c| c.name()).collect::<Vec<_>>(), vec!["m1"]);
    assert_eq!(
        failed[0].reason,
        "cluster(s) had untolerated taint {cluster.karmada.io/not-ready=:NoSchedule}"
    );
    assert_eq!(
        failed[1].reason,
        "cluster(s) did not match the placement cluster affinity constraint"
    );
    // A cluster already scheduled bypasses the taint filter.
    let (ok, _) = filter_clusters(&p, "", &clusters, &["m2".to_string()]);
    assert_eq!(ok.len(), 2);
}

#[test]
fn filter_uses_observed_affinity_term() {
    let clusters = vec![cluster("m1"), cluster("m2")];
    let p: Placement = yaml(
        "clusterAffinities: [{affinityName: primary, clusterNames: [m1]}, {affinityName: backup, clusterNames: [m2]}]",
    );
    let names = |term: &str| {
        filter_clusters(&p, term, &clusters, &[])
            .0
            .iter()
            .map(|c| c.name().to_string())
            .collect::<Vec<_>>()
    };
    assert_eq!(names(""), vec!["m1"]);
    assert_eq!(names("backup"), vec!["m2"]);
}

#[test]
fn spread_field_requires_property() {
    let clusters = vec![cluster_at("a", "p", "r1", &[]), cluster("b")];
    let p: Placement = yaml(
        "spreadConstraints: [{spreadByField: region, minGroups: 1, maxGroups: 2}, {spreadByField: cluster, minGroups: 1, maxGroups: 2}]",
    );
    let (ok, failed) = filter_clusters(&p, "", &clusters, &[]);
    assert_eq!(ok.len(), 1);
    assert_eq!(failed[0].reason, "cluster(s) did not have region property");
}

fn cands<'a>(cs: &'a [Cluster], avail: &[i32]) -> Vec<Candidate<'a>> {
    cs.iter()
        .zip(avail)
        .map(|(c, a)| Candidate {
            cluster: c,
            available_replicas: *a,
        })
        .collect()
}

#[test]
fn spread_by_cluster_duplicated_takes_first_max_groups() {
    let cs = vec![cluster("a"), cluster("b"), cluster("c")];
    let p: Placement =
        yaml("spreadConstraints: [{spreadByField: cluster, minGroups: 1, maxGroups: 2}]");
    let got = select_best_clusters(&p, cands(&cs, &[1, 2, 3]), 5).unwrap();
    assert_eq!(
        got.iter().map(|c| c.cluster.name()).collect::<Vec<_>>(),
        vec!["a", "b"]
    );
}

#[test]
fn spread_by_cluster_min_groups_fails() {
    let cs = vec![cluster("a")];
    let p: Placement =
        yaml("spreadConstraints: [{spreadByField: cluster, minGroups: 2, maxGroups: 3}]");
    assert_eq!(
        select_best_clusters(&p, cands(&cs, &[1]), 1).unwrap_err(),
        Error::TooFewClusters
    );
}

#[test]
fn spread_by_cluster_divided_swaps_in_capacity() {
    let cs = vec![cluster("a"), cluster("b"), cluster("c")];
    let p: Placement = yaml(
        "replicaScheduling: {replicaSchedulingType: Divided, replicaDivisionPreference: Aggregated}\nspreadConstraints: [{spreadByField: cluster, minGroups: 1, maxGroups: 2}]",
    );
    let got = select_best_clusters(&p, cands(&cs, &[1, 2, 10]), 11).unwrap();
    let mut names: Vec<&str> = got.iter().map(|c| c.cluster.name()).collect();
    names.sort();
    assert_eq!(names, vec!["a", "c"]);
    assert!(matches!(
        select_best_clusters(&p, cands(&cs, &[1, 2, 3]), 11),
        Err(Error::NotEnoughResource { count: 2 })
    ));
}

#[test]
fn spread_ignored_for_static_weights() {
    let cs = vec![cluster("a"), cluster("b"), cluster("c")];
    let p: Placement = yaml(
        "replicaScheduling: {replicaSchedulingType: Divided, replicaDivisionPreference: Weighted}\nspreadConstraints: [{spreadByField: cluster, maxGroups: 1}]",
    );
    assert!(spread_constraints_ignored(&p));
    assert_eq!(
        select_best_clusters(&p, cands(&cs, &[1, 1, 1]), 3)
            .unwrap()
            .len(),
        3
    );
}

#[test]
fn spread_by_region_chooses_groups() {
    let cs = vec![
        cluster_at("a", "p", "r1", &[]),
        cluster_at("b", "p", "r2", &[]),
        cluster_at("c", "p", "r2", &[]),
    ];
    let p: Placement = yaml(
        "spreadConstraints: [{spreadByField: region, minGroups: 1, maxGroups: 1}, {spreadByField: cluster, minGroups: 1, maxGroups: 5}]",
    );
    let got = select_best_clusters(&p, cands(&cs, &[5, 3, 3]), 1).unwrap();
    assert_eq!(
        got.iter().map(|c| c.cluster.name()).collect::<Vec<_>>(),
        vec!["b", "c"]
    );
    let p: Placement = yaml(
        "spreadConstraints: [{spreadByField: region, minGroups: 3, maxGroups: 3}, {spreadByField: cluster, minGroups: 1, maxGroups: 5}]",
    );
    assert!(select_best_clusters(&p, cands(&cs, &[5, 3, 3]), 1).is_err());
}
