/** `lars route add|rm|ls|watch`: edit the registry and follow effective routes. */
import { names, partitionOf } from '../../../schemas/subjects.ts';
import { isIPv4, isPort, LIMITS, type RegistryEntry, type RegistryHost, type RouteState, type Profile, type SelfRegistration } from '../../../schemas/messages.ts';
import { PickStrategy } from '../../../schemas/contract.ts';
import type { LarsConfig } from '../../lib/config.ts';
import { connectNats, natsOptionsFromConfig, type NatsConnection } from '../../nats/connect.ts';
import { Registry } from '../../registry/registry.ts';
import { RouteStore } from '../../registry/route-store.ts';
import { bindBucket, readBucket } from '../../nats/buckets.ts';
import { decodeSelfRegistration } from '../../../schemas/records.ts';
import { RouteFollower } from '../../agent/route-follower.ts';
import { readClusterSnapshot, summarizeCluster, type PartitionProblem } from '../../cluster/status.ts';
import { clusterNames } from '../../cluster/names.ts';
import { ErrorCode, LarsError, UsageError } from '../../lib/errors.ts';
import type { Command, CommandContext, CommandGroup } from '../command.ts';
import { formatAge, formatDuration, renderTable } from '../table.ts';
import { withLifecycle } from '../../lib/lifecycle.ts';
import { parseParamFlags } from '../params.ts';

export function parseRouteId(modid: string | undefined, cmdid: string | undefined): { modid: number; cmdid: number } {
  const m = parseUint32(modid, 'modid');
  const c = parseUint32(cmdid, 'cmdid');
  return { modid: m, cmdid: c };
}

function parseUint32(s: string | undefined, what: string): number {
  if (s === undefined) throw new UsageError(`missing ${what}`);
  if (!/^\d{1,10}$/.test(s) || Number(s) > 0xffff_ffff) throw new UsageError(`${what} must be an integer in 0..4294967295, got ${JSON.stringify(s)}`);
  return Number(s);
}

/** `ip:port[,weight[,zone]]` */
export function parseHost(s: string): RegistryHost {
  const fields = s.split(',');
  if (fields.length > 3) throw new UsageError(`host must be ip:port[,weight[,zone]], got ${fields.length} comma-separated fields in ${JSON.stringify(s)}`);
  const [addr, w, zone] = fields;
  const i = addr?.lastIndexOf(':') ?? -1;
  if (!addr || i <= 0) throw new UsageError(`host must be ip:port[,weight[,zone]], got ${JSON.stringify(s)}`);
  const ip = addr.slice(0, i);
  const port = Number(addr.slice(i + 1));
  if (!isIPv4(ip)) throw new UsageError(`bad IPv4 address ${JSON.stringify(ip)}`);
  if (!/^\d+$/.test(addr.slice(i + 1)) || !isPort(port)) throw new UsageError(`port must be in 1..65535, got ${JSON.stringify(addr.slice(i + 1))}`);
  const weight = w === undefined || w === '' ? LIMITS.defaultWeight : Number(w);
  if (!/^\d*$/.test(w ?? '') || !Number.isInteger(weight) || weight < LIMITS.minWeight || weight > LIMITS.maxWeight) {
    throw new UsageError(`weight must be an integer in ${LIMITS.minWeight}..${LIMITS.maxWeight}, got ${JSON.stringify(w)}`);
  }
  const h: RegistryHost = { ip, port, weight };
  if (zone !== undefined && zone.length > LIMITS.maxZoneLength) {
    throw new UsageError(`zone must be at most ${LIMITS.maxZoneLength} characters, got ${zone.length} in ${JSON.stringify(s)}`);
  }
  if (zone) h.zone = zone;
  return h;
}

export async function withNats<T>(config: LarsConfig, fn: (nc: NatsConnection) => Promise<T>): Promise<T> {
  const nc = await connectNats({ ...natsOptionsFromConfig(config), name: 'lars-cli', reconnect: false });
  try {
    return await fn(nc);
  } finally {
    await nc.close();
  }
}

const now = (ctx: CommandContext): number => (ctx.now ? ctx.now() : Date.now());

/** A registry change this much newer than the published state means no route node has taken it in. */
const STALE_AFTER_MS = 5_000;

/** Whether the registry changed after the last published state, beyond what a running node takes to publish. */
export function isStale(entry: RegistryEntry, state: RouteState | undefined): boolean {
  return state !== undefined && entry.ts - state.ts > STALE_AFTER_MS;
}

/**
 * Whether a route node serves a route's partition, from the cluster's leases:
 * undefined when no route node ever took leases under the prefix (nodes with
 * --own, and lars dev, take none, so the leases cannot tell).
 */
export type Served = { served: true } | { served: false; partition: number; problem: PartitionProblem } | undefined;

const PROBLEM_TEXT: Record<PartitionProblem, string> = {
  no_owner: 'no route node holds its lease (nodes started with --own hold none)',
  expired: 'its lease was not renewed in time',
  owner_not_live: 'the node holding its lease is not live',
};

/** Where a host of a route comes from: the admin registry, a self-registration, or both. */
export function hostOrigin(key: string, admin: RegistryEntry | undefined, self: readonly SelfRegistration[]): string {
  const a = admin?.hosts.some((h) => `${h.ip}:${h.port}` === key) ?? false;
  const r = self.find((x) => `${x.ip}:${x.port}` === key);
  const s = r ? `self (${r.instance}${r.state === 'draining' ? ', draining' : ''})` : undefined;
  return a && s ? `admin + ${s}` : a ? 'admin' : (s ?? '-');
}

/** Every self-registration under the prefix, by route key (none when no route node created the bucket). */
export async function readSelfRegistrations(nc: NatsConnection, prefix: string): Promise<Map<string, SelfRegistration[]>> {
  const out = new Map<string, SelfRegistration[]>();
  for (const e of await readBucket(await bindBucket(nc, names(prefix).selfRegBucket))) {
    if (e.operation !== 'PUT') continue;
    const v = decodeSelfRegistration(e.value);
    if (!v.ok) continue;
    const k = `${v.value.modid}.${v.value.cmdid}`;
    out.set(k, [...(out.get(k) ?? []), v.value]);
  }
  return out;
}

/** One route's effective state as a header line and a host table (with each host's origin when `origin` is given). */
export function formatRoute(s: RouteState, nowMs: number = Date.now(), origin?: (hostKey: string) => string): string[] {
  const flags = `${s.panic ? '  PANIC (spreading over all hosts)' : ''}${s.removed ? '  REMOVED' : ''}`;
  const head = `route ${s.modid}.${s.cmdid}  version ${s.version}  profile ${s.profile}${s.strategy ? `  strategy ${s.strategy}` : ''}${flags}  published ${formatAge(s.ts, nowMs)} by ${s.sender}`;
  const total = s.hosts.reduce((a, h) => a + h.pick_weight, 0);
  const rows = s.hosts.map((h) => ({
    host: `${h.ip}:${h.port}`,
    state: h.state,
    weight: h.weight,
    share: total > 0 ? `${((100 * h.pick_weight) / total).toFixed(1)}%` : '-',
    reason: h.reason,
    for: formatDuration(nowMs - h.since),
    origin: origin?.(`${h.ip}:${h.port}`) ?? '',
  }));
  const table = renderTable(
    [{ key: 'host' }, { key: 'state' }, { key: 'weight' }, { key: 'share', align: 'right' }, { key: 'reason' }, { key: 'for', title: 'in state for' }, ...(origin ? [{ key: 'origin' as const }] : [])],
    rows,
    { indent: '  ' },
  );
  return [head, ...table];
}

function formatRegistryOnly(e: Pick<RegistryEntry, 'modid' | 'cmdid' | 'hosts'>, why: string, origin: (hostKey: string) => string): string[] {
  const rows = e.hosts.map((h) => ({ host: `${h.ip}:${h.port}`, weight: h.weight, zone: h.zone, origin: origin(`${h.ip}:${h.port}`) }));
  return [`route ${e.modid}.${e.cmdid}  ${why}`, ...renderTable(['host', 'weight', 'zone', 'origin'], rows, { indent: '  ' })];
}

const routeArgs = [
  { name: 'modid', help: 'module id, 0..4294967295' },
  { name: 'cmdid', help: 'command id, 0..4294967295' },
];
const jsonFlag = { help: 'print machine-readable JSON instead of text', boolean: true } as const;

export const routeAddCommand: Command = {
  name: 'add',
  summary: 'register hosts for a route (creates it); a known host gets the new weight/zone',
  usage: 'lars route add <modid> <cmdid> [ip:port[,weight[,zone]]...] [--profile lars|default] [--strategy name] [--param name=value]...',
  args: [...routeArgs, { name: 'hosts', help: 'ip:port[,weight[,zone]]: weight 1..10000 (default 100), zone up to 64 characters', variadic: true }],
  flags: {
    profile: { help: 'the host machine profile of the route (what a report, a tick and an ejection do)', choices: ['default', 'lars'], placeholder: 'profile' },
    param: { help: 'override a profile parameter, name=value (repeatable)', multiple: true, placeholder: 'name=value' },
    strategy: { help: "pick strategy agents use for the route unless their caller overrides it (default: lars for the lars profile, else the agent's)", choices: Object.values(PickStrategy), placeholder: 'name' },
    json: jsonFlag,
  },
  examples: [
    ['lars route add 20 1 10.0.0.1:8000 10.0.0.2:8000,50', 'two hosts, the second with weight 50'],
    ['lars route add 20 1 --profile lars --param err_rate=0.2', 'switch the route to the lars profile'],
  ],
  async run(args, flags, ctx) {
    const [modid, cmdid, ...rest] = args;
    const id = parseRouteId(modid, cmdid);
    const hosts = rest.map(parseHost);
    const profileFlag = flags['profile'];
    if (profileFlag !== undefined && profileFlag !== 'lars' && profileFlag !== 'default') throw new UsageError('--profile must be lars or default');
    const profile = profileFlag as Profile | undefined;
    const params = parseParamFlags(flags['param'], profile ?? 'default');
    const strategyFlag = flags['strategy'];
    if (strategyFlag !== undefined && !(Object.values(PickStrategy) as unknown[]).includes(strategyFlag)) throw new UsageError(`--strategy must be one of ${Object.values(PickStrategy).join(', ')}`);
    const strategy = strategyFlag as PickStrategy | undefined;
    if (hosts.length === 0 && profile === undefined && strategy === undefined && Object.keys(params).length === 0) throw new UsageError('give at least one host, --profile, --strategy or --param');
    const by = `cli@${ctx.config.nodeId}`;
    const entry = await withNats(ctx.config, async (nc) => (await Registry.open(nc, names(ctx.config.prefix))).addHosts(id.modid, id.cmdid, hosts, by, { profile, params, strategy }));
    if (flags['json'] === true) ctx.out(JSON.stringify(entry));
    else ctx.out(`route ${id.modid}.${id.cmdid}: ${entry?.hosts.length ?? 0} host(s)${entry?.profile ? `, profile ${entry.profile}` : ''}`);
    return 0;
  },
};

export const routeRmCommand: Command = {
  name: 'rm',
  summary: 'remove hosts from a route (they drain); without hosts, delete the whole route (asks, or --yes)',
  usage: 'lars route rm <modid> <cmdid> [ip:port...] [--yes]',
  args: [...routeArgs, { name: 'hosts', help: 'ip:port of each host to remove; none: delete the route', variadic: true }],
  flags: {
    yes: { help: 'delete a whole route without asking (needed when stdin is not a terminal)', boolean: true, alias: 'y' },
    json: jsonFlag,
  },
  async run(args, flags, ctx) {
    const [modid, cmdid, ...rest] = args;
    const id = parseRouteId(modid, cmdid);
    const keys = rest.map((s) => {
      const h = parseHost(s);
      return `${h.ip}:${h.port}`;
    });
    const route = `${id.modid}.${id.cmdid}`;
    const entry = await withNats(ctx.config, async (nc) => {
      const reg = await Registry.open(nc, names(ctx.config.prefix));
      if (keys.length === 0 && flags['yes'] !== true) {
        const cur = await reg.get(id.modid, id.cmdid);
        if (!cur) throw new LarsError(ErrorCode.noRoute, `route ${route} is not registered`);
        const answer = ctx.confirm ? await ctx.confirm(`delete route ${route} and its ${cur.entry.hosts.length} host(s)?`) : undefined;
        if (answer === undefined) throw new UsageError(`deleting the whole route ${route} needs confirmation: pass --yes (stdin is not a terminal)`);
        if (!answer) throw new LarsError(ErrorCode.cancelled, `route ${route} kept (not confirmed)`);
      }
      return reg.removeHosts(id.modid, id.cmdid, keys, `cli@${ctx.config.nodeId}`);
    });
    if (flags['json'] === true) ctx.out(JSON.stringify(entry ? { modid: id.modid, cmdid: id.cmdid, deleted: false, entry } : { modid: id.modid, cmdid: id.cmdid, deleted: true }));
    else ctx.out(entry ? `route ${route}: ${entry.hosts.length} host(s) left; removed hosts drain` : `route ${route} deleted`);
    return 0;
  },
};

export const routeLsCommand: Command = {
  name: 'ls',
  summary: 'list registered routes with their effective state and when it was published',
  usage: 'lars route ls [<modid> <cmdid>] [--json]',
  args: routeArgs.map((a) => ({ ...a, optional: true })),
  flags: { json: jsonFlag },
  async run(args, flags, ctx) {
    const one = args.length > 0 ? parseRouteId(args[0], args[1]) : undefined;
    const n = names(ctx.config.prefix);
    const rows = await withNats(ctx.config, async (nc) => {
      const reg = await Registry.open(nc, n);
      const store = await RouteStore.bind(nc, n);
      const selfRegs = await readSelfRegistrations(nc, n.prefix);
      const routeKey = (m: number, c: number): string => `${m}.${c}`;
      const admin = one ? [(await reg.get(one.modid, one.cmdid))?.entry].filter((e) => e !== undefined) : await reg.list();
      // routes made of self-registered hosts alone are routes too
      const ids = new Map<string, { modid: number; cmdid: number }>(admin.map((e) => [routeKey(e.modid, e.cmdid), e]));
      for (const [k, list] of selfRegs) {
        const r = list[0]!;
        if (!ids.has(k) && (!one || (one.modid === r.modid && one.cmdid === r.cmdid))) ids.set(k, r);
      }
      if (one && ids.size === 0) throw new LarsError(ErrorCode.noRoute, `route ${one.modid}.${one.cmdid} is not registered`);
      // which partitions a live route node serves, when nodes share them by leases
      const leased = (await bindBucket(nc, clusterNames(n.prefix).leasesBucket)) !== undefined;
      const cluster = leased ? summarizeCluster(await readClusterSnapshot(nc, n.prefix), { prefix: n.prefix, partitions: ctx.config.partitions, now: now(ctx) }) : undefined;
      const servedOf = (modid: number, cmdid: number): Served => {
        const p = cluster?.partitionStates[partitionOf(modid, cmdid, ctx.config.partitions)];
        if (!p) return undefined;
        return p.problem === undefined ? { served: true } : { served: false, partition: p.partition, problem: p.problem };
      };
      const out: Array<{ registry: RegistryEntry | undefined; self: SelfRegistration[]; effective: RouteState | undefined; stale: boolean; served: boolean | null; why: Served }> = [];
      for (const [k, id] of [...ids].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))) {
        const e = admin.find((x) => routeKey(x.modid, x.cmdid) === k);
        const st = store ? (await store.get(id.modid, id.cmdid))?.state : undefined;
        const why = servedOf(id.modid, id.cmdid);
        out.push({ registry: e, self: selfRegs.get(k) ?? [], effective: st, stale: e !== undefined && isStale(e, st), served: why ? why.served : null, why });
      }
      return out;
    });
    if (flags['json'] === true) {
      ctx.out(JSON.stringify(rows.map(({ why: _why, ...r }) => r)));
      return 0;
    }
    const t = now(ctx);
    if (rows.length === 0) ctx.out('no routes registered');
    for (const r of rows) {
      if (!r.effective || r.effective.removed) {
        const hosts = [...(r.registry?.hosts ?? [])];
        for (const x of r.self) if (!hosts.some((h) => h.ip === x.ip && h.port === x.port)) hosts.push({ ip: x.ip, port: x.port, weight: x.weight, ...(x.zone ? { zone: x.zone } : {}) });
        const m = r.registry?.modid ?? r.self[0]!.modid;
        const c = r.registry?.cmdid ?? r.self[0]!.cmdid;
        for (const l of formatRegistryOnly({ modid: m, cmdid: c, hosts }, '(no effective state yet: is a route node running?)', (k) => hostOrigin(k, r.registry, r.self))) ctx.out(l);
        continue;
      }
      for (const l of formatRoute(r.effective, t, (k) => hostOrigin(k, r.registry, r.self))) ctx.out(l);
      if (r.why?.served === false) {
        ctx.out(`  NOT SERVED: partition ${r.why.partition}: ${PROBLEM_TEXT[r.why.problem]}; this is the last state published, not a live one: is a route node running?`);
      } else if (r.stale && r.registry) {
        ctx.out(`  STALE: the registry changed ${formatAge(r.registry.ts, t)} and no route node has published it since: is one running?`);
      }
    }
    return 0;
  },
};

export interface RouteFollowEvents {
  /** Once, at the start: whether the route is in the registry, and whether it has a published state. */
  start(info: { registered: boolean; hasState: boolean }): void;
  state(s: RouteState): void;
}

/**
 * Follows one route's effective state until `stop` resolves: the only NATS
 * code of `route watch`, so another follower can replace it.
 */
export async function followRoute(config: LarsConfig, id: { modid: number; cmdid: number }, stop: Promise<void>, on: RouteFollowEvents): Promise<void> {
  const nc = await connectNats({ ...natsOptionsFromConfig(config), name: `lars-watch-${config.nodeId}` });
  try {
    const n = names(config.prefix);
    const registered = (await (await Registry.open(nc, n)).get(id.modid, id.cmdid)) !== undefined;
    // every published state as it is, empty ones included: this is a view, not a picker
    const follower = new RouteFollower({ nc, names: n, holdEmptyUpdates: false });
    try {
      const first = await follower.get(id.modid, id.cmdid);
      on.start({ registered, hasState: first !== undefined });
      follower.follow(id.modid, id.cmdid, (s) => on.state(s));
      await stop;
    } finally {
      follower.close();
    }
  } finally {
    await nc.close().catch(() => undefined);
  }
}

export const routeWatchCommand: Command = {
  name: 'watch',
  summary: 'print the effective route every time it changes (also before it is registered), until Ctrl-C',
  usage: 'lars route watch <modid> <cmdid> [--json]',
  args: routeArgs,
  flags: { json: { help: 'one JSON route state per line', boolean: true } },
  async run(args, flags, ctx) {
    const id = parseRouteId(args[0], args[1]);
    const route = `${id.modid}.${id.cmdid}`;
    const note = (l: string) => ctx.note?.(l);
    await withLifecycle(ctx, (life) => followRoute(ctx.config, id, life.stopped, {
      start({ registered, hasState }) {
        if (!registered) note(`route ${route} is not registered; watching for it to appear (Ctrl-C to stop)`);
        else if (!hasState) note(`route ${route} is registered but has no effective state yet: is a route node running? waiting for one to publish it`);
      },
      state(s) {
        if (flags['json'] === true) ctx.out(JSON.stringify(s));
        else for (const l of [...formatRoute(s, now(ctx)), '']) ctx.out(l);
      },
    }));
    return 0;
  },
};

export const routeGroup: CommandGroup = {
  name: 'route',
  summary: 'edit and inspect routes: add | rm | ls | watch',
  commands: [routeAddCommand, routeRmCommand, routeLsCommand, routeWatchCommand],
};
