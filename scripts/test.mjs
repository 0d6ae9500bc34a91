// `npm test`: installs what the suite needs (npm deps; nats-server and
// clickhouse-server from Debian when missing and possible), then runs the unit
// tier (no servers) and the integration tier (servers started by the tests),
// and ends with one line: "N passed, N failed".
import { spawn } from 'node:child_process';
import { ensureNodeModules, ensureDebianPackages, root } from './lib.mjs';
import { ensureGo, runGo } from './go.mjs';

const integrationOnly = process.argv.includes('--integration-only');
const unitOnly = process.argv.includes('--unit-only');
ensureNodeModules();

const totals = { passed: 0, failed: 0, pending: 0 };

/** Runs one mocha tier, echoing its output, and adds its counts to the totals. */
function tier(config) {
  return new Promise((resolve) => {
    const child = spawn('npx', ['mocha', '--config', config], { cwd: root, stdio: ['ignore', 'pipe', 'inherit'] });
    let tail = '';
    child.stdout.on('data', (d) => {
      process.stdout.write(d);
      tail = (tail + d.toString()).slice(-4000);
    });
    child.on('exit', (code) => {
      const n = (re) => Number(re.exec(tail)?.[1] ?? 0);
      totals.passed += n(/(\d+) passing/);
      totals.failed += n(/(\d+) failing/);
      totals.pending += n(/(\d+) pending/);
      if (code !== 0 && n(/(\d+) failing/) === 0) totals.failed += 1; // crashed before reporting
      resolve(code ?? 1);
    });
  });
}

let status = 0;
if (!integrationOnly) status = await tier('.mocharc.unit.json');
if (status === 0 && !unitOnly) {
  if (!ensureDebianPackages([['nats-server', 'nats-server'], ['clickhouse-server', 'clickhouse-server'], ['clickhouse-client', 'clickhouse-client'], ['openssl', 'openssl']]) || !ensureGo()) process.exit(1);
  status = await tier('.mocharc.integration.json');
}
// the Go SDK (clients/go): vet, then its tests with the race detector (conformance vectors; its live tests run in the integration tier)
if (status === 0 && !integrationOnly) {
  if (!ensureGo()) process.exit(1);
  const vet = runGo(['vet', './...']);
  const go = vet === 0 ? runGo(['test', '-race', '-count=1', './...'], { stdio: 'pipe' }) : { status: vet, stdout: '', stderr: '' };
  if (go.stdout) process.stdout.write(go.stdout + go.stderr);
  const ok = vet === 0 && go.status === 0;
  if (ok) totals.passed += 1;
  else totals.failed += 1;
  console.log(`go vet + go test -race ./... (clients/go): ${ok ? 'ok' : 'FAILED'}`);
  if (!ok) status = 1;
}
console.log(`\n${totals.passed} passed, ${totals.failed} failed${totals.pending ? `, ${totals.pending} skipped` : ''}`);
process.exit(status);
