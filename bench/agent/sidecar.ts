/**
 * The sidecar under test, alone in its process (bench/agent.ts): `lars
 * agent`'s Sidecar on the bench's nats-server. Answers `cpu` with its own
 * process CPU time (µs resolution), so the parent measures only the sidecar.
 * BENCH_SIDECAR_PROF=<dir>: a CPU profile of the whole run (as `node
 * --cpu-prof` writes it) goes into <dir>/sidecar-<pid>.cpuprofile at stop.
 */
import { Session } from 'node:inspector/promises';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Sidecar } from '../../src/sidecar/sidecar.ts';
import { childConfig, exitWithParent, toParent } from '../_common.ts';
import type { SidecarChildConfig, ToSidecar } from './messages.ts';

const cfg = childConfig<SidecarChildConfig>();
const profDir = process.env['BENCH_SIDECAR_PROF'];
let profiler: Session | undefined;
if (profDir) {
  profiler = new Session();
  profiler.connect();
  await profiler.post('Profiler.enable');
  await profiler.post('Profiler.setSamplingInterval', { interval: 100 });
  await profiler.post('Profiler.start');
}
async function writeProfile(): Promise<void> {
  if (!profiler || !profDir) return;
  const { profile } = await profiler.post('Profiler.stop');
  mkdirSync(profDir, { recursive: true });
  writeFileSync(join(profDir, `sidecar-${process.pid}.cpuprofile`), JSON.stringify(profile));
}

const sidecar = await Sidecar.start({
  servers: cfg.url,
  agent: { prefix: cfg.prefix, partitions: cfg.partitions, agentId: 'bench-sidecar', strategy: cfg.strategy },
  udp: { host: '127.0.0.1', ports: [0, 0, 0] },
  http: { host: '127.0.0.1', port: 0 },
  threads: cfg.threads,
});
exitWithParent(() => sidecar.close());
process.on('message', (m: ToSidecar) => {
  if (m.type === 'cpu') {
    const u = process.cpuUsage();
    // (the process's CPU: every thread's)
    toParent({ type: 'cpu', us: u.user + u.system, stats: { udp: sidecar.udp?.stats(), http: sidecar.http?.stats(), agent: sidecar.agent.stats() } });
  } else if (m.type === 'settle') {
    // every report batched and sent, then acknowledged by JetStream (or the flush's deadline passed)
    void sidecar
      .flush({ timeoutMs: m.timeoutMs })
      .then(
        () => undefined,
        (err: unknown) => String(err),
      )
      .then((flushError) => {
        const a = sidecar.agent.stats();
        toParent({ type: 'settled', reports: a.reports, pending: a.pendingReports, dropped: a.droppedReports, udpReports: sidecar.udp?.stats().reports ?? 0, ...(flushError ? { flushError } : {}) });
      });
  } else if (m.type === 'stop') void writeProfile().finally(() => sidecar.close().finally(() => process.exit(0)));
});
toParent({ type: 'ready', udpPorts: sidecar.udp!.ports(), httpPort: sidecar.http!.port() });
