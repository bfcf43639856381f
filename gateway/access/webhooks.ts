import { createHmac, randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Logger } from 'pino';
import { ConfigError } from '../../core/errors.js';
import { RemoteSink, type Transport } from '../audit/sinks.js';
import { Spool } from '../audit/spool.js';
import type { AccessConfig, AccessWebhookConfig } from './config.js';
import type { AccessNotifier, AccessRecord, AccessStep } from './requests.js';

/**
 * Webhook notifications, one receiver per service: every step of its access requests as one JSON
 * POST, signed with HMAC-SHA256. They go through the same durable spool and delivery loop as the
 * SOC sinks (gateway/audit/spool.ts, sinks.ts): written to disk first, delivered in order, a
 * receiver that is down or answers other than 2xx is retried with a doubling wait, nothing lost.
 *
 * Signature (X-Ztgate-Signature): `t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<body>">`;
 * receivers recompute it with the shared key and refuse an old t (replay). X-Ztgate-Delivery
 * is unique per notification: receivers de-duplicate on it (delivery is at-least-once).
 */

export const SIGNATURE_HEADER = 'x-ztgate-signature';

export function signWebhook(secret: Buffer, body: string, timeSeconds: number): string {
  return `t=${timeSeconds},v1=${createHmac('sha256', secret).update(`${timeSeconds}.${body}`).digest('hex')}`;
}

function httpTransport(hook: AccessWebhookConfig, secret: Buffer): Transport {
  return {
    deliveryIsAck: true,
    connect: async () => undefined,
    async send(lines) {
      for (const body of lines) {
        const delivery = (JSON.parse(body) as { id: string }).id;
        const res = await fetch(hook.url, {
          method: 'POST',
          headers: { 'content-type': 'application/json', [SIGNATURE_HEADER]: signWebhook(secret, body, Math.floor(Date.now() / 1000)), 'x-ztgate-delivery': delivery },
          body,
          redirect: 'error',
          signal: AbortSignal.timeout(hook.timeoutMs),
        });
        await res.arrayBuffer().catch(() => undefined);
        if (res.status < 200 || res.status > 299) throw new Error(`webhook ${hook.route} answered HTTP ${res.status}`);
      }
    },
    alive: () => true,
    broken: () => false,
    close: async () => true,
  };
}

/** What a notification says: the request as it stands, never the official's token or device. */
export function notification(record: AccessRecord, step: AccessStep, actor: string) {
  return {
    id: randomUUID(),
    type: `ztgate.access.${step}`,
    time: new Date().toISOString(),
    actor,
    request: record,
  };
}

export interface AccessWebhooks extends AccessNotifier {
  status(): { route: string; backlogBytes: number; delivered: number; lastError: string | null; dropped: number }[];
  start(): void;
  close(): Promise<void>;
}

export function createAccessWebhooks(config: AccessConfig, log: Pick<Logger, 'warn' | 'info' | 'error'>): AccessWebhooks {
  const sinks = new Map<string, RemoteSink>();
  for (const hook of config.webhooks) {
    let secret: Buffer;
    try {
      secret = readFileSync(hook.secretFile);
    } catch (err) {
      throw new ConfigError('access.webhooks', [`${hook.route}: cannot read secretFile ${hook.secretFile}: ${(err as NodeJS.ErrnoException).code ?? String(err)}`]);
    }
    if (secret.length < 32) throw new ConfigError('access.webhooks', [`${hook.route}: secretFile must hold at least 32 bytes (HMAC-SHA256 key)`]);
    const spool = new Spool(join(config.spoolDir!, `webhook-${hook.route}`), { maxBytes: config.spoolMaxBytes, segmentBytes: Math.min(4 * 1024 * 1024, config.spoolMaxBytes) }).open();
    sinks.set(hook.route, new RemoteSink({ name: `webhook-${hook.route}`, type: 'webhook', reconnectMaxMs: hook.retryMaxMs }, spool, httpTransport(hook, secret), log));
  }
  return {
    notify(record, step, actor) {
      const sink = sinks.get(record.routeId);
      if (!sink) return;
      const result = sink.spool.append(JSON.stringify(notification(record, step, actor)));
      if (result !== 'ok') log.error({ route: record.routeId, step, result }, 'access webhook notification could not be spooled');
      else sink.notify();
    },
    status: () =>
      [...sinks.entries()].map(([route, s]) => {
        const st = s.status();
        return { route, backlogBytes: st.backlogBytes, delivered: st.delivered, lastError: st.lastError, dropped: st.dropped };
      }),
    start() {
      for (const s of sinks.values()) s.start();
    },
    async close() {
      await Promise.all([...sinks.values()].map((s) => s.close()));
    },
  };
}
