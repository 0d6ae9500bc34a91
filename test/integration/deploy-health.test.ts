/**
 * The image's health check on every role it runs: the Dockerfile's
 * HEALTHCHECK command and compose's readiness probe, read from the files,
 * run against each lars service of docker-compose.yml started as compose
 * starts it (its command and environment; the real `lars` binary, a real
 * nats-server with the shipped per-role permissions, the embedded
 * ClickHouse where compose names ClickHouse servers). Only the port moves:
 * 9464 becomes a free one, in the command and in the probe alike.
 */
import { expect } from 'chai';
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parse } from 'yaml';
import type { NatsServer } from '../../src/nats/natsd.ts';
import { larsLive } from '../helpers/cli.ts';
import { freePort } from '../helpers/clickhouse-server.ts';
import { waitFor } from '../helpers/wait.ts';
import { rolePasswords, setEnvironment, startPermissionsServer } from '../helpers/secured-nats.ts';

const HEALTH_PORT = '9464';
const PASSWORDS = { ...rolePasswords(), LARS_CLICKHOUSE_PASSWORD: 'chpw1' };

interface ComposeService {
  image?: string;
  command?: string[];
  environment?: Record<string, string>;
  healthcheck?: { test?: string[]; disable?: boolean };
  profiles?: string[];
}

/** The Dockerfile's final HEALTHCHECK command (shell form, continuation lines joined). */
function dockerHealthcheck(text: string): string {
  const lines = text.replace(/\\\n/g, ' ').split('\n').filter((l) => /^HEALTHCHECK /.test(l));
  const m = /\sCMD\s+(.+)$/.exec(lines.at(-1) ?? '');
  if (!m) throw new Error('no HEALTHCHECK ... CMD in the Dockerfile');
  return m[1]!.trim();
}

/** Compose's `${VAR}`, `${VAR:-default}` and `${VAR:?message}`, from `vars`. */
function interpolate(v: string, vars: Record<string, string>): string {
  return v.replace(/\$\{(\w+)(?::([-?])([^}]*))?\}/g, (_, name: string, op: string | undefined, arg: string | undefined) => {
    const val = vars[name];
    if (val !== undefined && val !== '') return val;
    if (op === '?') throw new Error(`compose needs ${name}: ${arg}`);
    return op === '-' ? (arg ?? '') : '';
  });
}

/** Runs a probe to its end: its exit code. */
function run(cmd: string, args: string[]): Promise<number | null> {
  return new Promise((resolve) => {
    const p = spawn(cmd, args, { stdio: 'ignore' });
    p.on('exit', (code) => resolve(code));
  });
}

describe('deploy - the image health check on every role (Dockerfile, docker-compose.yml, real lars and nats-server)', function () {
  this.timeout(300_000);
  const dockerfile = readFileSync(new URL('../../Dockerfile', import.meta.url), 'utf8');
  const composeText = readFileSync(new URL('../../docker-compose.yml', import.meta.url), 'utf8');
  const compose = parse(composeText, { merge: true }) as { 'x-lars': ComposeService; services: Record<string, ComposeService> };
  const image = compose['x-lars'].image;
  // one service per role, in compose order: the route node first makes the streams and buckets the others use
  const roles = new Map<string, [string, ComposeService]>();
  for (const [name, s] of Object.entries(compose.services)) {
    if (s.image !== image || s.healthcheck?.disable === true || !s.command) continue;
    if (!roles.has(s.command[0]!)) roles.set(s.command[0]!, [name, s]);
  }
  let dir: string;
  let server: NatsServer;
  let restoreEnv: (() => void) | undefined;

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'lars-health-'));
    restoreEnv = setEnvironment(PASSWORDS);
    server = await startPermissionsServer(dir);
  });

  after(async () => {
    await server?.stop();
    restoreEnv?.();
    rmSync(dir, { recursive: true, force: true });
  });

  it('deploy - compose runs every role the image serves (node, sink, console, agent), each with its health port on 9464', () => {
    expect([...roles.keys()]).to.include.members(['node', 'sink', 'console', 'agent']);
    for (const [name, s] of roles.values()) expect(s.command, name).to.include(HEALTH_PORT);
    expect(dockerHealthcheck(dockerfile)).to.include(`:${HEALTH_PORT}/healthz`);
    expect(compose['x-lars'].healthcheck?.test?.join(' ')).to.include(`:${HEALTH_PORT}/readyz`);
  });

  for (const role of ['node', 'sink', 'console', 'agent']) {
    it(`deploy - ${role}: the Dockerfile's HEALTHCHECK and compose's readiness probe pass once it runs as compose runs it, and fail before`, async () => {
      const [name, service] = roles.get(role)!;
      const port = String(await freePort());
      const probe = dockerHealthcheck(dockerfile).replaceAll(`:${HEALTH_PORT}/`, `:${port}/`);
      const ready = (service.healthcheck?.test ?? compose['x-lars'].healthcheck!.test!).slice(1).map((a) => a.replaceAll(`:${HEALTH_PORT}/`, `:${port}/`));
      expect(ready[0], 'compose probes with node').to.equal('node');
      const command = service.command!.map((a) => (a === HEALTH_PORT ? port : a));
      const env: Record<string, string> = {};
      for (const [k, v] of Object.entries(service.environment ?? {})) env[k] = interpolate(String(v), PASSWORDS);
      expect(env['LARS_HTTP_HOST'], 'compose opens the listeners to the other containers').to.equal('0.0.0.0');
      // what differs from compose: one local server instead of three, the embedded ClickHouse instead of two servers
      Object.assign(env, { LARS_NATS_URL: server.url, LARS_REPLICAS: '1', LARS_CLICKHOUSE_URL: '', LARS_CLICKHOUSE_CLUSTER: '', LARS_DATA_DIR: join(dir, name), LARS_LOG_LEVEL: 'warn' });

      expect(await run('sh', ['-c', probe]), 'the health check fails while nothing serves').to.not.equal(0);
      const p = larsLive(command, env);
      try {
        await waitFor(async () => (await run('sh', ['-c', probe])) === 0, { what: `${name}: the Dockerfile's HEALTHCHECK`, timeoutMs: 60_000, intervalMs: 250, explain: () => p.errLines.join('\n') });
        await waitFor(async () => (await run(process.execPath, ready.slice(1))) === 0, { what: `${name}: compose's readiness probe`, timeoutMs: 90_000, intervalMs: 250, explain: () => p.errLines.join('\n') });
      } finally {
        p.child.kill('SIGTERM');
      }
      expect(await p.exited, `${name} stops cleanly: ${p.errLines.join('\n')}`).to.equal(0);
      expect(await run('sh', ['-c', probe]), 'and fails once it stopped').to.not.equal(0);
    });
  }
});
