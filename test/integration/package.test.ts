import { expect } from 'chai';
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { startNatsServer, type NatsServer } from '../../src/natsd.ts';
import { connectNats, type NatsConnection } from '../../src/nats/connect.ts';
import { RouteNode } from '../../src/node/route-node.ts';
import { Registry } from '../../src/registry.ts';
import { names } from '../../schemas/subjects.ts';
import { silentLogger } from '../../src/log.ts';
import { ensureStreams } from '../../src/streams.ts';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..');

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

function run(cmd: string, args: string[], opts: { cwd: string; env?: Record<string, string>; timeoutMs: number }): Promise<Run> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { cwd: opts.cwd, env: { ...process.env, ...opts.env }, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const t = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`${cmd} ${args.join(' ')} did not finish within ${opts.timeoutMs} ms\n${stdout}\n${stderr}`));
    }, opts.timeoutMs);
    child.on('exit', (code) => {
      clearTimeout(t);
      resolve({ code, stdout, stderr });
    });
  });
}

/** The README's SDK snippet (the ```js block that calls createAgent). */
function readmeSnippet(): string {
  const readme = readFileSync(join(ROOT, 'README.md'), 'utf8');
  const block = [...readme.matchAll(/```js\n([\s\S]*?)```/g)].map((m) => m[1]!).find((b) => b.includes('createAgent'));
  if (!block) throw new Error('README.md has no ```js block with createAgent');
  return block;
}

describe('the package from plain Node (npm pack, npm install, import and require)', function () {
  this.timeout(300_000);
  let work: string;
  let tarball: string;
  let app: string;
  let nats: NatsServer;
  let nc: NatsConnection;
  let node: RouteNode;

  before(async () => {
    work = mkdtempSync(join(tmpdir(), 'lars-pkg-'));
    // npm pack runs prepack, which builds dist/
    const pack = await run('npm', ['pack', '--pack-destination', work, '--json'], { cwd: ROOT, timeoutMs: 180_000 });
    expect(pack.code, pack.stderr).to.equal(0);
    const meta = JSON.parse(pack.stdout.slice(pack.stdout.indexOf('['))) as Array<{ filename: string }>;
    tarball = join(work, meta[0]!.filename);
    app = join(work, 'app');
    mkdirSync(app);
    writeFileSync(join(app, 'package.json'), JSON.stringify({ name: 'app', version: '1.0.0', private: true }, null, 2));
    const install = await run('npm', ['install', tarball, '--prefer-offline', '--no-audit', '--no-fund'], { cwd: app, timeoutMs: 240_000 });
    expect(install.code, install.stderr).to.equal(0);
    // no dependency asks for another Node than the package's engines allow
    expect(install.stderr, 'npm install warnings').to.not.contain('EBADENGINE');

    nats = await startNatsServer();
    nc = await connectNats({ url: nats.url });
    const n = names('lars');
    // as `lars node` does: the report stream exists, so the agent's last reports are acknowledged on close
    node = await RouteNode.start({ nc, nodeId: 'pkg-test', prefix: 'lars', partitions: 64, log: silentLogger(), onStart: async (c, nn) => void (await ensureStreams(c, nn)) });
    const registry = await Registry.open(nc, n);
    await registry.update(1, 1, () => ({ v: 1, modid: 1, cmdid: 1, hosts: [{ ip: '10.0.0.1', port: 8080, weight: 100 }], updated_by: 'test', ts: Date.now() }));
  });

  after(async () => {
    await node?.close();
    await nc?.drain();
    await nats?.stop();
    if (work) rmSync(work, { recursive: true, force: true });
  });

  it('package - the tarball ships dist, bin and docs, not the sources, tests or benchmarks', async () => {
    const list = await run('tar', ['tzf', tarball], { cwd: work, timeoutMs: 30_000 });
    const files = list.stdout.split('\n').filter((f) => f.length > 0);
    for (const f of ['package/dist/src/index.js', 'package/dist/src/index.d.ts', 'package/dist/cjs/index.js', 'package/dist/cjs/package.json', 'package/bin/lars.mjs', 'package/README.md', 'package/dist/src/console/assets/index.html', 'package/dist/src/console/assets/app.js']) {
      expect(files, f).to.include(f);
    }
    for (const dir of ['test/', 'bench/', 'src/', 'scripts/', 'node_modules/']) {
      expect(files.filter((f) => f.startsWith(`package/${dir}`)), dir).to.deep.equal([]);
    }
    expect(files.filter((f) => f.endsWith('.ts') && !f.endsWith('.d.ts')), 'TypeScript sources').to.deep.equal([]);
  });

  it('package - installing it does not install the embedded ClickHouse (chdb) or the dev tools', () => {
    const modules = readdirSync(join(app, 'node_modules'));
    expect(modules).to.include('lars-nats');
    expect(modules).to.not.include('chdb');
    expect(modules).to.not.include('tsx');
    expect(modules).to.not.include('typescript');
  });

  it("package - the README's SDK snippet runs from plain node as ESM, closes and exits", async () => {
    writeFileSync(join(app, 'snippet.mjs'), `async function callService() { return true; }\n${readmeSnippet()}`);
    const t0 = Date.now();
    const r = await run(process.execPath, ['snippet.mjs'], { cwd: app, env: { LARS_NATS_URL: nats.url }, timeoutMs: 30_000 });
    expect(r.code, r.stderr).to.equal(0);
    // close() returned as soon as the reports were acknowledged, and nothing kept the process alive
    expect(Date.now() - t0).to.be.lessThan(4000);
    expect(r.stdout.trim()).to.equal('called 10.0.0.1:8080: ok');
  });

  it("package - the README's SDK snippet runs from plain node as CommonJS (require), closes and exits", async () => {
    const body = readmeSnippet().replace(/^import \{ createAgent \} from 'lars-nats';$/m, '');
    expect(body).to.not.contain('import ');
    writeFileSync(join(app, 'snippet.cjs'), `const { createAgent } = require('lars-nats');\nasync function callService() { return true; }\n(async () => {\n${body}\n})();\n`);
    const t0 = Date.now();
    const r = await run(process.execPath, ['snippet.cjs'], { cwd: app, env: { LARS_NATS_URL: nats.url }, timeoutMs: 30_000 });
    expect(r.code, r.stderr).to.equal(0);
    // close() returned as soon as the reports were acknowledged, and nothing kept the process alive
    expect(Date.now() - t0).to.be.lessThan(4000);
    expect(r.stdout.trim()).to.equal('called 10.0.0.1:8080: ok');
  });

  it('package - TypeScript users get the types, from import and from require', async () => {
    // a TypeScript project of the user's, with Node's types as any such project has them
    writeFileSync(
      join(app, 'tsconfig.json'),
      JSON.stringify({
        compilerOptions: { module: 'NodeNext', moduleResolution: 'NodeNext', target: 'ES2022', strict: true, noEmit: true, skipLibCheck: false, types: ['node'], typeRoots: [join(ROOT, 'node_modules', '@types')] },
        files: ['typed.mts', 'typed.cts', 'mistyped.mts'],
      }),
    );
    writeFileSync(
      join(app, 'typed.mts'),
      "import { createAgent, type HostPick } from 'lars-nats';\nconst agent = await createAgent({ servers: 'nats://127.0.0.1:4222' });\nconst h: HostPick = await agent.getHost(1, 1);\nif (h.ok) agent.report(1, 1, h, 0, 12.5);\nawait agent.close();\n",
    );
    writeFileSync(join(app, 'typed.cts'), "import lars = require('lars-nats');\nexport async function main(): Promise<void> {\n  const agent = await lars.createAgent({ servers: 'nats://127.0.0.1:4222' });\n  await agent.close();\n}\n");
    // the declarations are real types, not any: a mistake is an error
    writeFileSync(join(app, 'mistyped.mts'), "import { createAgent } from 'lars-nats';\nconst agent = await createAgent({ servers: 'x' });\nconst port: string = (await agent.getHost(1, 1)).ok ? 1 : '';\nexport { port };\n");
    const tsc = await run(process.execPath, [join(ROOT, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', '.'], { cwd: app, timeoutMs: 120_000 });
    const errors = tsc.stdout.split('\n').filter((l) => /error TS\d+/.test(l));
    expect(errors.length, tsc.stdout).to.equal(1);
    expect(errors[0]).to.match(/^mistyped\.mts\(3,7\): error TS2322/);
  });

  it("package - registerSelf's heartbeat thread runs from the installed package, ESM and CommonJS, through a busy stretch longer than the TTL", async () => {
    const body = (port: number, cmdid: number): string => `
const r = await registerSelf({ servers: process.env.LARS_NATS_URL, modid: 3, cmdid: ${cmdid}, ip: '127.0.0.1', port: ${port}, ttlMs: 1000 });
const end = Date.now() + 1500;
while (Date.now() < end) {} // busy for longer than the TTL: only a heartbeat thread keeps the host registered
await new Promise((res) => setTimeout(res, 50));
console.log('heartbeats', r.heartbeats);
await r.stop({ drainMs: 0 });
`;
    writeFileSync(join(app, 'selfreg.mjs'), `import { registerSelf } from 'lars-nats';
${body(9101, 1)}`);
    writeFileSync(join(app, 'selfreg.cjs'), `const { registerSelf } = require('lars-nats');
(async () => {
${body(9102, 2)}
})();
`);
    for (const [file, cmdid] of [['selfreg.mjs', 1], ['selfreg.cjs', 2]] as const) {
      const heard: number[] = [];
      const seen = setInterval(() => {
        const h = node.selfRegistered(3, cmdid)[0];
        if (h && !heard.includes(h.heardAt)) heard.push(h.heardAt);
      }, 20);
      const r = await run(process.execPath, [file], { cwd: app, env: { LARS_NATS_URL: nats.url }, timeoutMs: 30_000 });
      clearInterval(seen);
      expect(r.code, `${file}: ${r.stderr}`).to.equal(0);
      // heartbeat every 200 ms from the worker, also while the main thread spun
      expect(Number(/heartbeats (\d+)/.exec(r.stdout)?.[1]), `${file}: ${r.stdout}`).to.be.at.least(7);
      expect(heard.length, `${file}: heartbeats heard by the route node`).to.be.at.least(6);
      expect(node.selfRegistered(3, cmdid), `${file}: deregistered on stop`).to.deep.equal([]);
    }
  });

  it('package - the installed lars command runs the compiled CLI', async () => {
    const bin = join(app, 'node_modules', '.bin', 'lars');
    expect(existsSync(bin)).to.equal(true);
    const v = await run(bin, ['--version'], { cwd: app, timeoutMs: 30_000 });
    expect(v.code, v.stderr).to.equal(0);
    expect(v.stdout.trim()).to.contain((JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { version: string }).version);
    const ls = await run(bin, ['route', 'ls', '--nats', nats.url], { cwd: app, timeoutMs: 30_000 });
    expect(ls.code, ls.stderr).to.equal(0);
    expect(ls.stdout).to.contain('10.0.0.1:8080');
    // the README's simulator line, from the user's project (the scenarios are the package's)
    const sim = await run(bin, ['simulate', 'scenarios/slow-host.json', '--strategy', 'swrr'], { cwd: app, timeoutMs: 60_000 });
    expect(sim.code, sim.stderr).to.equal(0);
    expect(sim.stdout).to.match(/^slow-host \(seed/);
  });

  it('package - lars dev without chdb says how to get it and runs without analytics', async () => {
    const dir = join(work, 'dev-data');
    const r = await run(join(app, 'node_modules', '.bin', 'lars'), ['dev', '--plain', '--duration', '1', '--data-dir', dir, '--nats', nats.url, '--prefix', 'pkgdev'], { cwd: app, timeoutMs: 60_000 });
    expect(r.code, r.stderr).to.equal(0);
    expect(r.stdout).to.match(/analytics: off \(.*npm install chdb.*\); the demo runs without it/);
  });
});
