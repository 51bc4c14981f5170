//! The schema registry: every definition the documents publish, generated
//! once through schemars from the `k8s-openapi` types, completed with the
//! `<Kind>List` types (which `k8s-openapi` models generically), the
//! `x-kubernetes-group-version-kind` of top-level kinds and the
//! strategic-merge-patch extensions; plus the per-format conversions
//! (OpenAPI v3 wraps `$ref`s that have siblings in `allOf`, Swagger 2.0
//! points refs at `#/definitions/`).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::OnceLock;

use k8s_openapi::schemars::generate::SchemaSettings;
use serde_json::{json, Map, Value};

use super::kinds::{kind_schema, MetaSchemas, TypeSchema};
use super::{patch_meta, served_group_versions};
use crate::resources::{ResourceInfo, RESOURCES};

/// Prefix of every schema reference in the canonical definitions (and in
/// OpenAPI v3 documents).
pub(crate) const REF_PREFIX: &str = "#/components/schemas/";
/// Prefix of schema references in Swagger 2.0 documents.
pub(crate) const V2_REF_PREFIX: &str = "#/definitions/";
/// The vendor extension naming the kinds a definition (list) or an
/// operation (object) serves.
pub(crate) const GVK_EXT: &str = "x-kubernetes-group-version-kind";

const INT_OR_STRING: &str = "io.k8s.apimachinery.pkg.util.intstr.IntOrString";
const QUANTITY: &str = "io.k8s.apimachinery.pkg.api.resource.Quantity";

/// Subresource kinds published besides the resources of [`RESOURCES`].
const EXTRA_KINDS: &[(&str, &str, &str)] = &[
    ("", "v1", "Binding"),
    ("policy", "v1", "Eviction"),
    ("autoscaling", "v1", "Scale"),
];

/// All definitions, sorted by name, with refs of the form
/// `#/components/schemas/<name>` and `$ref` siblings (descriptions) kept.
pub(crate) struct Registry {
    pub definitions: Map<String, Value>,
}

/// The registry, built on first use.
pub(crate) fn registry() -> &'static Registry {
    static REGISTRY: OnceLock<Registry> = OnceLock::new();
    REGISTRY.get_or_init(build)
}

fn gvk(group: &str, version: &str, kind: &str) -> Value {
    json!({ "group": group, "kind": kind, "version": version })
}

fn name_of(t: TypeSchema) -> String {
    (t.name)().into_owned()
}

fn build() -> Registry {
    let settings = SchemaSettings::draft07().with(|s| {
        s.definitions_path = "/components/schemas".into();
        s.transforms = Vec::new();
        s.meta_schema = None;
    });
    let mut generator = settings.into_generator();
    let mut gvks: BTreeMap<String, Vec<Value>> = BTreeMap::new();
    let mut lists: Vec<(String, &ResourceInfo)> = Vec::new();

    for m in MetaSchemas::all() {
        (m.register)(&mut generator);
    }
    for r in RESOURCES {
        if let Some(t) = kind_schema(r.group, r.kind) {
            (t.register)(&mut generator);
            let name = name_of(t);
            gvks.entry(name.clone())
                .or_default()
                .push(gvk(r.group, r.version, r.kind));
            lists.push((name, r));
        }
    }
    for (group, version, kind) in EXTRA_KINDS {
        if let Some(t) = kind_schema(group, kind) {
            (t.register)(&mut generator);
            gvks.entry(name_of(t))
                .or_default()
                .push(gvk(group, version, kind));
        }
    }
    let mut defs = generator.take_definitions(false);
    relax_metadata_requirement(&mut defs);

    for (kind_def, r) in lists {
        let list_def = format!("{kind_def}List");
        if defs.contains_key(&list_def) {
            continue;
        }
        let list = list_schema(&defs, &kind_def, r);
        defs.insert(list_def.clone(), list);
        gvks.entry(list_def)
            .or_default()
            .push(gvk(r.group, r.version, &format!("{}List", r.kind)));
    }
    gvks.entry(name_of(MetaSchemas::status()))
        .or_default()
        .push(gvk("", "v1", "Status"));
    for (group, version) in served_group_versions() {
        for (t, kind) in [
            (MetaSchemas::delete_options(), "DeleteOptions"),
            (MetaSchemas::watch_event(), "WatchEvent"),
        ] {
            gvks.entry(name_of(t))
                .or_default()
                .push(gvk(group, version, kind));
        }
    }

    patch_meta::apply(&mut defs);
    for (name, list) in gvks {
        if let Some(obj) = defs.get_mut(&name).and_then(Value::as_object_mut) {
            obj.insert(GVK_EXT.into(), Value::Array(list));
        }
    }

    let mut sorted: Vec<(String, Value)> = defs.into_iter().collect();
    sorted.sort_by(|a, b| a.0.cmp(&b.0));
    Registry {
        definitions: sorted.into_iter().collect(),
    }
}

/// `k8s-openapi` models `metadata` as mandatory; upstream does not list it
/// in `required` (and `kubectl explain` would flag it `-required-`).
fn relax_metadata_requirement(defs: &mut Map<String, Value>) {
    for def in defs.values_mut() {
        let Some(obj) = def.as_object_mut() else {
            continue;
        };
        let is_meta = obj
            .get("properties")
            .and_then(|p| p.get("metadata"))
            .and_then(|m| m.get("$ref"))
            .and_then(Value::as_str)
            .is_some_and(|r| r.ends_with(".ObjectMeta") || r.ends_with(".ListMeta"));
        if !is_meta {
            continue;
        }
        let now_empty = match obj.get_mut("required") {
            Some(Value::Array(req)) => {
                req.retain(|v| v != "metadata");
                req.is_empty()
            }
            _ => false,
        };
        if now_empty {
            obj.remove("required");
        }
    }
}

/// The `<Kind>List` schema of a resource whose kind is defined as `kind_def`.
fn list_schema(defs: &Map<String, Value>, kind_def: &str, r: &ResourceInfo) -> Value {
    let kind_props = defs.get(kind_def).and_then(|d| d.get("properties"));
    let prop = |name: &str| {
        kind_props
            .and_then(|p| p.get(name))
            .cloned()
            .unwrap_or_else(|| json!({ "type": "string" }))
    };
    json!({
        "description": format!("{}List is a list of {} objects.", r.kind, r.kind),
        "type": "object",
        "properties": {
            "apiVersion": prop("apiVersion"),
            "items": {
                "description": format!("Items is the list of {} objects.", r.kind),
                "type": "array",
                "items": { "$ref": format!("{REF_PREFIX}{kind_def}") },
            },
            "kind": prop("kind"),
            "metadata": {
                "$ref": format!("{REF_PREFIX}{}", name_of(MetaSchemas::list_meta())),
                "description": "Standard list metadata. More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#types-kinds",
            },
        },
        "required": ["items"],
    })
}

/// Definition name of a canonical `$ref` value, if it is one.
pub(crate) fn ref_name(reference: &str) -> Option<&str> {
    reference.strip_prefix(REF_PREFIX)
}

/// Appends the names of every definition referenced anywhere in `v`.
pub(crate) fn collect_refs(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::Object(map) => {
            for (k, child) in map {
                if k == "$ref" {
                    if let Some(name) = child.as_str().and_then(ref_name) {
                        out.push(name.to_string());
                    }
                } else {
                    collect_refs(child, out);
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|i| collect_refs(i, out)),
        _ => {}
    }
}

impl Registry {
    /// The names of `roots` and of every definition they reach, sorted.
    pub fn closure(&self, roots: Vec<String>) -> BTreeSet<String> {
        let mut seen = BTreeSet::new();
        let mut stack = roots;
        while let Some(name) = stack.pop() {
            if !seen.insert(name.clone()) {
                continue;
            }
            if let Some(def) = self.definitions.get(&name) {
                collect_refs(def, &mut stack);
            }
        }
        seen
    }
}

/// OpenAPI v3 form of a schema: a `$ref` with siblings (description,
/// patch extensions) becomes `{"allOf": [{"$ref": …}], <siblings>}`, as
/// upstream serves it (siblings of `$ref` are ignored in OpenAPI 3.0).
pub(crate) fn to_v3(v: &Value) -> Value {
    match v {
        Value::Object(map) => {
            let converted: Map<String, Value> =
                map.iter().map(|(k, c)| (k.clone(), to_v3(c))).collect();
            match converted.get("$ref") {
                Some(reference) if converted.len() > 1 => {
                    let mut out = Map::new();
                    out.insert("allOf".into(), json!([{ "$ref": reference }]));
                    out.extend(
                        converted
                            .iter()
                            .filter(|(k, _)| *k != "$ref")
                            .map(|(k, c)| (k.clone(), c.clone())),
                    );
                    Value::Object(out)
                }
                _ => Value::Object(converted),
            }
        }
        Value::Array(items) => Value::Array(items.iter().map(to_v3).collect()),
        other => other.clone(),
    }
}

/// Swagger 2.0 form of a schema: refs point at `#/definitions/`.
pub(crate) fn to_v2(v: &Value) -> Value {
    match v {
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(k, c)| match (k.as_str(), c.as_str().and_then(ref_name)) {
                    ("$ref", Some(name)) => {
                        (k.clone(), Value::String(format!("{V2_REF_PREFIX}{name}")))
                    }
                    _ => (k.clone(), to_v2(c)),
                })
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.iter().map(to_v2).collect()),
        other => other.clone(),
    }
}

/// Swagger 2.0 form of a whole definition. Int-or-string types get the
/// `type`/`format` older swagger tooling expects.
pub(crate) fn v2_definition(name: &str, v: &Value) -> Value {
    let mut out = to_v2(v);
    if let Some(obj) = out.as_object_mut() {
        match name {
            INT_OR_STRING => {
                obj.insert("type".into(), "string".into());
                obj.insert("format".into(), "int-or-string".into());
            }
            QUANTITY => {
                obj.insert("type".into(), "string".into());
            }
            _ => {}
        }
    }
    out
}
