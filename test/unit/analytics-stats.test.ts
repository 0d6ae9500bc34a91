import { expect } from 'chai';
import { STATS, formatTable, parseDuration, parseRouteArg, parseTime, startOfUtcDay } from '../../src/analytics/stats.ts';
import { statsCommand, sinkCommand } from '../../src/cli/commands/stats.ts';
import { defaultConfig } from '../../src/lib/config.ts';
import { UsageError } from '../../src/lib/errors.ts';
import type { CommandContext } from '../../src/cli/command.ts';

function ctx(): CommandContext {
  return { config: defaultConfig(), out: () => undefined, stopSignal: new Promise(() => undefined) };
}

describe('analytics stats', () => {
  it('analytics stats - parses durations, routes and times', () => {
    expect(parseDuration('90s')).to.equal(90_000);
    expect(parseDuration('1h')).to.equal(3_600_000);
    expect(parseDuration('2d')).to.equal(172_800_000);
    expect(parseDuration('1 fortnight')).to.equal(undefined);
    expect(parseRouteArg('100.7')).to.deep.equal({ modid: 100, cmdid: 7 });
    expect(parseRouteArg('4294967296.1')).to.equal(undefined);
    expect(parseRouteArg('100')).to.equal(undefined);
    expect(parseTime('2026-11-26T10:00:00Z')).to.equal(Date.UTC(2026, 10, 26, 10));
    expect(parseTime('1795000000000')).to.equal(1_795_000_000_000);
    expect(startOfUtcDay(Date.UTC(2026, 10, 26, 10, 5))).to.equal(Date.UTC(2026, 10, 26));
  });

  it('analytics stats - windows come from the injected time, routes from the flag', () => {
    const sql = STATS.errors.sql('lars', { fromMs: 1_795_000_000_999, limit: 10, route: { modid: 100, cmdid: 7 } });
    expect(sql).to.contain('minute >= toDateTime(1795000000)');
    expect(sql).to.contain('AND modid = 100 AND cmdid = 7');
    expect(sql).to.contain('LIMIT 10');
  });

  it('analytics stats - deploy splits at --at to the millisecond: whole minutes from the rollup, the part minutes at the ends from raw reports', () => {
    const atMs = Date.UTC(2026, 10, 26, 10, 0, 42, 250);
    const d = STATS.deploy.sql('lars', { fromMs: 0, atMs, windowMs: 600_000, limit: 5 });
    const min = (m: number, s = 0): number => Date.UTC(2026, 10, 26, 10, m, s) / 1000;
    // before [09:50:42.250, 10:00:42.250): whole minutes 09:51..09:59, after [10:00:42.250, 10:10:42.250): 10:01..10:09
    expect(d).to.contain(`(minute >= toDateTime(${min(-9)}) AND minute < toDateTime(${min(0)}))`);
    expect(d).to.contain(`(minute >= toDateTime(${min(1)}) AND minute < toDateTime(${min(10)}))`);
    for (const [a, b] of [
      [atMs - 600_000, Date.UTC(2026, 10, 26, 9, 51)],
      [Date.UTC(2026, 10, 26, 10, 0), atMs],
      [atMs, Date.UTC(2026, 10, 26, 10, 1)],
      [Date.UTC(2026, 10, 26, 10, 10), atMs + 600_000],
    ]) {
      expect(d).to.contain(`ts_ms >= ${a} AND ts_ms < ${b})`);
    }
    expect(d).to.contain(`if(ts_ms < ${atMs}, 'before', 'after')`);
    // A window shorter than a minute reads raw reports only.
    const short = STATS.deploy.sql('lars', { fromMs: 0, atMs, windowMs: 20_000, limit: 5 });
    expect(short).to.not.contain('reports_1m');
    expect(short).to.contain(`ts_ms >= ${atMs - 20_000} AND ts_ms < ${atMs})`);
    // On whole minutes, the rollup alone.
    const aligned = STATS.deploy.sql('lars', { fromMs: 0, atMs: Date.UTC(2026, 10, 26, 10), windowMs: 600_000, limit: 5 });
    expect(aligned).to.not.contain('ts_ms');
  });

  it('analytics stats - table output aligns numbers right', () => {
    const lines = formatTable(['host', 'calls'], [{ host: '10.0.0.1', calls: 5 }, { host: '10.0.0.22', calls: 1234 }]);
    expect(lines).to.deep.equal(['host       calls', '---------  -----', '10.0.0.1       5', '10.0.0.22   1234']);
    expect(formatTable(['a'], [])).to.deep.equal(['(no rows)']);
  });

  it('analytics stats - the commands refuse bad arguments with a usage error', async () => {
    for (const [args, flags] of [
      [[], {}],
      [['nonsense'], {}],
      [['errors'], { route: '7' }],
      [['errors'], { since: 'yesterday' }],
      [['deploy'], { at: 'not a time' }],
      [['deploy'], { window: '0m' }],
      [['errors'], { limit: '0' }],
    ] as Array<[string[], Record<string, string>]>) {
      let err: unknown;
      await statsCommand.run(args, flags, ctx()).catch((e: unknown) => (err = e));
      expect(err, JSON.stringify([args, flags])).to.be.instanceOf(UsageError);
    }
    let err: unknown;
    await sinkCommand.run([], { only: 'everything' }, ctx()).catch((e: unknown) => (err = e));
    expect(err).to.be.instanceOf(UsageError);
  });
});
