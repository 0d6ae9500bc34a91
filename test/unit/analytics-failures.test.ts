import { expect } from 'chai';
import { pino } from 'pino';
import { RateLimitedLog, backoffDelay, classifyFailure, clickhouseCode } from '../../src/analytics/failures.ts';

function memoryLogger() {
  const records: Array<Record<string, unknown>> = [];
  const log = pino({ level: 'info', base: null }, { write: (s: string) => records.push(JSON.parse(s) as Record<string, unknown>) });
  return { log, records };
}

describe('analytics failures', () => {
  it('analytics failures - reads the code from 18.16 text and from modern errors', () => {
    expect(clickhouseCode(new Error('Code: 81, e.displayText() = DB::Exception: Database x doesn\'t exist'))).to.equal(81);
    expect(clickhouseCode(Object.assign(new Error('Unknown element'), { code: '691' }))).to.equal(691);
    expect(clickhouseCode(Object.assign(new Error('connect ECONNREFUSED'), { code: 'ECONNREFUSED' }))).to.equal(undefined);
  });

  it('analytics failures - network errors and overload are transient, missing tables re-migrate, the rest is about the data', () => {
    expect(classifyFailure(Object.assign(new Error('connect ECONNREFUSED'), { code: 'ECONNREFUSED' })).kind).to.equal('transient');
    expect(classifyFailure(new Error('Timeout error.')).kind).to.equal('transient');
    expect(classifyFailure(new Error('Code: 252. DB::Exception: Too many parts')).kind).to.equal('transient');
    expect(classifyFailure(new Error('Code: 60. DB::Exception: Table x.reports does not exist')).kind).to.equal('missing_schema');
    expect(classifyFailure(new Error('Code: 49, e.displayText() = DB::Exception: Unknown element \'zz\' for type Enum8')).kind).to.equal('data');
    expect(classifyFailure(Object.assign(new Error('violated'), { code: '469' }))).to.deep.include({ kind: 'data', code: 469 });
  });

  it('analytics failures - backoff doubles up to the cap, with the NATS client jitter (0.5–1.5x)', () => {
    const o = { initialMs: 100, maxMs: 1000 };
    const range = (attempt: number) => {
      const d = Array.from({ length: 200 }, () => backoffDelay(attempt, o));
      return [Math.min(...d), Math.max(...d)];
    };
    const within = (attempt: number, base: number) => {
      const [lo, hi] = range(attempt);
      expect(lo, `attempt ${attempt} low`).to.be.at.least(Math.floor(base * 0.5));
      expect(hi, `attempt ${attempt} high`).to.be.at.most(Math.ceil(base * 1.5));
      expect(hi! - lo!, `attempt ${attempt} jitter`).to.be.greaterThan(0);
    };
    within(0, 100);
    within(3, 800);
    within(4, 1000);
    within(10, 1000);
    expect(backoffDelay(0, { initialMs: 0, maxMs: 0 })).to.equal(0);
  });

  it('analytics failures - logs one line per key per interval and counts the rest', () => {
    const { log, records } = memoryLogger();
    let now = 0;
    const r = new RateLimitedLog(log, 10_000, () => now);
    for (let i = 0; i < 5; i++) r.warn('k', { i }, 'bad input');
    r.warn('other', {}, 'other');
    now = 10_000;
    r.warn('k', { i: 99 }, 'bad input');
    expect(records.map((x) => [x['msg'], x['i'], x['suppressed']])).to.deep.equal([
      ['bad input', 0, undefined],
      ['other', undefined, undefined],
      ['bad input', 99, 4],
    ]);
  });
});
