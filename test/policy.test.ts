import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfigFile } from '../gateway/config.js';
import { PolicyEngine, PolicyError } from '../policies/engine.js';
import type { Principal, Decision } from '../core/principal.js';
import { ROOT } from './helpers/harness.js';

const MODEL = join(ROOT, 'policies/model.conf');
const DEMO_POLICY = join(ROOT, 'policies/demo-policy.csv');
const DEMO_ROUTES: ReadonlySet<string> = new Set(loadConfigFile(join(ROOT, 'demo/ztgate.demo.yaml')).routes.map((r) => r.id));
const DEMO_TEXT = readFileSync(DEMO_POLICY, 'utf8');

const tmp = mkdtempSync(join(tmpdir(), 'ztgate-policy-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

let fileCount = 0;
function writeTmp(text: string, name = `policy-${++fileCount}.csv`): string {
  const path = join(tmp, name);
  writeFileSync(path, text);
  return path;
}

function official(nationalId: string, agency: string | null, roles: string[]): Principal {
  return Object.freeze({ nationalId, agency, roles: Object.freeze(roles), clearance: 'none', assuranceLevel: 2, sessionId: null, acr: null, issuer: 'http://127.0.0.1:8090', authTime: null });
}

// Demo officials (demo/officials.json) and two synthetic ones to separate the land roles.
const AN = official('056085000001', 'so-tu-phap', ['ho-tich-reader']);
const BINH = official('056190000002', 'so-y-te', ['y-te-reader']);
const CUONG = official('056088000003', 'phuong-nha-trang', ['ho-tich-reader']);
const DUNG = official('056092000004', 'so-nong-nghiep-moi-truong', ['dat-dai-reader', 'dat-dai-editor']);
const EM = official('056080000005', 'so-tu-phap', ['van-thu']);
const LAND_EDITOR_ONLY = official('056195000011', 'so-nong-nghiep-moi-truong', ['dat-dai-editor']);
const LAND_READER_ONLY = official('056095000012', 'so-nong-nghiep-moi-truong', ['dat-dai-reader']);

const R = {
  hoTichList: 'p, ho-tich-reader, *, ho-tich, /records, GET|HEAD, allow',
  hoTichAny: 'p, ho-tich-reader, *, ho-tich, /records/*, GET|HEAD|POST, allow',
  hoTichNotesDeny: 'p, ho-tich-reader, phuong-nha-trang, ho-tich, /records/:id/notes, POST, deny',
  yTeList: 'p, y-te-reader, so-y-te, y-te, /records, GET|HEAD, allow',
  yTeOne: 'p, y-te-reader, so-y-te, y-te, /records/:id, GET|HEAD, allow',
  datDaiOne: 'p, dat-dai-reader, so-nong-nghiep-moi-truong, dat-dai, /records/:id, GET|HEAD, allow',
  datDaiNotes: 'p, dat-dai-editor, so-nong-nghiep-moi-truong, dat-dai, /records/:id/notes, POST, allow',
  noDelete: 'p, *, *, *, /*, DELETE, deny',
} as const;

type Row = [what: string, who: Principal, route: string, path: string, method: string, effect: Decision['effect'], reason: Decision['reasons'][number], rule: string | null];

const demoRows: Row[] = [
  ['a civil-status reader lists records', AN, 'ho-tich', '/records', 'GET', 'allow', 'policy-allowed', R.hoTichList],
  ['HEAD is in the method list', AN, 'ho-tich', '/records', 'HEAD', 'allow', 'policy-allowed', R.hoTichList],
  ['POST is not in the method list of /records', AN, 'ho-tich', '/records', 'POST', 'deny', 'policy-no-match', null],
  ['PUT is in no method list', AN, 'ho-tich', '/records/1', 'PUT', 'deny', 'policy-no-match', null],
  ['OPTIONS is in no method list', AN, 'ho-tich', '/records', 'OPTIONS', 'deny', 'policy-no-match', null],
  ['/records/ is not /records: it matches /records/*', AN, 'ho-tich', '/records/', 'GET', 'allow', 'policy-allowed', R.hoTichAny],
  ['/records/* spans nested segments', AN, 'ho-tich', '/records/1/notes/2', 'GET', 'allow', 'policy-allowed', R.hoTichAny],
  ['the agency-scoped deny does not reach another agency', AN, 'ho-tich', '/records/1/notes', 'POST', 'allow', 'policy-allowed', R.hoTichAny],
  ['a deny overrides the allow of the same role, in its agency', CUONG, 'ho-tich', '/records/1/notes', 'POST', 'deny', 'policy-denied', R.hoTichNotesDeny],
  ['the deny is for POST only', CUONG, 'ho-tich', '/records/1/notes', 'GET', 'allow', 'policy-allowed', R.hoTichAny],
  ['a role of one service does not open another', AN, 'dat-dai', '/records', 'GET', 'deny', 'policy-no-match', null],
  ['an agency-scoped allow, in its agency', BINH, 'y-te', '/records/056', 'GET', 'allow', 'policy-allowed', R.yTeOne],
  ['an agency-scoped allow does not match another agency', official('056190000013', 'so-tu-phap', ['y-te-reader']), 'y-te', '/records', 'GET', 'deny', 'policy-no-match', null],
  ['an agency-scoped allow does not match an official without agency', official('056190000014', null, ['y-te-reader']), 'y-te', '/records', 'GET', 'deny', 'policy-no-match', null],
  ['an agency-wide (*) allow matches an official without agency', official('056085000015', null, ['ho-tich-reader']), 'ho-tich', '/records', 'GET', 'allow', 'policy-allowed', R.hoTichList],
  [':id does not match a nested path', BINH, 'y-te', '/records/056/history', 'GET', 'deny', 'policy-no-match', null],
  [':id does not match an empty segment', BINH, 'y-te', '/records/', 'GET', 'deny', 'policy-no-match', null],
  ['/records does not match /records/ for a service without /records/*', BINH, 'y-te', '/records', 'GET', 'allow', 'policy-allowed', R.yTeList],
  ['an official with both land roles reads', DUNG, 'dat-dai', '/records/7', 'GET', 'allow', 'policy-allowed', R.datDaiOne],
  ['an official with both land roles adds a note', DUNG, 'dat-dai', '/records/7/notes', 'POST', 'allow', 'policy-allowed', R.datDaiNotes],
  ['an editor inherits the reader rules (g, dat-dai-editor, dat-dai-reader)', LAND_EDITOR_ONLY, 'dat-dai', '/records/7', 'GET', 'allow', 'policy-allowed', R.datDaiOne],
  ['inheritance is one-way: a reader does not get the editor rules', LAND_READER_ONLY, 'dat-dai', '/records/7/notes', 'POST', 'deny', 'policy-no-match', null],
  ['the * subject/agency/service deny applies to every official', DUNG, 'dat-dai', '/records/7', 'DELETE', 'deny', 'policy-denied', R.noDelete],
  ['the * deny applies even where no rule allows, at the service root', EM, 'cong-thuong', '/', 'DELETE', 'deny', 'policy-denied', R.noDelete],
  ['an official whom no rule names gets no match', EM, 'ho-tich', '/records', 'GET', 'deny', 'policy-no-match', null],
  ['an official without roles gets no match', official('056085000016', 'so-tu-phap', []), 'ho-tich', '/records', 'GET', 'deny', 'policy-no-match', null],
];

// The demo policy plus a second civil-status role and a rule for one person.
const EXTRA = ['p, ho-tich-editor, *, ho-tich, /records/:id/notes, POST, allow', 'p, 056080000005, so-tu-phap, ho-tich, /records/:id, GET, allow'];
const R2 = { editorNotes: `p, ${EXTRA[0]!.slice(3)}`, person: `p, ${EXTRA[1]!.slice(3)}` };

const extendedRows: Row[] = [
  ['the other role allows alone', official('056085000017', 'phuong-nha-trang', ['ho-tich-editor']), 'ho-tich', '/records/1/notes', 'POST', 'allow', 'policy-allowed', R2.editorNotes],
  ['one role’s deny overrides another role’s allow (allowing role first)', official('056088000003', 'phuong-nha-trang', ['ho-tich-editor', 'ho-tich-reader']), 'ho-tich', '/records/1/notes', 'POST', 'deny', 'policy-denied', R.hoTichNotesDeny],
  ['one role’s deny overrides another role’s allow (denying role first)', official('056088000003', 'phuong-nha-trang', ['ho-tich-reader', 'ho-tich-editor']), 'ho-tich', '/records/1/notes', 'POST', 'deny', 'policy-denied', R.hoTichNotesDeny],
  ['a rule for a national ID applies to that official', EM, 'ho-tich', '/records/9', 'GET', 'allow', 'policy-allowed', R2.person],
  ['a rule for a national ID does not apply to a colleague with the same roles', official('056080000018', 'so-tu-phap', ['van-thu']), 'ho-tich', '/records/9', 'GET', 'deny', 'policy-no-match', null],
  ['a rule for a national ID is still scoped by agency', official('056080000005', 'so-y-te', ['van-thu']), 'ho-tich', '/records/9', 'GET', 'deny', 'policy-no-match', null],
];

function expectDecision(engine: PolicyEngine, [, who, route, path, method, effect, reason, rule]: Row): void {
  const decision = engine.authorize(who, { routeId: route, path }, method);
  expect({ effect: decision.effect, reasons: decision.reasons, rule: decision.rule }).toEqual({ effect, reasons: [reason], rule });
  expect(decision.policyVersion).toBe(engine.version);
  expect(decision.obligations).toEqual([]);
  expect(Object.isFrozen(decision)).toBe(true);
}

describe('decisions over the demo policy', () => {
  let engine: PolicyEngine;
  beforeAll(async () => {
    engine = await PolicyEngine.load(MODEL, DEMO_POLICY, DEMO_ROUTES);
  });

  it.each(demoRows)('%s', (...row) => expectDecision(engine, row));
});

describe('decisions over the demo policy with a second role and a personal rule', () => {
  let engine: PolicyEngine;
  beforeAll(async () => {
    engine = await PolicyEngine.load(MODEL, writeTmp(`${DEMO_TEXT}\n${EXTRA.join('\n')}\n`), DEMO_ROUTES);
  });

  it.each(extendedRows)('%s', (...row) => expectDecision(engine, row));
});

describe('rule paths match only what they say', () => {
  it('accepts the keyMatch2 forms: literal segments, whole-segment :name and *, the root', async () => {
    const paths = ['/', '/records', '/v1.0/records/:recordId', '/records/:id/notes', '/a/*/b', '/*', '/files/report_2026~final.json'];
    const file = writeTmp(paths.map((p) => `p, ho-tich-reader, *, ho-tich, ${p}, GET, allow`).join('\n'));
    await expect(PolicyEngine.load(MODEL, file, DEMO_ROUTES)).resolves.toBeInstanceOf(PolicyEngine);
  });

  let engine: PolicyEngine;
  const who = official('056085000001', 'so-tu-phap', ['ho-tich-reader']);
  beforeAll(async () => {
    engine = await PolicyEngine.load(MODEL, writeTmp('p, ho-tich-reader, *, ho-tich, /files/report.json, GET, allow\n'), DEMO_ROUTES);
  });

  it('a dot in a rule path is a dot, not “any character”', () => {
    expect(engine.authorize(who, { routeId: 'ho-tich', path: '/files/report.json' }, 'GET')).toMatchObject({
      effect: 'allow',
      rule: 'p, ho-tich-reader, *, ho-tich, /files/report.json, GET, allow',
    });
    expect(engine.authorize(who, { routeId: 'ho-tich', path: '/files/reportXjson' }, 'GET').effect).toBe('deny');
  });
});

type BadFile = [what: string, lines: string[], at: number, expected: RegExp];

// Line numbers count the header comment and the blank line: the first rule is on line 3.
const HEADER = ['# bad policy', ''];
const badFiles: BadFile[] = [
  ['a "p" rule with five fields', ['p, ho-tich-reader, *, ho-tich, /records, GET'], 3, /a "p" rule has 6 fields .* found 5/],
  ['a "p" rule with seven fields', ['p, ho-tich-reader, *, ho-tich, /records, GET, allow, extra'], 3, /found 7/],
  ['an effect other than allow or deny', ['p, ho-tich-reader, *, ho-tich, /records, GET, permit'], 3, /effect "permit" must be allow or deny/],
  ['a service that is not a configured route', ['p, ho-tich-reader, *, thue, /records, GET, allow'], 3, /service "thue" is not a configured route/],
  ['a method that is not HTTP', ['p, ho-tich-reader, *, ho-tich, /records, GET|FETCH, allow'], 3, /methods "GET\|FETCH" must be \*/],
  ['a method in lower case', ['p, ho-tich-reader, *, ho-tich, /records, get, allow'], 3, /methods "get"/],
  ['a path without a leading slash', ['p, ho-tich-reader, *, ho-tich, records, GET, allow'], 3, /path "records" must start with \//],
  ['a path with a space', ['p, ho-tich-reader, *, ho-tich, /records/a b, GET, allow'], 3, /path "\/records\/a b"/],
  ['a path with a query', ['p, ho-tich-reader, *, ho-tich, /records?id=1, GET, allow'], 3, /path "\/records\?id=1"/],
  ['a * that is not a whole segment', ['p, ho-tich-reader, *, ho-tich, /records*, GET, allow'], 3, /path "\/records\*"/],
  ['a path with an upper-case letter (requests are matched lower-case)', ['p, ho-tich-reader, *, ho-tich, /Admin, GET, deny'], 3, /path "\/Admin" must be lower-case without a trailing slash: paths are matched lower-case without a trailing slash/],
  ['a path with a trailing slash (requests are matched without it)', ['p, ho-tich-reader, *, ho-tich, /admin/, GET, deny'], 3, /path "\/admin\/" must be lower-case without a trailing slash/],
  ['a :name that is not a whole segment', ['p, ho-tich-reader, *, ho-tich, /files/:id.json, GET, allow'], 3, /path "\/files\/:id\.json"/],
  ['a subject that is not a role name', ['p, Ho Tich, *, ho-tich, /records, GET, allow'], 3, /subject "Ho Tich" is not a role name/],
  ['an agency that is not an id', ['p, ho-tich-reader, Sở Tư pháp, ho-tich, /records, GET, allow'], 3, /agency "Sở Tư pháp"/],
  ['an unknown line kind', ['r, ho-tich-reader, *, ho-tich, /records, GET'], 3, /lines start with "p" \(rule\) or "g" \(role inheritance\), not "r"/],
  ['a repeated rule, spaced differently', ['p, ho-tich-reader, *, ho-tich, /records, GET, allow', '', 'p,ho-tich-reader,*,ho-tich,/records,GET,allow'], 5, /repeats the rule on line 3/],
  ['a "g" line with one role', ['g, dat-dai-editor'], 3, /a "g" line is "g, role, inherited-role"/],
  ['a "g" line with three roles', ['g, a, b, c'], 3, /a "g" line is/],
  ['a "g" line inheriting from *', ['g, dat-dai-editor, *'], 3, /a "g" line is/],
];

async function policyProblems(policyFile: string, modelFile = MODEL): Promise<readonly string[]> {
  try {
    await PolicyEngine.load(modelFile, policyFile, DEMO_ROUTES);
  } catch (err) {
    expect(err).toBeInstanceOf(PolicyError);
    expect((err as PolicyError).code).toBe('ERR_POLICY_INVALID');
    return (err as PolicyError).problems;
  }
  throw new Error('expected a PolicyError, but the policy loaded');
}

describe('a bad policy file is refused, naming file and line', () => {
  it.each(badFiles)('%s', async (_what, lines, at, expected) => {
    const file = writeTmp([...HEADER, ...lines, ''].join('\n'));
    const problems = await policyProblems(file);
    expect(problems).toHaveLength(1);
    expect(problems[0]!.startsWith(`${file}:${at}: `), problems[0]).toBe(true);
    expect(problems[0]).toMatch(expected);
  });

  it('reports every problem of the file together, and each problem of one line', async () => {
    const file = writeTmp(['p, ho-tich-reader, *, ho-tich, /records, GET|HEAD, allow', 'p, ho-tich-reader, *, thue, /records, GET, allow', 'x, whatever', 'p, ho-tich-reader, *, ho-tich, records, FETCH, maybe', 'g, only-one'].join('\n'));
    const problems = await policyProblems(file);
    expect(problems).toEqual([
      expect.stringMatching(new RegExp(`^${file}:2: service "thue"`)),
      expect.stringMatching(new RegExp(`^${file}:3: lines start with`)),
      expect.stringMatching(new RegExp(`^${file}:4: path "records"`)),
      expect.stringMatching(new RegExp(`^${file}:4: methods "FETCH"`)),
      expect.stringMatching(new RegExp(`^${file}:4: effect "maybe"`)),
      expect.stringMatching(new RegExp(`^${file}:5: a "g" line`)),
    ]);
  });

  it('a policy file that cannot be read', async () => {
    expect((await policyProblems(join(tmp, 'missing.csv')))[0]).toMatch(/cannot read policy files: .*ENOENT/);
  });
});

describe('a malformed model is refused at load, naming the model file', () => {
  const model = readFileSync(MODEL, 'utf8');
  const policy = () => writeTmp('p, ho-tich-reader, *, ho-tich, /records, GET, allow\n');
  const cases: [string, string][] = [
    ['an empty model', ''],
    ['text that is not a model', 'this is not a model\n'],
    ['a model without matchers', model.replace(/\[matchers\][\s\S]*$/, '')],
    ['a matcher that does not parse', model.replace(/^m = .*$/m, 'm = (r.sub == p.sub')],
    ['an unsupported effect', model.replace(/^e = .*$/m, 'e = whatever')],
    ['a matcher calling an unknown function', model.replace(/&& keyMatch2\(/, '&& noSuchMatch(')],
  ];

  it.each(cases)('%s', async (_what, text) => {
    const file = writeTmp(text, `model-${++fileCount}.conf`);
    const problems = await policyProblems(policy(), file);
    expect(problems).toHaveLength(1);
    expect(problems[0]!.startsWith(`${file}: `), problems[0]).toBe(true);
  });

  it('the test cases really changed the model', () => {
    for (const [, text] of cases) expect(text).not.toBe(model);
  });
});

describe('policy version', () => {
  it('is a short content hash', async () => {
    expect((await PolicyEngine.load(MODEL, DEMO_POLICY, DEMO_ROUTES)).version).toMatch(/^sha256:[0-9a-f]{16}$/);
  });

  it('the same files give the same version, wherever they are', async () => {
    const a = await PolicyEngine.load(MODEL, DEMO_POLICY, DEMO_ROUTES);
    const b = await PolicyEngine.load(MODEL, DEMO_POLICY, DEMO_ROUTES);
    const copy = await PolicyEngine.load(MODEL, writeTmp(DEMO_TEXT), DEMO_ROUTES);
    expect(b.version).toBe(a.version);
    expect(copy.version).toBe(a.version);
  });

  it('one changed rule gives a different version', async () => {
    const a = await PolicyEngine.load(MODEL, DEMO_POLICY, DEMO_ROUTES);
    const changed = DEMO_TEXT.replace(R.yTeOne, R.yTeOne.replace('GET|HEAD', 'GET'));
    expect(changed).not.toBe(DEMO_TEXT);
    const b = await PolicyEngine.load(MODEL, writeTmp(changed), DEMO_ROUTES);
    expect(b.version).not.toBe(a.version);
  });

  it('a changed model gives a different version', async () => {
    const a = await PolicyEngine.load(MODEL, DEMO_POLICY, DEMO_ROUTES);
    const model = writeTmp(`${readFileSync(MODEL, 'utf8')}\n# reviewed\n`, 'model-version.conf');
    expect((await PolicyEngine.load(model, DEMO_POLICY, DEMO_ROUTES)).version).not.toBe(a.version);
  });
});
