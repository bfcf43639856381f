import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { CodedError } from '../core/errors.js';
import { checkLockValue, LockInputError } from '../gateway/lock-registry.js';
import { CHECKPOINT_TYP, JwsError, verifyCheckpointJws } from '../gateway/audit/keys.js';
import { exportBundle, ExportError, verifyBundle } from '../gateway/audit/export.js';
import { POSTURE_ERROR_CODES, PostureError, type PostureFailure } from '../identity/posture.js';
import { CasesError, runPolicyCases } from '../policies/test-runner.js';
import type { PolicyEngine } from '../policies/engine.js';
import type { GatewayConfig } from '../gateway/config.js';

/**
 * Every typed error has a stable, module-prefixed code callers branch on (core/errors.ts), never
 * its message: thrown here through the functions that throw them.
 */

const tmp = mkdtempSync(join(tmpdir(), 'ztgate-codes-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

function thrown(fn: () => unknown): unknown {
  try {
    fn();
  } catch (err) {
    return err;
  }
  throw new Error('expected a throw');
}

describe('typed errors carry a stable code', () => {
  it('LockInputError: ERR_LOCK_INPUT_INVALID, with the field', () => {
    const err = thrown(() => checkLockValue('user', 42));
    expect(err).toBeInstanceOf(LockInputError);
    expect(err).toBeInstanceOf(CodedError);
    expect(err).toMatchObject({ code: 'ERR_LOCK_INPUT_INVALID', field: 'value' });
  });

  it('JwsError: ERR_AUDIT_JWS_* by what is wrong', () => {
    const malformed = thrown(() => verifyCheckpointJws('not-a-jws', []));
    expect(malformed).toBeInstanceOf(JwsError);
    expect(malformed).toBeInstanceOf(CodedError);
    expect(malformed).toMatchObject({ code: 'ERR_AUDIT_JWS_MALFORMED' });
    const b64 = (o: object) => Buffer.from(JSON.stringify(o)).toString('base64url');
    const unknownKey = thrown(() => verifyCheckpointJws(`${b64({ alg: 'ES256', kid: 'k9', typ: CHECKPOINT_TYP })}.${b64({})}.AA`, []));
    expect(unknownKey).toMatchObject({ code: 'ERR_AUDIT_JWS_KEY_UNKNOWN' });
  });

  it('ExportError: ERR_AUDIT_EXPORT_RANGE_INVALID, ERR_AUDIT_BUNDLE_FILE_MISSING', () => {
    const range = thrown(() => exportBundle({ files: [], from: new Date('2026-02-01T00:00:00Z'), to: new Date('2026-01-01T00:00:00Z'), out: join(tmp, 'out') }));
    expect(range).toBeInstanceOf(ExportError);
    expect(range).toBeInstanceOf(CodedError);
    expect(range).toMatchObject({ code: 'ERR_AUDIT_EXPORT_RANGE_INVALID' });
    const missing = thrown(() => verifyBundle(join(tmp, 'no-bundle')));
    expect(missing).toMatchObject({ code: 'ERR_AUDIT_BUNDLE_FILE_MISSING' });
  });

  it('PostureError: one ERR_POSTURE_* code per failure, each distinct', () => {
    const failures = Object.keys(POSTURE_ERROR_CODES) as PostureFailure[];
    const codes = failures.map((reason) => new PostureError(reason, 'x'));
    for (const err of codes) {
      expect(err).toBeInstanceOf(CodedError);
      expect(err.code).toMatch(/^ERR_POSTURE_[A-Z_]+$/);
    }
    expect(new Set(codes.map((e) => e.code)).size).toBe(failures.length);
    expect(new PostureError('posture-replayed', 'x').code).toBe('ERR_POSTURE_REPLAYED');
  });

  it('CasesError: ERR_POLICY_CASES_INVALID, with the problems', () => {
    const file = join(tmp, 'cases.yaml');
    writeFileSync(file, 'cases: [');
    const err = thrown(() => runPolicyCases({} as PolicyEngine, {} as GatewayConfig, 'cases: [', file));
    expect(err).toBeInstanceOf(CasesError);
    expect(err).toBeInstanceOf(CodedError);
    expect(err).toMatchObject({ code: 'ERR_POLICY_CASES_INVALID' });
    expect((err as CasesError).problems[0]).toContain(file);
  });
});
