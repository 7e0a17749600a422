//! The unified view's own cost, in process (no servers, no network, nothing else
//! running in the same runtime): N simulated pods spread over M members' cached
//! maps, listed the way the aggregated server lists them, against the same N
//! pods in one map (what one API server walks for its list). Measured side by
//! side in one run, so the ratios hold on a loaded machine:
//!
//! - a whole JSON list (merge every member's map, write the cached bytes);
//! - every page of 500 (a k-way merge from the continue token's key), with the
//!   cost of one page, which must not grow with N;
//! - one Table page of 500 from the rows the cache keeps (kube's pod columns
//!   plus CLUSTER, each object's PartialObjectMetadata, as kubectl asks by
//!   default), against the same page converted from the parsed objects (how
//!   Tables were made before the rows were cached);
//! - the whole list as one Table (what `kubectl get -A --chunk-size=0` asks for);
//! - the caches' estimated heap against the objects' JSON.
//!
//! Run: `cargo run --release -p flotilla-bench -- unified-page [--quick] [--record]`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use flotilla_apiserver::endpoints::table::{IncludeObject, ListMeta};
use flotilla_apiserver::unified::cache::{self, Object};
use flotilla_apiserver::unified::merge::{Source, View};
use flotilla_apiserver::unified::{Gvr, table};
use serde_json::{Value, json};

use crate::harness::{self, ms, percentile};

fn pods() -> Gvr {
    Gvr::new("", "v1", "pods", "Pod", true)
}

/// A pod as the simulated members serve it (managedFields included).
fn pod(member: usize, i: usize) -> Value {
    let name = format!("bench-7957885594-{i:05}");
    json!({"kind":"Pod","apiVersion":"v1","metadata":{"name": name,"generateName":"bench-7957885594-","namespace":"default","uid":format!("d72ad2d0-bcfa-471c-9613-{member:04}{i:08}"),"resourceVersion":format!("{}", 100 + i),"creationTimestamp":"2026-11-26T08:13:34Z","labels":{"app":"bench","pod-template-hash":"7957885594"},"ownerReferences":[{"apiVersion":"apps/v1","kind":"ReplicaSet","name":"bench-7957885594","uid":"05f46c54-a829-49c8-8563-974dc3606215","controller":true,"blockOwnerDeletion":true}],
        "managedFields":[{"manager":"kube-controller-manager","operation":"Update","apiVersion":"v1","time":"2026-11-26T08:13:34Z","fieldsType":"FieldsV1","fieldsV1":{"f:metadata":{"f:generateName":{},"f:labels":{"f:app":{},"f:pod-template-hash":{}},"f:ownerReferences":{"k:{\"uid\":\"05f46c54-a829-49c8-8563-974dc3606215\"}":{".":{},"f:apiVersion":{},"f:blockOwnerDeletion":{},"f:controller":{},"f:kind":{},"f:name":{},"f:uid":{}}}},"f:spec":{"f:containers":{"k:{\"name\":\"nginx\"}":{".":{},"f:image":{},"f:imagePullPolicy":{},"f:name":{},"f:resources":{},"f:terminationMessagePath":{},"f:terminationMessagePolicy":{}}},"f:dnsPolicy":{},"f:enableServiceLinks":{},"f:restartPolicy":{},"f:schedulerName":{},"f:securityContext":{},"f:terminationGracePeriodSeconds":{}}}},
            {"manager":"kube-scheduler","operation":"Update","apiVersion":"v1","time":"2026-11-26T08:13:34Z","fieldsType":"FieldsV1","fieldsV1":{"f:spec":{"f:nodeName":{}}}},
            {"manager":"kubelet","operation":"Update","apiVersion":"v1","time":"2026-11-26T08:13:34Z","fieldsType":"FieldsV1","fieldsV1":{"f:status":{"f:conditions":{"k:{\"type\":\"Ready\"}":{".":{},"f:lastProbeTime":{},"f:lastTransitionTime":{},"f:status":{},"f:type":{}}},"f:containerStatuses":{},"f:hostIP":{},"f:phase":{},"f:podIP":{},"f:startTime":{}}},"subresource":"status"}]},
        "spec":{"containers":[{"name":"nginx","image":"nginx","resources":{},"imagePullPolicy":"Always","terminationMessagePath":"/dev/termination-log","terminationMessagePolicy":"File"}],"restartPolicy":"Always","dnsPolicy":"ClusterFirst","terminationGracePeriodSeconds":30,"schedulerName":"default-scheduler","securityContext":{},"enableServiceLinks":true,"nodeName":format!("member{member}-node-{}", i % 10)},
        "status":{"phase":"Running","conditions":[{"type":"Ready","status":"True","lastProbeTime":null,"lastTransitionTime":"2026-11-26T08:13:34Z"},{"type":"PodScheduled","status":"True","lastProbeTime":null,"lastTransitionTime":"2026-11-26T08:13:34Z"}],"hostIP":"172.18.0.2","podIP":format!("10.244.{}.{}", i / 250, i % 250),"startTime":"2026-11-26T08:13:34Z","qosClass":"BestEffort","containerStatuses":[{"name":"nginx","image":"nginx","imageID":"nginx@sha256:96e5","containerID":"containerd://284f","ready":true,"started":true,"restartCount":0,"state":{"running":{"startedAt":"2026-11-26T08:13:34Z"}},"lastState":{}}]}})
}

/// A whole JSON list, as the aggregated server writes it: the cached bytes one
/// after the other.
fn json_list(view: &View) -> usize {
    let page = view.page(None, None);
    let mut out =
        Vec::with_capacity(page.items.iter().map(|o| o.json.len() + 1).sum::<usize>() + 64);
    out.extend_from_slice(b"{\"kind\":\"PodList\",\"apiVersion\":\"v1\",\"items\":[");
    for (i, o) in page.items.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        o.json.write_to(&mut out);
    }
    out.extend_from_slice(b"]}");
    std::hint::black_box(&out);
    out.len()
}

/// Every page of 500, walked with the tokens' keys; the time of each page.
fn walk(view: &View) -> (usize, Vec<Duration>) {
    let mut after = None;
    let mut n = 0;
    let mut times = Vec::new();
    loop {
        let started = Instant::now();
        let page = view.page(after.as_ref(), Some(500));
        times.push(started.elapsed());
        n += page.items.len();
        match page.next {
            Some(k) => after = Some(k),
            None => return (n, times),
        }
    }
}

/// A Table of `limit` objects (all when `None`) from the rows the cache keeps,
/// encoded as the aggregated server encodes it.
fn table_of(view: &View, limit: Option<usize>) -> usize {
    let page = view.page(None, limit);
    let mut out = Vec::with_capacity(512 + page.items.len() * 1024);
    table::write_table(
        &mut out,
        &table::info_for(&pods()),
        &page.items,
        IncludeObject::Metadata,
        &ListMeta::default(),
        jiff::Timestamp::now(),
    );
    std::hint::black_box(&out);
    out.len()
}

/// One Table page of 500 (the first) converted from the parsed objects, as
/// before the rows were cached.
fn converted_table_page(view: &View) -> usize {
    let page = view.page(None, Some(500));
    let parsed: Vec<Arc<Value>> = page.items.iter().map(|o| Arc::new(o.value())).collect();
    let t = table::table(
        &table::info_for(&pods()),
        &parsed,
        IncludeObject::Metadata,
        &ListMeta::default(),
        true,
    );
    serde_json::to_vec(&t).map(|b| b.len()).unwrap_or(0)
}

fn timed<T>(rounds: usize, mut f: impl FnMut() -> T) -> Vec<Duration> {
    let mut times: Vec<Duration> = (0..rounds)
        .map(|_| {
            let started = Instant::now();
            std::hint::black_box(f());
            started.elapsed()
        })
        .collect();
    times.sort();
    times
}

/// The `unified-page` scenario.
pub async fn scenario() {
    let quick = std::env::args().any(|a| a == "--quick");
    let cases: &[(usize, usize)] = if quick {
        &[(10, 10_000)]
    } else {
        &[(10, 10_000), (100, 100_000)]
    };
    let rounds = if quick { 5 } else { 11 };
    let shape = cache::Shape::of(&pods());
    let mut table_md = String::from(
        "| members | pods | JSON list unified p50 | same pods in one map p50 | ratio | every page of 500, total p50 | one page p50 / p99 | Table page of 500 p50: cached rows / converted | whole list as one Table p50 | raw JSON | cache heap (estimate) | heap / JSON |\n|---|---|---|---|---|---|---|---|---|---|---|---|",
    );
    let mut results = Vec::new();
    for &(members, total) in cases {
        let per = total / members;
        let mut sources = Vec::new();
        let mut all = Vec::new();
        let (mut json_bytes, mut heap) = (0usize, 0usize);
        for m in 1..=members {
            let cluster = format!("member{m}");
            let objects = (0..per)
                .map(|i| {
                    let o = Object::new(&cache::annotate(pod(m, i), &cluster, &pods()), &shape);
                    json_bytes += o.json.len();
                    // the object, and its entry in a map node (as `Cache::size` counts)
                    heap += o.heap_size() + 2 * (32 + 8);
                    let o = Arc::new(o);
                    // one map of every pod: the member in the namespace keeps names apart
                    let mut one = Object::new(
                        &json!({"metadata": {"namespace": cluster, "name": o.name()}}),
                        &Default::default(),
                    );
                    one.json = o.json.clone();
                    all.push((one.key(), Arc::new(one)));
                    (o.key(), o)
                })
                .collect();
            sources.push(Source {
                cluster,
                objects,
                namespaces: None,
            });
        }
        let unified = View {
            sources,
            namespace: None,
            labels: Default::default(),
            fields: Default::default(),
        };
        let single = View {
            sources: vec![Source {
                cluster: "one".into(),
                objects: all.into_iter().collect(),
                namespaces: None,
            }],
            namespace: None,
            labels: Default::default(),
            fields: Default::default(),
        };
        let bar = harness::progress(rounds * 6, &format!("{total} pods over {members} members"));
        let mut u = Vec::new();
        let mut s = Vec::new();
        for _ in 0..rounds {
            // alternate, so both sides see the same machine
            u.extend(timed(1, || json_list(&unified)));
            s.extend(timed(1, || json_list(&single)));
            bar.inc(2);
        }
        u.sort();
        s.sort();
        let mut walks = Vec::new();
        let mut pages = Vec::new();
        for _ in 0..rounds {
            let started = Instant::now();
            let (n, times) = walk(&unified);
            walks.push(started.elapsed());
            assert_eq!(n, total, "every pod once");
            pages.extend(times);
            bar.inc(1);
        }
        walks.sort();
        pages.sort();
        let mut tables = Vec::new();
        let mut converted = Vec::new();
        for _ in 0..rounds {
            // alternate, so both sides see the same machine
            tables.extend(timed(1, || table_of(&unified, Some(500))));
            converted.extend(timed(1, || converted_table_page(&unified)));
            bar.inc(2);
        }
        tables.sort();
        converted.sort();
        let whole_tables = timed(rounds, || table_of(&unified, None));
        bar.inc(rounds as u64);
        let whole_table_bytes = table_of(&unified, None);
        bar.finish_and_clear();
        let (u50, s50) = (percentile(&u, 50.0), percentile(&s, 50.0));
        let ratio = u50.as_secs_f64() / s50.as_secs_f64().max(1e-9);
        let per_json = heap as f64 / json_bytes as f64;
        table_md.push_str(&format!(
            "\n| {members} | {total} | {} ms | {} ms | {ratio:.2} | {} ms | {} / {} ms | {} / {} ms | {} ms ({:.0} MB) | {:.0} MiB | {:.0} MiB | {per_json:.2}× |",
            ms(u50),
            ms(s50),
            ms(percentile(&walks, 50.0)),
            ms(percentile(&pages, 50.0)),
            ms(percentile(&pages, 99.0)),
            ms(percentile(&tables, 50.0)),
            ms(percentile(&converted, 50.0)),
            ms(percentile(&whole_tables, 50.0)),
            whole_table_bytes as f64 / 1e6,
            json_bytes as f64 / 1048576.0,
            heap as f64 / 1048576.0,
        ));
        results.push(json!({
            "members": members, "pods": total, "rounds": rounds,
            "json_list_ms": {"unified_p50": ms(u50), "one_map_p50": ms(s50), "ratio": ratio},
            "pages_of_500_ms": {"walk_p50": ms(percentile(&walks, 50.0)),
                                 "page_p50": ms(percentile(&pages, 50.0)),
                                 "page_p99": ms(percentile(&pages, 99.0))},
            "table_page_of_500_ms_p50": {"cached_rows": ms(percentile(&tables, 50.0)),
                                         "converted": ms(percentile(&converted, 50.0))},
            "whole_table_ms_p50": ms(percentile(&whole_tables, 50.0)),
            "whole_table_bytes": whole_table_bytes,
            "bytes": {"json": json_bytes, "heap_estimate": heap},
        }));
    }
    harness::record("unified-page", &json!(results), &table_md);
}
