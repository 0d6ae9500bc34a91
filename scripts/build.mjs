// `npm run build` (also run by `npm pack`/`npm publish` and by installs from
// git, through `prepack`): the package as plain JavaScript for Node.
//   dist/            ESM with .d.ts, from tsc (src/, actors/, schemas/ keep their layout)
//   dist/src/console/assets/  the web console's page, copied as it is
//   dist/cjs/        CommonJS for require() users: index.js (the SDK), http.js and grpc.js (the
//                    integrations, lars-nats/http and lars-nats/grpc), self-register-worker.js (the
//                    SDK's heartbeat thread); dependencies external
// Type errors fail the build.
import { spawnSync } from 'node:child_process';
import { cpSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
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
console.log('build: dist/ (ESM + .d.ts) and dist/cjs/{index,http,grpc,self-register-worker}.js (CommonJS)');
