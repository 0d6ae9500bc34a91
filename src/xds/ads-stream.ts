/**
 * One ADS stream, state of the world (xDS v3): per resource type the names
 * the client subscribed to (or every route: a wildcard LDS or CDS
 * subscription, sent with no name or with `*`), what was sent last, its
 * version and nonce. Free of gRPC: it reads decoded requests and hands
 * responses to `send`, so the protocol is tested without a network.
 *
 * As the protocol says: a request whose `response_nonce` is not the last
 * one sent for its type is stale and ignored; one with the last nonce is an
 * ACK of `version_info`, or a NACK when it carries `error_detail` (logged,
 * counted, the client keeps its last good resources and nothing is sent
 * again until the resource changes or the names do); a request with new
 * names, or the first of a type, gets a response at once. A route change
 * is sent only to the streams whose subscriptions name it, and only when
 * its encoded resource differs from what the stream was sent.
 */
import type { Logger } from '../lib/log.ts';
import type { RateLimitedLog } from '../lib/ratelog.ts';
import { RESOURCE_TYPES, TypeUrl, type ResourceTypeUrl } from './protos.ts';
import type { EncodedResource } from './route-source.ts';

/** A DiscoveryRequest as decoded (fields absent when not sent). */
export interface DiscoveryRequest {
  version_info?: string;
  node?: { id?: string; locality?: { region?: string; zone?: string; sub_zone?: string } };
  resource_names?: string[];
  type_url?: string;
  response_nonce?: string;
  error_detail?: { code?: number; message?: string };
}

export interface DiscoveryResponse {
  version_info: string;
  resources: EncodedResource[];
  type_url: string;
  nonce: string;
  control_plane: { identifier: string };
}

/** What a stream reads resources from (RouteSource). */
export interface ResourceReader {
  names(): Iterable<string>;
  encoded(type: ResourceTypeUrl, name: string, zone: string | undefined): EncodedResource | undefined;
}

/** The counters every stream of a server adds to. */
export interface XdsCounters {
  requests: number;
  acks: number;
  nacks: number;
  stale: number;
  responses: number;
  resourcesSent: number;
  /** Requests dropped, by kind: unknown_type. */
  rejected: Record<string, number>;
}

export function newCounters(): XdsCounters {
  return { requests: 0, acks: 0, nacks: 0, stale: 0, responses: 0, resourcesSent: 0, rejected: {} };
}

interface Subscription {
  wildcard: boolean;
  names: Set<string>;
  version: number;
  nonce: string;
  /** The version the client last accepted ('' before any). */
  acked: string;
  /** What the last response carried, by name. */
  sent: Map<string, Uint8Array>;
}

export interface AdsStreamOptions {
  source: ResourceReader;
  send: (r: DiscoveryResponse) => void;
  counters: XdsCounters;
  /** This server's identity, sent as `control_plane.identifier`. */
  serverId: string;
  log: Logger;
  /** NACKs and bad requests are logged through this, at most once per kind per interval. */
  rateLog: RateLimitedLog;
}

const WILDCARD_TYPES: ReadonlySet<string> = new Set([TypeUrl.listener, TypeUrl.cluster]);
const isResourceType = (t: string | undefined): t is ResourceTypeUrl => (RESOURCE_TYPES as readonly string[]).includes(t ?? '');

let nonces = 0;

export class AdsStream {
  private readonly o: AdsStreamOptions;
  private readonly subs = new Map<ResourceTypeUrl, Subscription>();
  /** The client's node id and zone, from the first request that names them. */
  nodeId: string | undefined;
  zone: string | undefined;

  constructor(o: AdsStreamOptions) {
    this.o = o;
  }

  /** The version a client last accepted for a type ('' when none, undefined when not subscribed). */
  acked(type: ResourceTypeUrl): string | undefined {
    return this.subs.get(type)?.acked;
  }

  onRequest(req: DiscoveryRequest): void {
    const c = this.o.counters;
    c.requests++;
    if (req.node && this.nodeId === undefined) {
      this.nodeId = req.node.id ?? '';
      const z = req.node.locality?.zone;
      this.zone = z === undefined || z === '' ? undefined : z;
    }
    const type = req.type_url;
    if (!isResourceType(type)) {
      c.rejected['unknown_type'] = (c.rejected['unknown_type'] ?? 0) + 1;
      this.o.rateLog.emit('warn', 'xds-unknown-type', { node: this.nodeId, type: String(type).slice(0, 200) }, 'xds request for a resource type not served; ignored');
      return;
    }
    const names = req.resource_names ?? [];
    const wildcard = names.includes('*') || (names.length === 0 && WILDCARD_TYPES.has(type));
    const explicit = new Set(names.filter((n) => n !== '*'));
    const nonce = req.response_nonce ?? '';
    let sub = this.subs.get(type);
    if (sub && nonce !== '' && nonce !== sub.nonce) {
      c.stale++;
      return;
    }
    if (sub && nonce !== '') {
      if (req.error_detail) {
        c.nacks++;
        this.o.rateLog.emit(
          'warn',
          `xds-nack:${type}`,
          { node: this.nodeId, type, rejected: `${sub.version}`, kept: sub.acked, error: (req.error_detail.message ?? '').slice(0, 500) },
          'xds client refused a response (NACK); it keeps its last accepted resources',
        );
      } else {
        c.acks++;
        sub.acked = req.version_info ?? `${sub.version}`;
      }
    }
    const changed = !sub || nonce === '' || sub.wildcard !== wildcard || !sameSet(sub.names, explicit);
    if (!changed) return;
    if (!sub) {
      sub = { wildcard, names: explicit, version: 0, nonce: '', acked: req.version_info ?? '', sent: new Map() };
      this.subs.set(type, sub);
    } else {
      sub.wildcard = wildcard;
      sub.names = explicit;
    }
    this.push(type, sub, true);
  }

  /** A route changed (or appeared, or went): sends every subscribed type whose resources differ from the last sent. */
  onRouteChange(name: string): void {
    for (const type of RESOURCE_TYPES) {
      const sub = this.subs.get(type);
      if (!sub || !(sub.wildcard || sub.names.has(name))) continue;
      const cur = this.o.source.encoded(type, name, this.zone);
      const prev = sub.sent.get(name);
      if (cur === undefined ? prev === undefined : prev !== undefined && sameBytes(prev, cur.value)) continue;
      this.push(type, sub, false);
    }
  }

  private push(type: ResourceTypeUrl, sub: Subscription, always: boolean): void {
    const resources: EncodedResource[] = [];
    const sent = new Map<string, Uint8Array>();
    const add = (name: string): void => {
      if (sent.has(name)) return;
      const r = this.o.source.encoded(type, name, this.zone);
      if (r === undefined) return;
      resources.push(r);
      sent.set(name, r.value);
    };
    if (sub.wildcard) for (const n of this.o.source.names()) add(n);
    for (const n of sub.names) add(n);
    if (!always && sameSent(sub.sent, sent)) return;
    sub.version++;
    sub.nonce = `${++nonces}`;
    sub.sent = sent;
    this.o.counters.responses++;
    this.o.counters.resourcesSent += resources.length;
    this.o.send({ version_info: `${sub.version}`, resources, type_url: type, nonce: sub.nonce, control_plane: { identifier: this.o.serverId } });
  }
}

function sameSet(a: ReadonlySet<string>, b: ReadonlySet<string>): boolean {
  if (a.size !== b.size) return false;
  for (const x of a) if (!b.has(x)) return false;
  return true;
}

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  return a === b || Buffer.from(a.buffer, a.byteOffset, a.byteLength).equals(b);
}

function sameSent(a: ReadonlyMap<string, Uint8Array>, b: ReadonlyMap<string, Uint8Array>): boolean {
  if (a.size !== b.size) return false;
  for (const [k, v] of a) {
    const w = b.get(k);
    if (w === undefined || !sameBytes(v, w)) return false;
  }
  return true;
}
