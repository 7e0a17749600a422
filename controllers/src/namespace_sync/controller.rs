//! Wiring of the namespace sync controller: one reconcile per control-plane
//! Namespace, woken by the namespace's own changes, by a Cluster appearing or
//! starting deletion (every namespace then), by any ClusterOverridePolicy
//! change (every namespace), and by a change or deletion of one of its Works
//! (so a Work deleted by hand comes back).

use std::sync::Arc;
use std::time::Duration;

use flotilla_api::cluster::Cluster;
use flotilla_api::names::execution_space_name;
use flotilla_api::policy::ClusterOverridePolicy;
use flotilla_api::work::{WORK_PERMANENT_ID_LABEL, Work};
use futures::StreamExt;
use k8s_openapi::api::core::v1::Namespace;
use kube::runtime::controller::Action;
use kube::runtime::reflector::{ObjectRef, Store};
use kube::{Api, ResourceExt};

use super::reconcile::{SkipRules, namespace_work, namespace_work_name, owned_by, owner_namespace};
use crate::binding::{Written, delete_work, write_work};
use crate::overlay::Overlay;
use crate::propagation::{cache_ready, every_change, shared_controller, spec_hash, watch_shared};
use crate::workqueue::RunQueued;
use crate::{Context, ControllerFuture, Error, Result};

/// Starts the controller (the `namespace` entry of [`crate::controllers`]).
pub fn start(ctx: Context) -> ControllerFuture {
    Box::pin(run(ctx))
}

struct NsCtx {
    ctx: Context,
    rules: SkipRules,
    clusters: Store<Cluster>,
    works: Store<Work>,
    cluster_overrides: Store<ClusterOverridePolicy>,
    written: Overlay<Work>,
}

/// Cluster changes that matter here: appearing (a new object always
/// passes), starting deletion, and going away.
fn cluster_presence(c: &Cluster) -> Option<u64> {
    Some(u64::from(c.metadata.deletion_timestamp.is_some()))
}

fn all_namespaces(store: &Store<Namespace>) -> Vec<ObjectRef<Namespace>> {
    store
        .state()
        .iter()
        .map(|n| ObjectRef::from_obj(&**n))
        .collect()
}

async fn run(ctx: Context) -> Result<()> {
    let rules = SkipRules::new(&ctx.config.skipped_propagating_namespaces)?;
    let cp = ctx.control_plane.clone();
    let (clusters, cluster_changes) =
        watch_shared(&ctx, Api::<Cluster>::all(cp.clone()), cluster_presence);
    let (works, work_changes) = watch_shared(&ctx, Api::<Work>::all(cp.clone()), spec_hash::<Work>);
    let (cluster_overrides, override_changes) = watch_shared(
        &ctx,
        Api::<ClusterOverridePolicy>::all(cp.clone()),
        every_change,
    );
    let wq = crate::workqueue::Queue::new("namespace");
    let controller =
        shared_controller(&wq, &ctx, Api::<Namespace>::all(cp), spec_hash::<Namespace>);
    let (n1, n2) = (controller.store(), controller.store());
    controller
        .watches_shared_stream(
            cluster_changes,
            wq.mapper(move |_: Arc<Cluster>| all_namespaces(&n1)),
        )
        .watches_shared_stream(
            override_changes,
            wq.mapper(move |_: Arc<ClusterOverridePolicy>| all_namespaces(&n2)),
        )
        .watches_shared_stream(
            work_changes,
            wq.mapper(|w: Arc<Work>| {
                owner_namespace(&w)
                    .map(ObjectRef::<Namespace>::new)
                    .into_iter()
                    .collect::<Vec<_>>()
            }),
        )
        .run_queued(
            &wq,
            reconcile,
            error_policy,
            Arc::new(NsCtx {
                ctx,
                rules,
                clusters,
                works: works.clone(),
                cluster_overrides,
                written: Overlay::new(works.clone()),
            }),
        )
        .for_each(|_| async {})
        .await;
    Ok(())
}

fn error_policy(ns: Arc<Namespace>, err: &Error, _ctx: Arc<NsCtx>) -> Action {
    tracing::warn!(namespace = %ns.name_any(), error = %err, "namespace sync failed, retrying");
    Action::requeue(Duration::from_secs(1))
}

#[tracing::instrument(skip_all, fields(namespace = %ns.name_any()))]
async fn reconcile(ns: Arc<Namespace>, nctx: Arc<NsCtx>) -> Result<Action> {
    let name = ns.name_any();
    if !nctx.rules.name_should_sync(&name) {
        return Ok(Action::await_change());
    }
    // being deleted: garbage collection removes the Works it owns (and the
    // execution controller then the member namespaces), as in Karmada
    if ns.metadata.deletion_timestamp.is_some() {
        return Ok(Action::await_change());
    }
    let ready = cache_ready(&nctx.clusters).await
        && cache_ready(&nctx.works).await
        && cache_ready(&nctx.cluster_overrides).await;
    if !ready {
        return Ok(Action::requeue(Duration::from_millis(100)));
    }
    let cp = nctx.ctx.control_plane.clone();
    let wname = namespace_work_name(&name);
    let uid = ns.metadata.uid.clone().unwrap_or_default();
    if !nctx.rules.should_sync(&ns) {
        // labelled skip-auto-propagation after it was synced: its Works go
        for cluster in nctx.clusters.state() {
            let ws = execution_space_name(cluster.name());
            let Some(w) = nctx.works.get(&ObjectRef::new(&wname).within(&ws)) else {
                continue;
            };
            if owned_by(&w, &uid) && w.metadata.deletion_timestamp.is_none() {
                delete_work(&cp, &w).await?;
                nctx.written.forget(Some(&ws), &wname);
            }
        }
        return Ok(Action::await_change());
    }
    let cluster_overrides: Vec<ClusterOverridePolicy> = nctx
        .cluster_overrides
        .state()
        .iter()
        .map(|p| (**p).clone())
        .collect();
    let mut errors = Vec::new();
    let mut again = false;
    for cluster in nctx.clusters.state() {
        if cluster.metadata.deletion_timestamp.is_some() {
            continue;
        }
        let ws = execution_space_name(cluster.name());
        let current = nctx.written.newest(
            Some(&ws),
            &wname,
            nctx.works.get(&ObjectRef::new(&wname).within(&ws)),
        );
        if current
            .as_ref()
            .is_some_and(|w| w.metadata.deletion_timestamp.is_some())
        {
            // the Work of an earlier namespace of this name is going away
            again = true;
            continue;
        }
        let id = current
            .as_ref()
            .and_then(|w| w.labels().get(WORK_PERMANENT_ID_LABEL).cloned())
            .filter(|id| !id.is_empty())
            .unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
        let work = match namespace_work(&ns, &cluster, &cluster_overrides, &id) {
            Ok(w) => w,
            Err(e) => {
                errors.push(format!("cluster {}: {e}", cluster.name()));
                continue;
            }
        };
        match write_work(&cp, &nctx.written, current.as_deref(), work).await {
            Ok(Written::Done) => {}
            Ok(Written::Stale) => again = true,
            Err(e) => errors.push(format!("cluster {}: {e}", cluster.name())),
        }
    }
    if !errors.is_empty() {
        return Err(Error::InvalidConfig(format!(
            "writing the Works of namespace {name} failed: {}",
            errors.join("; ")
        )));
    }
    if again {
        return Ok(Action::requeue(Duration::from_millis(500)));
    }
    Ok(Action::await_change())
}
