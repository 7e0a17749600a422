//! OpenAPI v3: the `/openapi/v3` index and one document per group-version, with the
//! operations kubectl checks before `create -f` / `apply -f` (a PATCH per kind
//! tagged with its group-version-kind and listing `fieldValidation`) and a component
//! schema per kind. Documents are cached by the catalog's generation and served by
//! content hash with immutable caching.

use std::collections::BTreeMap;
use std::hash::{Hash, Hasher};
use std::sync::Mutex;

use serde_json::{Value, json};

use crate::registry::{Catalog, ResourceInfo};

/// Rendered documents for one catalog generation.
#[derive(Default)]
pub struct Cache {
    inner: Mutex<Option<(u64, Documents)>>,
}

/// Every group-version document, keyed by its index path (`api/v1`, `apis/g/v`).
#[derive(Clone)]
pub struct Documents {
    pub docs: BTreeMap<String, (String, std::sync::Arc<Vec<u8>>)>,
}

impl Cache {
    /// The documents for the catalog's current generation.
    pub fn documents(&self, catalog: &Catalog) -> Documents {
        let generation = catalog.generation();
        let mut inner = self.inner.lock().expect("openapi cache lock");
        if let Some((g, docs)) = inner.as_ref()
            && *g == generation
        {
            return docs.clone();
        }
        let docs = render(catalog);
        *inner = Some((generation, docs.clone()));
        docs
    }
}

fn index_path(group: &str, version: &str) -> String {
    if group.is_empty() {
        format!("api/{version}")
    } else {
        format!("apis/{group}/{version}")
    }
}

fn render(catalog: &Catalog) -> Documents {
    let mut docs = BTreeMap::new();
    for (group, versions) in catalog.groups() {
        for version in versions {
            let doc = group_version_doc(catalog, &group, &version);
            let bytes = serde_json::to_vec(&doc).unwrap_or_default();
            let mut hasher = std::collections::hash_map::DefaultHasher::new();
            bytes.hash(&mut hasher);
            let hash = format!("{:016X}", hasher.finish());
            docs.insert(
                index_path(&group, &version),
                (hash, std::sync::Arc::new(bytes)),
            );
        }
    }
    Documents { docs }
}

/// The `/openapi/v3` index.
pub fn index(docs: &Documents) -> Value {
    let paths: serde_json::Map<String, Value> = docs
        .docs
        .iter()
        .map(|(path, (hash, _))| {
            (
                path.clone(),
                json!({"serverRelativeURL": format!("/openapi/v3/{path}?hash={hash}")}),
            )
        })
        .collect();
    json!({"paths": paths})
}

/// The schema name of a kind, e.g. `io.k8s.api.apps.v1.Deployment`.
pub fn schema_name(info: &ResourceInfo) -> String {
    format!("{}.{}", info.openapi_prefix, info.kind)
}

fn query_param(name: &str, description: &str) -> Value {
    json!({"name": name, "in": "query", "description": description, "schema": {"type": "string", "uniqueItems": true}})
}

fn write_params() -> Vec<Value> {
    vec![
        query_param(
            "dryRun",
            "When present, indicates that modifications should not be persisted.",
        ),
        query_param(
            "fieldManager",
            "fieldManager is a name associated with the actor or entity that is making these changes.",
        ),
        query_param(
            "fieldValidation",
            "fieldValidation instructs the server on how to handle objects in the request (POST/PUT/PATCH) containing unknown or duplicate fields. Valid values are: Ignore, Warn, Strict.",
        ),
    ]
}

fn operation(info: &ResourceInfo, action: &str, mut params: Vec<Value>, with_body: bool) -> Value {
    let gvk = json!({"group": info.group, "version": info.version, "kind": info.kind});
    let schema_ref = json!({"$ref": format!("#/components/schemas/{}", schema_name(info))});
    let mut op = json!({
        "operationId": format!("{action}{}", info.kind),
        "description": format!("{action} {}", info.kind),
        "tags": [info.api_version()],
        "responses": {"200": {"description": "OK", "content": {"application/json": {"schema": schema_ref.clone()}}}},
        "x-kubernetes-action": action,
        "x-kubernetes-group-version-kind": gvk,
    });
    if action == "patch" {
        params.push(query_param(
            "force",
            "Force is going to \"force\" Apply requests.",
        ));
        op["requestBody"] = json!({"content": {
            "application/apply-patch+yaml": {"schema": {"type": "object"}},
            "application/json-patch+json": {"schema": {"type": "object"}},
            "application/merge-patch+json": {"schema": {"type": "object"}},
            "application/strategic-merge-patch+json": {"schema": {"type": "object"}},
        }});
    } else if with_body {
        op["requestBody"] = json!({"content": {"application/json": {"schema": schema_ref}}});
    }
    op["parameters"] = Value::Array(params);
    op
}

fn base_path(info: &ResourceInfo, namespaced: bool) -> String {
    let root = if info.group.is_empty() {
        "/api/v1".to_string()
    } else {
        format!("/apis/{}/{}", info.group, info.version)
    };
    if namespaced {
        format!("{root}/namespaces/{{namespace}}/{}", info.plural)
    } else {
        format!("{root}/{}", info.plural)
    }
}

/// A minimal structural schema for a built-in kind; CRDs bring their own.
fn kind_schema(info: &ResourceInfo) -> Value {
    let mut properties = json!({
        "apiVersion": {"type": "string", "description": "APIVersion defines the versioned schema of this representation of an object."},
        "kind": {"type": "string", "description": "Kind is a string value representing the REST resource this object represents."},
        "metadata": {"description": "Standard object's metadata.", "allOf": [{"$ref": "#/components/schemas/io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"}]},
        "spec": {"type": "object", "description": format!("Specification of the desired behavior of the {}.", info.kind), "x-kubernetes-preserve-unknown-fields": true},
        "status": {"type": "object", "description": format!("Most recently observed status of the {}.", info.kind), "x-kubernetes-preserve-unknown-fields": true},
    });
    for extra in [
        "data",
        "binaryData",
        "stringData",
        "type",
        "subsets",
        "rules",
        "roleRef",
        "subjects",
        "webhooks",
        "endpoints",
        "ports",
        "addressType",
        "secrets",
        "involvedObject",
        "reason",
        "message",
    ] {
        properties[extra] =
            json!({"description": extra, "x-kubernetes-preserve-unknown-fields": true});
    }
    json!({
        "type": "object",
        "description": format!("{} is a Kubernetes {} resource.", info.kind, info.api_version()),
        "properties": properties,
        "x-kubernetes-group-version-kind": [{"group": info.group, "version": info.version, "kind": info.kind}],
    })
}

fn group_version_doc(catalog: &Catalog, group: &str, version: &str) -> Value {
    let mut paths = serde_json::Map::new();
    let mut schemas = serde_json::Map::new();
    schemas.insert(
        "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta".into(),
        json!({"type": "object", "description": "ObjectMeta is metadata that all persisted resources must have.",
               "properties": {
                   "name": {"type": "string", "description": "Name must be unique within a namespace."},
                   "namespace": {"type": "string", "description": "Namespace defines the space within which each name must be unique."},
                   "labels": {"type": "object", "additionalProperties": {"type": "string"}, "description": "Map of string keys and values that can be used to organize and categorize objects."},
                   "annotations": {"type": "object", "additionalProperties": {"type": "string"}, "description": "Annotations is an unstructured key value map stored with a resource."},
                   "generateName": {"type": "string", "description": "GenerateName is an optional prefix, used by the server, to generate a unique name."},
                   "resourceVersion": {"type": "string", "description": "An opaque value that represents the internal version of this object."},
                   "uid": {"type": "string", "description": "UID is the unique in time and space value for this object."},
                   "finalizers": {"type": "array", "items": {"type": "string"}, "description": "Must be empty before the object is deleted from the registry."},
                   "ownerReferences": {"type": "array", "items": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}, "description": "List of objects depended by this object."},
               }}),
    );
    for info in catalog.resources(group, version) {
        schemas.insert(schema_name(&info), kind_schema(&info));
        let list_params = vec![
            query_param(
                "labelSelector",
                "A selector to restrict the list of returned objects by their labels.",
            ),
            query_param(
                "fieldSelector",
                "A selector to restrict the list of returned objects by their fields.",
            ),
            query_param(
                "limit",
                "limit is a maximum number of responses to return for a list call.",
            ),
            query_param(
                "continue",
                "The continue option should be set when retrieving more results from the server.",
            ),
            query_param(
                "resourceVersion",
                "resourceVersion sets a constraint on what resource versions a request may be served from.",
            ),
            query_param("watch", "Watch for changes to the described resources."),
        ];
        let collection = base_path(&info, info.namespaced);
        paths.insert(
            collection.clone(),
            json!({
                "get": operation(&info, "list", list_params, false),
                "post": operation(&info, "post", write_params(), true),
            }),
        );
        paths.insert(format!("{collection}/{{name}}"), json!({
            "get": operation(&info, "get", vec![], false),
            "put": operation(&info, "put", write_params(), true),
            "patch": operation(&info, "patch", write_params(), true),
            "delete": operation(&info, "delete", vec![query_param("dryRun", "When present, indicates that modifications should not be persisted.")], false),
        }));
    }
    json!({
        "openapi": "3.0.0",
        "info": {"title": "Kubernetes", "version": super::discovery::KUBERNETES_GIT_VERSION},
        "paths": paths,
        "components": {"schemas": schemas},
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patch_operation_lists_field_validation() {
        let catalog = Catalog::builtin();
        let docs = Cache::default().documents(&catalog);
        let (_, bytes) = &docs.docs["apis/apps/v1"];
        let doc: Value = serde_json::from_slice(bytes).expect("json");
        let op = &doc["paths"]["/apis/apps/v1/namespaces/{namespace}/deployments/{name}"]["patch"];
        assert_eq!(op["x-kubernetes-group-version-kind"]["kind"], "Deployment");
        assert!(
            op["parameters"]
                .as_array()
                .expect("params")
                .iter()
                .any(|p| p["name"] == "fieldValidation")
        );
        assert!(doc["components"]["schemas"]["io.k8s.api.apps.v1.Deployment"]["x-kubernetes-group-version-kind"].is_array());
        let idx = index(&docs);
        assert!(
            idx["paths"]["api/v1"]["serverRelativeURL"]
                .as_str()
                .expect("url")
                .starts_with("/openapi/v3/api/v1?hash=")
        );
    }
}
