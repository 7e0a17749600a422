//! The unified multi-cluster view end to end: `flotilla up --members 3`, pods
//! created directly in members, read through the `flotilla-all` context (Karmada's
//! proxy prefix as the kubeconfig server) with every kubectl the tests drive:
//! tables with a CLUSTER column, watches that see other members' changes, paging,
//! resuming a watch from a list's resourceVersion, a member that does not answer,
//! names held by several clusters, writes routed to the owning member, and a user
//! who may read one namespace of one member.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use flotilla_tests::{kubectls, norm_spaces, run_bounded};
use serde_json::Value;

const PREFIX: &str = "/apis/search.karmada.io/v1alpha1/proxying/karmada/proxy";

/// A running `flotilla up` (the shared harness), killed by PID when dropped.
struct Up {
    inner: flotilla_tests::up::Up,
    dir: PathBuf,
}

impl Up {
    fn start(members: usize) -> Up {
        let inner = flotilla_tests::up::Up::start_with(members, &["--nodes", "1"]);
        let dir = inner.dir.clone();
        Up { inner, dir }
    }

    fn kubeconfig(&self) -> PathBuf {
        self.inner.kubeconfig()
    }

    fn cmd(&self, kubectl: &Path, context: &str) -> Command {
        let mut c = Command::new(kubectl);
        c.env("KUBECONFIG", self.kubeconfig())
            .env("KUBECACHEDIR", self.dir.join("kcache"))
            .env_remove("HTTPS_PROXY")
            .env_remove("HTTP_PROXY")
            .args(["--context", context]);
        c
    }

    fn run(&self, kubectl: &Path, context: &str, args: &[&str]) -> (i32, String, String) {
        run_bounded(
            self.cmd(kubectl, context).args(args),
            None,
            Duration::from_secs(30),
        )
    }

    fn stdin(&self, context: &str, args: &[&str], input: &str) -> (i32, String, String) {
        run_bounded(
            self.cmd(Path::new("kubectl"), context).args(args),
            Some(input.as_bytes()),
            Duration::from_secs(30),
        )
    }

    /// Runs the machine's kubectl and asserts success.
    #[track_caller]
    fn ok(&self, context: &str, args: &[&str]) -> String {
        let (code, out, err) = self.run(Path::new("kubectl"), context, args);
        assert_eq!(code, 0, "kubectl --context {context} {args:?}: {err}");
        out
    }

    /// Polls `check` on kubectl's output (bounded: 20 s).
    #[track_caller]
    fn wait_for(&self, context: &str, args: &[&str], check: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let (_, out, err) = self.run(Path::new("kubectl"), context, args);
            if check(&out) {
                return out;
            }
            assert!(
                Instant::now() < deadline,
                "kubectl --context {context} {args:?} never satisfied the check:\n{out}\n{err}"
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// Starts a long-running kubectl whose stdout lines arrive on the receiver.
    fn spawn(&self, kubectl: &Path, context: &str, args: &[&str]) -> Lines {
        let mut child = self
            .cmd(kubectl, context)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn kubectl");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Lines {
            child,
            rx,
            seen: Vec::new(),
        }
    }
}

/// Output lines of a running kubectl; the process is killed by PID when dropped.
struct Lines {
    child: Child,
    rx: mpsc::Receiver<String>,
    seen: Vec<String>,
}

impl Lines {
    /// Waits (bounded: 20 s) for a line passing `check`.
    #[track_caller]
    fn wait_for(&mut self, what: &str, check: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if let Ok(line) = self.rx.recv_timeout(Duration::from_millis(100)) {
                self.seen.push(line.clone());
                if check(&line) {
                    return line;
                }
            }
        }
        panic!("no line with {what}; saw:\n{}", self.seen.join("\n"));
    }
}

impl Drop for Lines {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// (namespace, name, cluster) of every item of a JSON list, in order.
fn keys(list: &str) -> Vec<(String, String, String)> {
    let list: Value = serde_json::from_str(list).expect("JSON list");
    list["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|i| {
            let m = &i["metadata"];
            (
                m["namespace"].as_str().unwrap_or("").to_string(),
                m["name"].as_str().unwrap_or("").to_string(),
                m["annotations"]["resource.karmada.io/cached-from-cluster"]
                    .as_str()
                    .unwrap_or("")
                    .to_string(),
            )
        })
        .collect()
}

/// Pod names in one member (JSON list from its own context).
fn member_pods(up: &Up, member: &str) -> Vec<String> {
    keys(&up.ok(member, &["get", "pods", "-A", "-o", "json"]))
        .into_iter()
        .map(|(_, n, _)| n)
        .collect()
}

/// member1: web (2 pods); member2: api (1 pod); member3: pod solo, in default.
fn workloads(up: &Up) -> usize {
    up.ok(
        "member1",
        &[
            "create",
            "deployment",
            "web",
            "--image=nginx",
            "--replicas=2",
        ],
    );
    up.ok("member2", &["create", "deployment", "api", "--image=nginx"]);
    up.ok("member3", &["run", "solo", "--image=nginx"]);
    4
}

#[test]
fn unified_view_lists_every_member_with_its_cluster() {
    let up = Up::start(3);
    let total = workloads(&up);
    let all = up.wait_for(
        "flotilla-all",
        &["get", "pods", "-A", "-o", "json"],
        |out| {
            serde_json::from_str::<Value>(out)
                .ok()
                .and_then(|v| v["items"].as_array().map(Vec::len))
                == Some(total)
        },
    );
    // One global order: (namespace, name, cluster); every object names its cluster.
    let got = keys(&all);
    let mut sorted = got.clone();
    sorted.sort();
    assert_eq!(got, sorted, "not in (namespace, name, cluster) order");
    for member in ["member1", "member2", "member3"] {
        for pod in member_pods(&up, member) {
            assert!(
                got.iter().any(|(_, n, c)| *n == pod && c == member),
                "{pod} of {member} missing or with the wrong cluster: {got:?}"
            );
        }
    }
    // Member objects are served without their managedFields, which the
    // member itself keeps.
    let (ns, name, cluster) = got.first().expect("a pod").clone();
    let show = |context: &str| -> Value {
        let out = up.ok(
            context,
            &[
                "get",
                "pod",
                &name,
                "-n",
                &ns,
                "-o",
                "json",
                "--show-managed-fields",
            ],
        );
        serde_json::from_str(&out).expect("pod JSON")
    };
    assert!(show(&cluster)["metadata"]["managedFields"].is_array());
    let unified = show("flotilla-all");
    assert_eq!(unified["metadata"]["name"], name.as_str());
    assert!(
        unified["metadata"].get("managedFields").is_none(),
        "{unified}"
    );

    for kubectl in kubectls() {
        // The table: CLUSTER right after NAME, kubectl's NAMESPACE first with -A.
        let (code, out, err) = up.run(&kubectl, "flotilla-all", &["get", "pods", "-A"]);
        assert_eq!(code, 0, "{kubectl:?}: {err}");
        let lines: Vec<String> = out.lines().map(norm_spaces).collect();
        assert!(
            lines[0].starts_with("NAMESPACE NAME CLUSTER READY STATUS RESTARTS AGE"),
            "{kubectl:?}: {out}"
        );
        assert_eq!(lines.len(), total + 1, "{kubectl:?}: {out}");
        for (ns, name, cluster) in &got {
            assert!(
                lines
                    .iter()
                    .any(|l| l.starts_with(&format!("{ns} {name} {cluster} "))),
                "{kubectl:?}: no row for {name} in {cluster}: {out}"
            );
        }
        // -o wide keeps the pod printer's wide columns; -o name prefixes the kind.
        let (code, out, err) = up.run(
            &kubectl,
            "flotilla-all",
            &["get", "pods", "-A", "-o", "wide"],
        );
        assert_eq!(code, 0, "{err}");
        assert!(
            norm_spaces(out.lines().next().unwrap_or(""))
                .contains("CLUSTER READY STATUS RESTARTS AGE IP NODE"),
            "{out}"
        );
        let (code, out, err) = up.run(
            &kubectl,
            "flotilla-all",
            &["get", "pods", "-A", "-o", "name"],
        );
        assert_eq!(code, 0, "{err}");
        assert_eq!(
            out.lines().filter(|l| l.starts_with("pod/")).count(),
            total,
            "{out}"
        );
        // --show-labels and -L read the rows' objects.
        let (code, out, err) = up.run(
            &kubectl,
            "flotilla-all",
            &["get", "pods", "-A", "-L", "app", "--show-labels"],
        );
        assert_eq!(code, 0, "{err}");
        assert!(out.contains("app=web"), "{out}");
        // --sort-by asks for whole objects in the rows (includeObject=Object).
        let (code, out, err) = up.run(
            &kubectl,
            "flotilla-all",
            &["get", "pods", "-A", "--sort-by=.metadata.name"],
        );
        assert_eq!(code, 0, "{err}");
        let lines: Vec<String> = out.lines().map(norm_spaces).collect();
        assert!(
            lines[0].starts_with("NAMESPACE NAME CLUSTER READY STATUS"),
            "{out}"
        );
        let names: Vec<&str> = lines[1..]
            .iter()
            .filter_map(|l| l.split(' ').nth(1))
            .collect();
        let mut sorted = names.clone();
        sorted.sort();
        assert_eq!(names, sorted, "{out}");
        assert_eq!(names.len(), total, "{out}");
        // Paging: every pod exactly once, in order, at any chunk size.
        for chunk in ["1", "2", "500"] {
            let (code, out, err) = up.run(
                &kubectl,
                "flotilla-all",
                &[
                    "get",
                    "pods",
                    "-A",
                    "-o",
                    "json",
                    &format!("--chunk-size={chunk}"),
                ],
            );
            assert_eq!(code, 0, "chunk {chunk}: {err}");
            assert_eq!(keys(&out), got, "{kubectl:?} chunk {chunk}");
        }
        // Label selectors and the synthetic cluster field selector.
        let (code, out, err) = up.run(
            &kubectl,
            "flotilla-all",
            &["get", "pods", "-A", "-l", "app=web", "-o", "json"],
        );
        assert_eq!(code, 0, "{err}");
        assert!(
            keys(&out)
                .iter()
                .all(|(_, n, c)| n.starts_with("web-") && c == "member1")
                && keys(&out).len() == 2,
            "{out}"
        );
        let (code, out, err) = up.run(
            &kubectl,
            "flotilla-all",
            &[
                "get",
                "pods",
                "-A",
                "--field-selector",
                "cluster!=member1",
                "-o",
                "json",
            ],
        );
        assert_eq!(code, 0, "{err}");
        assert_eq!(keys(&out).len(), 2, "{out}");
        // A single object: YAML with Karmada's annotation.
        let (code, out, err) = up.run(
            &kubectl,
            "flotilla-all",
            &["get", "pod", "solo", "-o", "yaml"],
        );
        assert_eq!(code, 0, "{err}");
        assert!(
            out.contains("resource.karmada.io/cached-from-cluster: member3"),
            "{out}"
        );
    }

    // Other kinds: nodes (cluster-scoped, cached) and an unregistered kind (live).
    let nodes = up.ok("flotilla-all", &["get", "nodes"]);
    for member in ["member1", "member2", "member3"] {
        assert!(nodes.contains(&format!(" {member} ")), "{nodes}");
    }
    up.ok("member2", &["create", "serviceaccount", "robot"]);
    let sas = up.ok(
        "flotilla-all",
        &["get", "serviceaccounts", "-n", "default", "-o", "json"],
    );
    assert!(
        keys(&sas).contains(&("default".into(), "robot".into(), "member2".into())),
        "{sas}"
    );

    // Discovery is the members' union: api-resources lists pods and deployments.
    let resources = up.ok("flotilla-all", &["api-resources", "--cached=false"]);
    assert!(
        resources.lines().any(|l| l.starts_with("pods ")),
        "{resources}"
    );
    assert!(
        resources.lines().any(|l| l.starts_with("deployments ")),
        "{resources}"
    );
}

#[test]
fn watches_see_every_member_and_resume_exactly() {
    let up = Up::start(3);
    let total = workloads(&up);
    up.wait_for(
        "flotilla-all",
        &["get", "pods", "-A", "-o", "name"],
        |out| out.lines().count() == total,
    );
    for (i, kubectl) in kubectls().into_iter().enumerate() {
        // kubectl get -w: a pod created in member2 appears, one deleted in member3 goes.
        let mut w = up.spawn(
            &kubectl,
            "flotilla-all",
            &["get", "pods", "-A", "-w", "--output-watch-events"],
        );
        w.wait_for("the initial list", |l| {
            l.contains("solo") || l.contains("web-")
        });
        let created = format!("new-{i}");
        up.ok("member2", &["run", &created, "--image=nginx"]);
        let line = w.wait_for("the new pod", |l| l.contains(&created));
        assert!(
            norm_spaces(&line).contains(&format!("ADDED default {created} member2")),
            "{line}"
        );
        let doomed = if i == 0 {
            "solo".to_string()
        } else {
            format!("new-{}", i - 1)
        };
        let doomed_cluster = if i == 0 { "member3" } else { "member2" };
        up.ok(doomed_cluster, &["delete", "pod", &doomed, "--wait=false"]);
        let line = w.wait_for("the deleted pod", |l| {
            l.starts_with("DELETED") && l.contains(&doomed)
        });
        assert!(
            norm_spaces(&line).contains(&format!("default {doomed} {doomed_cluster}")),
            "{line}"
        );
        drop(w);
    }

    // A watch resumed from a list's resourceVersion: nothing missed, nothing repeated.
    let list = up.ok(
        "flotilla",
        &["get", "--raw", &format!("{PREFIX}/api/v1/pods")],
    );
    let list: Value = serde_json::from_str(&list).expect("list");
    let rv = list["metadata"]["resourceVersion"]
        .as_str()
        .expect("rv")
        .to_string();
    let before: Vec<String> = list["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|i| i["metadata"]["name"].as_str().unwrap_or("").to_string())
        .collect();
    // Changes after the list, in two members.
    up.ok("member1", &["run", "after-list", "--image=nginx"]);
    let gone = before
        .iter()
        .find(|n| n.starts_with("api-"))
        .expect("an api pod")
        .clone();
    up.ok("member2", &["delete", "pod", &gone, "--wait=false"]);
    let events = |from: &str| -> Vec<Value> {
        let (code, out, err) = up.run(
            Path::new("kubectl"),
            "flotilla",
            &[
                "get",
                "--raw",
                &format!("{PREFIX}/api/v1/pods?watch=1&resourceVersion={from}&timeoutSeconds=3"),
            ],
        );
        assert_eq!(code, 0, "{err}");
        out.lines()
            .map(|l| serde_json::from_str(l).expect("event"))
            .collect()
    };
    let deadline = Instant::now() + Duration::from_secs(20);
    let first = loop {
        let e = events(&rv);
        let has = |t: &str, n: &str| {
            e.iter()
                .any(|e| e["type"] == t && e["object"]["metadata"]["name"] == n)
        };
        if has("ADDED", "after-list") && has("DELETED", &gone) {
            break e;
        }
        assert!(
            Instant::now() < deadline,
            "resumed watch missed changes: {e:?}"
        );
    };
    // No pod listed before appears as ADDED; the new one is ADDED exactly once.
    for e in &first {
        let name = e["object"]["metadata"]["name"].as_str().unwrap_or("");
        if e["type"] == "ADDED" {
            assert!(
                !before.iter().any(|b| b == name),
                "listed pod {name} repeated as ADDED"
            );
        }
    }
    let added = first
        .iter()
        .filter(|e| e["type"] == "ADDED" && e["object"]["metadata"]["name"] == "after-list")
        .count();
    assert_eq!(added, 1, "{first:?}");
    // Every event carries the full map; resuming from the last one repeats nothing.
    let last = first.last().expect("events");
    let last_rv = last["object"]["metadata"]["resourceVersion"]
        .as_str()
        .expect("rv")
        .to_string();
    let again = events(&last_rv);
    for e in &again {
        assert!(
            !first
                .iter()
                .any(|f| f["object"]["metadata"]["resourceVersion"]
                    == e["object"]["metadata"]["resourceVersion"]
                    && f["type"] == e["type"]),
            "event repeated after resuming: {e}"
        );
    }

    // Watch-list (client-go's streaming list): initial ADDED events of every member,
    // then one bookmark marking their end, for a cached kind and a live one.
    for member in ["member1", "member2", "member3"] {
        up.ok(member, &["create", "serviceaccount", "robot"]);
    }
    for resource in ["pods", "serviceaccounts"] {
        let (code, out, err) = up.run(
            Path::new("kubectl"),
            "flotilla",
            &[
                "get",
                "--raw",
                &format!("{PREFIX}/api/v1/{resource}?watch=1&sendInitialEvents=true&resourceVersionMatch=NotOlderThan&allowWatchBookmarks=true&timeoutSeconds=3"),
            ],
        );
        assert_eq!(code, 0, "{err}");
        let events: Vec<Value> = out
            .lines()
            .map(|l| serde_json::from_str(l).expect("event"))
            .collect();
        let end = events
            .iter()
            .position(|e| {
                e["type"] == "BOOKMARK"
                    && e["object"]["metadata"]["annotations"]["k8s.io/initial-events-end"] == "true"
            })
            .unwrap_or_else(|| panic!("{resource}: no initial-events-end bookmark: {out}"));
        let initial: std::collections::BTreeSet<(String, String, String)> = events[..end]
            .iter()
            .filter(|e| e["type"] == "ADDED")
            .map(|e| {
                let m = &e["object"]["metadata"];
                let s = |v: &Value| v.as_str().unwrap_or("").to_string();
                (
                    s(&m["namespace"]),
                    s(&m["name"]),
                    s(&m["annotations"]["resource.karmada.io/cached-from-cluster"]),
                )
            })
            .collect();
        let listed: std::collections::BTreeSet<(String, String, String)> =
            keys(&up.ok("flotilla-all", &["get", resource, "-A", "-o", "json"]))
                .into_iter()
                .collect();
        assert_eq!(
            initial, listed,
            "{resource}: the initial events are the current state: {out}"
        );
        let clusters: std::collections::BTreeSet<&str> =
            initial.iter().map(|(_, _, c)| c.as_str()).collect();
        if resource == "serviceaccounts" {
            assert_eq!(clusters.len(), 3, "every member's robot account: {out}");
        }
    }

    // Bad and too-old resourceVersions are errors, never ignored.
    let (code, _, err) = up.run(
        Path::new("kubectl"),
        "flotilla",
        &[
            "get",
            "--raw",
            &format!("{PREFIX}/api/v1/pods?resourceVersion=12345"),
        ],
    );
    assert_ne!(code, 0);
    assert!(
        err.contains("BadRequest") && err.contains("invalid resourceVersion"),
        "{err}"
    );
    let too_old = {
        use base64::Engine;
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(br#"{"member1":"1"}"#)
    };
    let (code, _, err) = up.run(
        Path::new("kubectl"),
        "flotilla",
        &[
            "get",
            "--raw",
            &format!("{PREFIX}/api/v1/pods?watch=1&resourceVersion={too_old}&timeoutSeconds=2"),
        ],
    );
    assert_ne!(code, 0);
    assert!(err.contains("too old resource version"), "{err}");
    let (code, _, err) = up.run(
        Path::new("kubectl"),
        "flotilla",
        &[
            "get",
            "--raw",
            &format!("{PREFIX}/api/v1/pods?limit=1&continue=bogus"),
        ],
    );
    assert_ne!(code, 0);
    assert!(err.contains("invalid continue token"), "{err}");
}

#[test]
fn an_unreachable_member_is_reported_not_hidden() {
    let up = Up::start(3);
    let total = workloads(&up);
    up.wait_for(
        "flotilla-all",
        &["get", "pods", "-A", "-o", "name"],
        |out| out.lines().count() == total,
    );
    let member3: Vec<String> = member_pods(&up, "member3");
    let endpoint = up.ok(
        "flotilla",
        &[
            "get",
            "cluster",
            "member3",
            "-o",
            "jsonpath={.spec.apiEndpoint}",
        ],
    );
    // A watch open while member3 goes away keeps delivering the others' events.
    let mut w = up.spawn(
        Path::new("kubectl"),
        "flotilla-all",
        &["get", "pods", "-A", "-w", "--output-watch-events"],
    );
    w.wait_for("the initial list", |l| l.contains("web-"));
    // member3 unreachable: its Cluster now points at a closed port.
    up.ok(
        "flotilla",
        &[
            "patch",
            "cluster",
            "member3",
            "--type=merge",
            "-p",
            r#"{"spec":{"apiEndpoint":"https://127.0.0.1:1"}}"#,
        ],
    );
    for kubectl in kubectls() {
        let deadline = Instant::now() + Duration::from_secs(20);
        let (out, err) = loop {
            let (code, out, err) = up.run(&kubectl, "flotilla-all", &["get", "pods", "-A"]);
            assert_eq!(code, 0, "a partial answer is still an answer: {err}");
            if err.contains("member3") {
                break (out, err);
            }
            assert!(
                Instant::now() < deadline,
                "no warning about member3: {out}\n{err}"
            );
            std::thread::sleep(Duration::from_millis(200));
        };
        assert!(
            err.contains("Warning: cluster member3 is missing from this answer")
                && err.to_lowercase().contains("connection refused"),
            "{kubectl:?}: {err}"
        );
        let rows = out.lines().count() - 1;
        assert_eq!(
            rows,
            total - member3.len(),
            "member1 and member2 still answer: {out}"
        );
        assert!(
            out.contains(" member1 ") && out.contains(" member2 "),
            "{out}"
        );
    }
    up.ok(
        "member1",
        &["run", "while-member3-is-away", "--image=nginx"],
    );
    w.wait_for("a member1 pod created while member3 is away", |l| {
        l.starts_with("ADDED") && l.contains("while-member3-is-away")
    });
    drop(w);

    // Strict mode (request header): the missing cluster fails the request, named in
    // the Status causes.
    let host = up.dir.join("apiserver");
    let config = std::fs::read_to_string(up.kubeconfig()).expect("kubeconfig");
    let server = config
        .lines()
        .find_map(|l| l.trim().strip_prefix("server: "))
        .expect("server")
        .to_string();
    let (code, out, err) = run_bounded(
        Command::new("curl")
            .args([
                "-sS",
                "--max-time",
                "20",
                "-H",
                "X-Flotilla-Partial: strict",
            ])
            .arg("--cacert")
            .arg(host.join("ca.crt"))
            .arg("--cert")
            .arg(host.join("admin.crt"))
            .arg("--key")
            .arg(host.join("admin.key"))
            .arg(format!("{server}{PREFIX}/api/v1/pods")),
        None,
        Duration::from_secs(30),
    );
    assert_eq!(code, 0, "{err}");
    let status: Value = serde_json::from_str(&out).expect("Status");
    assert_eq!(status["code"], 503, "{out}");
    assert_eq!(status["details"]["causes"][0]["field"], "member3", "{out}");

    // member3 back: no warning, its pods again.
    up.ok(
        "flotilla",
        &[
            "patch",
            "cluster",
            "member3",
            "--type=merge",
            "-p",
            &format!(r#"{{"spec":{{"apiEndpoint":"{endpoint}"}}}}"#),
        ],
    );
    up.wait_for(
        "flotilla-all",
        &["get", "pods", "-A", "-o", "json"],
        |out| keys(out).iter().filter(|(_, _, c)| c == "member3").count() == member3.len(),
    );
    let (code, _, err) = up.run(Path::new("kubectl"), "flotilla-all", &["get", "pods", "-A"]);
    assert_eq!(code, 0, "{err}");
    assert!(!err.contains("Warning"), "{err}");

    // The default ResourceRegistry is served by the aggregated server.
    let registries = up.ok("flotilla", &["get", "resourceregistries"]);
    assert!(
        registries.lines().any(|l| l.starts_with("default ")),
        "{registries}"
    );
}

#[test]
fn names_in_several_clusters_and_writes_go_to_the_owner() {
    let up = Up::start(3);
    up.ok("member1", &["run", "dup", "--image=nginx"]);
    up.ok("member2", &["run", "dup", "--image=nginx"]);
    up.ok(
        "member3",
        &["run", "only3", "--image=nginx", "--labels=app=only"],
    );
    up.wait_for(
        "flotilla-all",
        &["get", "pods", "-A", "-o", "name"],
        |out| out.lines().count() == 3,
    );
    for kubectl in kubectls() {
        let (code, _, err) = up.run(&kubectl, "flotilla-all", &["get", "pod", "dup"]);
        assert_ne!(code, 0);
        assert!(
            err.contains("ambiguous objects in clusters [member1 member2]"),
            "{kubectl:?}: {err}"
        );
        let (code, out, err) = up.run(
            &kubectl,
            "flotilla-all",
            &["get", "pods", "--field-selector", "cluster=member2"],
        );
        assert_eq!(code, 0, "{err}");
        assert!(norm_spaces(&out).contains("dup member2"), "{out}");
        // get -w of one object through the prefix.
        let mut w = up.spawn(&kubectl, "flotilla-all", &["get", "pod", "only3", "-w"]);
        w.wait_for("only3", |l| l.contains("only3") && l.contains("member3"));
        drop(w);
    }
    // label and delete go to the one cluster holding the pod, as the caller.
    up.ok("flotilla-all", &["label", "pod", "only3", "tier=gold"]);
    let labels = up.ok(
        "member3",
        &[
            "get",
            "pod",
            "only3",
            "-o",
            "jsonpath={.metadata.labels.tier}",
        ],
    );
    assert_eq!(labels, "gold");
    up.ok("flotilla-all", &["delete", "pod", "only3", "--wait=false"]);
    up.wait_for("member3", &["get", "pods", "-o", "name"], |out| {
        !out.contains("only3")
    });
    // Creating through the unified view: 405 pointing elsewhere.
    let (code, _, err) = up.stdin(
        "flotilla-all",
        &["create", "-f", "-"],
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c, namespace: default}\n",
    );
    assert_ne!(code, 0);
    assert!(
        err.contains("MethodNotAllowed") && err.contains("does not know which cluster"),
        "{err}"
    );
    // pods/log is routed by name like any single-object request: ambiguous here.
    let (code, _, err) = up.run(Path::new("kubectl"), "flotilla-all", &["logs", "dup"]);
    assert_ne!(code, 0);
    assert!(err.contains("ambiguous objects"), "{err}");
}

#[test]
fn a_user_sees_only_what_each_member_lets_them_read() {
    let up = Up::start(3);
    for member in ["member1", "member2"] {
        up.ok(member, &["create", "namespace", "team-a"]);
        up.ok(
            member,
            &[
                "run",
                &format!("a-{member}"),
                "--image=nginx",
                "-n",
                "team-a",
            ],
        );
        up.ok(member, &["run", &format!("d-{member}"), "--image=nginx"]);
    }
    up.wait_for(
        "flotilla-all",
        &["get", "pods", "-A", "-o", "name"],
        |out| out.lines().count() == 4,
    );
    // On the host: alice may use the unified view (Karmada's proxying/proxy) and the cluster proxy.
    let host_rbac = "apiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRole\nmetadata: {name: search-proxy}\n\
        rules: [{apiGroups: [search.karmada.io], resources: [proxying/proxy], verbs: [get, list, watch]},\n\
                {apiGroups: [cluster.karmada.io], resources: [clusters/proxy], verbs: [get]}]\n---\n\
        apiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRoleBinding\nmetadata: {name: alice-search-proxy}\n\
        roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: search-proxy}\n\
        subjects: [{apiGroup: rbac.authorization.k8s.io, kind: User, name: alice}]\n";
    let (code, _, err) = up.stdin("flotilla", &["apply", "-f", "-"], host_rbac);
    assert_eq!(code, 0, "{err}");
    // On member1 only: view in team-a.
    up.ok(
        "member1",
        &[
            "create",
            "rolebinding",
            "alice-view",
            "--clusterrole=view",
            "--user=alice",
            "-n",
            "team-a",
        ],
    );

    for kubectl in kubectls() {
        let deadline = Instant::now() + Duration::from_secs(20);
        let out = loop {
            let (code, out, err) = up.run(
                &kubectl,
                "flotilla-all",
                &["--as=alice", "get", "pods", "-A", "-o", "json"],
            );
            assert_eq!(code, 0, "{kubectl:?}: {err}");
            if keys(&out).len() == 1 {
                break out;
            }
            assert!(Instant::now() < deadline, "alice saw {:?}", keys(&out));
            std::thread::sleep(Duration::from_millis(300));
        };
        assert_eq!(
            keys(&out),
            [(
                "team-a".to_string(),
                "a-member1".to_string(),
                "member1".to_string()
            )]
        );
        // Namespaces she may not read: 403 with no member's data.
        let (code, _, err) = up.run(
            &kubectl,
            "flotilla-all",
            &["--as=alice", "get", "pods", "-n", "default"],
        );
        assert_ne!(code, 0);
        assert!(
            err.contains("Forbidden") || err.contains("forbidden"),
            "{err}"
        );
        // Through the cluster proxy: member1's team-a is readable, anything else is 403.
        let proxy = "/apis/cluster.karmada.io/v1alpha1/clusters";
        let (code, out, err) = up.run(
            &kubectl,
            "flotilla",
            &[
                "--as=alice",
                "get",
                "--raw",
                &format!("{proxy}/member1/proxy/api/v1/namespaces/team-a/pods"),
            ],
        );
        assert_eq!(code, 0, "{err}");
        assert!(out.contains("a-member1"), "{out}");
        for path in [
            "member1/proxy/api/v1/namespaces/default/pods",
            "member2/proxy/api/v1/namespaces/team-a/pods",
        ] {
            let (code, _, err) = up.run(
                &kubectl,
                "flotilla",
                &["--as=alice", "get", "--raw", &format!("{proxy}/{path}")],
            );
            assert_ne!(code, 0, "{path}");
            assert!(
                err.contains("Forbidden") || err.contains("forbidden"),
                "{path}: {err}"
            );
        }
    }
}

const GADGET_CRD: &str = r#"apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: {name: gadgets.example.flotilla.io}
spec:
  group: example.flotilla.io
  names: {kind: Gadget, plural: gadgets, singular: gadget, listKind: GadgetList}
  scope: Namespaced
  versions:
    - name: v1
      served: true
      storage: true
      schema:
        openAPIV3Schema:
          type: object
          properties:
            spec:
              type: object
              properties:
                color: {type: string}
                size: {type: integer}
      additionalPrinterColumns:
        - {name: Color, type: string, jsonPath: .spec.color}
        - {name: Size, type: integer, jsonPath: .spec.size, priority: 1}
        - {name: Age, type: date, jsonPath: .metadata.creationTimestamp}
"#;

#[test]
fn custom_kinds_print_their_crd_columns() {
    let up = Up::start(2);
    for (member, color) in [("member1", "red"), ("member2", "blue")] {
        let (code, out, err) = up.stdin(member, &["apply", "-f", "-"], GADGET_CRD);
        assert_eq!(code, 0, "{member}: {out}{err}");
        up.wait_for(
            member,
            &["get", "crd", "gadgets.example.flotilla.io"],
            |o| o.contains("gadgets"),
        );
        let gadget = format!(
            "apiVersion: example.flotilla.io/v1\nkind: Gadget\nmetadata: {{name: g-{member}, namespace: default}}\nspec: {{color: {color}, size: 3}}\n"
        );
        let (code, out, err) = up.stdin(member, &["apply", "-f", "-"], &gadget);
        assert_eq!(code, 0, "{member}: {out}{err}");
    }
    for kubectl in kubectls() {
        let out = up.wait_for("flotilla-all", &["get", "gadgets"], |o| {
            o.contains("g-member1") && o.contains("g-member2")
        });
        let lines: Vec<String> = out.lines().map(norm_spaces).collect();
        assert!(
            lines[0].starts_with("NAME CLUSTER COLOR AGE"),
            "{kubectl:?}: {out}"
        );
        assert!(
            lines
                .iter()
                .any(|l| l.starts_with("g-member1 member1 red ")),
            "{out}"
        );
        assert!(
            lines
                .iter()
                .any(|l| l.starts_with("g-member2 member2 blue ")),
            "{out}"
        );
        // priority 1 columns appear with -o wide
        let (code, out, err) = up.run(&kubectl, "flotilla-all", &["get", "gadgets", "-o", "wide"]);
        assert_eq!(code, 0, "{err}");
        assert!(
            norm_spaces(out.lines().next().unwrap_or(""))
                .starts_with("NAME CLUSTER COLOR SIZE AGE"),
            "{kubectl:?}: {out}"
        );
    }
}

#[test]
fn the_legacy_search_cache_path_reads_like_the_proxy() {
    let up = Up::start(3);
    let total = workloads(&up);
    let cache = "/apis/search.karmada.io/v1alpha1/search/cache";
    // Through the control plane's APIService, as Karmada users call it.
    let out = up.wait_for(
        "flotilla",
        &["get", "--raw", &format!("{cache}/api/v1/pods")],
        |out| {
            serde_json::from_str::<Value>(out)
                .ok()
                .and_then(|v| v["items"].as_array().map(Vec::len))
                == Some(total)
        },
    );
    let list: Value = serde_json::from_str(&out).expect("json");
    assert_eq!(list["kind"], "PodList");
    for item in list["items"].as_array().expect("items") {
        let cluster = item["metadata"]["annotations"]["resource.karmada.io/cached-from-cluster"]
            .as_str()
            .unwrap_or("");
        assert!(cluster.starts_with("member"), "{item}");
    }
    // One namespace, and a single object.
    let name = list["items"][0]["metadata"]["name"]
        .as_str()
        .expect("a pod name")
        .to_string();
    let ns = list["items"][0]["metadata"]["namespace"]
        .as_str()
        .expect("a namespace")
        .to_string();
    let one = up.ok(
        "flotilla",
        &[
            "get",
            "--raw",
            &format!("{cache}/api/v1/namespaces/{ns}/pods/{name}"),
        ],
    );
    assert!(one.contains(&format!("\"name\":\"{name}\"")), "{one}");
    // It is read-only.
    let (code, out, err) = up.stdin(
        "flotilla",
        &[
            "create",
            "--raw",
            &format!("{cache}/api/v1/namespaces/default/configmaps"),
            "-f",
            "-",
        ],
        r#"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"x"}}"#,
    );
    assert_ne!(code, 0, "{out}");
    assert!(
        err.contains("read-only") || err.contains("MethodNotAllowed"),
        "{err}"
    );
}
