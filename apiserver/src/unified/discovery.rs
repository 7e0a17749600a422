//! Discovery of the unified view: the union of what the members serve, asked
//! of each member as the caller and merged by group, version and resource (so
//! a kind served by only some members is still listed). Also the server's own
//! map of member resources (plural ↔ kind, scope), which the caches and the
//! request handlers resolve names with.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use super::Gvr;
use super::member::{self, Member};
use crate::server::auth::User;

/// The Accept header of aggregated discovery.
pub const AGGREGATED: &str = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList";

/// Merges discovery documents of the same kind from several members.
pub fn merge(docs: Vec<Value>) -> Option<Value> {
    let mut iter = docs.into_iter();
    let mut out = iter.next()?;
    for doc in iter {
        match out["kind"].as_str().unwrap_or("") {
            "APIGroupDiscoveryList" => {
                merge_by(
                    &mut out,
                    &doc,
                    "items",
                    |v| v.pointer("/metadata/name").cloned(),
                    |a, b| {
                        merge_by(
                            a,
                            b,
                            "versions",
                            |v| v.get("version").cloned(),
                            |a, b| {
                                merge_by(
                                    a,
                                    b,
                                    "resources",
                                    |v| v.get("resource").cloned(),
                                    |_, _| {},
                                );
                            },
                        );
                    },
                );
            }
            "APIGroupList" => {
                merge_by(
                    &mut out,
                    &doc,
                    "groups",
                    |v| v.get("name").cloned(),
                    |a, b| {
                        merge_by(
                            a,
                            b,
                            "versions",
                            |v| v.get("groupVersion").cloned(),
                            |_, _| {},
                        );
                    },
                );
            }
            "APIGroup" => {
                merge_by(
                    &mut out,
                    &doc,
                    "versions",
                    |v| v.get("groupVersion").cloned(),
                    |_, _| {},
                );
            }
            "APIResourceList" => {
                merge_by(
                    &mut out,
                    &doc,
                    "resources",
                    |v| v.get("name").cloned(),
                    |_, _| {},
                );
            }
            // APIVersions and anything else: the first member's answer.
            _ => {}
        }
    }
    Some(out)
}

/// Adds `other[field]` entries whose key `out[field]` lacks; merges those with
/// the same key with `inner`.
fn merge_by(
    out: &mut Value,
    other: &Value,
    field: &str,
    key: impl Fn(&Value) -> Option<Value>,
    inner: impl Fn(&mut Value, &Value),
) {
    let Some(theirs) = other.get(field).and_then(Value::as_array) else {
        return;
    };
    if !out[field].is_array() {
        out[field] = json!([]);
    }
    for t in theirs {
        let k = key(t);
        let ours = out[field].as_array_mut().expect("array set above");
        match ours.iter_mut().find(|o| key(o) == k) {
            Some(o) => inner(o, t),
            None => ours.push(t.clone()),
        }
    }
}

/// Asks every member for a discovery document as `user`, merged; errors of some
/// members are left out (with their reasons).
pub async fn union(
    members: &[Member],
    path: &str,
    accept: &str,
    user: &User,
    timeout: Duration,
) -> (Option<(Value, String)>, Vec<(String, String)>) {
    let asks = members.iter().map(|m| async move {
        let r = tokio::time::timeout(timeout, async {
            let resp = member::send(
                m,
                http::Method::GET,
                path,
                accept,
                Some(user),
                Vec::new(),
                None,
            )
            .await?;
            let (parts, body) = resp.into_parts();
            let bytes = http_body_util::BodyExt::collect(body)
                .await
                .map_err(|e| member::Unreachable(e.to_string()))?
                .to_bytes();
            Ok::<_, member::Unreachable>((parts, bytes))
        })
        .await;
        (m.name.clone(), r)
    });
    let mut docs = Vec::new();
    let mut content_type = String::from("application/json");
    let mut failed = Vec::new();
    for (name, r) in futures::future::join_all(asks).await {
        match r {
            Ok(Ok((parts, bytes))) if parts.status.is_success() => {
                if let Some(ct) = parts
                    .headers
                    .get(http::header::CONTENT_TYPE)
                    .and_then(|v| v.to_str().ok())
                {
                    content_type = ct.to_string();
                }
                if let Ok(v) = serde_json::from_slice::<Value>(&bytes) {
                    docs.push(v);
                }
            }
            Ok(Ok((parts, _))) if parts.status == http::StatusCode::NOT_FOUND => {}
            Ok(Ok((parts, _))) => failed.push((name, format!("HTTP {}", parts.status))),
            Ok(Err(e)) => failed.push((name, e.0)),
            Err(_) => failed.push((name, format!("no answer within {}s", timeout.as_secs_f64()))),
        }
    }
    (merge(docs).map(|d| (d, content_type)), failed)
}

/// The resources members serve, for resolving names.
#[derive(Default)]
pub struct Resources {
    inner: Mutex<ResourcesInner>,
}

#[derive(Default)]
struct ResourcesInner {
    by_plural: HashMap<(String, String, String), Gvr>,
    by_kind: HashMap<(String, String), Gvr>,
    fetched: Option<Instant>,
}

impl Resources {
    /// A resource by group, version and plural.
    pub fn by_plural(&self, group: &str, version: &str, plural: &str) -> Option<Gvr> {
        self.lock()
            .by_plural
            .get(&(group.to_string(), version.to_string(), plural.to_string()))
            .cloned()
    }

    /// A resource by apiVersion and kind.
    pub fn by_kind(&self, api_version: &str, kind: &str) -> Option<Gvr> {
        self.lock()
            .by_kind
            .get(&(api_version.to_string(), kind.to_string()))
            .cloned()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, ResourcesInner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Whether the map is older than `age` (or never filled).
    pub fn older_than(&self, age: Duration) -> bool {
        self.age().is_none_or(|a| a > age)
    }

    /// The time since the map was filled (None: never).
    pub fn age(&self) -> Option<Duration> {
        self.lock().fetched.map(|t| t.elapsed())
    }

    /// Reads members' aggregated discovery (with the control plane's rights: it is
    /// the server's own map, never returned to a caller).
    pub async fn refresh(&self, members: &[Member], timeout: Duration) {
        let mut by_plural = HashMap::new();
        let mut by_kind = HashMap::new();
        let mut any = false;
        for m in members {
            for path in ["/api", "/apis"] {
                let Ok(resp) = tokio::time::timeout(
                    timeout,
                    member::send(
                        m,
                        http::Method::GET,
                        path,
                        AGGREGATED,
                        None,
                        Vec::new(),
                        None,
                    ),
                )
                .await
                else {
                    continue;
                };
                let Ok(resp) = resp else { continue };
                if !resp.status().is_success() {
                    continue;
                }
                let Ok(Ok(body)) = tokio::time::timeout(
                    timeout,
                    http_body_util::BodyExt::collect(resp.into_body()),
                )
                .await
                else {
                    continue;
                };
                let Ok(doc) = serde_json::from_slice::<Value>(&body.to_bytes()) else {
                    continue;
                };
                any = true;
                for gvr in resources_of(&doc) {
                    let key = (gvr.group.clone(), gvr.version.clone(), gvr.plural.clone());
                    if by_plural.contains_key(&key) {
                        continue;
                    }
                    let gvr = if super::table::is_builtin(&gvr) {
                        gvr
                    } else {
                        with_printer_columns(m, gvr, timeout).await
                    };
                    by_kind
                        .entry((gvr.api_version(), gvr.kind.clone()))
                        .or_insert_with(|| gvr.clone());
                    by_plural.insert(key, gvr);
                }
            }
        }
        let mut inner = self.lock();
        inner.fetched = Some(Instant::now());
        if any {
            inner.by_plural = by_plural;
            inner.by_kind = by_kind;
        }
    }
}

/// `gvr` with the printer columns of its CRD in `member` (Age alone when the
/// CRD lists none); unchanged when the member serves it some other way (an
/// aggregated API) or the CRD cannot be read.
async fn with_printer_columns(member: &Member, mut gvr: Gvr, timeout: Duration) -> Gvr {
    let path = format!(
        "/apis/apiextensions.k8s.io/v1/customresourcedefinitions/{}.{}",
        gvr.plural, gvr.group
    );
    let Ok(answer) =
        member::call(member, http::Method::GET, &path, None, Vec::new(), timeout).await
    else {
        return gvr;
    };
    if !answer.status.is_success() {
        return gvr;
    }
    let crd = answer.json();
    let version = crd
        .pointer("/spec/versions")
        .and_then(Value::as_array)
        .and_then(|vs| vs.iter().find(|v| v["name"] == gvr.version.as_str()));
    if let Some(version) = version {
        gvr.columns = Some(std::sync::Arc::new(crate::registry::crd::columns(version)));
    }
    gvr
}

/// The resources of an aggregated discovery document.
pub fn resources_of(doc: &Value) -> Vec<Gvr> {
    let mut out = Vec::new();
    for group in doc["items"].as_array().into_iter().flatten() {
        let g = group
            .pointer("/metadata/name")
            .and_then(Value::as_str)
            .unwrap_or("");
        for version in group["versions"].as_array().into_iter().flatten() {
            let v = version["version"].as_str().unwrap_or("");
            for r in version["resources"].as_array().into_iter().flatten() {
                let (Some(plural), Some(kind)) = (
                    r["resource"].as_str(),
                    r.pointer("/responseKind/kind").and_then(Value::as_str),
                ) else {
                    continue;
                };
                out.push(Gvr::new(g, v, plural, kind, r["scope"] == "Namespaced"));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn union_of_members() {
        let a = json!({"kind": "APIGroupDiscoveryList", "items": [
            {"metadata": {"name": "apps"}, "versions": [{"version": "v1", "resources": [
                {"resource": "deployments", "responseKind": {"kind": "Deployment"}, "scope": "Namespaced"}]}]}]});
        let b = json!({"kind": "APIGroupDiscoveryList", "items": [
            {"metadata": {"name": "apps"}, "versions": [{"version": "v1", "resources": [
                {"resource": "deployments", "responseKind": {"kind": "Deployment"}, "scope": "Namespaced"},
                {"resource": "statefulsets", "responseKind": {"kind": "StatefulSet"}, "scope": "Namespaced"}]}]},
            {"metadata": {"name": "example.com"}, "versions": [{"version": "v1", "resources": [
                {"resource": "widgets", "responseKind": {"kind": "Widget"}, "scope": "Cluster"}]}]}]});
        let merged = merge(vec![a, b]).expect("merged");
        let gvrs = resources_of(&merged);
        let names: Vec<_> = gvrs.iter().map(|g| g.plural.as_str()).collect();
        assert_eq!(names, ["deployments", "statefulsets", "widgets"]);
        assert!(!gvrs[2].namespaced);
        let l1 = json!({"kind": "APIResourceList", "resources": [{"name": "pods"}]});
        let l2 =
            json!({"kind": "APIResourceList", "resources": [{"name": "pods"}, {"name": "nodes"}]});
        let merged = merge(vec![l1, l2]).expect("merged");
        assert_eq!(merged["resources"].as_array().map(Vec::len), Some(2));
    }
}
