//! The shape of the generated wire schema (`table.rs`): messages, their
//! fields (number, JSON name, value kind, cardinality) and the lookups the
//! decoder uses.

use super::table::{MESSAGES, ROOTS};

/// What one field (or one element of a repeated field / map value) holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    /// `string` → JSON string.
    Str,
    /// `bytes` → base64 JSON string.
    Bytes,
    /// `int32` → JSON number.
    I32,
    /// `int64` → JSON number.
    I64,
    /// `bool` → JSON boolean.
    Bool,
    /// `double` → JSON number. No reachable field has it today.
    #[allow(dead_code)]
    F64,
    /// `resource.Quantity` {1: string} → its string.
    Quantity,
    /// `intstr.IntOrString` {1: type, 2: intVal, 3: strVal} → number or string.
    IntOrStr,
    /// `meta.v1.Time` {1: seconds, 2: nanos} → RFC 3339, seconds precision.
    Time,
    /// `meta.v1.MicroTime` → RFC 3339 with 6 fractional digits.
    MicroTime,
    /// `meta.v1.Duration` {1: nanoseconds} → Go duration string ("1h2m3s").
    /// No reachable field has it today.
    #[allow(dead_code)]
    Duration,
    /// `meta.v1.FieldsV1` {1: raw JSON} → that JSON value.
    FieldsV1,
    /// `runtime.RawExtension` {1: raw JSON} → that JSON value. No reachable
    /// field has it today.
    #[allow(dead_code)]
    RawExt,
    /// A nested message: index into the message table.
    Msg(u16),
}

/// How a field's occurrences make up its JSON value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Card {
    /// One value; the last occurrence wins (messages merge).
    One,
    /// JSON array of the occurrences (packed or not, for numbers).
    Repeated,
    /// JSON object built from map-entry messages {1: key, 2: value}.
    Map,
    /// An embedded Go struct (`json:",inline"`): a nested message on the
    /// wire whose fields JSON writes into the enclosing object.
    Inline,
}

/// One field of a message.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Field {
    pub number: u32,
    /// The JSON field name ("" for inline fields).
    pub json: &'static str,
    pub kind: Kind,
    pub card: Card,
    /// Whether a zero value ("", 0, false, IntOrString 0) on the wire is kept.
    /// Upstream writes every non-pointer scalar even when zero, while JSON
    /// omits `omitempty` zeros; pointer and required fields keep theirs.
    pub keep_zero: bool,
}

/// One message: full protobuf name and fields in field-number order.
#[derive(Debug)]
pub(crate) struct Message {
    pub name: &'static str,
    pub fields: &'static [Field],
}

impl Message {
    pub(crate) fn field(&self, number: u32) -> Option<&'static Field> {
        self.fields
            .binary_search_by_key(&number, |f| f.number)
            .ok()
            .and_then(|i| self.fields.get(i))
    }
}

const fn field(number: u32, json: &'static str, kind: Kind, card: Card, keep: bool) -> Field {
    Field {
        number,
        json,
        kind,
        card,
        keep_zero: keep,
    }
}

/// A singular field whose zero value is dropped.
pub(super) const fn one(number: u32, json: &'static str, kind: Kind) -> Field {
    field(number, json, kind, Card::One, false)
}

/// A singular field whose zero value is kept (Go pointer or required).
pub(super) const fn keep(number: u32, json: &'static str, kind: Kind) -> Field {
    field(number, json, kind, Card::One, true)
}

pub(super) const fn rep(number: u32, json: &'static str, kind: Kind) -> Field {
    field(number, json, kind, Card::Repeated, false)
}

/// A `map<string, kind>` field.
pub(super) const fn map(number: u32, json: &'static str, kind: Kind) -> Field {
    field(number, json, kind, Card::Map, false)
}

pub(super) const fn inline(number: u32, kind: Kind) -> Field {
    field(number, "", kind, Card::Inline, false)
}

/// The message with index `id`; `None` only for a corrupt table.
pub(crate) fn message(id: u16) -> Option<&'static Message> {
    MESSAGES.get(usize::from(id))
}

/// The top-level message for an API group, version and kind.
pub(crate) fn root(group: &str, version: &str, kind: &str) -> Option<&'static Message> {
    ROOTS
        .iter()
        .find(|(g, v, k, _)| *g == group && *v == version && *k == kind)
        .and_then(|&(_, _, _, id)| message(id))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_is_consistent() {
        for m in MESSAGES.iter() {
            for pair in m.fields.windows(2) {
                assert!(pair[0].number < pair[1].number, "{} not sorted", m.name);
            }
            for f in m.fields {
                if let Kind::Msg(id) = f.kind {
                    assert!(message(id).is_some(), "{}: dangling {id}", m.name);
                }
                assert_eq!(f.json.is_empty(), f.card == Card::Inline, "{}", m.name);
            }
        }
        for r in crate::resources::RESOURCES {
            assert!(
                root(r.group, r.version, r.kind).is_some(),
                "no protobuf schema for {}",
                r.kind
            );
        }
        let pod = root("", "v1", "Pod").unwrap();
        assert_eq!(pod.name, "k8s.io.api.core.v1.Pod");
        assert_eq!(pod.field(1).unwrap().json, "metadata");
        assert!(pod.field(99).is_none());
    }
}
