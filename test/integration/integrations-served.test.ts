import { expect } from 'chai';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { useCluster, type TestCluster } from '../helpers/cluster.ts';
import { waitFor } from '../helpers/wait.ts';
import { reportServed } from '../../src/integrations/http-server.ts';
import { tryDecode } from '../../schemas/codec.ts';

describe('integrations - hosts report what they served (real nats-server and route node)', function () {
  this.timeout(30_000);
  const cluster = useCluster();
  let c: TestCluster;
  const servers: http.Server[] = [];
  beforeEach(() => (c = cluster()));
  afterEach(async () => {
    for (const s of servers.splice(0)) await new Promise((r) => s.close(r));
  });

  it('served - an HTTP host answering 500 to callers without the SDK is ejected on its own reports, marked server side', async () => {
    const served = await c.agent({ side: 'server', agentId: 'served-http' });
    const failing = new Set<number>();
    const ports: number[] = [];
    for (let i = 0; i < 3; i++) {
      const s = http.createServer();
      await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
      const port = (s.address() as AddressInfo).port;
      s.on(
        'request',
        reportServed(
          (req, res) => {
            req.resume();
            res.writeHead(failing.has(port) ? 500 : 200);
            res.end();
          },
          { reporter: served, modid: 21, cmdid: 1, host: { ip: '127.0.0.1', port } },
        ),
      );
      servers.push(s);
      ports.push(port);
    }
    await c.addRoute(21, 1, ports.map((port) => ({ ip: '127.0.0.1', port, weight: 100 })));
    await c.published(21, 1);
    const sides: unknown[] = [];
    const spy = c.nc.subscribe(c.n.reportAll, { callback: (_e, m) => void sides.push((tryDecode(m.data) as { value?: { side?: unknown } }).value?.side) });
    failing.add(ports[0]!);
    // a caller with no SDK: plain requests to every host in turn
    for (let i = 0; i < 60; i++) await fetch(`http://127.0.0.1:${ports[i % 3]!}/`).then((r) => r.arrayBuffer());
    await served.flush();
    const s = await waitFor(() => c.latest(21, 1)?.hosts.find((h) => h.port === ports[0] && h.state === 'overloaded') && c.latest(21, 1), { what: 'the failing host ejected' });
    expect(s.hosts.filter((h) => h.port !== ports[0]).map((h) => h.state)).to.deep.equal(['healthy', 'healthy']);
    spy.unsubscribe();
    expect(sides.length).to.be.greaterThan(0);
    expect(new Set(sides)).to.deep.equal(new Set(['server']));
  });
});
