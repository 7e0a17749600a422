//! Watch responses: a long-lived stream of `{"type": ..., "object": ...}` JSON
//! values, one per chunk, with bookmarks, a timeout, and Table-typed objects when
//! the client asked for Tables.

use std::convert::Infallible;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::StreamExt;
use futures::stream::BoxStream;
use http::{HeaderValue, Response, StatusCode, header};
use http_body::Frame;
use http_body_util::{BodyExt, StreamBody};
use serde_json::{Value, json};

use super::Body;
use super::codec::Output;
use super::table::{self, IncludeObject, ListMeta};
use crate::registry::ResourceInfo;
use crate::registry::meta::meta_str;
use crate::registry::store::WatchEvent;

/// How a watch is encoded and bounded.
pub struct Config {
    pub output: Output,
    pub include: IncludeObject,
    pub timeout: Duration,
    /// Interval of idle bookmarks, when the client allows them.
    pub bookmarks: Option<Duration>,
}

struct State {
    info: Arc<ResourceInfo>,
    events: BoxStream<'static, WatchEvent>,
    deadline: Pin<Box<tokio::time::Sleep>>,
    ticker: Option<tokio::time::Interval>,
    config: Config,
    last_revision: String,
    headers_sent: bool,
    done: bool,
}

impl State {
    fn encode_object(&mut self, object: &Arc<Value>) -> Value {
        match self.config.output {
            Output::Table => {
                let meta = ListMeta {
                    resource_version: meta_str(object, "resourceVersion").to_string(),
                    ..Default::default()
                };
                let headers = !self.headers_sent;
                self.headers_sent = true;
                table::table(
                    &self.info,
                    std::slice::from_ref(object),
                    self.config.include,
                    &meta,
                    headers,
                )
            }
            Output::Metadata => table::partial_metadata(object),
            Output::Json | Output::Yaml => object.as_ref().clone(),
        }
    }

    fn bookmark(&self, initial_end: bool) -> Value {
        let mut metadata = json!({"resourceVersion": self.last_revision});
        if initial_end {
            metadata["annotations"] = json!({"k8s.io/initial-events-end": "true"});
        }
        json!({"type": "BOOKMARK", "object": {"kind": self.info.kind, "apiVersion": self.info.api_version(), "metadata": metadata}})
    }

    /// Turns a registry event into the bytes of one wire event, if it is sent.
    fn encode(&mut self, event: WatchEvent) -> Option<Bytes> {
        let (kind, object) = match event {
            WatchEvent::Added(o) => ("ADDED", o),
            WatchEvent::Modified(o) => ("MODIFIED", o),
            WatchEvent::Deleted(o) => ("DELETED", o),
            WatchEvent::Progress(rev) => {
                self.last_revision = rev.to_string();
                return None;
            }
            WatchEvent::InitialEventsEnd(rev) => {
                self.last_revision = rev.to_string();
                return Some(line(&self.bookmark(true)));
            }
            WatchEvent::Error(e) => {
                self.done = true;
                return Some(line(&json!({"type": "ERROR", "object": e.to_status()})));
            }
        };
        let head = object.head();
        let rv = head.resource_version();
        if !rv.is_empty() {
            self.last_revision = rv.to_string();
        }
        if let (Some(json), Output::Json | Output::Yaml) = (object.json(), self.config.output) {
            // The stored encoding, framed without re-serializing the object.
            let mut out = Vec::with_capacity(json.len() + 32);
            out.extend_from_slice(b"{\"type\":\"");
            out.extend_from_slice(kind.as_bytes());
            out.extend_from_slice(b"\",\"object\":");
            out.extend_from_slice(json);
            out.extend_from_slice(b"}\n");
            return Some(Bytes::from(out));
        }
        let encoded = self.encode_object(&object.value());
        Some(line(&json!({"type": kind, "object": encoded})))
    }
}

fn line(v: &Value) -> Bytes {
    let mut out = serde_json::to_vec(v).unwrap_or_default();
    out.push(b'\n');
    Bytes::from(out)
}

/// The streaming response of a watch.
pub fn response(
    info: Arc<ResourceInfo>,
    events: BoxStream<'static, WatchEvent>,
    config: Config,
) -> Response<Body> {
    let ticker = config.bookmarks.map(|every| {
        // The first one at a random point of the interval, so that watches
        // started together (every cache of a process at start-up) do not all
        // send their bookmarks at the same instant, ever after.
        let first = every.mul_f64(rand::random_range(0.5..=1.0));
        let mut t = tokio::time::interval_at(tokio::time::Instant::now() + first, every);
        t.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        t
    });
    let state = State {
        info,
        events,
        deadline: Box::pin(tokio::time::sleep(config.timeout)),
        ticker,
        config,
        last_revision: String::new(),
        headers_sent: false,
        done: false,
    };
    let stream = futures::stream::unfold(state, |mut st| async move {
        if st.done {
            return None;
        }
        loop {
            enum Next {
                End,
                Deadline,
                Event(WatchEvent),
                Tick,
            }
            let next = {
                let State {
                    deadline,
                    events,
                    ticker,
                    ..
                } = &mut st;
                let tick = async {
                    match ticker.as_mut() {
                        Some(t) => {
                            t.tick().await;
                        }
                        None => futures::future::pending::<()>().await,
                    }
                };
                tokio::select! {
                    _ = deadline.as_mut() => Next::Deadline,
                    event = events.next() => event.map_or(Next::End, Next::Event),
                    _ = tick => Next::Tick,
                }
            };
            match next {
                Next::End => return None,
                // As kube-apiserver does, a last bookmark before the timeout, so
                // that the client resumes from where the store is now (not from
                // its last event, which may have left the history by then).
                Next::Deadline => {
                    st.done = true;
                    if st.config.bookmarks.is_some() && !st.last_revision.is_empty() {
                        let b = line(&st.bookmark(false));
                        return Some((Ok(Frame::data(b)), st));
                    }
                    return None;
                }
                Next::Event(event) => {
                    if let Some(bytes) = st.encode(event) {
                        return Some((Ok::<_, Infallible>(Frame::data(bytes)), st));
                    }
                }
                Next::Tick => {
                    if !st.last_revision.is_empty() {
                        let b = line(&st.bookmark(false));
                        return Some((Ok(Frame::data(b)), st));
                    }
                }
            }
        }
    });
    let mut r = Response::new(StreamBody::new(stream).boxed_unsync());
    *r.status_mut() = StatusCode::OK;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    r.headers_mut().insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("no-cache, private"),
    );
    r
}
