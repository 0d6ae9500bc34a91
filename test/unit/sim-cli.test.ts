import { expect } from 'chai';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runSimulate } from '../../src/cli/commands/simulate.ts';
import { simulate } from '../../src/sim/engine.ts';
import { parseScenario } from '../../src/sim/scenario.ts';
import { renderSvg } from '../../src/sim/svg.ts';
import { UsageError } from '../../src/lib/errors.ts';

const small = {
  name: 'small-flap',
  duration_s: 12,
  load: { kind: 'open', rate_per_s: 200 },
  timeout_ms: 500,
  agents: 2,
  hosts: [
    { count: 3, latency: { dist: 'normal', mean_ms: 20, sd_ms: 2 } },
    { name: 'flap', latency: { dist: 'fixed', ms: 20 }, changes: [{ at_s: 3, for_s: 3, every_s: 6, errors: { rate: 1, latency_ms: 1 }, label: 'flap fails' }] },
  ],
};

describe('sim - lars simulate', () => {
  let dir: string;
  let file: string;
  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'lars-sim-'));
    file = join(dir, 'small.json');
    writeFileSync(file, JSON.stringify(small));
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  it('sim - prints one summary row per strategy and the share per host', async () => {
    const lines: string[] = [];
    const code = await runSimulate({ file, strategy: 'swrr,p2c', out: (l) => lines.push(l) });
    expect(code).to.equal(0);
    expect(lines[0]).to.equal('small-flap (seed 1, timeout 500 ms)');
    expect(lines[1]).to.match(/^strategy\s+calls\s+success_pct\s+failed\s+timeouts\s+errors\s+no_host\s+p50_ms\s+p99_ms\s+p999_ms\s+state_changes$/);
    expect(lines.filter((l) => /^(swrr|p2c)\s+\d+/.test(l))).to.have.length(2);
    expect(lines.some((l) => /^flap\s+[\d.]+, \d+ changes?\s+[\d.]+(, \d+ changes?)?$/.test(l))).to.equal(true);
    expect(lines).to.include('state changes with swrr');
    expect(lines.some((l) => /^\s+\d+\.\d{3} s {2}flap {2}healthy -> overloaded {2}\(\w+\)$/.test(l))).to.equal(true);
  });

  it('sim - --json prints the figures of each strategy, the same as the engine gives for the seed', async () => {
    const lines: string[] = [];
    await runSimulate({ file, strategy: 'p2c', seed: '5', json: true, out: (l) => lines.push(l) });
    expect(lines).to.have.length(1);
    const j = JSON.parse(lines[0]!) as { seed: number; results: Array<{ strategy: string; calls: number; failed: number }> };
    const r = parseScenario(small);
    if (!r.ok) throw new Error(r.error);
    const direct = simulate(r.scenario, { strategy: 'p2c', seed: 5 });
    expect(j.seed).to.equal(5);
    expect(j.results.map((x) => [x.strategy, x.calls, x.failed])).to.deep.equal([['p2c', direct.calls, direct.failed]]);
  });

  it('sim - --param overrides a route parameter over the scenario: the run changes with it, and the header and --json name it', async () => {
    const lines: string[] = [];
    await runSimulate({ file: 'slow-host', strategy: 'p2c_ewma', param: ['probe_failure_multiplier=1', 'base_ejection_time=5'], out: (l) => lines.push(l) });
    expect(lines[0]).to.equal('slow-host (seed 1, timeout 1000 ms, probe_failure_multiplier=1, base_ejection_time=5)');
    const json: string[] = [];
    await runSimulate({ file: 'slow-host', strategy: 'p2c_ewma', param: 'probe_failure_multiplier=1', json: true, out: (l) => json.push(l) });
    const j = JSON.parse(json[0]!) as { params: Record<string, number>; results: Array<{ failed: number; stateChanges: unknown[] }> };
    expect(j.params).to.deep.equal({ probe_failure_multiplier: 1 });
    const plain: string[] = [];
    await runSimulate({ file: 'slow-host', strategy: 'p2c_ewma', json: true, out: (l) => plain.push(l) });
    const p = JSON.parse(plain[0]!) as { params: Record<string, number>; results: Array<{ failed: number; stateChanges: unknown[] }> };
    expect(p.params).to.deep.equal({});
    // one probe round fewer with the default multiplier: a second ejection of 30 s outlasts the slow period
    expect(j.results[0]!.failed - p.results[0]!.failed).to.equal(1);
    expect(j.results[0]!.stateChanges.length - p.results[0]!.stateChanges.length).to.equal(2);
  });

  it('sim - --param names an unknown parameter, or one out of its bounds: a usage error', async () => {
    for (const [param, msg] of [
      ['nope=1', /unknown parameter nope/],
      ['probe_failure_multiplier=0', /probe_failure_multiplier must be in 1\.\.1000, got 0/],
      ['base_ejection_time', /--param takes name=number/],
    ] as const) {
      const err = await runSimulate({ file, param: param, out: () => {} }).then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(err, param).to.be.instanceOf(UsageError);
      expect((err as Error).message).to.match(msg);
    }
  });

  it('sim - --svg writes the picture: a panel per strategy with the change marks', async () => {
    const svg = join(dir, 'out.svg');
    await runSimulate({ file, strategy: 'swrr,lars', svg, out: () => {} });
    const text = readFileSync(svg, 'utf8');
    expect(text.startsWith('<svg xmlns="http://www.w3.org/2000/svg"')).to.equal(true);
    expect(text.trimEnd().endsWith('</svg>')).to.equal(true);
    expect(text.match(/font-size="14" font-weight="bold">(swrr|lars)</g)).to.have.length(2);
    // in each of the two panels: flap fails at 3 s and 9 s and is back at 6 s; the end of the run (12 s) is not marked
    expect(text.match(/>flap fails</g)).to.have.length(4);
    expect(text.match(/>flap back</g)).to.have.length(2);
    expect(text).to.contain('>traffic share<');
    expect(text).to.contain('>timeout<');
  });

  it('sim - a scenario whose callers make calls: the call figures in a table, with --without-policy beside the same run without the policy, and in the picture', async () => {
    const storm = join(dir, 'storm.json');
    writeFileSync(
      storm,
      JSON.stringify({
        name: 'small-storm',
        duration_s: 8,
        load: { kind: 'open', rate_per_s: 200 },
        agents: 2,
        hosts: [{ count: 4, latency: { dist: 'fixed', ms: 10 }, changes: [{ at_s: 2, for_s: 4, errors: { rate: 1, latency_ms: 1 }, label: 'all fail' }] }],
        call: { max_attempts: 3 },
      }),
    );
    const svg = join(dir, 'storm.svg');
    const lines: string[] = [];
    await runSimulate({ file: storm, strategy: 'p2c_ewma', withoutPolicy: true, svg, out: (l) => lines.push(l) });
    const head = lines.findIndex((l) => /^strategy\s+policy\s+requests\s+calls\s+attempts_per_call\s+retries\s+hedges\s+cancelled\s+stops\s+req_p99_ms\s+req_p999_ms\s+max_shed\s+wasted_work_pct$/.test(l));
    expect(head, lines.join('\n')).to.be.greaterThan(0);
    const on = lines[head + 2]!.split(/\s{2,}/);
    const off = lines[head + 3]!.split(/\s{2,}/);
    expect([on[0], on[1], off[0], off[1]]).to.deep.equal(['p2c_ewma', 'on', 'p2c_ewma', 'off']);
    // with the policy the storm is held to about one attempt a call and the route sheds; without it, up to three
    expect(Number(on[4])).to.be.lessThan(1.5);
    expect(Number(off[4])).to.be.greaterThan(1.5);
    expect(on[8]).to.match(/shed \d+/);
    expect(off[8]).to.not.match(/shed|budget/);
    const text = readFileSync(svg, 'utf8');
    expect(text.match(/font-size="14" font-weight="bold">p2c_ewma(, without the call policy)?</g)).to.have.length(2);
    expect(text).to.contain('>p2c_ewma, without the call policy<');
    expect(text.match(/>3 attempts\/call</g)).to.have.length(2);
    expect(text).to.match(/>calls: [\d.]+ attempts each \(retries \d+, hedges 0\) · stopped: [^<]*shed \d+/);
    // single picks: no call table, and --without-policy is a usage error
    const plain: string[] = [];
    await runSimulate({ file, strategy: 'p2c', out: (l) => plain.push(l) });
    expect(plain.some((l) => l.startsWith('calls under the call policy'))).to.equal(false);
    const err = await runSimulate({ file, withoutPolicy: true, out: () => {} }).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).to.be.instanceOf(UsageError);
  });

  it('sim - a scenario written in YAML (.yaml or .yml) runs as its JSON twin does', async () => {
    const yaml = [
      '# the small flapping scenario, in YAML',
      'name: small-flap',
      'duration_s: 12',
      'load: { kind: open, rate_per_s: 200 }',
      'timeout_ms: 500',
      'agents: 2',
      'hosts:',
      '  - count: 3',
      '    latency: { dist: normal, mean_ms: 20, sd_ms: 2 }',
      '  - name: flap',
      '    latency: { dist: fixed, ms: 20 }',
      '    changes:',
      '      - { at_s: 3, for_s: 3, every_s: 6, errors: { rate: 1, latency_ms: 1 }, label: flap fails }',
      '',
    ].join('\n');
    const run = async (f: string): Promise<unknown> => {
      const lines: string[] = [];
      await runSimulate({ file: f, strategy: 'swrr,p2c_ewma', json: true, out: (l) => lines.push(l) });
      return JSON.parse(lines[0]!) as unknown;
    };
    const fromJson = await run(file);
    for (const name of ['small.yaml', 'small.yml']) {
      writeFileSync(join(dir, name), yaml);
      expect(await run(join(dir, name)), name).to.deep.equal(fromJson);
    }
  });

  it('sim - a scenario file that is not YAML, or not the format, says where', async () => {
    const broken = join(dir, 'broken.yaml');
    writeFileSync(broken, 'name: x\nhosts: [1, 2\nagents: 2\n');
    const dup = join(dir, 'dup.yaml');
    writeFileSync(dup, 'name: x\nname: y\n');
    const wrong = join(dir, 'wrong.yml');
    writeFileSync(wrong, 'name: x\nduration_s: 10\nload: { kind: open, rate_per_s: fast }\nhosts: [{ latency: { dist: fixed, ms: 1 } }]\n');
    for (const [f, msg] of [
      [broken, /^scenario .*broken\.yaml: not YAML: .*line 3, column 1/],
      [dup, /^scenario .*dup\.yaml: not YAML: Map keys must be unique.*line 2/],
      [wrong, /^scenario .*wrong\.yml: load/],
    ] as const) {
      const err = await runSimulate({ file: f, out: () => {} }).then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(err, f).to.be.instanceOf(UsageError);
      expect((err as Error).message).to.match(msg);
    }
  });

  it('sim - a missing file, a bad scenario, an unknown strategy or a bad seed is a usage error', async () => {
    const bad = join(dir, 'bad.json');
    writeFileSync(bad, JSON.stringify({ ...small, load: { kind: 'open' } }));
    const cases: Array<[Parameters<typeof runSimulate>[0], RegExp]> = [
      [{ file: join(dir, 'nope.json'), out: () => {} }, /cannot read scenario .*nope\.json: there is no such file; the shipped ones: .*slow-host/],
      [{ file: bad, out: () => {} }, /scenario .*bad\.json: load/],
      [{ file, strategy: 'swrr,rr', out: () => {} }, /unknown strategy "rr"/],
      [{ file, seed: '-1', out: () => {} }, /--seed must be an integer/],
    ];
    for (const [args, msg] of cases) {
      const err = await runSimulate(args).then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(err, String(msg)).to.be.instanceOf(UsageError);
      expect((err as Error).message).to.match(msg);
    }
  });

  it('sim - a shipped scenario is found by its name or its path in the package, from any directory', async () => {
    for (const file of ['slow-host', 'scenarios/slow-host.json']) {
      const lines: string[] = [];
      const cwd = process.cwd();
      process.chdir(dir);
      try {
        expect(await runSimulate({ file, strategy: 'swrr', out: (l) => lines.push(l) })).to.equal(0);
      } finally {
        process.chdir(cwd);
      }
      expect(lines[0], file).to.match(/^slow-host \(seed \d+, timeout \d+ ms\)$/);
    }
  });

  it('sim - the picture of a run is the same for the same seed', () => {
    const r = parseScenario(small);
    if (!r.ok) throw new Error(r.error);
    const a = renderSvg(r.scenario, [simulate(r.scenario, { strategy: 'swrr', seed: 2 })]);
    const b = renderSvg(r.scenario, [simulate(r.scenario, { strategy: 'swrr', seed: 2 })]);
    expect(a).to.equal(b);
  });
});
