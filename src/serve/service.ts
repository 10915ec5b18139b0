// The web service as a running process part: buildServer (server.ts) listening on its host and
// port, with its public URL and a graceful close. `mldeploy serve` and `mldeploy dev` start it
// with their process's pool, registry and model cache, and their extra route plugins.
import type { FastifyInstance } from 'fastify';
import { startGrpcServer, type GrpcServer } from './grpc/inference-service.ts';
import { buildServer, contextOf, type ServerOptions } from './server.ts';

export interface WebService {
  app: FastifyInstance;
  url: string;
  /** host:port of the v2 gRPC service, when MLDEPLOY_GRPC_PORT is set. */
  grpcAddress?: string;
  /** Stops accepting connections, lets in-flight requests finish, flushes the prediction log. */
  close(): Promise<void>;
}

/** Builds the server and listens on `config.host`:`config.port` (port 0 picks a free one). */
export async function startWebService(opts: ServerOptions): Promise<WebService> {
  const { config } = opts;
  const app = await buildServer(opts);
  await app.listen({ host: config.host, port: config.port });
  const address = app.server.address();
  const port = typeof address === 'object' && address ? address.port : config.port;
  const host = config.host.includes(':') ? `[${config.host}]` : config.host;
  const reachable = host === '0.0.0.0' || host === '[::]' ? '127.0.0.1' : host;
  let grpc: GrpcServer | undefined;
  try {
    if (config.grpcPort > 0) grpc = await startGrpcServer(contextOf(app)!, config.host, config.grpcPort);
  } catch (err) {
    await app.close();
    throw new Error(`cannot serve gRPC on ${config.host}:${config.grpcPort} (MLDEPLOY_GRPC_PORT): ${(err as Error).message}`);
  }
  return {
    app,
    url: `http://${reachable}:${port}`,
    grpcAddress: grpc ? `${reachable}:${grpc.port}` : undefined,
    // Both drain their in-flight calls; the model cache outlives them.
    close: async () => {
      await Promise.all([grpc?.close(), app.close()]);
    },
  };
}
