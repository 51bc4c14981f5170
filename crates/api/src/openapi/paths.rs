//! The REST operations of each served group-version, built as the
//! format-neutral model of `model` (path items with operations) that
//! `render_v3` and `render_v2` turn into OpenAPI v3 and Swagger 2.0 JSON.

use super::kinds::{kind_schema, MetaSchemas, TypeSchema};
use super::model::{
    accepted, created, ok, unauthorized, Body, Gvk, Method, Operation, PathItem, LIST_TYPES,
    OBJECT_TYPES, WATCH_TYPES,
};
use super::params::{self, Param};
use crate::resources::{ResourceInfo, RESOURCES};

/// "" → "Core", "rbac.authorization.k8s.io" → "RbacAuthorization".
fn group_pascal(group: &str) -> String {
    if group.is_empty() {
        return "Core".into();
    }
    let short = group.strip_suffix(".k8s.io").unwrap_or(group);
    short.split('.').map(upper_first).collect()
}

fn upper_first(s: &str) -> String {
    let mut c = s.chars();
    match c.next() {
        Some(f) => f.to_uppercase().chain(c).collect(),
        None => String::new(),
    }
}

/// "core_v1", "rbacAuthorization_v1": the tag of a group-version's operations.
fn tag(group: &str, version: &str) -> String {
    let p = group_pascal(group);
    let mut c = p.chars();
    let lower: String = match c.next() {
        Some(f) => f.to_lowercase().chain(c).collect(),
        None => String::new(),
    };
    format!("{lower}_{version}")
}

/// URL prefix of a group-version: "/api/v1", "/apis/apps/v1".
pub(crate) fn gv_prefix(group: &str, version: &str) -> String {
    if group.is_empty() {
        format!("/api/{version}")
    } else {
        format!("/apis/{group}/{version}")
    }
}

/// Everything an operation builder needs to know about one resource.
struct Ctx<'a> {
    r: &'a ResourceInfo,
    gv: String,
    tag: String,
    kind_def: String,
    list_def: String,
    status_def: String,
    delete_options_def: String,
    patch_def: String,
    watch_def: String,
}

impl Ctx<'_> {
    fn gvk(&self) -> Gvk {
        Gvk {
            group: self.r.group,
            version: self.r.version,
            kind: self.r.kind,
        }
    }

    /// "Namespaced" for namespaced resources, "" otherwise.
    fn scope(&self) -> &'static str {
        if self.r.namespaced {
            "Namespaced"
        } else {
            ""
        }
    }

    fn op(
        &self,
        method: Method,
        verb: &str,
        action: &'static str,
        description: String,
    ) -> Operation {
        Operation {
            method,
            id: format!("{verb}{}{}{}", self.gv, self.scope(), self.r.kind),
            description,
            tag: self.tag.clone(),
            action: Some(action),
            gvk: Some(self.gvk()),
            params: Vec::new(),
            body: None,
            responses: Vec::new(),
            produces: OBJECT_TYPES,
        }
    }

    /// "the specified Pod" or "status of the specified Pod".
    fn target(&self, what: Option<&str>) -> String {
        match what {
            Some(w) => format!("{w} of the specified {}", self.r.kind),
            None => format!("the specified {}", self.r.kind),
        }
    }

    fn read(&self, schema: &str, what: Option<&str>) -> Operation {
        let mut op = self.op(
            Method::Get,
            "read",
            "get",
            format!("read {}", self.target(what)),
        );
        op.responses = vec![ok(schema), unauthorized()];
        op
    }

    fn replace(&self, schema: &str, what: Option<&str>) -> Operation {
        let mut op = self.op(
            Method::Put,
            "replace",
            "put",
            format!("replace {}", self.target(what)),
        );
        op.params = params::write();
        op.body = Some(Body {
            schema: schema.to_string(),
            patch: false,
            required: true,
        });
        op.responses = vec![ok(schema), created(schema), unauthorized()];
        op
    }

    fn patch(&self, schema: &str, what: Option<&str>) -> Operation {
        let mut op = self.op(
            Method::Patch,
            "patch",
            "patch",
            format!("partially update {}", self.target(what)),
        );
        op.params = params::patch();
        op.body = Some(Body {
            schema: self.patch_def.clone(),
            patch: true,
            required: true,
        });
        op.responses = vec![ok(schema), created(schema), unauthorized()];
        op
    }
}

fn name_of(t: TypeSchema) -> String {
    (t.name)().into_owned()
}

/// The path items of one resource: collection, object, all-namespaces
/// list, the deprecated watch paths and the subresources.
fn resource_paths(r: &ResourceInfo) -> Vec<PathItem> {
    let Some(kind) = kind_schema(r.group, r.kind) else {
        return Vec::new();
    };
    let kind_def = name_of(kind);
    let ctx = Ctx {
        r,
        gv: format!("{}{}", group_pascal(r.group), upper_first(r.version)),
        tag: tag(r.group, r.version),
        list_def: format!("{kind_def}List"),
        kind_def,
        status_def: name_of(MetaSchemas::status()),
        delete_options_def: name_of(MetaSchemas::delete_options()),
        patch_def: name_of(MetaSchemas::patch()),
        watch_def: name_of(MetaSchemas::watch_event()),
    };
    let prefix = gv_prefix(r.group, r.version);
    let (collection, scope_params, watch_collection) = if r.namespaced {
        (
            format!("{prefix}/namespaces/{{namespace}}/{}", r.plural),
            vec![params::namespace()],
            format!("{prefix}/watch/namespaces/{{namespace}}/{}", r.plural),
        )
    } else {
        (
            format!("{prefix}/{}", r.plural),
            Vec::new(),
            format!("{prefix}/watch/{}", r.plural),
        )
    };
    let with_pretty = |mut v: Vec<Param>| {
        v.push(params::PRETTY);
        v
    };
    let with_name = |v: &[Param]| {
        let mut out = vec![params::name(r.kind)];
        out.extend(v.iter().cloned());
        out.push(params::PRETTY);
        out
    };
    let mut items = Vec::new();

    // Collection: list, create, deletecollection.
    let mut list = ctx.op(
        Method::Get,
        "list",
        "list",
        format!("list or watch objects of kind {}", r.kind),
    );
    list.params = params::list();
    list.responses = vec![ok(&ctx.list_def), unauthorized()];
    list.produces = LIST_TYPES;
    let mut create = ctx.op(
        Method::Post,
        "create",
        "post",
        format!("create a {}", r.kind),
    );
    create.params = params::write();
    create.body = Some(Body {
        schema: ctx.kind_def.clone(),
        patch: false,
        required: true,
    });
    create.responses = vec![
        ok(&ctx.kind_def),
        created(&ctx.kind_def),
        accepted(&ctx.kind_def),
        unauthorized(),
    ];
    let mut delcol = ctx.op(
        Method::Delete,
        "delete",
        "deletecollection",
        format!("delete collection of {}", r.kind),
    );
    delcol.id = format!("delete{}Collection{}{}", ctx.gv, ctx.scope(), r.kind);
    delcol.params = params::delete_collection();
    delcol.body = Some(Body {
        schema: ctx.delete_options_def.clone(),
        patch: false,
        required: false,
    });
    delcol.responses = vec![ok(&ctx.status_def), unauthorized()];
    items.push(PathItem {
        path: collection.clone(),
        params: with_pretty(scope_params.clone()),
        ops: vec![list, create, delcol],
    });

    // Object: read, replace, delete, patch.
    let mut delete = ctx.op(
        Method::Delete,
        "delete",
        "delete",
        format!("delete a {}", r.kind),
    );
    delete.params = params::delete();
    delete.body = Some(Body {
        schema: ctx.delete_options_def.clone(),
        patch: false,
        required: false,
    });
    delete.responses = vec![
        ok(&ctx.status_def),
        accepted(&ctx.status_def),
        unauthorized(),
    ];
    let object = format!("{collection}/{{name}}");
    items.push(PathItem {
        path: object.clone(),
        params: with_name(&scope_params),
        ops: vec![
            ctx.read(&ctx.kind_def, None),
            ctx.replace(&ctx.kind_def, None),
            delete,
            ctx.patch(&ctx.kind_def, None),
        ],
    });

    // All-namespaces list.
    if r.namespaced {
        let mut all = ctx.op(
            Method::Get,
            "list",
            "list",
            format!("list or watch objects of kind {}", r.kind),
        );
        all.id = format!("list{}{}ForAllNamespaces", ctx.gv, r.kind);
        all.params = params::list();
        all.responses = vec![ok(&ctx.list_def), unauthorized()];
        all.produces = LIST_TYPES;
        items.push(PathItem {
            path: format!("{prefix}/{}", r.plural),
            params: vec![params::PRETTY],
            ops: vec![all],
        });
    }

    // Deprecated watch paths.
    let watch_op = |id: String, action: &'static str, description: String| {
        let mut op = ctx.op(Method::Get, "watch", action, description);
        op.id = id;
        op.responses = vec![ok(&ctx.watch_def), unauthorized()];
        op.produces = WATCH_TYPES;
        op
    };
    if r.namespaced {
        items.push(PathItem {
            path: format!("{prefix}/watch/{}", r.plural),
            params: with_pretty(params::list()),
            ops: vec![watch_op(
                format!("watch{}{}ListForAllNamespaces", ctx.gv, r.kind),
                "watchlist",
                format!("watch individual changes to a list of {}. deprecated: use the 'watch' parameter with a list operation instead.", r.kind),
            )],
        });
    }
    let mut wl_params = scope_params.clone();
    wl_params.extend(params::list());
    items.push(PathItem {
        path: watch_collection.clone(),
        params: with_pretty(wl_params),
        ops: vec![watch_op(
            format!("watch{}{}{}List", ctx.gv, ctx.scope(), r.kind),
            "watchlist",
            format!("watch individual changes to a list of {}. deprecated: use the 'watch' parameter with a list operation instead.", r.kind),
        )],
    });
    let mut w_params = vec![params::name(r.kind)];
    w_params.extend(scope_params.iter().cloned());
    w_params.extend(params::list());
    w_params.push(params::PRETTY);
    items.push(PathItem {
        path: format!("{watch_collection}/{{name}}"),
        params: w_params,
        ops: vec![watch_op(
            format!("watch{}{}{}", ctx.gv, ctx.scope(), r.kind),
            "watch",
            format!("watch changes to an object of kind {}. deprecated: use the 'watch' parameter with a list operation instead, filtered to a single item with the 'fieldSelector' parameter.", r.kind),
        )],
    });

    for sub in r.subresources {
        if let Some(item) = subresource_path(&ctx, &object, sub) {
            items.push(PathItem {
                path: item.path,
                params: with_name(&scope_params),
                ops: item.ops,
            });
        }
    }
    items
}

/// The path item of one subresource (its params are filled by the caller).
fn subresource_path(ctx: &Ctx<'_>, object: &str, sub: &str) -> Option<PathItem> {
    let path = format!("{object}/{sub}");
    let suffix = upper_first(sub);
    let rename = |mut op: Operation| {
        op.id.push_str(&suffix);
        op
    };
    let what = Some(sub);
    let ops = match sub {
        "status" | "ephemeralcontainers" | "resize" => vec![
            rename(ctx.read(&ctx.kind_def, what)),
            rename(ctx.replace(&ctx.kind_def, what)),
            rename(ctx.patch(&ctx.kind_def, what)),
        ],
        "scale" => {
            let scale = kind_schema("autoscaling", "Scale").map(name_of)?;
            let gvk = Gvk {
                group: "autoscaling",
                version: "v1",
                kind: "Scale",
            };
            [
                ctx.read(&scale, what),
                ctx.replace(&scale, what),
                ctx.patch(&scale, what),
            ]
            .into_iter()
            .map(|mut op| {
                op.gvk = Some(gvk);
                rename(op)
            })
            .collect()
        }
        "binding" | "eviction" => {
            let (group, kind) = if sub == "binding" {
                ("", "Binding")
            } else {
                ("policy", "Eviction")
            };
            let def = kind_schema(group, kind).map(name_of)?;
            let mut op = ctx.op(
                Method::Post,
                "create",
                "post",
                format!("create {sub} of a {}", ctx.r.kind),
            );
            op.gvk = Some(Gvk {
                group,
                version: "v1",
                kind,
            });
            op.params = params::write();
            op.body = Some(Body {
                schema: def.clone(),
                patch: false,
                required: true,
            });
            op.responses = vec![ok(&def), created(&def), accepted(&def), unauthorized()];
            vec![rename(op)]
        }
        "finalize" => vec![rename(ctx.replace(&ctx.kind_def, what))],
        _ => return None,
    };
    Some(PathItem {
        path,
        params: Vec::new(),
        ops,
    })
}

/// Discovery operation `GET <path>` answering `schema`.
fn discovery(
    path: String,
    id: String,
    description: &str,
    tag: String,
    schema: TypeSchema,
) -> PathItem {
    let def = name_of(schema);
    PathItem {
        path,
        params: Vec::new(),
        ops: vec![Operation {
            method: Method::Get,
            id,
            description: description.to_string(),
            tag,
            action: None,
            gvk: None,
            params: Vec::new(),
            body: None,
            responses: vec![ok(&def), unauthorized()],
            produces: OBJECT_TYPES,
        }],
    }
}

/// The path items of a group-version document: its resource list and every
/// resource's operations.
pub(crate) fn group_version_paths(group: &str, version: &str) -> Vec<PathItem> {
    let gv = format!("{}{}", group_pascal(group), upper_first(version));
    let mut items = vec![discovery(
        format!("{}/", gv_prefix(group, version)),
        format!("get{gv}APIResources"),
        "get available resources",
        tag(group, version),
        MetaSchemas::api_resource_list(),
    )];
    for r in RESOURCES
        .iter()
        .filter(|r| r.group == group && r.version == version)
    {
        items.extend(resource_paths(r));
    }
    items
}

/// The path item of a group document (`/apis/<group>/`).
pub(crate) fn group_paths(group: &str) -> Vec<PathItem> {
    let t = tag(group, "");
    let t = t.trim_end_matches('_').to_string();
    vec![discovery(
        format!("/apis/{group}/"),
        format!("get{}APIGroup", group_pascal(group)),
        "get information of a group",
        t,
        MetaSchemas::api_group(),
    )]
}

/// The path item of `/api/`.
pub(crate) fn core_versions_paths() -> Vec<PathItem> {
    vec![discovery(
        "/api/".into(),
        "getCoreAPIVersions".into(),
        "get available API versions",
        "core".into(),
        MetaSchemas::api_versions(),
    )]
}

/// The path item of `/apis/`.
pub(crate) fn groups_paths() -> Vec<PathItem> {
    vec![discovery(
        "/apis/".into(),
        "getAPIVersions".into(),
        "get available API versions",
        "apis".into(),
        MetaSchemas::api_group_list(),
    )]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_upstream_style() {
        assert_eq!(group_pascal(""), "Core");
        assert_eq!(
            group_pascal("rbac.authorization.k8s.io"),
            "RbacAuthorization"
        );
        assert_eq!(group_pascal("apps"), "Apps");
        assert_eq!(
            tag("rbac.authorization.k8s.io", "v1"),
            "rbacAuthorization_v1"
        );
        assert_eq!(tag("", "v1"), "core_v1");
    }
}
