//! Kubernetes protobuf request bodies (`application/vnd.kubernetes.protobuf`).

/// Why a protobuf body could not be decoded.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    #[error("protobuf request bodies are not supported by this build; send JSON or YAML")]
    Unsupported,
}

/// Decodes a `k8s\0`-enveloped protobuf object into its JSON form.
pub fn decode(_body: &[u8]) -> Result<serde_json::Value, DecodeError> {
    Err(DecodeError::Unsupported)
}
