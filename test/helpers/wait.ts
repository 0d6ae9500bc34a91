/** Waiting for conditions and events with a deadline (never a bare sleep). */

/** `explain`, when given, adds what was seen to the timeout's message. */
export async function waitFor<T>(
  check: () => T | undefined | false | Promise<T | undefined | false>,
  opts: { timeoutMs?: number; what?: string; intervalMs?: number; explain?: () => string | Promise<string> } = {},
): Promise<T> {
  const deadline = Date.now() + (opts.timeoutMs ?? 10_000);
  for (;;) {
    const v = await check();
    if (v !== undefined && v !== false) return v;
    if (Date.now() > deadline) {
      const seen = opts.explain ? `; ${await Promise.resolve(opts.explain()).catch((e: unknown) => `(explain failed: ${String(e)})`)}` : '';
      throw new Error(`timed out waiting for ${opts.what ?? 'condition'}${seen}`);
    }
    await new Promise((r) => setTimeout(r, opts.intervalMs ?? 10));
  }
}

/** Resolves with the first value `subscribe`'s listener receives that satisfies `pred`, or rejects at the deadline. */
export function waitForEvent<T>(subscribe: (listener: (v: T) => void) => () => void, pred: (v: T) => boolean, opts: { timeoutMs?: number; what?: string } = {}): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    let done = false;
    const sub: { stop?: () => void } = {};
    const finish = (): void => {
      done = true;
      clearTimeout(timer);
      // the listener may fire while subscribe() replays, before it returned
      queueMicrotask(() => sub.stop?.());
    };
    const timer = setTimeout(() => {
      finish();
      reject(new Error(`timed out waiting for ${opts.what ?? 'event'}`));
    }, opts.timeoutMs ?? 10_000);
    sub.stop = subscribe((v) => {
      if (done || !pred(v)) return;
      finish();
      resolve(v);
    });
    if (done) sub.stop();
  });
}
