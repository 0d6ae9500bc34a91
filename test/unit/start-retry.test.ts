import { expect } from 'chai';
import { TimeoutError } from '@nats-io/transport-node';
import { JetStreamApiError } from '@nats-io/jetstream';
import { settling, startWhenSettled } from '../../src/cli/start-retry.ts';
import { JetStreamDisabledError } from '../../src/lib/errors.ts';
import { silentLogger } from '../../src/lib/log.ts';

const apiError = (code: number): JetStreamApiError => new JetStreamApiError({ code: 503, err_code: code, description: 'x' });

describe('cli start retry', () => {
  it('start - timeouts and a cluster without a leader or placement are settling; a misconfiguration is not', () => {
    expect(settling(new TimeoutError())).to.equal(true);
    expect(settling(new Error('wrapped', { cause: new TimeoutError() }))).to.equal(true);
    expect(settling(apiError(10008))).to.equal(true);
    expect(settling(apiError(10005))).to.equal(true);
    expect(settling(apiError(10059))).to.equal(false);
    expect(settling(new JetStreamDisabledError('nats://x'))).to.equal(false);
    expect(settling(new Error('connection refused'))).to.equal(false);
  });

  it('start - retried while settling, then started; a misconfiguration fails at once; a stop ends the waiting', async () => {
    let n = 0;
    const v = await startWhenSettled('x', async () => (++n < 3 ? Promise.reject(new TimeoutError()) : 'up'), silentLogger());
    expect(v).to.equal('up');
    expect(n).to.equal(3);
    let m = 0;
    const bad = new Error('bad url');
    await startWhenSettled('x', async () => {
      m++;
      throw bad;
    }, silentLogger()).then(
      () => expect.fail('started'),
      (err: unknown) => expect(err).to.equal(bad),
    );
    expect(m).to.equal(1);
    let stop!: () => void;
    const stopped = new Promise<void>((r) => (stop = r));
    const p = startWhenSettled('x', async () => Promise.reject(new TimeoutError()), silentLogger(), stopped);
    setTimeout(stop, 50);
    await p.then(
      () => expect.fail('started'),
      (err: unknown) => expect(err).to.be.instanceOf(TimeoutError),
    );
  });
});
