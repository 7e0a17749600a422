//! Small schemars helpers for fields whose CRD schema cannot be derived from
//! the Rust type: arbitrary embedded JSON (`x-kubernetes-preserve-unknown-fields`)
//! and the like. Used through `#[schemars(schema_with = "...")]`.

use schemars::{Schema, SchemaGenerator, json_schema};

/// Any JSON value, kept as is (Karmada's `apiextensionsv1.JSON` fields such as
/// plaintext `value`).
pub fn preserve_unknown(_: &mut SchemaGenerator) -> Schema {
    json_schema!({ "x-kubernetes-preserve-unknown-fields": true })
}

/// A JSON object with unknown fields kept (Karmada's `runtime.RawExtension`
/// fields such as Work manifests and aggregated statuses).
pub fn raw_object(_: &mut SchemaGenerator) -> Schema {
    json_schema!({ "type": "object", "x-kubernetes-preserve-unknown-fields": true })
}

/// A list of arbitrary objects (Work `manifests`).
pub fn raw_object_list(_: &mut SchemaGenerator) -> Schema {
    json_schema!({
        "type": "array",
        "items": { "type": "object", "x-kubernetes-preserve-unknown-fields": true }
    })
}

/// A Go `int` field: an integer without a format, as controller-gen emits it
/// (e.g. spread constraint `minGroups`).
pub fn go_int(_: &mut SchemaGenerator) -> Schema {
    json_schema!({ "type": "integer" })
}
