//! Patches: JSON merge patch (RFC 7386), JSON patch (RFC 6902), and Kubernetes'
//! strategic merge patch for built-in kinds, with the merge keys Kubernetes uses and
//! the `$patch`, `$retainKeys`, `$setElementOrder/` and `$deleteFromPrimitiveList/`
//! directives that client-side `kubectl apply` sends.

use serde_json::{Map, Value};

/// The patch formats of `Content-Type` on PATCH.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PatchType {
    Merge,
    Json,
    Strategic,
    Apply,
}

impl PatchType {
    /// Maps a request Content-Type (without parameters) to a patch type.
    pub fn from_content_type(ct: &str) -> Option<PatchType> {
        match ct {
            "application/merge-patch+json" => Some(PatchType::Merge),
            "application/json-patch+json" => Some(PatchType::Json),
            "application/strategic-merge-patch+json" => Some(PatchType::Strategic),
            "application/apply-patch+yaml" | "application/apply-patch+json" => {
                Some(PatchType::Apply)
            }
            _ => None,
        }
    }
}

/// Why a patch could not be applied.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{0}")]
    Json(#[from] json_patch::PatchError),
    #[error("invalid JSON patch: {0}")]
    Malformed(String),
    #[error("{0}")]
    Strategic(String),
}

/// Applies an RFC 7386 merge patch.
pub fn merge(target: &mut Value, patch: &Value) {
    json_patch::merge(target, patch);
}

/// Applies an RFC 6902 JSON patch.
pub fn json(target: &mut Value, patch: &Value) -> Result<(), Error> {
    let mut ops: json_patch::Patch =
        serde_json::from_value(patch.clone()).map_err(|e| Error::Malformed(e.to_string()))?;
    // As in Kubernetes, testing an absent path against null succeeds (clients such
    // as kube-rs's finalizer helper rely on it).
    ops.0.retain(|op| match op {
        json_patch::PatchOperation::Test(t) => {
            !(t.value.is_null() && target.pointer(t.path.as_str()).is_none())
        }
        _ => true,
    });
    json_patch::patch(target, &ops)?;
    Ok(())
}

/// The merge key of a list field at `path` (dotted, list elements unnamed), or None
/// when the list is replaced as a whole.
pub(crate) fn merge_key(path: &str, field: &str) -> Option<&'static str> {
    Some(match field {
        "containers"
        | "initContainers"
        | "ephemeralContainers"
        | "volumes"
        | "env"
        | "imagePullSecrets"
        | "resourceClaims"
        | "schedulingGates" => "name",
        "volumeMounts" => "mountPath",
        "volumeDevices" => "devicePath",
        "hostAliases" => "ip",
        "conditions" => "type",
        "ownerReferences" => "uid",
        "topologySpreadConstraints" => "topologyKey",
        "resizePolicy" => "resourceName",
        "ports" => {
            if path.contains("containers") || path.contains("initContainers") {
                "containerPort"
            } else {
                "port"
            }
        }
        _ => return None,
    })
}

/// Lists of scalars merged as sets rather than replaced.
fn is_primitive_merge_list(field: &str) -> bool {
    matches!(field, "finalizers")
}

/// Removes directive keys from a value that is being inserted as new.
fn clean(value: &Value) -> Value {
    match value {
        Value::Object(m) => Value::Object(
            m.iter()
                .filter(|(k, _)| !k.starts_with('$'))
                .map(|(k, v)| (k.clone(), clean(v)))
                .collect(),
        ),
        Value::Array(a) => Value::Array(
            a.iter()
                .filter(|v| v.get("$patch").is_none())
                .map(clean)
                .collect(),
        ),
        other => other.clone(),
    }
}

/// Applies a strategic merge patch to a built-in kind's object.
pub fn strategic(target: &mut Value, patch: &Value) -> Result<(), Error> {
    let Value::Object(p) = patch else {
        return Err(Error::Strategic(
            "strategic merge patch must be a JSON object".into(),
        ));
    };
    if !target.is_object() {
        *target = Value::Object(Map::new());
    }
    let Value::Object(t) = target else {
        return Ok(());
    };
    merge_map(t, p, "")
}

fn merge_map(
    target: &mut Map<String, Value>,
    patch: &Map<String, Value>,
    path: &str,
) -> Result<(), Error> {
    match patch.get("$patch").and_then(Value::as_str) {
        Some("replace") => {
            *target = match clean(&Value::Object(patch.clone())) {
                Value::Object(m) => m,
                _ => Map::new(),
            };
            return Ok(());
        }
        Some("delete") => {
            target.clear();
            return Ok(());
        }
        Some("merge") | None => {}
        Some(other) => return Err(Error::Strategic(format!("unknown patch type: {other}"))),
    }
    if let Some(retain) = patch.get("$retainKeys") {
        let keep: Vec<&str> = retain
            .as_array()
            .ok_or_else(|| Error::Strategic("$retainKeys must be a list of strings".into()))?
            .iter()
            .filter_map(Value::as_str)
            .collect();
        target.retain(|k, _| keep.contains(&k.as_str()));
    }
    for (key, value) in patch {
        if key == "$patch" || key == "$retainKeys" || key.starts_with("$setElementOrder/") {
            continue;
        }
        let child_path = if path.is_empty() {
            key.clone()
        } else {
            format!("{path}.{key}")
        };
        if let Some(field) = key.strip_prefix("$deleteFromPrimitiveList/") {
            let remove = value.as_array().cloned().unwrap_or_default();
            if let Some(Value::Array(list)) = target.get_mut(field) {
                list.retain(|v| !remove.contains(v));
            }
            continue;
        }
        if key.starts_with('$') {
            return Err(Error::Strategic(format!("unknown directive {key}")));
        }
        match value {
            Value::Null => {
                target.remove(key);
            }
            Value::Object(p) => {
                if p.get("$patch").and_then(Value::as_str) == Some("delete") {
                    target.remove(key);
                    continue;
                }
                match target.get_mut(key) {
                    Some(Value::Object(t)) => merge_map(t, p, &child_path)?,
                    _ => {
                        let mut fresh = Map::new();
                        merge_map(&mut fresh, p, &child_path)?;
                        target.insert(key.clone(), Value::Object(fresh));
                    }
                }
            }
            Value::Array(p) => {
                let mut list = match target.remove(key) {
                    Some(Value::Array(t)) => t,
                    _ => Vec::new(),
                };
                merge_list(&mut list, p, path, key)?;
                target.insert(key.clone(), Value::Array(list));
            }
            scalar => {
                target.insert(key.clone(), scalar.clone());
            }
        }
    }
    for (key, order) in patch {
        if let Some(field) = key.strip_prefix("$setElementOrder/")
            && let (Some(Value::Array(list)), Value::Array(order)) = (target.get_mut(field), order)
        {
            let key_name = merge_key(path, field);
            reorder(list, order, key_name);
        }
    }
    Ok(())
}

fn element_key<'a>(v: &'a Value, key: &str) -> Option<&'a Value> {
    v.as_object().and_then(|m| m.get(key))
}

fn merge_list(
    target: &mut Vec<Value>,
    patch: &[Value],
    path: &str,
    field: &str,
) -> Result<(), Error> {
    if patch
        .iter()
        .any(|v| v.get("$patch").and_then(Value::as_str) == Some("replace"))
    {
        *target = patch
            .iter()
            .filter(|v| v.get("$patch").is_none())
            .map(clean)
            .collect();
        return Ok(());
    }
    let list_path = if path.is_empty() {
        field.to_string()
    } else {
        format!("{path}.{field}")
    };
    match merge_key(path, field) {
        None if is_primitive_merge_list(field) => {
            for v in patch {
                if !target.contains(v) {
                    target.push(v.clone());
                }
            }
        }
        None => *target = patch.iter().map(clean).collect(),
        Some(key) => {
            for p in patch {
                let Some(id) = element_key(p, key) else {
                    if p.is_object() {
                        return Err(Error::Strategic(format!(
                            "map: {p} does not contain declared merge key: {key}"
                        )));
                    }
                    target.push(p.clone());
                    continue;
                };
                if p.get("$patch").and_then(Value::as_str) == Some("delete") {
                    target.retain(|t| element_key(t, key) != Some(id));
                    continue;
                }
                match target.iter_mut().find(|t| element_key(t, key) == Some(id)) {
                    Some(Value::Object(t)) => {
                        if let Value::Object(pm) = p {
                            merge_map(t, pm, &list_path)?;
                        }
                    }
                    _ => {
                        let mut fresh = Map::new();
                        if let Value::Object(pm) = p {
                            merge_map(&mut fresh, pm, &list_path)?;
                        }
                        target.push(Value::Object(fresh));
                    }
                }
            }
        }
    }
    Ok(())
}

/// Orders `list` as `order` lists its elements; elements not named keep their
/// relative order after those that are.
fn reorder(list: &mut [Value], order: &[Value], key: Option<&str>) {
    let position = |v: &Value| {
        order.iter().position(|o| match key {
            Some(k) => element_key(o, k).is_some() && element_key(o, k) == element_key(v, k),
            None => o == v,
        })
    };
    list.sort_by_key(|v| position(v).unwrap_or(usize::MAX));
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn deployment() -> Value {
        json!({"metadata": {"name": "web", "labels": {"app": "web", "tier": "fe"}},
               "spec": {"replicas": 1, "template": {"spec": {"containers": [
                   {"name": "app", "image": "nginx:1.25", "env": [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}]},
                   {"name": "sidecar", "image": "busybox"}]}}}})
    }

    #[test]
    fn containers_merge_by_name() {
        let mut d = deployment();
        strategic(
            &mut d,
            &json!({"spec": {"replicas": 3, "template": {"spec": {
            "$setElementOrder/containers": [{"name": "app"}, {"name": "sidecar"}],
            "containers": [{"name": "app", "image": "nginx:1.26"}]}}}}),
        )
        .expect("applies");
        assert_eq!(d["spec"]["replicas"], 3);
        let c = &d["spec"]["template"]["spec"]["containers"];
        assert_eq!(c[0]["image"], "nginx:1.26");
        assert_eq!(c[0]["env"][1]["name"], "B");
        assert_eq!(c[1]["name"], "sidecar");
    }

    #[test]
    fn removals_as_kubectl_sends_them() {
        let mut d = deployment();
        strategic(&mut d, &json!({"metadata": {"labels": {"tier": null}},
            "spec": {"template": {"spec": {
                "$setElementOrder/containers": [{"name": "app"}],
                "containers": [
                    {"name": "app", "$setElementOrder/env": [{"name": "A"}], "env": [{"$patch": "delete", "name": "B"}]},
                    {"$patch": "delete", "name": "sidecar"}]}}}}))
        .expect("applies");
        assert_eq!(d["metadata"]["labels"], json!({"app": "web"}));
        let c = d["spec"]["template"]["spec"]["containers"]
            .as_array()
            .expect("list");
        assert_eq!(c.len(), 1);
        assert_eq!(c[0]["env"], json!([{"name": "A", "value": "1"}]));
    }

    #[test]
    fn replace_and_retain_directives() {
        let mut d = json!({"spec": {"strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1}}, "x": [1, 2]}});
        strategic(
            &mut d,
            &json!({"spec": {"strategy": {"$retainKeys": ["type"], "type": "Recreate"}, "x": [3]}}),
        )
        .expect("applies");
        assert_eq!(d["spec"]["strategy"], json!({"type": "Recreate"}));
        assert_eq!(d["spec"]["x"], json!([3]));
        strategic(
            &mut d,
            &json!({"spec": {"$patch": "replace", "only": true}}),
        )
        .expect("applies");
        assert_eq!(d["spec"], json!({"only": true}));
    }

    #[test]
    fn service_ports_merge_by_port_and_finalizers_as_set() {
        let mut s = json!({"metadata": {"finalizers": ["a"]}, "spec": {"ports": [{"port": 80, "name": "http"}]}});
        strategic(&mut s, &json!({"metadata": {"finalizers": ["b"]}, "spec": {"ports": [{"port": 443, "name": "https"}]}}))
            .expect("applies");
        assert_eq!(s["spec"]["ports"].as_array().map(Vec::len), Some(2));
        assert_eq!(s["metadata"]["finalizers"], json!(["a", "b"]));
        strategic(
            &mut s,
            &json!({"metadata": {"$deleteFromPrimitiveList/finalizers": ["a"]}}),
        )
        .expect("applies");
        assert_eq!(s["metadata"]["finalizers"], json!(["b"]));
    }

    #[test]
    fn json_patch_test_op_fails() {
        let mut v = json!({"a": 1});
        assert!(json(&mut v, &json!([{"op": "test", "path": "/a", "value": 2}])).is_err());
        assert!(json(&mut v, &json!({"not": "a list"})).is_err());
        json(
            &mut v,
            &json!([{"op": "replace", "path": "/a", "value": 2}]),
        )
        .expect("applies");
        assert_eq!(v["a"], 2);
    }
}
