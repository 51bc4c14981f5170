//! Watches served from the watch cache: resume from a resourceVersion (or
//! 410 Gone as an ERROR event when it is too old), initial events with the
//! `k8s.io/initial-events-end` bookmark, periodic bookmarks, selector
//! transitions (an object leaving the selector is DELETED for the watcher),
//! and timeouts.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use rkube_api::ResourceInfo;
use serde_json::{json, Value};
use tokio::sync::{broadcast, mpsc};

use super::read::ListOptions;
use super::{Rest, Target};
use crate::cache::{CacheError, CacheEvent, EventKind};
use crate::error::ApiError;

/// Turns an event into the bytes of one watch-stream line. `None` means the
/// plain JSON encoding (shared between watchers).
pub type Encoder = Arc<dyn Fn(EventKind, &Value) -> Bytes + Send + Sync>;

#[derive(Debug, Clone)]
pub struct WatchOptions {
    pub list: ListOptions,
    pub bookmarks: bool,
    pub send_initial_events: bool,
    pub timeout: Duration,
    pub bookmark_interval: Duration,
}

fn line(kind: &str, obj: &Value) -> Bytes {
    let mut v = serde_json::to_vec(&json!({"type": kind, "object": obj})).unwrap_or_default();
    v.push(b'\n');
    Bytes::from(v)
}

/// The ERROR event a watch ends with, carrying a Status.
pub fn error_line(e: &ApiError) -> Bytes {
    line("ERROR", &e.status())
}

fn bookmark(res: &ResourceInfo, rev: i64, initial_end: bool) -> Bytes {
    let mut meta = json!({"resourceVersion": rev.to_string()});
    if initial_end {
        meta["annotations"] = json!({"k8s.io/initial-events-end": "true"});
    }
    line(
        "BOOKMARK",
        &json!({"kind": res.kind, "apiVersion": res.api_version(), "metadata": meta}),
    )
}

/// What a watcher sees of one cache event after selector filtering.
fn visible(res: &ResourceInfo, opts: &ListOptions, ev: &CacheEvent) -> Option<EventKind> {
    let now = opts.matches(res, &ev.obj);
    let before = ev.prev.as_ref().is_some_and(|p| opts.matches(res, p));
    match ev.kind {
        EventKind::Added => now.then_some(EventKind::Added),
        EventKind::Deleted => (now || before).then_some(EventKind::Deleted),
        EventKind::Modified => match (before, now) {
            (true, true) => Some(EventKind::Modified),
            (false, true) => Some(EventKind::Added),
            (true, false) => Some(EventKind::Deleted),
            (false, false) => None,
        },
    }
}

/// Starts a watch; the returned channel yields the response body's lines.
pub async fn watch(
    rest: Arc<Rest>,
    t: Target,
    opts: WatchOptions,
    encoder: Option<Encoder>,
) -> mpsc::Receiver<Bytes> {
    let (tx, rx) = mpsc::channel::<Bytes>(256);
    let res = t.res;
    // A watch on a single object (`/pods/name?watch=1`, legacy) watches the
    // namespace with a name filter.
    let prefix = res.namespace_prefix(t.namespace.as_deref());
    let name_filter = t.name.clone();
    let Some(cache) = rest.cache.resource(res).cloned() else {
        let _ = tx
            .send(error_line(&ApiError::internal("resource is not cached")))
            .await;
        return rx;
    };
    tokio::spawn(async move {
        let encode = |kind: EventKind, obj: &Value, shared: Option<&CacheEvent>| -> Bytes {
            match (&encoder, shared) {
                (Some(f), _) => f(kind, obj),
                (None, Some(ev)) if ev.kind == kind => ev.json_line(),
                (None, _) => line(kind.as_str(), obj),
            }
        };
        let rv = opts
            .list
            .resource_version
            .as_deref()
            .and_then(|s| s.parse::<i64>().ok());
        // Unset or "0" resourceVersion: start with the current state as ADDED
        // events, as upstream does; sendInitialEvents asks for the same
        // explicitly, followed by a bookmark.
        let initial = opts.send_initial_events || rv.is_none() || rv == Some(0);
        let rev = if opts.send_initial_events && rv.is_none() {
            rest.cache.sync().await
        } else {
            match rv {
                Some(n) if n > 0 => rest.cache.wait_for(n, Duration::from_secs(3)).await,
                _ => Ok(rest.cache.revision()),
            }
        };
        let rev = match rev {
            Ok(r) => r,
            Err(e) => {
                let _ = tx
                    .send(error_line(&ApiError::unavailable(e.to_string())))
                    .await;
                return;
            }
        };
        let from = if initial { rev } else { rv.unwrap_or(rev) };
        let start = match cache.start_watch(&prefix, from, initial, rev) {
            Ok(s) => s,
            Err(CacheError::TooOld { requested, .. }) => {
                let _ = tx
                    .send(error_line(&ApiError::gone(format!(
                        "too old resource version: {requested} ({})",
                        rev
                    ))))
                    .await;
                return;
            }
            Err(e) => {
                let _ = tx
                    .send(error_line(&ApiError::internal(e.to_string())))
                    .await;
                return;
            }
        };
        let name_ok = |obj: &Value| {
            name_filter
                .as_deref()
                .is_none_or(|n| super::name_of(obj) == n)
        };
        let mut last_rev = from;
        for obj in &start.initial {
            if opts.list.matches(res, obj)
                && name_ok(obj)
                && tx.send(encode(EventKind::Added, obj, None)).await.is_err()
            {
                return;
            }
        }
        if opts.send_initial_events
            && opts.bookmarks
            && tx.send(bookmark(res, rev, true)).await.is_err()
        {
            return;
        }
        for ev in &start.replay {
            if let Some(k) = visible(res, &opts.list, ev).filter(|_| name_ok(&ev.obj)) {
                if tx.send(encode(k, &ev.obj, Some(ev))).await.is_err() {
                    return;
                }
            }
            last_rev = ev.rev;
        }
        let mut rx = start.rx;
        let deadline = tokio::time::sleep(opts.timeout);
        tokio::pin!(deadline);
        let mut ticker = tokio::time::interval(opts.bookmark_interval);
        ticker.tick().await;
        loop {
            tokio::select! {
                _ = &mut deadline => return,
                _ = tx.closed() => return,
                _ = ticker.tick(), if opts.bookmarks => {
                    let r = rest.cache.revision().max(last_rev);
                    if tx.send(bookmark(res, r, false)).await.is_err() { return; }
                }
                got = rx.recv() => match got {
                    Ok(ev) => {
                        if ev.rev <= last_rev { continue; }
                        last_rev = ev.rev;
                        if let Some(k) = visible(res, &opts.list, &ev).filter(|_| name_ok(&ev.obj)) {
                            if tx.send(encode(k, &ev.obj, Some(&ev))).await.is_err() { return; }
                        }
                    }
                    // A watcher that fell behind, or a cache reset: end the
                    // stream; the client resumes from its last resourceVersion.
                    Err(broadcast::error::RecvError::Lagged(_)) | Err(broadcast::error::RecvError::Closed) => return,
                }
            }
        }
    });
    rx
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn selector_transitions_become_add_and_delete() {
        let res = rkube_api::resources::lookup("", "v1", "configmaps").unwrap();
        let mut q = std::collections::HashMap::new();
        q.insert("labelSelector".to_string(), "app=web".to_string());
        let opts = ListOptions::parse(res, &q).unwrap();
        let web = Arc::new(json!({"metadata": {"name": "a", "labels": {"app": "web"}}}));
        let other = Arc::new(json!({"metadata": {"name": "a", "labels": {"app": "db"}}}));
        let ev = |kind, obj: &Arc<Value>, prev: Option<&Arc<Value>>| {
            CacheEvent::new(kind, 5, "k".into(), obj.clone(), prev.cloned())
        };
        assert_eq!(
            visible(res, &opts, &ev(EventKind::Modified, &web, Some(&other))),
            Some(EventKind::Added)
        );
        assert_eq!(
            visible(res, &opts, &ev(EventKind::Modified, &other, Some(&web))),
            Some(EventKind::Deleted)
        );
        assert_eq!(
            visible(res, &opts, &ev(EventKind::Modified, &other, Some(&other))),
            None
        );
        assert_eq!(
            visible(res, &opts, &ev(EventKind::Modified, &web, Some(&web))),
            Some(EventKind::Modified)
        );
        assert_eq!(
            visible(res, &opts, &ev(EventKind::Added, &other, None)),
            None
        );
    }
}

/// Most watch lines joined into one body chunk.
const COALESCE_LINES: usize = 64;
const COALESCE_BYTES: usize = 64 * 1024;

/// The watch body: each chunk carries every line already queued (up to a
/// bound), so a watcher that falls behind catches up in few large writes
/// (one TLS record and one HTTP/2 DATA frame) instead of one per event.
pub fn coalesced(rx: mpsc::Receiver<Bytes>) -> impl futures::Stream<Item = Bytes> + Send + 'static {
    futures::stream::unfold(rx, |mut rx| async move {
        let first = rx.recv().await?;
        let mut chunk: Option<bytes::BytesMut> = None;
        let mut lines = 1;
        while lines < COALESCE_LINES
            && chunk.as_ref().map_or(first.len(), |c| c.len()) < COALESCE_BYTES
        {
            let Ok(next) = rx.try_recv() else { break };
            let buf = chunk.get_or_insert_with(|| bytes::BytesMut::from(&first[..]));
            buf.extend_from_slice(&next);
            lines += 1;
        }
        Some((chunk.map_or(first, |c| c.freeze()), rx))
    })
}

#[cfg(test)]
mod coalesce_tests {
    use super::*;
    use futures::StreamExt;

    #[tokio::test]
    async fn queued_lines_are_joined_in_order_and_the_stream_ends_with_the_channel() {
        let (tx, rx) = mpsc::channel(256);
        for i in 0..100 {
            tx.send(Bytes::from(format!("{i}\n"))).await.unwrap();
        }
        drop(tx);
        let chunks: Vec<Bytes> = coalesced(rx).collect().await;
        assert_eq!(chunks.len(), 2, "64 lines, then the remaining 36");
        let all: Vec<u8> = chunks.iter().flat_map(|c| c.iter().copied()).collect();
        let expected: String = (0..100).map(|i| format!("{i}\n")).collect();
        assert_eq!(String::from_utf8(all).unwrap(), expected);
    }
}
