//! API errors and their `Status` bodies, shaped as upstream's
//! `k8s.io/apimachinery/pkg/api/errors` constructors shape them.

use http::StatusCode;
use rkube_api::field::{aggregate_message, FieldError};
use rkube_api::ResourceInfo;
use rkube_store::StoreError;
use serde_json::{json, Value};

/// One failed request: HTTP code, `reason`, message, and optional details.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{code} {reason}: {message}")]
pub struct ApiError {
    pub code: StatusCode,
    pub reason: &'static str,
    pub message: String,
    pub details: Option<Value>,
}

pub type ApiResult<T> = Result<T, ApiError>;

fn details(res: &ResourceInfo, name: &str) -> Value {
    let mut d = json!({"name": name, "kind": res.plural});
    if !res.group.is_empty() {
        d["group"] = json!(res.group);
    }
    d
}

impl ApiError {
    pub fn new(code: StatusCode, reason: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            code,
            reason,
            message: message.into(),
            details: None,
        }
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "BadRequest", message)
    }

    pub fn not_found(res: &ResourceInfo, name: &str) -> Self {
        ApiError {
            details: Some(details(res, name)),
            ..Self::new(
                StatusCode::NOT_FOUND,
                "NotFound",
                format!("{} \"{}\" not found", res.qualified_resource(), name),
            )
        }
    }

    pub fn not_found_path() -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "NotFound",
            "the server could not find the requested resource",
        )
    }

    pub fn already_exists(res: &ResourceInfo, name: &str) -> Self {
        ApiError {
            details: Some(details(res, name)),
            ..Self::new(
                StatusCode::CONFLICT,
                "AlreadyExists",
                format!("{} \"{}\" already exists", res.qualified_resource(), name),
            )
        }
    }

    pub fn conflict(res: &ResourceInfo, name: &str, why: &str) -> Self {
        ApiError {
            details: Some(details(res, name)),
            ..Self::new(
                StatusCode::CONFLICT,
                "Conflict",
                format!(
                    "Operation cannot be fulfilled on {} \"{}\": {}",
                    res.qualified_resource(),
                    name,
                    why
                ),
            )
        }
    }

    pub fn stale(res: &ResourceInfo, name: &str) -> Self {
        Self::conflict(
            res,
            name,
            "the object has been modified; please apply your changes to the latest version and try again",
        )
    }

    pub fn invalid(res: &ResourceInfo, name: &str, errs: &[FieldError]) -> Self {
        let causes: Vec<Value> = errs
            .iter()
            .map(|e| json!({"reason": e.kind.reason(), "message": e.body(), "field": e.field}))
            .collect();
        let mut d = details(res, name);
        d["kind"] = json!(res.kind);
        d["causes"] = json!(causes);
        ApiError {
            details: Some(d),
            ..Self::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "Invalid",
                format!(
                    "{} \"{}\" is invalid: {}",
                    res.qualified_kind(),
                    name,
                    aggregate_message(errs)
                ),
            )
        }
    }

    pub fn method_not_allowed(message: impl Into<String>) -> Self {
        Self::new(StatusCode::METHOD_NOT_ALLOWED, "MethodNotAllowed", message)
    }

    pub fn forbidden(res: &ResourceInfo, name: &str, why: &str) -> Self {
        let what = if name.is_empty() {
            res.qualified_resource()
        } else {
            format!("{} \"{}\"", res.qualified_resource(), name)
        };
        ApiError {
            details: Some(details(res, name)),
            ..Self::new(
                StatusCode::FORBIDDEN,
                "Forbidden",
                format!("{what} is forbidden: {why}"),
            )
        }
    }

    pub fn unauthorized() -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "Unauthorized", "Unauthorized")
    }

    pub fn gone(message: impl Into<String>) -> Self {
        Self::new(StatusCode::GONE, "Expired", message)
    }

    pub fn too_large() -> Self {
        Self::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "RequestEntityTooLarge",
            "Request entity too large: limit is 3145728",
        )
    }

    pub fn unsupported_media(ct: &str) -> Self {
        Self::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "UnsupportedMediaType",
            format!("the body of the request was in an unknown format - accepted media types include: application/json, application/yaml, application/vnd.kubernetes.protobuf (got {ct:?})"),
        )
    }

    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, "InternalError", message)
    }

    pub fn unavailable(message: impl Into<String>) -> Self {
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "ServiceUnavailable",
            message,
        )
    }

    /// A store error in the context of one object.
    pub fn from_store(e: StoreError, res: &ResourceInfo, name: &str) -> Self {
        match e {
            StoreError::AlreadyExists(_) => Self::already_exists(res, name),
            StoreError::NotFound(_) => Self::not_found(res, name),
            StoreError::Conflict(_) => Self::stale(res, name),
            StoreError::Compacted(_) => {
                Self::gone("The resourceVersion for the provided list is too old.")
            }
            StoreError::FutureRevision(_) => Self::new(
                StatusCode::GATEWAY_TIMEOUT,
                "Timeout",
                "Too large resource version",
            ),
            StoreError::Backend(msg) => Self::internal(msg),
        }
    }

    /// The `Status` object.
    pub fn status(&self) -> Value {
        let mut s = json!({
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "code": self.code.as_u16(),
        });
        if let Some(d) = &self.details {
            s["details"] = d.clone();
        }
        s
    }
}
