/**
 * When a route is ticked by time alone: the quiet rule. A runtime ticks a
 * route at its first tick after an input, and otherwise once the route's
 * `nextTick()` has come (actors/route.ts computes when a tick can next change
 * it); this rule stops that for a route nobody calls.
 */

/**
 * A route with no input (report batch, registry entry) for this long, ms,
 * is not ticked by time alone until the next input (`nextTick` says
 * Infinity after one last tick at that point): ejections ending, windows
 * closing, slow starts stepping, load weights lapsing and trial agents going
 * all wait, and the tick the next input brings applies them at once. A route
 * nobody calls publishes nothing; a caller that comes back picks from the
 * last state and its first report batch brings the route up to date.
 */
export const QUIET_MS = 3000;

/**
 * The route's next tick, ms, given `due`, the earliest time a tick can change
 * it, its last input and its last tick: a quiet route is left alone. What
 * falls due QUIET_MS or more after its last input waits for the next one (the
 * tick that input brings catches up at once); one tick at that point closes
 * what was due before it, then Infinity.
 */
export function quietDue(due: number, lastInput: number, lastTick: number): number {
  const quiet = lastInput + QUIET_MS;
  if (due < quiet) return due;
  return lastTick < quiet ? quiet : Infinity;
}
