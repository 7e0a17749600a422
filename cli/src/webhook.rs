//! `flotilla webhook`: flags (karmada-webhook's names where it has them) and
//! the embedded webhook of `flotilla up`.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};

/// Flags of `flotilla webhook`.
#[derive(clap::Args)]
pub struct Args {
    /// Address to serve reviews on (HTTPS), with `--secure-port`.
    #[arg(long, default_value = "127.0.0.1")]
    bind_address: IpAddr,
    /// Port to serve reviews on (0 picks a free one).
    #[arg(long, default_value_t = 8443)]
    secure_port: u16,
    /// ADDRESS:PORT to serve reviews on; overrides --bind-address and --secure-port.
    #[arg(long)]
    bind: Option<SocketAddr>,
    /// Directory holding the serving certificate and key.
    #[arg(long)]
    cert_dir: Option<PathBuf>,
    /// File name of the certificate in --cert-dir.
    #[arg(long, default_value = "tls.crt")]
    tls_cert_file_name: String,
    /// File name of the private key in --cert-dir.
    #[arg(long, default_value = "tls.key")]
    tls_private_key_file_name: String,
    /// Path of the PEM certificate (chain); overrides --cert-dir.
    #[arg(long)]
    cert_file: Option<PathBuf>,
    /// Path of the PEM private key; overrides --cert-dir.
    #[arg(long)]
    key_file: Option<PathBuf>,
    /// Also serve /healthz and /readyz over plain HTTP here (`:8000` = all interfaces; `0` = off).
    #[arg(long)]
    health_probe_bind_address: Option<String>,
    /// Also serve /metrics over plain HTTP here (`:8080` = all interfaces; `0` = off).
    #[arg(long)]
    metrics_bind_address: Option<String>,
    /// Accept ClusterTaintPolicies with NoExecute taints (which may evict workloads).
    #[arg(long)]
    allow_no_execute_taint_policy: bool,
    /// Kubeconfig of the Karmada API server, read for existing
    /// ResourceInterpreterCustomizations (default: the in-cluster configuration).
    #[arg(long)]
    kubeconfig: Option<PathBuf>,
}

/// Parses Go-style listen addresses: `HOST:PORT`, `:PORT`, or `0` (off).
fn listen_address(flag: &str, value: Option<&str>) -> Result<Option<SocketAddr>> {
    match value {
        None | Some("0") | Some("") => Ok(None),
        Some(v) => {
            if let Some(port) = v.strip_prefix(':') {
                let port: u16 = port
                    .parse()
                    .with_context(|| format!("--{flag} {v:?}: bad port"))?;
                return Ok(Some(SocketAddr::new(
                    IpAddr::V4(Ipv4Addr::UNSPECIFIED),
                    port,
                )));
            }
            v.parse()
                .map(Some)
                .with_context(|| format!("--{flag} {v:?}: expected HOST:PORT or :PORT"))
        }
    }
}

impl Args {
    /// The server configuration these flags describe.
    pub fn config(self) -> Result<flotilla_webhook::Config> {
        let bind = self
            .bind
            .unwrap_or(SocketAddr::new(self.bind_address, self.secure_port));
        let in_dir = |name: &str| self.cert_dir.as_ref().map(|d| d.join(name));
        let cert_file = match self
            .cert_file
            .clone()
            .or_else(|| in_dir(&self.tls_cert_file_name))
        {
            Some(p) => p,
            None => bail!("give the serving certificate with --cert-file or --cert-dir"),
        };
        let key_file = match self
            .key_file
            .clone()
            .or_else(|| in_dir(&self.tls_private_key_file_name))
        {
            Some(p) => p,
            None => bail!("give the serving key with --key-file or --cert-dir"),
        };
        let mut config = flotilla_webhook::Config::new(bind, cert_file, key_file)
            .allow_no_execute_taint_policy(self.allow_no_execute_taint_policy);
        if let Some(k) = &self.kubeconfig {
            config = config.kubeconfig(k);
        }
        if let Some(a) = listen_address(
            "health-probe-bind-address",
            self.health_probe_bind_address.as_deref(),
        )? {
            config = config.health_probe_bind(a);
        }
        if let Some(a) =
            listen_address("metrics-bind-address", self.metrics_bind_address.as_deref())?
        {
            config = config.metrics_bind(a);
        }
        Ok(config)
    }
}

/// The webhook's own CA and serving certificate for `flotilla up`, kept in
/// `dir` (`ca.crt|key`, `tls.crt|key`) and made when missing, or (the
/// certificate) when it does not name `karmada-webhook.karmada-system.svc`.
/// Returns the CA PEM.
pub fn ensure_pki(dir: &Path) -> Result<String> {
    use flotilla_webhook::configuration::{SERVICE_NAME, SYSTEM_NAMESPACE};
    let hosts = [
        format!("{SERVICE_NAME}.{SYSTEM_NAMESPACE}.svc"),
        "127.0.0.1".to_string(),
        "localhost".to_string(),
    ];
    flotilla_apiserver::server::pki::ensure_serving(dir, "flotilla-webhook-ca", "tls", &hosts)
        .context("making the webhook's certificates")
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        args: Args,
    }

    fn config(args: &[&str]) -> Result<flotilla_webhook::Config> {
        let mut all = vec!["webhook"];
        all.extend(args);
        Cli::try_parse_from(all)?.args.config()
    }

    #[test]
    fn karmada_flags() {
        let c = config(&[
            "--bind-address=0.0.0.0",
            "--secure-port=9443",
            "--cert-dir=certs",
            "--tls-cert-file-name=serving.crt",
            "--health-probe-bind-address=:8000",
            "--metrics-bind-address=127.0.0.1:8080",
            "--kubeconfig=config/karmada.config",
        ])
        .expect("config");
        assert_eq!(c.kubeconfig, Some(PathBuf::from("config/karmada.config")));
        assert_eq!(c.bind.to_string(), "0.0.0.0:9443");
        assert_eq!(c.cert_file, PathBuf::from("certs/serving.crt"));
        assert_eq!(c.key_file, PathBuf::from("certs/tls.key"));
        assert_eq!(
            c.health_probe_bind.map(|a| a.to_string()).as_deref(),
            Some("0.0.0.0:8000")
        );
        assert_eq!(
            c.metrics_bind.map(|a| a.to_string()).as_deref(),
            Some("127.0.0.1:8080")
        );
    }

    #[test]
    fn explicit_files_and_bind_win() {
        let c = config(&[
            "--cert-dir=certs",
            "--cert-file=a.pem",
            "--key-file=b.pem",
            "--bind=127.0.0.1:0",
            "--metrics-bind-address=0",
        ])
        .expect("config");
        assert_eq!(c.bind.to_string(), "127.0.0.1:0");
        assert_eq!(c.cert_file, PathBuf::from("a.pem"));
        assert_eq!(c.key_file, PathBuf::from("b.pem"));
        assert!(c.metrics_bind.is_none());
        assert!(c.kubeconfig.is_none());
    }

    #[test]
    fn missing_certificate_and_bad_addresses_are_errors() {
        let e = config(&[]).expect_err("no certificate");
        assert!(e.to_string().contains("--cert-file or --cert-dir"), "{e}");
        let e =
            config(&["--cert-dir=c", "--health-probe-bind-address=:http"]).expect_err("bad port");
        assert!(e.to_string().contains("health-probe-bind-address"), "{e}");
    }
}
