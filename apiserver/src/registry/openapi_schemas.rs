//! Component schemas for the built-in kinds, in kube-apiserver's OpenAPI v3 form.
//!
//! The schemas come from k8s-openapi's `schemars` support (Kubernetes' own field
//! descriptions, types and formats), generated once on first use with schemars'
//! OpenAPI 3 settings: references point at `#/components/schemas/<name>` and a
//! reference with a sibling description is wrapped as `allOf: [{$ref}]`, as
//! kube-apiserver does. k8s-openapi does not carry Kubernetes' list and patch
//! extensions, so [`list_rules`] adds them for the fields that have them
//! (`x-kubernetes-patch-merge-key`, `x-kubernetes-patch-strategy`,
//! `x-kubernetes-list-type`, `x-kubernetes-list-map-keys`); kubectl reads the patch
//! ones to build strategic merge patches. Every top-level kind gets its
//! `x-kubernetes-group-version-kind` list, which `kubectl explain` looks up.
//!
//! Start at [`SCHEMAS`]: [`Schemas::kind`] names a kind's schema and
//! [`Schemas::closure`] collects every schema a document needs.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::LazyLock;

use k8s_openapi::api::{
    admissionregistration, apps, autoscaling, batch, coordination, core, scheduling,
};
use k8s_openapi::api::{discovery, networking, rbac};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions;
use k8s_openapi::kube_aggregator::pkg::apis::apiregistration;
use k8s_openapi::schemars::JsonSchema;
use k8s_openapi::schemars::generate::{SchemaGenerator, SchemaSettings};
use serde_json::{Value, json};

/// The prefix of a reference to another component schema.
pub const REF_PREFIX: &str = "#/components/schemas/";

/// The generated schemas, built on first use.
pub static SCHEMAS: LazyLock<Schemas> = LazyLock::new(Schemas::generate);

/// Every component schema the built-in kinds need, by Kubernetes name
/// (`io.k8s.api.apps.v1.Deployment`), and which of them are kinds.
#[derive(Debug, Default)]
pub struct Schemas {
    by_name: BTreeMap<String, Value>,
    /// (group, version, kind) → schema name.
    kinds: BTreeMap<(String, String, String), String>,
}

/// Registers one kind with the generator and records its schema name.
fn register<T: JsonSchema + k8s_openapi::Resource>(
    generator: &mut SchemaGenerator,
    kinds: &mut BTreeMap<(String, String, String), String>,
) {
    generator.subschema_for::<T>();
    kinds.insert(
        (T::GROUP.into(), T::VERSION.into(), T::KIND.into()),
        T::schema_name().into_owned(),
    );
}

impl Schemas {
    /// Generates the schemas of every built-in kind flotilla serves.
    fn generate() -> Self {
        let mut generator = SchemaSettings::openapi3().into_generator();
        let mut kinds = BTreeMap::new();
        macro_rules! kinds {
            ($($ty:ty),* $(,)?) => { $( register::<$ty>(&mut generator, &mut kinds); )* };
        }
        kinds!(
            core::v1::Namespace,
            core::v1::Pod,
            core::v1::Service,
            core::v1::Endpoints,
            core::v1::ConfigMap,
            core::v1::Secret,
            core::v1::ServiceAccount,
            core::v1::Event,
            core::v1::Node,
            core::v1::PersistentVolumeClaim,
            apps::v1::Deployment,
            apps::v1::ReplicaSet,
            apps::v1::StatefulSet,
            apps::v1::DaemonSet,
            batch::v1::Job,
            batch::v1::CronJob,
            autoscaling::v2::HorizontalPodAutoscaler,
            discovery::v1::EndpointSlice,
            coordination::v1::Lease,
            scheduling::v1::PriorityClass,
            networking::v1::Ingress,
            rbac::v1::Role,
            rbac::v1::ClusterRole,
            rbac::v1::RoleBinding,
            rbac::v1::ClusterRoleBinding,
            apiextensions::v1::CustomResourceDefinition,
            apiregistration::v1::APIService,
            admissionregistration::v1::ValidatingWebhookConfiguration,
            admissionregistration::v1::MutatingWebhookConfiguration,
        );
        let mut by_name: BTreeMap<String, Value> =
            generator.take_definitions(true).into_iter().collect();
        for ((group, version, kind), name) in &kinds {
            if let Some(Value::Object(schema)) = by_name.get_mut(name) {
                schema.insert(
                    "x-kubernetes-group-version-kind".into(),
                    json!([{"group": group, "version": version, "kind": kind}]),
                );
            }
        }
        for (schema, field, extensions) in list_rules() {
            let property = by_name
                .get_mut(&schema)
                .and_then(|s| s.get_mut("properties"))
                .and_then(|p| p.get_mut(field))
                .and_then(Value::as_object_mut);
            if let (Some(property), Value::Object(extensions)) = (property, extensions) {
                property.extend(extensions);
            }
        }
        for name in ATOMIC_STRUCTS {
            if let Some(Value::Object(schema)) = by_name.get_mut(*name) {
                schema.insert("x-kubernetes-map-type".into(), "atomic".into());
            }
        }
        Schemas { by_name, kinds }
    }

    /// The schema name of a built-in kind, if there is one.
    pub fn kind(&self, group: &str, version: &str, kind: &str) -> Option<&str> {
        self.kinds
            .get(&(group.to_string(), version.to_string(), kind.to_string()))
            .map(String::as_str)
    }

    /// One schema by name.
    pub fn get(&self, name: &str) -> Option<&Value> {
        self.by_name.get(name)
    }

    /// Every known schema referenced from `roots`, directly or through other schemas,
    /// by name. Names this set does not know are skipped.
    pub fn closure<'a>(
        &self,
        roots: impl IntoIterator<Item = &'a Value>,
    ) -> BTreeMap<String, Value> {
        let mut pending = Vec::new();
        for root in roots {
            collect_refs(root, &mut pending);
        }
        let mut seen = BTreeSet::new();
        let mut out = BTreeMap::new();
        while let Some(name) = pending.pop() {
            if !seen.insert(name.clone()) {
                continue;
            }
            if let Some(schema) = self.by_name.get(&name) {
                collect_refs(schema, &mut pending);
                out.insert(name, schema.clone());
            }
        }
        out
    }
}

/// Pushes the name of every `#/components/schemas/` reference inside `value`.
fn collect_refs(value: &Value, out: &mut Vec<String>) {
    match value {
        Value::Object(map) => {
            for (key, v) in map {
                match (key.as_str(), v) {
                    ("$ref", Value::String(r)) => {
                        if let Some(name) = r.strip_prefix(REF_PREFIX) {
                            out.push(name.to_string());
                        }
                    }
                    _ => collect_refs(v, out),
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|v| collect_refs(v, out)),
        _ => {}
    }
}

/// Structs Kubernetes marks `+structType=atomic` (replaced whole by apply).
const ATOMIC_STRUCTS: &[&str] = &[
    "io.k8s.apimachinery.pkg.apis.meta.v1.LabelSelector",
    "io.k8s.api.core.v1.LocalObjectReference",
    "io.k8s.api.core.v1.ObjectReference",
    "io.k8s.api.core.v1.TypedLocalObjectReference",
    "io.k8s.api.core.v1.NodeSelector",
    "io.k8s.api.core.v1.NodeSelectorTerm",
    "io.k8s.api.core.v1.ObjectFieldSelector",
    "io.k8s.api.core.v1.ResourceFieldSelector",
    "io.k8s.api.core.v1.ConfigMapKeySelector",
    "io.k8s.api.core.v1.SecretKeySelector",
];

/// `x-kubernetes-list-type: map` keyed by `keys`, patched by merging on `merge_key`.
fn merge_map(keys: &[&str], merge_key: &str, strategy: &str) -> Value {
    json!({
        "x-kubernetes-list-type": "map",
        "x-kubernetes-list-map-keys": keys,
        "x-kubernetes-patch-merge-key": merge_key,
        "x-kubernetes-patch-strategy": strategy,
    })
}

/// A list replaced as a whole.
fn atomic() -> Value {
    json!({"x-kubernetes-list-type": "atomic"})
}

/// A list of unique scalars.
fn set() -> Value {
    json!({"x-kubernetes-list-type": "set"})
}

/// The list and patch extensions of the built-in types' fields, as Kubernetes 1.33
/// declares them: (schema name, property, extensions).
pub fn list_rules() -> Vec<(String, &'static str, Value)> {
    const C: &str = "io.k8s.api.core.v1.";
    let by_name = || merge_map(&["name"], "name", "merge");
    let by_type = || merge_map(&["type"], "type", "merge");
    let mut rules: Vec<(String, &'static str, Value)> = Vec::new();
    let mut add =
        |schema: String, field: &'static str, ext: Value| rules.push((schema, field, ext));

    // core/v1: pods and pod templates.
    let pod_spec = format!("{C}PodSpec");
    add(
        pod_spec.clone(),
        "volumes",
        merge_map(&["name"], "name", "merge,retainKeys"),
    );
    for field in ["initContainers", "containers", "ephemeralContainers"] {
        add(pod_spec.clone(), field, by_name());
    }
    add(pod_spec.clone(), "imagePullSecrets", by_name());
    add(pod_spec.clone(), "tolerations", atomic());
    add(
        pod_spec.clone(),
        "hostAliases",
        merge_map(&["ip"], "ip", "merge"),
    );
    add(
        pod_spec.clone(),
        "topologySpreadConstraints",
        merge_map(
            &["topologyKey", "whenUnsatisfiable"],
            "topologyKey",
            "merge",
        ),
    );
    add(pod_spec.clone(), "readinessGates", atomic());
    add(pod_spec.clone(), "schedulingGates", by_name());
    add(
        pod_spec,
        "resourceClaims",
        merge_map(&["name"], "name", "merge,retainKeys"),
    );
    for container in ["Container", "EphemeralContainer"] {
        let schema = format!("{C}{container}");
        add(
            schema.clone(),
            "ports",
            merge_map(&["containerPort", "protocol"], "containerPort", "merge"),
        );
        add(schema.clone(), "env", by_name());
        add(
            schema.clone(),
            "volumeMounts",
            merge_map(&["mountPath"], "mountPath", "merge"),
        );
        add(
            schema.clone(),
            "volumeDevices",
            merge_map(&["devicePath"], "devicePath", "merge"),
        );
        for field in ["envFrom", "command", "args", "resizePolicy"] {
            add(schema.clone(), field, atomic());
        }
    }
    let pod_status = format!("{C}PodStatus");
    add(pod_status.clone(), "conditions", by_type());
    add(
        pod_status.clone(),
        "podIPs",
        merge_map(&["ip"], "ip", "merge"),
    );
    add(
        pod_status.clone(),
        "hostIPs",
        json!({"x-kubernetes-list-type": "atomic", "x-kubernetes-patch-merge-key": "ip", "x-kubernetes-patch-strategy": "merge"}),
    );
    for field in [
        "containerStatuses",
        "initContainerStatuses",
        "ephemeralContainerStatuses",
    ] {
        add(pod_status.clone(), field, atomic());
    }
    add(
        pod_status,
        "resourceClaimStatuses",
        merge_map(&["name"], "name", "merge,retainKeys"),
    );
    add(
        format!("{C}PodSecurityContext"),
        "supplementalGroups",
        atomic(),
    );
    add(format!("{C}PodSecurityContext"), "sysctls", atomic());
    add(format!("{C}Capabilities"), "add", atomic());
    add(format!("{C}Capabilities"), "drop", atomic());
    for field in ["nameservers", "searches", "options"] {
        add(format!("{C}PodDNSConfig"), field, atomic());
    }
    add(format!("{C}ExecAction"), "command", atomic());
    add(format!("{C}HTTPGetAction"), "httpHeaders", atomic());
    for schema in [
        "ConfigMapVolumeSource",
        "SecretVolumeSource",
        "ConfigMapProjection",
        "SecretProjection",
        "DownwardAPIVolumeSource",
    ] {
        add(format!("{C}{schema}"), "items", atomic());
    }
    add(format!("{C}ProjectedVolumeSource"), "sources", atomic());
    add(format!("{C}NodeSelector"), "nodeSelectorTerms", atomic());
    add(format!("{C}NodeSelectorTerm"), "matchExpressions", atomic());
    add(format!("{C}NodeSelectorTerm"), "matchFields", atomic());
    add(format!("{C}NodeSelectorRequirement"), "values", atomic());
    add(
        format!("{C}NodeAffinity"),
        "preferredDuringSchedulingIgnoredDuringExecution",
        atomic(),
    );
    for schema in ["PodAffinity", "PodAntiAffinity"] {
        for field in [
            "requiredDuringSchedulingIgnoredDuringExecution",
            "preferredDuringSchedulingIgnoredDuringExecution",
        ] {
            add(format!("{C}{schema}"), field, atomic());
        }
    }
    for field in ["namespaces", "matchLabelKeys", "mismatchLabelKeys"] {
        add(format!("{C}PodAffinityTerm"), field, atomic());
    }
    add(
        format!("{C}TopologySpreadConstraint"),
        "matchLabelKeys",
        atomic(),
    );

    // core/v1: the other kinds.
    add(
        format!("{C}ServiceSpec"),
        "ports",
        merge_map(&["port", "protocol"], "port", "merge"),
    );
    for field in [
        "externalIPs",
        "clusterIPs",
        "ipFamilies",
        "loadBalancerSourceRanges",
    ] {
        add(format!("{C}ServiceSpec"), field, atomic());
    }
    add(format!("{C}ServiceStatus"), "conditions", by_type());
    add(format!("{C}LoadBalancerStatus"), "ingress", atomic());
    add(
        format!("{C}NodeSpec"),
        "podCIDRs",
        json!({"x-kubernetes-list-type": "set", "x-kubernetes-patch-strategy": "merge"}),
    );
    add(format!("{C}NodeSpec"), "taints", atomic());
    add(format!("{C}NodeStatus"), "conditions", by_type());
    add(format!("{C}NodeStatus"), "addresses", by_type());
    for field in ["images", "volumesInUse", "volumesAttached"] {
        add(format!("{C}NodeStatus"), field, atomic());
    }
    add(format!("{C}NamespaceSpec"), "finalizers", atomic());
    add(format!("{C}NamespaceStatus"), "conditions", by_type());
    add(
        format!("{C}PersistentVolumeClaimSpec"),
        "accessModes",
        atomic(),
    );
    add(
        format!("{C}PersistentVolumeClaimStatus"),
        "conditions",
        by_type(),
    );
    add(
        format!("{C}PersistentVolumeClaimStatus"),
        "accessModes",
        atomic(),
    );
    add(format!("{C}ServiceAccount"), "secrets", by_name());
    add(format!("{C}ServiceAccount"), "imagePullSecrets", atomic());
    add(format!("{C}Endpoints"), "subsets", atomic());
    for field in ["addresses", "notReadyAddresses", "ports"] {
        add(format!("{C}EndpointSubset"), field, atomic());
    }

    // meta/v1.
    const M: &str = "io.k8s.apimachinery.pkg.apis.meta.v1.";
    add(
        format!("{M}ObjectMeta"),
        "finalizers",
        json!({"x-kubernetes-list-type": "set", "x-kubernetes-patch-strategy": "merge"}),
    );
    add(
        format!("{M}ObjectMeta"),
        "ownerReferences",
        merge_map(&["uid"], "uid", "merge"),
    );
    add(format!("{M}ObjectMeta"), "managedFields", atomic());
    add(format!("{M}LabelSelector"), "matchExpressions", atomic());
    add(format!("{M}LabelSelectorRequirement"), "values", atomic());

    // apps/v1, batch/v1, autoscaling/v2.
    for status in [
        "DeploymentStatus",
        "ReplicaSetStatus",
        "StatefulSetStatus",
        "DaemonSetStatus",
    ] {
        add(
            format!("io.k8s.api.apps.v1.{status}"),
            "conditions",
            by_type(),
        );
    }
    add(
        "io.k8s.api.apps.v1.StatefulSetSpec".into(),
        "volumeClaimTemplates",
        atomic(),
    );
    const B: &str = "io.k8s.api.batch.v1.";
    add(
        format!("{B}JobStatus"),
        "conditions",
        json!({"x-kubernetes-list-type": "atomic", "x-kubernetes-patch-merge-key": "type", "x-kubernetes-patch-strategy": "merge"}),
    );
    add(format!("{B}CronJobStatus"), "active", atomic());
    add(format!("{B}PodFailurePolicy"), "rules", atomic());
    add(
        format!("{B}PodFailurePolicyRule"),
        "onPodConditions",
        atomic(),
    );
    add(
        format!("{B}PodFailurePolicyOnExitCodesRequirement"),
        "values",
        set(),
    );
    add(format!("{B}SuccessPolicy"), "rules", atomic());
    const H: &str = "io.k8s.api.autoscaling.v2.";
    add(
        format!("{H}HorizontalPodAutoscalerSpec"),
        "metrics",
        atomic(),
    );
    add(
        format!("{H}HorizontalPodAutoscalerStatus"),
        "conditions",
        by_type(),
    );
    add(
        format!("{H}HorizontalPodAutoscalerStatus"),
        "currentMetrics",
        atomic(),
    );
    add(format!("{H}HPAScalingRules"), "policies", atomic());

    // discovery, networking, rbac.
    add(
        "io.k8s.api.discovery.v1.EndpointSlice".into(),
        "endpoints",
        atomic(),
    );
    add(
        "io.k8s.api.discovery.v1.EndpointSlice".into(),
        "ports",
        atomic(),
    );
    add(
        "io.k8s.api.discovery.v1.Endpoint".into(),
        "addresses",
        set(),
    );
    const N: &str = "io.k8s.api.networking.v1.";
    add(format!("{N}IngressSpec"), "rules", atomic());
    add(format!("{N}IngressSpec"), "tls", atomic());
    add(format!("{N}HTTPIngressRuleValue"), "paths", atomic());
    add(format!("{N}IngressTLS"), "hosts", atomic());
    add(format!("{N}IngressLoadBalancerStatus"), "ingress", atomic());
    add(format!("{N}IngressLoadBalancerIngress"), "ports", atomic());
    const R: &str = "io.k8s.api.rbac.v1.";
    add(format!("{R}Role"), "rules", atomic());
    add(format!("{R}ClusterRole"), "rules", atomic());
    add(format!("{R}RoleBinding"), "subjects", atomic());
    add(format!("{R}ClusterRoleBinding"), "subjects", atomic());
    for field in [
        "verbs",
        "apiGroups",
        "resources",
        "resourceNames",
        "nonResourceURLs",
    ] {
        add(format!("{R}PolicyRule"), field, atomic());
    }
    add(
        format!("{R}AggregationRule"),
        "clusterRoleSelectors",
        atomic(),
    );

    // admissionregistration, apiextensions, apiregistration.
    const A: &str = "io.k8s.api.admissionregistration.v1.";
    for kind in ["Validating", "Mutating"] {
        add(
            format!("{A}{kind}WebhookConfiguration"),
            "webhooks",
            by_name(),
        );
        let webhook = format!("{A}{kind}Webhook");
        add(webhook.clone(), "rules", atomic());
        add(webhook.clone(), "admissionReviewVersions", atomic());
        add(webhook, "matchConditions", by_name());
    }
    for field in ["operations", "apiGroups", "apiVersions", "resources"] {
        add(format!("{A}RuleWithOperations"), field, atomic());
    }
    const X: &str = "io.k8s.apiextensions-apiserver.pkg.apis.apiextensions.v1.";
    add(
        format!("{X}CustomResourceDefinitionSpec"),
        "versions",
        atomic(),
    );
    add(
        format!("{X}CustomResourceDefinitionStatus"),
        "conditions",
        json!({"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["type"]}),
    );
    add(
        format!("{X}CustomResourceDefinitionStatus"),
        "storedVersions",
        atomic(),
    );
    add(
        format!("{X}CustomResourceDefinitionNames"),
        "shortNames",
        atomic(),
    );
    add(
        format!("{X}CustomResourceDefinitionNames"),
        "categories",
        atomic(),
    );
    add(
        "io.k8s.kube-aggregator.pkg.apis.apiregistration.v1.APIServiceStatus".into(),
        "conditions",
        by_type(),
    );

    rules
}
