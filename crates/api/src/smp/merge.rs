//! The strategic merge algorithm, following upstream's `mergeMap` /
//! `mergeSlice` on the apply side (`MergeParallelList` and
//! `IgnoreUnmatchedNulls` on): directives, merge-by-key lists, primitive
//! set lists, deletion lists, retained keys and element order.

use serde_json::{Map, Value};

use super::schema::{field, Meta, Strategy, Ty};
use super::{go_fmt, go_type, PatchError};

const DIRECTIVE: &str = "$patch";
const RETAIN_KEYS: &str = "$retainKeys";
const DELETE_PREFIX: &str = "$deleteFromPrimitiveList";
const ORDER_PREFIX: &str = "$setElementOrder";

fn is_directive_key(k: &str) -> bool {
    k == DIRECTIVE
        || k == RETAIN_KEYS
        || k.starts_with(DELETE_PREFIX)
        || k.starts_with(ORDER_PREFIX)
}

fn bad_arg(expected: &'static str, actual: &Value) -> PatchError {
    PatchError::BadArgType {
        expected,
        actual: go_type(actual),
    }
}

fn no_merge_key(m: &Map<String, Value>, key: &str) -> PatchError {
    PatchError::NoMergeKey {
        map: go_fmt(&Value::Object(m.clone())),
        key: key.to_string(),
    }
}

/// `"$setElementOrder/containers"` → `"containers"`.
fn extract_key(s: &str, prefix: &str) -> Result<String, PatchError> {
    match s.split_once('/') {
        Some((p, rest)) if p == prefix => Ok(rest.to_string()),
        _ if prefix == DELETE_PREFIX => Err(PatchError::BadPrimitiveListFormat),
        _ => Err(PatchError::BadSetElementOrderFormat),
    }
}

/// A value taken from the patch where the original has nothing to merge
/// with: null properties dropped, items carrying `$patch` dropped (a map
/// property with `$patch: replace` keeps its other keys), other directive
/// keys stripped. `None` when the value itself is dropped.
pub(crate) fn clean(v: Value, in_list: bool) -> Option<Value> {
    match v {
        Value::Object(mut m) => {
            if let Some(d) = m.shift_remove(DIRECTIVE) {
                if in_list || d.as_str() != Some("replace") {
                    return None;
                }
            }
            let mut out = Map::new();
            for (k, v) in m {
                if v.is_null() || is_directive_key(&k) {
                    continue;
                }
                if let Some(v) = clean(v, false) {
                    out.insert(k, v);
                }
            }
            Some(Value::Object(out))
        }
        Value::Array(a) => Some(Value::Array(
            a.into_iter().filter_map(|v| clean(v, true)).collect(),
        )),
        other => Some(other),
    }
}

fn clean_list(items: Vec<Value>) -> Vec<Value> {
    items.into_iter().filter_map(|v| clean(v, true)).collect()
}

/// Merges `patch` into `original`, a value of type `ty`.
pub(crate) fn merge_map(
    mut original: Map<String, Value>,
    mut patch: Map<String, Value>,
    ty: Ty,
) -> Result<Map<String, Value>, PatchError> {
    if let Some(d) = patch.get(DIRECTIVE) {
        return match d.as_str() {
            Some("replace") => match clean(Value::Object(patch), false) {
                Some(Value::Object(m)) => Ok(m),
                _ => Ok(Map::new()),
            },
            Some("delete") => Ok(Map::new()),
            _ => Err(PatchError::UnknownPatchType {
                directive: go_fmt(d),
                map: go_fmt(&Value::Object(patch)),
            }),
        };
    }
    apply_retain_keys(&mut original, &mut patch)?;
    apply_element_orders(&mut original, &mut patch, ty)?;

    for (key, patch_v) in patch {
        let (key, is_delete_list) = if key.starts_with(DELETE_PREFIX) {
            (extract_key(&key, DELETE_PREFIX)?, true)
        } else {
            (key, false)
        };
        if patch_v.is_null() {
            original.shift_remove(&key);
            continue;
        }
        let Some(orig_v) = original.get_mut(&key) else {
            if !is_delete_list {
                if let Some(v) = clean(patch_v, false) {
                    original.insert(key, v);
                }
            }
            continue;
        };
        match (orig_v, patch_v) {
            (Value::Object(o), Value::Object(p)) => {
                let meta = field(ty, &key);
                let merged = merge_map(std::mem::take(o), p, meta.ty)?;
                *o = merged;
            }
            (Value::Array(o), Value::Array(p)) => {
                let meta = field(ty, &key);
                let merged = merge_list_field(std::mem::take(o), p, meta, &key, is_delete_list)?;
                *o = merged;
            }
            (_, _) if is_delete_list => {}
            (orig_v, patch_v) => match clean(patch_v, false) {
                Some(v) => *orig_v = v,
                None => {
                    original.shift_remove(&key);
                }
            },
        }
    }
    Ok(original)
}

/// `$retainKeys`: drop original keys the list does not name, after
/// checking that the patch sets only named keys.
fn apply_retain_keys(
    original: &mut Map<String, Value>,
    patch: &mut Map<String, Value>,
) -> Result<(), PatchError> {
    let Some(list) = patch.shift_remove(RETAIN_KEYS) else {
        return Ok(());
    };
    let Value::Array(list) = list else {
        return Err(PatchError::BadRetainKeysFormat);
    };
    let retained: Vec<&str> = list.iter().filter_map(Value::as_str).collect();
    for (k, v) in patch.iter() {
        if v.is_null() || k.starts_with(DELETE_PREFIX) || k.starts_with(ORDER_PREFIX) {
            continue;
        }
        if !retained.contains(&k.as_str()) {
            return Err(PatchError::BadRetainKeysFormat);
        }
    }
    original.retain(|k, _| retained.contains(&k.as_str()));
    Ok(())
}

/// Every `$setElementOrder/<list>` directive: merges the list (when the
/// patch has one) and orders the result by the directive.
fn apply_element_orders(
    original: &mut Map<String, Value>,
    patch: &mut Map<String, Value>,
    ty: Ty,
) -> Result<(), PatchError> {
    let keys: Vec<String> = patch
        .keys()
        .filter(|k| k.starts_with(ORDER_PREFIX))
        .cloned()
        .collect();
    for order_key in keys {
        let Some(order) = patch.shift_remove(&order_key) else {
            continue;
        };
        let Value::Array(order) = order else {
            return Err(bad_arg("[]interface {}", &order));
        };
        let list_key = extract_key(&order_key, ORDER_PREFIX)?;
        let orig_list = match original.get(&list_key) {
            None => None,
            Some(Value::Array(a)) => Some(a.clone()),
            Some(other) => return Err(bad_arg("[]interface {}", other)),
        };
        let patch_list = match patch.get(&list_key) {
            None => None,
            Some(Value::Array(a)) => Some(a.clone()),
            Some(other) => return Err(bad_arg("[]interface {}", other)),
        };
        let meta = field(ty, &list_key);
        validate_order(patch_list.as_deref().unwrap_or(&[]), &order, meta.merge_key)?;
        let merged = match (&orig_list, patch_list.clone()) {
            (Some(o), None) => o.clone(),
            (None, Some(p)) => clean_list(p),
            (Some(o), Some(p)) => merge_list_field(o.clone(), p, meta, &list_key, false)?,
            (None, None) => continue,
        };
        let orig_list = orig_list.unwrap_or_default();
        let kind = element_kind(&[&orig_list, patch_list.as_deref().unwrap_or(&[])])?;
        let ordered = match kind {
            None => merged,
            Some(kind) => {
                let (in_order, server_only) = partition(merged, &order, meta.merge_key)?;
                normalize_element_order(
                    in_order,
                    server_only,
                    &order,
                    &orig_list,
                    meta.merge_key,
                    kind,
                )?
            }
        };
        original.insert(list_key.clone(), Value::Array(ordered));
        patch.shift_remove(&list_key);
    }
    Ok(())
}

/// Checks that the patch list's items appear in the `$setElementOrder`
/// list in the same relative order (deletions and directives ignored).
fn validate_order(
    patch_list: &[Value],
    order: &[Value],
    key: Option<&str>,
) -> Result<(), PatchError> {
    if patch_list.is_empty() || order.is_empty() {
        return Ok(());
    }
    let mut items: Vec<&Value> = Vec::new();
    for v in patch_list {
        match (key, v) {
            (None, _) => items.push(v),
            (Some(_), Value::Object(m)) => {
                if m.get(DIRECTIVE).and_then(Value::as_str) != Some("delete") {
                    items.push(v);
                }
            }
            (Some(_), other) => return Err(bad_arg("map[string]interface {}", other)),
        }
    }
    let (mut p, mut s) = (0, 0);
    while p < items.len() && s < order.len() {
        if items[p]
            .as_object()
            .is_some_and(|m| m.contains_key(DIRECTIVE))
        {
            p += 1;
            continue;
        }
        if key_value_equal(items[p], &order[s], key)? {
            p += 1;
        }
        s += 1;
    }
    if p < items.len() {
        return Err(PatchError::OrderMismatch {
            patch: go_fmt(&Value::Array(patch_list.to_vec())),
            order: go_fmt(&Value::Array(order.to_vec())),
        });
    }
    Ok(())
}

fn key_value_equal(left: &Value, right: &Value, key: Option<&str>) -> Result<bool, PatchError> {
    let Some(key) = key else {
        return Ok(left == right);
    };
    let l = left
        .as_object()
        .ok_or_else(|| bad_arg("map[string]interface {}", left))?;
    let r = right
        .as_object()
        .ok_or_else(|| bad_arg("map[string]interface {}", right))?;
    let lv = l.get(key).ok_or_else(|| no_merge_key(l, key))?;
    let rv = r.get(key).ok_or_else(|| no_merge_key(r, key))?;
    Ok(lv == rv)
}

/// Merges a list field according to its strategy.
fn merge_list_field(
    original: Vec<Value>,
    patch: Vec<Value>,
    meta: Meta,
    name: &str,
    is_delete_list: bool,
) -> Result<Vec<Value>, PatchError> {
    match meta.strategy {
        Strategy::Merge => merge_list(original, patch, meta, name, is_delete_list),
        Strategy::Default if is_delete_list => Ok(delete_from(original, &patch)),
        Strategy::Default => Ok(clean_list(patch)),
    }
}

/// The JSON type of list elements, for upstream's same-type rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Null,
    Bool,
    Int,
    Float,
    String,
    Map,
}

/// The common element type of the lists; `None` when all are empty.
fn element_kind(lists: &[&[Value]]) -> Result<Option<Kind>, PatchError> {
    let mut kind = None;
    for v in lists.iter().flat_map(|l| l.iter()) {
        let k = match v {
            Value::Null => Kind::Null,
            Value::Bool(_) => Kind::Bool,
            Value::Number(n) if n.is_f64() => Kind::Float,
            Value::Number(_) => Kind::Int,
            Value::String(_) => Kind::String,
            Value::Object(_) => Kind::Map,
            Value::Array(_) if kind.is_none() => return Err(PatchError::NoListOfLists),
            Value::Array(_) => return Err(mixed(lists)),
        };
        match kind {
            None => kind = Some(k),
            Some(prev) if prev != k => return Err(mixed(lists)),
            Some(_) => {}
        }
    }
    Ok(kind)
}

fn mixed(lists: &[&[Value]]) -> PatchError {
    let rendered: Vec<String> = lists
        .iter()
        .map(|l| go_fmt(&Value::Array(l.to_vec())))
        .collect();
    PatchError::MixedElementTypes(format!("[{}]", rendered.join(" ")))
}

fn delete_from(current: Vec<Value>, to_delete: &[Value]) -> Vec<Value> {
    current
        .into_iter()
        .filter(|v| !to_delete.contains(v))
        .collect()
}

/// Upstream's `mergeSlice`.
fn merge_list(
    original: Vec<Value>,
    patch: Vec<Value>,
    meta: Meta,
    name: &str,
    is_delete_list: bool,
) -> Result<Vec<Value>, PatchError> {
    if original.is_empty() && patch.is_empty() {
        return Ok(original);
    }
    let Some(kind) = element_kind(&[&original, &patch])? else {
        return Ok(original);
    };
    let (original, patch, merged) = if kind != Kind::Map {
        if is_delete_list {
            return Ok(delete_from(original, &patch));
        }
        let mut merged: Vec<Value> = Vec::with_capacity(original.len() + patch.len());
        for v in original.iter().chain(patch.iter()) {
            if !merged.contains(v) {
                merged.push(v.clone());
            }
        }
        (original, patch, merged)
    } else {
        let Some(key) = meta.merge_key else {
            return Err(PatchError::NoMergeKeyDeclared {
                field: name.to_string(),
            });
        };
        let (original, patch) = apply_item_directives(original, patch, key)?;
        let merged = merge_items(original.clone(), &patch, key, meta.ty)?;
        (original, patch, merged)
    };
    let (in_patch, server_only) = partition(merged, &patch, meta.merge_key)?;
    normalize_element_order(
        in_patch,
        server_only,
        &patch,
        &original,
        meta.merge_key,
        kind,
    )
}

/// Items with `$patch`: `delete` removes matching originals, `replace`
/// makes the rest of the patch the whole list. Returns the new original
/// and the patch without directive items.
fn apply_item_directives(
    mut original: Vec<Value>,
    patch: Vec<Value>,
    key: &str,
) -> Result<(Vec<Value>, Vec<Value>), PatchError> {
    let mut plain_items = Vec::with_capacity(patch.len());
    let mut replace = false;
    for v in patch {
        let Value::Object(m) = &v else {
            return Err(bad_arg("map[string]interface {}", &v));
        };
        let Some(d) = m.get(DIRECTIVE) else {
            plain_items.push(v);
            continue;
        };
        match d.as_str() {
            Some("delete") => {
                let target = m.get(key).ok_or_else(|| no_merge_key(m, key))?;
                // `element_kind` has checked that every original item is a map.
                original.retain(|o| o.get(key) != Some(target));
            }
            Some("replace") => replace = true,
            Some("merge") => return Err(PatchError::MergeDirectiveInList),
            _ => {
                return Err(PatchError::UnknownPatchType {
                    directive: go_fmt(d),
                    map: go_fmt(&v),
                })
            }
        }
    }
    if replace {
        return Ok((clean_list(plain_items), Vec::new()));
    }
    Ok((original, plain_items))
}

/// Merges each patch item into the original item with the same key, or
/// appends it.
fn merge_items(
    mut original: Vec<Value>,
    patch: &[Value],
    key: &str,
    ty: Ty,
) -> Result<Vec<Value>, PatchError> {
    for v in patch {
        let Value::Object(m) = v else {
            return Err(bad_arg("map[string]interface {}", v));
        };
        let target = m.get(key).ok_or_else(|| no_merge_key(m, key))?;
        let mut found = None;
        for (i, o) in original.iter().enumerate() {
            let Value::Object(om) = o else {
                return Err(bad_arg("map[string]interface {}", o));
            };
            if om.get(key) == Some(target) {
                found = Some(i);
                break;
            }
        }
        match found.and_then(|i| original.get_mut(i)) {
            Some(Value::Object(om)) => {
                let merged = merge_map(std::mem::take(om), m.clone(), ty)?;
                *om = merged;
            }
            _ => {
                if let Some(c) = clean(v.clone(), true) {
                    original.push(c);
                }
            }
        }
    }
    Ok(original)
}

/// Splits `items` into those present in `by` (by merge key, or by value
/// for primitives) and the rest, keeping relative order.
fn partition(
    items: Vec<Value>,
    by: &[Value],
    key: Option<&str>,
) -> Result<(Vec<Value>, Vec<Value>), PatchError> {
    let mut present = Vec::new();
    let mut rest = Vec::new();
    for v in items {
        let found = match key {
            None => by.contains(&v),
            Some(key) => {
                let m = v
                    .as_object()
                    .ok_or_else(|| bad_arg("map[string]interface {}", &v))?;
                let kv = m.get(key).ok_or_else(|| no_merge_key(m, key))?;
                let mut found = false;
                for b in by {
                    let bm = b
                        .as_object()
                        .ok_or_else(|| bad_arg("map[string]interface {}", b))?;
                    if bm.get(key) == Some(kv) {
                        found = true;
                        break;
                    }
                }
                found
            }
        };
        if found {
            present.push(v);
        } else {
            rest.push(v);
        }
    }
    Ok((present, rest))
}

/// The identity an item is ordered by: its merge key value, or itself.
fn identity<'a>(v: &'a Value, key: Option<&str>, kind: Kind) -> Option<&'a Value> {
    match (kind, key) {
        (Kind::Map, Some(k)) => v.get(k),
        (Kind::Map, None) => None,
        _ => Some(v),
    }
}

fn index_in(list: &[Value], v: &Value, key: Option<&str>, kind: Kind) -> Option<usize> {
    let id = identity(v, key, kind);
    list.iter().position(|x| identity(x, key, kind) == id)
}

/// Sorts `to_sort` by position in `order` (stably; items `order` does not
/// name go last), with `$patch: delete` items after all others.
fn normalize_order(
    to_sort: Vec<Value>,
    order: &[Value],
    key: Option<&str>,
    kind: Kind,
) -> Result<Vec<Value>, PatchError> {
    let mut deletes = Vec::new();
    let mut items = Vec::with_capacity(to_sort.len());
    if kind == Kind::Map {
        let key = key.unwrap_or_default();
        for v in to_sort.iter().chain(order.iter()) {
            let m = v
                .as_object()
                .ok_or_else(|| bad_arg("map[string]interface {}", v))?;
            if !m.contains_key(key) {
                return Err(no_merge_key(m, key));
            }
        }
        for v in to_sort {
            if v.get(DIRECTIVE).and_then(Value::as_str) == Some("delete") {
                deletes.push(v);
            } else {
                items.push(v);
            }
        }
    } else {
        items = to_sort;
    }
    let mut keyed: Vec<(usize, Value)> = items
        .into_iter()
        .map(|v| (index_in(order, &v, key, kind).unwrap_or(usize::MAX), v))
        .collect();
    keyed.sort_by_key(|(i, _)| *i);
    let mut out: Vec<Value> = keyed.into_iter().map(|(_, v)| v).collect();
    out.extend(deletes);
    Ok(out)
}

/// Upstream's `normalizeElementOrder`: patch items ordered by the patch
/// (or `$setElementOrder`), server-only items by the live list, then
/// interleaved so server-only items keep their live positions.
fn normalize_element_order(
    patch_items: Vec<Value>,
    server_only: Vec<Value>,
    patch_order: &[Value],
    server_order: &[Value],
    key: Option<&str>,
    kind: Kind,
) -> Result<Vec<Value>, PatchError> {
    let right = normalize_order(patch_items, patch_order, key, kind)?;
    let left = normalize_order(server_only, server_order, key, kind)?;
    let mut out = Vec::with_capacity(left.len() + right.len());
    let mut left = left.into_iter().peekable();
    let mut right = right.into_iter().peekable();
    loop {
        let take_left = match (left.peek(), right.peek()) {
            (None, None) => break,
            (Some(_), None) => true,
            (None, Some(_)) => false,
            (Some(l), Some(r)) => matches!(
                (index_in(server_order, l, key, kind), index_in(server_order, r, key, kind)),
                (Some(li), Some(ri)) if li < ri
            ),
        };
        let next = if take_left { left.next() } else { right.next() };
        out.extend(next);
    }
    Ok(out)
}
