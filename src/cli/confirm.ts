/** Yes/no questions on the terminal, for destructive commands. */
import { createInterface } from 'node:readline/promises';
import type { Readable, Writable } from 'node:stream';

export interface ConfirmIo {
  input: Readable & { isTTY?: boolean };
  output: Writable;
}

/**
 * Asks `question [y/N]` and resolves true only for y/yes. Resolves
 * undefined without asking when input is not a terminal: nobody can answer,
 * so a script must say --yes.
 */
export async function confirmOnTerminal(question: string, io: ConfirmIo = { input: process.stdin, output: process.stderr }): Promise<boolean | undefined> {
  if (io.input.isTTY !== true) return undefined;
  const rl = createInterface({ input: io.input, output: io.output, terminal: true });
  try {
    const answer = await rl.question(`${question} [y/N] `);
    return /^\s*y(es)?\s*$/i.test(answer);
  } finally {
    rl.close();
  }
}
