import { Type as T, type Static } from 'typebox';
import { defineSinkKind } from './kind.js';

export const StdoutSinkSchema = T.Object({ type: T.Literal('stdout') }, { additionalProperties: false });
export type StdoutSinkConfig = Static<typeof StdoutSinkSchema>;

/** One JSON line per event on standard output, written with the event. */
export const stdoutSink = defineSinkKind({
  type: 'stdout',
  schema: StdoutSinkSchema,
  delivery: 'direct',
  filePaths: [],
  check: () => [],
  create: (_sink, ctx) => ({ write: (line) => void ctx.destination.write(`${line}\n`) }),
});
