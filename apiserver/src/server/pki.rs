//! The server's certificates and credentials, made on first start in the data
//! directory and reused afterwards: a CA, a serving certificate (SANs 127.0.0.1,
//! localhost and the bind host), an admin client certificate (O=system:masters), an
//! admin bearer token in the tokens file, the key that signs service-account tokens
//! (`sa.key`, P-256 PKCS#8), and the kubeconfig that uses them.

use std::io::Write;
use std::path::{Path, PathBuf};

use base64::Engine;
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};

/// PKI failures.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("certificate generation failed: {0}")]
    Generate(#[from] rcgen::Error),
    #[error("cannot access {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path} is not a valid PEM file")]
    Pem { path: PathBuf },
}

/// PEM material the server and its clients use.
#[derive(Debug, Clone)]
pub struct Pki {
    pub ca_cert_pem: String,
    pub server_cert_pem: String,
    pub server_key_pem: String,
    pub admin_cert_pem: String,
    pub admin_key_pem: String,
    pub admin_token: String,
    pub tokens_file: PathBuf,
    /// The CA of the front proxy (request-header authentication of aggregated servers).
    pub front_proxy_ca_pem: String,
    /// The client certificate this server presents when proxying to aggregated servers.
    pub front_proxy_client_cert_pem: String,
    pub front_proxy_client_key_pem: String,
    /// The P-256 PKCS#8 key (PEM) that signs service-account tokens (`sa.key`).
    pub service_account_key_pem: String,
}

/// Loads a CA from `DIR/<name>.crt|key`, creating it when missing.
fn load_or_create_ca(
    dir: &Path,
    name: &str,
    common_name: &str,
) -> Result<(String, Issuer<'static, KeyPair>), Error> {
    let (crt, key) = (
        dir.join(format!("{name}.crt")),
        dir.join(format!("{name}.key")),
    );
    let (cert_pem, key_pem) = if crt.exists() && key.exists() {
        (read(&crt)?, read(&key)?)
    } else {
        let k = KeyPair::generate()?;
        let mut params = ca_params()?;
        params.distinguished_name = rcgen::DistinguishedName::new();
        params
            .distinguished_name
            .push(DnType::CommonName, common_name);
        let cert = params.self_signed(&k)?;
        let (c, kp) = (cert.pem(), k.serialize_pem());
        write_atomic(&key, kp.as_bytes())?;
        write_atomic(&crt, c.as_bytes())?;
        (c, kp)
    };
    let keypair = KeyPair::from_pem(&key_pem).map_err(|_| Error::Pem { path: key.clone() })?;
    let issuer =
        Issuer::from_ca_cert_pem(&cert_pem, keypair).map_err(|_| Error::Pem { path: crt })?;
    Ok((cert_pem, issuer))
}

/// Loads a client certificate from `DIR/<name>.crt|key`, issuing it when missing.
fn load_or_issue_client(
    dir: &Path,
    name: &str,
    issuer: &Issuer<'_, KeyPair>,
    user: &str,
    groups: &[&str],
) -> Result<(String, String), Error> {
    let (crt, key) = (
        dir.join(format!("{name}.crt")),
        dir.join(format!("{name}.key")),
    );
    if crt.exists() && key.exists() {
        return Ok((read(&crt)?, read(&key)?));
    }
    let (c, k) = client_cert(issuer, user, groups)?;
    write_atomic(&key, k.as_bytes())?;
    write_atomic(&crt, c.as_bytes())?;
    Ok((c, k))
}

/// A client certificate `DIR/<name>.crt|key` for `user` in `groups`, signed
/// by the CA of the API server whose PKI is in `dir` (made by [`ensure`]);
/// issued when missing. For scrapers and other clients of a running server.
pub fn ensure_client(
    dir: &Path,
    name: &str,
    user: &str,
    groups: &[&str],
) -> Result<(String, String), Error> {
    let (crt, key) = (dir.join("ca.crt"), dir.join("ca.key"));
    let keypair = KeyPair::from_pem(&read(&key)?).map_err(|_| Error::Pem { path: key })?;
    let issuer =
        Issuer::from_ca_cert_pem(&read(&crt)?, keypair).map_err(|_| Error::Pem { path: crt })?;
    load_or_issue_client(dir, name, &issuer, user, groups)
}

fn read(path: &Path) -> Result<String, Error> {
    std::fs::read_to_string(path).map_err(|source| Error::Io {
        path: path.into(),
        source,
    })
}

/// Writes a file atomically (temporary file, fsync, rename), private to the owner.
pub fn write_atomic(path: &Path, contents: &[u8]) -> Result<(), Error> {
    let io = |source| Error::Io {
        path: path.into(),
        source,
    };
    let tmp = path.with_extension("tmp");
    {
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create(true).truncate(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            options.mode(0o600);
        }
        let mut f = options.open(&tmp).map_err(io)?;
        f.write_all(contents).map_err(io)?;
        f.sync_all().map_err(io)?;
    }
    std::fs::rename(&tmp, path).map_err(io)
}

fn ca_params() -> Result<CertificateParams, Error> {
    let mut params = CertificateParams::new(Vec::<String>::new())?;
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params
        .distinguished_name
        .push(DnType::CommonName, "flotilla-ca");
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    Ok(params)
}

/// Issues a serving certificate for `hosts` (DNS names or IP addresses).
fn serving_cert(issuer: &Issuer<'_, KeyPair>, hosts: &[String]) -> Result<(String, String), Error> {
    let key = KeyPair::generate()?;
    let mut params = CertificateParams::new(hosts.to_vec())?;
    params
        .distinguished_name
        .push(DnType::CommonName, "flotilla-apiserver");
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    params.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyEncipherment,
    ];
    let cert = params.signed_by(&key, issuer)?;
    Ok((cert.pem(), key.serialize_pem()))
}

/// Issues a client certificate for `user` in `groups` (CN and O, as Kubernetes reads them).
pub fn client_cert(
    issuer: &Issuer<'_, KeyPair>,
    user: &str,
    groups: &[&str],
) -> Result<(String, String), Error> {
    let key = KeyPair::generate()?;
    let mut params = CertificateParams::new(Vec::<String>::new())?;
    params.distinguished_name.push(DnType::CommonName, user);
    for g in groups {
        params.distinguished_name.push(DnType::OrganizationName, *g);
    }
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    params.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyEncipherment,
    ];
    let cert = params.signed_by(&key, issuer)?;
    Ok((cert.pem(), key.serialize_pem()))
}

/// Whether a PEM certificate names every one of `hosts` in its SANs.
fn covers(cert_pem: &str, hosts: &[String]) -> bool {
    let Ok((_, pem)) = x509_parser::pem::parse_x509_pem(cert_pem.as_bytes()) else {
        return false;
    };
    let Ok(cert) = pem.parse_x509() else {
        return false;
    };
    let Ok(Some(san)) = cert.subject_alternative_name() else {
        return false;
    };
    let names: Vec<String> = san
        .value
        .general_names
        .iter()
        .filter_map(|n| match n {
            x509_parser::extensions::GeneralName::DNSName(d) => Some(d.to_string()),
            x509_parser::extensions::GeneralName::IPAddress(ip) => match ip.len() {
                4 => Some(std::net::Ipv4Addr::new(ip[0], ip[1], ip[2], ip[3]).to_string()),
                16 => <[u8; 16]>::try_from(*ip)
                    .ok()
                    .map(|b| std::net::Ipv6Addr::from(b).to_string()),
                _ => None,
            },
            _ => None,
        })
        .collect();
    hosts.iter().all(|h| names.contains(h))
}

/// A CA (`DIR/ca.crt|key`, common name `ca_common_name`) and a serving
/// certificate it signs (`DIR/<name>.crt|key`) naming `hosts`, each made when
/// missing; the certificate also when it does not name every host. For servers
/// other than the API server, such as the admission webhook. Returns the CA PEM.
pub fn ensure_serving(
    dir: &Path,
    ca_common_name: &str,
    name: &str,
    hosts: &[String],
) -> Result<String, Error> {
    std::fs::create_dir_all(dir).map_err(|source| Error::Io {
        path: dir.into(),
        source,
    })?;
    let (ca_pem, issuer) = load_or_create_ca(dir, "ca", ca_common_name)?;
    let (crt, key) = (
        dir.join(format!("{name}.crt")),
        dir.join(format!("{name}.key")),
    );
    if crt.exists() && key.exists() && covers(&read(&crt)?, hosts) {
        return Ok(ca_pem);
    }
    let (c, k) = serving_cert(&issuer, hosts)?;
    write_atomic(&key, k.as_bytes())?;
    write_atomic(&crt, c.as_bytes())?;
    Ok(ca_pem)
}

/// Loads the PKI from `dir`, creating whatever is missing.
pub fn ensure(dir: &Path, bind_host: &str, extra_sans: &[String]) -> Result<Pki, Error> {
    let p = |name: &str| dir.join(name);
    let (ca_pem, ca_key_pem) = if p("ca.crt").exists() && p("ca.key").exists() {
        (read(&p("ca.crt"))?, read(&p("ca.key"))?)
    } else {
        let key = KeyPair::generate()?;
        let cert = ca_params()?.self_signed(&key)?;
        let (cert_pem, key_pem) = (cert.pem(), key.serialize_pem());
        write_atomic(&p("ca.key"), key_pem.as_bytes())?;
        write_atomic(&p("ca.crt"), cert_pem.as_bytes())?;
        (cert_pem, key_pem)
    };
    let ca_key = KeyPair::from_pem(&ca_key_pem).map_err(|_| Error::Pem { path: p("ca.key") })?;
    let issuer =
        Issuer::from_ca_cert_pem(&ca_pem, ca_key).map_err(|_| Error::Pem { path: p("ca.crt") })?;

    let mut hosts = vec!["127.0.0.1".to_string(), "localhost".to_string()];
    if !bind_host.is_empty()
        && bind_host != "0.0.0.0"
        && bind_host != "::"
        && !hosts.iter().any(|h| h == bind_host)
    {
        hosts.push(bind_host.to_string());
    }
    for san in extra_sans {
        if !hosts.contains(san) {
            hosts.push(san.clone());
        }
    }
    let existing = if p("apiserver.crt").exists() && p("apiserver.key").exists() {
        Some((read(&p("apiserver.crt"))?, read(&p("apiserver.key"))?))
    } else {
        None
    };
    let (server_cert_pem, server_key_pem) = match existing {
        Some((c, k)) if covers(&c, &hosts) => (c, k),
        _ => {
            let (c, k) = serving_cert(&issuer, &hosts)?;
            write_atomic(&p("apiserver.key"), k.as_bytes())?;
            write_atomic(&p("apiserver.crt"), c.as_bytes())?;
            (c, k)
        }
    };
    let (admin_cert_pem, admin_key_pem) = if p("admin.crt").exists() && p("admin.key").exists() {
        (read(&p("admin.crt"))?, read(&p("admin.key"))?)
    } else {
        let (c, k) = client_cert(&issuer, "admin", &["system:masters"])?;
        write_atomic(&p("admin.key"), k.as_bytes())?;
        write_atomic(&p("admin.crt"), c.as_bytes())?;
        (c, k)
    };
    let (front_proxy_ca_pem, front_proxy) =
        load_or_create_ca(dir, "front-proxy-ca", "flotilla-front-proxy-ca")?;
    let (front_proxy_client_cert_pem, front_proxy_client_key_pem) = load_or_issue_client(
        dir,
        "front-proxy-client",
        &front_proxy,
        "front-proxy-client",
        &[],
    )?;
    let service_account_key_pem = if p("sa.key").exists() {
        read(&p("sa.key"))?
    } else {
        let pem = KeyPair::generate()?.serialize_pem();
        write_atomic(&p("sa.key"), pem.as_bytes())?;
        pem
    };
    let tokens_file = p("tokens.csv");
    let admin_token = match std::fs::read_to_string(&tokens_file) {
        Ok(text) => text
            .lines()
            .find(|l| l.split(',').nth(1) == Some("admin"))
            .and_then(|l| l.split(',').next())
            .map(str::to_string),
        Err(_) => None,
    };
    let admin_token = match admin_token {
        Some(t) => t,
        None => {
            let token = uuid::Uuid::new_v4().simple().to_string();
            // Keep the users already listed; the admin's line goes first.
            let existing = std::fs::read_to_string(&tokens_file).unwrap_or_default();
            write_atomic(
                &tokens_file,
                format!("{token},admin,admin,\"system:masters\"\n{existing}").as_bytes(),
            )?;
            token
        }
    };
    Ok(Pki {
        ca_cert_pem: ca_pem,
        server_cert_pem,
        server_key_pem,
        admin_cert_pem,
        admin_key_pem,
        admin_token,
        tokens_file,
        front_proxy_ca_pem,
        front_proxy_client_cert_pem,
        front_proxy_client_key_pem,
        service_account_key_pem,
    })
}

/// A kubeconfig with context `context` (also the current context) for the admin.
pub fn kubeconfig(pki: &Pki, server_url: &str, context: &str) -> String {
    let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s.as_bytes());
    format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: {context}\n  cluster:\n    server: {server_url}\n    certificate-authority-data: {ca}\nusers:\n- name: {context}-admin\n  user:\n    client-certificate-data: {cert}\n    client-key-data: {key}\n    token: {token}\ncontexts:\n- name: {context}\n  context:\n    cluster: {context}\n    user: {context}-admin\ncurrent-context: {context}\npreferences: {{}}\n",
        ca = b64(&pki.ca_cert_pem),
        cert = b64(&pki.admin_cert_pem),
        key = b64(&pki.admin_key_pem),
        token = pki.admin_token,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serving_pair_is_made_once_and_reissued_for_new_hosts() {
        let dir = tempfile::tempdir().expect("tempdir");
        let sub = dir.path().join("webhook");
        let hosts = vec!["svc.example".to_string(), "127.0.0.1".to_string()];
        let ca = ensure_serving(&sub, "test-ca", "tls", &hosts).expect("pair");
        let crt = std::fs::read_to_string(sub.join("tls.crt")).expect("crt");
        assert!(covers(&crt, &hosts));
        assert_eq!(
            ensure_serving(&sub, "test-ca", "tls", &hosts).expect("again"),
            ca
        );
        assert_eq!(
            std::fs::read_to_string(sub.join("tls.crt")).expect("crt"),
            crt
        );
        let more = vec!["other.example".to_string()];
        assert_eq!(
            ensure_serving(&sub, "test-ca", "tls", &more).expect("more"),
            ca
        );
        let reissued = std::fs::read_to_string(sub.join("tls.crt")).expect("crt");
        assert_ne!(reissued, crt);
        assert!(covers(&reissued, &more));
    }

    #[test]
    fn made_once_then_reused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let a = ensure(dir.path(), "127.0.0.1", &[]).expect("pki");
        let b = ensure(dir.path(), "127.0.0.1", &[]).expect("pki");
        assert_eq!(a.server_cert_pem, b.server_cert_pem);
        assert_eq!(a.admin_token, b.admin_token);
        assert!(covers(
            &a.server_cert_pem,
            &["127.0.0.1".into(), "localhost".into()]
        ));
        let c = ensure(dir.path(), "10.1.2.3", &[]).expect("pki");
        assert_ne!(
            a.server_cert_pem, c.server_cert_pem,
            "new bind host gets a new serving cert"
        );
        assert!(covers(&c.server_cert_pem, &["10.1.2.3".into()]));
        assert_eq!(a.ca_cert_pem, c.ca_cert_pem);
        assert_eq!(a.service_account_key_pem, c.service_account_key_pem);
        super::super::service_account::Signer::from_pem(&a.service_account_key_pem)
            .expect("sa.key signs ES256");
    }
}
