// kafkajs over SASL_SSL: a producer writes COUNT records, a consumer in a group reads them
// back. Prints one JSON line: {"received": [values...]}.
//
// Usage: node kafkajs_sasl.js BOOTSTRAP CA_FILE MECHANISM USER PASSWORD TOPIC GROUP COUNT
//   MECHANISM as kafkajs names it: plain, scram-sha-256, scram-sha-512
'use strict';

const fs = require('fs');
const { Kafka, logLevel } = require('kafkajs');

async function main() {
  const [bootstrap, caFile, mechanism, username, password, topic, group, countArg] = process.argv.slice(2);
  const count = Number(countArg);
  const kafka = new Kafka({
    clientId: 'kafscale-e2e-sasl',
    brokers: [bootstrap],
    logLevel: logLevel.WARN,
    ssl: { ca: [fs.readFileSync(caFile, 'utf-8')] },
    sasl: { mechanism, username, password },
  });
  const producer = kafka.producer();
  await producer.connect();
  const messages = Array.from({ length: count }, (_, i) => ({ value: `js-${i}` }));
  await producer.send({ topic, messages });
  await producer.disconnect();
  const received = [];
  const consumer = kafka.consumer({ groupId: group, maxWaitTimeInMs: 300 });
  await consumer.connect();
  await consumer.subscribe({ topic, fromBeginning: true });
  await consumer.run({ eachMessage: async ({ message }) => { received.push(message.value.toString()); } });
  const deadline = Date.now() + 60000;
  while (received.length < count && Date.now() < deadline) {
    await new Promise((r) => setTimeout(r, 100));
  }
  await consumer.disconnect();
  console.log(JSON.stringify({ received }));
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
