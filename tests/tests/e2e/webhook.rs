//! End-to-end tests of the admission webhook (issue 11): `flotilla up` serves
//! Karmada's webhook in-process and registers it on the host the way Karmada
//! does (Service `karmada-system/karmada-webhook`, Mutating/Validating
//! configurations with failurePolicy Fail); kubectl then sees Karmada's
//! denials, defaulting and immutability rules. With `flotilla up
//! --webhook=false` the webhook runs as a separate `flotilla webhook` process
//! that the test starts and kills.
//!
//! Everything runs the real binary on 127.0.0.1 with free ports and is driven
//! by kubectl (the machine's and, when installed, the newest). Processes are
//! killed by PID when their guards drop; every wait is bounded.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use flotilla_tests::{flotilla_bin, kubectls, run_bounded, system_kubectl};
use serde_json::Value;

const WAIT: Duration = Duration::from_secs(30);
const KUBECTL: Duration = Duration::from_secs(30);

/// `flotilla up --members 0` on a temporary directory.
struct Up {
    _inner: flotilla_tests::up::Up,
    dir: PathBuf,
}

impl Up {
    fn start(extra: &[&str]) -> Up {
        let inner = flotilla_tests::up::Up::start_with(0, extra);
        let dir = inner.dir.clone();
        Up { _inner: inner, dir }
    }

    fn kubectl(&self, kubectl: &Path) -> Command {
        let mut c = Command::new(kubectl);
        c.env("KUBECONFIG", self.dir.join("kubeconfig"))
            .env(
                "KUBECACHEDIR",
                self.dir
                    .join(format!("kcache-{}", kubectl.display().to_string().len())),
            )
            .env_remove("HTTPS_PROXY")
            .env_remove("HTTP_PROXY")
            .args(["--context", "flotilla"]);
        c
    }

    /// `kubectl ARGS` with `stdin`; (exit code, stdout, stderr).
    fn run(&self, kubectl: &Path, args: &[&str], stdin: Option<&str>) -> (i32, String, String) {
        run_bounded(
            self.kubectl(kubectl).args(args),
            stdin.map(str::as_bytes),
            KUBECTL,
        )
    }

    fn ok(&self, kubectl: &Path, args: &[&str], stdin: Option<&str>) -> String {
        let (code, out, err) = self.run(kubectl, args, stdin);
        assert_eq!(code, 0, "kubectl {args:?} failed:\n{out}\n{err}");
        out
    }

    fn apply(&self, kubectl: &Path, manifest: &str) -> (i32, String, String) {
        self.run(kubectl, &["apply", "-f", "-"], Some(manifest))
    }

    fn get_json(&self, kubectl: &Path, args: &[&str]) -> Value {
        let mut all = args.to_vec();
        all.extend(["-o", "json"]);
        serde_json::from_str(&self.ok(kubectl, &all, None)).expect("kubectl JSON")
    }

    /// Names of the objects of `resource` in every namespace.
    fn names(&self, kubectl: &Path, resource: &str) -> Vec<String> {
        let list = self.get_json(kubectl, &["get", resource, "-A"]);
        list["items"]
            .as_array()
            .expect("items")
            .iter()
            .map(|i| i["metadata"]["name"].as_str().unwrap_or("").to_string())
            .collect()
    }
}

fn pp(name: &str, spec_extra: &str, placement_extra: &str) -> String {
    format!(
        "apiVersion: policy.karmada.io/v1alpha1
kind: PropagationPolicy
metadata:
  name: {name}
  namespace: default
spec:
  resourceSelectors:
  - apiVersion: apps/v1
    kind: Deployment
    name: nginx
{spec_extra}  placement:
    clusterAffinity:
      clusterNames: [member1, member2]
{placement_extra}"
    )
}

/// One invalid object: (what it breaks, webhook name, manifest, expected fragments of the denial).
type Invalid = (&'static str, &'static str, String, Vec<&'static str>);

fn invalid_objects() -> Vec<Invalid> {
    let pp_hook = "propagationpolicy.karmada.io";
    vec![
        (
            "clusterAffinity with clusterAffinities",
            pp_hook,
            pp(
                "both-affinities",
                "",
                "    clusterAffinities:\n    - affinityName: a\n      clusterNames: [member1]\n",
            ),
            vec![
                "spec.placement",
                "clusterAffinities cannot co-exist with clusterAffinity",
            ],
        ),
        (
            "fieldSelector key",
            pp_hook,
            pp(
                "bad-field-key",
                "",
                "      fieldSelector:\n        matchExpressions:\n        - {key: foo, operator: In, values: [a]}\n",
            ),
            vec![
                "spec.placement.clusterAffinity.fieldSelector",
                "unsupported key \"foo\", must be provider, region, or zone",
            ],
        ),
        (
            "spreadByField without a cluster constraint",
            pp_hook,
            pp(
                "spread-no-cluster",
                "",
                "    spreadConstraints:\n    - {spreadByField: region, minGroups: 1}\n",
            ),
            vec![
                "spec.placement.spreadConstraints",
                "the cluster spread constraint must be enabled in one of the constraints in case of SpreadByField is enabled",
            ],
        ),
        (
            "maxGroups < minGroups",
            pp_hook,
            pp(
                "max-below-min",
                "",
                "    spreadConstraints:\n    - {spreadByField: cluster, minGroups: 3, maxGroups: 2}\n",
            ),
            vec![
                "spec.placement.spreadConstraints[0]",
                "maxGroups lower than minGroups is not allowed",
            ],
        ),
        (
            "toleration operator Gt",
            pp_hook,
            pp(
                "toleration-gt",
                "",
                "    clusterTolerations:\n    - {key: a, operator: Gt, value: \"1\"}\n",
            ),
            vec![
                "spec.placement.clusterTolerations[0].operator",
                "Unsupported value",
            ],
        ),
        (
            "application failover without propagateDeps",
            pp_hook,
            pp(
                "failover-no-deps",
                "  failover:\n    application:\n      decisionConditions: {tolerationSeconds: 60}\n",
                "",
            ),
            vec![
                "spec.propagateDeps",
                "application failover is set, propagateDeps must be true",
            ],
        ),
        (
            "preemption Always with a nameless selector",
            pp_hook,
            "apiVersion: policy.karmada.io/v1alpha1
kind: PropagationPolicy
metadata: {name: preempt, namespace: default}
spec:
  preemption: Always
  resourceSelectors:
  - {apiVersion: apps/v1, kind: Deployment}
  placement: {clusterAffinity: {clusterNames: [member1]}}
"
            .to_string(),
            vec![
                "spec.resourceSelectors[0].name",
                "name cannot be empty if preemption is Always",
            ],
        ),
        (
            "selector namespace other than the policy's",
            pp_hook,
            "apiVersion: policy.karmada.io/v1alpha1
kind: PropagationPolicy
metadata: {name: other-ns, namespace: default}
spec:
  resourceSelectors:
  - {apiVersion: apps/v1, kind: Deployment, namespace: kube-system}
  placement: {clusterAffinity: {clusterNames: [member1]}}
"
            .to_string(),
            vec![
                "spec.resourceSelectors[0].namespace",
                "namespace of resource selector must be the same as the namespace of the policy",
            ],
        ),
        (
            "imageOverrider predicate path not a JSON pointer",
            "overridepolicy.karmada.io",
            "apiVersion: policy.karmada.io/v1alpha1
kind: OverridePolicy
metadata: {name: image-path, namespace: default}
spec:
  resourceSelectors:
  - {apiVersion: apps/v1, kind: Deployment, name: nginx}
  overrideRules:
  - targetCluster: {clusterNames: [member1]}
    overriders:
      imageOverrider:
      - component: Registry
        operator: replace
        value: registry.example.com
        predicate: {path: spec/template/spec/containers/0/image}
"
            .to_string(),
            vec![
                "spec.overrideRules[0].overriders.imageOverrider[0].predicate.path",
                "JSON pointer must be empty or start with a",
            ],
        ),
        (
            "fieldOverrider with both json and yaml",
            "clusteroverridepolicy.karmada.io",
            "apiVersion: policy.karmada.io/v1alpha1
kind: ClusterOverridePolicy
metadata: {name: json-and-yaml}
spec:
  resourceSelectors:
  - {apiVersion: v1, kind: ConfigMap, name: config}
  overrideRules:
  - overriders:
      fieldOverrider:
      - fieldPath: /data/config.json
        json: [{subPath: /a, operator: add, value: 1}]
        yaml: [{subPath: /b, operator: remove}]
"
            .to_string(),
            vec![
                "spec.overrideRules[0].overriders.fieldOverrider[0]",
                "FieldOverrider has both YAML and JSON set. Only one is allowed",
            ],
        ),
        (
            "FederatedHPA minReplicas > maxReplicas",
            "federatedhpa.karmada.io",
            "apiVersion: autoscaling.karmada.io/v1alpha1
kind: FederatedHPA
metadata: {name: min-above-max, namespace: default}
spec:
  scaleTargetRef: {apiVersion: apps/v1, kind: Deployment, name: nginx}
  minReplicas: 5
  maxReplicas: 2
"
            .to_string(),
            vec![
                "spec.maxReplicas",
                "must be greater than or equal to `minReplicas`",
            ],
        ),
        (
            "CronFederatedHPA invalid schedule",
            "cronfederatedhpa.karmada.io",
            "apiVersion: autoscaling.karmada.io/v1alpha1
kind: CronFederatedHPA
metadata: {name: bad-schedule, namespace: default}
spec:
  scaleTargetRef: {apiVersion: apps/v1, kind: Deployment, name: nginx}
  rules:
  - {name: up, schedule: \"every minute\", targetReplicas: 3}
"
            .to_string(),
            vec!["spec.rules[0].schedule", "invalid cron format"],
        ),
        (
            "MultiClusterIngress host is an IP, path not absolute",
            "multiclusteringress.karmada.io",
            "apiVersion: networking.karmada.io/v1alpha1
kind: MultiClusterIngress
metadata: {name: ip-host, namespace: default}
spec:
  rules:
  - host: 10.0.0.1
    http:
      paths:
      - {path: web, pathType: Prefix, backend: {service: {name: web, port: {number: 80}}}}
"
            .to_string(),
            vec![
                "spec.rules[0].host: Invalid value: \"10.0.0.1\": must be a DNS name, not an IP address",
                "spec.rules[0].http.paths[0].path: Invalid value: \"web\": must be an absolute path",
            ],
        ),
        (
            "MultiClusterIngress backend with port name and number",
            "multiclusteringress.karmada.io",
            "apiVersion: networking.karmada.io/v1alpha1
kind: MultiClusterIngress
metadata: {name: two-ports, namespace: default}
spec:
  defaultBackend: {service: {name: web, port: {name: http, number: 80}}}
  tls:
  - {hosts: [\"foo.*.example.com\"]}
"
            .to_string(),
            vec![
                "spec.defaultBackend: Invalid value: \"\": cannot set both port name & port number",
                "spec.tls[0].hosts[0]: Invalid value: \"foo.*.example.com\": a wildcard DNS-1123 subdomain must start with '*.'",
            ],
        ),
    ]
}

/// Every invalid object is refused by its webhook with the field and the
/// reason, by every kubectl, and nothing is stored.
#[test]
fn invalid_policies_are_denied_with_field_and_reason() {
    let up = Up::start(&[]);
    let cases = invalid_objects();
    assert!(cases.len() >= 10);
    for kubectl in kubectls() {
        for (what, hook, manifest, fragments) in &cases {
            let (code, out, err) = up.apply(&kubectl, manifest);
            assert_ne!(code, 0, "{what}: accepted by {}:\n{out}", kubectl.display());
            let prefix = format!("admission webhook \"{hook}\" denied the request:");
            assert!(
                err.contains(&prefix),
                "{what} ({}): {err:?} lacks {prefix:?}",
                kubectl.display()
            );
            for f in fragments {
                assert!(
                    err.contains(*f),
                    "{what} ({}): {err:?} lacks {f:?}",
                    kubectl.display()
                );
            }
        }
        for resource in [
            "propagationpolicies",
            "overridepolicies",
            "clusteroverridepolicies",
            "federatedhpas",
            "cronfederatedhpas",
            "multiclusteringresses",
        ] {
            assert_eq!(
                up.names(&kubectl, resource),
                Vec::<String>::new(),
                "nothing stored in {resource}"
            );
        }
    }
}

/// Valid policies are accepted and come back defaulted; immutable fields
/// cannot be changed; deletion protection holds.
#[test]
fn valid_policies_are_defaulted_and_identity_is_immutable() {
    let up = Up::start(&[]);
    let k = system_kubectl();
    let manifest = "apiVersion: policy.karmada.io/v1alpha1
kind: PropagationPolicy
metadata: {name: nginx, namespace: default}
spec:
  resourceSelectors:
  - {apiVersion: apps/v1, kind: Deployment, name: nginx}
  placement:
    clusterAffinity: {clusterNames: [member1, member2]}
    spreadConstraints:
    - {maxGroups: 2}
    replicaScheduling: {replicaSchedulingType: Divided}
---
apiVersion: autoscaling.karmada.io/v1alpha1
kind: FederatedHPA
metadata: {name: nginx, namespace: default}
spec:
  scaleTargetRef: {apiVersion: apps/v1, kind: Deployment, name: nginx}
  maxReplicas: 4
";
    let (code, out, err) = up.apply(&k, manifest);
    assert_eq!(code, 0, "{out}\n{err}");
    let p = up.get_json(&k, &["get", "pp", "nginx", "-n", "default"]);
    let id = p["metadata"]["labels"]["propagationpolicy.karmada.io/permanent-id"]
        .as_str()
        .unwrap_or_else(|| panic!("permanent-id label: {p}"))
        .to_string();
    assert_eq!(id.len(), 36, "a UUID: {id}");
    assert_eq!(
        p["metadata"]["finalizers"],
        serde_json::json!(["karmada.io/propagation-policy-controller"])
    );
    let spec = &p["spec"];
    assert_eq!(
        spec["resourceSelectors"][0]["namespace"], "default",
        "{spec}"
    );
    assert_eq!(
        spec["placement"]["replicaScheduling"]["replicaDivisionPreference"], "Weighted",
        "{spec}"
    );
    assert_eq!(
        spec["placement"]["spreadConstraints"][0]["spreadByField"], "cluster",
        "{spec}"
    );
    assert_eq!(spec["placement"]["spreadConstraints"][0]["minGroups"], 1);
    // The same defaults as YAML, as a user would look at them.
    let yaml = up.ok(
        &k,
        &["get", "pp", "nginx", "-n", "default", "-o", "yaml"],
        None,
    );
    assert!(
        yaml.contains("replicaDivisionPreference: Weighted"),
        "{yaml}"
    );
    assert!(
        yaml.contains("propagationpolicy.karmada.io/permanent-id:"),
        "{yaml}"
    );
    let h = up.get_json(&k, &["get", "federatedhpa", "nginx", "-n", "default"]);
    assert_eq!(h["spec"]["minReplicas"], 1, "{h}");

    // Re-applying the same manifest keeps the identity (UPDATE is not re-labelled).
    let (code, out, err) = up.apply(&k, manifest);
    assert_eq!(code, 0, "{out}\n{err}");
    let again = up.get_json(&k, &["get", "pp", "nginx", "-n", "default"]);
    assert_eq!(
        again["metadata"]["labels"]["propagationpolicy.karmada.io/permanent-id"],
        id.as_str()
    );

    // Immutable: schedulerName and the permanent-id label.
    let (code, _, err) = up.run(
        &k,
        &[
            "patch",
            "pp",
            "nginx",
            "-n",
            "default",
            "--type",
            "merge",
            "-p",
            r#"{"spec":{"schedulerName":"my-scheduler"}}"#,
        ],
        None,
    );
    assert_ne!(code, 0);
    assert!(
        err.contains("admission webhook \"propagationpolicy.karmada.io\" denied the request: the schedulerName should not be updated"),
        "{err}"
    );
    let (code, _, err) = up.run(
        &k,
        &[
            "label",
            "pp",
            "nginx",
            "-n",
            "default",
            "--overwrite",
            "propagationpolicy.karmada.io/permanent-id=forged",
        ],
        None,
    );
    assert_ne!(code, 0);
    assert!(
        err.contains("label propagationpolicy.karmada.io/permanent-id is immutable, it can only be set by the system during creation"),
        "{err}"
    );
    let after = up.get_json(&k, &["get", "pp", "nginx", "-n", "default"]);
    assert_eq!(
        after["spec"].get("schedulerName"),
        p["spec"].get("schedulerName")
    );
    assert_eq!(
        after["metadata"]["labels"]["propagationpolicy.karmada.io/permanent-id"],
        id.as_str()
    );

    // Deletion protection, on any resource labelled Always.
    up.ok(
        &k,
        &[
            "create",
            "configmap",
            "keep",
            "-n",
            "default",
            "--from-literal=a=b",
        ],
        None,
    );
    up.ok(
        &k,
        &[
            "label",
            "configmap",
            "keep",
            "-n",
            "default",
            "resourcetemplate.karmada.io/deletion-protected=Always",
        ],
        None,
    );
    let (code, _, err) = up.run(&k, &["delete", "configmap", "keep", "-n", "default"], None);
    assert_ne!(code, 0);
    assert!(
        err.contains("admission webhook \"resourcedeletionprotection.karmada.io\" denied the request: This resource is protected, please make sure to remove the label: resourcetemplate.karmada.io/deletion-protected"),
        "{err}"
    );
    up.ok(&k, &["get", "configmap", "keep", "-n", "default"], None);
    up.ok(
        &k,
        &[
            "label",
            "configmap",
            "keep",
            "-n",
            "default",
            "resourcetemplate.karmada.io/deletion-protected-",
        ],
        None,
    );
    up.ok(&k, &["delete", "configmap", "keep", "-n", "default"], None);

    // The policy's finalizer is released by the detector's policy controller
    // (claims removed from what it propagated), and the policy goes.
    up.ok(
        &k,
        &["delete", "pp", "nginx", "-n", "default", "--wait=false"],
        None,
    );
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while !up.names(&k, "propagationpolicies").is_empty() {
        assert!(
            std::time::Instant::now() < deadline,
            "the policy controller did not release the finalizer"
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    assert_eq!(up.names(&k, "propagationpolicies"), Vec::<String>::new());
}

/// Bindings get their permanent id on creation and are served as v1alpha1
/// through the webhook's `/convert`.
#[test]
fn bindings_get_ids_and_convert() {
    let up = Up::start(&[]);
    let k = system_kubectl();
    let binding = "apiVersion: work.karmada.io/v1alpha2
kind: ResourceBinding
metadata: {name: nginx-deployment, namespace: default}
spec:
  resource: {apiVersion: apps/v1, kind: Deployment, namespace: default, name: nginx}
  replicas: 2
  clusters: [{name: member1, replicas: 2}]
";
    let (code, out, err) = up.apply(&k, binding);
    assert_eq!(code, 0, "{out}\n{err}");
    let rb = up.get_json(
        &k,
        &[
            "get",
            "resourcebinding",
            "nginx-deployment",
            "-n",
            "default",
        ],
    );
    assert!(
        rb["metadata"]["labels"]["resourcebinding.karmada.io/permanent-id"].is_string(),
        "{rb}"
    );
    let raw = up.ok(
        &k,
        &[
            "get",
            "--raw",
            "/apis/work.karmada.io/v1alpha1/namespaces/default/resourcebindings/nginx-deployment",
        ],
        None,
    );
    let old: Value = serde_json::from_str(&raw).expect("JSON");
    assert_eq!(old["apiVersion"], "work.karmada.io/v1alpha1", "{old}");
    // v1alpha1 keeps the replica count on the resource reference.
    assert_eq!(old["spec"]["resource"]["replicas"], 2, "{old}");
    assert_eq!(old["spec"]["clusters"][0]["name"], "member1", "{old}");
}

/// The Karmada-API documents of a YAML file, as JSON (other kinds skipped).
fn karmada_documents(path: &Path) -> Vec<Value> {
    let text = std::fs::read_to_string(path).expect("sample");
    let mut docs = Vec::new();
    let mut current = String::new();
    for line in text.lines().chain(std::iter::once("---")) {
        if line.trim_end() == "---" {
            if !current.trim().is_empty() {
                let v: Value = serde_saphyr::from_str(&current)
                    .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
                docs.push(v);
            }
            current.clear();
        } else {
            current.push_str(line);
            current.push('\n');
        }
    }
    docs.into_iter()
        .filter(|d| {
            let api = d["apiVersion"].as_str().unwrap_or("");
            [
                "policy.karmada.io/",
                "autoscaling.karmada.io/",
                "networking.karmada.io/",
                "work.karmada.io/",
                "config.karmada.io/",
            ]
            .iter()
            .any(|g| api.starts_with(g))
        })
        .collect()
}

fn yaml_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    let mut entries: Vec<PathBuf> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
    entries.sort();
    for p in entries {
        if p.is_dir() {
            yaml_files(&p, out);
        } else if p.extension().is_some_and(|e| e == "yaml" || e == "yml") {
            out.push(p);
        }
    }
}

/// flotilla's own samples and, when present, Karmada's (`../shared/karmada/samples`
/// from the repository root, or `FLOTILLA_KARMADA_DIR/samples`) pass the webhook.
#[test]
fn samples_with_policies_are_accepted() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut files = Vec::new();
    yaml_files(&root.join("samples"), &mut files);
    let karmada = std::env::var_os("FLOTILLA_KARMADA_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("../shared/karmada"));
    let before = files.len();
    yaml_files(&karmada.join("samples"), &mut files);
    if files.len() == before {
        eprintln!(
            "Karmada's samples are not at {}; checking flotilla's own only",
            karmada.display()
        );
    }
    let up = Up::start(&[]);
    let k = system_kubectl();
    let mut applied = 0;
    for file in &files {
        for doc in karmada_documents(file) {
            let ns = doc["metadata"]["namespace"].as_str().unwrap_or("");
            if !ns.is_empty() && ns != "default" {
                let _ = up.run(&k, &["create", "namespace", ns], None);
            }
            let text = serde_json::to_string(&doc).expect("json");
            let (code, out, err) = up.apply(&k, &text);
            assert_eq!(
                code,
                0,
                "{} {} from {} refused:\n{out}\n{err}",
                doc["kind"],
                doc["metadata"]["name"],
                file.display()
            );
            applied += 1;
        }
    }
    assert!(applied >= 5, "only {applied} documents found");
    // Every propagation policy went through the mutating webhook.
    let list = up.get_json(&k, &["get", "propagationpolicies", "-A"]);
    for p in list["items"].as_array().expect("items") {
        assert!(
            p["metadata"]["labels"]["propagationpolicy.karmada.io/permanent-id"].is_string(),
            "{p}"
        );
    }
}

/// With the webhook down, policy writes fail closed with a clear message and
/// nothing is stored; other resources are unaffected. A separately started
/// `flotilla webhook` takes over once the Endpoints name it.
#[test]
fn webhook_down_fails_closed() {
    let up = Up::start(&["--webhook=false"]);
    let k = system_kubectl();
    let policy = pp("down", "", "");
    let assert_fails_closed = |cause: &str| {
        for kubectl in kubectls() {
            let (code, out, err) = up.apply(&kubectl, &policy);
            assert_ne!(code, 0, "accepted without a webhook: {out}");
            assert!(
                err.contains("failed calling webhook \"propagationpolicy.karmada.io\"")
                    && err.contains(cause),
                "{err:?} ({}) should name the webhook and {cause:?}",
                kubectl.display()
            );
        }
        assert_eq!(up.names(&k, "propagationpolicies"), Vec::<String>::new());
    };
    assert_fails_closed("no endpoints available for service \"karmada-webhook\"");
    up.ok(
        &k,
        &[
            "create",
            "configmap",
            "unaffected",
            "-n",
            "default",
            "--from-literal=a=b",
        ],
        None,
    );

    // A webhook process with the certificate `flotilla up` made for it.
    let mut webhook = flotilla_tests::up::Proc::spawn(
        "flotilla-webhook",
        Command::new(flotilla_bin())
            .args(["webhook", "--bind", "127.0.0.1:0", "--cert-dir"])
            .arg(up.dir.join("webhook")),
        &up.dir.join("logs"),
    );
    let out = webhook.wait_stdout("webhook serving at https://", WAIT);
    let line = out
        .lines()
        .find(|l| l.starts_with("webhook serving at https://"))
        .unwrap_or_default()
        .to_string();
    let port: u16 = line
        .rsplit(':')
        .next()
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("port in {line:?}"));
    let endpoints = format!(
        "apiVersion: v1
kind: Endpoints
metadata: {{name: karmada-webhook, namespace: karmada-system}}
subsets:
- addresses: [{{ip: 127.0.0.1}}]
  ports: [{{name: https, port: {port}}}]
"
    );
    let (code, out, err) = up.apply(&k, &endpoints);
    assert_eq!(code, 0, "{out}\n{err}");
    let (code, out, err) = up.apply(&k, &policy);
    assert_eq!(code, 0, "{out}\n{err}");
    let p = up.get_json(&k, &["get", "pp", "down", "-n", "default"]);
    assert!(
        p["metadata"]["labels"]["propagationpolicy.karmada.io/permanent-id"].is_string(),
        "{p}"
    );
    let (_, hook, manifest, _) = invalid_objects().swap_remove(0);
    let (code, _, err) = up.apply(&k, &manifest);
    assert_ne!(code, 0);
    assert!(
        err.contains(&format!("admission webhook \"{hook}\" denied the request")),
        "{err}"
    );

    // Killed: writes fail closed again, reads and other kinds still work.
    webhook.kill();
    let (code, _, err) = up.apply(&k, &pp("after-kill", "", ""));
    assert_ne!(code, 0);
    assert!(
        err.contains("failed calling webhook \"propagationpolicy.karmada.io\""),
        "{err}"
    );
    assert_eq!(
        up.names(&k, "propagationpolicies"),
        vec!["down".to_string()]
    );
    up.ok(
        &k,
        &[
            "create",
            "configmap",
            "still-fine",
            "-n",
            "default",
            "--from-literal=a=b",
        ],
        None,
    );
    up.ok(&k, &["get", "pp", "down", "-n", "default"], None);
}

fn customization(name: &str, kind: &str, customizations: &str) -> String {
    format!(
        "apiVersion: config.karmada.io/v1alpha1
kind: ResourceInterpreterCustomization
metadata: {{name: {name}}}
spec:
  target: {{apiVersion: apps/v1, kind: {kind}}}
  customizations:
{customizations}"
    )
}

const REPLICAS: &str = "    replicaResource:
      luaScript: |
        function GetReplicas(obj)
          return obj.spec.replicas, {}
        end
";

const HEALTH: &str = "    healthInterpretation:
      luaScript: |
        function InterpretHealth(obj)
          return obj.status.readyReplicas == obj.spec.replicas
        end
";

/// ResourceInterpreterCustomizations: scripts must load as Lua, and no two
/// customizations of one target may script the same operation (the webhook
/// reads the stored ones through the API server). Valid MultiClusterIngresses
/// are accepted, and their identity cannot change.
#[test]
fn interpreter_customizations_and_ingresses() {
    let up = Up::start(&[]);
    let k = system_kubectl();
    let hook =
        "admission webhook \"resourceinterpretercustomization.karmada.io\" denied the request:";
    let (code, out, err) = up.apply(
        &k,
        &customization("deployment-replicas", "Deployment", REPLICAS),
    );
    assert_eq!(code, 0, "{out}\n{err}");
    // Same operation, same target: refused, naming the existing one.
    let (code, _, err) = up.apply(
        &k,
        &customization(
            "deployment-both",
            "Deployment",
            &format!("{REPLICAS}{HEALTH}"),
        ),
    );
    assert_ne!(code, 0);
    assert!(
        err.contains(&format!("{hook} conflicting with InterpreterOperation(InterpretReplica) of existing ResourceInterpreterCustomization(deployment-replicas)")),
        "{err}"
    );
    // Another operation on the same target, or the same on another target: fine.
    for (name, kind, rules) in [
        ("deployment-health", "Deployment", HEALTH),
        ("statefulset-replicas", "StatefulSet", REPLICAS),
    ] {
        let (code, out, err) = up.apply(&k, &customization(name, kind, rules));
        assert_eq!(code, 0, "{name}: {out}\n{err}");
    }
    // Updating a customization does not conflict with its own stored version.
    let (code, out, err) = up.apply(
        &k,
        &customization(
            "deployment-replicas",
            "Deployment",
            &REPLICAS.replace("obj.spec.replicas,", "obj.spec.replicas or 1,"),
        ),
    );
    assert_eq!(code, 0, "{out}\n{err}");
    // A script that does not load: the operation, the field and Lua's reason.
    let broken = "    statusReflection:
      luaScript: |
        function ReflectStatus(obj)
          return { readyReplicas = obj.status.readyReplicas
        end
";
    let (code, _, err) = up.apply(&k, &customization("daemonset-status", "DaemonSet", broken));
    assert_ne!(code, 0);
    assert!(
        err.contains(&format!("{hook} InterpreterOperation(InterpretStatus) Lua script error: spec.customizations.statusReflection.luaScript:")),
        "{err}"
    );
    let mut names = up.names(&k, "resourceinterpretercustomizations");
    names.sort();
    assert_eq!(
        names,
        [
            "deployment-health",
            "deployment-replicas",
            "statefulset-replicas"
        ]
    );

    let ingress = "apiVersion: networking.karmada.io/v1alpha1
kind: MultiClusterIngress
metadata: {name: demo, namespace: default}
spec:
  ingressClassName: nginx
  tls:
  - {hosts: [\"*.example.com\"], secretName: demo-tls}
  rules:
  - host: \"*.example.com\"
    http:
      paths:
      - {path: /web, pathType: Prefix, backend: {service: {name: web, port: {number: 80}}}}
      - {path: /api, pathType: Exact, backend: {service: {name: api, port: {name: http}}}}
";
    let (code, out, err) = up.apply(&k, ingress);
    assert_eq!(code, 0, "{out}\n{err}");
    // An update that breaks the spec is refused; the stored object is unchanged.
    let (code, _, err) = up.apply(&k, &ingress.replace("pathType: Exact", "pathType: Regex"));
    assert_ne!(code, 0);
    assert!(
        err.contains("admission webhook \"multiclusteringress.karmada.io\" denied the request: spec.rules[0].http.paths[1].pathType: Unsupported value: \"Regex\""),
        "{err}"
    );
    let stored = up.get_json(&k, &["get", "multiclusteringress", "demo", "-n", "default"]);
    assert_eq!(
        stored["spec"]["rules"][0]["http"]["paths"][1]["pathType"], "Exact",
        "{stored}"
    );
}
