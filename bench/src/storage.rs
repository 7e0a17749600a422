//! Storage backends side by side in one run: the embedded redb store against etcd
//! (a single-member etcd on this machine, started for the run, its data on the
//! same disk), each behind the API server's endpoint layer in process.
//!
//! Figures: durable creates per second at concurrency 64; create latency one at a
//! time; watch latency, from sending a create to a watcher receiving its event,
//! on the same server and (etcd only) on a second API server sharing the etcd.
//!
//! Run: `cargo run --release -p flotilla-bench -- storage [--quick] [--record]`
//! (needs `etcd` on PATH; `scripts/install-etcd` installs Debian's).

use std::sync::Arc;
use std::time::{Duration, Instant};

use flotilla_apiserver::endpoints::{self, Api};
use flotilla_apiserver::server::{self, Backend};
use futures::StreamExt;
use http::Method;
use tokio::sync::mpsc;

use super::{admin, call, request};
use crate::harness::{self, percentile};

struct Sizes {
    creates: usize,
    concurrency: usize,
    sequential: usize,
    watched: usize,
}

struct Figures {
    creates_per_sec: f64,
    create: Vec<Duration>,
    watch: Vec<Duration>,
    other_replica: Option<Vec<Duration>>,
}

fn config_map(name: &str) -> Vec<u8> {
    serde_json::to_vec(&serde_json::json!({
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": name, "labels": {"app": "bench"}},
        "data": {"key": "value", "other": "x".repeat(256)}
    }))
    .expect("json")
}

async fn create(api: &Arc<Api>, name: &str) {
    let (status, body) = call(
        api,
        request(
            Method::POST,
            "/api/v1/namespaces/default/configmaps",
            "application/json",
            Some(config_map(name)),
        ),
    )
    .await;
    assert_eq!(status, 201, "{}", String::from_utf8_lossy(&body));
}

/// Starts a watch of ConfigMaps on `api` from now; each event's object name is
/// sent with the instant it arrived.
async fn watch_names(api: &Arc<Api>) -> mpsc::UnboundedReceiver<(String, Instant)> {
    let (_, body) = call(
        api,
        request(
            Method::GET,
            "/api/v1/namespaces/default/configmaps?limit=1",
            "application/json",
            None,
        ),
    )
    .await;
    let rv = serde_json::from_slice::<serde_json::Value>(&body).expect("list")["metadata"]
        ["resourceVersion"]
        .as_str()
        .expect("rv")
        .to_string();
    let response = endpoints::handle(
        api,
        request(
            Method::GET,
            &format!("/api/v1/namespaces/default/configmaps?watch=true&resourceVersion={rv}"),
            "application/json",
            None,
        ),
        Some(admin()),
    )
    .await;
    assert_eq!(response.status().as_u16(), 200);
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        let mut body = http_body_util::BodyExt::into_data_stream(response.into_body());
        let mut pending = Vec::new();
        while let Some(Ok(chunk)) = body.next().await {
            let arrived = Instant::now();
            pending.extend_from_slice(&chunk);
            while let Some(end) = pending.iter().position(|b| *b == b'\n') {
                let line: Vec<u8> = pending.drain(..=end).collect();
                let Ok(event) = serde_json::from_slice::<serde_json::Value>(&line) else {
                    continue;
                };
                let name = event["object"]["metadata"]["name"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string();
                if tx.send((name, arrived)).is_err() {
                    return;
                }
            }
        }
    });
    rx
}

/// Creates `count` ConfigMaps on `writer` one at a time; for each, the time from
/// sending it to the watcher on `watcher` receiving it.
async fn watch_latency(
    writer: &Arc<Api>,
    watcher: &Arc<Api>,
    tag: &str,
    count: usize,
) -> Vec<Duration> {
    let mut events = watch_names(watcher).await;
    let mut out = Vec::with_capacity(count);
    for i in 0..count {
        let name = format!("{tag}-{i}");
        let sent = Instant::now();
        create(writer, &name).await;
        let arrived = tokio::time::timeout(Duration::from_secs(30), async {
            loop {
                let (got, at) = events.recv().await.expect("watch open");
                if got == name {
                    return at;
                }
            }
        })
        .await
        .expect("event within 30 s");
        out.push(arrived.saturating_duration_since(sent));
    }
    out.sort();
    out
}

async fn measure(writer: Arc<Api>, other: Option<Arc<Api>>, sizes: &Sizes) -> Figures {
    let started = Instant::now();
    let per_task = sizes.creates / sizes.concurrency;
    let tasks: Vec<_> = (0..sizes.concurrency)
        .map(|t| {
            let api = writer.clone();
            tokio::spawn(async move {
                for i in 0..per_task {
                    create(&api, &format!("bulk-{t}-{i}")).await;
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.expect("create task");
    }
    let creates_per_sec = (per_task * sizes.concurrency) as f64 / started.elapsed().as_secs_f64();

    let mut create_latency = Vec::with_capacity(sizes.sequential);
    for i in 0..sizes.sequential {
        let t = Instant::now();
        create(&writer, &format!("one-{i}")).await;
        create_latency.push(t.elapsed());
    }
    create_latency.sort();

    let watch = watch_latency(&writer, &writer, "same", sizes.watched).await;
    let other_replica = match other {
        Some(other) => Some(watch_latency(&writer, &other, "other", sizes.watched).await),
        None => None,
    };
    Figures {
        creates_per_sec,
        create: create_latency,
        watch,
        other_replica,
    }
}

async fn open(config: &server::Config) -> Arc<Api> {
    let store = server::open_store(config).await.expect("store");
    Api::new(store, "127.0.0.1:0".into())
}

fn p(sorted: &[Duration], q: f64) -> String {
    format!("{:.2} ms", ms(sorted, q))
}

/// The `q`-th percentile in milliseconds, two decimals.
fn ms(sorted: &[Duration], q: f64) -> f64 {
    (percentile(sorted, q).as_secs_f64() * 1e5).round() / 100.0
}

/// The `storage` scenario.
pub async fn scenario() {
    let quick = std::env::args().any(|a| a == "--quick");
    let sizes = if quick {
        Sizes {
            creates: 1_024,
            concurrency: 64,
            sequential: 200,
            watched: 200,
        }
    } else {
        Sizes {
            creates: 10_048,
            concurrency: 64,
            sequential: 1_000,
            watched: 1_000,
        }
    };

    let redb_dir = tempfile::tempdir().expect("tempdir");
    let redb = {
        let api = open(&server::Config::new(redb_dir.path()).backend(Backend::Redb)).await;
        measure(api, None, &sizes).await
    };

    let etcd = flotilla_tests::etcd::Etcd::start();
    let replica_dirs = [
        tempfile::tempdir().expect("tempdir"),
        tempfile::tempdir().expect("tempdir"),
    ];
    let etcd_config = |dir: &std::path::Path| {
        let mut config = server::Config::new(dir).backend(Backend::Etcd);
        config.etcd.endpoints = vec![etcd.url.clone()];
        config
    };
    let first = open(&etcd_config(replica_dirs[0].path())).await;
    let second = open(&etcd_config(replica_dirs[1].path())).await;
    let on_etcd = measure(first, Some(second), &sizes).await;

    let mut table = format!(
        "| storage | creates/s, concurrency {} ({} ConfigMaps) | create p50 | create p99 | write → watch event p50 | p99 | write → watch event on a second API server p50 | p99 |\n|---|---|---|---|---|---|---|---|\n",
        sizes.concurrency, sizes.creates
    );
    for (name, f) in [
        ("redb (embedded)", &redb),
        ("etcd (1 member, same machine)", &on_etcd),
    ] {
        let (other_p50, other_p99) = match &f.other_replica {
            Some(o) => (p(o, 50.0), p(o, 99.0)),
            None => ("—".to_string(), "—".to_string()),
        };
        table.push_str(&format!(
            "| {name} | {:.0} | {} | {} | {} | {} | {other_p50} | {other_p99} |\n",
            f.creates_per_sec,
            p(&f.create, 50.0),
            p(&f.create, 99.0),
            p(&f.watch, 50.0),
            p(&f.watch, 99.0),
        ));
    }
    let figures = |f: &Figures| {
        serde_json::json!({
            "creates_per_sec": f.creates_per_sec.round(),
            "create_p50_ms": ms(&f.create, 50.0),
            "create_p99_ms": ms(&f.create, 99.0),
            "watch_p50_ms": ms(&f.watch, 50.0),
            "watch_p99_ms": ms(&f.watch, 99.0),
            "other_replica_watch_p50_ms": f.other_replica.as_ref().map(|o| ms(o, 50.0)),
            "other_replica_watch_p99_ms": f.other_replica.as_ref().map(|o| ms(o, 99.0)),
        })
    };
    let results = serde_json::json!({
        "creates": sizes.creates,
        "concurrency": sizes.concurrency,
        "sequential": sizes.sequential,
        "watched": sizes.watched,
        "redb": figures(&redb),
        "etcd": figures(&on_etcd),
    });
    harness::record("storage", &results, table.trim_end());
}
