/**
 * Scenarios for the simulator's tests: a shipped one by name (scenarios/),
 * or one built inline and checked as a file would be; the folder they are in.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseScenario, parseScenarioText, type Scenario } from '../../src/sim/scenario.ts';

export const scenariosDir = join(import.meta.dirname, '..', '..', 'scenarios');

/** The shipped scenario `scenarios/<name>.json`. */
export function shipped(name: string): Scenario {
  const r = parseScenarioText(readFileSync(join(scenariosDir, `${name}.json`), 'utf8'));
  if (!r.ok) throw new Error(r.error);
  return r.scenario;
}

/** A scenario named `test` from `s`, checked by the scenario parser. */
export function scenario(s: Omit<Scenario, 'name'>): Scenario {
  const r = parseScenario({ name: 'test', ...s });
  if (!r.ok) throw new Error(r.error);
  return r.scenario;
}
