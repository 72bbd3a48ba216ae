// Two kafkajs consumers in one group share a topic; once both own partitions, a kafkajs
// producer writes COUNT records and the consumers read them. Prints one JSON summary line.
//
// Usage: node kafkajs_group.js BOOTSTRAP TOPIC GROUP COUNT
'use strict';

const { Kafka, logLevel } = require('kafkajs');

async function main() {
  const [bootstrap, topic, group, countArg] = process.argv.slice(2);
  const count = Number(countArg);
  const kafka = new Kafka({ clientId: 'kafscale-e2e', brokers: [bootstrap], logLevel: logLevel.WARN });
  const assignments = [[], []];
  const received = [[], []];
  const consumers = [0, 1].map(() =>
    kafka.consumer({
      groupId: group,
      sessionTimeout: 6000,
      heartbeatInterval: 300,
      rebalanceTimeout: 10000,
      // kafkajs heartbeats between fetches: a short long-poll lets it notice rebalances.
      maxWaitTimeInMs: 300,
    }));
  consumers.forEach((c, i) => {
    c.on(c.events.GROUP_JOIN, (e) => {
      assignments[i] = (e.payload.memberAssignment[topic] || []).slice().sort((a, b) => a - b);
    });
  });
  for (const [i, c] of consumers.entries()) {
    await c.connect();
    await c.subscribe({ topic, fromBeginning: true });
    await c.run({
      eachMessage: async ({ partition, message }) => {
        received[i].push({ p: partition, v: message.value.toString() });
      },
    });
  }
  const deadline = Date.now() + 60000;
  const covered = () => assignments[0].length > 0 && assignments[1].length > 0
    && assignments[0].length + assignments[1].length === 4;
  while (!covered()) {
    if (Date.now() > deadline) throw new Error(`no balanced assignment: ${JSON.stringify(assignments)}`);
    await new Promise((r) => setTimeout(r, 100));
  }
  // What the members owned while they consumed (leaving changes it again).
  const owned = assignments.map((a) => a.slice());
  const producer = kafka.producer();
  await producer.connect();
  const messages = [];
  for (let i = 0; i < count; i++) messages.push({ value: `js-${i}`, partition: i % 4 });
  await producer.send({ topic, messages });
  await producer.disconnect();
  while (received[0].length + received[1].length < count) {
    if (Date.now() > deadline) throw new Error(`received ${received[0].length + received[1].length} of ${count}`);
    await new Promise((r) => setTimeout(r, 100));
  }
  for (const c of consumers) await c.disconnect();
  console.log(JSON.stringify({ assignments: owned, received }));
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
