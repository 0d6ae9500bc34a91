// The Go SDK's build (clients/go), with Go and its libraries from Debian
// (golang-go, golang-github-nats-io-go-nats-dev, golang-google-grpc-dev): no module downloads. The
// module's go.mod names its dependencies for users elsewhere; here the
// package builds in GOPATH mode, with GOPATH a directory linking the SDK at
// its import path, followed by Debian's /usr/share/gocode.
//
//   node scripts/go.mjs vet ./...          any go command, run in the SDK's directory
//   node scripts/go.mjs test -race ./...
//
// Used by .ci/run (through scripts/test.mjs), the test tier and `npm run bench -- go`.
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, symlinkSync, readlinkSync, rmSync } from 'node:fs';
import { tmpdir, userInfo } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ensureDebianPackages, root } from './lib.mjs';

export const GO_MODULE = 'github.com/lars-nats/lars-nats/clients/go';
/** Go, the NATS client library, grpc-go (the gRPC resolver and balancer), and the C toolchain `go test -race` needs (cgo). */
export const GO_DEBIAN_PACKAGES = ['golang-go', 'golang-github-nats-io-go-nats-dev', 'golang-google-grpc-dev', 'gcc', 'libc6-dev'];
const GOCODE = '/usr/share/gocode';
/** The libraries' source trees (a library has no binary to look for: its sources are what is checked). */
const LIBRARY_SRCS = [join(GOCODE, 'src', 'github.com', 'nats-io', 'nats.go'), join(GOCODE, 'src', 'google.golang.org', 'grpc')];

/** Installs Go and the libraries from Debian when missing (as root); false when they are not there after. */
export function ensureGo() {
  if (!ensureDebianPackages([['go', 'golang-go'], ['gcc', 'gcc']])) return false;
  const present = () => LIBRARY_SRCS.every((p) => existsSync(p));
  if (present()) return true;
  const isRoot = typeof process.getuid === 'function' && process.getuid() === 0;
  const cmd = `apt-get install -y ${GO_DEBIAN_PACKAGES.join(' ')}`;
  if (!isRoot) {
    console.error(`[lars] missing ${LIBRARY_SRCS.filter((p) => !existsSync(p)).join(', ')}; install with: sudo ${cmd}`);
    return false;
  }
  spawnSync('sh', ['-c', `DEBIAN_FRONTEND=noninteractive ${cmd} || (apt-get update && DEBIAN_FRONTEND=noninteractive ${cmd})`], { stdio: 'inherit' });
  return present();
}

/** The SDK's directory as GOPATH mode sees it (a link under a GOPATH private to this user and checkout), and the environment to build it with. */
export function goEnv() {
  // One GOPATH per user and checkout: two checkouts (worktrees) building at once never see each other's sources.
  const checkout = createHash('sha256').update(root).digest('hex').slice(0, 12);
  const gopath = join(tmpdir(), `lars-gopath-${userInfo().uid}-${checkout}`);
  const link = join(gopath, 'src', GO_MODULE);
  const target = join(root, 'clients', 'go');
  let current;
  try {
    current = readlinkSync(link);
  } catch {
    current = undefined;
  }
  if (current !== target) {
    if (current !== undefined) rmSync(link, { force: true });
    mkdirSync(dirname(link), { recursive: true });
    symlinkSync(target, link);
  }
  const env = { ...process.env, GOPATH: `${gopath}:${GOCODE}`, GO111MODULE: 'off', GOFLAGS: '', GOPROXY: 'off', PWD: link };
  return { dir: link, env };
}

/** Runs `go <args>` in the SDK's directory (or `cwd`); returns the exit status (output inherited unless `opts.stdio` says otherwise). */
export function runGo(args, opts = {}, cwd = undefined) {
  const { dir: sdk, env } = goEnv();
  const dir = cwd ?? sdk;
  const r = spawnSync('go', args, { cwd: dir, env: { ...env, ...(opts.env ?? {}) }, stdio: opts.stdio ?? 'inherit', encoding: 'utf8', timeout: opts.timeoutMs });
  if (opts.stdio === 'pipe') return r;
  return r.status ?? 1;
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  if (!ensureGo()) process.exit(1);
  process.exit(runGo(process.argv.slice(2)));
}
