//! End-to-end tests of the propagation pipeline (issue 9, "Acceptance"):
//! `flotilla up` with three simulated members, driven by kubectl only.
//! Templates and policies are applied on the control plane (context
//! `flotilla`); what lands in the members is read with `--context memberN`.
//!
//! Every wait is bounded; every process is killed by PID when its guard drops.

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use flotilla_tests::flotilla_bin;
use flotilla_tests::up::{Proc, Up, WAIT, wait_for};
use serde_json::Value;

fn apply(up: &Up, name: &str, yaml: &str) -> String {
    up.apply(name, yaml)
}

fn get(up: &Up, context: &str, args: &[&str]) -> Result<Option<Value>, String> {
    up.get_json(context, args)
}

/// `spec.replicas` of Deployment `name` in each member (None = absent).
fn member_replicas(up: &Up, name: &str) -> Result<Vec<Option<i64>>, String> {
    (1..=up.members)
        .map(|i| {
            get(up, &format!("member{i}"), &["deploy", name]).map(|d| {
                d.map(|d| {
                    d.pointer("/spec/replicas")
                        .and_then(Value::as_i64)
                        .unwrap_or(1)
                })
            })
        })
        .collect()
}

/// Waits until every member has Deployment `name` with the given replicas
/// (`None` = absent).
fn wait_member_replicas(up: &Up, name: &str, want: &[Option<i64>]) {
    wait_for(
        WAIT,
        &format!("deployment {name} in members as {want:?}"),
        || {
            let got = member_replicas(up, name)?;
            if got == want {
                Ok(())
            } else {
                Err(format!("{got:?}"))
            }
        },
    );
}

/// Waits until the template's status (aggregated from the members) says
/// `ready` ready replicas of `ready`.
fn wait_template_ready(up: &Up, name: &str, ready: i64) {
    wait_for(
        WAIT,
        &format!("template {name} READY {ready}/{ready}"),
        || {
            let d = get(up, "flotilla", &["deploy", name])?.ok_or("no template")?;
            let r = d
                .pointer("/status/readyReplicas")
                .and_then(Value::as_i64)
                .unwrap_or(0);
            let want = d
                .pointer("/spec/replicas")
                .and_then(Value::as_i64)
                .unwrap_or(1);
            if r == ready && want == ready {
                Ok(())
            } else {
                Err(format!("status {}", d["status"]))
            }
        },
    );
}

fn deployment(name: &str, replicas: i64, labels: &str) -> String {
    format!(
        r#"apiVersion: apps/v1
kind: Deployment
metadata:
  name: {name}
  labels: {{app: {name}{labels}}}
spec:
  replicas: {replicas}
  selector:
    matchLabels: {{app: {name}}}
  template:
    metadata:
      labels: {{app: {name}}}
    spec:
      containers:
        - name: main
          image: registry.example/team/{name}:1.0
          args: ["--serve"]
"#
    )
}

/// Karmada's own samples, when this checkout has them next to it.
fn karmada_samples() -> Option<PathBuf> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/karmada/samples");
    dir.is_dir().then_some(dir)
}

fn samples() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../samples")
}

#[test]
fn nginx_sample_runs_in_members_with_status_aggregated_and_deletion_cleans_up() {
    let up = Up::start(3);
    let sample = samples().join("nginx.yaml");
    up.k_ok(&["apply", "-f", sample.to_str().expect("path")]);
    wait_member_replicas(&up, "nginx", &[Some(1), Some(1), None]);
    wait_template_ready(&up, "nginx", 2);
    // pods really run in the chosen members
    for member in ["member1", "member2"] {
        wait_for(WAIT, &format!("a running nginx pod in {member}"), || {
            let pods = get(&up, member, &["pods", "-l", "app=nginx"])?.ok_or("no list")?;
            let running = pods["items"]
                .as_array()
                .map(|a| {
                    a.iter()
                        .filter(|p| p["status"]["phase"] == "Running")
                        .count()
                })
                .unwrap_or(0);
            if running == 1 {
                Ok(())
            } else {
                Err(format!("{running} running"))
            }
        });
    }
    // the binding and its Works are visible on the control plane
    let listing = up.k_ok(&["get", "rb,work", "-A"]);
    assert!(listing.contains("nginx-deployment"), "{listing}");
    assert!(listing.contains("karmada-es-member1"), "{listing}");
    assert!(listing.contains("karmada-es-member2"), "{listing}");
    assert!(!listing.contains("karmada-es-member3"), "{listing}");
    let table = up.k_ok(&["get", "deploy", "nginx"]);
    assert!(
        table.contains("2/2"),
        "READY 2/2 on the control plane: {table}"
    );
    let rb = get(&up, "flotilla", &["rb", "nginx-deployment"])
        .expect("kubectl get")
        .expect("object exists");
    let items = rb["status"]["aggregatedStatus"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert_eq!(items.len(), 2, "one aggregated item per cluster: {rb}");
    for cond in ["Scheduled", "FullyApplied"] {
        let found = rb["status"]["conditions"]
            .as_array()
            .is_some_and(|c| c.iter().any(|c| c["type"] == cond && c["status"] == "True"));
        assert!(found, "{cond}=True on the binding: {}", rb["status"]);
    }

    // the member objects carry Karmada's labels tying them back to their Work
    let m1 = get(&up, "member1", &["deploy", "nginx"])
        .expect("kubectl get")
        .expect("object exists");
    assert_eq!(m1["metadata"]["labels"]["karmada.io/managed"], "true");
    assert!(
        m1["metadata"]["annotations"]["work.karmada.io/name"].is_string(),
        "{m1}"
    );

    // deleting the template removes the binding, the Works and the member objects
    up.k_ok(&["delete", "deploy", "nginx"]);
    wait_member_replicas(&up, "nginx", &[None, None, None]);
    wait_for(WAIT, "binding and works gone", || {
        let l = up.k_ok(&["get", "rb,work", "-A", "-o", "name"]);
        if l.trim().is_empty() { Ok(()) } else { Err(l) }
    });
    for member in ["member1", "member2"] {
        wait_for(WAIT, &format!("nginx pods gone from {member}"), || {
            let pods = get(&up, member, &["pods", "-l", "app=nginx"])?.ok_or("no list")?;
            let n = pods["items"].as_array().map_or(0, Vec::len);
            if n == 0 {
                Ok(())
            } else {
                Err(format!("{n} pods"))
            }
        });
    }
}

#[test]
fn weighted_division_follows_scaling_taints_and_cluster_labels() {
    let up = Up::start(3);
    // 2:1 static weights over member1 and member2
    apply(
        &up,
        "weighted",
        &format!(
            "{}---\n{}",
            deployment("web", 7, ""),
            r#"apiVersion: policy.karmada.io/v1alpha1
kind: PropagationPolicy
metadata:
  name: web
spec:
  resourceSelectors:
    - {apiVersion: apps/v1, kind: Deployment, name: web}
  placement:
    clusterAffinity:
      clusterNames: [member1, member2]
    replicaScheduling:
      replicaSchedulingType: Divided
      replicaDivisionPreference: Weighted
      weightPreference:
        staticWeightList:
          - targetCluster: {clusterNames: [member1]}
            weight: 2
          - targetCluster: {clusterNames: [member2]}
            weight: 1
"#
        ),
    );
    // Karmada's division of 7 by 2:1 (Webster / largest remainders): 5 and 2
    wait_member_replicas(&up, "web", &[Some(5), Some(2), None]);
    wait_template_ready(&up, "web", 7);
    up.k_ok(&["scale", "deploy", "web", "--replicas=10"]);
    wait_member_replicas(&up, "web", &[Some(7), Some(3), None]);
    wait_template_ready(&up, "web", 10);
    up.k_ok(&["scale", "deploy", "web", "--replicas=1"]);
    wait_member_replicas(&up, "web", &[Some(1), None, None]);

    // Duplicated to every cluster, before and after a NoSchedule taint on member3
    let everywhere = |name: &str| {
        let policy = format!(
            r#"apiVersion: policy.karmada.io/v1alpha1
kind: PropagationPolicy
metadata:
  name: {name}
spec:
  resourceSelectors:
    - {{apiVersion: apps/v1, kind: Deployment, name: {name}}}
  placement:
    replicaScheduling:
      replicaSchedulingType: Duplicated
"#
        );
        format!("{}---\n{policy}", deployment(name, 1, ""))
    };
    apply(&up, "before", &everywhere("before-taint"));
    wait_member_replicas(&up, "before-taint", &[Some(1), Some(1), Some(1)]);
    up.k_ok(&[
        "patch",
        "cluster",
        "member3",
        "--type=merge",
        "-p",
        r#"{"spec":{"taints":[{"key":"maintenance","effect":"NoSchedule"}]}}"#,
    ]);
    apply(&up, "after", &everywhere("after-taint"));
    wait_member_replicas(&up, "after-taint", &[Some(1), Some(1), None]);
    // the existing assignment stays on the tainted cluster
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(
        member_replicas(&up, "before-taint").expect("kubectl get"),
        vec![Some(1), Some(1), Some(1)],
        "a NoSchedule taint does not evict"
    );

    // a label-selected Duplicated workload follows the cluster label
    up.k_ok(&["label", "cluster", "member1", "stage=prod"]);
    apply(
        &up,
        "labelled",
        &format!(
            "{}---\n{}",
            deployment("api", 2, ""),
            r#"apiVersion: policy.karmada.io/v1alpha1
kind: PropagationPolicy
metadata:
  name: api
spec:
  resourceSelectors:
    - {apiVersion: apps/v1, kind: Deployment, name: api}
  placement:
    clusterAffinity:
      labelSelector:
        matchLabels: {stage: prod}
    replicaScheduling:
      replicaSchedulingType: Duplicated
"#
        ),
    );
    wait_member_replicas(&up, "api", &[Some(2), None, None]);
    up.k_ok(&["label", "cluster", "member1", "stage-"]);
    up.k_ok(&["label", "cluster", "member2", "stage=prod"]);
    wait_member_replicas(&up, "api", &[None, Some(2), None]);
}

#[test]
fn override_policy_changes_only_the_targeted_cluster() {
    let up = Up::start(3);
    apply(
        &up,
        "app",
        &format!(
            "{}---\n{}---\n{}",
            deployment("shop", 2, ""),
            r#"apiVersion: policy.karmada.io/v1alpha1
kind: PropagationPolicy
metadata:
  name: shop
spec:
  resourceSelectors:
    - {apiVersion: apps/v1, kind: Deployment, name: shop}
  placement:
    clusterAffinity:
      clusterNames: [member1, member2]
    replicaScheduling:
      replicaSchedulingType: Duplicated
"#,
            r#"apiVersion: policy.karmada.io/v1alpha1
kind: OverridePolicy
metadata:
  name: shop-member1
spec:
  resourceSelectors:
    - {apiVersion: apps/v1, kind: Deployment, name: shop}
  overrideRules:
    - targetCluster:
        clusterNames: [member1]
      overriders:
        imageOverrider:
          - component: Registry
            operator: replace
            value: mirror.member1.local
        argsOverrider:
          - containerName: main
            operator: add
            value: ["--region=eu"]
        labelsOverrider:
          - operator: add
            value: {tier: gold}
        plaintext:
          - path: /spec/template/spec/containers/0/env
            operator: add
            value: [{name: CLUSTER, value: member1}]
"#
        ),
    );
    wait_member_replicas(&up, "shop", &[Some(2), Some(2), None]);
    let m1 = wait_for(WAIT, "overrides in member1", || {
        let d = get(&up, "member1", &["deploy", "shop"])?.ok_or("absent")?;
        let image = d.pointer("/spec/template/spec/containers/0/image").cloned();
        if image == Some(Value::from("mirror.member1.local/team/shop:1.0")) {
            Ok(d)
        } else {
            Err(format!("image {image:?}"))
        }
    });
    assert_eq!(
        m1.pointer("/spec/template/spec/containers/0/args"),
        Some(&serde_json::json!(["--serve", "--region=eu"]))
    );
    assert_eq!(m1["metadata"]["labels"]["tier"], "gold");
    assert_eq!(
        m1.pointer("/spec/template/spec/containers/0/env/0/value"),
        Some(&Value::from("member1"))
    );
    let m2 = get(&up, "member2", &["deploy", "shop"])
        .expect("kubectl get")
        .expect("object exists");
    assert_eq!(
        m2.pointer("/spec/template/spec/containers/0/image"),
        Some(&Value::from("registry.example/team/shop:1.0")),
        "member2 keeps the template's image"
    );
    assert!(m2["metadata"]["labels"].get("tier").is_none(), "{m2}");
    let work = get(&up, "flotilla", &["work", "-n", "karmada-es-member1"])
        .expect("kubectl get")
        .expect("object exists");
    let annotations = &work["items"][0]["metadata"]["annotations"];
    assert!(
        annotations["policy.karmada.io/applied-overrides"]
            .as_str()
            .is_some_and(|a| a.contains("shop-member1")),
        "{annotations}"
    );
}

#[test]
fn cluster_propagation_policy_propagates_a_crd_and_a_cluster_role() {
    let up = Up::start(3);
    apply(
        &up,
        "cluster-scoped",
        r#"apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: widgets.example.com
spec:
  group: example.com
  names: {kind: Widget, plural: widgets, singular: widget}
  scope: Namespaced
  versions:
    - name: v1
      served: true
      storage: true
      schema:
        openAPIV3Schema:
          type: object
          x-kubernetes-preserve-unknown-fields: true
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata:
  name: widget-reader
rules:
  - apiGroups: [example.com]
    resources: [widgets]
    verbs: [get, list, watch]
---
apiVersion: policy.karmada.io/v1alpha1
kind: ClusterPropagationPolicy
metadata:
  name: widgets
spec:
  resourceSelectors:
    - {apiVersion: apiextensions.k8s.io/v1, kind: CustomResourceDefinition, name: widgets.example.com}
    - {apiVersion: rbac.authorization.k8s.io/v1, kind: ClusterRole, name: widget-reader}
  placement:
    clusterAffinity:
      clusterNames: [member1, member3]
"#,
    );
    for member in ["member1", "member3"] {
        wait_for(WAIT, &format!("CRD and ClusterRole in {member}"), || {
            let crd = get(&up, member, &["crd", "widgets.example.com"])?;
            let role = get(&up, member, &["clusterrole", "widget-reader"])?;
            if crd.is_some() && role.is_some() {
                Ok(())
            } else {
                Err(format!("crd {} role {}", crd.is_some(), role.is_some()))
            }
        });
    }
    assert!(
        get(&up, "member2", &["crd", "widgets.example.com"])
            .expect("kubectl get")
            .is_none()
    );
    let crbs = up.k_ok(&["get", "crb", "-o", "name"]);
    assert!(
        crbs.contains("widgets.example.com-customresourcedefinition"),
        "{crbs}"
    );
    assert!(crbs.contains("widget-reader-clusterrole"), "{crbs}");

    // a custom resource of the propagated CRD follows with a namespaced policy
    apply(
        &up,
        "widget",
        r#"apiVersion: example.com/v1
kind: Widget
metadata: {name: w1, namespace: default}
spec: {size: 3}
---
apiVersion: policy.karmada.io/v1alpha1
kind: PropagationPolicy
metadata: {name: widgets, namespace: default}
spec:
  resourceSelectors:
    - {apiVersion: example.com/v1, kind: Widget}
  placement:
    clusterAffinity:
      clusterNames: [member3]
"#,
    );
    wait_for(WAIT, "widget w1 in member3", || {
        let w = get(&up, "member3", &["widgets", "w1"])?.ok_or("absent")?;
        if w.pointer("/spec/size") == Some(&Value::from(3)) {
            Ok(())
        } else {
            Err(w.to_string())
        }
    });
}

#[test]
fn policy_deletion_keeps_objects_and_drift_is_reverted() {
    let up = Up::start(3);
    let sample = samples().join("nginx.yaml");
    up.k_ok(&["apply", "-f", sample.to_str().expect("path")]);
    wait_member_replicas(&up, "nginx", &[Some(1), Some(1), None]);

    // someone scales the member object by hand: it is put back
    up.k_ok(&[
        "--context",
        "member1",
        "scale",
        "deploy",
        "nginx",
        "--replicas=5",
    ]);
    up.k_ok(&[
        "--context",
        "member1",
        "set",
        "image",
        "deploy/nginx",
        "nginx=evil:latest",
    ]);
    wait_for(WAIT, "member1 nginx restored", || {
        let d = get(&up, "member1", &["deploy", "nginx"])?.ok_or("absent")?;
        let replicas = d.pointer("/spec/replicas").and_then(Value::as_i64);
        let image = d
            .pointer("/spec/template/spec/containers/0/image")
            .and_then(Value::as_str);
        if replicas == Some(1) && image == Some("nginx:1.27") {
            Ok(())
        } else {
            Err(format!("replicas {replicas:?} image {image:?}"))
        }
    });
    // and deleted by hand: it comes back
    up.k_ok(&["--context", "member2", "delete", "deploy", "nginx"]);
    wait_member_replicas(&up, "nginx", &[Some(1), Some(1), None]);

    // deleting the policy leaves everything where it is, unclaimed
    up.k_ok(&["delete", "propagationpolicy", "nginx-propagation"]);
    wait_for(WAIT, "claim removed from the template", || {
        let d = get(&up, "flotilla", &["deploy", "nginx"])?.ok_or("absent")?;
        if d["metadata"]["labels"]
            .get("propagationpolicy.karmada.io/permanent-id")
            .is_none()
        {
            Ok(())
        } else {
            Err(d["metadata"].to_string())
        }
    });
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(
        member_replicas(&up, "nginx").expect("kubectl get"),
        vec![Some(1), Some(1), None]
    );
    let rb = up.k_ok(&["get", "rb", "-o", "name"]);
    assert!(rb.contains("nginx-deployment"), "the binding stays: {rb}");
}

#[test]
fn karmada_samples_work_unchanged() {
    let Some(dir) = karmada_samples() else {
        eprintln!("Karmada's samples are not next to this checkout; skipping");
        return;
    };
    let up = Up::start(3);
    let nginx = dir.join("nginx");
    for f in [
        "deployment.yaml",
        "propagationpolicy.yaml",
        "overridepolicy.yaml",
    ] {
        up.k_ok(&["apply", "-f", nginx.join(f).to_str().expect("path")]);
    }
    wait_member_replicas(&up, "nginx", &[Some(1), Some(1), None]);
    wait_for(WAIT, "the sample's annotation override on member1", || {
        let d = get(&up, "member1", &["deploy", "nginx"])?.ok_or("absent")?;
        if d["metadata"]["annotations"]["env"] == "skoala-stage" {
            Ok(())
        } else {
            Err(d["metadata"].to_string())
        }
    });
    let gb = dir.join("guestbook");
    for f in [
        "guestbooks-crd.yaml",
        "guestbooks-clusterpropagationpolicy.yaml",
    ] {
        up.k_ok(&["apply", "-f", gb.join(f).to_str().expect("path")]);
    }
    wait_for(WAIT, "the guestbook CRD in member1", || {
        get(&up, "member1", &["crd", "guestbooks.webapp.my.domain"])?
            .map(|_| ())
            .ok_or_else(|| "absent".to_string())
    });
    // the CR may be applied once the control plane serves the CRD
    wait_for(WAIT, "guestbook sample applied", || {
        let (code, out, err) = up.k(&[
            "apply",
            "-f",
            gb.join("guestbook.yaml").to_str().expect("path"),
        ]);
        if code == 0 { Ok(out) } else { Err(err) }
    });
    for f in [
        "guestbooks-propagationpolicy.yaml",
        "guestbooks-overridepolicy.yaml",
    ] {
        up.k_ok(&["apply", "-f", gb.join(f).to_str().expect("path")]);
    }
    wait_for(WAIT, "the guestbook in member1", || {
        get(&up, "member1", &["guestbook", "guestbook-sample"])?
            .map(|_| ())
            .ok_or_else(|| "absent".to_string())
    });
}

/// Crash safety: the propagation controllers run as a separate
/// `flotilla controller-manager` that is killed with SIGKILL while 200
/// Deployments are being propagated; after a restart every Deployment is in
/// exactly the right members with the right replicas, and nothing else is.
#[test]
fn controllers_killed_mid_propagation_converge_after_restart() {
    let mut up = Up::start_with(2, &["--controllers=cluster,clusterStatus,namespace"]);
    let propagation = "detector,scheduler,binding,execution,workStatus,bindingStatus";
    let manager = |up: &Up| {
        Proc::spawn(
            "controller-manager",
            Command::new(flotilla_bin())
                .arg("controller-manager")
                .arg("--kubeconfig")
                .arg(up.kubeconfig())
                .arg("--context")
                .arg("flotilla")
                .arg("--metrics-bind-address=127.0.0.1:0")
                .arg(format!("--controllers={propagation}"))
                // one manager at a time (the first is killed before the
                // second starts): crash convergence, not leader election,
                // is tested here (tests/tests/e2e/leader_election.rs has that)
                .arg("--leader-elect=false"),
            &up.logs(),
        )
    };
    let mut yaml = String::from(
        r#"apiVersion: policy.karmada.io/v1alpha1
kind: PropagationPolicy
metadata: {name: fleet}
spec:
  resourceSelectors:
    - {apiVersion: apps/v1, kind: Deployment, labelSelector: {matchLabels: {fleet: "yes"}}}
  placement:
    clusterAffinity:
      clusterNames: [member1, member2]
    replicaScheduling:
      replicaSchedulingType: Divided
      replicaDivisionPreference: Weighted
      weightPreference:
        staticWeightList:
          - targetCluster: {clusterNames: [member1]}
            weight: 1
          - targetCluster: {clusterNames: [member2]}
            weight: 1
"#,
    );
    for i in 0..200 {
        yaml.push_str("---\n");
        yaml.push_str(&deployment(
            &format!("app-{i:03}"),
            2 + (i % 3),
            ", fleet: \"yes\"",
        ));
    }
    let mut first = manager(&up);
    apply(&up, "fleet", &yaml);
    // let it get part of the way, then kill it
    wait_for(WAIT, "some works written", || {
        let n = up
            .k_ok(&["get", "work", "-A", "-o", "name"])
            .lines()
            .count();
        if n >= 20 {
            Ok(())
        } else {
            Err(format!("{n} works"))
        }
    });
    first.kill();
    let mut second = manager(&up);
    wait_for(
        Duration::from_secs(120),
        "all 200 deployments in both members",
        || {
            second.assert_running();
            let mut missing = Vec::new();
            for member in ["member1", "member2"] {
                let list = get(&up, member, &["deploy"])?.ok_or("no list")?;
                let items = list["items"].as_array().cloned().unwrap_or_default();
                let mut seen = std::collections::BTreeMap::new();
                for d in &items {
                    let name = d["metadata"]["name"].as_str().unwrap_or("").to_string();
                    let replicas = d
                        .pointer("/spec/replicas")
                        .and_then(Value::as_i64)
                        .unwrap_or(1);
                    seen.insert(name, replicas);
                }
                for i in 0..200i64 {
                    let name = format!("app-{i:03}");
                    // weights 1:1 divide 2, 3, 4 as 1+1, 2+1 (tie-break by name hash), 2+2
                    match seen.get(&name) {
                        Some(_) => {}
                        None => missing.push(format!("{member}/{name}")),
                    }
                }
                if seen.len() > 200 {
                    return Err(format!("{member} has {} deployments", seen.len()));
                }
            }
            if missing.is_empty() {
                Ok(())
            } else {
                Err(format!(
                    "{} missing, e.g. {:?}",
                    missing.len(),
                    &missing[..missing.len().min(3)]
                ))
            }
        },
    );
    // replicas: each template's members add up to its replicas
    for i in 0..200i64 {
        let name = format!("app-{i:03}");
        let got: i64 = member_replicas(&up, &name)
            .expect("kubectl get")
            .into_iter()
            .flatten()
            .sum();
        assert_eq!(got, 2 + (i % 3), "{name}: replicas across members");
    }
    // no duplicate Works and no orphans: exactly one Work per template per member
    let works = up.k_ok(&["get", "work", "-A", "-o", "name"]);
    assert_eq!(works.lines().count(), 400, "{works}");
    drop(second);
    up.proc.as_mut().expect("running").assert_running();
}

#[test]
fn propagate_deps_takes_the_mounted_config_map_along() {
    let up = Up::start(3);
    apply(
        &up,
        "deps",
        r#"apiVersion: v1
kind: ConfigMap
metadata: {name: web-config}
data: {greeting: hello}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: web, labels: {app: web}}
spec:
  replicas: 1
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers: [{name: c, image: nginx, volumeMounts: [{name: cfg, mountPath: /etc/cfg}]}]
      volumes: [{name: cfg, configMap: {name: web-config}}]
---
apiVersion: policy.karmada.io/v1alpha1
kind: PropagationPolicy
metadata: {name: web}
spec:
  propagateDeps: true
  resourceSelectors:
    - {apiVersion: apps/v1, kind: Deployment, name: web}
  placement:
    clusterAffinity: {clusterNames: [member2, member3]}
    replicaScheduling: {replicaSchedulingType: Duplicated}
"#,
    );
    let greeting = |member: &str| -> Result<Option<String>, String> {
        Ok(get(&up, member, &["configmap", "web-config"])?
            .and_then(|c| c["data"]["greeting"].as_str().map(str::to_string)))
    };
    wait_for(WAIT, "the ConfigMap in member2 and member3", || {
        let got = (greeting("member2")?, greeting("member3")?);
        if got == (Some("hello".into()), Some("hello".into())) {
            Ok(())
        } else {
            Err(format!("{got:?}"))
        }
    });
    assert_eq!(
        greeting("member1").expect("kubectl get"),
        None,
        "not where the workload is not"
    );
    let rb = get(&up, "flotilla", &["rb", "web-config-configmap"])
        .expect("kubectl get")
        .expect("attached binding");
    assert_eq!(
        rb["spec"]["requiredBy"][0]["name"], "web-deployment",
        "{rb}"
    );
    // a change of the dependency follows it
    up.k_ok(&[
        "patch",
        "configmap",
        "web-config",
        "--type=merge",
        "-p",
        r#"{"data":{"greeting":"bye"}}"#,
    ]);
    wait_for(WAIT, "the change in member2", || {
        let g = greeting("member2")?;
        if g.as_deref() == Some("bye") {
            Ok(())
        } else {
            Err(format!("{g:?}"))
        }
    });
    // the workload goes, and its dependency with it
    up.k_ok(&["delete", "deploy", "web"]);
    wait_for(WAIT, "the ConfigMap gone from the members", || {
        let got = (greeting("member2")?, greeting("member3")?);
        if got == (None, None) {
            Ok(())
        } else {
            Err(format!("{got:?}"))
        }
    });
    assert!(
        get(&up, "flotilla", &["configmap", "web-config"])
            .expect("kubectl get")
            .is_some(),
        "the control plane's ConfigMap stays"
    );
}

#[test]
fn existing_member_objects_are_taken_over_only_with_overwrite() {
    let up = Up::start(3);
    // someone made `legacy` in member1 by hand
    let path = up.dir.parent().expect("tmp").join("legacy.yaml");
    std::fs::write(&path, deployment("legacy", 1, "")).expect("write");
    up.k_ok(&[
        "--context",
        "member1",
        "apply",
        "-f",
        path.to_str().expect("path"),
    ]);
    apply(
        &up,
        "legacy-template",
        &format!(
            "{}---\n{}",
            deployment("legacy", 3, ""),
            r#"apiVersion: policy.karmada.io/v1alpha1
kind: PropagationPolicy
metadata: {name: legacy}
spec:
  resourceSelectors:
    - {apiVersion: apps/v1, kind: Deployment, name: legacy}
  placement:
    clusterAffinity: {clusterNames: [member1]}
"#
        ),
    );
    let message = wait_for(WAIT, "Applied=False on the Work", || {
        let works =
            get(&up, "flotilla", &["work", "-n", "karmada-es-member1"])?.ok_or("no list")?;
        let cond = works["items"][0]["status"]["conditions"]
            .as_array()
            .and_then(|c| c.iter().find(|c| c["type"] == "Applied").cloned())
            .ok_or("no Applied condition yet")?;
        if cond["status"] == "False" {
            Ok(cond["message"].as_str().unwrap_or("").to_string())
        } else {
            Err(cond.to_string())
        }
    });
    assert!(message.contains("already exists"), "{message}");
    assert!(message.contains("conflict-resolution"), "{message}");
    assert_eq!(
        member_replicas(&up, "legacy").expect("get")[0],
        Some(1),
        "left alone"
    );
    // the template says overwrite: the member object is taken over
    up.k_ok(&[
        "annotate",
        "deploy",
        "legacy",
        "work.karmada.io/conflict-resolution=overwrite",
    ]);
    wait_member_replicas(&up, "legacy", &[Some(3), None, None]);
    let d = get(&up, "member1", &["deploy", "legacy"])
        .expect("get")
        .expect("exists");
    assert_eq!(d["metadata"]["labels"]["karmada.io/managed"], "true");
}
