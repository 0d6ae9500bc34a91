/**
 * Load generator for the sidecar's HTTP API (bench/agent.ts), in its own
 * process: undici keep-alive connections, each with `pipelining` requests
 * in flight, each worker sending its next request as its answer arrives.
 */
import { Pool } from 'undici';
import { childConfig, exitWithParent, toParent } from '../_common.ts';
import type { FromLoad, HttpLoadConfig, ToLoad } from './messages.ts';

const cfg = childConfig<HttpLoadConfig>();
const pool = new Pool(`http://127.0.0.1:${cfg.port}`, { connections: cfg.connections, pipelining: cfg.pipelining, keepAliveTimeout: 60_000 });
let done = 0;
let failed = 0;
let stopping = false;

async function worker(): Promise<void> {
  while (!stopping) {
    try {
      const r = await pool.request({ path: cfg.path, method: 'GET' });
      await r.body.text();
      if (r.statusCode === 200) done++;
      else failed++;
    } catch {
      failed++;
    }
  }
}
for (let i = 0; i < cfg.connections * cfg.pipelining; i++) void worker();

exitWithParent(async () => {
  stopping = true;
  await pool.close().catch(() => undefined);
});
process.on('message', (m: ToLoad) => {
  if (m.type === 'stop') {
    stopping = true;
    void pool.destroy().finally(() => process.exit(0));
    return;
  }
  if (m.type !== 'run') return;
  const d0 = done;
  const f0 = failed;
  const c0 = process.cpuUsage();
  const t0 = performance.now();
  setTimeout(() => {
    const c = process.cpuUsage(c0);
    const res: FromLoad = { type: 'result', done: done - d0, failed: failed - f0, lost: 0, ms: performance.now() - t0, cpuUs: c.user + c.system };
    toParent(res);
  }, m.ms);
});
toParent({ type: 'ready' } satisfies FromLoad);
