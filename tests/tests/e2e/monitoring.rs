//! Monitoring end to end: `flotilla up --metrics` with three members, every
//! component's `/metrics` checked by `promtool check metrics`, then a real
//! Prometheus (Debian's, installed by `scripts/install-prometheus` when
//! missing) scraping the configuration `flotilla up` wrote, and its HTTP API
//! asked whether every target is up and whether the key series exist and
//! move. `flotilla status` is checked against the same control plane.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use flotilla_tests::run;
use flotilla_tests::up::{Proc, Up, wait_for};
use serde_json::Value;

/// The components `flotilla up` wrote to DIR/components.json.
fn components(dir: &Path) -> Vec<Value> {
    let text = std::fs::read(dir.join("components.json")).expect("components.json");
    serde_json::from_slice::<Vec<Value>>(&text).expect("valid components.json")
}

fn field<'a>(c: &'a Value, name: &str) -> &'a str {
    c[name].as_str().unwrap_or_default()
}

/// Makes sure prometheus, promtool and curl are on the machine.
fn ensure_prometheus() {
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../scripts/install-prometheus");
    let (code, out, err) = run(&mut Command::new(script));
    assert_eq!(code, 0, "installing Prometheus failed: {out}{err}");
}

/// curl with `args`; stdout.
fn curl(args: &[&str]) -> String {
    let (code, out, err) = run(Command::new("curl")
        .args(["-sS", "--fail", "--max-time", "10"])
        .args(args)
        .env_remove("HTTPS_PROXY")
        .env_remove("HTTP_PROXY")
        .env_remove("https_proxy")
        .env_remove("http_proxy"));
    assert_eq!(code, 0, "curl {args:?} failed: {err}");
    out
}

/// One component's metrics, fetched with the credentials Prometheus uses.
fn scrape(dir: &Path, c: &Value) -> String {
    let name = field(c, "name");
    let url = format!("{}://{}/metrics", field(c, "scheme"), field(c, "address"));
    let p = |f: String| dir.join("prometheus").join(f).display().to_string();
    match name {
        "apiserver" | "aggregated-apiserver" => curl(&[
            "--cacert",
            &p(format!("{name}-ca.crt")),
            "--cert",
            &p(format!("{name}-client.crt")),
            "--key",
            &p(format!("{name}-client.key")),
            &url,
        ]),
        "webhook" => curl(&["--cacert", &p("webhook-ca.crt".into()), &url]),
        _ => curl(&[&url]),
    }
}

/// `promtool check metrics` on `text`: (exit code, what it said).
fn promtool(text: &str) -> (i32, String) {
    use std::io::Write;
    let mut child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("promtool runs");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(text.as_bytes())
        .expect("write metrics");
    let out = child.wait_with_output().expect("promtool output");
    (
        out.status.code().unwrap_or(-1),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// An instant query's single value, if the result has one series.
fn query(prom: &str, q: &str) -> Option<f64> {
    let out = curl(&[
        &format!("{prom}/api/v1/query"),
        "--data-urlencode",
        &format!("query={q}"),
    ]);
    let v: Value = serde_json::from_str(&out).ok()?;
    let result = v["data"]["result"].as_array()?;
    let first = result.first()?;
    first["value"][1].as_str()?.parse().ok()
}

const WORKLOAD: &str = r#"apiVersion: apps/v1
kind: Deployment
metadata: {name: watched, namespace: default}
spec:
  replicas: 2
  selector: {matchLabels: {app: watched}}
  template:
    metadata: {labels: {app: watched}}
    spec:
      containers: [{name: c, image: nginx}]
---
apiVersion: policy.karmada.io/v1alpha1
kind: PropagationPolicy
metadata: {name: watched, namespace: default}
spec:
  resourceSelectors: [{apiVersion: apps/v1, kind: Deployment, name: watched}]
  placement:
    clusterAffinity: {clusterNames: [member1, member2]}
"#;

#[test]
fn prometheus_scrapes_every_component() {
    ensure_prometheus();
    let mut up = Up::start_with(3, &["--metrics"]);
    let out = up
        .proc
        .as_mut()
        .expect("running")
        .wait_stdout("Press Ctrl-C", Duration::from_secs(30));
    for name in [
        "apiserver",
        "aggregated-apiserver",
        "webhook",
        "controller-manager",
    ] {
        assert!(
            out.lines()
                .any(|l| l.trim_start().starts_with(name) && l.ends_with("/metrics")),
            "`flotilla up --metrics` prints the {name} target:\n{out}"
        );
    }
    assert!(out.contains("prometheus --config.file="), "{out}");

    // The detector's queue, settled before the propagation: its first list
    // of every template kind has been worked off and nothing waits.
    let manager = components(&up.dir)
        .into_iter()
        .find(|c| field(c, "name") == "controller-manager")
        .expect("the controller-manager target");
    let detector_adds = r#"workqueue_adds_total{controller="detector",name="detector"}"#;
    let detector_depth = r#"workqueue_depth{controller="detector",name="detector"}"#;
    let mut last = None;
    let settled = wait_for(
        Duration::from_secs(60),
        "the detector's queue settled",
        || {
            let text = scrape(&up.dir, &manager);
            let adds = sample(&text, detector_adds);
            let depth = sample(&text, detector_depth);
            let previous = std::mem::replace(&mut last, adds);
            match (adds, depth) {
                (Some(a), Some(0.0)) if a >= 1.0 && previous == Some(a) => Ok(a),
                _ => Err(format!(
                    "adds {adds:?} (before {previous:?}), depth {depth:?}"
                )),
            }
        },
    );

    // A propagation, so that the controllers' series have something to count.
    let manifest = up.dir.join("watched.yaml");
    std::fs::write(&manifest, WORKLOAD).expect("write manifest");
    up.k_ok(&["apply", "-f", &manifest.display().to_string()]);
    wait_for(Duration::from_secs(60), "the Deployment in member1", || {
        let (code, _, err) = up.k(&["--context", "member1", "get", "deploy", "watched"]);
        if code == 0 { Ok(()) } else { Err(err) }
    });
    // A unified list, for the aggregated server's series.
    wait_for(Duration::from_secs(60), "a unified list of pods", || {
        let (code, out, err) = up.k(&["--context", "flotilla-all", "get", "pods", "-A"]);
        if code == 0 && out.contains("watched") {
            Ok(())
        } else {
            Err(format!("{out}{err}"))
        }
    });

    // Every component's output passes promtool's checks, with HELP text.
    let components = components(&up.dir);
    assert_eq!(components.len(), 4, "{components:?}");
    for c in &components {
        let text = scrape(&up.dir, c);
        assert!(
            text.contains("# HELP "),
            "{} serves Prometheus text:\n{text}",
            field(c, "name")
        );
        let docs = std::fs::read_to_string(
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../docs/monitoring.md"),
        )
        .expect("docs/monitoring.md");
        for family in text.lines().filter_map(|l| l.strip_prefix("# HELP ")) {
            let name = family.split(' ').next().unwrap_or_default();
            assert!(
                docs.contains(&format!("`{name}`")),
                "docs/monitoring.md lists {name} (served by {})",
                field(c, "name")
            );
        }
        let (code, said) = promtool(&text);
        assert_eq!(
            code,
            0,
            "promtool check metrics on {}: {said}",
            field(c, "name")
        );
    }

    // The Deployment went through the detector's queue: an add, taken and
    // worked off again.
    wait_for(
        Duration::from_secs(30),
        "the detector's queue moved by the propagation",
        || {
            let text = scrape(&up.dir, &manager);
            match (sample(&text, detector_adds), sample(&text, detector_depth)) {
                (Some(a), Some(0.0)) if a > settled => Ok(()),
                other => Err(format!("settled at {settled}, now {other:?}\n{text}")),
            }
        },
    );

    // A real Prometheus on loopback, scraping every second.
    let config_dir = up.dir.join("prometheus");
    let config = std::fs::read_to_string(config_dir.join("prometheus.yml")).expect("config");
    assert!(config.contains("scrape_interval: 5s"), "{config}");
    let fast = config_dir.join("prometheus-test.yml");
    std::fs::write(
        &fast,
        config.replace("scrape_interval: 5s", "scrape_interval: 1s"),
    )
    .expect("write config");
    let port = free_port();
    let prom = format!("http://127.0.0.1:{port}");
    let _prometheus = Proc::spawn(
        "prometheus",
        Command::new("prometheus")
            .arg(format!("--config.file={}", fast.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                up.dir.join("prometheus-data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}")),
        &up.logs(),
    );
    wait_for(Duration::from_secs(90), "every target up", || {
        let Ok(text) = std::panic::catch_unwind(|| curl(&[&format!("{prom}/api/v1/targets")]))
        else {
            return Err("Prometheus not answering yet".into());
        };
        let v: Value = serde_json::from_str(&text).map_err(|e| e.to_string())?;
        let targets = v["data"]["activeTargets"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        let up_jobs: Vec<&str> = targets
            .iter()
            .filter(|t| t["health"] == "up")
            .filter_map(|t| t["labels"]["component"].as_str())
            .collect();
        if targets.len() == 4 && up_jobs.len() == 4 {
            Ok(())
        } else {
            Err(format!("targets: {text}"))
        }
    });

    // Key series exist and move.
    let series = |q: &str| query(&prom, q);
    wait_for(
        Duration::from_secs(30),
        "three clusters ready",
        || match series("sum(cluster_ready_state)") {
            Some(3.0) => Ok(()),
            other => Err(format!("{other:?}")),
        },
    );
    for (q, what) in [
        (
            r#"sum(karmada_scheduler_schedule_attempts_total{result="scheduled"})"#,
            "a binding scheduled",
        ),
        (
            r#"sum(create_resource_to_cluster_total{result="success",kind="Deployment"})"#,
            "the Deployment created in its two members",
        ),
        (
            r#"sum(webhook_admission_requests_total{kind="PropagationPolicy"})"#,
            "the policy admitted by the webhook",
        ),
        ("sum(flotilla_unified_list_total)", "a unified list"),
        (
            r#"sum(apiserver_storage_objects{resource="deployments.apps"})"#,
            "Deployments stored",
        ),
    ] {
        wait_for(Duration::from_secs(30), what, || match series(q) {
            Some(n) if n >= 1.0 => Ok(()),
            other => Err(format!("{q} = {other:?}")),
        });
    }
    // Every controller `flotilla up` runs serves its work queue (the
    // applicationFailover controller idles with the Failover gate off).
    for name in [
        "cluster",
        "clusterStatus",
        "namespace",
        "detector",
        "scheduler",
        "binding",
        "execution",
        "workStatus",
        "bindingStatus",
        "dependencies",
        "clusterTaintPolicy",
        "gracefulEviction",
        "federatedHorizontalPodAutoscaler",
        "cronFederatedHorizontalPodAutoscaler",
        "hpaScaleTargetMarker",
        "deploymentReplicasSyncer",
        "serviceExport",
        "endpointsliceCollect",
        "serviceImport",
        "endpointsliceDispatch",
        "multiclusterservice",
    ] {
        let q = format!(r#"count(workqueue_depth{{name="{name}",controller="{name}"}})"#);
        wait_for(
            Duration::from_secs(30),
            &format!("{name}'s queue"),
            || match series(&q) {
                Some(1.0) => Ok(()),
                other => Err(format!("{q} = {other:?}")),
            },
        );
    }
    for (q, what) in [
        (
            r#"sum(workqueue_adds_total{name="execution"})"#,
            "Works added to the execution queue",
        ),
        (
            r#"sum(workqueue_queue_duration_seconds_count{name="scheduler"})"#,
            "bindings taken from the scheduler's queue",
        ),
        (
            r#"sum(workqueue_work_duration_seconds_count{name="binding"})"#,
            "bindings worked by the binding controller",
        ),
    ] {
        wait_for(Duration::from_secs(30), what, || match series(q) {
            Some(n) if n >= 1.0 => Ok(()),
            other => Err(format!("{q} = {other:?}")),
        });
    }
    let requests = r#"sum(apiserver_request_total{component="apiserver"})"#;
    let before = wait_for(Duration::from_secs(30), "requests counted", || {
        series(requests).ok_or_else(|| "no series".to_string())
    });
    for _ in 0..5 {
        up.k_ok(&["get", "deploy", "-A"]);
    }
    wait_for(
        Duration::from_secs(30),
        "the request counter moves",
        || match series(requests) {
            Some(after) if after >= before + 5.0 => Ok(()),
            other => Err(format!("before {before}, now {other:?}")),
        },
    );

    // Every query of the shipped Grafana dashboard is valid PromQL.
    let dashboard: Value = serde_json::from_slice(
        &std::fs::read(
            PathBuf::from(env!("CARGO_MANIFEST_DIR"))
                .join("../deploy/monitoring/grafana-dashboard.json"),
        )
        .expect("dashboard"),
    )
    .expect("dashboard JSON");
    let exprs: Vec<String> = dashboard["panels"]
        .as_array()
        .expect("panels")
        .iter()
        .flat_map(|p| p["targets"].as_array().cloned().unwrap_or_default())
        .filter_map(|t| t["expr"].as_str().map(str::to_string))
        .collect();
    assert!(exprs.len() > 30, "{exprs:?}");
    for expr in &exprs {
        let out = curl(&[
            &format!("{prom}/api/v1/query"),
            "--data-urlencode",
            &format!("query={expr}"),
        ]);
        let v: Value = serde_json::from_str(&out).expect("query answer");
        assert_eq!(v["status"], "success", "dashboard query {expr}: {out}");
    }

    // `flotilla status` sums up the same control plane.
    let (code, out, err) = run(Command::new(flotilla_tests::flotilla_bin())
        .arg("status")
        .arg("--dir")
        .arg(&up.dir)
        .env_remove("HTTPS_PROXY")
        .env_remove("HTTP_PROXY"));
    assert_eq!(code, 0, "flotilla status: {out}{err}");
    for line in [
        "Clusters: 3/3 Ready",
        "Bindings: 1 (1 scheduled, 0 failed to schedule)",
        "Works: 2 (2 applied, 0 failed)",
    ] {
        assert!(out.contains(line), "status shows {line:?}:\n{out}");
    }
    assert_eq!(
        out.lines()
            .filter(|l| l.trim_end().ends_with(" up"))
            .count(),
        4,
        "every component up:\n{out}"
    );
}

#[test]
fn status_names_a_missing_control_plane() {
    let tmp = tempfile::tempdir().expect("tmp");
    let (code, out, err) = run(Command::new(flotilla_tests::flotilla_bin())
        .arg("status")
        .arg("--dir")
        .arg(tmp.path()));
    assert_ne!(code, 0, "{out}");
    assert!(
        err.contains("components.json") && err.contains("flotilla up --dir"),
        "the error names the missing file and the fix: {err}"
    );
}

/// A sample's value from Prometheus text (`name{labels} value`), if present.
fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find(|l| l.starts_with(series) && l[series.len()..].starts_with(' '))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

#[test]
fn a_namespace_scoped_registry_caches_only_its_namespaces() {
    let mut up = Up::start_with(2, &["--metrics"]);
    up.proc
        .as_mut()
        .expect("running")
        .wait_stdout("Press Ctrl-C", Duration::from_secs(30));
    for ns in ["team-a", "team-b"] {
        up.k_ok(&["--context", "member1", "create", "namespace", ns]);
        up.k_ok(&[
            "--context",
            "member1",
            "-n",
            ns,
            "create",
            "secret",
            "generic",
            &format!("{ns}-token"),
            "--from-literal=k=v",
        ]);
    }
    up.apply(
        "team-a-secrets",
        "apiVersion: search.karmada.io/v1alpha1\nkind: ResourceRegistry\nmetadata: {name: team-a-secrets}\nspec:\n  targetCluster: {clusterNames: [member1]}\n  resourceSelectors: [{apiVersion: v1, kind: Secret, namespace: team-a}]\n",
    );
    let aggregated = components(&up.dir)
        .into_iter()
        .find(|c| field(c, "name") == "aggregated-apiserver")
        .expect("aggregated-apiserver in components.json");
    let series = r#"flotilla_unified_cache_objects{cluster="member1",resource="secrets"}"#;
    let in_team_a = up
        .k_ok(&[
            "--context",
            "member1",
            "-n",
            "team-a",
            "get",
            "secrets",
            "-o",
            "name",
        ])
        .lines()
        .count();
    wait_for(Duration::from_secs(60), "the team-a cache filled", || {
        let text = scrape(&up.dir, &aggregated);
        match sample(&text, series) {
            Some(n) if n as usize == in_team_a => Ok(()),
            other => Err(format!("{series} = {other:?}, want {in_team_a}")),
        }
    });
    let parts = |text: &str, source: &str| {
        sample(
            text,
            &format!(r#"flotilla_unified_member_lists_total{{source="{source}"}}"#),
        )
        .unwrap_or(0.0)
    };
    // team-a is answered from the cache, team-b and all namespaces live, and
    // every answer is complete.
    let before = scrape(&up.dir, &aggregated);
    let a = up.k_ok(&[
        "--context",
        "flotilla-all",
        "-n",
        "team-a",
        "get",
        "secrets",
    ]);
    assert!(
        a.contains("team-a-token") && !a.contains("team-b-token"),
        "{a}"
    );
    let mid = scrape(&up.dir, &aggregated);
    assert!(
        parts(&mid, "cache") > parts(&before, "cache"),
        "team-a from the cache"
    );
    let b = up.k_ok(&[
        "--context",
        "flotilla-all",
        "-n",
        "team-b",
        "get",
        "secrets",
    ]);
    assert!(b.contains("team-b-token"), "{b}");
    let all = up.k_ok(&["--context", "flotilla-all", "get", "secrets", "-A"]);
    assert!(
        all.contains("team-a-token") && all.contains("team-b-token"),
        "{all}"
    );
    let after = scrape(&up.dir, &aggregated);
    assert!(
        parts(&after, "live") > parts(&mid, "live"),
        "team-b and -A live"
    );
    assert_eq!(sample(&after, series).map(|n| n as usize), Some(in_team_a));
}
