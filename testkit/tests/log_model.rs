//! Any interleaving of flushes, checkpoints, segment merges, DeleteRecords, graceful and
//! ungraceful leadership moves (fence changes) and restarts leaves every partition holding
//! exactly what the acknowledged appends put there: each acknowledged batch at the offsets it
//! was given, nothing else, no offset twice, none skipped, and a broker taking everything
//! over from the stores alone reads the same.
//!
//! Two brokers share memory stores; the test plays the controller (leader records, fences)
//! and the watch (telling each broker what the records say). A model keeps the expected log
//! of each partition.
#![allow(clippy::unwrap_used)]

use bytes::Bytes;
use proptest::prelude::*;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use kafscale_adapters::{MemoryMetadataStore, MemoryObjectStore, SystemClock};
use kafscale_core::log::{
    AppendRequest, CreateTopic, DeleteBefore, LeaderRecord, LogConfig, LogService, ReadRequest,
};
use kafscale_core::ports::metadata::encode_json;
use kafscale_core::ports::{Compare, MetadataStore, MetadataStoreExt, ObjectStore, Txn, TxnOp};
use kafscale_core::schema::keys;
use kafscale_core::{batch, records, BrokerId, LeaderEpoch, Offset, PartitionId, PartitionKey};

const PARTITIONS: i32 = 3;
const BROKERS: usize = 2;

#[derive(Debug, Clone)]
enum Op {
    Append { p: usize, n: usize },
    Checkpoint { b: usize },
    DeleteRecords { p: usize, back: i64 },
    MoveGraceful { p: usize },
    MoveUngraceful { p: usize, old_learns: bool },
    Restart { b: usize },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => (0..PARTITIONS as usize, 1usize..5).prop_map(|(p, n)| Op::Append { p, n }),
        2 => (0..BROKERS).prop_map(|b| Op::Checkpoint { b }),
        1 => (0..PARTITIONS as usize, 0i64..6).prop_map(|(p, back)| Op::DeleteRecords { p, back }),
        2 => (0..PARTITIONS as usize).prop_map(|p| Op::MoveGraceful { p }),
        2 => (0..PARTITIONS as usize, any::<bool>()).prop_map(|(p, old_learns)| Op::MoveUngraceful { p, old_learns }),
        1 => (0..BROKERS).prop_map(|b| Op::Restart { b }),
    ]
}

struct World {
    store: Arc<dyn ObjectStore>,
    meta: Arc<dyn MetadataStore>,
    brokers: Vec<LogService>,
    incarnations: Vec<u64>,
    next_incarnation: u64,
    parts: Vec<PartitionKey>,
    /// Expected log per partition: offset -> value; and the log start.
    model: Vec<(BTreeMap<i64, Vec<u8>>, i64)>,
    tag: u64,
}

fn config(b: usize, incarnation: u64) -> LogConfig {
    LogConfig {
        broker_id: BrokerId(b as i32),
        incarnation,
        attempts: 2,
        // Small enough that rounds merge chunks into segments now and then (a chunk here is
        // about 100-200 bytes)...
        compaction_min_bytes: 1_500,
        // ...and coalesce small chunks before that.
        coalesce_min_chunks: 2,
        coalesce_keep_newest: 1,
        segment_block_bytes: 256,
        checkpoint_interval_ms: 3_600_000,
        ..LogConfig::default()
    }
}

impl World {
    async fn new() -> World {
        let store: Arc<dyn ObjectStore> = Arc::new(MemoryObjectStore::new());
        let meta: Arc<dyn MetadataStore> = Arc::new(MemoryMetadataStore::new());
        let mut brokers = Vec::new();
        let mut incarnations = Vec::new();
        for b in 0..BROKERS {
            let inc = 100 + b as u64;
            brokers.push(open(&store, &meta, b, inc).await);
            incarnations.push(inc);
        }
        let t = brokers[0]
            .create_topic(CreateTopic {
                name: "model".into(),
                partitions: PARTITIONS,
                configs: BTreeMap::new(),
                validate_only: false,
            })
            .await
            .unwrap();
        for b in &brokers[1..] {
            b.install_topic(t.clone());
        }
        let parts: Vec<PartitionKey> = (0..PARTITIONS)
            .map(|p| PartitionKey {
                topic: t.id,
                partition: PartitionId(p),
            })
            .collect();
        let mut w = World {
            store,
            meta,
            brokers,
            incarnations,
            next_incarnation: 1000,
            parts: parts.clone(),
            model: vec![(BTreeMap::new(), 0); PARTITIONS as usize],
            tag: 0,
        };
        for p in parts {
            w.assign(p, 0, false).await;
        }
        w
    }

    fn leader_of(&self, p: PartitionKey) -> usize {
        (0..BROKERS)
            .find(|b| self.brokers[*b].led_partitions().contains(&p))
            .unwrap_or(0)
    }

    /// The controller gives `p` to `to`: the leader record names it with the next epoch; with
    /// `fence`, the previous leader's fence changes in the same transaction. Each broker is
    /// told, except the previous leader when `tell_old` is false.
    async fn assign_with(&mut self, p: PartitionKey, to: usize, fence: bool, tell_old: bool) {
        let key = keys::leader(p);
        let current = self.meta.get_json::<LeaderRecord>(&key).await.unwrap();
        let (record, revision) = match &current {
            Some((r, kv)) => (
                LeaderRecord {
                    leader: Some(BrokerId(to as i32)),
                    leader_epoch: r.leader_epoch.next(),
                    incarnation: self.incarnations[to],
                },
                kv.mod_revision,
            ),
            None => (
                LeaderRecord {
                    leader: Some(BrokerId(to as i32)),
                    leader_epoch: LeaderEpoch(0),
                    incarnation: self.incarnations[to],
                },
                0,
            ),
        };
        let old = current.as_ref().and_then(|(r, _)| r.leader);
        let mut txn = Txn::new()
            .when(Compare::ModRevision {
                key: key.clone(),
                revision,
            })
            .then(TxnOp::Put {
                key,
                value: encode_json(&record),
                lease: None,
            });
        if let (true, Some(old)) = (fence, old) {
            txn = txn.then(TxnOp::Put {
                key: keys::fence(old),
                value: Bytes::from_static(b"{}"),
                lease: None,
            });
        }
        let outcome = self.meta.txn(txn).await.unwrap();
        assert!(outcome.succeeded);
        for (b, log) in self.brokers.iter().enumerate() {
            let is_old = old == Some(BrokerId(b as i32)) && b != to;
            if is_old && !tell_old {
                continue;
            }
            log.observe_leadership(p, record, outcome.revision, b == to);
        }
        let log = &self.brokers[to];
        // Up to 10 s of real time: a take-over that fails once waits its backoff, and a
        // machine busy with parallel builds made 2.5 s too short once.
        for _ in 0..2_000 {
            if log.led_partitions().contains(&p) && log.loading_partitions() == 0 {
                return;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        panic!("broker {to} did not take {p} over");
    }

    async fn assign(&mut self, p: PartitionKey, to: usize, fence: bool) {
        self.assign_with(p, to, fence, true).await;
    }

    async fn apply(&mut self, op: &Op) {
        match *op {
            Op::Append { p, n } => {
                let key = self.parts[p];
                let b = self.leader_of(key);
                self.tag += 1;
                let values: Vec<Vec<u8>> = (0..n)
                    .map(|i| format!("p{p}-t{}-{i}", self.tag).into_bytes())
                    .collect();
                let recs: Vec<batch::SimpleRecord<'_>> =
                    values.iter().map(|v| (None, Some(v.as_slice()))).collect();
                let appended = match self.brokers[b].append(AppendRequest {
                    partition: key,
                    batch: batch::build(&recs, 1_000),
                    wait: true,
                }) {
                    Ok(Some(ticket)) => ticket.await.unwrap(),
                    Ok(None) => unreachable!(),
                    Err(e) => Err(e),
                };
                if let Ok(a) = appended {
                    let (log, _) = &mut self.model[p];
                    let end = log
                        .keys()
                        .next_back()
                        .map_or(0, |o| o + 1)
                        .max(self.model[p].1);
                    assert_eq!(a.base_offset.0, end, "{key}: an offset skipped or reused");
                    let (log, _) = &mut self.model[p];
                    for (i, v) in values.into_iter().enumerate() {
                        log.insert(end + i as i64, v);
                    }
                }
            }
            Op::Checkpoint { b } => {
                let _ = self.brokers[b].checkpoint().await;
            }
            Op::DeleteRecords { p, back } => {
                let key = self.parts[p];
                let b = self.leader_of(key);
                let end = self.model[p]
                    .0
                    .keys()
                    .next_back()
                    .map_or(0, |o| o + 1)
                    .max(self.model[p].1);
                let target = (end - back).max(0);
                if let Ok(start) = self.brokers[b]
                    .delete_records(key, DeleteBefore::Offset(Offset(target)))
                    .await
                {
                    let (log, s) = &mut self.model[p];
                    *s = (*s).max(start.0);
                    let start = *s;
                    log.retain(|o, _| *o >= start);
                }
            }
            Op::MoveGraceful { p } => {
                let key = self.parts[p];
                let from = self.leader_of(key);
                let to = (from + 1) % BROKERS;
                let handed = self.brokers[from]
                    .hand_over(key, BrokerId(to as i32), self.incarnations[to], vec![])
                    .await;
                if handed.is_ok() {
                    let (record, kv) = self
                        .meta
                        .get_json::<LeaderRecord>(&keys::leader(key))
                        .await
                        .unwrap()
                        .unwrap();
                    for (b, log) in self.brokers.iter().enumerate() {
                        log.observe_leadership(key, record, kv.mod_revision, b == to);
                    }
                    for _ in 0..500 {
                        if self.brokers[to].led_partitions().contains(&key)
                            && self.brokers[to].loading_partitions() == 0
                        {
                            break;
                        }
                        tokio::time::sleep(Duration::from_millis(5)).await;
                    }
                }
            }
            Op::MoveUngraceful { p, old_learns } => {
                let key = self.parts[p];
                let from = self.leader_of(key);
                self.assign_with(key, (from + 1) % BROKERS, true, old_learns)
                    .await;
            }
            Op::Restart { b } => {
                self.brokers[b].shutdown().await;
                self.next_incarnation += 1;
                let inc = self.next_incarnation;
                self.brokers[b] = open(&self.store, &self.meta, b, inc).await;
                self.incarnations[b] = inc;
                let t = self.brokers[(b + 1) % BROKERS].topics();
                for t in t {
                    self.brokers[b].install_topic(t);
                }
                // The controller gives the restarted broker's partitions to its new
                // incarnation, fencing the old one.
                for p in self.parts.clone() {
                    let (r, _) = self
                        .meta
                        .get_json::<LeaderRecord>(&keys::leader(p))
                        .await
                        .unwrap()
                        .unwrap();
                    if r.leader == Some(BrokerId(b as i32)) {
                        self.assign(p, b, true).await;
                    } else {
                        let kv = self.meta.get(&keys::leader(p)).await.unwrap().unwrap();
                        self.brokers[b].observe_leadership(p, r, kv.mod_revision, false);
                    }
                }
            }
        }
    }

    /// Every partition reads back exactly the model, from its log start.
    async fn check(&self, log: &LogService, what: &str) {
        for (i, p) in self.parts.iter().enumerate() {
            let (expected, start) = &self.model[i];
            let info = log.partition_info(*p).unwrap();
            assert!(
                info.log_start_offset.0 >= *start,
                "{what} {p}: log start {} below {start}",
                info.log_start_offset.0
            );
            let end = expected.keys().next_back().map_or(0, |o| o + 1).max(*start);
            assert_eq!(info.high_watermark.0, end, "{what} {p}: high watermark");
            let got = read_values(log, *p, info.log_start_offset).await;
            let want: Vec<(i64, Vec<u8>)> = expected
                .range(info.log_start_offset.0..)
                .map(|(o, v)| (*o, v.clone()))
                .collect();
            assert_eq!(got, want, "{what} {p}: records");
        }
    }
}

async fn open(
    store: &Arc<dyn ObjectStore>,
    meta: &Arc<dyn MetadataStore>,
    b: usize,
    inc: u64,
) -> LogService {
    LogService::open_clustered(
        config(b, inc),
        store.clone(),
        meta.clone(),
        Arc::new(SystemClock::new()),
        Arc::new(kafscale_core::log::NoObserver),
    )
    .await
    .unwrap()
}

async fn read_values(log: &LogService, p: PartitionKey, from: Offset) -> Vec<(i64, Vec<u8>)> {
    let mut out = Vec::new();
    let mut next = from;
    loop {
        let r = log
            .read(ReadRequest {
                partition: p,
                offset: next,
                max_bytes: 1 << 20,
                min_one_batch: true,
                current_leader_epoch: None,
            })
            .await
            .unwrap();
        if r.records.is_empty() {
            return out;
        }
        for item in batch::iter(&r.records) {
            let (h, bytes) = item.unwrap();
            for rec in records::iter(&bytes[batch::HEADER_LEN..], h.record_count) {
                let rec = rec.unwrap();
                let offset = h.base_offset + i64::from(rec.offset_delta);
                if offset >= next.0 {
                    out.push((offset, rec.value.unwrap().to_vec()));
                }
            }
            next = Offset(h.last_offset() + 1);
        }
        if next >= r.high_watermark {
            return out;
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, .. ProptestConfig::default() })]

    #[test]
    fn interleavings_keep_exactly_the_acknowledged_records(ops in proptest::collection::vec(op(), 1..30)) {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let mut w = World::new().await;
            for op in &ops {
                w.apply(op).await;
            }
            // Each partition, from its leader.
            for p in w.parts.clone() {
                let b = w.leader_of(p);
                let log = w.brokers[b].clone();
                w.check_one(&log, p).await;
            }
            // A third broker takes everything over from the stores alone.
            let c = open(&w.store, &w.meta, 7, 7777).await;
            for t in w.brokers[0].topics() {
                c.install_topic(t);
            }
            w.brokers.push(c.clone());
            w.incarnations.push(7777);
            for p in w.parts.clone() {
                w.assign(p, 2, true).await;
            }
            w.check(&c, "after takeover").await;
        });
    }
}

impl World {
    async fn check_one(&self, log: &LogService, p: PartitionKey) {
        let i = self.parts.iter().position(|x| *x == p).unwrap();
        let (expected, start) = &self.model[i];
        let info = log.partition_info(p).unwrap();
        let end = expected.keys().next_back().map_or(0, |o| o + 1).max(*start);
        assert_eq!(info.high_watermark.0, end, "{p}: high watermark");
        let got = read_values(log, p, info.log_start_offset).await;
        let want: Vec<(i64, Vec<u8>)> = expected
            .range(info.log_start_offset.0..)
            .map(|(o, v)| (*o, v.clone()))
            .collect();
        assert_eq!(got, want, "{p}: records");
    }
}
