// `npm run bench -- <group> [...] [--quick]`: runs benchmark groups (bench/<group>.ts),
// each of which starts the servers it needs, prints a table and merges its figures
// into bench/results/latest.json. With no group, runs them all. A group is a file
// bench/<group>.ts; files starting with `_`, lib.ts and folders (bench/core/, the
// modules of a group) are not groups. Options (`--quick`) are passed to every group.
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { ensureNodeModules, ensureDebianPackages, run, root } from './lib.mjs';

ensureNodeModules();
const all = readdirSync(join(root, 'bench'), { withFileTypes: true })
  .filter((e) => e.isFile() && e.name.endsWith('.ts') && e.name !== 'lib.ts' && !e.name.startsWith('_'))
  .map((e) => e.name.slice(0, -3));
const groups = process.argv.slice(2).filter((a) => !a.startsWith('-'));
const chosen = groups.length > 0 ? groups : all;
for (const g of chosen) {
  if (!all.includes(g)) {
    console.error(`unknown bench group ${JSON.stringify(g)}; groups: ${all.join(', ')}`);
    process.exit(2);
  }
}
if (!ensureDebianPackages([['nats-server', 'nats-server'], ['clickhouse-server', 'clickhouse-server']])) process.exit(1);
for (const g of chosen) {
  const status = run('node', ['--import', 'tsx', '--expose-gc', join('bench', `${g}.ts`), ...process.argv.slice(2).filter((a) => a.startsWith('-'))]);
  if (status !== 0) process.exit(status);
}
