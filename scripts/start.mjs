// `npm start`: installs npm dependencies when missing, then runs `lars dev`
// (which starts a local nats-server when none is reachable).
//
// The terminal's Ctrl-C reaches every process of the foreground group, `lars
// dev` included: this wrapper ignores it and waits for `lars dev` to stop
// what it started, then exits with its code. A SIGTERM sent to this process
// alone (a supervisor, `kill`) is passed on.
import { spawn } from 'node:child_process';
import { ensureNodeModules, root } from './lib.mjs';

ensureNodeModules();
const child = spawn(process.execPath, ['bin/lars.mjs', 'dev', ...process.argv.slice(2)], { cwd: root, stdio: 'inherit' });
process.on('SIGINT', () => {});
process.on('SIGTERM', () => child.kill('SIGTERM'));
child.on('exit', (code, signal) => process.exit(code ?? (signal ? 128 + 2 : 1)));
