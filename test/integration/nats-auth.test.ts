/**
 * Every way to log in to NATS, against real nats-servers, from the SDK
 * (createAgent follows a route and its acknowledged reports reach the route
 * node), from the `lars` command (`lars route ls`) and from the sidecar
 * (`lars agent`): user and password (options, environment, URL) and an NKey
 * on a server configured with deploy/nats/permissions.conf; a token; TLS with
 * the server verifying the client's certificate; a .creds file on a server in
 * operator mode (JWTs signed here). A refused login never prints its secret.
 */
import { expect } from 'chai';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { nkeys, type NatsConnection } from '@nats-io/transport-node';
import { startNatsServer, type NatsServer } from '../../src/nats/natsd.ts';
import { connectNats, type ConnectOptions } from '../../src/nats/connect.ts';
import { RouteNode } from '../../src/node/route-node.ts';
import { Registry } from '../../src/registry/registry.ts';
import { ensureStreams } from '../../src/nats/streams.ts';
import { createAgent, type AgentOptions } from '../../src/agent/agent.ts';
import { registerSelf } from '../../src/agent/self-register.ts';
import { names } from '../../schemas/subjects.ts';
import { NatsAuthError, NatsUnreachableError } from '../../src/lib/errors.ts';
import { waitFor } from '../helpers/wait.ts';
import { rolePasswords, setEnvironment } from '../helpers/secured-nats.ts';
import { lars, larsLive } from '../helpers/cli.ts';
import { freePort } from '../helpers/clickhouse-server.ts';

type KeyPair = ReturnType<typeof nkeys.createUser>;

const PASSWORDS = rolePasswords();
const TOKEN = `t${randomBytes(12).toString('hex')}`;
const MODID = 7;
const CMDID = 7;
const PARTITIONS = 8;

const seedOf = (kp: KeyPair): string => new TextDecoder().decode(kp.getSeed());

/** A JWT as nsc writes them: header, claims, ed25519 signature of both by the issuer's NKey. */
function signJwt(claims: Record<string, unknown>, issuer: KeyPair): string {
  const b64 = (b: Uint8Array | string): string => Buffer.from(b).toString('base64url');
  const head = b64(JSON.stringify({ typ: 'JWT', alg: 'ed25519-nkey' }));
  const body = b64(JSON.stringify({ jti: randomBytes(16).toString('hex').toUpperCase(), iat: Math.floor(Date.now() / 1000), ...claims }));
  return `${head}.${body}.${b64(issuer.sign(new TextEncoder().encode(`${head}.${body}`)))}`;
}

/** A CA, a server certificate for 127.0.0.1 and a client certificate, made with openssl. */
function makeCertificates(dir: string): void {
  const ssl = (...args: string[]): void => void execFileSync('openssl', args, { cwd: dir, stdio: 'pipe' });
  const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];
  ssl('req', '-x509', ...ec, '-keyout', 'ca.key', '-out', 'ca.pem', '-days', '2', '-subj', '/CN=lars test CA');
  writeFileSync(join(dir, 'server.ext'), 'subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n');
  writeFileSync(join(dir, 'client.ext'), 'extendedKeyUsage=clientAuth\n');
  for (const who of ['server', 'client']) {
    ssl('req', ...ec, '-keyout', `${who}.key`, '-out', `${who}.csr`, '-subj', `/CN=lars test ${who}`);
    ssl('x509', '-req', '-in', `${who}.csr`, '-CA', 'ca.pem', '-CAkey', 'ca.key', '-CAcreateserial', '-out', `${who}.pem`, '-days', '2', '-extfile', `${who}.ext`);
  }
}

/** A server with a route registered by `admin` and a route node on `node`'s login. */
interface Site {
  server: NatsServer;
  url: string;
  admin: NatsConnection;
  nodeNc: NatsConnection;
  node: RouteNode;
}

async function openSite(conf: string, admin: Omit<ConnectOptions, 'url'>, node: Omit<ConnectOptions, 'url'>): Promise<Site> {
  const server = await startNatsServer({ args: ['-c', conf] });
  const n = names('lars');
  const adminNc = await connectNats({ url: server.url, name: 'test-admin', ...admin });
  await ensureStreams(adminNc, n, { reports: { maxBytes: 64 * 2 ** 20 }, events: { maxBytes: 16 * 2 ** 20 } });
  const registry = await Registry.open(adminNc, n);
  await registry.addHosts(MODID, CMDID, [{ ip: '10.7.0.1', port: 80, weight: 100 }], 'test', { profile: 'default', params: {} });
  const nodeNc = await connectNats({ url: server.url, name: 'test-node', ...node });
  const rn = await RouteNode.start({ nc: nodeNc, nodeId: `auth-node-${server.port}`, prefix: 'lars', partitions: PARTITIONS, tickMs: 25 });
  await rn.settled();
  return { server, url: server.url, admin: adminNc, nodeNc, node: rn };
}

async function closeSite(s: Site | undefined): Promise<void> {
  if (!s) return;
  await s.node.close();
  for (const nc of [s.nodeNc, s.admin]) await nc.close().catch(() => undefined);
  await s.server.stop();
}

/** An agent logged in as `opts` says follows the route and its acknowledged reports reach the route node. */
async function agentWorks(site: Site, opts: AgentOptions): Promise<void> {
  const agent = await createAgent({ prefix: 'lars', partitions: PARTITIONS, batchMaxDelayMs: 5, ...opts });
  try {
    const h = await agent.getHost(MODID, CMDID);
    expect(h).to.deep.include({ ok: true, ip: '10.7.0.1', port: 80 });
    const before = site.node.stats().reports;
    if (h.ok) for (let i = 0; i < 5; i++) agent.report(MODID, CMDID, h, 0, 3);
    await agent.flush();
    expect(agent.stats().ackedBatches).to.be.greaterThan(0);
    await waitFor(() => site.node.stats().reports >= before + 5, { what: 'the reports at the route node' });
  } finally {
    await agent.close();
  }
}

/** `lars route ls` as `env` says, expected to list the route. */
async function routeLsWorks(env: Record<string, string>, args: string[] = []): Promise<void> {
  const r = await lars(['route', 'ls', String(MODID), String(CMDID), '--json', ...args], { LARS_PARTITIONS: String(PARTITIONS), ...env });
  expect(r.code, r.stderr).to.equal(0);
  const rows = JSON.parse(r.stdout) as Array<{ registry: { hosts: Array<{ ip: string }> } }>;
  expect(rows[0]!.registry.hosts.map((h) => h.ip)).to.deep.equal(['10.7.0.1']);
}

async function refusal(p: Promise<unknown>): Promise<Error> {
  try {
    await p;
  } catch (err) {
    return err as Error;
  }
  throw new Error('expected the login to be refused');
}

describe('nats auth - every way to log in, from the SDK, the CLI and the sidecar', function () {
  this.timeout(120_000);
  let dir: string;
  let restoreEnv: (() => void) | undefined;
  const agentUser = nkeys.createUser();
  const adminUser = nkeys.createUser();
  let users: Site | undefined;
  let token: Site | undefined;
  let tls: Site | undefined;
  let creds: Site | undefined;
  let credsFile: string;

  /** Sets LARS_* variables of this process for one test (the SDK reads them); restored after each test. */
  const envSaved = new Map<string, string | undefined>();
  function setEnv(vars: Record<string, string>): void {
    for (const [k, v] of Object.entries(vars)) {
      if (!envSaved.has(k)) envSaved.set(k, process.env[k]);
      process.env[k] = v;
    }
  }
  afterEach(() => {
    for (const [k, v] of envSaved) {
      if (v === undefined) delete process.env[k];
      else process.env[k] = v;
    }
    envSaved.clear();
  });

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'lars-auth-'));
    restoreEnv = setEnvironment(PASSWORDS);
    // The shipped permissions, with two NKey users added to its users: one with the agent's rights, one with the admin's.
    const shipped = readFileSync(new URL('../../deploy/nats/permissions.conf', import.meta.url), 'utf8');
    const adminLine = /^\s*\{ user: admin,.*$/m.exec(shipped)?.[0];
    expect(adminLine, 'the admin user in permissions.conf').to.be.a('string');
    const withNkeys = shipped.replace(adminLine!, `${adminLine}\n    { nkey: ${agentUser.getPublicKey()}, permissions: $AGENT }\n    { nkey: ${adminUser.getPublicKey()}, permissions: $ADMIN }`);
    writeFileSync(join(dir, 'permissions.conf'), withNkeys);
    writeFileSync(join(dir, 'users.conf'), 'include permissions.conf\n');
    writeFileSync(join(dir, 'agent.nk'), `${seedOf(agentUser)}\n`);
    writeFileSync(join(dir, 'admin.nk'), `${seedOf(adminUser)}\n`);

    writeFileSync(join(dir, 'token.conf'), `authorization { token: "${TOKEN}" }\n`);

    makeCertificates(dir);
    writeFileSync(join(dir, 'tls.conf'), `include permissions.conf\ntls {\n  cert_file: "${join(dir, 'server.pem')}"\n  key_file: "${join(dir, 'server.key')}"\n  ca_file: "${join(dir, 'ca.pem')}"\n  verify: true\n}\n`);

    // Operator mode: an operator, an account with JetStream, a user; the account preloaded in memory.
    const operator = nkeys.createOperator();
    const account = nkeys.createAccount();
    const user = nkeys.createUser();
    const system = nkeys.createAccount();
    const opJwt = signJwt({ iss: operator.getPublicKey(), sub: operator.getPublicKey(), name: 'lars-test', nats: { type: 'operator', version: 2 } }, operator);
    const limits = { subs: -1, data: -1, payload: -1, imports: -1, exports: -1, wildcards: true, conn: -1, leaf: -1, mem_storage: -1, disk_storage: -1, streams: -1, consumer: -1 };
    const accJwt = signJwt({ iss: operator.getPublicKey(), sub: account.getPublicKey(), name: 'lars', nats: { limits, default_permissions: { pub: {}, sub: {} }, type: 'account', version: 2 } }, operator);
    const sysJwt = signJwt({ iss: operator.getPublicKey(), sub: system.getPublicKey(), name: 'SYS', nats: { limits: { subs: -1, data: -1, payload: -1, imports: -1, exports: -1, wildcards: true, conn: -1, leaf: -1 }, type: 'account', version: 2 } }, operator);
    const userJwt = signJwt({ iss: account.getPublicKey(), sub: user.getPublicKey(), name: 'lars-user', nats: { pub: {}, sub: {}, subs: -1, data: -1, payload: -1, type: 'user', version: 2 } }, account);
    writeFileSync(join(dir, 'creds.conf'), `operator: "${opJwt}"\nsystem_account: ${system.getPublicKey()}\nresolver: MEMORY\nresolver_preload: {\n  ${account.getPublicKey()}: "${accJwt}"\n  ${system.getPublicKey()}: "${sysJwt}"\n}\n`);
    credsFile = join(dir, 'user.creds');
    writeFileSync(
      credsFile,
      `-----BEGIN NATS USER JWT-----\n${userJwt}\n------END NATS USER JWT------\n\n************************* IMPORTANT *************************\nNKEY Seed printed below can be used to sign and prove identity.\n\n-----BEGIN USER NKEY SEED-----\n${seedOf(user)}\n------END USER NKEY SEED------\n`,
    );

    const tlsFiles = { ca: readFileSync(join(dir, 'ca.pem'), 'utf8'), cert: readFileSync(join(dir, 'client.pem'), 'utf8'), key: readFileSync(join(dir, 'client.key'), 'utf8') };
    const credsText = readFileSync(credsFile, 'utf8');
    const opened = await Promise.allSettled([
      openSite(join(dir, 'users.conf'), { user: 'admin', pass: PASSWORDS.LARS_ADMIN_PASSWORD }, { user: 'route-node', pass: PASSWORDS.LARS_NODE_PASSWORD }),
      openSite(join(dir, 'token.conf'), { token: TOKEN }, { token: TOKEN }),
      openSite(join(dir, 'tls.conf'), { user: 'admin', pass: PASSWORDS.LARS_ADMIN_PASSWORD, tls: tlsFiles }, { user: 'route-node', pass: PASSWORDS.LARS_NODE_PASSWORD, tls: tlsFiles }),
      openSite(join(dir, 'creds.conf'), { creds: credsText }, { creds: credsText }),
    ]);
    // the sites that started are closed by after() even when another did not start
    [users, token, tls, creds] = opened.map((r) => (r.status === 'fulfilled' ? r.value : undefined));
    for (const r of opened) if (r.status === 'rejected') throw r.reason;
  });

  after(async () => {
    await Promise.all([users, token, tls, creds].map(closeSite));
    restoreEnv?.();
    rmSync(dir, { recursive: true, force: true });
  });

  it('nats auth - user and password from the SDK: options, environment, URL', async () => {
    const s = users!;
    await agentWorks(s, { servers: s.url, user: 'agent', pass: PASSWORDS.LARS_AGENT_PASSWORD });
    await agentWorks(s, { servers: s.url.replace('nats://', `nats://agent:${PASSWORDS.LARS_AGENT_PASSWORD}@`) });
    setEnv({ LARS_NATS_URL: s.url, LARS_NATS_USER: 'agent', LARS_NATS_PASS: PASSWORDS.LARS_AGENT_PASSWORD });
    await agentWorks(s, {});
    // an option given wins over the environment: a wrong password in the options is refused
    const e = await refusal(createAgent({ servers: s.url, user: 'agent', pass: 'wrong-secret-1' }));
    expect(e).to.be.instanceOf(NatsAuthError);
    expect(e.message).not.to.contain('wrong-secret-1');
    expect(e.message).to.contain('as user "agent"').and.contain('createAgent').and.not.contain('--nats-user');
  });

  it('nats auth - a wrong password in the URL is refused and never printed, from the SDK and the CLI', async () => {
    const s = users!;
    const bad = s.url.replace('nats://', 'nats://admin:wrong-secret-2@');
    const e = await refusal(createAgent({ servers: bad }));
    expect(e).to.be.instanceOf(NatsAuthError);
    expect(e.message).to.contain(`nats://admin:***@127.0.0.1:${s.server.port}`).and.not.contain('wrong-secret-2');
    const r = await lars(['route', 'ls', '--nats', bad], { LARS_PARTITIONS: String(PARTITIONS) });
    expect(r.code).to.equal(1);
    expect(r.stdout + r.stderr).not.to.contain('wrong-secret-2');
    expect(r.stderr.trim().split('\n')).to.have.length(1);
    expect(r.stderr).to.contain(`NATS at nats://admin:***@127.0.0.1:${s.server.port} refused the credentials`).and.contain('--nats-user');
    // and from the environment's password
    const r2 = await lars(['route', 'ls'], { LARS_NATS_URL: s.url, LARS_NATS_USER: 'admin', LARS_NATS_PASS: 'wrong-secret-3', LARS_PARTITIONS: String(PARTITIONS) });
    expect(r2.code).to.equal(1);
    expect(r2.stdout + r2.stderr).not.to.contain('wrong-secret-3');
    expect(r2.stderr).to.contain('as user "admin"');
  });

  it('nats auth - user and password from the CLI: environment, flags, URL', async () => {
    const s = users!;
    await routeLsWorks({ LARS_NATS_URL: s.url, LARS_NATS_USER: 'admin', LARS_NATS_PASS: PASSWORDS.LARS_ADMIN_PASSWORD });
    await routeLsWorks({}, ['--nats', s.url, '--nats-user', 'admin', '--nats-pass', PASSWORDS.LARS_ADMIN_PASSWORD]);
    await routeLsWorks({}, ['--nats', s.url.replace('nats://', `nats://admin:${PASSWORDS.LARS_ADMIN_PASSWORD}@`)]);
  });

  it('nats auth - an NKey seed file, from the SDK (option and environment) and the CLI', async () => {
    const s = users!;
    await agentWorks(s, { servers: s.url, nkeySeedFile: join(dir, 'agent.nk') });
    await agentWorks(s, { servers: s.url, nkeySeed: seedOf(agentUser) });
    setEnv({ LARS_NATS_NKEY: join(dir, 'agent.nk') });
    await agentWorks(s, { servers: s.url });
    await routeLsWorks({ LARS_NATS_URL: s.url, LARS_NATS_NKEY: join(dir, 'admin.nk') });
    await routeLsWorks({}, ['--nats', s.url, '--nats-nkey', join(dir, 'admin.nk')]);
    // an NKey the server does not know
    const stranger = join(dir, 'stranger.nk');
    writeFileSync(stranger, seedOf(nkeys.createUser()));
    const r = await lars(['route', 'ls', '--nats', s.url, '--nats-nkey', stranger], { LARS_PARTITIONS: String(PARTITIONS) });
    expect(r.code).to.equal(1);
    expect(r.stderr).to.match(/refused the credentials \(authorization violation; with the NKey U[A-Z2-7]+\)/);
    expect(r.stderr).not.to.contain(readFileSync(stranger, 'utf8').trim());
  });

  it('nats auth - registerSelf logs in as createAgent does, from its heartbeat thread too (NKey file, then the environment)', async () => {
    const s = users!;
    const inRoute = (ip: string) => () => s.node.route(78, 1)?.snapshot(Date.now()).hosts.some((h) => h.ip === ip);
    const reg = await registerSelf({ servers: s.url, nkeySeedFile: join(dir, 'agent.nk'), prefix: 'lars', modid: 78, cmdid: 1, ip: '127.0.0.78', port: 9000, ttlMs: 5000 });
    await waitFor(inRoute('127.0.0.78'), { what: 'the host registered with an NKey in the route' });
    await reg.stop({ drainMs: 0 });
    setEnv({ LARS_NATS_USER: 'agent', LARS_NATS_PASS: PASSWORDS.LARS_AGENT_PASSWORD });
    const reg2 = await registerSelf({ servers: s.url, prefix: 'lars', modid: 78, cmdid: 1, ip: '127.0.0.79', port: 9000, ttlMs: 5000 });
    await waitFor(inRoute('127.0.0.79'), { what: 'the host registered with the environment login in the route' });
    await reg2.stop({ drainMs: 0 });
    const e = await refusal(registerSelf({ servers: s.url, user: 'agent', pass: 'wrong-secret-5', prefix: 'lars', modid: 78, cmdid: 1, ip: '127.0.0.80', port: 9000, ttlMs: 5000 }));
    expect(e.message).to.contain('refused the credentials').and.not.contain('wrong-secret-5');
  });

  it('nats auth - a token, from the SDK (option, environment, URL) and the CLI (flag, environment, URL)', async () => {
    const s = token!;
    await agentWorks(s, { servers: s.url, token: TOKEN });
    await agentWorks(s, { servers: s.url.replace('nats://', `nats://${TOKEN}@`) });
    await routeLsWorks({ LARS_NATS_URL: s.url, LARS_NATS_TOKEN: TOKEN });
    await routeLsWorks({}, ['--nats', s.url, '--nats-token', TOKEN]);
    await routeLsWorks({}, ['--nats', s.url.replace('nats://', `nats://${TOKEN}@`)]);
    const r = await lars(['route', 'ls', '--nats', s.url.replace('nats://', 'nats://not-the-token@')], { LARS_PARTITIONS: String(PARTITIONS) });
    expect(r.code).to.equal(1);
    expect(r.stderr).to.contain(`NATS at nats://***@127.0.0.1:${s.server.port} refused the credentials (authorization violation; with a token)`);
    expect(r.stdout + r.stderr).not.to.contain('not-the-token');
    // last: the CLI's children inherit this process' environment
    setEnv({ LARS_NATS_TOKEN: TOKEN });
    await agentWorks(s, { servers: s.url });
  });

  it('nats auth - TLS with a client certificate the server verifies, from the SDK (files, PEM, environment) and the CLI', async () => {
    const s = tls!;
    const files = { caFile: join(dir, 'ca.pem'), certFile: join(dir, 'client.pem'), keyFile: join(dir, 'client.key') };
    await agentWorks(s, { servers: s.url, user: 'agent', pass: PASSWORDS.LARS_AGENT_PASSWORD, tls: files });
    await agentWorks(s, { servers: s.url, user: 'agent', pass: PASSWORDS.LARS_AGENT_PASSWORD, tls: { ca: readFileSync(files.caFile, 'utf8'), cert: readFileSync(files.certFile, 'utf8'), key: readFileSync(files.keyFile, 'utf8') } });
    setEnv({ LARS_NATS_TLS_CA: files.caFile, LARS_NATS_TLS_CERT: files.certFile, LARS_NATS_TLS_KEY: files.keyFile });
    await agentWorks(s, { servers: s.url, user: 'agent', pass: PASSWORDS.LARS_AGENT_PASSWORD });
    await routeLsWorks({ LARS_NATS_URL: s.url, LARS_NATS_USER: 'admin', LARS_NATS_PASS: PASSWORDS.LARS_ADMIN_PASSWORD, LARS_NATS_TLS_CA: files.caFile, LARS_NATS_TLS_CERT: files.certFile, LARS_NATS_TLS_KEY: files.keyFile });
    // without a client certificate the server does not let the connection in; without the CA the client does not trust the server
    let e = await refusal(createAgent({ servers: s.url, user: 'agent', pass: PASSWORDS.LARS_AGENT_PASSWORD, tls: { caFile: files.caFile } }));
    expect(e).to.be.instanceOf(NatsUnreachableError);
    expect(e.message).to.contain("it asks for a client certificate").and.contain("tls.certFile");
    e = await refusal(createAgent({ servers: s.url, user: 'agent', pass: PASSWORDS.LARS_AGENT_PASSWORD, tls: { certFile: files.certFile, keyFile: files.keyFile } }));
    expect(e).to.be.instanceOf(NatsUnreachableError);
    expect(e.message).to.contain("the server's certificate is not trusted").and.contain('tls.caFile');
    const r = await lars(['route', 'ls'], { LARS_NATS_URL: s.url, LARS_NATS_USER: 'admin', LARS_NATS_PASS: PASSWORDS.LARS_ADMIN_PASSWORD, LARS_NATS_TLS_CA: files.caFile, LARS_NATS_TLS_CERT: '', LARS_NATS_TLS_KEY: '', LARS_PARTITIONS: String(PARTITIONS) });
    expect(r.code).to.equal(1);
    expect(r.stderr, r.stderr).to.contain("it asks for a client certificate").and.contain("--nats-tls-cert");
  });

  it('nats auth - a .creds file on a server in operator mode, from the SDK (option, environment) and the CLI', async () => {
    const s = creds!;
    await agentWorks(s, { servers: s.url, credsFile });
    setEnv({ LARS_NATS_CREDS: credsFile });
    await agentWorks(s, { servers: s.url });
    await routeLsWorks({ LARS_NATS_URL: s.url, LARS_NATS_CREDS: credsFile });
    await routeLsWorks({}, ['--nats', s.url, '--nats-creds', credsFile]);
  });

  it('nats auth - the sidecar logs in from its config (NKey) and answers picks', async () => {
    const s = users!;
    const httpPort = await freePort();
    const live = larsLive(['agent', '--udp-ports', 'off', '--http-port', String(httpPort), '--nats', s.url, '--prefix', 'lars', '--partitions', String(PARTITIONS)], { LARS_NATS_NKEY: join(dir, 'agent.nk'), LARS_LOG_FORMAT: 'json' });
    try {
      await waitFor(() => live.errLines.some((l) => l.startsWith('lars agent: ')) || live.child.exitCode !== null, { what: 'lars agent ready', timeoutMs: 30_000 });
      expect(live.child.exitCode, live.errLines.join('\n')).to.equal(null);
      const res = await fetch(`http://127.0.0.1:${httpPort}/v1/host?modid=${MODID}&cmdid=${CMDID}`);
      expect(res.status).to.equal(200);
      expect(await res.json()).to.deep.include({ ip: '10.7.0.1', port: 80 });
    } finally {
      live.child.kill('SIGTERM');
      expect(await live.exited, live.errLines.join('\n')).to.equal(0);
    }
    // a wrong password: one line, the password not in it
    const bad = larsLive(['agent', '--udp-ports', 'off', '--http-port', String(httpPort), '--nats', s.url.replace('nats://', 'nats://agent:wrong-secret-4@'), '--prefix', 'lars'], {});
    expect(await bad.exited).to.equal(1);
    expect(bad.errLines.join('\n')).to.contain('refused the credentials').and.not.contain('wrong-secret-4');
  });
});
