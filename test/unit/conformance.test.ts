// The conformance vectors (schemas/conformance/) are what the contract,
// actors and agent code generate now: a change of semantics regenerates them
// (`npm run conformance`), and every other SDK's tests then run the new ones.
import { expect } from 'chai';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { CONFORMANCE_DIR, conformanceFiles } from '../helpers/conformance.ts';
import { runPickScript, type PickVector } from '../helpers/conformance-picks.ts';
import { RouteStateReader } from '../../src/agent/route-state-reader.ts';
import { tryDecode } from '../../schemas/codec.ts';
import { validateRouteState } from '../../schemas/messages.ts';

const committed = (name: string): string => readFileSync(join(CONFORMANCE_DIR, name), 'utf8');

describe('conformance vectors (schemas/conformance/)', () => {
  const files = conformanceFiles();

  for (const name of Object.keys(files)) {
    it(`conformance - ${name} is what the code generates (else: npm run conformance)`, () => {
      expect(committed(name) === files[name], `${name} differs from what the TypeScript code generates`).to.equal(true);
    });
  }

  it('conformance - every committed pick script, replayed on the route model, gives its recorded answers', () => {
    const picks = (JSON.parse(committed('picks.json')) as { picks: PickVector[] }).picks;
    expect(picks.length).to.be.greaterThan(10);
    for (const v of picks) {
      const script = { ...v, steps: v.steps.map((s) => (s.op === 'pick' ? { op: s.op, now: s.now, ...(s.key === undefined ? {} : { key: s.key }) } : s.op === 'report' ? { op: s.op, now: s.now, host: s.host, retcode: s.retcode, latency_ms: s.latency_ms } : s)) };
      expect(runPickScript(script).steps, v.name).to.deep.equal(v.steps);
    }
  });

  it("conformance - the agent's route state reader judges every route state sample as the general reader does", () => {
    const wire = JSON.parse(committed('wire.json')) as { messages: Array<{ kind: string; name: string; hex: string; want: string }> };
    const samples = wire.messages.filter((m) => m.kind === 'route_state');
    expect(samples.length).to.be.greaterThan(40);
    for (const m of samples) {
      const bytes = Buffer.from(m.hex, 'hex');
      const r = new RouteStateReader().read(bytes);
      expect(r.ok ? 'ok' : r.kind, m.name).to.equal(m.want);
      const d = tryDecode(bytes);
      if (d.ok && r.ok) expect(r.value, m.name).to.deep.equal((validateRouteState(d.value) as { value: unknown }).value);
    }
  });
});
