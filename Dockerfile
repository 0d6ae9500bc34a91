# Image for route nodes, sinks and CLI use: `docker build -t lars-nats .`
FROM node:20-bookworm-slim
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --omit=optional --no-audit --no-fund && npm install --no-save tsx@4
COPY bin ./bin
COPY src ./src
COPY actors ./actors
COPY schemas ./schemas
ENV LARS_NATS_URL=nats://nats:4222
ENTRYPOINT ["node", "bin/lars.mjs"]
CMD ["--help"]
