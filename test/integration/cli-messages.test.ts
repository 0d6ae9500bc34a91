/**
 * What a person reads: a start-up that fails is one line on stderr with the
 * fix; a node's logs are a line per event of interest, a burst of lease
 * changes one line. The real `lars` binary against a real nats-server.
 */
import { expect } from 'chai';
import { startNatsServer } from '../../src/nats/natsd.ts';
import { freePort } from '../helpers/clickhouse-server.ts';
import { uniquePrefix } from '../helpers/cluster.ts';
import { lars, larsLive } from '../helpers/cli.ts';
import { waitFor } from '../helpers/wait.ts';
import { useNatsWithoutJetStream } from '../helpers/nats-no-js.ts';

describe('cli messages: one line per failure, one line per event (real nats-server)', function () {
  this.timeout(90_000);

  describe('a NATS server without JetStream', () => {
    const natsUrl = useNatsWithoutJetStream();
    let url: string;
    before(() => (url = natsUrl()));

    it('cli messages - node, agent, console and sink fail with exactly one line on stderr, naming the fix', async () => {
      const commands = [
        ['node'],
        ['agent', '--udp-ports', 'off', '--http-port', String(await freePort())],
        ['console', '--port', '0'],
        ['sink', '--clickhouse-url', 'http://127.0.0.1:1'],
      ];
      // the default log level, as a person runs them
      const results = await Promise.all(commands.map((c) => lars([...c, '--nats', url], { LARS_LOG_LEVEL: 'info' }, 30_000)));
      commands.forEach((c, i) => {
        const r = results[i]!;
        expect(r.code, `${c[0]}: ${r.stderr}`).to.equal(1);
        expect(r.stderr.split('\n').filter((l) => l !== ''), c[0]).to.deep.equal([`lars ${c[0]}: JetStream is not enabled on ${url}: start nats-server with -js`]);
      });
    });

    it('cli messages - at log level debug the shutdown after the failed start is shown, the error line last', async () => {
      const r = await lars(['node', '--nats', url, '--log-level', 'debug'], {}, 30_000);
      expect(r.code, r.stderr).to.equal(1);
      const lines = r.stderr.split('\n').filter((l) => l !== '');
      expect(lines).to.include('stopping NATS connection…');
      expect(lines.at(-1)).to.equal(`lars node: JetStream is not enabled on ${url}: start nats-server with -js`);
    });
  });

  it('cli messages - a node taking and handing over its leases logs one line for each burst, not one per partition', async () => {
    const server = await startNatsServer();
    const env = { LARS_NATS_URL: server.url, LARS_PREFIX: uniquePrefix(), LARS_PARTITIONS: '16', LARS_LOG_LEVEL: 'info', LARS_LOG_FORMAT: 'json' };
    const node = larsLive(['node', '--lease-ms', '1000'], env);
    type Line = { msg: string; level: number; count?: number; partitions?: string };
    const records = (): Line[] => node.lines.flatMap((l) => (l.startsWith('{') ? [JSON.parse(l) as Line] : []));
    const taken = () => records().filter((r) => r.msg.startsWith('partitions taken: '));
    try {
      await waitFor(() => taken().reduce((a, r) => a + (r.count ?? 0), 0) === 16, { what: 'all 16 leases taken', timeoutMs: 20_000 });
      await waitFor(() => records().some((r) => r.msg.startsWith('partitions acquired: ')), { what: 'the partitions acquired', timeoutMs: 20_000 });
      expect(records().filter((r) => r.msg === 'partition lease taken'), 'no line per partition at info').to.deep.equal([]);
      expect(taken().length, taken().map((r) => r.msg).join('\n')).to.be.at.most(2);
      if (taken().length === 1) expect(taken()[0]!.msg).to.equal('partitions taken: 16 (0-15): create');
    } finally {
      node.child.kill('SIGTERM');
      expect(await node.exited).to.equal(0);
      await server.stop();
    }
    const handed = records().filter((r) => r.msg.startsWith('partitions handed over'));
    expect(handed.map((r) => r.msg)).to.deep.equal(['partitions handed over: 16 (0-15)']);
    expect(records().filter((r) => /ready to hand over/.test(r.msg)), 'the per-partition handover at debug only').to.deep.equal([]);
    expect(node.errLines.filter((l) => l !== '' && !l.startsWith('SIGTERM') && !l.startsWith('stopping ')), 'stderr: the shutdown notes only').to.deep.equal([]);
  });
});
