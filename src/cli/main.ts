/**
 * `lars`: the command-line entry, on yargs. Every command reads the same
 * configuration (flags > environment > file > defaults) and fails with one
 * line on stderr and an exit code from src/cli/exit.ts: 2 when the command
 * line or configuration is wrong, 1 for everything else, 0 on success.
 *
 * `lars` alone and a command group alone (`lars route`) print their help
 * and exit 0: asking for nothing is not an error. `lars help <command>` is
 * `lars <command> --help`.
 */
import { readFileSync } from 'node:fs';
import yargs, { type Argv, type Options } from 'yargs';
import { CONFIG_KEYS, closest, defaultConfig, loadConfig, replicasOf, type ConfigKeySpec } from '../lib/config.ts';
import { setProcessReplicas } from '../nats/streams.ts';
import { UsageError } from '../lib/errors.ts';
import type { Command, CommandContext, CommandGroup, FlagValue } from './command.ts';
import { ExitCode, exitCodeFor, wantsHelpHint } from './exit.ts';
import { confirmOnTerminal } from './confirm.ts';
import { nodeCommand } from './commands/node.ts';
import { routeGroup } from './commands/route.ts';
import { hostGroup } from './commands/host.ts';
import { devCommand } from './commands/dev.ts';
import { extraCommands } from './commands/extra.ts';

type Entry = Command | CommandGroup;
const isGroup = (e: Entry): e is CommandGroup => 'commands' in e;

export const COMMANDS: Entry[] = [nodeCommand, routeGroup, hostGroup, devCommand, ...extraCommands];

const CONFIG_GROUP = 'Configuration (flags > environment > config file > defaults):';

/** The package version: the nearest package.json above this file (src/cli in a checkout, dist/src/cli when built). */
function version(): string {
  for (const up of ['../../package.json', '../../../package.json']) {
    try {
      const pkg = JSON.parse(readFileSync(new URL(up, import.meta.url), 'utf8')) as { name?: string; version?: string };
      if (pkg.name === 'lars-nats' && pkg.version) return pkg.version;
    } catch {
      // not there: try the next level
    }
  }
  return 'unknown';
}

/** The command path named by argv's leading words (`['route', 'add']`), as far as it matches. */
function commandPath(argv: string[]): { path: string[]; entry: Entry | undefined; rest: string[] } {
  const words = argv.filter((a) => !a.startsWith('-'));
  const top = COMMANDS.find((c) => c.name === words[0]);
  if (!top) return { path: [], entry: undefined, rest: words };
  if (!isGroup(top)) return { path: [top.name], entry: top, rest: words.slice(1) };
  const sub = top.commands.find((c) => c.name === words[1]);
  return sub ? { path: [top.name, sub.name], entry: sub, rest: words.slice(2) } : { path: [top.name], entry: top, rest: words.slice(1) };
}

/** Every top-level command name, `completion` (yargs' own) included. */
const commandNames = (): string[] => [...COMMANDS.map((c) => c.name), 'completion'];

const COMPLETION_HELP = `lars completion

print a bash/zsh completion script for lars (commands, sub-commands and flags); install it with
  lars completion >> ~/.bashrc    (or ~/.zshrc)
then open a new shell. It needs \`lars\` on the PATH (npm install -g /path/to/lars-nats-<version>.tgz, or npm link in a clone).`;

/** What a person types to reach the help of `path`. */
const helpOf = (path: string[]) => `lars ${[...path, '--help'].join(' ')}`;

/** Turns yargs' validation messages into this CLI's wording. */
function usageMessage(msg: string, argv: string[]): string {
  const { path, entry } = commandPath(argv);
  const commandFlags = entry && !isGroup(entry) ? Object.entries(entry.flags) : [];
  const flagNames = [...Object.values(CONFIG_KEYS).map((k: ConfigKeySpec) => k.flag), 'config', 'help', 'version', ...commandFlags.map(([n]) => n)];
  const known = new Set([...flagNames, 'h', ...commandFlags.flatMap(([, f]) => (f.alias ? [f.alias] : []))]);
  // an unknown flag can swallow the next word as its value and confuse what yargs reports: name the flag first
  const unknownFlag = argv
    .filter((a) => /^--?[A-Za-z]/.test(a))
    .map((a) => a.replace(/^--?(no-)?/, '').split('=')[0]!)
    .find((n) => !known.has(n));
  if (unknownFlag !== undefined && !/^(Not enough arguments following|Invalid values)/.test(msg)) {
    const near = closest(unknownFlag, flagNames);
    return `unknown option ${unknownFlag.length === 1 ? '-' : '--'}${unknownFlag}${near ? `; did you mean --${near}?` : ''}`;
  }
  const unknown = /^Unknown arguments?: (.+)$/.exec(msg);
  if (unknown) {
    const word = unknown[1]!.split(', ')[0]!;
    if (!entry) {
      const near = closest(word, commandNames());
      return `unknown command ${JSON.stringify(word)}${near ? `; did you mean ${near}?` : `; commands: ${commandNames().join(', ')}`}`;
    }
    if (isGroup(entry)) {
      const subs = entry.commands.map((c) => c.name);
      const near = closest(word, subs);
      return `unknown ${entry.name} command ${JSON.stringify(word)}${near ? `; did you mean ${near}?` : `; use ${subs.join(', ')}`}`;
    }
    return `unexpected argument ${JSON.stringify(word)}`;
  }
  if (/^Did you mean (.+)\?$/.test(msg)) {
    const word = argv.find((a) => !a.startsWith('-') && !path.includes(a)) ?? '';
    const names = entry && isGroup(entry) ? entry.commands.map((c) => c.name) : commandNames();
    const near = closest(word, names);
    return `unknown ${path.length ? `${path.join(' ')} ` : ''}command ${JSON.stringify(word)}; ${near ? `did you mean ${near}?` : `use ${names.join(', ')}`}`;
  }
  const missing = /^Not enough non-option arguments: got (\d+), need at least (\d+)$/.exec(msg);
  if (missing && entry && !isGroup(entry)) {
    const arg = entry.args?.[Number(missing[1])];
    if (arg) return `missing ${arg.name} (${arg.help})`;
  }
  const noValue = /^Not enough arguments following: (.+)$/.exec(msg);
  if (noValue) return `--${noValue[1]} needs a value`;
  const choice = /Argument: ([\w-]+), Given: (.+), Choices: (.+)$/m.exec(msg);
  if (choice) return `--${choice[1]} must be one of ${choice[3]!.replaceAll('"', '')}, got ${choice[2]}`;
  return msg.split('\n')[0]!;
}

function placeholderOf(f: { placeholder?: string; boolean?: boolean; choices?: readonly string[] }): string {
  if (f.boolean) return '';
  if (f.choices) return ` <${f.choices.join('|')}>`;
  return ` <${f.placeholder ?? 'value'}>`;
}

function describeFlag(help: string, f: { placeholder?: string; boolean?: boolean; choices?: readonly string[]; defaultText?: string }, extra = ''): string {
  return `${placeholderOf(f).trim() ? `${placeholderOf(f).trim()}  ` : ''}${help}${extra}${f.defaultText !== undefined ? ` [default: ${f.defaultText}]` : ''}`;
}

/** Where a command's help sends the reader for the global flags (listed once, in `lars --help`). */
export const GLOBAL_FLAGS_LINE = 'global flags: see lars --help';

/** The global (configuration) flags; `hidden`: parsed but left out of the help (every command's but `lars --help`). */
function configOptions(hidden = false): Record<string, Options> {
  const defaults = defaultConfig() as unknown as Record<string, string | number>;
  const opts: Record<string, Options> = {
    config: { type: 'string', requiresArg: true, group: CONFIG_GROUP, hidden, describe: '<file>  JSON config file (env LARS_CONFIG) [default: ./lars.config.json when present]' },
  };
  for (const [key, s] of Object.entries(CONFIG_KEYS)) {
    const spec: ConfigKeySpec = s;
    const def = key === 'nodeId' ? '<hostname>-<pid>' : String(defaults[key] ?? '');
    opts[spec.flag] = {
      type: 'string',
      requiresArg: true,
      group: CONFIG_GROUP,
      hidden,
      describe: describeFlag(spec.help, { placeholder: spec.placeholder, choices: spec.choices, defaultText: def === '' ? undefined : def }, ` (env ${spec.env})`),
    };
  }
  return opts;
}

/** Where a running command's outcome is kept (yargs handlers return nothing). */
interface RunState {
  code: number;
  error?: unknown;
  path: string[];
}

function commandSpec(c: Command): string {
  const args = (c.args ?? []).map((a) => (a.variadic ? `[${a.name}..]` : a.optional ? `[${a.name}]` : `<${a.name}>`));
  return [c.name, ...args].join(' ');
}

function build(y: Argv, c: Command, path: string[]): Argv {
  y.usage(c.usage.replace(/^lars /, '$0 ') + (c.summary.includes('\n') ? '' : `\n\n${c.summary}`));
  // one epilog: yargs runs several together without a blank line between them
  y.epilog(c.summary.includes('\n') ? `${c.summary}\n\n${GLOBAL_FLAGS_LINE}` : GLOBAL_FLAGS_LINE);
  for (const a of c.args ?? []) y.positional(a.name, { type: 'string', describe: a.help });
  for (const [name, f] of Object.entries(c.flags)) {
    y.option(name, {
      group: `${path.join(' ')} options:`,
      type: f.boolean ? 'boolean' : 'string',
      describe: describeFlag(f.help, f),
      ...(f.choices ? { choices: [...f.choices] } : {}),
      ...(f.alias ? { alias: f.alias } : {}),
      ...(f.boolean ? {} : { requiresArg: true }),
    });
  }
  y.options(configOptions(true));
  for (const [cmd, what] of c.examples ?? []) y.example(cmd, what);
  return y;
}

async function runCommand(c: Command, path: string[], argv: Record<string, unknown>, state: RunState): Promise<void> {
  state.path = path;
  const args: string[] = [];
  for (const a of c.args ?? []) {
    const v = argv[a.name];
    if (Array.isArray(v)) args.push(...v.map((x) => String(x as string)));
    else if (typeof v === 'string') args.push(v);
  }
  const flags: Record<string, FlagValue> = {};
  for (const [name, f] of Object.entries(c.flags)) {
    const v = argv[name];
    if (v === undefined) continue;
    if (f.boolean) flags[name] = v === true;
    else if (f.multiple) flags[name] = (Array.isArray(v) ? v : [v]).map(String);
    else flags[name] = String(Array.isArray(v) ? v[v.length - 1] : v);
  }
  const configFlags: Record<string, string | undefined> = {};
  for (const k of ['config', ...Object.values(CONFIG_KEYS).map((s: ConfigKeySpec) => s.flag)]) {
    const v = argv[k];
    if (v !== undefined) configFlags[k] = String(Array.isArray(v) ? v[v.length - 1] : v);
  }
  let stopResolve!: () => void;
  const stopSignal = new Promise<void>((r) => (stopResolve = r));
  const onSignal = () => stopResolve();
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  try {
    const config = loadConfig({ flags: configFlags, file: configFlags['config'] });
    setProcessReplicas(replicasOf(config));
    const ctx: CommandContext = {
      config,
      out: (l) => process.stdout.write(l + '\n'),
      note: (l) => process.stderr.write(l + '\n'),
      confirm: (q) => confirmOnTerminal(q),
      stopSignal,
    };
    state.code = await c.run(args, flags, ctx);
  } catch (err) {
    state.error = err;
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  }
}

function parser(argv: string[], state: RunState): Argv {
  const y: Argv = yargs(argv)
    .scriptName('lars')
    .usage('$0 <command> [args] [flags]\n\nLars on NATS: load-balancing route system')
    .exitProcess(false)
    .strict()
    .recommendCommands()
    .parserConfiguration({ 'parse-numbers': false, 'parse-positional-numbers': false })
    .options(configOptions())
    .wrap(Math.min(110, process.stdout.columns || 100))
    .completion('completion', 'print a bash/zsh completion script (lars completion >> ~/.bashrc)')
    .version(version())
    .help()
    .alias('h', 'help')
    .epilog("'lars help <command>' or 'lars <command> --help' shows a command's arguments. Exit codes: 0 ok, 1 failure, 2 usage or config error.")
    .fail((msg: string | undefined, err: Error | undefined) => {
      // Command handlers keep their own errors (runCommand), so whatever reaches here is a usage error found by yargs.
      throw new UsageError(usageMessage(msg ?? err?.message ?? 'bad usage', argv));
    });
  for (const e of COMMANDS) {
    if (isGroup(e)) {
      y.command(
        e.name,
        e.summary,
        (g) => {
          g.usage(`$0 ${e.name} <command> [args] [flags]\n\n${e.summary}`);
          g.options(configOptions(true));
          g.epilog(GLOBAL_FLAGS_LINE);
          for (const c of e.commands) {
            g.command(commandSpec(c), c.summary.split('\n')[0]!, (cy) => build(cy, c, [e.name, c.name]), (a) => runCommand(c, [e.name, c.name], a, state));
          }
          return g;
        },
        () => {
          // only reached with no sub-command: main() turns that into --help before parsing
        },
      );
    } else {
      y.command(commandSpec(e), e.summary.split('\n')[0]!.replace(/:$/, ''), (cy) => build(cy, e, [e.name]), (a) => runCommand(e, [e.name], a, state));
    }
  }
  return y;
}

/** `lars help x y` → `lars x y --help`; `lars` and `lars <group>` alone → their help. */
function normalize(argv: string[]): string[] {
  if (argv[0] === 'help') {
    const words = argv.slice(1).filter((a) => !a.startsWith('-'));
    if (words[0] === 'completion') return ['completion', '--help'];
    const { path } = commandPath(words);
    if (path.length < words.length) {
      const scope = path.length ? `${path.join(' ')} ` : '';
      throw new UsageError(`no help for unknown ${scope}command ${JSON.stringify(words[path.length])}`);
    }
    return [...argv.slice(1), '--help'];
  }
  if (argv.length === 0) return ['--help'];
  const group = COMMANDS.find((c) => c.name === argv[0]);
  if (group && isGroup(group) && argv.length === 1) return [argv[0]!, '--help'];
  return argv;
}

export async function main(rawArgv: string[]): Promise<number> {
  let argv = rawArgv;
  const state: RunState = { code: ExitCode.ok, path: [] };
  try {
    argv = normalize(rawArgv);
    const y = parser(argv, state);
    // yargs prints the script but then goes on parsing `completion` as a command when it may not exit the process
    if (argv[0] === 'completion') {
      state.path = ['completion'];
      if (argv.length === 1) y.showCompletionScript();
      else if (argv.slice(1).every((a) => a === '--help' || a === '-h')) process.stdout.write(`${COMPLETION_HELP}\n`);
      else throw new UsageError(`unexpected argument ${JSON.stringify(argv[1])}`);
    } else await y.parseAsync();
  } catch (err) {
    state.error = err;
    state.path = argv[0] === 'completion' ? ['completion'] : commandPath(argv).path;
  }
  if (state.error === undefined) return state.code;
  const err = state.error;
  const where = ['lars', ...state.path].join(' ');
  const message = err instanceof Error ? err.message : JSON.stringify(err);
  process.stderr.write(`${where}: ${message.split('\n')[0]}${wantsHelpHint(err) ? `; run '${helpOf(state.path)}'` : ''}\n`);
  return exitCodeFor(err);
}
