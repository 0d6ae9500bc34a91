import { expect } from 'chai';
import { EventEmitter } from 'node:events';
import { Lifecycle, sameAncestors, watchedAncestors, type ParentWatch, type SignalSource } from '../../src/lib/lifecycle.ts';

class FakeSignals extends EventEmitter implements SignalSource {
  send(sig: 'SIGINT' | 'SIGTERM'): void {
    this.emit(sig, sig);
  }
}

/** npx (pid 40) → sh -c (pid 41) → lars; a plain supervisor (pid 50) → lars. */
const procs = new Map<number, { ppid: number; comm: string }>([
  [40, { ppid: 30, comm: 'node' }],
  [41, { ppid: 40, comm: 'sh' }],
  [50, { ppid: 1, comm: 'systemd' }],
]);
const info = (pid: number) => procs.get(pid);

describe('lifecycle - a command stops with its parent', () => {
  it('lifecycle - the watched ancestors: the parent, and through a shell its parent; nothing under init', () => {
    expect(watchedAncestors(41, info)).to.deep.equal([41, 40]);
    expect(watchedAncestors(50, info)).to.deep.equal([50]);
    expect(watchedAncestors(1, info)).to.deep.equal([]);
    expect(watchedAncestors(0, info)).to.deep.equal([]);
    // a shell started by init itself: only the shell
    expect(watchedAncestors(60, () => ({ ppid: 1, comm: 'bash' }))).to.deep.equal([60]);
  });

  it('lifecycle - the ancestors change when the parent goes (handed to init) or the shell loses its parent (npx killed)', () => {
    expect(sameAncestors([41, 40], 41, info)).to.equal(true);
    expect(sameAncestors([41, 40], 1, info)).to.equal(false);
    expect(sameAncestors([41, 40], 41, () => ({ ppid: 1, comm: 'sh' }))).to.equal(false);
    // the shell unreadable for a moment: the direct parent decides
    expect(sameAncestors([41, 40], 41, () => undefined)).to.equal(true);
    expect(sameAncestors([], 1, info)).to.equal(true);
  });

  it('lifecycle - a parent gone is a SIGTERM: announced once, the stop path runs, a later signal forces the exit', async () => {
    const notes: string[] = [];
    const codes: number[] = [];
    const signals = new FakeSignals();
    let alive = true;
    const parent: ParentWatch = { ancestors: () => [41, 40], same: () => alive, intervalMs: 5 };
    const life = new Lifecycle({ note: (l) => notes.push(l), signals, exit: (c) => codes.push(c), deadlineMs: 60_000, parent });
    const order: string[] = [];
    life.add('console', () => order.push('console'));
    let stopped = false;
    void life.stopped.then(() => (stopped = true));
    await new Promise((r) => setTimeout(r, 30));
    expect(stopped, 'stopped while the parent lives').to.equal(false);
    alive = false;
    await life.stopped;
    expect(notes).to.deep.equal(['parent process 40 (through shell 41) is gone: stopping as on SIGTERM']);
    signals.send('SIGTERM');
    expect(codes).to.deep.equal([130]);
    await life.shutdown();
    expect(order).to.deep.equal(['console']);
  });

  it('lifecycle - no watch with parent: false, or when there is no parent to watch', async () => {
    for (const parent of [false as const, { ancestors: () => [], same: () => false, intervalMs: 5 }]) {
      const notes: string[] = [];
      const life = new Lifecycle({ note: (l) => notes.push(l), signals: new FakeSignals(), exit: () => undefined, parent });
      let stopped = false;
      void life.stopped.then(() => (stopped = true));
      await new Promise((r) => setTimeout(r, 30));
      expect(stopped).to.equal(false);
      expect(notes).to.deep.equal([]);
      await life.shutdown();
    }
  });
});
