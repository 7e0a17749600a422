//! Defaulting cases re-expressed from Karmada's mutating webhook tests and
//! `pkg/util/helper/policy_test.go`.

use serde_json::json;

use super::*;
use crate::testutil::yaml;

fn pp(spec: &str) -> PropagationPolicy {
    yaml(&format!(
        "apiVersion: policy.karmada.io/v1alpha1\nkind: PropagationPolicy\nmetadata: {{name: p, namespace: default}}\nspec: {spec}"
    ))
}

#[test]
fn pp_mutation_on_create() {
    let mut p = pp(
        "{resourceSelectors: [{apiVersion: apps/v1, kind: Deployment, name: nginx}, {apiVersion: v1, kind: ConfigMap, namespace: kept}], placement: {spreadConstraints: [{maxGroups: 3}, {spreadByLabel: topo, minGroups: 2}], replicaScheduling: {replicaSchedulingType: Divided}}, failover: {application: {decisionConditions: {tolerationSeconds: 10}, purgeMode: Gracefully}}}",
    );
    p.metadata.labels = Some(
        [(
            PROPAGATION_POLICY_PERMANENT_ID_LABEL.to_string(),
            "user-value".to_string(),
        )]
        .into(),
    );
    default_propagation_policy(&mut p, "default", Some("uuid-1"));
    assert_eq!(p.spec.resource_selectors[0].namespace, "default");
    assert_eq!(p.spec.resource_selectors[1].namespace, "kept");
    let sc = &p.spec.placement.spread_constraints;
    assert_eq!(
        (
            sc[0].spread_by_field.as_str(),
            sc[0].min_groups,
            sc[0].max_groups
        ),
        ("cluster", 1, 3)
    );
    assert_eq!(
        (
            sc[1].spread_by_field.as_str(),
            sc[1].spread_by_label.as_str(),
            sc[1].min_groups
        ),
        ("", "topo", 2)
    );
    assert_eq!(
        p.spec
            .placement
            .replica_scheduling
            .as_ref()
            .unwrap()
            .replica_division_preference,
        "Weighted"
    );
    assert_eq!(
        p.spec
            .failover
            .as_ref()
            .unwrap()
            .application
            .as_ref()
            .unwrap()
            .grace_period_seconds,
        Some(600)
    );
    assert_eq!(
        p.metadata.labels.as_ref().unwrap()[PROPAGATION_POLICY_PERMANENT_ID_LABEL],
        "uuid-1"
    );
    assert_eq!(
        p.metadata.finalizers,
        Some(vec![PROPAGATION_POLICY_FINALIZER.to_string()])
    );
}

#[test]
fn pp_mutation_on_update_keeps_id_and_finalizers() {
    let mut p = pp("{resourceSelectors: [{apiVersion: apps/v1, kind: Deployment}]}");
    default_propagation_policy(&mut p, "default", None);
    assert!(p.metadata.labels.is_none());
    assert!(p.metadata.finalizers.is_none());
    // Finalizer is not duplicated on a second create-style mutation.
    default_propagation_policy(&mut p, "default", Some("a"));
    default_propagation_policy(&mut p, "default", Some("b"));
    assert_eq!(p.metadata.finalizers.as_ref().unwrap().len(), 1);
}

#[test]
fn weighted_is_only_set_for_divided_without_preference() {
    let mut p = pp(
        "{resourceSelectors: [{apiVersion: apps/v1, kind: Deployment}], placement: {replicaScheduling: {replicaSchedulingType: Duplicated}}}",
    );
    default_propagation_spec(&mut p.spec);
    assert_eq!(
        p.spec
            .placement
            .replica_scheduling
            .as_ref()
            .unwrap()
            .replica_division_preference,
        ""
    );
    let mut p = pp(
        "{resourceSelectors: [{apiVersion: apps/v1, kind: Deployment}], placement: {replicaScheduling: {replicaSchedulingType: Divided, replicaDivisionPreference: Aggregated}}}",
    );
    default_propagation_spec(&mut p.spec);
    assert_eq!(
        p.spec
            .placement
            .replica_scheduling
            .as_ref()
            .unwrap()
            .replica_division_preference,
        "Aggregated"
    );
    let mut p = pp("{resourceSelectors: [{apiVersion: apps/v1, kind: Deployment}]}");
    default_propagation_spec(&mut p.spec);
    assert!(
        p.spec.placement.replica_scheduling.is_none(),
        "omitted replicaScheduling stays omitted (Duplicated)"
    );
}

#[test]
fn empty_replica_scheduling_becomes_divided_weighted() {
    let mut p = pp(
        "{resourceSelectors: [{apiVersion: apps/v1, kind: Deployment}], placement: {replicaScheduling: {}}}",
    );
    apply_propagation_schema_defaults(&mut p.spec);
    default_propagation_spec(&mut p.spec);
    let rs = p.spec.placement.replica_scheduling.as_ref().unwrap();
    assert_eq!(
        (
            rs.replica_scheduling_type.as_str(),
            rs.replica_division_preference.as_str()
        ),
        ("Divided", "Weighted")
    );
    assert_eq!(p.spec.priority, Some(0));
    assert_eq!(p.spec.preemption, "Never");
    assert_eq!(p.spec.conflict_resolution, "Abort");
    assert_eq!(p.spec.scheduler_name, "default-scheduler");
}

#[test]
fn grace_period_only_for_gracefully() {
    let mut p = pp(
        "{resourceSelectors: [{apiVersion: apps/v1, kind: Deployment}], failover: {application: {decisionConditions: {}, purgeMode: Directly}}}",
    );
    default_propagation_spec(&mut p.spec);
    assert_eq!(
        p.spec
            .failover
            .as_ref()
            .unwrap()
            .application
            .as_ref()
            .unwrap()
            .grace_period_seconds,
        None
    );
    let mut p = pp(
        "{resourceSelectors: [{apiVersion: apps/v1, kind: Deployment}], failover: {application: {decisionConditions: {}, purgeMode: Gracefully, gracePeriodSeconds: 30}}}",
    );
    default_propagation_spec(&mut p.spec);
    assert_eq!(
        p.spec
            .failover
            .as_ref()
            .unwrap()
            .application
            .as_ref()
            .unwrap()
            .grace_period_seconds,
        Some(30)
    );
}

#[test]
fn service_import_forces_propagate_deps() {
    let mut p = pp(
        "{resourceSelectors: [{apiVersion: multicluster.x-k8s.io/v1alpha1, kind: ServiceImport, name: s}]}",
    );
    default_propagation_spec(&mut p.spec);
    assert!(p.spec.propagate_deps);
    let mut p = pp(
        "{resourceSelectors: [{apiVersion: multicluster.x-k8s.io/v1beta1, kind: ServiceImport, name: s}]}",
    );
    default_propagation_spec(&mut p.spec);
    assert!(!p.spec.propagate_deps);
}

#[test]
fn cpp_mutation_does_not_touch_namespaces() {
    let mut c: ClusterPropagationPolicy = yaml(
        "apiVersion: policy.karmada.io/v1alpha1\nkind: ClusterPropagationPolicy\nmetadata: {name: c}\nspec: {resourceSelectors: [{apiVersion: apps/v1, kind: Deployment}]}",
    );
    default_cluster_propagation_policy(&mut c, Some("id"));
    assert_eq!(c.spec.resource_selectors[0].namespace, "");
    assert_eq!(
        c.metadata.labels.as_ref().unwrap()[CLUSTER_PROPAGATION_POLICY_PERMANENT_ID_LABEL],
        "id"
    );
    assert_eq!(
        c.metadata.finalizers,
        Some(vec![CLUSTER_PROPAGATION_POLICY_FINALIZER.to_string()])
    );
}

#[test]
fn op_mutation_defaults_selector_namespace() {
    let mut o: OverridePolicy = yaml(
        "apiVersion: policy.karmada.io/v1alpha1\nkind: OverridePolicy\nmetadata: {name: o, namespace: ns1}\nspec: {resourceSelectors: [{apiVersion: v1, kind: ConfigMap}, {apiVersion: v1, kind: Secret, namespace: ns2}]}",
    );
    default_override_policy(&mut o, "ns1");
    assert_eq!(o.spec.resource_selectors[0].namespace, "ns1");
    assert_eq!(o.spec.resource_selectors[1].namespace, "ns2");
}

#[test]
fn binding_and_mcs_ids_only_when_absent() {
    let mut rb: ResourceBinding = yaml(
        "apiVersion: work.karmada.io/v1alpha2\nkind: ResourceBinding\nmetadata: {name: r, namespace: d}\nspec: {resource: {apiVersion: apps/v1, kind: Deployment, name: n}}",
    );
    default_resource_binding(&mut rb, "one");
    default_resource_binding(&mut rb, "two");
    assert_eq!(
        rb.metadata.labels.as_ref().unwrap()[RESOURCE_BINDING_PERMANENT_ID_LABEL],
        "one"
    );
    let mut crb: ClusterResourceBinding = yaml(
        "apiVersion: work.karmada.io/v1alpha2\nkind: ClusterResourceBinding\nmetadata: {name: r}\nspec: {resource: {apiVersion: v1, kind: Namespace, name: n}}",
    );
    default_cluster_resource_binding(&mut crb, "c1");
    assert_eq!(
        crb.metadata.labels.as_ref().unwrap()[CLUSTER_RESOURCE_BINDING_PERMANENT_ID_LABEL],
        "c1"
    );
    let mut m: MultiClusterService = yaml(
        "apiVersion: networking.karmada.io/v1alpha1\nkind: MultiClusterService\nmetadata: {name: s, namespace: d}\nspec: {types: [CrossCluster]}",
    );
    default_multi_cluster_service(&mut m, "m1");
    assert_eq!(
        m.metadata.labels.as_ref().unwrap()[MULTI_CLUSTER_SERVICE_PERMANENT_ID_LABEL],
        "m1"
    );
}

#[test]
fn work_mutation_prunes_and_records() {
    let mut w: Work = yaml(
        r#"apiVersion: work.karmada.io/v1alpha1
kind: Work
metadata: {name: nginx-687f7fb96f, namespace: karmada-es-member1}
spec:
  workload:
    manifests:
    - apiVersion: batch/v1
      kind: Job
      metadata:
        name: pi
        namespace: default
        uid: u1
        resourceVersion: "7"
        labels: {app: pi}
        annotations: {note: x}
      spec:
        ttlSecondsAfterFinished: 100
        selector: {matchLabels: {controller-uid: u1, app: pi}}
        template:
          metadata: {labels: {controller-uid: u1, job-name: pi, app: pi}}
      status: {active: 1}
"#,
    );
    default_work(&mut w, "w-1");
    assert_eq!(
        w.metadata.labels.as_ref().unwrap()[WORK_PERMANENT_ID_LABEL],
        "w-1"
    );
    let m = &w.spec.workload.manifests[0].value();
    assert!(m.get("status").is_none());
    assert!(m.pointer("/metadata/uid").is_none());
    assert!(m.pointer("/metadata/resourceVersion").is_none());
    assert!(m.pointer("/spec/ttlSecondsAfterFinished").is_none());
    assert_eq!(
        m.pointer("/spec/selector/matchLabels").unwrap(),
        &json!({"app": "pi"})
    );
    assert_eq!(
        m.pointer("/spec/template/metadata/labels").unwrap(),
        &json!({"app": "pi"})
    );
    assert_eq!(
        m.pointer("/metadata/labels/work.karmada.io~1permanent-id")
            .unwrap(),
        "w-1"
    );
    assert_eq!(
        m.pointer("/metadata/annotations/resourcetemplate.karmada.io~1managed-annotations")
            .unwrap(),
        "note,resourcetemplate.karmada.io/managed-annotations,resourcetemplate.karmada.io/managed-labels"
    );
    assert_eq!(
        m.pointer("/metadata/annotations/resourcetemplate.karmada.io~1managed-labels")
            .unwrap(),
        "app,work.karmada.io/permanent-id"
    );
}

#[test]
fn prune_per_kind() {
    let mut svc = json!({"kind": "Service", "metadata": {"name": "s"}, "spec": {"clusterIP": "10.0.0.1", "clusterIPs": ["10.0.0.1"]}});
    prune_manifest(&mut svc);
    assert_eq!(svc["spec"], json!({}));
    let mut headless =
        json!({"kind": "Service", "metadata": {"name": "s"}, "spec": {"clusterIP": "None"}});
    prune_manifest(&mut headless);
    assert_eq!(headless["spec"]["clusterIP"], "None");
    let mut d = json!({"kind": "Deployment", "metadata": {"name": "d", "annotations": {"deployment.kubernetes.io/revision": "3", "keep": "1"}}});
    prune_manifest(&mut d);
    assert_eq!(d["metadata"]["annotations"], json!({"keep": "1"}));
    let mut sa = json!({"kind": "ServiceAccount", "metadata": {"name": "sa"}, "secrets": [{"name": "sa-token-abc"}, {"name": "other"}]});
    prune_manifest(&mut sa);
    assert_eq!(sa["secrets"], json!([{"name": "other"}]));
    let mut sec = json!({"kind": "Secret", "type": "kubernetes.io/service-account-token", "metadata": {"name": "t", "annotations": {"kubernetes.io/service-account.uid": "x"}}, "data": {"token": "abc"}});
    prune_manifest(&mut sec);
    assert_eq!(sec["data"], Value::Null);
    let mut job = json!({"kind": "Job", "metadata": {"name": "j"}, "spec": {"manualSelector": true, "selector": {"matchLabels": {"controller-uid": "x"}}}});
    prune_manifest(&mut job);
    assert_eq!(
        job.pointer("/spec/selector/matchLabels/controller-uid")
            .unwrap(),
        "x"
    );
}

#[test]
fn fhpa_defaults() {
    let mut h: FederatedHPA = yaml(
        "apiVersion: autoscaling.karmada.io/v1alpha1\nkind: FederatedHPA\nmetadata: {name: h, namespace: d}\nspec: {scaleTargetRef: {apiVersion: apps/v1, kind: Deployment, name: n}, maxReplicas: 5, behavior: {scaleDown: {stabilizationWindowSeconds: 30}}}",
    );
    default_federated_hpa(&mut h);
    assert_eq!(h.spec.min_replicas, Some(1));
    let v = serde_json::to_value(&h.spec).unwrap();
    assert_eq!(
        v["metrics"],
        json!([{"type": "Resource", "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": 80}}}])
    );
    assert_eq!(
        v["behavior"]["scaleUp"],
        json!({"stabilizationWindowSeconds": 0, "selectPolicy": "Max", "policies": [{"type": "Pods", "value": 4, "periodSeconds": 15}, {"type": "Percent", "value": 100, "periodSeconds": 15}]})
    );
    assert_eq!(
        v["behavior"]["scaleDown"],
        json!({"stabilizationWindowSeconds": 30, "selectPolicy": "Max", "policies": [{"type": "Percent", "value": 100, "periodSeconds": 15}]})
    );
    let mut no_behavior: FederatedHPA = yaml(
        "apiVersion: autoscaling.karmada.io/v1alpha1\nkind: FederatedHPA\nmetadata: {name: h, namespace: d}\nspec: {scaleTargetRef: {apiVersion: apps/v1, kind: Deployment, name: n}, minReplicas: 2, maxReplicas: 5}",
    );
    default_federated_hpa(&mut no_behavior);
    assert_eq!(no_behavior.spec.min_replicas, Some(2));
    assert!(no_behavior.spec.behavior.is_none());
}

#[test]
fn cluster_registry_strategy() {
    let now = Time(k8s_openapi::jiff::Timestamp::UNIX_EPOCH);
    let mut c: Cluster = yaml(
        "apiVersion: cluster.karmada.io/v1alpha1\nkind: Cluster\nmetadata: {name: m1, generation: 7}\nspec: {syncMode: Push, zone: z1, taints: [{key: a, effect: NoExecute}, {key: b, effect: NoSchedule}]}\nstatus: {kubernetesVersion: v1.31.0}",
    );
    prepare_cluster_for_create(&mut c);
    assert!(c.status.is_none());
    assert_eq!(c.metadata.generation, Some(1));
    assert_eq!(c.spec.resource_models.len(), 9);
    assert_eq!(c.spec.resource_models[1].ranges[1].min.0, "4Gi");
    assert_eq!(
        c.spec.resource_models[8].ranges[0].max.0,
        i64::MAX.to_string()
    );
    canonicalize_cluster(&mut c, &now);
    assert_eq!(c.spec.zones, vec!["z1".to_string()]);
    assert_eq!(c.spec.zone, "");
    assert_eq!(c.spec.taints[0].time_added, Some(now.clone()));
    assert_eq!(c.spec.taints[1].time_added, None);
    // zone and zones together are left for validation to reject.
    let mut both: Cluster = yaml(
        "apiVersion: cluster.karmada.io/v1alpha1\nkind: Cluster\nmetadata: {name: m2}\nspec: {syncMode: Push, zone: z1, zones: [z2]}",
    );
    canonicalize_cluster(&mut both, &now);
    assert_eq!((both.spec.zone.as_str(), both.spec.zones.len()), ("z1", 1));
    // Updates keep status and bump the generation only on spec changes.
    let mut old = c.clone();
    old.status = Some(yaml("{kubernetesVersion: v1.31.0}"));
    let mut same = c.clone();
    prepare_cluster_for_update(&mut same, &old);
    assert_eq!(same.metadata.generation, Some(1));
    assert_eq!(same.status, old.status);
    let mut changed = c.clone();
    changed.spec.region = "r1".into();
    prepare_cluster_for_update(&mut changed, &old);
    assert_eq!(changed.metadata.generation, Some(2));
}

#[test]
fn resource_models_are_standardized() {
    let mut models = default_resource_models();
    models.reverse();
    models[0].ranges[0].max = Quantity("1000".into());
    models[8].ranges[0].min = Quantity("5".into());
    standardize_resource_models(&mut models);
    assert_eq!(models[0].grade, 0);
    assert_eq!(models[0].ranges[0].min.0, "0");
    assert_eq!(models[8].ranges[0].max.0, i64::MAX.to_string());
}
