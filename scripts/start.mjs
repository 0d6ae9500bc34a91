// `npm start`: installs npm dependencies when missing, then runs `lars dev`
// (which starts a local nats-server when none is reachable).
import { ensureNodeModules, run } from './lib.mjs';

ensureNodeModules();
process.exit(run('node', ['bin/lars.mjs', 'dev', ...process.argv.slice(2)]));
