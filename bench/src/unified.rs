//! The unified view against the limit of the machine: a list of N pods spread
//! over M simulated members through the unified view (`flotilla-all`), against
//! a list of the same N pods from one `flotilla apiserver` holding them all —
//! the most a multi-cluster list could hope for, side by side in one run
//! (goal: unified ≤ 1.5× the single server).
//!
//! The pods are made by one Deployment per member (N / M replicas each) and
//! copied (server-set identity dropped, one namespace per member since pod
//! names may repeat across members) into the single server
//! (in-memory storage, as the members have). Each round lists both ways in
//! alternation (JSON, all namespaces, through kube-rs over HTTPS, body read
//! to the end); p50 and p99 over the rounds.
//!
//! Run: `cargo build --release -p flotilla && cargo run --release -p
//! flotilla-bench -- unified [--quick] [--record]`.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use futures::StreamExt;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{ListParams, PostParams};
use kube::{Api, Client};
use serde_json::{Value, json};

use crate::harness::{self, Guard, client, flotilla, ms, percentile};

struct Run {
    members: usize,
    pods: usize,
    unified: Vec<Duration>,
    single: Vec<Duration>,
    bytes_unified: usize,
    bytes_single: usize,
}

/// One list of every pod, timed to the last byte; (elapsed, body size).
async fn list_all(client: &Client) -> (Duration, usize) {
    let started = Instant::now();
    let request = http::Request::get("/api/v1/pods")
        .header("accept", "application/json")
        .body(Vec::new())
        .expect("request");
    let body = client.request_text(request).await.expect("list pods");
    (started.elapsed(), body.len())
}

fn count_items(client_body: &str) -> usize {
    serde_json::from_str::<Value>(client_body)
        .ok()
        .and_then(|v| v["items"].as_array().map(Vec::len))
        .unwrap_or(0)
}

/// A member pod as it can be created elsewhere: the server-set identity
/// dropped, everything else (status, managedFields) kept, so both sides
/// list objects of the same size.
fn trimmed(pod: &Pod) -> Pod {
    let mut p = pod.clone();
    let m = &mut p.metadata;
    m.namespace = None;
    m.resource_version = None;
    m.uid = None;
    m.owner_references = None;
    p
}

async fn run(members: usize, pods: usize, rounds: usize) -> Run {
    let per_member = pods / members;
    let pods = per_member * members;
    let running = harness::up(members, 10, &[]).await;
    let kubeconfig = running.kubeconfig.clone();

    let bar = harness::progress(members, "Deployments in the members");
    for m in 1..=members {
        let member = client(&kubeconfig, &format!("member{m}")).await;
        let d: Deployment = serde_json::from_value(json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "bench", "namespace": "default"},
            "spec": {"replicas": per_member,
                     "selector": {"matchLabels": {"app": "bench"}},
                     "template": {"metadata": {"labels": {"app": "bench"}},
                                  "spec": {"containers": [{"name": "c", "image": "nginx:1.27",
                                            "resources": {"requests": {"cpu": "10m", "memory": "16Mi"}}}]}}}
        }))
        .expect("deployment");
        Api::<Deployment>::namespaced(member, "default")
            .create(&PostParams::default(), &d)
            .await
            .expect("create deployment");
        bar.inc(1);
    }
    bar.finish_and_clear();

    // The unified view sees every pod (its caches filled).
    let unified = client(&kubeconfig, "flotilla-all").await;
    let bar = harness::progress(pods, "pods in the unified view");
    let deadline = Instant::now() + Duration::from_secs(600);
    loop {
        let request = http::Request::get("/api/v1/pods")
            .body(Vec::new())
            .expect("request");
        let n = unified
            .request_text(request)
            .await
            .map(|b| count_items(&b))
            .unwrap_or(0);
        bar.set_position(n as u64);
        if n >= pods {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{n} of {pods} pods after 10 minutes"
        );
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    bar.finish_and_clear();

    // One API server holding the same pods.
    let single_dir = running.dir.path().join("single");
    let log = std::fs::File::create(running.dir.path().join("single.log")).expect("log");
    let _single = Guard(
        Command::new(flotilla())
            .args(["apiserver", "--bind", "127.0.0.1:0", "--storage", "memory"])
            .arg("--data-dir")
            .arg(&single_dir)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("flotilla apiserver"),
    );
    let single_kubeconfig = single_dir.join("kubeconfig");
    while !single_kubeconfig.exists() {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let single = client(&single_kubeconfig, "flotilla").await;
    let bar = harness::progress(pods, "copies in one API server");
    for m in 1..=members {
        // one namespace per member: pod names may repeat across members
        let namespace = format!("member{m}");
        let ns: k8s_openapi::api::core::v1::Namespace =
            serde_json::from_value(json!({"metadata": {"name": namespace}})).expect("namespace");
        Api::<k8s_openapi::api::core::v1::Namespace>::all(single.clone())
            .create(&PostParams::default(), &ns)
            .await
            .expect("create namespace");
        let single_pods: Api<Pod> = Api::namespaced(single.clone(), &namespace);
        let member = client(&kubeconfig, &format!("member{m}")).await;
        let list = Api::<Pod>::namespaced(member, "default")
            .list(&ListParams::default())
            .await
            .expect("member pods");
        futures::stream::iter(list.items)
            .for_each_concurrent(32, |p| {
                let api = single_pods.clone();
                let bar = bar.clone();
                async move {
                    let created = api
                        .create(&PostParams::default(), &trimmed(&p))
                        .await
                        .expect("copy pod");
                    // a create drops status, as kube-apiserver does: write it
                    let mut with_status = created.clone();
                    with_status.status = p.status.clone();
                    api.replace_status(
                        &created.metadata.name.clone().unwrap_or_default(),
                        &PostParams::default(),
                        &with_status,
                    )
                    .await
                    .expect("copy pod status");
                    bar.inc(1);
                }
            })
            .await;
    }
    bar.finish_and_clear();

    // Warm both (connections, caches), then alternate.
    let (_, bytes_unified) = list_all(&unified).await;
    let (_, bytes_single) = list_all(&single).await;
    let bar = harness::progress(rounds, &format!("lists of {pods} pods, both ways"));
    let (mut u, mut s) = (Vec::new(), Vec::new());
    for _ in 0..rounds {
        u.push(list_all(&unified).await.0);
        s.push(list_all(&single).await.0);
        bar.inc(1);
    }
    bar.finish_and_clear();
    u.sort();
    s.sort();
    Run {
        members,
        pods,
        unified: u,
        single: s,
        bytes_unified,
        bytes_single,
    }
}

/// The `unified` scenario.
pub async fn scenario() {
    let quick = std::env::args().any(|a| a == "--quick");
    let cases: &[(usize, usize)] = if quick {
        &[(10, 1_000)]
    } else {
        &[(10, 10_000), (20, 10_000)]
    };
    let rounds = if quick { 10 } else { 20 };
    let mut table = String::from(
        "| members | pods | unified list p50 | p99 | one API server p50 | p99 | ratio p50 (goal ≤ 1.5) | response size unified / single |\n|---|---|---|---|---|---|---|---|",
    );
    let mut results = Vec::new();
    for &(members, pods) in cases {
        eprintln!("{pods} pods over {members} members ...");
        let r = run(members, pods, rounds).await;
        let (u50, u99) = (percentile(&r.unified, 50.0), percentile(&r.unified, 99.0));
        let (s50, s99) = (percentile(&r.single, 50.0), percentile(&r.single, 99.0));
        let ratio = u50.as_secs_f64() / s50.as_secs_f64().max(1e-9);
        table.push_str(&format!(
            "\n| {} | {} | {} ms | {} ms | {} ms | {} ms | {ratio:.2} | {:.1} / {:.1} MB |",
            r.members,
            r.pods,
            ms(u50),
            ms(u99),
            ms(s50),
            ms(s99),
            r.bytes_unified as f64 / 1e6,
            r.bytes_single as f64 / 1e6,
        ));
        results.push(json!({
            "members": r.members, "pods": r.pods, "rounds": rounds,
            "unified_ms": {"p50": ms(u50), "p99": ms(u99)},
            "single_server_ms": {"p50": ms(s50), "p99": ms(s99)},
            "ratio_p50": ratio,
            "bytes": {"unified": r.bytes_unified, "single": r.bytes_single},
        }));
    }
    harness::record("unified", &json!(results), &table);
}
