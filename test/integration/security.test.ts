/**
 * The shipped NATS permissions (deploy/nats/permissions.conf) on a real
 * nats-server: each role can do its job, and an agent's credentials cannot
 * write route state, write the registry or publish on a route subject.
 */
import { expect } from 'chai';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Kvm } from '@nats-io/kv';
import type { NatsServer } from '../../src/nats/natsd.ts';
import { connectNats, type NatsConnection } from '../../src/nats/connect.ts';
import { RouteNode } from '../../src/node/route-node.ts';
import { Registry } from '../../src/registry/registry.ts';
import { bindBucket } from '../../src/nats/buckets.ts';
import { registerSelf } from '../../src/agent/self-register.ts';
import { ensureStreams } from '../../src/nats/streams.ts';
import { createAgent, type Agent } from '../../src/agent/agent.ts';
import { names } from '../../schemas/subjects.ts';
import { encode } from '../../schemas/codec.ts';
import { waitFor } from '../helpers/wait.ts';
import { rolePasswords, setEnvironment, startPermissionsServer } from '../helpers/secured-nats.ts';
import { lars } from '../helpers/cli.ts';

const PASSWORDS = rolePasswords();

function connectAs(url: string, user: string, pass: string): Promise<NatsConnection> {
  return connectNats({ url, name: user, extra: { user, pass } });
}

/** Collects the asynchronous errors the server sends a connection (permission violations). */
function errorsOf(nc: NatsConnection): string[] {
  const out: string[] = [];
  void (async () => {
    for await (const s of nc.status()) {
      const e = s.type === 'error' ? (s as { error?: unknown }).error : undefined;
      if (e instanceof Error) out.push(`${e.name}: ${e.message}`);
    }
  })();
  return out;
}

describe('security - per-role NATS permissions from deploy/nats', function () {
  this.timeout(60_000);
  const n = names('lars');
  let dir: string;
  let server: NatsServer;
  let admin: NatsConnection;
  let nodeNc: NatsConnection;
  let node: RouteNode;
  let agentNc: NatsConnection;
  let agent: Agent;
  let restoreEnv: (() => void) | undefined;

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'lars-sec-'));
    restoreEnv = setEnvironment(PASSWORDS);
    server = await startPermissionsServer(dir);
    admin = await connectAs(server.url, 'admin', PASSWORDS.LARS_ADMIN_PASSWORD);
    const registry = await Registry.open(admin, n);
    // As `lars node` does at start: the agent's acknowledged report publishes need the REPORTS stream.
    await ensureStreams(admin, n, { reports: { maxBytes: 64 * 2 ** 20 }, events: { maxBytes: 16 * 2 ** 20 } });
    await registry.addHosts(7, 7, [{ ip: '10.1.0.1', port: 80, weight: 100 }, { ip: '10.1.0.2', port: 80, weight: 100 }], 'test', { profile: 'default', params: {} });
    nodeNc = await connectAs(server.url, 'route-node', PASSWORDS.LARS_NODE_PASSWORD);
    node = await RouteNode.start({ nc: nodeNc, nodeId: 'sec-node', prefix: 'lars', partitions: 8, tickMs: 25 });
    await node.settled();
    agentNc = await connectAs(server.url, 'agent', PASSWORDS.LARS_AGENT_PASSWORD);
    agent = await createAgent({ nc: agentNc, prefix: 'lars', partitions: 8, batchMaxDelayMs: 5 });
  });

  after(async () => {
    await agent?.close();
    await node?.close();
    for (const nc of [agentNc, nodeNc, admin]) await nc?.close().catch(() => undefined);
    await server?.stop();
    restoreEnv?.();
    rmSync(dir, { recursive: true, force: true });
  });

  it('security - an agent follows a route and its reports reach the route node', async () => {
    const h = await agent.getHost(7, 7);
    expect(h.ok).to.equal(true);
    const before = node.stats().reports;
    if (h.ok) for (let i = 0; i < 10; i++) agent.report(7, 7, h, 0, 5);
    await agent.flush();
    await waitFor(() => node.stats().reports >= before + 10, { what: 'reports at the node' });
  });

  it('security - an agent cannot publish on a route subject', async () => {
    const errors = errorsOf(agentNc);
    const seen: string[] = [];
    const spy = admin.subscribe(n.route(7, 7), { callback: (_e, m) => void seen.push(m.subject) });
    await admin.flush();
    agentNc.publish(n.route(7, 7), encode({ forged: true }));
    await waitFor(() => errors.some((e) => /permission/i.test(e) && e.includes(n.route(7, 7))), { what: 'permission violation for the route subject' });
    // A later legitimate message on the same subject arrives, the forged one never did.
    admin.publish(n.route(7, 7), encode({ marker: true }));
    await waitFor(() => seen.length >= 1, { what: 'the admin marker' });
    expect(seen).to.have.length(1);
    spy.unsubscribe();
  });

  it('security - an agent cannot write route state in the routes bucket', async () => {
    const kv = await new Kvm(agentNc).open(n.routesBucket, { bindOnly: true });
    let refused: unknown;
    try {
      await kv.put(n.routeKey(7, 7), encode({ forged: true }));
    } catch (err) {
      refused = err;
    }
    expect(refused, 'put must fail').to.be.instanceOf(Error);
    const adminKv = (await bindBucket(admin, n.routesBucket))!;
    const e = await adminKv.get(n.routeKey(7, 7));
    expect(e?.operation).to.equal('PUT');
    expect(new TextDecoder().decode(e!.value)).to.not.include('forged');
  });

  it('security - an agent cannot write the registry', async () => {
    let refused: unknown;
    try {
      const kv = await new Kvm(agentNc).open(n.registryBucket, { bindOnly: true });
      await kv.put(n.routeKey(7, 7), encode({ forged: true }));
    } catch (err) {
      refused = err;
    }
    expect(refused, 'registry write must fail').to.be.instanceOf(Error);
    const reg = await Registry.open(admin, n);
    const rec = await reg.get(7, 7);
    expect(rec?.entry.hosts.map((h) => h.ip)).to.deep.equal(['10.1.0.1', '10.1.0.2']);
  });

  it('security - the CLI takes credentials from its config: admin may write the registry, an agent may not', async () => {
    const base = { LARS_NATS_URL: server.url, LARS_PARTITIONS: '8' };
    const asAdmin = await lars(['route', 'add', '8', '8', '10.2.0.1:80', '--json'], { ...base, LARS_NATS_USER: 'admin', LARS_NATS_PASS: PASSWORDS.LARS_ADMIN_PASSWORD });
    expect(asAdmin.code, asAdmin.stderr).to.equal(0);
    const asAgent = await lars(['route', 'add', '8', '8', '10.2.0.2:80'], { ...base, LARS_NATS_USER: 'agent', LARS_NATS_PASS: PASSWORDS.LARS_AGENT_PASSWORD });
    expect(asAgent.code).to.equal(1);
    const anonymous = await lars(['route', 'ls'], base);
    expect(anonymous.code).to.equal(1);
    expect(anonymous.stderr).to.match(/authori[sz]ation/i);
    const reg = await Registry.open(admin, n);
    expect((await reg.get(8, 8))?.entry.hosts.map((h) => h.ip)).to.deep.equal(['10.2.0.1']);
  });

  it('security - an agent can register and deregister a host of its own in the self-registration bucket, not write the registry', async () => {
    const reg = await registerSelf({ nc: agentNc, prefix: 'lars', modid: 77, cmdid: 1, ip: '127.0.0.9', port: 9000, ttlMs: 5000 });
    await waitFor(() => node.route(77, 1)?.snapshot(Date.now()).hosts.some((h) => h.ip === '127.0.0.9'), { what: 'the self-registered host in the node' });
    await reg.stop({ drainMs: 0 });
    const kv = (await bindBucket(admin, n.selfRegBucket))!;
    expect(await kv.get(n.selfRegKey(77, 1, '127.0.0.9', 9000))).to.have.property('operation', 'DEL');
  });
});
