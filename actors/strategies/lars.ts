/**
 * Lars' round robin with probing, as the original agent's
 * `load_balance::choice_one_host` does it:
 *
 * - hosts `healthy` or `probing` (with a positive pick weight) form the idle
 *   list, hosts `overloaded` the overload list; `draining` hosts are never
 *   picked. A healthy/probing host with pick weight 0 can only be probed, so it
 *   joins the overload list (the weight's contract: "0 = do not pick, except
 *   as a Lars probe").
 * - idle list empty: a counter counts calls; while it is below `probeNum` it is
 *   incremented and the call answers -1 (Lars' RET_OVERLOAD); once it reaches
 *   `probeNum` it is reset and the next overloaded host is returned as a probe.
 *   With probe_num 10 and every host overloaded: ten -1, then a probe.
 * - idle list non-empty, overload list empty: the next idle host (the counter
 *   is left alone).
 * - both non-empty: counter >= probeNum → reset it and probe the next
 *   overloaded host; else increment it and return the next idle host. One call
 *   in probeNum + 1 is a probe.
 *
 * Both lists rotate in `view.hosts` order. The original moves a host to the
 * back of its list when it is picked; here each list remembers the host it
 * returned last and continues with the next one after it, which survives
 * `update` (hosts changing lists, hosts added or removed) without a jump back
 * to the start. The counter is never reset by `update`, as in the original.
 * The original leaves the counter uninitialised; it starts at 0 here.
 *
 * In panic (`view.panic`) states are ignored: plain round robin over every
 * host with a positive pick weight, and the counter is left alone.
 */
import { hostKeys, sameHostSet } from './hosts.ts';
import { StrategyName, type PickView, type Strategy, type StrategyOptions } from './types.ts';

export type LarsOptions = StrategyOptions;

/** One round-robin list: view indices in view order and the one returned last. */
class Rotation {
  list = new Int32Array(0);
  private pos = 0;
  /** View index of the host this list returned last, -1 for none. */
  last = -1;

  /** Replaces the list; the rotation goes on with the first host after `last`. */
  set(list: Int32Array<ArrayBuffer>): void {
    this.list = list;
    let p = 0;
    while (p < list.length && list[p]! <= this.last) p++;
    this.pos = p === list.length ? 0 : p;
  }

  next(): number {
    const l = this.list;
    if (l.length === 0) return -1;
    const i = this.pos;
    const v = l[i]!;
    this.pos = i + 1 === l.length ? 0 : i + 1;
    this.last = v;
    return v;
  }
}

class Lars implements Strategy {
  readonly name = StrategyName.lars;
  private keys: string[] = [];
  private readonly idle = new Rotation();
  private readonly overload = new Rotation();
  private readonly all = new Rotation();
  private panic = false;
  private probeNum = 10;
  /** Lars' `_access_cnt`. */
  private counter = 0;

  update(view: PickView): void {
    const hosts = view.hosts;
    if (!sameHostSet(this.keys, hosts)) {
      const remap = lastRemapper(this.keys, hostKeys(hosts));
      this.idle.last = remap(this.idle.last);
      this.overload.last = remap(this.overload.last);
      this.all.last = remap(this.all.last);
      this.keys = hostKeys(hosts);
    }
    const idle: number[] = [];
    const overload: number[] = [];
    const all: number[] = [];
    for (let i = 0; i < hosts.length; i++) {
      const h = hosts[i]!;
      const positive = h.pickWeight > 0;
      if (positive) all.push(i);
      // draining hosts, and hosts an operator ejected, are never picked, not even as probes
      if (h.state === 'draining' || h.reason === 'admin_eject') continue;
      if (positive && (h.state === 'healthy' || h.state === 'probing')) idle.push(i);
      else overload.push(i);
    }
    this.idle.set(Int32Array.from(idle));
    this.overload.set(Int32Array.from(overload));
    this.all.set(Int32Array.from(all));
    this.panic = view.panic;
    this.probeNum = Number.isFinite(view.probeNum) ? Math.max(0, Math.floor(view.probeNum)) : 10;
  }

  pick(): number {
    if (this.panic) return this.all.next();
    if (this.idle.list.length === 0) {
      if (this.counter >= this.probeNum) {
        this.counter = 0;
        return this.overload.next();
      }
      this.counter++;
      return -1;
    }
    if (this.overload.list.length === 0) return this.idle.next();
    if (this.counter >= this.probeNum) {
      this.counter = 0;
      return this.overload.next();
    }
    this.counter++;
    return this.idle.next();
  }
}

/**
 * Maps a view index of the old host list to the new one: the same host if it
 * is still there, else the last surviving host before it (so the rotation
 * continues where the removed host stood), else -1.
 */
function lastRemapper(oldKeys: readonly string[], newKeys: readonly string[]): (last: number) => number {
  const at = new Map<string, number>();
  newKeys.forEach((k, i) => at.set(k, i));
  return (last) => {
    for (let i = Math.min(last, oldKeys.length - 1); i >= 0; i--) {
      const j = at.get(oldKeys[i]!);
      if (j !== undefined) return j;
    }
    return -1;
  };
}

/** Lars' round robin with probing; `pick` returns -1 for Lars' RET_OVERLOAD. */
export function createLars(_opts: LarsOptions = {}): Strategy {
  return new Lars();
}
