//! Admission defaulting, as Karmada's mutating webhooks and its aggregated
//! API server apply it. Mirrors `pkg/webhook/*/mutating.go`,
//! `pkg/util/helper/policy.go`, `pkg/util/lifted/federatedhpa.go`,
//! `pkg/resourceinterpreter/default/native/prune/prune.go` and
//! `pkg/apis/cluster/mutation/mutation.go`.
//!
//! The functions are pure: where Karmada generates a UUID or reads the clock,
//! the caller passes the value in (`new_permanent_id`, `now`). CRD structural
//! defaults (priority 0, preemption Never, ...) are applied by the API server
//! from the CRD schemas; [`apply_propagation_schema_defaults`] applies the same
//! values for in-process callers.

use std::collections::BTreeMap;

use k8s_openapi::api::autoscaling::v2::{
    HPAScalingPolicy, HPAScalingRules, MetricSpec, MetricTarget, ResourceMetricSource,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::core::ObjectMeta;
use serde_json::Value;

use crate::autoscaling::FederatedHPA;
use crate::cluster::{Cluster, ResourceModel, ResourceModelRange};
use crate::networking::{MULTI_CLUSTER_SERVICE_PERMANENT_ID_LABEL, MultiClusterService};
use crate::policy::{
    CLUSTER_PROPAGATION_POLICY_FINALIZER, CLUSTER_PROPAGATION_POLICY_PERMANENT_ID_LABEL,
    ClusterPropagationPolicy, OverridePolicy, PROPAGATION_POLICY_FINALIZER,
    PROPAGATION_POLICY_PERMANENT_ID_LABEL, PropagationPolicy, PropagationSpec,
};
use crate::raw::RawJson;
use crate::work::{
    CLUSTER_RESOURCE_BINDING_PERMANENT_ID_LABEL, ClusterResourceBinding,
    RESOURCE_BINDING_PERMANENT_ID_LABEL, ResourceBinding, WORK_PERMANENT_ID_LABEL, Work,
};

/// Annotation listing the annotation keys Karmada manages on a manifest.
pub const MANAGED_ANNOTATIONS_ANNOTATION: &str = "resourcetemplate.karmada.io/managed-annotations";
/// Annotation listing the label keys Karmada manages on a manifest.
pub const MANAGED_LABELS_ANNOTATION: &str = "resourcetemplate.karmada.io/managed-labels";

fn set_label(meta: &mut ObjectMeta, key: &str, value: &str) {
    meta.labels
        .get_or_insert_with(BTreeMap::new)
        .insert(key.to_string(), value.to_string());
}

fn label_empty(meta: &ObjectMeta, key: &str) -> bool {
    meta.labels
        .as_ref()
        .and_then(|l| l.get(key))
        .is_none_or(String::is_empty)
}

fn add_finalizer(meta: &mut ObjectMeta, f: &str) {
    let list = meta.finalizers.get_or_insert_with(Vec::new);
    if !list.iter().any(|x| x == f) {
        list.push(f.to_string());
    }
}

/// The spec defaults shared by both propagation kinds (Karmada
/// `SetDefaultSpreadConstraints`, `ContainsServiceImport`,
/// `SetReplicaDivisionPreferenceWeighted`, `SetDefaultGracePeriodSeconds`):
/// spread constraints without field or label get `spreadByField: cluster`,
/// `minGroups: 0` becomes 1; a ServiceImport selector forces `propagateDeps`;
/// Divided without a preference becomes Weighted; Gracefully application
/// failover without a grace period gets 600 seconds.
pub fn default_propagation_spec(spec: &mut PropagationSpec) {
    for sc in &mut spec.placement.spread_constraints {
        if sc.spread_by_label.is_empty() && sc.spread_by_field.is_empty() {
            sc.spread_by_field = crate::policy::SPREAD_BY_FIELD_CLUSTER.into();
        }
        if sc.min_groups == 0 {
            sc.min_groups = 1;
        }
    }
    if spec
        .resource_selectors
        .iter()
        .any(|s| s.kind == "ServiceImport" && s.api_version == "multicluster.x-k8s.io/v1alpha1")
    {
        spec.propagate_deps = true;
    }
    if let Some(rs) = &mut spec.placement.replica_scheduling
        && rs.replica_scheduling_type == crate::policy::REPLICA_SCHEDULING_DIVIDED
        && rs.replica_division_preference.is_empty()
    {
        rs.replica_division_preference = crate::policy::DIVISION_WEIGHTED.into();
    }
    if let Some(app) = spec.failover.as_mut().and_then(|f| f.application.as_mut())
        && app.purge_mode == crate::policy::PURGE_MODE_GRACEFULLY
        && app.grace_period_seconds.is_none()
    {
        app.grace_period_seconds = Some(600);
    }
}

/// The CRD schema defaults of the propagation spec (priority 0, preemption
/// Never, conflictResolution Abort, schedulerName default-scheduler,
/// replicaSchedulingType Divided, purge modes Gracefully, tolerationSeconds
/// 300) — what the API server's structural defaulting does before admission.
pub fn apply_propagation_schema_defaults(spec: &mut PropagationSpec) {
    spec.priority.get_or_insert(0);
    if spec.preemption.is_empty() {
        spec.preemption = "Never".into();
    }
    if spec.conflict_resolution.is_empty() {
        spec.conflict_resolution = "Abort".into();
    }
    if spec.scheduler_name.is_empty() {
        spec.scheduler_name = "default-scheduler".into();
    }
    if let Some(rs) = &mut spec.placement.replica_scheduling
        && rs.replica_scheduling_type.is_empty()
    {
        rs.replica_scheduling_type = crate::policy::REPLICA_SCHEDULING_DIVIDED.into();
    }
    if let Some(f) = &mut spec.failover {
        if let Some(a) = &mut f.application {
            if a.purge_mode.is_empty() {
                a.purge_mode = crate::policy::PURGE_MODE_GRACEFULLY.into();
            }
            a.decision_conditions.toleration_seconds.get_or_insert(300);
        }
        if let Some(c) = &mut f.cluster
            && c.purge_mode.is_empty()
        {
            c.purge_mode = crate::policy::PURGE_MODE_GRACEFULLY.into();
        }
    }
}

/// PropagationPolicy mutation (Karmada `/mutate-propagationpolicy`): selectors
/// without namespace get `request_namespace`, then [`default_propagation_spec`];
/// on CREATE (`new_permanent_id` given) the permanent-id label is set
/// (overwriting any user value) and the finalizer added.
pub fn default_propagation_policy(
    p: &mut PropagationPolicy,
    request_namespace: &str,
    new_permanent_id: Option<&str>,
) {
    for s in &mut p.spec.resource_selectors {
        if s.namespace.is_empty() {
            s.namespace = request_namespace.to_string();
        }
    }
    default_propagation_spec(&mut p.spec);
    if let Some(id) = new_permanent_id {
        set_label(&mut p.metadata, PROPAGATION_POLICY_PERMANENT_ID_LABEL, id);
        add_finalizer(&mut p.metadata, PROPAGATION_POLICY_FINALIZER);
    }
}

/// ClusterPropagationPolicy mutation (Karmada `/mutate-clusterpropagationpolicy`):
/// as [`default_propagation_policy`] without namespace defaulting.
pub fn default_cluster_propagation_policy(
    p: &mut ClusterPropagationPolicy,
    new_permanent_id: Option<&str>,
) {
    default_propagation_spec(&mut p.spec.0);
    if let Some(id) = new_permanent_id {
        set_label(
            &mut p.metadata,
            CLUSTER_PROPAGATION_POLICY_PERMANENT_ID_LABEL,
            id,
        );
        add_finalizer(&mut p.metadata, CLUSTER_PROPAGATION_POLICY_FINALIZER);
    }
}

/// OverridePolicy mutation (Karmada `/mutate-overridepolicy`): selectors
/// without namespace get `request_namespace`. ClusterOverridePolicy has no
/// mutating webhook.
pub fn default_override_policy(p: &mut OverridePolicy, request_namespace: &str) {
    for s in &mut p.spec.resource_selectors {
        if s.namespace.is_empty() {
            s.namespace = request_namespace.to_string();
        }
    }
}

/// ResourceBinding mutation on CREATE (Karmada `/mutate-resourcebinding`):
/// permanent-id label when absent or empty.
pub fn default_resource_binding(rb: &mut ResourceBinding, new_permanent_id: &str) {
    if label_empty(&rb.metadata, RESOURCE_BINDING_PERMANENT_ID_LABEL) {
        set_label(
            &mut rb.metadata,
            RESOURCE_BINDING_PERMANENT_ID_LABEL,
            new_permanent_id,
        );
    }
}

/// ClusterResourceBinding mutation on CREATE (Karmada `/mutate-clusterresourcebinding`).
pub fn default_cluster_resource_binding(crb: &mut ClusterResourceBinding, new_permanent_id: &str) {
    if label_empty(&crb.metadata, CLUSTER_RESOURCE_BINDING_PERMANENT_ID_LABEL) {
        set_label(
            &mut crb.metadata,
            CLUSTER_RESOURCE_BINDING_PERMANENT_ID_LABEL,
            new_permanent_id,
        );
    }
}

/// MultiClusterService mutation (Karmada `/mutate-multiclusterservice`).
pub fn default_multi_cluster_service(m: &mut MultiClusterService, new_permanent_id: &str) {
    if label_empty(&m.metadata, MULTI_CLUSTER_SERVICE_PERMANENT_ID_LABEL) {
        set_label(
            &mut m.metadata,
            MULTI_CLUSTER_SERVICE_PERMANENT_ID_LABEL,
            new_permanent_id,
        );
    }
}

/// Work mutation (Karmada `/mutate-work`): permanent-id label when absent;
/// every manifest pruned ([`prune_manifest`], plus Job
/// `ttlSecondsAfterFinished`), the Work's permanent id copied onto it and
/// its managed-labels/annotations recorded.
pub fn default_work(w: &mut Work, new_permanent_id: &str) {
    if label_empty(&w.metadata, WORK_PERMANENT_ID_LABEL) {
        set_label(&mut w.metadata, WORK_PERMANENT_ID_LABEL, new_permanent_id);
    }
    let id = w
        .metadata
        .labels
        .as_ref()
        .and_then(|l| l.get(WORK_PERMANENT_ID_LABEL))
        .cloned()
        .unwrap_or_default();
    for raw in &mut w.spec.workload.manifests {
        let mut m = raw.value();
        prune_manifest(&mut m);
        if m.get("kind").and_then(Value::as_str) == Some("Job")
            && let Some(spec) = m.get_mut("spec").and_then(Value::as_object_mut)
        {
            spec.remove("ttlSecondsAfterFinished");
        }
        record_managed_annotations(&mut m);
        if !id.is_empty() {
            set_value_label(&mut m, WORK_PERMANENT_ID_LABEL, &id);
        }
        record_managed_labels(&mut m);
        *raw = RawJson::from(m);
    }
}

fn meta_map<'a>(obj: &'a mut Value, field: &str) -> Option<&'a mut serde_json::Map<String, Value>> {
    let root = obj.as_object_mut()?;
    let meta = root
        .entry("metadata")
        .or_insert_with(|| Value::Object(Default::default()));
    let meta = meta.as_object_mut()?;
    let m = meta
        .entry(field)
        .or_insert_with(|| Value::Object(Default::default()));
    if !m.is_object() {
        *m = Value::Object(Default::default());
    }
    m.as_object_mut()
}

fn set_value_label(obj: &mut Value, key: &str, value: &str) {
    if let Some(l) = meta_map(obj, "labels") {
        l.insert(key.to_string(), Value::String(value.to_string()));
    }
}

/// Records `resourcetemplate.karmada.io/managed-annotations` (Karmada `RecordManagedAnnotations`).
pub fn record_managed_annotations(obj: &mut Value) {
    let Some(a) = meta_map(obj, "annotations") else {
        return;
    };
    let mut keys: Vec<String> = vec![
        MANAGED_ANNOTATIONS_ANNOTATION.into(),
        MANAGED_LABELS_ANNOTATION.into(),
    ];
    keys.extend(
        a.keys()
            .filter(|k| *k != MANAGED_ANNOTATIONS_ANNOTATION && *k != MANAGED_LABELS_ANNOTATION)
            .cloned(),
    );
    keys.sort();
    a.insert(
        MANAGED_ANNOTATIONS_ANNOTATION.into(),
        Value::String(keys.join(",")),
    );
}

/// Records `resourcetemplate.karmada.io/managed-labels` (Karmada `RecordManagedLabels`).
pub fn record_managed_labels(obj: &mut Value) {
    let mut keys: Vec<String> = obj
        .pointer("/metadata/labels")
        .and_then(Value::as_object)
        .map(|l| l.keys().cloned().collect())
        .unwrap_or_default();
    keys.sort();
    if let Some(a) = meta_map(obj, "annotations") {
        a.insert(
            MANAGED_LABELS_ANNOTATION.into(),
            Value::String(keys.join(",")),
        );
    }
}

fn remove_path(obj: &mut Value, path: &[&str]) {
    let Some((last, parents)) = path.split_last() else {
        return;
    };
    let mut cur = obj;
    for p in parents {
        match cur.get_mut(*p) {
            Some(next) => cur = next,
            None => return,
        }
    }
    if let Some(m) = cur.as_object_mut() {
        m.remove(*last);
    }
}

/// Removes the fields that never go into a member manifest (Karmada
/// `prune.RemoveIrrelevantFields`): server-set metadata and status, plus
/// per-kind fields (Deployment revision annotations, generated Job selector
/// labels, Service cluster IPs, ServiceAccount token secrets,
/// service-account-token Secret data, PVC selected-node annotation).
pub fn prune_manifest(obj: &mut Value) {
    for f in [
        "creationTimestamp",
        "deletionTimestamp",
        "deletionGracePeriodSeconds",
        "generation",
        "managedFields",
        "resourceVersion",
        "selfLink",
        "uid",
        "ownerReferences",
        "finalizers",
    ] {
        remove_path(obj, &["metadata", f]);
    }
    remove_path(obj, &["status"]);
    let kind = obj
        .get("kind")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    match kind.as_str() {
        "Deployment" => {
            remove_path(
                obj,
                &[
                    "metadata",
                    "annotations",
                    "deployment.kubernetes.io/revision",
                ],
            );
            remove_path(
                obj,
                &[
                    "metadata",
                    "annotations",
                    "deployment.kubernetes.io/revision-history",
                ],
            );
        }
        "Job" if obj.pointer("/spec/manualSelector").and_then(Value::as_bool) != Some(true) => {
            for k in ["controller-uid", "batch.kubernetes.io/controller-uid"] {
                remove_path(obj, &["spec", "selector", "matchLabels", k]);
            }
            for k in [
                "controller-uid",
                "job-name",
                "batch.kubernetes.io/controller-uid",
                "batch.kubernetes.io/job-name",
            ] {
                remove_path(obj, &["spec", "template", "metadata", "labels", k]);
            }
        }
        "Service" => {
            if let Some(ip) = obj.pointer("/spec/clusterIP").and_then(Value::as_str)
                && ip != "None"
            {
                remove_path(obj, &["spec", "clusterIP"]);
                remove_path(obj, &["spec", "clusterIPs"]);
            }
        }
        "ServiceAccount" => {
            let prefix = format!(
                "{}-token-",
                obj.pointer("/metadata/name")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
            );
            if let Some(list) = obj.get_mut("secrets").and_then(Value::as_array_mut) {
                list.retain(|s| {
                    !s.get("name")
                        .and_then(Value::as_str)
                        .is_some_and(|n| n.starts_with(&prefix))
                });
            }
        }
        "Secret"
            if obj.get("type").and_then(Value::as_str)
                == Some("kubernetes.io/service-account-token") =>
        {
            remove_path(
                obj,
                &[
                    "metadata",
                    "annotations",
                    "kubernetes.io/service-account.uid",
                ],
            );
            if let Some(m) = obj.as_object_mut() {
                m.insert("data".into(), Value::Null);
            }
        }
        "PersistentVolumeClaim" => {
            remove_path(
                obj,
                &[
                    "metadata",
                    "annotations",
                    "volume.kubernetes.io/selected-node",
                ],
            );
        }
        _ => {}
    }
}

fn rules(stabilization: Option<i32>, policies: Vec<(&str, i32, i32)>) -> HPAScalingRules {
    HPAScalingRules {
        stabilization_window_seconds: stabilization,
        select_policy: Some("Max".into()),
        policies: Some(
            policies
                .into_iter()
                .map(|(t, v, p)| HPAScalingPolicy {
                    type_: t.into(),
                    value: v,
                    period_seconds: p,
                })
                .collect(),
        ),
        tolerance: None,
    }
}

/// Merges user scaling rules over defaults the way Karmada's
/// `copyHPAScalingRules` does: selectPolicy, stabilizationWindowSeconds and
/// policies are taken from the user when set; other fields (tolerance) are not
/// carried over, as in Karmada.
fn merge_rules(user: Option<&HPAScalingRules>, mut defaults: HPAScalingRules) -> HPAScalingRules {
    if let Some(u) = user {
        if u.select_policy.is_some() {
            defaults.select_policy = u.select_policy.clone();
        }
        if u.stabilization_window_seconds.is_some() {
            defaults.stabilization_window_seconds = u.stabilization_window_seconds;
        }
        if u.policies.is_some() {
            defaults.policies = u.policies.clone();
        }
    }
    defaults
}

/// FederatedHPA mutation (Karmada `SetDefaultsFederatedHPA`): minReplicas 1;
/// metrics default to cpu Utilization 80; when `behavior` is set, scaleUp
/// defaults to stabilization 0, Max, [Pods 4/15s, Percent 100/15s] and
/// scaleDown to no stabilization, Max, [Percent 100/15s].
pub fn default_federated_hpa(h: &mut FederatedHPA) {
    h.spec.min_replicas.get_or_insert(1);
    if h.spec.metrics.is_empty() {
        h.spec.metrics = vec![MetricSpec {
            type_: "Resource".into(),
            resource: Some(ResourceMetricSource {
                name: "cpu".into(),
                target: MetricTarget {
                    type_: "Utilization".into(),
                    average_utilization: Some(80),
                    ..Default::default()
                },
            }),
            ..Default::default()
        }];
    }
    if let Some(b) = &mut h.spec.behavior {
        b.scale_up = Some(merge_rules(
            b.scale_up.as_ref(),
            rules(Some(0), vec![("Pods", 4, 15), ("Percent", 100, 15)]),
        ));
        b.scale_down = Some(merge_rules(
            b.scale_down.as_ref(),
            rules(None, vec![("Percent", 100, 15)]),
        ));
    }
}

/// The default 9-grade cluster resource model (Karmada
/// `CustomizedClusterResourceModeling`): cpu [0,1),[1,2),[2,4),...,[128,∞)
/// and memory [0,4Gi),[4Gi,16Gi),[16Gi,32Gi),...,[1024Gi,∞).
pub fn default_resource_models() -> Vec<ResourceModel> {
    let cpu = [0i64, 1, 2, 4, 8, 16, 32, 64, 128];
    let mem_gi = [0i64, 4, 16, 32, 64, 128, 256, 512, 1024];
    let max = i64::MAX.to_string();
    (0..9)
        .map(|g| {
            let cpu_max = if g == 8 {
                max.clone()
            } else {
                cpu[g + 1].to_string()
            };
            let mem_max = if g == 8 {
                max.clone()
            } else {
                format!("{}Gi", mem_gi[g + 1])
            };
            let mem_min = if g == 0 {
                "0".to_string()
            } else {
                format!("{}Gi", mem_gi[g])
            };
            ResourceModel {
                grade: g as u32,
                ranges: vec![
                    ResourceModelRange {
                        name: "cpu".into(),
                        min: Quantity(cpu[g].to_string()),
                        max: Quantity(cpu_max),
                    },
                    ResourceModelRange {
                        name: "memory".into(),
                        min: Quantity(mem_min),
                        max: Quantity(mem_max),
                    },
                ],
            }
        })
        .collect()
}

/// Cluster create preparation of the aggregated API server (Karmada
/// cluster `Strategy.PrepareForCreate`): status cleared, generation 1, and
/// the default resource models when none are given, else the given ones
/// standardised ([`standardize_resource_models`]). Runs before validation.
pub fn prepare_cluster_for_create(c: &mut Cluster) {
    c.status = None;
    c.metadata.generation = Some(1);
    if c.spec.resource_models.is_empty() {
        c.spec.resource_models = default_resource_models();
    } else {
        standardize_resource_models(&mut c.spec.resource_models);
    }
}

/// Cluster update preparation (Karmada `Strategy.PrepareForUpdate`): the old
/// status is kept, the generation bumps when the spec changed, resource
/// models are standardised. Runs before validation.
pub fn prepare_cluster_for_update(c: &mut Cluster, old: &Cluster) {
    c.status = old.status.clone();
    let old_generation = old.metadata.generation.unwrap_or(0);
    c.metadata.generation = Some(if c.spec != old.spec {
        old_generation + 1
    } else {
        old_generation
    });
    if !c.spec.resource_models.is_empty() {
        standardize_resource_models(&mut c.spec.resource_models);
    }
}

/// Karmada `StandardizeClusterResourceModels`: grades sorted, the first
/// grade's minimums set to 0 and the last grade's maximums to MaxInt64.
pub fn standardize_resource_models(models: &mut [ResourceModel]) {
    if models.is_empty() {
        return;
    }
    models.sort_by_key(|m| m.grade);
    for r in &mut models[0].ranges {
        r.min = Quantity("0".into());
    }
    if let Some(last) = models.last_mut() {
        for r in &mut last.ranges {
            r.max = Quantity(i64::MAX.to_string());
        }
    }
}

/// Cluster canonicalisation after validation (Karmada `MutateCluster`):
/// NoExecute taints without `timeAdded` get `now`; the deprecated `zone`
/// moves into `zones` when `zones` is empty.
pub fn canonicalize_cluster(c: &mut Cluster, now: &Time) {
    for t in &mut c.spec.taints {
        if t.effect == "NoExecute" && t.time_added.is_none() {
            t.time_added = Some(now.clone());
        }
    }
    if !c.spec.zone.is_empty() && c.spec.zones.is_empty() {
        c.spec.zones = vec![c.spec.zone.clone()];
        c.spec.zone.clear();
    }
}

#[cfg(test)]
mod tests;
