import { hostname } from 'node:os';
import type { EventFields } from './event-fields.js';

/**
 * Syslog for SIEMs: RFC 5424 messages, framed by octet counting (RFC 6587 §3.4.1) over TCP or
 * TLS (RFC 5425). The message is the event as JSON, or a CEF line (ArcSight Common Event Format,
 * read by QRadar, ArcSight and most SIEMs).
 */

const VERSION = process.env.npm_package_version ?? '0.1.0';
const HOST =
  hostname()
    .replace(/[^\x21-\x7e]/g, '')
    .slice(0, 255) || '-';

/** The message formats of a syslog sink (`audit.sinks[].format`). */
export const SYSLOG_FORMATS = ['cef', 'json'] as const;
export type SyslogFormat = (typeof SYSLOG_FORMATS)[number];

type Ev = EventFields;

/** RFC 5424 severity: informational for allows, warning for denials, alert for SOC alerts. */
function syslogSeverity(e: Ev): number {
  if (e.event?.kind === 'alert') return 1;
  return e.ztgate?.decision === 'allow' ? 6 : 4;
}

/** CEF severity 0–10. */
function cefSeverity(e: Ev): number {
  if (e.event?.kind === 'alert') return String(e.ztgate?.alert?.action ?? '').startsWith('lock') ? 9 : 7;
  return e.ztgate?.decision === 'allow' ? 1 : 5;
}

/** CEF header fields: backslash and pipe escaped. */
const cefHeader = (v: unknown) =>
  String(v ?? '')
    .replace(/\\/g, '\\\\')
    .replace(/\|/g, '\\|')
    .replace(/[\r\n]+/g, ' ');
/** CEF extension values: backslash, equals sign and line breaks escaped. */
const cefValue = (v: unknown) =>
  String(v)
    .replace(/\\/g, '\\\\')
    .replace(/=/g, '\\=')
    .replace(/\r?\n|\r/g, '\\n');

export function toCef(e: Ev): string {
  const alert = e.event?.kind === 'alert';
  const signature = alert ? (e.rule?.id ?? e.event?.action) : (e.ztgate?.reasons?.[0] ?? e.event?.action);
  const name = alert ? (e.rule?.name ?? e.message) : `${e.event?.action} ${e.ztgate?.decision}`;
  const ext: [string, unknown][] = [
    ['rt', Date.parse(e['@timestamp'] ?? '')],
    ['externalId', e.event?.id],
    ['cat', e.event?.action],
    ['act', alert ? e.ztgate?.alert?.action : e.ztgate?.decision],
    ['outcome', e.event?.outcome],
    ['reason', (alert ? e.ztgate?.alert?.reasons : e.ztgate?.reasons)?.join(',')],
    ['suser', e.user?.id],
    // Who tried but was not accepted (not on the roster, …): a SIEM must not read suser as a verified official.
    ['flexString1Label', e.user?.verified === false ? 'userVerified' : undefined],
    ['flexString1', e.user?.verified === false ? 'false' : undefined],
    ['src', e.source?.ip],
    ['spt', e.source?.port],
    ['requestMethod', e.http?.request?.method],
    ['request', e.url?.path],
    ['cn1Label', e.http?.response ? 'httpStatus' : undefined],
    ['cn1', e.http?.response?.status_code],
    ['cs1Label', e.ztgate?.policy_version ? 'policyVersion' : undefined],
    ['cs1', e.ztgate?.policy_version],
    ['cs2Label', e.ztgate?.rule ? 'policyRule' : undefined],
    ['cs2', e.ztgate?.rule],
    ['cs3Label', e.ztgate?.route ? 'service' : undefined],
    ['cs3', e.ztgate?.route?.id],
    ['cn2Label', e.ztgate?.route ? 'securityLevel' : undefined],
    ['cn2', e.ztgate?.route?.security_level],
    ['cs4Label', e.organization?.id ? 'agency' : undefined],
    ['cs4', e.organization?.id],
    ['cs5Label', e.ztgate?.device?.id ? 'deviceId' : undefined],
    ['cs5', e.ztgate?.device?.id],
    ['cs6Label', e.ztgate?.device?.tier ? 'deviceTier' : undefined],
    ['cs6', e.ztgate?.device?.tier],
    ['cn3Label', typeof e.ztgate?.records === 'number' ? 'records' : undefined],
    ['cn3', e.ztgate?.records],
    ['dvchost', HOST],
  ];
  const extension = ext
    .filter(([, v]) => v !== undefined && v !== null && v !== '' && !(typeof v === 'number' && Number.isNaN(v)))
    .map(([k, v]) => `${k}=${cefValue(v)}`)
    .join(' ');
  return `CEF:0|ztgate|ztgate|${cefHeader(VERSION)}|${cefHeader(signature)}|${cefHeader(name)}|${cefSeverity(e)}|${extension}`;
}

/** One RFC 5424 message: `<PRI>1 TIMESTAMP HOSTNAME APP-NAME PROCID MSGID - MSG`. */
export function toSyslog(e: Ev, opts: { facility: number; format: SyslogFormat }): string {
  const pri = opts.facility * 8 + syslogSeverity(e);
  const msgid =
    String(e.event?.action ?? '-')
      .replace(/[^\x21-\x7e]/g, '')
      .slice(0, 32) || '-';
  const msg = opts.format === 'cef' ? toCef(e) : JSON.stringify(e);
  return `<${pri}>1 ${e['@timestamp']} ${HOST} ztgate ${process.pid} ${msgid} - ${msg}`;
}

/** RFC 6587 §3.4.1 octet counting: `MSG-LEN SP SYSLOG-MSG`, the length in bytes. */
export function frame(message: string): Buffer {
  const body = Buffer.from(message, 'utf8');
  return Buffer.concat([Buffer.from(`${body.length} `), body]);
}
