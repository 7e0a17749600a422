//! Authorization of cached reads: the cache is filled with the control plane's
//! rights, so before serving a caller anything from it we ask the member whether
//! the caller may read it (a SubjectAccessReview with the caller's user, groups,
//! UID and extras), and remember the answer briefly (allowed and denied answers
//! have separate lifetimes). Live reads need none of this: they impersonate the
//! caller, and the member decides.
//!
//! An allowed answer that has expired but is younger than [`Ttl::stale`] is
//! used once more while a new review runs in the background, so a cached read
//! does not wait on the member's review (on a loaded member, the review alone
//! could take the whole per-cluster timeout); the new answer serves the next
//! request. A denied or older answer is reviewed before the caller is served.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use super::member::{self, Member};
use crate::server::auth::User;

type Key = (String, Question);

/// How long answers are remembered.
#[derive(Debug, Clone, Copy)]
pub struct Ttl {
    pub allowed: Duration,
    pub denied: Duration,
    /// How long an expired allowed answer still serves while it is reviewed
    /// again, or when the member cannot review in time.
    pub stale: Duration,
}

impl Default for Ttl {
    fn default() -> Self {
        Ttl {
            allowed: Duration::from_secs(10),
            denied: Duration::from_secs(2),
            stale: Duration::from_secs(120),
        }
    }
}

/// What is asked of a member.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Question {
    pub cluster: String,
    pub verb: String,
    pub group: String,
    pub resource: String,
    /// `""`: every namespace (or a cluster-scoped resource).
    pub namespace: String,
    pub name: String,
}

/// Remembered answers, by caller and question.
#[derive(Default)]
pub struct Access {
    ttl: Ttl,
    answers: Arc<Mutex<HashMap<Key, (bool, Instant)>>>,
    /// Questions whose review runs in the background.
    refreshing: Arc<Mutex<HashSet<Key>>>,
}

fn user_key(user: &User) -> String {
    format!(
        "{}\u{0}{}\u{0}{}\u{0}{:?}",
        user.name,
        user.uid,
        user.groups.join(","),
        user.extra
    )
}

impl Access {
    pub fn new(ttl: Ttl) -> Self {
        Access {
            ttl,
            answers: Arc::default(),
            refreshing: Arc::default(),
        }
    }

    /// Whether `user` may do `q` on `member`; a review that fails counts as denied
    /// (the reason is returned).
    pub async fn allowed(
        &self,
        member: &Member,
        user: &User,
        q: &Question,
        timeout: Duration,
    ) -> Result<bool, String> {
        let key = (user_key(user), q.clone());
        let previous = self
            .answers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&key)
            .copied();
        if let Some((allowed, at)) = previous {
            let ttl = if allowed {
                self.ttl.allowed
            } else {
                self.ttl.denied
            };
            if at.elapsed() < ttl {
                return Ok(allowed);
            }
            if allowed && at.elapsed() < self.ttl.stale {
                self.refresh(member, user, q, key, timeout);
                return Ok(true);
            }
        }
        match review(member, user, q, timeout).await {
            Ok(allowed) => {
                remember(&self.answers, key, allowed);
                Ok(allowed)
            }
            // A member too slow to review keeps its last answer for a while, so an
            // overloaded member does not drop out of cached reads.
            Err(_) if previous.is_some_and(|(_, at)| at.elapsed() < self.ttl.stale) => {
                Ok(previous.is_some_and(|(allowed, _)| allowed))
            }
            Err(e) => Err(e),
        }
    }

    /// Reviews `q` again in the background, unless that already runs.
    fn refresh(&self, member: &Member, user: &User, q: &Question, key: Key, timeout: Duration) {
        if !self
            .refreshing
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(key.clone())
        {
            return;
        }
        let (answers, refreshing) = (self.answers.clone(), self.refreshing.clone());
        let (member, user, q) = (member.clone(), user.clone(), q.clone());
        tokio::spawn(async move {
            match review(&member, &user, &q, timeout).await {
                Ok(allowed) => remember(&answers, key.clone(), allowed),
                Err(e) => {
                    tracing::debug!(cluster = %q.cluster, error = %e, "access review failed; the last answer stands")
                }
            }
            refreshing
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .remove(&key);
        });
    }
}

/// Records an answer (the map is emptied when it grows past 10,000 answers).
fn remember(answers: &Mutex<HashMap<Key, (bool, Instant)>>, key: Key, allowed: bool) {
    let mut answers = answers.lock().unwrap_or_else(|e| e.into_inner());
    if answers.len() > 10_000 {
        answers.clear();
    }
    answers.insert(key, (allowed, Instant::now()));
}

/// Sends one SubjectAccessReview to the member.
async fn review(
    member: &Member,
    user: &User,
    q: &Question,
    timeout: Duration,
) -> Result<bool, String> {
    let mut attrs = json!({"verb": q.verb, "group": q.group, "resource": q.resource});
    if !q.namespace.is_empty() {
        attrs["namespace"] = json!(q.namespace);
    }
    if !q.name.is_empty() {
        attrs["name"] = json!(q.name);
    }
    let mut spec = json!({"user": user.name, "groups": user.groups, "resourceAttributes": attrs});
    if !user.uid.is_empty() {
        spec["uid"] = json!(user.uid);
    }
    if !user.extra.is_empty() {
        spec["extra"] = json!(user.extra);
    }
    let review = json!({
        "apiVersion": "authorization.k8s.io/v1", "kind": "SubjectAccessReview", "spec": spec,
    });
    let answer = member::call(
        member,
        http::Method::POST,
        "/apis/authorization.k8s.io/v1/subjectaccessreviews",
        None,
        serde_json::to_vec(&review).unwrap_or_default(),
        timeout,
    )
    .await
    .map_err(|e| e.0)?;
    if !answer.status.is_success() {
        return Err(format!("SubjectAccessReview failed: {}", answer.message()));
    }
    Ok(answer.json().pointer("/status/allowed") == Some(&Value::Bool(true)))
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

    use bytes::Bytes;
    use http_body_util::{BodyExt, Full};

    use super::*;

    /// A member that answers SubjectAccessReviews over plain HTTP with
    /// `allow`, holding each answer while `hold` is set; counts the reviews.
    struct FakeMember {
        member: Member,
        allow: Arc<AtomicBool>,
        hold: Arc<tokio::sync::watch::Sender<bool>>,
        reviews: Arc<AtomicUsize>,
        task: tokio::task::JoinHandle<()>,
    }

    async fn fake_member() -> FakeMember {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let allow = Arc::new(AtomicBool::new(true));
        let (hold, held) = tokio::sync::watch::channel(false);
        let reviews = Arc::new(AtomicUsize::new(0));
        let (allow_in, reviews_in) = (allow.clone(), reviews.clone());
        let task = tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                let (allow, reviews, held) = (allow_in.clone(), reviews_in.clone(), held.clone());
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(
                        move |req: http::Request<hyper::body::Incoming>| {
                            let (allow, reviews, mut held) =
                                (allow.clone(), reviews.clone(), held.clone());
                            async move {
                                let _ = req.into_body().collect().await?;
                                reviews.fetch_add(1, Ordering::SeqCst);
                                let _ = held.wait_for(|h| !h).await;
                                let answer = json!({"apiVersion": "authorization.k8s.io/v1",
                                    "kind": "SubjectAccessReview",
                                    "status": {"allowed": allow.load(Ordering::SeqCst)}});
                                Ok::<_, hyper::Error>(http::Response::new(Full::new(Bytes::from(
                                    answer.to_string(),
                                ))))
                            }
                        },
                    );
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(hyper_util::rt::TokioIo::new(tcp), service)
                        .await;
                });
            }
        });
        let config = kube::Config::new(format!("http://{addr}").parse().expect("uri"));
        let member = Member {
            name: "member1".into(),
            client: kube::Client::try_from(config).expect("client"),
            fingerprint: String::new(),
        };
        FakeMember {
            member,
            allow,
            hold: Arc::new(hold),
            reviews,
            task,
        }
    }

    fn question() -> Question {
        Question {
            cluster: "member1".into(),
            verb: "list".into(),
            group: String::new(),
            resource: "pods".into(),
            namespace: String::new(),
            name: String::new(),
        }
    }

    #[tokio::test]
    async fn an_expired_allowed_answer_serves_while_it_is_reviewed_again() {
        let fake = fake_member().await;
        let access = Access::new(Ttl {
            allowed: Duration::from_millis(50),
            denied: Duration::from_secs(60),
            stale: Duration::from_secs(60),
        });
        let user = User {
            name: "alice".into(),
            ..Default::default()
        };
        let timeout = Duration::from_secs(30);
        let q = question();
        let ask = || access.allowed(&fake.member, &user, &q, timeout);
        assert_eq!(ask().await, Ok(true));
        assert_eq!(fake.reviews.load(Ordering::SeqCst), 1);
        // within the lifetime: no review
        assert_eq!(ask().await, Ok(true));
        assert_eq!(fake.reviews.load(Ordering::SeqCst), 1);

        // expired, and the member now denies but does not answer yet: the
        // last answer serves at once (were the call waiting on the member,
        // it would not end while the member holds its answer)
        tokio::time::sleep(Duration::from_millis(60)).await;
        fake.allow.store(false, Ordering::SeqCst);
        fake.hold.send_replace(true);
        let answered = tokio::time::timeout(Duration::from_secs(10), ask())
            .await
            .expect("served without waiting for the member");
        assert_eq!(answered, Ok(true));
        // one background review at a time
        assert_eq!(ask().await, Ok(true));
        while fake.reviews.load(Ordering::SeqCst) < 2 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        fake.hold.send_replace(false);
        // the new answer serves the next requests
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while ask().await == Ok(true) {
            assert!(
                std::time::Instant::now() < deadline,
                "the review's answer was not kept"
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        assert_eq!(ask().await, Ok(false));
        assert_eq!(fake.reviews.load(Ordering::SeqCst), 2);
        fake.task.abort();
    }

    #[tokio::test]
    async fn a_denied_answer_is_reviewed_before_it_changes() {
        let fake = fake_member().await;
        let access = Access::new(Ttl {
            allowed: Duration::from_secs(60),
            denied: Duration::from_millis(50),
            stale: Duration::from_secs(60),
        });
        let user = User {
            name: "bob".into(),
            ..Default::default()
        };
        let timeout = Duration::from_secs(30);
        fake.allow.store(false, Ordering::SeqCst);
        let q = question();
        let ask = || access.allowed(&fake.member, &user, &q, timeout);
        assert_eq!(ask().await, Ok(false));
        tokio::time::sleep(Duration::from_millis(60)).await;
        fake.allow.store(true, Ordering::SeqCst);
        // expired denial: the caller waits for the new review and gets its answer
        assert_eq!(ask().await, Ok(true));
        assert_eq!(fake.reviews.load(Ordering::SeqCst), 2);
        fake.task.abort();
    }
}
