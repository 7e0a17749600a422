//! The HPA scale-target marker (`hpaScaleTargetMarker`): an
//! `autoscaling/v2` HorizontalPodAutoscaler on the control plane that a
//! (Cluster)PropagationPolicy claims goes to the members, where it scales
//! its target itself. So that the control plane does not undo the members'
//! scaling, its scale target's template is labelled
//! `resourcetemplate.karmada.io/retain-replicas: "true"`: the object watcher
//! then keeps each member's `spec.replicas` ([`crate::objectwatcher::retain`])
//! and the [`crate::deployment_replicas_syncer`] sums them back into the
//! template. The label is removed when the HPA is deleted, no longer
//! claimed, or points elsewhere.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use kube::api::{Patch, PatchParams};
use kube::runtime::controller::Action;
use kube::runtime::watcher;
use kube::{Api, ResourceExt};
use serde_json::{Value, json};

use crate::objectwatcher::RETAIN_REPLICAS_LABEL;
use crate::propagation::{Resolver, is_claimed, is_not_found, spec_controller};
use crate::workqueue::RunQueued;
use crate::{Context, ControllerFuture, Error, Result};

/// The controller's name in `--controllers`.
pub const NAME: &str = "hpaScaleTargetMarker";

/// Starts the controller (the `hpaScaleTargetMarker` entry of
/// [`crate::controllers`]).
pub fn start(ctx: Context) -> ControllerFuture {
    Box::pin(run(ctx))
}

/// A scale target: namespace, apiVersion, kind, name.
type Target = (String, String, String, String);

struct MarkerCtx {
    ctx: Context,
    resolver: Resolver,
    /// The target each HPA marked, by HPA namespace/name.
    marked: Mutex<HashMap<(String, String), Target>>,
}

async fn run(ctx: Context) -> Result<()> {
    let api = Api::<HorizontalPodAutoscaler>::all(ctx.control_plane.clone());
    let mctx = Arc::new(MarkerCtx {
        ctx,
        resolver: Resolver::default(),
        marked: Mutex::default(),
    });
    let on_delete = mctx.clone();
    let deletions = watcher(api.clone(), watcher::Config::default()).for_each(move |ev| {
        let m = on_delete.clone();
        async move {
            if let Ok(watcher::Event::Delete(h)) = ev {
                let key = (h.namespace().unwrap_or_default(), h.name_any());
                let target = m
                    .marked
                    .lock()
                    .ok()
                    .and_then(|mut marked| marked.remove(&key))
                    .or_else(|| target_of(&h));
                if let Some(t) = target {
                    for attempt in 0..3 {
                        match label(&m, &t, false).await {
                            Ok(()) => break,
                            Err(e) => {
                                tracing::warn!(error = %e, attempt, "could not unmark the scale target");
                                tokio::time::sleep(Duration::from_millis(500)).await;
                            }
                        }
                    }
                }
            }
        }
    });
    let wq = crate::workqueue::Queue::new(NAME);
    let controller = spec_controller(&wq, api)
        .run_queued(&wq, reconcile, error_policy, mctx)
        .for_each(|_| async {});
    futures::join!(deletions, controller);
    Ok(())
}

fn error_policy(h: Arc<HorizontalPodAutoscaler>, err: &Error, _ctx: Arc<MarkerCtx>) -> Action {
    tracing::warn!(hpa = %h.name_any(), error = %err, "marking the scale target failed, retrying");
    Action::requeue(Duration::from_secs(1))
}

fn target_of(h: &HorizontalPodAutoscaler) -> Option<Target> {
    let r = &h.spec.as_ref()?.scale_target_ref;
    Some((
        h.namespace().unwrap_or_default(),
        r.api_version.clone().unwrap_or_else(|| "apps/v1".into()),
        r.kind.clone(),
        r.name.clone(),
    ))
}

/// Adds or removes the label on a target (a missing target is fine).
async fn label(m: &MarkerCtx, t: &Target, add: bool) -> Result<()> {
    let cp = m.ctx.control_plane.clone();
    let (ns, api_version, kind, name) = t;
    let api = match m.resolver.resolve("", &cp, api_version, kind).await {
        Ok(r) => r.api(cp, ns),
        Err(Error::Kube(e)) if is_not_found(&e) => return Ok(()),
        Err(e) => return Err(e),
    };
    let Some(obj) = api.get_opt(name).await? else {
        return Ok(());
    };
    let has = obj.labels().get(RETAIN_REPLICAS_LABEL).map(String::as_str) == Some("true");
    if has == add {
        return Ok(());
    }
    let value = if add { json!("true") } else { Value::Null };
    let patch = json!({"metadata": {"labels": {RETAIN_REPLICAS_LABEL: value}}});
    match api
        .patch(name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
    {
        Ok(_) => {
            tracing::info!(%kind, %name, add, "retain-replicas label updated");
            Ok(())
        }
        Err(e) if is_not_found(&e) => Ok(()),
        Err(e) => Err(e.into()),
    }
}

#[tracing::instrument(skip_all, fields(hpa = %h.name_any()))]
async fn reconcile(h: Arc<HorizontalPodAutoscaler>, m: Arc<MarkerCtx>) -> Result<Action> {
    let key = (h.namespace().unwrap_or_default(), h.name_any());
    let previous = m
        .marked
        .lock()
        .ok()
        .and_then(|marked| marked.get(&key).cloned());
    let wanted =
        target_of(&h).filter(|_| is_claimed(h.labels()) && h.metadata.deletion_timestamp.is_none());
    if let Some(p) = &previous
        && Some(p) != wanted.as_ref()
    {
        label(&m, p, false).await?;
        if let Ok(mut marked) = m.marked.lock() {
            marked.remove(&key);
        }
    }
    if let Some(t) = wanted {
        label(&m, &t, true).await?;
        if let Ok(mut marked) = m.marked.lock() {
            marked.insert(key, t);
        }
    }
    // again later: the target may be created (or its label removed) after the HPA
    Ok(Action::requeue(Duration::from_secs(30)))
}
