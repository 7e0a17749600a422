//! `policy.karmada.io/v1alpha1`: PropagationPolicy, ClusterPropagationPolicy,
//! OverridePolicy and ClusterOverridePolicy, with every type they share
//! (selectors, cluster affinity, placement, failover, overriders).
//!
//! Field names, optionality and CRD defaults mirror Karmada's
//! `pkg/apis/policy/v1alpha1/propagation_types.go` and `override_types.go`.
//! Start at [`PropagationSpec`] and [`OverrideSpec`]; the helpers on
//! [`Placement`] answer the questions the scheduler asks (which division
//! strategy, which affinity).

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{NodeSelectorRequirement, Toleration};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Label carrying a PropagationPolicy's permanent id (set by the mutating webhook).
pub const PROPAGATION_POLICY_PERMANENT_ID_LABEL: &str = "propagationpolicy.karmada.io/permanent-id";
/// Label carrying a ClusterPropagationPolicy's permanent id.
pub const CLUSTER_PROPAGATION_POLICY_PERMANENT_ID_LABEL: &str =
    "clusterpropagationpolicy.karmada.io/permanent-id";
/// Annotation naming the PropagationPolicy that claimed a resource template.
pub const PROPAGATION_POLICY_NAME_ANNOTATION: &str = "propagationpolicy.karmada.io/name";
/// Annotation naming the namespace of the PropagationPolicy that claimed a template.
pub const PROPAGATION_POLICY_NAMESPACE_ANNOTATION: &str = "propagationpolicy.karmada.io/namespace";
/// Annotation naming the ClusterPropagationPolicy that claimed a template.
pub const CLUSTER_PROPAGATION_POLICY_NAME_ANNOTATION: &str =
    "clusterpropagationpolicy.karmada.io/name";
/// Finalizer the webhook adds to every PropagationPolicy.
pub const PROPAGATION_POLICY_FINALIZER: &str = "karmada.io/propagation-policy-controller";
/// Finalizer the webhook adds to every ClusterPropagationPolicy.
pub const CLUSTER_PROPAGATION_POLICY_FINALIZER: &str =
    "karmada.io/cluster-propagation-policy-controller";
/// Annotation recording the placement the scheduler used on a binding.
pub const APPLIED_PLACEMENT_ANNOTATION: &str = "policy.karmada.io/applied-placement";
/// Annotation listing the OverridePolicies applied to a Work.
pub const APPLIED_OVERRIDES_ANNOTATION: &str = "policy.karmada.io/applied-overrides";
/// Annotation listing the ClusterOverridePolicies applied to a Work.
pub const APPLIED_CLUSTER_OVERRIDES_ANNOTATION: &str =
    "policy.karmada.io/applied-cluster-overrides";

/// `replicaSchedulingType: Duplicated` — every cluster gets the full replica count.
pub const REPLICA_SCHEDULING_DUPLICATED: &str = "Duplicated";
/// `replicaSchedulingType: Divided` — replicas are split across clusters.
pub const REPLICA_SCHEDULING_DIVIDED: &str = "Divided";
/// `replicaDivisionPreference: Aggregated` — as few clusters as possible.
pub const DIVISION_AGGREGATED: &str = "Aggregated";
/// `replicaDivisionPreference: Weighted` — by static or dynamic weights.
pub const DIVISION_WEIGHTED: &str = "Weighted";
/// `dynamicWeight: AvailableReplicas`.
pub const DYNAMIC_WEIGHT_AVAILABLE_REPLICAS: &str = "AvailableReplicas";
/// Spread constraint field values (`spreadByField`).
pub const SPREAD_BY_FIELD_CLUSTER: &str = "cluster";
/// `spreadByField: region`.
pub const SPREAD_BY_FIELD_REGION: &str = "region";
/// `spreadByField: zone`.
pub const SPREAD_BY_FIELD_ZONE: &str = "zone";
/// `spreadByField: provider`.
pub const SPREAD_BY_FIELD_PROVIDER: &str = "provider";
/// Purge modes of failover (`Directly`, `Gracefully`, `Never`).
pub const PURGE_MODE_DIRECTLY: &str = "Directly";
/// `purgeMode: Gracefully`.
pub const PURGE_MODE_GRACEFULLY: &str = "Gracefully";
/// `purgeMode: Never`.
pub const PURGE_MODE_NEVER: &str = "Never";

fn is_false(b: &bool) -> bool {
    !*b
}

/// Selects resource templates by apiVersion, kind and optionally namespace, name
/// or labels (Karmada `ResourceSelector`).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ResourceSelector {
    /// apiVersion of the target resources, compared as a string.
    pub api_version: String,
    /// Kind of the target resources.
    pub kind: String,
    /// Namespace of the target resource; empty means the policy's namespace.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub namespace: String,
    /// Name of the target resource; empty means all.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub name: String,
    /// Label query; ignored when `name` is set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label_selector: Option<LabelSelector>,
}

/// Selects clusters by provider/region/zone (Karmada `FieldSelector`).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct FieldSelector {
    /// Requirements on `provider`, `region` or `zone` with `In`/`NotIn`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub match_expressions: Vec<NodeSelectorRequirement>,
}

/// A group of clusters chosen by names, labels and fields (Karmada `ClusterAffinity`).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ClusterAffinity {
    /// Label query over clusters.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label_selector: Option<LabelSelector>,
    /// Query over the cluster's provider, region and zone.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub field_selector: Option<FieldSelector>,
    /// Clusters listed by name.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub cluster_names: Vec<String>,
    /// Clusters to ignore (Go field `ExcludeClusters`, JSON `exclude`).
    #[serde(default, rename = "exclude", skip_serializing_if = "Vec::is_empty")]
    pub exclude: Vec<String>,
}

/// One named affinity term of `clusterAffinities` (Karmada `ClusterAffinityTerm`).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ClusterAffinityTerm {
    /// Name of the term; a valid label key of at most 32 characters.
    #[schemars(extend("maxLength" = 32, "minLength" = 1))]
    pub affinity_name: String,
    /// The affinity itself, inline.
    #[serde(flatten)]
    pub affinity: ClusterAffinity,
    /// Overflow groups used once this term's clusters are full.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub overflow_affinities: Vec<OverflowClusterAffinity>,
}

/// An overflow group of a [`ClusterAffinityTerm`] (Karmada `OverflowClusterAffinity`).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct OverflowClusterAffinity {
    /// Name of the overflow group.
    #[schemars(extend("maxLength" = 32, "minLength" = 1))]
    pub affinity_name: String,
    /// The affinity itself, inline.
    #[serde(flatten)]
    pub affinity: ClusterAffinity,
}

/// How clusters are spread over a topology (Karmada `SpreadConstraint`).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SpreadConstraint {
    /// `cluster`, `region`, `zone` or `provider`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    #[schemars(extend("enum" = ["cluster", "region", "zone", "provider"]))]
    pub spread_by_field: String,
    /// A cluster label key to spread by.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub spread_by_label: String,
    /// Maximum number of groups.
    #[serde(default, skip_serializing_if = "is_zero_i32")]
    #[schemars(schema_with = "crate::schema::go_int")]
    pub max_groups: i32,
    /// Minimum number of groups (defaulted to 1 by the webhook).
    #[serde(default, skip_serializing_if = "is_zero_i32")]
    #[schemars(schema_with = "crate::schema::go_int")]
    pub min_groups: i32,
}

fn is_zero_i32(v: &i32) -> bool {
    *v == 0
}

/// Replica scheduling strategy (Karmada `ReplicaSchedulingStrategy`).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ReplicaSchedulingStrategy {
    /// `Duplicated` or `Divided` (CRD default `Divided`).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    #[schemars(extend("enum" = ["Duplicated", "Divided"], "default" = "Divided"))]
    pub replica_scheduling_type: String,
    /// `Aggregated` or `Weighted`; only meaningful with `Divided`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    #[schemars(extend("enum" = ["Aggregated", "Weighted"]))]
    pub replica_division_preference: String,
    /// Weights per cluster; nil means equal weights.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub weight_preference: Option<ClusterPreferences>,
}

/// Static or dynamic cluster weights (Karmada `ClusterPreferences`).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ClusterPreferences {
    /// Static weights; ignored when `dynamicWeight` is set.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub static_weight_list: Vec<StaticClusterWeight>,
    /// `AvailableReplicas`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    #[schemars(extend("enum" = ["AvailableReplicas"]))]
    pub dynamic_weight: String,
}

/// A weight for the clusters matched by an affinity (Karmada `StaticClusterWeight`).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct StaticClusterWeight {
    /// Which clusters get this weight.
    pub target_cluster: ClusterAffinity,
    /// The weight, at least 1.
    #[schemars(extend("minimum" = 1))]
    pub weight: i64,
}

/// Where a resource goes (Karmada `Placement`).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Placement {
    /// One cluster group; cannot co-exist with `clusterAffinities`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster_affinity: Option<ClusterAffinity>,
    /// Ordered cluster groups tried one after another.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub cluster_affinities: Vec<ClusterAffinityTerm>,
    /// Taints the resource tolerates.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub cluster_tolerations: Vec<Toleration>,
    /// Topology spread.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub spread_constraints: Vec<SpreadConstraint>,
    /// Replica scheduling; nil means Duplicated.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replica_scheduling: Option<ReplicaSchedulingStrategy>,
    /// Inter-workload affinity (Karmada 1.19).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workload_affinity: Option<WorkloadAffinity>,
}

/// The division strategy a placement resolves to (Karmada `assignFuncMap` keys).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReplicaStrategy {
    /// Every cluster gets all replicas.
    Duplicated,
    /// Divided by static weights (or equal weights).
    StaticWeight,
    /// Divided by available replicas.
    DynamicWeight,
    /// Divided onto as few clusters as possible.
    Aggregated,
}

impl Placement {
    /// The replica scheduling type, `Duplicated` when `replicaScheduling` is
    /// omitted (Karmada `Placement.ReplicaSchedulingType()`).
    pub fn replica_scheduling_type(&self) -> &str {
        match &self.replica_scheduling {
            None => REPLICA_SCHEDULING_DUPLICATED,
            Some(r) if r.replica_scheduling_type.is_empty() => REPLICA_SCHEDULING_DIVIDED,
            Some(r) => &r.replica_scheduling_type,
        }
    }

    /// The division strategy the scheduler uses for this placement
    /// (Karmada `pkg/scheduler/core/assignment.go` strategy selection).
    pub fn replica_strategy(&self) -> ReplicaStrategy {
        let Some(rs) = &self.replica_scheduling else {
            return ReplicaStrategy::Duplicated;
        };
        if self.replica_scheduling_type() == REPLICA_SCHEDULING_DUPLICATED {
            return ReplicaStrategy::Duplicated;
        }
        if rs.replica_division_preference == DIVISION_AGGREGATED {
            return ReplicaStrategy::Aggregated;
        }
        match &rs.weight_preference {
            Some(w) if !w.dynamic_weight.is_empty() => ReplicaStrategy::DynamicWeight,
            _ => ReplicaStrategy::StaticWeight,
        }
    }
}

/// Inter-workload affinity rules (Karmada `WorkloadAffinity`).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct WorkloadAffinity {
    /// Co-locate workloads sharing the label value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub affinity: Option<WorkloadAffinityTerm>,
    /// Separate workloads sharing the label value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub anti_affinity: Option<WorkloadAffinityTerm>,
}

/// One workload affinity term.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct WorkloadAffinityTerm {
    /// Label key whose value groups workloads.
    pub group_by_label_key: String,
}

/// Failover behaviour (Karmada `FailoverBehavior`).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct FailoverBehavior {
    /// Application failover.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub application: Option<ApplicationFailoverBehavior>,
    /// Cluster failover.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster: Option<ClusterFailoverBehavior>,
}

/// Application failover (Karmada `ApplicationFailoverBehavior`).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ApplicationFailoverBehavior {
    /// When the application is considered failed.
    pub decision_conditions: DecisionConditions,
    /// `Directly`, `Gracefully` or `Never` (default `Gracefully`).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    #[schemars(extend("enum" = ["Directly", "Gracefully", "Never"], "default" = "Gracefully"))]
    pub purge_mode: String,
    /// Grace period; defaulted to 600 by the webhook for `Gracefully`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grace_period_seconds: Option<i32>,
    /// State carried to the new cluster.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state_preservation: Option<StatePreservation>,
}

/// Failure decision conditions (Karmada `DecisionConditions`).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct DecisionConditions {
    /// Seconds to tolerate unhealthiness (CRD default 300).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("default" = 300))]
    pub toleration_seconds: Option<i32>,
}

/// Cluster failover (Karmada `ClusterFailoverBehavior`).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ClusterFailoverBehavior {
    /// `Directly` or `Gracefully` (default `Gracefully`).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    #[schemars(extend("enum" = ["Directly", "Gracefully"], "default" = "Gracefully"))]
    pub purge_mode: String,
    /// State carried to the new cluster.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state_preservation: Option<StatePreservation>,
}

/// State preservation rules (Karmada `StatePreservation`).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct StatePreservation {
    /// Rules, each mapping a status JSONPath to a label.
    pub rules: Vec<StatePreservationRule>,
}

/// One state preservation rule.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct StatePreservationRule {
    /// Label name the value is stored under.
    pub alias_label_name: String,
    /// JSONPath relative to `.status`.
    pub json_path: String,
}

/// Suspension of scheduling/dispatching (Karmada `Suspension`).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Suspension {
    /// Stop dispatching to all clusters.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dispatching: Option<bool>,
    /// Stop dispatching to these clusters.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dispatching_on_clusters: Option<SuspendClusters>,
}

/// Clusters whose dispatching is suspended.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SuspendClusters {
    /// Cluster names.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub cluster_names: Vec<String>,
}

/// Scheduling priority source (Karmada `SchedulePriority`).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SchedulePriority {
    /// Only `KubePriorityClass`.
    #[schemars(extend("enum" = ["KubePriorityClass"]))]
    pub priority_class_source: String,
    /// Name of the PriorityClass.
    pub priority_class_name: String,
}

/// The spec shared by PropagationPolicy and ClusterPropagationPolicy
/// (Karmada `PropagationSpec`).
#[derive(CustomResource, Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "policy.karmada.io",
    version = "v1alpha1",
    kind = "PropagationPolicy",
    plural = "propagationpolicies",
    singular = "propagationpolicy",
    namespaced,
    shortname = "pp",
    category = "karmada-io",
    doc = "PropagationPolicy represents the policy that propagates a group of resources to one or more clusters.",
    printcolumn(
        name = "CONFLICT-RESOLUTION",
        type_ = "string",
        json_path = ".spec.conflictResolution"
    ),
    printcolumn(name = "PRIORITY", type_ = "string", json_path = ".spec.priority"),
    printcolumn(
        name = "AGE",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    ),
    derive = "PartialEq",
    derive = "Default"
)]
#[serde(rename_all = "camelCase")]
pub struct PropagationSpec {
    /// Resources this policy propagates; at least one.
    #[schemars(extend("minItems" = 1))]
    pub resource_selectors: Vec<ResourceSelector>,
    /// Deprecated in favour of `propagateDeps`.
    #[serde(default, skip_serializing_if = "is_false")]
    pub association: bool,
    /// Propagate dependencies (ConfigMaps, Secrets, ...) along.
    #[serde(default, skip_serializing_if = "is_false")]
    pub propagate_deps: bool,
    /// Where to place the resources.
    #[serde(default)]
    pub placement: Placement,
    /// Explicit priority; higher wins (CRD default 0).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("default" = 0))]
    pub priority: Option<i32>,
    /// `Always` or `Never` (CRD default `Never`).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    #[schemars(extend("enum" = ["Always", "Never"], "default" = "Never"))]
    pub preemption: String,
    /// OverridePolicies that must exist before this policy takes effect.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub dependent_overrides: Vec<String>,
    /// Scheduler name (CRD default `default-scheduler`).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    #[schemars(extend("default" = "default-scheduler"))]
    pub scheduler_name: String,
    /// Failover behaviour; nil disables failover.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failover: Option<FailoverBehavior>,
    /// `Abort` or `Overwrite` (CRD default `Abort`).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    #[schemars(extend("enum" = ["Abort", "Overwrite"], "default" = "Abort"))]
    pub conflict_resolution: String,
    /// `Lazy` or empty.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    #[schemars(extend("enum" = ["Lazy"]))]
    pub activation_preference: String,
    /// Suspension of dispatching.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub suspension: Option<Suspension>,
    /// Keep member objects when the template is deleted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub preserve_resources_on_deletion: Option<bool>,
    /// Scheduling priority.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schedule_priority: Option<SchedulePriority>,
}

/// Spec of ClusterPropagationPolicy, the cluster-scoped twin of
/// [`PropagationPolicy`]: the same [`PropagationSpec`] (Karmada `ClusterPropagationPolicy`).
#[derive(CustomResource, Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "policy.karmada.io",
    version = "v1alpha1",
    kind = "ClusterPropagationPolicy",
    plural = "clusterpropagationpolicies",
    singular = "clusterpropagationpolicy",
    shortname = "cpp",
    category = "karmada-io",
    doc = "ClusterPropagationPolicy represents the cluster-wide policy that propagates a group of resources to one or more clusters.",
    printcolumn(
        name = "CONFLICT-RESOLUTION",
        type_ = "string",
        json_path = ".spec.conflictResolution"
    ),
    printcolumn(name = "PRIORITY", type_ = "string", json_path = ".spec.priority"),
    printcolumn(
        name = "AGE",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    ),
    derive = "PartialEq",
    derive = "Default"
)]
#[serde(transparent)]
pub struct ClusterPropagationSpec(pub PropagationSpec);

impl std::ops::Deref for ClusterPropagationSpec {
    type Target = PropagationSpec;
    fn deref(&self) -> &PropagationSpec {
        &self.0
    }
}

impl std::ops::DerefMut for ClusterPropagationSpec {
    fn deref_mut(&mut self) -> &mut PropagationSpec {
        &mut self.0
    }
}

/// One RFC 6902 operation of the `plaintext` overrider (Karmada `PlaintextOverrider`).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PlaintextOverrider {
    /// JSON pointer of the target field.
    pub path: String,
    /// `add`, `remove` or `replace`.
    #[schemars(extend("enum" = ["add", "remove", "replace"]))]
    pub operator: String,
    /// Value for add/replace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "crate::schema::preserve_unknown")]
    pub value: Option<serde_json::Value>,
}

/// Predicate locating an image field (Karmada `ImagePredicate`).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ImagePredicate {
    /// JSON-pointer-like path of the image string.
    pub path: String,
}

/// Image overrider (Karmada `ImageOverrider`).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ImageOverrider {
    /// Where the image is; nil means the containers of well-known workloads.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub predicate: Option<ImagePredicate>,
    /// `Registry`, `Repository` or `Tag`.
    #[schemars(extend("enum" = ["Registry", "Repository", "Tag"]))]
    pub component: String,
    /// `add`, `remove` or `replace`.
    #[schemars(extend("enum" = ["add", "remove", "replace"]))]
    pub operator: String,
    /// The value.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub value: String,
}

/// Command or args overrider (Karmada `CommandArgsOverrider`).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CommandArgsOverrider {
    /// Container whose command/args change.
    pub container_name: String,
    /// `add` or `remove`.
    #[schemars(extend("enum" = ["add", "remove"]))]
    pub operator: String,
    /// Values appended or removed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub value: Vec<String>,
}

/// Labels or annotations overrider (Karmada `LabelAnnotationOverrider`).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct LabelAnnotationOverrider {
    /// `add`, `remove` or `replace`.
    #[schemars(extend("enum" = ["add", "remove", "replace"]))]
    pub operator: String,
    /// Keys and values.
    pub value: BTreeMap<String, String>,
}

/// Overrider of JSON/YAML embedded in a string field (Karmada `FieldOverrider`).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct FieldOverrider {
    /// RFC 6901 pointer of the string field.
    pub field_path: String,
    /// Operations on the JSON document in the field.
    #[serde(default, rename = "json", skip_serializing_if = "Vec::is_empty")]
    pub json: Vec<FieldPatchOperation>,
    /// Operations on the YAML document in the field.
    #[serde(default, rename = "yaml", skip_serializing_if = "Vec::is_empty")]
    pub yaml: Vec<FieldPatchOperation>,
}

/// One operation of a [`FieldOverrider`] (Karmada `JSONPatchOperation`/`YAMLPatchOperation`).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct FieldPatchOperation {
    /// Pointer inside the embedded document.
    pub sub_path: String,
    /// `add`, `remove` or `replace`.
    #[schemars(extend("enum" = ["add", "remove", "replace"]))]
    pub operator: String,
    /// Value for add/replace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "crate::schema::preserve_unknown")]
    pub value: Option<serde_json::Value>,
}

/// All overriders of one rule (Karmada `Overriders`).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Overriders {
    /// RFC 6902 operations.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub plaintext: Vec<PlaintextOverrider>,
    /// Image overriders.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub image_overrider: Vec<ImageOverrider>,
    /// Command overriders.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub command_overrider: Vec<CommandArgsOverrider>,
    /// Args overriders.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub args_overrider: Vec<CommandArgsOverrider>,
    /// Label overriders.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub labels_overrider: Vec<LabelAnnotationOverrider>,
    /// Annotation overriders.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub annotations_overrider: Vec<LabelAnnotationOverrider>,
    /// Field overriders.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub field_overrider: Vec<FieldOverrider>,
}

impl Overriders {
    /// Whether any overrider other than `fieldOverrider` is set (what Karmada's
    /// validation checks before rejecting deprecated `overriders` with `overrideRules`).
    pub fn has_legacy_overriders(&self) -> bool {
        !(self.plaintext.is_empty()
            && self.image_overrider.is_empty()
            && self.command_overrider.is_empty()
            && self.args_overrider.is_empty()
            && self.labels_overrider.is_empty()
            && self.annotations_overrider.is_empty())
    }
}

/// Overriders applied to the clusters a rule targets (Karmada `RuleWithCluster`).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RuleWithCluster {
    /// Target clusters; nil means all.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_cluster: Option<ClusterAffinity>,
    /// The overriders.
    pub overriders: Overriders,
}

/// The spec shared by OverridePolicy and ClusterOverridePolicy (Karmada `OverrideSpec`).
#[derive(CustomResource, Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "policy.karmada.io",
    version = "v1alpha1",
    kind = "OverridePolicy",
    plural = "overridepolicies",
    singular = "overridepolicy",
    namespaced,
    shortname = "op",
    category = "karmada-io",
    doc = "OverridePolicy represents the policy that overrides a group of resources to one or more clusters.",
    derive = "PartialEq",
    derive = "Default"
)]
#[serde(rename_all = "camelCase")]
pub struct OverrideSpec {
    /// Resources to override; empty means all.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub resource_selectors: Vec<ResourceSelector>,
    /// Rules applied in order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub override_rules: Vec<RuleWithCluster>,
    /// Deprecated: single target (use `overrideRules`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_cluster: Option<ClusterAffinity>,
    /// Deprecated: single overriders block; always serialised, as in Go.
    #[serde(default)]
    pub overriders: Overriders,
}

impl OverrideSpec {
    /// The rules to apply: `overrideRules`, or the deprecated
    /// `targetCluster` + `overriders` pair as one rule when there are none
    /// (Karmada `overridemanager` behaviour).
    pub fn effective_rules(&self) -> Vec<RuleWithCluster> {
        if !self.override_rules.is_empty() {
            return self.override_rules.clone();
        }
        vec![RuleWithCluster {
            target_cluster: self.target_cluster.clone(),
            overriders: self.overriders.clone(),
        }]
    }
}

/// Spec of ClusterOverridePolicy, the cluster-scoped twin of [`OverridePolicy`]:
/// the same [`OverrideSpec`] (Karmada `ClusterOverridePolicy`).
#[derive(CustomResource, Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "policy.karmada.io",
    version = "v1alpha1",
    kind = "ClusterOverridePolicy",
    plural = "clusteroverridepolicies",
    singular = "clusteroverridepolicy",
    shortname = "cop",
    category = "karmada-io",
    doc = "ClusterOverridePolicy represents the cluster-wide policy that overrides a group of resources to one or more clusters.",
    derive = "PartialEq",
    derive = "Default"
)]
#[serde(transparent)]
pub struct ClusterOverrideSpec(pub OverrideSpec);

impl std::ops::Deref for ClusterOverrideSpec {
    type Target = OverrideSpec;
    fn deref(&self) -> &OverrideSpec {
        &self.0
    }
}

impl std::ops::DerefMut for ClusterOverrideSpec {
    fn deref_mut(&mut self) -> &mut OverrideSpec {
        &mut self.0
    }
}
