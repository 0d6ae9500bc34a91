// `npm test`: installs what the suite needs (npm deps; nats-server and
// clickhouse-server from Debian when missing and possible), then runs the unit
// tier (no servers) and the integration tier (servers started by the tests).
import { ensureNodeModules, ensureDebianPackages, run } from './lib.mjs';

const integrationOnly = process.argv.includes('--integration-only');
const unitOnly = process.argv.includes('--unit-only');
ensureNodeModules();
let status = 0;
if (!integrationOnly) {
  status = run('npx', ['mocha', '--config', '.mocharc.unit.json']);
  if (status !== 0) process.exit(status);
}
if (!unitOnly) {
  if (!ensureDebianPackages([['nats-server', 'nats-server'], ['clickhouse-server', 'clickhouse-server']])) process.exit(1);
  status = run('npx', ['mocha', '--config', '.mocharc.integration.json']);
}
process.exit(status);
