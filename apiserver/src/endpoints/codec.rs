//! Request bodies in (JSON, YAML, Kubernetes protobuf; with or without a
//! Content-Type) and response representations out (JSON, YAML, Table,
//! PartialObjectMetadata), chosen from the Accept header.

use serde_json::Value;

use crate::status::ApiError;

/// Largest request body accepted (kube-apiserver's limit is 3 MiB).
pub const MAX_BODY: usize = 3 * 1024 * 1024;

/// The media types a request body may have.
pub const ACCEPTED_BODY_TYPES: [&str; 3] = [
    "application/json",
    "application/yaml",
    "application/vnd.kubernetes.protobuf",
];

/// The media type without parameters, lower-cased.
pub fn media_type(content_type: Option<&str>) -> Option<String> {
    content_type
        .map(|ct| {
            ct.split(';')
                .next()
                .unwrap_or("")
                .trim()
                .to_ascii_lowercase()
        })
        .filter(|ct| !ct.is_empty())
}

/// Decodes a JSON or YAML document into an object.
pub fn decode_text(body: &[u8]) -> Result<Value, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(ApiError::bad_request(
            "the request body is empty; an object is required",
        ));
    }
    match serde_json::from_slice::<Value>(body) {
        Ok(v) => Ok(v),
        Err(json_err) => {
            let looks_like_json = body
                .iter()
                .find(|b| !b.is_ascii_whitespace())
                .is_some_and(|b| *b == b'{' || *b == b'[');
            if looks_like_json {
                return Err(ApiError::bad_request(format!(
                    "the request body is not valid JSON: {json_err}"
                )));
            }
            decode_yaml(body)
        }
    }
}

/// Decodes a YAML document.
pub fn decode_yaml(body: &[u8]) -> Result<Value, ApiError> {
    let text = std::str::from_utf8(body)
        .map_err(|_| ApiError::bad_request("the request body is not valid UTF-8"))?;
    serde_saphyr::from_str::<Value>(text)
        .map_err(|e| ApiError::bad_request(format!("the request body is not valid YAML: {e}")))
}

/// Decodes a create/update body according to its Content-Type.
pub fn decode_object(content_type: Option<&str>, body: &[u8]) -> Result<Value, ApiError> {
    let value = match media_type(content_type).as_deref() {
        None
        | Some("application/json")
        | Some("application/yaml")
        | Some("application/x-yaml")
        | Some("text/yaml") => decode_text(body)?,
        Some("application/vnd.kubernetes.protobuf") => crate::endpoints::protobuf::decode(body)
            .map_err(|e| ApiError::bad_request(format!("unable to decode protobuf body: {e}")))?,
        Some(_) => return Err(ApiError::unsupported_media_type(&ACCEPTED_BODY_TYPES)),
    };
    if !value.is_object() {
        return Err(ApiError::bad_request(format!(
            "the request body must be an object, found {}",
            match value {
                Value::Array(_) => "a list",
                Value::String(_) => "a string",
                Value::Number(_) => "a number",
                Value::Bool(_) => "a boolean",
                _ => "null",
            }
        )));
    }
    Ok(value)
}

/// The representation a client asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Output {
    Json,
    Yaml,
    Table,
    /// `PartialObjectMetadata` / `PartialObjectMetadataList`.
    Metadata,
}

/// Picks the first representation of `accept` this server can produce.
pub fn negotiate(accept: Option<&str>) -> Result<Output, ApiError> {
    let Some(accept) = accept.filter(|a| !a.trim().is_empty()) else {
        return Ok(Output::Json);
    };
    for range in accept.split(',') {
        let mut parts = range.split(';').map(str::trim);
        let media = parts.next().unwrap_or("").to_ascii_lowercase();
        let params: Vec<(String, String)> = parts
            .filter_map(|p| {
                p.split_once('=')
                    .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
            })
            .collect();
        let param = |k: &str| {
            params
                .iter()
                .find(|(pk, _)| pk == k)
                .map(|(_, v)| v.as_str())
        };
        let json_like = matches!(media.as_str(), "application/json" | "*/*" | "application/*");
        match param("as") {
            Some("Table")
                if json_like
                    && param("g") == Some("meta.k8s.io")
                    && matches!(param("v"), Some("v1" | "v1beta1")) =>
            {
                return Ok(Output::Table);
            }
            Some("PartialObjectMetadata" | "PartialObjectMetadataList")
                if json_like && param("g") == Some("meta.k8s.io") =>
            {
                return Ok(Output::Metadata);
            }
            Some(_) => continue,
            None => {}
        }
        if json_like {
            return Ok(Output::Json);
        }
        if media == "application/yaml" {
            return Ok(Output::Yaml);
        }
    }
    Err(ApiError::not_acceptable(&[
        "application/json",
        "application/yaml",
    ]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accept_headers() {
        let table = "application/json;as=Table;v=v1;g=meta.k8s.io,application/json;as=Table;v=v1beta1;g=meta.k8s.io,application/json";
        assert_eq!(negotiate(Some(table)).ok(), Some(Output::Table));
        assert_eq!(
            negotiate(Some("application/vnd.kubernetes.protobuf,application/json")).ok(),
            Some(Output::Json)
        );
        assert_eq!(negotiate(None).ok(), Some(Output::Json));
        assert_eq!(negotiate(Some("application/yaml")).ok(), Some(Output::Yaml));
        assert_eq!(
            negotiate(Some(
                "application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1"
            ))
            .ok(),
            Some(Output::Metadata)
        );
        assert_eq!(negotiate(Some("text/html")).map_err(|e| e.code), Err(406));
    }

    #[test]
    fn bodies() {
        assert!(decode_object(None, b"{\"a\":1}").is_ok());
        assert_eq!(
            decode_object(None, b"kind: ConfigMap\nmetadata:\n  name: x\n").expect("yaml")["kind"],
            "ConfigMap"
        );
        assert_eq!(
            decode_object(Some("application/json"), b"{bad").map_err(|e| e.code),
            Err(400)
        );
        assert_eq!(
            decode_object(Some("text/plain"), b"{}").map_err(|e| e.code),
            Err(415)
        );
        assert_eq!(decode_object(None, b"[1]").map_err(|e| e.code), Err(400));
        assert_eq!(decode_object(None, b"  ").map_err(|e| e.code), Err(400));
    }
}

/// The dotted paths of keys that appear twice in the same JSON object of `body`
/// (`fieldValidation` reports them; a plain parse keeps the last value silently).
pub fn duplicate_fields(body: &[u8]) -> Vec<String> {
    use serde::de::{DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};

    struct Walk<'a> {
        path: String,
        found: &'a mut Vec<String>,
    }

    impl<'de> DeserializeSeed<'de> for Walk<'_> {
        type Value = ();
        fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
            d.deserialize_any(self)
        }
    }

    impl<'de> Visitor<'de> for Walk<'_> {
        type Value = ();
        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("any JSON value")
        }
        fn visit_bool<E>(self, _: bool) -> Result<(), E> {
            Ok(())
        }
        fn visit_i64<E>(self, _: i64) -> Result<(), E> {
            Ok(())
        }
        fn visit_u64<E>(self, _: u64) -> Result<(), E> {
            Ok(())
        }
        fn visit_f64<E>(self, _: f64) -> Result<(), E> {
            Ok(())
        }
        fn visit_str<E>(self, _: &str) -> Result<(), E> {
            Ok(())
        }
        fn visit_unit<E>(self) -> Result<(), E> {
            Ok(())
        }
        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
            let mut i = 0;
            while seq
                .next_element_seed(Walk {
                    path: format!("{}[{i}]", self.path),
                    found: self.found,
                })?
                .is_some()
            {
                i += 1;
            }
            Ok(())
        }
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
            let mut seen = std::collections::HashSet::new();
            while let Some(key) = map.next_key::<String>()? {
                let path = if self.path.is_empty() {
                    key.clone()
                } else {
                    format!("{}.{key}", self.path)
                };
                if !seen.insert(key) {
                    self.found.push(path.clone());
                }
                map.next_value_seed(Walk {
                    path,
                    found: self.found,
                })?;
            }
            Ok(())
        }
    }

    let mut found = Vec::new();
    let mut de = serde_json::Deserializer::from_slice(body);
    let _ = Walk {
        path: String::new(),
        found: &mut found,
    }
    .deserialize(&mut de);
    found
}

#[cfg(test)]
mod duplicate_tests {
    #[test]
    fn duplicate_keys_are_found_with_paths() {
        let found = super::duplicate_fields(
            br#"{"data":{"a":"1"},"spec":{"x":[{"n":1,"n":2}]},"data":{}}"#,
        );
        assert_eq!(found, vec!["spec.x[0].n", "data"]);
        assert!(super::duplicate_fields(br#"{"a":1,"b":{"a":2}}"#).is_empty());
    }
}
