//! API semantics through kube-rs: every patch type, the status subresource, and a
//! `kube::runtime::Controller` over a CRD reconciling with finalizers.

use std::sync::Arc;
use std::time::Duration;

use flotilla_tests::ApiServer;
use futures::StreamExt;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::finalizer::{Event as Finalizer, finalizer};
use kube::{Client, Config, CustomResource, CustomResourceExt, ResourceExt};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::json;

async fn client(server: &ApiServer) -> Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let kubeconfig = kube::config::Kubeconfig::read_from(&server.kubeconfig).expect("kubeconfig");
    let config = Config::from_custom_kubeconfig(kubeconfig, &Default::default())
        .await
        .expect("config");
    Client::try_from(config).expect("client")
}

fn deployment() -> Deployment {
    serde_json::from_value(json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "web"},
        "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "web"}},
                 "template": {"metadata": {"labels": {"app": "web"}},
                              "spec": {"containers": [
                                  {"name": "app", "image": "nginx:1.25", "env": [{"name": "A", "value": "1"}]},
                                  {"name": "sidecar", "image": "busybox"}]}}}
    }))
    .expect("deployment")
}

#[tokio::test]
async fn every_patch_type() {
    let server = ApiServer::start();
    let api: Api<Deployment> = Api::namespaced(client(&server).await, "default");
    api.create(&PostParams::default(), &deployment())
        .await
        .expect("create");

    let merged = api
        .patch(
            "web",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"replicas": 2}})),
        )
        .await
        .expect("merge");
    assert_eq!(merged.spec.as_ref().and_then(|s| s.replicas), Some(2));

    let json_patch: json_patch::Patch =
        serde_json::from_value(json!([{"op": "replace", "path": "/spec/replicas", "value": 3}]))
            .expect("patch");
    let patched = api
        .patch(
            "web",
            &PatchParams::default(),
            &Patch::<()>::Json(json_patch),
        )
        .await
        .expect("json");
    assert_eq!(patched.spec.as_ref().and_then(|s| s.replicas), Some(3));

    // Strategic: the container is merged by name, the sidecar stays.
    let strategic = api
        .patch(
            "web",
            &PatchParams::default(),
            &Patch::Strategic(json!({"spec": {"template": {"spec": {"containers": [{"name": "app", "image": "nginx:1.26"}]}}}})),
        )
        .await
        .expect("strategic");
    let containers = strategic
        .spec
        .as_ref()
        .and_then(|s| s.template.spec.as_ref())
        .map(|p| p.containers.clone())
        .expect("pod spec");
    assert_eq!(containers.len(), 2);
    assert_eq!(containers[0].image.as_deref(), Some("nginx:1.26"));
    assert_eq!(containers[0].env.as_ref().map(Vec::len), Some(1));

    // Server-side apply by two managers: the second conflicts until forced.
    let applied = json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"}, "spec": {"replicas": 4}});
    // The fields were last written by plain patches: the first apply takes them over.
    api.patch(
        "web",
        &PatchParams::apply("first").force(),
        &Patch::Apply(&applied),
    )
    .await
    .expect("first apply");
    let other = json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"}, "spec": {"replicas": 5}});
    match api
        .patch("web", &PatchParams::apply("second"), &Patch::Apply(&other))
        .await
    {
        Err(kube::Error::Api(s)) => {
            assert_eq!(s.code, 409);
            assert!(
                s.message.contains("conflict with \"first\""),
                "{}",
                s.message
            );
        }
        other => panic!("expected a conflict, got {other:?}"),
    }
    let forced = api
        .patch(
            "web",
            &PatchParams::apply("second").force(),
            &Patch::Apply(&other),
        )
        .await
        .expect("forced");
    assert_eq!(forced.spec.as_ref().and_then(|s| s.replicas), Some(5));

    // A failing JSON patch test leaves the object unchanged.
    let failing: json_patch::Patch =
        serde_json::from_value(json!([{"op": "test", "path": "/spec/replicas", "value": 99}, {"op": "replace", "path": "/spec/replicas", "value": 0}])).expect("patch");
    match api
        .patch("web", &PatchParams::default(), &Patch::<()>::Json(failing))
        .await
    {
        Err(kube::Error::Api(s)) => assert_eq!(s.code, 422),
        other => panic!("expected 422, got {other:?}"),
    }
    assert_eq!(
        api.get("web")
            .await
            .expect("get")
            .spec
            .and_then(|s| s.replicas),
        Some(5)
    );
}

#[tokio::test]
async fn status_only_through_the_subresource() {
    let server = ApiServer::start();
    let api: Api<Deployment> = Api::namespaced(client(&server).await, "default");
    let mut d = deployment();
    d.status = Some(serde_json::from_value(json!({"replicas": 9})).expect("status"));
    let created = api
        .create(&PostParams::default(), &d)
        .await
        .expect("create");
    assert!(
        created.status.as_ref().and_then(|s| s.replicas).is_none(),
        "status is dropped on create"
    );

    let mut with_status = created.clone();
    with_status.status =
        Some(serde_json::from_value(json!({"replicas": 1, "readyReplicas": 1})).expect("status"));
    let replaced = api
        .replace_status("web", &PostParams::default(), &with_status)
        .await
        .expect("status");
    assert_eq!(
        replaced.status.as_ref().and_then(|s| s.ready_replicas),
        Some(1)
    );
    assert_eq!(
        replaced.metadata.generation, created.metadata.generation,
        "status writes keep the generation"
    );

    // A write to the main resource ignores status.
    let mut main = replaced.clone();
    main.status = Some(serde_json::from_value(json!({"replicas": 7})).expect("status"));
    let after = api
        .replace("web", &PostParams::default(), &main)
        .await
        .expect("replace");
    assert_eq!(after.status.as_ref().and_then(|s| s.replicas), Some(1));
}

#[derive(CustomResource, Deserialize, Serialize, Clone, Debug, JsonSchema)]
#[kube(
    group = "example.flotilla.io",
    version = "v1",
    kind = "Widget",
    namespaced,
    status = "WidgetStatus"
)]
pub struct WidgetSpec {
    size: i32,
}

#[derive(Deserialize, Serialize, Clone, Debug, Default, JsonSchema)]
pub struct WidgetStatus {
    seen: bool,
}

struct Ctx {
    client: Client,
    cleaned: std::sync::Mutex<Vec<String>>,
}

async fn reconcile(
    widget: Arc<Widget>,
    ctx: Arc<Ctx>,
) -> Result<Action, kube::runtime::finalizer::Error<kube::Error>> {
    let api: Api<Widget> =
        Api::namespaced(ctx.client.clone(), &widget.namespace().unwrap_or_default());
    finalizer(&api, "example.flotilla.io/cleanup", widget, |event| async {
        match event {
            Finalizer::Apply(w) => {
                let status = json!({"status": {"seen": true}});
                api.patch_status(
                    &w.name_any(),
                    &PatchParams::default(),
                    &Patch::Merge(status),
                )
                .await?;
                Ok(Action::await_change())
            }
            Finalizer::Cleanup(w) => {
                ctx.cleaned.lock().expect("lock").push(w.name_any());
                Ok(Action::await_change())
            }
        }
    })
    .await
}

#[tokio::test]
async fn controller_over_a_crd_with_finalizers() {
    let server = ApiServer::start();
    let client = client(&server).await;
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    crds.create(&PostParams::default(), &Widget::crd())
        .await
        .expect("create CRD");
    // The resource is served as soon as the CRD is established.
    let widgets: Api<Widget> = Api::namespaced(client.clone(), "default");
    tokio::time::timeout(Duration::from_secs(10), async {
        while widgets.list(&Default::default()).await.is_err() {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await
    .expect("CRD served in time");

    let ctx = Arc::new(Ctx {
        client: client.clone(),
        cleaned: Default::default(),
    });
    let controller = Controller::new(widgets.clone(), Default::default())
        .run(
            reconcile,
            |_, _, _| Action::requeue(Duration::from_secs(1)),
            ctx.clone(),
        )
        .for_each(|_| async {});
    let handle = tokio::spawn(controller);

    for name in ["a", "b", "c"] {
        widgets
            .create(
                &PostParams::default(),
                &Widget::new(name, WidgetSpec { size: 1 }),
            )
            .await
            .expect("create widget");
    }
    tokio::time::timeout(Duration::from_secs(30), async {
        loop {
            let list = widgets.list(&Default::default()).await.expect("list");
            let done = list
                .items
                .iter()
                .filter(|w| w.status.as_ref().is_some_and(|s| s.seen) && !w.finalizers().is_empty())
                .count();
            if done == 3 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
    .await
    .expect("every widget reconciled");

    widgets
        .delete("b", &DeleteParams::default())
        .await
        .expect("delete");
    tokio::time::timeout(Duration::from_secs(30), async {
        while widgets.get_opt("b").await.expect("get").is_some() {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
    .await
    .expect("deleted after the finalizer ran");
    assert_eq!(*ctx.cleaned.lock().expect("lock"), vec!["b".to_string()]);
    handle.abort();
}
