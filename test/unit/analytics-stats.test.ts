import { expect } from 'chai';
import { STATS, formatTable, parseDuration, parseRouteArg, parseTime, startOfUtcDay } from '../../src/analytics/stats.ts';
import { statsCommand, sinkCommand } from '../../src/cli/commands/stats.ts';
import { defaultConfig } from '../../src/config.ts';
import { UsageError } from '../../src/errors.ts';
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
    const d = STATS.deploy.sql('lars', { fromMs: 0, atMs: Date.UTC(2026, 10, 26, 10, 0, 42), windowMs: 600_000, limit: 5 });
    const at = Date.UTC(2026, 10, 26, 10) / 1000;
    expect(d).to.contain(`minute < toDateTime(${at})`);
    expect(d).to.contain(`minute >= toDateTime(${at - 600})`);
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
