//! The query and path parameters of the Kubernetes REST operations, grouped
//! by verb, and their rendering in OpenAPI v3 and Swagger 2.0 form.

use std::borrow::Cow;

use serde_json::{json, Value};

/// Where a parameter travels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Location {
    Query,
    Path,
}

/// One operation parameter.
#[derive(Debug, Clone)]
pub(crate) struct Param {
    pub name: &'static str,
    pub location: Location,
    pub description: Cow<'static, str>,
    /// JSON type of the value: "string", "boolean" or "integer".
    pub ty: &'static str,
}

const fn query(name: &'static str, ty: &'static str, description: &'static str) -> Param {
    Param {
        name,
        location: Location::Query,
        description: Cow::Borrowed(description),
        ty,
    }
}

impl Param {
    /// OpenAPI v3 parameter object.
    pub fn to_v3(&self) -> Value {
        let mut v = json!({
            "name": self.name,
            "in": self.location_str(),
            "description": self.description,
        });
        if self.location == Location::Path {
            v["required"] = Value::Bool(true);
        }
        v["schema"] = json!({ "type": self.ty, "uniqueItems": true });
        v
    }

    /// Swagger 2.0 parameter object.
    pub fn to_v2(&self) -> Value {
        let mut v = json!({
            "uniqueItems": true,
            "type": self.ty,
            "description": self.description,
            "name": self.name,
            "in": self.location_str(),
        });
        if self.location == Location::Path {
            v["required"] = Value::Bool(true);
        }
        v
    }

    fn location_str(&self) -> &'static str {
        match self.location {
            Location::Query => "query",
            Location::Path => "path",
        }
    }
}

pub(crate) const PRETTY: Param = query(
    "pretty",
    "string",
    "If 'true', the output is pretty printed.",
);
pub(crate) const ALLOW_WATCH_BOOKMARKS: Param = query(
    "allowWatchBookmarks",
    "boolean",
    "Requests watch events of type BOOKMARK. Servers may ignore the request and send bookmarks at their discretion; ignored for non-watch requests.",
);
pub(crate) const CONTINUE: Param = query(
    "continue",
    "string",
    "The continue token returned by a previous list call that was truncated by limit; fetches the next chunk of results.",
);
pub(crate) const FIELD_SELECTOR: Param = query(
    "fieldSelector",
    "string",
    "A selector restricting the returned objects by their fields. Defaults to everything.",
);
pub(crate) const LABEL_SELECTOR: Param = query(
    "labelSelector",
    "string",
    "A selector restricting the returned objects by their labels. Defaults to everything.",
);
pub(crate) const LIMIT: Param = query(
    "limit",
    "integer",
    "The maximum number of objects to return from a list call; when more exist, the list metadata carries a continue token.",
);
pub(crate) const RESOURCE_VERSION: Param = query(
    "resourceVersion",
    "string",
    "Constrains which resource versions the request may be served from. Defaults to unset.",
);
pub(crate) const RESOURCE_VERSION_MATCH: Param = query(
    "resourceVersionMatch",
    "string",
    "How resourceVersion is applied to list calls: Exact or NotOlderThan. Defaults to unset.",
);
pub(crate) const SEND_INITIAL_EVENTS: Param = query(
    "sendInitialEvents",
    "boolean",
    "With watch=true, starts the watch with synthetic ADDED events for the current state of the objects, followed by a bookmark.",
);
pub(crate) const TIMEOUT_SECONDS: Param = query(
    "timeoutSeconds",
    "integer",
    "Timeout for the list/watch call, regardless of activity.",
);
pub(crate) const WATCH: Param = query(
    "watch",
    "boolean",
    "Watch for changes to the described resources and return them as a stream of add, update and remove notifications.",
);
pub(crate) const DRY_RUN: Param = query(
    "dryRun",
    "string",
    "When present, modifications are not persisted. The only valid value is All: process every dry-run stage.",
);
pub(crate) const FIELD_MANAGER: Param = query(
    "fieldManager",
    "string",
    "Name of the actor making the change, recorded in managedFields. At most 128 printable characters.",
);
pub(crate) const FIELD_VALIDATION: Param = query(
    "fieldValidation",
    "string",
    "How the server treats unknown or duplicate fields in the request body: Ignore (drop them silently), Warn (drop them and return a warning per field) or Strict (fail the request).",
);
pub(crate) const FORCE: Param = query(
    "force",
    "boolean",
    "Force an apply request to take over fields owned by other managers. Must be unset for non-apply patches.",
);
pub(crate) const GRACE_PERIOD_SECONDS: Param = query(
    "gracePeriodSeconds",
    "integer",
    "Seconds before the object is deleted; zero deletes immediately. Defaults to the per-type default when unset.",
);
pub(crate) const IGNORE_STORE_READ_ERROR: Param = query(
    "ignoreStoreReadErrorWithClusterBreakingPotential",
    "boolean",
    "Delete a corrupt object that cannot be read from storage. Unsafe; defaults to false.",
);
pub(crate) const ORPHAN_DEPENDENTS: Param = query(
    "orphanDependents",
    "boolean",
    "Deprecated: use propagationPolicy. Whether dependents are orphaned.",
);
pub(crate) const PROPAGATION_POLICY: Param = query(
    "propagationPolicy",
    "string",
    "Whether and how garbage collection happens: Orphan, Background or Foreground.",
);

/// List (and watch-through-list) operations.
pub(crate) fn list() -> Vec<Param> {
    vec![
        ALLOW_WATCH_BOOKMARKS,
        CONTINUE,
        FIELD_SELECTOR,
        LABEL_SELECTOR,
        LIMIT,
        RESOURCE_VERSION,
        RESOURCE_VERSION_MATCH,
        SEND_INITIAL_EVENTS,
        TIMEOUT_SECONDS,
        WATCH,
    ]
}

/// Create (POST) and replace (PUT).
pub(crate) fn write() -> Vec<Param> {
    vec![DRY_RUN, FIELD_MANAGER, FIELD_VALIDATION]
}

/// PATCH, including server-side apply.
pub(crate) fn patch() -> Vec<Param> {
    vec![DRY_RUN, FIELD_MANAGER, FIELD_VALIDATION, FORCE]
}

/// DELETE of one object.
pub(crate) fn delete() -> Vec<Param> {
    vec![
        DRY_RUN,
        GRACE_PERIOD_SECONDS,
        IGNORE_STORE_READ_ERROR,
        ORPHAN_DEPENDENTS,
        PROPAGATION_POLICY,
    ]
}

/// DELETE of a collection.
pub(crate) fn delete_collection() -> Vec<Param> {
    vec![
        CONTINUE,
        DRY_RUN,
        FIELD_SELECTOR,
        GRACE_PERIOD_SECONDS,
        IGNORE_STORE_READ_ERROR,
        LABEL_SELECTOR,
        LIMIT,
        ORPHAN_DEPENDENTS,
        PROPAGATION_POLICY,
        RESOURCE_VERSION,
        RESOURCE_VERSION_MATCH,
        SEND_INITIAL_EVENTS,
        TIMEOUT_SECONDS,
    ]
}

/// The `{name}` path parameter of an object of `kind`.
pub(crate) fn name(kind: &str) -> Param {
    Param {
        name: "name",
        location: Location::Path,
        description: Cow::Owned(format!("name of the {kind}")),
        ty: "string",
    }
}

/// The `{namespace}` path parameter.
pub(crate) fn namespace() -> Param {
    Param {
        name: "namespace",
        location: Location::Path,
        description: Cow::Borrowed("object name and auth scope, such as for teams and projects"),
        ty: "string",
    }
}
