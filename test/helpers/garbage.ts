/** Floods every subject of a prefix with bad input of every kind, until stopped. */
import type { NatsConnection } from '../../src/nats/connect.ts';
import { partitionOf, type Names } from '../../schemas/subjects.ts';
import { encode } from '../../schemas/codec.ts';
import { PARTITIONS } from './cluster.ts';

export interface Flood {
  sent: number;
  stop(): Promise<void>;
}

export async function startGarbageFlood(nc: NatsConnection, n: Names, target: { modid: number; cmdid: number }, opts: { everyMs?: number } = {}): Promise<Flood> {
  const { modid, cmdid } = target;
  const p = partitionOf(modid, cmdid, PARTITIONS);
  const subj = n.report(p, modid, cmdid);
  const good = (over: Record<string, unknown> = {}) => ({ v: 1, sender: 'garbage', modid, cmdid, ts: Date.now(), hosts: [['10.0.0.1', 8000]], reports: [[0, 0, 1, 0]], ...over });
  const big = Array.from({ length: 10_001 }, () => [0, 0, 1, 0]);
  const unknownRoute = { modid: 999_999, cmdid: 7 };
  const cases: Array<[string, Uint8Array]> = [
    [subj, new Uint8Array([0xc1, 0xc1, 0xc1])], // malformed: never-used msgpack byte
    [subj, new Uint8Array([0x85, 0xa1, 0x76])], // malformed: truncated map
    [subj, encode(good({ modid: String(modid) }))], // wrong_type
    [subj, encode(good({ reports: [['a', 0, 1, 0]] }))], // wrong_type
    [subj, encode(good({ hosts: [['10.0.0.1', 70000]] }))], // out_of_range port
    [subj, encode(good({ reports: [[5, 0, 1, 0]] }))], // out_of_range host index
    [subj, encode(good({ reports: [[0, 0, -1, 0]] }))], // out_of_range latency
    [subj, encode(good({ reports: big }))], // oversize
    [subj, encode(good({ v: 2 }))], // bad_version
    [subj, encode(good({ hosts: [['192.168.200.200', 1]] }))], // unknown_host
    [n.report(p, modid, cmdid + 7), encode(good())], // subject_mismatch
    [n.report(partitionOf(unknownRoute.modid, unknownRoute.cmdid, PARTITIONS), unknownRoute.modid, unknownRoute.cmdid), encode(good(unknownRoute))], // unknown_route
    [n.route(modid, cmdid), new Uint8Array([0xc1, 0x00])], // garbage on the route subject (agents)
    [n.route(modid, cmdid), encode({ v: 1, hosts: 'x' })], // wrong shape on the route subject
    [n.event(modid, cmdid), new Uint8Array([0xff, 0xfe])], // garbage on the event subject
  ];
  const flood: Flood = {
    sent: 0,
    async stop() {
      clearInterval(timer);
      await nc.flush();
    },
  };
  const timer = setInterval(() => {
    for (const [s, d] of cases) {
      nc.publish(s, d);
      flood.sent++;
    }
  }, opts.everyMs ?? 5);
  return flood;
}
