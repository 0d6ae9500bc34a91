/**
 * Partition ownership over a run, from the recorded lease history and the
 * process timeline (pure). A partition is owned at time T when its latest
 * lease revision stored at or before T names a node whose process was alive
 * at T (running and not paused, in the incarnation that wrote the lease) and
 * was written within the lease time before T. Server timestamps order the
 * writes and are used throughout, so a late receipt by the recorder changes
 * nothing.
 */
import { ProcEventKind, type LeaseEntry, type ProcEvent } from './types.ts';

export interface Interval {
  from: number;
  to: number;
}

export interface Incarnation extends Interval {
  paused: Interval[];
}

/** A process' lives: from each `start` to its `kill` or `exit` (or `end`), with the paused stretches. */
export function incarnations(events: readonly ProcEvent[], proc: string, end: number): Incarnation[] {
  const out: Incarnation[] = [];
  let cur: Incarnation | undefined;
  let pausedAt: number | undefined;
  for (const e of events) {
    if (e.proc !== proc) continue;
    if (e.what === ProcEventKind.start) {
      if (cur) cur.to = Math.min(cur.to, e.t);
      cur = { from: e.t, to: end, paused: [] };
      pausedAt = undefined;
      out.push(cur);
    } else if (cur && cur.to === end && (e.what === ProcEventKind.kill || e.what === ProcEventKind.exit)) {
      cur.to = e.t;
      if (pausedAt !== undefined) cur.paused.push({ from: pausedAt, to: e.t });
      pausedAt = undefined;
    } else if (cur && e.what === ProcEventKind.pause && pausedAt === undefined) {
      pausedAt = e.t;
    } else if (cur && e.what === ProcEventKind.resume && pausedAt !== undefined) {
      cur.paused.push({ from: pausedAt, to: e.t });
      pausedAt = undefined;
    }
  }
  if (cur && pausedAt !== undefined) cur.paused.push({ from: pausedAt, to: cur.to });
  return out;
}

/** `iv` minus the `holes` (sorted or not). */
export function subtract(iv: Interval, holes: readonly Interval[]): Interval[] {
  let parts: Interval[] = [iv];
  for (const h of holes) {
    const next: Interval[] = [];
    for (const p of parts) {
      if (h.to <= p.from || h.from >= p.to) {
        next.push(p);
        continue;
      }
      if (h.from > p.from) next.push({ from: p.from, to: h.from });
      if (h.to < p.to) next.push({ from: h.to, to: p.to });
    }
    parts = next;
  }
  return parts.filter((p) => p.to > p.from);
}

/** Sorted, overlapping or touching intervals joined. */
export function merge(ivs: readonly Interval[]): Interval[] {
  const s = [...ivs].sort((a, b) => a.from - b.from);
  const out: Interval[] = [];
  for (const iv of s) {
    const last = out[out.length - 1];
    if (last && iv.from <= last.to) last.to = Math.max(last.to, iv.to);
    else out.push({ ...iv });
  }
  return out;
}

export interface OwnershipOptions {
  partitions: number;
  leaseMs: number;
  /** Node name → its process id in the timeline. */
  procOf: (node: string) => string;
  end: number;
}

/** Per partition, the merged stretches when it was owned. */
export function ownedIntervals(leases: readonly LeaseEntry[], events: readonly ProcEvent[], o: OwnershipOptions): Interval[][] {
  const lives = new Map<string, Incarnation[]>();
  const livesOf = (node: string): Incarnation[] => {
    let l = lives.get(node);
    if (l === undefined) {
      l = incarnations(events, o.procOf(node), o.end);
      lives.set(node, l);
    }
    return l;
  };
  const byP: LeaseEntry[][] = Array.from({ length: o.partitions }, () => []);
  for (const e of leases) if (e.p >= 0 && e.p < o.partitions) byP[e.p]!.push(e);
  return byP.map((es) => {
    // by server time: one record has been seen at two revisions, and revisions are per server
    es.sort((a, b) => a.created - b.created || a.rev - b.rev);
    const owned: Interval[] = [];
    for (let i = 0; i < es.length; i++) {
      const e = es[i]!;
      if (e.node === undefined) continue;
      const life = livesOf(e.node).find((l) => l.from <= e.created && e.created < l.to);
      if (life === undefined) continue;
      const next = es[i + 1];
      const to = Math.min(e.created + o.leaseMs, next ? Math.max(e.created, next.created) : Infinity, life.to, o.end);
      if (to > e.created) owned.push(...subtract({ from: e.created, to }, life.paused));
    }
    return merge(owned);
  });
}

/** The stretches of [from, to) not covered by `owned` (merged, sorted). */
export function gaps(owned: readonly Interval[], from: number, to: number): Interval[] {
  return subtract({ from, to }, owned);
}

/** Partitions not owned at `t`. */
export function unownedAt(owned: readonly Interval[][], t: number): number {
  let n = 0;
  for (const ivs of owned) if (!ivs.some((iv) => iv.from <= t && t < iv.to)) n++;
  return n;
}

/** [t, partitions unowned] every `stepMs` over [from, to]. */
export function unownedSeries(owned: readonly Interval[][], from: number, to: number, stepMs: number): Array<[number, number]> {
  const out: Array<[number, number]> = [];
  const idx = owned.map(() => 0);
  for (let t = from; t <= to; t += stepMs) {
    let n = 0;
    owned.forEach((ivs, p) => {
      let i = idx[p]!;
      while (i < ivs.length && ivs[i]!.to <= t) i++;
      idx[p] = i;
      const iv = ivs[i];
      if (!(iv && iv.from <= t)) n++;
    });
    out.push([t, n]);
  }
  return out;
}

/** Whether `proc` was running and not paused at `t` (a node answering the poll must be). */
export function aliveAt(lives: readonly Incarnation[], t: number): boolean {
  const l = lives.find((x) => x.from <= t && t < x.to);
  return l !== undefined && !l.paused.some((p) => p.from <= t && t < p.to);
}
