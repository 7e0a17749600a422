//! End-to-end tests of failover (issue 15, "Acceptance"): `flotilla up` with
//! two simulated members plus a third, `member3`, run as its own `flotilla
//! sim --storage redb` and joined with `flotilla join`, so the test can cut
//! it off (kill it: its port refuses connections) and bring it back at the
//! same address with its objects intact.
//!
//! - failover on (`--feature-gates=Failover=true
//!   --enable-no-execute-taint-eviction`) and a ClusterTaintPolicy adding a
//!   NoExecute taint on Ready=False: member3's replicas move to member1 and
//!   member2 while at least the desired replicas keep running, and member3's
//!   copy is removed when it comes back (purge mode Gracefully);
//! - failover off (the default), same policy: the assignment stays and the
//!   template's status shows the degraded member;
//! - 20 rounds of SIGKILL of `flotilla up` during propagation and failover:
//!   after each restart everything converges, with no orphan and nothing lost.
//!
//! Everything is driven with kubectl and the `flotilla` CLI; every wait is
//! bounded and every process is killed by PID when its guard drops.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use flotilla_tests::run;
use flotilla_tests::sim::Sim;
use flotilla_tests::up::{Up, WAIT, wait_for};
use rand::Rng;
use serde_json::Value;

/// Failover on, as Karmada switches it on, and NoExecute allowed in
/// ClusterTaintPolicies (Karmada's webhook flag).
const FAILOVER_ON: [&str; 3] = [
    "--feature-gates=Failover=true",
    "--enable-no-execute-taint-eviction=true",
    "--allow-no-execute-taint-policy",
];

/// Karmada's documented example: NoExecute while Ready is False or Unknown,
/// removed when Ready is True again.
const TAINT_POLICY: &str = r#"apiVersion: policy.karmada.io/v1alpha1
kind: ClusterTaintPolicy
metadata: {name: evict-unhealthy}
spec:
  addOnConditions:
    - {conditionType: Ready, operator: In, statusValues: ["False", "Unknown"]}
  removeOnConditions:
    - {conditionType: Ready, operator: In, statusValues: ["True"]}
  taints:
    - {key: cluster.karmada.io/not-ready, effect: NoExecute}
"#;

const NO_EXECUTE_KEY: &str = "cluster.karmada.io/not-ready";

fn apply(up: &Up, name: &str, yaml: &str) -> String {
    up.apply(name, yaml)
}

fn deployment(name: &str, replicas: i64) -> String {
    format!(
        r#"apiVersion: apps/v1
kind: Deployment
metadata:
  name: {name}
  labels: {{app: {name}, fleet: "yes"}}
spec:
  replicas: {replicas}
  selector:
    matchLabels: {{app: {name}}}
  template:
    metadata:
      labels: {{app: {name}}}
    spec:
      containers:
        - name: main
          image: registry.example/team/{name}:1.0
"#
    )
}

/// Divided 1:1:1 over member1..3 by static weights.
fn policy(name: &str, selector: &str, purge_mode: &str) -> String {
    format!(
        r#"apiVersion: policy.karmada.io/v1alpha1
kind: PropagationPolicy
metadata: {{name: {name}}}
spec:
  resourceSelectors:
    - {{apiVersion: apps/v1, kind: Deployment, {selector}}}
  failover:
    cluster: {{purgeMode: {purge_mode}}}
  placement:
    clusterAffinity:
      clusterNames: [member1, member2, member3]
    replicaScheduling:
      replicaSchedulingType: Divided
      replicaDivisionPreference: Weighted
      weightPreference:
        staticWeightList:
          - targetCluster: {{clusterNames: [member1]}}
            weight: 1
          - targetCluster: {{clusterNames: [member2]}}
            weight: 1
          - targetCluster: {{clusterNames: [member3]}}
            weight: 1
"#
    )
}

fn json(out: &str) -> Result<Value, String> {
    serde_json::from_str(out).map_err(|e| format!("{e}: {out}"))
}

fn get(up: &Up, context: &str, args: &[&str]) -> Result<Option<Value>, String> {
    up.get_json(context, args)
}

/// The same on the sim member3, through its own kubeconfig.
fn get_sim(up: &Up, sim: &Sim, args: &[&str]) -> Result<Option<Value>, String> {
    let mut full = vec!["get"];
    full.extend_from_slice(args);
    full.extend_from_slice(&["-o", "json"]);
    let (code, out, err) = run(sim.kubectl(up).args(&full));
    if code != 0 {
        return if err.contains("NotFound") || err.contains("not found") {
            Ok(None)
        } else {
            Err(err)
        };
    }
    json(&out).map(Some)
}

fn int(v: &Value, p: &str) -> i64 {
    v.pointer(p).and_then(Value::as_i64).unwrap_or(0)
}

/// `(spec.replicas, status.readyReplicas)` of a Deployment, if present.
fn replicas_ready(d: &Option<Value>) -> Option<(i64, i64)> {
    d.as_ref()
        .map(|d| (int(d, "/spec/replicas"), int(d, "/status/readyReplicas")))
}

/// The ResourceBinding of Deployment `name`.
fn binding(up: &Up, name: &str) -> Result<Value, String> {
    get(up, "flotilla", &["rb", &format!("{name}-deployment")])?
        .ok_or_else(|| "no binding".to_string())
}

/// `spec.clusters` of a binding as `name → replicas`.
fn assignment(b: &Value) -> BTreeMap<String, i64> {
    b.pointer("/spec/clusters")
        .and_then(Value::as_array)
        .map(|cs| {
            cs.iter()
                .map(|c| {
                    (
                        c["name"].as_str().unwrap_or_default().to_string(),
                        int(c, "/replicas"),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

/// The Work of Deployment `web` in `cluster`'s execution namespace.
fn web_work(up: &Up, cluster: &str) -> Result<Option<Value>, String> {
    let ns = format!("karmada-es-{cluster}");
    let list = get(up, "flotilla", &["work", "-n", &ns])?.ok_or("no work list")?;
    Ok(list["items"].as_array().and_then(|ws| {
        ws.iter()
            .find(|w| {
                w.pointer("/spec/workload/manifests/0/metadata/name") == Some(&Value::from("web"))
            })
            .cloned()
    }))
}

/// Live (not deleting) Deployment Works across all execution namespaces.
fn live_deployment_works(works: &Value) -> usize {
    works["items"]
        .as_array()
        .map(|ws| {
            ws.iter()
                .filter(|w| {
                    w.pointer("/metadata/deletionTimestamp").is_none()
                        && w.pointer("/spec/workload/manifests/0/kind")
                            == Some(&Value::from("Deployment"))
                })
                .count()
        })
        .unwrap_or(0)
}

fn eviction_tasks(b: &Value) -> Vec<Value> {
    b.pointer("/spec/gracefulEvictionTasks")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default()
}

fn has_taint(c: &Value, key: &str, effect: &str) -> bool {
    c.pointer("/spec/taints")
        .and_then(Value::as_array)
        .is_some_and(|ts| ts.iter().any(|t| t["key"] == key && t["effect"] == effect))
}

fn ready_status(c: &Value) -> String {
    c.pointer("/status/conditions")
        .and_then(Value::as_array)
        .and_then(|cs| cs.iter().find(|c| c["type"] == "Ready"))
        .and_then(|c| c["status"].as_str())
        .unwrap_or("")
        .to_string()
}

/// The failover lines of `flotilla up`'s log, for failure messages.
fn failover_log(up: &Up) -> String {
    let err = up.proc.as_ref().map(|p| p.err()).unwrap_or_default();
    err.lines()
        .filter(|l| {
            [
                "evict",
                "graceful",
                "scheduled",
                "taint",
                "deleting work",
                "Ready",
            ]
            .iter()
            .any(|k| l.contains(k))
        })
        .map(|l| l.chars().take(1500).collect::<String>())
        .collect::<Vec<_>>()
        .join("\n")
}

/// Starts `flotilla up --members 2` with `extra`, joins a durable `member3`
/// sim and waits until the three are Ready.
fn three_members(extra: &[&str]) -> (Up, Sim) {
    let up = Up::start_with(2, extra);
    let base = up.dir.parent().expect("tmp").to_path_buf();
    let sim = Sim::start_with("member3", &base, true);
    sim.join(&up);
    up.wait_cluster("member3", WAIT, "Ready after join", |c| {
        ready_status(c) == "True"
    });
    (up, sim)
}

/// Deployment `web` (6 replicas) spread 2/2/2 and running everywhere.
fn spread_web(up: &Up, sim: &Sim, purge_mode: &str) {
    apply(up, "taint-policy", TAINT_POLICY);
    apply(
        up,
        "web",
        &format!(
            "{}---\n{}",
            deployment("web", 6),
            policy("web", "name: web", purge_mode)
        ),
    );
    wait_for(WAIT, "web 2/2/2, all ready", || {
        let got = (
            replicas_ready(&get(up, "member1", &["deploy", "web"])?),
            replicas_ready(&get(up, "member2", &["deploy", "web"])?),
            replicas_ready(&get_sim(up, sim, &["deploy", "web"])?),
        );
        if got == (Some((2, 2)), Some((2, 2)), Some((2, 2))) {
            Ok(())
        } else {
            Err(format!("{got:?}"))
        }
    });
}

/// Cluster failover, graceful: member3 cut off → NoExecute taint from the
/// ClusterTaintPolicy → the taint manager evicts the binding from member3
/// with a graceful eviction task → the scheduler gives member1 and member2
/// three replicas each → once they run, the task ends and member3's Work is
/// deleted; member3's Deployment goes when member3 is back. Never fewer than
/// six replicas are running or kept: the ready replicas of member1 and
/// member2 plus member3's two while its Work is kept (once member3's Work is
/// seen gone, member1 and member2 must run all six).
#[test]
fn cluster_failover_moves_replicas_and_cleans_up_when_the_member_returns() {
    let (up, mut sim) = three_members(&FAILOVER_ON);
    spread_web(&up, &sim, "Gracefully");

    let cut = Instant::now();
    sim.kill();
    let mut marks: BTreeMap<&str, Duration> = BTreeMap::new();
    let mut lowest = i64::MAX;
    wait_for(
        Duration::from_secs(60),
        "member3's replicas on member1 and member2, eviction done",
        || {
            let c3 = up.cluster("member3")?;
            if ready_status(&c3) != "True" {
                marks.entry("Ready=False").or_insert(cut.elapsed());
            }
            if has_taint(&c3, NO_EXECUTE_KEY, "NoExecute") {
                marks.entry("NoExecute taint").or_insert(cut.elapsed());
            }
            let b = binding(&up, "web")?;
            let tasks = eviction_tasks(&b);
            if !tasks.is_empty() {
                marks.entry("eviction task").or_insert(cut.elapsed());
            }
            let a = assignment(&b);
            // member3's Work first: ready counts only grow during the move, so
            // reading the members after it never understates them
            let work3_live = web_work(&up, "member3")?
                .is_some_and(|w| w.pointer("/metadata/deletionTimestamp").is_none());
            let m1 = replicas_ready(&get(&up, "member1", &["deploy", "web"])?).unwrap_or((0, 0));
            let m2 = replicas_ready(&get(&up, "member2", &["deploy", "web"])?).unwrap_or((0, 0));
            // member3's two keep running there while its Work is kept
            let kept3 = if work3_live { 2 } else { 0 };
            let total = m1.1 + m2.1 + kept3;
            lowest = lowest.min(total);
            assert!(
                total >= 6,
                "fewer than 6 replicas: m1={m1:?} m2={m2:?} member3 kept={kept3} assignment={a:?} tasks={tasks:?}\n{}",
                failover_log(&up)
            );
            if m1 == (3, 3) && m2 == (3, 3) {
                marks.entry("3+3 ready").or_insert(cut.elapsed());
            }
            let done = a == BTreeMap::from([("member1".into(), 3), ("member2".into(), 3)])
                && tasks.is_empty()
                && m1 == (3, 3)
                && m2 == (3, 3)
                && !work3_live;
            if done {
                marks.entry("eviction done").or_insert(cut.elapsed());
                Ok(())
            } else {
                Err(format!(
                    "m1={m1:?} m2={m2:?} assignment={a:?} tasks={} work3 live={work3_live}",
                    tasks.len()
                ))
            }
        },
    );
    assert!(lowest >= 6, "never fewer than 6 replicas: lowest {lowest}");
    for (what, at) in &marks {
        eprintln!("failover: {what} after {:.1}s", at.as_secs_f64());
    }
    for step in ["Ready=False", "eviction done"] {
        assert!(marks.contains_key(step), "{step} observed: {marks:?}");
    }
    // the taint manager says what it did, on the template
    let events = up.k_ok(&["get", "events", "-o", "json"]);
    let events = json(&events).expect("events");
    let evicted = events["items"].as_array().is_some_and(|items| {
        items.iter().any(|e| {
            e["reason"] == "EvictWorkloadFromClusterSucceed"
                && e.pointer("/involvedObject/name") == Some(&Value::from("web"))
                && e["message"].as_str().is_some_and(|m| m.contains("member3"))
        })
    });
    assert!(evicted, "an eviction event on web: {events}");
    // the template counts what is known to run: member1 and member2
    wait_for(WAIT, "template status 6/6 from member1 and member2", || {
        let d = get(&up, "flotilla", &["deploy", "web"])?.ok_or("no template")?;
        let ready = int(&d, "/status/readyReplicas");
        if ready == 6 {
            Ok(())
        } else {
            Err(format!("readyReplicas {ready}"))
        }
    });

    // member3 comes back with its old Deployment: it is removed (purge mode
    // Gracefully), the taint goes, and nothing is duplicated
    let back = Instant::now();
    sim.restart();
    wait_for(
        Duration::from_secs(60),
        "member3 Ready, untainted and its copy of web removed",
        || {
            let c3 = up.cluster("member3")?;
            let d3 = get_sim(&up, &sim, &["deploy", "web"])?;
            let work3 = web_work(&up, "member3")?;
            if ready_status(&c3) == "True"
                && !has_taint(&c3, NO_EXECUTE_KEY, "NoExecute")
                && d3.is_none()
                && work3.is_none()
            {
                Ok(())
            } else {
                Err(format!(
                    "ready={} taints={} member3 web={:?} work={}",
                    ready_status(&c3),
                    c3.pointer("/spec/taints").unwrap_or(&Value::Null),
                    replicas_ready(&d3),
                    work3.is_some()
                ))
            }
        },
    );
    eprintln!(
        "failover: member3 back → its copy removed after {:.1}s",
        back.elapsed().as_secs_f64()
    );
    let b = binding(&up, "web").expect("binding");
    assert_eq!(
        assignment(&b),
        BTreeMap::from([("member1".into(), 3), ("member2".into(), 3)]),
        "the assignment stays where failover put it"
    );
    let m1 = replicas_ready(&get(&up, "member1", &["deploy", "web"]).expect("m1"));
    let m2 = replicas_ready(&get(&up, "member2", &["deploy", "web"]).expect("m2"));
    assert_eq!((m1, m2), (Some((3, 3)), Some((3, 3))));
}

/// Failover off (the default), with the same NoExecute ClusterTaintPolicy:
/// the taint comes, but nothing is evicted; the binding keeps member3's two
/// replicas and the template shows the degraded member (member3 Unknown in
/// the binding's aggregated status, 4 of 6 ready on the template).
/// The eviction rate limit: with `--unhealthy-cluster-threshold=0.3`, two of
/// four clusters down (a small federation, above the threshold) pause
/// evictions — member3's NoExecute taint evicts nothing; member4 coming back
/// (one of four down) lets the eviction through.
#[test]
fn evictions_pause_while_too_many_clusters_are_down() {
    let mut extra = FAILOVER_ON.to_vec();
    extra.push("--unhealthy-cluster-threshold=0.3");
    let (up, mut sim3) = three_members(&extra);
    let base = up.dir.parent().expect("tmp").to_path_buf();
    let mut sim4 = Sim::start_with("member4", &base, true);
    sim4.join(&up);
    up.wait_cluster("member4", WAIT, "Ready after join", |c| {
        ready_status(c) == "True"
    });
    spread_web(&up, &sim3, "Gracefully");

    // member4 (holding nothing) first, so that member3's taint finds two of
    // four clusters down, never one
    sim4.kill();
    up.wait_cluster("member4", Duration::from_secs(60), "NoExecute taint", |c| {
        has_taint(c, NO_EXECUTE_KEY, "NoExecute")
    });
    sim3.kill();
    up.wait_cluster("member3", Duration::from_secs(60), "NoExecute taint", |c| {
        has_taint(c, NO_EXECUTE_KEY, "NoExecute")
    });
    // Paused: give the taint manager a fair chance, then nothing has moved.
    std::thread::sleep(Duration::from_secs(4));
    let b = binding(&up, "web").expect("binding");
    assert_eq!(
        assignment(&b),
        BTreeMap::from([
            ("member1".to_string(), 2),
            ("member2".to_string(), 2),
            ("member3".to_string(), 2)
        ]),
        "evictions are paused with half the clusters down"
    );
    assert!(eviction_tasks(&b).is_empty(), "{b}");

    // member4 is back: one of four down is below the threshold.
    sim4.restart();
    up.wait_cluster("member4", Duration::from_secs(60), "Ready again", |c| {
        ready_status(c) == "True"
    });
    wait_for(Duration::from_secs(60), "web evicted from member3", || {
        let b = binding(&up, "web")?;
        let a = assignment(&b);
        if !a.contains_key("member3") && a.values().sum::<i64>() == 6 {
            Ok(())
        } else {
            Err(format!("{a:?}, tasks {:?}", eviction_tasks(&b)))
        }
    });
}

#[test]
fn failover_off_keeps_the_assignment_and_shows_the_degraded_member() {
    let (up, mut sim) = three_members(&["--allow-no-execute-taint-policy"]);
    spread_web(&up, &sim, "Gracefully");
    let before = assignment(&binding(&up, "web").expect("binding"));
    assert_eq!(before.values().sum::<i64>(), 6);
    sim.kill();
    let (_, took) = up.wait_cluster("member3", WAIT, "NoExecute taint", |c| {
        has_taint(c, NO_EXECUTE_KEY, "NoExecute")
    });
    eprintln!("failover off: member3 tainted NoExecute after {took:?}");
    wait_for(WAIT, "member3 degraded in the statuses", || {
        let b = binding(&up, "web")?;
        let health3 = b
            .pointer("/status/aggregatedStatus")
            .and_then(Value::as_array)
            .and_then(|items| items.iter().find(|i| i["clusterName"] == "member3"))
            .and_then(|i| i["health"].as_str())
            .unwrap_or("")
            .to_string();
        let d = get(&up, "flotilla", &["deploy", "web"])?.ok_or("no template")?;
        let ready = int(&d, "/status/readyReplicas");
        if health3 == "Unknown" && ready == 4 {
            Ok(())
        } else {
            Err(format!(
                "member3 health {health3:?}, template ready {ready}"
            ))
        }
    });
    let table = up.k_ok(&["get", "deploy", "web"]);
    assert!(
        table.contains("4/6"),
        "kubectl shows the degraded count: {table}"
    );
    // and the assignment is left alone while member3 stays down: watched
    // over a few status periods, nothing is evicted
    let watched = Instant::now();
    while watched.elapsed() < Duration::from_secs(5) {
        let b = binding(&up, "web").expect("binding");
        assert_eq!(assignment(&b), before, "failover is off: no eviction");
        assert!(eviction_tasks(&b).is_empty(), "{b}");
        std::thread::sleep(Duration::from_millis(500));
    }
    let m1 = replicas_ready(&get(&up, "member1", &["deploy", "web"]).expect("m1"));
    assert_eq!(m1, Some((2, 2)), "member1 keeps its share");
    // without the webhook flag a NoExecute policy is refused, naming the field
    let plain = Up::start(1);
    let path = plain.dir.parent().expect("tmp").join("ctp.yaml");
    std::fs::write(&path, TAINT_POLICY).expect("write");
    let (code, _, err) = plain.k(&["apply", "-f", path.to_str().expect("utf-8")]);
    assert_ne!(code, 0, "NoExecute refused by default");
    assert!(err.contains("spec.taints[0]"), "{err}");
}

/// What the Works and members say about `template`, for failure messages.
fn diagnose(up: &Up, sim: &Sim, template: &str) -> String {
    let mut out = Vec::new();
    if let Ok(Some(works)) = get(up, "flotilla", &["work", "-A"]) {
        for w in works["items"].as_array().cloned().unwrap_or_default() {
            if w.pointer("/spec/workload/manifests/0/metadata/name") != Some(&Value::from(template))
            {
                continue;
            }
            let applied = w
                .pointer("/status/conditions")
                .and_then(Value::as_array)
                .and_then(|cs| cs.iter().find(|c| c["type"] == "Applied"))
                .map(|c| format!("{}/{}", c["status"], c["message"]))
                .unwrap_or_default();
            out.push(format!(
                "work {} replicas={} deleting={} applied={applied} manifestStatus={}",
                w.pointer("/metadata/namespace")
                    .and_then(Value::as_str)
                    .unwrap_or(""),
                int(&w, "/spec/workload/manifests/0/spec/replicas"),
                w.pointer("/metadata/deletionTimestamp").is_some(),
                w.pointer("/status/manifestStatuses/0/status")
                    .unwrap_or(&Value::Null),
            ));
        }
    }
    for m in ["member1", "member2"] {
        let d = get(up, m, &["deploy", template]).ok().flatten();
        out.push(format!(
            "{m}: {:?} {}",
            replicas_ready(&d),
            d.as_ref()
                .and_then(|d| d.pointer("/status"))
                .unwrap_or(&Value::Null)
        ));
    }
    if sim.running() {
        let d = get_sim(up, sim, &["deploy", template]).ok().flatten();
        out.push(format!("member3: {:?}", replicas_ready(&d)));
    }
    let log = up.proc.as_ref().map(|p| p.err()).unwrap_or_default();
    let failures: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("failed, retrying") || l.contains("WARN"))
        .collect();
    for l in failures.iter().rev().take(5) {
        out.push(l.chars().take(600).collect());
    }
    out.join("; ")
}

/// Whether the system has converged on `expected` (template → replicas) and
/// `deleted` templates: every template has a binding whose assignment adds up
/// to its replicas with no pending eviction; each reachable member runs
/// exactly the assigned Deployments with the assigned replicas and nothing
/// else of the fleet (no orphans); one live Work per assignment entry; the
/// templates acknowledged are all there (nothing lost). Deleted templates may
/// linger as a deleting binding and Work only while member3 is unreachable.
fn converged(
    up: &Up,
    sim: &Sim,
    expected: &BTreeMap<String, i64>,
    deleted: &[String],
) -> Result<(), String> {
    let templates = get(up, "flotilla", &["deploy", "-l", "fleet=yes"])?.ok_or("no list")?;
    let mut on_cp: BTreeMap<String, i64> = BTreeMap::new();
    for d in templates["items"].as_array().cloned().unwrap_or_default() {
        let name = d["metadata"]["name"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        on_cp.insert(name, int(&d, "/spec/replicas"));
    }
    if &on_cp != expected {
        return Err(format!("templates lost or resurrected: {on_cp:?}"));
    }
    let rbs = get(up, "flotilla", &["rb"])?.ok_or("no rb list")?;
    let mut assignments: BTreeMap<String, BTreeMap<String, i64>> = BTreeMap::new();
    for b in rbs["items"].as_array().cloned().unwrap_or_default() {
        let template = b
            .pointer("/spec/resource/name")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        if deleted.contains(&template) {
            if sim.running() {
                return Err(format!("binding of deleted {template} still there"));
            }
            continue;
        }
        if !eviction_tasks(&b).is_empty() {
            let items: Vec<String> = b
                .pointer("/status/aggregatedStatus")
                .and_then(Value::as_array)
                .map(|items| {
                    items
                        .iter()
                        .map(|i| {
                            format!(
                                "{}:applied={} health={} ready={} {}",
                                i["clusterName"].as_str().unwrap_or(""),
                                i["applied"],
                                i["health"].as_str().unwrap_or(""),
                                int(i, "/status/readyReplicas"),
                                i["appliedMessage"].as_str().unwrap_or("")
                            )
                        })
                        .collect()
                })
                .unwrap_or_default();
            return Err(format!(
                "{template}: eviction pending; clusters {:?}, generation {} observed {}, items {items:?}; {}",
                assignment(&b),
                int(&b, "/metadata/generation"),
                int(&b, "/status/schedulerObservedGeneration"),
                diagnose(up, sim, &template)
            ));
        }
        assignments.insert(template, assignment(&b));
    }
    for (name, replicas) in expected {
        let a = assignments
            .get(name)
            .ok_or_else(|| format!("{name}: no binding"))?;
        if a.values().sum::<i64>() != *replicas {
            return Err(format!("{name}: assignment {a:?} for {replicas} replicas"));
        }
    }
    let mut members: Vec<(&str, Option<Value>)> = vec![
        (
            "member1",
            get(up, "member1", &["deploy", "-l", "fleet=yes"])?,
        ),
        (
            "member2",
            get(up, "member2", &["deploy", "-l", "fleet=yes"])?,
        ),
    ];
    if sim.running() {
        members.push(("member3", get_sim(up, sim, &["deploy", "-l", "fleet=yes"])?));
    }
    for (member, list) in members {
        let list = list.ok_or_else(|| format!("{member}: no list"))?;
        let mut seen: BTreeMap<String, i64> = BTreeMap::new();
        for d in list["items"].as_array().cloned().unwrap_or_default() {
            let name = d["metadata"]["name"]
                .as_str()
                .unwrap_or_default()
                .to_string();
            seen.insert(name, int(&d, "/spec/replicas"));
        }
        let want: BTreeMap<String, i64> = assignments
            .iter()
            .filter_map(|(t, a)| a.get(member).map(|r| (t.clone(), *r)))
            .collect();
        if seen != want {
            return Err(format!("{member}: has {seen:?}, assigned {want:?}"));
        }
    }
    let works = get(up, "flotilla", &["work", "-A"])?.ok_or("no works")?;
    let live = live_deployment_works(&works);
    let entries: usize = assignments.values().map(BTreeMap::len).sum();
    if live != entries {
        return Err(format!(
            "{live} live Works for {entries} assignment entries"
        ));
    }
    Ok(())
}

/// Crash safety under failover: 20 rounds, each changing the fleet (new
/// templates, a scale, a deletion), sometimes cutting member3 off or
/// bringing it back, then SIGKILLing `flotilla up` at a random moment and
/// starting it again on the same directory. After every restart the system
/// converges ([`converged`]). The in-process members restart empty: the
/// controllers apply the Works again.
#[test]
fn sigkill_during_propagation_and_failover_converges_every_round() {
    let (mut up, mut sim) = three_members(&FAILOVER_ON);
    apply(&up, "taint-policy", TAINT_POLICY);
    apply(
        &up,
        "fleet-policy",
        &policy(
            "fleet",
            "labelSelector: {matchLabels: {fleet: \"yes\"}}",
            "Gracefully",
        ),
    );
    let mut rng = rand::rng();
    let mut expected: BTreeMap<String, i64> = BTreeMap::new();
    let mut deleted: Vec<String> = Vec::new();
    let mut next = 0;
    let mut restarts = Vec::new();
    let mut convergence = Vec::new();
    for round in 0..20 {
        // the fleet changes: three new templates, one scaled, one deleted
        let mut yaml = String::new();
        for _ in 0..3 {
            let name = format!("app-{next:03}");
            next += 1;
            let replicas = rng.random_range(1..=6);
            yaml.push_str(&deployment(&name, replicas));
            yaml.push_str("---\n");
            expected.insert(name, replicas);
        }
        if let Some(name) = expected
            .keys()
            .nth(rng.random_range(0..expected.len()))
            .cloned()
        {
            let replicas = rng.random_range(1..=6);
            yaml.push_str(&deployment(&name, replicas));
            expected.insert(name, replicas);
        }
        apply(&up, &format!("round-{round}"), &yaml);
        if round % 4 == 3 && expected.len() > 4 {
            let name = expected.keys().next().cloned().expect("templates");
            up.k_ok(&["delete", "deploy", &name, "--wait=false"]);
            expected.remove(&name);
            deleted.push(name);
        }
        // failover: member3 goes away in some rounds and comes back later
        match round % 6 {
            1 => sim.kill(),
            4 => sim.restart(),
            _ => {}
        }
        // SIGKILL at a random point of propagation / failover
        std::thread::sleep(Duration::from_millis(rng.random_range(0..2500)));
        up.proc.as_mut().expect("running").kill();
        let started = Instant::now();
        up.spawn();
        restarts.push(started.elapsed());
        let settle = Instant::now();
        wait_for(
            Duration::from_secs(120),
            &format!("round {round}: converged after SIGKILL"),
            || {
                up.proc.as_mut().expect("running").assert_running();
                converged(&up, &sim, &expected, &deleted)
            },
        );
        convergence.push(settle.elapsed());
        eprintln!(
            "round {round}: member3 {}, {} templates, restart {:.1}s, converged {:.1}s",
            if sim.running() { "up" } else { "down" },
            expected.len(),
            restarts[round].as_secs_f64(),
            convergence[round].as_secs_f64()
        );
    }
    // member3 back at the end: deleted templates are gone everywhere
    if !sim.running() {
        sim.restart();
    }
    wait_for(
        Duration::from_secs(120),
        "final convergence, member3 up",
        || converged(&up, &sim, &expected, &deleted),
    );
    let slowest = convergence.iter().max().copied().unwrap_or_default();
    eprintln!(
        "20 SIGKILL rounds: slowest convergence {:.1}s, slowest restart {:.1}s",
        slowest.as_secs_f64(),
        restarts
            .iter()
            .max()
            .copied()
            .unwrap_or_default()
            .as_secs_f64()
    );
}

/// Application failover (`failover.application`, with the `Failover` gate):
/// an OverridePolicy gives the workload, in the one cluster it was packed
/// into (Aggregated), a node selector no node matches, so it stays
/// Unhealthy there; after `tolerationSeconds` the binding is evicted from
/// that cluster with reason ApplicationFailure and the replicas run
/// elsewhere. Purge mode `Never` keeps the old copy (`suppressDeletion:
/// true`) with the preserved state, until the user sets `suppressDeletion`
/// to false.
#[test]
fn application_failover_moves_a_workload_that_stays_unhealthy() {
    let up = Up::start_with(3, &["--feature-gates=Failover=true"]);
    apply(
        &up,
        "api",
        &format!(
            "{}---\n{}",
            deployment("api", 4),
            r#"apiVersion: policy.karmada.io/v1alpha1
kind: PropagationPolicy
metadata: {name: api}
spec:
  propagateDeps: true
  resourceSelectors:
    - {apiVersion: apps/v1, kind: Deployment, name: api}
  failover:
    application:
      decisionConditions: {tolerationSeconds: 3}
      purgeMode: Never
      statePreservation:
        rules:
          - {aliasLabelName: failover.example.io/replicas, jsonPath: "{.replicas}"}
  placement:
    clusterAffinity:
      clusterNames: [member1, member2, member3]
    replicaScheduling:
      replicaSchedulingType: Divided
      replicaDivisionPreference: Aggregated
"#
        ),
    );
    let first = wait_for(WAIT, "api packed into one cluster and ready", || {
        let a = assignment(&binding(&up, "api")?);
        let (cluster, _) = a.iter().find(|(_, r)| **r == 4).ok_or(format!("{a:?}"))?;
        let d = get(&up, cluster, &["deploy", "api"])?;
        if replicas_ready(&d) == Some((4, 4)) {
            Ok(cluster.clone())
        } else {
            Err(format!("{cluster}: {:?}", replicas_ready(&d)))
        }
    });
    // the workload turns unhealthy in that cluster only
    apply(
        &up,
        "api-override",
        &format!(
            r#"apiVersion: policy.karmada.io/v1alpha1
kind: OverridePolicy
metadata: {{name: api-unschedulable}}
spec:
  resourceSelectors:
    - {{apiVersion: apps/v1, kind: Deployment, name: api}}
  overrideRules:
    - targetCluster: {{clusterNames: [{first}]}}
      overriders:
        plaintext:
          - {{path: /spec/template/spec/nodeSelector, operator: add, value: {{failover.example.io/nowhere: "true"}}}}
"#
        ),
    );
    let broken = Instant::now();
    let b = wait_for(
        Duration::from_secs(60),
        "api evicted from the unhealthy cluster",
        || {
            let b = binding(&up, "api")?;
            let a = assignment(&b);
            let tasks = eviction_tasks(&b);
            if !a.contains_key(&first) && a.values().sum::<i64>() == 4 && !tasks.is_empty() {
                Ok(b)
            } else {
                Err(format!("assignment {a:?}, tasks {tasks:?}"))
            }
        },
    );
    eprintln!(
        "application failover: evicted from {first} {:.1}s after it turned unhealthy (tolerationSeconds 3)",
        broken.elapsed().as_secs_f64()
    );
    let task = &eviction_tasks(&b)[0];
    assert_eq!(task["fromCluster"], Value::from(first.clone()), "{task}");
    assert_eq!(task["reason"], "ApplicationFailure", "{task}");
    assert_eq!(task["purgeMode"], "Never", "{task}");
    assert_eq!(task["suppressDeletion"], true, "{task}");
    assert_eq!(
        task["producer"], "resource-binding-application-failover-controller",
        "{task}"
    );
    // the old cluster's status.replicas (4, or more while its rollout is stuck)
    let preserved = task
        .pointer("/preservedLabelState/failover.example.io~1replicas")
        .and_then(Value::as_str)
        .and_then(|v| v.parse::<i64>().ok());
    assert!(
        preserved.is_some_and(|r| r >= 4),
        "the old cluster's status.replicas is preserved: {task}"
    );
    let target = assignment(&b).into_keys().next().expect("a new cluster");
    wait_for(WAIT, "api ready in the new cluster", || {
        let d = get(&up, &target, &["deploy", "api"])?;
        if replicas_ready(&d) == Some((4, 4)) {
            Ok(())
        } else {
            Err(format!("{target}: {:?}", replicas_ready(&d)))
        }
    });
    // purge mode Never: the old copy stays, even once the new one is healthy
    assert!(
        get(&up, &first, &["deploy", "api"]).expect("get").is_some(),
        "Never keeps the copy in {first}"
    );
    assert_eq!(eviction_tasks(&binding(&up, "api").expect("rb")).len(), 1);
    // the user lets it go
    let patch = r#"[{"op": "replace", "path": "/spec/gracefulEvictionTasks/0/suppressDeletion", "value": false}]"#;
    up.k_ok(&["patch", "rb", "api-deployment", "--type=json", "-p", patch]);
    wait_for(WAIT, "the old copy removed", || {
        let b = binding(&up, "api")?;
        let d = get(&up, &first, &["deploy", "api"])?;
        if eviction_tasks(&b).is_empty() && d.is_none() {
            Ok(())
        } else {
            Err(format!(
                "tasks {:?}, {first} api {:?}",
                eviction_tasks(&b),
                replicas_ready(&d)
            ))
        }
    });
}

fn deployment_with(name: &str, replicas: i64, image: &str, node_selector: &str) -> String {
    format!(
        r#"apiVersion: apps/v1
kind: Deployment
metadata:
  name: {name}
  labels: {{app: {name}}}
spec:
  replicas: {replicas}
  selector:
    matchLabels: {{app: {name}}}
  template:
    metadata:
      labels: {{app: {name}}}
    spec:
      nodeSelector: {node_selector}
      containers:
        - name: main
          image: {image}
"#
    )
}

/// `(image, nodeSelector)` of Deployment `name` in `context`.
fn rendering(up: &Up, context: &str, name: &str) -> Result<(String, Value), String> {
    let d = get(up, context, &["deploy", name])?.ok_or_else(|| format!("{context}: absent"))?;
    Ok((
        d.pointer("/spec/template/spec/containers/0/image")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string(),
        d.pointer("/spec/template/spec/nodeSelector")
            .cloned()
            .unwrap_or(Value::Null),
    ))
}

/// Containment (flotilla's extension, `flotilla.io/contain-template-changes`
/// on the policy): a template change that leaves the workload unhealthy in
/// the first cluster is not pushed to the others; the next change, healthy
/// in the first cluster, reaches everyone. Without the annotation the same
/// bad change reaches every cluster.
#[test]
fn containment_keeps_a_bad_change_in_the_first_cluster() {
    let up = Up::start(3);
    let policy = |name: &str, contain: bool| {
        format!(
            r#"apiVersion: policy.karmada.io/v1alpha1
kind: PropagationPolicy
metadata:
  name: {name}
  annotations: {{flotilla.io/contain-template-changes: "{contain}"}}
spec:
  resourceSelectors:
    - {{apiVersion: apps/v1, kind: Deployment, name: {name}}}
  placement:
    clusterAffinity:
      clusterNames: [member1, member2, member3]
"#
        )
    };
    let good = "{}";
    let bad = "{failover.example.io/nowhere: \"true\"}";
    for (name, contain) in [("careful", true), ("careless", false)] {
        apply(
            &up,
            name,
            &format!(
                "{}---\n{}",
                deployment_with(name, 2, "registry.example/app:1.0", good),
                policy(name, contain)
            ),
        );
    }
    for name in ["careful", "careless"] {
        wait_for(WAIT, &format!("{name} 1.0 ready everywhere"), || {
            for m in ["member1", "member2", "member3"] {
                let d = get(&up, m, &["deploy", name])?;
                if replicas_ready(&d) != Some((2, 2)) {
                    return Err(format!("{m}: {:?}", replicas_ready(&d)));
                }
            }
            Ok(())
        });
    }
    // a bad change: no node matches, the pods stay Pending
    for name in ["careful", "careless"] {
        apply(
            &up,
            &format!("{name}-bad"),
            &deployment_with(name, 2, "registry.example/app:1.1", bad),
        );
    }
    let bad_value: Value =
        serde_json::from_str(r#"{"failover.example.io/nowhere": "true"}"#).expect("json");
    wait_for(
        WAIT,
        "the bad change in every member without containment",
        || {
            for m in ["member1", "member2", "member3"] {
                let (image, _) = rendering(&up, m, "careless")?;
                if image != "registry.example/app:1.1" {
                    return Err(format!("{m}: {image}"));
                }
            }
            Ok(())
        },
    );
    wait_for(WAIT, "the bad change in member1 with containment", || {
        let (image, selector) = rendering(&up, "member1", "careful")?;
        if image == "registry.example/app:1.1" && selector == bad_value {
            Ok(())
        } else {
            Err(format!("{image} {selector}"))
        }
    });
    // it stays there: member2 and member3 keep 1.0, watched for a while
    let watched = Instant::now();
    while watched.elapsed() < Duration::from_secs(6) {
        for m in ["member2", "member3"] {
            let (image, selector) = rendering(&up, m, "careful").expect("get");
            assert_eq!(image, "registry.example/app:1.0", "{m} is contained");
            assert!(
                selector.is_null() || selector == serde_json::json!({}),
                "{m}: {selector}"
            );
            let d = get(&up, m, &["deploy", "careful"]).expect("get");
            assert_eq!(replicas_ready(&d), Some((2, 2)), "{m} keeps running");
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    // a good change goes to the first cluster, then to the others
    apply(
        &up,
        "careful-fixed",
        &deployment_with("careful", 2, "registry.example/app:1.2", good),
    );
    let fixed = Instant::now();
    wait_for(WAIT, "1.2 everywhere", || {
        for m in ["member1", "member2", "member3"] {
            let (image, _) = rendering(&up, m, "careful")?;
            let d = get(&up, m, &["deploy", "careful"])?;
            if image != "registry.example/app:1.2" || replicas_ready(&d) != Some((2, 2)) {
                return Err(format!("{m}: {image} {:?}", replicas_ready(&d)));
            }
        }
        Ok(())
    });
    eprintln!(
        "containment: a healthy change reached all members {:.1}s after it was applied",
        fixed.elapsed().as_secs_f64()
    );
}
