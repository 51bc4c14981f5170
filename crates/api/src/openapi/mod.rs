//! OpenAPI documents served by the API server, generated from the
//! `k8s-openapi` types (through their schemars `JsonSchema` impls) and the
//! resource table:
//!
//! * [`v3_index`]: the `/openapi/v3` discovery document, listing every
//!   document path (`api`, `apis`, `api/v1`, `apis/<group>`,
//!   `apis/<group>/<version>`) with a `serverRelativeURL` carrying the
//!   content hash of the document;
//! * [`v3_document`]: the OpenAPI 3.0 JSON of one of those paths;
//! * [`v2_document`]: the Swagger 2.0 JSON of `/openapi/v2`;
//! * [`v2_protobuf`]: the same document as the gnostic protobuf
//!   `openapi.v2.Document`, which client-go asks for (kubectl validates
//!   `kind: List` manifests client-side with it).
//!
//! Every document is built once, on first use, and cached.
//!
//! kubectl relies on the v3 documents: `apply`/`create`/`replace` decide
//! whether the server validates fields by finding, in the document of the
//! object's group-version, a PATCH operation whose
//! `x-kubernetes-group-version-kind` is the object's GVK and whose own
//! (operation-level) `parameters` include `fieldValidation`; client-side
//! `apply` computes its strategic merge patch from the `components.schemas`
//! entry listing that GVK; `explain` walks the same schemas.

mod kinds;
mod model;
mod params;
mod patch_meta;
mod paths;
mod render_v2;
mod render_v3;
mod schemas;
#[cfg(test)]
mod tests;
mod v2_proto;

pub use v2_proto::{v2_protobuf, v2_wants_protobuf};

use std::collections::BTreeMap;
use std::sync::{Arc, OnceLock};

use serde_json::{json, Map, Value};

use crate::resources::{group_versions, GROUPS};

/// Media type of the JSON documents.
pub const JSON_CONTENT_TYPE: &str = "application/json";
/// Media type kubectl may ask for the v3 documents in; not served (answer
/// 406 when it is the only acceptable type).
pub const V3_PROTOBUF_CONTENT_TYPE: &str =
    "application/com.github.proto-openapi.spec.v3@v1.0+protobuf";
/// Media type client-go asks for `/openapi/v2` in: served by
/// [`v2_protobuf`] (see [`v2_wants_protobuf`]).
pub const V2_PROTOBUF_CONTENT_TYPE: &str =
    "application/com.github.proto-openapi.spec.v2@v1.0+protobuf";
/// The `Content-Type` of [`v2_protobuf`] answers, also accepted in `Accept`.
/// As upstream (kube-openapi), `.v1.0` rather than `@v1.0`: `@` is not a
/// token character, and client-go fails the request ("mime: unexpected
/// content after media subtype") when Go's `mime.ParseMediaType` rejects
/// the response's content type.
pub const V2_PROTOBUF_RESPONSE_CONTENT_TYPE: &str =
    "application/com.github.proto-openapi.spec.v2.v1.0+protobuf";

/// A serialized document and the hash of its bytes.
struct Doc {
    bytes: Arc<Vec<u8>>,
    hash: String,
}

impl Doc {
    fn new(v: &Value) -> Doc {
        // Serializing a `Value` cannot fail (all map keys are strings).
        let bytes = serde_json::to_vec(v).unwrap_or_default();
        let hash = content_hash(&bytes);
        Doc {
            bytes: Arc::new(bytes),
            hash,
        }
    }
}

/// Served (group, version) pairs, core first, in discovery order.
pub(crate) fn served_group_versions() -> Vec<(&'static str, &'static str)> {
    GROUPS
        .iter()
        .flat_map(|g| group_versions(g).into_iter().map(move |v| (*g, v)))
        .collect()
}

/// The path items of every v3 document, keyed by document path.
fn v3_path_items() -> BTreeMap<String, Vec<model::PathItem>> {
    let mut out = BTreeMap::new();
    out.insert("api".to_string(), paths::core_versions_paths());
    out.insert("apis".to_string(), paths::groups_paths());
    for (group, version) in served_group_versions() {
        if group.is_empty() {
            out.insert(
                format!("api/{version}"),
                paths::group_version_paths(group, version),
            );
        } else {
            out.entry(format!("apis/{group}"))
                .or_insert_with(|| paths::group_paths(group));
            out.insert(
                format!("apis/{group}/{version}"),
                paths::group_version_paths(group, version),
            );
        }
    }
    out
}

fn v3_docs() -> &'static BTreeMap<String, Doc> {
    static DOCS: OnceLock<BTreeMap<String, Doc>> = OnceLock::new();
    DOCS.get_or_init(|| {
        v3_path_items()
            .into_iter()
            .map(|(path, items)| {
                let doc = Doc::new(&render_v3::document(&items));
                (path, doc)
            })
            .collect()
    })
}

fn v2_doc() -> &'static Doc {
    static DOC: OnceLock<Doc> = OnceLock::new();
    DOC.get_or_init(|| {
        let items: Vec<model::PathItem> = v3_path_items().into_values().flatten().collect();
        Doc::new(&render_v2::document(&items))
    })
}

/// The `/openapi/v3` discovery document:
/// `{"paths": {"api/v1": {"serverRelativeURL": "/openapi/v3/api/v1?hash=<HASH>"}, …}}`.
pub fn v3_index() -> Value {
    let paths: Map<String, Value> = v3_docs()
        .iter()
        .map(|(path, doc)| {
            (
                path.clone(),
                json!({ "serverRelativeURL": relative_url(path, &doc.hash) }),
            )
        })
        .collect();
    json!({ "paths": paths })
}

fn relative_url(path: &str, hash: &str) -> String {
    format!("/openapi/v3/{path}?hash={hash}")
}

/// The current `serverRelativeURL` of the v3 document at `gv_path` (the
/// target of the redirect answering a request with a stale `hash`).
pub fn v3_server_relative_url(gv_path: &str) -> Option<String> {
    let path = gv_path.trim_matches('/');
    v3_docs().get(path).map(|d| relative_url(path, &d.hash))
}

/// The JSON bytes of the v3 document at `gv_path` ("api/v1",
/// "apis/apps/v1", "apis/apps", "api", "apis"), or `None` if not served.
pub fn v3_document(gv_path: &str) -> Option<Arc<Vec<u8>>> {
    v3_docs()
        .get(gv_path.trim_matches('/'))
        .map(|d| Arc::clone(&d.bytes))
}

/// The content hash of the v3 document at `gv_path` (the `hash` query
/// parameter of its `serverRelativeURL`, and its ETag).
pub fn v3_document_hash(gv_path: &str) -> Option<&'static str> {
    v3_docs()
        .get(gv_path.trim_matches('/'))
        .map(|d| d.hash.as_str())
}

/// The document paths listed by [`v3_index`], sorted.
pub fn v3_document_paths() -> Vec<&'static str> {
    v3_docs().keys().map(String::as_str).collect()
}

/// The JSON bytes of the Swagger 2.0 document served at `/openapi/v2`.
pub fn v2_document() -> Arc<Vec<u8>> {
    Arc::clone(&v2_doc().bytes)
}

/// The content hash of [`v2_document`], for its ETag.
pub fn v2_document_hash() -> &'static str {
    v2_doc().hash.as_str()
}

/// Upper-case hex of a 128-bit FNV-1a hash of `bytes`: stable across
/// builds and platforms, and changes whenever a document changes.
pub(crate) fn content_hash(bytes: &[u8]) -> String {
    const OFFSET: u128 = 0x6c62_272e_07bb_0142_62b8_2175_6295_c58d;
    const PRIME: u128 = 0x0000_0000_0100_0000_0000_0000_0000_013b;
    let h = bytes
        .iter()
        .fold(OFFSET, |h, b| (h ^ u128::from(*b)).wrapping_mul(PRIME));
    format!("{h:032X}")
}
