/**
 * A service instance that registers itself (run as a child process by the
 * self-registration tests): an HTTP server on 127.0.0.1:<port> answering 200,
 * registered for a route with a heartbeat and a TTL.
 *   argv: <natsUrl> <prefix> <modid> <cmdid> <port> <ttlMs> <heartbeatMs>
 * Prints `ready` once registered. SIGTERM: leaves gracefully (draining, then
 * deregistered), keeping its server up until then, and prints `stopped`.
 * SIGUSR2: blocks its event loop for SELF_BUSY_MS (default 3 s; a CPU-bound
 * stretch), printing `busy` and `idle`. SELF_MAX_STALL_MS sets the heartbeat
 * thread's stall limit; SELF_HEARTBEAT_THREAD=0 heartbeats on the event loop.
 */
import { createServer } from 'node:http';
import { registerSelf } from '../../src/agent/self-register.ts';

const [url, prefix, modid, cmdid, port, ttlMs, heartbeatMs] = process.argv.slice(2);
const server = createServer((_req, res) => {
  res.writeHead(200, { 'content-type': 'text/plain' });
  res.end(`ok ${port}`);
});
await new Promise<void>((r) => server.listen(Number(port), '127.0.0.1', r));
const env = process.env;
const reg = await registerSelf({
  servers: url!,
  prefix: prefix!,
  modid: Number(modid),
  cmdid: Number(cmdid),
  ip: '127.0.0.1',
  port: Number(port),
  ttlMs: Number(ttlMs),
  heartbeatMs: Number(heartbeatMs),
  instance: `svc-${port}`,
  heartbeatThread: env['SELF_HEARTBEAT_THREAD'] !== '0',
  ...(env['SELF_MAX_STALL_MS'] ? { maxStallMs: Number(env['SELF_MAX_STALL_MS']) } : {}),
});
const busyMs = Number(env['SELF_BUSY_MS'] ?? '3000');
console.log('ready');
process.on('SIGUSR2', () => {
  console.log('busy');
  const end = Date.now() + busyMs;
  while (Date.now() < end) {
    // CPU-bound: no timer, no I/O runs meanwhile
  }
  console.log('idle');
});
process.once('SIGTERM', () => {
  void (async () => {
    await reg.stop({ drainMs: 1000 });
    await new Promise<void>((r) => server.close(() => r()));
    console.log('stopped');
    process.exit(0);
  })();
});
