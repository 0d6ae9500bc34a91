import { expect } from 'chai';
import { hostMachine } from '../../actors/host-machine.ts';
import { HOST_FIELDS, HostSlot, NOT_CHECKPOINTED, hostCheckpoint, resumeHost } from '../../actors/host-slot.ts';
import { larsMachine } from '../../actors/profiles/lars.ts';
import { parseCheckpoint, type HostCheckpoint } from '../../actors/checkpoint.ts';

const T0 = 1_700_000_000_000;

/** A slot with every checkpointed field set to a value of its own (not what a new slot has). */
function busySlot(): HostSlot {
  const s = new HostSlot({ ip: '10.0.0.7', port: 8080, weight: 40, zone: 'z1' }, T0);
  const values: Record<string, unknown> = {
    state: 'probing',
    reason: 'timeout',
    since: T0 + 1,
    ejections: 3,
    ejectUntil: T0 + 2,
    trialAgent: 'agent-9',
  };
  let n = 10;
  for (const f of HOST_FIELDS) {
    if (f.kind === 'identity') continue;
    const v = values[f.slot] ?? (typeof s[f.slot] === 'boolean' ? true : n++ + 0.5);
    (s as unknown as Record<string, unknown>)[f.slot] = v;
  }
  return s;
}

function fields(s: HostSlot): Record<string, unknown> {
  return Object.fromEntries(HOST_FIELDS.map((f) => [f.slot, s[f.slot]]));
}

describe('host slot - checkpoint round trip', () => {
  it('host slot - a host resumed from its checkpoint, through JSON, has every checkpointed field as it was', () => {
    const s = busySlot();
    const h = JSON.parse(JSON.stringify(hostCheckpoint(s))) as HostCheckpoint;
    const back = resumeHost(hostMachine, h, T0 + 99);
    expect(fields(back)).to.deep.equal(fields(s));
    expect(back.key).to.equal('10.0.0.7:8080');
    expect(back.admin).to.equal(undefined);
  });

  it("host slot - a checkpoint lists the fields under their checkpoint names in HOST_FIELDS' order, the optional ones only when set", () => {
    const s = busySlot();
    expect(Object.keys(hostCheckpoint(s))).to.deep.equal(HOST_FIELDS.map((f) => f.cp));
    s.trialAgent = undefined;
    s.zone = undefined;
    const h = hostCheckpoint(s);
    expect(h).to.not.have.any.keys('trial_agent', 'zone');
    const back = resumeHost(hostMachine, h, T0);
    expect([back.trialAgent, back.zone]).to.deep.equal([undefined, undefined]);
  });

  it('host slot - the checkpoint is what parseCheckpoint accepts', () => {
    const cp = { v: 1, modid: 1, cmdid: 2, ts: T0, version: 3, profile: 'default', params: {}, panic: false, removed: false, dirty: false, peer_latency: 0, hosts: [hostCheckpoint(busySlot())], pending: [] };
    expect(parseCheckpoint(JSON.parse(JSON.stringify(cp)))).to.include({ ok: true });
  });

  it('host slot - parseCheckpoint refuses each field of HOST_FIELDS of the wrong type, by name; a field that may be absent may be absent', () => {
    const wrong = { number: 'x', string: 5, boolean: 1, state: 'zombie', reason: 'zombie' } as const;
    const route = (h: Record<string, unknown>): unknown => ({ v: 1, modid: 1, cmdid: 2, ts: T0, version: 3, profile: 'default', params: {}, panic: false, removed: false, dirty: false, peer_latency: 0, hosts: [h], pending: [] });
    for (const f of HOST_FIELDS) {
      const h = hostCheckpoint(busySlot()) as unknown as Record<string, unknown>;
      h[f.cp] = wrong[f.type];
      const r = parseCheckpoint(route(h));
      expect(r.ok, f.cp).to.equal(false);
      expect(r.ok ? '' : r.error, f.cp).to.match(new RegExp(`^hosts\\[0\\]\\.${f.cp} `));
      delete h[f.cp];
      expect(parseCheckpoint(route(h)).ok, `${f.cp} absent`).to.equal(f.optional === true || f.absent !== undefined);
    }
  });

  it('host slot - a checkpoint written before a field existed gives its stated value for it', () => {
    const h = hostCheckpoint(busySlot()) as unknown as Record<string, unknown>;
    for (const f of HOST_FIELDS) if (f.absent !== undefined) delete h[f.cp];
    const back = resumeHost(hostMachine, h as unknown as HostCheckpoint, T0);
    for (const f of HOST_FIELDS) if (f.absent !== undefined) expect(back[f.slot], f.slot).to.equal(f.absent);
  });

  it("host slot - the machine fields come back through the route's machine (lars has no probing)", () => {
    const h = hostCheckpoint(busySlot());
    expect(resumeHost(larsMachine, h, T0)).to.include({ state: 'overloaded', since: T0 + 1, reason: 'timeout', ejections: 3, ejectUntil: T0 + 2 });
  });

  it('host slot - every property of a slot is kept by a checkpoint or named as not kept, and the list names each once', () => {
    const s = new HostSlot({ ip: '10.0.0.1', port: 1, weight: 1 }, T0);
    const listed = new Set<string>([...HOST_FIELDS.map((f) => f.slot), ...Object.keys(NOT_CHECKPOINTED)]);
    expect(Object.keys(s).filter((k) => !listed.has(k)), 'neither checkpointed nor named').to.deep.equal([]);
    expect([...listed].filter((k) => !(k in s)), 'not a property').to.deep.equal([]);
    expect(new Set(HOST_FIELDS.map((f) => f.slot)).size).to.equal(HOST_FIELDS.length);
    expect(new Set(HOST_FIELDS.map((f) => f.cp)).size).to.equal(HOST_FIELDS.length);
  });
});
