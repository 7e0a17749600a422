//! The controllers' Prometheus metrics, one registry per process
//! ([`registry`]), served as text by [`encode`] (the controller manager's
//! `--metrics-bind-address`, `flotilla up`'s controllers target).
//!
//! Generic families, named as controller-runtime names them (Karmada's
//! controllers run on controller-runtime, so dashboards built for Karmada
//! find the same series here):
//!
//! - `controller_runtime_reconcile_total{controller,result}` — reconciles
//!   by outcome (`success`, `requeue`, `error`);
//! - `controller_runtime_reconcile_errors_total{controller}`;
//! - `controller_runtime_reconcile_time_seconds{controller}` — histogram;
//! - `controller_runtime_active_workers{controller}` — reconciles running now.
//!
//! Each controller adds the families Karmada has for its work (see the
//! `families` of each module and `docs/monitoring.md`), registering them with
//! [`register`]. Labels carry bounded values only: controller names, results,
//! cluster names, kinds, never object names.

use std::future::Future;
use std::sync::{Arc, LazyLock};
use std::time::Instant;

use kube::runtime::controller::Action;
use prometheus::{
    Encoder, HistogramOpts, HistogramVec, IntCounterVec, IntGaugeVec, Opts, Registry,
};

static REGISTRY: LazyLock<Registry> = LazyLock::new(Registry::new);

/// The process-wide registry of the controllers' metrics.
pub fn registry() -> &'static Registry {
    &REGISTRY
}

/// Registers a collector in [`registry`]; a family registered twice (a
/// controller started again in the same process) keeps the first.
pub fn register<C: prometheus::core::Collector + Clone + 'static>(collector: C) -> C {
    match REGISTRY.register(Box::new(collector.clone())) {
        Ok(()) => collector,
        Err(prometheus::Error::AlreadyReg) => collector,
        Err(e) => panic!("invalid metric definition: {e}"),
    }
}

/// Builds and registers a counter family.
pub fn counter_vec(name: &str, help: &str, labels: &[&str]) -> IntCounterVec {
    register(IntCounterVec::new(Opts::new(name, help), labels).expect("valid metric definition"))
}

/// Builds and registers a gauge family.
pub fn gauge_vec(name: &str, help: &str, labels: &[&str]) -> IntGaugeVec {
    register(IntGaugeVec::new(Opts::new(name, help), labels).expect("valid metric definition"))
}

/// Builds and registers a histogram family with `buckets` (seconds).
pub fn histogram_vec(name: &str, help: &str, labels: &[&str], buckets: &[f64]) -> HistogramVec {
    register(
        HistogramVec::new(
            HistogramOpts::new(name, help).buckets(buckets.to_vec()),
            labels,
        )
        .expect("valid metric definition"),
    )
}

/// Latency buckets for reconciles and API round trips, 1 ms to 60 s.
pub const LATENCY_BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
];

struct Reconciles {
    total: IntCounterVec,
    errors: IntCounterVec,
    time: HistogramVec,
    active: IntGaugeVec,
}

static RECONCILES: LazyLock<Reconciles> = LazyLock::new(|| Reconciles {
    total: counter_vec(
        "controller_runtime_reconcile_total",
        "Total number of reconciliations per controller, by result.",
        &["controller", "result"],
    ),
    errors: counter_vec(
        "controller_runtime_reconcile_errors_total",
        "Total number of reconciliation errors per controller.",
        &["controller"],
    ),
    time: histogram_vec(
        "controller_runtime_reconcile_time_seconds",
        "Length of time per reconciliation per controller.",
        &["controller"],
        LATENCY_BUCKETS,
    ),
    active: gauge_vec(
        "controller_runtime_active_workers",
        "Number of reconciles running now per controller.",
        &["controller"],
    ),
});

/// The future a [`reconciled`] reconcile function returns.
pub type ReconcileFuture<E> = std::pin::Pin<Box<dyn Future<Output = Result<Action, E>> + Send>>;

/// Wraps a reconcile function so that every call is counted and timed under
/// `controller`:
///
/// ```ignore
/// controller.run(metrics::reconciled("scheduler", reconcile::<B>), error_policy, ctx)
/// ```
pub fn reconciled<K, C, E, F, Fut>(
    controller: &'static str,
    reconcile: F,
) -> impl FnMut(Arc<K>, Arc<C>) -> ReconcileFuture<E>
where
    F: Fn(Arc<K>, Arc<C>) -> Fut + Send + Clone + 'static,
    Fut: Future<Output = Result<Action, E>> + Send + 'static,
    K: Send + Sync + 'static,
    C: Send + Sync + 'static,
{
    let m = &*RECONCILES;
    move |obj, ctx| {
        let fut = reconcile.clone()(obj, ctx);
        Box::pin(async move {
            let started = Instant::now();
            let active = m.active.with_label_values(&[controller]);
            active.inc();
            let out = fut.await;
            active.dec();
            m.time
                .with_label_values(&[controller])
                .observe(started.elapsed().as_secs_f64());
            let result = match &out {
                Ok(action) if *action == Action::await_change() => "success",
                Ok(_) => "requeue",
                Err(_) => {
                    m.errors.with_label_values(&[controller]).inc();
                    "error"
                }
            };
            m.total.with_label_values(&[controller, result]).inc();
            out
        })
    }
}

/// Karmada's `result` label value: `success` or `error`.
pub fn result(ok: bool) -> &'static str {
    if ok { "success" } else { "error" }
}

/// The registry's metrics in Prometheus's text format.
pub fn encode() -> String {
    let mut out = Vec::new();
    prometheus::TextEncoder::new()
        .encode(&REGISTRY.gather(), &mut out)
        .expect("text encoding cannot fail");
    String::from_utf8(out).expect("the text format is UTF-8")
}

/// Parses a bind address as Karmada's flags write it: `:8080` is every
/// interface, `host:port` as usual, and `0` turns the server off (`None`).
pub fn parse_bind_address(s: &str) -> Result<Option<std::net::SocketAddr>, String> {
    let s = s.trim();
    if s == "0" || s.is_empty() {
        return Ok(None);
    }
    let full = if s.starts_with(':') {
        format!("0.0.0.0{s}")
    } else {
        s.to_string()
    };
    full.parse()
        .map(Some)
        .map_err(|_| format!("invalid bind address {s:?} (want host:port, :port, or 0 for off)"))
}

/// Serves `/metrics` (this registry, plain HTTP as Karmada's controller
/// manager serves it), `/healthz` and `/readyz` on `addr`; answers the bound
/// address (a port of 0 picks a free one).
pub async fn serve(addr: std::net::SocketAddr) -> std::io::Result<std::net::SocketAddr> {
    use hyper::service::service_fn;
    use hyper_util::rt::{TokioExecutor, TokioIo};

    let listener = tokio::net::TcpListener::bind(addr).await?;
    let bound = listener.local_addr()?;
    tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                continue;
            };
            let service = service_fn(|req: hyper::Request<hyper::body::Incoming>| async move {
                let (status, content_type, body) = match req.uri().path() {
                    "/metrics" => (200, "text/plain; version=0.0.4", encode()),
                    "/healthz" | "/readyz" | "/livez" => (200, "text/plain", "ok".to_string()),
                    _ => (404, "text/plain", "404 page not found\n".to_string()),
                };
                let mut response =
                    hyper::Response::new(http_body_util::Full::new(bytes::Bytes::from(body)));
                *response.status_mut() =
                    hyper::StatusCode::from_u16(status).unwrap_or(hyper::StatusCode::OK);
                response.headers_mut().insert(
                    hyper::header::CONTENT_TYPE,
                    hyper::header::HeaderValue::from_static(content_type),
                );
                Ok::<_, std::convert::Infallible>(response)
            });
            tokio::spawn(async move {
                let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(tcp), service)
                    .await;
            });
        }
    });
    Ok(bound)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn reconciles_are_counted_by_result() {
        async fn ok(_: Arc<u8>, _: Arc<()>) -> Result<Action, String> {
            Ok(Action::await_change())
        }
        async fn fail(_: Arc<u8>, _: Arc<()>) -> Result<Action, String> {
            Err("boom".into())
        }
        let mut a = reconciled("test-ok", ok);
        let mut b = reconciled("test-fail", fail);
        a(Arc::new(1), Arc::new(())).await.unwrap();
        a(Arc::new(1), Arc::new(())).await.unwrap();
        b(Arc::new(1), Arc::new(())).await.unwrap_err();
        let text = encode();
        assert!(
            text.contains(
                r#"controller_runtime_reconcile_total{controller="test-ok",result="success"} 2"#
            ),
            "{text}"
        );
        assert!(
            text.contains(r#"controller_runtime_reconcile_errors_total{controller="test-fail"} 1"#),
            "{text}"
        );
        assert!(text.contains("# HELP controller_runtime_reconcile_time_seconds"));
    }

    #[test]
    fn bind_addresses_as_karmada_writes_them() {
        assert_eq!(parse_bind_address("0"), Ok(None));
        assert_eq!(
            parse_bind_address(":8080").unwrap().unwrap().to_string(),
            "0.0.0.0:8080"
        );
        assert_eq!(
            parse_bind_address("127.0.0.1:0")
                .unwrap()
                .unwrap()
                .to_string(),
            "127.0.0.1:0"
        );
        assert!(parse_bind_address("localhost").is_err());
    }
}
