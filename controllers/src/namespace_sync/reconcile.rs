//! Which namespaces go to members (Karmada `namespaceShouldBeSynced` plus the
//! skip label) and the Work that carries one to one cluster
//! ([`namespace_work`]).

use std::collections::BTreeMap;

use flotilla_api::cluster::Cluster;
use flotilla_api::defaults::default_work;
use flotilla_api::names::{execution_space_name, is_reserved_namespace, work_name};
use flotilla_api::overrides::{self, applied_annotation, apply_override_policies};
use flotilla_api::policy::{APPLIED_CLUSTER_OVERRIDES_ANNOTATION, ClusterOverridePolicy};
use flotilla_api::render::mark_manifest;
use flotilla_api::work::{
    EXECUTION_CONTROLLER_FINALIZER, WORK_PERMANENT_ID_LABEL, Work, WorkSpec, WorkloadTemplate,
};
use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use serde_json::Value;

use crate::{Error, Result};

/// Label that opts a namespace out of propagation (value `"true"`).
pub const LABEL_SKIP_AUTO_PROPAGATION: &str = "namespace.karmada.io/skip-auto-propagation";

/// The skip rules: reserved namespaces, `default`, and anchored regular
/// expressions (`--skipped-propagating-namespaces`).
#[derive(Clone, Debug)]
pub struct SkipRules {
    patterns: Vec<regex_lite::Regex>,
}

impl SkipRules {
    /// Compiles each pattern as `^pattern$`, as Karmada does.
    pub fn new(patterns: &[String]) -> Result<Self> {
        let patterns = patterns
            .iter()
            .map(|p| {
                regex_lite::Regex::new(&format!("^{p}$")).map_err(|e| {
                    Error::InvalidConfig(format!("skipped propagating namespace {p:?}: {e}"))
                })
            })
            .collect::<Result<_>>()?;
        Ok(SkipRules { patterns })
    }

    /// Whether a namespace name may be synced (Karmada `namespaceShouldBeSynced`).
    pub fn name_should_sync(&self, name: &str) -> bool {
        !(is_reserved_namespace(name)
            || name == "default"
            || self.patterns.iter().any(|r| r.is_match(name)))
    }

    /// Whether a control-plane namespace goes to members: name rules, the skip
    /// label, and not being deleted.
    pub fn should_sync(&self, ns: &Namespace) -> bool {
        let name = ns.metadata.name.as_deref().unwrap_or_default();
        let skip_label = ns
            .metadata
            .labels
            .as_ref()
            .and_then(|l| l.get(LABEL_SKIP_AUTO_PROPAGATION))
            .is_some_and(|v| v == "true");
        !name.is_empty()
            && ns.metadata.deletion_timestamp.is_none()
            && !skip_label
            && self.name_should_sync(name)
    }
}

/// The name of the Work that carries namespace `name` (the same in every
/// execution namespace; Karmada `GenerateWorkName("Namespace", name, "")`).
pub fn namespace_work_name(name: &str) -> String {
    work_name("Namespace", name, "")
}

/// The controller owner reference of a namespace's Works: deleting the
/// namespace lets garbage collection delete them.
pub fn owner_reference(ns: &Namespace) -> OwnerReference {
    OwnerReference {
        api_version: "v1".into(),
        kind: "Namespace".into(),
        name: ns.metadata.name.clone().unwrap_or_default(),
        uid: ns.metadata.uid.clone().unwrap_or_default(),
        controller: Some(true),
        block_owner_deletion: Some(true),
    }
}

/// Whether `w` is a namespace Work owned by the namespace with this uid.
pub fn owned_by(w: &Work, uid: &str) -> bool {
    w.metadata
        .owner_references
        .iter()
        .flatten()
        .any(|o| o.kind == "Namespace" && o.api_version == "v1" && o.uid == uid)
}

/// The name of the namespace that owns `w`, if it is a namespace Work.
pub fn owner_namespace(w: &Work) -> Option<&str> {
    w.metadata
        .owner_references
        .iter()
        .flatten()
        .find(|o| o.kind == "Namespace" && o.api_version == "v1")
        .map(|o| o.name.as_str())
}

/// The Work that carries control-plane namespace `ns` to `cluster`, as
/// Karmada's namespace sync controller builds it: named
/// [`namespace_work_name`] in `karmada-es-<cluster>`, with the execution
/// controller's finalizer and a controller owner reference to the namespace;
/// its one manifest is the namespace with the ClusterOverridePolicies that
/// select it applied for this cluster (recorded in
/// `policy.karmada.io/applied-cluster-overrides`), then what Karmada's
/// `CreateOrUpdateWork` and Work webhook add: `karmada.io/managed: "true"`,
/// the template uid and Work name/namespace annotations, server-set fields
/// pruned, the managed label/annotation lists and the Work's permanent id.
/// No conflict-resolution annotation is set: as in Karmada, a member
/// namespace that exists unmanaged is taken over only when the control-plane
/// namespace itself carries `work.karmada.io/conflict-resolution: overwrite`.
pub fn namespace_work(
    ns: &Namespace,
    cluster: &Cluster,
    cluster_overrides: &[ClusterOverridePolicy],
    permanent_id: &str,
) -> std::result::Result<Work, overrides::Error> {
    let name = ns.metadata.name.clone().unwrap_or_default();
    let mut obj = serde_json::to_value(ns).unwrap_or(Value::Null);
    if let Some(o) = obj.as_object_mut() {
        o.insert("apiVersion".into(), "v1".into());
        o.insert("kind".into(), "Namespace".into());
    }
    // Namespaces are cluster-scoped: only ClusterOverridePolicies apply
    let applied = apply_override_policies(&mut obj, cluster, cluster_overrides, &[])?;
    let wname = namespace_work_name(&name);
    let wnamespace = execution_space_name(cluster.metadata.name.as_deref().unwrap_or_default());
    let uid = ns.metadata.uid.clone().unwrap_or_default();
    mark_manifest(&mut obj, &uid, &wname, &wnamespace);
    let annotations: BTreeMap<String, String> = applied_annotation(&applied.cluster)
        .map(|a| (APPLIED_CLUSTER_OVERRIDES_ANNOTATION.to_string(), a))
        .into_iter()
        .collect();
    let mut work = Work {
        metadata: ObjectMeta {
            name: Some(wname),
            namespace: Some(wnamespace),
            finalizers: Some(vec![EXECUTION_CONTROLLER_FINALIZER.to_string()]),
            owner_references: Some(vec![owner_reference(ns)]),
            labels: Some(BTreeMap::from([(
                WORK_PERMANENT_ID_LABEL.to_string(),
                permanent_id.to_string(),
            )])),
            annotations: (!annotations.is_empty()).then_some(annotations),
            ..Default::default()
        },
        spec: WorkSpec {
            workload: WorkloadTemplate {
                manifests: vec![obj.into()],
            },
            suspend_dispatching: None,
            preserve_resources_on_deletion: None,
        },
        status: None,
    };
    default_work(&mut work, permanent_id);
    Ok(work)
}
#[cfg(test)]
mod tests {
    use super::*;
    use flotilla_api::render::{
        TEMPLATE_UID_ANNOTATION, WORK_NAME_ANNOTATION, WORK_NAMESPACE_ANNOTATION,
    };
    use flotilla_api::work::MANAGED_LABEL;

    fn ns(name: &str, labels: &[(&str, &str)]) -> Namespace {
        Namespace {
            metadata: ObjectMeta {
                name: Some(name.into()),
                labels: Some(
                    labels
                        .iter()
                        .map(|(k, v)| (k.to_string(), v.to_string()))
                        .collect(),
                ),
                ..Default::default()
            },
            ..Default::default()
        }
    }

    fn rules() -> SkipRules {
        SkipRules::new(&["kube-.*".to_string()]).unwrap()
    }

    #[test]
    fn skip_rules() {
        let r = rules();
        for skipped in [
            "default",
            "kube-system",
            "kube-public",
            "kube-node-lease",
            "karmada-system",
            "karmada-cluster",
            "karmada-es-member1",
        ] {
            assert!(!r.name_should_sync(skipped), "{skipped}");
        }
        for synced in ["apps", "kube", "my-kube-x", "karmada-foo"] {
            assert!(r.name_should_sync(synced), "{synced}");
        }
        assert!(!r.should_sync(&ns("apps", &[(LABEL_SKIP_AUTO_PROPAGATION, "true")])));
        assert!(r.should_sync(&ns("apps", &[(LABEL_SKIP_AUTO_PROPAGATION, "false")])));
        let mut deleting = ns("apps", &[]);
        deleting.metadata.deletion_timestamp =
            Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
                k8s_openapi::jiff::Timestamp::UNIX_EPOCH,
            ));
        assert!(!r.should_sync(&deleting));
        assert!(SkipRules::new(&["(".to_string()]).is_err());
        assert!(
            !SkipRules::new(&["team-.*".to_string()])
                .unwrap()
                .name_should_sync("team-a")
        );
    }

    fn with_uid(mut n: Namespace, uid: &str) -> Namespace {
        n.metadata.uid = Some(uid.into());
        n.metadata.resource_version = Some("12".into());
        n
    }

    fn member(name: &str, region: &str) -> Cluster {
        serde_json::from_value(serde_json::json!({
            "apiVersion": "cluster.karmada.io/v1alpha1", "kind": "Cluster",
            "metadata": {"name": name, "labels": {"region": region}},
            "spec": {"syncMode": "Push"}
        }))
        .unwrap()
    }

    fn label<'a>(v: &'a Value, key: &str) -> Option<&'a str> {
        v.pointer("/metadata/labels")?.get(key)?.as_str()
    }

    fn annotation<'a>(v: &'a Value, key: &str) -> Option<&'a str> {
        v.pointer("/metadata/annotations")?.get(key)?.as_str()
    }

    #[test]
    fn the_work_of_a_namespace() {
        let mut n = with_uid(ns("team-x", &[("team", "x")]), "u-1");
        n.spec = Some(k8s_openapi::api::core::v1::NamespaceSpec {
            finalizers: Some(vec!["kubernetes".into()]),
        });
        n.status = Some(k8s_openapi::api::core::v1::NamespaceStatus {
            phase: Some("Active".into()),
            ..Default::default()
        });
        let w = namespace_work(&n, &member("member1", "east"), &[], "p-1").unwrap();
        assert_eq!(w.metadata.namespace.as_deref(), Some("karmada-es-member1"));
        assert_eq!(w.metadata.name, Some(namespace_work_name("team-x")));
        assert_eq!(
            namespace_work_name("team-x"),
            work_name("Namespace", "team-x", "")
        );
        // the name docs/namespace-sync.md shows
        assert_eq!(namespace_work_name("team-x"), "team-x-98c6b5d95");
        assert_eq!(
            w.metadata.finalizers,
            Some(vec![EXECUTION_CONTROLLER_FINALIZER.to_string()])
        );
        let owner = &w.metadata.owner_references.as_ref().unwrap()[0];
        assert_eq!(
            (owner.kind.as_str(), owner.name.as_str(), owner.uid.as_str()),
            ("Namespace", "team-x", "u-1")
        );
        assert_eq!(owner.controller, Some(true));
        assert!(owned_by(&w, "u-1") && !owned_by(&w, "u-2"));
        assert_eq!(owner_namespace(&w), Some("team-x"));
        assert_eq!(
            w.metadata.labels.as_ref().unwrap()[WORK_PERMANENT_ID_LABEL],
            "p-1"
        );
        assert!(w.metadata.annotations.is_none(), "no override applied");
        assert_eq!(w.spec.suspend_dispatching, None);
        let m = &w.spec.workload.manifests[0].value();
        assert_eq!(m["apiVersion"], "v1");
        assert_eq!(m["kind"], "Namespace");
        assert_eq!(m.pointer("/metadata/name").unwrap(), "team-x");
        assert!(m.pointer("/metadata/namespace").is_none());
        assert_eq!(label(m, "team"), Some("x"));
        assert_eq!(label(m, MANAGED_LABEL), Some("true"));
        assert_eq!(label(m, WORK_PERMANENT_ID_LABEL), Some("p-1"));
        assert_eq!(annotation(m, TEMPLATE_UID_ANNOTATION), Some("u-1"));
        assert_eq!(
            annotation(m, WORK_NAME_ANNOTATION),
            w.metadata.name.as_deref()
        );
        assert_eq!(
            annotation(m, WORK_NAMESPACE_ANNOTATION),
            Some("karmada-es-member1")
        );
        assert!(
            annotation(m, flotilla_api::work::CONFLICT_RESOLUTION_ANNOTATION).is_none(),
            "Karmada's namespace Works do not overwrite by default"
        );
        let managed = annotation(m, flotilla_api::defaults::MANAGED_LABELS_ANNOTATION).unwrap();
        assert!(managed.split(',').any(|k| k == "team"), "{managed}");
        // server-set fields are pruned; the spec stays
        for gone in ["/metadata/uid", "/metadata/resourceVersion", "/status"] {
            assert!(m.pointer(gone).is_none(), "{gone} in {m}");
        }
        assert_eq!(m.pointer("/spec/finalizers/0").unwrap(), "kubernetes");
        // an overwrite annotation on the namespace itself travels in the manifest
        let mut over = n.clone();
        over.metadata.annotations = Some(BTreeMap::from([(
            flotilla_api::work::CONFLICT_RESOLUTION_ANNOTATION.to_string(),
            "overwrite".to_string(),
        )]));
        let w = namespace_work(&over, &member("member1", "east"), &[], "p-1").unwrap();
        assert_eq!(
            annotation(
                &w.spec.workload.manifests[0].value(),
                flotilla_api::work::CONFLICT_RESOLUTION_ANNOTATION
            ),
            Some("overwrite")
        );
    }

    #[test]
    fn cluster_overrides_apply_per_cluster() {
        let cop: ClusterOverridePolicy = serde_json::from_value(serde_json::json!({
            "apiVersion": "policy.karmada.io/v1alpha1", "kind": "ClusterOverridePolicy",
            "metadata": {"name": "east-ns"},
            "spec": {
                "resourceSelectors": [{"apiVersion": "v1", "kind": "Namespace", "name": "team-x"}],
                "overrideRules": [{
                    "targetCluster": {"labelSelector": {"matchLabels": {"region": "east"}}},
                    "overriders": {"labelsOverrider": [{"operator": "add", "value": {"zone": "east"}}]}
                }]
            }
        }))
        .unwrap();
        let cops = vec![cop];
        let n = with_uid(ns("team-x", &[]), "u-1");
        let east = namespace_work(&n, &member("member1", "east"), &cops, "p").unwrap();
        let m = &east.spec.workload.manifests[0].value();
        assert_eq!(label(m, "zone"), Some("east"));
        let applied =
            &east.metadata.annotations.as_ref().unwrap()[APPLIED_CLUSTER_OVERRIDES_ANNOTATION];
        assert!(applied.contains("east-ns"), "{applied}");
        let west = namespace_work(&n, &member("member2", "west"), &cops, "p").unwrap();
        assert_eq!(
            label(&west.spec.workload.manifests[0].value(), "zone"),
            None
        );
        assert!(west.metadata.annotations.is_none());
        // a policy selecting another namespace does not apply
        let other = with_uid(ns("team-y", &[]), "u-2");
        let w = namespace_work(&other, &member("member1", "east"), &cops, "p").unwrap();
        assert_eq!(label(&w.spec.workload.manifests[0].value(), "zone"), None);
    }
}
