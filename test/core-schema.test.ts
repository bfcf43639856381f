import { Ajv } from 'ajv';
import Type from 'typebox';
import { describe, expect, it } from 'vitest';
import { Section, StringMap, type Static } from '../core/schema.js';

/** core/schema.ts: one TypeBox definition is both the JSON Schema ajv checks and the type the code reads. */

const ajv = new Ajv({ allErrors: true, useDefaults: true, strict: true });

describe('Section', () => {
  const schema = Section({
    name: Type.String(),
    port: Type.Integer({ default: 8080 }),
    note: Type.Optional(Type.String()),
  });

  it('requires only the keys that have neither a default nor Optional, and refuses unknown keys', () => {
    expect(schema.required).toEqual(['name']);
    expect((schema as { additionalProperties?: unknown }).additionalProperties).toBe(false);
    const validate = ajv.compile(schema);
    expect(validate({ name: 'a', extra: 1 })).toBe(false);
    expect(validate.errors?.map((e) => e.keyword)).toEqual(['additionalProperties']);
    expect(validate({})).toBe(false);
    expect(validate.errors?.map((e) => e.keyword)).toEqual(['required']);
  });

  it('leaves a defaulted key present after validation, as its type says', () => {
    const doc: unknown = { name: 'a' };
    expect(ajv.compile(schema)(doc)).toBe(true);
    const value = doc as Static<typeof schema>;
    const port: number = value.port;
    expect(port).toBe(8080);
    expect(value.note).toBeUndefined();
  });

  it('has no required list at all when every key is defaulted or optional', () => {
    const all = Section({ a: Type.Integer({ default: 1 }), b: Type.Optional(Type.String()) }, { default: {} });
    expect('required' in all).toBe(false);
    const doc: { section?: unknown } = {};
    expect(ajv.compile(Section({ section: all }))(doc)).toBe(true);
    expect(doc.section).toEqual({ a: 1 });
  });
});

describe('StringMap', () => {
  it('checks every key and every value', () => {
    const validate = ajv.compile(StringMap(Type.String({ minLength: 1, maxLength: 3 }), Type.Enum([0, 1, 2])));
    expect(validate({ acr: 2, x: 0 })).toBe(true);
    expect(validate({ long: 1 })).toBe(false);
    expect(validate({ acr: 3 })).toBe(false);
  });
});
