// Helpers shared by the npm scripts (plain JS: they run before dependencies are installed).
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';

export const root = join(dirname(fileURLToPath(import.meta.url)), '..');

/** Installs npm dependencies when any direct dependency is missing. */
export function ensureNodeModules() {
  const pkg = JSON.parse(spawnSync('cat', [join(root, 'package.json')], { encoding: 'utf8' }).stdout);
  const need = [...Object.keys(pkg.dependencies ?? {}), ...Object.keys(pkg.devDependencies ?? {})];
  const missing = need.filter((n) => !existsSync(join(root, 'node_modules', n, 'package.json')));
  if (missing.length === 0) return;
  console.error(`[lars] installing npm dependencies (missing: ${missing.slice(0, 5).join(', ')}${missing.length > 5 ? ', ...' : ''})`);
  // npm install rather than npm ci: chdb lists optional per-platform packages
  // that are not all published, and npm ci refuses a lock file without them.
  const r = spawnSync('npm', ['install', '--no-audit', '--no-fund'], { cwd: root, stdio: 'inherit' });
  if (r.status !== 0) {
    console.error('[lars] npm install failed; run it by hand: npm install');
    process.exit(1);
  }
}

function onPath(bin) {
  if (['/usr/sbin/', '/usr/bin/', '/usr/local/bin/'].some((d) => existsSync(d + bin))) return true;
  return spawnSync('sh', ['-c', `command -v ${bin}`]).status === 0;
}

/**
 * Installs Debian packages for binaries that are missing, when this process
 * may (root with apt-get); otherwise prints the exact command and returns false.
 */
export function ensureDebianPackages(pairs) {
  const missing = pairs.filter(([bin]) => !onPath(bin));
  if (missing.length === 0) return true;
  const pkgs = [...new Set(missing.map(([, pkg]) => pkg))];
  const cmd = `apt-get install -y ${pkgs.join(' ')}`;
  const isRoot = typeof process.getuid === 'function' && process.getuid() === 0;
  if (!isRoot || !onPath('apt-get')) {
    console.error(`[lars] missing ${missing.map(([b]) => b).join(', ')}; install with: sudo ${cmd}`);
    return false;
  }
  console.error(`[lars] installing ${pkgs.join(', ')} from Debian packages`);
  let r = spawnSync('sh', ['-c', `DEBIAN_FRONTEND=noninteractive ${cmd}`], { stdio: 'inherit' });
  if (r.status !== 0) {
    spawnSync('sh', ['-c', 'apt-get update'], { stdio: 'inherit' });
    r = spawnSync('sh', ['-c', `DEBIAN_FRONTEND=noninteractive ${cmd}`], { stdio: 'inherit' });
  }
  if (r.status !== 0) {
    console.error(`[lars] could not install; run: sudo ${cmd}`);
    return false;
  }
  return true;
}

export function run(cmd, args, opts = {}) {
  const r = spawnSync(cmd, args, { cwd: root, stdio: 'inherit', ...opts });
  return r.status ?? 1;
}
