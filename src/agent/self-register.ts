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
 * on the caller's event loop: a process that is CPU-bound for up to about
 * four fifths of the TTL (8 s with the default 10 s) does not drop out.
 */
import { hostname } from 'node:os';
import type { KV } from '@nats-io/kv';
import type { NatsConnection } from '@nats-io/transport-node';
import { names as makeNames, type Names } from '../../schemas/subjects.ts';
import { LIMITS, SelfState, validateSelfRegistration, type SelfRegistration } from '../../schemas/messages.ts';
import { encode } from '../codec.ts';
import { connectNats } from '../nats/connect.ts';
import { bindBucket } from '../registry.ts';
import { LarsError, ErrorCode } from '../errors.ts';
import { RateLimitedLog } from '../ratelog.ts';
import { silentLogger, type Logger } from '../log.ts';

export const SELF_DEFAULTS = {
  ttlMs: 10_000,
  /** Heartbeats per TTL. */
  heartbeatsPerTtl: 5,
  /** How long a stopping host keeps serving after it said it is draining: agents stop picking it within this. */
  drainMs: 2000,
  weight: LIMITS.defaultWeight,
} as const;

export interface SelfRegisterOptions {
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
  const own = o.nc === undefined;
  const nc = o.nc ?? (await connectNats({ url: o.servers ?? process.env['LARS_NATS_URL'] ?? 'nats://127.0.0.1:4222', name: `lars-selfreg-${o.modid}.${o.cmdid}` }));
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
