//! Conformance suite for the [`Store`] trait: every scenario is written once as
//! an async function taking `Arc<dyn Store>` and a key prefix, and the
//! `conformance!` macro runs each against both backends:
//!
//! * `embedded::*`: a fresh [`EmbeddedStore`] in a temporary directory.
//! * `etcd::*`: a fresh etcd process per test (so etcd's global compaction
//!   can't interfere between tests), started on loopback with random ports
//!   from the `etcd` binary on `PATH` (Debian package `etcd-server`) or
//!   `$RKUBE_ETCD_BIN`. Without the binary these tests FAIL, unless
//!   `RKUBE_SKIP_ETCD=1` is set.
//!
//! Embedded-only tests at the end cover reopening and crash safety (a child
//! process killed with SIGKILL mid-write).

use std::collections::{BTreeMap, HashSet};
use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use rkube_store::embedded::EmbeddedStore;
use rkube_store::etcd::EtcdStore;
use rkube_store::testing::EtcdProcess;
use rkube_store::{Event, EventType, RangeRequest, Store, StoreError, WatchItem, WatchStream};

type DynStore = Arc<dyn Store>;

const WAIT: Duration = Duration::from_secs(30);

// ---------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------

fn range_req(prefix: &str) -> RangeRequest {
    RangeRequest {
        prefix: prefix.to_string(),
        ..Default::default()
    }
}

fn keys(kvs: &[rkube_store::KeyValue]) -> Vec<String> {
    kvs.iter().map(|kv| kv.key.clone()).collect()
}

/// Collects exactly `n` events (skipping progress notifications).
async fn next_events(w: &mut WatchStream, n: usize) -> Vec<Event> {
    let mut out = Vec::new();
    let deadline = tokio::time::Instant::now() + WAIT;
    while out.len() < n {
        let item = tokio::time::timeout_at(deadline, w.next())
            .await
            .unwrap_or_else(|_| panic!("timed out waiting for events; got {out:?}"))
            .expect("watch stream ended")
            .expect("watch error");
        if let WatchItem::Events(evs) = item {
            out.extend(evs);
        }
    }
    assert_eq!(out.len(), n, "more events than expected: {out:?}");
    out
}

/// Asserts that no events arrive within `dur`.
async fn no_events(w: &mut WatchStream, dur: Duration) {
    let deadline = tokio::time::Instant::now() + dur;
    loop {
        match tokio::time::timeout_at(deadline, w.next()).await {
            Err(_) => return,
            Ok(Some(Ok(WatchItem::Progress(_)))) => {}
            Ok(other) => panic!("unexpected watch item: {other:?}"),
        }
    }
}

/// Expects a watch from `after` to fail with `Compacted`, at once or as the
/// stream's first item; returns the reported compacted revision.
async fn watch_compacted(store: &DynStore, prefix: &str, after: i64) -> i64 {
    match store.watch(prefix, after).await {
        Err(StoreError::Compacted(c)) => c,
        Err(e) => panic!("expected Compacted, got {e:?}"),
        Ok(mut w) => loop {
            match tokio::time::timeout(WAIT, w.next()).await {
                Ok(Some(Err(StoreError::Compacted(c)))) => return c,
                Ok(Some(Ok(WatchItem::Progress(_)))) => continue,
                other => panic!("expected Compacted as first item, got {other:?}"),
            }
        },
    }
}

fn assert_event(e: &Event, kind: EventType, key: &str, value: &[u8], prev: Option<&[u8]>) {
    assert_eq!(e.kind, kind, "event {e:?}");
    assert_eq!(e.kv.key, key, "event {e:?}");
    assert_eq!(e.kv.value, value, "event {e:?}");
    assert_eq!(
        e.prev_kv.as_ref().map(|p| p.value.as_slice()),
        prev,
        "event {e:?}"
    );
    if let Some(p) = &e.prev_kv {
        assert_eq!(p.key, key);
        assert!(p.mod_revision < e.kv.mod_revision);
    }
}

// ---------------------------------------------------------------------------
// Scenarios (run against every backend)
// ---------------------------------------------------------------------------

async fn create_get(s: DynStore, p: &str) {
    let start = s.current_revision().await.unwrap();
    assert!(start >= 1);
    let k = format!("{p}a");
    let kv = s.create(&k, b"v1".to_vec()).await.unwrap();
    assert_eq!(kv.key, k);
    assert_eq!(kv.value, b"v1");
    assert!(kv.mod_revision > start);
    assert!(
        kv.mod_revision >= 2,
        "first write must not get revision 0 or 1"
    );
    assert_eq!(kv.create_revision, kv.mod_revision);
    assert_eq!(s.current_revision().await.unwrap(), kv.mod_revision);

    assert_eq!(s.get(&k).await.unwrap(), Some(kv.clone()));
    assert_eq!(s.get(&format!("{p}missing")).await.unwrap(), None);

    match s.create(&k, b"v2".to_vec()).await {
        Err(StoreError::AlreadyExists(key)) => assert_eq!(key, k),
        other => panic!("expected AlreadyExists, got {other:?}"),
    }
    // A failed create doesn't consume a revision or change the value.
    assert_eq!(s.current_revision().await.unwrap(), kv.mod_revision);
    assert_eq!(s.get(&k).await.unwrap().unwrap().value, b"v1");

    // Empty values are fine.
    let e = s.create(&format!("{p}empty"), Vec::new()).await.unwrap();
    assert_eq!(
        s.get(&e.key).await.unwrap().unwrap().value,
        Vec::<u8>::new()
    );
    s.ping().await.unwrap();
}

async fn update_cas(s: DynStore, p: &str) {
    let k = format!("{p}u");
    let v1 = s.create(&k, b"1".to_vec()).await.unwrap();
    let v2 = s.update(&k, b"2".to_vec(), v1.mod_revision).await.unwrap();
    assert!(v2.mod_revision > v1.mod_revision);
    assert_eq!(v2.create_revision, v1.create_revision);
    assert_eq!(v2.value, b"2");
    assert_eq!(s.get(&k).await.unwrap(), Some(v2.clone()));

    match s.update(&k, b"3".to_vec(), v1.mod_revision).await {
        Err(StoreError::Conflict(cur)) => assert_eq!(*cur, v2),
        other => panic!("expected Conflict, got {other:?}"),
    }
    assert_eq!(s.get(&k).await.unwrap().unwrap().value, b"2");

    for expected in [0, 5, v2.mod_revision] {
        match s.update(&format!("{p}nope"), b"x".to_vec(), expected).await {
            Err(StoreError::NotFound(key)) => assert_eq!(key, format!("{p}nope")),
            other => panic!("expected NotFound, got {other:?}"),
        }
    }
    assert_eq!(s.get(&format!("{p}nope")).await.unwrap(), None);
    assert_eq!(s.current_revision().await.unwrap(), v2.mod_revision);
}

async fn delete(s: DynStore, p: &str) {
    let k = format!("{p}d");
    let v1 = s.create(&k, b"1".to_vec()).await.unwrap();
    match s.delete(&k, Some(v1.mod_revision + 100)).await {
        Err(StoreError::Conflict(cur)) => assert_eq!(*cur, v1),
        other => panic!("expected Conflict, got {other:?}"),
    }
    let del = s.delete(&k, Some(v1.mod_revision)).await.unwrap();
    assert_eq!(del.key, k);
    assert_eq!(del.value, b"1");
    assert_eq!(del.create_revision, v1.create_revision);
    assert!(del.mod_revision > v1.mod_revision);
    assert_eq!(s.current_revision().await.unwrap(), del.mod_revision);
    assert_eq!(s.get(&k).await.unwrap(), None);
    assert!(matches!(
        s.delete(&k, None).await,
        Err(StoreError::NotFound(_))
    ));
    assert!(matches!(
        s.delete(&k, Some(del.mod_revision)).await,
        Err(StoreError::NotFound(_))
    ));

    // Unconditional delete; re-create gets a new create revision.
    let v2 = s.create(&k, b"2".to_vec()).await.unwrap();
    assert!(v2.create_revision > del.mod_revision);
    let del2 = s.delete(&k, None).await.unwrap();
    assert_eq!(del2.value, b"2");
    assert_eq!(s.range(range_req(p)).await.unwrap().count, 0);
}

async fn range(s: DynStore, p: &str) {
    let base = format!("{p}r/");
    for name in ["c", "a", "e", "b", "d"] {
        s.create(&format!("{base}{name}"), name.as_bytes().to_vec())
            .await
            .unwrap();
    }
    // Neighbours outside the prefix.
    s.create(&format!("{p}r"), b"x".to_vec()).await.unwrap();
    s.create(&format!("{p}r0"), b"x".to_vec()).await.unwrap();
    s.create(&format!("{p}q/a"), b"x".to_vec()).await.unwrap();
    let cur = s.current_revision().await.unwrap();

    let all = s.range(range_req(&base)).await.unwrap();
    let want: Vec<String> = ["a", "b", "c", "d", "e"]
        .iter()
        .map(|n| format!("{base}{n}"))
        .collect();
    assert_eq!(keys(&all.kvs), want);
    assert_eq!(all.kvs[2].value, b"c");
    assert_eq!(all.count, 5);
    assert!(!all.more);
    assert_eq!(all.revision, cur);

    let limited = s
        .range(RangeRequest {
            limit: 2,
            ..range_req(&base)
        })
        .await
        .unwrap();
    assert_eq!(keys(&limited.kvs), want[..2]);
    assert_eq!(limited.count, 5);
    assert!(limited.more);

    let from_c = s
        .range(RangeRequest {
            start_key: Some(format!("{base}c")),
            limit: 2,
            ..range_req(&base)
        })
        .await
        .unwrap();
    assert_eq!(keys(&from_c.kvs), want[2..4]);
    assert_eq!(from_c.count, 3, "count covers [start_key, end of prefix)");
    assert!(from_c.more);

    // Paginate with limit 2, start_key = last key + "\x01", at a fixed revision.
    let mut got = Vec::new();
    let mut start = None;
    loop {
        let page = s
            .range(RangeRequest {
                start_key: start.clone(),
                limit: 2,
                revision: cur,
                ..range_req(&base)
            })
            .await
            .unwrap();
        assert_eq!(page.revision, cur);
        got.extend(keys(&page.kvs));
        if !page.more {
            break;
        }
        start = Some(format!("{}\u{1}", page.kvs.last().unwrap().key));
    }
    assert_eq!(got, want);

    let exact = s
        .range(RangeRequest {
            limit: 5,
            ..range_req(&base)
        })
        .await
        .unwrap();
    assert_eq!(exact.kvs.len(), 5);
    assert!(!exact.more);

    let none = s.range(range_req(&format!("{p}nothing/"))).await.unwrap();
    assert!(none.kvs.is_empty());
    assert_eq!(none.count, 0);
    assert!(!none.more);

    // The whole test prefix: 8 keys.
    assert_eq!(s.range(range_req(p)).await.unwrap().count, 8);

    // etcd's "key after K" idiom, `K\0`, starts strictly after K, at the
    // current revision and at an older one (the API server's continue tokens).
    for revision in [0, cur] {
        let after_b = s
            .range(RangeRequest {
                prefix: base.clone(),
                start_key: Some(format!("{base}b\0")),
                revision,
                limit: 0,
            })
            .await
            .unwrap();
        let keys: Vec<&str> = after_b.kvs.iter().map(|kv| kv.key.as_str()).collect();
        let want: Vec<String> = ["c", "d", "e"]
            .iter()
            .map(|n| format!("{base}{n}"))
            .collect();
        assert_eq!(keys, want, "start after b at revision {revision}");
    }
}

async fn range_at_revision(s: DynStore, p: &str) {
    let a = format!("{p}a");
    let b = format!("{p}b");
    let c = format!("{p}c");
    let r1 = s.create(&a, b"a1".to_vec()).await.unwrap().mod_revision;
    let r2 = s.create(&b, b"b1".to_vec()).await.unwrap().mod_revision;
    let r3 = s.update(&a, b"a2".to_vec(), r1).await.unwrap().mod_revision;
    let r4 = s.delete(&b, None).await.unwrap().mod_revision;
    let r5 = s.create(&c, b"c1".to_vec()).await.unwrap().mod_revision;

    let at = |rev: i64| {
        let s = s.clone();
        let p = p.to_string();
        async move {
            let res = s
                .range(RangeRequest {
                    revision: rev,
                    ..range_req(&p)
                })
                .await
                .unwrap();
            assert_eq!(res.revision, rev);
            assert_eq!(res.count as usize, res.kvs.len());
            res.kvs
                .into_iter()
                .map(|kv| {
                    (
                        kv.key,
                        (String::from_utf8(kv.value).unwrap(), kv.mod_revision),
                    )
                })
                .collect::<BTreeMap<_, _>>()
        }
    };
    let m = |items: &[(&str, &str, i64)]| {
        items
            .iter()
            .map(|(k, v, r)| (format!("{p}{k}"), (v.to_string(), *r)))
            .collect::<BTreeMap<_, _>>()
    };
    assert_eq!(at(r1 - 1).await, m(&[]));
    assert_eq!(at(r1).await, m(&[("a", "a1", r1)]));
    assert_eq!(at(r2).await, m(&[("a", "a1", r1), ("b", "b1", r2)]));
    assert_eq!(at(r3).await, m(&[("a", "a2", r3), ("b", "b1", r2)]));
    assert_eq!(at(r4).await, m(&[("a", "a2", r3)]));
    assert_eq!(at(r5).await, m(&[("a", "a2", r3), ("c", "c1", r5)]));

    // Historical reads honour limit, count and start_key too.
    let page = s
        .range(RangeRequest {
            revision: r3,
            limit: 1,
            ..range_req(p)
        })
        .await
        .unwrap();
    assert_eq!(keys(&page.kvs), vec![a.clone()]);
    assert_eq!(page.kvs[0].value, b"a2");
    assert_eq!(page.kvs[0].create_revision, r1);
    assert_eq!(page.count, 2);
    assert!(page.more);
    let page = s
        .range(RangeRequest {
            revision: r3,
            start_key: Some(b.clone()),
            ..range_req(p)
        })
        .await
        .unwrap();
    assert_eq!(keys(&page.kvs), vec![b.clone()]);
    assert_eq!(page.count, 1);

    match s
        .range(RangeRequest {
            revision: r5 + 1000,
            ..range_req(p)
        })
        .await
    {
        Err(StoreError::FutureRevision(r)) => assert_eq!(r, r5 + 1000),
        other => panic!("expected FutureRevision, got {other:?}"),
    }
}

async fn watch_replay_and_live(s: DynStore, p: &str) {
    let a = format!("{p}a");
    let b = format!("{p}b");
    let c = format!("{p}c");
    let r0 = s.current_revision().await.unwrap();
    let a1 = s.create(&a, b"a1".to_vec()).await.unwrap();
    let a2 = s.update(&a, b"a2".to_vec(), a1.mod_revision).await.unwrap();
    let ad = s.delete(&a, None).await.unwrap();
    let b1 = s.create(&b, b"b1".to_vec()).await.unwrap();

    let mut w = s.watch(p, r0).await.unwrap();
    let evs = next_events(&mut w, 4).await;
    assert_event(&evs[0], EventType::Put, &a, b"a1", None);
    assert_eq!(evs[0].kv, a1);
    assert_event(&evs[1], EventType::Put, &a, b"a2", Some(b"a1"));
    assert_eq!(evs[1].kv, a2);
    assert_eq!(evs[1].prev_kv.as_ref().unwrap(), &a1);
    assert_event(&evs[2], EventType::Delete, &a, b"", Some(b"a2"));
    assert_eq!(evs[2].kv.mod_revision, ad.mod_revision);
    assert_eq!(evs[2].prev_kv.as_ref().unwrap(), &a2);
    assert_event(&evs[3], EventType::Put, &b, b"b1", None);
    assert_eq!(evs[3].kv, b1);

    // Live events follow, in order, without duplicates.
    let c1 = s.create(&c, b"c1".to_vec()).await.unwrap();
    let b2 = s.update(&b, b"b2".to_vec(), b1.mod_revision).await.unwrap();
    let evs = next_events(&mut w, 2).await;
    assert_eq!(evs[0].kv, c1);
    assert_event(&evs[1], EventType::Put, &b, b"b2", Some(b"b1"));
    assert_eq!(evs[1].kv, b2);
    no_events(&mut w, Duration::from_millis(300)).await;

    // A watch from the middle of history starts after that revision.
    let mut w2 = s.watch(p, a2.mod_revision).await.unwrap();
    let evs = next_events(&mut w2, 4).await;
    let revs: Vec<i64> = evs.iter().map(|e| e.kv.mod_revision).collect();
    assert_eq!(
        revs,
        vec![
            ad.mod_revision,
            b1.mod_revision,
            c1.mod_revision,
            b2.mod_revision
        ]
    );

    // A watch from "now" sees only later changes.
    let mut w3 = s.watch(p, 0).await.unwrap();
    no_events(&mut w3, Duration::from_millis(300)).await;
    let c2 = s.update(&c, b"c2".to_vec(), c1.mod_revision).await.unwrap();
    let evs = next_events(&mut w3, 1).await;
    assert_eq!(evs[0].kv, c2);
    assert_eq!(evs[0].prev_kv.as_ref().unwrap(), &c1);
    let evs = next_events(&mut w, 1).await;
    assert_eq!(evs[0].kv, c2);
}

async fn watch_prefix_isolation(s: DynStore, p: &str) {
    let x = format!("{p}x/");
    let mut w = s.watch(&x, 0).await.unwrap();
    let r0 = s.current_revision().await.unwrap();
    s.create(&format!("{p}y/k"), b"y".to_vec()).await.unwrap();
    s.create(&format!("{p}x"), b"not under x/".to_vec())
        .await
        .unwrap();
    s.create(&format!("{p}x0"), b"not under x/".to_vec())
        .await
        .unwrap();
    let xk = s.create(&format!("{p}x/k"), b"x".to_vec()).await.unwrap();
    s.create(&format!("{p}z"), b"z".to_vec()).await.unwrap();
    let evs = next_events(&mut w, 1).await;
    assert_eq!(evs[0].kv, xk);
    no_events(&mut w, Duration::from_millis(300)).await;

    // Same through replay.
    let mut w2 = s.watch(&x, r0).await.unwrap();
    let evs = next_events(&mut w2, 1).await;
    assert_eq!(evs[0].kv, xk);
    no_events(&mut w2, Duration::from_millis(300)).await;
}

async fn watch_progress(s: DynStore, p: &str) {
    s.create(&format!("{p}k"), b"v".to_vec()).await.unwrap();
    let cur = s.current_revision().await.unwrap();
    let mut w = s.watch(p, 0).await.unwrap();
    let item = tokio::time::timeout(Duration::from_secs(10), w.next())
        .await
        .expect("no progress notification within 10s")
        .expect("stream ended")
        .expect("watch error");
    match item {
        WatchItem::Progress(rev) => assert!(rev >= cur, "progress {rev} < current {cur}"),
        WatchItem::Events(evs) => panic!("unexpected events {evs:?}"),
    }
}

async fn compaction(s: DynStore, p: &str) {
    let a = format!("{p}a");
    let b = format!("{p}b");
    let c = format!("{p}c");
    let a1 = s.create(&a, b"a1".to_vec()).await.unwrap();
    let b1 = s.create(&b, b"b1".to_vec()).await.unwrap();
    let a2 = s.update(&a, b"a2".to_vec(), a1.mod_revision).await.unwrap();
    s.delete(&b, None).await.unwrap();
    let c1 = s.create(&c, b"c1".to_vec()).await.unwrap();
    let mid = c1.mod_revision;
    let a3 = s.update(&a, b"a3".to_vec(), a2.mod_revision).await.unwrap();
    let cd = s.delete(&c, None).await.unwrap();
    let b2 = s.create(&b, b"b2".to_vec()).await.unwrap();

    s.compact(mid).await.unwrap();

    // Reads below the compacted revision fail; at and above it they work.
    for rev in [1, a1.mod_revision, b1.mod_revision, mid - 1] {
        match s
            .range(RangeRequest {
                revision: rev,
                ..range_req(p)
            })
            .await
        {
            Err(StoreError::Compacted(c)) => assert_eq!(c, mid, "compacted revision reported"),
            other => panic!("expected Compacted for revision {rev}, got {other:?}"),
        }
    }
    let at_mid = s
        .range(RangeRequest {
            revision: mid,
            ..range_req(p)
        })
        .await
        .unwrap();
    assert_eq!(keys(&at_mid.kvs), vec![a.clone(), c.clone()]);
    assert_eq!(at_mid.kvs[0], a2);
    assert_eq!(at_mid.kvs[1], c1);
    let at_a3 = s
        .range(RangeRequest {
            revision: a3.mod_revision,
            ..range_req(p)
        })
        .await
        .unwrap();
    assert_eq!(at_a3.kvs, vec![a3.clone(), c1.clone()]);
    let now = s.range(range_req(p)).await.unwrap();
    assert_eq!(now.kvs, vec![a3.clone(), b2.clone()]);
    assert_eq!(s.get(&a).await.unwrap(), Some(a3.clone()));

    // Watches from below the compacted revision fail; from it they work.
    assert_eq!(watch_compacted(&s, p, mid - 2).await, mid);
    assert_eq!(watch_compacted(&s, p, 1).await, mid);
    let mut w = s.watch(p, mid - 1).await.unwrap();
    let evs = next_events(&mut w, 4).await;
    let revs: Vec<i64> = evs.iter().map(|e| e.kv.mod_revision).collect();
    assert_eq!(
        revs,
        vec![mid, a3.mod_revision, cd.mod_revision, b2.mod_revision]
    );
    assert_eq!(evs[1].prev_kv.as_ref().unwrap(), &a2);
    assert_event(&evs[2], EventType::Delete, &c, b"", Some(b"c1"));
    assert_eq!(evs[3].prev_kv, None);

    // Compacting again at or below the compacted revision, or in the future, fails.
    assert!(matches!(
        s.compact(mid).await,
        Err(StoreError::Compacted(_))
    ));
    assert!(matches!(
        s.compact(mid - 1).await,
        Err(StoreError::Compacted(_))
    ));
    let cur = s.current_revision().await.unwrap();
    assert!(matches!(
        s.compact(cur + 10).await,
        Err(StoreError::FutureRevision(_))
    ));

    // Writes keep working; compacting up to the current revision keeps the live data.
    let a4 = s.update(&a, b"a4".to_vec(), a3.mod_revision).await.unwrap();
    s.compact(a4.mod_revision).await.unwrap();
    let now = s.range(range_req(p)).await.unwrap();
    assert_eq!(now.kvs, vec![a4.clone(), b2.clone()]);
    let at = s
        .range(RangeRequest {
            revision: a4.mod_revision,
            ..range_req(p)
        })
        .await
        .unwrap();
    assert_eq!(at.kvs, now.kvs);
    assert!(matches!(
        s.range(RangeRequest {
            revision: a4.mod_revision - 1,
            ..range_req(p)
        })
        .await,
        Err(StoreError::Compacted(_))
    ));
}

/// Many versions per key (several compaction chunks in the embedded store).
async fn compaction_many_versions(s: DynStore, p: &str) {
    const KEYS: usize = 5;
    const UPDATES: usize = 300;
    let mut tasks = Vec::new();
    for i in 0..KEYS {
        let s = s.clone();
        let k = format!("{p}k{i}");
        tasks.push(tokio::spawn(async move {
            let mut kv = s.create(&k, b"0".to_vec()).await.unwrap();
            for n in 1..=UPDATES {
                kv = s
                    .update(&k, n.to_string().into_bytes(), kv.mod_revision)
                    .await
                    .unwrap();
            }
            kv
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    // Delete one key, then compact at a later put. (etcd drops the delete
    // event of a tombstone *at* the compacted revision from watch history; the
    // embedded store keeps it. Not part of the contract, so not tested here.)
    let gone = s.delete(&format!("{p}k0"), None).await.unwrap();
    let k2 = s.get(&format!("{p}k2")).await.unwrap().unwrap();
    let target = s
        .update(&k2.key, b"target".to_vec(), k2.mod_revision)
        .await
        .unwrap()
        .mod_revision;
    let snapshot = s
        .range(RangeRequest {
            revision: target,
            ..range_req(p)
        })
        .await
        .unwrap();
    assert_eq!(snapshot.count as usize, KEYS - 1);
    let later = s
        .update(
            &format!("{p}k1"),
            b"later".to_vec(),
            snapshot.kvs[0].mod_revision,
        )
        .await
        .unwrap();
    s.compact(target).await.unwrap();

    let at = s
        .range(RangeRequest {
            revision: target,
            ..range_req(p)
        })
        .await
        .unwrap();
    assert_eq!(at.kvs, snapshot.kvs);
    assert!(matches!(
        s.range(RangeRequest {
            revision: target - 1,
            ..range_req(p)
        })
        .await,
        Err(StoreError::Compacted(_))
    ));
    let now = s.range(range_req(p)).await.unwrap();
    assert_eq!(now.count as usize, KEYS - 1);
    assert_eq!(now.kvs[0], later);
    assert_eq!(s.get(&gone.key).await.unwrap(), None);
    let mut w = s.watch(p, target - 1).await.unwrap();
    let evs = next_events(&mut w, 2).await;
    assert_eq!(evs[0].kv.mod_revision, target);
    // etcd has already compacted away the previous version of the event *at*
    // the compacted revision, so its prev_kv may be missing there.
    if let Some(prev) = &evs[0].prev_kv {
        assert_eq!(prev, &k2);
    }
    assert_eq!(evs[1].kv, later);
    assert_eq!(evs[1].prev_kv.as_ref().unwrap(), &snapshot.kvs[0]);
}

async fn concurrent_writers(s: DynStore, p: &str) {
    const TASKS: usize = 64;
    const PER_TASK: usize = 50;
    let start = s.current_revision().await.unwrap();
    let mut w = s.watch(p, start).await.unwrap();
    let started = Instant::now();
    let mut tasks = Vec::new();
    for t in 0..TASKS {
        let s = s.clone();
        let p = p.to_string();
        tasks.push(tokio::spawn(async move {
            let mut revs = Vec::with_capacity(PER_TASK);
            for i in 0..PER_TASK {
                let kv = s
                    .create(&format!("{p}obj/{t:03}/{i:03}"), vec![b'x'; 512])
                    .await
                    .unwrap();
                revs.push(kv.mod_revision);
            }
            revs
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        let revs = t.await.unwrap();
        assert!(
            revs.windows(2).all(|w| w[0] < w[1]),
            "a task's revisions must increase"
        );
        all.extend(revs);
    }
    let total = TASKS * PER_TASK;
    eprintln!(
        "{total} concurrent creates in {:?} ({:.0}/s)",
        started.elapsed(),
        total as f64 / started.elapsed().as_secs_f64()
    );
    let unique: HashSet<i64> = all.iter().copied().collect();
    assert_eq!(unique.len(), total, "revisions must be unique");
    assert!(all.iter().all(|&r| r > start));
    let end = s.current_revision().await.unwrap();
    assert_eq!(end - start, total as i64, "no gaps, no extra revisions");

    let res = s.range(range_req(&format!("{p}obj/"))).await.unwrap();
    assert_eq!(res.count as usize, total);
    assert_eq!(res.kvs.len(), total);

    // The watch saw every create exactly once, in revision order.
    let evs = next_events(&mut w, total).await;
    assert!(evs
        .windows(2)
        .all(|w| w[0].kv.mod_revision < w[1].kv.mod_revision));

    // Concurrent compare-and-swap increments on one key: no lost updates.
    let counter = format!("{p}counter");
    s.create(&counter, b"0".to_vec()).await.unwrap();
    let mut tasks = Vec::new();
    for _ in 0..16 {
        let s = s.clone();
        let counter = counter.clone();
        tasks.push(tokio::spawn(async move {
            for _ in 0..10 {
                loop {
                    let cur = s.get(&counter).await.unwrap().unwrap();
                    let n: u64 = String::from_utf8(cur.value).unwrap().parse().unwrap();
                    match s
                        .update(&counter, (n + 1).to_string().into_bytes(), cur.mod_revision)
                        .await
                    {
                        Ok(_) => break,
                        Err(StoreError::Conflict(_)) => continue,
                        Err(e) => panic!("{e:?}"),
                    }
                }
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    assert_eq!(s.get(&counter).await.unwrap().unwrap().value, b"160");
}

// ---------------------------------------------------------------------------
// Backends
// ---------------------------------------------------------------------------

fn embedded_store() -> (DynStore, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let store = EmbeddedStore::open(&dir.path().join("store.redb")).unwrap();
    (Arc::new(store), dir)
}

async fn etcd_store() -> Option<(DynStore, EtcdProcess)> {
    if std::env::var("RKUBE_SKIP_ETCD").is_ok_and(|v| v == "1") {
        eprintln!("RKUBE_SKIP_ETCD=1: skipping etcd conformance test");
        return None;
    }
    let proc = EtcdProcess::start().await;
    let store = EtcdStore::connect(std::slice::from_ref(&proc.endpoint))
        .await
        .unwrap();
    Some((Arc::new(store), proc))
}

macro_rules! conformance {
    ($($name:ident),* $(,)?) => {
        mod embedded {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let (store, _dir) = super::embedded_store();
                    super::$name(store, "/conformance/").await;
                }
            )*
        }
        mod etcd {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let Some((store, _etcd)) = super::etcd_store().await else { return };
                    super::$name(store, "/conformance/").await;
                }
            )*
        }
    };
}

conformance!(
    create_get,
    update_cas,
    delete,
    range,
    range_at_revision,
    watch_replay_and_live,
    watch_prefix_isolation,
    watch_progress,
    compaction,
    compaction_many_versions,
    concurrent_writers,
);

// ---------------------------------------------------------------------------
// Embedded-only
// ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn embedded_fresh_store_starts_at_revision_1() {
    let (s, _dir) = embedded_store();
    assert_eq!(s.current_revision().await.unwrap(), 1);
    assert_eq!(s.create("/k", b"v".to_vec()).await.unwrap().mod_revision, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn embedded_rejects_nul_keys() {
    let (s, _dir) = embedded_store();
    assert!(matches!(
        s.create("/a\0b", Vec::new()).await,
        Err(StoreError::Backend(_))
    ));
    assert!(matches!(s.get("/a\0b").await, Err(StoreError::Backend(_))));
    assert!(matches!(
        s.range(range_req("/\0")).await,
        Err(StoreError::Backend(_))
    ));
    assert_eq!(s.current_revision().await.unwrap(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn embedded_reopen_keeps_data_and_revision() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("nested/dir/store.redb");
    let (kv, deleted, rev, compacted_at) = {
        let s: DynStore = Arc::new(EmbeddedStore::open(&path).unwrap());
        let a = s.create("/a", b"1".to_vec()).await.unwrap();
        let a = s.update("/a", b"2".to_vec(), a.mod_revision).await.unwrap();
        s.create("/b", b"x".to_vec()).await.unwrap();
        let deleted = s.delete("/b", None).await.unwrap();
        s.compact(a.mod_revision).await.unwrap();
        let rev = s.current_revision().await.unwrap();
        let at = a.mod_revision;
        (a, deleted, rev, at)
    };
    let s: DynStore = Arc::new(EmbeddedStore::open(&path).unwrap());
    assert_eq!(s.current_revision().await.unwrap(), rev);
    assert_eq!(s.get("/a").await.unwrap(), Some(kv.clone()));
    assert_eq!(s.get("/b").await.unwrap(), None);
    let at = s
        .range(RangeRequest {
            revision: deleted.mod_revision - 1,
            ..range_req("/")
        })
        .await
        .unwrap();
    assert_eq!(keys(&at.kvs), vec!["/a".to_string(), "/b".to_string()]);
    assert!(matches!(
        s.range(RangeRequest {
            revision: compacted_at - 1,
            ..range_req("/")
        })
        .await,
        Err(StoreError::Compacted(c)) if c == compacted_at
    ));
    let next = s.create("/c", Vec::new()).await.unwrap();
    assert_eq!(next.mod_revision, rev + 1);

    // Opening a directory uses the default file name inside it.
    drop(s);
    let s = EmbeddedStore::open(dir.path()).unwrap();
    assert!(s.path().ends_with(rkube_store::embedded::DEFAULT_FILE_NAME));
    assert_eq!(s.current_revision().await.unwrap(), 1);
}

const CRASH_ENV: &str = "RKUBE_STORE_CRASH_CHILD_PATH";

/// Child half of `embedded_survives_kill_9`: writes forever, printing each
/// acknowledged write. Does nothing unless run by that test.
#[test]
fn crash_child_helper() {
    let Some(path) = std::env::var_os(CRASH_ENV) else {
        return;
    };
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async move {
        let s: DynStore = Arc::new(EmbeddedStore::open(Path::new(&path)).unwrap());
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<(String, i64)>();
        for t in 0..8 {
            let s = s.clone();
            let tx = tx.clone();
            tokio::spawn(async move {
                for i in 0.. {
                    let key = format!("/crash/{t}/{i:06}");
                    let kv = s.create(&key, key.as_bytes().to_vec()).await.unwrap();
                    if tx.send((key, kv.mod_revision)).is_err() {
                        return;
                    }
                }
            });
        }
        let mut out = std::io::stdout().lock();
        while let Some((key, rev)) = rx.recv().await {
            writeln!(out, "ACK {key} {rev}").unwrap();
            out.flush().unwrap();
        }
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn embedded_survives_kill_9() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("crash.redb");
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "crash_child_helper",
            "--exact",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CRASH_ENV, &path)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let acked = tokio::task::spawn_blocking(move || {
        let mut acked = Vec::new();
        for line in BufReader::new(stdout).lines() {
            let line = line.unwrap();
            let mut parts = line.split_whitespace();
            if parts.next() != Some("ACK") {
                continue;
            }
            let key = parts.next().unwrap().to_string();
            let rev: i64 = parts.next().unwrap().parse().unwrap();
            acked.push((key, rev));
            if acked.len() >= 2000 {
                break;
            }
        }
        acked
    });
    let acked = tokio::time::timeout(Duration::from_secs(120), acked)
        .await
        .expect("child made no progress")
        .unwrap();
    child.kill().unwrap(); // SIGKILL, mid-write
    child.wait().unwrap();
    assert_eq!(acked.len(), 2000);

    let s = EmbeddedStore::open(&path).unwrap();
    let cur = s.current_revision().await.unwrap();
    for (key, rev) in &acked {
        let kv = s
            .get(key)
            .await
            .unwrap()
            .unwrap_or_else(|| panic!("acknowledged write {key} lost"));
        assert_eq!(kv.mod_revision, *rev);
        assert_eq!(kv.value, key.as_bytes());
        assert!(*rev <= cur);
    }
    // The store is usable and consistent after recovery.
    let all = s.range(range_req("/crash/")).await.unwrap();
    assert_eq!(
        all.count as i64,
        cur - 1,
        "one key per revision since revision 1"
    );
    let next = s.create("/after-crash", Vec::new()).await.unwrap();
    assert_eq!(next.mod_revision, cur + 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn embedded_lagging_watcher_gets_error_not_gaps() {
    let (s, _dir) = embedded_store();
    let start = s.current_revision().await.unwrap();
    let mut w = s.watch("/lag/", start).await.unwrap();
    // Never consume while writing: more commits than the watcher buffers.
    for i in 0..1500 {
        s.create(&format!("/lag/{i:05}"), Vec::new()).await.unwrap();
    }
    let mut expected = start + 1;
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        match tokio::time::timeout_at(deadline, w.next())
            .await
            .expect("timed out")
        {
            Some(Ok(WatchItem::Events(evs))) => {
                for e in evs {
                    assert_eq!(e.kv.mod_revision, expected, "gap in watch events");
                    expected += 1;
                }
            }
            Some(Ok(WatchItem::Progress(_))) => {}
            Some(Err(StoreError::Backend(msg))) => {
                assert!(msg.contains("fell behind"), "{msg}");
                break;
            }
            other => panic!("expected a lag error, got {other:?}"),
        }
    }
    assert!(w.next().await.is_none(), "stream ends after the error");
    assert!(
        expected - start < 1500,
        "some events must have been cut off"
    );
}
