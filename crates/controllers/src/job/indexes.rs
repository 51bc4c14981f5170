//! Completion indexes of Indexed Jobs and their compressed text form
//! (`status.completedIndexes`: sorted, runs of consecutive indexes as
//! `first-last`, comma-separated, like "0-2,4").

use std::collections::BTreeSet;

use k8s_openapi::api::core::v1::Pod;
use kube::ResourceExt;

/// `batch.kubernetes.io/job-completion-index`, as label and annotation.
pub const COMPLETION_INDEX: &str = "batch.kubernetes.io/job-completion-index";

/// Formats indexes as upstream's compressed range string.
pub fn format_ranges(set: &BTreeSet<i32>) -> String {
    let mut out: Vec<String> = Vec::new();
    let mut it = set.iter().copied().peekable();
    while let Some(first) = it.next() {
        let mut last = first;
        while it.peek() == Some(&(last + 1)) {
            last += 1;
            it.next();
        }
        out.push(if first == last {
            first.to_string()
        } else {
            format!("{first}-{last}")
        });
    }
    out.join(",")
}

/// Parses a range string, keeping indexes below `completions` and skipping
/// anything malformed (upstream ignores what it cannot parse).
pub fn parse_ranges(s: &str, completions: i32) -> BTreeSet<i32> {
    let mut set = BTreeSet::new();
    for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (a, b) = part.split_once('-').unwrap_or((part, part));
        let (Ok(a), Ok(b)) = (a.parse::<i32>(), b.parse::<i32>()) else {
            continue;
        };
        set.extend((a.max(0)..=b.min(completions - 1)).filter(|_| a <= b));
    }
    set
}

/// The completion index of a pod (annotation first, then label), if valid
/// for `completions`.
pub fn pod_index(pod: &Pod, completions: i32) -> Option<i32> {
    let raw = pod
        .annotations()
        .get(COMPLETION_INDEX)
        .or_else(|| pod.labels().get(COMPLETION_INDEX))?;
    let i: i32 = raw.parse().ok()?;
    (0..completions).contains(&i).then_some(i)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_round_trip() {
        let set: BTreeSet<i32> = [0, 1, 2, 4, 6, 7].into();
        assert_eq!(format_ranges(&set), "0-2,4,6-7");
        assert_eq!(parse_ranges("0-2,4,6-7", 10), set);
        assert_eq!(format_ranges(&BTreeSet::new()), "");
        assert_eq!(parse_ranges("", 3), BTreeSet::new());
        // Out-of-range and malformed parts are dropped.
        assert_eq!(parse_ranges("1-5,x,9", 3), [1, 2].into());
        assert_eq!(format_ranges(&[3].into()), "3");
    }
}
