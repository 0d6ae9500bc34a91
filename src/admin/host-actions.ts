/**
 * An operator's actions on one host of a route (drain, undrain, eject, clear,
 * weight), written to the registry with who did them. The route node carries
 * them out through the node-state machine, where they become events with the
 * reasons `admin_drain`, `admin_undrain`, `admin_eject` and `admin_clear`.
 * Shared by `lars host` and the web console.
 */
import { AdminMark, LIMITS, type RegistryEntry, type RegistryHost } from '../../schemas/messages.ts';
import type { Registry } from '../registry.ts';
import { ErrorCode, LarsError, RegistryError, UsageError } from '../errors.ts';

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

export interface HostActionRequest {
  route: { modid: number; cmdid: number };
  addr: { ip: string; port: number };
  action: HostAction;
  by: string;
  /** For `weight`. */
  weight?: number;
  /** Show the change, write nothing. */
  dryRun?: boolean;
  now?: () => number;
}

export interface HostActionResult {
  route: string;
  host: string;
  action: HostAction;
  dryRun: boolean;
  changed: boolean;
  before: RegistryHost;
  after: RegistryHost;
}

/** Carries out one action on the registry (compare-and-set, retried on conflict by `Registry.update`). */
export async function actOnHost(reg: Registry, r: HostActionRequest): Promise<HostActionResult> {
  const { modid, cmdid } = r.route;
  const key = `${r.addr.ip}:${r.addr.port}`;
  const now = r.now ?? Date.now;
  let before: RegistryHost | undefined;
  let after: RegistryHost | undefined;
  const plan = (cur: RegistryEntry | undefined): RegistryEntry | null => {
    if (!cur) throw new LarsError(ErrorCode.noRoute, `route ${modid}.${cmdid} is not registered`);
    const i = cur.hosts.findIndex((h) => h.ip === r.addr.ip && h.port === r.addr.port);
    if (i < 0) throw new RegistryError(`route ${modid}.${cmdid} has no host ${key} in the registry (a self-registered host is changed by its service)`);
    before = cur.hosts[i]!;
    after = applyHostAction(before, r.action, r.by, now(), r.weight);
    if (after === undefined) return cur;
    const hosts = [...cur.hosts];
    hosts[i] = after;
    return { ...cur, hosts, updated_by: r.by, ts: now() };
  };
  if (r.dryRun) plan((await reg.get(modid, cmdid))?.entry);
  else await reg.update(modid, cmdid, plan);
  return { route: `${modid}.${cmdid}`, host: key, action: r.action, dryRun: r.dryRun === true, changed: after !== undefined, before: before!, after: after ?? before! };
}
