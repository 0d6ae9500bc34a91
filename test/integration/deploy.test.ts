import { expect } from 'chai';
import { readFileSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { lars } from '../helpers/cli.ts';

describe('deployment files', function () {
  this.timeout(120_000);
  const compose = readFileSync(new URL('../../docker-compose.yml', import.meta.url), 'utf8');

  it('deploy - docker-compose.yml is a valid compose file', function () {
    const bin = spawnSync('sh', ['-c', 'command -v docker-compose']).stdout.toString().trim();
    if (!bin) this.skip();
    const r = spawnSync(bin, ['-f', 'docker-compose.yml', 'config', '-q'], { cwd: new URL('../..', import.meta.url).pathname, encoding: 'utf8' });
    expect(r.status, r.stderr).to.equal(0);
  });

  it('deploy - every lars command in docker-compose.yml parses', async () => {
    const commands = [...compose.matchAll(/command: (\[.*\])/g)].map((m) => JSON.parse(m[1]!) as string[]).filter((c) => ['node', 'sink', 'route', 'stats', 'dev'].includes(c[0]!));
    expect(commands.length).to.be.at.least(4);
    for (const c of commands) {
      const r = await lars([...c, '--help']);
      expect(r.code, `${c.join(' ')}: ${r.stderr}`).to.equal(0);
    }
    // and the partitions the route nodes own cover 0..63 exactly once
    const own = commands.filter((c) => c[0] === 'node').map((c) => c[c.indexOf('--own') + 1]!);
    const { parsePartitions } = await import('../../src/cli/commands/node.ts');
    const all = own.flatMap((o) => parsePartitions(o, 64)).sort((a, b) => a - b);
    expect(all).to.deep.equal(Array.from({ length: 64 }, (_, i) => i));
  });
});
