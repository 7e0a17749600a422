//! Authentication: client certificates signed by the server's CA (CN = user,
//! O = groups), bearer tokens from a static tokens file
//! (`token,user,uid,"group1,group2"`, as kube-apiserver's `--token-auth-file`), and
//! service-account tokens (JWTs signed by this server, see
//! [`super::service_account`]). Start at [`authenticate`]; [`Authenticator`] holds
//! what bearer tokens are checked against.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use super::service_account::{self, Signer};
use crate::storage::Snapshot;

/// Who made a request.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct User {
    pub name: String,
    pub uid: String,
    pub groups: Vec<String>,
    /// Extra attributes (`user.extra` in reviews): key → values.
    pub extra: BTreeMap<String, Vec<String>>,
}

/// An extra key as a header-name suffix (`X-Remote-Extra-KEY`,
/// `Impersonate-Extra-KEY`): lower-cased, and every byte a header name cannot
/// hold percent-encoded, as kube-apiserver encodes it.
pub fn escape_extra_key(key: &str) -> String {
    let mut out = String::new();
    for b in key.bytes() {
        let plain = b.is_ascii_alphanumeric()
            || matches!(
                b,
                b'-' | b'!'
                    | b'#'
                    | b'$'
                    | b'&'
                    | b'\''
                    | b'*'
                    | b'+'
                    | b'.'
                    | b'^'
                    | b'_'
                    | b'`'
                    | b'|'
                    | b'~'
            );
        if plain {
            out.push(b.to_ascii_lowercase() as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The extras named by headers `PREFIX<key>: value` (keys percent-decoded,
/// lower-cased; repeated headers and comma-free values kept in order).
pub fn extras_from_headers(
    headers: &http::HeaderMap,
    prefix: &str,
) -> BTreeMap<String, Vec<String>> {
    let mut extra: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (name, value) in headers {
        if let Some(key) = name.as_str().strip_prefix(prefix) {
            let key = crate::endpoints::request_info::percent_decode(key, false).to_lowercase();
            if key.is_empty() {
                continue;
            }
            extra
                .entry(key)
                .or_default()
                .push(String::from_utf8_lossy(value.as_bytes()).into_owned());
        }
    }
    extra
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
                    extra: Default::default(),
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
        extra: Default::default(),
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
        extra: extras_from_headers(headers, "x-remote-extra-"),
    })
}

/// Checks bearer tokens: the static tokens file, then service-account JWTs.
#[derive(Debug, Default)]
pub struct Authenticator {
    /// Static tokens.
    pub tokens: Tokens,
    /// The service-account token signer (none: service-account tokens are refused).
    pub service_accounts: Option<Signer>,
}

/// Why a bearer token does not authenticate.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TokenError {
    /// Neither a known static token nor a JWT.
    #[error("invalid bearer token")]
    Unknown,
    /// A JWT this server does not accept.
    #[error("invalid bearer token, {0}")]
    ServiceAccount(#[from] service_account::Error),
    /// A legacy token whose Secret is gone or holds another token.
    #[error("the token of Secret {namespace}/{secret} has been invalidated")]
    LegacyTokenInvalidated {
        /// The Secret's namespace.
        namespace: String,
        /// The Secret's name.
        secret: String,
    },
    /// The object a bound token names is gone (or was recreated with another uid).
    #[error("{kind} {name:?} (uid {uid}) the token is bound to no longer exists")]
    BoundObjectGone {
        /// `Pod`, `Secret` or `Node`.
        kind: String,
        /// Its name.
        name: String,
        /// The uid the token names.
        uid: String,
    },
    /// The token's ServiceAccount is gone (or was recreated with another uid).
    #[error("service account {namespace}/{name} has been deleted")]
    ServiceAccountGone {
        /// Its namespace.
        namespace: String,
        /// Its name.
        name: String,
    },
}

/// A legacy token (the `token` of a `kubernetes.io/service-account-token`
/// Secret) authenticates while that Secret still holds exactly this token and
/// its ServiceAccount exists with the uid the token names. It carries no
/// audience, so it is good for the API's own audiences only.
fn legacy_token(
    signer: &Signer,
    snapshot: &Snapshot,
    token: &str,
    wanted: Vec<String>,
) -> Result<(User, Vec<String>), TokenError> {
    use base64::Engine;
    let claims = signer.verify_legacy(token)?;
    let api = service_account::api_audiences();
    let accepted: Vec<String> = wanted.iter().filter(|w| api.contains(w)).cloned().collect();
    if accepted.is_empty() {
        return Err(TokenError::ServiceAccount(
            service_account::Error::Audience {
                token: Vec::new(),
                wanted,
            },
        ));
    }
    let invalidated = || TokenError::LegacyTokenInvalidated {
        namespace: claims.namespace.clone(),
        secret: claims.secret_name.clone(),
    };
    let secret = snapshot
        .get(&format!(
            "/core/secrets/{}/{}",
            claims.namespace, claims.secret_name
        ))
        .ok_or_else(invalidated)?;
    let held = secret
        .kept()
        .pointer("/data/token")
        .and_then(serde_json::Value::as_str)
        .and_then(|t| base64::engine::general_purpose::STANDARD.decode(t).ok());
    if held.as_deref() != Some(token.as_bytes())
        || secret
            .kept()
            .pointer("/metadata/deletionTimestamp")
            .is_some()
    {
        return Err(invalidated());
    }
    let gone = || TokenError::ServiceAccountGone {
        namespace: claims.namespace.clone(),
        name: claims.service_account_name.clone(),
    };
    let account = snapshot
        .get(&format!(
            "/core/serviceaccounts/{}/{}",
            claims.namespace, claims.service_account_name
        ))
        .ok_or_else(gone)?;
    let uid = account
        .kept()
        .pointer("/metadata/uid")
        .and_then(serde_json::Value::as_str)
        .unwrap_or("");
    if uid != claims.service_account_uid
        || account
            .kept()
            .pointer("/metadata/deletionTimestamp")
            .is_some()
    {
        return Err(gone());
    }
    let user =
        super::authz::service_account_user(&claims.namespace, &claims.service_account_name, uid);
    Ok((user, accepted))
}

/// Whether the object's `deletionTimestamp` lies in the past (kube's test for a
/// bound object that no longer holds a token up).
fn deletion_passed(object: &serde_json::Value) -> bool {
    object
        .pointer("/metadata/deletionTimestamp")
        .and_then(serde_json::Value::as_str)
        .is_some_and(|t| {
            t.parse::<jiff::Timestamp>()
                .map_or(true, |t| t <= jiff::Timestamp::now())
        })
}

impl Authenticator {
    /// An authenticator over static tokens and, when given, service-account tokens.
    pub fn new(tokens: Tokens, service_accounts: Option<Signer>) -> Self {
        Authenticator {
            tokens,
            service_accounts,
        }
    }

    /// The user a bearer token names and the audiences it was accepted for, out of
    /// `audiences` (empty: the API's own). A service-account token must verify, be
    /// meant for one of the audiences, and its ServiceAccount must still exist in
    /// `snapshot` with the uid the token names.
    pub fn authenticate_token(
        &self,
        snapshot: &Snapshot,
        token: &str,
        audiences: &[String],
    ) -> Result<(User, Vec<String>), TokenError> {
        let wanted = if audiences.is_empty() {
            service_account::api_audiences()
        } else {
            audiences.to_vec()
        };
        if let Some(user) = self.tokens.get(token) {
            return Ok((user.clone(), wanted));
        }
        let Some(signer) = &self.service_accounts else {
            return Err(TokenError::Unknown);
        };
        if !service_account::looks_like_jwt(token) {
            return Err(TokenError::Unknown);
        }
        let claims = match signer.verify(token, service_account::unix_now()) {
            Err(service_account::Error::Issuer(iss)) if iss == service_account::LEGACY_ISSUER => {
                return legacy_token(signer, snapshot, token, wanted);
            }
            verified => verified?,
        };
        let accepted = service_account::audiences_accepted(&claims, &wanted)?;
        let gone = || TokenError::ServiceAccountGone {
            namespace: claims.namespace.clone(),
            name: claims.name.clone(),
        };
        let key = format!("/core/serviceaccounts/{}/{}", claims.namespace, claims.name);
        let stored = snapshot.get(&key).ok_or_else(gone)?;
        let uid = stored
            .kept()
            .pointer("/metadata/uid")
            .and_then(serde_json::Value::as_str)
            .unwrap_or("");
        let terminating = stored
            .kept()
            .pointer("/metadata/deletionTimestamp")
            .is_some();
        if uid != claims.uid || terminating {
            return Err(gone());
        }
        let mut user = super::authz::service_account_user(&claims.namespace, &claims.name, uid);
        if let Some(bound) = &claims.bound {
            // Bound to a Pod, Secret or Node: not all kept parsed.
            let live = snapshot.get(&bound.key(&claims.namespace)).filter(|kv| {
                let object = kv.value();
                object
                    .pointer("/metadata/uid")
                    .and_then(serde_json::Value::as_str)
                    == Some(bound.uid.as_str())
                    && !deletion_passed(&object)
            });
            if live.is_none() {
                return Err(TokenError::BoundObjectGone {
                    kind: bound.kind.clone(),
                    name: bound.name.clone(),
                    uid: bound.uid.clone(),
                });
            }
            let claim = bound.claim();
            // kube names bound Pods and Nodes (not Secrets) in the user's extras.
            if claim != "secret" {
                user.extra.insert(
                    format!("authentication.kubernetes.io/{claim}-name"),
                    vec![bound.name.clone()],
                );
                user.extra.insert(
                    format!("authentication.kubernetes.io/{claim}-uid"),
                    vec![bound.uid.clone()],
                );
            }
        }
        Ok((user, accepted))
    }
}

/// Answers an authentication.k8s.io/v1 `TokenReview`: the review echoed back with
/// `status.authenticated`, `status.user` and `status.audiences` when `spec.token`
/// authenticates for `spec.audiences` (default: the API's), else `status.error`.
/// No token is a 400, as in kube.
pub fn token_review(
    authn: &Authenticator,
    snapshot: &Snapshot,
    body: &serde_json::Value,
) -> Result<serde_json::Value, crate::status::ApiError> {
    use serde_json::{Value, json};
    let token = body
        .pointer("/spec/token")
        .and_then(Value::as_str)
        .unwrap_or("");
    if token.is_empty() {
        return Err(crate::status::ApiError::bad_request(
            "token is required for TokenReview in authentication.k8s.io",
        ));
    }
    let audiences: Vec<String> = body
        .pointer("/spec/audiences")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(String::from)
                .collect()
        })
        .unwrap_or_default();
    let status = match authn.authenticate_token(snapshot, token, &audiences) {
        Ok((mut user, accepted)) => {
            if !user.groups.iter().any(|g| g == "system:authenticated") {
                user.groups.push("system:authenticated".into());
            }
            let mut user_info = json!({"username": user.name, "groups": user.groups});
            if !user.uid.is_empty() {
                user_info["uid"] = user.uid.into();
            }
            if !user.extra.is_empty() {
                user_info["extra"] = json!(user.extra);
            }
            json!({"authenticated": true, "user": user_info, "audiences": accepted})
        }
        Err(e) => json!({"user": {}, "error": e.to_string()}),
    };
    let mut review = super::authz::review_envelope(body, "authentication.k8s.io/v1", "TokenReview");
    review["status"] = status;
    Ok(review)
}

/// The user of a request: its client certificate, else its bearer token (for the
/// API's own audiences).
pub fn authenticate(
    authn: &Authenticator,
    snapshot: &Snapshot,
    cert_user: Option<&User>,
    authorization: Option<&str>,
) -> Option<User> {
    let mut user = match cert_user {
        Some(u) => u.clone(),
        None => {
            let token = authorization?.strip_prefix("Bearer ")?.trim();
            match authn.authenticate_token(snapshot, token, &[]) {
                Ok((user, _)) => user,
                Err(e) => {
                    tracing::debug!(error = %e, "bearer token refused");
                    return None;
                }
            }
        }
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
        let authn = Authenticator::new(t, None);
        let snapshot = Snapshot {
            map: Default::default(),
            revision: 0,
        };
        assert!(authenticate(&authn, &snapshot, None, Some("Bearer abc")).is_some());
        assert!(authenticate(&authn, &snapshot, None, Some("Bearer nope")).is_none());
        assert!(authenticate(&authn, &snapshot, None, None).is_none());
    }

    fn service_account(uid: &str) -> (String, serde_json::Value) {
        (
            "/core/serviceaccounts/default/sa1".into(),
            serde_json::json!({"metadata": {"name": "sa1", "namespace": "default", "uid": uid}}),
        )
    }

    fn snapshot_of(objects: Vec<(String, serde_json::Value)>) -> Snapshot {
        let mut map = imbl::OrdMap::new();
        for (key, value) in objects {
            let key: std::sync::Arc<str> = std::sync::Arc::from(key.as_str());
            map.insert(
                key.clone(),
                crate::storage::KeyValue::new(key, std::sync::Arc::new(value), 1),
            );
        }
        Snapshot { map, revision: 1 }
    }

    #[test]
    fn service_account_tokens() {
        use ring::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair};
        let rng = ring::rand::SystemRandom::new();
        let pkcs8 =
            EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng).expect("key");
        let signer = Signer::from_pkcs8(pkcs8.as_ref()).expect("signer");
        let (_, sa) = service_account("u-1");
        let now = service_account::unix_now();
        let answer =
            service_account::token_request(&signer, &sa, &serde_json::json!({}), None, now)
                .expect("token");
        let token = answer["status"]["token"]
            .as_str()
            .expect("token")
            .to_string();
        let authn = Authenticator::new(Tokens::default(), Some(signer));

        let live = snapshot_of(vec![service_account("u-1")]);
        let (user, audiences) = authn
            .authenticate_token(&live, &token, &[])
            .expect("accepted");
        assert_eq!(user.name, "system:serviceaccount:default:sa1");
        assert_eq!(user.uid, "u-1");
        assert_eq!(
            user.groups,
            [
                "system:serviceaccounts",
                "system:serviceaccounts:default",
                "system:authenticated"
            ]
        );
        assert_eq!(audiences, service_account::api_audiences());
        assert!(matches!(
            authn.authenticate_token(&live, &token, &["vault".into()]),
            Err(TokenError::ServiceAccount(
                service_account::Error::Audience { .. }
            ))
        ));
        let gone = snapshot_of(vec![]);
        assert!(matches!(
            authn.authenticate_token(&gone, &token, &[]),
            Err(TokenError::ServiceAccountGone { .. })
        ));
        let recreated = snapshot_of(vec![service_account("u-2")]);
        assert!(authn.authenticate_token(&recreated, &token, &[]).is_err());

        let review = token_review(
            &authn,
            &live,
            &serde_json::json!({"spec": {"token": token}}),
        )
        .expect("review");
        assert_eq!(review["kind"], "TokenReview");
        assert_eq!(review["status"]["authenticated"], true);
        let review = token_review(&authn, &live, &serde_json::json!({"spec": {"token": "x"}}))
            .expect("review");
        assert_eq!(review["status"]["error"], "invalid bearer token");
        assert!(token_review(&authn, &live, &serde_json::json!({"spec": {}})).is_err());
    }

    #[test]
    fn legacy_and_bound_tokens_follow_their_objects() {
        use base64::Engine;
        use ring::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair};
        let rng = ring::rand::SystemRandom::new();
        let pkcs8 =
            EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng).expect("key");
        let signer = Signer::from_pkcs8(pkcs8.as_ref()).expect("signer");
        let legacy = signer
            .issue_legacy(&service_account::LegacyClaims {
                namespace: "default".into(),
                secret_name: "sa1-token".into(),
                service_account_name: "sa1".into(),
                service_account_uid: "u-1".into(),
            })
            .expect("legacy token");
        let secret = |token: &str| {
            (
                "/core/secrets/default/sa1-token".to_string(),
                serde_json::json!({"metadata": {"name": "sa1-token", "namespace": "default"},
                    "data": {"token": base64::engine::general_purpose::STANDARD.encode(token)}}),
            )
        };
        let pod = |uid: &str| {
            (
                "/core/pods/default/web".to_string(),
                serde_json::json!({"metadata": {"name": "web", "namespace": "default", "uid": uid}}),
            )
        };
        let (_, sa) = service_account("u-1");
        let request = serde_json::json!({"spec": {"boundObjectRef": {"kind": "Pod", "apiVersion": "v1", "name": "web"}}});
        let bound = service_account::token_request(
            &signer,
            &sa,
            &request,
            Some(&pod("p-1").1),
            service_account::unix_now(),
        )
        .expect("bound token")["status"]["token"]
            .as_str()
            .expect("token")
            .to_string();
        let authn = Authenticator::new(Tokens::default(), Some(signer));

        let live = snapshot_of(vec![service_account("u-1"), secret(&legacy), pod("p-1")]);
        let (user, _) = authn
            .authenticate_token(&live, &legacy, &[])
            .expect("legacy");
        assert_eq!(user.name, "system:serviceaccount:default:sa1");
        assert!(matches!(
            authn.authenticate_token(&live, &legacy, &["vault".into()]),
            Err(TokenError::ServiceAccount(
                service_account::Error::Audience { .. }
            ))
        ));
        let (user, _) = authn.authenticate_token(&live, &bound, &[]).expect("bound");
        assert_eq!(user.extra["authentication.kubernetes.io/pod-uid"], ["p-1"]);

        // The Secret holds another token, or is gone; the ServiceAccount is gone.
        for snapshot in [
            snapshot_of(vec![service_account("u-1"), secret("other")]),
            snapshot_of(vec![service_account("u-1")]),
        ] {
            assert!(matches!(
                authn.authenticate_token(&snapshot, &legacy, &[]),
                Err(TokenError::LegacyTokenInvalidated { .. })
            ));
        }
        assert!(matches!(
            authn.authenticate_token(&snapshot_of(vec![secret(&legacy)]), &legacy, &[]),
            Err(TokenError::ServiceAccountGone { .. })
        ));
        // The Pod is gone, or another Pod has its name.
        for snapshot in [
            snapshot_of(vec![service_account("u-1")]),
            snapshot_of(vec![service_account("u-1"), pod("p-2")]),
        ] {
            assert!(matches!(
                authn.authenticate_token(&snapshot, &bound, &[]),
                Err(TokenError::BoundObjectGone { .. })
            ));
        }
    }
}
