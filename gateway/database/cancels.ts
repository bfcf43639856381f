import cluster from 'node:cluster';
import { timingSafeEqual } from 'node:crypto';

/**
 * Cancel keys the database plane handed out (BackendKeyData) and the connections they cancel.
 *
 * A CancelRequest comes on a new connection of its own (protocol 3.0, "Canceling Requests in
 * Progress"); in multi-core mode node:cluster may hand that connection to another worker than
 * the one serving the statement. A key not found here is then passed to the primary, which hands it
 * to the other workers (gateway/cluster.ts): the worker that holds it cancels, the others ignore it.
 * As in PostgreSQL, nobody learns whether a cancel matched anything.
 */

export interface Cancellable {
  cancel(): void;
}

/** The IPC message a worker sends the primary, and the primary the other workers. */
export interface CancelMessage {
  readonly type: 'ztgate-db-cancel';
  readonly processId: number;
  readonly secretKey: number;
}

export const isCancelMessage = (m: unknown): m is CancelMessage => typeof m === 'object' && m !== null && (m as { type?: unknown }).type === 'ztgate-db-cancel' && Number.isInteger((m as CancelMessage).processId) && Number.isInteger((m as CancelMessage).secretKey);

const keyBytes = (n: number) => {
  const b = Buffer.alloc(4);
  b.writeInt32BE(n);
  return b;
};

export class CancelRegistry {
  private readonly byProcessId = new Map<number, { readonly secretKey: number; readonly target: Cancellable }>();
  private readonly onPeerMessage: ((m: unknown) => void) | null = null;

  /** `relay`: pass keys not held here to the other workers (true in a cluster worker). */
  constructor(private readonly relay: boolean = cluster.isWorker && typeof process.send === 'function') {
    if (this.relay) {
      this.onPeerMessage = (m: unknown) => {
        if (isCancelMessage(m)) this.cancelLocal(m.processId, m.secretKey);
      };
      process.on('message', this.onPeerMessage);
    }
  }

  has(processId: number): boolean {
    return this.byProcessId.has(processId);
  }

  add(processId: number, secretKey: number, target: Cancellable): void {
    this.byProcessId.set(processId, { secretKey, target });
  }

  delete(processId: number): void {
    this.byProcessId.delete(processId);
  }

  /** A CancelRequest received by this process. */
  cancel(processId: number, secretKey: number): void {
    if (this.cancelLocal(processId, secretKey)) return;
    if (this.relay) process.send!({ type: 'ztgate-db-cancel', processId, secretKey } satisfies CancelMessage);
  }

  private cancelLocal(processId: number, secretKey: number): boolean {
    const entry = this.byProcessId.get(processId);
    if (!entry) return false;
    // The secret key is the only credential a cancel carries.
    if (timingSafeEqual(keyBytes(entry.secretKey), keyBytes(secretKey))) entry.target.cancel();
    return true;
  }

  close(): void {
    if (this.onPeerMessage) process.removeListener('message', this.onPeerMessage);
    this.byProcessId.clear();
  }
}
