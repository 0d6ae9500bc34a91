/** `lars dev`: the whole system on one machine with a live demo (what `npm start` runs). */
import { runDemo } from '../../dev/demo.ts';
import { UsageError } from '../../lib/errors.ts';
import type { Command } from '../command.ts';
import { withLifecycle } from '../../lib/lifecycle.ts';

export const devCommand: Command = {
  name: 'dev',
  summary: 'run NATS (if none is reachable), a route node and a live fault demo',
  usage: 'lars dev [--duration <seconds>] [--plain] [--speed <factor>] [--console <port|off>] [--force]',
  flags: {
    duration: { help: 'stop by itself after this many seconds', placeholder: 'seconds', defaultText: 'until Ctrl-C' },
    speed: { help: 'run the demo scenario this many times faster, up to 100', placeholder: 'factor', defaultText: '1' },
    plain: { help: 'print one line per change instead of redrawing the screen', boolean: true },
    force: { help: 'on a NATS it did not start, run even where route nodes or another route 1.1 exist under the prefix (the demo replaces route 1.1)', boolean: true },
    console: { help: "serve the web console on this loopback port, on the demo's own ClickHouse (a free port when it is taken; 0: any free port; off: none)", placeholder: 'port|off', defaultText: '7070' },
  },
  async run(_args, flags, ctx) {
    let durationS: number | undefined;
    if (flags['duration'] !== undefined) {
      durationS = Number(flags['duration']);
      if (!(durationS > 0)) throw new UsageError('--duration must be a positive number of seconds');
    }
    const speed = flags['speed'] === undefined ? 1 : Number(flags['speed']);
    if (!(speed > 0 && speed <= 100)) throw new UsageError('--speed must be a number in (0, 100]');
    const consoleFlag = flags['console'] ?? '7070';
    if (typeof consoleFlag !== 'string' || !(consoleFlag === 'off' || (/^\d{1,5}$/.test(consoleFlag) && Number(consoleFlag) <= 65535))) {
      throw new UsageError(`--console takes a port number (0-65535) or off, got ${JSON.stringify(consoleFlag)}`);
    }
    const consolePort = consoleFlag === 'off' ? undefined : Number(consoleFlag);
    const tty = !flags['plain'] && process.stdout.isTTY === true;
    return withLifecycle(ctx, (life) => runDemo({ config: ctx.config, out: (l) => ctx.out(l), life, durationS, tty, speed, consolePort, force: flags['force'] === true }));
  },
};
