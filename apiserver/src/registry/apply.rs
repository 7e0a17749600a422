//! Field management and server-side apply.
//!
//! Every write records which manager owns which fields in `metadata.managedFields`
//! (FieldsV1). An apply (`application/apply-patch+yaml`) merges the applied
//! configuration into the live object, removes fields this manager applied before
//! but no longer does, and conflicts (409, `FieldManagerConflict`) when another
//! manager owns a field the apply would change, unless forced.
//!
//! Lists follow Kubernetes' list types: lists with a merge key (containers by name,
//! ...) are associative, `finalizers` is a set, every other list is atomic.

use std::collections::BTreeSet;

use serde_json::{Map, Value, json};

use super::patch::merge_key;

/// A field path, one encoded segment each: `f:name`, `k:{"name":"app"}`, `v:"x"`.
pub type Path = Vec<String>;

/// Encodes a list item's key fields as FieldsV1 does.
fn item_key(item: &Value, key: &str) -> Option<String> {
    let k = item.get(key)?;
    let mut m = Map::new();
    m.insert(key.to_string(), k.clone());
    // Ports are keyed by port and protocol in Kubernetes.
    if (key == "containerPort" || key == "port")
        && let Some(p) = item.get("protocol")
    {
        m.insert("protocol".into(), p.clone());
    }
    Some(format!("k:{}", Value::Object(m)))
}

fn is_set_list(field: &str) -> bool {
    matches!(field, "finalizers")
}

/// The dotted context used to look up list merge keys.
fn context(path: &[String]) -> String {
    path.iter()
        .filter_map(|s| s.strip_prefix("f:"))
        .collect::<Vec<_>>()
        .join(".")
}

fn collect(value: &Value, path: &mut Path, out: &mut BTreeSet<Path>) {
    match value {
        Value::Object(m) if !m.is_empty() => {
            for (k, v) in m {
                path.push(format!("f:{k}"));
                collect_field(k, v, path, out);
                path.pop();
            }
        }
        _ => {
            out.insert(path.clone());
        }
    }
}

fn collect_field(field: &str, value: &Value, path: &mut Path, out: &mut BTreeSet<Path>) {
    match value {
        Value::Array(items) => {
            let ctx = context(&path[..path.len() - 1]);
            if let Some(key) = merge_key(&ctx, field) {
                for item in items {
                    let Some(k) = item_key(item, key) else {
                        out.insert(path.clone());
                        continue;
                    };
                    path.push(k);
                    path.push(".".into());
                    out.insert(path.clone());
                    path.pop();
                    collect(item, path, out);
                    path.pop();
                }
            } else if is_set_list(field) {
                for item in items {
                    path.push(format!("v:{item}"));
                    out.insert(path.clone());
                    path.pop();
                }
            } else {
                out.insert(path.clone());
            }
        }
        other => collect(other, path, out),
    }
}

/// The leaf fields an object sets, without identity and server-owned fields.
pub fn fields_of(object: &Value, skip_status: bool) -> BTreeSet<Path> {
    let mut out = BTreeSet::new();
    let Some(map) = object.as_object() else {
        return out;
    };
    for (k, v) in map {
        match k.as_str() {
            "apiVersion" | "kind" => {}
            "status" if skip_status => {}
            "metadata" => {
                for (mk, mv) in v.as_object().into_iter().flatten() {
                    if matches!(
                        mk.as_str(),
                        "name"
                            | "namespace"
                            | "uid"
                            | "resourceVersion"
                            | "generation"
                            | "creationTimestamp"
                            | "deletionTimestamp"
                            | "deletionGracePeriodSeconds"
                            | "managedFields"
                            | "selfLink"
                            | "generateName"
                    ) {
                        continue;
                    }
                    let mut path = vec!["f:metadata".to_string(), format!("f:{mk}")];
                    collect_field(mk, mv, &mut path, &mut out);
                }
            }
            _ => {
                let mut path = vec![format!("f:{k}")];
                collect_field(k, v, &mut path, &mut out);
            }
        }
    }
    out
}

/// FieldsV1 of a set of paths.
pub fn to_fields_v1(paths: &BTreeSet<Path>) -> Value {
    let mut root = Map::new();
    for p in paths {
        let mut node = &mut root;
        for seg in p {
            node = node
                .entry(seg.clone())
                .or_insert_with(|| Value::Object(Map::new()))
                .as_object_mut()
                .expect("fieldsV1 nodes are objects");
        }
    }
    Value::Object(root)
}

/// The set of paths in a FieldsV1 value.
pub fn from_fields_v1(fields: &Value) -> BTreeSet<Path> {
    fn walk(v: &Value, path: &mut Path, out: &mut BTreeSet<Path>) {
        match v.as_object() {
            Some(m) if !m.is_empty() => {
                for (k, child) in m {
                    path.push(k.clone());
                    walk(child, path, out);
                    path.pop();
                }
            }
            _ => {
                if !path.is_empty() {
                    out.insert(path.clone());
                }
            }
        }
    }
    let mut out = BTreeSet::new();
    walk(fields, &mut Vec::new(), &mut out);
    out
}

/// The value at a path, if present.
fn get_at<'a>(object: &'a Value, path: &[String]) -> Option<&'a Value> {
    let mut node = object;
    for seg in path {
        if seg == "." {
            continue;
        }
        if let Some(f) = seg.strip_prefix("f:") {
            node = node.get(f)?;
        } else if let Some(k) = seg.strip_prefix("k:") {
            let key: Map<String, Value> = serde_json::from_str(k).ok()?;
            node = node
                .as_array()?
                .iter()
                .find(|item| key.iter().all(|(kk, kv)| item.get(kk) == Some(kv)))?;
        } else if let Some(v) = seg.strip_prefix("v:") {
            let want: Value = serde_json::from_str(v).ok()?;
            node = node.as_array()?.iter().find(|x| **x == want)?;
        } else {
            return None;
        }
    }
    Some(node)
}

/// Removes the field at a path (a map key, a keyed list item or a set member).
fn remove_at(object: &mut Value, path: &[String]) {
    let path: Vec<&String> = path.iter().filter(|s| *s != ".").collect();
    let Some((last, parents)) = path.split_last() else {
        return;
    };
    let mut node = object;
    for seg in parents {
        let next = if let Some(f) = seg.strip_prefix("f:") {
            node.get_mut(f)
        } else if let Some(k) = seg.strip_prefix("k:") {
            let Ok(key) = serde_json::from_str::<Map<String, Value>>(k) else {
                return;
            };
            node.as_array_mut().and_then(|a| {
                a.iter_mut()
                    .find(|item| key.iter().all(|(kk, kv)| item.get(kk) == Some(kv)))
            })
        } else {
            None
        };
        match next {
            Some(n) => node = n,
            None => return,
        }
    }
    if let Some(f) = last.strip_prefix("f:") {
        if let Some(m) = node.as_object_mut() {
            m.remove(f);
        }
    } else if let Some(k) = last.strip_prefix("k:") {
        if let (Ok(key), Some(a)) = (
            serde_json::from_str::<Map<String, Value>>(k),
            node.as_array_mut(),
        ) {
            a.retain(|item| !key.iter().all(|(kk, kv)| item.get(kk) == Some(kv)));
        }
    } else if let Some(v) = last.strip_prefix("v:")
        && let (Ok(want), Some(a)) = (serde_json::from_str::<Value>(v), node.as_array_mut())
    {
        a.retain(|x| *x != want);
    }
}

/// Merges an applied configuration into a live object, by list type.
fn merge_applied(live: &mut Value, applied: &Value, ctx: &str) {
    match (live, applied) {
        (Value::Object(l), Value::Object(a)) => {
            for (k, av) in a {
                let child_ctx = if ctx.is_empty() {
                    k.clone()
                } else {
                    format!("{ctx}.{k}")
                };
                match (l.get_mut(k), av) {
                    (Some(lv @ Value::Object(_)), Value::Object(_)) => {
                        merge_applied(lv, av, &child_ctx)
                    }
                    (Some(Value::Array(litems)), Value::Array(aitems)) => {
                        if let Some(key) = merge_key(ctx, k) {
                            for ai in aitems {
                                match litems
                                    .iter_mut()
                                    .find(|li| li.get(key).is_some() && li.get(key) == ai.get(key))
                                {
                                    Some(li) => merge_applied(li, ai, &child_ctx),
                                    None => litems.push(ai.clone()),
                                }
                            }
                        } else if is_set_list(k) {
                            for ai in aitems {
                                if !litems.contains(ai) {
                                    litems.push(ai.clone());
                                }
                            }
                        } else {
                            *litems = aitems.clone();
                        }
                    }
                    _ => {
                        l.insert(k.clone(), av.clone());
                    }
                }
            }
        }
        (l, a) => *l = a.clone(),
    }
}

/// One `managedFields` entry.
#[derive(Debug, Clone)]
struct Entry {
    manager: String,
    operation: String,
    api_version: String,
    subresource: String,
    time: String,
    fields: BTreeSet<Path>,
}

fn entries(object: &Value) -> Vec<Entry> {
    object
        .pointer("/metadata/managedFields")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .map(|e| Entry {
            manager: e
                .get("manager")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string(),
            operation: e
                .get("operation")
                .and_then(Value::as_str)
                .unwrap_or("Update")
                .to_string(),
            api_version: e
                .get("apiVersion")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string(),
            subresource: e
                .get("subresource")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string(),
            time: e
                .get("time")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string(),
            fields: e.get("fieldsV1").map(from_fields_v1).unwrap_or_default(),
        })
        .collect()
}

fn store_entries(object: &mut Value, list: Vec<Entry>) {
    let values: Vec<Value> = list
        .into_iter()
        .filter(|e| !e.fields.is_empty())
        .map(|e| {
            let mut v = json!({
                "manager": e.manager,
                "operation": e.operation,
                "apiVersion": e.api_version,
                "time": e.time,
                "fieldsType": "FieldsV1",
                "fieldsV1": to_fields_v1(&e.fields),
            });
            if !e.subresource.is_empty() {
                v["subresource"] = json!(e.subresource);
            }
            v
        })
        .collect();
    if let Some(meta) = object.get_mut("metadata").and_then(Value::as_object_mut) {
        if values.is_empty() {
            meta.remove("managedFields");
        } else {
            meta.insert("managedFields".into(), Value::Array(values));
        }
    }
}

/// Who is writing, for field ownership.
#[derive(Debug, Clone)]
pub struct Manager<'a> {
    pub name: &'a str,
    pub subresource: &'a str,
    pub time: &'a str,
}

/// Records an ordinary write (create, update, patch): the fields it changed now
/// belong to `manager` (operation Update), fields it removed belong to no one.
pub fn track_update(
    old: Option<&Value>,
    new: &mut Value,
    manager: &Manager<'_>,
    skip_status: bool,
) {
    let mut list = old.map(entries).unwrap_or_default();
    let new_fields = fields_of(new, skip_status);
    let changed: BTreeSet<Path> = match old {
        None => new_fields.clone(),
        Some(o) => new_fields
            .iter()
            .filter(|p| get_at(o, p) != get_at(new, p))
            .cloned()
            .collect(),
    };
    for e in &mut list {
        e.fields
            .retain(|p| new_fields.contains(p) && !changed.contains(p));
    }
    if !changed.is_empty() {
        let api_version = new
            .get("apiVersion")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        match list.iter_mut().find(|e| {
            e.manager == manager.name
                && e.operation == "Update"
                && e.subresource == manager.subresource
        }) {
            Some(e) => {
                e.fields.extend(changed);
                e.time = manager.time.to_string();
                e.api_version = api_version;
            }
            None => list.push(Entry {
                manager: manager.name.to_string(),
                operation: "Update".into(),
                api_version,
                subresource: manager.subresource.to_string(),
                time: manager.time.to_string(),
                fields: changed,
            }),
        }
    }
    store_entries(new, list);
}

/// A field another manager owns that an apply would change.
#[derive(Debug, Clone, PartialEq)]
pub struct Conflict {
    pub manager: String,
    pub api_version: String,
    pub path: String,
}

/// `.spec.containers[name="app"].image`, as conflicts are reported.
pub fn display_path(path: &[String]) -> String {
    let mut out = String::new();
    for seg in path {
        if let Some(f) = seg.strip_prefix("f:") {
            out.push('.');
            out.push_str(f);
        } else if let Some(k) = seg.strip_prefix("k:") {
            let key: Map<String, Value> = serde_json::from_str(k).unwrap_or_default();
            let parts: Vec<String> = key.iter().map(|(k, v)| format!("{k}={v}")).collect();
            out.push_str(&format!("[{}]", parts.join(",")));
        } else if let Some(v) = seg.strip_prefix("v:") {
            out.push_str(&format!("[{v}]"));
        }
    }
    out
}

/// Server-side apply of `applied` onto `live` (None when the object is new).
/// Returns the new object with managedFields, or the conflicts.
pub fn apply(
    live: Option<&Value>,
    applied: &Value,
    manager: &Manager<'_>,
    force: bool,
    skip_status: bool,
) -> Result<Value, Vec<Conflict>> {
    let applied_fields = fields_of(applied, skip_status);
    let api_version = applied
        .get("apiVersion")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    let Some(live) = live else {
        let mut new = applied.clone();
        store_entries(
            &mut new,
            vec![Entry {
                manager: manager.name.into(),
                operation: "Apply".into(),
                api_version,
                subresource: manager.subresource.into(),
                time: manager.time.into(),
                fields: applied_fields,
            }],
        );
        return Ok(new);
    };
    let mut list = entries(live);
    let mine = |e: &Entry| {
        e.manager == manager.name && e.operation == "Apply" && e.subresource == manager.subresource
    };
    let mut conflicts = Vec::new();
    for e in list.iter().filter(|e| !mine(e)) {
        for p in e.fields.intersection(&applied_fields) {
            if p.last().map(String::as_str) == Some(".") {
                continue;
            }
            if get_at(live, p) != get_at(applied, p) {
                conflicts.push(Conflict {
                    manager: e.manager.clone(),
                    api_version: e.api_version.clone(),
                    path: display_path(p),
                });
            }
        }
    }
    if !conflicts.is_empty() && !force {
        return Err(conflicts);
    }
    let previously: BTreeSet<Path> = list
        .iter()
        .filter(|e| mine(e))
        .flat_map(|e| e.fields.clone())
        .collect();
    let mut result = live.clone();
    merge_applied(&mut result, applied, "");
    for e in list.iter_mut().filter(|e| !mine(e)) {
        if force {
            e.fields.retain(|p| {
                !applied_fields.contains(p)
                    || get_at(live, p) == get_at(applied, p)
                    || p.last().map(String::as_str) == Some(".")
            });
        }
    }
    let others: BTreeSet<Path> = list
        .iter()
        .filter(|e| !mine(e))
        .flat_map(|e| e.fields.clone())
        .collect();
    // Fields this manager applied before and dropped now go, unless someone else owns them.
    for p in previously.difference(&applied_fields) {
        if !others.contains(p) {
            remove_at(&mut result, p);
        }
    }
    list.retain(|e| !mine(e));
    list.push(Entry {
        manager: manager.name.into(),
        operation: "Apply".into(),
        api_version,
        subresource: manager.subresource.into(),
        time: manager.time.into(),
        fields: applied_fields,
    });
    store_entries(&mut result, list);
    Ok(result)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn manager(name: &str) -> Manager<'_> {
        Manager {
            name,
            subresource: "",
            time: "2026-01-01T00:00:00Z",
        }
    }

    fn deploy(replicas: i64, image: &str) -> Value {
        json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web", "labels": {"app": "web"}},
            "spec": {"replicas": replicas, "template": {"spec": {"containers": [{"name": "app", "image": image}]}}}})
    }

    #[test]
    fn fields_round_trip() {
        let f = fields_of(&deploy(1, "a"), true);
        assert!(f.contains(&vec!["f:spec".to_string(), "f:replicas".to_string()]));
        assert!(
            f.iter()
                .any(|p| p.iter().any(|s| s == r#"k:{"name":"app"}"#))
        );
        assert_eq!(from_fields_v1(&to_fields_v1(&f)), f);
    }

    #[test]
    fn second_manager_conflicts_unless_forced() {
        let first = apply(None, &deploy(2, "a"), &manager("a"), false, true).expect("create");
        let again =
            apply(Some(&first), &deploy(2, "a"), &manager("a"), false, true).expect("same manager");
        assert_eq!(again["spec"]["replicas"], 2);
        let err =
            apply(Some(&first), &deploy(3, "a"), &manager("b"), false, true).expect_err("conflict");
        assert_eq!(
            err,
            vec![Conflict {
                manager: "a".into(),
                api_version: "apps/v1".into(),
                path: ".spec.replicas".into()
            }]
        );
        let forced =
            apply(Some(&first), &deploy(3, "a"), &manager("b"), true, true).expect("forced");
        assert_eq!(forced["spec"]["replicas"], 3);
        // The field moved to b; a can no longer change it without conflict.
        assert!(apply(Some(&forced), &deploy(4, "a"), &manager("a"), false, true).is_err());
        // Same values from another manager share ownership without conflict.
        assert!(apply(Some(&forced), &deploy(3, "a"), &manager("c"), false, true).is_ok());
    }

    #[test]
    fn dropped_fields_are_removed() {
        let mut with_label = deploy(1, "a");
        with_label["metadata"]["labels"]["extra"] = json!("x");
        let first = apply(None, &with_label, &manager("a"), false, true).expect("create");
        let second =
            apply(Some(&first), &deploy(1, "a"), &manager("a"), false, true).expect("apply");
        assert!(second["metadata"]["labels"].get("extra").is_none());
        assert_eq!(second["metadata"]["labels"]["app"], "web");
    }

    #[test]
    fn updates_take_ownership() {
        let first = apply(None, &deploy(1, "a"), &manager("a"), false, true).expect("create");
        let mut edited = first.clone();
        edited["spec"]["replicas"] = json!(5);
        track_update(Some(&first), &mut edited, &manager("kubectl-edit"), true);
        let managers: Vec<&str> = edited["metadata"]["managedFields"]
            .as_array()
            .expect("list")
            .iter()
            .filter_map(|e| e["manager"].as_str())
            .collect();
        assert_eq!(managers, vec!["a", "kubectl-edit"]);
        let err = apply(Some(&edited), &deploy(1, "a"), &manager("a"), false, true)
            .expect_err("conflict with the editor");
        assert_eq!(err[0].manager, "kubectl-edit");
    }
}
