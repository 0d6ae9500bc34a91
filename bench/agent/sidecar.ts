/**
 * The sidecar under test, alone in its process (bench/agent.ts): `lars
 * agent`'s Sidecar on the bench's nats-server. Answers `cpu` with its own
 * process CPU time (µs resolution), so the parent measures only the sidecar.
 */
import { Sidecar } from '../../src/sidecar/sidecar.ts';
import { childConfig, exitWithParent, toParent } from '../_common.ts';
import type { SidecarChildConfig, ToSidecar } from './messages.ts';

const cfg = childConfig<SidecarChildConfig>();
const sidecar = await Sidecar.start({
  servers: cfg.url,
  agent: { prefix: cfg.prefix, partitions: cfg.partitions, agentId: 'bench-sidecar', strategy: cfg.strategy },
  udp: { host: '127.0.0.1', ports: [0, 0, 0] },
  http: { host: '127.0.0.1', port: 0 },
});
exitWithParent(() => sidecar.close());
process.on('message', (m: ToSidecar) => {
  if (m.type === 'cpu') {
    const u = process.cpuUsage();
    toParent({ type: 'cpu', us: u.user + u.system, stats: { udp: sidecar.udp?.stats(), http: sidecar.http?.stats(), agent: sidecar.agent.stats() } });
  } else if (m.type === 'stop') void sidecar.close().finally(() => process.exit(0));
});
toParent({ type: 'ready', udpPorts: sidecar.udp!.ports(), httpPort: sidecar.http!.port() });
