# Image for route nodes, sinks, the console, the sidecar and CLI use: `docker build -t lars-nats .`
#
# Two stages: `build` compiles the TypeScript (dev dependencies there only);
# the final stage holds production dependencies, dist/ and bin/, and runs as
# the unprivileged `node` user.
#
# ClickHouse: by default the sink writes to a ClickHouse server over HTTP
# (LARS_CLICKHOUSE_URL, default http://clickhouse:8123; docker-compose.yml
# sets it to its two servers, clickhouse-1 and clickhouse-2). The
# embedded engine (chdb, ~550 MB) is left out unless asked for:
#   docker build --build-arg WITH_CHDB=true --build-arg CLICKHOUSE_URL= -t lars-nats:chdb .
# which stores under LARS_DATA_DIR (/data; mount a volume there).
#
# npm install rather than npm ci: chdb lists per-platform optional packages
# that are not all published, and npm ci refuses a lock file without them.

FROM node:20-bookworm-slim AS build
WORKDIR /app
COPY package.json package-lock.json ./
# the build needs the compiler, not the embedded ClickHouse
RUN npm pkg delete devDependencies.chdb && npm install --no-audit --no-fund
COPY tsconfig.json tsconfig.build.json ./
COPY scripts ./scripts
COPY src ./src
COPY actors ./actors
COPY schemas ./schemas
RUN npm run build

FROM node:20-bookworm-slim
ARG WITH_CHDB=false
ARG CLICKHOUSE_URL=http://clickhouse:8123
# HTTP listeners (metrics, health, the console, the sidecar's API) bind loopback
# unless told otherwise; a container's loopback is out of reach of everything
# else (Prometheus, a published port), so the image opens them to the
# container's interfaces: what leaves the container is decided by publishing.
# A sidecar container sharing its service's network (a pod, compose
# network_mode: service:<app>) that should answer that service only:
# LARS_HTTP_HOST=127.0.0.1 (the health check below still reaches it).
ENV NODE_ENV=production \
    LARS_CLICKHOUSE_URL=${CLICKHOUSE_URL} \
    LARS_DATA_DIR=/data \
    LARS_HTTP_HOST=0.0.0.0
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm install --omit=dev --no-audit --no-fund \
    && if [ "$WITH_CHDB" = "true" ]; then npm install --omit=dev --no-save --no-audit --no-fund "chdb@$(node -p "require('./package.json').peerDependencies.chdb")"; fi \
    && npm cache clean --force \
    && mkdir -p /data && chown node:node /data
COPY --from=build /app/dist ./dist
COPY bin ./bin
# read at run time: the Lars wire protocol, and the example balancing scenarios for `lars simulate`
COPY schemas/*.proto ./schemas/
COPY scenarios ./scenarios
USER node
# Every long-running role serves /healthz on port 9464 when run as docker-compose.yml
# runs it: `node`, `sink` and `agent` with --http 9464, `console` with --port 9464.
# Alive = the event loop turns. /readyz (used by compose) also needs NATS and the
# role's work started (test/integration/deploy-health.test.ts runs this probe on each).
HEALTHCHECK --interval=10s --timeout=3s --start-period=20s --retries=3 \
  CMD node -e "fetch('http://127.0.0.1:9464/healthz').then((r) => process.exit(r.ok ? 0 : 1), () => process.exit(1))"
ENTRYPOINT ["node", "bin/lars.mjs"]
CMD ["--help"]
