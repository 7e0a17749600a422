//! CRD version conversion through a real conversion webhook (ConversionReview v1):
//! objects stored in one version are served in another, in both directions, with
//! stock kubectl; a webhook that is down makes reads of the other version fail.

use std::io::Write;
use std::process::Stdio;

use flotilla_tests::webhook::{Answer, Seen, WebhookServer};
use flotilla_tests::{ApiServer, run, system_kubectl};
use serde_json::{Value, json};

/// v1 keeps `spec.size`; v2 keeps `spec.dimensions.size`.
fn convert(seen: &Seen) -> Answer {
    let request = seen.request();
    let desired = request["desiredAPIVersion"]
        .as_str()
        .unwrap_or("")
        .to_string();
    let converted: Vec<Value> = request["objects"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .into_iter()
        .map(|mut o| {
            if desired.ends_with("/v2") {
                if let Some(size) = o["spec"].as_object_mut().and_then(|s| s.remove("size")) {
                    o["spec"]["dimensions"] = json!({"size": size});
                }
            } else if let Some(size) = o.pointer("/spec/dimensions/size").cloned() {
                o["spec"] = json!({"size": size});
            }
            o["apiVersion"] = json!(desired);
            o
        })
        .collect();
    json!({"result": {"status": "Success"}, "convertedObjects": converted}).into()
}

fn crd(url: &str, ca_bundle: &str) -> String {
    let schema = |props: Value| json!({"openAPIV3Schema": {"type": "object", "properties": {"spec": {"type": "object", "properties": props}}}});
    json!({
        "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
        "metadata": {"name": "gadgets.example.flotilla.io"},
        "spec": {
            "group": "example.flotilla.io", "scope": "Namespaced",
            "names": {"plural": "gadgets", "singular": "gadget", "kind": "Gadget"},
            "versions": [
                {"name": "v1", "served": true, "storage": true, "schema": schema(json!({"size": {"type": "integer"}}))},
                {"name": "v2", "served": true, "storage": false,
                 "schema": schema(json!({"dimensions": {"type": "object", "properties": {"size": {"type": "integer"}}}}))}],
            "conversion": {"strategy": "Webhook", "webhook": {
                "conversionReviewVersions": ["v1"],
                "clientConfig": {"url": url, "caBundle": ca_bundle}}}
        }
    })
    .to_string()
}

fn apply(server: &ApiServer, manifest: &str) -> (i32, String, String) {
    let mut child = server
        .kubectl(&system_kubectl())
        .args(["apply", "-f", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("kubectl");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(manifest.as_bytes())
        .expect("write");
    let out = child.wait_with_output().expect("output");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into(),
        String::from_utf8_lossy(&out.stderr).into(),
    )
}

fn get(server: &ApiServer, resource: &str, path: &str) -> (i32, String, String) {
    run(server.kubectl(&system_kubectl()).args([
        "get",
        resource,
        "-o",
        &format!("jsonpath={path}"),
    ]))
}

#[test]
fn webhook_converts_between_versions() {
    let mut hook = WebhookServer::start(convert);
    let server = ApiServer::start();
    let (code, _, err) = apply(&server, &crd(&hook.url("/convert"), &hook.ca_bundle()));
    assert_eq!(code, 0, "{err}");

    // Written as v1 (the storage version), read as v2 through the webhook.
    let (code, _, err) = apply(
        &server,
        r#"{"apiVersion":"example.flotilla.io/v1","kind":"Gadget","metadata":{"name":"g1","namespace":"default"},"spec":{"size":3}}"#,
    );
    assert_eq!(code, 0, "{err}");
    let (code, out, err) = get(
        &server,
        "gadgets.v2.example.flotilla.io/g1",
        "{.apiVersion} {.spec.dimensions.size}",
    );
    assert_eq!(
        (code, out.as_str()),
        (0, "example.flotilla.io/v2 3"),
        "{err}"
    );

    // Written as v2, stored as v1, read back in both versions.
    let (code, _, err) = apply(
        &server,
        r#"{"apiVersion":"example.flotilla.io/v2","kind":"Gadget","metadata":{"name":"g2","namespace":"default"},"spec":{"dimensions":{"size":7}}}"#,
    );
    assert_eq!(code, 0, "{err}");
    let (_, out, _) = get(&server, "gadgets.v1.example.flotilla.io/g2", "{.spec.size}");
    assert_eq!(out, "7");
    let (_, out, _) = get(
        &server,
        "gadgets.v2.example.flotilla.io",
        "{.items[*].spec.dimensions.size}",
    );
    assert_eq!(out, "3 7");
    let reviews = hook.seen_at("/convert");
    assert!(!reviews.is_empty());
    assert_eq!(reviews[0].review["kind"], "ConversionReview");
    assert_eq!(reviews[0].review["apiVersion"], "apiextensions.k8s.io/v1");

    // With the webhook down, the other version cannot be read; the stored one can.
    hook.stop();
    let (code, _, err) = get(&server, "gadgets.v2.example.flotilla.io/g1", "{.spec}");
    assert_ne!(code, 0);
    assert!(err.contains("conversion webhook"), "{err}");
    let (code, out, _) = get(&server, "gadgets.v1.example.flotilla.io/g1", "{.spec.size}");
    assert_eq!((code, out.as_str()), (0, "3"));
}
