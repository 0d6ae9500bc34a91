import { expect } from 'chai';
import { validateReportBatch } from '../../schemas/messages.ts';
import { ReportBatcher } from '../../src/agent/report-batcher.ts';
import { names } from '../../schemas/subjects.ts';
import type { ReportBatch } from '../../schemas/messages.ts';

const batch = (extra: Record<string, unknown>) => ({ v: 1, sender: 's', modid: 1, cmdid: 1, ts: 1_700_000_000_000, hosts: [['10.0.0.1', 80]], reports: [[0, 0, 1, 0]], ...extra });

describe('report side', () => {
  it('report side - a batch may say it was written by the serving host; absent or client is the callers; nothing else', () => {
    expect(validateReportBatch(batch({})).ok).to.equal(true);
    expect(validateReportBatch(batch({ side: 'server' })).ok).to.equal(true);
    expect(validateReportBatch(batch({ side: 'client' })).ok).to.equal(true);
    expect(validateReportBatch(batch({ side: 'proxy' })).ok).to.equal(false);
    expect(validateReportBatch(batch({ side: 1 })).ok).to.equal(false);
  });

  it("report side - a server-side batcher marks every batch 'server'; a client one marks none", () => {
    for (const side of ['server', undefined] as const) {
      const sent: ReportBatch[] = [];
      const b = new ReportBatcher({ names: names('t'), partitions: 8, sender: 'host-1', side, maxReports: 2, clock: () => 0, sink: (_subject, m) => void sent.push(m) });
      b.add(1, 1, { ip: '10.0.0.1', port: 80 }, 0, 1);
      b.add(1, 1, { ip: '10.0.0.1', port: 80 }, 14, 1);
      expect(sent, String(side)).to.have.length(1);
      expect(sent[0]!.side).to.equal(side);
      expect(validateReportBatch(sent[0]).ok).to.equal(true);
    }
  });
});
