use std::sync::Arc;

use serde_json::{Value, json};

use super::*;
use crate::endpoints::request_info::{Verb, parse, parse_query};
use crate::storage::KeyValue;

fn snapshot(objects: Vec<(String, Value)>) -> Snapshot {
    let mut map = imbl::OrdMap::new();
    for (key, value) in objects {
        let key: Arc<str> = Arc::from(key.as_str());
        map.insert(key.clone(), KeyValue::new(key, Arc::new(value), 1));
    }
    Snapshot { map, revision: 1 }
}

/// The bootstrap policy plus `extra`.
fn cluster(extra: Vec<(String, Value)>) -> Snapshot {
    let mut all = bootstrap_policy();
    all.extend(extra);
    snapshot(all)
}

fn user(name: &str, groups: &[&str]) -> User {
    User {
        name: name.into(),
        uid: String::new(),
        groups: groups.iter().map(|g| g.to_string()).collect(),
        extra: Default::default(),
    }
}

fn role(ns: &str, name: &str, rules: Value) -> (String, Value) {
    (
        format!("/{RBAC_GROUP}/roles/{ns}/{name}"),
        json!({"kind": "Role", "metadata": {"name": name, "namespace": ns}, "rules": rules}),
    )
}

fn cluster_role(name: &str, labels: Value, rules: Value) -> (String, Value) {
    (
        format!("/{RBAC_GROUP}/clusterroles/{name}"),
        json!({"kind": "ClusterRole", "metadata": {"name": name, "labels": labels}, "rules": rules}),
    )
}

fn role_binding(ns: &str, name: &str, kind: &str, role: &str, subjects: Value) -> (String, Value) {
    (
        format!("/{RBAC_GROUP}/rolebindings/{ns}/{name}"),
        json!({
            "kind": "RoleBinding",
            "metadata": {"name": name, "namespace": ns},
            "roleRef": {"apiGroup": RBAC_GROUP, "kind": kind, "name": role},
            "subjects": subjects,
        }),
    )
}

fn cluster_role_binding(name: &str, role: &str, subjects: Value) -> (String, Value) {
    (
        format!("/{RBAC_GROUP}/clusterrolebindings/{name}"),
        json!({
            "kind": "ClusterRoleBinding",
            "metadata": {"name": name},
            "roleRef": {"apiGroup": RBAC_GROUP, "kind": "ClusterRole", "name": role},
            "subjects": subjects,
        }),
    )
}

fn alice() -> User {
    user("alice", &[])
}

fn allowed(s: &Snapshot, u: &User, a: &Attributes) -> bool {
    authorize(s, u, a).allowed
}

fn pods(verb: &str, ns: &str) -> Attributes {
    Attributes::resource(verb, "", "pods").namespace(ns)
}

/// One rule, bound to alice cluster-wide.
fn with_rule(rule: Value) -> Snapshot {
    snapshot(vec![
        cluster_role("r", json!({}), json!([rule])),
        cluster_role_binding("b", "r", json!([{"kind": "User", "name": "alice"}])),
    ])
}

#[test]
fn rule_verbs_groups_resources() {
    let s = with_rule(json!({"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list"]}));
    let a = alice();
    assert!(allowed(&s, &a, &pods("get", "default")));
    assert!(allowed(&s, &a, &pods("list", "")));
    assert!(!allowed(&s, &a, &pods("watch", "default")));
    assert!(!allowed(&s, &a, &pods("create", "default")));
    assert!(!allowed(
        &s,
        &a,
        &Attributes::resource("get", "apps", "pods")
    ));
    assert!(!allowed(&s, &a, &pods("get", "default").subresource("log")));
    assert!(!allowed(
        &s,
        &a,
        &Attributes::resource("get", "", "services")
    ));

    let s = with_rule(json!({"apiGroups": ["*"], "resources": ["*"], "verbs": ["*"]}));
    assert!(allowed(
        &s,
        &a,
        &Attributes::resource("escalate", "x.io", "things").subresource("status")
    ));
    assert!(!allowed(
        &s,
        &a,
        &Attributes::non_resource("get", "/healthz")
    ));
}

#[test]
fn rule_subresources() {
    let s = with_rule(json!({"apiGroups": [""], "resources": ["pods/log"], "verbs": ["get"]}));
    let a = alice();
    assert!(allowed(
        &s,
        &a,
        &pods("get", "ns").name("p").subresource("log")
    ));
    assert!(!allowed(&s, &a, &pods("get", "ns").name("p")));
    assert!(!allowed(
        &s,
        &a,
        &pods("get", "ns").name("p").subresource("exec")
    ));

    let s = with_rule(json!({"apiGroups": ["*"], "resources": ["*/status"], "verbs": ["update"]}));
    assert!(allowed(
        &s,
        &a,
        &Attributes::resource("update", "apps", "deployments").subresource("status")
    ));
    assert!(!allowed(
        &s,
        &a,
        &Attributes::resource("update", "apps", "deployments")
    ));
    assert!(!allowed(
        &s,
        &a,
        &Attributes::resource("update", "apps", "deployments").subresource("scale")
    ));
}

#[test]
fn rule_resource_names() {
    let s = with_rule(json!({
        "apiGroups": [""], "resources": ["configmaps"], "resourceNames": ["cfg"], "verbs": ["get", "list", "watch", "create"]
    }));
    let a = alice();
    let cm = |verb: &str| Attributes::resource(verb, "", "configmaps").namespace("ns");
    assert!(allowed(&s, &a, &cm("get").name("cfg")));
    assert!(!allowed(&s, &a, &cm("get").name("other")));
    // Collections and creates carry no name, so resourceNames rules never match them.
    assert!(!allowed(&s, &a, &cm("list")));
    assert!(!allowed(&s, &a, &cm("create")));
    // ...unless a field selector pins the name, as kubectl get -w does.
    let route = parse(
        &http::Method::GET,
        "/api/v1/namespaces/ns/configmaps",
        &parse_query(Some("watch=true&fieldSelector=metadata.name%3Dcfg")),
    );
    let query = parse_query(Some("watch=true&fieldSelector=metadata.name%3Dcfg"));
    let attrs = Attributes::from_request(
        &http::Method::GET,
        "/api/v1/namespaces/ns/configmaps",
        &route,
        &query,
    );
    assert_eq!(attrs, cm("watch").name("cfg").version("v1"));
    assert!(allowed(&s, &a, &attrs));
}

#[test]
fn rule_non_resource_urls() {
    let s = with_rule(
        json!({"nonResourceURLs": ["/healthz", "/logs/*", "/metrics*"], "verbs": ["get"]}),
    );
    let a = alice();
    let get = |p: &str| Attributes::non_resource("get", p);
    assert!(allowed(&s, &a, &get("/healthz")));
    assert!(!allowed(&s, &a, &get("/healthz/etcd")));
    assert!(allowed(&s, &a, &get("/logs/a/b")));
    assert!(allowed(&s, &a, &get("/logs/")));
    assert!(!allowed(&s, &a, &get("/logs")));
    assert!(allowed(&s, &a, &get("/metrics/slis")));
    assert!(!allowed(
        &s,
        &a,
        &Attributes::non_resource("post", "/healthz")
    ));
    // A URL rule never grants resources.
    assert!(!allowed(
        &s,
        &a,
        &Attributes::resource("get", "", "healthz")
    ));
}

#[test]
fn request_attributes_from_routes() {
    let q = parse_query(None);
    let attrs = |m: http::Method, p: &str| {
        let route = parse(&m, p, &q);
        Attributes::from_request(&m, p, &route, &q)
    };
    assert_eq!(
        attrs(http::Method::GET, "/api/v1/nodes"),
        Attributes::resource("list", "", "nodes").version("v1")
    );
    assert_eq!(
        attrs(http::Method::GET, "/api/v1/namespaces/foo"),
        Attributes::resource("get", "", "namespaces")
            .version("v1")
            .namespace("foo")
            .name("foo")
    );
    assert_eq!(
        attrs(
            http::Method::DELETE,
            "/apis/apps/v1/namespaces/d/deployments"
        ),
        Attributes::resource("deletecollection", "apps", "deployments")
            .version("v1")
            .namespace("d")
    );
    assert_eq!(
        attrs(http::Method::GET, "/apis"),
        Attributes::non_resource("get", "/apis")
    );
    assert_eq!(
        attrs(http::Method::HEAD, "/healthz"),
        Attributes::non_resource("head", "/healthz")
    );
    assert_eq!(
        attrs(http::Method::POST, "/logs"),
        Attributes::non_resource("post", "/logs")
    );
    let info = RequestInfo {
        verb: Verb::Get,
        group: String::new(),
        version: "v1".into(),
        namespace: Some("ns".into()),
        resource: "pods".into(),
        name: Some("p".into()),
        subresource: Some("proxy/some/path".into()),
    };
    assert_eq!(
        Attributes::from_request_info(&info, &q),
        pods("get", "ns")
            .version("v1")
            .name("p")
            .subresource("proxy")
    );
}

#[test]
fn role_binding_is_scoped_to_its_namespace() {
    let s = snapshot(vec![
        role(
            "dev",
            "reader",
            json!([{"apiGroups": [""], "resources": ["pods"], "verbs": ["list"]}]),
        ),
        role_binding(
            "dev",
            "rb",
            "Role",
            "reader",
            json!([{"kind": "User", "name": "alice"}]),
        ),
    ]);
    let a = alice();
    assert!(allowed(&s, &a, &pods("list", "dev")));
    assert!(!allowed(&s, &a, &pods("list", "prod")));
    assert!(!allowed(&s, &a, &pods("list", "")));
    let d = authorize(&s, &a, &pods("list", "dev"));
    assert_eq!(
        d.reason,
        r#"RBAC: allowed by RoleBinding "rb/dev" of Role "reader" to User "alice""#
    );
}

#[test]
fn role_binding_to_cluster_role() {
    let s = cluster(vec![role_binding(
        "dev",
        "view",
        "ClusterRole",
        "view",
        json!([{"kind": "User", "name": "alice"}]),
    )]);
    let a = alice();
    assert!(allowed(&s, &a, &pods("list", "dev")));
    assert!(!allowed(&s, &a, &pods("list", "prod")));
    assert!(!allowed(&s, &a, &pods("create", "dev")));
    assert!(!allowed(
        &s,
        &a,
        &Attributes::resource("get", "", "secrets").namespace("dev")
    ));
}

#[test]
fn cluster_role_binding_applies_everywhere() {
    let s = cluster(vec![cluster_role_binding(
        "ops-edit",
        "edit",
        json!([{"kind": "Group", "name": "ops"}]),
    )]);
    let bob = user("bob", &["ops"]);
    assert!(allowed(&s, &bob, &pods("create", "a")));
    assert!(allowed(
        &s,
        &bob,
        &Attributes::resource("delete", "apps", "deployments")
            .namespace("b")
            .name("x")
    ));
    assert!(allowed(&s, &bob, &pods("list", "")));
    assert!(!allowed(&s, &alice(), &pods("list", "a")));
    assert_eq!(
        authorize(&s, &bob, &pods("create", "a")).reason,
        r#"RBAC: allowed by ClusterRoleBinding "ops-edit" of ClusterRole "edit" to Group "ops""#
    );
}

#[test]
fn masters_and_authenticated_groups() {
    let s = cluster(vec![]);
    let admin = user("admin", &[SYSTEM_MASTERS]);
    assert_eq!(
        authorize(
            &s,
            &admin,
            &Attributes::resource("impersonate", "", "users").name("x")
        ),
        Decision {
            allowed: true,
            reason: String::new()
        }
    );
    // Even with no bindings at all.
    assert!(allowed(
        &snapshot(vec![]),
        &admin,
        &Attributes::non_resource("delete", "/x")
    ));
    // Every authenticated user gets discovery and self reviews.
    let a = alice();
    assert!(allowed(
        &s,
        &a,
        &Attributes::non_resource("get", "/apis/apps/v1")
    ));
    assert!(allowed(
        &s,
        &a,
        &Attributes::non_resource("get", "/version")
    ));
    assert!(allowed(
        &s,
        &a,
        &Attributes::resource("create", "authorization.k8s.io", "selfsubjectaccessreviews")
    ));
    assert!(allowed(
        &s,
        &a,
        &Attributes::resource("create", "authentication.k8s.io", "selfsubjectreviews")
    ));
    assert!(!allowed(
        &s,
        &a,
        &Attributes::non_resource("get", "/metrics")
    ));
    assert!(!allowed(&s, &a, &pods("list", "default")));
    // Anonymous users are not in system:authenticated.
    let anon = user(ANONYMOUS, &[ALL_UNAUTHENTICATED]);
    assert!(!allowed(
        &s,
        &anon,
        &Attributes::non_resource("get", "/apis")
    ));
    assert!(allowed(
        &s,
        &anon,
        &Attributes::non_resource("get", "/healthz")
    ));
}

#[test]
fn service_account_subjects() {
    let s = cluster(vec![
        role_binding(
            "team",
            "sa-view",
            "ClusterRole",
            "view",
            json!([{"kind": "ServiceAccount", "name": "builder"}]),
        ),
        role_binding(
            "team",
            "sa-other",
            "ClusterRole",
            "edit",
            json!([{"kind": "ServiceAccount", "name": "deployer", "namespace": "ci"}]),
        ),
        role_binding(
            "shared",
            "all-sas",
            "ClusterRole",
            "view",
            json!([{"kind": "Group", "name": "system:serviceaccounts:ci"}]),
        ),
    ]);
    let builder = service_account_user("team", "builder", "u1");
    assert_eq!(builder.name, "system:serviceaccount:team:builder");
    assert_eq!(
        builder.groups,
        [
            "system:serviceaccounts",
            "system:serviceaccounts:team",
            "system:authenticated"
        ]
    );
    assert!(allowed(&s, &builder, &pods("list", "team")));
    assert!(!allowed(&s, &builder, &pods("list", "other")));
    assert!(!allowed(&s, &builder, &pods("create", "team")));
    assert_eq!(
        authorize(&s, &builder, &pods("list", "team")).reason,
        r#"RBAC: allowed by RoleBinding "sa-view/team" of ClusterRole "view" to ServiceAccount "builder/team""#
    );
    // Same name, other namespace: no match.
    assert!(!allowed(
        &s,
        &service_account_user("other", "builder", ""),
        &pods("list", "team")
    ));
    let deployer = service_account_user("ci", "deployer", "");
    assert!(allowed(&s, &deployer, &pods("create", "team")));
    assert!(allowed(&s, &deployer, &pods("get", "shared")));
    assert!(!allowed(&s, &deployer, &pods("create", "shared")));
    assert_eq!(
        split_service_account_username("system:serviceaccount:a:b"),
        Some(("a", "b"))
    );
    assert_eq!(
        split_service_account_username("system:serviceaccount:a"),
        None
    );
    assert_eq!(
        split_service_account_username("system:serviceaccount:a:b:c"),
        None
    );
    assert_eq!(split_service_account_username("alice"), None);
}

#[test]
fn aggregation_follows_labels_transitively() {
    let s = cluster(vec![
        cluster_role(
            "crontabs-view",
            json!({"rbac.authorization.k8s.io/aggregate-to-view": "true"}),
            json!([{"apiGroups": ["stable.example.com"], "resources": ["crontabs"], "verbs": ["get", "list"]}]),
        ),
        cluster_role("monitoring", json!({}), json!([])),
        cluster_role(
            "metrics-reader",
            json!({"example.com/monitoring": "yes", "tier": "b"}),
            json!([{"nonResourceURLs": ["/metrics"], "verbs": ["get"]}]),
        ),
        cluster_role_binding(
            "alice-admin",
            "admin",
            json!([{"kind": "User", "name": "alice"}]),
        ),
        cluster_role_binding(
            "bob-mon",
            "monitoring",
            json!([{"kind": "User", "name": "bob"}]),
        ),
    ]);
    let a = alice();
    let crontabs =
        |verb: &str| Attributes::resource(verb, "stable.example.com", "crontabs").namespace("x");
    // admin ⊇ edit ⊇ view ⊇ crontabs-view.
    assert!(allowed(&s, &a, &crontabs("list")));
    assert!(!allowed(&s, &a, &crontabs("delete")));
    assert!(allowed(&s, &a, &pods("create", "x")));
    assert!(allowed(
        &s,
        &a,
        &Attributes::resource("create", RBAC_GROUP, "rolebindings").namespace("x")
    ));
    assert!(!allowed(&s, &a, &Attributes::resource("list", "", "nodes")));
    let reason = authorize(&s, &a, &crontabs("list")).reason;
    assert_eq!(
        reason,
        r#"RBAC: allowed by ClusterRoleBinding "alice-admin" of ClusterRole "admin" to User "alice""#
    );

    // matchExpressions; a selector that matches nothing grants nothing.
    let bob = user("bob", &[]);
    let metrics = Attributes::non_resource("get", "/metrics");
    assert!(!allowed(&s, &bob, &metrics));
    let (key, mut value) = cluster_role(
        "monitoring",
        json!({}),
        json!([{"apiGroups": ["x"], "resources": ["y"], "verbs": ["get"]}]),
    );
    value["aggregationRule"] = json!({"clusterRoleSelectors": [
        {"matchExpressions": [
            {"key": "example.com/monitoring", "operator": "In", "values": ["yes"]},
            {"key": "tier", "operator": "NotIn", "values": ["a"]},
            {"key": "absent", "operator": "DoesNotExist"},
        ]}
    ]});
    let mut objects: Vec<(String, Value)> = s
        .range("/", None)
        .map(|kv| (kv.key.to_string(), Arc::unwrap_or_clone(kv.value())))
        .collect();
    objects.retain(|(k, _)| !k.ends_with("/clusterroles/monitoring"));
    objects.push((key, value));
    let s = snapshot(objects);
    assert!(allowed(&s, &bob, &metrics));
    // The aggregated role's own rules are replaced, as the controller does.
    assert!(!allowed(&s, &bob, &Attributes::resource("get", "x", "y")));
    let monitoring = s
        .get(&format!("/{RBAC_GROUP}/clusterroles/monitoring"))
        .map(|kv| Arc::unwrap_or_clone(kv.value()));
    let rules = aggregated_rules(&s, &monitoring.unwrap_or_default());
    assert_eq!(
        rules,
        Some(vec![
            json!({"verbs": ["get"], "nonResourceURLs": ["/metrics"]})
        ])
    );
}

#[test]
fn aggregation_cycles_terminate() {
    let mut a = cluster_role("a", json!({"agg": "b"}), json!([]));
    a.1["aggregationRule"] = json!({"clusterRoleSelectors": [{"matchLabels": {"agg": "a"}}]});
    let mut b = cluster_role("b", json!({"agg": "a"}), json!([]));
    b.1["aggregationRule"] = json!({"clusterRoleSelectors": [{"matchLabels": {"agg": "b"}}]});
    let leaf = cluster_role(
        "leaf",
        json!({"agg": "a"}),
        json!([{"apiGroups": [""], "resources": ["pods"], "verbs": ["get"]}]),
    );
    let s = snapshot(vec![
        a,
        b,
        leaf,
        cluster_role_binding("x", "b", json!([{"kind": "User", "name": "alice"}])),
    ]);
    assert!(allowed(&s, &alice(), &pods("get", "n")));
}

#[test]
fn missing_roles_are_reported() {
    let s = snapshot(vec![
        cluster_role_binding(
            "dangling",
            "gone",
            json!([{"kind": "User", "name": "alice"}]),
        ),
        role_binding(
            "ns",
            "rb",
            "Role",
            "nope",
            json!([{"kind": "User", "name": "alice"}]),
        ),
        cluster_role_binding("other", "gone2", json!([{"kind": "User", "name": "bob"}])),
    ]);
    let a = alice();
    let d = authorize(&s, &a, &Attributes::resource("list", "", "nodes"));
    assert_eq!(
        d,
        Decision {
            allowed: false,
            reason: r#"RBAC: clusterrole.rbac.authorization.k8s.io "gone" not found"#.into()
        }
    );
    let d = authorize(&s, &a, &pods("list", "ns"));
    assert_eq!(
        d.reason,
        r#"RBAC: [clusterrole.rbac.authorization.k8s.io "gone" not found, role.rbac.authorization.k8s.io "nope" not found]"#
    );
    assert_eq!(
        forbidden(&pods("list", "ns"), &a, &d.reason).message,
        r#"pods is forbidden: User "alice" cannot list resource "pods" in API group "" in the namespace "ns": RBAC: [clusterrole.rbac.authorization.k8s.io "gone" not found, role.rbac.authorization.k8s.io "nope" not found]"#
    );
}

#[test]
fn forbidden_messages_match_kube() {
    let a = alice();
    let e = forbidden(&Attributes::resource("list", "", "nodes"), &a, "");
    assert_eq!(e.code, 403);
    assert_eq!(e.reason, "Forbidden");
    assert_eq!(
        e.message,
        r#"nodes is forbidden: User "alice" cannot list resource "nodes" in API group "" at the cluster scope"#
    );
    let status = e.to_status();
    assert_eq!(status["details"], json!({"kind": "nodes"}));
    assert_eq!(status["reason"], "Forbidden");

    let e = forbidden(&pods("list", "default"), &a, "");
    assert_eq!(
        e.message,
        r#"pods is forbidden: User "alice" cannot list resource "pods" in API group "" in the namespace "default""#
    );

    let e = forbidden(
        &Attributes::resource("update", "apps", "deployments")
            .namespace("web")
            .name("api")
            .subresource("scale"),
        &user("system:serviceaccount:web:ci", &[]),
        "",
    );
    assert_eq!(
        e.message,
        r#"deployments.apps "api" is forbidden: User "system:serviceaccount:web:ci" cannot update resource "deployments/scale" in API group "apps" in the namespace "web""#
    );
    assert_eq!(
        e.to_status()["details"],
        json!({"name": "api", "group": "apps", "kind": "deployments"})
    );

    let e = forbidden(&Attributes::non_resource("get", "/metrics"), &a, "");
    assert_eq!(
        e.message,
        r#"forbidden: User "alice" cannot get path "/metrics""#
    );
    assert_eq!(e.to_status()["details"], json!({}));

    let e = forbidden(&Attributes::non_resource("get", "/<x>&\"q\""), &a, "why");
    assert_eq!(
        e.message,
        r#"forbidden: User "alice" cannot get path "/&lt;x&gt;&amp;\"q\"": why"#
    );
}

#[test]
fn impersonation_allowed() {
    let s = cluster(vec![
        cluster_role(
            "impersonator",
            json!({}),
            json!([
                {"apiGroups": [""], "resources": ["users", "groups", "serviceaccounts"], "verbs": ["impersonate"]},
                {"apiGroups": ["authentication.k8s.io"], "resources": ["uids", "userextras/scopes"], "verbs": ["impersonate"]},
            ]),
        ),
        cluster_role_binding(
            "imp",
            "impersonator",
            json!([{"kind": "User", "name": "alice"}]),
        ),
    ]);
    let a = alice();
    assert_eq!(impersonate(&s, &a, &http::HeaderMap::new()), Ok(None));

    let mut h = http::HeaderMap::new();
    h.insert("Impersonate-User", "bob".parse().expect("header"));
    h.append("Impersonate-Group", "dev".parse().expect("header"));
    h.append("Impersonate-Group", "ops".parse().expect("header"));
    h.insert("Impersonate-Uid", "1234".parse().expect("header"));
    h.append("Impersonate-Extra-Scopes", "view".parse().expect("header"));
    h.append("Impersonate-Extra-Scopes", "edit".parse().expect("header"));
    let got = impersonate_with_extra(&s, &a, &h)
        .expect("allowed")
        .expect("impersonating");
    assert_eq!(
        got.user,
        User {
            name: "bob".into(),
            uid: "1234".into(),
            groups: vec!["dev".into(), "ops".into(), ALL_AUTHENTICATED.into()],
            extra: [(
                "scopes".to_string(),
                vec!["view".to_string(), "edit".to_string()]
            )]
            .into_iter()
            .collect(),
        }
    );
    assert_eq!(
        got.extra.get("scopes"),
        Some(&vec!["view".to_string(), "edit".to_string()])
    );

    // A service account without groups gets its own groups.
    let mut h = http::HeaderMap::new();
    h.insert(
        "impersonate-user",
        "system:serviceaccount:ci:builder".parse().expect("header"),
    );
    let got = impersonate(&s, &a, &h)
        .expect("allowed")
        .expect("impersonating");
    assert_eq!(
        got.groups,
        [
            "system:serviceaccounts",
            "system:serviceaccounts:ci",
            "system:authenticated"
        ]
    );

    // Impersonating only a user drops the caller's groups.
    let admin = user("admin", &[SYSTEM_MASTERS]);
    let mut h = http::HeaderMap::new();
    h.insert("impersonate-user", "carol".parse().expect("header"));
    let got = impersonate(&s, &admin, &h)
        .expect("allowed")
        .expect("impersonating");
    assert_eq!(got, user("carol", &[ALL_AUTHENTICATED]));

    let mut h2 = h.clone();
    h2.insert("x-other", "1".parse().expect("header"));
    strip_impersonation_headers(&mut h2);
    assert_eq!(h2.len(), 1);
}

#[test]
fn impersonation_denied() {
    let s = cluster(vec![
        cluster_role(
            "impersonate-bob",
            json!({}),
            json!([{"apiGroups": [""], "resources": ["users"], "resourceNames": ["bob"], "verbs": ["impersonate"]}]),
        ),
        cluster_role_binding(
            "imp",
            "impersonate-bob",
            json!([{"kind": "User", "name": "alice"}]),
        ),
    ]);
    let a = alice();
    let headers = |pairs: &[(&'static str, &str)]| {
        let mut h = http::HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, v.parse().expect("header"));
        }
        h
    };
    let e = impersonate(
        &s,
        &user("mallory", &[]),
        &headers(&[("impersonate-user", "bob")]),
    )
    .expect_err("denied");
    assert_eq!(e.code, 403);
    assert_eq!(
        e.message,
        r#"users "bob" is forbidden: User "mallory" cannot impersonate resource "users" in API group "" at the cluster scope"#
    );
    assert!(impersonate(&s, &a, &headers(&[("impersonate-user", "bob")])).is_ok());
    let e = impersonate(&s, &a, &headers(&[("impersonate-user", "carol")])).expect_err("denied");
    assert!(e.message.starts_with(r#"users "carol" is forbidden"#));
    let e = impersonate(
        &s,
        &a,
        &headers(&[
            ("impersonate-user", "bob"),
            ("impersonate-group", "system:masters"),
        ]),
    )
    .expect_err("denied");
    assert_eq!(
        e.message,
        r#"groups "system:masters" is forbidden: User "alice" cannot impersonate resource "groups" in API group "" at the cluster scope"#
    );
    let e = impersonate(
        &s,
        &a,
        &headers(&[(
            "impersonate-user",
            "system:serviceaccount:kube-system:default",
        )]),
    )
    .expect_err("denied");
    assert_eq!(
        e.message,
        r#"serviceaccounts "default" is forbidden: User "alice" cannot impersonate resource "serviceaccounts" in API group "" in the namespace "kube-system""#
    );
    let e = impersonate(
        &s,
        &a,
        &headers(&[("impersonate-user", "bob"), ("impersonate-uid", "42")]),
    )
    .expect_err("denied");
    assert_eq!(
        e.message,
        r#"uids.authentication.k8s.io "42" is forbidden: User "alice" cannot impersonate resource "uids" in API group "authentication.k8s.io" at the cluster scope"#
    );
    let e = impersonate(
        &s,
        &a,
        &headers(&[
            ("impersonate-user", "bob"),
            ("impersonate-extra-acme.com%2fproject", "p1"),
        ]),
    )
    .expect_err("denied");
    assert_eq!(
        e.message,
        r#"userextras.authentication.k8s.io "p1" is forbidden: User "alice" cannot impersonate resource "userextras/acme.com/project" in API group "authentication.k8s.io" at the cluster scope"#
    );
    let e = impersonate(&s, &a, &headers(&[("impersonate-group", "dev")])).expect_err("no user");
    assert_eq!(e.code, 500);
}

#[test]
fn escalation_prevention() {
    let s = cluster(vec![
        role_binding(
            "dev",
            "alice-edit",
            "ClusterRole",
            "edit",
            json!([{"kind": "User", "name": "alice"}]),
        ),
        cluster_role(
            "binder",
            json!({}),
            json!([{"apiGroups": [RBAC_GROUP], "resources": ["clusterroles"], "resourceNames": ["view"], "verbs": ["bind"]}]),
        ),
        cluster_role_binding(
            "carol-binder",
            "binder",
            json!([{"kind": "User", "name": "carol"}]),
        ),
    ]);
    let a = alice();
    let create = |resource: &str, ns: &str| {
        Attributes::resource("create", RBAC_GROUP, resource).namespace(ns)
    };
    let binding = |ns: &str, kind: &str, role: &str| {
        json!({
            "metadata": {"name": "b", "namespace": ns},
            "roleRef": {"apiGroup": RBAC_GROUP, "kind": kind, "name": role},
            "subjects": [{"kind": "User", "name": "alice"}],
        })
    };
    // alice holds view's rules in dev (edit ⊇ view), so she may bind it there...
    assert_eq!(
        check_rbac_write(
            &s,
            &a,
            &create("rolebindings", "dev"),
            &binding("dev", "ClusterRole", "view")
        ),
        Ok(())
    );
    // ...but not admin, nor view anywhere else.
    let e = check_rbac_write(
        &s,
        &a,
        &create("rolebindings", "dev"),
        &binding("dev", "ClusterRole", "admin"),
    )
    .expect_err("escalation");
    assert!(e.message.starts_with(
        "rolebindings.rbac.authorization.k8s.io \"b\" is forbidden: user \"alice\" (groups=[\"system:authenticated\"]) is attempting to grant RBAC permissions not currently held:\n{APIGroups:[\"authorization.k8s.io\"], Resources:[\"localsubjectaccessreviews\"], Verbs:[\"create\"]}\n"
    ), "{}", e.message);
    assert_eq!(e.code, 403);
    assert!(
        check_rbac_write(
            &s,
            &a,
            &create("rolebindings", "prod"),
            &binding("prod", "ClusterRole", "view")
        )
        .is_err()
    );
    // The bind verb on the role allows binding it anywhere.
    let carol = user("carol", &[]);
    let crb = |role: &str| {
        let mut b = binding("", "ClusterRole", role);
        b["metadata"] = json!({"name": "b"});
        b
    };
    assert_eq!(
        check_rbac_write(&s, &carol, &create("clusterrolebindings", ""), &crb("view")),
        Ok(())
    );
    assert!(
        check_rbac_write(&s, &carol, &create("clusterrolebindings", ""), &crb("edit")).is_err()
    );
    let e = check_rbac_write(
        &s,
        &carol,
        &create("clusterrolebindings", ""),
        &crb("missing"),
    )
    .expect_err("missing");
    assert_eq!(
        e.message,
        r#"clusterrolebindings.rbac.authorization.k8s.io "b" is forbidden: clusterrole.rbac.authorization.k8s.io "missing" not found"#
    );

    // Roles: only rules already held.
    let role_obj =
        |rules: Value| json!({"metadata": {"name": "r", "namespace": "dev"}, "rules": rules});
    let ok =
        role_obj(json!([{"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "delete"]}]));
    assert_eq!(
        check_rbac_write(&s, &a, &create("roles", "dev"), &ok),
        Ok(())
    );
    let bad = role_obj(
        json!([{"apiGroups": [""], "resources": ["nodes", "pods"], "verbs": ["get", "list"]}]),
    );
    let e = check_rbac_write(&s, &a, &create("roles", "dev"), &bad).expect_err("escalation");
    assert_eq!(
        e.message,
        "roles.rbac.authorization.k8s.io \"r\" is forbidden: user \"alice\" (groups=[\"system:authenticated\"]) is attempting to grant RBAC permissions not currently held:\n{APIGroups:[\"\"], Resources:[\"nodes\"], Verbs:[\"get\" \"list\"]}"
    );
    // An aggregationRule needs full rights.
    let mut agg = json!({"metadata": {"name": "agg"}, "rules": []});
    agg["aggregationRule"] = json!({"clusterRoleSelectors": [{"matchLabels": {"x": "y"}}]});
    let e = check_rbac_write(&s, &a, &create("clusterroles", ""), &agg).expect_err("aggregation");
    assert_eq!(
        e.message,
        r#"clusterroles.rbac.authorization.k8s.io "agg" is forbidden: must have cluster-admin privileges to use the aggregationRule"#
    );
    let admin = user("root", &[SYSTEM_MASTERS]);
    assert_eq!(
        check_rbac_write(&s, &admin, &create("clusterroles", ""), &agg),
        Ok(())
    );
    // Other resources are not checked here.
    assert_eq!(
        check_rbac_write(&s, &a, &pods("create", "dev"), &json!({})),
        Ok(())
    );
}

#[test]
fn self_subject_access_reviews() {
    let s = cluster(vec![role_binding(
        "dev",
        "v",
        "ClusterRole",
        "view",
        json!([{"kind": "User", "name": "alice"}]),
    )]);
    let a = alice();
    let review = |spec: Value| json!({"apiVersion": "authorization.k8s.io/v1", "kind": "SelfSubjectAccessReview", "spec": spec});
    let out = self_subject_access_review(
        &s,
        &a,
        &review(
            json!({"resourceAttributes": {"namespace": "dev", "verb": "list", "resource": "pods"}}),
        ),
    )
    .expect("valid");
    assert_eq!(
        out["status"],
        json!({"allowed": true, "reason": "RBAC: allowed by RoleBinding \"v/dev\" of ClusterRole \"view\" to User \"alice\""})
    );
    assert_eq!(out["metadata"], json!({"creationTimestamp": null}));
    assert_eq!(out["spec"]["resourceAttributes"]["resource"], "pods");
    let out = self_subject_access_review(
        &s,
        &a,
        &review(json!({"resourceAttributes": {"namespace": "dev", "verb": "create", "resource": "pods"}})),
    )
    .expect("valid");
    assert_eq!(out["status"], json!({"allowed": false}));
    let out = self_subject_access_review(
        &s,
        &a,
        &review(json!({"nonResourceAttributes": {"verb": "get", "path": "/api"}})),
    )
    .expect("valid");
    assert_eq!(out["status"]["allowed"], true);
    let e = self_subject_access_review(&s, &a, &review(json!({}))).expect_err("invalid");
    assert_eq!(e.code, 422);
    assert!(
        e.message.contains(
            "exactly one of nonResourceAttributes or resourceAttributes must be specified"
        )
    );

    let rules =
        self_subject_rules_review(&s, &a, &json!({"spec": {"namespace": "dev"}})).expect("valid");
    assert_eq!(rules["kind"], "SelfSubjectRulesReview");
    assert_eq!(rules["status"]["incomplete"], false);
    let resource_rules = rules["status"]["resourceRules"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert!(resource_rules.iter().any(|r| {
        r["resources"]
            .as_array()
            .is_some_and(|rs| rs.contains(&json!("pods")))
    }));
    assert!(
        !rules["status"]["nonResourceRules"]
            .as_array()
            .unwrap_or(&vec![])
            .is_empty()
    );
    assert_eq!(
        self_subject_rules_review(&s, &a, &json!({"spec": {}})).map_err(|e| e.code),
        Err(400)
    );
}

#[test]
fn self_subject_review_reports_user() {
    let u = User {
        name: "alice".into(),
        uid: "u-1".into(),
        groups: vec!["dev".into(), ALL_AUTHENTICATED.into()],
        extra: Default::default(),
    };
    assert_eq!(
        self_subject_review(&u),
        json!({
            "apiVersion": "authentication.k8s.io/v1",
            "kind": "SelfSubjectReview",
            "metadata": {"creationTimestamp": null},
            "status": {"userInfo": {"username": "alice", "uid": "u-1", "groups": ["dev", "system:authenticated"]}},
        })
    );
}

#[test]
fn bootstrap_policy_shape() {
    let policy = bootstrap_policy();
    let keys: Vec<&str> = policy.iter().map(|(k, _)| k.as_str()).collect();
    for name in [
        "cluster-admin",
        "admin",
        "edit",
        "view",
        "system:discovery",
        "system:basic-user",
        "system:public-info-viewer",
    ] {
        assert!(
            keys.contains(&format!("/{RBAC_GROUP}/clusterroles/{name}").as_str()),
            "{name}"
        );
    }
    for name in [
        "cluster-admin",
        "system:discovery",
        "system:basic-user",
        "system:public-info-viewer",
    ] {
        assert!(
            keys.contains(&format!("/{RBAC_GROUP}/clusterrolebindings/{name}").as_str()),
            "{name}"
        );
    }
    for (key, object) in &policy {
        assert_eq!(key.rsplit('/').next(), Some(object_name(object)));
        assert_eq!(object["apiVersion"], "rbac.authorization.k8s.io/v1");
    }
    let s = snapshot(policy);
    // view is read-only and excludes secrets; edit may write secrets; admin may manage roles.
    let u = |role: &str| {
        let s2 = {
            let mut objects: Vec<(String, Value)> = s
                .range("/", None)
                .map(|kv| (kv.key.to_string(), Arc::unwrap_or_clone(kv.value())))
                .collect();
            objects.push(role_binding(
                "n",
                "rb",
                "ClusterRole",
                role,
                json!([{"kind": "User", "name": "alice"}]),
            ));
            snapshot(objects)
        };
        move |a: Attributes| authorize(&s2, &alice(), &a).allowed
    };
    let view = u("view");
    assert!(view(pods("watch", "n")));
    assert!(!view(
        Attributes::resource("get", "", "secrets").namespace("n")
    ));
    assert!(!view(pods("delete", "n")));
    let edit = u("edit");
    assert!(edit(
        Attributes::resource("update", "", "secrets").namespace("n")
    ));
    assert!(edit(
        Attributes::resource("impersonate", "", "serviceaccounts").namespace("n")
    ));
    assert!(!edit(
        Attributes::resource("create", RBAC_GROUP, "roles").namespace("n")
    ));
    let admin = u("admin");
    assert!(admin(
        Attributes::resource("create", RBAC_GROUP, "roles").namespace("n")
    ));
    assert!(admin(
        Attributes::resource("patch", "apps", "deployments")
            .namespace("n")
            .subresource("scale")
    ));
    assert!(!admin(Attributes::resource("create", "", "namespaces")));
}

#[test]
fn subject_access_reviews() {
    let s = cluster(vec![role_binding(
        "dev",
        "v",
        "ClusterRole",
        "view",
        json!([{"kind": "ServiceAccount", "name": "sa1", "namespace": "dev"}]),
    )]);
    let review = |kind: &str, spec: Value| json!({"apiVersion": "authorization.k8s.io/v1", "kind": kind, "spec": spec});
    let sa = "system:serviceaccount:dev:sa1";
    let ask = |ns: &str, verb: &str| json!({"user": sa, "resourceAttributes": {"namespace": ns, "verb": verb, "resource": "pods"}});
    let out = subject_access_review(&s, &review("SubjectAccessReview", ask("dev", "list")), None)
        .expect("valid");
    assert_eq!(out["kind"], "SubjectAccessReview");
    assert_eq!(out["status"]["allowed"], true);
    let out = subject_access_review(
        &s,
        &review("SubjectAccessReview", ask("prod", "list")),
        None,
    )
    .expect("valid");
    assert_eq!(out["status"], json!({"allowed": false}));
    let nobody = json!({"resourceAttributes": {"verb": "get", "resource": "pods"}});
    let e = subject_access_review(&s, &review("SubjectAccessReview", nobody), None)
        .expect_err("no user");
    assert_eq!(e.code, 422);
    assert!(
        e.message
            .contains("at least one of user or group must be specified")
    );

    // local: in its own namespace only, resources only
    let local = |spec: Value| review("LocalSubjectAccessReview", spec);
    let out = subject_access_review(&s, &local(ask("dev", "get")), Some("dev")).expect("valid");
    assert_eq!(out["kind"], "LocalSubjectAccessReview");
    assert_eq!(out["metadata"]["namespace"], "dev");
    assert_eq!(out["status"]["allowed"], true);
    let e = subject_access_review(&s, &local(ask("prod", "get")), Some("dev")).expect_err("ns");
    assert_eq!(e.code, 400);
    assert!(
        e.message
            .contains("spec.resourceAttributes.namespace must match namespace: dev")
    );
    let non_resource =
        json!({"user": sa, "nonResourceAttributes": {"verb": "get", "path": "/api"}});
    let e = subject_access_review(&s, &local(non_resource), Some("dev")).expect_err("non-resource");
    assert_eq!(e.code, 422);
}
