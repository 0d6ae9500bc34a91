/**
 * Several route nodes sharing partitions through leases: in-process nodes
 * (each on its own connection) and `lars node` child processes (for kill -9
 * and SIGSTOP), plus readers of the leases bucket and a recorder of every
 * route state published on the route subjects.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { connectNats, type NatsConnection } from '../../src/nats/connect.ts';
import { RouteNode, type RouteNodeOptions } from '../../src/node/route-node.ts';
import { LeaseOwnership } from '../../src/cluster/index.ts';
import { readLeaseHolders } from '../../src/cluster/leases.ts';
import { tryDecode } from '../../schemas/codec.ts';
import { validateRouteState } from '../../schemas/messages.ts';
import type { Names } from '../../schemas/subjects.ts';
import { createLogger } from '../../src/lib/log.ts';
import { LARS_BIN } from './cli.ts';
import { PARTITIONS } from './cluster.ts';

export interface LeaseNode {
  id: string;
  node: RouteNode;
  ownership: LeaseOwnership;
  nc: NatsConnection;
  stop(): Promise<void>;
}

/** Starts an in-process route node owning partitions through leases. */
export async function startLeaseNode(url: string, prefix: string, id: string, opts: { leaseMs?: number; heartbeatMs?: number; renewMs?: number; clock?: () => number; node?: Partial<RouteNodeOptions> } = {}): Promise<LeaseNode> {
  const nc = await connectNats({ url, name: id });
  const log = process.env['LARS_TEST_LOG'] ? createLogger({ level: process.env['LARS_TEST_LOG'], node: id }) : undefined;
  const leaseMs = opts.leaseMs ?? 1000;
  const ownership = new LeaseOwnership({ nc, nodeId: id, prefix, partitions: PARTITIONS, leaseMs, heartbeatMs: opts.heartbeatMs ?? Math.min(500, leaseMs / 4), renewMs: opts.renewMs, clock: opts.clock, log });
  const node = await RouteNode.start({ nc, nodeId: id, prefix, partitions: PARTITIONS, tickMs: 25, ownership, log, clock: opts.clock, ...opts.node });
  let stopped = false;
  return {
    id,
    node,
    ownership,
    nc,
    stop: async () => {
      if (stopped) return;
      stopped = true;
      await node.close();
      await nc.drain().catch(() => undefined);
    },
  };
}

export interface ChildNode {
  id: string;
  child: ChildProcess;
  exited: Promise<number | null>;
  output(): string;
  kill(signal: NodeJS.Signals): void;
}

/** Starts `lars node` (no --own: leases) in a child process; `extraArgs` go after its flags (e.g. `--http <port>`). */
export function startChildNode(url: string, prefix: string, id: string, leaseMs: number, extraArgs: string[] = []): ChildNode {
  const child = spawn(process.execPath, [LARS_BIN, 'node', '--lease-ms', String(leaseMs), ...extraArgs], {
    env: { ...process.env, LARS_NATS_URL: url, LARS_PREFIX: prefix, LARS_PARTITIONS: String(PARTITIONS), LARS_NODE_ID: id, LARS_LOG_LEVEL: process.env['LARS_TEST_LOG'] ?? 'warn', LARS_LOG_FORMAT: 'json' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  const keep = (d: Buffer): void => {
    out += d.toString();
    if (out.length > 100_000) out = out.slice(-50_000);
  };
  child.stdout!.on('data', keep);
  child.stderr!.on('data', keep);
  const exited = new Promise<number | null>((r) => child.on('exit', (code) => r(code)));
  return {
    id,
    child,
    exited,
    output: () => out,
    kill: (signal) => {
      if (child.exitCode === null && child.signalCode === null) child.kill(signal);
    },
  };
}

/** Partition → holder, read from the leases bucket now. */
export function leaseOwners(nc: NatsConnection, prefix: string, partitions = PARTITIONS): Promise<Map<number, string>> {
  return readLeaseHolders(nc, prefix, partitions);
}

export interface SeenState {
  modid: number;
  cmdid: number;
  version: number;
  sender: string;
  /** Date.now() at arrival. */
  at: number;
  /** The state's own `ts`: the publishing node's clock when it published it. */
  ts: number;
  pickable: number;
  ejected: string[];
}

/** Records every valid route state published under the prefix. */
export class RouteRecorder {
  readonly seen: SeenState[] = [];

  static async start(nc: NatsConnection, n: Names): Promise<RouteRecorder> {
    const r = new RouteRecorder();
    nc.subscribe(n.routeAll, {
      callback: (_e, m) => {
        const d = tryDecode(m.data);
        const v = d.ok ? validateRouteState(d.value) : undefined;
        if (!v?.ok) return;
        const s = v.value;
        r.seen.push({
          modid: s.modid,
          cmdid: s.cmdid,
          version: s.version,
          sender: s.sender,
          at: Date.now(),
          ts: s.ts,
          pickable: s.hosts.filter((h) => h.pick_weight > 0).length,
          ejected: s.hosts.filter((h) => h.state === 'overloaded' || h.state === 'probing').map((h) => `${h.ip}:${h.port}`),
        });
      },
    });
    await nc.flush();
    return r;
  }

  of(modid: number, cmdid: number): SeenState[] {
    return this.seen.filter((s) => s.modid === modid && s.cmdid === cmdid);
  }

  /** Routes whose published versions ever went down, in arrival order. */
  backwards(): string[] {
    const last = new Map<string, SeenState>();
    const out: string[] = [];
    for (const s of this.seen) {
      const k = `${s.modid}.${s.cmdid}`;
      const prev = last.get(k);
      if (prev && s.version < prev.version) out.push(`${k}: ${prev.version} (${prev.sender}) then ${s.version} (${s.sender})`);
      if (!prev || s.version >= prev.version) last.set(k, s);
    }
    return out;
  }
}
