import { expect } from 'chai';
import fc from 'fast-check';
import { TickSchedule } from '../../src/node/tick-schedule.ts';

describe('tick schedule - which routes a node ticks', () => {
  it('tick schedule - take gives the touched items and those due, each once; rescheduled and removed items are not given at their old times', () => {
    const s = new TickSchedule<string>();
    s.set('a', 100);
    s.set('b', 50);
    s.set('c', 300);
    s.touch('c');
    s.touch('c');
    s.set('d', 200);
    s.set('d', 400);
    s.set('e', 10);
    s.remove('e');
    expect(s.take(100).sort()).to.deep.equal(['a', 'b', 'c']);
    // c was touched: its time of 300 went with the tick
    expect(s.take(300)).to.deep.equal([]);
    expect(s.take(400)).to.deep.equal(['d']);
    expect(s.size).to.equal(0);
    s.set('f', -Infinity);
    s.set('g', Infinity);
    expect(s.take(0)).to.deep.equal(['f']);
    expect(s.size).to.equal(0);
    // rescheduled thousands of times: the old entries are dropped on the way, the last time holds
    for (let i = 3000; i > 0; i--) s.set('h', i);
    s.set('i', 2);
    expect(s.take(1)).to.deep.equal(['h']);
    expect(s.take(5000)).to.deep.equal(['i']);
  });

  it('tick schedule - against a plain list under random sets, touches, removes and takes (the heap rebuilt on the way)', () => {
    const op = fc.oneof(
      fc.record({ k: fc.constant('set' as const), item: fc.integer({ min: 0, max: 40 }), at: fc.integer({ min: 0, max: 1000 }) }),
      fc.record({ k: fc.constant('touch' as const), item: fc.integer({ min: 0, max: 40 }) }),
      fc.record({ k: fc.constant('remove' as const), item: fc.integer({ min: 0, max: 40 }) }),
      fc.record({ k: fc.constant('take' as const), now: fc.integer({ min: 0, max: 1000 }) }),
    );
    fc.assert(
      fc.property(fc.array(op, { maxLength: 3000 }), (ops) => {
        const s = new TickSchedule<number>();
        const due = new Map<number, number>();
        const touched = new Set<number>();
        for (const o of ops) {
          if (o.k === 'set') {
            s.set(o.item, o.at);
            due.set(o.item, o.at);
          } else if (o.k === 'touch') {
            s.touch(o.item);
            touched.add(o.item);
          } else if (o.k === 'remove') {
            s.remove(o.item);
            due.delete(o.item);
            touched.delete(o.item);
          } else {
            const want = new Set(touched);
            for (const [item, at] of due) if (at <= o.now) want.add(item);
            for (const item of want) due.delete(item);
            touched.clear();
            const got = s.take(o.now);
            expect(got.length, 'each once').to.equal(new Set(got).size);
            expect([...got].sort((a, b) => a - b)).to.deep.equal([...want].sort((a, b) => a - b));
          }
        }
      }),
      { numRuns: 200 },
    );
  });
});
