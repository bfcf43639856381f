import { readFileSync } from 'node:fs';
import { beforeAll, describe, expect, it } from 'vitest';
import { collapsedGraph, committedBlock, DOC, type Graph, layerOf, renderMermaid } from '../scripts/architecture-graph.js';

/**
 * Arrows between parts of the data plane that still close a cycle (see docs/architecture.md, "The
 * import graph, drawn from the code"). A new one fails the test; when one goes away, take it off.
 */
const DATA_PLANE_CYCLE_ARROWS = [
  'gateway/ → gateway/access/',
  'gateway/ → gateway/audit/',
  'gateway/ → gateway/database/',
  'gateway/ → gateway/detect/',
  'gateway/ → gateway/observability/',
  'gateway/ → gateway/steps/',
  'gateway/access/ → gateway/',
  'gateway/access/ → gateway/audit/',
  'gateway/audit/ → gateway/',
  'gateway/audit/ → gateway/steps/',
  'gateway/database/ → gateway/',
  'gateway/database/ → gateway/audit/',
  'gateway/database/ → gateway/steps/',
  'gateway/detect/ → gateway/',
  'gateway/detect/ → gateway/audit/',
  'gateway/detect/ → gateway/steps/',
  'gateway/observability/ → gateway/',
  'gateway/observability/ → gateway/audit/',
  'gateway/observability/ → gateway/steps/',
  'gateway/steps/ → gateway/',
  'gateway/steps/ → gateway/audit/',
];

/** The strongly connected components of the graph with more than one node (Tarjan). */
function cycles(graph: Graph): string[][] {
  const next = new Map<string, string[]>();
  for (const [from, to] of graph.edges) {
    next.set(from, [...(next.get(from) ?? []), to]);
    if (!next.has(to)) next.set(to, []);
  }
  const index = new Map<string, number>();
  const low = new Map<string, number>();
  const stack: string[] = [];
  const found: string[][] = [];
  const visit = (node: string): void => {
    index.set(node, index.size);
    low.set(node, index.get(node)!);
    stack.push(node);
    for (const to of next.get(node)!) {
      if (!index.has(to)) {
        visit(to);
        low.set(node, Math.min(low.get(node)!, low.get(to)!));
      } else if (stack.includes(to)) {
        low.set(node, Math.min(low.get(node)!, index.get(to)!));
      }
    }
    if (low.get(node) === index.get(node)) {
      const component: string[] = [];
      let member: string;
      do {
        member = stack.pop()!;
        component.push(member);
      } while (member !== node);
      if (component.length > 1) found.push(component.sort());
    }
  };
  for (const node of next.keys()) if (!index.has(node)) visit(node);
  return found;
}

describe('the import graph drawn in docs/architecture.md', () => {
  let graph: Graph;
  beforeAll(() => {
    graph = collapsedGraph();
  });

  it('is the graph of the code (npm run docs:graph redraws it)', () => {
    expect(graph.edges.length).toBeGreaterThan(0);
    expect(committedBlock(readFileSync(DOC, 'utf8'))).toBe(renderMermaid(graph));
  });

  it('has no arrow pointing up the layers, nor sideways between identity/ and policies/', () => {
    const wrong = graph.edges
      .filter(([from, to]) => {
        const [a, b] = [layerOf(from), layerOf(to)];
        return a !== b && a.rank <= b.rank;
      })
      .map(([from, to]) => `${from} (${layerOf(from).name}) → ${to} (${layerOf(to).name})`);
    expect(wrong).toEqual([]);
  });

  it('has no import cycle between parts but the listed data-plane arrows', () => {
    const inCycle = cycles(graph).map((c) => new Set(c));
    const arrows = graph.edges.filter(([from, to]) => inCycle.some((c) => c.has(from) && c.has(to))).map(([from, to]) => `${from} → ${to}`);
    expect(arrows).toEqual(DATA_PLANE_CYCLE_ARROWS);
    for (const [from, to] of graph.edges.filter(([f, t]) => inCycle.some((c) => c.has(f) && c.has(t)))) {
      expect(layerOf(from).name, `${from} → ${to}`).toBe('data plane');
      expect(layerOf(to).name, `${from} → ${to}`).toBe('data plane');
    }
  });
});
