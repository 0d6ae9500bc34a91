/**
 * The simulated backends: each host serves at most `capacity` calls at once
 * (the rest wait in a FIFO queue, so load turns into latency), draws each
 * call's service time from its latency distribution, fails a call with its
 * error probability (a failing call may answer faster: fail fast), and
 * follows its timeline of changes. A call's behaviour is fixed when the host
 * starts serving it; a capacity change takes effect when it starts or ends.
 * The host's work goes on when the caller has given up, unless the caller
 * aborts the call and the host honours it (`cancel`: a queued call leaves
 * the queue, a call in service frees its slot at once). A host with a
 * capacity can report its utilization with each answer: calls in service
 * over capacity, averaged over about the last second.
 */
import type { Change, Errors, HostGroup, Latency } from './scenario.ts';
import { exponential, standardNormal, type Random } from './random.ts';

/** One service draw: latency in ms. */
export function drawLatency(l: Latency, r: Random): number {
  switch (l.dist) {
    case 'fixed':
      return l.ms;
    case 'normal':
      return Math.max(0, l.mean_ms + l.sd_ms * standardNormal(r));
    case 'lognormal':
      return l.median_ms * Math.exp(l.sigma * standardNormal(r));
    case 'exponential':
      return exponential(r, l.mean_ms);
    case 'choice': {
      const w = l.weights;
      if (w === undefined) return l.ms[Math.min(l.ms.length - 1, Math.floor(r() * l.ms.length))]!;
      let total = 0;
      for (const x of w) total += x;
      let u = r() * total;
      for (let i = 0; i < w.length; i++) {
        u -= w[i]!;
        if (u < 0) return l.ms[i]!;
      }
      return l.ms[l.ms.length - 1]!;
    }
  }
}

/** Whether change `c` is in force at `t` ms. */
export function changeActive(c: Change, t: number): boolean {
  const at = c.at_s * 1000;
  if (t < at) return false;
  if (c.for_s === undefined) return true;
  const len = c.for_s * 1000;
  if (c.every_s === undefined) return t < at + len;
  return (t - at) % (c.every_s * 1000) < len;
}

/** Time constant of the utilization a host reports, ms: an exponential average of calls in service over capacity. */
export const UTILIZATION_TAU_MS = 1000;

/** A call as a host sees it. */
export interface HostCall {
  /** When the host finished it (set on finishing). */
  hostDone: number;
  ok: boolean;
  /** When the host started serving it; -1 while it waits in the queue; undefined: it never reached the host. */
  hostStart?: number;
  /** The host stopped working on it when its caller aborted it (its end is ignored). */
  cancelled?: boolean;
}

export class SimHost<C extends HostCall = HostCall> {
  readonly index: number;
  readonly label: string;
  readonly ip: string;
  readonly port: number;
  readonly key: string;
  readonly weight: number;
  private readonly spec: HostGroup;
  private readonly random: Random;
  busy = 0;
  private queue: C[] = [];
  private qHead = 0;
  /** Calls still in the queue that were cancelled (skipped when their turn comes). */
  private cancelledQueued = 0;
  /** Service time owed for refusals (`refuse_ms` each), added to the next call started. */
  private refusalDebt = 0;
  /** Calls refused as overloaded. */
  refused = 0;
  // utilization bookkeeping: areas under busy(t) and capacity(t)
  private lastT = 0;
  busyArea = 0;
  capArea = 0;
  /** Calls started, finished with an error. */
  served = 0;
  failed = 0;
  /** Longest queue seen. */
  maxQueue = 0;
  /** Whether answers carry the host's utilization. */
  readonly reportsUtilization: boolean;
  /** Whether the host stops working on a call its caller aborted (`on_cancel`, default `stop`). */
  readonly stopsOnCancel: boolean;
  /** Calls in service over capacity, exponentially averaged (UTILIZATION_TAU_MS), up to the last `account`. */
  private utilAvg = 0;

  constructor(index: number, label: string, spec: HostGroup, random: Random) {
    this.index = index;
    this.label = label;
    this.ip = `10.0.${index >> 8}.${(index & 255) + 1}`;
    this.port = 8000;
    this.key = `${this.ip}:${this.port}`;
    this.weight = spec.weight ?? 100;
    this.spec = spec;
    this.random = random;
    this.reportsUtilization = spec.report_utilization ?? this.limited;
    this.stopsOnCancel = spec.on_cancel !== 'finish';
  }

  /** Capacity in force at `t` (Infinity: unlimited). */
  capacityAt(t: number): number {
    let cap = this.spec.capacity ?? Infinity;
    for (const c of this.spec.changes ?? []) if (c.capacity !== undefined && changeActive(c, t)) cap = c.capacity;
    return cap;
  }

  get limited(): boolean {
    return this.spec.capacity !== undefined || (this.spec.changes ?? []).some((c) => c.capacity !== undefined);
  }

  get queued(): number {
    return this.queue.length - this.qHead - this.cancelledQueued;
  }

  private behaviourAt(t: number): { latency: Latency; errors: Errors | undefined } {
    let latency = this.spec.latency;
    let errors = this.spec.errors;
    for (const c of this.spec.changes ?? []) {
      if (!changeActive(c, t)) continue;
      if (c.latency) latency = c.latency;
      if (c.errors) errors = c.errors;
    }
    return { latency, errors };
  }

  /** Brings the utilization areas up to `t`. */
  account(t: number): void {
    const dt = t - this.lastT;
    if (dt <= 0) return;
    this.busyArea += this.busy * dt;
    const cap = this.capacityAt(this.lastT);
    if (Number.isFinite(cap)) {
      this.capArea += cap * dt;
      // busy/cap was constant over dt: the average moves toward it exactly
      const a = Math.exp(-dt / UTILIZATION_TAU_MS);
      this.utilAvg = this.utilAvg * a + (this.busy / cap) * (1 - a);
    }
    this.lastT = t;
  }

  /** The utilization the host reports with an answer at the last `account` (0..1), or undefined when it reports none. */
  utilization(): number | undefined {
    if (!this.reportsUtilization) return undefined;
    return this.utilAvg > 1 ? 1 : this.utilAvg;
  }

  /** Whether a call arriving at `t` is refused as overloaded: every slot busy and the queue at its `queue_limit`. */
  refuses(t: number): boolean {
    const limit = this.spec.queue_limit;
    return limit !== undefined && this.busy >= this.capacityAt(t) && this.queued >= limit;
  }

  /** The host refuses a call as overloaded: the refusal's cost (`refuse_ms`) delays the next call it starts. */
  refuse(): void {
    this.refused++;
    this.refusalDebt += this.spec.refuse_ms ?? 0;
  }

  /**
   * A call arrives at `t`. Returns the service end time when the host starts
   * it now, or undefined when it waits in the queue.
   */
  arrive(call: C, t: number): number | undefined {
    this.account(t);
    if (this.busy < this.capacityAt(t)) return this.start(call, t);
    call.hostStart = -1;
    this.queue.push(call);
    if (this.queued > this.maxQueue) this.maxQueue = this.queued;
    return undefined;
  }

  private start(call: C, t: number): number {
    call.hostStart = t;
    this.busy++;
    this.served++;
    const b = this.behaviourAt(t);
    const fails = b.errors !== undefined && b.errors.rate > 0 && this.random() < b.errors.rate;
    call.ok = !fails;
    if (fails) this.failed++;
    const stalls = this.spec.stalls;
    const d =
      fails && b.errors!.latency_ms !== undefined
        ? b.errors!.latency_ms
        : !fails && stalls !== undefined && stalls.rate > 0 && this.random() < stalls.rate
          ? drawLatency(stalls.latency, this.random)
          : drawLatency(b.latency, this.random);
    call.hostDone = t + d + this.refusalDebt;
    this.refusalDebt = 0;
    return call.hostDone;
  }

  /**
   * The host finished a call at `t`: it takes queued calls while it has room
   * (capacity may have grown meanwhile). Returns the calls started, with their
   * end times set.
   */
  finish(t: number): C[] {
    this.account(t);
    this.busy--;
    return this.takeQueued(t);
  }

  /**
   * The caller aborted `call` at `t` and the host stops working on it: a
   * queued call leaves the queue, a call in service frees its slot now.
   * Returns the host's time spent on it, ms, and the queued calls started
   * in its place (their end times set).
   */
  cancel(call: C, t: number): { workMs: number; started: C[] } {
    const at = call.hostStart;
    if (at === undefined || call.cancelled === true) return { workMs: 0, started: [] };
    if (at < 0) {
      call.cancelled = true;
      this.cancelledQueued++;
      return { workMs: 0, started: [] };
    }
    // finished already (its end is due now, and counted then): nothing to stop
    if (call.hostDone <= t) return { workMs: 0, started: [] };
    call.cancelled = true;
    this.account(t);
    this.busy--;
    return { workMs: t - at, started: this.takeQueued(t) };
  }

  /** A capacity change starts or ends at `t`: queued calls start if there is room now. */
  wake(t: number): C[] {
    this.account(t);
    return this.takeQueued(t);
  }

  /** Times (ms, up to `endMs`) at which a change of this host's capacity starts or ends. */
  capacityTimes(endMs: number): number[] {
    const out: number[] = [];
    for (const c of this.spec.changes ?? []) {
      if (c.capacity === undefined) continue;
      const period = c.every_s === undefined ? Infinity : c.every_s * 1000;
      for (let t = c.at_s * 1000; t <= endMs; t += period) {
        out.push(t);
        if (c.for_s !== undefined && t + c.for_s * 1000 <= endMs) out.push(t + c.for_s * 1000);
        if (!Number.isFinite(period)) break;
      }
    }
    return out;
  }

  private takeQueued(t: number): C[] {
    const started: C[] = [];
    const cap = this.capacityAt(t);
    while (this.busy < cap && this.qHead < this.queue.length) {
      const next = this.queue[this.qHead++]!;
      if (next.cancelled === true) {
        this.cancelledQueued--;
        continue;
      }
      this.start(next, t);
      started.push(next);
    }
    if (this.qHead > 1024 && this.qHead * 2 > this.queue.length) {
      this.queue = this.queue.slice(this.qHead);
      this.qHead = 0;
    }
    return started;
  }
}

/** The hosts of a scenario, expanded from its groups, labelled h1, h2, ... or by group name. */
export function expandHosts<C extends HostCall>(groups: readonly HostGroup[], randomFor: (hostIndex: number) => Random): Array<SimHost<C>> {
  const out: Array<SimHost<C>> = [];
  for (const g of groups) {
    const n = g.count ?? 1;
    for (let k = 0; k < n; k++) {
      const i = out.length;
      const label = g.name === undefined ? `h${i + 1}` : n === 1 ? g.name : `${g.name}${k + 1}`;
      out.push(new SimHost<C>(i, label, g, randomFor(i)));
    }
  }
  return out;
}
