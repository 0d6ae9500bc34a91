/**
 * Measures validateReportBatch (the compiled contract schema plus the host
 * index rule) against a hand-written loop of the same rules, on a batch of
 * 1000 reports over 20 hosts. A measurement, not part of the contract:
 * `npx tsx schemas/validate-speed.ts`. Prints the best of eight interleaved
 * rounds as batches/s and ns per report.
 *
 * The hand-written loop is the baseline a hand-tuned fast path would have to
 * beat by a margin that matters; on Node 20 the compiled checker is as fast
 * (see schemas/README.md), so the contract has no second validator.
 */
import { TypeCompiler } from '@sinclair/typebox/compiler';
import { ReportBatchSchema } from './contract.ts';
import { isIPv4, isPort, validateReportBatch, LIMITS } from './messages.ts';

const compiled = TypeCompiler.Compile(ReportBatchSchema);

const REPORTS = 1000;

function handWritten(m: unknown): boolean {
  if (typeof m !== 'object' || m === null || Array.isArray(m)) return false;
  const b = m as Record<string, unknown>;
  if (b['v'] !== 1) return false;
  const s = b['sender'];
  if (typeof s !== 'string' || s.length === 0 || s.length > LIMITS.maxSenderLength) return false;
  for (const k of ['modid', 'cmdid']) {
    const x = b[k];
    if (typeof x !== 'number' || !Number.isInteger(x) || x < 0 || x > 0xffff_ffff) return false;
  }
  const ts = b['ts'];
  if (typeof ts !== 'number' || !(ts >= 0 && ts <= LIMITS.maxTimeMs)) return false;
  const zone = b['zone'];
  if (zone !== undefined && zone !== null && (typeof zone !== 'string' || zone.length > LIMITS.maxZoneLength)) return false;
  const hosts = b['hosts'];
  const reports = b['reports'];
  if (!Array.isArray(hosts) || !Array.isArray(reports)) return false;
  if (hosts.length === 0 || hosts.length > LIMITS.maxBatchHosts) return false;
  if (reports.length === 0 || reports.length > LIMITS.maxBatchReports) return false;
  for (let i = 0; i < hosts.length; i++) {
    const h = hosts[i] as unknown[];
    if (!Array.isArray(h) || h.length !== 2 || !isIPv4(h[0]) || !isPort(h[1])) return false;
  }
  const nh = hosts.length;
  for (let i = 0; i < reports.length; i++) {
    const r = reports[i] as unknown[];
    if (!Array.isArray(r) || r.length !== 4) return false;
    const hi = r[0];
    const rc = r[1];
    const lat = r[2];
    const off = r[3];
    if (typeof hi !== 'number' || typeof rc !== 'number' || typeof lat !== 'number' || typeof off !== 'number') return false;
    if (!(hi >= 0 && hi < nh && (hi | 0) === hi)) return false;
    if ((rc | 0) !== rc) return false;
    if (!(lat >= 0 && lat <= LIMITS.maxLatencyMs)) return false;
    if (!(off >= 0 && off <= LIMITS.maxOffsetMs && Math.floor(off) === off)) return false;
  }
  return true;
}

const batch = {
  v: 1,
  sender: 'agent-1',
  modid: 1,
  cmdid: 2,
  ts: 1_795_000_000_000,
  zone: 'z1',
  hosts: Array.from({ length: 20 }, (_, i) => [`10.0.${i}.1`, 8080]),
  reports: Array.from({ length: REPORTS }, (_, i) => [i % 20, i % 7 === 0 ? 1 : 0, ((i * 37) % 500) + 0.25, i]),
};

/** Batches per second in one 200 ms round. */
function round(f: (x: unknown) => boolean): number {
  const t0 = performance.now();
  let n = 0;
  while (performance.now() - t0 < 200) {
    for (let k = 0; k < 50; k++) f(batch);
    n += 50;
  }
  return n / ((performance.now() - t0) / 1000);
}

const rows: Array<[string, (x: unknown) => boolean]> = [
  ['hand-written loop', handWritten],
  ['validateReportBatch (compiled + host index rule)', (x) => validateReportBatch(x).ok],
  ['compiled schema check alone', (x) => compiled.Check(x)],
];
for (const [, f] of rows) for (let i = 0; i < 2000; i++) if (!f(batch)) throw new Error('the sample batch must be valid');
// Rounds interleaved and the best kept, so a busy machine slows every row alike.
const best = rows.map(() => 0);
for (let r = 0; r < 8; r++) rows.forEach(([, f], i) => (best[i] = Math.max(best[i]!, round(f))));
rows.forEach(([name], i) => {
  const ops = best[i]!;
  console.log(`${name.padEnd(50)} ${Math.round(ops).toLocaleString('en-US').padStart(10)} batches/s  ${(1e9 / ops / REPORTS).toFixed(2)} ns/report`);
});
