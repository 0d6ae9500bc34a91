import { expect } from 'chai';
import { pino } from 'pino';
import { RateLimitedLog } from '../../src/lib/ratelog.ts';

function memoryLogger() {
  const records: Array<Record<string, unknown>> = [];
  const log = pino({ level: 'info', base: null }, { write: (s: string) => records.push(JSON.parse(s) as Record<string, unknown>) });
  return { log, records };
}

describe('ratelog', () => {
  it('ratelog - one line per key per interval on the injected clock; muted calls count with their weight', () => {
    const { log, records } = memoryLogger();
    let now = 1_000;
    const r = new RateLimitedLog(log, 500, () => now);
    expect(r.warn('k', {}, 'first')).to.equal(true);
    expect(r.warn('k', {}, 'muted', 3)).to.equal(false);
    expect(r.take('k', 2)).to.equal(undefined);
    now = 1_499;
    expect(r.error('k', {}, 'still muted')).to.equal(false);
    now = 1_500;
    expect(r.take('k')).to.deep.equal({ suppressed: 6 });
    now = 2_000;
    expect(r.error('k', { a: 1 }, 'again')).to.equal(true);
    expect(records.map((x) => [x['level'], x['msg'], x['suppressed']])).to.deep.equal([
      [40, 'first', undefined],
      [50, 'again', undefined],
    ]);
  });
});
