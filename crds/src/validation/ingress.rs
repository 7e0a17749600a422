//! MultiClusterIngress admission (Karmada `/validate-multiclusteringress`).
//! Karmada validates the object's metadata as any namespaced object, the
//! spec as a Kubernetes `networking/v1` IngressSpec (rules, hosts and
//! wildcards, paths and pathType, backends, defaultBackend, TLS, class name),
//! and on UPDATE the metadata's immutable fields and the load-balancer
//! status. Field paths and wording are Kubernetes' own.

use k8s_openapi::api::core::v1::TypedLocalObjectReference;
use k8s_openapi::api::networking::v1::{
    HTTPIngressPath, IngressBackend, IngressLoadBalancerStatus, IngressRule, IngressSpec,
};
use kube::core::ObjectMeta;

use super::{
    FieldError, dns1123_subdomain_errors, idx, path_segment_errors, validate_annotations,
    validate_labels, validate_namespaced_meta,
};
use crate::networking::MultiClusterIngress;

const WILDCARD_MESSAGE: &str = "a wildcard DNS-1123 subdomain must start with '*.', followed by a valid DNS subdomain, which must consist of lower case alphanumeric characters, '-' or '.' and end with an alphanumeric character (e.g. '*.example.com', regex used for validation is '\\*\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')";

/// CREATE (and the spec part of UPDATE): metadata, then the IngressSpec.
pub fn validate_multi_cluster_ingress(m: &MultiClusterIngress) -> Vec<FieldError> {
    let mut errs = validate_object_meta(&m.metadata);
    errs.extend(validate_ingress_spec(&m.spec.0, "spec"));
    errs
}

/// UPDATE: immutable metadata, the CREATE rules, and the load-balancer status.
pub fn validate_multi_cluster_ingress_update(
    new: &MultiClusterIngress,
    old: &MultiClusterIngress,
) -> Vec<FieldError> {
    let mut errs = validate_object_meta_update(&new.metadata, &old.metadata);
    errs.extend(validate_multi_cluster_ingress(new));
    if let Some(lb) = new.status.as_ref().and_then(|s| s.load_balancer.as_ref()) {
        errs.extend(validate_load_balancer_status(lb, "status.loadBalancer"));
    }
    errs
}

/// `ValidateObjectMeta` of a namespaced object whose name is a DNS subdomain.
fn validate_object_meta(meta: &ObjectMeta) -> Vec<FieldError> {
    let mut errs = validate_namespaced_meta(meta);
    if let Some(labels) = &meta.labels {
        errs.extend(validate_labels(labels, "metadata.labels"));
    }
    if let Some(annotations) = &meta.annotations {
        errs.extend(validate_annotations(annotations, "metadata.annotations"));
    }
    errs
}

/// `ValidateObjectMetaUpdate`: what identifies the object cannot change.
fn validate_object_meta_update(new: &ObjectMeta, old: &ObjectMeta) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let immutable = |field: &str, value: serde_json::Value| {
        FieldError::invalid(field, value, "field is immutable")
    };
    if new.name != old.name {
        errs.push(immutable("metadata.name", serde_json::json!(new.name)));
    }
    if new.namespace != old.namespace {
        errs.push(immutable(
            "metadata.namespace",
            serde_json::json!(new.namespace),
        ));
    }
    if old.uid.is_some() && new.uid != old.uid {
        errs.push(immutable("metadata.uid", serde_json::json!(new.uid)));
    }
    if old.creation_timestamp.is_some() && new.creation_timestamp != old.creation_timestamp {
        errs.push(immutable(
            "metadata.creationTimestamp",
            serde_json::to_value(&new.creation_timestamp).unwrap_or_default(),
        ));
    }
    errs
}

/// `ValidateIngressSpec` with Karmada's options (no invalid secret names, no
/// relaxed rules under wildcard hosts).
pub fn validate_ingress_spec(spec: &IngressSpec, path: &str) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let rules = spec.rules.as_deref().unwrap_or_default();
    if rules.is_empty() && spec.default_backend.is_none() {
        errs.push(FieldError::invalid(
            path,
            &spec.rules,
            "either `defaultBackend` or `rules` must be specified",
        ));
    }
    if let Some(b) = &spec.default_backend {
        errs.extend(validate_backend(b, &format!("{path}.defaultBackend")));
    }
    if !rules.is_empty() {
        errs.extend(validate_rules(rules, &format!("{path}.rules")));
    }
    for (t, tls) in spec.tls.iter().flatten().enumerate() {
        let tp = idx(&format!("{path}.tls"), t);
        for (i, host) in tls.hosts.iter().flatten().enumerate() {
            let hp = idx(&format!("{tp}.hosts"), i);
            let messages = if host.contains('*') {
                wildcard_subdomain_errors(host)
            } else {
                dns1123_subdomain_errors(host)
            };
            for m in messages {
                errs.push(FieldError::invalid(&hp, host, m));
            }
        }
        if let Some(secret) = tls.secret_name.as_deref().filter(|s| !s.is_empty()) {
            for m in dns1123_subdomain_errors(secret) {
                errs.push(FieldError::invalid(&format!("{tp}.secretName"), secret, m));
            }
        }
    }
    if let Some(class) = &spec.ingress_class_name {
        for m in dns1123_subdomain_errors(class) {
            errs.push(FieldError::invalid(
                &format!("{path}.ingressClassName"),
                class,
                m,
            ));
        }
    }
    errs
}

fn validate_rules(rules: &[IngressRule], path: &str) -> Vec<FieldError> {
    let mut errs = Vec::new();
    for (i, rule) in rules.iter().enumerate() {
        let rp = idx(path, i);
        if let Some(host) = rule.host.as_deref().filter(|h| !h.is_empty()) {
            let hp = format!("{rp}.host");
            if is_ip(host) {
                errs.push(FieldError::invalid(
                    &hp,
                    host,
                    "must be a DNS name, not an IP address",
                ));
            }
            let messages = if host.contains('*') {
                wildcard_subdomain_errors(host)
            } else {
                dns1123_subdomain_errors(host)
            };
            for m in messages {
                errs.push(FieldError::invalid(&hp, host, m));
            }
        }
        if let Some(http) = &rule.http {
            let pp = format!("{rp}.http.paths");
            if http.paths.is_empty() {
                errs.push(FieldError::required(&pp, ""));
            }
            for (j, p) in http.paths.iter().enumerate() {
                errs.extend(validate_path(p, &idx(&pp, j)));
            }
        }
    }
    errs
}

fn validate_path(p: &HTTPIngressPath, path: &str) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let value = p.path.as_deref().unwrap_or_default();
    let field = format!("{path}.path");
    match p.path_type.as_str() {
        "Exact" | "Prefix" => {
            if !value.starts_with('/') {
                errs.push(FieldError::invalid(
                    &field,
                    value,
                    "must be an absolute path",
                ));
            }
            if !value.is_empty() {
                for seq in ["//", "/./", "/../", "%2f", "%2F"] {
                    if value.contains(seq) {
                        errs.push(FieldError::invalid(
                            &field,
                            value,
                            format!("must not contain '{seq}'"),
                        ));
                    }
                }
                for suffix in ["/..", "/."] {
                    if value.ends_with(suffix) {
                        errs.push(FieldError::invalid(
                            &field,
                            value,
                            format!("cannot end with '{suffix}'"),
                        ));
                    }
                }
            }
        }
        "ImplementationSpecific" => {
            if !value.is_empty() && !value.starts_with('/') {
                errs.push(FieldError::invalid(
                    &field,
                    value,
                    "must be an absolute path",
                ));
            }
        }
        "" => {
            return vec![FieldError::required(
                &format!("{path}.pathType"),
                "pathType must be specified",
            )];
        }
        other => errs.push(FieldError::not_supported(
            &format!("{path}.pathType"),
            other,
            &["Exact", "ImplementationSpecific", "Prefix"],
        )),
    }
    errs.extend(validate_backend(&p.backend, &format!("{path}.backend")));
    errs
}

fn validate_backend(b: &IngressBackend, path: &str) -> Vec<FieldError> {
    let mut errs = Vec::new();
    match (&b.resource, &b.service) {
        (Some(_), Some(_)) => errs.push(FieldError::invalid(
            path,
            "",
            "cannot set both resource and service backends",
        )),
        (Some(r), None) => errs.extend(validate_typed_reference(r, &format!("{path}.resource"))),
        (None, Some(s)) => {
            let name_path = format!("{path}.service.name");
            if s.name.is_empty() {
                errs.push(FieldError::required(&name_path, ""));
            } else {
                for m in super::dns1035_label_errors(&s.name) {
                    errs.push(FieldError::invalid(&name_path, &s.name, m));
                }
            }
            let port_name = s
                .port
                .as_ref()
                .and_then(|p| p.name.as_deref())
                .unwrap_or_default();
            let port_number = s.port.as_ref().and_then(|p| p.number).unwrap_or(0);
            match (port_name.is_empty(), port_number == 0) {
                (false, false) => errs.push(FieldError::invalid(
                    path,
                    "",
                    "cannot set both port name & port number",
                )),
                (false, true) => {
                    for m in port_name_errors(port_name) {
                        errs.push(FieldError::invalid(
                            &format!("{path}.service.port.name"),
                            port_name,
                            m,
                        ));
                    }
                }
                (true, false) => {
                    if !(1..=65535).contains(&port_number) {
                        errs.push(FieldError::invalid(
                            &format!("{path}.service.port.number"),
                            port_number,
                            "must be between 1 and 65535, inclusive",
                        ));
                    }
                }
                (true, true) => errs.push(FieldError::required(
                    path,
                    "port name or number is required",
                )),
            }
        }
        (None, None) => errs.push(FieldError::invalid(
            path,
            "",
            "resource or service backend is required",
        )),
    }
    errs
}

fn validate_typed_reference(r: &TypedLocalObjectReference, path: &str) -> Vec<FieldError> {
    let mut errs = Vec::new();
    if let Some(group) = &r.api_group {
        for m in dns1123_subdomain_errors(group) {
            errs.push(FieldError::invalid(&format!("{path}.apiGroup"), group, m));
        }
    }
    for (field, value) in [("kind", &r.kind), ("name", &r.name)] {
        let fp = format!("{path}.{field}");
        if value.is_empty() {
            errs.push(FieldError::required(&fp, format!("{field} is required")));
        } else {
            for m in path_segment_errors(value) {
                errs.push(FieldError::invalid(&fp, value, m));
            }
        }
    }
    errs
}

/// `ValidateIngressLoadBalancerStatus`: IPs parse, hostnames are DNS names.
pub fn validate_load_balancer_status(
    status: &IngressLoadBalancerStatus,
    path: &str,
) -> Vec<FieldError> {
    let mut errs = Vec::new();
    for (i, ingress) in status.ingress.iter().flatten().enumerate() {
        let ip_path = idx(&format!("{path}.ingress"), i);
        if let Some(ip) = ingress.ip.as_deref().filter(|s| !s.is_empty())
            && !is_ip(ip)
        {
            errs.push(FieldError::invalid(
                &format!("{ip_path}.ip"),
                ip,
                "must be a valid IP address",
            ));
        }
        if let Some(host) = ingress.hostname.as_deref().filter(|s| !s.is_empty()) {
            let hp = format!("{ip_path}.hostname");
            for m in dns1123_subdomain_errors(host) {
                errs.push(FieldError::invalid(&hp, host, m));
            }
            if is_ip(host) {
                errs.push(FieldError::invalid(
                    &hp,
                    host,
                    "must be a DNS name, not an IP address",
                ));
            }
        }
    }
    errs
}

/// `IsWildcardDNS1123Subdomain`: `*.` then a DNS subdomain, 253 bytes at most.
pub fn wildcard_subdomain_errors(s: &str) -> Vec<String> {
    let mut errs = Vec::new();
    if s.len() > 253 {
        errs.push("must be no more than 253 bytes".to_string());
    }
    let ok = s
        .strip_prefix("*.")
        .is_some_and(|rest| !rest.is_empty() && dns1123_subdomain_errors(rest).is_empty());
    if !ok {
        errs.push(WILDCARD_MESSAGE.to_string());
    }
    errs
}

/// `IsValidPortName` (IANA service names).
pub fn port_name_errors(s: &str) -> Vec<String> {
    let mut errs = Vec::new();
    if s.len() > 15 {
        errs.push("must be no more than 15 characters".to_string());
    }
    if !s
        .bytes()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'-')
    {
        errs.push(
            "must contain only alpha-numeric characters (a-z, 0-9), and hyphens (-)".to_string(),
        );
    }
    if s.contains("--") {
        errs.push("must not contain consecutive hyphens".to_string());
    }
    if !s.bytes().any(|c| c.is_ascii_alphabetic()) {
        errs.push("must contain at least one letter (a-z)".to_string());
    }
    if s.starts_with('-') || s.ends_with('-') {
        errs.push("must not begin or end with a hyphen".to_string());
    }
    errs
}

/// Kubernetes' sloppy IP parse: IPv6, or IPv4 whose parts may carry leading zeros.
fn is_ip(s: &str) -> bool {
    if s.parse::<std::net::Ipv6Addr>().is_ok() {
        return true;
    }
    let parts: Vec<&str> = s.split('.').collect();
    parts.len() == 4
        && parts.iter().all(|p| {
            !p.is_empty()
                && p.len() <= 3
                && p.bytes().all(|c| c.is_ascii_digit())
                && p.parse::<u16>().is_ok_and(|n| n <= 255)
        })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn mci(spec: serde_json::Value) -> MultiClusterIngress {
        serde_json::from_value(json!({
            "apiVersion": "networking.karmada.io/v1alpha1", "kind": "MultiClusterIngress",
            "metadata": {"name": "demo", "namespace": "default"},
            "spec": spec,
        }))
        .expect("decodes")
    }

    fn messages(errs: &[FieldError]) -> Vec<String> {
        errs.iter().map(ToString::to_string).collect()
    }

    #[test]
    fn valid_specs_pass() {
        let ok = mci(json!({
            "ingressClassName": "nginx",
            "tls": [{"hosts": ["*.example.com", "demo.example.com"], "secretName": "demo-tls"}],
            "rules": [{"host": "*.example.com", "http": {"paths": [
                {"path": "/web", "pathType": "Prefix", "backend": {"service": {"name": "web", "port": {"number": 80}}}},
                {"path": "/api", "pathType": "Exact", "backend": {"service": {"name": "api", "port": {"name": "http"}}}},
                {"pathType": "ImplementationSpecific", "backend": {"resource": {"apiGroup": "k8s.example.com", "kind": "StorageBucket", "name": "static"}}}
            ]}}]
        }));
        assert_eq!(
            messages(&validate_multi_cluster_ingress(&ok)),
            Vec::<String>::new()
        );
        let default_only =
            mci(json!({"defaultBackend": {"service": {"name": "web", "port": {"number": 8080}}}}));
        assert!(validate_multi_cluster_ingress(&default_only).is_empty());
    }

    #[test]
    fn spec_errors_name_their_fields() {
        assert_eq!(
            messages(&validate_multi_cluster_ingress(&mci(json!({})))),
            ["spec: Invalid value: null: either `defaultBackend` or `rules` must be specified"]
        );
        let bad = mci(json!({
            "defaultBackend": {"service": {"name": "web", "port": {"number": 80, "name": "http"}}},
            "tls": [{"hosts": ["*"], "secretName": "Bad_Secret"}],
            "rules": [
                {"host": "10.0.0.1", "http": {"paths": [{"path": "a", "pathType": "Prefix", "backend": {"service": {"name": "Web", "port": {"number": 70000}}}}]}},
                {"host": "foo.*.com", "http": {"paths": [{"path": "/a/../b", "pathType": "Exact", "backend": {}}]}},
                {"http": {"paths": [{"path": "/x", "pathType": "Regex", "backend": {"service": {"name": "web"}}}]}},
                {"http": {"paths": [{"path": "/y", "pathType": "Prefix", "backend": {"service": {"name": "web", "port": {"name": "http"}}, "resource": {"kind": "K", "name": "n"}}}]}}
            ]
        }));
        let got = messages(&validate_multi_cluster_ingress(&bad));
        let want = [
            "spec.defaultBackend: Invalid value: \"\": cannot set both port name & port number",
            "spec.rules[0].host: Invalid value: \"10.0.0.1\": must be a DNS name, not an IP address",
            "spec.rules[0].http.paths[0].path: Invalid value: \"a\": must be an absolute path",
            "spec.rules[0].http.paths[0].backend.service.name: Invalid value: \"Web\": a DNS-1035 label",
            "spec.rules[0].http.paths[0].backend.service.port.number: Invalid value: 70000: must be between 1 and 65535, inclusive",
            "spec.rules[1].host: Invalid value: \"foo.*.com\": a wildcard DNS-1123 subdomain must start with '*.'",
            "spec.rules[1].http.paths[0].path: Invalid value: \"/a/../b\": must not contain '/../'",
            "spec.rules[1].http.paths[0].backend: Invalid value: \"\": resource or service backend is required",
            "spec.rules[2].http.paths[0].pathType: Unsupported value: \"Regex\": supported values: \"Exact\", \"ImplementationSpecific\", \"Prefix\"",
            "spec.rules[2].http.paths[0].backend: Required value: port name or number is required",
            "spec.rules[3].http.paths[0].backend: Invalid value: \"\": cannot set both resource and service backends",
            "spec.tls[0].hosts[0]: Invalid value: \"*\": a wildcard DNS-1123 subdomain",
            "spec.tls[0].secretName: Invalid value: \"Bad_Secret\": a lowercase RFC 1123 subdomain",
        ];
        assert_eq!(got.len(), want.len(), "{got:#?}");
        for (g, w) in got.iter().zip(want) {
            assert!(g.starts_with(w), "{g:?} should start with {w:?}");
        }
    }

    #[test]
    fn port_names_and_ips() {
        assert!(port_name_errors("http").is_empty());
        assert_eq!(
            port_name_errors("-1--"),
            [
                "must not contain consecutive hyphens",
                "must contain at least one letter (a-z)",
                "must not begin or end with a hyphen"
            ]
        );
        assert_eq!(port_name_errors("averyveryverylongname").len(), 1);
        assert!(is_ip("010.0.0.1") && is_ip("::1") && !is_ip("example.com"));
        assert!(wildcard_subdomain_errors("*.a.b").is_empty());
        assert_eq!(wildcard_subdomain_errors("a.*.b").len(), 1);
    }

    #[test]
    fn update_keeps_identity_and_checks_status() {
        let old =
            mci(json!({"defaultBackend": {"service": {"name": "web", "port": {"number": 80}}}}));
        let mut new = old.clone();
        new.metadata.name = Some("renamed".into());
        new.status = Some(crate::networking::MultiClusterIngressStatus {
            load_balancer: serde_json::from_value(
                json!({"ingress": [{"ip": "300.1.1.1"}, {"hostname": "1.2.3.4"}]}),
            )
            .ok(),
            ..Default::default()
        });
        assert_eq!(
            messages(&validate_multi_cluster_ingress_update(&new, &old)),
            [
                "metadata.name: Invalid value: \"renamed\": field is immutable",
                "status.loadBalancer.ingress[0].ip: Invalid value: \"300.1.1.1\": must be a valid IP address",
                "status.loadBalancer.ingress[1].hostname: Invalid value: \"1.2.3.4\": must be a DNS name, not an IP address",
            ]
        );
        assert!(validate_multi_cluster_ingress_update(&old, &old).is_empty());
    }
}
