import { expect } from 'chai';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { pino } from 'pino';
import { PartitionLog, RateLimitedLog, errField, partitionRanges } from '../../src/lib/ratelog.ts';

function memoryLogger(level = 'info') {
  const records: Array<Record<string, unknown>> = [];
  const log = pino({ level, base: null }, { write: (s: string) => records.push(JSON.parse(s) as Record<string, unknown>) });
  return { log, records };
}

function sourceFiles(dir: string): string[] {
  return readdirSync(dir).flatMap((n) => {
    const p = join(dir, n);
    return statSync(p).isDirectory() ? sourceFiles(p) : p.endsWith('.ts') ? [p] : [];
  });
}

describe('log lines - one line per event of interest', () => {
  it('log lines - partition ranges are sorted, each number once, runs joined', () => {
    expect(partitionRanges([])).to.equal('');
    expect(partitionRanges([5])).to.equal('5');
    expect(partitionRanges([3, 0, 1, 2, 7, 9, 10, 9])).to.equal('0-3,7,9-10');
    expect(partitionRanges(Array.from({ length: 64 }, (_, i) => 63 - i))).to.equal('0-63');
  });

  it('log lines - a burst of partition events is one summary line at its level, each event a debug line', () => {
    const info = memoryLogger('info');
    const l = new PartitionLog(info.log, { level: 'info', msg: 'partitions taken', eventMsg: 'partition lease taken', groupBy: 'how' });
    for (let p = 0; p < 64; p++) l.add(p, { how: p < 60 ? 'create' : 'takeover', revision: p + 1 });
    expect(info.records, 'nothing before the burst ends').to.deep.equal([]);
    l.flush();
    l.flush();
    expect(info.records).to.have.length(1);
    expect(info.records[0]).to.include({ level: 30, msg: 'partitions taken: 64 (0-63)', partitions: '0-63', count: 64 });
    expect(info.records[0]!['how']).to.deep.equal({ create: 60, takeover: 4 });

    const debug = memoryLogger('debug');
    const lost = new PartitionLog(debug.log, { level: 'warn', msg: 'partitions lost', eventMsg: 'partition lost', groupBy: 'why' });
    for (const p of [9, 4, 5]) lost.add(p, { why: 'lease taken by node-b' });
    lost.flush();
    expect(debug.records.map((r) => [r['level'], r['msg'], r['partition']])).to.deep.equal([
      [20, 'partition lost', 9],
      [20, 'partition lost', 4],
      [20, 'partition lost', 5],
      [40, 'partitions lost: 3 (4-5,9): lease taken by node-b', undefined],
    ]);
  });

  it('log lines - a burst ends by itself once its window has passed', async () => {
    const { log, records } = memoryLogger();
    const l = new PartitionLog(log, { level: 'warn', msg: 'partitions lost', eventMsg: 'partition lost', windowMs: 5 });
    l.add(1);
    l.add(2);
    const deadline = Date.now() + 5000;
    while (records.length === 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 5));
    expect(records.map((r) => r['msg'])).to.deep.equal(['partitions lost: 2 (1-2)']);
  });

  it('log lines - a routine retry warning carries the error as one line; the stack only at level debug', () => {
    const err = new Error('TIMEOUT');
    err.name = 'TimeoutError';
    const info = memoryLogger('info');
    new RateLimitedLog(info.log).warn('fetch', { err, got: 3 }, 'fetch from the stream failed; retrying');
    expect(info.records[0]).to.include({ err: 'TimeoutError: TIMEOUT', got: 3 });
    expect(JSON.stringify(info.records[0])).not.to.contain('at ');
    const debug = memoryLogger('debug');
    new RateLimitedLog(debug.log).warn('fetch', { err }, 'fetch from the stream failed; retrying');
    expect((debug.records[0]!['err'] as { stack: string }).stack).to.contain('TIMEOUT').and.to.contain('\n    at ');
    // errors (not retries) keep their stack
    const e = memoryLogger('info');
    new RateLimitedLog(e.log).error('x', { err }, 'listener threw');
    expect((e.records[0]!['err'] as { stack: string }).stack).to.contain('\n    at ');
    expect(errField(info.log, 'plain text')).to.equal('plain text');
  });

  it('log lines - no log call names a field `name` (pretty logs show it where the logger name goes)', () => {
    const root = join(import.meta.dirname, '..', '..', 'src');
    const offenders: string[] = [];
    for (const f of sourceFiles(root)) {
      const text = readFileSync(f, 'utf8');
      for (const m of text.matchAll(/\blog\w*\.(?:trace|debug|info|warn|error|fatal)\(\{([^{}]*)\}/g)) {
        if (/(^|,)\s*name\s*(:|,|$)/.test(m[1]!)) offenders.push(`${f}: ${m[0]}`);
      }
    }
    expect(offenders).to.deep.equal([]);
  });
});
