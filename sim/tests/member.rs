//! A simulated member driven through kube-rs, as any client drives a cluster:
//! Deployments roll out and scale, Services get EndpointSlices, a full member
//! leaves pods Pending, StatefulSets/DaemonSets/Jobs progress, metrics are served,
//! and faults (unreachable, slow, failing) show on the wire.

use std::future::Future;
use std::time::{Duration, Instant};

use flotilla_sim::{Config, Member, Resources, Usage};
use k8s_openapi::api::apps::v1::{DaemonSet, Deployment, ReplicaSet, StatefulSet};
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{Endpoints, Node, Pod, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::api::{Api, DynamicObject, ListParams, Patch, PatchParams, PostParams};
use kube::core::{ApiResource, GroupVersionKind};
use kube::{Client, ResourceExt};
use serde_json::json;

const WAIT: Duration = Duration::from_secs(15);

async fn member(config: impl FnOnce(Config) -> Config) -> (Member, Client, tempfile::TempDir) {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let dir = tempfile::tempdir().expect("tempdir");
    let member = flotilla_sim::start(config(Config::new("m1", dir.path())))
        .await
        .expect("member starts");
    let client = client_for(&member).await;
    (member, client, dir)
}

async fn client_for(member: &Member) -> Client {
    let kubeconfig = kube::config::Kubeconfig::read_from(member.kubeconfig()).expect("kubeconfig");
    let config = kube::Config::from_custom_kubeconfig(kubeconfig, &Default::default())
        .await
        .expect("config");
    Client::try_from(config).expect("client")
}

/// A client authenticating with the admin token and the CA, as Karmada's Secret gives.
fn token_client(member: &Member, timeout: Duration) -> Client {
    use rustls::pki_types::pem::PemObject;
    let mut config = kube::Config::new(member.url().parse().expect("url"));
    config.root_cert = Some(
        rustls::pki_types::CertificateDer::pem_slice_iter(member.ca_pem().as_bytes())
            .map(|c| c.expect("pem").to_vec())
            .collect(),
    );
    config.auth_info = serde_json::from_value(json!({"token": member.token()})).expect("auth");
    config.connect_timeout = Some(timeout);
    config.read_timeout = Some(timeout);
    // Fault tests want to see each answer, not kube's retries of 503s.
    config.default_retry = false;
    Client::try_from(config).expect("client")
}

/// Polls `check` until it answers `Some`, for at most [`WAIT`].
async fn eventually<T, F, Fut>(what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let start = Instant::now();
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(start.elapsed() < WAIT, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

fn deployment(name: &str, replicas: i32, image: &str, cpu: &str) -> Deployment {
    serde_json::from_value(json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": name},
        "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": name}},
            "template": {"metadata": {"labels": {"app": name}},
                "spec": {"containers": [{"name": "app", "image": image,
                    "ports": [{"name": "http", "containerPort": 8080}],
                    "resources": {"requests": {"cpu": cpu, "memory": "64Mi"}}}]}}}
    }))
    .expect("deployment")
}

async fn running_pods(pods: &Api<Pod>, app: &str) -> Vec<Pod> {
    pods.list(&ListParams::default().labels(&format!("app={app}")))
        .await
        .map(|l| l.items)
        .unwrap_or_default()
        .into_iter()
        .filter(|p| p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running"))
        .collect()
}

/// Waits until the Deployment is rolled out as `kubectl rollout status` judges it.
async fn rolled_out(deployments: &Api<Deployment>, name: &str, replicas: i32) -> Deployment {
    eventually(&format!("{name} rolled out with {replicas}"), || async {
        let d = deployments.get(name).await.ok()?;
        let s = d.status.clone()?;
        let done = d.metadata.generation? <= s.observed_generation?
            && s.updated_replicas.unwrap_or(0) == replicas
            && s.replicas.unwrap_or(0) == replicas
            && s.available_replicas.unwrap_or(0) == replicas
            && s.ready_replicas.unwrap_or(0) == replicas;
        done.then_some(d)
    })
    .await
}

#[tokio::test]
async fn nodes_are_ready_with_capacity_and_topology() {
    let (member, client, _dir) = member(|c| c.nodes(2).region("eu").zone("eu-1")).await;
    let nodes: Api<Node> = Api::all(client);
    let list = nodes.list(&ListParams::default()).await.expect("nodes");
    let names: Vec<String> = list.items.iter().map(|n| n.name_any()).collect();
    assert_eq!(names, vec!["m1-node-0", "m1-node-1"]);
    let n = &list.items[0];
    let labels = n.labels();
    assert_eq!(labels["kubernetes.io/hostname"], "m1-node-0");
    assert_eq!(labels["topology.kubernetes.io/zone"], "eu-1");
    assert_eq!(labels["topology.kubernetes.io/region"], "eu");
    let status = n.status.as_ref().expect("status");
    assert_eq!(
        status.node_info.as_ref().expect("info").kubelet_version,
        "v1.33.0"
    );
    assert_eq!(
        status.allocatable.as_ref().expect("allocatable")["pods"].0,
        "110"
    );
    let ready = status
        .conditions
        .as_ref()
        .expect("conditions")
        .iter()
        .find(|c| c.type_ == "Ready");
    assert_eq!(ready.map(|c| c.status.as_str()), Some("True"));
    member.stop().await;
}

#[tokio::test]
async fn deployment_rolls_out_scales_and_updates() {
    let (member, client, _dir) = member(|c| c).await;
    let deployments: Api<Deployment> = Api::default_namespaced(client.clone());
    let pods: Api<Pod> = Api::default_namespaced(client.clone());
    let replica_sets: Api<ReplicaSet> = Api::default_namespaced(client.clone());
    deployments
        .create(
            &PostParams::default(),
            &deployment("web", 3, "nginx:1.27", "100m"),
        )
        .await
        .expect("create");
    let d = rolled_out(&deployments, "web", 3).await;
    assert_eq!(
        d.status.as_ref().and_then(|s| s.observed_generation),
        d.metadata.generation
    );
    let running = running_pods(&pods, "web").await;
    assert_eq!(running.len(), 3);
    for p in &running {
        let s = p.status.as_ref().expect("status");
        assert!(
            s.pod_ip
                .as_deref()
                .is_some_and(|ip| ip.starts_with("10.244."))
        );
        assert!(
            p.spec
                .as_ref()
                .and_then(|s| s.node_name.as_deref())
                .is_some_and(|n| n.starts_with("m1-node-"))
        );
        let owner = &p.owner_references()[0];
        assert_eq!(owner.kind, "ReplicaSet");
        assert!(s.container_statuses.as_ref().is_some_and(|c| c[0].ready));
    }
    let rs = replica_sets
        .list(&ListParams::default())
        .await
        .expect("rs")
        .items;
    assert_eq!(rs.len(), 1);
    let hash = rs[0].labels()["pod-template-hash"].clone();
    assert_eq!(rs[0].name_any(), format!("web-{hash}"));
    assert_eq!(rs[0].owner_references()[0].controller, Some(true));
    assert_eq!(
        rs[0].status.as_ref().and_then(|s| s.ready_replicas),
        Some(3)
    );

    for replicas in [5, 1] {
        deployments
            .patch(
                "web",
                &PatchParams::default(),
                &Patch::Merge(json!({"spec": {"replicas": replicas}})),
            )
            .await
            .expect("scale");
        rolled_out(&deployments, "web", replicas).await;
        eventually(&format!("{replicas} pods"), || async {
            let all = pods
                .list(&ListParams::default().labels("app=web"))
                .await
                .ok()?;
            (all.items.len() == replicas as usize
                && running_pods(&pods, "web").await.len() == replicas as usize)
                .then_some(())
        })
        .await;
    }

    // A template change rolls out a new ReplicaSet and scales the old one to zero.
    deployments
        .patch(
            "web",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"replicas": 2,
            "template": {"spec": {"containers": [{"name": "app", "image": "nginx:1.28"}]}}}})),
        )
        .await
        .expect("update");
    rolled_out(&deployments, "web", 2).await;
    let rs = eventually("old ReplicaSet at zero", || async {
        let rs = replica_sets.list(&ListParams::default()).await.ok()?.items;
        let zero = rs
            .iter()
            .filter(|r| r.spec.as_ref().and_then(|s| s.replicas) == Some(0))
            .count();
        (rs.len() == 2 && zero == 1).then_some(rs)
    })
    .await;
    let new = rs
        .iter()
        .find(|r| r.spec.as_ref().and_then(|s| s.replicas) == Some(2))
        .expect("new rs");
    assert_eq!(new.annotations()["deployment.kubernetes.io/revision"], "2");
    let images: Vec<String> = running_pods(&pods, "web")
        .await
        .iter()
        .filter_map(|p| {
            p.spec
                .as_ref()
                .map(|s| s.containers[0].image.clone().unwrap_or_default())
        })
        .collect();
    assert_eq!(images, vec!["nginx:1.28".to_string(); 2]);
    member.stop().await;
}

#[tokio::test]
async fn service_gets_endpoints_and_slices() {
    let (member, client, _dir) = member(|c| c.zone("z1")).await;
    let deployments: Api<Deployment> = Api::default_namespaced(client.clone());
    let services: Api<Service> = Api::default_namespaced(client.clone());
    let slices: Api<EndpointSlice> = Api::default_namespaced(client.clone());
    let endpoints: Api<Endpoints> = Api::default_namespaced(client.clone());
    deployments
        .create(
            &PostParams::default(),
            &deployment("api", 2, "api:1", "10m"),
        )
        .await
        .expect("deployment");
    let svc: Service = serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Service", "metadata": {"name": "api"},
        "spec": {"selector": {"app": "api"}, "ports": [{"name": "http", "port": 80, "targetPort": "http"}]}
    }))
    .expect("service");
    services
        .create(&PostParams::default(), &svc)
        .await
        .expect("service");
    let slice = eventually("a slice with 2 ready endpoints", || async {
        let list = slices
            .list(&ListParams::default().labels("kubernetes.io/service-name=api"))
            .await
            .ok()?;
        let s = list.items.into_iter().next()?;
        let ready = s
            .endpoints
            .iter()
            .filter(|e| e.conditions.as_ref().and_then(|c| c.ready) == Some(true))
            .count();
        (ready == 2).then_some(s)
    })
    .await;
    assert_eq!(slice.address_type, "IPv4");
    assert_eq!(slice.ports.as_ref().and_then(|p| p[0].port), Some(8080));
    assert_eq!(slice.endpoints[0].zone.as_deref(), Some("z1"));
    assert_eq!(slice.owner_references()[0].kind, "Service");
    let ep = endpoints.get("api").await.expect("endpoints");
    assert_eq!(
        ep.subsets
            .as_ref()
            .and_then(|s| s[0].addresses.as_ref())
            .map(Vec::len),
        Some(2)
    );
    // Kept current: scale to 3 and the slice follows.
    deployments
        .patch(
            "api",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"replicas": 3}})),
        )
        .await
        .expect("scale");
    eventually("3 endpoints", || async {
        let list = slices
            .list(&ListParams::default().labels("kubernetes.io/service-name=api"))
            .await
            .ok()?;
        (list.items.len() == 1 && list.items[0].endpoints.len() == 3).then_some(())
    })
    .await;
    // and scaled down, the deleted pod leaves the slice
    deployments
        .patch(
            "api",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"replicas": 1}})),
        )
        .await
        .expect("scale down");
    eventually("1 endpoint", || async {
        let list = slices
            .list(&ListParams::default().labels("kubernetes.io/service-name=api"))
            .await
            .ok()?;
        (list.items.len() == 1 && list.items[0].endpoints.len() == 1).then_some(())
    })
    .await;
    member.stop().await;
}

#[tokio::test]
async fn a_full_member_leaves_pods_pending() {
    let (member, client, _dir) = member(|c| {
        c.nodes(1).node_capacity(Resources {
            cpu_millis: 1000,
            memory_bytes: 4 << 30,
            pods: 110,
        })
    })
    .await;
    let deployments: Api<Deployment> = Api::default_namespaced(client.clone());
    let pods: Api<Pod> = Api::default_namespaced(client.clone());
    deployments
        .create(
            &PostParams::default(),
            &deployment("big", 3, "big:1", "400m"),
        )
        .await
        .expect("create");
    let pending = eventually("2 running and 1 unschedulable", || async {
        let all = pods
            .list(&ListParams::default().labels("app=big"))
            .await
            .ok()?
            .items;
        let running = all
            .iter()
            .filter(|p| p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running"))
            .count();
        let pending: Vec<Pod> = all
            .into_iter()
            .filter(|p| {
                p.status
                    .as_ref()
                    .and_then(|s| s.conditions.as_ref())
                    .is_some_and(|c| {
                        c.iter().any(|c| {
                            c.type_ == "PodScheduled"
                                && c.status == "False"
                                && c.reason.as_deref() == Some("Unschedulable")
                        })
                    })
            })
            .collect();
        (running == 2 && pending.len() == 1).then_some(pending)
    })
    .await;
    let message = pending[0]
        .status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .and_then(|c| c[0].message.clone())
        .unwrap_or_default();
    assert!(
        message.starts_with("0/1 nodes are available: 1 Insufficient cpu."),
        "{message}"
    );
    assert!(
        pending[0]
            .spec
            .as_ref()
            .and_then(|s| s.node_name.as_ref())
            .is_none()
    );
    // The Deployment's status follows its pods a moment later.
    eventually("deployment reports 2 ready", || async {
        let d = deployments.get("big").await.ok()?;
        (d.status.as_ref().and_then(|s| s.ready_replicas) == Some(2)).then_some(())
    })
    .await;
    // Room made: the pending pod is scheduled.
    deployments
        .patch(
            "big",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"replicas": 2}})),
        )
        .await
        .expect("scale down");
    rolled_out(&deployments, "big", 2).await;
    // A pod that does not fit waits until another goes away.
    deployments
        .create(
            &PostParams::default(),
            &deployment("late", 1, "late:1", "400m"),
        )
        .await
        .expect("create");
    eventually("late unschedulable", || async {
        let all = pods
            .list(&ListParams::default().labels("app=late"))
            .await
            .ok()?
            .items;
        let unschedulable = all.iter().any(|p| {
            p.status
                .as_ref()
                .and_then(|s| s.conditions.as_ref())
                .is_some_and(|c| {
                    c.iter()
                        .any(|c| c.type_ == "PodScheduled" && c.status == "False")
                })
        });
        unschedulable.then_some(())
    })
    .await;
    deployments
        .delete("big", &Default::default())
        .await
        .expect("delete");
    rolled_out(&deployments, "late", 1).await;
    member.stop().await;
}

#[tokio::test]
async fn statefulsets_daemonsets_and_jobs() {
    let (member, client, _dir) = member(|c| c.nodes(2)).await;
    let ns = "default";
    let sts: Api<StatefulSet> = Api::namespaced(client.clone(), ns);
    let ds: Api<DaemonSet> = Api::namespaced(client.clone(), ns);
    let jobs: Api<Job> = Api::namespaced(client.clone(), ns);
    let pods: Api<Pod> = Api::namespaced(client.clone(), ns);
    let template = |app: &str| json!({"metadata": {"labels": {"app": app}}, "spec": {"containers": [{"name": "c", "image": "busybox"}]}});
    sts.create(&PostParams::default(), &serde_json::from_value(json!({
        "apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": {"name": "db"},
        "spec": {"replicas": 3, "serviceName": "db", "selector": {"matchLabels": {"app": "db"}}, "template": template("db")}
    })).expect("sts")).await.expect("create sts");
    ds.create(
        &PostParams::default(),
        &serde_json::from_value(json!({
            "apiVersion": "apps/v1", "kind": "DaemonSet", "metadata": {"name": "agent"},
            "spec": {"selector": {"matchLabels": {"app": "agent"}}, "template": template("agent")}
        }))
        .expect("ds"),
    )
    .await
    .expect("create ds");
    let mut job_template = template("job");
    job_template["spec"]["restartPolicy"] = json!("Never");
    jobs.create(
        &PostParams::default(),
        &serde_json::from_value(json!({
            "apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "once"},
            "spec": {"completions": 2, "parallelism": 2, "template": job_template}
        }))
        .expect("job"),
    )
    .await
    .expect("create job");

    eventually("statefulset ready", || async {
        let s = sts.get("db").await.ok()?;
        let st = s.status?;
        (st.ready_replicas == Some(3)
            && st.current_revision == st.update_revision
            && st.observed_generation == s.metadata.generation)
            .then_some(())
    })
    .await;
    let names: Vec<String> = running_pods(&pods, "db")
        .await
        .iter()
        .map(|p| p.name_any())
        .collect();
    assert_eq!(names, vec!["db-0", "db-1", "db-2"]);
    eventually("daemonset on every node", || async {
        let st = ds.get("agent").await.ok()?.status?;
        (st.desired_number_scheduled == 2
            && st.number_ready == 2
            && st.updated_number_scheduled == Some(2))
        .then_some(())
    })
    .await;
    let mut nodes: Vec<String> = running_pods(&pods, "agent")
        .await
        .iter()
        .filter_map(|p| p.spec.as_ref()?.node_name.clone())
        .collect();
    nodes.sort();
    assert_eq!(nodes, vec!["m1-node-0", "m1-node-1"]);
    let job = eventually("job complete", || async {
        let j = jobs.get("once").await.ok()?;
        let complete = j
            .status
            .as_ref()?
            .conditions
            .as_ref()?
            .iter()
            .any(|c| c.type_ == "Complete" && c.status == "True");
        complete.then_some(j)
    })
    .await;
    let status = job.status.expect("status");
    assert_eq!(status.succeeded, Some(2));
    assert!(status.completion_time.is_some());
    member.stop().await;
}

#[tokio::test]
async fn metrics_api_reports_configured_usage() {
    let (member, client, _dir) =
        member(|c| c.nodes(1).default_usage(Usage::new(5, 10 << 20))).await;
    let deployments: Api<Deployment> = Api::default_namespaced(client.clone());
    deployments
        .create(
            &PostParams::default(),
            &deployment("hot", 2, "hot:1", "100m"),
        )
        .await
        .expect("create");
    rolled_out(&deployments, "hot", 2).await;
    let pod_metrics = ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("metrics.k8s.io", "v1beta1", "PodMetrics"),
        "pods",
    );
    let node_metrics = ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("metrics.k8s.io", "v1beta1", "NodeMetrics"),
        "nodes",
    );
    let pm: Api<DynamicObject> = Api::default_namespaced_with(client.clone(), &pod_metrics);
    let nm: Api<DynamicObject> = Api::all_with(client.clone(), &node_metrics);
    eventually("default usage", || async {
        let list = pm
            .list(&ListParams::default().labels("app=hot"))
            .await
            .ok()?;
        (list.items.len() == 2
            && list
                .items
                .iter()
                .all(|m| m.data["containers"][0]["usage"]["cpu"] == json!("5m")))
        .then_some(())
    })
    .await;
    member
        .set_label_usage("app=hot", Usage::new(250, 128 << 20))
        .expect("selector");
    eventually("usage by label", || async {
        let list = pm.list(&ListParams::default()).await.ok()?;
        list.items
            .iter()
            .all(|m| {
                m.data["containers"][0]["usage"]["cpu"] == json!("250m")
                    && m.data["containers"][0]["usage"]["memory"] == json!("128Mi")
            })
            .then_some(())
    })
    .await;
    eventually("node usage sums its pods", || async {
        let n = nm.get("m1-node-0").await.ok()?;
        (n.data["usage"]["cpu"] == json!("600m")).then_some(())
    })
    .await;
    member.stop().await;
}

#[tokio::test]
async fn faults_unreachable_slow_and_failing() {
    let (member, _client, _dir) = member(|c| c.nodes(1)).await;
    let client = token_client(&member, Duration::from_secs(2));
    let nodes: Api<Node> = Api::all(client.clone());
    nodes.list(&ListParams::default()).await.expect("reachable");
    let addr = member.addr();

    member.set_unreachable(true);
    eventually("connections refused", || async {
        tokio::net::TcpStream::connect(addr)
            .await
            .is_err()
            .then_some(())
    })
    .await;
    assert!(nodes.list(&ListParams::default()).await.is_err());
    member.set_unreachable(false);
    eventually("reachable again on the same port", || async {
        nodes.list(&ListParams::default()).await.ok().map(|_| ())
    })
    .await;
    assert_eq!(member.addr(), addr);

    member.set_failing(true);
    // Open connections are dropped when the mode changes, so the first request
    // may fail on its pooled connection; the next ones get 503s.
    let status = eventually("a 503 Status", || async {
        match nodes.list(&ListParams::default()).await {
            Err(kube::Error::Api(s)) => Some(s),
            _ => None,
        }
    })
    .await;
    assert_eq!(status.code, 503);
    assert_eq!(status.reason, "ServiceUnavailable");
    member.set_failing(false);
    eventually("healthy again", || async {
        nodes.list(&ListParams::default()).await.ok().map(|_| ())
    })
    .await;

    member.set_latency(Duration::from_millis(300));
    let fresh = token_client(&member, Duration::from_secs(5));
    let started = Instant::now();
    Api::<Node>::all(fresh)
        .list(&ListParams::default())
        .await
        .expect("slow but answers");
    assert!(
        started.elapsed() >= Duration::from_millis(300),
        "{:?}",
        started.elapsed()
    );
    member.set_latency(Duration::ZERO);
    member.stop().await;
}

#[tokio::test]
async fn redb_member_keeps_its_objects_and_port_across_restart() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let dir = tempfile::tempdir().expect("tempdir");
    let config = || {
        Config::new("m1", dir.path())
            .backend(flotilla_apiserver::server::Backend::Redb)
            .nodes(1)
    };
    let member = flotilla_sim::start(config()).await.expect("member starts");
    let port = member.addr().port();
    let deployments: Api<Deployment> = Api::default_namespaced(client_for(&member).await);
    deployments
        .create(
            &PostParams::default(),
            &deployment("keep", 1, "keep:1", "10m"),
        )
        .await
        .expect("create");
    rolled_out(&deployments, "keep", 1).await;
    member.stop().await;
    let member = flotilla_sim::start(config().port(port))
        .await
        .expect("member restarts on the same data");
    assert_eq!(member.addr().port(), port);
    let deployments: Api<Deployment> = Api::default_namespaced(client_for(&member).await);
    rolled_out(&deployments, "keep", 1).await;
    member.stop().await;
}

#[tokio::test]
async fn deleting_owners_removes_what_they_made() {
    let (member, client, _dir) = member(|c| c.nodes(1)).await;
    let deployments: Api<Deployment> = Api::default_namespaced(client.clone());
    let services: Api<Service> = Api::default_namespaced(client.clone());
    let pods: Api<Pod> = Api::default_namespaced(client.clone());
    let slices: Api<EndpointSlice> = Api::default_namespaced(client.clone());
    let endpoints: Api<Endpoints> = Api::default_namespaced(client.clone());
    deployments
        .create(
            &PostParams::default(),
            &deployment("gone", 2, "gone:1", "10m"),
        )
        .await
        .expect("create");
    let svc: Service = serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Service", "metadata": {"name": "gone"},
        "spec": {"selector": {"app": "gone"}, "ports": [{"port": 80}]}
    }))
    .expect("service");
    services
        .create(&PostParams::default(), &svc)
        .await
        .expect("service");
    rolled_out(&deployments, "gone", 2).await;
    eventually("a slice", || async {
        let l = slices.list(&ListParams::default()).await.ok()?;
        (l.items.len() == 1 && l.items[0].endpoints.len() == 2).then_some(())
    })
    .await;
    deployments
        .delete("gone", &Default::default())
        .await
        .expect("delete");
    services
        .delete("gone", &Default::default())
        .await
        .expect("delete");
    eventually("pods, slices and endpoints gone", || async {
        let p = pods.list(&ListParams::default()).await.ok()?.items.len();
        let s = slices.list(&ListParams::default()).await.ok()?.items.len();
        let e = endpoints
            .list(&ListParams::default())
            .await
            .ok()?
            .items
            .len();
        (p == 0 && s == 0 && e == 0).then_some(())
    })
    .await;
    member.stop().await;
}
