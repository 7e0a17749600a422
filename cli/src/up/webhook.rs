//! The admission webhook of `flotilla up`: served in-process on a free
//! loopback port with its own CA (`DIR/webhook/ca.crt`, serving certificate
//! `DIR/webhook/tls.crt|key`), reached by the host API server as Karmada's is —
//! through the `karmada-webhook` Service in `karmada-system`, whose Endpoints
//! name the loopback port — with Karmada's Mutating/ValidatingWebhookConfiguration
//! (failurePolicy Fail) and the binding CRDs' conversion webhook.
//!
//! With `--webhook=false` everything is registered the same way but nothing
//! serves: the Endpoints are empty, so policy writes fail (failurePolicy Fail)
//! until a `flotilla webhook --cert-dir DIR/webhook` is started and the
//! Endpoints are pointed at it.
//!
//! The webhook reads the control plane's ResourceInterpreterCustomizations
//! through the host API server's admin kubeconfig.

use std::net::SocketAddr;
use std::path::Path;

use anyhow::{Context, Result};
use base64::Engine;
use flotilla_apiserver::registry::store::Store;
use flotilla_webhook::configuration::{self, SERVICE_NAME, SYSTEM_NAMESPACE, Target};
use serde_json::{Value, json};

/// The embedded webhook, running or not.
pub struct Embedded {
    /// Base64 of the CA PEM that signs the serving certificate.
    ca_bundle: String,
    /// Where the webhook serves, when it does.
    addr: Option<SocketAddr>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
}

/// Makes the certificates in `dir` and, when `enabled`, starts serving.
pub async fn start(
    dir: &Path,
    host_kubeconfig: &Path,
    enabled: bool,
    allow_no_execute_taint_policy: bool,
) -> Result<Embedded> {
    let ca_pem = crate::webhook::ensure_pki(dir)?;
    let ca_bundle = base64::engine::general_purpose::STANDARD.encode(ca_pem);
    if !enabled {
        return Ok(Embedded {
            ca_bundle,
            addr: None,
            stop: None,
            task: None,
        });
    }
    let config = flotilla_webhook::Config::new(
        SocketAddr::from(([127, 0, 0, 1], 0)),
        dir.join("tls.crt"),
        dir.join("tls.key"),
    )
    .allow_no_execute_taint_policy(allow_no_execute_taint_policy)
    .kubeconfig(host_kubeconfig);
    let server = flotilla_webhook::bind(config)
        .await
        .context("starting the admission webhook")?;
    let addr = server.local_addr;
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(server.serve(async move {
        let _ = stopped.await;
    }));
    Ok(Embedded {
        ca_bundle,
        addr: Some(addr),
        stop: Some(stop),
        task: Some(task),
    })
}

impl Embedded {
    /// `spec.conversion` for the binding CRDs.
    pub fn conversion(&self) -> Value {
        configuration::conversion(&Target::karmada_service(), Some(&self.ca_bundle))
    }

    /// The address the webhook serves on, if it runs in-process.
    pub fn addr(&self) -> Option<SocketAddr> {
        self.addr
    }

    /// Registers the Service, its Endpoints and both webhook configurations on the host.
    pub async fn register(&self, store: &Store) -> Result<()> {
        // The Service's target port is the in-process port, or Karmada's 8443.
        let port = self.addr.map_or(8443, |a| a.port());
        super::put(store, "", "v1", "services", json!({
            "apiVersion": "v1", "kind": "Service",
            "metadata": {"name": SERVICE_NAME, "namespace": SYSTEM_NAMESPACE, "labels": {"app": SERVICE_NAME}},
            "spec": {"ports": [{"name": "https", "port": 443, "targetPort": port}]},
        }))
        .await?;
        let subsets = match self.addr {
            Some(a) => {
                json!([{"addresses": [{"ip": a.ip().to_string()}], "ports": [{"name": "https", "port": a.port()}]}])
            }
            None => json!([]),
        };
        super::put(store, "", "v1", "endpoints", json!({
            "apiVersion": "v1", "kind": "Endpoints",
            "metadata": {"name": SERVICE_NAME, "namespace": SYSTEM_NAMESPACE, "labels": {"app": SERVICE_NAME}},
            "subsets": subsets,
        }))
        .await?;
        let (mutating, validating) =
            configuration::configurations(&Target::karmada_service(), Some(&self.ca_bundle));
        super::put(
            store,
            "admissionregistration.k8s.io",
            "v1",
            "mutatingwebhookconfigurations",
            mutating,
        )
        .await?;
        super::put(
            store,
            "admissionregistration.k8s.io",
            "v1",
            "validatingwebhookconfigurations",
            validating,
        )
        .await?;
        Ok(())
    }

    /// Stops serving (connections in flight finish on their own).
    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}
