//! Wiring of the cluster status controller: one polling task per Push
//! cluster, started and stopped as Clusters come and go (seen through the
//! process's shared cache of Clusters), and [`sync_status`], one
//! probe-and-write round.

use std::collections::HashMap;

use flotilla_api::cluster::{CONDITION_READY, Cluster, SYNC_MODE_PUSH};
use futures::StreamExt;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use k8s_openapi::jiff::Timestamp;
use kube::api::PostParams;
use kube::runtime::reflector::{ObjectRef, Store};
use kube::{Api, Client, ResourceExt};
use tokio::task::JoinHandle;

use super::reconcile::{self, ThresholdState};
use crate::member::{self, Health};
use crate::propagation::{every_change, watch_shared};
use crate::workqueue::Queue;
use crate::{Context, ControllerFuture, Result};

/// Reason of the Ready condition when no client could be built for the member.
pub const REASON_STATUS_COLLECTION_FAILED: &str = "StatusCollectionFailed";

/// Starts the controller (the `clusterStatus` entry of [`crate::controllers`]).
pub fn start(ctx: Context) -> ControllerFuture {
    Box::pin(run(ctx))
}

async fn run(ctx: Context) -> Result<()> {
    let api: Api<Cluster> = Api::all(ctx.control_plane.clone());
    // the process's shared cache of Clusters; any change wakes the loop
    let (store, changes) = watch_shared(&ctx, api, every_change);
    let (tx, mut rx) = tokio::sync::mpsc::channel::<()>(1);
    let watch = tokio::spawn(async move {
        let mut changes = std::pin::pin!(changes);
        while changes.next().await.is_some() {
            let _ = tx.try_send(());
        }
    });
    let mut pollers: HashMap<String, JoinHandle<()>> = HashMap::new();
    // one key per cluster: each poll round is an add (the round's timer,
    // as Karmada's controller requeues a cluster after each sync)
    let queue = Queue::new("clusterStatus");
    let mut tick = tokio::time::interval(std::time::Duration::from_secs(1));
    loop {
        tokio::select! {
            _ = rx.recv() => {}
            _ = tick.tick() => {}
        }
        if watch.is_finished() {
            break;
        }
        let wanted: Vec<String> = store
            .state()
            .iter()
            .filter(|c| {
                c.spec.sync_mode == SYNC_MODE_PUSH && c.metadata.deletion_timestamp.is_none()
            })
            .map(|c| c.name_any())
            .collect();
        pollers.retain(|name, handle| {
            let keep = wanted.contains(name) && !handle.is_finished();
            if !keep {
                handle.abort();
                ctx.members.forget(name);
            }
            keep
        });
        for name in wanted {
            if let std::collections::hash_map::Entry::Vacant(slot) = pollers.entry(name) {
                tracing::info!(cluster = %slot.key(), "starting status collection");
                let handle = tokio::spawn(poll(
                    ctx.clone(),
                    store.clone(),
                    slot.key().clone(),
                    queue.clone(),
                ));
                slot.insert(handle);
            }
        }
    }
    for (_, h) in pollers {
        h.abort();
    }
    Ok(())
}

async fn poll(ctx: Context, store: Store<Cluster>, name: String, queue: Queue) {
    let mut state: Option<ThresholdState> = None;
    let mut pods = member::Observer::default();
    let mut tick = tokio::time::interval(ctx.config.cluster_status_update_frequency);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        queue.trigger(&name);
        queue.start(&name);
        // the cached copy: the status write carries its resourceVersion,
        // so a stale copy only costs a conflict and a re-read
        let Some(cluster) = store.get(&ObjectRef::new(&name)) else {
            queue.finish(&name, false);
            return;
        };
        let cluster = (*cluster).clone();
        if cluster.spec.sync_mode != SYNC_MODE_PUSH || cluster.metadata.deletion_timestamp.is_some()
        {
            queue.finish(&name, false);
            return;
        }
        let member = ctx.members.get(&cluster).await;
        let result = match member {
            Ok(member) => sync_status(
                &ctx.control_plane,
                cluster,
                Some(&member),
                &mut state,
                &mut pods,
                &ctx.config,
            )
            .await
            .map(|_| ()),
            Err(e) => {
                tracing::warn!(cluster = %name, error = %e, "no client for member");
                let cond = reconcile::condition(
                    CONDITION_READY,
                    "False",
                    REASON_STATUS_COLLECTION_FAILED,
                    &format!("failed to create a ClusterClient: {e}"),
                    Timestamp::now(),
                );
                write_condition(&ctx.control_plane, cluster, cond)
                    .await
                    .map(|_| ())
            }
        };
        queue.finish(&name, result.is_err());
        if let Err(e) = result {
            tracing::warn!(cluster = %name, error = %e, "cluster status sync failed");
        }
    }
}

async fn write_condition(cp: &Client, mut cluster: Cluster, cond: Condition) -> Result<bool> {
    let mut status = cluster.status.clone().unwrap_or_default();
    if !reconcile::set_condition(&mut status.conditions, cond) {
        return Ok(false);
    }
    cluster.status = Some(status);
    replace_status(cp, &cluster).await?;
    Ok(true)
}

async fn replace_status(cp: &Client, cluster: &Cluster) -> Result<Cluster> {
    let api: Api<Cluster> = Api::all(cp.clone());
    Ok(api
        .replace_status(&cluster.name_any(), &PostParams::default(), cluster)
        .await?)
}

/// One round of Karmada's `syncClusterStatus` for `cluster`: probe the member
/// (`None` = no member client: offline), apply the thresholds (`state` is
/// the per-cluster memory, start with `None`), read version / discovery /
/// nodes / pods when Ready (pods from `pods`, the cluster's pod watch, started
/// here when `None` or ended), and write the status subresource if it changed.
/// Returns the Ready condition now stored.
#[tracing::instrument(skip_all, fields(cluster = %cluster.name_any()))]
pub async fn sync_status(
    control_plane: &Client,
    cluster: Cluster,
    member: Option<&Client>,
    state: &mut Option<ThresholdState>,
    pods: &mut member::Observer,
    config: &crate::Config,
) -> Result<Condition> {
    let health = match member {
        Some(m) => member::probe(m).await,
        None => Health {
            online: false,
            healthy: false,
        },
    };
    let now = Timestamp::now();
    let observed = reconcile::ready_condition(health, now);
    let (ready, st) = reconcile::threshold_adjusted(
        state.as_ref(),
        reconcile::ready(cluster.status.as_ref()),
        observed,
        now,
        config.cluster_success_threshold,
        config.cluster_failure_threshold,
    );
    *state = Some(st);
    let collected = match member {
        Some(m) if health.online && health.healthy && ready.status == "True" => {
            Some(member::observe(m, pods, config.member_request_timeout).await)
        }
        _ => None,
    };
    let mut cluster = cluster;
    let mut attempts = 0;
    loop {
        let next = reconcile::next_status(
            cluster.status.as_ref(),
            &cluster.spec.resource_models,
            health,
            ready.clone(),
            collected.as_ref(),
            Timestamp::now(),
        );
        let stored_ready = reconcile::ready(Some(&next))
            .cloned()
            .unwrap_or_else(|| ready.clone());
        if cluster.status.as_ref() == Some(&next) {
            return Ok(stored_ready);
        }
        cluster.status = Some(next);
        match replace_status(control_plane, &cluster).await {
            Ok(_) => return Ok(stored_ready),
            Err(crate::Error::Kube(kube::Error::Api(s))) if s.code == 409 && attempts < 3 => {
                attempts += 1;
                let api: Api<Cluster> = Api::all(control_plane.clone());
                cluster = api.get(&cluster.name_any()).await?;
            }
            Err(e) => return Err(e),
        }
    }
}
