//! End-to-end kubectl tests for the API server semantics of issue 5: client-side
//! apply (strategic merge by merge key), server-side apply conflicts, the scale
//! and status subresources, strategic merge patches, `explain`, cascading
//! deletion (foreground, background, orphan; namespaces), finalizers, server dry
//! runs, field validation, Karmada's published CRDs, and bad input.
//!
//! Every scenario runs once per kubectl from [`kubectls()`], each with its own
//! fresh server (free loopback port, temporary data directory). Raw requests
//! that kubectl cannot produce go through `curl` with the admin client
//! certificate of the data directory, to 127.0.0.1 only. Every wait is bounded
//! and every spawned process is killed by PID.
//!
//! Karmada's CRDs are read from the shared checkout
//! (`../shared/karmada/crds` beside the project); the tests that need
//! them are skipped with a note when it is absent.
//!
//! Tests marked `#[ignore = "server bug: …"]` assert kube-apiserver's behaviour
//! where flotilla differs; run them with `--include-ignored`.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use flotilla_tests::ApiServer;
use flotilla_tests::run_bounded;
use flotilla_tests::session::{Session, assert_text, each_kubectl};
use serde_json::{Value, json};

/// Upper bound for one kubectl or curl invocation.
const CMD_TIMEOUT: Duration = Duration::from_secs(60);

/// Upper bound for asynchronous work on the server (garbage collection,
/// namespace finalization, CRD establishment).
const SETTLE: Duration = Duration::from_secs(30);

const PP_CRD: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../shared/karmada/crds/policy.karmada.io_propagationpolicies.yaml"
);
const RB_CRD: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../shared/karmada/crds/work.karmada.io_resourcebindings.yaml"
);
const PP_SAMPLE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../shared/karmada/samples/nginx/propagationpolicy.yaml"
);

// ---------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------

fn fixture(name: &str) -> String {
    let p = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures/semantics")
        .join(name);
    assert!(p.exists(), "missing fixture {}", p.display());
    p.display().to_string()
}

/// Polls `f` until it returns true or `timeout` passes (then panics with `what`).
#[track_caller]
fn wait_until(what: &str, timeout: Duration, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    loop {
        if f() {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn karmada_crds_present() -> bool {
    let ok = [PP_CRD, RB_CRD, PP_SAMPLE]
        .iter()
        .all(|p| Path::new(p).exists());
    if !ok {
        eprintln!(
            "note: Karmada's CRDs or samples are missing under {}; skipping",
            concat!(env!("CARGO_MANIFEST_DIR"), "/../../shared/karmada")
        );
    }
    ok
}

/// The first container of `d` with the given name.
fn container<'a>(d: &'a Value, name: &str) -> &'a Value {
    d["spec"]["template"]["spec"]["containers"]
        .as_array()
        .expect("containers")
        .iter()
        .find(|c| c["name"] == name)
        .unwrap_or_else(|| panic!("no container {name} in {d}"))
}

fn container_names(d: &Value) -> Vec<String> {
    d["spec"]["template"]["spec"]["containers"]
        .as_array()
        .expect("containers")
        .iter()
        .map(|c| c["name"].as_str().unwrap_or_default().to_string())
        .collect()
}

/// `[{name, value}]` of a container's env, as (name, value) pairs.
fn env_of(c: &Value) -> Vec<(String, String)> {
    c["env"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|e| {
                    (
                        e["name"].as_str().unwrap_or_default().to_string(),
                        e["value"].as_str().unwrap_or_default().to_string(),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

fn pairs(v: &[(&str, &str)]) -> Vec<(String, String)> {
    v.iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect()
}

// ---------------------------------------------------------------------------
// 1. Client-side apply: three-way strategic merge
// ---------------------------------------------------------------------------

#[test]
fn apply_edit_apply_merges_containers_by_name() {
    each_kubectl(|s| {
        let (code, out, err) = s.run(&["apply", "-f", &fixture("deploy-v1.yaml")]);
        assert_eq!(code, 0, "{}: {out}{err}", s.who());
        assert_text("first apply", out.trim_end(), "deployment.apps/app created");
        assert!(
            !err.to_lowercase().contains("warning:"),
            "{}: first apply warned: {err}",
            s.who()
        );
        // The edited file: image of `app` changed, env var DEBUG removed.
        let (code, out, err) = s.run(&["apply", "-f", &fixture("deploy-v2.yaml")]);
        assert_eq!(code, 0, "{}: {out}{err}", s.who());
        assert_text(
            &format!("{} second apply", s.who()),
            out.trim_end(),
            "deployment.apps/app configured",
        );
        assert!(
            !err.to_lowercase().contains("warning:"),
            "{}: second apply warned: {err}",
            s.who()
        );
        let d = s.get_json(&["deployment", "app"]);
        assert_eq!(container_names(&d), ["app", "sidecar"], "{}: {d}", s.who());
        let app = container(&d, "app");
        assert_eq!(app["image"], "registry.example/app:1.1", "{}", s.who());
        assert_eq!(
            env_of(app),
            pairs(&[("MODE", "fast")]),
            "{}: DEBUG removed",
            s.who()
        );
        assert_eq!(app["ports"][0]["containerPort"], 8080, "{}", s.who());
        let sidecar = container(&d, "sidecar");
        assert_eq!(sidecar["image"], "registry.example/sidecar:2.0");
        assert_eq!(env_of(sidecar), pairs(&[("LEVEL", "info")]));
        assert_eq!(d["metadata"]["generation"], 2, "{}", s.who());
        // Applying the same file again changes nothing.
        s.expect(
            &["apply", "-f", &fixture("deploy-v2.yaml")],
            "deployment.apps/app unchanged",
        );
        // A container dropped from the file is removed, the other one kept.
        let (code, out, err) = s.run(&["apply", "-f", &fixture("deploy-v3.yaml")]);
        assert_eq!(code, 0, "{}: {out}{err}", s.who());
        assert_text(
            "third apply",
            out.trim_end(),
            "deployment.apps/app configured",
        );
        assert!(
            !err.to_lowercase().contains("warning:"),
            "{}: {err}",
            s.who()
        );
        let d = s.get_json(&["deployment", "app"]);
        assert_eq!(container_names(&d), ["app"], "{}: {d}", s.who());
        assert_eq!(container(&d, "app")["image"], "registry.example/app:1.1");
        let last: Value = serde_json::from_str(
            d["metadata"]["annotations"]["kubectl.kubernetes.io/last-applied-configuration"]
                .as_str()
                .expect("last-applied annotation"),
        )
        .expect("last-applied JSON");
        assert_eq!(
            last["spec"]["template"]["spec"]["containers"]
                .as_array()
                .map(Vec::len),
            Some(1),
            "{last}"
        );
    });
}

// ---------------------------------------------------------------------------
// 2. Server-side apply: field managers, conflicts, --force-conflicts
// ---------------------------------------------------------------------------

#[test]
fn server_side_apply_conflict_and_force() {
    each_kubectl(|s| {
        let r2 = fixture("ssa-replicas-2.yaml");
        let r3 = fixture("ssa-replicas-3.yaml");
        s.expect(
            &["apply", "--server-side", "--field-manager=alpha", "-f", &r2],
            "deployment.apps/ssa serverside-applied",
        );
        let err = s.fails(&["apply", "--server-side", "--field-manager=beta", "-f", &r3]);
        let first = err.lines().next().unwrap_or_default();
        assert_text(
            &format!("{} conflicting apply (first stderr line)", s.who()),
            first,
            "error: Apply failed with 1 conflict: conflict with \"alpha\" using apps/v1: .spec.replicas",
        );
        assert!(
            err.contains("--force-conflicts"),
            "{}: kubectl's advice: {err}",
            s.who()
        );
        assert_eq!(
            s.get_json(&["deployment", "ssa"])["spec"]["replicas"],
            2,
            "{}: the conflicting apply changed nothing",
            s.who()
        );
        s.expect(
            &[
                "apply",
                "--server-side",
                "--field-manager=beta",
                "--force-conflicts",
                "-f",
                &r3,
            ],
            "deployment.apps/ssa serverside-applied",
        );
        assert_eq!(s.get_json(&["deployment", "ssa"])["spec"]["replicas"], 3);

        let yaml = s.ok(&[
            "get",
            "deployment",
            "ssa",
            "-o",
            "yaml",
            "--show-managed-fields",
        ]);
        for want in ["manager: alpha", "manager: beta", "operation: Apply"] {
            assert!(yaml.contains(want), "{}: no `{want}` in\n{yaml}", s.who());
        }
        // .spec.replicas moved to beta; alpha keeps the fields both applied.
        let d = s.get_json(&["deployment", "ssa", "--show-managed-fields"]);
        let mf = d["metadata"]["managedFields"]
            .as_array()
            .expect("managedFields");
        let owns_replicas: Vec<&str> = mf
            .iter()
            .filter(|e| !e["fieldsV1"]["f:spec"]["f:replicas"].is_null())
            .map(|e| e["manager"].as_str().unwrap_or_default())
            .collect();
        assert_eq!(owns_replicas, ["beta"], "{}: {mf:?}", s.who());
        let alpha = mf
            .iter()
            .find(|e| e["manager"] == "alpha")
            .expect("alpha entry");
        assert_eq!(alpha["operation"], "Apply");
        assert_eq!(alpha["apiVersion"], "apps/v1");
        assert!(
            !alpha["fieldsV1"]["f:spec"]["f:selector"].is_null(),
            "{}: alpha co-owns the selector: {alpha}",
            s.who()
        );
    });
}

// ---------------------------------------------------------------------------
// 3. Scale subresource
// ---------------------------------------------------------------------------

#[test]
fn scale_deployment() {
    each_kubectl(|s| {
        s.expect(
            &["apply", "-f", &fixture("deploy-v1.yaml")],
            "deployment.apps/app created",
        );
        s.expect(
            &["scale", "deploy/app", "--replicas=5"],
            "deployment.apps/app scaled",
        );
        let d = s.get_json(&["deployment", "app"]);
        assert_eq!(d["spec"]["replicas"], 5, "{}", s.who());
        let raw = s.ok(&[
            "get",
            "--raw",
            "/apis/apps/v1/namespaces/default/deployments/app/scale",
        ]);
        let scale: Value = serde_json::from_str(&raw).expect("Scale JSON");
        assert_eq!(scale["kind"], "Scale", "{scale}");
        assert_eq!(scale["apiVersion"], "autoscaling/v1", "{scale}");
        assert_eq!(scale["metadata"]["name"], "app", "{scale}");
        assert_eq!(scale["metadata"]["namespace"], "default", "{scale}");
        assert_eq!(scale["metadata"]["uid"], d["metadata"]["uid"], "{scale}");
        assert_eq!(scale["spec"]["replicas"], 5, "{scale}");
        assert_eq!(scale["status"]["selector"], "app=app", "{scale}");
        // --current-replicas: kubectl GETs the Scale, compares, PUTs it back
        // without a Content-Type.
        s.expect(
            &[
                "scale",
                "deploy/app",
                "--current-replicas=5",
                "--replicas=1",
            ],
            "deployment.apps/app scaled",
        );
        assert_eq!(s.get_json(&["deployment", "app"])["spec"]["replicas"], 1);
        let err = s.fails(&[
            "scale",
            "deploy/app",
            "--current-replicas=4",
            "--replicas=2",
        ]);
        assert!(
            err.contains("Expected replicas to be 4, was 1"),
            "{}: {err}",
            s.who()
        );
    });
}

// ---------------------------------------------------------------------------
// 4. Strategic merge patch
// ---------------------------------------------------------------------------

#[test]
fn patch_strategic_merges_containers_by_name() {
    each_kubectl(|s| {
        s.expect(
            &["apply", "-f", &fixture("deploy-v1.yaml")],
            "deployment.apps/app created",
        );
        s.expect(
            &[
                "patch",
                "deployment",
                "app",
                "-p",
                r#"{"spec":{"template":{"spec":{"containers":[{"name":"sidecar","image":"registry.example/sidecar:2.1","env":[{"name":"EXTRA","value":"yes"}]}]}}}}"#,
            ],
            "deployment.apps/app patched",
        );
        let d = s.get_json(&["deployment", "app"]);
        assert_eq!(container_names(&d), ["app", "sidecar"], "{}: {d}", s.who());
        let sidecar = container(&d, "sidecar");
        assert_eq!(sidecar["image"], "registry.example/sidecar:2.1");
        assert_eq!(
            env_of(sidecar),
            pairs(&[("LEVEL", "info"), ("EXTRA", "yes")]),
            "{}: env merged by name",
            s.who()
        );
        let app = container(&d, "app");
        assert_eq!(app["image"], "registry.example/app:1.0", "{}", s.who());
        assert_eq!(env_of(app), pairs(&[("MODE", "fast"), ("DEBUG", "1")]));

        // `--type strategic` spelled out; a `$patch: delete` directive removes
        // one container by its merge key.
        s.expect(
            &[
                "patch",
                "deployment",
                "app",
                "--type",
                "strategic",
                "-p",
                r#"{"spec":{"template":{"spec":{"containers":[{"name":"sidecar","$patch":"delete"}]}}}}"#,
            ],
            "deployment.apps/app patched",
        );
        let d = s.get_json(&["deployment", "app"]);
        assert_eq!(container_names(&d), ["app"], "{}: {d}", s.who());
        assert_eq!(container(&d, "app")["image"], "registry.example/app:1.0");
    });
}

// ---------------------------------------------------------------------------
// 5. explain (OpenAPI v3)
// ---------------------------------------------------------------------------

#[test]
fn explain_builtin_field() {
    each_kubectl(|s| {
        let out = s.ok(&["explain", "deployment.spec.replicas"]);
        for want in [
            "GROUP:      apps",
            "KIND:       Deployment",
            "VERSION:    v1",
            "FIELD: replicas <integer>",
            "DESCRIPTION:",
            "Number of desired pods.",
        ] {
            assert!(out.contains(want), "{}: no `{want}` in\n{out}", s.who());
        }
        let out = s.ok(&["explain", "deployment.spec.template.spec.containers"]);
        assert!(
            out.contains("FIELD: containers <[]Container>"),
            "{}: {out}",
            s.who()
        );
    });
}

#[test]
fn explain_crd_field() {
    each_kubectl(|s| {
        s.create_crd(&fixture("widget-crd.yaml"), "widgets.example.com");
        let deadline = Instant::now() + SETTLE;
        let out = loop {
            let (code, out, err) = s.run(&["explain", "widgets.spec.size"]);
            if code == 0 {
                break out;
            }
            assert!(
                Instant::now() < deadline,
                "{}: explain widgets.spec.size kept failing: {out}{err}",
                s.who()
            );
            std::thread::sleep(Duration::from_millis(500));
        };
        for want in [
            "GROUP:      example.com",
            "KIND:       Widget",
            "VERSION:    v1",
            "FIELD: size <integer>",
            "Size of the widget in centimetres.",
        ] {
            assert!(out.contains(want), "{}: no `{want}` in\n{out}", s.who());
        }
        let out = s.ok(&["explain", "widgets.spec"]);
        for want in [
            "FIELD: spec <Object>",
            "The desired widget.",
            "color\t<string>",
            "size\t<integer> -required-",
        ] {
            assert!(out.contains(want), "{}: no `{want}` in\n{out}", s.who());
        }
    });
}

// ---------------------------------------------------------------------------
// 6. Cascading deletion through ownerReferences
// ---------------------------------------------------------------------------

fn owner_ref(kind: &str, name: &str, uid: &str) -> Value {
    json!([{"apiVersion": "apps/v1", "kind": kind, "name": name, "uid": uid,
            "controller": true, "blockOwnerDeletion": true}])
}

/// Creates Deployment `web`, ReplicaSet `web-1` owned by it and Pods `web-1-a`,
/// `web-1-b` owned by the ReplicaSet (controller, blockOwnerDeletion true);
/// `pod_finalizer` is put on `web-1-a`.
fn create_owned_chain(s: &Session, pod_finalizer: Option<&str>) {
    let labels = json!({"app": "web"});
    let pod_spec = json!({"containers": [{"name": "web", "image": "registry.example/web:1.0"}]});
    let deploy = json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "web", "labels": labels},
        "spec": {"replicas": 2, "selector": {"matchLabels": labels},
                 "template": {"metadata": {"labels": labels}, "spec": pod_spec}}
    });
    assert_text(
        "create deployment",
        s.ok_stdin(&["create", "-f", "-"], &deploy.to_string())
            .trim_end(),
        "deployment.apps/web created",
    );
    let d_uid = s.get_json(&["deployment", "web"])["metadata"]["uid"]
        .as_str()
        .expect("uid")
        .to_string();
    let rs = json!({
        "apiVersion": "apps/v1", "kind": "ReplicaSet",
        "metadata": {"name": "web-1", "labels": labels,
                     "ownerReferences": owner_ref("Deployment", "web", &d_uid)},
        "spec": {"replicas": 2, "selector": {"matchLabels": labels},
                 "template": {"metadata": {"labels": labels}, "spec": pod_spec}}
    });
    assert_text(
        "create replicaset",
        s.ok_stdin(&["create", "-f", "-"], &rs.to_string())
            .trim_end(),
        "replicaset.apps/web-1 created",
    );
    let rs_uid = s.get_json(&["replicaset", "web-1"])["metadata"]["uid"]
        .as_str()
        .expect("uid")
        .to_string();
    for pod in ["web-1-a", "web-1-b"] {
        let mut p = json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": pod, "labels": labels,
                         "ownerReferences": owner_ref("ReplicaSet", "web-1", &rs_uid)},
            "spec": pod_spec
        });
        if let (Some(f), "web-1-a") = (pod_finalizer, pod) {
            p["metadata"]["finalizers"] = json!([f]);
        }
        assert_text(
            "create pod",
            s.ok_stdin(&["create", "-f", "-"], &p.to_string())
                .trim_end(),
            &format!("pod/{pod} created"),
        );
    }
}

#[test]
fn delete_cascade_foreground() {
    each_kubectl(|s| {
        create_owned_chain(s, None);
        // kubectl waits until the Deployment is gone; with Foreground its
        // blocking dependents are gone before it.
        s.expect(
            &[
                "delete",
                "deploy/web",
                "--cascade=foreground",
                "--timeout=30s",
            ],
            &s.deleted("deployment.apps \"web\"", Some("default")),
        );
        assert!(s.gone(&["deployment", "web"]), "{}", s.who());
        assert!(s.gone(&["replicaset", "web-1"]), "{}: rs left", s.who());
        assert!(s.gone(&["pod", "web-1-a"]), "{}: pod left", s.who());
        assert!(s.gone(&["pod", "web-1-b"]), "{}: pod left", s.who());
    });
}

#[test]
fn delete_cascade_foreground_waits_for_blocking_dependents() {
    each_kubectl(|s| {
        create_owned_chain(s, Some("example.com/hold"));
        s.expect(
            &[
                "delete",
                "deploy/web",
                "--cascade=foreground",
                "--wait=false",
            ],
            &s.deleted("deployment.apps \"web\"", Some("default")),
        );
        // The held pod blocks the ReplicaSet, which blocks the Deployment:
        // both stay with deletionTimestamp and the foregroundDeletion finalizer.
        wait_until("pod web-1-b collected", SETTLE, || {
            s.gone(&["pod", "web-1-b"])
        });
        let pod = s.get_json(&["pod", "web-1-a"]);
        assert!(
            pod["metadata"]["deletionTimestamp"].is_string(),
            "{}: held pod is being deleted: {pod}",
            s.who()
        );
        for what in ["deployment/web", "replicaset/web-1"] {
            let o = s.get_json(&[what]);
            assert!(
                o["metadata"]["deletionTimestamp"].is_string(),
                "{}: {what} is being deleted: {o}",
                s.who()
            );
            assert!(
                o["metadata"]["finalizers"]
                    .as_array()
                    .is_some_and(|f| f.contains(&json!("foregroundDeletion"))),
                "{}: {what} carries foregroundDeletion: {o}",
                s.who()
            );
        }
        s.expect(
            &[
                "patch",
                "pod",
                "web-1-a",
                "--type",
                "json",
                "-p",
                r#"[{"op":"remove","path":"/metadata/finalizers"}]"#,
            ],
            "pod/web-1-a patched",
        );
        wait_until("deployment web collected", SETTLE, || {
            s.gone(&["deployment", "web"])
        });
        assert!(s.gone(&["replicaset", "web-1"]), "{}", s.who());
        assert!(s.gone(&["pod", "web-1-a"]), "{}", s.who());
    });
}

#[test]
fn delete_cascade_orphan() {
    each_kubectl(|s| {
        create_owned_chain(s, None);
        s.expect(
            &["delete", "deploy/web", "--cascade=orphan", "--timeout=30s"],
            &s.deleted("deployment.apps \"web\"", Some("default")),
        );
        assert!(s.gone(&["deployment", "web"]), "{}", s.who());
        // Give a (wrong) collector the chance to act before checking.
        std::thread::sleep(Duration::from_secs(2));
        let rs = s.get_json(&["replicaset", "web-1"]);
        assert!(
            rs["metadata"]["ownerReferences"]
                .as_array()
                .is_none_or(|a| a.is_empty()),
            "{}: orphaned ReplicaSet keeps no reference to the Deployment: {rs}",
            s.who()
        );
        assert!(rs["metadata"]["deletionTimestamp"].is_null(), "{rs}");
        for pod in ["web-1-a", "web-1-b"] {
            let p = s.get_json(&["pod", pod]);
            assert_eq!(
                p["metadata"]["ownerReferences"][0]["name"],
                "web-1",
                "{}: pods still owned by the ReplicaSet: {p}",
                s.who()
            );
        }
    });
}

#[test]
fn delete_cascade_background() {
    each_kubectl(|s| {
        create_owned_chain(s, None);
        s.expect(
            &["delete", "deploy/web", "--timeout=30s"],
            &s.deleted("deployment.apps \"web\"", Some("default")),
        );
        wait_until("dependents collected", SETTLE, || {
            s.gone(&["replicaset", "web-1"])
                && s.gone(&["pod", "web-1-a"])
                && s.gone(&["pod", "web-1-b"])
        });
    });
}

// ---------------------------------------------------------------------------
// 7. Namespace deletion
// ---------------------------------------------------------------------------

#[test]
fn namespace_deletion_cascades() {
    each_kubectl(|s| {
        s.expect(
            &["create", "-f", &fixture("namespace-doomed.yaml")],
            "namespace/doomed created",
        );
        s.expect(
            &["create", "-f", &fixture("configmap-late.yaml")],
            "configmap/late created",
        );
        s.expect(
            &["apply", "-n", "doomed", "-f", &fixture("deploy-v1.yaml")],
            "deployment.apps/app created",
        );
        // kubectl waits (bounded by --timeout) until the namespace is gone.
        s.expect(
            &["delete", "namespace", "doomed", "--timeout=30s"],
            &s.deleted("namespace \"doomed\"", None),
        );
        assert!(s.gone(&["namespace", "doomed"]), "{}", s.who());
        let (code, out, err) = s.run(&["get", "configmaps,deployments", "-A", "-o", "name"]);
        assert_eq!(code, 0, "{err}");
        assert!(
            !out.contains("configmap/late") && !out.contains("deployment.apps/app"),
            "{}: contents of the deleted namespace survive:\n{out}",
            s.who()
        );
    });
}

/// Creates namespace `doomed` holding ConfigMap `held` (finalizer
/// `example.com/hold`), deletes the namespace without waiting and waits until
/// it is Terminating.
fn terminating_namespace(s: &Session) {
    s.expect(
        &["create", "-f", &fixture("namespace-doomed.yaml")],
        "namespace/doomed created",
    );
    // A ConfigMap held by a finalizer keeps the namespace Terminating.
    let held = fixture("configmap-held.yaml");
    s.expect(
        &["create", "-n", "doomed", "-f", &held],
        "configmap/held created",
    );
    s.expect(
        &["delete", "namespace", "doomed", "--wait=false"],
        &s.deleted("namespace \"doomed\"", None),
    );
    wait_until("namespace Terminating", SETTLE, || {
        s.get_json(&["namespace", "doomed"])["status"]["phase"] == "Terminating"
    });
}

#[test]
fn terminating_namespace_refuses_new_objects() {
    each_kubectl(|s| {
        terminating_namespace(s);
        s.expect_table(
            &["get", "namespace", "doomed"],
            "NAME STATUS AGE\ndoomed Terminating 0s",
        );
        let late = fixture("configmap-late.yaml");
        let err = s.fails(&["create", "-f", &late]);
        let prefix = format!("Error from server (Forbidden): error when creating \"{late}\": ");
        let suffix =
            "unable to create new content in namespace doomed because it is being terminated";
        assert!(
            err.trim_end().starts_with(&prefix) && err.trim_end().ends_with(suffix),
            "{}: {err}",
            s.who()
        );
        assert!(
            s.gone(&["configmap", "late", "-n", "doomed"]),
            "{}",
            s.who()
        );
        // The held ConfigMap is marked for deletion; releasing it lets the
        // namespace go.
        wait_until("held ConfigMap marked for deletion", SETTLE, || {
            s.get_json(&["configmap", "held", "-n", "doomed"])["metadata"]["deletionTimestamp"]
                .is_string()
        });
        s.expect(
            &[
                "patch",
                "configmap",
                "held",
                "-n",
                "doomed",
                "--type",
                "json",
                "-p",
                r#"[{"op":"remove","path":"/metadata/finalizers"}]"#,
            ],
            "configmap/held patched",
        );
        wait_until("namespace doomed removed", SETTLE, || {
            s.gone(&["namespace", "doomed"])
        });
    });
}

/// kube-apiserver's NamespaceLifecycle admission answers with
/// `apierrors.NewForbidden(resource, name, err)`, so the message names the
/// object: `configmaps "late" is forbidden: unable to create new content …`.
#[test]
fn terminating_namespace_forbidden_message() {
    each_kubectl(|s| {
        terminating_namespace(s);
        let late = fixture("configmap-late.yaml");
        s.expect_err(
            &["create", "-f", &late],
            &format!(
                "Error from server (Forbidden): error when creating \"{late}\": configmaps \"late\" is forbidden: unable to create new content in namespace doomed because it is being terminated"
            ),
        );
        if curl_available() {
            let body = std::fs::read(&late).expect("fixture");
            let r = curl(
                &s.srv,
                "POST",
                "/api/v1/namespaces/doomed/configmaps",
                Some("application/yaml"),
                Some(&body),
            );
            assert_status("create in terminating namespace", &r, 403, "Forbidden");
            assert_eq!(
                r.1["message"],
                "configmaps \"late\" is forbidden: unable to create new content in namespace doomed because it is being terminated",
                "{}",
                r.1
            );
            assert_eq!(r.1["details"]["name"], "late", "{}", r.1);
            assert_eq!(r.1["details"]["kind"], "configmaps", "{}", r.1);
            assert!(
                r.1["details"]["causes"]
                    .as_array()
                    .is_some_and(|c| c.iter().any(|c| c["reason"] == "NamespaceTerminating")),
                "cause NamespaceTerminating: {}",
                r.1
            );
        }
    });
}

// ---------------------------------------------------------------------------
// 8. Finalizers
// ---------------------------------------------------------------------------

#[test]
fn finalizer_keeps_object_until_removed() {
    each_kubectl(|s| {
        s.expect(
            &["create", "-f", &fixture("configmap-held.yaml")],
            "configmap/held created",
        );
        s.expect(
            &["delete", "configmap", "held", "--wait=false"],
            &s.deleted("configmap \"held\"", Some("default")),
        );
        std::thread::sleep(Duration::from_secs(1));
        let cm = s.get_json(&["configmap", "held"]);
        assert!(
            cm["metadata"]["deletionTimestamp"].is_string(),
            "{}: {cm}",
            s.who()
        );
        assert_eq!(cm["metadata"]["finalizers"], json!(["example.com/hold"]));
        assert_eq!(cm["data"], json!({"a": "1"}));
        // Deleting again is accepted and changes nothing.
        s.ok(&["delete", "configmap", "held", "--wait=false"]);
        assert!(!s.gone(&["configmap", "held"]), "{}", s.who());
        s.expect(
            &[
                "patch",
                "configmap",
                "held",
                "--type",
                "json",
                "-p",
                r#"[{"op":"remove","path":"/metadata/finalizers/0"}]"#,
            ],
            "configmap/held patched",
        );
        wait_until("configmap held removed", SETTLE, || {
            s.gone(&["configmap", "held"])
        });
    });
}

// ---------------------------------------------------------------------------
// 9. Server dry run
// ---------------------------------------------------------------------------

#[test]
fn dry_run_server_stores_nothing() {
    each_kubectl(|s| {
        let cm = fixture("configmap-dry.yaml");
        let cm2 = fixture("configmap-dry-v2.yaml");
        s.expect(
            &["create", "-f", &cm, "--dry-run=server"],
            "configmap/dry created (server dry run)",
        );
        assert!(s.gone(&["configmap", "dry"]), "{}: create", s.who());
        s.expect(
            &["apply", "-f", &cm, "--dry-run=server"],
            "configmap/dry created (server dry run)",
        );
        assert!(s.gone(&["configmap", "dry"]), "{}: apply", s.who());
        s.expect(
            &["apply", "--server-side", "-f", &cm, "--dry-run=server"],
            "configmap/dry serverside-applied (server dry run)",
        );
        assert!(
            s.gone(&["configmap", "dry"]),
            "{}: server-side apply",
            s.who()
        );
        // A server dry run of a Deployment runs defaulting: the answer has it.
        let out = s.ok(&[
            "create",
            "-f",
            &fixture("deploy-v1.yaml"),
            "--dry-run=server",
            "-o",
            "json",
        ]);
        let d: Value = serde_json::from_str(&out).expect("dry-run answer");
        assert_eq!(
            d["spec"]["strategy"]["type"],
            "RollingUpdate",
            "{}: defaulted answer {d}",
            s.who()
        );
        assert!(s.gone(&["deployment", "app"]), "{}", s.who());

        // Now for real; then changes and a delete as dry runs.
        s.expect(&["apply", "-f", &cm], "configmap/dry created");
        let before = s.get_json(&["configmap", "dry"]);
        s.expect(
            &["apply", "-f", &cm2, "--dry-run=server"],
            "configmap/dry configured (server dry run)",
        );
        // kubectl patch does not mark its output as a dry run (its printer
        // template is completed before the operation is set); what matters
        // is that nothing is stored.
        let out = s.ok(&[
            "patch",
            "configmap",
            "dry",
            "--type",
            "merge",
            "-p",
            r#"{"data":{"b":"2"}}"#,
            "--dry-run=server",
        ]);
        assert!(
            out.trim_end() == "configmap/dry patched"
                || out.trim_end() == "configmap/dry patched (server dry run)",
            "{}: {out}",
            s.who()
        );
        let out = s.ok(&["delete", "configmap", "dry", "--dry-run=server"]);
        let want = if s.minor >= 35 {
            "configmap \"dry\" deleted from default namespace (server dry run)"
        } else {
            "configmap \"dry\" deleted (server dry run)"
        };
        assert_text(&format!("{} dry-run delete", s.who()), out.trim_end(), want);
        let after = s.get_json(&["configmap", "dry"]);
        assert_eq!(before, after, "{}: stored object changed", s.who());
    });
}

// ---------------------------------------------------------------------------
// 10. Field validation
// ---------------------------------------------------------------------------

#[test]
fn validate_strict_and_warn() {
    each_kubectl(|s| {
        let f = fixture("deploy-bogus.yaml");
        s.expect_err(
            &["create", "-f", &f],
            &format!(
                "Error from server (BadRequest): error when creating \"{f}\": Deployment in version \"v1\" cannot be handled as a Deployment: strict decoding error: unknown field \"spec.bogus\""
            ),
        );
        assert!(s.gone(&["deployment", "bogus"]), "{}", s.who());
        s.expect_err(
            &["create", "--validate=strict", "-f", &f],
            &format!(
                "Error from server (BadRequest): error when creating \"{f}\": Deployment in version \"v1\" cannot be handled as a Deployment: strict decoding error: unknown field \"spec.bogus\""
            ),
        );
        let (code, out, err) = s.run(&["create", "--validate=warn", "-f", &f]);
        assert_eq!(code, 0, "{}: {out}{err}", s.who());
        assert_text(
            "warn stdout",
            out.trim_end(),
            "deployment.apps/bogus created",
        );
        assert_text(
            &format!("{} warn stderr", s.who()),
            err.trim_end(),
            "Warning: unknown field \"spec.bogus\"",
        );
        let d = s.get_json(&["deployment", "bogus"]);
        assert!(d["spec"]["bogus"].is_null(), "{d}");
        // --validate=false (Ignore): neither error nor warning.
        s.ok(&["delete", "deployment", "bogus"]);
        let (code, out, err) = s.run(&["create", "--validate=false", "-f", &f]);
        assert_eq!(code, 0, "{}: {out}{err}", s.who());
        assert_eq!(err, "", "{}: --validate=false", s.who());
    });
}

// ---------------------------------------------------------------------------
// 11. Karmada's CRDs as published
// ---------------------------------------------------------------------------

#[test]
fn karmada_propagationpolicy_crd() {
    if !karmada_crds_present() {
        return;
    }
    each_kubectl(|s| {
        s.create_crd(PP_CRD, "propagationpolicies.policy.karmada.io");
        s.expect(
            &["apply", "-f", PP_SAMPLE],
            "propagationpolicy.policy.karmada.io/nginx-propagation created",
        );
        s.expect_table(
            &["get", "propagationpolicies"],
            "NAME CONFLICT-RESOLUTION PRIORITY AGE\nnginx-propagation Abort 0 0s",
        );
        s.expect_table(
            &["get", "pp", "nginx-propagation"],
            "NAME CONFLICT-RESOLUTION PRIORITY AGE\nnginx-propagation Abort 0 0s",
        );
        // Defaults from the schema.
        let pp = s.get_json(&["pp", "nginx-propagation"]);
        assert_eq!(pp["spec"]["conflictResolution"], "Abort", "{pp}");
        assert_eq!(pp["spec"]["preemption"], "Never", "{pp}");
        assert_eq!(pp["spec"]["priority"], 0, "{pp}");
        assert_eq!(pp["spec"]["schedulerName"], "default-scheduler", "{pp}");
        assert_eq!(
            pp["spec"]["placement"]["replicaScheduling"]["replicaSchedulingType"],
            "Divided"
        );
        // Invalid objects: rejected with the field path, nothing stored.
        let bad = fixture("pp-invalid.yaml");
        s.expect_err(
            &["create", "-f", &bad],
            "The PropagationPolicy \"invalid\" is invalid: spec.conflictResolution: Unsupported value: \"Sometimes\": supported values: \"Abort\", \"Overwrite\"",
        );
        assert!(s.gone(&["pp", "invalid"]), "{}", s.who());
        let bad2 = fixture("pp-invalid-two.yaml");
        let err = s.fails(&["apply", "-f", &bad2]);
        let lines: Vec<&str> = err.trim_end().lines().collect();
        assert_eq!(
            lines.first().copied(),
            Some("The PropagationPolicy \"invalid-two\" is invalid: "),
            "{}: {err}",
            s.who()
        );
        for want in [
            "* spec.conflictResolution: Unsupported value: \"Sometimes\": supported values: \"Abort\", \"Overwrite\"",
            "* spec.preemption: Unsupported value: \"Maybe\": supported values: \"Always\", \"Never\"",
        ] {
            assert!(lines.contains(&want), "{}: no `{want}` in\n{err}", s.who());
        }
        assert!(s.gone(&["pp", "invalid-two"]), "{}", s.who());
        // A required field missing.
        let (code, _, err) = s.run_stdin(
            &["create", "-f", "-"],
            r#"{"apiVersion":"policy.karmada.io/v1alpha1","kind":"PropagationPolicy","metadata":{"name":"empty"},"spec":{}}"#,
        );
        assert_ne!(code, 0);
        assert_text(
            &format!("{} missing resourceSelectors", s.who()),
            err.trim_end(),
            "The PropagationPolicy \"empty\" is invalid: spec.resourceSelectors: Required value",
        );
        // Strategic merge patches are refused for custom resources.
        let err = s.fails(&[
            "patch",
            "pp",
            "nginx-propagation",
            "-p",
            r#"{"spec":{"priority":5}}"#,
        ]);
        assert!(
            err.contains("application/strategic-merge-patch+json is not supported by policy.karmada.io/v1alpha1, Kind=PropagationPolicy"),
            "{}: {err}",
            s.who()
        );
        s.expect(
            &[
                "patch",
                "pp",
                "nginx-propagation",
                "--type",
                "merge",
                "-p",
                r#"{"spec":{"priority":5}}"#,
            ],
            "propagationpolicy.policy.karmada.io/nginx-propagation patched",
        );
        s.expect_table(
            &["get", "pp"],
            "NAME CONFLICT-RESOLUTION PRIORITY AGE\nnginx-propagation Abort 5 0s",
        );
    });
}

#[test]
fn karmada_resourcebinding_status_subresource() {
    if !karmada_crds_present() {
        return;
    }
    each_kubectl(|s| {
        s.create_crd(RB_CRD, "resourcebindings.work.karmada.io");
        // `status` sent with the main resource is dropped.
        s.expect(
            &["create", "-f", &fixture("rb.yaml")],
            "resourcebinding.work.karmada.io/nginx-deployment created",
        );
        let rb = s.get_json(&["rb", "nginx-deployment"]);
        assert!(
            rb["status"].is_null() || rb["status"] == json!({}),
            "{}: status written through the main resource: {rb}",
            s.who()
        );
        assert_eq!(rb["spec"]["replicas"], 2);
        assert_eq!(rb["apiVersion"], "work.karmada.io/v1alpha2");
        s.expect_table(
            &["get", "rb"],
            "NAME SCHEDULED FULLYAPPLIED AGE\nnginx-deployment 0s",
        );
        // Through /status it is written.
        s.expect(
            &[
                "patch",
                "rb",
                "nginx-deployment",
                "--subresource",
                "status",
                "--type",
                "merge",
                "-p",
                r#"{"status":{"schedulerObservedGeneration":1,"conditions":[{"type":"Scheduled","status":"True","reason":"Success","message":"ok","lastTransitionTime":"2025-01-01T00:00:00Z"},{"type":"FullyApplied","status":"False","reason":"Pending","message":"not yet","lastTransitionTime":"2025-01-01T00:00:00Z"}]}}"#,
            ],
            "resourcebinding.work.karmada.io/nginx-deployment patched",
        );
        let rb2 = s.get_json(&["rb", "nginx-deployment"]);
        assert_eq!(rb2["status"]["schedulerObservedGeneration"], 1, "{rb2}");
        assert_eq!(rb2["spec"], rb["spec"], "{}: /status changed spec", s.who());
        assert_eq!(
            rb2["metadata"]["generation"],
            rb["metadata"]["generation"],
            "{}: a status write does not bump generation",
            s.who()
        );
        s.expect_table(
            &["get", "rb"],
            "NAME SCHEDULED FULLYAPPLIED AGE\nnginx-deployment True False 0s",
        );
        // A status change through the main resource is ignored, a spec
        // change through /status too.
        s.ok(&[
            "patch",
            "rb",
            "nginx-deployment",
            "--type",
            "merge",
            "-p",
            r#"{"status":{"schedulerObservedGeneration":9}}"#,
        ]);
        s.ok(&[
            "patch",
            "rb",
            "nginx-deployment",
            "--subresource",
            "status",
            "--type",
            "merge",
            "-p",
            r#"{"spec":{"replicas":7}}"#,
        ]);
        let rb3 = s.get_json(&["rb", "nginx-deployment"]);
        assert_eq!(rb3["status"]["schedulerObservedGeneration"], 1, "{rb3}");
        assert_eq!(rb3["spec"]["replicas"], 2, "{rb3}");
        // The status subresource reads back as the whole object.
        let raw = s.ok(&[
            "get",
            "--raw",
            "/apis/work.karmada.io/v1alpha2/namespaces/default/resourcebindings/nginx-deployment/status",
        ]);
        let v: Value = serde_json::from_str(&raw).expect("status JSON");
        assert_eq!(v["kind"], "ResourceBinding");
        assert_eq!(v["status"]["schedulerObservedGeneration"], 1);
        s.expect(
            &["get", "resourcebindings", "-o", "name"],
            "resourcebinding.work.karmada.io/nginx-deployment",
        );
    });
}

// ---------------------------------------------------------------------------
// 12. Bad input
// ---------------------------------------------------------------------------

fn curl_available() -> bool {
    Command::new("curl")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Sends one HTTPS request with curl and the admin certificate, to 127.0.0.1
/// only; returns the HTTP status and the parsed JSON body.
fn curl(
    srv: &ApiServer,
    method: &str,
    path: &str,
    content_type: Option<&str>,
    body: Option<&[u8]>,
) -> (u16, Value) {
    assert!(
        srv.url.starts_with("https://127.0.0.1:"),
        "loopback only: {}",
        srv.url
    );
    let dir = &srv.dir;
    let mut c = Command::new("curl");
    c.args([
        "-q",
        "-sS",
        "--http1.1",
        "--noproxy",
        "*",
        "--max-time",
        "30",
        "-X",
        method,
        "-w",
        "\n%{http_code}",
    ])
    .arg("--cacert")
    .arg(dir.join("ca.crt"))
    .arg("--cert")
    .arg(dir.join("admin.crt"))
    .arg("--key")
    .arg(dir.join("admin.key"))
    .env_remove("HTTPS_PROXY")
    .env_remove("https_proxy")
    .env_remove("HTTP_PROXY")
    .env_remove("http_proxy");
    if let Some(ct) = content_type {
        c.args(["-H", &format!("Content-Type: {ct}")]);
    }
    if let Some(b) = body {
        let f = dir.join("curl-body");
        std::fs::write(&f, b).expect("write body");
        c.arg("--data-binary").arg(format!("@{}", f.display()));
    }
    c.arg(format!("{}{}", srv.url, path));
    let (code, out, err) = run_bounded(&mut c, None, CMD_TIMEOUT);
    assert_eq!(code, 0, "curl {method} {path} failed: {err}");
    let (body, status) = out.rsplit_once('\n').expect("status line");
    let status: u16 = status.trim().parse().expect("HTTP status");
    let v = if body.trim().is_empty() {
        Value::Null
    } else {
        serde_json::from_str(body).unwrap_or(Value::String(body.to_string()))
    };
    (status, v)
}

/// Asserts a Kubernetes `Status` failure with the given code and reason.
#[track_caller]
fn assert_status(what: &str, (code, v): &(u16, Value), want_code: u16, want_reason: &str) {
    assert_eq!(*code, want_code, "{what}: HTTP status, body {v}");
    assert_eq!(v["kind"], "Status", "{what}: {v}");
    assert_eq!(v["status"], "Failure", "{what}: {v}");
    assert_eq!(v["code"], want_code, "{what}: {v}");
    assert_eq!(v["reason"], want_reason, "{what}: {v}");
    assert!(
        v["message"].as_str().is_some_and(|m| !m.is_empty()),
        "{what}: a message: {v}"
    );
}

#[test]
fn bad_crd_non_structural_schema() {
    each_kubectl(|s| {
        let f = fixture("crd-nonstructural.yaml");
        let err = s.fails(&["create", "-f", &f]);
        assert_text(
            &format!("{} non-structural CRD", s.who()),
            err.trim_end(),
            "The CustomResourceDefinition \"things.example.com\" is invalid: spec.versions[0].schema.openAPIV3Schema.properties[spec].properties[size].type: Required value: must not be empty for specified object fields",
        );
        assert!(s.gone(&["crd", "things.example.com"]), "{}", s.who());
        if curl_available() {
            let body = s.ok(&["create", "-f", &f, "--dry-run=client", "-o", "json"]);
            let r = curl(
                &s.srv,
                "POST",
                "/apis/apiextensions.k8s.io/v1/customresourcedefinitions",
                Some("application/json"),
                Some(body.as_bytes()),
            );
            assert_status("non-structural CRD", &r, 422, "Invalid");
            let causes = r.1["details"]["causes"]
                .as_array()
                .cloned()
                .unwrap_or_default();
            assert!(
                causes.iter().any(|c| c["field"]
                    == "spec.versions[0].schema.openAPIV3Schema.properties[spec].properties[size].type"),
                "field path in causes: {}",
                r.1
            );
            assert!(s.gone(&["crd", "things.example.com"]));
        }
    });
}

#[test]
fn bad_object_violating_crd_schema() {
    each_kubectl(|s| {
        s.create_crd(&fixture("widget-crd.yaml"), "widgets.example.com");
        let f = fixture("widget-bad.yaml");
        for verb in ["create", "apply"] {
            let err = s.fails(&[verb, "-f", &f]);
            let err = err.trim_end();
            assert!(
                err.starts_with("The Widget \"bad\" is invalid: spec.size: Invalid value: ")
                    && err.ends_with(": spec.size in body must be of type integer: \"string\""),
                "{} {verb}: {err}",
                s.who()
            );
            assert!(s.gone(&["widgets", "bad"]), "{}", s.who());
        }
        // minimum and required.
        let (code, _, err) = s.run_stdin(
            &["create", "-f", "-"],
            r#"{"apiVersion":"example.com/v1","kind":"Widget","metadata":{"name":"small"},"spec":{"size":0}}"#,
        );
        assert_ne!(code, 0);
        assert_text(
            &format!("{} minimum", s.who()),
            err.trim_end(),
            "The Widget \"small\" is invalid: spec.size: Invalid value: 0: spec.size in body should be greater than or equal to 1",
        );
        let (code, _, err) = s.run_stdin(
            &["create", "-f", "-"],
            r#"{"apiVersion":"example.com/v1","kind":"Widget","metadata":{"name":"nosize"},"spec":{"color":"red"}}"#,
        );
        assert_ne!(code, 0);
        assert_text(
            &format!("{} required", s.who()),
            err.trim_end(),
            "The Widget \"nosize\" is invalid: spec.size: Required value",
        );
        let (code, out, err) = s.run(&["get", "widgets", "-o", "name"]);
        assert_eq!((code, out.as_str()), (0, ""), "{}: {err}", s.who());
        // A valid one for contrast.
        s.expect_stdin(
            &["create", "-f", "-"],
            r#"{"apiVersion":"example.com/v1","kind":"Widget","metadata":{"name":"good"},"spec":{"size":3}}"#,
            "widget.example.com/good created",
        );
    });
}

/// kube-apiserver reports a type mismatch with the JSON type of the value as
/// the "invalid value" (`field.TypeInvalid(path, "string", …)`), e.g.
/// `spec.size: Invalid value: "string": spec.size in body must be of type integer: "string"`.
#[test]
fn crd_schema_type_error_message() {
    each_kubectl(|s| {
        s.create_crd(&fixture("widget-crd.yaml"), "widgets.example.com");
        let f = fixture("widget-bad.yaml");
        s.expect_err(
            &["create", "-f", &f],
            "The Widget \"bad\" is invalid: spec.size: Invalid value: \"string\": spec.size in body must be of type integer: \"string\"",
        );
    });
}

#[test]
fn bad_json_patch_failing_test_op() {
    each_kubectl(|s| {
        s.expect(
            &["create", "-f", &fixture("configmap-dry.yaml")],
            "configmap/dry created",
        );
        let before = s.get_json(&["configmap", "dry"]);
        let err = s.fails(&[
            "patch",
            "configmap",
            "dry",
            "--type",
            "json",
            "-p",
            r#"[{"op":"test","path":"/data/a","value":"wrong"},{"op":"replace","path":"/data/a","value":"changed"}]"#,
        ]);
        assert!(
            err.starts_with("The request is invalid: "),
            "{}: {err}",
            s.who()
        );
        assert!(
            err.contains("/data/a"),
            "{}: names the path: {err}",
            s.who()
        );
        assert_eq!(s.get_json(&["configmap", "dry"]), before, "{}", s.who());
        if curl_available() {
            let r = curl(
                &s.srv,
                "PATCH",
                "/api/v1/namespaces/default/configmaps/dry",
                Some("application/json-patch+json"),
                Some(br#"[{"op":"test","path":"/data/a","value":"wrong"},{"op":"replace","path":"/data/a","value":"changed"}]"#),
            );
            assert_status("failing test op", &r, 422, "Invalid");
            assert_eq!(s.get_json(&["configmap", "dry"]), before, "{}", s.who());
        }
    });
}

#[test]
fn bad_server_side_apply_malformed_yaml() {
    if !curl_available() {
        eprintln!("note: curl not installed; skipping");
        return;
    }
    each_kubectl(|s| {
        let path = "/api/v1/namespaces/default/configmaps/broken?fieldManager=test";
        for body in [
            &b"apiVersion: v1\nkind: ConfigMap\nmetadata: {name: [broken\n"[..],
            b"apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: broken\n data:\n  a: 1\n",
            b"\t- not yaml: [",
        ] {
            let r = curl(
                &s.srv,
                "PATCH",
                path,
                Some("application/apply-patch+yaml"),
                Some(body),
            );
            assert_status(
                &format!("apply of {:?}", String::from_utf8_lossy(body)),
                &r,
                400,
                "BadRequest",
            );
            assert!(s.gone(&["configmap", "broken"]), "{}", s.who());
        }
        // Well-formed YAML that is not an object.
        let r = curl(
            &s.srv,
            "PATCH",
            path,
            Some("application/apply-patch+yaml"),
            Some(b"- a\n- b\n"),
        );
        assert_status("apply of a YAML list", &r, 400, "BadRequest");
        // The same well-formed apply succeeds, for contrast.
        let r = curl(
            &s.srv,
            "PATCH",
            path,
            Some("application/apply-patch+yaml"),
            Some(
                b"apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: broken\ndata:\n  a: \"1\"\n",
            ),
        );
        assert_eq!(r.0, 201, "{}", r.1);
        assert_eq!(
            s.get_json(&["configmap", "broken"])["data"],
            json!({"a": "1"})
        );
    });
}

// ---------------------------------------------------------------------------
// Further semantics around the acceptance list
// ---------------------------------------------------------------------------

#[test]
fn server_side_apply_conflict_status_and_field_removal() {
    each_kubectl(|s| {
        let r2 = fixture("ssa-replicas-2.yaml");
        s.expect(
            &["apply", "--server-side", "--field-manager=alpha", "-f", &r2],
            "deployment.apps/ssa serverside-applied",
        );
        if curl_available() {
            let body = std::fs::read_to_string(fixture("ssa-replicas-3.yaml")).expect("fixture");
            let r = curl(
                &s.srv,
                "PATCH",
                "/apis/apps/v1/namespaces/default/deployments/ssa?fieldManager=beta",
                Some("application/apply-patch+yaml"),
                Some(body.as_bytes()),
            );
            assert_status("conflicting apply", &r, 409, "Conflict");
            assert_eq!(
                r.1["message"],
                "Apply failed with 1 conflict: conflict with \"alpha\" using apps/v1: .spec.replicas",
                "{}",
                r.1
            );
            assert_eq!(
                r.1["details"]["causes"],
                json!([{"reason": "FieldManagerConflict",
                        "message": "conflict with \"alpha\" using apps/v1",
                        "field": ".spec.replicas"}]),
                "{}",
                r.1
            );
        }
        // The sole owner of .spec.replicas stops applying it: the field is
        // removed and defaulted again.
        let without = s.srv.dir.join("ssa-no-replicas.yaml");
        let text = std::fs::read_to_string(&r2).expect("fixture");
        std::fs::write(
            &without,
            text.lines()
                .filter(|l| !l.contains("replicas:"))
                .collect::<Vec<_>>()
                .join("\n"),
        )
        .expect("write manifest");
        s.expect(
            &[
                "apply",
                "--server-side",
                "--field-manager=alpha",
                "-f",
                &without.display().to_string(),
            ],
            "deployment.apps/ssa serverside-applied",
        );
        assert_eq!(
            s.get_json(&["deployment", "ssa"])["spec"]["replicas"],
            1,
            "{}: replicas no longer applied by anyone → default",
            s.who()
        );
    });
}

#[test]
fn scale_replicaset_and_custom_resource() {
    each_kubectl(|s| {
        let rs = json!({
            "apiVersion": "apps/v1", "kind": "ReplicaSet",
            "metadata": {"name": "rs"},
            "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "rs"}},
                     "template": {"metadata": {"labels": {"app": "rs"}},
                                  "spec": {"containers": [{"name": "c", "image": "registry.example/c:1"}]}}}
        });
        s.expect_stdin(
            &["create", "-f", "-"],
            &rs.to_string(),
            "replicaset.apps/rs created",
        );
        s.expect(
            &["scale", "rs/rs", "--replicas=4"],
            "replicaset.apps/rs scaled",
        );
        assert_eq!(s.get_json(&["rs", "rs"])["spec"]["replicas"], 4);

        s.create_crd(&fixture("gadget-crd.yaml"), "gadgets.example.com");
        s.expect(
            &["create", "-f", &fixture("gadget.yaml")],
            "gadget.example.com/g created",
        );
        s.expect(
            &["scale", "gadget/g", "--replicas=3"],
            "gadget.example.com/g scaled",
        );
        assert_eq!(s.get_json(&["gadget", "g"])["spec"]["replicas"], 3);
        s.expect(
            &[
                "patch",
                "gadget",
                "g",
                "--subresource",
                "status",
                "--type",
                "merge",
                "-p",
                r#"{"status":{"replicas":2,"selector":"app=g"}}"#,
            ],
            "gadget.example.com/g patched",
        );
        let raw = s.ok(&[
            "get",
            "--raw",
            "/apis/example.com/v1/namespaces/default/gadgets/g/scale",
        ]);
        let scale: Value = serde_json::from_str(&raw).expect("Scale JSON");
        assert_eq!(scale["kind"], "Scale", "{scale}");
        assert_eq!(scale["apiVersion"], "autoscaling/v1", "{scale}");
        assert_eq!(scale["spec"]["replicas"], 3, "{scale}");
        assert_eq!(scale["status"]["replicas"], 2, "{scale}");
        assert_eq!(scale["status"]["selector"], "app=g", "{scale}");
        // Kinds without a scale subresource: 404 as kubectl prints it.
        s.expect(
            &["create", "-f", &fixture("configmap-dry.yaml")],
            "configmap/dry created",
        );
        s.expect_err(
            &["scale", "configmap/dry", "--replicas=2"],
            "Error from server (NotFound): the server could not find the requested resource",
        );
    });
}

#[test]
fn patch_strategic_directives() {
    each_kubectl(|s| {
        s.expect(
            &["apply", "-f", &fixture("deploy-v1.yaml")],
            "deployment.apps/app created",
        );
        let patch = |p: &str| {
            s.expect(
                &["patch", "deployment", "app", "--type", "strategic", "-p", p],
                "deployment.apps/app patched",
            );
            s.get_json(&["deployment", "app"])
        };
        // ports merge by containerPort.
        let d = patch(
            r#"{"spec":{"template":{"spec":{"containers":[{"name":"app","ports":[{"containerPort":9090,"name":"metrics"}]}]}}}}"#,
        );
        let ports: Vec<i64> = container(&d, "app")["ports"]
            .as_array()
            .expect("ports")
            .iter()
            .filter_map(|p| p["containerPort"].as_i64())
            .collect();
        assert_eq!(ports, [8080, 9090], "{}: {d}", s.who());
        // volumes and imagePullSecrets merge by name.
        patch(
            r#"{"spec":{"template":{"spec":{"volumes":[{"name":"cache","emptyDir":{}}],"imagePullSecrets":[{"name":"one"}]}}}}"#,
        );
        let d = patch(
            r#"{"spec":{"template":{"spec":{"volumes":[{"name":"data","emptyDir":{}}],"imagePullSecrets":[{"name":"two"}]}}}}"#,
        );
        let spec = &d["spec"]["template"]["spec"];
        let names = |k: &str| -> Vec<String> {
            spec[k]
                .as_array()
                .map(|a| {
                    a.iter()
                        .map(|v| v["name"].as_str().unwrap_or_default().to_string())
                        .collect()
                })
                .unwrap_or_default()
        };
        assert_eq!(names("volumes"), ["cache", "data"], "{}: {spec}", s.who());
        assert_eq!(
            names("imagePullSecrets"),
            ["one", "two"],
            "{}: {spec}",
            s.who()
        );
        // tolerations are atomic: replaced as a whole.
        patch(
            r#"{"spec":{"template":{"spec":{"tolerations":[{"key":"a","operator":"Exists"}]}}}}"#,
        );
        let d = patch(
            r#"{"spec":{"template":{"spec":{"tolerations":[{"key":"b","operator":"Exists"}]}}}}"#,
        );
        assert_eq!(
            d["spec"]["template"]["spec"]["tolerations"],
            json!([{"key": "b", "operator": "Exists"}]),
            "{}",
            s.who()
        );
        // $setElementOrder reorders; the image change is merged by name.
        let d = patch(
            r#"{"spec":{"template":{"spec":{"$setElementOrder/containers":[{"name":"sidecar"},{"name":"app"}],"containers":[{"name":"app","image":"registry.example/app:1.2"}]}}}}"#,
        );
        assert_eq!(container_names(&d), ["sidecar", "app"], "{}: {d}", s.who());
        assert_eq!(container(&d, "app")["image"], "registry.example/app:1.2");
        // $patch: replace on a list.
        let d = patch(
            r#"{"spec":{"template":{"spec":{"containers":[{"name":"app","env":[{"name":"ONLY","value":"x"},{"$patch":"replace"}]}]}}}}"#,
        );
        assert_eq!(
            env_of(container(&d, "app")),
            pairs(&[("ONLY", "x")]),
            "{}",
            s.who()
        );
        assert_eq!(
            env_of(container(&d, "sidecar")),
            pairs(&[("LEVEL", "info")])
        );
        // $retainKeys: switching the strategy drops rollingUpdate.
        let d = patch(r#"{"spec":{"strategy":{"$retainKeys":["type"],"type":"Recreate"}}}"#);
        assert_eq!(
            d["spec"]["strategy"],
            json!({"type": "Recreate"}),
            "{}",
            s.who()
        );
        // $deleteFromPrimitiveList on a merge-strategy list of strings.
        patch(r#"{"metadata":{"finalizers":["example.com/a","example.com/b"]}}"#);
        let d = patch(r#"{"metadata":{"$deleteFromPrimitiveList/finalizers":["example.com/a"]}}"#);
        assert_eq!(
            d["metadata"]["finalizers"],
            json!(["example.com/b"]),
            "{}",
            s.who()
        );
        patch(r#"{"metadata":{"finalizers":null}}"#);
    });
}

/// kube-apiserver: `spec.strategy.rollingUpdate: Forbidden: may not be specified when
/// strategy `type` is 'Recreate'` (422); flotilla stores the object.
#[test]
fn deployment_recreate_with_rolling_update_rejected() {
    each_kubectl(|s| {
        s.expect(
            &["apply", "-f", &fixture("deploy-v1.yaml")],
            "deployment.apps/app created",
        );
        // Without $retainKeys the defaulted rollingUpdate stays and the
        // result is invalid.
        s.expect_err(
            &["patch", "deployment", "app", "-p", r#"{"spec":{"strategy":{"type":"Recreate"}}}"#],
            "The Deployment \"app\" is invalid: spec.strategy.rollingUpdate: Forbidden: may not be specified when strategy `type` is 'Recreate'",
        );
        assert_eq!(
            s.get_json(&["deployment", "app"])["spec"]["strategy"]["type"],
            "RollingUpdate"
        );
    });
}

#[test]
fn explain_karmada_crd_field() {
    if !karmada_crds_present() {
        return;
    }
    each_kubectl(|s| {
        s.create_crd(PP_CRD, "propagationpolicies.policy.karmada.io");
        let out = s.ok(&["explain", "propagationpolicies.spec.conflictResolution"]);
        for want in [
            "GROUP:      policy.karmada.io",
            "KIND:       PropagationPolicy",
            "VERSION:    v1alpha1",
            "FIELD: conflictResolution <string>",
            "ConflictResolution declares how potential conflict should be handled",
        ] {
            assert!(out.contains(want), "{}: no `{want}` in\n{out}", s.who());
        }
        let out = s.ok(&["explain", "pp.spec.placement.clusterAffinity"]);
        assert!(
            out.contains("FIELD: clusterAffinity <Object>")
                && out.contains("clusterNames\t<[]string>"),
            "{}: {out}",
            s.who()
        );
    });
}

#[test]
fn gc_collects_object_with_missing_owner() {
    each_kubectl(|s| {
        let cm = json!({
            "apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "orphan",
                         "ownerReferences": [{"apiVersion": "v1", "kind": "ConfigMap", "name": "ghost",
                                              "uid": "00000000-0000-0000-0000-00000000dead"}]},
            "data": {"a": "1"}
        });
        s.expect_stdin(
            &["create", "-f", "-"],
            &cm.to_string(),
            "configmap/orphan created",
        );
        wait_until("dependent of a missing owner collected", SETTLE, || {
            s.gone(&["configmap", "orphan"])
        });
    });
}

#[test]
fn gc_keeps_dependent_with_surviving_owner() {
    each_kubectl(|s| {
        for n in ["owner-a", "owner-b"] {
            let cm = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": n}});
            s.expect_stdin(
                &["create", "-f", "-"],
                &cm.to_string(),
                &format!("configmap/{n} created"),
            );
        }
        let uid = |n: &str| {
            s.get_json(&["configmap", n])["metadata"]["uid"]
                .as_str()
                .expect("uid")
                .to_string()
        };
        let (a, b) = (uid("owner-a"), uid("owner-b"));
        let dep = json!({
            "apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "shared", "ownerReferences": [
                {"apiVersion": "v1", "kind": "ConfigMap", "name": "owner-a", "uid": a},
                {"apiVersion": "v1", "kind": "ConfigMap", "name": "owner-b", "uid": b}]}
        });
        s.expect_stdin(
            &["create", "-f", "-"],
            &dep.to_string(),
            "configmap/shared created",
        );
        s.ok(&["delete", "configmap", "owner-a", "--timeout=30s"]);
        // The reference to the deleted owner is dropped; the dependent stays.
        wait_until("dangling owner reference removed", SETTLE, || {
            let d = s.get_json(&["configmap", "shared"]);
            d["metadata"]["ownerReferences"]
                .as_array()
                .is_some_and(|r| r.len() == 1 && r[0]["name"] == "owner-b")
        });
        s.ok(&["delete", "configmap", "owner-b", "--timeout=30s"]);
        wait_until("dependent of the last owner collected", SETTLE, || {
            s.gone(&["configmap", "shared"])
        });
    });
}

#[test]
fn delete_pod_grace_period_and_force() {
    each_kubectl(|s| {
        for n in ["p1", "p2"] {
            let pod = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": n},
                             "spec": {"containers": [{"name": "c", "image": "registry.example/c:1"}]}});
            s.expect_stdin(
                &["create", "-f", "-"],
                &pod.to_string(),
                &format!("pod/{n} created"),
            );
        }
        s.expect(
            &["delete", "pod", "p1", "--now", "--timeout=30s"],
            &s.deleted("pod \"p1\"", Some("default")),
        );
        assert!(s.gone(&["pod", "p1"]), "{}", s.who());
        let (code, out, err) = s.run(&["delete", "pod", "p2", "--grace-period=0", "--force"]);
        assert_eq!(code, 0, "{}: {out}{err}", s.who());
        let want = if s.minor >= 35 {
            "pod \"p2\" force deleted from default namespace"
        } else {
            "pod \"p2\" force deleted"
        };
        assert_text(&format!("{} force delete", s.who()), out.trim_end(), want);
        assert!(
            err.contains("Immediate deletion does not wait for confirmation"),
            "{err}"
        );
        assert!(s.gone(&["pod", "p2"]), "{}", s.who());
    });
}

#[test]
fn terminating_namespace_conditions() {
    each_kubectl(|s| {
        terminating_namespace(s);
        let want_finalizers = "Some content in the namespace has finalizers remaining: example.com/hold in 1 resource instances";
        wait_until("namespace conditions", Duration::from_secs(20), || {
            let (code, out, _) = s.run(&["get", "namespace", "doomed", "-o", "json"]);
            let ns: Value = if code == 0 {
                serde_json::from_str(&out).expect("namespace JSON")
            } else {
                Value::Null
            };
            ns["status"]["conditions"].as_array().is_some_and(|c| {
                c.iter().any(|c| {
                    c["type"] == "NamespaceFinalizersRemaining"
                        && c["status"] == "True"
                        && c["reason"] == "SomeFinalizersRemain"
                        && c["message"] == want_finalizers
                }) && c.iter().any(|c| {
                    c["type"] == "NamespaceContentRemaining"
                        && c["status"] == "True"
                        && c["reason"] == "SomeResourcesRemain"
                        && c["message"].as_str().is_some_and(|m| {
                            m.starts_with("Some resources are remaining: configmaps")
                                && m.ends_with(" has 1 resource instances")
                        })
                })
            })
        });
        let ns = s.get_json(&["namespace", "doomed"]);
        assert_eq!(ns["spec"]["finalizers"], json!(["kubernetes"]), "{ns}");
        assert!(ns["metadata"]["deletionTimestamp"].is_string(), "{ns}");
    });
}

/// kube-apiserver (ValidateObjectMetaUpdate) answers 422 Invalid with cause
/// `metadata.finalizers: Forbidden: no new finalizers can be added if the object is being
/// deleted, found new finalizers []string{"example.com/other"}`.
#[test]
fn no_new_finalizers_while_deleting() {
    each_kubectl(|s| {
        s.expect(
            &["create", "-f", &fixture("configmap-held.yaml")],
            "configmap/held created",
        );
        s.ok(&["delete", "configmap", "held", "--wait=false"]);
        s.expect_err(
            &[
                "patch",
                "configmap",
                "held",
                "--type",
                "merge",
                "-p",
                r#"{"metadata":{"finalizers":["example.com/hold","example.com/other"]}}"#,
            ],
            "The ConfigMap \"held\" is invalid: metadata.finalizers: Forbidden: no new finalizers can be added if the object is being deleted, found new finalizers []string{\"example.com/other\"}",
        );
        assert_eq!(
            s.get_json(&["configmap", "held"])["metadata"]["finalizers"],
            json!(["example.com/hold"])
        );
        // Other changes are still accepted while the finalizer holds it.
        s.expect(
            &[
                "patch",
                "configmap",
                "held",
                "--type",
                "merge",
                "-p",
                r#"{"data":{"b":"2"}}"#,
            ],
            "configmap/held patched",
        );
    });
}

#[test]
fn dry_run_server_still_validates() {
    each_kubectl(|s| {
        let f = fixture("deploy-bogus.yaml");
        s.expect_err(
            &["create", "-f", &f, "--dry-run=server"],
            &format!(
                "Error from server (BadRequest): error when creating \"{f}\": Deployment in version \"v1\" cannot be handled as a Deployment: strict decoding error: unknown field \"spec.bogus\""
            ),
        );
        let (code, _, err) = s.run_stdin(
            &["create", "-f", "-", "--dry-run=server"],
            r#"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"Bad_Name"}}"#,
        );
        assert_ne!(code, 0);
        assert!(
            err.starts_with("The ConfigMap \"Bad_Name\" is invalid: metadata.name: Invalid value: \"Bad_Name\": "),
            "{}: {err}",
            s.who()
        );
        s.expect(
            &["create", "-f", &fixture("configmap-dry.yaml")],
            "configmap/dry created",
        );
        s.expect_err(
            &["create", "-f", &fixture("configmap-dry.yaml"), "--dry-run=server"],
            &format!(
                "Error from server (AlreadyExists): error when creating \"{}\": configmaps \"dry\" already exists",
                fixture("configmap-dry.yaml")
            ),
        );
    });
}

#[test]
fn validate_custom_resource_unknown_field_and_pruning() {
    each_kubectl(|s| {
        s.create_crd(&fixture("widget-crd.yaml"), "widgets.example.com");
        let f = fixture("widget-extra.yaml");
        s.expect_err(
            &["create", "-f", &f],
            &format!(
                "Error from server (BadRequest): error when creating \"{f}\": Widget in version \"v1\" cannot be handled as a Widget: strict decoding error: unknown field \"spec.extra\""
            ),
        );
        assert!(s.gone(&["widget", "extra"]), "{}", s.who());
        let (code, out, err) = s.run(&["create", "--validate=warn", "-f", &f]);
        assert_eq!(code, 0, "{}: {out}{err}", s.who());
        assert_text(
            "warn stdout",
            out.trim_end(),
            "widget.example.com/extra created",
        );
        assert_text(
            &format!("{} warn stderr", s.who()),
            err.trim_end(),
            "Warning: unknown field \"spec.extra\"",
        );
        // Unknown fields are pruned.
        assert_eq!(
            s.get_json(&["widget", "extra"])["spec"],
            json!({"size": 2}),
            "{}",
            s.who()
        );
    });
}

#[test]
fn validate_duplicate_field() {
    if !curl_available() {
        eprintln!("note: curl not installed; skipping");
        return;
    }
    each_kubectl(|s| {
        let body = br#"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"dup"},"data":{"a":"1"},"data":{"b":"2"}}"#;
        let r = curl(
            &s.srv,
            "POST",
            "/api/v1/namespaces/default/configmaps?fieldValidation=Strict",
            Some("application/json"),
            Some(body),
        );
        assert_status("duplicate field", &r, 400, "BadRequest");
        assert_eq!(
            r.1["message"],
            "ConfigMap in version \"v1\" cannot be handled as a ConfigMap: strict decoding error: duplicate field \"data\"",
            "{}",
            r.1
        );
        assert!(s.gone(&["configmap", "dup"]), "{}", s.who());
    });
}

#[test]
fn karmada_resourcebinding_served_versions() {
    if !karmada_crds_present() {
        return;
    }
    each_kubectl(|s| {
        s.create_crd(RB_CRD, "resourcebindings.work.karmada.io");
        s.expect(
            &["create", "-f", &fixture("rb.yaml")],
            "resourcebinding.work.karmada.io/nginx-deployment created",
        );
        // Stored as v1alpha2, served as v1alpha1 too (conversion strategy None:
        // only apiVersion changes).
        let raw = s.ok(&[
            "get",
            "--raw",
            "/apis/work.karmada.io/v1alpha1/namespaces/default/resourcebindings/nginx-deployment",
        ]);
        let v: Value = serde_json::from_str(&raw).expect("JSON");
        assert_eq!(v["apiVersion"], "work.karmada.io/v1alpha1", "{v}");
        assert_eq!(v["kind"], "ResourceBinding", "{v}");
        assert_eq!(v["spec"]["resource"]["name"], "nginx", "{v}");
        // Strategic merge patch is refused for a custom resource (415).
        let err = s.fails(&[
            "patch",
            "rb",
            "nginx-deployment",
            "-p",
            r#"{"spec":{"replicas":3}}"#,
        ]);
        assert_text(
            &format!("{} SMP on a CR", s.who()),
            err.trim_end(),
            "error: application/strategic-merge-patch+json is not supported by work.karmada.io/v1alpha2, Kind=ResourceBinding: the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml",
        );
        // Deleting the CRD removes the resource and its objects. (kubectl's
        // discovery cache still knows the type for 6 h, so ask the server.)
        s.ok(&[
            "delete",
            "crd",
            "resourcebindings.work.karmada.io",
            "--timeout=30s",
        ]);
        wait_until("resource type gone from discovery", SETTLE, || {
            s.ok(&["api-resources", "--api-group=work.karmada.io", "-o", "name"])
                .trim()
                .is_empty()
        });
        let (code, _, err) = s.run(&[
            "get",
            "--raw",
            "/apis/work.karmada.io/v1alpha2/namespaces/default/resourcebindings",
        ]);
        assert_ne!(code, 0);
        assert_text(
            &format!("{} list of a deleted CRD's resource", s.who()),
            err.trim_end(),
            "Error from server (NotFound): the server could not find the requested resource",
        );
        // Created again, the CRD starts empty.
        s.create_crd(RB_CRD, "resourcebindings.work.karmada.io");
        let raw = s.ok(&[
            "get",
            "--raw",
            "/apis/work.karmada.io/v1alpha2/namespaces/default/resourcebindings",
        ]);
        let list: Value = serde_json::from_str(&raw).expect("list JSON");
        assert_eq!(
            list["items"],
            json!([]),
            "{}: objects survived their CRD",
            s.who()
        );
    });
}

/// kube-apiserver's namespace controller keeps a namespace Terminating for as
/// long as content remains (here a ConfigMap held by a finalizer).
#[test]
fn terminating_namespace_waits_for_remaining_content() {
    each_kubectl(|s| {
        terminating_namespace(s);
        std::thread::sleep(Duration::from_secs(40));
        let ns = s.get_json(&["namespace", "doomed"]);
        assert_eq!(ns["status"]["phase"], "Terminating", "{}: {ns}", s.who());
        assert!(
            !s.gone(&["configmap", "held", "-n", "doomed"]),
            "{}",
            s.who()
        );
        s.expect(
            &[
                "patch",
                "configmap",
                "held",
                "-n",
                "doomed",
                "--type",
                "json",
                "-p",
                r#"[{"op":"remove","path":"/metadata/finalizers"}]"#,
            ],
            "configmap/held patched",
        );
        wait_until("namespace doomed removed", SETTLE, || {
            s.gone(&["namespace", "doomed"])
        });
    });
}

#[test]
fn crd_printer_columns_and_wide() {
    each_kubectl(|s| {
        s.create_crd(&fixture("gadget-crd.yaml"), "gadgets.example.com");
        s.expect(
            &["create", "-f", &fixture("gadget.yaml")],
            "gadget.example.com/g created",
        );
        s.ok(&[
            "patch",
            "gadget",
            "g",
            "--subresource",
            "status",
            "--type",
            "merge",
            "-p",
            r#"{"status":{"replicas":1,"selector":"app=g"}}"#,
        ]);
        s.expect_table(&["get", "gadgets"], "NAME REPLICAS AGE\ng 1 0s");
        s.expect_table(
            &["get", "gadgets", "-o", "wide"],
            "NAME REPLICAS SELECTOR AGE\ng 1 app=g 0s",
        );
    });
}

#[test]
fn status_subresource_builtin() {
    each_kubectl(|s| {
        s.expect(
            &["apply", "-f", &fixture("deploy-v1.yaml")],
            "deployment.apps/app created",
        );
        let before = s.get_json(&["deployment", "app"]);
        // status through the main resource: ignored.
        s.ok(&[
            "patch",
            "deployment",
            "app",
            "--type",
            "merge",
            "-p",
            r#"{"status":{"replicas":7,"observedGeneration":9}}"#,
        ]);
        let d = s.get_json(&["deployment", "app"]);
        assert_ne!(d["status"]["replicas"], 7, "{}: {d}", s.who());
        assert_eq!(d["status"], before["status"], "{}", s.who());
        // through /status: written; a spec change there is ignored.
        s.expect(
            &[
                "patch",
                "deployment",
                "app",
                "--subresource",
                "status",
                "--type",
                "merge",
                "-p",
                r#"{"spec":{"replicas":9},"status":{"replicas":2,"readyReplicas":1,"observedGeneration":1}}"#,
            ],
            "deployment.apps/app patched",
        );
        let d = s.get_json(&["deployment", "app"]);
        assert_eq!(d["status"]["replicas"], 2, "{}: {d}", s.who());
        assert_eq!(d["status"]["readyReplicas"], 1, "{}: {d}", s.who());
        assert_eq!(d["spec"]["replicas"], 2, "{}: {d}", s.who());
        assert_eq!(
            d["metadata"]["generation"],
            before["metadata"]["generation"],
            "{}",
            s.who()
        );
        s.expect_table(
            &["get", "deployment", "app"],
            "NAME READY UP-TO-DATE AVAILABLE AGE\napp 1/2 0 0 0s",
        );
    });
}

#[test]
fn karmada_propagationpolicy_apply_edit() {
    if !karmada_crds_present() {
        return;
    }
    each_kubectl(|s| {
        s.create_crd(PP_CRD, "propagationpolicies.policy.karmada.io");
        s.expect(
            &["apply", "-f", PP_SAMPLE],
            "propagationpolicy.policy.karmada.io/nginx-propagation created",
        );
        s.expect(
            &["apply", "-f", PP_SAMPLE],
            "propagationpolicy.policy.karmada.io/nginx-propagation unchanged",
        );
        // The file edited: member2 replaced by member3, the weights dropped.
        let text = std::fs::read_to_string(PP_SAMPLE).expect("sample");
        let cut = text
            .find("    replicaScheduling:")
            .expect("replicaScheduling in sample");
        let edited = text[..cut].replace("member2", "member3");
        let file = s.srv.dir.join("pp-edited.yaml");
        std::fs::write(&file, &edited).expect("write");
        let (code, out, err) = s.run(&["apply", "-f", &file.display().to_string()]);
        assert_eq!(code, 0, "{}: {out}{err}", s.who());
        assert_text(
            "edited apply",
            out.trim_end(),
            "propagationpolicy.policy.karmada.io/nginx-propagation configured",
        );
        assert!(
            !err.to_lowercase().contains("warning:"),
            "{}: {err}",
            s.who()
        );
        let pp = s.get_json(&["pp", "nginx-propagation"]);
        assert_eq!(
            pp["spec"]["placement"]["clusterAffinity"]["clusterNames"],
            json!(["member1", "member3"]),
            "{}: {pp}",
            s.who()
        );
        assert!(
            pp["spec"]["placement"]["replicaScheduling"].is_null(),
            "{}: removed from the file, removed from the object: {pp}",
            s.who()
        );
        assert_eq!(pp["spec"]["conflictResolution"], "Abort");
        // Server-side apply of a custom resource, with a conflict.
        s.expect(
            &[
                "apply",
                "--server-side",
                "--force-conflicts",
                "-f",
                PP_SAMPLE,
            ],
            "propagationpolicy.policy.karmada.io/nginx-propagation serverside-applied",
        );
        let err = s.fails(&[
            "apply",
            "--server-side",
            "--field-manager=other",
            "-f",
            &file.display().to_string(),
        ]);
        assert!(
            err.starts_with("error: Apply failed with 1 conflict: conflict with \"kubectl\" using policy.karmada.io/v1alpha1: .spec.placement.clusterAffinity.clusterNames"),
            "{}: {err}",
            s.who()
        );
    });
}

/// What only this suite needs of a session.
trait SemanticsSession {
    fn create_crd(&self, file: &str, name: &str);
}

impl SemanticsSession for Session {
    /// Creates a CRD from a file and waits (bounded) until it is Established.
    fn create_crd(&self, file: &str, name: &str) {
        let out = self.ok(&["create", "-f", file]);
        assert_text(
            &format!("{} create CRD", self.who()),
            out.trim_end(),
            &format!("customresourcedefinition.apiextensions.k8s.io/{name} created"),
        );
        self.ok(&[
            "wait",
            "--for=condition=Established",
            &format!("crd/{name}"),
            "--timeout=20s",
        ]);
    }
}
