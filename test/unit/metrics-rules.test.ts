import { expect } from 'chai';
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';

const DIR = join(import.meta.dirname, '../../deploy/prometheus');

function findPromtool(): string | undefined {
  for (const c of [process.env['PROMTOOL'], '/usr/bin/promtool', '/usr/local/bin/promtool']) if (c && existsSync(c)) return c;
  const r = spawnSync('sh', ['-c', 'command -v promtool'], { encoding: 'utf8' });
  return r.status === 0 ? r.stdout.trim() : undefined;
}

function promtool(bin: string, ...args: string[]): { status: number | null; out: string } {
  const r = spawnSync(bin, args, { cwd: DIR, encoding: 'utf8', timeout: 60_000 });
  return { status: r.status, out: `${r.stdout}${r.stderr}` };
}

describe('metrics - Prometheus alert rules (promtool)', function () {
  this.timeout(60_000);
  const bin = findPromtool();
  before(function () {
    if (!bin) {
      console.warn('    promtool not found (Debian package prometheus; .ci/run installs it): alert rule checks skipped');
      this.skip();
    }
  });

  it('metrics - promtool check rules accepts deploy/prometheus/rules.yml', () => {
    const r = promtool(bin!, 'check', 'rules', 'rules.yml');
    expect(r.status, r.out).to.equal(0);
    expect(r.out).to.match(/SUCCESS: 8 rules found/);
  });

  it('metrics - promtool test rules passes deploy/prometheus/rules.test.yml, and every alert has a test', () => {
    const r = promtool(bin!, 'test', 'rules', 'rules.test.yml');
    expect(r.status, r.out).to.equal(0);
    const alerts = [...readFileSync(join(DIR, 'rules.yml'), 'utf8').matchAll(/- alert: (\w+)/g)].map((m) => m[1]);
    const tests = readFileSync(join(DIR, 'rules.test.yml'), 'utf8');
    for (const a of alerts) expect(tests, `a test of ${a}`).to.include(`alertname: ${a}`);
  });

  it('metrics - promtool check config accepts deploy/prometheus/prometheus.yml with its rules', () => {
    const r = promtool(bin!, 'check', 'config', 'prometheus.yml');
    expect(r.status, r.out).to.equal(0);
    expect(r.out).to.match(/SUCCESS: 1 rule files found/);
  });
});
