//! Wiring of the namespace sync controller: reflectors over the control
//! plane's Namespaces and Clusters; on any change (and every
//! `cluster_status_update_frequency`) each Ready Push member is brought in
//! line with [`super::reconcile::plan`].

use std::collections::HashMap;
use std::time::{Duration, Instant};

use flotilla_api::cluster::{Cluster, SYNC_MODE_PUSH};
use futures::StreamExt;
use k8s_openapi::api::core::v1::Namespace;
use kube::api::{DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::runtime::reflector::Store;
use kube::runtime::{WatchStreamExt, reflector, watcher};
use kube::{Api, ResourceExt};

use super::reconcile::{SkipRules, plan};
use crate::workqueue::Queue;
use crate::{Context, ControllerFuture, Result};

/// Starts the controller (the `namespace` entry of [`crate::controllers`]).
pub fn start(ctx: Context) -> ControllerFuture {
    Box::pin(run(ctx))
}

/// The one item of this controller's queue: a pass over every member.
const PASS_KEY: &str = "pass";

fn watch_into<K>(
    api: Api<K>,
    tx: tokio::sync::mpsc::Sender<()>,
    queue: Queue,
) -> (Store<K>, tokio::task::JoinHandle<()>)
where
    K: kube::Resource<DynamicType = ()>
        + Clone
        + serde::de::DeserializeOwned
        + std::fmt::Debug
        + Send
        + Sync
        + 'static,
{
    let (store, writer) = reflector::store();
    let stream = reflector(writer, watcher(api, watcher::Config::default()))
        .default_backoff()
        .touched_objects();
    let handle = tokio::spawn(async move {
        let mut stream = std::pin::pin!(stream);
        while let Some(ev) = stream.next().await {
            if let Err(e) = ev {
                tracing::warn!(error = %e, "watch failed, retrying");
            }
            queue.trigger(PASS_KEY);
            let _ = tx.try_send(());
        }
    });
    (store, handle)
}

async fn run(ctx: Context) -> Result<()> {
    let rules = SkipRules::new(&ctx.config.skipped_propagating_namespaces)?;
    let (tx, mut rx) = tokio::sync::mpsc::channel::<()>(1);
    let queue = Queue::new("namespace");
    let (namespaces, ns_watch) = watch_into(
        Api::<Namespace>::all(ctx.control_plane.clone()),
        tx.clone(),
        queue.clone(),
    );
    let (clusters, cl_watch) = watch_into(
        Api::<Cluster>::all(ctx.control_plane.clone()),
        tx,
        queue.clone(),
    );
    // per member: fingerprint of the control-plane namespaces last synced, and when
    let mut synced: HashMap<String, (u64, Instant)> = HashMap::new();
    let mut tick = tokio::time::interval(ctx.config.cluster_status_update_frequency);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = rx.recv() => {
                // coalesce bursts of events
                tokio::time::sleep(Duration::from_millis(50)).await;
                while rx.try_recv().is_ok() {}
            }
            _ = tick.tick() => queue.trigger(PASS_KEY),
        }
        if ns_watch.is_finished() || cl_watch.is_finished() {
            return Ok(());
        }
        if namespaces.wait_until_ready().await.is_err()
            || clusters.wait_until_ready().await.is_err()
        {
            return Ok(());
        }
        queue.start(PASS_KEY);
        let mut failed = false;
        let control: Vec<Namespace> = namespaces.state().iter().map(|n| (**n).clone()).collect();
        let targets: Vec<Cluster> = clusters
            .state()
            .iter()
            .filter(|c| {
                c.spec.sync_mode == SYNC_MODE_PUSH
                    && c.metadata.deletion_timestamp.is_none()
                    && crate::cluster::reconcile::ready_condition(c)
                        .is_some_and(|r| r.status == "True")
            })
            .map(|c| (**c).clone())
            .collect();
        let fingerprint = fingerprint(&control);
        synced.retain(|name, _| targets.iter().any(|c| c.name_any() == *name));
        let due: Vec<&Cluster> = targets
            .iter()
            .filter(|c| {
                synced
                    .get(&c.name_any())
                    .is_none_or(|(f, at)| *f != fingerprint || at.elapsed() >= FULL_RESYNC)
            })
            .collect();
        let syncs = due.iter().map(|c| sync_member(&ctx, c, &control, &rules));
        for (cluster, res) in due.iter().zip(futures::future::join_all(syncs).await) {
            match res {
                Ok(()) => {
                    synced.insert(cluster.name_any(), (fingerprint, Instant::now()));
                }
                Err(e) => {
                    failed = true;
                    synced.remove(&cluster.name_any());
                    tracing::warn!(cluster = %cluster.name_any(), error = %e, "namespace sync failed");
                }
            }
        }
        queue.finish(PASS_KEY, failed);
    }
}

/// How often a member is compared in full even when the control plane's
/// namespaces did not change (repairs drift in the member).
const FULL_RESYNC: Duration = Duration::from_secs(30);

/// A hash of the control plane's namespaces (names and resourceVersions).
fn fingerprint(namespaces: &[Namespace]) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut keys: Vec<(&str, &str)> = namespaces
        .iter()
        .map(|n| {
            (
                n.metadata.name.as_deref().unwrap_or_default(),
                n.metadata.resource_version.as_deref().unwrap_or_default(),
            )
        })
        .collect();
    keys.sort_unstable();
    let mut h = std::collections::hash_map::DefaultHasher::new();
    keys.hash(&mut h);
    h.finish()
}

async fn sync_member(
    ctx: &Context,
    cluster: &Cluster,
    control: &[Namespace],
    rules: &SkipRules,
) -> Result<()> {
    let member = ctx.members.get(cluster).await?;
    sync_namespaces(&member, &cluster.name_any(), control, rules).await
}

/// Brings one member's namespaces in line with the control plane's
/// (`control`): creates, updates and deletes per [`plan`]. Used by this
/// controller for Push members and by the agent for its Pull member.
pub async fn sync_namespaces(
    member: &kube::Client,
    cluster: &str,
    control: &[Namespace],
    rules: &SkipRules,
) -> Result<()> {
    let api: Api<Namespace> = Api::all(member.clone());
    let existing = api.list(&ListParams::default()).await?.items;
    let p = plan(control, &existing, rules);
    for ns in p.create {
        let name = ns.name_any();
        match api.create(&PostParams::default(), &ns).await {
            Ok(_) => tracing::info!(cluster, namespace = %name, "namespace created in member"),
            Err(kube::Error::Api(s)) if s.code == 409 => {}
            Err(e) => return Err(e.into()),
        }
    }
    for ns in p.update {
        let name = ns.name_any();
        let patch = serde_json::json!({"metadata": {
            "labels": ns.metadata.labels,
            "annotations": ns.metadata.annotations.unwrap_or_default(),
        }});
        match api
            .patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
        {
            Ok(_) => tracing::info!(cluster, namespace = %name, "namespace updated in member"),
            Err(kube::Error::Api(s)) if s.code == 404 => {}
            Err(e) => return Err(e.into()),
        }
    }
    for name in p.delete {
        match api.delete(&name, &DeleteParams::default()).await {
            Ok(_) => tracing::info!(cluster, namespace = %name, "namespace deleted in member"),
            Err(kube::Error::Api(s)) if s.code == 404 => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}
