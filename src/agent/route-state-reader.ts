/**
 * Reads the route states of one route as they arrive, decoding and
 * validating only the hosts whose bytes changed since the last state read.
 *
 * A route node publishes the whole state on every change, and a change is
 * usually one host's state or weight: on a route of n hosts, decoding and
 * validating all n (what `decode` + `validateRouteState` do) costs every
 * agent O(n) per update, ~5 µs for 10 hosts and ~0.5 ms for 1,000 on the
 * reference machine, several times more when the process wakes cold for the
 * message. This reader compares each host's bytes with the same host's
 * (same index) bytes in the last state it read, and when they are equal
 * reuses that host's decoded, validated object (msgpack is self-delimiting:
 * the same bytes are the same value and end at the same place); only the
 * other hosts and the state's own fields are read and checked.
 *
 * It gives exactly what the general path gives: the same value (key order
 * included) for a state `validateRouteState` accepts. It takes the general
 * path itself (and so names the rejection the same way) for every refusal
 * and for every encoding it leaves to the codec: a map key that is not a
 * string, a key given twice, a `__proto__` key, a value that is not a
 * scalar (other than `hosts` and its host maps), text that is not
 * well-formed UTF-8, trailing bytes.
 *
 * States are shared: a reused host is the same object in two consecutive
 * states. Nothing in the project mutates a state it received; callers must
 * not either.
 */
import { tryDecode } from '../../schemas/codec.ts';
import { LIMITS, isRouteHost, isRouteStateHead, validateRouteState, type RouteHost, type RouteState, type Validated } from '../../schemas/messages.ts';
import { Reader } from '../lib/msgpack-reader.ts';

/** What a rejected message is: the general path's kinds, plus `malformed` for bytes the codec refuses. */
export type RouteStateRead = Validated<RouteState> | { ok: false; kind: 'malformed'; detail: string };

/** Longest string a route state holds (reasons, senders): the fast path reads nothing longer. */
const MAX_STRING = 4096;
const NOT_SCALAR = Symbol('not a scalar');

/** A scalar as the codec decodes it, or NOT_SCALAR (left to the general path). */
function scalar(r: Reader): unknown {
  const b = r.b;
  const t = b[r.p];
  if (t === undefined) return NOT_SCALAR;
  if (t === 0xc0) {
    r.p++;
    return null;
  }
  if (t === 0xc2 || t === 0xc3) {
    r.p++;
    return t === 0xc3;
  }
  if ((t >= 0xa0 && t <= 0xbf) || t === 0xd9 || t === 0xda || t === 0xdb) return text(r) ?? NOT_SCALAR;
  if (t <= 0x7f || t >= 0xe0 || (t >= 0xca && t <= 0xd3)) return r.num() ?? NOT_SCALAR;
  return NOT_SCALAR;
}

/**
 * Short ASCII strings seen (keys, states, reasons, addresses), by a hash of
 * their bytes: a string a state repeats is matched against the bytes, not
 * built again (and, as a key, looked up in the engine's string table).
 */
const TEXT_CACHE = new Map<number, string>();
/** Bound on TEXT_CACHE; a publisher sending ever new strings cannot grow it further. */
const TEXT_CACHE_MAX = 8192;
const MAX_CACHED_TEXT = 32;

/** A string (as `Reader.str`), from the cache when it is short ASCII. */
function text(r: Reader): string | undefined {
  const b = r.b;
  const p = r.p;
  const t = b[p]!;
  if (t >= 0xa0 && t <= 0xa0 + MAX_CACHED_TEXT) {
    const len = t - 0xa0;
    const end = p + 1 + len;
    if (end <= b.length) {
      let h = len;
      let ascii = true;
      for (let i = p + 1; i < end; i++) {
        const c = b[i]!;
        if (c >= 0x80) ascii = false;
        h = (Math.imul(h, 31) + c) | 0;
      }
      if (ascii) {
        const cached = TEXT_CACHE.get(h);
        if (cached !== undefined && sameText(r, cached)) return cached;
        const s = r.str(MAX_CACHED_TEXT);
        if (s !== undefined && cached === undefined && TEXT_CACHE.size < TEXT_CACHE_MAX) TEXT_CACHE.set(h, s);
        return s;
      }
    }
  }
  return r.str(MAX_STRING);
}

/** A map key the codec makes a property name as it is: a string other than `__proto__`. */
function key(r: Reader): string | undefined {
  const t = r.b[r.p];
  if (t === undefined || !((t >= 0xa0 && t <= 0xbf) || t === 0xd9 || t === 0xda || t === 0xdb)) return undefined;
  const k = text(r);
  return k === '__proto__' ? undefined : k;
}

/** The next value is the short ASCII string `s`: then steps over it. */
function sameText(r: Reader, s: string): boolean {
  const len = s.length;
  const b = r.b;
  const p = r.p;
  if (len > MAX_CACHED_TEXT || b[p] !== 0xa0 + len || p + 1 + len > b.length) return false;
  for (let i = 0; i < len; i++) {
    const c = b[p + 1 + i]!;
    if (c >= 0x80 || c !== s.charCodeAt(i)) return false;
  }
  r.p = p + 1 + len;
  return true;
}

/** A host's keys in the order route nodes write them (the contract's order); `trial_agent` may follow. */
const HOST_KEYS = ['ip', 'port', 'weight', 'zone', 'state', 'reason', 'since', 'pick_weight'] as const;
const TRIAL_AGENT = 'trial_agent';
/** Most keys a host map may have for the fast path; more go to the general path. */
const MAX_HOST_KEYS = 64;
const KEYS: string[] = [];
const VALUES: unknown[] = [];

/**
 * A host: a map whose values are all scalars, or undefined. Keys are matched
 * against the contract's order, and a string value against the same key's
 * value in `prev` (the host at the same index in the last state), before
 * anything is decoded; a host in the contract's key order is built as one
 * object literal.
 */
function readHost(r: Reader, prev: Record<string, unknown> | undefined): Record<string, unknown> | undefined {
  const n = r.map();
  if (n === undefined || n > MAX_HOST_KEYS) return undefined;
  for (let i = 0; i < n; i++) {
    const expected: string | undefined = i < HOST_KEYS.length ? HOST_KEYS[i] : i === HOST_KEYS.length ? TRIAL_AGENT : undefined;
    const k = expected !== undefined && sameText(r, expected) ? expected : key(r);
    if (k === undefined) return undefined;
    const was = prev === undefined ? undefined : prev[k];
    const v = typeof was === 'string' && sameText(r, was) ? was : scalar(r);
    if (v === NOT_SCALAR) return undefined;
    KEYS[i] = k;
    VALUES[i] = v;
  }
  let canonical = n === HOST_KEYS.length || (n === HOST_KEYS.length + 1 && KEYS[HOST_KEYS.length] === TRIAL_AGENT);
  for (let i = 0; canonical && i < HOST_KEYS.length; i++) canonical = KEYS[i] === HOST_KEYS[i];
  if (canonical) {
    const h: Record<string, unknown> = { ip: VALUES[0], port: VALUES[1], weight: VALUES[2], zone: VALUES[3], state: VALUES[4], reason: VALUES[5], since: VALUES[6], pick_weight: VALUES[7] };
    if (n > HOST_KEYS.length) h[TRIAL_AGENT] = VALUES[HOST_KEYS.length];
    return h;
  }
  const o: Record<string, unknown> = {};
  for (let i = 0; i < n; i++) {
    const k = KEYS[i]!;
    if (Object.prototype.hasOwnProperty.call(o, k)) return undefined;
    o[k] = VALUES[i];
  }
  return o;
}

/** `len` bytes of `a` from `aStart` equal those of `b` from `bStart` (four at a time, then the rest). */
function sameBytes(a: DataView, aStart: number, b: DataView, bStart: number, len: number): boolean {
  let i = 0;
  for (; i + 4 <= len; i += 4) if (a.getUint32(aStart + i) !== b.getUint32(bStart + i)) return false;
  for (; i < len; i++) if (a.getUint8(aStart + i) !== b.getUint8(bStart + i)) return false;
  return true;
}

export interface RouteStateReaderStats {
  /** States read by the fast path. */
  fast: number;
  /** States read by the general path (refusals and encodings left to the codec). */
  general: number;
  /** Hosts reused from the previous state without decoding. */
  reusedHosts: number;
  /** Hosts decoded and validated. */
  readHosts: number;
}

export class RouteStateReader {
  /** The last state read by the fast path: its bytes (a copy) and each host's span and object. */
  private prevBytes: DataView | undefined;
  private prevStarts: number[] = [];
  private prevEnds: number[] = [];
  private prevHosts: RouteHost[] = [];
  readonly counters: RouteStateReaderStats = { fast: 0, general: 0, reusedHosts: 0, readHosts: 0 };

  /** Decodes and validates one message: as `validateRouteState(decode(bytes))`, a decode failure as `malformed`. */
  read(bytes: Uint8Array): RouteStateRead {
    const fast = this.fast(bytes);
    if (fast !== undefined) {
      this.counters.fast++;
      return { ok: true, value: fast };
    }
    this.counters.general++;
    const d = tryDecode(bytes);
    return d.ok ? validateRouteState(d.value) : { ok: false, kind: 'malformed', detail: d.error.message };
  }

  private fast(bytes: Uint8Array): RouteState | undefined {
    const r = new Reader(bytes);
    const n = r.map();
    if (n === undefined) return undefined;
    const o: Record<string, unknown> = {};
    let hosts: RouteHost[] | undefined;
    let starts: number[] | undefined;
    let ends: number[] | undefined;
    let reused = 0;
    const prev = this.prevBytes;
    for (let i = 0; i < n; i++) {
      const k = key(r);
      if (k === undefined || Object.prototype.hasOwnProperty.call(o, k)) return undefined;
      if (k !== 'hosts') {
        const v = scalar(r);
        if (v === NOT_SCALAR) return undefined;
        o[k] = v;
        continue;
      }
      const nh = r.array();
      if (nh === undefined || nh > LIMITS.maxRouteHosts) return undefined;
      hosts = new Array<RouteHost>(nh);
      starts = new Array<number>(nh);
      ends = new Array<number>(nh);
      const prevStarts = this.prevStarts;
      const prevEnds = this.prevEnds;
      const np = prev === undefined ? 0 : prevStarts.length;
      for (let j = 0; j < nh; j++) {
        const start = r.p;
        starts[j] = start;
        // msgpack is self-delimiting: when the previous state's encoding of this host comes next, the host is that one
        if (j < np) {
          const ps = prevStarts[j]!;
          const len = prevEnds[j]! - ps;
          if (start + len <= bytes.length && sameBytes(prev!, ps, r.dv, start, len)) {
            hosts[j] = this.prevHosts[j]!;
            r.p = ends[j] = start + len;
            reused++;
            continue;
          }
        }
        const h = readHost(r, this.prevHosts[j] as Record<string, unknown> | undefined);
        if (h === undefined || !isRouteHost(h)) return undefined;
        hosts[j] = h;
        ends[j] = r.p;
      }
      o[k] = hosts;
    }
    if (r.p !== bytes.length || hosts === undefined || !isRouteStateHead(o)) return undefined;
    // a copy: the message's bytes may be a view of a buffer its owner reuses
    this.prevBytes = new DataView(new Uint8Array(bytes).buffer);
    this.prevStarts = starts!;
    this.prevEnds = ends!;
    this.prevHosts = hosts;
    this.counters.reusedHosts += reused;
    this.counters.readHosts += hosts.length - reused;
    return o as unknown as RouteState;
  }
}
