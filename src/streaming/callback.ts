// Which hosts may receive decision callbacks. A callback is a request from inside the
// deployment to a URL the producer chose; MLDEPLOY_CALLBACK_HOSTS keeps producers from making
// the workers call internal services (server-side request forgery).

const HOST_PATTERN = /^(?:\*\.)?[a-z0-9](?:[a-z0-9-]{0,62})(?:\.[a-z0-9](?:[a-z0-9-]{0,62}))*$|^\d{1,3}(?:\.\d{1,3}){3}$|^\[[0-9a-f:.]+\]$/;

/** Parses the comma-separated allow-list: host names, `*.example.com` for any subdomain, IPv4 or [IPv6] literals. */
export function parseCallbackHosts(value: string): string[] {
  const hosts = value
    .split(',')
    .map((h) => h.trim().toLowerCase())
    .filter(Boolean);
  const bad = hosts.filter((h) => !HOST_PATTERN.test(h));
  if (bad.length > 0) throw new Error(`not host names: ${bad.map((h) => JSON.stringify(h)).join(', ')} (use names such as hooks.example.com or *.example.com, without scheme or port)`);
  return hosts;
}

/** Why url may not be called back, or undefined when it may. No allow-list (undefined) allows every host. */
export function callbackRefusal(url: string, allowed: readonly string[] | undefined): string | undefined {
  if (allowed === undefined) return undefined;
  const host = new URL(url).hostname.toLowerCase();
  const ok = allowed.some((pattern) => (pattern.startsWith('*.') ? host.endsWith(pattern.slice(1)) : host === pattern));
  return ok ? undefined : `callbackUrl host ${host} is not in MLDEPLOY_CALLBACK_HOSTS`;
}
