import { expect } from 'chai';
import { formatAge, formatDuration, formatNumber, renderTable } from '../../src/cli/table.ts';
import { formatRoute, isStale } from '../../src/cli/commands/route.ts';
import type { RegistryEntry, RouteState } from '../../schemas/messages.ts';

describe('cli table - one renderer for every table', () => {
  it('cli table - numbers are rounded for reading, integers stay whole', () => {
    expect(formatNumber(0.1 + 0.2)).to.equal('0.3');
    expect(formatNumber(Math.fround(0.3))).to.equal('0.3'); // a float32 figure: 0.30000001192092896
    expect(formatNumber(1 / 3)).to.equal('0.333');
    expect(formatNumber(0.012345)).to.equal('0.0123');
    expect(formatNumber(12.3456)).to.equal('12.35');
    expect(formatNumber(2.5)).to.equal('2.5');
    expect(formatNumber(120)).to.equal('120');
    expect(formatNumber(0.25)).to.equal('0.25');
    expect(formatNumber(1e-9)).to.equal('0');
    expect(formatNumber(-0.5)).to.equal('-0.5');
  });

  it('cli table - columns align: numbers right, text left, missing values as -', () => {
    const lines = renderTable(['host', 'calls', 'error_rate'], [
      { host: '10.0.0.1', calls: 5, error_rate: 0.33333333333333337 },
      { host: '10.0.0.22', calls: 1200, error_rate: null },
    ]);
    expect(lines).to.deep.equal([
      'host       calls  error_rate',
      '---------  -----  ----------',
      '10.0.0.1       5       0.333',
      '10.0.0.22   1200           -',
    ]);
    expect(renderTable(['a'], [])).to.deep.equal(['(no rows)']);
    expect(renderTable([{ key: 'a', title: 'A', align: 'right' }], [{ a: 'x' }], { indent: '  ' })).to.deep.equal(['  A', '  -', '  x']);
  });

  it('cli table - durations and ages read as a person says them', () => {
    expect(formatDuration(850)).to.equal('850 ms');
    expect(formatDuration(42_500)).to.equal('42 s');
    expect(formatDuration(5 * 60_000 + 10_000)).to.equal('5 min');
    expect(formatDuration(3 * 3_600_000 + 20 * 60_000)).to.equal('3 h 20 min');
    expect(formatDuration(2 * 86_400_000)).to.equal('2 d');
    expect(formatAge(1_000, 301_000)).to.equal('5 min ago');
    expect(formatAge(1_000, 1_500)).to.equal('just now');
    expect(formatAge(10_000, 1_000)).to.match(/future/);
  });

  it('cli table - a route shows when and by whom it was published, and its hosts as a table', () => {
    const now = 1_000_000_000;
    const s: RouteState = {
      v: 1, sender: 'node-x', modid: 20, cmdid: 1, version: 7, ts: now - 5 * 60_000, profile: 'default', panic: false, removed: false, probe_num: 0,
      hosts: [
        { ip: '10.0.0.1', port: 8000, weight: 100, state: 'healthy', reason: 'registered', since: now - 90_000, pick_weight: 100 },
        { ip: '10.0.0.2', port: 8000, weight: 50, state: 'overloaded', reason: 'error_rate', since: now - 2_000, pick_weight: 0 },
      ],
    };
    const lines = formatRoute(s, now);
    expect(lines[0]).to.equal('route 20.1  version 7  profile default  published 5 min ago by node-x');
    expect(lines[1]).to.match(/^ {2}host\s+state\s+weight\s+share\s+reason\s+in state for$/);
    expect(lines[3]).to.match(/^ {2}10\.0\.0\.1:8000\s+healthy\s+100\s+100\.0%\s+registered\s+1 min$/);
    expect(lines[4]).to.match(/^ {2}10\.0\.0\.2:8000\s+overloaded\s+50\s+0\.0%\s+error_rate\s+2 s$/);
    const entry = { v: 1, modid: 20, cmdid: 1, hosts: [], updated_by: 'cli', ts: s.ts + 60_000 } as RegistryEntry;
    expect(isStale(entry, s)).to.equal(true);
    expect(isStale({ ...entry, ts: s.ts + 1_000 }, s)).to.equal(false);
    expect(isStale(entry, undefined)).to.equal(false);
  });
});
