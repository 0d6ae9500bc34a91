/**
 * The console served inside another process on that process's connection
 * and ClickHouse engine: `lars dev` serves it this way, since the embedded
 * engine (chdb) opens its data directory in one process only, and a
 * separate `lars console` could not read the demo's pictures. The address
 * is written to a file beside the engine's data while it serves, so that
 * `lars stats` on the same data directory asks it instead of failing.
 */
import { randomBytes } from 'node:crypto';
import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { NatsConnection } from '@nats-io/transport-node';
import type { AnalyticsEngine } from '../analytics/engine.ts';
import type { Logger } from '../lib/log.ts';
import { ConsoleBackend } from './backend.ts';
import { startConsoleServer, type ConsoleServer } from './server.ts';

export interface SharedConsoleOptions {
  nc: NatsConnection;
  prefix: string;
  log: Logger;
  /** The process's engine, shared (absent: no pictures; `analyticsOff` says why). */
  engine?: AnalyticsEngine;
  analyticsOff?: string;
  /** Asked port on loopback; when it is taken, a free one is used instead (`fellBack`). */
  port: number;
  /** Operator actions need it; absent: a random one is made (and returned to be shown). */
  token?: string;
  /** Where to write the console's address while it serves (`announcedConsole` reads it). */
  announce?: string;
}

/** The announce file of a data directory: where `lars dev` says where its console is while it holds the embedded engine. */
export function announceFile(dataDir: string): string {
  return join(dataDir, 'console.json');
}

/** What the announce file holds. */
interface Announced {
  v: 1;
  url: string;
  pid: number;
}

/** The address a live process announced in `file`, if any (a file left by a process that is gone does not count). */
export function announcedConsole(file: string): string | undefined {
  let a: Partial<Announced>;
  try {
    a = JSON.parse(readFileSync(file, 'utf8')) as Partial<Announced>;
  } catch {
    return undefined;
  }
  if (a.v !== 1 || typeof a.url !== 'string' || typeof a.pid !== 'number') return undefined;
  try {
    process.kill(a.pid, 0);
  } catch {
    return undefined;
  }
  return a.url;
}

export interface SharedConsole {
  readonly url: string;
  readonly port: number;
  readonly token: string;
  /** True when the asked port was taken and a free one was used. */
  readonly fellBack: boolean;
  close(): Promise<void>;
}

/** EADDRINUSE, raw or as the cause of a wrapped error. */
function portTaken(err: unknown): boolean {
  for (let e = err, i = 0; e && i < 4; e = (e as { cause?: unknown }).cause, i++) {
    if ((e as { code?: unknown }).code === 'EADDRINUSE') return true;
  }
  return false;
}

export async function serveSharedConsole(o: SharedConsoleOptions): Promise<SharedConsole> {
  const token = o.token || randomBytes(9).toString('base64url');
  const backend = await ConsoleBackend.start({ nc: o.nc, prefix: o.prefix, log: o.log, engine: o.engine });
  const start = (port: number): Promise<ConsoleServer> => startConsoleServer({ backend, token, analyticsOff: o.analyticsOff, log: o.log, port, host: '127.0.0.1' });
  let server: ConsoleServer;
  let fellBack = false;
  try {
    try {
      server = await start(o.port);
    } catch (err) {
      if (o.port === 0 || !portTaken(err)) throw err;
      server = await start(0);
      fellBack = true;
    }
  } catch (err) {
    await backend.close();
    throw err;
  }
  const announce = o.announce;
  if (announce) writeFileSync(announce, JSON.stringify({ v: 1, url: server.url, pid: process.pid } satisfies Announced) + '\n');
  return {
    url: server.url,
    port: server.port,
    token,
    fellBack,
    close: async () => {
      if (announce) rmSync(announce, { force: true });
      await server.close();
      await backend.close();
    },
  };
}
