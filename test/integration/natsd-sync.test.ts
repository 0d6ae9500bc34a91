/**
 * src/nats/natsd.ts StoreSync on the installed nats-server: `always` makes every
 * file of the JetStream store synchronous (on 2.9, which has no
 * sync_interval, by the store directory's attribute, inherited by the files
 * the server creates), `interval` leaves the store as the server makes it.
 */
import { expect } from 'chai';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { jetstream, jetstreamManager } from '@nats-io/jetstream';
import { StoreSync, findNatsServer, natsServerVersion, startNatsServer, supportsSyncInterval, type NatsServer } from '../../src/nats/natsd.ts';
import { connectNats } from '../../src/nats/connect.ts';

/** Files (not directories) under `dir` with their lsattr flags. */
function fileAttributes(dir: string): Array<{ path: string; flags: string }> {
  const r = spawnSync('lsattr', ['-R', dir], { encoding: 'utf8' });
  return r.stdout
    .split('\n')
    .map((l) => /^(\S+)\s+(\/.+)$/.exec(l.trim()))
    .filter((m): m is RegExpExecArray => m !== null)
    .map((m) => ({ flags: m[1]!, path: m[2]! }))
    .filter((f) => /\.(blk|idx|dat|inf|sum)$/.test(f.path));
}

describe('natsd - store sync on the installed nats-server', function () {
  this.timeout(60_000);
  const servers: NatsServer[] = [];
  const dirs: string[] = [];

  before(function () {
    const bin = findNatsServer();
    // the attribute path is what 2.9 needs; lsattr tells whether it holds
    if (!bin || supportsSyncInterval(natsServerVersion(bin)) || spawnSync('sh', ['-c', 'command -v chattr && command -v lsattr']).status !== 0) this.skip();
  });
  after(async () => {
    for (const s of servers) await s.stop();
    for (const d of dirs) rmSync(d, { recursive: true, force: true });
  });

  async function storeWith(sync: StoreSync): Promise<{ server: NatsServer; files: Array<{ path: string; flags: string }> }> {
    const storeDir = mkdtempSync(join(tmpdir(), 'lars-natsd-sync-'));
    dirs.push(storeDir);
    const server = await startNatsServer({ storeDir, sync });
    servers.push(server);
    const nc = await connectNats({ url: server.url, name: 'natsd-sync' });
    try {
      const jsm = await jetstreamManager(nc);
      await jsm.streams.add({ name: 'SYNCTEST', subjects: ['synctest.>'] });
      const js = jetstream(nc);
      for (let i = 0; i < 10; i++) await js.publish(`synctest.${i}`, new Uint8Array([i]));
    } finally {
      await nc.close();
    }
    return { server, files: fileAttributes(storeDir) };
  }

  it('natsd - always: the server starts with the store synchronous, and every stream file it writes is', async () => {
    const { server, files } = await storeWith(StoreSync.always);
    expect(server.sync).to.deep.equal({ sync: StoreSync.always, how: 'chattr' });
    expect(files.some((f) => f.path.endsWith('.blk')), files.map((f) => f.path).join(', ')).to.equal(true);
    for (const f of files) expect(f.flags, f.path).to.include('S');
  });

  it('natsd - interval (the default on 2.9): the store is left as the server makes it', async () => {
    const { server, files } = await storeWith(StoreSync.interval);
    expect(server.sync).to.deep.equal({ sync: StoreSync.interval, how: 'none' });
    expect(files.length).to.be.greaterThan(0);
    for (const f of files) expect(f.flags, f.path).to.not.include('S');
  });
});
