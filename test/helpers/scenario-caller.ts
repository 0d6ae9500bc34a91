/**
 * A caller process of a real-time scenario run
 * (test/integration/sim-vs-real.test.ts): one agent, and the open-loop load
 * of scenario-calls.ts on it.
 *
 *   node --import tsx test/helpers/scenario-caller.ts '<CallerConfig as JSON>'
 *
 * Talks one JSON object per line: prints {"ready":true} once its agent holds
 * the route with every host, reads {"startAt":<epoch ms>} on stdin, runs the
 * load from that moment, prints {"result":<LoadCounts>}, closes its agent
 * (its last reports delivered) and exits. Stdin closed before a start: it
 * closes its agent and exits.
 */
import { createInterface } from 'node:readline';
import { createAgent } from '../../src/agent/agent.ts';
import { runOpenLoad, type CallerConfig } from './scenario-calls.ts';
import { waitFor } from './wait.ts';

const cfg = JSON.parse(process.argv[2] ?? '') as CallerConfig;

function send(msg: unknown): Promise<void> {
  return new Promise((r) => process.stdout.write(`${JSON.stringify(msg)}\n`, () => r()));
}

const agent = await createAgent({ servers: cfg.url, prefix: cfg.prefix, partitions: cfg.partitions, timeoutMs: cfg.timeoutMs, agentId: `caller-${process.pid}` });
let code = 0;
try {
  await waitFor(async () => ((await agent.getRoute(cfg.modid, cfg.cmdid))?.hosts.length ?? 0) >= cfg.hosts, { what: 'the route with every host', timeoutMs: 10_000 });
  await send({ ready: true });
  const lines = createInterface({ input: process.stdin });
  for await (const line of lines) {
    const msg = JSON.parse(line) as { startAt?: number };
    if (msg.startAt === undefined) continue;
    const result = await runOpenLoad({ agent, modid: cfg.modid, cmdid: cfg.cmdid, ratePerS: cfg.ratePerS, startAt: msg.startAt, durationMs: cfg.durationMs, timeoutMs: cfg.timeoutMs });
    await send({ result });
    break;
  }
  lines.close();
} catch (err) {
  process.stderr.write(`${(err as Error).stack ?? String(err)}\n`);
  code = 1;
} finally {
  await agent.close();
}
process.exit(code);
