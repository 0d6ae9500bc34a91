/**
 * `lars agent` over Lars' UDP protocol, with a client written here from the
 * protocol description alone (its own protobuf varints, not the project's
 * encoder), against a real nats-server and route node: hosts are handed out,
 * reports reach the route node and a failing host is ejected, and every
 * kind of bad datagram is counted and dropped while the sidecar keeps
 * answering. Each test runs with the ports served by the main thread
 * (`threads: 1`) and by two threads of their own (`threads: 2`).
 */
import { expect } from 'chai';
import { createSocket, type Socket } from 'node:dgram';
import { useCluster, type TestCluster } from '../helpers/cluster.ts';
import { waitFor, waitForEvent } from '../helpers/wait.ts';
import { Sidecar } from '../../src/sidecar/sidecar.ts';
import { UdpThreads } from '../../src/sidecar/udp-threads.ts';
import type { RouteState } from '../../schemas/messages.ts';
import { encode } from '../../schemas/codec.ts';

// ------------------------------------------------------------ a Lars client from the description

function varint(v: bigint): number[] {
  let u = BigInt.asUintN(64, v);
  const out: number[] = [];
  while (u >= 0x80n) {
    out.push(Number(u & 0x7fn) | 0x80);
    u >>= 7n;
  }
  out.push(Number(u));
  return out;
}
/** A varint field (proto3: zero is left off the wire). */
const vfield = (no: number, v: number): number[] => (v === 0 ? [] : [(no << 3) | 0, ...varint(BigInt(v))]);
const lfield = (no: number, bytes: number[]): number[] => [(no << 3) | 2, ...varint(BigInt(bytes.length)), ...bytes];

function datagram(msgid: number, body: number[]): Buffer {
  const b = Buffer.alloc(8 + body.length);
  b.writeInt32LE(msgid, 0);
  b.writeInt32LE(body.length, 4);
  Buffer.from(body).copy(b, 8);
  return b;
}

/** Fields of a protobuf message: number → values (varints as bigint, length-delimited as Buffer). */
function fields(buf: Buffer): Map<number, Array<bigint | Buffer>> {
  const out = new Map<number, Array<bigint | Buffer>>();
  let i = 0;
  const readVarint = (): bigint => {
    let v = 0n;
    let shift = 0n;
    for (;;) {
      const b = buf[i++];
      if (b === undefined) throw new Error('truncated varint');
      v |= BigInt(b & 0x7f) << shift;
      if (b < 0x80) return v;
      shift += 7n;
    }
  };
  while (i < buf.length) {
    const tag = Number(readVarint());
    const no = tag >> 3;
    let val: bigint | Buffer;
    if ((tag & 7) === 0) val = readVarint();
    else if ((tag & 7) === 2) {
      const len = Number(readVarint());
      val = buf.subarray(i, i + len);
      i += len;
    } else throw new Error(`wire type ${tag & 7}`);
    out.set(no, [...(out.get(no) ?? []), val]);
  }
  return out;
}
const int32 = (f: Map<number, Array<bigint | Buffer>>, no: number): number => {
  const v = f.get(no)?.[0];
  return typeof v === 'bigint' ? Number(BigInt.asIntN(32, v)) : 0;
};
const ipString = (n: number): string => [24, 16, 8, 0].map((s) => (n >>> s) & 255).join('.');
const ipInt = (s: string): number => s.split('.').reduce((a, p) => ((a << 8) | Number(p)) | 0, 0);

interface Host {
  ip: string;
  port: number;
}

class LarsClient {
  private readonly sock: Socket = createSocket('udp4');
  private seq = 0;
  private readonly waiting: Array<(m: Buffer) => void> = [];
  readonly ports: number[];

  constructor(ports: number[]) {
    this.ports = ports;
    this.sock.on('message', (m) => this.waiting.shift()?.(m));
  }

  /** Lars' rule: route (modid, cmdid) on port 8888 + (modid + cmdid) % 3, here the i-th port. */
  portOf(modid: number, cmdid: number): number {
    return this.ports[(modid + cmdid) % this.ports.length]!;
  }

  ask(d: Buffer, port: number): Promise<Buffer> {
    return new Promise((resolve, reject) => {
      const t = setTimeout(() => reject(new Error('no reply within 2 s')), 2000);
      this.waiting.push((m) => {
        clearTimeout(t);
        resolve(m);
      });
      this.sock.send(d, port, '127.0.0.1');
    });
  }

  send(d: Buffer, port: number): void {
    this.sock.send(d, port, '127.0.0.1');
  }

  async getHost(modid: number, cmdid: number, port = this.portOf(modid, cmdid)): Promise<{ retcode: number; host?: Host }> {
    const seq = this.seq++;
    const r = await this.ask(datagram(4, [...vfield(1, seq), ...vfield(2, modid), ...vfield(3, cmdid)]), port);
    expect(r.readInt32LE(0), 'reply msgid').to.equal(5);
    expect(r.readInt32LE(4), 'reply msglen').to.equal(r.length - 8);
    const f = fields(r.subarray(8));
    expect([Number(f.get(1)?.[0] ?? 0n), int32(f, 2), int32(f, 3)], 'seq, modid, cmdid echoed').to.deep.equal([seq, modid, cmdid]);
    const retcode = int32(f, 4);
    const h = f.get(5)?.[0];
    if (!Buffer.isBuffer(h)) return { retcode };
    const hf = fields(h);
    return { retcode, host: { ip: ipString(int32(hf, 1)), port: int32(hf, 2) } };
  }

  report(modid: number, cmdid: number, host: Host, retcode: number): void {
    const hostBytes = [...vfield(1, ipInt(host.ip)), ...vfield(2, host.port)];
    this.send(datagram(6, [...vfield(1, modid), ...vfield(2, cmdid), ...lfield(3, hostBytes), ...vfield(4, retcode)]), this.portOf(modid, cmdid));
  }

  async getRoute(modid: number, cmdid: number): Promise<Host[]> {
    const r = await this.ask(datagram(7, [...vfield(1, modid), ...vfield(2, cmdid)]), this.portOf(modid, cmdid));
    expect(r.readInt32LE(0), 'reply msgid').to.equal(8);
    const f = fields(r.subarray(8));
    return (f.get(3) ?? []).map((h) => {
      const hf = fields(h as Buffer);
      return { ip: ipString(int32(hf, 1)), port: int32(hf, 2) };
    });
  }

  /** Sends raw bytes and then a GetHost: its reply proves the bytes before it were handled. */
  async raw(d: Buffer, port: number): Promise<void> {
    this.send(d, port);
    await this.getHost(0, 0, port);
  }

  close(): void {
    this.sock.close();
  }
}

const key = (h: Host | undefined): string => (h ? `${h.ip}:${h.port}` : 'none');

/** Until every UDP thread's mirror has the route states the agent applied (at once with one thread). */
const mirrored = async (sc: Sidecar): Promise<void> => void await waitFor(() => !(sc.udp instanceof UdpThreads) || sc.udp.inSync(), { what: 'route states in every UDP thread' });

for (const threads of [1, 2]) describe(`sidecar over UDP, ${threads} thread${threads > 1 ? 's' : ''} (real nats-server, route node, client from the protocol description)`, function () {
  this.timeout(60_000);
  const cluster = useCluster();
  let c: TestCluster;
  let sidecar: Sidecar;
  let client: LarsClient;
  beforeEach(async () => {
    c = cluster();
    // swrr: every host within a few picks, even right after a pick that was never reported (p2c_ewma avoids such a host for up to its timeout)
    sidecar = await Sidecar.start({ nc: await c.connection(), agent: { prefix: c.prefix, partitions: 8, batchMaxDelayMs: 5, loadTimeoutMs: 500, strategy: 'swrr' }, udp: { ports: [0, 0, 0] }, threads });
    client = new LarsClient(sidecar.udp!.ports());
  });
  afterEach(async () => {
    client.close();
    await sidecar.close();
  });

  it('sidecar-udp - hands out hosts, takes reports, and stops handing out a host ejected after failures', async () => {
    const hs = [1, 2, 3].map((i) => ({ ip: `127.0.0.${i}`, port: 9001, weight: 100 }));
    await c.addRoute(1, 1, hs, 'default', { base_ejection_time: 60 });
    await waitFor(() => c.latest(1, 1), { what: 'route 1.1 published' });
    const first = await client.getHost(1, 1);
    expect(first.retcode, 'first call for a route the sidecar does not follow yet: RET_NOEXIST').to.equal(3);
    await waitFor(async () => (await client.getHost(1, 1)).retcode === 0, { what: 'route loaded in the sidecar' });
    await mirrored(sidecar);
    const seen = new Set<string>();
    for (let i = 0; i < 30; i++) {
      const r = await client.getHost(1, 1);
      expect(r.retcode).to.equal(0);
      seen.add(key(r.host));
      client.report(1, 1, r.host!, 0);
    }
    expect([...seen].sort()).to.deep.equal(['127.0.0.1:9001', '127.0.0.2:9001', '127.0.0.3:9001']);
    expect((await client.getRoute(1, 1)).map(key).sort()).to.deep.equal([...seen].sort());
    // any of the sidecar's ports answers any route
    expect((await client.getHost(1, 1, client.ports[(1 + 1 + 1) % 3])).retcode).to.equal(0);

    for (let i = 0; i < 20; i++) client.report(1, 1, { ip: '127.0.0.2', port: 9001 }, 1);
    await waitForEvent(c.events.subscribe, (e) => e.modid === 1 && e.cmdid === 1 && e.ip === '127.0.0.2' && e.to === 'overloaded', { what: '127.0.0.2 ejected' });
    await waitFor(async () => {
      for (let i = 0; i < 12; i++) if (key((await client.getHost(1, 1)).host) === '127.0.0.2:9001') return false;
      return true;
    }, { what: 'the ejected host no longer handed out' });
    const after = new Map<string, number>();
    for (let i = 0; i < 60; i++) {
      const k = key((await client.getHost(1, 1)).host);
      after.set(k, (after.get(k) ?? 0) + 1);
    }
    expect([...after.keys()].sort()).to.deep.equal(['127.0.0.1:9001', '127.0.0.3:9001']);
    const st = sidecar.agent.stats();
    expect(st.reports, 'reports reached the agent').to.be.at.least(50);
    await sidecar.agent.flush({ timeoutMs: 5000 });
    expect(sidecar.agent.stats().pendingReports, 'acknowledged by JetStream').to.equal(0);
    expect(sidecar.stats().udp!.bad).to.deep.equal({});
  });

  it('sidecar-udp - with the lars strategy and profile, clients see what the original shows: after 20 errors on one of three hosts, 33 calls split 3 / 15 / 15', async () => {
    const lars = await Sidecar.start({ nc: await c.connection(), agent: { prefix: c.prefix, partitions: 8, batchMaxDelayMs: 5, strategy: 'lars' }, udp: { ports: [0, 0, 0] }, threads });
    const cl = new LarsClient(lars.udp!.ports());
    try {
      const hs = [1, 2, 3].map((i) => ({ ip: `127.0.2.${i}`, port: 9100, weight: 100 }));
      await c.addRoute(4, 2, hs, 'lars');
      await waitFor(async () => (await cl.getHost(4, 2)).retcode === 0, { what: 'route 4.2 loaded' });
      for (let i = 0; i < 20; i++) cl.report(4, 2, { ip: '127.0.2.2', port: 9100 }, 1);
      await waitFor(() => {
        const v = lars.agent.follower.state(4, 2);
        return v.status === 'loaded' && v.state.hosts.find((h) => h.ip === '127.0.2.2')?.state === 'overloaded';
      }, { what: '127.0.2.2 overloaded in the sidecar' });
      await mirrored(lars);
      const split = new Map<string, number>();
      for (let i = 0; i < 33; i++) {
        const r = await cl.getHost(4, 2);
        expect(r.retcode).to.equal(0);
        split.set(r.host!.ip, (split.get(r.host!.ip) ?? 0) + 1);
      }
      if (threads === 1) expect(Object.fromEntries(split)).to.deep.equal({ '127.0.2.1': 15, '127.0.2.2': 3, '127.0.2.3': 15 });
      else {
        // each thread keeps Lars' counter: one probe in 11 of its own calls, so 3 probes less at most one per further thread
        const probes = split.get('127.0.2.2') ?? 0;
        expect(probes, 'probes of the overloaded host').to.be.within(3 - (threads - 1), 3);
        const [a, b] = [split.get('127.0.2.1') ?? 0, split.get('127.0.2.3') ?? 0];
        expect(a + b).to.equal(33 - probes);
        expect(Math.abs(a - b), 'round robin over the two idle hosts in each thread').to.be.at.most(threads);
      }
    } finally {
      cl.close();
      await lars.close();
    }
  });

  it('sidecar-udp - addresses from 128.0.0.0 up travel as negative int32, and a route with no host to pick answers RET_OVERLOAD', async () => {
    await c.addRoute(2, 5, [{ ip: '200.1.2.3', port: 8080, weight: 100 }]);
    await waitFor(async () => (await client.getHost(2, 5)).retcode === 0, { what: 'route 2.5 loaded' });
    await mirrored(sidecar);
    expect((await client.getHost(2, 5)).host).to.deep.equal({ ip: '200.1.2.3', port: 8080 });

    // A route the route node does not own here: its states are published by the test.
    expect((await client.getHost(900, 1)).retcode).to.equal(3);
    const state = (version: number): RouteState => ({
      v: 1, sender: 'test', modid: 900, cmdid: 1, version, ts: Date.now(), profile: 'default', panic: false, removed: false, probe_num: 10,
      hosts: [{ ip: '10.9.0.1', port: 80, weight: 100, zone: null, state: 'overloaded', reason: 'consecutive_errors', since: 0, pick_weight: 0 }],
    });
    let v = 1;
    await waitFor(async () => {
      c.nc.publish(c.n.route(900, 1), encode(state(v++)));
      return (await client.getHost(900, 1)).retcode === 1;
    }, { what: 'RET_OVERLOAD for a route with every host ejected' });
    await mirrored(sidecar);
    expect(await client.getRoute(900, 1)).to.deep.equal([{ ip: '10.9.0.1', port: 80 }]);
    expect(await client.getRoute(901, 1), 'unknown route: no hosts').to.deep.equal([]);
  });

  it('sidecar-udp - with hundreds of requests in flight from many sockets, every reply is the answer to its own request', async () => {
    const hs = [1, 2, 3].map((i) => ({ ip: `127.0.0.${i}`, port: 9100 + i, weight: 100 }));
    await c.addRoute(3, 1, hs);
    await waitFor(async () => (await client.getHost(3, 1)).retcode === 0, { what: 'route 3.1 loaded' });
    // (with several threads: every thread has the route, as the one thread has)
    await mirrored(sidecar);
    const socks = Array.from({ length: 8 }, () => createSocket('udp4'));
    const perSock = 300;
    const valid = new Set(hs.map((h) => `${ipInt(h.ip)}:${h.port}`));
    let wrong = 0;
    let replies = 0;
    const all = Promise.all(
      socks.map(
        (sock, si) =>
          new Promise<void>((resolve) => {
            const seen = new Set<number>();
            let next = 0;
            const sendNext = (): void => {
              if (next >= perSock) return;
              const k = next++;
              const seq = si * 100_000 + k;
              const modid = k % 2 === 0 ? 3 : 400 + (k % 50);
              sock.send(datagram(4, [...vfield(1, seq), ...vfield(2, modid), ...vfield(3, 1)]), client.ports[k % 3]!, '127.0.0.1');
            };
            sock.on('message', (m) => {
              const f = fields(m.subarray(8));
              const seq = Number(f.get(1)?.[0] ?? 0n);
              // seq encodes the socket and the request; modid tells a known route (3) from an unknown one (400 + i)
              const modid = int32(f, 2);
              const known = seq % 2 === 0;
              const h = f.get(5)?.[0];
              const host = Buffer.isBuffer(h) ? `${int32(fields(h), 1)}:${int32(fields(h), 2)}` : undefined;
              const right = m.readInt32LE(0) === 5 && m.readInt32LE(4) === m.length - 8 && Math.floor(seq / 100_000) === si && !seen.has(seq) &&
                (known ? modid === 3 && int32(f, 4) === 0 && host !== undefined && valid.has(host) : modid === 400 + (seq % 100_000) % 50 && int32(f, 4) === 3 && host === undefined);
              if (!right) wrong++;
              seen.add(seq);
              replies++;
              if (seen.size === perSock) resolve();
              sendNext();
            });
            // 50 in flight per socket, 400 in all: more than the sidecar's ring of reply buffers
            for (let k = 0; k < 50; k++) sendNext();
          }),
      ),
    );
    let timer: NodeJS.Timeout | undefined;
    try {
      await Promise.race([all, new Promise((_, reject) => (timer = setTimeout(() => reject(new Error(`${replies} of ${socks.length * perSock} replies within 10 s`)), 10_000)))]);
    } finally {
      clearTimeout(timer);
      for (const s of socks) s.close();
    }
    expect(wrong, 'replies not matching their request').to.equal(0);
    expect(replies).to.equal(socks.length * perSock);
  });

  it('sidecar-udp - every kind of bad datagram is counted and dropped; the sidecar keeps answering', async () => {
    const port = client.ports[0]!;
    const hdr = (msgid: number, len: number): Buffer => {
      const b = Buffer.alloc(8);
      b.writeInt32LE(msgid, 0);
      b.writeInt32LE(len, 4);
      return b;
    };
    const good = datagram(4, [...vfield(1, 1), ...vfield(2, 1), ...vfield(3, 1)]);
    await client.raw(Buffer.from([4, 0, 0]), port); // short
    await client.raw(hdr(4, -5), port); // negative msglen
    await client.raw(Buffer.concat([hdr(4, 70_000), Buffer.alloc(100)]), port); // oversize msglen
    await client.raw(good.subarray(0, good.length - 2), port); // truncated
    await client.raw(Buffer.concat([hdr(42, 2), Buffer.from([8, 1])]), port); // unknown msgid
    await client.raw(Buffer.concat([hdr(4, 3), Buffer.from([8, 0x80, 0x80])]), port); // body not protobuf
    await client.raw(datagram(6, [...vfield(1, 1), ...vfield(2, 1), ...vfield(4, 1)]), port); // report without host
    const neg = await client.getHost(-3, 1, port); // well-formed, impossible route: still a reply
    expect(neg.retcode).to.equal(3);
    // (with several threads, a datagram and the GetHost after it may be read by two threads)
    await waitFor(() => Object.values(sidecar.stats().udp!.bad).reduce((a, b) => a + b, 0) >= 8, { what: 'the bad datagrams counted' });
    const before = { ...sidecar.stats().udp!.bad };
    // a big datagram (60 kB of unknown fields in a GetHost) is still well-formed
    const padded = datagram(4, [...vfield(1, 99), ...vfield(2, 1), ...vfield(3, 1), ...lfield(14, Array.from({ length: 60_000 }, () => 1))]);
    // random garbage from another socket: every datagram counted as something, no crash
    const noise = createSocket('udp4');
    const sent = 3000;
    for (let i = 0; i < sent; i++) {
      const len = Math.floor(Math.random() * 40);
      const d = Buffer.alloc(len);
      for (let j = 0; j < len; j++) d[j] = Math.floor(Math.random() * 256);
      if (len >= 8 && i % 2 === 0) d.writeInt32LE([4, 6, 7][i % 3]!, 0); // half with a known msgid
      if (len >= 8 && i % 4 === 0) d.writeInt32LE(len - 8, 4); // a quarter with a matching msglen too
      noise.send(d, port, '127.0.0.1');
      if (i % 200 === 0) await new Promise((r) => setImmediate(r));
    }
    await waitFor(() => sidecar.stats().udp!.datagrams >= sent + 9, { what: 'the noise received' }).catch(() => undefined);
    noise.close();
    const st = sidecar.stats().udp!;
    expect(st.datagrams, 'datagrams received (loopback may drop some under a burst)').to.be.greaterThan(sent / 2);
    const accounted = (u: typeof st): number => Object.values(u.bad).reduce((a, b) => a + b, 0) + u.getHost + u.getRoute + u.reports;
    // every datagram is a request or a counted kind (a thread may be between counting one and its kind)
    await waitFor(() => {
      const u = sidecar.stats().udp!;
      return accounted(u) >= u.datagrams;
    }, { what: 'every datagram a request or a counted kind' });
    const big = await client.ask(padded, port);
    expect([big.readInt32LE(0), fields(big.subarray(8)).get(1)?.[0]]).to.deep.equal([5, 99n]);
    expect(before).to.deep.equal({
      short: 1,
      negative_length: 1,
      oversize: 1,
      length_mismatch: 1,
      unknown_msgid: 1,
      malformed: 1,
      bad_report: 1,
      bad_route: 1,
    });
    const after = sidecar.stats().udp!;
    expect(after.replies, 'one reply per well-formed GetHost or GetRoute').to.equal(after.getHost + after.getRoute);
  });

  it('sidecar-udp - callers cannot make the sidecar follow more routes than its bound, over either API', async () => {
    const small = await Sidecar.start({ nc: await c.connection(), agent: { prefix: c.prefix, partitions: 8, loadTimeoutMs: 200 }, udp: { ports: [0] }, http: { port: 0 }, maxRoutes: 2, threads });
    const cl = new LarsClient(small.udp!.ports());
    // with several threads, a thread asks the main thread to follow a route after its reply
    const refused = async (n: number): Promise<void> => void await waitFor(() => (small.stats().udp!.bad['too_many_routes'] ?? 0) >= n, { what: `${n} routes refused` });
    try {
      expect((await cl.getHost(40, 1)).retcode).to.equal(3);
      expect(await cl.getRoute(40, 2)).to.deep.equal([]);
      await waitFor(() => small.agent.stats().routes === 2, { what: 'two routes followed' });
      expect((await cl.getHost(40, 3)).retcode, 'a third route: not followed').to.equal(3);
      await refused(1);
      expect(await cl.getRoute(40, 4)).to.deep.equal([]);
      await refused(2);
      expect(small.agent.stats().routes).to.equal(2);
      expect(small.stats().udp!.bad).to.deep.equal({ too_many_routes: 2 });
      const r = await fetch(`http://127.0.0.1:${small.http!.port()}/v1/host?modid=40&cmdid=5`);
      expect(r.status).to.equal(503);
      expect(await r.json()).to.deep.include({ ok: false, code: 'TOO_MANY_ROUTES' });
      const known = await fetch(`http://127.0.0.1:${small.http!.port()}/v1/host?modid=40&cmdid=1`);
      expect(known.status, 'a followed route is still served').to.equal(404);
      await known.body?.cancel();
      expect(small.agent.stats().routes).to.equal(2);
    } finally {
      cl.close();
      await small.close();
    }
  });
});
