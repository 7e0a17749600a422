//! Discovery: `/version`, legacy `/api`, `/apis`, `/api/v1`, `/apis/g[/v]`, and
//! aggregated discovery (apidiscovery.k8s.io v2 and v2beta1), answered with the
//! exact aggregated content type kubectl looks for.

use serde_json::{Value, json};

use crate::registry::{Catalog, ResourceInfo};

/// The Kubernetes release whose API types flotilla serves.
pub const KUBERNETES_MAJOR: &str = "1";
pub const KUBERNETES_MINOR: &str = "33";
pub const KUBERNETES_GIT_VERSION: &str = "v1.33.0";

const VERBS: [&str; 8] = [
    "create",
    "delete",
    "deletecollection",
    "get",
    "list",
    "patch",
    "update",
    "watch",
];
const SUB_VERBS: [&str; 3] = ["get", "patch", "update"];
/// Verbs of Karmada's `clusters/proxy` (any request is forwarded).
const PROXY_VERBS: [&str; 5] = ["create", "delete", "get", "patch", "update"];

/// The body of `/version`.
pub fn version() -> Value {
    json!({
        "major": KUBERNETES_MAJOR,
        "minor": KUBERNETES_MINOR,
        "gitVersion": format!("{KUBERNETES_GIT_VERSION}+flotilla-{}", env!("CARGO_PKG_VERSION")),
        "gitCommit": "flotilla",
        "gitTreeState": "clean",
        "buildDate": "2026-01-01T00:00:00Z",
        "goVersion": "rust",
        "compiler": "rustc",
        "platform": format!("{}/{}", std::env::consts::OS, match std::env::consts::ARCH { "x86_64" => "amd64", "aarch64" => "arm64", a => a }),
    })
}

/// Which aggregated discovery version a request's Accept asks for, if any.
pub fn aggregated_version(accept: &str) -> Option<&'static str> {
    for range in accept.split(',') {
        let params: Vec<&str> = range.split(';').map(str::trim).collect();
        let has = |p: &str| params.iter().any(|x| x.replace(' ', "") == p);
        if has("as=APIGroupDiscoveryList") && has("g=apidiscovery.k8s.io") {
            if has("v=v2") {
                return Some("v2");
            }
            if has("v=v2beta1") {
                return Some("v2beta1");
            }
        }
    }
    None
}

/// The content type of an aggregated discovery answer.
pub fn aggregated_content_type(version: &str) -> String {
    format!("application/json;g=apidiscovery.k8s.io;v={version};as=APIGroupDiscoveryList")
}

fn scope(info: &ResourceInfo) -> &'static str {
    if info.namespaced {
        "Namespaced"
    } else {
        "Cluster"
    }
}

fn verbs(info: &ResourceInfo) -> Vec<&'static str> {
    if info.create_only {
        vec!["create"]
    } else {
        VERBS.to_vec()
    }
}

fn aggregated_resource(info: &ResourceInfo) -> Value {
    let mut r = json!({
        "resource": info.plural,
        "responseKind": {"group": info.group, "version": info.version, "kind": info.kind},
        "scope": scope(info),
        "singularResource": info.singular,
        "verbs": verbs(info),
    });
    if !info.short_names.is_empty() {
        r["shortNames"] = json!(info.short_names);
    }
    if !info.categories.is_empty() {
        r["categories"] = json!(info.categories);
    }
    let mut subs = Vec::new();
    if info.scale_subresource {
        subs.push(json!({"subresource": "scale", "responseKind": {"group": "autoscaling", "version": "v1", "kind": "Scale"}, "verbs": SUB_VERBS}));
    }
    if info.status_subresource {
        subs.push(json!({"subresource": "status", "responseKind": {"group": info.group, "version": info.version, "kind": info.kind}, "verbs": SUB_VERBS}));
    }
    if is_service_accounts(info) {
        subs.push(json!({"subresource": "token", "responseKind": {"group": "authentication.k8s.io", "version": "v1", "kind": "TokenRequest"}, "verbs": ["create"]}));
    }
    if crate::registry::cluster::is_cluster(info) {
        subs.push(json!({"subresource": "proxy", "responseKind": {"group": info.group, "version": info.version, "kind": "ClusterProxyOptions"}, "verbs": PROXY_VERBS}));
    }
    if !subs.is_empty() {
        r["subresources"] = json!(subs);
    }
    r
}

/// `APIGroupDiscoveryList` for the core group (`core == true`, `/api`) or the named
/// groups (`/apis`).
pub fn aggregated(catalog: &Catalog, core: bool, version: &str) -> Value {
    let items: Vec<Value> = catalog
        .groups()
        .into_iter()
        .filter(|(g, _)| g.is_empty() == core)
        .map(|(group, versions)| {
            let versions: Vec<Value> = versions
                .iter()
                .map(|v| {
                    let resources: Vec<Value> = catalog
                        .resources(&group, v)
                        .iter()
                        .map(|i| aggregated_resource(i))
                        .collect();
                    json!({"version": v, "resources": resources, "freshness": "Current"})
                })
                .collect();
            let metadata = if core {
                json!({"creationTimestamp": null})
            } else {
                json!({"name": group, "creationTimestamp": null})
            };
            json!({"metadata": metadata, "versions": versions})
        })
        .collect();
    json!({
        "kind": "APIGroupDiscoveryList",
        "apiVersion": format!("apidiscovery.k8s.io/{version}"),
        "metadata": {},
        "items": items,
    })
}

/// Legacy `/api`.
pub fn api_versions(server_address: &str) -> Value {
    json!({
        "kind": "APIVersions",
        "versions": ["v1"],
        "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": server_address}],
    })
}

fn api_group(group: &str, versions: &[String]) -> Value {
    let vs: Vec<Value> = versions
        .iter()
        .map(|v| json!({"groupVersion": format!("{group}/{v}"), "version": v}))
        .collect();
    json!({
        "name": group,
        "versions": vs,
        "preferredVersion": vs.first().cloned().unwrap_or(Value::Null),
    })
}

/// Legacy `/apis`.
pub fn api_group_list(catalog: &Catalog) -> Value {
    let groups: Vec<Value> = catalog
        .groups()
        .iter()
        .filter(|(g, _)| !g.is_empty())
        .map(|(g, vs)| api_group(g, vs))
        .collect();
    json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": groups})
}

/// Legacy `/apis/{group}`, if served.
pub fn api_group_doc(catalog: &Catalog, group: &str) -> Option<Value> {
    catalog
        .groups()
        .iter()
        .find(|(g, _)| g == group)
        .map(|(g, vs)| {
            let mut doc = api_group(g, vs);
            doc["kind"] = json!("APIGroup");
            doc["apiVersion"] = json!("v1");
            doc
        })
}

/// Legacy `/api/v1` or `/apis/{group}/{version}`.
pub fn api_resource_list(catalog: &Catalog, group: &str, version: &str) -> Option<Value> {
    if !catalog.has_version(group, version) {
        return None;
    }
    let mut resources = Vec::new();
    for info in catalog.resources(group, version) {
        let mut r = json!({
            "name": info.plural,
            "singularName": info.singular,
            "namespaced": info.namespaced,
            "kind": info.kind,
            "verbs": verbs(&info),
        });
        if !info.short_names.is_empty() {
            r["shortNames"] = json!(info.short_names);
        }
        if !info.categories.is_empty() {
            r["categories"] = json!(info.categories);
        }
        resources.push(r);
        if info.scale_subresource {
            resources.push(json!({"name": format!("{}/scale", info.plural), "singularName": "", "namespaced": info.namespaced,
                "group": "autoscaling", "version": "v1", "kind": "Scale", "verbs": SUB_VERBS}));
        }
        if info.status_subresource {
            resources.push(json!({"name": format!("{}/status", info.plural), "singularName": "", "namespaced": info.namespaced,
                "kind": info.kind, "verbs": SUB_VERBS}));
        }
        if is_service_accounts(&info) {
            resources.push(json!({"name": "serviceaccounts/token", "singularName": "", "namespaced": true,
                "group": "authentication.k8s.io", "version": "v1", "kind": "TokenRequest", "verbs": ["create"]}));
        }
        if crate::registry::cluster::is_cluster(&info) {
            resources.push(
                json!({"name": "clusters/proxy", "singularName": "", "namespaced": false,
                "kind": "ClusterProxyOptions", "verbs": PROXY_VERBS}),
            );
        }
    }
    let gv = if group.is_empty() {
        version.to_string()
    } else {
        format!("{group}/{version}")
    };
    Some(
        json!({"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": gv, "resources": resources}),
    )
}

/// Core ServiceAccounts, which have the `token` subresource (TokenRequest).
fn is_service_accounts(info: &ResourceInfo) -> bool {
    info.group.is_empty() && info.plural == "serviceaccounts"
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accept_negotiation() {
        let a = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList,application/json";
        assert_eq!(aggregated_version(a), Some("v2"));
        assert_eq!(
            aggregated_version(
                "application/json; g=apidiscovery.k8s.io; v=v2beta1; as=APIGroupDiscoveryList"
            ),
            Some("v2beta1")
        );
        assert_eq!(aggregated_version("application/json"), None);
    }

    #[test]
    fn every_resource_has_a_response_kind() {
        let catalog = Catalog::builtin();
        let doc = aggregated(&catalog, false, "v2");
        for group in doc["items"].as_array().expect("items") {
            for v in group["versions"].as_array().expect("versions") {
                for r in v["resources"].as_array().expect("resources") {
                    assert!(r["responseKind"]["kind"].is_string());
                }
            }
        }
        let core = aggregated(&catalog, true, "v2");
        assert_eq!(core["items"].as_array().map(Vec::len), Some(1));
    }
}
