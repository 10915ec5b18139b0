// The pure parts of the streaming fan-out: the decision policy, the routing file and the
// event envelope.
import fs from 'node:fs';
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { decide, evaluatePolicy } from '../../src/streaming/policy.ts';
import { consumerQueues, consumerTaskQueue, parseRouting, RoutingError } from '../../src/streaming/routing.ts';
import { EventError, parseEvent } from '../../src/streaming/event.ts';
import type { ConsumerOutcome, DecisionPolicy } from '../../src/streaming/types.ts';

const policy: DecisionPolicy = {
  rules: [
    { when: { duration: { gt: 90 } }, action: 'review', reason: 'long' },
    { when: { duration: { gt: 30 }, fare: { lt: 10 } }, action: 'review', reason: 'long and cheap' },
    { when: { tip: { gte: 5 } }, action: 'priority', reason: 'big tip' },
  ],
  default: 'accept',
};
const ok = (consumer: string, prediction: number): ConsumerOutcome => ({ consumer, status: 'ok', prediction, model: { name: consumer, version: 1 } });

describe('decision policy', () => {
  it('the first matching rule sets the action; every matching rule gives its reason', () => {
    expect(evaluatePolicy(policy, { duration: 100, fare: 5, tip: 6 })).toEqual({ action: 'review', reasons: ['long', 'long and cheap', 'big tip'] });
    expect(evaluatePolicy(policy, { duration: 10, fare: 5, tip: 6 })).toEqual({ action: 'priority', reasons: ['big tip'] });
    expect(evaluatePolicy(policy, { duration: 10, fare: 50, tip: 1 })).toEqual({ action: 'accept', reasons: ['no rule matched'] });
  });

  it('thresholds are strict or inclusive as written', () => {
    expect(evaluatePolicy(policy, { duration: 90 }).action).toBe('accept');
    expect(evaluatePolicy(policy, { tip: 5 }).action).toBe('priority');
  });

  it('a rule over a missing consumer does not match', () => {
    expect(evaluatePolicy(policy, { duration: 10, fare: 50 }).action).toBe('accept');
  });

  it('a failed required consumer fails the decision; a missing optional one is noted', () => {
    const now = new Date('2024-01-01T00:00:00Z');
    const failed = decide({ id: 'e1', type: 'ride_started' }, policy, [ok('duration', 10), { consumer: 'fare', status: 'missing', required: true, reason: 'boom' }], now);
    expect(failed).toMatchObject({ id: 'ride_started:e1', status: 'failed', action: null, reasons: ["required consumer 'fare' failed: boom"], missing: ['fare'] });
    const partial = decide(
      { id: 'e2', type: 'ride_started' },
      policy,
      [ok('duration', 10), ok('fare', 50), { consumer: 'tip', status: 'missing', required: false, reason: 'timeout' }],
      now,
    );
    expect(partial).toMatchObject({ status: 'decided', action: 'accept', predictions: { duration: 10, fare: 50 }, missing: ['tip'] });
    expect(partial.reasons).toEqual(['no rule matched', "optional consumer 'tip' missing: timeout"]);
  });

  it('always yields one of the policy actions, with at least one reason', () => {
    const actions = new Set([policy.default, ...policy.rules.map((r) => r.action)]);
    fc.assert(
      fc.property(fc.record({ duration: fc.double({ noNaN: true }), fare: fc.double({ noNaN: true }), tip: fc.double({ noNaN: true }) }, { requiredKeys: [] }), (predictions) => {
        const { action, reasons } = evaluatePolicy(policy, predictions);
        return actions.has(action) && reasons.length > 0;
      }),
    );
  });
});

describe('decision policy on class probabilities', () => {
  const fraud: DecisionPolicy = {
    rules: [
      { when: { fraud: { 'proba.1': { gt: 0.8 } } }, action: 'review', reason: 'likely fraud' },
      { when: { fraud: { 'proba.1': { gt: 0.5 } }, amount: { gt: 1000 } }, action: 'review', reason: 'possible fraud, large amount' },
      { when: { risk: { 'proba.high': { gte: 0.5 }, lt: 3 } }, action: 'hold', reason: 'high risk' },
    ],
    default: 'accept',
  };
  const classified = (consumer: string, label: string | number, probabilities: Record<string, number>): ConsumerOutcome => ({
    consumer,
    status: 'ok',
    prediction: typeof label === 'number' ? label : Object.keys(probabilities).indexOf(label),
    model: { name: consumer, version: 1 },
    label,
    probabilities,
  });

  it('tests one class probability, beside other consumers and the prediction itself', () => {
    expect(evaluatePolicy(fraud, { fraud: 1 }, { fraud: { 0: 0.1, 1: 0.9 } })).toEqual({ action: 'review', reasons: ['likely fraud'] });
    expect(evaluatePolicy(fraud, { fraud: 1, amount: 2000 }, { fraud: { 0: 0.4, 1: 0.6 } }).reasons).toEqual(['possible fraud, large amount']);
    expect(evaluatePolicy(fraud, { fraud: 1, amount: 20 }, { fraud: { 0: 0.4, 1: 0.6 } }).action).toBe('accept');
    // proba.high and the prediction (the class position of a string label) both hold.
    expect(evaluatePolicy(fraud, { risk: 0 }, { risk: { high: 0.5, low: 0.2, mid: 0.3 } }).action).toBe('hold');
    expect(evaluatePolicy(fraud, { risk: 0 }, { risk: { high: 0.4, low: 0.2, mid: 0.4 } }).action).toBe('accept');
  });

  it('a probability condition on a consumer without that class, or not a classifier, does not hold', () => {
    expect(evaluatePolicy(fraud, { fraud: 0.95 }).action).toBe('accept');
    expect(evaluatePolicy(fraud, { fraud: 1 }, { fraud: { no: 0.05, yes: 0.95 } }).action).toBe('accept');
  });

  it('decisions keep each classifier consumer’s label and probabilities; regression-only decisions have no such fields', () => {
    const now = new Date('2024-01-01T00:00:00Z');
    const d = decide({ id: 'p1', type: 'payment' }, fraud, [classified('fraud', 1, { 0: 0.15, 1: 0.85 }), ok('amount', 10)], now);
    expect(d).toMatchObject({ status: 'decided', action: 'review', predictions: { fraud: 1, amount: 10 }, labels: { fraud: 1 }, probabilities: { fraud: { 0: 0.15, 1: 0.85 } } });
    const plain = decide({ id: 'e1', type: 'ride_started' }, policy, [ok('duration', 10)], now);
    expect(Object.keys(plain)).not.toContain('labels');
    expect(Object.keys(plain)).not.toContain('probabilities');
  });
});

describe('routing file', () => {
  it('the shipped config/routing.json is valid: ride_started fans out to duration, fare and tip', () => {
    const routing = parseRouting(JSON.parse(fs.readFileSync('config/routing.json', 'utf8')));
    const route = routing.events.ride_started;
    expect(route.consumers.map((c) => [c.name, c.model, consumerTaskQueue(c), c.required])).toEqual([
      ['duration', 'trip-duration@production', 'mldeploy-consumer-duration', true],
      ['fare', 'fare@production', 'mldeploy-consumer-fare', true],
      ['tip', 'tip@production', 'mldeploy-consumer-tip', false],
    ]);
    expect([...consumerQueues(routing).keys()]).toEqual(['duration', 'fare', 'tip']);
  });

  it.each([
    [{ events: { x: { consumers: [], decision: { rules: [], default: 'a' } } } }, /events.x.consumers/],
    [
      {
        events: {
          x: {
            consumers: [
              { name: 'a', model: 'm' },
              { name: 'a', model: 'm' },
            ],
            decision: { rules: [], default: 'a' },
          },
        },
      },
      /consumer 'a' is listed twice/,
    ],
    [
      { events: { x: { consumers: [{ name: 'a', model: 'm' }], decision: { rules: [{ when: { b: { gt: 1 } }, action: 'r', reason: 'r' }], default: 'a' } } } },
      /no consumer named 'b'/,
    ],
    [{ events: { x: { consumers: [{ name: 'a', model: 'm' }], decision: { rules: [{ when: { a: { above: 1 } }, action: 'r', reason: 'r' }], default: 'a' } } } }, /above/],
    [{ events: { x: { consumers: [{ name: 'a', model: 'm', timeoutMs: -1 }], decision: { rules: [], default: 'a' } } } }, /timeoutMs/],
    [
      { events: { x: { consumers: [{ name: 'a', model: 'm' }], decision: { rules: [{ when: { a: { 'proba.1': { above: 1 } } }, action: 'r', reason: 'r' }], default: 'a' } } } },
      /when.a.proba.1/,
    ],
    [{ events: { x: { consumers: [{ name: 'a', model: 'm' }], decision: { rules: [{ when: { a: { 'proba.1': 0.8 } }, action: 'r', reason: 'r' }], default: 'a' } } } }, /proba.1/],
    [
      { events: { x: { consumers: [{ name: 'a', model: 'm' }], decision: { rules: [{ when: { a: { gt: 'high' } }, action: 'r', reason: 'r' }], default: 'a' } } } },
      /when.a.gt: must be a number/,
    ],
    [{ events: { x: { consumers: [{ name: 'a', model: 'm' }], decision: { rules: [{ when: { a: {} }, action: 'r', reason: 'r' }], default: 'a' } } } }, /needs at least one/],
  ])('rejects %j with the path of the problem', (raw, message) => {
    expect(() => parseRouting(raw)).toThrow(RoutingError);
    expect(() => parseRouting(raw)).toThrow(message);
  });
});

describe('event envelope', () => {
  it('keeps a given id and time, generates them otherwise', () => {
    const now = new Date('2024-05-01T10:00:00Z');
    expect(parseEvent({ id: 256, type: 'ride_started', payload: { a: 1 }, time: '2024-05-01T09:00:00+02:00' }, now)).toEqual({
      id: '256',
      type: 'ride_started',
      payload: { a: 1 },
      time: '2024-05-01T07:00:00.000Z',
    });
    const generated = parseEvent({ type: 'ride_started', payload: {} }, now);
    expect(generated.id).toMatch(/^[0-9a-f-]{36}$/);
    expect(generated.time).toBe(now.toISOString());
  });

  it.each([
    [{ type: 'ride_started', payload: [] }, /payload/],
    [{ type: 'ride_started', payload: {}, time: 'yesterday' }, /time/],
    [{ type: 'ride_started', payload: { big: 'x'.repeat(70_000) } }, /payload is \d+ bytes, the limit is 65536/],
  ])('rejects %j', (raw, message) => {
    expect(() => parseEvent(raw)).toThrow(EventError);
    expect(() => parseEvent(raw)).toThrow(message);
  });
});
