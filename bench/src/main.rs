//! API server benchmark: the memory and redb storage backends side by side in one
//! run, through the HTTP endpoint layer in process (request decoding, registry,
//! storage, response encoding; TLS and sockets excluded).
//!
//! Run: `cargo run --release -p flotilla-bench [-- SCENARIO] [--quick] [--record]`.
//! Scenarios:
//!
//! - `apiserver` (the default): this file — storage backends and admission;
//! - `webhook`: the admission webhook's round trip (`webhook.rs`);
//! - `propagation`: template → member latency against a single API write
//!   (`propagation.rs`, needs the release `flotilla` binary);
//! - `unified`: a unified list over M members against one API server holding
//!   the same objects (`unified.rs`, needs the release binary);
//! - `unified-page`: the unified view's merge, pages, Tables and memory in
//!   process (`unified_page.rs`);
//! - `unified-read`: every pod of a running `flotilla up` read through the
//!   unified view without a client-side rate limit (`unified_read.rs`, used by
//!   `bench/unified.sh`);
//! - `mcs`: an endpoint change in an exporting member to the importing
//!   members' slices (`mcs.rs`, needs the release binary);
//! - `storage`: writes/s and watch latency on etcd against embedded redb
//!   (`storage.rs`, needs `etcd` on PATH).
//!
//! Each prints a Markdown table; `--record` also writes
//! `bench/results/SCENARIO.json` and the table into `docs/benchmarks.md`
//! (see [`harness::record`]).

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use flotilla_apiserver::endpoints::{self, Api};
use flotilla_apiserver::server::auth::User;
use flotilla_apiserver::server::{self, Backend};
use futures::StreamExt;
use http::{Method, Request};
use http_body_util::{BodyExt, Full};

mod harness;
mod mcs;
mod propagation;
mod storage;
mod unified;
mod unified_page;
mod unified_read;
mod webhook;

struct Sizes {
    creates: usize,
    concurrency: usize,
    gets: usize,
    pods: usize,
    watchers: usize,
    events: usize,
}

fn request(method: Method, uri: &str, accept: &str, body: Option<Vec<u8>>) -> Request<Full<Bytes>> {
    let mut b = Request::builder()
        .method(method)
        .uri(uri)
        .header("accept", accept);
    if body.is_some() {
        b = b.header("content-type", "application/json");
    }
    b.body(Full::new(Bytes::from(body.unwrap_or_default())))
        .expect("request")
}

fn pod(name: &str) -> Vec<u8> {
    serde_json::to_vec(&serde_json::json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "labels": {"app": "bench", "idx": name}},
        "spec": {"containers": [{"name": "app", "image": "nginx:1.25", "ports": [{"containerPort": 80}],
                                  "resources": {"requests": {"cpu": "100m", "memory": "64Mi"}}}],
                 "nodeName": "node-1"},
        "status": {"phase": "Running", "podIP": "10.0.0.1"}
    }))
    .expect("pod json")
}

async fn call(api: &Arc<Api>, req: Request<Full<Bytes>>) -> (u16, Bytes) {
    let resp = endpoints::handle(api, req, Some(admin())).await;
    let status = resp.status().as_u16();
    let body = resp.into_body().collect().await.expect("body").to_bytes();
    (status, body)
}

/// The admin user every benchmark request is made as (admission runs as for users).
fn admin() -> Arc<User> {
    Arc::new(User {
        name: "admin".into(),
        uid: String::new(),
        groups: vec!["system:masters".into()],
        extra: Default::default(),
    })
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

struct Figures {
    creates_per_sec: f64,
    get_p50: Duration,
    get_p99: Duration,
    list_json: Duration,
    list_table: Duration,
    watch_all: Duration,
    watch_write: Duration,
}

async fn bench(backend: Backend, sizes: &Sizes) -> Figures {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = server::Config::new(dir.path()).backend(backend);
    let store = server::open_store(&config).await.expect("store");
    let api = Api::new(store, "127.0.0.1:0".into());
    let table = "application/json;as=Table;v=v1;g=meta.k8s.io,application/json";

    // Durable creates at the given concurrency.
    let started = Instant::now();
    let per_task = sizes.creates / sizes.concurrency;
    let tasks: Vec<_> = (0..sizes.concurrency)
        .map(|t| {
            let api = api.clone();
            tokio::spawn(async move {
                for i in 0..per_task {
                    let req = request(
                        Method::POST,
                        "/api/v1/namespaces/default/pods",
                        "application/json",
                        Some(pod(&format!("p-{t}-{i}"))),
                    );
                    let (status, _) = call(&api, req).await;
                    assert_eq!(status, 201);
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.expect("create task");
    }
    let creates = per_task * sizes.concurrency;
    let creates_per_sec = creates as f64 / started.elapsed().as_secs_f64();

    // Top up to exactly `pods` pods for the list scenario.
    for i in creates..sizes.pods {
        let (status, _) = call(
            &api,
            request(
                Method::POST,
                "/api/v1/namespaces/default/pods",
                "application/json",
                Some(pod(&format!("q-{i}"))),
            ),
        )
        .await;
        assert_eq!(status, 201);
    }

    // Get latency.
    let mut lat = Vec::with_capacity(sizes.gets);
    for i in 0..sizes.gets {
        let name = format!("p-{}-{}", i % sizes.concurrency, i % per_task.max(1));
        let t = Instant::now();
        let (status, _) = call(
            &api,
            request(
                Method::GET,
                &format!("/api/v1/namespaces/default/pods/{name}"),
                "application/json",
                None,
            ),
        )
        .await;
        lat.push(t.elapsed());
        assert_eq!(status, 200);
    }
    lat.sort();

    // List of all pods as JSON and as a Table (best of 5).
    let mut list_json = Duration::MAX;
    let mut list_table = Duration::MAX;
    for _ in 0..5 {
        let t = Instant::now();
        let (status, body) = call(
            &api,
            request(
                Method::GET,
                "/api/v1/namespaces/default/pods",
                "application/json",
                None,
            ),
        )
        .await;
        list_json = list_json.min(t.elapsed());
        assert_eq!(status, 200);
        assert!(body.len() > sizes.pods * 100);
        let t = Instant::now();
        let (status, _) = call(
            &api,
            request(Method::GET, "/api/v1/namespaces/default/pods", table, None),
        )
        .await;
        list_table = list_table.min(t.elapsed());
        assert_eq!(status, 200);
    }

    // Watchers, each receiving every event of a burst of writes.
    let (_, body) = call(
        &api,
        request(
            Method::GET,
            "/api/v1/namespaces/default/configmaps",
            "application/json",
            None,
        ),
    )
    .await;
    let rv = serde_json::from_slice::<serde_json::Value>(&body).expect("list")["metadata"]["resourceVersion"]
        .as_str()
        .expect("rv")
        .to_string();
    let mut watchers = Vec::new();
    for _ in 0..sizes.watchers {
        let resp = endpoints::handle(
            &api,
            request(
                Method::GET,
                &format!("/api/v1/namespaces/default/configmaps?watch=true&resourceVersion={rv}"),
                "application/json",
                None,
            ),
            Some(admin()),
        )
        .await;
        let want = sizes.events;
        watchers.push(tokio::spawn(async move {
            let mut body = resp.into_body().into_data_stream();
            let mut seen = 0usize;
            while seen < want {
                match body.next().await {
                    Some(Ok(chunk)) => seen += chunk.iter().filter(|b| **b == b'\n').count(),
                    _ => break,
                }
            }
            seen
        }));
    }
    let started = Instant::now();
    let writers: Vec<_> = (0..sizes.concurrency)
        .map(|t| {
            let api = api.clone();
            let n = sizes.events / sizes.concurrency;
            tokio::spawn(async move {
                for i in 0..n {
                    let cm = serde_json::to_vec(&serde_json::json!({"metadata": {"name": format!("cm-{t}-{i}")}, "data": {"k": "v"}})).expect("json");
                    let (status, _) = call(&api, request(Method::POST, "/api/v1/namespaces/default/configmaps", "application/json", Some(cm))).await;
                    assert_eq!(status, 201);
                }
            })
        })
        .collect();
    for w in writers {
        w.await.expect("writer");
    }
    let watch_write = started.elapsed();
    for w in watchers {
        let seen = w.await.expect("watcher");
        assert_eq!(seen, sizes.events - sizes.events % sizes.concurrency);
    }
    let watch_all = started.elapsed();

    Figures {
        creates_per_sec,
        get_p50: percentile(&lat, 0.50),
        get_p99: percentile(&lat, 0.99),
        list_json,
        list_table,
        watch_all,
        watch_write,
    }
}

/// Create latency of ConfigMaps without webhooks and with one mutating (adds a
/// label) and one validating (allows) webhook, over real HTTPS: (p50, p99) each.
async fn admission(requests: usize) -> ((Duration, Duration), (Duration, Duration)) {
    use flotilla_tests::webhook::{WebhookServer, allow, patch};
    let hooks = tokio::task::spawn_blocking(|| {
        WebhookServer::start(|seen| {
            if seen.path == "/mutate" {
                patch(serde_json::json!([{"op": "add", "path": "/metadata/labels", "value": {"admitted": "yes"}}])).into()
            } else {
                allow().into()
            }
        })
    })
    .await
    .expect("webhook server");
    let (mutate_url, validate_url, ca_bundle) = (
        hooks.url("/mutate"),
        hooks.url("/validate"),
        hooks.ca_bundle(),
    );
    let dir = tempfile::tempdir().expect("tempdir");
    let store = server::open_store(&server::Config::new(dir.path()).backend(Backend::Memory))
        .await
        .expect("store");
    let api = Api::new(store, "127.0.0.1:0".into());
    let measure = |api: Arc<Api>, prefix: &'static str| async move {
        let mut lat = Vec::with_capacity(requests);
        for i in 0..requests {
            let cm = serde_json::to_vec(&serde_json::json!({"metadata": {"name": format!("{prefix}-{i}")}, "data": {"k": "v"}})).expect("json");
            let t = Instant::now();
            let (status, _) = call(
                &api,
                request(
                    Method::POST,
                    "/api/v1/namespaces/default/configmaps",
                    "application/json",
                    Some(cm),
                ),
            )
            .await;
            lat.push(t.elapsed());
            assert_eq!(status, 201);
        }
        lat.sort();
        (percentile(&lat, 0.50), percentile(&lat, 0.99))
    };
    let without = measure(api.clone(), "plain").await;
    let hook = |name: &str, url: &str| {
        serde_json::json!({"name": name, "clientConfig": {"url": url, "caBundle": ca_bundle},
            "rules": [{"operations": ["CREATE"], "apiGroups": [""], "apiVersions": ["v1"], "resources": ["configmaps"]}],
            "failurePolicy": "Fail", "sideEffects": "None", "admissionReviewVersions": ["v1"]})
    };
    for (plural, kind, name, path) in [
        (
            "mutatingwebhookconfigurations",
            "MutatingWebhookConfiguration",
            "mutate.bench",
            mutate_url.as_str(),
        ),
        (
            "validatingwebhookconfigurations",
            "ValidatingWebhookConfiguration",
            "validate.bench",
            validate_url.as_str(),
        ),
    ] {
        let body = serde_json::to_vec(
            &serde_json::json!({"apiVersion": "admissionregistration.k8s.io/v1", "kind": kind,
            "metadata": {"name": name}, "webhooks": [hook(name, path)]}),
        )
        .expect("json");
        let (status, _) = call(
            &api,
            request(
                Method::POST,
                &format!("/apis/admissionregistration.k8s.io/v1/{plural}"),
                "application/json",
                Some(body),
            ),
        )
        .await;
        assert_eq!(status, 201);
    }
    let with = measure(api.clone(), "hooked").await;
    // The webhook server owns a runtime, which must not be dropped on this one.
    let _ = tokio::task::spawn_blocking(move || drop(hooks)).await;
    (without, with)
}

fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1000.0)
}

fn print_webhook(f: &webhook::Figures) {
    println!("| admission webhook round trip (HTTPS, kept-alive) | p50 | p99 | max | goal |");
    println!("|---|---|---|---|---|");
    println!(
        "| PropagationPolicy mutate/validate at {} req/s ({} requests) | {} | {} | {} | < 2 ms p99 |",
        f.rate,
        f.requests,
        ms(f.p50),
        ms(f.p99),
        ms(f.max)
    );
}

#[tokio::main]
async fn main() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let quick = std::env::args().any(|a| a == "--quick");
    let webhook_seconds = if quick { 2 } else { 20 };
    let scenario = std::env::args()
        .skip(1)
        .find(|a| !a.starts_with("--") && a.parse::<f64>().is_err())
        .unwrap_or_else(|| "apiserver".to_string());
    match scenario.as_str() {
        "apiserver" => {}
        "webhook" => {
            print_webhook(&webhook::round_trip(500, webhook_seconds).await);
            return;
        }
        "propagation" => return propagation::scenario().await,
        "unified" => return unified::scenario().await,
        "unified-page" => return unified_page::scenario().await,
        "unified-read" => return unified_read::scenario().await,
        "mcs" => return mcs::scenario().await,
        "storage" => return storage::scenario().await,
        other => {
            eprintln!(
                "unknown scenario {other:?}: want apiserver, webhook, propagation, unified, unified-page, unified-read, mcs or storage"
            );
            std::process::exit(2);
        }
    }
    let sizes = if quick {
        Sizes {
            creates: 2_048,
            concurrency: 64,
            gets: 2_000,
            pods: 2_048,
            watchers: 10,
            events: 1_024,
        }
    } else {
        Sizes {
            creates: 10_048,
            concurrency: 64,
            gets: 20_000,
            pods: 10_048,
            watchers: 100,
            events: 10_048,
        }
    };
    let (plain, hooked) = admission(if quick { 200 } else { 2_000 }).await;
    let memory = bench(Backend::Memory, &sizes).await;
    let redb = bench(Backend::Redb, &sizes).await;
    println!("| scenario | memory | redb (durable) | goal |");
    println!("|---|---|---|---|");
    println!(
        "| creates/s, concurrency {} ({} pods) | {:.0} | {:.0} | ≥ 10,000 durable |",
        sizes.concurrency, sizes.creates, memory.creates_per_sec, redb.creates_per_sec
    );
    println!(
        "| get p50 | {} | {} | |",
        ms(memory.get_p50),
        ms(redb.get_p50)
    );
    println!(
        "| get p99 | {} | {} | < 1 ms |",
        ms(memory.get_p99),
        ms(redb.get_p99)
    );
    println!(
        "| list {} pods, JSON | {} | {} | < 100 ms |",
        sizes.pods,
        ms(memory.list_json),
        ms(redb.list_json)
    );
    println!(
        "| list {} pods, Table | {} | {} | < 100 ms |",
        sizes.pods,
        ms(memory.list_table),
        ms(redb.list_table)
    );
    println!(
        "| {} watchers × {} events: writes done | {} | {} | |",
        sizes.watchers,
        sizes.events,
        ms(memory.watch_write),
        ms(redb.watch_write)
    );
    println!(
        "| {} watchers × {} events: all delivered | {} | {} | < 2 s |",
        sizes.watchers,
        sizes.events,
        ms(memory.watch_all),
        ms(redb.watch_all)
    );
    println!();
    println!("| admission (memory store) | p50 | p99 | goal |");
    println!("|---|---|---|---|");
    println!(
        "| create, no webhooks | {} | {} | |",
        ms(plain.0),
        ms(plain.1)
    );
    println!(
        "| create, 1 mutating + 1 validating webhook | {} | {} | |",
        ms(hooked.0),
        ms(hooked.1)
    );
    println!(
        "| added by the webhooks | {} | {} | < 2 ms p99 |",
        ms(hooked.0.saturating_sub(plain.0)),
        ms(hooked.1.saturating_sub(plain.1))
    );
    println!();
    print_webhook(&webhook::round_trip(500, webhook_seconds).await);
}
