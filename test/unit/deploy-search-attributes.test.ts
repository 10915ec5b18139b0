// The start-up check against a cluster mldeploy did not start: mldeploy's search attributes
// must be registered, or start-up fails with the commands that register them.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { inject } from 'vitest';
import { Client, Connection } from '@temporalio/client';
import { defineSearchAttributeKey, SearchAttributeType } from '@temporalio/common';
import { ALL_SEARCH_ATTRIBUTES, JOB, MODEL_VERSION } from '../../workflows/search-attributes.ts';
import { checkSearchAttributes, registrationCommands, SearchAttributesMissingError, type OperatorClient } from '../../src/stack/search-attributes-check.ts';

/** A client whose namespace has exactly these custom attributes (name → IndexedValueType). */
function fakeClient(customAttributes: Record<string, number>, seen: string[] = []): OperatorClient {
  return {
    connection: {
      operatorService: {
        async listSearchAttributes({ namespace }) {
          seen.push(namespace);
          return { customAttributes };
        },
      },
    },
  };
}

const KEYWORD = 2;
const INT = 3;
const allRegistered = () => Object.fromEntries(ALL_SEARCH_ATTRIBUTES.map((k) => [k.name, k.type === SearchAttributeType.INT ? INT : KEYWORD]));

describe('checkSearchAttributes with a fake namespace', () => {
  it('passes when every attribute is registered with its type, and asks about the given namespace', async () => {
    const seen: string[] = [];
    await checkSearchAttributes(fakeClient(allRegistered(), seen), 'ml-prod');
    expect(seen).toEqual(['ml-prod']);
  });

  it('fails naming the missing attributes and printing the exact commands that register them', async () => {
    const registered = allRegistered();
    delete registered[JOB.name];
    delete registered[MODEL_VERSION.name];
    const err = await checkSearchAttributes(fakeClient(registered), 'ml-prod').catch((e) => e);
    expect(err).toBeInstanceOf(SearchAttributesMissingError);
    expect(err.missing.map((k: { name: string }) => k.name)).toEqual(['MldeployJob', 'MldeployModelVersion']);
    expect(err.message).toContain('temporal operator search-attribute create --namespace ml-prod --name MldeployJob --name MldeployModelVersion --type Keyword --type Int');
    expect(err.message).toContain(
      'tcld namespace search-attributes add --namespace ml-prod --search-attribute "MldeployJob=Keyword" --search-attribute "MldeployModelVersion=Int"',
    );
  });

  it('an empty namespace lists all of them', async () => {
    const err = await checkSearchAttributes(fakeClient({}), 'fresh').catch((e) => e);
    expect(err.missing).toEqual(ALL_SEARCH_ATTRIBUTES);
    expect(err.message).toContain(registrationCommands('fresh', ALL_SEARCH_ATTRIBUTES).temporal);
  });

  it('an attribute registered with another type is reported (its type cannot change)', async () => {
    const err = await checkSearchAttributes(fakeClient({ ...allRegistered(), [MODEL_VERSION.name]: KEYWORD }), 'ml-prod').catch((e) => e);
    expect(err).toBeInstanceOf(SearchAttributesMissingError);
    expect(err.missing).toEqual([]);
    expect(err.mistyped).toEqual([MODEL_VERSION]);
    expect(err.message).toContain('MldeployModelVersion');
  });

  it('credentials that may not list attributes get a warning, not a failed start', async () => {
    const denied: OperatorClient = {
      connection: { operatorService: { listSearchAttributes: async () => Promise.reject(Object.assign(new Error('denied'), { code: 7 })) } },
    };
    await expect(checkSearchAttributes(denied, 'ml-prod')).resolves.toBeUndefined();
    const unavailable: OperatorClient = {
      connection: { operatorService: { listSearchAttributes: async () => Promise.reject(Object.assign(new Error('unavailable'), { code: 14 })) } },
    };
    await expect(checkSearchAttributes(unavailable, 'ml-prod')).rejects.toThrow('unavailable');
  });
});

describe("checkSearchAttributes against the test run's real Temporal server", () => {
  let connection: Connection;
  let client: Client;
  beforeAll(async () => {
    connection = await Connection.connect({ address: inject('temporalAddress') });
    client = new Client({ connection });
  });
  afterAll(async () => {
    await connection.close();
  });

  it("passes: the server was started with mldeploy's search attributes", async () => {
    await expect(checkSearchAttributes(client, 'default')).resolves.toBeUndefined();
  });

  it('fails for an attribute the server does not have, with the command to register it', async () => {
    const unknown = defineSearchAttributeKey('MldeployNotRegistered', SearchAttributeType.KEYWORD);
    await expect(checkSearchAttributes(client, 'default', [...ALL_SEARCH_ATTRIBUTES, unknown])).rejects.toThrow(
      'temporal operator search-attribute create --namespace default --name MldeployNotRegistered --type Keyword',
    );
  });
});
