/**
 * What `lars dev` checks and clears before its demo starts.
 *
 * On a NATS it did not start, the demo would share the prefix with whatever
 * runs there: its route node would take partitions from the route nodes
 * already there, and its route 1.1 would replace theirs. So it first looks:
 * live route nodes other than a demo's (`dev-…`), or a route 1.1 in the
 * registry with hosts the demo did not put there, make it refuse, saying
 * what it found and how to go on (`--prefix` of its own, or `--force`).
 *
 * Then the demo route starts clean: its registry entry, its last published
 * state and its checkpoint from an earlier run are removed before the route
 * node starts, so the node builds the route afresh from the entry the demo
 * writes (a route restored from its checkpoint or a handover would resume
 * with the hosts ejected or probing where the last run stopped).
 */
import type { NatsConnection } from '../nats/connect.ts';
import { partitionOf, type Names } from '../../schemas/subjects.ts';
import type { RegistryHost } from '../../schemas/messages.ts';
import { Registry } from '../registry/registry.ts';
import { RouteStore } from '../registry/route-store.ts';
import { bindBucket } from '../nats/buckets.ts';
import { clusterNames } from '../cluster/names.ts';
import { readClusterSnapshot, summarizeCluster } from '../cluster/status.ts';
import { ConfirmationRequiredError } from '../lib/errors.ts';

/** The node ids the demo's route nodes take (`dev-<node id>`). */
export const DEMO_NODE_PREFIX = 'dev-';

export interface DemoRoute {
  modid: number;
  cmdid: number;
  /** The hosts the demo registers. */
  hosts: ReadonlyArray<Pick<RegistryHost, 'ip' | 'port'>>;
}

/** What the demo would clobber under `names.prefix`: live route nodes not the demo's, and a route of the demo's id that is not the demo's. */
export async function findForeign(nc: NatsConnection, names: Names, partitions: number, route: DemoRoute, now = Date.now()): Promise<{ nodes: string[]; route?: { hosts: string[]; by: string } }> {
  const snap = await readClusterSnapshot(nc, names.prefix);
  const status = summarizeCluster(snap, { prefix: names.prefix, partitions, now });
  const nodes = status.members.filter((m) => m.live && !m.node.startsWith(DEMO_NODE_PREFIX)).map((m) => m.node);
  const found: { nodes: string[]; route?: { hosts: string[]; by: string } } = { nodes };
  const regKv = await bindBucket(nc, names.registryBucket);
  if (regKv !== undefined) {
    const cur = (await (await Registry.open(nc, names)).get(route.modid, route.cmdid))?.entry;
    const mine = new Set(route.hosts.map((h) => `${h.ip}:${h.port}`));
    const hosts = (cur?.hosts ?? []).map((h) => `${h.ip}:${h.port}`);
    if (cur && hosts.some((h) => !mine.has(h))) found.route = { hosts, by: cur.updated_by };
  }
  return found;
}

/**
 * Refuses (ConfirmationRequiredError) when the demo would clobber what runs
 * under the prefix (findForeign), unless `force`.
 */
export async function refuseForeign(nc: NatsConnection, names: Names, partitions: number, route: DemoRoute, o: { url: string; force: boolean }): Promise<void> {
  if (o.force) return;
  const f = await findForeign(nc, names, partitions, route);
  if (f.nodes.length === 0 && f.route === undefined) return;
  const what: string[] = [];
  if (f.nodes.length > 0) what.push(`route node${f.nodes.length > 1 ? 's' : ''} ${f.nodes.slice(0, 5).join(', ')}${f.nodes.length > 5 ? ` and ${f.nodes.length - 5} more` : ''}`);
  if (f.route) what.push(`route ${route.modid}.${route.cmdid} with ${f.route.hosts.slice(0, 3).join(', ')}${f.route.hosts.length > 3 ? ', …' : ''} (by ${f.route.by})`);
  const consequence = `the demo would take partitions from them and replace route ${route.modid}.${route.cmdid} with its own hosts`;
  throw new ConfirmationRequiredError(
    `NATS at ${o.url} already has ${what.join(' and ')} under prefix ${names.prefix}: ${consequence}; give the demo a prefix of its own (--prefix ${names.prefix}_dev), or --force to use this one anyway`,
    consequence,
  );
}

/**
 * Removes the demo route's registry entry, last published state and
 * checkpoint, so that a route node started next has nothing to resume it
 * from. Call before the demo's route node starts.
 */
export async function clearDemoRoute(nc: NatsConnection, names: Names, partitions: number, route: Pick<DemoRoute, 'modid' | 'cmdid'>): Promise<void> {
  const key = names.routeKey(route.modid, route.cmdid);
  const registry = await Registry.open(nc, names);
  await registry.update(route.modid, route.cmdid, () => null);
  const store = await RouteStore.open(nc, names);
  await store.kv.purge(key);
  const cn = clusterNames(names.prefix);
  const checkpoints = await bindBucket(nc, cn.checkpointsBucket);
  if (checkpoints !== undefined) await checkpoints.purge(cn.checkpointKey(partitionOf(route.modid, route.cmdid, partitions), key));
}
