// Monitors' argument parsing, the deterministic stream sample, the webhook allow-list and the
// monitoring configuration (MLDEPLOY_ALERT_WEBHOOK_URL, MLDEPLOY_MONITOR_SAMPLE_RATE).
import { describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config.ts';
import { webhookRefusal } from '../../src/monitoring/alerts.ts';
import { formatEvery, monitorId, parseEvery, parseSource } from '../../src/monitoring/monitors.ts';
import { idShare } from '../../src/monitoring/sampling.ts';

describe('monitor arguments', () => {
  it('--every takes whole minutes, hours or days from 1m to 31d', () => {
    expect(parseEvery('1h')).toBe(3_600_000);
    expect(parseEvery('15m')).toBe(900_000);
    expect(parseEvery(' 2d ')).toBe(172_800_000);
    expect(parseEvery('90s')).toBe(90_000);
    for (const bad of ['', 'hourly', '1.5h', '-1h', '0m', '59s', '32d', '1w', '1 hour', '1e3m']) expect(() => parseEvery(bad), bad).toThrow(/--every must be a period/);
    expect(formatEvery(3_600_000)).toBe('1h');
    expect(formatEvery(90_000)).toBe('90s');
    expect(formatEvery(parseEvery('36h'))).toBe('36h');
  });

  it('--source is prediction-log or prediction-stream; the id names the model and the source', () => {
    expect(parseSource('prediction-stream')).toBe('prediction-stream');
    expect(() => parseSource('kafka')).toThrow(/--source must be one of prediction-log, prediction-stream; got "kafka"/);
    expect(monitorId('trip-duration', 'prediction-log')).toBe('monitor-trip-duration-prediction-log');
  });
});

describe('stream samples', () => {
  it('idShare is the same for an id every time and spreads ids evenly over [0, 1)', () => {
    const ids = Array.from({ length: 20_000 }, (_, i) => `ride_started:r-${i}:duration`);
    const shares = ids.map(idShare);
    expect(ids.map(idShare)).toEqual(shares);
    expect(Math.min(...shares)).toBeGreaterThanOrEqual(0);
    expect(Math.max(...shares)).toBeLessThan(1);
    for (const rate of [0.1, 0.5, 0.9]) expect(shares.filter((s) => s < rate).length / ids.length).toBeCloseTo(rate, 1);
  });
});

describe('drift alert webhooks', () => {
  it('are refused outside MLDEPLOY_CALLBACK_HOSTS and when not http(s)', () => {
    expect(webhookRefusal('https://hooks.example.com/drift', undefined)).toBeUndefined();
    expect(webhookRefusal('https://hooks.example.com/drift', ['*.example.com'])).toBeUndefined();
    expect(webhookRefusal('http://10.0.0.5/drift', ['*.example.com'])).toBe('webhook host 10.0.0.5 is not in MLDEPLOY_CALLBACK_HOSTS');
    expect(webhookRefusal('ftp://hooks.example.com/x', undefined)).toMatch(/not an http:\/\/ or https:\/\/ URL/);
  });

  it('are checked with the configuration, as are sample rates', () => {
    const config = loadConfig({
      MLDEPLOY_ALERT_WEBHOOK_URL: 'https://hooks.example.com/drift',
      MLDEPLOY_CALLBACK_HOSTS: 'hooks.example.com',
      MLDEPLOY_MONITOR_SAMPLE_RATE: '0.25',
    });
    expect(config.monitoring).toMatchObject({ alertWebhookUrl: 'https://hooks.example.com/drift', alertHosts: ['hooks.example.com'], sampleRate: 0.25 });
    expect(config.serve.monitorSampleRate).toBe(0.25);
    expect(loadConfig({}).monitoring).toMatchObject({ alertWebhookUrl: undefined, sampleRate: 0.1 });
    expect(() => loadConfig({ MLDEPLOY_ALERT_WEBHOOK_URL: 'https://evil.test/x', MLDEPLOY_CALLBACK_HOSTS: 'hooks.example.com' })).toThrow(
      /MLDEPLOY_ALERT_WEBHOOK_URL: host evil.test is not in MLDEPLOY_CALLBACK_HOSTS/,
    );
    expect(() => loadConfig({ MLDEPLOY_ALERT_WEBHOOK_URL: 'not a url' })).toThrow(/MLDEPLOY_ALERT_WEBHOOK_URL/);
    for (const rate of ['1.5', '-0.1', 'half']) expect(() => loadConfig({ MLDEPLOY_MONITOR_SAMPLE_RATE: rate }), rate).toThrow(/MLDEPLOY_MONITOR_SAMPLE_RATE/);
  });
});
