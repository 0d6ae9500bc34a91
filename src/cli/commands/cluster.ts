/** `lars cluster status`: members, partitions per node, lease ages and report lag, from the cluster's buckets. */
import { connectNats, natsOptionsFromConfig } from '../../nats/connect.ts';
import { clusterStatus, type ClusterStatus } from '../../cluster/status.ts';
import { sinkWriters, type SinkWriter } from '../../analytics/writer-lease.ts';
import { UsageError } from '../../lib/errors.ts';
import { ExitCode } from '../exit.ts';
import type { Command, CommandGroup } from '../command.ts';
import { formatAge, formatDuration, renderTable } from '../table.ts';

/** Which sink writes each stream: one line (none when no sink ever ran under this prefix). */
export function formatSinkWriters(writers: readonly SinkWriter[] | undefined): string[] {
  if (writers === undefined) return [];
  const of = (stream: string): string => {
    const w = writers.find((x) => x.stream === stream);
    return w ? `${stream} by ${w.sink} (lease renewed ${formatDuration(w.renewedAgoMs)} ago)` : `${stream} by no sink`;
  };
  return ['', `sinks writing: ${of('reports')}; ${of('events')}`];
}

/** The status as text: a summary line, the members table, and the partitions with a problem. */
export function formatClusterStatus(s: ClusterStatus): string[] {
  const owned = s.partitionStates.filter((p) => p.owner !== undefined).length;
  const live = s.members.filter((m) => m.live).length;
  const head = `cluster ${s.prefix}: ${live} live member${live === 1 ? '' : 's'} of ${s.members.length}, ${owned} of ${s.partitions} partitions leased, ${s.healthy ? 'every partition owned' : `${s.problems.length} partition${s.problems.length === 1 ? '' : 's'} without a live owner`}`;
  const rows = s.members.map((m) => ({
    node: m.node,
    state: m.leaving ? 'leaving' : m.live ? 'live' : 'silent',
    started: formatAge(m.started, s.at),
    heartbeat: `${formatDuration(m.heartbeatAgeMs)} ago`,
    partitions: m.partitions.length,
    renewal: m.oldestRenewalAgeMs === undefined ? undefined : formatDuration(m.oldestRenewalAgeMs),
    rps: m.ingest?.reportsPerSec,
    pending: m.ingest?.pending,
    lag: m.lagMs === undefined ? undefined : formatDuration(m.lagMs),
  }));
  const lines = [
    head,
    ...renderTable(
      [
        { key: 'node' },
        { key: 'state' },
        { key: 'started' },
        { key: 'heartbeat', title: 'last heartbeat' },
        { key: 'partitions', align: 'right' },
        { key: 'renewal', title: 'oldest lease renewal', align: 'right' },
        { key: 'rps', title: 'reports/s', align: 'right' },
        { key: 'pending', title: 'pending batches', align: 'right' },
        { key: 'lag', align: 'right' },
      ],
      rows,
    ),
  ];
  if (s.problems.length > 0) {
    lines.push('', 'partitions without a live owner:');
    lines.push(
      ...renderTable(
        [{ key: 'partition', align: 'right' }, { key: 'owner' }, { key: 'lease', title: 'lease written', align: 'right' }, { key: 'problem' }],
        s.problems.map((p) => ({ partition: p.partition, owner: p.owner, lease: p.leaseAgeMs === undefined ? undefined : `${formatDuration(p.leaseAgeMs)} ago`, problem: p.problem })),
        { indent: '  ' },
      ),
    );
  }
  return lines;
}

export const clusterStatusCommand: Command = {
  name: 'status',
  summary: 'members, partitions per node, lease ages and report lag of the route nodes sharing partitions by leases; which sink writes each stream',
  usage: 'lars cluster status [--json]',
  flags: { json: { help: 'print machine-readable JSON instead of text', boolean: true } },
  examples: [
    ['lars cluster status', 'one line per route node, then any partition without a live owner'],
    ['lars cluster status --json', 'the same for scripts: exit 1 when a partition has no live owner'],
  ],
  async run(args, flags, ctx) {
    if (args.length > 0) throw new UsageError(`cluster status takes no arguments, got ${JSON.stringify(args.join(' '))}`);
    const nc = await connectNats({ ...natsOptionsFromConfig(ctx.config), name: 'lars-cli', reconnect: false });
    let s: ClusterStatus;
    let writers: SinkWriter[] | undefined;
    const now = ctx.now ? () => ctx.now!() : undefined;
    try {
      s = await clusterStatus(nc, { prefix: ctx.config.prefix, partitions: ctx.config.partitions, now });
      // A sink bucket that cannot be read leaves the sinks out; the route nodes' status stands.
      writers = await sinkWriters(nc, ctx.config.prefix, now).catch(() => undefined);
    } finally {
      await nc.close();
    }
    if (flags['json'] === true) ctx.out(JSON.stringify(writers === undefined ? s : { ...s, sinkWriters: writers }));
    else for (const l of [...formatClusterStatus(s), ...formatSinkWriters(writers)]) ctx.out(l);
    return s.healthy ? ExitCode.ok : ExitCode.failure;
  },
};

export const clusterGroup: CommandGroup = {
  name: 'cluster',
  summary: 'inspect the route node cluster: status',
  commands: [clusterStatusCommand],
};
