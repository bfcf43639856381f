import { readFileSync } from 'node:fs';
import { beforeAll, describe, expect, it } from 'vitest';
import { committedBlock, dataPlaneGraph, DOC, folderGraph, type Graph, LAYERS, layerGraph, renderDataPlaneMermaid, renderLayerMermaid } from '../scripts/architecture-graph.js';

/**
 * The data-plane folders that import each other both ways today (see docs/architecture.md, "Inside
 * the data plane"): coupling to be reduced, not a cycle between modules (lint:deps forbids those).
 * A new pair fails the test; when a pair goes away, take it off.
 */
const TWO_WAY_FOLDER_PAIRS = ['gateway/ ↔ gateway/access/', 'gateway/ ↔ gateway/audit/', 'gateway/ ↔ gateway/database/', 'gateway/ ↔ gateway/detect/', 'gateway/ ↔ gateway/observability/', 'gateway/ ↔ gateway/steps/', 'gateway/audit/ ↔ gateway/steps/'];

/** The nodes left once every node without an incoming arrow is peeled off, again and again: empty when acyclic. */
function nodesOnCycles(graph: Graph): string[] {
  let edges = graph.edges;
  for (;;) {
    const imported = new Set(edges.map(([, to]) => to));
    const left = edges.filter(([from]) => imported.has(from));
    if (left.length === edges.length) return [...new Set(edges.flat())].sort();
    edges = left;
  }
}

const rankOf = (name: string): number => LAYERS.find((layer) => layer.name === name)!.rank;

describe('the import graphs drawn in docs/architecture.md', () => {
  let folders: Graph;
  let layers: Graph;
  beforeAll(() => {
    folders = folderGraph();
    layers = layerGraph(folders);
  });

  describe('the layer graph', () => {
    it('is the graph of the code (npm run docs:graph redraws it)', () => {
      expect(layers.edges.length).toBeGreaterThan(0);
      expect(committedBlock(readFileSync(DOC, 'utf8'), 'layer-graph')).toBe(renderLayerMermaid(layers));
    });

    it('has no cycle', () => {
      expect(nodesOnCycles(layers)).toEqual([]);
    });

    it('has no arrow pointing up the layers, nor sideways between identity/ and policies/', () => {
      const wrong = layers.edges.filter(([from, to]) => rankOf(from) <= rankOf(to)).map(([from, to]) => `${from} → ${to}`);
      expect(wrong).toEqual([]);
    });
  });

  describe('inside the data plane', () => {
    it('is the graph of the code (npm run docs:graph redraws it)', () => {
      expect(committedBlock(readFileSync(DOC, 'utf8'), 'data-plane-graph')).toBe(renderDataPlaneMermaid(dataPlaneGraph(folders)));
    });

    it('has only the listed folder pairs importing each other both ways', () => {
      const arrows = new Set(dataPlaneGraph(folders).edges.map(([from, to]) => `${from} ${to}`));
      const pairs = dataPlaneGraph(folders)
        .edges.filter(([from, to]) => from < to && arrows.has(`${to} ${from}`))
        .map(([from, to]) => `${from} ↔ ${to}`);
      expect(pairs).toEqual(TWO_WAY_FOLDER_PAIRS);
    });
  });
});
