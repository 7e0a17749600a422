//! The AdmissionReview wire format (admission.k8s.io/v1, and v1beta1 for webhooks
//! that only accept it): building the request and checking the answer exactly as
//! kube-apiserver does.

use base64::Engine;
use serde_json::{Map, Value, json};

use super::Attributes;
use super::matching::Invocation;
use crate::status::{ApiError, Cause, Details};

/// The AdmissionReview version sent to a webhook: the first of its
/// `admissionReviewVersions` this server speaks.
pub fn pick_version(accepted: &[&str]) -> Option<&'static str> {
    accepted.iter().find_map(|v| match *v {
        "v1" => Some("v1"),
        "v1beta1" => Some("v1beta1"),
        _ => None,
    })
}

/// The AdmissionReview sent to one webhook.
pub fn request(
    version: &str,
    uid: &str,
    attrs: &Attributes<'_>,
    invocation: &Invocation,
    object: Option<&Value>,
    old_object: Option<&Value>,
) -> Value {
    let mut req = Map::new();
    req.insert("uid".into(), uid.into());
    req.insert(
        "kind".into(),
        json!({"group": invocation.kind.group, "version": invocation.kind.version, "kind": invocation.kind.kind}),
    );
    req.insert(
        "resource".into(),
        json!({"group": invocation.resource.group, "version": invocation.resource.version, "resource": invocation.resource.resource}),
    );
    if !invocation.subresource.is_empty() {
        req.insert("subResource".into(), invocation.subresource.clone().into());
    }
    let kind = attrs.kind();
    let resource = attrs.resource();
    req.insert(
        "requestKind".into(),
        json!({"group": kind.group, "version": kind.version, "kind": kind.kind}),
    );
    req.insert(
        "requestResource".into(),
        json!({"group": resource.group, "version": resource.version, "resource": resource.resource}),
    );
    if let Some(sub) = attrs.subresource.filter(|s| !s.is_empty()) {
        req.insert("requestSubResource".into(), sub.into());
    }
    if !attrs.name.is_empty() {
        req.insert("name".into(), attrs.name.into());
    }
    if let Some(ns) = attrs.review_namespace().filter(|n| !n.is_empty()) {
        req.insert("namespace".into(), ns.into());
    }
    req.insert("operation".into(), attrs.operation.as_str().into());
    let mut user = Map::new();
    if !attrs.user.name.is_empty() {
        user.insert("username".into(), attrs.user.name.clone().into());
    }
    if !attrs.user.uid.is_empty() {
        user.insert("uid".into(), attrs.user.uid.clone().into());
    }
    if !attrs.user.groups.is_empty() {
        user.insert("groups".into(), attrs.user.groups.clone().into());
    }
    if !attrs.user.extra.is_empty() {
        user.insert(
            "extra".into(),
            serde_json::to_value(&attrs.user.extra).unwrap_or_default(),
        );
    }
    req.insert("userInfo".into(), Value::Object(user));
    req.insert("object".into(), object.cloned().unwrap_or(Value::Null));
    req.insert(
        "oldObject".into(),
        old_object.cloned().unwrap_or(Value::Null),
    );
    req.insert("dryRun".into(), attrs.dry_run.into());
    req.insert("options".into(), attrs.review_options());
    json!({
        "apiVersion": format!("admission.k8s.io/{version}"),
        "kind": "AdmissionReview",
        "request": Value::Object(req),
    })
}

/// A checked webhook answer.
#[derive(Debug, Default)]
pub struct Response {
    pub allowed: bool,
    /// The decoded JSON patch, if any (mutating webhooks only).
    pub patch: Option<Value>,
    /// `response.status`.
    pub status: Option<Value>,
    pub warnings: Vec<String>,
}

/// kube-apiserver's `VerifyAdmissionResponse`, plus patch decoding. Errors are the
/// cause text (wrapped by the caller as a call failure).
pub fn verify(
    version: &str,
    uid: &str,
    mutating: bool,
    answer: &Value,
) -> Result<Response, String> {
    let response = answer
        .get("response")
        .filter(|r| !r.is_null())
        .ok_or_else(|| {
            "received invalid webhook response: webhook response was absent".to_string()
        })?;
    let invalid = |m: String| format!("received invalid webhook response: {m}");
    let patch = response
        .get("patch")
        .and_then(Value::as_str)
        .filter(|p| !p.is_empty());
    let patch_type = response.get("patchType").filter(|p| !p.is_null());
    if version == "v1" {
        let got_uid = response.get("uid").and_then(Value::as_str).unwrap_or("");
        if got_uid != uid {
            return Err(invalid(format!(
                "expected response.uid=\"{uid}\", got \"{got_uid}\""
            )));
        }
        let api_version = answer
            .get("apiVersion")
            .and_then(Value::as_str)
            .unwrap_or("");
        let kind = answer.get("kind").and_then(Value::as_str).unwrap_or("");
        if api_version != "admission.k8s.io/v1" || kind != "AdmissionReview" {
            return Err(invalid(format!(
                "expected webhook response of admission.k8s.io/v1, Kind=AdmissionReview, got {api_version}, Kind={kind}"
            )));
        }
        if mutating {
            match (patch.is_some(), patch_type) {
                (true, None) => {
                    return Err(invalid(
                        "webhook returned response.patch but not response.patchType".into(),
                    ));
                }
                (false, Some(_)) => {
                    return Err(invalid(
                        "webhook returned response.patchType but not response.patch".into(),
                    ));
                }
                _ => {}
            }
            if let Some(t) = patch_type {
                let t = t.as_str().unwrap_or("");
                if t.is_empty() {
                    return Err(invalid(format!(
                        "webhook returned invalid response.patchType of \"{t}\""
                    )));
                }
                if t != "JSONPatch" {
                    return Err(format!("unsupported patch type \"{t}\""));
                }
            }
        } else {
            if patch.is_some() {
                return Err(invalid(
                    "validating webhook may not return response.patch".into(),
                ));
            }
            if patch_type.is_some() {
                return Err(invalid(
                    "validating webhook may not return response.patchType".into(),
                ));
            }
        }
    }
    // v1beta1 answers carry no patchType: a patch is a JSONPatch.
    let patch = match patch.filter(|_| mutating) {
        None => None,
        Some(encoded) => {
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(encoded)
                .map_err(|e| format!("received undecodable patch in webhook response: {e}"))?;
            let value: Value = serde_json::from_slice(&bytes)
                .map_err(|e| format!("received undecodable patch in webhook response: {e}"))?;
            if !value.is_array() {
                return Err(
                    "received undecodable patch in webhook response: a JSON patch is an array of operations"
                        .into(),
                );
            }
            Some(value)
        }
    };
    Ok(Response {
        allowed: response
            .get("allowed")
            .and_then(Value::as_bool)
            .unwrap_or(false),
        patch,
        status: response.get("status").filter(|s| !s.is_null()).cloned(),
        warnings: response
            .get("warnings")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .map(String::from)
            .collect(),
    })
}

/// The `StatusReason`s Kubernetes defines; others come out as an empty reason.
fn known_reason(reason: &str) -> &'static str {
    const REASONS: &[&str] = &[
        "Unauthorized",
        "Forbidden",
        "NotFound",
        "AlreadyExists",
        "Conflict",
        "Gone",
        "Invalid",
        "ServerTimeout",
        "StoreReadError",
        "Timeout",
        "TooManyRequests",
        "BadRequest",
        "MethodNotAllowed",
        "NotAcceptable",
        "RequestEntityTooLarge",
        "UnsupportedMediaType",
        "InternalError",
        "Expired",
        "ServiceUnavailable",
    ];
    REASONS
        .iter()
        .find(|r| **r == reason)
        .copied()
        .unwrap_or("")
}

/// kube-apiserver's `ToStatusErr`: a denial as the error the client sees. The
/// webhook's `status` is kept (code raised to at least 400, reason, details) and
/// its message prefixed with `admission webhook "NAME" denied the request`.
pub fn denial(webhook: &str, status: Option<&Value>) -> ApiError {
    let denied_by = format!("admission webhook \"{webhook}\" denied the request");
    let field = |f: &str| {
        status
            .and_then(|s| s.get(f))
            .and_then(Value::as_str)
            .unwrap_or("")
    };
    let code = status
        .and_then(|s| s.get("code"))
        .and_then(Value::as_u64)
        .and_then(|c| u16::try_from(c).ok())
        .filter(|c| *c >= 400)
        .unwrap_or(400);
    let message = if !field("message").is_empty() {
        format!("{denied_by}: {}", field("message"))
    } else if !field("reason").is_empty() {
        format!("{denied_by}: {}", field("reason"))
    } else {
        format!("{denied_by} without explanation")
    };
    let mut error = ApiError::new(code, known_reason(field("reason")), message);
    if let Some(d) = status
        .and_then(|s| s.get("details"))
        .filter(|d| d.is_object())
    {
        let s = |f: &str| d.get(f).and_then(Value::as_str).unwrap_or("").to_string();
        error.details = Some(Details {
            name: s("name"),
            group: s("group"),
            kind: s("kind"),
            causes: d
                .get("causes")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .map(|c| {
                    let f = |k: &str| c.get(k).and_then(Value::as_str).unwrap_or("").to_string();
                    Cause::new(f("reason"), f("field"), f("message"))
                })
                .collect(),
            retry_after_seconds: d
                .get("retryAfterSeconds")
                .and_then(Value::as_u64)
                .and_then(|s| u32::try_from(s).ok()),
        });
    }
    error
}
