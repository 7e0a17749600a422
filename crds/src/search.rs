//! `search.karmada.io/v1alpha1` ResourceRegistry: which resources of which
//! clusters karmada-search caches. Served by the aggregated API server (not a
//! CRD). Mirrors Karmada's `pkg/apis/search/v1alpha1/searchregistry_types.go`.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::cluster::LocalSecretReference;
use crate::policy::ClusterAffinity;

/// Selects resources to cache (Karmada search `ResourceSelector`).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SearchResourceSelector {
    /// apiVersion.
    pub api_version: String,
    /// Kind.
    pub kind: String,
    /// Namespace; empty means all.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub namespace: String,
}

/// OpenSearch backend (Karmada `OpenSearchConfig`).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct OpenSearchConfig {
    /// Addresses.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub addresses: Vec<String>,
    /// Credentials.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_ref: Option<LocalSecretReference>,
}

/// Backend store (Karmada `BackendStoreConfig`).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct BackendStoreConfig {
    /// OpenSearch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub open_search: Option<OpenSearchConfig>,
}

/// Desired state of a ResourceRegistry (Karmada `ResourceRegistrySpec`).
#[derive(CustomResource, Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "search.karmada.io",
    version = "v1alpha1",
    kind = "ResourceRegistry",
    plural = "resourceregistries",
    singular = "resourceregistry",
    status = "ResourceRegistryStatus",
    doc = "ResourceRegistry represents the configuration of the cache scope.",
    derive = "PartialEq",
    derive = "Default"
)]
#[serde(rename_all = "camelCase")]
pub struct ResourceRegistrySpec {
    /// Clusters to cache.
    pub target_cluster: ClusterAffinity,
    /// Resources to cache.
    pub resource_selectors: Vec<SearchResourceSelector>,
    /// Backend store.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backend_store: Option<BackendStoreConfig>,
}

/// Observed state (Karmada `ResourceRegistryStatus`).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ResourceRegistryStatus {
    /// Conditions.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
}
