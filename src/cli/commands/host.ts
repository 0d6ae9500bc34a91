/**
 * `lars host drain|undrain|eject|clear|weight`: an operator's actions on one
 * host of a route, written to the registry with who did them (`--by`, default
 * the CLI's node id) and carried out by the route node through the
 * node-state machine, where they become events with reasons `admin_drain`,
 * `admin_undrain`, `admin_eject`, `admin_clear`. `--dry-run` shows the
 * change and writes nothing.
 */
import { names } from '../../../schemas/subjects.ts';
import { AdminMark, LIMITS, type RegistryEntry, type RegistryHost } from '../../../schemas/messages.ts';
import { Registry } from '../../registry.ts';
import { ErrorCode, LarsError, RegistryError, UsageError } from '../../errors.ts';
import type { Command, CommandContext, CommandGroup, FlagValue } from '../command.ts';
import { parseRouteId, withNats } from './route.ts';

export const Action = {
  drain: 'drain',
  undrain: 'undrain',
  eject: 'eject',
  clear: 'clear',
  weight: 'weight',
} as const;
export type Action = (typeof Action)[keyof typeof Action];

/** What an action does to a registry host; undefined when it changes nothing. */
export function applyHostAction(h: RegistryHost, action: Action, by: string, ts: number, weight?: number): RegistryHost | undefined {
  const bare: RegistryHost = { ip: h.ip, port: h.port, weight: h.weight };
  if (h.zone !== undefined) bare.zone = h.zone;
  switch (action) {
    case Action.drain:
      return h.admin?.state === AdminMark.drained ? undefined : { ...bare, admin: { state: AdminMark.drained, by, ts } };
    case Action.eject:
      return h.admin?.state === AdminMark.ejected ? undefined : { ...bare, admin: { state: AdminMark.ejected, by, ts } };
    case Action.undrain:
      return h.admin?.state === AdminMark.drained ? bare : undefined;
    case Action.clear:
      return h.admin?.state === AdminMark.ejected ? bare : undefined;
    case Action.weight:
      return h.weight === weight ? undefined : { ...h, weight: weight! };
  }
}

function describeHost(h: RegistryHost): string {
  return `weight ${h.weight}${h.zone ? `, zone ${h.zone}` : ''}${h.admin ? `, ${h.admin.state} by ${h.admin.by}` : ''}`;
}

function parseAddr(s: string | undefined): { ip: string; port: number } {
  const m = /^([0-9.]{7,15}):(\d{1,5})$/.exec(s ?? '');
  if (!m) throw new UsageError(`host must be ip:port, got ${JSON.stringify(s ?? '')}`);
  return { ip: m[1]!, port: Number(m[2]) };
}

async function runAction(action: Action, args: string[], flags: Record<string, FlagValue>, ctx: CommandContext): Promise<number> {
  const id = parseRouteId(args[0], args[1]);
  const addr = parseAddr(args[2]);
  let weight: number | undefined;
  if (action === Action.weight) {
    const w = /^\d{1,5}$/.test(args[3] ?? '') ? Number(args[3]) : Number.NaN;
    if (!(w >= LIMITS.minWeight && w <= LIMITS.maxWeight)) throw new UsageError(`weight must be ${LIMITS.minWeight}..${LIMITS.maxWeight}, got ${JSON.stringify(args[3] ?? '')}`);
    weight = w;
  } else if (args.length > 3) throw new UsageError(`unexpected argument ${JSON.stringify(args[3])}`);
  const byFlag = flags['by'];
  const by = typeof byFlag === 'string' && byFlag.length > 0 ? byFlag.slice(0, LIMITS.maxSenderLength) : `cli@${ctx.config.nodeId}`;
  const dry = flags['dry-run'] === true;
  const key = `${addr.ip}:${addr.port}`;
  const result = await withNats(ctx.config, async (nc) => {
    const reg = await Registry.open(nc, names(ctx.config.prefix));
    let before: RegistryHost | undefined;
    let after: RegistryHost | undefined;
    const plan = (cur: RegistryEntry | undefined): RegistryEntry | null => {
      if (!cur) throw new LarsError(ErrorCode.noRoute, `route ${id.modid}.${id.cmdid} is not registered`);
      const i = cur.hosts.findIndex((h) => h.ip === addr.ip && h.port === addr.port);
      if (i < 0) throw new RegistryError(`route ${id.modid}.${id.cmdid} has no host ${key} in the registry (a self-registered host is changed by its service)`);
      before = cur.hosts[i]!;
      after = applyHostAction(before, action, by, Date.now(), weight);
      if (after === undefined) return cur;
      const hosts = [...cur.hosts];
      hosts[i] = after;
      return { ...cur, hosts, updated_by: by, ts: Date.now() };
    };
    if (dry) plan((await reg.get(id.modid, id.cmdid))?.entry);
    else await reg.update(id.modid, id.cmdid, plan);
    return { before: before!, after };
  });
  const out = { route: `${id.modid}.${id.cmdid}`, host: key, action, dryRun: dry, changed: result.after !== undefined, before: result.before, after: result.after ?? result.before };
  if (flags['json'] === true) ctx.out(JSON.stringify(out));
  else if (!out.changed) ctx.out(`${out.route} ${key}: nothing to do (${describeHost(result.before)})`);
  else ctx.out(`${out.route} ${key}: ${describeHost(result.before)} → ${describeHost(result.after!)}${dry ? '  (dry run: nothing written)' : ''}`);
  return 0;
}

const hostArgs = [
  { name: 'modid', help: 'module id, 0..4294967295' },
  { name: 'cmdid', help: 'command id, 0..4294967295' },
  { name: 'host', help: 'ip:port of a host in the registry' },
];
const commonFlags = {
  'dry-run': { help: 'show the change, write nothing', boolean: true },
  by: { help: 'who acts (recorded in the registry and the events); default cli@<node id>', placeholder: 'name' },
  json: { help: 'print machine-readable JSON instead of text', boolean: true },
} as const;

function command(action: Action, summary: string, example: string): Command {
  return {
    name: action,
    summary,
    usage: `lars host ${action} <modid> <cmdid> <ip:port>${action === Action.weight ? ' <weight>' : ''} [--by name] [--dry-run]`,
    args: action === Action.weight ? [...hostArgs, { name: 'weight', help: `${LIMITS.minWeight}..${LIMITS.maxWeight}` }] : hostArgs,
    flags: commonFlags,
    examples: [[example, summary]],
    run: (args, flags, ctx) => runAction(action, args, flags, ctx),
  };
}

export const hostGroup: CommandGroup = {
  name: 'host',
  summary: "an operator's actions on one host: drain | undrain | eject | clear | weight",
  commands: [
    command(Action.drain, 'take a host out for maintenance: no traffic, it stays in the route until undrained', 'lars host drain 20 1 10.0.0.1:8000 --by alice'),
    command(Action.undrain, 'end a maintenance drain: the host takes traffic again', 'lars host undrain 20 1 10.0.0.1:8000'),
    command(Action.eject, 'force a host out now: no traffic and no probes until cleared', 'lars host eject 20 1 10.0.0.1:8000 --dry-run'),
    command(Action.clear, 'end a forced ejection: the host is probed back (default profile) or healthy (lars)', 'lars host clear 20 1 10.0.0.1:8000'),
    command(Action.weight, "set a host's registry weight", 'lars host weight 20 1 10.0.0.1:8000 50'),
  ],
};
