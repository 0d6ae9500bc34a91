/** Noise floor of the `core` group: one core-NATS hop between two connections of this process. */
import { epochMs, percentile, sleep } from '../_common.ts';
import type { Metric } from '../lib.ts';
import { ms } from '../_harness.ts';
import { log, type CoreContext } from './setup.ts';

/** 300 messages 2-5 ms apart: publish -> subscriber callback, loopback, otherwise idle. */
export async function benchHop(ctx: CoreContext): Promise<Metric[]> {
  const a = await ctx.connection('bench-core-hop-pub');
  const b = await ctx.connection('bench-core-hop-sub');
  const d: number[] = [];
  const dec = new TextDecoder();
  const sub = b.subscribe('bench.hop', {
    callback: (_e, m) => {
      d.push(epochMs() - Number(dec.decode(m.data)));
    },
  });
  await b.flush();
  for (let i = 0; i < 300; i++) {
    a.publish('bench.hop', String(epochMs()));
    await sleep(2 + Math.random() * 3);
  }
  await a.flush();
  await sleep(50);
  sub.unsubscribe();
  log(`one NATS hop: p50 ${percentile(d, 50).toFixed(3)} ms, p99 ${percentile(d, 99).toFixed(3)} ms, max ${Math.max(...d).toFixed(3)} ms`);
  return [
    { name: 'nats_hop_p50_ms', value: ms(percentile(d, 50)), unit: 'ms', note: 'noise floor: publish -> subscriber callback, loopback, idle' },
    { name: 'nats_hop_p99_ms', value: ms(percentile(d, 99)), unit: 'ms', note: `${d.length} messages 2-5 ms apart` },
  ];
}
