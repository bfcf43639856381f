import { copyFileSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runDemoCli } from '../demo/cli-main.js';
import { startDemo, type RunningDemo } from '../demo/run.js';
import { EventSink, freePort, ROOT } from './helpers/harness.js';

/**
 * The README's walk-through, run as written against the real demo (demo/run.ts: IdP, data
 * services, endpoint-management signer, gateway) on free ports: every ```sh block that talks to
 * the demo gateway is parsed, each `ztgate-demo` command runs through the real command line
 * (in-process), each `curl` becomes the same HTTP request, and each answer is compared with what
 * the README says under it — status, reason, and the "key":value pairs it shows. A README that
 * stops matching the demo fails here.
 */

const README = readFileSync(join(ROOT, 'README.md'), 'utf8');
const DEMO_GATEWAY = 'http://127.0.0.1:8080';
/**
 * The sections whose blocks are the token and device walk-through. The just-in-time access
 * walk-through has placeholders (`ID`) a reader fills in, and is not run here.
 */
const WALK_THROUGH_SECTIONS = new Set(['## Try the demo', '### Trust tiers', '### In the demo (Khánh Hòa, synthetic)']);

interface Step {
  readonly line: number;
  readonly text: string;
  /** `VAR=$(…)`: the variable the command's output is kept in. */
  readonly assign: string | null;
  readonly words: string[];
  /** What the README says comes back. */
  readonly expect: { status: number; reason: string | null; fragments: string[] } | null;
}

/** Shell words: "double" (with $VAR), 'single', bare; a # outside quotes starts the comment. */
function shellWords(line: string, vars: Record<string, string>): { words: string[]; comment: string } {
  const words: string[] = [];
  let word: string | null = null;
  const expand = (s: string) =>
    s.replace(/\$([A-Z_][A-Z0-9_]*)/g, (_m, v: string) => {
      if (!(v in vars)) throw new Error(`$${v} is not set`);
      return vars[v]!;
    });
  let i = 0;
  for (; i < line.length; i++) {
    const c = line[i]!;
    if (c === '#' && word === null) return { words, comment: line.slice(i + 1).trim() };
    if (c === ' ' || c === '\t') {
      if (word !== null) words.push(word);
      word = null;
    } else if (c === '"' || c === "'") {
      const end = line.indexOf(c, i + 1);
      if (end < 0) throw new Error(`unclosed quote in: ${line}`);
      const inner = line.slice(i + 1, end);
      word = (word ?? '') + (c === '"' ? expand(inner) : inner);
      i = end;
    } else {
      let j = i;
      while (j < line.length && !' \t"\''.includes(line[j]!)) j++;
      word = (word ?? '') + expand(line.slice(i, j));
      i = j - 1;
    }
  }
  if (word !== null) words.push(word);
  return { words, comment: '' };
}

/** The steps of every ```sh block of the README that talks to the demo gateway. */
function walkThrough(): Step[][] {
  const blocks: Step[][] = [];
  const lines = README.split('\n');
  let section = '';
  for (let i = 0; i < lines.length; i++) {
    if (/^#{2,4} /.test(lines[i]!)) section = lines[i]!;
    // A block may be indented inside a list item.
    if (lines[i]!.trim() !== '```sh' || !WALK_THROUGH_SECTIONS.has(section)) continue;
    const start = i + 1;
    let end = start;
    while (lines[end]!.trim() !== '```') end++;
    const body = lines.slice(start, end).map((l) => l.trim());
    i = end;
    if (!body.some((l) => l.includes(DEMO_GATEWAY))) continue;
    const steps: Step[] = [];
    for (let k = 0; k < body.length; k++) {
      let text = body[k]!;
      const line = start + k + 1;
      if (text.trim() === '' || text.trimStart().startsWith('#')) continue;
      while (/\\\s*$/.test(text.replace(/\s+#.*$/, ''))) text = `${text.replace(/\s+#.*$/, '').replace(/\\\s*$/, '')} ${body[++k]!.trim()}`;
      // What the README says follows: comment lines under the command, else its own comment.
      const after: string[] = [];
      while (k + 1 < body.length && body[k + 1]!.trimStart().startsWith('#')) after.push(body[++k]!.trim().replace(/^#\s*/, ''));
      const inline = /\s#\s(.*)$/.exec(text)?.[1] ?? '';
      const said = after.length > 0 ? after.join('\n') : inline;
      const status = /\b([1-5]\d\d)\b/.exec(said);
      // The response body as shown: before any "event:" note.
      const shown = said.split(/\bevent:/)[0]!;
      const assign = /^([A-Z_][A-Z0-9_]*)=\$\((.*)\)\s*(#.*)?$/.exec(text);
      steps.push({
        line,
        text,
        assign: assign ? assign[1]! : null,
        words: [assign ? assign[2]! : text],
        expect: status && !assign ? { status: Number(status[1]), reason: /"reason":"([a-z0-9-]+)"/.exec(shown)?.[1] ?? null, fragments: [...shown.matchAll(/"[A-Za-z]+":(?:"[^"…]*"|\d+|true|false)/g)].map((m) => m[0]).filter((f) => !f.startsWith('"requestId"')) } : null,
      });
    }
    blocks.push(steps);
  }
  return blocks;
}

class Capture extends Writable {
  text = '';
  override _write(chunk: Buffer, _enc: string, done: () => void) {
    this.text += chunk.toString('utf8');
    done();
  }
}

let demo: RunningDemo;
let dir: string;
const sink = new EventSink();
const urls: Record<string, string> = {};

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'ztgate-readme-'));
  // The demo's own configuration, on free ports, its state in a folder of this test.
  let text = readFileSync(join(ROOT, 'demo/ztgate.demo.yaml'), 'utf8');
  for (const port of ['8080', '8081', '8090', '8092', '9101', '9102', '9103', '9104']) {
    const free = String(await freePort());
    urls[port] = `http://127.0.0.1:${free}`;
    text = text.replaceAll(`http://127.0.0.1:${port}`, urls[port]!).replace(`port: ${port}`, `port: ${free}`);
  }
  text = text.replaceAll('../policies/', `${ROOT}/policies/`).replaceAll('../.data/', `${dir}/.data/`);
  copyFileSync(join(ROOT, 'demo/roster.csv'), join(dir, 'roster.csv'));
  writeFileSync(join(dir, 'ztgate.yaml'), text);
  demo = await startDemo(join(dir, 'ztgate.yaml'), { decisionLog: sink });
}, 60_000);

afterAll(async () => {
  await demo?.close();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

/** The README's address of a demo part, as this run's. */
const here = (s: string) => Object.entries(urls).reduce((acc, [port, url]) => acc.replaceAll(`http://127.0.0.1:${port}`, url), s);

async function run(step: Step, vars: Record<string, string>): Promise<{ status: number | null; body: string; requestId: string | null; output: string }> {
  const { words } = shellWords(step.words[0]!, vars);
  const [program, ...args] = words.map(here);
  if (program === 'npx' && args[0] === 'ztgate-demo') {
    const out = new Capture();
    const err = new Capture();
    const demoAddresses = args[1] === 'device' ? ['--gateway', urls['8080']!, '--admin-url', urls['8081']!, '--issuer', urls['8090']!] : args[1] === 'token' ? ['--issuer', urls['8090']!] : [];
    const code = await runDemoCli([...args.slice(1), ...demoAddresses], { out, err });
    // `ztgate-demo device enrol|approve|curl` print the status and the body of the answer (and exit 1 on a refusal).
    const answer = /^(\d{3}) (.*)$/s.exec(out.text.trim());
    if (!answer) expect(code, `README line ${step.line}: ${step.text}\n${err.text}`).toBe(0);
    return { status: answer ? Number(answer[1]) : null, body: answer ? answer[2]! : out.text, requestId: null, output: out.text.trim() };
  }
  if (program === 'curl') {
    const headers: Record<string, string> = {};
    let method = 'GET';
    let url = '';
    for (let i = 0; i < args.length; i++) {
      if (args[i] === '-s') continue;
      if (args[i] === '-H') {
        const [name, ...value] = args[++i]!.split(':');
        headers[name!.trim().toLowerCase()] = value.join(':').trim();
      } else if (args[i] === '-X') method = args[++i]!;
      else url = args[i]!;
    }
    const res = await fetch(url, { method, headers });
    return { status: res.status, body: await res.text(), requestId: res.headers.get('x-request-id'), output: '' };
  }
  throw new Error(`README line ${step.line}: a command this test does not know how to run: ${step.text}`);
}

describe('the README walk-through, run against the demo', () => {
  const blocks = walkThrough();

  it('finds the walk-through: the token examples and the device examples', () => {
    expect(blocks.length).toBe(WALK_THROUGH_SECTIONS.size);
    expect(blocks.flat().filter((s) => s.expect).length).toBeGreaterThanOrEqual(12);
  });

  blocks.forEach((steps, b) => {
    it(`block ${b + 1} (README line ${steps[0]!.line}): every command answers as the README says`, async () => {
      const vars: Record<string, string> = {};
      for (const step of steps) {
        const result = await run(step, vars);
        if (step.assign) {
          expect(result.output, `README line ${step.line}: ${step.text}`).not.toBe('');
          vars[step.assign] = result.output;
        }
        if (!step.expect) continue;
        const where = `README line ${step.line}: ${step.text}\n→ ${result.status} ${result.body.slice(0, 400)}`;
        expect(result.status, where).toBe(step.expect.status);
        if (step.expect.reason) expect(JSON.parse(result.body).error.reason, where).toBe(step.expect.reason);
        for (const fragment of step.expect.fragments) expect(result.body, `${where}\nexpected to contain ${fragment}`).toContain(fragment);
        // curl answers: the decision event says the same.
        if (result.requestId) {
          const event = await sink.forRequest(result.requestId);
          expect(event.ztgate.decision, where).toBe(step.expect.status < 300 ? 'allow' : 'deny');
          if (step.expect.reason) expect(event.ztgate.reasons, where).toContain(step.expect.reason);
        }
      }
    }, 60_000);
  });
});
