/**
 * What the xDS server serves, read from NATS only (so any number of servers
 * can run side by side): the routes bucket watched to learn which routes
 * exist, and each route followed by the agents' route follower (route
 * subject, then the stored state; highest version kept; re-read after a
 * reconnect). Every applied state is told to the listeners at once, by
 * resource name, so a change leaves for the subscribed streams within the
 * same turn of the event loop.
 *
 * Encoded resources are kept per route version (and caller zone for load
 * assignments): a thousand streams subscribed to one route cost one
 * encoding per change, not a thousand.
 */
import type { NatsConnection } from '@nats-io/transport-node';
import type { KvEntry } from '@nats-io/kv';
import type { Names } from '../../schemas/subjects.ts';
import type { RouteState } from '../../schemas/messages.ts';
import { RouteFollower } from '../agent/route-follower.ts';
import { RouteStore } from '../registry/route-store.ts';
import { LiveWatch } from '../nats/live-watch.ts';
import type { Logger } from '../lib/log.ts';
import { dependsOnZone, parseResourceName, resourceName, resourceOf, type XdsLbPolicy } from './resources.ts';
import { xdsProtos, type ResourceTypeUrl } from './protos.ts';

/** A resource ready for a DiscoveryResponse: a google.protobuf.Any. */
export interface EncodedResource {
  readonly type_url: string;
  readonly value: Uint8Array;
}

export type ChangeListener = (name: string) => void;

export interface RouteSourceOptions {
  nc: NatsConnection;
  names: Names;
  log: Logger;
  /** The balancing policy every cluster names; default per route (ring hash for the hash strategy, else round robin). */
  lb?: XdsLbPolicy;
}

/** Routes a client may make a server follow by asking for names the routes bucket does not hold (yet). */
export const MAX_ASKED_ROUTES = 10_000;

const BIND_RETRY_MS = 1000;

export class RouteSource {
  private readonly o: RouteSourceOptions;
  private readonly follower: RouteFollower;
  private readonly log: Logger;
  /** Live routes (not removed) by resource name. */
  private readonly states = new Map<string, RouteState>();
  private readonly followed = new Set<string>();
  private readonly listeners = new Set<ChangeListener>();
  /** Encoded resources of the current state, by route name then `<type>\n<zone>`. */
  private readonly cache = new Map<string, Map<string, EncodedResource>>();
  private asked = 0;
  private watch: LiveWatch | undefined;
  private retry: ReturnType<typeof setTimeout> | undefined;
  private closed = false;
  private loaded = false;
  /** States applied since the start (newer versions of followed routes). */
  updates = 0;
  /** Names asked for and not followed: more than MAX_ASKED_ROUTES asked for that the bucket does not hold. */
  refused = 0;

  constructor(o: RouteSourceOptions) {
    this.o = o;
    this.log = o.log.child({ mod: 'xds-source' });
    this.follower = new RouteFollower({ nc: o.nc, names: o.names, log: o.log });
  }

  /**
   * Watches the routes bucket and follows every route in it; resolves once
   * the first full view is in, or at once when the bucket is not there yet
   * (no route node has started): it is then looked for every second, and
   * the server is not ready until it is found. The bucket is never made
   * here: the xDS user may only read it.
   */
  async start(): Promise<void> {
    const store = await RouteStore.bind(this.o.nc, this.o.names);
    if (store) return this.watchStore(store);
    this.log.warn({ bucket: this.o.names.routesBucket }, 'the routes bucket is not there yet (no route node has started); looking for it every second');
    this.bindLater();
  }

  private bindLater(): void {
    this.retry = setTimeout(() => {
      this.retry = undefined;
      void RouteStore.bind(this.o.nc, this.o.names).then(
        (store) => (this.closed ? undefined : store ? this.watchStore(store) : this.bindLater()),
        () => this.closed || this.bindLater(),
      );
    }, BIND_RETRY_MS);
    this.retry.unref?.();
  }

  private async watchStore(store: RouteStore): Promise<void> {
    if (this.closed) return;
    this.watch = new LiveWatch({
      kv: store.kv,
      what: 'routes (xds)',
      log: this.log,
      onSnapshot: (entries) => {
        for (const key of entries.keys()) this.followKey(key);
      },
      onEntry: (e: KvEntry) => {
        if (e.operation === 'PUT') this.followKey(e.key);
      },
    });
    await this.watch.start();
    // the states read at the start arrive before the view counts as loaded
    await Promise.all([...this.followed].map((n) => this.follower.route(...this.idOf(n)).loaded));
    this.loaded = true;
  }

  /** The first full view of the routes bucket is in, and the states of its routes read. */
  ready(): boolean {
    return this.loaded;
  }

  onChange(l: ChangeListener): () => void {
    this.listeners.add(l);
    return () => this.listeners.delete(l);
  }

  /** Every live route's resource name. */
  names(): IterableIterator<string> {
    return this.states.keys();
  }

  /** How many routes are served. */
  size(): number {
    return this.states.size;
  }

  /** The live state of a route by resource name; a name asked for that is not followed yet starts being followed. */
  get(name: string): RouteState | undefined {
    const s = this.states.get(name);
    if (s === undefined && !this.followed.has(name)) {
      if (this.asked >= MAX_ASKED_ROUTES) this.refused++;
      else if (this.followName(name)) this.asked++;
    }
    return s;
  }

  /** The encoded resource of a type for a route, or undefined when the route is not live. */
  encoded(type: ResourceTypeUrl, name: string, zone: string | undefined): EncodedResource | undefined {
    const state = this.get(name);
    if (state === undefined) return undefined;
    const key = dependsOnZone(type) ? `${type}\n${zone ?? ''}` : type;
    let byKey = this.cache.get(name);
    if (!byKey) this.cache.set(name, (byKey = new Map<string, EncodedResource>()));
    const hit = byKey.get(key);
    if (hit) return hit;
    const t = xdsProtos().type(type);
    const value: EncodedResource = { type_url: type, value: t.encode(t.fromObject(resourceOf(type, state, { zone, lb: this.o.lb }))).finish() };
    byKey.set(key, value);
    return value;
  }

  close(): void {
    this.closed = true;
    if (this.retry) clearTimeout(this.retry);
    this.watch?.stop();
    this.follower.close();
    this.listeners.clear();
  }

  private idOf(name: string): [number, number] {
    const id = parseResourceName(name)!;
    return [id.modid, id.cmdid];
  }

  private followKey(key: string): void {
    const m = /^(\d+)\.(\d+)$/.exec(key);
    if (m) this.followName(resourceName(Number(m[1]), Number(m[2])));
  }

  /** Follows a route by name; false when the name is not a route's or is followed already. */
  private followName(name: string): boolean {
    const id = parseResourceName(name);
    if (id === undefined || this.followed.has(name)) return false;
    this.followed.add(name);
    this.follower.follow(id.modid, id.cmdid, (s) => this.apply(name, s));
    return true;
  }

  private apply(name: string, s: RouteState): void {
    this.updates++;
    if (s.removed) this.states.delete(name);
    else this.states.set(name, s);
    this.cache.delete(name);
    for (const l of this.listeners) {
      try {
        l(name);
      } catch (err) {
        this.log.error({ err, route: name }, 'xds change listener threw');
      }
    }
  }
}
