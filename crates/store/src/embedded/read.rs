//! Read paths of the embedded store: point reads, range reads at any retained
//! revision, and the history replay a watch starts with. Every function here
//! is blocking and runs inside one redb read transaction (a consistent
//! snapshot); callers run them on the blocking pool.

use std::ops::Bound;

use redb::{Database, ReadableDatabase, ReadableTable};

use super::codec::{
    backend, decode_record, key_bounds, key_string, rev_i64, split_version_key, version_key,
    LATEST, META, META_COMPACTED, META_REVISION, MVCC, REVLOG,
};
use crate::{Event, EventType, KeyValue, RangeRequest, RangeResult, Result, StoreError};

/// Store-wide counters as of one snapshot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Meta {
    pub current: u64,
    pub compacted: u64,
}

pub(crate) fn read_meta(meta: &impl ReadableTable<&'static str, u64>) -> Result<Meta> {
    let current = meta
        .get(META_REVISION)
        .map_err(backend)?
        .map(|g| g.value())
        .ok_or_else(|| StoreError::Backend("embedded store: missing revision counter".into()))?;
    let compacted = meta
        .get(META_COMPACTED)
        .map_err(backend)?
        .map_or(0, |g| g.value());
    Ok(Meta { current, compacted })
}

/// Reads the counters in a fresh snapshot.
pub(crate) fn snapshot_meta(db: &Database) -> Result<Meta> {
    let txn = db.begin_read().map_err(backend)?;
    read_meta(&txn.open_table(META).map_err(backend)?)
}

/// One stored version, owned.
#[derive(Debug, Clone)]
pub(crate) struct Version {
    pub tombstone: bool,
    pub create_revision: u64,
    pub value: Vec<u8>,
}

/// The version of `key` written at exactly `rev`.
pub(crate) fn load_version(
    mvcc: &impl ReadableTable<&'static [u8], &'static [u8]>,
    key: &[u8],
    rev: u64,
) -> Result<Version> {
    let vk = version_key(key, rev);
    let guard = mvcc.get(vk.as_slice()).map_err(backend)?.ok_or_else(|| {
        StoreError::Backend(format!("embedded store: missing version {rev} of a key"))
    })?;
    let rec = decode_record(guard.value())?;
    Ok(Version {
        tombstone: rec.tombstone,
        create_revision: rec.create_revision,
        value: rec.value.to_vec(),
    })
}

/// The newest version of `key` older than `rev`, with its revision.
pub(crate) fn previous_version(
    mvcc: &impl ReadableTable<&'static [u8], &'static [u8]>,
    key: &[u8],
    rev: u64,
) -> Result<Option<(u64, Version)>> {
    let lo = version_key(key, 0);
    let hi = version_key(key, rev);
    let mut iter = mvcc.range(lo.as_slice()..hi.as_slice()).map_err(backend)?;
    let Some(entry) = iter.next_back() else {
        return Ok(None);
    };
    let (vk, raw) = entry.map_err(backend)?;
    let (_, prev_rev) = split_version_key(vk.value())?;
    let rec = decode_record(raw.value())?;
    Ok(Some((
        prev_rev,
        Version {
            tombstone: rec.tombstone,
            create_revision: rec.create_revision,
            value: rec.value.to_vec(),
        },
    )))
}

/// Reads one key at the current revision.
pub(crate) fn get(db: &Database, key: &str) -> Result<Option<KeyValue>> {
    let txn = db.begin_read().map_err(backend)?;
    let latest = txn.open_table(LATEST).map_err(backend)?;
    let Some((mod_rev, create_rev)) = latest
        .get(key.as_bytes())
        .map_err(backend)?
        .map(|g| g.value())
    else {
        return Ok(None);
    };
    let mvcc = txn.open_table(MVCC).map_err(backend)?;
    let version = load_version(&mvcc, key.as_bytes(), mod_rev)?;
    Ok(Some(KeyValue {
        key: key.to_string(),
        value: version.value,
        create_revision: rev_i64(create_rev),
        mod_revision: rev_i64(mod_rev),
    }))
}

/// Reads a range of keys at a revision.
pub(crate) fn range(db: &Database, req: &RangeRequest) -> Result<RangeResult> {
    let txn = db.begin_read().map_err(backend)?;
    let meta = read_meta(&txn.open_table(META).map_err(backend)?)?;
    let rev = if req.revision <= 0 {
        meta.current
    } else {
        u64::try_from(req.revision).unwrap_or(u64::MAX)
    };
    if rev > meta.current {
        return Err(StoreError::FutureRevision(req.revision));
    }
    if rev < meta.compacted {
        return Err(StoreError::Compacted(rev_i64(meta.compacted)));
    }
    let limit = if req.limit <= 0 {
        usize::MAX
    } else {
        usize::try_from(req.limit).unwrap_or(usize::MAX)
    };
    let (start, end) = key_bounds(&req.prefix, req.start_key.as_deref());
    let mut out = RangeResult {
        kvs: Vec::new(),
        revision: rev_i64(rev),
        more: false,
        count: 0,
    };
    if end.as_deref().is_some_and(|e| start.as_slice() >= e) {
        return Ok(out);
    }
    let upper = match &end {
        Some(e) => Bound::Excluded(e.as_slice()),
        None => Bound::Unbounded,
    };
    let range_bounds = (Bound::Included(start.as_slice()), upper);
    let mvcc = txn.open_table(MVCC).map_err(backend)?;
    let mut count: usize = 0;

    if rev == meta.current {
        // Current revision: walk the live-key index; load values only for
        // the keys returned.
        let latest = txn.open_table(LATEST).map_err(backend)?;
        for entry in latest.range::<&[u8]>(range_bounds).map_err(backend)? {
            let (k, v) = entry.map_err(backend)?;
            count += 1;
            if out.kvs.len() < limit {
                let (mod_rev, create_rev) = v.value();
                let version = load_version(&mvcc, k.value(), mod_rev)?;
                out.kvs.push(KeyValue {
                    key: key_string(k.value())?,
                    value: version.value,
                    create_revision: rev_i64(create_rev),
                    mod_revision: rev_i64(mod_rev),
                });
            }
        }
    } else {
        // Historical revision: walk every version; per key keep the newest
        // version <= rev unless it is a tombstone.
        struct Candidate {
            rev: u64,
            tombstone: bool,
            create_revision: u64,
            value: Vec<u8>,
        }
        let mut current_key: Option<Vec<u8>> = None;
        let mut best: Option<Candidate> = None;
        let flush = |key: Option<Vec<u8>>,
                     best: Option<Candidate>,
                     out: &mut RangeResult,
                     count: &mut usize|
         -> Result<()> {
            if let (Some(key), Some(c)) = (key, best) {
                if !c.tombstone {
                    *count += 1;
                    if out.kvs.len() < limit {
                        out.kvs.push(KeyValue {
                            key: key_string(&key)?,
                            value: c.value,
                            create_revision: rev_i64(c.create_revision),
                            mod_revision: rev_i64(c.rev),
                        });
                    }
                }
            }
            Ok(())
        };
        for entry in mvcc.range::<&[u8]>(range_bounds).map_err(backend)? {
            let (vk, raw) = entry.map_err(backend)?;
            let (key, version_rev) = split_version_key(vk.value())?;
            if current_key.as_deref() != Some(key) {
                flush(current_key.take(), best.take(), &mut out, &mut count)?;
                current_key = Some(key.to_vec());
            }
            if version_rev <= rev {
                let rec = decode_record(raw.value())?;
                let want_value = !rec.tombstone && out.kvs.len() < limit;
                best = Some(Candidate {
                    rev: version_rev,
                    tombstone: rec.tombstone,
                    create_revision: rec.create_revision,
                    value: if want_value {
                        rec.value.to_vec()
                    } else {
                        Vec::new()
                    },
                });
            }
        }
        flush(current_key.take(), best.take(), &mut out, &mut count)?;
    }
    out.count = i64::try_from(count).unwrap_or(i64::MAX);
    out.more = count > out.kvs.len();
    Ok(out)
}

/// A piece of a watch's history replay.
#[derive(Debug)]
pub(crate) struct ReplayChunk {
    /// Matching events, in revision order.
    pub events: Vec<Event>,
    /// Every revision up to this one has been scanned.
    pub scanned_to: u64,
}

/// Builds the event for the write of `key` at `rev`.
pub(crate) fn event_at(
    mvcc: &impl ReadableTable<&'static [u8], &'static [u8]>,
    key: &[u8],
    rev: u64,
) -> Result<Event> {
    let version = load_version(mvcc, key, rev)?;
    let key_str = key_string(key)?;
    let prev_kv = match previous_version(mvcc, key, rev)? {
        Some((prev_rev, prev)) if !prev.tombstone => Some(KeyValue {
            key: key_str.clone(),
            value: prev.value,
            create_revision: rev_i64(prev.create_revision),
            mod_revision: rev_i64(prev_rev),
        }),
        _ => None,
    };
    Ok(if version.tombstone {
        Event {
            kind: EventType::Delete,
            kv: KeyValue {
                key: key_str,
                value: Vec::new(),
                create_revision: 0,
                mod_revision: rev_i64(rev),
            },
            prev_kv,
        }
    } else {
        Event {
            kind: EventType::Put,
            kv: KeyValue {
                key: key_str,
                value: version.value,
                create_revision: rev_i64(version.create_revision),
                mod_revision: rev_i64(rev),
            },
            prev_kv,
        }
    })
}

/// Replays the changes to keys under `prefix` with revisions in
/// `[from, to]`, scanning at most `max_revisions` revisions.
pub(crate) fn replay(
    db: &Database,
    prefix: &str,
    from: u64,
    to: u64,
    max_revisions: usize,
) -> Result<ReplayChunk> {
    let txn = db.begin_read().map_err(backend)?;
    let meta = read_meta(&txn.open_table(META).map_err(backend)?)?;
    if from < meta.compacted {
        return Err(StoreError::Compacted(rev_i64(meta.compacted)));
    }
    let to = to.min(meta.current);
    let mut chunk = ReplayChunk {
        events: Vec::new(),
        scanned_to: to,
    };
    if from > to {
        return Ok(chunk);
    }
    let revlog = txn.open_table(REVLOG).map_err(backend)?;
    let mvcc = txn.open_table(MVCC).map_err(backend)?;
    let prefix = prefix.as_bytes();
    for (scanned, entry) in revlog.range(from..=to).map_err(backend)?.enumerate() {
        let (rev, key) = entry.map_err(backend)?;
        let rev = rev.value();
        if scanned + 1 >= max_revisions {
            chunk.scanned_to = rev;
        }
        if key.value().starts_with(prefix) {
            chunk.events.push(event_at(&mvcc, key.value(), rev)?);
        }
        if scanned + 1 >= max_revisions {
            break;
        }
    }
    Ok(chunk)
}
