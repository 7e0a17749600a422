//! The production manifests: both overlays render with `kubectl kustomize`
//! (every kubectl the tests drive), `flotilla init` renders the same objects
//! with certificates filled in, and what it renders is accepted by API
//! servers standing in for the host cluster and the control plane, and is
//! internally consistent: every ServiceAccount, Secret (and key), Service,
//! role and webhook/APIService backend that something names exists, and the
//! API server starts from the PKI it is given without rewriting it.

#![allow(clippy::unwrap_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

use base64::Engine;
use flotilla_tests::{ApiServer, flotilla_bin, kubectls, run};
use serde_json::Value;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn docs(text: &str) -> Vec<Value> {
    serde_saphyr::from_multiple::<Value>(text)
        .expect("YAML")
        .into_iter()
        .filter(|d| !d.is_null())
        .collect()
}

fn key(d: &Value) -> String {
    format!(
        "{}/{}/{}",
        d["kind"].as_str().unwrap_or(""),
        d.pointer("/metadata/namespace")
            .and_then(Value::as_str)
            .unwrap_or(""),
        d.pointer("/metadata/name")
            .and_then(Value::as_str)
            .unwrap_or("")
    )
}

fn by_key(list: Vec<Value>) -> BTreeMap<String, Value> {
    let mut out = BTreeMap::new();
    for d in list {
        assert!(
            out.insert(key(&d), d.clone()).is_none(),
            "duplicate {}",
            key(&d)
        );
    }
    out
}

fn kustomize(kubectl: &Path, dir: &str) -> Vec<Value> {
    let (code, out, err) = run(Command::new(kubectl).arg("kustomize").arg(repo().join(dir)));
    assert_eq!(code, 0, "{} kustomize {dir}: {err}", kubectl.display());
    docs(&out)
}

fn init(args: &[&str], out: &Path) -> BTreeMap<String, String> {
    let (code, stdout, err) = run(Command::new(flotilla_bin())
        .arg("init")
        .args(args)
        .arg("--output")
        .arg(out));
    assert_eq!(code, 0, "flotilla init {args:?}: {err}{stdout}");
    let mut files = BTreeMap::new();
    let mut stack = vec![out.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for e in std::fs::read_dir(&dir).expect("read dir") {
            let p = e.expect("entry").path();
            if p.is_dir() {
                stack.push(p);
            } else {
                let rel = p.strip_prefix(out).expect("inside").display().to_string();
                files.insert(rel, std::fs::read_to_string(&p).expect("text file"));
            }
        }
    }
    files
}

/// Drops what `flotilla init` adds to the kustomize output (Secrets and
/// caBundles).
fn without_additions(mut d: BTreeMap<String, Value>) -> BTreeMap<String, Value> {
    d.retain(|k, _| !k.starts_with("Secret/"));
    for v in d.values_mut() {
        if let Some(spec) = v.get_mut("spec").and_then(Value::as_object_mut) {
            spec.remove("caBundle");
        }
        for w in v
            .get_mut("webhooks")
            .and_then(Value::as_array_mut)
            .into_iter()
            .flatten()
        {
            if let Some(cc) = w.get_mut("clientConfig").and_then(Value::as_object_mut) {
                cc.remove("caBundle");
            }
        }
    }
    d
}

/// `kubectl apply` (server-side for the control-plane part, as docs/deploy.md says).
fn apply(server: &ApiServer, kubectl: &Path, file: &Path) {
    let server_side = file.ends_with("control-plane.yaml");
    let (code, out, err) = run(server
        .kubectl(kubectl)
        .arg("apply")
        .args(server_side.then_some("--server-side"))
        .arg("-f")
        .arg(file));
    assert_eq!(
        code,
        0,
        "{} apply -f {}: {err}{out}",
        kubectl.display(),
        file.display()
    );
}

/// Every object on `server` of these kinds, by `Kind/namespace/name`.
fn live(server: &ApiServer, kubectl: &Path, kinds: &str) -> BTreeMap<String, Value> {
    let (code, out, err) = run(server
        .kubectl(kubectl)
        .args(["get", kinds, "-A", "-o", "json"]));
    assert_eq!(code, 0, "get {kinds}: {err}");
    let list: Value = serde_json::from_str(&out).expect("json");
    by_key(list["items"].as_array().cloned().unwrap_or_default())
}

fn b64(s: &str) -> String {
    String::from_utf8(
        base64::engine::general_purpose::STANDARD
            .decode(s)
            .expect("base64"),
    )
    .expect("utf-8")
}

fn labels_match(selector: &Value, labels: &Value) -> bool {
    selector
        .as_object()
        .is_some_and(|m| !m.is_empty() && m.iter().all(|(k, v)| labels.get(k) == Some(v)))
}

/// The host part: workloads, their accounts, Secrets and Services agree.
fn check_host(objs: &BTreeMap<String, Value>) {
    let has = |k: String| objs.contains_key(&k);
    let workloads: Vec<&Value> = objs
        .values()
        .filter(|d| matches!(d["kind"].as_str(), Some("Deployment" | "StatefulSet")))
        .collect();
    assert_eq!(workloads.len(), 5, "{:?}", objs.keys());
    for w in &workloads {
        let ns = w["metadata"]["namespace"].as_str().expect("namespaced");
        let name = key(w);
        let pod = &w["spec"]["template"]["spec"];
        let sa = pod["serviceAccountName"]
            .as_str()
            .expect("serviceAccountName");
        assert!(
            has(format!("ServiceAccount/{ns}/{sa}")),
            "{name}: ServiceAccount {sa}"
        );
        assert_eq!(
            pod["automountServiceAccountToken"],
            Value::Bool(false),
            "{name}: no host API token"
        );
        assert_eq!(
            pod["securityContext"]["runAsNonRoot"],
            Value::Bool(true),
            "{name}"
        );
        if w["kind"] == "StatefulSet" {
            let svc = w["spec"]["serviceName"].as_str().expect("serviceName");
            assert!(has(format!("Service/{ns}/{svc}")), "{name}: Service {svc}");
        }
        let volumes: BTreeMap<&str, &Value> = pod["volumes"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|v| (v["name"].as_str().expect("volume name"), v))
            .collect();
        let claims: BTreeSet<&str> = w["spec"]["volumeClaimTemplates"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|c| c["metadata"]["name"].as_str())
            .collect();
        for v in volumes.values() {
            if let Some(secret) = v.pointer("/secret/secretName").and_then(Value::as_str) {
                assert!(
                    has(format!("Secret/{ns}/{secret}")),
                    "{name}: Secret {secret}"
                );
            }
            if let Some(cm) = v.pointer("/configMap/name").and_then(Value::as_str) {
                assert!(
                    has(format!("ConfigMap/{ns}/{cm}")),
                    "{name}: ConfigMap {cm}"
                );
            }
        }
        for c in pod["containers"].as_array().expect("containers") {
            let cname = c["name"].as_str().unwrap_or("");
            let sc = &c["securityContext"];
            assert_eq!(
                sc["readOnlyRootFilesystem"],
                Value::Bool(true),
                "{name}/{cname}"
            );
            assert_eq!(
                sc["allowPrivilegeEscalation"],
                Value::Bool(false),
                "{name}/{cname}"
            );
            assert!(
                c.pointer("/resources/requests/cpu").is_some(),
                "{name}/{cname}: requests"
            );
            assert!(
                c.pointer("/resources/limits/memory").is_some(),
                "{name}/{cname}: limits"
            );
            assert!(
                c.get("livenessProbe").is_some() && c.get("readinessProbe").is_some(),
                "{name}/{cname}: probes"
            );
            let mut mounted: Vec<(String, String)> = Vec::new();
            for m in c["volumeMounts"].as_array().into_iter().flatten() {
                let vname = m["name"].as_str().expect("mount name");
                assert!(
                    volumes.contains_key(vname) || claims.contains(vname),
                    "{name}/{cname}: volume {vname}"
                );
                let path = m["mountPath"].as_str().expect("mountPath").to_string();
                // a subPath of a Secret names one of its keys
                if let (Some(sub), Some(secret)) = (
                    m["subPath"].as_str(),
                    volumes
                        .get(vname)
                        .and_then(|v| v.pointer("/secret/secretName"))
                        .and_then(Value::as_str),
                ) {
                    let s = &objs[&format!("Secret/{ns}/{secret}")];
                    assert!(
                        s["data"].get(sub).is_some(),
                        "{name}: Secret {secret} has key {sub}"
                    );
                }
                mounted.push((path, vname.to_string()));
            }
            // every file an argument names is inside a mount, and a Secret has that key
            for arg in c["command"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
            {
                let Some((_, value)) = arg.split_once('=') else {
                    continue;
                };
                if !value.starts_with("/etc/") && !value.starts_with("/var/") {
                    continue;
                }
                let (mount, vname) = mounted
                    .iter()
                    .filter(|(p, _)| value == p || value.starts_with(&format!("{p}/")))
                    .max_by_key(|(p, _)| p.len())
                    .unwrap_or_else(|| panic!("{name}/{cname}: {arg} is not in a mounted volume"));
                if let Some(secret) = volumes
                    .get(vname.as_str())
                    .and_then(|v| v.pointer("/secret/secretName"))
                    .and_then(Value::as_str)
                    && let Some(file) = value.strip_prefix(&format!("{mount}/"))
                {
                    let s = &objs[&format!("Secret/{ns}/{secret}")];
                    assert!(
                        s["data"].get(file).is_some(),
                        "{name}: {arg}: Secret {secret} has key {file}"
                    );
                }
            }
        }
    }
    // Services and disruption budgets select pods that exist, on their ports
    for d in objs.values() {
        let kind = d["kind"].as_str().unwrap_or("");
        let selector = match kind {
            "Service" => d.pointer("/spec/selector"),
            "PodDisruptionBudget" => d.pointer("/spec/selector/matchLabels"),
            "NetworkPolicy" => d.pointer("/spec/podSelector/matchLabels"),
            _ => continue,
        };
        let selector = selector.unwrap_or_else(|| panic!("{}: selector", key(d)));
        let targets: Vec<&&Value> = workloads
            .iter()
            .filter(|w| labels_match(selector, &w["spec"]["template"]["metadata"]["labels"]))
            .collect();
        assert!(!targets.is_empty(), "{} selects no workload", key(d));
        if kind == "Service" {
            for p in d["spec"]["ports"].as_array().expect("ports") {
                let target = p["targetPort"]
                    .as_i64()
                    .or(p["port"].as_i64())
                    .expect("port");
                assert!(
                    targets
                        .iter()
                        .any(|w| w["spec"]["template"]["spec"]["containers"]
                            .as_array()
                            .into_iter()
                            .flatten()
                            .flat_map(|c| c["ports"].as_array().cloned().unwrap_or_default())
                            .any(|cp| cp["containerPort"].as_i64() == Some(target))),
                    "{}: no container listens on {target}",
                    key(d)
                );
            }
        }
    }
    // the kubeconfigs name the API server's Service and trust its CA
    let ca = b64(
        objs["Secret/karmada-system/karmada-apiserver-pki"]["data"]["ca.crt"]
            .as_str()
            .expect("ca"),
    );
    let svc = &objs["Service/karmada-system/karmada-apiserver"];
    let port = svc["spec"]["ports"][0]["port"].as_i64().expect("port");
    for s in [
        "karmada-controller-manager-kubeconfig",
        "karmada-aggregated-apiserver-kubeconfig",
    ] {
        let kc = b64(
            objs[&format!("Secret/karmada-system/{s}")]["data"]["kubeconfig"]
                .as_str()
                .expect("kubeconfig"),
        );
        assert!(
            kc.contains(&format!(
                "server: https://karmada-apiserver.karmada-system.svc.cluster.local:{port}"
            )),
            "{s}: {kc}"
        );
        let kc: Value = serde_saphyr::from_str(&kc).expect("kubeconfig YAML");
        let data = kc["clusters"][0]["cluster"]["certificate-authority-data"]
            .as_str()
            .expect("CA");
        assert_eq!(b64(data), ca, "{s} trusts the API server's CA");
    }
}

/// The control-plane part: roles bound exist, APIServices and webhooks name
/// Services that exist and carry the CA of the serving certificate.
fn check_control_plane(
    objs: &BTreeMap<String, Value>,
    aggregated_ca: &str,
    webhook_ca: &str,
) -> Vec<(String, i64)> {
    let mut backends = Vec::new();
    for d in objs.values() {
        match d["kind"].as_str().unwrap_or("") {
            "ClusterRoleBinding" | "RoleBinding" => {
                let role = d["roleRef"]["name"].as_str().expect("roleRef");
                let ns = d
                    .pointer("/metadata/namespace")
                    .and_then(Value::as_str)
                    .unwrap_or("");
                let found = objs.contains_key(&format!("ClusterRole//{role}"))
                    || objs.contains_key(&format!("Role/{ns}/{role}"));
                assert!(found, "{}: role {role}", key(d));
            }
            "APIService" => {
                let svc = &d["spec"]["service"];
                let (ns, name) = (
                    svc["namespace"].as_str().unwrap(),
                    svc["name"].as_str().unwrap(),
                );
                assert!(
                    objs.contains_key(&format!("Service/{ns}/{name}")),
                    "{}: Service {ns}/{name}",
                    key(d)
                );
                assert_eq!(
                    b64(d["spec"]["caBundle"].as_str().expect("caBundle")),
                    aggregated_ca,
                    "{}",
                    key(d)
                );
                backends.push((format!("{ns}/{name}"), svc["port"].as_i64().unwrap_or(443)));
            }
            "MutatingWebhookConfiguration" | "ValidatingWebhookConfiguration" => {
                for w in d["webhooks"].as_array().expect("webhooks") {
                    let svc = &w["clientConfig"]["service"];
                    let (ns, name) = (
                        svc["namespace"].as_str().unwrap(),
                        svc["name"].as_str().unwrap(),
                    );
                    assert!(
                        objs.contains_key(&format!("Service/{ns}/{name}")),
                        "{}: Service {ns}/{name}",
                        key(d)
                    );
                    let ca = w["clientConfig"]["caBundle"].as_str().expect("caBundle");
                    assert_eq!(b64(ca), webhook_ca, "{}", key(d));
                    backends.push((format!("{ns}/{name}"), svc["port"].as_i64().unwrap_or(443)));
                }
            }
            _ => {}
        }
    }
    backends.sort();
    backends.dedup();
    assert_eq!(backends.len(), 2, "{backends:?}");
    backends
}

/// Starts an API server on a copy of `pki` (a data directory made by
/// `flotilla init`), with `args`, and checks it used the PKI as given.
fn start_on(pki: &Path, args: &[&str]) -> ApiServer {
    let files: Vec<(String, Vec<u8>)> = std::fs::read_dir(pki)
        .expect("pki dir")
        .map(|e| {
            let p = e.expect("entry").path();
            (
                p.file_name().unwrap().to_string_lossy().to_string(),
                std::fs::read(&p).expect("read"),
            )
        })
        .collect();
    let given = files.clone();
    let server = ApiServer::start_prepared(args, move |dir| {
        for (name, bytes) in &given {
            std::fs::write(dir.join(name), bytes).expect("copy");
        }
    });
    for (name, bytes) in &files {
        assert_eq!(
            &std::fs::read(server.dir.join(name)).expect("read"),
            bytes,
            "the API server kept {name} as given (a read-only mount would otherwise fail)"
        );
    }
    server
}

#[test]
fn overlays_render_and_init_output_is_accepted_and_consistent() {
    let tmp = tempfile::tempdir().expect("tmp");
    let host_files = init(
        &[
            "--mode",
            "host-cluster",
            "--pki-dir",
            tmp.path().join("pki").to_str().unwrap(),
        ],
        &tmp.path().join("host-cluster"),
    );
    for f in ["host.yaml", "control-plane.yaml", "admin.kubeconfig"] {
        assert!(host_files.contains_key(f), "{f} in {:?}", host_files.keys());
    }
    let host = by_key(docs(&host_files["host.yaml"]));
    let cp = by_key(docs(&host_files["control-plane.yaml"]));
    let pki = tmp.path().join("pki");
    let read = |p: &str| std::fs::read_to_string(pki.join(p)).expect(p);
    let aggregated_ca = read("aggregated-apiserver/ca.crt");
    let webhook_ca = read("webhook/ca.crt");

    for kubectl in kubectls() {
        let who = kubectl.display().to_string();
        // kustomize renders every overlay, and init renders the same objects
        let k_host = by_key(kustomize(&kubectl, "deploy/overlays/host-cluster"));
        let k_cp = by_key(kustomize(
            &kubectl,
            "deploy/overlays/host-cluster/control-plane",
        ));
        assert_eq!(without_additions(host.clone()), k_host, "{who}: host part");
        assert_eq!(
            without_additions(cp.clone()),
            k_cp,
            "{who}: control-plane part"
        );
        let standalone = kustomize(&kubectl, "deploy/overlays/standalone");
        assert!(standalone.iter().any(|d| d["kind"] == "Endpoints"), "{who}");
        let agent = by_key(kustomize(&kubectl, "deploy/agent"));
        assert!(
            agent.contains_key("Deployment/karmada-system/karmada-agent"),
            "{who}"
        );

        // host part on a stand-in host
        let host_server = ApiServer::start();
        apply(
            &host_server,
            &kubectl,
            &tmp.path().join("host-cluster/host.yaml"),
        );
        let live_host = live(
            &host_server,
            &kubectl,
            "namespaces,serviceaccounts,secrets,configmaps,services,deployments,statefulsets,poddisruptionbudgets,networkpolicies",
        );
        for k in host.keys() {
            assert!(live_host.contains_key(k), "{who}: {k} accepted by the host");
        }
        let live_host: BTreeMap<String, Value> = live_host
            .into_iter()
            .filter(|(k, _)| host.contains_key(k))
            .collect();
        check_host(&live_host);

        // control-plane part on an API server started from the PKI init made,
        // with the names the host's Deployment passes
        let cp_server = start_on(
            &pki.join("apiserver"),
            &[
                "--tls-san=karmada-apiserver,karmada-apiserver.karmada-system,karmada-apiserver.karmada-system.svc,karmada-apiserver.karmada-system.svc.cluster.local",
            ],
        );
        apply(
            &cp_server,
            &kubectl,
            &tmp.path().join("host-cluster/control-plane.yaml"),
        );
        let live_cp = live(
            &cp_server,
            &kubectl,
            "namespaces,services,clusterroles,clusterrolebindings,apiservices,mutatingwebhookconfigurations,validatingwebhookconfigurations,customresourcedefinitions",
        );
        for k in cp.keys() {
            assert!(
                live_cp.contains_key(k),
                "{who}: {k} accepted by the control plane"
            );
        }
        let live_cp: BTreeMap<String, Value> = live_cp
            .into_iter()
            .filter(|(k, _)| cp.contains_key(k))
            .collect();
        for (svc, port) in check_control_plane(&live_cp, &aggregated_ca, &webhook_ca) {
            // each backend is an ExternalName to the host's Service on that port
            let (ns, name) = svc.split_once('/').unwrap();
            let s = &live_cp[&format!("Service/{ns}/{name}")];
            assert_eq!(
                s["spec"]["externalName"],
                format!("{name}.{ns}.svc.cluster.local"),
                "{who}"
            );
            let on_host = &live_host[&format!("Service/{ns}/{name}")];
            assert!(
                on_host["spec"]["ports"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .any(|p| p["port"].as_i64() == Some(port)),
                "{who}: the host's {svc} serves port {port}"
            );
        }
        // the identities in the Secrets have the rights their components need
        for (user, verb, what, want) in [
            (
                "system:karmada:controller-manager",
                "create",
                "works.work.karmada.io",
                "yes",
            ),
            (
                "system:karmada:controller-manager",
                "create",
                "clusterroles.rbac.authorization.k8s.io",
                "no",
            ),
            (
                "system:karmada:aggregated-apiserver",
                "get",
                "secrets",
                "yes",
            ),
            (
                "system:karmada:aggregated-apiserver",
                "list",
                "secrets",
                "no",
            ),
        ] {
            let (_, out, _) = run(cp_server
                .kubectl(&kubectl)
                .args(["auth", "can-i", verb, what, "--as", user]));
            assert_eq!(out.trim(), want, "{who}: can {user} {verb} {what}");
        }
    }
}

#[test]
fn standalone_init_renders_units_and_a_working_pki() {
    let tmp = tempfile::tempdir().expect("tmp");
    let out = tmp.path().join("standalone");
    let files = init(
        &[
            "--mode",
            "standalone",
            "--pki-dir",
            tmp.path().join("pki").to_str().unwrap(),
            "--advertise-address",
            "127.0.0.1",
            "--etcd-servers",
            "http://127.0.0.1:2379",
        ],
        &out,
    );
    for unit in [
        "apiserver",
        "aggregated-apiserver",
        "webhook",
        "controller-manager",
    ] {
        let text = &files[&format!("rootfs/etc/systemd/system/flotilla-{unit}.service")];
        // every file a unit names is rendered
        for word in text
            .split_whitespace()
            .filter_map(|w| w.split_once('=').map(|(_, v)| v))
        {
            if word.starts_with("/etc/flotilla/") && word != "/etc/flotilla/flotilla.env" {
                let rel = format!("rootfs{word}");
                assert!(
                    files.contains_key(&rel)
                        || files.keys().any(|k| k.starts_with(&format!("{rel}/"))),
                    "flotilla-{unit}.service names {word}"
                );
            }
        }
    }
    let env = &files["rootfs/etc/flotilla/flotilla.env"];
    assert!(
        env.contains("FLOTILLA_ETCD_SERVERS=http://127.0.0.1:2379"),
        "{env}"
    );
    let sans = env
        .lines()
        .find_map(|l| l.strip_prefix("FLOTILLA_APISERVER_SANS="))
        .expect("SANs")
        .to_string();
    // the API server runs on the rendered data directory as the unit starts it
    let server = start_on(
        &out.join("rootfs/var/lib/flotilla/apiserver"),
        &["--storage=memory", &format!("--tls-san={sans}")],
    );
    let cp = by_key(docs(&files["control-plane.yaml"]));
    let pki = tmp.path().join("pki");
    let read = |p: &str| std::fs::read_to_string(pki.join(p)).expect(p);
    for kubectl in kubectls() {
        apply(&server, &kubectl, &out.join("control-plane.yaml"));
        let live_cp: BTreeMap<String, Value> = live(
            &server,
            &kubectl,
            "namespaces,services,endpoints,clusterroles,clusterrolebindings,apiservices,mutatingwebhookconfigurations,validatingwebhookconfigurations",
        )
        .into_iter()
        .filter(|(k, _)| cp.contains_key(k))
        .collect();
        for (svc, port) in check_control_plane(
            &live_cp,
            &read("aggregated-apiserver/ca.crt"),
            &read("webhook/ca.crt"),
        ) {
            let (ns, name) = svc.split_once('/').unwrap();
            let s = &live_cp[&format!("Service/{ns}/{name}")];
            let target = s["spec"]["ports"]
                .as_array()
                .unwrap()
                .iter()
                .find(|p| p["port"].as_i64() == Some(port))
                .and_then(|p| p["targetPort"].as_i64())
                .expect("target port");
            let ep = &live_cp[&format!("Endpoints/{ns}/{name}")];
            assert_eq!(ep["subsets"][0]["addresses"][0]["ip"], "127.0.0.1");
            assert_eq!(
                ep["subsets"][0]["ports"][0]["port"].as_i64(),
                Some(target),
                "{svc}"
            );
        }
    }
    // the component kubeconfigs reach this API server's CA at the advertised address
    let kc = &files["rootfs/etc/flotilla/controller-manager.kubeconfig"];
    assert!(kc.contains("server: https://127.0.0.1:5443"), "{kc}");
}
