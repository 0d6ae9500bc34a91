/**
 * The xDS messages, read from the `.proto` files `@grpc/grpc-js-xds` ships
 * (Envoy's data-plane API, xds, udpa, googleapis, protoc-gen-validate: its
 * `deps/` folder) with protobufjs, so that no copy of Envoy's API lives here.
 * `@grpc/grpc-js-xds` is an optional peer dependency: a process that serves
 * xDS needs it installed; the error says so when it is not.
 */
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { existsSync } from 'node:fs';
import protobuf from 'protobufjs';
import { ConfigError } from '../lib/errors.ts';

/** The type URLs of the four resource types served, and of the messages nested in them. */
export const TypeUrl = {
  listener: 'type.googleapis.com/envoy.config.listener.v3.Listener',
  routeConfiguration: 'type.googleapis.com/envoy.config.route.v3.RouteConfiguration',
  cluster: 'type.googleapis.com/envoy.config.cluster.v3.Cluster',
  clusterLoadAssignment: 'type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment',
  httpConnectionManager: 'type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager',
  router: 'type.googleapis.com/envoy.extensions.filters.http.router.v3.Router',
} as const;
export type ResourceTypeUrl = (typeof TypeUrl)['listener' | 'routeConfiguration' | 'cluster' | 'clusterLoadAssignment'];

/** The four resource types in the order a client needs them (LDS → RDS → CDS → EDS). */
export const RESOURCE_TYPES: readonly ResourceTypeUrl[] = [TypeUrl.listener, TypeUrl.routeConfiguration, TypeUrl.cluster, TypeUrl.clusterLoadAssignment];

const FILES = [
  'envoy/service/discovery/v3/ads.proto',
  'envoy/service/load_stats/v3/lrs.proto',
  'envoy/config/listener/v3/listener.proto',
  'envoy/config/route/v3/route.proto',
  'envoy/config/cluster/v3/cluster.proto',
  'envoy/config/endpoint/v3/endpoint.proto',
  'envoy/extensions/filters/network/http_connection_manager/v3/http_connection_manager.proto',
  'envoy/extensions/filters/http/router/v3/router.proto',
];

const INCLUDE = ['envoy-api', 'xds', 'googleapis', 'protoc-gen-validate'];

/** Where the `.proto` files are: `deps/` of the installed `@grpc/grpc-js-xds`. */
export function protoDir(): string {
  const require = createRequire(import.meta.url);
  let pkg: string;
  try {
    pkg = require.resolve('@grpc/grpc-js-xds/package.json');
  } catch (cause) {
    throw new ConfigError('serving xDS needs the package @grpc/grpc-js-xds (its .proto files): npm install @grpc/grpc-js-xds', { cause });
  }
  const deps = join(dirname(pkg), 'deps');
  if (!existsSync(join(deps, 'envoy-api'))) throw new ConfigError(`@grpc/grpc-js-xds at ${dirname(pkg)} has no deps/envoy-api: install a release that ships its .proto files`);
  return deps;
}

export interface XdsProtos {
  readonly root: protobuf.Root;
  readonly discoveryRequest: protobuf.Type;
  readonly discoveryResponse: protobuf.Type;
  readonly loadStatsRequest: protobuf.Type;
  readonly loadStatsResponse: protobuf.Type;
  /** The message type of a type URL (`type.googleapis.com/<full name>`). */
  type(typeUrl: string): protobuf.Type;
}

let loaded: XdsProtos | undefined;

/** The xDS messages (loaded once per process, synchronously: about 0.3 s). */
export function xdsProtos(): XdsProtos {
  if (loaded) return loaded;
  const deps = protoDir();
  // google/protobuf/descriptor.proto is not among protobufjs' built-in files: its own copy is next to its package.json
  const protobufDir = dirname(createRequire(import.meta.url).resolve('protobufjs/package.json'));
  const root = new protobuf.Root();
  root.resolvePath = (origin, target) => {
    for (const dir of [...INCLUDE.map((inc) => join(deps, inc)), protobufDir]) {
      const p = join(dir, target);
      if (existsSync(p)) return p;
    }
    return protobuf.util.path.resolve(origin, target);
  };
  root.loadSync(FILES, { keepCase: true });
  root.resolveAll();
  const type = (typeUrl: string): protobuf.Type => root.lookupType(typeUrl.slice(typeUrl.lastIndexOf('/') + 1));
  loaded = {
    root,
    discoveryRequest: root.lookupType('envoy.service.discovery.v3.DiscoveryRequest'),
    discoveryResponse: root.lookupType('envoy.service.discovery.v3.DiscoveryResponse'),
    loadStatsRequest: root.lookupType('envoy.service.load_stats.v3.LoadStatsRequest'),
    loadStatsResponse: root.lookupType('envoy.service.load_stats.v3.LoadStatsResponse'),
    type,
  };
  return loaded;
}
