//! Cluster lifecycle commands against the control plane of the current kubeconfig:
//! `join`, `unjoin`, `cordon`, `uncordon`, `get clusters` — what karmadactl offers.

use anyhow::{Context, Result, bail};
use base64::Engine;
use flotilla_api::cluster::Cluster;
use k8s_openapi::api::core::v1::{Namespace, Secret};
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Client, ResourceExt};
use serde_json::json;

/// The taint `flotilla cordon` adds, as `karmadactl cordon` does.
pub const UNSCHEDULABLE: &str = "cluster.karmada.io/unschedulable";
const CLUSTER_NAMESPACE: &str = "karmada-cluster";

/// A client for the control plane: `--kubeconfig`/`--context` or the defaults
/// (see [`flotilla_controllers::client`]).
pub async fn control_plane(
    kubeconfig: Option<&std::path::Path>,
    context: Option<&str>,
) -> Result<Client> {
    let options = KubeConfigOptions {
        context: context.map(str::to_string),
        ..Default::default()
    };
    let config = match kubeconfig {
        Some(path) => {
            let kc = Kubeconfig::read_from(path)
                .with_context(|| format!("reading {}", path.display()))?;
            kube::Config::from_custom_kubeconfig(kc, &options).await?
        }
        None => kube::Config::from_kubeconfig(&options)
            .await
            .context("no kubeconfig: set KUBECONFIG or pass --kubeconfig")?,
    };
    // the controllers' bounded connection pool (the controller manager and
    // the agent run on this client)
    flotilla_controllers::client::build(config).context("building the control plane client")
}

fn valid_name(name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 48
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !name.starts_with('-')
        && !name.ends_with('-');
    if !ok {
        bail!(
            "invalid cluster name \"{name}\": it must be a DNS-1123 label of at most 48 characters"
        );
    }
    Ok(())
}

/// Registers a member (Push mode) from its kubeconfig.
pub async fn join(
    cp: Client,
    name: &str,
    member_kubeconfig: &std::path::Path,
    member_context: Option<&str>,
) -> Result<()> {
    valid_name(name)?;
    let kc = Kubeconfig::read_from(member_kubeconfig)
        .with_context(|| format!("reading {}", member_kubeconfig.display()))?;
    let options = KubeConfigOptions {
        context: member_context.map(str::to_string),
        ..Default::default()
    };
    let config = kube::Config::from_custom_kubeconfig(kc.clone(), &options)
        .await
        .context("member kubeconfig")?;
    let endpoint = config
        .cluster_url
        .to_string()
        .trim_end_matches('/')
        .to_string();
    let member = Client::try_from(config.clone()).context("member client")?;
    member
        .apiserver_version()
        .await
        .with_context(|| format!("cannot reach the member cluster at {endpoint}"))?;
    // Karmada keeps a bearer token and the CA in the member's Secret.
    let context_name = member_context
        .map(str::to_string)
        .or(kc.current_context.clone())
        .unwrap_or_default();
    let user = kc
        .contexts
        .iter()
        .find(|c| c.name == context_name)
        .and_then(|c| c.context.as_ref())
        .map(|c| c.user.clone().unwrap_or_default())
        .unwrap_or_default();
    let token = kc
        .auth_infos
        .iter()
        .find(|a| a.name == user)
        .and_then(|a| a.auth_info.as_ref())
        .and_then(|a| a.token.as_ref())
        .map(|t| {
            use secrecy::ExposeSecret;
            t.expose_secret().to_string()
        })
        .context("the member kubeconfig must authenticate with a bearer token (Karmada stores a token and CA for each member)")?;
    let ca = config
        .root_cert
        .as_ref()
        .and_then(|certs| certs.first())
        .map(|der| {
            let b64 = base64::engine::general_purpose::STANDARD.encode(der);
            let lines: Vec<&str> = b64
                .as_bytes()
                .chunks(64)
                .map(|c| std::str::from_utf8(c).unwrap_or(""))
                .collect();
            format!(
                "-----BEGIN CERTIFICATE-----\n{}\n-----END CERTIFICATE-----\n",
                lines.join("\n")
            )
        })
        .unwrap_or_default();

    let clusters: Api<Cluster> = Api::all(cp.clone());
    if clusters.get_opt(name).await?.is_some() {
        bail!("cluster \"{name}\" is already joined");
    }
    let namespaces: Api<Namespace> = Api::all(cp.clone());
    if namespaces.get_opt(CLUSTER_NAMESPACE).await?.is_none() {
        let ns = serde_json::from_value(json!({"metadata": {"name": CLUSTER_NAMESPACE}}))?;
        namespaces.create(&PostParams::default(), &ns).await?;
    }
    let secrets: Api<Secret> = Api::namespaced(cp.clone(), CLUSTER_NAMESPACE);
    let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s.as_bytes());
    let secret: Secret = serde_json::from_value(json!({
        "metadata": {"name": name, "namespace": CLUSTER_NAMESPACE},
        "data": {"token": b64(&token), "caBundle": b64(&ca)},
    }))?;
    secrets
        .patch(
            name,
            &PatchParams::apply("flotilla-join").force(),
            &Patch::Apply(&secret),
        )
        .await?;
    let cluster: Cluster = serde_json::from_value(json!({
        "apiVersion": "cluster.karmada.io/v1alpha1", "kind": "Cluster",
        "metadata": {"name": name},
        "spec": {"syncMode": "Push", "apiEndpoint": endpoint, "secretRef": {"namespace": CLUSTER_NAMESPACE, "name": name}},
    }))?;
    clusters
        .create(&PostParams::default(), &cluster)
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    println!("cluster({name}) is joined successfully");
    Ok(())
}

/// Removes a member and its credentials.
pub async fn unjoin(cp: Client, name: &str) -> Result<()> {
    let clusters: Api<Cluster> = Api::all(cp.clone());
    if clusters.get_opt(name).await?.is_none() {
        bail!("cluster \"{name}\" is not joined");
    }
    clusters.delete(name, &DeleteParams::default()).await?;
    let secrets: Api<Secret> = Api::namespaced(cp, CLUSTER_NAMESPACE);
    let _ = secrets.delete(name, &DeleteParams::default()).await;
    println!("cluster({name}) is unjoined successfully");
    Ok(())
}

/// Adds or removes the unschedulable NoSchedule taint.
pub async fn cordon(cp: Client, name: &str, on: bool) -> Result<()> {
    let clusters: Api<Cluster> = Api::all(cp);
    let cluster = clusters
        .get_opt(name)
        .await?
        .with_context(|| format!("cluster \"{name}\" not found"))?;
    let mut taints: Vec<serde_json::Value> = serde_json::to_value(&cluster.spec.taints)?
        .as_array()
        .cloned()
        .unwrap_or_default();
    let has = taints
        .iter()
        .any(|t| t["key"] == UNSCHEDULABLE && t["effect"] == "NoSchedule");
    let verb = if on { "cordoned" } else { "uncordoned" };
    if has == on {
        println!("{name} already {verb}");
        return Ok(());
    }
    if on {
        taints.push(json!({"key": UNSCHEDULABLE, "effect": "NoSchedule"}));
    } else {
        taints.retain(|t| !(t["key"] == UNSCHEDULABLE && t["effect"] == "NoSchedule"));
    }
    let patch = json!({"spec": {"taints": taints}, "metadata": {"resourceVersion": cluster.resource_version()}});
    clusters
        .patch(name, &PatchParams::default(), &Patch::Merge(&patch))
        .await?;
    println!("{name} {verb}");
    Ok(())
}

/// `flotilla get clusters`: the Cluster table.
pub async fn get_clusters(cp: Client) -> Result<()> {
    let clusters: Api<Cluster> = Api::all(cp);
    let list = clusters.list(&Default::default()).await?;
    if list.items.is_empty() {
        eprintln!("No resources found");
        return Ok(());
    }
    let now = jiff::Timestamp::now().as_second();
    let rows: Vec<Vec<String>> = list
        .items
        .iter()
        .map(|c| c.table_cells(now, false))
        .collect();
    let header: Vec<String> = flotilla_api::cluster::TABLE_COLUMNS
        .iter()
        .filter(|c| c.priority == 0)
        .map(|c| c.name.to_uppercase())
        .collect();
    let mut widths: Vec<usize> = header.iter().map(String::len).collect();
    for r in &rows {
        for (i, cell) in r.iter().enumerate().take(widths.len()) {
            widths[i] = widths[i].max(cell.len());
        }
    }
    let line = |cells: &[String]| {
        cells
            .iter()
            .enumerate()
            .take(widths.len())
            .map(|(i, c)| {
                if i + 1 == widths.len() {
                    c.clone()
                } else {
                    format!("{c:<w$}", w = widths[i] + 3)
                }
            })
            .collect::<String>()
    };
    println!("{}", line(&header));
    for r in &rows {
        println!("{}", line(r));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert!(valid_name("member1").is_ok());
        assert!(valid_name("Member1").is_err());
        assert!(valid_name(&"a".repeat(49)).is_err());
        assert!(valid_name("-a").is_err());
    }
}
