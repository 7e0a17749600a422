//! The merged list: every member's objects in one global order (namespace,
//! name, cluster), read page by page without copying or sorting them. Each
//! member contributes a [`Source`], a snapshot of its objects (a clone of its
//! cache's persistent map, or a live answer) with what the caller may see of
//! it; a [`View`] is the set of sources one list walks, kept for its continue
//! tokens. A page is a k-way merge over the sources that starts after the
//! token's key and stops after `limit` objects, so it costs O(page × log
//! members), whatever the size of the list.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashSet};
use std::ops::Bound;
use std::sync::Arc;

use super::cache::{Object, ObjectKey, Objects};
use super::resource_version::Key;
use crate::registry::selector::{FieldSelector, LabelSelector};

/// One member's part of a list.
#[derive(Clone)]
pub struct Source {
    pub cluster: String,
    pub objects: Objects,
    /// Only the objects of these namespaces (the caller may not read the
    /// others); `None`: every object.
    pub namespaces: Option<Arc<HashSet<String>>>,
}

/// What the pages of one list read: every member's part and the request's
/// namespace and selectors.
pub struct View {
    pub sources: Vec<Source>,
    pub namespace: Option<String>,
    pub labels: LabelSelector,
    pub fields: FieldSelector,
}

/// One page of a list.
pub struct Page {
    pub items: Vec<Arc<Object>>,
    /// The key of the last item, when more follow.
    pub next: Option<Key>,
}

impl View {
    fn admits(&self, source: &Source, key: &ObjectKey, object: &Object) -> bool {
        source
            .namespaces
            .as_ref()
            .is_none_or(|allowed| allowed.contains(key.0.as_ref()))
            && object.matches(&self.labels, &self.fields)
    }

    /// Where a source starts: after `after` in the global order (the same key
    /// in a cluster that sorts later still comes), else at the namespace.
    fn start(&self, source: &Source, after: Option<&Key>) -> Bound<ObjectKey> {
        match after {
            Some(k) => {
                let key: ObjectKey = (Arc::from(k.namespace.as_str()), Arc::from(k.name.as_str()));
                if source.cluster.as_str() > k.cluster.as_str() {
                    Bound::Included(key)
                } else {
                    Bound::Excluded(key)
                }
            }
            None => match &self.namespace {
                Some(ns) => Bound::Included((Arc::from(ns.as_str()), Arc::from(""))),
                None => Bound::Unbounded,
            },
        }
    }

    /// Up to `limit` objects (all when `None`) after `after`, in global order.
    pub fn page(&self, after: Option<&Key>, limit: Option<usize>) -> Page {
        let mut cursors: Vec<_> = self
            .sources
            .iter()
            .map(|s| {
                let namespace = self.namespace.as_deref();
                s.objects
                    .range((self.start(s, after), Bound::Unbounded))
                    .take_while(move |(k, _)| namespace.is_none_or(|ns| k.0.as_ref() == ns))
                    .filter(move |(k, o)| self.admits(s, k, o))
            })
            .collect();
        // The next object of every source, smallest (namespace, name, cluster) first.
        let mut next: Vec<Option<&Arc<Object>>> = vec![None; cursors.len()];
        let mut heads = BinaryHeap::new();
        for (i, c) in cursors.iter_mut().enumerate() {
            if let Some((k, o)) = c.next() {
                next[i] = Some(o);
                heads.push(Reverse((k, self.sources[i].cluster.as_str(), i)));
            }
        }
        let wanted = limit.unwrap_or(usize::MAX);
        let mut items = Vec::with_capacity(wanted.min(10_000));
        let mut last = None;
        while let Some(Reverse((k, cluster, i))) = heads.pop() {
            if items.len() == wanted {
                // One more exists: the page ends at the last one taken.
                return Page {
                    items,
                    next: last.map(|(k, cluster)| key(k, cluster)),
                };
            }
            if let Some(o) = next[i].take() {
                items.push(o.clone());
            }
            last = Some((k, cluster));
            if let Some((k, o)) = cursors[i].next() {
                next[i] = Some(o);
                heads.push(Reverse((k, self.sources[i].cluster.as_str(), i)));
            }
        }
        Page { items, next: None }
    }
}

fn key(k: &ObjectKey, cluster: &str) -> Key {
    Key {
        namespace: k.0.to_string(),
        name: k.1.to_string(),
        cluster: cluster.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn source(cluster: &str, keys: &[(&str, &str, &str)]) -> Source {
        let objects = keys
            .iter()
            .map(|(ns, name, app)| {
                let o = Object::new(
                    &json!({"metadata": {"namespace": ns, "name": name, "labels": {"app": app}}}),
                    &Default::default(),
                );
                (o.key(), Arc::new(o))
            })
            .collect();
        Source {
            cluster: cluster.into(),
            objects,
            namespaces: None,
        }
    }

    fn view(sources: Vec<Source>, namespace: Option<&str>, labels: &str) -> View {
        View {
            sources,
            namespace: namespace.map(str::to_string),
            labels: LabelSelector::parse(labels).expect("labels"),
            fields: FieldSelector::default(),
        }
    }

    fn names(items: &[Arc<Object>]) -> Vec<String> {
        items
            .iter()
            .map(|o| {
                let v = o.value();
                format!(
                    "{}/{}@{}",
                    o.namespace(),
                    o.name(),
                    v["metadata"]["cluster"].as_str().unwrap_or("")
                )
            })
            .collect()
    }

    /// Every page of `limit`, walked with the tokens' keys.
    fn walk(v: &View, limit: usize) -> Vec<Vec<String>> {
        let mut pages = Vec::new();
        let mut after = None;
        loop {
            let page = v.page(after.as_ref(), Some(limit));
            pages.push(names(&page.items));
            match page.next {
                Some(k) => after = Some(k),
                None => return pages,
            }
        }
    }

    fn members() -> Vec<Source> {
        // The same names in several clusters, clusters out of order.
        let with_cluster = |cluster: &str, keys: &[(&str, &str)]| {
            let mut s = source(cluster, &[]);
            for (ns, name) in keys {
                let o = Object::new(
                    &json!({"metadata": {"namespace": ns, "name": name, "cluster": cluster,
                                         "labels": {"app": if name.starts_with('w') {"web"} else {"db"}}}}),
                    &Default::default(),
                );
                s.objects.insert(o.key(), Arc::new(o));
            }
            s
        };
        vec![
            with_cluster("m2", &[("a", "web-1"), ("b", "db-0"), ("b", "web-1")]),
            with_cluster("m1", &[("a", "web-1"), ("a", "web-2"), ("c", "db-9")]),
            with_cluster("m3", &[]),
            with_cluster("m10", &[("b", "web-1")]),
        ]
    }

    #[test]
    fn one_global_order_whatever_the_page_size() {
        let v = view(members(), None, "");
        let all = names(&v.page(None, None).items);
        assert_eq!(
            all,
            [
                "a/web-1@m1",
                "a/web-1@m2",
                "a/web-2@m1",
                "b/db-0@m2",
                "b/web-1@m10",
                "b/web-1@m2",
                "c/db-9@m1"
            ]
        );
        for limit in [1, 2, 3, 6, 7, 500] {
            let pages = walk(&v, limit);
            // Every page full but the last, which is not empty.
            for (i, p) in pages.iter().enumerate() {
                if i + 1 < pages.len() {
                    assert_eq!(p.len(), limit, "limit {limit}: {pages:?}");
                } else {
                    assert!(!p.is_empty(), "limit {limit}: {pages:?}");
                }
            }
            assert_eq!(pages.concat(), all, "limit {limit}");
        }
    }

    #[test]
    fn namespace_selectors_and_access_apply_while_paging() {
        let v = view(members(), Some("b"), "");
        assert_eq!(
            walk(&v, 2).concat(),
            ["b/db-0@m2", "b/web-1@m10", "b/web-1@m2"]
        );
        let v = view(members(), None, "app=web");
        let pages = walk(&v, 2);
        assert_eq!(pages.len(), 3);
        assert_eq!(
            pages.concat(),
            [
                "a/web-1@m1",
                "a/web-1@m2",
                "a/web-2@m1",
                "b/web-1@m10",
                "b/web-1@m2"
            ]
        );
        let mut sources = members();
        sources[0].namespaces = Some(Arc::new(["a".to_string()].into()));
        let v = view(sources, None, "");
        assert_eq!(
            walk(&v, 1).concat(),
            [
                "a/web-1@m1",
                "a/web-1@m2",
                "a/web-2@m1",
                "b/web-1@m10",
                "c/db-9@m1"
            ]
        );
        // Nothing at all: one empty page without a token.
        let v = view(vec![source("m1", &[])], None, "");
        let page = v.page(None, Some(5));
        assert!(page.items.is_empty() && page.next.is_none());
    }
}
