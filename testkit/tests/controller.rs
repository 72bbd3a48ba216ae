//! The controller, the watcher and hand-overs, with whole brokers in one process on shared
//! memory stores and tokio's paused clock: leases expire and the controller's loops run in
//! virtual time, so each test covers minutes of cluster life in about a second.
//!
//! What each broker serves is read from the brokers themselves (`TestCluster::leaders`),
//! which is what clients get answers from.

#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::time::Duration;

use kafscale_core::log::{AppendRequest, AppendTicket, CreateTopic};
use kafscale_core::{batch, BrokerId, Error, LeaderEpoch, Offset, PartitionId, PartitionKey};
use kafscale_testkit::cluster::TestCluster;

const SETTLE: Duration = Duration::from_secs(120);

async fn start(c: &mut TestCluster, n: usize) -> Vec<BrokerId> {
    let mut ids = Vec::new();
    for _ in 0..n {
        ids.push(c.start_broker().await.unwrap());
    }
    ids
}

async fn create_topic(c: &TestCluster, on: BrokerId, name: &str, n: i32) -> Vec<PartitionKey> {
    let record = c
        .broker(on)
        .ctx
        .log
        .create_topic(CreateTopic {
            name: name.into(),
            partitions: n,
            configs: BTreeMap::new(),
            validate_only: false,
        })
        .await
        .unwrap();
    (0..n)
        .map(|i| PartitionKey {
            topic: record.id,
            partition: PartitionId(i),
        })
        .collect()
}

/// Partitions led per broker, every given broker listed.
fn per_broker(
    leaders: &BTreeMap<PartitionKey, BrokerId>,
    ids: &[BrokerId],
) -> BTreeMap<BrokerId, usize> {
    let mut counts: BTreeMap<BrokerId, usize> = ids.iter().map(|id| (*id, 0)).collect();
    for id in leaders.values() {
        *counts.entry(*id).or_default() += 1;
    }
    counts
}

/// Waits until every partition has exactly one leader among `ids`, `each` per broker.
async fn wait_balanced(
    c: &TestCluster,
    ps: &[PartitionKey],
    ids: &[BrokerId],
    each: usize,
) -> BTreeMap<PartitionKey, BrokerId> {
    let what = format!("{} partitions led {each} per broker by {ids:?}", ps.len());
    c.wait_for(&what, SETTLE, |c| {
        let leaders = c.leaders(ps)?;
        per_broker(&leaders, ids)
            .iter()
            .all(|(id, n)| ids.contains(id) && *n == each)
            .then_some(leaders)
    })
    .await
    .unwrap()
}

/// Appends one record and waits (at most a virtual minute) for its outcome.
async fn append_one(c: &TestCluster, on: BrokerId, p: PartitionKey) -> Result<Offset, Error> {
    let ticket = append_ticket(c, on, p)?;
    outcome(ticket).await
}

fn append_ticket(c: &TestCluster, on: BrokerId, p: PartitionKey) -> Result<AppendTicket, Error> {
    let ticket = c.broker(on).ctx.log.append(AppendRequest {
        partition: p,
        batch: batch::build(&[(Some(b"k".as_slice()), Some(b"v".as_slice()))], 1_000),
        wait: true,
    })?;
    Ok(ticket.unwrap())
}

async fn outcome(ticket: AppendTicket) -> Result<Offset, Error> {
    match tokio::time::timeout(Duration::from_secs(60), ticket).await {
        Ok(Ok(r)) => r.map(|a| a.base_offset),
        Ok(Err(_)) => Err(Error::ShuttingDown),
        Err(_) => Err(Error::Timeout(60_000)),
    }
}

fn epoch(c: &TestCluster, on: BrokerId, p: PartitionKey) -> LeaderEpoch {
    c.broker(on).ctx.log.partition_info(p).unwrap().leader_epoch
}

fn high_watermark(c: &TestCluster, on: BrokerId, p: PartitionKey) -> Offset {
    c.broker(on)
        .ctx
        .log
        .partition_info(p)
        .unwrap()
        .high_watermark
}

#[tokio::test(start_paused = true)]
async fn partitions_are_spread_evenly_over_the_live_brokers() {
    let mut c = TestCluster::in_memory();
    let ids = start(&mut c, 3).await;
    let ps = create_topic(&c, ids[0], "spread", 6).await;
    wait_balanced(&c, &ps, &ids, 2).await;
    let controllers: Vec<_> = ids
        .iter()
        .map(|id| c.broker(*id).ctx.cluster.controller())
        .collect();
    assert!(controllers[0].is_some(), "no controller");
    assert!(
        controllers.iter().all(|x| *x == controllers[0]),
        "{controllers:?}"
    );
    c.stop_all().await;
}

#[tokio::test(start_paused = true)]
async fn brokers_that_join_get_their_share_by_hand_over_and_nothing_is_lost() {
    let mut c = TestCluster::in_memory();
    let first = start(&mut c, 1).await;
    let ps = create_topic(&c, first[0], "join", 6).await;
    wait_balanced(&c, &ps, &first, 6).await;
    for p in &ps {
        assert_eq!(append_one(&c, first[0], *p).await.unwrap(), Offset(0));
    }
    let before: Vec<_> = ps.iter().map(|p| epoch(&c, first[0], *p)).collect();

    let mut ids = first.clone();
    ids.extend(start(&mut c, 2).await);
    let leaders = wait_balanced(&c, &ps, &ids, 2).await;
    for (p, old) in ps.iter().zip(before) {
        let leader = leaders[p];
        // Every partition was flushed before it moved, and the new leader fences the old
        // one with a higher epoch.
        assert_eq!(
            high_watermark(&c, leader, *p),
            Offset(1),
            "{p} on {leader:?}"
        );
        if leader != first[0] {
            assert!(epoch(&c, leader, *p) > old, "{p} moved without a new epoch");
            assert!(append_one(&c, first[0], *p).await.is_err());
        }
        assert_eq!(append_one(&c, leader, *p).await.unwrap(), Offset(1));
    }
    c.stop_all().await;
}

#[tokio::test(start_paused = true)]
async fn a_broker_cut_off_from_metadata_loses_its_partitions_and_its_unacked_writes() {
    let mut c = TestCluster::in_memory();
    let ids = start(&mut c, 3).await;
    let ps = create_topic(&c, ids[0], "fence", 6).await;
    let leaders = wait_balanced(&c, &ps, &ids, 2).await;
    // Cut off the controller: the survivors must elect another and reassign.
    let victim = c.broker(ids[0]).ctx.cluster.controller().unwrap();
    let survivors: Vec<_> = ids.iter().copied().filter(|id| *id != victim).collect();
    let victims: Vec<_> = ps
        .iter()
        .filter(|p| leaders[*p] == victim)
        .copied()
        .collect();

    c.test_broker(victim).metadata.set_cut_off(true);
    // A write the cut-off leader takes cannot commit: its outcome stays open while the store
    // is out of reach, it fails once it is back (fenced), and it never becomes visible.
    let unacked = append_ticket(&c, victim, victims[0]).unwrap();
    let unacked = tokio::spawn(outcome(unacked));

    let moved = wait_balanced(&c, &ps, &survivors, 3).await;
    let controller = c.broker(survivors[0]).ctx.cluster.controller();
    assert!(
        controller.is_some() && controller != Some(victim),
        "controller {controller:?}"
    );
    for p in &victims {
        assert_eq!(high_watermark(&c, moved[p], *p), Offset(0), "{p}");
        assert!(c.broker(victim).ctx.log.check_serving(*p).is_err());
    }

    // Back in touch, it registers again and gets its share back.
    c.test_broker(victim).metadata.set_cut_off(false);
    let lost = unacked.await.unwrap();
    assert!(
        lost.is_err(),
        "a cut-off leader acknowledged a write: {lost:?}"
    );
    let back = wait_balanced(&c, &ps, &ids, 2).await;
    for p in &ps {
        assert_eq!(append_one(&c, back[p], *p).await.unwrap(), Offset(0));
    }
    c.stop_all().await;
}

#[tokio::test(start_paused = true)]
async fn a_broker_shutting_down_hands_everything_over_before_it_leaves() {
    let mut c = TestCluster::in_memory();
    let ids = start(&mut c, 3).await;
    let ps = create_topic(&c, ids[0], "drain", 6).await;
    let leaders = wait_balanced(&c, &ps, &ids, 2).await;
    for p in &ps {
        append_one(&c, leaders[p], *p).await.unwrap();
    }
    let leaving = ids[1];
    c.stop(leaving).await;
    // No waiting: when shutdown returns, the others serve everything, with the data.
    let rest: Vec<_> = ids.iter().copied().filter(|id| *id != leaving).collect();
    let after = c
        .wait_for("partitions served by the rest", Duration::ZERO, |c| {
            c.leaders(&ps)
        })
        .await
        .unwrap();
    for p in &ps {
        assert!(rest.contains(&after[p]), "{p} led by {:?}", after[p]);
        assert_eq!(high_watermark(&c, after[p], *p), Offset(1), "{p}");
    }
    c.stop_all().await;
}
