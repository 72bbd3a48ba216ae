// kafkajs transactions (its own API): a transactional, idempotent producer (one request in
// flight) commits a transaction, aborts one and commits another, each with records for
// partition 0 of TOPIC and offsets for GROUP sent with sendOffsets. Then a kafkajs consumer
// at each isolation level reads the partition from the beginning. Prints one JSON line:
// {"committed": values read with readUncommitted false, "uncommitted": values read with
//  readUncommitted true, "offset": GROUP's committed offset for partition 0}.
//
// Usage: node kafkajs_txn.js BOOTSTRAP TOPIC GROUP
'use strict';

const { Kafka, logLevel } = require('kafkajs');

const ROUNDS = [['c1', 'commit', '3'], ['a1', 'abort', '9'], ['c2', 'commit', '5']];
const PER_ROUND = 5;

async function read(kafka, topic, readUncommitted, count) {
  const consumer = kafka.consumer({
    groupId: `kafkajs-txn-read-${readUncommitted}-${Date.now()}`, maxWaitTimeInMs: 300, readUncommitted,
  });
  await consumer.connect();
  await consumer.subscribe({ topic, fromBeginning: true });
  const out = [];
  let done;
  const finished = new Promise((resolve) => { done = resolve; });
  await consumer.run({
    eachMessage: async ({ message }) => {
      out.push(message.value.toString());
      if (out.length >= count) done();
    },
  });
  const timer = setTimeout(() => done(), 30000);
  await finished;
  clearTimeout(timer);
  await consumer.disconnect();
  return out;
}

async function main() {
  const [bootstrap, topic, group] = process.argv.slice(2);
  const kafka = new Kafka({ clientId: 'kafscale-e2e', brokers: [bootstrap], logLevel: logLevel.WARN });
  const producer = kafka.producer({
    transactionalId: `kafkajs-txn-${Date.now()}`, idempotent: true, maxInFlightRequests: 1,
  });
  await producer.connect();
  for (const [name, outcome, offset] of ROUNDS) {
    const txn = await producer.transaction();
    const messages = [];
    for (let i = 0; i < PER_ROUND; i += 1) messages.push({ value: `${name}-${i}`, partition: 0 });
    await txn.send({ topic, messages });
    await txn.sendOffsets({ consumerGroupId: group, topics: [{ topic, partitions: [{ partition: 0, offset }] }] });
    if (outcome === 'commit') await txn.commit(); else await txn.abort();
  }
  await producer.disconnect();

  const committedCount = PER_ROUND * ROUNDS.filter(([, o]) => o === 'commit').length;
  const committed = await read(kafka, topic, false, committedCount);
  const uncommitted = await read(kafka, topic, true, PER_ROUND * ROUNDS.length);
  const admin = kafka.admin();
  await admin.connect();
  const [{ partitions }] = await admin.fetchOffsets({ groupId: group, topics: [topic] });
  await admin.disconnect();
  const offset = Number(partitions.find((p) => p.partition === 0).offset);
  console.log(JSON.stringify({ committed, uncommitted, offset }));
}

main().catch((e) => { console.error(e); process.exit(1); });
