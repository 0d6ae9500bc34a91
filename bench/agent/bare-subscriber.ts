/**
 * The floor of the route-update measurement (bench/agent.ts): a process
 * with one NATS connection and one subscription to the route's subject
 * whose callback does nothing. Its CPU per message is what receiving a
 * message costs any Node process here, before any decoding.
 */
import { connectNats } from '../../src/nats/connect.ts';
import { childConfig, exitWithParent, toParent } from '../_common.ts';
import type { FromSidecar, ToSidecar } from './messages.ts';

const cfg = childConfig<{ url: string; subject: string }>();
const nc = await connectNats({ url: cfg.url, name: 'bench-bare-subscriber', extra: { noAsyncTraces: true } });
let got = 0;
nc.subscribe(cfg.subject, { callback: () => void got++ });
await nc.flush();
exitWithParent(() => nc.close());
process.on('message', (m: ToSidecar) => {
  if (m.type === 'cpu') {
    const u = process.cpuUsage();
    toParent({ type: 'cpu', us: u.user + u.system, stats: { got } } satisfies FromSidecar);
  } else if (m.type === 'stop') void nc.close().finally(() => process.exit(0));
});
toParent({ type: 'ready', udpPorts: [], httpPort: 0 } satisfies FromSidecar);
