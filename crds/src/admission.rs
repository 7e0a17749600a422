//! One entry point per admission phase, keyed the way Karmada's webhook
//! configuration routes requests (resource plural + operation), over raw JSON
//! objects as they arrive in an AdmissionReview. The webhook server decodes
//! the review, calls [`mutate`] or [`validate`], and turns the result into a
//! patch or a denial (`allowed: false`, message, field causes).
//!
//! Mirrors the handlers of Karmada's `pkg/webhook/*` for the kinds this crate
//! covers; resources without rules here are allowed unchanged.

use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::validation::{FieldError, aggregate_message};
use crate::{autoscaling, defaults, networking, policy, validation, work};

/// Admission operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operation {
    /// CREATE.
    Create,
    /// UPDATE.
    Update,
    /// DELETE.
    Delete,
    /// CONNECT.
    Connect,
}

impl Operation {
    /// Parses `CREATE`, `UPDATE`, `DELETE`, `CONNECT`.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "CREATE" => Some(Self::Create),
            "UPDATE" => Some(Self::Update),
            "DELETE" => Some(Self::Delete),
            "CONNECT" => Some(Self::Connect),
            _ => None,
        }
    }
}

/// Why a request cannot be admitted.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum AdmissionError {
    /// The object does not decode as its kind (Karmada answers 400 Bad Request).
    #[error("{0}")]
    BadRequest(String),
    /// Validation denied the request; `message` is Karmada's denial text.
    #[error("{message}")]
    Denied {
        /// Denial message (`ErrorList.ToAggregate().Error()`).
        message: String,
        /// The field errors behind it, for Status causes.
        causes: Vec<FieldError>,
    },
}

/// Result of this module.
pub type Result<T, E = AdmissionError> = std::result::Result<T, E>;

/// One admission request, reduced to what the rules need.
#[derive(Debug, Clone, Copy)]
pub struct Request<'a> {
    /// Resource plural, e.g. `propagationpolicies`.
    pub resource: &'a str,
    /// Operation.
    pub operation: Operation,
    /// Request namespace (empty for cluster-scoped resources).
    pub namespace: &'a str,
    /// The object (new object on CREATE/UPDATE, old object on DELETE).
    pub object: &'a Value,
    /// The old object on UPDATE.
    pub old_object: Option<&'a Value>,
    /// A fresh UUID for permanent-id labels, used only when one is needed.
    pub new_id: &'a str,
    /// Allow ClusterTaintPolicies with `NoExecute` taints (karmada-webhook's
    /// `--allow-no-execute-taint-policy`, off by default).
    pub allow_no_execute_taint_policy: bool,
}

fn decode<T: DeserializeOwned>(v: &Value) -> Result<T> {
    serde_json::from_value(v.clone()).map_err(|e| AdmissionError::BadRequest(e.to_string()))
}

fn encode<T: Serialize>(v: &T) -> Result<Value> {
    serde_json::to_value(v).map_err(|e| AdmissionError::BadRequest(e.to_string()))
}

fn denied(causes: Vec<FieldError>) -> Result<()> {
    if causes.is_empty() {
        Ok(())
    } else {
        Err(AdmissionError::Denied {
            message: aggregate_message(&causes),
            causes,
        })
    }
}

/// Mutating admission (Karmada `mutating-config`): returns the mutated
/// object, or `None` when the resource/operation has no mutating webhook.
pub fn mutate(req: &Request<'_>) -> Result<Option<Value>> {
    use Operation::*;
    let create = req.operation == Create;
    let out = match (req.resource, req.operation) {
        ("propagationpolicies", Create | Update) => {
            let mut p: policy::PropagationPolicy = decode(req.object)?;
            defaults::default_propagation_policy(
                &mut p,
                req.namespace,
                create.then_some(req.new_id),
            );
            encode(&p)?
        }
        ("clusterpropagationpolicies", Create | Update) => {
            let mut p: policy::ClusterPropagationPolicy = decode(req.object)?;
            defaults::default_cluster_propagation_policy(&mut p, create.then_some(req.new_id));
            encode(&p)?
        }
        ("overridepolicies", Create | Update) => {
            let mut p: policy::OverridePolicy = decode(req.object)?;
            defaults::default_override_policy(&mut p, req.namespace);
            encode(&p)?
        }
        ("resourcebindings", Create) => {
            let mut rb: work::ResourceBinding = decode(req.object)?;
            defaults::default_resource_binding(&mut rb, req.new_id);
            encode(&rb)?
        }
        ("clusterresourcebindings", Create) => {
            let mut crb: work::ClusterResourceBinding = decode(req.object)?;
            defaults::default_cluster_resource_binding(&mut crb, req.new_id);
            encode(&crb)?
        }
        ("works", Create | Update) => {
            let mut w: work::Work = decode(req.object)?;
            defaults::default_work(&mut w, req.new_id);
            encode(&w)?
        }
        ("federatedhpas", Create | Update) => {
            let mut h: autoscaling::FederatedHPA = decode(req.object)?;
            defaults::default_federated_hpa(&mut h);
            encode(&h)?
        }
        ("multiclusterservices", Create | Update) => {
            let mut m: networking::MultiClusterService = decode(req.object)?;
            defaults::default_multi_cluster_service(&mut m, req.new_id);
            encode(&m)?
        }
        _ => return Ok(None),
    };
    Ok(Some(out))
}

fn with_namespace(mut meta_ns: Option<String>, ns: &str) -> Option<String> {
    if meta_ns.as_deref().unwrap_or_default().is_empty() && !ns.is_empty() {
        meta_ns = Some(ns.to_string());
    }
    meta_ns
}

/// Validating admission (Karmada `validating-config`): `Ok(())` to allow,
/// [`AdmissionError::Denied`] with Karmada's message and the field causes to
/// deny. DELETE of any resource is checked for deletion protection.
pub fn validate(req: &Request<'_>) -> Result<()> {
    use Operation::*;
    if req.operation == Delete {
        let labels: Option<std::collections::BTreeMap<String, String>> = req
            .object
            .pointer("/metadata/labels")
            .and_then(|l| serde_json::from_value(l.clone()).ok());
        return match validation::deletion_denied(labels.as_ref()) {
            Some(message) => Err(AdmissionError::Denied {
                message,
                causes: Vec::new(),
            }),
            None => Ok(()),
        };
    }
    let old = |v: Option<&Value>| v.filter(|_| req.operation == Update).cloned();
    match (req.resource, req.operation) {
        ("propagationpolicies", Create | Update) => {
            let mut p: policy::PropagationPolicy = decode(req.object)?;
            p.metadata.namespace = with_namespace(p.metadata.namespace.take(), req.namespace);
            let o: Option<policy::PropagationPolicy> =
                old(req.old_object).map(|v| decode(&v)).transpose()?;
            denied(validation::validate_propagation_policy(&p, o.as_ref()))
        }
        ("clusterpropagationpolicies", Create | Update) => {
            let p: policy::ClusterPropagationPolicy = decode(req.object)?;
            let o: Option<policy::ClusterPropagationPolicy> =
                old(req.old_object).map(|v| decode(&v)).transpose()?;
            denied(validation::validate_cluster_propagation_policy(
                &p,
                o.as_ref(),
            ))
        }
        ("overridepolicies", Create | Update) => {
            let mut p: policy::OverridePolicy = decode(req.object)?;
            p.metadata.namespace = with_namespace(p.metadata.namespace.take(), req.namespace);
            denied(validation::validate_override_policy(&p))
        }
        ("clusteroverridepolicies", Create | Update) => {
            let p: policy::ClusterOverridePolicy = decode(req.object)?;
            denied(validation::validate_cluster_override_policy(&p))
        }
        ("federatedhpas", Create | Update) => {
            let mut h: autoscaling::FederatedHPA = decode(req.object)?;
            h.metadata.namespace = with_namespace(h.metadata.namespace.take(), req.namespace);
            denied(validation::validate_federated_hpa(&h))
        }
        ("cronfederatedhpas", Create | Update) => {
            let mut h: autoscaling::CronFederatedHPA = decode(req.object)?;
            h.metadata.namespace = with_namespace(h.metadata.namespace.take(), req.namespace);
            denied(validation::validate_cron_federated_hpa(&h))
        }
        ("multiclusterservices", Create | Update) => {
            let mut m: networking::MultiClusterService = decode(req.object)?;
            m.metadata.namespace = with_namespace(m.metadata.namespace.take(), req.namespace);
            let o: Option<networking::MultiClusterService> =
                old(req.old_object).map(|v| decode(&v)).transpose()?;
            denied(validation::validate_multi_cluster_service(&m, o.as_ref()))
        }
        ("multiclusteringresses", Create | Update) => {
            let mut m: networking::MultiClusterIngress = decode(req.object)?;
            m.metadata.namespace = with_namespace(m.metadata.namespace.take(), req.namespace);
            match old(req.old_object) {
                Some(o) => {
                    let mut o: networking::MultiClusterIngress = decode(&o)?;
                    o.metadata.namespace =
                        with_namespace(o.metadata.namespace.take(), req.namespace);
                    denied(validation::validate_multi_cluster_ingress_update(&m, &o))
                }
                None => denied(validation::validate_multi_cluster_ingress(&m)),
            }
        }
        ("clustertaintpolicies", Create | Update) => {
            let taints = req.object.pointer("/spec/taints").unwrap_or(&Value::Null);
            if !(taints.is_null() || taints.is_array()) {
                return Err(AdmissionError::BadRequest(
                    "spec.taints: expected an array".into(),
                ));
            }
            denied(validation::validate_cluster_taint_policy_taints(
                taints.as_array().map(Vec::as_slice).unwrap_or_default(),
                req.allow_no_execute_taint_policy,
            ))
        }
        ("resourcebindings", Create | Update) => {
            let annotations: Option<std::collections::BTreeMap<String, String>> = req
                .object
                .pointer("/metadata/annotations")
                .and_then(|a| serde_json::from_value(a.clone()).ok());
            denied(validation::validate_binding_dependencies_annotation(
                annotations.as_ref(),
            ))
        }
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn req<'a>(resource: &'a str, operation: Operation, object: &'a Value) -> Request<'a> {
        Request {
            resource,
            operation,
            namespace: "default",
            object,
            old_object: None,
            new_id: "11111111-1111-4111-8111-111111111111",
            allow_no_execute_taint_policy: false,
        }
    }

    fn pp() -> Value {
        json!({
            "apiVersion": "policy.karmada.io/v1alpha1", "kind": "PropagationPolicy",
            "metadata": {"name": "nginx-propagation", "namespace": "default"},
            "spec": {
                "resourceSelectors": [{"apiVersion": "apps/v1", "kind": "Deployment", "name": "nginx"}],
                "placement": {"replicaScheduling": {"replicaSchedulingType": "Divided"}}
            }
        })
    }

    #[test]
    fn pp_create_is_mutated_then_valid() {
        let obj = pp();
        let mutated = mutate(&req("propagationpolicies", Operation::Create, &obj))
            .unwrap()
            .unwrap();
        assert_eq!(
            mutated["metadata"]["labels"]["propagationpolicy.karmada.io/permanent-id"],
            "11111111-1111-4111-8111-111111111111"
        );
        assert_eq!(
            mutated["metadata"]["finalizers"],
            json!(["karmada.io/propagation-policy-controller"])
        );
        assert_eq!(
            mutated["spec"]["resourceSelectors"][0]["namespace"],
            "default"
        );
        assert_eq!(
            mutated["spec"]["placement"]["replicaScheduling"]["replicaDivisionPreference"],
            "Weighted"
        );
        assert!(validate(&req("propagationpolicies", Operation::Create, &mutated)).is_ok());
        let err = validate(&req("propagationpolicies", Operation::Create, &obj)).unwrap_err();
        assert_eq!(
            err.to_string(),
            "label propagationpolicy.karmada.io/permanent-id is required, it should be set by the mutating admission webhook during creation"
        );
    }

    #[test]
    fn pp_update_keeps_identity() {
        let obj = pp();
        let created = mutate(&req("propagationpolicies", Operation::Create, &obj))
            .unwrap()
            .unwrap();
        let mut updated = created.clone();
        updated["spec"]["schedulerName"] = json!("other");
        let mut r = req("propagationpolicies", Operation::Update, &updated);
        r.old_object = Some(&created);
        let err = validate(&r).unwrap_err();
        assert_eq!(err.to_string(), "the schedulerName should not be updated");
        let again = mutate(&req("propagationpolicies", Operation::Update, &created))
            .unwrap()
            .unwrap();
        assert_eq!(again["metadata"]["labels"], created["metadata"]["labels"]);
    }

    #[test]
    fn denial_carries_causes() {
        let mut obj = mutate(&req("propagationpolicies", Operation::Create, &pp()))
            .unwrap()
            .unwrap();
        obj["spec"]["placement"]["clusterAffinity"] = json!({"fieldSelector": {"matchExpressions": [{"key": "foo", "operator": "In", "values": ["a"]}]}});
        match validate(&req("propagationpolicies", Operation::Create, &obj)).unwrap_err() {
            AdmissionError::Denied { message, causes } => {
                assert_eq!(
                    causes[0].field,
                    "spec.placement.clusterAffinity.fieldSelector"
                );
                assert!(
                    message.contains("unsupported key \"foo\", must be provider, region, or zone")
                );
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn bad_shapes_are_bad_requests() {
        let obj = json!({"apiVersion": "policy.karmada.io/v1alpha1", "kind": "PropagationPolicy", "metadata": {"name": "x"}, "spec": {"resourceSelectors": "nope"}});
        assert!(matches!(
            mutate(&req("propagationpolicies", Operation::Create, &obj)),
            Err(AdmissionError::BadRequest(_))
        ));
    }

    #[test]
    fn routing_and_deletion_protection() {
        let cm = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c", "labels": {"resourcetemplate.karmada.io/deletion-protected": "Always"}}});
        assert!(
            mutate(&req("configmaps", Operation::Create, &cm))
                .unwrap()
                .is_none()
        );
        assert!(validate(&req("configmaps", Operation::Create, &cm)).is_ok());
        let err = validate(&req("configmaps", Operation::Delete, &cm)).unwrap_err();
        assert_eq!(
            err.to_string(),
            "This resource is protected, please make sure to remove the label: resourcetemplate.karmada.io/deletion-protected"
        );
        // Bindings only get their id on CREATE.
        let rb = json!({"apiVersion": "work.karmada.io/v1alpha2", "kind": "ResourceBinding", "metadata": {"name": "r", "namespace": "default"}, "spec": {"resource": {"apiVersion": "v1", "kind": "ConfigMap", "name": "c"}}});
        assert!(
            mutate(&req("resourcebindings", Operation::Update, &rb))
                .unwrap()
                .is_none()
        );
        let out = mutate(&req("resourcebindings", Operation::Create, &rb))
            .unwrap()
            .unwrap();
        assert_eq!(
            out["metadata"]["labels"]["resourcebinding.karmada.io/permanent-id"],
            "11111111-1111-4111-8111-111111111111"
        );
        assert_eq!(Operation::parse("DELETE"), Some(Operation::Delete));
        assert_eq!(Operation::parse("PATCH"), None);
    }

    /// Mutation is idempotent (Kubernetes may reinvoke mutating webhooks).
    #[test]
    fn mutation_is_idempotent() {
        let objects = [
            ("propagationpolicies", pp()),
            (
                "overridepolicies",
                json!({"apiVersion": "policy.karmada.io/v1alpha1", "kind": "OverridePolicy", "metadata": {"name": "o", "namespace": "default"}, "spec": {"resourceSelectors": [{"apiVersion": "v1", "kind": "ConfigMap"}]}}),
            ),
            (
                "works",
                json!({"apiVersion": "work.karmada.io/v1alpha1", "kind": "Work", "metadata": {"name": "w", "namespace": "karmada-es-m1"}, "spec": {"workload": {"manifests": [{"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c", "namespace": "default", "uid": "x", "labels": {"a": "b"}}}]}}}),
            ),
            (
                "federatedhpas",
                json!({"apiVersion": "autoscaling.karmada.io/v1alpha1", "kind": "FederatedHPA", "metadata": {"name": "h", "namespace": "default"}, "spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "n"}, "maxReplicas": 3, "behavior": {}}}),
            ),
        ];
        for (resource, obj) in objects {
            let once = mutate(&req(resource, Operation::Create, &obj))
                .unwrap()
                .unwrap();
            let twice = mutate(&req(resource, Operation::Create, &once))
                .unwrap()
                .unwrap();
            assert_eq!(once, twice, "{resource}");
        }
    }

    #[test]
    fn cluster_taint_policy_taints() {
        let ctp = |taints: Value| {
            json!({"apiVersion": "policy.karmada.io/v1alpha1", "kind": "ClusterTaintPolicy",
                   "metadata": {"name": "t"}, "spec": {"taints": taints}})
        };
        let ok = ctp(
            json!([{"key": "a", "effect": "NoSchedule"}, {"key": "a", "effect": "PreferNoSchedule"}]),
        );
        assert!(validate(&req("clustertaintpolicies", Operation::Create, &ok)).is_ok());
        let dup = ctp(
            json!([{"key": "a", "effect": "NoSchedule"}, {"key": "a", "effect": "NoSchedule", "value": "x"}]),
        );
        let err = validate(&req("clustertaintpolicies", Operation::Create, &dup)).unwrap_err();
        assert_eq!(
            err.to_string(),
            "spec.taints[0]: Duplicate value: \"Duplicate taint with the same key(a) and effect(NoSchedule) is not allowed\""
        );
        let no_execute = ctp(json!([{"key": "b", "effect": "NoExecute"}]));
        let mut r = req("clustertaintpolicies", Operation::Update, &no_execute);
        let err = validate(&r).unwrap_err();
        assert_eq!(
            err.to_string(),
            "spec.taints[0]: Forbidden: Configuring taint with NoExecute effect is not allowed, this capability must be explicitly enabled by administrators through command-line flags"
        );
        r.allow_no_execute_taint_policy = true;
        assert!(validate(&r).is_ok());
    }

    #[test]
    fn fhpa_defaults_then_validates() {
        let h = json!({"apiVersion": "autoscaling.karmada.io/v1alpha1", "kind": "FederatedHPA", "metadata": {"name": "h", "namespace": "default"},
                       "spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "n"}, "maxReplicas": 3}});
        let out = mutate(&req("federatedhpas", Operation::Create, &h))
            .unwrap()
            .unwrap();
        assert_eq!(out["spec"]["minReplicas"], 1);
        assert!(validate(&req("federatedhpas", Operation::Create, &out)).is_ok());
        let mut bad = out.clone();
        bad["spec"]["maxReplicas"] = json!(0);
        assert!(validate(&req("federatedhpas", Operation::Create, &bad)).is_err());
    }
}
