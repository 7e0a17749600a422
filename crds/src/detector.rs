//! What Karmada's resource detector writes once a policy claims a template
//! (`pkg/detector/detector.go` `BuildResourceBinding` /
//! `BuildClusterResourceBinding`, `pkg/detector/claim.go`): the claim
//! labels and annotations, and the (Cluster)ResourceBinding. Pair with
//! [`crate::matching::select_propagation_policy`].

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::core::ObjectMeta;
use serde_json::Value;

use crate::interpreter;
use crate::matching::Claim;
use crate::names::binding_name;
use crate::policy::{
    CLUSTER_PROPAGATION_POLICY_NAME_ANNOTATION, CLUSTER_PROPAGATION_POLICY_PERMANENT_ID_LABEL,
    PROPAGATION_POLICY_NAME_ANNOTATION, PROPAGATION_POLICY_NAMESPACE_ANNOTATION,
    PROPAGATION_POLICY_PERMANENT_ID_LABEL, PropagationSpec,
};
use crate::work::{
    BINDING_CONTROLLER_FINALIZER, BindingSuspension, CLUSTER_RESOURCE_BINDING_CONTROLLER_FINALIZER,
    ClusterResourceBinding, ClusterResourceBindingSpec, ObjectReference, ResourceBinding,
    ResourceBindingSpec,
};

/// The claim a policy puts on a template and on its binding (Karmada
/// `AddPPClaimMetadata` / `AddCPPClaimMetadata`): labels and annotations.
pub fn claim_metadata(claim: &Claim<'_>) -> (BTreeMap<String, String>, BTreeMap<String, String>) {
    let id = |m: &ObjectMeta, key: &str| {
        m.labels
            .as_ref()
            .and_then(|l| l.get(key))
            .cloned()
            .unwrap_or_default()
    };
    match claim {
        Claim::Propagation(p) => (
            BTreeMap::from([(
                PROPAGATION_POLICY_PERMANENT_ID_LABEL.to_string(),
                id(&p.metadata, PROPAGATION_POLICY_PERMANENT_ID_LABEL),
            )]),
            BTreeMap::from([
                (
                    PROPAGATION_POLICY_NAMESPACE_ANNOTATION.to_string(),
                    p.metadata.namespace.clone().unwrap_or_default(),
                ),
                (
                    PROPAGATION_POLICY_NAME_ANNOTATION.to_string(),
                    p.metadata.name.clone().unwrap_or_default(),
                ),
            ]),
        ),
        Claim::ClusterPropagation(p) => (
            BTreeMap::from([(
                CLUSTER_PROPAGATION_POLICY_PERMANENT_ID_LABEL.to_string(),
                id(&p.metadata, CLUSTER_PROPAGATION_POLICY_PERMANENT_ID_LABEL),
            )]),
            BTreeMap::from([(
                CLUSTER_PROPAGATION_POLICY_NAME_ANNOTATION.to_string(),
                p.metadata.name.clone().unwrap_or_default(),
            )]),
        ),
    }
}

/// The binding the detector creates for a claimed template.
#[derive(Debug, Clone, PartialEq)]
pub enum Binding {
    /// For namespaced templates.
    Namespaced(ResourceBinding),
    /// For cluster-scoped templates (claimed by a ClusterPropagationPolicy).
    Cluster(ClusterResourceBinding),
}

fn s(v: &Value, p: &str) -> String {
    v.pointer(p)
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string()
}

fn binding_spec(
    template: &Value,
    policy: &PropagationSpec,
    namespaced: bool,
) -> ResourceBindingSpec {
    let mut spec = ResourceBindingSpec {
        resource: ObjectReference {
            api_version: s(template, "/apiVersion"),
            kind: s(template, "/kind"),
            namespace: if namespaced {
                s(template, "/metadata/namespace")
            } else {
                String::new()
            },
            name: s(template, "/metadata/name"),
            uid: s(template, "/metadata/uid"),
            resource_version: s(template, "/metadata/resourceVersion"),
        },
        propagate_deps: policy.propagate_deps,
        scheduler_name: policy.scheduler_name.clone(),
        placement: Some(policy.placement.clone()),
        failover: policy.failover.clone(),
        conflict_resolution: policy.conflict_resolution.clone(),
        preserve_resources_on_deletion: policy.preserve_resources_on_deletion,
        suspension: policy.suspension.as_ref().map(|s| BindingSuspension {
            dispatching: s.dispatching,
            dispatching_on_clusters: s.dispatching_on_clusters.clone(),
            scheduling: None,
        }),
        ..Default::default()
    };
    if let Some((replicas, requirements)) = interpreter::replicas(template) {
        spec.replicas = replicas;
        spec.replica_requirements = requirements;
    }
    spec
}

fn owner(template: &Value) -> OwnerReference {
    OwnerReference {
        api_version: s(template, "/apiVersion"),
        kind: s(template, "/kind"),
        name: s(template, "/metadata/name"),
        uid: s(template, "/metadata/uid"),
        controller: Some(true),
        block_owner_deletion: Some(true),
    }
}

/// Builds the (Cluster)ResourceBinding for `template` claimed by `claim`
/// (Karmada `BuildResourceBinding` / `BuildClusterResourceBinding`): name
/// `<name>-<kind>`, controller owner reference to the template, binding
/// finalizer, claim labels/annotations, the policy's propagation settings and
/// the replicas/requirements of the native interpreter. `spec.clusters` is
/// left empty (the scheduler owns it; updates must keep the existing value),
/// and `schedulePriority` (which needs the PriorityClass) is left to the caller.
pub fn build_binding(template: &Value, claim: &Claim<'_>) -> Binding {
    let (labels, annotations) = claim_metadata(claim);
    let namespace = s(template, "/metadata/namespace");
    let policy = match claim {
        Claim::Propagation(p) => &p.spec,
        Claim::ClusterPropagation(p) => &p.spec.0,
    };
    let name = binding_name(&s(template, "/kind"), &s(template, "/metadata/name"));
    if namespace.is_empty() {
        return Binding::Cluster(ClusterResourceBinding {
            metadata: ObjectMeta {
                name: Some(name),
                owner_references: Some(vec![owner(template)]),
                finalizers: Some(vec![
                    CLUSTER_RESOURCE_BINDING_CONTROLLER_FINALIZER.to_string(),
                ]),
                labels: Some(labels),
                annotations: Some(annotations),
                ..Default::default()
            },
            spec: ClusterResourceBindingSpec(binding_spec(template, policy, false)),
            status: None,
        });
    }
    Binding::Namespaced(ResourceBinding {
        metadata: ObjectMeta {
            name: Some(name),
            namespace: Some(namespace),
            owner_references: Some(vec![owner(template)]),
            finalizers: Some(vec![BINDING_CONTROLLER_FINALIZER.to_string()]),
            labels: Some(labels),
            annotations: Some(annotations),
            ..Default::default()
        },
        spec: binding_spec(template, policy, true),
        status: None,
    })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::policy::{ClusterPropagationPolicy, PropagationPolicy};
    use crate::testutil::yaml;

    fn nginx() -> Value {
        json!({"apiVersion": "apps/v1", "kind": "Deployment",
               "metadata": {"name": "nginx", "namespace": "default", "uid": "7a2c", "resourceVersion": "42"},
               "spec": {"replicas": 2, "template": {"spec": {"containers": [{"name": "nginx", "resources": {"requests": {"cpu": "100m"}}}]}}}})
    }

    #[test]
    fn pp_claim_builds_a_resource_binding() {
        let pp: PropagationPolicy = yaml(
            "apiVersion: policy.karmada.io/v1alpha1\nkind: PropagationPolicy\nmetadata: {name: nginx-propagation, namespace: default, labels: {propagationpolicy.karmada.io/permanent-id: 3f1e}}\nspec:\n  resourceSelectors: [{apiVersion: apps/v1, kind: Deployment, name: nginx}]\n  conflictResolution: Abort\n  schedulerName: default-scheduler\n  suspension: {dispatching: true}\n  placement: {clusterAffinity: {clusterNames: [member1, member2]}}",
        );
        let Binding::Namespaced(rb) = build_binding(&nginx(), &Claim::Propagation(&pp)) else {
            panic!("expected a ResourceBinding")
        };
        assert_eq!(rb.metadata.name.as_deref(), Some("nginx-deployment"));
        assert_eq!(rb.metadata.namespace.as_deref(), Some("default"));
        assert_eq!(
            rb.metadata.finalizers,
            Some(vec!["karmada.io/binding-controller".to_string()])
        );
        let owner = &rb.metadata.owner_references.as_ref().unwrap()[0];
        assert_eq!(
            (
                owner.kind.as_str(),
                owner.uid.as_str(),
                owner.controller,
                owner.block_owner_deletion
            ),
            ("Deployment", "7a2c", Some(true), Some(true))
        );
        assert_eq!(
            rb.metadata.labels.as_ref().unwrap()["propagationpolicy.karmada.io/permanent-id"],
            "3f1e"
        );
        assert_eq!(
            rb.metadata.annotations.as_ref().unwrap()["propagationpolicy.karmada.io/name"],
            "nginx-propagation"
        );
        assert_eq!(
            rb.metadata.annotations.as_ref().unwrap()["propagationpolicy.karmada.io/namespace"],
            "default"
        );
        assert_eq!(rb.spec.replicas, 2);
        assert_eq!(
            rb.spec
                .replica_requirements
                .as_ref()
                .unwrap()
                .resource_request["cpu"]
                .0,
            "100m"
        );
        assert_eq!(rb.spec.resource.resource_version, "42");
        assert_eq!(rb.spec.scheduler_name, "default-scheduler");
        assert_eq!(rb.spec.suspension.as_ref().unwrap().dispatching, Some(true));
        assert!(rb.spec.clusters.is_empty());
    }

    #[test]
    fn cpp_claims_build_either_kind() {
        let cpp: ClusterPropagationPolicy = yaml(
            "apiVersion: policy.karmada.io/v1alpha1\nkind: ClusterPropagationPolicy\nmetadata: {name: everything, labels: {clusterpropagationpolicy.karmada.io/permanent-id: c1}}\nspec: {resourceSelectors: [{apiVersion: v1, kind: Namespace}]}",
        );
        let ns = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "team", "uid": "u"}});
        let Binding::Cluster(crb) = build_binding(&ns, &Claim::ClusterPropagation(&cpp)) else {
            panic!("expected a ClusterResourceBinding")
        };
        assert_eq!(crb.metadata.name.as_deref(), Some("team-namespace"));
        assert_eq!(
            crb.metadata.finalizers,
            Some(vec![
                "karmada.io/cluster-resource-binding-controller".to_string()
            ])
        );
        assert_eq!(
            crb.metadata.annotations.as_ref().unwrap()["clusterpropagationpolicy.karmada.io/name"],
            "everything"
        );
        assert_eq!(crb.spec.replicas, 0);
        assert!(crb.spec.replica_requirements.is_none());
        let Binding::Namespaced(rb) = build_binding(&nginx(), &Claim::ClusterPropagation(&cpp))
        else {
            panic!("expected a ResourceBinding")
        };
        assert_eq!(
            rb.metadata.labels.as_ref().unwrap()["clusterpropagationpolicy.karmada.io/permanent-id"],
            "c1"
        );
    }
}
