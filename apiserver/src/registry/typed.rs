//! Typed decoding of built-in kinds, as kube-apiserver's Go structs decode JSON:
//! a value of the wrong type is a `400 BadRequest`, and fields the kind does not
//! have are dropped (and reported for `fieldValidation`). Driven by the OpenAPI
//! schemas of [`super::openapi_schemas`].

use serde_json::Value;

use super::openapi_schemas::{REF_PREFIX, Schemas};

/// What decoding found.
#[derive(Debug, Default, PartialEq)]
pub struct Decoded {
    /// Dotted paths of the unknown fields removed.
    pub unknown: Vec<String>,
    /// The first type mismatch, worded as Go's encoding/json words it.
    pub type_error: Option<String>,
}

fn resolve<'a>(schemas: &'a Schemas, mut schema: &'a Value) -> &'a Value {
    for _ in 0..8 {
        let reference = schema
            .get("$ref")
            .or_else(|| {
                schema
                    .get("allOf")
                    .and_then(|a| a.get(0))
                    .and_then(|f| f.get("$ref"))
            })
            .and_then(Value::as_str);
        match reference
            .and_then(|r| r.strip_prefix(REF_PREFIX))
            .and_then(|n| schemas.get(n))
        {
            Some(target) => schema = target,
            None => break,
        }
    }
    schema
}

fn json_kind(v: &Value) -> &'static str {
    match v {
        Value::String(_) => "string",
        Value::Number(_) => "number",
        Value::Bool(_) => "bool",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
        Value::Null => "null",
    }
}

fn go_type(schema: &Value) -> String {
    match (
        schema.get("type").and_then(Value::as_str),
        schema.get("format").and_then(Value::as_str),
    ) {
        (Some("integer"), Some(f)) => f.to_string(),
        (Some("integer"), None) => "int".into(),
        (Some("number"), _) => "float64".into(),
        (Some("boolean"), _) => "bool".into(),
        (Some("string"), _) => "string".into(),
        (Some("array"), _) => "[]".into(),
        (Some("object"), _) if schema.get("additionalProperties").is_some() => "map".into(),
        _ => "struct".into(),
    }
}

fn join(path: &str, field: &str) -> String {
    if path.is_empty() {
        field.to_string()
    } else {
        format!("{path}.{field}")
    }
}

struct Walk<'a> {
    schemas: &'a Schemas,
    kind: &'a str,
    out: Decoded,
}

impl Walk<'_> {
    fn mismatch(&mut self, value: &Value, schema: &Value, path: &str) {
        if self.out.type_error.is_none() {
            self.out.type_error = Some(format!(
                "json: cannot unmarshal {} into Go struct field {}.{path} of type {}",
                json_kind(value),
                self.kind,
                go_type(schema)
            ));
        }
    }

    fn walk(&mut self, value: &mut Value, schema: &Value, path: &str, field: &str) {
        let schema = resolve(self.schemas, schema);
        if value.is_null() {
            return;
        }
        if schema.get("x-kubernetes-int-or-string") == Some(&Value::Bool(true)) {
            if !(value.is_string() || value.is_number()) {
                self.mismatch(value, schema, path);
            }
            return;
        }
        let ok = match schema.get("type").and_then(Value::as_str) {
            Some("string") => value.is_string(),
            Some("integer") => value.is_i64() || value.is_u64(),
            Some("number") => value.is_number(),
            Some("boolean") => value.is_boolean(),
            Some("array") => value.is_array(),
            Some("object") => value.is_object(),
            _ => true,
        };
        if !ok {
            self.mismatch(value, schema, path);
            return;
        }
        match value {
            Value::Object(map) => {
                if let Some(props) = schema.get("properties").and_then(Value::as_object) {
                    let unknown: Vec<String> = map
                        .keys()
                        .filter(|k| !props.contains_key(*k))
                        .cloned()
                        .collect();
                    for k in unknown {
                        map.remove(&k);
                        self.out.unknown.push(join(field, &k));
                    }
                    for (k, v) in map.iter_mut() {
                        if let Some(s) = props.get(k) {
                            self.walk(v, s, &join(path, k), &join(field, k));
                        }
                    }
                } else if let Some(ap) =
                    schema.get("additionalProperties").filter(|a| a.is_object())
                {
                    for (k, v) in map.iter_mut() {
                        self.walk(v, ap, &join(path, k), &join(field, k));
                    }
                }
            }
            Value::Array(items) => {
                if let Some(s) = schema.get("items") {
                    for (i, item) in items.iter_mut().enumerate() {
                        self.walk(item, s, path, &format!("{field}[{i}]"));
                    }
                }
            }
            _ => {}
        }
    }
}

/// Decodes `object` as the kind whose schema is `schema_name`.
pub fn decode(schemas: &Schemas, schema_name: &str, kind: &str, object: &mut Value) -> Decoded {
    let Some(schema) = schemas.get(schema_name) else {
        return Decoded::default();
    };
    let mut walk = Walk {
        schemas,
        kind,
        out: Decoded::default(),
    };
    walk.walk(object, schema, "", "");
    walk.out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::openapi_schemas::SCHEMAS;
    use serde_json::json;

    fn run(kind: &str, group: &str, version: &str, mut v: Value) -> (Decoded, Value) {
        let name = SCHEMAS
            .kind(group, version, kind)
            .expect("known kind")
            .to_string();
        let d = decode(&SCHEMAS, &name, kind, &mut v);
        (d, v)
    }

    #[test]
    fn type_errors_as_go_reports_them() {
        let (d, _) = run(
            "ConfigMap",
            "",
            "v1",
            json!({"metadata": {"name": "a"}, "data": {"a": 1}}),
        );
        assert_eq!(
            d.type_error.as_deref(),
            Some(
                "json: cannot unmarshal number into Go struct field ConfigMap.data.a of type string"
            )
        );
        let (d, _) = run(
            "Deployment",
            "apps",
            "v1",
            json!({"spec": {"replicas": "three"}}),
        );
        assert_eq!(
            d.type_error.as_deref(),
            Some(
                "json: cannot unmarshal string into Go struct field Deployment.spec.replicas of type int32"
            )
        );
    }

    #[test]
    fn unknown_fields_are_dropped() {
        let (d, v) = run(
            "Deployment",
            "apps",
            "v1",
            json!({"metadata": {"name": "a", "bogus": 1}, "spec": {"replicas": 1, "nope": true,
                "template": {"spec": {"containers": [{"name": "c", "image": "i", "resources": {"limits": {"cpu": 1}}, "extra": 1}]}}}}),
        );
        assert_eq!(d.type_error, None);
        assert_eq!(
            d.unknown,
            vec![
                "metadata.bogus",
                "spec.nope",
                "spec.template.spec.containers[0].extra"
            ]
        );
        assert!(v["spec"].get("nope").is_none());
        assert_eq!(
            v["spec"]["template"]["spec"]["containers"][0]["resources"]["limits"]["cpu"],
            1
        );
    }
}
