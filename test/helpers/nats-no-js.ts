/** Mocha hooks: a nats-server without JetStream for the enclosing suite; the returned function gives its URL. */
import { spawn, type ChildProcess } from 'node:child_process';
import { findNatsServer, probePort } from '../../src/nats/natsd.ts';
import { freePort } from './clickhouse-server.ts';
import { waitFor } from './wait.ts';

export function useNatsWithoutJetStream(): () => string {
  let child: ChildProcess;
  let url = '';
  before(async () => {
    const port = await freePort();
    child = spawn(findNatsServer()!, ['-a', '127.0.0.1', '-p', String(port)], { stdio: 'ignore' });
    await waitFor(async () => (await probePort(port)).kind === 'nats', { timeoutMs: 10_000, what: 'nats-server without -js' });
    url = `nats://127.0.0.1:${port}`;
  });
  after(async () => {
    const gone = new Promise((r) => child.once('exit', r));
    child.kill('SIGTERM');
    await gone;
  });
  return () => url;
}
