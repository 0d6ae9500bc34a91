/**
 * A caller process of the real call-policy tests
 * (test/integration/calls-processes.test.ts): one agent of the SDK, and the
 * open-loop load of calls of call-load.ts on it, through the HTTP
 * integration.
 *
 *   node --import tsx test/helpers/call-caller.ts '<CallCallerConfig as JSON>'
 *
 * Talks one JSON object per line: prints {"ready":true} once its agent holds
 * the route with every host; reads {"startAt":<epoch ms>} on stdin and runs
 * the load from that moment, printing {"stats":<CallLoadCounts>} every
 * 100 ms; on {"stop":true} (or at the end of its `durationMs`) waits for its
 * calls to end, prints {"result":<CallLoadCounts>}, closes its agent (its
 * last reports delivered) and exits. Stdin closed: it stops the same way.
 */
import { createInterface } from 'node:readline';
import { createAgent } from '../../src/agent/agent.ts';
import { runCallLoad, type CallCallerConfig, type CallLoad } from './call-load.ts';
import { waitFor } from './wait.ts';

const cfg = JSON.parse(process.argv[2] ?? '') as CallCallerConfig;
const STATS_EVERY_MS = 100;

function send(msg: unknown): Promise<void> {
  return new Promise((r) => process.stdout.write(`${JSON.stringify(msg)}\n`, () => r()));
}

const agent = await createAgent({
  servers: cfg.url,
  prefix: cfg.prefix,
  partitions: cfg.partitions,
  timeoutMs: cfg.attemptTimeoutMs,
  batchMaxDelayMs: cfg.batchMaxDelayMs ?? 20,
  agentId: `caller-${process.pid}`,
});
let code = 0;
let load: CallLoad | undefined;
let ticker: NodeJS.Timeout | undefined;
try {
  await waitFor(async () => ((await agent.getRoute(cfg.modid, cfg.cmdid))?.hosts.length ?? 0) >= cfg.hosts, { what: 'the route with every host', timeoutMs: 10_000 });
  await send({ ready: true });
  const lines = createInterface({ input: process.stdin });
  const stopped = new Promise<void>((resolve) => {
    lines.on('line', (line) => {
      const msg = JSON.parse(line) as { startAt?: number; stop?: boolean };
      if (msg.startAt !== undefined && load === undefined) {
        load = runCallLoad(agent, cfg, msg.startAt);
        ticker = setInterval(() => void load!.snapshot().then((stats) => send({ stats })), STATS_EVERY_MS);
        void load.done.then(() => resolve());
      }
      if (msg.stop === true) {
        if (load === undefined) resolve();
        else void load.stop();
      }
    });
    lines.on('close', () => {
      if (load === undefined) resolve();
      else void load.stop();
    });
  });
  await stopped;
  if (ticker !== undefined) clearInterval(ticker);
  if (load !== undefined) await send({ result: await load.done });
  lines.close();
} catch (err) {
  process.stderr.write(`${(err as Error).stack ?? String(err)}\n`);
  code = 1;
} finally {
  if (ticker !== undefined) clearInterval(ticker);
  await agent.close();
}
process.exit(code);
