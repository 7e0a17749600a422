//! Override cases re-expressed from Karmada's overridemanager tests
//! (imageoverride_test.go, commandargsoverride_test.go,
//! labelannotationoverrider_test.go, overridemanager_test.go).

use serde_json::{Value, json};

use super::*;
use crate::policy::{ClusterOverridePolicy, OverridePolicy};
use crate::testutil::{cluster, cluster_with_labels, yaml};

const DIGEST: &str = "sha256:dbcc1c35ac38df41fd2f5e4130b32ffdb93ebae8b3dbe638c23575912276fc9c";

fn workload(kind: &str, images: &[&str]) -> Value {
    let containers: Vec<Value> = images
        .iter()
        .enumerate()
        .map(|(i, img)| json!({"name": if i == 0 { "nginx".to_string() } else { format!("c{i}") }, "image": img, "command": ["nginx", "-v", "-t"]}))
        .collect();
    if kind == "Pod" {
        json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "namespace": "default"}, "spec": {"containers": containers}})
    } else {
        json!({"apiVersion": "apps/v1", "kind": kind, "metadata": {"name": "w", "namespace": "default"},
               "spec": {"template": {"spec": {"containers": containers, "initContainers": [{"name": "init", "image": "busybox:1"}]}}}})
    }
}

fn io(component: &str, operator: &str, value: &str) -> ImageOverrider {
    ImageOverrider {
        predicate: None,
        component: component.into(),
        operator: operator.into(),
        value: value.into(),
    }
}

fn patched_image(obj: &Value, o: &ImageOverrider) -> Vec<(String, String)> {
    image_patches(obj, o)
        .unwrap()
        .into_iter()
        .map(|p| {
            assert_eq!(p["op"], "replace");
            (
                p["path"].as_str().unwrap().to_string(),
                p["value"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

const TPL: &str = "/spec/template/spec/containers/0/image";

#[test]
fn image_job_registry_add() {
    let job = workload("Job", &["perl:5.34.0"]);
    assert_eq!(
        patched_image(&job, &io("Registry", "add", "registry.k8s.io")),
        vec![(TPL.into(), "registry.k8s.io/perl:5.34.0".into())]
    );
}

#[test]
fn image_job_registry_add_with_predicate() {
    let job = workload("Job", &["perl:5.34.0"]);
    let mut o = io("Registry", "add", "registry.k8s.io");
    o.predicate = Some(crate::policy::ImagePredicate { path: TPL.into() });
    assert_eq!(
        patched_image(&job, &o),
        vec![(TPL.into(), "registry.k8s.io/perl:5.34.0".into())]
    );
}

#[test]
fn image_deployment_table() {
    let d = workload(
        "Deployment",
        &["fictional.registry.example/imagename:v1.0.0"],
    );
    let cases = [
        (
            "Registry",
            "add",
            ".test",
            "fictional.registry.example.test/imagename:v1.0.0",
        ),
        (
            "Registry",
            "replace",
            "fictional.registry.us",
            "fictional.registry.us/imagename:v1.0.0",
        ),
        (
            "Registry",
            "remove",
            "fictional.registry.us",
            "imagename:v1.0.0",
        ),
        (
            "Repository",
            "add",
            "/nginx",
            "fictional.registry.example/imagename/nginx:v1.0.0",
        ),
        (
            "Repository",
            "replace",
            "nginx",
            "fictional.registry.example/nginx:v1.0.0",
        ),
        (
            "Repository",
            "remove",
            "nginx",
            "fictional.registry.example/:v1.0.0",
        ),
        (
            "Tag",
            "add",
            DIGEST,
            "fictional.registry.example/imagename:v1.0.0",
        ),
        (
            "Tag",
            "replace",
            DIGEST,
            "fictional.registry.example/imagename@sha256:dbcc1c35ac38df41fd2f5e4130b32ffdb93ebae8b3dbe638c23575912276fc9c",
        ),
        (
            "Tag",
            "remove",
            DIGEST,
            "fictional.registry.example/imagename",
        ),
        (
            "Tag",
            "replace",
            "v2",
            "fictional.registry.example/imagename:v2",
        ),
        (
            "Tag",
            "add",
            "-alpine",
            "fictional.registry.example/imagename:v1.0.0-alpine",
        ),
    ];
    for (component, operator, value, want) in cases {
        assert_eq!(
            patched_image(&d, &io(component, operator, value)),
            vec![(TPL.into(), want.into())],
            "{component} {operator} {value}"
        );
    }
}

#[test]
fn image_kinds_with_pod_templates() {
    for kind in ["StatefulSet", "ReplicaSet", "DaemonSet"] {
        let obj = workload(kind, &["fictional.registry.example/imagename:v1.0.0"]);
        assert_eq!(
            patched_image(&obj, &io("Repository", "replace", "nginx")),
            vec![(TPL.into(), "fictional.registry.example/nginx:v1.0.0".into())],
            "{kind}"
        );
    }
    let pod = workload("Pod", &["fictional.registry.example/imagename:v1.0.0"]);
    assert_eq!(
        patched_image(&pod, &io("Repository", "replace", "nginx")),
        vec![(
            "/spec/containers/0/image".into(),
            "fictional.registry.example/nginx:v1.0.0".into()
        )]
    );
}

#[test]
fn image_multiple_containers_and_not_init_containers() {
    let d = workload(
        "Deployment",
        &[
            "fictional.registry.example/imagename:v1.0.0",
            "registry.k8s.io/nginx-slim:0.8",
        ],
    );
    assert_eq!(
        patched_image(&d, &io("Repository", "replace", "nginx")),
        vec![
            (TPL.into(), "fictional.registry.example/nginx:v1.0.0".into()),
            (
                "/spec/template/spec/containers/1/image".into(),
                "registry.k8s.io/nginx:0.8".into()
            ),
        ]
    );
}

#[test]
fn image_predicate_on_second_container() {
    let d = workload(
        "Deployment",
        &[
            "fictional.registry.example/imagename:v1.0.0",
            "registry.k8s.io/nginx-slim:0.8",
        ],
    );
    let mut o = io("Repository", "replace", "nginx");
    o.predicate = Some(crate::policy::ImagePredicate {
        path: "/spec/template/spec/containers/1/image".into(),
    });
    assert_eq!(
        patched_image(&d, &o),
        vec![(
            "/spec/template/spec/containers/1/image".into(),
            "registry.k8s.io/nginx:0.8".into()
        )]
    );
}

#[test]
fn image_unknown_kind_is_untouched_without_predicate() {
    let cm = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}, "data": {"image": "nginx"}});
    assert!(
        image_patches(&cm, &io("Registry", "replace", "x.io"))
            .unwrap()
            .is_empty()
    );
    let mut o = io("Registry", "replace", "x.io");
    o.predicate = Some(crate::policy::ImagePredicate {
        path: "/data/image".into(),
    });
    assert_eq!(
        patched_image(&cm, &o),
        vec![("/data/image".into(), "x.io/nginx".into())]
    );
}

#[test]
fn image_predicate_errors() {
    let d = workload("Deployment", &["nginx"]);
    let mut o = io("Registry", "replace", "x.io");
    o.predicate = Some(crate::policy::ImagePredicate {
        path: "/spec/template/spec/containers/x/image".into(),
    });
    assert!(
        image_patches(&d, &o)
            .unwrap_err()
            .to_string()
            .contains("is not number")
    );
    o.predicate = Some(crate::policy::ImagePredicate {
        path: "/spec/template/spec/containers/0/missing".into(),
    });
    assert!(image_patches(&d, &o).is_err());
}

#[test]
fn image_overrider_applies_to_object() {
    let mut d = workload("Deployment", &["nginx:1.19"]);
    let o: Overriders =
        yaml("imageOverrider: [{component: Registry, operator: replace, value: reg.example}]");
    apply_overriders(&mut d, &o).unwrap();
    assert_eq!(d.pointer(TPL).unwrap(), "reg.example/nginx:1.19");
    assert_eq!(
        d.pointer("/spec/template/spec/initContainers/0/image")
            .unwrap(),
        "busybox:1"
    );
}

fn ca(name: &str, operator: &str, value: &[&str]) -> CommandArgsOverrider {
    CommandArgsOverrider {
        container_name: name.into(),
        operator: operator.into(),
        value: value.iter().map(|s| s.to_string()).collect(),
    }
}

#[test]
fn command_add_remove_table() {
    let d = workload("Deployment", &["nginx"]);
    let path = "/spec/template/spec/containers/0/command";
    let cases: &[(&str, &[&str], Value)] = &[
        (
            "add",
            &["&& echo 'hello karmada'"],
            json!(["nginx", "-v", "-t", "&& echo 'hello karmada'"]),
        ),
        ("remove", &["-t"], json!(["nginx", "-v"])),
        ("remove", &[], json!(["nginx", "-v", "-t"])),
    ];
    for (operator, value, want) in cases {
        let ops = command_args_patches(&d, "command", &ca("nginx", operator, value));
        assert_eq!(
            ops,
            vec![json!({"op": "replace", "path": path, "value": want})],
            "{operator} {value:?}"
        );
    }
}

#[test]
fn command_for_pod_and_other_kinds() {
    let pod = workload("Pod", &["nginx"]);
    assert_eq!(
        command_args_patches(
            &pod,
            "command",
            &ca("nginx", "add", &["echo 'hello karmada'"])
        ),
        vec![
            json!({"op": "replace", "path": "/spec/containers/0/command", "value": ["nginx", "-v", "-t", "echo 'hello karmada'"]})
        ]
    );
    for kind in ["StatefulSet", "ReplicaSet", "DaemonSet", "Job"] {
        let obj = workload(kind, &["nginx"]);
        assert_eq!(
            command_args_patches(&obj, "command", &ca("nginx", "remove", &["-t"]))[0]["value"],
            json!(["nginx", "-v"]),
            "{kind}"
        );
    }
    let svc = json!({"kind": "Service", "spec": {}});
    assert!(command_args_patches(&svc, "command", &ca("nginx", "add", &["x"])).is_empty());
}

#[test]
fn args_absent_are_added() {
    let d = workload("Deployment", &["nginx", "other"]);
    assert_eq!(
        command_args_patches(&d, "args", &ca("nginx", "add", &["--v=2"])),
        vec![
            json!({"op": "add", "path": "/spec/template/spec/containers/0/args", "value": ["--v=2"]})
        ]
    );
    assert_eq!(
        command_args_patches(&d, "args", &ca("nginx", "remove", &["--v=2"])),
        vec![json!({"op": "add", "path": "/spec/template/spec/containers/0/args", "value": []})]
    );
    assert!(command_args_patches(&d, "args", &ca("missing", "add", &["x"])).is_empty());
    let mut d2 = d.clone();
    apply_overriders(
        &mut d2,
        &yaml("argsOverrider: [{containerName: nginx, operator: add, value: ['--v=2']}]"),
    )
    .unwrap();
    assert_eq!(
        d2.pointer("/spec/template/spec/containers/0/args").unwrap(),
        &json!(["--v=2"])
    );
}

fn labeled(labels: Option<Value>) -> Value {
    let mut d = json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "test", "namespace": "default"}});
    if let Some(l) = labels {
        d["metadata"]["labels"] = l.clone();
        d["metadata"]["annotations"] = l;
    }
    d
}

#[test]
fn labels_table() {
    let base = Some(json!({"foo": "foo", "bar": "bar"}));
    let cases: &[(&str, Option<Value>, &str, Value)] = &[
        (
            "empty labels",
            None,
            "{operator: add, value: {test2: test2}}",
            json!({"test2": "test2"}),
        ),
        (
            "replace",
            base.clone(),
            "{operator: replace, value: {foo: exist, non-exist: non-exist}}",
            json!({"foo": "exist", "bar": "bar"}),
        ),
        (
            "add",
            base.clone(),
            "{operator: add, value: {test: test}}",
            json!({"test": "test", "foo": "foo", "bar": "bar"}),
        ),
        (
            "add overwrites",
            base.clone(),
            "{operator: add, value: {foo: new}}",
            json!({"foo": "new", "bar": "bar"}),
        ),
        (
            "remove",
            base.clone(),
            "{operator: remove, value: {foo: foo, non-exist: non-exist}}",
            json!({"bar": "bar"}),
        ),
        (
            "replace on missing map",
            None,
            "{operator: replace, value: {foo: x}}",
            Value::Null,
        ),
    ];
    for (name, start, o, want) in cases {
        for field in ["labels", "annotations"] {
            let mut d = labeled(start.clone());
            let o: LabelAnnotationOverrider = yaml(o);
            let overriders = if field == "labels" {
                Overriders {
                    labels_overrider: vec![o],
                    ..Default::default()
                }
            } else {
                Overriders {
                    annotations_overrider: vec![o],
                    ..Default::default()
                }
            };
            apply_overriders(&mut d, &overriders).unwrap();
            let got = d["metadata"].get(field).cloned().unwrap_or(Value::Null);
            assert_eq!(got, *want, "{name} {field}");
        }
    }
}

#[test]
fn annotation_keys_with_slash_are_escaped() {
    let mut d = labeled(Some(
        json!({"testannotation/projectId": "c-m-lfx9lk92:p-v86cf", "foo": "foo"}),
    ));
    let o: Overriders = yaml(
        "annotationsOverrider: [{operator: replace, value: {testannotation/projectId: c-m-abcd:p-efgh}}, {operator: add, value: {a/b: c}}]",
    );
    apply_overriders(&mut d, &o).unwrap();
    assert_eq!(
        d["metadata"]["annotations"],
        json!({"testannotation/projectId": "c-m-abcd:p-efgh", "foo": "foo", "a/b": "c"})
    );
}

#[test]
fn field_overrider_yaml() {
    let mut cm = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "test1", "namespace": "default"},
                        "data": {"test.yaml": "\nkey: \n  key1: value\n"}});
    let o: Overriders = yaml(
        "fieldOverrider: [{fieldPath: /data/test.yaml, yaml: [{subPath: /key/key1, operator: replace, value: updated_value}]}]",
    );
    apply_overriders(&mut cm, &o).unwrap();
    assert_eq!(cm["data"]["test.yaml"], "key:\n  key1: updated_value\n");
}

#[test]
fn field_overrider_json() {
    let mut cm = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "test1", "namespace": "default"},
                        "data": {"test.json": "{\"key\":{\"key1\":\"value\"}}"}});
    let o: Overriders = yaml(
        "fieldOverrider: [{fieldPath: /data/test.json, json: [{subPath: /key/key1, operator: replace, value: updated_value}]}]",
    );
    apply_overriders(&mut cm, &o).unwrap();
    assert_eq!(
        cm["data"]["test.json"],
        "{\"key\":{\"key1\":\"updated_value\"}}"
    );
}

#[test]
fn field_overrider_errors() {
    let mut cm = json!({"kind": "ConfigMap", "data": {"n": 1}});
    let o: Overriders =
        yaml("fieldOverrider: [{fieldPath: /data/n, json: [{subPath: /a, operator: remove}]}]");
    assert!(matches!(
        apply_overriders(&mut cm, &o),
        Err(Error::FieldNotString(_))
    ));
    let mut cm = json!({"kind": "ConfigMap", "data": {"j": "{}"}});
    let o: Overriders =
        yaml("fieldOverrider: [{fieldPath: /data/j, json: [{subPath: /a, operator: remove}]}]");
    assert!(matches!(
        apply_overriders(&mut cm, &o),
        Err(Error::Patch(_))
    ));
}

#[test]
fn plaintext_add_replace_remove() {
    let mut d = json!({"kind": "Deployment", "metadata": {"name": "x"}, "spec": {"replicas": 1, "paused": false}});
    let o: Overriders = yaml(
        "plaintext: [{path: /spec/replicas, operator: replace, value: 3}, {path: /spec/paused, operator: remove}, {path: /spec/minReadySeconds, operator: add, value: 5}]",
    );
    apply_overriders(&mut d, &o).unwrap();
    assert_eq!(d["spec"], json!({"replicas": 3, "minReadySeconds": 5}));
}

#[test]
fn plaintext_replace_of_missing_path_fails() {
    let mut d = json!({"kind": "Deployment", "spec": {}});
    let o: Overriders = yaml("plaintext: [{path: /spec/replicas, operator: replace, value: 3}]");
    assert!(apply_overriders(&mut d, &o).is_err());
    let o: Overriders = yaml("plaintext: [{path: /spec/replicas, operator: remove}]");
    assert!(apply_overriders(&mut d, &o).is_err());
}

#[test]
fn order_within_a_rule_is_image_then_plaintext() {
    // plaintext runs last, so it sees (and overwrites) the image overrider's result.
    let mut d = workload("Deployment", &["nginx:1"]);
    let o: Overriders = yaml(
        "plaintext: [{path: /spec/template/spec/containers/0/image, operator: replace, value: 'final:1'}]\nimageOverrider: [{component: Tag, operator: replace, value: '2'}]\nlabelsOverrider: [{operator: add, value: {a: b}}]",
    );
    apply_overriders(&mut d, &o).unwrap();
    assert_eq!(d.pointer(TPL).unwrap(), "final:1");
    assert_eq!(d["metadata"]["labels"], json!({"a": "b"}));
}

fn op_policy(name: &str, ns: &str, spec: &str) -> OverridePolicy {
    yaml(&format!(
        "apiVersion: policy.karmada.io/v1alpha1\nkind: OverridePolicy\nmetadata: {{name: {name}, namespace: {ns}}}\nspec: {spec}"
    ))
}

fn cop_policy(name: &str, spec: &str) -> ClusterOverridePolicy {
    yaml(&format!(
        "apiVersion: policy.karmada.io/v1alpha1\nkind: ClusterOverridePolicy\nmetadata: {{name: {name}}}\nspec: {spec}"
    ))
}

#[test]
fn policies_apply_least_specific_first() {
    let mut d = workload("Deployment", &["nginx"]);
    d["metadata"]["labels"] = json!({"app": "web"});
    let ops = vec![
        op_policy(
            "a-by-name",
            "default",
            "{resourceSelectors: [{apiVersion: apps/v1, kind: Deployment, name: w}], overrideRules: [{overriders: {labelsOverrider: [{operator: add, value: {who: name}}]}}]}",
        ),
        op_policy(
            "b-all",
            "default",
            "{overrideRules: [{overriders: {labelsOverrider: [{operator: add, value: {who: all}}]}}]}",
        ),
        op_policy(
            "c-label",
            "default",
            "{resourceSelectors: [{apiVersion: apps/v1, kind: Deployment, labelSelector: {matchLabels: {app: web}}}], overrideRules: [{overriders: {labelsOverrider: [{operator: add, value: {who: label}}]}}]}",
        ),
        op_policy(
            "d-miss",
            "default",
            "{resourceSelectors: [{apiVersion: v1, kind: Service}], overrideRules: [{overriders: {labelsOverrider: [{operator: add, value: {who: miss}}]}}]}",
        ),
        op_policy(
            "e-other-ns",
            "prod",
            "{overrideRules: [{overriders: {labelsOverrider: [{operator: add, value: {who: prod}}]}}]}",
        ),
    ];
    let cops = vec![cop_policy(
        "z-cluster",
        "{resourceSelectors: [{apiVersion: apps/v1, kind: Deployment, name: w}], overrideRules: [{overriders: {labelsOverrider: [{operator: add, value: {who: cluster, c: '1'}}]}}]}",
    )];
    let applied = apply_override_policies(&mut d, &cluster("member1"), &cops, &ops).unwrap();
    assert_eq!(d["metadata"]["labels"]["who"], "name");
    assert_eq!(d["metadata"]["labels"]["c"], "1");
    let names: Vec<&str> = applied
        .namespaced
        .iter()
        .map(|s| s.policy_name.as_str())
        .collect();
    assert_eq!(names, vec!["b-all", "c-label", "a-by-name"]);
    assert_eq!(applied.cluster.len(), 1);
    let ann = applied_annotation(&applied.namespaced).unwrap();
    let parsed: Value = serde_json::from_str(&ann).unwrap();
    assert_eq!(parsed[0]["policyName"], "a-by-name");
    assert_eq!(parsed[2]["policyName"], "c-label");
    assert_eq!(applied_annotation(&[]), None);
}

#[test]
fn rules_filter_by_target_cluster_and_legacy_form() {
    let ops = vec![
        op_policy(
            "rules",
            "default",
            "{overrideRules: [{targetCluster: {clusterNames: [member1]}, overriders: {labelsOverrider: [{operator: add, value: {m1: 'y'}}]}}, {targetCluster: {labelSelector: {matchLabels: {env: prod}}}, overriders: {labelsOverrider: [{operator: add, value: {prod: 'y'}}]}}]}",
        ),
        op_policy(
            "legacy",
            "default",
            "{targetCluster: {clusterNames: [member2]}, overriders: {labelsOverrider: [{operator: add, value: {legacy: 'y'}}]}}",
        ),
    ];
    let mut d1 = workload("Deployment", &["nginx"]);
    apply_override_policies(
        &mut d1,
        &cluster_with_labels("member1", &[("env", "prod")]),
        &[],
        &ops,
    )
    .unwrap();
    assert_eq!(d1["metadata"]["labels"], json!({"m1": "y", "prod": "y"}));
    let mut d2 = workload("Deployment", &["nginx"]);
    apply_override_policies(&mut d2, &cluster("member2"), &[], &ops).unwrap();
    assert_eq!(d2["metadata"]["labels"], json!({"legacy": "y"}));
}

#[test]
fn cluster_scoped_objects_skip_namespaced_policies() {
    let mut ns = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "team"}});
    let ops = vec![op_policy(
        "x",
        "default",
        "{overrideRules: [{overriders: {labelsOverrider: [{operator: add, value: {a: b}}]}}]}",
    )];
    let cops = vec![cop_policy(
        "y",
        "{overrideRules: [{overriders: {labelsOverrider: [{operator: add, value: {c: d}}]}}]}",
    )];
    let applied = apply_override_policies(&mut ns, &cluster("m"), &cops, &ops).unwrap();
    assert_eq!(ns["metadata"]["labels"], json!({"c": "d"}));
    assert!(applied.namespaced.is_empty());
}

#[test]
fn sample_nginx_override_policy_applies() {
    let Some(text) = crate::samples::read_karmada_sample("nginx/overridepolicy.yaml") else {
        eprintln!("note: ../shared/karmada/samples not found; skipping");
        return;
    };
    let op: OverridePolicy = yaml(&text);
    let mut d: Value =
        yaml(&crate::samples::read_karmada_sample("nginx/deployment.yaml").unwrap_or_default());
    d["metadata"]["namespace"] = json!("default");
    let mut opn = op.clone();
    opn.metadata.namespace = Some("default".into());
    let mut d1 = d.clone();
    apply_override_policies(
        &mut d1,
        &cluster("member1"),
        &[],
        std::slice::from_ref(&opn),
    )
    .unwrap();
    assert_eq!(d1["metadata"]["annotations"]["env"], "skoala-stage");
    let mut d2 = d.clone();
    let applied = apply_override_policies(&mut d2, &cluster("member2"), &[], &[opn]).unwrap();
    assert_eq!(d2["metadata"]["labels"]["env"], "skoala-dev");
    assert_eq!(d2["metadata"]["labels"]["env-stat"], "skoala-stage");
    assert_eq!(applied.namespaced.len(), 1);
}

#[test]
fn namespaced_policies_see_cluster_override_results() {
    let mut d = workload("Deployment", &["nginx"]);
    let cops = vec![cop_policy(
        "tag",
        "{overrideRules: [{overriders: {labelsOverrider: [{operator: add, value: {tier: web}}]}}]}",
    )];
    let ops = vec![op_policy(
        "by-label",
        "default",
        "{resourceSelectors: [{apiVersion: apps/v1, kind: Deployment, labelSelector: {matchLabels: {tier: web}}}], overrideRules: [{overriders: {annotationsOverrider: [{operator: add, value: {seen: 'yes'}}]}}]}",
    )];
    let applied = apply_override_policies(&mut d, &cluster("m1"), &cops, &ops).unwrap();
    assert_eq!(applied.namespaced.len(), 1);
    assert_eq!(d["metadata"]["annotations"]["seen"], "yes");
}
