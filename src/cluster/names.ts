/**
 * Names of the cluster's KV buckets and keys for one subject prefix. They
 * are runtime-internal (route nodes only), so they live here rather than in
 * the language-neutral contract.
 */
export interface ClusterNames {
  /** Membership heartbeats, one key per node: `<prefix>_members`. */
  readonly membersBucket: string;
  /** One lease per partition: `<prefix>_leases`. */
  readonly leasesBucket: string;
  /** Route actor checkpoints for takeover: `<prefix>_checkpoints`. */
  readonly checkpointsBucket: string;
  /** Checkpoint key of a route: `<partition>.<modid>.<cmdid>`, so one partition's checkpoints are read with one filter (`<partition>.>`). */
  checkpointKey(partition: number, routeKey: string): string;
  /** Partition and route key (`<modid>.<cmdid>`) of a checkpoint key, or undefined when the key is not one. */
  checkpointRoute(key: string): { partition: number; routeKey: string } | undefined;
  /** The key filter of a partition's route checkpoints: `<partition>.*.*` (its handover keys are not under it). */
  checkpointFilter(partition: number): string;
  /** A partition's handover entry in the checkpoints bucket: `<partition>.handover`; its parts: `<partition>.handover-<i>`. */
  handoverKey(partition: number): string;
  handoverPartKey(partition: number, part: number): string;
  /** Lease key of a partition: `p<partition>`. */
  leaseKey(partition: number): string;
  /** Partition of a lease key, or undefined when the key is not one. */
  leasePartition(key: string): number | undefined;
  /** Members key of a node id (node ids may hold characters KV keys do not allow). */
  memberKey(nodeId: string): string;
}

export function clusterNames(prefix: string): ClusterNames {
  return {
    membersBucket: `${prefix}_members`,
    leasesBucket: `${prefix}_leases`,
    checkpointsBucket: `${prefix}_checkpoints`,
    checkpointKey: (p, routeKey) => `${p}.${routeKey}`,
    checkpointRoute: (key) => {
      const m = /^(\d{1,4})\.(\d{1,10}\.\d{1,10})$/.exec(key);
      return m ? { partition: Number(m[1]), routeKey: m[2]! } : undefined;
    },
    checkpointFilter: (p) => `${p}.*.*`,
    handoverKey: (p) => `${p}.handover`,
    handoverPartKey: (p, i) => `${p}.handover-${i}`,
    leaseKey: (p) => `p${p}`,
    leasePartition: (key) => {
      const m = /^p(\d{1,4})$/.exec(key);
      return m ? Number(m[1]) : undefined;
    },
    memberKey: (nodeId) => nodeId.replace(/[^A-Za-z0-9_=-]/g, (c) => `_${c.charCodeAt(0).toString(16)}`),
  };
}
