// Text that PostgreSQL's jsonb cannot hold: the NUL character and a lone UTF-16 surrogate,
// both of which JSON can carry ("\u0000", "\ud800").

const LONE_SURROGATE = /[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/g;
const UNSTORABLE = new RegExp(`\\u0000|${LONE_SURROGATE.source}`);

/** True when jsonb cannot store this string (as a value or as a key). */
export function isJsonbUnstorable(text: string): boolean {
  return UNSTORABLE.test(text);
}

/** A JSON.stringify replacer that drops NUL characters and replaces lone surrogates with U+FFFD. */
export const jsonbSafe = (_key: string, value: unknown): unknown => (typeof value === 'string' ? value.replaceAll('\u0000', '').replace(LONE_SURROGATE, '\ufffd') : value);
