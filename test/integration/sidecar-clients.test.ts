/**
 * Clients of `lars agent` in other languages, against the real command in a
 * child process (real nats-server and route node): the Python client's own
 * unittest suite, and the C++ example of docs/sidecar.md compiled and run.
 */
import { expect } from 'chai';
import { spawn, spawnSync } from 'node:child_process';
import { createSocket } from 'node:dgram';
import { createServer } from 'node:net';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { useCluster, type TestCluster } from '../helpers/cluster.ts';
import { larsLive } from '../helpers/cli.ts';
import { waitFor } from '../helpers/wait.ts';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const has = (cmd: string): boolean => spawnSync('sh', ['-c', `command -v ${cmd}`], { encoding: 'utf8' }).stdout.trim() !== '';

function freeTcpPort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address() as { port: number };
      s.close(() => resolve(port));
    });
  });
}

/** A base port with base, base+1, base+2 free for UDP (Lars' clients compute the port from the base). */
async function freeUdpBase(): Promise<number> {
  for (let tries = 0; tries < 50; tries++) {
    const base = 20_000 + Math.floor(Math.random() * 40_000);
    const socks = [0, 1, 2].map(() => createSocket('udp4'));
    const ok = await Promise.all(
      socks.map((s, i) => new Promise<boolean>((resolve) => {
        s.once('error', () => resolve(false));
        s.bind(base + i, '127.0.0.1', () => resolve(true));
      })),
    );
    await Promise.all(socks.map((s) => new Promise<void>((r) => { try { s.close(() => r()); } catch { r(); } })));
    if (ok.every(Boolean)) return base;
  }
  throw new Error('no three consecutive free UDP ports');
}

function run(cmd: string, args: string[], opts: { cwd?: string; env?: Record<string, string>; timeoutMs?: number } = {}): Promise<{ code: number | null; out: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { cwd: opts.cwd, env: { ...process.env, ...opts.env }, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (out += d.toString()));
    const t = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`${cmd} ${args.join(' ')} timed out:\n${out}`));
    }, opts.timeoutMs ?? 60_000);
    child.on('exit', (code) => {
      clearTimeout(t);
      resolve({ code, out });
    });
  });
}

describe('sidecar clients in other languages (lars agent in a child process)', function () {
  this.timeout(120_000);
  const cluster = useCluster();
  let c: TestCluster;
  let agent: ReturnType<typeof larsLive> | undefined;
  beforeEach(() => {
    c = cluster();
  });
  afterEach(async () => {
    if (agent && agent.child.exitCode === null) {
      agent.child.kill('SIGTERM');
      await agent.exited;
    }
    agent = undefined;
  });

  async function startAgent(udpPorts: string, httpPort: number, threads?: number): Promise<void> {
    // swrr: the clients' tests wait for the node's ejection (p2c_ewma would drop the failing host locally first)
    const args = ['agent', '--udp-ports', udpPorts, '--http-port', String(httpPort), '--nats', c.server.url, '--prefix', c.prefix, '--partitions', '8', '--strategy', 'swrr'];
    agent = larsLive([...args, ...(threads !== undefined ? ['--threads', String(threads)] : [])], { LARS_LOG_FORMAT: 'json' });
    const live = agent;
    await waitFor(() => live.errLines.some((l) => l.startsWith('lars agent: ')) || live.child.exitCode !== null, { what: 'lars agent ready', timeoutMs: 30_000 });
    expect(live.child.exitCode, live.errLines.join('\n')).to.equal(null);
  }

  async function stopAgent(): Promise<void> {
    const live = agent!;
    live.child.kill('SIGTERM');
    expect(await live.exited, `lars agent exit code; stderr:\n${live.errLines.join('\n')}`).to.equal(0);
  }

  for (const threads of [1, 2]) it(`sidecar-python - the Python client passes its unittest suite against lars agent --threads ${threads}`, async function () {
    if (!has('python3')) this.skip();
    const hosts = [1, 2, 3].map((i) => ({ ip: `127.0.1.${i}`, port: 7100, weight: 100 }));
    await c.addRoute(21, 1, hosts);
    await c.addRoute(21, 2, hosts, 'default', { base_ejection_time: 60 });
    await waitFor(() => c.latest(21, 1) && c.latest(21, 2), { what: 'routes published' });
    const httpPort = await freeTcpPort();
    const udpBase = await freeUdpBase();
    const udpPorts = [udpBase, udpBase + 1, udpBase + 2].join(',');
    await startAgent(udpPorts, httpPort, threads);
    const r = await run('python3', ['-m', 'unittest', '-v', 'test_lars_client'], {
      cwd: join(ROOT, 'clients', 'python'),
      env: {
        PYTHONDONTWRITEBYTECODE: '1',
        LARS_HTTP_URL: `http://127.0.0.1:${httpPort}`,
        LARS_UDP_PORTS: udpPorts,
        LARS_TEST_ROUTE: '21,1',
        LARS_TEST_EJECT: '21,2',
        LARS_TEST_HOSTS: hosts.map((h) => `${h.ip}:${h.port}`).join(','),
      },
    });
    expect(r.code, r.out).to.equal(0);
    expect(r.out).to.match(/Ran 8 tests/);
    expect(r.out, 'no test skipped: the sidecar tests ran').to.not.match(/skipped/);
    await stopAgent();
  });

  it('sidecar-cpp - the C++ example of docs/sidecar.md compiles and gets a host', async function () {
    if (!has('g++')) this.skip();
    const doc = readFileSync(join(ROOT, 'docs', 'sidecar.md'), 'utf8');
    const src = /```cpp\n([\s\S]*?)```/.exec(doc)?.[1];
    expect(src, 'a cpp block in docs/sidecar.md').to.be.a('string');
    const dir = mkdtempSync(join(tmpdir(), 'lars-cpp-'));
    try {
      writeFileSync(join(dir, 'lars_get_host.cpp'), src!);
      const built = await run('g++', ['-std=c++17', '-O2', '-Wall', '-Werror', '-o', join(dir, 'lars_get_host'), join(dir, 'lars_get_host.cpp')]);
      expect(built.code, built.out).to.equal(0);
      await c.addRoute(31, 4, [{ ip: '192.168.7.9', port: 6000, weight: 100 }]);
      await waitFor(() => c.latest(31, 4), { what: 'route published' });
      const base = await freeUdpBase();
      await startAgent([base, base + 1, base + 2].join(','), 0);
      let batches = 0;
      const sub = c.nc.subscribe(`${c.prefix}.report.*.31.4`, { callback: () => void batches++ });
      await c.nc.flush();
      const r = await run(join(dir, 'lars_get_host'), ['31', '4', String(base)]);
      expect(r.code, r.out).to.equal(0);
      expect(r.out.trim()).to.equal('host 192.168.7.9:6000');
      // its report left the sidecar as a report batch on the route's subject
      await waitFor(() => batches > 0, { what: 'the report batch of the C++ client' });
      sub.unsubscribe();
      await stopAgent();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
