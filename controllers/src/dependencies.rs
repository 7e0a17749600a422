//! The dependencies distributor (`dependencies`): with `propagateDeps: true`
//! the ConfigMaps, Secrets, ServiceAccount and PVCs a workload refers to
//! ([`flotilla_api::dependencies::dependencies`]) follow it to the same
//! clusters, as Karmada's `pkg/dependenciesdistributor` does.
//!
//! For each dependency an *attached* ResourceBinding (named like any binding,
//! in the workload's namespace) lists the workload's binding and clusters in
//! `spec.requiredBy` and carries the label
//! `resourcebinding.karmada.io/depended-by-<key>: <workload binding id>`; the
//! binding controller renders Works for the `requiredBy` clusters. A
//! dependency that a policy claims itself keeps its own placement and just
//! gains the `requiredBy` entry. The workload binding records its
//! dependencies in the `resourcebinding.karmada.io/dependencies` annotation
//! and holds a finalizer until its entries are removed again; an attached
//! binding left with no `requiredBy` and no claim is deleted.

use std::sync::Arc;
use std::time::Duration;

use flotilla_api::dependencies::{DependentObjectReference, dependencies};
use flotilla_api::names::{binding_name, binding_reference_key};
use flotilla_api::work::{
    BINDING_CONTROLLER_FINALIZER, BINDING_DEPENDENCIES_ANNOTATION, BindingSnapshot,
    ObjectReference, RESOURCE_BINDING_PERMANENT_ID_LABEL, ResourceBinding, ResourceBindingSpec,
};
use futures::StreamExt;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use kube::api::{DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::runtime::controller::Action;
use kube::{Api, ResourceExt};
use serde_json::json;

use crate::propagation::{
    Resolver, is_claimed, is_conflict, is_not_found, permanent_id, set_finalizer,
    shared_controller, spec_hash,
};
use crate::workqueue::RunQueued;
use crate::{Context, ControllerFuture, Error, Result};

/// Finalizer on a workload binding whose dependencies were distributed.
pub const DEPENDENCIES_FINALIZER: &str = "karmada.io/binding-dependencies-distributor";
/// Prefix of the label naming the workload binding an attached binding serves.
pub const DEPENDED_BY_LABEL_PREFIX: &str = "resourcebinding.karmada.io/depended-by-";

/// Starts the distributor (the `dependencies` entry of [`crate::controllers`]).
pub fn start(ctx: Context) -> ControllerFuture {
    Box::pin(run(ctx))
}

struct DepsCtx {
    ctx: Context,
    resolver: Resolver,
}

async fn run(ctx: Context) -> Result<()> {
    let api = Api::<ResourceBinding>::all(ctx.control_plane.clone());
    let wq = crate::workqueue::Queue::new("dependencies");
    shared_controller(&wq, &ctx, api, spec_hash::<ResourceBinding>)
        .run_queued(
            &wq,
            reconcile,
            error_policy,
            Arc::new(DepsCtx {
                ctx,
                resolver: Resolver::default(),
            }),
        )
        .for_each(|_| async {})
        .await;
    Ok(())
}

fn error_policy(b: Arc<ResourceBinding>, err: &Error, _ctx: Arc<DepsCtx>) -> Action {
    tracing::warn!(binding = %b.name_any(), error = %err, "distributing dependencies failed, retrying");
    Action::requeue(Duration::from_secs(1))
}

fn label_key(rb: &ResourceBinding) -> String {
    format!(
        "{DEPENDED_BY_LABEL_PREFIX}{}",
        binding_reference_key(&rb.namespace().unwrap_or_default(), &rb.name_any())
    )
}

#[tracing::instrument(skip_all, fields(binding = %rb.name_any()))]
async fn reconcile(rb: Arc<ResourceBinding>, dctx: Arc<DepsCtx>) -> Result<Action> {
    let cp = dctx.ctx.control_plane.clone();
    let namespace = rb.namespace().unwrap_or_default();
    let api: Api<ResourceBinding> = Api::namespaced(cp.clone(), &namespace);
    let has_finalizer = rb.finalizers().iter().any(|f| f == DEPENDENCIES_FINALIZER);
    let wanted = rb.spec.propagate_deps
        && is_claimed(rb.labels())
        && rb.metadata.deletion_timestamp.is_none();
    if !wanted {
        if has_finalizer
            || rb.metadata.deletion_timestamp.is_none()
                && rb
                    .annotations()
                    .contains_key(BINDING_DEPENDENCIES_ANNOTATION)
        {
            release_all(&api, &rb).await?;
            if has_finalizer {
                return set_finalizer(&api, &*rb, DEPENDENCIES_FINALIZER, false).await;
            }
        }
        return Ok(Action::await_change());
    }
    let id = permanent_id(&*rb);
    if id.is_empty() {
        return Ok(Action::await_change());
    }
    if !has_finalizer {
        return set_finalizer(&api, &*rb, DEPENDENCIES_FINALIZER, true).await;
    }
    let r = &rb.spec.resource;
    let resolved = dctx
        .resolver
        .resolve("", &cp, &r.api_version, &r.kind)
        .await?;
    let Some(template) = resolved
        .api(cp.clone(), &r.namespace)
        .get_opt(&r.name)
        .await?
    else {
        return Ok(Action::await_change());
    };
    let mut template = serde_json::to_value(&template)?;
    template["kind"] = json!(r.kind);
    template["apiVersion"] = json!(r.api_version);
    let deps = dependencies(&template);
    let recorded = serde_json::to_string(&deps)?;
    if rb.annotations().get(BINDING_DEPENDENCIES_ANNOTATION) != Some(&recorded) {
        let patch =
            json!({"metadata": {"annotations": {BINDING_DEPENDENCIES_ANNOTATION: recorded}}});
        api.patch(
            &rb.name_any(),
            &PatchParams::default(),
            &Patch::Merge(&patch),
        )
        .await?;
    }
    let key = label_key(&rb);
    let snapshot = BindingSnapshot {
        namespace: namespace.clone(),
        name: rb.name_any(),
        clusters: rb.spec.clusters.clone(),
    };
    let mut missing = false;
    for dep in &deps {
        if !attach(&dctx, &rb, &key, &id, dep, &snapshot).await? {
            missing = true;
        }
    }
    // attached bindings of dependencies no longer referred to
    let lp = ListParams::default().labels(&key);
    for other in api.list(&lp).await? {
        let still = deps
            .iter()
            .any(|d| binding_name(&d.kind, &d.name) == other.name_any());
        if !still {
            detach(&api, &other, &key, &snapshot).await?;
        }
    }
    // a dependency created later is picked up on the next pass
    Ok(if missing {
        Action::requeue(Duration::from_secs(5))
    } else {
        Action::await_change()
    })
}

/// Creates or updates the attached binding of one dependency; `false` when
/// the dependency does not exist (yet).
async fn attach(
    dctx: &DepsCtx,
    rb: &ResourceBinding,
    key: &str,
    id: &str,
    dep: &DependentObjectReference,
    snapshot: &BindingSnapshot,
) -> Result<bool> {
    let cp = dctx.ctx.control_plane.clone();
    let resolved = dctx
        .resolver
        .resolve("", &cp, &dep.api_version, &dep.kind)
        .await?;
    let Some(obj) = resolved
        .api(cp.clone(), &dep.namespace)
        .get_opt(&dep.name)
        .await?
    else {
        return Ok(false);
    };
    let api: Api<ResourceBinding> = Api::namespaced(cp, &dep.namespace);
    let name = binding_name(&dep.kind, &dep.name);
    let resource = ObjectReference {
        api_version: dep.api_version.clone(),
        kind: dep.kind.clone(),
        namespace: dep.namespace.clone(),
        name: dep.name.clone(),
        uid: obj.metadata.uid.clone().unwrap_or_default(),
        resource_version: obj.metadata.resource_version.clone().unwrap_or_default(),
    };
    let Some(mut existing) = api.get_opt(&name).await? else {
        let attached = ResourceBinding {
            metadata: ObjectMeta {
                name: Some(name),
                namespace: Some(dep.namespace.clone()),
                labels: Some(
                    [
                        (key.to_string(), id.to_string()),
                        (
                            RESOURCE_BINDING_PERMANENT_ID_LABEL.to_string(),
                            uuid::Uuid::new_v4().to_string(),
                        ),
                    ]
                    .into(),
                ),
                owner_references: Some(vec![OwnerReference {
                    api_version: dep.api_version.clone(),
                    kind: dep.kind.clone(),
                    name: dep.name.clone(),
                    uid: resource.uid.clone(),
                    controller: Some(true),
                    block_owner_deletion: Some(true),
                }]),
                finalizers: Some(vec![BINDING_CONTROLLER_FINALIZER.to_string()]),
                ..Default::default()
            },
            spec: ResourceBindingSpec {
                resource,
                required_by: vec![snapshot.clone()],
                conflict_resolution: rb.spec.conflict_resolution.clone(),
                preserve_resources_on_deletion: rb.spec.preserve_resources_on_deletion,
                ..Default::default()
            },
            status: None,
        };
        return match api.create(&PostParams::default(), &attached).await {
            Ok(_) => Ok(true),
            Err(e) if is_conflict(&e) => Ok(true),
            Err(e) => Err(e.into()),
        };
    };
    let before = existing.clone();
    existing
        .metadata
        .labels
        .get_or_insert_with(Default::default)
        .insert(key.to_string(), id.to_string());
    let required = &mut existing.spec.required_by;
    match required
        .iter_mut()
        .find(|s| s.name == snapshot.name && s.namespace == snapshot.namespace)
    {
        Some(s) => *s = snapshot.clone(),
        None => required.push(snapshot.clone()),
    }
    if !is_claimed(existing.labels()) {
        existing.spec.resource = resource;
    }
    if existing == before {
        return Ok(true);
    }
    existing.metadata.managed_fields = None;
    match api
        .replace(&existing.name_any(), &PostParams::default(), &existing)
        .await
    {
        Ok(_) => Ok(true),
        Err(e) if is_conflict(&e) => Err(Error::InvalidConfig(format!(
            "binding {} changed meanwhile",
            existing.name_any()
        ))),
        Err(e) => Err(e.into()),
    }
}

/// Removes a workload's entry and label from an attached binding, deleting
/// the binding when nothing else needs it.
async fn detach(
    api: &Api<ResourceBinding>,
    attached: &ResourceBinding,
    key: &str,
    snapshot: &BindingSnapshot,
) -> Result<()> {
    let mut updated = attached.clone();
    updated
        .spec
        .required_by
        .retain(|s| !(s.name == snapshot.name && s.namespace == snapshot.namespace));
    if let Some(l) = updated.metadata.labels.as_mut() {
        l.remove(key);
    }
    if updated.spec.required_by.is_empty() && !is_claimed(updated.labels()) {
        return match api
            .delete(&updated.name_any(), &DeleteParams::background())
            .await
        {
            Ok(_) => Ok(()),
            Err(e) if is_not_found(&e) => Ok(()),
            Err(e) => Err(e.into()),
        };
    }
    updated.metadata.managed_fields = None;
    match api
        .replace(&updated.name_any(), &PostParams::default(), &updated)
        .await
    {
        Ok(_) => Ok(()),
        Err(e) if is_not_found(&e) => Ok(()),
        Err(e) => Err(e.into()),
    }
}

async fn release_all(api: &Api<ResourceBinding>, rb: &ResourceBinding) -> Result<()> {
    let key = label_key(rb);
    let snapshot = BindingSnapshot {
        namespace: rb.namespace().unwrap_or_default(),
        name: rb.name_any(),
        clusters: Vec::new(),
    };
    for other in api.list(&ListParams::default().labels(&key)).await? {
        detach(api, &other, &key, &snapshot).await?;
    }
    if rb.metadata.deletion_timestamp.is_none()
        && rb
            .annotations()
            .contains_key(BINDING_DEPENDENCIES_ANNOTATION)
    {
        let patch = json!({"metadata": {"annotations": {BINDING_DEPENDENCIES_ANNOTATION: null}}});
        api.patch(
            &rb.name_any(),
            &PatchParams::default(),
            &Patch::Merge(&patch),
        )
        .await?;
    }
    Ok(())
}
