/**
 * Self-registered hosts (elastic scaling) merged with the admin registry:
 * pure rules, no I/O, time passed in.
 *
 * - A self-registered host is a member of its route while it says `up` and
 *   was heard from within its `ttl_ms` (by the route node's clock, from the
 *   moment the node received the heartbeat: clocks of other machines are
 *   not trusted).
 * - The effective entry of a route is the admin entry with the live
 *   self-registered hosts it lacks added after its own (sorted by ip:port).
 *   An admin entry for the same ip:port wins: its weight and zone count, and
 *   the host stays while the admin keeps it, whatever it says of itself.
 * - A route with no admin entry exists while it has a live self-registered
 *   host, with the default profile and parameters.
 * - A host that is no longer a member (`draining`, expired or deleted) is
 *   missing from the effective entry: the route actor drains it.
 */
import { LIMITS, SelfState, type RegistryEntry, type RegistryHost, type SelfRegistration } from '../schemas/messages.ts';

/** A self-registration as a route node holds it: the record and when the node last received it. */
export interface HeardHost {
  readonly rec: SelfRegistration;
  /** Node clock, ms. */
  readonly heardAt: number;
}

/** `updated_by` of an entry made of self-registered hosts only. */
export const SELF_REGISTERED_BY = 'self-registration';

/** Whether the host is a member of its route at `now`. */
export function isLive(h: HeardHost, now: number): boolean {
  return h.rec.state === SelfState.up && now - h.heardAt <= h.rec.ttl_ms;
}

/** The live hosts, as registry hosts, sorted by ip:port. */
export function liveHosts(hosts: Iterable<HeardHost>, now: number): RegistryHost[] {
  const out: RegistryHost[] = [];
  for (const h of hosts) {
    if (!isLive(h, now)) continue;
    const r: RegistryHost = { ip: h.rec.ip, port: h.rec.port, weight: h.rec.weight };
    if (h.rec.zone !== undefined && h.rec.zone !== null) r.zone = h.rec.zone;
    out.push(r);
  }
  return out.sort(byAddress);
}

function byAddress(a: RegistryHost, b: RegistryHost): number {
  const ka = `${a.ip}:${a.port}`;
  const kb = `${b.ip}:${b.port}`;
  return ka < kb ? -1 : ka > kb ? 1 : 0;
}

/**
 * The effective registry entry of a route: `admin` (absent: none) with the
 * live self-registered hosts `self` it lacks; undefined when neither has a host
 * to offer (no admin entry and no live self-registered host).
 */
export function mergeEntry(admin: RegistryEntry | undefined, self: readonly RegistryHost[], modid: number, cmdid: number, now: number): RegistryEntry | undefined {
  if (self.length === 0) return admin;
  if (admin === undefined) {
    return { v: 1, modid, cmdid, hosts: self.slice(0, LIMITS.maxRouteHosts), updated_by: SELF_REGISTERED_BY, ts: now };
  }
  const have = new Set(admin.hosts.map((h) => `${h.ip}:${h.port}`));
  const hosts = [...admin.hosts];
  for (const h of self) {
    if (hosts.length >= LIMITS.maxRouteHosts) break;
    if (!have.has(`${h.ip}:${h.port}`)) hosts.push(h);
  }
  return { ...admin, hosts };
}

/** The earliest time after `now` at which one of `hosts` stops being live (Infinity: none will). */
export function nextExpiry(hosts: Iterable<HeardHost>, now: number): number {
  let t = Infinity;
  for (const h of hosts) {
    if (!isLive(h, now)) continue;
    const end = h.heardAt + h.rec.ttl_ms + 1;
    if (end < t) t = end;
  }
  return t;
}
