// JSON printed or written by a command uses snake_case field names, the tool's one convention (as
// config.json and the eval results do). Records built in TypeScript keep camelCase inside; this converts
// at the boundary. Only camelCase identifiers change: data keys such as dtype names (`BF16`) stay.

const CAMEL = /^[a-z][a-zA-Z0-9]*[A-Z][a-zA-Z0-9]*$/;

export function snakeCase(key: string): string {
  return CAMEL.test(key) ? key.replace(/([a-z0-9])([A-Z])/g, '$1_$2').toLowerCase() : key;
}

export function snakeCaseKeys(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(snakeCaseKeys);
  if (typeof value !== 'object' || value === null) return value;
  return Object.fromEntries(Object.entries(value).map(([k, v]) => [snakeCase(k), snakeCaseKeys(v)]));
}

/** `JSON.stringify` with snake_case field names. */
export function jsonText(value: unknown, indent?: number): string {
  return JSON.stringify(snakeCaseKeys(value), null, indent);
}
