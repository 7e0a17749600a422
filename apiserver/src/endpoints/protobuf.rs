//! Kubernetes protobuf request bodies (`application/vnd.kubernetes.protobuf`).
//!
//! A body is the 4-byte magic `k8s\0` followed by a `runtime.Unknown`
//! envelope whose `typeMeta` names the object's `apiVersion` and `kind` and
//! whose `raw` bytes are the object encoded per the Kubernetes
//! `generated.proto` files.
//!
//! Decoding is generic, with no code per kind: `build.rs` compiles the
//! Kubernetes 1.33 `generated.proto` files into a descriptor set, embedded
//! here; the message for a body is found by `apiVersion`/`kind` (see
//! `message_for`), decoded as a [`prost_reflect::DynamicMessage`] and walked
//! into the JSON the API server would have received as `application/json`:
//!
//! * keys are the proto field names, which in Kubernetes are the JSON names
//!   but for a few (`uID`, `aPIGroup`, apiextensions' `$ref`, `$schema` and
//!   `x-kubernetes-…`); keys come in declaration order, map keys sorted (as
//!   Go prints them);
//! * Go structs embedded `json:",inline"`, which protos show as a field
//!   (`Volume.volumeSource`, `IngressRule.ingressRuleValue`, `Probe.handler`,
//!   …), have their fields printed in the embedding object;
//! * absent fields are omitted, and so are empty lists and maps; a present
//!   empty string, zero number or `false` is printed only where Go would
//!   print it: for a pointer field (`replicas: 0`, `runAsUser: 0`,
//!   `automountServiceAccountToken: false`) or a plain one without
//!   `omitempty` (`PriorityClass.value`, `RoleRef.apiGroup`), not for
//!   `omitempty` plain fields (`generation`, `generateName`, `paused`), which
//!   Go writes to protobuf even when zero;
//! * a present nested message is kept, even when empty (`"status": {}`), as
//!   Go prints a non-pointer struct; an absent one (a nil pointer) is not;
//! * `bytes` and `map<string, bytes>` values become base64 strings; 64-bit
//!   integers become JSON numbers; list elements and map values are kept even
//!   when empty (`"apiGroups": [""]`);
//! * apimachinery's special types get their JSON form: `Time` (RFC 3339,
//!   seconds), `MicroTime` (RFC 3339, microseconds) — a zero one is omitted
//!   as `creationTimestamp: null` would be —, `Duration` (a Go duration
//!   string), `IntOrString` (a number or a string), `Quantity` (a string),
//!   `RawExtension`, `FieldsV1` and apiextensions' `JSON` (the JSON they
//!   carry; a nested `k8s\0` body is decoded in turn), `Verbs` (a list), and
//!   apiextensions' `JSONSchemaPropsOr{Array,Bool,StringArray}` (one member).
//!
//! The `.proto` files say nothing of Go's JSON names, inline embeddings,
//! pointers or `omitempty`; `protobuf_fields.rs`, generated from the 1.33 Go
//! types by `tools/gen_protobuf_fields.py`, lists what they leave out.
//!
//! Fields a newer client sends that 1.33 does not know are dropped, as the
//! Go API server's protobuf decoder drops them.

use std::collections::HashMap;
use std::sync::OnceLock;

use base64::Engine as _;
use prost::Message as _;
use prost_reflect::{
    DescriptorPool, DynamicMessage, MapKey, MessageDescriptor, ReflectMessage as _, Value,
};
use serde_json::{Map, Number, Value as Json};

/// The media type of Kubernetes protobuf bodies.
pub const MEDIA_TYPE: &str = "application/vnd.kubernetes.protobuf";

/// The prefix of every Kubernetes protobuf body.
const MAGIC: &[u8; 4] = b"k8s\0";

/// The binary `FileDescriptorSet` of the Kubernetes 1.33 protos, made by `build.rs`.
static DESCRIPTOR_SET: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/k8s-v1_33.fds"));

/// Why a protobuf body could not be decoded.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    /// The body does not start with `k8s\0`.
    #[error("not a Kubernetes protobuf body: it does not start with the magic bytes \"k8s\\0\"")]
    BadMagic,
    /// The bytes after the magic are not a `runtime.Unknown` message.
    #[error("malformed protobuf envelope (runtime.Unknown): {0}")]
    Envelope(#[from] prost::DecodeError),
    /// The envelope does not name the object's `apiVersion` and `kind`.
    #[error("the protobuf envelope has no {0}")]
    MissingTypeMeta(&'static str),
    /// The envelope says the object is compressed or encoded some other way.
    #[error("unsupported {field} {value:?} in the protobuf envelope")]
    UnsupportedEncoding {
        /// `contentEncoding` or `contentType`.
        field: &'static str,
        /// What the envelope said.
        value: String,
    },
    /// No Kubernetes 1.33 message matches the `apiVersion` and `kind`.
    #[error("no protobuf schema for apiVersion {api_version:?}, kind {kind:?}")]
    UnknownKind {
        /// The envelope's `apiVersion`.
        api_version: String,
        /// The envelope's `kind`.
        kind: String,
    },
    /// The object bytes do not decode as the message of the named kind.
    #[error("malformed {message} in protobuf body: {source}")]
    Object {
        /// The full protobuf message name.
        message: String,
        /// What was wrong.
        source: prost::DecodeError,
    },
    /// A decoded value has no JSON form (e.g. an embedded object that is not JSON).
    #[error("invalid {what} in protobuf body: {detail}")]
    InvalidValue {
        /// Which kind of value.
        what: &'static str,
        /// What was wrong.
        detail: String,
    },
    /// The embedded descriptor set does not load (a build problem).
    #[error("the built-in Kubernetes protobuf schema does not load: {0}")]
    Schema(String),
}

/// The `runtime.Unknown` envelope.
#[derive(Clone, PartialEq, prost::Message)]
struct Unknown {
    /// The object's `apiVersion` and `kind`.
    #[prost(message, optional, tag = "1")]
    type_meta: Option<TypeMeta>,
    /// The object, encoded.
    #[prost(bytes = "vec", optional, tag = "2")]
    raw: Option<Vec<u8>>,
    /// Unset for plain protobuf.
    #[prost(string, optional, tag = "3")]
    content_encoding: Option<String>,
    /// Unset, or the protobuf media type.
    #[prost(string, optional, tag = "4")]
    content_type: Option<String>,
}

/// `runtime.TypeMeta`.
#[derive(Clone, PartialEq, prost::Message)]
struct TypeMeta {
    /// The group/version.
    #[prost(string, optional, tag = "1")]
    api_version: Option<String>,
    /// The kind.
    #[prost(string, optional, tag = "2")]
    kind: Option<String>,
}

/// The loaded schema and the messages indexed by kind.
struct Schema {
    /// Message descriptors by message name (the Kubernetes kind).
    by_kind: HashMap<String, Vec<MessageDescriptor>>,
}

/// The schema, loaded on first use.
fn schema() -> Result<&'static Schema, DecodeError> {
    static SCHEMA: OnceLock<Result<Schema, String>> = OnceLock::new();
    SCHEMA
        .get_or_init(|| {
            let pool = DescriptorPool::decode(DESCRIPTOR_SET).map_err(|e| e.to_string())?;
            let mut by_kind: HashMap<String, Vec<MessageDescriptor>> = HashMap::new();
            for message in pool.all_messages() {
                by_kind
                    .entry(message.name().to_string())
                    .or_default()
                    .push(message);
            }
            Ok(Schema { by_kind })
        })
        .as_ref()
        .map_err(|e| DecodeError::Schema(e.clone()))
}

/// Decodes a `k8s\0`-enveloped protobuf object into its JSON form.
pub fn decode(body: &[u8]) -> Result<Json, DecodeError> {
    decode_at(body, 0)
}

/// How many `k8s\0` bodies may nest in `RawExtension`s (each one a recursion).
const MAX_NESTED_BODIES: usize = 8;

/// [`decode`] for a body nested `depth` `RawExtension`s deep.
fn decode_at(body: &[u8], depth: usize) -> Result<Json, DecodeError> {
    let envelope = body.strip_prefix(MAGIC).ok_or(DecodeError::BadMagic)?;
    let unknown = Unknown::decode(envelope)?;
    if let Some(encoding) = unknown.content_encoding.filter(|e| !e.is_empty()) {
        return Err(DecodeError::UnsupportedEncoding {
            field: "contentEncoding",
            value: encoding,
        });
    }
    if let Some(content_type) = unknown
        .content_type
        .filter(|t| !t.is_empty() && t != MEDIA_TYPE)
    {
        return Err(DecodeError::UnsupportedEncoding {
            field: "contentType",
            value: content_type,
        });
    }
    let type_meta = unknown.type_meta.unwrap_or_default();
    let api_version = type_meta
        .api_version
        .filter(|v| !v.is_empty())
        .ok_or(DecodeError::MissingTypeMeta("apiVersion"))?;
    let kind = type_meta
        .kind
        .filter(|k| !k.is_empty())
        .ok_or(DecodeError::MissingTypeMeta("kind"))?;

    let descriptor =
        message_for(schema()?, &api_version, &kind).ok_or_else(|| DecodeError::UnknownKind {
            api_version: api_version.clone(),
            kind: kind.clone(),
        })?;
    let raw = unknown.raw.unwrap_or_default();
    let message = DynamicMessage::decode(descriptor.clone(), raw.as_slice()).map_err(|source| {
        DecodeError::Object {
            message: descriptor.full_name().to_string(),
            source,
        }
    })?;

    let mut object = Map::new();
    object.insert("apiVersion".into(), Json::String(api_version));
    object.insert("kind".into(), Json::String(kind));
    Converter { depth }.fields_into(&message, &mut object)?;
    Ok(Json::Object(object))
}

/// Finds the message for `apiVersion` (`group/version` or `version`) and `kind`.
///
/// Kubernetes proto packages end in `<group-segment>.<version>` (e.g.
/// `…api.apps.v1`, `…api.rbac.v1`, `…apis.meta.v1`) and message names are the
/// kinds; see [`group_matches`] for how a group is matched to its segment.
fn message_for<'a>(
    schema: &'a Schema,
    api_version: &str,
    kind: &str,
) -> Option<&'a MessageDescriptor> {
    let (group, version) = api_version.rsplit_once('/').unwrap_or(("", api_version));
    let mut apimachinery = None;
    for message in schema.by_kind.get(kind)? {
        let mut segments = message.package_name().rsplit('.');
        if segments.next() != Some(version) {
            continue;
        }
        match segments.next() {
            Some(segment) if group_matches(group, segment) => {
                // A group's own kind wins over apimachinery's (`v1` `Status` and the like).
                if segment != "meta" {
                    return Some(message);
                }
                apimachinery.get_or_insert(message);
            }
            _ => {}
        }
    }
    apimachinery
}

/// Whether API `group` is the one whose protos live in package segment `segment`.
///
/// Only Kubernetes' own groups have protos: the core group `""` (segment
/// `core`, or `meta` for apimachinery's kinds served as `v1`), the dotless
/// legacy groups (`apps`, `batch`, …: the segment is the group) and
/// `*.k8s.io` groups, whose segment is their first label (`rbac` for
/// `rbac.authorization.k8s.io`, `flowcontrol` for
/// `flowcontrol.apiserver.k8s.io`), their labels joined by `_`
/// (`custom_metrics` for `custom.metrics.k8s.io`) or reversed and joined
/// (`apiserverinternal` for `internal.apiserver.k8s.io`).
fn group_matches(group: &str, segment: &str) -> bool {
    if group.is_empty() {
        return segment == "core" || segment == "meta";
    }
    if !group.contains('.') {
        return group == segment;
    }
    let Some(name) = group.strip_suffix(".k8s.io") else {
        return false;
    };
    let labels: Vec<&str> = name.split('.').collect();
    let reversed: String = labels.iter().rev().copied().collect();
    labels.first() == Some(&segment) || labels.join("_") == segment || reversed == segment
}

/// Walks decoded messages into JSON.
struct Converter {
    /// How many `k8s\0` bodies enclose the one being walked.
    depth: usize,
}

impl Converter {
    /// Adds the JSON form of each field of `message` worth printing to `out`.
    fn fields_into(
        &self,
        message: &DynamicMessage,
        out: &mut Map<String, Json>,
    ) -> Result<(), DecodeError> {
        let descriptor = message.descriptor();
        let message_name = table_name(&descriptor);
        // Declaration order, which is the Go struct's (and so Kubernetes' JSON) order.
        for field in descriptor.descriptor_proto().field.iter() {
            let Some(field) = u32::try_from(field.number())
                .ok()
                .and_then(|n| descriptor.get_field(n))
            else {
                continue;
            };
            if !message.has_field(&field) {
                continue;
            }
            let value = message.get_field(&field);
            if let Value::Message(embedded) = value.as_ref()
                && is_inline(message_name, field.name())
            {
                self.fields_into(embedded, out)?;
                continue;
            }
            let json = match value.as_ref() {
                Value::List(items) if items.is_empty() => None,
                Value::Map(entries) if entries.is_empty() => None,
                value if is_zero_scalar(value) && !prints_zero(message_name, field.name()) => None,
                value => self.value(value)?,
            };
            if let Some(json) = json {
                out.insert(json_name(message_name, field.name()), json);
            }
        }
        Ok(())
    }

    /// The JSON form of a value (a list element, map value or kept field), or
    /// `None` for a special message whose Go form is `null` (a zero `Time`).
    fn value(&self, value: &Value) -> Result<Option<Json>, DecodeError> {
        Ok(Some(match value {
            Value::Bool(b) => Json::Bool(*b),
            Value::I32(n) => Json::from(*n),
            Value::I64(n) => Json::from(*n),
            Value::U32(n) => Json::from(*n),
            Value::U64(n) => Json::from(*n),
            Value::F32(f) => float(f64::from(*f))?,
            Value::F64(f) => float(*f)?,
            Value::String(s) => Json::String(s.clone()),
            Value::Bytes(b) => Json::String(base64::engine::general_purpose::STANDARD.encode(b)),
            // Kubernetes' protos have no enums; print an unnamed number as is.
            Value::EnumNumber(n) => Json::from(*n),
            Value::Message(m) => return self.message(m),
            Value::List(items) => Json::Array(
                items
                    .iter()
                    .map(|item| Ok(self.value(item)?.unwrap_or(Json::Null)))
                    .collect::<Result<_, DecodeError>>()?,
            ),
            Value::Map(entries) => {
                let mut sorted: Vec<(String, &Value)> =
                    entries.iter().map(|(k, v)| (map_key(k), v)).collect();
                sorted.sort_by(|a, b| a.0.cmp(&b.0));
                let mut map = Map::new();
                for (key, v) in sorted {
                    map.insert(key, self.value(v)?.unwrap_or(Json::Null));
                }
                Json::Object(map)
            }
        }))
    }

    /// The JSON form of a message: a special type's own form, or an object.
    fn message(&self, message: &DynamicMessage) -> Result<Option<Json>, DecodeError> {
        let descriptor = message.descriptor();
        // Packages are `k8s.io.apimachinery…` upstream, `apimachinery…` in some copies.
        let name = table_name(&descriptor);
        // Special types are read by field number: their proto field names vary (`Raw`/`raw`).
        match name {
            // { seconds = 1, nanos = 2 }
            "apimachinery.pkg.apis.meta.v1.Time" => time(message, false),
            "apimachinery.pkg.apis.meta.v1.MicroTime" => time(message, true),
            // { duration = 1 } in nanoseconds
            "apimachinery.pkg.apis.meta.v1.Duration" => {
                Ok(Some(Json::String(go_duration(int(message, 1)))))
            }
            // { type = 1 (0 int, 1 string), intVal = 2, strVal = 3 }
            "apimachinery.pkg.util.intstr.IntOrString" => Ok(Some(if int(message, 1) == 1 {
                Json::String(string(message, 3))
            } else {
                Json::from(int(message, 2))
            })),
            // { string = 1 }
            "apimachinery.pkg.api.resource.Quantity"
            | "apimachinery.pkg.api.resource.QuantityValue" => {
                Ok(Some(Json::String(string(message, 1))))
            }
            // { raw = 1 } holding JSON
            "apimachinery.pkg.runtime.RawExtension"
            | "apimachinery.pkg.apis.meta.v1.FieldsV1"
            | "apiextensions_apiserver.pkg.apis.apiextensions.v1.JSON"
            | "apiextensions_apiserver.pkg.apis.apiextensions.v1beta1.JSON" => {
                self.embedded_json(&bytes(message, 1))
            }
            // { items = 1 }
            "apimachinery.pkg.apis.meta.v1.Verbs" => self
                .field_json(message, 1)
                .map(|items| Some(items.unwrap_or(Json::Array(Vec::new())))),
            _ if descriptor.package_name().contains("apiextensions") => {
                self.json_schema_or(message, descriptor.name())
            }
            _ => self.object(message).map(Some),
        }
    }

    /// A message as a JSON object of its fields.
    fn object(&self, message: &DynamicMessage) -> Result<Json, DecodeError> {
        let mut map = Map::new();
        self.fields_into(message, &mut map)?;
        Ok(Json::Object(map))
    }

    /// apiextensions' `JSONSchemaPropsOr…` unions, which Go prints as one of
    /// their members; any other apiextensions message is an object.
    fn json_schema_or(
        &self,
        message: &DynamicMessage,
        name: &str,
    ) -> Result<Option<Json>, DecodeError> {
        match name {
            // An array of schemas if there are any, else the single schema.
            "JSONSchemaPropsOrArray" => match self.field_json(message, 2)? {
                Some(schemas) => Ok(Some(schemas)),
                None => Ok(Some(self.field_json(message, 1)?.unwrap_or(Json::Null))),
            },
            // The schema if there is one, else the boolean.
            "JSONSchemaPropsOrBool" => match self.field_json(message, 2)? {
                Some(schema) => Ok(Some(schema)),
                None => Ok(Some(Json::Bool(bool_field(message, 1)))),
            },
            // The string list if there is one, else the schema.
            "JSONSchemaPropsOrStringArray" => match self.field_json(message, 2)? {
                Some(list) => Ok(Some(list)),
                None => Ok(Some(self.field_json(message, 1)?.unwrap_or(Json::Null))),
            },
            _ => self.object(message).map(Some),
        }
    }

    /// The JSON an embedded-object field carries: parsed as JSON, or decoded
    /// as a nested `k8s\0` body; `None` when it is empty (Go prints `null`).
    fn embedded_json(&self, raw: &[u8]) -> Result<Option<Json>, DecodeError> {
        if raw.is_empty() {
            return Ok(None);
        }
        if raw.starts_with(MAGIC) {
            if self.depth >= MAX_NESTED_BODIES {
                return Err(DecodeError::InvalidValue {
                    what: "embedded object",
                    detail: format!("more than {MAX_NESTED_BODIES} protobuf bodies nested"),
                });
            }
            return decode_at(raw, self.depth + 1).map(Some);
        }
        serde_json::from_slice(raw)
            .map(Some)
            .map_err(|e| DecodeError::InvalidValue {
                what: "embedded object",
                detail: format!("not JSON: {e}"),
            })
    }

    /// The JSON form of field number `number` of `message` if it is set and not empty.
    fn field_json(
        &self,
        message: &DynamicMessage,
        number: u32,
    ) -> Result<Option<Json>, DecodeError> {
        let Some(field) = message.descriptor().get_field(number) else {
            return Ok(None);
        };
        if !message.has_field(&field) {
            return Ok(None);
        }
        match message.get_field(&field).as_ref() {
            Value::List(items) if items.is_empty() => Ok(None),
            value => self.value(value),
        }
    }
}

/// Whether `value` is an empty string or byte string, a zero number or `false`.
fn is_zero_scalar(value: &Value) -> bool {
    match value {
        Value::Bool(b) => !b,
        Value::I32(n) => *n == 0,
        Value::I64(n) => *n == 0,
        Value::U32(n) => *n == 0,
        Value::U64(n) => *n == 0,
        Value::F32(f) => *f == 0.0,
        Value::F64(f) => *f == 0.0,
        Value::String(s) => s.is_empty(),
        Value::Bytes(b) => b.is_empty(),
        _ => false,
    }
}

/// A message's full name as the generated tables spell it (without `k8s.io.`).
fn table_name(message: &MessageDescriptor) -> &str {
    let full_name = message.full_name();
    full_name.strip_prefix("k8s.io.").unwrap_or(full_name)
}

/// Whether (`message`, `field`) is in a sorted generated table.
fn in_table(table: &[(&str, &str)], message: &str, field: &str) -> bool {
    table
        .binary_search_by(|(m, f)| (*m, *f).cmp(&(message, field)))
        .is_ok()
}

/// Whether Kubernetes prints field `field` of `message` when it is set to its
/// zero value: a Go pointer, or a plain field without `omitempty`.
///
/// Go writes every plain field to protobuf, zero or not, and a pointer only
/// when set, so a present zero is printed exactly for these fields and
/// omitted for the others, as `omitempty` does.
fn prints_zero(message: &str, field: &str) -> bool {
    in_table(fields::PRINT_ZERO, message, field)
}

/// Whether field `field` of `message` is an embedded Go struct
/// (`json:",inline"`), whose fields Go prints in the embedding object.
fn is_inline(message: &str, field: &str) -> bool {
    in_table(fields::INLINE, message, field)
}

/// The JSON key of proto field `field` of `message`: the proto name, which in
/// Kubernetes is the JSON name but for a few (`uID`, `aPIGroup`, `$ref`, …).
fn json_name(message: &str, field: &str) -> String {
    fields::RENAMED
        .binary_search_by(|(m, f, _)| (*m, *f).cmp(&(message, field)))
        .ok()
        .and_then(|i| fields::RENAMED.get(i))
        .map_or(field, |(_, _, json)| json)
        .to_string()
}

/// A map key as a JSON object key.
fn map_key(key: &MapKey) -> String {
    match key {
        MapKey::Bool(b) => b.to_string(),
        MapKey::I32(n) => n.to_string(),
        MapKey::I64(n) => n.to_string(),
        MapKey::U32(n) => n.to_string(),
        MapKey::U64(n) => n.to_string(),
        MapKey::String(s) => s.clone(),
    }
}

/// A float as a JSON number (JSON has no NaN or infinity).
fn float(f: f64) -> Result<Json, DecodeError> {
    Number::from_f64(f)
        .map(Json::Number)
        .ok_or_else(|| DecodeError::InvalidValue {
            what: "number",
            detail: format!("{f} has no JSON form"),
        })
}

/// Integer field number `number` of `message` (0 when unset or not an integer).
fn int(message: &DynamicMessage, number: u32) -> i64 {
    match message.get_field_by_number(number).as_deref() {
        Some(Value::I32(n)) => i64::from(*n),
        Some(Value::I64(n)) => *n,
        Some(Value::U32(n)) => i64::from(*n),
        Some(Value::U64(n)) => i64::try_from(*n).unwrap_or(i64::MAX),
        _ => 0,
    }
}

/// Boolean field number `number` of `message` (false when unset).
fn bool_field(message: &DynamicMessage, number: u32) -> bool {
    matches!(
        message.get_field_by_number(number).as_deref(),
        Some(Value::Bool(true))
    )
}

/// String field number `number` of `message` (empty when unset).
fn string(message: &DynamicMessage, number: u32) -> String {
    match message.get_field_by_number(number).as_deref() {
        Some(Value::String(s)) => s.clone(),
        _ => String::new(),
    }
}

/// Bytes field number `number` of `message` (empty when unset).
fn bytes(message: &DynamicMessage, number: u32) -> Vec<u8> {
    match message.get_field_by_number(number).as_deref() {
        Some(Value::Bytes(b)) => b.to_vec(),
        _ => Vec::new(),
    }
}

/// A `Time` (`micro == false`) or `MicroTime` as Kubernetes prints it:
/// RFC 3339 in UTC, with microseconds for `MicroTime`; `None` for the zero time.
fn time(message: &DynamicMessage, micro: bool) -> Result<Option<Json>, DecodeError> {
    let seconds = int(message, 1);
    let nanos = int(message, 2);
    if seconds == 0 && nanos == 0 {
        return Ok(None);
    }
    let invalid = |detail: String| DecodeError::InvalidValue {
        what: "time",
        detail,
    };
    let nanos = i32::try_from(nanos).map_err(|_| invalid(format!("nanos {nanos} out of range")))?;
    let timestamp = jiff::Timestamp::new(seconds, nanos).map_err(|e| invalid(e.to_string()))?;
    let mut text = timestamp.strftime("%Y-%m-%dT%H:%M:%S").to_string();
    if micro {
        text.push_str(&format!(".{:06}", timestamp.subsec_microsecond()));
    }
    text.push('Z');
    Ok(Some(Json::String(text)))
}

/// Nanoseconds as Go's `time.Duration.String()` prints them (`1h0m0s`, `1.5s`, `300ms`).
fn go_duration(nanos: i64) -> String {
    /// `.digits` of `value / scale`'s fraction, trailing zeros trimmed; empty for none.
    fn fraction(value: u64, scale: u64) -> String {
        if value == 0 {
            return String::new();
        }
        let width = scale.ilog10() as usize;
        let digits = format!("{value:0width$}");
        format!(".{}", digits.trim_end_matches('0'))
    }
    if nanos == 0 {
        return "0s".to_string();
    }
    let u = nanos.unsigned_abs();
    let body = if u < 1_000_000_000 {
        let (scale, unit) = if u < 1_000 {
            (1, "ns")
        } else if u < 1_000_000 {
            (1_000, "µs")
        } else {
            (1_000_000, "ms")
        };
        format!("{}{}{unit}", u / scale, fraction(u % scale, scale))
    } else {
        let total = u / 1_000_000_000;
        let seconds = format!(
            "{}{}s",
            total % 60,
            fraction(u % 1_000_000_000, 1_000_000_000)
        );
        match (total / 3600, total / 60 % 60) {
            (0, 0) => seconds,
            (0, m) => format!("{m}m{seconds}"),
            (h, m) => format!("{h}h{m}m{seconds}"),
        }
    };
    if nanos < 0 { format!("-{body}") } else { body }
}

#[path = "protobuf_fields.rs"]
mod fields;

#[cfg(test)]
#[path = "protobuf_tests.rs"]
mod tests;
