//! CRD conversion webhooks: a `ConversionReview` (apiextensions.k8s.io/v1) with the
//! objects and the desired apiVersion, checked as kube-apiserver checks the answer.

use std::time::Duration;

use serde_json::{Value, json};

use crate::storage::Snapshot;
use crate::webhook_client;

/// Converts `objects` to `desired` (`group/version`) through the CRD's webhook.
pub async fn webhook(
    client_config: &Value,
    snapshot: &Snapshot,
    objects: Vec<Value>,
    desired: &str,
) -> Result<Vec<Value>, String> {
    if objects.is_empty() {
        return Ok(objects);
    }
    let target = webhook_client::resolve(client_config, snapshot)
        .await
        .map_err(|e| e.to_string())?;
    let uid = uuid::Uuid::new_v4().to_string();
    let review = json!({
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "ConversionReview",
        "request": {"uid": uid, "desiredAPIVersion": desired, "objects": objects},
    });
    let answer = webhook_client::post_json(&target, &review, Duration::from_secs(30))
        .await
        .map_err(|e| e.to_string())?;
    check(&answer, &uid, &objects, desired)
}

/// Validates a ConversionReview answer and keeps the server-owned metadata.
fn check(
    answer: &Value,
    uid: &str,
    objects: &[Value],
    desired: &str,
) -> Result<Vec<Value>, String> {
    let response = answer
        .get("response")
        .ok_or("conversion webhook answered without a response")?;
    if response.get("uid").and_then(Value::as_str) != Some(uid) {
        return Err(format!(
            "conversion webhook answered for uid {:?}, expected {uid}",
            response.get("uid")
        ));
    }
    if response.pointer("/result/status").and_then(Value::as_str) != Some("Success") {
        let message = response
            .pointer("/result/message")
            .and_then(Value::as_str)
            .unwrap_or("conversion failed");
        return Err(format!("conversion webhook failed: {message}"));
    }
    let converted = response
        .get("convertedObjects")
        .and_then(Value::as_array)
        .ok_or("conversion webhook returned no convertedObjects")?;
    if converted.len() != objects.len() {
        return Err(format!(
            "conversion webhook returned {} objects for {} sent",
            converted.len(),
            objects.len()
        ));
    }
    converted
        .iter()
        .zip(objects)
        .map(|(new, old)| {
            if new.get("apiVersion").and_then(Value::as_str) != Some(desired) {
                return Err(format!(
                    "conversion webhook returned apiVersion {:?}, expected {desired}",
                    new.get("apiVersion")
                ));
            }
            let mut out = new.clone();
            // Only labels and annotations may change in metadata.
            let mut meta = old.get("metadata").cloned().unwrap_or_else(|| json!({}));
            for field in ["labels", "annotations"] {
                match new.pointer(&format!("/metadata/{field}")) {
                    Some(v) => meta[field] = v.clone(),
                    None => {
                        if let Some(m) = meta.as_object_mut() {
                            m.remove(field);
                        }
                    }
                }
            }
            out["metadata"] = meta;
            Ok(out)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_are_checked() {
        let old = vec![
            json!({"apiVersion": "x.io/v1", "metadata": {"name": "a", "uid": "u"}, "spec": {"a": 1}}),
        ];
        let ok = json!({"response": {"uid": "1", "result": {"status": "Success"},
            "convertedObjects": [{"apiVersion": "x.io/v2", "metadata": {"name": "a", "uid": "changed", "labels": {"l": "v"}}, "spec": {"b": 1}}]}});
        let out = check(&ok, "1", &old, "x.io/v2").expect("converted");
        assert_eq!(out[0]["metadata"]["uid"], "u");
        assert_eq!(out[0]["metadata"]["labels"]["l"], "v");
        assert_eq!(out[0]["spec"]["b"], 1);
        assert!(check(&ok, "2", &old, "x.io/v2").is_err());
        assert!(check(&ok, "1", &old, "x.io/v3").is_err());
        let failed =
            json!({"response": {"uid": "1", "result": {"status": "Failure", "message": "nope"}}});
        assert_eq!(
            check(&failed, "1", &old, "x.io/v2").err().as_deref(),
            Some("conversion webhook failed: nope")
        );
    }
}
