//! The read verbs: get and list, with label and field selectors,
//! `limit`/`continue` pagination and upstream's resourceVersion /
//! resourceVersionMatch semantics (consistent reads from the watch cache,
//! exact and paginated reads from the store).

use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use rkube_api::selector::{self, FieldSelector, LabelSelector};
use rkube_api::ResourceInfo;
use rkube_store::{RangeRequest, StoreError};
use serde_json::Value;

use super::{labels_of, Rest, Target};
use crate::cache::{decode_stored, CacheError};
use crate::error::{ApiError, ApiResult};

/// Query parameters of list and watch.
#[derive(Debug, Clone, Default)]
pub struct ListOptions {
    pub label_selector: Option<LabelSelector>,
    pub field_selector: Option<FieldSelector>,
    pub resource_version: Option<String>,
    pub resource_version_match: Option<String>,
    pub limit: i64,
    pub continue_token: Option<String>,
}

impl ListOptions {
    pub fn parse(
        res: &ResourceInfo,
        q: &std::collections::HashMap<String, String>,
    ) -> ApiResult<ListOptions> {
        let label_selector =
            match q.get("labelSelector").filter(|s| !s.is_empty()) {
                Some(s) => Some(LabelSelector::parse(s).map_err(|e| {
                    ApiError::bad_request(format!("unable to parse requirement: {e}"))
                })?),
                None => None,
            };
        let field_selector = match q.get("fieldSelector").filter(|s| !s.is_empty()) {
            Some(s) => {
                let fs =
                    FieldSelector::parse(s).map_err(|e| ApiError::bad_request(e.to_string()))?;
                selector::check_supported(res, &fs)
                    .map_err(|e| ApiError::bad_request(e.to_string()))?;
                Some(fs)
            }
            None => None,
        };
        let limit = match q.get("limit") {
            Some(l) if !l.is_empty() => l
                .parse::<i64>()
                .map_err(|_| ApiError::bad_request(format!("invalid limit: {l:?}")))?
                .max(0),
            _ => 0,
        };
        let resource_version = q.get("resourceVersion").cloned().filter(|s| !s.is_empty());
        if let Some(rv) = &resource_version {
            if rv.parse::<i64>().is_err() {
                return Err(ApiError::bad_request(format!(
                    "invalid resource version: {rv:?}"
                )));
            }
        }
        let resource_version_match = q
            .get("resourceVersionMatch")
            .cloned()
            .filter(|s| !s.is_empty());
        match resource_version_match.as_deref() {
            None => {}
            Some("NotOlderThan") | Some("Exact") if resource_version.is_some() => {}
            // A streaming list (`watch` with sendInitialEvents) may leave the
            // resourceVersion unset: start from a consistent read.
            Some("NotOlderThan") if q.get("sendInitialEvents").is_some_and(|v| v == "true") => {}
            Some("NotOlderThan") | Some("Exact") => {
                return Err(ApiError::new(
                    http::StatusCode::UNPROCESSABLE_ENTITY,
                    "Invalid",
                    "resourceVersionMatch: Forbidden: resourceVersionMatch is forbidden unless resourceVersion is provided",
                ))
            }
            Some(other) => {
                return Err(ApiError::bad_request(format!(
                    "resourceVersionMatch: Unsupported value: {other:?}: supported values: \"Exact\", \"NotOlderThan\""
                )))
            }
        }
        Ok(ListOptions {
            label_selector,
            field_selector,
            resource_version,
            resource_version_match,
            limit,
            continue_token: q.get("continue").cloned().filter(|s| !s.is_empty()),
        })
    }

    /// Whether an object passes both selectors.
    pub fn matches(&self, res: &ResourceInfo, obj: &Value) -> bool {
        if let Some(ls) = &self.label_selector {
            if !ls.matches(labels_of(obj)) {
                return false;
            }
        }
        if let Some(fs) = &self.field_selector {
            if !fs.matches(|f| selector::field_value(res, obj, f)) {
                return false;
            }
        }
        true
    }

    fn has_selectors(&self) -> bool {
        self.label_selector.as_ref().is_some_and(|l| !l.is_empty()) || self.field_selector.is_some()
    }
}

/// A list answer: items, its resourceVersion, and pagination state.
pub struct ListResult {
    pub items: Vec<Arc<Value>>,
    pub resource_version: i64,
    pub continue_token: Option<String>,
    pub remaining: Option<i64>,
}

pub async fn get(rest: &Rest, t: &Target, resource_version: Option<&str>) -> ApiResult<Value> {
    let name = t.name();
    if resource_version == Some("0") {
        if let Some(c) = rest.cache.resource(t.res) {
            return c
                .get(&t.key(name))
                .map(|v| (*v).clone())
                .ok_or_else(|| ApiError::not_found(t.res, name));
        }
    }
    let kv = rest
        .store
        .get(&t.key(name))
        .await
        .map_err(|e| ApiError::from_store(e, t.res, name))?;
    kv.and_then(|kv| decode_stored(&kv.value, kv.mod_revision))
        .ok_or_else(|| ApiError::not_found(t.res, name))
}

fn cache_err(e: CacheError) -> ApiError {
    match e {
        CacheError::Timeout(r) => ApiError::new(
            http::StatusCode::GATEWAY_TIMEOUT,
            "Timeout",
            format!("Too large resource version: {r}, current: unknown"),
        ),
        CacheError::TooOld { requested, .. } => {
            ApiError::gone(format!("too old resource version: {requested}"))
        }
        CacheError::Store(e) => ApiError::internal(e.to_string()),
    }
}

#[derive(serde::Serialize, serde::Deserialize)]
struct ContinueToken {
    v: String,
    rv: i64,
    start: String,
}

fn encode_continue(rv: i64, start: &str) -> String {
    let t = ContinueToken {
        v: "meta.k8s.io/v1".into(),
        rv,
        start: start.into(),
    };
    base64::engine::general_purpose::URL_SAFE.encode(serde_json::to_vec(&t).unwrap_or_default())
}

fn decode_continue(s: &str) -> ApiResult<ContinueToken> {
    let bad = || {
        ApiError::bad_request("continue key is not valid: incorrect encoded start resourceVersion (version meta.k8s.io/v1)")
    };
    let raw = base64::engine::general_purpose::URL_SAFE
        .decode(s)
        .or_else(|_| base64::engine::general_purpose::STANDARD.decode(s))
        .map_err(|_| bad())?;
    let t: ContinueToken = serde_json::from_slice(&raw).map_err(|_| bad())?;
    if t.v != "meta.k8s.io/v1" || t.rv <= 0 || t.start.contains("..") {
        return Err(bad());
    }
    Ok(t)
}

pub async fn list(rest: &Rest, t: &Target, opts: &ListOptions) -> ApiResult<ListResult> {
    let prefix = t.res.namespace_prefix(t.namespace.as_deref());
    let exact = opts.resource_version_match.as_deref() == Some("Exact");
    let rv_num = opts
        .resource_version
        .as_deref()
        .and_then(|s| s.parse::<i64>().ok());
    if opts.continue_token.is_some() || (opts.limit > 0 && opts.resource_version.is_none()) || exact
    {
        return list_from_store(
            rest,
            t,
            &prefix,
            opts,
            if exact { rv_num.unwrap_or(0) } else { 0 },
        )
        .await;
    }
    let cache = rest
        .cache
        .resource(t.res)
        .ok_or_else(|| ApiError::internal("resource is not cached"))?;
    let rev = match rv_num {
        None => rest.cache.sync().await.map_err(cache_err)?,
        Some(0) => rest.cache.revision(),
        Some(n) => rest
            .cache
            .wait_for(n, Duration::from_secs(3))
            .await
            .map_err(cache_err)?,
    };
    let items: Vec<Arc<Value>> = cache
        .list(&prefix)
        .into_iter()
        .filter(|o| opts.matches(t.res, o))
        .collect();
    Ok(ListResult {
        items,
        resource_version: rev,
        continue_token: None,
        remaining: None,
    })
}

async fn list_from_store(
    rest: &Rest,
    t: &Target,
    prefix: &str,
    opts: &ListOptions,
    exact_rev: i64,
) -> ApiResult<ListResult> {
    let (mut rev, mut start) = match &opts.continue_token {
        Some(c) => {
            let tok = decode_continue(c)?;
            (tok.rv, Some(format!("{prefix}{}", tok.start)))
        }
        None => (exact_rev, None),
    };
    let mut items = Vec::new();
    let want = opts.limit;
    loop {
        let batch = if want > 0 {
            (want - items.len() as i64).max(1)
        } else {
            0
        };
        let r = rest
            .store
            .range(RangeRequest { prefix: prefix.to_string(), start_key: start.clone(), revision: rev, limit: batch })
            .await
            .map_err(|e| match e {
                StoreError::Compacted(_) if opts.continue_token.is_some() => ApiError::gone(
                    "The provided continue parameter is too old to display a consistent list result. You can start a new list without the continue parameter, or use the continue token in this response to retrieve the remainder of the results. Continuing with the provided token results in an inconsistent list - objects that were created, modified, or deleted between the time the first chunk was returned and now may show up in the list.",
                ),
                StoreError::Compacted(_) => ApiError::gone("The resourceVersion for the provided list is too old."),
                other => ApiError::from_store(other, t.res, ""),
            })?;
        rev = r.revision;
        let last_key = r.kvs.last().map(|kv| kv.key.clone());
        for kv in &r.kvs {
            if let Some(v) = decode_stored(&kv.value, kv.mod_revision) {
                if opts.matches(t.res, &v) {
                    items.push(Arc::new(v));
                }
            }
        }
        let full = want > 0 && items.len() as i64 >= want;
        if !r.more {
            return Ok(ListResult {
                items,
                resource_version: rev,
                continue_token: None,
                remaining: None,
            });
        }
        if full || want == 0 {
            let last = last_key.unwrap_or_default();
            let next = format!("{}\u{0}", last.strip_prefix(prefix).unwrap_or(&last));
            let remaining = if opts.has_selectors() {
                None
            } else {
                Some((r.count - r.kvs.len() as i64).max(0))
            };
            return Ok(ListResult {
                items,
                resource_version: rev,
                continue_token: Some(encode_continue(rev, &next)),
                remaining: remaining.filter(|n| *n > 0),
            });
        }
        start = last_key.map(|k| format!("{k}\u{0}"));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn continue_tokens_round_trip_and_reject_garbage() {
        let tok = encode_continue(42, "default/web\u{0}");
        let back = decode_continue(&tok).unwrap();
        assert_eq!((back.rv, back.start.as_str()), (42, "default/web\u{0}"));
        assert!(decode_continue("%%%").is_err());
        assert!(decode_continue(&base64::engine::general_purpose::URL_SAFE.encode(b"{}")).is_err());
    }
}
