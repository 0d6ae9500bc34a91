/**
 * The history recorder of a nemesis run, on connections of its own:
 * - one observer per nats-server (pinned to it: when one server is down or
 *   paused the others still see): a raw subscriber on `<prefix>.route.>`
 *   (sender, version, content hash without `ts`, receive time) and a watch
 *   of the leases bucket (every stored lease revision with its server
 *   timestamp);
 * - a sampler reading every lease key every 200 ms (fills what a watch
 *   misses while it re-subscribes: the bucket keeps one value per key);
 * - a poller of every node's /readyz and /metrics every 500 ms;
 * - a JetStream write probe (a replicated bucket of its own) that says when
 *   the bus answers writes again after a fault.
 * Entries are merged by identity (lease: partition, holder and the holder's
 * clock in the record, as one record has been seen at two revisions; state: route,
 * sender, version, ts and hash), keeping the earliest receipt; a lease write
 * seen under a second revision is kept as evidence.
 */
import { monitorEventLoopDelay, type IntervalHistogram } from 'node:perf_hooks';
import type { KV } from '@nats-io/kv';
import { jetstreamManager } from '@nats-io/jetstream';
import { connectNats, type NatsConnection } from '../../src/nats/connect.ts';
import { bindBucket, openBucket } from '../../src/nats/buckets.ts';
import { clusterNames } from '../../src/cluster/names.ts';
import { decodeLease } from '../../src/cluster/leases.ts';
import { tryDecode } from '../../schemas/codec.ts';
import { validateRouteState } from '../../schemas/messages.ts';
import { names as makeNames, partitionOf, type Names } from '../../schemas/subjects.ts';
import { stateHash } from './hash.ts';
import type { LeaseEntry, ReadySample, Renumbered, RouteMsg } from './types.ts';

/** Observer connections notice a paused server within ~2 s instead of the clients' default 20 s. */
const OBSERVER = { pingInterval: 1000, maxPingOut: 2, noAsyncTraces: true } as const;
const SAMPLE_MS = 200;
const READY_MS = 500;
const TICK_MS = 50;
const STALL_MS = 100;

export interface RecorderOptions {
  /** Each server's client URL. */
  serverUrls: string[];
  prefix: string;
  partitions: number;
  /** Nodes to poll: id and --http port. */
  nodes: Array<{ name: string; httpPort: number }>;
}

interface Entryish {
  key: string;
  revision: number;
  created: Date;
  operation: string;
  value: Uint8Array;
}

export class Recorder {
  readonly leases = new Map<string, LeaseEntry>();
  /** Lease writes seen under more than one revision, by write identity. */
  readonly renumbered = new Map<string, Renumbered>();
  readonly routeMsgs = new Map<string, RouteMsg>();
  readonly ready: ReadySample[] = [];
  readonly sampleFailures: number[] = [];
  /** Stretches when this process' event loop stood still for over STALL_MS. */
  readonly stalls: Array<{ from: number; to: number }> = [];
  private readonly n: Names;
  private readonly cn: ReturnType<typeof clusterNames>;
  private readonly conns: NatsConnection[] = [];
  private readonly timers: NodeJS.Timeout[] = [];
  private readonly stops: Array<() => void> = [];
  private readonly lag: IntervalHistogram;
  private stopped = false;
  private sampling = false;
  private polling = false;
  private probe: { nc: NatsConnection; kv: KV } | undefined;
  private readonly o: RecorderOptions;

  private constructor(o: RecorderOptions) {
    this.o = o;
    this.n = makeNames(o.prefix);
    this.cn = clusterNames(o.prefix);
    this.lag = monitorEventLoopDelay({ resolution: 20 });
  }

  static async start(o: RecorderOptions): Promise<Recorder> {
    const r = new Recorder(o);
    r.lag.enable();
    for (const [i, url] of o.serverUrls.entries()) {
      const nc = await connectNats({ url, name: 'nemesis-observer', extra: { ...OBSERVER, ignoreClusterUpdates: true } });
      r.conns.push(nc);
      nc.subscribe(r.n.routeAll, { callback: (_e, m) => r.onRoute(m.data) });
      void r.watchLeases(nc, `watch-${i}`);
    }
    const all = o.serverUrls.join(',');
    const sampler = await connectNats({ url: all, name: 'nemesis-sampler', extra: OBSERVER });
    r.conns.push(sampler);
    r.timers.push(setInterval(() => void r.sample(sampler), SAMPLE_MS));
    r.timers.push(setInterval(() => void r.poll(), READY_MS));
    // a timeline of this process' stalls: a receipt inside one may be late by the harness' doing
    let last = Date.now();
    r.timers.push(
      setInterval(() => {
        const now = Date.now();
        if (now - last - TICK_MS > STALL_MS) r.stalls.push({ from: last + TICK_MS, to: now });
        last = now;
      }, TICK_MS),
    );
    const probe = await connectNats({ url: all, name: 'nemesis-probe', extra: OBSERVER });
    r.conns.push(probe);
    // the probe's own bucket exists before any fault, so a heal is judged by a write, not by a create
    r.probe = { nc: probe, kv: await openBucket(probe, `${o.prefix}_nemesis`, 1, { timeoutMs: 2000 }) };
    await Promise.all(r.conns.map((c) => c.flush()));
    return r;
  }

  /** The JetStream stream behind the leases bucket. */
  get leasesStream(): string {
    return `KV_${this.cn.leasesBucket}`;
  }

  get reportsStream(): string {
    return this.n.reportsStream;
  }

  /** Longest event-loop delay of this process so far, ms. */
  lagMaxMs(): number {
    return this.lag.max / 1e6;
  }

  // ------------------------------------------------------------ route states

  private onRoute(data: Uint8Array): void {
    const t = Date.now();
    const d = tryDecode(data);
    if (!d.ok) return;
    const hash = stateHash(d.value as object);
    const v = validateRouteState(d.value);
    if (!v.ok) return;
    const s = v.value;
    const route = `${s.modid}.${s.cmdid}`;
    const id = `${route}|${s.sender}|${s.version}|${s.ts}|${hash}`;
    const had = this.routeMsgs.get(id);
    if (had !== undefined && had.t <= t) return;
    const hosts = s.hosts.map((x) => `${x.ip}:${x.port} ${x.state} ${x.pick_weight}${x.trial_agent ? ` trial ${x.trial_agent}` : ''}`);
    this.routeMsgs.set(id, { t, route, partition: partitionOf(s.modid, s.cmdid, this.o.partitions), sender: s.sender, version: s.version, ts: s.ts, hash, hosts });
  }

  // ------------------------------------------------------------ leases

  private addLease(e: Entryish, via: string): void {
    const p = this.cn.leasePartition(e.key);
    if (p === undefined) return;
    const rec = e.operation === 'PUT' ? decodeLease({ value: e.value, operation: 'PUT' }) : undefined;
    if (e.operation === 'PUT' && rec === undefined) return;
    const created = e.created.getTime();
    // One write is its record (holder and the holder's clock at the write): the same record has been
    // seen at two revisions, with timestamps a millisecond apart.
    const id = rec !== undefined ? `${p}:${rec.node}:${rec.ts}` : `${p}:-:${created}`;
    // Records are told apart by what they are, not by their revision: servers whose copies of the bucket
    // were numbered differently give one revision to different records.
    const had = this.leases.get(id);
    if (had !== undefined) {
      if (had.rev === e.revision) return;
      // the same record under another revision: stored twice, or numbered differently by another server
      let r = this.renumbered.get(id);
      if (r === undefined) this.renumbered.set(id, (r = { p, node: rec?.node, created: had.created, revs: [{ rev: had.rev, via: had.via, created: had.created }] }));
      if (!r.revs.some((x) => x.rev === e.revision)) r.revs.push({ rev: e.revision, via, created });
      return;
    }
    const entry: LeaseEntry = { p, rev: e.revision, node: rec?.node, created, seen: Date.now(), via };
    if (rec !== undefined) entry.sent = rec.ts;
    this.leases.set(id, entry);
  }

  /** A watch of the leases bucket on one pinned connection, started again whenever it ends. */
  private async watchLeases(nc: NatsConnection, via: string): Promise<void> {
    while (!this.stopped) {
      try {
        const kv = await bindBucket(nc, this.cn.leasesBucket, 2000);
        if (kv !== undefined) {
          const w = await kv.watch({ key: '>' });
          const stop = (): void => w.stop();
          this.stops.push(stop);
          for await (const e of w) this.addLease(e, via);
          this.stops.splice(this.stops.indexOf(stop), 1);
        }
      } catch {
        // the server is away or the bucket not there yet: watch again below
      }
      if (!this.stopped) await new Promise((r) => setTimeout(r, 500));
    }
  }

  private async sample(nc: NatsConnection): Promise<void> {
    if (this.sampling || this.stopped) return;
    this.sampling = true;
    try {
      const kv = await bindBucket(nc, this.cn.leasesBucket, 1000);
      if (kv === undefined) return;
      const got = await Promise.all(Array.from({ length: this.o.partitions }, (_, p) => kv.get(this.cn.leaseKey(p))));
      for (const e of got) if (e) this.addLease(e, 'sample');
    } catch {
      this.sampleFailures.push(Date.now());
    } finally {
      this.sampling = false;
    }
  }

  /** Partition → holder by the latest lease write recorded, where it was written within `freshMs` of now. */
  holders(freshMs: number): Map<number, string> {
    const latest = new Map<number, LeaseEntry>();
    for (const e of this.leases.values()) {
      const l = latest.get(e.p);
      if (l === undefined || e.created > l.created || (e.created === l.created && e.rev > l.rev)) latest.set(e.p, e);
    }
    const now = Date.now();
    const out = new Map<number, string>();
    for (const [p, e] of latest) if (e.node !== undefined && now - e.created <= freshMs) out.set(p, e.node);
    return out;
  }

  // ------------------------------------------------------------ readiness

  private async poll(): Promise<void> {
    if (this.polling || this.stopped) return;
    this.polling = true;
    try {
      await Promise.all(this.o.nodes.map((nd) => this.pollNode(nd.name, nd.httpPort)));
    } finally {
      this.polling = false;
    }
  }

  private async pollNode(node: string, port: number): Promise<void> {
    const base = `http://127.0.0.1:${port}`;
    const get = async (path: string): Promise<{ status: number; body: string } | undefined> => {
      try {
        const r = await fetch(base + path, { signal: AbortSignal.timeout(READY_MS - 50) });
        return { status: r.status, body: await r.text() };
      } catch {
        return undefined;
      }
    };
    const [ready, metrics] = await Promise.all([get('/readyz'), get('/metrics')]);
    const s: ReadySample = { t: Date.now(), node, ready: ready === undefined ? undefined : ready.status === 200 };
    if (ready !== undefined && ready.status !== 200) {
      try {
        const why = (JSON.parse(ready.body) as { reason?: unknown }).reason;
        s.reason = typeof why === 'string' ? why : JSON.stringify(why ?? '');
      } catch {
        s.reason = ready.body.slice(0, 80);
      }
    }
    if (metrics !== undefined && metrics.status === 200) {
      const owned = gauge(metrics.body, 'lars_partitions_owned');
      const unowned = gauge(metrics.body, 'lars_cluster_partitions_unowned');
      if (owned !== undefined) s.owned = owned;
      if (unowned !== undefined) s.unowned = unowned;
    }
    this.ready.push(s);
  }

  // ------------------------------------------------------------ JetStream writable

  /**
   * Resolves with the time JetStream answered a write (to a replicated bucket
   * of the harness) and the leases bucket's stream had a leader, or undefined
   * at the deadline.
   */
  async writable(deadlineMs: number): Promise<number | undefined> {
    const p = this.probe!;
    const until = Date.now() + deadlineMs;
    while (Date.now() < until && !this.stopped) {
      try {
        await p.kv.put('probe', new TextEncoder().encode(String(Date.now())));
        const jsm = await jetstreamManager(p.nc, { timeout: 1000 });
        const info = await jsm.streams.info(`KV_${this.cn.leasesBucket}`);
        if (info.cluster?.leader) return Date.now();
      } catch {
        // not yet
      }
      await new Promise((r) => setTimeout(r, 200));
    }
    return undefined;
  }

  /** The server name leading a stream now, or undefined. */
  async leaderOf(stream: string): Promise<string | undefined> {
    try {
      const jsm = await jetstreamManager(this.probe!.nc, { timeout: 2000 });
      return (await jsm.streams.info(stream)).cluster?.leader;
    } catch {
      return undefined;
    }
  }

  async stop(): Promise<void> {
    this.stopped = true;
    for (const t of this.timers) clearInterval(t);
    for (const s of this.stops.splice(0)) s();
    this.lag.disable();
    await Promise.all(this.conns.map((c) => c.close().catch(() => undefined)));
  }
}

/** The value of an unlabelled gauge in a Prometheus text scrape. */
export function gauge(text: string, name: string): number | undefined {
  const m = new RegExp(`^${name}(?:\\{[^}]*\\})? ([^\\s]+)`, 'm').exec(text);
  return m ? Number(m[1]) : undefined;
}
