//! [`RawJson`]: a JSON document a typed object carries without reading it —
//! a Work's manifests, a member object's reflected status — kept as its
//! text, packed.
//!
//! As a `serde_json::Value` every field and string of such a document is an
//! allocation of its own: a parsed simulated pod takes 6.6 times its JSON
//! (the unified view's `cached_pods_take_little_more_than_their_json`), and
//! the controllers cache every Work. Kept as text it takes its length, and
//! packed against a dictionary of the first documents seen
//! ([`crate::packed`]) a fifth of that; the few places that read it parse
//! it then ([`RawJson::value`]).

use std::borrow::Cow;
use std::fmt;
use std::sync::LazyLock;

use bytes::Bytes;
use serde::de::Error as _;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::Value;

use crate::packed::{Json, Packer};

/// The process's packer of raw documents: its dictionary is the first
/// documents seen (a Work's manifests, in a controller manager).
static PACKER: LazyLock<Packer> = LazyLock::new(Packer::default);

/// A JSON document kept as its (compact) text, packed once the process has
/// seen enough documents to pack against.
///
/// It reads and writes as the document in any format (JSON, YAML), streamed
/// between the format and its JSON text (`serde_transcode`) without a
/// `Value` in between.
#[derive(Clone)]
pub struct RawJson(Json);

impl RawJson {
    /// The document whose JSON text this is (written by serde_json).
    fn from_text(text: String) -> RawJson {
        RawJson(PACKER.pack(Bytes::from(text.into_bytes().into_boxed_slice())))
    }

    /// The document, parsed.
    pub fn value(&self) -> Value {
        // serde_json wrote the text: it is JSON
        serde_json::from_slice(&self.0.bytes()).unwrap_or(Value::Null)
    }

    /// The document's text.
    pub fn text(&self) -> Cow<'_, str> {
        match &self.0 {
            Json::Plain(b) => std::str::from_utf8(b).map_or(Cow::Borrowed("null"), Cow::Borrowed),
            Json::Packed(_) => String::from_utf8(Vec::from(self.0.bytes()))
                .map_or(Cow::Borrowed("null"), Cow::Owned),
        }
    }
}

impl From<&Value> for RawJson {
    fn from(v: &Value) -> RawJson {
        RawJson::from_text(v.to_string())
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
        RawJson(Json::Plain(Bytes::from_static(b"null")))
    }
}

/// Equal as JSON documents: the same text, or the same value with the
/// fields of its objects in any order (as `Value`s compare).
impl PartialEq for RawJson {
    fn eq(&self, other: &RawJson) -> bool {
        self.0 == other.0 || self.value() == other.value()
    }
}

impl PartialEq<Value> for RawJson {
    fn eq(&self, other: &Value) -> bool {
        self.value() == *other
    }
}

impl fmt::Debug for RawJson {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text())
    }
}

impl Serialize for RawJson {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let text = self.text();
        let mut text = serde_json::Deserializer::from_str(&text);
        serde_transcode::transcode(&mut text, s)
    }
}

impl<'de> Deserialize<'de> for RawJson {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<RawJson, D::Error> {
        let mut out = Vec::with_capacity(512);
        serde_transcode::transcode(d, &mut serde_json::Serializer::new(&mut out))
            .map_err(D::Error::custom)?;
        String::from_utf8(out)
            .map(RawJson::from_text)
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
        assert_eq!(raw.text(), serde_json::to_string(&doc).expect("json"));
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
            from_yaml.manifests[0].text(),
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
    fn large_documents_are_kept_packed_and_read_back_whole() {
        let doc = |i: usize| {
            json!({"apiVersion": "apps/v1", "kind": "Deployment",
                "metadata": {"name": format!("web-{i}"), "namespace": "shop",
                    "labels": {"app": "web", "tier": "frontend"}},
                "spec": {"replicas": i, "selector": {"matchLabels": {"app": "web"}},
                    "template": {"metadata": {"labels": {"app": "web"}},
                        "spec": {"containers": [{"name": "nginx", "image": "nginx:1.27",
                            "ports": [{"containerPort": 80}]}]}}}})
        };
        // enough documents to complete the dictionary, whatever came before
        let raws: Vec<RawJson> = (0..40).map(|i| RawJson::from(doc(i))).collect();
        let last = raws.last().expect("documents");
        assert!(last.0.is_packed());
        assert!(
            last.0.held() < last.0.len() / 2,
            "{} of {}",
            last.0.held(),
            last.0.len()
        );
        for (i, raw) in raws.iter().enumerate() {
            assert_eq!(raw.value(), doc(i));
            assert_eq!(raw.text(), doc(i).to_string());
            assert_eq!(serde_json::to_value(raw).expect("value"), doc(i));
        }
        assert_eq!(raws[3], RawJson::from(doc(3)));
        assert_ne!(raws[3], raws[4]);
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
