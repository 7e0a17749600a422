//! End-to-end tests of member clusters (issue 8, "Acceptance"): `flotilla up` with
//! simulated members, Push members joined with `flotilla join`, fault handling
//! (unreachable member → Ready=False and the not-ready taint), cordon, Pull mode
//! with `flotilla agent`, restart on the same directory, and `--members 0`.
//!
//! Everything runs the real binary on 127.0.0.1 and is driven by the machine's
//! kubectl and the `flotilla` CLI. Every process started here is killed by PID when
//! its guard drops, and every wait is bounded.

use std::net::TcpListener;
use std::time::{Duration, Instant};

use flotilla_tests::run;
use flotilla_tests::sim::Sim;
use flotilla_tests::up::{Up, WAIT, agent, wait_for};
use serde_json::Value;

/// Karmada's taint keys.
const TAINT_NOT_READY: &str = "cluster.karmada.io/not-ready";
const TAINT_UNREACHABLE: &str = "cluster.karmada.io/unreachable";
const TAINT_UNSCHEDULABLE: &str = "cluster.karmada.io/unschedulable";

/// A free loopback port nobody listens on (a listener bound and dropped).
fn dead_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind");
    l.local_addr().expect("addr").port()
}

fn conditions(c: &Value) -> &[Value] {
    c.pointer("/status/conditions")
        .and_then(Value::as_array)
        .map_or(&[], Vec::as_slice)
}

/// (status, reason) of the Ready condition.
fn ready(c: &Value) -> Option<(String, String)> {
    conditions(c)
        .iter()
        .find(|x| x["type"] == "Ready")
        .map(|x| {
            (
                x["status"].as_str().unwrap_or("").to_string(),
                x["reason"].as_str().unwrap_or("").to_string(),
            )
        })
}

fn is_ready(c: &Value) -> bool {
    ready(c).is_some_and(|(s, _)| s == "True")
}

/// (key, effect) of every taint.
fn taints(c: &Value) -> Vec<(String, String)> {
    c.pointer("/spec/taints")
        .and_then(Value::as_array)
        .map(|ts| {
            ts.iter()
                .map(|t| {
                    (
                        t["key"].as_str().unwrap_or("").to_string(),
                        t["effect"].as_str().unwrap_or("").to_string(),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

fn has_taint(c: &Value, key: &str, effect: &str) -> bool {
    taints(c).iter().any(|(k, e)| k == key && e == effect)
}

fn has_taint_key(c: &Value, key: &str) -> bool {
    taints(c).iter().any(|(k, _)| k == key)
}

fn summary(c: &Value) -> String {
    format!(
        "ready={:?} taints={:?} mode={}",
        ready(c),
        taints(c),
        c.pointer("/spec/syncMode").unwrap_or(&Value::Null)
    )
}

/// Rows of a `NAME VERSION MODE READY AGE` table: name → (version, mode, ready).
fn cluster_rows(table: &str) -> Vec<(String, String, String, String)> {
    let mut lines = table.lines().filter(|l| !l.trim().is_empty());
    let header: Vec<&str> = lines.next().unwrap_or("").split_whitespace().collect();
    assert_eq!(
        header,
        ["NAME", "VERSION", "MODE", "READY", "AGE"],
        "cluster table header:\n{table}"
    );
    lines
        .map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            assert_eq!(f.len(), 5, "row {l:?} of\n{table}");
            (f[0].into(), f[1].into(), f[2].into(), f[3].into())
        })
        .collect()
}

/// `flotilla join NAME --cluster-kubeconfig FILE` and wait until it is Ready.
fn join_ready(up: &Up, sim: &Sim) -> Duration {
    let started = Instant::now();
    let (code, out, err) = up.flotilla(&[
        "join",
        &sim.name,
        "--cluster-kubeconfig",
        sim.kubeconfig().to_str().expect("utf-8"),
    ]);
    assert_eq!(code, 0, "join {}: {err}{out}", sim.name);
    let (c, _) = up.wait_cluster(&sim.name, WAIT, "Ready=True after join", |c| {
        is_ready(c) && !has_taint_key(c, TAINT_NOT_READY)
    });
    assert_eq!(c["spec"]["syncMode"], "Push", "{c}");
    assert_eq!(
        c["spec"]["apiEndpoint"],
        format!("https://127.0.0.1:{}", sim.port),
        "{c}"
    );
    started.elapsed()
}

// ---------------------------------------------------------------------------

/// `flotilla up --members 3`: clusters listed with VERSION, MODE Push, READY True;
/// member contexts serve simulated nodes; control-plane namespaces reach every
/// member (and leave them when deleted; `kube-*` is skipped); `flotilla get
/// clusters` prints the same table.
#[test]
fn up_three_members_ready_nodes_and_namespace_sync() {
    let up = Up::start(3);
    eprintln!(
        "flotilla up --members 3: kubeconfig after {:?} ({})",
        up.ready_after, up.reported
    );

    // the kubeconfig: current context flotilla, one context per member
    let contexts = up.k_ok(&["config", "get-contexts", "-o", "name"]);
    let mut names: Vec<&str> = contexts.lines().collect();
    names.sort_unstable();
    assert_eq!(
        names,
        ["flotilla", "flotilla-all", "member1", "member2", "member3"]
    );
    assert_eq!(up.k_ok(&["config", "current-context"]).trim(), "flotilla");

    // every member is Ready when the kubeconfig appears
    for table in [
        up.k_ok(&["get", "clusters"]),
        up.k_ok(&["--context", "flotilla", "get", "clusters"]),
    ] {
        let rows = cluster_rows(&table);
        let names: Vec<&str> = rows.iter().map(|r| r.0.as_str()).collect();
        assert_eq!(names, ["member1", "member2", "member3"], "{table}");
        for (name, version, mode, ready) in &rows {
            assert!(
                version.starts_with('v') && version.len() > 3,
                "{name} VERSION {version:?}:\n{table}"
            );
            assert_eq!(mode, "Push", "{name} MODE:\n{table}");
            assert_eq!(ready, "True", "{name} READY:\n{table}");
        }
    }
    for i in 1..=3 {
        let c = up.cluster(&format!("member{i}")).expect("cluster");
        assert!(
            c.pointer("/status/kubernetesVersion")
                .and_then(Value::as_str)
                .is_some_and(|v| v.starts_with('v')),
            "{c}"
        );
        assert!(
            !has_taint_key(&c, TAINT_NOT_READY) && !has_taint_key(&c, TAINT_UNREACHABLE),
            "a Ready cluster has no automatic taint: {}",
            summary(&c)
        );
        // Karmada's execution namespace
        assert!(
            up.has_namespace("flotilla", &format!("karmada-es-member{i}"))
                .expect("get ns"),
            "karmada-es-member{i} exists"
        );
    }

    // simulated nodes through the member's context
    let nodes = up.k_ok(&["--context", "member2", "get", "nodes"]);
    let rows: Vec<&str> = nodes.lines().skip(1).collect();
    assert_eq!(rows.len(), 3, "3 nodes per member by default:\n{nodes}");
    for r in &rows {
        let f: Vec<&str> = r.split_whitespace().collect();
        assert!(f[0].starts_with("member2-"), "node name {r:?}");
        assert_eq!(f[1], "Ready", "node status {r:?}");
    }

    // namespace sync: a namespace created on the control plane appears in every
    // member; kube-* (Karmada's default skip) does not
    up.k_ok(&["create", "namespace", "kube-e2e-skipped"]);
    up.k_ok(&["create", "namespace", "e2e-sync"]);
    let started = Instant::now();
    for i in 1..=3 {
        let ctx = format!("member{i}");
        wait_for(WAIT, &format!("namespace e2e-sync in {ctx}"), || {
            match up.has_namespace(&ctx, "e2e-sync")? {
                true => Ok(()),
                false => Err("absent".into()),
            }
        });
    }
    eprintln!("namespace synced to 3 members in {:?}", started.elapsed());
    for i in 1..=3 {
        assert!(
            !up.has_namespace(&format!("member{i}"), "kube-e2e-skipped")
                .expect("get ns"),
            "kube-* namespaces are not propagated (member{i})"
        );
    }
    // … and is removed from them when deleted
    up.k_ok(&["delete", "namespace", "e2e-sync", "--wait=false"]);
    for i in 1..=3 {
        let ctx = format!("member{i}");
        wait_for(
            WAIT,
            &format!("namespace e2e-sync gone from {ctx}"),
            || match up.has_namespace(&ctx, "e2e-sync")? {
                false => Ok(()),
                true => Err("still there".into()),
            },
        );
    }

    // `flotilla get clusters` prints the same table
    let (code, out, err) = up.flotilla(&["get", "clusters"]);
    assert_eq!(code, 0, "flotilla get clusters: {err}");
    let kubectl_rows = cluster_rows(&up.k_ok(&["get", "clusters"]));
    let flotilla_rows = cluster_rows(&out);
    assert_eq!(
        flotilla_rows, kubectl_rows,
        "flotilla get clusters:\n{out}\nkubectl get clusters differs"
    );
}

/// A Push member made unreachable (its `flotilla sim` killed) turns Ready=False
/// with reason ClusterNotReachable and gets the not-ready NoSchedule taint; when
/// it comes back at the same address it turns Ready and the taint goes.
#[test]
fn unreachable_push_member_goes_not_ready_and_back() {
    let up = Up::start(1);
    let base = up.dir.parent().expect("tmp").to_path_buf();
    let mut sim = Sim::start("edge1", &base);
    let joined = join_ready(&up, &sim);
    eprintln!("joined edge1 Ready after {joined:?}");
    let rows = cluster_rows(&up.k_ok(&["get", "clusters"]));
    let row = rows.iter().find(|r| r.0 == "edge1").expect("edge1 listed");
    assert_eq!(
        (row.2.as_str(), row.3.as_str()),
        ("Push", "True"),
        "{row:?}"
    );

    sim.kill();
    let (c, took) = up.wait_cluster("edge1", WAIT, "Ready=False, not-ready taint", |c| {
        ready(c).is_some_and(|(s, _)| s == "False") && has_taint(c, TAINT_NOT_READY, "NoSchedule")
    });
    eprintln!("edge1 unreachable → Ready=False + taint after {took:?}");
    assert_eq!(
        ready(&c).map(|r| r.1),
        Some("ClusterNotReachable".to_string()),
        "{}",
        summary(&c)
    );
    assert!(
        !has_taint_key(&c, TAINT_UNREACHABLE),
        "Ready=False means not-ready, not unreachable: {}",
        summary(&c)
    );
    // the other member is unaffected
    assert!(is_ready(&up.cluster("member1").expect("member1")));

    sim.restart();
    let (c, took) = up.wait_cluster("edge1", WAIT, "Ready=True, taint removed", |c| {
        is_ready(c) && !has_taint_key(c, TAINT_NOT_READY)
    });
    eprintln!("edge1 restored → Ready=True, taint removed after {took:?}");
    assert_eq!(ready(&c).map(|r| r.1), Some("ClusterReady".to_string()));
}

/// `flotilla cordon`/`uncordon` add and remove the unschedulable taint; the CLI's
/// errors for a missing cluster, an invalid name, a duplicate name and an
/// unreachable member are clear; `unjoin` removes a cluster and its execution
/// namespace.
#[test]
fn cordon_uncordon_and_cli_errors() {
    let up = Up::start(1);

    let (code, out, err) = up.flotilla(&["cordon", "member1"]);
    assert_eq!(code, 0, "cordon: {err}{out}");
    let c = up.cluster("member1").expect("member1");
    assert!(
        has_taint(&c, TAINT_UNSCHEDULABLE, "NoSchedule"),
        "cordon adds the unschedulable NoSchedule taint: {}",
        summary(&c)
    );
    // the cluster controller keeps a taint it does not own
    std::thread::sleep(Duration::from_secs(3));
    let c = up.cluster("member1").expect("member1");
    assert!(
        has_taint(&c, TAINT_UNSCHEDULABLE, "NoSchedule") && is_ready(&c),
        "still cordoned and Ready: {}",
        summary(&c)
    );
    // cordon twice is fine
    let (code, _, err) = up.flotilla(&["cordon", "member1"]);
    assert_eq!(code, 0, "cordon again: {err}");
    assert_eq!(
        taints(&up.cluster("member1").expect("member1"))
            .iter()
            .filter(|(k, _)| k == TAINT_UNSCHEDULABLE)
            .count(),
        1,
        "one unschedulable taint"
    );
    let (code, out, err) = up.flotilla(&["uncordon", "member1"]);
    assert_eq!(code, 0, "uncordon: {err}{out}");
    let c = up.cluster("member1").expect("member1");
    assert!(
        !has_taint_key(&c, TAINT_UNSCHEDULABLE),
        "uncordon removes the taint: {}",
        summary(&c)
    );

    // a missing cluster
    for verb in ["cordon", "uncordon", "unjoin"] {
        let (code, out, err) = up.flotilla(&[verb, "no-such-cluster"]);
        assert_ne!(code, 0, "{verb} of a missing cluster fails: {out}");
        assert!(
            err.contains("no-such-cluster")
                && (err.contains("not found") || err.contains("not joined")),
            "{verb} names the missing cluster: {err}"
        );
    }

    // join errors
    let base = up.dir.parent().expect("tmp").to_path_buf();
    let sim = Sim::start("spare", &base);
    let sim_kc = sim.kubeconfig().to_str().expect("utf-8").to_string();
    for bad in ["Bad_Name", "trailing-", "a.b", &"x".repeat(49)] {
        let (code, out, err) = up.flotilla(&["join", bad, "--cluster-kubeconfig", &sim_kc]);
        assert_ne!(code, 0, "join {bad:?} fails: {out}");
        assert!(
            err.contains("invalid") && err.contains(bad),
            "join {bad:?}: the error names the invalid name: {err}"
        );
    }
    let (code, out, err) = up.flotilla(&["join", "member1", "--cluster-kubeconfig", &sim_kc]);
    assert_ne!(code, 0, "joining a duplicate name fails: {out}");
    assert!(
        err.contains("member1") && err.contains("already"),
        "duplicate name: {err}"
    );
    // an unreachable member: the sim's kubeconfig pointed at a closed port
    let dead = format!("127.0.0.1:{}", dead_port());
    let dead_kc = base.join("dead-kubeconfig");
    std::fs::write(
        &dead_kc,
        std::fs::read_to_string(sim.kubeconfig())
            .expect("sim kubeconfig")
            .replace(&format!("127.0.0.1:{}", sim.port), &dead),
    )
    .expect("write");
    let started = Instant::now();
    let (code, out, err) = up.flotilla(&[
        "join",
        "ghost",
        "--cluster-kubeconfig",
        dead_kc.to_str().expect("utf-8"),
    ]);
    assert_ne!(code, 0, "joining an unreachable member fails: {out}");
    assert!(
        err.contains("reach") && err.contains(&dead),
        "unreachable member: {err}"
    );
    assert!(started.elapsed() < WAIT, "join gives up in bounded time");
    // a missing kubeconfig file
    let (code, _, err) = up.flotilla(&[
        "join",
        "nofile",
        "--cluster-kubeconfig",
        base.join("nope.yaml").to_str().expect("utf-8"),
    ]);
    assert_ne!(code, 0, "a missing kubeconfig fails");
    assert!(err.contains("nope.yaml"), "names the missing file: {err}");
    // none of the failed joins left a Cluster behind
    for name in ["Bad_Name", "ghost", "nofile"] {
        assert!(up.cluster(name).is_err(), "no cluster {name}");
    }
    let rows = cluster_rows(&up.k_ok(&["get", "clusters"]));
    assert_eq!(rows.len(), 1, "{rows:?}");

    // a valid join, then unjoin: the cluster and its execution namespace go
    join_ready(&up, &sim);
    let (code, out, err) = up.flotilla(&["join", "spare", "--cluster-kubeconfig", &sim_kc]);
    assert_ne!(code, 0, "joining spare twice fails: {out}");
    assert!(err.contains("already"), "duplicate: {err}");
    wait_for(WAIT, "karmada-es-spare", || {
        match up.has_namespace("flotilla", "karmada-es-spare")? {
            true => Ok(()),
            false => Err("absent".into()),
        }
    });
    let (code, out, err) = up.flotilla(&["unjoin", "spare"]);
    assert_eq!(code, 0, "unjoin: {err}{out}");
    wait_for(WAIT, "cluster spare and karmada-es-spare gone", || {
        let ns = up.has_namespace("flotilla", "karmada-es-spare")?;
        let cl = up.cluster("spare").is_ok();
        if !ns && !cl {
            Ok(())
        } else {
            Err(format!("namespace={ns} cluster={cl}"))
        }
    });
}

/// Pull mode: an agent-managed member appears with MODE Pull and READY True; when
/// the agent is killed the control plane marks it Ready=Unknown (its Lease
/// expires) with the unreachable taint. `flotilla up` keeps Karmada's monitor
/// timings (period 5 s, grace 40 s), so this takes 35–50 s; the wait is bounded at 70 s.
#[test]
fn pull_member_via_agent_ready_then_unknown_when_agent_killed() {
    let up = Up::start(0);
    let base = up.dir.parent().expect("tmp").to_path_buf();
    let sim = Sim::start("pull1", &base);
    let started = Instant::now();
    let mut agent = agent(&up, &sim);
    let (c, _) = up.wait_cluster("pull1", WAIT, "Pull and Ready=True", |c| {
        c["spec"]["syncMode"] == "Pull" && is_ready(c) && !has_taint_key(c, TAINT_NOT_READY)
    });
    eprintln!("pull1 registered and Ready after {:?}", started.elapsed());
    assert!(c.pointer("/status/kubernetesVersion").is_some(), "{c}");
    let rows = cluster_rows(&up.k_ok(&["get", "clusters"]));
    assert_eq!(rows.len(), 1, "{rows:?}");
    let (name, version, mode, ready_col) = &rows[0];
    assert_eq!(name, "pull1");
    assert!(version.starts_with('v'), "{rows:?}");
    assert_eq!((mode.as_str(), ready_col.as_str()), ("Pull", "True"));
    // control-plane namespaces reach it too: their Works, applied by the agent
    up.k_ok(&["create", "namespace", "e2e-pull-sync"]);
    wait_for(WAIT, "namespace e2e-pull-sync in pull1", || {
        let (code, out, err) = run(up.kubectl().env("KUBECONFIG", sim.kubeconfig()).args([
            "get",
            "namespace",
            "e2e-pull-sync",
            "-o",
            "name",
        ]));
        if code == 0 && out.contains("e2e-pull-sync") {
            Ok(())
        } else {
            Err(err)
        }
    });

    agent.kill();
    let (c, took) = up.wait_cluster(
        "pull1",
        Duration::from_secs(70),
        "Ready=Unknown and the unreachable taint after the agent died",
        |c| {
            ready(c).is_some_and(|(s, _)| s == "Unknown")
                && has_taint(c, TAINT_UNREACHABLE, "NoSchedule")
        },
    );
    eprintln!("agent killed → pull1 Ready=Unknown + unreachable taint after {took:?}");
    assert_eq!(
        ready(&c).map(|r| r.1),
        Some("ClusterStatusUnknown".to_string()),
        "{}",
        summary(&c)
    );
    assert!(
        !has_taint_key(&c, TAINT_NOT_READY),
        "Unknown means unreachable, not not-ready: {}",
        summary(&c)
    );
}

/// Pull mode: while the agent runs, its Lease `karmada-cluster/<name>` exists (holder
/// = the cluster) and is renewed, so a live Pull cluster never expires.
#[test]
fn pull_agent_lease_is_kept_and_renewed() {
    let up = Up::start(0);
    let base = up.dir.parent().expect("tmp").to_path_buf();
    let sim = Sim::start("pull2", &base);
    let _agent = agent(&up, &sim);
    up.wait_cluster("pull2", WAIT, "Ready=True", is_ready);
    let lease = |up: &Up| -> Result<Value, String> {
        let (code, out, err) = up.k(&[
            "-n",
            "karmada-cluster",
            "get",
            "lease",
            "pull2",
            "-o",
            "json",
        ]);
        if code != 0 {
            return Err(err);
        }
        serde_json::from_str(&out).map_err(|e| e.to_string())
    };
    let first = wait_for(WAIT, "lease karmada-cluster/pull2", || lease(&up));
    assert_eq!(first["spec"]["holderIdentity"], "pull2", "{first}");
    assert_eq!(first["spec"]["leaseDurationSeconds"], 4, "{first}");
    let renewed = first["spec"]["renewTime"].clone();
    // the lease stays and is renewed (every 4 s × 0.25)
    wait_for(Duration::from_secs(10), "the lease to be renewed", || {
        let l = lease(&up)?;
        if l["spec"]["renewTime"] != renewed {
            Ok(())
        } else {
            Err(format!("renewTime still {renewed}"))
        }
    });
    std::thread::sleep(Duration::from_secs(3));
    lease(&up).expect("the lease is still there");
}

/// Restart: SIGTERM stops `flotilla up` cleanly; a second `flotilla up` on the same
/// directory keeps clusters and control-plane namespaces, and members come back
/// Ready (at their new addresses) with namespaces synced again.
#[test]
fn restart_keeps_clusters_and_namespaces() {
    let mut up = Up::start(2);
    up.k_ok(&["create", "namespace", "e2e-keep"]);
    for i in 1..=2 {
        let ctx = format!("member{i}");
        wait_for(WAIT, &format!("e2e-keep in {ctx}"), || {
            match up.has_namespace(&ctx, "e2e-keep")? {
                true => Ok(()),
                false => Err("absent".into()),
            }
        });
    }
    let uid_before = up.cluster("member1").expect("member1")["metadata"]["uid"].clone();

    let stopped = up.restart();
    eprintln!(
        "stopped in {stopped:?}; restarted, kubeconfig after {:?} ({})",
        up.ready_after, up.reported
    );

    // the control plane's data is intact
    assert!(
        up.has_namespace("flotilla", "e2e-keep").expect("get ns"),
        "control-plane namespace kept"
    );
    let c = up.cluster("member1").expect("member1 kept");
    assert_eq!(c["metadata"]["uid"], uid_before, "the same Cluster object");
    let rows = cluster_rows(&up.k_ok(&["get", "clusters"]));
    let names: Vec<&str> = rows.iter().map(|r| r.0.as_str()).collect();
    assert_eq!(names, ["member1", "member2"]);

    // members serve again, the Clusters point at them, and they stay Ready past
    // the failure threshold (3 s) — not just a Ready left over from before
    for i in 1..=2 {
        let ctx = format!("member{i}");
        let nodes = up.k_ok(&["--context", &ctx, "get", "nodes", "-o", "name"]);
        assert_eq!(nodes.lines().count(), 3, "{ctx} nodes: {nodes}");
        let server = up.k_ok(&[
            "config",
            "view",
            "--minify",
            "--context",
            &ctx,
            "-o",
            "jsonpath={.clusters[0].cluster.server}",
        ]);
        up.wait_cluster(&ctx, WAIT, "apiEndpoint of the new member, Ready", |c| {
            c["spec"]["apiEndpoint"] == server.trim() && is_ready(c)
        });
    }
    std::thread::sleep(Duration::from_secs(5));
    for i in 1..=2 {
        let c = up.cluster(&format!("member{i}")).expect("cluster");
        assert!(
            is_ready(&c) && !has_taint_key(&c, TAINT_NOT_READY),
            "member{i} Ready after restart: {}\n{}",
            summary(&c),
            up.log()
        );
    }
    // namespace sync runs again: the kept namespace and a new one reach members
    up.k_ok(&["create", "namespace", "e2e-after-restart"]);
    for i in 1..=2 {
        let ctx = format!("member{i}");
        for ns in ["e2e-keep", "e2e-after-restart"] {
            wait_for(WAIT, &format!("{ns} in {ctx} after restart"), || {
                match up.has_namespace(&ctx, ns)? {
                    true => Ok(()),
                    false => Err("absent".into()),
                }
            });
        }
    }
}

/// `flotilla up --members 0` starts, and `get clusters` finds none.
#[test]
fn up_with_no_members() {
    let up = Up::start(0);
    eprintln!(
        "flotilla up --members 0: kubeconfig after {:?} ({})",
        up.ready_after, up.reported
    );
    let contexts = up.k_ok(&["config", "get-contexts", "-o", "name"]);
    assert_eq!(contexts.trim(), "flotilla\nflotilla-all");
    let (code, out, err) = up.flotilla(&["get", "clusters"]);
    assert_eq!(code, 0, "flotilla get clusters: {err}");
    assert!(
        format!("{out}{err}").contains("No resources found"),
        "flotilla get clusters: stdout {out:?} stderr {err:?}"
    );
    assert!(!out.contains("member"), "{out}");
    let (code, out, err) = up.k(&["get", "clusters"]);
    assert_eq!(code, 0, "kubectl get clusters: {err}");
    assert!(
        format!("{out}{err}").contains("No resources found"),
        "kubectl get clusters: {out:?} {err:?}"
    );
}

/// The `clusters/NAME/proxy` subresource (issue 8, "What to build"): a request to
/// the member through the control plane, as the caller.
#[test]
fn cluster_proxy_reaches_the_member() {
    let up = Up::start(1);
    let discovery = up.k_ok(&["get", "--raw", "/apis/cluster.karmada.io/v1alpha1"]);
    assert!(
        discovery.contains("\"clusters/proxy\""),
        "clusters/proxy in discovery: {discovery}"
    );
    let out = up.k_ok(&[
        "get",
        "--raw",
        "/apis/cluster.karmada.io/v1alpha1/clusters/member1/proxy/api/v1/nodes",
    ]);
    let list: Value = serde_json::from_str(&out).expect("NodeList");
    assert_eq!(list["kind"], "NodeList", "{out}");
    let items = list["items"].as_array().expect("items");
    assert_eq!(items.len(), 3, "{out}");
    assert!(
        items.iter().all(|n| n["metadata"]["name"]
            .as_str()
            .is_some_and(|s| s.starts_with("member1-"))),
        "the member's own nodes: {out}"
    );
}

/// Pull mode applies Works too: a Deployment propagated to an agent-managed
/// member is created there by the agent (the control plane never talks to the
/// member), its status comes back to the template, and deleting the template
/// removes it.
#[test]
fn pull_member_agent_applies_works_and_reports_status() {
    let up = Up::start(0);
    let base = up.dir.parent().expect("tmp").to_path_buf();
    let sim = Sim::start("pull2", &base);
    let _agent = agent(&up, &sim);
    up.wait_cluster("pull2", WAIT, "Pull and Ready=True", |c| {
        c["spec"]["syncMode"] == "Pull" && is_ready(c) && !has_taint_key(c, TAINT_NOT_READY)
    });
    let manifest = base.join("pull-app.yaml");
    std::fs::write(
        &manifest,
        r#"apiVersion: apps/v1
kind: Deployment
metadata: {name: pulled, labels: {app: pulled}}
spec:
  replicas: 2
  selector: {matchLabels: {app: pulled}}
  template:
    metadata: {labels: {app: pulled}}
    spec: {containers: [{name: c, image: nginx}]}
---
apiVersion: policy.karmada.io/v1alpha1
kind: PropagationPolicy
metadata: {name: pulled}
spec:
  resourceSelectors: [{apiVersion: apps/v1, kind: Deployment, name: pulled}]
  placement: {clusterAffinity: {clusterNames: [pull2]}}
"#,
    )
    .expect("write manifest");
    up.k_ok(&["apply", "-f", manifest.to_str().expect("path")]);
    let member_replicas = || -> Result<Option<String>, String> {
        let (code, out, err) = run(up.kubectl().env("KUBECONFIG", sim.kubeconfig()).args([
            "get",
            "deploy",
            "pulled",
            "-o",
            "jsonpath={.spec.replicas}",
        ]));
        if code == 0 {
            Ok(Some(out))
        } else if err.contains("NotFound") || err.contains("not found") {
            Ok(None)
        } else {
            Err(err)
        }
    };
    wait_for(
        WAIT,
        "the agent creates the Deployment in pull2",
        || match member_replicas()? {
            Some(r) if r == "2" => Ok(()),
            other => Err(format!("{other:?}")),
        },
    );
    wait_for(WAIT, "the template's status from the pull member", || {
        let out = up.k_ok(&[
            "get",
            "deploy",
            "pulled",
            "-o",
            "jsonpath={.status.readyReplicas}",
        ]);
        if out == "2" {
            Ok(())
        } else {
            Err(format!("readyReplicas {out:?}"))
        }
    });
    up.k_ok(&["delete", "deploy", "pulled"]);
    wait_for(
        WAIT,
        "the Deployment gone from pull2",
        || match member_replicas()? {
            None => Ok(()),
            Some(r) => Err(format!("still there with {r} replicas")),
        },
    );
}
