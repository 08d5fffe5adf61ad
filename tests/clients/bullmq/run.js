// BullMQ (all Lua scripts and streams) running jobs end to end against a server: plain jobs,
// a delayed one, one that fails once and is retried, one that fails for good, priorities, and
// a QueueEvents listener that follows the events stream with XREAD BLOCK.
//
//     node run.js PORT [CA_FILE]   (a CA file means TLS)
'use strict';
const fs = require('fs');
const { Queue, Worker, QueueEvents } = require('bullmq');

const [port, ca] = process.argv.slice(2);
const connection = { host: '127.0.0.1', port: Number(port), maxRetriesPerRequest: null };
if (ca) connection.tls = { ca: fs.readFileSync(ca), checkServerIdentity: () => undefined };

const name = `q${ca ? 'tls' : 'plain'}${process.pid}`;
const PLAIN = 20;

async function main() {
  const queue = new Queue(name, { connection });
  const events = new QueueEvents(name, { connection });
  await events.waitUntilReady();
  const seen = { completed: new Set(), failed: new Set() };
  events.on('completed', ({ jobId }) => seen.completed.add(jobId));
  events.on('failed', ({ jobId }) => seen.failed.add(jobId));

  const order = [];
  const worker = new Worker(
    name,
    async (job) => {
      order.push(job.name);
      if (job.name === 'flaky' && job.attemptsMade === 0) throw new Error('first try fails');
      if (job.name === 'doomed') throw new Error('always fails');
      return { doubled: job.data.n * 2 };
    },
    { connection, concurrency: 4 },
  );

  const jobs = [];
  for (let i = 0; i < PLAIN; i++) jobs.push(await queue.add('plain', { n: i }));
  jobs.push(await queue.add('delayed', { n: 100 }, { delay: 300 }));
  jobs.push(await queue.add('flaky', { n: 7 }, { attempts: 2, backoff: { type: 'fixed', delay: 50 } }));
  jobs.push(await queue.add('urgent', { n: 1 }, { priority: 1 }));
  const doomed = await queue.add('doomed', { n: 0 }, { attempts: 1 });

  const deadline = Date.now() + 60000;
  while (seen.completed.size < jobs.length || seen.failed.size < 1) {
    if (Date.now() > deadline) throw new Error(`timed out: ${JSON.stringify(await queue.getJobCounts())}`);
    await new Promise((r) => setTimeout(r, 20));
  }
  const counts = await queue.getJobCounts('completed', 'failed', 'waiting', 'delayed', 'active');
  const expect = { completed: jobs.length, failed: 1, waiting: 0, delayed: 0, active: 0 };
  for (const [k, v] of Object.entries(expect)) {
    if (counts[k] !== v) throw new Error(`${k}: ${counts[k]} != ${v} (${JSON.stringify(counts)})`);
  }
  const results = await Promise.all(jobs.map((j) => queue.getJob(j.id)));
  for (const j of results) {
    if (!j.returnvalue || j.returnvalue.doubled !== j.data.n * 2) throw new Error(`job ${j.id}: ${JSON.stringify(j.returnvalue)}`);
  }
  const failed = await queue.getJob(doomed.id);
  if (failed.failedReason !== 'always fails') throw new Error(`doomed: ${failed.failedReason}`);
  if (!seen.failed.has(doomed.id)) throw new Error('no failed event for the doomed job');
  await worker.close();
  await events.close();
  await queue.obliterate({ force: true });
  await queue.close();
  console.log(`ok ${jobs.length} completed, 1 failed, ${order.length} runs`);
}

main().then(
  () => process.exit(0),
  (e) => {
    console.error(e);
    process.exit(1);
  },
);
