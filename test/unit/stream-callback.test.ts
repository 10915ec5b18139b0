// The callback allow-list (MLDEPLOY_CALLBACK_HOSTS): parsing, matching, and its place in the configuration.
import { describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config.ts';
import { parseCallbackHosts } from '../../src/config.ts';
import { callbackRefusal } from '../../src/streaming/callback.ts';

describe('callback hosts', () => {
  it('allows every host when no list is set', () => {
    expect(callbackRefusal('http://169.254.169.254/latest', undefined)).toBeUndefined();
    expect(loadConfig({}).streaming.callbackHosts).toBeUndefined();
  });

  it('matches exact names and *.domain subdomains, case-insensitively, whatever the port or path', () => {
    const hosts = parseCallbackHosts(' Hooks.Example.com, *.example.org ,10.0.0.7,[::1]');
    expect(hosts).toEqual(['hooks.example.com', '*.example.org', '10.0.0.7', '[::1]']);
    expect(callbackRefusal('https://HOOKS.example.com:8443/a?b=c', hosts)).toBeUndefined();
    expect(callbackRefusal('https://a.b.example.org/x', hosts)).toBeUndefined();
    expect(callbackRefusal('http://10.0.0.7/x', hosts)).toBeUndefined();
    expect(callbackRefusal('http://[::1]:9/x', hosts)).toBeUndefined();
    expect(callbackRefusal('https://example.org/x', hosts)).toBe('callbackUrl host example.org is not in MLDEPLOY_CALLBACK_HOSTS');
    expect(callbackRefusal('https://evil-example.org/x', hosts)).toBe('callbackUrl host evil-example.org is not in MLDEPLOY_CALLBACK_HOSTS');
    expect(callbackRefusal('https://hooks.example.com.evil.net/x', hosts)).toMatch(/not in MLDEPLOY_CALLBACK_HOSTS/);
    expect(callbackRefusal('http://169.254.169.254/latest', hosts)).toMatch(/169\.254\.169\.254 is not in/);
  });

  it('refuses a list holding something other than host names, naming the variable', () => {
    expect(() => loadConfig({ MLDEPLOY_CALLBACK_HOSTS: 'hooks.example.com,https://x.example.com/' })).toThrow(
      'invalid configuration: MLDEPLOY_CALLBACK_HOSTS: not host names: "https://x.example.com/"',
    );
    expect(loadConfig({ MLDEPLOY_CALLBACK_HOSTS: 'hooks.example.com' }).streaming.callbackHosts).toEqual(['hooks.example.com']);
  });
});
