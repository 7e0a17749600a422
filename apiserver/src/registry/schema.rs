//! Structural OpenAPI v3 schemas of CustomResourceDefinitions: the structural check
//! a CRD must pass, then pruning of unknown fields, `default` values and validation
//! of custom objects, with Kubernetes' field paths and messages.

use serde_json::{Map, Value};

use crate::status::Cause;

fn is_int_or_string(schema: &Value) -> bool {
    schema.get("x-kubernetes-int-or-string") == Some(&Value::Bool(true))
}

fn preserves_unknown(schema: &Value) -> bool {
    schema.get("x-kubernetes-preserve-unknown-fields") == Some(&Value::Bool(true))
}

fn is_embedded(schema: &Value) -> bool {
    schema.get("x-kubernetes-embedded-resource") == Some(&Value::Bool(true))
}

fn join(path: &str, field: &str) -> String {
    if path.is_empty() {
        field.to_string()
    } else {
        format!("{path}.{field}")
    }
}

/// Checks that a schema is structural: every node has a `type` unless it is
/// int-or-string or preserves unknown fields; logical junctors (`anyOf`, `allOf`,
/// `oneOf`, `not`) may not set types or defaults of their own.
pub fn check_structural(schema: &Value, path: &str) -> Vec<Cause> {
    let mut causes = Vec::new();
    walk_structural(schema, path, false, &mut causes);
    causes
}

fn walk_structural(schema: &Value, path: &str, in_junctor: bool, causes: &mut Vec<Cause>) {
    walk(schema, path, in_junctor, false, causes)
}

/// `int_or_string` is set inside the junctors of an int-or-string node, where
/// `anyOf: [{type: integer}, {type: string}]` is allowed.
fn walk(
    schema: &Value,
    path: &str,
    in_junctor: bool,
    int_or_string: bool,
    causes: &mut Vec<Cause>,
) {
    let Some(map) = schema.as_object() else {
        causes.push(Cause::new("FieldValueInvalid", path, "must be an object"));
        return;
    };
    if !in_junctor {
        let has_type = map
            .get("type")
            .and_then(Value::as_str)
            .is_some_and(|t| !t.is_empty());
        if !has_type && !is_int_or_string(schema) && !preserves_unknown(schema) {
            causes.push(Cause::new(
                "FieldValueRequired",
                join(path, "type"),
                "Required value: must not be empty for specified object fields",
            ));
        }
        if let Some(t) = map.get("type").and_then(Value::as_str)
            && !matches!(
                t,
                "object" | "array" | "string" | "integer" | "number" | "boolean"
            )
        {
            causes.push(Cause::new(
                "FieldValueNotSupported",
                join(path, "type"),
                format!("Unsupported value: \"{t}\": supported values: \"array\", \"boolean\", \"integer\", \"number\", \"object\", \"string\""),
            ));
        }
    } else {
        for forbidden in [
            "type",
            "default",
            "additionalProperties",
            "nullable",
            "x-kubernetes-preserve-unknown-fields",
        ] {
            if map.contains_key(forbidden) && !(int_or_string && forbidden == "type") {
                causes.push(Cause::new(
                    "FieldValueForbidden",
                    join(path, forbidden),
                    "Forbidden: must be undefined to be structural inside a logical junctor",
                ));
            }
        }
    }
    if map.contains_key("properties")
        && map.contains_key("additionalProperties")
        && map.get("additionalProperties") != Some(&Value::Bool(false))
    {
        causes.push(Cause::new(
            "FieldValueForbidden",
            join(path, "additionalProperties"),
            "Forbidden: additionalProperties and properties are mutual exclusive",
        ));
    }
    if let Some(props) = map.get("properties").and_then(Value::as_object) {
        for (k, v) in props {
            walk_structural(
                v,
                &format!("{}[{k}]", join(path, "properties")),
                false,
                causes,
            );
        }
    }
    if let Some(items) = map.get("items") {
        if items.is_array() {
            causes.push(Cause::new(
                "FieldValueForbidden",
                join(path, "items"),
                "Forbidden: items must be a schema object and not an array",
            ));
        } else {
            walk_structural(items, &join(path, "items"), in_junctor, causes);
        }
    } else if map.get("type").and_then(Value::as_str) == Some("array") && !in_junctor {
        causes.push(Cause::new(
            "FieldValueRequired",
            join(path, "items"),
            "Required value: must be specified",
        ));
    }
    if let Some(ap) = map.get("additionalProperties")
        && ap.is_object()
    {
        walk_structural(ap, &join(path, "additionalProperties"), in_junctor, causes);
    }
    for junctor in ["anyOf", "allOf", "oneOf"] {
        if let Some(list) = map.get(junctor).and_then(Value::as_array) {
            for (i, s) in list.iter().enumerate() {
                walk(
                    s,
                    &format!("{}[{i}]", join(path, junctor)),
                    true,
                    is_int_or_string(schema),
                    causes,
                );
            }
        }
    }
    if let Some(not) = map.get("not") {
        walk_structural(not, &join(path, "not"), true, causes);
    }
}

/// Metadata fields kept when pruning embedded resources.
const OBJECT_META: [&str; 16] = [
    "name",
    "generateName",
    "namespace",
    "selfLink",
    "uid",
    "resourceVersion",
    "generation",
    "creationTimestamp",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
    "labels",
    "annotations",
    "ownerReferences",
    "finalizers",
    "managedFields",
    "clusterName",
];

/// Removes fields the schema does not know, as the API server does for custom
/// resources; returns the paths removed (for `fieldValidation`). `root` keeps
/// apiVersion/kind/metadata.
pub fn prune(value: &mut Value, schema: &Value, root: bool) -> Vec<String> {
    let mut removed = Vec::new();
    prune_at(value, schema, root, "", &mut removed);
    removed
}

fn prune_at(value: &mut Value, schema: &Value, root: bool, path: &str, removed: &mut Vec<String>) {
    if preserves_unknown(schema)
        && schema.get("properties").is_none()
        && schema.get("additionalProperties").is_none()
    {
        return;
    }
    match value {
        Value::Object(map) => {
            let embedded = root || is_embedded(schema);
            if let Some(props) = schema.get("properties").and_then(Value::as_object) {
                let preserve = preserves_unknown(schema);
                map.retain(|k, _| {
                    let keep = props.contains_key(k)
                        || preserve
                        || (embedded && matches!(k.as_str(), "apiVersion" | "kind" | "metadata"));
                    if !keep {
                        removed.push(join(path, k));
                    }
                    keep
                });
                for (k, v) in map.iter_mut() {
                    if embedded && k == "metadata" {
                        continue;
                    }
                    if let Some(s) = props.get(k) {
                        prune_at(v, s, false, &join(path, k), removed);
                    }
                }
            } else if let Some(ap) = schema.get("additionalProperties").filter(|a| a.is_object()) {
                for (k, v) in map.iter_mut() {
                    prune_at(v, ap, false, &join(path, k), removed);
                }
            } else if !preserves_unknown(schema)
                && schema.get("type").and_then(Value::as_str) == Some("object")
                && !embedded
            {
                removed.extend(map.keys().map(|k| join(path, k)));
                map.clear();
            }
            if embedded && let Some(Value::Object(meta)) = map.get_mut("metadata") {
                meta.retain(|k, _| {
                    let keep = OBJECT_META.contains(&k.as_str());
                    if !keep {
                        removed.push(join(&join(path, "metadata"), k));
                    }
                    keep
                });
            }
        }
        Value::Array(items) => {
            if let Some(s) = schema.get("items") {
                for (i, item) in items.iter_mut().enumerate() {
                    prune_at(item, s, false, &format!("{path}[{i}]"), removed);
                }
            }
        }
        _ => {}
    }
}

/// Applies `default` values of absent properties, recursively.
pub fn apply_defaults(value: &mut Value, schema: &Value) {
    match value {
        Value::Object(map) => {
            if let Some(props) = schema.get("properties").and_then(Value::as_object) {
                for (k, s) in props {
                    if !map.contains_key(k)
                        && let Some(d) = s.get("default")
                    {
                        map.insert(k.clone(), d.clone());
                    }
                    if let Some(v) = map.get_mut(k) {
                        apply_defaults(v, s);
                    }
                }
            } else if let Some(ap) = schema.get("additionalProperties").filter(|a| a.is_object()) {
                for v in map.values_mut() {
                    apply_defaults(v, ap);
                }
            }
        }
        Value::Array(items) => {
            if let Some(s) = schema.get("items") {
                for item in items {
                    apply_defaults(item, s);
                }
            }
        }
        _ => {}
    }
}

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(n) if n.is_i64() || n.is_u64() => "integer",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// How a value prints in a validation message (`"text"`, `5`, `map[...]`).
fn shown(v: &Value) -> String {
    match v {
        Value::String(s) => format!("\"{s}\""),
        Value::Object(_) => "\"object\"".into(),
        Value::Array(_) => "\"array\"".into(),
        other => other.to_string(),
    }
}

fn invalid(path: &str, value: &Value, message: String) -> Cause {
    Cause::new(
        "FieldValueInvalid",
        path,
        format!("Invalid value: {}: {message}", shown(value)),
    )
}

/// Validates a value against a schema; `path` is the field path of `value`.
pub fn validate(value: &Value, schema: &Value, path: &str, causes: &mut Vec<Cause>) {
    if value.is_null() {
        if schema.get("nullable") == Some(&Value::Bool(true)) {
            return;
        }
        if schema.get("type").is_some() {
            causes.push(invalid(
                path,
                value,
                format!(
                    "{path} in body must be of type {}: \"null\"",
                    schema["type"].as_str().unwrap_or("")
                ),
            ));
        }
        return;
    }
    if is_int_or_string(schema) {
        if !value.is_string() && type_name(value) != "integer" {
            causes.push(invalid(
                path,
                value,
                format!(
                    "{path} in body must be of type integer or string: \"{}\"",
                    type_name(value)
                ),
            ));
        }
        return;
    }
    if let Some(want) = schema.get("type").and_then(Value::as_str) {
        let have = type_name(value);
        let ok = have == want || (want == "number" && have == "integer");
        if !ok {
            causes.push(invalid(
                path,
                &Value::String(have.into()),
                format!("{path} in body must be of type {want}: \"{have}\""),
            ));
            return;
        }
    }
    if let Some(options) = schema.get("enum").and_then(Value::as_array)
        && !options.contains(value)
    {
        let supported: Vec<String> = options.iter().map(shown).collect();
        causes.push(Cause::new(
            "FieldValueNotSupported",
            path,
            format!(
                "Unsupported value: {}: supported values: {}",
                shown(value),
                supported.join(", ")
            ),
        ));
    }
    match value {
        Value::String(s) => validate_string(s, value, schema, path, causes),
        Value::Number(n) => {
            let x = n.as_f64().unwrap_or(0.0);
            let exclusive_min = schema.get("exclusiveMinimum") == Some(&Value::Bool(true));
            let exclusive_max = schema.get("exclusiveMaximum") == Some(&Value::Bool(true));
            if let Some(min) = schema.get("minimum").and_then(Value::as_f64)
                && (x < min || (exclusive_min && x == min))
            {
                let op = if exclusive_min {
                    "greater than"
                } else {
                    "greater than or equal to"
                };
                causes.push(invalid(
                    path,
                    value,
                    format!("{path} in body should be {op} {}", schema["minimum"]),
                ));
            }
            if let Some(max) = schema.get("maximum").and_then(Value::as_f64)
                && (x > max || (exclusive_max && x == max))
            {
                let op = if exclusive_max {
                    "less than"
                } else {
                    "less than or equal to"
                };
                causes.push(invalid(
                    path,
                    value,
                    format!("{path} in body should be {op} {}", schema["maximum"]),
                ));
            }
            if let Some(m) = schema.get("multipleOf").and_then(Value::as_f64)
                && m > 0.0
                && (x / m).fract() != 0.0
            {
                causes.push(invalid(
                    path,
                    value,
                    format!(
                        "{path} in body should be a multiple of {}",
                        schema["multipleOf"]
                    ),
                ));
            }
        }
        Value::Array(items) => {
            if let Some(min) = schema.get("minItems").and_then(Value::as_u64)
                && (items.len() as u64) < min
            {
                causes.push(invalid(
                    path,
                    value,
                    format!("{path} in body should have at least {min} items"),
                ));
            }
            if let Some(max) = schema.get("maxItems").and_then(Value::as_u64)
                && (items.len() as u64) > max
            {
                causes.push(Cause::new(
                    "FieldValueTooMany",
                    path,
                    format!("Too many: {}: must have at most {max} items", items.len()),
                ));
            }
            if let Some(s) = schema.get("items") {
                for (i, item) in items.iter().enumerate() {
                    validate(item, s, &format!("{path}[{i}]"), causes);
                }
            }
            if schema.get("x-kubernetes-list-type").and_then(Value::as_str) == Some("set") {
                for (i, item) in items.iter().enumerate() {
                    if items[..i].contains(item) {
                        causes.push(Cause::new(
                            "FieldValueDuplicate",
                            format!("{path}[{i}]"),
                            format!("Duplicate value: {}", shown(item)),
                        ));
                    }
                }
            }
        }
        Value::Object(map) => validate_object(map, value, schema, path, causes),
        _ => {}
    }
    for junctor in ["allOf", "anyOf", "oneOf"] {
        let Some(list) = schema.get(junctor).and_then(Value::as_array) else {
            continue;
        };
        let passing = list
            .iter()
            .filter(|s| {
                let mut c = Vec::new();
                validate(value, s, path, &mut c);
                c.is_empty()
            })
            .count();
        let ok = match junctor {
            "allOf" => passing == list.len(),
            "anyOf" => passing > 0,
            _ => passing == 1,
        };
        if !ok {
            causes.push(invalid(
                path,
                value,
                format!("{path} in body must validate {junctor}"),
            ));
        }
    }
}

fn validate_string(s: &str, value: &Value, schema: &Value, path: &str, causes: &mut Vec<Cause>) {
    let len = s.chars().count() as u64;
    if let Some(min) = schema.get("minLength").and_then(Value::as_u64)
        && len < min
    {
        causes.push(invalid(
            path,
            value,
            format!("{path} in body should be at least {min} chars long"),
        ));
    }
    if let Some(max) = schema.get("maxLength").and_then(Value::as_u64)
        && len > max
    {
        causes.push(Cause::new(
            "FieldValueTooLong",
            path,
            format!("Too long: may not be more than {max} bytes"),
        ));
    }
    if let Some(pattern) = schema.get("pattern").and_then(Value::as_str) {
        match regex_lite::Regex::new(pattern) {
            Ok(re) if !re.is_match(s) => {
                causes.push(invalid(
                    path,
                    value,
                    format!("{path} in body should match '{pattern}'"),
                ));
            }
            _ => {}
        }
    }
    match schema.get("format").and_then(Value::as_str) {
        Some("date-time") if s.parse::<jiff::Timestamp>().is_err() => {
            causes.push(invalid(
                path,
                value,
                format!("{path} in body must be of type date-time: \"{s}\""),
            ));
        }
        Some("byte") if base64_ok(s).is_none() => {
            causes.push(invalid(
                path,
                value,
                format!("{path} in body must be of type byte: \"{s}\""),
            ));
        }
        _ => {}
    }
}

fn base64_ok(s: &str) -> Option<()> {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD
        .decode(s)
        .ok()
        .map(|_| ())
}

fn validate_object(
    map: &Map<String, Value>,
    value: &Value,
    schema: &Value,
    path: &str,
    causes: &mut Vec<Cause>,
) {
    if let Some(required) = schema.get("required").and_then(Value::as_array) {
        for r in required.iter().filter_map(Value::as_str) {
            if !map.contains_key(r) {
                causes.push(Cause::new(
                    "FieldValueRequired",
                    join(path, r),
                    "Required value",
                ));
            }
        }
    }
    if let Some(min) = schema.get("minProperties").and_then(Value::as_u64)
        && (map.len() as u64) < min
    {
        causes.push(invalid(
            path,
            value,
            format!("{path} in body should have at least {min} properties"),
        ));
    }
    if let Some(max) = schema.get("maxProperties").and_then(Value::as_u64)
        && (map.len() as u64) > max
    {
        causes.push(Cause::new(
            "FieldValueTooMany",
            path,
            format!("Too many: {}: must have at most {max} items", map.len()),
        ));
    }
    if is_embedded(schema) {
        for f in ["apiVersion", "kind"] {
            if map.get(f).and_then(Value::as_str).is_none_or(str::is_empty) {
                causes.push(Cause::new(
                    "FieldValueRequired",
                    join(path, f),
                    "Required value: must not be empty",
                ));
            }
        }
    }
    let props = schema.get("properties").and_then(Value::as_object);
    for (k, v) in map {
        if let Some(s) = props.and_then(|p| p.get(k)) {
            validate(v, s, &join(path, k), causes);
        } else if let Some(ap) = schema.get("additionalProperties").filter(|a| a.is_object()) {
            validate(v, ap, &join(path, k), causes);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn schema() -> Value {
        json!({"type": "object", "properties": {
        "spec": {"type": "object", "required": ["mode"], "properties": {
            "mode": {"type": "string", "enum": ["A", "B"]},
            "replicas": {"type": "integer", "minimum": 0, "default": 1},
            "name": {"type": "string", "pattern": "^[a-z]+$", "maxLength": 5},
            "port": {"x-kubernetes-int-or-string": true},
            "when": {"type": "string", "format": "date-time"},
            "items": {"type": "array", "items": {"type": "object", "properties": {"n": {"type": "integer", "default": 7}}}},
            "free": {"type": "object", "x-kubernetes-preserve-unknown-fields": true},
            "labels": {"type": "object", "additionalProperties": {"type": "string"}},
            "opt": {"type": "string", "nullable": true}
        }}}})
    }

    fn check(spec: Value) -> Vec<String> {
        let mut c = Vec::new();
        validate(&json!({"spec": spec}), &schema(), "", &mut c);
        c.into_iter()
            .map(|c| format!("{}: {}", c.field, c.message))
            .collect()
    }

    #[test]
    fn validation_messages() {
        assert!(check(json!({"mode": "A", "replicas": 2, "port": "http", "opt": null})).is_empty());
        assert_eq!(check(json!({})), vec!["spec.mode: Required value"]);
        assert_eq!(
            check(json!({"mode": "C"})),
            vec!["spec.mode: Unsupported value: \"C\": supported values: \"A\", \"B\""]
        );
        assert_eq!(
            check(json!({"mode": "A", "replicas": -1})),
            vec![
                "spec.replicas: Invalid value: -1: spec.replicas in body should be greater than or equal to 0"
            ]
        );
        assert_eq!(
            check(json!({"mode": "A", "replicas": "x"})),
            vec![
                "spec.replicas: Invalid value: \"string\": spec.replicas in body must be of type integer: \"string\""
            ]
        );
        assert_eq!(
            check(json!({"mode": "A", "name": "AB"})),
            vec!["spec.name: Invalid value: \"AB\": spec.name in body should match '^[a-z]+$'"]
        );
        assert_eq!(
            check(json!({"mode": "A", "name": "abcdefg"})),
            vec!["spec.name: Too long: may not be more than 5 bytes"]
        );
        assert_eq!(check(json!({"mode": "A", "port": true})).len(), 1);
        assert_eq!(check(json!({"mode": "A", "when": "yesterday"})).len(), 1);
        assert_eq!(
            check(json!({"mode": "A", "labels": {"a": 1}})),
            vec![
                "spec.labels.a: Invalid value: \"integer\": spec.labels.a in body must be of type string: \"integer\""
            ]
        );
        assert_eq!(check(json!({"mode": "A", "items": [{"n": "x"}]})).len(), 1);
    }

    #[test]
    fn pruning_and_defaults() {
        let mut v = json!({"apiVersion": "x/v1", "kind": "X", "metadata": {"name": "a"}, "bogus": 1,
            "spec": {"mode": "A", "unknown": true, "free": {"anything": {"goes": 1}}, "items": [{"n": 1, "m": 2}, {}]}});
        let removed = prune(&mut v, &schema(), true);
        assert_eq!(removed, vec!["bogus", "spec.unknown", "spec.items[0].m"]);
        apply_defaults(&mut v, &schema());
        assert!(v.get("bogus").is_none());
        assert!(v["spec"].get("unknown").is_none());
        assert_eq!(v["spec"]["free"]["anything"]["goes"], 1);
        assert_eq!(v["spec"]["items"], json!([{"n": 1}, {"n": 7}]));
        assert_eq!(v["spec"]["replicas"], 1);
        assert_eq!(v["metadata"]["name"], "a");
    }

    #[test]
    fn structural_check() {
        assert!(check_structural(&schema(), "spec.validation.openAPIV3Schema").is_empty());
        let bad = json!({"type": "object", "properties": {"a": {"description": "no type"}, "b": {"type": "array"}}});
        let causes = check_structural(&bad, "s");
        assert_eq!(causes.len(), 2, "{causes:?}");
        assert_eq!(causes[0].field, "s.properties[a].type");
    }
}
