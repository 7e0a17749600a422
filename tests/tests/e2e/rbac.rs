//! End-to-end RBAC, impersonation and self-review tests: the real `flotilla
//! apiserver` binary driven by kubectl.
//!
//! Users: the admin of the generated kubeconfig (client certificate, group
//! `system:masters`) impersonates others with `--as`/`--as-group`; bearer-token
//! users come from a `tokens.csv` seeded into the data directory before the server
//! starts and are driven with `kubectl --token` through a kubeconfig that carries no
//! credentials of its own (kubectl would otherwise also present the admin's client
//! certificate, which the server, like kube-apiserver, prefers):
//!
//! | token       | user  | uid       | groups    |
//! |-------------|-------|-----------|-----------|
//! | `alice-tok` | alice | alice-uid | devs, qa  |
//! | `bob-tok`   | bob   | bob-uid   | (none)    |
//! | `carol-tok` | carol | carol-uid | (none)    |
//!
//! Every scenario runs once per kubectl from [`kubectls()`], each against its own
//! fresh server. Expected texts are kube-apiserver's and kubectl's. Every wait is
//! bounded; every process is killed by PID.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use flotilla_tests::{ApiServer, kubectls};
use flotilla_tests::{norm_spaces as norm, run_bounded};
use serde_json::Value;

/// Upper bound for one kubectl invocation.
const CMD_TIMEOUT: Duration = Duration::from_secs(60);

const TOKENS: &str = "admin-tok,admin,admin,\"system:masters\"\n\
alice-tok,alice,alice-uid,\"devs,qa\"\n\
bob-tok,bob,bob-uid,\"\"\n\
carol-tok,carol,carol-uid,\"\"\n";

// ---------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------

/// Who runs a kubectl command.
#[derive(Clone, Copy)]
enum As<'a> {
    /// The admin of the generated kubeconfig.
    Admin,
    /// The admin, impersonating a user (and groups).
    Impersonated(&'a str, &'a [&'a str]),
    /// A bearer token from the seeded tokens file.
    Token(&'a str),
}

/// One kubectl against one fresh server.
struct Session {
    srv: ApiServer,
    kubectl: PathBuf,
    minor: u32,
    /// A kubeconfig with the server and its CA but no user credentials.
    bare_kubeconfig: PathBuf,
}

impl Session {
    fn new(kubectl: PathBuf) -> Session {
        let srv = ApiServer::start_prepared(&[], |dir: &Path| {
            std::fs::write(dir.join("tokens.csv"), TOKENS).expect("seed tokens.csv");
        });
        let admin_config = std::fs::read_to_string(&srv.kubeconfig).expect("kubeconfig");
        let ca = admin_config
            .lines()
            .find_map(|l| l.trim().strip_prefix("certificate-authority-data: "))
            .expect("certificate-authority-data in kubeconfig")
            .to_string();
        let bare_kubeconfig = srv.dir.join("bare-kubeconfig");
        std::fs::write(
            &bare_kubeconfig,
            format!(
                "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster:\n    server: {}\n    certificate-authority-data: {ca}\nusers:\n- name: nobody\n  user: {{}}\ncontexts:\n- name: c\n  context:\n    cluster: c\n    user: nobody\ncurrent-context: c\n",
                srv.url
            ),
        )
        .expect("write bare kubeconfig");
        let mut s = Session {
            srv,
            kubectl,
            minor: 0,
            bare_kubeconfig,
        };
        // Fill kubectl's discovery cache as the admin. With a cold cache, kubectl run
        // by a user who may not read discovery (e.g. a refused impersonation) fails
        // in discovery and prints only `Error from server (Forbidden): unknown`, as it
        // does against kube-apiserver.
        s.admin(&["get", "namespaces"]);
        let out = s.ok(As::Admin, &["version", "-o", "json"]);
        let v: Value =
            serde_json::from_str(&out).unwrap_or_else(|e| panic!("version -o json: {e}: {out}"));
        s.minor = v["clientVersion"]["minor"]
            .as_str()
            .and_then(|m| m.trim_end_matches('+').parse().ok())
            .unwrap_or_else(|| panic!("clientVersion.minor in {out}"));
        s
    }

    fn who(&self) -> String {
        format!("{} (1.{})", self.kubectl.display(), self.minor)
    }

    fn cmd(&self, who: As<'_>, args: &[&str]) -> Command {
        let mut c = self.srv.kubectl(&self.kubectl);
        c.arg("--request-timeout=30s");
        match who {
            As::Admin => {}
            As::Impersonated(user, groups) => {
                c.arg(format!("--as={user}"));
                for g in groups {
                    c.arg(format!("--as-group={g}"));
                }
            }
            As::Token(token) => {
                c.env("KUBECONFIG", &self.bare_kubeconfig)
                    .arg(format!("--token={token}"));
            }
        }
        c.args(args);
        c
    }

    fn run(&self, who: As<'_>, args: &[&str]) -> (i32, String, String) {
        run_bounded(&mut self.cmd(who, args), None, CMD_TIMEOUT)
    }

    /// Runs kubectl, asserts success, returns stdout.
    #[track_caller]
    fn ok(&self, who: As<'_>, args: &[&str]) -> String {
        let (code, out, err) = self.run(who, args);
        assert!(
            code == 0,
            "{}: kubectl {args:?} failed ({code})\nstdout: {out}\nstderr: {err}",
            self.who()
        );
        out
    }

    /// Runs kubectl as the admin, asserts it succeeded.
    #[track_caller]
    fn admin(&self, args: &[&str]) -> String {
        self.ok(As::Admin, args)
    }

    /// Runs kubectl, asserts it failed with exactly `expected` on stderr.
    #[track_caller]
    fn fails_with(&self, who: As<'_>, args: &[&str], expected: &str) {
        let (code, out, err) = self.run(who, args);
        assert!(
            code != 0,
            "{}: kubectl {args:?} unexpectedly succeeded\nstdout: {out}\nstderr: {err}",
            self.who()
        );
        assert_eq!(
            err.trim_end(),
            expected,
            "{}: kubectl {args:?}: stderr differs",
            self.who()
        );
    }

    /// `kubectl auth can-i ARGS`: asserts the answer (and exit code 0 for yes, 1 for
    /// no).
    #[track_caller]
    fn can_i(&self, who: As<'_>, args: &[&str], yes: bool) {
        let mut a = vec!["auth", "can-i"];
        a.extend_from_slice(args);
        let (code, out, err) = self.run(who, &a);
        let (want_code, want) = if yes { (0, "yes") } else { (1, "no") };
        assert!(
            code == want_code && out.trim() == want,
            "{}: kubectl {a:?}: want {want} (exit {want_code}), got exit {code}\nstdout: {out}\nstderr: {err}",
            self.who()
        );
    }

    fn get_json(&self, args: &[&str]) -> Value {
        let mut a = vec!["get"];
        a.extend_from_slice(args);
        a.extend_from_slice(&["-o", "json"]);
        let out = self.admin(&a);
        serde_json::from_str(&out)
            .unwrap_or_else(|e| panic!("{}: {a:?}: not JSON ({e}): {out}", self.who()))
    }

    /// The names listed by `kubectl get ... -o name` run by `who`.
    fn names(&self, who: As<'_>, args: &[&str]) -> Vec<String> {
        let mut a = vec!["get"];
        a.extend_from_slice(args);
        a.extend_from_slice(&["-o", "name"]);
        let out = self.ok(who, &a);
        out.lines().map(str::to_string).collect()
    }
}

/// Runs `f` once per kubectl, each with its own fresh server.
fn each_kubectl(f: impl Fn(&Session)) {
    let all = kubectls();
    if all.len() < 2 {
        eprintln!(
            "note: newest kubectl not installed (run scripts/install-kubectl-new); testing only the machine's kubectl"
        );
    }
    for k in all {
        let s = Session::new(k);
        f(&s);
    }
}

const ALICE: As<'static> = As::Token("alice-tok");
const BOB: As<'static> = As::Token("bob-tok");
const CAROL: As<'static> = As::Token("carol-tok");

fn imp(user: &str) -> As<'_> {
    As::Impersonated(user, &[])
}

// ---------------------------------------------------------------------------
// Forbidden answers
// ---------------------------------------------------------------------------

#[test]
fn forbidden_messages() {
    each_kubectl(|s| {
        s.admin(&["create", "configmap", "c1", "--from-literal=a=b"]);
        // a token user with no bindings
        s.fails_with(
            ALICE,
            &["get", "pods"],
            r#"Error from server (Forbidden): pods is forbidden: User "alice" cannot list resource "pods" in API group "" in the namespace "default""#,
        );
        // the same user impersonated by the admin
        s.fails_with(
            imp("alice"),
            &["get", "pods"],
            r#"Error from server (Forbidden): pods is forbidden: User "alice" cannot list resource "pods" in API group "" in the namespace "default""#,
        );
        s.fails_with(
            ALICE,
            &["get", "configmap", "c1"],
            r#"Error from server (Forbidden): configmaps "c1" is forbidden: User "alice" cannot get resource "configmaps" in API group "" in the namespace "default""#,
        );
        s.fails_with(
            ALICE,
            &["get", "deployments", "-n", "kube-system"],
            r#"Error from server (Forbidden): deployments.apps is forbidden: User "alice" cannot list resource "deployments" in API group "apps" in the namespace "kube-system""#,
        );
        s.fails_with(
            ALICE,
            &["get", "nodes"],
            r#"Error from server (Forbidden): nodes is forbidden: User "alice" cannot list resource "nodes" in API group "" at the cluster scope"#,
        );
        s.fails_with(
            ALICE,
            &["get", "--raw", "/metrics"],
            r#"Error from server (Forbidden): forbidden: User "alice" cannot get path "/metrics""#,
        );
        s.fails_with(
            ALICE,
            &["delete", "configmap", "c1"],
            r#"Error from server (Forbidden): configmaps "c1" is forbidden: User "alice" cannot delete resource "configmaps" in API group "" in the namespace "default""#,
        );
        // nothing was deleted
        assert_eq!(s.names(As::Admin, &["configmap", "c1"]), ["configmap/c1"]);
    });
}

#[test]
fn unknown_token_is_unauthorized() {
    each_kubectl(|s| {
        // (with the warm discovery cache, kubectl reports the server's Status)
        s.fails_with(
            As::Token("no-such-token"),
            &["get", "pods"],
            "error: You must be logged in to the server (Unauthorized)",
        );
    });
}

// ---------------------------------------------------------------------------
// Bindings
// ---------------------------------------------------------------------------

#[test]
fn rolebinding_to_view_grants_read_only_in_its_namespace() {
    each_kubectl(|s| {
        s.admin(&["create", "namespace", "other"]);
        s.admin(&["create", "configmap", "c1", "--from-literal=a=b"]);
        s.admin(&[
            "create",
            "configmap",
            "o1",
            "-n",
            "other",
            "--from-literal=a=b",
        ]);
        s.admin(&["create", "secret", "generic", "s1", "--from-literal=a=b"]);
        s.fails_with(
            ALICE,
            &["get", "configmaps"],
            r#"Error from server (Forbidden): configmaps is forbidden: User "alice" cannot list resource "configmaps" in API group "" in the namespace "default""#,
        );
        assert_eq!(
            s.admin(&[
                "create",
                "rolebinding",
                "alice-view",
                "--clusterrole=view",
                "--user=alice",
            ])
            .trim(),
            "rolebinding.rbac.authorization.k8s.io/alice-view created"
        );
        // get and list in the binding's namespace
        assert_eq!(s.names(ALICE, &["configmaps"]), ["configmap/c1"]);
        assert_eq!(s.names(ALICE, &["configmap", "c1"]), ["configmap/c1"]);
        s.ok(ALICE, &["get", "pods"]);
        s.ok(ALICE, &["get", "deployments.apps"]);
        // view does not read secrets
        s.fails_with(
            ALICE,
            &["get", "secrets"],
            r#"Error from server (Forbidden): secrets is forbidden: User "alice" cannot list resource "secrets" in API group "" in the namespace "default""#,
        );
        // no writes
        s.fails_with(
            ALICE,
            &["create", "configmap", "c2", "--from-literal=x=y"],
            r#"error: failed to create configmap: configmaps is forbidden: User "alice" cannot create resource "configmaps" in API group "" in the namespace "default""#,
        );
        s.fails_with(
            ALICE,
            &["delete", "configmap", "c1"],
            r#"Error from server (Forbidden): configmaps "c1" is forbidden: User "alice" cannot delete resource "configmaps" in API group "" in the namespace "default""#,
        );
        // nothing in other namespaces
        s.fails_with(
            ALICE,
            &["get", "configmaps", "-n", "other"],
            r#"Error from server (Forbidden): configmaps is forbidden: User "alice" cannot list resource "configmaps" in API group "" in the namespace "other""#,
        );
        s.fails_with(
            ALICE,
            &["get", "configmaps", "-A"],
            r#"Error from server (Forbidden): configmaps is forbidden: User "alice" cannot list resource "configmaps" in API group "" at the cluster scope"#,
        );
        assert_eq!(s.names(As::Admin, &["configmaps"]), ["configmap/c1"]);
        // removing the binding takes the rights away
        s.admin(&["delete", "rolebinding", "alice-view"]);
        s.fails_with(
            ALICE,
            &["get", "configmaps"],
            r#"Error from server (Forbidden): configmaps is forbidden: User "alice" cannot list resource "configmaps" in API group "" in the namespace "default""#,
        );
    });
}

#[test]
fn clusterrolebinding_applies_everywhere_and_to_groups() {
    each_kubectl(|s| {
        s.admin(&["create", "namespace", "other"]);
        s.admin(&[
            "create",
            "configmap",
            "o1",
            "-n",
            "other",
            "--from-literal=a=b",
        ]);
        // group "devs" (alice's) gets view everywhere
        assert_eq!(
            s.admin(&[
                "create",
                "clusterrolebinding",
                "devs-view",
                "--clusterrole=view",
                "--group=devs",
            ])
            .trim(),
            "clusterrolebinding.rbac.authorization.k8s.io/devs-view created"
        );
        assert_eq!(
            s.names(ALICE, &["configmaps", "-n", "other"]),
            ["configmap/o1"]
        );
        let all = s.names(ALICE, &["configmaps", "-A"]);
        assert!(
            all.contains(&"configmap/o1".to_string()),
            "{}: -A: {all:?}",
            s.who()
        );
        s.fails_with(
            ALICE,
            &["create", "configmap", "x", "-n", "other"],
            r#"error: failed to create configmap: configmaps is forbidden: User "alice" cannot create resource "configmaps" in API group "" in the namespace "other""#,
        );
        // view holds no cluster-scoped resources
        s.fails_with(
            ALICE,
            &["get", "nodes"],
            r#"Error from server (Forbidden): nodes is forbidden: User "alice" cannot list resource "nodes" in API group "" at the cluster scope"#,
        );
        // bob is not in devs
        s.fails_with(
            BOB,
            &["get", "configmaps", "-n", "other"],
            r#"Error from server (Forbidden): configmaps is forbidden: User "bob" cannot list resource "configmaps" in API group "" in the namespace "other""#,
        );
        // a user subject bound to edit can write anywhere
        s.admin(&[
            "create",
            "clusterrolebinding",
            "bob-edit",
            "--clusterrole=edit",
            "--user=bob",
        ]);
        assert_eq!(
            s.ok(
                BOB,
                &[
                    "create",
                    "configmap",
                    "b1",
                    "-n",
                    "other",
                    "--from-literal=k=v"
                ]
            )
            .trim(),
            "configmap/b1 created"
        );
        s.ok(BOB, &["delete", "configmap", "o1", "-n", "other"]);
        assert_eq!(
            s.names(As::Admin, &["configmaps", "-n", "other"])
                .into_iter()
                .filter(|n| n != "configmap/kube-root-ca.crt")
                .collect::<Vec<_>>(),
            ["configmap/b1"]
        );
    });
}

#[test]
fn role_with_resource_names() {
    each_kubectl(|s| {
        s.admin(&["create", "configmap", "c1", "--from-literal=a=b"]);
        s.admin(&["create", "configmap", "c3", "--from-literal=a=b"]);
        s.admin(&[
            "create",
            "role",
            "cm-c1",
            "--verb=get,update,patch",
            "--resource=configmaps",
            "--resource-name=c1",
        ]);
        s.admin(&[
            "create",
            "rolebinding",
            "bob-c1",
            "--role=cm-c1",
            "--user=bob",
        ]);
        assert_eq!(s.names(BOB, &["configmap", "c1"]), ["configmap/c1"]);
        s.fails_with(
            BOB,
            &["get", "configmap", "c3"],
            r#"Error from server (Forbidden): configmaps "c3" is forbidden: User "bob" cannot get resource "configmaps" in API group "" in the namespace "default""#,
        );
        // a list is not limited to names
        s.fails_with(
            BOB,
            &["get", "configmaps"],
            r#"Error from server (Forbidden): configmaps is forbidden: User "bob" cannot list resource "configmaps" in API group "" in the namespace "default""#,
        );
        assert_eq!(
            s.ok(BOB, &["label", "configmap", "c1", "touched=yes"])
                .trim(),
            "configmap/c1 labeled"
        );
        s.fails_with(
            BOB,
            &["label", "configmap", "c3", "touched=yes"],
            r#"Error from server (Forbidden): configmaps "c3" is forbidden: User "bob" cannot get resource "configmaps" in API group "" in the namespace "default""#,
        );
        let c1 = s.get_json(&["configmap", "c1"]);
        assert_eq!(c1["metadata"]["labels"]["touched"], "yes");
        let c3 = s.get_json(&["configmap", "c3"]);
        assert!(c3["metadata"]["labels"]["touched"].is_null());
        s.fails_with(
            BOB,
            &["delete", "configmap", "c1"],
            r#"Error from server (Forbidden): configmaps "c1" is forbidden: User "bob" cannot delete resource "configmaps" in API group "" in the namespace "default""#,
        );
        s.can_i(BOB, &["get", "configmaps/c1"], true);
        s.can_i(BOB, &["get", "configmaps/c3"], false);
        s.can_i(BOB, &["get", "configmaps"], false);
        // a list pinned to one name by a field selector is authorized with that name
        s.admin(&[
            "create",
            "role",
            "cm-c1-list",
            "--verb=list",
            "--resource=configmaps",
            "--resource-name=c1",
        ]);
        s.admin(&[
            "create",
            "rolebinding",
            "bob-c1-list",
            "--role=cm-c1-list",
            "--user=bob",
        ]);
        assert_eq!(
            s.names(BOB, &["configmaps", "--field-selector=metadata.name=c1"]),
            ["configmap/c1"]
        );
        s.fails_with(
            BOB,
            &["get", "configmaps", "--field-selector=metadata.name=c3"],
            r#"Error from server (Forbidden): configmaps "c3" is forbidden: User "bob" cannot list resource "configmaps" in API group "" in the namespace "default""#,
        );
        s.fails_with(
            BOB,
            &["get", "configmaps"],
            r#"Error from server (Forbidden): configmaps is forbidden: User "bob" cannot list resource "configmaps" in API group "" in the namespace "default""#,
        );
    });
}

#[test]
fn watch_needs_the_watch_verb() {
    each_kubectl(|s| {
        s.admin(&["create", "configmap", "c1", "--from-literal=a=b"]);
        s.admin(&[
            "create",
            "role",
            "cm-list",
            "--verb=list",
            "--resource=configmaps",
        ]);
        s.admin(&[
            "create",
            "rolebinding",
            "bob-list",
            "--role=cm-list",
            "--user=bob",
        ]);
        // kubectl lists, then fails to watch
        let (code, out, err) = s.run(BOB, &["get", "configmaps", "--watch"]);
        assert_eq!(code, 1, "{}: {out}{err}", s.who());
        assert_eq!(
            norm(&out)
                .lines()
                .map(|l| l.split(' ').next().unwrap_or(""))
                .collect::<Vec<_>>(),
            ["NAME", "c1"],
            "{}: {out}",
            s.who()
        );
        assert_eq!(
            err.trim_end(),
            r#"Error from server (Forbidden): configmaps is forbidden: User "bob" cannot watch resource "configmaps" in API group "" in the namespace "default""#,
            "{}",
            s.who()
        );
        s.can_i(BOB, &["watch", "configmaps"], false);
        s.can_i(BOB, &["list", "configmaps"], true);
    });
}

#[test]
fn service_account_subject() {
    each_kubectl(|s| {
        const SA: &str = "system:serviceaccount:default:sa1";
        s.admin(&["create", "namespace", "other"]);
        s.admin(&["create", "serviceaccount", "sa1"]);
        s.admin(&["create", "configmap", "c1", "--from-literal=a=b"]);
        s.fails_with(
            imp(SA),
            &["get", "configmaps"],
            r#"Error from server (Forbidden): configmaps is forbidden: User "system:serviceaccount:default:sa1" cannot list resource "configmaps" in API group "" in the namespace "default""#,
        );
        s.admin(&[
            "create",
            "rolebinding",
            "sa1-view",
            "--clusterrole=view",
            "--serviceaccount=default:sa1",
        ]);
        assert_eq!(s.names(imp(SA), &["configmaps"]), ["configmap/c1"]);
        s.fails_with(
            imp(SA),
            &["get", "configmaps", "-n", "other"],
            r#"Error from server (Forbidden): configmaps is forbidden: User "system:serviceaccount:default:sa1" cannot list resource "configmaps" in API group "" in the namespace "other""#,
        );
        s.fails_with(
            imp(SA),
            &["create", "configmap", "c2"],
            r#"error: failed to create configmap: configmaps is forbidden: User "system:serviceaccount:default:sa1" cannot create resource "configmaps" in API group "" in the namespace "default""#,
        );
        // the account's groups: a binding to system:serviceaccounts:other does not
        // apply, one to system:serviceaccounts:default does
        s.admin(&[
            "create",
            "rolebinding",
            "other-sas",
            "-n",
            "other",
            "--clusterrole=view",
            "--group=system:serviceaccounts:other",
        ]);
        s.can_i(imp(SA), &["list", "configmaps", "-n", "other"], false);
        s.admin(&[
            "create",
            "rolebinding",
            "default-sas",
            "-n",
            "other",
            "--clusterrole=view",
            "--group=system:serviceaccounts:default",
        ]);
        s.can_i(imp(SA), &["list", "configmaps", "-n", "other"], true);
        let whoami = s.ok(imp(SA), &["auth", "whoami"]);
        assert_eq!(
            norm(&whoami),
            "ATTRIBUTE VALUE\nUsername system:serviceaccount:default:sa1\nGroups [system:serviceaccounts system:serviceaccounts:default system:authenticated]",
            "{}",
            s.who()
        );
    });
}

#[test]
fn aggregated_cluster_role_extends_view() {
    each_kubectl(|s| {
        s.admin(&["create", "secret", "generic", "s1", "--from-literal=a=b"]);
        s.admin(&[
            "create",
            "rolebinding",
            "alice-view",
            "--clusterrole=view",
            "--user=alice",
        ]);
        s.can_i(ALICE, &["list", "secrets"], false);
        s.admin(&[
            "create",
            "clusterrole",
            "secret-reader",
            "--verb=get,list",
            "--resource=secrets",
        ]);
        // not labelled yet: view is unchanged
        s.can_i(ALICE, &["list", "secrets"], false);
        s.admin(&[
            "label",
            "clusterrole",
            "secret-reader",
            "rbac.authorization.k8s.io/aggregate-to-view=true",
        ]);
        s.can_i(ALICE, &["list", "secrets"], true);
        assert_eq!(s.names(ALICE, &["secrets"]), ["secret/s1"]);
        s.can_i(ALICE, &["delete", "secrets"], false);
        // edit aggregates view: bob bound to edit gets the rules through two levels
        // (edit already reads secrets; use a resource only the new role grants)
        s.admin(&[
            "create",
            "clusterrole",
            "node-reader",
            "--verb=get,list",
            "--resource=nodes",
        ]);
        s.admin(&[
            "create",
            "clusterrolebinding",
            "bob-edit",
            "--clusterrole=edit",
            "--user=bob",
        ]);
        s.can_i(BOB, &["list", "nodes"], false);
        s.admin(&[
            "label",
            "clusterrole",
            "node-reader",
            "rbac.authorization.k8s.io/aggregate-to-view=true",
        ]);
        s.can_i(BOB, &["list", "nodes"], true);
        // removing the label removes the rules again
        s.admin(&[
            "label",
            "clusterrole",
            "secret-reader",
            "rbac.authorization.k8s.io/aggregate-to-view-",
        ]);
        s.can_i(ALICE, &["list", "secrets"], false);
    });
}

#[test]
fn aggregated_cluster_role_rules_are_served() {
    each_kubectl(|s| {
        let view = s.get_json(&["clusterrole", "view"]);
        let rules = view["rules"].as_array().cloned().unwrap_or_default();
        assert!(
            rules.iter().any(|r| {
                r["resources"]
                    .as_array()
                    .is_some_and(|a| a.iter().any(|x| x == "configmaps"))
            }),
            "{}: view has no configmaps rule: {view}",
            s.who()
        );
        s.admin(&[
            "create",
            "clusterrole",
            "secret-reader",
            "--verb=get,list",
            "--resource=secrets",
        ]);
        s.admin(&[
            "label",
            "clusterrole",
            "secret-reader",
            "rbac.authorization.k8s.io/aggregate-to-view=true",
        ]);
        let view = s.get_json(&["clusterrole", "view"]);
        let rules = view["rules"].as_array().cloned().unwrap_or_default();
        assert!(
            rules
                .iter()
                .any(|r| r["resources"] == serde_json::json!(["secrets"])
                    && r["verbs"] == serde_json::json!(["get", "list"])),
            "{}: view does not include secret-reader's rule: {view}",
            s.who()
        );
        let described = s.admin(&["describe", "clusterrole", "edit"]);
        assert!(
            norm(&described)
                .lines()
                .any(|l| l.starts_with("secrets [] [] [")
                    && l.contains("get")
                    && l.contains("list")),
            "{}: describe clusterrole edit shows no rules:\n{described}",
            s.who()
        );
    });
}

// ---------------------------------------------------------------------------
// kubectl auth can-i / whoami
// ---------------------------------------------------------------------------

#[test]
fn auth_can_i() {
    each_kubectl(|s| {
        s.admin(&["create", "namespace", "other"]);
        s.admin(&[
            "create",
            "rolebinding",
            "alice-edit",
            "--clusterrole=edit",
            "--user=alice",
        ]);
        s.admin(&[
            "create",
            "clusterrole",
            "ns-reader",
            "--verb=get,list,watch",
            "--resource=namespaces",
        ]);
        s.admin(&[
            "create",
            "clusterrolebinding",
            "alice-ns",
            "--clusterrole=ns-reader",
            "--user=alice",
        ]);
        // the admin may do anything
        s.can_i(As::Admin, &["*", "*"], true);
        s.can_i(As::Admin, &["delete", "nodes"], true);
        // alice, by token and impersonated
        for who in [ALICE, imp("alice")] {
            s.can_i(who, &["create", "deployments.apps"], true);
            s.can_i(who, &["delete", "configmaps"], true);
            s.can_i(who, &["create", "deployments.apps", "-n", "other"], false);
            s.can_i(who, &["list", "namespaces"], true);
            s.can_i(who, &["delete", "namespaces"], false);
            s.can_i(who, &["list", "nodes"], false);
            s.can_i(who, &["create", "roles.rbac.authorization.k8s.io"], false);
            s.can_i(who, &["watch", "pods"], true);
            s.can_i(who, &["get", "/healthz"], true);
            s.can_i(who, &["get", "/metrics"], false);
        }
        // bob has nothing
        s.can_i(BOB, &["list", "pods"], false);
        // --as on can-i asks about the impersonated user
        s.can_i(As::Admin, &["list", "pods", "--as=bob"], false);
        s.can_i(As::Admin, &["list", "pods", "--as=alice"], true);
    });
}

#[test]
fn review_resources_are_discoverable() {
    each_kubectl(|s| {
        let out = norm(&s.admin(&["api-resources", "--api-group=authorization.k8s.io"]));
        for want in [
            "selfsubjectaccessreviews authorization.k8s.io/v1 false SelfSubjectAccessReview",
            "selfsubjectrulesreviews authorization.k8s.io/v1 false SelfSubjectRulesReview",
        ] {
            assert!(
                out.lines().any(|l| l == want),
                "{}: {want:?} missing:\n{out}",
                s.who()
            );
        }
        let out = norm(&s.admin(&["api-resources", "--api-group=authentication.k8s.io"]));
        assert!(
            out.lines()
                .any(|l| l == "selfsubjectreviews authentication.k8s.io/v1 false SelfSubjectReview"),
            "{}: selfsubjectreviews missing:\n{out}",
            s.who()
        );
        // so that can-i resolves the resource (bob holds it through system:basic-user)
        s.can_i(
            BOB,
            &["create", "selfsubjectaccessreviews.authorization.k8s.io"],
            true,
        );
        s.can_i(BOB, &["create", "selfsubjectaccessreviews"], true);
    });
}

#[test]
fn auth_can_i_list() {
    each_kubectl(|s| {
        s.admin(&["create", "configmap", "c1", "--from-literal=a=b"]);
        s.admin(&[
            "create",
            "role",
            "cm-c1",
            "--verb=get,update,patch",
            "--resource=configmaps",
            "--resource-name=c1",
        ]);
        s.admin(&[
            "create",
            "rolebinding",
            "bob-c1",
            "--role=cm-c1",
            "--user=bob",
        ]);
        s.admin(&[
            "create",
            "role",
            "dep-reader",
            "--verb=get,list,watch",
            "--resource=deployments.apps",
        ]);
        s.admin(&[
            "create",
            "rolebinding",
            "bob-dep",
            "--role=dep-reader",
            "--user=bob",
        ]);
        let out = norm(&s.ok(BOB, &["auth", "can-i", "--list"]));
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(
            lines.first().copied(),
            Some("Resources Non-Resource URLs Resource Names Verbs"),
            "{}:\n{out}",
            s.who()
        );
        for want in [
            "configmaps [] [c1] [get update patch]",
            "deployments.apps [] [] [get list watch]",
            "selfsubjectaccessreviews.authorization.k8s.io [] [] [create]",
            "selfsubjectrulesreviews.authorization.k8s.io [] [] [create]",
            "[/healthz] [] [get]",
            "[/version] [] [get]",
            "[/api/*] [] [get]",
        ] {
            assert!(
                lines.contains(&want),
                "{}: auth can-i --list lacks {want:?}:\n{out}",
                s.who()
            );
        }
        assert!(
            !out.contains("secrets"),
            "{}: bob holds nothing on secrets:\n{out}",
            s.who()
        );
        // in another namespace the role does not apply
        let other = norm(&s.ok(BOB, &["auth", "can-i", "--list", "-n", "kube-system"]));
        assert!(
            !other.contains("configmaps") && !other.contains("deployments.apps"),
            "{}: kube-system:\n{other}",
            s.who()
        );
        // the admin: everything
        let admin = norm(&s.admin(&["auth", "can-i", "--list"]));
        assert!(
            admin.lines().any(|l| l == "*.* [] [] [*]"),
            "{}: admin --list:\n{admin}",
            s.who()
        );
        assert!(
            admin.lines().any(|l| l == "[*] [] [*]"),
            "{}: admin --list:\n{admin}",
            s.who()
        );
    });
}

#[test]
fn auth_whoami() {
    each_kubectl(|s| {
        let out = norm(&s.ok(imp("bob"), &["auth", "whoami"]));
        assert_eq!(
            out,
            "ATTRIBUTE VALUE\nUsername bob\nGroups [system:authenticated]",
            "{}",
            s.who()
        );
        let out = norm(&s.ok(As::Impersonated("bob", &["g1", "g2"]), &["auth", "whoami"]));
        assert_eq!(
            out,
            "ATTRIBUTE VALUE\nUsername bob\nGroups [g1 g2 system:authenticated]",
            "{}",
            s.who()
        );
        // a token user: name and uid as the tokens file has them
        let out = s.ok(ALICE, &["auth", "whoami", "-o", "json"]);
        let v: Value = serde_json::from_str(&out).expect("whoami JSON");
        assert_eq!(v["kind"], "SelfSubjectReview");
        assert_eq!(v["apiVersion"], "authentication.k8s.io/v1");
        assert_eq!(v["status"]["userInfo"]["username"], "alice");
        assert_eq!(v["status"]["userInfo"]["uid"], "alice-uid");
        let groups = v["status"]["userInfo"]["groups"].clone();
        for g in ["devs", "qa"] {
            assert!(
                groups.as_array().is_some_and(|a| a.iter().any(|x| x == g)),
                "{}: groups {groups}",
                s.who()
            );
        }
    });
}

/// The admin's kubeconfig with impersonation in it (`as`, `as-user-extra`), which
/// every kubectl honours (the `--as-user-extra` flag is newer than kubectl 1.33).
fn impersonating_kubeconfig(s: &Session, user: &str, extra: &[(&str, &[&str])]) -> PathBuf {
    let admin = std::fs::read_to_string(&s.srv.kubeconfig).expect("kubeconfig");
    let mut out = String::new();
    for line in admin.lines() {
        out.push_str(line);
        out.push('\n');
        if line.starts_with("    client-key-data:") {
            out.push_str(&format!("    as: {user}\n    as-user-extra:\n"));
            for (k, values) in extra {
                out.push_str(&format!("      {k}: [{}]\n", values.join(", ")));
            }
        }
    }
    let path = s.srv.dir.join(format!("as-{user}-kubeconfig"));
    std::fs::write(&path, out).expect("write kubeconfig");
    path
}

#[test]
fn auth_whoami_shows_impersonated_extras() {
    each_kubectl(|s| {
        let kubeconfig = impersonating_kubeconfig(
            s,
            "bob",
            &[
                ("team", &["blue", "green"]),
                ("scopes.example.com/level", &["high"]),
            ],
        );
        let (code, out, err) = run_bounded(
            s.cmd(As::Admin, &["auth", "whoami", "-o", "json"])
                .env("KUBECONFIG", &kubeconfig),
            None,
            CMD_TIMEOUT,
        );
        assert_eq!(code, 0, "{}: {err}", s.who());
        let v: Value = serde_json::from_str(&out).expect("whoami JSON");
        assert_eq!(
            v["status"]["userInfo"]["username"],
            "bob",
            "{}: {v}",
            s.who()
        );
        let extra = &v["status"]["userInfo"]["extra"];
        assert_eq!(
            extra["team"],
            serde_json::json!(["blue", "green"]),
            "{}: {v}",
            s.who()
        );
        assert_eq!(
            extra["scopes.example.com/level"],
            serde_json::json!(["high"]),
            "{}: {v}",
            s.who()
        );
        // Newer kubectls have the flag too.
        if s.minor >= 35 {
            let out = s.admin(&[
                "--as=bob",
                "--as-user-extra=team=red",
                "auth",
                "whoami",
                "-o",
                "json",
            ]);
            let v: Value = serde_json::from_str(&out).expect("whoami JSON");
            assert_eq!(
                v["status"]["userInfo"]["extra"]["team"],
                serde_json::json!(["red"]),
                "{}: {v}",
                s.who()
            );
        }
    });
}

#[test]
fn auth_whoami_includes_system_authenticated() {
    each_kubectl(|s| {
        let out = norm(&s.ok(ALICE, &["auth", "whoami"]));
        assert_eq!(
            out,
            "ATTRIBUTE VALUE\nUsername alice\nUID alice-uid\nGroups [devs qa system:authenticated]",
            "{}",
            s.who()
        );
        let out = norm(&s.admin(&["auth", "whoami"]));
        assert_eq!(
            out,
            "ATTRIBUTE VALUE\nUsername admin\nGroups [system:masters system:authenticated]",
            "{}",
            s.who()
        );
    });
}

// ---------------------------------------------------------------------------
// Impersonation
// ---------------------------------------------------------------------------

#[test]
fn impersonation_needs_the_impersonate_verb() {
    each_kubectl(|s| {
        s.admin(&["create", "serviceaccount", "sa1"]);
        s.admin(&["create", "configmap", "c1", "--from-literal=a=b"]);
        s.fails_with(
            As::Token("alice-tok"),
            &["get", "pods", "--as=bob"],
            r#"Error from server (Forbidden): users "bob" is forbidden: User "alice" cannot impersonate resource "users" in API group "" at the cluster scope"#,
        );
        s.fails_with(
            ALICE,
            &["get", "pods", "--as=system:serviceaccount:default:sa1"],
            r#"Error from server (Forbidden): serviceaccounts "sa1" is forbidden: User "alice" cannot impersonate resource "serviceaccounts" in API group "" in the namespace "default""#,
        );
        // alice may impersonate bob only
        s.admin(&[
            "create",
            "clusterrole",
            "impersonate-bob",
            "--verb=impersonate",
            "--resource=users",
            "--resource-name=bob",
        ]);
        s.admin(&[
            "create",
            "clusterrolebinding",
            "alice-impersonates-bob",
            "--clusterrole=impersonate-bob",
            "--user=alice",
        ]);
        // bob has no rights yet: the request is judged as bob's
        s.fails_with(
            ALICE,
            &["get", "configmaps", "--as=bob"],
            r#"Error from server (Forbidden): configmaps is forbidden: User "bob" cannot list resource "configmaps" in API group "" in the namespace "default""#,
        );
        s.admin(&[
            "create",
            "rolebinding",
            "bob-view",
            "--clusterrole=view",
            "--user=bob",
        ]);
        assert_eq!(
            s.names(ALICE, &["configmaps", "--as=bob"]),
            ["configmap/c1"]
        );
        // alice herself still cannot
        s.fails_with(
            ALICE,
            &["get", "configmaps"],
            r#"Error from server (Forbidden): configmaps is forbidden: User "alice" cannot list resource "configmaps" in API group "" in the namespace "default""#,
        );
        let out = norm(&s.ok(ALICE, &["auth", "whoami", "--as=bob"]));
        assert_eq!(
            out,
            "ATTRIBUTE VALUE\nUsername bob\nGroups [system:authenticated]",
            "{}",
            s.who()
        );
        s.fails_with(
            ALICE,
            &["get", "configmaps", "--as=carol"],
            r#"Error from server (Forbidden): users "carol" is forbidden: User "alice" cannot impersonate resource "users" in API group "" at the cluster scope"#,
        );
        // groups need their own grant
        s.fails_with(
            ALICE,
            &["get", "configmaps", "--as=bob", "--as-group=system:masters"],
            r#"Error from server (Forbidden): groups "system:masters" is forbidden: User "alice" cannot impersonate resource "groups" in API group "" at the cluster scope"#,
        );
        // a bound non-admin impersonating is allowed only while bound
        s.admin(&["delete", "clusterrolebinding", "alice-impersonates-bob"]);
        s.fails_with(
            ALICE,
            &["get", "configmaps", "--as=bob"],
            r#"Error from server (Forbidden): users "bob" is forbidden: User "alice" cannot impersonate resource "users" in API group "" at the cluster scope"#,
        );
    });
}

// ---------------------------------------------------------------------------
// Escalation prevention
// ---------------------------------------------------------------------------

/// carol may manage Roles and RoleBindings in `default`, and read configmaps there.
fn make_rbac_manager(s: &Session) {
    s.admin(&[
        "create",
        "role",
        "rbac-manager",
        "--verb=get,list,create,update,patch,delete",
        "--resource=roles.rbac.authorization.k8s.io,rolebindings.rbac.authorization.k8s.io",
    ]);
    s.admin(&[
        "create",
        "role",
        "cm-reader",
        "--verb=get,list",
        "--resource=configmaps",
    ]);
    s.admin(&[
        "create",
        "rolebinding",
        "carol-rbac",
        "--role=rbac-manager",
        "--user=carol",
    ]);
    s.admin(&[
        "create",
        "rolebinding",
        "carol-cm",
        "--role=cm-reader",
        "--user=carol",
    ]);
}

#[test]
fn granting_held_rights_is_allowed() {
    each_kubectl(|s| {
        make_rbac_manager(s);
        // a role with rules carol holds, and a binding of it to bob
        assert_eq!(
            s.ok(
                CAROL,
                &[
                    "create",
                    "role",
                    "cm-get",
                    "--verb=get",
                    "--resource=configmaps"
                ]
            )
            .trim(),
            "role.rbac.authorization.k8s.io/cm-get created"
        );
        assert_eq!(
            s.ok(
                CAROL,
                &[
                    "create",
                    "rolebinding",
                    "bob-cm",
                    "--role=cm-get",
                    "--user=bob"
                ]
            )
            .trim(),
            "rolebinding.rbac.authorization.k8s.io/bob-cm created"
        );
        s.can_i(BOB, &["get", "configmaps"], true);
        s.can_i(BOB, &["list", "configmaps"], false);
    });
}

#[test]
fn escalation_is_refused() {
    each_kubectl(|s| {
        make_rbac_manager(s);
        let role = "apiVersion: rbac.authorization.k8s.io/v1\nkind: Role\nmetadata:\n  name: sneaky\n  namespace: default\nrules:\n- apiGroups: [\"\"]\n  resources: [\"secrets\"]\n  verbs: [\"get\"]\n";
        let file = s.srv.dir.join("sneaky-role.yaml");
        std::fs::write(&file, role).expect("write role");
        let file = file.display().to_string();
        s.fails_with(
            CAROL,
            &["create", "-f", &file],
            &format!(
                "Error from server (Forbidden): error when creating \"{file}\": roles.rbac.authorization.k8s.io \"sneaky\" is forbidden: user \"carol\" (groups=[\"system:authenticated\"]) is attempting to grant RBAC permissions not currently held:\n{{APIGroups:[\"\"], Resources:[\"secrets\"], Verbs:[\"get\"]}}"
            ),
        );
        // binding herself to admin
        let (code, out, err) = s.run(
            CAROL,
            &[
                "create",
                "rolebinding",
                "carol-admin",
                "--clusterrole=admin",
                "--user=carol",
            ],
        );
        assert!(code != 0, "{}: escalated: {out}", s.who());
        assert!(
            err.starts_with(
                "error: failed to create rolebinding: rolebindings.rbac.authorization.k8s.io \"carol-admin\" is forbidden: user \"carol\" (groups=[\"system:authenticated\"]) is attempting to grant RBAC permissions not currently held:\n"
            ),
            "{}: {err}",
            s.who()
        );
        // nothing stored, no rights gained
        assert!(
            s.names(As::Admin, &["roles"])
                .iter()
                .all(|n| !n.ends_with("/sneaky"))
        );
        assert!(
            s.names(As::Admin, &["rolebindings"])
                .iter()
                .all(|n| !n.ends_with("/carol-admin"))
        );
        s.can_i(CAROL, &["get", "secrets"], false);
        // updating a held role to hold more is refused too
        s.ok(
            CAROL,
            &[
                "create",
                "role",
                "cm-get",
                "--verb=get",
                "--resource=configmaps",
            ],
        );
        let (code, out, err) = s.run(
            CAROL,
            &[
                "patch",
                "role",
                "cm-get",
                "--type=json",
                "-p",
                r#"[{"op":"add","path":"/rules/-","value":{"apiGroups":[""],"resources":["secrets"],"verbs":["list"]}}]"#,
            ],
        );
        assert!(code != 0, "{}: escalated by update: {out}", s.who());
        assert!(
            err.contains("is attempting to grant RBAC permissions not currently held"),
            "{}: {err}",
            s.who()
        );
        // with the bind verb on a role, binding it is allowed without holding it
        s.admin(&[
            "create",
            "role",
            "bind-view",
            "--verb=bind",
            "--resource=clusterroles.rbac.authorization.k8s.io",
            "--resource-name=view",
        ]);
        s.admin(&[
            "create",
            "rolebinding",
            "carol-bind-view",
            "--role=bind-view",
            "--user=carol",
        ]);
        s.ok(
            CAROL,
            &[
                "create",
                "rolebinding",
                "bob-view",
                "--clusterrole=view",
                "--user=bob",
            ],
        );
    });
}
