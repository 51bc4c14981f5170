//! On-disk encoding of the embedded store: table definitions, version keys
//! (`key ++ 0x00 ++ revision(u64 BE)`), version records and key ranges.
//!
//! Keys may not contain NUL bytes: NUL separates the user key from the
//! revision suffix, which is what keeps every version of one key contiguous and
//! in revision order, and sorts a key's versions before any longer key that
//! starts with it.

use redb::TableDefinition;

use crate::{Result, StoreError};

/// Every version of every key: version key → encoded [`Record`].
pub(crate) const MVCC: TableDefinition<&[u8], &[u8]> = TableDefinition::new("mvcc");
/// Live keys only: key → (mod revision, create revision). Serves reads at the
/// current revision and the writer's compare-and-swap checks.
pub(crate) const LATEST: TableDefinition<&[u8], (u64, u64)> = TableDefinition::new("latest");
/// Revision → key written at that revision. Watch replay and compaction walk it.
pub(crate) const REVLOG: TableDefinition<u64, &[u8]> = TableDefinition::new("revlog");
/// Store-wide counters: [`META_REVISION`], [`META_COMPACTED`].
pub(crate) const META: TableDefinition<&str, u64> = TableDefinition::new("meta");

/// Meta key: the current revision (revision of the last write).
pub(crate) const META_REVISION: &str = "revision";
/// Meta key: the compacted revision (0 = never compacted).
pub(crate) const META_COMPACTED: &str = "compacted";

/// Revision of a fresh store. Like etcd, the first write gets revision 2, so
/// no object ever has resourceVersion "0" or "1".
pub(crate) const INITIAL_REVISION: u64 = 1;

/// Length of the `0x00 ++ u64` suffix of a version key.
const SUFFIX_LEN: usize = 9;

const FLAG_TOMBSTONE: u8 = 1;
const RECORD_HEADER_LEN: usize = 9;

/// Maps any backend (redb) error to [`StoreError::Backend`].
pub(crate) fn backend<E: std::fmt::Display>(e: E) -> StoreError {
    StoreError::Backend(format!("embedded store: {e}"))
}

/// Rejects keys (and prefixes) containing NUL.
pub(crate) fn validate_key(key: &str) -> Result<()> {
    if key.as_bytes().contains(&0) {
        return Err(StoreError::Backend(format!(
            "invalid key {key:?}: keys must not contain NUL bytes"
        )));
    }
    Ok(())
}

/// `key ++ 0x00 ++ rev (big-endian)`.
pub(crate) fn version_key(key: &[u8], rev: u64) -> Vec<u8> {
    let mut out = Vec::with_capacity(key.len() + SUFFIX_LEN);
    out.extend_from_slice(key);
    out.push(0);
    out.extend_from_slice(&rev.to_be_bytes());
    out
}

/// Inverse of [`version_key`].
pub(crate) fn split_version_key(vk: &[u8]) -> Result<(&[u8], u64)> {
    if vk.len() < SUFFIX_LEN || vk[vk.len() - SUFFIX_LEN] != 0 {
        return Err(StoreError::Backend("corrupt version key".into()));
    }
    let (key, suffix) = vk.split_at(vk.len() - SUFFIX_LEN);
    let mut rev = [0u8; 8];
    rev.copy_from_slice(&suffix[1..]);
    Ok((key, u64::from_be_bytes(rev)))
}

/// One stored version of a key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Record<'a> {
    pub tombstone: bool,
    pub create_revision: u64,
    pub value: &'a [u8],
}

/// `[flags u8][create_revision u64 BE][value...]`.
pub(crate) fn encode_record(tombstone: bool, create_revision: u64, value: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(RECORD_HEADER_LEN + value.len());
    out.push(if tombstone { FLAG_TOMBSTONE } else { 0 });
    out.extend_from_slice(&create_revision.to_be_bytes());
    out.extend_from_slice(value);
    out
}

pub(crate) fn decode_record(raw: &[u8]) -> Result<Record<'_>> {
    if raw.len() < RECORD_HEADER_LEN {
        return Err(StoreError::Backend("corrupt version record".into()));
    }
    let mut create = [0u8; 8];
    create.copy_from_slice(&raw[1..RECORD_HEADER_LEN]);
    Ok(Record {
        tombstone: raw[0] & FLAG_TOMBSTONE != 0,
        create_revision: u64::from_be_bytes(create),
        value: &raw[RECORD_HEADER_LEN..],
    })
}

/// Smallest byte string greater than every string starting with `prefix`, or
/// `None` when there is none (empty prefix, or all `0xff`).
pub(crate) fn prefix_end(prefix: &[u8]) -> Option<Vec<u8>> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return Some(end);
        }
    }
    None
}

/// The key range `[start, end)` a range request or watch covers: keys starting
/// with `prefix`, from `start_key` on when it is given (and later than the
/// prefix).
pub(crate) fn key_bounds(prefix: &str, start_key: Option<&str>) -> (Vec<u8>, Option<Vec<u8>>) {
    let start = match start_key {
        Some(s) if s > prefix => s.as_bytes().to_vec(),
        _ => prefix.as_bytes().to_vec(),
    };
    (start, prefix_end(prefix.as_bytes()))
}

/// Converts a stored key back to a `String`.
pub(crate) fn key_string(key: &[u8]) -> Result<String> {
    String::from_utf8(key.to_vec())
        .map_err(|_| StoreError::Backend("corrupt key: not UTF-8".into()))
}

/// Revision as the trait reports it.
pub(crate) fn rev_i64(rev: u64) -> i64 {
    i64::try_from(rev).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_key_roundtrip() {
        let vk = version_key(b"/registry/pods/a", 0x0102_0304_0506_0708);
        let (k, r) = split_version_key(&vk).unwrap();
        assert_eq!(k, b"/registry/pods/a");
        assert_eq!(r, 0x0102_0304_0506_0708);
        assert!(split_version_key(b"short").is_err());
    }

    #[test]
    fn versions_are_contiguous_and_ordered() {
        // All versions of "a" sort before any version of "a/b" or "a0", and by revision.
        let mut keys = [
            version_key(b"a/b", 1),
            version_key(b"a", 300),
            version_key(b"a0", 2),
            version_key(b"a", 2),
            version_key(b"a", 256),
            version_key(b"b", 1),
        ];
        keys.sort();
        let decoded: Vec<(Vec<u8>, u64)> = keys
            .iter()
            .map(|k| {
                let (key, rev) = split_version_key(k).unwrap();
                (key.to_vec(), rev)
            })
            .collect();
        assert_eq!(
            decoded,
            vec![
                (b"a".to_vec(), 2),
                (b"a".to_vec(), 256),
                (b"a".to_vec(), 300),
                (b"a/b".to_vec(), 1),
                (b"a0".to_vec(), 2),
                (b"b".to_vec(), 1),
            ]
        );
    }

    #[test]
    fn record_roundtrip() {
        let raw = encode_record(false, 42, b"hello");
        assert_eq!(
            decode_record(&raw).unwrap(),
            Record {
                tombstone: false,
                create_revision: 42,
                value: b"hello"
            }
        );
        let raw = encode_record(true, 0, b"");
        let rec = decode_record(&raw).unwrap();
        assert!(rec.tombstone);
        assert!(rec.value.is_empty());
        assert!(decode_record(&[0, 1]).is_err());
    }

    #[test]
    fn prefix_end_cases() {
        assert_eq!(prefix_end(b""), None);
        assert_eq!(prefix_end(b"abc"), Some(b"abd".to_vec()));
        assert_eq!(prefix_end(b"a\xff"), Some(b"b".to_vec()));
        assert_eq!(prefix_end(b"\xff\xff"), None);
    }

    #[test]
    fn key_bounds_cases() {
        assert_eq!(
            key_bounds("/a/", None),
            (b"/a/".to_vec(), Some(b"/a0".to_vec()))
        );
        assert_eq!(
            key_bounds("/a/", Some("/a/x")),
            (b"/a/x".to_vec(), Some(b"/a0".to_vec()))
        );
        // A start key before the prefix is ignored.
        assert_eq!(key_bounds("/b/", Some("/a")).0, b"/b/".to_vec());
        assert_eq!(key_bounds("", None), (Vec::new(), None));
    }

    #[test]
    fn nul_keys_rejected() {
        assert!(validate_key("/ok/key").is_ok());
        assert!(validate_key("bad\0key").is_err());
    }
}
