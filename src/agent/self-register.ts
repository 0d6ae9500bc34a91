/**
 * Self-registration (elastic scaling): a service instance adds itself to a
 * route, keeps itself there with heartbeats, and leaves gracefully.
 *
 *   const reg = await registerSelf({ modid: 7, cmdid: 1, ip: '10.0.0.5', port: 8080 });
 *   ... serve ...
 *   await reg.stop(); // says "draining", keeps serving drainMs, then deletes its key
 *
 * The record goes to the KV bucket `<prefix>_selfreg`, beside the admin
 * registry; route nodes merge both (actors/self-registration.ts). A host
 * that stops heartbeating leaves its route `ttlMs` after the last heartbeat
 * the node received. Heartbeats come every `heartbeatMs` (default ttlMs / 5)
 * from a worker thread with a connection of its own (self-register-worker.ts),
 * so a busy event loop does not starve them: a service CPU-bound for seconds
 * stays in its route. The worker withholds them once the main thread has been
 * silent for `maxStallMs` (default 30 s), so a service stuck for good leaves
 * one TTL later. With a connection of the caller's (`nc`), an `alive` check or
 * `heartbeatThread: false`, heartbeats run on the caller's event loop: then a
 * stretch up to about four fifths of the TTL (8 s with the default 10 s) is
 * what a busy loop may take without the host dropping out.
 */
import { hostname } from 'node:os';
import { dirname, extname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { Worker } from 'node:worker_threads';
import type { KV } from '@nats-io/kv';
import type { NatsConnection } from '@nats-io/transport-node';
import { names as makeNames, type Names } from '../../schemas/subjects.ts';
import { LIMITS, SelfState, validateSelfRegistration, type SelfRegistration } from '../../schemas/messages.ts';
import { encode } from '../../schemas/codec.ts';
import { connectNats, natsOptionsFromSdk, type NatsLoginOptions } from '../nats/connect.ts';
import { bindBucket } from '../nats/buckets.ts';
import { LarsError, ErrorCode } from '../lib/errors.ts';
import { RateLimitedLog } from '../lib/ratelog.ts';
import { silentLogger, type Logger } from '../lib/log.ts';
import type { HeartbeatWorkerData, MainToWorker, WorkerToMain } from './heartbeat-messages.ts';

export const SELF_DEFAULTS = {
  ttlMs: 10_000,
  /** Heartbeats per TTL. */
  heartbeatsPerTtl: 5,
  /** How long a stopping host keeps serving after it said it is draining: agents stop picking it within this. */
  drainMs: 2000,
  weight: LIMITS.defaultWeight,
  /** The heartbeat thread withholds heartbeats once the main thread has been silent this long. */
  maxStallMs: 30_000,
  /** A heartbeat thread that ended by itself is started again after this. */
  threadRestartMs: 1000,
} as const;

/** With `servers` (not `nc`), the login and TLS options are createAgent's: given, else LARS_NATS_*. */
export interface SelfRegisterOptions extends NatsLoginOptions {
  modid: number;
  cmdid: number;
  ip: string;
  port: number;
  weight?: number;
  zone?: string;
  ttlMs?: number;
  heartbeatMs?: number;
  /** Who registers, shown to operators (default `<hostname>:<pid>`). */
  instance?: string;
  prefix?: string;
  /** An open connection (kept open by stop()), or servers to connect to. */
  nc?: NatsConnection;
  servers?: string;
  log?: Logger;
  /** Wall clock for the records' `ts` (tests). */
  now?: () => number;
  /**
   * Asked before every heartbeat (a sidecar registering the service beside it
   * checks that the service answers): false withholds the heartbeat, so a
   * service that died leaves its route within the TTL even though the
   * registering process lives on. Absent: the registering process is the service.
   */
  alive?: () => Promise<boolean>;
  /**
   * Heartbeats from a worker thread with its own connection (default true
   * when this call connects itself and has no `alive` check): a busy event
   * loop does not delay them. False: on the caller's event loop.
   */
  heartbeatThread?: boolean;
  /** With the heartbeat thread: heartbeats stop once the main thread has been silent this long (default 30 s). */
  maxStallMs?: number;
}

export interface SelfRegistrationHandle {
  readonly key: string;
  readonly record: Readonly<SelfRegistration>;
  /** Heartbeats written so far (the first at registration). */
  readonly heartbeats: number;
  /**
   * Leaves the route gracefully: writes `draining` (the route nodes take the
   * host out at once and agents stop picking it), keeps the process serving
   * for `drainMs` so that calls already picked finish, then deletes the key.
   */
  stop(opts?: { drainMs?: number }): Promise<void>;
}

/**
 * Writes self-registration records: what `registerSelf` and the sidecar's
 * HTTP API (`POST /v1/register`) share.
 */
export class SelfRegWriter {
  readonly names: Names;
  private readonly kv: KV;

  private constructor(kv: KV, names: Names) {
    this.kv = kv;
    this.names = names;
  }

  /** Binds the bucket; a clear error when no route node created it yet. */
  static async open(nc: NatsConnection, prefix?: string): Promise<SelfRegWriter> {
    const n = makeNames(prefix);
    let kv: KV | undefined;
    try {
      kv = await bindBucket(nc, n.selfRegBucket);
    } catch (err) {
      throw new LarsError(ErrorCode.registry, `cannot open the self-registration bucket ${n.selfRegBucket}: ${(err as Error).message}`, { cause: err });
    }
    if (kv === undefined) throw new LarsError(ErrorCode.registry, `no self-registration bucket ${n.selfRegBucket} under prefix ${n.prefix}: start a route node ('lars node') first; it creates the bucket`);
    return new SelfRegWriter(kv, n);
  }

  key(r: Pick<SelfRegistration, 'modid' | 'cmdid' | 'ip' | 'port'>): string {
    return this.names.selfRegKey(r.modid, r.cmdid, r.ip, r.port);
  }

  /** One heartbeat: the record as it is now. */
  async put(r: SelfRegistration): Promise<void> {
    await this.kv.put(this.key(r), encode(r));
  }

  /** Says `draining`, waits `drainMs` (the host keeps serving meanwhile), then deletes the key. */
  async leave(r: SelfRegistration, drainMs: number, now: () => number = Date.now): Promise<void> {
    await this.put({ ...r, state: SelfState.draining, ts: now() });
    if (drainMs > 0) await new Promise((res) => setTimeout(res, drainMs));
    await this.kv.delete(this.key(r));
  }
}

/** The heartbeat worker's file, beside this module: .ts in a checkout (run through tsx), .js once built (ESM and the CommonJS bundle). */
function workerFile(): string {
  const here = typeof __filename === 'string' ? __filename : fileURLToPath(import.meta.url);
  return join(dirname(here), `self-register-worker${extname(here) === '.ts' ? '.ts' : '.js'}`);
}

export async function registerSelf(o: SelfRegisterOptions): Promise<SelfRegistrationHandle> {
  const ttlMs = o.ttlMs ?? SELF_DEFAULTS.ttlMs;
  const now = o.now ?? Date.now;
  const record: SelfRegistration = {
    v: 1,
    modid: o.modid,
    cmdid: o.cmdid,
    ip: o.ip,
    port: o.port,
    weight: o.weight ?? SELF_DEFAULTS.weight,
    ...(o.zone !== undefined ? { zone: o.zone } : {}),
    state: SelfState.up,
    instance: (o.instance ?? `${hostname()}:${process.pid}`).slice(0, LIMITS.maxInstanceLength),
    ttl_ms: ttlMs,
    ts: now(),
  };
  // the contract's rules, as the route nodes apply them: refused here, before anything is written
  const valid = validateSelfRegistration(record);
  if (!valid.ok) throw new RangeError(`bad self-registration of ${o.ip}:${o.port} for ${o.modid}.${o.cmdid}: ${valid.detail}`);
  const heartbeatMs = o.heartbeatMs ?? Math.floor(ttlMs / SELF_DEFAULTS.heartbeatsPerTtl);
  if (!(heartbeatMs > 0 && heartbeatMs < ttlMs)) throw new RangeError(`heartbeatMs must be below ttlMs (${ttlMs}), got ${heartbeatMs}`);
  const threaded = o.heartbeatThread ?? (o.nc === undefined && o.alive === undefined && o.now === undefined);
  if (threaded) {
    if (o.nc !== undefined || o.alive !== undefined) throw new RangeError('heartbeatThread needs a connection of its own (servers, not nc) and no alive check');
    return registerThreaded(o, record, heartbeatMs);
  }
  const own = o.nc === undefined;
  const nc = o.nc ?? (await connectNats({ ...natsOptionsFromSdk(o.servers ?? (process.env['LARS_NATS_URL'] || 'nats://127.0.0.1:4222'), o), name: `lars-selfreg-${o.modid}.${o.cmdid}` }));
  const log = (o.log ?? silentLogger()).child({ mod: 'selfreg', route: `${o.modid}.${o.cmdid}`, host: `${o.ip}:${o.port}` });
  let writer: SelfRegWriter;
  try {
    writer = await SelfRegWriter.open(nc, o.prefix);
  } catch (err) {
    if (own) await nc.close();
    throw err;
  }
  const rateLog = new RateLimitedLog(log, 10_000);
  let beats = 0;
  const key = writer.key(record);
  const alive = o.alive;
  const beat = async (): Promise<void> => {
    if (alive !== undefined && !(await alive().catch(() => false))) {
      rateLog.emit('warn', 'not-alive', {}, 'the service does not answer; heartbeat withheld (it leaves its route when its TTL runs out)');
      return;
    }
    await writer.put({ ...record, ts: now() });
    beats++;
  };
  await beat();
  let stopped = false;
  let inFlight: Promise<void> = Promise.resolve();
  const timer = setInterval(() => {
    if (stopped) return;
    inFlight = beat().catch((err: unknown) => {
      rateLog.emit('warn', 'heartbeat', { err }, 'self-registration heartbeat failed; retrying at the next one');
    });
  }, heartbeatMs);
  // a registration does not keep a process alive by itself
  timer.unref();
  log.info({ ttlMs, heartbeatMs }, 'registered');
  return {
    key,
    record,
    get heartbeats() {
      return beats;
    },
    async stop(so = {}) {
      if (stopped) return;
      stopped = true;
      clearInterval(timer);
      await inFlight;
      const drainMs = so.drainMs ?? SELF_DEFAULTS.drainMs;
      try {
        log.info({ drainMs }, 'draining');
        await writer.leave(record, drainMs, now);
        log.info('deregistered');
      } finally {
        if (own) await nc.drain().catch(() => nc.close());
      }
    },
  };
}

/** `registerSelf` with heartbeats from a worker thread (see the module's comment). */
async function registerThreaded(o: SelfRegisterOptions, record: SelfRegistration, heartbeatMs: number): Promise<SelfRegistrationHandle> {
  const log = (o.log ?? silentLogger()).child({ mod: 'selfreg', route: `${o.modid}.${o.cmdid}`, host: `${o.ip}:${o.port}` });
  const rateLog = new RateLimitedLog(log, 10_000);
  const maxStallMs = o.maxStallMs ?? SELF_DEFAULTS.maxStallMs;
  if (!(maxStallMs > 0)) throw new RangeError(`maxStallMs must be positive, got ${maxStallMs}`);
  const pulseBuf = new SharedArrayBuffer(8);
  const pulse = new BigInt64Array(pulseBuf);
  const beatPulse = (): void => void Atomics.store(pulse, 0, BigInt(Date.now()));
  beatPulse();
  // the main thread's pulse: written on this event loop, so it stops when the loop is stuck
  const pulseTimer = setInterval(beatPulse, Math.min(heartbeatMs, 1000));
  pulseTimer.unref();
  const data: HeartbeatWorkerData = {
    connect: natsOptionsFromSdk(o.servers ?? (process.env['LARS_NATS_URL'] || 'nats://127.0.0.1:4222'), o),
    name: `lars-selfreg-${o.modid}.${o.cmdid}`,
    prefix: o.prefix,
    record,
    heartbeatMs,
    maxStallMs,
    pulse: pulseBuf,
  };
  const key = makeNames(o.prefix).selfRegKey(record.modid, record.cmdid, record.ip, record.port);
  let beats = 0;
  let stopping = false;
  let worker!: Worker;
  let onStopped: (() => void) | undefined;
  const start = (): Promise<void> =>
    new Promise<void>((resolve, reject) => {
      let ready = false;
      const file = workerFile();
      // A checkout runs the TypeScript sources through tsx, whose loader a worker does not inherit: the worker registers it first.
      const w = file.endsWith('.ts')
        ? new Worker(`import('tsx/esm/api').then((t) => { t.register(); return import(${JSON.stringify(pathToFileURL(file).href)}); })`, { eval: true, workerData: { larsHeartbeat: data } })
        : new Worker(file, { workerData: { larsHeartbeat: data } });
      worker = w;
      w.unref();
      w.on('message', (m: WorkerToMain) => {
        switch (m.type) {
          case 'ready':
            ready = true;
            beats++;
            return resolve();
          case 'beat':
            beats++;
            return;
          case 'withheld':
            return rateLog.emit('warn', 'stalled', { stalledMs: m.stalledMs, maxStallMs }, 'the main thread is stuck; heartbeats withheld (the host leaves its route when its TTL runs out)');
          case 'error':
            if (m.fatal && !ready) return reject(new LarsError(ErrorCode.registry, m.message));
            return rateLog.emit('warn', 'heartbeat', { err: m.message }, 'self-registration heartbeat failed; retrying at the next one');
          case 'stopped':
            return onStopped?.();
        }
      });
      w.on('error', (err) => {
        if (!ready) reject(err);
        else rateLog.emit('error', 'thread', { err }, 'heartbeat thread failed');
      });
      w.on('exit', (code) => {
        if (!ready) return reject(new LarsError(ErrorCode.registry, `the heartbeat thread exited (${code}) before registering`));
        if (stopping) return onStopped?.();
        log.error({ code }, 'heartbeat thread ended; starting it again');
        const t = setTimeout(() => {
          if (!stopping) start().catch((err: unknown) => rateLog.emit('error', 'restart', { err }, 'heartbeat thread could not start again'));
        }, SELF_DEFAULTS.threadRestartMs);
        t.unref();
      });
    });
  try {
    await start();
  } catch (err) {
    clearInterval(pulseTimer);
    await worker?.terminate();
    throw err;
  }
  log.info({ ttlMs: record.ttl_ms, heartbeatMs, maxStallMs }, 'registered (heartbeats from a worker thread)');
  return {
    key,
    record,
    get heartbeats() {
      return beats;
    },
    async stop(so = {}) {
      if (stopping) return;
      stopping = true;
      clearInterval(pulseTimer);
      const drainMs = so.drainMs ?? SELF_DEFAULTS.drainMs;
      log.info({ drainMs }, 'draining');
      // the stop is awaited: the worker may keep the process alive until it has deregistered
      worker.ref();
      const done = new Promise<void>((r) => (onStopped = r));
      worker.postMessage({ type: 'stop', drainMs } satisfies MainToWorker);
      const deadline = new Promise<'late'>((r) => setTimeout(() => r('late'), drainMs + 10_000).unref());
      if ((await Promise.race([done, deadline])) === 'late') log.warn('the heartbeat thread did not deregister in time; stopping it');
      else log.info('deregistered');
      await worker.terminate();
    },
  };
}
