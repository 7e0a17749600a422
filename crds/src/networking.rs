//! `networking.karmada.io/v1alpha1`: MultiClusterService and
//! MultiClusterIngress. Mirrors Karmada's
//! `pkg/apis/networking/v1alpha1/service_types.go` and `ingress_types.go`.

use k8s_openapi::api::core::v1::ServiceStatus;
use k8s_openapi::api::networking::v1::{IngressLoadBalancerStatus, IngressSpec};
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Label with a MultiClusterService's permanent id.
pub const MULTI_CLUSTER_SERVICE_PERMANENT_ID_LABEL: &str =
    "multiclusterservice.karmada.io/permanent-id";

/// A port exposed across clusters (Karmada `ExposurePort`).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ExposurePort {
    /// Port name.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub name: String,
    /// Port number.
    pub port: i32,
}

/// Deprecated cluster range (Karmada `ExposureRange`).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ExposureRange {
    /// Cluster names.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub cluster_names: Vec<String>,
}

/// A cluster selected by name (Karmada `ClusterSelector`).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ClusterSelector {
    /// Cluster name.
    pub name: String,
}

/// Desired state of a MultiClusterService (Karmada `MultiClusterServiceSpec`).
#[derive(CustomResource, Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "networking.karmada.io",
    version = "v1alpha1",
    kind = "MultiClusterService",
    plural = "multiclusterservices",
    singular = "multiclusterservice",
    namespaced,
    shortname = "mcs",
    category = "karmada-io",
    status = "ServiceStatus",
    doc = "MultiClusterService is a named abstraction of multi-cluster software service.",
    derive = "PartialEq",
    derive = "Default"
)]
#[serde(rename_all = "camelCase")]
pub struct MultiClusterServiceSpec {
    /// `CrossCluster` and/or `LoadBalancer`.
    pub types: Vec<String>,
    /// Exposed ports.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ports: Vec<ExposurePort>,
    /// Deprecated range.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub range: Option<ExposureRange>,
    /// Deprecated provision clusters.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub service_provision_clusters: Vec<String>,
    /// Deprecated consumption clusters.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub service_consumption_clusters: Vec<String>,
    /// Provider clusters; empty means all.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub provider_clusters: Vec<ClusterSelector>,
    /// Consumer clusters; empty means all.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub consumer_clusters: Vec<ClusterSelector>,
}

/// Where a backend service runs (Karmada `ServiceLocation`).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ServiceLocation {
    /// Service name.
    pub name: String,
    /// Clusters.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub clusters: Vec<String>,
}

/// Observed state of a MultiClusterIngress (Karmada `MultiClusterIngressStatus`).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct MultiClusterIngressStatus {
    /// Load balancer status (IngressStatus inline).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub load_balancer: Option<IngressLoadBalancerStatus>,
    /// Clusters whose traffic is blocked.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub traffic_block_clusters: Vec<String>,
    /// Backend service locations.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub service_locations: Vec<ServiceLocation>,
}

/// Spec of a MultiClusterIngress: a standard IngressSpec (Karmada `MultiClusterIngress`).
#[derive(CustomResource, Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "networking.karmada.io",
    version = "v1alpha1",
    kind = "MultiClusterIngress",
    plural = "multiclusteringresses",
    singular = "multiclusteringress",
    namespaced,
    shortname = "mci",
    category = "karmada-io",
    status = "MultiClusterIngressStatus",
    doc = "MultiClusterIngress is a collection of rules that allow inbound connections to reach the endpoints defined by a backend.",
    derive = "PartialEq",
    derive = "Default"
)]
#[serde(transparent)]
pub struct MultiClusterIngressSpec(pub IngressSpec);
