//! Division cases re-expressed from Karmada's `webstermethod_test.go`,
//! `assignment_test.go` and `division_algorithm_test.go`, plus property tests.

use proptest::prelude::*;

use super::*;
use crate::cluster::Cluster;
use crate::policy::{
    ClusterAffinity, ClusterPreferences, ReplicaSchedulingStrategy, StaticClusterWeight,
};
use crate::testutil::cluster;

fn tc(list: &[(&str, i32)]) -> Vec<TargetCluster> {
    list.iter()
        .map(|(n, r)| TargetCluster::new(*n, *r))
        .collect()
}

fn votes(list: &[(&str, i64)]) -> Vec<(String, i64)> {
    list.iter().map(|(n, v)| (n.to_string(), *v)).collect()
}

fn seats(p: &[Party]) -> Vec<(String, i32)> {
    p.iter().map(|p| (p.name.clone(), p.seats)).collect()
}

fn s(list: &[(&str, i32)]) -> Vec<(String, i32)> {
    list.iter().map(|(n, r)| (n.to_string(), *r)).collect()
}

fn static_placement(weights: &[(&[&str], i64)]) -> Placement {
    Placement {
        replica_scheduling: Some(ReplicaSchedulingStrategy {
            replica_scheduling_type: "Divided".into(),
            replica_division_preference: "Weighted".into(),
            weight_preference: if weights.is_empty() {
                None
            } else {
                Some(ClusterPreferences {
                    static_weight_list: weights
                        .iter()
                        .map(|(names, w)| StaticClusterWeight {
                            target_cluster: ClusterAffinity {
                                cluster_names: names.iter().map(|n| n.to_string()).collect(),
                                ..Default::default()
                            },
                            weight: *w,
                        })
                        .collect(),
                    dynamic_weight: String::new(),
                })
            },
        }),
        ..Default::default()
    }
}

fn dynamic_placement(aggregated: bool) -> Placement {
    Placement {
        replica_scheduling: Some(ReplicaSchedulingStrategy {
            replica_scheduling_type: "Divided".into(),
            replica_division_preference: if aggregated { "Aggregated" } else { "Weighted" }.into(),
            weight_preference: (!aggregated).then(|| ClusterPreferences {
                static_weight_list: vec![],
                dynamic_weight: "AvailableReplicas".into(),
            }),
        }),
        ..Default::default()
    }
}

fn run(
    clusters: &[Cluster],
    avail: &[i32],
    placement: Option<&Placement>,
    replicas: i32,
    previous: &[TargetCluster],
    uid: &str,
) -> Result<Vec<TargetCluster>> {
    let candidates: Vec<Candidate<'_>> = clusters
        .iter()
        .zip(avail.iter().chain(std::iter::repeat(&0)))
        .map(|(c, a)| Candidate::new(c, *a))
        .collect();
    assign_replicas(
        &candidates,
        &DivisionInput {
            placement,
            replicas,
            has_replica_requirements: false,
            resource_uid: uid,
            previous,
            fresh: false,
            observed_affinity: "",
        },
    )
}

fn members(n: usize) -> Vec<Cluster> {
    (1..=n).map(|i| cluster(&format!("member{i}"))).collect()
}

// ---- Webster (webstermethod_test.go) ----

#[test]
fn webster_classic_rounds() {
    let v = votes(&[
        ("PartyA", 100000),
        ("PartyB", 80000),
        ("PartyC", 30000),
        ("PartyD", 20000),
    ]);
    let expected: [[i32; 4]; 8] = [
        [1, 0, 0, 0],
        [1, 1, 0, 0],
        [2, 1, 0, 0],
        [2, 1, 1, 0],
        [2, 2, 1, 0],
        [2, 2, 1, 1],
        [3, 2, 1, 1],
        [3, 3, 1, 1],
    ];
    for (round, want) in expected.iter().enumerate() {
        let got = allocate_webster_seats(round as i32 + 1, &v, &[], TieBreak::NameAscending);
        let got: Vec<i32> = got.iter().map(|p| p.seats).collect();
        assert_eq!(&got, want, "round {}", round + 1);
    }
}

#[test]
fn webster_empty_votes_is_empty() {
    assert!(allocate_webster_seats(1, &[], &[], TieBreak::NameAscending).is_empty());
}

#[test]
fn webster_example_alpha_beta_gamma() {
    let v = votes(&[("Alpha", 1200), ("Beta", 900), ("Gamma", 400)]);
    let got = allocate_webster_seats(4, &v, &[], TieBreak::NameAscending);
    assert_eq!(seats(&got), s(&[("Alpha", 2), ("Beta", 1), ("Gamma", 1)]));
}

#[test]
fn webster_initial_assignments_are_kept() {
    let v = votes(&[("A", 1), ("B", 1)]);
    let got = allocate_webster_seats(2, &v, &s(&[("A", 2)]), TieBreak::NameAscending);
    assert_eq!(seats(&got), s(&[("A", 2), ("B", 2)]));
}

#[test]
fn webster_party_only_in_initial_has_no_votes() {
    let v = votes(&[("A", 1)]);
    let got = allocate_webster_seats(3, &v, &s(&[("Z", 5)]), TieBreak::NameAscending);
    assert_eq!(seats(&got), s(&[("A", 3), ("Z", 5)]));
}

#[test]
fn webster_reference_examples() {
    let v = votes(&[("A", 170), ("B", 110), ("C", 60)]);
    assert_eq!(
        seats(&allocate_webster_seats(5, &v, &[], TieBreak::NameAscending)),
        s(&[("A", 2), ("B", 2), ("C", 1)])
    );
    assert_eq!(
        seats(&allocate_webster_seats(6, &v, &[], TieBreak::NameAscending)),
        s(&[("A", 3), ("B", 2), ("C", 1)])
    );
}

#[test]
fn tie_break_follows_uid_hash_parity() {
    assert_eq!(tie_break_by_uid(""), TieBreak::NameAscending);
    // FNV-1a-32 of "a" is 0xe40c292c (even), of "b" 0xe70c2de5 (odd).
    assert_eq!(fnv1a32(b"a"), 0xe40c_292c);
    assert_eq!(fnv1a32(b"b"), 0xe70c_2de5);
    assert_eq!(tie_break_by_uid("a"), TieBreak::NameAscending);
    assert_eq!(tie_break_by_uid("b"), TieBreak::NameDescending);
    let v = votes(&[("A", 1), ("B", 1)]);
    assert_eq!(
        seats(&allocate_webster_seats(5, &v, &[], tie_break_by_uid("a"))),
        s(&[("A", 3), ("B", 2)])
    );
    assert_eq!(
        seats(&allocate_webster_seats(5, &v, &[], tie_break_by_uid("b"))),
        s(&[("A", 2), ("B", 3)])
    );
}

#[test]
fn fnv_matches_known_vectors() {
    assert_eq!(fnv1a32(b""), 0x811c_9dc5);
    assert_eq!(fnv1a32(b"foobar"), 0xbf9c_f968);
}

// ---- Duplicated (assignByDuplicatedStrategy) ----

#[test]
fn duplicated_gives_everyone_all_replicas() {
    let cs = members(2);
    let p = Placement {
        replica_scheduling: Some(ReplicaSchedulingStrategy {
            replica_scheduling_type: "Duplicated".into(),
            ..Default::default()
        }),
        ..Default::default()
    };
    assert_eq!(
        run(&cs, &[], Some(&p), 2, &[], "").unwrap(),
        tc(&[("member1", 2), ("member2", 2)])
    );
}

#[test]
fn duplicated_with_no_clusters_is_empty() {
    assert_eq!(run(&[], &[], None, 2, &[], "").unwrap(), vec![]);
}

#[test]
fn omitted_replica_scheduling_is_duplicated() {
    let cs = members(3);
    assert_eq!(
        run(&cs, &[], None, 3, &[], "").unwrap(),
        tc(&[("member1", 3), ("member2", 3), ("member3", 3)])
    );
}

#[test]
fn non_workload_gets_every_cluster_without_replicas() {
    let cs = members(2);
    let p = static_placement(&[(&["member1"], 1)]);
    assert_eq!(
        run(&cs, &[], Some(&p), 0, &[], "").unwrap(),
        tc(&[("member1", 0), ("member2", 0)])
    );
}

// ---- Static weights (Test_assignByStaticWeightStrategy) ----

#[test]
fn static_12_weight_3_2_1() {
    let cs = members(3);
    let p = static_placement(&[(&["member1"], 3), (&["member2"], 2), (&["member3"], 1)]);
    assert_eq!(
        run(&cs, &[], Some(&p), 12, &[], "").unwrap(),
        tc(&[("member1", 6), ("member2", 4), ("member3", 2)])
    );
}

#[test]
fn static_12_default_weight() {
    let cs = members(3);
    let p = static_placement(&[]);
    assert_eq!(
        run(&cs, &[], Some(&p), 12, &[], "").unwrap(),
        tc(&[("member1", 4), ("member2", 4), ("member3", 4)])
    );
}

#[test]
fn static_13_weight_3_2_1() {
    let cs = members(3);
    let p = static_placement(&[(&["member1"], 3), (&["member2"], 2), (&["member3"], 1)]);
    assert_eq!(
        run(&cs, &[], Some(&p), 13, &[], "").unwrap(),
        tc(&[("member1", 7), ("member2", 4), ("member3", 2)])
    );
}

#[test]
fn static_14_weight_3_2_1() {
    let cs = members(3);
    let p = static_placement(&[(&["member1"], 3), (&["member2"], 2), (&["member3"], 1)]);
    assert_eq!(
        run(&cs, &[], Some(&p), 14, &[], "").unwrap(),
        tc(&[("member1", 7), ("member2", 5), ("member3", 2)])
    );
}

#[test]
fn static_cluster_without_weight_is_ignored() {
    let cs = members(2);
    let p = static_placement(&[(&["member1"], 1)]);
    assert_eq!(
        run(&cs, &[], Some(&p), 2, &[], "").unwrap(),
        tc(&[("member1", 2)])
    );
}

#[test]
fn static_cluster_with_multiple_weights_takes_max() {
    let cs = members(2);
    let p = static_placement(&[(&["member1"], 1), (&["member2"], 1), (&["member1"], 2)]);
    assert_eq!(
        run(&cs, &[], Some(&p), 3, &[], "").unwrap(),
        tc(&[("member1", 2), ("member2", 1)])
    );
}

#[test]
fn static_nginx_sample_one_each() {
    let cs = members(2);
    let p = static_placement(&[(&["member1"], 1), (&["member2"], 1)]);
    for uid in ["", "a", "b"] {
        assert_eq!(
            run(&cs, &[], Some(&p), 2, &[], uid).unwrap(),
            tc(&[("member1", 1), ("member2", 1)])
        );
    }
}

#[test]
fn static_tie_goes_by_uid() {
    let cs = members(2);
    let p = static_placement(&[(&["member1"], 1), (&["member2"], 1)]);
    assert_eq!(
        run(&cs, &[], Some(&p), 5, &[], "a").unwrap(),
        tc(&[("member1", 3), ("member2", 2)])
    );
    assert_eq!(
        run(&cs, &[], Some(&p), 5, &[], "b").unwrap(),
        tc(&[("member1", 2), ("member2", 3)])
    );
}

#[test]
fn static_ignores_previous_result() {
    let cs = members(2);
    let p = static_placement(&[(&["member1"], 1), (&["member2"], 1)]);
    let prev = tc(&[("member1", 9)]);
    assert_eq!(
        run(&cs, &[], Some(&p), 4, &prev, "").unwrap(),
        tc(&[("member1", 2), ("member2", 2)])
    );
}

#[test]
fn static_weight_by_label_selector() {
    let cs = vec![
        crate::testutil::cluster_with_labels("a", &[("tier", "gold")]),
        crate::testutil::cluster_with_labels("b", &[("tier", "silver")]),
    ];
    let mut p = static_placement(&[]);
    let sel: ClusterAffinity = crate::testutil::yaml("labelSelector: {matchLabels: {tier: gold}}");
    p.replica_scheduling.as_mut().unwrap().weight_preference = Some(ClusterPreferences {
        static_weight_list: vec![
            StaticClusterWeight {
                target_cluster: sel,
                weight: 3,
            },
            StaticClusterWeight {
                target_cluster: ClusterAffinity {
                    cluster_names: vec!["b".into()],
                    ..Default::default()
                },
                weight: 1,
            },
        ],
        dynamic_weight: String::new(),
    });
    assert_eq!(
        run(&cs, &[], Some(&p), 8, &[], "").unwrap(),
        tc(&[("a", 6), ("b", 2)])
    );
}

#[test]
fn empty_replica_scheduling_is_divided_equal_weights() {
    let cs = members(3);
    let p: Placement = crate::testutil::yaml("replicaScheduling: {}");
    assert_eq!(p.replica_strategy(), ReplicaStrategy::StaticWeight);
    assert_eq!(
        run(&cs, &[], Some(&p), 3, &[], "").unwrap(),
        tc(&[("member1", 1), ("member2", 1), ("member3", 1)])
    );
}

// ---- Dynamic (division_algorithm_test.go / assignment_test.go) ----

#[test]
fn dynamic_first_schedule_6_8_10() {
    let cs = members(3);
    let p = dynamic_placement(false);
    assert_eq!(
        run(&cs, &[6, 8, 10], Some(&p), 12, &[], "").unwrap(),
        tc(&[("member1", 3), ("member2", 4), ("member3", 5)])
    );
}

#[test]
fn dynamic_first_schedule_8_8_10() {
    let cs = members(3);
    let p = dynamic_placement(false);
    assert_eq!(
        run(&cs, &[8, 8, 10], Some(&p), 12, &[], "").unwrap(),
        tc(&[("member1", 4), ("member2", 4), ("member3", 4)])
    );
}

#[test]
fn dynamic_weights_18_12_6() {
    let cs = members(3);
    let p = dynamic_placement(false);
    assert_eq!(
        run(&cs, &[18, 12, 6], Some(&p), 12, &[], "").unwrap(),
        tc(&[("member1", 6), ("member2", 4), ("member3", 2)])
    );
}

#[test]
fn dynamic_weights_20_12_6() {
    let cs = members(3);
    let p = dynamic_placement(false);
    assert_eq!(
        run(&cs, &[20, 12, 6], Some(&p), 12, &[], "").unwrap(),
        tc(&[("member1", 6), ("member2", 4), ("member3", 2)])
    );
}

#[test]
fn dynamic_weights_6_12_6() {
    let cs = members(3);
    let p = dynamic_placement(false);
    assert_eq!(
        run(&cs, &[6, 12, 6], Some(&p), 12, &[], "").unwrap(),
        tc(&[("member1", 3), ("member2", 6), ("member3", 3)])
    );
}

#[test]
fn dynamic_not_enough_is_unschedulable() {
    let cs = members(3);
    let p = dynamic_placement(false);
    let err = run(&cs, &[3, 3, 3], Some(&p), 12, &[], "").unwrap_err();
    assert_eq!(
        err.to_string(),
        "Clusters available replicas 9 are not enough to schedule."
    );
}

#[test]
fn dynamic_scale_down_12_to_6() {
    let cs = members(3);
    let p = dynamic_placement(false);
    let prev = tc(&[("member1", 2), ("member2", 4), ("member3", 6)]);
    assert_eq!(
        run(&cs, &[1, 1, 1], Some(&p), 6, &prev, "").unwrap(),
        tc(&[("member1", 1), ("member2", 2), ("member3", 3)])
    );
}

#[test]
fn dynamic_scale_up_12_to_24() {
    let cs = members(3);
    let p = dynamic_placement(false);
    let prev = tc(&[("member1", 2), ("member2", 4), ("member3", 6)]);
    assert_eq!(
        run(&cs, &[10, 10, 10], Some(&p), 24, &prev, "").unwrap(),
        tc(&[("member1", 6), ("member2", 8), ("member3", 10)])
    );
}

#[test]
fn dynamic_scale_up_not_enough() {
    let cs = members(3);
    let p = dynamic_placement(false);
    let prev = tc(&[("member1", 2), ("member2", 4), ("member3", 6)]);
    assert!(run(&cs, &[1, 1, 1], Some(&p), 24, &prev, "").is_err());
}

#[test]
fn dynamic_scale_up_with_cluster_replaced() {
    let cs = members(2);
    let p = dynamic_placement(false);
    let prev = tc(&[("member1", 6), ("member3", 6)]);
    assert_eq!(
        run(&cs, &[3, 3], Some(&p), 12, &prev, "").unwrap(),
        tc(&[("member1", 9), ("member2", 3)])
    );
}

#[test]
fn dynamic_steady_keeps_result() {
    let cs = members(3);
    let p = dynamic_placement(false);
    let prev = tc(&[("member1", 5), ("member2", 7)]);
    assert_eq!(
        run(&cs, &[100, 100, 100], Some(&p), 12, &prev, "").unwrap(),
        prev
    );
}

#[test]
fn dynamic_fresh_redivides_with_assigned_added() {
    let cs = members(2);
    let p = dynamic_placement(false);
    let prev = tc(&[("member1", 4)]);
    let candidates: Vec<Candidate<'_>> = cs
        .iter()
        .zip([4, 8])
        .map(|(c, a)| Candidate::new(c, a))
        .collect();
    let got = assign_replicas(
        &candidates,
        &DivisionInput {
            placement: Some(&p),
            replicas: 8,
            resource_uid: "",
            previous: &prev,
            fresh: true,
            ..Default::default()
        },
    )
    .unwrap();
    assert_eq!(got, tc(&[("member1", 4), ("member2", 4)]));
}

// ---- Aggregated ----

#[test]
fn aggregated_first_schedule_6_8_10() {
    let cs = members(3);
    let p = dynamic_placement(true);
    assert_eq!(
        run(&cs, &[6, 8, 10], Some(&p), 12, &[], "").unwrap(),
        tc(&[("member2", 5), ("member3", 7)])
    );
}

#[test]
fn aggregated_first_schedule_12_8_10() {
    let cs = members(3);
    let p = dynamic_placement(true);
    assert_eq!(
        run(&cs, &[12, 8, 10], Some(&p), 12, &[], "").unwrap(),
        tc(&[("member1", 12)])
    );
}

#[test]
fn aggregated_not_enough() {
    let cs = members(3);
    let p = dynamic_placement(true);
    assert!(run(&cs, &[3, 3, 3], Some(&p), 12, &[], "").is_err());
}

#[test]
fn aggregated_12_6_6() {
    let cs = members(3);
    let p = dynamic_placement(true);
    assert_eq!(
        run(&cs, &[6, 12, 6], Some(&p), 12, &[], "").unwrap(),
        tc(&[("member2", 12)])
    );
}

#[test]
fn aggregated_6_6_6() {
    let cs = members(3);
    let p = dynamic_placement(true);
    assert_eq!(
        run(&cs, &[6, 6, 6], Some(&p), 12, &[], "").unwrap(),
        tc(&[("member1", 6), ("member2", 6)])
    );
}

#[test]
fn aggregated_scale_down_12_to_6() {
    let cs = members(3);
    let p = dynamic_placement(true);
    let prev = tc(&[("member1", 4), ("member2", 8)]);
    assert_eq!(
        run(&cs, &[1, 1, 1], Some(&p), 6, &prev, "").unwrap(),
        tc(&[("member2", 6)])
    );
}

#[test]
fn aggregated_scale_down_12_to_8() {
    let cs = members(2);
    let p = dynamic_placement(true);
    let prev = tc(&[("member1", 4), ("member2", 8)]);
    assert_eq!(
        run(&cs, &[100, 100], Some(&p), 8, &prev, "").unwrap(),
        tc(&[("member2", 8)])
    );
}

#[test]
fn aggregated_scale_up_4_6_8() {
    let cs = members(3);
    let p = dynamic_placement(true);
    let prev = tc(&[("member1", 4), ("member2", 8)]);
    assert_eq!(
        run(&cs, &[4, 6, 8], Some(&p), 24, &prev, "").unwrap(),
        tc(&[("member1", 7), ("member2", 12), ("member3", 5)])
    );
}

#[test]
fn aggregated_scale_up_6_6_20() {
    let cs = members(3);
    let p = dynamic_placement(true);
    let prev = tc(&[("member1", 4), ("member2", 8)]);
    assert_eq!(
        run(&cs, &[6, 6, 20], Some(&p), 24, &prev, "").unwrap(),
        tc(&[("member1", 10), ("member2", 14)])
    );
}

#[test]
fn aggregated_scale_up_not_enough() {
    let cs = members(3);
    let p = dynamic_placement(true);
    let prev = tc(&[("member1", 4), ("member2", 8)]);
    assert!(run(&cs, &[1, 1, 1], Some(&p), 24, &prev, "").is_err());
}

#[test]
fn aggregated_scale_up_with_cluster_replaced() {
    let cs = vec![cluster("member1"), cluster("member3"), cluster("member4")];
    let p = dynamic_placement(true);
    let prev = tc(&[("member1", 4), ("member2", 8)]);
    assert_eq!(
        run(&cs, &[4, 8, 12], Some(&p), 24, &prev, "").unwrap(),
        tc(&[("member1", 7), ("member3", 7), ("member4", 10)])
    );
}

#[test]
fn merge_adds_old_onto_new() {
    let got = merge_target_clusters(&tc(&[("a", 1), ("c", 2)]), tc(&[("a", 2), ("b", 3)]));
    assert_eq!(got, tc(&[("a", 3), ("b", 3), ("c", 2)]));
    assert_eq!(merge_target_clusters(&[], tc(&[("a", 1)])), tc(&[("a", 1)]));
    assert_eq!(
        merge_target_clusters(&tc(&[("a", 1)]), vec![]),
        tc(&[("a", 1)])
    );
}

// ---- Properties ----

fn arb_weights() -> impl Strategy<Value = Vec<i64>> {
    prop::collection::vec(0i64..50, 1..7)
}

fn names(n: usize) -> Vec<String> {
    (0..n).map(|i| format!("c{i}")).collect()
}

/// Sainte-Laguë: moving one seat from i to j never makes `max_j v_j/(2s_j+1) <= min_i v_i/(2s_i-1)` false,
/// i.e. for all i with s_i > 0 and all j: v_j*(2s_i-1) <= v_i*(2s_j+1).
fn webster_divisor_condition(v: &[i64], s: &[i32]) -> bool {
    for i in 0..v.len() {
        if s[i] == 0 {
            continue;
        }
        for j in 0..v.len() {
            if i == j {
                continue;
            }
            let lhs = i128::from(v[j]) * (2 * i128::from(s[i]) - 1);
            let rhs = i128::from(v[i]) * (2 * i128::from(s[j]) + 1);
            if lhs > rhs {
                return false;
            }
        }
    }
    true
}

proptest! {
    #[test]
    fn prop_static_sums_and_is_deterministic(w in arb_weights(), n in 0i32..200, uid in "[a-f0-9-]{0,12}") {
        let clusters: Vec<Cluster> = names(w.len()).iter().map(|n| cluster(n)).collect();
        let list: Vec<(Vec<&str>, i64)> = clusters.iter().zip(&w).map(|(c, w)| (vec![c.name()], *w)).collect();
        let refs: Vec<(&[&str], i64)> = list.iter().map(|(n, w)| (n.as_slice(), *w)).collect();
        let p = static_placement(&refs);
        let a = run(&clusters, &[], Some(&p), n, &[], &uid).unwrap();
        let b = run(&clusters, &[], Some(&p), n, &[], &uid).unwrap();
        prop_assert_eq!(&a, &b);
        if n > 0 {
            prop_assert_eq!(a.iter().map(|t| t.replicas).sum::<i32>(), n);
            let all_zero = w.iter().all(|w| *w == 0);
            for t in &a {
                let idx = clusters.iter().position(|c| c.name() == t.name).unwrap();
                prop_assert!(all_zero || w[idx] > 0, "replicas on a zero-weight cluster");
            }
        }
    }

    #[test]
    fn prop_static_house_monotone(w in prop::collection::vec(1i64..50, 1..7), n in 0i32..150, uid in "[a-f0-9]{0,8}") {
        let v = names(w.len()).into_iter().zip(w.iter().copied()).collect::<Vec<_>>();
        let a = divide_by_weights(n, &v, &uid);
        let b = divide_by_weights(n + 1, &v, &uid);
        for (x, y) in a.iter().zip(&b) {
            prop_assert_eq!(&x.name, &y.name);
            prop_assert!(y.replicas >= x.replicas);
        }
        prop_assert_eq!(b.iter().map(|t| t.replicas).sum::<i32>(), n + 1);
    }

    #[test]
    fn prop_static_webster_divisor_condition(w in prop::collection::vec(1i64..1000, 1..8), n in 0i32..300, uid in "[a-f0-9]{0,8}") {
        let v = names(w.len()).into_iter().zip(w.iter().copied()).collect::<Vec<_>>();
        let got = divide_by_weights(n, &v, &uid);
        let s: Vec<i32> = got.iter().map(|t| t.replicas).collect();
        prop_assert!(webster_divisor_condition(&w, &s), "weights {:?} seats {:?}", w, s);
    }

    #[test]
    fn prop_never_assigns_filtered_out_clusters(w in arb_weights(), n in 1i32..100, drop in 0usize..7) {
        let all: Vec<Cluster> = names(w.len()).iter().map(|n| cluster(n)).collect();
        let kept: Vec<Cluster> = all.iter().enumerate().filter(|(i, _)| *i != drop).map(|(_, c)| c.clone()).collect();
        let avail: Vec<i32> = w.iter().enumerate().filter(|(i, _)| *i != drop).map(|(_, w)| *w as i32 * 10).collect();
        let dropped = all.get(drop).map(|c| c.name().to_string());
        for p in [static_placement(&[]), dynamic_placement(false), dynamic_placement(true)] {
            if let Ok(got) = run(&kept, &avail, Some(&p), n, &[], "") {
                if kept.is_empty() {
                    prop_assert!(got.is_empty());
                    continue;
                }
                prop_assert_eq!(got.iter().map(|t| t.replicas).sum::<i32>(), n);
                if let Some(d) = &dropped {
                    prop_assert!(!got.iter().any(|t| &t.name == d));
                }
            }
        }
    }

    #[test]
    fn prop_dynamic_sums_and_scale_up_keeps_previous(avail in prop::collection::vec(0i32..40, 1..6), n in 1i32..60, up in 0i32..30, aggregated in any::<bool>()) {
        let clusters: Vec<Cluster> = names(avail.len()).iter().map(|n| cluster(n)).collect();
        let p = dynamic_placement(aggregated);
        let total: i32 = avail.iter().sum();
        match run(&clusters, &avail, Some(&p), n, &[], "") {
            Err(_) => prop_assert!(total < n),
            Ok(first) => {
                prop_assert_eq!(first.iter().map(|t| t.replicas).sum::<i32>(), n);
                let again = run(&clusters, &avail, Some(&p), n, &[], "").unwrap();
                prop_assert_eq!(&first, &again);
                if let Ok(second) = run(&clusters, &avail, Some(&p), n + up, &first, "") {
                    prop_assert_eq!(second.iter().map(|t| t.replicas).sum::<i32>(), n + up);
                    for t in &first {
                        let now = second.iter().find(|x| x.name == t.name).map(|x| x.replicas).unwrap_or(0);
                        prop_assert!(now >= t.replicas);
                    }
                }
            }
        }
    }

    #[test]
    fn prop_duplicated_everyone_gets_all(k in 0usize..6, n in 1i32..50) {
        let clusters: Vec<Cluster> = names(k).iter().map(|n| cluster(n)).collect();
        let got = run(&clusters, &[], None, n, &[], "").unwrap();
        prop_assert_eq!(got.len(), k);
        prop_assert!(got.iter().all(|t| t.replicas == n));
    }
}

// ---- Overflow affinities (Karmada 1.19 assignWorkloadReplicas) ----

fn overflow_placement(division: &str) -> Placement {
    crate::testutil::yaml(&format!(
        "clusterAffinities: [{{affinityName: primary, clusterNames: [member1, member2], overflowAffinities: [{{affinityName: burst, clusterNames: [member3]}}]}}]\nreplicaScheduling: {division}"
    ))
}

fn run_tiers(
    p: &Placement,
    avail: &[i32],
    tiers: &[i32],
    replicas: i32,
    observed: &str,
) -> Result<Vec<TargetCluster>> {
    let cs = members(avail.len());
    let candidates: Vec<Candidate<'_>> = cs
        .iter()
        .zip(avail)
        .zip(tiers)
        .map(|((c, a), t)| Candidate {
            cluster: c,
            available_replicas: *a,
            overflow_order: *t,
        })
        .collect();
    assign_replicas(
        &candidates,
        &DivisionInput {
            placement: Some(p),
            replicas,
            observed_affinity: observed,
            ..Default::default()
        },
    )
}

#[test]
fn overflow_fills_primary_tier_first() {
    let p = overflow_placement(
        "{replicaSchedulingType: Divided, replicaDivisionPreference: Weighted, weightPreference: {dynamicWeight: AvailableReplicas}}",
    );
    // Primary holds 4+4; the remaining 2 go to the burst tier.
    assert_eq!(
        run_tiers(&p, &[4, 4, 10], &[0, 0, 1], 10, "primary").unwrap(),
        tc(&[("member1", 4), ("member2", 4), ("member3", 2)])
    );
    // Everything fits in the primary tier.
    assert_eq!(
        run_tiers(&p, &[4, 4, 10], &[0, 0, 1], 6, "primary").unwrap(),
        tc(&[("member1", 3), ("member2", 3)])
    );
    // Not enough even with overflow.
    assert_eq!(
        run_tiers(&p, &[4, 4, 1], &[0, 0, 1], 10, "primary").unwrap_err(),
        Error::OverflowUnschedulable
    );
}

#[test]
fn overflow_needs_the_observed_term() {
    let p = overflow_placement(
        "{replicaSchedulingType: Divided, replicaDivisionPreference: Aggregated}",
    );
    assert!(overflow_enabled(&p, "primary"));
    assert!(!overflow_enabled(&p, ""));
    // Without the observed term the candidates are divided as one group.
    assert_eq!(
        run_tiers(&p, &[4, 4, 10], &[0, 0, 1], 10, "").unwrap(),
        tc(&[("member3", 10)])
    );
    assert_eq!(
        run_tiers(&p, &[4, 4, 10], &[0, 0, 1], 10, "primary").unwrap(),
        tc(&[("member1", 4), ("member2", 4), ("member3", 2)])
    );
}

// ---- Job completions (pkg/controllers/binding/common.go) ----

#[test]
fn job_completions_follow_replicas() {
    let divided = static_placement(&[]);
    assert!(need_revise_job_completions(3, Some(&divided)));
    assert!(!need_revise_job_completions(0, Some(&divided)));
    assert!(!need_revise_job_completions(3, None));
    let dup = Placement {
        replica_scheduling: Some(ReplicaSchedulingStrategy {
            replica_scheduling_type: "Duplicated".into(),
            ..Default::default()
        }),
        ..Default::default()
    };
    assert!(!need_revise_job_completions(3, Some(&dup)));
    let clusters = tc(&[("member1", 2), ("member2", 1)]);
    assert_eq!(
        divide_job_completions(9, &clusters, ""),
        tc(&[("member1", 6), ("member2", 3)])
    );
    assert!(divide_job_completions(9, &tc(&[("member1", 0)]), "").is_empty());
}
