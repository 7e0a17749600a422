//! The multi-cluster resourceVersion and continue token.
//!
//! A unified list or watch carries one resourceVersion naming every member's
//! revision, in Karmada's encoding: base64url without padding of a JSON object
//! from cluster name to that member's resourceVersion, keys sorted, so the same
//! state always gives the same string. `""` and `"0"` keep their Kubernetes
//! meaning. Unlike Karmada, a token that does not decode is an error (400), never
//! silently ignored.
//!
//! A continue token is ours (Karmada's cannot express a global order): versioned
//! JSON with the snapshot's resourceVersion, the last key returned and a hash of
//! what was asked (resource, namespace, selectors), base64url without padding.

use std::collections::BTreeMap;

use base64::Engine;
use base64::engine::general_purpose::{URL_SAFE, URL_SAFE_NO_PAD};
use serde::{Deserialize, Serialize};

use crate::status::ApiError;

/// Cluster name → that member's resourceVersion.
pub type RvMap = BTreeMap<String, String>;

/// What a client's `resourceVersion` parameter asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Requested {
    /// Absent or `""`: the most recent state (bounded staleness from the caches).
    Latest,
    /// `"0"`: any state, from the caches.
    Any,
    /// A multi-cluster resourceVersion this server issued.
    Exact(RvMap),
}

/// Encodes a map as Karmada does (`""` for no clusters).
pub fn encode(map: &RvMap) -> String {
    if map.is_empty() {
        return String::new();
    }
    // A BTreeMap serialises its keys in order: byte-identical for the same state.
    let json = serde_json::to_vec(map).unwrap_or_default();
    URL_SAFE_NO_PAD.encode(json)
}

/// The one-entry resourceVersion of a single object from `cluster`.
pub fn single(cluster: &str, member_rv: &str) -> String {
    let mut map = RvMap::new();
    map.insert(cluster.to_string(), member_rv.to_string());
    encode(&map)
}

fn decode_map(token: &str) -> Option<RvMap> {
    let bytes = URL_SAFE_NO_PAD
        .decode(token)
        .or_else(|_| URL_SAFE.decode(token))
        .ok()?;
    serde_json::from_slice::<RvMap>(&bytes).ok()
}

/// Parses a `resourceVersion` parameter; anything this server could not have
/// issued is a 400 naming the parameter.
pub fn parse(param: Option<&str>) -> Result<Requested, ApiError> {
    match param {
        None | Some("") => Ok(Requested::Latest),
        Some("0") => Ok(Requested::Any),
        Some(token) => decode_map(token).map(Requested::Exact).ok_or_else(|| {
            ApiError::bad_request(format!(
                "invalid resourceVersion \"{token}\": not a multi-cluster resourceVersion \
                 (base64url of a JSON object from cluster name to resourceVersion)"
            ))
        }),
    }
}

/// A member's resourceVersion as a number, when it is one (etcd revisions are).
pub fn revision(rv: &str) -> Option<u64> {
    rv.parse().ok()
}

/// The position a continue token resumes after: the global order's key.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Key {
    /// Namespace (`""` for cluster-scoped objects).
    pub namespace: String,
    pub name: String,
    pub cluster: String,
}

/// The content of a continue token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Continue {
    /// Format version.
    pub v: u32,
    /// The snapshot's multi-cluster resourceVersion.
    pub rv: String,
    /// The last key returned.
    pub key: Key,
    /// Hash of the request the token belongs to (resource, namespace, selectors).
    pub scope: String,
}

impl Continue {
    /// The token's text.
    pub fn encode(&self) -> String {
        URL_SAFE_NO_PAD.encode(serde_json::to_vec(self).unwrap_or_default())
    }

    /// Decodes a token; undecodable or of another version → 400.
    pub fn decode(token: &str) -> Result<Continue, ApiError> {
        let bad = || ApiError::bad_request(format!("invalid continue token \"{token}\""));
        let bytes = URL_SAFE_NO_PAD
            .decode(token)
            .or_else(|_| URL_SAFE.decode(token))
            .map_err(|_| bad())?;
        let c: Continue = serde_json::from_slice(&bytes).map_err(|_| bad())?;
        if c.v != 1 || decode_map(&c.rv).is_none() {
            return Err(bad());
        }
        Ok(c)
    }

    /// The snapshot's map.
    pub fn rv_map(&self) -> RvMap {
        decode_map(&self.rv).unwrap_or_default()
    }
}

/// A short stable hash of what a list asked for, so a continue token cannot be
/// replayed with other selectors.
pub fn scope_hash(parts: &[&str]) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for p in parts {
        for b in p.bytes().chain(std::iter::once(0)) {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
    }
    format!("{h:016x}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn karmada_encoding_round_trips_and_is_stable() {
        let mut a = RvMap::new();
        a.insert("west".into(), "98012".into());
        a.insert("east".into(), "4711".into());
        let token = encode(&a);
        // base64url without padding of {"east":"4711","west":"98012"}
        assert_eq!(
            URL_SAFE_NO_PAD.decode(&token).expect("base64"),
            br#"{"east":"4711","west":"98012"}"#
        );
        assert!(!token.contains('='));
        assert_eq!(parse(Some(&token)).expect("valid"), Requested::Exact(a));
        assert_eq!(encode(&RvMap::new()), "");
        assert_eq!(parse(None).expect("ok"), Requested::Latest);
        assert_eq!(parse(Some("")).expect("ok"), Requested::Latest);
        assert_eq!(parse(Some("0")).expect("ok"), Requested::Any);
    }

    #[test]
    fn the_map_grows_with_the_clusters() {
        // Every watch event carries the whole map: its size at 100 and 1,000 clusters
        // named like `member123` with 7-digit member revisions.
        let size = |n: usize| {
            let map: RvMap = (1..=n)
                .map(|i| (format!("member{i}"), format!("{}", 1_000_000 + i)))
                .collect();
            encode(&map).len()
        };
        let (hundred, thousand) = (size(100), size(1000));
        eprintln!("resourceVersion: {hundred} bytes at 100 clusters, {thousand} at 1,000");
        // base64 of about 21 bytes of JSON per cluster: ~28 bytes each.
        assert!((2_500..3_500).contains(&hundred), "{hundred}");
        assert!((25_000..35_000).contains(&thousand), "{thousand}");
    }

    #[test]
    fn malformed_versions_are_400() {
        for bad in ["12345", "not base64!", &URL_SAFE_NO_PAD.encode(b"[1,2]")] {
            let e = parse(Some(bad)).expect_err(bad);
            assert_eq!((e.code, e.reason), (400, "BadRequest"), "{bad}");
        }
    }

    #[test]
    fn continue_tokens() {
        let c = Continue {
            v: 1,
            rv: single("m1", "7"),
            key: Key {
                namespace: "ns".into(),
                name: "a".into(),
                cluster: "m1".into(),
            },
            scope: scope_hash(&["pods", ""]),
        };
        let t = c.encode();
        assert_eq!(Continue::decode(&t).expect("decodes"), c);
        assert_eq!(c.rv_map().get("m1").map(String::as_str), Some("7"));
        assert_eq!(Continue::decode("garbage").expect_err("bad").code, 400);
        assert_ne!(scope_hash(&["a", "b"]), scope_hash(&["ab", ""]));
    }
}
