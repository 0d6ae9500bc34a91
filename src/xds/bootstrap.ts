/**
 * The bootstrap a proxyless gRPC client reads (`GRPC_XDS_BOOTSTRAP` names a
 * file holding it, `GRPC_XDS_BOOTSTRAP_CONFIG` holds it): where the xDS
 * server is, how to reach it, and who the client is. The node's locality
 * zone is the zone the client prefers (its zone's hosts come first).
 */

export interface BootstrapOptions {
  /** host:port of `lars xds` (or of a load balancer in front of several). */
  serverUri: string;
  /** The client's node id, unique per client process (it names the client in the server's log). */
  nodeId: string;
  /** The client's zone: its zone's hosts are preferred. */
  zone?: string | undefined;
  /** Envoy's and gRPC's `cluster` of the node (the service the client is part of); optional. */
  cluster?: string | undefined;
}

/** Server features sent: the v3 transport (gRPC requires it to speak v3). */
export const SERVER_FEATURES = ['xds_v3'] as const;

export interface Bootstrap {
  xds_servers: Array<{ server_uri: string; channel_creds: Array<{ type: string }>; server_features: string[] }>;
  node: { id: string; cluster?: string; locality: { zone?: string } };
}

export function bootstrapOf(o: BootstrapOptions): Bootstrap {
  return {
    xds_servers: [{ server_uri: o.serverUri, channel_creds: [{ type: 'insecure' }], server_features: [...SERVER_FEATURES] }],
    node: {
      id: o.nodeId,
      ...(o.cluster !== undefined ? { cluster: o.cluster } : {}),
      // grpc-js refuses a node without a locality, even an empty one
      locality: o.zone !== undefined ? { zone: o.zone } : {},
    },
  };
}
