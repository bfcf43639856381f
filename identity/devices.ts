import { randomUUID } from 'node:crypto';
import { calculateJwkThumbprint, importJWK, type JWK } from 'jose';
import type { Store } from '../core/store.js';
import { isNationalId } from '../core/national-id.js';
import { CodedError } from '../core/errors.js';

/**
 * The device registry (sổ đăng ký thiết bị): every device that may reach shared data, identified
 * by the RFC 7638 JWK thumbprint of its public key, bound to its owner's national ID.
 *
 * It lives in the shared Store and is read on every request, with no per-instance cache: a
 * quarantine written by one instance (or by the management API) is what every instance reads
 * for the very next request. A retired device is kept, so its key can never be enrolled again.
 */

export const DEVICE_STATUSES = ['pending', 'approved', 'quarantined', 'retired'] as const;
export type DeviceStatus = (typeof DEVICE_STATUSES)[number];

export interface DeviceAction {
  /** National ID of the official or admin who did it. */
  readonly by: string;
  /** ISO 8601. */
  readonly at: string;
  readonly reason?: string;
}

export interface DeviceRecord {
  /** RFC 7638 SHA-256 thumbprint of the public key, base64url. */
  readonly id: string;
  /** The public key: only its public members (RFC 7638 §3.2), never a private part. */
  readonly publicJwk: JWK;
  readonly ownerNationalId: string;
  readonly name: string;
  readonly status: DeviceStatus;
  /**
   * The approving admin attested that the key was generated in and cannot leave the device's
   * hardware (TPM, secure enclave); one of the two ways to the high-assurance tier.
   */
  readonly hardwareKey: boolean;
  readonly enrolled: DeviceAction;
  readonly approved?: DeviceAction;
  readonly quarantined?: DeviceAction;
  readonly retired?: DeviceAction;
}

export type DeviceRegistryErrorCode = 'ERR_DEVICE_KEY_INVALID' | 'ERR_DEVICE_INPUT_INVALID' | 'ERR_DEVICE_ALREADY_ENROLLED' | 'ERR_DEVICE_NOT_FOUND' | 'ERR_DEVICE_STATE' | 'ERR_DEVICE_SELF_APPROVAL' | 'ERR_DEVICE_BUSY';

export class DeviceRegistryError extends CodedError {
  constructor(
    readonly code: DeviceRegistryErrorCode,
    message: string,
    readonly field?: string,
  ) {
    super(message);
    this.name = 'DeviceRegistryError';
  }
}

/** Device keys the gateway accepts: the curves of the DPoP algorithms it allows (ES256, EdDSA). */
const PUBLIC_MEMBERS: Record<string, { crv: string; members: readonly string[]; alg: string }> = {
  EC: { crv: 'P-256', members: ['kty', 'crv', 'x', 'y'], alg: 'ES256' },
  OKP: { crv: 'Ed25519', members: ['kty', 'crv', 'x'], alg: 'EdDSA' },
};
const PRIVATE_MEMBERS = ['d', 'p', 'q', 'dp', 'dq', 'qi', 'k', 'oth'];
const NAME = /^[^\p{Cc}\p{Cf}]{1,100}$/u;
const REASON_MAX = 500;

/** Checks a device public key and returns its id (thumbprint) and its public members only. */
export async function devicePublicKey(jwk: unknown): Promise<{ id: string; publicJwk: JWK }> {
  if (!jwk || typeof jwk !== 'object' || Array.isArray(jwk)) throw new DeviceRegistryError('ERR_DEVICE_KEY_INVALID', 'the device key must be a JWK object', 'jwk');
  const key = jwk as Record<string, unknown>;
  if (PRIVATE_MEMBERS.some((m) => key[m] !== undefined)) {
    throw new DeviceRegistryError('ERR_DEVICE_KEY_INVALID', 'the JWK carries a private or symmetric key; send the public key only', 'jwk');
  }
  const shape = typeof key.kty === 'string' ? PUBLIC_MEMBERS[key.kty] : undefined;
  if (!shape || key.crv !== shape.crv) {
    throw new DeviceRegistryError('ERR_DEVICE_KEY_INVALID', 'the device key must be an EC P-256 or OKP Ed25519 public key', 'jwk');
  }
  const publicJwk = Object.fromEntries(shape.members.map((m) => [m, key[m]])) as JWK;
  if (!shape.members.every((m) => typeof key[m] === 'string' && (key[m] as string).length > 0 && (key[m] as string).length <= 256)) {
    throw new DeviceRegistryError('ERR_DEVICE_KEY_INVALID', 'the device key has missing or malformed members', 'jwk');
  }
  try {
    // Refuses points that are not on the curve.
    await importJWK(publicJwk, shape.alg);
  } catch {
    throw new DeviceRegistryError('ERR_DEVICE_KEY_INVALID', 'the device key is not a valid public key', 'jwk');
  }
  return { id: await calculateJwkThumbprint(publicJwk, 'sha256'), publicJwk };
}

function checkReason(reason: unknown, required: boolean): string | undefined {
  if (reason === undefined && !required) return undefined;
  if (typeof reason !== 'string' || reason.trim().length === 0 || reason.length > REASON_MAX) {
    throw new DeviceRegistryError('ERR_DEVICE_INPUT_INVALID', `reason is required: a non-empty text of at most ${REASON_MAX} characters`, 'reason');
  }
  return reason.trim();
}

const DEVICE_ID = /^[A-Za-z0-9_-]{43}$/;
/** Device records and their indexes are governance records, kept durably (not the short transition locks). */
export const isDeviceRecordKey = (k: string): boolean => k.startsWith('device:') || k === 'devices' || k.startsWith('devices:owner:');
/** Long enough for one read-check-write; short enough that a crashed instance blocks nobody for long. */
const TRANSITION_LOCK_TTL_MS = 5_000;
const TRANSITION_LOCK_ATTEMPTS = 100;
const TRANSITION_LOCK_BACKOFF_MS = 20;

export class DeviceRegistry {
  constructor(
    private readonly store: Store,
    private readonly now: () => Date = () => new Date(),
  ) {}

  private key(id: string): string {
    return `device:${id}`;
  }

  async get(id: string): Promise<DeviceRecord | null> {
    if (!DEVICE_ID.test(id)) return null;
    const raw = await this.store.get(this.key(id));
    return raw ? (JSON.parse(raw) as DeviceRecord) : null;
  }

  async list(filter: { status?: DeviceStatus; ownerNationalId?: string } = {}): Promise<DeviceRecord[]> {
    // The owner index keeps an official's own list from reading the whole registry.
    const ids = await this.store.smembers(filter.ownerNationalId ? `devices:owner:${filter.ownerNationalId}` : 'devices');
    const records = await Promise.all(ids.map((id) => this.get(id)));
    return records
      .filter((r): r is DeviceRecord => r !== null)
      .filter((r) => (!filter.status || r.status === filter.status) && (!filter.ownerNationalId || r.ownerNationalId === filter.ownerNationalId))
      .sort((a, b) => a.enrolled.at.localeCompare(b.enrolled.at) || a.id.localeCompare(b.id));
  }

  /** A new device is pending until an admin approves it. One device per key: a known key is refused, whatever its status. */
  async enrol(input: { jwk: unknown; name: unknown; ownerNationalId: string }): Promise<DeviceRecord> {
    const { id, publicJwk } = await devicePublicKey(input.jwk);
    if (typeof input.name !== 'string' || !NAME.test(input.name.trim())) {
      throw new DeviceRegistryError('ERR_DEVICE_INPUT_INVALID', 'name must be 1–100 characters without control characters', 'name');
    }
    if (!isNationalId(input.ownerNationalId)) throw new DeviceRegistryError('ERR_DEVICE_INPUT_INVALID', 'the owner must be a 12-digit national ID', 'ownerNationalId');
    const record: DeviceRecord = {
      id,
      publicJwk,
      ownerNationalId: input.ownerNationalId,
      name: input.name.trim(),
      status: 'pending',
      hardwareKey: false,
      enrolled: { by: input.ownerNationalId, at: this.now().toISOString() },
    };
    // SET NX: of two concurrent enrolments of one key, on any instances, exactly one wins.
    if (!(await this.store.set(this.key(id), JSON.stringify(record), { ifAbsent: true }))) {
      throw new DeviceRegistryError('ERR_DEVICE_ALREADY_ENROLLED', `a device with this key is already enrolled (${id})`);
    }
    await this.store.sadd('devices', id);
    await this.store.sadd(`devices:owner:${record.ownerNationalId}`, id);
    return record;
  }

  /**
   * pending or quarantined → approved. `fourEyes` (the management API sets it) refuses an
   * approver who owns the device: nobody vouches for their own device or attests its key.
   */
  approve(id: string, by: string, opts: { reason?: unknown; hardwareKey?: unknown; fourEyes?: boolean } = {}): Promise<DeviceRecord> {
    if (opts.hardwareKey !== undefined && typeof opts.hardwareKey !== 'boolean') {
      throw new DeviceRegistryError('ERR_DEVICE_INPUT_INVALID', 'hardwareKey must be true or false', 'hardwareKey');
    }
    const reason = checkReason(opts.reason, false);
    return this.transition(
      id,
      ['pending', 'quarantined'],
      (r, action) => {
        if (opts.fourEyes && r.ownerNationalId === by) {
          throw new DeviceRegistryError('ERR_DEVICE_SELF_APPROVAL', `device ${id} belongs to ${by}: another admin must approve it`);
        }
        return {
          ...r,
          status: 'approved',
          hardwareKey: (opts.hardwareKey as boolean | undefined) ?? r.hardwareKey,
          approved: { ...action, ...(reason ? { reason } : {}) },
        };
      },
      by,
    );
  }

  /** pending or approved → quarantined; a reason is required (it is what the SOC and the owner read). */
  quarantine(id: string, by: string, reason: unknown): Promise<DeviceRecord> {
    const why = checkReason(reason, true)!;
    return this.transition(id, ['pending', 'approved'], (r, action) => ({ ...r, status: 'quarantined', quarantined: { ...action, reason: why } }), by);
  }

  /** Any status but retired → retired, for good. */
  retire(id: string, by: string, reason?: unknown): Promise<DeviceRecord> {
    const why = checkReason(reason, false);
    return this.transition(id, ['pending', 'approved', 'quarantined'], (r, action) => ({ ...r, status: 'retired', retired: { ...action, ...(why ? { reason: why } : {}) } }), by);
  }

  /**
   * Read, check, write under a short per-device lock (SET NX PX in the shared Store), so two
   * transitions on any instances run one after the other: an approve that read "pending" can
   * never overwrite a quarantine written meanwhile. It re-reads under the lock and decides on
   * what it finds then.
   */
  private async transition(id: string, from: readonly DeviceStatus[], change: (r: DeviceRecord, action: DeviceAction) => DeviceRecord, by: string): Promise<DeviceRecord> {
    if (!DEVICE_ID.test(id)) throw new DeviceRegistryError('ERR_DEVICE_NOT_FOUND', `no device ${id}`);
    const lockKey = `device-lock:${id}`;
    const token = randomUUID();
    let held = false;
    for (let attempt = 0; attempt < TRANSITION_LOCK_ATTEMPTS && !held; attempt++) {
      held = await this.store.set(lockKey, token, { ifAbsent: true, ttlMs: TRANSITION_LOCK_TTL_MS });
      if (!held) await new Promise((r) => setTimeout(r, TRANSITION_LOCK_BACKOFF_MS));
    }
    if (!held) throw new DeviceRegistryError('ERR_DEVICE_BUSY', `device ${id} is being changed by another request; try again`);
    try {
      const current = await this.get(id);
      if (!current) throw new DeviceRegistryError('ERR_DEVICE_NOT_FOUND', `no device ${id}`);
      if (!from.includes(current.status)) {
        throw new DeviceRegistryError('ERR_DEVICE_STATE', `device ${id} is ${current.status}; this operation needs ${from.join(' or ')}`);
      }
      const next = change(current, { by, at: this.now().toISOString() });
      await this.store.set(this.key(id), JSON.stringify(next));
      return next;
    } finally {
      // Release only our own lock: if it expired and another request took it, it stays theirs.
      // (Between this read and the DEL the TTL could lapse; a transition takes milliseconds.)
      if ((await this.store.get(lockKey).catch(() => null)) === token) await this.store.del(lockKey).catch(() => undefined);
    }
  }
}
