/**
 * `--param name=value` (repeatable), as `lars route add` and `lars simulate`
 * take it: profile parameters (actors/params.ts), each checked by name and
 * against its bounds for the profile.
 */
import { PARAM_NAMES, resolveParams } from '../../actors/params.ts';
import type { Profile } from '../../schemas/messages.ts';
import { UsageError } from '../lib/errors.ts';
import type { FlagValue } from './command.ts';

/**
 * The overrides given (not the resolved parameters): `base` are overrides
 * already in force (a scenario's), checked together with the new ones.
 */
export function parseParamFlags(raw: FlagValue, profile: Profile, base: Readonly<Record<string, number>> = {}): Record<string, number> {
  const list = typeof raw === 'string' ? [raw] : Array.isArray(raw) ? raw : [];
  const out: Record<string, number> = {};
  for (const kv of list) {
    const eq = kv.indexOf('=');
    const k = kv.slice(0, eq);
    const text = kv.slice(eq + 1).trim();
    const v = Number(text);
    if (eq <= 0 || text === '' || !Number.isFinite(v)) throw new UsageError(`--param takes name=number, got ${JSON.stringify(kv)}`);
    if (!(PARAM_NAMES as string[]).includes(k)) throw new UsageError(`unknown parameter ${k}; known: ${PARAM_NAMES.join(', ')}`);
    out[k] = v;
  }
  const r = resolveParams(profile, { ...base, ...out });
  if (!r.ok) throw new UsageError(r.error);
  return out;
}
