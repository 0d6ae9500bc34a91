/**
 * The message id of a report batch (JetStream `Nats-Msg-Id` header):
 * `<sender>/<instance>/<seq>`. `sender` is the batch's sender (the agent
 * id, which may itself hold `/`), `instance` a random token per agent
 * process (so a restarted agent with a fixed id never reuses an id), `seq`
 * the agent's batch sequence from 1, over all routes. A consumer that sees
 * the same id twice (a retried batch whose first publish did arrive) can
 * drop the second. See schemas/README.md, "Report message id".
 *
 * Pure: no imports.
 */

/** The parts of a report message id. */
export interface ReportMsgIdParts {
  sender: string;
  instance: string;
  /** 1 .. 2^53−1. */
  seq: number;
}

/** `<sender>/<instance>/<seq>`. */
export function reportMsgId(sender: string, instance: string, seq: number): string {
  return `${sender}/${instance}/${seq}`;
}

/**
 * The parts of a `reportMsgId`, or undefined when `id` is not one: the last
 * two `/` split it, `sender` and `instance` are not empty and `seq` is a
 * safe integer ≥ 1.
 */
export function parseReportMsgId(id: string): ReportMsgIdParts | undefined {
  const b = id.lastIndexOf('/');
  if (b <= 0) return undefined;
  const a = id.lastIndexOf('/', b - 1);
  if (a <= 0) return undefined;
  const seq = Number(id.slice(b + 1));
  if (!Number.isSafeInteger(seq) || seq < 1) return undefined;
  const instance = id.slice(a + 1, b);
  if (instance.length === 0) return undefined;
  return { sender: id.slice(0, a), instance, seq };
}
