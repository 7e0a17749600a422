//! `cluster.karmada.io/v1alpha1` Clusters, served by the aggregated API server as
//! Karmada's karmada-aggregated-apiserver serves them (not as a CRD): the resource
//! description, and Karmada's create/update preparation, validation and
//! canonicalisation (from flotilla-api) applied on every write.

use kube::CustomResourceExt;
use serde_json::{Value, json};

use flotilla_api::cluster::Cluster;
use flotilla_api::{defaults, validation};

use super::{ResourceInfo, crd};
use crate::status::Cause;

/// The printer columns Karmada's Cluster table has (NAME is added first).
fn printer_columns() -> Value {
    json!([
        {"name": "Version", "type": "string", "jsonPath": ".status.kubernetesVersion", "description": "KubernetesVersion represents version of the member cluster."},
        {"name": "Mode", "type": "string", "jsonPath": ".spec.syncMode", "description": "SyncMode describes how a cluster sync resources from karmada control plane."},
        {"name": "Ready", "type": "string", "jsonPath": ".status.conditions[?(@.type==\"Ready\")].status", "description": "The aggregate readiness state of this cluster for accepting workloads."},
        {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp", "description": "CreationTimestamp is a timestamp representing the server time when this object was created."},
        {"name": "Zones", "type": "string", "jsonPath": ".spec.zones", "priority": 1, "description": "Zones represents the failure zones of the member cluster."},
        {"name": "Region", "type": "string", "jsonPath": ".spec.region", "priority": 1, "description": "Region represents the region of the member cluster."},
        {"name": "Provider", "type": "string", "jsonPath": ".spec.provider", "priority": 1, "description": "Provider represents the cloud provider name of the member cluster."},
        {"name": "API-Endpoint", "type": "string", "jsonPath": ".spec.apiEndpoint", "priority": 1, "description": "The API endpoint of the member cluster."},
        {"name": "Proxy-URL", "type": "string", "jsonPath": ".spec.proxyURL", "priority": 1, "description": "ProxyURL is the proxy URL for the cluster."},
    ])
}

/// The `clusters` resource of the aggregated API server.
pub fn resource() -> ResourceInfo {
    let mut definition = serde_json::to_value(Cluster::crd()).unwrap_or_default();
    if let Some(v) = definition.pointer_mut("/spec/versions/0") {
        v["additionalPrinterColumns"] = printer_columns();
    }
    let mut info = crd::resources(&definition)
        .into_iter()
        .next()
        .unwrap_or_else(|| {
            // The derived definition always has its one served version.
            unreachable!("Cluster::crd() serves v1alpha1")
        });
    info.openapi_prefix = "com.github.karmada-io.karmada.pkg.apis.cluster.v1alpha1".into();
    info
}

/// Whether a resource is the aggregated Cluster resource.
pub fn is_cluster(info: &ResourceInfo) -> bool {
    info.group == "cluster.karmada.io" && info.plural == "clusters"
}

fn causes(errors: Vec<flotilla_api::FieldError>) -> Vec<Cause> {
    errors
        .into_iter()
        .map(|e| Cause::new(e.reason(), e.field.clone(), e.message()))
        .collect()
}

/// Karmada's preparation, validation and canonicalisation of a Cluster write;
/// `old` is the stored object on update.
pub fn prepare(object: &mut Value, old: Option<&Value>, now: &str) -> Result<(), Vec<Cause>> {
    let mut cluster: Cluster = serde_json::from_value(object.clone()).map_err(|e| {
        vec![Cause::new(
            "FieldValueInvalid",
            "",
            format!("Invalid value: {e}"),
        )]
    })?;
    match old.and_then(|o| serde_json::from_value::<Cluster>(o.clone()).ok()) {
        Some(old) => defaults::prepare_cluster_for_update(&mut cluster, &old),
        None => defaults::prepare_cluster_for_create(&mut cluster),
    }
    let errors = validation::validate_cluster(&cluster);
    if !errors.is_empty() {
        return Err(causes(errors));
    }
    let now: k8s_openapi::apimachinery::pkg::apis::meta::v1::Time =
        serde_json::from_value(json!(now))
            .map_err(|e| vec![Cause::new("FieldValueInvalid", "", e.to_string())])?;
    defaults::canonicalize_cluster(&mut cluster, &now);
    let mut out = serde_json::to_value(&cluster)
        .map_err(|e| vec![Cause::new("FieldValueInvalid", "", e.to_string())])?;
    // Keep server-owned metadata exactly as the store set it.
    if let (Some(meta), Some(o)) = (object.get("metadata").cloned(), out.as_object_mut()) {
        o.insert("metadata".into(), meta);
        if let Some(g) = cluster.metadata.generation {
            o["metadata"]["generation"] = json!(g);
        }
    }
    *object = out;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resource_is_cluster_scoped_with_status() {
        let r = resource();
        assert!(!r.namespaced);
        assert!(r.status_subresource);
        assert_eq!(r.kind, "Cluster");
    }

    #[test]
    fn invalid_clusters_are_refused() {
        let mut bad = json!({"apiVersion": "cluster.karmada.io/v1alpha1", "kind": "Cluster",
            "metadata": {"name": "member-1"}, "spec": {"syncMode": "Sideways"}});
        let causes = prepare(&mut bad, None, "2026-01-01T00:00:00Z").expect_err("invalid");
        assert!(
            causes.iter().any(|c| c.field.contains("syncMode")),
            "{causes:?}"
        );
        let mut good = json!({"apiVersion": "cluster.karmada.io/v1alpha1", "kind": "Cluster",
            "metadata": {"name": "member1"}, "spec": {"syncMode": "Push", "apiEndpoint": "https://127.0.0.1:6443"}});
        prepare(&mut good, None, "2026-01-01T00:00:00Z").expect("valid");
        assert!(
            good["spec"]["resourceModels"].is_array(),
            "default resource models"
        );
    }
}
