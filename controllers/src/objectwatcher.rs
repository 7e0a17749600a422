//! Applying a Work's manifest to a member cluster, shared by the execution
//! and work-status controllers (Karmada's `objectwatcher`): create when
//! absent; take over an existing object only when it is already managed or
//! the manifest says `work.karmada.io/conflict-resolution: overwrite`;
//! update with the member-side fields retained ([`retain`]) and only when
//! the member differs from what we want ([`needs_update`]); delete only what
//! we manage.

use std::collections::BTreeSet;

use flotilla_api::work::{CONFLICT_RESOLUTION_ANNOTATION, MANAGED_LABEL};
use kube::Client;
use kube::api::{DeleteParams, DynamicObject, Patch, PatchParams, PostParams};
use serde_json::{Map, Value, json};

use crate::propagation::{Resolver, is_not_found, manifest_key, str_at};

/// Annotation listing the label keys the manifest manages.
pub const MANAGED_LABELS_ANNOTATION: &str = "resourcetemplate.karmada.io/managed-labels";
/// Annotation listing the annotation keys the manifest manages.
pub const MANAGED_ANNOTATIONS_ANNOTATION: &str = "resourcetemplate.karmada.io/managed-annotations";
/// Label asking members to keep their own replica counts (set on HPA targets).
pub const RETAIN_REPLICAS_LABEL: &str = "resourcetemplate.karmada.io/retain-replicas";

/// Why a manifest could not be applied.
#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    /// The member API refused or failed.
    #[error("{0}")]
    Kube(#[from] kube::Error),
    /// An object not managed by us exists and the manifest does not say overwrite.
    #[error(
        "{kind} {key} already exists in the member cluster and is not managed by Karmada; \
         the work.karmada.io/conflict-resolution strategy is {strategy:?} (set it to \"overwrite\", \
         or conflictResolution: Overwrite in the policy, to take it over)"
    )]
    Conflict {
        /// Kind of the object.
        kind: String,
        /// `namespace/name` or `name`.
        key: String,
        /// The manifest's conflict-resolution annotation.
        strategy: String,
    },
    /// The manifest lacks apiVersion, kind or name.
    #[error("invalid manifest: {0}")]
    Invalid(String),
}

impl From<crate::Error> for ApplyError {
    fn from(e: crate::Error) -> Self {
        match e {
            crate::Error::Kube(k) => ApplyError::Kube(k),
            other => ApplyError::Invalid(other.to_string()),
        }
    }
}

/// What [`apply`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Applied {
    /// The object was created.
    Created,
    /// The object was updated (it differed from the manifest).
    Updated,
    /// The object already matched.
    Unchanged,
}

/// Applies `manifest` to the member `cluster` through `member`.
pub async fn apply(
    member: &Client,
    resolver: &Resolver,
    cluster: &str,
    manifest: &Value,
) -> Result<Applied, ApplyError> {
    let (api_version, kind, namespace, name) = manifest_key(manifest);
    if api_version.is_empty() || kind.is_empty() || name.is_empty() {
        return Err(ApplyError::Invalid(
            "apiVersion, kind and metadata.name are required".into(),
        ));
    }
    let resolved = resolver
        .resolve(cluster, member, &api_version, &kind)
        .await?;
    let api = resolved.api(member.clone(), &namespace);
    let existing = match api.get_opt(&name).await {
        Ok(e) => e,
        Err(e) => {
            if is_not_found(&e) {
                resolver.forget(cluster, &api_version, &kind);
            }
            return Err(e.into());
        }
    };
    let Some(existing) = existing else {
        let obj: DynamicObject = serde_json::from_value(manifest.clone())
            .map_err(|e| ApplyError::Invalid(e.to_string()))?;
        let created = api.create(&PostParams::default(), &obj).await;
        METRICS.count(&METRICS.create, &created, &api_version, &kind, cluster);
        return match created {
            Ok(_) => Ok(Applied::Created),
            Err(e) if crate::propagation::is_conflict(&e) => {
                // created concurrently: the next pass compares and updates
                Ok(Applied::Unchanged)
            }
            Err(e) => Err(e.into()),
        };
    };
    let observed =
        serde_json::to_value(&existing).map_err(|e| ApplyError::Invalid(e.to_string()))?;
    if !is_managed(&observed) && !overwrite_allowed(manifest) {
        return Err(ApplyError::Conflict {
            kind,
            key: if namespace.is_empty() {
                name
            } else {
                format!("{namespace}/{name}")
            },
            strategy: str_at(
                manifest,
                &format!(
                    "/metadata/annotations/{}",
                    CONFLICT_RESOLUTION_ANNOTATION.replace('/', "~1")
                ),
            )
            .to_string(),
        });
    }
    let desired = retain(manifest, &observed);
    if !needs_update(&desired, &observed) {
        return Ok(Applied::Unchanged);
    }
    let obj: DynamicObject =
        serde_json::from_value(desired).map_err(|e| ApplyError::Invalid(e.to_string()))?;
    let updated = api.replace(&name, &PostParams::default(), &obj).await;
    METRICS.count(&METRICS.update, &updated, &api_version, &kind, cluster);
    updated?;
    Ok(Applied::Updated)
}

/// Deletes the member object of `manifest` if we manage it; with
/// `preserve`, keeps it and strips the Karmada labels and annotations instead.
/// A missing object is success.
pub async fn remove(
    member: &Client,
    resolver: &Resolver,
    cluster: &str,
    manifest: &Value,
    preserve: bool,
) -> Result<(), ApplyError> {
    let (api_version, kind, namespace, name) = manifest_key(manifest);
    let resolved = match resolver.resolve(cluster, member, &api_version, &kind).await {
        Ok(r) => r,
        // the kind is not served there any more: nothing to delete
        Err(crate::Error::Kube(e)) if is_not_found(&e) => return Ok(()),
        Err(crate::Error::Kube(e)) => return Err(e.into()),
        Err(e) => return Err(ApplyError::Invalid(e.to_string())),
    };
    let api = resolved.api(member.clone(), &namespace);
    let Some(existing) = api.get_opt(&name).await? else {
        return Ok(());
    };
    let observed =
        serde_json::to_value(&existing).map_err(|e| ApplyError::Invalid(e.to_string()))?;
    if !is_managed(&observed) {
        return Ok(());
    }
    if preserve {
        let patch = strip_patch(&observed);
        api.patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
            .await?;
        return Ok(());
    }
    let deleted = api.delete(&name, &DeleteParams::background()).await;
    METRICS.count(&METRICS.delete, &deleted, &api_version, &kind, cluster);
    match deleted {
        Ok(_) => Ok(()),
        Err(e) if is_not_found(&e) => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// Karmada's member-write counters, by result, apiversion, kind and member cluster.
struct WriteMetrics {
    create: prometheus::IntCounterVec,
    update: prometheus::IntCounterVec,
    delete: prometheus::IntCounterVec,
}

static METRICS: std::sync::LazyLock<WriteMetrics> = std::sync::LazyLock::new(|| {
    let labels = &["result", "apiversion", "kind", "member_cluster"];
    WriteMetrics {
        create: crate::metrics::counter_vec(
            "create_resource_to_cluster_total",
            "Number of resources created in member clusters.",
            labels,
        ),
        update: crate::metrics::counter_vec(
            "update_resource_to_cluster_total",
            "Number of resources updated in member clusters.",
            labels,
        ),
        delete: crate::metrics::counter_vec(
            "delete_resource_from_cluster_total",
            "Number of resources deleted from member clusters.",
            labels,
        ),
    }
});

impl WriteMetrics {
    fn count<T>(
        &self,
        family: &prometheus::IntCounterVec,
        outcome: &Result<T, kube::Error>,
        api_version: &str,
        kind: &str,
        cluster: &str,
    ) {
        family
            .with_label_values(&[
                crate::metrics::result(outcome.is_ok()),
                api_version,
                kind,
                cluster,
            ])
            .inc();
    }
}

/// Whether the member object carries `karmada.io/managed: "true"`.
pub fn is_managed(observed: &Value) -> bool {
    observed
        .pointer("/metadata/labels")
        .and_then(|l| l.get(MANAGED_LABEL))
        .and_then(Value::as_str)
        == Some("true")
}

fn overwrite_allowed(manifest: &Value) -> bool {
    manifest
        .pointer("/metadata/annotations")
        .and_then(|a| a.get(CONFLICT_RESOLUTION_ANNOTATION))
        .and_then(Value::as_str)
        == Some("overwrite")
}

/// A merge patch removing every label and annotation Karmada put on a member
/// object (its managed lists and the claim keys), for preserved objects.
fn strip_patch(observed: &Value) -> Value {
    let karmada_key = |k: &str| k == MANAGED_LABEL || k.contains("karmada.io/");
    let nulls = |field: &str| -> Map<String, Value> {
        observed
            .pointer(&format!("/metadata/{field}"))
            .and_then(Value::as_object)
            .map(|m| {
                m.keys()
                    .filter(|k| karmada_key(k))
                    .map(|k| (k.clone(), Value::Null))
                    .collect()
            })
            .unwrap_or_default()
    };
    json!({"metadata": {"labels": nulls("labels"), "annotations": nulls("annotations")}})
}

fn managed_set(observed: &Value, annotation: &str) -> BTreeSet<String> {
    observed
        .pointer("/metadata/annotations")
        .and_then(|a| a.get(annotation))
        .and_then(Value::as_str)
        .map(|s| {
            s.split(',')
                .filter(|k| !k.is_empty())
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default()
}

/// The object to write over `observed`: the manifest, with the member's
/// resourceVersion, finalizers and ownerReferences, the member's own labels
/// and annotations (those we never managed), and the fields each kind keeps
/// on the member side (Karmada's Retain interpreter: Service cluster IPs and
/// node ports, Pod node name, Job selector, PVC volume name, ServiceAccount
/// secrets, replicas of a `retain-replicas` template).
pub fn retain(manifest: &Value, observed: &Value) -> Value {
    let mut desired = manifest.clone();
    let Some(meta) = desired.get_mut("metadata").and_then(Value::as_object_mut) else {
        return desired;
    };
    for field in ["resourceVersion", "finalizers", "ownerReferences"] {
        if let Some(v) = observed.pointer(&format!("/metadata/{field}")) {
            meta.insert(field.to_string(), v.clone());
        }
    }
    for (field, list) in [
        ("labels", MANAGED_LABELS_ANNOTATION),
        ("annotations", MANAGED_ANNOTATIONS_ANNOTATION),
    ] {
        let managed_before = managed_set(observed, list);
        let Some(theirs) = observed
            .pointer(&format!("/metadata/{field}"))
            .and_then(Value::as_object)
        else {
            continue;
        };
        let ours = meta
            .entry(field)
            .or_insert_with(|| Value::Object(Map::new()));
        let Some(ours) = ours.as_object_mut() else {
            continue;
        };
        for (k, v) in theirs {
            if !ours.contains_key(k) && !managed_before.contains(k) {
                ours.insert(k.clone(), v.clone());
            }
        }
    }
    let kind = str_at(manifest, "/kind");
    let keep = |desired: &mut Value, pointer: &str| {
        if let Some(v) = observed.pointer(pointer)
            && desired.pointer(pointer).is_none_or(Value::is_null)
        {
            set_pointer(desired, pointer, v.clone());
        }
    };
    match kind {
        "Service" => {
            for p in [
                "/spec/clusterIP",
                "/spec/clusterIPs",
                "/spec/healthCheckNodePort",
            ] {
                keep(&mut desired, p);
            }
            retain_node_ports(&mut desired, observed);
        }
        "Pod" => keep(&mut desired, "/spec/nodeName"),
        "Job" => {
            keep(&mut desired, "/spec/selector");
            for l in ["controller-uid", "batch.kubernetes.io/controller-uid"] {
                keep(
                    &mut desired,
                    &format!("/spec/template/metadata/labels/{}", l.replace('/', "~1")),
                );
            }
        }
        "PersistentVolumeClaim" => keep(&mut desired, "/spec/volumeName"),
        "ServiceAccount" => keep(&mut desired, "/secrets"),
        _ => {}
    }
    let retain_replicas = manifest
        .pointer("/metadata/labels")
        .and_then(|l| l.get(RETAIN_REPLICAS_LABEL))
        .and_then(Value::as_str)
        == Some("true");
    if retain_replicas
        && matches!(kind, "Deployment" | "StatefulSet" | "ReplicaSet")
        && let Some(r) = observed.pointer("/spec/replicas")
    {
        set_pointer(&mut desired, "/spec/replicas", r.clone());
    }
    desired
}

fn retain_node_ports(desired: &mut Value, observed: &Value) {
    let Some(theirs) = observed.pointer("/spec/ports").and_then(Value::as_array) else {
        return;
    };
    let Some(ours) = desired
        .pointer_mut("/spec/ports")
        .and_then(Value::as_array_mut)
    else {
        return;
    };
    for port in ours.iter_mut() {
        if port.get("nodePort").is_some() {
            continue;
        }
        let same = theirs.iter().find(|p| {
            p.get("port") == port.get("port")
                && p.get("protocol").and_then(Value::as_str).unwrap_or("TCP")
                    == port
                        .get("protocol")
                        .and_then(Value::as_str)
                        .unwrap_or("TCP")
        });
        if let (Some(p), Some(obj)) = (same.and_then(|p| p.get("nodePort")), port.as_object_mut()) {
            obj.insert("nodePort".into(), p.clone());
        }
    }
}

fn set_pointer(target: &mut Value, pointer: &str, value: Value) {
    let mut cur = target;
    let parts: Vec<String> = pointer
        .split('/')
        .skip(1)
        .map(|p| p.replace("~1", "/").replace("~0", "~"))
        .collect();
    for (i, part) in parts.iter().enumerate() {
        let Some(obj) = cur.as_object_mut() else {
            return;
        };
        if i + 1 == parts.len() {
            obj.insert(part.clone(), value);
            return;
        }
        cur = obj
            .entry(part.clone())
            .or_insert_with(|| Value::Object(Map::new()));
    }
}

/// Whether writing `desired` would change `observed`: every field we set
/// (outside `status` and server-owned metadata) must already be there with
/// the same value, and no label or annotation we used to manage may linger.
/// Fields the member added itself (defaults) do not count, so a defaulted
/// object does not look drifted.
pub fn needs_update(desired: &Value, observed: &Value) -> bool {
    let mut d = desired.clone();
    if let Some(obj) = d.as_object_mut() {
        obj.remove("status");
        if let Some(meta) = obj.get_mut("metadata").and_then(Value::as_object_mut) {
            for f in [
                "resourceVersion",
                "uid",
                "creationTimestamp",
                "generation",
                "managedFields",
                "selfLink",
            ] {
                meta.remove(f);
            }
        }
    }
    if !subset(&d, observed) {
        return true;
    }
    // labels/annotations present on the member that we managed before but no
    // longer want
    for (field, list) in [
        ("labels", MANAGED_LABELS_ANNOTATION),
        ("annotations", MANAGED_ANNOTATIONS_ANNOTATION),
    ] {
        let managed = managed_set(observed, list);
        let wanted = desired
            .pointer(&format!("/metadata/{field}"))
            .and_then(Value::as_object);
        if let Some(theirs) = observed
            .pointer(&format!("/metadata/{field}"))
            .and_then(Value::as_object)
        {
            for k in theirs.keys() {
                if managed.contains(k) && wanted.is_none_or(|w| !w.contains_key(k)) {
                    return true;
                }
            }
        }
    }
    false
}

/// `a` is contained in `b`: objects key by key (recursively), arrays of the
/// same length element by element, scalars equal (numbers by value).
fn subset(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => x.iter().all(|(k, v)| match y.get(k) {
            Some(w) => subset(v, w),
            None => {
                v.is_null()
                    || v.as_object().is_some_and(Map::is_empty)
                    || v.as_array().is_some_and(Vec::is_empty)
            }
        }),
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(v, w)| subset(v, w))
        }
        (Value::Number(x), Value::Number(y)) => x.as_f64() == y.as_f64(),
        (Value::Null, _) => true,
        _ => a == b,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_added_by_the_member_are_not_drift() {
        let desired = json!({"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "n", "labels": {"app": "n", "karmada.io/managed": "true"}},
            "spec": {"replicas": 2, "template": {"spec": {"containers": [{"name": "c", "image": "nginx"}]}}}});
        let observed = json!({"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "n", "resourceVersion": "5", "uid": "u",
                "labels": {"app": "n", "karmada.io/managed": "true"}},
            "spec": {"replicas": 2, "strategy": {"type": "RollingUpdate"},
                "template": {"spec": {"containers": [{"name": "c", "image": "nginx", "imagePullPolicy": "Always"}]}}},
            "status": {"replicas": 2}});
        assert!(!needs_update(&retain(&desired, &observed), &observed));
        let mut edited = observed.clone();
        edited["spec"]["replicas"] = json!(5);
        assert!(needs_update(&retain(&desired, &edited), &edited));
        let mut image = observed.clone();
        image["spec"]["template"]["spec"]["containers"][0]["image"] = json!("evil");
        assert!(needs_update(&retain(&desired, &image), &image));
    }

    #[test]
    fn member_labels_are_kept_and_formerly_managed_ones_dropped() {
        let desired = json!({"kind": "ConfigMap", "metadata": {"name": "c",
            "labels": {"a": "1"},
            "annotations": {MANAGED_LABELS_ANNOTATION: "a"}}});
        let observed = json!({"kind": "ConfigMap", "metadata": {"name": "c", "resourceVersion": "3",
            "labels": {"a": "1", "b": "2", "theirs": "x"},
            "annotations": {MANAGED_LABELS_ANNOTATION: "a,b"}}});
        let merged = retain(&desired, &observed);
        assert_eq!(
            merged["metadata"]["labels"],
            json!({"a": "1", "theirs": "x"})
        );
        assert_eq!(merged["metadata"]["resourceVersion"], json!("3"));
        assert!(needs_update(&merged, &observed));
    }

    #[test]
    fn service_keeps_its_cluster_ip_and_node_ports() {
        let desired = json!({"kind": "Service", "metadata": {"name": "s"},
            "spec": {"type": "NodePort", "ports": [{"port": 80}]}});
        let observed = json!({"kind": "Service", "metadata": {"name": "s"},
            "spec": {"type": "NodePort", "clusterIP": "10.0.0.1", "clusterIPs": ["10.0.0.1"],
                "ports": [{"port": 80, "protocol": "TCP", "nodePort": 30080}]}});
        let merged = retain(&desired, &observed);
        assert_eq!(merged["spec"]["clusterIP"], json!("10.0.0.1"));
        assert_eq!(merged["spec"]["ports"][0]["nodePort"], json!(30080));
        assert!(!needs_update(&merged, &observed));
    }

    #[test]
    fn preserved_objects_lose_only_karmada_keys() {
        let observed = json!({"metadata": {"labels": {"app": "x", "karmada.io/managed": "true",
            "propagationpolicy.karmada.io/permanent-id": "1"},
            "annotations": {"work.karmada.io/name": "w", "mine": "y"}}});
        let p = strip_patch(&observed);
        assert_eq!(
            p["metadata"]["labels"],
            json!({"karmada.io/managed": null,
            "propagationpolicy.karmada.io/permanent-id": null})
        );
        assert_eq!(
            p["metadata"]["annotations"],
            json!({"work.karmada.io/name": null})
        );
    }
}
