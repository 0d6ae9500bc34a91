/**
 * Synthetic report batches and route events, published the way agents and
 * route nodes publish them (plain core publishes of msgpack): for the
 * analytics tests, the benchmark and demos. Deterministic for a given seed.
 */
import type { NatsConnection } from '@nats-io/transport-node';
import { SCHEMA_VERSION, type EventFigures, type HostState, type Reason, type ReportBatch, type ReportTuple, type RouteEvent } from '../../schemas/messages.ts';
import { DEFAULT_PARTITIONS, partitionOf, type Names } from '../../schemas/subjects.ts';
import { encode } from '../../schemas/codec.ts';
import { seededRandom } from '../../actors/strategies/random.ts';

/** A small deterministic PRNG (mulberry32), the one the pick strategies' tests use. */
export const prng = seededRandom;

export interface BatchSpec {
  modid: number;
  cmdid: number;
  ts: number;
  sender: string;
  zone?: string;
  hosts: Array<[string, number]>;
  reports: ReportTuple[];
}

export function reportBatch(s: BatchSpec): ReportBatch {
  const b: ReportBatch = { v: SCHEMA_VERSION, sender: s.sender, modid: s.modid, cmdid: s.cmdid, ts: s.ts, hosts: s.hosts, reports: s.reports };
  if (s.zone !== undefined) b.zone = s.zone;
  return b;
}

export interface RandomBatchOptions {
  batches: number;
  reportsPerBatch: number;
  /** Routes are (1000 + i, 1) for i < routes. */
  routes?: number;
  hostsPerRoute?: number;
  /** Batch base time; reports spread over `spreadMs` after it. */
  ts: number;
  spreadMs?: number;
  errorRate?: number;
  senders?: number;
  seed?: number;
}

/** Many batches over several routes and hosts: the benchmark's and the count tests' load. */
export function randomBatches(o: RandomBatchOptions): ReportBatch[] {
  const rnd = prng(o.seed ?? 1);
  const routes = o.routes ?? 20;
  const hostsPer = o.hostsPerRoute ?? 8;
  const spread = o.spreadMs ?? 1000;
  const out: ReportBatch[] = [];
  for (let k = 0; k < o.batches; k++) {
    const r = k % routes;
    const hosts: Array<[string, number]> = [];
    for (let h = 0; h < hostsPer; h++) hosts.push([`10.${(r >> 8) & 255}.${r & 255}.${h + 1}`, 8000 + h]);
    const reports: ReportTuple[] = [];
    for (let i = 0; i < o.reportsPerBatch; i++) {
      const err = rnd() < (o.errorRate ?? 0.01);
      reports.push([Math.floor(rnd() * hostsPer), err ? 1 : 0, Math.round(rnd() * 200_000) / 1000, Math.floor((i * spread) / o.reportsPerBatch)]);
    }
    out.push(reportBatch({ modid: 1000 + r, cmdid: 1, ts: o.ts, sender: `agent-${k % (o.senders ?? 10)}`, zone: 'z1', hosts, reports }));
  }
  return out;
}

export interface EventSpec {
  modid: number;
  cmdid: number;
  ts: number;
  ip: string;
  port: number;
  from: HostState | 'none';
  to: HostState | 'none';
  reason: Reason;
  version: number;
  figures?: EventFigures & Record<string, number>;
  sender?: string;
}

export function routeEvent(s: EventSpec): RouteEvent {
  return {
    v: SCHEMA_VERSION,
    sender: s.sender ?? 'node-1',
    modid: s.modid,
    cmdid: s.cmdid,
    ts: s.ts,
    ip: s.ip,
    port: s.port,
    from: s.from,
    to: s.to,
    reason: s.reason,
    version: s.version,
    figures: s.figures ?? {},
  };
}

export interface FaultScenario {
  modid: number;
  cmdid: number;
  batches: ReportBatch[];
  events: RouteEvent[];
  /** Reports in all batches. */
  reports: number;
}

/**
 * One route, three hosts; the second starts failing for a while (errors and
 * slow calls), is ejected, probed, and comes back. Reports every 100 ms from
 * two callers; one event per transition.
 */
export function faultScenario(modid: number, cmdid: number, start: number, seed = 7): FaultScenario {
  const rnd = prng(seed);
  const hosts: Array<[string, number]> = [
    ['10.1.0.1', 9000],
    ['10.1.0.2', 9000],
    ['10.1.0.3', 9000],
  ];
  const batches: ReportBatch[] = [];
  let reports = 0;
  for (let step = 0; step < 60; step++) {
    const ts = start + step * 1000;
    const bad = step >= 20 && step < 35;
    for (const sender of ['svc-a', 'svc-b']) {
      const rs: ReportTuple[] = [];
      for (let i = 0; i < 10; i++) {
        const h = i % 3;
        const failing = h === 1 && bad;
        rs.push([h, failing && rnd() < 0.8 ? -1 : 0, failing ? 200 + rnd() * 100 : 5 + rnd() * 10, i * 100]);
      }
      reports += rs.length;
      batches.push(reportBatch({ modid, cmdid, ts, sender, zone: sender === 'svc-a' ? 'z1' : 'z2', hosts, reports: rs }));
    }
  }
  const ip = '10.1.0.2';
  const events: RouteEvent[] = [
    routeEvent({ modid, cmdid, ts: start + 22_000, ip, port: 9000, from: 'healthy', to: 'overloaded', reason: 'consecutive_errors', version: 2, figures: { consecutive_errors: 15, err_rate: 0.8, latency_ms: 250, ejections: 1, ejection_ms: 15_000 } }),
    routeEvent({ modid, cmdid, ts: start + 37_000, ip, port: 9000, from: 'overloaded', to: 'probing', reason: 'timeout', version: 3, figures: { ejection_ms: 15_000 } }),
    routeEvent({ modid, cmdid, ts: start + 40_000, ip, port: 9000, from: 'probing', to: 'healthy', reason: 'probe_success', version: 4, figures: { consecutive_successes: 5, succ_rate: 1, custom_score: 0.25 } }),
  ];
  return { modid, cmdid, batches, events, reports };
}

/** Publishes report batches with core NATS, as agents do, and flushes. */
export async function publishBatches(nc: NatsConnection, n: Names, batches: readonly ReportBatch[], partitions = DEFAULT_PARTITIONS): Promise<void> {
  for (const b of batches) nc.publish(n.report(partitionOf(b.modid, b.cmdid, partitions), b.modid, b.cmdid), encode(b));
  await nc.flush();
}

/** Publishes pre-encoded report batches (the benchmark encodes once, outside the timing). */
export async function publishEncoded(nc: NatsConnection, n: Names, items: ReadonlyArray<{ modid: number; cmdid: number; bytes: Uint8Array }>, partitions = DEFAULT_PARTITIONS): Promise<void> {
  for (const it of items) nc.publish(n.report(partitionOf(it.modid, it.cmdid, partitions), it.modid, it.cmdid), it.bytes);
  await nc.flush();
}

export async function publishEvents(nc: NatsConnection, n: Names, events: readonly RouteEvent[]): Promise<void> {
  for (const e of events) nc.publish(n.event(e.modid, e.cmdid), encode(e));
  await nc.flush();
}
