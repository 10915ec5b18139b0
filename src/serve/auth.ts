// Bearer-token authentication for every route except health and metrics. Tokens are
// compared as sha256 digests with timingSafeEqual: equal lengths, constant time.
import { createHash, timingSafeEqual } from 'node:crypto';
import type { FastifyInstance } from 'fastify';
import { HttpError } from './errors.ts';

/** Route patterns that load balancers and Prometheus reach without a token. */
export const PUBLIC_ROUTES = new Set(['/healthz', '/readyz', '/metrics', '/v2/health/live', '/v2/health/ready']);

const digest = (text: string) => createHash('sha256').update(text).digest();

export function installAuth(app: FastifyInstance, token: string | undefined): void {
  if (!token) return;
  const expected = digest(token);
  app.addHook('onRequest', async (request, reply) => {
    if (PUBLIC_ROUTES.has(request.routeOptions.url ?? '')) return;
    const header = request.headers.authorization ?? '';
    const match = /^Bearer ([^\s]+)$/i.exec(header);
    if (!match || !timingSafeEqual(digest(match[1]), expected)) {
      reply.header('www-authenticate', 'Bearer');
      throw new HttpError(401, match ? 'invalid API token' : 'this route needs an Authorization: Bearer <token> header');
    }
  });
}
