//! Reading one resource from every member in scope, in parallel: from the
//! member's cache when it is current (filtered by what the caller may read
//! there), else live as the caller, each member within its timeout. What each
//! member contributed, and why any is missing, comes back for the caller to
//! merge and report.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;

use super::access::Question;
use super::cache::{self, Cache, Object, Objects};
use super::member::{self, Member};
use super::resource_version::{Requested, revision};
use super::{Gvr, Unified};
use crate::registry::selector::{FieldSelector, LabelSelector};
use crate::server::auth::User;

/// What a list asks of each member.
pub struct ListRequest<'a> {
    pub gvr: &'a Gvr,
    pub namespace: Option<&'a str>,
    pub labels: &'a LabelSelector,
    pub fields: &'a FieldSelector,
    /// The selectors' text, forwarded to members read live.
    pub label_text: &'a str,
    pub field_text: &'a str,
    pub requested: &'a Requested,
    pub force_live: bool,
    pub user: &'a User,
}

/// One member's part of a list.
pub enum Part {
    /// Objects (annotated; the request's namespace and selectors still to
    /// apply), the namespaces the caller may read among them (`None`: all),
    /// and the member's revision; a warning when they may be stale.
    Items {
        objects: Objects,
        namespaces: Option<Arc<HashSet<String>>>,
        revision: String,
        from_cache: bool,
        warning: Option<String>,
    },
    /// The caller may not read there.
    Forbidden(String),
    /// No answer: why.
    Missing(String),
}

/// A member in scope: its Cluster name, client (or why none) and cache.
pub struct Target {
    pub name: String,
    pub member: Result<Member, member::Unreachable>,
    pub cache: Option<Arc<Cache>>,
}

/// Reads one member's part of a list.
pub async fn list_one(u: &Unified, t: &Target, req: &ListRequest<'_>) -> Part {
    let member = match &t.member {
        Ok(m) => m,
        Err(e) => return Part::Missing(e.0.clone()),
    };
    let timeout = u.config.member_timeout;
    if let Some(cache) = &t.cache
        && !req.force_live
    {
        let wanted = match req.requested {
            Requested::Exact(map) => map.get(&t.name).and_then(|rv| revision(rv)),
            _ => None,
        };
        let fresh_enough = wanted.is_none_or(|w| cache.revision() >= w);
        let usable = match req.requested {
            // "0": any state; a stale cache still answers, saying so.
            Requested::Any => cache.has_data(),
            _ => cache.is_current() && fresh_enough,
        };
        if usable {
            return from_cache(u, member, cache, req, timeout).await;
        }
    }
    live(member, req, timeout).await
}

async fn from_cache(
    u: &Unified,
    member: &Member,
    cache: &Cache,
    req: &ListRequest<'_>,
    timeout: Duration,
) -> Part {
    let warning = match cache.health() {
        cache::Health::Current => None,
        cache::Health::Down(why) => Some(format!(
            "cluster {} answered from a cache that may be stale: {why}",
            cache.cluster
        )),
        cache::Health::Syncing => Some(format!(
            "cluster {} answered from a cache that is resyncing",
            cache.cluster
        )),
    };
    let question = |namespace: &str| Question {
        cluster: cache.cluster.clone(),
        verb: "list".into(),
        group: req.gvr.group.clone(),
        resource: req.gvr.plural.clone(),
        namespace: namespace.to_string(),
        name: String::new(),
    };
    let scope = req.namespace.unwrap_or("");
    let whole = match u
        .access
        .allowed(member, req.user, &question(scope), timeout)
        .await
    {
        Ok(a) => a,
        Err(e) => return Part::Missing(format!("cannot check the caller's access: {e}")),
    };
    // A clone of the cache's map: the request's namespace and selectors apply
    // as the pages are read.
    let snap = cache.snapshot();
    let revision = snap.revision.to_string();
    if whole {
        return Part::Items {
            objects: snap.objects,
            namespaces: None,
            revision,
            from_cache: true,
            warning,
        };
    }
    if !req.gvr.namespaced || req.namespace.is_some() {
        return Part::Forbidden(forbidden_message(req, scope));
    }
    // Not every namespace: keep the namespaces the caller may list.
    let mut namespaces: Vec<&str> = snap.objects.keys().map(|(ns, _)| ns.as_ref()).collect();
    namespaces.dedup();
    let checks = namespaces.iter().map(|ns| async move {
        let ok = u
            .access
            .allowed(member, req.user, &question(ns), timeout)
            .await
            .unwrap_or(false);
        (ns.to_string(), ok)
    });
    let allowed: HashSet<String> = futures::future::join_all(checks)
        .await
        .into_iter()
        .filter(|(_, ok)| *ok)
        .map(|(ns, _)| ns)
        .collect();
    if allowed.is_empty() {
        return Part::Forbidden(forbidden_message(req, ""));
    }
    Part::Items {
        objects: snap.objects,
        namespaces: Some(Arc::new(allowed)),
        revision,
        from_cache: true,
        warning,
    }
}

fn forbidden_message(req: &ListRequest<'_>, namespace: &str) -> String {
    let resource = if req.gvr.group.is_empty() {
        format!("\"{}\" in API group \"\"", req.gvr.plural)
    } else {
        format!("\"{}\" in API group \"{}\"", req.gvr.plural, req.gvr.group)
    };
    let scope = if namespace.is_empty() {
        "at the cluster scope".to_string()
    } else {
        format!("in the namespace \"{namespace}\"")
    };
    format!(
        "User \"{}\" cannot list resource {resource} {scope}",
        req.user.name
    )
}

/// The member's path for a list, with the caller's selectors.
fn list_path(req: &ListRequest<'_>, extra: &str) -> String {
    let mut q = Vec::new();
    if !req.label_text.is_empty() {
        q.push(format!("labelSelector={}", encode(req.label_text)));
    }
    if !req.field_text.is_empty() {
        q.push(format!("fieldSelector={}", encode(req.field_text)));
    }
    if !extra.is_empty() {
        q.push(extra.to_string());
    }
    let path = req.gvr.collection_path(req.namespace);
    if q.is_empty() {
        path
    } else {
        format!("{path}?{}", q.join("&"))
    }
}

/// Percent-encodes a query value.
pub fn encode(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

async fn live(member: &Member, req: &ListRequest<'_>, timeout: Duration) -> Part {
    let path = list_path(req, "");
    match member::call(
        member,
        http::Method::GET,
        &path,
        Some(req.user),
        Vec::new(),
        timeout,
    )
    .await
    {
        Ok(a) if a.status.is_success() => {
            let mut list = a.json();
            let revision = list
                .pointer("/metadata/resourceVersion")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string();
            let items = match list.get_mut("items").map(Value::take) {
                Some(Value::Array(items)) => items,
                _ => Vec::new(),
            };
            let shape = cache::Shape::of(req.gvr);
            let objects: Objects = items
                .into_iter()
                .map(|o| {
                    let o = Object::new(&cache::annotate(o, &member.name, req.gvr), &shape);
                    (o.key(), Arc::new(o))
                })
                .collect();
            Part::Items {
                objects,
                namespaces: None,
                revision,
                from_cache: false,
                warning: None,
            }
        }
        Ok(a) if a.status == http::StatusCode::FORBIDDEN => Part::Forbidden(a.message()),
        Ok(a) if a.status == http::StatusCode::NOT_FOUND => Part::Items {
            // The member does not serve this resource.
            objects: Objects::new(),
            namespaces: None,
            revision: String::new(),
            from_cache: false,
            warning: None,
        },
        Ok(a) => Part::Missing(a.message()),
        Err(e) => Part::Missing(e.0),
    }
}

/// Where a single object is: every member holding `namespace/name`, with the
/// object (read from a current cache after an access check, else live as the
/// caller), and the members that could not be asked.
pub async fn locate(
    u: &Unified,
    targets: &[Target],
    gvr: &Gvr,
    namespace: Option<&str>,
    name: &str,
    user: &User,
) -> (
    Vec<(String, Arc<Object>)>,
    Vec<(String, String)>,
    Vec<String>,
) {
    let timeout = u.config.member_timeout;
    let asks = targets.iter().map(|t| async move {
        let member = match &t.member {
            Ok(m) => m,
            Err(e) => return (t.name.clone(), Err(e.0.clone())),
        };
        if let Some(cache) = &t.cache
            && cache.is_current()
            && !u.config.force_live
        {
            let Some(obj) = cache.get(namespace.unwrap_or(""), name) else {
                return (t.name.clone(), Ok(None));
            };
            let q = Question {
                cluster: t.name.clone(),
                verb: "get".into(),
                group: gvr.group.clone(),
                resource: gvr.plural.clone(),
                namespace: namespace.unwrap_or("").to_string(),
                name: name.to_string(),
            };
            return match u.access.allowed(member, user, &q, timeout).await {
                Ok(true) => (t.name.clone(), Ok(Some(obj))),
                Ok(false) => (t.name.clone(), Err("forbidden".to_string())),
                Err(e) => (t.name.clone(), Err(e)),
            };
        }
        let path = format!(
            "{}/{}",
            gvr.collection_path(namespace),
            encode_segment(name)
        );
        match member::call(
            member,
            http::Method::GET,
            &path,
            Some(user),
            Vec::new(),
            timeout,
        )
        .await
        {
            Ok(a) if a.status.is_success() => (
                t.name.clone(),
                Ok(Some(Arc::new(Object::new(
                    &cache::annotate(a.json(), &t.name, gvr),
                    &cache::Shape::of(gvr),
                )))),
            ),
            Ok(a) if a.status == http::StatusCode::NOT_FOUND => (t.name.clone(), Ok(None)),
            Ok(a) if a.status == http::StatusCode::FORBIDDEN => {
                (t.name.clone(), Err("forbidden".to_string()))
            }
            Ok(a) => (t.name.clone(), Err(a.message())),
            Err(e) => (t.name.clone(), Err(e.0)),
        }
    });
    let mut found = Vec::new();
    let mut missing = Vec::new();
    let mut forbidden = Vec::new();
    for (cluster, r) in futures::future::join_all(asks).await {
        match r {
            Ok(Some(o)) => found.push((cluster, o)),
            Ok(None) => {}
            Err(why) if why == "forbidden" => forbidden.push(cluster),
            Err(why) => missing.push((cluster, why)),
        }
    }
    (found, missing, forbidden)
}

/// Percent-encodes a path segment.
pub fn encode_segment(s: &str) -> String {
    encode(s)
}
