import { expect } from 'chai';
import { retry } from '../../src/lib/retry.ts';

class Flaky extends Error {
  override name = 'Flaky';
}

describe('retry', () => {
  it('retry - retries what retryIf accepts until it succeeds, reporting each retry', async () => {
    const seen: number[] = [];
    let calls = 0;
    const v = await retry(
      async (attempt) => {
        calls++;
        if (attempt < 3) throw new Flaky(`try ${attempt}`);
        return 'ok';
      },
      { attempts: 5, minMs: 0, retryIf: (e) => e instanceof Flaky, onRetry: (_e, a) => void seen.push(a) },
    );
    expect(v).to.equal('ok');
    expect(calls).to.equal(3);
    expect(seen).to.deep.equal([1, 2]);
  });

  it('retry - an error retryIf refuses is thrown at once, as it was', async () => {
    let calls = 0;
    const boom = new Error('boom');
    const err = await retry(
      async () => {
        calls++;
        throw boom;
      },
      { attempts: 5, minMs: 0, retryIf: (e) => e instanceof Flaky },
    ).catch((e: unknown) => e);
    expect(err).to.equal(boom);
    expect(calls).to.equal(1);
  });

  it('retry - once the attempts are spent the last error is thrown', async () => {
    let calls = 0;
    const err = await retry(
      async (attempt) => {
        calls++;
        throw new Flaky(`try ${attempt}`);
      },
      { attempts: 4, minMs: 0 },
    ).catch((e: unknown) => e);
    expect(calls).to.equal(4);
    expect((err as Error).message).to.equal('try 4');
  });
});
