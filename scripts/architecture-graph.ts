/**
 * The drawn import graph of docs/architecture.md, generated from the code: dependency-cruiser reads
 * the imports (type-only ones included, as `npm run lint:deps` does), collapses them to one node per
 * part, and this module draws the result as a Mermaid flowchart between two marker comments.
 * `npm run docs:graph` rewrites the block; test/architecture-graph.test.ts fails when the committed
 * block differs from the code and checks the arrows against the layer order.
 */
import { spawnSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

export const ROOT = fileURLToPath(new URL('../', import.meta.url));
export const DOC = join(ROOT, 'docs/architecture.md');
export const START_MARKER = '<!-- import-graph:start (npm run docs:graph writes this block) -->';
export const END_MARKER = '<!-- import-graph:end -->';

export interface Layer {
  readonly name: string;
  /** An arrow may only point to a layer of a lower rank, or stay inside its own layer. */
  readonly rank: number;
  /** The collapsed nodes of the layer, as dependency-cruiser names them. */
  readonly nodes: readonly string[];
}

/** The layers of docs/architecture.md, top of the picture first. */
export const LAYERS: readonly Layer[] = [
  { name: 'beside the product', rank: 5, nodes: ['demo/'] },
  { name: 'composition root', rank: 4, nodes: ['gateway/cli.ts', 'gateway/cli-main.ts', 'gateway/cluster.ts', 'gateway/server.ts'] },
  { name: 'management plane', rank: 3, nodes: ['gateway/admin/'] },
  {
    name: 'data plane',
    rank: 2,
    nodes: ['gateway/', 'gateway/steps/', 'gateway/access/', 'gateway/audit/', 'gateway/database/', 'gateway/detect/', 'gateway/observability/'],
  },
  { name: 'identity', rank: 1, nodes: ['identity/'] },
  { name: 'policies', rank: 1, nodes: ['policies/'] },
  { name: 'core', rank: 0, nodes: ['core/'] },
];

/**
 * What dependency-cruiser collapses a path to (the whole match). The files directly in gateway/
 * collapse to `gateway/`; a new gateway/ subfolder matches nothing, stays a file-level node and
 * makes `layerOf` fail until it is given a place in LAYERS.
 */
const COLLAPSE = ['^(core|identity|policies|demo)/', '^gateway/(steps|access|audit|database|detect|observability|admin)/', '^gateway/(cli|cli-main|cluster|server)[.]ts$', '^gateway/(?=[^/]+$)'].join('|');
const PRODUCT = '^(core|identity|policies|gateway|demo)/';

export interface Graph {
  /** `from → to` arrows between different collapsed nodes, sorted. */
  readonly edges: readonly (readonly [string, string])[];
}

interface CruiseResult {
  readonly modules: readonly { readonly source: string; readonly dependencies: readonly { readonly resolved: string }[] }[];
}

/** Runs dependency-cruiser on the product and demo/ with the project's config, collapsed. */
export function collapsedGraph(root: string = ROOT): Graph {
  const run = spawnSync(process.execPath, [join(root, 'node_modules/dependency-cruiser/bin/dependency-cruiser.mjs'), 'core', 'identity', 'policies', 'gateway', 'demo', '--config', '.dependency-cruiser.cjs', '--no-progress', '--output-type', 'json', '--include-only', PRODUCT, '--collapse', COLLAPSE], {
    cwd: root,
    encoding: 'utf8',
    maxBuffer: 64 * 1024 * 1024,
  });
  // Exit status 1+ only means rule violations (npm run lint:deps reports those); no output is a failure.
  if (run.stdout === '') throw new Error(`dependency-cruiser printed nothing: ${run.stderr}`);
  const result = JSON.parse(run.stdout) as CruiseResult;
  const edges = new Map<string, readonly [string, string]>();
  for (const module of result.modules) {
    for (const dependency of module.dependencies) {
      if (dependency.resolved === module.source) continue;
      edges.set(`${module.source} ${dependency.resolved}`, [module.source, dependency.resolved]);
    }
  }
  for (const module of result.modules) layerOf(module.source);
  return { edges: [...edges.values()].sort(([a, b], [c, d]) => a.localeCompare(c) || b.localeCompare(d)) };
}

export function layerOf(node: string): Layer {
  const layer = LAYERS.find((l) => l.nodes.includes(node));
  if (!layer) throw new Error(`${node} is in no layer of scripts/architecture-graph.ts (LAYERS): give it one`);
  return layer;
}

const idOf = (node: string): string => node.replace(/[^a-z0-9]+/gi, '_').replace(/_$/, '');
const labelOf = (node: string): string => (node === 'gateway/' ? 'gateway/*.ts' : node);

/** The Mermaid flowchart: one subgraph per layer, top layer first, every arrow from importer to imported. */
export function renderMermaid(graph: Graph): string {
  const lines = ['```mermaid', 'flowchart TD'];
  for (const layer of LAYERS) {
    lines.push(`  subgraph ${idOf(`layer ${layer.name}`)}["${layer.name}"]`);
    for (const node of layer.nodes) lines.push(`    ${idOf(node)}["${labelOf(node)}"]`);
    lines.push('  end');
  }
  for (const [from, to] of graph.edges) lines.push(`  ${idOf(from)} --> ${idOf(to)}`);
  lines.push('```');
  return lines.join('\n');
}

/** The text between the markers, without the newlines next to them. */
export function committedBlock(doc: string): string {
  const start = doc.indexOf(START_MARKER);
  const end = doc.indexOf(END_MARKER);
  if (start < 0 || end < start) throw new Error(`docs/architecture.md lacks the markers ${START_MARKER} … ${END_MARKER}`);
  return doc.slice(start + START_MARKER.length, end).trim();
}

export function withBlock(doc: string, block: string): string {
  const start = doc.indexOf(START_MARKER);
  const end = doc.indexOf(END_MARKER);
  if (start < 0 || end < start) throw new Error(`docs/architecture.md lacks the markers ${START_MARKER} … ${END_MARKER}`);
  return `${doc.slice(0, start + START_MARKER.length)}\n${block}\n${doc.slice(end)}`;
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  writeFileSync(DOC, withBlock(readFileSync(DOC, 'utf8'), renderMermaid(collapsedGraph())));
}
