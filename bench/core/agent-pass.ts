/**
 * The agents behind the propagation and ejection benchmarks of the `core`
 * group: AGENTS agents in AGENT_PROCS child processes (bench/_agents.ts)
 * following the propagation route and a set of ejection routes, the records
 * they send back (when each agent came to hold a version, saw a host
 * ejected), and what the route node published when.
 */
import type { ChildProcess } from 'node:child_process';
import type { RouteState } from '../../src/index.ts';
import { epochMs, type AgentsConfig, type FromAgents, type ToAgents } from '../_common.ts';
import { askAll, nextMessage, spawnChild, stopChild } from '../_harness.ts';
import { AGENT_PROCS, AGENTS_PER_PROC, EJECT_MODID, P, PICK_SAMPLE, PROP_ROUTE, type CoreContext } from './setup.ts';

export interface Delivery {
  agent: number;
  t: number;
}

export interface AgentPass {
  /** Agent-side records: key `${modid}.${cmdid}.${version}` -> deliveries. */
  versionRecs: Map<string, Delivery[]>;
  /** Agent-side records: key `${modid}.${cmdid}.${ip}:${port}` -> first state with the host ejected. */
  ejectRecs: Map<string, Array<Delivery & { picked: number }>>;
  /** Node side: when each version of a route was published. */
  nodeVersionT: Map<string, number>;
  /** Node side: when each host was first published ejected. */
  nodeEjectT: Map<string, number>;
  /** Highest version of the propagation route the node published. */
  propVersion(): number;
  /** Resolves true once `cond` holds (re-checked on every record or node change), false after `timeoutMs`. */
  when(cond: () => boolean, timeoutMs: number): Promise<boolean>;
  /** CPU time of the agent processes so far, µs. */
  cpuUs(): Promise<number>;
  readyMs: number;
  stop(): Promise<void>;
}

/** Starts the agent processes (own connection per agent, or one shared per process) and waits until they are subscribed. */
export async function startAgentPass(ctx: CoreContext, ejectRoutes: Array<[number, number]>, sharedConnection: boolean): Promise<AgentPass> {
  const { node } = ctx;
  // Conditions re-checked whenever a record or a node change arrives (no polling in the node's process).
  const checks = new Set<() => void>();
  const poke = () => {
    for (const c of [...checks]) c();
  };
  const when = (cond: () => boolean, timeoutMs: number): Promise<boolean> => {
    if (cond()) return Promise.resolve(true);
    return new Promise((resolve) => {
      const chk = () => {
        if (!cond()) return;
        clearTimeout(t);
        checks.delete(chk);
        resolve(true);
      };
      const t = setTimeout(() => {
        checks.delete(chk);
        resolve(false);
      }, timeoutMs);
      checks.add(chk);
    });
  };

  const nodeVersionT = new Map<string, number>();
  const nodeEjectT = new Map<string, number>();
  let propVersion = 0;
  const off = node.onChange((s: RouteState) => {
    const t = epochMs();
    nodeVersionT.set(`${s.modid}.${s.cmdid}.${s.version}`, t);
    if (s.modid === PROP_ROUTE[0] && s.cmdid === PROP_ROUTE[1]) propVersion = Math.max(propVersion, s.version);
    if (s.modid === EJECT_MODID) {
      for (const h of s.hosts) {
        const k = `${s.modid}.${s.cmdid}.${h.ip}:${h.port}`;
        if (h.state === 'overloaded' && !nodeEjectT.has(k)) nodeEjectT.set(k, t);
      }
    }
    poke();
  });

  const versionRecs = new Map<string, Delivery[]>();
  const ejectRecs = new Map<string, Array<Delivery & { picked: number }>>();
  const procs: ChildProcess[] = [];
  const t0 = epochMs();
  const stop = async () => {
    off();
    await Promise.all(procs.map((c) => stopChild(c, { type: 'stop' } satisfies ToAgents, 8000)));
  };
  for (let p = 0; p < AGENT_PROCS; p++) {
    const cfg: AgentsConfig = {
      url: ctx.server.url,
      prefix: ctx.n.prefix,
      partitions: P,
      first: p * AGENTS_PER_PROC,
      count: AGENTS_PER_PROC,
      sharedConnection,
      propRoute: PROP_ROUTE,
      ejectRoutes,
      pickSample: PICK_SAMPLE,
    };
    const c = spawnChild('_agents.ts', cfg);
    c.on('message', (m: FromAgents) => {
      if (m.type !== 'rec') return;
      for (const it of m.items) {
        const k = `${it[2]}.${it[3]}.${it[4]}`;
        if (it[0] === 'v') {
          let a = versionRecs.get(k);
          if (!a) versionRecs.set(k, (a = []));
          a.push({ agent: it[1], t: it[5] });
        } else {
          let a = ejectRecs.get(k);
          if (!a) ejectRecs.set(k, (a = []));
          a.push({ agent: it[1], t: it[6], picked: it[7] });
        }
      }
      poke();
    });
    procs.push(c);
  }
  try {
    await Promise.all(procs.map((c) => nextMessage<FromAgents, 'ready'>(c, 'ready', 120_000)));
  } catch (err) {
    await stop();
    throw err;
  }
  return {
    versionRecs,
    ejectRecs,
    nodeVersionT,
    nodeEjectT,
    propVersion: () => propVersion,
    when,
    cpuUs: async () => (await askAll<FromAgents, 'cpu'>(procs, { type: 'cpu' } satisfies ToAgents, 'cpu')).reduce((a, r) => a + r.userUs + r.systemUs, 0),
    readyMs: epochMs() - t0,
    stop,
  };
}
