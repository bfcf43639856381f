// node-postgres ships its SCRAM client without type declarations.
declare module 'pg/lib/crypto/sasl.js' {
  interface ScramSession {
    mechanism: string;
    response: string;
  }
  const sasl: {
    startSession(mechanisms: string[], stream?: unknown): ScramSession;
    continueSession(session: ScramSession, password: string, serverData: string, stream?: unknown): Promise<void>;
    finalizeSession(session: ScramSession, serverData: string): void;
  };
  export default sasl;
}
