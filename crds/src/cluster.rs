//! `cluster.karmada.io/v1alpha1` Cluster: a member cluster as the control
//! plane sees it. Served by the aggregated API server (not a CRD), so there is
//! no manifest for it in [`crate::crd`]. Mirrors Karmada's
//! `pkg/apis/cluster/v1alpha1/types.go`.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::Taint;
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// `syncMode: Push`.
pub const SYNC_MODE_PUSH: &str = "Push";
/// `syncMode: Pull`.
pub const SYNC_MODE_PULL: &str = "Pull";
/// Automatic taint for a cluster whose Ready condition is False or absent.
pub const TAINT_CLUSTER_NOT_READY: &str = "cluster.karmada.io/not-ready";
/// Automatic taint for a cluster whose Ready condition is Unknown.
pub const TAINT_CLUSTER_UNREACHABLE: &str = "cluster.karmada.io/unreachable";
/// Finalizer of Clusters.
pub const CLUSTER_CONTROLLER_FINALIZER: &str = "karmada.io/cluster-controller";
/// Condition type `Ready`.
pub const CONDITION_READY: &str = "Ready";
/// Prefix of a member cluster's execution namespace.
pub const EXECUTION_NAMESPACE_PREFIX: &str = "karmada-es-";

fn is_false(b: &bool) -> bool {
    !*b
}

/// Reference to a Secret in the control plane (Karmada `LocalSecretReference`).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct LocalSecretReference {
    /// Namespace of the secret.
    pub namespace: String,
    /// Name of the secret.
    pub name: String,
}

/// One resource range of a resource model grade (Karmada `ResourceModelRange`).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ResourceModelRange {
    /// Resource name (cpu, memory, ...).
    pub name: String,
    /// Inclusive lower bound.
    pub min: Quantity,
    /// Exclusive upper bound.
    pub max: Quantity,
}

/// One grade of the cluster resource model (Karmada `ResourceModel`).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ResourceModel {
    /// Grade index.
    pub grade: u32,
    /// Ranges per resource.
    pub ranges: Vec<ResourceModelRange>,
}

/// The desired state of a member cluster (Karmada `ClusterSpec`).
#[derive(CustomResource, Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "cluster.karmada.io",
    version = "v1alpha1",
    kind = "Cluster",
    plural = "clusters",
    singular = "cluster",
    status = "ClusterStatus",
    doc = "Cluster represents the desired state and status of a member cluster.",
    derive = "PartialEq",
    derive = "Default"
)]
#[serde(rename_all = "camelCase")]
pub struct ClusterSpec {
    /// Unique id of the member (usually the kube-system namespace uid).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub id: String,
    /// `Push` or `Pull`.
    pub sync_mode: String,
    /// API endpoint of the member.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub api_endpoint: String,
    /// Secret with `token` and `caBundle`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_ref: Option<LocalSecretReference>,
    /// Secret with the impersonator `token`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub impersonator_secret_ref: Option<LocalSecretReference>,
    /// Skip TLS verification.
    #[serde(
        default,
        rename = "insecureSkipTLSVerification",
        skip_serializing_if = "is_false"
    )]
    pub insecure_skip_tls_verification: bool,
    /// Proxy URL (`http`, `https` or `socks5`).
    #[serde(default, rename = "proxyURL", skip_serializing_if = "String::is_empty")]
    pub proxy_url: String,
    /// Headers sent to the proxy.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub proxy_header: BTreeMap<String, String>,
    /// Cloud provider.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub provider: String,
    /// Region.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub region: String,
    /// Deprecated single zone; moved into `zones` on write.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub zone: String,
    /// Zones.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub zones: Vec<String>,
    /// Taints.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub taints: Vec<Taint>,
    /// Resource model grades.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub resource_models: Vec<ResourceModel>,
}

/// A resource of an API group version (Karmada `APIResource`).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ApiResource {
    /// Plural resource name.
    pub name: String,
    /// Kind.
    pub kind: String,
}

/// Resources enabled for a group version (Karmada `APIEnablement`).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ApiEnablement {
    /// `group/version` or `v1`.
    pub group_version: String,
    /// Resources.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub resources: Vec<ApiResource>,
}

/// Node counts (Karmada `NodeSummary`).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct NodeSummary {
    /// Total nodes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub total_num: Option<i32>,
    /// Ready nodes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ready_num: Option<i32>,
}

/// Count of nodes in a resource model grade (Karmada `AllocatableModeling`).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AllocatableModeling {
    /// Grade.
    pub grade: u32,
    /// Node count.
    pub count: i32,
}

/// Resource totals (Karmada `ResourceSummary`).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ResourceSummary {
    /// Allocatable resources.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub allocatable: BTreeMap<String, Quantity>,
    /// Resources being allocated.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub allocating: BTreeMap<String, Quantity>,
    /// Allocated resources.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub allocated: BTreeMap<String, Quantity>,
    /// Nodes per grade.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allocatable_modelings: Vec<AllocatableModeling>,
}

/// Observed state of a member (Karmada `ClusterStatus`).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ClusterStatus {
    /// Member Kubernetes version.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub kubernetes_version: String,
    /// Enabled APIs.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub api_enablements: Vec<ApiEnablement>,
    /// `Ready`, `CompleteAPIEnablements`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    /// Node counts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node_summary: Option<NodeSummary>,
    /// Resource totals.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource_summary: Option<ResourceSummary>,
    /// Remedy actions.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub remedy_actions: Vec<String>,
}

/// One column of the Cluster server-side table (Karmada
/// `pkg/printers/internalversion/printers.go`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TableColumn {
    /// Header.
    pub name: &'static str,
    /// OpenAPI type.
    pub type_: &'static str,
    /// OpenAPI format (`name` for the first column).
    pub format: &'static str,
    /// 0 for default columns, 1 for `-o wide`.
    pub priority: i32,
    /// Column description.
    pub description: &'static str,
}

/// The Cluster table columns: Name, Version, Mode, Ready, Age and, with
/// priority 1, Zones, Region, Provider, API-Endpoint, Proxy-URL.
pub const TABLE_COLUMNS: [TableColumn; 10] = [
    TableColumn {
        name: "Name",
        type_: "string",
        format: "name",
        priority: 0,
        description: "Name must be unique within a namespace. Is required when creating resources, although some resources may allow a client to request the generation of an appropriate name automatically. Name is primarily intended for creation idempotence and configuration definition. Cannot be updated. More info: https://kubernetes.io/docs/concepts/overview/working-with-objects/names#names",
    },
    TableColumn {
        name: "Version",
        type_: "string",
        format: "",
        priority: 0,
        description: "KubernetesVersion represents version of the member cluster.",
    },
    TableColumn {
        name: "Mode",
        type_: "string",
        format: "",
        priority: 0,
        description: "SyncMode describes how a cluster sync resources from karmada control plane.",
    },
    TableColumn {
        name: "Ready",
        type_: "string",
        format: "",
        priority: 0,
        description: "The aggregate readiness state of this cluster for accepting workloads.",
    },
    TableColumn {
        name: "Age",
        type_: "string",
        format: "",
        priority: 0,
        description: "CreationTimestamp is a timestamp representing the server time when this object was created. It is not guaranteed to be set in happens-before order across separate operations. Clients may not set this value. It is represented in RFC3339 form and is in UTC.\n\nPopulated by the system. Read-only. Null for lists. More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#metadata",
    },
    TableColumn {
        name: "Zones",
        type_: "string",
        format: "",
        priority: 1,
        description: "Zones represents the failure zones(also called availability zones) of the member cluster. The zones are presented as a slice to support the case that cluster runs across multiple failure zones.",
    },
    TableColumn {
        name: "Region",
        type_: "string",
        format: "",
        priority: 1,
        description: "Region represents the region of the member cluster locate in.",
    },
    TableColumn {
        name: "Provider",
        type_: "string",
        format: "",
        priority: 1,
        description: "Provider represents the cloud provider name of the member cluster.",
    },
    TableColumn {
        name: "API-Endpoint",
        type_: "string",
        format: "",
        priority: 1,
        description: "The API endpoint of the member cluster.",
    },
    TableColumn {
        name: "Proxy-URL",
        type_: "string",
        format: "",
        priority: 1,
        description: "ProxyURL is the proxy URL for the cluster.",
    },
];

/// Kubernetes' `duration.HumanDuration` (what kubectl shows as AGE).
pub fn human_duration(seconds: i64) -> String {
    if seconds < -1 {
        return "<invalid>".into();
    }
    if seconds < 0 {
        return "0s".into();
    }
    if seconds < 120 {
        return format!("{seconds}s");
    }
    let minutes = seconds / 60;
    if minutes < 10 {
        let s = seconds % 60;
        return if s == 0 {
            format!("{minutes}m")
        } else {
            format!("{minutes}m{s}s")
        };
    }
    if minutes < 180 {
        return format!("{minutes}m");
    }
    let hours = seconds / 3600;
    if hours < 8 {
        let m = minutes % 60;
        return if m == 0 {
            format!("{hours}h")
        } else {
            format!("{hours}h{m}m")
        };
    }
    if hours < 48 {
        return format!("{hours}h");
    }
    if hours < 24 * 8 {
        let h = hours % 24;
        return if h == 0 {
            format!("{}d", hours / 24)
        } else {
            format!("{}d{h}h", hours / 24)
        };
    }
    if hours < 24 * 365 * 2 {
        return format!("{}d", hours / 24);
    }
    if hours < 24 * 365 * 8 {
        let dy = (hours / 24) % 365;
        return if dy == 0 {
            format!("{}y", hours / 24 / 365)
        } else {
            format!("{}y{dy}d", hours / 24 / 365)
        };
    }
    format!("{}y", hours / 24 / 365)
}

fn or_none(s: &str) -> String {
    if s.is_empty() {
        "<none>".into()
    } else {
        s.to_string()
    }
}

impl Cluster {
    /// The table cells of this cluster (Karmada `printCluster`): Ready is the
    /// `Ready` condition status or `Unknown`; Age is `<unknown>` without a
    /// creation timestamp; wide cells use `<none>` for empty values except
    /// API-Endpoint. `now_unix` is the current time in Unix seconds.
    pub fn table_cells(&self, now_unix: i64, wide: bool) -> Vec<String> {
        let status = self.status.clone().unwrap_or_default();
        let ready = status
            .conditions
            .iter()
            .find(|c| c.type_ == CONDITION_READY)
            .map_or_else(|| "Unknown".to_string(), |c| c.status.clone());
        let age = match &self.metadata.creation_timestamp {
            None => "<unknown>".to_string(),
            Some(t) => human_duration(now_unix - t.0.as_second()),
        };
        let mut cells = vec![
            self.name().to_string(),
            status.kubernetes_version,
            self.spec.sync_mode.clone(),
            ready,
            age,
        ];
        if wide {
            cells.push(if self.spec.zones.is_empty() {
                "<none>".into()
            } else {
                self.spec.zones.join(",")
            });
            cells.push(or_none(&self.spec.region));
            cells.push(or_none(&self.spec.provider));
            cells.push(self.spec.api_endpoint.clone());
            cells.push(or_none(&self.spec.proxy_url));
        }
        cells
    }

    /// The cluster's zones, counting the deprecated `zone` field.
    pub fn zones(&self) -> Vec<&str> {
        let mut z: Vec<&str> = self.spec.zones.iter().map(String::as_str).collect();
        if !self.spec.zone.is_empty() && !z.contains(&self.spec.zone.as_str()) {
            z.push(&self.spec.zone);
        }
        z
    }

    /// The cluster's name (`metadata.name`, empty if unset).
    pub fn name(&self) -> &str {
        self.metadata.name.as_deref().unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn human_durations() {
        let cases = [
            (-2, "<invalid>"),
            (-1, "0s"),
            (0, "0s"),
            (119, "119s"),
            (120, "2m"),
            (125, "2m5s"),
            (600, "10m"),
            (179 * 60, "179m"),
            (3 * 3600, "3h"),
            (3 * 3600 + 60, "3h1m"),
            (8 * 3600, "8h"),
            (47 * 3600, "47h"),
            (48 * 3600, "2d"),
            (50 * 3600, "2d2h"),
            (8 * 86400, "8d"),
            (730 * 86400, "2y"),
            (731 * 86400, "2y1d"),
            (8 * 365 * 86400, "8y"),
        ];
        for (secs, want) in cases {
            assert_eq!(human_duration(secs), want, "{secs}");
        }
    }

    #[test]
    fn table_rows() {
        let mut c: Cluster = serde_saphyr::from_str(
            "apiVersion: cluster.karmada.io/v1alpha1\nkind: Cluster\nmetadata: {name: member1, creationTimestamp: '2026-01-01T00:00:00Z'}\nspec: {syncMode: Push, apiEndpoint: 'https://1.2.3.4:6443', zones: [a, b]}\nstatus: {kubernetesVersion: v1.31.2, conditions: [{type: Ready, status: 'True', reason: ClusterReady, message: ok, lastTransitionTime: '2026-01-01T00:00:00Z'}]}",
        )
        .unwrap();
        let created = c.metadata.creation_timestamp.clone().unwrap().0.as_second();
        assert_eq!(
            c.table_cells(created + 300, false),
            vec!["member1", "v1.31.2", "Push", "True", "5m"]
        );
        assert_eq!(
            c.table_cells(created + 300, true)[5..].to_vec(),
            vec!["a,b", "<none>", "<none>", "https://1.2.3.4:6443", "<none>"]
        );
        c.status = None;
        c.metadata.creation_timestamp = None;
        assert_eq!(
            c.table_cells(0, false)[3..].to_vec(),
            vec!["Unknown", "<unknown>"]
        );
        assert_eq!(TABLE_COLUMNS.iter().filter(|c| c.priority == 0).count(), 5);
    }
}
