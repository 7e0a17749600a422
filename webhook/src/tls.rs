//! The serving certificate, read from a PEM certificate file and a PEM key
//! file and read again when either changes on disk (a renewed Secret mounted
//! into the Pod, a cert-manager rotation). [`ReloadingResolver`] is a rustls
//! `ResolvesServerCert`: at each handshake it compares the files' modification
//! time and length with what it loaded last, and swaps in the new pair when
//! they differ and the new pair parses; a half-written or broken pair keeps
//! the previous certificate (logged at `warn`).

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::SystemTime;

use rustls::crypto::CryptoProvider;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

/// Certificate loading failures.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The certificate file holds no PEM certificate.
    #[error("{path} holds no PEM certificate")]
    NoCertificate {
        /// The file.
        path: PathBuf,
    },
    /// The key file holds no usable PEM private key.
    #[error("{path} holds no usable PEM private key: {message}")]
    BadKey {
        /// The file.
        path: PathBuf,
        /// Why.
        message: String,
    },
    /// The TLS configuration could not be built.
    #[error("TLS configuration: {0}")]
    Config(String),
}

/// Result of this module.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What identifies one version of a file: modification time and length.
type Stamp = Option<(SystemTime, u64)>;

fn stamp(path: &Path) -> Stamp {
    let meta = std::fs::metadata(path).ok()?;
    Some((meta.modified().ok()?, meta.len()))
}

struct Loaded {
    key: Arc<CertifiedKey>,
    stamps: (Stamp, Stamp),
}

/// A certificate resolver that follows its files (see the module docs).
pub struct ReloadingResolver {
    cert_file: PathBuf,
    key_file: PathBuf,
    provider: Arc<CryptoProvider>,
    current: RwLock<Loaded>,
}

impl std::fmt::Debug for ReloadingResolver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReloadingResolver")
            .field("cert_file", &self.cert_file)
            .field("key_file", &self.key_file)
            .finish_non_exhaustive()
    }
}

/// Reads a certificate chain and its private key into a rustls `CertifiedKey`.
pub fn load(cert_file: &Path, key_file: &Path, provider: &CryptoProvider) -> Result<CertifiedKey> {
    let read = |path: &Path| {
        std::fs::read(path).map_err(|source| Error::Read {
            path: path.into(),
            source,
        })
    };
    let cert_pem = read(cert_file)?;
    let key_pem = read(key_file)?;
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&cert_pem)
        .filter_map(|c| c.ok())
        .collect();
    if chain.is_empty() {
        return Err(Error::NoCertificate {
            path: cert_file.into(),
        });
    }
    let bad_key = |message: String| Error::BadKey {
        path: key_file.into(),
        message,
    };
    let key = PrivateKeyDer::from_pem_slice(&key_pem).map_err(|e| bad_key(e.to_string()))?;
    let signing = provider
        .key_provider
        .load_private_key(key)
        .map_err(|e| bad_key(e.to_string()))?;
    let certified = CertifiedKey::new(chain, signing);
    certified
        .keys_match()
        .map_err(|e| bad_key(format!("it does not match the certificate: {e}")))?;
    Ok(certified)
}

impl ReloadingResolver {
    /// Loads the pair once (failing if it cannot be used) and follows it from then on.
    pub fn new(cert_file: impl Into<PathBuf>, key_file: impl Into<PathBuf>) -> Result<Self> {
        let (cert_file, key_file) = (cert_file.into(), key_file.into());
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let stamps = (stamp(&cert_file), stamp(&key_file));
        let key = Arc::new(load(&cert_file, &key_file, &provider)?);
        Ok(ReloadingResolver {
            cert_file,
            key_file,
            provider,
            current: RwLock::new(Loaded { key, stamps }),
        })
    }

    /// The certificate to present now, reloading it first if its files changed.
    pub fn current(&self) -> Arc<CertifiedKey> {
        let stamps = (stamp(&self.cert_file), stamp(&self.key_file));
        {
            let loaded = self.current.read().unwrap_or_else(|e| e.into_inner());
            if loaded.stamps == stamps {
                return loaded.key.clone();
            }
        }
        let mut loaded = self.current.write().unwrap_or_else(|e| e.into_inner());
        if loaded.stamps != stamps {
            // Whatever happens, do not retry this version of the files on every handshake.
            loaded.stamps = stamps;
            match load(&self.cert_file, &self.key_file, &self.provider) {
                Ok(key) => {
                    tracing::info!(cert = %self.cert_file.display(), "serving certificate reloaded");
                    loaded.key = Arc::new(key);
                }
                Err(e) => {
                    tracing::warn!(error = %e, "serving certificate changed but cannot be loaded; keeping the previous one");
                }
            }
        }
        loaded.key.clone()
    }

    /// A rustls server configuration (HTTP/2 and HTTP/1.1, no client
    /// certificates) presenting this resolver's certificate.
    pub fn server_config(self: &Arc<Self>) -> Result<rustls::ServerConfig> {
        let mut config = rustls::ServerConfig::builder_with_provider(self.provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|e| Error::Config(e.to_string()))?
            .with_no_client_auth()
            .with_cert_resolver(self.clone());
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        Ok(config)
    }
}

impl ResolvesServerCert for ReloadingResolver {
    fn resolve(&self, _client_hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.current())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pair(name: &str) -> (String, String) {
        let key = rcgen::KeyPair::generate().expect("key");
        let mut params =
            rcgen::CertificateParams::new(vec!["localhost".to_string()]).expect("params");
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, name);
        let cert = params.self_signed(&key).expect("cert");
        (cert.pem(), key.serialize_pem())
    }

    fn common_name(key: &CertifiedKey) -> String {
        let der = key.cert[0].as_ref();
        // The CN is the only UTF8String/PrintableString in these tiny certificates' subject.
        String::from_utf8_lossy(der).to_string()
    }

    #[test]
    fn follows_the_files() {
        let dir = tempfile::tempdir().expect("tmp");
        let (crt, key) = (dir.path().join("tls.crt"), dir.path().join("tls.key"));
        let (c1, k1) = pair("first-cert");
        std::fs::write(&crt, &c1).expect("write");
        std::fs::write(&key, &k1).expect("write");
        let r = ReloadingResolver::new(&crt, &key).expect("load");
        assert!(common_name(&r.current()).contains("first-cert"));

        // A broken replacement keeps the previous certificate.
        std::fs::write(&crt, "not a certificate").expect("write");
        assert!(common_name(&r.current()).contains("first-cert"));

        // A new pair is picked up (length differs from the broken file, so no
        // reliance on the clock's resolution).
        let (c2, k2) = pair("second-cert-longer-name");
        std::fs::write(&key, &k2).expect("write");
        std::fs::write(&crt, &c2).expect("write");
        assert!(common_name(&r.current()).contains("second-cert-longer-name"));
    }

    #[test]
    fn unusable_files_are_errors() {
        let dir = tempfile::tempdir().expect("tmp");
        let (crt, key) = (dir.path().join("tls.crt"), dir.path().join("tls.key"));
        assert!(matches!(
            ReloadingResolver::new(&crt, &key),
            Err(Error::Read { .. })
        ));
        let (c1, _) = pair("a");
        let (_, k2) = pair("b");
        std::fs::write(&crt, &c1).expect("write");
        std::fs::write(&key, &k2).expect("write");
        match ReloadingResolver::new(&crt, &key) {
            Err(err) => assert!(err.to_string().contains("does not match"), "{err}"),
            Ok(r) => panic!("a key of another certificate was accepted: {r:?}"),
        }
    }
}
