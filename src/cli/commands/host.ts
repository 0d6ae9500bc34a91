/**
 * `lars host drain|undrain|eject|clear|weight`: an operator's actions on one
 * host of a route, written to the registry with who did them (`--by`, default
 * the CLI's node id) and carried out by the route node through the
 * host machine, where they become events with reasons `admin_drain`,
 * `admin_undrain`, `admin_eject`, `admin_clear`. `--dry-run` shows the
 * change and writes nothing. A drain or eject that would leave the route
 * without a healthy host, or put it into panic, is refused with what would
 * happen unless `--force` (src/admin/host-actions.ts).
 */
import { names } from '../../../schemas/subjects.ts';
import { LIMITS, type RegistryHost } from '../../../schemas/messages.ts';
import { Registry } from '../../registry/registry.ts';
import { RouteStore } from '../../registry/route-store.ts';
import { UsageError } from '../../lib/errors.ts';
import { HostAction as Action, actOnHost, actor, parseHostAddr, parseWeight } from '../../admin/host-actions.ts';
import type { Command, CommandContext, CommandGroup, FlagValue } from '../command.ts';
import { parseRouteId, withNats } from './route.ts';

function describeHost(h: RegistryHost): string {
  return `weight ${h.weight}${h.zone ? `, zone ${h.zone}` : ''}${h.admin ? `, ${h.admin.state} by ${h.admin.by}` : ''}`;
}

async function runAction(action: Action, args: string[], flags: Record<string, FlagValue>, ctx: CommandContext): Promise<number> {
  const id = parseRouteId(args[0], args[1]);
  const addr = parseHostAddr(args[2]);
  let weight: number | undefined;
  if (action === Action.weight) weight = parseWeight(args[3]);
  else if (args.length > 3) throw new UsageError(`unexpected argument ${JSON.stringify(args[3])}`);
  const byFlag = flags['by'];
  const by = actor(typeof byFlag === 'string' && byFlag.length > 0 ? byFlag : `cli@${ctx.config.nodeId}`);
  const dry = flags['dry-run'] === true;
  const force = flags['force'] === true;
  const out = await withNats(ctx.config, async (nc) => {
    const n = names(ctx.config.prefix);
    const routes = await RouteStore.bind(nc, n);
    return actOnHost(await Registry.open(nc, n), { route: id, addr, action, by, weight, dryRun: dry, force }, routes);
  });
  if (flags['json'] === true) ctx.out(JSON.stringify(out));
  else if (!out.changed) ctx.out(`${out.route} ${out.host}: nothing to do (${describeHost(out.before)})`);
  // Who acted, named as the route event names them (`by`): in the mark after drain and eject, said apart after the others.
  else ctx.out(`${out.route} ${out.host}: ${describeHost(out.before)} → ${describeHost(out.after)}${out.after.admin ? '' : ` (by ${by})`}${dry ? '  (dry run: nothing written)' : ''}`);
  if (out.warning !== undefined && flags['json'] !== true) (ctx.note ?? ctx.out)(`${dry ? 'would need --force' : 'done with --force'}: ${out.warning}`);
  return 0;
}

const hostArgs = [
  { name: 'modid', help: 'module id, 0..4294967295' },
  { name: 'cmdid', help: 'command id, 0..4294967295' },
  { name: 'host', help: 'ip:port of a host in the registry' },
];
const commonFlags = {
  'dry-run': { help: 'show the change, write nothing', boolean: true },
  force: { help: 'drain or eject even the last healthy hosts of the route (or into panic)', boolean: true },
  by: { help: 'who acts (recorded in the registry and the events); default cli@<node id>', placeholder: 'name' },
  json: { help: 'print machine-readable JSON instead of text', boolean: true },
} as const;

const withoutForce = { 'dry-run': commonFlags['dry-run'], by: commonFlags.by, json: commonFlags.json } as const;
const risky = (a: Action): boolean => a === Action.drain || a === Action.eject;

function command(action: Action, summary: string, example: string): Command {
  return {
    name: action,
    summary,
    usage: `lars host ${action} <modid> <cmdid> <ip:port>${action === Action.weight ? ' <weight>' : ''} [--by name] [--dry-run]${risky(action) ? ' [--force]' : ''}`,
    args: action === Action.weight ? [...hostArgs, { name: 'weight', help: `${LIMITS.minWeight}..${LIMITS.maxWeight}` }] : hostArgs,
    flags: risky(action) ? commonFlags : withoutForce,
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
