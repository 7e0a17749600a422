//! The webhook's Prometheus metrics, served as text at `/metrics`:
//!
//! - `webhook_admission_requests_total{kind,operation,result}` — every review
//!   answered; `result` is `allowed`, `patched`, `denied` or `error`;
//! - `webhook_admission_rejections_total{kind,operation}` — the denials alone;
//! - `webhook_admission_duration_seconds{kind,operation}` — handling time of a
//!   review, from the end of the body to the response;
//! - `webhook_http_requests_total{path,code}` — every HTTP request, reviews or not.
//!
//! `kind` is the object's kind (`PropagationPolicy`), `operation` the
//! admission operation or `CONVERT`.

use prometheus::{Encoder, HistogramOpts, HistogramVec, IntCounterVec, Opts, Registry};

use crate::handler::{Outcome, Verdict};

/// The metric families of one webhook server.
#[derive(Clone)]
pub struct Metrics {
    registry: Registry,
    requests: IntCounterVec,
    rejections: IntCounterVec,
    duration: HistogramVec,
    http: IntCounterVec,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// Registers the families in a fresh registry.
    pub fn new() -> Self {
        let registry = Registry::new();
        let requests = IntCounterVec::new(
            Opts::new(
                "webhook_admission_requests_total",
                "Admission and conversion reviews answered, by kind, operation and result.",
            ),
            &["kind", "operation", "result"],
        )
        .expect("valid metric definition");
        let rejections = IntCounterVec::new(
            Opts::new(
                "webhook_admission_rejections_total",
                "Admission reviews denied, by kind and operation.",
            ),
            &["kind", "operation"],
        )
        .expect("valid metric definition");
        let duration = HistogramVec::new(
            HistogramOpts::new(
                "webhook_admission_duration_seconds",
                "Time to answer a review, by kind and operation.",
            )
            .buckets(vec![
                0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0,
            ]),
            &["kind", "operation"],
        )
        .expect("valid metric definition");
        let http = IntCounterVec::new(
            Opts::new(
                "webhook_http_requests_total",
                "HTTP requests served, by path and status code.",
            ),
            &["path", "code"],
        )
        .expect("valid metric definition");
        for c in [&requests, &rejections, &http] {
            registry
                .register(Box::new(c.clone()))
                .expect("metric registered once");
        }
        registry
            .register(Box::new(duration.clone()))
            .expect("metric registered once");
        Metrics {
            registry,
            requests,
            rejections,
            duration,
            http,
        }
    }

    /// Records one answered review and how long it took.
    pub fn observe(&self, outcome: &Outcome, seconds: f64) {
        let (kind, op) = (outcome.kind.as_str(), outcome.operation.as_str());
        self.requests
            .with_label_values(&[kind, op, outcome.result.as_str()])
            .inc();
        if outcome.result == Verdict::Denied {
            self.rejections.with_label_values(&[kind, op]).inc();
        }
        self.duration
            .with_label_values(&[kind, op])
            .observe(seconds);
    }

    /// Records one HTTP request. Unknown paths are counted under `other`, so
    /// that scanning clients cannot grow the label set.
    pub fn http_request(&self, path: &str, code: u16) {
        let known = crate::handler::find_route(path).is_some()
            || matches!(path, "/healthz" | "/readyz" | "/livez" | "/metrics");
        self.http
            .with_label_values(&[if known { path } else { "other" }, &code.to_string()])
            .inc();
    }

    /// The Prometheus text exposition of every family.
    pub fn render(&self) -> String {
        let mut out = Vec::new();
        let encoder = prometheus::TextEncoder::new();
        if let Err(e) = encoder.encode(&self.registry.gather(), &mut out) {
            tracing::warn!(error = %e, "encoding metrics failed");
        }
        String::from_utf8_lossy(&out).into_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_and_renders() {
        let m = Metrics::new();
        let denied = Outcome {
            kind: "PropagationPolicy".into(),
            operation: "CREATE".into(),
            result: Verdict::Denied,
        };
        m.observe(&denied, 0.0003);
        m.observe(
            &Outcome {
                result: Verdict::Patched,
                ..denied.clone()
            },
            0.0002,
        );
        m.http_request("/validate-propagationpolicy", 200);
        m.http_request("/wp-admin", 404);
        let text = m.render();
        assert!(text.contains(
            "webhook_admission_requests_total{kind=\"PropagationPolicy\",operation=\"CREATE\",result=\"denied\"} 1"
        ), "{text}");
        assert!(text.contains(
            "webhook_admission_rejections_total{kind=\"PropagationPolicy\",operation=\"CREATE\"} 1"
        ), "{text}");
        assert!(text.contains(
            "webhook_admission_duration_seconds_count{kind=\"PropagationPolicy\",operation=\"CREATE\"} 2"
        ), "{text}");
        assert!(
            text.contains("webhook_http_requests_total{code=\"404\",path=\"other\"} 1"),
            "{text}"
        );
    }
}
