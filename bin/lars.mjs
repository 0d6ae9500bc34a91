#!/usr/bin/env node
// The `lars` command. In a checkout (src/ present) it runs the TypeScript
// sources through tsx's loader, so an edit needs no build; the published
// package has no src/ and runs the compiled dist/.
import { existsSync } from 'node:fs';

const source = new URL('../src/cli/main.ts', import.meta.url);
let main;
if (existsSync(source)) {
  const { register } = await import('tsx/esm/api');
  register();
  ({ main } = await import(source.href));
} else {
  ({ main } = await import('../dist/src/cli/main.js'));
}
// A reader that goes away (`lars route ls | head`) ends the output, not with a stack trace: a
// long-running command stops as on SIGTERM, any other finishes with nothing more shown.
process.stdout.on('error', (err) => {
  if (err.code !== 'EPIPE') throw err;
  process.emit('SIGTERM', 'SIGTERM');
});
process.exitCode = await main(process.argv.slice(2));
