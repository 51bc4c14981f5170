//! The write verbs: create, update, patch, delete and deletecollection, with
//! upstream's decoding, defaulting, validation, optimistic concurrency,
//! dry-run, graceful pod deletion, finalizers and namespace lifecycle checks.

use rkube_api::decode::{decode_typed, DecodeError};
use rkube_api::{defaults, smp, validation, ResourceInfo};
use rkube_store::StoreError;
use serde_json::{json, Value};

use super::prepare::{generate_name, prepare_create, prepare_update};
use super::{
    encode_for_store, meta, meta_mut, meta_str, name_of, set_rv, FieldValidation, Rest, Target,
    WriteOptions, WriteResult,
};
use crate::admission::{self, Attributes, Operation};
use crate::error::{ApiError, ApiResult};

/// How many times a write without a resourceVersion precondition is retried
/// on a concurrent modification.
const RETRIES: usize = 8;

/// Checks apiVersion/kind of a body against the target and fills them in.
fn check_type(t: &Target, obj: &mut Value, kind: &str, api_version: &str) -> ApiResult<()> {
    let o = obj.as_object_mut().ok_or_else(|| {
        ApiError::bad_request("the body of the request must be a JSON or YAML object")
    })?;
    match o.get("kind").and_then(Value::as_str) {
        None | Some("") => {
            o.insert("kind".into(), json!(kind));
        }
        Some(k) if k == kind => {}
        Some(k) => {
            return Err(ApiError::bad_request(format!(
                "the kind in the data ({k}) does not match the expected kind ({kind}) for {}",
                t.res.qualified_resource()
            )))
        }
    }
    match o.get("apiVersion").and_then(Value::as_str) {
        None | Some("") => {
            o.insert("apiVersion".into(), json!(api_version));
        }
        Some(v) if v == api_version => {}
        Some(v) => {
            return Err(ApiError::bad_request(format!(
                "the API version in the data ({v}) does not match the expected API version ({api_version})"
            )))
        }
    }
    Ok(())
}

/// Decodes through the typed schema: type errors are 400, unknown fields
/// per `fieldValidation`, missing required fields 422.
fn decode(
    res: &ResourceInfo,
    obj: Value,
    fv: FieldValidation,
    warnings: &mut Vec<String>,
) -> ApiResult<Value> {
    let name = name_of(&obj).to_string();
    match decode_typed(res.group, res.kind, obj) {
        Ok(d) => {
            if !d.unknown_fields.is_empty() {
                match fv {
                    FieldValidation::Strict => {
                        let list = d
                            .unknown_fields
                            .iter()
                            .map(|f| format!("unknown field \"{f}\""))
                            .collect::<Vec<_>>()
                            .join(", ");
                        return Err(ApiError::bad_request(format!(
                            "strict decoding error: {list}"
                        )));
                    }
                    FieldValidation::Warn => {
                        warnings.extend(
                            d.unknown_fields
                                .iter()
                                .map(|f| format!("unknown field \"{f}\"")),
                        );
                    }
                    FieldValidation::Ignore => {}
                }
            }
            Ok(d.value)
        }
        Err(DecodeError::Missing(fe)) => Err(ApiError::invalid(res, &name, &[*fe])),
        Err(DecodeError::Type { path, message }) => Err(ApiError::bad_request(format!(
            "{kind} in version \"{v}\" cannot be handled as a {kind}: {path}: {message}",
            kind = res.kind,
            v = res.version
        ))),
        Err(e) => Err(ApiError::bad_request(e.to_string())),
    }
}

/// The request body as an object of the target's kind: type checked,
/// unknown fields handled per `fieldValidation`, namespace from the request.
fn decode_body(t: &Target, body: Value, opts: &WriteOptions) -> ApiResult<(Value, Vec<String>)> {
    let mut obj = body;
    check_type(t, &mut obj, t.res.kind, &t.res.api_version())?;
    let mut warnings = Vec::new();
    let mut obj = decode(t.res, obj, opts.field_validation, &mut warnings)?;
    set_namespace(t, &mut obj)?;
    Ok((obj, warnings))
}

/// Refuses writes into a namespace that is missing (404) or terminating (403).
async fn check_namespace(rest: &Rest, t: &Target, creating: bool) -> ApiResult<()> {
    let Some(ns) = t.namespace.as_deref().filter(|_| t.res.namespaced) else {
        return Ok(());
    };
    let nsres = rkube_api::resources::lookup("", "v1", "namespaces")
        .ok_or_else(|| ApiError::internal("no namespaces"))?;
    // Like upstream's NamespaceLifecycle admission: the cache first, and a
    // live read only when the cache has not seen the namespace (yet).
    let key = nsres.key(None, ns);
    let cached = rest.cache.resource(nsres).and_then(|c| c.get(&key));
    let v: Value = match cached {
        Some(v) => (*v).clone(),
        None => {
            let kv = rest
                .store
                .get(&key)
                .await
                .map_err(|e| ApiError::from_store(e, nsres, ns))?;
            let Some(kv) = kv else {
                return Err(ApiError::not_found(nsres, ns));
            };
            serde_json::from_slice(&kv.value).unwrap_or(Value::Null)
        }
    };
    if creating && v.pointer("/metadata/deletionTimestamp").is_some() {
        let mut e = ApiError::forbidden(
            t.res,
            t.name(),
            &format!(
                "unable to create new content in namespace {ns} because it is being terminated"
            ),
        );
        e.details = Some(json!({
            "name": t.name(),
            "kind": t.res.plural,
            "causes": [{
                "reason": "NamespaceTerminating",
                "message": format!("namespace {ns} is being terminated"),
                "field": "metadata.namespace",
            }],
        }));
        return Err(e);
    }
    Ok(())
}

/// Sets the request namespace on the object, refusing a different one.
fn set_namespace(t: &Target, obj: &mut Value) -> ApiResult<()> {
    let m = meta_mut(obj);
    if !t.res.namespaced {
        m.remove("namespace");
        return Ok(());
    }
    let ns = t.namespace.clone().unwrap_or_default();
    match m.get("namespace").and_then(Value::as_str) {
        Some(n) if !n.is_empty() && n != ns => Err(ApiError::bad_request(
            "the namespace of the provided object does not match the namespace sent on the request",
        )),
        _ => {
            m.insert("namespace".into(), json!(ns));
            Ok(())
        }
    }
}

pub async fn create(
    rest: &Rest,
    t: &Target,
    body: Value,
    opts: &WriteOptions,
) -> ApiResult<WriteResult> {
    let res = t.res;
    let (mut obj, warnings) = decode_body(t, body, opts)?;
    // Admission names the object by its generateName until the name is
    // generated (upstream generates it after admission).
    let admission_name = match name_of(&obj) {
        "" => meta_str(&obj, "generateName").unwrap_or("").to_string(),
        n => n.to_string(),
    };
    let generated = name_of(&obj).is_empty() && meta_str(&obj, "generateName").is_some();
    if name_of(&obj).is_empty() {
        if let Some(prefix) = meta_str(&obj, "generateName").map(str::to_string) {
            meta_mut(&mut obj).insert("name".into(), json!(generate_name(&prefix)));
        }
    }
    defaults::apply_defaults(res, &mut obj);
    let attrs = Attributes::new(t, &admission_name, Operation::Create);
    admission::mutate(rest, &attrs, &mut obj, None).await?;
    prepare_create(res, &mut obj, &rest.alloc, opts.dry_run)?;
    let name = name_of(&obj).to_string();
    let errs = validation::validate_create(res, &obj);
    if !errs.is_empty() {
        release_on_failure(rest, res, &obj, opts);
        return Err(ApiError::invalid(res, &name, &errs));
    }
    if let Err(e) = check_namespace(
        rest,
        &Target {
            name: Some(name.clone()),
            ..t.clone()
        },
        true,
    )
    .await
    {
        release_on_failure(rest, res, &obj, opts);
        return Err(e);
    }
    if let Err(e) = admission::validate(rest, &attrs, &obj).await {
        release_on_failure(rest, res, &obj, opts);
        return Err(e);
    }
    if opts.dry_run {
        return Ok(WriteResult {
            obj,
            created: true,
            warnings,
        });
    }
    let mut key = t.key(&name);
    let mut result = rest.store.create(&key, encode_for_store(&obj)).await;
    // A generated name that is taken is generated again, as upstream's
    // RetryGenerateName (GA in 1.32) does: up to 8 attempts in all.
    for _ in 0..7 {
        if !(generated && matches!(result, Err(StoreError::AlreadyExists(_)))) {
            break;
        }
        let prefix = meta_str(&obj, "generateName").unwrap_or("").to_string();
        let name = generate_name(&prefix);
        meta_mut(&mut obj).insert("name".into(), json!(name));
        key = t.key(&name);
        result = rest.store.create(&key, encode_for_store(&obj)).await;
    }
    let name = name_of(&obj).to_string();
    match result {
        Ok(kv) => {
            set_rv(&mut obj, kv.mod_revision);
            admission::settle(rest, res, kv.mod_revision).await;
            Ok(WriteResult {
                obj,
                created: true,
                warnings,
            })
        }
        Err(e) => {
            release_on_failure(rest, res, &obj, opts);
            Err(ApiError::from_store(e, res, &name))
        }
    }
}

fn release_on_failure(rest: &Rest, res: &ResourceInfo, obj: &Value, opts: &WriteOptions) {
    if res.kind == "Service" && res.group.is_empty() && !opts.dry_run {
        rest.alloc.release(obj);
    }
}

/// Kinds that an update creates when missing (upstream's AllowCreateOnUpdate).
fn create_on_update(res: &ResourceInfo) -> bool {
    matches!(res.kind, "Endpoints" | "Lease" | "Event" | "EndpointSlice")
}

/// Reads the current object of `t` from the store: (object, mod revision).
pub(crate) async fn read_current(rest: &Rest, t: &Target) -> ApiResult<Option<(Value, i64)>> {
    let name = t.name();
    let kv = rest
        .store
        .get(&t.key(name))
        .await
        .map_err(|e| ApiError::from_store(e, t.res, name))?;
    Ok(kv.and_then(|kv| {
        crate::cache::decode_stored(&kv.value, kv.mod_revision).map(|v| (v, kv.mod_revision))
    }))
}

/// Writes `new` over `old` (at `old_rev`): update hooks, validation, and the
/// CAS. Deletes instead when the last finalizer of a deleting object goes.
async fn commit_update(
    rest: &Rest,
    t: &Target,
    mut new: Value,
    old: &Value,
    old_rev: i64,
    opts: &WriteOptions,
) -> Result<Value, (ApiError, bool)> {
    let res = t.res;
    let name = t.name().to_string();
    let sub = t.subresource.as_deref();
    prepare_update(res, &mut new, old, sub);
    if sub.is_none() {
        defaults::apply_defaults(res, &mut new);
    }
    let attrs = Attributes::new(t, &name, Operation::Update);
    admission::mutate(rest, &attrs, &mut new, Some(old))
        .await
        .map_err(|e| (e, false))?;
    let errs = if sub == Some("status") {
        validation::validate_status_update(res, &new, old)
    } else {
        validation::validate_update(res, &new, old)
    };
    if !errs.is_empty() {
        return Err((ApiError::invalid(res, &name, &errs), false));
    }
    admission::validate(rest, &attrs, &new)
        .await
        .map_err(|e| (e, false))?;
    if opts.dry_run {
        set_rv(&mut new, old_rev);
        return Ok(new);
    }
    let deleting = new.pointer("/metadata/deletionTimestamp").is_some();
    let no_finalizers = new
        .pointer("/metadata/finalizers")
        .and_then(Value::as_array)
        .is_none_or(|f| f.is_empty())
        && new
            .pointer("/spec/finalizers")
            .and_then(Value::as_array)
            .is_none_or(|f| f.is_empty() || res.kind != "Namespace");
    let key = t.key(&name);
    if deleting && no_finalizers && !pod_awaits_node(res, &new) {
        return match rest.store.delete(&key, Some(old_rev)).await {
            Ok(kv) => {
                after_delete(rest, res, &new);
                admission::settle(rest, res, kv.mod_revision).await;
                set_rv(&mut new, kv.mod_revision);
                Ok(new)
            }
            Err(StoreError::Conflict(_)) => Err((ApiError::stale(res, &name), true)),
            Err(e) => Err((ApiError::from_store(e, res, &name), false)),
        };
    }
    match rest
        .store
        .update(&key, encode_for_store(&new), old_rev)
        .await
    {
        Ok(kv) => {
            admission::settle(rest, res, kv.mod_revision).await;
            set_rv(&mut new, kv.mod_revision);
            Ok(new)
        }
        Err(StoreError::Conflict(_)) => Err((ApiError::stale(res, &name), true)),
        Err(e) => Err((ApiError::from_store(e, res, &name), false)),
    }
}

/// A bound pod in graceful deletion stays until its node agent confirms.
fn pod_awaits_node(res: &ResourceInfo, pod: &Value) -> bool {
    res.kind == "Pod"
        && res.group.is_empty()
        && pod
            .pointer("/metadata/deletionGracePeriodSeconds")
            .and_then(Value::as_i64)
            .unwrap_or(0)
            > 0
        && pod
            .pointer("/spec/nodeName")
            .and_then(Value::as_str)
            .is_some_and(|s| !s.is_empty())
}

fn after_delete(rest: &Rest, res: &ResourceInfo, obj: &Value) {
    if res.kind == "Service" && res.group.is_empty() {
        rest.alloc.release(obj);
    }
}

pub async fn update(
    rest: &Rest,
    t: &Target,
    body: Value,
    opts: &WriteOptions,
) -> ApiResult<WriteResult> {
    let res = t.res;
    let (mut obj, warnings) = decode_body(t, body, opts)?;
    let name = t.name().to_string();
    match meta_str(&obj, "name") {
        Some(n) if n == name => {}
        Some("") | None => {
            meta_mut(&mut obj).insert("name".into(), json!(name));
        }
        Some(n) => {
            return Err(ApiError::bad_request(format!(
                "the name of the object ({n}) does not match the name on the URL ({name})"
            )))
        }
    }
    let wanted_rv = meta_str(&obj, "resourceVersion")
        .filter(|s| !s.is_empty())
        .map(str::to_string);
    for _ in 0..RETRIES {
        let Some((old, old_rev)) = read_current(rest, t).await? else {
            if create_on_update(res) && t.subresource.is_none() {
                let mut r = create(rest, t, obj, opts).await?;
                r.warnings.extend(warnings);
                return Ok(r);
            }
            return Err(ApiError::not_found(res, &name));
        };
        if let Some(rv) = &wanted_rv {
            if rv != &old_rev.to_string() {
                return Err(ApiError::stale(res, &name));
            }
        }
        match commit_update(rest, t, obj.clone(), &old, old_rev, opts).await {
            Ok(v) => {
                return Ok(WriteResult {
                    obj: v,
                    created: false,
                    warnings,
                })
            }
            Err((e, retry)) if retry && wanted_rv.is_none() => {
                tracing::debug!(error = %e, "retrying unconditional update");
            }
            Err((e, _)) => return Err(e),
        }
    }
    Err(ApiError::stale(res, &name))
}

/// Writes a pod binding: spec.nodeName and the PodScheduled condition,
/// compare-and-swap on the pod's current revision; `None` when the pod
/// changed meanwhile (the caller re-reads and retries).
pub async fn bind(
    rest: &Rest,
    t: &Target,
    mut new: Value,
    old: &Value,
) -> ApiResult<Option<Value>> {
    let name = t.name().to_string();
    let rev = meta_str(old, "resourceVersion")
        .and_then(|s| s.parse::<i64>().ok())
        .unwrap_or(0);
    match rest
        .store
        .update(&t.key(&name), encode_for_store(&new), rev)
        .await
    {
        Ok(kv) => {
            set_rv(&mut new, kv.mod_revision);
            Ok(Some(new))
        }
        Err(StoreError::Conflict(_)) => Ok(None),
        Err(e) => Err(ApiError::from_store(e, t.res, &name)),
    }
}

/// The patch content types.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PatchType {
    Json,
    Merge,
    Strategic,
    Apply,
}

impl PatchType {
    pub fn from_content_type(ct: &str) -> Option<PatchType> {
        match ct.split(';').next().unwrap_or("").trim() {
            "application/json-patch+json" => Some(PatchType::Json),
            "application/merge-patch+json" => Some(PatchType::Merge),
            "application/strategic-merge-patch+json" => Some(PatchType::Strategic),
            "application/apply-patch+yaml" | "application/apply-patch+json" => {
                Some(PatchType::Apply)
            }
            _ => None,
        }
    }
}

fn apply_patch(
    res: &ResourceInfo,
    pt: PatchType,
    current: &Value,
    patch: &Value,
) -> ApiResult<Value> {
    let out = match pt {
        PatchType::Json => smp::json_patch(current, patch).map_err(|e| {
            ApiError::new(
                http::StatusCode::UNPROCESSABLE_ENTITY,
                "Invalid",
                format!("the server rejected our request due to an error in our request: {e}"),
            )
        })?,
        PatchType::Merge => {
            if !patch.is_object() {
                return Err(ApiError::bad_request(
                    "error decoding patch: the patch must be a JSON object",
                ));
            }
            smp::json_merge_patch(current, patch)
        }
        PatchType::Strategic | PatchType::Apply => {
            if !patch.is_object() {
                return Err(ApiError::bad_request(
                    "error decoding patch: the patch must be a JSON object",
                ));
            }
            smp::strategic_merge((res.group, res.kind), current, patch)
                .map_err(|e| ApiError::bad_request(e.to_string()))?
        }
    };
    Ok(out)
}

pub async fn patch(
    rest: &Rest,
    t: &Target,
    pt: PatchType,
    patch: Value,
    opts: &WriteOptions,
) -> ApiResult<WriteResult> {
    let res = t.res;
    let name = t.name().to_string();
    let mut warnings = Vec::new();
    for _ in 0..RETRIES {
        let Some((current, rev)) = read_current(rest, t).await? else {
            return Err(ApiError::not_found(res, &name));
        };
        let patched = apply_patch(res, pt, &current, &patch)?;
        // A patch may carry its own resourceVersion precondition.
        let wanted = meta_str(&patched, "resourceVersion").map(str::to_string);
        if let Some(w) = &wanted {
            if w != &rev.to_string() {
                return Err(ApiError::stale(res, &name));
            }
        }
        let mut patched = patched;
        check_type(t, &mut patched, res.kind, &res.api_version())?;
        warnings.clear();
        let patched = decode(res, patched, opts.field_validation, &mut warnings)?;
        if meta_str(&patched, "name") != Some(name.as_str()) {
            return Err(ApiError::bad_request(format!(
                "the name of the object ({}) does not match the name on the URL ({name})",
                name_of(&patched)
            )));
        }
        let explicit_rv = patch.pointer("/metadata/resourceVersion").is_some();
        match commit_update(rest, t, patched, &current, rev, opts).await {
            Ok(v) => {
                return Ok(WriteResult {
                    obj: v,
                    created: false,
                    warnings,
                })
            }
            Err((_, true)) if !explicit_rv => continue,
            Err((e, _)) => return Err(e),
        }
    }
    Err(ApiError::stale(res, &name))
}

/// Parsed DeleteOptions.
#[derive(Debug, Clone, Default)]
pub struct DeleteOptions {
    pub grace_period: Option<i64>,
    pub propagation: Option<String>,
    pub precondition_uid: Option<String>,
    pub precondition_rv: Option<String>,
    pub dry_run: bool,
}

impl DeleteOptions {
    /// Merges a DeleteOptions body (if any) with query parameters.
    pub fn from_body(body: Option<&Value>) -> ApiResult<DeleteOptions> {
        let mut o = DeleteOptions::default();
        if let Some(b) = body {
            if !b.is_object() {
                return Err(ApiError::bad_request("DeleteOptions must be a JSON object"));
            }
            o.grace_period = b.get("gracePeriodSeconds").and_then(Value::as_i64);
            o.propagation = b
                .get("propagationPolicy")
                .and_then(Value::as_str)
                .map(str::to_string);
            if b.get("orphanDependents").and_then(Value::as_bool) == Some(true)
                && o.propagation.is_none()
            {
                o.propagation = Some("Orphan".into());
            }
            o.precondition_uid = b
                .pointer("/preconditions/uid")
                .and_then(Value::as_str)
                .map(str::to_string);
            o.precondition_rv = b
                .pointer("/preconditions/resourceVersion")
                .and_then(Value::as_str)
                .map(str::to_string);
            o.dry_run = b
                .get("dryRun")
                .and_then(Value::as_array)
                .is_some_and(|a| a.iter().any(|v| v == "All"));
        }
        if let Some(p) = &o.propagation {
            if !matches!(p.as_str(), "Orphan" | "Background" | "Foreground") {
                return Err(ApiError::bad_request(format!(
                    "propagationPolicy: Unsupported value: {p:?}: supported values: \"Foreground\", \"Background\", \"Orphan\""
                )));
            }
        }
        if o.grace_period.is_some_and(|g| g < 0) {
            o.grace_period = Some(0);
        }
        Ok(o)
    }
}

/// Deletes one object. Returns the object (as deleted, or with its
/// deletionTimestamp when deletion is pending) and whether it is gone.
pub async fn delete(rest: &Rest, t: &Target, opts: &DeleteOptions) -> ApiResult<(Value, bool)> {
    let res = t.res;
    let name = t.name().to_string();
    for _ in 0..RETRIES {
        let Some((mut obj, rev)) = read_current(rest, t).await? else {
            return Err(ApiError::not_found(res, &name));
        };
        if let Some(uid) = &opts.precondition_uid {
            if meta_str(&obj, "uid") != Some(uid.as_str()) {
                return Err(ApiError::conflict(
                    res,
                    &name,
                    &format!(
                        "Precondition failed: UID in precondition: {uid}, UID in object meta: {}",
                        meta_str(&obj, "uid").unwrap_or("")
                    ),
                ));
            }
        }
        if let Some(rv) = &opts.precondition_rv {
            if rv != &rev.to_string() {
                return Err(ApiError::conflict(res, &name, &format!(
                    "Precondition failed: ResourceVersion in precondition: {rv}, ResourceVersion in object meta: {rev}"
                )));
            }
        }
        let mut finalizers: Vec<Value> = meta(&obj)
            .and_then(|m| m.get("finalizers"))
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        match opts.propagation.as_deref() {
            Some("Foreground") if !finalizers.contains(&json!("foregroundDeletion")) => {
                finalizers.push(json!("foregroundDeletion"))
            }
            Some("Orphan") if !finalizers.contains(&json!("orphan")) => {
                finalizers.push(json!("orphan"))
            }
            _ => {}
        }
        let grace = pod_grace(res, &obj, opts.grace_period);
        let is_namespace = res.kind == "Namespace" && res.group.is_empty();
        let already_deleting = obj.pointer("/metadata/deletionTimestamp").is_some();
        if !finalizers.is_empty() || grace > 0 || is_namespace {
            // Deletion is pending: mark it and let finalizers, the node agent
            // or the namespace controller finish.
            let unchanged_finalizers = meta(&obj)
                .and_then(|m| m.get("finalizers"))
                .and_then(Value::as_array)
                .map_or(0, Vec::len)
                == finalizers.len();
            let shorter_grace = obj
                .pointer("/metadata/deletionGracePeriodSeconds")
                .and_then(Value::as_i64)
                .is_some_and(|g| grace < g);
            if already_deleting && unchanged_finalizers && !shorter_grace {
                return Ok((obj, false));
            }
            {
                let m = meta_mut(&mut obj);
                if !already_deleting || shorter_grace {
                    let when = jiff::Timestamp::now() + jiff::SignedDuration::from_secs(grace);
                    m.insert(
                        "deletionTimestamp".into(),
                        json!(when.strftime("%Y-%m-%dT%H:%M:%SZ").to_string()),
                    );
                }
                if res.kind == "Pod" || grace > 0 {
                    m.insert("deletionGracePeriodSeconds".into(), json!(grace));
                }
                if !finalizers.is_empty() {
                    m.insert("finalizers".into(), json!(finalizers));
                }
            }
            if is_namespace {
                if let Some(o) = obj.as_object_mut() {
                    o.insert("status".into(), json!({"phase": "Terminating"}));
                }
            }
            if opts.dry_run {
                return Ok((obj, false));
            }
            match rest
                .store
                .update(&t.key(&name), encode_for_store(&obj), rev)
                .await
            {
                Ok(kv) => {
                    set_rv(&mut obj, kv.mod_revision);
                    return Ok((obj, false));
                }
                Err(StoreError::Conflict(_)) if opts.precondition_rv.is_none() => continue,
                Err(e) => return Err(ApiError::from_store(e, res, &name)),
            }
        }
        if opts.dry_run {
            return Ok((obj, true));
        }
        match rest.store.delete(&t.key(&name), Some(rev)).await {
            Ok(kv) => {
                after_delete(rest, res, &obj);
                admission::settle(rest, res, kv.mod_revision).await;
                set_rv(&mut obj, kv.mod_revision);
                return Ok((obj, true));
            }
            Err(StoreError::Conflict(_)) if opts.precondition_rv.is_none() => continue,
            Err(e) => return Err(ApiError::from_store(e, res, &name)),
        }
    }
    Err(ApiError::stale(res, &name))
}

/// The grace period a pod deletion gets: the request's, else the pod's
/// terminationGracePeriodSeconds; 0 for unbound or finished pods and for
/// every other kind.
fn pod_grace(res: &ResourceInfo, obj: &Value, requested: Option<i64>) -> i64 {
    if res.kind != "Pod" || !res.group.is_empty() {
        return 0;
    }
    let bound = obj
        .pointer("/spec/nodeName")
        .and_then(Value::as_str)
        .is_some_and(|s| !s.is_empty());
    let phase = obj
        .pointer("/status/phase")
        .and_then(Value::as_str)
        .unwrap_or("");
    if !bound || phase == "Succeeded" || phase == "Failed" {
        return 0;
    }
    let g = requested
        .or_else(|| {
            obj.pointer("/spec/terminationGracePeriodSeconds")
                .and_then(Value::as_i64)
        })
        .unwrap_or(30);
    // kubectl sends 0 only with `--force` (it turns `--grace-period=0`
    // alone into 1); 0 deletes at once.
    g.max(0)
}
