import { readFileSync } from 'node:fs';
import { expect } from 'chai';
import { DEFAULT_PARAMS, PARAMS, PARAM_NAMES, resolveParams, type ParamSpec, type RouteParams } from '../../actors/params.ts';

/** docs/state-machine.md's parameter table: name → [lars column, default column]. */
function documented(): Map<string, [string, string]> {
  const text = readFileSync(new URL('../../docs/state-machine.md', import.meta.url), 'utf8');
  const rows = new Map<string, [string, string]>();
  for (const line of text.split('\n')) {
    const m = /^\| ([a-z_]+) \| ([^|]+) \| ([^|]+) \|/.exec(line);
    if (m) rows.set(m[1]!, [m[2]!.trim(), m[3]!.trim()]);
  }
  return rows;
}

describe('parameters - every one is documented with its defaults', () => {
  it("params - docs/state-machine.md's table lists each parameter with the default profile's value and, where it gives one, the lars profile's", () => {
    const rows = documented();
    const lars = (resolveParams('lars') as { ok: true; params: RouteParams }).params;
    for (const name of PARAM_NAMES) {
      const row = rows.get(name);
      expect(row, `${name} has a row`).to.not.equal(undefined);
      expect(row![1], `${name}: default`).to.equal(String(DEFAULT_PARAMS[name]));
      if (row![0] !== '—') expect(row![0], `${name}: lars`).to.equal(String(lars[name]));
    }
  });

  it("params - the docs' lars column is the table's lars value, `—` exactly where the table gives none", () => {
    const rows = documented();
    for (const name of PARAM_NAMES) {
      const spec: ParamSpec = PARAMS[name];
      expect(rows.get(name)?.[0], name).to.equal(spec.lars === undefined ? '—' : String(spec.lars));
    }
  });

  it('params - every row of the table has a doc line and its default within its bounds, for both profiles', () => {
    for (const name of PARAM_NAMES) {
      const spec: ParamSpec = PARAMS[name];
      expect(spec.doc, name).to.match(/\S/);
      for (const v of [spec.default, spec.lars ?? spec.default]) expect(v, name).to.be.within(spec.min, spec.max);
    }
  });
});
