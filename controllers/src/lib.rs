//! flotilla-controllers: every controller, on kube-rs's runtime, each in its own
//! module with `controller.rs` (wiring) and `reconcile.rs` (logic).
//!
//! Start with [`run`]: it starts the controllers named in a `--controllers`
//! list (Karmada's syntax: `*` for all, `name` to enable, `-name` to disable)
//! from the table [`controllers`], sharing one [`Context`]. The controllers:
//!
//! - [`cluster`] (`cluster`): execution namespaces, the finalizer, the
//!   automatic not-ready / unreachable / terminating taints, and Pull
//!   clusters' lease monitor;
//! - [`cluster_status`] (`clusterStatus`): health, version, API enablements and
//!   node/resource summaries of Push clusters, through [`member`] clients;
//! - [`namespace_sync`] (`namespace`): control-plane namespaces carried to
//!   every member by one Work per cluster;
//! - the propagation pipeline (see [`propagation`]): [`detector`]
//!   (`detector`), [`scheduler`] (`scheduler`), [`binding`] (`binding`),
//!   [`execution`] (`execution`), [`work_status`] (`workStatus`),
//!   [`binding_status`] (`bindingStatus`) and [`dependencies`] (`dependencies`);
//! - failover: [`cluster_taint_policy`] (`clusterTaintPolicy`),
//!   [`taint_manager`] (started by `cluster` when the `Failover` gate and
//!   `--enable-no-execute-taint-eviction` are on), [`graceful_eviction`]
//!   (`gracefulEviction`) and [`application_failover`] (`applicationFailover`);
//!   gates in [`features`];
//! - autoscaling: [`federated_hpa`] (`federatedHorizontalPodAutoscaler`),
//!   [`cron_federated_hpa`] (`cronFederatedHorizontalPodAutoscaler`),
//!   [`hpa_scale_target_marker`] (`hpaScaleTargetMarker`) and
//!   [`deployment_replicas_syncer`] (`deploymentReplicasSyncer`);
//! - multi-cluster services (see [`multicluster`]): [`service_export`]
//!   (`serviceExport`), [`endpointslice_collect`] (`endpointsliceCollect`),
//!   [`service_import`] (`serviceImport`), [`endpointslice_dispatch`]
//!   (`endpointsliceDispatch`) and [`multicluster_service`]
//!   (`multiclusterservice`).
//!
//! The pull-mode agent is a library too: [`agent::run_agent`].
//!
//! Several replicas of `flotilla controller-manager` (or of one cluster's
//! agent) elect a leader on a Lease ([`leader_election`]); only the leader
//! runs controllers.
//!
//! # Starting them
//!
//! `flotilla controller-manager` flattens [`flags::Flags`] (Karmada's flag
//! names and defaults) into its command and runs
//! `run(Context::new(client, flags.config()), &flags.controllers)`.
//! `flotilla up` builds the same in process, faster:
//! `Config::default().cluster_status_update_frequency(Duration::from_secs(1))`
//! (thresholds may be shortened with [`Config::cluster_thresholds`]), and
//! runs `run(ctx, &["*".into()])` in a task it aborts on shutdown.
//! `flotilla agent` calls [`agent::run_agent`] with clients to the control
//! plane and the member and `AgentOptions::new(flags.config())`.
//!
//! A Push member is reached with `spec.apiEndpoint` and the Secret named by
//! `spec.secretRef` (Karmada's convention: `karmada-cluster/<cluster>`), whose
//! `data` has `token` (a bearer token) and `caBundle` (the member's CA, PEM).

#![warn(missing_docs)]
#![cfg_attr(test, allow(clippy::unwrap_used))]

pub mod agent;
pub mod application_failover;
pub mod binding;
pub mod binding_status;
pub mod client;
pub mod cluster;
pub mod cluster_status;
pub mod cluster_taint_policy;
pub mod compact;
pub mod context;
pub mod cron_federated_hpa;
pub mod dependencies;
pub mod deployment_replicas_syncer;
pub mod detector;
pub mod endpointslice_collect;
pub mod endpointslice_dispatch;
pub mod events;
pub mod eviction_queue;
pub mod execution;
pub mod features;
pub mod federated_hpa;
pub mod flags;
pub mod graceful_eviction;
pub mod hpa_scale_target_marker;
pub mod leader_election;
pub mod member;
pub mod metrics;
pub mod multicluster;
pub mod multicluster_service;
pub mod namespace_sync;
pub mod objectwatcher;
pub mod overlay;
pub mod priority_gate;
pub mod propagation;
pub mod quantity;
pub mod scheduler;
pub mod service_export;
pub mod service_import;
pub mod shared_cache;
pub mod taint_manager;
pub mod work_status;
pub mod workqueue;

use std::future::Future;
use std::pin::Pin;

pub use context::{Config, Context};

/// What went wrong in a controller.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A request to the control plane or a member failed.
    #[error("kubernetes API request failed: {0}")]
    Kube(#[from] kube::Error),
    /// The Cluster's secret is missing or lacks a key.
    #[error("cluster {cluster}: {message}")]
    ClusterCredentials {
        /// Cluster name.
        cluster: String,
        /// What is wrong.
        message: String,
    },
    /// An object could not be encoded.
    #[error("encoding failed: {0}")]
    Encode(#[from] serde_json::Error),
    /// A `--controllers` entry names no controller.
    #[error("unknown controller {0:?} (known: {1})")]
    UnknownController(String, String),
    /// A configuration value is invalid.
    #[error("invalid configuration: {0}")]
    InvalidConfig(String),
    /// A controller task panicked or was cancelled.
    #[error("controller {0} stopped: {1}")]
    Stopped(String, String),
    /// The leader Lease was not renewed in time or was taken by another
    /// candidate: this process must stop acting.
    #[error("leader election lost: lease {0} was not renewed within the renew deadline")]
    LeadershipLost(String),
}

/// `Result` with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// A boxed controller future.
pub type ControllerFuture = Pin<Box<dyn Future<Output = Result<()>> + Send>>;

/// Starts one controller; the future runs until the controller stops.
pub type StartFn = fn(Context) -> ControllerFuture;

static CONTROLLERS: [(&str, StartFn); 22] = [
    ("cluster", cluster::start),
    ("clusterStatus", cluster_status::start),
    ("namespace", namespace_sync::start),
    ("detector", detector::start),
    ("scheduler", scheduler::start),
    ("binding", binding::start),
    ("execution", execution::start),
    ("workStatus", work_status::start),
    ("bindingStatus", binding_status::start),
    ("dependencies", dependencies::start),
    ("clusterTaintPolicy", cluster_taint_policy::start),
    ("gracefulEviction", graceful_eviction::start),
    ("applicationFailover", application_failover::start),
    ("federatedHorizontalPodAutoscaler", federated_hpa::start),
    (
        "cronFederatedHorizontalPodAutoscaler",
        cron_federated_hpa::start,
    ),
    ("hpaScaleTargetMarker", hpa_scale_target_marker::start),
    (
        "deploymentReplicasSyncer",
        deployment_replicas_syncer::start,
    ),
    ("serviceExport", service_export::start),
    ("endpointsliceCollect", endpointslice_collect::start),
    ("serviceImport", service_import::start),
    ("endpointsliceDispatch", endpointslice_dispatch::start),
    ("multiclusterservice", multicluster_service::start),
];

/// The controllers by name, as Karmada names them for `--controllers`:
/// `cluster`, `clusterStatus`, `namespace`, `detector`, `scheduler`,
/// `binding`, `execution`, `workStatus`, `bindingStatus`, `dependencies`,
/// `clusterTaintPolicy`, `gracefulEviction`, `applicationFailover`,
/// `federatedHorizontalPodAutoscaler`, `cronFederatedHorizontalPodAutoscaler`,
/// `hpaScaleTargetMarker`, `deploymentReplicasSyncer`,
/// `serviceExport`, `endpointsliceCollect`, `serviceImport`,
/// `endpointsliceDispatch`, `multiclusterservice`.
pub fn controllers() -> &'static [(&'static str, StartFn)] {
    &CONTROLLERS
}

/// Resolves a `--controllers` list (Karmada semantics: `*` enables every
/// controller, `foo` enables foo, `-foo` disables foo; an empty list means
/// `*`) into controller names, in table order.
pub fn enabled_controllers(enabled: &[String]) -> Result<Vec<&'static str>> {
    let known: Vec<&'static str> = controllers().iter().map(|(n, _)| *n).collect();
    let items: Vec<&str> = enabled
        .iter()
        .flat_map(|s| s.split(','))
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .collect();
    let star = items.is_empty() || items.contains(&"*");
    for item in &items {
        let name = item.trim_start_matches('-');
        if *item != "*" && !known.contains(&name) {
            return Err(Error::UnknownController(item.to_string(), known.join(", ")));
        }
    }
    Ok(known
        .into_iter()
        .filter(|name| {
            if items.iter().any(|i| i.strip_prefix('-') == Some(name)) {
                return false;
            }
            star || items.contains(name)
        })
        .collect())
}

/// Runs the enabled controllers (see [`enabled_controllers`]) until one of
/// them fails or the returned future is dropped (which stops them all).
///
/// ```no_run
/// # async fn f(client: kube::Client) -> flotilla_controllers::Result<()> {
/// let ctx = flotilla_controllers::Context::new(client, flotilla_controllers::Config::default());
/// flotilla_controllers::run(ctx, &["*".to_string()]).await
/// # }
/// ```
pub async fn run(ctx: Context, enabled: &[String]) -> Result<()> {
    let names = enabled_controllers(enabled)?;
    let mut set = tokio::task::JoinSet::new();
    for (name, start) in controllers() {
        if names.contains(name) {
            tracing::info!(controller = name, "starting controller");
            let fut = start(ctx.clone());
            set.spawn(async move { (*name, fut.await) });
        }
    }
    while let Some(done) = set.join_next().await {
        match done {
            Ok((name, Ok(()))) => tracing::info!(controller = name, "controller finished"),
            Ok((name, Err(e))) => {
                tracing::error!(controller = name, error = %e, "controller failed");
                return Err(e);
            }
            Err(e) => return Err(Error::Stopped("?".into(), e.to_string())),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(v: &[&str]) -> Vec<&'static str> {
        enabled_controllers(&v.iter().map(|s| s.to_string()).collect::<Vec<_>>()).unwrap()
    }

    #[test]
    fn controllers_flag() {
        let all = vec![
            "cluster",
            "clusterStatus",
            "namespace",
            "detector",
            "scheduler",
            "binding",
            "execution",
            "workStatus",
            "bindingStatus",
            "dependencies",
            "clusterTaintPolicy",
            "gracefulEviction",
            "applicationFailover",
            "federatedHorizontalPodAutoscaler",
            "cronFederatedHorizontalPodAutoscaler",
            "hpaScaleTargetMarker",
            "deploymentReplicasSyncer",
            "serviceExport",
            "endpointsliceCollect",
            "serviceImport",
            "endpointsliceDispatch",
            "multiclusterservice",
        ];
        assert_eq!(names(&[]), all);
        assert_eq!(names(&["*"]), all);
        assert_eq!(names(&["*,-namespace"]).len(), all.len() - 1);
        assert_eq!(names(&["cluster"]), vec!["cluster"]);
        assert_eq!(names(&["-cluster"]), Vec::<&str>::new());
        assert!(enabled_controllers(&["nope".to_string()]).is_err());
    }
}
