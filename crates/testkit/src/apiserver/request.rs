//! A request as the fake reads it: the route, the query, patch kinds, delete options.

use bytes::Bytes;
use http::Method;
use serde_json::Value;

use super::response::ApiError;
use super::state::ObjKey;

pub(super) fn is_write_method(method: &Method) -> bool {
    matches!(
        *method,
        Method::POST | Method::PUT | Method::PATCH | Method::DELETE
    )
}

/// A request, its body read.
pub(super) struct Incoming {
    pub(super) method: Method,
    pub(super) path: String,
    pub(super) query: Query,
    pub(super) content_type: Option<String>,
    pub(super) meta_only: bool,
    pub(super) body: Bytes,
}

/// A collection: API path prefix, plural and namespace (`None`: cluster-scoped or all
/// namespaces).
#[derive(Clone, Debug)]
pub(super) struct Coll {
    /// `api/v1` or `apis/{group}/{version}`.
    pub(super) prefix: String,
    /// `v1` or `{group}/{version}`, as in objects.
    pub(super) api_version: String,
    pub(super) group: String,
    pub(super) plural: String,
    pub(super) namespace: Option<String>,
}

impl Coll {
    pub(super) fn new(api_version: &str, plural: &str, namespace: Option<&str>) -> Self {
        let api_version = api_version.trim_matches('/');
        let (prefix, group) = match api_version.split_once('/') {
            Some((group, _)) => (format!("apis/{api_version}"), group.to_owned()),
            None => (format!("api/{api_version}"), String::new()),
        };
        Self {
            prefix,
            api_version: api_version.to_owned(),
            group,
            plural: plural.to_owned(),
            namespace: namespace.map(str::to_owned),
        }
    }

    pub(super) fn key(&self, name: &str) -> ObjKey {
        (
            self.prefix.clone(),
            self.plural.clone(),
            self.namespace.clone().unwrap_or_default(),
            name.to_owned(),
        )
    }

    /// `configmaps` or `statefulsets.apps`, as in the real server's messages.
    pub(super) fn qualified(&self) -> String {
        if self.group.is_empty() {
            self.plural.clone()
        } else {
            format!("{}.{}", self.plural, self.group)
        }
    }
}

pub(super) struct Route {
    pub(super) coll: Coll,
    pub(super) name: Option<String>,
    pub(super) subresource: Option<String>,
}

impl Route {
    pub(super) fn parse(path: &str) -> Option<Self> {
        let segments: Vec<&str> = path
            .trim_start_matches('/')
            .trim_end_matches('/')
            .split('/')
            .collect();
        let (api_version, rest) = match segments.as_slice() {
            ["api", "v1", rest @ ..] => ("v1".to_owned(), rest),
            ["apis", group, version, rest @ ..] => (format!("{group}/{version}"), rest),
            _ => return None,
        };
        if rest.is_empty() || rest.iter().any(|s| s.is_empty()) {
            return None;
        }
        let (namespace, rest) = match rest {
            ["namespaces", ns, plural, tail @ ..]
                if !(tail.is_empty() && matches!(*plural, "status" | "finalize")) =>
            {
                (Some(*ns), &rest[2..])
            }
            _ => (None, rest),
        };
        let (plural, name, subresource) = match rest {
            [plural] => (*plural, None, None),
            [plural, name] => (*plural, Some(*name), None),
            [plural, name, sub] => (*plural, Some(*name), Some(*sub)),
            _ => return None,
        };
        Some(Self {
            coll: Coll::new(&api_version, plural, namespace),
            name: name.map(str::to_owned),
            subresource: subresource.map(str::to_owned),
        })
    }
}

#[derive(Default)]
pub(super) struct Query {
    params: Vec<(String, String)>,
}

impl Query {
    pub(super) fn parse(query: Option<&str>) -> Self {
        Self {
            params: query
                .map(|q| {
                    url::form_urlencoded::parse(q.as_bytes())
                        .into_owned()
                        .collect()
                })
                .unwrap_or_default(),
        }
    }

    pub(super) fn get(&self, name: &str) -> Option<&str> {
        self.params
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

#[derive(Clone, Copy)]
pub(super) enum PatchKind {
    Apply,
    Merge,
    Json,
}

impl PatchKind {
    pub(super) fn from_content_type(content_type: Option<&str>) -> Result<Self, ApiError> {
        let media = content_type
            .unwrap_or_default()
            .split(';')
            .next()
            .unwrap_or_default()
            .trim();
        match media {
            "application/apply-patch+yaml" | "application/apply-patch+json" => Ok(Self::Apply),
            "application/merge-patch+json" | "application/strategic-merge-patch+json" => {
                Ok(Self::Merge)
            }
            "application/json-patch+json" => Ok(Self::Json),
            other => Err(ApiError::new(
                415,
                format!(
                    "the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml (got {other:?})"
                ),
            )),
        }
    }
}

pub(super) fn parse_json(body: &[u8]) -> Result<Value, ApiError> {
    serde_json::from_slice(body).map_err(|e| {
        ApiError::new(
            400,
            format!(
                "the request body is not JSON (the fake accepts JSON only, also for apply): {e}"
            ),
        )
    })
}

pub(super) struct DeleteOptions {
    pub(super) dry_run: bool,
    pub(super) orphan: bool,
    pub(super) precondition_uid: Option<String>,
    pub(super) precondition_rv: Option<String>,
}

impl DeleteOptions {
    pub(super) fn parse(body: &[u8], dry_run_query: bool) -> Result<Self, ApiError> {
        let body = if body.iter().all(u8::is_ascii_whitespace) {
            Value::Null
        } else {
            parse_json(body)?
        };
        let dry_run_body = body
            .get("dryRun")
            .and_then(Value::as_array)
            .is_some_and(|v| v.iter().any(|s| s == "All"));
        let precondition = |field: &str| {
            body.get("preconditions")
                .and_then(|p| p.get(field))
                .and_then(Value::as_str)
                .map(str::to_owned)
        };
        Ok(Self {
            dry_run: dry_run_query || dry_run_body,
            orphan: body.get("propagationPolicy").and_then(Value::as_str) == Some("Orphan")
                || body.get("orphanDependents").and_then(Value::as_bool) == Some(true),
            precondition_uid: precondition("uid"),
            precondition_rv: precondition("resourceVersion"),
        })
    }
}
