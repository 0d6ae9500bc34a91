import { expect } from 'chai';
import { EventEmitter } from 'node:events';
import { Lifecycle, withLifecycle, type SignalSource } from '../../src/lib/lifecycle.ts';
import { defaultConfig } from '../../src/lib/config.ts';

class FakeSignals extends EventEmitter implements SignalSource {
  send(sig: 'SIGINT' | 'SIGTERM'): void {
    this.emit(sig, sig);
  }
}

/** A start that fails after two steps were registered: what the notes say, and whether the steps ran. */
async function failedStart(opts: { debug?: boolean; signal?: boolean }): Promise<{ notes: string[]; stopped: string[] }> {
  const notes: string[] = [];
  const stopped: string[] = [];
  const signals = new FakeSignals();
  const life = new Lifecycle({ note: (l) => notes.push(l), signals, exit: () => undefined, debug: opts.debug });
  life.add('NATS connection', () => void stopped.push('NATS connection'));
  life.add('connection watch', () => {
    stopped.push('connection watch');
    throw new Error('already gone');
  });
  if (opts.signal) signals.send('SIGTERM');
  await life.step('HTTP server', () => void stopped.push('HTTP server'));
  await life.shutdown();
  return { notes, stopped };
}

describe('lifecycle - a failed start says one thing: its error', () => {
  it('lifecycle - steps of a shutdown nobody asked for run without a word', async () => {
    const r = await failedStart({});
    expect(r.stopped).to.deep.equal(['HTTP server', 'connection watch', 'NATS connection']);
    expect(r.notes).to.deep.equal([]);
  });

  it('lifecycle - at log level debug they are announced, failures included', async () => {
    const r = await failedStart({ debug: true });
    expect(r.notes).to.deep.equal(['stopping HTTP server…', 'stopping connection watch…', 'stopping connection watch failed: already gone', 'stopping NATS connection…']);
  });

  it('lifecycle - a stop asked for by a signal is announced as before', async () => {
    const r = await failedStart({ signal: true });
    expect(r.notes).to.deep.equal(['SIGTERM: stopping (again to force)', 'stopping HTTP server…', 'stopping connection watch…', 'stopping connection watch failed: already gone', 'stopping NATS connection…']);
  });

  it("lifecycle - withLifecycle takes debug from the command's log level", async () => {
    const run = async (logLevel: string): Promise<string[]> => {
      const notes: string[] = [];
      const ctx = { stopSignal: new Promise<void>(() => undefined), config: { ...defaultConfig(), logLevel } };
      const err = await withLifecycle(
        ctx,
        async (life) => {
          life.add('NATS connection', () => undefined);
          throw new Error('JetStream is not enabled');
        },
        { note: (l) => notes.push(l), signals: new FakeSignals(), exit: () => undefined },
      ).then(
        () => undefined,
        (e: unknown) => e,
      );
      expect((err as Error).message).to.equal('JetStream is not enabled');
      return notes;
    };
    expect(await run('info')).to.deep.equal([]);
    expect(await run('debug')).to.deep.equal(['stopping NATS connection…']);
  });
});
