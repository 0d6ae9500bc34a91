/** `lars node`: runs a route node until stopped. */
import { connectNats } from '../../nats/connect.ts';
import { RouteNode } from '../../node/route-node.ts';
import { createLogger } from '../../log.ts';
import type { Command } from '../command.ts';

export const nodeCommand: Command = {
  name: 'node',
  summary: 'run a route node (route actors for the partitions it owns)',
  usage: 'lars node [flags]',
  flags: {},
  async run(_args, _flags, ctx) {
    const cfg = ctx.config;
    const log = createLogger({ node: cfg.nodeId, level: cfg.logLevel });
    const nc = await connectNats({ url: cfg.natsUrl, name: `lars-node-${cfg.nodeId}` });
    const node = await RouteNode.start({ nc, nodeId: cfg.nodeId, prefix: cfg.prefix, partitions: cfg.partitions, log });
    log.info({ nats: cfg.natsUrl, prefix: cfg.prefix, partitions: cfg.partitions }, 'route node ready; Ctrl-C to stop');
    await ctx.stopSignal;
    await node.close();
    await nc.drain().catch(() => undefined);
    return 0;
  },
};
