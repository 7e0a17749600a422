//! Integration tests of the cluster, cluster-status and namespace-sync
//! controllers and the pull agent against real `flotilla apiserver`
//! processes on 127.0.0.1:0: one as the control plane (with a Cluster CRD
//! standing in for the aggregated API server), others as members.
//!
//! Build the binary first: `cargo build -p flotilla`.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use flotilla_api::cluster::{Cluster, ClusterSpec, LocalSecretReference};
use flotilla_api::policy::ClusterOverridePolicy;
use flotilla_api::work::Work;
use flotilla_controllers::agent::{AgentOptions, run_agent};
use flotilla_controllers::{Config, Context};
use k8s_openapi::ByteString;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Namespace, Node, Pod, Secret, Taint};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{DeleteParams, Patch, PatchParams, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Api, Client, CustomResourceExt};
use serde_json::json;

fn flotilla_bin() -> PathBuf {
    if let Ok(p) = std::env::var("FLOTILLA_BIN") {
        return PathBuf::from(p);
    }
    let exe = std::env::current_exe().expect("test executable");
    let bin = exe
        .parent()
        .and_then(Path::parent)
        .expect("target/<profile>")
        .join("flotilla");
    assert!(
        bin.exists(),
        "{} is missing: run `cargo build -p flotilla` first",
        bin.display()
    );
    bin
}

/// A `flotilla apiserver` process, killed (by PID) on drop.
struct ApiServer {
    child: Option<Child>,
    up: bool,
    dir: PathBuf,
    _tmp: tempfile::TempDir,
    url: String,
}

impl ApiServer {
    fn start() -> ApiServer {
        ApiServer::start_mode(false)
    }

    /// `flotilla up` with no members: the host API server with Karmada's CRDs
    /// and the aggregated API server serving Clusters through an APIService.
    fn start_up() -> ApiServer {
        ApiServer::start_mode(true)
    }

    fn start_mode(up: bool) -> ApiServer {
        let tmp = tempfile::tempdir().expect("temp dir");
        let mut s = ApiServer {
            child: None,
            up,
            dir: tmp.path().to_path_buf(),
            _tmp: tmp,
            url: String::new(),
        };
        s.spawn("127.0.0.1:0");
        s
    }

    fn spawn(&mut self, bind: &str) {
        let kubeconfig = self.dir.join("kubeconfig");
        let _ = std::fs::remove_file(&kubeconfig);
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join("apiserver.log"))
            .expect("log file");
        let mut cmd = Command::new(flotilla_bin());
        if self.up {
            // The test registers its own members.
            cmd.arg("up").arg("--members").arg("0").arg("--dir");
        } else {
            cmd.arg("apiserver").arg("--data-dir");
        }
        let child = cmd
            .arg(&self.dir)
            .arg("--bind")
            .arg(bind)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start flotilla apiserver");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(30);
        while !kubeconfig.exists() {
            if let Some(status) = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                panic!(
                    "flotilla exited early ({status}): {}",
                    std::fs::read_to_string(self.dir.join("apiserver.log")).unwrap_or_default()
                );
            }
            assert!(Instant::now() < deadline, "apiserver did not start in time");
            std::thread::sleep(Duration::from_millis(20));
        }
        let text = std::fs::read_to_string(&kubeconfig).expect("kubeconfig");
        self.url = text
            .lines()
            .find_map(|l| l.trim().strip_prefix("server: "))
            .expect("server URL")
            .to_string();
    }

    fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    fn restart(&mut self) {
        self.kill();
        let addr = self.url.trim_start_matches("https://").to_string();
        self.spawn(&addr);
    }

    async fn client(&self) -> Client {
        let kc = Kubeconfig::read_from(self.dir.join("kubeconfig")).expect("read kubeconfig");
        let config = kube::Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default())
            .await
            .expect("client config");
        Client::try_from(config).expect("client")
    }

    fn admin_token(&self) -> String {
        let text = std::fs::read_to_string(self.dir.join("tokens.csv")).expect("tokens.csv");
        text.lines()
            .find(|l| l.split(',').nth(1) == Some("admin"))
            .and_then(|l| l.split(',').next())
            .expect("admin token")
            .to_string()
    }

    fn ca_pem(&self) -> Vec<u8> {
        std::fs::read(self.dir.join("ca.crt")).expect("ca.crt")
    }
}

impl Drop for ApiServer {
    fn drop(&mut self) {
        self.kill();
    }
}

fn init() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// Polls `f` every 100 ms until it returns `Some`, failing after `secs`.
async fn wait_for<T, F, Fut>(what: &str, secs: u64, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn install_cluster_crd(cp: &Client) {
    let crds: Api<CustomResourceDefinition> = Api::all(cp.clone());
    crds.create(&PostParams::default(), &Cluster::crd())
        .await
        .expect("create Cluster CRD");
    let clusters: Api<Cluster> = Api::all(cp.clone());
    wait_for("Cluster CRD served", 10, || {
        let clusters = clusters.clone();
        async move { clusters.list(&Default::default()).await.ok() }
    })
    .await;
}

/// The kinds namespace sync needs besides Cluster: Works (written by the
/// namespace controller, applied by the execution controller) and
/// ClusterOverridePolicies (applied to them).
async fn install_work_crds(cp: &Client) {
    let crds: Api<CustomResourceDefinition> = Api::all(cp.clone());
    for crd in [Work::crd(), ClusterOverridePolicy::crd()] {
        crds.create(&PostParams::default(), &crd)
            .await
            .expect("create CRD");
    }
    let works: Api<Work> = Api::all(cp.clone());
    let cops: Api<ClusterOverridePolicy> = Api::all(cp.clone());
    wait_for("Work and ClusterOverridePolicy CRDs served", 10, || {
        let (works, cops) = (works.clone(), cops.clone());
        async move {
            works.list(&Default::default()).await.ok()?;
            cops.list(&Default::default()).await.ok()
        }
    })
    .await;
}

async fn create_node(member: &Client, name: &str, ready: bool) {
    let nodes: Api<Node> = Api::all(member.clone());
    let node: Node = serde_json::from_value(json!({"metadata": {"name": name}})).expect("node");
    nodes
        .create(&PostParams::default(), &node)
        .await
        .expect("create node");
    let status = json!({"status": {
        "capacity": {"cpu": "4", "memory": "8Gi", "pods": "110"},
        "allocatable": {"cpu": "4", "memory": "8Gi", "pods": "110"},
        "conditions": [{"type": "Ready", "status": if ready { "True" } else { "False" }}]
    }});
    nodes
        .patch_status(name, &PatchParams::default(), &Patch::Merge(&status))
        .await
        .expect("node status");
}

fn fast_config() -> Config {
    Config::default()
        .cluster_status_update_frequency(Duration::from_millis(200))
        .cluster_thresholds(Duration::from_millis(600), Duration::from_millis(600))
        .cluster_monitor(Duration::from_millis(200), Duration::from_secs(2))
        .cluster_startup_grace_period(Duration::from_secs(3))
        .cluster_lease(Duration::from_secs(1), 0.25)
        .member_request_timeout(Duration::from_secs(1))
}

fn ready_of(c: &Cluster) -> Option<(String, String)> {
    c.status
        .as_ref()?
        .conditions
        .iter()
        .find(|c| c.type_ == "Ready")
        .map(|c| (c.status.clone(), c.reason.clone()))
}

fn taint_keys(c: &Cluster) -> Vec<String> {
    c.spec.taints.iter().map(|t| t.key.clone()).collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn push_cluster_lifecycle() {
    init();
    let cp_server = ApiServer::start();
    let mut member_server = ApiServer::start();
    let cp = cp_server.client().await;
    let member = member_server.client().await;
    install_cluster_crd(&cp).await;
    install_work_crds(&cp).await;

    // member content: two nodes (one Ready) and a bound pod with requests
    create_node(&member, "node-a", true).await;
    create_node(&member, "node-b", false).await;
    let pods: Api<Pod> = Api::namespaced(member.clone(), "default");
    let pod: Pod = serde_json::from_value(json!({
        "metadata": {"name": "web"},
        "spec": {"nodeName": "node-a", "containers": [{"name": "c", "image": "nginx",
            "resources": {"requests": {"cpu": "250m", "memory": "64Mi"}}}]}
    }))
    .expect("pod");
    pods.create(&PostParams::default(), &pod)
        .await
        .expect("create pod");

    // credentials as Karmada stores them: karmada-cluster/<name> with token and caBundle
    let namespaces: Api<Namespace> = Api::all(cp.clone());
    namespaces
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({"metadata": {"name": "karmada-cluster"}})).expect("ns"),
        )
        .await
        .expect("karmada-cluster namespace");
    let secrets: Api<Secret> = Api::namespaced(cp.clone(), "karmada-cluster");
    let mut secret = Secret::default();
    secret.metadata.name = Some("member1".into());
    secret.data = Some(
        [
            (
                "token".to_string(),
                ByteString(member_server.admin_token().into_bytes()),
            ),
            ("caBundle".to_string(), ByteString(member_server.ca_pem())),
        ]
        .into(),
    );
    secrets
        .create(&PostParams::default(), &secret)
        .await
        .expect("secret");

    let clusters: Api<Cluster> = Api::all(cp.clone());
    let cordon = Taint {
        key: "cluster.karmada.io/unschedulable".into(),
        effect: "NoSchedule".into(),
        ..Default::default()
    };
    let cluster = Cluster::new(
        "member1",
        ClusterSpec {
            sync_mode: "Push".into(),
            api_endpoint: member_server.url.clone(),
            secret_ref: Some(LocalSecretReference {
                namespace: "karmada-cluster".into(),
                name: "member1".into(),
            }),
            taints: vec![cordon.clone()],
            ..Default::default()
        },
    );
    clusters
        .create(&PostParams::default(), &cluster)
        .await
        .expect("create cluster");

    let ctx = Context::new(cp.clone(), fast_config());
    let controllers =
        tokio::spawn(async move { flotilla_controllers::run(ctx, &["*".to_string()]).await });

    // finalizer and execution namespace
    let es = wait_for("execution namespace", 10, || {
        let namespaces = namespaces.clone();
        async move {
            namespaces
                .get_opt("karmada-es-member1")
                .await
                .ok()
                .flatten()
        }
    })
    .await;
    assert_eq!(
        es.metadata
            .labels
            .unwrap_or_default()
            .get("karmada.io/system")
            .map(String::as_str),
        Some("true")
    );

    // Ready with the member's facts; automatic taints gone, cordon kept
    let c = wait_for("member1 Ready with summaries", 15, || {
        let clusters = clusters.clone();
        async move {
            let c = clusters.get("member1").await.ok()?;
            let ok = ready_of(&c)? == ("True".into(), "ClusterReady".into())
                && c.status.as_ref()?.resource_summary.is_some()
                && taint_keys(&c) == vec!["cluster.karmada.io/unschedulable".to_string()];
            ok.then_some(c)
        }
    })
    .await;
    assert!(
        c.metadata
            .finalizers
            .unwrap_or_default()
            .contains(&"karmada.io/cluster-controller".to_string())
    );
    let status = c.status.expect("status");
    assert!(
        status.kubernetes_version.starts_with("v1."),
        "{}",
        status.kubernetes_version
    );
    let core = status
        .api_enablements
        .iter()
        .find(|e| e.group_version == "v1")
        .expect("v1 enablement");
    assert!(
        core.resources
            .iter()
            .any(|r| r.name == "pods" && r.kind == "Pod")
    );
    assert!(core.resources.iter().all(|r| !r.name.contains('/')));
    let nodes = status.node_summary.expect("node summary");
    assert_eq!((nodes.total_num, nodes.ready_num), (Some(2), Some(1)));
    let rs = status.resource_summary.expect("resource summary");
    assert_eq!(rs.allocatable.get("cpu").map(|q| q.0.as_str()), Some("8"));
    assert_eq!(
        rs.allocatable.get("memory").map(|q| q.0.as_str()),
        Some("16Gi")
    );
    assert_eq!(rs.allocated.get("cpu").map(|q| q.0.as_str()), Some("250m"));
    assert_eq!(
        rs.allocated.get("memory").map(|q| q.0.as_str()),
        Some("64Mi")
    );
    assert_eq!(rs.allocated.get("pods").map(|q| q.0.as_str()), Some("1"));
    assert!(
        status
            .conditions
            .iter()
            .any(|c| c.type_ == "CompleteAPIEnablements" && c.status == "True")
    );

    // aggregated and legacy discovery agree
    let mut cache = flotilla_controllers::member::DiscoveryCache::default();
    let (mut aggregated, _) = flotilla_controllers::member::discover(&member, &mut cache).await;
    // asked again with the documents' ETags: the member answers 304, the
    // cached documents serve
    let (again, partial) = flotilla_controllers::member::discover(&member, &mut cache).await;
    assert!(!partial);
    assert_eq!(again, aggregated);
    let (mut legacy, partial) = flotilla_controllers::member::discover_legacy(&member).await;
    assert!(!partial);
    for e in aggregated.iter_mut().chain(legacy.iter_mut()) {
        e.resources.retain(|r| !r.name.contains('/'));
        e.resources.sort_by(|a, b| a.name.cmp(&b.name));
    }
    aggregated.sort_by(|a, b| a.group_version.cmp(&b.group_version));
    legacy.sort_by(|a, b| a.group_version.cmp(&b.group_version));
    assert_eq!(aggregated, legacy);

    // namespace sync (through Works): created, skipped, deleted
    let member_ns: Api<Namespace> = Api::all(member.clone());
    for (name, labels) in [
        ("apps", json!({"team": "a"})),
        (
            "private",
            json!({"namespace.karmada.io/skip-auto-propagation": "true"}),
        ),
        ("kube-extra", json!({})),
    ] {
        namespaces
            .create(
                &PostParams::default(),
                &serde_json::from_value(json!({"metadata": {"name": name, "labels": labels}}))
                    .expect("ns"),
            )
            .await
            .expect("create namespace");
    }
    let apps = wait_for("apps in member", 10, || {
        let member_ns = member_ns.clone();
        async move { member_ns.get_opt("apps").await.ok().flatten() }
    })
    .await;
    let labels = apps.metadata.labels.unwrap_or_default();
    assert_eq!(
        labels.get("karmada.io/managed").map(String::as_str),
        Some("true")
    );
    assert_eq!(labels.get("team").map(String::as_str), Some("a"));
    // label changes follow
    namespaces
        .patch(
            "apps",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"labels": {"team": "b"}}})),
        )
        .await
        .expect("relabel apps");
    wait_for("apps relabelled in member", 10, || {
        let member_ns = member_ns.clone();
        async move {
            let ns = member_ns.get_opt("apps").await.ok().flatten()?;
            (ns.metadata.labels?.get("team")? == "b").then_some(())
        }
    })
    .await;
    tokio::time::sleep(Duration::from_millis(600)).await;
    for skipped in [
        "private",
        "kube-extra",
        "karmada-es-member1",
        "karmada-cluster",
    ] {
        assert!(
            member_ns.get_opt(skipped).await.expect("get").is_none(),
            "{skipped} synced"
        );
    }
    namespaces
        .delete("apps", &DeleteParams::default())
        .await
        .expect("delete apps");
    wait_for("apps deleted in member", 10, || {
        let member_ns = member_ns.clone();
        async move {
            match member_ns.get_opt("apps").await.ok()? {
                None => Some(()),
                Some(ns) => ns.metadata.deletion_timestamp.map(|_| ()),
            }
        }
    })
    .await;

    // unreachable member: Ready=False ClusterNotReachable + not-ready taint, then back
    member_server.kill();
    let c = wait_for("member1 not reachable", 15, || {
        let clusters = clusters.clone();
        async move {
            let c = clusters.get("member1").await.ok()?;
            (ready_of(&c)? == ("False".into(), "ClusterNotReachable".into())
                && taint_keys(&c).contains(&"cluster.karmada.io/not-ready".to_string()))
            .then_some(c)
        }
    })
    .await;
    assert!(taint_keys(&c).contains(&"cluster.karmada.io/unschedulable".to_string()));
    assert_eq!(
        c.status
            .as_ref()
            .and_then(|s| s.conditions.iter().find(|c| c.type_ == "Ready"))
            .map(|c| c.message.as_str()),
        Some("cluster is not reachable")
    );
    member_server.restart();
    wait_for("member1 Ready again", 20, || {
        let clusters = clusters.clone();
        async move {
            let c = clusters.get("member1").await.ok()?;
            (ready_of(&c)?.0 == "True"
                && taint_keys(&c) == vec!["cluster.karmada.io/unschedulable".to_string()])
            .then_some(())
        }
    })
    .await;

    // unjoin: terminating taint, the execution namespace goes, then the Cluster;
    // an object with a finalizer holds the namespace (and so the Cluster) for a while
    let held: Api<k8s_openapi::api::core::v1::ConfigMap> =
        Api::namespaced(cp.clone(), "karmada-es-member1");
    held.create(
        &PostParams::default(),
        &serde_json::from_value(
            json!({"metadata": {"name": "held", "finalizers": ["test.flotilla.dev/hold"]}}),
        )
        .expect("configmap"),
    )
    .await
    .expect("create held configmap");
    clusters
        .delete("member1", &DeleteParams::default())
        .await
        .expect("delete cluster");
    let c = wait_for("terminating taint on the deleted cluster", 10, || {
        let clusters = clusters.clone();
        async move {
            let c = clusters.get("member1").await.ok()?;
            c.spec
                .taints
                .iter()
                .any(|t| t.key == "cluster.karmada.io/terminating" && t.effect == "NoExecute")
                .then_some(c)
        }
    })
    .await;
    assert!(c.metadata.deletion_timestamp.is_some());
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        clusters.get_opt("member1").await.expect("get").is_some(),
        "the cluster must wait for its execution namespace"
    );
    held.patch(
        "held",
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"finalizers": null}})),
    )
    .await
    .expect("release configmap");
    wait_for("cluster and execution namespace gone", 15, || {
        let clusters = clusters.clone();
        let namespaces = namespaces.clone();
        async move {
            let gone = clusters.get_opt("member1").await.ok()?.is_none()
                && namespaces
                    .get_opt("karmada-es-member1")
                    .await
                    .ok()?
                    .is_none();
            gone.then_some(())
        }
    })
    .await;
    controllers.abort();
}

#[tokio::test(flavor = "multi_thread")]
async fn pull_agent_lease_expiry() {
    init();
    let cp_server = ApiServer::start();
    let member_server = ApiServer::start();
    let cp = cp_server.client().await;
    let member = member_server.client().await;
    install_cluster_crd(&cp).await;
    create_node(&member, "node-a", true).await;

    let config = fast_config();
    let ctx = Context::new(cp.clone(), config.clone());
    let controllers = tokio::spawn(async move {
        flotilla_controllers::run(ctx, &["cluster".to_string(), "clusterStatus".to_string()]).await
    });
    let agent = tokio::spawn(run_agent(
        cp.clone(),
        member.clone(),
        "member4",
        AgentOptions::new(config).api_endpoint(member_server.url.clone()),
    ));

    let clusters: Api<Cluster> = Api::all(cp.clone());
    let c = wait_for("pull cluster Ready", 15, || {
        let clusters = clusters.clone();
        async move {
            let c = clusters.get("member4").await.ok()?;
            (ready_of(&c)?.0 == "True" && c.spec.taints.is_empty()).then_some(c)
        }
    })
    .await;
    assert_eq!(c.spec.sync_mode, "Pull");
    assert!(
        !c.spec.id.is_empty(),
        "spec.id from the member's kube-system uid"
    );
    assert_eq!(
        c.status
            .as_ref()
            .and_then(|s| s.node_summary.as_ref())
            .and_then(|n| n.ready_num),
        Some(1)
    );
    let leases: Api<Lease> = Api::namespaced(cp.clone(), "karmada-cluster");
    let lease = wait_for("lease", 10, || {
        let leases = leases.clone();
        async move { leases.get_opt("member4").await.ok().flatten() }
    })
    .await;
    let spec = lease.spec.expect("lease spec");
    assert_eq!(spec.holder_identity.as_deref(), Some("member4"));
    assert_eq!(spec.lease_duration_seconds, Some(1));
    assert_eq!(
        lease
            .metadata
            .owner_references
            .unwrap_or_default()
            .first()
            .map(|o| o.name.as_str()),
        Some("member4")
    );
    // renewed
    let first = spec.renew_time.expect("renew time").0;
    wait_for("lease renewed", 5, || {
        let leases = leases.clone();
        async move {
            let l = leases.get_opt("member4").await.ok().flatten()?;
            (l.spec?.renew_time?.0 > first).then_some(())
        }
    })
    .await;
    // the execution namespace exists for pull clusters too
    let namespaces: Api<Namespace> = Api::all(cp.clone());
    assert!(
        namespaces
            .get_opt("karmada-es-member4")
            .await
            .expect("get")
            .is_some()
    );

    // the agent dies: the lease expires, Ready=Unknown and the unreachable taint
    agent.abort();
    let c = wait_for("Ready=Unknown after lease expiry", 15, || {
        let clusters = clusters.clone();
        async move {
            let c = clusters.get("member4").await.ok()?;
            (ready_of(&c)? == ("Unknown".into(), "ClusterStatusUnknown".into())
                && taint_keys(&c) == vec!["cluster.karmada.io/unreachable".to_string()])
            .then_some(c)
        }
    })
    .await;
    assert_eq!(c.spec.taints[0].effect, "NoSchedule");

    // the agent comes back: Ready again
    let agent = tokio::spawn(run_agent(
        cp.clone(),
        member.clone(),
        "member4",
        AgentOptions::new(fast_config()),
    ));
    wait_for("Ready again", 15, || {
        let clusters = clusters.clone();
        async move {
            let c = clusters.get("member4").await.ok()?;
            (ready_of(&c)?.0 == "True" && c.spec.taints.is_empty()).then_some(())
        }
    })
    .await;
    agent.abort();
    controllers.abort();
}

/// The same Push lifecycle against the real aggregated Cluster API that
/// `flotilla up` registers with an APIService (status subresource, watch
/// through the front proxy), instead of the test CRD.
#[tokio::test(flavor = "multi_thread")]
async fn push_cluster_on_aggregated_api() {
    init();
    let cp_server = ApiServer::start_up();
    let member_server = ApiServer::start();
    let cp = cp_server.client().await;
    let member = member_server.client().await;
    create_node(&member, "node-a", true).await;
    let clusters: Api<Cluster> = Api::all(cp.clone());
    wait_for("aggregated Cluster API", 15, || {
        let clusters = clusters.clone();
        async move { clusters.list(&Default::default()).await.ok() }
    })
    .await;
    let namespaces: Api<Namespace> = Api::all(cp.clone());
    let _ = namespaces
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({"metadata": {"name": "karmada-cluster"}})).expect("ns"),
        )
        .await;
    let secrets: Api<Secret> = Api::namespaced(cp.clone(), "karmada-cluster");
    let mut secret = Secret::default();
    secret.metadata.name = Some("member2".into());
    secret.data = Some(
        [
            (
                "token".to_string(),
                ByteString(member_server.admin_token().into_bytes()),
            ),
            ("caBundle".to_string(), ByteString(member_server.ca_pem())),
        ]
        .into(),
    );
    secrets
        .create(&PostParams::default(), &secret)
        .await
        .expect("secret");
    let cluster = Cluster::new(
        "member2",
        ClusterSpec {
            sync_mode: "Push".into(),
            api_endpoint: member_server.url.clone(),
            secret_ref: Some(LocalSecretReference {
                namespace: "karmada-cluster".into(),
                name: "member2".into(),
            }),
            ..Default::default()
        },
    );
    clusters
        .create(&PostParams::default(), &cluster)
        .await
        .expect("create cluster");
    let ctx = Context::new(cp.clone(), fast_config());
    let controllers =
        tokio::spawn(async move { flotilla_controllers::run(ctx, &["*".to_string()]).await });
    let c = wait_for("member2 Ready on the aggregated API", 15, || {
        let clusters = clusters.clone();
        async move {
            let c = clusters.get("member2").await.ok()?;
            (ready_of(&c)?.0 == "True"
                && c.spec.taints.is_empty()
                && c.status.as_ref()?.node_summary.is_some())
            .then_some(c)
        }
    })
    .await;
    let status = c.status.expect("status");
    assert!(!status.kubernetes_version.is_empty());
    // the aggregated server gives Clusters Karmada's default resource models
    assert_eq!(c.spec.resource_models.len(), 9);
    let modelings = status
        .resource_summary
        .expect("resource summary")
        .allocatable_modelings;
    assert_eq!(modelings.len(), 9);
    // one node with 4 cpu and 8Gi: grade 1 (memory [4Gi, 16Gi) caps cpu's grade 2)
    assert_eq!(
        modelings.iter().map(|m| m.count).collect::<Vec<_>>(),
        vec![0, 1, 0, 0, 0, 0, 0, 0, 0]
    );
    assert!(
        namespaces
            .get_opt("karmada-es-member2")
            .await
            .expect("get")
            .is_some()
    );
    clusters
        .delete("member2", &DeleteParams::default())
        .await
        .expect("delete cluster");
    wait_for("member2 gone", 15, || {
        let clusters = clusters.clone();
        let namespaces = namespaces.clone();
        async move {
            let gone = clusters.get_opt("member2").await.ok()?.is_none()
                && namespaces
                    .get_opt("karmada-es-member2")
                    .await
                    .ok()?
                    .is_none();
            gone.then_some(())
        }
    })
    .await;
    controllers.abort();
}

/// Many Push members at once (`FLOTILLA_MEMBERS`, default 10) with `flotilla
/// up`'s 1 s status frequency: every Cluster Ready with summaries within a
/// few seconds of being created. Prints the time taken.
#[tokio::test(flavor = "multi_thread")]
#[ignore = "starts many apiserver processes; run with --ignored"]
async fn many_members_ready() {
    init();
    let n: usize = std::env::var("FLOTILLA_MEMBERS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10);
    let cp_server = ApiServer::start();
    let cp = cp_server.client().await;
    install_cluster_crd(&cp).await;
    let members: Vec<ApiServer> = (0..n).map(|_| ApiServer::start()).collect();
    let namespaces: Api<Namespace> = Api::all(cp.clone());
    namespaces
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({"metadata": {"name": "karmada-cluster"}})).expect("ns"),
        )
        .await
        .expect("karmada-cluster namespace");
    let secrets: Api<Secret> = Api::namespaced(cp.clone(), "karmada-cluster");
    let clusters: Api<Cluster> = Api::all(cp.clone());
    let ctx = Context::new(
        cp.clone(),
        Config::default().cluster_status_update_frequency(Duration::from_secs(1)),
    );
    let controllers =
        tokio::spawn(async move { flotilla_controllers::run(ctx, &["*".to_string()]).await });
    let started = Instant::now();
    for (i, m) in members.iter().enumerate() {
        let name = format!("member{}", i + 1);
        let mut secret = Secret::default();
        secret.metadata.name = Some(name.clone());
        secret.data = Some(
            [
                (
                    "token".to_string(),
                    ByteString(m.admin_token().into_bytes()),
                ),
                ("caBundle".to_string(), ByteString(m.ca_pem())),
            ]
            .into(),
        );
        secrets
            .create(&PostParams::default(), &secret)
            .await
            .expect("secret");
        let cluster = Cluster::new(
            &name,
            ClusterSpec {
                sync_mode: "Push".into(),
                api_endpoint: m.url.clone(),
                secret_ref: Some(LocalSecretReference {
                    namespace: "karmada-cluster".into(),
                    name: name.clone(),
                }),
                ..Default::default()
            },
        );
        clusters
            .create(&PostParams::default(), &cluster)
            .await
            .expect("create cluster");
    }
    wait_for("every member Ready", 30, || {
        let clusters = clusters.clone();
        async move {
            let list = clusters.list(&Default::default()).await.ok()?;
            let ready = list
                .items
                .iter()
                .filter(|c| {
                    ready_of(c).is_some_and(|r| r.0 == "True")
                        && c.spec.taints.is_empty()
                        && c.status.as_ref().is_some_and(|s| s.node_summary.is_some())
                })
                .count();
            (ready == n).then_some(())
        }
    })
    .await;
    let took = started.elapsed();
    eprintln!("{n} members Ready (taints cleared) in {took:?}");
    assert!(took < Duration::from_secs(5), "{n} members took {took:?}");
    controllers.abort();
}
