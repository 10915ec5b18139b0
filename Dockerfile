# mldeploy: one image for every role (worker, web service, one-off CLI commands). The
# TypeScript sources run through tsx (a runtime dependency), so there is no build stage.
# The Temporal CLI is not installed: the image always talks to a configured cluster.
FROM node:20-slim

ENV NODE_ENV=production \
    MLDEPLOY_DATA_DIR=/app/.mldeploy
WORKDIR /app

# Dependencies first, so a source change reuses this layer. package.json's allowScripts denies
# onnxruntime-node's install script (its GPU download; the CPU runtime ships in the package).
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --no-audit --no-fund && npm cache clean --force

COPY tsconfig.json ./
COPY bin ./bin
COPY src ./src
COPY workflows ./workflows
COPY activities ./activities
COPY config ./config
COPY models ./models

RUN mkdir -p "$MLDEPLOY_DATA_DIR" && chown node:node "$MLDEPLOY_DATA_DIR"
USER node

# Worker metrics (/metrics, /healthz), Temporal SDK metrics, web service.
EXPOSE 9464 9465 9696

ENTRYPOINT ["node", "bin/mldeploy.js"]
CMD ["--help"]
