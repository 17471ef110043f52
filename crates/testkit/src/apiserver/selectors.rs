//! Label and field selectors.

use serde_json::Value;

use super::request::Query;
use super::response::ApiError;

enum Requirement {
    Equals(String, String),
    NotEquals(String, String),
    In(String, Vec<String>),
    NotIn(String, Vec<String>),
    Exists(String),
    NotExists(String),
}

impl Requirement {
    fn parse(term: &str) -> Result<Self, String> {
        let term = term.trim();
        let valid_key = |k: &str| !k.is_empty() && !k.contains(char::is_whitespace);
        if let Some(open) = term.find('(') {
            let mut words = term[..open].split_whitespace();
            let (Some(key), Some(op), None) = (words.next(), words.next(), words.next()) else {
                return Err(format!("invalid selector term {term:?}"));
            };
            let Some(inner) = term[open + 1..].trim_end().strip_suffix(')') else {
                return Err(format!("unclosed parenthesis in {term:?}"));
            };
            let values = inner
                .split(',')
                .map(|v| v.trim().to_owned())
                .filter(|v| !v.is_empty())
                .collect();
            return match op {
                "in" => Ok(Self::In(key.to_owned(), values)),
                "notin" => Ok(Self::NotIn(key.to_owned(), values)),
                _ => Err(format!("unknown operator {op:?} in {term:?}")),
            };
        }
        let split = |op: &str| {
            term.split_once(op)
                .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
        };
        let requirement = if let Some((k, v)) = split("!=") {
            Self::NotEquals(k, v)
        } else if let Some((k, v)) = split("==") {
            Self::Equals(k, v)
        } else if let Some((k, v)) = split("=") {
            Self::Equals(k, v)
        } else if let Some(k) = term.strip_prefix('!') {
            Self::NotExists(k.trim().to_owned())
        } else {
            Self::Exists(term.to_owned())
        };
        let key = match &requirement {
            Self::Equals(k, _)
            | Self::NotEquals(k, _)
            | Self::In(k, _)
            | Self::NotIn(k, _)
            | Self::Exists(k)
            | Self::NotExists(k) => k,
        };
        if valid_key(key) {
            Ok(requirement)
        } else {
            Err(format!("invalid selector term {term:?}"))
        }
    }

    fn matches(&self, value_of: impl Fn(&str) -> Option<String>) -> bool {
        match self {
            Self::Equals(k, v) => value_of(k).as_deref() == Some(v),
            Self::NotEquals(k, v) => value_of(k).as_deref() != Some(v),
            Self::In(k, vs) => value_of(k).is_some_and(|x| vs.contains(&x)),
            Self::NotIn(k, vs) => value_of(k).is_none_or(|x| !vs.contains(&x)),
            Self::Exists(k) => value_of(k).is_some(),
            Self::NotExists(k) => value_of(k).is_none(),
        }
    }
}

/// The `labelSelector` and `fieldSelector` of a list or watch.
#[derive(Default)]
pub(super) struct Selectors {
    labels: Vec<Requirement>,
    fields: Vec<Requirement>,
}

impl Selectors {
    pub(super) fn parse(query: &Query) -> Result<Self, ApiError> {
        let parse_all = |selector: Option<&str>,
                         what: &str|
         -> Result<Vec<Requirement>, ApiError> {
            split_top_level(selector.unwrap_or_default())
                .into_iter()
                .filter(|t| !t.trim().is_empty())
                .map(|t| {
                    Requirement::parse(t).map_err(|e| {
                        ApiError::new(400, format!("unable to parse requirement in {what}: {e}"))
                    })
                })
                .collect()
        };
        let fields = parse_all(query.get("fieldSelector"), "fieldSelector")?;
        if fields
            .iter()
            .any(|f| !matches!(f, Requirement::Equals(..) | Requirement::NotEquals(..)))
        {
            return Err(ApiError::new(
                400,
                "field selectors support only =, == and !=".into(),
            ));
        }
        Ok(Self {
            labels: parse_all(query.get("labelSelector"), "labelSelector")?,
            fields,
        })
    }

    pub(super) fn matches(&self, obj: &Value) -> bool {
        let labels = obj.pointer("/metadata/labels").and_then(Value::as_object);
        let label = |key: &str| {
            labels
                .and_then(|l| l.get(key))
                .and_then(Value::as_str)
                .map(str::to_owned)
        };
        let field = |path: &str| {
            let mut current = obj;
            for part in path.split('.') {
                current = current.get(part)?;
            }
            Some(match current {
                Value::String(s) => s.clone(),
                Value::Null => String::new(),
                other => other.to_string(),
            })
        };
        self.labels.iter().all(|r| r.matches(label))
            && self
                .fields
                .iter()
                .all(|r| r.matches(|path| Some(field(path).unwrap_or_default())))
    }
}

/// Splits at the commas that are not inside parentheses.
fn split_top_level(selector: &str) -> Vec<&str> {
    let mut parts = Vec::new();
    let mut depth = 0usize;
    let mut start = 0;
    for (i, c) in selector.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth = depth.saturating_sub(1),
            ',' if depth == 0 => {
                parts.push(&selector[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(&selector[start..]);
    parts
}
