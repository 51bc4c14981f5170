//! The Swagger 2.0 document of `/openapi/v2` encoded as the gnostic
//! protobuf message `openapi.v2.Document` (`openapiv2/OpenAPIv2.proto` of
//! github.com/google/gnostic-models), asked for as
//! [`V2_PROTOBUF_CONTENT_TYPE`](super::V2_PROTOBUF_CONTENT_TYPE) and served
//! as [`V2_PROTOBUF_RESPONSE_CONTENT_TYPE`](super::V2_PROTOBUF_RESPONSE_CONTENT_TYPE).
//!
//! client-go's `OpenAPISchema()` asks for `/openapi/v2` in this form only and
//! parses the answer as protobuf whatever its content type. kubectl uses it
//! to validate, client-side, manifests the server cannot validate for it —
//! `kind: List` among them: kube-openapi's `NewOpenAPIData` walks
//! `definitions` (schema `type`, `properties`, `items`,
//! `additionalProperties`, `_ref`, `required`) and maps kinds to
//! definitions through the `x-kubernetes-group-version-kind` vendor
//! extension, whose value (like every `Any`) is carried as YAML text.
//!
//! The encoder transcodes the JSON document of [`v2_document`] (same
//! content, paths included) with a small hand-written protobuf writer; the
//! field numbers below are those of the `.proto`. Parts of Swagger 2.0 the
//! document never uses are not encoded: XML objects, response headers and
//! examples, contacts' vendor extensions and OAuth2 security definitions.

use std::sync::{Arc, OnceLock};

use serde_json::Value;

use super::{
    v2_document, JSON_CONTENT_TYPE, V2_PROTOBUF_CONTENT_TYPE, V2_PROTOBUF_RESPONSE_CONTENT_TYPE,
};

/// The gnostic protobuf bytes of the `/openapi/v2` document, built once.
pub fn v2_protobuf() -> Arc<Vec<u8>> {
    static BYTES: OnceLock<Arc<Vec<u8>>> = OnceLock::new();
    let bytes = BYTES.get_or_init(|| {
        let doc: Value = serde_json::from_slice(&v2_document()).unwrap_or(Value::Null);
        Arc::new(document(&doc).0)
    });
    Arc::clone(bytes)
}

/// Whether a request for `/openapi/v2` with this `Accept` header gets the
/// protobuf form: the first acceptable (q > 0) media type that is either
/// the gnostic protobuf type (either spelling) or one JSON satisfies
/// decides.
pub fn v2_wants_protobuf(accept: Option<&str>) -> bool {
    for entry in accept.unwrap_or("").split(',') {
        let mut parts = entry.split(';');
        let media = parts.next().unwrap_or("").trim().to_ascii_lowercase();
        let refused = parts.any(|p| {
            p.trim()
                .strip_prefix("q=")
                .and_then(|q| q.trim().parse::<f32>().ok())
                .is_some_and(|q| q <= 0.0)
        });
        if refused {
            continue;
        }
        if media == V2_PROTOBUF_CONTENT_TYPE || media == V2_PROTOBUF_RESPONSE_CONTENT_TYPE {
            return true;
        }
        if media == JSON_CONTENT_TYPE || media == "application/*" || media == "*/*" {
            return false;
        }
    }
    false
}

const VARINT: u64 = 0;
const FIXED64: u64 = 1;
const LEN: u64 = 2;

/// A protobuf message being written. Scalars at their proto3 default
/// (empty, zero, false) are left out; sub-messages and repeated elements
/// are always written, since presence matters (an empty `properties`
/// makes a schema an object kind for kube-openapi).
#[derive(Default)]
struct Msg(Vec<u8>);

impl Msg {
    fn varint(&mut self, mut v: u64) {
        while v >= 0x80 {
            self.0.push(((v & 0x7f) | 0x80) as u8);
            v >>= 7;
        }
        self.0.push(v as u8);
    }

    fn key(&mut self, field: u32, wire: u64) {
        self.varint((u64::from(field) << 3) | wire);
    }

    fn len_delimited(&mut self, field: u32, bytes: &[u8]) {
        self.key(field, LEN);
        self.varint(bytes.len() as u64);
        self.0.extend_from_slice(bytes);
    }

    fn message(&mut self, field: u32, m: Msg) {
        self.len_delimited(field, &m.0);
    }

    fn string(&mut self, field: u32, s: &str) {
        if !s.is_empty() {
            self.len_delimited(field, s.as_bytes());
        }
    }

    /// A bool written even when false (members of a `oneof`).
    fn bool_always(&mut self, field: u32, b: bool) {
        self.key(field, VARINT);
        self.varint(u64::from(b));
    }

    fn int64(&mut self, field: u32, v: i64) {
        if v != 0 {
            self.key(field, VARINT);
            // Negative int64 values are their two's complement, 10 bytes.
            self.varint(v as u64);
        }
    }

    fn double(&mut self, field: u32, v: f64) {
        if v != 0.0 {
            self.key(field, FIXED64);
            self.0.extend_from_slice(&v.to_le_bytes());
        }
    }

    // Fields read from a JSON object `v` by key.

    fn str_of(&mut self, v: &Value, key: &str, field: u32) {
        if let Some(s) = v.get(key).and_then(Value::as_str) {
            self.string(field, s);
        }
    }

    fn strs_of(&mut self, v: &Value, key: &str, field: u32) {
        let items = v.get(key).and_then(Value::as_array);
        for s in items.into_iter().flatten().filter_map(Value::as_str) {
            self.len_delimited(field, s.as_bytes());
        }
    }

    fn bool_of(&mut self, v: &Value, key: &str, field: u32) {
        if v.get(key).and_then(Value::as_bool) == Some(true) {
            self.bool_always(field, true);
        }
    }

    fn int_of(&mut self, v: &Value, key: &str, field: u32) {
        let n = v
            .get(key)
            .and_then(|n| n.as_i64().or_else(|| n.as_f64().map(|f| f as i64)));
        if let Some(n) = n {
            self.int64(field, n);
        }
    }

    fn double_of(&mut self, v: &Value, key: &str, field: u32) {
        if let Some(n) = v.get(key).and_then(Value::as_f64) {
            self.double(field, n);
        }
    }

    /// An `Any` holding the YAML text of `v[key]`.
    fn any_of(&mut self, v: &Value, key: &str, field: u32) {
        if let Some(x) = v.get(key) {
            self.message(field, any(x));
        }
    }

    fn anys_of(&mut self, v: &Value, key: &str, field: u32) {
        for x in v.get(key).and_then(Value::as_array).into_iter().flatten() {
            self.message(field, any(x));
        }
    }

    fn msg_of(&mut self, v: &Value, key: &str, field: u32, encode: fn(&Value) -> Msg) {
        if let Some(x) = v.get(key) {
            self.message(field, encode(x));
        }
    }

    fn msgs_of(&mut self, v: &Value, key: &str, field: u32, encode: fn(&Value) -> Msg) {
        for x in v.get(key).and_then(Value::as_array).into_iter().flatten() {
            self.message(field, encode(x));
        }
    }

    /// The `x-` members of `v` as repeated `NamedAny`.
    fn extensions(&mut self, v: &Value, field: u32) {
        for (name, x) in entries(v).filter(|(k, _)| k.starts_with("x-")) {
            self.message(field, named(name, any(x)));
        }
    }

    /// The non-`x-` members of `v` as repeated `Named<T>` {name, value}.
    fn named_of(&mut self, v: &Value, field: u32, encode: fn(&Value) -> Msg) {
        for (name, x) in entries(v).filter(|(k, _)| !k.starts_with("x-")) {
            self.message(field, named(name, encode(x)));
        }
    }
}

/// The members of `v` if it is an object, in document order.
fn entries(v: &Value) -> impl Iterator<Item = (&String, &Value)> {
    v.as_object().into_iter().flatten()
}

/// A `Named<T>` message: `name` = 1, `value` = 2.
fn named(name: &str, value: Msg) -> Msg {
    let mut m = Msg::default();
    m.string(1, name);
    m.message(2, value);
    m
}

/// A message of one repeated `Named<T>` field (number 1) holding the
/// members of the map `v`.
fn named_map(v: &Value, encode: fn(&Value) -> Msg) -> Msg {
    let mut m = Msg::default();
    m.named_of(v, 1, encode);
    m
}

/// `Any`: `yaml` = 2 (the `google.protobuf.Any` of field 1 is unused).
fn any(v: &Value) -> Msg {
    let mut m = Msg::default();
    if let Ok(yaml) = serde_yaml::to_string(v) {
        m.string(2, &yaml);
    }
    m
}

fn external_docs(v: &Value) -> Msg {
    let mut m = Msg::default();
    m.str_of(v, "description", 1);
    m.str_of(v, "url", 2);
    m.extensions(v, 3);
    m
}

/// `Schema`.
fn schema(v: &Value) -> Msg {
    let mut m = Msg::default();
    m.str_of(v, "$ref", 1);
    m.str_of(v, "format", 2);
    m.str_of(v, "title", 3);
    m.str_of(v, "description", 4);
    m.any_of(v, "default", 5);
    m.double_of(v, "multipleOf", 6);
    m.double_of(v, "maximum", 7);
    m.bool_of(v, "exclusiveMaximum", 8);
    m.double_of(v, "minimum", 9);
    m.bool_of(v, "exclusiveMinimum", 10);
    m.int_of(v, "maxLength", 11);
    m.int_of(v, "minLength", 12);
    m.str_of(v, "pattern", 13);
    m.int_of(v, "maxItems", 14);
    m.int_of(v, "minItems", 15);
    m.bool_of(v, "uniqueItems", 16);
    m.int_of(v, "maxProperties", 17);
    m.int_of(v, "minProperties", 18);
    m.strs_of(v, "required", 19);
    m.anys_of(v, "enum", 20);
    // AdditionalPropertiesItem: oneof { Schema schema = 1; bool boolean = 2; }
    match v.get("additionalProperties") {
        Some(Value::Bool(b)) => {
            let mut a = Msg::default();
            a.bool_always(2, *b);
            m.message(21, a);
        }
        Some(s @ Value::Object(_)) => {
            let mut a = Msg::default();
            a.message(1, schema(s));
            m.message(21, a);
        }
        _ => {}
    }
    // TypeItem: repeated string value = 1.
    let types: Vec<&str> = match v.get("type") {
        Some(Value::String(t)) => vec![t.as_str()],
        Some(Value::Array(ts)) => ts.iter().filter_map(Value::as_str).collect(),
        _ => Vec::new(),
    };
    if v.get("type").is_some() {
        let mut t_item = Msg::default();
        types
            .iter()
            .for_each(|t| t_item.len_delimited(1, t.as_bytes()));
        m.message(22, t_item);
    }
    // ItemsItem: repeated Schema schema = 1.
    match v.get("items") {
        Some(Value::Array(list)) => {
            let mut items = Msg::default();
            list.iter().for_each(|s| items.message(1, schema(s)));
            m.message(23, items);
        }
        Some(s @ Value::Object(_)) => {
            let mut items = Msg::default();
            items.message(1, schema(s));
            m.message(23, items);
        }
        _ => {}
    }
    m.msgs_of(v, "allOf", 24, schema);
    // Properties: repeated NamedSchema additional_properties = 1.
    if let Some(props) = v.get("properties") {
        let mut p = Msg::default();
        for (name, s) in entries(props) {
            p.message(1, named(name, schema(s)));
        }
        m.message(25, p);
    }
    m.str_of(v, "discriminator", 26);
    m.bool_of(v, "readOnly", 27);
    m.msg_of(v, "externalDocs", 29, external_docs);
    m.any_of(v, "example", 30);
    m.extensions(v, 31);
    m
}

/// The fields shared by the non-body parameter sub-schemas and
/// `PrimitivesItems`, numbered from `base` (`type`) up to `base + 17`
/// (vendor extensions).
fn primitive_fields(m: &mut Msg, v: &Value, base: u32) {
    m.str_of(v, "type", base);
    m.str_of(v, "format", base + 1);
    m.msg_of(v, "items", base + 2, primitives_items);
    m.str_of(v, "collectionFormat", base + 3);
    m.any_of(v, "default", base + 4);
    m.double_of(v, "maximum", base + 5);
    m.bool_of(v, "exclusiveMaximum", base + 6);
    m.double_of(v, "minimum", base + 7);
    m.bool_of(v, "exclusiveMinimum", base + 8);
    m.int_of(v, "maxLength", base + 9);
    m.int_of(v, "minLength", base + 10);
    m.str_of(v, "pattern", base + 11);
    m.int_of(v, "maxItems", base + 12);
    m.int_of(v, "minItems", base + 13);
    m.bool_of(v, "uniqueItems", base + 14);
    m.anys_of(v, "enum", base + 15);
    m.double_of(v, "multipleOf", base + 16);
    m.extensions(v, base + 17);
}

fn primitives_items(v: &Value) -> Msg {
    let mut m = Msg::default();
    primitive_fields(&mut m, v, 1);
    m
}

fn json_reference(v: &Value) -> Msg {
    let mut m = Msg::default();
    m.str_of(v, "$ref", 1);
    m.str_of(v, "description", 2);
    m
}

/// `Parameter`: oneof { BodyParameter = 1; NonBodyParameter = 2; }.
fn parameter(v: &Value) -> Msg {
    let mut m = Msg::default();
    let location = v.get("in").and_then(Value::as_str).unwrap_or("");
    if location == "body" {
        let mut b = Msg::default();
        b.str_of(v, "description", 1);
        b.str_of(v, "name", 2);
        b.str_of(v, "in", 3);
        b.bool_of(v, "required", 4);
        b.msg_of(v, "schema", 5, schema);
        b.extensions(v, 6);
        m.message(1, b);
        return m;
    }
    // NonBodyParameter: oneof { header = 1; formData = 2; query = 3;
    // path = 4 }. Query and form-data sub-schemas have `allowEmptyValue`
    // at 5, shifting the shared fields by one.
    let (variant, allow_empty) = match location {
        "header" => (1, false),
        "formData" => (2, true),
        "path" => (4, false),
        _ => (3, true),
    };
    let mut s = Msg::default();
    s.bool_of(v, "required", 1);
    s.str_of(v, "in", 2);
    s.str_of(v, "description", 3);
    s.str_of(v, "name", 4);
    if allow_empty {
        s.bool_of(v, "allowEmptyValue", 5);
        primitive_fields(&mut s, v, 6);
    } else {
        primitive_fields(&mut s, v, 5);
    }
    let mut non_body = Msg::default();
    non_body.message(variant, s);
    m.message(2, non_body);
    m
}

/// `ParametersItem`: oneof { Parameter = 1; JsonReference = 2; }.
fn parameters_item(v: &Value) -> Msg {
    let mut m = Msg::default();
    if v.get("$ref").is_some() {
        m.message(2, json_reference(v));
    } else {
        m.message(1, parameter(v));
    }
    m
}

fn response(v: &Value) -> Msg {
    let mut m = Msg::default();
    m.str_of(v, "description", 1);
    if let Some(s) = v.get("schema") {
        // SchemaItem: oneof { Schema schema = 1; FileSchema = 2; }
        let mut item = Msg::default();
        item.message(1, schema(s));
        m.message(2, item);
    }
    m.extensions(v, 5);
    m
}

/// `ResponseValue`: oneof { Response = 1; JsonReference = 2; }.
fn response_value(v: &Value) -> Msg {
    let mut m = Msg::default();
    if v.get("$ref").is_some() {
        m.message(2, json_reference(v));
    } else {
        m.message(1, response(v));
    }
    m
}

fn responses(v: &Value) -> Msg {
    let mut m = Msg::default();
    m.named_of(v, 1, response_value);
    m.extensions(v, 2);
    m
}

/// `SecurityRequirement`: repeated NamedStringArray {name, StringArray}.
fn security_requirement(v: &Value) -> Msg {
    let mut m = Msg::default();
    for (name, scopes) in entries(v) {
        let mut array = Msg::default();
        for s in scopes
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
        {
            array.len_delimited(1, s.as_bytes());
        }
        m.message(1, named(name, array));
    }
    m
}

fn operation(v: &Value) -> Msg {
    let mut m = Msg::default();
    m.strs_of(v, "tags", 1);
    m.str_of(v, "summary", 2);
    m.str_of(v, "description", 3);
    m.msg_of(v, "externalDocs", 4, external_docs);
    m.str_of(v, "operationId", 5);
    m.strs_of(v, "produces", 6);
    m.strs_of(v, "consumes", 7);
    m.msgs_of(v, "parameters", 8, parameters_item);
    m.msg_of(v, "responses", 9, responses);
    m.strs_of(v, "schemes", 10);
    m.bool_of(v, "deprecated", 11);
    m.msgs_of(v, "security", 12, security_requirement);
    m.extensions(v, 13);
    m
}

fn path_item(v: &Value) -> Msg {
    let mut m = Msg::default();
    m.str_of(v, "$ref", 1);
    let methods = [
        ("get", 2),
        ("put", 3),
        ("post", 4),
        ("delete", 5),
        ("options", 6),
        ("head", 7),
        ("patch", 8),
    ];
    for (method, field) in methods {
        m.msg_of(v, method, field, operation);
    }
    m.msgs_of(v, "parameters", 9, parameters_item);
    m.extensions(v, 10);
    m
}

fn paths(v: &Value) -> Msg {
    let mut m = Msg::default();
    m.extensions(v, 1);
    m.named_of(v, 2, path_item);
    m
}

/// `SecurityDefinitionsItem`: oneof by `type` (basic = 1, apiKey = 2).
fn security_definitions_item(v: &Value) -> Msg {
    let mut m = Msg::default();
    let mut s = Msg::default();
    s.str_of(v, "type", 1);
    match v.get("type").and_then(Value::as_str) {
        Some("basic") => {
            s.str_of(v, "description", 2);
            s.extensions(v, 3);
            m.message(1, s);
        }
        Some("apiKey") => {
            s.str_of(v, "name", 2);
            s.str_of(v, "in", 3);
            s.str_of(v, "description", 4);
            s.extensions(v, 5);
            m.message(2, s);
        }
        _ => {}
    }
    m
}

fn info(v: &Value) -> Msg {
    let mut m = Msg::default();
    m.str_of(v, "title", 1);
    m.str_of(v, "version", 2);
    m.str_of(v, "description", 3);
    m.str_of(v, "termsOfService", 4);
    m.msg_of(v, "contact", 5, |c| {
        let mut m = Msg::default();
        m.str_of(c, "name", 1);
        m.str_of(c, "url", 2);
        m.str_of(c, "email", 3);
        m
    });
    m.msg_of(v, "license", 6, |l| {
        let mut m = Msg::default();
        m.str_of(l, "name", 1);
        m.str_of(l, "url", 2);
        m.extensions(l, 3);
        m
    });
    m.extensions(v, 7);
    m
}

fn tag(v: &Value) -> Msg {
    let mut m = Msg::default();
    m.str_of(v, "name", 1);
    m.str_of(v, "description", 2);
    m.msg_of(v, "externalDocs", 3, external_docs);
    m.extensions(v, 4);
    m
}

/// `Document`.
fn document(v: &Value) -> Msg {
    let mut m = Msg::default();
    m.str_of(v, "swagger", 1);
    m.msg_of(v, "info", 2, info);
    m.str_of(v, "host", 3);
    m.str_of(v, "basePath", 4);
    m.strs_of(v, "schemes", 5);
    m.strs_of(v, "consumes", 6);
    m.strs_of(v, "produces", 7);
    m.msg_of(v, "paths", 8, paths);
    // Definitions, ParameterDefinitions, ResponseDefinitions and
    // SecurityDefinitions: repeated Named<T> additional_properties = 1.
    m.msg_of(v, "definitions", 9, |x| named_map(x, schema));
    m.msg_of(v, "parameters", 10, |x| named_map(x, parameter));
    m.msg_of(v, "responses", 11, |x| named_map(x, response));
    m.msgs_of(v, "security", 12, security_requirement);
    m.msg_of(v, "securityDefinitions", 13, |x| {
        named_map(x, security_definitions_item)
    });
    m.msgs_of(v, "tags", 14, tag);
    m.msg_of(v, "externalDocs", 15, external_docs);
    m.extensions(v, 16);
    m
}

#[cfg(test)]
mod gnostic_messages;
#[cfg(test)]
mod tests;
