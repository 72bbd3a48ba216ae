//! The controller's decisions, as a pure function of what it sees: which slots (partitions
//! or coordinator shards) get a new owner, which are moved, which moves are cancelled.
//!
//! Rules, in order:
//! 1. A slot whose owner is missing, unregistered or a previous incarnation is assigned at
//!    once to the least-loaded eligible broker (availability first, no bound).
//! 2. A slot owned by a draining broker is moved to the least-loaded eligible broker (no
//!    bound: the broker is on its way out).
//! 3. Otherwise, while the most and least loaded eligible brokers differ by more than one,
//!    one slot moves from the most to the least loaded, at most `max_moves` under way at
//!    once, so a joining broker receives partitions gradually.
//!
//! Moves already under way count at their destination; a move whose source no longer owns
//! the slot, or whose destination left, is cancelled.

use std::collections::BTreeMap;

use crate::types::BrokerId;

/// A broker as the controller sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Candidate {
    pub id: BrokerId,
    pub incarnation: u64,
    pub draining: bool,
}

/// A partition or shard and who has it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Slot<K> {
    pub key: K,
    /// Owner and the incarnation it was given to.
    pub owner: Option<(BrokerId, u64)>,
    /// Destination of a move under way.
    pub moving_to: Option<BrokerId>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action<K> {
    /// Give the slot to `to` now (its owner is gone).
    Assign { key: K, to: BrokerId },
    /// Ask the owner `from` to hand the slot over to `to`.
    Move {
        key: K,
        from: BrokerId,
        to: BrokerId,
    },
    /// Forget a move that can no longer happen.
    CancelMove { key: K },
}

/// Decides the next actions. Deterministic: the same input gives the same output.
pub fn plan<K: Copy + Ord>(
    brokers: &[Candidate],
    slots: &[Slot<K>],
    max_moves: usize,
) -> Vec<Action<K>> {
    let by_id: BTreeMap<BrokerId, Candidate> = brokers.iter().map(|b| (b.id, *b)).collect();
    let mut load: BTreeMap<BrokerId, usize> = brokers
        .iter()
        .filter(|b| !b.draining)
        .map(|b| (b.id, 0))
        .collect();
    if load.is_empty() {
        return Vec::new();
    }
    let valid_owner = |slot: &Slot<K>| {
        slot.owner
            .filter(|(id, inc)| by_id.get(id).is_some_and(|b| b.incarnation == *inc))
            .map(|(id, _)| id)
    };
    let mut actions = Vec::new();
    // Settle each slot's current destination: its owner, or a move's target.
    let mut placed: Vec<(Slot<K>, Option<BrokerId>, bool)> = Vec::with_capacity(slots.len());
    let mut moving = 0usize;
    for slot in slots {
        let owner = valid_owner(slot);
        let move_ok = slot
            .moving_to
            .is_some_and(|to| owner.is_some() && load.contains_key(&to));
        if slot.moving_to.is_some() && !move_ok {
            actions.push(Action::CancelMove { key: slot.key });
        }
        let at = if move_ok { slot.moving_to } else { owner };
        if let Some(b) = at.filter(|b| load.contains_key(b)) {
            *load.entry(b).or_default() += 1;
        }
        moving += usize::from(move_ok);
        placed.push((*slot, owner, move_ok));
    }
    let least = |load: &BTreeMap<BrokerId, usize>| {
        load.iter()
            .min_by_key(|(id, n)| (**n, **id))
            .map(|(id, _)| *id)
    };
    for (slot, owner, move_ok) in &placed {
        if *move_ok {
            continue;
        }
        match owner {
            None => {
                let Some(to) = least(&load) else { break };
                *load.entry(to).or_default() += 1;
                actions.push(Action::Assign { key: slot.key, to });
            }
            Some(from) if !load.contains_key(from) => {
                // Draining owner.
                let Some(to) = least(&load) else { break };
                *load.entry(to).or_default() += 1;
                actions.push(Action::Move {
                    key: slot.key,
                    from: *from,
                    to,
                });
                moving += 1;
            }
            Some(_) => {}
        }
    }
    // Balance, gradually.
    let mut movable: BTreeMap<BrokerId, Vec<K>> = BTreeMap::new();
    for (slot, owner, move_ok) in &placed {
        if let (Some(o), false) = (owner, move_ok) {
            if load.contains_key(o) {
                movable.entry(*o).or_default().push(slot.key);
            }
        }
    }
    while moving < max_moves {
        let Some(to) = least(&load) else { break };
        let Some((&from, &most)) = load
            .iter()
            .max_by_key(|(id, n)| (**n, std::cmp::Reverse(**id)))
        else {
            break;
        };
        if most <= load.get(&to).copied().unwrap_or(0) + 1 {
            break;
        }
        let Some(key) = movable.get_mut(&from).and_then(|v| v.pop()) else {
            break;
        };
        *load.entry(from).or_default() -= 1;
        *load.entry(to).or_default() += 1;
        actions.push(Action::Move { key, from, to });
        moving += 1;
    }
    actions
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use proptest::prelude::*;

    fn brokers(ids: &[i32]) -> Vec<Candidate> {
        ids.iter()
            .map(|i| Candidate {
                id: BrokerId(*i),
                incarnation: *i as u64 + 100,
                draining: false,
            })
            .collect()
    }

    fn owned(key: u32, b: i32) -> Slot<u32> {
        Slot {
            key,
            owner: Some((BrokerId(b), b as u64 + 100)),
            moving_to: None,
        }
    }

    /// Applies actions as the cluster would once every move completes.
    fn settle(brokers: &[Candidate], slots: &mut [Slot<u32>], actions: &[Action<u32>]) {
        let inc = |id: BrokerId| brokers.iter().find(|b| b.id == id).unwrap().incarnation;
        for a in actions {
            match *a {
                Action::Assign { key, to } | Action::Move { key, to, .. } => {
                    let s = slots.iter_mut().find(|s| s.key == key).unwrap();
                    s.owner = Some((to, inc(to)));
                    s.moving_to = None;
                }
                Action::CancelMove { key } => {
                    slots.iter_mut().find(|s| s.key == key).unwrap().moving_to = None;
                }
            }
        }
    }

    fn counts(slots: &[Slot<u32>]) -> BTreeMap<BrokerId, usize> {
        let mut c = BTreeMap::new();
        for s in slots {
            *c.entry(s.owner.unwrap().0).or_default() += 1;
        }
        c
    }

    #[test]
    fn unowned_slots_spread_over_all_brokers() {
        let b = brokers(&[1, 2, 3]);
        let mut slots: Vec<Slot<u32>> = (0..12)
            .map(|key| Slot {
                key,
                owner: None,
                moving_to: None,
            })
            .collect();
        let actions = plan(&b, &slots, 4);
        assert_eq!(actions.len(), 12);
        assert!(actions.iter().all(|a| matches!(a, Action::Assign { .. })));
        settle(&b, &mut slots, &actions);
        assert!(
            counts(&slots).values().all(|n| *n == 4),
            "{:?}",
            counts(&slots)
        );
        assert!(
            plan(&b, &slots, 4).is_empty(),
            "balanced: nothing more to do"
        );
    }

    #[test]
    fn a_dead_brokers_slots_are_reassigned_at_once() {
        let b = brokers(&[1, 2]);
        let slots = vec![owned(0, 1), owned(1, 3), owned(2, 3), owned(3, 2)];
        let actions = plan(&b, &slots, 0);
        assert_eq!(
            actions,
            vec![
                Action::Assign {
                    key: 1,
                    to: BrokerId(1)
                },
                Action::Assign {
                    key: 2,
                    to: BrokerId(2)
                }
            ]
        );
    }

    #[test]
    fn a_restarted_broker_does_not_keep_its_predecessors_slots() {
        let b = brokers(&[1]);
        let slots = vec![Slot {
            key: 0,
            owner: Some((BrokerId(1), 7)),
            moving_to: None,
        }];
        assert_eq!(
            plan(&b, &slots, 1),
            vec![Action::Assign {
                key: 0,
                to: BrokerId(1)
            }]
        );
    }

    #[test]
    fn a_joining_broker_receives_slots_gradually() {
        let b = brokers(&[1, 2, 3]);
        let mut slots: Vec<Slot<u32>> = (0..12).map(|k| owned(k, 1 + (k % 2) as i32)).collect();
        let mut steps = 0;
        loop {
            let actions = plan(&b, &slots, 2);
            if actions.is_empty() {
                break;
            }
            assert!(actions.len() <= 2, "bounded: {actions:?}");
            assert!(actions
                .iter()
                .all(|a| matches!(a, Action::Move { to, .. } if *to == BrokerId(3))));
            settle(&b, &mut slots, &actions);
            steps += 1;
        }
        assert_eq!(steps, 2);
        assert!(counts(&slots).values().all(|n| *n == 4));
    }

    #[test]
    fn a_draining_broker_hands_everything_over() {
        let mut b = brokers(&[1, 2, 3]);
        b[0].draining = true;
        let slots: Vec<Slot<u32>> = (0..6).map(|k| owned(k, 1 + (k % 3) as i32)).collect();
        let actions = plan(&b, &slots, 0);
        let moved: Vec<_> = actions
            .iter()
            .filter(|a| matches!(a, Action::Move { from, .. } if *from == BrokerId(1)))
            .collect();
        assert_eq!(moved.len(), 2, "{actions:?}");
    }

    #[test]
    fn stale_moves_are_cancelled() {
        let b = brokers(&[1, 2]);
        let slots = vec![
            // Destination gone.
            Slot {
                key: 0,
                owner: Some((BrokerId(1), 101)),
                moving_to: Some(BrokerId(9)),
            },
            // Source gone: reassigned instead.
            Slot {
                key: 1,
                owner: Some((BrokerId(8), 108)),
                moving_to: Some(BrokerId(2)),
            },
        ];
        let actions = plan(&b, &slots, 0);
        assert!(actions.contains(&Action::CancelMove { key: 0 }));
        assert!(actions.contains(&Action::CancelMove { key: 1 }));
        assert!(actions
            .iter()
            .any(|a| matches!(a, Action::Assign { key: 1, .. })));
    }

    proptest! {
        /// Whatever the start, repeatedly planning and settling ends balanced within one,
        /// with every slot on a live, non-draining broker, and never moves more than allowed.
        #[test]
        fn planning_converges(
            n_brokers in 1usize..6,
            owners in proptest::collection::vec(proptest::option::of(0i32..8), 0..40),
            draining in 0usize..6,
            max_moves in 1usize..5,
        ) {
            let mut b = brokers(&(0..n_brokers as i32).collect::<Vec<_>>());
            if draining < n_brokers && n_brokers > 1 {
                b[draining].draining = true;
            }
            let mut slots: Vec<Slot<u32>> = owners.iter().enumerate().map(|(k, o)| Slot {
                key: k as u32,
                owner: o.map(|b| (BrokerId(b), b as u64 + 100)),
                moving_to: None,
            }).collect();
            for _ in 0..100 {
                let actions = plan(&b, &slots, max_moves);
                if actions.is_empty() { break; }
                let balance_moves = actions.iter().filter(|a| matches!(a, Action::Move { from, .. }
                    if !b.iter().any(|c| c.id == *from && c.draining))).count();
                prop_assert!(balance_moves <= max_moves);
                settle(&b, &mut slots, &actions);
            }
            prop_assert!(plan(&b, &slots, max_moves).is_empty());
            let eligible: Vec<BrokerId> = b.iter().filter(|c| !c.draining).map(|c| c.id).collect();
            let mut c: BTreeMap<BrokerId, usize> = eligible.iter().map(|id| (*id, 0)).collect();
            for s in &slots {
                let owner = s.owner.unwrap().0;
                prop_assert!(eligible.contains(&owner));
                *c.get_mut(&owner).unwrap() += 1;
            }
            let (min, max) = (c.values().min().unwrap(), c.values().max().unwrap());
            prop_assert!(max - min <= 1, "{c:?}");
        }
    }
}
