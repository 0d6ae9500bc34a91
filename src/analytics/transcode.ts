/**
 * The sink's fast path: a report batch's msgpack bytes straight to its
 * `reports_ingest_v2` row, validated on the way, without building the decoded
 * object (decoding plus formatting cost ~0.7 µs per report; this ~0.3 µs).
 *
 * It applies the contract's rules for a ReportBatch (schemas/contract.ts and
 * the host index rule of `validateReportBatch`) to the bytes (the optional
 * `utilization` pairs are checked, not stored: the route nodes use them; the `attempts` marks go to their own columns), and reads every
 * plain msgpack form a writer in any language may choose: any integer width
 * (64-bit ones as the codec reads them), float32 and float64, UTF-8 text,
 * and unknown keys (skipped, as the contract says readers do). So for a batch
 * the codec decodes, it accepts exactly what `validateReportBatch` accepts and
 * writes the same row as the general path. It returns undefined, and the
 * caller takes the general path (msgpackr + the validator, which also names
 * the rejection), for every refusal and for the few encodings it leaves to
 * msgpackr: a known key given twice, extension types, non-string map keys,
 * text that is not well-formed UTF-8 or starts with a byte order mark, values
 * nested deeper than MAX_SKIP_DEPTH under an unknown key, trailing bytes.
 */
import type { Features } from '../../schemas/clickhouse/features.ts';
import { LIMITS, SCHEMA_VERSION, isIPv4, isPort } from '../../schemas/messages.ts';
import { UINT32_MAX } from '../../schemas/subjects.ts';
import { escapeTsv, ipv4ToUint32, markColumns, type RowSpan } from './rows.ts';
import { Reader, skipValue } from '../lib/msgpack-reader.ts';

export interface Transcoded {
  line: string;
  rows: number;
  span: RowSpan;
}

interface ReportColumns {
  /** The four array literals, tab-separated. */
  text: string;
  n: number;
  /** Smallest and largest offset. */
  lo: number;
  hi: number;
}

// Reused arrays: V8's JSON.stringify prints a number array ~3x faster than
// string concatenation does, and its text is ClickHouse's array literal.
const H: number[] = [];
const RC: number[] = [];
const LAT: number[] = [];
const OFF: number[] = [];

/** Reads the reports array into the four column literals; undefined if anything is off. */
function readReports(r: Reader, nh: number): ReportColumns | undefined {
  const n = r.array();
  if (n === undefined || n === 0 || n > LIMITS.maxBatchReports) return undefined;
  H.length = RC.length = LAT.length = OFF.length = n;
  let lo = Infinity;
  let hi = -Infinity;
  for (let i = 0; i < n; i++) {
    if (r.array() !== 4) return undefined;
    const h = r.num();
    const rc = r.num();
    const lat = r.num();
    const off = r.num();
    // (x | 0) === x: an integer within int32 (host_index is below 1024).
    if (h === undefined || !(h >= 0 && h < nh) || (h | 0) !== h) return undefined;
    if (rc === undefined || (rc | 0) !== rc) return undefined;
    if (lat === undefined || !(lat >= 0 && lat <= LIMITS.maxLatencyMs)) return undefined;
    if (off === undefined || !(off >= 0 && off <= LIMITS.maxOffsetMs) || Math.floor(off) !== off) return undefined;
    H[i] = h;
    RC[i] = rc;
    LAT[i] = lat;
    OFF[i] = off;
    if (off < lo) lo = off;
    if (off > hi) hi = off;
  }
  return { text: `${JSON.stringify(H)}\t${JSON.stringify(RC)}\t${JSON.stringify(LAT)}\t${JSON.stringify(OFF)}`, n, lo, hi };
}

/** Steps over a reports array, checking its shape only. */
function skipReports(r: Reader): boolean {
  const n = r.array();
  if (n === undefined) return false;
  for (let i = 0; i < n; i++) {
    if (r.array() !== 4) return false;
    if (r.num() === undefined || r.num() === undefined || r.num() === undefined || r.num() === undefined) return false;
  }
  return true;
}

/**
 * Checks a `utilization` array (`[host_index, utilization]` pairs, host
 * indexes below `nh`) and steps over it; the sink does not store it. With
 * `nh` -1 (the host count comes later) it checks the shape only.
 */
function readUtilization(r: Reader, nh: number): boolean {
  const n = r.array();
  if (n === undefined || n > LIMITS.maxBatchHosts) return false;
  for (let i = 0; i < n; i++) {
    if (r.array() !== 2) return false;
    const h = r.num();
    const u = r.num();
    if (h === undefined || u === undefined) return false;
    if (nh < 0) continue;
    if (!(h >= 0 && h < nh) || (h | 0) !== h || !(u >= 0 && u <= 1)) return false;
  }
  return true;
}

/**
 * Checks an `attempts` array (`[report_index, attempt, kind]` marks, report
 * indexes below `nr`) and steps over it. With `nr` -1 (the report count comes
 * later) it checks the shape only.
 */
function readAttempts(r: Reader, nr: number): boolean {
  const n = r.array();
  if (n === undefined || n > LIMITS.maxBatchReports) return false;
  MARKS.length = 0;
  for (let i = 0; i < n; i++) {
    if (r.array() !== 3) return false;
    const ri = r.num();
    const a = r.num();
    const k = r.num();
    if (ri === undefined || a === undefined || k === undefined) return false;
    if (nr < 0) continue;
    if (!(ri >= 0 && ri < nr) || (ri | 0) !== ri || !(a >= 1 && a <= LIMITS.maxAttempt) || (a | 0) !== a || !(k === 0 || k === 1 || k === 2)) return false;
    MARKS.push([ri, a, k]);
  }
  return true;
}

/** The marks read last by `readAttempts` with a report count. */
const MARKS: Array<[number, number, number]> = [];

function isU32(x: number | undefined): x is number {
  return x !== undefined && Number.isInteger(x) && x >= 0 && x <= UINT32_MAX;
}

/** The ingest row of a valid report batch, or undefined (take the general path). */
export function transcodeReportBatch(bytes: Uint8Array, seq: number, f: Features): Transcoded | undefined {
  const r = new Reader(bytes);
  const keys = r.map();
  if (keys === undefined) return undefined;
  let v: number | undefined;
  let sender: string | undefined;
  let modid: number | undefined;
  let cmdid: number | undefined;
  let ts: number | undefined;
  let zone = '';
  let hostsDone = false;
  let ips = '';
  let ports = '';
  let nh = 0;
  let reportsAt = -1;
  let reports: ReportColumns | undefined;
  let utilAt = -1;
  let attemptsAt = -1;
  let seen = 0;
  for (let k = 0; k < keys; k++) {
    const key = readKey(r);
    if (key === undefined) return undefined;
    if (key === '') {
      if (!skipValue(r, 1)) return undefined;
      continue;
    }
    const bit = KEY_BITS[key] as number;
    if ((seen & bit) !== 0) return undefined;
    seen |= bit;
    switch (key) {
      case 'v':
        v = r.num();
        break;
      case 'sender':
        sender = r.str(LIMITS.maxSenderLength);
        if (sender === undefined || sender.length === 0) return undefined;
        break;
      case 'modid':
        modid = r.num();
        break;
      case 'cmdid':
        cmdid = r.num();
        break;
      case 'ts':
        ts = r.num();
        break;
      case 'zone': {
        if (r.nil()) break;
        const z = r.str(LIMITS.maxZoneLength);
        if (z === undefined) return undefined;
        zone = escapeTsv(z);
        break;
      }
      case 'hosts': {
        const n = r.array();
        if (n === undefined || n === 0 || n > LIMITS.maxBatchHosts) return undefined;
        for (let i = 0; i < n; i++) {
          if (r.array() !== 2) return undefined;
          const ip = r.str(15);
          const port = r.num();
          if (ip === undefined || !isIPv4(ip) || !isPort(port)) return undefined;
          const sep = i > 0 ? ',' : '';
          ips += sep + (f.ipv4Type ? `'${ip}'` : String(ipv4ToUint32(ip)));
          ports += sep + port;
        }
        nh = n;
        hostsDone = true;
        break;
      }
      case 'reports':
        if (hostsDone) {
          // The usual order (hosts first): one pass.
          reports = readReports(r, nh);
          if (reports === undefined) return undefined;
        } else {
          // The host count comes later: remember where the reports are.
          reportsAt = r.p;
          if (!skipReports(r)) return undefined;
        }
        break;
      case 'utilization':
        if (!hostsDone) utilAt = r.p;
        if (!readUtilization(r, hostsDone ? nh : -1)) return undefined;
        break;
      case 'attempts':
        // checked once the report count is known
        attemptsAt = r.p;
        if (!readAttempts(r, -1)) return undefined;
        break;
    }
  }
  if (r.p !== bytes.length) return undefined;
  if (v !== SCHEMA_VERSION || sender === undefined || !hostsDone) return undefined;
  if (!isU32(modid) || !isU32(cmdid)) return undefined;
  if (ts === undefined || !(ts >= 0 && ts <= LIMITS.maxTimeMs)) return undefined;
  if (reports === undefined) {
    if (reportsAt < 0) return undefined;
    r.p = reportsAt;
    reports = readReports(r, nh);
    if (reports === undefined) return undefined;
  }
  if (utilAt >= 0) {
    r.p = utilAt;
    if (!readUtilization(r, nh)) return undefined;
  }
  let marks = '[]\t[]\t[]';
  if (attemptsAt >= 0) {
    r.p = attemptsAt;
    if (!readAttempts(r, reports.n)) return undefined;
    marks = markColumns(MARKS);
  }
  const t = Math.floor(ts);
  return {
    line: `${t}\t${modid}\t${cmdid}\t${escapeTsv(sender)}\t${zone}\t${seq}\t[${ips}]\t[${ports}]\t${reports.text}\t${marks}\n`,
    rows: reports.n,
    span: { modid, cmdid, minMs: t + reports.lo, maxMs: t + reports.hi },
  };
}

/**
 * A top-level key: the name of a batch field, '' for any other key (its value
 * is skipped), undefined for a key the codec refuses (bytes, arrays, maps,
 * extensions). Scalar keys become strings in the codec, never a field's name.
 */
function readKey(r: Reader): string | undefined {
  const b = r.b;
  const t = b[r.p];
  if (t === undefined) return undefined;
  if ((t >= 0xa0 && t <= 0xbf) || t === 0xd9 || t === 0xda || t === 0xdb) {
    const start = r.p;
    // Field names are short ASCII; any other string is an unknown key, whatever its bytes.
    const name = r.str(MAX_KEY_LENGTH);
    if (name !== undefined && KEY_BITS[name] !== undefined) return name;
    r.p = start;
    return skipValue(r, 1) ? '' : undefined;
  }
  if (t <= 0x7f || t >= 0xe0 || t === 0xc0 || t === 0xc2 || t === 0xc3 || (t >= 0xca && t <= 0xd3)) return skipValue(r, 1) ? '' : undefined;
  return undefined;
}

const MAX_KEY_LENGTH = 11;

/** The keys of a report batch, one bit each (a repeated key sends the batch to the general path). */
const KEY_BITS: Record<string, number | undefined> = Object.assign(Object.create(null) as Record<string, number | undefined>, {
  v: 1,
  sender: 2,
  modid: 4,
  cmdid: 8,
  ts: 16,
  zone: 32,
  hosts: 64,
  reports: 128,
  utilization: 256,
  attempts: 512,
});
