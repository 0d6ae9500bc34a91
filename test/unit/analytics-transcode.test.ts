import { expect } from 'chai';
import { Packr } from 'msgpackr';
import { featuresFor, parseVersion, FEATURES_18_16 } from '../../schemas/clickhouse/features.ts';
import { validateReportBatch, type ReportBatch } from '../../schemas/messages.ts';
import { encode, tryDecode } from '../../schemas/codec.ts';
import { prng, randomBatches, reportBatch } from '../helpers/analytics-fixtures.ts';
import { ingestLine } from '../../src/analytics/rows.ts';
import { transcodeReportBatch } from '../../src/analytics/transcode.ts';
import fc from 'fast-check';
import { reportBatch as validBatch, reportBatchMutations } from './contract-arbitraries.ts';

const BATCH_KEYS: ReadonlySet<string> = new Set(['v', 'sender', 'modid', 'cmdid', 'ts', 'zone', 'hosts', 'reports', 'utilization', 'attempts']);

interface WriteOptions {
  /** Integers: smallest width, always 64-bit, or float64. */
  ints?: 'min' | 'int64' | 'float64';
  /** Non-integers that a float32 holds exactly as float32. */
  f32?: boolean;
  str32?: boolean;
  /** Map keys in reverse order. */
  shuffle?: boolean;
}

/** A small plain-msgpack writer with the choices other languages' writers make. */
function writeMsgpack(x: unknown, o: WriteOptions = {}): Uint8Array {
  let buf = new Uint8Array(1024);
  let dv = new DataView(buf.buffer);
  let p = 0;
  const room = (n: number) => {
    if (p + n <= buf.length) return;
    const next = new Uint8Array(Math.max(buf.length * 2, p + n));
    next.set(buf);
    buf = next;
    dv = new DataView(buf.buffer);
  };
  const byte = (b: number) => {
    room(1);
    buf[p++] = b;
  };
  const head = (t: number, n: number, bytes: 1 | 2 | 4) => {
    room(1 + bytes);
    buf[p++] = t;
    if (bytes === 1) dv.setUint8(p, n);
    else if (bytes === 2) dv.setUint16(p, n);
    else dv.setUint32(p, n);
    p += bytes;
  };
  const len = (n: number, fix: number, fixMax: number, t16: number, t32: number) => {
    if (n <= fixMax - fix) byte(fix + n);
    else if (n <= 0xffff) head(t16, n, 2);
    else head(t32, n, 4);
  };
  const f64 = (n: number) => {
    room(9);
    buf[p++] = 0xcb;
    dv.setFloat64(p, n);
    p += 8;
  };
  const w = (v: unknown): void => {
    if (v === null || v === undefined) byte(0xc0);
    else if (v === true) byte(0xc3);
    else if (v === false) byte(0xc2);
    else if (typeof v === 'number') {
      const ints = o.ints ?? 'min';
      if (Number.isInteger(v) && Math.abs(v) <= Number.MAX_SAFE_INTEGER && ints !== 'float64' && !Object.is(v, -0)) {
        if (ints === 'int64') {
          room(9);
          buf[p++] = v < 0 ? 0xd3 : 0xcf;
          if (v < 0) dv.setBigInt64(p, BigInt(v));
          else dv.setBigUint64(p, BigInt(v));
          p += 8;
        } else if (v >= 0 && v <= 0x7f) byte(v);
        else if (v < 0 && v >= -32) byte(v + 0x100);
        else if (v >= 0 && v <= 0xffffffff) head(0xce, v, 4);
        else if (v < 0 && v >= -0x80000000) head(0xd2, v >>> 0, 4);
        else f64(v);
      } else if (o.f32 === true && Math.fround(v) === v && !Number.isInteger(v)) {
        room(5);
        buf[p++] = 0xca;
        dv.setFloat32(p, v);
        p += 4;
      } else f64(v);
    } else if (typeof v === 'string') {
      const b = new TextEncoder().encode(v);
      if (o.str32 === true) head(0xdb, b.length, 4);
      else if (b.length <= 31) byte(0xa0 + b.length);
      else if (b.length <= 0xff) head(0xd9, b.length, 1);
      else head(0xda, b.length, 2);
      room(b.length);
      buf.set(b, p);
      p += b.length;
    } else if (Array.isArray(v)) {
      len(v.length, 0x90, 0x9f, 0xdc, 0xdd);
      for (const e of v) w(e);
    } else if (typeof v === 'object') {
      const entries = Object.entries(v);
      if (o.shuffle === true) entries.reverse();
      len(entries.length, 0x80, 0x8f, 0xde, 0xdf);
      for (const [k, e] of entries) {
        w(k);
        w(e);
      }
    } else throw new Error(`cannot write ${typeof v}`);
  };
  w(x);
  return buf.slice(0, p);
}

const MODERN = featuresFor(parseVersion('26.7')!);

/** The general path: msgpackr, the contract's validator, the row formatter. */
function slow(bytes: Uint8Array, seq: number, f = MODERN): string | undefined {
  const d = tryDecode(bytes);
  if (!d.ok) return undefined;
  const v = validateReportBatch(d.value);
  return v.ok ? ingestLine(v.value, seq, f) : undefined;
}

describe('analytics transcode', () => {
  it('analytics transcode - same row as the general path, on both schema flavours', () => {
    const batches = randomBatches({ batches: 60, reportsPerBatch: 37, ts: 1_795_000_000_000, hostsPerRoute: 20, seed: 4 });
    batches.push(reportBatch({ modid: 4294967295, cmdid: 0, ts: 1_795_000_000_000.7, sender: 'a\\b\tc', hosts: [['1.2.3.4', 65535]], reports: [[0, -2147483648, 0, 3_600_000], [0, 2147483647, 3_600_000, 0], [0, -33000, 1e-7, 70000]] }));
    const noZone: ReportBatch = { ...batches[0]! };
    delete noZone.zone;
    batches.push(noZone);
    batches.push({ ...batches[1]!, zone: null as unknown as string });
    for (const [i, b] of batches.entries()) {
      const bytes = encode(b);
      for (const f of [MODERN, FEATURES_18_16]) {
        const fast = transcodeReportBatch(bytes, i + 1, f);
        expect(fast, `batch ${i}`).not.to.equal(undefined);
        expect(fast!.line).to.equal(slow(bytes, i + 1, f));
        expect(fast!.rows).to.equal(b.reports.length);
      }
    }
  });

  it('analytics transcode - hosts after reports still work', () => {
    const b = randomBatches({ batches: 1, reportsPerBatch: 5, ts: 1_795_000_000_000 })[0]!;
    const reordered = { reports: b.reports, v: 1, sender: b.sender, ts: b.ts, modid: b.modid, cmdid: b.cmdid, hosts: b.hosts };
    const bytes = encode(reordered);
    expect(transcodeReportBatch(bytes, 1, MODERN)?.line).to.equal(slow(bytes, 1));
  });

  it('analytics transcode - a batch with the optional utilization gives the row it gives without, wherever the key comes', () => {
    const b = randomBatches({ batches: 1, reportsPerBatch: 5, ts: 1_795_000_000_000, hostsPerRoute: 3 })[0]!;
    const plain = transcodeReportBatch(encode(b), 1, MODERN);
    expect(plain).not.to.equal(undefined);
    const utilization = b.hosts.map((_, i): [number, number] => [i, i === 0 ? 0 : 1 / (i + 1)]);
    const first = { utilization, ...b };
    const last = { ...b, utilization };
    for (const [what, m] of [['before the hosts', first], ['after the reports', last]] as const) {
      const bytes = encode(m);
      const d = tryDecode(bytes);
      expect(d.ok && validateReportBatch(d.value).ok, what).to.equal(true);
      expect(transcodeReportBatch(bytes, 1, MODERN)?.line, what).to.equal(plain!.line);
    }
    // an index past the hosts is refused wherever the key comes
    const past: [number, number][] = [[b.hosts.length, 0.5]];
    expect(transcodeReportBatch(encode({ utilization: past, ...b }), 1, MODERN)).to.equal(undefined);
    expect(transcodeReportBatch(encode({ ...b, utilization: past }), 1, MODERN)).to.equal(undefined);
  });

  it('analytics transcode - reads every plain msgpack form a writer may choose, with the general path\'s row', () => {
    const b = randomBatches({ batches: 1, reportsPerBatch: 3, ts: 1_795_000_000_000 })[0]!;
    const cases: Array<[string, Uint8Array]> = [
      ['float32 numbers', new Packr({ useRecords: false, useFloat32: 1 }).pack(b)],
      ['unknown keys', encode({ ...b, extra: 1, more: { deep: [1, 'x', null, true, 2.5, { k: -1 }] } })],
      ['non-ASCII sender and zone', encode({ ...b, sender: 'agent-é', zone: 'zône-😀' })],
      ['64-bit integers and float64 integers', writeMsgpack(b, { ints: 'int64' })],
      ['every number a float64', writeMsgpack(b, { ints: 'float64' })],
      ['str32 strings', writeMsgpack(b, { str32: true })],
    ];
    for (const [what, bytes] of cases) {
      const fast = transcodeReportBatch(bytes, 1, MODERN);
      expect(fast, what).not.to.equal(undefined);
      expect(fast!.line, what).to.equal(slow(bytes, 1));
    }
  });

  it('analytics transcode - defers to the general path what it leaves to msgpackr', () => {
    const b = randomBatches({ batches: 1, reportsPerBatch: 3, ts: 1_795_000_000_000 })[0]!;
    const good = encode(b);
    // A repeated key: msgpackr keeps the last value.
    const dup = Buffer.concat([Buffer.from([(good[0] as number) + 1]), good.subarray(1), encode('sender'), encode('again')]);
    const cases: Array<[string, Uint8Array, boolean]> = [
      ['trailing bytes', Buffer.concat([good, Buffer.from([0])]), false],
      ['a repeated key', dup, true],
      ['a byte order mark before the sender', encode({ ...b, sender: '\ufeffagent' }), true],
      ['a sender that is not UTF-8', Buffer.from(Buffer.from(encode({ ...b, sender: 'agent-x' })).toString('latin1').replace('agent-x', 'agent\xff\xfe'), 'latin1'), true],
      ['an extension value under an unknown key', encode({ ...b, at: new Date(0) }), true],
    ];
    for (const [what, bytes, valid] of cases) {
      expect(transcodeReportBatch(bytes, 1, MODERN), what).to.equal(undefined);
      expect(slow(bytes, 1) !== undefined, `${what}: valid for the contract`).to.equal(valid);
    }
  });

  it('analytics transcode - accepts exactly what validateReportBatch accepts, for valid and broken batches in any plain encoding', function () {
    // Hundreds of batches up to 10001 reports: room for a loaded machine.
    this.timeout(30_000);
    const writer = fc.record({ ints: fc.constantFrom('min', 'int64', 'float64'), f32: fc.boolean(), str32: fc.boolean(), shuffle: fc.boolean() }) as fc.Arbitrary<WriteOptions>;
    const extras = fc.dictionary(fc.string({ maxLength: 12 }).filter((k) => !BATCH_KEYS.has(k)), fc.jsonValue({ maxDepth: 3 }), { maxKeys: 3 });
    const unicode = fc.string({ unit: 'binary', minLength: 1, maxLength: 130 }).filter((s) => !s.startsWith('\ufeff'));
    const message = fc.oneof(
      { weight: 3, arbitrary: validBatch },
      { weight: 1, arbitrary: fc.tuple(validBatch, unicode).map(([m, sender]) => ({ ...m, sender })) },
      { weight: 4, arbitrary: fc.tuple(validBatch, fc.constantFrom(...reportBatchMutations), fc.double({ min: 0, max: 1, maxExcluded: true, noNaN: true })).map(([m, mu, at]) => mu.apply(m, at)) },
    );
    let accepted = 0;
    let refused = 0;
    fc.assert(
      fc.property(message, extras, writer, (m, extra, w) => {
        const withExtra = typeof m === 'object' && m !== null && !Array.isArray(m) ? { ...(m as Record<string, unknown>), ...extra } : m;
        const bytes = writeMsgpack(withExtra, w);
        const d = tryDecode(bytes);
        expect(d.ok, 'the writer writes msgpack').to.equal(true);
        const v = d.ok ? validateReportBatch(d.value) : undefined;
        const fast = transcodeReportBatch(bytes, 5, MODERN);
        expect(fast !== undefined, v && !v.ok ? `${v.kind} ${v.detail}` : 'valid').to.equal(v?.ok === true);
        if (fast) {
          accepted++;
          expect(fast.line).to.equal(slow(bytes, 5));
          expect(fast.rows).to.equal((d as { value: ReportBatch }).value.reports.length);
        } else refused++;
      }),
      { numRuns: 400 },
    );
    expect(accepted, 'valid batches seen').to.be.greaterThan(50);
    expect(refused, 'broken batches seen').to.be.greaterThan(50);
  });

  it('analytics transcode - refuses every invalid batch the validator refuses', () => {
    const bad: Array<Partial<ReportBatch> & Record<string, unknown>> = [
      { v: 2 as 1 },
      { sender: '' },
      { modid: -1 },
      { cmdid: 1.5 },
      { ts: -1 },
      { zone: 'z'.repeat(65) },
      { hosts: [] },
      { hosts: [['10.0.0.300', 1]] },
      { hosts: [['10.0.0.1', 0]] },
      { reports: [] },
      { reports: [[5, 0, 1, 0]] },
      { reports: [[0, 2 ** 31, 1, 0]] },
      { reports: [[0, 0, -1, 0]] },
      { reports: [[0, 0, 1, 0.5]] },
      { reports: [[0, 0, 1]] as unknown as ReportBatch['reports'] },
      { utilization: [[0, 1.5]] },
      { utilization: [[1, 0.5]] },
      { utilization: [[0, -0.1]] },
      { utilization: [[0.5, 0.5]] },
      { utilization: [[0]] as unknown as ReportBatch['utilization'] },
    ];
    const base = reportBatch({ modid: 1, cmdid: 2, ts: 1_795_000_000_000, sender: 's', hosts: [['10.0.0.1', 80]], reports: [[0, 0, 1, 0]] });
    for (const m of bad) {
      const bytes = encode({ ...base, ...m });
      expect(slow(bytes, 1), JSON.stringify(m)).to.equal(undefined);
      expect(transcodeReportBatch(bytes, 1, MODERN), JSON.stringify(m)).to.equal(undefined);
    }
  });

  it('analytics transcode - on corrupted bytes it never accepts what the general path refuses, nor disagrees with it', () => {
    const rnd = prng(99);
    const sources = randomBatches({ batches: 20, reportsPerBatch: 8, ts: 1_795_000_000_000, seed: 8 }).map((b) => encode(b));
    let accepted = 0;
    for (let i = 0; i < 4000; i++) {
      const src = sources[i % sources.length]!;
      const bytes = Uint8Array.from(src);
      const flips = 1 + Math.floor(rnd() * 3);
      for (let k = 0; k < flips; k++) bytes[Math.floor(rnd() * bytes.length)] = Math.floor(rnd() * 256);
      const fast = transcodeReportBatch(bytes, 7, MODERN);
      if (fast === undefined) continue;
      accepted++;
      expect(fast.line, `mutation ${i}`).to.equal(slow(bytes, 7));
    }
    expect(accepted).to.be.greaterThan(0);
  });
});
