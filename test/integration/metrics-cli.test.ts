import { expect } from 'chai';
import { randomBytes } from 'node:crypto';
import { startNatsServer, type NatsServer } from '../../src/natsd.ts';
import { parsePrometheusText, sampleValue } from '../../src/metrics/parse.ts';
import { larsLive } from '../helpers/cli.ts';
import { waitFor } from '../helpers/wait.ts';
import { freePort } from '../helpers/clickhouse-server.ts';


async function status(url: string): Promise<number> {
  try {
    return (await fetch(url)).status;
  } catch {
    return 0;
  }
}

describe('metrics - lars node --http (real nats-server, the lars command)', function () {
  this.timeout(60_000);
  let server: NatsServer;
  before(async () => {
    server = await startNatsServer();
  });
  after(async () => {
    await server.stop();
  });

  it('metrics - lars node --http <port> serves health and metrics until stopped', async () => {
    const port = await freePort();
    const prefix = `t${randomBytes(4).toString('hex')}`;
    const p = larsLive(['node', '--http', String(port), '--own', '0-7', '--partitions', '8'], { LARS_NATS_URL: server.url, LARS_PREFIX: prefix, LARS_NODE_ID: 'cli-node' });
    try {
      await waitFor(async () => (await status(`http://127.0.0.1:${port}/readyz`)) === 200, { what: 'lars node ready', timeoutMs: 30_000 });
      const m = parsePrometheusText(await (await fetch(`http://127.0.0.1:${port}/metrics`)).text());
      expect(sampleValue(m, 'lars_partitions_owned', { node: 'cli-node' })).to.equal(8);
      expect(sampleValue(m, 'lars_nats_connected')).to.equal(1);
      expect((await fetch(`http://127.0.0.1:${port}/healthz`)).status).to.equal(200);
    } finally {
      p.child.kill('SIGTERM');
    }
    expect(await p.exited, p.errLines.join('\n')).to.equal(0);
    expect(p.errLines.join('\n')).to.include('stopping HTTP server');
    expect(await status(`http://127.0.0.1:${port}/healthz`)).to.equal(0);
  });
});
