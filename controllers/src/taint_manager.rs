//! The NoExecute taint manager (Karmada's `taint-manager`, started by the
//! `cluster` controller when the `Failover` gate and
//! `--enable-no-execute-taint-eviction` are both on): a binding scheduled to
//! a cluster with a NoExecute taint its `placement.clusterTolerations` do not
//! tolerate is evicted from it
//! ([`flotilla_api::failover::no_execute_decision`]): the cluster leaves
//! `spec.clusters` and, with the `GracefulEviction` gate (on by default), a
//! `gracefulEvictionTasks` entry keeps its Work until the replacement is
//! healthy elsewhere (purge mode from `spec.failover.cluster.purgeMode`, else
//! `--no-execute-taint-eviction-purge-mode`). A toleration with
//! `tolerationSeconds` delays the eviction by that long from the taint's
//! `timeAdded`. The scheduler then places the replicas on the other clusters.
//!
//! Evictions of both binding kinds share one [`EvictionQueue`]: they are let
//! through at `--resource-eviction-rate`, slowed or paused when too many
//! clusters are unhealthy at once, and each is decided again when its turn
//! comes (the cluster may have recovered meanwhile).

use std::sync::Arc;
use std::time::Duration;

use flotilla_api::cluster::Cluster;
use flotilla_api::failover::{
    Eviction, PRODUCER_TAINT_MANAGER, REASON_TAINT_UNTOLERATED, TaintDecision, evict_cluster,
    no_execute_decision, unready_clusters,
};
use futures::StreamExt;
use k8s_openapi::jiff::Timestamp;
use kube::runtime::controller::Action;
use kube::runtime::reflector::{ObjectRef, Store};
use kube::{Api, ResourceExt};

use crate::events::{EventType, record, reference};
use crate::eviction_queue::EvictionQueue;
use crate::features::GRACEFUL_EVICTION;
use crate::propagation::{
    BindingResource, cache_ready, cluster_placement_hash, is_claimed, spec_controller, watch_cached,
};
use crate::workqueue::RunQueued;
use crate::{Context, ControllerFuture, Error, Result};

/// The component name on Events (Karmada `TaintManagerName`).
pub const TAINT_MANAGER_NAME: &str = "taint-manager";

/// Starts the taint manager for both binding kinds, with one eviction queue.
pub fn start(ctx: Context) -> ControllerFuture {
    let queue = Arc::new(EvictionQueue::new(ctx.config.eviction_rates));
    Box::pin(async move {
        futures::try_join!(
            run::<flotilla_api::work::ResourceBinding>(ctx.clone(), queue.clone()),
            run::<flotilla_api::work::ClusterResourceBinding>(ctx, queue)
        )
        .map(|_| ())
    })
}

struct TaintCtx {
    ctx: Context,
    clusters: Store<Cluster>,
    queue: Arc<EvictionQueue>,
}

/// (clusters, clusters not Ready) in the cache.
fn federation_health(clusters: &Store<Cluster>) -> (usize, usize) {
    let all = clusters.state();
    let unhealthy = unready_clusters(all.iter().map(|c| &**c)).len();
    (all.len(), unhealthy)
}

async fn run<B: BindingResource>(ctx: Context, queue: Arc<EvictionQueue>) -> Result<()> {
    let cp = ctx.control_plane.clone();
    let (clusters, cluster_changes) =
        watch_cached(Api::<Cluster>::all(cp.clone()), cluster_placement_hash);
    let wq = crate::workqueue::Queue::new(TAINT_MANAGER_NAME);
    let controller = spec_controller(&wq, Api::<B>::all(cp));
    let bindings = controller.store();
    controller
        .watches_stream(
            cluster_changes,
            wq.mapper(move |c: Cluster| {
                let name = c.name_any();
                bindings
                    .state()
                    .iter()
                    .filter(|b| b.spec().clusters.iter().any(|t| t.name == name))
                    .map(|b| ObjectRef::from_obj(&**b))
                    .collect::<Vec<_>>()
            }),
        )
        .run_queued(
            &wq,
            reconcile::<B>,
            error_policy::<B>,
            Arc::new(TaintCtx {
                ctx,
                clusters,
                queue,
            }),
        )
        .for_each(|_| async {})
        .await;
    Ok(())
}

fn error_policy<B: BindingResource>(b: Arc<B>, err: &Error, _ctx: Arc<TaintCtx>) -> Action {
    tracing::warn!(binding = %b.name_any(), error = %err, "taint eviction failed, retrying");
    Action::requeue(Duration::from_secs(1))
}

#[tracing::instrument(skip_all, fields(binding = %b.name_any()))]
async fn reconcile<B: BindingResource>(b: Arc<B>, tctx: Arc<TaintCtx>) -> Result<Action> {
    if b.meta().deletion_timestamp.is_some() || !is_claimed(b.labels()) {
        return Ok(Action::await_change());
    }
    if !cache_ready(&tctx.clusters).await {
        return Ok(Action::requeue(Duration::from_millis(200)));
    }
    let Plan {
        new_spec,
        evicted,
        recheck,
        purge_mode,
        graceful,
    } = {
        let first = plan(&*b, &tctx);
        if first.evicted.is_empty() {
            first
        } else {
            // wait for an eviction slot, then decide again on what is known now
            let clusters = tctx.clusters.clone();
            tctx.queue.admit(|| federation_health(&clusters)).await;
            plan(&*b, &tctx)
        }
    };
    let spec = b.spec();
    if evicted.is_empty() {
        return Ok(recheck.map_or_else(Action::await_change, |d| {
            Action::requeue(d + Duration::from_millis(100))
        }));
    }
    if let Some(action) =
        crate::propagation::write_eviction(&tctx.ctx.control_plane, &*b, &new_spec).await?
    {
        return Ok(action);
    }
    tracing::info!(clusters = ?evicted, purge_mode = %purge_mode, graceful, "evicted binding from clusters with untolerated NoExecute taints");
    let r = &spec.resource;
    record(
        &tctx.ctx.control_plane,
        TAINT_MANAGER_NAME,
        reference(&r.api_version, &r.kind, &r.namespace, &r.name, &r.uid),
        EventType::Normal,
        "EvictWorkloadFromClusterSucceed",
        &format!(
            "Evict from clusters {} succeed (purge mode {purge_mode}).",
            evicted.join(", ")
        ),
    )
    .await;
    Ok(Action::await_change())
}

/// What the taint manager would do to a binding now.
struct Plan {
    new_spec: flotilla_api::work::ResourceBindingSpec,
    evicted: Vec<String>,
    recheck: Option<Duration>,
    purge_mode: String,
    graceful: bool,
}

fn plan<B: BindingResource>(b: &B, tctx: &TaintCtx) -> Plan {
    let spec = b.spec();
    let config = &tctx.ctx.config;
    let tolerations = spec
        .placement
        .as_ref()
        .map(|p| p.cluster_tolerations.clone())
        .unwrap_or_default();
    let purge_mode = spec
        .failover
        .as_ref()
        .and_then(|f| f.cluster.as_ref())
        .map(|c| c.purge_mode.as_str())
        .filter(|m| !m.is_empty())
        .unwrap_or(&config.no_execute_taint_eviction_purge_mode)
        .to_string();
    let graceful = config.feature_gates.enabled(GRACEFUL_EVICTION);
    let now = Timestamp::now();
    let mut new_spec = spec.clone();
    let mut evicted = Vec::new();
    let mut recheck: Option<Duration> = None;
    for target in &spec.clusters {
        let Some(cluster) = tctx.clusters.get(&ObjectRef::new(&target.name)) else {
            continue;
        };
        match no_execute_decision(&cluster.spec.taints, &tolerations, now) {
            TaintDecision::Stay => {}
            TaintDecision::EvictAfter(d) => recheck = Some(recheck.map_or(d, |r| r.min(d))),
            TaintDecision::EvictNow => {
                let taints: Vec<String> = cluster
                    .spec
                    .taints
                    .iter()
                    .filter(|t| t.effect == "NoExecute")
                    .map(|t| format!("{}:{}", t.key, t.effect))
                    .collect();
                let message = format!(
                    "cluster {} has NoExecute taints not tolerated: {}",
                    target.name,
                    taints.join(", ")
                );
                if graceful {
                    evict_cluster(
                        &mut new_spec,
                        &Eviction {
                            cluster: &target.name,
                            purge_mode: &purge_mode,
                            reason: REASON_TAINT_UNTOLERATED,
                            message,
                            producer: PRODUCER_TAINT_MANAGER,
                            now,
                            ..Default::default()
                        },
                    );
                } else {
                    new_spec.clusters.retain(|c| c.name != target.name);
                }
                evicted.push(target.name.clone());
            }
        }
    }
    Plan {
        new_spec,
        evicted,
        recheck,
        purge_mode,
        graceful,
    }
}
