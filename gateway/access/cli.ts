import { UsageError } from '../../core/errors.js';
import { parseCommandLine } from '../cli-args.js';

/**
 * `ztgate access …`: just-in-time access from a terminal, over the same HTTP API the page and the
 * admin UI use, with the caller's own access token (--token or ZTGATE_TOKEN). Officials talk to
 * the gateway (--gateway); revocation and reviews go to the management API (--admin).
 */

export const ACCESS_USAGE = `  ztgate access request --gateway URL --route ID --role ROLE --minutes N --purpose TEXT --case NUMBER
  ztgate access list|approve ID [--note TEXT]|deny ID --reason TEXT|cancel ID --gateway URL
  ztgate access break-glass --gateway URL --route ID --role ROLE --minutes N --reason TEXT
  ztgate access confirm ID --gateway URL
  ztgate access admin-list [--state pending|active|past]|revoke ID --reason TEXT|review ID --note TEXT --admin URL
                                  truy cập theo yêu cầu và khẩn cấp (token: --token hoặc ZTGATE_TOKEN) / just-in-time access and break-glass
`;

interface Io {
  readonly out: { write(s: string): unknown };
  readonly err: { write(s: string): unknown };
  readonly env: Record<string, string | undefined>;
}

const SPEC = {
  gateway: { type: 'string' },
  admin: { type: 'string' },
  token: { type: 'string' },
  route: { type: 'string' },
  role: { type: 'string' },
  minutes: { type: 'string' },
  purpose: { type: 'string' },
  case: { type: 'string' },
  reason: { type: 'string' },
  note: { type: 'string' },
  state: { type: 'string' },
} as const;

export async function runAccessCommand(args: string[], io: Io = { out: process.stdout, err: process.stderr, env: process.env }): Promise<number> {
  const { values: o, positionals } = parseCommandLine({ args, options: SPEC, strict: true, allowPositionals: true });
  const [sub, id, ...extra] = positionals;
  if (extra.length > 0) throw new UsageError(`unexpected argument "${extra[0]}"`);
  const token = o.token ?? io.env.ZTGATE_TOKEN;
  if (!token) throw new UsageError('access needs an access token: --token TOKEN or ZTGATE_TOKEN');
  const need = (name: keyof typeof SPEC): string => {
    const v = o[name];
    if (!v) throw new UsageError(`access ${sub} needs --${name}`);
    return v;
  };
  const needId = () => {
    if (!id) throw new UsageError(`access ${sub} needs the request ID`);
    return encodeURIComponent(id);
  };
  const minutes = () => {
    const m = need('minutes');
    if (!/^\d{1,6}$/.test(m)) throw new UsageError('--minutes must be a whole number of minutes');
    return Number(m) * 60;
  };
  const base = (which: 'gateway' | 'admin') => need(which).replace(/\/+$/, '');
  let method = 'POST';
  let url: string;
  let body: Record<string, unknown> | undefined;
  switch (sub) {
    case 'request':
      url = `${base('gateway')}/.ztgate/access/requests`;
      body = { route: need('route'), role: need('role'), durationSeconds: minutes(), purpose: need('purpose'), caseRef: need('case') };
      break;
    case 'list':
      method = 'GET';
      url = `${base('gateway')}/.ztgate/access/requests`;
      break;
    case 'approve':
      url = `${base('gateway')}/.ztgate/access/requests/${needId()}/approve`;
      body = o.note ? { note: o.note } : {};
      break;
    case 'deny':
      url = `${base('gateway')}/.ztgate/access/requests/${needId()}/deny`;
      body = { reason: need('reason') };
      break;
    case 'cancel':
      url = `${base('gateway')}/.ztgate/access/requests/${needId()}/cancel`;
      body = {};
      break;
    case 'break-glass':
      url = `${base('gateway')}/.ztgate/access/break-glass`;
      body = { route: need('route'), role: need('role'), durationSeconds: minutes(), reason: need('reason') };
      break;
    case 'confirm':
      url = `${base('gateway')}/.ztgate/access/break-glass/${needId()}/confirm`;
      body = {};
      break;
    case 'admin-list':
      method = 'GET';
      url = `${base('admin')}/api/v1/access-requests${o.state ? `?state=${encodeURIComponent(o.state)}` : ''}`;
      break;
    case 'revoke':
      url = `${base('admin')}/api/v1/access-requests/${needId()}/revoke`;
      body = { reason: need('reason') };
      break;
    case 'review':
      url = `${base('admin')}/api/v1/access-requests/${needId()}/review`;
      body = { note: need('note') };
      break;
    default:
      throw new UsageError(`unknown access command "${sub ?? ''}"`);
  }
  const res = await fetch(url, {
    method,
    headers: { authorization: `Bearer ${token}`, accept: 'application/json', ...(body ? { 'content-type': 'application/json' } : {}) },
    body: body ? JSON.stringify(body) : undefined,
    signal: AbortSignal.timeout(30_000),
  });
  const text = await res.text();
  if (!res.ok) {
    io.err.write(`HTTP ${res.status}: ${text}\n`);
    return 1;
  }
  io.out.write(`${JSON.stringify(JSON.parse(text), null, 2)}\n`);
  return 0;
}
