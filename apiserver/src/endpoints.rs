//! HTTP endpoints: every request is parsed once into a [`request_info::Route`], then
//! answered by discovery, OpenAPI, health, or the generic resource handler, which
//! reads top to bottom: parse → decode → registry → encode.

pub mod codec;
pub mod discovery;
pub mod openapi;
pub mod protobuf;
pub mod request_info;
pub mod table;
pub mod watch;

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderValue, Method, Request, Response, StatusCode, header};
use http_body_util::{BodyExt, Full, Limited};
use serde_json::{Value, json};

use crate::aggregator;
use crate::registry::meta::meta_str;
use crate::registry::patch::PatchType;
use crate::registry::selector::{FieldSelector, LabelSelector};
use crate::registry::store::{
    DeleteOptions, FieldValidation, ListOptions, ListResult, Object, Part, Propagation, Store,
    Warnings, WatchOptions, WriteOptions,
};
use crate::registry::{Catalog, ResourceInfo};
use crate::server::auth::{Authenticator, User};
use crate::server::authz;
use crate::status::{ApiError, Result};
use codec::Output;
use request_info::{RequestInfo, Route, Verb};
use table::{IncludeObject, ListMeta};

/// The response body type of every endpoint.
pub type Body = http_body_util::combinators::UnsyncBoxBody<Bytes, Infallible>;

/// Shared state of the endpoints.
pub struct Api {
    pub store: Arc<Store>,
    pub catalog: Arc<Catalog>,
    pub openapi: openapi::Cache,
    /// `host:port` advertised in legacy `/api`.
    pub server_address: String,
    /// Longest a watch stays open when the client gives no timeout.
    pub max_watch: Duration,
    /// How often idle watches that allow bookmarks get one.
    pub bookmark_interval: Duration,
    /// The client identity for aggregated API servers (none: no aggregation).
    pub proxy_identity: Option<aggregator::ProxyIdentity>,
    /// Remote groups' discovery documents.
    pub remote_discovery: aggregator::DiscoveryCache,
    /// Checks bearer tokens (TokenReview) and signs service-account tokens
    /// (TokenRequest); the server authenticates requests with it too.
    pub authenticator: Arc<Authenticator>,
    /// Reads member credentials for `clusters/NAME/proxy` (aggregated server only).
    pub member_credentials: Option<crate::cluster_proxy::CredentialsSource>,
    /// The unified multi-cluster view (aggregated server only).
    pub unified: Option<Arc<crate::unified::Unified>>,
    /// The server's Prometheus metrics, served at `/metrics`.
    pub metrics: Arc<crate::metrics::Metrics>,
    /// The storage file, for its size in the metrics (none in memory).
    pub storage_file: Option<std::path::PathBuf>,
}

impl Api {
    /// Shared state over `store`, advertising `server_address`; no aggregation, no
    /// bearer tokens.
    pub fn new(store: Arc<Store>, server_address: String) -> Arc<Self> {
        Arc::new(Api::build(store, server_address))
    }

    /// The same, not yet shared, for setting fields before wrapping it in an `Arc`.
    pub fn build(store: Arc<Store>, server_address: String) -> Self {
        Api {
            catalog: store.catalog.clone(),
            store,
            openapi: openapi::Cache::default(),
            server_address,
            max_watch: Duration::from_secs(1800),
            bookmark_interval: Duration::from_secs(30),
            proxy_identity: None,
            remote_discovery: Default::default(),
            authenticator: Arc::new(Authenticator::default()),
            member_credentials: None,
            unified: None,
            metrics: Arc::new(crate::metrics::Metrics::new("apiserver")),
            storage_file: None,
        }
    }

    /// The remote serving a group/version, when aggregation is on.
    fn remote(
        &self,
        group: &str,
        version: &str,
    ) -> Option<(aggregator::Remote, &aggregator::ProxyIdentity)> {
        let identity = self.proxy_identity.as_ref()?;
        if self.catalog.has_version(group, version) {
            return None;
        }
        aggregator::remote_for(&self.store.storage.snapshot(), group, version)
            .map(|r| (r, identity))
    }

    /// Discovery items of remote groups not served locally.
    async fn remote_groups(&self, aggregated: bool) -> Vec<Value> {
        let Some(identity) = self.proxy_identity.as_ref() else {
            return Vec::new();
        };
        let snapshot = self.store.storage.snapshot();
        let mut by_group: Vec<(String, Vec<aggregator::Remote>)> = Vec::new();
        for r in aggregator::remotes(&snapshot) {
            if self.catalog.has_version(&r.group, &r.version) {
                continue;
            }
            match by_group.iter_mut().find(|(g, _)| *g == r.group) {
                Some((_, list)) => list.push(r),
                None => by_group.push((r.group.clone(), vec![r])),
            }
        }
        let mut out = Vec::new();
        for (group, list) in by_group {
            if aggregated {
                if let Some(doc) = self
                    .remote_discovery
                    .group(&list[0], &snapshot, identity)
                    .await
                {
                    out.push(doc);
                }
            } else {
                let versions: Vec<Value> = list
                    .iter()
                    .map(|r| json!({"groupVersion": format!("{group}/{}", r.version), "version": r.version}))
                    .collect();
                out.push(
                    json!({"name": group, "versions": versions, "preferredVersion": versions[0]}),
                );
            }
        }
        out
    }
}

fn full(bytes: impl Into<Bytes>) -> Body {
    Full::new(bytes.into())
        .map_err(|never| match never {})
        .boxed_unsync()
}

/// A response with a JSON body.
pub fn json_response(status: StatusCode, content_type: &str, body: Vec<u8>) -> Response<Body> {
    let mut r = Response::new(full(body));
    *r.status_mut() = status;
    if let Ok(v) = HeaderValue::from_str(content_type) {
        r.headers_mut().insert(header::CONTENT_TYPE, v);
    }
    r
}

/// The `Status` response of an error.
pub fn error_response(e: &ApiError) -> Response<Body> {
    let body = serde_json::to_vec(&e.to_status()).unwrap_or_default();
    json_response(
        StatusCode::from_u16(e.code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
        "application/json",
        body,
    )
}

fn value_response(status: StatusCode, value: &Value) -> Response<Body> {
    json_response(
        status,
        "application/json",
        serde_json::to_vec(value).unwrap_or_default(),
    )
}

fn text_response(status: StatusCode, text: &'static str) -> Response<Body> {
    let mut r = Response::new(full(text));
    *r.status_mut() = status;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    r
}

fn header_str<'a>(parts: &'a http::request::Parts, name: header::HeaderName) -> Option<&'a str> {
    parts.headers.get(name).and_then(|v| v.to_str().ok())
}

/// Reads a request body up to [`codec::MAX_BODY`].
async fn read_body<B>(body: B) -> Result<Bytes>
where
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    match Limited::new(body, codec::MAX_BODY).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => {
            Err(ApiError::too_large(codec::MAX_BODY))
        }
        Err(e) => Err(ApiError::bad_request(format!(
            "failed to read the request body: {e}"
        ))),
    }
}

/// Answers one request of an authenticated (and authorized) user; `None` is the
/// server itself, whose writes skip admission.
pub async fn handle<B>(api: &Arc<Api>, req: Request<B>, user: Option<Arc<User>>) -> Response<Body>
where
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let (parts, body) = req.into_parts();
    let query = request_info::parse_query(parts.uri.query());
    match route(api, &parts, &query, body, user).await {
        Ok(r) => r,
        Err(e) => error_response(&e),
    }
}

async fn route<B>(
    api: &Arc<Api>,
    parts: &http::request::Parts,
    query: &HashMap<String, String>,
    body: B,
    user: Option<Arc<User>>,
) -> Result<Response<Body>>
where
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    if let Some(unified) = &api.unified
        && crate::unified::strip_prefix(parts.uri.path()).is_some()
    {
        let user = user.unwrap_or_else(|| Arc::new(aggregator_user()));
        return Ok(crate::unified::handle(unified, parts.clone(), body, user).await);
    }
    let path = parts.uri.path().trim_end_matches('/');
    let accept = header_str(parts, header::ACCEPT).unwrap_or("");
    let get_only = |r: Response<Body>| {
        if parts.method == Method::GET || parts.method == Method::HEAD {
            Ok(r)
        } else {
            Err(ApiError::method_not_allowed(format!(
                "the server does not allow this method on the requested resource"
            )))
        }
    };
    match path {
        "/version" => return get_only(value_response(StatusCode::OK, &discovery::version())),
        "/metrics" => {
            let size = api
                .storage_file
                .as_ref()
                .and_then(|f| std::fs::metadata(f).ok())
                .map_or(0, |m| m.len());
            let storage = &api.store.storage;
            let mut text = api
                .metrics
                .encode(&storage.snapshot(), storage.history(), size);
            if let Some(unified) = &api.unified {
                text.push_str(&unified.metrics_text());
            }
            let mut r = Response::new(full(text));
            r.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/plain; version=0.0.4"),
            );
            return get_only(r);
        }
        "/healthz" | "/livez" | "/readyz" => return get_only(text_response(StatusCode::OK, "ok")),
        "/.well-known/openid-configuration" | "/openid/v1/jwks" => {
            let Some(signer) = api.authenticator.service_accounts.as_ref() else {
                return Err(ApiError::no_route());
            };
            let (content_type, document) = if path == "/openid/v1/jwks" {
                ("application/jwk-set+json", signer.jwks())
            } else {
                (
                    "application/json",
                    crate::server::service_account::openid_configuration(&format!(
                        "https://{}/openid/v1/jwks",
                        api.server_address
                    )),
                )
            };
            let body = serde_json::to_vec(&document).unwrap_or_default();
            return get_only(json_response(StatusCode::OK, content_type, body));
        }
        p if p.starts_with("/healthz/")
            || p.starts_with("/livez/")
            || p.starts_with("/readyz/") =>
        {
            return get_only(text_response(StatusCode::OK, "ok"));
        }
        "/api" | "/apis" => {
            let core = path == "/api";
            let r = match discovery::aggregated_version(accept) {
                Some(v) => {
                    let mut doc = discovery::aggregated(&api.catalog, core, v);
                    if !core && let Some(items) = doc["items"].as_array_mut() {
                        items.extend(api.remote_groups(true).await);
                    }
                    let body = serde_json::to_vec(&doc).unwrap_or_default();
                    // As kube-apiserver: an ETag of the document, and 304 to a
                    // client that already has it (the cluster status
                    // controller asks every member every 10 s).
                    let etag = format!("\"{}\"", openapi::content_hash(&body));
                    let unchanged = parts
                        .headers
                        .get_all(header::IF_NONE_MATCH)
                        .iter()
                        .filter_map(|v| v.to_str().ok())
                        .flat_map(|v| v.split(','))
                        .any(|t| t.trim() == etag);
                    let mut r = if unchanged {
                        let mut r = Response::new(full(Vec::new()));
                        *r.status_mut() = StatusCode::NOT_MODIFIED;
                        r
                    } else {
                        json_response(StatusCode::OK, &discovery::aggregated_content_type(v), body)
                    };
                    if let Ok(value) = HeaderValue::from_str(&etag) {
                        r.headers_mut().insert(header::ETAG, value);
                    }
                    r
                }
                None if core => value_response(
                    StatusCode::OK,
                    &discovery::api_versions(&api.server_address),
                ),
                None => {
                    let mut doc = discovery::api_group_list(&api.catalog);
                    if let Some(groups) = doc["groups"].as_array_mut() {
                        groups.extend(api.remote_groups(false).await);
                    }
                    value_response(StatusCode::OK, &doc)
                }
            };
            return get_only(r);
        }
        "/openapi/v3" => {
            let docs = api.openapi.documents(&api.catalog);
            let mut index = openapi::index(&docs);
            if api.proxy_identity.is_some()
                && let Some(paths) = index["paths"].as_object_mut()
            {
                for r in aggregator::remotes(&api.store.storage.snapshot()) {
                    if !api.catalog.has_version(&r.group, &r.version) {
                        let key = format!("apis/{}/{}", r.group, r.version);
                        paths.insert(
                            key.clone(),
                            json!({"serverRelativeURL": format!("/openapi/v3/{key}")}),
                        );
                    }
                }
            }
            return get_only(value_response(StatusCode::OK, &index));
        }
        p if p.starts_with("/openapi/v3/apis/")
            && let Some((remote, identity)) = p["/openapi/v3/apis/".len()..]
                .split_once('/')
                .and_then(|(g, v)| api.remote(g, v)) =>
        {
            let req = Request::from_parts(parts.clone(), body);
            let user = user.unwrap_or_else(|| Arc::new(aggregator_user()));
            return aggregator::proxy(&remote, &api.store.storage.snapshot(), identity, req, &user)
                .await;
        }
        p if p.starts_with("/openapi/v3/") => {
            let docs = api.openapi.documents(&api.catalog);
            let key = &p["/openapi/v3/".len()..];
            let Some((hash, bytes)) = docs.docs.get(key) else {
                return Err(ApiError::no_route());
            };
            let mut r = json_response(StatusCode::OK, "application/json", bytes.as_ref().clone());
            let headers = r.headers_mut();
            if let Ok(etag) = HeaderValue::from_str(&format!("\"{hash}\"")) {
                headers.insert(header::ETAG, etag);
            }
            let cache = if query.get("hash").is_some_and(|h| h == hash) {
                "public, immutable"
            } else {
                "no-cache, private"
            };
            headers.insert(header::CACHE_CONTROL, HeaderValue::from_static(cache));
            return get_only(r);
        }
        _ => {}
    }
    let route = request_info::parse(&parts.method, path, query);
    let remote = match &route {
        Route::Resource(i) => api.remote(&i.group, &i.version),
        Route::GroupVersion { group, version } => api.remote(group, version),
        _ => None,
    };
    if let Some((remote, identity)) = remote {
        let req = Request::from_parts(parts.clone(), body);
        let user = user.unwrap_or_else(|| Arc::new(aggregator_user()));
        return aggregator::proxy(&remote, &api.store.storage.snapshot(), identity, req, &user)
            .await;
    }
    match route {
        Route::Resource(info) => resource(api, parts, query, info, body, user).await,
        Route::GroupVersion { group, version } => {
            let doc = discovery::api_resource_list(&api.catalog, &group, &version)
                .ok_or_else(ApiError::no_route)?;
            get_only(value_response(StatusCode::OK, &doc))
        }
        Route::Group(group) => {
            let doc = match discovery::api_group_doc(&api.catalog, &group) {
                Some(doc) => doc,
                None => {
                    let mut doc = api
                        .remote_groups(false)
                        .await
                        .into_iter()
                        .find(|g| g["name"] == group.as_str())
                        .ok_or_else(ApiError::no_route)?;
                    doc["kind"] = json!("APIGroup");
                    doc["apiVersion"] = json!("v1");
                    doc
                }
            };
            get_only(value_response(StatusCode::OK, &doc))
        }
        Route::Other => Err(ApiError::no_route()),
    }
}

/// `clusters/NAME/proxy/...`: forwards the request to that member as the caller.
async fn cluster_proxy<B>(
    api: &Arc<Api>,
    parts: &http::request::Parts,
    info: &ResourceInfo,
    req: &RequestInfo,
    body: B,
    user: &Option<Arc<User>>,
) -> Result<Response<Body>>
where
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let name = req.name.as_deref().unwrap_or("");
    let cluster = api.store.get(info, None, name).await?;
    let rest = crate::cluster_proxy::rest_of_path(parts.uri.path(), name).unwrap_or("");
    let user = user.clone().unwrap_or_else(|| Arc::new(aggregator_user()));
    crate::cluster_proxy::proxy(
        &cluster,
        api.member_credentials.as_ref(),
        parts.clone(),
        body,
        rest,
        &user,
    )
    .await
}

/// The identity used for requests the server makes itself through the proxy.
fn aggregator_user() -> User {
    User {
        name: "system:kube-aggregator".into(),
        uid: String::new(),
        groups: vec![authz::SYSTEM_MASTERS.into()],
        extra: Default::default(),
    }
}

fn dry_run(query: &HashMap<String, String>) -> Result<bool> {
    match query.get("dryRun").map(String::as_str) {
        None | Some("") => Ok(false),
        Some("All") => Ok(true),
        Some(other) => Err(ApiError::bad_request(format!(
            "Invalid dry run value: \"{other}\": supported values: \"All\""
        ))),
    }
}

/// The write options of a request: dry run, field manager (default: the
/// User-Agent's program name, as kube-apiserver derives it), force.
fn write_options(
    parts: &http::request::Parts,
    query: &HashMap<String, String>,
    dry_run: bool,
    warnings: &Warnings,
    user: &Option<Arc<User>>,
) -> WriteOptions {
    let field_manager = match query.get("fieldManager").filter(|m| !m.is_empty()) {
        Some(m) => m.clone(),
        None => header_str(parts, header::USER_AGENT)
            .and_then(|ua| ua.split('/').next())
            .filter(|p| !p.is_empty())
            .unwrap_or("unknown")
            .to_string(),
    };
    let field_validation = match query.get("fieldValidation").map(String::as_str) {
        Some("Strict") => FieldValidation::Strict,
        Some("Ignore") => FieldValidation::Ignore,
        _ => FieldValidation::Warn,
    };
    WriteOptions {
        dry_run,
        field_manager,
        force: query.get("force").is_some_and(|f| f == "true"),
        field_validation,
        warnings: warnings.clone(),
        user: user.clone(),
    }
}

/// `fieldValidation` for keys given twice in a JSON body: Strict refuses the
/// request, Warn (the default) warns, Ignore says nothing.
fn report_duplicates(
    info: &ResourceInfo,
    body: &[u8],
    content_type: Option<&str>,
    query: &HashMap<String, String>,
    warnings: &Warnings,
) -> Result<()> {
    let json = matches!(
        codec::media_type(content_type).as_deref(),
        None | Some("application/json")
    );
    let mode = query
        .get("fieldValidation")
        .map(String::as_str)
        .unwrap_or("Warn");
    if !json || mode == "Ignore" {
        return Ok(());
    }
    let duplicates = codec::duplicate_fields(body);
    if duplicates.is_empty() {
        return Ok(());
    }
    let listed: Vec<String> = duplicates
        .iter()
        .map(|d| format!("duplicate field \"{d}\""))
        .collect();
    if mode == "Strict" {
        return Err(ApiError::bad_request(format!(
            "{kind} in version \"{version}\" cannot be handled as a {kind}: strict decoding error: {}",
            listed.join(", "),
            kind = info.kind,
            version = info.version
        )));
    }
    for w in listed {
        warnings.push(w);
    }
    Ok(())
}

fn check_field_validation(query: &HashMap<String, String>) -> Result<()> {
    match query.get("fieldValidation").map(String::as_str) {
        None | Some("") | Some("Strict") | Some("Warn") | Some("Ignore") => Ok(()),
        Some(other) => Err(ApiError::bad_request(format!(
            "fieldValidation parameter unsupported: \"{other}\": supported values: \"Ignore\", \"Strict\", \"Warn\""
        ))),
    }
}

fn list_options(info: &ResourceInfo, query: &HashMap<String, String>) -> Result<ListOptions> {
    let labels = LabelSelector::parse(query.get("labelSelector").map(String::as_str).unwrap_or(""))
        .map_err(ApiError::bad_request)?;
    let fields = FieldSelector::parse(
        query.get("fieldSelector").map(String::as_str).unwrap_or(""),
        &info.field_selectors,
    )
    .map_err(|e| ApiError::bad_request(e))?;
    let limit = match query.get("limit").map(String::as_str) {
        None | Some("") => None,
        Some(l) => Some(
            l.parse::<usize>()
                .map_err(|_| ApiError::bad_request(format!("invalid limit \"{l}\"")))?,
        ),
    };
    Ok(ListOptions {
        labels,
        fields,
        limit,
        continue_token: query.get("continue").filter(|c| !c.is_empty()).cloned(),
        resource_version: query.get("resourceVersion").cloned(),
        resource_version_match: query.get("resourceVersionMatch").cloned(),
    })
}

async fn resource<B>(
    api: &Arc<Api>,
    parts: &http::request::Parts,
    query: &HashMap<String, String>,
    req: RequestInfo,
    body: B,
    user: Option<Arc<User>>,
) -> Result<Response<Body>>
where
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let warnings = Warnings::default();
    let mut response = match resource_verb(api, parts, query, req, body, &warnings, &user).await {
        Ok(r) => r,
        Err(e) => error_response(&e),
    };
    for w in warnings.take() {
        let text = format!("299 - \"{}\"", w.replace('\\', "\\\\").replace('"', "\\\""));
        if let Ok(v) = HeaderValue::from_str(&text) {
            response.headers_mut().append(header::WARNING, v);
        }
    }
    Ok(response)
}

async fn resource_verb<B>(
    api: &Arc<Api>,
    parts: &http::request::Parts,
    query: &HashMap<String, String>,
    req: RequestInfo,
    body: B,
    warnings: &Warnings,
    user: &Option<Arc<User>>,
) -> Result<Response<Body>>
where
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    if let Some(kind) = review_kind(&req) {
        let bytes = read_body(body).await?;
        let review = codec::decode_object(header_str(parts, header::CONTENT_TYPE), &bytes)?;
        return review_response(api, kind, &req, &review, user);
    }
    let info = api
        .catalog
        .get(&req.group, &req.version, &req.resource)
        .ok_or_else(ApiError::no_route)?;
    if !info.namespaced && req.namespace.is_some() {
        return Err(ApiError::no_route());
    }
    if info.create_only && req.verb != Verb::Create {
        return Err(ApiError::method_not_allowed(format!(
            "{} only supports create",
            crate::status::qualified(&info.plural, &info.group)
        )));
    }
    let namespace = req.namespace.as_deref();
    if req.name.is_none() && matches!(req.verb, Verb::Update | Verb::Patch) {
        return Err(ApiError::method_not_allowed(format!(
            "the server does not allow this method on the requested resource ({} on a collection)",
            if req.verb == Verb::Update {
                "PUT"
            } else {
                "PATCH"
            }
        )));
    }
    let needs_namespace = matches!(
        req.verb,
        Verb::Get | Verb::Create | Verb::Update | Verb::Patch | Verb::Delete
    );
    if info.namespaced && namespace.is_none() && needs_namespace {
        return Err(ApiError::no_route());
    }
    if let Some(sub) = req.subresource.as_deref()
        && (sub == "proxy" || sub.starts_with("proxy/"))
        && crate::registry::cluster::is_cluster(&info)
    {
        return cluster_proxy(api, parts, &info, &req, body, user).await;
    }
    let part = match req.subresource.as_deref() {
        None => Part::Main,
        Some("status") if info.status_subresource => Part::Status,
        Some("scale") if info.scale_subresource => {
            return scale(api, parts, query, &info, &req, body, warnings, user).await;
        }
        Some("token") if info.group.is_empty() && info.plural == "serviceaccounts" => {
            return token_request(api, parts, &info, &req, body).await;
        }
        Some(_) => return Err(ApiError::no_route()),
    };
    if part == Part::Status && !matches!(req.verb, Verb::Get | Verb::Update | Verb::Patch) {
        return Err(ApiError::method_not_allowed(
            "the server does not allow this method on the requested resource",
        ));
    }
    let accept = header_str(parts, header::ACCEPT);
    let output = codec::negotiate(accept)?;
    let include = IncludeObject::parse(query.get("includeObject").map(String::as_str));
    let content_type = header_str(parts, header::CONTENT_TYPE);
    let store = &api.store;
    match req.verb {
        Verb::Get => {
            let name = req.name.as_deref().unwrap_or("");
            let object = store.get(&info, namespace, name).await?;
            Ok(object_response(
                &info,
                StatusCode::OK,
                &object,
                output,
                include,
            ))
        }
        Verb::List => {
            let opts = list_options(&info, query)?;
            let result = store.list(&info, namespace, &opts).await?;
            Ok(list_response(&info, &result, output, include))
        }
        Verb::Watch => {
            let list = list_options(&info, query)?;
            let mut fields = list.fields;
            if let Some(name) = &req.name {
                // Legacy /watch/.../NAME watches one object.
                fields = FieldSelector::parse(&format!("metadata.name={name}"), &[])
                    .map_err(ApiError::bad_request)?;
            }
            let opts = WatchOptions {
                labels: list.labels,
                fields,
                resource_version: list.resource_version,
                send_initial_events: query.get("sendInitialEvents").is_some_and(|v| v == "true"),
                allow_bookmarks: query
                    .get("allowWatchBookmarks")
                    .is_some_and(|v| v == "true" || v == "1"),
            };
            let timeout = query
                .get("timeoutSeconds")
                .and_then(|t| t.parse::<u64>().ok())
                .map(Duration::from_secs)
                .unwrap_or(api.max_watch)
                .min(api.max_watch);
            let allow_bookmarks = opts.allow_bookmarks;
            let events = store.watch(&info, namespace, opts)?;
            Ok(watch::response(
                info.clone(),
                events,
                watch::Config {
                    output,
                    include,
                    timeout,
                    bookmarks: allow_bookmarks.then_some(api.bookmark_interval),
                },
            ))
        }
        Verb::Create => {
            check_field_validation(query)?;
            let dry = dry_run(query)?;
            let bytes = read_body(body).await?;
            let object = codec::decode_object(content_type, &bytes)?;
            report_duplicates(&info, &bytes, content_type, query, warnings)?;
            if req.name.is_some() {
                return Err(ApiError::method_not_allowed(
                    "POST is not allowed on an object; use PUT or PATCH",
                ));
            }
            let created = store
                .create(
                    &info,
                    namespace,
                    object,
                    &write_options(parts, query, dry, warnings, user),
                )
                .await?;
            Ok(object_response(
                &info,
                StatusCode::CREATED,
                &created,
                output,
                include,
            ))
        }
        Verb::Update => {
            check_field_validation(query)?;
            let dry = dry_run(query)?;
            let bytes = read_body(body).await?;
            let object = codec::decode_object(content_type, &bytes)?;
            report_duplicates(&info, &bytes, content_type, query, warnings)?;
            let name = req.name.as_deref().unwrap_or("");
            let updated = store
                .update(
                    &info,
                    namespace,
                    name,
                    object,
                    part,
                    &write_options(parts, query, dry, warnings, user),
                )
                .await?;
            Ok(object_response(
                &info,
                StatusCode::OK,
                &updated,
                output,
                include,
            ))
        }
        Verb::Patch => {
            check_field_validation(query)?;
            let dry = dry_run(query)?;
            let patch_type = codec::media_type(content_type)
                .as_deref()
                .and_then(PatchType::from_content_type)
                .ok_or_else(|| {
                    ApiError::unsupported_media_type(&[
                        "application/json-patch+json",
                        "application/merge-patch+json",
                        "application/apply-patch+yaml",
                        "application/strategic-merge-patch+json",
                    ])
                })?;
            let bytes = read_body(body).await?;
            let patch = match patch_type {
                PatchType::Apply => codec::decode_text(&bytes)?,
                _ => serde_json::from_slice::<Value>(&bytes).map_err(|e| {
                    ApiError::bad_request(format!("the patch is not valid JSON: {e}"))
                })?,
            };
            let name = req.name.as_deref().unwrap_or("");
            let opts = write_options(parts, query, dry, warnings, user);
            if patch_type == PatchType::Apply {
                let (applied, created) = store
                    .apply(&info, namespace, name, patch, part, &opts)
                    .await?;
                let code = if created {
                    StatusCode::CREATED
                } else {
                    StatusCode::OK
                };
                return Ok(object_response(&info, code, &applied, output, include));
            }
            let patched = store
                .patch(&info, namespace, name, patch_type, &patch, part, &opts)
                .await?;
            Ok(object_response(
                &info,
                StatusCode::OK,
                &patched,
                output,
                include,
            ))
        }
        Verb::Delete => {
            let mut opts = delete_options(query, &read_body(body).await?)?;
            opts.user = user.clone();
            let name = req.name.as_deref().unwrap_or("");
            let deleted = store.delete(&info, namespace, name, &opts).await?;
            Ok(object_response(
                &info,
                StatusCode::OK,
                &deleted,
                output,
                include,
            ))
        }
        Verb::DeleteCollection => {
            let mut opts = delete_options(query, &read_body(body).await?)?;
            opts.user = user.clone();
            let list = list_options(&info, query)?;
            let result = store
                .delete_collection(&info, namespace, &list, &opts)
                .await?;
            Ok(list_response(&info, &result, output, include))
        }
    }
}

/// Parses `DeleteOptions` from the body (optional) and query.
fn propagation(p: &str) -> Result<Propagation> {
    match p {
        "Background" => Ok(Propagation::Background),
        "Foreground" => Ok(Propagation::Foreground),
        "Orphan" => Ok(Propagation::Orphan),
        other => Err(ApiError::bad_request(format!(
            "DeleteOptions.propagationPolicy: Unsupported value: \"{other}\": supported values: \"Background\", \"Foreground\", \"Orphan\""
        ))),
    }
}

fn delete_options(query: &HashMap<String, String>, body: &[u8]) -> Result<DeleteOptions> {
    let mut opts = DeleteOptions {
        dry_run: dry_run(query)?,
        ..Default::default()
    };
    if let Some(p) = query.get("propagationPolicy").filter(|p| !p.is_empty()) {
        opts.propagation = propagation(p)?;
    }
    if !body.iter().all(u8::is_ascii_whitespace) {
        let v = codec::decode_text(body)?;
        if let Some(kind) = v.get("kind").and_then(Value::as_str)
            && kind != "DeleteOptions"
        {
            return Err(ApiError::bad_request(format!(
                "expected a DeleteOptions body, found kind {kind}"
            )));
        }
        if let Some(d) = v.get("dryRun").and_then(Value::as_array) {
            opts.dry_run |= d.iter().any(|x| x == "All");
        }
        if let Some(p) = v.get("propagationPolicy").and_then(Value::as_str) {
            opts.propagation = propagation(p)?;
        }
        if v.get("orphanDependents") == Some(&Value::Bool(true)) {
            opts.propagation = Propagation::Orphan;
        }
        opts.precondition_uid = v
            .pointer("/preconditions/uid")
            .and_then(Value::as_str)
            .map(str::to_string);
        opts.precondition_resource_version = v
            .pointer("/preconditions/resourceVersion")
            .and_then(Value::as_str)
            .map(str::to_string);
    }
    Ok(opts)
}

/// One object in the requested representation.
fn object_response(
    info: &ResourceInfo,
    status: StatusCode,
    object: &Arc<Value>,
    output: Output,
    include: IncludeObject,
) -> Response<Body> {
    match output {
        Output::Json => json_response(
            status,
            "application/json",
            serde_json::to_vec(object.as_ref()).unwrap_or_default(),
        ),
        Output::Yaml => yaml_response(status, object),
        Output::Metadata => value_response(status, &table::partial_metadata(object)),
        Output::Table => {
            let meta = ListMeta {
                resource_version: meta_str(object, "resourceVersion").to_string(),
                ..Default::default()
            };
            let t = table::table(info, std::slice::from_ref(object), include, &meta, true);
            json_response(
                status,
                "application/json;as=Table;v=v1;g=meta.k8s.io",
                serde_json::to_vec(&t).unwrap_or_default(),
            )
        }
    }
}

fn yaml_response(status: StatusCode, value: &Value) -> Response<Body> {
    match serde_saphyr::to_string(value) {
        Ok(text) => {
            let mut r = Response::new(full(text));
            *r.status_mut() = status;
            r.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/yaml"),
            );
            r
        }
        Err(e) => error_response(&ApiError::internal(format!("failed to encode YAML: {e}"))),
    }
}

/// A list in the requested representation; JSON lists are written item by item.
fn list_response(
    info: &ResourceInfo,
    result: &ListResult,
    output: Output,
    include: IncludeObject,
) -> Response<Body> {
    let meta = ListMeta {
        resource_version: result.revision.to_string(),
        continue_token: result.continue_token.clone(),
        remaining: result.remaining,
    };
    let metadata = meta.to_json();
    match output {
        Output::Table => {
            let items: Vec<Arc<Value>> = result.items.iter().map(Object::value).collect();
            let mut out = Vec::with_capacity(256 + items.len() * 512);
            table::write_table(&mut out, info, &items, include, &meta);
            json_response(
                StatusCode::OK,
                "application/json;as=Table;v=v1;g=meta.k8s.io",
                out,
            )
        }
        Output::Metadata => {
            let items: Vec<Value> = result
                .items
                .iter()
                .map(|o| table::partial_metadata(&o.value()))
                .collect();
            let list = json!({"kind": "PartialObjectMetadataList", "apiVersion": "meta.k8s.io/v1", "metadata": metadata, "items": items});
            value_response(StatusCode::OK, &list)
        }
        Output::Yaml => {
            let list = json!({"kind": info.list_kind(), "apiVersion": info.api_version(), "metadata": metadata,
                "items": result.items.iter().map(|i| Arc::unwrap_or_clone(i.value())).collect::<Vec<_>>()});
            yaml_response(StatusCode::OK, &list)
        }
        Output::Json => {
            let mut out = Vec::with_capacity(256 + result.items.len() * 1024);
            out.extend_from_slice(b"{\"kind\":");
            let _ = serde_json::to_writer(&mut out, &info.list_kind());
            out.extend_from_slice(b",\"apiVersion\":");
            let _ = serde_json::to_writer(&mut out, &info.api_version());
            out.extend_from_slice(b",\"metadata\":");
            let _ = serde_json::to_writer(&mut out, &metadata);
            out.extend_from_slice(b",\"items\":[");
            for (i, item) in result.items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                match item {
                    Object::Json { json, .. } => out.extend_from_slice(json),
                    Object::Value(value) => {
                        let _ = serde_json::to_writer(&mut out, value.as_ref());
                    }
                }
            }
            out.extend_from_slice(b"]}");
            json_response(StatusCode::OK, "application/json", out)
        }
    }
}

/// The review "resources" answered by the server itself: SelfSubjectAccessReview,
/// SelfSubjectRulesReview, SubjectAccessReview, LocalSubjectAccessReview
/// (authorization.k8s.io), SelfSubjectReview and TokenReview
/// (authentication.k8s.io), as `kubectl auth can-i`, `auth whoami` and aggregated
/// servers delegating authentication and authorization use them.
fn review_kind(req: &RequestInfo) -> Option<&'static str> {
    match (
        req.group.as_str(),
        req.version.as_str(),
        req.resource.as_str(),
        req.verb,
    ) {
        ("authorization.k8s.io", "v1", "selfsubjectaccessreviews", Verb::Create) => Some("access"),
        ("authorization.k8s.io", "v1", "selfsubjectrulesreviews", Verb::Create) => Some("rules"),
        ("authentication.k8s.io", "v1", "selfsubjectreviews", Verb::Create) => Some("whoami"),
        ("authentication.k8s.io", "v1", "tokenreviews", Verb::Create) => Some("token"),
        ("authorization.k8s.io", "v1", "subjectaccessreviews", Verb::Create)
            if req.namespace.is_none() =>
        {
            Some("subject")
        }
        ("authorization.k8s.io", "v1", "localsubjectaccessreviews", Verb::Create)
            if req.namespace.is_some() =>
        {
            Some("local")
        }
        _ => None,
    }
}

fn review_response(
    api: &Arc<Api>,
    kind: &str,
    req: &RequestInfo,
    review: &Value,
    user: &Option<Arc<User>>,
) -> Result<Response<Body>> {
    let user = user.clone().unwrap_or_else(|| {
        Arc::new(User {
            name: "system:apiserver".into(),
            uid: String::new(),
            groups: vec![authz::SYSTEM_MASTERS.into()],
            extra: Default::default(),
        })
    });
    let snapshot = api.store.storage.snapshot();
    let answer = match kind {
        "access" => authz::self_subject_access_review(&snapshot, &user, review)?,
        "rules" => authz::self_subject_rules_review(&snapshot, &user, review)?,
        "token" => crate::server::auth::token_review(&api.authenticator, &snapshot, review)?,
        "subject" => authz::subject_access_review(&snapshot, review, None)?,
        "local" => authz::subject_access_review(&snapshot, review, req.namespace.as_deref())?,
        _ => authz::self_subject_review(&user),
    };
    Ok(value_response(StatusCode::CREATED, &answer))
}

/// `POST .../serviceaccounts/NAME/token`: an authentication.k8s.io/v1
/// `TokenRequest` in (JSON or protobuf), the same with `status.token` out.
async fn token_request<B>(
    api: &Arc<Api>,
    parts: &http::request::Parts,
    info: &ResourceInfo,
    req: &RequestInfo,
    body: B,
) -> Result<Response<Body>>
where
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    if req.verb != Verb::Create {
        return Err(ApiError::method_not_allowed(
            "the server does not allow this method on the requested resource",
        ));
    }
    let Some(signer) = api.authenticator.service_accounts.as_ref() else {
        return Err(ApiError::internal(
            "this server issues no service-account tokens",
        ));
    };
    let bytes = read_body(body).await?;
    let request = if bytes.is_empty() {
        json!({})
    } else {
        codec::decode_object(header_str(parts, header::CONTENT_TYPE), &bytes)?
    };
    let name = req.name.as_deref().unwrap_or("");
    let service_account = api.store.get(info, req.namespace.as_deref(), name).await?;
    // A bound object must exist now; its uid goes into the token (kube answers
    // the object's own 404 when it does not).
    let bound = match crate::server::service_account::bound_object_ref(&request, name)? {
        Some((kind, object, _)) => {
            let (plural, namespace) = match kind.as_str() {
                "Pod" => ("pods", req.namespace.as_deref()),
                "Secret" => ("secrets", req.namespace.as_deref()),
                _ => ("nodes", None),
            };
            let snapshot = api.store.storage.snapshot();
            let key = match namespace {
                Some(ns) => format!("/core/{plural}/{ns}/{object}"),
                None => format!("/core/{plural}/{object}"),
            };
            match snapshot.get(&key) {
                Some(kv) => Some(kv.value()),
                None => return Err(ApiError::not_found("", plural, &object)),
            }
        }
        None => None,
    };
    let answer = crate::server::service_account::token_request(
        signer,
        &service_account,
        &request,
        bound.as_deref(),
        crate::server::service_account::unix_now(),
    )?;
    Ok(value_response(StatusCode::CREATED, &answer))
}

/// The `autoscaling/v1` Scale of a scalable object.
/// JSON pointer of a `.a.b` path from a CRD's scale subresource.
fn dotted_pointer(path: &str) -> String {
    path.split('.')
        .filter(|p| !p.is_empty())
        .map(|p| format!("/{p}"))
        .collect()
}

/// Where a kind keeps its replica counts and selector: (spec, status, selector string).
fn scale_paths(info: &ResourceInfo) -> (String, String, Option<String>) {
    match info.custom.as_ref().and_then(|c| c.scale.as_ref()) {
        Some(p) => (
            dotted_pointer(&p.spec_replicas),
            dotted_pointer(&p.status_replicas),
            p.label_selector.as_deref().map(dotted_pointer),
        ),
        None => ("/spec/replicas".into(), "/status/replicas".into(), None),
    }
}

fn scale_of(info: &ResourceInfo, object: &Value) -> Value {
    let (spec_path, status_path, selector_path) = scale_paths(info);
    let custom_selector = selector_path
        .and_then(|p| object.pointer(&p))
        .and_then(Value::as_str)
        .map(String::from);
    let builtin_selector = object
        .pointer("/spec/selector")
        .filter(|_| info.custom.is_none())
        .map(|s| table::selector_string(Some(s)));
    let meta = object.get("metadata").cloned().unwrap_or_else(|| json!({}));
    let mut metadata = json!({});
    for f in [
        "name",
        "namespace",
        "uid",
        "resourceVersion",
        "creationTimestamp",
    ] {
        if let Some(v) = meta.get(f) {
            metadata[f] = v.clone();
        }
    }
    let selector = custom_selector.or(builtin_selector);
    let mut status =
        json!({"replicas": object.pointer(&status_path).and_then(Value::as_i64).unwrap_or(0)});
    if let Some(sel) = selector {
        status["selector"] = json!(sel);
    }
    json!({
        "kind": "Scale",
        "apiVersion": "autoscaling/v1",
        "metadata": metadata,
        "spec": {"replicas": object.pointer(&spec_path).and_then(Value::as_i64).unwrap_or(1)},
        "status": status,
    })
}

/// The `/scale` subresource: read and write `spec.replicas` through a Scale.
async fn scale<B>(
    api: &Arc<Api>,
    parts: &http::request::Parts,
    query: &HashMap<String, String>,
    info: &ResourceInfo,
    req: &RequestInfo,
    body: B,
    warnings: &Warnings,
    user: &Option<Arc<User>>,
) -> Result<Response<Body>>
where
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let namespace = req.namespace.as_deref();
    let name = req.name.as_deref().unwrap_or("");
    let store = &api.store;
    let dry = dry_run(query)?;
    let new_scale = match req.verb {
        Verb::Get => {
            let object = store.get(info, namespace, name).await?;
            return Ok(value_response(StatusCode::OK, &scale_of(info, &object)));
        }
        Verb::Update => {
            let bytes = read_body(body).await?;
            let s = codec::decode_object(header_str(parts, header::CONTENT_TYPE), &bytes)?;
            if let Some(k) = s.get("kind").and_then(Value::as_str)
                && k != "Scale"
            {
                return Err(ApiError::bad_request(format!(
                    "expected a Scale, found kind {k}"
                )));
            }
            s
        }
        Verb::Patch => {
            let patch_type = codec::media_type(header_str(parts, header::CONTENT_TYPE))
                .as_deref()
                .and_then(PatchType::from_content_type)
                .filter(|t| *t != PatchType::Apply)
                .ok_or_else(|| {
                    ApiError::unsupported_media_type(&[
                        "application/json-patch+json",
                        "application/merge-patch+json",
                        "application/strategic-merge-patch+json",
                    ])
                })?;
            let bytes = read_body(body).await?;
            let patch: Value = serde_json::from_slice(&bytes)
                .map_err(|e| ApiError::bad_request(format!("the patch is not valid JSON: {e}")))?;
            let mut s = scale_of(info, &*store.get(info, namespace, name).await?);
            match patch_type {
                PatchType::Json => crate::registry::patch::json(&mut s, &patch)
                    .map_err(|e| ApiError::new(422, "Invalid", e.to_string()))?,
                PatchType::Strategic => crate::registry::patch::strategic(&mut s, &patch)
                    .map_err(|e| ApiError::bad_request(e.to_string()))?,
                _ => crate::registry::patch::merge(&mut s, &patch),
            }
            s
        }
        _ => {
            return Err(ApiError::method_not_allowed(
                "the server does not allow this method on the requested resource",
            ));
        }
    };
    let replicas = new_scale
        .pointer("/spec/replicas")
        .and_then(Value::as_i64)
        .unwrap_or(0);
    if replicas < 0 {
        return Err(ApiError::invalid(
            "autoscaling",
            "Scale",
            name,
            vec![crate::status::Cause::new(
                "FieldValueInvalid",
                "spec.replicas",
                format!("Invalid value: {replicas}: must be greater than or equal to 0"),
            )],
        ));
    }
    let rv = meta_str(&new_scale, "resourceVersion").to_string();
    let (spec_path, _, _) = scale_paths(info);
    let mut merge = json!({});
    if let Some(slot) = merge.pointer_mut("") {
        let mut node = slot;
        let segments: Vec<&str> = spec_path.split('/').filter(|p| !p.is_empty()).collect();
        for (i, seg) in segments.iter().enumerate() {
            node[*seg] = if i + 1 == segments.len() {
                json!(replicas)
            } else {
                json!({})
            };
            node = &mut node[*seg];
        }
    }
    if !rv.is_empty() {
        merge["metadata"] = json!({"resourceVersion": rv});
    }
    let updated = store
        .patch(
            info,
            namespace,
            name,
            PatchType::Merge,
            &merge,
            Part::Main,
            &write_options(parts, query, dry, warnings, user),
        )
        .await?;
    Ok(value_response(StatusCode::OK, &scale_of(info, &updated)))
}
