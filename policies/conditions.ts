import { BlockList, isIP } from 'node:net';
import { Ajv, type ErrorObject } from 'ajv';
import { isMap, isSeq, LineCounter, parseDocument, type Node as YamlNode } from 'yaml';
import { CLEARANCES, DEVICE_TIERS, type Classification, type Clearance, type DeviceTier } from '../core/levels.js';
import { GRANT_KINDS, HTTP_METHODS, SQL_ACTIONS, type AccessRequest, type Grant, type GrantKind } from './access.js';
import type { Obligation } from '../core/principal.js';

/**
 * Attribute conditions and obligations, layered over the Casbin decision: Casbin says whether a
 * rule allows (who, agency, service, path, method); this file says under which conditions the
 * allow holds (clearance, assurance, authentication age, device tier, network, time window,
 * purpose) and what the gateway must do with the response (mask fields, cap records, scope to
 * the commune). It is versioned with the model and the policy (policies/versions.ts).
 *
 * A condition applies to an allowed request when its `when` selector matches; every applying
 * condition must hold (the strictest wins), and their obligations add up. State-secret routes
 * (mat, toi-mat, tuyet-mat) always need clearance >= classification and an allowed network.
 */

export type ConditionReason = 'clearance-insufficient' | 'network-not-allowed' | 'assurance-insufficient' | 'authentication-too-old' | 'device-tier-insufficient' | 'outside-time-window' | 'purpose-required' | 'purpose-invalid';

export interface ConditionEntry {
  readonly name: string;
  readonly line: number;
  readonly when: {
    readonly routes: ReadonlySet<string> | null;
    readonly roles: ReadonlySet<string> | null;
    readonly exceptRoles: ReadonlySet<string> | null;
    readonly agencies: ReadonlySet<string> | null;
    readonly methods: ReadonlySet<string> | null;
    readonly communeOfficials: boolean | null;
    readonly minSecurityLevel: number | null;
    readonly classifications: ReadonlySet<string> | null;
    /** Only requests made under these kinds of grant (`none`: without a grant). */
    readonly grants: ReadonlySet<GrantKind | 'none'> | null;
  };
  readonly require: {
    readonly purpose: boolean;
    readonly minAssurance: number | null;
    readonly maxAuthAgeSeconds: number | null;
    readonly minDeviceTier: DeviceTier | null;
    readonly networks: readonly string[] | null;
    readonly timeWindow: string | null;
  };
  readonly obligations: readonly Obligation[];
  readonly communeScopeField: string | null;
}

interface TimeWindow {
  readonly days: ReadonlySet<number>;
  readonly fromMinute: number;
  readonly toMinute: number;
}

export interface Conditions {
  readonly roles: ReadonlySet<string> | null;
  readonly agencies: ReadonlySet<string> | null;
  readonly communes: ReadonlySet<string>;
  readonly networks: ReadonlyMap<string, BlockList>;
  readonly stateSecretNetworks: readonly string[];
  readonly purposeCodes: ReadonlySet<string>;
  readonly caseRefPattern: RegExp;
  readonly timeWindows: ReadonlyMap<string, TimeWindow>;
  readonly entries: readonly ConditionEntry[];
  /** Per kind of grant: service → roles such a grant may unlock. Nothing listed: grants unlock nothing. */
  readonly grants: ReadonlyMap<GrantKind, ReadonlyMap<string, ReadonlySet<string>>>;
}

export const EMPTY_CONDITIONS: Conditions = Object.freeze({
  roles: null,
  agencies: null,
  communes: new Set<string>(),
  networks: new Map(),
  stateSecretNetworks: [],
  purposeCodes: new Set<string>(),
  caseRefPattern: /^[A-Za-z0-9][A-Za-z0-9/._-]{2,63}$/,
  timeWindows: new Map(),
  entries: [],
  grants: new Map(),
});

/** Whether the policy lets this kind of grant unlock this role on this service. */
export function grantUnlocks(c: Conditions, grant: Grant, routeId: string): boolean {
  return c.grants.get(grant.kind)?.get(routeId)?.has(grant.role) === true;
}

const NAME = { type: 'string', pattern: '^[a-z0-9][a-z0-9_.:-]{0,63}$' };
const names = { type: 'array', uniqueItems: true, items: NAME };
const DAYS = ['sun', 'mon', 'tue', 'wed', 'thu', 'fri', 'sat'];
const STATE_SECRETS: readonly string[] = ['mat', 'toi-mat', 'tuyet-mat'];

const schema = {
  type: 'object',
  additionalProperties: false,
  properties: {
    roles: names,
    agencies: names,
    communes: { ...names, default: [] },
    networks: {
      type: 'object',
      propertyNames: NAME,
      additionalProperties: { type: 'array', minItems: 1, items: { type: 'string', minLength: 2, maxLength: 64 } },
      default: {},
    },
    stateSecretNetworks: { ...names, default: [] },
    purposes: {
      type: 'object',
      additionalProperties: false,
      properties: {
        codes: { ...names, default: [] },
        caseRefPattern: { type: 'string', minLength: 1, maxLength: 200, default: '^[A-Za-z0-9][A-Za-z0-9/._-]{2,63}$' },
      },
      default: {},
    },
    grants: {
      type: 'object',
      additionalProperties: false,
      properties: {
        accessRequest: { type: 'object', propertyNames: NAME, additionalProperties: { ...names, minItems: 1 }, default: {} },
        breakGlass: { type: 'object', propertyNames: NAME, additionalProperties: { ...names, minItems: 1 }, default: {} },
      },
      default: {},
    },
    timeWindows: {
      type: 'object',
      propertyNames: NAME,
      additionalProperties: {
        type: 'object',
        additionalProperties: false,
        required: ['days', 'from', 'to'],
        properties: {
          days: { type: 'array', minItems: 1, uniqueItems: true, items: { enum: DAYS } },
          from: { type: 'string', pattern: '^([01][0-9]|2[0-3]):[0-5][0-9]$' },
          to: { type: 'string', pattern: '^([01][0-9]|2[0-4]):[0-5][0-9]$' },
        },
      },
      default: {},
    },
    conditions: {
      type: 'array',
      default: [],
      items: {
        type: 'object',
        additionalProperties: false,
        required: ['name', 'when'],
        properties: {
          name: NAME,
          when: {
            type: 'object',
            additionalProperties: false,
            properties: {
              routes: { ...names, minItems: 1 },
              roles: { ...names, minItems: 1 },
              exceptRoles: { ...names, minItems: 1 },
              agencies: { ...names, minItems: 1 },
              methods: { type: 'array', minItems: 1, uniqueItems: true, items: { enum: [...new Set<string>([...HTTP_METHODS, ...SQL_ACTIONS])] } },
              communeOfficials: { type: 'boolean' },
              minSecurityLevel: { type: 'integer', minimum: 1, maximum: 5 },
              classifications: { type: 'array', minItems: 1, uniqueItems: true, items: { enum: ['public', 'internal', 'personal-data', 'sensitive-personal-data', ...STATE_SECRETS] } },
              grants: { type: 'array', minItems: 1, uniqueItems: true, items: { enum: [...GRANT_KINDS, 'none'] } },
            },
          },
          require: {
            type: 'object',
            additionalProperties: false,
            properties: {
              purpose: { type: 'boolean' },
              minAssurance: { type: 'integer', minimum: 0, maximum: 2 },
              maxAuthAgeSeconds: { type: 'integer', minimum: 1, maximum: 31 * 86400 },
              minDeviceTier: { enum: DEVICE_TIERS },
              networks: { ...names, minItems: 1 },
              timeWindow: NAME,
            },
          },
          obligations: {
            type: 'object',
            additionalProperties: false,
            properties: {
              maskFields: { type: 'array', minItems: 1, uniqueItems: true, items: { type: 'string', pattern: '^[A-Za-z_][A-Za-z0-9_]{0,63}$' } },
              maxRecordsPerResponse: { type: 'integer', minimum: 1, maximum: 1_000_000 },
              maxRecordsPerDay: { type: 'integer', minimum: 1, maximum: 100_000_000 },
              communeScope: { type: 'object', additionalProperties: false, required: ['recordField'], properties: { recordField: { type: 'string', pattern: '^[A-Za-z_][A-Za-z0-9_]{0,63}$' } } },
            },
          },
        },
      },
    },
  },
} as const;

/** A conditions file as the schema above accepts it, its defaults filled in. */
interface ConditionsFile {
  readonly roles?: string[];
  readonly agencies?: string[];
  readonly communes: string[];
  readonly networks: Record<string, string[]>;
  readonly stateSecretNetworks: string[];
  readonly purposes: { readonly codes: string[]; readonly caseRefPattern: string };
  readonly timeWindows: Record<string, { readonly days: string[]; readonly from: string; readonly to: string }>;
  readonly grants: Record<'accessRequest' | 'breakGlass', Record<string, string[]>>;
  readonly conditions: readonly ConditionSource[];
}
interface ConditionSource {
  readonly name: string;
  readonly when?: {
    readonly routes?: string[];
    readonly roles?: string[];
    readonly exceptRoles?: string[];
    readonly agencies?: string[];
    readonly methods?: string[];
    readonly communeOfficials?: boolean;
    readonly minSecurityLevel?: number;
    readonly classifications?: string[];
    readonly grants?: string[];
  };
  readonly require?: {
    readonly purpose?: boolean;
    readonly minAssurance?: number;
    readonly maxAuthAgeSeconds?: number;
    readonly minDeviceTier?: DeviceTier;
    readonly networks?: string[];
    readonly timeWindow?: string;
  };
  readonly obligations?: {
    readonly maskFields?: string[];
    readonly maxRecordsPerResponse?: number;
    readonly maxRecordsPerDay?: number;
    readonly communeScope?: { readonly recordField: string };
  };
}

const ajv = new Ajv({ allErrors: true, useDefaults: true, strict: true });
const validate = ajv.compile<ConditionsFile>(schema);

function describe(e: ErrorObject): string {
  switch (e.keyword) {
    case 'additionalProperties':
      return `unknown key "${(e.params as { additionalProperty: string }).additionalProperty}" / khóa không được hỗ trợ`;
    case 'required':
      return `missing required key "${(e.params as { missingProperty: string }).missingProperty}" / thiếu khóa bắt buộc`;
    case 'enum':
      return `must be one of ${(e.params as { allowedValues: unknown[] }).allowedValues.join(', ')}`;
    case 'pattern':
      return `must match ${(e.params as { pattern: string }).pattern}`;
    default:
      return e.message ?? 'is invalid';
  }
}

function minuteOf(hhmm: string): number {
  const [h, m] = hhmm.split(':').map(Number) as [number, number];
  return h * 60 + m;
}

function blockList(cidrs: readonly string[], problem: (cidr: string) => void): BlockList {
  const list = new BlockList();
  for (const cidr of cidrs) {
    const [addr, bits, extra] = cidr.split('/');
    const family = addr ? isIP(addr) : 0;
    const prefix = Number(bits);
    if (extra !== undefined || family === 0 || !/^\d{1,3}$/.test(bits ?? '') || prefix > (family === 4 ? 32 : 128)) {
      problem(cidr);
      continue;
    }
    list.addSubnet(addr!, prefix, family === 4 ? 'ipv4' : 'ipv6');
  }
  return list;
}

/**
 * Parses and checks a conditions file: YAML syntax, one strict schema, then references
 * (networks, time windows, catalogued roles and agencies, routes). Problems name file:line.
 */
export function parseConditions(text: string, file: string, knownRoutes: ReadonlySet<string>): { conditions: Conditions; problems: string[] } {
  const lineCounter = new LineCounter();
  const doc = parseDocument(text, { lineCounter, uniqueKeys: true, prettyErrors: false });
  const problems: string[] = [];
  const lineOf = (node: YamlNode | null | undefined): number => (node?.range ? lineCounter.linePos(node.range[0]).line : 1);
  if (doc.errors.length > 0) {
    for (const err of doc.errors) problems.push(`${file}:${lineCounter.linePos(err.pos[0]).line}: ${err.message.split('\n')[0]}`);
    return { conditions: EMPTY_CONDITIONS, problems };
  }
  const raw: unknown = doc.toJS() ?? {};
  const nodeAt = (instancePath: string): YamlNode | null => {
    const path = instancePath
      .split('/')
      .slice(1)
      .map((p) => (/^\d+$/.test(p) ? Number(p) : p));
    for (let n = path.length; n >= 0; n--) {
      const node = n === 0 ? doc.contents : doc.getIn(path.slice(0, n), true);
      if (node && (isMap(node) || isSeq(node) || (node as YamlNode).range)) return node as YamlNode;
    }
    return null;
  };
  if (typeof raw !== 'object' || Array.isArray(raw) || !validate(raw)) {
    for (const e of validate.errors ?? [{ instancePath: '', keyword: 'type', message: 'must be a mapping', params: {}, schemaPath: '' } as ErrorObject]) {
      problems.push(`${file}:${lineOf(nodeAt(e.instancePath))}: ${e.instancePath.replaceAll('/', '.').slice(1) || '(root)'}: ${describe(e)}`);
    }
    return { conditions: EMPTY_CONDITIONS, problems };
  }

  const at = (path: (string | number)[]) => `${file}:${lineOf(doc.getIn(path, true) as YamlNode)}`;
  const networks = new Map<string, BlockList>();
  for (const [name, cidrs] of Object.entries(raw.networks)) {
    networks.set(
      name,
      blockList(cidrs, (cidr) => problems.push(`${at(['networks', name])}: networks.${name}: "${cidr}" is not an address/prefix (CIDR)`)),
    );
  }
  for (const n of raw.stateSecretNetworks) if (!networks.has(n)) problems.push(`${at(['stateSecretNetworks'])}: stateSecretNetworks: network "${n}" is not defined under networks`);
  let caseRefPattern = EMPTY_CONDITIONS.caseRefPattern;
  try {
    caseRefPattern = new RegExp(raw.purposes.caseRefPattern);
  } catch (err) {
    problems.push(`${at(['purposes', 'caseRefPattern'])}: purposes.caseRefPattern: ${(err as Error).message}`);
  }
  const timeWindows = new Map<string, TimeWindow>();
  for (const [name, w] of Object.entries(raw.timeWindows)) {
    const fromMinute = minuteOf(w.from);
    const toMinute = minuteOf(w.to);
    if (toMinute <= fromMinute) problems.push(`${at(['timeWindows', name])}: timeWindows.${name}: "to" (${w.to}) must be after "from" (${w.from})`);
    timeWindows.set(name, { days: new Set(w.days.map((d) => DAYS.indexOf(d))), fromMinute, toMinute });
  }
  const roles = raw.roles ? new Set<string>(raw.roles) : null;
  const agencies = raw.agencies ? new Set<string>(raw.agencies) : null;
  const communes = new Set<string>(raw.communes);

  const grants = new Map<GrantKind, Map<string, Set<string>>>();
  for (const [key, kind] of [
    ['accessRequest', 'access-request'],
    ['breakGlass', 'break-glass'],
  ] as const) {
    const byRoute = new Map<string, Set<string>>();
    for (const [route, list] of Object.entries(raw.grants[key])) {
      if (!knownRoutes.has(route)) problems.push(`${at(['grants', key, route])}: grants.${key}: route "${route}" is not a configured route`);
      for (const role of list) if (roles && !roles.has(role)) problems.push(`${at(['grants', key, route])}: grants.${key}.${route}: role "${role}" is not in the roles catalogue`);
      byRoute.set(route, new Set(list));
    }
    grants.set(kind, byRoute);
  }

  const seenNames = new Map<string, number>();
  const entries: ConditionEntry[] = raw.conditions.map((c, i) => {
    const where = at(['conditions', i]);
    const line = Number(where.slice(file.length + 1));
    const earlier = seenNames.get(c.name);
    if (earlier !== undefined) problems.push(`${where}: condition name "${c.name}" is already used on line ${earlier}`);
    seenNames.set(c.name, line);
    const w = c.when ?? {};
    const r = c.require ?? {};
    const o = c.obligations ?? {};
    for (const route of w.routes ?? []) if (!knownRoutes.has(route)) problems.push(`${where}: ${c.name}: route "${route}" is not a configured route`);
    for (const role of [...(w.roles ?? []), ...(w.exceptRoles ?? [])]) if (roles && !roles.has(role)) problems.push(`${where}: ${c.name}: role "${role}" is not in the roles catalogue`);
    for (const agency of w.agencies ?? []) if (agencies && !agencies.has(agency) && !communes.has(agency)) problems.push(`${where}: ${c.name}: agency "${agency}" is not in the agencies or communes catalogue`);
    for (const n of r.networks ?? []) if (!networks.has(n)) problems.push(`${where}: ${c.name}: network "${n}" is not defined under networks`);
    if (r.timeWindow && !timeWindows.has(r.timeWindow)) problems.push(`${where}: ${c.name}: time window "${r.timeWindow}" is not defined under timeWindows`);
    if (r.purpose && raw.purposes.codes.length === 0) problems.push(`${where}: ${c.name}: requires a purpose, but purposes.codes lists none`);
    if (o.communeScope && w.communeOfficials !== true) problems.push(`${where}: ${c.name}: communeScope needs when.communeOfficials: true (only a commune official has a commune to scope to)`);
    if (Object.keys(r).length === 0 && Object.keys(o).length === 0) problems.push(`${where}: ${c.name}: neither require nor obligations: the condition does nothing`);
    const set = (v: string[] | undefined) => (v ? new Set(v) : null);
    const obligations: Obligation[] = [];
    if (o.maskFields) obligations.push({ type: 'mask-fields', fields: o.maskFields });
    if (o.maxRecordsPerResponse) obligations.push({ type: 'max-records-per-response', max: o.maxRecordsPerResponse });
    if (o.maxRecordsPerDay) obligations.push({ type: 'max-records-per-day', max: o.maxRecordsPerDay });
    return {
      name: c.name,
      line,
      when: {
        routes: set(w.routes),
        roles: set(w.roles),
        exceptRoles: set(w.exceptRoles),
        agencies: set(w.agencies),
        methods: set(w.methods),
        communeOfficials: w.communeOfficials ?? null,
        minSecurityLevel: w.minSecurityLevel ?? null,
        classifications: set(w.classifications),
        grants: set(w.grants) as ReadonlySet<GrantKind | 'none'> | null,
      },
      require: {
        purpose: r.purpose === true,
        minAssurance: r.minAssurance ?? null,
        maxAuthAgeSeconds: r.maxAuthAgeSeconds ?? null,
        minDeviceTier: r.minDeviceTier ?? null,
        networks: r.networks ?? null,
        timeWindow: r.timeWindow ?? null,
      },
      obligations,
      communeScopeField: o.communeScope?.recordField ?? null,
    };
  });

  return {
    conditions: {
      roles,
      agencies,
      communes,
      networks,
      stateSecretNetworks: raw.stateSecretNetworks,
      purposeCodes: new Set(raw.purposes.codes),
      caseRefPattern,
      timeWindows,
      entries,
      grants,
    },
    problems,
  };
}

function applies(entry: ConditionEntry, req: AccessRequest, c: Conditions): boolean {
  const w = entry.when;
  const p = req.principal;
  if (w.routes && !w.routes.has(req.route.id)) return false;
  if (w.methods && !w.methods.has(req.method)) return false;
  if (w.roles && !p.roles.some((r) => w.roles!.has(r))) return false;
  if (w.exceptRoles && p.roles.some((r) => w.exceptRoles!.has(r))) return false;
  if (w.agencies && !(p.agency !== null && w.agencies.has(p.agency))) return false;
  if (w.communeOfficials !== null && w.communeOfficials !== (p.agency !== null && c.communes.has(p.agency))) return false;
  if (w.minSecurityLevel !== null && req.route.securityLevel < w.minSecurityLevel) return false;
  if (w.classifications && !w.classifications.has(req.route.classification)) return false;
  if (w.grants && !w.grants.has(req.grant?.kind ?? 'none')) return false;
  return true;
}

/** IPv4-mapped IPv6 (::ffff:10.0.0.1) is the IPv4 address it carries. */
function inNetworks(ip: string | null, names: readonly string[], c: Conditions): boolean {
  if (!ip) return false;
  const addr = ip.startsWith('::ffff:') && ip.includes('.') ? ip.slice(7) : ip;
  const family = isIP(addr);
  if (family === 0) return false;
  return names.some((n) => c.networks.get(n)?.check(addr, family === 4 ? 'ipv4' : 'ipv6') === true);
}

/** Vietnam keeps UTC+7 all year (no daylight saving): Asia/Ho_Chi_Minh is a fixed offset. */
export const HO_CHI_MINH_OFFSET_MS = 7 * 3600_000;

/** A Date whose UTC fields (getUTCHours, toISOString…) read the wall clock in Asia/Ho_Chi_Minh. */
export function hoChiMinhWallClock(timeMs: number): Date {
  return new Date(timeMs + HO_CHI_MINH_OFFSET_MS);
}

function inWindow(timeMs: number, w: TimeWindow): boolean {
  const local = hoChiMinhWallClock(timeMs);
  const minute = local.getUTCHours() * 60 + local.getUTCMinutes();
  return w.days.has(local.getUTCDay()) && minute >= w.fromMinute && minute < w.toMinute;
}

export function isStateSecret(classification: Classification | string): boolean {
  return STATE_SECRETS.includes(classification);
}

export function clearanceCovers(clearance: Clearance, classification: string): boolean {
  return CLEARANCES.indexOf(clearance) >= CLEARANCES.indexOf(classification as Clearance);
}

export function purposeProblem(purpose: AccessRequest['purpose'], c: Conditions): string | null {
  if (!purpose) return null;
  if (!c.purposeCodes.has(purpose.code)) return `X-Purpose "${purpose.code.slice(0, 40)}" không thuộc danh mục mục đích / is not a listed purpose code`;
  if (!c.caseRefPattern.test(purpose.caseRef)) return 'X-Case-Ref không đúng định dạng số hồ sơ / is not a valid case reference';
  return null;
}

export interface ConditionOutcome {
  readonly denied: { readonly reason: ConditionReason; readonly condition: string } | null;
  readonly obligations: readonly Obligation[];
  readonly applied: readonly string[];
}

/** Evaluates the conditions for a request Casbin allowed. Pure: the time comes with the request. */
export function evaluateConditions(req: AccessRequest, c: Conditions): ConditionOutcome {
  const p = req.principal;
  const deny = (reason: ConditionReason, condition: string): ConditionOutcome => ({ denied: { reason, condition }, obligations: [], applied: [] });
  if (purposeProblem(req.purpose, c)) return deny('purpose-invalid', 'purposes');
  // State secrets: never from anywhere but the allowed networks, never above the official's clearance.
  if (isStateSecret(req.route.classification)) {
    if (!clearanceCovers(p.clearance, req.route.classification)) return deny('clearance-insufficient', 'state-secret');
    if (!inNetworks(req.sourceIp, c.stateSecretNetworks, c)) return deny('network-not-allowed', 'state-secret');
  }
  const applying = c.entries.filter((e) => applies(e, req, c));
  const checks: [ConditionReason, (e: ConditionEntry) => boolean][] = [
    ['assurance-insufficient', (e) => e.require.minAssurance === null || p.assuranceLevel >= e.require.minAssurance],
    ['authentication-too-old', (e) => e.require.maxAuthAgeSeconds === null || (p.authTime !== null && req.timeMs / 1000 - p.authTime <= e.require.maxAuthAgeSeconds)],
    ['device-tier-insufficient', (e) => e.require.minDeviceTier === null || DEVICE_TIERS.indexOf(req.device?.tier ?? 'unknown') >= DEVICE_TIERS.indexOf(e.require.minDeviceTier)],
    ['network-not-allowed', (e) => e.require.networks === null || inNetworks(req.sourceIp, e.require.networks, c)],
    ['outside-time-window', (e) => e.require.timeWindow === null || inWindow(req.timeMs, c.timeWindows.get(e.require.timeWindow)!)],
    ['purpose-required', (e) => !e.require.purpose || req.purpose !== null],
  ];
  for (const [reason, holds] of checks) {
    const failed = applying.find((e) => !holds(e));
    if (failed) return deny(reason, failed.name);
  }
  const obligations: Obligation[] = [];
  const masked = new Set<string>();
  let perResponse = Infinity;
  let perDay = Infinity;
  let scopeField: string | null = null;
  for (const e of applying) {
    for (const o of e.obligations) {
      if (o.type === 'mask-fields') o.fields.forEach((f) => masked.add(f));
      else if (o.type === 'max-records-per-response') perResponse = Math.min(perResponse, o.max);
      else if (o.type === 'max-records-per-day') perDay = Math.min(perDay, o.max);
    }
    scopeField ??= e.communeScopeField;
  }
  if (masked.size > 0) obligations.push({ type: 'mask-fields', fields: [...masked].sort() });
  if (perResponse !== Infinity) obligations.push({ type: 'max-records-per-response', max: perResponse });
  if (perDay !== Infinity) obligations.push({ type: 'max-records-per-day', max: perDay });
  if (scopeField && p.agency) obligations.push({ type: 'commune-scope', commune: p.agency, recordField: scopeField });
  return { denied: null, obligations, applied: applying.map((e) => e.name) };
}
