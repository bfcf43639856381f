# Container image of the gateway. Build: docker build -t ztgate .
FROM node:24-bookworm-slim AS build
WORKDIR /app
COPY package.json package-lock.json tsconfig.json tsconfig.build.json ./
COPY gateway gateway
COPY policies policies
COPY identity identity
COPY demo demo
COPY admin-ui admin-ui
RUN npm ci --no-audit --no-fund && npm prune --omit=dev

FROM node:24-bookworm-slim
WORKDIR /app
ENV NODE_ENV=production
COPY --from=build /app /app
USER node
ENTRYPOINT ["node", "dist/gateway/cli.js"]
CMD ["demo"]
