//! OpenAPI v3: the `/openapi/v3` index and one document per group-version, with the
//! operations kubectl checks before `create -f` / `apply -f` (a PATCH per kind
//! tagged with its group-version-kind and listing `fieldValidation`) and the component
//! schemas of its kinds. Built-in kinds get their complete Kubernetes schemas (see
//! [`crate::registry::openapi_schemas`]), with every schema they reference, so `kubectl explain` can walk
//! fields and client-side apply can compute strategic merge patches; kinds without a
//! built-in schema get a minimal one. Documents are cached by the catalog's
//! generation and served by content hash with immutable caching.

use crate::registry::openapi_schemas as schemas;

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
    /// Index path → (content hash, the document's JSON bytes); the hash is the
    /// `?hash=` value in the index and the ETag.
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

/// A hash of a document's bytes, for its ETag (and the OpenAPI index's `?hash=`).
pub fn content_hash(bytes: &[u8]) -> String {
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    bytes.hash(&mut hasher);
    format!("{:016X}", hasher.finish())
}

fn render(catalog: &Catalog) -> Documents {
    let mut docs = BTreeMap::new();
    for (group, versions) in catalog.groups() {
        for version in versions {
            let doc = group_version_doc(catalog, &group, &version);
            let bytes = serde_json::to_vec(&doc).unwrap_or_default();
            let hash = content_hash(&bytes);
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
    match schemas::SCHEMAS.kind(&info.group, &info.version, &info.kind) {
        Some(name) => name.to_string(),
        None => format!("{}.{}", info.openapi_prefix, info.kind),
    }
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
        // Custom resources take no strategic merge patch; kubectl reads this list to
        // choose a JSON merge patch for them.
        if info.custom.is_some()
            && let Some(content) = op
                .pointer_mut("/requestBody/content")
                .and_then(Value::as_object_mut)
        {
            content.remove("application/strategic-merge-patch+json");
        }
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

/// The complete schema of a built-in kind.
fn builtin_schema(info: &ResourceInfo) -> Option<&'static Value> {
    let schemas = &*schemas::SCHEMAS;
    schemas
        .kind(&info.group, &info.version, &info.kind)
        .and_then(|name| schemas.get(name))
}

/// A custom resource's schema from its CRD, with `metadata` as ObjectMeta, as
/// kube-apiserver publishes it.
fn custom_schema(info: &ResourceInfo) -> Option<Value> {
    let mut schema = info.custom.as_ref()?.schema.clone()?;
    let map = schema.as_object_mut()?;
    let properties = map.entry("properties").or_insert_with(|| json!({}));
    if let Some(p) = properties.as_object_mut() {
        p.insert(
            "metadata".into(),
            json!({"description": "Standard object's metadata. More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#metadata",
                   "allOf": [{"$ref": format!("{}io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta", schemas::REF_PREFIX)}]}),
        );
    }
    map.insert(
        "x-kubernetes-group-version-kind".into(),
        json!([{"group": info.group, "version": info.version, "kind": info.kind}]),
    );
    Some(schema)
}

/// A minimal structural schema for a kind without a built-in one (spec and status
/// keep unknown fields); CRDs bring their own.
fn fallback_schema(info: &ResourceInfo) -> Value {
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
    let mut roots = Vec::new();
    for info in catalog.resources(group, version) {
        let schema = match (builtin_schema(&info), custom_schema(&info)) {
            (Some(schema), _) => schema.clone(),
            (None, Some(schema)) => schema,
            (None, None) => fallback_schema(&info),
        };
        roots.push(schema.clone());
        schemas.insert(schema_name(&info), schema);
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
    for (name, schema) in schemas::SCHEMAS.closure(&roots) {
        schemas.entry(name).or_insert(schema);
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

    /// The group-version document at `path`, parsed.
    fn doc(catalog: &Catalog, path: &str) -> Value {
        let docs = Cache::default().documents(catalog);
        let (_, bytes) = &docs.docs[path];
        serde_json::from_slice(bytes).expect("json")
    }

    /// Follows `$ref` or `allOf: [{$ref}]` to the named component schema.
    fn resolve<'a>(doc: &'a Value, schema: &'a Value) -> &'a Value {
        let reference = schema["$ref"]
            .as_str()
            .or_else(|| schema["allOf"][0]["$ref"].as_str());
        match reference {
            Some(r) => {
                let name = r.strip_prefix(schemas::REF_PREFIX).expect("local ref");
                let target = &doc["components"]["schemas"][name];
                assert!(target.is_object(), "{name} missing from the document");
                target
            }
            None => schema,
        }
    }

    /// The schema of `path` (dot-separated properties; `[]` steps into items).
    fn field<'a>(doc: &'a Value, root: &str, path: &str) -> &'a Value {
        let mut schema = &doc["components"]["schemas"][root];
        for step in path.split('.') {
            schema = resolve(doc, schema);
            schema = if step == "[]" {
                &schema["items"]
            } else {
                &schema["properties"][step]
            };
            assert!(schema.is_object(), "{root}: no field {step} in {path}");
        }
        schema
    }

    #[test]
    fn deployment_schema_resolves_containers_through_refs() {
        let doc = doc(&Catalog::builtin(), "apis/apps/v1");
        let root = "io.k8s.api.apps.v1.Deployment";
        let replicas = field(&doc, root, "spec.replicas");
        assert_eq!(replicas["type"], "integer");
        assert!(replicas["description"].is_string());
        let template = &field(&doc, root, "spec")["allOf"];
        assert!(template.is_array(), "refs with a description use allOf");
        let containers = field(&doc, root, "spec.template.spec.containers");
        assert_eq!(containers["type"], "array");
        assert_eq!(containers["x-kubernetes-patch-merge-key"], "name");
        assert_eq!(containers["x-kubernetes-patch-strategy"], "merge");
        assert_eq!(containers["x-kubernetes-list-type"], "map");
        let image = field(&doc, root, "spec.template.spec.containers.[].image");
        assert_eq!(image["type"], "string");
        let env = field(&doc, root, "spec.template.spec.containers.[].env");
        assert_eq!(env["x-kubernetes-patch-merge-key"], "name");
        let ports = field(&doc, root, "spec.template.spec.containers.[].ports");
        assert_eq!(ports["x-kubernetes-patch-merge-key"], "containerPort");
        assert_eq!(
            ports["x-kubernetes-list-map-keys"],
            json!(["containerPort", "protocol"])
        );
        let mounts = field(&doc, root, "spec.template.spec.containers.[].volumeMounts");
        assert_eq!(mounts["x-kubernetes-patch-merge-key"], "mountPath");
        let owners = field(&doc, root, "metadata.ownerReferences");
        assert_eq!(owners["x-kubernetes-patch-merge-key"], "uid");
        let finalizers = field(&doc, root, "metadata.finalizers");
        assert_eq!(finalizers["x-kubernetes-list-type"], "set");
        let conditions = field(&doc, root, "status.conditions");
        assert_eq!(conditions["x-kubernetes-patch-merge-key"], "type");
        let labels = field(&doc, root, "metadata.labels");
        assert_eq!(labels["additionalProperties"]["type"], "string");
    }

    #[test]
    fn core_document_carries_service_ports_and_pod_lists() {
        let doc = doc(&Catalog::builtin(), "api/v1");
        let ports = field(&doc, "io.k8s.api.core.v1.Service", "spec.ports");
        assert_eq!(ports["x-kubernetes-patch-merge-key"], "port");
        assert_eq!(
            ports["x-kubernetes-list-map-keys"],
            json!(["port", "protocol"])
        );
        let volumes = field(&doc, "io.k8s.api.core.v1.Pod", "spec.volumes");
        assert_eq!(volumes["x-kubernetes-patch-strategy"], "merge,retainKeys");
        let tolerations = field(&doc, "io.k8s.api.core.v1.Pod", "spec.tolerations");
        assert_eq!(tolerations["x-kubernetes-list-type"], "atomic");
        let data = field(&doc, "io.k8s.api.core.v1.ConfigMap", "data");
        assert_eq!(data["additionalProperties"]["type"], "string");
    }

    #[test]
    fn every_builtin_kind_has_a_full_schema_tagged_with_its_gvk() {
        let catalog = Catalog::builtin();
        let docs = Cache::default().documents(&catalog);
        for (group, versions) in catalog.groups() {
            for version in versions {
                let (_, bytes) = &docs.docs[&index_path(&group, &version)];
                let doc: Value = serde_json::from_slice(bytes).expect("json");
                for info in catalog.resources(&group, &version) {
                    let name = schema_name(&info);
                    assert_eq!(name, format!("{}.{}", info.openapi_prefix, info.kind));
                    let schema = &doc["components"]["schemas"][&name];
                    assert_eq!(
                        schema["x-kubernetes-group-version-kind"],
                        json!([{"group": group, "version": version, "kind": info.kind}]),
                        "{name}"
                    );
                    assert!(
                        schema["properties"]["metadata"].is_object(),
                        "{name} has metadata"
                    );
                    assert!(
                        schema.get("x-kubernetes-preserve-unknown-fields").is_none(),
                        "{name} is not the fallback"
                    );
                }
                // Every reference resolves inside the same document.
                let mut refs = Vec::new();
                collect_refs_for_test(&doc, &mut refs);
                for name in refs {
                    assert!(
                        doc["components"]["schemas"][&name].is_object(),
                        "{group}/{version}: dangling ref {name}"
                    );
                }
            }
        }
    }

    /// Every `#/components/schemas/` reference name inside `value`.
    fn collect_refs_for_test(value: &Value, out: &mut Vec<String>) {
        match value {
            Value::Object(map) => {
                for (key, v) in map {
                    if let ("$ref", Some(r)) = (key.as_str(), v.as_str()) {
                        out.push(r.trim_start_matches(schemas::REF_PREFIX).to_string());
                    } else {
                        collect_refs_for_test(v, out);
                    }
                }
            }
            Value::Array(items) => items.iter().for_each(|v| collect_refs_for_test(v, out)),
            _ => {}
        }
    }

    #[test]
    fn every_list_rule_names_an_existing_field() {
        for (schema, field, _) in schemas::list_rules() {
            let found = schemas::SCHEMAS
                .get(&schema)
                .and_then(|s| s["properties"].get(field));
            assert!(found.is_some(), "no field {field} in {schema}");
            assert_eq!(
                found.and_then(|f| f.get("type")),
                Some(&json!("array")),
                "{schema}.{field}"
            );
        }
    }

    #[test]
    fn kinds_without_builtin_schema_keep_the_fallback() {
        let catalog = Catalog::builtin();
        let mut info = (*catalog
            .get("apps", "v1", "deployments")
            .expect("deployments"))
        .clone();
        info.group = "example.io".into();
        info.kind = "Widget".into();
        info.plural = "widgets".into();
        info.openapi_prefix = "io.example.v1".into();
        catalog.add(info);
        let doc = doc(&catalog, "apis/example.io/v1");
        let schema = &doc["components"]["schemas"]["io.example.v1.Widget"];
        assert_eq!(
            schema["properties"]["spec"]["x-kubernetes-preserve-unknown-fields"],
            true
        );
        assert_eq!(
            schema["x-kubernetes-group-version-kind"][0]["kind"],
            "Widget"
        );
        let meta = field(&doc, "io.example.v1.Widget", "metadata.name");
        assert_eq!(meta["type"], "string");
    }
}
