// `npm run build` (also run by `npm pack`/`npm publish` and by installs from
// git, through `prepack`): the package as plain JavaScript for Node.
//   dist/            ESM with .d.ts, from tsc (src/, actors/, schemas/ keep their layout)
//   dist/cjs/        one CommonJS file for require() users (the SDK entry, dependencies external)
// Type errors fail the build.
import { spawnSync } from 'node:child_process';
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { build } from 'esbuild';
import { root } from './lib.mjs';

const dist = join(root, 'dist');
rmSync(dist, { recursive: true, force: true });

const tsc = spawnSync(process.execPath, [join(root, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', 'tsconfig.build.json'], { cwd: root, stdio: 'inherit' });
if (tsc.status !== 0) {
  console.error('build: tsc failed');
  process.exit(tsc.status ?? 1);
}
const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8'));
// dist/ is ESM whatever the consumer's package says; the version is what `lars --version` reads.
writeFileSync(join(dist, 'package.json'), JSON.stringify({ type: 'module', version: pkg.version }, null, 2) + '\n');

mkdirSync(join(dist, 'cjs'), { recursive: true });
await build({
  entryPoints: [join(root, 'src', 'index.ts')],
  outfile: join(dist, 'cjs', 'index.js'),
  bundle: true,
  format: 'cjs',
  platform: 'node',
  target: 'node20',
  // dependencies stay require()s of the installed packages; ESM-only ones load through Node's require(esm) (20.19+)
  packages: 'external',
  logLevel: 'warning',
});
writeFileSync(join(dist, 'cjs', 'package.json'), JSON.stringify({ type: 'commonjs' }, null, 2) + '\n');
console.log('build: dist/ (ESM + .d.ts) and dist/cjs/index.js (CommonJS)');
