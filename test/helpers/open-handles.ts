/**
 * Mocha root hooks (registered with `require` in the mocha configs): after
 * the last test, whatever still keeps the event loop alive beyond what was
 * open before the first test (stdio) fails the run, each resource named with
 * the test after which it first appeared. A run with leaks then also ends by
 * itself instead of hanging: mocha runs without `exit: true`.
 */
import type { Context } from 'mocha';

/** How long closes started by the last `after` hooks get to finish. */
const SETTLE_MS = 6000;
/** A run that leaked exits this long after reporting it, if the leak keeps it alive. */
const FORCED_EXIT_MS = 5000;

type Handle = object & { constructor?: { name?: string }; hasRef?: () => boolean; _handle?: { hasRef?: () => boolean } | null };

function activeHandles(): Handle[] {
  const p = process as unknown as { _getActiveHandles?: () => unknown[] };
  return (p._getActiveHandles?.() ?? []).filter((h): h is Handle => typeof h === 'object' && h !== null);
}

/** An unref'd timer or handle does not keep the process alive. */
function keepsAlive(h: Handle): boolean {
  if (typeof h.hasRef === 'function') return h.hasRef();
  if (h._handle && typeof h._handle.hasRef === 'function') return h._handle.hasRef();
  return true;
}

function describeHandle(h: Handle): string {
  const o = h as Record<string, unknown>;
  const kind = h.constructor?.name ?? 'handle';
  if (Array.isArray(o['spawnargs'])) return `${kind} pid ${String(o['pid'])}: ${(o['spawnargs'] as string[]).join(' ').slice(0, 160)}`;
  if (typeof o['remotePort'] === 'number') return `${kind} to ${String(o['remoteAddress'])}:${String(o['remotePort'])}`;
  if (typeof o['localPort'] === 'number') return `${kind} on :${String(o['localPort'])}`;
  if (kind === 'Timeout') {
    const t = o as { _idleTimeout?: number; _repeat?: number | null; _onTimeout?: { name?: string } };
    return `${t._repeat ? 'setInterval' : 'setTimeout'} ${t._idleTimeout ?? '?'} ms (${t._onTimeout?.name || 'anonymous'})`;
  }
  if (kind === 'Server' && typeof (o as { address?: () => unknown }).address === 'function') {
    return `Server ${JSON.stringify((o as { address: () => unknown }).address())}`;
  }
  return kind;
}

function resourceCounts(): Map<string, number> {
  const m = new Map<string, number>();
  for (const r of process.getActiveResourcesInfo()) m.set(r, (m.get(r) ?? 0) + 1);
  return m;
}

/** Where each live setImmediate/setInterval was made (they are not handles: only a count says they are there). */
const timerSites = new Map<object, { kind: string; site: string; test: string }>();
let currentTest = 'a hook before any test ended';

function callSite(): string {
  const frames = (new Error().stack ?? '').split('\n').slice(3);
  const own = frames.find((f) => !f.includes('node:internal') && !f.includes('open-handles.ts'));
  return (own ?? frames[0] ?? '?').trim().replace(/^at /, '');
}

{
  const origImmediate = globalThis.setImmediate;
  const origClearImmediate = globalThis.clearImmediate;
  const origInterval = globalThis.setInterval;
  const origClearInterval = globalThis.clearInterval;
  const origTimeout = globalThis.setTimeout;
  const origClearTimeout = globalThis.clearTimeout;
  // setTimeout too (only the ones still pending at the end are named): a forgotten retry or deadline timer.
  globalThis.setTimeout = Object.assign(
    ((cb: (...a: unknown[]) => void, ms?: number, ...args: unknown[]) => {
      const entry = { kind: `setTimeout ${ms ?? 0} ms`, site: callSite(), test: currentTest };
      const t: NodeJS.Timeout = origTimeout((...a: unknown[]) => {
        timerSites.delete(t);
        cb(...a);
      }, ms, ...args);
      timerSites.set(t, entry);
      return t;
    }) as typeof setTimeout,
    { __promisify__: (origTimeout as unknown as { __promisify__: unknown }).__promisify__ },
  );
  globalThis.clearTimeout = (t: NodeJS.Timeout | string | number | undefined) => {
    if (typeof t === 'object') timerSites.delete(t);
    origClearTimeout(t);
  };
  const trackedImmediate = ((cb: (...a: unknown[]) => void, ...args: unknown[]) => {
    const entry = { kind: 'setImmediate', site: callSite(), test: currentTest };
    const im: NodeJS.Immediate = origImmediate((...a: unknown[]) => {
      timerSites.delete(im);
      cb(...a);
    }, ...args);
    timerSites.set(im, entry);
    return im;
  }) as typeof setImmediate;
  globalThis.setImmediate = Object.assign(trackedImmediate, { __promisify__: origImmediate.__promisify__ });
  globalThis.clearImmediate = (im: NodeJS.Immediate | string | number | undefined) => {
    if (typeof im === 'object') timerSites.delete(im);
    origClearImmediate(im as NodeJS.Immediate);
  };
  globalThis.setInterval = ((cb: (...a: unknown[]) => void, ms?: number, ...args: unknown[]) => {
    const t = origInterval(cb, ms, ...args);
    timerSites.set(t, { kind: `setInterval ${ms ?? 0} ms`, site: callSite(), test: currentTest });
    return t;
  }) as typeof setInterval;
  globalThis.clearInterval = (t: NodeJS.Timeout | string | number | undefined) => {
    if (typeof t === 'object') timerSites.delete(t);
    origClearInterval(t);
  };
}

/** The tracked timers still pending that keep the process alive. */
function liveTimers(): string[] {
  const out: string[] = [];
  for (const [t, e] of timerSites) {
    const ref = (t as { hasRef?: () => boolean }).hasRef?.() ?? true;
    if (ref) out.push(`  ${e.kind} made at ${e.site}  (last made after ${e.test})`);
  }
  return out;
}

let baselineHandles = new Set<object>();
let baselineResources = new Map<string, number>();
const firstSeen = new WeakMap<object, string>();

function leaks(): { resources: string[]; handles: Handle[] } {
  const resources: string[] = [];
  for (const [r, n] of resourceCounts()) {
    const extra = n - (baselineResources.get(r) ?? 0);
    // one Timeout is mocha's own, the time limit of this very hook (unref'd timers are not listed)
    const allowed = r === 'Timeout' ? 1 : 0;
    if (extra > allowed) resources.push(`${r} x${extra - allowed}`);
  }
  const handles = activeHandles().filter((h) => !baselineHandles.has(h) && keepsAlive(h));
  return { resources, handles };
}

export const mochaHooks = {
  beforeAll(): void {
    baselineHandles = new Set(activeHandles());
    baselineResources = resourceCounts();
  },
  afterEach(this: Context): void {
    const t = this.currentTest;
    const where = t ? `${t.file ?? '?'}: "${t.fullTitle()}"` : '?';
    currentTest = where;
    for (const h of activeHandles()) if (!baselineHandles.has(h) && !firstSeen.has(h)) firstSeen.set(h, where);
  },
  async afterAll(this: Context): Promise<void> {
    this.timeout(SETTLE_MS + 5000);
    const deadline = Date.now() + SETTLE_MS;
    let found = leaks();
    while ((found.resources.length > 0 || found.handles.length > 0) && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 50));
      found = leaks();
    }
    if (found.handles.length === 0 && found.resources.length === 0) return;
    const lines = [
      ...liveTimers(),
      ...found.handles.map((h) => `  ${describeHandle(h)}  (open since ${firstSeen.get(h) ?? 'a hook before any test ended'})`),
      ...(found.resources.length ? [`  active resources beyond the start: ${found.resources.join(', ')}`] : []),
    ];
    setTimeout(() => {
      process.stderr.write('open handles kept the test process alive: exiting\n');
      process.exit(1);
    }, FORCED_EXIT_MS).unref();
    throw new Error(`the tests left these open (close them in the test's after/afterEach hooks):\n${lines.join('\n')}`);
  },
};
