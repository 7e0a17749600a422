//! `search.karmada.io/v1alpha1` ResourceRegistries, served by the aggregated API
//! server as Karmada's karmada-search serves them (not as a CRD): which kinds of
//! which clusters the unified view caches (see [`crate::unified`]).

use kube::CustomResourceExt;
use serde_json::json;

use flotilla_api::search::ResourceRegistry;

use super::{ResourceInfo, crd};

/// The columns Karmada's ResourceRegistry table has (NAME is added first).
fn printer_columns() -> serde_json::Value {
    json!([
        {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp",
         "description": "CreationTimestamp is a timestamp representing the server time when this object was created."},
    ])
}

/// The `resourceregistries` resource of the aggregated API server.
pub fn resource() -> ResourceInfo {
    let mut definition = serde_json::to_value(ResourceRegistry::crd()).unwrap_or_default();
    if let Some(v) = definition.pointer_mut("/spec/versions/0") {
        v["additionalPrinterColumns"] = printer_columns();
    }
    let mut info = crd::resources(&definition)
        .into_iter()
        .next()
        .unwrap_or_else(|| unreachable!("ResourceRegistry::crd() serves v1alpha1"));
    info.openapi_prefix = "com.github.karmada-io.karmada.pkg.apis.search.v1alpha1".into();
    info
}

#[cfg(test)]
mod tests {
    #[test]
    fn resource_registries_are_cluster_scoped() {
        let info = super::resource();
        assert_eq!(
            (
                info.group.as_str(),
                info.version.as_str(),
                info.plural.as_str(),
                info.kind.as_str()
            ),
            (
                "search.karmada.io",
                "v1alpha1",
                "resourceregistries",
                "ResourceRegistry"
            )
        );
        assert!(!info.namespaced);
    }
}
