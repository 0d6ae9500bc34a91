/**
 * Conformance vectors of route following (schemas/conformance/follow.json):
 * the order of a route's states (actors/route-versions.ts), every
 * combination of a held state, an incoming or stored one and the
 * versions-started-again mark, with the reference's verdict.
 */
import { stateVerdict, versionsStartedAgain, type StateVerdict, type VersionStamp } from '../../actors/route-versions.ts';

export interface StateVerdictVector {
  name: string;
  held: VersionStamp | null;
  state: VersionStamp;
  version_reset: boolean;
  want: StateVerdict;
}

export interface VersionResetVector {
  name: string;
  held: VersionStamp | null;
  /** The routes bucket's state; null: the key is missing. */
  stored: VersionStamp | null;
  version_reset: boolean;
  want: boolean;
}

const HELD: Array<VersionStamp | null> = [null, { version: 5, ts: 1000 }, { version: 5, ts: 1000, removed: true }];
const AROUND = (held: VersionStamp | null): VersionStamp[] => {
  const out: VersionStamp[] = [];
  for (const dv of [-1, 0, 1]) for (const dt of [-1, 0, 1]) out.push({ version: 5 + dv, ts: 1000 + dt });
  return held === null ? out.filter((s) => s.ts === 1000) : out;
};
const label = (s: VersionStamp | null): string => (s === null ? 'none' : `v${s.version}@${s.ts}${s.removed ? ' removed' : ''}`);

export function followVectors(): { state_verdicts: StateVerdictVector[]; version_resets: VersionResetVector[] } {
  const state_verdicts: StateVerdictVector[] = [];
  const version_resets: VersionResetVector[] = [];
  for (const held of HELD) {
    for (const reset of [false, true]) {
      for (const s of AROUND(held)) {
        state_verdicts.push({ name: `held ${label(held)}, state ${label(s)}${reset ? ', versions reset' : ''}`, held, state: s, version_reset: reset, want: stateVerdict(held ?? undefined, s, reset) });
      }
      for (const stored of [null, ...AROUND(held)]) {
        version_resets.push({ name: `held ${label(held)}, stored ${label(stored)}${reset ? ', versions reset' : ''}`, held, stored, version_reset: reset, want: versionsStartedAgain(held ?? undefined, stored ?? undefined, reset) });
      }
    }
  }
  return { state_verdicts, version_resets };
}
