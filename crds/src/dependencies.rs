//! Karmada's native dependency interpreter (`InterpretDependency`, used with
//! `propagateDeps: true`): the ConfigMaps, Secrets, ServiceAccount and
//! PersistentVolumeClaims a workload's pod template refers to, and the TLS
//! Secrets of an Ingress. These follow the workload to the same clusters.
//! Start at [`dependencies`].

use std::collections::BTreeSet;

use serde_json::Value;

/// One object a template depends on, in the template's namespace.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DependentObjectReference {
    /// `v1` for everything the native interpreter finds.
    pub api_version: String,
    /// `ConfigMap`, `Secret`, `ServiceAccount` or `PersistentVolumeClaim`.
    pub kind: String,
    /// The template's namespace.
    pub namespace: String,
    /// Name.
    pub name: String,
}

/// Where the pod spec of a workload kind lives.
fn pod_spec<'a>(obj: &'a Value, kind: &str) -> Option<&'a Value> {
    match kind {
        "Deployment" | "ReplicaSet" | "StatefulSet" | "DaemonSet" | "Job" => {
            obj.pointer("/spec/template/spec")
        }
        "CronJob" => obj.pointer("/spec/jobTemplate/spec/template/spec"),
        "Pod" => obj.get("spec"),
        _ => None,
    }
}

fn names(v: Option<&Value>) -> impl Iterator<Item = &Value> {
    v.and_then(Value::as_array).into_iter().flatten()
}

fn str_of<'a>(v: &'a Value, pointer: &str) -> Option<&'a str> {
    v.pointer(pointer)
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
}

/// The objects `obj` depends on, sorted and without duplicates. Kinds
/// without a dependency interpreter have none.
pub fn dependencies(obj: &Value) -> Vec<DependentObjectReference> {
    let kind = obj.get("kind").and_then(Value::as_str).unwrap_or_default();
    let namespace = str_of(obj, "/metadata/namespace").unwrap_or_default();
    let mut found: BTreeSet<(&'static str, String)> = BTreeSet::new();
    if kind == "Ingress" {
        for tls in names(obj.pointer("/spec/tls")) {
            if let Some(s) = str_of(tls, "/secretName") {
                found.insert(("Secret", s.to_string()));
            }
        }
    }
    if let Some(spec) = pod_spec(obj, kind) {
        pod_dependencies(spec, &mut found);
        if kind == "StatefulSet" {
            // claims made from volumeClaimTemplates are the member's own
            let templated: BTreeSet<&str> = names(obj.pointer("/spec/volumeClaimTemplates"))
                .filter_map(|t| str_of(t, "/metadata/name"))
                .collect();
            found.retain(|(k, n)| {
                *k != "PersistentVolumeClaim"
                    || !templated
                        .iter()
                        .any(|t| n.starts_with(&format!("{t}-")) || n == t)
            });
        }
    }
    found
        .into_iter()
        .map(|(kind, name)| DependentObjectReference {
            api_version: "v1".to_string(),
            kind: kind.to_string(),
            namespace: namespace.to_string(),
            name,
        })
        .collect()
}

fn pod_dependencies(spec: &Value, found: &mut BTreeSet<(&'static str, String)>) {
    for v in names(spec.get("volumes")) {
        if let Some(n) = str_of(v, "/configMap/name") {
            found.insert(("ConfigMap", n.to_string()));
        }
        if let Some(n) = str_of(v, "/secret/secretName") {
            found.insert(("Secret", n.to_string()));
        }
        if let Some(n) = str_of(v, "/persistentVolumeClaim/claimName") {
            found.insert(("PersistentVolumeClaim", n.to_string()));
        }
        for source in names(v.pointer("/projected/sources")) {
            if let Some(n) = str_of(source, "/configMap/name") {
                found.insert(("ConfigMap", n.to_string()));
            }
            if let Some(n) = str_of(source, "/secret/name") {
                found.insert(("Secret", n.to_string()));
            }
        }
        for p in [
            "/csi/nodePublishSecretRef/name",
            "/cephfs/secretRef/name",
            "/rbd/secretRef/name",
        ] {
            if let Some(n) = str_of(v, p) {
                found.insert(("Secret", n.to_string()));
            }
        }
    }
    for list in ["containers", "initContainers", "ephemeralContainers"] {
        for c in names(spec.get(list)) {
            for e in names(c.get("env")) {
                if let Some(n) = str_of(e, "/valueFrom/configMapKeyRef/name") {
                    found.insert(("ConfigMap", n.to_string()));
                }
                if let Some(n) = str_of(e, "/valueFrom/secretKeyRef/name") {
                    found.insert(("Secret", n.to_string()));
                }
            }
            for e in names(c.get("envFrom")) {
                if let Some(n) = str_of(e, "/configMapRef/name") {
                    found.insert(("ConfigMap", n.to_string()));
                }
                if let Some(n) = str_of(e, "/secretRef/name") {
                    found.insert(("Secret", n.to_string()));
                }
            }
        }
    }
    for s in names(spec.get("imagePullSecrets")) {
        if let Some(n) = str_of(s, "/name") {
            found.insert(("Secret", n.to_string()));
        }
    }
    if let Some(sa) = str_of(spec, "/serviceAccountName")
        && sa != "default"
    {
        found.insert(("ServiceAccount", sa.to_string()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn names_of(v: &[DependentObjectReference]) -> Vec<(String, String)> {
        v.iter().map(|d| (d.kind.clone(), d.name.clone())).collect()
    }

    #[test]
    fn deployment_refers_to_config_maps_secrets_claims_and_its_service_account() {
        let d = json!({"apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "web", "namespace": "shop"},
        "spec": {"template": {"spec": {
            "serviceAccountName": "web-sa",
            "imagePullSecrets": [{"name": "pull"}],
            "volumes": [
                {"name": "a", "configMap": {"name": "cfg"}},
                {"name": "b", "secret": {"secretName": "tls"}},
                {"name": "c", "persistentVolumeClaim": {"claimName": "data"}},
                {"name": "d", "projected": {"sources": [{"configMap": {"name": "extra"}}, {"secret": {"name": "token"}}]}}
            ],
            "initContainers": [{"name": "i", "envFrom": [{"configMapRef": {"name": "init-env"}}]}],
            "containers": [{"name": "m", "env": [
                {"name": "K", "valueFrom": {"secretKeyRef": {"name": "db", "key": "k"}}},
                {"name": "C", "valueFrom": {"configMapKeyRef": {"name": "cfg", "key": "x"}}}
            ]}]
        }}}});
        let deps = dependencies(&d);
        assert!(
            deps.iter()
                .all(|x| x.namespace == "shop" && x.api_version == "v1")
        );
        assert_eq!(
            names_of(&deps),
            vec![
                ("ConfigMap".into(), "cfg".into()),
                ("ConfigMap".into(), "extra".into()),
                ("ConfigMap".into(), "init-env".into()),
                ("PersistentVolumeClaim".into(), "data".into()),
                ("Secret".into(), "db".into()),
                ("Secret".into(), "pull".into()),
                ("Secret".into(), "tls".into()),
                ("Secret".into(), "token".into()),
                ("ServiceAccount".into(), "web-sa".into()),
            ]
        );
    }

    #[test]
    fn default_service_account_other_kinds_and_ingress_tls() {
        let pod = json!({"kind": "Pod", "metadata": {"name": "p", "namespace": "n"},
            "spec": {"serviceAccountName": "default", "containers": [{"name": "c"}]}});
        assert!(dependencies(&pod).is_empty());
        let cm = json!({"kind": "ConfigMap", "metadata": {"name": "c"}});
        assert!(dependencies(&cm).is_empty());
        let ing = json!({"kind": "Ingress", "metadata": {"name": "i", "namespace": "n"},
            "spec": {"tls": [{"secretName": "cert"}, {"hosts": ["x"]}]}});
        assert_eq!(
            names_of(&dependencies(&ing)),
            vec![("Secret".into(), "cert".into())]
        );
        let cron = json!({"kind": "CronJob", "metadata": {"name": "c", "namespace": "n"},
            "spec": {"jobTemplate": {"spec": {"template": {"spec": {"volumes": [{"name": "v", "configMap": {"name": "job-cfg"}}]}}}}}});
        assert_eq!(
            names_of(&dependencies(&cron)),
            vec![("ConfigMap".into(), "job-cfg".into())]
        );
    }
}
