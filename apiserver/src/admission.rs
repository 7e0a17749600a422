//! Dynamic admission: calling the webhooks of MutatingWebhookConfiguration and
//! ValidatingWebhookConfiguration objects the way kube-apiserver does.
//!
//! This is a library the store calls between decoding a request and writing it:
//! [`mutate`] first (webhooks in configuration-name order, then list order; each
//! JSONPatch applied to the object the next webhook sees; one reinvocation round for
//! `reinvocationPolicy: IfNeeded`), then the store's own validation, then
//! [`validate`] (all matching validating webhooks called in parallel). Both read the
//! configurations and namespaces from one storage [`Snapshot`] and take the request
//! as [`Attributes`].
//!
//! What comes out:
//! - success: the (mutated) object and the webhooks' `warnings`, to be sent as
//!   `Warning: 299 - "..."` headers;
//! - failure: a [`Rejection`] — the [`ApiError`] to answer with plus the warnings
//!   gathered before it (kube-apiserver sends those with error responses too).
//!   A denial keeps the webhook's `status` (code raised to at least 400, reason,
//!   details) with the message `admission webhook "NAME" denied the request: MESSAGE`
//!   (or `... denied the request without explanation`). A webhook that cannot be
//!   called (connection refused, timeout, bad TLS, invalid answer) fails the request
//!   with `500 Internal error occurred: failed calling webhook "NAME": <cause>`
//!   under `failurePolicy: Fail` (the default), and is skipped with a `warn` log
//!   under `Ignore`. A dry run reaching a webhook whose `sideEffects` is not
//!   `None`/`NoneOnDryRun` is `400 admission webhook "NAME" does not support dry run`
//!   whatever the failure policy.
//!
//! Differences from kube-apiserver, on purpose:
//! - `matchConditions` (CEL, see [`conditions`]) offer `object`, `oldObject` and
//!   `request` but not `authorizer`, and are evaluated over the object in the
//!   request's version (kube-apiserver converts it to the webhook's version first).
//! - `matchPolicy: Equivalent` (the v1 default) matches the same group/resource in
//!   the other served versions listed in [`Attributes::other_versions`]; the object is
//!   then sent in that version (CRD conversion: `apiVersion` rewrite, or the CRD's
//!   conversion webhook) and a mutated object converted back. Resources renamed
//!   across groups (kube's `extensions` → `apps` equivalences) are not known.
//! - A denial whose `status.reason` is not a Kubernetes `StatusReason` is answered
//!   with an empty reason (the message is kept).
//! - Validating webhook failures are reported in webhook order (kube-apiserver
//!   reports whichever finishes first).
//!
//! Other behaviour worth knowing: admission of the webhook configuration kinds
//! themselves never reaches webhooks; a patch returned for a request without an
//! object (DELETE) is a 500; a JSONPatch that does not apply is a 500 whatever the
//! failure policy (as in kube-apiserver). Webhook calls carry `?timeout=Ns`.
//!
//! A store's create, in outline:
//!
//! ```no_run
//! # use flotilla_apiserver::admission::{self, Attributes, Operation};
//! # async fn create(
//! #     snapshot: &flotilla_apiserver::storage::Snapshot,
//! #     info: &flotilla_apiserver::registry::ResourceInfo,
//! #     user: &flotilla_apiserver::server::auth::User,
//! #     object: serde_json::Value,
//! # ) -> Result<(), flotilla_apiserver::status::ApiError> {
//! let mut attrs = Attributes::new(Operation::Create, info, "web", user);
//! attrs.namespace = Some("default");
//! let admitted = admission::mutate(snapshot, &attrs, Some(object)).await?;
//! // ... defaulting and the kind's own validation of `admitted.object` ...
//! attrs.object = admitted.object.as_ref();
//! let more_warnings = admission::validate(snapshot, &attrs).await?;
//! // ... store, answer with Warning headers from admitted.warnings + more_warnings ...
//! # Ok(())
//! # }
//! ```
//!
//! Matching lives in [`matching`], the wire format in [`review`]; HTTPS calls go
//! through [`crate::webhook_client`].

pub mod conditions;
pub mod matching;
pub mod review;

#[cfg(test)]
mod tests;

use std::collections::HashSet;
use std::time::Duration;

use serde_json::{Value, json};

use crate::registry::{ResourceInfo, conversion, crd};
use crate::server::auth::User;
use crate::status::{ApiError, Cause, Details};
use crate::storage::Snapshot;
use crate::webhook_client;
use matching::{Gvk, Gvr, Hook, Invocation};

/// The admission operation of a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operation {
    Create,
    Update,
    Delete,
    Connect,
}

impl Operation {
    /// The name used in AdmissionReviews and webhook rules (`CREATE`, ...).
    pub fn as_str(&self) -> &'static str {
        match self {
            Operation::Create => "CREATE",
            Operation::Update => "UPDATE",
            Operation::Delete => "DELETE",
            Operation::Connect => "CONNECT",
        }
    }
}

/// One request, as admission sees it.
#[derive(Debug, Clone, Copy)]
pub struct Attributes<'a> {
    pub operation: Operation,
    /// The resource addressed (for a subresource, its parent resource).
    pub info: &'a ResourceInfo,
    /// `status`, `scale`, `exec`, ... or none.
    pub subresource: Option<&'a str>,
    /// The request's namespace (none for cluster-scoped resources; for Namespace
    /// objects it may be none, the name is used where kube-apiserver would).
    pub namespace: Option<&'a str>,
    /// The object's name (empty when the server generates it).
    pub name: &'a str,
    pub user: &'a User,
    pub dry_run: bool,
    /// The new object, for [`validate`] (for [`mutate`] it is passed separately).
    /// None for DELETE; the connect options' object for CONNECT is `options`.
    pub object: Option<&'a Value>,
    /// The stored object, for UPDATE and DELETE.
    pub old_object: Option<&'a Value>,
    /// `CreateOptions`/`UpdateOptions`/`DeleteOptions` or the CONNECT options object;
    /// when none, an empty options object of the operation's kind is sent.
    pub options: Option<&'a Value>,
    /// Other served versions of the same group/resource, for
    /// `matchPolicy: Equivalent` (empty: only the request's version matches).
    pub other_versions: &'a [String],
}

impl<'a> Attributes<'a> {
    /// Attributes with no subresource, namespace, objects or options.
    pub fn new(
        operation: Operation,
        info: &'a ResourceInfo,
        name: &'a str,
        user: &'a User,
    ) -> Self {
        Attributes {
            operation,
            info,
            subresource: None,
            namespace: None,
            name,
            user,
            dry_run: false,
            object: None,
            old_object: None,
            options: None,
            other_versions: &[],
        }
    }

    /// The request's group/version/resource.
    pub fn resource(&self) -> Gvr {
        Gvr {
            group: self.info.group.clone(),
            version: self.info.version.clone(),
            resource: self.info.plural.clone(),
        }
    }

    /// The request's kind: `autoscaling/v1 Scale` for `scale`, the options' kind for
    /// CONNECT, else the resource's kind.
    pub fn kind(&self) -> Gvk {
        if self.subresource == Some("scale") {
            return Gvk {
                group: "autoscaling".into(),
                version: "v1".into(),
                kind: "Scale".into(),
            };
        }
        if self.operation == Operation::Connect
            && let Some(options) = self.options
            && let (Some(api_version), Some(kind)) = (
                options.get("apiVersion").and_then(Value::as_str),
                options.get("kind").and_then(Value::as_str),
            )
        {
            let (group, version) = api_version.rsplit_once('/').unwrap_or(("", api_version));
            return Gvk {
                group: group.into(),
                version: version.into(),
                kind: kind.into(),
            };
        }
        Gvk {
            group: self.info.group.clone(),
            version: self.info.version.clone(),
            kind: self.info.kind.clone(),
        }
    }

    /// Whether this is a core Namespace.
    pub fn is_namespace(&self) -> bool {
        self.info.group.is_empty() && self.info.plural == "namespaces"
    }

    /// The namespace kube-apiserver reports: for a Namespace object its own name
    /// (except on CREATE, where the URL names none).
    pub fn review_namespace(&self) -> Option<&'a str> {
        match self.namespace.filter(|n| !n.is_empty()) {
            Some(ns) => Some(ns),
            None if self.is_namespace()
                && self.operation != Operation::Create
                && !self.name.is_empty() =>
            {
                Some(self.name)
            }
            None => None,
        }
    }

    /// `request.options`.
    pub fn review_options(&self) -> Value {
        if let Some(o) = self.options {
            return o.clone();
        }
        let kind = match self.operation {
            Operation::Create => "CreateOptions",
            Operation::Update => "UpdateOptions",
            Operation::Delete => "DeleteOptions",
            Operation::Connect => return Value::Null,
        };
        let mut options = json!({"kind": kind, "apiVersion": "meta.k8s.io/v1"});
        if self.dry_run {
            options["dryRun"] = json!(["All"]);
        }
        options
    }
}

/// The result of [`mutate`].
#[derive(Debug, Clone, PartialEq)]
pub struct Admitted {
    /// The object after every patch (none for DELETE/CONNECT without an object).
    pub object: Option<Value>,
    /// Webhook warnings, in call order.
    pub warnings: Vec<String>,
}

/// A request refused by admission, with the warnings gathered before the refusal.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{error}")]
pub struct Rejection {
    pub error: ApiError,
    pub warnings: Vec<String>,
}

impl From<Rejection> for ApiError {
    fn from(r: Rejection) -> Self {
        r.error
    }
}

pub type Result<T, E = Rejection> = std::result::Result<T, E>;

/// How one webhook call went wrong.
#[derive(Debug)]
enum HookError {
    /// The webhook could not be called or answered nonsense (kube's
    /// `ErrCallingWebhook`): subject to `failurePolicy`. The cause text follows
    /// `failed calling webhook "NAME": `.
    Call(String),
    /// The request is refused whatever the failure policy.
    Refuse(ApiError),
}

/// `500 Internal error occurred: CAUSE` with the cause in `details.causes`.
fn internal_error(cause: &str) -> ApiError {
    let mut e = ApiError::internal(format!("Internal error occurred: {cause}"));
    e.details = Some(Details {
        causes: vec![Cause::new("", "", cause)],
        ..Default::default()
    });
    e
}

/// The URL shown in call errors, with kube-apiserver's `?timeout=Ns`.
fn display_url(client_config: &Value, timeout: u64) -> String {
    let base = match client_config.get("url").and_then(Value::as_str) {
        Some(url) => url.to_string(),
        None => {
            let s = client_config.get("service");
            let f = |k: &str, d: &'static str| {
                s.and_then(|s| s.get(k))
                    .and_then(Value::as_str)
                    .unwrap_or(d)
                    .to_string()
            };
            let port = s
                .and_then(|s| s.get("port"))
                .and_then(Value::as_u64)
                .unwrap_or(443);
            format!(
                "https://{}.{}.svc:{port}{}",
                f("name", ""),
                f("namespace", "default"),
                f("path", "")
            )
        }
    };
    with_timeout(&base, timeout)
}

fn with_timeout(url: &str, timeout: u64) -> String {
    let sep = if url.contains('?') { '&' } else { '?' };
    format!("{url}{sep}timeout={timeout}s")
}

/// Converts `object` to `version` of the request's group when it is an object of
/// the request's resource (for `matchPolicy: Equivalent`).
async fn to_version(
    snapshot: &Snapshot,
    info: &ResourceInfo,
    object: &Value,
    from: &str,
    version: &str,
) -> Result<Value, ApiError> {
    let target = if info.group.is_empty() {
        version.to_string()
    } else {
        format!("{}/{version}", info.group)
    };
    let current = object.get("apiVersion").and_then(Value::as_str);
    if current == Some(target.as_str()) || current != Some(from) {
        return Ok(object.clone());
    }
    match info.custom.as_ref().map(|c| &c.conversion) {
        Some(crd::Conversion::Webhook { client_config, .. }) => {
            conversion::webhook(client_config, snapshot, vec![object.clone()], &target)
                .await
                .map_err(|e| internal_error(&format!("conversion to {target}: {e}")))?
                .pop()
                .ok_or_else(|| internal_error("conversion webhook returned no object"))
        }
        _ => Ok(crd::convert_none(object, &info.group, version)),
    }
}

/// Sends one AdmissionReview and checks the answer. Returns the answer and the
/// object as sent (in the invocation's version).
async fn call(
    snapshot: &Snapshot,
    attrs: &Attributes<'_>,
    hook: &Hook<'_>,
    invocation: &Invocation,
    object: Option<&Value>,
    mutating: bool,
) -> Result<(review::Response, Option<Value>), HookError> {
    let name = hook.name();
    if attrs.dry_run {
        match hook.side_effects() {
            None => return Err(HookError::Call("Webhook SideEffects is nil".into())),
            Some("None" | "NoneOnDryRun") => {}
            Some(_) => {
                return Err(HookError::Refuse(ApiError::bad_request(format!(
                    "admission webhook \"{name}\" does not support dry run"
                ))));
            }
        }
    }
    let Some(version) = review::pick_version(&hook.review_versions()) else {
        return Err(HookError::Call(
            "could not create admission objects: webhook does not accept known AdmissionReview versions (v1, v1beta1)"
                .into(),
        ));
    };
    let request_version = attrs.info.api_version();
    let (sent_object, sent_old) = if invocation.resource.version == attrs.info.version {
        (object.cloned(), attrs.old_object.cloned())
    } else {
        let v = &invocation.resource.version;
        let convert = async |o: Option<&Value>| match o {
            Some(o) => to_version(snapshot, attrs.info, o, &request_version, v)
                .await
                .map(Some),
            None => Ok(None),
        };
        (
            convert(object).await.map_err(HookError::Refuse)?,
            convert(attrs.old_object).await.map_err(HookError::Refuse)?,
        )
    };
    let uid = uuid::Uuid::new_v4().to_string();
    let body = review::request(
        version,
        &uid,
        attrs,
        invocation,
        sent_object.as_ref(),
        sent_old.as_ref(),
    );
    let timeout = hook.timeout_seconds();
    let client_config = hook.client_config().unwrap_or(&Value::Null);
    let url = display_url(client_config, timeout);
    let failed = |m: &str| HookError::Call(format!("failed to call webhook: Post \"{url}\": {m}"));
    let mut target = match webhook_client::resolve(client_config, snapshot).await {
        Ok(t) => t,
        Err(webhook_client::Error::Config(m)) => {
            return Err(HookError::Call(format!("could not get REST client: {m}")));
        }
        Err(webhook_client::Error::NoEndpoints { name, .. }) => {
            return Err(failed(&format!(
                "no endpoints available for service \"{name}\""
            )));
        }
        Err(webhook_client::Error::Call { message, .. }) => return Err(failed(&message)),
        Err(webhook_client::Error::Timeout { .. }) => {
            return Err(failed("context deadline exceeded"));
        }
    };
    target.path = with_timeout(&target.path, timeout);
    target.display = url.clone();
    tracing::debug!(webhook = name, url = %url, uid = %uid, "calling admission webhook");
    let answer = match webhook_client::post_json(&target, &body, Duration::from_secs(timeout)).await
    {
        Ok(a) => a,
        Err(webhook_client::Error::Timeout { .. }) => {
            return Err(failed("context deadline exceeded"));
        }
        Err(webhook_client::Error::Call { message, .. }) => return Err(failed(&message)),
        Err(e) => return Err(failed(&e.to_string())),
    };
    tracing::trace!(webhook = name, answer = %answer, "admission webhook answered");
    let response = review::verify(version, &uid, mutating, &answer).map_err(HookError::Call)?;
    Ok((response, sent_object))
}

/// Applies one mutating webhook; returns the object it leaves (in the request's
/// version).
async fn call_mutating(
    snapshot: &Snapshot,
    attrs: &Attributes<'_>,
    hook: &Hook<'_>,
    invocation: &Invocation,
    object: Option<&Value>,
    warnings: &mut Vec<String>,
) -> Result<Option<Value>, HookError> {
    let (response, sent) = call(snapshot, attrs, hook, invocation, object, true).await?;
    warnings.extend(response.warnings);
    if !response.allowed {
        return Err(HookError::Refuse(review::denial(
            hook.name(),
            response.status.as_ref(),
        )));
    }
    let Some(patch) = response
        .patch
        .filter(|p| p.as_array().is_some_and(|a| !a.is_empty()))
    else {
        return Ok(object.cloned());
    };
    let Some(mut patched) = sent else {
        return Err(HookError::Refuse(internal_error(&format!(
            "admission webhook \"{}\" attempted to modify the object, which is not supported for this operation",
            hook.name()
        ))));
    };
    let ops: json_patch::Patch = serde_json::from_value(patch).map_err(|e| {
        HookError::Call(format!(
            "received undecodable patch in webhook response: {e}"
        ))
    })?;
    json_patch::patch(&mut patched, &ops)
        .map_err(|e| HookError::Refuse(internal_error(&e.to_string())))?;
    if invocation.resource.version != attrs.info.version {
        let from = format!(
            "{}{}{}",
            attrs.info.group,
            if attrs.info.group.is_empty() { "" } else { "/" },
            invocation.resource.version
        );
        patched = to_version(snapshot, attrs.info, &patched, &from, &attrs.info.version)
            .await
            .map_err(HookError::Refuse)?;
    }
    Ok(Some(patched))
}

/// What to do with a call failure: `Ok` to go on (failurePolicy Ignore, logged),
/// else the error to answer with.
fn on_failure(hook: &Hook<'_>, error: HookError) -> Result<(), ApiError> {
    match error {
        HookError::Refuse(e) => Err(e),
        HookError::Call(cause) => {
            let cause = format!("failed calling webhook \"{}\": {cause}", hook.name());
            if hook.ignores_failures() {
                tracing::warn!(webhook = hook.name(), error = %cause, "failed calling webhook, failing open");
                Ok(())
            } else {
                tracing::warn!(webhook = hook.name(), error = %cause, "failed calling webhook, failing closed");
                Err(internal_error(&cause))
            }
        }
    }
}

/// Runs the mutating webhooks that match the request over `object` (none for
/// DELETE and CONNECT): configurations in name order, webhooks in list order, each
/// JSONPatch applied before the next webhook is asked. When a webhook changed the
/// object, webhooks with `reinvocationPolicy: IfNeeded` called before that change
/// are called once more, in order.
pub async fn mutate(
    snapshot: &Snapshot,
    attrs: &Attributes<'_>,
    object: Option<Value>,
) -> Result<Admitted> {
    let mut admitted = Admitted {
        object,
        warnings: Vec::new(),
    };
    if matching::is_exempt(attrs) {
        return Ok(admitted);
    }
    let hooks = matching::hooks(snapshot, matching::MUTATING_PREFIX);
    let mut invoked_reinvocable: HashSet<String> = HashSet::new();
    let mut reinvoke: HashSet<String> = HashSet::new();
    let mut should_reinvoke = false;
    for round in 0..2 {
        if round == 1 && !should_reinvoke {
            break;
        }
        for hook in &hooks {
            let refuse = |error, warnings: &Vec<String>| Rejection {
                error,
                warnings: warnings.clone(),
            };
            let invocation =
                match matching::should_call(hook, attrs, admitted.object.as_ref(), snapshot) {
                    Ok(Some(i)) => i,
                    Ok(None) => continue,
                    Err(e) => return Err(refuse(e, &admitted.warnings)),
                };
            if round == 1 && !reinvoke.contains(&hook.id()) {
                continue;
            }
            let result = call_mutating(
                snapshot,
                attrs,
                hook,
                &invocation,
                admitted.object.as_ref(),
                &mut admitted.warnings,
            )
            .await;
            match result {
                Ok(new) => {
                    if new != admitted.object {
                        admitted.object = new;
                        reinvoke.extend(invoked_reinvocable.drain());
                        should_reinvoke = true;
                    }
                }
                Err(e) => {
                    on_failure(hook, e).map_err(|e| refuse(e, &admitted.warnings))?;
                }
            }
            if hook.reinvoke_if_needed() {
                invoked_reinvocable.insert(hook.id());
            }
        }
    }
    Ok(admitted)
}

/// Runs the validating webhooks that match the request, in parallel, over
/// `attrs.object`. Any denial or (under failurePolicy Fail) call failure refuses the
/// request; the first in webhook order is reported. Returns the warnings.
pub async fn validate(snapshot: &Snapshot, attrs: &Attributes<'_>) -> Result<Vec<String>> {
    if matching::is_exempt(attrs) {
        return Ok(Vec::new());
    }
    let mut calls = Vec::new();
    for hook in matching::hooks(snapshot, matching::VALIDATING_PREFIX) {
        match matching::should_call(&hook, attrs, attrs.object, snapshot) {
            Ok(Some(invocation)) => calls.push((hook, invocation)),
            Ok(None) => {}
            Err(error) => {
                return Err(Rejection {
                    error,
                    warnings: Vec::new(),
                });
            }
        }
    }
    if calls.is_empty() {
        return Ok(Vec::new());
    }
    let results =
        futures::future::join_all(calls.iter().map(|(hook, invocation)| {
            call(snapshot, attrs, hook, invocation, attrs.object, false)
        }))
        .await;
    let mut warnings = Vec::new();
    let mut first_error = None;
    for ((hook, _), result) in calls.iter().zip(results) {
        let outcome = match result {
            Ok((response, _)) => {
                warnings.extend(response.warnings);
                if response.allowed {
                    Ok(())
                } else {
                    Err(review::denial(hook.name(), response.status.as_ref()))
                }
            }
            Err(e) => on_failure(hook, e),
        };
        if let Err(e) = outcome {
            if first_error.is_none() {
                first_error = Some(e);
            } else {
                tracing::debug!(webhook = hook.name(), error = %e, "further admission rejection");
            }
        }
    }
    match first_error {
        Some(error) => Err(Rejection { error, warnings }),
        None => Ok(warnings),
    }
}
