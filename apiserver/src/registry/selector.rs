//! Label and field selectors, parsed once per request and matched against objects.
//!
//! Label selectors support `k=v`, `k==v`, `k!=v`, `k in (a,b)`, `k notin (a,b)`,
//! `k`, `!k`, `k>n`, `k<n`, comma meaning AND. Field selectors support `=`, `==`, `!=`
//! on `metadata.name`, `metadata.namespace` and the fields a kind declares.

use serde_json::Value;

#[derive(Debug, Clone, PartialEq)]
enum LabelOp {
    In(Vec<String>),
    NotIn(Vec<String>),
    Exists,
    DoesNotExist,
    Gt(i64),
    Lt(i64),
}

/// A parsed label selector; empty matches everything.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LabelSelector {
    requirements: Vec<(String, LabelOp)>,
}

/// A parsed field selector; empty matches everything.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FieldSelector {
    requirements: Vec<(String, bool, String)>,
}

/// Splits on commas that are not inside parentheses.
fn split_top_level(s: &str) -> Vec<&str> {
    let mut parts = Vec::new();
    let mut depth = 0i32;
    let mut start = 0;
    for (i, c) in s.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth -= 1,
            ',' if depth == 0 => {
                parts.push(&s[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(&s[start..]);
    parts
}

fn valid_label_key(key: &str) -> Result<(), String> {
    let (prefix, name) = match key.rsplit_once('/') {
        Some((p, n)) => (Some(p), n),
        None => (None, key),
    };
    if let Some(p) = prefix
        && (p.is_empty() || p.len() > 253 || !super::meta::is_dns_subdomain(p))
    {
        return Err(format!(
            "invalid label key \"{key}\": prefix part must be a DNS-1123 subdomain"
        ));
    }
    if name.is_empty() || name.len() > 63 || !is_label_value(name) {
        return Err(format!(
            "invalid label key \"{key}\": name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character"
        ));
    }
    Ok(())
}

/// Whether `v` is a valid label value (possibly empty).
pub fn is_label_value(v: &str) -> bool {
    if v.is_empty() {
        return true;
    }
    let bytes = v.as_bytes();
    v.len() <= 63
        && bytes[0].is_ascii_alphanumeric()
        && bytes[bytes.len() - 1].is_ascii_alphanumeric()
        && bytes
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

fn check_value(v: &str) -> Result<String, String> {
    if is_label_value(v) {
        Ok(v.to_string())
    } else {
        Err(format!(
            "invalid label value: \"{v}\": a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character"
        ))
    }
}

fn parse_set(rest: &str) -> Result<Vec<String>, String> {
    let rest = rest.trim();
    let inner = rest
        .strip_prefix('(')
        .and_then(|r| r.strip_suffix(')'))
        .ok_or_else(|| format!("expected a parenthesised set of values, found \"{rest}\""))?;
    inner.split(',').map(|v| check_value(v.trim())).collect()
}

impl LabelSelector {
    /// Parses the `labelSelector` query syntax.
    pub fn parse(input: &str) -> Result<Self, String> {
        let mut requirements = Vec::new();
        if input.trim().is_empty() {
            return Ok(LabelSelector::default());
        }
        for raw in split_top_level(input) {
            let part = raw.trim();
            if part.is_empty() {
                return Err(format!(
                    "unable to parse requirement: found empty requirement in \"{input}\""
                ));
            }
            let err = |e: String| format!("unable to parse requirement: {e}");
            let (key, op) = if let Some(key) = part.strip_prefix('!') {
                (key.trim().to_string(), LabelOp::DoesNotExist)
            } else if let Some((k, v)) = part.split_once("!=") {
                (
                    k.trim().to_string(),
                    LabelOp::NotIn(vec![check_value(v.trim()).map_err(err)?]),
                )
            } else if let Some((k, v)) = part.split_once("==") {
                (
                    k.trim().to_string(),
                    LabelOp::In(vec![check_value(v.trim()).map_err(err)?]),
                )
            } else if let Some((k, v)) = part.split_once('=') {
                (
                    k.trim().to_string(),
                    LabelOp::In(vec![check_value(v.trim()).map_err(err)?]),
                )
            } else if let Some((k, v)) = part.split_once('>') {
                let n = v
                    .trim()
                    .parse()
                    .map_err(|_| err(format!("invalid integer value \"{}\"", v.trim())))?;
                (k.trim().to_string(), LabelOp::Gt(n))
            } else if let Some((k, v)) = part.split_once('<') {
                let n = v
                    .trim()
                    .parse()
                    .map_err(|_| err(format!("invalid integer value \"{}\"", v.trim())))?;
                (k.trim().to_string(), LabelOp::Lt(n))
            } else if let Some((k, rest)) = part.split_once(" notin ") {
                (
                    k.trim().to_string(),
                    LabelOp::NotIn(parse_set(rest).map_err(err)?),
                )
            } else if let Some((k, rest)) = part.split_once(" in ") {
                (
                    k.trim().to_string(),
                    LabelOp::In(parse_set(rest).map_err(err)?),
                )
            } else if part.contains(' ') || part.contains('(') {
                return Err(err(format!(
                    "found '{part}', expected: in, notin, =, ==, !=, gt, lt"
                )));
            } else {
                (part.to_string(), LabelOp::Exists)
            };
            valid_label_key(&key).map_err(err)?;
            requirements.push((key, op));
        }
        Ok(LabelSelector { requirements })
    }

    pub fn is_empty(&self) -> bool {
        self.requirements.is_empty()
    }

    /// Whether an object (its `metadata.labels`) matches.
    pub fn matches(&self, object: &Value) -> bool {
        let labels = object.pointer("/metadata/labels");
        self.requirements.iter().all(|(key, op)| {
            let value = labels.and_then(|l| l.get(key)).and_then(Value::as_str);
            match op {
                LabelOp::Exists => value.is_some(),
                LabelOp::DoesNotExist => value.is_none(),
                LabelOp::In(set) => value.is_some_and(|v| set.iter().any(|s| s == v)),
                LabelOp::NotIn(set) => value.is_none_or(|v| !set.iter().any(|s| s == v)),
                LabelOp::Gt(n) => value
                    .and_then(|v| v.parse::<i64>().ok())
                    .is_some_and(|v| v > *n),
                LabelOp::Lt(n) => value
                    .and_then(|v| v.parse::<i64>().ok())
                    .is_some_and(|v| v < *n),
            }
        })
    }
}

/// Splits a field selector term on its unescaped operator.
fn unescape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            if let Some(n) = chars.next() {
                out.push(n);
            }
        } else {
            out.push(c);
        }
    }
    out
}

impl FieldSelector {
    /// Parses the `fieldSelector` query syntax, allowing only `allowed` fields
    /// (plus metadata.name and metadata.namespace).
    pub fn parse(input: &str, allowed: &[&str]) -> Result<Self, String> {
        let mut requirements = Vec::new();
        if input.trim().is_empty() {
            return Ok(FieldSelector::default());
        }
        for part in input.split(',') {
            let part = part.trim();
            let (field, equal, value) = if let Some((f, v)) = part.split_once("!=") {
                (f, false, v)
            } else if let Some((f, v)) = part.split_once("==") {
                (f, true, v)
            } else if let Some((f, v)) = part.split_once('=') {
                (f, true, v)
            } else {
                return Err(format!(
                    "invalid selector: '{part}'; can't understand '{part}'"
                ));
            };
            let field = field.trim();
            if field != "metadata.name"
                && field != "metadata.namespace"
                && !allowed.contains(&field)
            {
                return Err(format!("field label not supported: {field}"));
            }
            requirements.push((field.to_string(), equal, unescape(value.trim())));
        }
        Ok(FieldSelector { requirements })
    }

    pub fn is_empty(&self) -> bool {
        self.requirements.is_empty()
    }

    /// The name this selector pins (`metadata.name=x`), if any.
    pub fn exact_name(&self) -> Option<&str> {
        self.requirements
            .iter()
            .find(|(f, eq, _)| f == "metadata.name" && *eq)
            .map(|(_, _, v)| v.as_str())
    }

    pub fn matches(&self, object: &Value) -> bool {
        self.requirements.iter().all(|(field, equal, want)| {
            let mut node = Some(object);
            for segment in field.split('.') {
                node = node.and_then(|n| n.get(segment));
            }
            let have = match node {
                None | Some(Value::Null) => String::new(),
                Some(Value::String(s)) => s.clone(),
                Some(other) => other.to_string(),
            };
            (have == *want) == *equal
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod(labels: Value) -> Value {
        json!({"metadata": {"name": "p", "namespace": "ns", "labels": labels}, "status": {"phase": "Running"}})
    }

    #[test]
    fn label_operators() {
        let p = pod(json!({"app": "web", "tier": "fe", "n": "3"}));
        let m = |s: &str| LabelSelector::parse(s).expect("parses").matches(&p);
        assert!(m("app=web"));
        assert!(m("app==web"));
        assert!(!m("app!=web"));
        assert!(m("app in (web,api)"));
        assert!(!m("app notin (web,api)"));
        assert!(m("tier"));
        assert!(!m("!tier"));
        assert!(m("!missing"));
        assert!(m("app=web,tier in (fe)"));
        assert!(m("n>2"));
        assert!(!m("n<2"));
        assert!(m("missing notin (a)"));
        assert!(!m("missing in (a)"));
    }

    #[test]
    fn label_errors() {
        assert!(LabelSelector::parse("app=we b").is_err());
        assert!(LabelSelector::parse("app in web").is_err());
        assert!(LabelSelector::parse("-bad=x").is_err());
        assert!(LabelSelector::parse("a,,b").is_err());
    }

    #[test]
    fn field_selectors() {
        let p = pod(json!({}));
        let m = |s: &str| {
            FieldSelector::parse(s, &["status.phase"])
                .expect("parses")
                .matches(&p)
        };
        assert!(m("metadata.name=p"));
        assert!(m("metadata.namespace==ns,status.phase=Running"));
        assert!(!m("status.phase!=Running"));
        assert!(FieldSelector::parse("spec.bogus=x", &[]).is_err());
        assert!(FieldSelector::parse("nonsense", &[]).is_err());
        let empty = FieldSelector::parse("metadata.namespace=", &[]).expect("parses");
        assert!(empty.matches(&json!({"metadata": {"name": "c"}})));
    }
}
