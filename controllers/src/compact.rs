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
//! The text is kept packed against a dictionary of the first objects of the
//! same `apiVersion/kind` (`flotilla_api::packed`), a fifth of its size or
//! less, and the work status controller trims the metadata to what it reads
//! ([`CompactObject::trim_metadata`]).

use std::borrow::Cow;
use std::sync::LazyLock;

use bytes::Bytes;
use flotilla_api::packed::{Json, Packers};

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::Resource;
use kube::api::ApiResource;
use kube::core::DynamicResourceScope;
use serde::de::Error as _;
use serde::{Deserialize, Deserializer};
use serde_json::Value;

/// One packer per `apiVersion/kind` of the objects of the process's caches.
static PACKERS: LazyLock<Packers> = LazyLock::new(Packers::default);

/// An object kept as its JSON (without `metadata.managedFields`) and its
/// metadata; see the module docs.
#[derive(Clone, Debug)]
pub struct CompactObject {
    /// The object's metadata, without `managedFields`.
    pub metadata: ObjectMeta,
    /// The object's JSON, without `metadata.managedFields`, packed
    /// ([`flotilla_api::packed`]) against the first objects of its kind.
    json: Json,
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
        let kind = format!(
            "{}/{}",
            value["apiVersion"].as_str().unwrap_or_default(),
            value["kind"].as_str().unwrap_or_default()
        );
        let text = serde_json::to_vec(&value)?.into_boxed_slice();
        let json = PACKERS.get(&kind).pack(Bytes::from(text));
        Ok(CompactObject {
            metadata,
            json,
            spec_hash: crate::propagation::value_spec_hash(value),
        })
    }

    /// Drops the metadata its reader does not look at (the JSON keeps all
    /// of it): everything but the name, namespace, uid, resourceVersion,
    /// generation, deletion timestamp and the annotations named in `keep`.
    /// The work status controller keeps 2,000 member objects at 100 members
    /// and 1,000 templates, and reads only their JSON: their labels and
    /// annotations took about 5 MiB of its cache (heaptrack).
    pub fn trim_metadata(&mut self, keep: &[&str]) {
        let m = std::mem::take(&mut self.metadata);
        let annotations: std::collections::BTreeMap<String, String> = m
            .annotations
            .into_iter()
            .flatten()
            .filter(|(k, _)| keep.contains(&k.as_str()))
            .collect();
        self.metadata = ObjectMeta {
            name: m.name,
            namespace: m.namespace,
            uid: m.uid,
            resource_version: m.resource_version,
            generation: m.generation,
            deletion_timestamp: m.deletion_timestamp,
            annotations: (!annotations.is_empty()).then_some(annotations),
            ..ObjectMeta::default()
        };
    }

    /// The object, parsed.
    pub fn value(&self) -> serde_json::Result<Value> {
        serde_json::from_slice(&self.json.bytes())
    }

    /// The object's JSON.
    pub fn json(&self) -> Bytes {
        self.json.bytes()
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
        assert_eq!(
            &o.json()[..],
            serde_json::to_string(&want).expect("json").as_bytes()
        );
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
    fn trimmed_metadata_keeps_identity_and_the_named_annotations() {
        let mut o = CompactObject::new(json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "web", "namespace": "shop", "resourceVersion": "7",
                "uid": "u-1", "generation": 3,
                "labels": {"app": "web"},
                "annotations": {"work.karmada.io/name": "web-687d", "other": "x"}},
            "spec": {"replicas": 2}
        }))
        .expect("object");
        let json = o.json();
        let hash = o.spec_hash();
        o.trim_metadata(&["work.karmada.io/name"]);
        assert_eq!(o.name_any(), "web");
        assert_eq!(o.namespace().as_deref(), Some("shop"));
        assert_eq!(o.resource_version().as_deref(), Some("7"));
        assert_eq!(o.uid().as_deref(), Some("u-1"));
        assert_eq!(o.metadata.generation, Some(3));
        assert!(o.labels().is_empty());
        assert_eq!(o.annotations().len(), 1);
        assert_eq!(o.annotations()["work.karmada.io/name"], "web-687d");
        // the JSON and its hash are the whole object still
        assert_eq!(o.json(), json);
        assert_eq!(o.spec_hash(), hash);
        assert_eq!(
            o.value().expect("parsed")["metadata"]["labels"]["app"],
            "web"
        );
        o.trim_metadata(&[]);
        assert!(o.metadata.annotations.is_none());
    }

    #[test]
    fn objects_are_kept_packed_once_their_kind_has_a_dictionary() {
        let object = |i: usize| {
            json!({"apiVersion": "test.flotilla.dev/v1", "kind": "Packed",
                "metadata": {"name": format!("o-{i}"), "namespace": "shop",
                    "labels": {"app": "web", "tier": "frontend"},
                    "annotations": {"work.karmada.io/name": format!("o-{i}-687d")}},
                "spec": {"replicas": i, "template": {"spec": {"containers": [
                    {"name": "nginx", "image": "nginx:1.27", "ports": [{"containerPort": 80}]}]}}}})
        };
        let objects: Vec<CompactObject> = (0..40)
            .map(|i| CompactObject::new(object(i)).expect("object"))
            .collect();
        let last = objects.last().expect("objects");
        assert!(last.json.is_packed());
        assert!(last.json.held() < last.json.len() / 2);
        for (i, o) in objects.iter().enumerate() {
            assert_eq!(o.value().expect("parsed"), object(i));
            assert_eq!(o.spec_hash(), crate::propagation::spec_hash(&object(i)));
        }
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
