import { expect } from 'chai';
import { readFileSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { lars } from '../helpers/cli.ts';

/** The Dockerfile's stages: each FROM line and the instructions under it (continuation lines joined). */
function dockerStages(text: string): Array<{ from: string; lines: string[] }> {
  const stages: Array<{ from: string; lines: string[] }> = [];
  const joined = text.replace(/\\\n/g, ' ').split('\n').map((l) => l.trim()).filter((l) => l.length > 0 && !l.startsWith('#'));
  for (const l of joined) {
    if (/^FROM /i.test(l)) stages.push({ from: l, lines: [] });
    else stages.at(-1)?.lines.push(l);
  }
  return stages;
}

/** Service names of the compose file (the keys under `services:`). */
function composeServices(text: string): string[] {
  const rest = text.slice(text.indexOf('\nservices:\n') + '\nservices:\n'.length);
  const stop = rest.search(/^\S/m);
  const body = stop < 0 ? rest : rest.slice(0, stop);
  return [...body.matchAll(/^ {2}([a-z0-9][a-z0-9_-]*):\s*$/gm)].map((m) => m[1]!);
}

describe('deployment files', function () {
  this.timeout(120_000);
  const compose = readFileSync(new URL('../../docker-compose.yml', import.meta.url), 'utf8');
  const dockerfile = readFileSync(new URL('../../Dockerfile', import.meta.url), 'utf8');

  it('deploy - the Dockerfile compiles in a build stage and runs production dependencies, dist/ and run-time files only, as a non-root user', () => {
    const stages = dockerStages(dockerfile);
    expect(stages.length, 'a build stage and a final stage').to.be.at.least(2);
    const build = stages[0]!;
    const final = stages.at(-1)!;
    expect(build.from).to.match(/ AS build$/i);
    expect(build.lines.some((l) => /^RUN .*npm run build/.test(l)), 'the build stage compiles').to.equal(true);
    // final stage: production dependencies only, never npm ci (it refuses chdb's optional platform packages in the lock file)
    const runs = final.lines.filter((l) => l.startsWith('RUN '));
    expect(runs.join('\n')).to.match(/npm install --omit=dev/);
    expect(stages.flatMap((s) => s.lines).join('\n')).to.not.match(/npm ci\b/);
    for (const r of runs) for (const m of r.matchAll(/npm install ([^&;]*)/g)) expect(m[1], r).to.match(/--omit=dev/);
    const copies = final.lines.filter((l) => /^COPY /.test(l));
    expect(copies).to.include('COPY --from=build /app/dist ./dist');
    for (const c of copies) expect(c, 'no sources, tests or benchmarks in the image').to.not.match(/\b(src|test|bench|scripts)\b/);
    const user = final.lines.findIndex((l) => /^USER /.test(l));
    expect(user, 'USER in the final stage').to.be.greaterThan(-1);
    expect(final.lines[user]).to.not.match(/^USER (root|0)\b/);
    expect(final.lines.findIndex((l) => l.startsWith('ENTRYPOINT')), 'USER comes before the entrypoint').to.be.greaterThan(user);
    expect(final.lines.filter((l) => l.startsWith('RUN ')).every((l) => final.lines.indexOf(l) < user), 'root only for installing').to.equal(true);
    expect(final.lines.find((l) => l.startsWith('ENTRYPOINT'))).to.equal('ENTRYPOINT ["node", "bin/lars.mjs"]');
    // the ClickHouse mode is explicit: a server over HTTP unless built WITH_CHDB
    expect(final.lines).to.include('ARG WITH_CHDB=false');
    expect(final.lines.join('\n')).to.match(/LARS_CLICKHOUSE_URL=\$\{CLICKHOUSE_URL\}/);
    expect(final.lines.join('\n')).to.match(/if \[ "\$WITH_CHDB" = "true" \]; then npm install .*chdb/);
    // what the package ships for run time (not its documentation) is in the image too
    const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { files: string[] };
    const runtime = pkg.files.filter((f) => !f.startsWith('!') && !/(^|\/)README\.md$|^docs$|\.schema\.json$/.test(f));
    for (const f of runtime) {
      const copied = f === 'dist' ? copies.includes('COPY --from=build /app/dist ./dist') : copies.some((c) => c.split(/\s+/)[1] === f);
      expect(copied, `the image has ${f}`).to.equal(true);
    }
    // the build context leaves out the local node_modules (chdb alone is over 500 MB) and build output
    const ignored = readFileSync(new URL('../../.dockerignore', import.meta.url), 'utf8').split('\n');
    expect(ignored).to.include.members(['node_modules', 'dist', '.lars']);
  });

  it('deploy - every host in the compose environment is a compose service', () => {
    const services = composeServices(compose);
    expect(services).to.include.members(['nats-1', 'nats-2', 'nats-3', 'clickhouse-1', 'clickhouse-2', 'route-node-1', 'route-node-2', 'route-node-3', 'sink-1']);
    const nats = /LARS_NATS_URL: (\S+)/.exec(compose)![1]!;
    for (const u of nats.split(',')) expect(services, u).to.include(new URL(u).hostname);
    const ch = /LARS_CLICKHOUSE_URL: (\S+)/.exec(compose)![1]!;
    expect(ch.split(',')).to.have.length(2);
    for (const u of ch.split(',')) expect(services, u).to.include(new URL(u).hostname);
    // the ClickHouse servers have the user and database the lars services log in with, and know the cluster
    expect(compose).to.match(/CLICKHOUSE_DB: lars/);
    expect(compose).to.match(/LARS_CLICKHOUSE_DATABASE: lars/);
    expect(/LARS_CLICKHOUSE_USER: (\S+)/.exec(compose)?.[1]).to.equal(/CLICKHOUSE_USER: (\S+)/.exec(compose.slice(compose.indexOf('x-clickhouse:')))?.[1]);
    const cluster = /LARS_CLICKHOUSE_CLUSTER: (\S+)/.exec(compose)![1]!;
    const xml = readFileSync(new URL('../../deploy/clickhouse/cluster.xml', import.meta.url), 'utf8');
    expect(xml).to.include(`<${cluster}>`);
    for (const u of ch.split(',')) expect(xml).to.include(`<host>${new URL(u).hostname}</host>`);
    // every lars service logs in to NATS as a user the shipped permissions define
    const perms = readFileSync(new URL('../../deploy/nats/permissions.conf', import.meta.url), 'utf8');
    const users = [...compose.matchAll(/LARS_NATS_USER: ([\w-]+)/g)].map((m) => m[1]!);
    expect(users).to.include.members(['route-node', 'sink', 'admin']);
    for (const u of users) expect(perms, u).to.match(new RegExp(`user: ${u},`));
  });

  it('deploy - health and metrics: the image checks /healthz, compose waits on /readyz, Prometheus scrapes every node and sink', () => {
    const final = dockerStages(dockerfile).at(-1)!;
    expect(final.lines.find((l) => l.startsWith('HEALTHCHECK'))).to.match(/127\.0\.0\.1:9464\/healthz/);
    expect(compose).to.match(/127\.0\.0\.1:9464\/readyz/);
    expect(compose).to.match(/condition: service_healthy/);
    const served = [...compose.matchAll(/command: (\[.*\])/g)]
      .map((m) => JSON.parse(m[1]!) as string[])
      .filter((c) => c[0] === 'node' || c[0] === 'sink');
    const prom = readFileSync(new URL('../../deploy/prometheus/prometheus.yml', import.meta.url), 'utf8');
    for (const c of served) {
      expect(c.slice(c.indexOf('--http'), c.indexOf('--http') + 2), c.join(' ')).to.deep.equal(['--http', '9464']);
      expect(prom, c.join(' ')).to.include(`${c[c.indexOf('--node-id') + 1]}:9464`);
    }
  });

  it('deploy - docker-compose.yml is a valid compose file', function () {
    const bin = spawnSync('sh', ['-c', 'command -v docker-compose']).stdout.toString().trim();
    if (!bin) this.skip();
    const cwd = new URL('../..', import.meta.url).pathname;
    const passwords = { LARS_AGENT_PASSWORD: 'pa', LARS_NODE_PASSWORD: 'pn', LARS_SINK_PASSWORD: 'ps', LARS_XDS_PASSWORD: 'px', LARS_ADMIN_PASSWORD: 'pd', LARS_CLICKHOUSE_PASSWORD: 'pc' };
    const env = { ...process.env };
    for (const k of Object.keys(passwords)) delete env[k];
    const r = spawnSync(bin, ['-f', 'docker-compose.yml', 'config', '-q'], { cwd, encoding: 'utf8', env: { ...env, ...passwords } });
    expect(r.status, r.stderr).to.equal(0);
    // every password is required, none defaulted: each one missing stops compose, naming it
    for (const k of Object.keys(passwords)) {
      const without: NodeJS.ProcessEnv = { ...env, ...passwords };
      delete without[k];
      const missing = spawnSync(bin, ['-f', 'docker-compose.yml', 'config', '-q'], { cwd, encoding: 'utf8', env: without });
      expect(missing.status, k).to.not.equal(0);
      expect(missing.stderr, k).to.include(`set ${k}`);
    }
  });

  it('deploy - docker-compose.yml: every password is required (no default) and named in its header', () => {
    const required = [...new Set([...compose.matchAll(/\$\{(LARS_\w+_PASSWORD):\?set \1\}/g)].map((m) => m[1]!))].sort();
    expect(required).to.deep.equal(['LARS_ADMIN_PASSWORD', 'LARS_AGENT_PASSWORD', 'LARS_CLICKHOUSE_PASSWORD', 'LARS_NODE_PASSWORD', 'LARS_SINK_PASSWORD', 'LARS_XDS_PASSWORD']);
    expect(compose, 'no password has a default').to.not.match(/PASSWORD:-/);
    const header = compose.slice(0, compose.search(/^[^#\s]/m));
    for (const k of required) expect(header, k).to.include(k);
    // ... and the docs that say what to set before `up` name them all
    const ops = readFileSync(new URL('../../docs/operations.md', import.meta.url), 'utf8');
    const para = ops.slice(ops.indexOf('**A deployment:**'), ops.indexOf('\n- **Route nodes:**'));
    for (const k of required) expect(para, `docs/operations.md, "A deployment", names ${k}`).to.include(k);
  });

  it('deploy - every lars command in docker-compose.yml parses', async () => {
    const commands = [...compose.matchAll(/command: (\[.*\])/g)].map((m) => JSON.parse(m[1]!) as string[]).filter((c) => ['node', 'sink', 'route', 'stats', 'dev'].includes(c[0]!));
    expect(commands.length).to.be.at.least(4);
    for (const c of commands) {
      const r = await lars([...c, '--help']);
      expect(r.code, `${c.join(' ')}: ${r.stderr}`).to.equal(0);
    }
    // route nodes share the partitions through leases: none is pinned with --own
    const nodes = commands.filter((c) => c[0] === 'node');
    expect(nodes.length).to.be.at.least(3);
    for (const c of nodes) expect(c).to.not.include('--own');
  });
});
