/**
 * The shipped NATS server configs, checked by the installed nats-server
 * (`nats-server -t`, which parses a config with its includes and exits):
 * nats-server.conf must run on Debian's 2.9.10, which docs/cluster.md
 * deploys it on; nats-server-2.10.conf (what docker-compose.yml runs, on
 * 2.10+ images) is that file plus `sync_interval: always`, a field 2.9
 * refuses and 2.10 introduced.
 */
import { expect } from 'chai';
import { copyFileSync, mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { findNatsServer, natsServerVersion, supportsSyncInterval } from '../../src/nats/natsd.ts';

const deployDir = new URL('../../deploy/nats/', import.meta.url);
const ENV = { NATS_SERVER_NAME: 'nats-1', LARS_AGENT_PASSWORD: 'pa', LARS_NODE_PASSWORD: 'pn', LARS_SINK_PASSWORD: 'ps', LARS_XDS_PASSWORD: 'px', LARS_ADMIN_PASSWORD: 'pd' };

/** The body of the top-level `jetstream { ... }` block of a config, its lines trimmed, comments and blank lines left out. */
function jetstreamBlock(text: string): string[] {
  const m = /^jetstream\s*\{\n([\s\S]*?)^\}/m.exec(text);
  if (!m) return [];
  return m[1]!
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l.length > 0 && !l.startsWith('#'));
}

describe('deploy - NATS server configs on the installed nats-server', function () {
  this.timeout(30_000);
  let dir: string;
  let bin: string;

  before(function () {
    const found = findNatsServer();
    if (!found) this.skip();
    bin = found!;
    // the files as shipped, side by side (includes are relative to the including file)
    dir = mkdtempSync(join(tmpdir(), 'lars-deploy-nats-'));
    for (const f of readdirSync(deployDir)) if (f.endsWith('.conf')) copyFileSync(new URL(f, deployDir), join(dir, f));
  });
  after(() => {
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  const check = (file: string) => spawnSync(bin, ['-t', '-c', join(dir, file)], { encoding: 'utf8', env: { ...process.env, ...ENV } });

  it('deploy - nats-server.conf (with permissions.conf) is valid as shipped', () => {
    const r = check('nats-server.conf');
    expect(r.status, `${r.stdout}${r.stderr}`).to.equal(0);
    expect(`${r.stdout}${r.stderr}`).to.match(/configuration file .*nats-server\.conf is valid/);
  });

  it('deploy - nats-server-2.10.conf is nats-server.conf with sync_interval: always, the one field a 2.9 server refuses', () => {
    const base = readFileSync(new URL('nats-server.conf', deployDir), 'utf8');
    const sync = readFileSync(new URL('nats-server-2.10.conf', deployDir), 'utf8');
    expect(sync).to.match(/^include nats-server\.conf$/m);
    // its jetstream block replaces the included one whole: the same settings, and the sync
    expect(jetstreamBlock(sync)).to.deep.equal([...jetstreamBlock(base), 'sync_interval: always']);
    const r = check('nats-server-2.10.conf');
    const out = `${r.stdout}${r.stderr}`;
    if (supportsSyncInterval(natsServerVersion(bin))) {
      expect(r.status, out).to.equal(0);
    } else {
      expect(r.status, out).to.equal(1);
      const errors = out.split('\n').filter((l) => l.trim().length > 0);
      expect(errors, out).to.have.length(1);
      expect(errors[0]).to.match(/nats-server-2\.10\.conf:\d+:\d+: unknown field "sync_interval"/);
    }
  });

  it('deploy - docker-compose.yml runs its NATS servers on a 2.10+ image with nats-server-2.10.conf', () => {
    const compose = readFileSync(new URL('../../docker-compose.yml', import.meta.url), 'utf8');
    const nats = compose.slice(compose.indexOf('x-nats: &nats'), compose.indexOf('\n\n', compose.indexOf('x-nats: &nats')));
    const image = /image: nats:(\d+)\.(\d+)/.exec(nats);
    expect(image, nats).to.not.equal(null);
    expect(supportsSyncInterval([Number(image![1]), Number(image![2]), 0]), image![0]).to.equal(true);
    expect(nats).to.include('command: ["-c", "/etc/nats/nats-server-2.10.conf"]');
    // the config directory is mounted where the command looks
    expect(compose).to.include('./deploy/nats:/etc/nats:ro');
  });
});
