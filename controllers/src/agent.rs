//! The pull-mode agent as a library (Karmada's karmada-agent): registers the
//! Cluster with `syncMode: Pull`, reports its status like the status
//! controller does for Push clusters, and, once the cluster is Ready, renews
//! the `coordination.k8s.io/v1` Lease named after it in `karmada-cluster`
//! (duration 40 s, renewed every 10 s by default). With `apply_works` (on by
//! default) it runs the execution and work-status controllers for its
//! cluster's Works, which include the namespace Works the control plane's
//! namespace sync controller writes: that is how control-plane namespaces
//! reach a Pull member.

use flotilla_api::cluster::{Cluster, ClusterSpec, SYNC_MODE_PULL};
use flotilla_api::names::NAMESPACE_KARMADA_CLUSTER;
use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, OwnerReference};
use k8s_openapi::jiff::Timestamp;
use kube::api::{Patch, PatchParams, PostParams};
use kube::{Api, Client, Resource, ResourceExt};
use serde_json::json;

use crate::cluster_status::reconcile::ThresholdState;
use crate::{Config, Error, Result};

/// Aborts the task when dropped (the agent's Work controllers end with it).
struct AbortOnDrop(Option<tokio::task::JoinHandle<()>>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        if let Some(h) = &self.0 {
            h.abort();
        }
    }
}

/// Options of [`run_agent`].
#[derive(Clone, Debug)]
pub struct AgentOptions {
    /// Timings (status frequency, thresholds, lease duration and renew fraction).
    pub config: Config,
    /// `spec.apiEndpoint` to record on the Cluster (informative in Pull mode;
    /// empty leaves it unset).
    pub api_endpoint: String,
    /// Apply this cluster's Works to the member and report their status (the
    /// execution and work-status controllers, as in karmada-agent). On by default.
    pub apply_works: bool,
}

impl AgentOptions {
    /// Options with these timings.
    pub fn new(config: Config) -> Self {
        AgentOptions {
            config,
            api_endpoint: String::new(),
            apply_works: true,
        }
    }

    /// Turns applying Works on or off.
    pub fn apply_works(mut self, on: bool) -> Self {
        self.apply_works = on;
        self
    }

    /// Sets the endpoint recorded in `spec.apiEndpoint`.
    pub fn api_endpoint(mut self, endpoint: impl Into<String>) -> Self {
        self.api_endpoint = endpoint.into();
        self
    }
}

impl Default for AgentOptions {
    fn default() -> Self {
        AgentOptions::new(Config::default())
    }
}

/// Creates the Cluster with `syncMode: Pull` (and `spec.id` = the member's
/// `kube-system` namespace uid when readable), or switches an existing one to
/// Pull, as karmada-agent does at start.
pub async fn register(
    control_plane: &Client,
    member: &Client,
    cluster_name: &str,
    opts: &AgentOptions,
) -> Result<Cluster> {
    let api: Api<Cluster> = Api::all(control_plane.clone());
    let id = Api::<Namespace>::all(member.clone())
        .get_opt("kube-system")
        .await
        .ok()
        .flatten()
        .and_then(|ns| ns.metadata.uid)
        .unwrap_or_default();
    if let Some(existing) = api.get_opt(cluster_name).await? {
        if existing.spec.sync_mode == SYNC_MODE_PULL
            && (opts.api_endpoint.is_empty() || existing.spec.api_endpoint == opts.api_endpoint)
        {
            return Ok(existing);
        }
        let mut spec = json!({"syncMode": SYNC_MODE_PULL});
        if !opts.api_endpoint.is_empty() {
            spec["apiEndpoint"] = json!(opts.api_endpoint);
        }
        return Ok(api
            .patch(
                cluster_name,
                &PatchParams::default(),
                &Patch::Merge(json!({"spec": spec})),
            )
            .await?);
    }
    let cluster = Cluster::new(
        cluster_name,
        ClusterSpec {
            id,
            sync_mode: SYNC_MODE_PULL.into(),
            api_endpoint: opts.api_endpoint.clone(),
            ..Default::default()
        },
    );
    match api.create(&PostParams::default(), &cluster).await {
        Ok(c) => {
            tracing::info!(cluster = cluster_name, "registered pull cluster");
            Ok(c)
        }
        Err(kube::Error::Api(s)) if s.code == 409 => Ok(api.get(cluster_name).await?),
        Err(e) => Err(e.into()),
    }
}

/// Creates or renews the cluster's Lease in `karmada-cluster`
/// (holderIdentity = cluster name, owner reference to the Cluster).
pub async fn renew_lease(control_plane: &Client, cluster: &Cluster, config: &Config) -> Result<()> {
    let name = cluster.name_any();
    let ns_api: Api<Namespace> = Api::all(control_plane.clone());
    if ns_api.get_opt(NAMESPACE_KARMADA_CLUSTER).await?.is_none() {
        let ns: Namespace =
            serde_json::from_value(json!({"metadata": {"name": NAMESPACE_KARMADA_CLUSTER}}))?;
        match ns_api.create(&PostParams::default(), &ns).await {
            Ok(_) => {}
            Err(kube::Error::Api(s)) if s.code == 409 => {}
            Err(e) => return Err(e.into()),
        }
    }
    let api: Api<Lease> = Api::namespaced(control_plane.clone(), NAMESPACE_KARMADA_CLUSTER);
    let now = MicroTime(Timestamp::now());
    let duration = i32::try_from(config.cluster_lease_duration.as_secs())
        .unwrap_or(i32::MAX)
        .max(1);
    match api.get_opt(&name).await? {
        Some(mut lease) => {
            let spec = lease.spec.get_or_insert_with(LeaseSpec::default);
            spec.renew_time = Some(now);
            spec.holder_identity = Some(name.clone());
            spec.lease_duration_seconds = Some(duration);
            match api.replace(&name, &PostParams::default(), &lease).await {
                Ok(_) => Ok(()),
                Err(kube::Error::Api(s)) if s.code == 409 => Ok(()),
                Err(e) => Err(e.into()),
            }
        }
        None => {
            let owner = cluster
                .controller_owner_ref(&())
                .map(|mut o: OwnerReference| {
                    o.controller = None;
                    o.block_owner_deletion = None;
                    o
                });
            let mut lease = Lease {
                spec: Some(LeaseSpec {
                    holder_identity: Some(name.clone()),
                    lease_duration_seconds: Some(duration),
                    renew_time: Some(now),
                    ..Default::default()
                }),
                ..Default::default()
            };
            lease.metadata.name = Some(name.clone());
            lease.metadata.namespace = Some(NAMESPACE_KARMADA_CLUSTER.into());
            lease.metadata.owner_references = owner.map(|o| vec![o]);
            match api.create(&PostParams::default(), &lease).await {
                Ok(_) => Ok(()),
                Err(kube::Error::Api(s)) if s.code == 409 => Ok(()),
                Err(e) => Err(e.into()),
            }
        }
    }
}

/// Runs the agent for `cluster_name` until the future is dropped or
/// registration fails: registers the Pull Cluster, then every
/// `cluster_status_update_frequency` reports status (probe, thresholds,
/// version, API enablements, summaries), applies its Works (namespace Works
/// included) unless `apply_works` is off, and, once Ready was reported,
/// renews the Lease every `cluster_lease_duration × cluster_lease_renew_interval_fraction`.
///
/// ```no_run
/// # async fn f(cp: kube::Client, member: kube::Client) -> flotilla_controllers::Result<()> {
/// use flotilla_controllers::agent::{run_agent, AgentOptions};
/// run_agent(cp, member, "member4", AgentOptions::default()).await
/// # }
/// ```
pub async fn run_agent(
    control_plane: Client,
    member: Client,
    cluster_name: &str,
    opts: AgentOptions,
) -> Result<()> {
    if cluster_name.is_empty() {
        return Err(Error::InvalidConfig("cluster name is empty".into()));
    }
    register(&control_plane, &member, cluster_name, &opts).await?;
    // Works of this cluster: applied and watched from here, as karmada-agent does
    let works = if opts.apply_works {
        let ctx = crate::Context::new(control_plane.clone(), opts.config.clone());
        let served = crate::propagation::Served::Pull {
            cluster: cluster_name.to_string(),
            member: member.clone(),
        };
        let execution = crate::execution::run(ctx.clone(), served.clone());
        let status = crate::work_status::run(ctx, served);
        Some(tokio::spawn(async move {
            if let Err(e) = futures::try_join!(execution, status) {
                tracing::error!(error = %e, "applying works stopped");
            }
        }))
    } else {
        None
    };
    let _stop_works = AbortOnDrop(works);
    let api: Api<Cluster> = Api::all(control_plane.clone());
    let config = opts.config.clone();
    let mut state: Option<ThresholdState> = None;
    let mut pods = crate::member::Observer::default();
    let mut status_tick = tokio::time::interval(config.cluster_status_update_frequency);
    status_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut lease_tick = tokio::time::interval(config.lease_renew_interval());
    lease_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut lease_started = false;
    loop {
        tokio::select! {
            _ = status_tick.tick() => {
                let cluster = match api.get_opt(cluster_name).await {
                    Ok(Some(c)) => c,
                    Ok(None) => {
                        tracing::warn!(cluster = cluster_name, "cluster object not found");
                        continue;
                    }
                    Err(e) => {
                        tracing::warn!(cluster = cluster_name, error = %e, "reading cluster failed");
                        continue;
                    }
                };
                match crate::cluster_status::sync_status(&control_plane, cluster, Some(&member), &mut state, &mut pods, &config).await {
                    Ok(ready) if ready.status == "True" && !lease_started => {
                        lease_started = true;
                        lease_tick.reset_immediately();
                    }
                    Ok(_) => {}
                    Err(e) => tracing::warn!(cluster = cluster_name, error = %e, "status report failed"),
                }
            }
            _ = lease_tick.tick(), if lease_started => {
                match api.get_opt(cluster_name).await {
                    Ok(Some(cluster)) => {
                        if let Err(e) = renew_lease(&control_plane, &cluster, &config).await {
                            tracing::warn!(cluster = cluster_name, error = %e, "lease renewal failed");
                        }
                    }
                    Ok(None) => {}
                    Err(e) => tracing::warn!(cluster = cluster_name, error = %e, "reading cluster failed"),
                }
            }
        }
    }
}
