# mldeploy: one image for every role (worker, web service, one-off CLI commands). The build
# stage bundles the CLI (scripts/build.js); the image runs that bundle with production
# dependencies only. The Temporal CLI is not installed: the image always talks to a configured cluster.
FROM node:20-slim AS build
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --ignore-scripts --no-audit --no-fund
COPY scripts/build.js ./scripts/build.js
COPY src ./src
COPY workflows ./workflows
COPY activities ./activities
RUN node scripts/build.js

FROM node:20-slim

ENV NODE_ENV=production \
    MLDEPLOY_DATA_DIR=/app/.mldeploy
WORKDIR /app

# Dependencies first, so a source change reuses this layer. package.json's allowScripts denies
# onnxruntime-node's install script (its GPU download; the CPU runtime ships in the package).
# npm ci runs the prepare step, which skips the build without its dev dependencies.
COPY package.json package-lock.json ./
COPY scripts/build.js ./scripts/build.js
RUN npm ci --omit=dev --no-audit --no-fund && npm cache clean --force

COPY tsconfig.json ./
COPY bin ./bin
COPY src ./src
COPY workflows ./workflows
COPY activities ./activities
COPY config ./config
COPY models ./models
COPY --from=build /app/dist ./dist

RUN mkdir -p "$MLDEPLOY_DATA_DIR" && chown node:node "$MLDEPLOY_DATA_DIR"
USER node

# Worker metrics (/metrics, /healthz), Temporal SDK metrics, web service.
EXPOSE 9464 9465 9696

ENTRYPOINT ["node", "bin/mldeploy.js"]
CMD ["--help"]
