/**
 * `lars`: the command-line entry. Every command reads the same configuration
 * (flags > environment > file > defaults) and fails with one clear line and a
 * non-zero exit on bad arguments or an unreachable NATS.
 */
import { parseArgs, type ParseArgsConfig } from 'node:util';
import { CONFIG_KEYS, loadConfig } from '../config.ts';
import { LarsError, UsageError } from '../errors.ts';
import type { Command, CommandContext } from './command.ts';
import { nodeCommand } from './commands/node.ts';
import { routeCommand } from './commands/route.ts';
import { devCommand } from './commands/dev.ts';
import { extraCommands } from './commands/extra.ts';

const commands: Command[] = [nodeCommand, routeCommand, devCommand, ...extraCommands];

function sharedFlagsHelp(): string {
  const rows = Object.values(CONFIG_KEYS).map((k) => `  --${k.flag.padEnd(22)} ${k.help} (env ${k.env})`);
  return ['shared flags:', '  --config <file>          JSON config file (env LARS_CONFIG; default ./lars.config.json when present)', ...rows, '  -h, --help               this help'].join('\n');
}

function mainHelp(): string {
  return [
    'lars - load-balancing route system on NATS',
    '',
    'usage: lars <command> [args] [flags]',
    '',
    'commands:',
    ...commands.map((c) => `  ${c.name.padEnd(10)} ${c.summary.split('\n')[0]!.replace(/:$/, '')}`),
    '',
    sharedFlagsHelp(),
    '',
    "run 'lars <command> --help' for a command's arguments",
  ].join('\n');
}

function commandHelp(c: Command): string {
  const own = Object.entries(c.flags).map(([n, f]) => `  --${n.padEnd(22)} ${f.help}`);
  return [`usage: ${c.usage}`, '', c.summary, ...(own.length ? ['', 'flags:', ...own] : []), '', sharedFlagsHelp()].join('\n');
}

export async function main(argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
  if (!name || name === '-h' || name === '--help' || name === 'help') {
    console.log(mainHelp());
    return name ? 0 : 2;
  }
  const cmd = commands.find((c) => c.name === name);
  if (!cmd) {
    console.error(`lars: unknown command ${JSON.stringify(name)}; run 'lars --help'`);
    return 2;
  }
  const options: NonNullable<ParseArgsConfig['options']> = { help: { type: 'boolean', short: 'h' }, config: { type: 'string' } };
  for (const k of Object.values(CONFIG_KEYS)) options[k.flag] = { type: 'string' };
  for (const [n, f] of Object.entries(cmd.flags)) options[n] = f.boolean ? { type: 'boolean' } : { type: 'string', multiple: n === 'param' };
  let parsed: ReturnType<typeof parseArgs>;
  try {
    parsed = parseArgs({ args: rest, options, allowPositionals: true, strict: true });
  } catch (err) {
    console.error(`lars ${cmd.name}: ${(err as Error).message.split('\n')[0]}; run 'lars ${cmd.name} --help'`);
    return 2;
  }
  if (parsed.values['help']) {
    console.log(commandHelp(cmd));
    return 0;
  }
  const flags: Record<string, string | undefined> = {};
  const cmdFlags: Record<string, string | boolean | undefined> = {};
  for (const [k, v] of Object.entries(parsed.values)) {
    if (k in cmd.flags) cmdFlags[k] = Array.isArray(v) ? v.join('\u0000') : (v as string | boolean);
    else if (typeof v === 'string') flags[k] = v;
  }
  let stopResolve!: () => void;
  const stopSignal = new Promise<void>((r) => (stopResolve = r));
  const onSignal = () => stopResolve();
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  try {
    const config = loadConfig({ flags, file: flags['config'] });
    const ctx: CommandContext = { config, out: (l) => process.stdout.write(l + '\n'), stopSignal };
    return await cmd.run(parsed.positionals, cmdFlags, ctx);
  } catch (err) {
    if (err instanceof UsageError) {
      console.error(`lars ${cmd.name}: ${err.message}; run 'lars ${cmd.name} --help'`);
      return 2;
    }
    if (err instanceof LarsError) {
      console.error(`lars ${cmd.name}: ${err.message}`);
      return 1;
    }
    console.error(`lars ${cmd.name}: ${(err as Error)?.message ?? String(err)}`);
    return 1;
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  }
}
