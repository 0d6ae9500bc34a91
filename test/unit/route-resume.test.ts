import { expect } from 'chai';
import { RouteActor } from '../../actors/route.ts';
import type { RouteCheckpoint } from '../../actors/checkpoint.ts';
import { PUBLISH_LEAD, afreshState, hasPickable, planResume, restoreVersion, type ResumeInput } from '../../actors/resume.ts';
import type { RegistryEntry, RouteState } from '../../schemas/messages.ts';

const T0 = 1_700_000_000_000;
const M = 7;
const C = 9;

function entry(n: number): RegistryEntry {
  return { v: 1, modid: M, cmdid: C, profile: 'default', params: {}, hosts: Array.from({ length: n }, (_, i) => ({ ip: `10.0.0.${i + 1}`, port: 8000, weight: 100 })), updated_by: 'test', ts: 0 };
}

/** A route published `versions` times by node n1: its last published state and its checkpoint at that state. */
function published(versions: number): { state: RouteState; checkpoint: RouteCheckpoint } {
  const r = new RouteActor({ modid: M, cmdid: C, nodeId: 'n1', entry: entry(3), now: T0 });
  let state: RouteState | undefined;
  for (let v = 1; v <= versions; v++) {
    if (v > 1) r.applyRegistry(entry(v % 2 === 0 ? 2 : 3), T0 + v);
    state = r.flush(T0 + v)?.state ?? state;
  }
  return { state: state!, checkpoint: r.checkpoint(T0 + versions) };
}

function input(o: Partial<ResumeInput>): ResumeInput {
  return { modid: M, cmdid: C, last: undefined, checkpoint: undefined, rev: undefined, ...o };
}

describe('route resume - where a route taken over resumes from (actors/resume.ts)', () => {
  it('resume - a restored route continues PUBLISH_LEAD + 1 above the stored version; a route never published starts at 0', () => {
    expect(PUBLISH_LEAD).to.equal(16);
    expect(restoreVersion(0)).to.equal(0);
    expect(restoreVersion(1)).to.equal(18);
    expect(restoreVersion(40)).to.equal(57);
  });

  it('resume - nothing found: the route starts blank, expecting the key absent', () => {
    expect(planResume(input({}))).to.deep.equal({ checkpoint: undefined, restored: undefined, quiet: false, stored: 0, kvRevision: 0, unverified: false, keepPickable: false });
  });

  it('resume - a checkpoint as new as the published state is resumed from, its version moved up and marked changed; nothing unpublished makes it quiet', () => {
    const { state, checkpoint } = published(3);
    expect(checkpoint.version).to.equal(state.version);
    const before = structuredClone(checkpoint);
    const plan = planResume(input({ last: { state, revision: 41 }, checkpoint }));
    expect(plan.checkpoint).to.deep.equal({ ...checkpoint, version: restoreVersion(state.version), dirty: true });
    expect(checkpoint, 'the input is not changed').to.deep.equal(before);
    expect(plan.restored?.version).to.equal(restoreVersion(state.version));
    expect(plan.quiet).to.equal(true);
    expect(plan.stored).to.equal(state.version);
    expect(plan.kvRevision).to.equal(41);
    expect(plan.unverified).to.equal(false);
    expect(plan.keepPickable).to.equal(true);
  });

  it('resume - a checkpoint with changes not yet published, or pending events, is not quiet', () => {
    const { state, checkpoint } = published(2);
    expect(planResume(input({ last: { state, revision: 5 }, checkpoint: { ...checkpoint, dirty: true } })).quiet).to.equal(false);
    const pending = [{ v: 1 as const, sender: 'n1', modid: M, cmdid: C, ip: '10.0.0.1', port: 8000, from: 'healthy', to: 'ejected', reason: 'error_rate', ts: T0 }];
    expect(planResume(input({ last: { state, revision: 5 }, checkpoint: { ...checkpoint, pending } as unknown as RouteCheckpoint })).quiet).to.equal(false);
  });

  it('resume - a checkpoint older than the published state is not used: the route resumes from the published state', () => {
    const old = published(2);
    const { state } = published(5);
    const plan = planResume(input({ last: { state, revision: 9 }, checkpoint: old.checkpoint }));
    expect(plan.checkpoint).to.equal(undefined);
    expect(plan.restored).to.deep.equal({ ...state, version: restoreVersion(state.version) });
    expect(plan.quiet).to.equal(false);
    expect(plan.stored).to.equal(state.version);
    expect(plan.kvRevision).to.equal(9);
  });

  it('resume - from a handover record alone: the revision stored with the checkpoint is expected, unverified until a write succeeds on it', () => {
    const { checkpoint } = published(4);
    const plan = planResume(input({ checkpoint, rev: 17 }));
    expect(plan.checkpoint?.version).to.equal(restoreVersion(4));
    expect(plan.restored).to.equal(undefined);
    expect(plan.stored).to.equal(4);
    expect(plan.kvRevision).to.equal(17);
    expect(plan.unverified).to.equal(true);
    expect(plan.keepPickable).to.equal(false);
    const read = planResume(input({ checkpoint }));
    expect(read.kvRevision).to.equal(0);
    expect(read.unverified).to.equal(false);
  });

  it('resume - the published revision wins over the checkpoint’s when both are known', () => {
    const { state, checkpoint } = published(2);
    const plan = planResume(input({ last: { state, revision: 30 }, checkpoint, rev: 12 }));
    expect(plan.kvRevision).to.equal(30);
    expect(plan.unverified).to.equal(false);
  });

  it('resume - a removed route comes back with no hosts, its version continuing above the published state and the checkpoint', () => {
    const { state, checkpoint } = published(3);
    const removedState = planResume(input({ last: { state: { ...state, removed: true }, revision: 3 } }));
    expect(removedState.restored).to.deep.equal({ ...state, removed: true, version: restoreVersion(3), hosts: [] });
    expect(removedState.keepPickable).to.equal(true);

    const removedCp = planResume(input({ last: { state, revision: 3 }, checkpoint: { ...checkpoint, version: 6, removed: true } }));
    expect(removedCp.checkpoint).to.equal(undefined);
    expect(removedCp.restored).to.deep.equal({ ...state, version: restoreVersion(6), hosts: [] });
    expect(removedCp.stored).to.equal(6);

    const cpOnly = planResume(input({ checkpoint: { ...checkpoint, removed: true } }));
    expect(cpOnly.checkpoint).to.equal(undefined);
    expect(cpOnly.restored).to.deep.include({ modid: M, cmdid: C, removed: true, version: restoreVersion(3), hosts: [] });
  });

  it('resume - the previous owner’s pickable hosts are never replaced by none: the hosts start afresh above every version', () => {
    const { state, checkpoint } = published(3);
    expect(hasPickable(state)).to.equal(true);
    expect(hasPickable({ ...state, hosts: state.hosts.map((h) => ({ ...h, pick_weight: 0 })) })).to.equal(false);
    const plan = planResume(input({ last: { state, revision: 3 }, checkpoint }));
    expect(afreshState(state, plan)).to.deep.equal({ ...state, version: restoreVersion(3), hosts: [] });
    const ahead = planResume(input({ last: { state, revision: 3 }, checkpoint: { ...checkpoint, version: 10 } }));
    expect(afreshState(state, ahead).version).to.equal(restoreVersion(10));
  });

  it('resume - a route actor built from the plan publishes above every version the previous owner may have published', () => {
    const { state, checkpoint } = published(3);
    for (const plan of [planResume(input({ last: { state, revision: 3 }, checkpoint })), planResume(input({ last: { state, revision: 3 } }))]) {
      const r = new RouteActor({ modid: M, cmdid: C, nodeId: 'n2', entry: entry(3), now: T0 + 100, checkpoint: plan.checkpoint, restored: plan.restored });
      const ch = r.flush(T0 + 100);
      expect(ch?.state.version).to.be.greaterThan(state.version + PUBLISH_LEAD);
      expect(ch?.state.sender).to.equal('n2');
    }
  });
});
