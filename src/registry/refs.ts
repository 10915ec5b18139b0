// Model references: `name@alias`, `name@<version>`, or a bare `name` (the `production`
// alias, else the latest version).

export const DEFAULT_ALIAS = 'production';
const NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/;
const ALIAS = /^[A-Za-z][A-Za-z0-9_-]{0,63}$/;

export interface ModelRef {
  name: string;
  version?: number;
  alias?: string;
}

export class RefError extends Error {
  override name = 'RefError';
}

export function validateModelName(name: string): string {
  if (!NAME.test(name)) throw new RefError(`invalid model name ${JSON.stringify(name)}: use letters, digits, '.', '_' and '-' (at most 128)`);
  return name;
}

export function validateAlias(alias: string): string {
  if (!ALIAS.test(alias)) throw new RefError(`invalid alias ${JSON.stringify(alias)}: start with a letter; letters, digits, '_' and '-'`);
  return alias;
}

/** Versions are PostgreSQL integers: a larger number is bad input, not a database error. */
export const MAX_VERSION = 2_147_483_647;

export function parseModelRef(ref: string): ModelRef {
  const at = ref.indexOf('@');
  const name = validateModelName(at < 0 ? ref : ref.slice(0, at));
  if (at < 0) return { name };
  const tag = ref.slice(at + 1);
  if (/^\d+$/.test(tag)) {
    const version = Number(tag);
    if (version < 1 || version > MAX_VERSION) throw new RefError(`invalid version in ${JSON.stringify(ref)}: versions run from 1 to ${MAX_VERSION}`);
    return { name, version };
  }
  return { name, alias: validateAlias(tag) };
}

export function formatRef(ref: ModelRef): string {
  return ref.version !== undefined ? `${ref.name}@${ref.version}` : ref.alias ? `${ref.name}@${ref.alias}` : ref.name;
}
