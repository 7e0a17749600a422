//! `flotilla status`: a one-screen health summary of a running `flotilla up`
//! — its components answering, clusters Ready, bindings scheduled, Works
//! applied — read from DIR/components.json and the control plane.

use std::fmt::Write as _;
use std::path::Path;
use std::time::Duration;

use anyhow::{Context, Result};
use flotilla_api::cluster::{CONDITION_READY, Cluster};
use flotilla_api::work::{ClusterResourceBinding, ResourceBinding, Work};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::api::{Api, ListParams};
use kube::{Client, ResourceExt};

use crate::up::monitoring::{self, Component};

/// Counts of objects by the state of one condition.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Tally {
    /// Objects in all.
    pub total: usize,
    /// Condition True.
    pub good: usize,
    /// Condition False.
    pub bad: usize,
}

impl Tally {
    /// Tallies `conditions` of each object by the condition `type_`.
    pub fn of<'a>(objects: impl IntoIterator<Item = &'a [Condition]>, type_: &str) -> Tally {
        let mut t = Tally::default();
        for conditions in objects {
            t.total += 1;
            match conditions.iter().find(|c| c.type_ == type_) {
                Some(c) if c.status == "True" => t.good += 1,
                Some(c) if c.status == "False" => t.bad += 1,
                _ => {}
            }
        }
        t
    }
}

fn timeouts(mut config: kube::Config) -> kube::Config {
    config.connect_timeout = Some(Duration::from_secs(2));
    config.read_timeout = Some(Duration::from_secs(3));
    config
}

/// A client for one component: the API servers through their own
/// kubeconfigs, the webhook trusting its CA, the controllers over HTTP.
async fn component_client(dir: &Path, c: &Component) -> Result<Client> {
    let config = match c.name.as_str() {
        "apiserver" | "aggregated-apiserver" => {
            let kc = kube::config::Kubeconfig::read_from(dir.join(&c.name).join("kubeconfig"))?;
            kube::Config::from_custom_kubeconfig(kc, &Default::default()).await?
        }
        _ => {
            let mut config = kube::Config::new(c.url().parse()?);
            if c.name == "webhook" {
                use rustls::pki_types::pem::PemObject;
                let pem = std::fs::read(dir.join("webhook").join("ca.crt"))?;
                let certs = rustls::pki_types::CertificateDer::pem_slice_iter(&pem)
                    .map(|c| c.map(|c| c.to_vec()))
                    .collect::<Result<Vec<_>, _>>()?;
                config.root_cert = Some(certs);
            }
            config
        }
    };
    Ok(Client::try_from(timeouts(config))?)
}

/// `ok` or why not.
async fn probe(dir: &Path, c: &Component) -> String {
    let path = if c.name.ends_with("apiserver") {
        "/readyz"
    } else {
        "/healthz"
    };
    let answer = async {
        let client = component_client(dir, c).await?;
        let request = http::Request::get(path).body(Vec::new())?;
        anyhow::Ok(client.request_text(request).await?)
    }
    .await;
    match answer {
        Ok(text) if text.trim() == "ok" => "up".to_string(),
        Ok(text) => format!("unhealthy: {}", text.trim()),
        Err(e) => format!("down: {e:#}"),
    }
}

fn binding_conditions(s: Option<&flotilla_api::work::ResourceBindingStatus>) -> &[Condition] {
    s.map_or(&[][..], |s| s.conditions.as_slice())
}

/// Prints the summary of the `flotilla up` in `dir`.
pub async fn run(dir: &Path) -> Result<String> {
    let components = monitoring::read_components(dir)?;
    let mut out = String::new();
    writeln!(out, "Components:")?;
    let mut all_up = true;
    for c in &components {
        let state = probe(dir, c).await;
        all_up &= state == "up";
        writeln!(out, "  {:<22} {:<28} {state}", c.name, c.url())?;
    }
    let kubeconfig = dir.join("kubeconfig");
    let client = crate::clusters::control_plane(Some(&kubeconfig), Some("flotilla"))
        .await
        .with_context(|| format!("connecting with {}", kubeconfig.display()))?;
    let lp = ListParams::default();
    let clusters = Api::<Cluster>::all(client.clone())
        .list(&lp)
        .await
        .context("listing clusters")?;
    let ready: Vec<String> = clusters
        .items
        .iter()
        .filter(|c| {
            c.status.as_ref().is_some_and(|s| {
                s.conditions
                    .iter()
                    .any(|c| c.type_ == CONDITION_READY && c.status == "True")
            })
        })
        .map(ResourceExt::name_any)
        .collect();
    let not_ready: Vec<String> = clusters
        .items
        .iter()
        .map(ResourceExt::name_any)
        .filter(|n| !ready.contains(n))
        .collect();
    write!(
        out,
        "Clusters: {}/{} Ready",
        ready.len(),
        clusters.items.len()
    )?;
    if !not_ready.is_empty() {
        write!(out, " (not Ready: {})", not_ready.join(", "))?;
    }
    writeln!(out)?;
    let rbs = Api::<ResourceBinding>::all(client.clone())
        .list(&lp)
        .await?;
    let crbs = Api::<ClusterResourceBinding>::all(client.clone())
        .list(&lp)
        .await?;
    let bindings = Tally::of(
        rbs.items
            .iter()
            .map(|b| binding_conditions(b.status.as_ref()))
            .chain(
                crbs.items
                    .iter()
                    .map(|b| binding_conditions(b.status.as_ref())),
            ),
        "Scheduled",
    );
    writeln!(
        out,
        "Bindings: {} ({} scheduled, {} failed to schedule)",
        bindings.total, bindings.good, bindings.bad
    )?;
    let works = Api::<Work>::all(client).list(&lp).await?;
    let works = Tally::of(
        works.items.iter().map(|w| {
            w.status
                .as_ref()
                .map_or(&[][..], |s| s.conditions.as_slice())
        }),
        "Applied",
    );
    writeln!(
        out,
        "Works: {} ({} applied, {} failed)",
        works.total, works.good, works.bad
    )?;
    if !all_up {
        anyhow::bail!("{out}some components are down");
    }
    Ok(out)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn cond(type_: &str, status: &str) -> Condition {
        Condition {
            type_: type_.into(),
            status: status.into(),
            last_transition_time: k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
                k8s_openapi::jiff::Timestamp::UNIX_EPOCH,
            ),
            message: String::new(),
            reason: "R".into(),
            observed_generation: None,
        }
    }

    #[test]
    fn tallies_by_condition() {
        let a = [cond("Applied", "True")];
        let b = [cond("Applied", "False")];
        let c = [cond("Other", "True")];
        let t = Tally::of([&a[..], &b[..], &c[..], &[][..]], "Applied");
        assert_eq!(
            t,
            Tally {
                total: 4,
                good: 1,
                bad: 1
            }
        );
    }
}
