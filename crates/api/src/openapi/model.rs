//! The format-neutral model of REST operations (path items, operations,
//! bodies, responses, media types) that `paths` builds and `render_v3` /
//! `render_v2` serialize.

use super::params::Param;

/// HTTP method of an operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Method {
    Get,
    Put,
    Post,
    Delete,
    Patch,
}

impl Method {
    /// The lower-case key of the operation in a path item.
    pub fn key(self) -> &'static str {
        match self {
            Method::Get => "get",
            Method::Put => "put",
            Method::Post => "post",
            Method::Delete => "delete",
            Method::Patch => "patch",
        }
    }
}

/// Group, version and kind of an operation's object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Gvk {
    pub group: &'static str,
    pub version: &'static str,
    pub kind: &'static str,
}

/// Request body: the definition it carries and whether it is a patch.
#[derive(Debug, Clone)]
pub(crate) struct Body {
    pub schema: String,
    pub patch: bool,
    pub required: bool,
}

/// One response: status code, description and optional body definition.
#[derive(Debug, Clone)]
pub(crate) struct Response {
    pub code: u16,
    pub description: &'static str,
    pub schema: Option<String>,
}

/// Media types an operation responds with.
pub(crate) const OBJECT_TYPES: &[&str] = &["application/json", "application/yaml"];
pub(crate) const LIST_TYPES: &[&str] = &[
    "application/json",
    "application/yaml",
    "application/json;stream=watch",
];
pub(crate) const WATCH_TYPES: &[&str] = &["application/json", "application/json;stream=watch"];
/// Media types a PATCH accepts.
pub(crate) const PATCH_TYPES: &[&str] = &[
    "application/json-patch+json",
    "application/merge-patch+json",
    "application/strategic-merge-patch+json",
    "application/apply-patch+yaml",
];

/// One operation of a path item.
#[derive(Debug, Clone)]
pub(crate) struct Operation {
    pub method: Method,
    pub id: String,
    pub description: String,
    pub tag: String,
    /// `x-kubernetes-action`; `None` for discovery operations.
    pub action: Option<&'static str>,
    pub gvk: Option<Gvk>,
    pub params: Vec<Param>,
    pub body: Option<Body>,
    pub responses: Vec<Response>,
    pub produces: &'static [&'static str],
}

/// A path with its shared parameters and operations.
#[derive(Debug, Clone)]
pub(crate) struct PathItem {
    pub path: String,
    pub params: Vec<Param>,
    pub ops: Vec<Operation>,
}

pub(crate) fn ok(schema: &str) -> Response {
    Response {
        code: 200,
        description: "OK",
        schema: Some(schema.to_string()),
    }
}

pub(crate) fn created(schema: &str) -> Response {
    Response {
        code: 201,
        description: "Created",
        schema: Some(schema.to_string()),
    }
}

pub(crate) fn accepted(schema: &str) -> Response {
    Response {
        code: 202,
        description: "Accepted",
        schema: Some(schema.to_string()),
    }
}

pub(crate) fn unauthorized() -> Response {
    Response {
        code: 401,
        description: "Unauthorized",
        schema: None,
    }
}
