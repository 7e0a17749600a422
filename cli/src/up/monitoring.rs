//! What `flotilla up` tells monitoring: `DIR/components.json` (every
//! component's address, for `flotilla status`) and, with `--metrics`, a
//! ready-to-run Prometheus configuration in `DIR/prometheus/` that scrapes
//! every component with its own certificates.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};

/// One component of a running `flotilla up`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Component {
    /// `apiserver`, `aggregated-apiserver`, `webhook`, `controller-manager`.
    pub name: String,
    /// `host:port`.
    pub address: String,
    /// `https` or `http`.
    pub scheme: String,
}

impl Component {
    /// `https://host:port` (or `http://`).
    pub fn url(&self) -> String {
        format!("{}://{}", self.scheme, self.address)
    }
}

/// The file `flotilla up` writes its components to.
pub fn components_file(dir: &Path) -> PathBuf {
    dir.join("components.json")
}

/// The components of a `flotilla up`, in scrape order.
pub fn components(
    apiserver: SocketAddr,
    aggregated: SocketAddr,
    webhook: Option<SocketAddr>,
    controllers: SocketAddr,
) -> Vec<Component> {
    let c = |name: &str, addr: SocketAddr, scheme: &str| Component {
        name: name.to_string(),
        address: addr.to_string(),
        scheme: scheme.to_string(),
    };
    let mut out = vec![
        c("apiserver", apiserver, "https"),
        c("aggregated-apiserver", aggregated, "https"),
    ];
    if let Some(w) = webhook {
        out.push(c("webhook", w, "https"));
    }
    out.push(c("controller-manager", controllers, "http"));
    out
}

/// Writes `DIR/components.json`.
pub fn write_components(dir: &Path, components: &[Component]) -> Result<()> {
    let text = serde_json::to_vec_pretty(components)?;
    flotilla_apiserver::server::pki::write_atomic(&components_file(dir), &text)?;
    Ok(())
}

/// Reads `DIR/components.json`.
pub fn read_components(dir: &Path) -> Result<Vec<Component>> {
    let file = components_file(dir);
    let text = std::fs::read(&file).with_context(|| {
        format!(
            "reading {} (is `flotilla up --dir {}` running?)",
            file.display(),
            dir.display()
        )
    })?;
    serde_json::from_slice(&text).with_context(|| format!("{} is not valid", file.display()))
}

/// The identity Prometheus scrapes the API servers as: in the bootstrap
/// `system:monitoring` group, which may read `/metrics` and nothing else.
const SCRAPER: &str = "flotilla-prometheus";

/// Writes `DIR/prometheus/prometheus.yml` and the certificates it names;
/// answers the configuration file.
pub fn write_prometheus(dir: &Path, components: &[Component]) -> Result<PathBuf> {
    let out = dir.join("prometheus");
    std::fs::create_dir_all(&out).with_context(|| format!("creating {}", out.display()))?;
    let copy = |from: &Path, to: &str| -> Result<()> {
        let text = std::fs::read(from).with_context(|| format!("reading {}", from.display()))?;
        flotilla_apiserver::server::pki::write_atomic(&out.join(to), &text)?;
        Ok(())
    };
    let mut jobs = String::new();
    for c in components {
        let tls = match c.name.as_str() {
            "apiserver" | "aggregated-apiserver" => {
                let server_dir = dir.join(&c.name);
                let (cert, key) = flotilla_apiserver::server::pki::ensure_client(
                    &server_dir,
                    SCRAPER,
                    SCRAPER,
                    &["system:monitoring"],
                )
                .with_context(|| format!("issuing the scrape certificate of {}", c.name))?;
                flotilla_apiserver::server::pki::write_atomic(
                    &out.join(format!("{}-client.crt", c.name)),
                    cert.as_bytes(),
                )?;
                flotilla_apiserver::server::pki::write_atomic(
                    &out.join(format!("{}-client.key", c.name)),
                    key.as_bytes(),
                )?;
                copy(&server_dir.join("ca.crt"), &format!("{}-ca.crt", c.name))?;
                format!(
                    "    tls_config:\n      ca_file: {n}-ca.crt\n      cert_file: {n}-client.crt\n      key_file: {n}-client.key\n",
                    n = c.name
                )
            }
            "webhook" => {
                copy(&dir.join("webhook").join("ca.crt"), "webhook-ca.crt")?;
                "    tls_config:\n      ca_file: webhook-ca.crt\n".to_string()
            }
            _ => String::new(),
        };
        jobs.push_str(&format!(
            "  - job_name: flotilla-{name}\n    scheme: {scheme}\n{tls}    static_configs:\n      - targets: ['{addr}']\n        labels:\n          component: {name}\n",
            name = c.name,
            scheme = c.scheme,
            addr = c.address,
        ));
    }
    let config = format!(
        "# Written by `flotilla up --metrics`: scrapes every component of this\n# control plane. Paths are relative to this file.\nglobal:\n  scrape_interval: 5s\n  evaluation_interval: 5s\nscrape_configs:\n{jobs}"
    );
    let file = out.join("prometheus.yml");
    flotilla_apiserver::server::pki::write_atomic(&file, config.as_bytes())?;
    Ok(file)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn components_round_trip_and_name_urls() {
        let dir = tempfile::tempdir().unwrap();
        let addr = |p: u16| SocketAddr::from(([127, 0, 0, 1], p));
        let cs = components(addr(1), addr(2), None, addr(3));
        write_components(dir.path(), &cs).unwrap();
        let back = read_components(dir.path()).unwrap();
        let urls: Vec<String> = back.iter().map(Component::url).collect();
        assert_eq!(
            urls,
            [
                "https://127.0.0.1:1",
                "https://127.0.0.1:2",
                "http://127.0.0.1:3"
            ]
        );
        let err = read_components(&dir.path().join("nope")).unwrap_err();
        assert!(
            format!("{err:#}").contains("is `flotilla up --dir"),
            "{err:#}"
        );
    }
}
