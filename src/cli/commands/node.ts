/** `lars node`: runs a route node until stopped. */
import { connectNats } from '../../nats/connect.ts';
import { RouteNode } from '../../node/route-node.ts';
import { createLogger } from '../../log.ts';
import { ensureStreams } from '../../streams.ts';
import { StaticOwnership } from '../../node/ownership.ts';
import { UsageError } from '../../errors.ts';
import type { Command } from '../command.ts';

export const nodeCommand: Command = {
  name: 'node',
  summary: 'run a route node (route actors for the partitions it owns)',
  usage: 'lars node [--own <partitions>] [flags]',
  flags: {
    own: { help: 'partitions this node owns, e.g. 0-31,40 (default: all); split them between nodes until cluster ownership runs' },
  },
  async run(_args, flags, ctx) {
    const cfg = ctx.config;
    const own = typeof flags['own'] === 'string' ? parsePartitions(flags['own'], cfg.partitions) : undefined;
    const log = createLogger({ node: cfg.nodeId, level: cfg.logLevel });
    const nc = await connectNats({ url: cfg.natsUrl, name: `lars-node-${cfg.nodeId}` });
    const ownership = own ? new StaticOwnership(own) : undefined;
    const node = await RouteNode.start({ nc, nodeId: cfg.nodeId, prefix: cfg.prefix, partitions: cfg.partitions, log, ownership, onStart: async (c, n) => void (await ensureStreams(c, n)) });
    log.info({ nats: cfg.natsUrl, prefix: cfg.prefix, partitions: cfg.partitions }, 'route node ready; Ctrl-C to stop');
    await ctx.stopSignal;
    await node.close();
    await nc.drain().catch(() => undefined);
    return 0;
  },
};

/** `0-31,40` → [0..31, 40], each within 0..partitions-1. */
export function parsePartitions(spec: string, partitions: number): number[] {
  const out = new Set<number>();
  for (const part of spec.split(',')) {
    const m = /^(\d+)(?:-(\d+))?$/.exec(part.trim());
    if (!m) throw new UsageError(`--own takes partition numbers and ranges like 0-31,40, got ${JSON.stringify(part)}`);
    const a = Number(m[1]);
    const b = m[2] === undefined ? a : Number(m[2]);
    if (a > b || b >= partitions) throw new UsageError(`--own range ${part} is outside 0..${partitions - 1}`);
    for (let p = a; p <= b; p++) out.add(p);
  }
  return [...out].sort((x, y) => x - y);
}
