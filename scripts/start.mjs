// `npm start`: installs npm dependencies when missing, then runs `lars dev`
// (which starts a local nats-server when none is reachable).
//
// The terminal's Ctrl-C reaches every process of the foreground group, `lars
// dev` included: this wrapper ignores it and waits for `lars dev` to stop
// what it started, then exits with its code. A SIGTERM sent to this process
// alone (a supervisor, `kill`) is passed on, and so is the end of npm: a
// supervisor that stops `npm start` may end npm and its shell without this
// process hearing of it (see src/lib/lifecycle.ts, which does the same for
// `lars dev` under this process).
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { ensureNodeModules, root } from './lib.mjs';

/** A process's parent pid and command name (Linux /proc); undefined elsewhere. */
function procInfo(pid) {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const close = stat.lastIndexOf(')');
    return { comm: stat.slice(stat.indexOf('(') + 1, close), ppid: Number(stat.slice(close + 2).split(' ')[1]) };
  } catch {
    return undefined;
  }
}

ensureNodeModules();
const child = spawn(process.execPath, ['bin/lars.mjs', 'dev', ...process.argv.slice(2)], { cwd: root, stdio: 'inherit' });
process.on('SIGINT', () => {});
process.on('SIGTERM', () => child.kill('SIGTERM'));
// npm runs this through `sh -c`: the shell's parent (npm) is the one a supervisor stops
const parent = process.ppid;
const shellParent = ['sh', 'dash', 'bash'].includes(procInfo(parent)?.comm) ? procInfo(parent)?.ppid : undefined;
if (parent > 1) {
  const watch = setInterval(() => {
    const gone = process.ppid !== parent || (shellParent !== undefined && shellParent > 1 && procInfo(parent)?.ppid !== shellParent);
    if (!gone) return;
    clearInterval(watch);
    child.kill('SIGTERM');
  }, 1000);
  watch.unref();
}
child.on('exit', (code, signal) => process.exit(code ?? (signal ? 128 + 2 : 1)));
