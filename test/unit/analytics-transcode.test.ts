import { expect } from 'chai';
import { Packr } from 'msgpackr';
import { featuresFor, parseVersion, FEATURES_18_16 } from '../../schemas/clickhouse/features.ts';
import { validateReportBatch, type ReportBatch } from '../../schemas/messages.ts';
import { encode, tryDecode } from '../../src/codec.ts';
import { prng, randomBatches, reportBatch } from '../../src/analytics/fixtures.ts';
import { ingestLine } from '../../src/analytics/rows.ts';
import { transcodeReportBatch } from '../../src/analytics/transcode.ts';

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

  it('analytics transcode - defers what it does not fully understand to the general path', () => {
    const b = randomBatches({ batches: 1, reportsPerBatch: 3, ts: 1_795_000_000_000 })[0]!;
    const cases: Array<[string, Uint8Array]> = [
      ['float32 numbers', new Packr({ useRecords: false, useFloat32: 1 }).pack(b)],
      ['an unknown key', encode({ ...b, extra: 1 })],
      ['non-ASCII sender', encode({ ...b, sender: 'agent-é' })],
      ['trailing bytes', Buffer.concat([encode(b), Buffer.from([0])])],
    ];
    for (const [what, bytes] of cases) expect(transcodeReportBatch(bytes, 1, MODERN), what).to.equal(undefined);
    // Valid for the contract all the same: the general path stores them.
    expect(slow(cases[2]![1], 1)).to.be.a('string');
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
