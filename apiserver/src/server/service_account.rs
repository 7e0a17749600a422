//! Service-account tokens: ES256 JSON Web Tokens signed with the P-256 key kept in
//! `DATA_DIR/sa.key` (made on first start by [`super::pki`]), shaped like the bound
//! tokens kube-apiserver issues (`iss`, `sub`, `aud`, `exp`, `iat`, `nbf`, `jti`, and
//! the `kubernetes.io` claim naming the namespace and the ServiceAccount's name and
//! uid, and for a bound token the Pod, Secret or Node it is bound to).
//!
//! Start at [`Signer`]: [`Signer::issue`] makes a token from [`Claims`],
//! [`Signer::verify`] checks one (signature, issuer, time window) and answers its
//! claims. Whether the ServiceAccount still exists is the caller's question
//! ([`super::auth::Authenticator`] asks the store). [`token_request`] answers an
//! authentication.k8s.io/v1 `TokenRequest` (`POST .../serviceaccounts/NAME/token`);
//! [`openid_configuration`] and [`Signer::jwks`] are the issuer discovery documents
//! (`/.well-known/openid-configuration`, `/openid/v1/jwks`) other parties verify
//! tokens with.

use base64::Engine;
use ring::rand::SystemRandom;
use ring::signature::{self, EcdsaKeyPair, KeyPair as _};
use serde_json::{Value, json};

use crate::status::{ApiError, Cause};

/// The issuer (`iss`) of the tokens, kube's default `--service-account-issuer`.
pub const ISSUER: &str = "https://kubernetes.default.svc.cluster.local";

/// The audiences the API itself accepts (kube's `--api-audiences` default: the issuer).
pub fn api_audiences() -> Vec<String> {
    vec![ISSUER.to_string()]
}

/// Token lifetime when a TokenRequest names none (kube's default).
pub const DEFAULT_EXPIRATION_SECONDS: i64 = 3600;
/// Shortest lifetime a TokenRequest may ask for (kube's: 10 minutes).
pub const MIN_EXPIRATION_SECONDS: i64 = 600;
/// Longest lifetime a TokenRequest may ask for (kube's: 2^32 seconds).
pub const MAX_EXPIRATION_SECONDS: i64 = 1 << 32;
/// Clock skew tolerated on `nbf` and `iat`.
const LEEWAY_SECONDS: i64 = 60;

/// Why a token was not accepted, or a key not loaded.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum Error {
    /// The signing key is not a P-256 PKCS#8 key.
    #[error("invalid service-account signing key: {0}")]
    Key(String),
    /// Signing failed.
    #[error("signing failed")]
    Sign,
    /// Not three base64url parts with JSON header and claims.
    #[error("malformed token")]
    Malformed,
    /// The header names another algorithm than ES256.
    #[error("unexpected signing algorithm {0:?}")]
    Algorithm(String),
    /// The signature does not verify with this server's key.
    #[error("invalid signature")]
    Signature,
    /// The issuer is not this server's.
    #[error("unexpected issuer {0:?}")]
    Issuer(String),
    /// `exp` has passed.
    #[error("token has expired")]
    Expired,
    /// `nbf` or `iat` lies in the future.
    #[error("token used before it became valid")]
    NotYetValid,
    /// The token has none of the audiences asked for.
    #[error("token audiences {token:?} do not intersect {wanted:?}")]
    Audience {
        /// The token's `aud`.
        token: Vec<String>,
        /// The audiences accepted.
        wanted: Vec<String>,
    },
}

/// `pub type Result<T, E = Error>` of this module.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What a service-account token says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claims {
    /// The ServiceAccount's namespace.
    pub namespace: String,
    /// The ServiceAccount's name.
    pub name: String,
    /// The ServiceAccount's `metadata.uid` when the token was issued.
    pub uid: String,
    /// `aud`.
    pub audiences: Vec<String>,
    /// `iat` and `nbf`, Unix seconds.
    pub issued_at: i64,
    /// `exp`, Unix seconds.
    pub expires_at: i64,
    /// `jti`, unique per token.
    pub id: String,
    /// The object the token is bound to (`spec.boundObjectRef`), if any.
    pub bound: Option<BoundObject>,
}

/// The object a bound token lives and dies with: it is named under
/// `kubernetes.io` (`pod`, `secret` or `node`: `{name, uid}`), and the token is
/// refused once no object of that name and uid exists.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BoundObject {
    /// `Pod`, `Secret` or `Node`.
    pub kind: String,
    /// Its name (in the ServiceAccount's namespace, except for Nodes).
    pub name: String,
    /// Its `metadata.uid` when the token was issued.
    pub uid: String,
}

/// The issuer of legacy Secret-based tokens (kube's, fixed).
pub const LEGACY_ISSUER: &str = "kubernetes/serviceaccount";

/// What a legacy token (the `token` of a `kubernetes.io/service-account-token`
/// Secret) says, in kube's flat `kubernetes.io/serviceaccount/*` claims. It has
/// no audience and no expiry: it lives as long as its Secret holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LegacyClaims {
    /// The namespace of the Secret and the ServiceAccount.
    pub namespace: String,
    /// The Secret's name.
    pub secret_name: String,
    /// The ServiceAccount's name.
    pub service_account_name: String,
    /// The ServiceAccount's uid when the token was made.
    pub service_account_uid: String,
}

impl LegacyClaims {
    fn to_json(&self) -> Value {
        json!({
            "iss": LEGACY_ISSUER,
            "kubernetes.io/serviceaccount/namespace": self.namespace,
            "kubernetes.io/serviceaccount/secret.name": self.secret_name,
            "kubernetes.io/serviceaccount/service-account.name": self.service_account_name,
            "kubernetes.io/serviceaccount/service-account.uid": self.service_account_uid,
            "sub": super::authz::service_account_username(&self.namespace, &self.service_account_name),
        })
    }

    fn from_json(v: &Value) -> Result<LegacyClaims> {
        let s = |k: &str| {
            v.get(format!("kubernetes.io/serviceaccount/{k}"))
                .and_then(Value::as_str)
                .filter(|s| !s.is_empty())
                .map(String::from)
                .ok_or(Error::Malformed)
        };
        Ok(LegacyClaims {
            namespace: s("namespace")?,
            secret_name: s("secret.name")?,
            service_account_name: s("service-account.name")?,
            service_account_uid: s("service-account.uid")?,
        })
    }
}

/// The kinds a token can be bound to and their claim names.
pub const BINDABLE_KINDS: &[(&str, &str)] =
    &[("Pod", "pod"), ("Secret", "secret"), ("Node", "node")];

impl BoundObject {
    /// The claim under `kubernetes.io` that names it (`pod`, ...).
    pub fn claim(&self) -> &'static str {
        BINDABLE_KINDS
            .iter()
            .find(|(k, _)| *k == self.kind)
            .map_or("", |(_, c)| c)
    }

    /// Storage key of the object, for a token of a ServiceAccount in `namespace`.
    pub fn key(&self, namespace: &str) -> String {
        match self.kind.as_str() {
            "Node" => format!("/core/nodes/{}", self.name),
            "Secret" => format!("/core/secrets/{namespace}/{}", self.name),
            _ => format!("/core/pods/{namespace}/{}", self.name),
        }
    }
}

impl Claims {
    /// The JWT claims set, as kube-apiserver writes it.
    fn to_json(&self) -> Value {
        let mut claims = json!({
            "aud": self.audiences,
            "exp": self.expires_at,
            "iat": self.issued_at,
            "iss": ISSUER,
            "jti": self.id,
            "kubernetes.io": {
                "namespace": self.namespace,
                "serviceaccount": {"name": self.name, "uid": self.uid},
            },
            "nbf": self.issued_at,
            "sub": super::authz::service_account_username(&self.namespace, &self.name),
        });
        if let Some(b) = &self.bound {
            claims["kubernetes.io"][b.claim()] = json!({"name": b.name, "uid": b.uid});
        }
        claims
    }

    fn from_json(v: &Value) -> Result<Claims> {
        let s = |p: &str| v.pointer(p).and_then(Value::as_str).map(String::from);
        let audiences = match v.get("aud") {
            Some(Value::String(a)) => vec![a.clone()],
            Some(Value::Array(a)) => a
                .iter()
                .filter_map(Value::as_str)
                .map(String::from)
                .collect(),
            _ => Vec::new(),
        };
        Ok(Claims {
            namespace: s("/kubernetes.io/namespace").ok_or(Error::Malformed)?,
            name: s("/kubernetes.io/serviceaccount/name").ok_or(Error::Malformed)?,
            uid: s("/kubernetes.io/serviceaccount/uid").unwrap_or_default(),
            audiences,
            issued_at: v.get("iat").and_then(Value::as_i64).unwrap_or(0),
            expires_at: v
                .get("exp")
                .and_then(Value::as_i64)
                .ok_or(Error::Malformed)?,
            id: s("/jti").unwrap_or_default(),
            bound: BINDABLE_KINDS.iter().find_map(|(kind, claim)| {
                Some(BoundObject {
                    kind: kind.to_string(),
                    name: s(&format!("/kubernetes.io/{claim}/name"))?,
                    uid: s(&format!("/kubernetes.io/{claim}/uid")).unwrap_or_default(),
                })
            }),
        })
    }
}

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

fn unb64(text: &str) -> Result<Vec<u8>> {
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(text.trim_end_matches('='))
        .map_err(|_| Error::Malformed)
}

/// Signs and verifies service-account tokens with one ES256 key.
pub struct Signer {
    key: EcdsaKeyPair,
    key_id: String,
    rng: SystemRandom,
}

impl std::fmt::Debug for Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Signer")
            .field("key_id", &self.key_id)
            .finish_non_exhaustive()
    }
}

impl Signer {
    /// A signer over a P-256 private key in PKCS#8 DER.
    pub fn from_pkcs8(der: &[u8]) -> Result<Signer> {
        let rng = SystemRandom::new();
        let key = EcdsaKeyPair::from_pkcs8(&signature::ECDSA_P256_SHA256_FIXED_SIGNING, der, &rng)
            .map_err(|e| Error::Key(e.to_string()))?;
        // kube's key id: the base64url SHA-256 of the public key.
        let digest = ring::digest::digest(&ring::digest::SHA256, key.public_key().as_ref());
        let key_id = b64(digest.as_ref());
        Ok(Signer { key, key_id, rng })
    }

    /// A signer over a PEM `PRIVATE KEY` (PKCS#8) such as `DATA_DIR/sa.key`.
    pub fn from_pem(pem: &str) -> Result<Signer> {
        use rustls::pki_types::PrivatePkcs8KeyDer;
        use rustls::pki_types::pem::PemObject;
        let der = PrivatePkcs8KeyDer::from_pem_slice(pem.as_bytes())
            .map_err(|e| Error::Key(e.to_string()))?;
        Signer::from_pkcs8(der.secret_pkcs8_der())
    }

    /// The JSON Web Key Set of the public key (`/openid/v1/jwks`).
    pub fn jwks(&self) -> Value {
        // An uncompressed P-256 point: 0x04, then X and Y, 32 bytes each.
        let point = self.key.public_key().as_ref();
        let (x, y) = match point {
            [4, rest @ ..] if rest.len() == 64 => rest.split_at(32),
            _ => return json!({"keys": []}),
        };
        json!({"keys": [{
            "use": "sig",
            "kty": "EC",
            "kid": self.key_id,
            "crv": "P-256",
            "alg": "ES256",
            "x": b64(x),
            "y": b64(y),
        }]})
    }

    /// The signed token (`header.claims.signature`) of `claims`.
    pub fn issue(&self, claims: &Claims) -> Result<String> {
        self.sign(&claims.to_json())
    }

    /// The signed legacy token of a `kubernetes.io/service-account-token` Secret.
    pub fn issue_legacy(&self, claims: &LegacyClaims) -> Result<String> {
        self.sign(&claims.to_json())
    }

    fn sign(&self, body: &Value) -> Result<String> {
        let header = json!({"alg": "ES256", "kid": self.key_id});
        let signing_input = format!(
            "{}.{}",
            b64(header.to_string().as_bytes()),
            b64(body.to_string().as_bytes())
        );
        let sig = self
            .key
            .sign(&self.rng, signing_input.as_bytes())
            .map_err(|_| Error::Sign)?;
        Ok(format!("{signing_input}.{}", b64(sig.as_ref())))
    }

    /// The claims of a token this signer issued, if its signature verifies, its
    /// issuer is [`ISSUER`] and `now` (Unix seconds) is within its validity.
    pub fn verify(&self, token: &str, now: i64) -> Result<Claims> {
        let body = self.signed_body(token)?;
        let iss = body.get("iss").and_then(Value::as_str).unwrap_or("");
        if iss != ISSUER {
            return Err(Error::Issuer(iss.to_string()));
        }
        let claims = Claims::from_json(&body)?;
        if now >= claims.expires_at {
            return Err(Error::Expired);
        }
        let nbf = body.get("nbf").and_then(Value::as_i64).unwrap_or(0);
        if nbf.max(claims.issued_at) > now + LEEWAY_SECONDS {
            return Err(Error::NotYetValid);
        }
        Ok(claims)
    }

    /// The claims of a legacy Secret token this signer issued (issuer
    /// [`LEGACY_ISSUER`]; such tokens do not expire).
    pub fn verify_legacy(&self, token: &str) -> Result<LegacyClaims> {
        let body = self.signed_body(token)?;
        let iss = body.get("iss").and_then(Value::as_str).unwrap_or("");
        if iss != LEGACY_ISSUER {
            return Err(Error::Issuer(iss.to_string()));
        }
        LegacyClaims::from_json(&body)
    }

    /// The claims set of a token whose ES256 signature verifies with this key.
    fn signed_body(&self, token: &str) -> Result<Value> {
        let mut parts = token.split('.');
        let (Some(h), Some(c), Some(s), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(Error::Malformed);
        };
        let header: Value = serde_json::from_slice(&unb64(h)?).map_err(|_| Error::Malformed)?;
        let alg = header.get("alg").and_then(Value::as_str).unwrap_or("");
        if alg != "ES256" {
            return Err(Error::Algorithm(alg.to_string()));
        }
        let public = signature::UnparsedPublicKey::new(
            &signature::ECDSA_P256_SHA256_FIXED,
            self.key.public_key().as_ref(),
        );
        public
            .verify(format!("{h}.{c}").as_bytes(), &unb64(s)?)
            .map_err(|_| Error::Signature)?;
        serde_json::from_slice(&unb64(c)?).map_err(|_| Error::Malformed)
    }
}

/// Whether `s` looks like a JWT (three dot-separated parts); other bearer tokens are
/// not tried as service-account tokens.
pub fn looks_like_jwt(s: &str) -> bool {
    s.split('.').count() == 3 && s.starts_with("ey")
}

/// The audiences of `claims` that are also in `wanted`; an error when none are.
pub fn audiences_accepted(claims: &Claims, wanted: &[String]) -> Result<Vec<String>> {
    let both: Vec<String> = wanted
        .iter()
        .filter(|w| claims.audiences.contains(w))
        .cloned()
        .collect();
    if both.is_empty() {
        return Err(Error::Audience {
            token: claims.audiences.clone(),
            wanted: wanted.to_vec(),
        });
    }
    Ok(both)
}

fn invalid(name: &str, field: &str, value: &str, message: &str) -> ApiError {
    ApiError::invalid(
        "authentication.k8s.io",
        "TokenRequest",
        name,
        vec![Cause::new(
            "FieldValueInvalid",
            field,
            format!("Invalid value: {value}: {message}"),
        )],
    )
}

/// The `spec.boundObjectRef` of a TokenRequest for ServiceAccount `name`, checked:
/// `None` when unset, else (kind, object name, uid asked for). Kinds other than
/// Pod, Secret and Node of `v1` are 400, as in kube.
pub fn bound_object_ref(
    request: &Value,
    name: &str,
) -> Result<Option<(String, String, String)>, ApiError> {
    let Some(r) = request
        .pointer("/spec/boundObjectRef")
        .filter(|r| !r.is_null())
    else {
        return Ok(None);
    };
    let s = |f: &str| r.get(f).and_then(Value::as_str).unwrap_or("").to_string();
    let (api_version, kind, object) = (s("apiVersion"), s("kind"), s("name"));
    let group_version = if api_version.is_empty() {
        "v1"
    } else {
        api_version.as_str()
    };
    if group_version != "v1" || !BINDABLE_KINDS.iter().any(|(k, _)| *k == kind) {
        let (group, version) = group_version
            .rsplit_once('/')
            .unwrap_or(("", group_version));
        return Err(ApiError::bad_request(format!(
            "cannot bind token for serviceaccount {name:?} to object of type {group}/{version}, Kind={kind}"
        )));
    }
    if object.is_empty() {
        return Err(invalid(
            name,
            "spec.boundObjectRef.name",
            "\"\"",
            "must be set",
        ));
    }
    Ok(Some((kind, object, s("uid"))))
}

/// Answers an authentication.k8s.io/v1 `TokenRequest` for `service_account` (the
/// stored object) at `now` (Unix seconds): the request echoed back with
/// `spec.audiences` (default: the API's) and `spec.expirationSeconds` (default
/// 3600, at least 600) filled in and `status.token` / `status.expirationTimestamp`.
/// `bound` is the object `spec.boundObjectRef` names, as stored (the caller
/// looked it up; see [`bound_object_ref`]); its name and uid go into the token.
pub fn token_request(
    signer: &Signer,
    service_account: &Value,
    request: &Value,
    bound: Option<&Value>,
    now: i64,
) -> Result<Value, ApiError> {
    let meta = |f: &str| {
        service_account
            .pointer(&format!("/metadata/{f}"))
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string()
    };
    let name = meta("name");
    let spec = request.get("spec").cloned().unwrap_or_else(|| json!({}));
    let expiration = match spec.get("expirationSeconds") {
        None | Some(Value::Null) => DEFAULT_EXPIRATION_SECONDS,
        Some(v) => v.as_i64().ok_or_else(|| {
            invalid(
                &name,
                "spec.expirationSeconds",
                &v.to_string(),
                "must be an integer",
            )
        })?,
    };
    if expiration < MIN_EXPIRATION_SECONDS {
        return Err(invalid(
            &name,
            "spec.expirationSeconds",
            &expiration.to_string(),
            "may not specify a duration less than 10 minutes",
        ));
    }
    if expiration > MAX_EXPIRATION_SECONDS {
        return Err(invalid(
            &name,
            "spec.expirationSeconds",
            &expiration.to_string(),
            "may not specify a duration larger than 2^32 seconds",
        ));
    }
    let mut audiences: Vec<String> = spec
        .get("audiences")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(String::from)
                .collect()
        })
        .unwrap_or_default();
    if audiences.is_empty() {
        audiences = api_audiences();
    }
    let bound = match (bound_object_ref(request, &name)?, bound) {
        (Some((kind, object, wanted_uid)), Some(stored)) => {
            let uid = stored
                .pointer("/metadata/uid")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string();
            if !wanted_uid.is_empty() && wanted_uid != uid {
                return Err(ApiError::conflict_message(
                    "",
                    &kind,
                    &object,
                    &format!(
                        "the UID in the bound object reference ({wanted_uid}) does not match the UID in record. The object might have been deleted and then recreated"
                    ),
                ));
            }
            Some(BoundObject {
                kind,
                name: object,
                uid,
            })
        }
        (Some((kind, object, _)), None) => {
            return Err(ApiError::internal(format!(
                "the bound {kind} {object:?} was not looked up"
            )));
        }
        (None, _) => None,
    };
    let claims = Claims {
        namespace: meta("namespace"),
        name,
        uid: meta("uid"),
        audiences: audiences.clone(),
        issued_at: now,
        expires_at: now + expiration,
        id: uuid::Uuid::new_v4().to_string(),
        bound: bound.clone(),
    };
    let token = signer
        .issue(&claims)
        .map_err(|e| ApiError::internal(e.to_string()))?;
    let timestamp = |t: i64| {
        jiff::Timestamp::from_second(t)
            .map(|t| t.strftime("%Y-%m-%dT%H:%M:%SZ").to_string())
            .unwrap_or_default()
    };
    let mut out_spec = spec;
    out_spec["audiences"] = json!(audiences);
    out_spec["expirationSeconds"] = json!(expiration);
    match &bound {
        Some(b) => {
            out_spec["boundObjectRef"] =
                json!({"kind": b.kind, "apiVersion": "v1", "name": b.name, "uid": b.uid});
        }
        None => out_spec["boundObjectRef"] = Value::Null,
    }
    Ok(json!({
        "kind": "TokenRequest",
        "apiVersion": "authentication.k8s.io/v1",
        "metadata": {
            "name": claims.name,
            "namespace": claims.namespace,
            "creationTimestamp": timestamp(now),
        },
        "spec": out_spec,
        "status": {
            "token": token,
            "expirationTimestamp": timestamp(claims.expires_at),
        },
    }))
}

/// The OpenID provider configuration (`/.well-known/openid-configuration`) naming
/// the key set at `jwks_uri`, as kube-apiserver serves it.
pub fn openid_configuration(jwks_uri: &str) -> Value {
    json!({
        "issuer": ISSUER,
        "jwks_uri": jwks_uri,
        "response_types_supported": ["id_token"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": ["ES256"],
    })
}

/// The current time in Unix seconds.
pub fn unix_now() -> i64 {
    jiff::Timestamp::now().as_second()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn signer() -> Signer {
        let rng = SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&signature::ECDSA_P256_SHA256_FIXED_SIGNING, &rng)
            .expect("key");
        Signer::from_pkcs8(pkcs8.as_ref()).expect("signer")
    }

    fn claims(now: i64) -> Claims {
        Claims {
            namespace: "default".into(),
            name: "sa1".into(),
            uid: "u-1".into(),
            audiences: api_audiences(),
            issued_at: now,
            expires_at: now + 600,
            id: "j".into(),
            bound: None,
        }
    }

    #[test]
    fn legacy_tokens_round_trip() {
        let (s, other) = (signer(), signer());
        let legacy = LegacyClaims {
            namespace: "default".into(),
            secret_name: "sa1-token".into(),
            service_account_name: "sa1".into(),
            service_account_uid: "u-1".into(),
        };
        let token = s.issue_legacy(&legacy).expect("issue");
        assert!(looks_like_jwt(&token));
        assert_eq!(s.verify_legacy(&token), Ok(legacy.clone()));
        assert_eq!(other.verify_legacy(&token), Err(Error::Signature));
        // Neither kind passes for the other.
        assert_eq!(
            s.verify(&token, 1000),
            Err(Error::Issuer(LEGACY_ISSUER.into()))
        );
        let bound = s.issue(&claims(1000)).expect("issue");
        assert_eq!(s.verify_legacy(&bound), Err(Error::Issuer(ISSUER.into())));
    }

    #[test]
    fn bound_tokens_name_their_object() {
        let s = signer();
        let sa = json!({"metadata": {"name": "sa1", "namespace": "default", "uid": "u-1"}});
        let pod = json!({"metadata": {"name": "web-0", "namespace": "default", "uid": "p-1"}});
        let request = json!({"spec": {"boundObjectRef": {"kind": "Pod", "apiVersion": "v1", "name": "web-0"}}});
        let out = token_request(&s, &sa, &request, Some(&pod), 1000).expect("bound");
        assert_eq!(
            out["spec"]["boundObjectRef"],
            json!({"kind": "Pod", "apiVersion": "v1", "name": "web-0", "uid": "p-1"})
        );
        let token = out["status"]["token"].as_str().expect("token");
        let claims = s.verify(token, 1001).expect("valid");
        let bound = claims.bound.expect("bound claim");
        assert_eq!(
            (bound.kind.as_str(), bound.name.as_str(), bound.uid.as_str()),
            ("Pod", "web-0", "p-1")
        );
        assert_eq!(bound.key("default"), "/core/pods/default/web-0");
        let payload = token.split('.').nth(1).expect("claims part");
        let decoded: Value = serde_json::from_slice(&unb64(payload).expect("b64")).expect("json");
        assert_eq!(
            decoded["kubernetes.io"]["pod"],
            json!({"name": "web-0", "uid": "p-1"})
        );

        let stale = json!({"spec": {"boundObjectRef": {"kind": "Pod", "apiVersion": "v1", "name": "web-0", "uid": "p-0"}}});
        let e = token_request(&s, &sa, &stale, Some(&pod), 1000).expect_err("uid differs");
        assert_eq!(e.code, 409);
        let deployment = json!({"spec": {"boundObjectRef": {"kind": "Deployment", "apiVersion": "apps/v1", "name": "web"}}});
        let e = bound_object_ref(&deployment, "sa1").expect_err("not bindable");
        assert_eq!(e.code, 400);
        assert_eq!(
            e.message,
            "cannot bind token for serviceaccount \"sa1\" to object of type apps/v1, Kind=Deployment"
        );
    }

    #[test]
    fn issued_tokens_verify_until_they_expire() {
        let s = signer();
        let token = s.issue(&claims(1000)).expect("issue");
        assert!(looks_like_jwt(&token));
        assert_eq!(s.verify(&token, 1001).expect("valid"), claims(1000));
        assert_eq!(s.verify(&token, 1600), Err(Error::Expired));
        assert_eq!(s.verify(&token, 800), Err(Error::NotYetValid));
    }

    #[test]
    fn forged_and_foreign_tokens_fail() {
        let (s, other) = (signer(), signer());
        let token = other.issue(&claims(1000)).expect("issue");
        assert_eq!(s.verify(&token, 1001), Err(Error::Signature));
        // same signature, altered claims
        let good = s.issue(&claims(1000)).expect("issue");
        let parts: Vec<&str> = good.split('.').collect();
        let mut c = claims(1000);
        c.name = "admin".into();
        let altered = format!(
            "{}.{}.{}",
            parts[0],
            b64(c.to_json().to_string().as_bytes()),
            parts[2]
        );
        assert_eq!(s.verify(&altered, 1001), Err(Error::Signature));
        assert_eq!(s.verify("a.b", 1001), Err(Error::Malformed));
        let jwks = s.jwks();
        assert_eq!(jwks["keys"][0]["kid"], s.key_id.as_str());
        assert_eq!(jwks["keys"][0]["x"].as_str().map(str::len), Some(43));
    }

    #[test]
    fn token_request_defaults_and_limits() {
        let s = signer();
        let sa = json!({"metadata": {"name": "sa1", "namespace": "default", "uid": "u-1"}});
        let out = token_request(&s, &sa, &json!({"spec": {}}), None, 1000).expect("ok");
        assert_eq!(out["spec"]["expirationSeconds"], 3600);
        assert_eq!(out["spec"]["audiences"], json!([ISSUER]));
        let token = out["status"]["token"].as_str().expect("token");
        let c = s.verify(token, 1001).expect("valid");
        assert_eq!((c.uid.as_str(), c.expires_at), ("u-1", 4600));
        let short = json!({"spec": {"expirationSeconds": 60}});
        let e = token_request(&s, &sa, &short, None, 1000).expect_err("too short");
        assert_eq!(e.code, 422);
        assert!(audiences_accepted(&c, &["other".into()]).is_err());
    }
}
