//! Object metadata as Kubernetes maintains it: names, uid, creationTimestamp,
//! generation, and the checks every write makes on `metadata`.

use rand::Rng;
use serde_json::{Map, Value};

use super::{NameRule, ResourceInfo};
use crate::status::Cause;

/// RFC 1123 label: lower-case alphanumerics and '-', alphanumeric at both ends.
pub fn is_dns_label(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.len() <= 63
        && b[0].is_ascii_alphanumeric()
        && b[b.len() - 1].is_ascii_alphanumeric()
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
}

/// RFC 1123 subdomain: dot-separated labels, at most 253 characters.
pub fn is_dns_subdomain(s: &str) -> bool {
    s.len() <= 253 && s.split('.').all(is_dns_label)
}

/// Validates `metadata.name` for a kind; returns the causes of failure.
pub fn validate_name(rule: NameRule, name: &str, field: &str) -> Vec<Cause> {
    let message = match rule {
        NameRule::Subdomain if !is_dns_subdomain(name) => {
            "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')"
        }
        NameRule::Label if !is_dns_label(name) => {
            "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')"
        }
        NameRule::PathSegment if name == "." || name == ".." => "may not be '.' or '..'",
        NameRule::PathSegment if name.contains('/') || name.contains('%') => {
            "may not contain '/' or '%'"
        }
        _ => return Vec::new(),
    };
    vec![Cause::new(
        "FieldValueInvalid",
        field,
        format!("Invalid value: \"{name}\": {message}"),
    )]
}

/// The current time as Kubernetes writes timestamps (RFC 3339, seconds).
pub fn now_rfc3339() -> String {
    jiff::Timestamp::now()
        .strftime("%Y-%m-%dT%H:%M:%SZ")
        .to_string()
}

/// A name from `generateName`: the prefix plus five random characters.
pub fn generate_name(prefix: &str) -> String {
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    let mut rng = rand::rng();
    let suffix: String = (0..5)
        .map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())] as char)
        .collect();
    let max = 63usize.saturating_sub(5);
    let prefix = if prefix.len() > max {
        &prefix[..max]
    } else {
        prefix
    };
    format!("{prefix}{suffix}")
}

/// `metadata` as a mutable map, created if missing.
pub fn metadata_mut(object: &mut Value) -> &mut Map<String, Value> {
    if !object.get("metadata").is_some_and(Value::is_object) {
        object["metadata"] = Value::Object(Map::new());
    }
    object["metadata"]
        .as_object_mut()
        .expect("metadata was just made an object")
}

/// A string field of `metadata`, empty when absent.
pub fn meta_str<'a>(object: &'a Value, field: &str) -> &'a str {
    object
        .get("metadata")
        .and_then(|m| m.get(field))
        .and_then(Value::as_str)
        .unwrap_or("")
}

/// Checks the shape of `metadata` common to every kind: types of the maps and
/// that labels and annotations are valid.
pub fn validate_metadata(object: &Value) -> Vec<Cause> {
    let mut causes = Vec::new();
    let Some(meta) = object.get("metadata") else {
        return causes;
    };
    if !meta.is_object() {
        causes.push(Cause::new(
            "FieldValueInvalid",
            "metadata",
            "must be an object",
        ));
        return causes;
    }
    for map in ["labels", "annotations"] {
        match meta.get(map) {
            None | Some(Value::Null) => {}
            Some(Value::Object(m)) => {
                for (k, v) in m {
                    let field = format!("metadata.{map}");
                    if !v.is_string() {
                        causes.push(Cause::new(
                            "FieldValueInvalid",
                            format!("{field}.{k}"),
                            "must be a string",
                        ));
                    }
                    if map == "labels" {
                        if !super::selector::is_label_value(v.as_str().unwrap_or("")) {
                            causes.push(Cause::new(
                                "FieldValueInvalid",
                                field.clone(),
                                format!("Invalid value: \"{}\": a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or '12345', regex used for validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')", v.as_str().unwrap_or("")),
                            ));
                        }
                        if k.is_empty()
                            || !k.rsplit('/').next().is_some_and(|n| {
                                !n.is_empty() && super::selector::is_label_value(n)
                            })
                        {
                            causes.push(Cause::new(
                                "FieldValueInvalid",
                                field,
                                format!("Invalid value: \"{k}\": name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character"),
                            ));
                        }
                    }
                }
            }
            Some(_) => causes.push(Cause::new(
                "FieldValueInvalid",
                format!("metadata.{map}"),
                "must be a map of string keys to string values",
            )),
        }
    }
    for list in ["finalizers", "ownerReferences"] {
        if let Some(v) = meta.get(list)
            && !v.is_array()
            && !v.is_null()
        {
            causes.push(Cause::new(
                "FieldValueInvalid",
                format!("metadata.{list}"),
                "must be a list",
            ));
        }
    }
    causes
}

/// Fields of `metadata` that clients may not change after creation.
pub fn carry_over_system_fields(old: &Value, new: &mut Value) {
    let meta = metadata_mut(new);
    for field in [
        "uid",
        "creationTimestamp",
        "deletionTimestamp",
        "deletionGracePeriodSeconds",
    ] {
        match old.get("metadata").and_then(|m| m.get(field)) {
            Some(v) => {
                meta.insert(field.into(), v.clone());
            }
            None => {
                meta.remove(field);
            }
        }
    }
    if let Some(g) = old.pointer("/metadata/generation") {
        meta.insert("generation".into(), g.clone());
    }
}

/// Whether a kind's "spec" (everything but metadata and status) changed.
pub fn spec_changed(old: &Value, new: &Value) -> bool {
    let strip = |v: &Value| -> Map<String, Value> {
        v.as_object()
            .map(|m| {
                m.iter()
                    .filter(|(k, _)| {
                        !matches!(k.as_str(), "metadata" | "status" | "apiVersion" | "kind")
                    })
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect()
            })
            .unwrap_or_default()
    };
    strip(old) != strip(new)
}

/// Sets metadata a create gives an object: uid, creationTimestamp, generation.
pub fn prepare_for_create(info: &ResourceInfo, object: &mut Value) {
    let tracks = info.tracks_generation;
    let meta = metadata_mut(object);
    meta.insert(
        "uid".into(),
        Value::String(uuid::Uuid::new_v4().to_string()),
    );
    meta.insert("creationTimestamp".into(), Value::String(now_rfc3339()));
    meta.remove("deletionTimestamp");
    meta.remove("deletionGracePeriodSeconds");
    meta.remove("resourceVersion");
    meta.remove("selfLink");
    if tracks {
        meta.insert("generation".into(), Value::from(1));
    } else {
        meta.remove("generation");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert!(is_dns_label("a-1"));
        assert!(!is_dns_label("A"));
        assert!(!is_dns_label("-a"));
        assert!(is_dns_subdomain("a.b-c.d"));
        assert!(!is_dns_subdomain("a..b"));
        assert!(validate_name(NameRule::PathSegment, "system:x", "metadata.name").is_empty());
        assert!(!validate_name(NameRule::Label, "a.b", "metadata.name").is_empty());
    }

    #[test]
    fn generated_names_keep_prefix() {
        let n = generate_name("web-");
        assert!(n.starts_with("web-") && n.len() == 9);
    }
}
