//! CustomResourceDefinition manifests for every Karmada kind flotilla serves
//! as a CRD, shaped like Karmada's published CRDs (group, versions, names,
//! short names, categories, scope, subresources, printer columns) with
//! structural schemas derived from the Rust types.
//!
//! Cluster and ResourceRegistry are not here: Karmada (and flotilla) serve
//! them from aggregated API servers. ResourceBinding and ClusterResourceBinding
//! serve v1alpha1 and store v1alpha2 with webhook conversion through the
//! webhook's `/convert` path, as Karmada's chart installs them.
//!
//! Start at [`crd_manifests`]; [`to_yaml`] renders one manifest.

use kube::core::CustomResourceExt;
use serde_json::{Map, Value, json};

use crate::{autoscaling, config, failover, mcs, networking, policy, work};

/// Where the conversion webhook of the binding CRDs is reached by default:
/// Karmada's chart names the webhook Service `karmada-webhook` in `karmada-system`.
pub const DEFAULT_CONVERSION_WEBHOOK_URL: &str =
    "https://karmada-webhook.karmada-system.svc:443/convert";

/// Errors while rendering manifests.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A generated CRD could not be turned into JSON or YAML.
    #[error("cannot render CRD {name}: {message}")]
    Render {
        /// CRD name.
        name: String,
        /// What failed.
        message: String,
    },
}

/// Result of this module.
pub type Result<T, E = Error> = std::result::Result<T, E>;

fn crd_value<K: CustomResourceExt>() -> Value {
    serde_json::to_value(K::crd()).unwrap_or(Value::Null)
}

/// Every CRD as JSON, in file-name order (Karmada `charts/karmada/_crds/bases`).
/// Each entry is `(file name, CRD object)`, the file name being
/// `<group>_<plural>.yaml` as in Karmada.
pub fn crd_values() -> Vec<(String, Value)> {
    let mut crds = vec![
        finish(crd_value::<policy::PropagationPolicy>()),
        finish(crd_value::<policy::ClusterPropagationPolicy>()),
        finish(crd_value::<policy::OverridePolicy>()),
        finish(crd_value::<policy::ClusterOverridePolicy>()),
        finish(crd_value::<failover::ClusterTaintPolicy>()),
        finish(binding_crd(
            crd_value::<work::v1alpha1::ResourceBinding>(),
            crd_value::<work::ResourceBinding>(),
        )),
        finish(binding_crd(
            crd_value::<work::v1alpha1::ClusterResourceBinding>(),
            crd_value::<work::ClusterResourceBinding>(),
        )),
        finish(crd_value::<work::Work>()),
        finish(crd_value::<autoscaling::FederatedHPA>()),
        finish(crd_value::<autoscaling::CronFederatedHPA>()),
        finish(crd_value::<networking::MultiClusterService>()),
        finish(crd_value::<networking::MultiClusterIngress>()),
        finish(crd_value::<mcs::ServiceExport>()),
        finish(crd_value::<mcs::ServiceImport>()),
        finish(crd_value::<config::ResourceInterpreterCustomization>()),
    ];
    crds.sort_by(|a, b| a.0.cmp(&b.0));
    crds
}

/// Every CRD as `(file name, YAML)` — what `flotilla crds` prints and what is
/// committed under `deploy/crds/`. A manifest that cannot be rendered (never
/// expected) comes out empty; use [`try_crd_manifests`] to see the error.
pub fn crd_manifests() -> Vec<(String, String)> {
    crd_values()
        .into_iter()
        .map(|(name, v)| {
            let yaml = to_yaml(&v).unwrap_or_default();
            (name, yaml)
        })
        .collect()
}

/// [`crd_manifests`], failing on the first manifest that cannot be rendered.
pub fn try_crd_manifests() -> Result<Vec<(String, String)>> {
    crd_values()
        .into_iter()
        .map(|(name, v)| Ok((name, to_yaml(&v)?)))
        .collect()
}

/// The CRDs with the binding CRDs' conversion webhook pointed at `url`
/// (with an optional base64 CA bundle) — for installs where the webhook is
/// not the chart's `karmada-webhook.karmada-system.svc` (e.g. `flotilla up`).
pub fn crd_values_with_conversion(url: &str, ca_bundle: Option<&str>) -> Vec<(String, Value)> {
    crd_values()
        .into_iter()
        .map(|(name, mut crd)| {
            if crd.pointer("/spec/conversion").is_some()
                && let Some(spec) = crd.get_mut("spec").and_then(Value::as_object_mut)
            {
                spec.insert("conversion".into(), conversion_webhook(url, ca_bundle));
            }
            (name, crd)
        })
        .collect()
}

/// `deploy/crds/kustomization.yaml`: the CRD files as kustomize resources, so
/// `kubectl apply -k deploy/crds` installs them all.
pub fn kustomization() -> String {
    let mut out = String::from(
        "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nresources:\n",
    );
    for (name, _) in crd_values() {
        out.push_str(&format!("- {name}\n"));
    }
    out
}

/// Renders a JSON value as YAML with keys sorted, the way the committed files are.
pub fn to_yaml(value: &Value) -> Result<String> {
    serde_saphyr::to_string(&sorted(value)).map_err(|e| Error::Render {
        name: value
            .pointer("/metadata/name")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string(),
        message: e.to_string(),
    })
}

/// A copy of `v` with object keys sorted at every level.
pub fn sorted(v: &Value) -> Value {
    match v {
        Value::Object(m) => {
            let mut keys: Vec<&String> = m.keys().collect();
            keys.sort();
            let mut out = Map::new();
            for k in keys {
                out.insert(k.clone(), sorted(&m[k]));
            }
            Value::Object(out)
        }
        Value::Array(a) => Value::Array(a.iter().map(sorted).collect()),
        other => other.clone(),
    }
}

/// Merges the served v1alpha1 and the stored v1alpha2 version of a binding
/// CRD and adds the conversion webhook.
fn binding_crd(v1alpha1: Value, mut v1alpha2: Value) -> Value {
    let old = v1alpha1
        .pointer("/spec/versions/0")
        .cloned()
        .unwrap_or(Value::Null);
    if let Some(Value::Array(versions)) = v1alpha2.pointer_mut("/spec/versions") {
        versions.insert(0, old);
    }
    if let Some(spec) = v1alpha2.get_mut("spec").and_then(Value::as_object_mut) {
        spec.insert(
            "conversion".into(),
            conversion_webhook(DEFAULT_CONVERSION_WEBHOOK_URL, None),
        );
    }
    v1alpha2
}

/// The `spec.conversion` stanza Karmada's chart patches into the binding CRDs:
/// strategy Webhook, review version v1, the given URL and optional CA bundle.
pub fn conversion_webhook(url: &str, ca_bundle: Option<&str>) -> Value {
    let mut client = json!({ "url": url });
    if let Some(ca) = ca_bundle {
        client["caBundle"] = Value::String(ca.to_string());
    }
    json!({
        "strategy": "Webhook",
        "webhook": { "clientConfig": client, "conversionReviewVersions": ["v1"] }
    })
}

/// Final touches shared by every CRD; returns `(file name, CRD)`.
fn finish(mut crd: Value) -> (String, Value) {
    let kind = crd
        .pointer("/spec/names/kind")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    if let Some(versions) = crd
        .pointer_mut("/spec/versions")
        .and_then(Value::as_array_mut)
    {
        for v in versions {
            if let Some(schema) = v.pointer_mut("/schema/openAPIV3Schema") {
                clean_schema(schema);
                add_kind_markers(&kind, schema);
                if let Some(root) = schema.as_object_mut() {
                    root.remove("title");
                    if let Some(props) = root.get_mut("properties").and_then(Value::as_object_mut) {
                        props.insert("apiVersion".into(), json!({
                            "description": "APIVersion defines the versioned schema of this representation of an object.",
                            "type": "string"
                        }));
                        props.insert("kind".into(), json!({
                            "description": "Kind is a string value representing the REST resource this object represents.",
                            "type": "string"
                        }));
                        props.insert("metadata".into(), json!({ "type": "object" }));
                    }
                }
            }
            // Karmada's PropagationPolicy-like CRDs carry `subresources: {}`.
            if v.get("subresources").is_none() {
                v["subresources"] = json!({});
            }
        }
    }
    if let Some(names) = crd
        .pointer_mut("/spec/names")
        .and_then(Value::as_object_mut)
        && let Some(kind) = names.get("kind").and_then(Value::as_str)
    {
        let list_kind = format!("{kind}List");
        names.insert("listKind".into(), Value::String(list_kind));
    }
    // Karmada's ServiceImport and MultiClusterIngress CRDs leave `spec` optional.
    if matches!(kind.as_str(), "ServiceImport" | "MultiClusterIngress")
        && let Some(versions) = crd
            .pointer_mut("/spec/versions")
            .and_then(Value::as_array_mut)
    {
        for v in versions {
            if let Some(root) = v
                .pointer_mut("/schema/openAPIV3Schema")
                .and_then(Value::as_object_mut)
            {
                root.remove("required");
            }
        }
    }
    let group = crd
        .pointer("/spec/group")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let plural = crd
        .pointer("/spec/names/plural")
        .and_then(Value::as_str)
        .unwrap_or_default();
    (format!("{group}_{plural}.yaml"), crd)
}

const QUANTITY_PATTERN: &str = r"^(\+|-)?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))(([KMGTPE]i)|[numkMGTPE]|([eE](\+|-)?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))))?$";
const QUALIFIED_NAME_PATTERN: &str = r"^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])$";
const REASON_PATTERN: &str = r"^[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?$";

fn has_properties(m: &Map<String, Value>, keys: &[&str]) -> bool {
    m.get("properties")
        .and_then(Value::as_object)
        .is_some_and(|p| p.len() == keys.len() && keys.iter().all(|k| p.contains_key(*k)))
}

fn set_in(m: &mut Map<String, Value>, prop: &str, extra: Value) {
    if let (Some(target), Value::Object(extra)) = (
        m.get_mut("properties")
            .and_then(|p| p.get_mut(prop))
            .and_then(Value::as_object_mut),
        extra,
    ) {
        for (k, v) in extra {
            target.insert(k, v);
        }
    }
}

fn prop_mut<'a>(m: &'a mut Map<String, Value>, name: &str) -> Option<&'a mut Map<String, Value>> {
    m.get_mut("properties")?.get_mut(name)?.as_object_mut()
}

/// The `+listType`/`+mapType` markers of the Kubernetes types Karmada embeds:
/// label selectors and node selectors are atomic, as are the values of their
/// requirements.
fn add_list_markers(m: &mut Map<String, Value>) {
    let atomic_list = |t: &mut Map<String, Value>| {
        t.insert("x-kubernetes-list-type".into(), json!("atomic"));
    };
    if has_properties(m, &["matchExpressions", "matchLabels"]) {
        m.insert("x-kubernetes-map-type".into(), json!("atomic"));
        if let Some(me) = prop_mut(m, "matchExpressions") {
            atomic_list(me);
        }
    }
    if has_properties(m, &["key", "operator", "values"])
        && let Some(values) = prop_mut(m, "values")
    {
        atomic_list(values);
    }
    if has_properties(m, &["nodeSelectorTerms"]) {
        m.insert("x-kubernetes-map-type".into(), json!("atomic"));
        if let Some(terms) = prop_mut(m, "nodeSelectorTerms") {
            atomic_list(terms);
        }
    }
    if has_properties(m, &["matchExpressions", "matchFields"]) {
        m.insert("x-kubernetes-map-type".into(), json!("atomic"));
        for f in ["matchExpressions", "matchFields"] {
            if let Some(l) = prop_mut(m, f) {
                atomic_list(l);
            }
        }
    }
}

/// Per-kind `+listType`/`+mapType` markers that cannot be recognised by
/// shape alone (Karmada's CRDs carry them from the upstream types).
fn add_kind_markers(kind: &str, schema: &mut Value) {
    let atomic: &[&str] = match kind {
        "FederatedHPA" => &[
            "/properties/spec/properties/behavior/properties/scaleUp/properties/policies",
            "/properties/spec/properties/behavior/properties/scaleDown/properties/policies",
            "/properties/status/properties/currentMetrics",
        ],
        "MultiClusterService" => &[
            "/properties/status/properties/loadBalancer/properties/ingress",
            "/properties/status/properties/loadBalancer/properties/ingress/items/properties/ports",
        ],
        "MultiClusterIngress" => &[
            "/properties/spec/properties/rules",
            "/properties/spec/properties/rules/items/properties/http/properties/paths",
            "/properties/spec/properties/tls",
            "/properties/spec/properties/tls/items/properties/hosts",
            "/properties/status/properties/loadBalancer/properties/ingress",
            "/properties/status/properties/loadBalancer/properties/ingress/items/properties/ports",
        ],
        "ServiceImport" => &["/properties/spec/properties/ports"],
        _ => &[],
    };
    for p in atomic {
        if let Some(m) = schema.pointer_mut(p).and_then(Value::as_object_mut) {
            m.insert("x-kubernetes-list-type".into(), json!("atomic"));
        }
    }
    let atomic_maps: &[&str] = match kind {
        "MultiClusterIngress" => &[
            "/properties/spec/properties/defaultBackend/properties/resource",
            "/properties/spec/properties/defaultBackend/properties/service/properties/port",
            "/properties/spec/properties/rules/items/properties/http/properties/paths/items/properties/backend/properties/resource",
            "/properties/spec/properties/rules/items/properties/http/properties/paths/items/properties/backend/properties/service/properties/port",
        ],
        _ => &[],
    };
    for p in atomic_maps {
        if let Some(m) = schema.pointer_mut(p).and_then(Value::as_object_mut) {
            m.insert("x-kubernetes-map-type".into(), json!("atomic"));
        }
    }
    let keyed: &[(&str, &str)] = match kind {
        "FederatedHPA" | "MultiClusterService" | "ServiceExport" => {
            &[("/properties/status/properties/conditions", "type")]
        }
        "ServiceImport" => &[("/properties/status/properties/clusters", "cluster")],
        _ => &[],
    };
    for (p, key) in keyed {
        if let Some(m) = schema.pointer_mut(p).and_then(Value::as_object_mut) {
            m.insert("x-kubernetes-list-map-keys".into(), json!([key]));
            m.insert("x-kubernetes-list-type".into(), json!("map"));
        }
    }
}

/// Brings derived schemas in line with what controller-gen emits for Karmada:
/// drops `default: {}` on always-serialised structs, `nullable` and titles;
/// writes Quantity as `anyOf integer/string` with its pattern; adds the
/// `metav1.Condition` and port-status validation markers.
fn clean_schema(schema: &mut Value) {
    match schema {
        Value::Object(m) => {
            if m.get("default") == Some(&json!({})) {
                m.remove("default");
            }
            m.remove("nullable");
            for bound in ["minimum", "maximum"] {
                if let Some(f) = m.get(bound).and_then(Value::as_f64)
                    && f.fract() == 0.0
                    && f.abs() < 1e15
                {
                    m.insert(bound.into(), json!(f as i64));
                }
            }
            // Every int-or-string in these CRDs is a resource.Quantity.
            if m.get("x-kubernetes-int-or-string") == Some(&json!(true)) && !m.contains_key("anyOf")
            {
                let description = m
                    .get("description")
                    .and_then(Value::as_str)
                    .filter(|d| !d.starts_with("Quantity is a fixed-point"))
                    .map(str::to_string);
                m.clear();
                m.insert(
                    "anyOf".into(),
                    json!([{ "type": "integer" }, { "type": "string" }]),
                );
                if let Some(d) = description {
                    m.insert("description".into(), Value::String(d));
                }
                m.insert(
                    "pattern".into(),
                    Value::String(QUANTITY_PATTERN.to_string()),
                );
                m.insert("x-kubernetes-int-or-string".into(), Value::Bool(true));
                return;
            }
            if has_properties(
                m,
                &[
                    "lastTransitionTime",
                    "message",
                    "observedGeneration",
                    "reason",
                    "status",
                    "type",
                ],
            ) {
                set_in(m, "message", json!({ "maxLength": 32768 }));
                set_in(m, "observedGeneration", json!({ "minimum": 0 }));
                set_in(
                    m,
                    "reason",
                    json!({ "maxLength": 1024, "minLength": 1, "pattern": REASON_PATTERN }),
                );
                set_in(m, "status", json!({ "enum": ["True", "False", "Unknown"] }));
                set_in(
                    m,
                    "type",
                    json!({ "maxLength": 316, "pattern": QUALIFIED_NAME_PATTERN }),
                );
            }
            if has_properties(m, &["error", "port", "protocol"]) {
                set_in(
                    m,
                    "error",
                    json!({ "maxLength": 316, "pattern": QUALIFIED_NAME_PATTERN }),
                );
                m.insert("required".into(), json!(["error", "port", "protocol"]));
            }
            add_list_markers(m);
            for (_, v) in m.iter_mut() {
                clean_schema(v);
            }
        }
        Value::Array(a) => a.iter_mut().for_each(clean_schema),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn deploy_dir() -> std::path::PathBuf {
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/crds")
    }

    /// The committed `deploy/crds/*.yaml` equal what the code generates.
    /// Regenerate with `FLOTILLA_UPDATE_CRDS=1 cargo test -p flotilla-api crd::`.
    #[test]
    fn committed_manifests_match_generated() {
        let dir = deploy_dir();
        let update = std::env::var_os("FLOTILLA_UPDATE_CRDS").is_some();
        if update {
            std::fs::create_dir_all(&dir).expect("create deploy/crds");
        }
        let mut files = try_crd_manifests().expect("every CRD renders");
        files.push(("kustomization.yaml".to_string(), kustomization()));
        for (name, yaml) in files {
            let path = dir.join(&name);
            if update {
                std::fs::write(&path, &yaml).expect("write manifest");
                continue;
            }
            let committed = std::fs::read_to_string(&path).unwrap_or_else(|e| {
                panic!(
                    "{}: {e}; regenerate with FLOTILLA_UPDATE_CRDS=1",
                    path.display()
                )
            });
            assert_eq!(
                committed, yaml,
                "{name} differs from the generated manifest; regenerate with FLOTILLA_UPDATE_CRDS=1"
            );
        }
    }

    #[test]
    fn fifteen_crds_without_cluster_and_registry() {
        let names: Vec<String> = crd_values().into_iter().map(|(n, _)| n).collect();
        assert_eq!(names.len(), 15);
        assert!(
            !names
                .iter()
                .any(|n| n.contains("cluster.karmada.io_") || n.contains("search.karmada.io"))
        );
    }

    fn karmada_crd(file: &str) -> Option<Value> {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../shared/karmada/crds/");
        let text = std::fs::read_to_string(format!("{path}{file}")).ok()?;
        serde_saphyr::from_str(&text).ok()
    }

    /// Names, scope, versions, subresources and printer columns match Karmada's CRDs.
    #[test]
    fn metadata_matches_karmada() {
        let mut compared = 0;
        for (name, ours) in crd_values() {
            let Some(theirs) = karmada_crd(&name) else {
                eprintln!("note: ../shared/karmada/crds/{name} not found; skipping comparison");
                continue;
            };
            compared += 1;
            for p in [
                "/spec/group",
                "/spec/scope",
                "/spec/names/kind",
                "/spec/names/plural",
                "/spec/names/singular",
                "/spec/names/listKind",
            ] {
                let t = theirs.pointer(p);
                if p.ends_with("listKind") && t.is_none() {
                    continue;
                }
                assert_eq!(ours.pointer(p), t, "{name} {p}");
            }
            let short = |v: &Value| {
                v.pointer("/spec/names/shortNames")
                    .cloned()
                    .unwrap_or(json!([]))
            };
            assert_eq!(short(&ours), short(&theirs), "{name} shortNames");
            let cats = |v: &Value| {
                v.pointer("/spec/names/categories")
                    .cloned()
                    .unwrap_or(json!([]))
            };
            assert_eq!(cats(&ours), cats(&theirs), "{name} categories");
            let ov = ours["spec"]["versions"]
                .as_array()
                .cloned()
                .unwrap_or_default();
            let tv = theirs["spec"]["versions"]
                .as_array()
                .cloned()
                .unwrap_or_default();
            assert_eq!(ov.len(), tv.len(), "{name} versions");
            for t in &tv {
                let o = ov
                    .iter()
                    .find(|o| o["name"] == t["name"])
                    .unwrap_or_else(|| panic!("{name} lacks {}", t["name"]));
                assert_eq!(o["served"], t["served"], "{name} served");
                assert_eq!(o["storage"], t["storage"], "{name} storage");
                let sub = |v: &Value| v.get("subresources").cloned().unwrap_or(json!({}));
                assert_eq!(sub(o), sub(t), "{name} subresources");
                let cols = |v: &Value| {
                    v.get("additionalPrinterColumns")
                        .and_then(Value::as_array)
                        .cloned()
                        .unwrap_or_default()
                        .iter()
                        .map(|c| (c["name"].clone(), c["jsonPath"].clone(), c["type"].clone()))
                        .collect::<Vec<_>>()
                };
                assert_eq!(cols(o), cols(t), "{name} printer columns");
                let req = |v: &Value| {
                    v.pointer("/schema/openAPIV3Schema/properties/spec/required")
                        .cloned()
                };
                if let (Some(a), Some(b)) = (req(o), req(t)) {
                    let mut a: Vec<String> = serde_json::from_value(a).unwrap_or_default();
                    let mut b: Vec<String> = serde_json::from_value(b).unwrap_or_default();
                    a.sort();
                    b.sort();
                    assert_eq!(a, b, "{name} spec.required");
                }
            }
        }
        eprintln!("compared {compared} CRDs with Karmada's");
    }

    const CONSTRAINTS: [&str; 17] = [
        "x-kubernetes-list-type",
        "x-kubernetes-list-map-keys",
        "x-kubernetes-map-type",
        "default",
        "enum",
        "required",
        "maxLength",
        "minLength",
        "minimum",
        "maximum",
        "maxItems",
        "minItems",
        "pattern",
        "type",
        "format",
        "x-kubernetes-preserve-unknown-fields",
        "x-kubernetes-int-or-string",
    ];

    fn constraints(
        schema: &Value,
        path: &str,
        out: &mut std::collections::BTreeMap<String, Value>,
    ) {
        let Some(m) = schema.as_object() else { return };
        out.insert(format!("{path} (exists)"), Value::Bool(true));
        for key in CONSTRAINTS {
            if let Some(v) = m.get(key) {
                let mut v = v.clone();
                if key == "required"
                    && let Some(a) = v.as_array_mut()
                {
                    a.sort_by_key(|x| x.as_str().unwrap_or_default().to_string());
                }
                out.insert(format!("{path} {key}"), v);
            }
        }
        if let Some(props) = m.get("properties").and_then(Value::as_object) {
            for (k, v) in props {
                constraints(v, &format!("{path}.{k}"), out);
            }
        }
        if let Some(items) = m.get("items") {
            constraints(items, &format!("{path}[]"), out);
        }
        if let Some(ap) = m.get("additionalProperties").filter(|v| v.is_object()) {
            constraints(ap, &format!("{path}{{}}"), out);
        }
    }

    /// Every property path and every validation constraint (type, format,
    /// enum, default, required, bounds, patterns) equals Karmada's CRD.
    #[test]
    fn schemas_match_karmada() {
        for (name, ours) in crd_values() {
            let Some(theirs) = karmada_crd(&name) else {
                eprintln!(
                    "note: ../shared/karmada/crds/{name} not found; skipping schema comparison"
                );
                continue;
            };
            for ov in ours["spec"]["versions"]
                .as_array()
                .cloned()
                .unwrap_or_default()
            {
                let tv = theirs["spec"]["versions"]
                    .as_array()
                    .and_then(|vs| vs.iter().find(|v| v["name"] == ov["name"]).cloned())
                    .unwrap_or_default();
                let (mut a, mut b) = (Default::default(), Default::default());
                constraints(&ov["schema"]["openAPIV3Schema"], "", &mut a);
                constraints(&tv["schema"]["openAPIV3Schema"], "", &mut b);
                let diff: Vec<String> = a
                    .keys()
                    .chain(b.keys())
                    .collect::<std::collections::BTreeSet<_>>()
                    .into_iter()
                    .filter(|k| a.get(*k) != b.get(*k))
                    .map(|k| format!("{k}: ours {:?} theirs {:?}", a.get(k), b.get(k)))
                    .collect();
                assert!(diff.is_empty(), "{name} {}: {diff:#?}", ov["name"]);
            }
        }
    }

    #[test]
    fn conversion_url_can_be_replaced() {
        let crds = crd_values_with_conversion("https://127.0.0.1:9443/convert", Some("Q0E="));
        let rb = crds
            .iter()
            .find(|(n, _)| n == "work.karmada.io_resourcebindings.yaml")
            .map(|(_, v)| v.clone())
            .unwrap_or_default();
        assert_eq!(
            rb["spec"]["conversion"]["webhook"]["clientConfig"],
            json!({"url": "https://127.0.0.1:9443/convert", "caBundle": "Q0E="})
        );
        let pp = crds
            .iter()
            .find(|(n, _)| n == "policy.karmada.io_propagationpolicies.yaml")
            .map(|(_, v)| v.clone())
            .unwrap_or_default();
        assert!(pp["spec"].get("conversion").is_none());
    }

    #[test]
    fn binding_crds_convert_through_the_webhook() {
        for (name, crd) in crd_values() {
            if !name.starts_with("work.karmada.io_") || name.ends_with("works.yaml") {
                continue;
            }
            assert_eq!(crd["spec"]["conversion"]["strategy"], "Webhook");
            assert_eq!(
                crd["spec"]["conversion"]["webhook"]["conversionReviewVersions"],
                json!(["v1"])
            );
            assert!(
                crd["spec"]["conversion"]["webhook"]["clientConfig"]["url"]
                    .as_str()
                    .unwrap_or_default()
                    .ends_with("/convert")
            );
        }
    }

    /// Structural: every object schema has a type, and no anyOf/oneOf/$ref remain
    /// except int-or-string forms.
    #[test]
    fn schemas_are_structural() {
        fn check(v: &Value, path: &str) {
            if let Value::Object(m) = v {
                assert!(!m.contains_key("$ref"), "$ref at {path}");
                assert!(!m.contains_key("oneOf"), "oneOf at {path}");
                let has_type = m.contains_key("type")
                    || m.get("x-kubernetes-int-or-string") == Some(&json!(true))
                    || m.get("x-kubernetes-preserve-unknown-fields") == Some(&json!(true));
                if m.contains_key("properties") || m.contains_key("items") {
                    assert!(has_type, "missing type at {path}");
                }
                for (k, c) in m {
                    if k == "properties" {
                        if let Value::Object(props) = c {
                            for (pk, pv) in props {
                                check(pv, &format!("{path}.{pk}"));
                            }
                        }
                    } else if k == "items" || k == "additionalProperties" {
                        check(c, &format!("{path}[]"));
                    }
                }
            }
        }
        for (name, crd) in crd_values() {
            for v in crd["spec"]["versions"]
                .as_array()
                .cloned()
                .unwrap_or_default()
            {
                check(&v["schema"]["openAPIV3Schema"], &name);
            }
        }
    }
}

#[cfg(test)]
mod resource_tests {
    use kube::Resource;

    use crate::*;

    fn gvkp<K: Resource<DynamicType = ()>>() -> (String, String, String, String) {
        (
            K::group(&()).into(),
            K::version(&()).into(),
            K::kind(&()).into(),
            K::plural(&()).into(),
        )
    }

    /// Every kind is a `kube::Resource` with Karmada's group, version, kind and plural.
    #[test]
    fn kinds_are_kube_resources() {
        let s = |a: &str, b: &str, c: &str, d: &str| {
            (a.to_string(), b.to_string(), c.to_string(), d.to_string())
        };
        assert_eq!(
            gvkp::<policy::PropagationPolicy>(),
            s(
                "policy.karmada.io",
                "v1alpha1",
                "PropagationPolicy",
                "propagationpolicies"
            )
        );
        assert_eq!(
            gvkp::<policy::ClusterPropagationPolicy>(),
            s(
                "policy.karmada.io",
                "v1alpha1",
                "ClusterPropagationPolicy",
                "clusterpropagationpolicies"
            )
        );
        assert_eq!(
            gvkp::<policy::OverridePolicy>(),
            s(
                "policy.karmada.io",
                "v1alpha1",
                "OverridePolicy",
                "overridepolicies"
            )
        );
        assert_eq!(
            gvkp::<policy::ClusterOverridePolicy>(),
            s(
                "policy.karmada.io",
                "v1alpha1",
                "ClusterOverridePolicy",
                "clusteroverridepolicies"
            )
        );
        assert_eq!(
            gvkp::<work::ResourceBinding>(),
            s(
                "work.karmada.io",
                "v1alpha2",
                "ResourceBinding",
                "resourcebindings"
            )
        );
        assert_eq!(
            gvkp::<work::ClusterResourceBinding>(),
            s(
                "work.karmada.io",
                "v1alpha2",
                "ClusterResourceBinding",
                "clusterresourcebindings"
            )
        );
        assert_eq!(
            gvkp::<work::v1alpha1::ResourceBinding>(),
            s(
                "work.karmada.io",
                "v1alpha1",
                "ResourceBinding",
                "resourcebindings"
            )
        );
        assert_eq!(
            gvkp::<work::Work>(),
            s("work.karmada.io", "v1alpha1", "Work", "works")
        );
        assert_eq!(
            gvkp::<cluster::Cluster>(),
            s("cluster.karmada.io", "v1alpha1", "Cluster", "clusters")
        );
        assert_eq!(
            gvkp::<autoscaling::FederatedHPA>(),
            s(
                "autoscaling.karmada.io",
                "v1alpha1",
                "FederatedHPA",
                "federatedhpas"
            )
        );
        assert_eq!(
            gvkp::<autoscaling::CronFederatedHPA>(),
            s(
                "autoscaling.karmada.io",
                "v1alpha1",
                "CronFederatedHPA",
                "cronfederatedhpas"
            )
        );
        assert_eq!(
            gvkp::<networking::MultiClusterService>(),
            s(
                "networking.karmada.io",
                "v1alpha1",
                "MultiClusterService",
                "multiclusterservices"
            )
        );
        assert_eq!(
            gvkp::<networking::MultiClusterIngress>(),
            s(
                "networking.karmada.io",
                "v1alpha1",
                "MultiClusterIngress",
                "multiclusteringresses"
            )
        );
        assert_eq!(
            gvkp::<mcs::ServiceExport>(),
            s(
                "multicluster.x-k8s.io",
                "v1alpha1",
                "ServiceExport",
                "serviceexports"
            )
        );
        assert_eq!(
            gvkp::<mcs::ServiceImport>(),
            s(
                "multicluster.x-k8s.io",
                "v1alpha1",
                "ServiceImport",
                "serviceimports"
            )
        );
        assert_eq!(
            gvkp::<search::ResourceRegistry>(),
            s(
                "search.karmada.io",
                "v1alpha1",
                "ResourceRegistry",
                "resourceregistries"
            )
        );
        assert_eq!(
            gvkp::<config::ResourceInterpreterCustomization>(),
            s(
                "config.karmada.io",
                "v1alpha1",
                "ResourceInterpreterCustomization",
                "resourceinterpretercustomizations"
            )
        );
        let pp = policy::PropagationPolicy::new("p", policy::PropagationSpec::default());
        assert_eq!(pp.meta().name.as_deref(), Some("p"));
        let v = serde_json::to_value(&pp).unwrap();
        assert_eq!(v["apiVersion"], "policy.karmada.io/v1alpha1");
        assert_eq!(v["kind"], "PropagationPolicy");
    }
}
