// Bearer-token authentication for every route except health and metrics. Tokens are
// compared as sha256 digests with timingSafeEqual: equal lengths, constant time.
import { createHash, timingSafeEqual } from 'node:crypto';
import type { FastifyInstance } from 'fastify';
import { HttpError } from './errors.ts';

/** Route patterns that load balancers and Prometheus reach without a token. */
export const PUBLIC_ROUTES = new Set(['/healthz', '/readyz', '/metrics', '/v2/health/live', '/v2/health/ready']);

const digest = (text: string) => createHash('sha256').update(text).digest();

/** Checks an Authorization value against the token; returns why it is refused, or undefined. HTTP and gRPC share it. */
export function bearerCheck(token: string): (header: string | undefined) => string | undefined {
  const expected = digest(token);
  return (header) => {
    const match = /^Bearer ([^\s]+)$/i.exec(header ?? '');
    if (!match) return 'this route needs an Authorization: Bearer <token> header';
    return timingSafeEqual(digest(match[1]), expected) ? undefined : 'invalid API token';
  };
}

export function installAuth(app: FastifyInstance, token: string | undefined): void {
  if (!token) return;
  const refused = bearerCheck(token);
  app.addHook('onRequest', async (request, reply) => {
    if (PUBLIC_ROUTES.has(request.routeOptions.url ?? '')) return;
    const problem = refused(request.headers.authorization);
    if (problem) {
      reply.header('www-authenticate', 'Bearer');
      throw new HttpError(401, problem);
    }
  });
}
