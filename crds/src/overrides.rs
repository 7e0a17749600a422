//! Override application: how OverridePolicies and ClusterOverridePolicies
//! change a resource template for one member cluster. Mirrors Karmada's
//! `pkg/util/overridemanager` (overridemanager.go, imageoverride.go,
//! commandargsoverride.go, labelannotationoverrider.go, shadow.go).
//!
//! Order: every matching ClusterOverridePolicy, then every matching
//! OverridePolicy of the object's namespace (namespaced objects only); within
//! each group by implicit priority ascending (match-all < label selector <
//! name) then name, so more specific policies apply later and win; within a
//! rule: image, command, args, labels, annotations, field, plaintext. Each
//! overrider becomes RFC 6902 operations applied with JSON-patch semantics.
//!
//! Start at [`apply_override_policies`]; [`apply_overriders`] applies one block.

use serde::Serialize;
use serde_json::{Value, json};

use crate::cluster::Cluster;
use crate::image;
use crate::matching::{ImplicitPriority, Template, selectors_match, selectors_priority};
use crate::placement::cluster_matches;
use crate::policy::{
    ClusterOverridePolicy, CommandArgsOverrider, FieldOverrider, FieldPatchOperation,
    ImageOverrider, LabelAnnotationOverrider, OverridePolicy, OverrideSpec, Overriders,
    PlaintextOverrider,
};

/// Errors of override application; any of them fails the whole Work, as in Karmada.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A JSON patch could not be decoded or applied.
    #[error("failed to apply JSON patch: {0}")]
    Patch(String),
    /// An image string could not be parsed.
    #[error("failed to parse image value({image}), error: {source}")]
    Image {
        /// The image string.
        image: String,
        /// Parse error.
        #[source]
        source: image::Error,
    },
    /// The predicate path of an image overrider does not lead to a string.
    #[error("failed to obtain imageValue with predicate path({path}), error: {message}")]
    Predicate {
        /// The predicate path.
        path: String,
        /// What went wrong.
        message: String,
    },
    /// A fieldOverrider's `fieldPath` is missing or not a string.
    #[error("Get object's value by overrider's path({0}) is not string")]
    FieldNotString(String),
    /// The embedded JSON/YAML could not be parsed or printed.
    #[error("failed to process embedded document at {path}: {message}")]
    Embedded {
        /// fieldPath.
        path: String,
        /// Error text.
        message: String,
    },
}

/// Result of this module.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// One applied policy as recorded on a Work (Karmada `OverridePolicyShadow`).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct OverridePolicyShadow {
    /// Policy name.
    pub policy_name: String,
    /// The overriders that were applied.
    pub overriders: Overriders,
}

/// Policies applied for one cluster: cluster-wide and namespaced, each in
/// application order (Karmada `AppliedOverrides`).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AppliedOverrides {
    /// Applied ClusterOverridePolicies.
    pub cluster: Vec<OverridePolicyShadow>,
    /// Applied OverridePolicies.
    pub namespaced: Vec<OverridePolicyShadow>,
}

/// The value of annotation `policy.karmada.io/applied-overrides` (or
/// `applied-cluster-overrides`): the shadows sorted by policy name as JSON, or
/// `None` when nothing applied (Karmada `AppliedOverrides.MarshalJSON`).
pub fn applied_annotation(items: &[OverridePolicyShadow]) -> Option<String> {
    if items.is_empty() {
        return None;
    }
    let mut sorted = items.to_vec();
    sorted.sort_by(|a, b| a.policy_name.cmp(&b.policy_name));
    serde_json::to_string(&sorted).ok()
}

fn policy_priority(template: &Template, spec: &OverrideSpec) -> ImplicitPriority {
    if spec.resource_selectors.is_empty() {
        ImplicitPriority::MatchAll
    } else {
        selectors_priority(template, &spec.resource_selectors)
    }
}

/// The overriders that apply to `template` on `cluster` from `policies`
/// (`(name, spec)` pairs), in application order (Karmada
/// `getOverridersFromOverridePolicies`).
pub fn matching_overriders<'a>(
    policies: impl IntoIterator<Item = (&'a str, &'a OverrideSpec)>,
    template: &Template,
    cluster: &Cluster,
) -> Vec<(&'a str, Overriders)> {
    let mut matched: Vec<(&'a str, &'a OverrideSpec)> = policies
        .into_iter()
        .filter(|(_, spec)| {
            spec.resource_selectors.is_empty()
                || selectors_match(template, &spec.resource_selectors)
        })
        .collect();
    matched.sort_by(|a, b| {
        policy_priority(template, a.1)
            .cmp(&policy_priority(template, b.1))
            .then_with(|| a.0.cmp(b.0))
    });
    let mut out = Vec::new();
    for (name, spec) in matched {
        for rule in spec.effective_rules() {
            if rule
                .target_cluster
                .as_ref()
                .is_none_or(|t| cluster_matches(cluster, t))
            {
                out.push((name, rule.overriders));
            }
        }
    }
    out
}

/// Applies every matching ClusterOverridePolicy, then (for namespaced objects)
/// every matching OverridePolicy of the object's namespace, to `obj` for
/// `cluster` (Karmada `ApplyOverridePolicies`). `ops` may contain policies of
/// other namespaces; they are ignored.
pub fn apply_override_policies(
    obj: &mut Value,
    cluster: &Cluster,
    cops: &[ClusterOverridePolicy],
    ops: &[OverridePolicy],
) -> Result<AppliedOverrides> {
    let mut applied = AppliedOverrides::default();
    let template = Template::from_value(obj);
    let cluster_policies = cops
        .iter()
        .map(|p| (p.metadata.name.as_deref().unwrap_or_default(), &p.spec.0));
    for (name, overriders) in matching_overriders(cluster_policies, &template, cluster) {
        apply_overriders(obj, &overriders)?;
        applied.cluster.push(OverridePolicyShadow {
            policy_name: name.to_string(),
            overriders,
        });
    }
    // Namespaced policies are matched against the object as the cluster-wide
    // overrides left it (Karmada re-reads the same mutated object).
    let template = Template::from_value(obj);
    if !template.namespace.is_empty() {
        let ns_policies = ops
            .iter()
            .filter(|p| p.metadata.namespace.as_deref().unwrap_or_default() == template.namespace)
            .map(|p| (p.metadata.name.as_deref().unwrap_or_default(), &p.spec));
        for (name, overriders) in matching_overriders(ns_policies, &template, cluster) {
            apply_overriders(obj, &overriders)?;
            applied.namespaced.push(OverridePolicyShadow {
                policy_name: name.to_string(),
                overriders,
            });
        }
    }
    Ok(applied)
}

/// Applies one `Overriders` block in Karmada's order: image, command, args,
/// labels, annotations, field, plaintext (Karmada `applyPolicyOverriders`).
pub fn apply_overriders(obj: &mut Value, o: &Overriders) -> Result<()> {
    for io in &o.image_overrider {
        let ops = image_patches(obj, io)?;
        apply_patch(obj, ops)?;
    }
    for c in &o.command_overrider {
        let ops = command_args_patches(obj, "command", c);
        apply_patch(obj, ops)?;
    }
    for a in &o.args_overrider {
        let ops = command_args_patches(obj, "args", a);
        apply_patch(obj, ops)?;
    }
    for l in &o.labels_overrider {
        let ops = label_annotation_patches(obj, "labels", l);
        apply_patch(obj, ops)?;
    }
    for a in &o.annotations_overrider {
        let ops = label_annotation_patches(obj, "annotations", a);
        apply_patch(obj, ops)?;
    }
    for f in &o.field_overrider {
        apply_field_overrider(obj, f)?;
    }
    apply_patch(obj, plaintext_patches(&o.plaintext))
}

/// Applies RFC 6902 operations given as JSON (`[{op, path, value}]`).
pub fn apply_patch(obj: &mut Value, ops: Vec<Value>) -> Result<()> {
    if ops.is_empty() {
        return Ok(());
    }
    let patch: json_patch::Patch =
        serde_json::from_value(Value::Array(ops)).map_err(|e| Error::Patch(e.to_string()))?;
    json_patch::patch(obj, &patch).map_err(|e| Error::Patch(e.to_string()))
}

fn op(op: &str, path: &str, value: Option<&Value>) -> Value {
    match (op, value) {
        ("remove", _) => json!({ "op": "remove", "path": path }),
        (_, Some(v)) => json!({ "op": op, "path": path, "value": v }),
        (_, None) => json!({ "op": op, "path": path, "value": null }),
    }
}

/// The plaintext overrider as patch operations (Karmada `parseJSONPatchesByPlaintext`).
pub fn plaintext_patches(list: &[PlaintextOverrider]) -> Vec<Value> {
    list.iter()
        .map(|p| op(&p.operator, &p.path, p.value.as_ref()))
        .collect()
}

/// Kinds whose pod spec the image/command/args overriders know, with the
/// path prefix of their containers.
fn containers_prefix(kind: &str) -> Option<&'static str> {
    match kind {
        "Pod" => Some("/spec"),
        "ReplicaSet" | "Deployment" | "DaemonSet" | "StatefulSet" | "Job" => {
            Some("/spec/template/spec")
        }
        _ => None,
    }
}

/// Computes the new image for one overrider (Karmada `overrideImage`).
pub fn override_image(current: &str, io: &ImageOverrider) -> Result<String> {
    let mut c = image::parse(current).map_err(|source| Error::Image {
        image: current.to_string(),
        source,
    })?;
    match (io.component.as_str(), io.operator.as_str()) {
        ("Registry", "add") => c.hostname = format!("{}{}", c.hostname, io.value),
        ("Registry", "replace") => c.hostname = io.value.clone(),
        ("Registry", "remove") => c.hostname.clear(),
        ("Repository", "add") => c.repository = format!("{}{}", c.repository, io.value),
        ("Repository", "replace") => c.repository = io.value.clone(),
        ("Repository", "remove") => c.repository.clear(),
        ("Tag", "add") => {
            let v = format!("{}{}", c.tag_or_digest(), io.value);
            c.set_tag_or_digest(&v);
        }
        ("Tag", "replace") => c.set_tag_or_digest(&io.value),
        ("Tag", "remove") => c.remove_tag_or_digest(),
        _ => {}
    }
    Ok(c.to_string())
}

/// Reads the string at an image predicate path the way Karmada walks it
/// (`obtainImageValue`): segments split on `/`, a list consumes the next
/// segment as its index, the last segment must name a string field.
pub fn image_at_predicate(obj: &Value, path: &str) -> Result<String> {
    let err = |message: String| Error::Predicate {
        path: path.to_string(),
        message,
    };
    let segs: Vec<&str> = path.trim_matches('/').split('/').collect();
    let mut cur = obj;
    let mut i = 0;
    while i + 1 < segs.len() {
        match cur.get(segs[i]) {
            Some(Value::Object(_)) => cur = &cur[segs[i]],
            Some(Value::Array(list)) => {
                let idx: usize = segs[i + 1]
                    .parse()
                    .map_err(|_| err(format!("path({}) of rawObj's is not number", segs[i + 1])))?;
                cur = list
                    .get(idx)
                    .ok_or_else(|| err(format!("index {idx} out of range")))?;
                i += 1;
            }
            _ => {
                return Err(err(format!(
                    "path({}) of rawObj's type is not map[string]interface{{}} and []interface{{}}",
                    segs[i]
                )));
            }
        }
        i += 1;
    }
    let last = segs.last().copied().unwrap_or_default();
    cur.get(last)
        .and_then(Value::as_str)
        .map(str::to_string)
        .ok_or_else(|| err(format!("failed to convert path({last}) to string")))
}

/// Patch operations of one image overrider (Karmada `buildPatches`): with a
/// predicate, the image at that path (any kind); without, every container
/// (not init containers) of Pod, ReplicaSet, Deployment, DaemonSet,
/// StatefulSet and Job; always `replace`.
pub fn image_patches(obj: &Value, io: &ImageOverrider) -> Result<Vec<Value>> {
    if let Some(pred) = &io.predicate {
        let current = image_at_predicate(obj, &pred.path)?;
        if !pred.path.starts_with('/') {
            return Err(Error::Predicate {
                path: pred.path.clone(),
                message: "imagePath should be start with / character".into(),
            });
        }
        let new = override_image(&current, io)?;
        return Ok(vec![op("replace", &pred.path, Some(&Value::String(new)))]);
    }
    let kind = obj.get("kind").and_then(Value::as_str).unwrap_or_default();
    let Some(prefix) = containers_prefix(kind) else {
        return Ok(Vec::new());
    };
    let containers = obj
        .pointer(&format!("{prefix}/containers"))
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let mut ops = Vec::new();
    for (i, c) in containers.iter().enumerate() {
        let current = c.get("image").and_then(Value::as_str).unwrap_or_default();
        let new = override_image(current, io)?;
        ops.push(op(
            "replace",
            &format!("{prefix}/containers/{i}/image"),
            Some(&Value::String(new)),
        ));
    }
    Ok(ops)
}

/// Patch operations of a command or args overrider (Karmada
/// `buildCommandArgsPatches`): for each container named `containerName`,
/// `add` the new list when the field is absent, else `replace` it with the
/// current list plus the values (add) or minus every listed value (remove).
pub fn command_args_patches(obj: &Value, target: &str, o: &CommandArgsOverrider) -> Vec<Value> {
    let kind = obj.get("kind").and_then(Value::as_str).unwrap_or_default();
    let Some(prefix) = containers_prefix(kind) else {
        return Vec::new();
    };
    let Some(containers) = obj
        .pointer(&format!("{prefix}/containers"))
        .and_then(Value::as_array)
    else {
        return Vec::new();
    };
    let mut ops = Vec::new();
    for (i, c) in containers.iter().enumerate() {
        if c.get("name").and_then(Value::as_str) != Some(o.container_name.as_str()) {
            continue;
        }
        let path = format!("{prefix}/containers/{i}/{target}");
        let existing = c.get(target).filter(|v| !v.is_null());
        let current: Vec<String> = existing
            .and_then(Value::as_array)
            .map(|l| {
                l.iter()
                    .map(|v| {
                        v.as_str()
                            .map(str::to_string)
                            .unwrap_or_else(|| v.to_string())
                    })
                    .collect()
            })
            .unwrap_or_default();
        let new: Vec<String> = match o.operator.as_str() {
            "add" => current
                .iter()
                .cloned()
                .chain(o.value.iter().cloned())
                .collect(),
            "remove" => current
                .iter()
                .filter(|v| !o.value.contains(v))
                .cloned()
                .collect(),
            _ => current.clone(),
        };
        let verb = if existing.is_none() { "add" } else { "replace" };
        ops.push(op(verb, &path, Some(&json!(new))));
    }
    ops
}

/// Patch operations of a labels/annotations overrider (Karmada
/// `buildLabelAnnotationOverriderPatches`): `add` creates the map if needed
/// and sets every key; `replace` and `remove` touch only existing keys; `/` in
/// keys is escaped as `~1`. May create the empty map in `obj` as Karmada does.
pub fn label_annotation_patches(
    obj: &mut Value,
    field: &str,
    o: &LabelAnnotationOverrider,
) -> Vec<Value> {
    let mut ops = Vec::new();
    for (key, value) in &o.value {
        match o.operator.as_str() {
            "remove" | "replace" => {
                let exists = obj
                    .pointer(&format!("/metadata/{field}"))
                    .and_then(Value::as_object)
                    .is_some_and(|m| m.contains_key(key));
                if !exists {
                    continue;
                }
            }
            "add" => {
                let has_map = obj
                    .pointer(&format!("/metadata/{field}"))
                    .is_some_and(Value::is_object);
                if !has_map {
                    if let Some(meta) = obj.get_mut("metadata").and_then(Value::as_object_mut) {
                        meta.insert(field.to_string(), json!({}));
                    } else if let Some(root) = obj.as_object_mut() {
                        root.insert("metadata".into(), json!({ field: {} }));
                    }
                }
            }
            _ => {}
        }
        let escaped = key.replace('~', "~0").replace('/', "~1");
        ops.push(op(
            &o.operator,
            &format!("/metadata/{field}/{escaped}"),
            Some(&Value::String(value.clone())),
        ));
    }
    ops
}

fn field_ops(list: &[FieldPatchOperation]) -> Vec<Value> {
    list.iter()
        .map(|p| op(&p.operator, &p.sub_path, p.value.as_ref()))
        .collect()
}

/// Applies a fieldOverrider (Karmada `applyFieldOverriders`): the string at
/// `fieldPath` is parsed as YAML (when `yaml` ops are given) or JSON, patched,
/// and written back (YAML re-printed with sorted keys; JSON compact).
pub fn apply_field_overrider(obj: &mut Value, f: &FieldOverrider) -> Result<()> {
    let embedded_err = |message: String| Error::Embedded {
        path: f.field_path.clone(),
        message,
    };
    let raw = obj
        .pointer(&f.field_path)
        .and_then(Value::as_str)
        .ok_or_else(|| Error::FieldNotString(f.field_path.clone()))?
        .to_string();
    let new = if !f.yaml.is_empty() {
        let mut doc: Value = if raw.trim().is_empty() {
            Value::Null
        } else {
            serde_saphyr::from_str(&raw).map_err(|e| embedded_err(e.to_string()))?
        };
        apply_patch(&mut doc, field_ops(&f.yaml))?;
        serde_saphyr::to_string(&crate::crd::sorted(&doc))
            .map_err(|e| embedded_err(e.to_string()))?
    } else if !f.json.is_empty() {
        let mut doc: Value = serde_json::from_str(&raw).map_err(|e| embedded_err(e.to_string()))?;
        apply_patch(&mut doc, field_ops(&f.json))?;
        serde_json::to_string(&doc).map_err(|e| embedded_err(e.to_string()))?
    } else {
        String::new()
    };
    if let Some(slot) = obj.pointer_mut(&f.field_path) {
        *slot = Value::String(new);
    }
    Ok(())
}

#[cfg(test)]
mod tests;
