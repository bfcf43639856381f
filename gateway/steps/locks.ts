import { GatewayError } from '../errors.js';
import { sessionDigest } from '../../identity/digest.js';
import type { Reason } from '../../core/reasons.js';
import type { LockKind, Locks } from '../lock-registry.js';
import { StateLostError } from '../../core/store.js';

/**
 * Before anything is read from the shared state: while this instance knows the state is lost
 * (gateway/state-keeper.ts), it refuses at once rather than read what is left of it.
 */
export function requireStateIntact(state: { healthy(): boolean } | undefined): void {
  if (state && !state.healthy()) throw new GatewayError('ZTG_ERR_STATE_LOST', 'state-lost');
}

const LOCKED: Record<LockKind, Reason> = { user: 'locked-user', device: 'locked-device', session: 'locked-session', address: 'locked-address' };

/** `::ffff:10.0.0.1` and `10.0.0.1` are one address: locks hold whichever way the socket reports it. */
export function normalizeAddress(address: string | undefined | null): string | null {
  if (!address) return null;
  return address.startsWith('::ffff:') && address.includes('.') ? address.slice(7) : address;
}

/**
 * Step 5, locks: an official, device, session or address locked by the SOC, an admin or a
 * detection rule is refused now. Read from the shared Store on every request (no cache), so a lock
 * set on any instance holds on the next request everywhere; a Store that cannot answer denies.
 */
export async function checkLocks(locks: Locks, subject: { nationalId: string | null; deviceId: string | null | undefined; sessionId: string | null | undefined; address: string | null | undefined }): Promise<void> {
  let lock;
  try {
    lock = await locks.firstActive([
      { kind: 'user', value: subject.nationalId },
      { kind: 'device', value: subject.deviceId },
      { kind: 'session', value: subject.sessionId ? sessionDigest(subject.sessionId) : null },
      { kind: 'address', value: normalizeAddress(subject.address) },
    ]);
  } catch (err) {
    if (err instanceof StateLostError) throw new GatewayError('ZTG_ERR_STATE_LOST', 'state-lost', { cause: err });
    throw new GatewayError('ZTG_ERR_LOCK_CHECK_UNAVAILABLE', 'lock-state-unavailable', { cause: err });
  }
  if (lock) {
    throw new GatewayError('ZTG_ERR_LOCKED', LOCKED[lock.kind], {
      detail: `Bị khóa đến ${lock.expiresAt} / locked until ${lock.expiresAt}`,
    });
  }
}
