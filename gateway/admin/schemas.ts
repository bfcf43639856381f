import Type, { type TObject, type TProperties, type TSchema, type TUnsafe } from 'typebox';
import { Section } from '../../core/schema.js';
import { NATIONAL_ID_PATTERN } from '../../core/national-id.js';

/**
 * The pieces the admin API's route schemas share, written once with TypeBox: fastify validates
 * and serializes with them, the OpenAPI document (openapi.ts) prints them, and handlers read
 * their request types from them with `Static<>`.
 */

/** A response object: the handler may leave any field out; fastify serializes it with this schema. */
export const Reply = <P extends TProperties>(properties: P) => Type.Partial(Type.Object(properties));

/** `{ items: [...] }`, the shape of every list. */
export const Items = <T extends TSchema>(item: T) => Reply({ items: Type.Array(item) });

/** A string or null, written as JSON Schema's type list (as the reference has always shown it). */
export const NullableString = (options: Record<string, unknown> = {}): TUnsafe<string | null> => Type.Unsafe<string | null>({ type: ['string', 'null'], ...options });

/** Free-form JSON objects (obligations, JWKs, what-if flips). */
export const AnyObject = (options: Record<string, unknown> = {}): TUnsafe<Record<string, unknown>> => Type.Unsafe<Record<string, unknown>>({ type: 'object', additionalProperties: true, ...options });

/** A request body that refuses unknown keys; a key with a default is filled in, so not required. */
export const Body = <P extends TProperties>(properties: P): TObject<P> => Section(properties);

/**
 * A body whose unknown keys fastify drops rather than refuses (its default validation); a key
 * with a default is filled in, so not required.
 */
export const LenientBody = <P extends TProperties>(properties: P): TObject<P> => {
  const schema = Section(properties);
  delete (schema as { additionalProperties?: unknown }).additionalProperties;
  return schema;
};

/** Path parameters: every one is required (it is in the path). */
export const Params = <P extends TProperties>(properties: P): TObject<P> => Type.Object(properties);

export const NationalIdParams = Params({ nationalId: Type.String({ pattern: NATIONAL_ID_PATTERN }) });

/** An audited change that must say why: a body of one required reason (ending sessions). */
export const ReasonBody = Body({ reason: Type.String({ minLength: 1, maxLength: 1000, description: 'Lý do / why: required' }) });

/** The review of a policy version (approve, reject, roll back) says why. */
export const CommentBody = Body({ comment: Type.String({ minLength: 3, maxLength: 2000, description: 'Ý kiến / why' }) });
