//! Review in, response out: the pure part of the webhook. [`handle`] takes the
//! request path and body and answers the HTTP status and JSON body to send,
//! plus an [`Outcome`] for the metrics; nothing here does I/O.
//!
//! Paths are Karmada's (`deploy/webhook-configuration.yaml` of Karmada, listed
//! in [`ROUTES`]): each `/mutate-*` and `/validate-*` path serves an
//! AdmissionReview v1 for one resource, and `/convert` serves the
//! ConversionReview of ResourceBinding and ClusterResourceBinding. The rules
//! themselves live in [`flotilla_api::admission`],
//! [`flotilla_api::work::convert_binding`] and, for ResourceInterpreterCustomizations
//! (which need the stored ones, passed in as [`Lookups`]), [`crate::customization`].
//!
//! What comes back:
//! - mutation: `allowed: true` with a base64 JSONPatch when the object changed;
//! - validation: `allowed: true`, or `allowed: false` with a `status` carrying
//!   Karmada's message, reason `Forbidden`, code 403 and one cause per field error;
//! - an object that does not decode as its kind: `allowed: false`, code 400;
//! - a body that is not a review at all: HTTP 400 with a `Status`; an unknown
//!   path: HTTP 404 with a `Status`.

use base64::Engine;
use flotilla_api::admission::{self, AdmissionError, Operation};
use serde_json::{Value, json};

/// What a path does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// A mutating admission webhook (answers with a JSONPatch).
    Mutate,
    /// A validating admission webhook (allows or denies).
    Validate,
    /// The CRD conversion webhook of the binding kinds.
    Convert,
}

/// One path the webhook serves.
#[derive(Debug, Clone, Copy)]
pub struct Route {
    /// URL path, e.g. `/mutate-propagationpolicy`.
    pub path: &'static str,
    /// What it does.
    pub phase: Phase,
    /// The resource plural its rules are for (`*` for deletion protection).
    pub resource: &'static str,
}

const fn route(path: &'static str, phase: Phase, resource: &'static str) -> Route {
    Route {
        path,
        phase,
        resource,
    }
}

/// Every path of Karmada's webhook configuration, plus `/convert`.
pub const ROUTES: &[Route] = &[
    route(
        "/mutate-propagationpolicy",
        Phase::Mutate,
        "propagationpolicies",
    ),
    route(
        "/mutate-clusterpropagationpolicy",
        Phase::Mutate,
        "clusterpropagationpolicies",
    ),
    route("/mutate-overridepolicy", Phase::Mutate, "overridepolicies"),
    route("/mutate-resourcebinding", Phase::Mutate, "resourcebindings"),
    route(
        "/mutate-clusterresourcebinding",
        Phase::Mutate,
        "clusterresourcebindings",
    ),
    route("/mutate-work", Phase::Mutate, "works"),
    route("/mutate-federatedhpa", Phase::Mutate, "federatedhpas"),
    route(
        "/mutate-multiclusterservice",
        Phase::Mutate,
        "multiclusterservices",
    ),
    route(
        "/validate-propagationpolicy",
        Phase::Validate,
        "propagationpolicies",
    ),
    route(
        "/validate-clusterpropagationpolicy",
        Phase::Validate,
        "clusterpropagationpolicies",
    ),
    route(
        "/validate-overridepolicy",
        Phase::Validate,
        "overridepolicies",
    ),
    route(
        "/validate-clusteroverridepolicy",
        Phase::Validate,
        "clusteroverridepolicies",
    ),
    route(
        "/validate-resourceinterpreterwebhookconfiguration",
        Phase::Validate,
        "resourceinterpreterwebhookconfigurations",
    ),
    route(
        "/validate-resourceinterpretercustomization",
        Phase::Validate,
        "resourceinterpretercustomizations",
    ),
    route(
        "/validate-federatedresourcequota",
        Phase::Validate,
        "federatedresourcequotas",
    ),
    route(
        "/validate-multiclusteringress",
        Phase::Validate,
        "multiclusteringresses",
    ),
    route("/validate-federatedhpa", Phase::Validate, "federatedhpas"),
    route(
        "/validate-cronfederatedhpa",
        Phase::Validate,
        "cronfederatedhpas",
    ),
    route(
        "/validate-multiclusterservice",
        Phase::Validate,
        "multiclusterservices",
    ),
    route("/validate-resourcedeletionprotection", Phase::Validate, "*"),
    route(
        "/validate-resourcebinding",
        Phase::Validate,
        "resourcebindings",
    ),
    route(
        "/validate-clustertaintpolicy",
        Phase::Validate,
        "clustertaintpolicies",
    ),
    route("/convert", Phase::Convert, "*"),
];

/// The route serving `path`, if any.
pub fn find_route(path: &str) -> Option<&'static Route> {
    ROUTES.iter().find(|r| r.path == path)
}

/// How a review ended, for the metrics.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    /// Kind of the object (`PropagationPolicy`), or the review kind when unknown.
    pub kind: String,
    /// `CREATE`, `UPDATE`, `DELETE`, `CONNECT`, or `CONVERT` for conversions.
    pub operation: String,
    /// What was answered.
    pub result: Verdict,
}

/// The answer class of one review.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Allowed unchanged.
    Allowed,
    /// Allowed with a patch.
    Patched,
    /// Denied by a rule (403).
    Denied,
    /// The object or review could not be read (400), or conversion failed.
    Error,
}

impl Verdict {
    /// The metric label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Allowed => "allowed",
            Verdict::Patched => "patched",
            Verdict::Denied => "denied",
            Verdict::Error => "error",
        }
    }
}

/// What to send back.
#[derive(Debug, Clone)]
pub struct Reply {
    /// HTTP status code.
    pub status: u16,
    /// JSON body.
    pub body: Value,
    /// The review's outcome; `None` when no review was read.
    pub outcome: Option<Outcome>,
}

/// A Kubernetes `Status` body for an HTTP-level failure.
pub fn status_body(code: u16, reason: &str, message: &str) -> Value {
    json!({
        "kind": "Status", "apiVersion": "v1", "metadata": {},
        "status": "Failure", "message": message, "reason": reason, "code": code,
    })
}

fn http_error(code: u16, reason: &str, message: String) -> Reply {
    Reply {
        status: code,
        body: status_body(code, reason, &message),
        outcome: None,
    }
}

/// Switches of the rules, as karmada-webhook's flags.
#[derive(Debug, Clone, Copy, Default)]
pub struct Options {
    /// `--allow-no-execute-taint-policy`: accept ClusterTaintPolicies with NoExecute taints.
    pub allow_no_execute_taint_policy: bool,
}

/// What the rules read of the cluster, fetched by the server before the
/// review is handled (see [`needs_customizations`]).
#[derive(Debug, Clone, Default)]
pub struct Lookups {
    /// The stored ResourceInterpreterCustomizations, or why they could not be
    /// listed; `None` when nothing was fetched.
    pub customizations: Option<Result<Vec<Value>, String>>,
}

/// Whether a review at `path` needs the stored ResourceInterpreterCustomizations.
pub fn needs_customizations(path: &str) -> bool {
    find_route(path).is_some_and(|r| {
        r.phase == Phase::Validate && r.resource == "resourceinterpretercustomizations"
    })
}

/// Answers one request to `path` with `body` under the default [`Options`].
/// `new_id` is the UUID used when a permanent-id label has to be set.
pub fn handle(path: &str, body: &[u8], new_id: &str) -> Reply {
    handle_with(path, body, new_id, &Options::default())
}

/// [`handle`] with explicit [`Options`] and no cluster lookups.
pub fn handle_with(path: &str, body: &[u8], new_id: &str, options: &Options) -> Reply {
    handle_in(path, body, new_id, options, &Lookups::default())
}

/// [`handle_with`] with what was looked up in the cluster.
pub fn handle_in(
    path: &str,
    body: &[u8],
    new_id: &str,
    options: &Options,
    lookups: &Lookups,
) -> Reply {
    let Some(route) = find_route(path) else {
        return http_error(
            404,
            "NotFound",
            format!("the webhook serves no path {path:?}"),
        );
    };
    let review: Value = match serde_json::from_slice(body) {
        Ok(v) => v,
        Err(e) => return http_error(400, "BadRequest", format!("the body is not JSON: {e}")),
    };
    match route.phase {
        Phase::Convert => convert(&review),
        Phase::Mutate | Phase::Validate => admit(route, &review, new_id, options, lookups),
    }
}

fn str_at<'a>(v: &'a Value, pointer: &str) -> &'a str {
    v.pointer(pointer).and_then(Value::as_str).unwrap_or("")
}

fn admit(
    route: &Route,
    review: &Value,
    new_id: &str,
    options: &Options,
    lookups: &Lookups,
) -> Reply {
    let api_version = str_at(review, "/apiVersion");
    if str_at(review, "/kind") != "AdmissionReview"
        || !matches!(
            api_version,
            "admission.k8s.io/v1" | "admission.k8s.io/v1beta1"
        )
    {
        return http_error(
            400,
            "BadRequest",
            format!(
                "expected an AdmissionReview of admission.k8s.io/v1, got kind {:?} apiVersion {api_version:?}",
                str_at(review, "/kind")
            ),
        );
    }
    let Some(request) = review.get("request").filter(|r| r.is_object()) else {
        return http_error(
            400,
            "BadRequest",
            "the AdmissionReview has no request".into(),
        );
    };
    let uid = str_at(request, "/uid");
    if uid.is_empty() {
        return http_error(
            400,
            "BadRequest",
            "the AdmissionReview request has no uid".into(),
        );
    }
    let operation_text = str_at(request, "/operation");
    let mut kind = str_at(request, "/kind/kind").to_string();
    if kind.is_empty() {
        kind = route.resource.to_string();
    }
    let outcome = |result| Outcome {
        kind: kind.clone(),
        operation: operation_text.to_string(),
        result,
    };
    let answer = |response: Value, result: Verdict| Reply {
        status: 200,
        body: json!({"apiVersion": api_version, "kind": "AdmissionReview", "response": response}),
        outcome: Some(outcome(result)),
    };
    let bad = |message: String| {
        answer(
            json!({"uid": uid, "allowed": false, "status": {
                "metadata": {}, "status": "Failure", "message": message, "reason": "BadRequest", "code": 400,
            }}),
            Verdict::Error,
        )
    };
    let internal = |message: String| {
        answer(
            json!({"uid": uid, "allowed": false, "status": {
                "metadata": {}, "status": "Failure", "message": message, "reason": "InternalError", "code": 500,
            }}),
            Verdict::Error,
        )
    };
    let Some(operation) = Operation::parse(operation_text) else {
        return bad(format!("unknown operation {operation_text:?}"));
    };
    let null = Value::Null;
    let object = request.get("object").unwrap_or(&null);
    let old_object = request.get("oldObject").filter(|o| !o.is_null());
    let object = match (operation, object) {
        // On DELETE the object being deleted arrives as the old object.
        (Operation::Delete, Value::Null) => old_object.unwrap_or(&null),
        (_, o) => o,
    };
    if object.is_null() && operation != Operation::Delete {
        return bad(format!("the {operation_text} request carries no object"));
    }
    let req = admission::Request {
        resource: route.resource,
        operation,
        namespace: str_at(request, "/namespace"),
        object,
        old_object,
        new_id,
        allow_no_execute_taint_policy: options.allow_no_execute_taint_policy,
    };
    let allowed = json!({"uid": uid, "allowed": true});
    match route.phase {
        Phase::Mutate => match admission::mutate(&req) {
            Ok(Some(mutated)) => match patch(object, &mutated) {
                Some(p) => {
                    let mut response = allowed;
                    response["patchType"] = json!("JSONPatch");
                    response["patch"] = json!(p);
                    answer(response, Verdict::Patched)
                }
                None => answer(allowed, Verdict::Allowed),
            },
            Ok(None) => answer(allowed, Verdict::Allowed),
            Err(e) => denial(uid, e, answer),
        },
        _ if route.resource == "resourceinterpretercustomizations"
            && matches!(operation, Operation::Create | Operation::Update) =>
        {
            let customizations = match &lookups.customizations {
                Some(Ok(list)) => list,
                Some(Err(e)) => {
                    return internal(format!("listing ResourceInterpreterCustomizations: {e}"));
                }
                None => {
                    return internal(
                        "the webhook has no API server connection to list ResourceInterpreterCustomizations (give it --kubeconfig)".into(),
                    );
                }
            };
            match validate_customization(object, customizations) {
                Ok(()) => answer(allowed, Verdict::Allowed),
                Err(e) => denial(uid, e, answer),
            }
        }
        _ => match admission::validate(&req) {
            Ok(()) => answer(allowed, Verdict::Allowed),
            Err(e) => denial(uid, e, answer),
        },
    }
}

/// Decodes the customization under review and the stored ones, then admits it.
fn validate_customization(object: &Value, stored: &[Value]) -> Result<(), AdmissionError> {
    let decode = |v: &Value| {
        serde_json::from_value::<flotilla_api::config::ResourceInterpreterCustomization>(v.clone())
    };
    let new = decode(object).map_err(|e| AdmissionError::BadRequest(e.to_string()))?;
    // A stored object that no longer decodes cannot conflict in a way Karmada would see.
    let existing: Vec<_> = stored.iter().filter_map(|v| decode(v).ok()).collect();
    crate::customization::validate(&new, &existing)
}

fn denial(uid: &str, e: AdmissionError, answer: impl Fn(Value, Verdict) -> Reply) -> Reply {
    let status = match e {
        AdmissionError::BadRequest(message) => {
            return answer(
                json!({"uid": uid, "allowed": false, "status": {
                    "metadata": {}, "status": "Failure", "message": message, "reason": "BadRequest", "code": 400,
                }}),
                Verdict::Error,
            );
        }
        AdmissionError::Denied { message, causes } => {
            let mut status = json!({
                "metadata": {}, "status": "Failure", "message": message, "reason": "Forbidden", "code": 403,
            });
            if !causes.is_empty() {
                let causes: Vec<Value> = causes
                    .iter()
                    .map(|c| json!({"type": c.reason(), "message": c.message(), "field": c.field}))
                    .collect();
                status["details"] = json!({ "causes": causes });
            }
            status
        }
    };
    answer(
        json!({"uid": uid, "allowed": false, "status": status}),
        Verdict::Denied,
    )
}

/// The base64 JSONPatch taking `before` to `after`, or `None` when they are
/// equal. Removals are kept only inside a Work's manifests (where Karmada
/// prunes fields); elsewhere a field missing from `after` is one the typed
/// round trip did not know, and stays as the client sent it.
pub fn patch(before: &Value, after: &Value) -> Option<String> {
    let ops: Vec<json_patch::PatchOperation> = json_patch::diff(before, after)
        .0
        .into_iter()
        .filter(|op| match op {
            json_patch::PatchOperation::Remove(r) => {
                r.path.as_str().starts_with("/spec/workload/manifests/")
            }
            _ => true,
        })
        .collect();
    if ops.is_empty() {
        return None;
    }
    let bytes = serde_json::to_vec(&json_patch::Patch(ops)).ok()?;
    Some(base64::engine::general_purpose::STANDARD.encode(bytes))
}

fn convert(review: &Value) -> Reply {
    let api_version = str_at(review, "/apiVersion");
    if str_at(review, "/kind") != "ConversionReview"
        || !matches!(
            api_version,
            "apiextensions.k8s.io/v1" | "apiextensions.k8s.io/v1beta1"
        )
    {
        return http_error(
            400,
            "BadRequest",
            format!(
                "expected a ConversionReview of apiextensions.k8s.io/v1, got kind {:?} apiVersion {api_version:?}",
                str_at(review, "/kind")
            ),
        );
    }
    let Some(request) = review.get("request").filter(|r| r.is_object()) else {
        return http_error(
            400,
            "BadRequest",
            "the ConversionReview has no request".into(),
        );
    };
    let uid = str_at(request, "/uid");
    let desired = str_at(request, "/desiredAPIVersion");
    let objects = request
        .get("objects")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default();
    let kind = objects
        .first()
        .map(|o| str_at(o, "/kind"))
        .filter(|k| !k.is_empty())
        .unwrap_or("ConversionReview")
        .to_string();
    let converted: Result<Vec<Value>, String> = if desired.is_empty() {
        Err("the ConversionReview request has no desiredAPIVersion".into())
    } else {
        objects
            .iter()
            .map(|o| flotilla_api::work::convert_binding(o, desired).map_err(|e| e.to_string()))
            .collect()
    };
    let (response, result) = match converted {
        Ok(objects) => (
            json!({"uid": uid, "convertedObjects": objects, "result": {"metadata": {}, "status": "Success"}}),
            Verdict::Allowed,
        ),
        Err(message) => (
            json!({"uid": uid, "convertedObjects": [], "result": {"metadata": {}, "status": "Failure", "message": message}}),
            Verdict::Error,
        ),
    };
    Reply {
        status: 200,
        body: json!({"apiVersion": api_version, "kind": "ConversionReview", "response": response}),
        outcome: Some(Outcome {
            kind,
            operation: "CONVERT".into(),
            result,
        }),
    }
}

#[cfg(test)]
mod tests;
