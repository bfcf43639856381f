import Type, { type Static, type TObject, type TObjectOptions, type TProperties, type TSchema, type TUnsafe } from 'typebox';

/**
 * Building blocks for the configuration and API schemas. Every schema is written once with
 * TypeBox: the same object is the JSON Schema ajv validates with and, through `Static<>`, the
 * TypeScript type, so a type cannot drift from its schema.
 */

/**
 * A strict object (unknown keys refused). A property with a `default` is not required in the
 * document, yet its type is not optional: ajv (useDefaults) fills it in before anyone reads it.
 * Only `Type.Optional` properties are optional in the type.
 */
export function Section<P extends TProperties>(properties: P, options: TObjectOptions = {}): TObject<P> {
  const schema = Type.Object(properties, { additionalProperties: false, ...options });
  const required = (schema.required as readonly string[] | undefined)?.filter((key) => (properties[key] as { default?: unknown }).default === undefined) ?? [];
  const target = schema as unknown as { required?: string[] };
  if (required.length > 0) target.required = required;
  else delete target.required;
  return schema;
}

/** An object whose keys are free (checked by `key`) and whose values all follow `value`. */
export function StringMap<V extends TSchema>(key: TSchema, value: V, options: Record<string, unknown> = {}): TUnsafe<Record<string, Static<V>>> {
  return Type.Unsafe<Record<string, Static<V>>>({ type: 'object', propertyNames: key, additionalProperties: value, ...options } as TSchema);
}

/** A short identifier: lower case letters, digits and hyphens (route, agency, rule, sink names). */
export const Id = () => Type.String({ pattern: '^[a-z0-9][a-z0-9-]{0,62}$' });
/** A non-empty string of bounded length (URLs, names, file paths). */
export const NonEmpty = () => Type.String({ minLength: 1, maxLength: 2048 });

/** A service's security level (cấp độ an toàn hệ thống thông tin, 1–5). */
export const SecurityLevel = () => Type.Unsafe<1 | 2 | 3 | 4 | 5>(Type.Integer({ minimum: 1, maximum: 5 }));

/** Identity assurance level: 0 unknown, 1 basic, 2 high (VNeID levels). */
export const ASSURANCE_LEVELS = [0, 1, 2] as const;

/** The configuration as the program reads it: frozen after parsing, so every level is read-only. */
export type DeepReadonly<T> = T extends (...args: never[]) => unknown ? T : T extends readonly (infer E)[] ? readonly DeepReadonly<E>[] : T extends object ? { readonly [K in keyof T]: DeepReadonly<T[K]> } : T;

export type { Static };
