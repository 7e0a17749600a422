//! Tests for [`super`]: the example body, bodies captured from `kubectl`
//! (fixtures/), and objects encoded with `k8s-pb`'s prost types compared
//! with `k8s-openapi`'s JSON for the same object.

#![allow(clippy::unwrap_used)]

use super::*;
use k8s_openapi as oa;
use k8s_pb as pb;
use serde_json::json;
use std::collections::BTreeMap;

/// Where the captured bodies live, relative to the crate.
const FIXTURES: &str = "tests/fixtures/protobuf";

/// A fixture body captured from `kubectl create …` (see fixtures/README.md).
fn fixture(name: &str) -> Vec<u8> {
    std::fs::read(format!(
        "{}/{FIXTURES}/{name}.bin",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap()
}

/// `message` in a `k8s\0` envelope, as client-go sends it.
fn body<M: prost::Message>(api_version: &str, kind: &str, message: &M) -> Vec<u8> {
    let mut out = MAGIC.to_vec();
    Unknown {
        type_meta: Some(TypeMeta {
            api_version: Some(api_version.into()),
            kind: Some(kind.into()),
        }),
        raw: Some(message.encode_to_vec()),
        content_encoding: Some(String::new()),
        content_type: Some(String::new()),
    }
    .encode(&mut out)
    .unwrap();
    out
}

/// `k8s-openapi`'s JSON for an object.
fn openapi<T: serde::Serialize>(object: &T) -> Json {
    serde_json::to_value(object).unwrap()
}

fn s(v: &str) -> Option<String> {
    Some(v.to_string())
}

fn map<V: Clone>(pairs: &[(&str, V)]) -> BTreeMap<String, V> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.clone()))
        .collect()
}

fn pb_meta(name: &str) -> Option<pb::apimachinery::pkg::apis::meta::v1::ObjectMeta> {
    Some(pb::apimachinery::pkg::apis::meta::v1::ObjectMeta {
        name: s(name),
        ..Default::default()
    })
}

fn oa_meta(name: &str) -> oa::apimachinery::pkg::apis::meta::v1::ObjectMeta {
    oa::apimachinery::pkg::apis::meta::v1::ObjectMeta {
        name: s(name),
        ..Default::default()
    }
}

fn pb_int(n: i32) -> Option<pb::apimachinery::pkg::util::intstr::IntOrString> {
    Some(pb::apimachinery::pkg::util::intstr::IntOrString {
        r#type: Some(0),
        int_val: Some(n),
        str_val: None,
    })
}

fn pb_str(v: &str) -> Option<pb::apimachinery::pkg::util::intstr::IntOrString> {
    Some(pb::apimachinery::pkg::util::intstr::IntOrString {
        r#type: Some(1),
        int_val: None,
        str_val: s(v),
    })
}

fn pb_quantity(v: &str) -> pb::apimachinery::pkg::api::resource::Quantity {
    pb::apimachinery::pkg::api::resource::Quantity { string: s(v) }
}

fn timestamp(seconds: i64, nanos: i32) -> jiff::Timestamp {
    jiff::Timestamp::new(seconds, nanos).unwrap()
}

// ---- the envelope and the example -------------------------------------------

#[test]
fn example_from_the_issue() {
    let body: &[u8] = b"k8s\x00\n\x0f\n\x02v1\x12\x09ConfigMap\x12\x1d\n\x13\n\x03cmx\x12\x00\x1a\x00\"\x00*\x002\x008\x00B\x00\x12\x06\n\x01a\x12\x01b\x1a\x00\"\x00";
    let expected = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "cmx"}, "data": {"a": "b"}});
    assert_eq!(decode(body).unwrap(), expected);
    // kubectl 1.32 sends exactly these bytes.
    assert_eq!(fixture("configmap"), body);
}

#[test]
fn errors_name_the_problem() {
    let err = decode(b"{\"kind\":\"ConfigMap\"}").unwrap_err();
    assert!(matches!(err, DecodeError::BadMagic), "{err}");
    assert!(err.to_string().contains("k8s\\0"));

    let err = decode(b"k8s\x00\x0a\xff").unwrap_err();
    assert!(matches!(err, DecodeError::Envelope(_)), "{err}");
    assert!(err.to_string().starts_with("malformed protobuf envelope"));

    let empty = pb::api::core::v1::ConfigMap::default();
    let err = decode(&body("example.com/v1", "Widget", &empty)).unwrap_err();
    assert_eq!(
        err.to_string(),
        r#"no protobuf schema for apiVersion "example.com/v1", kind "Widget""#
    );
    let err = decode(&body("v1", "Deployment", &empty)).unwrap_err();
    assert_eq!(
        err.to_string(),
        r#"no protobuf schema for apiVersion "v1", kind "Deployment""#
    );

    let err = decode(&body("", "ConfigMap", &empty)).unwrap_err();
    assert_eq!(err.to_string(), "the protobuf envelope has no apiVersion");
    let err = decode(&body("v1", "", &empty)).unwrap_err();
    assert_eq!(err.to_string(), "the protobuf envelope has no kind");

    let mut gzip = MAGIC.to_vec();
    Unknown {
        type_meta: Some(TypeMeta {
            api_version: s("v1"),
            kind: s("ConfigMap"),
        }),
        raw: Some(vec![1, 2, 3]),
        content_encoding: s("gzip"),
        content_type: None,
    }
    .encode(&mut gzip)
    .unwrap();
    assert_eq!(
        decode(&gzip).unwrap_err().to_string(),
        r#"unsupported contentEncoding "gzip" in the protobuf envelope"#
    );

    // A ConfigMap whose `data` entry (field 2) claims 5 bytes but has 1.
    let mut truncated = MAGIC.to_vec();
    Unknown {
        type_meta: Some(TypeMeta {
            api_version: s("v1"),
            kind: s("ConfigMap"),
        }),
        raw: Some(vec![0x12, 0x05, 0x0a]),
        content_encoding: None,
        content_type: None,
    }
    .encode(&mut truncated)
    .unwrap();
    let err = decode(&truncated).unwrap_err();
    assert!(
        err.to_string()
            .starts_with("malformed api.core.v1.ConfigMap in protobuf body"),
        "{err}"
    );
}

#[test]
fn api_versions_resolve_to_their_group() {
    for (api_version, kind, message) in [
        ("v1", "Pod", "api.core.v1.Pod"),
        ("v1", "Event", "api.core.v1.Event"),
        ("events.k8s.io/v1", "Event", "api.events.v1.Event"),
        ("v1", "Status", "apimachinery.pkg.apis.meta.v1.Status"),
        (
            "v1",
            "DeleteOptions",
            "apimachinery.pkg.apis.meta.v1.DeleteOptions",
        ),
        (
            "meta.k8s.io/v1",
            "DeleteOptions",
            "apimachinery.pkg.apis.meta.v1.DeleteOptions",
        ),
        ("apps/v1", "Deployment", "api.apps.v1.Deployment"),
        (
            "extensions/v1beta1",
            "Ingress",
            "api.extensions.v1beta1.Ingress",
        ),
        (
            "networking.k8s.io/v1beta1",
            "Ingress",
            "api.networking.v1beta1.Ingress",
        ),
        (
            "rbac.authorization.k8s.io/v1",
            "ClusterRole",
            "api.rbac.v1.ClusterRole",
        ),
        (
            "authorization.k8s.io/v1",
            "SelfSubjectAccessReview",
            "api.authorization.v1.SelfSubjectAccessReview",
        ),
        (
            "authentication.k8s.io/v1",
            "SelfSubjectReview",
            "api.authentication.v1.SelfSubjectReview",
        ),
        (
            "flowcontrol.apiserver.k8s.io/v1",
            "FlowSchema",
            "api.flowcontrol.v1.FlowSchema",
        ),
        (
            "internal.apiserver.k8s.io/v1alpha1",
            "StorageVersion",
            "api.apiserverinternal.v1alpha1.StorageVersion",
        ),
        (
            "apiextensions.k8s.io/v1",
            "CustomResourceDefinition",
            "apiextensions_apiserver.pkg.apis.apiextensions.v1.CustomResourceDefinition",
        ),
        (
            "apiregistration.k8s.io/v1",
            "APIService",
            "kube_aggregator.pkg.apis.apiregistration.v1.APIService",
        ),
        (
            "custom.metrics.k8s.io/v1beta2",
            "MetricValue",
            "metrics.pkg.apis.custom_metrics.v1beta2.MetricValue",
        ),
        (
            "metrics.k8s.io/v1beta1",
            "PodMetrics",
            "metrics.pkg.apis.metrics.v1beta1.PodMetrics",
        ),
    ] {
        let found =
            message_for(schema().unwrap(), api_version, kind).map(|m| m.full_name().to_string());
        assert_eq!(found.as_deref(), Some(message), "{api_version} {kind}");
    }
    assert!(message_for(schema().unwrap(), "example.com/v1", "Pod").is_none());
    assert!(message_for(schema().unwrap(), "apps.example.com/v1", "Deployment").is_none());
    assert!(message_for(schema().unwrap(), "apps/v2", "Deployment").is_none());
}

// ---- bodies captured from kubectl 1.32 --------------------------------------

#[test]
fn kubectl_bodies() {
    let cases = [
        (
            "namespace",
            json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "nsx"}, "spec": {}, "status": {}}),
        ),
        (
            "secret",
            json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "sx"},
                   "data": {"pw": "czNjcjN0", "user": "YWRtaW4="}}),
        ),
        (
            "serviceaccount",
            json!({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "sax"}}),
        ),
        (
            "deployment",
            json!({"apiVersion": "apps/v1", "kind": "Deployment",
                   "metadata": {"name": "dy", "labels": {"app": "dy"}},
                   "spec": {"replicas": 3, "selector": {"matchLabels": {"app": "dy"}},
                            "template": {"metadata": {"labels": {"app": "dy"}},
                                         "spec": {"containers": [{"name": "nginx", "image": "nginx", "resources": {}}]}},
                            "strategy": {}},
                   "status": {}}),
        ),
        (
            "service-clusterip",
            json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "svcx", "labels": {"app": "svcx"}},
                   "spec": {"ports": [{"name": "80-8080", "protocol": "TCP", "port": 80, "targetPort": 8080}],
                            "selector": {"app": "svcx"}, "type": "ClusterIP"},
                   "status": {"loadBalancer": {}}}),
        ),
        (
            "service-nodeport",
            json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "svcn", "labels": {"app": "svcn"}},
                   "spec": {"ports": [{"name": "443-https", "protocol": "TCP", "port": 443, "targetPort": "https"}],
                            "selector": {"app": "svcn"}, "type": "NodePort"},
                   "status": {"loadBalancer": {}}}),
        ),
        (
            "role",
            json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role", "metadata": {"name": "rx"},
                   "rules": [{"verbs": ["get", "list"], "apiGroups": [""], "resources": ["pods"]},
                             {"verbs": ["get", "list"], "apiGroups": ["apps"], "resources": ["deployments"]}]}),
        ),
        (
            "rolebinding",
            json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding", "metadata": {"name": "rbx"},
                   "subjects": [{"kind": "User", "apiGroup": "rbac.authorization.k8s.io", "name": "alice"},
                                {"kind": "ServiceAccount", "name": "sax", "namespace": "default"}],
                   "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "rx"}}),
        ),
        (
            "clusterrole",
            json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole", "metadata": {"name": "crx"},
                   "rules": [{"verbs": ["get"], "nonResourceURLs": ["/healthz"]}]}),
        ),
        (
            "clusterrolebinding",
            json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding", "metadata": {"name": "crbx"},
                   "subjects": [{"kind": "Group", "apiGroup": "rbac.authorization.k8s.io", "name": "devs"}],
                   "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "crx"}}),
        ),
        (
            "job",
            json!({"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "jx"},
                   "spec": {"template": {"metadata": {}, "spec": {
                       "containers": [{"name": "jx", "image": "busybox", "command": ["echo", "hi"], "resources": {}}],
                       "restartPolicy": "Never"}}},
                   "status": {}}),
        ),
        (
            "cronjob",
            json!({"apiVersion": "batch/v1", "kind": "CronJob", "metadata": {"name": "cjx"},
                   "spec": {"schedule": "*/5 * * * *", "jobTemplate": {"metadata": {"name": "cjx"}, "spec": {"template": {
                       "metadata": {}, "spec": {
                           "containers": [{"name": "cjx", "image": "busybox", "command": ["date"], "resources": {}}],
                           "restartPolicy": "OnFailure"}}}}},
                   "status": {}}),
        ),
        (
            // IngressRule embeds IngressRuleValue inline: `http` sits beside `host`.
            "ingress",
            json!({"apiVersion": "networking.k8s.io/v1", "kind": "Ingress", "metadata": {"name": "ix"},
                   "spec": {"rules": [{"host": "foo.com", "http": {"paths": [{"path": "/bar", "pathType": "Exact",
                       "backend": {"service": {"name": "svcx", "port": {"number": 80}}}}]}}]},
                   "status": {"loadBalancer": {}}}),
        ),
        (
            "resourcequota",
            json!({"apiVersion": "v1", "kind": "ResourceQuota", "metadata": {"name": "qx"},
                   "spec": {"hard": {"cpu": "1", "memory": "1Gi", "pods": "2"}}, "status": {}}),
        ),
        (
            // minAvailable is a set IntOrString pointer; the status counts have no omitempty.
            "pdb",
            json!({"apiVersion": "policy/v1", "kind": "PodDisruptionBudget", "metadata": {"name": "pdbx"},
                   "spec": {"minAvailable": 0, "selector": {"matchLabels": {"app": "x"}}},
                   "status": {"disruptionsAllowed": 0, "currentHealthy": 0, "desiredHealthy": 0, "expectedPods": 0}}),
        ),
        (
            "tokenrequest",
            json!({"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest", "metadata": {},
                   "spec": {"expirationSeconds": 3600}, "status": {"token": ""}}),
        ),
        (
            "ssar-create-pods",
            json!({"apiVersion": "authorization.k8s.io/v1", "kind": "SelfSubjectAccessReview", "metadata": {},
                   "spec": {"resourceAttributes": {"namespace": "default", "verb": "create", "resource": "pods"}},
                   "status": {"allowed": false}}),
        ),
        (
            "ssar-get-deployments",
            json!({"apiVersion": "authorization.k8s.io/v1", "kind": "SelfSubjectAccessReview", "metadata": {},
                   "spec": {"resourceAttributes": {"namespace": "kube-system", "verb": "get", "group": "apps",
                                                   "resource": "deployments"}},
                   "status": {"allowed": false}}),
        ),
        (
            // `value` has no omitempty, so Go prints its 0; `globalDefault: false` it omits.
            "priorityclass",
            json!({"apiVersion": "scheduling.k8s.io/v1", "kind": "PriorityClass", "metadata": {"name": "pcx"},
                   "value": 0, "preemptionPolicy": "PreemptLowerPriority"}),
        ),
        (
            "selfsubjectreview",
            json!({"apiVersion": "authentication.k8s.io/v1", "kind": "SelfSubjectReview", "metadata": {},
                   "status": {"userInfo": {}}}),
        ),
    ];
    for (name, expected) in cases {
        assert_eq!(decode(&fixture(name)).unwrap(), expected, "{name}");
    }
}

#[test]
fn zero_scalars_are_printed_where_go_prints_them() {
    // `kubectl create deployment dx --replicas=0 --port=8080`: Go writes the
    // set pointer `replicas` and every plain field alike, zero or not.
    let decoded = decode(&fixture("deployment-replicas0")).unwrap();
    let expected = json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "dx", "labels": {"app": "dx"}},
        "spec": {"replicas": 0, "selector": {"matchLabels": {"app": "dx"}},
                 "template": {"metadata": {"labels": {"app": "dx"}},
                              "spec": {"containers": [{"name": "nginx", "image": "nginx:1.27",
                                                       "ports": [{"containerPort": 8080}], "resources": {}}]}},
                 "strategy": {}},
        "status": {}
    });
    assert_eq!(decoded, expected);

    // Plain fields without omitempty keep their zero, as Go prints them.
    let decoded = decode(&fixture("priorityclass")).unwrap();
    assert_eq!(decoded["value"], json!(0));
    assert_eq!(decoded.get("globalDefault"), None);
    let decoded = decode(&fixture("pdb")).unwrap();
    assert_eq!(
        decoded["status"],
        json!({"disruptionsAllowed": 0, "currentHealthy": 0, "desiredHealthy": 0, "expectedPods": 0})
    );
}

#[test]
fn generated_tables_match_the_schema() {
    let schema = schema().unwrap();
    let pool = schema
        .by_kind
        .values()
        .flatten()
        .next()
        .unwrap()
        .parent_pool();
    let inline = fields::INLINE.iter().map(|(m, f)| (m, f, "INLINE"));
    let renamed = fields::RENAMED.iter().map(|(m, f, _)| (m, f, "RENAMED"));
    let print_zero = fields::PRINT_ZERO.iter().map(|(m, f)| (m, f, "PRINT_ZERO"));
    for (message, field, table) in inline.chain(renamed).chain(print_zero) {
        let descriptor = pool
            .get_message_by_name(message)
            .unwrap_or_else(|| panic!("{table}: no {message}"));
        assert!(
            descriptor.get_field_by_name(field).is_some(),
            "{table}: no {message}.{field}"
        );
    }
    assert!(
        fields::PRINT_ZERO.windows(2).all(|w| w[0] < w[1]),
        "PRINT_ZERO must be sorted"
    );
    assert!(
        fields::INLINE.windows(2).all(|w| w[0] < w[1]),
        "INLINE must be sorted"
    );
    assert!(
        fields::RENAMED
            .windows(2)
            .all(|w| (w[0].0, w[0].1) < (w[1].0, w[1].1)),
        "RENAMED must be sorted"
    );
}

// ---- prost-encoded objects against k8s-openapi's JSON ------------------------

#[test]
fn namespace_matches_k8s_openapi() {
    let proto = pb::api::core::v1::Namespace {
        metadata: Some(pb::apimachinery::pkg::apis::meta::v1::ObjectMeta {
            name: s("team-a"),
            labels: map(&[("team", "a".to_string())]),
            annotations: map(&[("note", String::new())]),
            creation_timestamp: Some(pb::apimachinery::pkg::apis::meta::v1::Time {
                seconds: Some(1_700_000_000),
                nanos: Some(0),
            }),
            ..Default::default()
        }),
        spec: Some(pb::api::core::v1::NamespaceSpec {
            finalizers: vec!["kubernetes".into()],
        }),
        status: None,
    };
    let expected = oa::api::core::v1::Namespace {
        metadata: oa::apimachinery::pkg::apis::meta::v1::ObjectMeta {
            name: s("team-a"),
            labels: Some(map(&[("team", "a".to_string())])),
            annotations: Some(map(&[("note", String::new())])),
            creation_timestamp: Some(oa::apimachinery::pkg::apis::meta::v1::Time(timestamp(
                1_700_000_000,
                0,
            ))),
            ..Default::default()
        },
        spec: Some(oa::api::core::v1::NamespaceSpec {
            finalizers: Some(vec!["kubernetes".into()]),
        }),
        status: None,
    };
    let decoded = decode(&body("v1", "Namespace", &proto)).unwrap();
    assert_eq!(decoded, openapi(&expected));
    assert_eq!(
        decoded["metadata"]["creationTimestamp"],
        "2023-11-14T22:13:20Z"
    );
}

#[test]
fn secret_bytes_are_base64() {
    let proto = pb::api::core::v1::Secret {
        metadata: pb_meta("creds"),
        immutable: Some(true),
        data: map(&[
            ("bin", vec![0u8, 1, 2, 254, 255]),
            ("user", b"admin".to_vec()),
        ]),
        string_data: map(&[("extra", "plain".to_string())]),
        r#type: s("Opaque"),
    };
    let expected = oa::api::core::v1::Secret {
        metadata: oa_meta("creds"),
        immutable: Some(true),
        data: Some(map(&[
            ("bin", oa::ByteString(vec![0, 1, 2, 254, 255])),
            ("user", oa::ByteString(b"admin".to_vec())),
        ])),
        string_data: Some(map(&[("extra", "plain".to_string())])),
        type_: s("Opaque"),
    };
    let decoded = decode(&body("v1", "Secret", &proto)).unwrap();
    assert_eq!(decoded, openapi(&expected));
    assert_eq!(decoded["data"]["bin"], "AAEC/v8=");
}

#[test]
fn deployment_matches_k8s_openapi() {
    use oa::api::apps::v1 as oapps;
    use oa::api::core::v1 as ocore;
    use oa::apimachinery::pkg::api::resource::Quantity;
    use oa::apimachinery::pkg::apis::meta::v1 as ometa;
    use oa::apimachinery::pkg::util::intstr::IntOrString;
    use pb::api::apps::v1 as papps;
    use pb::api::core::v1 as pcore;
    use pb::apimachinery::pkg::apis::meta::v1 as pmeta;

    let labels = map(&[("app", "web".to_string())]);
    let proto = papps::Deployment {
        metadata: Some(pmeta::ObjectMeta {
            name: s("web"),
            namespace: s("prod"),
            labels: labels.clone(),
            managed_fields: vec![pmeta::ManagedFieldsEntry {
                manager: s("kubectl"),
                operation: s("Update"),
                api_version: s("apps/v1"),
                time: Some(pmeta::Time {
                    seconds: Some(1_700_000_000),
                    nanos: Some(0),
                }),
                fields_type: s("FieldsV1"),
                fields_v1: Some(pmeta::FieldsV1 {
                    raw: Some(br#"{"f:spec":{"f:replicas":{}}}"#.to_vec()),
                }),
                subresource: None,
            }],
            ..Default::default()
        }),
        spec: Some(papps::DeploymentSpec {
            replicas: Some(3),
            selector: Some(pmeta::LabelSelector {
                match_labels: labels.clone(),
                match_expressions: vec![],
            }),
            template: Some(pcore::PodTemplateSpec {
                metadata: Some(pmeta::ObjectMeta {
                    labels: labels.clone(),
                    ..Default::default()
                }),
                spec: Some(pcore::PodSpec {
                    containers: vec![pcore::Container {
                        name: s("nginx"),
                        image: s("nginx:1.27"),
                        ports: vec![pcore::ContainerPort {
                            name: s("http"),
                            container_port: Some(80),
                            protocol: s("TCP"),
                            // A plain omitempty field, as Go writes it: not printed.
                            host_port: Some(0),
                            ..Default::default()
                        }],
                        env: vec![
                            pcore::EnvVar {
                                name: s("MODE"),
                                value: s("prod"),
                                value_from: None,
                            },
                            pcore::EnvVar {
                                name: s("TOKEN"),
                                value: None,
                                value_from: Some(pcore::EnvVarSource {
                                    secret_key_ref: Some(pcore::SecretKeySelector {
                                        local_object_reference: Some(pcore::LocalObjectReference {
                                            name: s("creds"),
                                        }),
                                        key: s("token"),
                                        optional: None,
                                    }),
                                    ..Default::default()
                                }),
                            },
                        ],
                        resources: Some(pcore::ResourceRequirements {
                            limits: map(&[
                                ("cpu", pb_quantity("500m")),
                                ("memory", pb_quantity("128Mi")),
                            ]),
                            ..Default::default()
                        }),
                        readiness_probe: Some(pcore::Probe {
                            handler: Some(pcore::ProbeHandler {
                                http_get: Some(pcore::HttpGetAction {
                                    path: s("/healthz"),
                                    port: pb_int(80),
                                    ..Default::default()
                                }),
                                ..Default::default()
                            }),
                            period_seconds: Some(5),
                            ..Default::default()
                        }),
                        volume_mounts: vec![pcore::VolumeMount {
                            name: s("cache"),
                            mount_path: s("/cache"),
                            ..Default::default()
                        }],
                        ..Default::default()
                    }],
                    volumes: vec![pcore::Volume {
                        name: s("cache"),
                        volume_source: Some(pcore::VolumeSource {
                            empty_dir: Some(pcore::EmptyDirVolumeSource {
                                medium: None,
                                size_limit: Some(pb_quantity("1Gi")),
                            }),
                            ..Default::default()
                        }),
                    }],
                    // Pointers set to zero values: printed.
                    security_context: Some(pcore::PodSecurityContext {
                        run_as_user: Some(0),
                        ..Default::default()
                    }),
                    automount_service_account_token: Some(false),
                    host_network: Some(false),
                    ..Default::default()
                }),
            }),
            strategy: Some(papps::DeploymentStrategy {
                r#type: s("RollingUpdate"),
                rolling_update: Some(papps::RollingUpdateDeployment {
                    max_unavailable: pb_int(0),
                    max_surge: pb_str("25%"),
                }),
            }),
            ..Default::default()
        }),
        status: None,
    };

    let expected = oapps::Deployment {
        metadata: ometa::ObjectMeta {
            name: s("web"),
            namespace: s("prod"),
            labels: Some(labels.clone()),
            managed_fields: Some(vec![ometa::ManagedFieldsEntry {
                manager: s("kubectl"),
                operation: s("Update"),
                api_version: s("apps/v1"),
                time: Some(ometa::Time(timestamp(1_700_000_000, 0))),
                fields_type: s("FieldsV1"),
                fields_v1: Some(ometa::FieldsV1(json!({"f:spec": {"f:replicas": {}}}))),
                subresource: None,
            }]),
            ..Default::default()
        },
        spec: Some(oapps::DeploymentSpec {
            replicas: Some(3),
            selector: ometa::LabelSelector {
                match_labels: Some(labels.clone()),
                match_expressions: None,
            },
            template: ocore::PodTemplateSpec {
                metadata: Some(ometa::ObjectMeta {
                    labels: Some(labels),
                    ..Default::default()
                }),
                spec: Some(ocore::PodSpec {
                    containers: vec![ocore::Container {
                        name: "nginx".into(),
                        image: s("nginx:1.27"),
                        ports: Some(vec![ocore::ContainerPort {
                            name: s("http"),
                            container_port: 80,
                            protocol: s("TCP"),
                            ..Default::default()
                        }]),
                        env: Some(vec![
                            ocore::EnvVar {
                                name: "MODE".into(),
                                value: s("prod"),
                                value_from: None,
                            },
                            ocore::EnvVar {
                                name: "TOKEN".into(),
                                value: None,
                                value_from: Some(ocore::EnvVarSource {
                                    secret_key_ref: Some(ocore::SecretKeySelector {
                                        name: "creds".into(),
                                        key: "token".into(),
                                        optional: None,
                                    }),
                                    ..Default::default()
                                }),
                            },
                        ]),
                        resources: Some(ocore::ResourceRequirements {
                            limits: Some(map(&[
                                ("cpu", Quantity("500m".into())),
                                ("memory", Quantity("128Mi".into())),
                            ])),
                            ..Default::default()
                        }),
                        readiness_probe: Some(ocore::Probe {
                            http_get: Some(ocore::HTTPGetAction {
                                path: s("/healthz"),
                                port: IntOrString::Int(80),
                                ..Default::default()
                            }),
                            period_seconds: Some(5),
                            ..Default::default()
                        }),
                        volume_mounts: Some(vec![ocore::VolumeMount {
                            name: "cache".into(),
                            mount_path: "/cache".into(),
                            ..Default::default()
                        }]),
                        ..Default::default()
                    }],
                    volumes: Some(vec![ocore::Volume {
                        name: "cache".into(),
                        empty_dir: Some(ocore::EmptyDirVolumeSource {
                            medium: None,
                            size_limit: Some(Quantity("1Gi".into())),
                        }),
                        ..Default::default()
                    }]),
                    security_context: Some(ocore::PodSecurityContext {
                        run_as_user: Some(0),
                        ..Default::default()
                    }),
                    automount_service_account_token: Some(false),
                    ..Default::default()
                }),
            },
            strategy: Some(oapps::DeploymentStrategy {
                type_: s("RollingUpdate"),
                rolling_update: Some(oapps::RollingUpdateDeployment {
                    max_unavailable: Some(IntOrString::Int(0)),
                    max_surge: Some(IntOrString::String("25%".into())),
                }),
            }),
            ..Default::default()
        }),
        status: None,
    };
    let decoded = decode(&body("apps/v1", "Deployment", &proto)).unwrap();
    assert_eq!(decoded, openapi(&expected));
    assert_eq!(
        decoded.pointer("/spec/template/spec/securityContext/runAsUser"),
        Some(&json!(0))
    );
    assert_eq!(
        decoded.pointer("/spec/template/spec/automountServiceAccountToken"),
        Some(&json!(false))
    );
}

#[test]
fn service_target_ports_are_int_or_string() {
    use oa::apimachinery::pkg::util::intstr::IntOrString;
    let proto = pb::api::core::v1::Service {
        metadata: pb_meta("web"),
        spec: Some(pb::api::core::v1::ServiceSpec {
            ports: vec![
                pb::api::core::v1::ServicePort {
                    name: s("http"),
                    protocol: s("TCP"),
                    port: Some(80),
                    target_port: pb_int(8080),
                    ..Default::default()
                },
                pb::api::core::v1::ServicePort {
                    name: s("https"),
                    protocol: s("TCP"),
                    port: Some(443),
                    target_port: pb_str("https"),
                    ..Default::default()
                },
            ],
            selector: map(&[("app", "web".to_string())]),
            r#type: s("ClusterIP"),
            ..Default::default()
        }),
        status: None,
    };
    let expected = oa::api::core::v1::Service {
        metadata: oa_meta("web"),
        spec: Some(oa::api::core::v1::ServiceSpec {
            ports: Some(vec![
                oa::api::core::v1::ServicePort {
                    name: s("http"),
                    protocol: s("TCP"),
                    port: 80,
                    target_port: Some(IntOrString::Int(8080)),
                    ..Default::default()
                },
                oa::api::core::v1::ServicePort {
                    name: s("https"),
                    protocol: s("TCP"),
                    port: 443,
                    target_port: Some(IntOrString::String("https".into())),
                    ..Default::default()
                },
            ]),
            selector: Some(map(&[("app", "web".to_string())])),
            type_: s("ClusterIP"),
            ..Default::default()
        }),
        status: None,
    };
    let decoded = decode(&body("v1", "Service", &proto)).unwrap();
    assert_eq!(decoded, openapi(&expected));
    assert_eq!(
        decoded.pointer("/spec/ports/0/targetPort"),
        Some(&json!(8080))
    );
    assert_eq!(
        decoded.pointer("/spec/ports/1/targetPort"),
        Some(&json!("https"))
    );
}

#[test]
fn role_rules_match_k8s_openapi() {
    let proto = pb::api::rbac::v1::Role {
        metadata: pb_meta("reader"),
        rules: vec![
            pb::api::rbac::v1::PolicyRule {
                verbs: vec!["get".into(), "list".into()],
                api_groups: vec![String::new()],
                resources: vec!["pods".into(), "pods/log".into()],
                ..Default::default()
            },
            pb::api::rbac::v1::PolicyRule {
                verbs: vec!["get".into()],
                api_groups: vec!["apps".into()],
                resources: vec!["deployments".into()],
                resource_names: vec!["web".into()],
                ..Default::default()
            },
        ],
    };
    let expected = oa::api::rbac::v1::Role {
        metadata: oa_meta("reader"),
        rules: Some(vec![
            oa::api::rbac::v1::PolicyRule {
                verbs: vec!["get".into(), "list".into()],
                api_groups: Some(vec![String::new()]),
                resources: Some(vec!["pods".into(), "pods/log".into()]),
                ..Default::default()
            },
            oa::api::rbac::v1::PolicyRule {
                verbs: vec!["get".into()],
                api_groups: Some(vec!["apps".into()]),
                resources: Some(vec!["deployments".into()]),
                resource_names: Some(vec!["web".into()]),
                ..Default::default()
            },
        ]),
    };
    assert_eq!(
        decode(&body("rbac.authorization.k8s.io/v1", "Role", &proto)).unwrap(),
        openapi(&expected)
    );
}

#[test]
fn cronjob_matches_k8s_openapi() {
    use oa::api::batch::v1 as obatch;
    use oa::api::core::v1 as ocore;
    use pb::api::batch::v1 as pbatch;
    use pb::api::core::v1 as pcore;
    let proto = pbatch::CronJob {
        metadata: pb_meta("nightly"),
        spec: Some(pbatch::CronJobSpec {
            schedule: s("0 3 * * *"),
            time_zone: s("Etc/UTC"),
            concurrency_policy: s("Forbid"),
            successful_jobs_history_limit: Some(3),
            job_template: Some(pbatch::JobTemplateSpec {
                metadata: pb_meta("nightly"),
                spec: Some(pbatch::JobSpec {
                    backoff_limit: Some(2),
                    template: Some(pcore::PodTemplateSpec {
                        metadata: None,
                        spec: Some(pcore::PodSpec {
                            containers: vec![pcore::Container {
                                name: s("job"),
                                image: s("busybox"),
                                command: vec!["sh".into(), "-c".into(), "date".into()],
                                ..Default::default()
                            }],
                            restart_policy: s("OnFailure"),
                            ..Default::default()
                        }),
                    }),
                    ..Default::default()
                }),
            }),
            ..Default::default()
        }),
        status: None,
    };
    let expected = obatch::CronJob {
        metadata: oa_meta("nightly"),
        spec: Some(obatch::CronJobSpec {
            schedule: "0 3 * * *".into(),
            time_zone: s("Etc/UTC"),
            concurrency_policy: s("Forbid"),
            successful_jobs_history_limit: Some(3),
            job_template: obatch::JobTemplateSpec {
                metadata: Some(oa_meta("nightly")),
                spec: Some(obatch::JobSpec {
                    backoff_limit: Some(2),
                    template: ocore::PodTemplateSpec {
                        metadata: None,
                        spec: Some(ocore::PodSpec {
                            containers: vec![ocore::Container {
                                name: "job".into(),
                                image: s("busybox"),
                                command: Some(vec!["sh".into(), "-c".into(), "date".into()]),
                                ..Default::default()
                            }],
                            restart_policy: s("OnFailure"),
                            ..Default::default()
                        }),
                    },
                    ..Default::default()
                }),
            },
            ..Default::default()
        }),
        status: None,
    };
    assert_eq!(
        decode(&body("batch/v1", "CronJob", &proto)).unwrap(),
        openapi(&expected)
    );
}

#[test]
fn self_subject_access_review_matches_k8s_openapi() {
    use oa::api::authorization::v1 as oauthz;
    use pb::api::authorization::v1 as pauthz;
    let proto = pauthz::SelfSubjectAccessReview {
        metadata: Some(Default::default()),
        spec: Some(pauthz::SelfSubjectAccessReviewSpec {
            resource_attributes: Some(pauthz::ResourceAttributes {
                namespace: s("kube-system"),
                verb: s("get"),
                group: s("apps"),
                resource: s("deployments"),
                ..Default::default()
            }),
            non_resource_attributes: None,
        }),
        status: None,
    };
    let expected = oauthz::SelfSubjectAccessReview {
        metadata: Default::default(),
        spec: oauthz::SelfSubjectAccessReviewSpec {
            resource_attributes: Some(oauthz::ResourceAttributes {
                namespace: s("kube-system"),
                verb: s("get"),
                group: s("apps"),
                resource: s("deployments"),
                ..Default::default()
            }),
            non_resource_attributes: None,
        },
        status: None,
    };
    assert_eq!(
        decode(&body(
            "authorization.k8s.io/v1",
            "SelfSubjectAccessReview",
            &proto
        ))
        .unwrap(),
        openapi(&expected)
    );
}

#[test]
fn micro_time_and_raw_extension() {
    let lease = pb::api::coordination::v1::Lease {
        metadata: pb_meta("leader"),
        spec: Some(pb::api::coordination::v1::LeaseSpec {
            holder_identity: s("node-1"),
            lease_duration_seconds: Some(15),
            renew_time: Some(pb::apimachinery::pkg::apis::meta::v1::MicroTime {
                seconds: Some(1_700_000_000),
                nanos: Some(123_456_789),
            }),
            ..Default::default()
        }),
    };
    let expected = oa::api::coordination::v1::Lease {
        metadata: oa_meta("leader"),
        spec: Some(oa::api::coordination::v1::LeaseSpec {
            holder_identity: s("node-1"),
            lease_duration_seconds: Some(15),
            renew_time: Some(oa::apimachinery::pkg::apis::meta::v1::MicroTime(timestamp(
                1_700_000_000,
                123_456_000,
            ))),
            ..Default::default()
        }),
    };
    let decoded = decode(&body("coordination.k8s.io/v1", "Lease", &lease)).unwrap();
    assert_eq!(decoded, openapi(&expected));
    assert_eq!(
        decoded.pointer("/spec/renewTime"),
        Some(&json!("2023-11-14T22:13:20.123456Z"))
    );

    // RawExtension: JSON bytes are embedded as JSON; a nested `k8s\0` body is decoded.
    let nested = body(
        "v1",
        "ConfigMap",
        &pb::api::core::v1::ConfigMap {
            metadata: pb_meta("inner"),
            ..Default::default()
        },
    );
    for (raw, data) in [
        (
            br#"{"spec":{"replicas":2}}"#.to_vec(),
            json!({"spec": {"replicas": 2}}),
        ),
        (
            nested,
            json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "inner"}}),
        ),
    ] {
        let revision = pb::api::apps::v1::ControllerRevision {
            metadata: pb_meta("web-1"),
            data: Some(pb::apimachinery::pkg::runtime::RawExtension { raw: Some(raw) }),
            revision: Some(1),
        };
        let expected = json!({"apiVersion": "apps/v1", "kind": "ControllerRevision", "metadata": {"name": "web-1"},
                              "data": data, "revision": 1});
        assert_eq!(
            decode(&body("apps/v1", "ControllerRevision", &revision)).unwrap(),
            expected
        );
    }

    let invalid = pb::api::apps::v1::ControllerRevision {
        data: Some(pb::apimachinery::pkg::runtime::RawExtension {
            raw: Some(b"\x01\x02".to_vec()),
        }),
        ..Default::default()
    };
    let err = decode(&body("apps/v1", "ControllerRevision", &invalid)).unwrap_err();
    assert!(
        err.to_string()
            .starts_with("invalid embedded object in protobuf body: not JSON"),
        "{err}"
    );
}

#[test]
fn json_names_that_differ_from_proto_names() {
    // TokenRequest's boundObjectRef.uid is `uID` in the proto.
    let proto = pb::api::authentication::v1::TokenRequest {
        metadata: Some(Default::default()),
        spec: Some(pb::api::authentication::v1::TokenRequestSpec {
            audiences: vec!["api".into()],
            bound_object_ref: Some(pb::api::authentication::v1::BoundObjectReference {
                kind: s("Pod"),
                api_version: s("v1"),
                name: s("p"),
                u_id: s("1234"),
            }),
            expiration_seconds: Some(600),
        }),
        status: None,
    };
    let expected = oa::api::authentication::v1::TokenRequest {
        metadata: Default::default(),
        spec: oa::api::authentication::v1::TokenRequestSpec {
            audiences: vec!["api".into()],
            bound_object_ref: Some(oa::api::authentication::v1::BoundObjectReference {
                kind: s("Pod"),
                api_version: s("v1"),
                name: s("p"),
                uid: s("1234"),
            }),
            expiration_seconds: Some(600),
        },
        status: None,
    };
    assert_eq!(
        decode(&body("authentication.k8s.io/v1", "TokenRequest", &proto)).unwrap(),
        openapi(&expected)
    );

    assert_eq!(
        json_name(
            "api.networking.v1.IngressClassParametersReference",
            "aPIGroup"
        ),
        "apiGroup"
    );
    assert_eq!(
        json_name(
            "api.admissionregistration.v1.MutatingWebhookConfiguration",
            "Webhooks"
        ),
        "webhooks"
    );
    let schema_props = "apiextensions_apiserver.pkg.apis.apiextensions.v1.JSONSchemaProps";
    assert_eq!(json_name(schema_props, "ref"), "$ref");
    assert_eq!(
        json_name(schema_props, "xKubernetesPreserveUnknownFields"),
        "x-kubernetes-preserve-unknown-fields"
    );
    let validation = "apiextensions_apiserver.pkg.apis.apiextensions.v1.CustomResourceValidation";
    assert_eq!(json_name(validation, "openAPIV3Schema"), "openAPIV3Schema");
}

#[test]
fn go_durations() {
    for (nanos, text) in [
        (0, "0s"),
        (1, "1ns"),
        (1_500, "1.5µs"),
        (300_000_000, "300ms"),
        (1_500_000_000, "1.5s"),
        (90_000_000_000, "1m30s"),
        (3_600_000_000_000, "1h0m0s"),
        (-5_000_000_000, "-5s"),
        (86_400_000_000_001, "24h0m0.000000001s"),
    ] {
        assert_eq!(go_duration(nanos), text);
    }
}

#[test]
fn custom_resource_definition_schema_matches_k8s_openapi() {
    use oa::apiextensions_apiserver::pkg::apis::apiextensions::v1 as oext;
    use pb::apiextensions_apiserver::pkg::apis::apiextensions::v1 as pext;
    let pb_typed = |t: &str| pext::JsonSchemaProps {
        r#type: s(t),
        ..Default::default()
    };
    let oa_typed = |t: &str| oext::JSONSchemaProps {
        type_: s(t),
        ..Default::default()
    };
    let proto = pext::CustomResourceDefinition {
        metadata: pb_meta("widgets.example.com"),
        spec: Some(pext::CustomResourceDefinitionSpec {
            group: s("example.com"),
            names: Some(pext::CustomResourceDefinitionNames {
                plural: s("widgets"),
                kind: s("Widget"),
                ..Default::default()
            }),
            scope: s("Namespaced"),
            versions: vec![pext::CustomResourceDefinitionVersion {
                name: s("v1"),
                served: Some(true),
                storage: Some(true),
                schema: Some(pext::CustomResourceValidation {
                    open_apiv3_schema: Some(pext::JsonSchemaProps {
                        r#type: s("object"),
                        properties: map(&[
                            (
                                "spec",
                                pext::JsonSchemaProps {
                                    r#type: s("object"),
                                    x_kubernetes_preserve_unknown_fields: Some(true),
                                    default: Some(pext::Json {
                                        raw: Some(br#"{"size":1}"#.to_vec()),
                                    }),
                                    ..Default::default()
                                },
                            ),
                            (
                                "tags",
                                pext::JsonSchemaProps {
                                    r#type: s("array"),
                                    items: Some(Box::new(pext::JsonSchemaPropsOrArray {
                                        schema: Some(Box::new(pb_typed("string"))),
                                        j_son_schemas: vec![],
                                    })),
                                    ..Default::default()
                                },
                            ),
                            (
                                "labels",
                                pext::JsonSchemaProps {
                                    r#type: s("object"),
                                    additional_properties: Some(Box::new(
                                        pext::JsonSchemaPropsOrBool {
                                            allows: Some(true),
                                            schema: Some(Box::new(pb_typed("string"))),
                                        },
                                    )),
                                    ..Default::default()
                                },
                            ),
                            (
                                "ref",
                                pext::JsonSchemaProps {
                                    r#ref: s("#/definitions/x"),
                                    ..Default::default()
                                },
                            ),
                        ]),
                        ..Default::default()
                    }),
                }),
                ..Default::default()
            }],
            ..Default::default()
        }),
        status: None,
    };
    let expected = oext::CustomResourceDefinition {
        metadata: oa_meta("widgets.example.com"),
        spec: oext::CustomResourceDefinitionSpec {
            group: "example.com".into(),
            names: oext::CustomResourceDefinitionNames {
                plural: "widgets".into(),
                kind: "Widget".into(),
                ..Default::default()
            },
            scope: "Namespaced".into(),
            versions: vec![oext::CustomResourceDefinitionVersion {
                name: "v1".into(),
                served: true,
                storage: true,
                schema: Some(oext::CustomResourceValidation {
                    open_api_v3_schema: Some(oext::JSONSchemaProps {
                        type_: s("object"),
                        properties: Some(map(&[
                            (
                                "spec",
                                oext::JSONSchemaProps {
                                    type_: s("object"),
                                    x_kubernetes_preserve_unknown_fields: Some(true),
                                    default: Some(oext::JSON(json!({"size": 1}))),
                                    ..Default::default()
                                },
                            ),
                            (
                                "tags",
                                oext::JSONSchemaProps {
                                    type_: s("array"),
                                    items: Some(oext::JSONSchemaPropsOrArray::Schema(Box::new(
                                        oa_typed("string"),
                                    ))),
                                    ..Default::default()
                                },
                            ),
                            (
                                "labels",
                                oext::JSONSchemaProps {
                                    type_: s("object"),
                                    additional_properties: Some(
                                        oext::JSONSchemaPropsOrBool::Schema(Box::new(oa_typed(
                                            "string",
                                        ))),
                                    ),
                                    ..Default::default()
                                },
                            ),
                            (
                                "ref",
                                oext::JSONSchemaProps {
                                    ref_path: s("#/definitions/x"),
                                    ..Default::default()
                                },
                            ),
                        ])),
                        ..Default::default()
                    }),
                }),
                ..Default::default()
            }],
            ..Default::default()
        },
        status: None,
    };
    let decoded = decode(&body(
        "apiextensions.k8s.io/v1",
        "CustomResourceDefinition",
        &proto,
    ))
    .unwrap();
    assert_eq!(decoded, openapi(&expected));
    let schema = decoded
        .pointer("/spec/versions/0/schema/openAPIV3Schema/properties")
        .unwrap();
    assert_eq!(
        schema["spec"]["x-kubernetes-preserve-unknown-fields"],
        json!(true)
    );
    assert_eq!(schema["ref"]["$ref"], json!("#/definitions/x"));
}

#[test]
fn nested_bodies_are_bounded() {
    let revision = |raw: Vec<u8>| pb::api::apps::v1::ControllerRevision {
        data: Some(pb::apimachinery::pkg::runtime::RawExtension { raw: Some(raw) }),
        ..Default::default()
    };
    let mut nested = body("apps/v1", "ControllerRevision", &revision(b"{}".to_vec()));
    for _ in 0..MAX_NESTED_BODIES {
        nested = body("apps/v1", "ControllerRevision", &revision(nested));
    }
    assert!(decode(&nested).is_ok());
    let too_deep = body("apps/v1", "ControllerRevision", &revision(nested));
    let err = decode(&too_deep).unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "invalid embedded object in protobuf body: more than {MAX_NESTED_BODIES} protobuf bodies nested"
        )
    );
}
