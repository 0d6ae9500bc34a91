/**
 * Metrics read at scrape time: a counter or gauge whose values come from a
 * function over a component's own counters (`stats()`), so the hot paths
 * carry no metrics work at all. A registry per process (per component in
 * tests), never prom-client's global one.
 */
import { Counter, Gauge, Registry, collectDefaultMetrics } from 'prom-client';

/** One labelled sample: labels (may be empty) and its value. */
export type Sample<L extends string> = readonly [Partial<Record<L, string>>, number];

export interface MetricSpec<L extends string> {
  name: string;
  help: string;
  labelNames?: readonly L[];
  /** A number for an unlabelled metric, else the samples; called at every scrape. */
  read: () => number | Iterable<Sample<L>>;
}

/** A counter whose value is a monotonic count kept elsewhere. */
export function counterFrom<L extends string>(registry: Registry, spec: MetricSpec<L>): Counter<L> {
  return new Counter<L>({
    name: spec.name,
    help: spec.help,
    labelNames: spec.labelNames ?? [],
    registers: [registry],
    collect() {
      this.reset();
      const v = spec.read();
      if (typeof v === 'number') this.inc(v);
      else for (const [labels, x] of v) this.inc(labels, x);
    },
  });
}

/** A gauge whose value is read from elsewhere. */
export function gaugeFrom<L extends string>(registry: Registry, spec: MetricSpec<L>): Gauge<L> {
  return new Gauge<L>({
    name: spec.name,
    help: spec.help,
    labelNames: spec.labelNames ?? [],
    registers: [registry],
    collect() {
      this.reset();
      const v = spec.read();
      if (typeof v === 'number') this.set(v);
      else for (const [labels, x] of v) this.set(labels, x);
    },
  });
}

export interface RegistryOptions {
  /** Labels on every sample (e.g. `{ node: 'route-node-1' }`). */
  labels?: Record<string, string>;
  /** Node.js process metrics: event-loop lag, heap, GC, handles (prom-client defaults). Default true. */
  defaultMetrics?: boolean;
}

/** A fresh registry, with prom-client's process metrics unless turned off. */
export function createRegistry(opts: RegistryOptions = {}): Registry {
  const r = new Registry();
  if (opts.labels) r.setDefaultLabels(opts.labels);
  if (opts.defaultMetrics !== false) collectDefaultMetrics({ register: r, eventLoopMonitoringPrecision: 10 });
  return r;
}

/** Entries of a `Record<string, number>` as samples of one label. */
export function byLabel<L extends string>(label: L, rec: Readonly<Record<string, number>>): Array<Sample<L>> {
  return Object.entries(rec).map(([k, v]) => [{ [label]: k } as Partial<Record<L, string>>, v] as const);
}
