//! Small helpers for reading and building Kubernetes objects held as JSON:
//! metadata accessors, owner references, label selectors, conditions and time.

use serde_json::{Map, Value, json};

/// The string at a JSON pointer, or `""`.
pub fn str_at<'a>(object: &'a Value, pointer: &str) -> &'a str {
    object
        .pointer(pointer)
        .and_then(Value::as_str)
        .unwrap_or("")
}

/// The integer at a JSON pointer, if any.
pub fn i64_at(object: &Value, pointer: &str) -> Option<i64> {
    object.pointer(pointer).and_then(Value::as_i64)
}

/// `metadata.name`.
pub fn name(object: &Value) -> &str {
    str_at(object, "/metadata/name")
}

/// `metadata.namespace`.
pub fn namespace(object: &Value) -> &str {
    str_at(object, "/metadata/namespace")
}

/// `metadata.uid`.
pub fn uid(object: &Value) -> &str {
    str_at(object, "/metadata/uid")
}

/// `metadata.generation` (0 when unset).
pub fn generation(object: &Value) -> i64 {
    i64_at(object, "/metadata/generation").unwrap_or(0)
}

/// Whether `metadata.deletionTimestamp` is set.
pub fn deleting(object: &Value) -> bool {
    object.pointer("/metadata/deletionTimestamp").is_some()
}

/// `metadata.labels` (empty when unset).
pub fn labels(object: &Value) -> Map<String, Value> {
    object
        .pointer("/metadata/labels")
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default()
}

/// The uid of the object's controller owner, if it has one of `kind`.
pub fn controller_uid<'a>(object: &'a Value, kind: &str) -> Option<&'a str> {
    object
        .pointer("/metadata/ownerReferences")
        .and_then(Value::as_array)?
        .iter()
        .find(|r| r.get("controller") == Some(&Value::Bool(true)))
        .filter(|r| str_at(r, "/kind") == kind)
        .map(|r| str_at(r, "/uid"))
}

/// An owner reference to `owner` with `controller: true`, as controllers set them.
pub fn controller_ref(api_version: &str, kind: &str, owner: &Value) -> Value {
    json!({
        "apiVersion": api_version,
        "kind": kind,
        "name": name(owner),
        "uid": uid(owner),
        "controller": true,
        "blockOwnerDeletion": true,
    })
}

/// Whether a `metav1.LabelSelector` (matchLabels and matchExpressions) selects
/// `labels`. An empty or missing selector selects everything.
pub fn selector_matches(selector: Option<&Value>, labels: &Map<String, Value>) -> bool {
    let Some(selector) = selector else {
        return true;
    };
    let value = |k: &str| labels.get(k).and_then(Value::as_str);
    if let Some(ml) = selector.get("matchLabels").and_then(Value::as_object) {
        for (k, v) in ml {
            if value(k) != v.as_str() {
                return false;
            }
        }
    }
    for expr in selector
        .get("matchExpressions")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let key = str_at(expr, "/key");
        let values: Vec<&str> = expr
            .get("values")
            .and_then(Value::as_array)
            .map(|a| a.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        let ok = match str_at(expr, "/operator") {
            "In" => value(key).is_some_and(|v| values.contains(&v)),
            "NotIn" => value(key).is_none_or(|v| !values.contains(&v)),
            "Exists" => value(key).is_some(),
            "DoesNotExist" => value(key).is_none(),
            _ => false,
        };
        if !ok {
            return false;
        }
    }
    true
}

/// Whether a Service-style selector (a plain label map) selects `labels`; an empty
/// map selects nothing, as for Services.
pub fn map_selects(selector: &Map<String, Value>, labels: &Map<String, Value>) -> bool {
    !selector.is_empty()
        && selector
            .iter()
            .all(|(k, v)| labels.get(k).and_then(Value::as_str) == v.as_str())
}

/// Now, as RFC 3339 with second precision (`metav1.Time`).
pub fn now() -> String {
    jiff::Timestamp::now()
        .strftime("%Y-%m-%dT%H:%M:%SZ")
        .to_string()
}

/// Parses a `metav1.Time`.
pub fn parse_time(s: &str) -> Option<jiff::Timestamp> {
    s.parse().ok()
}

/// Sets a condition in a list, keeping `lastTransitionTime` (and, when nothing
/// but times would change, the whole condition) from an existing one of the type.
pub fn set_condition(
    conditions: &mut Vec<Value>,
    old: &[Value],
    kind: &str,
    status: &str,
    reason: &str,
    message: &str,
    with_update_time: bool,
) {
    let now = now();
    let previous = old.iter().find(|c| str_at(c, "/type") == kind);
    let mut condition = json!({"type": kind, "status": status});
    if with_update_time {
        condition["lastUpdateTime"] = json!(now);
    }
    condition["lastTransitionTime"] = json!(now);
    condition["reason"] = json!(reason);
    condition["message"] = json!(message);
    if let Some(prev) = previous
        && str_at(prev, "/status") == status
    {
        condition["lastTransitionTime"] = prev
            .get("lastTransitionTime")
            .cloned()
            .unwrap_or(json!(now));
        if str_at(prev, "/reason") == reason && str_at(prev, "/message") == message {
            condition = prev.clone();
        }
    }
    conditions.retain(|c| str_at(c, "/type") != kind);
    conditions.push(condition);
}

/// Conditions at `/status/conditions` (empty when unset).
pub fn conditions(object: &Value) -> Vec<Value> {
    object
        .pointer("/status/conditions")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default()
}

/// Whether a pod has condition `Ready=True`.
pub fn pod_ready(pod: &Value) -> bool {
    conditions(pod)
        .iter()
        .any(|c| str_at(c, "/type") == "Ready" && str_at(c, "/status") == "True")
}

/// When a pod last became ready, if it is ready.
pub fn pod_ready_since(pod: &Value) -> Option<jiff::Timestamp> {
    conditions(pod)
        .iter()
        .find(|c| str_at(c, "/type") == "Ready" && str_at(c, "/status") == "True")
        .and_then(|c| parse_time(str_at(c, "/lastTransitionTime")))
}

/// Whether a pod has finished (`Succeeded` or `Failed`).
pub fn pod_terminal(pod: &Value) -> bool {
    matches!(str_at(pod, "/status/phase"), "Succeeded" | "Failed")
}

/// Whether a pod counts as active for its controller: not finished, not deleting.
pub fn pod_active(pod: &Value) -> bool {
    !pod_terminal(pod) && !deleting(pod)
}

/// Whether a pod has been ready for at least `min_ready_seconds` at `now`.
pub fn pod_available(pod: &Value, min_ready_seconds: i64, now: jiff::Timestamp) -> bool {
    match pod_ready_since(pod) {
        Some(since) if min_ready_seconds > 0 => {
            now.as_second() - since.as_second() >= min_ready_seconds
        }
        Some(_) => true,
        None => pod_ready(pod) && min_ready_seconds <= 0,
    }
}

/// Resolves an IntOrString (`3` or `"25%"`) against `total`, rounding up or down.
pub fn int_or_percent(value: Option<&Value>, total: i64, round_up: bool, default: i64) -> i64 {
    match value {
        Some(Value::Number(n)) => n.as_i64().unwrap_or(default),
        Some(Value::String(s)) => match s.strip_suffix('%').and_then(|p| p.parse::<i64>().ok()) {
            Some(p) => {
                let scaled = p * total;
                if round_up {
                    (scaled + 99) / 100
                } else {
                    scaled / 100
                }
            }
            None => s.parse().unwrap_or(default),
        },
        _ => default,
    }
}

/// FNV-1a, 32 bits, as Kubernetes hashes pod templates.
pub fn fnv32a(bytes: &[u8]) -> u32 {
    let mut hash: u32 = 0x811c_9dc5;
    for b in bytes {
        hash ^= u32::from(*b);
        hash = hash.wrapping_mul(0x0100_0193);
    }
    hash
}

/// `rand.SafeEncodeString` of Kubernetes: maps each byte onto an alphabet without
/// vowels or look-alike characters.
pub fn safe_encode(s: &str) -> String {
    const ALPHANUMS: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    s.bytes()
        .map(|b| ALPHANUMS[usize::from(b) % ALPHANUMS.len()] as char)
        .collect()
}

/// A deterministic serialisation of JSON with object keys sorted.
pub fn canonical(value: &Value) -> String {
    let mut out = String::new();
    write_canonical(value, &mut out);
    out
}

fn write_canonical(value: &Value, out: &mut String) {
    match value {
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            out.push('{');
            for (i, k) in keys.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&Value::String(k.clone()).to_string());
                out.push(':');
                if let Some(v) = map.get(k) {
                    write_canonical(v, out);
                }
            }
            out.push('}');
        }
        Value::Array(items) => {
            out.push('[');
            for (i, v) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_canonical(v, out);
            }
            out.push(']');
        }
        other => out.push_str(&other.to_string()),
    }
}

/// The hash Kubernetes puts in `pod-template-hash` / `controller-revision-hash`:
/// FNV-1a of the template (and collision count), encoded with [`safe_encode`].
pub fn template_hash(template: &Value, collision_count: Option<i64>) -> String {
    let mut bytes = canonical(template).into_bytes();
    if let Some(c) = collision_count {
        bytes.extend_from_slice(&(c as u32).to_le_bytes());
    }
    safe_encode(&fnv32a(&bytes).to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn selectors() {
        let labels = json!({"app": "web", "tier": "fe"});
        let labels = labels.as_object().expect("map");
        assert!(selector_matches(
            Some(&json!({"matchLabels": {"app": "web"}})),
            labels
        ));
        assert!(!selector_matches(
            Some(&json!({"matchLabels": {"app": "db"}})),
            labels
        ));
        let expr = json!({"matchExpressions": [{"key": "tier", "operator": "In", "values": ["fe", "be"]},
            {"key": "gone", "operator": "DoesNotExist"}]});
        assert!(selector_matches(Some(&expr), labels));
        assert!(!map_selects(&Map::new(), labels));
        assert!(map_selects(
            json!({"app": "web"}).as_object().expect("map"),
            labels
        ));
    }

    #[test]
    fn percentages() {
        assert_eq!(int_or_percent(Some(&json!("25%")), 3, true, 0), 1);
        assert_eq!(int_or_percent(Some(&json!("25%")), 3, false, 0), 0);
        assert_eq!(int_or_percent(Some(&json!(2)), 3, false, 0), 2);
        assert_eq!(int_or_percent(None, 3, false, 7), 7);
    }

    #[test]
    fn hashes_are_stable_and_safe() {
        let a = json!({"metadata": {"labels": {"app": "x"}}, "spec": {"containers": [{"name": "c", "image": "nginx"}]}});
        let b = json!({"spec": {"containers": [{"image": "nginx", "name": "c"}]}, "metadata": {"labels": {"app": "x"}}});
        assert_eq!(template_hash(&a, None), template_hash(&b, None));
        assert_ne!(template_hash(&a, None), template_hash(&a, Some(1)));
        let h = template_hash(&a, None);
        assert!(
            h.chars().all(|c| "bcdfghjklmnpqrstvwxz2456789".contains(c)),
            "{h}"
        );
        assert_eq!(fnv32a(b""), 0x811c_9dc5);
    }

    #[test]
    fn conditions_keep_transition_time() {
        let old = vec![
            json!({"type": "Ready", "status": "True", "reason": "R", "message": "m",
            "lastTransitionTime": "2020-01-01T00:00:00Z"}),
        ];
        let mut next = Vec::new();
        set_condition(&mut next, &old, "Ready", "True", "R", "m", false);
        assert_eq!(next[0], old[0]);
        let mut next = Vec::new();
        set_condition(&mut next, &old, "Ready", "False", "R", "m", false);
        assert_ne!(
            str_at(&next[0], "/lastTransitionTime"),
            "2020-01-01T00:00:00Z"
        );
    }
}
