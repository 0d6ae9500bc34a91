/**
 * The sink's fast path: a report batch's msgpack bytes straight to its
 * `reports_ingest` row, validated on the way, without building the decoded
 * object (decoding plus formatting cost ~0.7 µs per report; this ~0.3 µs).
 *
 * It applies the contract's rules for a ReportBatch (schemas/contract.ts and
 * the host index rule of `validateReportBatch`) to the bytes (the optional
 * `utilization` pairs are checked, not stored: the route nodes use them), and reads every
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
import { escapeTsv, ipv4ToUint32, type RowSpan } from './rows.ts';

export interface Transcoded {
  line: string;
  rows: number;
  span: RowSpan;
}

/** Reads plain msgpack; every method returns undefined for anything outside the fast path. */
class Reader {
  p = 0;
  readonly b: Uint8Array;
  readonly dv: DataView;
  constructor(b: Uint8Array) {
    this.b = b;
    this.dv = new DataView(b.buffer, b.byteOffset, b.byteLength);
  }

  /** Integer of any msgpack width. */
  int(): number | undefined {
    const b = this.b;
    if (this.p >= b.length) return undefined;
    const t = b[this.p] as number;
    if (t <= 0x7f) {
      this.p++;
      return t;
    }
    if (t >= 0xe0) {
      this.p++;
      return t - 0x100;
    }
    const dv = this.dv;
    const p = this.p + 1;
    let size: number;
    let v: number;
    switch (t) {
      case 0xcc:
        size = 1;
        if (p + size > b.length) return undefined;
        v = dv.getUint8(p);
        break;
      case 0xcd:
        size = 2;
        if (p + size > b.length) return undefined;
        v = dv.getUint16(p);
        break;
      case 0xce:
        size = 4;
        if (p + size > b.length) return undefined;
        v = dv.getUint32(p);
        break;
      case 0xd0:
        size = 1;
        if (p + size > b.length) return undefined;
        v = dv.getInt8(p);
        break;
      case 0xd1:
        size = 2;
        if (p + size > b.length) return undefined;
        v = dv.getInt16(p);
        break;
      case 0xd2:
        size = 4;
        if (p + size > b.length) return undefined;
        v = dv.getInt32(p);
        break;
      // 64-bit integers become numbers the way the codec reads them (int64AsType 'number').
      case 0xcf:
        size = 8;
        if (p + size > b.length) return undefined;
        v = dv.getUint32(p) * 0x1_0000_0000 + dv.getUint32(p + 4);
        break;
      case 0xd3:
        size = 8;
        if (p + size > b.length) return undefined;
        v = dv.getInt32(p) * 0x1_0000_0000 + dv.getUint32(p + 4);
        break;
      default:
        return undefined;
    }
    this.p = p + size;
    return v;
  }

  /** An integer, a float32 or a float64. */
  num(): number | undefined {
    const b = this.b;
    const t = b[this.p];
    if (t === 0xcb) {
      if (this.p + 9 > b.length) return undefined;
      const v = this.dv.getFloat64(this.p + 1);
      this.p += 9;
      return v;
    }
    if (t === 0xca) {
      if (this.p + 5 > b.length) return undefined;
      const v = this.dv.getFloat32(this.p + 1);
      this.p += 5;
      return v;
    }
    return this.int();
  }

  /**
   * A string of at most `max` UTF-16 units (the contract's lengths), from
   * well-formed UTF-8 that does not start with a byte order mark.
   */
  str(max: number): string | undefined {
    const b = this.b;
    if (this.p >= b.length) return undefined;
    const t = b[this.p] as number;
    let len: number;
    let start: number;
    if (t >= 0xa0 && t <= 0xbf) {
      len = t - 0xa0;
      start = this.p + 1;
    } else if (t === 0xd9) {
      if (this.p + 2 > b.length) return undefined;
      len = b[this.p + 1] as number;
      start = this.p + 2;
    } else if (t === 0xda) {
      if (this.p + 3 > b.length) return undefined;
      len = this.dv.getUint16(this.p + 1);
      start = this.p + 3;
    } else if (t === 0xdb) {
      if (this.p + 5 > b.length) return undefined;
      len = this.dv.getUint32(this.p + 1);
      start = this.p + 5;
    } else {
      return undefined;
    }
    // A UTF-16 unit takes at most 3 bytes of UTF-8.
    if (len > 3 * max || start + len > b.length) return undefined;
    let s: string | undefined = '';
    for (let i = start; i < start + len; i++) {
      const c = b[i] as number;
      if (c >= 0x80) {
        s = utf8(b, start, len);
        break;
      }
      s += String.fromCharCode(c);
    }
    if (s === undefined || s.length > max) return undefined;
    this.p = start + len;
    return s;
  }

  private len(fix: number, fixMax: number, t16: number, t32: number): number | undefined {
    const b = this.b;
    if (this.p >= b.length) return undefined;
    const t = b[this.p] as number;
    if (t >= fix && t <= fixMax) {
      this.p++;
      return t - fix;
    }
    if (t === t16) {
      if (this.p + 3 > b.length) return undefined;
      const n = this.dv.getUint16(this.p + 1);
      this.p += 3;
      return n;
    }
    if (t === t32) {
      if (this.p + 5 > b.length) return undefined;
      const n = this.dv.getUint32(this.p + 1);
      this.p += 5;
      return n;
    }
    return undefined;
  }

  array(): number | undefined {
    return this.len(0x90, 0x9f, 0xdc, 0xdd);
  }

  map(): number | undefined {
    return this.len(0x80, 0x8f, 0xde, 0xdf);
  }

  nil(): boolean {
    if (this.b[this.p] === 0xc0) {
      this.p++;
      return true;
    }
    return false;
  }
}

const UTF8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

/** Well-formed UTF-8 without a leading byte order mark (decoders disagree on it), else undefined. */
function utf8(b: Uint8Array, start: number, len: number): string | undefined {
  if (len >= 3 && b[start] === 0xef && b[start + 1] === 0xbb && b[start + 2] === 0xbf) return undefined;
  try {
    return UTF8.decode(b.subarray(start, start + len));
  } catch {
    return undefined;
  }
}

/** Deepest nesting read under an unknown key; deeper values go to the general path. */
const MAX_SKIP_DEPTH = 32;

/**
 * Steps over one value under an unknown key, accepting only what the codec
 * decodes without failing: plain msgpack without extension types, and map
 * keys that are strings or scalars.
 */
function skipValue(r: Reader, depth: number): boolean {
  const b = r.b;
  if (r.p >= b.length || depth > MAX_SKIP_DEPTH) return false;
  const t = b[r.p] as number;
  if (t <= 0x7f || t >= 0xe0 || t === 0xc0 || t === 0xc2 || t === 0xc3) {
    r.p++;
    return true;
  }
  if ((t >= 0xcc && t <= 0xcf) || (t >= 0xd0 && t <= 0xd3) || t === 0xca || t === 0xcb) return r.num() !== undefined;
  if ((t >= 0xa0 && t <= 0xbf) || t === 0xd9 || t === 0xda || t === 0xdb || t === 0xc4 || t === 0xc5 || t === 0xc6) {
    // Text or bytes: only the length matters (the codec decodes any bytes of a string).
    const size = t >= 0xa0 && t <= 0xbf ? 0 : t === 0xd9 || t === 0xc4 ? 1 : t === 0xda || t === 0xc5 ? 2 : 4;
    if (r.p + 1 + size > b.length) return false;
    const len = size === 0 ? t - 0xa0 : size === 1 ? (b[r.p + 1] as number) : size === 2 ? r.dv.getUint16(r.p + 1) : r.dv.getUint32(r.p + 1);
    if (r.p + 1 + size + len > b.length) return false;
    r.p += 1 + size + len;
    return true;
  }
  if ((t >= 0x90 && t <= 0x9f) || t === 0xdc || t === 0xdd) {
    const n = r.array();
    if (n === undefined) return false;
    for (let i = 0; i < n; i++) if (!skipValue(r, depth + 1)) return false;
    return true;
  }
  if ((t >= 0x80 && t <= 0x8f) || t === 0xde || t === 0xdf) {
    const n = r.map();
    if (n === undefined) return false;
    for (let i = 0; i < n; i++) {
      const k = b[r.p];
      const scalarKey = k !== undefined && (k <= 0x7f || k >= 0xe0 || (k >= 0xa0 && k <= 0xbf) || k === 0xd9 || k === 0xda || k === 0xdb || k === 0xc0 || k === 0xc2 || k === 0xc3 || (k >= 0xca && k <= 0xd3));
      if (!scalarKey || !skipValue(r, depth + 1) || !skipValue(r, depth + 1)) return false;
    }
    return true;
  }
  return false;
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
  const t = Math.floor(ts);
  return {
    line: `${t}\t${modid}\t${cmdid}\t${escapeTsv(sender)}\t${zone}\t${seq}\t[${ips}]\t[${ports}]\t${reports.text}\n`,
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
});
