//! Recorded-shape reviews (`webhook/fixtures/*.json`, as kube-apiserver sends
//! them) through [`handle`], allowed and denied for every kind with rules.

use base64::Engine;
use serde_json::{Value, json};

use super::*;

const ID: &str = "11111111-2222-4333-8444-555555555555";

fn fixture(name: &str) -> Vec<u8> {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures")
        .join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn review_uid(name: &str) -> String {
    let v: Value = serde_json::from_slice(&fixture(name)).expect("fixture JSON");
    v["request"]["uid"].as_str().expect("uid").to_string()
}

/// Sends a fixture to `path`; returns the response and the outcome.
fn send(path: &str, name: &str) -> (Value, Outcome) {
    let reply = handle(path, &fixture(name), ID);
    assert_eq!(reply.status, 200, "{name}: {}", reply.body);
    let response = reply.body["response"].clone();
    assert_eq!(response["uid"], review_uid(name), "{name}: uid echoed");
    (response, reply.outcome.expect("outcome"))
}

/// The object after applying the response's JSONPatch to the fixture's object.
fn patched(name: &str, response: &Value) -> Value {
    assert_eq!(response["allowed"], true, "{response}");
    assert_eq!(response["patchType"], "JSONPatch", "{response}");
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(response["patch"].as_str().expect("patch"))
        .expect("base64");
    let patch: json_patch::Patch = serde_json::from_slice(&bytes).expect("JSONPatch");
    let review: Value = serde_json::from_slice(&fixture(name)).expect("fixture");
    let mut object = review["request"]["object"].clone();
    json_patch::patch(&mut object, &patch).expect("patch applies");
    object
}

/// The fixture `name` with its object replaced (e.g. by the mutated one).
fn with_object(name: &str, object: &Value) -> Vec<u8> {
    let mut review: Value = serde_json::from_slice(&fixture(name)).expect("fixture");
    review["request"]["object"] = object.clone();
    serde_json::to_vec(&review).expect("json")
}

fn allowed(path: &str, name: &str) {
    let (response, outcome) = send(path, name);
    assert_eq!(response["allowed"], true, "{name}: {response}");
    assert!(response.get("status").is_none(), "{name}: {response}");
    assert_eq!(outcome.result, Verdict::Allowed, "{name}");
}

/// Asserts a denial; returns the status.
fn denied(path: &str, name: &str, message: &str) -> Value {
    let (response, outcome) = send(path, name);
    assert_eq!(response["allowed"], false, "{name}: {response}");
    let status = response["status"].clone();
    assert_eq!(status["code"], 403, "{name}: {status}");
    assert_eq!(status["reason"], "Forbidden", "{name}: {status}");
    assert!(
        status["message"]
            .as_str()
            .is_some_and(|m| m.contains(message)),
        "{name}: {status} should say {message:?}"
    );
    assert_eq!(outcome.result, Verdict::Denied, "{name}");
    status
}

#[test]
fn propagation_policy_is_defaulted_then_validated() {
    let (response, outcome) = send("/mutate-propagationpolicy", "pp-create.json");
    assert_eq!(outcome.result, Verdict::Patched);
    assert_eq!(outcome.kind, "PropagationPolicy");
    assert_eq!(outcome.operation, "CREATE");
    let object = patched("pp-create.json", &response);
    assert_eq!(
        object["metadata"]["labels"]["propagationpolicy.karmada.io/permanent-id"],
        ID
    );
    assert_eq!(
        object["metadata"]["finalizers"],
        json!(["karmada.io/propagation-policy-controller"])
    );
    assert_eq!(
        object["spec"]["resourceSelectors"][0]["namespace"],
        "default"
    );
    assert_eq!(
        object["spec"]["placement"]["replicaScheduling"]["replicaDivisionPreference"],
        "Weighted"
    );
    // What the typed round trip does not carry stays as sent.
    assert_eq!(object["metadata"]["creationTimestamp"], Value::Null);
    assert!(object["metadata"].get("creationTimestamp").is_some());

    // Without the mutating webhook's label, validation refuses.
    denied(
        "/validate-propagationpolicy",
        "pp-create.json",
        "label propagationpolicy.karmada.io/permanent-id is required",
    );
    allowed("/validate-propagationpolicy", "pp-create-defaulted.json");
}

#[test]
fn propagation_policy_denials_carry_field_causes() {
    let status = denied(
        "/validate-propagationpolicy",
        "pp-both-affinities.json",
        "clusterAffinities cannot co-exist with clusterAffinity",
    );
    let causes = status["details"]["causes"]
        .as_array()
        .expect("causes")
        .clone();
    assert!(
        causes
            .iter()
            .any(|c| c["field"] == "spec.placement" && c["type"] == "FieldValueInvalid"),
        "{causes:?}"
    );
    denied(
        "/validate-propagationpolicy",
        "pp-update-scheduler-name.json",
        "the schedulerName should not be updated",
    );
}

#[test]
fn cluster_propagation_policy() {
    let (response, _) = send("/mutate-clusterpropagationpolicy", "cpp-create.json");
    let object = patched("cpp-create.json", &response);
    assert_eq!(
        object["metadata"]["labels"]["clusterpropagationpolicy.karmada.io/permanent-id"],
        ID
    );
    // No namespace defaulting for the cluster-scoped kind.
    assert!(
        object["spec"]["resourceSelectors"][0]
            .get("namespace")
            .is_none()
    );
    let reply = handle(
        "/validate-clusterpropagationpolicy",
        &with_object("cpp-create.json", &object),
        ID,
    );
    assert_eq!(reply.body["response"]["allowed"], true, "{}", reply.body);
    denied(
        "/validate-clusterpropagationpolicy",
        "cpp-spread-without-cluster.json",
        "the cluster spread constraint must be enabled in one of the constraints in case of SpreadByField is enabled",
    );
}

#[test]
fn override_policies() {
    let (response, _) = send("/mutate-overridepolicy", "op-create.json");
    let object = patched("op-create.json", &response);
    assert_eq!(
        object["spec"]["resourceSelectors"][0]["namespace"],
        "default"
    );
    // Validation sees the mutated object (an empty selector namespace is refused, as in Karmada).
    denied(
        "/validate-overridepolicy",
        "op-create.json",
        "namespace of resource selector must be the same as the namespace of the policy",
    );
    let reply = handle(
        "/validate-overridepolicy",
        &with_object("op-create.json", &object),
        ID,
    );
    assert_eq!(reply.body["response"]["allowed"], true, "{}", reply.body);
    denied(
        "/validate-overridepolicy",
        "op-image-predicate-path.json",
        "spec.overrideRules[0].overriders.imageOverrider[0].predicate.path",
    );
    allowed("/validate-clusteroverridepolicy", "cop-create.json");
    denied(
        "/validate-clusteroverridepolicy",
        "cop-field-overrider-json-and-yaml.json",
        "FieldOverrider has both YAML and JSON set",
    );
}

#[test]
fn federated_hpas() {
    let (response, _) = send("/mutate-federatedhpa", "fhpa-create.json");
    let object = patched("fhpa-create.json", &response);
    assert_eq!(object["spec"]["minReplicas"], 1);
    allowed("/validate-federatedhpa", "fhpa-create.json");
    let reply = handle(
        "/validate-federatedhpa",
        &with_object("fhpa-create.json", &object),
        ID,
    );
    assert_eq!(reply.body["response"]["allowed"], true, "{}", reply.body);
    denied(
        "/validate-federatedhpa",
        "fhpa-min-above-max.json",
        "must be greater than or equal to `minReplicas`",
    );
    allowed("/validate-cronfederatedhpa", "cronfhpa-create.json");
    denied(
        "/validate-cronfederatedhpa",
        "cronfhpa-bad-schedule.json",
        "invalid cron format",
    );
}

#[test]
fn bindings_works_and_services_get_their_ids() {
    for (path, name, label) in [
        (
            "/mutate-resourcebinding",
            "rb-create.json",
            "resourcebinding.karmada.io/permanent-id",
        ),
        (
            "/mutate-clusterresourcebinding",
            "crb-create.json",
            "clusterresourcebinding.karmada.io/permanent-id",
        ),
        (
            "/mutate-multiclusterservice",
            "mcs-create.json",
            "multiclusterservice.karmada.io/permanent-id",
        ),
        (
            "/mutate-work",
            "work-create.json",
            "work.karmada.io/permanent-id",
        ),
    ] {
        let (response, _) = send(path, name);
        let object = patched(name, &response);
        assert_eq!(object["metadata"]["labels"][label], ID, "{name}");
    }
    // A Work's manifests are pruned and labelled (removals inside manifests are kept).
    let (response, _) = send("/mutate-work", "work-create.json");
    let work = patched("work-create.json", &response);
    let manifest = &work["spec"]["workload"]["manifests"][0];
    assert!(manifest.get("status").is_none(), "{manifest}");
    assert!(manifest["metadata"].get("uid").is_none(), "{manifest}");
    assert_eq!(
        manifest["metadata"]["labels"]["work.karmada.io/permanent-id"],
        ID
    );
    allowed("/validate-multiclusterservice", "mcs-create.json");
    let status = denied(
        "/validate-multiclusterservice",
        "mcs-two-types-bad-port.json",
        "MultiClusterService types should not contain more than one type",
    );
    let fields: Vec<&str> = status["details"]["causes"]
        .as_array()
        .expect("causes")
        .iter()
        .filter_map(|c| c["field"].as_str())
        .collect();
    assert_eq!(fields, ["spec.ports[0].port", "spec.types"], "{status}");
    allowed("/validate-resourcebinding", "rb-create.json");
    denied(
        "/validate-resourcebinding",
        "rb-bad-dependencies.json",
        "annotation value must be a valid JSON",
    );
}

#[test]
fn deletion_protection() {
    denied(
        "/validate-resourcedeletionprotection",
        "delete-protected.json",
        "This resource is protected, please make sure to remove the label: resourcetemplate.karmada.io/deletion-protected",
    );
    allowed(
        "/validate-resourcedeletionprotection",
        "delete-unprotected.json",
    );
}

#[test]
fn kinds_without_rules_are_allowed() {
    // The review is well formed; no rule applies to a ConfigMap here.
    allowed("/validate-multiclusteringress", "delete-unprotected.json");
    allowed("/mutate-resourcebinding", "delete-unprotected.json");
}

fn causes(status: &Value) -> Vec<String> {
    status["details"]["causes"]
        .as_array()
        .expect("causes")
        .iter()
        .filter_map(|c| c["field"].as_str().map(str::to_string))
        .collect()
}

#[test]
fn multi_cluster_ingress_is_validated_as_an_ingress() {
    allowed("/validate-multiclusteringress", "mci-create.json");
    let status = denied(
        "/validate-multiclusteringress",
        "mci-bad-rules.json",
        "spec.rules[0].host: Invalid value: \"192.168.0.1\": must be a DNS name, not an IP address",
    );
    assert_eq!(
        causes(&status),
        [
            "spec.rules[0].host",
            "spec.rules[0].http.paths[0].path",
            "spec.rules[0].http.paths[0].backend",
        ],
        "{status}"
    );
    assert!(
        status["message"]
            .as_str()
            .is_some_and(|m| m.contains("cannot set both port name & port number")),
        "{status}"
    );
    let status = denied(
        "/validate-multiclusteringress",
        "mci-update-uid-status.json",
        "metadata.uid: Invalid value: \"00000000-9999-4999-8999-999999999999\": field is immutable",
    );
    assert_eq!(
        causes(&status),
        ["metadata.uid", "status.loadBalancer.ingress[0].ip"],
        "{status}"
    );
}

fn send_with(path: &str, name: &str, lookups: &Lookups) -> Value {
    let reply = handle_in(path, &fixture(name), ID, &Options::default(), lookups);
    assert_eq!(reply.status, 200, "{name}: {}", reply.body);
    assert_eq!(reply.body["response"]["uid"], review_uid(name));
    reply.body["response"].clone()
}

fn stored(names: &[(&str, &str)]) -> Lookups {
    // Each stored customization scripts InterpretReplica for apps/v1 KIND.
    let list = names
        .iter()
        .map(|(name, kind)| {
            json!({
                "apiVersion": "config.karmada.io/v1alpha1", "kind": "ResourceInterpreterCustomization",
                "metadata": {"name": name},
                "spec": {"target": {"apiVersion": "apps/v1", "kind": kind},
                         "customizations": {"replicaResource": {"luaScript": "function GetReplicas(o) return 1, {} end"}}},
            })
        })
        .collect();
    Lookups {
        customizations: Some(Ok(list)),
    }
}

#[test]
fn interpreter_customizations_load_and_do_not_conflict() {
    const PATH: &str = "/validate-resourceinterpretercustomization";
    let none = stored(&[]);
    let response = send_with(PATH, "ric-create.json", &none);
    assert_eq!(response["allowed"], true, "{response}");
    // Same operation for another kind, or its own stored version: no conflict.
    let others = stored(&[
        ("statefulsets", "StatefulSet"),
        ("declarative-deployment", "Deployment"),
    ]);
    assert_eq!(send_with(PATH, "ric-create.json", &others)["allowed"], true);

    let conflicting = stored(&[("replicas-first", "Deployment")]);
    let response = send_with(PATH, "ric-create.json", &conflicting);
    assert_eq!(response["allowed"], false, "{response}");
    assert_eq!(response["status"]["code"], 403);
    assert_eq!(
        response["status"]["message"],
        "conflicting with InterpreterOperation(InterpretReplica) of existing ResourceInterpreterCustomization(replicas-first)"
    );
    assert_eq!(
        causes(&response["status"]),
        ["spec.customizations.replicaResource"]
    );

    let response = send_with(PATH, "ric-bad-lua.json", &none);
    assert_eq!(response["allowed"], false, "{response}");
    let message = response["status"]["message"].as_str().expect("message");
    assert!(
        message.starts_with(
            "InterpreterOperation(InterpretStatus) Lua script error: spec.customizations.statusReflection.luaScript:"
        ) && message.contains("'end' expected"),
        "{message}"
    );

    // Without the stored list the webhook cannot judge: 500, as Karmada's list failure.
    for lookups in [
        Lookups::default(),
        Lookups {
            customizations: Some(Err("connection refused".into())),
        },
    ] {
        let response = send_with(PATH, "ric-create.json", &lookups);
        assert_eq!(response["allowed"], false, "{response}");
        assert_eq!(response["status"]["code"], 500, "{response}");
    }
    assert!(needs_customizations(PATH));
    assert!(!needs_customizations("/validate-multiclusteringress"));
}

#[test]
fn bindings_convert() {
    let reply = handle("/convert", &fixture("convert-rb-to-v1alpha2.json"), ID);
    assert_eq!(reply.status, 200);
    let response = &reply.body["response"];
    assert_eq!(response["uid"], "5b9a9d0c-0000-4000-8000-000000000001");
    assert_eq!(response["result"]["status"], "Success", "{response}");
    let object = &response["convertedObjects"][0];
    assert_eq!(object["apiVersion"], "work.karmada.io/v1alpha2");
    assert_eq!(object["spec"]["replicas"], 2, "{object}");
    assert_eq!(reply.body["kind"], "ConversionReview");
    let outcome = reply.outcome.expect("outcome");
    assert_eq!(
        (outcome.kind.as_str(), outcome.operation.as_str()),
        ("ResourceBinding", "CONVERT")
    );

    let bad = json!({"apiVersion": "apiextensions.k8s.io/v1", "kind": "ConversionReview",
        "request": {"uid": "u", "desiredAPIVersion": "work.karmada.io/v1alpha2",
                    "objects": [{"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}}]}});
    let reply = handle("/convert", &serde_json::to_vec(&bad).expect("json"), ID);
    assert_eq!(reply.body["response"]["result"]["status"], "Failure");
    assert!(
        reply.body["response"]["result"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("unsupported conversion")),
        "{}",
        reply.body
    );
}

#[test]
fn malformed_requests_get_errors_not_panics() {
    let reply = handle("/nope", b"{}", ID);
    assert_eq!(reply.status, 404);
    assert_eq!(reply.body["kind"], "Status");
    assert!(reply.outcome.is_none());

    for body in [
        &b"not json"[..],
        b"{}",
        b"[]",
        br#"{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview"}"#,
        br#"{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"operation":"CREATE"}}"#,
        br#"{"apiVersion":"v1","kind":"ConfigMap","request":{"uid":"x"}}"#,
    ] {
        let reply = handle("/validate-propagationpolicy", body, ID);
        assert_eq!(reply.status, 400, "{}", String::from_utf8_lossy(body));
        assert_eq!(reply.body["kind"], "Status");
        assert_eq!(reply.body["code"], 400);
        assert!(reply.body["message"].as_str().is_some_and(|m| !m.is_empty()));
    }
    let reply = handle("/convert", b"{\"kind\":\"AdmissionReview\"}", ID);
    assert_eq!(reply.status, 400);

    // A review whose object does not decode as its kind: allowed=false, code 400.
    let review = json!({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
        "request": {"uid": "u1", "operation": "CREATE", "namespace": "default",
                    "kind": {"group": "policy.karmada.io", "version": "v1alpha1", "kind": "PropagationPolicy"},
                    "object": {"apiVersion": "policy.karmada.io/v1alpha1", "kind": "PropagationPolicy",
                               "metadata": {"name": "x"}, "spec": {"resourceSelectors": "nope"}}}});
    for path in ["/mutate-propagationpolicy", "/validate-propagationpolicy"] {
        let reply = handle(path, &serde_json::to_vec(&review).expect("json"), ID);
        assert_eq!(reply.status, 200);
        let response = &reply.body["response"];
        assert_eq!(response["uid"], "u1");
        assert_eq!(response["allowed"], false);
        assert_eq!(response["status"]["code"], 400);
        assert_eq!(reply.outcome.expect("outcome").result, Verdict::Error);
    }
    // An unknown operation, and a CREATE without an object.
    let mut odd = review.clone();
    odd["request"]["operation"] = json!("PATCH");
    let reply = handle(
        "/validate-propagationpolicy",
        &serde_json::to_vec(&odd).expect("json"),
        ID,
    );
    assert_eq!(reply.body["response"]["allowed"], false);
    odd["request"]["operation"] = json!("CREATE");
    odd["request"]["object"] = Value::Null;
    let reply = handle(
        "/validate-propagationpolicy",
        &serde_json::to_vec(&odd).expect("json"),
        ID,
    );
    assert_eq!(reply.body["response"]["allowed"], false);
    assert_eq!(reply.body["response"]["status"]["code"], 400);
}

#[test]
fn every_karmada_path_is_routed() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../deploy/webhook/webhook-configuration.yaml");
    let config = std::fs::read_to_string(&path).expect("deploy/webhook/webhook-configuration.yaml");
    let mut paths = 0;
    for line in config.lines() {
        if let Some(path) = line.trim().strip_prefix("path: ") {
            assert!(find_route(path).is_some(), "{path} is not served");
            paths += 1;
        }
    }
    // 8 mutating and 14 validating webhooks, as Karmada registers them.
    assert_eq!(paths, 22);
}

#[test]
fn unchanged_objects_get_no_patch() {
    let v = json!({"a": 1, "b": [1, 2]});
    assert_eq!(patch(&v, &v), None);
    let after = json!({"b": [1, 2]});
    assert_eq!(
        patch(&v, &after),
        None,
        "removals outside manifests are dropped"
    );
}

#[test]
fn cluster_taint_policy_no_execute_needs_the_flag() {
    let review = json!({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
        "request": {"uid": "ctp-1", "operation": "CREATE",
                    "kind": {"group": "policy.karmada.io", "version": "v1alpha1", "kind": "ClusterTaintPolicy"},
                    "object": {"apiVersion": "policy.karmada.io/v1alpha1", "kind": "ClusterTaintPolicy",
                               "metadata": {"name": "evict"},
                               "spec": {"taints": [{"key": "unhealthy", "effect": "NoExecute"}]}}}});
    let body = serde_json::to_vec(&review).expect("json");
    let reply = handle("/validate-clustertaintpolicy", &body, ID);
    let response = &reply.body["response"];
    assert_eq!(response["allowed"], false, "{response}");
    assert_eq!(
        response["status"]["details"]["causes"][0]["field"],
        "spec.taints[0]"
    );
    let allow = Options {
        allow_no_execute_taint_policy: true,
    };
    let reply = handle_with("/validate-clustertaintpolicy", &body, ID, &allow);
    assert_eq!(reply.body["response"]["allowed"], true, "{}", reply.body);
}
