/**
 * Propagation and ejection share their agents: two passes, each with fresh
 * agent processes and fresh ejection routes; the primary pass gives every
 * agent its own NATS connection (as separate services have), the second
 * lets the agents of a process share one (`*_shared_conn`).
 */
import { sleep } from '../_common.ts';
import type { Metric } from '../lib.ts';
import { startAgentPass } from './agent-pass.ts';
import { describeEjection, ejectionMetrics, ejectionSharedMetrics, ejectionTrials, type EjectionResult } from './ejection.ts';
import { describePropagation, propagationMetrics, propagationSharedMetrics, propagationTrials, type PropagationResult } from './propagation.ts';
import { AGENTS, TRIALS, WARMUP_TRIALS, log, type CoreContext } from './setup.ts';

async function fanoutPass(ctx: CoreContext, ejectRoutes: Array<[number, number]>, sharedConnection: boolean): Promise<{ prop: PropagationResult; eject: EjectionResult }> {
  const pass = await startAgentPass(ctx, ejectRoutes, sharedConnection);
  try {
    await sleep(300);
    const prop = await propagationTrials(ctx, pass);
    const eject = await ejectionTrials(ctx, pass, ejectRoutes);
    log(`${AGENTS} agents, ${sharedConnection ? 'one connection per process' : 'own connection each'}: agents ready in ${Math.round(pass.readyMs)} ms; ${describePropagation(prop)}; ${describeEjection(eject)}`);
    return { prop, eject };
  } finally {
    await pass.stop();
  }
}

export async function benchFanout(ctx: CoreContext): Promise<Metric[]> {
  const per = WARMUP_TRIALS + TRIALS;
  const own = await fanoutPass(ctx, ctx.ejectRoutes.slice(0, per), false);
  const shared = await fanoutPass(ctx, ctx.ejectRoutes.slice(per, 2 * per), true);
  return [...propagationMetrics(own.prop), ...ejectionMetrics(own.eject), ...propagationSharedMetrics(shared.prop), ...ejectionSharedMetrics(shared.eject)];
}
