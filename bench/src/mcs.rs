//! Multi-cluster services benchmark: latency from an endpoint change in the
//! exporting member to the updated EndpointSlices in every importing member,
//! for 1 and 10 importing members side by side in one run.
//!
//! Each run starts `flotilla up --members N+1` (every controller in
//! process), exports Service `web` from member1 (Deployment, Service and
//! ServiceExport created in member1) and imports it into member2..member(N+1)
//! (ServiceImport propagated there from the control plane). Then it scales
//! member1's Deployment between 1 and 2 replicas, over and over; watches on
//! every member record
//! when member1's own EndpointSlices show the new number of ready endpoints
//! (t0) and when each importing member's `derived-web` slices show it (t1).
//! Latency = t1 − t0, one sample per importing member and change.
//!
//! Run: `cargo build --release -p flotilla && cargo run --release -p
//! flotilla-bench -- mcs [--quick] [--record]`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::StreamExt;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::api::{ApiResource, DynamicObject, Patch, PatchParams, PostParams};
use kube::runtime::{WatchStreamExt, reflector, watcher};
use kube::{Api, Client};
use serde_json::{Value, json};

use crate::harness::{self, client, ms};

fn resource(group: &str, version: &str, kind: &str, plural: &str) -> ApiResource {
    ApiResource {
        group: group.into(),
        version: version.into(),
        api_version: if group.is_empty() {
            version.into()
        } else {
            format!("{group}/{version}")
        },
        kind: kind.into(),
        plural: plural.into(),
    }
}

async fn create(cp: &Client, r: &ApiResource, obj: Value) {
    let api = Api::<DynamicObject>::namespaced_with(cp.clone(), "default", r);
    let obj: DynamicObject = serde_json::from_value(obj).expect("object");
    api.create(&PostParams::default(), &obj)
        .await
        .expect("created");
}

fn policy(name: &str, selectors: Value, clusters: Vec<String>) -> Value {
    json!({
        "apiVersion": "policy.karmada.io/v1alpha1", "kind": "PropagationPolicy",
        "metadata": {"name": name, "namespace": "default"},
        "spec": {"resourceSelectors": selectors,
                 "placement": {"clusterAffinity": {"clusterNames": clusters},
                               "replicaScheduling": {"replicaSchedulingType": "Duplicated"}}}
    })
}

/// Ready endpoints over the slices of a cache.
fn ready_endpoints(store: &reflector::Store<EndpointSlice>) -> usize {
    store
        .state()
        .iter()
        .flat_map(|s| s.endpoints.iter())
        .filter(|e| e.conditions.as_ref().and_then(|c| c.ready).unwrap_or(false))
        .count()
}

/// Per member: every change of its ready-endpoint count, with its time.
type History = Arc<Mutex<HashMap<usize, Vec<(usize, Instant)>>>>;

fn watch(
    member: usize,
    client: Client,
    service: &str,
    history: History,
) -> tokio::task::JoinHandle<()> {
    let api: Api<EndpointSlice> = Api::namespaced(client, "default");
    let cfg = watcher::Config::default().labels(&format!("kubernetes.io/service-name={service}"));
    tokio::spawn(async move {
        let (store, writer) = reflector::store();
        let stream = reflector(writer, watcher(api, cfg))
            .default_backoff()
            .touched_objects();
        let mut stream = std::pin::pin!(stream);
        let mut last = usize::MAX;
        while let Some(ev) = stream.next().await {
            if ev.is_err() {
                continue;
            }
            let n = ready_endpoints(&store);
            if n != last {
                last = n;
                history
                    .lock()
                    .expect("lock")
                    .entry(member)
                    .or_default()
                    .push((n, Instant::now()));
            }
        }
    })
}

/// The first time at or after `after` that `member` showed `count`.
fn seen(history: &History, member: usize, count: usize, after: Instant) -> Option<Instant> {
    history
        .lock()
        .expect("lock")
        .get(&member)?
        .iter()
        .find(|(n, t)| *n == count && *t >= after)
        .map(|(_, t)| *t)
}

struct Run {
    importers: usize,
    changes: usize,
    p50: Duration,
    p99: Duration,
    max: Duration,
    all_p99: Duration,
}

fn pct(v: &[Duration], p: usize) -> Duration {
    v[(v.len() * p / 100).min(v.len() - 1)]
}

async fn run(importers: usize, changes: usize) -> Run {
    let members = importers + 1;
    let running = harness::up(members, 3, &[]).await;
    let kubeconfig = running.kubeconfig.clone();
    let cp = client(&kubeconfig, "flotilla").await;
    let member1 = client(&kubeconfig, "member1").await;
    let history: History = Arc::default();
    let mut watches = vec![watch(1, member1.clone(), "web", history.clone())];
    for m in 2..=members {
        watches.push(watch(
            m,
            client(&kubeconfig, &format!("member{m}")).await,
            "derived-web",
            history.clone(),
        ));
    }
    let deploy = resource("apps", "v1", "Deployment", "deployments");
    let pp = resource(
        "policy.karmada.io",
        "v1alpha1",
        "PropagationPolicy",
        "propagationpolicies",
    );
    // the exported workload lives in member1 itself, so that the
    // measurement starts at its endpoint change (not at the propagation of a
    // template change)
    create(&member1, &deploy, json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "web", "namespace": "default"},
        "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "web"}},
                 "template": {"metadata": {"labels": {"app": "web"}},
                              "spec": {"containers": [{"name": "c", "image": "nginx:1.27", "ports": [{"containerPort": 8080}]}]}}}
    })).await;
    create(&member1, &resource("", "v1", "Service", "services"), json!({
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": "web", "namespace": "default"},
        "spec": {"selector": {"app": "web"}, "ports": [{"name": "http", "port": 80, "targetPort": 8080}]}
    })).await;
    let mcs =
        |kind: &str, plural: &str| resource("multicluster.x-k8s.io", "v1alpha1", kind, plural);
    create(
        &member1,
        &mcs("ServiceExport", "serviceexports"),
        json!({
            "apiVersion": "multicluster.x-k8s.io/v1alpha1", "kind": "ServiceExport",
            "metadata": {"name": "web", "namespace": "default"}
        }),
    )
    .await;
    create(&cp, &mcs("ServiceImport", "serviceimports"), json!({
        "apiVersion": "multicluster.x-k8s.io/v1alpha1", "kind": "ServiceImport",
        "metadata": {"name": "web", "namespace": "default"},
        "spec": {"type": "ClusterSetIP", "ports": [{"name": "http", "port": 80, "protocol": "TCP"}]}
    })).await;
    create(&cp, &pp, policy("web-import", json!([
        {"apiVersion": "multicluster.x-k8s.io/v1alpha1", "kind": "ServiceImport", "name": "web"}
    ]), (2..=members).map(|m| format!("member{m}")).collect())).await;

    // every importer shows the first endpoint
    let setup = Instant::now();
    let wait_all = |count: usize, after: Instant| {
        let history = history.clone();
        async move {
            let deadline = Instant::now() + Duration::from_secs(60);
            loop {
                let times: Vec<Option<Instant>> = (2..=members)
                    .map(|m| seen(&history, m, count, after))
                    .collect();
                if times.iter().all(Option::is_some) {
                    return times.into_iter().flatten().collect::<Vec<_>>();
                }
                assert!(
                    Instant::now() < deadline,
                    "importers did not reach {count} endpoints"
                );
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
        }
    };
    wait_all(1, setup).await;

    let api = Api::<DynamicObject>::namespaced_with(member1.clone(), "default", &deploy);
    let mut samples = Vec::new();
    let mut per_change = Vec::new();
    let mut replicas = 1;
    for _ in 0..changes {
        replicas = if replicas == 1 { 2 } else { 1 };
        let patched = Instant::now();
        api.patch(
            "web",
            &PatchParams::default(),
            &Patch::Merge(&json!({"spec": {"replicas": replicas}})),
        )
        .await
        .expect("scaled");
        let deadline = Instant::now() + Duration::from_secs(60);
        let t0 = loop {
            if let Some(t) = seen(&history, 1, replicas, patched) {
                break t;
            }
            assert!(
                Instant::now() < deadline,
                "member1 did not reach {replicas} endpoints: {:?}",
                history.lock().expect("lock").get(&1).map(|h| h
                    .iter()
                    .map(|(n, t)| (*n, t.saturating_duration_since(patched)))
                    .collect::<Vec<_>>())
            );
            tokio::time::sleep(Duration::from_millis(2)).await;
        };
        let times = wait_all(replicas, patched).await;
        let lat: Vec<Duration> = times
            .iter()
            .map(|t| t.saturating_duration_since(t0))
            .collect();
        per_change.push(lat.iter().max().copied().unwrap_or_default());
        samples.extend(lat);
        // let the member settle before the next change
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    for w in watches {
        w.abort();
    }
    samples.sort();
    per_change.sort();
    Run {
        importers,
        changes,
        p50: pct(&samples, 50),
        p99: pct(&samples, 99),
        max: samples[samples.len() - 1],
        all_p99: pct(&per_change, 99),
    }
}

/// The `mcs` scenario.
pub async fn scenario() {
    let quick = std::env::args().any(|a| a == "--quick");
    let changes = if quick { 10 } else { 50 };
    let mut runs = Vec::new();
    for importers in [1, 10] {
        eprintln!("{changes} endpoint changes exported to {importers} importing members ...");
        runs.push(run(importers, changes).await);
    }
    let mut table = String::from(
        "| importing members | changes | samples | p50 | p99 | max | slowest importer per change, p99 |\n|---|---|---|---|---|---|---|",
    );
    let mut results = Vec::new();
    for r in runs {
        table.push_str(&format!(
            "\n| {} | {} | {} | {} ms | {} ms | {} ms | {} ms |",
            r.importers,
            r.changes,
            r.changes * r.importers,
            ms(r.p50),
            ms(r.p99),
            ms(r.max),
            ms(r.all_p99),
        ));
        results.push(json!({
            "importing_members": r.importers, "changes": r.changes,
            "latency_ms": {"p50": ms(r.p50), "p99": ms(r.p99), "max": ms(r.max)},
            "slowest_importer_per_change_p99_ms": ms(r.all_p99),
        }));
    }
    harness::record("mcs", &json!(results), &table);
}
