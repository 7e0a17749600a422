//! Binding → Work rendering: the Work the binding controller writes into a
//! member's execution namespace. Mirrors Karmada's
//! `pkg/controllers/binding/common.go` (`ensureWork`) and
//! `pkg/controllers/ctrlutil/work.go` (`CreateOrUpdateWork`): revise replicas
//! (native interpreter), divide Job completions, apply override policies,
//! then the labels and annotations Karmada puts on the Work and on its
//! manifest. Start at [`render_work`].

use std::collections::BTreeMap;

use kube::core::ObjectMeta;
use serde_json::Value;

use crate::cluster::Cluster;
use crate::defaults::{prune_manifest, record_managed_annotations, record_managed_labels};
use crate::names::{execution_space_name, work_name};
use crate::overrides::{self, applied_annotation};
use crate::policy::{
    APPLIED_CLUSTER_OVERRIDES_ANNOTATION, APPLIED_OVERRIDES_ANNOTATION, ClusterOverridePolicy,
    OverridePolicy,
};
use crate::raw::RawJson;
use crate::work::{
    CLUSTER_RESOURCE_BINDING_PERMANENT_ID_LABEL, CONFLICT_RESOLUTION_ANNOTATION,
    EXECUTION_CONTROLLER_FINALIZER, MANAGED_LABEL, RESOURCE_BINDING_PERMANENT_ID_LABEL,
    ResourceBindingSpec, TargetCluster, WORK_PERMANENT_ID_LABEL, Work, WorkSpec, WorkloadTemplate,
};

/// Annotation with the template's `metadata.generation`.
pub const TEMPLATE_GENERATION_ANNOTATION: &str = "resourcetemplate.karmada.io/generation";
/// Annotation with the template's UID.
pub const TEMPLATE_UID_ANNOTATION: &str = "resourcetemplate.karmada.io/uid";
/// Annotation naming a ResourceBinding's namespace.
pub const BINDING_NAMESPACE_ANNOTATION: &str = "resourcebinding.karmada.io/namespace";
/// Annotation naming a ResourceBinding.
pub const BINDING_NAME_ANNOTATION: &str = "resourcebinding.karmada.io/name";
/// Annotation naming a ClusterResourceBinding.
pub const CLUSTER_BINDING_NAME_ANNOTATION: &str = "clusterresourcebinding.karmada.io/name";
/// Annotation naming the Work on its manifest.
pub const WORK_NAME_ANNOTATION: &str = "work.karmada.io/name";
/// Annotation naming the Work's namespace on its manifest.
pub const WORK_NAMESPACE_ANNOTATION: &str = "work.karmada.io/namespace";

/// Which binding a Work belongs to.
#[derive(Debug, Clone, Copy)]
pub struct BindingRef<'a> {
    /// Binding name.
    pub name: &'a str,
    /// Binding namespace; empty for a ClusterResourceBinding.
    pub namespace: &'a str,
    /// The binding's permanent id label value.
    pub permanent_id: &'a str,
}

/// Everything one Work depends on.
#[derive(Debug, Clone, Copy)]
pub struct RenderInput<'a> {
    /// The resource template (as stored in the control plane).
    pub template: &'a Value,
    /// The binding.
    pub binding: BindingRef<'a>,
    /// The binding spec.
    pub spec: &'a ResourceBindingSpec,
    /// The target cluster and its scheduled replicas.
    pub target: &'a TargetCluster,
    /// The Cluster object (for override rule targeting).
    pub cluster: &'a Cluster,
    /// This cluster's share of a Job's completions, when divided.
    pub job_completions: Option<i32>,
    /// All ClusterOverridePolicies.
    pub cluster_overrides: &'a [ClusterOverridePolicy],
    /// OverridePolicies (those of other namespaces are ignored).
    pub overrides: &'a [OverridePolicy],
    /// The existing Work's labels, if it exists (its `work.karmada.io/permanent-id`
    /// is copied onto the manifest, as Karmada does on update).
    pub existing_labels: Option<&'a BTreeMap<String, String>>,
}

/// What Karmada's CreateOrUpdateWork puts on every manifest: the managed
/// label, and the template's uid and the Work's name and namespace as
/// annotations.
pub fn mark_manifest(obj: &mut Value, template_uid: &str, work_name: &str, work_namespace: &str) {
    set_meta(obj, "labels", MANAGED_LABEL, "true");
    set_meta(obj, "annotations", TEMPLATE_UID_ANNOTATION, template_uid);
    set_meta(obj, "annotations", WORK_NAME_ANNOTATION, work_name);
    set_meta(
        obj,
        "annotations",
        WORK_NAMESPACE_ANNOTATION,
        work_namespace,
    );
}

/// Sets `metadata.<field>.<key>` (labels or annotations) to `value`,
/// creating the maps as needed.
fn set_meta(obj: &mut Value, field: &str, key: &str, value: &str) {
    let Some(root) = obj.as_object_mut() else {
        return;
    };
    let meta = root
        .entry("metadata")
        .or_insert_with(|| Value::Object(Default::default()));
    let Some(meta) = meta.as_object_mut() else {
        return;
    };
    let map = meta
        .entry(field)
        .or_insert_with(|| Value::Object(Default::default()));
    if !map.is_object() {
        *map = Value::Object(Default::default());
    }
    if let Some(m) = map.as_object_mut() {
        m.insert(key.to_string(), Value::String(value.to_string()));
    }
}

fn set_spec_int(obj: &mut Value, field: &str, value: i32) {
    if let Some(spec) = obj.get_mut("spec").and_then(Value::as_object_mut) {
        spec.insert(field.to_string(), Value::from(value));
    }
}

/// The native ReviseReplica interpreter: Deployment, ReplicaSet and
/// StatefulSet get `spec.replicas`, Job gets `spec.parallelism`. Returns
/// whether the kind has the hook.
pub fn revise_replica(obj: &mut Value, replicas: i32) -> bool {
    match obj.get("kind").and_then(Value::as_str) {
        Some("Deployment" | "ReplicaSet" | "StatefulSet") => {
            set_spec_int(obj, "replicas", replicas);
            true
        }
        Some("Job") => {
            set_spec_int(obj, "parallelism", replicas);
            true
        }
        _ => false,
    }
}

/// The conflict-resolution annotation value (Karmada `mergeConflictResolution`):
/// the template's own `overwrite`/`abort` annotation wins; else `overwrite`
/// when the binding says Overwrite, else `abort`.
pub fn conflict_resolution(template: &Value, binding_conflict_resolution: &str) -> &'static str {
    match template
        .pointer("/metadata/annotations")
        .and_then(|a| a.get(CONFLICT_RESOLUTION_ANNOTATION))
        .and_then(Value::as_str)
    {
        Some("overwrite") => "overwrite",
        Some("abort") => "abort",
        _ if binding_conflict_resolution == "Overwrite" => "overwrite",
        _ => "abort",
    }
}

/// Whether dispatching to this cluster is suspended (Karmada
/// `shouldSuspendDispatching`).
pub fn suspend_dispatching(spec: &ResourceBindingSpec, cluster: &str) -> bool {
    let Some(s) = &spec.suspension else {
        return false;
    };
    s.dispatching == Some(true)
        || s.dispatching_on_clusters
            .as_ref()
            .is_some_and(|c| c.cluster_names.iter().any(|n| n == cluster))
}

/// Renders the Work for one target cluster (see the module docs). The Work
/// has no permanent id yet on first creation: the mutating webhook adds it.
pub fn render_work(input: &RenderInput<'_>) -> Result<Work, overrides::Error> {
    let mut obj = input.template.clone();
    let is_workload = input.spec.replicas > 0 || input.spec.replica_requirements.is_some();
    if is_workload {
        revise_replica(&mut obj, input.target.replicas);
    }
    if let Some(c) = input.job_completions {
        set_spec_int(&mut obj, "completions", c);
    }
    let applied = overrides::apply_override_policies(
        &mut obj,
        input.cluster,
        input.cluster_overrides,
        input.overrides,
    )?;

    let cluster_scoped = input.binding.namespace.is_empty();
    let id_label = if cluster_scoped {
        CLUSTER_RESOURCE_BINDING_PERMANENT_ID_LABEL
    } else {
        RESOURCE_BINDING_PERMANENT_ID_LABEL
    };
    set_meta(&mut obj, "labels", id_label, input.binding.permanent_id);
    let mut work_labels =
        BTreeMap::from([(id_label.to_string(), input.binding.permanent_id.to_string())]);

    let mut work_annotations = BTreeMap::new();
    if let Some(generation) = input
        .template
        .pointer("/metadata/generation")
        .and_then(Value::as_i64)
        && generation > 0
    {
        set_meta(
            &mut obj,
            "annotations",
            TEMPLATE_GENERATION_ANNOTATION,
            &generation.to_string(),
        );
    }
    if cluster_scoped {
        set_meta(
            &mut obj,
            "annotations",
            CLUSTER_BINDING_NAME_ANNOTATION,
            input.binding.name,
        );
        work_annotations.insert(
            CLUSTER_BINDING_NAME_ANNOTATION.to_string(),
            input.binding.name.to_string(),
        );
    } else {
        set_meta(
            &mut obj,
            "annotations",
            BINDING_NAMESPACE_ANNOTATION,
            input.binding.namespace,
        );
        set_meta(
            &mut obj,
            "annotations",
            BINDING_NAME_ANNOTATION,
            input.binding.name,
        );
        work_annotations.insert(
            BINDING_NAMESPACE_ANNOTATION.to_string(),
            input.binding.namespace.to_string(),
        );
        work_annotations.insert(
            BINDING_NAME_ANNOTATION.to_string(),
            input.binding.name.to_string(),
        );
    }
    let conflict = conflict_resolution(&obj, &input.spec.conflict_resolution);
    work_annotations.insert(
        CONFLICT_RESOLUTION_ANNOTATION.to_string(),
        conflict.to_string(),
    );
    if let Some(a) = applied_annotation(&applied.cluster) {
        work_annotations.insert(APPLIED_CLUSTER_OVERRIDES_ANNOTATION.to_string(), a);
    }
    if let Some(a) = applied_annotation(&applied.namespaced) {
        work_annotations.insert(APPLIED_OVERRIDES_ANNOTATION.to_string(), a);
    }

    let s = |p: &str| {
        obj.pointer(p)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string()
    };
    let (kind, name, namespace, uid) = (
        s("/kind"),
        s("/metadata/name"),
        s("/metadata/namespace"),
        s("/metadata/uid"),
    );
    let wname = work_name(&kind, &name, &namespace);
    let wnamespace = execution_space_name(&input.target.name);

    // CreateOrUpdateWork
    mark_manifest(&mut obj, &uid, &wname, &wnamespace);
    set_meta(
        &mut obj,
        "annotations",
        CONFLICT_RESOLUTION_ANNOTATION,
        conflict,
    );
    prune_manifest(&mut obj);
    if kind == "Job"
        && let Some(spec) = obj.get_mut("spec").and_then(Value::as_object_mut)
    {
        spec.remove("ttlSecondsAfterFinished");
    }
    if let Some(existing) = input.existing_labels {
        for (k, v) in existing {
            work_labels.entry(k.clone()).or_insert_with(|| v.clone());
        }
    }
    record_managed_annotations(&mut obj);
    if let Some(id) = work_labels
        .get(WORK_PERMANENT_ID_LABEL)
        .filter(|v| !v.is_empty())
    {
        let id = id.clone();
        set_meta(&mut obj, "labels", WORK_PERMANENT_ID_LABEL, &id);
    }
    record_managed_labels(&mut obj);

    Ok(Work {
        metadata: ObjectMeta {
            name: Some(wname),
            namespace: Some(wnamespace),
            finalizers: Some(vec![EXECUTION_CONTROLLER_FINALIZER.to_string()]),
            labels: Some(work_labels),
            annotations: Some(work_annotations),
            ..Default::default()
        },
        spec: WorkSpec {
            workload: WorkloadTemplate {
                manifests: vec![RawJson::from(obj)],
            },
            suspend_dispatching: Some(suspend_dispatching(input.spec, &input.target.name)),
            preserve_resources_on_deletion: Some(
                input.spec.preserve_resources_on_deletion.unwrap_or(false),
            ),
        },
        status: None,
    })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::testutil::{cluster, yaml};

    fn nginx() -> Value {
        json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "nginx", "namespace": "default", "uid": "7a2c", "generation": 1, "resourceVersion": "9",
                         "labels": {"app": "nginx", "propagationpolicy.karmada.io/permanent-id": "3f1e"},
                         "annotations": {"propagationpolicy.karmada.io/name": "nginx-propagation", "propagationpolicy.karmada.io/namespace": "default"}},
            "spec": {"replicas": 2, "template": {"spec": {"containers": [{"name": "nginx", "image": "nginx"}]}}},
            "status": {"replicas": 2}
        })
    }

    fn spec() -> ResourceBindingSpec {
        yaml(
            "{resource: {apiVersion: apps/v1, kind: Deployment, namespace: default, name: nginx, uid: 7a2c}, replicas: 2}",
        )
    }

    #[test]
    fn nginx_work_matches_the_reference_example() {
        let template = nginx();
        let spec = spec();
        let target = TargetCluster::new("member1", 1);
        let m1 = cluster("member1");
        let w = render_work(&RenderInput {
            template: &template,
            binding: BindingRef {
                name: "nginx-deployment",
                namespace: "default",
                permanent_id: "0b6c",
            },
            spec: &spec,
            target: &target,
            cluster: &m1,
            job_completions: None,
            cluster_overrides: &[],
            overrides: &[],
            existing_labels: Some(&BTreeMap::from([(
                WORK_PERMANENT_ID_LABEL.to_string(),
                "5d0e".to_string(),
            )])),
        })
        .unwrap();
        assert_eq!(w.metadata.name.as_deref(), Some("nginx-687f7fb96f"));
        assert_eq!(w.metadata.namespace.as_deref(), Some("karmada-es-member1"));
        assert_eq!(
            w.metadata.finalizers,
            Some(vec!["karmada.io/execution-controller".to_string()])
        );
        let wa = w.metadata.annotations.clone().unwrap();
        assert_eq!(wa["resourcebinding.karmada.io/name"], "nginx-deployment");
        assert_eq!(wa["resourcebinding.karmada.io/namespace"], "default");
        assert_eq!(wa["work.karmada.io/conflict-resolution"], "abort");
        assert!(!wa.contains_key("policy.karmada.io/applied-overrides"));
        assert_eq!(w.spec.preserve_resources_on_deletion, Some(false));
        assert_eq!(w.spec.suspend_dispatching, Some(false));
        let m = &w.spec.workload.manifests[0].value();
        assert_eq!(m["spec"]["replicas"], 1);
        assert!(m.get("status").is_none());
        assert!(
            m.pointer("/metadata/uid").is_none()
                && m.pointer("/metadata/resourceVersion").is_none()
        );
        let labels = &m["metadata"]["labels"];
        assert_eq!(labels["karmada.io/managed"], "true");
        assert_eq!(labels["resourcebinding.karmada.io/permanent-id"], "0b6c");
        assert_eq!(labels["work.karmada.io/permanent-id"], "5d0e");
        let ann = &m["metadata"]["annotations"];
        assert_eq!(ann["resourcetemplate.karmada.io/generation"], "1");
        assert_eq!(ann["resourcetemplate.karmada.io/uid"], "7a2c");
        assert_eq!(ann["work.karmada.io/name"], "nginx-687f7fb96f");
        assert_eq!(ann["work.karmada.io/namespace"], "karmada-es-member1");
        assert_eq!(
            ann["resourcetemplate.karmada.io/managed-annotations"],
            "propagationpolicy.karmada.io/name,propagationpolicy.karmada.io/namespace,resourcebinding.karmada.io/name,resourcebinding.karmada.io/namespace,resourcetemplate.karmada.io/generation,resourcetemplate.karmada.io/managed-annotations,resourcetemplate.karmada.io/managed-labels,resourcetemplate.karmada.io/uid,work.karmada.io/conflict-resolution,work.karmada.io/name,work.karmada.io/namespace"
        );
        assert_eq!(
            ann["resourcetemplate.karmada.io/managed-labels"],
            "app,karmada.io/managed,propagationpolicy.karmada.io/permanent-id,resourcebinding.karmada.io/permanent-id,work.karmada.io/permanent-id"
        );
    }

    #[test]
    fn overrides_conflict_and_suspension() {
        let mut template = nginx();
        template["metadata"]["annotations"]["work.karmada.io/conflict-resolution"] =
            json!("overwrite");
        let mut spec = spec();
        spec.suspension = Some(yaml("{dispatchingOnClusters: {clusterNames: [member2]}}"));
        spec.preserve_resources_on_deletion = Some(true);
        let op: OverridePolicy = yaml(
            "apiVersion: policy.karmada.io/v1alpha1\nkind: OverridePolicy\nmetadata: {name: op, namespace: default}\nspec: {overrideRules: [{overriders: {plaintext: [{path: /spec/replicas, operator: replace, value: 5}]}}]}",
        );
        let target = TargetCluster::new("member2", 1);
        let m2 = cluster("member2");
        let w = render_work(&RenderInput {
            template: &template,
            binding: BindingRef {
                name: "nginx-deployment",
                namespace: "default",
                permanent_id: "0b6c",
            },
            spec: &spec,
            target: &target,
            cluster: &m2,
            job_completions: None,
            cluster_overrides: &[],
            overrides: &[op],
            existing_labels: None,
        })
        .unwrap();
        let m = &w.spec.workload.manifests[0].value();
        assert_eq!(
            m["spec"]["replicas"], 5,
            "overrides apply after replica revision"
        );
        assert_eq!(w.spec.suspend_dispatching, Some(true));
        assert_eq!(w.spec.preserve_resources_on_deletion, Some(true));
        let wa = w.metadata.annotations.unwrap();
        assert_eq!(wa["work.karmada.io/conflict-resolution"], "overwrite");
        assert!(wa["policy.karmada.io/applied-overrides"].contains("\"policyName\":\"op\""));
        assert!(
            m.pointer("/metadata/labels/work.karmada.io~1permanent-id")
                .is_none()
        );
    }

    #[test]
    fn cluster_scoped_jobs_and_non_workloads() {
        assert_eq!(conflict_resolution(&json!({}), "Overwrite"), "overwrite");
        assert_eq!(
            conflict_resolution(
                &json!({"metadata": {"annotations": {"work.karmada.io/conflict-resolution": "bogus"}}}),
                "Abort"
            ),
            "abort"
        );
        let mut job = json!({"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "pi", "namespace": "default"}, "spec": {"parallelism": 4, "completions": 8, "ttlSecondsAfterFinished": 5}});
        assert!(revise_replica(&mut job, 2));
        assert_eq!(job["spec"]["parallelism"], 2);
        let spec: ResourceBindingSpec = yaml(
            "{resource: {apiVersion: batch/v1, kind: Job, namespace: default, name: pi}, replicas: 4}",
        );
        let target = TargetCluster::new("m1", 2);
        let m1 = cluster("m1");
        let w = render_work(&RenderInput {
            template: &job,
            binding: BindingRef {
                name: "pi-job",
                namespace: "default",
                permanent_id: "x",
            },
            spec: &spec,
            target: &target,
            cluster: &m1,
            job_completions: Some(4),
            cluster_overrides: &[],
            overrides: &[],
            existing_labels: None,
        })
        .unwrap();
        let m = &w.spec.workload.manifests[0].value();
        assert_eq!(
            (
                m["spec"]["parallelism"].clone(),
                m["spec"]["completions"].clone()
            ),
            (json!(2), json!(4))
        );
        assert!(m["spec"].get("ttlSecondsAfterFinished").is_none());
        // A cluster-scoped template bound by a ClusterResourceBinding.
        let ns = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "team"}});
        let spec: ResourceBindingSpec =
            yaml("{resource: {apiVersion: v1, kind: Namespace, name: team}}");
        let target = TargetCluster::new("m1", 0);
        let w = render_work(&RenderInput {
            template: &ns,
            binding: BindingRef {
                name: "team-namespace",
                namespace: "",
                permanent_id: "c1",
            },
            spec: &spec,
            target: &target,
            cluster: &m1,
            job_completions: None,
            cluster_overrides: &[],
            overrides: &[],
            existing_labels: None,
        })
        .unwrap();
        assert_eq!(
            w.metadata.annotations.unwrap()["clusterresourcebinding.karmada.io/name"],
            "team-namespace"
        );
        assert_eq!(
            w.metadata.labels.unwrap()["clusterresourcebinding.karmada.io/permanent-id"],
            "c1"
        );
        assert_eq!(
            w.metadata.name,
            Some(crate::names::work_name("Namespace", "team", ""))
        );
    }
}
