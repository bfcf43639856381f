# Container images of the gateway. Two targets:
#   docker build -t ztgate .                      the product (the default, last stage): no demo/ in it
#   docker build --target demo -t ztgate-demo .   the embedded demo (docker compose up ztgate-demo)
#
# Both run with a read-only root filesystem (docker run --read-only, compose read_only: true): the
# image itself is never written to. Everything the gateway writes — the audit chain, the SOC
# spools, the demo's policy versions and keys — goes under /data, a volume owned by the
# unprivileged user the process runs as; /app/.data points there for the demo.
FROM node:24-bookworm-slim AS build
WORKDIR /app
COPY package.json package-lock.json tsconfig.json tsconfig.build.json ./
COPY core core
COPY gateway gateway
COPY policies policies
COPY identity identity
COPY demo demo
COPY admin-ui admin-ui
RUN npm ci --no-audit --no-fund && npm prune --omit=dev
# The product alone, for the production image: a production install carries no demo IdP, no
# synthetic officials, no demo keys (nothing of the product imports demo/: npm run lint:deps).
RUN cp -a /app /product && rm -rf /product/demo /product/dist/demo

# The embedded demo: the product composed with demo/ (IdP, synthetic services), as `npm start` runs it.
FROM node:24-bookworm-slim AS demo
WORKDIR /app
ENV NODE_ENV=production
COPY --from=build --chown=root:root /app /app
RUN mkdir -p /data && chown node:node /data && chmod 0750 /data && ln -s /data /app/.data
VOLUME ["/data"]
USER node
EXPOSE 8080 8081
HEALTHCHECK --interval=10s --timeout=3s --start-period=20s --retries=3 \
  CMD ["node", "-e", "fetch('http://127.0.0.1:8080/readyz').then((r) => process.exit(r.ok ? 0 : 1), () => process.exit(1))"]
# A young generation of 2 × 8 MiB (V8 would grow it to 2 × 64 MiB under load): less resident memory
# (README "Cold start and memory"), and the Buffers each request allocates die in frequent short
# scavenges instead of piling up until V8 runs a full mark-compact for external memory pressure,
# which paused every request in flight (README "Tail latency at a fixed rate"). No
# --heap-growing-percent: a 20 % old generation made those full collections run every ~75 ms under
# load. Workers inherit the options.
ENTRYPOINT ["node", "--max-semi-space-size=8", "dist/demo/cli.js"]
CMD ["start"]

# The production image (the default target, last): the product only.
FROM node:24-bookworm-slim AS production
WORKDIR /app
ENV NODE_ENV=production
COPY --from=build --chown=root:root /product /app
RUN mkdir -p /data && chown node:node /data && chmod 0750 /data && ln -s /data /app/.data
VOLUME ["/data"]
USER node
EXPOSE 8080 8081
HEALTHCHECK --interval=10s --timeout=3s --start-period=20s --retries=3 \
  CMD ["node", "-e", "fetch('http://127.0.0.1:8080/readyz').then((r) => process.exit(r.ok ? 0 : 1), () => process.exit(1))"]
# The same memory settings as the demo image (above).
ENTRYPOINT ["node", "--max-semi-space-size=8", "dist/gateway/cli.js"]
CMD ["start", "--config", "/etc/ztgate/ztgate.yaml"]
