//! [`Store`]: the one generic implementation of every verb for every resource.
//!
//! Handlers call it with a [`ResourceInfo`] and already-decoded input; it applies
//! Kubernetes' metadata rules, talks to [`Storage`], and turns storage errors into
//! `Status` errors — the only place where that happens.

use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use futures::StreamExt;
use futures::stream::BoxStream;
use serde_json::{Value, json};

use super::meta::{self, meta_str};
use super::patch::{self, PatchType};
use super::selector::{FieldSelector, LabelSelector};
use super::{Catalog, ResourceInfo};
use super::{
    apply, cluster, conversion, crd, defaults, openapi_schemas, schema, typed, validation,
};
use crate::admission;
use crate::server::auth::User;
use crate::status::{ApiError, Cause, Result};
use crate::storage::{self, EventKind, KeyValue, Precondition, Revision, Snapshot, Storage};

/// Namespaces that always exist and may not be deleted.
pub const SYSTEM_NAMESPACES: [&str; 3] = ["default", "kube-system", "kube-public"];

/// Options of a list request.
#[derive(Debug, Clone, Default)]
pub struct ListOptions {
    pub labels: LabelSelector,
    pub fields: FieldSelector,
    pub limit: Option<usize>,
    pub continue_token: Option<String>,
    pub resource_version: Option<String>,
    pub resource_version_match: Option<String>,
}

/// The answer to a list: items, the revision they are consistent at, and paging.
pub struct ListResult {
    pub items: Vec<Object>,
    pub revision: Revision,
    pub continue_token: Option<String>,
    pub remaining: Option<usize>,
}

/// Options of a watch request.
#[derive(Debug, Clone, Default)]
pub struct WatchOptions {
    pub labels: LabelSelector,
    pub fields: FieldSelector,
    pub resource_version: Option<String>,
    pub send_initial_events: bool,
    pub allow_bookmarks: bool,
}

/// An object a read returns: as stored, or as a value (converted for the
/// request, or just written).
#[derive(Debug, Clone)]
pub enum Object {
    /// As stored: its JSON, served as it is, and its parsed form when at hand.
    Json {
        json: bytes::Bytes,
        parsed: Option<Arc<Value>>,
    },
    Value(Arc<Value>),
}

impl Object {
    /// The object parsed (from its JSON, unless at hand).
    pub fn value(&self) -> Arc<Value> {
        match self {
            Object::Json {
                parsed: Some(v), ..
            }
            | Object::Value(v) => v.clone(),
            Object::Json { json, parsed: None } => Arc::new(storage::parse(json)),
        }
    }

    /// The stored JSON, when the object is served as stored.
    pub fn json(&self) -> Option<&bytes::Bytes> {
        match self {
            Object::Json { json, .. } => Some(json),
            Object::Value(_) => None,
        }
    }

    /// `apiVersion` and `metadata.resourceVersion`, without parsing the whole
    /// object when it is JSON.
    pub fn head(&self) -> Head {
        match self {
            Object::Json {
                parsed: Some(v), ..
            }
            | Object::Value(v) => Head {
                api_version: v.get("apiVersion").and_then(Value::as_str).map(Into::into),
                metadata: Some(HeadMeta {
                    resource_version: Some(meta_str(v, "resourceVersion").into()),
                }),
            },
            Object::Json { json, parsed: None } => serde_json::from_slice(json).unwrap_or_default(),
        }
    }
}

impl From<&storage::Event> for Object {
    fn from(event: &storage::Event) -> Self {
        Object::Json {
            json: event.json.bytes(),
            parsed: event.parsed().cloned(),
        }
    }
}

/// What [`Object::head`] reads: serde skips every other field without
/// building it.
#[derive(Debug, Default, serde::Deserialize)]
pub struct Head {
    #[serde(rename = "apiVersion")]
    pub api_version: Option<String>,
    pub metadata: Option<HeadMeta>,
}

#[derive(Debug, Default, serde::Deserialize)]
pub struct HeadMeta {
    #[serde(rename = "resourceVersion")]
    pub resource_version: Option<String>,
}

impl Head {
    pub fn resource_version(&self) -> &str {
        self.metadata
            .as_ref()
            .and_then(|m| m.resource_version.as_deref())
            .unwrap_or("")
    }
}

/// One event of a watch as the registry reports it.
#[derive(Debug, Clone)]
pub enum WatchEvent {
    Added(Object),
    Modified(Object),
    Deleted(Object),
    /// The initial events have all been sent (`sendInitialEvents=true`).
    InitialEventsEnd(Revision),
    /// Progress: everything up to this revision has been seen (not sent to clients).
    Progress(Revision),
    Error(ApiError),
}

/// What happens to an object's dependents when it is deleted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Propagation {
    /// Delete the object now; the garbage collector deletes dependents afterwards.
    #[default]
    Background,
    /// Delete dependents first (the object waits with the `foregroundDeletion` finalizer).
    Foreground,
    /// Keep dependents, removing their references (the `orphan` finalizer).
    Orphan,
}

/// Options of a delete request (the `DeleteOptions` body and query).
#[derive(Debug, Clone, Default)]
pub struct DeleteOptions {
    pub dry_run: bool,
    /// The requesting user, for admission; none for the server's own writes.
    pub user: Option<Arc<User>>,
    pub propagation: Propagation,
    pub precondition_uid: Option<String>,
    pub precondition_resource_version: Option<String>,
}

/// Options every write carries.
#[derive(Debug, Clone, Default)]
pub struct WriteOptions {
    /// `dryRun=All`: run every check, store nothing.
    pub dry_run: bool,
    /// Who is writing (`fieldManager`), for `managedFields`.
    pub field_manager: String,
    /// Server-side apply: take over conflicting fields.
    pub force: bool,
    /// What to do with unknown fields.
    pub field_validation: FieldValidation,
    /// Warnings for the client (sent as `Warning` headers).
    pub warnings: Warnings,
    /// The requesting user, for admission; none for the server's own writes.
    pub user: Option<Arc<User>>,
}

/// `fieldValidation`: how unknown fields in a request are treated.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum FieldValidation {
    Ignore,
    /// Drop them and warn (the server's default).
    #[default]
    Warn,
    /// Refuse the request.
    Strict,
}

/// Warnings collected while serving one request.
#[derive(Debug, Clone, Default)]
pub struct Warnings(Arc<std::sync::Mutex<Vec<String>>>);

impl Warnings {
    pub fn push(&self, warning: impl Into<String>) {
        self.0.lock().expect("warnings lock").push(warning.into());
    }

    pub fn take(&self) -> Vec<String> {
        std::mem::take(&mut *self.0.lock().expect("warnings lock"))
    }
}

impl WriteOptions {
    pub fn manager(name: impl Into<String>) -> Self {
        WriteOptions {
            field_manager: name.into(),
            ..Default::default()
        }
    }
}

/// Which part of an object a write addresses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Part {
    Main,
    Status,
}

/// The generic registry store.
pub struct Store {
    pub storage: Arc<dyn Storage>,
    pub catalog: Arc<Catalog>,
}

fn group_of(info: &ResourceInfo) -> &str {
    &info.group
}

/// Turns a storage error into the Status a client sees.
fn storage_error(info: &ResourceInfo, name: &str, e: storage::Error) -> ApiError {
    match e {
        storage::Error::NotFound { .. } => ApiError::not_found(group_of(info), &info.plural, name),
        storage::Error::AlreadyExists { .. } => {
            ApiError::already_exists(group_of(info), &info.plural, name)
        }
        storage::Error::Conflict { .. } => ApiError::conflict(group_of(info), &info.plural, name),
        storage::Error::Compacted { requested, oldest } => {
            ApiError::gone(format!("too old resource version: {requested} ({oldest})"))
        }
        storage::Error::Unavailable(m) => ApiError::unavailable(m),
        storage::Error::Backend(e) => ApiError::internal(format!("storage error: {e}")),
    }
}

fn parse_revision(rv: &str) -> Result<Revision> {
    rv.parse().map_err(|_| {
        ApiError::bad_request(format!(
            "invalid resource version \"{rv}\": must be an integer"
        ))
    })
}

#[derive(serde::Serialize, serde::Deserialize)]
struct ContinueToken {
    #[serde(rename = "rv")]
    revision: Revision,
    #[serde(rename = "start")]
    after: String,
}

/// A namespaced object's visibility under a request's namespace and selectors.
fn selected(object: &Value, labels: &LabelSelector, fields: &FieldSelector) -> bool {
    labels.matches(object) && fields.matches(object)
}

/// A stored object as a read returns it, when the selectors select it; it is
/// parsed only when there are selectors, and then keeps that parsed form, so
/// a Table or a conversion of the same read does not parse it again.
fn select(
    json: &crate::packed::Json,
    parsed: Option<&Arc<Value>>,
    labels: &LabelSelector,
    fields: &FieldSelector,
) -> Option<Object> {
    let mut parsed = parsed.cloned();
    let json = json.bytes();
    if !(labels.is_empty() && fields.is_empty()) {
        let object = parsed.get_or_insert_with(|| Arc::new(storage::parse(&json)));
        if !selected(object, labels, fields) {
            return None;
        }
    }
    Some(Object::Json { json, parsed })
}

/// [`selected`] for a stored object, parsing it only when there are selectors.
fn selected_json(
    parse: impl FnOnce() -> Option<Arc<Value>>,
    labels: &LabelSelector,
    fields: &FieldSelector,
) -> bool {
    if labels.is_empty() && fields.is_empty() {
        return true;
    }
    parse().is_some_and(|object| selected(&object, labels, fields))
}

impl Store {
    pub fn new(storage: Arc<dyn Storage>, catalog: Arc<Catalog>) -> Arc<Self> {
        Arc::new(Store { storage, catalog })
    }

    /// Creates the namespaces that always exist.
    pub async fn ensure_system_namespaces(&self) -> Result<()> {
        let Some(info) = self.catalog.get("", "v1", "namespaces") else {
            return Ok(());
        };
        for ns in SYSTEM_NAMESPACES {
            if self.storage.snapshot().get(&info.key(None, ns)).is_some() {
                continue;
            }
            let object = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}});
            match self
                .create(
                    &info,
                    None,
                    object,
                    &WriteOptions::manager("flotilla-apiserver"),
                )
                .await
            {
                Ok(_) => {}
                Err(e) if e.reason == "AlreadyExists" => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    pub async fn get(
        &self,
        info: &ResourceInfo,
        namespace: Option<&str>,
        name: &str,
    ) -> Result<Arc<Value>> {
        self.storage
            .sync()
            .await
            .map_err(|e| storage_error(info, name, e))?;
        let object = self
            .storage
            .snapshot()
            .get(&info.key(namespace, name))
            .map(KeyValue::value)
            .ok_or_else(|| ApiError::not_found(group_of(info), &info.plural, name))?;
        self.convert_out(info, object).await
    }

    /// Lists objects, honouring selectors, pagination and resourceVersion rules.
    pub async fn list(
        &self,
        info: &ResourceInfo,
        namespace: Option<&str>,
        opts: &ListOptions,
    ) -> Result<ListResult> {
        let prefix = info.prefix(namespace);
        // `whole`: a snapshot of everything, which may be kept for later pages.
        let (snapshot, after, whole) = match &opts.continue_token {
            Some(token) => {
                if opts
                    .resource_version
                    .as_deref()
                    .is_some_and(|rv| !rv.is_empty())
                {
                    return Err(ApiError::bad_request(
                        "specifying resource version is not allowed when using continue",
                    ));
                }
                let token = decode_continue(token)?;
                if !token.after.starts_with(&prefix) {
                    return Err(ApiError::bad_request(
                        "continue key is not valid for this list",
                    ));
                }
                let (snapshot, whole) = match self.storage.snapshot_at(token.revision) {
                    Some(kept) => (kept, true),
                    // Issued by another API server sharing the storage: read that
                    // revision from the storage itself.
                    None => self
                        .storage
                        .past(prefix.clone(), Some(token.after.clone()), token.revision)
                        .await
                        .map_err(|e| storage_error(info, "", e))?
                        .map(|partial| (partial, false))
                        .ok_or_else(|| {
                            ApiError::gone("The provided continue parameter is too old to display a consistent list result. You can start a new list without the continue parameter, or use the continue token in this response to retrieve the remainder of the results. Continuing with the provided token results in an inconsistent list - objects that were created, modified, or deleted between the time the first chunk was returned and now may show up in the list.")
                        })?,
                };
                (snapshot, Some(token.after), whole)
            }
            None => {
                if self.needs_sync(opts) {
                    self.storage
                        .sync()
                        .await
                        .map_err(|e| storage_error(info, "", e))?;
                }
                (self.snapshot_for(opts)?, None, true)
            }
        };
        let limit = opts.limit.filter(|l| *l > 0);
        let mut items = Vec::new();
        let mut last_key: Option<Arc<str>> = None;
        let mut more = false;
        let mut iter = snapshot.range(&prefix, after.as_deref());
        for kv in iter.by_ref() {
            let Some(item) = select(&kv.json, kv.parsed(), &opts.labels, &opts.fields) else {
                continue;
            };
            if limit.is_some_and(|l| items.len() >= l) {
                more = true;
                break;
            }
            last_key = Some(kv.key.clone());
            items.push(item);
        }
        let (continue_token, remaining) = if more {
            let key = last_key.map(|k| k.to_string()).unwrap_or_default();
            if whole {
                self.storage.retain_snapshot(&snapshot);
            }
            let remaining = if opts.labels.is_empty() && opts.fields.is_empty() {
                Some(1 + iter.count())
            } else {
                None
            };
            (Some(encode_continue(snapshot.revision, key)), remaining)
        } else {
            (None, None)
        };
        let items = self.convert_all(info, items).await?;
        Ok(ListResult {
            items,
            revision: snapshot.revision,
            continue_token,
            remaining,
        })
    }

    /// Whether a list must first catch up with writes made anywhere: for the most
    /// recent state (no resourceVersion) or one newer than this server has seen.
    fn needs_sync(&self, opts: &ListOptions) -> bool {
        match opts.resource_version.as_deref().unwrap_or("") {
            "" => true,
            "0" => false,
            rv => rv
                .parse::<Revision>()
                .is_ok_and(|wanted| wanted > self.storage.current_revision()),
        }
    }

    /// Picks the snapshot a list without a continue token reads from.
    fn snapshot_for(&self, opts: &ListOptions) -> Result<Snapshot> {
        let rv = opts.resource_version.as_deref().unwrap_or("");
        let exact = opts.resource_version_match.as_deref();
        match exact {
            None | Some("") => {}
            Some("Exact") | Some("NotOlderThan") if rv.is_empty() => {
                return Err(ApiError::bad_request(
                    "resourceVersionMatch is forbidden unless resourceVersion is provided",
                ));
            }
            Some("Exact") if rv == "0" => {
                return Err(ApiError::bad_request(
                    "resourceVersionMatch \"Exact\" is forbidden for resourceVersion \"0\"",
                ));
            }
            Some("Exact") | Some("NotOlderThan") => {}
            Some(other) => {
                return Err(ApiError::bad_request(format!(
                    "resourceVersionMatch \"{other}\" is not supported: supported values: \"Exact\", \"NotOlderThan\""
                )));
            }
        }
        if rv.is_empty() || rv == "0" {
            return Ok(self.storage.snapshot());
        }
        let wanted = parse_revision(rv)?;
        let current = self.storage.snapshot();
        if wanted > current.revision {
            return Err(ApiError::timeout(format!(
                "Too large resource version: {wanted}, current: {}",
                current.revision
            )));
        }
        if exact == Some("Exact") && wanted != current.revision {
            return self.storage.snapshot_at(wanted).ok_or_else(|| {
                ApiError::gone(format!(
                    "too old resource version: {wanted} ({})",
                    current.revision
                ))
            });
        }
        Ok(current)
    }

    /// Checks an incoming object's kind, apiVersion, name and namespace against the URL
    /// and fills in the ones it leaves out.
    fn check_identity(
        &self,
        info: &ResourceInfo,
        namespace: Option<&str>,
        name: Option<&str>,
        object: &mut Value,
    ) -> Result<()> {
        let Some(map) = object.as_object_mut() else {
            return Err(ApiError::bad_request(format!(
                "the body of the request must be a {} object",
                info.kind
            )));
        };
        let api_version = info.api_version();
        match map.get("apiVersion").and_then(Value::as_str) {
            None | Some("") => {
                map.insert("apiVersion".into(), api_version.clone().into());
            }
            Some(v) if v == api_version => {}
            Some(v) => {
                return Err(ApiError::bad_request(format!(
                    "the API version in the data ({v}) does not match the expected API version ({api_version})"
                )));
            }
        }
        match map.get("kind").and_then(Value::as_str) {
            None | Some("") => {
                map.insert("kind".into(), info.kind.clone().into());
            }
            Some(k) if k == info.kind => {}
            Some(k) => {
                return Err(ApiError::bad_request(format!(
                    "the kind in the data ({k}) does not match the expected kind ({}) for {}",
                    info.kind, info.plural
                )));
            }
        }
        let causes = meta::validate_metadata(object);
        if !causes.is_empty() {
            let n = name.unwrap_or_else(|| meta_str(object, "name")).to_string();
            return Err(ApiError::invalid(&info.group, &info.kind, &n, causes));
        }
        let meta = meta::metadata_mut(object);
        if info.namespaced {
            let url_ns = namespace.unwrap_or("");
            match meta.get("namespace").and_then(Value::as_str) {
                None | Some("") => {
                    meta.insert("namespace".into(), url_ns.into());
                }
                Some(ns) if ns == url_ns => {}
                Some(_) => {
                    return Err(ApiError::bad_request(
                        "the namespace of the provided object does not match the namespace sent on the request",
                    ));
                }
            }
        } else if meta
            .get("namespace")
            .and_then(Value::as_str)
            .is_some_and(|ns| !ns.is_empty())
        {
            meta.remove("namespace");
        }
        if let Some(url_name) = name {
            match meta.get("name").and_then(Value::as_str) {
                None | Some("") => {
                    meta.insert("name".into(), url_name.into());
                }
                Some(n) if n == url_name => {}
                Some(n) => {
                    return Err(ApiError::bad_request(format!(
                        "the name of the object ({n}) does not match the name on the URL ({url_name})"
                    )));
                }
            }
        }
        Ok(())
    }

    /// Checks the target namespace exists and is not terminating.
    fn check_namespace(
        &self,
        snapshot: &Snapshot,
        namespace: &str,
        info: &ResourceInfo,
        name: &str,
    ) -> Result<()> {
        let Some(ns_info) = self.catalog.get("", "v1", "namespaces") else {
            return Ok(());
        };
        match snapshot.get(&ns_info.key(None, namespace)) {
            None => Err(ApiError::not_found("", "namespaces", namespace)),
            Some(kv) if kv.value().pointer("/metadata/deletionTimestamp").is_some() => {
                let mut e = ApiError::forbidden(format!(
                    "{} \"{name}\" is forbidden: unable to create new content in namespace {namespace} because it is being terminated",
                    crate::status::qualified(&info.plural, &info.group)
                ));
                e.details = Some(crate::status::Details {
                    name: name.to_string(),
                    group: info.group.clone(),
                    kind: info.plural.clone(),
                    causes: vec![Cause::new(
                        "NamespaceTerminating",
                        "metadata.namespace",
                        format!("namespace {namespace} is being terminated"),
                    )],
                    ..Default::default()
                });
                Err(e)
            }
            Some(_) => Ok(()),
        }
    }

    /// Creates an object; answers the stored object.
    pub async fn create(
        &self,
        info: &ResourceInfo,
        namespace: Option<&str>,
        object: Value,
        opts: &WriteOptions,
    ) -> Result<Arc<Value>> {
        self.create_object(info, namespace, object, opts, true)
            .await
    }

    /// Creates an object; `track` records the write in managedFields (an apply has
    /// recorded its own).
    async fn create_object(
        &self,
        info: &ResourceInfo,
        namespace: Option<&str>,
        mut object: Value,
        opts: &WriteOptions,
        track: bool,
    ) -> Result<Arc<Value>> {
        let dry_run = opts.dry_run;
        self.check_identity(info, namespace, None, &mut object)?;
        let mut name = meta_str(&object, "name").to_string();
        if name.is_empty() {
            let generate = meta_str(&object, "generateName").to_string();
            if generate.is_empty() {
                return Err(ApiError::invalid(
                    &info.group,
                    &info.kind,
                    "",
                    vec![Cause::new(
                        "FieldValueRequired",
                        "metadata.name",
                        "Required value: name or generateName is required",
                    )],
                ));
            }
            name = meta::generate_name(&generate);
            meta::metadata_mut(&mut object).insert("name".into(), name.clone().into());
        }
        let causes = meta::validate_name(info.name_rule, &name, "metadata.name");
        if !causes.is_empty() {
            return Err(ApiError::invalid(&info.group, &info.kind, &name, causes));
        }
        let namespace = if info.namespaced {
            let ns = namespace
                .map(str::to_string)
                .unwrap_or_else(|| meta_str(&object, "namespace").to_string());
            self.check_namespace(&self.storage.snapshot(), &ns, info, &name)?;
            Some(ns)
        } else {
            None
        };
        meta::prepare_for_create(info, &mut object);
        self.validate_object(info, &mut object, opts)?;
        if cluster::is_cluster(info) {
            cluster::prepare(&mut object, None, &meta::now_rfc3339())
                .map_err(|causes| ApiError::invalid(&info.group, &info.kind, &name, causes))?;
        }
        if track {
            if let Some(meta) = object.get_mut("metadata").and_then(Value::as_object_mut) {
                meta.remove("managedFields");
            }
            let now = meta::now_rfc3339();
            let manager = apply::Manager {
                name: &opts.field_manager,
                subresource: "",
                time: &now,
            };
            apply::track_update(None, &mut object, &manager, info.status_subresource);
        }
        if is_crd(info) {
            add_finalizer(&mut object, crd::CLEANUP_FINALIZER);
        }
        if info.status_subresource && info.plural != "namespaces" {
            if let Some(map) = object.as_object_mut() {
                map.remove("status");
            }
        }
        if info.group.is_empty() && info.plural == "pods" {
            object["status"] = json!({"phase": "Pending", "qosClass": "BestEffort"});
        }
        if info.group.is_empty() && info.plural == "services" {
            self.assign_cluster_ip(&mut object)?;
        }
        if info.group.is_empty() && info.plural == "namespaces" {
            let labels = meta::metadata_mut(&mut object)
                .entry("labels")
                .or_insert_with(|| json!({}));
            if let Some(l) = labels.as_object_mut() {
                l.insert("kubernetes.io/metadata.name".into(), json!(name));
            }
            object["spec"] = json!({"finalizers": ["kubernetes"]});
            object["status"] = json!({"phase": "Active"});
        }
        let object = self
            .admit(
                info,
                Admit {
                    operation: admission::Operation::Create,
                    subresource: None,
                    namespace: namespace.as_deref(),
                    name: &name,
                    old: None,
                },
                Some(object),
                &opts.user,
                opts.dry_run,
                &opts.warnings,
                Some(opts),
            )
            .await?
            .unwrap_or_default();
        let key = info.key(namespace.as_deref(), &name);
        if dry_run {
            if self.storage.snapshot().get(&key).is_some() {
                return Err(ApiError::already_exists(&info.group, &info.plural, &name));
            }
            return Ok(Arc::new(object));
        }
        let stored = self.to_storage(info, object).await?;
        let kv = self
            .storage
            .create(key, stored)
            .await
            .map_err(|e| storage_error(info, &name, e))?;
        self.after_write(info, &kv.value()).await;
        self.convert_out(info, kv.value()).await
    }

    /// Replaces an object (PUT) or its status.
    pub async fn update(
        &self,
        info: &ResourceInfo,
        namespace: Option<&str>,
        name: &str,
        mut object: Value,
        part: Part,
        opts: &WriteOptions,
    ) -> Result<Arc<Value>> {
        self.check_identity(info, namespace, Some(name), &mut object)?;
        let rv = meta_str(&object, "resourceVersion").to_string();
        let precondition = if rv.is_empty() {
            None
        } else {
            Some(parse_revision(&rv).map_err(|_| {
                ApiError::invalid(
                    &info.group,
                    &info.kind,
                    name,
                    vec![Cause::new(
                        "FieldValueInvalid",
                        "metadata.resourceVersion",
                        format!("Invalid value: \"{rv}\": must be an integer"),
                    )],
                )
            })?)
        };
        self.write_update(
            info,
            namespace,
            name,
            precondition,
            part,
            opts,
            true,
            |_| Ok(object.clone()),
        )
        .await
    }

    /// Applies a patch of the given type to an object (or its status).
    #[allow(clippy::too_many_arguments)]
    pub async fn patch(
        &self,
        info: &ResourceInfo,
        namespace: Option<&str>,
        name: &str,
        patch_type: PatchType,
        body: &Value,
        part: Part,
        opts: &WriteOptions,
    ) -> Result<Arc<Value>> {
        if patch_type == PatchType::Strategic && info.custom.is_some() {
            return Err(ApiError::unsupported_media_type(&[
                "application/json-patch+json",
                "application/merge-patch+json",
                "application/apply-patch+yaml",
            ]));
        }
        if patch_type == PatchType::Apply {
            return self
                .apply(info, namespace, name, body.clone(), part, opts)
                .await
                .map(|(o, _)| o);
        }
        let precondition = body
            .pointer("/metadata/resourceVersion")
            .and_then(Value::as_str)
            .filter(|rv| !rv.is_empty())
            .map(parse_revision)
            .transpose()?;
        self.write_update(info, namespace, name, precondition, part, opts, true, |current| {
            let mut target = current.clone();
            match patch_type {
                PatchType::Merge => patch::merge(&mut target, body),
                PatchType::Json => patch::json(&mut target, body).map_err(|e| {
                    ApiError::new(
                        422,
                        "Invalid",
                        format!("the server rejected our request due to an error in our request: {e}"),
                    )
                })?,
                PatchType::Strategic => patch::strategic(&mut target, body)
                    .map_err(|e| ApiError::bad_request(e.to_string()))?,
                PatchType::Apply => {}
            }
            // A patch may not move an object.
            if meta_str(&target, "name") != name {
                return Err(ApiError::bad_request(format!(
                    "the name of the object ({}) does not match the name on the URL ({name})",
                    meta_str(&target, "name")
                )));
            }
            Ok(target)
        })
        .await
    }

    /// Server-side apply; answers the object and whether it was created.
    pub async fn apply(
        &self,
        info: &ResourceInfo,
        namespace: Option<&str>,
        name: &str,
        mut applied: Value,
        part: Part,
        opts: &WriteOptions,
    ) -> Result<(Arc<Value>, bool)> {
        if opts.field_manager.is_empty() {
            return Err(ApiError::bad_request(
                "PATCH requests with the apply content type require a fieldManager",
            ));
        }
        for field in ["apiVersion", "kind"] {
            if applied
                .get(field)
                .and_then(Value::as_str)
                .is_none_or(str::is_empty)
            {
                return Err(ApiError::bad_request(format!(
                    "{field} must be set in an applied configuration"
                )));
            }
        }
        self.check_identity(info, namespace, Some(name), &mut applied)?;
        if let Some(meta) = applied.get_mut("metadata").and_then(Value::as_object_mut) {
            meta.remove("managedFields");
        }
        let now = meta::now_rfc3339();
        let subresource = if part == Part::Status { "status" } else { "" };
        let manager = apply::Manager {
            name: &opts.field_manager,
            subresource,
            time: &now,
        };
        let skip_status = info.status_subresource && part == Part::Main;
        let conflict = |conflicts: Vec<apply::Conflict>| {
            let n = conflicts.len();
            let listed = if n == 1 {
                format!(
                    "conflict with \"{}\" using {}: {}",
                    conflicts[0].manager, conflicts[0].api_version, conflicts[0].path
                )
            } else {
                let lines: Vec<String> = conflicts
                    .iter()
                    .map(|c| {
                        format!(
                            "- conflict with \"{}\" using {}: {}",
                            c.manager, c.api_version, c.path
                        )
                    })
                    .collect();
                format!("\n{}", lines.join("\n"))
            };
            let mut e = ApiError::new(
                409,
                "Conflict",
                format!(
                    "Apply failed with {n} conflict{}: {listed}",
                    if n == 1 { "" } else { "s" }
                ),
            );
            e.details = Some(crate::status::Details {
                name: name.to_string(),
                group: info.group.clone(),
                kind: info.plural.clone(),
                causes: conflicts
                    .iter()
                    .map(|c| {
                        Cause::new(
                            "FieldManagerConflict",
                            c.path.clone(),
                            format!("conflict with \"{}\" using {}", c.manager, c.api_version),
                        )
                    })
                    .collect(),
                retry_after_seconds: None,
            });
            e
        };
        let exists = self
            .storage
            .snapshot()
            .get(&info.key(namespace, name))
            .is_some();
        if !exists {
            if part == Part::Status {
                return Err(ApiError::not_found(&info.group, &info.plural, name));
            }
            let object = apply::apply(None, &applied, &manager, opts.force, skip_status)
                .map_err(conflict)?;
            return match self
                .create_object(info, namespace, object, opts, false)
                .await
            {
                Ok(o) => Ok((o, true)),
                // Lost a race with another creator: apply onto what it made.
                Err(e) if e.reason == "AlreadyExists" => {
                    Box::pin(self.apply(info, namespace, name, applied, part, opts)).await
                }
                Err(e) => Err(e),
            };
        }
        let updated = self
            .write_update(info, namespace, name, None, part, opts, false, |current| {
                let mut live = current.clone();
                if let Some(meta) = live.get_mut("metadata").and_then(Value::as_object_mut) {
                    meta.remove("resourceVersion");
                }
                apply::apply(Some(current), &applied, &manager, opts.force, skip_status)
                    .map_err(conflict)
            })
            .await?;
        Ok((updated, false))
    }

    /// The read-modify-write loop behind update and patch. Without an explicit
    /// precondition, a conflict with a concurrent writer is retried.
    #[allow(clippy::too_many_arguments)]
    async fn write_update(
        &self,
        info: &ResourceInfo,
        namespace: Option<&str>,
        name: &str,
        precondition: Option<Revision>,
        part: Part,
        opts: &WriteOptions,
        track: bool,
        compute: impl Fn(&Value) -> Result<Value>,
    ) -> Result<Arc<Value>> {
        let dry_run = opts.dry_run;
        let key = info.key(namespace, name);
        for _attempt in 0..16 {
            let current = self
                .storage
                .snapshot()
                .get(&key)
                .cloned()
                .ok_or_else(|| ApiError::not_found(&info.group, &info.plural, name))?;
            if let Some(p) = precondition
                && p != current.mod_revision
            {
                return Err(ApiError::conflict(&info.group, &info.plural, name));
            }
            let old = self.convert_out(info, current.value()).await?;
            let mut next = compute(&old)?;
            self.check_identity(info, namespace, Some(name), &mut next)?;
            let mut next = self.prepare_update(info, name, &old, next, part)?;
            self.validate_object(info, &mut next, opts)?;
            if part == Part::Main && cluster::is_cluster(info) {
                cluster::prepare(&mut next, Some(&old), &meta::now_rfc3339())
                    .map_err(|causes| ApiError::invalid(&info.group, &info.kind, name, causes))?;
            }
            if track {
                let now = meta::now_rfc3339();
                let subresource = if part == Part::Status { "status" } else { "" };
                let manager = apply::Manager {
                    name: &opts.field_manager,
                    subresource,
                    time: &now,
                };
                apply::track_update(
                    Some(&old),
                    &mut next,
                    &manager,
                    info.status_subresource && part == Part::Main,
                );
            }
            if unchanged(&old, &next) {
                return Ok(old);
            }
            let subresource = if part == Part::Status {
                Some("status")
            } else {
                None
            };
            let next = self
                .admit(
                    info,
                    Admit {
                        operation: admission::Operation::Update,
                        subresource,
                        namespace,
                        name,
                        old: Some(&old),
                    },
                    Some(next),
                    &opts.user,
                    opts.dry_run,
                    &opts.warnings,
                    Some(opts),
                )
                .await?
                .unwrap_or_default();
            let finalized = next.pointer("/metadata/deletionTimestamp").is_some()
                && next
                    .pointer("/metadata/finalizers")
                    .and_then(Value::as_array)
                    .is_none_or(Vec::is_empty);
            if dry_run {
                return Ok(Arc::new(next));
            }
            let next = self.to_storage(info, next).await?;
            let result = if finalized {
                self.storage
                    .delete(
                        key.clone(),
                        Precondition {
                            revision: Some(current.mod_revision),
                        },
                    )
                    .await
            } else {
                self.storage
                    .update(
                        key.clone(),
                        next,
                        Precondition {
                            revision: Some(current.mod_revision),
                        },
                    )
                    .await
            };
            match result {
                Ok(kv) => {
                    if finalized {
                        self.on_deleted(info, &kv);
                    } else {
                        self.after_write(info, &kv.value()).await;
                    }
                    return self.convert_out(info, kv.value()).await;
                }
                Err(storage::Error::Conflict { .. }) if precondition.is_none() => continue,
                Err(e) => return Err(storage_error(info, name, e)),
            }
        }
        Err(ApiError::conflict(&info.group, &info.plural, name))
    }

    /// Applies Kubernetes' update rules: system metadata kept, status only through
    /// /status, generation bumped on spec changes.
    fn prepare_update(
        &self,
        info: &ResourceInfo,
        name: &str,
        old: &Value,
        mut next: Value,
        part: Part,
    ) -> Result<Value> {
        let uid = meta_str(&next, "uid");
        if !uid.is_empty() && uid != meta_str(old, "uid") {
            return Err(ApiError::conflict_message(
                &info.group,
                &info.plural,
                name,
                &format!(
                    "Precondition failed: UID in precondition: {uid}, UID in object meta: {}",
                    meta_str(old, "uid")
                ),
            ));
        }
        if part == Part::Status {
            let mut merged = old.clone();
            match next.get("status") {
                Some(status) => merged["status"] = status.clone(),
                None => {
                    if let Some(m) = merged.as_object_mut() {
                        m.remove("status");
                    }
                }
            }
            return Ok(merged);
        }
        meta::carry_over_system_fields(old, &mut next);
        if info.group.is_empty() && info.plural == "services" {
            for field in ["clusterIP", "clusterIPs"] {
                if next.pointer(&format!("/spec/{field}")).is_none()
                    && let Some(v) = old.pointer(&format!("/spec/{field}")).cloned()
                    && let Some(spec) = next.get_mut("spec").and_then(Value::as_object_mut)
                {
                    spec.insert(field.into(), v);
                }
            }
        }
        if info.status_subresource {
            match old.get("status") {
                Some(status) => next["status"] = status.clone(),
                None => {
                    if let Some(m) = next.as_object_mut() {
                        m.remove("status");
                    }
                }
            }
        }
        if info.tracks_generation && meta::spec_changed(old, &next) {
            let generation = old
                .pointer("/metadata/generation")
                .and_then(Value::as_i64)
                .unwrap_or(0);
            meta::metadata_mut(&mut next).insert("generation".into(), (generation + 1).into());
        }
        if old.pointer("/metadata/deletionTimestamp").is_some() {
            // Finalizers may only be removed from an object being deleted.
            let old_f = old
                .pointer("/metadata/finalizers")
                .and_then(Value::as_array);
            let new_f = next
                .pointer("/metadata/finalizers")
                .and_then(Value::as_array);
            let added: Vec<String> = new_f
                .into_iter()
                .flatten()
                .filter(|f| old_f.is_none_or(|o| !o.contains(f)))
                .map(|f| format!("{f}"))
                .collect();
            if !added.is_empty() {
                return Err(ApiError::invalid(
                    &info.group,
                    &info.kind,
                    name,
                    vec![Cause::new(
                        "FieldValueForbidden",
                        "metadata.finalizers",
                        format!(
                            "Forbidden: no new finalizers can be added if the object is being deleted, found new finalizers []string{{{}}}",
                            added.join(", ")
                        ),
                    )],
                ));
            }
        }
        Ok(next)
    }

    /// Deletes an object, or marks it for deletion while finalizers remain.
    /// Answers the object's last state.
    pub async fn delete(
        self: &Arc<Self>,
        info: &ResourceInfo,
        namespace: Option<&str>,
        name: &str,
        opts: &DeleteOptions,
    ) -> Result<Arc<Value>> {
        let key = info.key(namespace, name);
        if info.group.is_empty() && info.plural == "namespaces" && SYSTEM_NAMESPACES.contains(&name)
        {
            return Err(ApiError::forbidden(format!(
                "namespaces \"{name}\" is forbidden: this namespace may not be deleted"
            )));
        }
        for _attempt in 0..16 {
            let current = self
                .storage
                .snapshot()
                .get(&key)
                .cloned()
                .ok_or_else(|| ApiError::not_found(&info.group, &info.plural, name))?;
            let object = current.value();
            if let Some(uid) = &opts.precondition_uid
                && uid != meta_str(&object, "uid")
            {
                return Err(ApiError::conflict_message(
                    &info.group,
                    &info.plural,
                    name,
                    &format!(
                        "Precondition failed: UID in precondition: {uid}, UID in object meta: {}",
                        meta_str(&object, "uid")
                    ),
                ));
            }
            if let Some(rv) = &opts.precondition_resource_version
                && parse_revision(rv)? != current.mod_revision
            {
                return Err(ApiError::conflict_message(
                    &info.group,
                    &info.plural,
                    name,
                    &format!(
                        "Precondition failed: ResourceVersion in precondition: {rv}, ResourceVersion in object meta: {}",
                        current.mod_revision
                    ),
                ));
            }
            let is_namespace = info.group.is_empty() && info.plural == "namespaces";
            let gc_finalizer = match opts.propagation {
                Propagation::Background => None,
                Propagation::Foreground => Some(super::gc::FOREGROUND),
                Propagation::Orphan => Some(super::gc::ORPHAN),
            };
            let has_finalizers = gc_finalizer.is_some()
                || object
                    .pointer("/metadata/finalizers")
                    .and_then(Value::as_array)
                    .is_some_and(|f| !f.is_empty());
            let precondition = Precondition {
                revision: Some(current.mod_revision),
            };
            if opts.user.is_some() {
                let old = self.convert_out(info, object.clone()).await?;
                self.admit(
                    info,
                    Admit {
                        operation: admission::Operation::Delete,
                        subresource: None,
                        namespace,
                        name,
                        old: Some(&old),
                    },
                    None,
                    &opts.user,
                    opts.dry_run,
                    &Warnings::default(),
                    None,
                )
                .await?;
            }
            if is_namespace || has_finalizers {
                if object.pointer("/metadata/deletionTimestamp").is_some() {
                    return Ok(object.clone());
                }
                let mut marked = Arc::unwrap_or_clone(object.clone());
                if let Some(f) = gc_finalizer {
                    add_finalizer(&mut marked, f);
                }
                let meta = meta::metadata_mut(&mut marked);
                meta.insert("deletionTimestamp".into(), meta::now_rfc3339().into());
                meta.insert("deletionGracePeriodSeconds".into(), 0.into());
                if is_namespace {
                    marked["status"] = json!({"phase": "Terminating"});
                }
                if opts.dry_run {
                    return Ok(Arc::new(marked));
                }
                match self.storage.update(key.clone(), marked, precondition).await {
                    Ok(kv) => {
                        if is_namespace {
                            self.clone().spawn_namespace_cleanup(name.to_string());
                        }
                        self.after_write(info, &kv.value()).await;
                        return self.convert_out(info, kv.value()).await;
                    }
                    Err(storage::Error::Conflict { .. }) => continue,
                    Err(e) => return Err(storage_error(info, name, e)),
                }
            }
            if opts.dry_run {
                return self.convert_out(info, object.clone()).await;
            }
            match self.storage.delete(key.clone(), precondition).await {
                Ok(kv) => {
                    self.on_deleted(info, &kv);
                    return self.convert_out(info, kv.value()).await;
                }
                Err(storage::Error::Conflict { .. }) => continue,
                Err(e) => return Err(storage_error(info, name, e)),
            }
        }
        Err(ApiError::conflict(&info.group, &info.plural, name))
    }

    /// Runs mutating then validating admission webhooks for a user's request;
    /// a mutated object is validated again.
    #[allow(clippy::too_many_arguments)]
    async fn admit(
        &self,
        info: &ResourceInfo,
        request: Admit<'_>,
        object: Option<Value>,
        user: &Option<Arc<User>>,
        dry_run: bool,
        warnings: &Warnings,
        revalidate: Option<&WriteOptions>,
    ) -> Result<Option<Value>> {
        let Some(user) = user else { return Ok(object) };
        let snapshot = self.storage.snapshot();
        if info.group == "rbac.authorization.k8s.io"
            && let Some(o) = object.as_ref()
        {
            let verb = match request.operation {
                admission::Operation::Create => "create",
                _ => "update",
            };
            let mut attrs = crate::server::authz::Attributes::resource(
                verb,
                info.group.as_str(),
                info.plural.as_str(),
            )
            .name(request.name);
            if let Some(ns) = request.namespace {
                attrs = attrs.namespace(ns);
            }
            crate::server::authz::check_rbac_write(&snapshot, user, &attrs, o)?;
        }
        let other_versions: Vec<String> = self
            .catalog
            .groups()
            .into_iter()
            .filter(|(g, _)| *g == info.group)
            .flat_map(|(_, vs)| vs)
            .filter(|v| {
                *v != info.version && self.catalog.get(&info.group, v, &info.plural).is_some()
            })
            .collect();
        let mut attrs = admission::Attributes::new(request.operation, info, request.name, user);
        attrs.subresource = request.subresource;
        attrs.namespace = request.namespace;
        attrs.dry_run = dry_run;
        attrs.old_object = request.old;
        attrs.other_versions = &other_versions;
        let before = object.clone();
        let admitted = admission::mutate(&snapshot, &attrs, object)
            .await
            .map_err(|r| {
                for w in &r.warnings {
                    warnings.push(w.clone());
                }
                r.error
            })?;
        for w in admitted.warnings {
            warnings.push(w);
        }
        let mut object = admitted.object;
        if object != before
            && let (Some(o), Some(opts)) = (object.as_mut(), revalidate)
        {
            self.validate_object(info, o, opts)?;
        }
        attrs.object = object.as_ref();
        let validated = admission::validate(&snapshot, &attrs).await.map_err(|r| {
            for w in &r.warnings {
                warnings.push(w.clone());
            }
            r.error
        })?;
        for w in validated {
            warnings.push(w);
        }
        Ok(object)
    }

    /// Gives a new Service a cluster IP (unless headless or ExternalName).
    fn assign_cluster_ip(&self, service: &mut Value) -> Result<()> {
        let ty = service
            .pointer("/spec/type")
            .and_then(Value::as_str)
            .unwrap_or("ClusterIP");
        let wanted = service
            .pointer("/spec/clusterIP")
            .and_then(Value::as_str)
            .unwrap_or("");
        if ty == "ExternalName" || wanted == "None" || !wanted.is_empty() {
            if !wanted.is_empty() && ty != "ExternalName" {
                service["spec"]["clusterIPs"] = json!([wanted]);
            }
            return Ok(());
        }
        let used: std::collections::HashSet<String> = self
            .storage
            .snapshot()
            .range("/core/services/", None)
            .filter_map(|kv| {
                kv.value()
                    .pointer("/spec/clusterIP")
                    .and_then(Value::as_str)
                    .map(String::from)
            })
            .collect();
        let ip = defaults::allocate_cluster_ip(&used).ok_or_else(|| {
            ApiError::internal("failed to allocate a service IP: the range is full")
        })?;
        service["spec"]["clusterIP"] = json!(ip);
        service["spec"]["clusterIPs"] = json!([ip]);
        Ok(())
    }

    /// Kind-specific validation; for custom resources also pruning and defaulting.
    fn validate_object(
        &self,
        info: &ResourceInfo,
        object: &mut Value,
        opts: &WriteOptions,
    ) -> Result<()> {
        let causes = if let Some(custom) = &info.custom {
            match &custom.schema {
                Some(s) => {
                    let unknown = schema::prune(object, s, true);
                    report_unknown(info, &unknown, opts)?;
                    schema::apply_defaults(object, s);
                    let mut causes = Vec::new();
                    schema::validate(object, s, "", &mut causes);
                    causes
                }
                None => Vec::new(),
            }
        } else {
            let schemas = &*openapi_schemas::SCHEMAS;
            // CRDs embed free-form JSON (enum values, defaults) that their Go types
            // decode by hand; their own validation covers them.
            let typed = if is_crd(info) {
                None
            } else {
                schemas.kind(&info.group, &info.version, &info.kind)
            };
            if let Some(schema) = typed {
                let decoded = typed::decode(schemas, schema, &info.kind, object);
                if let Some(e) = decoded.type_error {
                    return Err(ApiError::bad_request(format!(
                        "{kind} in version \"{version}\" cannot be handled as a {kind}: {e}",
                        kind = info.kind,
                        version = info.version
                    )));
                }
                report_unknown(info, &decoded.unknown, opts)?;
            }
            defaults::apply(info, object);
            if is_crd(info) {
                crd::validate(object)
            } else {
                validation::builtin(info, object)
            }
        };
        if causes.is_empty() {
            Ok(())
        } else {
            let name = meta_str(object, "name").to_string();
            Err(ApiError::invalid(&info.group, &info.kind, &name, causes))
        }
    }

    /// Converts an object of the requested version to the storage version.
    async fn to_storage(&self, info: &ResourceInfo, object: Value) -> Result<Value> {
        match &info.custom {
            Some(c) if c.storage_version != info.version => self
                .convert(info, c, vec![object], &c.storage_version)
                .await
                .map(|mut v| v.remove(0)),
            _ => Ok(object),
        }
    }

    /// Converts a stored object to the version a request addressed.
    pub async fn convert_out(&self, info: &ResourceInfo, object: Arc<Value>) -> Result<Arc<Value>> {
        let mut converted = self.convert_all(info, vec![Object::Value(object)]).await?;
        Ok(converted.remove(0).value())
    }

    /// Converts stored objects to the requested version (one webhook call for
    /// all); those already in it are returned as they are.
    pub async fn convert_all(
        &self,
        info: &ResourceInfo,
        objects: Vec<Object>,
    ) -> Result<Vec<Object>> {
        let Some(custom) = &info.custom else {
            return Ok(objects);
        };
        let want = info.api_version();
        let wanted = |o: &Object| o.head().api_version.as_deref() == Some(want.as_str());
        let mut out = Vec::with_capacity(objects.len());
        let mut other: Vec<(usize, Value)> = Vec::new();
        for (i, object) in objects.into_iter().enumerate() {
            if !wanted(&object) {
                other.push((i, Arc::unwrap_or_clone(object.value())));
            }
            out.push(object);
        }
        if other.is_empty() {
            return Ok(out);
        }
        let (at, values): (Vec<usize>, Vec<Value>) = other.into_iter().unzip();
        let converted = self.convert(info, custom, values, &info.version).await?;
        for (i, value) in at.into_iter().zip(converted) {
            out[i] = Object::Value(Arc::new(value));
        }
        Ok(out)
    }

    async fn convert(
        &self,
        info: &ResourceInfo,
        custom: &crd::CustomInfo,
        objects: Vec<Value>,
        version: &str,
    ) -> Result<Vec<Value>> {
        match &custom.conversion {
            crd::Conversion::None => Ok(objects
                .iter()
                .map(|o| crd::convert_none(o, &info.group, version))
                .collect()),
            crd::Conversion::Webhook { client_config, .. } => conversion::webhook(
                client_config,
                &self.storage.snapshot(),
                objects,
                &format!("{}/{version}", info.group),
            )
            .await
            .map_err(|e| {
                ApiError::internal(format!("conversion webhook for {}: {e}", custom.crd_name))
            }),
        }
    }

    /// Reacts to writes of kinds the server itself implements (CRDs).
    fn after_write<'a>(
        &'a self,
        info: &'a ResourceInfo,
        object: &'a Value,
    ) -> futures::future::BoxFuture<'a, ()> {
        Box::pin(async move {
            if is_crd(info) {
                self.sync_crd(object).await;
            }
            if info.group == "rbac.authorization.k8s.io" && info.plural == "clusterroles" {
                self.aggregate_cluster_roles(info).await;
            }
        })
    }

    /// Fills the rules of every ClusterRole with an `aggregationRule` from the
    /// ClusterRoles its selectors match, as kube's aggregation controller does.
    pub async fn aggregate_cluster_roles(&self, info: &ResourceInfo) {
        // Aggregated roles may aggregate each other (admin ← edit ← view): repeat
        // until nothing changes.
        for _pass in 0..8 {
            if !self.aggregate_cluster_roles_once(info).await {
                break;
            }
        }
    }

    /// One aggregation pass; whether any role changed.
    async fn aggregate_cluster_roles_once(&self, info: &ResourceInfo) -> bool {
        let mut changed = false;
        let snapshot = self.storage.snapshot();
        for kv in snapshot.range(&info.prefix(None), None) {
            if kv.value().get("aggregationRule").is_none_or(Value::is_null) {
                continue;
            }
            let Some(rules) = crate::server::authz::aggregated_rules(&snapshot, &kv.value()) else {
                continue;
            };
            let rules = Value::Array(rules);
            if kv.value().get("rules") == Some(&rules) {
                continue;
            }
            let mut next = Arc::unwrap_or_clone(kv.value());
            next["rules"] = rules;
            changed |= self
                .storage
                .update(
                    kv.key.to_string(),
                    next,
                    Precondition {
                        revision: Some(kv.mod_revision),
                    },
                )
                .await
                .is_ok();
        }
        changed
    }

    /// Serves an accepted CRD (and records its status), or cleans up a deleted one.
    async fn sync_crd(&self, crd_object: &Value) {
        let name = meta_str(crd_object, "name").to_string();
        let group = crd_object
            .pointer("/spec/group")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        let plural = crd_object
            .pointer("/spec/names/plural")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        if crd_object.pointer("/metadata/deletionTimestamp").is_some() {
            self.catalog.remove(&group, &plural);
            let store = Store {
                storage: self.storage.clone(),
                catalog: self.catalog.clone(),
            };
            tokio::spawn(async move { store.clean_crd(&name, &group, &plural).await });
            return;
        }
        self.catalog
            .replace(&group, &plural, crd::resources(crd_object));
        if crd::is_established(crd_object)
            && crd_object.pointer("/status/acceptedNames")
                == Some(
                    &crd_object
                        .pointer("/spec/names")
                        .cloned()
                        .unwrap_or_default(),
                )
        {
            return;
        }
        let Some(crd_info) =
            self.catalog
                .get("apiextensions.k8s.io", "v1", "customresourcedefinitions")
        else {
            return;
        };
        let status = crd::accepted_status(crd_object, &meta::now_rfc3339());
        let key = crd_info.key(None, &name);
        for _ in 0..8 {
            let Some(current) = self.storage.snapshot().get(&key).cloned() else {
                return;
            };
            let mut next = Arc::unwrap_or_clone(current.value());
            next["status"] = status.clone();
            match self
                .storage
                .update(
                    key.clone(),
                    next,
                    Precondition {
                        revision: Some(current.mod_revision),
                    },
                )
                .await
            {
                Err(storage::Error::Conflict { .. }) => continue,
                Err(e) => {
                    tracing::warn!(crd = %name, error = %e, "recording CRD status failed");
                    return;
                }
                Ok(_) => return,
            }
        }
    }

    /// Deletes every object of a deleted CRD, then releases the CRD.
    async fn clean_crd(&self, name: &str, group: &str, plural: &str) {
        let prefix = format!("/{group}/{plural}/");
        let keys: Vec<String> = self
            .storage
            .snapshot()
            .range(&prefix, None)
            .map(|kv| kv.key.to_string())
            .collect();
        for key in keys {
            if let Err(e) = self.storage.delete(key, Precondition::default()).await
                && !matches!(e, storage::Error::NotFound { .. })
            {
                tracing::warn!(crd = %name, error = %e, "deleting custom object failed");
            }
        }
        let Some(crd_info) =
            self.catalog
                .get("apiextensions.k8s.io", "v1", "customresourcedefinitions")
        else {
            return;
        };
        let patch =
            json!({"metadata": {"$deleteFromPrimitiveList/finalizers": [crd::CLEANUP_FINALIZER]}});
        if let Err(e) = self
            .patch(
                &crd_info,
                None,
                name,
                PatchType::Strategic,
                &patch,
                Part::Main,
                &WriteOptions::manager("apiextensions-controller"),
            )
            .await
            && e.code != 404
        {
            tracing::warn!(crd = %name, error = %e, "releasing CRD failed");
        }
    }

    /// Keeps the catalog in step with CRDs that other API servers sharing the
    /// storage create, change or delete (this server's own writes are served as it
    /// makes them). Runs until the process ends.
    pub async fn follow_crds(self: Arc<Self>) {
        let Some(crd_info) =
            self.catalog
                .get("apiextensions.k8s.io", "v1", "customresourcedefinitions")
        else {
            return;
        };
        let prefix = crd_info.prefix(None);
        loop {
            let from = self.storage.current_revision();
            let mut events = match self.storage.watch(prefix.clone(), from) {
                Ok(events) => events,
                Err(e) => {
                    tracing::warn!(error = %e, "watching CRDs failed; retrying");
                    tokio::time::sleep(std::time::Duration::from_secs(1)).await;
                    continue;
                }
            };
            while let Some(event) = events.next().await {
                let Ok(event) = event else {
                    break;
                };
                let crd_object = &*event.object();
                let group = crd_object
                    .pointer("/spec/group")
                    .and_then(Value::as_str)
                    .unwrap_or("");
                let plural = crd_object
                    .pointer("/spec/names/plural")
                    .and_then(Value::as_str)
                    .unwrap_or("");
                if event.kind == EventKind::Deleted
                    || crd_object.pointer("/metadata/deletionTimestamp").is_some()
                {
                    self.catalog.remove(group, plural);
                } else {
                    self.catalog
                        .replace(group, plural, crd::resources(crd_object));
                }
            }
            // The watch ended (fell behind): serve what is stored now and watch again.
            let stored: Vec<Arc<Value>> = self
                .storage
                .snapshot()
                .range(&prefix, None)
                .map(|kv| kv.value())
                .collect();
            for c in stored {
                if c.pointer("/metadata/deletionTimestamp").is_none() {
                    let group = c.pointer("/spec/group").and_then(Value::as_str);
                    let plural = c.pointer("/spec/names/plural").and_then(Value::as_str);
                    if let (Some(group), Some(plural)) = (group, plural) {
                        self.catalog.replace(group, plural, crd::resources(&c));
                    }
                }
            }
        }
    }

    /// Serves every stored CRD (at start-up).
    pub async fn load_crds(&self) {
        let Some(crd_info) =
            self.catalog
                .get("apiextensions.k8s.io", "v1", "customresourcedefinitions")
        else {
            return;
        };
        let crds: Vec<Arc<Value>> = self
            .storage
            .snapshot()
            .range(&crd_info.prefix(None), None)
            .map(|kv| kv.value())
            .collect();
        for c in crds {
            self.sync_crd(&c).await;
        }
    }

    fn on_deleted(&self, info: &ResourceInfo, kv: &KeyValue) {
        tracing::debug!(resource = %info.plural, key = %kv.key, rev = kv.mod_revision, "deleted");
    }

    /// Deletes everything in a terminating namespace, then the namespace itself.
    fn spawn_namespace_cleanup(self: Arc<Self>, namespace: String) {
        tokio::spawn(async move {
            if let Err(e) = self.clean_namespace(&namespace).await {
                tracing::warn!(%namespace, error = %e, "namespace cleanup failed");
            }
        });
    }

    async fn clean_namespace(self: &Arc<Self>, namespace: &str) -> Result<()> {
        loop {
            let mut seen = std::collections::HashSet::new();
            let mut remaining = 0usize;
            let mut finalizers: std::collections::BTreeMap<String, usize> = Default::default();
            let mut resources: std::collections::BTreeMap<String, usize> = Default::default();
            for (group, versions) in self.catalog.groups() {
                for version in versions {
                    for info in self.catalog.resources(&group, &version) {
                        let prefix = info.prefix(Some(namespace));
                        if !info.namespaced || !seen.insert(prefix.clone()) {
                            continue;
                        }
                        let objects: Vec<Arc<Value>> = self
                            .storage
                            .snapshot()
                            .range(&prefix, None)
                            .map(|kv| kv.value())
                            .collect();
                        for object in objects {
                            remaining += 1;
                            *resources
                                .entry(format!("{}.{}", info.plural, info.group))
                                .or_default() += 1;
                            for f in object
                                .pointer("/metadata/finalizers")
                                .and_then(Value::as_array)
                                .into_iter()
                                .flatten()
                                .filter_map(Value::as_str)
                            {
                                *finalizers.entry(f.to_string()).or_default() += 1;
                            }
                            if object.pointer("/metadata/deletionTimestamp").is_some() {
                                continue;
                            }
                            match self
                                .delete(
                                    &info,
                                    Some(namespace),
                                    meta_str(&object, "name"),
                                    &DeleteOptions::default(),
                                )
                                .await
                            {
                                Ok(_) => {}
                                Err(e) if e.code == 404 => {}
                                Err(e) => return Err(e),
                            }
                        }
                    }
                }
            }
            if remaining == 0 || self.namespace_is_empty(namespace) {
                break;
            }
            // Objects with finalizers stay until their owners remove them; say so.
            self.namespace_conditions(namespace, &resources, &finalizers)
                .await;
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        let Some(ns_info) = self.catalog.get("", "v1", "namespaces") else {
            return Ok(());
        };
        match self
            .storage
            .delete(ns_info.key(None, namespace), Precondition::default())
            .await
        {
            Ok(_) | Err(storage::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(storage_error(&ns_info, namespace, e)),
        }
    }

    /// Records why a terminating namespace is still there, as kube's namespace
    /// controller does.
    async fn namespace_conditions(
        &self,
        namespace: &str,
        resources: &std::collections::BTreeMap<String, usize>,
        finalizers: &std::collections::BTreeMap<String, usize>,
    ) {
        let Some(ns_info) = self.catalog.get("", "v1", "namespaces") else {
            return;
        };
        let now = meta::now_rfc3339();
        let remaining: Vec<String> = resources
            .iter()
            .map(|(r, n)| format!("{r} has {n} resource instances"))
            .collect();
        let mut conditions = vec![
            json!({"type": "NamespaceContentRemaining", "status": "True", "reason": "SomeResourcesRemain",
            "message": format!("Some resources are remaining: {}", remaining.join(", ")), "lastTransitionTime": now}),
        ];
        if !finalizers.is_empty() {
            let listed: Vec<String> = finalizers
                .iter()
                .map(|(f, n)| format!("{f} in {n} resource instances"))
                .collect();
            conditions.push(json!({"type": "NamespaceFinalizersRemaining", "status": "True", "reason": "SomeFinalizersRemain",
                "message": format!("Some content in the namespace has finalizers remaining: {}", listed.join(", ")), "lastTransitionTime": now}));
        }
        let key = ns_info.key(None, namespace);
        let Some(current) = self.storage.snapshot().get(&key).cloned() else {
            return;
        };
        let same = |a: Option<&Value>| {
            let strip = |v: &Value| -> Vec<(Value, Value)> {
                v.as_array()
                    .into_iter()
                    .flatten()
                    .map(|c| (c["type"].clone(), c["message"].clone()))
                    .collect()
            };
            a.map(strip) == Some(strip(&Value::Array(conditions.clone())))
        };
        if same(current.value().pointer("/status/conditions")) {
            return;
        }
        let mut next = Arc::unwrap_or_clone(current.value());
        next["status"]["conditions"] = Value::Array(conditions);
        let _ = self
            .storage
            .update(
                key,
                next,
                Precondition {
                    revision: Some(current.mod_revision),
                },
            )
            .await;
    }

    fn namespace_is_empty(&self, namespace: &str) -> bool {
        let snapshot = self.storage.snapshot();
        self.catalog.groups().iter().all(|(group, versions)| {
            versions.iter().all(|version| {
                self.catalog
                    .resources(group, version)
                    .iter()
                    .filter(|info| info.namespaced)
                    .all(|info| {
                        snapshot
                            .range(&info.prefix(Some(namespace)), None)
                            .next()
                            .is_none()
                    })
            })
        })
    }

    /// Deletes every object a list would return; answers the deleted objects.
    pub async fn delete_collection(
        self: &Arc<Self>,
        info: &ResourceInfo,
        namespace: Option<&str>,
        list: &ListOptions,
        opts: &DeleteOptions,
    ) -> Result<ListResult> {
        let listed = self
            .list(
                info,
                namespace,
                &ListOptions {
                    limit: None,
                    continue_token: None,
                    ..list.clone()
                },
            )
            .await?;
        let mut deleted = Vec::new();
        for item in &listed.items {
            let item = item.value();
            let ns = meta_str(&item, "namespace");
            let ns = if ns.is_empty() { None } else { Some(ns) };
            match self.delete(info, ns, meta_str(&item, "name"), opts).await {
                Ok(v) => deleted.push(Object::Value(v)),
                Err(e) if e.code == 404 => {}
                Err(e) => return Err(e),
            }
        }
        Ok(ListResult {
            items: deleted,
            revision: self.storage.current_revision(),
            continue_token: None,
            remaining: None,
        })
    }

    /// Watches objects from a resourceVersion (or from now, with initial ADDED events).
    pub fn watch(
        &self,
        info: &ResourceInfo,
        namespace: Option<&str>,
        opts: WatchOptions,
    ) -> Result<BoxStream<'static, WatchEvent>> {
        let prefix = info.prefix(namespace);
        let rv = opts.resource_version.clone().unwrap_or_default();
        let (initial, from) = if rv.is_empty() || rv == "0" {
            let snapshot = self.storage.snapshot();
            let items: Vec<WatchEvent> = snapshot
                .range(&prefix, None)
                .filter_map(|kv| select(&kv.json, kv.parsed(), &opts.labels, &opts.fields))
                .map(WatchEvent::Added)
                .collect();
            (items, snapshot.revision)
        } else {
            (Vec::new(), parse_revision(&rv)?)
        };
        let mut initial = initial;
        if opts.send_initial_events && opts.allow_bookmarks {
            initial.push(WatchEvent::InitialEventsEnd(from));
        }
        let live = match self.storage.watch_progress(prefix, from) {
            Ok(stream) => stream,
            Err(storage::Error::Compacted { requested, oldest }) => {
                let e = ApiError::gone(format!("too old resource version: {requested} ({oldest})"));
                return Ok(futures::stream::iter([WatchEvent::Error(e)]).boxed());
            }
            Err(e) => return Err(storage_error(info, "", e)),
        };
        let labels = opts.labels;
        let fields = opts.fields;
        let error_info = info.clone();
        let live = live.filter_map(move |item| {
            let out = match item {
                Err(e) => Some(WatchEvent::Error(storage_error(&error_info, "", e))),
                Ok(event) if event.kind == EventKind::Progress => {
                    Some(WatchEvent::Progress(event.revision))
                }
                Ok(event) => {
                    let selected = select(&event.json, event.parsed(), &labels, &fields);
                    let now = selected.is_some();
                    let before = selected_json(|| event.prev_object(), &labels, &fields);
                    let object = selected.unwrap_or_else(|| Object::from(&event));
                    Some(match (event.kind, before, now) {
                        (EventKind::Added, _, true) => WatchEvent::Added(object),
                        (EventKind::Modified, true, true) => WatchEvent::Modified(object),
                        (EventKind::Modified, false, true) => WatchEvent::Added(object),
                        (EventKind::Modified, true, false) => WatchEvent::Deleted(object),
                        (EventKind::Deleted, true, _) => WatchEvent::Deleted(object),
                        _ => WatchEvent::Progress(event.revision),
                    })
                }
            };
            futures::future::ready(out)
        });
        let events = futures::stream::iter(initial).chain(live);
        if info.custom.is_none() {
            return Ok(events.boxed());
        }
        // Custom objects are stored in one version and watched in another.
        let store = Store {
            storage: self.storage.clone(),
            catalog: self.catalog.clone(),
        };
        let info = Arc::new(info.clone());
        Ok(events
            .then(move |event| {
                let store = Store {
                    storage: store.storage.clone(),
                    catalog: store.catalog.clone(),
                };
                let info = info.clone();
                async move {
                    let convert = |o: Object| async {
                        store
                            .convert_all(&info, vec![o])
                            .await
                            .map(|mut c| c.remove(0))
                    };
                    match event {
                        WatchEvent::Added(o) => convert(o)
                            .await
                            .map_or_else(WatchEvent::Error, WatchEvent::Added),
                        WatchEvent::Modified(o) => convert(o)
                            .await
                            .map_or_else(WatchEvent::Error, WatchEvent::Modified),
                        WatchEvent::Deleted(o) => convert(o)
                            .await
                            .map_or_else(WatchEvent::Error, WatchEvent::Deleted),
                        other => other,
                    }
                }
            })
            .boxed())
    }
}

/// Applies `fieldValidation` to the unknown fields found in a request.
fn report_unknown(info: &ResourceInfo, unknown: &[String], opts: &WriteOptions) -> Result<()> {
    if unknown.is_empty() {
        return Ok(());
    }
    let listed: Vec<String> = unknown
        .iter()
        .map(|f| format!("unknown field \"{f}\""))
        .collect();
    match opts.field_validation {
        FieldValidation::Ignore => Ok(()),
        FieldValidation::Warn => {
            for w in listed {
                opts.warnings.push(w);
            }
            Ok(())
        }
        FieldValidation::Strict => Err(ApiError::bad_request(format!(
            "{kind} in version \"{version}\" cannot be handled as a {kind}: strict decoding error: {}",
            listed.join(", "),
            kind = info.kind,
            version = info.version,
        ))),
    }
}

/// What admission is told about a request besides the objects.
struct Admit<'a> {
    operation: admission::Operation,
    subresource: Option<&'a str>,
    namespace: Option<&'a str>,
    name: &'a str,
    old: Option<&'a Value>,
}

fn is_crd(info: &ResourceInfo) -> bool {
    info.group == "apiextensions.k8s.io" && info.plural == "customresourcedefinitions"
}

fn add_finalizer(object: &mut Value, finalizer: &str) {
    let meta = meta::metadata_mut(object);
    let list = meta.entry("finalizers").or_insert_with(|| json!([]));
    if let Some(list) = list.as_array_mut()
        && !list.iter().any(|f| f == finalizer)
    {
        list.push(json!(finalizer));
    }
}

/// Whether an update would change nothing but bookkeeping.
fn unchanged(old: &Value, new: &Value) -> bool {
    let (Some(o), Some(n)) = (old.as_object(), new.as_object()) else {
        return false;
    };
    if o.len() != n.len() {
        return false;
    }
    o.iter().all(|(k, v)| {
        if k == "metadata" {
            let strip = |m: &Value| -> serde_json::Map<String, Value> {
                m.as_object()
                    .map(|m| {
                        m.iter()
                            .filter(|(k, _)| k.as_str() != "resourceVersion")
                            .map(|(k, v)| (k.clone(), v.clone()))
                            .collect()
                    })
                    .unwrap_or_default()
            };
            n.get("metadata").is_some_and(|nm| strip(v) == strip(nm))
        } else {
            n.get(k) == Some(v)
        }
    })
}

fn encode_continue(revision: Revision, after: String) -> String {
    let token = ContinueToken { revision, after };
    let json = serde_json::to_vec(&token).unwrap_or_default();
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(json)
}

fn decode_continue(token: &str) -> Result<ContinueToken> {
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(token.trim_end_matches('='))
        .map_err(|_| ApiError::bad_request("continue key is not valid: illegal base64 data"))?;
    serde_json::from_slice(&bytes)
        .map_err(|_| ApiError::bad_request("continue key is not valid: malformed token"))
}
