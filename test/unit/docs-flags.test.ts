import { readFileSync } from 'node:fs';
import { expect } from 'chai';
import { CONFIG_KEYS, type ConfigKeySpec } from '../../src/lib/config.ts';
import { COMMANDS } from '../../src/cli/main.ts';
import type { Command, CommandGroup } from '../../src/cli/command.ts';

/** The documents a user follows, checked line by line. */
const DOCS = ['README.md', 'docs/operations.md', 'docs/cluster.md', 'docs/metrics.md', 'docs/console.md', 'docs/agent.md', 'docs/sidecar.md', 'docs/simulate.md', 'docs/analytics.md', 'docs/xds.md'];
/** Flags in the docs that are not lars': docker build's, and a typo shown to show the suggestion. */
const NOT_LARS = new Set(['build-arg', 'jsn']);

const GLOBAL = new Set([...Object.values(CONFIG_KEYS).map((s: ConfigKeySpec) => s.flag), 'config', 'help', 'version']);

function flagsOf(c: Command): Set<string> {
  return new Set(Object.entries(c.flags).flatMap(([n, f]) => (f.alias ? [n, f.alias] : [n])));
}

/** Every command by its path (`route add`), and the flags any command has. */
function commands(): { byPath: Map<string, Set<string>>; any: Set<string> } {
  const byPath = new Map<string, Set<string>>();
  for (const e of COMMANDS) {
    if ('commands' in e) for (const c of (e as CommandGroup).commands) byPath.set(`${e.name} ${c.name}`, flagsOf(c));
    else byPath.set(e.name, flagsOf(e));
  }
  return { byPath, any: new Set([...byPath.values()].flatMap((s) => [...s])) };
}

/** Code of a document: fenced blocks line by line, and every inline `code` span, each with its line number. */
function codeOf(text: string): Array<{ line: number; code: string }> {
  const out: Array<{ line: number; code: string }> = [];
  let fenced = false;
  text.split('\n').forEach((l, i) => {
    if (l.trimStart().startsWith('```')) {
      fenced = !fenced;
      return;
    }
    if (fenced) out.push({ line: i + 1, code: l });
    else for (const m of l.matchAll(/`([^`]+)`/g)) out.push({ line: i + 1, code: m[1]! });
  });
  return out;
}

/** Whether `flag` names a flag in `known`; `nats-tls-` (written `--nats-tls-*`) stands for every flag it starts. */
function known(flag: string, set: Set<string>): boolean {
  return flag.endsWith('-') ? [...set].some((f) => f.startsWith(flag)) : set.has(flag);
}

describe('docs - every flag a document names exists', () => {
  it('docs - a flag in a lars command line is a global flag (src/lib/config.ts) or one of that command; a flag alone is one of some command', () => {
    const { byPath, any } = commands();
    const wrong: string[] = [];
    for (const doc of DOCS) {
      const text = readFileSync(new URL(`../../${doc}`, import.meta.url), 'utf8');
      for (const { line, code } of codeOf(text)) {
        // each `lars <command>` in the span, up to the next one or a shell separator
        const runs = [...code.matchAll(/\blars\s+([a-z]+)(?:\s+([a-z]+))?([^|;&#]*)/g)];
        for (const r of runs) {
          const flags = [...(r[3] ?? '').matchAll(/(?:^|[\s[(|])--([a-z][a-z-]*)/g)].map((m) => m[1]!);
          const own = byPath.get(`${r[1]} ${r[2]}`) ?? byPath.get(r[1]!);
          if (!own) continue;
          for (const f of flags) if (!known(f, GLOBAL) && !known(f, own)) wrong.push(`${doc}:${line}: --${f} in \`${r[0].trim()}\``);
        }
        if (runs.length === 0) {
          const lone = /^--([a-z][a-z-]*)/.exec(code.trim());
          if (lone && !NOT_LARS.has(lone[1]!) && !known(lone[1]!, GLOBAL) && !known(lone[1]!, any)) wrong.push(`${doc}:${line}: --${lone[1]}`);
        }
      }
    }
    expect(wrong).to.deep.equal([]);
  });

  it("docs - operations.md's configuration table has a row for every key of src/lib/config.ts, with its flag and environment variable", () => {
    const text = readFileSync(new URL('../../docs/operations.md', import.meta.url), 'utf8');
    const section = text.slice(text.indexOf('## Configuration'), text.indexOf('## Running it'));
    const rows = section.split('\n').filter((l) => l.startsWith('| ') && !l.startsWith('| key') && !l.startsWith('|---'));
    /** key → its row's flag and environment cells; `clickhouseUser / Password / Database` is three keys sharing a row. */
    const byKey = new Map<string, { flag: string; env: string }>();
    for (const r of rows) {
      const [, keys = '', flag = '', env = ''] = r.split('|').map((c) => c.trim());
      const names = keys.split('/').map((k) => k.trim());
      const stem = names[0]!.replace(/[A-Z][a-z]*$/, '');
      for (const n of names) byKey.set(/^[A-Z]/.test(n) ? stem + n : n, { flag, env });
    }
    const wrong: string[] = [];
    for (const [key, spec] of Object.entries(CONFIG_KEYS) as Array<[string, ConfigKeySpec]>) {
      const row = byKey.get(key);
      if (!row) wrong.push(`${key}: no row`);
      else {
        // a shared row names the first flag and variable and goes on with `...`
        if (!row.flag.includes(`\`--${spec.flag}\``) && !row.flag.includes('...')) wrong.push(`${key}: --${spec.flag} not in its row`);
        if (!row.env.includes(`\`${spec.env}\``) && !row.env.includes('...')) wrong.push(`${key}: ${spec.env} not in its row`);
      }
    }
    for (const key of byKey.keys()) if (!(key in CONFIG_KEYS)) wrong.push(`${key}: a row for no key`);
    expect(wrong).to.deep.equal([]);
  });
});
