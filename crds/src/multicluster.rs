//! Multi-cluster services, the pure part shared by the service-export,
//! endpointslice-collect, service-import, endpointslice-dispatch and
//! multiclusterservice controllers: which member EndpointSlices are
//! collected and under which name and labels ([`collected_slice`]), the
//! Service derived from a ServiceImport ([`derived_service`]), the copy of a
//! collected slice that lands in an importing cluster ([`member_slice`]), the
//! Work that carries it there ([`dispatch_work`]), port conflicts between
//! exporting clusters ([`port_conflict`]) and the provider and consumer
//! clusters of a MultiClusterService ([`mcs_clusters`]).
//!
//! Names and labels are Karmada's (`pkg/util/names`, `pkg/util/constants.go`):
//! a collected slice is `imported-<cluster>-<slice>`, labelled with the
//! Service it serves (`kubernetes.io/service-name: derived-<service>`), its
//! source cluster (`endpointslice.karmada.io/provision-cluster`) and the
//! exported Service (`endpointslice.karmada.io/namespace|name`).

use std::collections::BTreeMap;

use kube::core::ObjectMeta;
use serde_json::{Map, Value, json};

use crate::defaults::{prune_manifest, record_managed_annotations, record_managed_labels};
use crate::names::{
    derived_service_name, execution_space_name, imported_endpoint_slice_name, work_name,
};
use crate::networking::MultiClusterServiceSpec;
use crate::raw::RawJson;
use crate::render::{WORK_NAME_ANNOTATION, WORK_NAMESPACE_ANNOTATION};
use crate::work::{
    CONFLICT_RESOLUTION_ANNOTATION, EXECUTION_CONTROLLER_FINALIZER, MANAGED_LABEL, Work, WorkSpec,
    WorkloadTemplate,
};

/// Label naming the Service of an EndpointSlice (Kubernetes `LabelServiceName`).
pub const SERVICE_NAME_LABEL: &str = "kubernetes.io/service-name";
/// Label naming the controller that manages an EndpointSlice (Kubernetes `LabelManagedBy`).
pub const SLICE_MANAGED_BY_LABEL: &str = "endpointslice.kubernetes.io/managed-by";
/// The member's own endpointslice controller, in [`SLICE_MANAGED_BY_LABEL`].
pub const KUBE_SLICE_CONTROLLER: &str = "endpointslice-controller.k8s.io";
/// Karmada's endpointslice controller, in [`SLICE_MANAGED_BY_LABEL`] of
/// collected slices and of their copies in importing clusters.
pub const KARMADA_SLICE_CONTROLLER: &str = "endpointslice-controller.karmada.io";
/// Karmada's endpointslice-dispatch controller, in [`SLICE_MANAGED_BY_LABEL`]
/// of slices a MultiClusterService dispatched.
pub const KARMADA_DISPATCH_CONTROLLER: &str = "endpointslice-dispatch-controller.karmada.io";
/// Which flotilla controller owns a collected slice or a dispatch Work.
pub const MANAGED_BY_LABEL: &str = "endpointslice.karmada.io/managed-by";
/// The cluster a collected slice came from.
pub const PROVISION_CLUSTER_LABEL: &str = "endpointslice.karmada.io/provision-cluster";
/// The exported Service's name.
pub const SERVICE_NAME_KARMADA_LABEL: &str = "endpointslice.karmada.io/name";
/// The exported Service's namespace.
pub const SERVICE_NAMESPACE_KARMADA_LABEL: &str = "endpointslice.karmada.io/namespace";
/// The mcs-api label naming the imported service on its EndpointSlices.
pub const MCS_SERVICE_NAME_LABEL: &str = "multicluster.kubernetes.io/service-name";
/// The MultiClusterService a Work belongs to (name).
pub const MCS_NAME_LABEL: &str = "multiclusterservice.karmada.io/name";
/// The MultiClusterService a Work belongs to (namespace).
pub const MCS_NAMESPACE_LABEL: &str = "multiclusterservice.karmada.io/namespace";

/// [`MANAGED_BY_LABEL`] of slices collected for a ServiceExport (Karmada's value).
pub const BY_SERVICE_EXPORT: &str = "ServiceExport";
/// [`MANAGED_BY_LABEL`] of slices collected for a MultiClusterService.
pub const BY_ENDPOINTSLICE_COLLECT: &str = "endpointslice-collect-controller";
/// [`MANAGED_BY_LABEL`] of Works the service-import controller writes.
pub const BY_SERVICE_IMPORT: &str = "service-import-controller";
/// [`MANAGED_BY_LABEL`] of slice Works a MultiClusterService dispatches.
pub const BY_ENDPOINTSLICE_DISPATCH: &str = "endpointslice-dispatch-controller";
/// [`MANAGED_BY_LABEL`] of Service Works a MultiClusterService dispatches.
pub const BY_MULTICLUSTER_SERVICE: &str = "multiclusterservice-controller";

/// The MultiClusterService type that shares endpoints across clusters.
pub const TYPE_CROSS_CLUSTER: &str = "CrossCluster";
/// The MultiClusterService type exposing a load balancer.
pub const TYPE_LOAD_BALANCER: &str = "LoadBalancer";

fn str_at<'a>(v: &'a Value, pointer: &str) -> &'a str {
    v.pointer(pointer)
        .and_then(Value::as_str)
        .unwrap_or_default()
}

fn label<'a>(v: &'a Value, key: &str) -> &'a str {
    v.pointer("/metadata/labels")
        .and_then(|l| l.get(key))
        .and_then(Value::as_str)
        .unwrap_or_default()
}

/// The Service a member EndpointSlice serves, if the member's own
/// endpointslice controller made it (slices Karmada put there are never
/// collected again).
pub fn collectable_service(slice: &Value) -> Option<&str> {
    let service = label(slice, SERVICE_NAME_LABEL);
    (!service.is_empty() && label(slice, SLICE_MANAGED_BY_LABEL) == KUBE_SLICE_CONTROLLER)
        .then_some(service)
}

/// The control-plane copy of a member EndpointSlice from `cluster`:
/// `imported-<cluster>-<slice>` in the same namespace, serving
/// `derived-<service>`, owned by `managed_by` ([`BY_SERVICE_EXPORT`] or
/// [`BY_ENDPOINTSLICE_COLLECT`]). `None` when the slice serves no Service.
pub fn collected_slice(member: &Value, cluster: &str, managed_by: &str) -> Option<Value> {
    let service = collectable_service(member)?;
    let namespace = str_at(member, "/metadata/namespace");
    let mut out = Map::new();
    out.insert("apiVersion".into(), json!("discovery.k8s.io/v1"));
    out.insert("kind".into(), json!("EndpointSlice"));
    out.insert(
        "metadata".into(),
        json!({
            "name": imported_endpoint_slice_name(str_at(member, "/metadata/name"), cluster),
            "namespace": namespace,
            "labels": {
                SERVICE_NAME_LABEL: derived_service_name(service),
                SLICE_MANAGED_BY_LABEL: KARMADA_SLICE_CONTROLLER,
                MANAGED_BY_LABEL: managed_by,
                PROVISION_CLUSTER_LABEL: cluster,
                SERVICE_NAME_KARMADA_LABEL: service,
                SERVICE_NAMESPACE_KARMADA_LABEL: namespace,
                MCS_SERVICE_NAME_LABEL: service,
            },
        }),
    );
    for field in ["addressType", "endpoints", "ports"] {
        if let Some(v) = member.get(field) {
            out.insert(field.into(), v.clone());
        }
    }
    if !out.contains_key("endpoints") {
        out.insert("endpoints".into(), json!([]));
    }
    Some(Value::Object(out))
}

/// Whether a stored object already holds `desired`'s labels and data (so no
/// write is needed).
pub fn slice_up_to_date(stored: &Value, desired: &Value) -> bool {
    ["addressType", "endpoints", "ports"]
        .iter()
        .all(|f| stored.get(f) == desired.get(f))
        && desired
            .pointer("/metadata/labels")
            .and_then(Value::as_object)
            .is_some_and(|want| {
                want.iter().all(|(k, v)| {
                    stored.pointer("/metadata/labels").and_then(|l| l.get(k)) == Some(v)
                })
            })
}

/// The exported Service a collected slice belongs to: (namespace, name).
pub fn exported_service(collected: &Value) -> (&str, &str) {
    (
        label(collected, SERVICE_NAMESPACE_KARMADA_LABEL),
        label(collected, SERVICE_NAME_KARMADA_LABEL),
    )
}

/// The cluster a collected slice came from.
pub fn provision_cluster(collected: &Value) -> &str {
    label(collected, PROVISION_CLUSTER_LABEL)
}

/// The copy of a collected slice for an importing cluster, serving
/// `service` there and marked as managed by `slice_controller`.
pub fn member_slice(collected: &Value, service: &str, slice_controller: &str) -> Value {
    let mut out = collected.clone();
    prune_manifest(&mut out);
    if let Some(labels) = out
        .pointer_mut("/metadata/labels")
        .and_then(Value::as_object_mut)
    {
        labels.insert(SERVICE_NAME_LABEL.into(), json!(service));
        labels.insert(SLICE_MANAGED_BY_LABEL.into(), json!(slice_controller));
        labels.remove(MANAGED_BY_LABEL);
    }
    if let Some(meta) = out.get_mut("metadata").and_then(Value::as_object_mut) {
        meta.remove("annotations");
    }
    out
}

/// The Service `derived-<name>` a ServiceImport stands for (Karmada
/// `generateDerivedService`): ClusterIP, no selector, the import's ports and
/// session affinity. `None` when the import has no name.
pub fn derived_service(import: &Value) -> Option<Value> {
    let name = str_at(import, "/metadata/name");
    if name.is_empty() {
        return None;
    }
    let ports: Vec<Value> = import
        .pointer("/spec/ports")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .map(|p| {
            let mut port = Map::new();
            for f in ["name", "protocol", "appProtocol", "port"] {
                if let Some(v) = p.get(f).filter(|v| !v.is_null()) {
                    port.insert(f.into(), v.clone());
                }
            }
            if !port.contains_key("protocol") {
                port.insert("protocol".into(), json!("TCP"));
            }
            Value::Object(port)
        })
        .collect();
    let mut spec = json!({"type": "ClusterIP", "ports": ports});
    let affinity = str_at(import, "/spec/sessionAffinity");
    if !affinity.is_empty() {
        spec["sessionAffinity"] = json!(affinity);
    }
    if let Some(c) = import.pointer("/spec/sessionAffinityConfig") {
        spec["sessionAffinityConfig"] = c.clone();
    }
    Some(json!({
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {
            "name": derived_service_name(name),
            "namespace": str_at(import, "/metadata/namespace"),
        },
        "spec": spec,
    }))
}

/// The Work carrying `manifest` to `cluster`, named as Karmada names Works
/// and labelled `labels` (among them [`MANAGED_BY_LABEL`], which says which
/// controller owns it). The manifest gets the labels and annotations every
/// propagated object carries (`karmada.io/managed`, the Work's name, the
/// managed-label lists) and loses server-set fields.
pub fn dispatch_work(manifest: &Value, cluster: &str, labels: BTreeMap<String, String>) -> Work {
    let mut obj = manifest.clone();
    prune_manifest(&mut obj);
    let kind = str_at(&obj, "/kind").to_string();
    let name = str_at(&obj, "/metadata/name").to_string();
    let namespace = str_at(&obj, "/metadata/namespace").to_string();
    let wname = work_name(&kind, &name, &namespace);
    let wnamespace = execution_space_name(cluster);
    if let Some(meta) = obj.get_mut("metadata").and_then(Value::as_object_mut) {
        let l = meta.entry("labels").or_insert_with(|| json!({}));
        if let Some(l) = l.as_object_mut() {
            l.insert(MANAGED_LABEL.into(), json!("true"));
        }
        let a = meta.entry("annotations").or_insert_with(|| json!({}));
        if let Some(a) = a.as_object_mut() {
            a.insert(WORK_NAME_ANNOTATION.into(), json!(wname));
            a.insert(WORK_NAMESPACE_ANNOTATION.into(), json!(wnamespace));
            a.insert(CONFLICT_RESOLUTION_ANNOTATION.into(), json!("abort"));
        }
    }
    record_managed_annotations(&mut obj);
    record_managed_labels(&mut obj);
    Work {
        metadata: ObjectMeta {
            name: Some(wname),
            namespace: Some(wnamespace),
            finalizers: Some(vec![EXECUTION_CONTROLLER_FINALIZER.to_string()]),
            labels: Some(labels),
            annotations: Some(BTreeMap::from([(
                CONFLICT_RESOLUTION_ANNOTATION.to_string(),
                "abort".to_string(),
            )])),
            ..Default::default()
        },
        spec: WorkSpec {
            workload: WorkloadTemplate {
                manifests: vec![RawJson::from(obj)],
            },
            suspend_dispatching: Some(false),
            preserve_resources_on_deletion: Some(false),
        },
        status: None,
    }
}

/// A port of an exported Service: (name, protocol, port).
pub type Port = (String, String, i64);

/// The ports of a member Service (protocol defaults to TCP), sorted.
pub fn service_ports(service: &Value) -> Vec<Port> {
    let mut out: Vec<Port> = service
        .pointer("/spec/ports")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .map(|p| {
            let protocol = str_at(p, "/protocol");
            (
                str_at(p, "/name").to_string(),
                if protocol.is_empty() { "TCP" } else { protocol }.to_string(),
                p.get("port").and_then(Value::as_i64).unwrap_or_default(),
            )
        })
        .collect();
    out.sort();
    out
}

/// Whether the Services exported from several clusters disagree on their
/// ports (the mcs-api `Conflict` condition): a port name with a different
/// number or protocol, or a port number with a different protocol. Returns a
/// message naming the port and the clusters, or `None` when they agree.
pub fn port_conflict(by_cluster: &BTreeMap<String, Vec<Port>>) -> Option<String> {
    let mut by_name: BTreeMap<&str, (&str, &Port)> = BTreeMap::new();
    let mut by_number: BTreeMap<i64, (&str, &str)> = BTreeMap::new();
    for (cluster, ports) in by_cluster {
        for p in ports {
            if let Some((first, seen)) = by_name.get(p.0.as_str())
                && (seen.1 != p.1 || seen.2 != p.2)
            {
                return Some(format!(
                    "port {:?} is {}/{} in cluster {first} but {}/{} in cluster {cluster}",
                    p.0, seen.2, seen.1, p.2, p.1
                ));
            }
            by_name.entry(p.0.as_str()).or_insert((cluster.as_str(), p));
            if let Some((first, proto)) = by_number.get(&p.2)
                && *proto != p.1
            {
                return Some(format!(
                    "port {} is {proto} in cluster {first} but {} in cluster {cluster}",
                    p.2, p.1
                ));
            }
            by_number
                .entry(p.2)
                .or_insert((cluster.as_str(), p.1.as_str()));
        }
    }
    None
}

/// What is wrong with a MultiClusterService's `spec.types`, naming the field;
/// `None` when every entry is `CrossCluster` or `LoadBalancer`.
pub fn invalid_types(spec: &MultiClusterServiceSpec) -> Option<String> {
    if spec.types.is_empty() {
        return Some("spec.types: Required value".into());
    }
    spec.types
        .iter()
        .enumerate()
        .find(|(_, t)| *t != TYPE_CROSS_CLUSTER && *t != TYPE_LOAD_BALANCER)
        .map(|(i, t)| {
            format!(
                "spec.types[{i}]: Unsupported value: {t:?}: supported values: \"CrossCluster\", \"LoadBalancer\""
            )
        })
}

/// The provider and consumer clusters of a MultiClusterService among
/// `clusters`: `providerClusters` / `consumerClusters` (or the deprecated
/// `serviceProvisionClusters` / `serviceConsumptionClusters`, or `range`),
/// every cluster when empty. Names of unknown clusters are dropped.
pub fn mcs_clusters(
    spec: &MultiClusterServiceSpec,
    clusters: &[String],
) -> (Vec<String>, Vec<String>) {
    let pick = |named: Vec<String>| -> Vec<String> {
        if named.is_empty() {
            clusters.to_vec()
        } else {
            let mut v: Vec<String> = named.into_iter().filter(|n| clusters.contains(n)).collect();
            v.sort();
            v.dedup();
            v
        }
    };
    let mut providers: Vec<String> = spec
        .provider_clusters
        .iter()
        .map(|c| c.name.clone())
        .collect();
    if providers.is_empty() {
        providers = spec.service_provision_clusters.clone();
    }
    let mut consumers: Vec<String> = spec
        .consumer_clusters
        .iter()
        .map(|c| c.name.clone())
        .collect();
    if consumers.is_empty() {
        consumers = spec.service_consumption_clusters.clone();
    }
    if consumers.is_empty()
        && let Some(r) = &spec.range
    {
        consumers = r.cluster_names.clone();
    }
    (pick(providers), pick(consumers))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::networking::ClusterSelector;

    fn member_slice_web() -> Value {
        json!({
            "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
            "metadata": {"name": "web-abc12", "namespace": "shop", "uid": "u1", "resourceVersion": "7",
                         "labels": {SERVICE_NAME_LABEL: "web", SLICE_MANAGED_BY_LABEL: KUBE_SLICE_CONTROLLER}},
            "addressType": "IPv4",
            "endpoints": [{"addresses": ["10.0.0.1"], "conditions": {"ready": true}}],
            "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}]
        })
    }

    #[test]
    fn collected_slices_are_named_and_labelled_after_their_cluster() {
        let c = collected_slice(&member_slice_web(), "member1", BY_SERVICE_EXPORT).unwrap();
        assert_eq!(c["metadata"]["name"], "imported-member1-web-abc12");
        assert_eq!(c["metadata"]["namespace"], "shop");
        let l = &c["metadata"]["labels"];
        assert_eq!(l[SERVICE_NAME_LABEL], "derived-web");
        assert_eq!(l[PROVISION_CLUSTER_LABEL], "member1");
        assert_eq!(l[MANAGED_BY_LABEL], BY_SERVICE_EXPORT);
        assert_eq!(l[SLICE_MANAGED_BY_LABEL], KARMADA_SLICE_CONTROLLER);
        assert_eq!(c["endpoints"][0]["addresses"][0], "10.0.0.1");
        assert!(c["metadata"].get("uid").is_none());
        assert_eq!(exported_service(&c), ("shop", "web"));
        assert_eq!(provision_cluster(&c), "member1");
        assert!(slice_up_to_date(&c, &c));
        let mut changed = c.clone();
        changed["endpoints"] = json!([]);
        assert!(!slice_up_to_date(&changed, &c));
    }

    #[test]
    fn slices_karmada_made_or_without_a_service_are_not_collected() {
        let mut s = member_slice_web();
        s["metadata"]["labels"][SLICE_MANAGED_BY_LABEL] = json!(KARMADA_SLICE_CONTROLLER);
        assert!(collected_slice(&s, "member1", BY_SERVICE_EXPORT).is_none());
        let mut s = member_slice_web();
        s["metadata"]["labels"]
            .as_object_mut()
            .unwrap()
            .remove(SERVICE_NAME_LABEL);
        assert!(collected_slice(&s, "member1", BY_SERVICE_EXPORT).is_none());
    }

    #[test]
    fn member_copies_serve_the_importing_service() {
        let c = collected_slice(&member_slice_web(), "member1", BY_SERVICE_EXPORT).unwrap();
        let m = member_slice(&c, "web", KARMADA_DISPATCH_CONTROLLER);
        assert_eq!(m["metadata"]["labels"][SERVICE_NAME_LABEL], "web");
        assert_eq!(
            m["metadata"]["labels"][SLICE_MANAGED_BY_LABEL],
            KARMADA_DISPATCH_CONTROLLER
        );
        assert!(m["metadata"]["labels"].get(MANAGED_BY_LABEL).is_none());
        let w = dispatch_work(
            &m,
            "member2",
            BTreeMap::from([(MANAGED_BY_LABEL.to_string(), BY_SERVICE_IMPORT.to_string())]),
        );
        assert_eq!(w.metadata.namespace.as_deref(), Some("karmada-es-member2"));
        assert_eq!(
            w.metadata.name.as_deref(),
            Some(work_name("EndpointSlice", "imported-member1-web-abc12", "shop").as_str())
        );
        let manifest = &w.spec.workload.manifests[0].value();
        assert_eq!(manifest["metadata"]["labels"][MANAGED_LABEL], "true");
        assert_eq!(
            manifest["metadata"]["annotations"][WORK_NAMESPACE_ANNOTATION],
            "karmada-es-member2"
        );
    }

    #[test]
    fn derived_service_has_the_import_ports() {
        let import = json!({"metadata": {"name": "web", "namespace": "shop"},
            "spec": {"type": "ClusterSetIP", "ports": [{"name": "http", "port": 80}, {"port": 53, "protocol": "UDP"}],
                     "sessionAffinity": "ClientIP"}});
        let s = derived_service(&import).unwrap();
        assert_eq!(s["metadata"]["name"], "derived-web");
        assert_eq!(s["metadata"]["namespace"], "shop");
        assert_eq!(s["spec"]["type"], "ClusterIP");
        assert_eq!(
            s["spec"]["ports"],
            json!([{"name": "http", "port": 80, "protocol": "TCP"}, {"port": 53, "protocol": "UDP"}])
        );
        assert_eq!(s["spec"]["sessionAffinity"], "ClientIP");
        assert!(s["spec"].get("selector").is_none());
        assert!(derived_service(&json!({"metadata": {}})).is_none());
    }

    #[test]
    fn port_conflicts_name_the_port_and_clusters() {
        let svc = |ports: Value| service_ports(&json!({"spec": {"ports": ports}}));
        let mut m = BTreeMap::new();
        m.insert(
            "member1".to_string(),
            svc(json!([{"name": "http", "port": 80}])),
        );
        m.insert(
            "member2".to_string(),
            svc(json!([{"name": "http", "port": 80, "protocol": "TCP"}])),
        );
        assert_eq!(port_conflict(&m), None);
        m.insert(
            "member3".to_string(),
            svc(json!([{"name": "http", "port": 8080}])),
        );
        let msg = port_conflict(&m).unwrap();
        assert!(
            msg.contains("\"http\"") && msg.contains("member1") && msg.contains("member3"),
            "{msg}"
        );
        m.remove("member3");
        m.insert(
            "member3".to_string(),
            svc(json!([{"name": "dns", "port": 80, "protocol": "UDP"}])),
        );
        assert!(port_conflict(&m).unwrap().contains("UDP"));
    }

    #[test]
    fn mcs_clusters_default_to_all() {
        let all: Vec<String> = ["member1", "member2", "member3"].map(String::from).to_vec();
        let spec = MultiClusterServiceSpec {
            types: vec![TYPE_CROSS_CLUSTER.into()],
            provider_clusters: vec![ClusterSelector {
                name: "member1".into(),
            }],
            consumer_clusters: vec![
                ClusterSelector {
                    name: "member3".into(),
                },
                ClusterSelector {
                    name: "member2".into(),
                },
                ClusterSelector {
                    name: "gone".into(),
                },
            ],
            ..Default::default()
        };
        let (p, c) = mcs_clusters(&spec, &all);
        assert_eq!(p, vec!["member1"]);
        assert_eq!(c, vec!["member2", "member3"]);
        let (p, c) = mcs_clusters(&MultiClusterServiceSpec::default(), &all);
        assert_eq!((p.len(), c.len()), (3, 3));
        assert_eq!(invalid_types(&spec), None);
        assert!(
            invalid_types(&MultiClusterServiceSpec::default())
                .unwrap()
                .contains("spec.types")
        );
        let bad = MultiClusterServiceSpec {
            types: vec!["CrossCluster".into(), "NodePort".into()],
            ..Default::default()
        };
        assert!(invalid_types(&bad).unwrap().starts_with("spec.types[1]"));
    }
}
