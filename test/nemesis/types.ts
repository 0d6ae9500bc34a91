/**
 * The nemesis run's recorded history: what every part of the harness writes
 * and what the checks, the report and the picture read. Plain data (JSON),
 * times in ms of the one machine clock (`Date.now()`; the servers, the nodes
 * and the harness all run on this machine, so their timestamps compare).
 */

export const ProcKind = {
  nats: 'nats',
  node: 'node',
  sink: 'sink',
} as const;
export type ProcKind = (typeof ProcKind)[keyof typeof ProcKind];

/** What happened to a process, as the harness did or saw it. */
export const ProcEventKind = {
  /** spawned (a new incarnation begins) */
  start: 'start',
  /** answers: nats-server accepts connections, a node or sink answers /healthz */
  up: 'up',
  /** SIGKILL sent: the incarnation ends here */
  kill: 'kill',
  /** SIGTERM sent: a graceful stop begins (the incarnation ends at `exit`) */
  stop: 'stop',
  /** the process exited */
  exit: 'exit',
  pause: 'pause',
  resume: 'resume',
} as const;
export type ProcEventKind = (typeof ProcEventKind)[keyof typeof ProcEventKind];

export interface ProcEvent {
  t: number;
  /** e.g. `nats-1`, `node-n2`, `sink-0` */
  proc: string;
  what: ProcEventKind;
  pid?: number;
}

/**
 * One stored state of a lease key (a renewal is a new revision), from a watch
 * or a sample. One write is known by its partition, holder and the holder's
 * clock in the record: the same record has been seen at two revisions of
 * the bucket (stored twice, or numbered differently by the server that
 * answered), and with timestamps a millisecond apart.
 */
export interface LeaseEntry {
  p: number;
  /** The revision it was first seen under. */
  rev: number;
  /** Holder; undefined for a delete or purge. */
  node: string | undefined;
  /** The server's timestamp of the write, ms (of the server that answered first). */
  created: number;
  /** The holder's clock when it sent the write (the record's `ts`; undefined for a delete). */
  sent?: number;
  /** When the harness first saw it. */
  seen: number;
  /** Who saw it first: `watch-<server>` or `sample`. */
  via: string;
}

/** One lease record seen under more than one revision (stored twice, or numbered differently by the servers). */
export interface Renumbered {
  p: number;
  node: string | undefined;
  created: number;
  /** Each revision with who saw it and the server timestamp it came with. */
  revs: Array<{ rev: number; via: string; created: number }>;
}

/** One route state message seen on `<prefix>.route.>` (the first receipt of it). */
export interface RouteMsg {
  /** Receive time (earliest over the harness' subscriptions). */
  t: number;
  route: string;
  partition: number;
  sender: string;
  version: number;
  /** The state's own `ts`: the sender's clock when it flushed the state. */
  ts: number;
  /** Hash of the state without `ts`. */
  hash: string;
  /** The hosts in short, `ip:port state pick_weight [trial agent]` each, for the messages of the checks. */
  hosts: string[];
}

/** One poll of a node's /readyz and /metrics. */
export interface ReadySample {
  t: number;
  node: string;
  /** undefined: no answer in time (paused, down, starting). */
  ready: boolean | undefined;
  reason?: string;
  /** `lars_partitions_owned` */
  owned?: number;
  /** `lars_cluster_partitions_unowned`, where the node exposes it. */
  unowned?: number;
}

/** A route state an agent applied (the follower's listeners are called only for applied states). */
export interface AppliedVersion {
  t: number;
  agent: string;
  route: string;
  version: number;
  hash: string;
}

/** An agent process' totals over its agents at one moment. */
export interface AgentSample {
  t: number;
  proc: string;
  reports: number;
  /** Reports acknowledged so far: reports − pending − dropped. */
  acked: number;
  pending: number;
  dropped: number;
  /** Picks that found no host or no route. */
  noHost: number;
}

/** A fault as it was carried out. */
export interface FaultRecord {
  id: string;
  group: number;
  kind: string;
  /** process id (`nats-1`), or `nats-*` for the whole cluster */
  target: string;
  /** Why this target: e.g. `leader of KV_x_leases`. */
  detail: string;
  start: number;
  /** When the harness began to heal it (SIGCONT, restart). */
  healStart?: number;
  /** When the process ran again (answers). */
  up?: number;
}

/** A fault group healed: every process of the group runs again and JetStream answers writes. */
export interface HealRecord {
  group: number;
  faults: string[];
  /** undefined: JetStream did not answer writes before the deadline. */
  at: number | undefined;
  /** Processes up (JetStream not yet asked). */
  upAt: number;
  /** The next group's first fault, or the end of the run: the window the heal is judged in. */
  windowEnd: number;
}

/** Per caller: reports made (ids 1..made) and what ClickHouse stores of them. */
export interface CallerTally {
  caller: string;
  made: number;
  rows: number;
  /** Distinct report ids stored within 1..made. */
  distinct: number;
  /** Rows whose id is outside 1..made (not a report this caller made). */
  foreign: number;
  /** Up to a few missing ids and duplicated ids, as evidence. */
  missingSample: number[];
  /** Of the sampled missing ids, those found in the reports stream, with their stream sequence (absent: the stream was not read). */
  missingInStream?: Array<{ id: number; seq: number }>;
  duplicateSample: Array<{ id: number; rows: number; seqs: number[] }>;
}

export interface AgentFinal {
  agent: string;
  made: number;
  reports: number;
  pending: number;
  dropped: number;
  acked: number;
  staleUpdates: number;
  noHost: number;
}

export interface History {
  seed: number;
  prefix: string;
  partitions: number;
  leaseMs: number;
  nodes: string[];
  routes: string[];
  runStart: number;
  /** Faults start here (warm-up before). */
  nemesisStart: number;
  nemesisEnd: number;
  runEnd: number;
  procEvents: ProcEvent[];
  leases: LeaseEntry[];
  /** Lease writes seen under two or more revisions (at most 200 kept), and how many in all. */
  leaseRenumbered: Renumbered[];
  leaseRenumberedCount: number;
  /** Lease samples that could not read the bucket, by time. */
  leaseSampleFailures: number[];
  routeMsgs: RouteMsg[];
  ready: ReadySample[];
  applied: AppliedVersion[];
  agentSamples: AgentSample[];
  faults: FaultRecord[];
  heals: HealRecord[];
  idle: { routes: string[]; start: number; end: number };
  agents: AgentFinal[];
  /** Sinks' consumer drained before ClickHouse was read. */
  sinksDrained: boolean;
  tallies: CallerTally[];
  /** Longest event-loop delay of the harness, ms (a late receive time is its doing when large). */
  harnessLagMaxMs: number;
  /** When the harness' event loop stood still for over 100 ms (receive times inside are late by up to that). */
  harnessStalls: Array<{ from: number; to: number }>;
}
