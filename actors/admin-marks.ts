/**
 * An operator's mark on a host (registry `admin`, set by `lars host`), set
 * or lifted, through the host machine: drained → draining, kept in the route
 * however long (`admin_drain`), and back to healthy when lifted
 * (`admin_undrain`); ejected → overloaded until cleared, with no probe and no
 * report judged (`admin_eject`, an ejection of ADMIN_EJECT_MS), and cleared
 * as if its ejection time had run out (`admin_clear`: probing in the default
 * profile, healthy in lars).
 *
 * While a mark is in force the host's reports and ticks judge nothing (the
 * route skips its policy for a marked host), and an ejected host gets no
 * traffic even in panic (the route's pick weight).
 */
import { AdminMark } from '../schemas/contract.ts';
import type { PendingRouteEvent } from './checkpoint.ts';
import { ADMIN_EJECTION } from './ejection.ts';
import type { HostSlot } from './host-slot.ts';
import type { RouteMechanism } from './profiles/types.ts';

/**
 * Sets host `s`'s mark to `mark` (undefined: none), sending its machine the
 * events that lift the previous mark and apply the new one; the events this
 * adds to the route's `pending` say who asked (`by`). Returns true: the route
 * has a change to publish.
 */
export function applyAdminMark(route: Pick<RouteMechanism, 'send'>, pending: PendingRouteEvent[], s: HostSlot, mark: AdminMark | undefined, now: number, by: string | undefined): true {
  const first = pending.length;
  setMark(route, s, mark, now);
  // the events of an operator's action say who asked
  if (by !== undefined && by !== '') for (let i = first; i < pending.length; i++) pending[i]!.by = by;
  return true;
}

function setMark(route: Pick<RouteMechanism, 'send'>, s: HostSlot, mark: AdminMark | undefined, now: number): void {
  const prev = s.admin;
  s.admin = mark;
  if (prev === AdminMark.drained && s.state === 'draining') route.send(s, { type: 'READD', now, reason: 'admin_undrain' }, now);
  if (prev === AdminMark.ejected && s.state === 'overloaded') route.send(s, { type: 'EJECTION_ELAPSED', now, reason: 'admin_clear' }, now);
  if (mark === AdminMark.drained && s.state !== 'draining') route.send(s, { type: 'DRAIN', now, reason: 'admin_drain' }, now);
  if (mark === AdminMark.ejected && (s.state === 'healthy' || s.state === 'probing')) route.send(s, { type: 'EJECT', reason: 'admin_eject', now, ...ADMIN_EJECTION }, now);
}
