//! End-to-end tests of multi-cluster services (issue 13, "Acceptance"):
//! ServiceExport / ServiceImport and MultiClusterService on `flotilla up`
//! with three simulated members, driven by kubectl only. Templates and
//! policies are applied on the control plane (context `flotilla`); what
//! lands in the members is read with `--context memberN`.
//!
//! Every wait is bounded; every process is killed by PID when its guard drops.

use std::collections::BTreeSet;

use flotilla_tests::up::{Up, WAIT, wait_for};
use serde_json::Value;

fn apply_in(up: &Up, context: &str, name: &str, yaml: &str) -> String {
    up.apply_in(context, name, yaml)
}

fn apply(up: &Up, name: &str, yaml: &str) -> String {
    apply_in(up, "flotilla", name, yaml)
}

fn get(up: &Up, context: &str, args: &[&str]) -> Result<Option<Value>, String> {
    up.get_json(context, args)
}

/// The EndpointSlices of `service` in `context` that the cluster's own
/// endpointslice controller did not make: (slice names, endpoint addresses).
fn slices(
    up: &Up,
    context: &str,
    service: &str,
) -> Result<(BTreeSet<String>, BTreeSet<String>), String> {
    slices_by(up, context, service, false)
}

fn slices_by(
    up: &Up,
    context: &str,
    service: &str,
    local: bool,
) -> Result<(BTreeSet<String>, BTreeSet<String>), String> {
    let selector = format!("kubernetes.io/service-name={service}");
    let list = get(up, context, &["endpointslices", "-l", &selector])?.ok_or("no list")?;
    let mut names = BTreeSet::new();
    let mut addresses = BTreeSet::new();
    for item in list["items"].as_array().into_iter().flatten() {
        let by_member = item
            .pointer("/metadata/labels/endpointslice.kubernetes.io~1managed-by")
            .and_then(Value::as_str)
            == Some("endpointslice-controller.k8s.io");
        if by_member != local {
            continue;
        }
        names.insert(item["metadata"]["name"].as_str().unwrap_or("").to_string());
        for e in item["endpoints"].as_array().into_iter().flatten() {
            for a in e["addresses"].as_array().into_iter().flatten() {
                addresses.insert(a.as_str().unwrap_or("").to_string());
            }
        }
    }
    Ok((names, addresses))
}

/// The ready pod IPs of `app` in `context`.
fn pod_ips(up: &Up, context: &str, app: &str) -> Result<BTreeSet<String>, String> {
    let list = get(up, context, &["pods", "-l", &format!("app={app}")])?.ok_or("no list")?;
    Ok(list["items"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|p| {
            p.pointer("/status/conditions")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .any(|c| c["type"] == "Ready" && c["status"] == "True")
        })
        .filter_map(|p| p.pointer("/status/podIP").and_then(Value::as_str))
        .map(str::to_string)
        .collect())
}

/// The endpoint addresses of the slices of `service` in `context` named
/// `imported-<source>-...`, and how many endpoints they list (simulated
/// members give pods the same addresses, so a set alone would hide some).
fn imported_from(
    up: &Up,
    context: &str,
    service: &str,
    source: &str,
) -> Result<(BTreeSet<String>, usize), String> {
    let selector = format!("kubernetes.io/service-name={service}");
    let list = get(up, context, &["endpointslices", "-l", &selector])?.ok_or("no list")?;
    let mut addresses = BTreeSet::new();
    let mut count = 0;
    for item in list["items"].as_array().into_iter().flatten() {
        let name = item["metadata"]["name"].as_str().unwrap_or("");
        if !name.starts_with(&format!("imported-{source}-")) {
            continue;
        }
        for e in item["endpoints"].as_array().into_iter().flatten() {
            count += 1;
            for a in e["addresses"].as_array().into_iter().flatten() {
                addresses.insert(a.as_str().unwrap_or("").to_string());
            }
        }
    }
    Ok((addresses, count))
}

/// Waits until `context` has slices of `service` named after each of the
/// `sources` clusters, listing exactly that cluster's ready pods of `app`,
/// `count` endpoints in all, and no other slices; returns the addresses.
fn wait_imported(
    up: &Up,
    context: &str,
    service: &str,
    app: &str,
    sources: &[&str],
    count: usize,
) -> BTreeSet<String> {
    wait_for(
        WAIT,
        &format!("{context}: slices of {service} with {count} endpoints from {sources:?}"),
        || {
            let (names, _) = slices(up, context, service)?;
            // the addresses answered are those of the reads that were
            // checked against the pods (the slice list above may be older)
            let mut all = BTreeSet::new();
            let mut total = 0;
            for s in sources {
                let (addresses, n) = imported_from(up, context, service, s)?;
                let pods = pod_ips(up, s, app)?;
                if addresses != pods || n != pods.len() {
                    return Err(format!(
                        "from {s}: {addresses:?} ({n} endpoints), ready pods there {pods:?}; slices {names:?}"
                    ));
                }
                total += n;
                all.extend(addresses);
            }
            let foreign = names.iter().any(|n| {
                !sources
                    .iter()
                    .any(|s| n.starts_with(&format!("imported-{s}-")))
            });
            if total == count && !foreign {
                Ok(all)
            } else {
                Err(format!("{total} endpoints in slices {names:?}"))
            }
        },
    )
}

fn wait_no_slices(up: &Up, context: &str, service: &str) {
    wait_for(WAIT, &format!("{context}: no slices of {service}"), || {
        let (names, _) = slices(up, context, service)?;
        if names.is_empty() {
            Ok(())
        } else {
            Err(format!("{names:?}"))
        }
    });
}

fn wait_absent(up: &Up, context: &str, args: &[&str]) {
    wait_for(WAIT, &format!("{context}: {args:?} gone"), || {
        match get(up, context, args)? {
            None => Ok(()),
            Some(v) => Err(format!("still there: {}", v["metadata"]["name"])),
        }
    });
}

fn condition<'a>(obj: &'a Value, type_: &str) -> Option<&'a Value> {
    obj.pointer("/status/conditions")
        .and_then(Value::as_array)?
        .iter()
        .find(|c| c["type"] == type_)
}

fn wait_condition(up: &Up, context: &str, args: &[&str], type_: &str, status: &str) -> Value {
    wait_for(
        WAIT,
        &format!("{context}: {args:?} {type_}={status}"),
        || {
            let obj = get(up, context, args)?.ok_or("absent")?;
            match condition(&obj, type_) {
                Some(c) if c["status"] == status => Ok(c.clone()),
                other => Err(format!("{other:?}")),
            }
        },
    )
}

/// Deployment + Service `name` (port 80 → 8080) and, with `export`, a ServiceExport.
fn web(name: &str, replicas: i64, export: bool) -> String {
    let mut y = format!(
        r#"apiVersion: apps/v1
kind: Deployment
metadata:
  name: {name}
  labels: {{app: {name}}}
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
          ports: [{{containerPort: 8080, name: http}}]
---
apiVersion: v1
kind: Service
metadata:
  name: {name}
spec:
  selector: {{app: {name}}}
  ports:
    - {{name: http, port: 80, targetPort: 8080, protocol: TCP}}
"#
    );
    if export {
        y.push_str(&format!(
            r#"---
apiVersion: multicluster.x-k8s.io/v1alpha1
kind: ServiceExport
metadata:
  name: {name}
"#
        ));
    }
    y
}

fn policy(name: &str, selectors: &[(&str, &str)], clusters: &[&str]) -> String {
    let sel: String = selectors
        .iter()
        .map(|(api, kind)| format!("    - {{apiVersion: {api}, kind: {kind}, name: web}}\n"))
        .collect();
    format!(
        r#"apiVersion: policy.karmada.io/v1alpha1
kind: PropagationPolicy
metadata:
  name: {name}
spec:
  resourceSelectors:
{sel}  placement:
    clusterAffinity:
      clusterNames: [{}]
    replicaScheduling:
      replicaSchedulingType: Duplicated
"#,
        clusters.join(", ")
    )
}

const EXPORTED: &[(&str, &str)] = &[
    ("apps/v1", "Deployment"),
    ("v1", "Service"),
    ("multicluster.x-k8s.io/v1alpha1", "ServiceExport"),
];

const IMPORT: &str = r#"apiVersion: multicluster.x-k8s.io/v1alpha1
kind: ServiceImport
metadata:
  name: web
spec:
  type: ClusterSetIP
  ports:
    - {name: http, port: 80, protocol: TCP}
"#;

#[test]
fn exported_service_is_imported_kept_current_and_cleaned_up() {
    let up = Up::start(3);
    apply(&up, "web", &web("web", 3, true));
    apply(&up, "export", &policy("web-export", EXPORTED, &["member1"]));
    apply(&up, "import", IMPORT);
    apply(
        &up,
        "import-policy",
        &policy(
            "web-import",
            &[("multicluster.x-k8s.io/v1alpha1", "ServiceImport")],
            &["member2"],
        ),
    );

    // member2 gets derived-web and the 3 endpoints of member1, named after member1
    wait_for(WAIT, "member2 has derived-web", || {
        let svc = get(&up, "member2", &["svc", "derived-web"])?.ok_or("absent")?;
        if svc.pointer("/spec/ports/0/port").and_then(Value::as_i64) == Some(80)
            && svc.pointer("/spec/selector").is_none()
        {
            Ok(())
        } else {
            Err(svc["spec"].to_string())
        }
    });
    let three = wait_imported(&up, "member2", "derived-web", "web", &["member1"], 3);
    // the collected slices in the control plane are labelled with their source
    let (cp_names, cp_addresses) = slices(&up, "flotilla", "derived-web").expect("cp slices");
    assert!(
        cp_names.iter().all(|n| n.starts_with("imported-member1-")),
        "{cp_names:?}"
    );
    assert_eq!(cp_addresses, three);
    let cp = get(
        &up,
        "flotilla",
        &[
            "endpointslices",
            "-l",
            "endpointslice.karmada.io/provision-cluster=member1",
        ],
    )
    .expect("list")
    .expect("list");
    assert!(!cp["items"].as_array().expect("items").is_empty());
    // member1, member3 get nothing imported
    assert!(
        get(&up, "member3", &["svc", "derived-web"])
            .expect("get")
            .is_none()
    );
    wait_for(WAIT, "ServiceImport status lists member1", || {
        let si = get(&up, "flotilla", &["serviceimport", "web"])?.ok_or("absent")?;
        if si.pointer("/status/clusters") == Some(&serde_json::json!([{"cluster": "member1"}])) {
            Ok(())
        } else {
            Err(si["status"].to_string())
        }
    });
    wait_condition(&up, "flotilla", &["serviceexport", "web"], "Valid", "True");
    wait_condition(&up, "member1", &["serviceexport", "web"], "Valid", "True");
    wait_condition(
        &up,
        "member1",
        &["serviceexport", "web"],
        "Conflict",
        "False",
    );

    // scaling the exporting Deployment updates the importing slices
    up.k_ok(&["scale", "deploy", "web", "--replicas", "5"]);
    let five = wait_imported(&up, "member2", "derived-web", "web", &["member1"], 5);
    assert!(three.is_subset(&five), "{three:?} ⊄ {five:?}");
    // and scaling down removes the endpoints of the deleted pods
    up.k_ok(&["scale", "deploy", "web", "--replicas", "2"]);
    let two = wait_imported(&up, "member2", "derived-web", "web", &["member1"], 2);
    assert!(two.is_subset(&five), "{two:?} ⊄ {five:?}");

    // deleting the ServiceExport removes everything that was collected and dispatched
    up.k_ok(&["delete", "serviceexport", "web"]);
    wait_no_slices(&up, "member2", "derived-web");
    wait_no_slices(&up, "flotilla", "derived-web");
    wait_for(WAIT, "ServiceImport status lists no cluster", || {
        let si = get(&up, "flotilla", &["serviceimport", "web"])?.ok_or("absent")?;
        match si.pointer("/status/clusters") {
            None => Ok(()),
            Some(c) if c.as_array().is_some_and(Vec::is_empty) => Ok(()),
            Some(c) => Err(c.to_string()),
        }
    });
    // member1's own slices of web are untouched
    assert!(
        !slices_by(&up, "member1", "web", true)
            .expect("member1")
            .1
            .is_empty()
    );

    // deleting the ServiceImport removes the derived Service everywhere
    up.k_ok(&["delete", "serviceimport", "web"]);
    wait_absent(&up, "member2", &["svc", "derived-web"]);
    wait_absent(&up, "flotilla", &["svc", "derived-web"]);
}

#[test]
fn a_service_exported_from_two_members_merges_and_port_conflicts_are_reported() {
    let up = Up::start(3);
    apply(&up, "web", &web("web", 2, true));
    apply(
        &up,
        "export",
        &policy("web-export", EXPORTED, &["member1", "member3"]),
    );
    apply(&up, "import", IMPORT);
    apply(
        &up,
        "import-policy",
        &policy(
            "web-import",
            &[("multicluster.x-k8s.io/v1alpha1", "ServiceImport")],
            &["member2"],
        ),
    );
    let merged = wait_imported(
        &up,
        "member2",
        "derived-web",
        "web",
        &["member1", "member3"],
        4,
    );
    assert!(!merged.is_empty());
    wait_for(WAIT, "ServiceImport status lists both", || {
        let si = get(&up, "flotilla", &["serviceimport", "web"])?.ok_or("absent")?;
        let want = serde_json::json!([{"cluster": "member1"}, {"cluster": "member3"}]);
        if si.pointer("/status/clusters") == Some(&want) {
            Ok(())
        } else {
            Err(si["status"].to_string())
        }
    });
    let valid = wait_condition(&up, "flotilla", &["serviceexport", "web"], "Valid", "True");
    let msg = valid["message"].as_str().unwrap_or("");
    assert!(msg.contains("member1") && msg.contains("member3"), "{msg}");

    // the same Service exported straight from two members with different ports
    let api = |port: u16| {
        format!(
            r#"apiVersion: v1
kind: Service
metadata:
  name: api
spec:
  selector: {{app: api}}
  ports:
    - {{name: http, port: {port}, protocol: TCP}}
---
apiVersion: multicluster.x-k8s.io/v1alpha1
kind: ServiceExport
metadata:
  name: api
"#
        )
    };
    apply_in(&up, "member1", "api", &api(80));
    apply_in(&up, "member3", "api", &api(8080));
    let c = wait_condition(
        &up,
        "member3",
        &["serviceexport", "api"],
        "Conflict",
        "True",
    );
    let msg = c["message"].as_str().unwrap_or("");
    assert!(
        msg.contains("\"http\"") && msg.contains("member1") && msg.contains("member3"),
        "{msg}"
    );
    wait_condition(
        &up,
        "member1",
        &["serviceexport", "api"],
        "Conflict",
        "True",
    );
    // an export without its Service is not valid
    apply_in(
        &up,
        "member2",
        "orphan",
        "apiVersion: multicluster.x-k8s.io/v1alpha1\nkind: ServiceExport\nmetadata:\n  name: orphan\n",
    );
    let v = wait_condition(
        &up,
        "member2",
        &["serviceexport", "orphan"],
        "Valid",
        "False",
    );
    assert_eq!(v["reason"], "ServiceNotFound");
}

#[test]
fn multicluster_service_shares_provider_endpoints_with_consumers() {
    let up = Up::start(3);
    apply(&up, "web", &web("web", 3, false));
    apply(
        &up,
        "web-policy",
        &policy(
            "web",
            &[("apps/v1", "Deployment"), ("v1", "Service")],
            &["member1"],
        ),
    );
    apply(
        &up,
        "mcs",
        r#"apiVersion: networking.karmada.io/v1alpha1
kind: MultiClusterService
metadata:
  name: web
spec:
  types: [CrossCluster]
  providerClusters: [{name: member1}]
  consumerClusters: [{name: member2}, {name: member3}]
"#,
    );
    for consumer in ["member2", "member3"] {
        wait_for(WAIT, &format!("{consumer} has Service web"), || {
            get(&up, consumer, &["svc", "web"])?
                .map(|_| ())
                .ok_or_else(|| "absent".to_string())
        });
        let got = wait_imported(&up, consumer, "web", "web", &["member1"], 3);
        // the dispatched slices say who made them
        let list = get(
            &up,
            consumer,
            &[
                "endpointslices",
                "-l",
                "endpointslice.kubernetes.io/managed-by=endpointslice-dispatch-controller.karmada.io",
            ],
        )
        .expect("list")
        .expect("list");
        assert!(!list["items"].as_array().expect("items").is_empty());
        assert_eq!(got.len(), 3);
    }
    // the provider does not get its own endpoints back
    let (names, _) = slices(&up, "member1", "web").expect("member1");
    assert!(
        names.iter().all(|n| !n.starts_with("imported-")),
        "{names:?}"
    );
    wait_condition(&up, "flotilla", &["mcs", "web"], "ServiceApplied", "True");
    wait_condition(
        &up,
        "flotilla",
        &["mcs", "web"],
        "EndpointSliceDispatched",
        "True",
    );
    // LoadBalancer is recorded and reported unsupported
    apply(
        &up,
        "mcs-lb",
        "apiVersion: networking.karmada.io/v1alpha1\nkind: MultiClusterService\nmetadata:\n  name: web-lb\nspec:\n  types: [LoadBalancer]\n",
    );
    let lb = wait_condition(
        &up,
        "flotilla",
        &["mcs", "web-lb"],
        "LoadBalancerExposed",
        "False",
    );
    assert_eq!(lb["reason"], "Unsupported");

    up.k_ok(&["scale", "deploy", "web", "--replicas", "5"]);
    for consumer in ["member2", "member3"] {
        wait_imported(&up, consumer, "web", "web", &["member1"], 5);
    }

    up.k_ok(&["delete", "mcs", "web"]);
    for consumer in ["member2", "member3"] {
        wait_no_slices(&up, consumer, "web");
        wait_absent(&up, consumer, &["svc", "web"]);
    }
    // the provider keeps the Service its PropagationPolicy put there
    assert!(get(&up, "member1", &["svc", "web"]).expect("get").is_some());
    wait_no_slices(&up, "flotilla", "derived-web");
}
