// `npm run chaos -- [--minutes 30] [--seed N] [--out dir] [--rate calls/s]`: the long nemesis run
// (test/nemesis/main.ts, docs/chaos.md): a 3-server NATS cluster, route nodes, sinks, clickhouse-server
// and agents under random faults for the given minutes, then the checks; the report (markdown, JSON,
// timeline SVG) goes into the out dir (default bench/results/chaos/) and the figures into
// bench/results/latest.json (group `chaos`). Exits 1 when a check failed.
import { join } from 'node:path';
import { ensureNodeModules, ensureDebianPackages, run, root } from './lib.mjs';

ensureNodeModules();
if (!ensureDebianPackages([['nats-server', 'nats-server'], ['clickhouse-server', 'clickhouse-server']])) process.exit(1);
process.exit(run('node', ['--import', 'tsx', join(root, 'test', 'nemesis', 'main.ts'), ...process.argv.slice(2)]));
