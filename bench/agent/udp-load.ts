/**
 * Load generator for Lars' UDP protocol (bench/agent.ts), in its own
 * process. Requests are hand-encoded (the few varints of Lars' wire), so the
 * generator spends little per request.
 *
 * `pairs`: `sockets` × `inflight` slots, each looping GetHost → reply →
 * Report (the host bytes of the reply copied into it) → next GetHost, like
 * Lars' own qps tool with several in flight. A slot whose reply is lost
 * (a full socket buffer) resends after 200 ms and counts it as lost.
 * `poll`: every slot sends one GetHost each `pollEveryMs` (callers
 * following a route by polling it).
 *
 * With one slot per socket (`inflight` 1), each socket is one of Lars' `qps`
 * tool's threads: one request in flight, GetHost then Report. Every GetHost
 * round trip is timed (send to reply, µs, into a histogram of 1 µs buckets)
 * and every Report sent is counted, so the parent can check that each one
 * was acknowledged by JetStream in the end.
 */
import { createSocket, type Socket } from 'node:dgram';
import { childConfig, exitWithParent, toParent } from '../_common.ts';
import type { FromLoad, ToLoad, UdpLoadConfig } from './messages.ts';

const cfg = childConfig<UdpLoadConfig>();

function varint(out: number[], v: number): void {
  while (v >= 0x80) {
    out.push((v & 0x7f) | 0x80);
    v = Math.floor(v / 128);
  }
  out.push(v);
}

function frame(msgid: number, body: number[]): Buffer {
  const b = Buffer.alloc(8 + body.length);
  b.writeInt32LE(msgid, 0);
  b.writeInt32LE(body.length, 4);
  Buffer.from(body).copy(b, 8);
  return b;
}

function getHost(seq: number, m: number, c: number): Buffer {
  const body: number[] = [0x08];
  varint(body, seq);
  body.push(0x10);
  varint(body, m);
  body.push(0x18);
  varint(body, c);
  return frame(4, body);
}

/** Fields 1 (seq) and 4 (retcode), and where field 5 (host) lies, of a GetHostResponse. */
function readReply(d: Buffer): { seq: number; retcode: number; hostAt: number; hostLen: number } | undefined {
  if (d.length < 8 || d.readInt32LE(0) !== 5) return undefined;
  let i = 8;
  let seq = 0;
  let retcode = 0;
  let hostAt = -1;
  let hostLen = 0;
  const rv = (): number => {
    let v = 0;
    let mul = 1;
    for (;;) {
      const b = d[i++]!;
      v += (b & 0x7f) * mul;
      if (b < 0x80) return v;
      mul *= 128;
    }
  };
  while (i < d.length) {
    const tag = d[i++]!;
    if (tag === 0x2a) {
      hostLen = d[i++]!;
      hostAt = i;
      i += hostLen;
    } else {
      const v = rv();
      if (tag === 0x08) seq = v;
      else if (tag === 0x20) retcode = v;
    }
  }
  return { seq, retcode, hostAt, hostLen };
}

interface Slot {
  route: [number, number];
  port: number;
  seq: number;
  sentAt: number;
}

let done = 0;
let failed = 0;
let lost = 0;
let reports = 0;
/** Set by `sent`: no request goes out after it, so the count it answers is final. */
let halted = false;
/** GetHost round trips by µs (the last bucket: that long or longer). */
const HIST_US = 50_000;
let hist = new Uint32Array(HIST_US + 1);
let timed = 0;

function quantile(h: Uint32Array, n: number, q: number): number {
  const want = Math.max(1, Math.ceil(n * q));
  let seen = 0;
  for (let i = 0; i < h.length; i++) {
    seen += h[i]!;
    if (seen >= want) return i;
  }
  return h.length - 1;
}
const sockets: Socket[] = [];
const now = (): number => performance.now();

for (let s = 0; s < cfg.sockets; s++) {
  const sock = createSocket({ type: 'udp4', recvBufferSize: 4 * 2 ** 20, sendBufferSize: 4 * 2 ** 20 });
  sockets.push(sock);
  const slots: Slot[] = [];
  for (let k = 0; k < cfg.inflight; k++) {
    const route = cfg.routes[(s * cfg.inflight + k) % cfg.routes.length]!;
    slots.push({ route, port: cfg.ports[(route[0] + route[1]) % cfg.ports.length]!, seq: k, sentAt: 0 });
  }
  // Report templates per slot: header, modid, cmdid, then the host bytes of the reply.
  const reportHead = slots.map((sl) => {
    const body: number[] = [0x08];
    varint(body, sl.route[0]);
    body.push(0x10);
    varint(body, sl.route[1]);
    return Buffer.from(body);
  });
  const send = (k: number): void => {
    if (halted) return;
    const sl = slots[k]!;
    sl.seq += cfg.inflight;
    sl.sentAt = now();
    sock.send(getHost(sl.seq, sl.route[0], sl.route[1]), sl.port, '127.0.0.1');
  };
  sock.on('message', (d) => {
    const r = readReply(d);
    if (r === undefined) return;
    const k = r.seq % cfg.inflight;
    const sl = slots[k]!;
    if (r.seq !== sl.seq) return; // a late reply to a request already resent
    const us = Math.round((now() - sl.sentAt) * 1000);
    hist[us < HIST_US ? us : HIST_US]!++;
    timed++;
    if (r.retcode === 0 && r.hostAt >= 0) {
      if (cfg.mode === 'pairs' && !halted) {
        const head = reportHead[k]!;
        const body = Buffer.allocUnsafe(head.length + 2 + r.hostLen);
        head.copy(body, 0);
        body[head.length] = 0x1a;
        body[head.length + 1] = r.hostLen;
        d.copy(body, head.length + 2, r.hostAt, r.hostAt + r.hostLen);
        const rep = Buffer.allocUnsafe(8 + body.length);
        rep.writeInt32LE(6, 0);
        rep.writeInt32LE(body.length, 4);
        body.copy(rep, 8);
        sock.send(rep, sl.port, '127.0.0.1');
        reports++;
      }
      done++;
    } else failed++;
    sl.sentAt = 0;
    if (cfg.mode === 'pairs') send(k);
  });
  sock.bind(0, '127.0.0.1', () => {
    if (cfg.mode === 'pairs') for (let k = 0; k < cfg.inflight; k++) send(k);
  });
  const timer = setInterval(() => {
    const t = now();
    for (let k = 0; k < cfg.inflight; k++) {
      const sl = slots[k]!;
      if (cfg.mode === 'poll') {
        if (sl.sentAt !== 0) lost++;
        send(k);
      } else if (sl.sentAt !== 0 && t - sl.sentAt > 200) {
        lost++;
        send(k);
      }
    }
  }, cfg.mode === 'poll' ? cfg.pollEveryMs : 100);
  timer.unref();
}

function send(m: FromLoad): void {
  toParent(m);
}

exitWithParent();
process.on('message', (m: ToLoad) => {
  if (m.type === 'stop') process.exit(0);
  if (m.type === 'sent') {
    halted = true;
    send({ type: 'sent', reports });
    return;
  }
  const d0 = done;
  const f0 = failed;
  const l0 = lost;
  const r0 = reports;
  hist = new Uint32Array(HIST_US + 1);
  timed = 0;
  const c0 = process.cpuUsage();
  const t0 = now();
  setTimeout(() => {
    const c = process.cpuUsage(c0);
    const p50Us = quantile(hist, timed, 0.5);
    const p99Us = quantile(hist, timed, 0.99);
    send({ type: 'result', done: done - d0, failed: failed - f0, lost: lost - l0, ms: now() - t0, cpuUs: c.user + c.system, reports: reports - r0, timed, p50Us, p99Us });
  }, m.ms);
});
send({ type: 'ready' });
