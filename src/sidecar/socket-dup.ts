/**
 * Descriptors of its own, for the calling thread, of UDP sockets this
 * process has bound: how several threads of the sidecar serve one port.
 *
 * Node 20's dgram has no SO_REUSEPORT (the option came in 22.12), and a
 * socket opened in a second thread from the first one's descriptor
 * (`bind({ fd })`) would leave two handles owning one descriptor: the second
 * close could hit a number already reused. Instead a short-lived child
 * process inherits the descriptors (stdio) and sends them back as dgram
 * sockets over its IPC channel (SCM_RIGHTS): the calling thread receives
 * descriptors of its own for the same sockets, and closes them as any other.
 * All of them read one kernel socket; a datagram goes to one reader.
 */
import { spawn } from 'node:child_process';
import type { Socket } from 'node:dgram';

/** The child: each inherited descriptor (from 4 on) sent back as a dgram socket, then gone. */
const CHILD = `
const dgram = require('node:dgram');
const n = Number(process.argv[1]);
let sent = 0;
for (let k = 0; k < n; k++) {
  const s = dgram.createSocket('udp4');
  s.bind({ fd: 4 + k }, () => {
    process.send({ k }, s, () => {
      s.close();
      if (++sent === n) process.disconnect();
    });
  });
}`;

/** The descriptor of a bound dgram socket of this thread (Node keeps it on the socket's handle). */
export function socketFd(sock: Socket): number {
  const state = Object.getOwnPropertySymbols(sock).find((s) => s.description === 'state symbol');
  const handle = state ? (sock as unknown as Record<symbol, { handle?: { fd?: number } }>)[state]?.handle : undefined;
  const fd = handle?.fd;
  if (typeof fd !== 'number' || fd < 0) throw new Error('the UDP socket has no descriptor (not bound, or closed)');
  return fd;
}

/** Sockets of the calling thread on the same kernel sockets as `fds` (descriptors of this process), in that order. */
export function ownSockets(fds: readonly number[], timeoutMs = 20_000): Promise<Socket[]> {
  return new Promise((resolve, reject) => {
    const got: Socket[] = [];
    let n = 0;
    const child = spawn(process.execPath, ['-e', CHILD, String(fds.length)], { stdio: ['ignore', 'ignore', 'inherit', 'ipc', ...fds], env: {} });
    const fail = (err: Error): void => {
      clearTimeout(timer);
      for (const s of got) s?.close();
      child.kill();
      reject(err);
    };
    const timer = setTimeout(() => fail(new Error(`no UDP descriptors from the helper process within ${timeoutMs} ms`)), timeoutMs);
    child.on('error', fail);
    child.on('message', (m: { k?: number }, sock: Socket | undefined) => {
      if (typeof m.k !== 'number' || sock === undefined) return fail(new Error('the helper process sent something other than a UDP socket'));
      got[m.k] = sock;
      if (++n === fds.length) {
        clearTimeout(timer);
        resolve(got);
      }
    });
    // (a clean exit can come before the last socket is handed over here: the timeout covers a short count)
    child.on('exit', (code, signal) => {
      if (n < fds.length && code !== 0) fail(new Error(`the helper process exited (${signal ?? `code ${code}`}) after ${n} of ${fds.length} UDP descriptors`));
    });
  });
}
