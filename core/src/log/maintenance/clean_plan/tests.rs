#![allow(clippy::unwrap_used)]
use super::*;

const POLICY: Policy = Policy {
    delete_retention_ms: 1_000,
    min_lag_ms: 0,
    max_lag_ms: i64::MAX,
    min_dirty_ratio: 0.5,
    segment_bytes: 1_000,
};

fn seg(base: i64, last: i64, bytes: u64, ts: Millis, cleaned: Option<Cleaned>) -> SegmentView {
    SegmentView {
        base: Offset(base),
        last: Offset(last),
        bytes,
        max_timestamp: ts,
        cleaned,
    }
}

/// Clean through offset 1,000,000 (beyond every segment of these tests).
fn clean(since_ms: Millis, tombstones: bool) -> Option<Cleaned> {
    Some(Cleaned {
        since_ms,
        tombstones,
        through: Offset(1_000_000),
    })
}

#[test]
fn the_dirty_ratio_starts_a_clean() {
    let now = 10_000;
    // 100 clean bytes, 100 dirty: ratio 0.5 reached.
    let segs = [
        seg(0, 9, 100, 1, clean(5, false)),
        seg(10, 19, 100, 2, None),
    ];
    assert_eq!(cleanable(&segs, now, &POLICY), Some(2));
    // 300 clean, 100 dirty: 0.25 is below it.
    let segs = [
        seg(0, 9, 300, 1, clean(5, false)),
        seg(10, 19, 100, 2, None),
    ];
    assert_eq!(cleanable(&segs, now, &POLICY), None);
    let eager = Policy {
        min_dirty_ratio: 0.2,
        ..POLICY
    };
    assert_eq!(cleanable(&segs, now, &eager), Some(2));
    // Nothing dirty, no tombstones: nothing to do, whatever the ratio.
    let all_clean = [seg(0, 9, 300, 1, clean(5, false))];
    let zero = Policy {
        min_dirty_ratio: 0.0,
        ..POLICY
    };
    assert_eq!(cleanable(&all_clean, now, &zero), None);
    assert_eq!(cleanable(&[], now, &zero), None);
}

#[test]
fn the_minimum_lag_keeps_young_segments_out_and_the_maximum_forces_a_clean() {
    let now = 10_000;
    let lagged = Policy {
        min_lag_ms: 5_000,
        ..POLICY
    };
    // The second segment holds a record 1 s old: only the first is cleanable.
    let segs = [seg(0, 9, 100, 1_000, None), seg(10, 19, 100, 9_000, None)];
    assert_eq!(cleanable(&segs, now, &lagged), Some(1));
    let young = [seg(0, 9, 100, 9_000, None)];
    assert_eq!(cleanable(&young, now, &lagged), None);
    // Below the ratio, but the dirty segment is older than the maximum lag.
    let segs = [
        seg(0, 9, 900, 1, clean(5, false)),
        seg(10, 19, 100, 2_000, None),
    ];
    assert_eq!(cleanable(&segs, now, &POLICY), None);
    let forced = Policy {
        max_lag_ms: 7_000,
        ..POLICY
    };
    assert_eq!(cleanable(&segs, now, &forced), Some(2));
}

#[test]
fn due_tombstones_start_a_clean_and_go() {
    let segs = [seg(0, 9, 100, 1, clean(5_000, true))];
    assert_eq!(cleanable(&segs, 5_999, &POLICY), None);
    assert_eq!(cleanable(&segs, 6_000, &POLICY), Some(1));
    assert_eq!(tombstones_due(None, 1 << 40, &POLICY), None);
    assert_eq!(tombstones_due(clean(5_000, true), 5_999, &POLICY), None);
    assert_eq!(
        tombstones_due(clean(5_000, true), 6_000, &POLICY),
        Some(Offset(1_000_000))
    );
}

#[test]
fn a_clean_takes_a_bounded_number_of_segments() {
    let segs: Vec<SegmentView> = (0..100)
        .map(|i| seg(i * 10, i * 10 + 9, 10, 1, None))
        .collect();
    assert_eq!(cleanable(&segs, 10, &POLICY), Some(MAX_SEGMENTS_PER_CLEAN));
}

#[test]
fn the_latest_record_of_a_key_survives_and_tombstones_when_due() {
    let mut map = KeyMap::with_memory(1 << 20);
    for (offset, key) in [(0, "a"), (1, "b"), (2, "a"), (3, "c"), (4, "b")] {
        assert!(map.put(key.as_bytes(), offset));
    }
    assert_eq!(map.len(), 3);
    assert_eq!(map.covered(), Some(4));
    let kept = |map: &KeyMap, offset, key: &str, tomb, drop: bool| {
        let through = drop.then_some(Offset(1_000));
        keeps(map, offset, Some(key.as_bytes()), tomb, through)
    };
    assert!(!kept(&map, 0, "a", false, false));
    assert!(kept(&map, 2, "a", false, false));
    assert!(!kept(&map, 1, "b", false, false));
    assert!(kept(&map, 4, "b", false, false));
    // The latest record is a tombstone: kept until its time has come.
    assert!(kept(&map, 3, "c", true, false));
    assert!(!kept(&map, 3, "c", true, true));
    // A key the map does not know (it was in a clean segment only) stays.
    assert!(kept(&map, 1, "z", false, false));
    // Beyond the map's range everything stays, even an older key.
    assert!(kept(&map, 5, "a", false, false));
    assert!(kept(&map, 5, "c", true, true));
    // A keyless record inside the range goes.
    assert!(!keeps(&map, 1, None, false, None));
    // A due tombstone beyond its segment's clean part stays.
    assert!(keeps(&map, 3, Some(b"c"), true, Some(Offset(2))));
    // Records the map did not take (transactional, control) still extend its range.
    map.cover(7);
    assert_eq!(map.covered(), Some(7));
    assert!(!keeps(&map, 6, None, false, None));
    assert!(keeps(&map, 8, None, false, None));
}

#[test]
fn a_full_map_refuses_new_keys_and_its_range_ends_before_them() {
    let mut map = KeyMap::with_memory(3 * MAP_ENTRY_BYTES);
    for (offset, key) in [(10, "a"), (11, "b"), (12, "c"), (13, "a")] {
        assert!(map.put(key.as_bytes(), offset));
    }
    assert!(!map.put(b"d", 14));
    assert_eq!(map.covered(), Some(13));
    assert_eq!(map.latest(b"d"), None);
    // The record the map could not take, and everything after it, is kept.
    assert!(keeps(&map, 14, Some(b"d"), false, None));
    assert!(keeps(&map, 15, Some(b"a"), false, None));
    assert!(!keeps(&map, 10, Some(b"a"), false, None));
}

#[test]
fn groups_join_neighbours_of_one_kind_up_to_the_segment_size() {
    let segs = [
        seg(0, 9, 300, 1, clean(5, false)),
        seg(10, 19, 300, 1, clean(6, true)),
        seg(20, 29, 600, 1, clean(7, false)),
        seg(30, 39, 100, 1, None),
        seg(40, 49, 100, 1, None),
        seg(50, 59, 100, 1, None),
    ];
    // The map covers up to 54: the last segment is only partly covered.
    assert_eq!(
        groups(&segs, Offset(54), 1_000),
        vec![vec![0, 1], vec![2], vec![3, 4], vec![5]]
    );
    let through = |since_ms, tombstones, at| {
        Some(Cleaned {
            since_ms,
            tombstones,
            through: Offset(at),
        })
    };
    assert_eq!(
        cleaned_state(&segs[0..2], Offset(54), 99, true),
        through(6, true, 19)
    );
    assert_eq!(
        cleaned_state(&segs[3..5], Offset(54), 99, false),
        through(99, false, 49)
    );
    // The partly covered segment is clean up to the map's end, dirty after it.
    let partial = cleaned_state(&segs[5..6], Offset(54), 99, false);
    assert_eq!(partial, through(99, false, 54));
    let mut next = segs[5];
    next.cleaned = partial;
    assert!(!next.is_clean());
    // A map that ends before a segment leaves it as it was.
    assert_eq!(cleaned_state(&segs[5..6], Offset(49), 99, false), None);
}
