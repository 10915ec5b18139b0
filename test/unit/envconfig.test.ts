// Any Temporal cluster is reached through Temporal's environment configuration: each form
// (address + namespace, API key, mTLS files, a TOML profile) gives the connection options
// mldeploy connects with, through externalTemporal().
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { externalTemporal } from '../../src/stack/stack.ts';
import { loadConfig } from '../../src/config.ts';

const saved = { ...process.env };
let tmp: string;

beforeEach(() => {
  // Start from an environment without any TEMPORAL_* setting (CI or a developer may have some).
  for (const name of Object.keys(process.env)) if (name.startsWith('TEMPORAL_')) delete process.env[name];
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'mldeploy-envconfig-'));
  // No stray ~/.config/temporal/temporal.toml may leak into a case.
  process.env.TEMPORAL_CONFIG_FILE = path.join(tmp, 'absent.toml');
});

afterEach(() => {
  for (const name of Object.keys(process.env)) if (!(name in saved)) delete process.env[name];
  Object.assign(process.env, saved);
  fs.rmSync(tmp, { recursive: true, force: true });
});

describe('externalTemporal() through @temporalio/envconfig', () => {
  it('TEMPORAL_ADDRESS and TEMPORAL_NAMESPACE: a plain connection to that namespace', () => {
    process.env.TEMPORAL_ADDRESS = 'temporal.internal:7233';
    process.env.TEMPORAL_NAMESPACE = 'scoring';
    const target = externalTemporal();
    expect(target.connectionOptions.address).toBe('temporal.internal:7233');
    expect(target.connectionOptions.apiKey).toBeUndefined();
    expect(target.connectionOptions.tls).toBeFalsy();
    expect(target.namespace).toBe('scoring');
    expect(target.local).toBe(false);
    expect(loadConfig().temporal.external).toBe(true);
  });

  it('without TEMPORAL_NAMESPACE the namespace is default', () => {
    process.env.TEMPORAL_ADDRESS = 'temporal.internal:7233';
    expect(externalTemporal().namespace).toBe('default');
  });

  it('empty variables (compose passes `${TEMPORAL_API_KEY:-}`) count as unset', () => {
    process.env.TEMPORAL_ADDRESS = 'temporal:7233';
    process.env.TEMPORAL_NAMESPACE = '';
    process.env.TEMPORAL_API_KEY = '';
    process.env.TEMPORAL_PROFILE = '';
    const target = externalTemporal();
    expect(target.connectionOptions.apiKey).toBeUndefined();
    expect(target.connectionOptions.tls).toBeFalsy();
    expect(target.namespace).toBe('default');
  });

  it('TEMPORAL_API_KEY (Temporal Cloud): the key is sent and TLS is on', () => {
    process.env.TEMPORAL_ADDRESS = 'us-east-1.aws.api.temporal.io:7233';
    process.env.TEMPORAL_NAMESPACE = 'scoring.a1b2c';
    process.env.TEMPORAL_API_KEY = 'key-for-tests-only';
    const target = externalTemporal();
    expect(target.connectionOptions).toMatchObject({ address: 'us-east-1.aws.api.temporal.io:7233', apiKey: 'key-for-tests-only', tls: true });
    expect(target.namespace).toBe('scoring.a1b2c');
  });

  it('mTLS: the client certificate and key files are read into the TLS options', () => {
    const cert = path.join(tmp, 'client.pem');
    const key = path.join(tmp, 'client.key');
    fs.writeFileSync(cert, '-----BEGIN CERTIFICATE-----\ntest-cert\n-----END CERTIFICATE-----\n');
    fs.writeFileSync(key, '-----BEGIN PRIVATE KEY-----\ntest-key\n-----END PRIVATE KEY-----\n');
    process.env.TEMPORAL_ADDRESS = 'scoring.a1b2c.tmprl.cloud:7233';
    process.env.TEMPORAL_NAMESPACE = 'scoring.a1b2c';
    process.env.TEMPORAL_TLS_CLIENT_CERT_PATH = cert;
    process.env.TEMPORAL_TLS_CLIENT_KEY_PATH = key;
    const { connectionOptions } = externalTemporal();
    const tls = connectionOptions.tls as { clientCertPair?: { crt: Buffer; key: Buffer } };
    expect(Buffer.from(tls.clientCertPair!.crt).toString()).toBe(fs.readFileSync(cert, 'utf8'));
    expect(Buffer.from(tls.clientCertPair!.key).toString()).toBe(fs.readFileSync(key, 'utf8'));
    expect(connectionOptions.apiKey).toBeUndefined();
  });

  it('a temporal.toml profile chosen with TEMPORAL_PROFILE and TEMPORAL_CONFIG_FILE', () => {
    const file = path.join(tmp, 'temporal.toml');
    fs.writeFileSync(
      file,
      [
        '[profile.default]',
        'address = "localhost:7233"',
        'namespace = "default"',
        '',
        '[profile.prod]',
        'address = "prod.tmprl.example:7233"',
        'namespace = "ml-prod"',
        'api_key = "prod-key-for-tests"',
        '',
      ].join('\n'),
    );
    process.env.TEMPORAL_CONFIG_FILE = file;
    process.env.TEMPORAL_PROFILE = 'prod';
    const target = externalTemporal();
    expect(target.connectionOptions).toMatchObject({ address: 'prod.tmprl.example:7233', apiKey: 'prod-key-for-tests', tls: true });
    expect(target.namespace).toBe('ml-prod');
    expect(loadConfig().temporal.external).toBe(true);

    // The environment overrides the profile, as with the temporal CLI.
    process.env.TEMPORAL_NAMESPACE = 'ml-staging';
    expect(externalTemporal().namespace).toBe('ml-staging');
  });
});
