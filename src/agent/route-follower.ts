/**
 * Follows effective routes: the state the route nodes publish for each
 * (modid, cmdid), kept current in this process without a request per use.
 *
 * On a route's first use the follower subscribes to `<prefix>.route.<m>.<c>`,
 * then reads the last state from the routes KV bucket (a change between the
 * two arrives on the subscription), and keeps the highest version it has
 * seen: full state in every message makes a missed one harmless. After a
 * reconnect it reads every followed route from KV again, so the final state
 * is never missed. A missing key means the route is not registered. A store
 * that lost a state held here (a server back on a fresh store: the route's
 * versions start again) makes it take the next state whatever its version.
 *
 * Used by the agent (picking) and on its own by `lars route watch` and
 * sidecars: nothing here knows about picking or reports.
 */
import { backoff, type NatsConnection, type Subscription } from '@nats-io/transport-node';
import type { Names } from '../../schemas/subjects.ts';
import type { RouteState } from '../../schemas/messages.ts';
import { RouteStateReader } from './route-state-reader.ts';
import { RouteStore } from '../registry/route-store.ts';
import { RejectCounter } from '../lib/rejects.ts';
import { silentLogger, type Logger } from '../lib/log.ts';
import { ClosedError } from '../lib/errors.ts';
import { RateLimitedLog } from '../lib/ratelog.ts';
import { stateVerdict, StateVerdict, versionsStartedAgain } from '../../actors/route-versions.ts';

export const RouteStatus = {
  /** Followed, but neither the KV read nor a route message has answered yet. */
  loading: 'loading',
  /** The KV has no state for it, or its last state is a tombstone (`removed`). */
  unregistered: 'unregistered',
  /** A live state is held. */
  loaded: 'loaded',
} as const;
export type RouteStatus = (typeof RouteStatus)[keyof typeof RouteStatus];

/** What the follower knows of a route; `state` is set when `status` is 'loaded'. */
export type RouteView = { readonly status: 'loading' | 'unregistered'; readonly state?: undefined } | { readonly status: 'loaded'; readonly state: RouteState };

export type RouteListener = (state: RouteState) => void;

/** The follower's defaults (RouteFollowerOptions). */
export const FOLLOWER_DEFAULTS = { loadTimeoutMs: 2000, holdEmptyUpdates: true } as const;

export interface RouteFollowerOptions {
  nc: NatsConnection;
  names: Names;
  /** How long `get` waits for a route on its first use, ms; default 2000. */
  loadTimeoutMs?: number;
  /**
   * Keep the last state with pickable hosts when an update (not a removal)
   * would leave none without a reason (empty host list, or only healthy or
   * probing hosts of weight 0); default true.
   */
  holdEmptyUpdates?: boolean;
  /** Shared rejection counter (the agent passes its own); default a new one. */
  rejects?: RejectCounter;
  log?: Logger;
  /** Injected clock, ms (rate limits of log lines and of store reads). */
  clock?: () => number;
  /** At most one line per route (held updates) or failure kind per interval, ms; default 10000. */
  logIntervalMs?: number;
}

export interface RouteFollowerStats {
  routes: number;
  /** States applied (newer versions). */
  routeUpdates: number;
  /** States ignored because a newer or equal version was held. */
  staleUpdates: number;
  /** Empty updates not applied (the last state with pickable hosts was kept). */
  heldEmptyUpdates: number;
  /** Re-reads of every followed route after a reconnect. */
  resyncs: number;
  /** Routes whose stored state was found gone while one was held (their versions start again). */
  versionResets: number;
}

/** One followed route. Read-only outside this module; the agent reads it on every pick. */
export class FollowedRoute {
  readonly modid: number;
  readonly cmdid: number;
  status: RouteStatus = RouteStatus.loading;
  /** The last applied state (a tombstone too, while `status` is 'unregistered'). */
  state: RouteState | undefined;
  /** Settles once the first KV read has answered (found, missing or failed). */
  loaded: Promise<void> = Promise.resolve();
  /** Called in order of addition; the agent's own listener is first. */
  readonly listeners = new Set<RouteListener>();
  sub: Subscription | undefined;
  retry: ReturnType<typeof setTimeout> | undefined;
  readFailures = 0;
  /** Decodes the route's messages, reusing the hosts that did not change. */
  readonly reader = new RouteStateReader();
  /**
   * The routes bucket no longer has the state held here (a server back on a
   * fresh store): the route's versions start again, so the next state is
   * taken whatever its version. The held state is served until then.
   */
  versionReset = false;
  /** When a lower version than the one held last made the follower read the route again (clock ms). */
  checkedAt = -Infinity;

  constructor(modid: number, cmdid: number) {
    this.modid = modid;
    this.cmdid = cmdid;
  }

  view(): RouteView {
    return this.status === RouteStatus.loaded && this.state !== undefined ? { status: 'loaded', state: this.state } : { status: this.status === RouteStatus.loaded ? RouteStatus.loading : this.status };
  }
}

/** A host of a state that counts as available: weight to pick, or a reason for none (ejected, draining). */
function explainsHosts(s: RouteState): boolean {
  for (const h of s.hosts) if (h.pick_weight > 0 || h.state === 'overloaded' || h.state === 'draining') return true;
  return false;
}

function hasPickable(s: RouteState): boolean {
  for (const h of s.hosts) if (h.pick_weight > 0) return true;
  return false;
}

const READ_RETRY = backoff([250, 500, 1000, 2000, 5000]);
/** At most one store read per route per interval, ms, prompted by lower versions on the route subject. */
const VERIFY_INTERVAL_MS = 2000;

export class RouteFollower {
  readonly names: Names;
  readonly rejects: RejectCounter;
  private readonly nc: NatsConnection;
  private readonly loadTimeoutMs: number;
  private readonly holdEmpty: boolean;
  private readonly log: Logger;
  private readonly rateLog: RateLimitedLog;
  private readonly byRoute = new Map<number, Map<number, FollowedRoute>>();
  private count = 0;
  private store: RouteStore | undefined;
  private storePromise: Promise<RouteStore | undefined> | undefined;
  private closed = false;
  private readonly statusIter: AsyncIterable<unknown> & { stop?: () => void };
  private readonly clock: () => number;
  private readonly counters = { routeUpdates: 0, staleUpdates: 0, heldEmptyUpdates: 0, resyncs: 0, versionResets: 0 };

  constructor(opts: RouteFollowerOptions) {
    this.nc = opts.nc;
    this.names = opts.names;
    this.loadTimeoutMs = opts.loadTimeoutMs ?? FOLLOWER_DEFAULTS.loadTimeoutMs;
    this.holdEmpty = opts.holdEmptyUpdates ?? FOLLOWER_DEFAULTS.holdEmptyUpdates;
    this.log = (opts.log ?? silentLogger()).child({ mod: 'route-follower' });
    this.rejects = opts.rejects ?? new RejectCounter(this.log);
    this.clock = opts.clock ?? Date.now;
    this.rateLog = new RateLimitedLog(this.log, opts.logIntervalMs ?? 10_000, this.clock);
    const it = this.nc.status();
    this.statusIter = it;
    void this.watchStatus(it);
  }

  /** The followed route (following it from now on if it was not). */
  route(modid: number, cmdid: number): FollowedRoute {
    let inner = this.byRoute.get(modid);
    if (inner === undefined) {
      inner = new Map();
      this.byRoute.set(modid, inner);
    }
    let r = inner.get(cmdid);
    if (r === undefined) {
      if (this.closed) throw new ClosedError('route follower');
      r = new FollowedRoute(modid, cmdid);
      inner.set(cmdid, r);
      this.count++;
      this.start(r);
    }
    return r;
  }

  /** The route if it is followed already, without starting to follow it. */
  peek(modid: number, cmdid: number): FollowedRoute | undefined {
    return this.byRoute.get(modid)?.get(cmdid);
  }

  /**
   * Calls `listener` with every new state of the route, and with the current
   * one at once when it is loaded. A listener that throws is logged and does
   * not stop the others. Returns a remover.
   */
  follow(modid: number, cmdid: number, listener: RouteListener): () => void {
    const r = this.route(modid, cmdid);
    r.listeners.add(listener);
    if (r.status === RouteStatus.loaded && r.state !== undefined) this.call(r, listener, r.state);
    return () => r.listeners.delete(listener);
  }

  /** The current state, waiting (at most loadTimeoutMs) on first use; undefined when not registered or not loaded in time. */
  async get(modid: number, cmdid: number): Promise<RouteState | undefined> {
    const r = this.route(modid, cmdid);
    if (r.status === RouteStatus.loading) await this.waitLoaded(r);
    return r.status === RouteStatus.loaded ? r.state : undefined;
  }

  /** What is known of the route now (following it from now on). */
  state(modid: number, cmdid: number): RouteView {
    return this.route(modid, cmdid).view();
  }

  /** Waits (at most loadTimeoutMs) for the route's first KV read. */
  async waitLoaded(r: FollowedRoute): Promise<void> {
    let t: ReturnType<typeof setTimeout> | undefined;
    await Promise.race([r.loaded, new Promise<void>((resolve) => (t = setTimeout(resolve, this.loadTimeoutMs)))]);
    if (t) clearTimeout(t);
  }

  /** Reads every followed route from KV again (done by itself after each reconnect). */
  resync(): void {
    this.counters.resyncs++;
    for (const inner of this.byRoute.values()) for (const r of inner.values()) void this.readStored(r);
  }

  stats(): RouteFollowerStats {
    return { routes: this.count, ...this.counters };
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.statusIter.stop?.();
    for (const inner of this.byRoute.values()) {
      for (const r of inner.values()) {
        r.sub?.unsubscribe();
        if (r.retry) clearTimeout(r.retry);
        r.listeners.clear();
      }
    }
  }

  // ---------------------------------------------------------------- internals

  private start(r: FollowedRoute): void {
    // Subscribe first, then read the KV: a change between the two arrives on the subscription.
    r.sub = this.nc.subscribe(this.names.route(r.modid, r.cmdid), {
      callback: (err, m) => {
        if (err) {
          this.rateLog.emit('warn', 'subscription', { err, route: `${r.modid}.${r.cmdid}` }, 'route subscription failed');
          return;
        }
        this.onMessage(r, m.data, m.subject);
      },
    });
    r.loaded = this.readStored(r);
  }

  private async watchStatus(it: AsyncIterable<unknown>): Promise<void> {
    try {
      for await (const s of it) {
        if (this.closed) return;
        if ((s as { type?: string }).type === 'reconnect') {
          this.log.info({ routes: this.count }, 'reconnected; re-reading every followed route');
          this.resync();
        }
      }
    } catch {
      // the connection closed
    }
  }

  private async routeStore(): Promise<RouteStore | undefined> {
    if (this.store) return this.store;
    if (!this.storePromise) {
      this.storePromise = RouteStore.bind(this.nc, this.names).then((s) => {
        this.store = s;
        this.storePromise = undefined;
        return s;
      });
    }
    return this.storePromise;
  }

  private async readStored(r: FollowedRoute): Promise<void> {
    if (r.retry) {
      clearTimeout(r.retry);
      r.retry = undefined;
    }
    try {
      const store = await this.routeStore();
      const cur = store ? await store.get(r.modid, r.cmdid) : undefined;
      r.readFailures = 0;
      const held = r.state;
      // The store has no state for the route, or an older version published later than the one held: the route's
      // versions started again (a server back on a fresh store). A stale read from a lagging replica is older in both.
      if (versionsStartedAgain(held, cur?.state, r.versionReset)) {
        r.versionReset = true;
        this.counters.versionResets++;
        this.log.warn({ route: `${r.modid}.${r.cmdid}`, held: held?.version, stored: cur?.state.version }, "the routes bucket lost this route's state; serving the last one held and taking the next state published whatever its version");
      }
      if (cur) this.apply(r, cur.state);
      else if (r.state === undefined) r.status = RouteStatus.unregistered;
    } catch (err) {
      if (this.closed) return;
      this.rateLog.emit('warn', 'kv-read', { err, route: `${r.modid}.${r.cmdid}` }, 'could not read route state; serving what is cached and retrying');
      // Without a reconnect to trigger a re-read (e.g. a KV timeout on a live connection), retry with backoff.
      r.retry = setTimeout(() => void this.readStored(r), READ_RETRY.backoff(r.readFailures++));
    }
  }

  private verify(r: FollowedRoute): void {
    const now = this.clock();
    if (now - r.checkedAt < VERIFY_INTERVAL_MS || r.retry !== undefined) return;
    r.checkedAt = now;
    void this.readStored(r);
  }

  private onMessage(r: FollowedRoute, data: Uint8Array, subject: string): void {
    const v = r.reader.read(data);
    if (!v.ok) {
      this.rejects.reject(v.kind, v.detail, { subject, payload: data });
      return;
    }
    if (v.value.modid !== r.modid || v.value.cmdid !== r.cmdid) {
      this.rejects.reject('subject_mismatch', `state of ${v.value.modid}.${v.value.cmdid} on ${subject}`, { subject });
      return;
    }
    this.apply(r, v.value);
  }

  private apply(r: FollowedRoute, s: RouteState): void {
    if (this.closed) return;
    const verdict = stateVerdict(r.state, s, r.versionReset);
    if (verdict !== StateVerdict.apply) {
      this.counters.staleUpdates++;
      // A lower version published later than the one held: read the store to tell a late message from versions that
      // started again (at most once per VERIFY_INTERVAL_MS per route).
      if (verdict === StateVerdict.staleCheckStore) this.verify(r);
      return;
    }
    if (this.holdEmpty && !s.removed && r.status === RouteStatus.loaded && r.state !== undefined && hasPickable(r.state) && !explainsHosts(s)) {
      this.counters.heldEmptyUpdates++;
      this.rateLog.emit(
        'warn',
        `held:${r.modid}.${r.cmdid}`,
        { route: `${r.modid}.${r.cmdid}`, version: s.version, held: r.state.version, hosts: s.hosts.length },
        'route update with no pickable host and no removal ignored; keeping the last state with hosts',
      );
      return;
    }
    this.counters.routeUpdates++;
    r.versionReset = false;
    r.state = s;
    r.status = s.removed ? RouteStatus.unregistered : RouteStatus.loaded;
    for (const l of r.listeners) this.call(r, l, s);
  }

  private call(r: FollowedRoute, l: RouteListener, s: RouteState): void {
    try {
      l(s);
    } catch (err) {
      this.rateLog.emit('error', `listener:${r.modid}.${r.cmdid}`, { err, route: `${r.modid}.${r.cmdid}` }, 'route listener threw');
    }
  }
}
