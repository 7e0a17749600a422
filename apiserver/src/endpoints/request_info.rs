//! [`RequestInfo`]: a request's path parsed once into what it addresses.

use std::collections::HashMap;

/// The Kubernetes verbs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verb {
    Get,
    List,
    Watch,
    Create,
    Update,
    Patch,
    Delete,
    DeleteCollection,
}

impl Verb {
    pub fn as_str(self) -> &'static str {
        match self {
            Verb::Get => "get",
            Verb::List => "list",
            Verb::Watch => "watch",
            Verb::Create => "create",
            Verb::Update => "update",
            Verb::Patch => "patch",
            Verb::Delete => "delete",
            Verb::DeleteCollection => "deletecollection",
        }
    }
}

/// What a resource request addresses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestInfo {
    pub verb: Verb,
    pub group: String,
    pub version: String,
    pub namespace: Option<String>,
    pub resource: String,
    pub name: Option<String>,
    pub subresource: Option<String>,
}

/// A parsed path: a resource request, a group-version discovery document, or
/// something else (handled by name).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    Resource(RequestInfo),
    /// `/api/v1` or `/apis/g/v`.
    GroupVersion {
        group: String,
        version: String,
    },
    /// `/apis/g`.
    Group(String),
    Other,
}

/// Percent-decodes a URL component (`+` as space in queries).
pub fn percent_decode(s: &str, plus_as_space: bool) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).ok();
                match hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
                    Some(b) => {
                        out.push(b);
                        i += 3;
                        continue;
                    }
                    None => out.push(b'%'),
                }
            }
            b'+' if plus_as_space => out.push(b' '),
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Parses a query string into a map (last value wins).
pub fn parse_query(query: Option<&str>) -> HashMap<String, String> {
    let mut out = HashMap::new();
    for pair in query.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        out.insert(percent_decode(k, true), percent_decode(v, true));
    }
    out
}

/// Parses a method and path into a [`Route`].
pub fn parse(method: &http::Method, path: &str, query: &HashMap<String, String>) -> Route {
    let parts: Vec<String> = path
        .trim_matches('/')
        .split('/')
        .filter(|p| !p.is_empty())
        .map(|p| percent_decode(p, false))
        .collect();
    let (group, version, rest) = match parts.first().map(String::as_str) {
        Some("api") if parts.len() >= 2 => (String::new(), parts[1].clone(), &parts[2..]),
        Some("apis") if parts.len() == 2 => return Route::Group(parts[1].clone()),
        Some("apis") if parts.len() >= 3 => (parts[1].clone(), parts[2].clone(), &parts[3..]),
        _ => return Route::Other,
    };
    if rest.is_empty() {
        return Route::GroupVersion { group, version };
    }
    let (legacy_watch, rest) = match rest.first().map(String::as_str) {
        Some("watch") => (true, &rest[1..]),
        _ => (false, rest),
    };
    let mut namespace = None;
    let mut rest = rest.to_vec();
    if rest.first().map(String::as_str) == Some("namespaces") && rest.len() >= 2 {
        // /namespaces/{name} and /namespaces/{name}/{status|finalize} address the
        // namespace itself; anything longer is inside it.
        let sub = rest.get(2).map(String::as_str);
        if !(rest.len() == 2 || (rest.len() == 3 && matches!(sub, Some("status" | "finalize")))) {
            namespace = Some(rest[1].clone());
            rest.drain(..2);
        }
    }
    if rest.is_empty() {
        return Route::Other;
    }
    let resource = rest[0].clone();
    let name = rest.get(1).cloned();
    let subresource = if rest.len() > 2 {
        Some(rest[2..].join("/"))
    } else {
        None
    };
    let watch_param = query.get("watch").is_some_and(|w| w == "true" || w == "1");
    let verb = match *method {
        http::Method::GET | http::Method::HEAD => {
            if legacy_watch || (watch_param && name.is_none()) {
                Verb::Watch
            } else if name.is_some() {
                Verb::Get
            } else {
                Verb::List
            }
        }
        http::Method::POST => Verb::Create,
        http::Method::PUT => Verb::Update,
        http::Method::PATCH => Verb::Patch,
        http::Method::DELETE => {
            if name.is_some() {
                Verb::Delete
            } else {
                Verb::DeleteCollection
            }
        }
        _ => return Route::Other,
    };
    // A legacy single-object watch (/watch/namespaces/ns/pods/name) selects by name.
    Route::Resource(RequestInfo {
        verb,
        group,
        version,
        namespace,
        resource,
        name,
        subresource,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::Method;

    fn info(method: Method, path: &str, q: &str) -> RequestInfo {
        match parse(&method, path, &parse_query(Some(q))) {
            Route::Resource(i) => i,
            other => panic!("not a resource request: {other:?}"),
        }
    }

    #[test]
    fn paths() {
        let i = info(Method::GET, "/api/v1/namespaces/default/pods", "");
        assert_eq!(
            (i.verb, i.namespace.as_deref(), i.resource.as_str()),
            (Verb::List, Some("default"), "pods")
        );
        let i = info(Method::GET, "/api/v1/namespaces/foo", "");
        assert_eq!(
            (i.verb, i.namespace, i.resource.as_str(), i.name.as_deref()),
            (Verb::Get, None, "namespaces", Some("foo"))
        );
        let i = info(Method::PUT, "/api/v1/namespaces/foo/status", "");
        assert_eq!(
            (i.resource.as_str(), i.subresource.as_deref()),
            ("namespaces", Some("status"))
        );
        let i = info(
            Method::GET,
            "/apis/apps/v1/namespaces/a/deployments/web/scale",
            "",
        );
        assert_eq!(
            (
                i.group.as_str(),
                i.name.as_deref(),
                i.subresource.as_deref()
            ),
            ("apps", Some("web"), Some("scale"))
        );
        let i = info(Method::GET, "/api/v1/pods", "watch=true");
        assert_eq!((i.verb, i.namespace), (Verb::Watch, None));
        let i = info(Method::GET, "/api/v1/watch/namespaces/x/pods", "");
        assert_eq!((i.verb, i.namespace.as_deref()), (Verb::Watch, Some("x")));
        let i = info(Method::DELETE, "/api/v1/namespaces/x/pods", "");
        assert_eq!(i.verb, Verb::DeleteCollection);
        assert_eq!(
            parse(&Method::GET, "/apis/apps/v1", &HashMap::new()),
            Route::GroupVersion {
                group: "apps".into(),
                version: "v1".into()
            }
        );
        assert_eq!(
            parse(&Method::GET, "/version", &HashMap::new()),
            Route::Other
        );
    }

    #[test]
    fn queries_decode() {
        let q = parse_query(Some("labelSelector=app%3Dweb%2Ctier+in+(a)&limit=5"));
        assert_eq!(q["labelSelector"], "app=web,tier in (a)");
        assert_eq!(q["limit"], "5");
    }
}
