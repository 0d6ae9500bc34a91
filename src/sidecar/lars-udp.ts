/**
 * Lars' UDP protocol served by the sidecar: GetHost (4 → 5), Report (6),
 * GetRoute (7 → 8) on one or more ports (8888–8890 by default), every port
 * answering every route from the one shared agent. The original puts a route
 * on port 8888 + (modid + cmdid) % 3 and keeps a balancing state per port;
 * here the ports share one route cache and one strategy per route, so a
 * client that sends to the "wrong" port is answered the same.
 *
 * Bad datagrams (short, negative or oversize msglen, msglen not matching the
 * datagram, unknown msgid, a body that is not protobuf) are counted by kind,
 * logged at most once per kind per interval, and dropped without a reply.
 * Every well-formed GetHost and GetRoute gets a reply: Lars' client blocks
 * on recv without a timeout.
 *
 * The hot path allocates nothing of its own per datagram: requests are
 * decoded into one reused record (lars-codec.ts), a GetHost reply is
 * written into a ring of reply buffers (a slot is written again only once
 * its send has left: see `replyBuffer`), and the pick result is the
 * agent's own object, its address converted to Lars' int once.
 */
import { createSocket, type Socket, type RemoteInfo } from 'node:dgram';
import type { HostPick } from '../agent/agent.ts';
import { RouteStatus } from '../agent/route-follower.ts';
import type { RouteState } from '../../schemas/messages.ts';
import { silentLogger, type Logger } from '../lib/log.ts';
import { RateLimitedLog } from '../lib/ratelog.ts';
import { listenError } from '../http/listen.ts';
import { larsTypes, RetCode, intToIp, ipToInt } from './lars-wire.ts';
import { BadDatagram, LarsRequest, MAX_GET_HOST_REPLY_BYTES, MsgId, decodeRequest, encodeGetHostReply, encodeGetRouteReply, getRouteReplyBytes } from './lars-codec.ts';

export const DEFAULT_UDP_PORTS: readonly number[] = [8888, 8889, 8890];
export const DEFAULT_UDP_HOST = '127.0.0.1';

/** Counted beside the bad datagrams: well-formed requests the sidecar cannot act on. */
export const BadRequest = {
  /** modid or cmdid outside 0..2^31-1 (Lars' ids are non-negative int32). */
  badRoute: 'bad_route',
  /** A report without a host, or with port outside 1..65535. */
  badReport: 'bad_report',
  /** A new route while the sidecar follows its maximum (answered RET_NOEXIST / no hosts, not followed). */
  tooManyRoutes: 'too_many_routes',
} as const;
export type BadRequest = (typeof BadRequest)[keyof typeof BadRequest];

/**
 * What the server picks from and reports to: the sidecar's Agent, or a
 * thread's mirror of its routes (pick-mirror.ts).
 */
export interface UdpPicker {
  pick(modid: number, cmdid: number): HostPick;
  report(modid: number, cmdid: number, host: { ip: string; port: number }, retcode: number, latencyMs: number): void;
  readonly follower: { peek(modid: number, cmdid: number): { readonly status: RouteStatus; readonly state?: RouteState | undefined } | undefined };
  /** Starts following the route (GetRoute of a route not followed yet). */
  getRoute(modid: number, cmdid: number): Promise<unknown>;
}

/** The bound on routes callers make the sidecar follow (route-budget.ts). */
export interface UdpBudget {
  readonly max: number;
  /** True when the route is followed, or may be followed from now on. */
  allows(modid: number, cmdid: number): boolean;
}

/** Kinds of dropped datagrams and requests not acted on, in their counter slots' order. */
export const DROP_KINDS: readonly string[] = [...Object.values(BadDatagram), ...Object.values(BadRequest), 'internal'];
const DATAGRAMS = 0;
const GET_HOST = 1;
const GET_ROUTE = 2;
const REPORTS = 3;
const REPLIES = 4;
const SEND_ERRORS = 5;
const DROPS = 6;
/** Counter slots of a server (`LarsUdpOptions.counters`): six counts, then one per drop kind. */
export const UDP_COUNTER_SLOTS = DROPS + DROP_KINDS.length;
/** The counter slot of each drop kind. */
export const DROP_SLOT: ReadonlyMap<string, number> = new Map(DROP_KINDS.map((k, i) => [k, DROPS + i]));

/** The stats of counters laid out as a server keeps them (the sum of several servers' too). */
export function udpStatsOf(c: Float64Array): LarsUdpStats {
  const bad: Record<string, number> = {};
  for (let i = 0; i < DROP_KINDS.length; i++) if (c[DROPS + i]! > 0) bad[DROP_KINDS[i]!] = c[DROPS + i]!;
  return { datagrams: c[DATAGRAMS]!, getHost: c[GET_HOST]!, getRoute: c[GET_ROUTE]!, reports: c[REPORTS]!, replies: c[REPLIES]!, sendErrors: c[SEND_ERRORS]!, bad };
}

export interface LarsUdpOptions {
  agent: UdpPicker;
  /** Address to bind; default 127.0.0.1. */
  host?: string;
  /** Ports to bind (0 = any free port); default 8888, 8889, 8890. */
  ports?: readonly number[];
  log?: Logger;
  clock?: () => number;
  /** Kernel receive buffer per socket, bytes; default 4 MiB (capped by net.core.rmem_max). */
  recvBufferBytes?: number;
  /** Bound on the routes callers make the agent follow (shared with the HTTP API). */
  budget: UdpBudget;
  /** Where the counts are kept (UDP_COUNTER_SLOTS; shared memory in a thread of several); default its own. */
  counters?: Float64Array;
}

export interface LarsUdpStats {
  datagrams: number;
  getHost: number;
  getRoute: number;
  reports: number;
  replies: number;
  sendErrors: number;
  /** Dropped datagrams and requests not acted on, by kind. */
  bad: Record<string, number>;
}

const MAX_HOST_CACHE = 65_536;

/**
 * Pick results by host, and host ints by pick result: a report of a host
 * the sidecar handed out finds the agent's own result object (the agent's
 * identity fast path), and a reply converts an address to an int once.
 */
export class HostCache {
  private readonly ints = new WeakMap<object, number>();
  private readonly byHost = new Map<number, { ip: string; port: number }>();

  /** Lars' int32 of a pick result's address. */
  intOf(h: { ip: string; port: number }): number {
    let n = this.ints.get(h);
    if (n === undefined) {
      n = ipToInt(h.ip);
      this.ints.set(h, n);
      this.remember(n, h);
    }
    return n;
  }

  /** The host object to report for Lars' (ip, port): a pick result when one is known. */
  hostFor(ip: number, port: number): { ip: string; port: number } {
    const k = (ip >>> 0) * 65_536 + port;
    let h = this.byHost.get(k);
    if (h === undefined) {
      h = { ip: intToIp(ip), port };
      this.remember(ip, h);
    }
    return h;
  }

  private remember(ip: number, h: { ip: string; port: number }): void {
    if (this.byHost.size >= MAX_HOST_CACHE) this.byHost.clear();
    this.byHost.set((ip >>> 0) * 65_536 + h.port, h);
  }
}

const isRouteId = (n: number): boolean => n >= 0;

/**
 * Reply buffers in the ring. A slot is written again REPLY_RING replies
 * later; by then its send has left unless the socket's send queue holds
 * that many (the kernel's buffer full), in which case a fresh buffer is
 * taken instead.
 */
const REPLY_RING = 256;

export class LarsUdpServer {
  private readonly agent: UdpPicker;
  private readonly log: Logger;
  private readonly rateLog: RateLimitedLog;
  private readonly sockets: Socket[] = [];
  private readonly hosts: HostCache;
  private readonly budget: UdpBudget;
  private readonly req = new LarsRequest();
  /** Reply buffers, used in turn (REPLY_RING of MAX_GET_HOST_REPLY_BYTES each, in one allocation). */
  private readonly ring: Buffer[];
  private ringAt = 0;
  /** Route hosts of a GetRoute reply: ip, port, ip, port... (grown when a route has more). */
  private routeHosts: Int32Array = new Int32Array(64);
  private readonly c: Float64Array;
  private closed = false;

  private constructor(opts: LarsUdpOptions, hosts: HostCache) {
    this.agent = opts.agent;
    this.log = (opts.log ?? silentLogger()).child({ mod: 'lars-udp' });
    this.rateLog = new RateLimitedLog(this.log, 10_000, opts.clock ?? Date.now);
    this.hosts = hosts;
    // the .proto and the constants agree (checked once, at start)
    larsTypes();
    const slab = Buffer.alloc(REPLY_RING * MAX_GET_HOST_REPLY_BYTES);
    this.ring = Array.from({ length: REPLY_RING }, (_, i) => slab.subarray(i * MAX_GET_HOST_REPLY_BYTES, (i + 1) * MAX_GET_HOST_REPLY_BYTES));
    this.budget = opts.budget;
    this.c = opts.counters ?? new Float64Array(UDP_COUNTER_SLOTS);
  }

  /** Binds every port (all or nothing: a port in use closes the others and rejects). */
  static async start(opts: LarsUdpOptions, hosts = new HostCache()): Promise<LarsUdpServer> {
    const s = new LarsUdpServer(opts, hosts);
    const host = opts.host ?? DEFAULT_UDP_HOST;
    try {
      for (const port of opts.ports ?? DEFAULT_UDP_PORTS) await s.bind(host, port, opts.recvBufferBytes ?? 4 * 2 ** 20);
    } catch (err) {
      await s.close();
      throw err;
    }
    return s;
  }

  /** Serves sockets bound elsewhere (a thread's own descriptors of the sidecar's ports); closes them with itself. */
  static adopt(opts: LarsUdpOptions, sockets: readonly Socket[], hosts = new HostCache()): LarsUdpServer {
    const s = new LarsUdpServer(opts, hosts);
    for (const sock of sockets) s.serve(sock);
    return s;
  }

  private async bind(host: string, port: number, recvBufferBytes: number): Promise<void> {
    this.serve(await bindUdp(host, port, recvBufferBytes));
  }

  private serve(sock: Socket): void {
    // Socket errors (a reply to a vanished client) are counted, never fatal.
    sock.on('error', (err) => {
      this.c[SEND_ERRORS]!++;
      this.rateLog.warn('socket', { err }, 'UDP socket error');
    });
    sock.on('message', (msg, rinfo) => this.onDatagram(sock, msg, rinfo));
    this.sockets.push(sock);
  }

  /** The bound ports, in the order given. */
  ports(): number[] {
    return this.sockets.map((s) => s.address().port);
  }

  stats(): LarsUdpStats {
    return udpStatsOf(this.c);
  }

  private count(kind: string, detail: string, payload?: Buffer, rinfo?: RemoteInfo): void {
    this.c[DROP_SLOT.get(kind) ?? DROP_SLOT.get('internal')!]!++;
    const t = this.rateLog.take(kind);
    if (!t) return;
    this.log.warn(
      { kind, detail, from: rinfo ? `${rinfo.address}:${rinfo.port}` : undefined, untrusted: payload?.subarray(0, 64).toString('hex'), bytes: payload?.length, suppressed: t.suppressed },
      'dropped UDP datagram',
    );
  }

  private onDatagram(sock: Socket, msg: Buffer, rinfo: RemoteInfo): void {
    this.c[DATAGRAMS]!++;
    if (this.closed) return;
    const r = this.req;
    const kind = decodeRequest(msg, r);
    if (kind !== undefined) {
      this.count(kind, r.detail, msg, rinfo);
      return;
    }
    try {
      if (r.msgid === MsgId.getHostRequest) this.getHost(sock, r, rinfo);
      else if (r.msgid === MsgId.reportRequest) this.report(r, msg, rinfo);
      else this.getRoute(sock, r, rinfo);
    } catch (err) {
      // A bug here must not take the sidecar down: count it and move on.
      this.count('internal', (err as Error)?.message ?? String(err), msg, rinfo);
    }
  }

  /** A buffer for a GetHost reply: the next ring slot, or a fresh one while the socket's send queue is long. */
  private replyBuffer(sock: Socket): Buffer {
    if (sock.getSendQueueCount() >= REPLY_RING - 2) return Buffer.allocUnsafe(MAX_GET_HOST_REPLY_BYTES);
    const b = this.ring[this.ringAt]!;
    this.ringAt = this.ringAt + 1 === REPLY_RING ? 0 : this.ringAt + 1;
    return b;
  }

  private send(sock: Socket, buf: Buffer, len: number, rinfo: RemoteInfo): void {
    this.c[REPLIES]!++;
    sock.send(buf, 0, len, rinfo.port, rinfo.address);
  }

  private getHost(sock: Socket, req: LarsRequest, rinfo: RemoteInfo): void {
    this.c[GET_HOST]!++;
    let retcode: number;
    let ip = 0;
    let port = 0;
    let found = false;
    const { modid, cmdid } = req;
    if (!isRouteId(modid) || !isRouteId(cmdid)) {
      this.count(BadRequest.badRoute, `GetHost modid ${modid} cmdid ${cmdid}`, undefined, rinfo);
      retcode = RetCode.noExist;
    } else if (!this.budget.allows(modid, cmdid)) {
      this.count(BadRequest.tooManyRoutes, `GetHost ${modid}.${cmdid}: already following ${this.budget.max} routes`, undefined, rinfo);
      retcode = RetCode.noExist;
    } else {
      let p: HostPick | undefined;
      try {
        p = this.agent.pick(modid, cmdid);
      } catch {
        // the agent is closing
      }
      if (p === undefined) retcode = RetCode.systemError;
      else if (p.ok) {
        retcode = RetCode.succ;
        found = true;
        ip = this.hosts.intOf(p);
        port = p.port;
      } else retcode = p.code === 'NO_ROUTE' ? RetCode.noExist : RetCode.overload;
    }
    const out = this.replyBuffer(sock);
    this.send(sock, out, encodeGetHostReply(out, req.seq, modid, cmdid, retcode, found, ip, port), rinfo);
  }

  private report(req: LarsRequest, msg: Buffer, rinfo: RemoteInfo): void {
    this.c[REPORTS]!++;
    const { modid, cmdid } = req;
    if (!isRouteId(modid) || !isRouteId(cmdid)) {
      this.count(BadRequest.badRoute, `Report modid ${modid} cmdid ${cmdid}`, msg, rinfo);
      return;
    }
    if (!req.hasHost || !(req.hostPort >= 1 && req.hostPort <= 65_535)) {
      this.count(BadRequest.badReport, !req.hasHost ? 'Report without host' : `Report port ${req.hostPort}`, msg, rinfo);
      return;
    }
    this.agent.report(modid, cmdid, this.hosts.hostFor(req.hostIp, req.hostPort), req.retcode, req.latencyUs / 1000);
  }

  private getRoute(sock: Socket, req: LarsRequest, rinfo: RemoteInfo): void {
    this.c[GET_ROUTE]!++;
    const { modid, cmdid } = req;
    let n = 0;
    if (!isRouteId(modid) || !isRouteId(cmdid)) {
      this.count(BadRequest.badRoute, `GetRoute modid ${modid} cmdid ${cmdid}`, undefined, rinfo);
    } else {
      const peek = this.agent.follower.peek(modid, cmdid);
      // A first GetRoute starts following the route (with the agent's strategy), as GetHost does.
      if (peek === undefined) {
        if (this.budget.allows(modid, cmdid)) this.agent.getRoute(modid, cmdid).catch(() => undefined);
        else this.count(BadRequest.tooManyRoutes, `GetRoute ${modid}.${cmdid}: already following ${this.budget.max} routes`, undefined, rinfo);
      } else if (peek.status === RouteStatus.loaded && peek.state !== undefined) {
        const hosts = peek.state.hosts;
        if (this.routeHosts.length < 2 * hosts.length) this.routeHosts = new Int32Array(2 * hosts.length);
        for (const h of hosts) {
          if (h.state === 'draining') continue;
          this.routeHosts[n++] = ipToInt(h.ip);
          this.routeHosts[n++] = h.port;
        }
      }
    }
    const list = this.routeHosts.subarray(0, n);
    // GetRoute is rare: its reply gets a buffer of its own
    const out = Buffer.allocUnsafe(getRouteReplyBytes(modid, cmdid, list));
    this.send(sock, out, encodeGetRouteReply(out, modid, cmdid, list), rinfo);
  }

  async close(): Promise<void> {
    this.closed = true;
    await Promise.all(this.sockets.splice(0).map((s) => new Promise<void>((r) => s.close(() => r()))));
  }
}

/** A UDP socket bound to host:port (a port in use rejects with the CLI's listen error). */
export function bindUdp(host: string, port: number, recvBufferBytes: number): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const sock = createSocket({ type: 'udp4', recvBufferSize: recvBufferBytes });
    const onError = (err: NodeJS.ErrnoException): void => {
      sock.close();
      reject(listenError(err, { port, host, what: 'UDP', portFlag: '--udp-ports', hostFlag: '--udp-host' }));
    };
    sock.once('error', onError);
    sock.bind(port, host, () => {
      sock.off('error', onError);
      resolve(sock);
    });
  });
}
