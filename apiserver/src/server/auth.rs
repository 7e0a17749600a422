//! Authentication: client certificates signed by the server's CA (CN = user,
//! O = groups) and bearer tokens from a static tokens file
//! (`token,user,uid,"group1,group2"`, as kube-apiserver's `--token-auth-file`).

use std::collections::HashMap;
use std::path::Path;

/// Who made a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    pub name: String,
    pub uid: String,
    pub groups: Vec<String>,
}

/// Bearer tokens known to the server.
#[derive(Debug, Default, Clone)]
pub struct Tokens {
    by_token: HashMap<String, User>,
}

impl Tokens {
    /// Reads a tokens file; malformed lines are skipped with a warning.
    pub fn load(path: &Path) -> std::io::Result<Self> {
        let text = std::fs::read_to_string(path)?;
        Ok(Tokens::parse(&text))
    }

    pub fn parse(text: &str) -> Self {
        let mut by_token = HashMap::new();
        for (n, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let mut fields = line.splitn(4, ',');
            let (Some(token), Some(name)) = (fields.next(), fields.next()) else {
                tracing::warn!(line = n + 1, "skipping malformed tokens file line");
                continue;
            };
            let uid = fields.next().unwrap_or("").to_string();
            let groups = fields
                .next()
                .map(|g| {
                    g.trim_matches('"')
                        .split(',')
                        .map(str::trim)
                        .filter(|g| !g.is_empty())
                        .map(String::from)
                        .collect()
                })
                .unwrap_or_default();
            by_token.insert(
                token.to_string(),
                User {
                    name: name.to_string(),
                    uid,
                    groups,
                },
            );
        }
        Tokens { by_token }
    }

    pub fn get(&self, token: &str) -> Option<&User> {
        self.by_token.get(token)
    }
}

/// The user named by a verified client certificate (DER).
pub fn user_from_certificate(der: &[u8]) -> Option<User> {
    let (_, cert) = x509_parser::parse_x509_certificate(der).ok()?;
    let subject = cert.subject();
    let name = subject
        .iter_common_name()
        .next()?
        .as_str()
        .ok()?
        .to_string();
    let groups = subject
        .iter_organization()
        .filter_map(|o| o.as_str().ok().map(String::from))
        .collect();
    Some(User {
        name,
        uid: String::new(),
        groups,
    })
}

/// Request-header authentication (`--requestheader-*`): a front proxy presenting a
/// client certificate from this CA, with an allowed common name, names the user in
/// `X-Remote-User` and its groups in `X-Remote-Group`.
#[derive(Debug, Clone)]
pub struct RequestHeader {
    /// The CA's PEM.
    pub ca_pem: String,
    /// Accepted common names of the proxy's certificate (empty: any).
    pub allowed_names: Vec<String>,
}

/// What a connection's client certificate establishes.
#[derive(Debug, Clone, PartialEq)]
pub enum Peer {
    /// An ordinary user.
    User(User),
    /// A trusted front proxy: each request names its user in headers.
    FrontProxy,
    /// Nothing (no certificate, or one that names nobody).
    Anonymous,
}

fn subject_der(pem: &str) -> Option<Vec<u8>> {
    let (_, p) = x509_parser::pem::parse_x509_pem(pem.as_bytes()).ok()?;
    let cert = p.parse_x509().ok()?;
    Some(cert.subject().as_raw().to_vec())
}

/// Classifies a verified client certificate (DER).
pub fn classify_peer(der: &[u8], request_header: Option<&RequestHeader>) -> Peer {
    let Ok((_, cert)) = x509_parser::parse_x509_certificate(der) else {
        return Peer::Anonymous;
    };
    if let Some(rh) = request_header
        && subject_der(&rh.ca_pem).as_deref() == Some(cert.issuer().as_raw())
    {
        let cn = cert
            .subject()
            .iter_common_name()
            .next()
            .and_then(|c| c.as_str().ok())
            .unwrap_or("");
        if rh.allowed_names.is_empty() || rh.allowed_names.iter().any(|n| n == cn) {
            return Peer::FrontProxy;
        }
        return Peer::Anonymous;
    }
    user_from_certificate(der).map_or(Peer::Anonymous, Peer::User)
}

/// The user a front proxy names in a request's headers.
pub fn user_from_headers(headers: &http::HeaderMap) -> Option<User> {
    let name = headers.get("x-remote-user")?.to_str().ok()?.to_string();
    if name.is_empty() {
        return None;
    }
    let groups = headers
        .get_all("x-remote-group")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|g| g.trim().to_string())
        .filter(|g| !g.is_empty())
        .collect();
    Some(User {
        name,
        uid: String::new(),
        groups,
    })
}

/// The user of a request: its client certificate, else its bearer token.
pub fn authenticate(
    tokens: &Tokens,
    cert_user: Option<&User>,
    authorization: Option<&str>,
) -> Option<User> {
    let mut user = match cert_user {
        Some(u) => u.clone(),
        None => tokens
            .get(authorization?.strip_prefix("Bearer ")?.trim())?
            .clone(),
    };
    // Every authenticated user is in system:authenticated.
    if !user.groups.iter().any(|g| g == "system:authenticated") {
        user.groups.push("system:authenticated".into());
    }
    Some(user)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_file() {
        let t = Tokens::parse("abc,alice,1,\"dev,ops\"\n# comment\nxyz,bob\n");
        let alice = t.get("abc").expect("alice");
        assert_eq!(alice.groups, vec!["dev", "ops"]);
        assert_eq!(t.get("xyz").map(|u| u.name.as_str()), Some("bob"));
        assert!(authenticate(&t, None, Some("Bearer abc")).is_some());
        assert!(authenticate(&t, None, Some("Bearer nope")).is_none());
        assert!(authenticate(&t, None, None).is_none());
    }
}
