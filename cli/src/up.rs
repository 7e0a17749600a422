//! `flotilla up`: the embedded default. One process runs the host API server (the
//! control plane, durable in DIR), Karmada's aggregated API server for Clusters
//! (registered on the host with an APIService), Karmada's CRDs, and writes
//! DIR/kubeconfig once everything serves.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context, Result};
use base64::Engine;
use flotilla_apiserver::cluster_proxy::{Credentials, CredentialsSource};
use flotilla_apiserver::registry::store::{Store, WriteOptions};
use flotilla_apiserver::server::{self, Role};
use serde_json::{Value, json};

pub mod monitoring;
mod webhook;

/// Options of `flotilla up`.
pub struct Options {
    pub dir: PathBuf,
    pub bind: SocketAddr,
    /// How many simulated member clusters (member1..N).
    pub members: usize,
    /// Nodes per simulated member.
    pub nodes: usize,
    /// Longest simulated container start of member pods.
    pub pod_ready_delay: std::time::Duration,
    /// `--controllers` (Karmada syntax) of the in-process controllers.
    pub controllers: Vec<String>,
    /// Serve the admission webhook in-process (else only register it).
    pub webhook: bool,
    /// Write a Prometheus configuration for every component and print the targets.
    pub metrics: bool,
    /// The webhook's `--allow-no-execute-taint-policy`.
    pub allow_no_execute_taint_policy: bool,
    /// Failover flags of the in-process controllers.
    pub failover: flotilla_controllers::flags::FailoverFlags,
}

/// The namespace holding member credentials, as in Karmada.
pub const CLUSTER_NAMESPACE: &str = "karmada-cluster";

/// The namespace of flotilla's own components on the control plane.
pub const SYSTEM_NAMESPACE: &str = "karmada-system";
/// The Service name the aggregated API server is reached through.
pub const AGGREGATED_SERVICE: &str = "karmada-aggregated-apiserver";

fn manager() -> WriteOptions {
    WriteOptions::manager("flotilla-up")
}

/// Creates `object` unless it exists (by group/resource/namespace/name).
async fn ensure(
    store: &Store,
    group: &str,
    version: &str,
    plural: &str,
    object: Value,
) -> Result<()> {
    let info = store
        .catalog
        .get(group, version, plural)
        .with_context(|| format!("the control plane does not serve {plural}.{group}/{version}"))?;
    let namespace = object
        .pointer("/metadata/namespace")
        .and_then(Value::as_str)
        .map(str::to_string);
    match store
        .create(&info, namespace.as_deref(), object, &manager())
        .await
    {
        Ok(_) => Ok(()),
        Err(e) if e.reason == "AlreadyExists" => Ok(()),
        Err(e) => Err(anyhow::anyhow!("creating {plural}: {e}")),
    }
}

/// Creates or replaces an object the control plane must have exactly.
async fn put(store: &Store, group: &str, version: &str, plural: &str, object: Value) -> Result<()> {
    let info = store
        .catalog
        .get(group, version, plural)
        .with_context(|| format!("the control plane does not serve {plural}.{group}/{version}"))?;
    let namespace = object
        .pointer("/metadata/namespace")
        .and_then(Value::as_str)
        .map(str::to_string);
    let name = object
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    match store
        .create(&info, namespace.as_deref(), object.clone(), &manager())
        .await
    {
        Ok(_) => Ok(()),
        Err(e) if e.reason == "AlreadyExists" => {
            let patch_type = if info.custom.is_some() {
                flotilla_apiserver::registry::patch::PatchType::Merge
            } else {
                flotilla_apiserver::registry::patch::PatchType::Strategic
            };
            store
                .patch(
                    &info,
                    namespace.as_deref(),
                    &name,
                    patch_type,
                    &object,
                    flotilla_apiserver::registry::store::Part::Main,
                    &manager(),
                )
                .await
                .map(|_| ())
                .map_err(|e| anyhow::anyhow!("updating {plural} {name}: {e}"))
        }
        Err(e) => Err(anyhow::anyhow!("creating {plural} {name}: {e}")),
    }
}

/// Registers the aggregated API server on the host: namespace, Service, Endpoints
/// pointing at its address, and the APIService for cluster.karmada.io.
async fn register_aggregated(store: &Store, addr: SocketAddr, ca_pem: &str) -> Result<()> {
    ensure(
        store,
        "",
        "v1",
        "namespaces",
        json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": SYSTEM_NAMESPACE}}),
    )
    .await?;
    put(store, "", "v1", "services", json!({
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": AGGREGATED_SERVICE, "namespace": SYSTEM_NAMESPACE, "labels": {"app": AGGREGATED_SERVICE}},
        "spec": {"ports": [{"name": "https", "port": 443, "targetPort": addr.port()}]},
    }))
    .await?;
    put(store, "", "v1", "endpoints", json!({
        "apiVersion": "v1", "kind": "Endpoints",
        "metadata": {"name": AGGREGATED_SERVICE, "namespace": SYSTEM_NAMESPACE},
        "subsets": [{"addresses": [{"ip": addr.ip().to_string()}], "ports": [{"name": "https", "port": addr.port()}]}],
    }))
    .await?;
    let ca_bundle = base64::engine::general_purpose::STANDARD.encode(ca_pem);
    put(store, "apiregistration.k8s.io", "v1", "apiservices", json!({
        "apiVersion": "apiregistration.k8s.io/v1", "kind": "APIService",
        "metadata": {"name": "v1alpha1.cluster.karmada.io", "labels": {"app": AGGREGATED_SERVICE, "apiserver": "true"}},
        "spec": {"group": "cluster.karmada.io", "version": "v1alpha1", "caBundle": ca_bundle,
                 "service": {"namespace": SYSTEM_NAMESPACE, "name": AGGREGATED_SERVICE, "port": 443},
                 "groupPriorityMinimum": 2000, "versionPriority": 10},
    }))
    .await?;
    Ok(())
}

/// The unified view's registration on the host: the APIService for
/// search.karmada.io (same Service as cluster.karmada.io: one aggregated server
/// serves both), and the default ResourceRegistry in the aggregated server.
async fn register_unified_view(host: &Store, aggregated: &Store) -> Result<()> {
    let cluster_api = host
        .catalog
        .get("apiregistration.k8s.io", "v1", "apiservices")
        .context("the control plane does not serve apiservices")?;
    let existing = host
        .get(&cluster_api, None, "v1alpha1.cluster.karmada.io")
        .await
        .map_err(|e| anyhow::anyhow!("reading the cluster.karmada.io APIService: {e}"))?;
    let mut search = json!({
        "apiVersion": "apiregistration.k8s.io/v1", "kind": "APIService",
        "metadata": {"name": "v1alpha1.search.karmada.io", "labels": {"app": AGGREGATED_SERVICE, "apiserver": "true"}},
        "spec": existing["spec"].clone(),
    });
    search["spec"]["group"] = json!("search.karmada.io");
    put(host, "apiregistration.k8s.io", "v1", "apiservices", search).await?;
    let kinds = [
        ("v1", "Pod"),
        ("apps/v1", "Deployment"),
        ("apps/v1", "ReplicaSet"),
        ("apps/v1", "StatefulSet"),
        ("apps/v1", "DaemonSet"),
        ("batch/v1", "Job"),
        ("v1", "Service"),
        ("discovery.k8s.io/v1", "EndpointSlice"),
        ("v1", "ConfigMap"),
        ("v1", "Node"),
        ("v1", "Event"),
    ];
    let selectors: Vec<Value> = kinds
        .iter()
        .map(|(api_version, kind)| json!({"apiVersion": api_version, "kind": kind}))
        .collect();
    ensure(
        aggregated,
        "search.karmada.io",
        "v1alpha1",
        "resourceregistries",
        json!({
            "apiVersion": "search.karmada.io/v1alpha1", "kind": "ResourceRegistry",
            "metadata": {"name": "default"},
            "spec": {"targetCluster": {}, "resourceSelectors": selectors},
        }),
    )
    .await
}

/// The `flotilla-all` context: the control plane's credentials, its URL plus
/// Karmada's unified-view prefix.
fn unified_context(
    host: &(String, String, String, String, String),
) -> (String, String, String, String, String) {
    let (_, url, ca, cert, key) = host;
    (
        "flotilla-all".to_string(),
        format!("{url}{}", flotilla_apiserver::unified::PREFIX),
        ca.clone(),
        cert.clone(),
        key.clone(),
    )
}

/// Installs every Karmada CRD flotilla serves (unchanged when present); the
/// binding CRDs get `conversion` (kept current).
async fn install_crds(store: &Store, conversion: &Value) -> Result<()> {
    for (_, mut crd) in flotilla_api::crd_values() {
        if let Some(c) = crd.pointer_mut("/spec/conversion") {
            *c = conversion.clone();
            put(
                store,
                "apiextensions.k8s.io",
                "v1",
                "customresourcedefinitions",
                crd,
            )
            .await?;
            continue;
        }
        ensure(
            store,
            "apiextensions.k8s.io",
            "v1",
            "customresourcedefinitions",
            crd,
        )
        .await?;
    }
    Ok(())
}

/// A kubeconfig with one context per entry: (context, server URL, CA PEM, client cert PEM, client key PEM).
pub fn kubeconfig(contexts: &[(String, String, String, String, String)], current: &str) -> String {
    let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s.as_bytes());
    let mut clusters = String::new();
    let mut users = String::new();
    let mut ctxs = String::new();
    for (name, url, ca, cert, key) in contexts {
        clusters.push_str(&format!(
            "- name: {name}\n  cluster:\n    server: {url}\n    certificate-authority-data: {}\n",
            b64(ca)
        ));
        users.push_str(&format!("- name: {name}-admin\n  user:\n    client-certificate-data: {}\n    client-key-data: {}\n", b64(cert), b64(key)));
        ctxs.push_str(&format!(
            "- name: {name}\n  context:\n    cluster: {name}\n    user: {name}-admin\n"
        ));
    }
    format!(
        "apiVersion: v1\nkind: Config\nclusters:\n{clusters}users:\n{users}contexts:\n{ctxs}current-context: {current}\npreferences: {{}}\n"
    )
}

fn read(path: &Path) -> Result<String> {
    std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))
}

/// Runs the embedded control plane until `shutdown` completes.
pub async fn run(opts: Options, shutdown: impl std::future::Future<Output = ()>) -> Result<()> {
    tokio::pin!(shutdown);
    let started = Instant::now();
    std::fs::create_dir_all(&opts.dir)
        .with_context(|| format!("creating {}", opts.dir.display()))?;
    let host_dir = opts.dir.join("apiserver");
    let host = server::bind(server::Config::new(&host_dir).bind(opts.bind))
        .await
        .context("starting the host API server")?;
    eprintln!(
        "flotilla: control plane API server on https://{}",
        host.local_addr
    );

    let mut aggregated_config = server::Config::new(opts.dir.join("aggregated-apiserver"))
        .bind(SocketAddr::from(([127, 0, 0, 1], 0)));
    aggregated_config.role = Role::Aggregated;
    // Its writes are mostly Cluster status updates, kept parsed, so an event
    // with the Cluster before it is some 50 KB: 2 MiB of history holds the
    // last few seconds of them at 100 members, enough for a watch resuming
    // from its last bookmark; one further behind lists the Clusters again.
    aggregated_config.watch_history = flotilla_apiserver::storage::cache::HistoryLimit {
        bytes: 2 << 20,
        ..Default::default()
    };
    aggregated_config.member_credentials = Some(host_credentials(host.api().store.clone()));
    aggregated_config.extra_sans = vec![format!("{AGGREGATED_SERVICE}.{SYSTEM_NAMESPACE}.svc")];
    aggregated_config.request_header = Some(server::auth::RequestHeader {
        ca_pem: read(&host_dir.join("front-proxy-ca.crt"))?,
        allowed_names: vec!["front-proxy-client".into()],
    });
    let aggregated = server::bind(aggregated_config)
        .await
        .context("starting the aggregated API server")?;
    let store: Arc<Store> = host.api().store.clone();
    register_aggregated(
        &store,
        aggregated.local_addr,
        &read(&opts.dir.join("aggregated-apiserver").join("ca.crt"))?,
    )
    .await?;
    let webhook = webhook::start(
        &opts.dir.join("webhook"),
        &host.kubeconfig,
        opts.webhook,
        opts.allow_no_execute_taint_policy,
    )
    .await?;
    install_crds(&store, &webhook.conversion()).await?;
    webhook.register(&store).await?;
    match webhook.addr() {
        Some(addr) => eprintln!("flotilla: admission webhook on https://{addr}"),
        None => eprintln!(
            "flotilla: admission webhook registered but not started (--webhook=false); policy writes fail until one serves"
        ),
    }
    let cluster_store = aggregated.api().store.clone();
    register_unified_view(&store, &cluster_store).await?;
    eprintln!("flotilla: Karmada API installed (CRDs, cluster.karmada.io, search.karmada.io)");
    // Both API servers serve from here on; everything after talks to them.
    let (stop, _) = tokio::sync::watch::channel(false);
    let mut aggregated_stop = stop.subscribe();
    let mut host_stop = stop.subscribe();
    let (host_addr, aggregated_addr) = (host.local_addr, aggregated.local_addr);
    let aggregated_task = tokio::spawn(aggregated.serve(async move {
        let _ = aggregated_stop.changed().await;
    }));
    let host_url = format!("https://{}", host.local_addr);
    let host_task = tokio::spawn(host.serve(async move {
        let _ = host_stop.changed().await;
    }));

    let mut contexts = vec![(
        "flotilla".to_string(),
        host_url.clone(),
        read(&host_dir.join("ca.crt"))?,
        read(&host_dir.join("admin.crt"))?,
        read(&host_dir.join("admin.key"))?,
    )];
    contexts.push(unified_context(&contexts[0]));

    // Simulated members, registered as Push clusters with their credentials.
    ensure(
        &store,
        "",
        "v1",
        "namespaces",
        json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": CLUSTER_NAMESPACE}}),
    )
    .await?;
    let mut members = Vec::new();
    // Members start side by side; each is registered as soon as it serves.
    let starts = (1..=opts.members).map(|i| {
        let name = format!("member{i}");
        let member_dir = opts.dir.join("members").join(&name);
        let nodes = opts.nodes;
        let ready_delay = opts.pod_ready_delay;
        async move {
            let config = flotilla_sim::Config::new(&name, &member_dir)
                .nodes(nodes)
                .ready_delay(std::time::Duration::ZERO, ready_delay);
            let member = flotilla_sim::start(config)
                .await
                .with_context(|| format!("starting simulated member {name}"))?;
            anyhow::Ok((member, member_dir))
        }
    });
    for (member, member_dir) in futures::future::try_join_all(starts).await? {
        register_member(&store, &cluster_store, &member).await?;
        contexts.push((
            member.name().to_string(),
            member.url().to_string(),
            member.ca_pem().to_string(),
            read(&member_dir.join("admin.crt"))?,
            read(&member_dir.join("admin.key"))?,
        ));
        members.push(member);
    }
    if opts.members > 0 {
        eprintln!(
            "flotilla: {} simulated member clusters started",
            opts.members
        );
    }

    // Controllers, through the control plane's API as any client.
    let client = host_client(&host_dir.join("kubeconfig")).await?;
    // The embedded default reacts in seconds, not Karmada's production half-minutes.
    let config = flotilla_controllers::context::Config::default()
        .cluster_status_update_frequency(std::time::Duration::from_secs(1))
        .cluster_thresholds(std::time::Duration::ZERO, std::time::Duration::from_secs(3))
        .horizontal_pod_autoscaler_sync_period(std::time::Duration::from_secs(2))
        .eviction_rates(flotilla_controllers::eviction_queue::EvictionRates {
            rate: 50.0,
            ..Default::default()
        });
    let config = opts.failover.apply(config);
    if config.taint_eviction_enabled() {
        eprintln!(
            "flotilla: cluster failover on (--feature-gates={}, NoExecute eviction purge mode {})",
            config.feature_gates, config.no_execute_taint_eviction_purge_mode
        );
    }
    let enabled = opts.controllers.clone();
    let controllers = tokio::spawn(async move {
        if let Err(e) = flotilla_controllers::run(
            flotilla_controllers::context::Context::new(client, config),
            &enabled,
        )
        .await
        {
            tracing::error!(error = %e, "controllers stopped");
        }
    });
    let controllers_metrics =
        flotilla_controllers::metrics::serve(SocketAddr::from(([127, 0, 0, 1], 0)))
            .await
            .context("serving the controllers' metrics")?;
    let components = monitoring::components(
        host_addr,
        aggregated_addr,
        webhook.addr(),
        controllers_metrics,
    );
    monitoring::write_components(&opts.dir, &components)?;
    let names: Vec<String> = members.iter().map(|m| m.name().to_string()).collect();
    wait_ready(&cluster_store, &names).await;
    let kubeconfig = opts.dir.join("kubeconfig");
    flotilla_apiserver::server::pki::write_atomic(
        &kubeconfig,
        kubeconfig_text(&contexts).as_bytes(),
    )?;
    let shown = std::path::absolute(&kubeconfig).unwrap_or(kubeconfig);
    println!("flotilla is up in {:.1}s", started.elapsed().as_secs_f64());
    println!("  export KUBECONFIG={}", shown.display());
    println!("  kubectl --context flotilla get clusters");
    if opts.members > 0 {
        println!("  kubectl --context member1 get nodes");
    }
    if opts.metrics {
        let config = monitoring::write_prometheus(&opts.dir, &components)?;
        println!("Metrics (Prometheus text format):");
        for c in &components {
            println!("  {:<22} {}/metrics", c.name, c.url());
        }
        let shown = std::path::absolute(&config).unwrap_or(config);
        println!("  prometheus --config.file={}", shown.display());
    }
    println!("Press Ctrl-C to stop.");

    (&mut shutdown).await;
    controllers.abort();
    for m in members {
        m.stop().await;
    }
    webhook.stop().await;
    let _ = stop.send(true);
    let _ = aggregated_task.await;
    let _ = host_task.await;
    Ok(())
}

/// Member credentials read in-process from the host's store (Secrets
/// `karmada-cluster/<member>`), for the aggregated server's cluster proxy.
fn host_credentials(store: Arc<Store>) -> CredentialsSource {
    CredentialsSource::new(move |namespace, name| {
        let secret = store
            .storage
            .snapshot()
            .get(&format!("/core/secrets/{namespace}/{name}"))
            .map(|kv| Credentials::from_secret(kv.kept()));
        Box::pin(async move { Ok(secret.flatten()) })
    })
}

/// A kube-rs client for the control plane from its kubeconfig.
async fn host_client(kubeconfig: &Path) -> Result<kube::Client> {
    let config = kube::config::Kubeconfig::read_from(kubeconfig)
        .context("reading the control plane kubeconfig")?;
    let config = kube::Config::from_custom_kubeconfig(config, &Default::default())
        .await
        .context("control plane client config")?;
    flotilla_controllers::client::build(config).context("control plane client")
}

/// Creates a member's credentials Secret and its Cluster (Push mode).
async fn register_member(
    host: &Store,
    clusters: &Store,
    member: &flotilla_sim::Member,
) -> Result<()> {
    let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s.as_bytes());
    put(
        host,
        "",
        "v1",
        "secrets",
        json!({
            "apiVersion": "v1", "kind": "Secret",
            "metadata": {"name": member.name(), "namespace": CLUSTER_NAMESPACE},
            "type": "Opaque",
            "data": {"token": b64(member.token()), "caBundle": b64(member.ca_pem())},
        }),
    )
    .await?;
    let cluster = json!({
        "apiVersion": "cluster.karmada.io/v1alpha1", "kind": "Cluster",
        "metadata": {"name": member.name()},
        "spec": {"syncMode": "Push", "apiEndpoint": member.url(),
                 "secretRef": {"namespace": CLUSTER_NAMESPACE, "name": member.name()}},
    });
    let info = clusters
        .catalog
        .get("cluster.karmada.io", "v1alpha1", "clusters")
        .context("clusters are not served")?;
    match clusters
        .create(&info, None, cluster.clone(), &manager())
        .await
    {
        Ok(_) => Ok(()),
        Err(e) if e.reason == "AlreadyExists" => clusters
            .patch(
                &info,
                None,
                member.name(),
                flotilla_apiserver::registry::patch::PatchType::Merge,
                &cluster,
                flotilla_apiserver::registry::store::Part::Main,
                &manager(),
            )
            .await
            .map(|_| ())
            .map_err(|e| anyhow::anyhow!("updating cluster {}: {e}", member.name())),
        Err(e) => Err(anyhow::anyhow!(
            "registering cluster {}: {e}",
            member.name()
        )),
    }
}

/// Waits (bounded) until the named clusters report Ready=True.
async fn wait_ready(clusters: &Store, names: &[String]) {
    let expected = names.len();
    let deadline = Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let ready = clusters
            .storage
            .snapshot()
            .range("/cluster.karmada.io/clusters/", None)
            .filter(|kv| names.iter().any(|n| kv.key.ends_with(&format!("/{n}"))))
            .filter(|kv| {
                kv.kept()
                    .pointer("/status/conditions")
                    .and_then(Value::as_array)
                    .is_some_and(|c| {
                        c.iter()
                            .any(|c| c["type"] == "Ready" && c["status"] == "True")
                    })
            })
            .count();
        if ready >= expected {
            return;
        }
        if Instant::now() > deadline {
            eprintln!("flotilla: only {ready} of {expected} clusters are Ready; continuing");
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

fn kubeconfig_text(contexts: &[(String, String, String, String, String)]) -> String {
    kubeconfig(contexts, "flotilla")
}
