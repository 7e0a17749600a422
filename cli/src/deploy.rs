//! `flotilla certs` and `flotilla init`: the certificates, kubeconfigs and
//! manifests of a production installation (what `karmadactl init` does for
//! Karmada, without fetching anything).
//!
//! [`ensure_bundle`] makes (once, then reuses) every key and certificate in a
//! PKI directory, with the API server's own `pki` module: the API server's
//! CA, serving, front-proxy and service-account material, one CA and serving
//! certificate each for the aggregated API server and the webhook, and
//! client certificates for the controller manager, the aggregated API server
//! and pull-mode agents. [`secrets`] turns them into the Secrets the
//! manifests mount. [`kustomize`] renders a directory of the `deploy/` tree
//! compiled into the binary ([`crate::deploy_files`]) the way
//! `kubectl kustomize` does (the subset used there: `resources` and
//! `images`), and [`init`] puts it all together for one installation.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use base64::Engine;
use flotilla_apiserver::server::pki;
use serde_json::{Value, json};

/// The namespace of every component (Karmada's).
pub const NAMESPACE: &str = "karmada-system";
/// The API server's port (Karmada's karmada-apiserver port).
pub const APISERVER_PORT: u16 = 5443;
/// The image name the manifests use for the flotilla binary.
pub const FLOTILLA_IMAGE: &str = "flotilla:latest";
/// The image name the manifests use for etcd.
pub const ETCD_IMAGE: &str = "etcd:3.5.21";

/// The files of the API server's data directory that its Secret carries.
pub const APISERVER_FILES: &[&str] = &[
    "ca.crt",
    "ca.key",
    "apiserver.crt",
    "apiserver.key",
    "admin.crt",
    "admin.key",
    "front-proxy-ca.crt",
    "front-proxy-ca.key",
    "front-proxy-client.crt",
    "front-proxy-client.key",
    "sa.key",
    "tokens.csv",
];

/// Where the components run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Mode {
    /// As workloads of a host Kubernetes cluster (deploy/overlays/host-cluster).
    HostCluster,
    /// As processes on machines, on an external etcd (deploy/overlays/standalone).
    Standalone,
}

/// How `flotilla certs` hands out what it made.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum CertsFormat {
    /// List the files in the PKI directory.
    Files,
    /// Print the Secrets the manifests mount, as YAML.
    Secrets,
}

/// What the certificates are for.
#[derive(Clone, Debug)]
pub struct CertOptions {
    /// The PKI directory (made once, reused afterwards).
    pub dir: PathBuf,
    /// Names and addresses of the API server besides its in-cluster Service
    /// names, 127.0.0.1 and localhost.
    pub apiserver_sans: Vec<String>,
    /// The API server URL written into the components' kubeconfigs.
    pub component_server: String,
    /// The API server URL for clients outside the host, written into the
    /// admin's and agents' kubeconfigs.
    pub admin_server: String,
    /// Also make a kubeconfig for the agent of this cluster (pull mode).
    pub agent: Option<String>,
}

/// Every key, certificate and kubeconfig of one installation.
#[derive(Clone, Debug)]
pub struct Bundle {
    /// The API server's data directory files ([`APISERVER_FILES`]).
    pub apiserver: BTreeMap<String, String>,
    /// The aggregated API server's CA and serving pair
    /// (`ca.crt`, `ca.key`, `apiserver.crt`, `apiserver.key`).
    pub aggregated: BTreeMap<String, String>,
    /// The webhook's CA and serving pair (`ca.crt`, `tls.crt`, `tls.key`).
    pub webhook: BTreeMap<String, String>,
    /// Kubeconfigs by user: `admin`, `controller-manager`,
    /// `aggregated-apiserver`, `agent` (when asked for).
    pub kubeconfigs: BTreeMap<String, String>,
}

fn service_names(name: &str) -> Vec<String> {
    vec![
        name.to_string(),
        format!("{name}.{NAMESPACE}"),
        format!("{name}.{NAMESPACE}.svc"),
        format!("{name}.{NAMESPACE}.svc.cluster.local"),
    ]
}

fn read_all(dir: &Path, names: &[&str]) -> Result<BTreeMap<String, String>> {
    names
        .iter()
        .map(|n| {
            let path = dir.join(n);
            std::fs::read_to_string(&path)
                .with_context(|| format!("reading {}", path.display()))
                .map(|text| (n.to_string(), text))
        })
        .collect()
}

/// A kubeconfig for a client-certificate user.
fn client_kubeconfig(server: &str, ca_pem: &str, cert_pem: &str, key_pem: &str) -> String {
    let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s.as_bytes());
    format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: flotilla\n  cluster:\n    server: {server}\n    certificate-authority-data: {ca}\nusers:\n- name: flotilla\n  user:\n    client-certificate-data: {cert}\n    client-key-data: {key}\ncontexts:\n- name: flotilla\n  context:\n    cluster: flotilla\n    user: flotilla\ncurrent-context: flotilla\npreferences: {{}}\n",
        ca = b64(ca_pem),
        cert = b64(cert_pem),
        key = b64(key_pem),
    )
}

/// Makes whatever is missing in the PKI directory and reads it all back.
pub fn ensure_bundle(opts: &CertOptions) -> Result<Bundle> {
    let api_dir = opts.dir.join("apiserver");
    let mut sans = service_names("karmada-apiserver");
    for s in &opts.apiserver_sans {
        if !sans.contains(s) {
            sans.push(s.clone());
        }
    }
    std::fs::create_dir_all(&api_dir).with_context(|| format!("creating {}", api_dir.display()))?;
    let api = pki::ensure(&api_dir, "", &sans)
        .with_context(|| format!("making the API server's PKI in {}", api_dir.display()))?;
    let apiserver = read_all(&api_dir, APISERVER_FILES)?;

    let local = ["127.0.0.1".to_string(), "localhost".to_string()];
    let agg_dir = opts.dir.join("aggregated-apiserver");
    let mut agg_hosts = local.to_vec();
    agg_hosts.extend(service_names("karmada-aggregated-apiserver"));
    pki::ensure_serving(
        &agg_dir,
        "flotilla-aggregated-apiserver-ca",
        "apiserver",
        &agg_hosts,
    )?;
    let aggregated = read_all(
        &agg_dir,
        &["ca.crt", "ca.key", "apiserver.crt", "apiserver.key"],
    )?;

    let hook_dir = opts.dir.join("webhook");
    let mut hook_hosts = local.to_vec();
    hook_hosts.extend(service_names("karmada-webhook"));
    pki::ensure_serving(&hook_dir, "flotilla-webhook-ca", "tls", &hook_hosts)?;
    let webhook = read_all(&hook_dir, &["ca.crt", "tls.crt", "tls.key"])?;

    let mut kubeconfigs = BTreeMap::new();
    kubeconfigs.insert(
        "admin".to_string(),
        pki::kubeconfig(&api, &opts.admin_server, "flotilla"),
    );
    let mut users = vec![
        (
            "controller-manager".to_string(),
            "system:karmada:controller-manager".to_string(),
            vec![],
        ),
        (
            "aggregated-apiserver".to_string(),
            "system:karmada:aggregated-apiserver".to_string(),
            vec![],
        ),
        // the webhook lists ResourceInterpreterCustomizations to find conflicts
        (
            "webhook".to_string(),
            "system:karmada:webhook".to_string(),
            vec![],
        ),
    ];
    if let Some(cluster) = &opts.agent {
        if cluster.is_empty()
            || !cluster
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        {
            bail!("--agent {cluster:?}: a cluster name is a DNS label (a-z, 0-9, -)");
        }
        users.push((
            format!("agent-{cluster}"),
            format!("system:karmada:agent:{cluster}"),
            vec!["system:karmada:agents".to_string()],
        ));
    }
    for (file, user, groups) in users {
        let groups: Vec<&str> = groups.iter().map(String::as_str).collect();
        let (cert, key) = pki::ensure_client(&api_dir, &file, &user, &groups)?;
        // an agent runs in its member cluster: it reaches the API server
        // from outside the host, as the admin does
        let (name, server) = if file.starts_with("agent-") {
            ("agent".to_string(), &opts.admin_server)
        } else {
            (file, &opts.component_server)
        };
        kubeconfigs.insert(
            name,
            client_kubeconfig(server, &api.ca_cert_pem, &cert, &key),
        );
    }
    Ok(Bundle {
        apiserver,
        aggregated,
        webhook,
        kubeconfigs,
    })
}

fn secret(name: &str, type_: &str, data: &[(&str, &str)]) -> Value {
    let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s.as_bytes());
    let data: serde_json::Map<String, Value> = data
        .iter()
        .map(|(k, v)| (k.to_string(), Value::String(b64(v))))
        .collect();
    json!({
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": name, "namespace": NAMESPACE, "labels": {"app.kubernetes.io/part-of": "flotilla"}},
        "type": type_,
        "data": data,
    })
}

/// The Secrets the host-cluster manifests mount (and, with an agent, the
/// agent's kubeconfig Secret for its member cluster).
pub fn secrets(b: &Bundle) -> Vec<Value> {
    let get = |m: &BTreeMap<String, String>, k: &str| m.get(k).cloned().unwrap_or_default();
    let api: Vec<(&str, String)> = APISERVER_FILES
        .iter()
        .map(|f| (*f, get(&b.apiserver, f)))
        .collect();
    let api_refs: Vec<(&str, &str)> = api.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let front_proxy_ca = get(&b.apiserver, "front-proxy-ca.crt");
    let agg: Vec<(&str, String)> = ["ca.crt", "ca.key", "apiserver.crt", "apiserver.key"]
        .iter()
        .map(|f| (*f, get(&b.aggregated, f)))
        .chain([("front-proxy-ca.crt", front_proxy_ca)])
        .collect();
    let agg_refs: Vec<(&str, &str)> = agg.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let mut out = vec![
        secret("karmada-apiserver-pki", "Opaque", &api_refs),
        secret("karmada-aggregated-apiserver-pki", "Opaque", &agg_refs),
        secret(
            "karmada-aggregated-apiserver-kubeconfig",
            "Opaque",
            &[("kubeconfig", &get(&b.kubeconfigs, "aggregated-apiserver"))],
        ),
        secret(
            "karmada-webhook-cert",
            "kubernetes.io/tls",
            &[
                ("tls.crt", &get(&b.webhook, "tls.crt")),
                ("tls.key", &get(&b.webhook, "tls.key")),
            ],
        ),
        secret(
            "karmada-controller-manager-kubeconfig",
            "Opaque",
            &[("kubeconfig", &get(&b.kubeconfigs, "controller-manager"))],
        ),
        secret(
            "karmada-webhook-config",
            "Opaque",
            &[("karmada.config", &get(&b.kubeconfigs, "webhook"))],
        ),
    ];
    if let Some(agent) = b.kubeconfigs.get("agent") {
        out.push(secret(
            "karmada-agent-kubeconfig",
            "Opaque",
            &[("kubeconfig", agent)],
        ));
    }
    out
}

/// The embedded file at `path` (relative to `deploy/`).
fn file(path: &str) -> Option<&'static str> {
    crate::deploy_files::FILES
        .iter()
        .find(|(p, _)| *p == path)
        .map(|(_, text)| *text)
}

/// `dir/rel` with `.` and `..` resolved (paths stay relative to `deploy/`).
fn join(dir: &str, rel: &str) -> Result<String> {
    let mut parts: Vec<&str> = dir.split('/').filter(|p| !p.is_empty()).collect();
    for part in rel.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                if parts.pop().is_none() {
                    bail!("{rel:?} (from {dir}) leaves the deploy tree");
                }
            }
            p => parts.push(p),
        }
    }
    Ok(parts.join("/"))
}

/// The YAML documents of `text` (empty ones skipped).
pub fn parse_documents(text: &str) -> Result<Vec<Value>> {
    let docs: Vec<Value> = serde_saphyr::from_multiple(text).context("parsing YAML")?;
    Ok(docs.into_iter().filter(|d| !d.is_null()).collect())
}

/// The pod templates' containers of a workload object.
fn containers_mut(obj: &mut Value) -> Vec<&mut Value> {
    let mut out = Vec::new();
    let Some(spec) = obj
        .pointer_mut("/spec/template/spec")
        .and_then(Value::as_object_mut)
    else {
        return out;
    };
    for (key, list) in spec.iter_mut() {
        if key != "containers" && key != "initContainers" {
            continue;
        }
        if let Some(items) = list.as_array_mut() {
            out.extend(items.iter_mut());
        }
    }
    out
}

/// Renders the kustomization in `dir` (relative to `deploy/`), following
/// `resources` (files and directories with their own kustomization) and
/// applying `images` (`name`, `newName`, `newTag`), as `kubectl kustomize`.
/// Other kustomize features are refused by name.
pub fn kustomize(dir: &str) -> Result<Vec<Value>> {
    let path = join(dir, "kustomization.yaml")?;
    let text = file(&path).with_context(|| format!("deploy/{path} does not exist"))?;
    let k: Value =
        serde_saphyr::from_str(text).with_context(|| format!("parsing deploy/{path}"))?;
    for key in k.as_object().map(|m| m.keys()).into_iter().flatten() {
        if !["apiVersion", "kind", "resources", "images"].contains(&key.as_str()) {
            bail!("deploy/{path}: `{key}` is not supported by `flotilla init`");
        }
    }
    let mut out = Vec::new();
    for r in k["resources"].as_array().into_iter().flatten() {
        let r = r.as_str().context("a resource is not a string")?;
        let target = join(dir, r)?;
        if let Some(text) = file(&target) {
            out.extend(parse_documents(text).with_context(|| format!("deploy/{target}"))?);
        } else if file(&format!("{target}/kustomization.yaml")).is_some() {
            out.extend(kustomize(&target)?);
        } else {
            bail!("deploy/{path}: resource {r} does not exist");
        }
    }
    for image in k["images"].as_array().into_iter().flatten() {
        let name = image["name"].as_str().context("an image without name")?;
        for obj in &mut out {
            for c in containers_mut(obj) {
                let current = c["image"].as_str().unwrap_or("").to_string();
                let (cur_name, cur_tag) = match current.rsplit_once(':') {
                    Some((n, t)) if !t.contains('/') => (n.to_string(), Some(t.to_string())),
                    _ => (current.clone(), None),
                };
                if cur_name != name {
                    continue;
                }
                let new_name = image["newName"].as_str().unwrap_or(&cur_name).to_string();
                let new_tag = image["newTag"].as_str().map(str::to_string).or(cur_tag);
                c["image"] = Value::String(match new_tag {
                    Some(t) => format!("{new_name}:{t}"),
                    None => new_name,
                });
            }
        }
    }
    Ok(out)
}

/// Sorts objects the way kustomize's default (legacy) order does, so that
/// `kubectl apply -f` creates what others depend on first: namespaces,
/// CRDs, accounts and RBAC, configuration, Services, workloads; webhook
/// configurations last (they would intercept the rest).
pub fn sort_for_apply(docs: &mut [Value]) {
    const FIRST: &[&str] = &[
        "Namespace",
        "ResourceQuota",
        "StorageClass",
        "CustomResourceDefinition",
        "ServiceAccount",
        "PodSecurityPolicy",
        "Role",
        "ClusterRole",
        "RoleBinding",
        "ClusterRoleBinding",
        "ConfigMap",
        "Secret",
        "Endpoints",
        "Service",
        "LimitRange",
        "PriorityClass",
        "PersistentVolume",
        "PersistentVolumeClaim",
        "Deployment",
        "StatefulSet",
        "CronJob",
        "PodDisruptionBudget",
    ];
    const LAST: &[&str] = &[
        "MutatingWebhookConfiguration",
        "ValidatingWebhookConfiguration",
    ];
    let rank = |d: &Value| {
        let kind = d["kind"].as_str().unwrap_or("");
        let r = match (
            FIRST.iter().position(|k| *k == kind),
            LAST.iter().position(|k| *k == kind),
        ) {
            (Some(i), _) => i,
            (None, Some(i)) => FIRST.len() + 1 + i,
            (None, None) => FIRST.len(),
        };
        (
            r,
            kind.to_string(),
            d.pointer("/metadata/namespace")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string(),
            d.pointer("/metadata/name")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string(),
        )
    };
    docs.sort_by_key(rank);
}

/// YAML documents separated by `---`.
pub fn to_yaml(docs: &[Value]) -> Result<String> {
    let mut out = String::new();
    for d in docs {
        out.push_str("---\n");
        out.push_str(&serde_saphyr::to_string(d).context("encoding YAML")?);
    }
    Ok(out)
}

/// Fills the caBundle of the APIServices and webhooks that name the
/// aggregated API server's and the webhook's Services.
fn fill_ca_bundles(docs: &mut [Value], b: &Bundle) {
    let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s.as_bytes());
    let agg_ca = b64(b.aggregated.get("ca.crt").map_or("", String::as_str));
    let hook_ca = b64(b.webhook.get("ca.crt").map_or("", String::as_str));
    for d in docs {
        match d["kind"].as_str() {
            Some("APIService")
                if d.pointer("/spec/service/name").and_then(Value::as_str)
                    == Some("karmada-aggregated-apiserver") =>
            {
                d["spec"]["caBundle"] = Value::String(agg_ca.clone());
            }
            Some("MutatingWebhookConfiguration" | "ValidatingWebhookConfiguration") => {
                for w in d["webhooks"].as_array_mut().into_iter().flatten() {
                    if w.pointer("/clientConfig/service/name")
                        .and_then(Value::as_str)
                        == Some("karmada-webhook")
                    {
                        w["clientConfig"]["caBundle"] = Value::String(hook_ca.clone());
                    }
                }
            }
            _ => {}
        }
    }
}

/// Replaces the base's image names with the installation's.
fn set_images(docs: &mut [Value], image: &str, etcd_image: &str) {
    for d in docs {
        for c in containers_mut(d) {
            let current = c["image"].as_str().unwrap_or("");
            if current == FLOTILLA_IMAGE {
                c["image"] = Value::String(image.to_string());
            } else if current == ETCD_IMAGE {
                c["image"] = Value::String(etcd_image.to_string());
            }
        }
    }
}

/// Which part `flotilla init --stdout` prints.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Part {
    /// What is applied to the host cluster (host-cluster mode).
    Host,
    /// What is applied to the flotilla API server.
    ControlPlane,
}

/// One installation.
#[derive(Clone, Debug)]
pub struct InitOptions {
    /// Where the components run.
    pub mode: Mode,
    /// The PKI directory and certificate names.
    pub certs: CertOptions,
    /// The image of the flotilla binary.
    pub image: String,
    /// The image of etcd (host-cluster mode).
    pub etcd_image: String,
    /// The machines' addresses (standalone mode).
    pub advertise_addresses: Vec<IpAddr>,
    /// The etcd endpoints (standalone mode).
    pub etcd_servers: String,
}

/// What `flotilla init` renders: file path (relative to the output
/// directory) → contents.
pub fn init(opts: &InitOptions) -> Result<BTreeMap<String, String>> {
    let bundle = ensure_bundle(&opts.certs)?;
    let mut out = BTreeMap::new();
    out.insert(
        "admin.kubeconfig".to_string(),
        bundle.kubeconfigs["admin"].clone(),
    );
    match opts.mode {
        Mode::HostCluster => {
            let mut host = secrets(&bundle);
            host.extend(kustomize("overlays/host-cluster")?);
            set_images(&mut host, &opts.image, &opts.etcd_image);
            sort_for_apply(&mut host);
            let mut cp = kustomize("overlays/host-cluster/control-plane")?;
            fill_ca_bundles(&mut cp, &bundle);
            sort_for_apply(&mut cp);
            out.insert("host.yaml".to_string(), to_yaml(&host)?);
            out.insert("control-plane.yaml".to_string(), to_yaml(&cp)?);
        }
        Mode::Standalone => {
            if opts.advertise_addresses.is_empty() {
                bail!("--advertise-address: at least one address of the machines is needed");
            }
            let mut cp = kustomize("overlays/standalone")?;
            fill_ca_bundles(&mut cp, &bundle);
            let addresses: Vec<Value> = opts
                .advertise_addresses
                .iter()
                .map(|ip| json!({"ip": ip.to_string()}))
                .collect();
            for d in &mut cp {
                if d["kind"] == "Endpoints" {
                    // the aggregated API server stores Clusters itself: one
                    // instance, on the first machine
                    let these = if d["metadata"]["name"] == "karmada-aggregated-apiserver" {
                        addresses[..1].to_vec()
                    } else {
                        addresses.clone()
                    };
                    for subset in d["subsets"].as_array_mut().into_iter().flatten() {
                        subset["addresses"] = Value::Array(these.clone());
                    }
                }
            }
            sort_for_apply(&mut cp);
            out.insert("control-plane.yaml".to_string(), to_yaml(&cp)?);
            for (path, text) in crate::deploy_files::FILES {
                if let Some(unit) = path.strip_prefix("overlays/standalone/systemd/")
                    && unit.ends_with(".service")
                {
                    out.insert(
                        format!("rootfs/etc/systemd/system/{unit}"),
                        text.to_string(),
                    );
                }
            }
            let mut sans: Vec<String> = Vec::new();
            for s in opts
                .advertise_addresses
                .iter()
                .map(IpAddr::to_string)
                .chain(opts.certs.apiserver_sans.iter().cloned())
            {
                if !sans.contains(&s) {
                    sans.push(s);
                }
            }
            out.insert(
                "rootfs/etc/flotilla/flotilla.env".to_string(),
                format!(
                    "# Written by `flotilla init --mode standalone`.\nFLOTILLA_ETCD_SERVERS={}\nFLOTILLA_APISERVER_SANS={}\n",
                    opts.etcd_servers,
                    sans.join(",")
                ),
            );
            for (name, text) in &bundle.apiserver {
                out.insert(
                    format!("rootfs/var/lib/flotilla/apiserver/{name}"),
                    text.clone(),
                );
            }
            for (name, text) in &bundle.aggregated {
                out.insert(
                    format!("rootfs/var/lib/flotilla/aggregated-apiserver/{name}"),
                    text.clone(),
                );
            }
            out.insert(
                "rootfs/etc/flotilla/front-proxy-ca.crt".to_string(),
                bundle.apiserver["front-proxy-ca.crt"].clone(),
            );
            for name in ["tls.crt", "tls.key"] {
                out.insert(
                    format!("rootfs/etc/flotilla/webhook/{name}"),
                    bundle.webhook[name].clone(),
                );
            }
            for user in ["controller-manager", "aggregated-apiserver", "webhook"] {
                out.insert(
                    format!("rootfs/etc/flotilla/{user}.kubeconfig"),
                    bundle.kubeconfigs[user].clone(),
                );
            }
        }
    }
    if let Some(agent) = bundle.kubeconfigs.get("agent") {
        out.insert("agent.kubeconfig".to_string(), agent.clone());
    }
    Ok(out)
}

/// Writes `files` under `dir` (private to the owner: they hold keys).
pub fn write_files(dir: &Path, files: &BTreeMap<String, String>) -> Result<()> {
    for (rel, text) in files {
        let path = dir.join(rel);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)
                .with_context(|| format!("creating {}", parent.display()))?;
        }
        pki::write_atomic(&path, text.as_bytes())
            .with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn every_deploy_file_is_compiled_in() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy");
        let mut missing = Vec::new();
        let mut stack = vec![root.clone()];
        while let Some(dir) = stack.pop() {
            for entry in std::fs::read_dir(&dir).unwrap() {
                let path = entry.unwrap().path();
                let rel = path
                    .strip_prefix(&root)
                    .unwrap()
                    .to_string_lossy()
                    .to_string();
                if rel.starts_with("monitoring") || rel.ends_with("resourceregistry-default.yaml") {
                    continue;
                }
                if path.is_dir() {
                    stack.push(path);
                } else if file(&rel).is_none() {
                    missing.push(rel);
                }
            }
        }
        assert!(
            missing.is_empty(),
            "add to cli/src/deploy_files.rs: {missing:?}"
        );
    }

    #[test]
    fn paths_resolve_inside_the_tree() {
        assert_eq!(join("overlays/host-cluster", "../../host").unwrap(), "host");
        assert_eq!(
            join("overlays/host-cluster/control-plane", "./services.yaml").unwrap(),
            "overlays/host-cluster/control-plane/services.yaml"
        );
        assert!(join("host", "../../etc/passwd").is_err());
    }

    #[test]
    fn overlays_render_and_images_are_replaced() {
        let host = kustomize("overlays/host-cluster").unwrap();
        let names: Vec<String> = host
            .iter()
            .map(|d| {
                format!(
                    "{}/{}",
                    d["kind"].as_str().unwrap(),
                    d["metadata"]["name"].as_str().unwrap()
                )
            })
            .collect();
        for want in [
            "Deployment/karmada-apiserver",
            "StatefulSet/etcd",
            "StatefulSet/karmada-aggregated-apiserver",
            "Deployment/karmada-webhook",
            "Deployment/karmada-controller-manager",
            "PodDisruptionBudget/karmada-controller-manager",
        ] {
            assert!(names.contains(&want.to_string()), "{want} in {names:?}");
        }
        let mut host = host;
        set_images(
            &mut host,
            "registry.example/flotilla:1.0",
            "registry.example/etcd:3.5",
        );
        let images: Vec<String> = host
            .iter_mut()
            .flat_map(|d| {
                containers_mut(d)
                    .into_iter()
                    .map(|c| c["image"].as_str().unwrap().to_string())
                    .collect::<Vec<_>>()
            })
            .collect();
        assert!(images.contains(&"registry.example/etcd:3.5".to_string()));
        assert!(
            images.iter().all(|i| i.starts_with("registry.example/")),
            "{images:?}"
        );
        assert!(
            kustomize("overlays/standalone")
                .unwrap()
                .iter()
                .any(|d| d["kind"] == "Endpoints")
        );
        assert!(kustomize("nope").is_err());
    }

    #[test]
    fn bundle_is_made_once_and_secrets_carry_it() {
        let tmp = tempfile::tempdir().unwrap();
        let opts = CertOptions {
            dir: tmp.path().to_path_buf(),
            apiserver_sans: vec!["flotilla.example".into(), "10.0.0.7".into()],
            component_server: "https://karmada-apiserver.karmada-system.svc.cluster.local:5443"
                .into(),
            admin_server: "https://127.0.0.1:5443".into(),
            agent: Some("member1".into()),
        };
        let a = ensure_bundle(&opts).unwrap();
        let b = ensure_bundle(&opts).unwrap();
        assert_eq!(a.apiserver, b.apiserver, "reused, not remade");
        assert_eq!(a.webhook, b.webhook);
        let secrets = secrets(&a);
        let names: Vec<&str> = secrets
            .iter()
            .map(|s| s["metadata"]["name"].as_str().unwrap())
            .collect();
        assert_eq!(
            names,
            [
                "karmada-apiserver-pki",
                "karmada-aggregated-apiserver-pki",
                "karmada-aggregated-apiserver-kubeconfig",
                "karmada-webhook-cert",
                "karmada-controller-manager-kubeconfig",
                "karmada-webhook-config",
                "karmada-agent-kubeconfig"
            ]
        );
        assert_eq!(
            secrets[0]["data"].as_object().unwrap().len(),
            APISERVER_FILES.len()
        );
        assert!(a.kubeconfigs["controller-manager"].contains("svc.cluster.local:5443"));
        let bad = CertOptions {
            agent: Some("Member_1".into()),
            ..opts
        };
        assert!(
            ensure_bundle(&bad)
                .unwrap_err()
                .to_string()
                .contains("--agent")
        );
    }
}
