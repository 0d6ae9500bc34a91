/**
 * `streams` server-sent event streams following one route on the sidecar
 * (bench/agent.ts), in their own process; counts the route events received.
 */
import { request } from 'node:http';
import { childConfig, exitWithParent, toParent } from '../_common.ts';
import type { FromLoad, SseConfig, ToLoad } from './messages.ts';

const cfg = childConfig<SseConfig>();
let events = 0;
let opened = 0;
const reqs: Array<ReturnType<typeof request>> = [];
for (let i = 0; i < cfg.streams; i++) {
  const req = request({ host: '127.0.0.1', port: cfg.port, path: cfg.path }, (res) => {
    opened++;
    if (opened === cfg.streams) toParent({ type: 'ready' } satisfies FromLoad);
    res.setEncoding('utf8');
    res.on('data', (d: string) => {
      // one `event: route` line per state
      for (let j = d.indexOf('event: route'); j >= 0; j = d.indexOf('event: route', j + 1)) events++;
    });
  });
  req.on('error', () => undefined);
  req.end();
  reqs.push(req);
}
exitWithParent();
process.on('message', (m: ToLoad) => {
  if (m.type === 'stop') process.exit(0);
  if (m.type !== 'run') return;
  const e0 = events;
  const c0 = process.cpuUsage();
  const t0 = performance.now();
  setTimeout(() => {
    const c = process.cpuUsage(c0);
    toParent({ type: 'result', done: 0, failed: 0, lost: 0, ms: performance.now() - t0, cpuUs: c.user + c.system, events: events - e0 } satisfies FromLoad);
  }, m.ms);
});
