//! Packed JSON: objects kept in memory, compressed against a dictionary made
//! of other objects of their kind.
//!
//! The API server keeps the JSON of every stored object in memory (storage's
//! cache, and the versions its watch history holds), the unified view
//! keeps the JSON of every member object it caches, and the controllers'
//! caches keep the JSON of every template and member object
//! (`CompactObject`) and every Work's manifests ([`crate::raw::RawJson`]).
//! Objects of one kind are mostly the same text: field names, label and
//! annotation keys, images, condition types. LZ4 finds little of that
//! inside one object of a few KB (1.3–2× on Works, bindings, Deployments
//! and ReplicaSets of a 100-member run), but compressing each object
//! against a dictionary of the first objects of its kind finds most of it:
//! 5–7× on the same objects, with an 8 KiB dictionary. Unpacking one
//! object takes a microsecond or two.
//!
//! A [`Packer`] belongs to one kind. It gathers the first
//! [`DICTIONARY_BYTES`] of that kind's JSON as its dictionary, and from then
//! on packs every object it is given. [`Json`] is the result: the plain
//! bytes (small objects, and those seen before the dictionary was complete)
//! or the packed ones. [`Packers`] keeps one packer per kind of a store.
//!
//! Nothing packed ever leaves the process: what is written to disk, to etcd
//! or to a client is the plain JSON.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

use bytes::Bytes;

/// The size of a kind's dictionary: whole objects of the kind, the first
/// ones seen, up to this many bytes. (8 KiB compressed nearly as well as 16
/// or 32 KiB in the measurements above, and the compressor indexes the
/// dictionary on each object it packs, so a smaller one packs faster.)
pub const DICTIONARY_BYTES: usize = 8 << 10;

/// Objects smaller than this stay plain: there is little to gain, and the
/// dictionary's indexing would cost more than the object's own.
pub const MIN_PACKED: usize = 256;

/// A kind's dictionary: sample JSON that packed objects refer back to.
#[derive(Debug)]
pub struct Dictionary(Box<[u8]>);

/// An object's JSON as it is kept in memory; see the module docs.
#[derive(Debug, Clone)]
pub enum Json {
    /// The JSON as it is.
    Plain(Bytes),
    /// The JSON packed against its kind's dictionary.
    Packed(Arc<Packed>),
}

/// The packed form of an object's JSON.
#[derive(Debug)]
pub struct Packed {
    /// LZ4 block data, against `dictionary`.
    data: Box<[u8]>,
    /// The length of the plain JSON.
    len: usize,
    dictionary: Arc<Dictionary>,
}

impl Default for Json {
    fn default() -> Json {
        Json::Plain(Bytes::new())
    }
}

impl PartialEq for Json {
    /// The same JSON, packed or not.
    fn eq(&self, other: &Json) -> bool {
        self.bytes() == other.bytes()
    }
}

impl From<Bytes> for Json {
    fn from(json: Bytes) -> Json {
        Json::Plain(json)
    }
}

impl From<Vec<u8>> for Json {
    /// The plain JSON, without the vector's spare capacity.
    fn from(json: Vec<u8>) -> Json {
        Json::Plain(Bytes::from(json.into_boxed_slice()))
    }
}

impl Json {
    /// The plain JSON (unpacked when packed).
    pub fn bytes(&self) -> Bytes {
        match self {
            Json::Plain(b) => b.clone(),
            Json::Packed(_) => {
                let mut out = Vec::new();
                self.write_to(&mut out);
                Bytes::from(out)
            }
        }
    }

    /// Appends the plain JSON to `out`, unpacking straight into it.
    pub fn write_to(&self, out: &mut Vec<u8>) {
        match self {
            Json::Plain(b) => out.extend_from_slice(b),
            Json::Packed(p) => {
                let start = out.len();
                out.resize(start + p.len, 0);
                match lz4_flex::block::decompress_into_with_dict(
                    &p.data,
                    &mut out[start..],
                    &p.dictionary.0,
                ) {
                    Ok(n) if n == p.len => {}
                    result => {
                        // Only data this module packed is unpacked, so this
                        // does not happen; if it does, the object reads as
                        // `null` (as unparsable stored JSON does) and the
                        // plain copy on disk is untouched.
                        tracing::error!(?result, len = p.len, "packed JSON does not unpack");
                        out.truncate(start);
                        out.extend_from_slice(b"null");
                    }
                }
            }
        }
    }

    /// The length of the plain JSON.
    pub fn len(&self) -> usize {
        match self {
            Json::Plain(b) => b.len(),
            Json::Packed(p) => p.len,
        }
    }

    /// Whether the JSON is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The memory this JSON holds of its own (a dictionary is shared by its
    /// kind, and not counted).
    pub fn held(&self) -> usize {
        match self {
            Json::Plain(b) => b.len(),
            Json::Packed(p) => p.data.len() + std::mem::size_of::<Packed>(),
        }
    }

    /// Whether this is the packed form.
    pub fn is_packed(&self) -> bool {
        matches!(self, Json::Packed(_))
    }
}

/// Packs the JSON of one kind's objects; see the module docs.
#[derive(Debug, Default)]
pub struct Packer {
    dictionary: OnceLock<Arc<Dictionary>>,
    /// Objects gathered for the dictionary, until it is made.
    samples: Mutex<Vec<u8>>,
}

impl Packer {
    /// `json` as it is to be kept: packed once the dictionary is complete
    /// (and when packing makes it smaller), plain before, and plain when it
    /// is small.
    pub fn pack(&self, json: Bytes) -> Json {
        if json.len() < MIN_PACKED {
            return Json::Plain(json);
        }
        let Some(dictionary) = self.dictionary(&json) else {
            return Json::Plain(json);
        };
        let data = lz4_flex::block::compress_with_dict(&json, &dictionary.0);
        if data.len() >= json.len() {
            return Json::Plain(json);
        }
        Json::Packed(Arc::new(Packed {
            data: data.into_boxed_slice(),
            len: json.len(),
            dictionary,
        }))
    }

    /// The dictionary, once complete; until then `json` is added to the
    /// samples (whole, and the last one cut to size).
    fn dictionary(&self, json: &[u8]) -> Option<Arc<Dictionary>> {
        if let Some(d) = self.dictionary.get() {
            return Some(d.clone());
        }
        let mut samples = self.samples.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(d) = self.dictionary.get() {
            return Some(d.clone());
        }
        let take = json.len().min(DICTIONARY_BYTES - samples.len());
        samples.extend_from_slice(&json[..take]);
        if samples.len() >= DICTIONARY_BYTES {
            let sampled = std::mem::take(&mut *samples).into_boxed_slice();
            let _ = self.dictionary.set(Arc::new(Dictionary(sampled)));
        }
        None
    }
}

/// One [`Packer`] per kind, the kind named by the start of a key.
#[derive(Debug, Default)]
pub struct Packers(Mutex<HashMap<Box<str>, Arc<Packer>>>);

impl Packers {
    /// The packer of `kind` (made on first use).
    pub fn get(&self, kind: &str) -> Arc<Packer> {
        let mut map = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(p) = map.get(kind) {
            return p.clone();
        }
        let p = Arc::new(Packer::default());
        map.insert(Box::from(kind), p.clone());
        p
    }

    /// The packer for a storage key, `/{group}/{resource}/...`: one per
    /// resource.
    pub fn for_key(&self, key: &str) -> Arc<Packer> {
        let end = key.match_indices('/').nth(2).map_or(key.len(), |(i, _)| i);
        self.get(&key[..end])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn deployment(i: usize) -> Bytes {
        let v = json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": format!("web-{i}"), "namespace": "default",
                         "labels": {"app": format!("web-{i}"), "team": "payments"},
                         "uid": format!("0b5e8a9c-6f1d-4c1e-9a7e-{i:012}")},
            "spec": {"replicas": i % 5, "selector": {"matchLabels": {"app": format!("web-{i}")}},
                     "template": {"metadata": {"labels": {"app": format!("web-{i}")}},
                                  "spec": {"containers": [{"name": "nginx", "image": "nginx:1.27",
                                           "ports": [{"containerPort": 80}],
                                           "resources": {"requests": {"cpu": "100m", "memory": "128Mi"}}}]}}},
            "status": {"replicas": i % 5, "readyReplicas": i % 5,
                       "conditions": [{"type": "Available", "status": "True", "reason": "MinimumReplicasAvailable"}]}
        });
        Bytes::from(serde_json::to_vec(&v).unwrap())
    }

    #[test]
    fn objects_come_back_as_they_went_in() {
        let packer = Packer::default();
        let mut packed = 0;
        for i in 0..200 {
            let plain = deployment(i);
            let kept = packer.pack(plain.clone());
            packed += usize::from(kept.is_packed());
            assert_eq!(kept.len(), plain.len());
            assert_eq!(kept.bytes(), plain, "object {i}");
            let mut out = b"[".to_vec();
            kept.write_to(&mut out);
            assert_eq!(&out[1..], &plain[..]);
        }
        // the first objects make the dictionary and stay plain; the rest pack
        assert!(packed > 180, "{packed} of 200 packed");
    }

    #[test]
    fn objects_of_a_kind_pack_several_times_smaller() {
        let packer = Packer::default();
        let (mut plain, mut held) = (0, 0);
        for i in 0..200 {
            let json = deployment(i);
            plain += json.len();
            held += packer.pack(json).held();
        }
        assert!(held * 3 < plain, "{held} bytes held for {plain} of JSON");
    }

    #[test]
    fn small_objects_stay_plain() {
        let packer = Packer::default();
        for _ in 0..100 {
            packer.pack(deployment(1));
        }
        let small = Bytes::from_static(br#"{"kind":"Namespace","metadata":{"name":"a"}}"#);
        assert!(!packer.pack(small.clone()).is_packed());
        assert!(packer.pack(deployment(2)).is_packed());
    }

    #[test]
    fn each_resource_has_its_own_packer() {
        let packers = Packers::default();
        let a = packers.for_key("/apps/deployments/default/web");
        let b = packers.for_key("/apps/deployments/other/api");
        let c = packers.for_key("/core/pods/default/web");
        assert!(Arc::ptr_eq(&a, &b));
        assert!(!Arc::ptr_eq(&a, &c));
    }
}
