// Which hosts may receive decision callbacks. A callback is a request from inside the
// deployment to a URL the producer chose; MLDEPLOY_CALLBACK_HOSTS keeps producers from making
// the workers call internal services (server-side request forgery). The list itself is parsed
// with the configuration (parseCallbackHosts in src/config.ts).

/** Why url may not be called back, or undefined when it may. No allow-list (undefined) allows every host. */
export function callbackRefusal(url: string, allowed: readonly string[] | undefined): string | undefined {
  if (allowed === undefined) return undefined;
  const host = new URL(url).hostname.toLowerCase();
  const ok = allowed.some((pattern) => (pattern.startsWith('*.') ? host.endsWith(pattern.slice(1)) : host === pattern));
  return ok ? undefined : `callbackUrl host ${host} is not in MLDEPLOY_CALLBACK_HOSTS`;
}
