/** `lars route add|rm|ls|watch`: edit the registry and follow effective routes. */
import { names } from '../../../schemas/subjects.ts';
import { isIPv4, isPort, LIMITS, type RegistryHost, type RouteState, type Profile } from '../../../schemas/messages.ts';
import { PARAM_NAMES, resolveParams } from '../../../actors/params.ts';
import { connectNats, type NatsConnection } from '../../nats/connect.ts';
import { Registry, RouteStore } from '../../registry.ts';
import { createAgent } from '../../agent/agent.ts';
import { UsageError } from '../../errors.ts';
import type { Command, CommandContext } from '../command.ts';

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
  const [addr, w, zone] = s.split(',');
  const i = addr?.lastIndexOf(':') ?? -1;
  if (!addr || i <= 0) throw new UsageError(`host must be ip:port[,weight[,zone]], got ${JSON.stringify(s)}`);
  const ip = addr.slice(0, i);
  const port = Number(addr.slice(i + 1));
  if (!isIPv4(ip)) throw new UsageError(`bad IPv4 address ${JSON.stringify(ip)}`);
  if (!/^\d+$/.test(addr.slice(i + 1)) || !isPort(port)) throw new UsageError(`port must be in 1..65535, got ${JSON.stringify(addr.slice(i + 1))}`);
  const weight = w === undefined || w === '' ? LIMITS.defaultWeight : Number(w);
  if (!Number.isInteger(weight) || weight < LIMITS.minWeight || weight > LIMITS.maxWeight) {
    throw new UsageError(`weight must be an integer in ${LIMITS.minWeight}..${LIMITS.maxWeight}, got ${JSON.stringify(w)}`);
  }
  const h: RegistryHost = { ip, port, weight };
  if (zone) h.zone = zone;
  return h;
}

function parseParams(raw: string | boolean | undefined, profile: Profile): Record<string, number> {
  if (typeof raw !== 'string' || raw === '') return {};
  const out: Record<string, number> = {};
  for (const kv of raw.split('\u0000')) {
    const eq = kv.indexOf('=');
    const k = kv.slice(0, eq);
    const v = Number(kv.slice(eq + 1));
    if (eq <= 0 || !Number.isFinite(v)) throw new UsageError(`--param takes name=number, got ${JSON.stringify(kv)}`);
    if (!(PARAM_NAMES as string[]).includes(k)) throw new UsageError(`unknown parameter ${k}; known: ${PARAM_NAMES.join(', ')}`);
    out[k] = v;
  }
  const r = resolveParams(profile, out);
  if (!r.ok) throw new UsageError(r.error);
  return out;
}

async function withNats<T>(ctx: CommandContext, fn: (nc: NatsConnection) => Promise<T>): Promise<T> {
  const nc = await connectNats({ url: ctx.config.natsUrl, name: 'lars-cli', reconnect: false });
  try {
    return await fn(nc);
  } finally {
    await nc.close();
  }
}

export function formatRoute(s: RouteState): string[] {
  const head = `route ${s.modid}.${s.cmdid}  version ${s.version}  profile ${s.profile}${s.panic ? '  PANIC (spreading over all hosts)' : ''}${s.removed ? '  REMOVED' : ''}`;
  const total = s.hosts.reduce((a, h) => a + h.pick_weight, 0);
  const rows = s.hosts.map((h) => {
    const share = total > 0 ? ((100 * h.pick_weight) / total).toFixed(1) + '%' : '-';
    return `  ${`${h.ip}:${h.port}`.padEnd(22)} ${h.state.padEnd(10)} weight ${String(h.weight).padEnd(5)} share ${share.padEnd(6)} ${h.reason} since ${new Date(h.since).toISOString()}`;
  });
  return [head, ...rows];
}

export const routeCommand: Command = {
  name: 'route',
  summary: 'edit and inspect routes: add | rm | ls | watch',
  usage: [
    'lars route add <modid> <cmdid> [ip:port[,weight[,zone]]...] [--profile lars|default] [--param name=value]...',
    '       lars route rm <modid> <cmdid> [ip:port...]     (no hosts: delete the route)',
    '       lars route ls [<modid> <cmdid>] [--json]',
    '       lars route watch <modid> <cmdid> [--json]',
  ].join('\n'),
  flags: {
    profile: { help: 'node-state profile of the route: default or lars' },
    param: { help: 'override a profile parameter, name=value (repeatable)' },
    json: { help: 'machine-readable output', boolean: true },
  },
  async run(args, flags, ctx) {
    const [sub, ...rest] = args;
    const n = names(ctx.config.prefix);
    const by = `cli@${ctx.config.nodeId}`;
    switch (sub) {
      case 'add': {
        const id = parseRouteId(rest[0], rest[1]);
        const hosts = rest.slice(2).map(parseHost);
        const profileFlag = flags['profile'];
        if (profileFlag !== undefined && profileFlag !== 'lars' && profileFlag !== 'default') throw new UsageError('--profile must be lars or default');
        const profile = profileFlag as Profile | undefined;
        const params = parseParams(flags['param'], profile ?? 'default');
        if (hosts.length === 0 && profile === undefined && Object.keys(params).length === 0) throw new UsageError('give at least one host, --profile or --param');
        const entry = await withNats(ctx, async (nc) => (await Registry.open(nc, n)).addHosts(id.modid, id.cmdid, hosts, by, { profile, params }));
        ctx.out(`route ${id.modid}.${id.cmdid}: ${entry?.hosts.length ?? 0} host(s)${entry?.profile ? `, profile ${entry.profile}` : ''}`);
        return 0;
      }
      case 'rm': {
        const id = parseRouteId(rest[0], rest[1]);
        const keys = rest.slice(2).map((s) => {
          const h = parseHost(s);
          return `${h.ip}:${h.port}`;
        });
        const entry = await withNats(ctx, async (nc) => (await Registry.open(nc, n)).removeHosts(id.modid, id.cmdid, keys, by));
        ctx.out(entry ? `route ${id.modid}.${id.cmdid}: ${entry.hosts.length} host(s) left; removed hosts drain` : `route ${id.modid}.${id.cmdid} deleted`);
        return 0;
      }
      case 'ls': {
        const one = rest.length > 0 ? parseRouteId(rest[0], rest[1]) : undefined;
        await withNats(ctx, async (nc) => {
          const reg = await Registry.open(nc, n);
          const store = await RouteStore.bind(nc, n);
          const entries = one ? [(await reg.get(one.modid, one.cmdid))?.entry].filter((e) => e !== undefined) : await reg.list();
          if (one && entries.length === 0) throw new UsageError(`route ${one.modid}.${one.cmdid} is not registered`);
          const rows = [];
          for (const e of entries) {
            const st = store ? (await store.get(e.modid, e.cmdid))?.state : undefined;
            rows.push({ registry: e, effective: st });
          }
          if (flags['json']) {
            ctx.out(JSON.stringify(rows));
            return;
          }
          if (rows.length === 0) ctx.out('no routes registered');
          for (const r of rows) {
            if (r.effective && !r.effective.removed) for (const l of formatRoute(r.effective)) ctx.out(l);
            else {
              ctx.out(`route ${r.registry.modid}.${r.registry.cmdid}  (no effective state yet: is a route node running?)`);
              for (const h of r.registry.hosts) ctx.out(`  ${`${h.ip}:${h.port}`.padEnd(22)} weight ${h.weight}`);
            }
          }
        });
        return 0;
      }
      case 'watch': {
        const id = parseRouteId(rest[0], rest[1]);
        const agent = await createAgent({ servers: ctx.config.natsUrl, prefix: ctx.config.prefix, partitions: ctx.config.partitions, agentId: `watch-${ctx.config.nodeId}` });
        try {
          const first = await agent.getRoute(id.modid, id.cmdid);
          if (!first) ctx.out(`route ${id.modid}.${id.cmdid} has no state yet; waiting for it`);
          agent.watchRoute(id.modid, id.cmdid, (s) => {
            if (flags['json']) ctx.out(JSON.stringify(s));
            else for (const l of [...formatRoute(s), '']) ctx.out(l);
          });
          await ctx.stopSignal;
        } finally {
          await agent.close();
        }
        return 0;
      }
      default:
        throw new UsageError(sub ? `unknown route command ${JSON.stringify(sub)}` : 'missing route command (add, rm, ls, watch)');
    }
  },
};
