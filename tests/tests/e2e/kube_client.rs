//! kube-rs against the real binary: typed CRUD, a watcher that survives a server
//! restart, and durability of acknowledged writes across `kill -9`.

use std::collections::BTreeSet;
use std::time::Duration;

use flotilla_tests::ApiServer;
use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, DeleteParams, ListParams, PostParams};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Client, Config};
use rand::Rng;

async fn client(server: &ApiServer) -> Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let kubeconfig = kube::config::Kubeconfig::read_from(&server.kubeconfig).expect("kubeconfig");
    let config = Config::from_custom_kubeconfig(kubeconfig, &Default::default())
        .await
        .expect("config");
    Client::try_from(config).expect("client")
}

fn deployment(name: &str, replicas: i32) -> Deployment {
    serde_json::from_value(serde_json::json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": name, "labels": {"app": name}},
        "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": name}},
                 "template": {"metadata": {"labels": {"app": name}},
                              "spec": {"containers": [{"name": "app", "image": "nginx:1.25"}]}}}
    }))
    .expect("deployment")
}

fn config_map(name: &str) -> ConfigMap {
    serde_json::from_value(serde_json::json!({"metadata": {"name": name}, "data": {"k": name}}))
        .expect("cm")
}

#[tokio::test]
async fn typed_deployment_crud() {
    let server = ApiServer::start();
    let client = client(&server).await;
    let api: Api<Deployment> = Api::namespaced(client, "default");

    let created = api
        .create(&PostParams::default(), &deployment("web", 2))
        .await
        .expect("create");
    let meta = &created.metadata;
    assert!(meta.uid.is_some() && meta.creation_timestamp.is_some());
    assert_eq!(meta.generation, Some(1));

    let got = api.get("web").await.expect("get");
    assert_eq!(got.spec.as_ref().and_then(|s| s.replicas), Some(2));

    let listed = api
        .list(&ListParams::default().labels("app=web"))
        .await
        .expect("list");
    assert_eq!(listed.items.len(), 1);
    assert!(
        api.list(&ListParams::default().labels("app=other"))
            .await
            .expect("list")
            .items
            .is_empty()
    );

    let mut changed = got.clone();
    changed.spec.as_mut().expect("spec").replicas = Some(4);
    let replaced = api
        .replace("web", &PostParams::default(), &changed)
        .await
        .expect("replace");
    assert_eq!(replaced.metadata.generation, Some(2));
    assert_ne!(
        replaced.metadata.resource_version,
        got.metadata.resource_version
    );

    // Replacing with the old resourceVersion is a conflict.
    let err = api
        .replace("web", &PostParams::default(), &got)
        .await
        .expect_err("stale");
    match err {
        kube::Error::Api(s) => assert_eq!((s.code, s.reason.as_str()), (409, "Conflict")),
        other => panic!("unexpected error {other:?}"),
    }

    api.delete("web", &DeleteParams::default())
        .await
        .expect("delete");
    match api.get("web").await {
        Err(kube::Error::Api(s)) => assert_eq!(s.code, 404),
        other => panic!("expected 404, got {other:?}"),
    }
}

/// Waits for the watcher to report an object named `name`.
async fn wait_for(
    stream: &mut (impl futures::Stream<Item = Result<ConfigMap, watcher::Error>> + Unpin),
    name: &str,
) {
    let found = tokio::time::timeout(Duration::from_secs(60), async {
        while let Some(item) = stream.next().await {
            if let Ok(cm) = item
                && cm.metadata.name.as_deref() == Some(name)
            {
                return;
            }
        }
        panic!("watch stream ended");
    })
    .await;
    assert!(found.is_ok(), "watcher did not deliver {name} in time");
}

#[tokio::test]
async fn watcher_survives_restart() {
    let mut server = ApiServer::start();
    let api: Api<ConfigMap> = Api::namespaced(client(&server).await, "default");
    let mut stream = watcher(api.clone(), watcher::Config::default())
        .default_backoff()
        .applied_objects()
        .boxed();
    api.create(&PostParams::default(), &config_map("before"))
        .await
        .expect("create");
    wait_for(&mut stream, "before").await;

    server.restart();
    // The old client keeps its connection settings; the server came back on the same address.
    let api2: Api<ConfigMap> = Api::namespaced(client(&server).await, "default");
    api2.create(&PostParams::default(), &config_map("after"))
        .await
        .expect("create after restart");
    wait_for(&mut stream, "after").await;
}

/// The events of a watch's response body, as (type, resourceVersion).
fn watch_events(body: &str) -> Vec<(String, u64)> {
    body.lines()
        .map(|l| {
            let event: serde_json::Value = serde_json::from_str(l).expect("a JSON watch event");
            let rv = event
                .pointer("/object/metadata/resourceVersion")
                .and_then(|v| v.as_str())
                .and_then(|v| v.parse().ok())
                .unwrap_or(0);
            (event["type"].as_str().unwrap_or("").to_string(), rv)
        })
        .collect()
}

async fn watch_body(client: &Client, path: &str) -> String {
    let request = hyper::Request::get(path).body(Vec::new()).expect("request");
    client.request_text(request).await.expect("watch")
}

/// A watch of a namespace where nothing changes ends (at its timeout) with a
/// bookmark at the store's revision, not at its last event; so a client
/// resumes it even after more writes elsewhere than the watch history keeps.
#[tokio::test]
async fn a_quiet_watch_resumes_after_the_history_moved_on() {
    let server = ApiServer::start_with(&["--watch-history", "5"]);
    let client = client(&server).await;
    let busy: Api<ConfigMap> = Api::namespaced(client.clone(), "default");
    let first = busy
        .create(&PostParams::default(), &config_map("first"))
        .await
        .expect("create");
    let from = first.metadata.resource_version.expect("resourceVersion");
    let quiet = format!(
        "/api/v1/namespaces/quiet/configmaps?watch=1&allowWatchBookmarks=true&timeoutSeconds=5&resourceVersion={from}"
    );
    // the server answers a watch once it is registered: the writes below
    // come after its start (written earlier, they could push `from` out of
    // the 5-event history before the watch began, and it would end in 410)
    let request = hyper::Request::get(&quiet)
        .body(kube::client::Body::empty())
        .expect("request");
    let response = client.send(request).await.expect("watch");
    let watch = tokio::spawn(async move {
        use http_body_util::BodyExt;
        let body = response.into_body().collect().await.expect("watch body");
        String::from_utf8(body.to_bytes().to_vec()).expect("utf-8")
    });
    let mut last = 0;
    for i in 0..20 {
        let cm = busy
            .create(&PostParams::default(), &config_map(&format!("busy-{i}")))
            .await
            .expect("create");
        last = cm
            .metadata
            .resource_version
            .expect("rv")
            .parse()
            .expect("rv");
    }
    let events = watch_events(&watch.await.expect("watch task"));
    let (kind, bookmark) = events
        .last()
        .cloned()
        .expect("the watch ends with an event");
    assert_eq!(kind, "BOOKMARK", "{events:?}");
    assert!(
        bookmark >= last,
        "bookmark at {bookmark}, last write at {last}"
    );

    let resumed = |rv: u64| {
        format!(
            "/api/v1/namespaces/quiet/configmaps?watch=1&allowWatchBookmarks=true&timeoutSeconds=1&resourceVersion={rv}"
        )
    };
    let events = watch_events(&watch_body(&client, &resumed(bookmark)).await);
    assert!(
        events.iter().all(|(kind, _)| kind == "BOOKMARK"),
        "resuming from the bookmark: {events:?}"
    );
    // the first revision has left the history: resuming from there is 410
    let body = watch_body(&client, &resumed(from.parse().expect("rv"))).await;
    assert!(
        body.contains("\"type\":\"ERROR\"") && body.contains("410"),
        "{body}"
    );
}

/// Aggregated discovery carries an ETag and answers 304 to a client that
/// has that document; a new CRD changes it.
#[tokio::test]
async fn aggregated_discovery_answers_not_modified() {
    let server = ApiServer::start();
    let client = client(&server).await;
    let accept = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList";
    let get = |etag: Option<String>| {
        let client = client.clone();
        async move {
            let mut request = hyper::Request::get("/apis").header("Accept", accept);
            if let Some(etag) = etag {
                request = request.header("If-None-Match", etag);
            }
            let response = client
                .send(request.body(kube::client::Body::empty()).expect("request"))
                .await
                .expect("discovery");
            let etag = response
                .headers()
                .get("ETag")
                .and_then(|v| v.to_str().ok())
                .map(str::to_string);
            (response.status().as_u16(), etag)
        }
    };
    let (status, etag) = get(None).await;
    assert_eq!(status, 200);
    let etag = etag.expect("an ETag");
    assert_eq!(get(Some(etag.clone())).await, (304, Some(etag.clone())));
    assert_eq!(
        get(Some("\"other\"".into())).await,
        (200, Some(etag.clone()))
    );

    // the CRD of the kubectl suites
    let crd = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/semantics/widget-crd.yaml"),
    )
    .expect("widget-crd.yaml");
    let crd: kube::api::DynamicObject = serde_saphyr::from_str(&crd).expect("a CRD");
    let crds: Api<kube::api::DynamicObject> = Api::all_with(
        client.clone(),
        &kube::api::ApiResource::from_gvk_with_plural(
            &kube::api::GroupVersionKind::gvk(
                "apiextensions.k8s.io",
                "v1",
                "CustomResourceDefinition",
            ),
            "customresourcedefinitions",
        ),
    );
    crds.create(&PostParams::default(), &crd)
        .await
        .expect("create CRD");
    let mut changed = false;
    for _ in 0..50 {
        let (status, new) = get(Some(etag.clone())).await;
        if status == 200 {
            assert_ne!(new, Some(etag.clone()));
            changed = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(changed, "the document did not change with a new CRD");
}

#[tokio::test]
async fn acknowledged_writes_survive_kill() {
    let mut server = ApiServer::start();
    let api: Api<ConfigMap> = Api::namespaced(client(&server).await, "default");
    let acked = std::sync::Arc::new(std::sync::Mutex::new(Vec::<(String, u64)>::new()));
    let mut tasks = Vec::new();
    for worker in 0..32 {
        let api = api.clone();
        let acked = acked.clone();
        tasks.push(tokio::spawn(async move {
            for i in 0.. {
                let name = format!("cm-{worker}-{i}");
                match api.create(&PostParams::default(), &config_map(&name)).await {
                    Ok(cm) => {
                        let rv = cm
                            .metadata
                            .resource_version
                            .and_then(|r| r.parse().ok())
                            .unwrap_or(0);
                        acked.lock().expect("lock").push((name, rv));
                    }
                    Err(_) => break,
                }
            }
        }));
    }
    let delay = rand::rng().random_range(300..1200);
    tokio::time::sleep(Duration::from_millis(delay)).await;
    server.kill();
    for t in tasks {
        let _ = tokio::time::timeout(Duration::from_secs(30), t).await;
    }
    let acked = acked.lock().expect("lock").clone();
    assert!(
        !acked.is_empty(),
        "no create was acknowledged before the kill"
    );
    let max_rv = acked.iter().map(|(_, rv)| *rv).max().unwrap_or(0);

    server.restart();
    let api: Api<ConfigMap> = Api::namespaced(client(&server).await, "default");
    let stored: BTreeSet<String> = api
        .list(&ListParams::default())
        .await
        .expect("list")
        .items
        .into_iter()
        .filter_map(|cm| cm.metadata.name)
        .collect();
    let lost: Vec<&String> = acked
        .iter()
        .map(|(n, _)| n)
        .filter(|n| !stored.contains(*n))
        .collect();
    assert!(
        lost.is_empty(),
        "{} acknowledged creates lost, e.g. {:?}",
        lost.len(),
        &lost[..lost.len().min(5)]
    );

    let next = api
        .create(&PostParams::default(), &config_map("after-restart"))
        .await
        .expect("create");
    let rv: u64 = next
        .metadata
        .resource_version
        .and_then(|r| r.parse().ok())
        .expect("rv");
    assert!(
        rv > max_rv,
        "resourceVersion went backwards: {rv} <= {max_rv}"
    );
    // Every object the list returns is readable and consistent.
    let all: Vec<ConfigMap> = watcher(api.clone(), watcher::Config::default())
        .applied_objects()
        .take(1)
        .try_collect()
        .await
        .expect("watch after restart");
    assert_eq!(all.len(), 1);
}
