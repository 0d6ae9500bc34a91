/**
 * A balancing scenario's hosts (src/sim/scenario.ts) as real HTTP servers on
 * loopback: each request is answered after a draw from the host's latency
 * distribution (status 200), or fails with its error rate (status 500, after
 * `errors.latency_ms` when set), as the simulator's hosts do. The scenario's
 * changes come in force and end on real timers, counted from the run's start.
 *
 * Capacity limits and repeating changes (`every_s`) are the simulator's
 * only: a scenario using them is refused.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { drawLatency } from '../../src/sim/hosts.ts';
import type { Change, Errors, HostGroup, Latency, Scenario } from '../../src/sim/scenario.ts';

export interface ScenarioHost {
  /** The simulator's label of the host (`name`, `name<k>`, or `h<position>`). */
  readonly label: string;
  readonly ip: string;
  readonly port: number;
  readonly key: string;
  readonly weight: number;
  /** Requests received. */
  requests: number;
}

export interface ScenarioHosts {
  readonly hosts: readonly ScenarioHost[];
  /** Schedules the changes: the scenario's time 0 is `startAt` (epoch ms). */
  start(startAt: number): void;
  /** When each change came in force or ended, ms after the start (by the timers that switched it). */
  readonly switches: Array<{ label: string; change: string; on: boolean; atMs: number }>;
  close(): Promise<void>;
}

/** The latency and errors of `spec` with `active` changes in force (later changes win, as in the simulator). */
function behaviour(spec: HostGroup, active: ReadonlySet<Change>): { latency: Latency; errors: Errors | undefined } {
  let latency = spec.latency;
  let errors = spec.errors;
  for (const c of spec.changes ?? []) {
    if (!active.has(c)) continue;
    if (c.latency) latency = c.latency;
    if (c.errors) errors = c.errors;
  }
  return { latency, errors };
}

export async function startScenarioHosts(s: Scenario): Promise<ScenarioHosts> {
  const timers = new Set<NodeJS.Timeout>();
  const servers: http.Server[] = [];
  const hosts: ScenarioHost[] = [];
  const schedules: Array<(startAt: number) => void> = [];
  const switches: ScenarioHosts['switches'] = [];
  let startAt = 0;
  const later = (ms: number, f: () => void): void => {
    const t = setTimeout(() => {
      timers.delete(t);
      f();
    }, Math.max(0, ms));
    timers.add(t);
  };
  for (const [gi, g] of s.hosts.entries()) {
    if (g.capacity !== undefined || (g.changes ?? []).some((c) => c.capacity !== undefined || c.every_s !== undefined)) {
      throw new Error(`hosts.${gi}: capacity and every_s are not modelled by the real-time hosts`);
    }
    const n = g.count ?? 1;
    for (let k = 0; k < n; k++) {
      const label = g.name === undefined ? `h${hosts.length + 1}` : n === 1 ? g.name : `${g.name}${k + 1}`;
      const active = new Set<Change>();
      const host = { label, ip: '127.0.0.1', port: 0, key: '', weight: g.weight ?? 100, requests: 0 };
      const server = http.createServer((req, res) => {
        req.resume();
        res.on('error', () => undefined);
        host.requests++;
        const b = behaviour(g, active);
        const fails = b.errors !== undefined && b.errors.rate > 0 && Math.random() < b.errors.rate;
        const ms = fails && b.errors!.latency_ms !== undefined ? b.errors!.latency_ms : drawLatency(b.latency, Math.random);
        // the host works on the call even when its caller gave up
        later(ms, () => {
          if (res.destroyed) return;
          res.writeHead(fails ? 500 : 200, { 'content-type': 'text/plain' });
          res.end(label);
        });
      });
      await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
      host.port = (server.address() as AddressInfo).port;
      host.key = `${host.ip}:${host.port}`;
      servers.push(server);
      hosts.push(host);
      for (const c of g.changes ?? []) {
        const name = c.label ?? `${label} changes`;
        schedules.push((t0) => {
          later(t0 + c.at_s * 1000 - Date.now(), () => {
            active.add(c);
            switches.push({ label, change: name, on: true, atMs: Date.now() - startAt });
          });
          if (c.for_s !== undefined) {
            later(t0 + (c.at_s + c.for_s) * 1000 - Date.now(), () => {
              active.delete(c);
              switches.push({ label, change: name, on: false, atMs: Date.now() - startAt });
            });
          }
        });
      }
    }
  }
  return {
    hosts,
    switches,
    start(t0) {
      startAt = t0;
      for (const f of schedules) f(t0);
    },
    async close() {
      for (const t of timers) clearTimeout(t);
      timers.clear();
      await Promise.all(
        servers.map(
          (sv) =>
            new Promise<void>((r) => {
              sv.closeAllConnections();
              sv.close(() => r());
            }),
        ),
      );
    },
  };
}
