//! [`RawJson`]: a JSON document a typed object carries without reading it —
//! a Work's manifests, a member object's reflected status — kept as its
//! text.
//!
//! As a `serde_json::Value` every field and string of such a document is an
//! allocation of its own: a parsed simulated pod takes 6.6 times its JSON
//! (the unified view's `cached_pods_take_little_more_than_their_json`), and
//! the controllers cache every Work. Kept as text it
//! takes its length; the few places that read it parse it then
//! ([`RawJson::value`]).

use std::fmt;

use serde::de::Error as _;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::Value;

/// A JSON document kept as its (compact) text.
///
/// It reads and writes as the document in any format (JSON, YAML), streamed
/// between the format and its JSON text (`serde_transcode`) without a
/// `Value` in between.
#[derive(Clone)]
pub struct RawJson(Box<str>);

impl RawJson {
    /// The document, parsed.
    pub fn value(&self) -> Value {
        // serde_json wrote the text: it is JSON
        serde_json::from_str(&self.0).unwrap_or(Value::Null)
    }

    /// The document's text.
    pub fn get(&self) -> &str {
        &self.0
    }
}

impl From<&Value> for RawJson {
    fn from(v: &Value) -> RawJson {
        RawJson(v.to_string().into_boxed_str())
    }
}

impl From<Value> for RawJson {
    fn from(v: Value) -> RawJson {
        RawJson::from(&v)
    }
}

impl Default for RawJson {
    /// `null`.
    fn default() -> RawJson {
        RawJson(Box::from("null"))
    }
}

/// Equal as JSON documents: the same text, or the same value with the
/// fields of its objects in any order (as `Value`s compare).
impl PartialEq for RawJson {
    fn eq(&self, other: &RawJson) -> bool {
        self.get() == other.get() || self.value() == other.value()
    }
}

impl PartialEq<Value> for RawJson {
    fn eq(&self, other: &Value) -> bool {
        self.value() == *other
    }
}

impl fmt::Debug for RawJson {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.get())
    }
}

impl Serialize for RawJson {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut text = serde_json::Deserializer::from_str(&self.0);
        serde_transcode::transcode(&mut text, s)
    }
}

impl<'de> Deserialize<'de> for RawJson {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<RawJson, D::Error> {
        let mut out = Vec::with_capacity(512);
        serde_transcode::transcode(d, &mut serde_json::Serializer::new(&mut out))
            .map_err(D::Error::custom)?;
        String::from_utf8(out)
            .map(|s| RawJson(s.into_boxed_str()))
            .map_err(D::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn keeps_a_document_and_gives_it_back() {
        let doc = json!({"kind": "Deployment", "spec": {"replicas": 2, "paused": false}});
        let raw = RawJson::from(&doc);
        assert_eq!(raw.value(), doc);
        assert_eq!(raw.get(), serde_json::to_string(&doc).expect("json"));
        // Inside a typed object, it reads and writes as the document itself.
        #[derive(Serialize, Deserialize)]
        struct Holder {
            manifests: Vec<RawJson>,
        }
        let text = r#"{"manifests":[{"b":1,"a":[true,null]},"x"]}"#;
        let h: Holder = serde_json::from_str(text).expect("holder");
        assert_eq!(h.manifests[0].value(), json!({"b": 1, "a": [true, null]}));
        assert_eq!(serde_json::to_string(&h).expect("json"), text);
        // ... and through Values and YAML.
        let yaml = "manifests:\n- kind: Job\n  spec: {parallelism: 2}\n";
        let from_yaml: Holder = serde_saphyr::from_str(yaml).expect("yaml");
        assert_eq!(
            from_yaml.manifests[0].get(),
            r#"{"kind":"Job","spec":{"parallelism":2}}"#
        );
        let back_to_yaml = serde_saphyr::to_string(&from_yaml).expect("to yaml");
        assert!(back_to_yaml.contains("kind: Job"), "{back_to_yaml}");
        assert!(back_to_yaml.contains("parallelism: 2"), "{back_to_yaml}");
        let v = serde_json::to_value(&h).expect("value");
        assert_eq!(v, serde_json::from_str::<Value>(text).expect("value"));
        let back: Holder = serde_json::from_value(v).expect("from value");
        assert_eq!(back.manifests[1].value(), json!("x"));
    }

    #[test]
    fn equal_as_documents() {
        let a: RawJson = serde_json::from_str(r#"{"a":1,"b":{"c":2}}"#).expect("a");
        let b: RawJson = serde_json::from_str(r#"{"b":{"c":2},"a":1}"#).expect("b");
        let c: RawJson = serde_json::from_str(r#"{"a":1,"b":{"c":3}}"#).expect("c");
        assert_eq!(a, b);
        assert_ne!(a, c);
        assert_eq!(a, json!({"a": 1, "b": {"c": 2}}));
    }
}
