//! The subset of Kubernetes JSONPath used by CRD `additionalPrinterColumns`:
//! `.a.b`, `.a[0]`, `.a[*].b`, `.a[?(@.type=="Ready")].status`, optionally in braces.

use serde_json::Value;

#[derive(Debug, Clone, PartialEq)]
enum Step {
    Field(String),
    Index(i64),
    All,
    Filter {
        path: Vec<String>,
        equals: Option<String>,
        negate: bool,
    },
}

/// A parsed path.
#[derive(Debug, Clone, PartialEq)]
pub struct JsonPath {
    steps: Vec<Step>,
}

impl JsonPath {
    /// Parses a path; errors name the problem.
    pub fn parse(expr: &str) -> Result<JsonPath, String> {
        let e = expr.trim();
        let e = e
            .strip_prefix('{')
            .and_then(|x| x.strip_suffix('}'))
            .unwrap_or(e)
            .trim();
        let e = e.strip_prefix('$').unwrap_or(e);
        let mut steps = Vec::new();
        let mut rest = e;
        while !rest.is_empty() {
            if let Some(r) = rest.strip_prefix('.') {
                let end = r.find(['.', '[']).unwrap_or(r.len());
                if end == 0 {
                    return Err(format!("empty field name in \"{expr}\""));
                }
                steps.push(Step::Field(r[..end].to_string()));
                rest = &r[end..];
            } else if let Some(r) = rest.strip_prefix('[') {
                let end =
                    matching_bracket(r).ok_or_else(|| format!("unclosed bracket in \"{expr}\""))?;
                let inner = r[..end].trim();
                rest = &r[end + 1..];
                if inner == "*" {
                    steps.push(Step::All);
                } else if let Some(f) = inner.strip_prefix("?(").and_then(|x| x.strip_suffix(')')) {
                    steps.push(
                        parse_filter(f.trim()).ok_or_else(|| {
                            format!("unsupported filter \"{inner}\" in \"{expr}\"")
                        })?,
                    );
                } else if let Ok(i) = inner.parse::<i64>() {
                    steps.push(Step::Index(i));
                } else {
                    let name = inner.trim_matches(|c| c == '\'' || c == '"');
                    steps.push(Step::Field(name.to_string()));
                }
            } else {
                return Err(format!("unexpected \"{rest}\" in \"{expr}\""));
            }
        }
        Ok(JsonPath { steps })
    }

    /// Every value the path selects.
    pub fn find<'a>(&self, root: &'a Value) -> Vec<&'a Value> {
        let mut current = vec![root];
        for step in &self.steps {
            let mut next = Vec::new();
            for v in current {
                match step {
                    Step::Field(f) => next.extend(v.get(f.as_str())),
                    Step::Index(i) => {
                        if let Some(a) = v.as_array() {
                            let idx = if *i < 0 { a.len() as i64 + i } else { *i };
                            next.extend(usize::try_from(idx).ok().and_then(|i| a.get(i)));
                        }
                    }
                    Step::All => match v {
                        Value::Array(a) => next.extend(a.iter()),
                        Value::Object(m) => next.extend(m.values()),
                        _ => {}
                    },
                    Step::Filter {
                        path,
                        equals,
                        negate,
                    } => {
                        for item in v.as_array().into_iter().flatten() {
                            let mut x = Some(item);
                            for p in path {
                                x = x.and_then(|x| x.get(p.as_str()));
                            }
                            let hit = match (x, equals) {
                                (Some(x), Some(want)) => match x {
                                    Value::String(s) => s == want,
                                    other => other.to_string() == *want,
                                },
                                (Some(_), None) => true,
                                (None, _) => false,
                            };
                            if hit != *negate {
                                next.push(item);
                            }
                        }
                    }
                }
            }
            current = next;
        }
        current
    }
}

fn matching_bracket(s: &str) -> Option<usize> {
    let mut depth = 0;
    let mut quote: Option<char> = None;
    for (i, c) in s.char_indices() {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (Some(_), _) => {}
            (None, '"' | '\'') => quote = Some(c),
            (None, '[') => depth += 1,
            (None, ']') if depth == 0 => return Some(i),
            (None, ']') => depth -= 1,
            _ => {}
        }
    }
    None
}

fn parse_filter(f: &str) -> Option<Step> {
    let (lhs, equals, negate) = if let Some((l, r)) = f.split_once("!=") {
        (l, Some(r), true)
    } else if let Some((l, r)) = f.split_once("==") {
        (l, Some(r), false)
    } else {
        (f, None, false)
    };
    let path: Vec<String> = lhs
        .trim()
        .strip_prefix('@')?
        .split('.')
        .filter(|p| !p.is_empty())
        .map(String::from)
        .collect();
    let equals = equals.map(|r| r.trim().trim_matches(|c| c == '"' || c == '\'').to_string());
    Some(Step::Filter {
        path,
        equals,
        negate,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn paths() {
        let v = json!({"spec": {"n": 3, "list": [{"a": 1}, {"a": 2}]},
            "status": {"conditions": [{"type": "Ready", "status": "True"}, {"type": "Other", "status": "False"}]}});
        let f = |p: &str| {
            JsonPath::parse(p)
                .expect("parses")
                .find(&v)
                .into_iter()
                .cloned()
                .collect::<Vec<_>>()
        };
        assert_eq!(f(".spec.n"), vec![json!(3)]);
        assert_eq!(f("{.spec.list[*].a}"), vec![json!(1), json!(2)]);
        assert_eq!(f(".spec.list[1].a"), vec![json!(2)]);
        assert_eq!(f(".spec.list[-1].a"), vec![json!(2)]);
        assert_eq!(
            f(r#".status.conditions[?(@.type=="Ready")].status"#),
            vec![json!("True")]
        );
        assert_eq!(f(".spec.missing"), Vec::<Value>::new());
        assert_eq!(f(".metadata['x']"), Vec::<Value>::new());
        assert!(JsonPath::parse(".a[").is_err());
    }
}
