//! [`CompactObject`]: an object of any kind, as a reflector cache keeps it
//! when the controllers read it seldom — its JSON text, parsed on demand,
//! and its metadata.
//!
//! A `DynamicObject` holds the object as a `serde_json::Value`, in which
//! every field and string is its own allocation: the 2,000 member
//! Deployments of a 100-member benchmark took 25 MB that way (heaptrack),
//! about 12 KB each. The work status controller
//! keeps every member object of every Work in such caches (2,000 at 100
//! members and 1,000 templates), the detector every resource template, and
//! both parse the object they reconcile anyway; so they keep the text
//! instead, without `managedFields` (see [`crate::shared_cache::strip`]),
//! and the spec hash their watches filter with, computed while parsing.

use std::borrow::Cow;
use std::sync::Arc;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::Resource;
use kube::api::ApiResource;
use kube::core::DynamicResourceScope;
use serde::de::Error as _;
use serde::{Deserialize, Deserializer};
use serde_json::Value;

/// An object kept as its JSON (without `metadata.managedFields`) and its
/// metadata; see the module docs.
#[derive(Clone, Debug)]
pub struct CompactObject {
    /// The object's metadata, without `managedFields`.
    pub metadata: ObjectMeta,
    /// The object's JSON, without `metadata.managedFields`.
    json: Arc<str>,
    /// [`crate::propagation::spec_hash`] of the object, computed while it
    /// was parsed.
    spec_hash: u64,
}

impl CompactObject {
    /// The object from `value` (its `managedFields` left out).
    pub fn new(mut value: Value) -> serde_json::Result<CompactObject> {
        if let Some(m) = value.get_mut("metadata").and_then(Value::as_object_mut) {
            m.shift_remove("managedFields");
        }
        let metadata = match value.get("metadata") {
            Some(m) => ObjectMeta::deserialize(m)?,
            None => ObjectMeta::default(),
        };
        let json = Arc::from(serde_json::to_string(&value)?);
        Ok(CompactObject {
            metadata,
            json,
            spec_hash: crate::propagation::value_spec_hash(value),
        })
    }

    /// The object, parsed.
    pub fn value(&self) -> serde_json::Result<Value> {
        serde_json::from_str(&self.json)
    }

    /// The object's JSON.
    pub fn json(&self) -> &str {
        &self.json
    }

    /// [`crate::propagation::spec_hash`] of the object: it changes with
    /// anything but the status, `resourceVersion` and `managedFields`.
    pub fn spec_hash(&self) -> Option<u64> {
        Some(self.spec_hash)
    }
}

impl<'de> Deserialize<'de> for CompactObject {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        CompactObject::new(Value::deserialize(d)?).map_err(D::Error::custom)
    }
}

impl Resource for CompactObject {
    type DynamicType = ApiResource;
    type Scope = DynamicResourceScope;

    fn group(dt: &ApiResource) -> Cow<'_, str> {
        dt.group.as_str().into()
    }

    fn version(dt: &ApiResource) -> Cow<'_, str> {
        dt.version.as_str().into()
    }

    fn kind(dt: &ApiResource) -> Cow<'_, str> {
        dt.kind.as_str().into()
    }

    fn api_version(dt: &ApiResource) -> Cow<'_, str> {
        dt.api_version.as_str().into()
    }

    fn plural(dt: &ApiResource) -> Cow<'_, str> {
        dt.plural.as_str().into()
    }

    fn meta(&self) -> &ObjectMeta {
        &self.metadata
    }

    fn meta_mut(&mut self) -> &mut ObjectMeta {
        &mut self.metadata
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kube::ResourceExt;
    use serde_json::json;

    #[test]
    fn keeps_the_object_but_its_managed_fields() {
        let deployment = json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "web", "namespace": "shop", "resourceVersion": "7",
                "labels": {"app": "web"},
                "managedFields": [{"manager": "kubectl", "operation": "Update"}],
                "annotations": {"work.karmada.io/name": "web-687d"}},
            "spec": {"replicas": 2},
            "status": {"readyReplicas": 2}
        });
        let o: CompactObject = serde_json::from_value(deployment.clone()).expect("object");
        assert_eq!(o.name_any(), "web");
        assert_eq!(o.namespace().as_deref(), Some("shop"));
        assert_eq!(o.resource_version().as_deref(), Some("7"));
        assert_eq!(o.annotations()["work.karmada.io/name"], "web-687d");
        assert!(o.metadata.managed_fields.is_none());
        let mut want = deployment;
        want["metadata"]
            .as_object_mut()
            .expect("metadata")
            .shift_remove("managedFields");
        assert_eq!(o.value().expect("parsed"), want);
        // The fields keep their order.
        assert_eq!(o.json(), serde_json::to_string(&want).expect("json"));
        // Its spec hash is the one of the whole object: a status or
        // resourceVersion change leaves it, a label change moves it.
        assert_eq!(o.spec_hash(), crate::propagation::spec_hash(&want));
        let mut status_only = want.clone();
        status_only["status"]["readyReplicas"] = json!(1);
        status_only["metadata"]["resourceVersion"] = json!("8");
        let moved = CompactObject::new(status_only).expect("object");
        assert_eq!(moved.spec_hash(), o.spec_hash());
        let mut labelled = want.clone();
        labelled["metadata"]["labels"]["tier"] = json!("web");
        assert_ne!(
            CompactObject::new(labelled).expect("object").spec_hash(),
            o.spec_hash()
        );
    }

    #[test]
    fn a_watch_event_decodes_into_it() {
        let line = r#"{"type":"MODIFIED","object":{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"c","resourceVersion":"9"},"data":{"k":"v"}}}"#;
        let ev: kube::api::WatchEvent<CompactObject> = serde_json::from_str(line).expect("event");
        let kube::api::WatchEvent::Modified(o) = ev else {
            panic!("not MODIFIED");
        };
        assert_eq!(o.value().expect("parsed")["data"]["k"], "v");
    }
}
