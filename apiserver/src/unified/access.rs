//! Authorization of cached reads: the cache is filled with the control plane's
//! rights, so before serving a caller anything from it we ask the member whether
//! the caller may read it (a SubjectAccessReview with the caller's user, groups,
//! UID and extras), and remember the answer briefly (allowed and denied answers
//! have separate lifetimes). Live reads need none of this: they impersonate the
//! caller, and the member decides.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use super::member::{self, Member};
use crate::server::auth::User;

/// How long answers are remembered.
#[derive(Debug, Clone, Copy)]
pub struct Ttl {
    pub allowed: Duration,
    pub denied: Duration,
    /// How long an answer still serves when the member cannot review in time.
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
    answers: Mutex<HashMap<(String, Question), (bool, Instant)>>,
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
            answers: Mutex::new(HashMap::new()),
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
        }
        match self.review(member, user, q, timeout).await {
            Ok(allowed) => {
                let mut answers = self.answers.lock().unwrap_or_else(|e| e.into_inner());
                if answers.len() > 10_000 {
                    answers.clear();
                }
                answers.insert(key, (allowed, Instant::now()));
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

    /// Sends one SubjectAccessReview to the member.
    async fn review(
        &self,
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
        let mut spec =
            json!({"user": user.name, "groups": user.groups, "resourceAttributes": attrs});
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
}
