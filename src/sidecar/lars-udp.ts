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
 */
import { createSocket, type Socket, type RemoteInfo } from 'node:dgram';
import type { Agent, HostPick } from '../agent/agent.ts';
import { RouteStatus } from '../agent/route-follower.ts';
import { silentLogger, type Logger } from '../lib/log.ts';
import { RateLimitedLog } from '../lib/ratelog.ts';
import { listenError } from '../http/listen.ts';
import { RouteBudget } from './route-budget.ts';
import {
  larsTypes,
  MsgId,
  RetCode,
  frame,
  intToIp,
  ipToInt,
  parseFrame,
  type GetHostRequest,
  type GetRouteRequest,
  type HostInfo,
  type LarsTypeSet,
  type ReportRequest,
} from './lars-wire.ts';

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

export interface LarsUdpOptions {
  agent: Agent;
  /** Address to bind; default 127.0.0.1. */
  host?: string;
  /** Ports to bind (0 = any free port); default 8888, 8889, 8890. */
  ports?: readonly number[];
  log?: Logger;
  clock?: () => number;
  /** Kernel receive buffer per socket, bytes; default 4 MiB (capped by net.core.rmem_max). */
  recvBufferBytes?: number;
  /** Bound on the routes callers make the agent follow (shared with the HTTP API); default 10000. */
  budget?: RouteBudget;
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

const isRouteId = (n: number): boolean => Number.isInteger(n) && n >= 0;

export class LarsUdpServer {
  private readonly agent: Agent;
  private readonly log: Logger;
  private readonly rateLog: RateLimitedLog;
  private readonly sockets: Socket[] = [];
  private readonly hosts: HostCache;
  private readonly types: LarsTypeSet;
  private readonly budget: RouteBudget;
  private readonly counters = { datagrams: 0, getHost: 0, getRoute: 0, reports: 0, replies: 0, sendErrors: 0 };
  private readonly bad = new Map<string, number>();
  private closed = false;

  private constructor(opts: LarsUdpOptions, hosts: HostCache) {
    this.agent = opts.agent;
    this.log = (opts.log ?? silentLogger()).child({ mod: 'lars-udp' });
    this.rateLog = new RateLimitedLog(this.log, 10_000, opts.clock ?? Date.now);
    this.hosts = hosts;
    this.types = larsTypes();
    this.budget = opts.budget ?? new RouteBudget(opts.agent);
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

  private bind(host: string, port: number, recvBufferBytes: number): Promise<void> {
    return new Promise((resolve, reject) => {
      const sock = createSocket({ type: 'udp4', recvBufferSize: recvBufferBytes });
      const onError = (err: NodeJS.ErrnoException): void => {
        sock.close();
        reject(listenError(err, { port, host, what: 'UDP', portFlag: '--udp-ports', hostFlag: '--udp-host' }));
      };
      sock.once('error', onError);
      sock.bind(port, host, () => {
        sock.off('error', onError);
        // After binding, socket errors (a reply to a vanished client) are counted, never fatal.
        sock.on('error', (err) => {
          this.counters.sendErrors++;
          this.rateLog.warn('socket', { err }, 'UDP socket error');
        });
        sock.on('message', (msg, rinfo) => this.onDatagram(sock, msg, rinfo));
        this.sockets.push(sock);
        resolve();
      });
    });
  }

  /** The bound ports, in the order given. */
  ports(): number[] {
    return this.sockets.map((s) => s.address().port);
  }

  stats(): LarsUdpStats {
    return { ...this.counters, bad: Object.fromEntries(this.bad) };
  }

  private count(kind: string, detail: string, payload?: Buffer, rinfo?: RemoteInfo): void {
    this.bad.set(kind, (this.bad.get(kind) ?? 0) + 1);
    const t = this.rateLog.take(kind);
    if (!t) return;
    this.log.warn(
      { kind, detail, from: rinfo ? `${rinfo.address}:${rinfo.port}` : undefined, untrusted: payload?.subarray(0, 64).toString('hex'), bytes: payload?.length, suppressed: t.suppressed },
      'dropped UDP datagram',
    );
  }

  private onDatagram(sock: Socket, msg: Buffer, rinfo: RemoteInfo): void {
    this.counters.datagrams++;
    if (this.closed) return;
    const f = parseFrame(msg);
    if (!f.ok) {
      this.count(f.kind, f.detail, msg, rinfo);
      return;
    }
    try {
      if (f.msgid === MsgId.getHostRequest) this.getHost(sock, f.body, rinfo);
      else if (f.msgid === MsgId.reportRequest) this.report(f.body, msg, rinfo);
      else this.getRoute(sock, f.body, rinfo);
    } catch (err) {
      // A bug here must not take the sidecar down: count it and move on.
      this.count('internal', (err as Error)?.message ?? String(err), msg, rinfo);
    }
  }

  private send(sock: Socket, buf: Buffer, rinfo: RemoteInfo): void {
    this.counters.replies++;
    sock.send(buf, rinfo.port, rinfo.address);
  }

  private getHost(sock: Socket, req: GetHostRequest, rinfo: RemoteInfo): void {
    this.counters.getHost++;
    let retcode: number;
    let host: HostInfo | undefined;
    if (!isRouteId(req.modid) || !isRouteId(req.cmdid)) {
      this.count(BadRequest.badRoute, `GetHost modid ${req.modid} cmdid ${req.cmdid}`, undefined, rinfo);
      retcode = RetCode.noExist;
    } else if (!this.budget.allows(req.modid, req.cmdid)) {
      this.count(BadRequest.tooManyRoutes, `GetHost ${req.modid}.${req.cmdid}: already following ${this.budget.max} routes`, undefined, rinfo);
      retcode = RetCode.noExist;
    } else {
      let p: HostPick | undefined;
      try {
        p = this.agent.pick(req.modid, req.cmdid);
      } catch {
        // the agent is closing
      }
      if (p === undefined) retcode = RetCode.systemError;
      else if (p.ok) {
        retcode = RetCode.succ;
        host = { ip: this.hosts.intOf(p), port: p.port };
      } else retcode = p.code === 'NO_ROUTE' ? RetCode.noExist : RetCode.overload;
    }
    const body = this.types.GetHostResponse.encode({ seq: req.seq, modid: req.modid, cmdid: req.cmdid, retcode, host }).finish();
    this.send(sock, frame(MsgId.getHostResponse, body), rinfo);
  }

  private report(req: ReportRequest, msg: Buffer, rinfo: RemoteInfo): void {
    this.counters.reports++;
    const h = req.host;
    if (!isRouteId(req.modid) || !isRouteId(req.cmdid)) {
      this.count(BadRequest.badRoute, `Report modid ${req.modid} cmdid ${req.cmdid}`, msg, rinfo);
      return;
    }
    if (h == null || !(h.port >= 1 && h.port <= 65_535)) {
      this.count(BadRequest.badReport, h == null ? 'Report without host' : `Report port ${h.port}`, msg, rinfo);
      return;
    }
    this.agent.report(req.modid, req.cmdid, this.hosts.hostFor(h.ip, h.port), req.retcode, (req.latency_us ?? 0) / 1000);
  }

  private getRoute(sock: Socket, req: GetRouteRequest, rinfo: RemoteInfo): void {
    this.counters.getRoute++;
    const host: HostInfo[] = [];
    if (!isRouteId(req.modid) || !isRouteId(req.cmdid)) {
      this.count(BadRequest.badRoute, `GetRoute modid ${req.modid} cmdid ${req.cmdid}`, undefined, rinfo);
    } else {
      const peek = this.agent.follower.peek(req.modid, req.cmdid);
      // A first GetRoute starts following the route (with the agent's strategy), as GetHost does.
      if (peek === undefined) {
        if (this.budget.allows(req.modid, req.cmdid)) this.agent.getRoute(req.modid, req.cmdid).catch(() => undefined);
        else this.count(BadRequest.tooManyRoutes, `GetRoute ${req.modid}.${req.cmdid}: already following ${this.budget.max} routes`, undefined, rinfo);
      }
      else if (peek.status === RouteStatus.loaded && peek.state !== undefined) {
        for (const h of peek.state.hosts) if (h.state !== 'draining') host.push({ ip: ipToInt(h.ip), port: h.port });
      }
    }
    const body = this.types.GetRouteResponse.encode({ modid: req.modid, cmdid: req.cmdid, host }).finish();
    this.send(sock, frame(MsgId.getRouteResponse, body), rinfo);
  }

  async close(): Promise<void> {
    this.closed = true;
    await Promise.all(this.sockets.splice(0).map((s) => new Promise<void>((r) => s.close(() => r()))));
  }
}
