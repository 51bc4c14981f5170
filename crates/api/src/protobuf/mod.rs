//! Kubernetes protobuf request bodies (`application/vnd.kubernetes.protobuf`),
//! decoded into the `serde_json::Value` the JSON encoding of the same object
//! would be, so the rest of the write path (typed decoding, defaulting,
//! validation) is the JSON one.
//!
//! kubectl and client-go send built-in kinds this way and do not fall back to
//! JSON on 415. The body is the 4-byte magic `k8s\0` and a `runtime.Unknown`
//! {1: TypeMeta{1: apiVersion, 2: kind}, 2: raw, 3: contentEncoding,
//! 4: contentType}; `raw` is the object's message, named by apiVersion/kind.
//! The message schemas are in the generated `table.rs`
//! (scripts/gen-proto-table.py).
//!
//! Differences from a field-by-field translation, to match the JSON form:
//! zero scalars of non-pointer Go fields are dropped (upstream marshals them
//! always; JSON omits them), embedded Go structs are flattened, bytes are
//! base64, and the well-known types (Quantity, IntOrString, Time, MicroTime,
//! Duration, FieldsV1, RawExtension) take their JSON forms. Unknown field
//! numbers are skipped, as upstream's decoder does.

mod convert;
mod schema;
mod special;
mod table;
mod wire;

#[cfg(test)]
mod tests;

use serde_json::{Map, Value};

use wire::{Reader, WireValue};

/// The media type of Kubernetes protobuf bodies.
pub const MEDIA_TYPE: &str = "application/vnd.kubernetes.protobuf";

/// The prefix of every Kubernetes protobuf body.
const MAGIC: &[u8] = b"k8s\0";

/// Why a protobuf body could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProtobufError {
    #[error("protobuf body does not start with the Kubernetes magic \"k8s\\x00\"")]
    MissingMagic,
    #[error("protobuf body has no apiVersion and kind")]
    MissingTypeMeta,
    #[error("protobuf body: {0}")]
    Unsupported(String),
    #[error("no protobuf schema for kind {kind:?} in {api_version:?}")]
    UnknownKind { api_version: String, kind: String },
    #[error("malformed protobuf body at {}: {reason}", if path.is_empty() { "top level" } else { path.as_str() })]
    Malformed { path: String, reason: String },
    #[error("protobuf body nests messages deeper than {0}")]
    TooDeep(usize),
}

/// Whether a `Content-Type` header value names Kubernetes protobuf
/// (parameters ignored).
pub fn is_protobuf(content_type: &str) -> bool {
    content_type
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .eq_ignore_ascii_case(MEDIA_TYPE)
}

/// The parts of the `runtime.Unknown` envelope.
#[derive(Default)]
struct Envelope<'a> {
    api_version: &'a str,
    kind: &'a str,
    raw: &'a [u8],
    content_encoding: &'a str,
    content_type: &'a str,
}

fn envelope(buf: &[u8]) -> Result<Envelope<'_>, ProtobufError> {
    let mut env = Envelope::default();
    let mut r = Reader::new(buf);
    while let Some((n, v)) = r.field()? {
        match n {
            1 => type_meta(v, &mut env)?,
            2 => env.raw = v.bytes()?,
            3 => env.content_encoding = v.str()?,
            4 => env.content_type = v.str()?,
            _ => {}
        }
    }
    Ok(env)
}

fn type_meta<'a>(v: WireValue<'a>, env: &mut Envelope<'a>) -> Result<(), ProtobufError> {
    let mut r = Reader::new(v.bytes()?);
    while let Some((n, v)) = r.field()? {
        match n {
            1 => env.api_version = v.str()?,
            2 => env.kind = v.str()?,
            _ => {}
        }
    }
    Ok(())
}

/// Decodes a Kubernetes protobuf body into the object's JSON form, with
/// `kind` and `apiVersion` from the envelope.
pub fn decode(body: &[u8]) -> Result<Value, ProtobufError> {
    let rest = body
        .strip_prefix(MAGIC)
        .ok_or(ProtobufError::MissingMagic)?;
    let env = envelope(rest)?;
    if env.kind.is_empty() || env.api_version.is_empty() {
        return Err(ProtobufError::MissingTypeMeta);
    }
    if !env.content_encoding.is_empty() {
        return Err(ProtobufError::Unsupported(format!(
            "content encoding {:?} is not supported",
            env.content_encoding
        )));
    }
    if !env.content_type.is_empty() && !is_protobuf(env.content_type) {
        return Err(ProtobufError::Unsupported(format!(
            "embedded content type {:?} is not protobuf",
            env.content_type
        )));
    }
    let (group, version) = env
        .api_version
        .rsplit_once('/')
        .unwrap_or(("", env.api_version));
    let msg = schema::root(group, version, env.kind)
        .or_else(|| {
            // Clients send DeleteOptions under the resource's group version.
            (env.kind == "DeleteOptions").then(|| schema::root("meta.k8s.io", "v1", env.kind))?
        })
        .ok_or_else(|| ProtobufError::UnknownKind {
            api_version: env.api_version.to_string(),
            kind: env.kind.to_string(),
        })?;
    let mut obj = Map::new();
    obj.insert("kind".into(), Value::String(env.kind.to_string()));
    obj.insert(
        "apiVersion".into(),
        Value::String(env.api_version.to_string()),
    );
    convert::decode_into(msg, env.raw, 0, &mut obj)?;
    Ok(Value::Object(obj))
}
