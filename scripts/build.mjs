// `npm run build` (also run by `npm pack`/`npm publish` through `prepack`): the package as
// plain JavaScript for Node. As the `prepare` script (npm runs it in a checkout's `npm install`,
// and in the clone npm makes to install the package from a git URL, whose tarball is then packed
// without running `prepack`) it builds only what is missing or older than its sources, and does
// nothing where the compiler is not installed (`npm install --omit=dev`) or there are no
// sources: a checkout runs the TypeScript sources anyway (bin/lars.mjs).
//   dist/            ESM with .d.ts, from tsc (src/, actors/, schemas/ keep their layout)
//   dist/src/console/assets/  the web console's page, copied as it is
//   dist/cjs/        CommonJS for require() users: index.js (the SDK), http.js and grpc.js (the
//                    integrations, lars-nats/http and lars-nats/grpc), self-register-worker.js (the
//                    SDK's heartbeat thread); dependencies external
// Type errors fail the build.
import { spawnSync } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, readFileSync, readdirSync, rmSync, statSync, utimesSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { root } from './lib.mjs';

const dist = join(root, 'dist');
// Touched to when the last build began (outside dist/, which the package ships).
const stamp = join(root, 'node_modules', '.cache', 'lars-nats', 'build-stamp');

/** The newest modification time (ms) of the files the build reads. */
function newestInput() {
  let newest = 0;
  const visit = (p) => {
    const st = statSync(p, { throwIfNoEntry: false });
    if (!st) return;
    if (st.isDirectory()) {
      for (const e of readdirSync(p)) if (e !== 'node_modules') visit(join(p, e));
    } else newest = Math.max(newest, st.mtimeMs);
  };
  for (const p of ['src', 'actors', 'schemas', 'package.json', 'tsconfig.json', 'tsconfig.build.json', 'scripts/build.mjs']) visit(join(root, p));
  return newest;
}

if (process.env.npm_lifecycle_event === 'prepare') {
  if (!existsSync(join(root, 'src')) || !existsSync(join(root, 'node_modules', 'typescript', 'bin', 'tsc')) || !existsSync(join(root, 'node_modules', 'esbuild'))) {
    console.log('build: skipped (no sources, or typescript and esbuild, dev dependencies, are not installed); run `npm run build` where they are');
    process.exit(0);
  }
  const built = statSync(stamp, { throwIfNoEntry: false });
  const complete = ['src/cli/main.js', 'src/index.js', 'cjs/index.js'].every((f) => existsSync(join(dist, f)));
  if (built && complete && built.mtimeMs >= newestInput()) {
    console.log('build: dist/ is up to date');
    process.exit(0);
  }
}

const { build } = await import('esbuild');
const startedAt = Date.now();
rmSync(dist, { recursive: true, force: true });

const tsc = spawnSync(process.execPath, [join(root, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', 'tsconfig.build.json'], { cwd: root, stdio: 'inherit' });
if (tsc.status !== 0) {
  console.error('build: tsc failed');
  process.exit(tsc.status ?? 1);
}
const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8'));
// The web console's page (plain files served as they are) beside its compiled server.
cpSync(join(root, 'src', 'console', 'assets'), join(dist, 'src', 'console', 'assets'), { recursive: true });
// dist/ is ESM whatever the consumer's package says; the version is what `lars --version` reads.
writeFileSync(join(dist, 'package.json'), JSON.stringify({ type: 'module', version: pkg.version }, null, 2) + '\n');

mkdirSync(join(dist, 'cjs'), { recursive: true });
// The SDK entry, and the RPC integrations as entries of their own (lars-nats/http, lars-nats/grpc) so that
// users without undici or gRPC never load them. The integrations take the SDK's errors from index.js:
// one LarsError class for `instanceof` across entries.
const sdkErrors = join(root, 'src', 'errors.ts');
await build({
  entryPoints: {
    index: join(root, 'src', 'index.ts'),
    http: join(root, 'src', 'integrations', 'http.ts'),
    grpc: join(root, 'src', 'integrations', 'grpc.ts'),
    // registerSelf's heartbeat thread loads this file beside the bundle
    'self-register-worker': join(root, 'src', 'agent', 'self-register-worker.ts'),
  },
  outdir: join(dist, 'cjs'),
  bundle: true,
  format: 'cjs',
  platform: 'node',
  target: 'node20',
  // dependencies stay require()s of the installed packages; ESM-only ones load through Node's require(esm) (20.19+)
  packages: 'external',
  // modules that find files beside themselves read __filename in CommonJS and import.meta.url only in ESM
  define: { 'import.meta.url': 'undefined' },
  logLevel: 'warning',
  plugins: [
    {
      name: 'integrations-share-sdk-errors',
      setup(b) {
        b.onResolve({ filter: /errors\.ts$/ }, (args) => {
          if (!args.importer.includes(join('src', 'integrations'))) return undefined;
          return join(args.resolveDir, args.path) === sdkErrors ? { path: './index.js', external: true } : undefined;
        });
      },
    },
  ],
});
writeFileSync(join(dist, 'cjs', 'package.json'), JSON.stringify({ type: 'commonjs' }, null, 2) + '\n');
// Stamped with when it began: a source saved during the build makes the next `prepare` build again.
mkdirSync(dirname(stamp), { recursive: true });
writeFileSync(stamp, '');
const began = new Date(startedAt);
utimesSync(stamp, began, began);
console.log('build: dist/ (ESM + .d.ts) and dist/cjs/{index,http,grpc,self-register-worker}.js (CommonJS)');
