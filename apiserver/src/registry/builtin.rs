//! The built-in Kubernetes kinds flotilla serves from the start, as data.

use super::{NameRule, Printer, ResourceInfo};

struct Spec {
    group: &'static str,
    version: &'static str,
    kind: &'static str,
    plural: &'static str,
    short: &'static [&'static str],
    namespaced: bool,
}

fn info(spec: Spec) -> ResourceInfo {
    let Spec {
        group,
        version,
        kind,
        plural,
        short,
        namespaced,
    } = spec;
    let openapi_prefix = match group {
        "" => "io.k8s.api.core.v1".to_string(),
        "apiextensions.k8s.io" => {
            format!("io.k8s.apiextensions-apiserver.pkg.apis.apiextensions.{version}")
        }
        "apiregistration.k8s.io" => {
            format!("io.k8s.kube-aggregator.pkg.apis.apiregistration.{version}")
        }
        g => format!("io.k8s.api.{}.{version}", g.split('.').next().unwrap_or(g)),
    };
    ResourceInfo {
        group: group.into(),
        version: version.into(),
        kind: kind.into(),
        plural: plural.into(),
        singular: kind.to_ascii_lowercase(),
        short_names: short.iter().map(|s| s.to_string()).collect(),
        categories: Vec::new(),
        namespaced,
        status_subresource: false,
        scale_subresource: false,
        printer: Printer::NameAge,
        field_selectors: Vec::new(),
        name_rule: NameRule::Subdomain,
        tracks_generation: false,
        openapi_prefix,
        custom: None,
        create_only: false,
    }
}

macro_rules! spec {
    ($group:expr, $version:expr, $kind:expr, $plural:expr, [$($short:expr),*], $ns:expr) => {
        info(Spec { group: $group, version: $version, kind: $kind, plural: $plural, short: &[$($short),*], namespaced: $ns })
    };
}

/// Every built-in resource, in discovery order.
pub fn resources() -> Vec<ResourceInfo> {
    let mut out = Vec::new();
    let mut add = |mut r: ResourceInfo, f: &dyn Fn(&mut ResourceInfo)| {
        f(&mut r);
        out.push(r);
    };
    let all = |r: &mut ResourceInfo| r.categories = vec!["all".into()];
    let workload = |r: &mut ResourceInfo| {
        r.categories = vec!["all".into()];
        r.status_subresource = true;
        r.tracks_generation = true;
        r.printer = Printer::Builtin(r.plural.clone());
    };

    // core/v1
    add(
        spec!("", "v1", "Namespace", "namespaces", ["ns"], false),
        &|r| {
            r.name_rule = NameRule::Label;
            r.status_subresource = true;
            r.printer = Printer::Builtin("namespaces".into());
            r.field_selectors = vec!["status.phase"];
        },
    );
    add(spec!("", "v1", "Pod", "pods", ["po"], true), &|r| {
        all(r);
        r.status_subresource = true;
        r.printer = Printer::Builtin("pods".into());
        r.field_selectors = vec![
            "spec.nodeName",
            "spec.restartPolicy",
            "spec.schedulerName",
            "spec.serviceAccountName",
            "spec.hostNetwork",
            "status.phase",
            "status.podIP",
            "status.nominatedNodeName",
        ];
    });
    add(
        spec!("", "v1", "Service", "services", ["svc"], true),
        &|r| {
            all(r);
            r.name_rule = NameRule::Label;
            r.status_subresource = true;
            r.printer = Printer::Builtin("services".into());
            r.field_selectors = vec!["spec.clusterIP", "spec.type"];
        },
    );
    add(
        spec!("", "v1", "Endpoints", "endpoints", ["ep"], true),
        &|r| {
            r.printer = Printer::Builtin("endpoints".into());
        },
    );
    add(
        spec!("", "v1", "ConfigMap", "configmaps", ["cm"], true),
        &|r| {
            r.printer = Printer::Builtin("configmaps".into());
        },
    );
    add(spec!("", "v1", "Secret", "secrets", [], true), &|r| {
        r.printer = Printer::Builtin("secrets".into());
        r.field_selectors = vec!["type"];
    });
    add(
        spec!("", "v1", "ServiceAccount", "serviceaccounts", ["sa"], true),
        &|r| {
            r.printer = Printer::Builtin("serviceaccounts".into());
        },
    );
    add(spec!("", "v1", "Event", "events", ["ev"], true), &|r| {
        r.printer = Printer::Builtin("events".into());
        r.name_rule = NameRule::PathSegment;
        r.field_selectors = vec![
            "involvedObject.kind",
            "involvedObject.namespace",
            "involvedObject.name",
            "involvedObject.uid",
            "involvedObject.apiVersion",
            "involvedObject.resourceVersion",
            "involvedObject.fieldPath",
            "reason",
            "reportingComponent",
            "source",
            "type",
        ];
    });
    add(spec!("", "v1", "Node", "nodes", ["no"], false), &|r| {
        r.status_subresource = true;
        r.printer = Printer::Builtin("nodes".into());
        r.field_selectors = vec!["spec.unschedulable"];
    });
    add(
        spec!(
            "",
            "v1",
            "PersistentVolumeClaim",
            "persistentvolumeclaims",
            ["pvc"],
            true
        ),
        &|r| {
            r.status_subresource = true;
            r.printer = Printer::Builtin("persistentvolumeclaims".into());
        },
    );
    // apps/v1
    add(
        spec!("apps", "v1", "Deployment", "deployments", ["deploy"], true),
        &|r| {
            workload(r);
            r.scale_subresource = true;
        },
    );
    add(
        spec!("apps", "v1", "ReplicaSet", "replicasets", ["rs"], true),
        &|r| {
            workload(r);
            r.scale_subresource = true;
            r.field_selectors = vec!["status.replicas"];
        },
    );
    add(
        spec!("apps", "v1", "StatefulSet", "statefulsets", ["sts"], true),
        &|r| {
            workload(r);
            r.scale_subresource = true;
        },
    );
    add(
        spec!("apps", "v1", "DaemonSet", "daemonsets", ["ds"], true),
        &workload,
    );
    // batch/v1
    add(spec!("batch", "v1", "Job", "jobs", [], true), &|r| {
        workload(r);
        r.field_selectors = vec!["status.successful"];
    });
    add(
        spec!("batch", "v1", "CronJob", "cronjobs", ["cj"], true),
        &workload,
    );
    // autoscaling/v2
    add(
        spec!(
            "autoscaling",
            "v2",
            "HorizontalPodAutoscaler",
            "horizontalpodautoscalers",
            ["hpa"],
            true
        ),
        &|r| {
            workload(r);
        },
    );
    // discovery.k8s.io/v1
    add(
        spec!(
            "discovery.k8s.io",
            "v1",
            "EndpointSlice",
            "endpointslices",
            [],
            true
        ),
        &|r| {
            r.printer = Printer::Builtin("endpointslices".into());
        },
    );
    // coordination.k8s.io/v1
    add(
        spec!("coordination.k8s.io", "v1", "Lease", "leases", [], true),
        &|r| {
            r.printer = Printer::Builtin("leases".into());
        },
    );
    // scheduling.k8s.io/v1
    add(
        spec!(
            "scheduling.k8s.io",
            "v1",
            "PriorityClass",
            "priorityclasses",
            ["pc"],
            false
        ),
        &|_| {},
    );
    // networking.k8s.io/v1
    add(
        spec!(
            "networking.k8s.io",
            "v1",
            "Ingress",
            "ingresses",
            ["ing"],
            true
        ),
        &|r| {
            r.status_subresource = true;
            r.tracks_generation = true;
            r.printer = Printer::Builtin("ingresses".into());
        },
    );
    add(
        spec!(
            "networking.k8s.io",
            "v1",
            "NetworkPolicy",
            "networkpolicies",
            ["netpol"],
            true
        ),
        &|_| {},
    );
    // policy/v1
    add(
        spec!(
            "policy",
            "v1",
            "PodDisruptionBudget",
            "poddisruptionbudgets",
            ["pdb"],
            true
        ),
        &|r| {
            r.status_subresource = true;
            r.tracks_generation = true;
        },
    );
    // rbac.authorization.k8s.io/v1
    for (kind, plural, namespaced) in [
        ("Role", "roles", true),
        ("ClusterRole", "clusterroles", false),
    ] {
        add(
            spec!(
                "rbac.authorization.k8s.io",
                "v1",
                kind,
                plural,
                [],
                namespaced
            ),
            &|r| {
                r.name_rule = NameRule::PathSegment;
                r.printer = Printer::NameCreatedAt;
            },
        );
    }
    for (kind, plural, namespaced) in [
        ("RoleBinding", "rolebindings", true),
        ("ClusterRoleBinding", "clusterrolebindings", false),
    ] {
        add(
            spec!(
                "rbac.authorization.k8s.io",
                "v1",
                kind,
                plural,
                [],
                namespaced
            ),
            &|r| {
                r.name_rule = NameRule::PathSegment;
                r.printer = Printer::Builtin("rolebindings".into());
            },
        );
    }
    // apiextensions.k8s.io/v1
    add(
        spec!(
            "apiextensions.k8s.io",
            "v1",
            "CustomResourceDefinition",
            "customresourcedefinitions",
            ["crd", "crds"],
            false
        ),
        &|r| {
            r.status_subresource = true;
            r.tracks_generation = true;
            r.printer = Printer::NameCreatedAt;
        },
    );
    // apiregistration.k8s.io/v1
    add(
        spec!(
            "apiregistration.k8s.io",
            "v1",
            "APIService",
            "apiservices",
            [],
            false
        ),
        &|r| {
            r.status_subresource = true;
            r.printer = Printer::Builtin("apiservices".into());
        },
    );
    // admissionregistration.k8s.io/v1
    for (kind, plural) in [
        (
            "MutatingWebhookConfiguration",
            "mutatingwebhookconfigurations",
        ),
        (
            "ValidatingWebhookConfiguration",
            "validatingwebhookconfigurations",
        ),
    ] {
        add(
            spec!(
                "admissionregistration.k8s.io",
                "v1",
                kind,
                plural,
                [],
                false
            ),
            &|r| {
                r.tracks_generation = true;
                r.printer = Printer::Builtin("webhookconfigurations".into());
            },
        );
    }
    // Reviews the server answers itself (kubectl auth can-i / whoami).
    for (group, kind, plural) in [
        (
            "authorization.k8s.io",
            "SelfSubjectAccessReview",
            "selfsubjectaccessreviews",
        ),
        (
            "authorization.k8s.io",
            "SelfSubjectRulesReview",
            "selfsubjectrulesreviews",
        ),
        (
            "authentication.k8s.io",
            "SelfSubjectReview",
            "selfsubjectreviews",
        ),
    ] {
        add(spec!(group, "v1", kind, plural, [], false), &|r| {
            r.create_only = true
        });
    }
    // Reviews for delegated authentication and authorization.
    for (group, kind, plural, namespaced) in [
        (
            "authentication.k8s.io",
            "TokenReview",
            "tokenreviews",
            false,
        ),
        (
            "authorization.k8s.io",
            "SubjectAccessReview",
            "subjectaccessreviews",
            false,
        ),
        (
            "authorization.k8s.io",
            "LocalSubjectAccessReview",
            "localsubjectaccessreviews",
            true,
        ),
    ] {
        add(spec!(group, "v1", kind, plural, [], namespaced), &|r| {
            r.create_only = true
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schema_prefixes_follow_go_packages() {
        let all = resources();
        let find = |p: &str| all.iter().find(|r| r.plural == p).expect("listed");
        assert_eq!(find("pods").openapi_prefix, "io.k8s.api.core.v1");
        assert_eq!(find("deployments").openapi_prefix, "io.k8s.api.apps.v1");
        assert_eq!(
            find("endpointslices").openapi_prefix,
            "io.k8s.api.discovery.v1"
        );
        assert_eq!(find("roles").openapi_prefix, "io.k8s.api.rbac.v1");
        assert_eq!(
            find("validatingwebhookconfigurations").openapi_prefix,
            "io.k8s.api.admissionregistration.v1"
        );
    }
}
