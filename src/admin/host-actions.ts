/**
 * An operator's actions on one host of a route (drain, undrain, eject, clear,
 * weight), written to the registry with who did them. The route node carries
 * them out through the host machine, where they become events with the
 * reasons `admin_drain`, `admin_undrain`, `admin_eject` and `admin_clear`.
 * Shared by `lars host` and the web console.
 *
 * A drain or an eject that would take the last healthy hosts of a route out
 * of its traffic, or put the route into panic (its traffic then spreads over
 * every host, the failing ones too), is refused until confirmed: `--force`
 * on the command line, `force: true` from the console once its user agreed.
 * The refusal says what would happen.
 */
import { AdminMark, LIMITS, type RegistryEntry, type RegistryHost, type RouteState } from '../../schemas/messages.ts';
import { resolveParams } from '../../actors/params.ts';
import type { Registry } from '../registry/registry.ts';
import { ConfirmationRequiredError, ErrorCode, LarsError, RegistryError, UsageError } from '../lib/errors.ts';

export const HostAction = {
  drain: 'drain',
  undrain: 'undrain',
  eject: 'eject',
  clear: 'clear',
  weight: 'weight',
} as const;
export type HostAction = (typeof HostAction)[keyof typeof HostAction];

export function isHostAction(s: string): s is HostAction {
  return Object.prototype.hasOwnProperty.call(HostAction, s);
}

/** What an action does to a registry host; undefined when it changes nothing. */
export function applyHostAction(h: RegistryHost, action: HostAction, by: string, ts: number, weight?: number): RegistryHost | undefined {
  const bare: RegistryHost = { ip: h.ip, port: h.port, weight: h.weight };
  if (h.zone !== undefined) bare.zone = h.zone;
  switch (action) {
    case HostAction.drain:
      return h.admin?.state === AdminMark.drained ? undefined : { ...bare, admin: { state: AdminMark.drained, by, ts } };
    case HostAction.eject:
      return h.admin?.state === AdminMark.ejected ? undefined : { ...bare, admin: { state: AdminMark.ejected, by, ts } };
    case HostAction.undrain:
      return h.admin?.state === AdminMark.drained ? bare : undefined;
    case HostAction.clear:
      return h.admin?.state === AdminMark.ejected ? bare : undefined;
    case HostAction.weight:
      return h.weight === weight ? undefined : { ...h, weight: weight! };
  }
}

/** `ip:port` → its parts, or a usage error. */
export function parseHostAddr(s: string | undefined): { ip: string; port: number } {
  const m = /^([0-9.]{7,15}):(\d{1,5})$/.exec(s ?? '');
  if (!m) throw new UsageError(`host must be ip:port, got ${JSON.stringify(s ?? '')}`);
  return { ip: m[1]!, port: Number(m[2]) };
}

/** A weight argument checked against the contract's limits. */
export function parseWeight(s: unknown): number {
  const w = typeof s === 'number' ? s : typeof s === 'string' && /^\d{1,5}$/.test(s) ? Number(s) : Number.NaN;
  if (!(Number.isInteger(w) && w >= LIMITS.minWeight && w <= LIMITS.maxWeight)) throw new UsageError(`weight must be ${LIMITS.minWeight}..${LIMITS.maxWeight}, got ${JSON.stringify(s ?? '')}`);
  return w;
}

/** Who acts, cut to what the contract stores. */
export function actor(by: string): string {
  return by.slice(0, LIMITS.maxSenderLength);
}

/**
 * What a drain or an eject of `addr` would do to the route's traffic, when
 * that is to leave it without a healthy host or to put it into panic; else
 * undefined. `route` is the route as last published (host states); without
 * one, every registry host without an operator's mark counts as healthy.
 * Self-registered hosts count as they are published.
 */
export function riskOf(entry: RegistryEntry, route: RouteState | undefined, addr: { ip: string; port: number }, action: HostAction): string | undefined {
  if (action !== HostAction.drain && action !== HostAction.eject) return undefined;
  const key = (h: { ip: string; port: number }): string => `${h.ip}:${h.port}`;
  const target = key(addr);
  const marked = new Map(entry.hosts.map((h) => [key(h), h.admin?.state]));
  // every host of the route and its state: as published, else as registered
  const hosts: Array<{ key: string; state: string }> = route
    ? route.hosts.map((h) => ({ key: key(h), state: h.state }))
    : entry.hosts.map((h) => ({ key: key(h), state: h.admin?.state === AdminMark.drained ? 'draining' : h.admin?.state === AdminMark.ejected ? 'overloaded' : 'healthy' }));
  const healthy = (h: { key: string; state: string }): boolean => h.state === 'healthy' && marked.get(h.key) === undefined;
  const me = hosts.find((h) => h.key === target);
  // a host already out (or not published yet) changes nothing of the route's traffic
  if (!me || !healthy(me)) return undefined;
  const after = hosts.map((h) => (h.key === target ? { key: h.key, state: action === HostAction.drain ? 'draining' : 'overloaded' } : h));
  const well = after.filter(healthy).length;
  const active = after.filter((h) => h.state !== 'draining').length;
  // the hosts traffic can still go to: not draining and without an operator's mark (an operator's ejection holds in panic too)
  const fallback = after.filter((h) => h.key !== target && h.state !== 'draining' && marked.get(h.key) === undefined).length;
  const others = hosts.filter((h) => h.key !== target);
  const resolved = resolveParams(route?.profile ?? entry.profile ?? 'default', entry.params ?? {});
  const threshold = resolved.ok ? resolved.params.panic_threshold : 0;
  const route_ = `route ${entry.modid}.${entry.cmdid}`;
  const panicText = 'its traffic spreads over every host, the failing ones included';
  if (well === 0) {
    const rest = others.length === 0 ? 'it is the route\'s only host' : `the others: ${others.map((h) => `${h.key} ${marked.get(h.key) ?? h.state}`).join(', ')}`;
    const then = fallback === 0 ? 'callers get no host (NO_HOST)' : threshold > 0 ? `the route goes into panic: ${panicText}` : 'callers get only the trial calls Lars sends to the hosts it ejected';
    return `${target} is the last healthy host of ${route_} (${rest}): ${then}`;
  }
  const inPanic = route?.panic ?? false;
  if (!inPanic && threshold > 0 && active > 0 && (well * 100) / active < threshold) {
    return `${route_} would go into panic (${well} of ${active} hosts healthy, below panic_threshold ${threshold} %): ${panicText}`;
  }
  return undefined;
}

export interface HostActionRequest {
  route: { modid: number; cmdid: number };
  addr: { ip: string; port: number };
  action: HostAction;
  by: string;
  /** For `weight`. */
  weight?: number;
  /** Show the change, write nothing. */
  dryRun?: boolean;
  /** Do it even when it takes the route's last healthy hosts out of its traffic (riskOf). */
  force?: boolean;
  now?: () => number;
}

/** Where the route's published state is read from (the routes bucket); undefined when none is published. */
export interface PublishedRoutes {
  get(modid: number, cmdid: number): Promise<{ state: RouteState } | undefined>;
}

export interface HostActionResult {
  route: string;
  host: string;
  action: HostAction;
  dryRun: boolean;
  changed: boolean;
  before: RegistryHost;
  after: RegistryHost;
  /** What the action does to the route's traffic when that is to leave it without a healthy host or in panic (done with force, or a dry run). */
  warning?: string;
}

/**
 * Carries out one action on the registry (compare-and-set, retried on
 * conflict by `Registry.update`). A drain or eject that riskOf() warns of is
 * refused with ConfirmationRequiredError unless `force` (a dry run reports
 * the warning).
 */
export async function actOnHost(reg: Registry, r: HostActionRequest, routes?: PublishedRoutes): Promise<HostActionResult> {
  const { modid, cmdid } = r.route;
  const key = `${r.addr.ip}:${r.addr.port}`;
  const now = r.now ?? Date.now;
  let before: RegistryHost | undefined;
  let after: RegistryHost | undefined;
  let warning: string | undefined;
  const published = r.action === HostAction.drain || r.action === HostAction.eject ? (await routes?.get(modid, cmdid))?.state : undefined;
  const plan = (cur: RegistryEntry | undefined): RegistryEntry | null => {
    if (!cur) throw new LarsError(ErrorCode.noRoute, `route ${modid}.${cmdid} is not registered`);
    const i = cur.hosts.findIndex((h) => h.ip === r.addr.ip && h.port === r.addr.port);
    if (i < 0) throw new RegistryError(`route ${modid}.${cmdid} has no host ${key} in the registry (a self-registered host is changed by its service)`);
    before = cur.hosts[i]!;
    after = applyHostAction(before, r.action, r.by, now(), r.weight);
    if (after === undefined) return cur;
    warning = riskOf(cur, published, r.addr, r.action);
    if (warning !== undefined && r.force !== true && r.dryRun !== true) {
      throw new ConfirmationRequiredError(`${r.action} of ${key} refused: ${warning}; to do it anyway: --force`, warning);
    }
    const hosts = [...cur.hosts];
    hosts[i] = after;
    return { ...cur, hosts, updated_by: r.by, ts: now() };
  };
  if (r.dryRun) plan((await reg.get(modid, cmdid))?.entry);
  else await reg.update(modid, cmdid, plan);
  const result: HostActionResult = { route: `${modid}.${cmdid}`, host: key, action: r.action, dryRun: r.dryRun === true, changed: after !== undefined, before: before!, after: after ?? before! };
  if (warning !== undefined) result.warning = warning;
  return result;
}
