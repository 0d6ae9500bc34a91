/** What the RPC integrations share: route targets and the error for a call with no host to go to. */
import { ErrorCode, LarsError } from '../lib/errors.ts';
import type { Agent, HostPick, NoHostCode } from '../agent/agent.ts';

/** A call could not be sent: the route has no host now (`reason` NO_ROUTE or NO_HOST, as the agent answers). */
export class NoHostError extends LarsError {
  readonly reason: NoHostCode;
  readonly modid: number;
  readonly cmdid: number;
  constructor(modid: number, cmdid: number, reason: NoHostCode, message: string) {
    super(ErrorCode.noRoute, `route ${modid}.${cmdid}: ${message}`);
    this.name = 'NoHostError';
    this.reason = reason;
    this.modid = modid;
    this.cmdid = cmdid;
  }
}

/** A call did not end within its timeout (it was reported as such when the timeout fired). */
export class CallTimeoutError extends LarsError {
  readonly timeoutMs: number;
  constructor(what: string, timeoutMs: number) {
    super(ErrorCode.timeout, `${what} timed out after ${timeoutMs} ms`);
    this.name = 'CallTimeoutError';
    this.timeoutMs = timeoutMs;
  }
}

const UINT32_MAX = 0xffffffff;

/** True for a modid or cmdid: an integer in 0..2^32-1. */
export function isRouteId(n: number): boolean {
  return Number.isInteger(n) && n >= 0 && n <= UINT32_MAX;
}

/** Picks a host (waiting for the route on its first use) or throws NoHostError. */
export async function pickHost(agent: Agent, modid: number, cmdid: number, key?: string): Promise<{ ip: string; port: number }> {
  const h: HostPick = await agent.getHost(modid, cmdid, key);
  if (!h.ok) throw new NoHostError(modid, cmdid, h.code, h.message);
  return h;
}
