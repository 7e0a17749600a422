//! The MutatingWebhookConfiguration and ValidatingWebhookConfiguration that
//! route the Karmada API to this webhook — the same webhooks, rules, paths,
//! timeouts and `failurePolicy: Fail` as Karmada registers them. `flotilla up`
//! registers them with [`configurations`]; `deploy/webhook/` holds them
//! rendered for a `karmada-webhook` Service in `karmada-system`.

use serde_json::{Value, json};

/// The namespace of Karmada's components.
pub const SYSTEM_NAMESPACE: &str = "karmada-system";
/// The Service the webhook is reached through, as in Karmada.
pub const SERVICE_NAME: &str = "karmada-webhook";
/// Name of the MutatingWebhookConfiguration (Karmada's).
pub const MUTATING_NAME: &str = "mutating-config";
/// Name of the ValidatingWebhookConfiguration (Karmada's).
pub const VALIDATING_NAME: &str = "validating-config";

/// How the API server reaches the webhook.
#[derive(Debug, Clone)]
pub enum Target {
    /// Through a Service: `https://NAME.NAMESPACE.svc:PORT/<path>`.
    Service {
        /// Service namespace.
        namespace: String,
        /// Service name.
        name: String,
        /// Service port.
        port: u16,
    },
    /// A base URL such as `https://127.0.0.1:8443`; the path is appended.
    Url(String),
}

impl Target {
    /// `karmada-webhook` in `karmada-system`, port 443.
    pub fn karmada_service() -> Self {
        Target::Service {
            namespace: SYSTEM_NAMESPACE.into(),
            name: SERVICE_NAME.into(),
            port: 443,
        }
    }

    /// The `clientConfig` for `path`, with `ca_bundle` (base64 PEM) when given.
    pub fn client_config(&self, path: &str, ca_bundle: Option<&str>) -> Value {
        let mut c = match self {
            Target::Service {
                namespace,
                name,
                port,
            } => {
                json!({"service": {"namespace": namespace, "name": name, "path": path, "port": port}})
            }
            Target::Url(base) => json!({"url": format!("{}{path}", base.trim_end_matches('/'))}),
        };
        if let Some(ca) = ca_bundle {
            c["caBundle"] = json!(ca);
        }
        c
    }
}

struct Hook {
    name: &'static str,
    path: &'static str,
    group: &'static str,
    resource: &'static str,
    operations: &'static [&'static str],
    scope: &'static str,
    timeout: u32,
}

const CU: &[&str] = &["CREATE", "UPDATE"];

const fn hook(
    name: &'static str,
    path: &'static str,
    group: &'static str,
    resource: &'static str,
    scope: &'static str,
) -> Hook {
    Hook {
        name,
        path,
        group,
        resource,
        operations: CU,
        scope,
        timeout: 3,
    }
}

const MUTATING: &[Hook] = &[
    hook(
        "propagationpolicy.karmada.io",
        "/mutate-propagationpolicy",
        "policy.karmada.io",
        "propagationpolicies",
        "Namespaced",
    ),
    hook(
        "clusterpropagationpolicy.karmada.io",
        "/mutate-clusterpropagationpolicy",
        "policy.karmada.io",
        "clusterpropagationpolicies",
        "Cluster",
    ),
    hook(
        "overridepolicy.karmada.io",
        "/mutate-overridepolicy",
        "policy.karmada.io",
        "overridepolicies",
        "Namespaced",
    ),
    Hook {
        operations: &["CREATE"],
        ..hook(
            "resourcebinding.karmada.io",
            "/mutate-resourcebinding",
            "work.karmada.io",
            "resourcebindings",
            "Namespaced",
        )
    },
    Hook {
        operations: &["CREATE"],
        ..hook(
            "clusterresourcebinding.karmada.io",
            "/mutate-clusterresourcebinding",
            "work.karmada.io",
            "clusterresourcebindings",
            "Cluster",
        )
    },
    hook(
        "work.karmada.io",
        "/mutate-work",
        "work.karmada.io",
        "works",
        "Namespaced",
    ),
    hook(
        "autoscaling.karmada.io",
        "/mutate-federatedhpa",
        "autoscaling.karmada.io",
        "federatedhpas",
        "Namespaced",
    ),
    hook(
        "multiclusterservice.karmada.io",
        "/mutate-multiclusterservice",
        "networking.karmada.io",
        "multiclusterservices",
        "Namespaced",
    ),
];

const VALIDATING: &[Hook] = &[
    hook(
        "propagationpolicy.karmada.io",
        "/validate-propagationpolicy",
        "policy.karmada.io",
        "propagationpolicies",
        "Namespaced",
    ),
    hook(
        "clusterpropagationpolicy.karmada.io",
        "/validate-clusterpropagationpolicy",
        "policy.karmada.io",
        "clusterpropagationpolicies",
        "Cluster",
    ),
    hook(
        "overridepolicy.karmada.io",
        "/validate-overridepolicy",
        "policy.karmada.io",
        "overridepolicies",
        "Namespaced",
    ),
    hook(
        "clusteroverridepolicy.karmada.io",
        "/validate-clusteroverridepolicy",
        "policy.karmada.io",
        "clusteroverridepolicies",
        "Cluster",
    ),
    hook(
        "config.karmada.io",
        "/validate-resourceinterpreterwebhookconfiguration",
        "config.karmada.io",
        "resourceinterpreterwebhookconfigurations",
        "Cluster",
    ),
    Hook {
        timeout: 10,
        ..hook(
            "resourceinterpretercustomization.karmada.io",
            "/validate-resourceinterpretercustomization",
            "config.karmada.io",
            "resourceinterpretercustomizations",
            "Cluster",
        )
    },
    hook(
        "federatedresourcequota.karmada.io",
        "/validate-federatedresourcequota",
        "policy.karmada.io",
        "federatedresourcequotas",
        "Namespaced",
    ),
    hook(
        "multiclusteringress.karmada.io",
        "/validate-multiclusteringress",
        "networking.karmada.io",
        "multiclusteringresses",
        "Namespaced",
    ),
    hook(
        "federatedhpa.karmada.io",
        "/validate-federatedhpa",
        "autoscaling.karmada.io",
        "federatedhpas",
        "Namespaced",
    ),
    hook(
        "cronfederatedhpa.karmada.io",
        "/validate-cronfederatedhpa",
        "autoscaling.karmada.io",
        "cronfederatedhpas",
        "Namespaced",
    ),
    hook(
        "multiclusterservice.karmada.io",
        "/validate-multiclusterservice",
        "networking.karmada.io",
        "multiclusterservices",
        "Namespaced",
    ),
    Hook {
        operations: &["DELETE"],
        ..hook(
            "resourcedeletionprotection.karmada.io",
            "/validate-resourcedeletionprotection",
            "*",
            "*",
            "*",
        )
    },
    hook(
        "resourcebinding.karmada.io",
        "/validate-resourcebinding",
        "work.karmada.io",
        "resourcebindings",
        "Namespaced",
    ),
    hook(
        "clustertaintpolicy.karmada.io",
        "/validate-clustertaintpolicy",
        "policy.karmada.io",
        "clustertaintpolicies",
        "Cluster",
    ),
];

fn webhook(h: &Hook, target: &Target, ca_bundle: Option<&str>) -> Value {
    let api_versions = ["*"];
    let mut w = json!({
        "name": h.name,
        "rules": [{
            "operations": h.operations,
            "apiGroups": [h.group],
            "apiVersions": api_versions,
            "resources": [h.resource],
            "scope": h.scope,
        }],
        "clientConfig": target.client_config(h.path, ca_bundle),
        "failurePolicy": "Fail",
        // Karmada's binding validation may reach quota state; the rest is pure.
        "sideEffects": if h.path == "/validate-resourcebinding" { "NoneOnDryRun" } else { "None" },
        "admissionReviewVersions": ["v1"],
        "timeoutSeconds": h.timeout,
    });
    if h.path == "/validate-resourcedeletionprotection" {
        w["objectSelector"] = json!({"matchExpressions": [{
            "key": flotilla_api::validation::DELETION_PROTECTION_LABEL,
            "operator": "Exists",
        }]});
    }
    w
}

/// The MutatingWebhookConfiguration and the ValidatingWebhookConfiguration,
/// in that order, reaching the webhook at `target`.
pub fn configurations(target: &Target, ca_bundle: Option<&str>) -> (Value, Value) {
    let config = |kind: &str, name: &str, hooks: &[Hook]| {
        json!({
            "apiVersion": "admissionregistration.k8s.io/v1",
            "kind": kind,
            "metadata": {"name": name, "labels": {"app": SERVICE_NAME}},
            "webhooks": hooks.iter().map(|h| webhook(h, target, ca_bundle)).collect::<Vec<_>>(),
        })
    };
    (
        config("MutatingWebhookConfiguration", MUTATING_NAME, MUTATING),
        config(
            "ValidatingWebhookConfiguration",
            VALIDATING_NAME,
            VALIDATING,
        ),
    )
}

/// The conversion `spec.conversion` of the binding CRDs, reaching `/convert` at `target`.
pub fn conversion(target: &Target, ca_bundle: Option<&str>) -> Value {
    json!({
        "strategy": "Webhook",
        "webhook": {
            "clientConfig": target.client_config("/convert", ca_bundle),
            "conversionReviewVersions": ["v1"],
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_hook_has_a_route_of_its_phase() {
        let (m, v) = configurations(&Target::karmada_service(), Some("Q0E="));
        for (config, phase, count) in [
            (&m, crate::handler::Phase::Mutate, 8),
            (&v, crate::handler::Phase::Validate, 14),
        ] {
            let hooks = config["webhooks"].as_array().expect("webhooks");
            assert_eq!(hooks.len(), count);
            for h in hooks {
                let path = h["clientConfig"]["service"]["path"].as_str().expect("path");
                let route = crate::handler::find_route(path).expect("served");
                assert_eq!(route.phase, phase, "{path}");
                assert_eq!(h["failurePolicy"], "Fail");
                assert_eq!(h["clientConfig"]["caBundle"], "Q0E=");
                let resource = h["rules"][0]["resources"][0].as_str().expect("resource");
                assert_eq!(route.resource, resource, "{path}");
            }
        }
        let url = Target::Url("https://webhook.example:9443/".into());
        assert_eq!(
            url.client_config("/convert", None),
            json!({"url": "https://webhook.example:9443/convert"})
        );
    }

    /// `deploy/webhook/webhook-configuration.yaml` equals what the code renders.
    /// Regenerate with `FLOTILLA_UPDATE_DEPLOY=1 cargo test -p flotilla-webhook configuration`.
    #[test]
    fn deploy_manifest_is_current() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../deploy/webhook/webhook-configuration.yaml");
        let (m, v) = configurations(&Target::karmada_service(), None);
        let yaml = |v: &Value| flotilla_api::crd::to_yaml(v).expect("render");
        let text = format!(
            "# Generated from webhook/src/configuration.rs; the caBundle of each clientConfig\n\
             # is added at install time (see docs/user-guide.md).\n{}---\n{}",
            yaml(&m),
            yaml(&v)
        );
        if std::env::var_os("FLOTILLA_UPDATE_DEPLOY").is_some() {
            std::fs::write(&path, &text).expect("write");
        }
        let committed = std::fs::read_to_string(&path).unwrap_or_default();
        assert!(
            committed == text,
            "{} differs from the rendered configuration; regenerate with FLOTILLA_UPDATE_DEPLOY=1",
            path.display()
        );
    }
}
