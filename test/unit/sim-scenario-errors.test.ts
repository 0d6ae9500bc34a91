import { expect } from 'chai';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseScenario } from '../../src/sim/scenario.ts';
import { pngCommand, runSimulate } from '../../src/cli/commands/simulate.ts';
import { svgSize } from '../../src/sim/svg.ts';
import { UsageError } from '../../src/lib/errors.ts';

const base = { name: 's', duration_s: 1, load: { kind: 'open', rate_per_s: 10 }, hosts: [{ latency: { dist: 'fixed', ms: 1 } }] };

function problem(v: unknown): string {
  const r = parseScenario(v);
  expect(r.ok, JSON.stringify(v)).to.equal(false);
  return r.ok ? '' : r.error;
}

describe('sim - a bad scenario names the field that is wrong', () => {
  it('sim - the field path of every problem, each field once, the wrong value shown', () => {
    // the file: the wrong field is named, not only the missing ones before it
    expect(problem({ hosts: [{ latency: 'fast' }] })).to.equal(
      'name: required, missing; load: required, missing; hosts.0.latency: must be an object with dist one of fixed, normal, lognormal, exponential, choice, got "fast"',
    );
    expect(problem({ ...base, hosts: [{ latency: 'fast' }] })).to.match(/^hosts\.0\.latency: must be an object with dist one of fixed, normal/);
    expect(problem({ ...base, hosts: [{ latency: { dist: 'weird', ms: 1 } }] })).to.equal('hosts.0.latency.dist: must be one of fixed, normal, lognormal, exponential, choice, got "weird"');
    expect(problem({ ...base, hosts: [{ latency: { dist: 'fixed', ms: -1 } }] })).to.equal('hosts.0.latency.ms: expected number to be greater or equal to 0, got -1');
    expect(problem({ ...base, hosts: [{ latency: { dist: 'fixed', ms: 1 }, changes: [{ at_s: 1, latency: { dist: 'normal', mean_ms: 1 } }] }] })).to.equal('hosts.0.changes.0.latency.sd_ms: required, missing');
    expect(problem({ ...base, load: { kind: 'open', rate_per_s: 'fast' } })).to.equal('load.rate_per_s: expected number, got "fast"');
    expect(problem({ ...base, load: { kind: 'open', rate_per_s: 1, arrivals: 'burst' } })).to.equal('load.arrivals: must be one of poisson, fixed, got "burst"');
    expect(problem({ ...base, load: { kind: 'shut' } })).to.equal('load.kind: must be one of open, closed, got "shut"');
    expect(problem({ ...base, hosts: [{ latency: { dist: 'fixed', ms: 1, jitter: 2 } }] })).to.equal('hosts.0.latency.jitter: unknown field');
    expect(problem(5)).to.equal('(root): expected object, got 5');
    const many = problem({ hosts: [{ latency: 'a' }, { latency: 'b' }, { latency: 'c' }] });
    expect(many).to.match(/^name: required, missing; load: required, missing; hosts\.0\.latency: .*; and 2 more$/);
  });

  it('sim - lars simulate puts the path in its usage error, after the file name', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'lars-sim-err-'));
    try {
      const file = join(dir, 'bad.json');
      writeFileSync(file, JSON.stringify({ hosts: [{ latency: 'fast' }] }));
      const err = await runSimulate({ file, out: () => undefined }).then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(err).to.be.instanceOf(UsageError);
      expect((err as Error).message).to.contain(`scenario ${file}: `).and.to.contain('hosts.0.latency: must be an object with dist');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('sim - the suggested Chromium window is as tall as the picture, every panel in it', () => {
    const four = svgSize(4);
    expect(pngCommand('out.svg', 4)).to.equal(`chromium --headless --no-sandbox --disable-gpu --screenshot=out.png --window-size=${four.width},${four.height} out.svg`);
    expect(svgSize(1).height).to.be.lessThan(svgSize(2).height);
    expect(four).to.deep.equal({ width: 1200, height: 2054 });
  });
});
