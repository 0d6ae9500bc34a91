/**
 * `lars agent --threads N`: reports taken by several UDP threads all reach
 * the one agent and are acknowledged by JetStream, including those a thread
 * received just before the sidecar closed; a probing host's trial calls
 * come from one thread. Real nats-server and route node.
 */
import { expect } from 'chai';
import { createSocket } from 'node:dgram';
import { useCluster, type TestCluster } from '../helpers/cluster.ts';
import { waitFor } from '../helpers/wait.ts';
import { Sidecar } from '../../src/sidecar/sidecar.ts';
import { UdpThreads } from '../../src/sidecar/udp-threads.ts';
import { encodeGetHostRequest, encodeReportRequest, ipToInt, parseReply } from '../../src/sidecar/lars-wire.ts';

const THREADS = 3;

/** Sends `n` reports of `host` for the route from `sockets` sockets, a few at a time (loopback drops a burst beyond its buffer). */
async function sendReports(ports: number[], modid: number, cmdid: number, host: { ip: string; port: number }, n: number, sockets: number): Promise<void> {
  const socks = Array.from({ length: sockets }, () => createSocket('udp4'));
  const d = encodeReportRequest({ modid, cmdid, host: { ip: ipToInt(host.ip), port: host.port }, retcode: 0, latency_us: 1500 });
  try {
    for (let i = 0; i < n; i++) {
      socks[i % sockets]!.send(d, ports[i % ports.length]!, '127.0.0.1');
      if (i % 100 === 99) await new Promise((r) => setImmediate(r));
    }
  } finally {
    await Promise.all(socks.map((s) => new Promise<void>((r) => s.close(() => r()))));
  }
}

describe(`sidecar with ${THREADS} UDP threads (real nats-server and route node)`, function () {
  this.timeout(60_000);
  const cluster = useCluster();
  let c: TestCluster;
  beforeEach(() => {
    c = cluster();
  });

  it('sidecar-threads - reports read by several threads are all handed to the one agent and acknowledged, also those read just before close', async () => {
    await c.addRoute(11, 1, [{ ip: '127.0.3.1', port: 9300, weight: 100 }]);
    const sc = await Sidecar.start({ nc: await c.connection(), agent: { prefix: c.prefix, partitions: 8, batchMaxDelayMs: 5 }, udp: { ports: [0, 0] }, threads: THREADS });
    let closed = false;
    try {
      const t = sc.udp;
      expect(t).to.be.instanceOf(UdpThreads);
      const threads = t as UdpThreads;
      const n = 3000;
      await sendReports(threads.ports(), 11, 1, { ip: '127.0.3.1', port: 9300 }, n, 8);
      const received = await waitFor(() => {
        const r = threads.stats().reports;
        return r === n && r;
      }, { what: `${n} reports received`, explain: () => `${threads.stats().reports} received` }).catch(() => threads.stats().reports);
      expect(received, 'reports received (loopback may drop a few)').to.be.greaterThan(n * 0.9);
      const busy = threads.threadStats().filter((s) => s.reports > 0).length;
      expect(busy, 'threads that read reports').to.be.at.least(2);
      // the sidecar's flush: the threads hand over what they hold, then the agent's batches are acknowledged
      await sc.flush({ timeoutMs: 10_000 });
      const a = sc.agent.stats();
      expect([a.reports, a.pendingReports, a.droppedReports], 'reports, pending, dropped').to.deep.equal([received, 0, 0]);

      // a burst, then close at once: what the threads read is still reported and acknowledged
      await sendReports(threads.ports(), 11, 1, { ip: '127.0.3.1', port: 9300 }, 1000, 4);
      await sc.close();
      closed = true;
      const b = sc.agent.stats();
      expect(b.reports, 'reports in the agent: every one a thread read').to.equal(threads.stats().reports);
      expect([b.pendingReports, b.droppedReports], 'pending, dropped after close').to.deep.equal([0, 0]);
    } finally {
      if (!closed) await sc.close();
    }
  });

  it('sidecar-threads - a probing host gets trial calls from one thread only: at most probeTrials in flight for the agent', async () => {
    // every host but one ejected for good; the one is probing, with this sidecar as its trial agent
    const sc = await Sidecar.start({ nc: await c.connection(), agent: { prefix: c.prefix, partitions: 8, agentId: 'threads-trial', strategy: 'swrr' }, udp: { ports: [0] }, threads: THREADS });
    const sock = createSocket('udp4');
    try {
      const port = sc.udp!.ports()[0]!;
      const replies: Buffer[] = [];
      let probing = 0;
      sock.on('message', (m) => {
        replies.push(m);
        if ((parseReply(m)?.body as { host?: { ip: number } } | undefined)?.host?.ip === ipToInt('10.9.1.1')) probing++;
      });
      const { encode } = await import('../../schemas/codec.ts');
      let version = 1;
      const publish = (): void =>
        c.nc.publish(
          c.n.route(950, 1),
          encode({
            v: 1, sender: 'test', modid: 950, cmdid: 1, version: version++, ts: Date.now(), profile: 'default', panic: false, removed: false, probe_num: 10,
            hosts: [
              { ip: '10.9.1.1', port: 80, weight: 100, zone: null, state: 'probing', reason: 'consecutive_errors', since: 0, pick_weight: 100, trial_agent: 'threads-trial' },
              { ip: '10.9.1.2', port: 80, weight: 100, zone: null, state: 'healthy', reason: 'registered', since: 0, pick_weight: 100 },
            ],
          }),
        );
      const ask = (seq: number): void => void sock.send(encodeGetHostRequest({ seq, modid: 950, cmdid: 1 }), port, '127.0.0.1');
      // followed and loaded in every thread
      await waitFor(async () => {
        publish();
        replies.length = 0;
        ask(0);
        await waitFor(() => replies.length > 0, { what: 'a reply' });
        const b = parseReply(replies[0]!)?.body as { retcode: number } | undefined;
        return b?.retcode === 0;
      }, { what: 'route 950.1 loaded' });
      await waitFor(() => (sc.udp as UdpThreads).inSync(), { what: 'the route in every thread' });
      // 300 GetHosts and no report: the probing host's one trial call stays in flight
      // in rounds of 20 (a burst could overflow this client's receive buffer)
      replies.length = 0;
      for (let i = 1; i <= 300; i++) {
        ask(i);
        if (i % 20 === 0) await waitFor(() => replies.length >= i, { what: `${i} replies`, explain: () => `${replies.length}` });
      }
      const busy = (sc.udp as UdpThreads).threadStats().filter((s) => s.getHost > 0).length;
      expect(busy, 'threads that answered').to.be.at.least(2);
      expect(probing, 'trial calls to the probing host, from the start (one in flight, never reported)').to.equal(1);
    } finally {
      sock.close();
      await sc.close();
    }
  });
});
