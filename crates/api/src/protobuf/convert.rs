//! Walks a message's wire fields against the schema table and builds the JSON
//! object the JSON encoding of the same Go object would have.

use base64::Engine as _;
use serde_json::{Map, Value};

use super::schema::{message, Card, Field, Kind, Message};
use super::special;
use super::wire::{malformed, Reader, WireValue};
use super::ProtobufError;

/// Deepest message nesting accepted (Kubernetes objects need about 15).
pub(crate) const MAX_DEPTH: usize = 48;

/// Prefixes the path of a `Malformed` error with one segment.
fn at(err: ProtobufError, segment: &str) -> ProtobufError {
    match err {
        ProtobufError::Malformed { path, reason } => {
            let path = match (path.is_empty(), path.starts_with('[')) {
                (true, _) => segment.to_string(),
                (false, true) => format!("{segment}{path}"),
                (false, false) => format!("{segment}.{path}"),
            };
            ProtobufError::Malformed { path, reason }
        }
        other => other,
    }
}

fn nested(id: u16) -> Result<&'static Message, ProtobufError> {
    message(id).ok_or_else(|| malformed(format!("schema has no message {id}")))
}

/// Decodes the fields of `msg` in `buf` into `out` (which may already hold
/// fields: inline structs and repeated occurrences of a message merge).
pub(crate) fn decode_into(
    msg: &'static Message,
    buf: &[u8],
    depth: usize,
    out: &mut Map<String, Value>,
) -> Result<(), ProtobufError> {
    if depth > MAX_DEPTH {
        return Err(ProtobufError::TooDeep(MAX_DEPTH));
    }
    let mut r = Reader::new(buf);
    while let Some((number, value)) = r.field()? {
        // Unknown fields are skipped, as upstream's decoder does.
        let Some(f) = msg.field(number) else {
            continue;
        };
        let res = match f.card {
            Card::Inline => match f.kind {
                Kind::Msg(id) => decode_into(nested(id)?, value.bytes()?, depth + 1, out),
                _ => Err(malformed(format!(
                    "{}: inline field is not a message",
                    msg.name
                ))),
            },
            Card::One => one(f, value, depth, out),
            Card::Repeated => repeated(f, value, depth, out),
            Card::Map => map_entry(f, value, depth, out),
        };
        // Inline fields add no path segment: JSON has none.
        res.map_err(|e| if f.json.is_empty() { e } else { at(e, f.json) })?;
    }
    Ok(())
}

/// Whether a value is the zero value JSON's `omitempty` leaves out.
fn is_zero(v: &Value) -> bool {
    match v {
        Value::String(s) => s.is_empty(),
        Value::Bool(b) => !b,
        Value::Number(n) => n.as_i64() == Some(0) || n.as_f64() == Some(0.0),
        _ => false,
    }
}

fn one(
    f: &Field,
    value: WireValue<'_>,
    depth: usize,
    out: &mut Map<String, Value>,
) -> Result<(), ProtobufError> {
    if let Kind::Msg(id) = f.kind {
        // A message given twice merges, as in protobuf.
        let bytes = value.bytes()?;
        let slot = out
            .entry(f.json)
            .or_insert_with(|| Value::Object(Map::new()));
        if !slot.is_object() {
            *slot = Value::Object(Map::new());
        }
        if let Value::Object(obj) = slot {
            decode_into(nested(id)?, bytes, depth + 1, obj)?;
        }
        return Ok(());
    }
    match element(f.kind, value, depth)? {
        Some(v) if f.keep_zero || !is_zero(&v) => {
            out.insert(f.json.to_string(), v);
        }
        // The last occurrence wins, also when it is an omitted zero.
        _ => {
            out.remove(f.json);
        }
    }
    Ok(())
}

/// Whether elements of this kind may come packed in one length-delimited value.
fn packable(kind: Kind) -> bool {
    matches!(kind, Kind::I32 | Kind::I64 | Kind::Bool | Kind::F64)
}

fn repeated(
    f: &Field,
    value: WireValue<'_>,
    depth: usize,
    out: &mut Map<String, Value>,
) -> Result<(), ProtobufError> {
    let base = out
        .get(f.json)
        .and_then(Value::as_array)
        .map_or(0, Vec::len);
    let index = |e, i: usize| at(e, &format!("[{}]", base + i));
    let mut items = Vec::new();
    match value {
        WireValue::Bytes(packed) if packable(f.kind) => {
            let mut r = Reader::new(packed);
            while !r.is_empty() {
                let v = if f.kind == Kind::F64 {
                    r.fixed64().map(WireValue::Fixed64)
                } else {
                    r.varint().map(WireValue::Varint)
                };
                let v = v.and_then(|v| element(f.kind, v, depth));
                items.push(v.map_err(|e| index(e, items.len()))?.unwrap_or(Value::Null));
            }
        }
        v => {
            let v = element(f.kind, v, depth).map_err(|e| index(e, 0))?;
            items.push(v.unwrap_or(Value::Null));
        }
    }
    let slot = out
        .entry(f.json)
        .or_insert_with(|| Value::Array(Vec::new()));
    if !slot.is_array() {
        *slot = Value::Array(Vec::new());
    }
    if let Value::Array(arr) = slot {
        arr.extend(items);
    }
    Ok(())
}

fn map_entry(
    f: &Field,
    value: WireValue<'_>,
    depth: usize,
    out: &mut Map<String, Value>,
) -> Result<(), ProtobufError> {
    let mut r = Reader::new(value.bytes()?);
    let mut key = "";
    let mut val: Option<WireValue<'_>> = None;
    while let Some((n, v)) = r.field()? {
        match n {
            1 => key = v.str().map_err(|e| at(e, "[key]"))?,
            2 => val = Some(v),
            _ => {}
        }
    }
    // An absent value is the kind's zero value.
    let val = val.unwrap_or(match f.kind {
        Kind::I32 | Kind::I64 | Kind::Bool => WireValue::Varint(0),
        Kind::F64 => WireValue::Fixed64(0),
        _ => WireValue::Bytes(&[]),
    });
    let v = element(f.kind, val, depth)
        .map_err(|e| at(e, &format!("[{key:?}]")))?
        .unwrap_or(Value::Null);
    let slot = out
        .entry(f.json)
        .or_insert_with(|| Value::Object(Map::new()));
    if !slot.is_object() {
        *slot = Value::Object(Map::new());
    }
    if let Value::Object(obj) = slot {
        obj.insert(key.to_string(), v);
    }
    Ok(())
}

/// One value of `kind`; `None` for a value JSON writes as `null` (zero
/// times, empty raw JSON).
fn element(kind: Kind, value: WireValue<'_>, depth: usize) -> Result<Option<Value>, ProtobufError> {
    Ok(Some(match kind {
        Kind::Str => Value::String(value.str()?.to_string()),
        Kind::Bytes => {
            Value::String(base64::engine::general_purpose::STANDARD.encode(value.bytes()?))
        }
        // int32 on the wire: sign-extended to 64 bits, truncation intended.
        Kind::I32 => Value::from(value.varint()? as i64 as i32),
        Kind::I64 => Value::from(value.varint()? as i64),
        Kind::Bool => Value::Bool(value.varint()? != 0),
        Kind::F64 => {
            let x = f64::from_bits(value.fixed64()?);
            Value::Number(
                serde_json::Number::from_f64(x)
                    .ok_or_else(|| malformed(format!("{x} is not a JSON number")))?,
            )
        }
        Kind::Quantity => special::quantity(value.bytes()?)?,
        Kind::IntOrStr => special::int_or_string(value.bytes()?)?,
        Kind::Time => return special::time(value.bytes()?),
        Kind::MicroTime => return special::micro_time(value.bytes()?),
        Kind::Duration => special::duration(value.bytes()?)?,
        Kind::FieldsV1 | Kind::RawExt => return special::raw_json(value.bytes()?),
        Kind::Msg(id) => {
            let mut obj = Map::new();
            decode_into(nested(id)?, value.bytes()?, depth + 1, &mut obj)?;
            Value::Object(obj)
        }
    }))
}
