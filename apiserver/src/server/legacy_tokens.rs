//! The token controller of legacy service-account tokens: a Secret of type
//! `kubernetes.io/service-account-token` annotated
//! `kubernetes.io/service-account.name: SA` gets, once SA exists, the
//! annotation `kubernetes.io/service-account.uid` and the data `token` (a
//! non-expiring JWT of issuer [`super::service_account::LEGACY_ISSUER`] naming the
//! Secret and the ServiceAccount), `ca.crt` (this server's CA) and `namespace`,
//! as kube-controller-manager's tokens controller fills them in.
//!
//! The token authenticates while the Secret holds it and the ServiceAccount
//! lives with the same uid ([`super::auth`]). Secrets whose ServiceAccount does
//! not exist yet are left alone and filled in when it is created (kube deletes
//! them instead); a Secret naming a ServiceAccount uid other than the live
//! one is left as is (its token no longer authenticates).
//!
//! [`run`] watches Secrets and ServiceAccounts from a snapshot, and starts over
//! from a fresh snapshot when its watch falls behind.

use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use futures::StreamExt;
use serde_json::{Value, json};

use super::service_account::{LegacyClaims, Signer};
use crate::registry::patch::PatchType;
use crate::registry::store::{Part, Store, WriteOptions};
use crate::storage::{EventKind, Snapshot};

/// The Secret type this controller fills in.
pub const SECRET_TYPE: &str = "kubernetes.io/service-account-token";
/// The annotation naming the ServiceAccount.
pub const NAME_ANNOTATION: &str = "kubernetes.io/service-account.name";
/// The annotation naming the ServiceAccount's uid.
pub const UID_ANNOTATION: &str = "kubernetes.io/service-account.uid";

const MANAGER: &str = "tokens-controller";

fn str_at<'a>(v: &'a Value, pointer: &str) -> &'a str {
    v.pointer(pointer).and_then(Value::as_str).unwrap_or("")
}

fn annotation<'a>(secret: &'a Value, key: &str) -> &'a str {
    secret
        .pointer("/metadata/annotations")
        .and_then(|a| a.get(key))
        .and_then(Value::as_str)
        .unwrap_or("")
}

/// The merge patch that fills in `secret` (as stored, in `snapshot`), or
/// `None` when there is nothing to do.
pub fn fill(signer: &Signer, ca_pem: &str, snapshot: &Snapshot, secret: &Value) -> Option<Value> {
    if str_at(secret, "/type") != SECRET_TYPE
        || secret.pointer("/metadata/deletionTimestamp").is_some()
    {
        return None;
    }
    let account = annotation(secret, NAME_ANNOTATION);
    let namespace = str_at(secret, "/metadata/namespace");
    let name = str_at(secret, "/metadata/name");
    if account.is_empty() || namespace.is_empty() {
        return None;
    }
    let stored = snapshot.get(&format!("/core/serviceaccounts/{namespace}/{account}"))?;
    let uid = str_at(stored.kept(), "/metadata/uid");
    let named_uid = annotation(secret, UID_ANNOTATION);
    if !named_uid.is_empty() && named_uid != uid {
        return None;
    }
    let data = |k: &str| str_at(secret, &format!("/data/{k}")).is_empty();
    let (needs_token, needs_ca, needs_namespace) =
        (data("token"), data("ca.crt"), data("namespace"));
    if !(needs_token || needs_ca || needs_namespace || named_uid.is_empty()) {
        return None;
    }
    let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
    let mut fields = serde_json::Map::new();
    if needs_token {
        let token = signer
            .issue_legacy(&LegacyClaims {
                namespace: namespace.to_string(),
                secret_name: name.to_string(),
                service_account_name: account.to_string(),
                service_account_uid: uid.to_string(),
            })
            .ok()?;
        fields.insert("token".into(), b64(&token).into());
    }
    if needs_ca {
        fields.insert("ca.crt".into(), b64(ca_pem).into());
    }
    if needs_namespace {
        fields.insert("namespace".into(), b64(namespace).into());
    }
    Some(json!({
        "metadata": {
            "annotations": {UID_ANNOTATION: uid},
            "resourceVersion": str_at(secret, "/metadata/resourceVersion"),
        },
        "data": fields,
    }))
}

async fn reconcile(store: &Arc<Store>, signer: &Signer, ca_pem: &str, key: &str) {
    let snapshot = store.storage.snapshot();
    let Some(kv) = snapshot.get(key) else {
        return;
    };
    // The stored object carries its resourceVersion: the patch's precondition.
    let secret = kv.value();
    let Some(patch) = fill(signer, ca_pem, &snapshot, &secret) else {
        return;
    };
    let Some(info) = store.catalog.find_resource("", "secrets") else {
        return;
    };
    let result = store
        .patch(
            &info,
            Some(str_at(&secret, "/metadata/namespace")),
            str_at(&secret, "/metadata/name"),
            PatchType::Merge,
            &patch,
            Part::Main,
            &WriteOptions::manager(MANAGER),
        )
        .await;
    match result {
        Ok(_) => tracing::debug!(%key, "service-account token filled in"),
        // A newer version exists: its own event brings it back here.
        Err(e) if e.code == 409 || e.code == 404 => {}
        Err(e) => tracing::warn!(%key, error = %e, "filling in a service-account token failed"),
    }
}

/// Secrets of `namespace` that name ServiceAccount `account`.
fn secrets_of(snapshot: &Snapshot, namespace: &str, account: &str) -> Vec<String> {
    snapshot
        .range(&format!("/core/secrets/{namespace}/"), None)
        .filter(|kv| annotation(kv.kept(), NAME_ANNOTATION) == account)
        .map(|kv| kv.key.to_string())
        .collect()
}

/// Runs the controller until the store's watch ends.
pub async fn run(store: Arc<Store>, signer: Signer, ca_pem: String) {
    loop {
        let snapshot = store.storage.snapshot();
        let keys: Vec<String> = snapshot
            .range("/core/secrets/", None)
            .filter(|kv| str_at(kv.kept(), "/type") == SECRET_TYPE)
            .map(|kv| kv.key.to_string())
            .collect();
        for key in keys {
            reconcile(&store, &signer, &ca_pem, &key).await;
        }
        let mut events = match store.storage.watch("/core/".into(), snapshot.revision) {
            Ok(e) => e,
            Err(e) => {
                tracing::warn!(error = %e, "token controller cannot watch; retrying");
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        };
        while let Some(event) = events.next().await {
            let event = match event {
                Ok(e) => e,
                Err(e) => {
                    tracing::info!(error = %e, "token controller fell behind; resyncing");
                    break;
                }
            };
            if event.kind == EventKind::Deleted {
                continue;
            }
            let object = event.object();
            if event.key.starts_with("/core/secrets/") {
                if str_at(&object, "/type") == SECRET_TYPE {
                    reconcile(&store, &signer, &ca_pem, &event.key).await;
                }
            } else if event.key.starts_with("/core/serviceaccounts/") {
                let namespace = str_at(&object, "/metadata/namespace");
                let account = str_at(&object, "/metadata/name");
                for key in secrets_of(&store.storage.snapshot(), namespace, account) {
                    reconcile(&store, &signer, &ca_pem, &key).await;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_typed_annotated_secrets_of_live_accounts_are_filled() {
        let rng = ring::rand::SystemRandom::new();
        let pkcs8 = ring::signature::EcdsaKeyPair::generate_pkcs8(
            &ring::signature::ECDSA_P256_SHA256_FIXED_SIGNING,
            &rng,
        )
        .expect("key");
        let signer = Signer::from_pkcs8(pkcs8.as_ref()).expect("signer");
        let account = json!({"metadata": {"name": "sa1", "namespace": "default", "uid": "u-1"}});
        let key: Arc<str> = Arc::from("/core/serviceaccounts/default/sa1");
        let mut map = imbl::OrdMap::new();
        map.insert(
            key.clone(),
            crate::storage::KeyValue::new(key, Arc::new(account), 1),
        );
        let snapshot = Snapshot { map, revision: 1 };
        let secret = |annotations: Value, kind: &str| {
            json!({"type": kind, "metadata": {"name": "sa1-token", "namespace": "default",
                   "resourceVersion": "7", "annotations": annotations}})
        };
        let filled = fill(
            &signer,
            "CA",
            &snapshot,
            &secret(json!({NAME_ANNOTATION: "sa1"}), SECRET_TYPE),
        )
        .expect("filled");
        assert_eq!(filled["metadata"]["annotations"][UID_ANNOTATION], "u-1");
        assert_eq!(filled["metadata"]["resourceVersion"], "7");
        assert_eq!(filled["data"]["namespace"], "ZGVmYXVsdA==");
        let token = base64::engine::general_purpose::STANDARD
            .decode(filled["data"]["token"].as_str().expect("token"))
            .expect("b64");
        let claims = signer
            .verify_legacy(std::str::from_utf8(&token).expect("utf8"))
            .expect("verifies");
        assert_eq!(claims.secret_name, "sa1-token");
        assert_eq!(claims.service_account_uid, "u-1");
        for (annotations, kind) in [
            (json!({NAME_ANNOTATION: "sa1"}), "Opaque"),
            (json!({NAME_ANNOTATION: "nobody"}), SECRET_TYPE),
            (json!({}), SECRET_TYPE),
            (
                json!({NAME_ANNOTATION: "sa1", UID_ANNOTATION: "u-0"}),
                SECRET_TYPE,
            ),
        ] {
            assert_eq!(
                fill(&signer, "CA", &snapshot, &secret(annotations.clone(), kind)),
                None,
                "{annotations} {kind}"
            );
        }
        let mut complete = secret(
            json!({NAME_ANNOTATION: "sa1", UID_ANNOTATION: "u-1"}),
            SECRET_TYPE,
        );
        complete["data"] = json!({"token": "dA==", "ca.crt": "Yw==", "namespace": "bg=="});
        assert_eq!(fill(&signer, "CA", &snapshot, &complete), None);
    }
}
