//! The binding controller (`binding`): turns each scheduled
//! (Cluster)ResourceBinding into one Work per target cluster, in
//! `karmada-es-<cluster>`, rendered by [`flotilla_api::render::render_work`]
//! (replicas revised, Job completions divided, ClusterOverridePolicies then
//! OverridePolicies applied, Karmada's labels and annotations stamped). The
//! manifest is the template as unstructured JSON, so every field reaches the
//! member.
//!
//! Works of clusters no longer targeted are deleted. On deletion of the
//! binding its finalizer holds it until every Work with its permanent id is
//! gone (the execution controller removes the member objects first).
//!
//! Triggers: the binding itself (a template change reaches it through the
//! detector's update of `spec.resource.resourceVersion`), its Works, any
//! (Cluster)OverridePolicy, and Cluster changes that affect override
//! targeting (labels, spec).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use flotilla_api::cluster::Cluster;
use flotilla_api::division::{
    divide_job_completions, merge_target_clusters, need_revise_job_completions,
};
use flotilla_api::names::{cluster_of_execution_space, execution_space_name};
use flotilla_api::policy::{ClusterOverridePolicy, OverridePolicy};
use flotilla_api::render::{BindingRef, RenderInput, render_work};
use flotilla_api::work::{TargetCluster, WORK_PERMANENT_ID_LABEL, Work};
use futures::StreamExt;
use kube::api::{DeleteParams, ListParams, PostParams};
use kube::runtime::controller::Action;
use kube::runtime::reflector::{ObjectRef, Store};
use kube::{Api, ResourceExt};
use serde_json::{Value, json};

use crate::propagation::{
    BindingResource, Resolver, binding_of_work, cache_ready, cluster_placement_hash, every_change,
    is_conflict, is_not_found, permanent_id, set_finalizer, spec_controller, spec_hash,
    watch_cached,
};
use crate::{Context, ControllerFuture, Error, Result};

/// Starts the binding controller (the `binding` entry of [`crate::controllers`]).
pub fn start(ctx: Context) -> ControllerFuture {
    crate::for_both_binding_kinds!(run, ctx)
}

struct BindingCtx {
    ctx: Context,
    clusters: Store<Cluster>,
    works: Store<Work>,
    overrides: Store<OverridePolicy>,
    cluster_overrides: Store<ClusterOverridePolicy>,
    resolver: Resolver,
}

fn all_refs<B: BindingResource>(store: &Store<B>) -> Vec<ObjectRef<B>> {
    store
        .state()
        .iter()
        .map(|b| ObjectRef::from_obj(&**b))
        .collect()
}

async fn run<B: BindingResource>(ctx: Context) -> Result<()> {
    let cp = ctx.control_plane.clone();
    let (clusters, cluster_changes) =
        watch_cached(Api::<Cluster>::all(cp.clone()), cluster_placement_hash);
    // Work status changes do not concern the binding controller
    let (works, work_changes) = watch_cached(Api::<Work>::all(cp.clone()), spec_hash::<Work>);
    let (overrides, override_changes) =
        watch_cached(Api::<OverridePolicy>::all(cp.clone()), every_change);
    let (cluster_overrides, cluster_override_changes) =
        watch_cached(Api::<ClusterOverridePolicy>::all(cp.clone()), every_change);

    let controller = spec_controller(Api::<B>::all(cp));
    let (b1, b2, b3) = (controller.store(), controller.store(), controller.store());
    controller
        .watches_stream(work_changes, |w: Work| binding_of_work::<B>(&w))
        .watches_stream(cluster_changes, move |_: Cluster| all_refs(&b1))
        .watches_stream(override_changes, move |p: OverridePolicy| {
            let ns = p.namespace();
            b2.state()
                .iter()
                .filter(|b| b.namespace() == ns)
                .map(|b| ObjectRef::from_obj(&**b))
                .collect::<Vec<_>>()
        })
        .watches_stream(cluster_override_changes, move |_: ClusterOverridePolicy| {
            all_refs(&b3)
        })
        .run(
            reconcile::<B>,
            error_policy::<B>,
            Arc::new(BindingCtx {
                ctx,
                clusters,
                works,
                overrides,
                cluster_overrides,
                resolver: Resolver::default(),
            }),
        )
        .for_each(|_| async {})
        .await;
    Ok(())
}

fn error_policy<B: BindingResource>(b: Arc<B>, err: &Error, _ctx: Arc<BindingCtx>) -> Action {
    tracing::warn!(binding = %b.name_any(), error = %err, "binding reconcile failed, retrying");
    Action::requeue(Duration::from_millis(500))
}

/// Works of this binding (by its permanent id), from the cache.
fn works_of(works: &Store<Work>, id_label: &str, id: &str) -> Vec<Arc<Work>> {
    works
        .state()
        .into_iter()
        .filter(|w| w.labels().get(id_label).map(String::as_str) == Some(id))
        .collect()
}

#[tracing::instrument(skip_all, fields(binding = %b.name_any()))]
async fn reconcile<B: BindingResource>(b: Arc<B>, bctx: Arc<BindingCtx>) -> Result<Action> {
    let cp = bctx.ctx.control_plane.clone();
    let id = permanent_id(&*b);
    if b.meta().deletion_timestamp.is_some() {
        return finalize(&*b, &bctx, &id).await;
    }
    if id.is_empty() {
        return Ok(Action::await_change());
    }
    let ready = cache_ready(&bctx.clusters).await
        && cache_ready(&bctx.works).await
        && cache_ready(&bctx.overrides).await
        && cache_ready(&bctx.cluster_overrides).await;
    if !ready {
        return Ok(Action::requeue(Duration::from_millis(100)));
    }
    let spec = b.spec();
    let r = &spec.resource;
    let resolved = match bctx
        .resolver
        .resolve("", &cp, &r.api_version, &r.kind)
        .await
    {
        Ok(res) => res,
        Err(Error::Kube(e)) if is_not_found(&e) => {
            return Ok(Action::requeue(Duration::from_secs(5)));
        }
        Err(e) => return Err(e),
    };
    let Some(template) = resolved
        .api(cp.clone(), &r.namespace)
        .get_opt(&r.name)
        .await?
    else {
        // the template is gone; garbage collection deletes this binding
        return Ok(Action::await_change());
    };
    if template.metadata.uid.as_deref() != Some(r.uid.as_str()) && !r.uid.is_empty() {
        return Ok(Action::await_change());
    }
    let mut template = serde_json::to_value(&template)?;
    if let Some(m) = template.as_object_mut() {
        m.insert("apiVersion".into(), json!(r.api_version));
        m.insert("kind".into(), json!(r.kind));
    }

    let required: Vec<TargetCluster> = spec
        .required_by
        .iter()
        .flat_map(|s| s.clusters.iter().cloned())
        .collect();
    let targets = merge_target_clusters(&spec.clusters, required);
    let completions =
        if r.kind == "Job" && need_revise_job_completions(spec.replicas, spec.placement.as_ref()) {
            template
                .pointer("/spec/completions")
                .and_then(Value::as_i64)
                .map(|c| divide_job_completions(c as i32, &spec.clusters, &r.uid))
        } else {
            None
        };
    let overrides: Vec<OverridePolicy> = bctx
        .overrides
        .state()
        .iter()
        .filter(|p| p.namespace().as_deref() == Some(r.namespace.as_str()))
        .map(|p| (**p).clone())
        .collect();
    let cluster_overrides: Vec<ClusterOverridePolicy> = bctx
        .cluster_overrides
        .state()
        .iter()
        .map(|p| (**p).clone())
        .collect();
    let namespace = b.namespace().unwrap_or_default();
    let name = b.name_any();
    let existing = works_of(&bctx.works, B::ID_LABEL, &id);
    let mut errors = Vec::new();
    let mut stale = false;
    for target in &targets {
        let Some(cluster) = bctx.clusters.get(&ObjectRef::new(&target.name)) else {
            continue;
        };
        let job_completions = completions.as_ref().map(|c| {
            c.iter()
                .find(|t| t.name == target.name)
                .map(|t| t.replicas)
                .unwrap_or(0)
        });
        let ws = execution_space_name(&target.name);
        let wname = flotilla_api::names::work_name(&r.kind, &r.name, &r.namespace);
        let current = bctx.works.get(&ObjectRef::new(&wname).within(&ws));
        let fresh_id: BTreeMap<String, String> = BTreeMap::from([(
            WORK_PERMANENT_ID_LABEL.to_string(),
            uuid::Uuid::new_v4().to_string(),
        )]);
        let labels = current
            .as_ref()
            .map(|w| w.labels().clone())
            .filter(|l| l.contains_key(WORK_PERMANENT_ID_LABEL))
            .unwrap_or(fresh_id);
        let work = match render_work(&RenderInput {
            template: &template,
            binding: BindingRef {
                name: &name,
                namespace: &namespace,
                permanent_id: &id,
            },
            spec,
            target,
            cluster: &cluster,
            job_completions,
            cluster_overrides: &cluster_overrides,
            overrides: &overrides,
            existing_labels: Some(&labels),
        }) {
            Ok(w) => w,
            Err(e) => {
                errors.push(format!("cluster {}: {e}", target.name));
                continue;
            }
        };
        match write_work(&cp, current.as_deref(), work).await {
            Ok(written) => stale |= !written,
            Err(e) => errors.push(format!("cluster {}: {e}", target.name)),
        }
    }
    // Works for clusters no longer targeted
    for w in &existing {
        let cluster = w
            .namespace()
            .as_deref()
            .and_then(cluster_of_execution_space)
            .map(str::to_string)
            .unwrap_or_default();
        if !targets.iter().any(|t| t.name == cluster) && w.metadata.deletion_timestamp.is_none() {
            delete_work(&cp, w).await?;
        }
    }
    if !errors.is_empty() {
        return Err(Error::InvalidConfig(format!(
            "rendering works failed: {}",
            errors.join("; ")
        )));
    }
    if stale {
        // a Work changed under us, perhaps only in status, which the Work
        // watch's spec predicate does not pass on: look again shortly
        return Ok(Action::requeue(Duration::from_millis(50)));
    }
    Ok(Action::await_change())
}

/// Creates the Work, or updates it when its spec, labels or annotations
/// differ. `Ok(false)` when the cached Work was stale (a conflict), so the
/// caller tries again.
async fn write_work(cp: &kube::Client, current: Option<&Work>, mut work: Work) -> Result<bool> {
    let ns = work.namespace().unwrap_or_default();
    let api: Api<Work> = Api::namespaced(cp.clone(), &ns);
    let Some(current) = current else {
        return match api.create(&PostParams::default(), &work).await {
            Ok(_) => Ok(true),
            // created meanwhile (the cache lags)
            Err(e) if is_conflict(&e) => Ok(false),
            Err(e) => Err(e.into()),
        };
    };
    let mut labels = current.labels().clone();
    labels.extend(work.labels().clone());
    let mut annotations = current.annotations().clone();
    // the override annotations disappear when no policy applies any more
    annotations.remove(flotilla_api::policy::APPLIED_OVERRIDES_ANNOTATION);
    annotations.remove(flotilla_api::policy::APPLIED_CLUSTER_OVERRIDES_ANNOTATION);
    annotations.extend(work.annotations().clone());
    if current.spec == work.spec
        && current.labels() == &labels
        && current.annotations() == &annotations
    {
        return Ok(true);
    }
    let mut finalizers = current.finalizers().to_vec();
    for f in work.finalizers() {
        if !finalizers.contains(f) {
            finalizers.push(f.clone());
        }
    }
    work.metadata = current.metadata.clone();
    work.metadata.labels = Some(labels);
    work.metadata.annotations = Some(annotations);
    work.metadata.finalizers = Some(finalizers);
    work.metadata.managed_fields = None;
    work.status = None;
    match api
        .replace(&current.name_any(), &PostParams::default(), &work)
        .await
    {
        Ok(_) => Ok(true),
        // stale cache
        Err(e) if is_conflict(&e) => Ok(false),
        Err(e) if is_not_found(&e) => Ok(true),
        Err(e) => Err(e.into()),
    }
}

async fn delete_work(cp: &kube::Client, w: &Work) -> Result<()> {
    let api: Api<Work> = Api::namespaced(cp.clone(), &w.namespace().unwrap_or_default());
    match api.delete(&w.name_any(), &DeleteParams::background()).await {
        Ok(_) => Ok(()),
        Err(e) if is_not_found(&e) => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// The binding is being deleted: delete its Works, and release the binding
/// once none is left.
async fn finalize<B: BindingResource>(b: &B, bctx: &BindingCtx, id: &str) -> Result<Action> {
    if !b.finalizers().iter().any(|f| f == B::FINALIZER) {
        return Ok(Action::await_change());
    }
    let cp = bctx.ctx.control_plane.clone();
    if !id.is_empty() {
        let lp = ListParams::default().labels(&format!("{}={id}", B::ID_LABEL));
        let works = Api::<Work>::all(cp.clone()).list(&lp).await?;
        if !works.items.is_empty() {
            for w in &works.items {
                if w.metadata.deletion_timestamp.is_none() {
                    delete_work(&cp, w).await?;
                }
            }
            return Ok(Action::requeue(Duration::from_millis(200)));
        }
    }
    let api = B::api(cp, &b.namespace().unwrap_or_default());
    set_finalizer(&api, b, B::FINALIZER, false).await
}
