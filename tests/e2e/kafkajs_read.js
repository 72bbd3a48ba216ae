// Reads one partition of a topic from the beginning with kafkajs, until COUNT records or the
// record before the high watermark arrived, and prints one JSON line per record:
// {"o": offset, "k": key, "v": value or null}.
//
// Usage: node kafkajs_read.js BOOTSTRAP TOPIC COUNT
'use strict';

const { Kafka, logLevel } = require('kafkajs');

async function main() {
  const [bootstrap, topic, countArg] = process.argv.slice(2);
  const count = Number(countArg);
  const kafka = new Kafka({ clientId: 'kafscale-e2e', brokers: [bootstrap], logLevel: logLevel.WARN });
  const admin = kafka.admin();
  await admin.connect();
  const [{ high }] = (await admin.fetchTopicOffsets(topic)).filter((p) => p.partition === 0);
  await admin.disconnect();
  const end = BigInt(high);
  const consumer = kafka.consumer({ groupId: `kafkajs-read-${Date.now()}`, maxWaitTimeInMs: 300 });
  await consumer.connect();
  await consumer.subscribe({ topic, fromBeginning: true });
  const out = [];
  let done;
  const finished = new Promise((resolve) => { done = resolve; });
  await consumer.run({
    eachMessage: async ({ message }) => {
      out.push({
        o: message.offset,
        k: message.key === null ? null : message.key.toString(),
        v: message.value === null ? null : message.value.toString(),
      });
      if (out.length >= count || BigInt(message.offset) + 1n >= end) done();
    },
  });
  const timer = setTimeout(() => done(), 60000);
  await finished;
  clearTimeout(timer);
  await consumer.disconnect();
  for (const r of out) console.log(JSON.stringify(r));
}

main().catch((e) => { console.error(e); process.exit(1); });
