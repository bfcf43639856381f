/**
 * The two import graphs of docs/architecture.md, generated from the code: dependency-cruiser reads
 * the imports (type-only ones included, as `npm run lint:deps` does) and collapses them to one node
 * per folder; this module draws them as Mermaid flowcharts, each between its two marker comments:
 * - the layer graph: the folders merged into their layer (core/, identity/, policies/, data plane,
 *   management plane, composition root, demo/), every arrow between two layers;
 * - inside the data plane: its folders and the arrows between them.
 * `npm run docs:graph` rewrites both blocks; test/architecture-graph.test.ts fails when a committed
 * block differs from the code and checks the layer graph against the layer order.
 */
import { spawnSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

export const ROOT = fileURLToPath(new URL('../', import.meta.url));
export const DOC = join(ROOT, 'docs/architecture.md');

/** The two generated blocks of the doc, each between `<!-- <name>:start … -->` and `<!-- <name>:end -->`. */
export type Block = 'layer-graph' | 'data-plane-graph';
const startMarker = (block: Block): string => `<!-- ${block}:start (npm run docs:graph writes this block) -->`;
const endMarker = (block: Block): string => `<!-- ${block}:end -->`;

export interface Layer {
  readonly name: string;
  /** What the layer's node says in the layer graph. */
  readonly label: string;
  /** An arrow of the layer graph may only point to a layer of a lower rank. */
  readonly rank: number;
  /** The folder-level nodes of the layer, as dependency-cruiser collapses them. */
  readonly nodes: readonly string[];
}

export const DATA_PLANE = 'data plane';

/** The layers of docs/architecture.md, top of the picture first. */
export const LAYERS: readonly Layer[] = [
  { name: 'demo', label: 'demo/', rank: 5, nodes: ['demo/'] },
  { name: 'composition root', label: 'composition root<br>gateway/server.ts, cli.ts, cli-main.ts, cluster.ts', rank: 4, nodes: ['gateway/cli.ts', 'gateway/cli-main.ts', 'gateway/cluster.ts', 'gateway/server.ts'] },
  { name: 'management plane', label: 'management plane<br>gateway/admin/', rank: 3, nodes: ['gateway/admin/'] },
  {
    name: DATA_PLANE,
    label: 'data plane<br>gateway/ but admin/ and the composition root',
    rank: 2,
    nodes: ['gateway/', 'gateway/steps/', 'gateway/access/', 'gateway/audit/', 'gateway/database/', 'gateway/detect/', 'gateway/observability/'],
  },
  { name: 'identity', label: 'identity/', rank: 1, nodes: ['identity/'] },
  { name: 'policies', label: 'policies/', rank: 1, nodes: ['policies/'] },
  { name: 'core', label: 'core/', rank: 0, nodes: ['core/'] },
];

/**
 * What dependency-cruiser collapses a path to (the whole match). The files directly in gateway/
 * collapse to `gateway/`; a new gateway/ subfolder matches nothing, stays a file-level node and
 * makes `layerOf` fail until it is given a place in LAYERS.
 */
const COLLAPSE = ['^(core|identity|policies|demo)/', '^gateway/(steps|access|audit|database|detect|observability|admin)/', '^gateway/(cli|cli-main|cluster|server)[.]ts$', '^gateway/(?=[^/]+$)'].join('|');
const PRODUCT = '^(core|identity|policies|gateway|demo)/';

export interface Graph {
  /** `from → to` arrows between different nodes, sorted. */
  readonly edges: readonly (readonly [string, string])[];
}

interface CruiseResult {
  readonly modules: readonly { readonly source: string; readonly dependencies: readonly { readonly resolved: string }[] }[];
}

const graphOf = (arrows: Iterable<readonly [string, string]>): Graph => {
  const edges = new Map<string, readonly [string, string]>();
  for (const [from, to] of arrows) if (from !== to) edges.set(`${from} ${to}`, [from, to]);
  return { edges: [...edges.values()].sort(([a, b], [c, d]) => a.localeCompare(c) || b.localeCompare(d)) };
};

/** Runs dependency-cruiser on the product and demo/ with the project's config, collapsed to one node per folder. */
export function folderGraph(root: string = ROOT): Graph {
  const run = spawnSync(process.execPath, [join(root, 'node_modules/dependency-cruiser/bin/dependency-cruiser.mjs'), 'core', 'identity', 'policies', 'gateway', 'demo', '--config', '.dependency-cruiser.cjs', '--no-progress', '--output-type', 'json', '--include-only', PRODUCT, '--collapse', COLLAPSE], {
    cwd: root,
    encoding: 'utf8',
    maxBuffer: 64 * 1024 * 1024,
  });
  // Exit status 1+ only means rule violations (npm run lint:deps reports those); no output is a failure.
  if (run.stdout === '') throw new Error(`dependency-cruiser printed nothing: ${run.stderr}`);
  const result = JSON.parse(run.stdout) as CruiseResult;
  for (const module of result.modules) layerOf(module.source);
  return graphOf(result.modules.flatMap((module) => module.dependencies.map((dependency) => [module.source, dependency.resolved] as const)));
}

export function layerOf(node: string): Layer {
  const layer = LAYERS.find((l) => l.nodes.includes(node));
  if (!layer) throw new Error(`${node} is in no layer of scripts/architecture-graph.ts (LAYERS): give it one`);
  return layer;
}

/** The folder graph with each folder merged into its layer: nodes are layer names; arrows inside a layer vanish. */
export function layerGraph(folders: Graph): Graph {
  return graphOf(folders.edges.map(([from, to]) => [layerOf(from).name, layerOf(to).name] as const));
}

/** The arrows between two folders of the data plane. */
export function dataPlaneGraph(folders: Graph): Graph {
  return graphOf(folders.edges.filter(([from, to]) => layerOf(from).name === DATA_PLANE && layerOf(to).name === DATA_PLANE));
}

const idOf = (node: string): string => node.replace(/[^a-z0-9]+/gi, '_').replace(/_$/, '');
const labelOf = (node: string): string => (node === 'gateway/' ? 'gateway/*.ts' : node);

/** The layer graph as a Mermaid flowchart: top layer first, every arrow from importer to imported. */
export function renderLayerMermaid(layers: Graph): string {
  const lines = ['```mermaid', 'flowchart TD'];
  for (const layer of LAYERS) lines.push(`  ${idOf(layer.name)}["${layer.label}"]`);
  for (const [from, to] of layers.edges) lines.push(`  ${idOf(from)} --> ${idOf(to)}`);
  lines.push('```');
  return lines.join('\n');
}

/** The data plane's folders as a Mermaid flowchart, every arrow from importer to imported. */
export function renderDataPlaneMermaid(dataPlane: Graph): string {
  const lines = ['```mermaid', 'flowchart LR'];
  for (const node of layerByName(DATA_PLANE).nodes) lines.push(`  ${idOf(node)}["${labelOf(node)}"]`);
  for (const [from, to] of dataPlane.edges) lines.push(`  ${idOf(from)} --> ${idOf(to)}`);
  lines.push('```');
  return lines.join('\n');
}

function layerByName(name: string): Layer {
  const layer = LAYERS.find((l) => l.name === name);
  if (!layer) throw new Error(`no layer named ${name}`);
  return layer;
}

function markers(doc: string, block: Block): readonly [number, number] {
  const [startText, endText] = [startMarker(block), endMarker(block)];
  const start = doc.indexOf(startText);
  const end = doc.indexOf(endText);
  if (start < 0 || end < start) throw new Error(`docs/architecture.md lacks the markers ${startText} … ${endText}`);
  return [start + startText.length, end];
}

/** The text between a block's markers, without the newlines next to them. */
export function committedBlock(doc: string, block: Block): string {
  const [start, end] = markers(doc, block);
  return doc.slice(start, end).trim();
}

export function withBlock(doc: string, block: Block, text: string): string {
  const [start, end] = markers(doc, block);
  return `${doc.slice(0, start)}\n${text}\n${doc.slice(end)}`;
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const folders = folderGraph();
  const doc = withBlock(withBlock(readFileSync(DOC, 'utf8'), 'layer-graph', renderLayerMermaid(layerGraph(folders))), 'data-plane-graph', renderDataPlaneMermaid(dataPlaneGraph(folders)));
  writeFileSync(DOC, doc);
}
