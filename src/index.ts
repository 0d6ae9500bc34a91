/** Public API of the package: the agent SDK, the route node, the registry and the contract. */
export { createAgent, Agent, NoHostCode, ReportDelivery, type AgentOptions, type HostPick, type AgentStats } from './agent/agent.ts';
export { CallError, CallStop, classifyError, type AttemptInfo, type AttemptRecord, type CallOptions, type Classified } from './agent/agent.ts';
export { RouteFollower, RouteStatus, type RouteFollowerOptions, type RouteFollowerStats, type RouteView, type RouteListener } from './agent/route-follower.ts';
export { reportMsgId, parseReportMsgId, type ReportMsgIdParts } from '../schemas/msg-id.ts';
export { registerSelf, SELF_DEFAULTS, type SelfRegisterOptions, type SelfRegistrationHandle } from './agent/self-register.ts';
export { RouteNode, type RouteNodeOptions, type RouteNodeStats } from './node/route-node.ts';
export { StaticOwnership, type PartitionOwnership } from './cluster/ownership.ts';
export { Registry } from './registry/registry.ts';
export { RouteStore } from './registry/route-store.ts';
export { loadConfig, defaultConfig, type LarsConfig } from './lib/config.ts';
export { connectNats, redactNatsUrl, type NatsLoginOptions, type NatsTlsOptions } from './nats/connect.ts';
export { startNatsServer, type NatsServer } from './nats/natsd.ts';
export { LarsError, ConfigError, UsageError, NatsUnreachableError, NatsAuthError, RegistryError, ClosedError, ErrorCode } from './lib/errors.ts';
export { createLogger } from './lib/log.ts';
export * from '../schemas/subjects.ts';
export * from '../schemas/messages.ts';
export { LARS_DEFAULTS, DEFAULT_PARAMS, PARAMS, resolveParams, type LarsParams, type DefaultParams, type RouteParams, type ParamSpec } from '../actors/params.ts';
export { StrategyName } from '../actors/strategies/types.ts';
