/** The profiles' policies, by name. */
import type { Profile } from '../../schemas/messages.ts';
import type { RouteParams } from '../params.ts';
import { DefaultPolicy } from './default.ts';
import { LarsPolicy } from './lars.ts';
import type { ProfilePolicy, RouteMechanism } from './types.ts';

export type { PolicyHost, ProfilePolicy, RouteMechanism } from './types.ts';
export { DefaultPolicy } from './default.ts';
export { LarsPolicy, larsMachine } from './lars.ts';

/** The policy of a route with `profile` and resolved `params`. */
export function createPolicy(profile: Profile, params: RouteParams, route: RouteMechanism): ProfilePolicy {
  return profile === 'lars' ? new LarsPolicy(params, route) : new DefaultPolicy(params, route);
}
