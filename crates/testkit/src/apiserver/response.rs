//! Error `Status` bodies with the real reasons and codes, and JSON responses.

use bytes::Bytes;
use http::{HeaderValue, Method, Response, StatusCode, header};
use http_body_util::{BodyExt, Full};
use serde_json::{Value, json};

use super::ResponseBody;
use super::request::Coll;

#[derive(Debug)]
pub(super) struct ApiError {
    code: u16,
    reason: &'static str,
    pub(super) message: String,
    details: Option<Value>,
}

impl ApiError {
    pub(super) fn new(code: u16, message: String) -> Self {
        Self {
            code,
            reason: reason_for(code),
            message,
            details: None,
        }
    }

    pub(super) fn with_details(mut self, coll: &Coll, name: &str) -> Self {
        let mut details = json!({ "name": name, "kind": coll.plural });
        if !coll.group.is_empty() {
            details["group"] = Value::String(coll.group.clone());
        }
        self.details = Some(details);
        self
    }

    pub(super) fn not_found(coll: &Coll, name: &str) -> Self {
        Self::new(404, format!("{} {name:?} not found", coll.qualified())).with_details(coll, name)
    }

    pub(super) fn already_exists(coll: &Coll, name: &str) -> Self {
        let mut error = Self::new(409, format!("{} {name:?} already exists", coll.qualified()))
            .with_details(coll, name);
        error.reason = "AlreadyExists";
        error
    }

    pub(super) fn conflict(coll: &Coll, name: &str) -> Self {
        Self::new(
            409,
            format!(
                "Operation cannot be fulfilled on {} {name:?}: the object has been modified; please apply your changes to the latest version and try again",
                coll.qualified()
            ),
        )
        .with_details(coll, name)
    }
}

pub(super) fn method_not_allowed(method: &Method) -> ApiError {
    ApiError::new(
        405,
        format!("the server does not allow this method on the requested resource ({method})"),
    )
}

/// The `reason` the real server gives with a status code.
fn reason_for(code: u16) -> &'static str {
    match code {
        400 => "BadRequest",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "NotFound",
        405 => "MethodNotAllowed",
        406 => "NotAcceptable",
        409 => "Conflict",
        410 => "Expired",
        413 => "RequestEntityTooLarge",
        415 => "UnsupportedMediaType",
        422 => "Invalid",
        429 => "TooManyRequests",
        500 => "InternalError",
        503 => "ServiceUnavailable",
        504 => "Timeout",
        _ => "Unknown",
    }
}

pub(super) fn status_body(error: &ApiError) -> Value {
    let mut body = json!({
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": error.message,
        "reason": error.reason,
        "code": error.code,
    });
    if let Some(details) = &error.details {
        body["details"] = details.clone();
    }
    body
}

pub(super) fn error_response(error: &ApiError) -> Response<ResponseBody> {
    let status = StatusCode::from_u16(error.code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    json_response(status, &status_body(error))
}

pub(super) fn json_response(status: StatusCode, body: &Value) -> Response<ResponseBody> {
    let bytes = serde_json::to_vec(body).unwrap_or_default();
    let mut response = Response::new(Full::new(Bytes::from(bytes)).boxed_unsync());
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}
