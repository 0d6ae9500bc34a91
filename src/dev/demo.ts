/**
 * `lars dev` (what `npm start` runs): a whole system on one machine with a
 * live demo. Uses the NATS at the configured URL, or starts a local
 * nats-server with JetStream under <dataDir>/nats; on a NATS it did not
 * start, refuses to share a prefix with route nodes or a route 1.1 already
 * there (src/dev/clean-start.ts); starts a route node; registers a demo
 * route (its entry, state and checkpoint from an earlier run removed); drives
 * traffic through three agents against five simulated hosts (no real
 * servers: each call's result and latency are drawn by the demo); makes one
 * host fail and recover, then another slow and fast again, in a loop; shows
 * the route as it changes. Everything it starts is registered with the
 * lifecycle and stopped in reverse order.
 */
import { spawnSync } from 'node:child_process';
import { mkdirSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { pino } from 'pino';
import type { LarsConfig } from '../lib/config.ts';
import { connectNats, natsOptionsFromConfig, redactNatsUrl, sdkLoginFromConfig, type NatsConnection } from '../nats/connect.ts';
import { findNatsServer, startNatsServer, probePort, requireJetStream, PortBusyError, NATS_INSTALL_COMMAND, type NatsServer } from '../nats/natsd.ts';
import { RouteNode } from '../node/route-node.ts';
import { Registry } from '../registry/registry.ts';
import { DEMO_NODE_PREFIX, clearDemoRoute, refuseForeign } from './clean-start.ts';
import { createAgent, type Agent } from '../agent/agent.ts';
import { names } from '../../schemas/subjects.ts';
import type { RouteEvent, RouteState } from '../../schemas/messages.ts';
import { LarsError, ErrorCode } from '../lib/errors.ts';
import { startAnalytics, type Analytics } from '../analytics/mod.ts';
import { durableName } from '../analytics/sink.ts';
import { closeConnection } from '../lib/lifecycle.ts';
import { announceFile, serveSharedConsole } from '../console/serve.ts';
import { EngineKind } from '../analytics/engine.ts';
import { jetstreamManager } from '@nats-io/jetstream';

export const DEMO_MODID = 1;
export const DEMO_CMDID = 1;
const HOSTS = [9001, 9002, 9003, 9004, 9005].map((port) => ({ ip: '127.0.0.1', port, weight: 100 }));

/** What each simulated host does at time t (s) of the demo's cycle. */
interface Phase {
  at: number;
  text: string;
  failing?: number;
  slow?: number;
}
const CYCLE_S = 40;
const PHASES: Phase[] = [
  { at: 0, text: 'all hosts healthy' },
  { at: 5, text: 'host :9003 fails every call', failing: 9003 },
  { at: 15, text: 'host :9003 is fixed: it comes back through probing' },
  { at: 22, text: 'host :9005 answers 20x slower than its peers', slow: 9005 },
  { at: 32, text: 'host :9005 is fast again' },
];

/** What the demo needs of the command's lifecycle (src/lib/lifecycle.ts). */
export interface DemoLifecycle {
  /** Resolves when the demo should stop. */
  readonly stopped: Promise<void>;
  /** Registers how to stop something just started (last registered, first stopped). */
  add(what: string, stop: () => unknown): void;
  /** Stops by itself (`--duration` elapsed). */
  requestStop(): void;
}

export interface DemoOptions {
  config: LarsConfig;
  out: (line: string) => void;
  life: DemoLifecycle;
  /** Stop by itself after this many seconds. */
  durationS?: number;
  /** Redraw a screen (TTY) or print one line per change. */
  tty: boolean;
  /** Runs the scenario this many times faster (ejection times shrink alike). */
  speed?: number;
  /** Serve the console on this loopback port (0: any free one), on the demo's own ClickHouse engine; absent: no console. */
  consolePort?: number;
  /** On a NATS it did not start, run even where route nodes or another route 1.1 exist under the prefix (src/dev/clean-start.ts). */
  force?: boolean;
}

function isLocal(url: string): boolean {
  return /^(nats:\/\/)?(127\.0\.0\.1|localhost)(:\d+)?$/.test(url.trim());
}

/**
 * The NATS to use: the one at the configured URL, or (for a local URL with
 * nothing listening) a nats-server started here. Something else on the
 * port, or a NATS without JetStream, is an error naming it.
 */
async function ensureNats(cfg: LarsConfig, out: (l: string) => void, life: DemoLifecycle): Promise<{ nc: NatsConnection; server?: NatsServer }> {
  const port = Number(/:(\d+)\s*$/.exec(cfg.natsUrl)?.[1] ?? 4222);
  if (isLocal(cfg.natsUrl)) {
    const probe = await probePort(port);
    if (probe.kind === 'other') throw new PortBusyError(port, probe.what);
    if (probe.kind === 'free') return startLocalNats(cfg, port, out, life);
  }
  const nc = await connectNats({ ...natsOptionsFromConfig(cfg), name: 'lars-dev', timeoutMs: 3000 });
  life.add('NATS connection', () => closeConnection(nc));
  await requireJetStream(nc, cfg.natsUrl);
  return { nc };
}

async function startLocalNats(cfg: LarsConfig, port: number, out: (l: string) => void, life: DemoLifecycle): Promise<{ nc: NatsConnection; server: NatsServer }> {
  let bin = findNatsServer();
  if (!bin) {
    const root = typeof process.getuid === 'function' && process.getuid() === 0;
    const hasApt = spawnSync('sh', ['-c', 'command -v apt-get']).status === 0;
    if (!root || !hasApt) {
      throw new LarsError(ErrorCode.natsServerMissing, `no NATS at ${redactNatsUrl(cfg.natsUrl)} and nats-server is not installed; install it with: sudo ${NATS_INSTALL_COMMAND}`);
    }
    out(`no NATS at ${redactNatsUrl(cfg.natsUrl)}: installing Debian's nats-server`);
    let r = spawnSync('sh', ['-c', `DEBIAN_FRONTEND=noninteractive ${NATS_INSTALL_COMMAND}`], { stdio: 'inherit' });
    if (r.status !== 0) {
      spawnSync('sh', ['-c', 'apt-get update'], { stdio: 'inherit' });
      r = spawnSync('sh', ['-c', `DEBIAN_FRONTEND=noninteractive ${NATS_INSTALL_COMMAND}`], { stdio: 'inherit' });
    }
    bin = findNatsServer();
    if (!bin) throw new LarsError(ErrorCode.natsServerMissing, `could not install nats-server; run: sudo ${NATS_INSTALL_COMMAND}`);
  }
  const storeDir = resolve(cfg.dataDir, 'nats');
  mkdirSync(storeDir, { recursive: true });
  out(`no NATS at ${redactNatsUrl(cfg.natsUrl)}: starting nats-server with JetStream (data in ${storeDir})`);
  const server = await startNatsServer({ port, storeDir, binary: bin });
  life.add(`nats-server (pid ${server.process.pid})`, () => server.stop());
  const nc = await connectNats({ url: server.url, name: 'lars-dev' });
  life.add('NATS connection', () => closeConnection(nc));
  return { nc, server };
}

export async function runDemo(opts: DemoOptions): Promise<number> {
  const cfg = opts.config;
  const out = opts.out;
  const life = opts.life;
  const speed = opts.speed ?? 1;
  mkdirSync(cfg.dataDir, { recursive: true });
  // Lines the screen keeps showing (the TTY screen is redrawn, so printed lines would scroll away).
  const notes: string[] = [];
  const note = (l: string): void => {
    notes.push(l);
    out(l);
  };
  const { nc, server } = await ensureNats(cfg, out, life);
  const url = server?.url ?? cfg.natsUrl;
  const n = names(cfg.prefix);
  const logPath = join(cfg.dataDir, 'node.log');
  const log = pino({ level: cfg.logLevel, base: { node: cfg.nodeId } }, pino.destination({ dest: logPath, sync: false, mkdir: true }));
  life.add(`node log ${logPath}`, () => log.flush());
  // Nothing of someone else's is taken over without asking (a NATS the demo started is its own).
  if (!server) await refuseForeign(nc, n, cfg.partitions, { modid: DEMO_MODID, cmdid: DEMO_CMDID, hosts: HOSTS }, { url, force: opts.force === true });
  // A clean start: the demo route's entry, last state and checkpoint from an earlier run are removed before the node starts.
  await clearDemoRoute(nc, n, cfg.partitions, { modid: DEMO_MODID, cmdid: DEMO_CMDID });
  const node = await RouteNode.start({ nc, nodeId: `${DEMO_NODE_PREFIX}${cfg.nodeId}`, prefix: cfg.prefix, partitions: cfg.partitions, log });
  life.add('route node', () => node.close());
  // Every raw report and transition into ClickHouse: chdb under <dataDir>/clickhouse unless LARS_CLICKHOUSE_URL is set.
  let analytics: Analytics | undefined;
  let analyticsNote = '';
  try {
    analytics = await startAnalytics(cfg, nc, log, { sink: { batch: { maxWaitMs: 1000 } } });
    analyticsNote = analytics.engine.description;
    note(`analytics: reports and route events stream into ${analyticsNote}`);
    const a = analytics;
    life.add(`analytics sink (${analyticsNote})`, async () => {
      // Let the sink catch up with the stream before stopping it (what it leaves stays in the stream anyway).
      await drainSink(nc, n.reportsStream, durableName(`${n.prefix}_sink`, 'reports'), 4_000);
      await drainSink(nc, n.eventsStream, durableName(`${n.prefix}_sink`, 'events'), 2_000);
      await a.close();
      const st = a.sink.stats();
      out(`analytics: ${st.reports?.rows ?? 0} reports and ${st.events?.rows ?? 0} route events stored in ${analyticsNote}; try: lars stats errors --since 10m`);
    });
  } catch (err) {
    analyticsNote = `off (${(err as Error).message})`;
    note(`analytics: ${analyticsNote}; the demo runs without it`);
  }
  if (opts.consolePort !== undefined) {
    // Served here, on the demo's engine: the embedded one opens its data in one process only, so `lars console` could not read it.
    // Announced beside the data: `lars stats` on the same data directory asks this console while the demo holds the engine.
    const web = await serveSharedConsole({
      nc,
      prefix: cfg.prefix,
      log,
      engine: analytics?.engine,
      analyticsOff: analyticsNote,
      port: opts.consolePort,
      token: cfg.consoleToken || undefined,
      announce: analytics?.engine.kind === EngineKind.chdb ? announceFile(cfg.dataDir) : undefined,
    });
    life.add('console', () => web.close());
    note(`console: ${web.url}#/route/${DEMO_MODID}/${DEMO_CMDID}${web.fellBack ? ` (port ${opts.consolePort} is in use)` : ''}  actions: token ${cfg.consoleToken ? 'from LARS_CONSOLE_TOKEN' : web.token}`);
  }
  const storedRows = (): number => {
    const st = analytics?.sink.stats();
    return st ? Object.values(st).reduce((a, p) => a + p.rows, 0) : 0;
  };
  const registry = await Registry.open(nc, n);
  // The demo route: quick ejections so the demo moves at a human pace; swrr
  // spreads by weight, so the node's ejections and probes are what the demo shows.
  await registry.update(DEMO_MODID, DEMO_CMDID, () => ({
    v: 1,
    modid: DEMO_MODID,
    cmdid: DEMO_CMDID,
    profile: 'default',
    strategy: 'swrr',
    params: { base_ejection_time: 3 / speed, max_ejection_time: 6 / speed, probe_succ_limit: 10 },
    hosts: HOSTS,
    updated_by: 'lars-dev',
    ts: Date.now(),
  }));
  // On a NATS that is not the demo's, nothing of it stays registered: removed before its node stops (which publishes the removal).
  if (!server && opts.force !== true) life.add(`demo route ${DEMO_MODID}.${DEMO_CMDID}`, () => registry.update(DEMO_MODID, DEMO_CMDID, () => null));
  const agents: Agent[] = [];
  life.add('agents', async () => {
    for (const a of agents) await a.close();
  });
  for (let i = 0; i < 3; i++) agents.push(await createAgent({ servers: url, ...(server ? {} : sdkLoginFromConfig(cfg)), prefix: cfg.prefix, partitions: cfg.partitions, agentId: `demo-agent-${i + 1}`, batchMaxDelayMs: 10 }));
  await Promise.all(agents.map((a) => a.getRoute(DEMO_MODID, DEMO_CMDID)));
  note(
    `simulating: ${HOSTS.length} hosts ${HOSTS[0]!.ip}:${HOSTS[0]!.port}-${HOSTS[HOSTS.length - 1]!.port} (no real servers: the demo draws each call's result and latency) ` +
      `called by ${agents.length} agents, ${CYCLE_S / speed} s scenario repeated until stopped`,
  );

  const started = Date.now();
  const picks = new Map<number, number>();
  let calls = 0;
  let errors = 0;
  let phase: Phase = PHASES[0]!;
  let loop = 1;
  const elapsedS = (): number => ((Date.now() - started) / 1000) * speed;
  const timeInCycle = (): number => elapsedS() % CYCLE_S;
  const traffic = setInterval(() => {
    const t = timeInCycle();
    for (const p of PHASES) if (t >= p.at) phase = p;
    for (const a of agents) {
      for (let i = 0; i < 30; i++) {
        const h = a.pick(DEMO_MODID, DEMO_CMDID);
        if (!h.ok) continue;
        calls++;
        picks.set(h.port, (picks.get(h.port) ?? 0) + 1);
        const fail = phase.failing === h.port;
        if (fail) errors++;
        const latency = (phase.slow === h.port ? 200 : 10) * (0.8 + Math.random() * 0.4);
        a.report(DEMO_MODID, DEMO_CMDID, h, fail ? 1 : 0, latency);
      }
    }
  }, 10);

  const events: string[] = [];
  let route: RouteState | undefined;
  let shares = new Map<number, number>();
  const stopWatch = agents[0]!.watchRoute(DEMO_MODID, DEMO_CMDID, (s) => {
    route = s;
    if (!opts.tty) out(`route v${s.version}${s.panic ? ' PANIC' : ''}: ${s.hosts.map((h) => `:${h.port}=${h.state}`).join(' ')}`);
  });
  const removeEvents = node.onChange((_s, evs: RouteEvent[]) => {
    for (const e of evs) {
      if (e.from === 'none') continue;
      const why = explain(e);
      const line = `${new Date(e.ts).toISOString().slice(11, 23)}  :${e.port} ${e.from} -> ${e.to}  (${e.reason}${why ? `: ${why}` : ''})`;
      events.push(line);
      if (events.length > 10) events.shift();
      if (!opts.tty) out(`event ${line}`);
    }
  });
  let lastPhase = '';
  const screen = setInterval(() => {
    shares = new Map(picks);
    const total = [...shares.values()].reduce((a, b) => a + b, 0);
    picks.clear();
    const cycle = Math.floor(elapsedS() / CYCLE_S) + 1;
    const looped = cycle > loop;
    loop = cycle;
    if (!opts.tty) {
      if (looped) out(`scenario: end of the ${CYCLE_S / speed} s scenario; starting it again (round ${cycle})`);
      if (phase.text !== lastPhase || looped) out(`scenario: ${phase.text}`);
      lastPhase = phase.text;
      return;
    }
    const lines = [
      '\x1b[2J\x1b[H' + 'lars dev: live demo  (Ctrl-C to stop)',
      `NATS ${url}  prefix ${cfg.prefix}  node log ${logPath}`,
      ...notes,
      `scenario round ${cycle} (${(timeInCycle() / speed).toFixed(0)}s of ${CYCLE_S / speed}s, then it starts again): ${phase.text}`,
      `calls ${calls}  errors ${errors}  agents ${agents.length}  rows in ClickHouse ${analytics ? storedRows() : 'none (analytics off)'}`,
      '',
      route ? `route ${route.modid}.${route.cmdid}  version ${route.version}${route.panic ? '  PANIC' : ''}` : 'route: loading',
      '  host               state       reason                 traffic share (last second)',
    ];
    for (const h of route?.hosts ?? []) {
      const sh = total > 0 ? (100 * (shares.get(h.port) ?? 0)) / total : 0;
      const bar = '#'.repeat(Math.round(sh / 2.5));
      lines.push(`  ${`${h.ip}:${h.port}`.padEnd(18)} ${h.state.padEnd(11)} ${h.reason.padEnd(22)} ${sh.toFixed(1).padStart(5)}% ${bar}`);
    }
    lines.push('', 'recent transitions:', ...(events.length ? events.map((e) => `  ${e}`) : ['  (none yet)']));
    out(lines.join('\n'));
  }, 500);
  life.add('demo traffic', () => {
    clearInterval(traffic);
    clearInterval(screen);
    stopWatch();
    removeEvents();
    out(`stopping: ${calls} calls, ${errors} errors, route version ${route?.version ?? 0}`);
  });

  let timer: NodeJS.Timeout | undefined;
  if (opts.durationS !== undefined) timer = setTimeout(() => life.requestStop(), opts.durationS * 1000);
  await life.stopped;
  clearTimeout(timer);
  return 0;
}

/** One human phrase for the figures behind a transition. */
function explain(e: RouteEvent): string {
  const f = e.figures;
  switch (e.reason) {
    case 'latency_outlier':
      return `latency ${f.latency_ms?.toFixed(0)} ms vs peers ${f.peer_latency_ms?.toFixed(0)} ms`;
    case 'consecutive_errors':
      return `${f.consecutive_errors ?? 0} errors in a row`;
    case 'error_rate':
      return `error rate ${(f.err_rate ?? 0).toFixed(2)}`;
    case 'window_error_rate':
      return `real error rate ${(f.window_err_rate ?? 0).toFixed(2)} over the window`;
    case 'probe_failure':
      // a probe fails on an error or on a success as slow as an outlier
      return (f.consecutive_errors ?? 0) === 0 && f.latency_ms !== undefined
        ? `trial calls were slow: ${f.latency_ms.toFixed(0)} ms vs peers ${f.peer_latency_ms?.toFixed(0) ?? '?'} ms`
        : `trial calls failed: ${f.consecutive_errors ?? 0} errors in a row`;
    case 'probe_success':
      return `${f.consecutive_successes ?? 0} trial calls succeeded`;
    case 'timeout':
      return e.to === 'probing' ? 'ejection over, trial traffic' : 'ejection over';
    default:
      return '';
  }
}

/** Waits until a durable consumer has nothing pending or unacknowledged (or the deadline passes). */
async function drainSink(nc: NatsConnection, stream: string, durable: string, timeoutMs: number): Promise<void> {
  const jsm = await jetstreamManager(nc);
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    const ci = await jsm.consumers.info(stream, durable).catch(() => undefined);
    if (!ci || (ci.num_pending === 0 && ci.num_ack_pending === 0)) return;
    await new Promise((r) => setTimeout(r, 100));
  }
}
