// Start-up check against a cluster mldeploy did not start: its search attributes must be
// registered in the namespace (the dev server gets them at start). Registering needs
// operator rights, so mldeploy never does it itself; it prints the commands instead.
import { ALL_SEARCH_ATTRIBUTES, CLI_TYPE_NAMES } from '../../workflows/search-attributes.ts';
import { log } from '../log.ts';

/** The IndexedValueType numbers of temporal/api/enums/v1/common.proto. */
const INDEXED_VALUE_TYPE: Record<string, number> = { TEXT: 1, KEYWORD: 2, INT: 3, DOUBLE: 4, BOOL: 5, DATETIME: 6, KEYWORD_LIST: 7 };

/** What the check needs of a Client (a real one fits; tests pass a fake). */
export interface OperatorClient {
  connection: {
    operatorService: {
      listSearchAttributes(request: { namespace: string }): Promise<{ customAttributes?: Record<string, unknown> | null }>;
    };
  };
}

type Key = (typeof ALL_SEARCH_ATTRIBUTES)[number];

export class SearchAttributesMissingError extends Error {
  constructor(
    readonly namespace: string,
    readonly missing: Key[],
    readonly mistyped: Key[],
  ) {
    super(describeProblem(namespace, missing, mistyped));
    this.name = 'SearchAttributesMissingError';
  }
}

/** The commands that register `keys` in `namespace`, on a self-hosted cluster and on Temporal Cloud. */
export function registrationCommands(namespace: string, keys: Key[]): { temporal: string; tcld: string } {
  const names = keys.map((k) => `--name ${k.name}`).join(' ');
  const types = keys.map((k) => `--type ${CLI_TYPE_NAMES[k.type]}`).join(' ');
  const cloud = keys.map((k) => `--search-attribute "${k.name}=${CLI_TYPE_NAMES[k.type]}"`).join(' ');
  return {
    temporal: `temporal operator search-attribute create --namespace ${namespace} ${names} ${types}`,
    tcld: `tcld namespace search-attributes add --namespace ${namespace} ${cloud}`,
  };
}

function describeProblem(namespace: string, missing: Key[], mistyped: Key[]): string {
  const lines = [];
  if (missing.length) {
    const { temporal, tcld } = registrationCommands(namespace, missing);
    lines.push(
      `namespace ${namespace} lacks mldeploy's search attribute(s) ${missing.map((k) => k.name).join(', ')}. Register them once:`,
      `  ${temporal}`,
      `On Temporal Cloud (namespace with its account suffix, e.g. ${namespace}.a1b2c):`,
      `  ${tcld}`,
    );
  }
  for (const key of mistyped) {
    lines.push(
      `search attribute ${key.name} in namespace ${namespace} has another type than ${CLI_TYPE_NAMES[key.type]}; a search attribute's type cannot change: delete and re-create it, or use another namespace`,
    );
  }
  return lines.join('\n');
}

/** Compares a namespace's custom search attributes (name → IndexedValueType) with mldeploy's. */
export function findSearchAttributeProblems(registered: Record<string, unknown>, required: Key[] = ALL_SEARCH_ATTRIBUTES): { missing: Key[]; mistyped: Key[] } {
  const missing = required.filter((k) => !(k.name in registered));
  const mistyped = required.filter((k) => {
    if (!(k.name in registered)) return false;
    const actual = registered[k.name];
    return actual !== INDEXED_VALUE_TYPE[k.type] && actual !== `INDEXED_VALUE_TYPE_${k.type}`;
  });
  return { missing, mistyped };
}

/** gRPC status PERMISSION_DENIED: the credentials may run workflows but not list attributes. */
const PERMISSION_DENIED = 7;

/**
 * Throws SearchAttributesMissingError (whose message has the commands to run) when any is
 * missing. Credentials without the right to list them only get a warning: workflows would
 * then fail on the first upsert, with Temporal's own message.
 */
export async function checkSearchAttributes(client: OperatorClient, namespace: string, required: Key[] = ALL_SEARCH_ATTRIBUTES): Promise<void> {
  let customAttributes: Record<string, unknown> | null | undefined;
  try {
    ({ customAttributes } = await client.connection.operatorService.listSearchAttributes({ namespace }));
  } catch (err) {
    if ((err as { code?: number }).code !== PERMISSION_DENIED) throw err;
    log.warn(
      { namespace },
      `cannot list the search attributes of namespace ${namespace} with these credentials; make sure ${required.map((k) => k.name).join(', ')} are registered`,
    );
    return;
  }
  const { missing, mistyped } = findSearchAttributeProblems(customAttributes ?? {}, required);
  if (missing.length || mistyped.length) throw new SearchAttributesMissingError(namespace, missing, mistyped);
}
