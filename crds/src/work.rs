//! `work.karmada.io`: ResourceBinding and ClusterResourceBinding (storage
//! version v1alpha2, plus the legacy served v1alpha1 shape in [`v1alpha1`]),
//! and Work (v1alpha1).
//!
//! Mirrors Karmada's `pkg/apis/work/v1alpha2/binding_types.go` and
//! `pkg/apis/work/v1alpha1/work_types.go`. Embedded objects (Work manifests,
//! aggregated statuses) are kept as raw JSON so no field is lost.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{NodeSelector, Toleration};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::policy::{FailoverBehavior, Placement, SuspendClusters};
use crate::raw::RawJson;

/// Label carrying a ResourceBinding's permanent id.
pub const RESOURCE_BINDING_PERMANENT_ID_LABEL: &str = "resourcebinding.karmada.io/permanent-id";
/// Label carrying a ClusterResourceBinding's permanent id.
pub const CLUSTER_RESOURCE_BINDING_PERMANENT_ID_LABEL: &str =
    "clusterresourcebinding.karmada.io/permanent-id";
/// Label carrying a Work's permanent id.
pub const WORK_PERMANENT_ID_LABEL: &str = "work.karmada.io/permanent-id";
/// Annotation with the JSON list of a binding's dependencies.
pub const BINDING_DEPENDENCIES_ANNOTATION: &str = "resourcebinding.karmada.io/dependencies";
/// Finalizer of ResourceBindings.
pub const BINDING_CONTROLLER_FINALIZER: &str = "karmada.io/binding-controller";
/// Finalizer of ClusterResourceBindings.
pub const CLUSTER_RESOURCE_BINDING_CONTROLLER_FINALIZER: &str =
    "karmada.io/cluster-resource-binding-controller";
/// Finalizer of Works.
pub const EXECUTION_CONTROLLER_FINALIZER: &str = "karmada.io/execution-controller";
/// Label marking objects managed by Karmada in member clusters.
pub const MANAGED_LABEL: &str = "karmada.io/managed";
/// Annotation carrying the conflict resolution to member objects.
pub const CONFLICT_RESOLUTION_ANNOTATION: &str = "work.karmada.io/conflict-resolution";
/// Condition type `Scheduled` on bindings.
pub const CONDITION_SCHEDULED: &str = "Scheduled";
/// Condition type `FullyApplied` on bindings.
pub const CONDITION_FULLY_APPLIED: &str = "FullyApplied";
/// Condition type `Applied` on Works.
pub const CONDITION_APPLIED: &str = "Applied";

fn is_false(b: &bool) -> bool {
    !*b
}
fn is_zero_i32(v: &i32) -> bool {
    *v == 0
}
fn is_zero_i64(v: &i64) -> bool {
    *v == 0
}

/// Reference to the resource template a binding is for (Karmada `ObjectReference`).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ObjectReference {
    /// apiVersion of the template.
    pub api_version: String,
    /// Kind of the template.
    pub kind: String,
    /// Namespace; empty for cluster-scoped templates.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub namespace: String,
    /// Name of the template.
    pub name: String,
    /// UID of the template (drives the Webster tie-break).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub uid: String,
    /// resourceVersion of the template.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub resource_version: String,
}

/// Per-replica requirements (Karmada `ReplicaRequirements`).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ReplicaRequirements {
    /// Node constraints of a replica.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node_claim: Option<NodeClaim>,
    /// Resources one replica requests.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub resource_request: BTreeMap<String, Quantity>,
    /// Namespace of the workload.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub namespace: String,
    /// PriorityClass of the workload.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub priority_class_name: String,
}

/// Node constraints of a replica (Karmada `NodeClaim`).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct NodeClaim {
    /// Required node affinity.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hard_node_affinity: Option<NodeSelector>,
    /// Node selector.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub node_selector: BTreeMap<String, String>,
    /// Tolerations.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tolerations: Vec<Toleration>,
}

/// One pod template of a multi-template workload (Karmada `Component`).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Component {
    /// Component name (at most 32 characters).
    #[schemars(extend("maxLength" = 32))]
    pub name: String,
    /// Replicas of the component.
    pub replicas: i32,
    /// Requirements of one replica.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replica_requirements: Option<ComponentReplicaRequirements>,
}

/// Requirements of one component replica (Karmada `ComponentReplicaRequirements`).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ComponentReplicaRequirements {
    /// Node constraints.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node_claim: Option<NodeClaim>,
    /// Resources one replica requests.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub resource_request: BTreeMap<String, Quantity>,
    /// PriorityClass.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub priority_class_name: String,
}

/// A scheduling result entry (Karmada `TargetCluster`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TargetCluster {
    /// Cluster name.
    pub name: String,
    /// Replicas assigned (absent when 0).
    #[serde(default, skip_serializing_if = "is_zero_i32")]
    pub replicas: i32,
    /// Per-component replicas.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub components: Vec<ComponentReplicas>,
}

impl TargetCluster {
    /// A result entry with `replicas` replicas.
    pub fn new(name: impl Into<String>, replicas: i32) -> Self {
        Self {
            name: name.into(),
            replicas,
            components: Vec::new(),
        }
    }
}

/// Replicas of one component on a cluster.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ComponentReplicas {
    /// Component name.
    pub name: String,
    /// Replicas (always emitted).
    pub replicas: i32,
}

/// A pending graceful eviction (Karmada `GracefulEvictionTask`).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct GracefulEvictionTask {
    /// Cluster being evicted from.
    pub from_cluster: String,
    /// `Directly`, `Gracefully` or `Never`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    #[schemars(extend("enum" = ["Directly", "Gracefully", "Never"]))]
    pub purge_mode: String,
    /// Replicas being evicted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replicas: Option<i32>,
    /// Machine-readable reason.
    #[schemars(extend("maxLength" = 32, "minLength" = 1, "pattern" = "^[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?$"))]
    pub reason: String,
    /// Human-readable message.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    #[schemars(extend("maxLength" = 1024))]
    pub message: String,
    /// Who created the task.
    pub producer: String,
    /// Grace period.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grace_period_seconds: Option<i32>,
    /// Keep the member object.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub suppress_deletion: Option<bool>,
    /// Preserved state labels.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub preserved_label_state: BTreeMap<String, String>,
    /// When the task was created.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub creation_timestamp: Option<Time>,
    /// Clusters before the failover.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub clusters_before_failover: Vec<String>,
}

/// Snapshot of a binding that depends on this one (Karmada `BindingSnapshot`).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct BindingSnapshot {
    /// Namespace of the dependent binding.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub namespace: String,
    /// Name of the dependent binding.
    pub name: String,
    /// Its scheduling result.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub clusters: Vec<TargetCluster>,
}

/// Binding suspension (Karmada work `Suspension`: policy fields + `scheduling`).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct BindingSuspension {
    /// Stop dispatching to all clusters.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dispatching: Option<bool>,
    /// Stop dispatching to these clusters.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dispatching_on_clusters: Option<SuspendClusters>,
    /// Stop scheduling.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scheduling: Option<bool>,
}

/// Binding scheduling priority (Karmada `SchedulePriority` of work).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct BindingSchedulePriority {
    /// Priority value (CRD default 0).
    #[serde(default, skip_serializing_if = "is_zero_i32")]
    #[schemars(extend("default" = 0))]
    pub priority: i32,
}

/// Workload affinity groups of a binding (Karmada `WorkloadAffinityGroups`).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct WorkloadAffinityGroups {
    /// `key=value` affinity group.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub affinity_group: String,
    /// `key=value` anti-affinity group.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub anti_affinity_group: String,
}

/// Status of one cluster in a binding (Karmada `AggregatedStatusItem`).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AggregatedStatusItem {
    /// Member cluster.
    pub cluster_name: String,
    /// Reflected status of the member object.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "crate::schema::raw_object")]
    pub status: Option<serde_json::Value>,
    /// Whether the Work was applied.
    #[serde(default, skip_serializing_if = "is_false")]
    pub applied: bool,
    /// Apply error message.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub applied_message: String,
    /// `Healthy`, `Unhealthy` or `Unknown`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    #[schemars(extend("enum" = ["Healthy", "Unhealthy", "Unknown"]))]
    pub health: String,
}

/// Status of a (Cluster)ResourceBinding (Karmada `ResourceBindingStatus`).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ResourceBindingStatus {
    /// Generation the scheduler last handled.
    #[serde(default, skip_serializing_if = "is_zero_i64")]
    pub scheduler_observed_generation: i64,
    /// Affinity term in use (note the JSON name).
    #[serde(
        default,
        rename = "schedulerObservingAffinityName",
        skip_serializing_if = "String::is_empty"
    )]
    pub scheduler_observed_affinity_name: String,
    /// Last time the binding was scheduled.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_scheduled_time: Option<Time>,
    /// `Scheduled`, `FullyApplied`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    /// Per-cluster status.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub aggregated_status: Vec<AggregatedStatusItem>,
}

/// The spec shared by ResourceBinding and ClusterResourceBinding, v1alpha2
/// (Karmada `ResourceBindingSpec`).
#[derive(CustomResource, Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "work.karmada.io",
    version = "v1alpha2",
    kind = "ResourceBinding",
    plural = "resourcebindings",
    singular = "resourcebinding",
    namespaced,
    shortname = "rb",
    category = "karmada-io",
    status = "ResourceBindingStatus",
    doc = "ResourceBinding represents a binding of a kubernetes resource with a propagation policy.",
    printcolumn(
        name = "SCHEDULED",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"Scheduled\")].status"
    ),
    printcolumn(
        name = "FULLYAPPLIED",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"FullyApplied\")].status"
    ),
    printcolumn(
        name = "AGE",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    ),
    derive = "PartialEq",
    derive = "Default"
)]
#[serde(rename_all = "camelCase")]
pub struct ResourceBindingSpec {
    /// The resource template.
    pub resource: ObjectReference,
    /// Propagate dependencies.
    #[serde(default, skip_serializing_if = "is_false")]
    pub propagate_deps: bool,
    /// Requirements of one replica.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replica_requirements: Option<ReplicaRequirements>,
    /// Desired replicas of the template.
    #[serde(default, skip_serializing_if = "is_zero_i32")]
    pub replicas: i32,
    /// Components of multi-template workloads.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub components: Vec<Component>,
    /// Scheduling result.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub clusters: Vec<TargetCluster>,
    /// Copy of the policy placement.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub placement: Option<Placement>,
    /// Pending graceful evictions.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub graceful_eviction_tasks: Vec<GracefulEvictionTask>,
    /// Bindings that depend on this one.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub required_by: Vec<BindingSnapshot>,
    /// Scheduler name.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub scheduler_name: String,
    /// Failover behaviour.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failover: Option<FailoverBehavior>,
    /// `Abort` or `Overwrite` (CRD default `Abort`).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    #[schemars(extend("enum" = ["Abort", "Overwrite"], "default" = "Abort"))]
    pub conflict_resolution: String,
    /// Forces a fresh reschedule when later than `lastScheduledTime`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reschedule_triggered_at: Option<Time>,
    /// Suspension.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub suspension: Option<BindingSuspension>,
    /// Keep member objects on deletion.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub preserve_resources_on_deletion: Option<bool>,
    /// Scheduling priority.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schedule_priority: Option<BindingSchedulePriority>,
    /// Workload affinity groups.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workload_affinity_groups: Option<WorkloadAffinityGroups>,
}

/// Spec of ClusterResourceBinding: the same [`ResourceBindingSpec`], cluster-scoped.
#[derive(CustomResource, Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "work.karmada.io",
    version = "v1alpha2",
    kind = "ClusterResourceBinding",
    plural = "clusterresourcebindings",
    singular = "clusterresourcebinding",
    shortname = "crb",
    category = "karmada-io",
    status = "ResourceBindingStatus",
    doc = "ClusterResourceBinding represents a binding of a kubernetes resource with a ClusterPropagationPolicy.",
    printcolumn(
        name = "SCHEDULED",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"Scheduled\")].status"
    ),
    printcolumn(
        name = "FULLYAPPLIED",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"FullyApplied\")].status"
    ),
    printcolumn(
        name = "AGE",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    ),
    derive = "PartialEq",
    derive = "Default"
)]
#[serde(transparent)]
pub struct ClusterResourceBindingSpec(pub ResourceBindingSpec);

impl std::ops::Deref for ClusterResourceBindingSpec {
    type Target = ResourceBindingSpec;
    fn deref(&self) -> &ResourceBindingSpec {
        &self.0
    }
}

impl std::ops::DerefMut for ClusterResourceBindingSpec {
    fn deref_mut(&mut self) -> &mut ResourceBindingSpec {
        &mut self.0
    }
}

/// The manifests a Work carries (Karmada `WorkloadTemplate`).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct WorkloadTemplate {
    /// Full Kubernetes objects, unknown fields kept.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(schema_with = "crate::schema::raw_object_list")]
    // kept as their JSON text (see `crate::raw`)
    pub manifests: Vec<RawJson>,
}

/// Identifies one manifest of a Work (Karmada `ResourceIdentifier`).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ResourceIdentifier {
    /// Index in `manifests` (always emitted).
    #[schemars(schema_with = "crate::schema::go_int")]
    pub ordinal: i32,
    /// API group.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub group: String,
    /// API version (always emitted).
    pub version: String,
    /// Kind (always emitted).
    pub kind: String,
    /// Resource (always emitted).
    pub resource: String,
    /// Namespace.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub namespace: String,
    /// Name (always emitted).
    pub name: String,
}

/// Status of one manifest (Karmada `ManifestStatus`).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ManifestStatus {
    /// Which manifest.
    pub identifier: ResourceIdentifier,
    /// Reflected status.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "crate::schema::raw_object")]
    pub status: Option<RawJson>,
    /// `Healthy`, `Unhealthy` or `Unknown`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    #[schemars(extend("enum" = ["Healthy", "Unhealthy", "Unknown"]))]
    pub health: String,
}

/// Status of a Work (Karmada `WorkStatus`).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct WorkStatus {
    /// `Applied`, `Dispatching`, ...
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    /// Per-manifest status.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub manifest_statuses: Vec<ManifestStatus>,
}

/// The spec of a Work: what to apply to one member cluster (Karmada `WorkSpec`).
#[derive(CustomResource, Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "work.karmada.io",
    version = "v1alpha1",
    kind = "Work",
    plural = "works",
    singular = "work",
    namespaced,
    shortname = "wk",
    category = "karmada-io",
    status = "WorkStatus",
    doc = "Work defines a list of resources to be deployed on the member cluster.",
    printcolumn(
        name = "WORKLOAD-KIND",
        type_ = "string",
        json_path = ".spec.workload.manifests[*].kind"
    ),
    printcolumn(
        name = "APPLIED",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"Applied\")].status"
    ),
    printcolumn(
        name = "AGE",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    ),
    derive = "PartialEq",
    derive = "Default"
)]
#[serde(rename_all = "camelCase")]
pub struct WorkSpec {
    /// The manifests.
    #[serde(default)]
    pub workload: WorkloadTemplate,
    /// Stop applying to the member.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub suspend_dispatching: Option<bool>,
    /// Keep member objects when the Work is deleted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub preserve_resources_on_deletion: Option<bool>,
}

impl WorkSpec {
    /// Feeds `h` what a Work asks of its member: its manifests' text and its
    /// flags. For change detection: the text of an unchanged manifest stays
    /// the same, while the same manifest with its fields in another order,
    /// equal as a document, hashes differently (so this is not `Hash`).
    pub fn hash_text<H: std::hash::Hasher>(&self, h: &mut H) {
        use std::hash::Hash;
        for m in &self.workload.manifests {
            m.text().hash(h);
        }
        self.suspend_dispatching.hash(h);
        self.preserve_resources_on_deletion.hash(h);
    }
}

/// Errors of binding conversion.
#[derive(Debug, thiserror::Error)]
pub enum ConversionError {
    /// The object is not a (Cluster)ResourceBinding of a known version.
    #[error("unsupported conversion from {from} to {to}")]
    Unsupported {
        /// apiVersion/kind of the object.
        from: String,
        /// Requested apiVersion.
        to: String,
    },
    /// The object does not decode as its declared version.
    #[error("cannot decode {kind}: {message}")]
    Decode {
        /// Kind.
        kind: String,
        /// Decoder message.
        message: String,
    },
}

/// Converts a ResourceBinding or ClusterResourceBinding object between
/// `work.karmada.io/v1alpha1` and `v1alpha2`, as the webhook's `/convert`
/// path does for the CRDs (Karmada `binding_types_conversion.go`). The
/// object's `metadata` is carried unchanged; spec and status are mapped field
/// by field (lossy in the same places as Karmada's). Converting to the same
/// version returns the object unchanged.
pub fn convert_binding(
    obj: &serde_json::Value,
    desired_api_version: &str,
) -> Result<serde_json::Value, ConversionError> {
    use serde_json::Value;
    let api = obj
        .get("apiVersion")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let kind = obj.get("kind").and_then(Value::as_str).unwrap_or_default();
    let unsupported = || ConversionError::Unsupported {
        from: format!("{api}/{kind}"),
        to: desired_api_version.to_string(),
    };
    if !matches!(kind, "ResourceBinding" | "ClusterResourceBinding") {
        return Err(unsupported());
    }
    if api == desired_api_version {
        return Ok(obj.clone());
    }
    let decode = |v: Option<&Value>| -> Result<Value, ConversionError> {
        Ok(v.cloned().unwrap_or(Value::Null))
    };
    let err = |e: serde_json::Error| ConversionError::Decode {
        kind: kind.to_string(),
        message: e.to_string(),
    };
    let spec = decode(obj.get("spec"))?;
    let status = decode(obj.get("status"))?;
    let (new_spec, new_status) = match (api, desired_api_version) {
        ("work.karmada.io/v1alpha1", "work.karmada.io/v1alpha2") => {
            let s: v1alpha1::ResourceBindingSpec = serde_json::from_value(spec).map_err(err)?;
            let st: Option<v1alpha1::ResourceBindingStatus> =
                serde_json::from_value(status).map_err(err)?;
            (
                serde_json::to_value(v1alpha1::spec_to_hub(&s)).map_err(err)?,
                st.map(|st| serde_json::to_value(v1alpha1::status_to_hub(&st)))
                    .transpose()
                    .map_err(err)?,
            )
        }
        ("work.karmada.io/v1alpha2", "work.karmada.io/v1alpha1") => {
            let s: ResourceBindingSpec = serde_json::from_value(spec).map_err(err)?;
            let st: Option<ResourceBindingStatus> = serde_json::from_value(status).map_err(err)?;
            (
                serde_json::to_value(v1alpha1::spec_from_hub(&s)).map_err(err)?,
                st.map(|st| serde_json::to_value(v1alpha1::status_from_hub(&st)))
                    .transpose()
                    .map_err(err)?,
            )
        }
        _ => return Err(unsupported()),
    };
    let mut out = serde_json::Map::new();
    out.insert(
        "apiVersion".into(),
        Value::String(desired_api_version.to_string()),
    );
    out.insert("kind".into(), Value::String(kind.to_string()));
    if let Some(m) = obj.get("metadata") {
        out.insert("metadata".into(), m.clone());
    }
    out.insert("spec".into(), new_spec);
    if let Some(st) = new_status {
        out.insert("status".into(), st);
    }
    Ok(Value::Object(out))
}

pub mod v1alpha1 {
    //! The legacy `work.karmada.io/v1alpha1` shape of ResourceBinding and
    //! ClusterResourceBinding, still served (not stored) and converted by the
    //! webhook's `/convert` path (Karmada `pkg/apis/work/v1alpha1/binding_types.go`).

    use std::collections::BTreeMap;

    use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
    use kube::CustomResource;
    use schemars::JsonSchema;
    use serde::{Deserialize, Serialize};

    fn is_false(b: &bool) -> bool {
        !*b
    }
    fn is_zero_i32(v: &i32) -> bool {
        *v == 0
    }

    /// Template reference with per-replica resources (v1alpha1 `ObjectReference`).
    #[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
    #[serde(rename_all = "camelCase")]
    pub struct ObjectReference {
        /// apiVersion.
        pub api_version: String,
        /// Kind.
        pub kind: String,
        /// Namespace.
        #[serde(default, skip_serializing_if = "String::is_empty")]
        pub namespace: String,
        /// Name.
        pub name: String,
        /// Resources of one replica.
        #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
        pub resource_per_replicas: BTreeMap<String, Quantity>,
        /// Replicas.
        #[serde(default, skip_serializing_if = "is_zero_i32")]
        pub replicas: i32,
        /// resourceVersion.
        #[serde(default, skip_serializing_if = "String::is_empty")]
        pub resource_version: String,
    }

    /// Scheduling result entry (v1alpha1 `TargetCluster`).
    #[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
    #[serde(rename_all = "camelCase")]
    pub struct TargetCluster {
        /// Cluster name.
        pub name: String,
        /// Replicas.
        #[serde(default, skip_serializing_if = "is_zero_i32")]
        pub replicas: i32,
    }

    /// Per-cluster status (v1alpha1 `AggregatedStatusItem`, no `health`).
    #[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
    #[serde(rename_all = "camelCase")]
    pub struct AggregatedStatusItem {
        /// Cluster.
        pub cluster_name: String,
        /// Reflected status.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        #[schemars(schema_with = "crate::schema::raw_object")]
        pub status: Option<serde_json::Value>,
        /// Applied.
        #[serde(default, skip_serializing_if = "is_false")]
        pub applied: bool,
        /// Apply message.
        #[serde(default, skip_serializing_if = "String::is_empty")]
        pub applied_message: String,
    }

    /// Status (v1alpha1 `ResourceBindingStatus`).
    #[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
    #[serde(rename_all = "camelCase")]
    pub struct ResourceBindingStatus {
        /// Conditions.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        pub conditions: Vec<Condition>,
        /// Per-cluster status.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        pub aggregated_status: Vec<AggregatedStatusItem>,
    }

    /// v1alpha1 ResourceBinding spec (Karmada v1alpha1 `ResourceBindingSpec`).
    #[derive(
        CustomResource, Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema,
    )]
    #[kube(
        group = "work.karmada.io",
        version = "v1alpha1",
        kind = "ResourceBinding",
        plural = "resourcebindings",
        singular = "resourcebinding",
        namespaced,
        shortname = "rb",
        category = "karmada-io",
        status = "ResourceBindingStatus",
        doc = "ResourceBinding represents a binding of a kubernetes resource with a propagation policy.",
        storage = false,
        derive = "PartialEq",
        derive = "Default"
    )]
    #[serde(rename_all = "camelCase")]
    pub struct ResourceBindingSpec {
        /// The template.
        pub resource: ObjectReference,
        /// Scheduling result.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        pub clusters: Vec<TargetCluster>,
    }

    /// v1alpha1 → v1alpha2 spec (Karmada `ConvertBindingSpecToHub`):
    /// resource identity, per-replica resources into
    /// `replicaRequirements.resourceRequest`, replicas, clusters.
    pub fn spec_to_hub(src: &ResourceBindingSpec) -> super::ResourceBindingSpec {
        super::ResourceBindingSpec {
            resource: super::ObjectReference {
                api_version: src.resource.api_version.clone(),
                kind: src.resource.kind.clone(),
                namespace: src.resource.namespace.clone(),
                name: src.resource.name.clone(),
                uid: String::new(),
                resource_version: src.resource.resource_version.clone(),
            },
            replica_requirements: (!src.resource.resource_per_replicas.is_empty()).then(|| {
                super::ReplicaRequirements {
                    resource_request: src.resource.resource_per_replicas.clone(),
                    ..Default::default()
                }
            }),
            replicas: src.resource.replicas,
            clusters: src
                .clusters
                .iter()
                .map(|c| super::TargetCluster::new(c.name.clone(), c.replicas))
                .collect(),
            ..Default::default()
        }
    }

    /// v1alpha2 → v1alpha1 spec (Karmada `ConvertBindingSpecFromHub`); fields
    /// v1alpha1 lacks are dropped, as in Karmada.
    pub fn spec_from_hub(src: &super::ResourceBindingSpec) -> ResourceBindingSpec {
        ResourceBindingSpec {
            resource: ObjectReference {
                api_version: src.resource.api_version.clone(),
                kind: src.resource.kind.clone(),
                namespace: src.resource.namespace.clone(),
                name: src.resource.name.clone(),
                resource_per_replicas: src
                    .replica_requirements
                    .as_ref()
                    .map(|r| r.resource_request.clone())
                    .unwrap_or_default(),
                replicas: src.replicas,
                resource_version: src.resource.resource_version.clone(),
            },
            clusters: src
                .clusters
                .iter()
                .map(|c| TargetCluster {
                    name: c.name.clone(),
                    replicas: c.replicas,
                })
                .collect(),
        }
    }

    /// v1alpha1 → v1alpha2 status (Karmada `ConvertBindingStatusToHub`).
    pub fn status_to_hub(src: &ResourceBindingStatus) -> super::ResourceBindingStatus {
        super::ResourceBindingStatus {
            conditions: src.conditions.clone(),
            aggregated_status: src
                .aggregated_status
                .iter()
                .map(|a| super::AggregatedStatusItem {
                    cluster_name: a.cluster_name.clone(),
                    status: a.status.clone(),
                    applied: a.applied,
                    applied_message: a.applied_message.clone(),
                    health: String::new(),
                })
                .collect(),
            ..Default::default()
        }
    }

    /// v1alpha2 → v1alpha1 status (Karmada `ConvertBindingStatusFromHub`).
    pub fn status_from_hub(src: &super::ResourceBindingStatus) -> ResourceBindingStatus {
        ResourceBindingStatus {
            conditions: src.conditions.clone(),
            aggregated_status: src
                .aggregated_status
                .iter()
                .map(|a| AggregatedStatusItem {
                    cluster_name: a.cluster_name.clone(),
                    status: a.status.clone(),
                    applied: a.applied,
                    applied_message: a.applied_message.clone(),
                })
                .collect(),
        }
    }

    /// v1alpha1 ClusterResourceBinding spec.
    #[derive(
        CustomResource, Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema,
    )]
    #[kube(
        group = "work.karmada.io",
        version = "v1alpha1",
        kind = "ClusterResourceBinding",
        plural = "clusterresourcebindings",
        singular = "clusterresourcebinding",
        shortname = "crb",
        category = "karmada-io",
        status = "ResourceBindingStatus",
        doc = "ClusterResourceBinding represents a binding of a kubernetes resource with a ClusterPropagationPolicy.",
        storage = false,
        derive = "PartialEq",
        derive = "Default"
    )]
    #[serde(transparent)]
    pub struct ClusterResourceBindingSpec(pub ResourceBindingSpec);
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn binding_round_trip_through_v1alpha1_keeps_the_shared_fields() {
        let v2 = json!({
            "apiVersion": "work.karmada.io/v1alpha2", "kind": "ResourceBinding",
            "metadata": {"name": "nginx-deployment", "namespace": "default", "labels": {"a": "b"}},
            "spec": {
                "resource": {"apiVersion": "apps/v1", "kind": "Deployment", "namespace": "default", "name": "nginx", "uid": "u", "resourceVersion": "5"},
                "replicaRequirements": {"resourceRequest": {"cpu": "100m"}},
                "replicas": 2,
                "clusters": [{"name": "member1", "replicas": 1}, {"name": "member2", "replicas": 1}],
                "schedulerName": "default-scheduler"
            },
            "status": {"aggregatedStatus": [{"clusterName": "member1", "applied": true, "health": "Healthy"}]}
        });
        let v1 = convert_binding(&v2, "work.karmada.io/v1alpha1").unwrap();
        assert_eq!(v1["apiVersion"], "work.karmada.io/v1alpha1");
        assert_eq!(v1["metadata"], v2["metadata"]);
        assert_eq!(
            v1["spec"]["resource"]["resourcePerReplicas"],
            json!({"cpu": "100m"})
        );
        assert_eq!(v1["spec"]["resource"]["replicas"], 2);
        assert_eq!(
            v1["status"]["aggregatedStatus"],
            json!([{"clusterName": "member1", "applied": true}])
        );
        let back = convert_binding(&v1, "work.karmada.io/v1alpha2").unwrap();
        assert_eq!(back["spec"]["clusters"], v2["spec"]["clusters"]);
        assert_eq!(
            back["spec"]["replicaRequirements"],
            v2["spec"]["replicaRequirements"]
        );
        assert_eq!(back["spec"]["replicas"], 2);
        // Fields v1alpha1 lacks are dropped, as in Karmada.
        assert!(back["spec"].get("schedulerName").is_none());
        assert!(back["spec"]["resource"].get("uid").is_none());
    }

    #[test]
    fn conversion_rejects_other_kinds_and_versions() {
        let work = json!({"apiVersion": "work.karmada.io/v1alpha1", "kind": "Work"});
        assert!(convert_binding(&work, "work.karmada.io/v1alpha2").is_err());
        let rb = json!({"apiVersion": "work.karmada.io/v1alpha2", "kind": "ClusterResourceBinding", "spec": {"resource": {"apiVersion": "v1", "kind": "Namespace", "name": "n"}}});
        assert!(convert_binding(&rb, "work.karmada.io/v1beta1").is_err());
        assert_eq!(
            convert_binding(&rb, "work.karmada.io/v1alpha2").unwrap(),
            rb
        );
        let v1 = convert_binding(&rb, "work.karmada.io/v1alpha1").unwrap();
        assert!(v1.get("status").is_none());
    }
}
