/** Every key a configuration can have, as a path: `identity.issuers[].audience`, `audit.sinks[].host`. */
export function schemaKeys(schema: any, at = ''): string[] {
  const props: Record<string, any> = { ...(schema.properties ?? {}) };
  // Sink types: each `then` branch adds its own keys.
  for (const branch of schema.allOf ?? []) Object.assign(props, branch.then?.properties ?? {});
  const names = Object.keys(props);
  // Maps (by security level, by acr value) and open objects (JWKs) are one key.
  if (names.length === 0 || names.every((n) => /^\d+$/.test(n)) || (at && schema.additionalProperties !== false && !schema.allOf)) return [at];
  return names.flatMap((name) => {
    const path = at ? `${at}.${name}` : name;
    const s = props[name];
    if (s.type === 'array' && s.items?.type === 'object') return s.items.additionalProperties === false || s.items.allOf ? schemaKeys(s.items, `${path}[]`) : [path];
    if (s.type === 'object' || s.properties) return schemaKeys(s, path);
    return [path];
  });
}
