/**
 * NATS subjects, KV buckets and stream names of the Lars-on-NATS contract,
 * and the partition function. Every name is built here and nowhere else.
 *
 * It imports only the contract's FNV-1a (fnv.ts): it is part of the
 * language-neutral contract (see schemas/README.md) and is mirrored by any
 * other client.
 */
import { fnv1a32 } from './fnv.ts';

export const UINT32_MAX = 0xffff_ffff;

/** Default subject prefix and partition count. */
export const DEFAULT_PREFIX = 'lars';
export const DEFAULT_PARTITIONS = 64;
export const MAX_PARTITIONS = 4096;

const TOKEN = /^[A-Za-z0-9_-]{1,32}$/;

export function isUint32(n: unknown): n is number {
  return typeof n === 'number' && Number.isInteger(n) && n >= 0 && n <= UINT32_MAX;
}

/** True when `prefix` is a legal subject prefix (one token of [A-Za-z0-9_-], at most 32 chars). */
export function isValidPrefix(prefix: string): boolean {
  return TOKEN.test(prefix);
}

/**
 * FNV-1a, 32 bit, over the bytes of the ASCII string `"<modid>.<cmdid>"`
 * (decimal, no leading zeros), modulo `partitions`.
 * Test vectors (P = 64): (1,1) → 5, (1,2) → 12, (100,7) → 19, (4294967295,0) → 60.
 */
export function partitionOf(modid: number, cmdid: number, partitions: number): number {
  return fnv1a32(`${modid}.${cmdid}`) % partitions;
}

/** Every subject and bucket name for one prefix. */
export interface Names {
  readonly prefix: string;
  /** `<prefix>.report.<partition>.<modid>.<cmdid>`: report batches. */
  report(partition: number, modid: number, cmdid: number): string;
  /** `<prefix>.report.<partition>.>`: what the owner of a partition subscribes to. */
  reportPartitionWildcard(partition: number): string;
  /** `<prefix>.report.>`: every report (the reports stream). */
  reportAll: string;
  /** `<prefix>.route.<modid>.<cmdid>`: full effective route state on every change. */
  route(modid: number, cmdid: number): string;
  routeAll: string;
  /** `<prefix>.event.<modid>.<cmdid>`: one message per host state transition. */
  event(modid: number, cmdid: number): string;
  eventAll: string;
  /** KV bucket of admin-set hosts per route (Lars' DNS data). */
  registryBucket: string;
  /** KV bucket holding the last effective route state per route. */
  routesBucket: string;
  /** KV bucket of hosts that registered themselves (elastic scaling), beside the admin registry. */
  selfRegBucket: string;
  /** KV key of a self-registered host: `<modid>.<cmdid>.<ip with - for .>_<port>`. */
  selfRegKey(modid: number, cmdid: number, ip: string, port: number): string;
  /** JetStream stream capturing every report batch. */
  reportsStream: string;
  /** JetStream stream capturing every route event. */
  eventsStream: string;
  /** KV key of a route in the registry and routes buckets: `<modid>.<cmdid>`. */
  routeKey(modid: number, cmdid: number): string;
}

export function names(prefix: string = DEFAULT_PREFIX): Names {
  if (!isValidPrefix(prefix)) {
    throw new RangeError(`subject prefix must match ${TOKEN.source}, got ${JSON.stringify(prefix)}`);
  }
  const up = prefix.toUpperCase().replace(/-/g, '_');
  return {
    prefix,
    report: (p, m, c) => `${prefix}.report.${p}.${m}.${c}`,
    reportPartitionWildcard: (p) => `${prefix}.report.${p}.>`,
    reportAll: `${prefix}.report.>`,
    route: (m, c) => `${prefix}.route.${m}.${c}`,
    routeAll: `${prefix}.route.>`,
    event: (m, c) => `${prefix}.event.${m}.${c}`,
    eventAll: `${prefix}.event.>`,
    registryBucket: `${prefix}_registry`,
    routesBucket: `${prefix}_routes`,
    selfRegBucket: `${prefix}_selfreg`,
    selfRegKey: (m, c, ip, port) => `${m}.${c}.${ip.replace(/\./g, '-')}_${port}`,
    reportsStream: `${up}_REPORTS`,
    eventsStream: `${up}_EVENTS`,
    routeKey: (m, c) => `${m}.${c}`,
  };
}

/**
 * Parses the `<modid>.<cmdid>` tail of a subject (the last two tokens).
 * Returns undefined for anything that is not two uint32 decimals.
 */
export function parseRouteTail(subject: string): { modid: number; cmdid: number } | undefined {
  const b = subject.lastIndexOf('.');
  if (b <= 0) return undefined;
  const a = subject.lastIndexOf('.', b - 1);
  const m = parseDecimal(subject, a + 1, b);
  const c = parseDecimal(subject, b + 1, subject.length);
  if (m < 0 || c < 0) return undefined;
  return { modid: m, cmdid: c };
}

function parseDecimal(s: string, from: number, to: number): number {
  const len = to - from;
  if (len <= 0 || len > 10) return -1;
  if (len > 1 && s.charCodeAt(from) === 48) return -1; // no leading zeros
  let n = 0;
  for (let i = from; i < to; i++) {
    const d = s.charCodeAt(i) - 48;
    if (d < 0 || d > 9) return -1;
    n = n * 10 + d;
  }
  return n <= UINT32_MAX ? n : -1;
}
