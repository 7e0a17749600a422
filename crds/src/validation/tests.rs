//! Validation cases re-expressed from Karmada's `validation_test.go`,
//! webhook validating tests and `pkg/apis/cluster/validation/validation_test.go`.
//! Every rejecting case asserts the field path and the message.

use super::*;
use crate::testutil::yaml;

fn pp_spec(placement_and_more: &str) -> PropagationSpec {
    yaml(&format!(
        "resourceSelectors: [{{apiVersion: apps/v1, kind: Deployment, name: nginx, namespace: default}}]\n{placement_and_more}"
    ))
}

/// Asserts exactly one error with this field and message (`FieldError::to_string`).
fn one(errs: Vec<FieldError>, field: &str, message_contains: &str) {
    assert_eq!(errs.len(), 1, "expected one error, got {errs:?}");
    assert_eq!(errs[0].field, field, "{errs:?}");
    assert!(
        errs[0].message().contains(message_contains),
        "message {:?} lacks {message_contains:?}",
        errs[0].message()
    );
}

fn spec_errs(s: &str) -> Vec<FieldError> {
    validate_propagation_spec(&pp_spec(s), "default")
}

#[test]
fn valid_spec_has_no_errors() {
    let errs = spec_errs(
        "placement:\n  clusterAffinity: {clusterNames: [m1], fieldSelector: {matchExpressions: [{key: region, operator: In, values: [r1]}]}}\n  spreadConstraints: [{spreadByField: region, minGroups: 1, maxGroups: 2}, {spreadByField: cluster, minGroups: 1, maxGroups: 3}]",
    );
    assert!(errs.is_empty(), "{errs:?}");
}

#[test]
fn field_selector_unsupported_key() {
    let errs = spec_errs(
        "placement: {clusterAffinity: {fieldSelector: {matchExpressions: [{key: foo, operator: In, values: [a]}]}}}",
    );
    one(
        errs.clone(),
        "spec.placement.clusterAffinity.fieldSelector",
        "unsupported key \"foo\", must be provider, region, or zone",
    );
    assert!(
        errs[0]
            .to_string()
            .starts_with("spec.placement.clusterAffinity.fieldSelector: Invalid value: ")
    );
}

#[test]
fn field_selector_unsupported_operator() {
    let errs = spec_errs(
        "placement: {clusterAffinity: {fieldSelector: {matchExpressions: [{key: provider, operator: Exists}]}}}",
    );
    one(
        errs,
        "spec.placement.clusterAffinity.fieldSelector",
        "unsupported operator \"Exists\", must be In or NotIn",
    );
}

#[test]
fn affinity_and_affinities_cannot_coexist() {
    let errs = spec_errs(
        "placement: {clusterAffinity: {clusterNames: [m1]}, clusterAffinities: [{affinityName: group1, clusterNames: [m1]}]}",
    );
    one(
        errs,
        "spec.placement",
        "clusterAffinities cannot co-exist with clusterAffinity",
    );
}

#[test]
fn affinity_names_must_be_unique() {
    let errs = spec_errs(
        "placement: {clusterAffinities: [{affinityName: group1, clusterNames: [m1]}, {affinityName: group1, clusterNames: [m2]}]}",
    );
    one(
        errs,
        "spec.placement.clusterAffinities",
        "each affinity term in a policy must have a unique name",
    );
}

#[test]
fn affinity_name_must_be_label_key() {
    let errs =
        spec_errs("placement: {clusterAffinities: [{affinityName: '-bad', clusterNames: [m1]}]}");
    one(
        errs,
        "spec.placement.clusterAffinities[0]",
        "name part must consist of alphanumeric characters",
    );
}

#[test]
fn affinities_field_selector_key_and_operator() {
    let errs = spec_errs(
        "placement: {clusterAffinities: [{affinityName: g, fieldSelector: {matchExpressions: [{key: foo, operator: In, values: [a]}]}}]}",
    );
    one(
        errs,
        "spec.placement.clusterAffinities[0].fieldSelector",
        "unsupported key \"foo\"",
    );
    let errs = spec_errs(
        "placement: {clusterAffinities: [{affinityName: g, fieldSelector: {matchExpressions: [{key: zone, operator: Exists}]}}]}",
    );
    one(
        errs,
        "spec.placement.clusterAffinities[0].fieldSelector",
        "unsupported operator \"Exists\"",
    );
}

#[test]
fn spread_by_label_with_field() {
    let errs = spec_errs(
        "placement: {spreadConstraints: [{spreadByField: cluster, spreadByLabel: foo, minGroups: 1}]}",
    );
    one(
        errs,
        "spec.placement.spreadConstraints[0]",
        "spreadByLabel should not co-exist with spreadByField",
    );
}

#[test]
fn spread_max_lower_than_min() {
    let errs = spec_errs(
        "placement: {spreadConstraints: [{spreadByField: cluster, maxGroups: 1, minGroups: 3}]}",
    );
    one(
        errs,
        "spec.placement.spreadConstraints[0]",
        "maxGroups lower than minGroups is not allowed",
    );
}

#[test]
fn spread_max_lower_than_zero() {
    let errs = spec_errs(
        "placement: {spreadConstraints: [{spreadByField: cluster, maxGroups: -1, minGroups: 0}]}",
    );
    one(
        errs,
        "spec.placement.spreadConstraints[0]",
        "maxGroups lower than 0 is not allowed",
    );
}

#[test]
fn spread_min_lower_than_zero() {
    let errs = spec_errs(
        "placement: {spreadConstraints: [{spreadByField: cluster, maxGroups: 0, minGroups: -3}]}",
    );
    one(
        errs,
        "spec.placement.spreadConstraints[0]",
        "minGroups lower than 0 is not allowed",
    );
}

#[test]
fn spread_two_cluster_constraints() {
    let errs = spec_errs(
        "placement: {spreadConstraints: [{spreadByField: cluster, maxGroups: 2, minGroups: 1}, {spreadByField: cluster, maxGroups: 3, minGroups: 1}]}",
    );
    one(
        errs,
        "spec.placement.spreadConstraints",
        "multiple cluster spread constraints are not allowed",
    );
}

#[test]
fn spread_multiple_region_constraints_reported_once() {
    let errs = spec_errs(
        "placement: {spreadConstraints: [{spreadByField: cluster, minGroups: 1}, {spreadByField: region, minGroups: 1}, {spreadByField: region, minGroups: 1}, {spreadByField: region, minGroups: 1}]}",
    );
    one(
        errs,
        "spec.placement.spreadConstraints",
        "multiple region spread constraints are not allowed",
    );
}

#[test]
fn spread_field_requires_cluster_constraint() {
    let errs = spec_errs(
        "placement: {spreadConstraints: [{spreadByField: region, maxGroups: 2, minGroups: 1}]}",
    );
    one(
        errs,
        "spec.placement.spreadConstraints",
        "the cluster spread constraint must be enabled in one of the constraints in case of SpreadByField is enabled",
    );
}

#[test]
fn spread_by_label_only_is_fine() {
    assert!(
        spec_errs("placement: {spreadConstraints: [{spreadByLabel: topology, minGroups: 1}]}")
            .is_empty()
    );
}

#[test]
fn preemption_always_needs_names() {
    let mut s = pp_spec("preemption: Always");
    s.resource_selectors[0].name.clear();
    let errs = validate_propagation_spec(&s, "default");
    one(
        errs,
        "spec.resourceSelectors[0].name",
        "name cannot be empty if preemption is Always, the empty name may cause unexpected resources preemption",
    );
}

#[test]
fn suspension_table() {
    let errs =
        spec_errs("suspension: {dispatching: true, dispatchingOnClusters: {clusterNames: [m1]}}");
    one(
        errs,
        "spec.suspension.suspension",
        "suspension dispatching cannot co-exist with dispatchingOnClusters.clusterNames",
    );
    for ok in [
        "suspension: {dispatching: true}",
        "suspension: {dispatching: true, dispatchingOnClusters: {clusterNames: []}}",
        "suspension: {dispatchingOnClusters: {clusterNames: [m1]}}",
        "suspension: {dispatching: false, dispatchingOnClusters: {clusterNames: [m1]}}",
    ] {
        assert!(spec_errs(ok).is_empty(), "{ok}");
    }
}

#[test]
fn workload_affinity_table() {
    let errs = spec_errs(
        "placement: {workloadAffinity: {affinity: {groupByLabelKey: app}, antiAffinity: {groupByLabelKey: app}}}",
    );
    one(
        errs,
        "spec.placement.workloadAffinity",
        "affinity and antiAffinity must not use the same groupByLabelKey",
    );
    let errs =
        spec_errs("placement: {workloadAffinity: {affinity: {groupByLabelKey: 'bad key!'}}}");
    one(
        errs,
        "spec.placement.workloadAffinity.affinity.groupByLabelKey",
        "name part must consist of",
    );
    let errs = spec_errs("placement: {workloadAffinity: {antiAffinity: {groupByLabelKey: '-x'}}}");
    one(
        errs,
        "spec.placement.workloadAffinity.antiAffinity.groupByLabelKey",
        "name part must consist of",
    );
    for ok in [
        "placement: {workloadAffinity: {affinity: {groupByLabelKey: app}, antiAffinity: {groupByLabelKey: tier}}}",
        "placement: {workloadAffinity: {affinity: {groupByLabelKey: example.com/app}}}",
        "placement: {workloadAffinity: {antiAffinity: {groupByLabelKey: app}}}",
    ] {
        assert!(spec_errs(ok).is_empty(), "{ok}");
    }
}

#[test]
fn tolerations_lt_gt_rejected() {
    let errs = spec_errs(
        "placement: {clusterTolerations: [{key: a, operator: Exists}, {key: b, operator: Lt, value: '1'}]}",
    );
    one(
        errs.clone(),
        "spec.placement.clusterTolerations[1].operator",
        "Unsupported value",
    );
    assert_eq!(
        errs[0].to_string(),
        "spec.placement.clusterTolerations[1].operator: Unsupported value: \"Lt\": supported values: \"\", \"Exists\", \"Equal\""
    );
    let errs = spec_errs("placement: {clusterTolerations: [{key: b, operator: Gt, value: '1'}]}");
    one(
        errs,
        "spec.placement.clusterTolerations[0].operator",
        "Unsupported value: \"Gt\"",
    );
    for ok in [
        "{key: a, operator: Equal, value: b}",
        "{key: a, value: b}",
        "{key: a, operator: Exists}",
    ] {
        assert!(
            spec_errs(&format!("placement: {{clusterTolerations: [{ok}]}}")).is_empty(),
            "{ok}"
        );
    }
}

#[test]
fn overflow_affinities_need_dynamic_division() {
    let base = "clusterAffinities: [{affinityName: primary, clusterNames: [m1], overflowAffinities: [{affinityName: burst, clusterNames: [m2]}]}]";
    let errs = spec_errs(&format!("placement: {{{base}}}"));
    one(
        errs,
        "spec.placement.clusterAffinities[0].overflowAffinities",
        "overflowAffinities can only be used together with dynamic weight or aggregated scheduling",
    );
    let errs = spec_errs(&format!(
        "placement: {{{base}, replicaScheduling: {{replicaSchedulingType: Divided, replicaDivisionPreference: Weighted, weightPreference: {{staticWeightList: [{{targetCluster: {{clusterNames: [m1]}}, weight: 1}}]}}}}}}"
    ));
    one(
        errs,
        "spec.placement.clusterAffinities[0].overflowAffinities",
        "dynamic weight or aggregated",
    );
    assert!(spec_errs(&format!("placement: {{{base}, replicaScheduling: {{replicaSchedulingType: Divided, replicaDivisionPreference: Weighted, weightPreference: {{dynamicWeight: AvailableReplicas}}}}}}")).is_empty());
    assert!(spec_errs(&format!("placement: {{{base}, replicaScheduling: {{replicaSchedulingType: Divided, replicaDivisionPreference: Aggregated}}}}")).is_empty());
}

#[test]
fn overflow_affinities_rules() {
    let agg = "replicaScheduling: {replicaSchedulingType: Divided, replicaDivisionPreference: Aggregated}";
    let errs = spec_errs(&format!(
        "placement: {{{agg}, clusterAffinities: [{{affinityName: p, overflowAffinities: [{{affinityName: o, clusterNames: [m2]}}]}}]}}"
    ));
    one(
        errs,
        "spec.placement.clusterAffinities[0].overflowAffinities",
        "overflowAffinities can only be used together with the inline ClusterAffinity",
    );
    let errs = spec_errs(&format!(
        "placement: {{{agg}, clusterAffinities: [{{affinityName: p, clusterNames: [m1], overflowAffinities: [{{affinityName: o, clusterNames: [m2]}}, {{affinityName: o, clusterNames: [m3]}}]}}]}}"
    ));
    one(
        errs,
        "spec.placement.clusterAffinities[0].overflowAffinities[1].affinityName",
        "overflow affinity name must be unique and must not duplicate the primary group's affinityName",
    );
    let errs = spec_errs(&format!(
        "placement: {{{agg}, clusterAffinities: [{{affinityName: p, clusterNames: [m1], overflowAffinities: [{{affinityName: p, clusterNames: [m2]}}]}}]}}"
    ));
    one(
        errs,
        "spec.placement.clusterAffinities[0].overflowAffinities[0].affinityName",
        "must not duplicate the primary group's affinityName",
    );
    let errs = spec_errs(&format!(
        "placement: {{{agg}, clusterAffinities: [{{affinityName: p, overflowAffinities: [{{affinityName: p, clusterNames: [m2]}}]}}]}}"
    ));
    assert_eq!(errs.len(), 2, "{errs:?}");
}

fn failover(s: &str) -> Vec<FieldError> {
    let f: FailoverBehavior = yaml(s);
    validate_failover(Some(&f), "spec.failover")
}

#[test]
fn application_failover_table() {
    let cases: &[(&str, &str)] = &[
        (
            "application: {decisionConditions: {tolerationSeconds: -100}, purgeMode: Directly}",
            "spec.failover.application.decisionConditions.tolerationSeconds: Invalid value: -100: must be greater than or equal to 0",
        ),
        (
            "application: {decisionConditions: {tolerationSeconds: 100}, purgeMode: Never, gracePeriodSeconds: 100}",
            "spec.failover.application.gracePeriodSeconds: Invalid value: 100: only takes effect when purgeMode is gracefully",
        ),
        (
            "application: {decisionConditions: {tolerationSeconds: 100}, purgeMode: Gracefully, gracePeriodSeconds: -100}",
            "spec.failover.application.gracePeriodSeconds: Invalid value: -100: must be greater than 0",
        ),
        (
            "application: {decisionConditions: {tolerationSeconds: 100}, purgeMode: Gracefully}",
            "spec.failover.application.gracePeriodSeconds: Invalid value: null: should not be empty when purgeMode is gracefully",
        ),
        (
            "application: {decisionConditions: {tolerationSeconds: 100}, purgeMode: Directly, statePreservation: {rules: [{aliasLabelName: '-invalid-label', jsonPath: '{.replicas}'}]}}",
            "spec.failover.application.statePreservation.rules[0].aliasLabelName: Invalid value: \"-invalid-label\": name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')",
        ),
        (
            "application: {decisionConditions: {tolerationSeconds: 100}, purgeMode: Directly, statePreservation: {rules: [{aliasLabelName: 'invalid-label-', jsonPath: '{.replicas}'}]}}",
            "aliasLabelName: Invalid value: \"invalid-label-\": name part must consist of",
        ),
        (
            "application: {decisionConditions: {tolerationSeconds: 100}, purgeMode: Directly, statePreservation: {rules: [{aliasLabelName: 'invalid@label', jsonPath: '{.replicas}'}]}}",
            "Invalid value: \"invalid@label\"",
        ),
        (
            "application: {decisionConditions: {tolerationSeconds: 100}, purgeMode: Directly, statePreservation: {rules: [{aliasLabelName: 'INVALID.COM/my-state', jsonPath: '{.replicas}'}]}}",
            "spec.failover.application.statePreservation.rules[0].aliasLabelName: Invalid value: \"INVALID.COM/my-state\": prefix part a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')",
        ),
        (
            "cluster: {purgeMode: Directly, statePreservation: {rules: [{aliasLabelName: '-invalid-cluster-label', jsonPath: '{.x}'}]}}",
            "spec.failover.cluster.statePreservation.rules[0].aliasLabelName: Invalid value: \"-invalid-cluster-label\": name part must consist of",
        ),
    ];
    for (input, want) in cases {
        let msg = aggregate_message(&failover(input));
        assert!(msg.contains(want), "{input}\n got: {msg}\nwant: {want}");
    }
}

#[test]
fn too_long_alias_label_name() {
    let long = "a".repeat(64);
    let errs = failover(&format!(
        "application: {{decisionConditions: {{tolerationSeconds: 1}}, purgeMode: Directly, statePreservation: {{rules: [{{aliasLabelName: {long}, jsonPath: x}}]}}}}"
    ));
    assert_eq!(
        aggregate_message(&errs),
        format!(
            "spec.failover.application.statePreservation.rules[0].aliasLabelName: Invalid value: \"{long}\": name part must be no more than 63 bytes"
        )
    );
}

#[test]
fn multiple_errors_aggregate_in_brackets() {
    let errs = failover(
        "application: {decisionConditions: {tolerationSeconds: 1}, purgeMode: Directly, statePreservation: {rules: [{aliasLabelName: '-invalid1', jsonPath: a}, {aliasLabelName: 'invalid2@', jsonPath: b}]}}",
    );
    let msg = aggregate_message(&errs);
    assert!(msg.starts_with("[spec.failover.application.statePreservation.rules[0].aliasLabelName: Invalid value: \"-invalid1\""), "{msg}");
    assert!(msg.contains(", spec.failover.application.statePreservation.rules[1].aliasLabelName: Invalid value: \"invalid2@\""), "{msg}");
    assert!(msg.ends_with(']'));
}

#[test]
fn valid_failover_cases() {
    for ok in [
        "application: {decisionConditions: {tolerationSeconds: 100}, purgeMode: Gracefully, gracePeriodSeconds: 600}",
        "application: {decisionConditions: {tolerationSeconds: 100}, purgeMode: Directly, statePreservation: {rules: [{aliasLabelName: example.com/my-state, jsonPath: '{.x}'}]}}",
        "cluster: {purgeMode: Directly}",
        "cluster: {purgeMode: Gracefully, statePreservation: {rules: [{aliasLabelName: ok, jsonPath: '{.x}'}]}}",
    ] {
        assert!(failover(ok).is_empty(), "{ok}");
    }
}

#[test]
fn application_failover_requires_propagate_deps() {
    let errs = spec_errs(
        "failover: {application: {decisionConditions: {tolerationSeconds: 100}, purgeMode: Directly}}",
    );
    one(
        errs,
        "spec.propagateDeps",
        "application failover is set, propagateDeps must be true",
    );
    assert!(spec_errs("propagateDeps: true\nfailover: {application: {decisionConditions: {tolerationSeconds: 100}, purgeMode: Directly}}").is_empty());
}

#[test]
fn pp_selector_namespace_must_match_policy() {
    let s: PropagationSpec =
        yaml("resourceSelectors: [{apiVersion: v1, kind: ConfigMap, namespace: other}]");
    let errs = validate_propagation_spec(&s, "default");
    one(
        errs,
        "spec.resourceSelectors[0].namespace",
        "namespace of resource selector must be the same as the namespace of the policy",
    );
    assert!(
        validate_propagation_spec(&s, "").is_empty(),
        "ClusterPropagationPolicy has no namespace rule"
    );
}

fn pp(labels: &str, scheduler: &str) -> PropagationPolicy {
    yaml(&format!(
        "apiVersion: policy.karmada.io/v1alpha1\nkind: PropagationPolicy\nmetadata: {{name: p, namespace: default, labels: {labels}}}\nspec:\n  schedulerName: {scheduler}\n  resourceSelectors: [{{apiVersion: v1, kind: ConfigMap, namespace: default}}]"
    ))
}

#[test]
fn pp_webhook_rules() {
    let ok = pp(
        "{propagationpolicy.karmada.io/permanent-id: id1}",
        "default-scheduler",
    );
    assert!(validate_propagation_policy(&ok, None).is_empty());
    let missing = pp("{}", "default-scheduler");
    let errs = validate_propagation_policy(&missing, None);
    assert_eq!(
        aggregate_message(&errs),
        "label propagationpolicy.karmada.io/permanent-id is required, it should be set by the mutating admission webhook during creation"
    );
    let renamed = pp(
        "{propagationpolicy.karmada.io/permanent-id: id1}",
        "other-scheduler",
    );
    assert_eq!(
        aggregate_message(&validate_propagation_policy(&renamed, Some(&ok))),
        "the schedulerName should not be updated"
    );
    assert_eq!(
        validate_propagation_policy(&renamed, Some(&ok))[0].field,
        "spec.schedulerName"
    );
    let relabeled = pp(
        "{propagationpolicy.karmada.io/permanent-id: id2}",
        "default-scheduler",
    );
    assert_eq!(
        aggregate_message(&validate_propagation_policy(&relabeled, Some(&ok))),
        "label propagationpolicy.karmada.io/permanent-id is immutable, it can only be set by the system during creation"
    );
}

#[test]
fn cpp_webhook_rules() {
    let cpp: ClusterPropagationPolicy = yaml(
        "apiVersion: policy.karmada.io/v1alpha1\nkind: ClusterPropagationPolicy\nmetadata: {name: c}\nspec: {resourceSelectors: [{apiVersion: v1, kind: Namespace}]}",
    );
    assert_eq!(
        aggregate_message(&validate_cluster_propagation_policy(&cpp, None)),
        "label clusterpropagationpolicy.karmada.io/permanent-id is required, it should be set by the mutating admission webhook during creation"
    );
    let mut ok = cpp.clone();
    ok.metadata.labels = Some(
        [(
            CLUSTER_PROPAGATION_POLICY_PERMANENT_ID_LABEL.to_string(),
            "x".to_string(),
        )]
        .into(),
    );
    assert!(validate_cluster_propagation_policy(&ok, None).is_empty());
    let mut renamed = ok.clone();
    renamed.spec.scheduler_name = "mine".into();
    assert_eq!(
        aggregate_message(&validate_cluster_propagation_policy(&renamed, Some(&ok))),
        "the schedulerName should not be updated"
    );
}

// ---- override policies (TestValidateOverrideSpec) ----

fn os(s: &str) -> Vec<FieldError> {
    let spec: OverrideSpec = yaml(s);
    validate_override_spec(&spec, "")
}

#[test]
fn override_valid_forms() {
    assert!(os("overrideRules: [{targetCluster: {clusterNames: [m1]}, overriders: {plaintext: [{path: /spec/replicas, operator: replace, value: 1}]}}]").is_empty());
    assert!(os("targetCluster: {clusterNames: [m1]}\noverriders: {plaintext: [{path: /spec/replicas, operator: replace, value: 1}]}").is_empty());
}

#[test]
fn override_rules_and_target_cluster() {
    let errs = os("targetCluster: {clusterNames: [m1]}\noverrideRules: [{overriders: {}}]");
    one(
        errs,
        "spec.targetCluster",
        "overrideRules and targetCluster can't co-exist",
    );
}

#[test]
fn override_rules_and_overriders() {
    let errs = os(
        "overriders: {plaintext: [{path: /a, operator: remove}]}\noverrideRules: [{overriders: {}}]",
    );
    one(
        errs,
        "spec.overriders",
        "overrideRules and overriders can't co-exist",
    );
    // fieldOverrider is not counted by Karmada's emptiness check.
    assert!(os("overriders: {fieldOverrider: [{fieldPath: /a, json: [{subPath: /b, operator: remove}]}]}\noverrideRules: [{overriders: {}}]").is_empty());
}

#[test]
fn override_rules_target_cluster_and_overriders() {
    let errs = os(
        "targetCluster: {clusterNames: [m1]}\noverriders: {labelsOverrider: [{operator: add, value: {a: b}}]}\noverrideRules: [{overriders: {}}]",
    );
    assert_eq!(errs.len(), 2);
    assert_eq!(errs[0].field, "spec.targetCluster");
    assert_eq!(errs[1].field, "spec.overriders");
}

#[test]
fn override_invalid_annotation_and_label() {
    let errs = os(
        "overrideRules: [{overriders: {annotationsOverrider: [{operator: add, value: {'testannotation~!@#$%^&*()': a}}]}}]",
    );
    one(
        errs,
        "spec.overrideRules[0].overriders.annotationsOverrider[0].value",
        "name part must consist of",
    );
    let errs = os(
        "overrideRules: [{overriders: {labelsOverrider: [{operator: add, value: {'testannotation~!@#$%^&*()': a}}]}}]",
    );
    one(
        errs,
        "spec.overrideRules[0].overriders.labelsOverrider[0].value",
        "name part must consist of",
    );
    let errs = os(
        "overrideRules: [{overriders: {labelsOverrider: [{operator: add, value: {ok: 'bad value!'}}]}}]",
    );
    one(
        errs,
        "spec.overrideRules[0].overriders.labelsOverrider[0].value",
        "a valid label must be an empty string",
    );
    assert!(os("overrideRules: [{overriders: {annotationsOverrider: [{operator: add, value: {Upper/Case: 'any value at all!'}}]}}]").is_empty(), "annotation keys are lower-cased first");
}

#[test]
fn override_target_cluster_field_selectors() {
    let errs = os(
        "targetCluster: {fieldSelector: {matchExpressions: [{key: foo, operator: In, values: [a]}]}}",
    );
    one(
        errs,
        "spec.targetCluster.fieldSelector",
        "unsupported key \"foo\", must be provider, region, or zone",
    );
    let errs =
        os("targetCluster: {fieldSelector: {matchExpressions: [{key: region, operator: Exists}]}}");
    one(
        errs,
        "spec.targetCluster.fieldSelector",
        "unsupported operator \"Exists\", must be In or NotIn",
    );
    let errs = os(
        "overrideRules: [{targetCluster: {fieldSelector: {matchExpressions: [{key: foo, operator: In, values: [a]}]}}, overriders: {}}]",
    );
    one(
        errs,
        "spec.overrideRules[0].targetCluster.fieldSelector",
        "unsupported key \"foo\"",
    );
    let errs = os(
        "overrideRules: [{targetCluster: {fieldSelector: {matchExpressions: [{key: zone, operator: DoesNotExist}]}}, overriders: {}}]",
    );
    one(
        errs,
        "spec.overrideRules[0].targetCluster.fieldSelector",
        "unsupported operator \"DoesNotExist\"",
    );
}

#[test]
fn field_overrider_shape() {
    let errs = os("overrideRules: [{overriders: {fieldOverrider: [{fieldPath: /data/x}]}}]");
    one(
        errs.clone(),
        "spec.overrideRules[0].overriders.fieldOverrider[0]",
        "FieldOverrider must have either JSON or YAML set",
    );
    assert_eq!(errs[0].kind, ErrorType::Required);
    let errs = os(
        "overrideRules: [{overriders: {fieldOverrider: [{fieldPath: /data/x, json: [{subPath: /a, operator: remove}], yaml: [{subPath: /b, operator: remove}]}]}}]",
    );
    one(
        errs,
        "spec.overrideRules[0].overriders.fieldOverrider[0]",
        "FieldOverrider has both YAML and JSON set. Only one is allowed",
    );
    assert!(os("overrideRules: [{overriders: {fieldOverrider: [{fieldPath: /data/x, yaml: [{subPath: /a, operator: replace, value: b}]}]}}]").is_empty());
    assert!(os("overrideRules: [{overriders: {fieldOverrider: [{fieldPath: /data/x, json: [{subPath: /a, operator: add, value: {k: v}}]}]}}]").is_empty());
}

#[test]
fn field_overrider_pointers_and_values() {
    let errs = os(
        "overrideRules: [{overriders: {fieldOverrider: [{fieldPath: data/x, json: [{subPath: /a, operator: remove}]}]}}]",
    );
    one(
        errs,
        "spec.overrideRules[0].overriders.fieldOverrider[0].fieldPath",
        "JSON pointer must be empty or start with a \"/",
    );
    let errs = os(
        "overrideRules: [{overriders: {fieldOverrider: [{fieldPath: /x, json: [{subPath: a, operator: remove}]}]}}]",
    );
    one(
        errs,
        "spec.overrideRules[0].overriders.fieldOverrider[0].json[0].subPath",
        "JSON pointer must be empty",
    );
    let errs = os(
        "overrideRules: [{overriders: {fieldOverrider: [{fieldPath: /x, yaml: [{subPath: /a, operator: add}]}]}}]",
    );
    one(
        errs,
        "spec.overrideRules[0].overriders.fieldOverrider[0].yaml[0].value",
        "value is required for add or replace operation",
    );
    let errs = os(
        "overrideRules: [{overriders: {fieldOverrider: [{fieldPath: /x, json: [{subPath: /a, operator: remove, value: 1}]}]}}]",
    );
    one(
        errs,
        "spec.overrideRules[0].overriders.fieldOverrider[0].json[0].value",
        "value is not allowed for remove operation",
    );
}

#[test]
fn image_predicate_path_must_be_pointer() {
    let errs = os(
        "overrideRules: [{overriders: {imageOverrider: [{predicate: {path: spec/containers/0/image}, component: Registry, operator: remove}]}}]",
    );
    one(
        errs,
        "spec.overrideRules[0].overriders.imageOverrider[0].predicate.path",
        "JSON pointer must be empty or start with a \"/",
    );
}

#[test]
fn op_selector_namespace() {
    let op: OverridePolicy = yaml(
        "apiVersion: policy.karmada.io/v1alpha1\nkind: OverridePolicy\nmetadata: {name: o, namespace: default}\nspec: {resourceSelectors: [{apiVersion: v1, kind: ConfigMap, namespace: other}]}",
    );
    one(
        validate_override_policy(&op),
        "spec.resourceSelectors[0].namespace",
        "namespace of resource selector must be the same as the namespace of the policy",
    );
    let cop: ClusterOverridePolicy = yaml(
        "apiVersion: policy.karmada.io/v1alpha1\nkind: ClusterOverridePolicy\nmetadata: {name: o}\nspec: {resourceSelectors: [{apiVersion: v1, kind: ConfigMap, namespace: other}]}",
    );
    assert!(validate_cluster_override_policy(&cop).is_empty());
}

// ---- cluster (pkg/apis/cluster/validation) ----

fn cluster(s: &str) -> Cluster {
    yaml(&format!(
        "apiVersion: cluster.karmada.io/v1alpha1\nkind: Cluster\nmetadata: {{name: member1}}\nspec: {s}"
    ))
}

#[test]
fn cluster_name_rules() {
    assert_eq!(
        cluster_name_errors(""),
        vec!["must be not empty".to_string()]
    );
    assert_eq!(
        cluster_name_errors(&"a".repeat(49)),
        vec!["must be no more than 48 characters".to_string()]
    );
    assert!(cluster_name_errors(&"a".repeat(48)).is_empty());
    assert!(cluster_name_errors("Member1")[0].starts_with("a lowercase RFC 1123 label"));
    let mut c = cluster("{syncMode: Push}");
    c.metadata.name = Some("member_1".into());
    one(
        validate_cluster(&c),
        "metadata.name",
        "a lowercase RFC 1123 label must consist of",
    );
}

#[test]
fn cluster_sync_mode() {
    let errs = validate_cluster(&cluster("{syncMode: ''}"));
    assert_eq!(errs.len(), 2);
    assert_eq!(errs[0].to_string(), "spec.syncMode: Required value");
    assert_eq!(
        errs[1].to_string(),
        "spec.syncMode: Unsupported value: \"\": supported values: \"Pull\", \"Push\""
    );
    one(
        validate_cluster(&cluster("{syncMode: Sideways}")),
        "spec.syncMode",
        "Unsupported value: \"Sideways\"",
    );
    assert!(validate_cluster(&cluster("{syncMode: Pull}")).is_empty());
}

#[test]
fn cluster_api_endpoint() {
    assert!(
        validate_cluster(&cluster(
            "{syncMode: Push, apiEndpoint: 'https://10.0.0.1:6443'}"
        ))
        .is_empty()
    );
    let form = "; desired format: hostname, hostname:port, IP or IP:port";
    one(
        validate_cluster(&cluster("{syncMode: Push, apiEndpoint: 'no-scheme'}")),
        "spec.apiEndpoint",
        &format!("host must be provided{form}"),
    );
    one(
        validate_cluster(&cluster(
            "{syncMode: Push, apiEndpoint: 'https://user:pw@host:6443'}",
        )),
        "spec.apiEndpoint",
        "user information is not permitted in the URL",
    );
    one(
        validate_cluster(&cluster(
            "{syncMode: Push, apiEndpoint: 'https://host:6443?x=1'}",
        )),
        "spec.apiEndpoint",
        "query parameters are not permitted in the URL",
    );
    one(
        validate_cluster(&cluster(
            "{syncMode: Push, apiEndpoint: 'https://host:6443#frag'}",
        )),
        "spec.apiEndpoint",
        "fragments are not permitted in the URL",
    );
}

#[test]
fn cluster_secret_refs_and_proxy() {
    let errs = validate_cluster(&cluster(
        "{syncMode: Push, secretRef: {namespace: '', name: ''}}",
    ));
    assert_eq!(
        errs.iter().map(|e| e.field.as_str()).collect::<Vec<_>>(),
        vec!["spec.secretRef.namespace", "spec.secretRef.name"]
    );
    let errs = validate_cluster(&cluster(
        "{syncMode: Push, impersonatorSecretRef: {namespace: karmada-cluster, name: ''}}",
    ));
    one(errs, "spec.impersonatorSecretRef.name", "Required value");
    one(
        validate_cluster(&cluster("{syncMode: Push, proxyURL: 'ftp://proxy'}")),
        "spec.proxyURL",
        "unsupported scheme \"ftp\", must be http, https, or socks5",
    );
    assert!(
        validate_cluster(&cluster(
            "{syncMode: Push, proxyURL: 'socks5://proxy:1080'}"
        ))
        .is_empty()
    );
}

#[test]
fn cluster_provider_region_zones() {
    one(
        validate_cluster(&cluster("{syncMode: Push, provider: 'bad provider'}")),
        "spec.provider",
        "a valid label must be an empty string",
    );
    one(
        validate_cluster(&cluster("{syncMode: Push, region: '-r'}")),
        "spec.region",
        "a valid label must be an empty string",
    );
    one(
        validate_cluster(&cluster("{syncMode: Push, zone: z1, zones: [z2]}")),
        "spec.spec",
        "Zone and Zones cannot co-exist",
    );
    one(
        validate_cluster(&cluster("{syncMode: Push, zones: [ok, 'not ok']}")),
        "spec.Zones",
        "a valid label must be an empty string",
    );
    one(
        validate_cluster(&cluster("{syncMode: Push, zone: 'not ok'}")),
        "spec.Zone",
        "a valid label must be an empty string",
    );
}

#[test]
fn cluster_taints() {
    assert!(
        validate_cluster(&cluster(
            "{syncMode: Push, taints: [{key: a, effect: NoSchedule}, {key: a, effect: NoExecute}]}"
        ))
        .is_empty()
    );
    one(
        validate_cluster(&cluster(
            "{syncMode: Push, taints: [{key: a, effect: PreferNoSchedule}]}",
        )),
        "spec.taints[0].effect",
        "Unsupported value: \"PreferNoSchedule\": supported values: \"NoSchedule\", \"NoExecute\"",
    );
    one(
        validate_cluster(&cluster("{syncMode: Push, taints: [{key: a, effect: ''}]}")),
        "spec.taints[0].effect",
        "Required value",
    );
    one(
        validate_cluster(&cluster(
            "{syncMode: Push, taints: [{key: '-a', effect: NoSchedule}]}",
        )),
        "spec.taints[0].key",
        "name part must consist of",
    );
    one(
        validate_cluster(&cluster(
            "{syncMode: Push, taints: [{key: a, value: 'x y', effect: NoSchedule}]}",
        )),
        "spec.taints[0].value",
        "a valid label must be an empty string",
    );
    let errs = validate_cluster(&cluster(
        "{syncMode: Push, taints: [{key: a, effect: NoSchedule}, {key: a, effect: NoSchedule}]}",
    ));
    one(
        errs.clone(),
        "spec.taints[1]",
        "taints must be unique by key and effect pair",
    );
    assert_eq!(errs[0].kind, ErrorType::Duplicate);
}

#[test]
fn cluster_resource_models() {
    let mut c = cluster("{syncMode: Push}");
    c.spec.resource_models = crate::defaults::default_resource_models();
    assert!(
        validate_cluster(&c).is_empty(),
        "{:?}",
        validate_cluster(&c)
    );
    let mut bad = c.clone();
    bad.spec.resource_models[1].grade = 0;
    one(
        validate_cluster(&bad),
        "spec.resourceModels",
        "The grade of each models should not be the same",
    );
    let mut bad = c.clone();
    bad.spec.resource_models[0].ranges[0].min = Quantity("500m".into());
    one(
        validate_cluster(&bad),
        "spec.resourceModels",
        "The min value of each resource in the first model should be 0",
    );
    let mut bad = c.clone();
    bad.spec.resource_models[2].ranges[0].min = Quantity("3".into());
    one(
        validate_cluster(&bad),
        "spec.resourceModels",
        "Model intervals for resources must be contiguous and non-overlapping",
    );
    let mut bad = c.clone();
    bad.spec.resource_models[8].ranges[1].max = Quantity("2048Gi".into());
    one(
        validate_cluster(&bad),
        "spec.resourceModels",
        "The max value of each resource in the last model should be MaxInt64",
    );
    let mut bad = c.clone();
    bad.spec.resource_models[3].ranges[0].max = Quantity("1".into());
    one(
        validate_cluster(&bad),
        "spec.resourceModels",
        "The max value of each resource must be greater than the min value",
    );
    let mut bad = c.clone();
    bad.spec.resource_models[4].ranges.pop();
    one(
        validate_cluster(&bad),
        "spec.resourceModels",
        "The number of resource types should be the same",
    );
    let mut bad = c;
    bad.spec.resource_models[1].ranges[1].name = "storage".into();
    one(
        validate_cluster(&bad),
        "spec.resourceModels",
        "The resource types of each models should be the same",
    );
}

// ---- FederatedHPA / CronFederatedHPA ----

fn fhpa(spec: &str) -> FederatedHPA {
    yaml(&format!(
        "apiVersion: autoscaling.karmada.io/v1alpha1\nkind: FederatedHPA\nmetadata: {{name: h, namespace: default}}\nspec: {spec}"
    ))
}

const TARGET: &str = "scaleTargetRef: {apiVersion: apps/v1, kind: Deployment, name: nginx}";

#[test]
fn fhpa_bounds() {
    let mut ok = fhpa(&format!("{{{TARGET}, minReplicas: 1, maxReplicas: 10}}"));
    crate::defaults::default_federated_hpa(&mut ok);
    assert!(
        validate_federated_hpa(&ok).is_empty(),
        "{:?}",
        validate_federated_hpa(&ok)
    );
    one(
        validate_federated_hpa(&fhpa(&format!(
            "{{{TARGET}, minReplicas: 0, maxReplicas: 10}}"
        ))),
        "spec.minReplicas",
        "Invalid value: 0: must be greater than or equal to 1",
    );
    let errs = validate_federated_hpa(&fhpa(&format!("{{{TARGET}, maxReplicas: 0}}")));
    one(
        errs,
        "spec.maxReplicas",
        "Invalid value: 0: must be greater than 0",
    );
    one(
        validate_federated_hpa(&fhpa(&format!(
            "{{{TARGET}, minReplicas: 5, maxReplicas: 3}}"
        ))),
        "spec.maxReplicas",
        "must be greater than or equal to `minReplicas`",
    );
}

#[test]
fn fhpa_target_ref_and_metadata() {
    let errs = validate_federated_hpa(&fhpa(
        "{scaleTargetRef: {kind: '', name: 'a/b'}, maxReplicas: 1}",
    ));
    assert_eq!(errs.len(), 2, "{errs:?}");
    assert_eq!(
        errs[0].to_string(),
        "spec.scaleTargetRef.kind: Required value"
    );
    assert_eq!(
        errs[1].to_string(),
        "spec.scaleTargetRef.name: Invalid value: \"a/b\": may not contain '/'"
    );
    let mut h = fhpa(&format!("{{{TARGET}, maxReplicas: 1}}"));
    h.metadata.name = Some("Bad_Name".into());
    one(
        validate_federated_hpa(&h),
        "metadata.name",
        "a lowercase RFC 1123 subdomain",
    );
}

#[test]
fn fhpa_metrics() {
    let m = |metric: &str| {
        validate_federated_hpa(&fhpa(&format!(
            "{{{TARGET}, maxReplicas: 3, metrics: [{metric}]}}"
        )))
    };
    assert!(m("{type: Resource, resource: {name: cpu, target: {type: Utilization, averageUtilization: 50}}}").is_empty());
    assert!(m("{type: Pods, pods: {metric: {name: qps}, target: {type: AverageValue, averageValue: '10'}}}").is_empty());
    one(
        m(
            "{type: Resource, resource: {name: cpu, target: {type: Utilization, averageUtilization: 0}}}",
        ),
        "spec.metrics[0].resource.target.averageUtilization",
        "must be greater than 0",
    );
    one(
        m("{type: Resource, resource: {name: cpu, target: {type: Utilization}}}"),
        "spec.metrics[0].resource.target.averageUtilization",
        "must set either a target raw value or a target utilization",
    );
    one(
        m(
            "{type: Resource, resource: {name: cpu, target: {type: Utilization, averageUtilization: 5, averageValue: '1'}}}",
        ),
        "spec.metrics[0].resource.target.averageValue",
        "may not set both a target raw value and a target utilization",
    );
    one(
        m("{type: Resource, resource: {name: cpu, target: {type: Bogus, averageUtilization: 5}}}"),
        "spec.metrics[0].resource.target.type",
        "must be either Utilization, Value, or AverageValue",
    );
    one(
        m("{type: Pods, pods: {metric: {name: qps}, target: {type: AverageValue}}}"),
        "spec.metrics[0].pods.target.averageValue",
        "must specify a positive target averageValue",
    );
    one(
        m(
            "{type: Pods, pods: {metric: {name: qps}, target: {type: AverageValue, averageValue: '-1'}}}",
        ),
        "spec.metrics[0].pods.target.averageValue",
        "must be positive",
    );
    let errs = m("{type: Resource}");
    one(
        errs,
        "spec.metrics[0].resource",
        "must populate information for the given metric source",
    );
    let errs =
        m("{type: External, external: {metric: {name: x}, target: {type: Value, value: '1'}}}");
    assert_eq!(errs.len(), 2, "External is not supported: {errs:?}");
    assert!(
        errs.iter()
            .all(|e| e.field == "spec.metrics[0].type" && e.kind == ErrorType::NotSupported)
    );
    let errs = m(
        "{type: Resource, resource: {name: cpu, target: {type: Utilization, averageUtilization: 5}}, pods: {metric: {name: q}, target: {type: AverageValue, averageValue: '1'}}}",
    );
    assert!(
        errs.iter().any(|e| e.field == "spec.metrics[0].pods"
            && e.message() == "Forbidden: must populate the given metric source only"),
        "{errs:?}"
    );
}

#[test]
fn fhpa_behavior() {
    let b = |rules: &str| {
        validate_federated_hpa(&fhpa(&format!(
            "{{{TARGET}, maxReplicas: 3, behavior: {{scaleUp: {rules}}}}}"
        )))
    };
    assert!(b("{policies: [{type: Pods, value: 1, periodSeconds: 15}]}").is_empty());
    one(
        b(
            "{stabilizationWindowSeconds: 3601, policies: [{type: Pods, value: 1, periodSeconds: 15}]}",
        ),
        "spec.behavior.scaleUp.stabilizationWindowSeconds",
        "must be less than or equal to 3600",
    );
    one(
        b(
            "{stabilizationWindowSeconds: -1, policies: [{type: Pods, value: 1, periodSeconds: 15}]}",
        ),
        "spec.behavior.scaleUp.stabilizationWindowSeconds",
        "must be greater than or equal to zero",
    );
    one(
        b("{selectPolicy: Avg, policies: [{type: Pods, value: 1, periodSeconds: 15}]}"),
        "spec.behavior.scaleUp.selectPolicy",
        "supported values: \"Disabled\", \"Max\", \"Min\"",
    );
    one(
        b("{policies: []}"),
        "spec.behavior.scaleUp.policies",
        "must specify at least one Policy",
    );
    one(
        b("{policies: [{type: Pods, value: 1, periodSeconds: 1801}]}"),
        "spec.behavior.scaleUp.policies[0].periodSeconds",
        "must be less than or equal to 1800",
    );
    one(
        b("{policies: [{type: Pods, value: 0, periodSeconds: 15}]}"),
        "spec.behavior.scaleUp.policies[0].value",
        "must be greater than zero",
    );
    one(
        b("{policies: [{type: Pods, value: 1, periodSeconds: 0}]}"),
        "spec.behavior.scaleUp.policies[0].periodSeconds",
        "must be greater than zero",
    );
    one(
        b("{policies: [{type: Nodes, value: 1, periodSeconds: 5}]}"),
        "spec.behavior.scaleUp.policies[0].type",
        "supported values: \"Percent\", \"Pods\"",
    );
}

#[test]
fn fhpa_status_counters() {
    let mut h = fhpa(&format!("{{{TARGET}, maxReplicas: 3}}"));
    h.status = Some(yaml("{currentReplicas: -1, desiredReplicas: 1}"));
    one(
        validate_federated_hpa(&h),
        "status.currentReplicas",
        "must be greater than or equal to 0",
    );
}

fn cron(target: &str, rules: &str) -> CronFederatedHPA {
    yaml(&format!(
        "apiVersion: autoscaling.karmada.io/v1alpha1\nkind: CronFederatedHPA\nmetadata: {{name: c, namespace: default}}\nspec: {{scaleTargetRef: {target}, rules: {rules}}}"
    ))
}

const DEPLOY: &str = "{apiVersion: apps/v1, kind: Deployment, name: nginx}";
const FHPA: &str = "{apiVersion: autoscaling.karmada.io/v1alpha1, kind: FederatedHPA, name: h}";

#[test]
fn cron_rules_for_workloads() {
    assert!(
        validate_cron_federated_hpa(&cron(
            DEPLOY,
            "[{name: up, schedule: '0 8 * * 1-5', targetReplicas: 5}]"
        ))
        .is_empty()
    );
    one(
        validate_cron_federated_hpa(&cron(DEPLOY, "[{name: up, schedule: '0 8 * * *'}]")),
        "spec.rules[0].targetReplicas",
        "targetReplicas cannot be nil if you want to scale Deployment",
    );
    one(
        validate_cron_federated_hpa(&cron(
            DEPLOY,
            "[{name: up, schedule: '0 8 * * *', targetReplicas: -1}]",
        )),
        "spec.rules[0].targetReplicas",
        "targetReplicas should be larger than or equal to 0",
    );
    one(
        validate_cron_federated_hpa(&cron(
            DEPLOY,
            "[{name: up, schedule: 'not a cron', targetReplicas: 1}]",
        )),
        "spec.rules[0].schedule",
        "Invalid value: \"not a cron\": invalid cron format",
    );
    let errs = validate_cron_federated_hpa(&cron(
        DEPLOY,
        "[{name: up, schedule: '@daily', targetReplicas: 1}, {name: up, schedule: '*/5 * * * *', targetReplicas: 1}]",
    ));
    one(
        errs.clone(),
        "spec.rules[1].name",
        "Duplicate value: \"up\"",
    );
    one(
        validate_cron_federated_hpa(&cron(
            DEPLOY,
            "[{name: up, schedule: '@daily', targetReplicas: 1, timeZone: 'Mars/Olympus'}]",
        )),
        "spec.rules[0].timeZone",
        "unknown time zone Mars/Olympus",
    );
    assert!(
        validate_cron_federated_hpa(&cron(
            DEPLOY,
            "[{name: up, schedule: '@daily', targetReplicas: 1, timeZone: 'Asia/Shanghai'}]"
        ))
        .is_empty()
    );
}

#[test]
fn cron_rules_for_fhpa() {
    assert!(
        validate_cron_federated_hpa(&cron(
            FHPA,
            "[{name: up, schedule: '@hourly', targetMinReplicas: 2, targetMaxReplicas: 5}]"
        ))
        .is_empty()
    );
    one(
        validate_cron_federated_hpa(&cron(FHPA, "[{name: up, schedule: '@hourly'}]")),
        "spec.rules[0].targetMaxReplicas",
        "targetMinReplicas and targetMaxReplicas cannot be nil at the same time if you want to scale FederatedHPA",
    );
    one(
        validate_cron_federated_hpa(&cron(
            FHPA,
            "[{name: up, schedule: '@hourly', targetMinReplicas: 0}]",
        )),
        "spec.rules[0].targetMinReplicas",
        "targetMinReplicas should be larger than 0",
    );
    // A max of 0 is also below the default min of 1: Karmada reports both.
    let errs = validate_cron_federated_hpa(&cron(
        FHPA,
        "[{name: up, schedule: '@hourly', targetMaxReplicas: 0}]",
    ));
    assert_eq!(errs.len(), 2);
    assert_eq!(
        errs[0].to_string(),
        "spec.rules[0].targetMaxReplicas: Invalid value: \"\": targetMaxReplicas should be larger than 0"
    );
    assert_eq!(errs[1].field, "spec.rules[0].targetMinReplicas");
    one(
        validate_cron_federated_hpa(&cron(
            FHPA,
            "[{name: up, schedule: '@hourly', targetMinReplicas: 6, targetMaxReplicas: 5}]",
        )),
        "spec.rules[0].targetMinReplicas",
        "targetMaxReplicas should be larger than or equal to targetMinReplicas",
    );
    let wrong_kind =
        "{apiVersion: autoscaling.karmada.io/v1alpha1, kind: CronFederatedHPA, name: h}";
    one(
        validate_cron_federated_hpa(&cron(
            wrong_kind,
            "[{name: up, schedule: '@hourly', targetMinReplicas: 1}]",
        )),
        "spec.scaleTargetRef.kind",
        "invalid scaleTargetRef kind: CronFederatedHPA, only support FederatedHPA",
    );
}

#[test]
fn time_zones() {
    for ok in [
        "",
        "UTC",
        "Local",
        "Asia/Shanghai",
        "America/New_York",
        "Europe/Paris",
        "Etc/GMT+2",
    ] {
        assert!(is_plausible_time_zone(ok), "{ok}");
    }
    for bad in [
        "A/B",
        "Mars/Olympus",
        "asia/shanghai",
        "America/NewYork",
        "Nowhere",
    ] {
        assert!(!is_plausible_time_zone(bad), "{bad}");
    }
}

#[test]
fn cron_syntax() {
    for ok in [
        "* * * * *",
        "0 0 1 1 *",
        "*/15 0-6 * JAN-MAR MON-FRI",
        "0 12 L * *",
        "5,10,15 * * * *",
        "@monthly",
        "0 0 * * 0 2030",
    ] {
        assert!(is_valid_cron(ok), "{ok}");
    }
    for bad in [
        "",
        "* * * *",
        "61 * * * *",
        "* 24 * * *",
        "* * 0 * *",
        "* * * 13 *",
        "*/0 * * * *",
        "@sometimes",
        "5-1 * * * *",
    ] {
        assert!(!is_valid_cron(bad), "{bad}");
    }
}

// ---- bindings, deletion protection, messages ----

#[test]
fn binding_dependencies_annotation_must_be_json() {
    let ok: BTreeMap<String, String> = [(
        crate::work::BINDING_DEPENDENCIES_ANNOTATION.to_string(),
        "[{\"apiVersion\":\"v1\",\"kind\":\"ConfigMap\",\"name\":\"a\"}]".to_string(),
    )]
    .into();
    assert!(validate_binding_dependencies_annotation(Some(&ok)).is_empty());
    assert!(validate_binding_dependencies_annotation(None).is_empty());
    let bad: BTreeMap<String, String> = [(
        crate::work::BINDING_DEPENDENCIES_ANNOTATION.to_string(),
        "{not json".to_string(),
    )]
    .into();
    one(
        validate_binding_dependencies_annotation(Some(&bad)),
        "metadata.annotations.resourcebinding.karmada.io/dependencies",
        "annotation value must be a valid JSON",
    );
}

#[test]
fn deletion_protection() {
    let l: BTreeMap<String, String> =
        [(DELETION_PROTECTION_LABEL.to_string(), "Always".to_string())].into();
    assert_eq!(
        deletion_denied(Some(&l)).as_deref(),
        Some(
            "This resource is protected, please make sure to remove the label: resourcetemplate.karmada.io/deletion-protected"
        )
    );
    let l: BTreeMap<String, String> =
        [(DELETION_PROTECTION_LABEL.to_string(), "Never".to_string())].into();
    assert_eq!(deletion_denied(Some(&l)), None);
    assert_eq!(deletion_denied(None), None);
}

#[test]
fn field_error_shapes() {
    let e = FieldError::invalid("spec.x", "v", "bad");
    assert_eq!(e.to_string(), "spec.x: Invalid value: \"v\": bad");
    assert_eq!(e.reason(), "FieldValueInvalid");
    assert_eq!(
        FieldError::required("spec.y", "").to_string(),
        "spec.y: Required value"
    );
    assert_eq!(
        FieldError::required("spec.y", "").reason(),
        "FieldValueRequired"
    );
    assert_eq!(
        FieldError::forbidden("spec.z", "no").to_string(),
        "spec.z: Forbidden: no"
    );
    assert_eq!(
        FieldError::duplicate("spec.d", 1, "").to_string(),
        "spec.d: Duplicate value: 1"
    );
    assert_eq!(aggregate_message(&[]), "");
    let json = serde_json::to_value(&e).unwrap();
    assert_eq!(json["field"], "spec.x");
    assert_eq!(
        e.status_cause(),
        serde_json::json!({"reason": "FieldValueInvalid", "message": "Invalid value: \"v\": bad", "field": "spec.x"})
    );
}

// ---- MultiClusterService ----

fn mcs(spec: &str) -> MultiClusterService {
    yaml(&format!(
        "apiVersion: networking.karmada.io/v1alpha1\nkind: MultiClusterService\nmetadata: {{name: serve, namespace: default}}\nspec: {spec}"
    ))
}

#[test]
fn mcs_rules() {
    assert!(validate_multi_cluster_service(&mcs("{types: [CrossCluster], ports: [{name: http, port: 80}], providerClusters: [{name: member1}]}"), None).is_empty());
    one(
        validate_multi_cluster_service(&mcs("{types: [Bogus]}"), None),
        "spec.types[0]",
        "Invalid value: \"Bogus\": ExposureType Error",
    );
    one(
        validate_multi_cluster_service(&mcs("{types: [CrossCluster, LoadBalancer]}"), None),
        "spec.types",
        "MultiClusterService types should not contain more than one type",
    );
    one(
        validate_multi_cluster_service(&mcs("{types: [CrossCluster], ports: [{port: 0}]}"), None),
        "spec.ports[0].port",
        "must be between 1 and 65535, inclusive",
    );
    one(
        validate_multi_cluster_service(
            &mcs("{types: [CrossCluster], ports: [{name: a, port: 1}, {name: a, port: 2}]}"),
            None,
        ),
        "spec.ports[1].name",
        "Duplicate value: \"a\"",
    );
    one(
        validate_multi_cluster_service(
            &mcs("{types: [CrossCluster], ports: [{name: A_b, port: 1}]}"),
            None,
        ),
        "spec.ports[0].name",
        "a lowercase RFC 1123 label",
    );
    one(
        validate_multi_cluster_service(
            &mcs("{types: [CrossCluster], consumerClusters: [{name: Bad_Cluster}]}"),
            None,
        ),
        "spec.range.consumerClusters[0]",
        "a lowercase RFC 1123 label",
    );
    let mut m = mcs("{types: [CrossCluster]}");
    m.metadata.name = Some("1serve".into());
    one(
        validate_multi_cluster_service(&m, None),
        "metadata.name",
        "a DNS-1035 label must consist of",
    );
    let old = mcs("{types: [LoadBalancer]}");
    one(
        validate_multi_cluster_service(&mcs("{types: [CrossCluster]}"), Some(&old)),
        "spec.types",
        "MultiClusterService types are immutable",
    );
}

/// The cases of Karmada's `cronfederatedhpa/validating_test.go`.
#[test]
fn cron_webhook_cases() {
    let rule = |extra: &str| format!("[{{name: bar, schedule: '0 0 13 * 5'{extra}}}]");
    let msg = |target: &str, rules: &str| {
        aggregate_message(&validate_cron_federated_hpa(&cron(target, rules)))
    };
    assert_eq!(
        msg(
            "{apiVersion: apps/v1, kind: Deployment, name: d}",
            &rule(", targetReplicas: 1")
        ),
        ""
    );
    assert_eq!(
        msg(
            FHPA,
            "[{name: bar, schedule: '0 0 13 * 1', targetMinReplicas: 1, targetMaxReplicas: 2}]"
        ),
        ""
    );
    assert!(
        msg(
            "{apiVersion: autoscaling.karmada.io/v1alpha1, kind: Test, name: h}",
            &rule(", targetReplicas: 1")
        )
        .contains("invalid scaleTargetRef kind: Test, only support FederatedHPA")
    );
    assert!(
        msg(
            "{apiVersion: apps/v1, kind: '', name: d}",
            &rule(", targetReplicas: 1")
        )
        .contains("spec.scaleTargetRef.kind: Required value")
    );
    assert!(
        msg(
            "{apiVersion: apps/v1, kind: foo, name: ''}",
            &rule(", targetReplicas: 1")
        )
        .contains("spec.scaleTargetRef.name: Required value")
    );
    assert!(msg("{apiVersion: apps/v1, kind: foo, name: d}", "[{name: bar, schedule: '0 0 13 * 5', targetReplicas: 1}, {name: bar, schedule: '0 0 13 * 5', targetReplicas: 1}]").contains("Duplicate value: \"bar\""));
    assert!(
        msg(
            "{apiVersion: apps/v1, kind: foo, name: d}",
            "[{name: bar, schedule: '0 0 13 *', targetReplicas: 1}]"
        )
        .contains("invalid cron format")
    );
    assert!(
        msg(
            "{apiVersion: apps/v1, kind: foo, name: d}",
            "[{name: bar, schedule: '0 0 13 * 1', targetReplicas: 1, timeZone: A/B}]"
        )
        .contains("unknown time zone A/B")
    );
    assert!(
        msg(
            "{apiVersion: apps/v1, kind: foo, name: d}",
            "[{name: bar, schedule: '0 0 13 * 1'}]"
        )
        .contains("targetReplicas cannot be nil if you want to scale foo")
    );
}
