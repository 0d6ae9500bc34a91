import { expect } from 'chai';
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { startNatsServer, type NatsServer } from '../../src/nats/natsd.ts';
import { connectNats, type NatsConnection } from '../../src/nats/connect.ts';
import { RouteNode } from '../../src/node/route-node.ts';
import { Registry } from '../../src/registry/registry.ts';
import { names } from '../../schemas/subjects.ts';
import { silentLogger } from '../../src/lib/log.ts';
import { ensureStreams } from '../../src/nats/streams.ts';
import { waitFor } from '../helpers/wait.ts';

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

/** Processes under `pid` (from /proc), with their command lines. */
function descendants(pid: number): Array<{ pid: number; cmd: string }> {
  const children = new Map<number, number[]>();
  for (const d of readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    try {
      const stat = readFileSync(`/proc/${d}/stat`, 'utf8');
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      children.set(ppid, [...(children.get(ppid) ?? []), Number(d)]);
    } catch {
      // gone while listed
    }
  }
  const out: Array<{ pid: number; cmd: string }> = [];
  const visit = (p: number): void => {
    for (const c of children.get(p) ?? []) {
      try {
        out.push({ pid: c, cmd: readFileSync(`/proc/${c}/cmdline`, 'utf8').replace(/\0/g, ' ').trim() });
      } catch {
        // gone
      }
      visit(c);
    }
  };
  visit(pid);
  return out;
}

/** A running process (a zombie counts as gone). */
function alive(pid: number): boolean {
  try {
    return !/^\d+ \(.*\) Z/.test(readFileSync(`/proc/${pid}/stat`, 'utf8'));
  } catch {
    return false;
  }
}

/** The package names npm lists under `install scripts not yet covered by allowScripts`. */
function unreviewedScripts(out: string): string[] {
  return [...out.matchAll(/^npm warn install-scripts {3}(\S+)@/gm)].map((m) => m[1]!).sort();
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
  let installOutput = '';

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
    installOutput = install.stdout + install.stderr;
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

  it("package - npm 11 names only what README says (lars-nats's prepare, msgpackr-extract); after README's npm approve-scripts the next install is quiet", async () => {
    expect(unreviewedScripts(installOutput), installOutput).to.deep.equal(['lars-nats', 'msgpackr-extract']);
    const readme = readFileSync(join(ROOT, 'README.md'), 'utf8');
    const approve = /`(npm approve-scripts [^`]+)`/.exec(readme)?.[1];
    expect(approve, 'README names the npm approve-scripts command').to.equal('npm approve-scripts lars-nats msgpackr-extract');
    const a = await run('npm', approve!.split(' ').slice(1), { cwd: app, timeoutMs: 60_000 });
    expect(a.code, a.stderr).to.equal(0);
    rmSync(join(app, 'node_modules'), { recursive: true, force: true });
    const again = await run('npm', ['install', '--prefer-offline', '--no-audit', '--no-fund'], { cwd: app, timeoutMs: 240_000 });
    expect(again.code, again.stderr).to.equal(0);
    expect(again.stdout + again.stderr).to.not.contain('allowScripts');
  });

  it('package - npx lars in the project runs the installed command', async () => {
    const v = await run('npx', ['lars', '--version'], { cwd: app, timeoutMs: 60_000 });
    expect(v.code, v.stderr).to.equal(0);
    expect(v.stdout.trim()).to.equal((JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { version: string }).version);
  });

  for (const signal of ['SIGTERM', 'SIGKILL'] as const) {
    it(`package - npx lars node stopped with ${signal} (a supervisor stopping npx): the node process stops too, gracefully`, async () => {
      const npx = spawn('npx', ['lars', 'node', '--nats', nats.url, '--prefix', `pkgorphan${signal.toLowerCase()}`, '--partitions', '8'], {
        cwd: app,
        env: { ...process.env, LARS_LOG_LEVEL: 'info', LARS_LOG_FORMAT: 'json' },
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      let out = '';
      npx.stdout.on('data', (d: Buffer) => (out += d.toString()));
      npx.stderr.on('data', (d: Buffer) => (out += d.toString()));
      let lars: { pid: number; cmd: string } | undefined;
      try {
        await waitFor(() => out.includes('route node ready'), { what: 'lars node ready under npx', timeoutMs: 60_000, explain: () => out });
        lars = descendants(npx.pid!).find((p) => /node_modules\/(\.bin\/lars|lars-nats\/bin\/lars\.mjs) node /.test(p.cmd));
        expect(lars, JSON.stringify(descendants(npx.pid!))).to.not.equal(undefined);
        npx.kill(signal);
        // the stop of a route node hands its partitions over: seconds, not more
        await waitFor(() => !alive(lars!.pid), { what: `lars node (pid ${lars!.pid}) to stop after npx got ${signal}`, timeoutMs: 20_000, intervalMs: 50, explain: () => out });
        expect(out).to.match(/stopping route node…/);
        if (signal === 'SIGKILL') expect(out).to.match(/parent process \d+ (\(through shell \d+\) )?is gone: stopping as on SIGTERM/);
      } finally {
        killLeft(npx, lars?.pid);
      }
    });
  }
});

/** Kills what a test left running (npx and the lars process under it). */
function killLeft(npx: ChildProcess, pid: number | undefined): void {
  if (npx.exitCode === null && npx.signalCode === null) npx.kill('SIGKILL');
  if (pid !== undefined && alive(pid)) process.kill(pid, 'SIGKILL');
}

describe('the package from git (npm install git+file://, as from any git URL)', function () {
  // a clone, npm installing its dev dependencies and building it there, then the install
  this.timeout(900_000);
  let work: string;
  let app: string;
  let nats: NatsServer;
  let nc: NatsConnection;
  let node: RouteNode;
  let installOutput = '';

  before(async () => {
    work = mkdtempSync(join(tmpdir(), 'lars-git-'));
    // a clean clone of HEAD: what a user's git URL gives
    const repo = join(work, 'repo');
    const clone = await run('git', ['clone', '--quiet', '--no-hardlinks', ROOT, repo], { cwd: work, timeoutMs: 120_000 });
    expect(clone.code, clone.stderr).to.equal(0);
    app = join(work, 'app');
    mkdirSync(app);
    writeFileSync(join(app, 'package.json'), JSON.stringify({ name: 'app', version: '1.0.0', private: true }, null, 2));
    const install = await run('npm', ['install', `git+file://${repo}`, '--prefer-offline', '--no-audit', '--no-fund'], { cwd: app, timeoutMs: 840_000 });
    installOutput = install.stdout + install.stderr;
    expect(install.code, installOutput).to.equal(0);

    nats = await startNatsServer();
    nc = await connectNats({ url: nats.url });
    node = await RouteNode.start({ nc, nodeId: 'git-test', prefix: 'lars', partitions: 64, log: silentLogger(), onStart: async (c, nn) => void (await ensureStreams(c, nn)) });
    const registry = await Registry.open(nc, names('lars'));
    await registry.update(1, 1, () => ({ v: 1, modid: 1, cmdid: 1, hosts: [{ ip: '10.0.0.1', port: 8080, weight: 100 }], updated_by: 'test', ts: Date.now() }));
  });

  after(async () => {
    await node?.close();
    await nc?.drain();
    await nats?.stop();
    if (work) rmSync(work, { recursive: true, force: true });
  });

  it('package - from git: built (dist/ with the CLI, the ESM and CommonJS entries), no sources', () => {
    const pkg = join(app, 'node_modules', 'lars-nats');
    for (const f of ['dist/src/cli/main.js', 'dist/src/index.js', 'dist/src/index.d.ts', 'dist/cjs/index.js', 'bin/lars.mjs']) expect(existsSync(join(pkg, f)), f).to.equal(true);
    expect(existsSync(join(pkg, 'src')), 'no TypeScript sources').to.equal(false);
    // npm lists the package's prepare (it ran) and msgpackr's native decoder, as README says
    expect(unreviewedScripts(installOutput), installOutput).to.deep.equal(['lars-nats', 'msgpackr-extract']);
  });

  it('package - from git: npx lars --version', async () => {
    const v = await run('npx', ['lars', '--version'], { cwd: app, timeoutMs: 60_000 });
    expect(v.code, v.stderr).to.equal(0);
    expect(v.stdout.trim()).to.equal((JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { version: string }).version);
  });

  it("package - from git: the README's SDK snippet runs as ESM, closes and exits", async () => {
    writeFileSync(join(app, 'snippet.mjs'), `async function callService() { return true; }\n${readmeSnippet()}`);
    const r = await run(process.execPath, ['snippet.mjs'], { cwd: app, env: { LARS_NATS_URL: nats.url }, timeoutMs: 30_000 });
    expect(r.code, r.stderr).to.equal(0);
    expect(r.stdout.trim()).to.equal('called 10.0.0.1:8080: ok');
  });
});
