/**
 * Mocha root hooks (registered with `require` in the mocha configs): after
 * the last test, whatever still keeps the event loop alive beyond what was
 * open before the first test (stdio) fails the run, each resource named with
 * the test after which it first appeared. A run with leaks then also ends by
 * itself instead of hanging: mocha runs without `exit: true`.
 */
import type { Context } from 'mocha';

/** How long closes started by the last `after` hooks get to finish. */
const SETTLE_MS = 2000;
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
